//! SIP wire format (RFC 3261): messages parsed in place as borrowed views,
//! stream framing for TCP and TLS, and a writer into caller-provided
//! buffers. No state machines live here and nothing allocates.

mod error;
pub mod grammar;
mod header;
mod message;
pub mod stream;
mod write;

pub use error::Error;
pub use grammar::{CSeq, Disposition, MediaType, NameAddr, Params, Via};
pub use header::HeaderName;
pub use httparse::Status;
pub use message::{HeaderView, ListValues, MAX_HEADERS, Message, Method, StartLine};
pub use stream::{Frame, StreamBuffer, next_frame};
pub use write::{DialogRequest, MessageWriter};
