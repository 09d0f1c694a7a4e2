//! A fixed table of deadlines, one place per transaction and kind, kept in
//! order by an indexed binary heap: setting, moving or clearing a deadline
//! updates its place, so the table holds no stale entries and never grows
//! (quinn-proto's `TimerTable`, for many transactions instead of one
//! connection).

use std::time::Instant;

/// Marks a place not in the heap.
const ABSENT: u32 = u32::MAX;

/// Deadlines by place (`0..capacity`), the earliest found at once.
pub struct Timers {
    /// Each place's deadline, if set.
    at: Box<[Option<Instant>]>,
    /// The places with a deadline, as a binary min-heap on `at`.
    heap: Box<[u32]>,
    /// Where each place is in `heap` ([`ABSENT`]: nowhere).
    position: Box<[u32]>,
    len: usize,
}

impl Timers {
    /// A table of `capacity` places, none set.
    pub fn new(capacity: usize) -> Timers {
        Timers {
            at: vec![None; capacity].into_boxed_slice(),
            heap: vec![0; capacity].into_boxed_slice(),
            position: vec![ABSENT; capacity].into_boxed_slice(),
            len: 0,
        }
    }

    /// Deadlines set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no deadline is set.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The deadline of `place`.
    pub fn get(&self, place: usize) -> Option<Instant> {
        self.at[place]
    }

    /// Sets (`Some`) or clears (`None`) the deadline of `place`.
    pub fn set(&mut self, place: usize, at: Option<Instant>) {
        let old = core::mem::replace(&mut self.at[place], at);
        let i = self.position[place];
        match (at, i == ABSENT) {
            (None, true) => {}
            (None, false) => self.remove_at(i as usize),
            (Some(_), true) => {
                self.heap[self.len] = place as u32;
                self.position[place] = self.len as u32;
                self.len += 1;
                self.up(self.len - 1);
            }
            (Some(new), false) => {
                if old.is_some_and(|old| new < old) {
                    self.up(i as usize);
                } else {
                    self.down(i as usize);
                }
            }
        }
    }

    /// The earliest deadline and its place.
    pub fn next(&self) -> Option<(Instant, usize)> {
        let place = *self.heap[..self.len].first()? as usize;
        Some((self.at[place].expect("a place in the heap has a deadline"), place))
    }

    fn key(&self, i: usize) -> Instant {
        self.at[self.heap[i] as usize].expect("a place in the heap has a deadline")
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.heap.swap(i, j);
        self.position[self.heap[i] as usize] = i as u32;
        self.position[self.heap[j] as usize] = j as u32;
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.key(parent) <= self.key(i) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if left < self.len && self.key(left) < self.key(least) {
                least = left;
            }
            if right < self.len && self.key(right) < self.key(least) {
                least = right;
            }
            if least == i {
                break;
            }
            self.swap(i, least);
            i = least;
        }
    }

    fn remove_at(&mut self, i: usize) {
        let place = self.heap[i] as usize;
        self.len -= 1;
        if i != self.len {
            self.swap(i, self.len);
            // The one moved into `i` may belong above or below it.
            self.up(i);
            self.down(i);
        }
        self.position[place] = ABSENT;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_earliest_comes_first_and_a_cleared_deadline_is_gone() {
        let t0 = Instant::now();
        let mut timers = Timers::new(4);
        assert_eq!(timers.next(), None);
        timers.set(2, Some(t0 + Duration::from_secs(3)));
        timers.set(0, Some(t0 + Duration::from_secs(1)));
        timers.set(3, Some(t0 + Duration::from_secs(2)));
        assert_eq!(timers.next(), Some((t0 + Duration::from_secs(1), 0)));
        timers.set(0, None);
        assert_eq!(timers.next(), Some((t0 + Duration::from_secs(2), 3)));
        timers.set(2, Some(t0)); // moved earlier
        assert_eq!(timers.next(), Some((t0, 2)));
        timers.set(2, Some(t0 + Duration::from_secs(9))); // and later
        assert_eq!(timers.next(), Some((t0 + Duration::from_secs(2), 3)));
        assert_eq!(timers.len(), 2);
        timers.set(1, None); // never set: nothing changes
        assert_eq!(timers.len(), 2);
    }

    proptest! {
        /// Any sequence of sets and clears leaves the same earliest
        /// deadline as a plain scan of what is set, and the same count.
        #[test]
        fn agrees_with_a_scan(ops in proptest::collection::vec((0usize..16, proptest::option::of(0u64..50)), 0..200)) {
            let t0 = Instant::now();
            let mut timers = Timers::new(16);
            let mut model: [Option<Instant>; 16] = [None; 16];
            for (place, secs) in ops {
                let at = secs.map(|s| t0 + Duration::from_secs(s));
                timers.set(place, at);
                model[place] = at;
                let earliest = model.iter().flatten().min().copied();
                prop_assert_eq!(timers.next().map(|(at, _)| at), earliest);
                if let Some((at, place)) = timers.next() {
                    prop_assert_eq!(model[place], Some(at));
                }
                prop_assert_eq!(timers.len(), model.iter().flatten().count());
            }
        }
    }
}
