//! A scripted Lync client for the rig: a user's dialog (INVITE with
//! RequestSystemStatus, ACK, INFOs with CSTA requests, answers to the
//! gateway's event INFOs) written as a pool sends it, and helpers to read
//! what the gateway answered.

use super::{Calls, Rig};
use crate::csta::{self, Message as Csta};
use crate::rcc::Peer;
use crate::sip::{self, Message};

/// Where the scripted Lync pool is.
pub const POOL: &str = "127.0.0.1:5070";
/// The ECMA-323 namespace the scripted client writes.
pub const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";

/// SIP text with CR LF line ends and a computed Content-Length.
pub fn sip_text(text: &str) -> Vec<u8> {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b),
        None => (text, ""),
    };
    let mut out = head.trim().replace('\n', "\r\n");
    out.push_str(&format!("\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// The CSTA document a message carries (panics, saying why, when it has none).
pub fn body_of<'a>(m: &Message<'a>) -> Csta<'a> {
    csta::parse(m.body()).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(m.body()))).message
}

/// A Lync user's dialog, as a client keeps it.
pub struct Lync {
    /// The user's SIP URI, without the scheme.
    pub user: &'static str,
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The client's tag.
    pub tag: String,
    /// The gateway's tag, once its 200 came.
    pub gw_tag: String,
    /// The client's last CSeq.
    pub cseq: u32,
    /// Where the client is and how it talks.
    pub peer: Peer,
    /// The session-timer headers of its INVITE (RFC 4028), each line
    /// ending in a newline.
    pub timer_headers: String,
}

impl Lync {
    /// A client of `user` that will open dialog `call_id` from `peer`.
    pub fn new(user: &'static str, call_id: &str, peer: Peer) -> Lync {
        Lync {
            user,
            call_id: call_id.into(),
            tag: format!("{call_id}-tag"),
            gw_tag: String::new(),
            cseq: 0,
            peer,
            timer_headers: "Supported: timer\nSession-Expires: 1800\n".into(),
        }
    }

    /// Sends the INVITE that opens the CSTA session (on `line` when given,
    /// in `lcs:line` as Lync does); learns the gateway's tag from its 200.
    pub fn invite<C: Calls>(&mut self, world: &mut Rig<C>, line: Option<&str>) -> Vec<Message<'static>> {
        self.cseq += 1;
        let private = line.map_or(String::new(), |l| {
            format!("<extensions><privateData><private><lcs:line xmlns:lcs=\"http://schemas.microsoft.com/Lcs/2005/04/RCCExtension\">{l}</lcs:line></private></privateData></extensions>")
        });
        let text = format!(
            "INVITE sip:ctigw@gw.example.com SIP/2.0\nVia: SIP/2.0/{t} {POOL};branch=z9hG4bKinv{c}{cs}\nMax-Forwards: 70\n\
             From: <sip:{u}>;tag={tag};epid=01\nTo: <sip:ctigw@gw.example.com>\nCall-ID: {c}\nCSeq: {cs} INVITE\n\
             Contact: <sip:pool.example.com:5070;transport={tl}>\nRecord-Route: <sip:pool.example.com;lr>\n{timer}\
             Content-Type: application/csta+xml\n\n<RequestSystemStatus xmlns=\"{NS}\">{private}</RequestSystemStatus>",
            timer = self.timer_headers,
            t = self.peer.transport.token(),
            tl = self.peer.transport.token().to_lowercase(),
            c = self.call_id,
            cs = self.cseq,
            u = self.user,
            tag = self.tag,
        );
        let out = world.send(self.peer, &text);
        if let Some(ok) = out.iter().find(|m| m.status_code() == Some(200)) {
            self.gw_tag = ok.to().unwrap().tag().unwrap().to_string();
        }
        out
    }

    /// Acknowledges the 200 to the INVITE.
    pub fn ack<C: Calls>(&mut self, world: &mut Rig<C>) -> Vec<Message<'static>> {
        let text = format!(
            "ACK sip:ctigw@gw.example.com SIP/2.0\nVia: SIP/2.0/{t} {POOL};branch=z9hG4bKack{c}\nFrom: <sip:{u}>;tag={tag}\n\
             To: <sip:ctigw@gw.example.com>;tag={gt}\nCall-ID: {c}\nCSeq: {cs} ACK\n\n",
            t = self.peer.transport.token(),
            c = self.call_id,
            u = self.user,
            tag = self.tag,
            gt = self.gw_tag,
            cs = self.cseq,
        );
        world.send(self.peer, &text)
    }

    /// Sends `method` in the dialog with `body` (CSTA XML when not empty).
    pub fn in_dialog<C: Calls>(&mut self, world: &mut Rig<C>, method: &str, body: &str) -> Vec<Message<'static>> {
        self.cseq += 1;
        let text = self.request_text(method, body, &format!("z9hG4bK{}{}", self.call_id, self.cseq));
        world.send(self.peer, &text)
    }

    /// The text of an in-dialog request, with its own Via `branch`.
    pub fn request_text(&self, method: &str, body: &str, branch: &str) -> String {
        let content = if body.is_empty() { String::new() } else { "Content-Type: application/csta+xml\n".to_string() };
        format!(
            "{method} sip:ctigw@gw.example.com SIP/2.0\nVia: SIP/2.0/{t} {POOL};branch={branch}\nMax-Forwards: 70\n\
             From: <sip:{u}>;tag={tag}\nTo: <sip:ctigw@gw.example.com>;tag={gt}\nCall-ID: {c}\nCSeq: {cs} {method}\n{content}\n{body}",
            t = self.peer.transport.token(),
            u = self.user,
            tag = self.tag,
            gt = self.gw_tag,
            c = self.call_id,
            cs = self.cseq,
        )
    }

    /// Sends an INFO carrying the CSTA document `xml`.
    pub fn info<C: Calls>(&mut self, world: &mut Rig<C>, xml: &str) -> Vec<Message<'static>> {
        self.in_dialog(world, "INFO", &format!("<?xml version=\"1.0\"?>{xml}"))
    }

    /// INVITE, its 200, ACK: the user is signed in.
    pub fn sign_in<C: Calls>(&mut self, world: &mut Rig<C>) {
        let out = self.invite(world, None);
        assert_eq!(out.iter().filter(|m| m.status_code() == Some(200)).count(), 1, "{out:?}");
        self.ack(world);
    }

    /// Answers the gateway's requests (event INFOs) with 200; returns
    /// what the gateway sent next (the following event, one at a time).
    pub fn answer<C: Calls>(&self, world: &mut Rig<C>, requests: &[Message<'static>]) -> Vec<Message<'static>> {
        let mut next = Vec::new();
        for r in requests.iter().filter(|m| m.method().is_some()) {
            let mut buf = vec![0u8; 2048];
            let ok =
                sip::MessageWriter::response_to(&mut buf, r, 200, "OK", None, None).unwrap().finish().unwrap().to_vec();
            let text =
                std::str::from_utf8(&ok).unwrap().trim_end_matches("Content-Length: 0\r\n\r\n").replace("\r\n", "\n");
            next.extend(world.send(self.peer, &text));
        }
        next
    }

    /// Answers every event INFO as it comes (they come one at a time) and
    /// returns them all, in order, with the rest of `first`.
    pub fn answer_all<C: Calls>(&self, world: &mut Rig<C>, first: Vec<Message<'static>>) -> Vec<Message<'static>> {
        let mut all = Vec::new();
        let mut batch = first;
        while !batch.is_empty() {
            let next = self.answer(world, &batch);
            all.extend(batch);
            batch = next;
        }
        all
    }
}

/// The event names in a batch of the gateway's INFOs, in order.
pub fn events(out: &[Message<'_>]) -> Vec<String> {
    out.iter()
        .filter(|m| m.method() == Some(sip::Method::Info))
        .map(|m| match body_of(m) {
            Csta::Event(e) => e.name().to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// The one response among what the gateway sent (panics otherwise).
pub fn only_response<'a>(out: &'a [Message<'static>]) -> &'a Message<'static> {
    let responses: Vec<_> = out.iter().filter(|m| m.status_code().is_some()).collect();
    assert_eq!(responses.len(), 1, "{out:#?}");
    responses[0]
}

/// The CSTA document of the one response, which must be a 200.
pub fn csta_answer(out: &[Message<'static>]) -> Csta<'static> {
    let r = only_response(out);
    assert_eq!(r.status_code(), Some(200), "{r:?}");
    body_of(r)
}

/// The one request of `method` among what the gateway sent (panics otherwise).
pub fn only_request<'a>(out: &'a [Message<'static>], method: sip::Method) -> &'a Message<'static> {
    let requests: Vec<_> = out.iter().filter(|m| m.method() == Some(method)).collect();
    assert_eq!(requests.len(), 1, "{out:#?}");
    requests[0]
}
