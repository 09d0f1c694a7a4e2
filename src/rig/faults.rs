//! Faults on a node link, as a layer the rig passes the link's bytes
//! through (smoltcp's `phy/fault_injector.rs`, for a CTI link): the node's
//! bytes dropped, split into pieces, delayed or held back; the gateway's
//! bytes left untaken (a stalled node).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What happens to the bytes of one node link. The default passes
/// everything through at once.
#[derive(Debug, Default)]
pub struct FaultInjector {
    /// The gateway's bytes are not taken: its transmit buffer fills, as
    /// with a node that reads nothing.
    pub stall: bool,
    /// The node's bytes are lost (a link cut one way).
    pub drop: bool,
    /// The node's bytes arrive in pieces of at most this many bytes, each
    /// a read of its own.
    pub split: Option<usize>,
    /// The node's bytes arrive this much later.
    pub delay: Option<Duration>,
    /// The node's bytes wait until this is cleared (they keep their order).
    pub hold: bool,
    /// Bytes on their way, with the time they may arrive.
    queue: VecDeque<(Instant, Vec<u8>)>,
}

impl FaultInjector {
    /// The node wrote `bytes` at `now`: they go on their way, or are lost.
    pub fn to_gateway(&mut self, now: Instant, bytes: Vec<u8>) {
        if self.drop || bytes.is_empty() {
            return;
        }
        self.queue.push_back((now + self.delay.unwrap_or_default(), bytes));
    }

    /// The reads the gateway gets by `now`: every piece whose time has
    /// come, in order, split as [`FaultInjector::split`] says.
    pub fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut reads = Vec::new();
        if self.hold {
            return reads;
        }
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            let (_, bytes) = self.queue.pop_front().expect("just looked");
            match self.split {
                Some(n) if n > 0 => reads.extend(bytes.chunks(n).map(<[u8]>::to_vec)),
                _ => reads.push(bytes),
            }
        }
        reads
    }

    /// When delayed bytes may arrive next (none while held).
    pub fn deadline(&self) -> Option<Instant> {
        if self.hold { None } else { self.queue.front().map(|(at, _)| *at) }
    }

    /// Bytes on their way.
    pub fn in_flight(&self) -> usize {
        self.queue.iter().map(|(_, b)| b.len()).sum()
    }

    /// The link is gone: what was on its way is lost.
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pass_split_delayed_held_or_dropped() {
        let t0 = Instant::now();
        let mut f = FaultInjector::default();
        f.to_gateway(t0, b"abcdef".to_vec());
        assert_eq!(f.due(t0), [b"abcdef".to_vec()]);

        f.split = Some(4);
        f.delay = Some(Duration::from_millis(10));
        f.to_gateway(t0, b"abcdef".to_vec());
        assert!(f.due(t0).is_empty());
        assert_eq!(f.deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(f.due(t0 + Duration::from_millis(10)), [b"abcd".to_vec(), b"ef".to_vec()]);

        f.hold = true;
        f.to_gateway(t0, b"x".to_vec());
        assert!(f.due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(f.deadline(), None);
        f.hold = false;
        assert_eq!(f.due(t0 + Duration::from_secs(1)), [b"x".to_vec()]);

        f.drop = true;
        f.to_gateway(t0, b"lost".to_vec());
        assert_eq!(f.in_flight(), 0);
    }
}
