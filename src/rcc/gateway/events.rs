//! The gateway's own requests to Lync: a node's events as INFOs (one in
//! flight per session, the rest queued in order behind it) and BYEs, with
//! Timer E and F, and Lync's responses to them.

use super::*;

/// Which of the gateway's own requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum ClientKind {
    /// A node's event, as an INFO.
    #[default]
    EventInfo,
    /// The end of a session.
    Bye,
    /// The gateway's session refresh (UPDATE, RFC 4028), when it is the
    /// refresher.
    Refresh,
}

/// What the gateway keeps with each of its own requests (the owner's data
/// of its client transaction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Outgoing {
    /// The event INFO queued behind this one in its session.
    pub(super) next: Option<Handle>,
    pub(super) kind: ClientKind,
    pub(super) session: Handle,
    pub(super) state: ClientState,
}

/// Where one of the gateway's own requests is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum ClientState {
    /// An event INFO behind another of its session's, in the queue.
    #[default]
    Queued,
    /// Next to go, waiting for room (the outgoing queue, or its stream
    /// connection, was full): its timers do not run.
    Waiting,
    /// Sent: Timer F runs (and Timer E over UDP).
    Started,
}

impl Gateway {
    /// What a node's event or answer said that does not reach Lync:
    /// counted, and each kind of element logged the first time.
    pub(super) fn note_dropped(&mut self, slot: SlotId, message: &str, dropped: &csta::Dropped<'_>) {
        self.counters.fields_dropped += u64::from(dropped.count);
        for kind in &dropped.kinds {
            let key = crate::index::hash(&[kind.as_bytes()], false);
            if self.dropped_logged.contains(&key) || self.dropped_logged.push(key).is_err() {
                continue;
            }
            log::warn!(
                "{slot}: {message}: <{kind}> not carried on to Lync (not modelled, or past the gateway's capacity); \
                 counted from now on in ctigw_cti_fields_dropped_total, not logged again"
            );
        }
    }

    /// Devices a translation left in the node's names (no room left to
    /// rewrite them): counted, and logged the first time.
    pub(super) fn note_untranslated(&mut self, slot: SlotId, message: &str, untranslated: u16) {
        if untranslated == 0 {
            return;
        }
        if self.counters.untranslated == 0 {
            log::warn!(
                "{slot}: {message}: {untranslated} device(s) sent to Lync in the node's names: no room left to \
                 rewrite them; counted from now on in ctigw_dialplan_untranslated_total, not logged again"
            );
        }
        self.counters.untranslated += u64::from(untranslated);
    }

    /// An event from the node in `slot`: to the session that monitors it.
    pub(super) fn node_event(&mut self, slot: SlotId, event: &csta::Event<'_>) {
        let mut scratch = [0u8; 64];
        let Ok(xref) = event.monitor().unescape_into(&mut scratch) else { return };
        let Some(h) = self.sessions.find_monitor(slot, xref) else {
            self.counters.events_unknown += 1;
            log::debug!("{slot}: event for unknown monitor {xref} dropped");
            return;
        };
        if let csta::Event::Call(csta::CallEvent { dropped: Some(dropped), .. }) = event {
            self.note_dropped(slot, event.name(), dropped);
        }
        // The dial plan: the event in Lync's names.
        let (mut arena_buf, translated);
        let mut untranslated = 0;
        let event = match self.translation(h) {
            Some(t) => {
                arena_buf = arena_buffer();
                let mut arena = Arena::new(&mut arena_buf);
                let mut e = event.clone();
                untranslated = t.event_to_lync(&mut e, &mut arena);
                translated = e;
                &translated
            }
            None => event,
        };
        self.note_untranslated(slot, event.name(), untranslated);
        self.send_in_dialog(h, ClientKind::EventInfo, Some(event));
    }

    /// Sends the gateway's own request in the session's dialog: an event
    /// INFO, or a BYE. Over UDP it is retransmitted until answered.
    pub(super) fn send_in_dialog(&mut self, h: Handle, kind: ClientKind, event: Option<&csta::Event<'_>>) {
        let Some(s) = self.sessions.get_mut(h) else { return };
        if s.ending && kind == ClientKind::EventInfo {
            return;
        }
        s.dialog.local_cseq += 1;
        let s = self.sessions.get(h).expect("just used");
        let (routes, peer) = (s.routes(), s.peer());
        let mut sent_by = [0u8; 80];
        let mut out = OutBuf::new(&mut sent_by);
        let port = match peer.transport {
            Transport::Tls(_) => self.config.tls_port.unwrap_or(self.config.sip_port),
            Transport::Udp | Transport::Tcp(_) => self.config.sip_port,
        };
        let _ = write!(out, "{}:{port}", self.config.sip_host);
        let sent_by = core::str::from_utf8(out.as_bytes()).unwrap_or("");
        let contact = &self.contacts[contact_index(peer.transport)];
        let target = if s.remote_target().is_empty() { s.user() } else { s.remote_target() };
        let namespace = s.namespace;
        let interval = s.dialog.timer.map_or(0, |t| t.interval);
        let write = |buf: &mut [u8], branch: &str| {
            let d = DialogRequest {
                method: match kind {
                    ClientKind::EventInfo => Method::Info,
                    ClientKind::Bye => Method::Bye,
                    ClientKind::Refresh => Method::Update,
                },
                request_uri: target,
                route_set: &routes,
                via_transport: peer.transport.token(),
                via_sent_by: sent_by,
                branch,
                local_uri: s.local_uri(),
                local_tag: s.local_tag(),
                remote_uri: s.user(),
                remote_tag: s.remote_tag(),
                call_id: s.call_id(),
                cseq: s.dialog.local_cseq,
                contact,
            };
            MessageWriter::in_dialog(buf, &d).and_then(|mut w| match event {
                Some(event) => w.finish_with_body(CSTA_XML, |o| event.write(namespace, o)).map(|b| b.len()),
                None if kind == ClientKind::Refresh => {
                    w.header_fmt("Session-Expires", format_args!("{interval};refresher=uas"))?;
                    w.header("Supported", "timer")?;
                    w.finish().map(|b| b.len())
                }
                None => w.finish().map(|b| b.len()),
            })
        };
        let owner = Outgoing { next: None, kind, session: h, state: ClientState::Queued };
        let ch = match self.transactions.open_client(peer, owner, write) {
            Ok(ch) => ch,
            Err(why) => {
                self.counters.transmit_drops += 1;
                // Overload: said once, then at every power of two, not per event.
                if why == OpenError::Full && self.counters.transmit_drops.is_power_of_two() {
                    log::warn!(
                        "{}: event dropped: too many INFOs waiting for answers ({} messages dropped so far)",
                        s.user(),
                        self.counters.transmit_drops
                    );
                }
                return;
            }
        };
        if kind == ClientKind::EventInfo {
            self.counters.events_relayed += 1;
            // One event INFO in flight per session: later ones wait, in order.
            let s = self.sessions.get_mut(h).expect("just used");
            match s.events {
                Some((head, tail)) => {
                    s.events = Some((head, ch));
                    if let Some(t) = self.transactions.client_mut(tail) {
                        t.owner.next = Some(ch);
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
        let Some(to) = self.transactions.client(ch).map(|c| c.to()) else { return };
        let room = self.room_for(&to);
        let Some(c) = self.transactions.client_mut(ch) else { return };
        if !room {
            self.waiting = true;
            c.owner.state = ClientState::Waiting;
            return;
        }
        c.owner.state = ClientState::Started;
        let Some((to, bytes)) = self.transactions.start_client(self.now, ch) else { return };
        if self.out.push(to, |buf| copy_into(buf, bytes)) {
            self.out.mark_last(Defer::Client(ch));
        } else {
            self.counters.transmit_drops += 1;
        }
    }

    /// The event INFO in flight of session `h` got its final answer: the
    /// next one goes out.
    pub(super) fn next_event(&mut self, h: Handle, done: Handle) {
        let next = self.transactions.client(done).and_then(|c| c.owner.next);
        self.transactions.close_client(done);
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
            next = self.transactions.client(ch).and_then(|c| c.owner.next);
            self.transactions.close_client(ch);
        }
    }

    /// Timer F of one of the gateway's own requests: never answered. An
    /// event INFO's session is ended (a dead dialog), which frees its
    /// queue with it.
    pub(super) fn client_timed_out(&mut self, h: Handle, owner: Outgoing) {
        let Outgoing { kind, session, .. } = owner;
        if kind != ClientKind::EventInfo || self.sessions.get(session).is_none() {
            self.transactions.close_client(h);
        }
        if kind == ClientKind::Refresh {
            self.log_session_end(session, "Lync never answered the gateway's session refresh");
            self.end_session(session, true);
        }
        if kind == ClientKind::EventInfo {
            self.counters.event_timeouts += 1;
            self.log_session_end(session, "an event INFO was never answered (dead dialog)");
            self.end_session(session, true);
        }
    }

    /// Lync's final answer to the gateway's session refresh: a 2xx renews
    /// the session; 491 (a refresh of Lync's crossed it) tries again at the
    /// next sweep; anything else ends the session with BYE (RFC 4028
    /// section 10: a refresh that fails ends the session).
    fn refresh_answered(&mut self, h: Handle, code: u16) {
        let now = self.now;
        let Some(s) = self.sessions.get_mut(h) else { return };
        s.dialog.refreshing = false;
        match code {
            200..=299 => self.sessions.refreshed(h, now),
            491 => {}
            _ => {
                self.log_session_end(h, format_args!("Lync answered its session refresh with {code}"));
                self.end_session(h, true);
            }
        }
    }

    /// A response to one of the gateway's own requests.
    pub(super) fn handle_response(&mut self, from: Peer, m: &Message<'_>) {
        let Some(code) = m.status_code() else { return };
        let h = match self.transactions.match_response(from, m) {
            ResponseMatch::Matched(h) => h,
            ResponseMatch::Unknown => return,
            ResponseMatch::Mismatched => {
                self.counters.responses_ignored += 1;
                log::debug!("{from}: a response to none of the gateway's requests, ignored");
                return;
            }
        };
        if code < 200 {
            return;
        }
        let Some(Outgoing { kind, session, .. }) = self.transactions.client(h).map(|c| c.owner) else { return };
        if kind == ClientKind::Bye {
            self.transactions.close_client(h);
            return;
        }
        if kind == ClientKind::Refresh {
            self.transactions.close_client(h);
            return self.refresh_answered(session, code);
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
            self.log_session_end(session, format_args!("Lync answered an event INFO with {code}"));
            self.end_session(session, bye);
        } else {
            self.next_event(session, h);
        }
    }
}
