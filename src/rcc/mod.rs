//! The remote call control core: sessions, line appearances,
//! authorisation, routing a Lync request to its CTI node and a node's
//! events back. A pure state machine: no socket, no clock read. The shell
//! feeds it SIP messages, CTI bytes and the time, and carries out what it
//! returns ([`Gateway::poll_transmit`], [`Gateway::poll_timeout`], the CTI
//! link actions).

pub mod appearances;
mod gateway;
pub mod session;
pub mod session_timer;
pub mod translate;

pub use crate::transport::{ConnId, Peer, Transport};
pub use gateway::{Counters, Deferrable, Failover, Gateway, GatewayConfig, Transmit};

#[cfg(test)]
mod tests;
