//! A fixed arena of bytes shared by many variable-sized records: a
//! session's strings, a kept or queued SIP message. Each record takes a
//! contiguous run of small granules, the first run long enough (a bitmap
//! marks the granules in use), so a record costs its own size rounded up
//! to a granule, not a worst-case slot, and the records stay packed at the
//! start of the arena: the pages touched are those of the most records
//! ever held at once, however many came and went.
//!
//! Sized once, at boot; never grows. The arena is zeroed memory the
//! system hands out lazily: a page is resident only once a record was
//! written to it, so an idle gateway costs the bitmap alone. A full arena
//! is [`None`] from [`ByteStore::put`], which the caller refuses cleanly.

/// Where a record is: its first granule and its length in bytes. Made
/// by [`ByteStore::put`] and [`ByteStore::alloc`]; given back once with
/// [`ByteStore::free`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The record's length in bytes.
    pub fn len(self) -> usize {
        self.len as usize
    }

    /// True for the empty record (it takes no granule).
    pub fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// What a store holds, in bytes: its size, what its records take now,
/// and the most they ever reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// The arena's size.
    pub capacity: usize,
    /// Taken by records now, granules rounded up.
    pub in_use: usize,
    /// The furthest byte ever taken ([`ByteStore::high_water`]).
    pub high_water: usize,
}

/// The arena, its bitmap of granules in use, and where a search starts.
pub struct ByteStore {
    bytes: Box<[u8]>,
    used: Box<[u64]>,
    granule: usize,
    granules: usize,
    /// No granule before this one is free.
    first_free: usize,
    in_use: usize,
    /// The end of the furthest granule ever taken: the pages before it
    /// have been touched.
    high_water: usize,
}

impl ByteStore {
    /// An arena of `capacity` bytes (rounded down to whole granules) in
    /// granules of `granule` bytes.
    pub fn new(capacity: usize, granule: usize) -> ByteStore {
        let granule = granule.max(1);
        let granules = capacity / granule;
        let words = granules.div_ceil(64).max(1);
        let mut used = vec![0u64; words].into_boxed_slice();
        // The bits past the last granule read as used: a search stops there.
        if granules % 64 != 0 {
            used[words - 1] = !0 << (granules % 64);
        } else if granules == 0 {
            used[0] = !0;
        }
        ByteStore {
            bytes: vec![0; granules * granule].into_boxed_slice(),
            used,
            granule,
            granules,
            first_free: 0,
            in_use: 0,
            high_water: 0,
        }
    }

    /// The bytes a store of `capacity` in granules of `granule` reserves:
    /// its arena and its bitmap.
    pub fn footprint(capacity: usize, granule: usize) -> usize {
        let granules = capacity / granule.max(1);
        granules * granule.max(1) + granules.div_ceil(64).max(1) * 8
    }

    /// Its size, its bytes in use and its high water.
    pub fn usage(&self) -> Usage {
        Usage { capacity: self.capacity(), in_use: self.in_use, high_water: self.high_water }
    }

    /// The arena's size in bytes.
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes taken by records, granules rounded up.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// The most bytes of the arena ever reached: what it costs in
    /// resident memory, whatever it holds now.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// A record of `len` bytes (their content what the run held last),
    /// or `None` when no run of free granules is long enough.
    pub fn alloc(&mut self, len: usize) -> Option<Span> {
        if len == 0 {
            return Some(Span::default());
        }
        let len32 = u32::try_from(len).ok()?;
        let n = len.div_ceil(self.granule);
        let start = self.search(self.first_free, n)?;
        self.mark(start, n, true);
        self.high_water = self.high_water.max((start + n) * self.granule);
        if start == self.first_free {
            self.first_free = start + n;
        }
        self.in_use += n * self.granule;
        Some(Span { start: start as u32, len: len32 })
    }

    /// A record holding `parts` one after the other, or `None` when the
    /// arena has no room for it.
    pub fn put(&mut self, parts: &[&[u8]]) -> Option<Span> {
        let span = self.alloc(parts.iter().map(|p| p.len()).sum())?;
        let mut at = 0;
        let dst = self.get_mut(span);
        for part in parts {
            dst[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Some(span)
    }

    /// Gives a record's granules back. `span` must come from this store
    /// and not have been freed since.
    pub fn free(&mut self, span: Span) {
        if span.is_empty() {
            return;
        }
        let n = span.len().div_ceil(self.granule);
        debug_assert!(self.is_marked(span.start as usize, n), "a span freed twice or from another store");
        self.mark(span.start as usize, n, false);
        self.first_free = self.first_free.min(span.start as usize);
        self.in_use -= n * self.granule;
    }

    /// The record's bytes.
    pub fn get(&self, span: Span) -> &[u8] {
        let at = span.start as usize * self.granule;
        &self.bytes[at..at + span.len()]
    }

    /// The record's bytes, to write.
    pub fn get_mut(&mut self, span: Span) -> &mut [u8] {
        let at = span.start as usize * self.granule;
        &mut self.bytes[at..at + span.len()]
    }

    /// The first run of `n` free granules from granule `from` on.
    fn search(&self, from: usize, n: usize) -> Option<usize> {
        let (mut i, mut run) = (from, from);
        while i < self.granules {
            if i - run >= n {
                return Some(run);
            }
            let bits = self.used[i / 64] >> (i % 64);
            if bits & 1 == 1 {
                // Skip the granules in use; the shifted-in zeros of `bits`
                // are ones here, so the count stops at the word's end.
                i += (!bits).trailing_zeros() as usize;
                run = i;
            } else if bits == 0 {
                i += 64 - i % 64;
            } else {
                i += bits.trailing_zeros() as usize;
            }
        }
        (i.min(self.granules).saturating_sub(run) >= n).then_some(run)
    }

    fn mark(&mut self, start: usize, n: usize, used: bool) {
        let mut i = start;
        while i < start + n {
            let (word, bit) = (i / 64, i % 64);
            let count = (64 - bit).min(start + n - i);
            let mask = if count == 64 { !0 } else { ((1u64 << count) - 1) << bit };
            if used {
                self.used[word] |= mask;
            } else {
                self.used[word] &= !mask;
            }
            i += count;
        }
    }

    fn is_marked(&self, start: usize, n: usize) -> bool {
        (start..start + n).all(|i| self.used[i / 64] >> (i % 64) & 1 == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_take_their_size_rounded_to_a_granule_and_come_back() {
        let mut store = ByteStore::new(1000, 16);
        assert_eq!(store.capacity(), 992);
        let a = store.put(&[b"sip:alice", b"@example.com"]).unwrap();
        assert_eq!(store.get(a), b"sip:alice@example.com");
        assert_eq!((store.in_use(), store.high_water()), (32, 32));
        let big = store.alloc(900).unwrap();
        assert_eq!(store.alloc(100), None, "960 of 992 bytes taken");
        assert_eq!(store.alloc(0), Some(Span::default()), "the empty record takes nothing");
        store.free(big);
        let b = store.put(&[&[7; 960]]).unwrap();
        assert_eq!(store.get(a), b"sip:alice@example.com", "untouched by its neighbours");
        assert!(store.get(b).iter().all(|&x| x == 7));
        store.free(a);
        store.free(b);
        assert_eq!(store.in_use(), 0);
        assert_eq!(store.alloc(992).map(Span::len), Some(992), "everything free again, in one run");
        assert_eq!(store.high_water(), 992);
    }

    #[test]
    fn a_run_is_found_around_the_records_in_use() {
        let mut store = ByteStore::new(64 * 200, 64);
        let spans: Vec<Span> = (0..200).map(|_| store.alloc(64).unwrap()).collect();
        // Free every other granule, then two odd ones in the second word.
        for s in spans.iter().step_by(2) {
            store.free(*s);
        }
        assert_eq!(store.alloc(128), None, "no two free granules side by side");
        store.free(spans[69]);
        store.free(spans[71]);
        let run = store.alloc(64 * 5).unwrap();
        assert_eq!(run.start, 68, "granules 68 to 72 are the first five free in a row");
        let first = store.alloc(64).unwrap();
        assert_eq!(first.start, 0, "the first free granule, wherever the last record went");
    }

    proptest! {
        /// Against a model: records never overlap, keep their bytes, go to
        /// the first run long enough, and a request fails only when there
        /// is none.
        #[test]
        fn records_never_overlap_and_keep_their_bytes(ops in proptest::collection::vec((0usize..700, any::<bool>()), 1..300)) {
            let granule = 32;
            let mut store = ByteStore::new(4096 + 100, granule);
            let granules = store.capacity() / granule;
            let mut model = vec![false; granules];
            let mut live: Vec<(Span, u8)> = Vec::new();
            for (i, (len, free_one)) in ops.into_iter().enumerate() {
                if free_one && !live.is_empty() {
                    let (span, _) = live.swap_remove(len % live.len());
                    store.free(span);
                    let start = span.start as usize;
                    model[start..start + span.len().div_ceil(granule)].iter_mut().for_each(|g| *g = false);
                    continue;
                }
                let n = len.div_ceil(granule);
                let first_fit = (0..granules).find(|&s| s + n <= granules && model[s..s + n].iter().all(|g| !g));
                let fill = i as u8;
                match store.put(&[&vec![fill; len]]) {
                    Some(span) => {
                        let start = span.start as usize;
                        prop_assert_eq!(Some(start).filter(|_| n > 0), first_fit.filter(|_| n > 0), "first fit");
                        prop_assert!(model[start..start + n].iter().all(|g| !g), "overlap at {start}");
                        model[start..start + n].iter_mut().for_each(|g| *g = true);
                        live.push((span, fill));
                    }
                    None => prop_assert!(first_fit.is_none(), "refused {len} bytes with a free run"),
                }
                for (span, fill) in &live {
                    prop_assert!(store.get(*span).iter().all(|b| b == fill));
                }
                prop_assert_eq!(store.in_use(), model.iter().filter(|g| **g).count() * granule);
            }
        }
    }
}
