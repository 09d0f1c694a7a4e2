//! CSTA XML over TCP: ECMA-323 documents in the framing of CSTA's "XML
//! over TCP" (two zero bytes, a 16-bit length, a four-digit invoke id,
//! the document), with an ECMA-354 application session or
//! RequestSystemStatus as the heartbeat. The one protocol the gateway's
//! nodes speak today; [`crate::cti::Protocol::CstaXml`] names it in the
//! configuration.
//!
//! A node's documents are decoded here, into the caller's inbox, and
//! handed up as CSTA messages ([`crate::cti::Incoming`]): the core never
//! sees the wire.

pub mod frame;
mod link;

pub(crate) use link::{Context, Link};
pub use link::{Counters, LINK_BUFFER, LinkState, MAX_OUTSTANDING, SessionMode, Timing};
