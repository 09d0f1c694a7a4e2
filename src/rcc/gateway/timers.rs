//! RFC 3261's retransmission timers: a message kept to be sent again with
//! its back-off (T1 doubling up to T2), and the heap of deadlines of the
//! gateway's own transactions and kept responses.

use super::*;

/// A message the gateway may send again: its bytes, where they go, and
/// RFC 3261's retransmission back-off (T1, doubling up to T2).
pub(super) struct Stored {
    pub(super) to: Peer,
    pub(super) bytes: Box<[u8]>,
    pub(super) len: usize,
    pub(super) interval: Duration,
    pub(super) retransmit_at: Option<Instant>,
}

impl Stored {
    pub(super) fn new(to: Peer, size: usize) -> Self {
        Stored { to, bytes: vec![0; size].into_boxed_slice(), len: 0, interval: T1, retransmit_at: None }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Restarts the back-off at T1; when `retransmit`, the first
    /// retransmission is due one T1 from `now`. Returns that time.
    pub(super) fn arm(&mut self, now: Instant, retransmit: bool) -> Option<Instant> {
        self.interval = T1;
        self.retransmit_at = retransmit.then_some(now + T1);
        self.retransmit_at
    }

    /// If a retransmission is due by `now`: doubles the interval (up to
    /// T2) and returns when the one after it is due.
    pub(super) fn back_off(&mut self, now: Instant) -> Option<Instant> {
        self.retransmit_at.filter(|&at| at <= now)?;
        self.interval = (self.interval * 2).min(T2);
        self.retransmit_at = Some(now + self.interval);
        self.retransmit_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Client(u64),
    Completed(u64),
}

impl Gateway {
    pub(super) fn schedule(&mut self, at: Instant, timer: Timer) {
        if self.timers.len() == self.timer_capacity {
            // Only stale entries can fill the heap: drop those not due
            // for a live item. Never grows past its boot capacity.
            let live: Vec<Reverse<(Instant, Timer)>> = Vec::new();
            let mut kept = core::mem::replace(&mut self.timers, BinaryHeap::from(live));
            kept.retain(|Reverse((at, t))| match *t {
                Timer::Client(h) => self
                    .client
                    .get(Handle::unpack(h))
                    .is_some_and(|c| c.message.retransmit_at == Some(*at) || c.timeout_at == *at),
                Timer::Completed(h) => self
                    .completed
                    .get(Handle::unpack(h))
                    .is_some_and(|c| c.message.retransmit_at == Some(*at) || c.expires_at == *at),
            });
            self.timers = kept;
        }
        if self.timers.len() < self.timer_capacity {
            self.timers.push(Reverse((at, timer)));
        }
    }
}
