//! SIP over TLS (RFC 3261 §26.3.1, RFC 5922): the policy, apart from the
//! sockets. The Lync pool authenticates with a certificate that must chain
//! to the configured CA and name one of the configured peers (the pool's
//! FQDNs) in its subject CN or a SAN DNS name; anything else is refused
//! in the handshake, with a cause the shell logs and counts.
//!
//! [`names`] reads a certificate's names and matches them (pure, always
//! built); the rustls server configuration and the client certificate
//! verifier ([`Server`]) need the cargo feature `tls` (on by default).
//! Without it, [`server_config`] only says so, and `[tls]` in the
//! configuration is an error.

pub mod names;
#[cfg(feature = "tls")]
mod server;

#[cfg(feature = "tls")]
pub use server::{Server, refusal, server_config};

/// A build without the `tls` feature has no TLS server: nothing of this
/// type can exist.
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
pub enum Server {}

/// Without the `tls` feature there is nothing to configure.
#[cfg(not(feature = "tls"))]
pub fn server_config(_: &crate::config::TlsConfig) -> Result<Server, String> {
    Err("this ctigw was built without TLS (cargo feature `tls`)".to_string())
}

/// Why a TLS connection was refused, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer sent no certificate.
    NoCertificate,
    /// Its certificate does not chain to the configured CA.
    UnknownCa,
    /// Its certificate is expired, not yet valid, malformed, for another
    /// purpose, or badly signed.
    BadCertificate,
    /// Its certificate chains to the CA but names no trusted peer.
    NameNotTrusted,
    /// The handshake did not finish in time.
    Timeout,
    /// Any other handshake failure: not TLS, no common version or cipher
    /// suite, an alert from the peer, a closed connection.
    Handshake,
}

impl Refusal {
    /// Every cause, in the order of the counters.
    pub const ALL: [Refusal; 6] = [
        Refusal::NoCertificate,
        Refusal::UnknownCa,
        Refusal::BadCertificate,
        Refusal::NameNotTrusted,
        Refusal::Timeout,
        Refusal::Handshake,
    ];

    /// The `cause` label of `ctigw_tls_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_certificate",
            Refusal::UnknownCa => "unknown_ca",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::NameNotTrusted => "name_not_trusted",
            Refusal::Timeout => "handshake_timeout",
            Refusal::Handshake => "handshake_failed",
        }
    }

    /// Its index in [`Refusal::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
