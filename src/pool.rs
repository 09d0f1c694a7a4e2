//! A fixed pool of items reached by generation-checked handles: a handle
//! to an item that was freed and reused no longer reaches it. Its memory
//! is reserved once, at boot, and never grows; an item is made the first
//! time it is taken, so the pages of a table never filled are never
//! touched (an idle gateway does not pay for its capacity).

/// A reference to an item of a [`Pool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Handle {
    /// The item's index.
    pub index: u32,
    /// The item's generation when the handle was made.
    pub generation: u32,
}

impl Handle {
    /// The handle as one number (for request tags and branches).
    pub fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The handle [`Handle::pack`] made `n` from.
    pub fn unpack(n: u64) -> Handle {
        Handle { index: n as u32, generation: (n >> 32) as u32 }
    }
}

/// `capacity` items, each free or in use.
pub struct Pool<T> {
    /// The items made so far, in room reserved for `capacity`: pushing
    /// never reallocates.
    items: Vec<T>,
    capacity: usize,
    make: Box<dyn Fn() -> T>,
    generations: Box<[u32]>,
    in_use: Box<[bool]>,
    /// Items made and freed, to be taken again before a new one is made.
    free: Vec<u32>,
}

impl<T> Pool<T> {
    /// A pool of `capacity` items, each made by `make` when first taken.
    pub fn new(capacity: usize, make: impl Fn() -> T + 'static) -> Pool<T> {
        Pool {
            items: Vec::with_capacity(capacity),
            capacity,
            make: Box::new(make),
            generations: vec![0; capacity].into_boxed_slice(),
            in_use: vec![false; capacity].into_boxed_slice(),
            free: Vec::with_capacity(capacity),
        }
    }

    /// The bytes one item reserves: itself, its generation, its in-use
    /// flag and its place in the free list.
    pub fn entry_footprint() -> usize {
        size_of::<T>() + size_of::<u32>() + size_of::<bool>() + size_of::<u32>()
    }

    /// Items in use.
    pub fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }

    /// True when nothing is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items the pool holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes a free item, or `None` when all are in use. The item keeps
    /// what its last user left in it: the caller resets what it uses.
    pub fn alloc(&mut self) -> Option<(Handle, &mut T)> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.items.len() < self.capacity => {
                self.items.push((self.make)());
                (self.items.len() - 1) as u32
            }
            None => return None,
        };
        let i = index as usize;
        self.in_use[i] = true;
        Some((Handle { index, generation: self.generations[i] }, &mut self.items[i]))
    }

    /// Gives an item back; the handles to it stop working.
    pub fn free(&mut self, h: Handle) {
        if self.get(h).is_some() {
            let i = h.index as usize;
            self.in_use[i] = false;
            self.generations[i] = self.generations[i].wrapping_add(1);
            self.free.push(h.index);
        }
    }

    /// The item `h` reaches, if it is still the one `h` was made for.
    pub fn get(&self, h: Handle) -> Option<&T> {
        let i = h.index as usize;
        (i < self.items.len() && self.in_use[i] && self.generations[i] == h.generation).then(|| &self.items[i])
    }

    /// Like [`Pool::get`], mutable.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        let i = h.index as usize;
        (i < self.items.len() && self.in_use[i] && self.generations[i] == h.generation).then(|| &mut self.items[i])
    }

    /// The handle of the item at `index` if it is in use (index lookups).
    pub fn handle_at(&self, index: u32) -> Option<Handle> {
        let i = index as usize;
        (i < self.items.len() && self.in_use[i]).then(|| Handle { index, generation: self.generations[i] })
    }

    /// Every item in use, with its handle.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter(|(i, _)| self.in_use[*i])
            .map(|(i, item)| (Handle { index: i as u32, generation: self.generations[i] }, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_go_stale_when_items_are_reused() {
        let mut pool = Pool::new(2, || 0u32);
        let (a, item) = pool.alloc().unwrap();
        *item = 7;
        let (b, _) = pool.alloc().unwrap();
        assert!(pool.alloc().is_none(), "full");
        assert_eq!(pool.get(a), Some(&7));
        pool.free(a);
        assert_eq!(pool.get(a), None);
        let (c, _) = pool.alloc().unwrap();
        assert_eq!(c.index, a.index);
        assert_ne!(c, a);
        assert_eq!(pool.get(a), None, "the old handle does not reach the new item");
        assert_eq!(Handle::unpack(b.pack()), b);
        pool.free(a); // freeing twice is harmless
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.iter().count(), 2);
    }
}
