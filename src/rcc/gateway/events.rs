//! The gateway's own requests to Lync: a node's events as INFOs (one in
//! flight per session, the rest queued in order behind it) and BYEs, with
//! Timer E and F, and Lync's responses to them.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientKind {
    EventInfo,
    Bye,
}

/// One of the gateway's own requests in flight.
pub(super) struct ClientTx {
    /// The event INFO queued behind this one in its session.
    pub(super) next: Option<Handle>,
    pub(super) kind: ClientKind,
    pub(super) session: Handle,
    pub(super) message: Stored,
    pub(super) timeout_at: Instant,
    pub(super) state: ClientState,
}

/// Where one of the gateway's own requests is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientState {
    /// An event INFO behind another of its session's, in the queue.
    Queued,
    /// Next to go, waiting for room (the outgoing queue, or its stream
    /// connection, was full): its timers do not run.
    Waiting,
    /// Sent: Timer F runs (and Timer E over UDP).
    Started,
}

impl Gateway {
    /// An event from the node in `slot`: to the session that monitors it.
    pub(super) fn node_event(&mut self, slot: SlotId, body: &[u8]) {
        let Ok(doc) = csta::parse(body) else {
            self.nodes.malformed(slot);
            return;
        };
        let Csta::Event(event) = &doc.message else { return };
        let mut scratch = [0u8; 64];
        let Ok(xref) = event.monitor().unescape_into(&mut scratch) else { return };
        let Some(h) = self.sessions.find_monitor(slot, xref) else {
            self.counters.events_unknown += 1;
            log::debug!("{slot}: event for unknown monitor {xref} dropped");
            return;
        };
        self.send_in_dialog(h, ClientKind::EventInfo, Some(event));
    }

    /// Sends the gateway's own request in the session's dialog: an event
    /// INFO, or a BYE. Over UDP it is retransmitted until answered.
    pub(super) fn send_in_dialog(&mut self, h: Handle, kind: ClientKind, event: Option<&csta::Event<'_>>) {
        let Some(s) = self.sessions.get_mut(h) else { return };
        if s.ending && kind == ClientKind::EventInfo {
            return;
        }
        s.local_cseq += 1;
        let s = self.sessions.get(h).expect("just used");
        let Some((ch, c)) = self.client.alloc() else {
            self.counters.transmit_drops += 1;
            // Overload: said once, then at every power of two, not per event.
            if self.counters.transmit_drops.is_power_of_two() {
                log::warn!(
                    "{}: event dropped: too many INFOs waiting for answers ({} messages dropped so far)",
                    s.user,
                    self.counters.transmit_drops
                );
            }
            return;
        };
        let mut branch = [0u8; 40];
        let mut b = OutBuf::new(&mut branch);
        let _ = write!(b, "{BRANCH}{:x}", ch.pack());
        let branch = core::str::from_utf8(b.as_bytes()).unwrap_or(BRANCH);
        let mut routes: [&str; MAX_ROUTES] = [""; MAX_ROUTES];
        for (r, route) in routes.iter_mut().zip(&s.routes) {
            *r = route;
        }
        let mut sent_by = [0u8; 80];
        let mut out = OutBuf::new(&mut sent_by);
        let port = match s.peer.transport {
            Transport::Tls(_) => self.config.tls_port.unwrap_or(self.config.sip_port),
            Transport::Udp | Transport::Tcp(_) => self.config.sip_port,
        };
        let _ = write!(out, "{}:{port}", self.config.sip_host);
        let sent_by = core::str::from_utf8(out.as_bytes()).unwrap_or("");
        let contact = &self.contacts[contact_index(s.peer.transport)];
        let target = if s.remote_target.is_empty() { s.user.as_str() } else { s.remote_target.as_str() };
        let d = DialogRequest {
            method: if kind == ClientKind::Bye { Method::Bye } else { Method::Info },
            request_uri: target,
            route_set: &routes[..s.routes.len()],
            via_transport: s.peer.transport.token(),
            via_sent_by: sent_by,
            branch,
            local_uri: &s.local_uri,
            local_tag: &s.local_tag,
            remote_uri: &s.user,
            remote_tag: &s.remote_tag,
            call_id: &s.call_id,
            cseq: s.local_cseq,
            contact,
        };
        let namespace = s.namespace;
        let written = MessageWriter::in_dialog(&mut c.message.bytes, &d).and_then(|w| match event {
            Some(event) => w.finish_with_body(CSTA_XML, |o| event.write(namespace, o)).map(|b| b.len()),
            None => w.finish().map(|b| b.len()),
        });
        let Ok(len) = written else {
            self.client.free(ch);
            self.counters.transmit_drops += 1;
            return;
        };
        c.message.len = len;
        c.message.to = s.peer;
        c.kind = kind;
        c.session = h;
        c.next = None;
        c.state = ClientState::Queued;
        if kind == ClientKind::EventInfo {
            self.counters.events_relayed += 1;
            // One event INFO in flight per session: later ones wait, in order.
            let s = self.sessions.get_mut(h).expect("just used");
            match s.events {
                Some((head, tail)) => {
                    s.events = Some((head, ch));
                    if let Some(t) = self.client.get_mut(tail) {
                        t.next = Some(ch);
                    }
                    return;
                }
                None => s.events = Some((ch, ch)),
            }
        }
        self.start_client(ch);
    }

    /// Sends a client transaction and starts its timers (E and F). With
    /// no room to go (the outgoing queue, or its stream connection, is
    /// full) it waits for [`Gateway::resume_waiting`].
    pub(super) fn start_client(&mut self, ch: Handle) {
        let now = self.now;
        let Some(c) = self.client.get(ch) else { return };
        if !self.room_for(&c.message.to) {
            self.waiting = true;
            if let Some(c) = self.client.get_mut(ch) {
                c.state = ClientState::Waiting;
            }
            return;
        }
        let Some(c) = self.client.get_mut(ch) else { return };
        c.state = ClientState::Started;
        c.timeout_at = now + 64 * T1;
        let (retransmit, timeout) = (c.message.arm(now, !c.message.to.transport.is_reliable()), c.timeout_at);
        if self.out.resend(&c.message) {
            self.out.mark_last(Defer::Client(ch));
        } else {
            self.counters.transmit_drops += 1;
        }
        self.schedule(timeout, Timer::Client(ch.pack()));
        if let Some(at) = retransmit {
            self.schedule(at, Timer::Client(ch.pack()));
        }
    }

    /// The event INFO in flight of session `h` got its final answer: the
    /// next one goes out.
    pub(super) fn next_event(&mut self, h: Handle, done: Handle) {
        let next = self.client.get(done).and_then(|c| c.next);
        self.client.free(done);
        let Some(s) = self.sessions.get_mut(h) else { return };
        match (s.events, next) {
            (Some((head, tail)), Some(next)) if head == done => {
                s.events = Some((next, tail));
                self.start_client(next);
            }
            (Some((head, _)), None) if head == done => s.events = None,
            _ => {}
        }
    }

    /// Frees the session's queued event INFOs (it is ending).
    pub(super) fn drop_events(&mut self, h: Handle) {
        let Some((head, _)) = self.sessions.get_mut(h).and_then(|s| s.events.take()) else { return };
        let mut next = Some(head);
        while let Some(ch) = next {
            next = self.client.get(ch).and_then(|c| c.next);
            self.client.free(ch);
        }
    }

    pub(super) fn client_timer(&mut self, h: Handle) {
        let now = self.now;
        let Some(c) = self.client.get_mut(h).filter(|c| c.state == ClientState::Started) else { return };
        if c.timeout_at <= now {
            // Timer F: never answered.
            let (kind, session) = (c.kind, c.session);
            // An event INFO is freed with its session's queue below.
            if kind != ClientKind::EventInfo || self.sessions.get(session).is_none() {
                self.client.free(h);
            }
            if kind == ClientKind::EventInfo {
                self.counters.event_timeouts += 1;
                self.log_session_end(session, "an event INFO was never answered (dead dialog)");
                self.end_session(session, true);
            }
            return;
        }
        // Timer E: retransmit, doubling up to T2.
        let Some(next) = c.message.back_off(now) else { return };
        if !self.out.resend(&c.message) {
            self.counters.transmit_drops += 1;
        }
        self.schedule(next, Timer::Client(h.pack()));
    }

    /// A response to one of the gateway's own requests.
    pub(super) fn handle_response(&mut self, from: Peer, m: &Message<'_>) {
        let Some(code) = m.status_code() else { return };
        let Some(h) = m
            .via()
            .ok()
            .and_then(|v| v.branch())
            .and_then(|b| b.strip_prefix(BRANCH))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(Handle::unpack)
        else {
            return;
        };
        let Some(c) = self.client.get(h) else { return };
        // A response counts only from where its request went (the same
        // connection; over UDP the same host) and only if it names that
        // request's dialog and CSeq: a guessed branch changes nothing.
        let sent = &c.message;
        let same_peer = match sent.to.transport {
            Transport::Udp => from.transport == Transport::Udp && sent.to.addr.ip() == from.addr.ip(),
            _ => sent.to == from,
        };
        let same_request = Message::parse(sent.as_bytes()).is_ok_and(|request| {
            request.call_id().ok() == m.call_id().ok()
                && request.cseq().ok().map(|c| c.number) == m.cseq().ok().map(|c| c.number)
        });
        if !same_peer || !same_request {
            self.counters.responses_ignored += 1;
            log::debug!("{from}: a response to none of the gateway's requests, ignored");
            return;
        }
        if code < 200 {
            return;
        }
        let (kind, session) = (c.kind, c.session);
        if kind == ClientKind::Bye {
            self.client.free(h);
            return;
        }
        // Only the head of the session's event queue has been sent; a
        // response naming one still queued (a guessed branch) would unlink
        // it from the queue and strand the ones behind it.
        if self.sessions.get(session).and_then(|s| s.events).map(|(head, _)| head) != Some(h) {
            return;
        }
        if code >= 300 {
            // 481: the dialog is gone at Lync's end; anything else: end it.
            let bye = code != 481 && code != 408;
            if let Some(s) = self.sessions.get(session) {
                log::info!("session of {} on {} ended: Lync answered an event INFO with {code}", s.user, s.line);
            }
            self.end_session(session, bye);
        } else {
            self.next_event(session, h);
        }
    }
}
