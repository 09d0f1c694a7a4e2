//! Framing SIP on a byte stream (TCP, TLS): whole messages out of whatever
//! splits the reads produce, RFC 5626 keep-alives on the side.
//!
//! [`next_frame`] is the pure function (bytes in, `Partial` or a frame and
//! its length out); [`StreamBuffer`] is the fixed receive buffer of one
//! connection that calls it.
//!
//! Framing needs only the end of the header block and Content-Length, so a
//! message that is malformed in any other way is still framed, as
//! [`Frame::Invalid`]: the gateway answers it and the connection, which a
//! Lync pool shares between many users, stays in step. Only a framing
//! fault (Content-Length missing, malformed, repeated or too large, or a
//! message larger than the buffer) is an error, after which no one can tell
//! where the next message starts: the connection must close.

use httparse::Status;

use super::grammar::{parse_digits, trim_lws};
use super::{Error, HeaderName, Message};
use crate::recvbuf::RecvBuf;

/// One item at the head of a SIP stream.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // boxing the message would allocate per frame
pub enum Frame<'a> {
    /// A whole SIP message.
    Message(Message<'a>),
    /// A keep-alive ping (CR LF CR LF, RFC 5626 §4.4.1): answer with a pong.
    Ping,
    /// A keep-alive pong (a single CR LF).
    Pong,
    /// A message that could be framed but not parsed.
    Invalid {
        /// What is wrong with it.
        error: Error,
        /// Its bytes, for logging and a best-effort error response.
        bytes: &'a [u8],
    },
}

/// Frames the item at the start of `input`: `Partial` until it is whole,
/// then the frame and how many bytes it takes.
///
/// A lone CR LF is `Partial` until the next byte says whether it is a pong
/// or the first half of a ping.
pub fn next_frame(input: &[u8], max_body: usize) -> Result<Status<(Frame<'_>, usize)>, Error> {
    match input {
        [b'\r', b'\n', b'\r', b'\n', ..] => Ok(Status::Complete((Frame::Ping, 4))),
        [b'\r', b'\n', b'\r'] | [b'\r', b'\n'] | [b'\r'] => Ok(Status::Partial),
        [b'\r', b'\n', ..] => Ok(Status::Complete((Frame::Pong, 2))),
        _ => Ok(match Message::parse_stream(input, max_body) {
            Ok(Status::Complete(message)) => {
                let len = message.len();
                Status::Complete((Frame::Message(message), len))
            }
            Ok(Status::Partial) => Status::Partial,
            Err(error) => match frame_len(input, max_body)? {
                Status::Complete(len) => Status::Complete((Frame::Invalid { error, bytes: &input[..len] }, len)),
                Status::Partial => Status::Partial,
            },
        }),
    }
}

/// The length of the message at the start of `input`, from the end of its
/// header block and its Content-Length alone, whatever else is wrong with it.
fn frame_len(input: &[u8], max_body: usize) -> Result<Status<usize>, Error> {
    let mut at = input.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(input.len());
    let mut content_length = None;
    let mut lengths = 0;
    let mut first_line = true;
    loop {
        let Some(eol) = input[at..].iter().position(|&b| b == b'\n') else {
            return Ok(Status::Partial);
        };
        let line = &input[at..at + eol];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += eol + 1;
        if line.is_empty() {
            break;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if core::mem::take(&mut first_line) || continuation {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = core::str::from_utf8(&line[..colon]).unwrap_or("").trim_end_matches([' ', '\t']);
        if HeaderName::classify(name) == HeaderName::ContentLength {
            lengths += 1;
            content_length.get_or_insert(&line[colon + 1..]);
        }
    }
    // Judged only once the header block is whole, so that how the bytes
    // were split across reads can never change the verdict.
    if lengths > 1 {
        return Err(Error::DuplicateHeader("Content-Length"));
    }
    let value = content_length.ok_or(Error::MissingContentLength)?;
    let declared = core::str::from_utf8(value)
        .ok()
        .and_then(|v| parse_digits(trim_lws(v)))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Error::BadContentLength)?;
    if declared > max_body {
        return Err(Error::BodyTooLarge { declared, max: max_body });
    }
    let end = at.checked_add(declared).ok_or(Error::BadContentLength)?;
    Ok(if input.len() >= end { Status::Complete(end) } else { Status::Partial })
}

/// The receive buffer of one stream connection, `N` bytes; a message that
/// cannot fit is [`Error::MessageTooLarge`].
///
/// ```
/// use ctigw::sip::{Frame, StreamBuffer};
///
/// let mut conn = StreamBuffer::<4096>::new();
/// // Whatever the reads return: here a ping and half a message...
/// conn.push(b"\r\n\r\nOPTIONS sip:gw SIP/2.0\r\nContent-Le");
/// assert!(matches!(conn.next(1024)?, Some(Frame::Ping)));
/// assert!(conn.next(1024)?.is_none());
/// // ...and the rest.
/// conn.push(b"ngth: 0\r\n\r\n");
/// let Some(Frame::Message(m)) = conn.next(1024)? else { panic!() };
/// assert_eq!(m.request_uri(), Some("sip:gw"));
/// # Ok::<(), ctigw::sip::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct StreamBuffer<const N: usize> {
    buf: RecvBuf<N>,
    /// Pending bytes already searched for the end of a header block, or
    /// the length a message with a complete header block needs: parsing
    /// waits until there is more than that, so a message sent a byte at a
    /// time costs linear, not quadratic, time.
    wait_until: usize,
    header_complete: bool,
    /// Times the pending bytes were parsed (what the tests count).
    #[cfg(test)]
    parses: usize,
}

impl<const N: usize> StreamBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        StreamBuffer {
            buf: RecvBuf::new(),
            wait_until: 0,
            header_complete: false,
            #[cfg(test)]
            parses: 0,
        }
    }

    /// Bytes received but not yet framed.
    pub fn pending(&self) -> &[u8] {
        self.buf.pending()
    }

    /// Room to read into; hand the count read to [`StreamBuffer::filled`].
    /// Empty when a partial message fills the whole buffer.
    pub fn spare(&mut self) -> &mut [u8] {
        self.buf.spare()
    }

    /// Records that `n` bytes were read into [`StreamBuffer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.buf.filled(n)
    }

    /// Copies as much of `bytes` as fits; returns how much that was.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.buf.push(bytes)
    }

    /// The next whole frame, consumed from the buffer; `None` until more
    /// bytes arrive. A message that could never fit is an error.
    pub fn next(&mut self, max_body: usize) -> Result<Option<Frame<'_>>, Error> {
        let full = self.buf.is_full();
        let pending_len = self.buf.pending().len();
        // Nothing new that could complete the frame: do not parse again.
        let worth_parsing = if self.header_complete {
            pending_len >= self.wait_until
        } else {
            // A keep-alive (CR LF) at the head is a frame of its own; a
            // message needs the blank line that ends its header block,
            // searched for in what came since the last search, never in
            // the empty lines before the start line.
            let pending = self.buf.pending();
            let leading = pending.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(pending_len);
            let from = self.wait_until.saturating_sub(3).max(leading);
            pending_len <= 4 || pending[0] == b'\r' || blank_line_end(&pending[from..]).is_some()
        };
        if !worth_parsing {
            if !self.header_complete {
                self.wait_until = pending_len; // searched up to here
            }
            return if full { Err(Error::MessageTooLarge) } else { Ok(None) };
        }
        #[cfg(test)]
        {
            self.parses += 1;
        }
        let (pending, consume) = self.buf.split();
        match next_frame(pending, max_body)? {
            Status::Complete((frame, len)) => {
                consume.consume(len);
                self.wait_until = 0;
                self.header_complete = false;
                Ok(Some(frame))
            }
            Status::Partial if full => Err(Error::MessageTooLarge),
            Status::Partial => {
                match frame_len(pending, max_body) {
                    // The header block is complete: wait for the body.
                    Ok(Status::Partial) if header_end(pending).is_some() => {
                        self.header_complete = true;
                        self.wait_until = needed_len(pending).unwrap_or(pending_len + 1);
                    }
                    _ => {
                        self.header_complete = false;
                        self.wait_until = pending_len;
                    }
                }
                Ok(None)
            }
        }
    }
}

/// Where the first blank line in `bytes` ends: a line end (`\n`)
/// followed by an empty line, `\n` or `\r\n`, as the header parsers see
/// it (so `\r\n\r\n`, `\n\n` and mixed endings alike).
fn blank_line_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&b| b == b'\n') {
        let at = from + i;
        match bytes.get(at + 1..) {
            Some([b'\n', ..]) => return Some(at + 2),
            Some([b'\r', b'\n', ..]) => return Some(at + 3),
            _ => from = at + 1,
        }
    }
    None
}

/// Where the header block of the message at the start of `bytes` ends:
/// after the keep-alive line ends before it, at its first blank line.
fn header_end(bytes: &[u8]) -> Option<usize> {
    let skip = bytes.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(bytes.len());
    blank_line_end(&bytes[skip..]).map(|end| skip + end)
}

/// The total length a message whose header block is complete needs.
fn needed_len(bytes: &[u8]) -> Option<usize> {
    let head = header_end(bytes)?;
    let block = core::str::from_utf8(&bytes[..head]).ok()?;
    let value = block.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (HeaderName::classify(name.trim_end()) == HeaderName::ContentLength).then_some(value)
    })?;
    let declared = usize::try_from(parse_digits(trim_lws(value))?).ok()?;
    head.checked_add(declared)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &[u8] = b"INFO sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 4\r\n\r\nbody";

    fn kinds<const N: usize>(buf: &mut StreamBuffer<N>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(frame) = buf.next(100).unwrap() {
            out.push(match frame {
                Frame::Message(m) => format!("msg:{}", String::from_utf8_lossy(m.body())),
                Frame::Ping => "ping".into(),
                Frame::Pong => "pong".into(),
                Frame::Invalid { error, .. } => format!("invalid:{error}"),
            });
        }
        out
    }

    #[test]
    fn keep_alives_between_messages() {
        let mut buf = StreamBuffer::<256>::new();
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(INFO);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(INFO);
        buf.push(&input);
        assert_eq!(kinds(&mut buf), ["ping", "msg:body", "pong", "msg:body"]);
        assert!(buf.pending().is_empty());
    }

    #[test]
    fn lone_crlf_waits_for_the_next_byte() {
        let mut buf = StreamBuffer::<256>::new();
        buf.push(b"\r\n");
        assert!(buf.next(100).unwrap().is_none());
        buf.push(b"\r");
        assert!(buf.next(100).unwrap().is_none());
        buf.push(b"\n");
        assert!(matches!(buf.next(100).unwrap(), Some(Frame::Ping)));
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut buf = StreamBuffer::<256>::new();
        let mut got = Vec::new();
        for chunk in INFO.repeat(3).chunks(1) {
            buf.push(chunk);
            while let Some(frame) = buf.next(100).unwrap() {
                let Frame::Message(m) = frame else { panic!("unexpected frame {frame:?}") };
                got.push(m.len());
            }
        }
        assert_eq!(got, [INFO.len(); 3]);
    }

    /// Found by the sip_stream fuzzer (600 runs a second): every read
    /// re-parsed the whole pending message, so a message trickled a byte
    /// at a time cost quadratic time. Parsing now waits for a blank line,
    /// then for the whole body: a few parses per message, not one per byte.
    #[test]
    fn fuzz_regression_trickled_bytes_are_not_parsed_again_and_again() {
        let mut message = b"INFO sip:a@b SIP/2.0\r\nCall-ID: x\r\n".to_vec();
        for i in 0..50 {
            message.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(100)).as_bytes());
        }
        message.extend_from_slice(b"Content-Length: 3000\r\n\r\n");
        message.extend(std::iter::repeat_n(b'x', 3000));
        let mut buf = StreamBuffer::<16384>::new();
        let mut frames = 0;
        for &b in &message {
            buf.push(&[b]);
            if let Some(Frame::Message(m)) = buf.next(4096).unwrap() {
                assert_eq!(m.len(), message.len());
                frames += 1;
            }
        }
        assert_eq!(frames, 1);
        // 8.4 KB fed one byte at a time: parsed at its first bytes, once
        // the header block is complete, and once the body is there.
        assert!(buf.parses <= 8, "{} parses for one trickled message", buf.parses);
    }

    /// Found by the sip_stream fuzzer: after an invalid frame, a pong (CR
    /// LF) left at the head of a large read waited for a blank line that
    /// never came, while the same bytes in small reads were framed.
    #[test]
    fn fuzz_regression_a_pong_after_a_frame_in_one_read() {
        let mut input = b"OPTIONS <sip:bad> SIP/2.0\r\nl: 0\r\n\r\n".to_vec();
        input.extend_from_slice(b"\r\nINVITE sip:a@b SIP/2.0\r\nTo: x\r\n");
        let mut whole = StreamBuffer::<512>::new();
        whole.push(&input);
        assert!(matches!(whole.next(100).unwrap(), Some(Frame::Invalid { .. })));
        assert!(matches!(whole.next(100).unwrap(), Some(Frame::Pong)));
        assert!(whole.next(100).unwrap().is_none());
    }

    /// Found by the sip_stream fuzzer: a repeated Content-Length was an
    /// error as soon as its second line arrived when the bytes came in
    /// small reads, but not in one read, which waits for the blank line.
    #[test]
    fn fuzz_regression_a_repeated_content_length_is_judged_on_the_whole_header_block() {
        let input = b"INFO sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\nX: y\r\n";
        let mut whole = StreamBuffer::<512>::new();
        whole.push(input);
        assert!(whole.next(100).unwrap().is_none());
        let mut split = StreamBuffer::<512>::new();
        for b in input {
            split.push(&[*b]);
            assert!(split.next(100).unwrap().is_none());
        }
        split.push(b"\r\n");
        assert_eq!(split.next(100).unwrap_err(), Error::DuplicateHeader("Content-Length"));
    }

    /// Found by the sip_stream fuzzer: a header block ended by a bare LF
    /// and then CR LF (`\n\r\n`) is complete for the parsers but was not
    /// seen as complete by the search for its end, and empty lines before
    /// a start line were taken for one; whole and split reads disagreed.
    #[test]
    fn fuzz_regression_mixed_line_ends_and_leading_empty_lines() {
        let input = b"\n\n\n\nINFO sip:a@b SIP/2.0\nCall-ID: x\nl: 1x\n\r\nrest";
        let whole = {
            let mut b = StreamBuffer::<512>::new();
            b.push(input);
            b.next(100).map(|f| f.is_some())
        };
        let split = {
            let mut b = StreamBuffer::<512>::new();
            let mut result = Ok(false);
            for byte in input {
                b.push(&[*byte]);
                result = b.next(100).map(|f| f.is_some());
                if result.is_err() {
                    break;
                }
            }
            result
        };
        assert_eq!(whole, Err(Error::BadContentLength));
        assert_eq!(split, whole);
    }

    #[test]
    fn a_message_larger_than_the_buffer_is_an_error() {
        let mut buf = StreamBuffer::<32>::new();
        assert_eq!(buf.push(INFO), 32);
        assert_eq!(buf.next(100).unwrap_err(), Error::MessageTooLarge);
        assert!(buf.spare().is_empty());
    }

    #[test]
    fn a_malformed_message_is_framed_and_the_stream_stays_in_step() {
        let mut buf = StreamBuffer::<512>::new();
        buf.push(b"INVITE <sip:a@b> SIP/2.0\r\nl: 4\r\n\r\nbody");
        buf.push(b"INFO sip:a@b SIP/2.0\r\nFrom : x\r\nBroken header\r\nContent-Length: 3\r\n\r\nabc");
        buf.push(INFO);
        assert_eq!(
            kinds(&mut buf),
            [
                "invalid:Malformed start line: Request-URI in angle brackets",
                "invalid:Malformed header line",
                "msg:body"
            ]
        );
    }

    #[test]
    fn stream_errors_are_reported() {
        let mut buf = StreamBuffer::<256>::new();
        buf.push(b"INFO sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n");
        assert_eq!(buf.next(100).unwrap_err(), Error::MissingContentLength);
        let mut buf = StreamBuffer::<256>::new();
        buf.push(b"INFO sip:a@b SIP/2.0\r\nl: -4\r\n\r\n");
        assert_eq!(buf.next(100).unwrap_err(), Error::BadContentLength);
        let mut buf = StreamBuffer::<256>::new();
        buf.push(b"INFO sip:a@b SIP/2.0\r\nl: 4000\r\n\r\n");
        assert_eq!(buf.next(100).unwrap_err(), Error::BodyTooLarge { declared: 4000, max: 100 });
    }
}
