//! A fixed-capacity hash index: 64-bit key hashes to slot numbers, open
//! addressing with linear probing and backward-shift deletion (no
//! tombstones, so lookups stay short however many entries come and go).
//!
//! The index stores only hashes; the caller keeps the keys in its own
//! table and checks each candidate, so two keys with one hash both work.
//! Allocated once at boot; never grows.

/// FNV-1a over bytes, with ASCII case folded when asked.
pub fn hash(parts: &[&[u8]], fold_case: bool) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff; // a separator, so ("ab","c") and ("a","bc") differ
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in part.iter() {
            h ^= u64::from(if fold_case { b.to_ascii_lowercase() } else { b });
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // Never zero: zero marks an empty bucket.
    h | 1
}

/// Maps hashes to slot numbers; at most half full.
pub struct Index {
    hashes: Box<[u64]>,
    slots: Box<[u32]>,
    mask: usize,
    len: usize,
}

impl Index {
    /// An index for up to `entries` entries.
    pub fn new(entries: usize) -> Index {
        let buckets = (entries.max(1) * 2).next_power_of_two();
        Index {
            hashes: vec![0; buckets].into_boxed_slice(),
            slots: vec![0; buckets].into_boxed_slice(),
            mask: buckets - 1,
            len: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `slot` under `hash`. The caller keeps at most `entries` in it.
    pub fn insert(&mut self, hash: u64, slot: u32) {
        assert!(self.len < self.hashes.len() / 2, "index sized for its table");
        let mut i = hash as usize & self.mask;
        while self.hashes[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.hashes[i] = hash;
        self.slots[i] = slot;
        self.len += 1;
    }

    /// The slots filed under `hash`, for the caller to check.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let mut i = hash as usize & self.mask;
        core::iter::from_fn(move || {
            while self.hashes[i] != 0 {
                let at = i;
                i = (i + 1) & self.mask;
                if self.hashes[at] == hash {
                    return Some(self.slots[at]);
                }
            }
            None
        })
    }

    /// Removes the entry of `slot` under `hash`, if there is one.
    pub fn remove(&mut self, hash: u64, slot: u32) {
        let mut i = hash as usize & self.mask;
        loop {
            if self.hashes[i] == 0 {
                return;
            }
            if self.hashes[i] == hash && self.slots[i] == slot {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: move later entries of the run into the hole when
        // their home bucket allows it.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        while self.hashes[j] != 0 {
            let home = self.hashes[j] as usize & self.mask;
            let between = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !between {
                self.hashes[hole] = self.hashes[j];
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.hashes[hole] = 0;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_with_collisions() {
        let mut index = Index::new(8);
        // Same hash for two slots, and hashes that share buckets.
        index.insert(5, 1);
        index.insert(5, 2);
        index.insert(21, 3);
        index.insert(37, 4);
        assert_eq!(index.candidates(5).collect::<Vec<_>>(), [1, 2]);
        index.remove(5, 1);
        assert_eq!(index.candidates(5).collect::<Vec<_>>(), [2]);
        assert_eq!(index.candidates(21).collect::<Vec<_>>(), [3]);
        assert_eq!(index.candidates(37).collect::<Vec<_>>(), [4]);
        index.remove(99, 9);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn churn_against_a_model() {
        // Deterministic churn: whatever is in the model is found, nothing else.
        let mut index = Index::new(64);
        let mut model: Vec<(u64, u32)> = Vec::new();
        let mut x: u64 = 12345;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = (x % 40) * 16 + 1; // few distinct hashes, heavy collisions
            if model.len() < 64 && (x >> 40) % 3 != 0 {
                index.insert(h, step);
                model.push((h, step));
            } else if !model.is_empty() {
                let (h, s) = model.swap_remove((x >> 20) as usize % model.len());
                index.remove(h, s);
            }
            if step % 97 == 0 {
                for &(h, s) in &model {
                    assert!(index.candidates(h).any(|c| c == s), "step {step}: lost {s}");
                }
                assert_eq!(index.len(), model.len());
            }
        }
    }

    #[test]
    fn hashes() {
        assert_eq!(hash(&[b"Call-ID"], true), hash(&[b"call-id"], true));
        assert_ne!(hash(&[b"Call-ID"], false), hash(&[b"call-id"], false));
        assert_ne!(hash(&[b"ab", b"c"], false), hash(&[b"a", b"bc"], false));
        assert_ne!(hash(&[], false), 0);
    }
}
