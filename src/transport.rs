//! Where a SIP message travels: the peer's address and the transport,
//! and the stream connection it is on. Shared by the transaction layer,
//! the core and the shell.

use core::fmt;
use core::net::SocketAddr;

/// A TCP or TLS connection of the SIP shell: its slot and generation,
/// opaque here (TCP and TLS connections share the slots, so an id names
/// one connection whichever it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u32);

/// How a SIP message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// As datagrams on the gateway's UDP socket.
    Udp,
    /// On one TCP connection.
    Tcp(ConnId),
    /// On one TLS connection (TLS over TCP, the peer authenticated by its
    /// certificate): reliable like TCP.
    Tls(ConnId),
}

impl Transport {
    /// The Via transport token.
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp(_) => "TCP",
            Transport::Tls(_) => "TLS",
        }
    }

    /// True for a reliable transport (no retransmissions needed).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp(_) | Transport::Tls(_))
    }

    /// The stream connection a message travels on (none for UDP).
    pub fn conn(self) -> Option<ConnId> {
        match self {
            Transport::Udp => None,
            Transport::Tcp(id) | Transport::Tls(id) => Some(id),
        }
    }
}

/// The other end of a SIP message: its address and the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The remote address.
    pub addr: SocketAddr,
    /// How the message travels.
    pub transport: Transport,
}

impl Peer {
    /// No peer: the unspecified address over UDP, what a table entry
    /// holds before it is first used.
    pub const fn unspecified() -> Peer {
        Peer {
            addr: SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)),
            transport: Transport::Udp,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.transport.token(), self.addr)
    }
}
