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
        let mut stale: heapless::Vec<Handle, 256> = heapless::Vec::new();
        loop {
            stale.clear();
            for (h, s) in self.sessions.iter() {
                if s.node.slot == slot && s.node.connection_id != connection_id && !s.ending && stale.push(h).is_err() {
                    break;
                }
            }
            if stale.is_empty() {
                return;
            }
            log::info!(
                "{slot}: back with connection {connection_id}; ending {} sessions of its old connection",
                stale.len()
            );
            for h in stale.iter().copied() {
                self.end_session(h, true);
            }
        }
    }

    pub(super) fn drain_cti_events(&mut self, _now: Instant) {
        while let Some(event) = self.nodes.poll_event() {
            event.log();
            match event {
                CtiEvent::NodeUp { slot, connection_id } => self.node_up(slot, connection_id),
                CtiEvent::RequestFailed { tag, failure, .. } => {
                    self.node_answered(tag, Err(failure.error_code()));
                }
                _ => {}
            }
        }
    }
}
