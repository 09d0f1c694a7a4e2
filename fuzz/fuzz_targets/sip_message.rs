//! One datagram into the SIP parser. Whatever parses must survive every
//! accessor, and the gateway's response to it must parse in turn.
#![no_main]

use ctigw::sip::{HeaderName, Message, MessageWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else { return };
    assert!(m.len() <= data.len());
    let _ = (m.call_id(), m.from(), m.to(), m.cseq(), m.max_forwards(), m.contact(), m.expires());
    let _ = (m.content_type(), m.content_disposition(), m.user_agent(), m.supports("timer"));
    let _ = m.vias().count() + m.name_addrs(HeaderName::RecordRoute).count();
    let checked = if m.method().is_some() { m.check_request() } else { m.check_response() };
    let mut buf = [0u8; 4096];
    let source = "192.0.2.1:5060".parse().ok();
    let (code, reason) = match checked {
        Ok(()) => (200, "OK".to_string()),
        Err(e) => (e.status_code(), e.to_string()),
    };
    if let Ok(w) = MessageWriter::response_to(&mut buf, &m, code, reason, Some("fuzz"), source) {
        if let Ok(out) = w.finish() {
            // The response carries the request's Via, From, To, Call-ID and
            // CSeq headers plus Content-Length: it parses exactly when that
            // many headers fit the parser's table.
            let copied = m
                .headers()
                .filter(|h| {
                    matches!(
                        h.kind,
                        HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
                    )
                })
                .count();
            match Message::parse(out) {
                Ok(r) => assert_eq!(r.status_code(), Some(code)),
                Err(ctigw::sip::Error::TooManyHeaders) => assert!(copied + 1 > ctigw::sip::MAX_HEADERS),
                Err(e) => panic!("our response does not parse: {e}"),
            }
        }
    }
});
