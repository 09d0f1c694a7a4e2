//! The I/O shell: smol tasks on one thread that move bytes and time
//! between the sockets and the sans-I/O cores, and decide nothing.

pub mod admin;
pub mod cti;
pub mod driver;
pub mod service;
pub mod signal;
pub mod sip;
