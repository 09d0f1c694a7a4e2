//! Writing SIP messages into a caller-provided buffer.
//!
//! [`MessageWriter`] writes a start line, headers and a body with a correct
//! Content-Length; the body is written in place after the headers (a CSTA
//! encoder writes straight into the message) and the length is filled in
//! afterwards. [`MessageWriter::response_to`] and
//! [`MessageWriter::in_dialog`] build the two kinds of message a
//! gateway sends. Running out of room is [`Overflow`], never a panic or a
//! truncated message.

use core::fmt::{self, Write as _};
use core::net::{IpAddr, SocketAddr};

use super::{HeaderName, Message, Method};
use crate::outbuf::{OutBuf, Overflow};

/// Most digits Content-Length may need: bodies stay below 100 000 bytes.
const MAX_LENGTH_DIGITS: usize = 5;

/// A SIP message being written.
#[derive(Debug)]
pub struct MessageWriter<'b> {
    out: OutBuf<'b>,
}

/// What the gateway needs to write a request inside a dialog (RFC 3261
/// §12.2.1.1): the Request-URI and route set as the dialog computed them,
/// both tags, its own CSeq and a fresh branch.
#[derive(Debug, Clone, Copy)]
pub struct DialogRequest<'d> {
    /// INFO, BYE, ...
    pub method: Method<'d>,
    /// The remote target (or the first route, for a strict router).
    pub request_uri: &'d str,
    /// The route set as one Route header value (its name-addrs as they
    /// appeared in Record-Route, comma-separated), in pieces written one
    /// after the other; no Route header when they are all empty.
    pub route_set: &'d [&'d str],
    /// Transport for the Via: `UDP`, `TCP`, `TLS`.
    pub via_transport: &'d str,
    /// The gateway's sent-by: `host` or `host:port`.
    pub via_sent_by: &'d str,
    /// The branch of this client transaction (starting with `z9hG4bK`).
    pub branch: &'d str,
    /// The gateway's URI (From).
    pub local_uri: &'d str,
    /// The gateway's tag.
    pub local_tag: &'d str,
    /// The peer's URI (To).
    pub remote_uri: &'d str,
    /// The peer's tag.
    pub remote_tag: &'d str,
    /// The dialog's Call-ID.
    pub call_id: &'d str,
    /// The gateway's next CSeq number in this dialog.
    pub cseq: u32,
    /// The gateway's Contact URI.
    pub contact: &'d str,
}

impl<'b> MessageWriter<'b> {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(buf: &'b mut [u8], method: Method<'_>, uri: &str) -> Result<Self, Overflow> {
        let mut out = OutBuf::new(buf);
        out.put_str(method.as_str())?;
        out.put_byte(b' ')?;
        out.put_str(uri)?;
        out.put(b" SIP/2.0\r\n")?;
        Ok(MessageWriter { out })
    }

    /// Starts a response: `SIP/2.0 code reason`. CR and LF in the reason
    /// are written as spaces.
    pub fn response(buf: &'b mut [u8], code: u16, reason: impl fmt::Display) -> Result<Self, Overflow> {
        let mut out = OutBuf::new(buf);
        out.put(b"SIP/2.0 ")?;
        out.put_decimal(u64::from(code))?;
        out.put_byte(b' ')?;
        write!(SingleLine(&mut out), "{reason}").map_err(|_| Overflow)?;
        out.put(b"\r\n")?;
        Ok(MessageWriter { out })
    }

    /// Starts a response to `request` (RFC 3261 §8.2.6): every Via in
    /// order, From, To, Call-ID and CSeq copied; `to_tag` added to To when
    /// the request's To has no tag. When `source` (where the request came
    /// from) is given, the top Via gets `received` if its sent-by is not
    /// that address (§18.2.1) and a requested `rport` is filled in (RFC 3581).
    pub fn response_to(
        buf: &'b mut [u8],
        request: &Message<'_>,
        code: u16,
        reason: impl fmt::Display,
        to_tag: Option<&str>,
        source: Option<SocketAddr>,
    ) -> Result<Self, Overflow> {
        let mut w = Self::response(buf, code, reason)?;
        // Parsed once: the top Via to rewrite, and whether To has a tag.
        let mut top_via = source.and_then(|source| request.via().ok().map(|via| (via, source)));
        let add_to_tag = to_tag.filter(|_| !request.to().is_ok_and(|to| to.tag().is_some()));
        for header in request.headers() {
            match header.kind {
                HeaderName::Via => {
                    w.out.put(b"Via: ")?;
                    match top_via.take() {
                        // The top Via's first element is rewritten; any
                        // further elements on the same line are copied.
                        Some((via, source)) => {
                            write_via_with_source(&mut w.out, &via, source)?;
                            put_single_line(&mut w.out, &header.value[first_element_end(header.value)..])?;
                        }
                        None => put_single_line(&mut w.out, header.value)?,
                    }
                    w.out.put(b"\r\n")?;
                }
                HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    w.header_bytes(header.kind.as_str(), header.value)?;
                }
                HeaderName::To => {
                    w.out.put(b"To: ")?;
                    put_single_line(&mut w.out, header.value)?;
                    if let Some(tag) = add_to_tag {
                        w.out.put(b";tag=")?;
                        w.out.put_str(tag)?;
                    }
                    w.out.put(b"\r\n")?;
                }
                _ => {}
            }
        }
        Ok(w)
    }

    /// Starts a request inside a dialog: Request-URI, Via, Route set,
    /// Max-Forwards, From/To with both tags, Call-ID, CSeq and Contact.
    pub fn in_dialog(buf: &'b mut [u8], d: &DialogRequest<'_>) -> Result<Self, Overflow> {
        let mut w = Self::request(buf, d.method, d.request_uri)?;
        let out = &mut w.out;
        write!(out, "Via: SIP/2.0/{} {};branch={}\r\n", d.via_transport, d.via_sent_by, d.branch)
            .map_err(|_| Overflow)?;
        if d.route_set.iter().any(|piece| !piece.is_empty()) {
            out.put_str("Route: ")?;
            for piece in d.route_set {
                out.put_str(piece)?;
            }
            out.put_str("\r\n")?;
        }
        write!(out, "Max-Forwards: 70\r\nFrom: <{}>;tag={}\r\n", d.local_uri, d.local_tag).map_err(|_| Overflow)?;
        write!(out, "To: <{}>;tag={}\r\nCall-ID: {}\r\n", d.remote_uri, d.remote_tag, d.call_id)
            .map_err(|_| Overflow)?;
        write!(out, "CSeq: {} {}\r\nContact: <{}>\r\n", d.cseq, d.method.as_str(), d.contact).map_err(|_| Overflow)?;
        Ok(w)
    }

    /// Adds `Name: value`.
    pub fn header(&mut self, name: &str, value: &str) -> Result<&mut Self, Overflow> {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds `Name: value` from raw bytes; CR and LF of a folded value are
    /// written as spaces.
    pub fn header_bytes(&mut self, name: &str, value: &[u8]) -> Result<&mut Self, Overflow> {
        self.out.put_str(name)?;
        self.out.put(b": ")?;
        put_single_line(&mut self.out, value)?;
        self.out.put(b"\r\n")?;
        Ok(self)
    }

    /// Adds `Name: value` where the value is formatted.
    pub fn header_fmt(&mut self, name: &str, value: impl fmt::Display) -> Result<&mut Self, Overflow> {
        self.out.put_str(name)?;
        self.out.put(b": ")?;
        write!(SingleLine(&mut self.out), "{value}").map_err(|_| Overflow)?;
        self.out.put(b"\r\n")?;
        Ok(self)
    }

    /// Ends the headers with `Content-Length: 0`; returns the message.
    pub fn finish(mut self) -> Result<&'b [u8], Overflow> {
        self.out.put(b"Content-Length: 0\r\n\r\n")?;
        Ok(self.out.into_bytes())
    }

    /// Adds Content-Type, lets `write_body` write the body in place, then
    /// fills in Content-Length; returns the message.
    pub fn finish_with_body(
        mut self,
        content_type: &str,
        write_body: impl FnOnce(&mut OutBuf<'b>) -> Result<(), Overflow>,
    ) -> Result<&'b [u8], Overflow> {
        let out = &mut self.out;
        out.put(b"Content-Type: ")?;
        out.put_str(content_type)?;
        out.put(b"\r\nContent-Length: ")?;
        // Reserve as few digits as can hold any body that fits the room
        // left, so a buffer the finished message fills exactly suffices.
        let room = out.remaining();
        let reserved = (1..MAX_LENGTH_DIGITS)
            .find(|&d| decimal_digits(room.saturating_sub(d + 4)) <= d)
            .unwrap_or(MAX_LENGTH_DIGITS);
        let length_at = out.reserve(reserved)?;
        out.put(b"\r\n\r\n")?;
        let body_at = out.len();
        write_body(out)?;
        let body_len = out.len() - body_at;
        let mut digits = [0u8; 20];
        let first = crate::outbuf::format_decimal(body_len as u64, &mut digits);
        let digits = &digits[first..];
        if digits.len() > reserved {
            return Err(Overflow);
        }
        out.patch(length_at, digits)?;
        out.remove(length_at + digits.len(), reserved - digits.len())?;
        Ok(self.out.into_bytes())
    }
}

/// Writes a Via element with `received` and `rport` set from the address
/// the request came from.
fn write_via_with_source(out: &mut OutBuf<'_>, via: &super::Via<'_>, source: SocketAddr) -> Result<(), Overflow> {
    write!(out, "SIP/2.0/{} {}", via.transport, via.host).map_err(|_| Overflow)?;
    if let Some(port) = via.port {
        write!(out, ":{port}").map_err(|_| Overflow)?;
    }
    let rport_asked = via.rport().is_some();
    // With rport, received is written whatever the sent-by (RFC 3581).
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    let sent_by_is_source = !rport_asked && host.parse::<IpAddr>().is_ok_and(|ip| ip == source.ip());
    for (name, value) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            write!(out, ";rport={}", source.port()).map_err(|_| Overflow)?;
            continue;
        }
        out.put_byte(b';')?;
        out.put_str(name)?;
        if let Some(value) = value {
            out.put_byte(b'=')?;
            put_single_line(out, value.as_bytes())?;
        }
    }
    if !sent_by_is_source {
        write!(out, ";received={}", source.ip()).map_err(|_| Overflow)?;
    }
    Ok(())
}

fn decimal_digits(n: usize) -> usize {
    let mut digits = 1;
    let mut n = n / 10;
    while n > 0 {
        digits += 1;
        n /= 10;
    }
    digits
}

/// Where the first comma-separated element of a Via value ends.
fn first_element_end(value: &[u8]) -> usize {
    let text = core::str::from_utf8(value).unwrap_or("");
    match super::grammar::ListItems::new(text).next() {
        Some(first) => first.as_ptr() as usize - text.as_ptr() as usize + first.len(),
        None => value.len(),
    }
}

/// Copies header bytes with the CR and LF of folded lines turned into spaces.
fn put_single_line(out: &mut OutBuf<'_>, value: &[u8]) -> Result<(), Overflow> {
    let mut rest = value;
    while let Some(i) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        out.put(&rest[..i])?;
        out.put_byte(b' ')?;
        rest = &rest[i + 1..];
    }
    out.put(rest)
}

/// A `fmt::Write` adapter that keeps formatted text on one line.
struct SingleLine<'o, 'b>(&'o mut OutBuf<'b>);

impl fmt::Write for SingleLine<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        put_single_line(self.0, s.as_bytes()).map_err(|_| fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &[u8] = b"INFO sip:ctigw@gw.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK99;rport\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK98\r\n\
f: <sip:alice@example.com>\r\n ;tag=1a2b3c\r\n\
t: <sip:ctigw@gw.example.com>\r\n\
i: compact-1@192.0.2.10\r\n\
cseq: 5\r\n\tINFO\r\n\
X-Other: dropped\r\n\
l: 0\r\n\r\n";

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let req = Message::parse(INFO).unwrap();
        let mut buf = [0u8; 1024];
        let source: SocketAddr = "192.0.2.10:40000".parse().unwrap();
        let w = MessageWriter::response_to(&mut buf, &req, 200, "OK", Some("gw77"), Some(source)).unwrap();
        let out = w.finish().unwrap();
        let text = core::str::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK99;rport=40000;received=192.0.2.10\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK98\r\n\
From: <sip:alice@example.com>   ;tag=1a2b3c\r\n\
To: <sip:ctigw@gw.example.com>;tag=gw77\r\n\
Call-ID: compact-1@192.0.2.10\r\n\
CSeq: 5  \tINFO\r\n\
Content-Length: 0\r\n\r\n"
        );
        let resp = Message::parse(out).unwrap();
        assert_eq!(resp.to().unwrap().tag(), Some("gw77"));
        assert_eq!(resp.from().unwrap().tag(), Some("1a2b3c"));
        assert_eq!(resp.cseq().unwrap().number, 5);
        resp.check_response().unwrap();
    }

    #[test]
    fn existing_to_tag_is_kept_and_received_only_when_needed() {
        let req = Message::parse(
            b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=old\r\n\r\n",
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let source = "192.0.2.10:5060".parse().unwrap();
        let out = MessageWriter::response_to(
            &mut buf,
            &req,
            481,
            "Call/Transaction Does Not Exist",
            Some("new"),
            Some(source),
        )
        .unwrap()
        .finish()
        .unwrap();
        let text = core::str::from_utf8(out).unwrap();
        assert!(text.contains("Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK1\r\n"), "{text}");
        assert!(text.contains("To: <sip:a@b>;tag=old\r\n"), "{text}");
        assert!(!text.contains("new"));
    }

    #[test]
    fn body_gets_exact_content_length() {
        for body_len in [0usize, 1, 9, 10, 99, 100, 999, 1000, 5000] {
            let mut buf = vec![0u8; 8192];
            let body = "x".repeat(body_len);
            let w = MessageWriter::request(&mut buf, Method::Info, "sip:a@b").unwrap();
            let out = w.finish_with_body("application/csta+xml", |o| o.put_str(&body)).unwrap();
            let m = Message::parse(out).unwrap();
            assert_eq!(m.content_length().unwrap(), Some(body_len));
            assert_eq!(m.body(), body.as_bytes());
            assert_eq!(m.len(), out.len());
            assert!(out.ends_with(body.as_bytes()));
        }
    }

    #[test]
    fn in_dialog_request_round_trips() {
        let routes = ["<sip:pool.example.com;lr>, <sip:edge.exa", "mple.com;lr;transport=tls>"];
        let d = DialogRequest {
            method: Method::Info,
            request_uri: "sip:pool.example.com:5060;transport=tcp",
            route_set: &routes,
            via_transport: "TCP",
            via_sent_by: "gw.example.com:5060",
            branch: "z9hG4bKgw1",
            local_uri: "sip:ctigw@gw.example.com",
            local_tag: "gw77",
            remote_uri: "sip:alice@example.com",
            remote_tag: "1a2b3c",
            call_id: "7f3e9c51d0a4@192.0.2.10",
            cseq: 1,
            contact: "sip:gw.example.com:5060;transport=tcp",
        };
        let mut buf = [0u8; 1024];
        let out = MessageWriter::in_dialog(&mut buf, &d)
            .unwrap()
            .finish_with_body("application/csta+xml", |o| o.put_str("<HeldEvent/>"))
            .unwrap();
        let m = Message::parse(out).unwrap();
        m.check_request().unwrap();
        assert_eq!(m.method(), Some(Method::Info));
        assert_eq!(m.from().unwrap().tag(), Some("gw77"));
        assert_eq!(m.to().unwrap().tag(), Some("1a2b3c"));
        assert_eq!(m.via().unwrap().branch(), Some("z9hG4bKgw1"));
        let routes: Vec<_> = m.name_addrs(HeaderName::Route).map(|r| r.unwrap().uri).collect();
        assert_eq!(routes, ["sip:pool.example.com;lr", "sip:edge.example.com;lr;transport=tls"]);
        assert_eq!(m.body(), b"<HeldEvent/>");
    }

    #[test]
    fn every_too_small_buffer_is_an_overflow_never_a_panic() {
        let req = Message::parse(INFO).unwrap();
        let mut full = [0u8; 2048];
        let whole = MessageWriter::response_to(&mut full, &req, 200, "OK", Some("t"), None)
            .and_then(|w| w.finish_with_body("application/csta+xml", |o| o.put_str("<ok/>")))
            .unwrap()
            .len();
        for size in 0..whole {
            let mut buf = vec![0u8; size];
            let result = MessageWriter::response_to(&mut buf, &req, 200, "OK", Some("t"), None)
                .and_then(|w| w.finish_with_body("application/csta+xml", |o| o.put_str("<ok/>")));
            assert_eq!(result.unwrap_err(), Overflow, "size {size}");
        }
        let mut exact = vec![0u8; whole];
        let out = MessageWriter::response_to(&mut exact, &req, 200, "OK", Some("t"), None)
            .and_then(|w| w.finish_with_body("application/csta+xml", |o| o.put_str("<ok/>")))
            .unwrap();
        assert_eq!(Message::parse(out).unwrap().body(), b"<ok/>");
    }

    /// Found by the sip_message fuzzer: a request at the header limit,
    /// nearly all Via, gets a response one header over the limit.
    #[test]
    fn fuzz_regression_response_to_a_request_at_the_header_limit() {
        let mut input =
            b"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
                .to_vec();
        for i in 0..crate::sip::MAX_HEADERS - 4 {
            input.extend_from_slice(format!("Via: SIP/2.0/UDP h{i};branch=z9hG4bK{i}\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let req = Message::parse(&input).unwrap();
        let mut buf = vec![0u8; 8192];
        let out = MessageWriter::response_to(&mut buf, &req, 200, "OK", Some("t"), None).unwrap().finish().unwrap();
        assert_eq!(Message::parse(out).unwrap_err(), crate::sip::Error::TooManyHeaders);
        assert_eq!(out.split(|&b| b == b'\n').filter(|l| l.starts_with(b"Via: ")).count(), crate::sip::MAX_HEADERS - 4);
    }

    #[test]
    fn reason_phrase_stays_on_one_line() {
        let mut buf = [0u8; 128];
        let out = MessageWriter::response(&mut buf, 400, "bad\r\nInjected: yes").unwrap().finish().unwrap();
        assert!(out.starts_with(b"SIP/2.0 400 bad  Injected: yes\r\nContent-Length: 0\r\n\r\n"));
    }
}
