//! SIP over TLS end to end, with the real binaries on loopback: `ctigw`
//! with a `[tls]` section and its admin endpoint, a `ctigw-sim` node, and
//! Lync pool clients speaking rustls. The certificates are made here with
//! rcgen, for each run: a test CA, the gateway's certificate, the trusted
//! pool's, and the ones that must be refused.

#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::gateway::{Gateway, config_text, free_port, scratch_dir};
use common::lync::{Lync, TlsStream, header, status_of};
use common::sim::Sim;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
const ALICE_LINE: &str = "tel:+14255550101;ext=101";
const BOB_LINE: &str = "tel:+14255550102;ext=102";
/// The trusted peer of the configuration: the Lync pool's FQDN.
const POOL: &str = "lync-pool.example.com";

/// A certificate and its key, PEM.
struct Identity {
    cert: String,
    key: String,
}

/// A CA that signs certificates for the tests.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `cn` (if any) and the SAN names `sans` (DNS names
    /// or IP addresses), for TLS clients and servers alike.
    fn issue(&self, cn: Option<&str>, sans: &[&str]) -> Identity {
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "Example");
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// A Lync pool's TLS client: trusts `ca` for the gateway, shows
/// `identity` (or no certificate), speaks only `version`.
fn client(ca: &str, identity: Option<&Identity>, version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert.as_bytes()).map(Result::unwrap).collect();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

/// A TLS connection to the gateway, its handshake (as far as the client
/// sees it) done; `Err` when the client already sees it fail.
fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<TlsStream, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let server = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = rustls::StreamOwned::new(ClientConnection::new(config, server).unwrap(), tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

/// What a refused client sees: the handshake fails, or its first request
/// gets no answer but an alert or the close.
fn is_refused(addr: SocketAddr, config: Arc<ClientConfig>) -> bool {
    let Ok(mut tls) = connect(addr, config) else { return true };
    let options = "OPTIONS sip:ctigw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls\r\n\
                   From: <sip:a@example.com>;tag=t\r\nTo: <sip:ctigw@127.0.0.1>\r\nCall-ID: tls-refused\r\n\
                   CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    if tls.write_all(options.as_bytes()).is_err() {
        return true;
    }
    let mut buf = [0u8; 2048];
    !matches!(tls.read(&mut buf), Ok(n) if n > 0)
}

/// One scrape of the admin endpoint's page `path`.
fn get(admin: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: ctigw\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// The value of the sample `sample` (name and labels as written) in
/// /metrics, waiting up to 5 s for it to reach `expected`.
fn wait_metric(admin: SocketAddr, sample: &str, expected: f64) {
    let start = Instant::now();
    loop {
        let metrics = get(admin, "/metrics");
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no sample {sample}:\n{metrics}"));
        if value == expected {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{sample} is {value}, not {expected}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A test CA, the gateway's certificate and the trusted pool's, the PEM
/// files the configuration names written in a folder of their own.
struct Pki {
    ca: Ca,
    pool: Identity,
    ca_pem: String,
    cert: String,
    key: String,
}

fn pki(folder: &str) -> Pki {
    let dir = scratch_dir(folder);
    let ca = Ca::new("Test Lync CA");
    let gateway_id = ca.issue(Some("gw.example.com"), &["gw.example.com", "127.0.0.1"]);
    let pool = ca.issue(Some(POOL), &["fe1.lync-pool.example.com"]);
    let (ca_pem, cert, key) = (
        write(&dir, "ca.pem", &ca.pem()),
        write(&dir, "gw.pem", &gateway_id.cert),
        write(&dir, "gw.key", &gateway_id.key),
    );
    Pki { ca, pool, ca_pem, cert, key }
}

/// Signs `user` in on `line` over TLS, monitors `device`, makes a call to
/// an outside number and waits for the event INFOs it brings, checking
/// the gateway's TLS Via and Contact on the way.
fn works_over_tls(lync: &mut Lync, line: &str, device: &str, tls_port: u16) {
    assert_eq!(lync.sign_in(Some(line)), 200);
    assert_eq!(lync.features(), 200);
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>{device}</deviceObject></monitorObject></MonitorStart>"
    );
    let answer = lync.info_response(&monitor);
    assert_eq!(status_of(&answer), 200);
    assert!(answer.contains("MonitorStartResponse"), "{answer}");
    let call = format!(
        "<MakeCall xmlns=\"{NS}\"><callingDevice>{device}</callingDevice><calledDirectoryNumber>tel:+14255559876</calledDirectoryNumber></MakeCall>"
    );
    let answer = lync.info_response(&call);
    assert_eq!(status_of(&answer), 200);
    assert!(answer.contains("MakeCallResponse"), "{answer}");
    // The outside party answers after a second: EstablishedEvent at least.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut events = Vec::new();
    while !events.iter().any(|e: &String| e.contains("EstablishedEvent")) {
        let left = deadline.checked_duration_since(Instant::now()).expect("EstablishedEvent within 5 s");
        let Some(m) = lync.receive(left) else { panic!("the connection ended; events so far: {events:?}") };
        if !m.starts_with("INFO ") {
            continue;
        }
        let via = header(&m, "Via").unwrap();
        assert!(via.starts_with(&format!("SIP/2.0/TLS 127.0.0.1:{tls_port};")), "{via}");
        assert_eq!(header(&m, "Contact"), Some(format!("<sip:127.0.0.1:{tls_port};transport=tls>").as_str()));
        lync.answer(&m, 200);
        events.push(m);
    }
}

#[test]
fn a_trusted_pool_works_over_tls_and_every_other_peer_is_refused_and_counted() {
    let Pki { ca, pool, ca_pem, cert, key } = pki("tls-certs");

    let sim = Sim::start(&[]);
    let (tls_port, admin) = (free_port(), SocketAddr::from(([127, 0, 0, 1], free_port())));
    let extra = format!(
        "[tls]\nlisten = 127.0.0.1:{tls_port}\ncertificate = {cert}\nkey = {key}\nca = {ca_pem}\npeer = {POOL}\n\
         peer = lync-pool2.example.com\nhandshake_timeout = 1s\n[admin]\nlisten = {admin}"
    );
    let gw = Gateway::start("tls", &config_text(free_port(), &[sim.listen], &extra));
    gw.wait_log(&format!("127.0.0.1:{tls_port} (TLS, 2 trusted peers)"), Duration::from_secs(5));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let ca_text = ca.pem();

    // The trusted pool, over TLS 1.3 (alice) and TLS 1.2 (bob).
    let tls13 = connect(tls_addr, client(&ca_text, Some(&pool), &rustls::version::TLS13)).expect("TLS 1.3");
    assert_eq!(tls13.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let mut alice = Lync::over_tls(tls_addr, tls13, "alice@example.com");
    works_over_tls(&mut alice, ALICE_LINE, "tel:101", tls_port);
    let tls12 = connect(tls_addr, client(&ca_text, Some(&pool), &rustls::version::TLS12)).expect("TLS 1.2");
    assert_eq!(tls12.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let mut bob = Lync::over_tls(tls_addr, tls12, "bob@example.com");
    works_over_tls(&mut bob, BOB_LINE, "tel:102", tls_port);
    gw.wait_log(&format!("TLSv1_3, trusted peer {POOL}"), Duration::from_secs(1));
    gw.wait_log(&format!("TLSv1_2, trusted peer {POOL}"), Duration::from_secs(1));
    wait_metric(admin, "ctigw_tls_handshakes_total", 2.0);
    wait_metric(admin, "ctigw_sip_tls_connections_open", 2.0);
    let sessions = get(admin, "/sessions");
    assert_eq!(sessions.matches("\"transport\":\"tls\"").count(), 2, "{sessions}");

    // Another user's device and line stay theirs over TLS too.
    let bobs_device = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:102</deviceObject></monitorObject></MonitorStart>"
    );
    let answer = alice.info_response(&bobs_device);
    assert_eq!(status_of(&answer), 200);
    assert!(answer.contains("privilegeViolationSpecifiedDevice"), "{answer}");
    let call_as_bob = format!(
        "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:102</callingDevice><calledDirectoryNumber>tel:101</calledDirectoryNumber></MakeCall>"
    );
    assert!(alice.info_response(&call_as_bob).contains("privilegeViolationSpecifiedDevice"));
    let stream = connect(tls_addr, client(&ca_text, Some(&pool), &rustls::version::TLS13)).unwrap();
    let mut mallory = Lync::over_tls(tls_addr, stream, "alice@example.com");
    assert_eq!(mallory.sign_in(Some(BOB_LINE)), 403, "an INVITE naming bob's line");
    wait_metric(admin, "ctigw_requests_refused_total{cause=\"privilege_violation\"}", 2.0);

    // Refused: no certificate, another CA's, a name not trusted (each over
    // both versions), plain SIP on the TLS port, and a stalled handshake.
    let other_ca = Ca::new("Someone Else's CA");
    let forged = other_ca.issue(Some(POOL), &[POOL]);
    let intruder = ca.issue(Some("intruder.example.com"), &["intruder.example.com", "lync-pool.example.com.evil.test"]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        assert!(is_refused(tls_addr, client(&ca_text, None, version)), "no certificate");
        assert!(is_refused(tls_addr, client(&ca_text, Some(&forged), version)), "another CA");
        assert!(is_refused(tls_addr, client(&ca_text, Some(&intruder), version)), "name not trusted");
    }
    wait_metric(admin, "ctigw_tls_refused_total{cause=\"no_certificate\"}", 2.0);
    wait_metric(admin, "ctigw_tls_refused_total{cause=\"unknown_ca\"}", 2.0);
    wait_metric(admin, "ctigw_tls_refused_total{cause=\"name_not_trusted\"}", 2.0);
    gw.wait_log("refused: no client certificate", Duration::from_secs(1));
    gw.wait_log("refused: client certificate not issued by the configured CA", Duration::from_secs(1));
    gw.wait_log(
        "refused: certificate names no trusted peer (CN=intruder.example.com, DNS=intruder.example.com, \
         DNS=lync-pool.example.com.evil.test)",
        Duration::from_secs(1),
    );

    let mut plain = TcpStream::connect(tls_addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"OPTIONS sip:ctigw@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let answered = plain.read(&mut buf).unwrap_or(0);
    assert!(!buf[..answered].starts_with(b"SIP/2.0"), "no SIP answer in the clear");
    wait_metric(admin, "ctigw_tls_refused_total{cause=\"handshake_failed\"}", 1.0);

    let started = Instant::now();
    let mut stalled = TcpStream::connect(tls_addr).unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(stalled.read(&mut buf), Ok(0) | Err(_)));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(4), "closed after {waited:?}");
    wait_metric(admin, "ctigw_tls_refused_total{cause=\"handshake_timeout\"}", 1.0);
    wait_metric(admin, "ctigw_tls_refused_total{cause=\"bad_certificate\"}", 0.0);

    // The trusted sessions never noticed; only the refused connections went.
    assert_eq!(alice.features(), 200);
    assert_eq!(bob.features(), 200);
    wait_metric(admin, "ctigw_tls_handshakes_total", 3.0);
    wait_metric(admin, "ctigw_sip_tls_connections_open", 3.0);
    wait_metric(admin, "ctigw_sessions_open", 2.0);
}

#[test]
fn bad_tls_files_are_reported_at_load_and_at_start() {
    let dir = scratch_dir("tls-files");
    let ca = Ca::new("Test Lync CA");
    let id = ca.issue(Some("gw.example.com"), &["127.0.0.1"]);
    let other = ca.issue(Some("other.example.com"), &["127.0.0.1"]);
    let (ca_pem, cert, key) =
        (write(&dir, "ca.pem", &ca.pem()), write(&dir, "gw.pem", &id.cert), write(&dir, "gw.key", &id.key));
    let garbage = write(&dir, "garbage.pem", "not a PEM file\n");
    let other_key = write(&dir, "other.key", &other.key);
    let check = |name: &str, tls: &str| {
        let conf = dir.join(name);
        let text = config_text(5060, &["127.0.0.1:7001".parse().unwrap()], &format!("[tls]\n{tls}peer = {POOL}\n"));
        std::fs::write(&conf, text).unwrap();
        let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--check-config").arg(&conf).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (status, stderr) = check("good.conf", &format!("certificate = {cert}\nkey = {key}\nca = {ca_pem}\n"));
    assert_eq!(status, Some(0), "{stderr}");
    // A missing file: at load, with its line and path.
    let (status, stderr) = check("missing.conf", &format!("certificate = {cert}.gone\nkey = {key}\nca = {ca_pem}\n"));
    assert_eq!(status, Some(1));
    assert!(stderr.contains(&format!("missing.conf:6: certificate {cert}.gone: No such file")), "{stderr}");
    // Not PEM, or a key of another certificate: a clear message, exit 1.
    let (status, stderr) = check("garbage.conf", &format!("certificate = {garbage}\nkey = {key}\nca = {ca_pem}\n"));
    assert_eq!(status, Some(1));
    assert!(stderr.contains(&format!("ctigw: TLS certificate {garbage}: no CERTIFICATE in the PEM file")), "{stderr}");
    let (status, stderr) = check("nokey.conf", &format!("certificate = {cert}\nkey = {cert}\nca = {ca_pem}\n"));
    assert_eq!(status, Some(1));
    assert!(stderr.contains(&format!("ctigw: TLS key {cert}: no private key")), "{stderr}");
    let (status, stderr) = check("mismatch.conf", &format!("certificate = {cert}\nkey = {other_key}\nca = {ca_pem}\n"));
    assert_eq!(status, Some(1));
    assert!(stderr.contains(&format!("ctigw: TLS key {other_key} and certificate {cert}:")), "{stderr}");
    // At start too: the gateway does not come up.
    let conf = dir.join("garbage.conf");
    let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--config").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no CERTIFICATE in the PEM file"));
}

/// Through a PBX over TLS (common/pbx.rs: an OpenScape-class switch,
/// config/pbx.conf's dial plan): the whole outside call, with Lync's line
/// back byte for byte, for a plain and a Cisco-style line.
#[test]
fn through_a_pbx_over_tls() {
    let Pki { ca, pool, ca_pem, cert, key } = pki("tls-pbx-certs");
    let sim = common::pbx::start_sim();
    let tls_port = free_port();
    let extra = format!(
        "[tls]\nlisten = 127.0.0.1:{tls_port}\ncertificate = {cert}\nkey = {key}\nca = {ca_pem}\npeer = {POOL}\n"
    );
    let gw = Gateway::start("tls-pbx", &common::pbx::config(free_port(), &[sim.listen], &extra));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    for (user, line) in [
        ("alice@example.com", ALICE_LINE),
        ("erin@example.com", "tel:73124;phone-context=dialstring;partition=BE_BRS_INT"),
    ] {
        let stream = connect(tls_addr, client(&ca.pem(), Some(&pool), &rustls::version::TLS13)).expect("TLS 1.3");
        let mut lync = Lync::over_tls(tls_addr, stream, user);
        common::pbx::call_flow(&mut lync, &sim, line);
    }
}
