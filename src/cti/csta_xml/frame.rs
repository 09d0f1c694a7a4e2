//! The CTI link's framing: an 8-byte header before each CSTA XML document,
//! as in the CSTA-over-TCP transport of Avaya AES and OpenScape Voice.
//!
//! ```text
//! bytes 0-1  0x00 0x00
//! bytes 2-3  total length, header included, big-endian u16
//! bytes 4-7  invoke id, four ASCII digits "0000".."9999" (events: 9999)
//! bytes 8..  the XML document
//! ```
//!
//! Some vendors read bytes 0-3 as one 32-bit length; with bytes 0-1 zero
//! the two readings agree, and a frame claiming more than 16 bits of
//! length is refused either way.

use core::fmt;

use httparse::Status;

use crate::outbuf::{OutBuf, Overflow};

/// Bytes before the XML document.
pub const HEADER_LEN: usize = 8;
/// The largest frame the 16-bit length field can describe.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// An invoke id: `0000` to `9998` for requests and their responses,
/// `9999` for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvokeId(u16);

impl InvokeId {
    /// The id events carry.
    pub const EVENT: InvokeId = InvokeId(9999);
    /// The highest id a request may use.
    pub const MAX_REQUEST: u16 = 9998;

    /// An invoke id, if `n` has at most four digits.
    pub fn new(n: u16) -> Option<InvokeId> {
        (n <= 9999).then_some(InvokeId(n))
    }

    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// True for the id of events.
    pub fn is_event(self) -> bool {
        self == InvokeId::EVENT
    }

    /// The next request id after this one, wrapping from 9998 to 0000.
    pub fn next_request(self) -> InvokeId {
        InvokeId(if self.0 >= Self::MAX_REQUEST { 0 } else { self.0 + 1 })
    }
}

impl fmt::Display for InvokeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// One frame, its document borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The invoke id of the header.
    pub invoke_id: InvokeId,
    /// The XML document.
    pub body: &'a [u8],
}

/// Why the bytes on a link are not a frame. Every one of these drops the
/// link: after it nobody can tell where the next frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes 0-1 are not zero.
    BadPrefix,
    /// The length field is smaller than the header.
    LengthTooShort(usize),
    /// The frame is longer than the link accepts.
    TooLong {
        /// What the length field says.
        len: usize,
        /// The most the link accepts.
        max: usize,
    },
    /// Bytes 4-7 are not four ASCII digits.
    BadInvokeId,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadPrefix => f.write_str("frame header does not start with two zero bytes"),
            FrameError::LengthTooShort(len) => write!(f, "frame length {len} is shorter than its header"),
            FrameError::TooLong { len, max } => write!(f, "frame length {len} exceeds the maximum of {max}"),
            FrameError::BadInvokeId => f.write_str("frame invoke id is not four ASCII digits"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Takes the frame at the start of `input`: `Partial` until it is whole.
/// The header is checked as soon as its 8 bytes are there, so a garbled
/// or over-long frame is refused without waiting for its body.
pub fn decode(input: &[u8], max_len: usize) -> Result<Status<(Frame<'_>, usize)>, FrameError> {
    let Some(header) = input.get(..HEADER_LEN) else { return Ok(Status::Partial) };
    if header[0] != 0 || header[1] != 0 {
        return Err(FrameError::BadPrefix);
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if len < HEADER_LEN {
        return Err(FrameError::LengthTooShort(len));
    }
    if len > max_len {
        return Err(FrameError::TooLong { len, max: max_len });
    }
    let digits = &header[4..8];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::BadInvokeId);
    }
    let id = digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let Some(body) = input.get(HEADER_LEN..len) else { return Ok(Status::Partial) };
    Ok(Status::Complete((Frame { invoke_id: InvokeId(id), body }, len)))
}

/// Appends one frame: the header, then the document `write_body` writes
/// in place, then the length filled in. A document that makes the frame
/// longer than [`MAX_FRAME_LEN`] is [`Overflow`] and leaves nothing behind.
pub fn encode(
    out: &mut OutBuf<'_>,
    invoke_id: InvokeId,
    write_body: impl FnOnce(&mut OutBuf<'_>) -> Result<(), Overflow>,
) -> Result<usize, Overflow> {
    let start = out.len();
    let result = (|| {
        out.put(&[0, 0, 0, 0])?;
        let mut digits = [0u8; 4];
        let mut n = invoke_id.0;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.put(&digits)?;
        write_body(out)?;
        let len = u16::try_from(out.len() - start).map_err(|_| Overflow)?;
        out.patch(start + 2, &len.to_be_bytes())?;
        Ok(usize::from(len))
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u16, body: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 70_000];
        let mut out = OutBuf::new(&mut buf);
        encode(&mut out, InvokeId::new(id).unwrap(), |o| o.put(body)).unwrap();
        out.as_bytes().to_vec()
    }

    #[test]
    fn header_layout_matches_the_vendor_captures() {
        // The Go client capture: 0x01A7 = 423 = 415 bytes of XML + 8.
        let body = vec![b'x'; 415];
        let bytes = frame(1, &body);
        assert_eq!(&bytes[..8], b"\x00\x00\x01\xa70001");
        let Status::Complete((f, used)) = decode(&bytes, MAX_FRAME_LEN).unwrap() else { panic!() };
        assert_eq!((f.invoke_id.get(), f.body, used), (1, &body[..], 423));
        assert_eq!(frame(9999, b"<e/>")[4..8], *b"9999");
    }

    #[test]
    fn partial_until_whole_and_several_in_one_read() {
        let mut stream = frame(12, b"<a/>");
        stream.extend(frame(9999, b"<event/>"));
        for cut in 0..12 {
            assert!(decode(&stream[..cut], 1024).unwrap().is_partial(), "{cut}");
        }
        let Status::Complete((first, n)) = decode(&stream, 1024).unwrap() else { panic!() };
        assert_eq!((first.invoke_id.get(), first.body), (12, &b"<a/>"[..]));
        let Status::Complete((second, _)) = decode(&stream[n..], 1024).unwrap() else { panic!() };
        assert!(second.invoke_id.is_event());
    }

    #[test]
    fn garbled_headers_are_refused_at_once() {
        assert_eq!(decode(b"\x01\x00\x00\x100001", 1024).unwrap_err(), FrameError::BadPrefix);
        assert_eq!(decode(b"\x00\x00\x00\x050001", 1024).unwrap_err(), FrameError::LengthTooShort(5));
        assert_eq!(decode(b"\x00\x00\x10\x000001", 1024).unwrap_err(), FrameError::TooLong { len: 4096, max: 1024 });
        assert_eq!(decode(b"\x00\x00\x00\x1000a1", 1024).unwrap_err(), FrameError::BadInvokeId);
        // An empty document is a well-formed frame; what it says is the
        // CSTA parser's business.
        assert!(decode(b"\x00\x00\x00\x080001", 1024).unwrap().is_complete());
    }

    #[test]
    fn oversized_documents_are_refused_without_a_trace() {
        let mut buf = vec![0u8; 70_000];
        let mut out = OutBuf::new(&mut buf);
        out.put(b"kept").unwrap();
        let big = vec![b'x'; MAX_FRAME_LEN];
        assert_eq!(encode(&mut out, InvokeId::EVENT, |o| o.put(&big)), Err(Overflow));
        assert_eq!(out.as_bytes(), b"kept");
        let mut small = [0u8; 10];
        let mut out = OutBuf::new(&mut small);
        assert_eq!(encode(&mut out, InvokeId::EVENT, |o| o.put(b"<toolong/>")), Err(Overflow));
        assert!(out.is_empty());
    }

    #[test]
    fn invoke_ids_wrap_below_the_event_id() {
        assert_eq!(InvokeId::new(9998).unwrap().next_request().get(), 0);
        assert_eq!(InvokeId::new(41).unwrap().next_request().get(), 42);
        assert_eq!(InvokeId::new(10000), None);
        assert_eq!(InvokeId::new(7).unwrap().to_string(), "0007");
    }
}
