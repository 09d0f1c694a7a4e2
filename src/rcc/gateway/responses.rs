//! Server transactions: responses written to what Lync sent, and final
//! responses kept to answer UDP retransmissions of their request (an
//! INVITE's 2xx also sent again until its ACK, RFC 3261 13.3.1.4).

use super::*;

/// A final response kept to answer UDP retransmissions of its request
/// (and, for an INVITE's 2xx, retransmitted until the ACK).
pub(super) struct Completed {
    pub(super) key: u64,
    pub(super) message: Stored,
    pub(super) expires_at: Instant,
    pub(super) session: Option<Handle>,
}

/// The key a completed response is kept under: the request's branch,
/// method and source (RFC 3261 §17.2.3 matching).
pub(super) fn transaction_key(m: &Message<'_>, from: &Peer) -> Option<u64> {
    let via = m.via().ok()?;
    let branch = via.branch()?;
    let method = m.cseq().ok()?.method;
    let (v4, v6);
    let ip: &[u8] = match from.addr.ip() {
        IpAddr::V4(ip) => {
            v4 = ip.octets();
            &v4
        }
        IpAddr::V6(ip) => {
            v6 = ip.octets();
            &v6
        }
    };
    Some(hash(&[branch.as_bytes(), method.as_bytes(), ip, &from.addr.port().to_be_bytes()], false))
}

impl Gateway {
    /// Writes a response to `m` (with `extra` headers and no body).
    pub(super) fn respond(
        &mut self,
        to: Peer,
        m: &Message<'_>,
        code: u16,
        reason: impl core::fmt::Display,
        to_tag: Option<&str>,
        extra: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), Overflow>,
    ) {
        self.respond_with(to, m, code, reason, to_tag, extra, None::<fn(&mut OutBuf<'_>) -> Result<(), Overflow>>);
    }

    /// Writes a response to `m`, with a CSTA body if `body` is given;
    /// keeps a final response to a UDP request for its retransmissions.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn respond_with(
        &mut self,
        to: Peer,
        m: &Message<'_>,
        code: u16,
        reason: impl core::fmt::Display,
        to_tag: Option<&str>,
        extra: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), Overflow>,
        body: Option<impl FnOnce(&mut OutBuf<'_>) -> Result<(), Overflow>>,
    ) {
        let source = Some(to.addr);
        let written = self.out.push(to, |buf| {
            let mut w = MessageWriter::response_to(buf, m, code, reason, to_tag, source)?;
            extra(&mut w)?;
            let bytes = match body {
                Some(body) => w.finish_with_body(CSTA_XML, body)?,
                None => w.finish()?,
            };
            Ok(bytes.len())
        });
        if !written {
            self.counters.transmit_drops += 1;
            return;
        }
        self.counters.responses[usize::from(code / 100).clamp(1, 6) - 1] += 1;
        let is_invite = m.method() == Some(Method::Invite);
        if code >= 200 && !to.transport.is_reliable() && !is_invite {
            if let Some(key) = transaction_key(m, &to) {
                self.keep_completed(key, to, None);
            }
        }
    }

    /// Keeps the message just queued as the answer to retransmissions of
    /// the request `key` names; for an INVITE 2xx (`session`), also
    /// retransmits it until the ACK.
    pub(super) fn keep_completed(&mut self, key: u64, to: Peer, session: Option<Handle>) -> Option<Handle> {
        let last = (self.out.head + self.out.count + self.out.slots.len() - 1) % self.out.slots.len();
        let now = self.now;
        while self.completed.len() == self.completed.capacity()
            || self.completed_order.len() == self.completed_order.capacity()
        {
            let Some(oldest) = self.completed_order.pop_front() else { break };
            if let Some(c) = self.completed.get(oldest) {
                self.completed_index.remove(c.key, oldest.index);
                self.completed.free(oldest);
                self.counters.completed_evicted += 1;
            }
        }
        let (h, c) = self.completed.alloc()?;
        self.completed_order.push_back(h);
        let slot = &self.out.slots[last];
        c.message.bytes[..slot.len].copy_from_slice(&slot.bytes[..slot.len]);
        c.message.len = slot.len;
        c.message.to = to;
        c.key = key;
        c.expires_at = now + 64 * T1;
        c.session = session;
        let (expires, retransmit) = (c.expires_at, c.message.arm(now, session.is_some()));
        self.completed_index.insert(key, h.index);
        self.schedule(expires, Timer::Completed(h.pack()));
        if let Some(at) = retransmit {
            self.schedule(at, Timer::Completed(h.pack()));
        }
        Some(h)
    }

    /// Answers a UDP retransmission from the response kept for it.
    pub(super) fn resend_completed(&mut self, key: u64) -> bool {
        let found = self.completed_index.candidates(key).find_map(|i| {
            let h = self.completed.handle_at(i)?;
            (self.completed.get(h)?.key == key).then_some(h)
        });
        let Some(h) = found else { return false };
        let c = self.completed.get(h).expect("just found");
        if !self.out.resend(&c.message) {
            self.counters.transmit_drops += 1;
        }
        true
    }

    pub(super) fn completed_timer(&mut self, h: Handle) {
        let now = self.now;
        let Some(c) = self.completed.get_mut(h) else { return };
        if c.expires_at <= now {
            // Kept long enough (64*T1). An INVITE 2xx still unacknowledged
            // means the dialog is dead (RFC 3261 §13.3.1.4).
            let (key, session, unacked) = (c.key, c.session, c.message.retransmit_at.is_some());
            self.completed_index.remove(key, h.index);
            self.completed.free(h);
            if let (Some(s), true) = (session, unacked) {
                self.log_session_end(s, "the 200 to its INVITE was never acknowledged");
                self.end_session(s, true);
            }
            return;
        }
        let Some(next) = c.message.back_off(now) else { return };
        if !self.out.resend(&c.message) {
            self.counters.transmit_drops += 1;
        }
        self.schedule(next, Timer::Completed(h.pack()));
    }
}
