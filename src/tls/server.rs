//! The rustls side of SIP over TLS (feature `tls`): the server
//! configuration from the PEM files of `[tls]`, and the client certificate
//! verifier that adds the trusted-peer name check to webpki's chain check.

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use futures_rustls::rustls::client::danger::HandshakeSignatureValid;
use futures_rustls::rustls::crypto::{CryptoProvider, ring};
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use futures_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use futures_rustls::rustls::server::{NoServerSessionStorage, ServerConnection, WebPkiClientVerifier};
use futures_rustls::rustls::{
    self, CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::Refusal;
use super::names::certificate_names;
use crate::config::TlsConfig;

/// What the TLS listener needs: the rustls configuration (versions,
/// certificate, the verifier) and the trusted peers.
#[derive(Debug, Clone)]
pub struct Server {
    /// For the acceptor.
    pub config: Arc<ServerConfig>,
    peers: Arc<[String]>,
}

impl Server {
    /// The trusted peer a finished handshake authenticated (the verifier
    /// let no other through), for the log.
    pub fn peer_of(&self, connection: &ServerConnection) -> Option<&str> {
        let certificate = connection.peer_certificates()?.first()?;
        certificate_names(certificate.as_ref())?.trusted(&self.peers)
    }
}

/// The certificate of a peer that chains to the CA but is none of the
/// trusted peers.
#[derive(Debug)]
struct NameNotTrusted(String);

impl fmt::Display for NameNotTrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate names no trusted peer ({})", self.0)
    }
}

impl StdError for NameNotTrusted {}

/// webpki's verifier (the chain to the CA, validity, key usage, the
/// signatures), then the name check.
#[derive(Debug)]
struct PeerVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    peers: Arc<[String]>,
}

impl ClientCertVerifier for PeerVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.chain.verify_client_cert(end_entity, intermediates, now)?;
        let names =
            certificate_names(end_entity.as_ref()).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        match names.trusted(&self.peers) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(NameNotTrusted(
                names.describe(),
            )))))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("TLS {what} {}: cannot read: {e}", path.display()))
}

fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(what, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS {what} {}: not PEM: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("TLS {what} {}: no CERTIFICATE in the PEM file", path.display()));
    }
    Ok(certificates)
}

/// Reads the certificate, key and CA of `[tls]` and builds the server:
/// TLS 1.3 and 1.2 with ring's cipher suites, a client certificate
/// required, no session resumption (every connection is authenticated
/// afresh, and no session cache grows). Every fault is one message
/// naming the file.
pub fn server_config(tls: &TlsConfig) -> Result<Server, String> {
    let chain = certificates("certificate", &tls.certificate)?;
    let key = PrivateKeyDer::from_pem_slice(&read("key", &tls.key)?)
        .map_err(|e| format!("TLS key {}: no private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}", tls.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in certificates("CA", &tls.ca)? {
        roots.add(ca).map_err(|e| format!("TLS CA {}: not a CA certificate: {e}", tls.ca.display()))?;
    }
    let provider: Arc<CryptoProvider> = Arc::new(ring::default_provider());
    let chain_verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS CA {}: {e}", tls.ca.display()))?;
    let peers: Arc<[String]> = tls.peers.clone().into();
    let verifier = Arc::new(PeerVerifier { chain: chain_verifier, peers: peers.clone() });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS key {} and certificate {}: {e}", tls.key.display(), tls.certificate.display()))?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Server { config: Arc::new(config), peers })
}

/// Why a handshake failed (the error of the acceptor), as a counted cause
/// and a reason for the log.
pub fn refusal(error: &std::io::Error) -> (Refusal, String) {
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return (Refusal::Handshake, format!("handshake failed: {error}"));
    };
    match tls {
        Error::NoCertificatesPresented => (Refusal::NoCertificate, "no client certificate".to_string()),
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            (Refusal::UnknownCa, "client certificate not issued by the configured CA".to_string())
        }
        Error::InvalidCertificate(CertificateError::Other(OtherError(e))) if e.is::<NameNotTrusted>() => {
            (Refusal::NameNotTrusted, e.to_string())
        }
        Error::InvalidCertificate(e) => (Refusal::BadCertificate, format!("bad client certificate: {e}")),
        e => (Refusal::Handshake, format!("handshake failed: {e}")),
    }
}
