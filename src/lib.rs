//! ctigw: a remote call control gateway between Microsoft Lync / Skype for
//! Business pools (SIP carrying ECMA-323 CSTA XML, ECMA TR/87 "uaCSTA") and
//! the CTI manager nodes of a telephone system.
//!
//! The wire formats live apart from the state machines: [`sip`] and
//! [`csta`] parse in place into borrowed views and write into
//! caller-provided buffers, without allocating.
//!
//! Answering a Lync INVITE, the way the gateway does it:
//!
//! ```
//! use ctigw::csta::{self, Namespace, Request, Response, SystemStatus};
//! use ctigw::sip::{Message, MessageWriter};
//!
//! let invite = b"INVITE sip:ctigw@gw.example.com SIP/2.0\r\n\
//! Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK74bf9\r\n\
//! From: <sip:alice@example.com>;tag=1a2b3c\r\n\
//! To: <sip:ctigw@gw.example.com>\r\n\
//! Call-ID: 7f3e9c51d0a4@192.0.2.10\r\n\
//! CSeq: 1 INVITE\r\n\
//! Content-Type: application/csta+xml\r\n\
//! Content-Length: 92\r\n\r\n\
//! <RequestSystemStatus xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed3\"/>";
//!
//! let request = Message::parse(invite)?;
//! request.check_request()?;
//! let doc = csta::parse(request.body())?;
//! assert!(matches!(doc.message, csta::Message::Request(Request::RequestSystemStatus { line: None })));
//!
//! let mut buf = [0u8; 1024];
//! let answer = Response::SystemStatus(SystemStatus::Normal);
//! let ok = MessageWriter::response_to(&mut buf, &request, 200, "OK", Some("gw77"), None)?
//!     .finish_with_body("application/csta+xml", |out| answer.write(doc.namespace, out))?;
//! let ok = Message::parse(ok)?;
//! assert_eq!(ok.to()?.tag(), Some("gw77"));
//! assert_eq!(doc.namespace, Namespace::Ed3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)] // but for the signal handler (io::signal)
#![deny(missing_docs)]

pub mod admin;
pub mod board;
pub mod config;
pub mod csta;
pub mod cti;
pub mod dialplan;
pub mod index;
pub mod io;
pub mod lines;
pub mod outbuf;
pub mod pool;
pub mod rcc;
pub mod recvbuf;
#[cfg(any(test, feature = "rig"))]
pub mod rig;
pub mod sendbuf;
pub mod sim;
pub mod sip;
pub mod store;
pub mod tel;
pub mod tls;
pub mod transaction;
pub mod transport;
