//! What can be wrong with a SIP message, as values the gateway turns into a
//! status code and a reason phrase.

use core::fmt;

/// Why a SIP message was refused. `Display` gives the reason phrase the
/// gateway puts into its error response, e.g. `Missing Call-ID header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The input ends inside the start line or the header block.
    Truncated,
    /// The request or status line is malformed; the text says how.
    BadStartLine(&'static str),
    /// A SIP version other than 2.0.
    UnsupportedVersion,
    /// A header line that is not `name: value` (bad name or value bytes).
    BadHeaderLine,
    /// More headers than the parser's fixed table holds.
    TooManyHeaders,
    /// A header the message must carry is absent.
    MissingHeader(&'static str),
    /// A header that may appear once appears more than once.
    DuplicateHeader(&'static str),
    /// A header's value does not follow its grammar.
    BadHeader(&'static str),
    /// A header's value is not UTF-8.
    NotUtf8(&'static str),
    /// Content-Length is negative, not a number, or too large to represent.
    BadContentLength,
    /// A message on a stream has no Content-Length (RFC 3261 §18.3).
    MissingContentLength,
    /// Content-Length announces more bytes than the datagram carries.
    BodyTruncated {
        /// What Content-Length says.
        declared: usize,
        /// What is actually there.
        available: usize,
    },
    /// The body is larger than the configured maximum.
    BodyTooLarge {
        /// What Content-Length says.
        declared: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The message is larger than the receive buffer.
    MessageTooLarge,
    /// The CSeq method differs from the request method.
    CSeqMethodMismatch,
}

impl Error {
    /// The SIP status code that answers a request refused for this reason.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::UnsupportedVersion => 505,
            Error::BodyTooLarge { .. } | Error::MessageTooLarge => 513,
            _ => 400,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("Message truncated"),
            Error::BadStartLine(what) => write!(f, "Malformed start line: {what}"),
            Error::UnsupportedVersion => f.write_str("Version Not Supported"),
            Error::BadHeaderLine => f.write_str("Malformed header line"),
            Error::TooManyHeaders => f.write_str("Too many headers"),
            Error::MissingHeader(name) => write!(f, "Missing {name} header"),
            Error::DuplicateHeader(name) => write!(f, "Duplicate {name} header"),
            Error::BadHeader(name) => write!(f, "Malformed {name} header"),
            Error::NotUtf8(name) => write!(f, "{name} header is not UTF-8"),
            Error::BadContentLength => f.write_str("Bad Content-Length"),
            Error::MissingContentLength => f.write_str("Missing Content-Length on a stream"),
            Error::BodyTruncated { declared, available } => {
                write!(f, "Content-Length {declared} exceeds the {available} body bytes received")
            }
            Error::BodyTooLarge { declared, max } => {
                write!(f, "Content-Length {declared} exceeds the maximum of {max}")
            }
            Error::MessageTooLarge => f.write_str("Message Too Large"),
            Error::CSeqMethodMismatch => f.write_str("CSeq method does not match the request method"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn reason_phrases_say_what_is_wrong() {
        assert_eq!(Error::MissingHeader("Call-ID").to_string(), "Missing Call-ID header");
        assert_eq!(Error::BadContentLength.to_string(), "Bad Content-Length");
        assert_eq!(
            Error::BodyTooLarge { declared: 70000, max: 8192 }.to_string(),
            "Content-Length 70000 exceeds the maximum of 8192"
        );
        assert_eq!(Error::UnsupportedVersion.status_code(), 505);
        assert_eq!(Error::MessageTooLarge.status_code(), 513);
        assert_eq!(Error::BadHeader("CSeq").status_code(), 400);
    }
}
