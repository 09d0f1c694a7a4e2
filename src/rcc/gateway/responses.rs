//! Responses to what Lync sent: written into the outgoing queue, and the
//! final ones to UDP requests handed to the transaction layer to answer
//! retransmissions (an INVITE's 2xx also sent again until its ACK, RFC
//! 3261 13.3.1.4).

use super::*;

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
            if let Some(key) = server_key(m, &to) {
                self.keep_completed(key, to, None);
            }
        }
    }

    /// Keeps the message just queued as the answer to retransmissions of
    /// the request `key` names; for an INVITE 2xx (`session`), also
    /// retransmits it until the ACK.
    pub(super) fn keep_completed(&mut self, key: u64, to: Peer, session: Option<Handle>) -> Option<Handle> {
        let evicted = self.transactions.evicted();
        let kept = self.transactions.keep(self.now, key, to, self.out.last_pushed(), session);
        self.counters.completed_evicted += self.transactions.evicted() - evicted;
        kept
    }

    /// Answers a UDP retransmission from the response kept for it.
    pub(super) fn resend_completed(&mut self, key: u64) -> bool {
        let Some((to, bytes)) = self.transactions.kept(key) else { return false };
        if !self.out.push(to, |buf| copy_into(buf, bytes)) {
            self.counters.transmit_drops += 1;
        }
        true
    }
}
