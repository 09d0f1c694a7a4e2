//! The CTI side of the core: what the shell saw on the node links and what
//! it must do for them; nodes coming up and their failures. A node's
//! documents reach the relay and the events from here; the shell never
//! sees them.

use super::*;

impl Gateway {
    /// What the shell saw happen to the TCP connection of `slot`.
    pub fn handle_link(&mut self, now: Instant, slot: SlotId, event: LinkEvent) {
        self.now = now;
        self.nodes.handle_link(now, slot, event);
        self.drain_cti_events(now);
    }

    /// Bytes read from the link of `slot`: every frame they complete is
    /// decoded by the node's protocol and handled (a node's answer to its
    /// pending request, an event to the session monitoring it).
    pub fn handle_cti(&mut self, now: Instant, slot: SlotId, bytes: &[u8]) {
        self.now = now;
        // The node's protocol decodes each frame into the inbox (taken
        // out of self: no allocation), so what it hands up borrows the
        // inbox, not the nodes, while the gateway handles it.
        let mut inbox = core::mem::take(&mut self.inbox);
        let mut rest = bytes;
        loop {
            let n = self.nodes.receive(slot, rest);
            rest = &rest[n..];
            while let Some(incoming) = self.nodes.next_incoming(now, slot, &mut inbox) {
                match incoming {
                    Incoming::Handled => {}
                    Incoming::Response { tag, answer } => self.node_answered(tag, answer.as_ref().map_err(|e| *e)),
                    Incoming::Event { event } => self.node_event(slot, &event),
                }
            }
            if rest.is_empty() || n == 0 {
                break;
            }
        }
        self.inbox = inbox;
        self.drain_cti_events(now);
    }

    /// Bytes waiting to be written on the link of `slot`.
    pub fn link_tx(&self, slot: SlotId) -> &[u8] {
        self.nodes.tx_pending(slot)
    }

    /// The first `n` bytes of [`Gateway::link_tx`] were written.
    pub fn link_transmitted(&mut self, slot: SlotId, n: usize) {
        self.nodes.transmitted(slot, n);
    }

    /// The next thing the shell must do for a link (connect, close).
    pub fn poll_link_action(&mut self) -> Option<LinkAction> {
        self.nodes.poll_action()
    }

    /// A node came up with a new connection: the sessions bound to its old
    /// connection are ended, so Lync re-INVITEs onto a live node.
    pub(super) fn node_up(&mut self, slot: SlotId, connection_id: u64) {
        let ended = self.end_sessions_of(slot, |c| c != connection_id);
        if ended > 0 {
            log::info!("{slot}: back with connection {connection_id}; {ended} sessions of its old connection ended");
        }
    }

    /// A node went down: with [`Failover::Move`] its sessions are ended at
    /// once, so that Lync signs them in again on a live node.
    pub(super) fn node_down(&mut self, slot: SlotId, connection_id: u64) {
        if self.config.failover != Failover::Move {
            return;
        }
        let ended = self.end_sessions_of(slot, |c| c == connection_id);
        if ended > 0 {
            log::info!("{slot}: down; {ended} sessions ended with BYE, to sign in again on a live node");
        }
    }

    /// Ends (with BYE) every session bound to `slot` on a connection
    /// `which` picks; how many.
    fn end_sessions_of(&mut self, slot: SlotId, which: impl Fn(u64) -> bool) -> usize {
        let mut ended = 0;
        let mut batch: heapless::Vec<Handle, 256> = heapless::Vec::new();
        loop {
            batch.clear();
            for (h, s) in self.sessions.iter() {
                if s.node.slot == slot && which(s.node.connection_id) && !s.ending && batch.push(h).is_err() {
                    break;
                }
            }
            if batch.is_empty() {
                return ended;
            }
            ended += batch.len();
            for h in batch.iter().copied() {
                self.end_session(h, true);
            }
        }
    }

    pub(super) fn drain_cti_events(&mut self, _now: Instant) {
        while let Some(event) = self.nodes.poll_event() {
            event.log();
            match event {
                CtiEvent::NodeUp { slot, connection_id } => self.node_up(slot, connection_id),
                CtiEvent::NodeDown { slot, connection_id: Some(id), .. } => self.node_down(slot, id),
                CtiEvent::RequestFailed { tag, failure, .. } => {
                    self.node_answered(tag, Err(failure.error_code()));
                }
                _ => {}
            }
        }
    }
}
