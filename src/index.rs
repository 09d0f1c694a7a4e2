//! A fixed-capacity hash index: 64-bit key hashes to slot numbers, open
//! addressing with linear probing and backward-shift deletion (no
//! tombstones, so lookups stay short however many entries come and go).
//!
//! The index stores only hashes; the caller keeps the keys in its own
//! table and checks each candidate, so two keys with one hash both work.
//! Allocated once at boot; never grows.

/// A hash of `parts`, with ASCII case folded when asked: eight bytes at a
/// time, each word mixed in with a folded multiply (the 128-bit product's
/// halves xored, as foldhash does, so a difference in any bit reaches
/// every bit), each part's length mixed in so that ("ab","c") and
/// ("a","bc") differ. Never zero.
pub fn hash(parts: &[&[u8]], fold_case: bool) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| {
        let product = u128::from(h ^ w) * u128::from(K);
        (product as u64) ^ ((product >> 64) as u64)
    };
    let fold = |w: u64| if fold_case { ascii_lowercase(w) } else { w };
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for part in parts {
        h = mix(h, part.len() as u64);
        let mut words = part.chunks_exact(8);
        for word in &mut words {
            h = mix(h, fold(u64::from_le_bytes(word.try_into().expect("chunks of eight"))));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            h = mix(h, fold(u64::from_le_bytes(tail)));
        }
    }
    // A last multiply so the low bits, the index's buckets, depend on all.
    h = mix(h, K);
    // Never zero: zero marks an empty bucket. The top bit, not the low
    // one: the index's buckets are the low bits.
    h | 1 << 63
}

/// The eight bytes of `w` with ASCII upper-case letters made lower-case,
/// every other byte (non-ASCII ones too) unchanged.
fn ascii_lowercase(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let seven = w & !HIGH;
    // A byte's high bit is set when it is at least b'A' (0x41), resp.
    // beyond b'Z' (0x5b); seven bits plus these never carry into the next.
    let from_a = seven + 0x3f3f_3f3f_3f3f_3f3f;
    let beyond_z = seven + 0x2525_2525_2525_2525;
    let upper = from_a & !beyond_z & !w & HIGH;
    w | (upper >> 2)
}

/// Maps hashes to slot numbers; at most half full. A bucket is eight
/// bytes: the hash's low 32 bits (its top bit set, so never zero) and the
/// slot; a candidate whose hash agrees in those bits is checked by the
/// caller like any other.
pub struct Index {
    buckets: Box<[u64]>,
    mask: usize,
    len: usize,
}

/// The bucket of `slot` under `hash`: never zero, zero is empty.
fn entry(hash: u64, slot: u32) -> u64 {
    u64::from(tag(hash)) << 32 | u64::from(slot)
}

fn tag(hash: u64) -> u32 {
    hash as u32 | 1 << 31
}

impl Index {
    /// An index for up to `entries` entries.
    pub fn new(entries: usize) -> Index {
        let buckets = (entries.max(1) * 2).next_power_of_two();
        assert!(buckets <= 1 << 31, "an index of at most 2^30 entries");
        Index { buckets: vec![0; buckets].into_boxed_slice(), mask: buckets - 1, len: 0 }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn home(&self, bucket: u64) -> usize {
        (bucket >> 32) as usize & self.mask
    }

    /// Adds `slot` under `hash`. The caller keeps at most `entries` in it.
    pub fn insert(&mut self, hash: u64, slot: u32) {
        assert!(self.len < self.buckets.len() / 2, "index sized for its table");
        let mut i = tag(hash) as usize & self.mask;
        while self.buckets[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.buckets[i] = entry(hash, slot);
        self.len += 1;
    }

    /// The slots filed under `hash`, for the caller to check.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let tag = tag(hash);
        let mut i = tag as usize & self.mask;
        core::iter::from_fn(move || {
            while self.buckets[i] != 0 {
                let at = self.buckets[i];
                i = (i + 1) & self.mask;
                if (at >> 32) as u32 == tag {
                    return Some(at as u32);
                }
            }
            None
        })
    }

    /// Removes the entry of `slot` under `hash`, if there is one.
    pub fn remove(&mut self, hash: u64, slot: u32) {
        let wanted = entry(hash, slot);
        let mut i = tag(hash) as usize & self.mask;
        loop {
            if self.buckets[i] == 0 {
                return;
            }
            if self.buckets[i] == wanted {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: move later entries of the run into the hole when
        // their home bucket allows it.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        while self.buckets[j] != 0 {
            let home = self.home(self.buckets[j]);
            let between = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !between {
                self.buckets[hole] = self.buckets[j];
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.buckets[hole] = 0;
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
        assert_ne!(hash(&[b""], false), hash(&[], false));
        assert_ne!(hash(&[b"abcdefgh"], false), hash(&[b"abcdefgh\0"], false));
    }

    #[test]
    fn folding_is_ascii_lowercase_for_every_byte_in_every_position() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = *b"xY0-@[z`";
                word[at] = b;
                let folded = ascii_lowercase(u64::from_le_bytes(word)).to_le_bytes();
                assert_eq!(folded, word.map(|c| c.to_ascii_lowercase()), "byte {b:#04x} at {at}");
            }
        }
        let mixed = b"Alice@Example.COM;tel:+1-555-0100\xc3\x9c";
        assert_eq!(hash(&[mixed], true), hash(&[&mixed.to_ascii_lowercase()], true));
        assert_eq!(hash(&[mixed], true), hash(&[&mixed.to_ascii_lowercase()], false));
    }

    #[test]
    fn no_collisions_among_counted_branches() {
        // A multiply-rotate hash (FxHash) collided on these: a difference
        // in the last byte of one word cancelled one in the next.
        let mut seen = std::collections::HashSet::new();
        for i in 1..200_000u32 {
            let branch = format!("z9hG4bKload{i}");
            assert!(seen.insert(hash(&[branch.as_bytes(), b"INFO", &[127, 0, 0, 1, 0x13, 0xc4]], false)), "{branch}");
        }
    }

    #[test]
    fn low_bits_spread() {
        // Keys that differ in one character land in many buckets of 64.
        let mut seen = [false; 64];
        for i in 0..64u32 {
            let key = format!("a84b4c76e66710-{i}@pc33.atlanta.example.com");
            seen[(hash(&[key.as_bytes()], false) & 63) as usize] = true;
        }
        let buckets = seen.iter().filter(|&&s| s).count();
        assert!(buckets >= 32, "{buckets} buckets");
    }
}
