//! The fixed receive buffer of one stream connection (a SIP TCP/TLS
//! connection, a CTI node link): the shell reads into its spare room, the
//! framer takes whole frames from its front, and what is left of a partial
//! frame moves to the front before the next read.

/// `N` bytes of received, not yet framed data.
#[derive(Debug)]
pub struct RecvBuf<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
}

impl<const N: usize> Default for RecvBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RecvBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        RecvBuf { buf: [0; N], start: 0, end: 0 }
    }

    /// Bytes received but not yet consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// True when the pending bytes fill the whole buffer: a frame that is
    /// still partial now can never complete.
    pub fn is_full(&self) -> bool {
        self.end - self.start == N
    }

    /// Room to read into; hand the count read to [`RecvBuf::filled`].
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`RecvBuf::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(N);
    }

    /// Copies as much of `bytes` as fits; returns how much that was.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let spare = self.spare();
        let n = bytes.len().min(spare.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.filled(n);
        n
    }

    /// Drops everything pending (after a framing error, or a new connection).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The pending bytes and a handle to consume from their front while
    /// they are borrowed: a frame parsed from them can be handed out with
    /// the buffer's lifetime.
    pub fn split(&mut self) -> (&[u8], Consume<'_>) {
        (&self.buf[self.start..self.end], Consume { start: &mut self.start })
    }
}

/// Consumes bytes from the front of a [`RecvBuf`] split by [`RecvBuf::split`].
#[derive(Debug)]
pub struct Consume<'b> {
    start: &'b mut usize,
}

impl Consume<'_> {
    /// Marks the first `n` pending bytes as consumed.
    pub fn consume(self, n: usize) {
        *self.start += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_compact() {
        let mut b = RecvBuf::<8>::new();
        assert_eq!(b.push(b"abcdef"), 6);
        let (pending, consume) = b.split();
        assert_eq!(pending, b"abcdef");
        consume.consume(4);
        assert_eq!(b.pending(), b"ef");
        assert_eq!(b.push(b"ghijklmn"), 6);
        assert_eq!(b.pending(), b"efghijkl");
        assert!(b.is_full());
        assert!(b.spare().is_empty());
        b.clear();
        assert_eq!(b.spare().len(), 8);
    }
}
