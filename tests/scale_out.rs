//! Two gateways behind Kamailio's dispatcher (`config/kamailio/
//! dispatcher.cfg`), everything on loopback: each gateway with its own
//! simulated CTI node, a hundred Lync users signing in through Kamailio
//! over UDP. The sessions are spread over both gateways; every request in
//! a dialog reaches the gateway that owns it. Then one gateway is killed:
//! its users' next requests fail fast (408 from Kamailio), their new
//! sign-ins (as Lync does) land on the survivor, and the survivor's users
//! are not disturbed.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{Gateway, config_text, free_port, scratch_dir};
use common::lync::Lync;
use common::sim::Sim;

const USERS: usize = 100;

/// Kamailio with the dispatcher configuration, in a process group of its
/// own: stopped, with the workers it forked, when dropped.
struct Kamailio {
    child: Child,
    addr: SocketAddr,
}

impl Kamailio {
    fn start(gateways: &[SocketAddr], dir: &std::path::Path) -> Kamailio {
        let binary = ["kamailio", "/usr/sbin/kamailio"]
            .into_iter()
            .find(|b| Command::new(b).arg("-v").stdout(Stdio::null()).status().is_ok_and(|s| s.success()))
            .expect("kamailio is not installed: run `make deps` (Debian: kamailio)");
        let list = dir.join("dispatcher.list");
        let lines: String = gateways.iter().map(|g| format!("1 sip:{g}\n")).collect();
        std::fs::write(&list, lines).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(binary)
            .arg("-f")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/kamailio/dispatcher.cfg"))
            .args(["-A", &format!("LISTEN=udp:{addr}"), "-A", &format!("DS_LIST=\"{}\"", list.display())])
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log")).unwrap())
            .spawn()
            .unwrap();
        // Up when it answers OPTIONS; then a few probes of the gateways.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let local = probe.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKready\r\nMax-Forwards: 70\r\n\
             From: <sip:test@{local}>;tag=r\r\nTo: <sip:{addr}>\r\nCall-ID: ready\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let up = Instant::now();
        let mut buf = [0u8; 2048];
        loop {
            probe.send_to(options.as_bytes(), addr).unwrap();
            if probe.recv(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"SIP/2.0 200")) {
                break;
            }
            assert!(up.elapsed() < Duration::from_secs(10), "kamailio did not come up: see {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(2500));
        Kamailio { child, addr }
    }
}

impl Drop for Kamailio {
    /// SIGTERM to the group (the main process stops its workers), SIGKILL
    /// to whatever is left after 2 s: a SIGKILL of the main process alone
    /// would leave its workers probing the gateways for ever.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |name: &str| Command::new("kill").args([name, "--", &group]).stderr(Stdio::null()).status();
        let _ = signal("-TERM");
        let asked = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && asked.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = signal("-KILL");
        let _ = self.child.wait();
    }
}

/// Which gateway a dialog is on: the port of the Contact in its 200.
fn port_of(lync: &Lync) -> u16 {
    let target = lync.target().expect("Kamailio record-routes: the 200 names the gateway");
    let host_port = target.trim_start_matches("sip:").split(';').next().unwrap();
    host_port.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn two_gateways_behind_kamailio_share_the_users_and_one_takes_over_when_the_other_dies() {
    let dir = scratch_dir("scale-out");
    let write =
        common::binary(env!("CARGO_BIN_EXE_ctigw-load")).args(["--write-lines", &USERS.to_string()]).arg(&dir).status();
    assert!(write.unwrap().success());
    let sim_lines = dir.join("sim-lines.conf").display().to_string();
    let default_lines = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf");
    let mut gateways = Vec::new();
    let mut sims = Vec::new();
    for name in ["scale-out-a", "scale-out-b"] {
        let sim = Sim::start(&["--lines", &sim_lines, "--outside", "answer=0"]);
        let config = config_text(free_port(), &[sim.listen], "")
            .replace(default_lines, &dir.join("lines.conf").display().to_string());
        let gw = Gateway::start(name, &config);
        gw.wait_log("node 1: up", Duration::from_secs(10));
        gateways.push(gw);
        sims.push(sim);
    }
    let [a, b] = [gateways[0].sip, gateways[1].sip];
    let kamailio = Kamailio::start(&[a, b], &dir);

    // A hundred users sign in through Kamailio (it may take a moment to
    // be up and to have probed both gateways).
    let user = |i: usize| format!("load{i}@example.com");
    let mut users: Vec<Lync> = Vec::new();
    let started = Instant::now();
    for i in 0..USERS {
        let mut lync = Lync::connect(kamailio.addr, "udp", &user(i));
        loop {
            let status = lync.sign_in(None);
            if status == 200 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "user {i} not signed in: {status}");
            std::thread::sleep(Duration::from_millis(200));
            lync.new_dialog();
        }
        users.push(lync);
    }
    let on_a: Vec<usize> = (0..USERS).filter(|&i| port_of(&users[i]) == a.port()).collect();
    let on_b: Vec<usize> = (0..USERS).filter(|&i| port_of(&users[i]) == b.port()).collect();
    eprintln!("{} users on gateway A, {} on gateway B", on_a.len(), on_b.len());
    assert_eq!(on_a.len() + on_b.len(), USERS, "every dialog is on one of the two");
    assert!(on_a.len() >= USERS / 3 && on_b.len() >= USERS / 3, "round robin spreads them");
    // Requests in the dialog (through Kamailio, by the route set) reach
    // the gateway that owns it.
    for (i, lync) in users.iter_mut().enumerate() {
        assert_eq!(lync.features(), 200, "user {i}");
    }

    // Gateway A dies.
    gateways[0].kill();
    let killed = Instant::now();
    // Its users' next requests (all at once) fail fast; they sign in
    // again, on B.
    for &i in &on_a {
        users[i].send_features();
    }
    for &i in &on_a {
        let status = users[i].response_within(Duration::from_secs(5)).map(|r| common::lync::status_of(&r));
        let took = killed.elapsed();
        assert!(matches!(status, Some(s) if s >= 400), "user {i} on the dead gateway: {status:?}");
        assert!(took < Duration::from_secs(3), "user {i} waited {took:?} for the failure");
    }
    eprintln!(
        "the dead gateway's {} users were all refused {} ms after it died",
        on_a.len(),
        killed.elapsed().as_millis()
    );
    for &i in &on_a {
        users[i].new_dialog();
        let status = users[i].sign_in(None);
        assert_eq!(status, 200, "user {i} signs in again");
        assert_eq!(port_of(&users[i]), b.port(), "user {i} is on the survivor now");
        assert_eq!(users[i].features(), 200);
    }
    eprintln!("{} users moved to gateway B {} ms after A died", on_a.len(), killed.elapsed().as_millis());
    // B's own users were never disturbed: the same dialogs still answer.
    for &i in &on_b {
        assert_eq!(users[i].features(), 200, "user {i} on the survivor");
    }
    let log = gateways[1].log_text();
    assert!(!log.contains("ERROR"), "{log}");
    for lync in &mut users {
        assert_eq!(lync.bye(), 200);
    }
    drop(kamailio);
    drop(sims);
}
