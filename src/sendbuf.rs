//! The fixed transmit buffer of one stream connection: the protocol core
//! appends whole messages, the shell writes out what is pending and says
//! how much went. A message that does not fit is refused whole.

use crate::outbuf::{OutBuf, Overflow};

/// `N` bytes of messages waiting to be written.
#[derive(Debug)]
pub struct SendBuf<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
}

impl<const N: usize> Default for SendBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SendBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        SendBuf { buf: [0; N], start: 0, end: 0 }
    }

    /// The bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Bytes that can still be appended.
    pub fn room(&self) -> usize {
        N - (self.end - self.start)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Records that the first `n` pending bytes were written.
    pub fn written(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Appends one message written by `write` in place; on [`Overflow`]
    /// nothing of it stays.
    pub fn append<T>(&mut self, write: impl FnOnce(&mut OutBuf<'_>) -> Result<T, Overflow>) -> Result<T, Overflow> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let mut out = OutBuf::new(&mut self.buf[self.end..]);
        let value = write(&mut out)?;
        self.end += out.len();
        Ok(value)
    }

    /// Drops everything pending (the connection is gone).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_write_compact_refuse() {
        let mut b = SendBuf::<8>::new();
        b.append(|o| o.put(b"abcde")).unwrap();
        b.written(3);
        assert_eq!(b.pending(), b"de");
        b.append(|o| o.put(b"fghij")).unwrap();
        assert_eq!(b.pending(), b"defghij");
        assert_eq!(b.append(|o| o.put(b"xy")), Err(Overflow));
        assert_eq!(b.pending(), b"defghij", "a refused message leaves nothing");
        b.written(7);
        assert!(b.is_empty());
    }
}
