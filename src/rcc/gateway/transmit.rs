//! What the gateway sends, and what waits for room: the outgoing queue
//! (a ring of messages whose bytes are in the queue store) and
//! backpressure. A message that may
//! wait (an event INFO, a BYE, a node's answer) is handed back by a shell
//! whose stream connection is full, kept, and sent again once it drains.

use super::*;

/// A message to send: to whom, over what, which bytes.
#[derive(Debug)]
pub struct Transmit<'a> {
    /// The destination.
    pub to: Peer,
    /// The bytes.
    pub bytes: &'a [u8],
    /// Set when the message may wait: an event INFO's or a BYE's first
    /// sending, or the answer to a request relayed to a node. A shell that
    /// cannot take it now (its stream connection's transmit buffer is
    /// full) hands it back with [`Gateway::transmit_deferred`], right after
    /// this call and before any other into the gateway, and it goes again
    /// after [`Gateway::stream_drained`]. Everything else (answers made at
    /// once to what the peer sent) is bounded by what the shell reads.
    pub deferrable: Option<Deferrable>,
}

/// A message that may wait for room, as [`Transmit::deferrable`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferrable(pub(super) Defer);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Defer {
    /// One of the gateway's own requests (its [`ClientTx`]).
    Client(Handle),
    /// The answer to a relayed request: its bytes are copied back.
    Answer,
}

#[derive(Clone, Copy)]
pub(super) struct OutSlot {
    pub(super) to: Peer,
    pub(super) span: Span,
    pub(super) deferrable: Option<Deferrable>,
}

/// The outgoing queue: a ring of messages, their bytes in `store`, which
/// the requests waiting for a node share.
pub(super) struct OutQueue {
    pub(super) slots: Box<[OutSlot]>,
    pub(super) head: usize,
    pub(super) count: usize,
    /// The bytes of the queued messages and of the requests waiting for
    /// a node ([`Pending`]).
    pub(super) store: ByteStore,
    /// Where a message is written before it takes its exact size in `store`.
    scratch: Box<[u8]>,
    /// The message [`OutQueue::pop`] returned last: its bytes stay until
    /// the next call, for the shell to send or hand back.
    popped: Option<OutSlot>,
}

impl OutQueue {
    pub(super) fn new(count: usize, message_size: usize, store_bytes: usize, peer: Peer) -> OutQueue {
        OutQueue {
            slots: vec![OutSlot { to: peer, span: Span::default(), deferrable: None }; count].into_boxed_slice(),
            head: 0,
            count: 0,
            store: ByteStore::new(store_bytes, MESSAGE_GRANULE),
            scratch: vec![0; message_size].into_boxed_slice(),
            popped: None,
        }
    }

    pub(super) fn room(&self) -> usize {
        self.slots.len() - self.count
    }

    /// Frees the bytes of the message popped last: the shell is done with it.
    fn release_popped(&mut self) {
        if let Some(slot) = self.popped.take() {
            self.store.free(slot.span);
        }
    }

    /// Writes one message with `write`; false when the queue or its store
    /// is full, or the message did not fit `message_size`.
    pub(super) fn push(&mut self, to: Peer, write: impl FnOnce(&mut [u8]) -> Result<usize, Overflow>) -> bool {
        self.release_popped();
        if self.count == self.slots.len() {
            return false;
        }
        let Ok(len) = write(&mut self.scratch) else { return false };
        let Some(span) = self.store.put(&[&self.scratch[..len]]) else { return false };
        self.push_span(to, span)
    }

    /// Queues a message already in the store; false (and the bytes freed)
    /// when the queue is full.
    pub(super) fn push_span(&mut self, to: Peer, span: Span) -> bool {
        if self.count == self.slots.len() {
            self.store.free(span);
            return false;
        }
        let at = (self.head + self.count) % self.slots.len();
        self.slots[at] = OutSlot { to, span, deferrable: None };
        self.count += 1;
        true
    }

    /// The bytes of the message queued last.
    pub(super) fn last_pushed(&self) -> &[u8] {
        let slot = &self.slots[(self.head + self.count + self.slots.len() - 1) % self.slots.len()];
        self.store.get(slot.span)
    }

    /// Marks the message queued last as one that may wait.
    pub(super) fn mark_last(&mut self, defer: Defer) {
        let last = (self.head + self.count + self.slots.len() - 1) % self.slots.len();
        self.slots[last].deferrable = Some(Deferrable(defer));
    }

    /// The message [`OutQueue::pop`] returned last, its bytes now the
    /// caller's to keep (and free).
    pub(super) fn take_popped(&mut self) -> Option<OutSlot> {
        self.popped.take()
    }

    pub(super) fn pop(&mut self) -> Option<Transmit<'_>> {
        self.release_popped();
        if self.count == 0 {
            return None;
        }
        let slot = self.slots[self.head];
        self.head = (self.head + 1) % self.slots.len();
        self.count -= 1;
        self.popped = Some(slot);
        Some(Transmit { to: slot.to, bytes: self.store.get(slot.span), deferrable: slot.deferrable })
    }
}

impl Gateway {
    /// The next message to send, or `None`.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        // Ending sessions waiting for room get their BYE now.
        while self.out.room() > 1 {
            let Some(h) = self.byes.pop_front() else { break };
            self.send_bye_and_close(h);
        }
        if self.out.count == 0 {
            self.resume_waiting();
        }
        self.out.pop()
    }

    /// The shell could not take the message [`Gateway::poll_transmit`]
    /// just returned, `deferrable`, because the transmit buffer of stream
    /// connection `conn` is full. The gateway keeps it, sends nothing that
    /// may wait to that connection until [`Gateway::stream_drained`], and
    /// then sends it again: a session's events stay in order, nothing is
    /// lost.
    pub fn transmit_deferred(&mut self, now: Instant, conn: crate::rcc::ConnId, deferrable: Deferrable) {
        self.now = now;
        if !self.congested.contains(&conn) && self.congested.len() < self.congested.capacity() {
            self.congested.push(conn);
        }
        match deferrable.0 {
            Defer::Client(h) => {
                if let Some(c) = self.transactions.client_mut(h) {
                    c.owner.state = ClientState::Waiting;
                    self.transactions.hold_client(h);
                    self.waiting = true;
                    self.counters.deferred += 1;
                }
            }
            Defer::Answer => {
                let Some(slot) = self.out.take_popped() else { return };
                let Some((_, p)) = self.pending.alloc() else {
                    self.out.store.free(slot.span);
                    self.counters.transmit_drops += 1;
                    return;
                };
                p.request = slot.span;
                p.from = slot.to;
                p.answer = true;
                self.waiting = true;
                self.counters.deferred += 1;
            }
        }
    }

    /// The transmit buffer of stream connection `conn` has room again:
    /// what waits for it goes out (through [`Gateway::poll_transmit`]).
    pub fn stream_drained(&mut self, now: Instant, conn: crate::rcc::ConnId) {
        self.now = now;
        self.congested.retain(|&c| c != conn);
    }

    /// True when a message that may wait can go to `peer` now.
    pub(super) fn room_for(&self, peer: &Peer) -> bool {
        self.out.room() > 1 && peer.transport.conn().is_none_or(|c| !self.congested.contains(&c))
    }

    /// Sends what waits for room and now has it: the gateway's own
    /// requests first in line, and answers kept back.
    pub(super) fn resume_waiting(&mut self) {
        if !self.waiting || self.out.room() <= 1 {
            return;
        }
        self.waiting = false;
        for index in 0..self.transactions.client_capacity() as u32 {
            let Some(ch) = self.transactions.client_at(index) else { continue };
            if self.transactions.client(ch).is_some_and(|c| c.owner.state == ClientState::Waiting) {
                // Leaves it waiting (and the flag set) when there is no room.
                self.start_client(ch);
            }
        }
        for index in 0..self.pending.capacity() as u32 {
            let Some(p) = self.pending.handle_at(index) else { continue };
            let Some(pending) = self.pending.get(p).filter(|p| p.answer) else { continue };
            let to = pending.from;
            if !self.room_for(&to) {
                self.waiting = true;
                continue;
            }
            // The answer's bytes go to the queue as they are.
            if self.out.push_span(to, pending.request) {
                self.out.mark_last(Defer::Answer);
            }
            if let Some(pending) = self.pending.get_mut(p) {
                pending.answer = false;
                pending.request = Span::default();
            }
            self.pending.free(p);
        }
    }
}
