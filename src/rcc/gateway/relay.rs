//! Lync's CSTA requests: answered by the gateway itself (features, system
//! status), refused at once (line appearances, node down, backlog), or
//! relayed to the session's node and its answer carried back.

use super::*;

/// A request relayed to a node, waiting for its answer.
pub(super) struct Pending {
    /// The request's bytes (or the answer's) in the queue store.
    pub(super) request: Span,
    pub(super) from: Peer,
    pub(super) session: Handle,
    pub(super) namespace: Namespace,
    /// The entry holds no request but its answer, which waits for room on
    /// the stream connection `from` names.
    pub(super) answer: bool,
}

impl Gateway {
    /// Answers an INFO (or a pending one) with a CSTA document.
    pub(super) fn answer_csta(&mut self, to: Peer, m: &Message<'_>, namespace: Namespace, message: &Csta<'_>) {
        self.respond_with(to, m, 200, "OK", None, |_| Ok(()), Some(|o: &mut OutBuf<'_>| message.write(namespace, o)));
    }

    pub(super) fn info(&mut self, from: Peer, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else {
            return self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(()));
        };
        if !self.in_order(from, m, h) {
            return;
        }
        if !m.content_type().ok().flatten().is_some_and(|t| t.is("application", "csta+xml")) {
            let reason = "Unsupported Media Type: the body must be application/csta+xml";
            return self.respond(from, m, 415, reason, None, |w| w.header("Accept", CSTA_XML).map(drop));
        }
        let s = self.sessions.get(h).expect("found above");
        let namespace = s.namespace;
        if s.ending {
            return self.answer_csta(from, m, namespace, &Csta::Error(ErrorCode::RESOURCE_OUT_OF_SERVICE));
        }
        let doc = match csta::parse(m.body()) {
            Ok(doc) => doc,
            Err(e)
                if matches!(
                    e,
                    csta::Error::UnknownMessage
                        | csta::Error::MissingElement(_)
                        | csta::Error::BadValue(_)
                        | csta::Error::TooManyItems(_)
                ) =>
            {
                return self.answer_csta(from, m, namespace, &Csta::Error(e.error_code()));
            }
            Err(e) => return self.respond(from, m, 400, Reason("Malformed CSTA body: ", e), None, |_| Ok(())),
        };
        let Csta::Request(request) = doc.message else {
            return self.respond(from, m, 400, "Bad Request: the body is not a CSTA request", None, |_| Ok(()));
        };
        let offered = self.offered(s.node.slot);
        if !offered.contains(request.service()) {
            self.counters.unsupported_refusals += 1;
            log::info!("{}: {} refused: not offered on this node", s.user(), request.service().request_name());
            return self.answer_csta(from, m, namespace, &Csta::Error(ErrorCode::SERVICE_NOT_SUPPORTED));
        }
        match request {
            Request::GetCstaFeatures { .. } => {
                self.answer_csta(from, m, namespace, &Csta::Response(Response::Features(offered)))
            }
            Request::RequestSystemStatus { .. } => {
                let up = self.nodes.state(s.node.slot) == LinkState::Up
                    && self.nodes.connection_id(s.node.slot) == Some(s.node.connection_id);
                let status = if up { SystemStatus::Normal } else { SystemStatus::Disabled };
                self.answer_csta(from, m, namespace, &Csta::Response(Response::SystemStatus(status)))
            }
            _ => self.relay(from, m, h, &request),
        }
    }

    /// The services a session on the node in `slot` is offered: what the
    /// node listed at link-up (everything the gateway relays, when it did
    /// not say), as far as the operator allows, and the two the gateway
    /// answers itself. Lync shows a button only for an offered service.
    pub(super) fn offered(&self, slot: SlotId) -> Services {
        let node = self.nodes.services(slot).unwrap_or_else(Services::all);
        node.and(self.config.services).with(Service::GetCstaFeatures).with(Service::RequestSystemStatus)
    }

    /// Relays a request to the session's node, after checking the user
    /// may touch what it names; refusals are answered at once.
    pub(super) fn relay(&mut self, from: Peer, m: &Message<'_>, h: Handle, request: &Request<'_>) {
        let s = self.sessions.get(h).expect("checked by the caller");
        let namespace = s.namespace;
        let refuse = |code: ErrorCode<'static>| Csta::Error(code);
        // Line appearances: every controlled device must be the user's.
        let mut scratch = [0u8; 128];
        let allowed = request.controlled_devices().into_iter().flatten().all(|device| match device {
            Some(text) => text.unescape_into(&mut scratch).is_ok_and(|d| self.appearances.may_control(s.user(), d)),
            None => false, // a connection without its device cannot be authorised
        });
        let monitor_ok = match request {
            Request::MonitorStop { monitor } => s.node.monitors.iter().any(|x| monitor.eq_str(x)),
            _ => true,
        };
        let room_for_monitor = !matches!(request, Request::MonitorStart { .. }) || s.node.monitors.len() < MAX_MONITORS;
        let node_up = self.nodes.state(s.node.slot) == LinkState::Up
            && self.nodes.connection_id(s.node.slot) == Some(s.node.connection_id);
        let (slot, user) = (s.node.slot, copy_str::<MAX_URI>(s.user()).unwrap_or_default());
        let verdict = if !allowed {
            self.counters.privilege_violations += 1;
            log::info!("{user}: {} refused: a device not assigned to the user", request.service().request_name());
            Some(ErrorCode::PRIVILEGE_VIOLATION)
        } else if !monitor_ok {
            Some(ErrorCode::INVALID_MONITOR_CROSS_REF_ID)
        } else if !room_for_monitor {
            Some(ErrorCode::OBJECT_MONITOR_LIMIT_EXCEEDED)
        } else if !node_up {
            self.counters.node_down_refusals += 1;
            log::info!("{}: {} refused: its CTI node is down", s.user(), request.service().request_name());
            Some(ErrorCode::RESOURCE_OUT_OF_SERVICE)
        } else if self.transactions.clients_backlogged() {
            // Lync is not taking events as fast as calls make them: new
            // work is refused before events would have to be dropped.
            self.counters.backlog_refusals += 1;
            if self.counters.backlog_refusals.is_power_of_two() {
                log::warn!(
                    "{user}: {} refused: {} event INFOs wait for Lync's answers ({} requests refused so far)",
                    request.service().request_name(),
                    self.transactions.client_count(),
                    self.counters.backlog_refusals
                );
            }
            Some(ErrorCode::RESOURCE_BUSY)
        } else {
            None
        };
        if let Some(code) = verdict {
            return self.answer_csta(from, m, namespace, &refuse(code));
        }
        // The dial plan: the request in the node's names, or refused here.
        let mut arena_buf;
        let request = match self.translation(h) {
            None => *request,
            Some(t) => {
                arena_buf = arena_buffer();
                let mut arena = Arena::new(&mut arena_buf);
                let mut translated = *request;
                if let Err(code) = t.request_to_node(&mut translated, &mut arena) {
                    self.counters.dialplan_refusals += 1;
                    log::info!(
                        "{user}: {} refused: {}: no dial plan rule or appearance for it",
                        request.service().request_name(),
                        code.value
                    );
                    return self.answer_csta(from, m, namespace, &refuse(code));
                }
                translated
            }
        };
        let bytes = m.as_bytes();
        let room = self.pending.len() < self.pending.capacity();
        let Some(span) = room.then(|| self.out.store.put(&[bytes])).flatten() else {
            log::warn!("{user}: {} refused: too many requests waiting for the nodes", request.service().request_name());
            return self.answer_csta(from, m, namespace, &refuse(ErrorCode::RESOURCE_BUSY));
        };
        let (p, pending) = self.pending.alloc().expect("room checked above");
        pending.request = span;
        pending.from = from;
        pending.session = h;
        pending.namespace = namespace;
        let key = server_key(m, &from);
        if let (Some(key), false) = (key, from.transport.is_reliable()) {
            self.pending_index.insert(key, p.index);
        }
        match self.nodes.send_request(self.now, slot, RequestTag(p.pack()), &request) {
            Ok(_) => self.counters.relayed += 1,
            Err(e) => {
                self.forget_pending(p);
                self.answer_csta(from, m, namespace, &refuse(e.error_code()));
            }
        }
    }

    pub(super) fn forget_pending(&mut self, p: Handle) {
        let Some(pending) = self.pending.get(p) else { return };
        if let Ok(m) = Message::parse(self.out.store.get(pending.request)) {
            if let Some(key) = server_key(&m, &pending.from) {
                self.pending_index.remove(key, p.index);
            }
        }
        self.out.store.free(pending.request);
        self.pending.free(p);
    }

    /// A node answered (or could not answer) a relayed request.
    pub(super) fn node_answered(&mut self, tag: RequestTag, answer: Result<&Csta<'_>, ErrorCode<'static>>) {
        if tag.0 >= INTERNAL {
            return; // the gateway's own MonitorStop
        }
        let p = Handle::unpack(tag.0);
        let Some(pending) = self.pending.get_mut(p) else { return };
        // The stored request is copied out while it is answered: the
        // answer needs the whole gateway. Taking a boxed slice does not allocate.
        let mut request = core::mem::take(&mut self.answering);
        let span = core::mem::take(&mut pending.request);
        let (len, from, session, namespace) = (span.len(), pending.from, pending.session, pending.namespace);
        request[..len].copy_from_slice(self.out.store.get(span));
        self.out.store.free(span);
        if let Ok(m) = Message::parse(&request[..len]) {
            let slot = self.sessions.get(session).map(|s| s.node.slot);
            if let (Ok(Csta::Response(Response::Snapshot { dropped: Some(d), .. })), Some(slot)) = (answer, slot) {
                self.note_dropped(slot, "SnapshotDeviceResponse", d);
            }
            // Monitors: learn the ids the node gives, forget stopped ones.
            let mut answer = answer;
            match answer.ok() {
                Some(Csta::Response(Response::MonitorStarted { monitor })) => {
                    let mut scratch = [0u8; 64];
                    let kept = monitor.unescape_into(&mut scratch).is_ok_and(|x| self.sessions.add_monitor(session, x));
                    if let (false, Some(slot)) = (kept, slot) {
                        // No room for its id (the session's or the
                        // gateway's monitors are all taken): the node
                        // stops it, Lync hears the limit.
                        log::warn!("{slot}: a monitor refused: no room for its id {}", monitor.raw());
                        self.next_tag += 1;
                        let stop = Request::MonitorStop { monitor: *monitor };
                        let _ = self.nodes.send_request(self.now, slot, RequestTag(INTERNAL | self.next_tag), &stop);
                        answer = Err(ErrorCode::OBJECT_MONITOR_LIMIT_EXCEEDED);
                    }
                }
                Some(Csta::Response(Response::Ack(Service::MonitorStop))) => {
                    if let Ok(csta::Document { message: Csta::Request(Request::MonitorStop { monitor }), .. }) =
                        csta::parse(m.body())
                    {
                        let mut scratch = [0u8; 64];
                        if let Ok(xref) = monitor.unescape_into(&mut scratch) {
                            self.sessions.remove_monitor(session, xref);
                        }
                    }
                }
                _ => {}
            }
            let queued = self.out.count;
            // The dial plan: the answer in Lync's names.
            let (mut arena_buf, translated);
            let mut untranslated = 0;
            let answer = match (answer, self.translation(session)) {
                (Ok(Csta::Response(response)), Some(t)) => {
                    arena_buf = arena_buffer();
                    let mut arena = Arena::new(&mut arena_buf);
                    let mut r = response.clone();
                    untranslated = t.response_to_lync(&mut r, &mut arena);
                    translated = Csta::Response(r);
                    Ok(&translated)
                }
                _ => answer,
            };
            if let Some(slot) = slot {
                self.note_untranslated(slot, "answer", untranslated);
            }
            match answer {
                Ok(message) => self.answer_csta(from, &m, namespace, message),
                Err(code) => self.answer_csta(from, &m, namespace, &Csta::Error(code)),
            }
            if self.out.count > queued && from.transport.is_reliable() {
                self.out.mark_last(Defer::Answer);
            }
            if let Some(key) = server_key(&m, &from) {
                self.pending_index.remove(key, p.index);
            }
        }
        self.answering = request;
        self.pending.free(p);
    }
}
