//! Dialogs: the INVITE that opens a session, refreshes by re-INVITE and
//! UPDATE with their RFC 4028 session timers, ACK, BYE both ways, and the
//! end of a session (its monitors stopped on its node).

use super::*;

/// What a session keeps of the INVITE that opens it, checked to fit.
pub(super) struct SessionFields<'m> {
    pub(super) call_id: &'m str,
    pub(super) remote_tag: &'m str,
    pub(super) user: &'m str,
    pub(super) local_uri: &'m str,
    pub(super) remote_target: &'m str,
    /// The Record-Route entries joined as one Route header value.
    pub(super) routes: String<MAX_ROUTE_SET>,
    pub(super) cseq: u32,
}

/// `text` when it is at most `N` bytes long.
fn at_most<const N: usize>(text: &str) -> Option<&str> {
    (text.len() <= N).then_some(text)
}

impl<'m> SessionFields<'m> {
    pub(super) fn read(m: &Message<'m>) -> Option<SessionFields<'m>> {
        let from = m.from().ok()?;
        let mut routes: String<MAX_ROUTE_SET> = String::new();
        for route in m.name_addrs(HeaderName::RecordRoute) {
            let route = route.ok()?;
            // Joined with the others into one value, an entry must close
            // what it opens: an unbalanced quote or bracket would swallow
            // the entries after it.
            let params = route.params.as_str();
            if params.matches('"').count() % 2 == 1 || params.contains(['<', '>']) || route.uri.contains('"') {
                return None;
            }
            let comma = if routes.is_empty() { "" } else { ", " };
            write!(routes, "{comma}<{}>{params}", route.uri).ok()?;
        }
        Some(SessionFields {
            call_id: at_most::<MAX_CALL_ID>(m.call_id().ok()?)?,
            remote_tag: at_most::<MAX_TAG>(from.tag()?)?,
            user: at_most::<MAX_URI>(user_key(from.uri))?,
            local_uri: at_most::<MAX_URI>(m.to().ok()?.uri)?,
            remote_target: at_most::<MAX_URI>(m.contact().ok()??.uri)?,
            routes,
            cseq: m.cseq().ok()?.number,
        })
    }
}

/// Session-Expires (RFC 4028), in seconds: `Ok(None)` when absent.
pub(super) fn timer_asked(m: &Message<'_>) -> Result<Asked, ()> {
    let seconds =
        |text: &str| sip::grammar::parse_digits(text.trim()).ok_or(()).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let mut asked = Asked { supported: m.supports("timer") || m.requires("timer"), ..Asked::default() };
    if let Some(value) = m.single(HeaderName::SessionExpires).map_err(drop)? {
        let mut parts = value.split(';');
        asked.interval = Some(seconds(parts.next().unwrap_or(""))?);
        for param in parts {
            let (name, v) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("refresher") {
                asked.refresher = match v.trim() {
                    r if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
                    r if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
                    _ => return Err(()),
                };
            }
        }
    }
    if let Some(value) = m.single(HeaderName::MinSe).map_err(drop)? {
        asked.min_se = Some(seconds(value.split(';').next().unwrap_or(""))?);
    }
    Ok(asked)
}

impl Gateway {
    /// The session timer an INVITE, re-INVITE or UPDATE asks for, as the
    /// gateway answers it (RFC 4028 section 9); `None` when the request was
    /// refused (422 with Min-SE, or 400 for a malformed header).
    fn negotiate_timer(&mut self, from: Peer, m: &Message<'_>) -> Option<Negotiated> {
        match timer_asked(m).map(|asked| negotiate(&asked)) {
            Ok(Negotiated::TooSmall(min)) => {
                self.respond(from, m, 422, "Session Interval Too Small", None, |w| {
                    w.header_fmt("Min-SE", min).map(drop)
                });
                None
            }
            Ok(negotiated) => Some(negotiated),
            Err(()) => {
                self.respond(from, m, 400, "Bad Request: malformed Session-Expires or Min-SE", None, |_| Ok(()));
                None
            }
        }
    }

    /// The session of an in-dialog request.
    pub(super) fn dialog_of(&self, m: &Message<'_>) -> Option<Handle> {
        let call_id = m.call_id().ok()?;
        let remote = m.from().ok()?.tag()?;
        let local = m.to().ok()?.tag()?;
        self.sessions.find_dialog(call_id, remote, Some(local))
    }

    /// Checks the CSeq of an in-dialog request (RFC 3261 §12.2.2): it
    /// must be higher than the last one. Answers 500 and returns false
    /// when it is not.
    pub(super) fn in_order(&mut self, from: Peer, m: &Message<'_>, h: Handle) -> bool {
        let cseq = m.cseq().map(|c| c.number).unwrap_or(0);
        let Some(s) = self.sessions.get_mut(h) else { return false };
        if cseq < s.dialog.remote_cseq {
            self.respond(from, m, 500, "Server Internal Error: CSeq out of order", None, |_| Ok(()));
            return false;
        }
        if cseq == s.dialog.remote_cseq {
            // A retransmission whose answer is kept, or is in the making,
            // never gets here.
            let reason =
                "Server Internal Error: retransmission of a request already answered, its response no longer kept";
            self.respond(from, m, 500, reason, None, |_| Ok(()));
            return false;
        }
        s.dialog.remote_cseq = cseq;
        true
    }

    pub(super) fn invite(&mut self, from: Peer, m: &Message<'_>) {
        let now = self.now;
        if !m.content_type().ok().flatten().is_some_and(|t| t.is("application", "csta+xml")) {
            self.counters.refused_body += 1;
            let reason = "Unsupported Media Type: the body must be application/csta+xml";
            return self.respond(from, m, 415, reason, None, |w| w.header("Accept", CSTA_XML).map(drop));
        }
        let doc = match csta::parse(m.body()) {
            Ok(doc) => doc,
            Err(e) => {
                self.counters.refused_body += 1;
                return self.respond(from, m, 400, Reason("Malformed CSTA body: ", e), None, |_| Ok(()));
            }
        };
        let Csta::Request(Request::RequestSystemStatus { line }) = doc.message else {
            self.counters.refused_body += 1;
            let reason = "Not Acceptable Here: only RequestSystemStatus opens a session";
            return self.respond(from, m, 488, reason, None, |_| Ok(()));
        };
        let from_header = m.from().expect("checked by check_request");
        let user = user_key(from_header.uri);
        if from_header.tag().is_none() {
            return self.respond(from, m, 400, "Bad Request: no tag in From", None, |_| Ok(()));
        }
        let mut scratch = [0u8; MAX_URI];
        let line_as_sent = match line.map(|l| l.unescape_into(&mut scratch)) {
            None => None,
            Some(Ok(text)) => Some(text),
            Some(Err(_)) => return self.respond(from, m, 400, "Bad Request: lcs:line too long", None, |_| Ok(())),
        };
        let requested = match line_as_sent.map(Number::parse) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                return self.respond(from, m, 400, "Bad Request: lcs:line is not a telephone number", None, |_| Ok(()));
            }
        };
        if !self.appearances.knows(user) {
            self.counters.refused_user += 1;
            log::info!("{from}: INVITE refused: unknown user {user}");
            return self.respond(from, m, 403, "Forbidden: unknown user", None, |_| Ok(()));
        }
        let device = line_as_sent.and_then(device_param);
        let Some(line) = self.appearances.line_for(user, requested.as_ref(), device).and_then(copy_str::<MAX_URI>)
        else {
            self.counters.refused_user += 1;
            if let Some(device) = device {
                log::info!("{from}: INVITE refused: {user} asked for a line on device {device}, not assigned to them");
                let reason = "Forbidden: line not assigned to the user on that device";
                return self.respond(from, m, 403, reason, None, |_| Ok(()));
            }
            log::info!("{from}: INVITE refused: {user} asked for a line not assigned to them");
            return self.respond(from, m, 403, "Forbidden: line not assigned to the user", None, |_| Ok(()));
        };
        // The line as Lync wrote it goes back to Lync byte for byte; the
        // line file's spelling keys the session.
        let line_key = session::user_line_key(user, &line);
        let line_as_sent = line_as_sent.map_or(Some(line.clone()), copy_str::<MAX_URI>).unwrap_or_default();
        let Some(negotiated) = self.negotiate_timer(from, m) else { return };
        // Everything the session keeps must fit its fixed fields.
        let fields = SessionFields::read(m);
        let Some(fields) = fields else {
            return self.respond(
                from,
                m,
                400,
                "Bad Request: a dialog header is missing or too long for this gateway",
                None,
                |_| Ok(()),
            );
        };
        if let Some(old) = self.sessions.find_user_line(user, &line) {
            self.counters.sessions_replaced += 1;
            log::info!("session of {user} on {line} replaced by a new INVITE");
            self.end_session(old, true);
        }
        let Some(slot) = self.nodes.pick() else {
            self.counters.refused_no_node += 1;
            log::info!("{from}: INVITE of {user} refused: no CTI node is up");
            let retry = self.nodes.timing().reconnect_interval.as_secs().max(1);
            return self.respond(from, m, 503, "Service Unavailable: no CTI node is up", None, |w| {
                w.header_fmt("Retry-After", retry).map(drop)
            });
        };
        let connection_id = self.nodes.connection_id(slot).expect("a picked node is up");
        let local_tag = self.fresh_tag();
        let namespace = doc.namespace;
        let strings = Strings {
            user: fields.user,
            line: &line_as_sent,
            call_id: fields.call_id,
            remote_tag: fields.remote_tag,
            local_tag: &local_tag,
            local_uri: fields.local_uri,
            remote_target: fields.remote_target,
            routes: &fields.routes,
        };
        let opened = self.sessions.open(now, &strings, from, |s| {
            s.line_key = line_key;
            s.namespace = namespace;
            s.node.slot = slot;
            s.node.connection_id = connection_id;
            s.dialog.remote_cseq = fields.cseq;
            s.dialog.invite_cseq = fields.cseq;
            s.dialog.timer = negotiated.timer();
        });
        let h = match opened {
            Ok(h) => h,
            Err(full) => {
                self.counters.refused_full += 1;
                let reason = match full {
                    session::Full::Table => {
                        log::warn!(
                            "{from}: INVITE of {user} refused: the session table is full ({} sessions)",
                            self.sessions.capacity()
                        );
                        "Service Unavailable: session table full"
                    }
                    session::Full::Text => {
                        let usage = self.sessions.text_usage();
                        log::warn!(
                            "{from}: INVITE of {user} refused: no room for its strings in the session store \
                             ({} of {} bytes in use)",
                            usage.in_use,
                            usage.capacity
                        );
                        "Service Unavailable: session store full"
                    }
                };
                let retry = self.config.retry_after_full;
                return self.respond(from, m, 503, reason, None, |w| w.header_fmt("Retry-After", retry).map(drop));
            }
        };
        self.counters.sessions_opened += 1;
        log::info!("session opened: {user} on {line}, {slot}, from {from}");
        self.answer_invite(from, m, h, negotiated, true);
    }

    /// The 200 to an INVITE or re-INVITE (and to UPDATE): Contact,
    /// session timer, and RequestSystemStatusResponse when `with_status`.
    pub(super) fn answer_invite(
        &mut self,
        from: Peer,
        m: &Message<'_>,
        h: Handle,
        negotiated: Negotiated,
        with_status: bool,
    ) {
        let Some(s) = self.sessions.get(h) else { return };
        let (tag, namespace, up) = (
            copy_str::<MAX_TAG>(s.local_tag()).unwrap_or_default(),
            s.namespace,
            self.nodes.state(s.node.slot) == LinkState::Up,
        );
        let contact = self.contacts[contact_index(from.transport)].clone();
        let status = Response::SystemStatus(if up { SystemStatus::Normal } else { SystemStatus::Disabled });
        let extra = |w: &mut MessageWriter<'_>| {
            // RFC 3261 12.1.1: the proxies that record-routed (a load
            // balancer in front of several gateways) learn the route set.
            for header in m.headers().filter(|h| h.kind == HeaderName::RecordRoute) {
                w.header_bytes("Record-Route", header.value)?;
            }
            w.header_fmt("Contact", format_args!("<{contact}>"))?;
            w.header("Allow", ALLOW)?.header("Supported", "timer")?;
            if let Negotiated::Timer { timer, require, min_se } = negotiated {
                let (interval, refresher) = (timer.interval, timer.refresher.as_str());
                w.header_fmt("Session-Expires", format_args!("{interval};refresher={refresher}"))?;
                if require {
                    w.header("Require", "timer")?;
                }
                if let Some(min) = min_se {
                    w.header_fmt("Min-SE", min)?;
                }
            }
            Ok(())
        };
        let body = with_status.then_some(|o: &mut OutBuf<'_>| status.write(namespace, o));
        self.respond_with(from, m, 200, "OK", Some(&tag), extra, body);
        if m.method() == Some(Method::Invite) && !from.transport.is_reliable() {
            let Some(key) = server_key(m, &from) else { return };
            let kept = self.keep_completed(key, from, Some(h));
            if let Some(s) = self.sessions.get_mut(h) {
                if let Some(old) = core::mem::replace(&mut s.dialog.invite_2xx, kept) {
                    self.transactions.acknowledged(old);
                }
            }
        }
    }

    /// A re-INVITE or UPDATE: a session refresh.
    pub(super) fn refresh(&mut self, from: Peer, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else {
            return self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(()));
        };
        if !self.in_order(from, m, h) {
            return;
        }
        let Some(negotiated) = self.negotiate_timer(from, m) else { return };
        self.sessions.refreshed(h, self.now);
        if let Some(s) = self.sessions.get_mut(h) {
            // A refresh renegotiates: without Session-Expires, no timer.
            s.dialog.timer = negotiated.timer();
            if m.method() == Some(Method::Invite) {
                s.dialog.invite_cseq = m.cseq().map(|c| c.number).unwrap_or(0);
            }
        }
        let with_status = m.content_type().ok().flatten().is_some_and(|t| t.is("application", "csta+xml"));
        self.answer_invite(from, m, h, negotiated, with_status);
    }

    pub(super) fn ack(&mut self, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else { return };
        let Some(kept) = self.sessions.get(h).and_then(|s| s.dialog.invite_2xx) else { return };
        self.transactions.acknowledged(kept);
    }

    pub(super) fn bye(&mut self, from: Peer, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else {
            return self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(()));
        };
        self.respond(from, m, 200, "OK", None, |_| Ok(()));
        if let Some(s) = self.sessions.get(h) {
            log::info!("session closed by {}: {} on {}", from, s.user(), s.line());
        }
        self.end_session(h, false);
    }

    /// Ends a session: its monitors are stopped on the node and, when
    /// `bye`, Lync gets a BYE (as soon as the outgoing queue has room).
    pub(super) fn end_session(&mut self, h: Handle, bye: bool) {
        let now = self.now;
        let Some(s) = self.sessions.get_mut(h) else { return };
        if s.ending {
            return;
        }
        s.ending = true;
        if let Some(kept) = s.dialog.invite_2xx.take() {
            self.transactions.acknowledged(kept);
        }
        let s = self.sessions.get(h).expect("just used");
        let (slot, connection_id) = (s.node.slot, s.node.connection_id);
        let on_same_connection =
            self.nodes.state(slot) == LinkState::Up && self.nodes.connection_id(slot) == Some(connection_id);
        let mut monitors: heapless::Vec<String<{ session::MAX_XREF }>, MAX_MONITORS> = heapless::Vec::new();
        for xref in s.node.monitors.iter() {
            let _ = monitors.push(copy_str(xref).unwrap_or_default());
        }
        if on_same_connection {
            for xref in &monitors {
                self.next_tag += 1;
                let stop = Request::MonitorStop { monitor: csta::Text::literal(xref) };
                let _ = self.nodes.send_request(now, slot, RequestTag(INTERNAL | self.next_tag), &stop);
            }
        }
        self.counters.sessions_closed += 1;
        self.drop_events(h);
        if !bye {
            self.sessions.close(h);
        } else if self.out.room() > 1 && self.byes.is_empty() {
            self.send_bye_and_close(h);
        } else {
            self.byes.push_back(h);
        }
    }

    pub(super) fn log_session_end(&self, h: Handle, why: impl core::fmt::Display) {
        if let Some(s) = self.sessions.get(h) {
            log::info!("session of {} on {} ended: {why}", s.user(), s.line());
        }
    }

    pub(super) fn send_bye_and_close(&mut self, h: Handle) {
        self.send_in_dialog(h, ClientKind::Bye, None);
        self.sessions.close(h);
    }

    /// Session timers (RFC 4028): a session Lync refreshes and did not is
    /// ended slightly before it expires; one the gateway refreshes gets an
    /// UPDATE at half its interval, and is ended if that is not answered
    /// by expiry.
    pub(super) fn sweep_session_timers(&mut self) {
        let now = self.now;
        let mut due: heapless::Vec<(Handle, bool), 64> = heapless::Vec::new();
        for (h, s) in self.sessions.iter() {
            let Some(timer) = s.dialog.timer.filter(|_| !s.ending) else { continue };
            let since = now.saturating_duration_since(s.refreshed_at());
            let expired = match timer.refresher {
                Refresher::Uac => since >= timer.due_after(),
                Refresher::Uas => since >= Duration::from_secs(u64::from(timer.interval)),
            };
            let refresh = timer.refresher == Refresher::Uas && !s.dialog.refreshing && since >= timer.due_after();
            if (expired || refresh) && due.push((h, expired)).is_err() {
                break; // the rest at the next sweep
            }
        }
        for (h, expired) in due {
            if expired {
                self.log_session_end(h, "not refreshed within its Session-Expires (RFC 4028)");
                self.end_session(h, true);
            } else {
                if let Some(s) = self.sessions.get_mut(h) {
                    s.dialog.refreshing = true;
                }
                self.send_in_dialog(h, ClientKind::Refresh, None);
            }
        }
    }

    /// A TCP or TLS connection closed: its sessions cannot be reached any more.
    pub fn tcp_closed(&mut self, now: Instant, conn: crate::rcc::ConnId) {
        self.now = now;
        self.congested.retain(|&c| c != conn);
        let mut gone: heapless::Vec<Handle, 256> = heapless::Vec::new();
        loop {
            gone.clear();
            for (h, s) in self.sessions.iter() {
                if s.peer().transport.conn() == Some(conn) && !s.ending && gone.push(h).is_err() {
                    break;
                }
            }
            if gone.is_empty() {
                return;
            }
            for h in gone.iter().copied() {
                if let Some(s) = self.sessions.get(h) {
                    log::info!("session of {} ended: its {} connection closed", s.user(), s.peer().transport.token());
                }
                self.end_session(h, false);
            }
        }
    }
}
