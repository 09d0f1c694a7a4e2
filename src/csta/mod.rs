//! ECMA-323 CSTA XML wire format (editions 3 and 4) and the ECMA-354
//! application session messages of the CTI link.
//!
//! [`parse`] reads one document in one pass over `xmlparser` tokens into a
//! [`Document`]: a borrowed [`Message`] whose identifiers are [`Text`]
//! slices of the input. Unknown elements and private data are skipped;
//! Microsoft's `lcs:line` is read. Every message writes itself back into
//! a caller-provided buffer in the namespace it is given. Nothing here
//! allocates.

pub mod cause;
mod devices;
mod error_code;
mod event;
mod request;
mod response;
mod session;
mod system;
mod text;
mod types;
mod xml;

use core::fmt;

pub use devices::DeviceRole;
pub use error_code::{ErrorCategory, ErrorCode};
pub use event::{
    CallEvent, CallEventKind, DoNotDisturbEvent, Dropped, Event, ForwardingEvent, MAX_DROPPED_KINDS,
    MAX_EVENT_CONNECTIONS, Redirection,
};
pub use request::Request;
pub use response::{ForwardItem, MAX_CALL_STATES, MAX_FORWARD_ITEMS, MAX_SNAPSHOT_CALLS, Response, SnapshotCall};
pub use session::{SessionMessage, SessionRequest};
pub use system::SystemMessage;
pub use text::{Text, Unescaped, write_escaped};
pub use types::{
    AutoOriginate, ConnectionId, ForwardingType, LCS_NAMESPACE, LocalConnectionState, Namespace, Service, Services,
    SystemStatus,
};
pub use xml::MAX_DEPTH;

use crate::outbuf::{OutBuf, Overflow};
use xml::Reader;

/// Any CSTA or application session message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A request (Lync to gateway, gateway to node).
    Request(Request<'a>),
    /// A positive response.
    Response(Response<'a>),
    /// An event for a monitor.
    Event(Event<'a>),
    /// A negative response: CSTAErrorCode.
    Error(ErrorCode<'a>),
    /// An ECMA-354 application session message.
    Session(SessionMessage<'a>),
    /// A system status message between a node and the gateway.
    System(SystemMessage<'a>),
}

impl Message<'_> {
    /// Writes the message as a document; CSTA messages in `namespace`,
    /// application session messages always in ECMA-354's.
    pub fn write(&self, namespace: Namespace, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        match self {
            Message::Request(m) => m.write(namespace, out),
            Message::Response(m) => m.write(namespace, out),
            Message::Event(m) => m.write(namespace, out),
            Message::Error(m) => m.write(namespace, out),
            Message::Session(m) => m.write(out),
            Message::System(m) => m.write(namespace, out),
        }
    }
}

/// A parsed document: its message and the namespace it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    /// The root element's namespace.
    pub namespace: Namespace,
    /// The message.
    pub message: Message<'a>,
}

/// The local name of a document's root element, found without parsing
/// the document: after an XML declaration, comments and white space, the
/// first start tag's name without its prefix. `None` when there is none.
/// Lets a CTI link tell its own session messages from what it hands up
/// without parsing everything twice.
pub fn root_name(xml: &[u8]) -> Option<&str> {
    let mut rest = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    loop {
        let start = rest.iter().position(|&b| !b.is_ascii_whitespace())?;
        rest = &rest[start..];
        if rest.starts_with(b"<?") {
            rest = &rest[rest.windows(2).position(|w| w == b"?>")? + 2..];
        } else if rest.starts_with(b"<!--") {
            rest = &rest[rest.windows(3).position(|w| w == b"-->")? + 3..];
        } else {
            break;
        }
    }
    let tag = rest.strip_prefix(b"<")?;
    let end = tag.iter().position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')?;
    let name = core::str::from_utf8(&tag[..end]).ok()?;
    Some(name.rsplit_once(':').map_or(name, |(_, local)| local))
}

/// Parses one CSTA XML document.
///
/// CSTA messages must be in an ECMA-323 namespace, editions 3 to 6.
/// Application session messages are accepted in ECMA-354's namespace, in a
/// CSTA one or in none, as CTI vendors send them all three ways.
pub fn parse(xml: &[u8]) -> Result<Document<'_>, Error> {
    parse_with(xml, None)
}

/// Parses a document a node wrote: as [`parse`], but a CSTA message
/// without a default namespace is taken to be in `assumed` (the edition
/// the link speaks), as some nodes write their replies.
pub fn parse_in(xml: &[u8], assumed: Namespace) -> Result<Document<'_>, Error> {
    parse_with(xml, Some(assumed))
}

fn parse_with(xml: &[u8], assumed: Option<Namespace>) -> Result<Document<'_>, Error> {
    let xml = core::str::from_utf8(xml).map_err(|_| Error::NotUtf8)?;
    let (root, reader) = Reader::open(xml)?;
    let namespace = root.namespace.map(|uri| Namespace::from_uri(uri).ok_or(Error::UnknownNamespace)).transpose()?;
    if SessionMessage::is_session_name(root.name) {
        let message = Message::Session(SessionMessage::parse(root.name, reader)?);
        return Ok(Document { namespace: Namespace::AppSession, message });
    }
    let namespace = match namespace.or(assumed) {
        Some(Namespace::AppSession) => return Err(Error::UnknownMessage),
        Some(ns) => ns,
        None => return Err(Error::MissingNamespace),
    };
    let message = if SystemMessage::is_system_name(root.name) {
        Message::System(SystemMessage::parse(root.name, reader)?)
    } else if let Some(service) = Service::from_request_name(root.name) {
        Message::Request(Request::parse(service, reader)?)
    } else if let Some(service) = Service::from_response_name(root.name) {
        Message::Response(Response::parse(service, reader)?)
    } else if Event::is_event_name(root.name) {
        Message::Event(Event::parse(root.name, reader)?)
    } else if root.name == "CSTAErrorCode" {
        Message::Error(ErrorCode::parse(reader)?)
    } else {
        return Err(Error::UnknownMessage);
    };
    Ok(Document { namespace, message })
}

/// Why a CSTA document was refused. `Display` says what is wrong;
/// [`Error::error_code`] gives the CSTA error to answer a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The body is not UTF-8.
    NotUtf8,
    /// The XML is not well formed.
    Xml(xmlparser::Error),
    /// A document type declaration: refused, so no entity can be defined.
    DtdNotAllowed,
    /// No root element.
    NoRootElement,
    /// Elements nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// An end tag that does not close the element that is open.
    MismatchedTag,
    /// Text directly inside the root element.
    UnexpectedText,
    /// Content after the root element.
    TrailingContent,
    /// The document ends before its root element does.
    Truncated,
    /// An entity reference other than the five predefined ones or a
    /// character reference.
    BadReference,
    /// The root element has no namespace.
    MissingNamespace,
    /// The root element's namespace is neither ECMA-323 ed3 to ed6 nor ECMA-354.
    UnknownNamespace,
    /// A root element that is no message this gateway handles.
    UnknownMessage,
    /// A required element is missing.
    MissingElement(&'static str),
    /// An element's value is not one its type allows.
    BadValue(&'static str),
    /// A list holds more items than the gateway's fixed table.
    TooManyItems(&'static str),
}

impl Error {
    /// The CSTA error that answers a request refused for this reason.
    pub fn error_code(&self) -> ErrorCode<'static> {
        match self {
            Error::UnknownMessage => ErrorCode::SERVICE_NOT_SUPPORTED,
            Error::MissingElement(_) | Error::BadValue(_) => ErrorCode::INVALID_PARAMETER_VALUE,
            Error::TooManyItems(_) => ErrorCode::VALUE_OUT_OF_RANGE,
            _ => ErrorCode::GENERIC_OPERATION,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotUtf8 => f.write_str("CSTA body is not UTF-8"),
            Error::Xml(e) => write!(f, "malformed XML: {e}"),
            Error::DtdNotAllowed => f.write_str("document type declarations are not accepted"),
            Error::NoRootElement => f.write_str("no root element"),
            Error::TooDeep => write!(f, "elements nested deeper than {MAX_DEPTH}"),
            Error::MismatchedTag => f.write_str("end tag does not match the open element"),
            Error::UnexpectedText => f.write_str("text directly inside the root element"),
            Error::TrailingContent => f.write_str("content after the root element"),
            Error::Truncated => f.write_str("document ends inside an element"),
            Error::BadReference => f.write_str("unknown or malformed entity reference"),
            Error::MissingNamespace => f.write_str("root element has no namespace"),
            Error::UnknownNamespace => f.write_str("namespace is not ECMA-323 ed3 to ed6"),
            Error::UnknownMessage => f.write_str("not a CSTA message this gateway handles"),
            Error::MissingElement(name) => write!(f, "missing element {name}"),
            Error::BadValue(name) => write!(f, "bad value in element {name}"),
            Error::TooManyItems(name) => write!(f, "too many {name} items"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests;
