//! ctigw: a remote call control gateway between Microsoft Lync / Skype for
//! Business pools (SIP carrying ECMA-323 CSTA XML, ECMA TR/87 "uaCSTA") and
//! the CTI manager nodes of a telephone system.
//!
//! The wire formats live apart from the state machines: [`sip`] and
//! [`csta`] parse in place into borrowed views and write into
//! caller-provided buffers, without allocating.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod csta;
pub mod outbuf;
pub mod sip;
