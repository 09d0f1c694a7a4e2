//! SIP in: datagrams and stream frames, malformed messages answered with
//! what was wrong, untrusted sources refused, UDP retransmissions absorbed,
//! and each request handed to the concern that owns its method.

use super::*;

pub(super) fn method_index(method: Method<'_>) -> usize {
    match method {
        Method::Invite => 0,
        Method::Ack => 1,
        Method::Bye => 2,
        Method::Cancel => 3,
        Method::Options => 4,
        Method::Info => 5,
        Method::Update => 6,
        _ => 7,
    }
}

/// The first option of Require this gateway does not support.
pub(super) fn unsupported_requirement<'a>(m: &Message<'a>) -> Option<&'a str> {
    m.list(HeaderName::Require).filter_map(Result::ok).find(|tag| !tag.eq_ignore_ascii_case("timer"))
}

/// Rewrites a request whose start line (or Content-Length) was refused
/// into one whose headers can be answered: a neutral request line, the
/// original header lines minus Content-Length, no body. `None` for a
/// response, or when the header block does not end.
pub(super) fn salvage(bytes: &[u8], scratch: &mut [u8]) -> Option<usize> {
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let bytes = &bytes[start..];
    if bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let first_eol = bytes.iter().position(|&b| b == b'\n')?;
    let head = &bytes[first_eol + 1..];
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 2)?;
    let mut out = OutBuf::new(scratch);
    out.put(b"OPTIONS sip:invalid SIP/2.0\r\n").ok()?;
    for line in head[..end].split(|&b| b == b'\n') {
        let name = line.split(|&b| b == b':').next().unwrap_or(b"");
        let name = core::str::from_utf8(name).unwrap_or("").trim();
        if line.is_empty() || HeaderName::classify(name) == HeaderName::ContentLength {
            continue;
        }
        out.put(line).ok()?;
        out.put(b"\n").ok()?;
    }
    out.put(b"Content-Length: 0\r\n\r\n").ok()?;
    Some(out.len())
}

impl Gateway {
    /// One datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        self.now = now;
        if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
            return; // a keep-alive
        }
        match Message::parse(bytes) {
            Ok(m) => self.handle_message(from, &m),
            Err(e) => self.malformed(from, bytes, e),
        }
    }

    /// One frame from a stream connection (see [`sip::stream`]).
    pub fn handle_frame(&mut self, now: Instant, from: Peer, frame: Frame<'_>) {
        self.now = now;
        match frame {
            Frame::Message(m) => self.handle_message(from, &m),
            Frame::Invalid { error, bytes } => self.malformed(from, bytes, error),
            Frame::Ping => {
                // RFC 5626: a ping (CRLF CRLF) is answered with a pong (CRLF).
                if !self.out.push(from, |buf| copy_into(buf, b"\r\n")) {
                    self.counters.transmit_drops += 1;
                }
            }
            Frame::Pong => {}
        }
    }

    /// A message that did not parse: a request is answered with the
    /// reason when its headers allow building a response (RFC 3261 §8.2:
    /// 400, 505...); anything else is dropped and counted.
    pub(super) fn malformed(&mut self, from: Peer, bytes: &[u8], error: sip::Error) {
        self.counters.malformed += 1;
        log::debug!("{from}: malformed message: {error}");
        if !self.trusted(from.addr.ip()) {
            return;
        }
        let mut scratch = [0u8; 4096];
        let Some(len) = salvage(bytes, &mut scratch) else { return };
        if let Ok(m) = Message::parse(&scratch[..len]) {
            let answerable = m.cseq().is_ok_and(|c| c.method != "ACK") && m.check_response().is_ok();
            if answerable {
                self.respond(from, &m, error.status_code(), error, None, |_| Ok(()));
            }
        }
    }

    pub(super) fn trusted(&self, ip: IpAddr) -> bool {
        self.config.trusted.iter().any(|c| c.contains(ip))
    }

    pub(super) fn handle_message(&mut self, from: Peer, m: &Message<'_>) {
        if m.method().is_none() {
            return self.handle_response(from, m);
        }
        let method = m.method().expect("a request");
        self.counters.requests[method_index(method)] += 1;
        if !self.trusted(from.addr.ip()) {
            if method == Method::Invite {
                self.counters.refused_untrusted += 1;
                log::info!("{from}: INVITE refused: untrusted source");
                self.respond(from, m, 403, "Forbidden: untrusted source", None, |_| Ok(()));
            } else {
                self.counters.untrusted_ignored += 1;
            }
            return;
        }
        if let Err(e) = m.check_request() {
            if method != Method::Ack {
                self.respond(from, m, e.status_code(), e, None, |_| Ok(()));
            }
            return;
        }
        // A retransmission over UDP: answered from what was sent, or
        // absorbed while the answer is still being worked out.
        if !from.transport.is_reliable() && method != Method::Ack {
            if let Some(key) = server_key(m, &from) {
                if self.resend_completed(key) || self.pending_index.candidates(key).next().is_some() {
                    return;
                }
            }
        }
        if method != Method::Ack
            && !m.request_uri().is_some_and(|u| {
                let scheme = u.split(':').next().unwrap_or("");
                scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
            })
        {
            return self.respond(from, m, 416, "Unsupported URI Scheme", None, |_| Ok(()));
        }
        if let Some(option) = unsupported_requirement(m) {
            let mut reason = [0u8; 96];
            let mut out = OutBuf::new(&mut reason);
            let _ = write!(out, "Bad Extension: {option}");
            let reason = core::str::from_utf8(out.as_bytes()).unwrap_or("Bad Extension");
            return self.respond(from, m, 420, reason, None, |w| w.header("Unsupported", option).map(drop));
        }
        match method {
            Method::Invite if self.shutting_down && m.to().is_ok_and(|t| t.tag().is_none()) => {
                self.respond(from, m, 503, "Service Unavailable: gateway shutting down", None, |_| Ok(()))
            }
            Method::Invite if m.to().is_ok_and(|t| t.tag().is_none()) => self.invite(from, m),
            Method::Invite | Method::Update => self.refresh(from, m),
            Method::Ack => self.ack(m),
            Method::Info => self.info(from, m),
            Method::Bye => self.bye(from, m),
            Method::Options => self.respond(from, m, 200, "OK", None, |w| {
                w.header("Allow", ALLOW)?.header("Accept", CSTA_XML)?.header("Supported", "timer")?;
                Ok(())
            }),
            Method::Cancel => self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(())),
            Method::Extension(_) => {
                self.respond(from, m, 501, "Not Implemented", None, |w| w.header("Allow", ALLOW).map(drop))
            }
            _ => self.respond(from, m, 405, "Method Not Allowed", None, |w| w.header("Allow", ALLOW).map(drop)),
        }
    }
}
