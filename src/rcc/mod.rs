//! The remote call control core: sessions, line appearances,
//! authorisation, routing a Lync request to its CTI node and a node's
//! events back. A pure state machine: no socket, no clock read. The shell
//! feeds it SIP messages, CTI bytes and the time, and carries out what it
//! returns ([`Gateway::poll_transmit`], [`Gateway::poll_timeout`], the CTI
//! link actions).

pub mod appearances;
mod gateway;
pub mod index;
pub mod pool;
pub mod session;

use core::fmt;
use core::net::SocketAddr;

pub use gateway::{Counters, Gateway, GatewayConfig, Transmit};

/// A TCP connection of the SIP shell: its slot and generation, opaque here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u32);

/// How a SIP message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// As datagrams on the gateway's UDP socket.
    Udp,
    /// On one TCP connection.
    Tcp(ConnId),
}

impl Transport {
    /// The Via transport token.
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp(_) => "TCP",
        }
    }

    /// True for a reliable transport (no retransmissions needed).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp(_))
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

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.transport.token(), self.addr)
    }
}

#[cfg(test)]
mod tests;
