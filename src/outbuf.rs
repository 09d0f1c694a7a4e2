//! A bounded writer over a caller-provided byte buffer.
//!
//! Every encoder in the crate (SIP messages, CSTA XML, CTI frames) writes
//! through [`OutBuf`]: it never allocates, and running out of room is the
//! value [`Overflow`], never a panic and never a silently truncated message.

use core::fmt;

/// The message did not fit into the buffer it was being written into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message does not fit the output buffer")
    }
}

impl std::error::Error for Overflow {}

/// Appends bytes to a fixed buffer, refusing what does not fit.
///
/// A failed write leaves the bytes written before it in place; callers
/// abandon the whole message on [`Overflow`].
#[derive(Debug)]
pub struct OutBuf<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> OutBuf<'b> {
    /// Starts writing at the beginning of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        OutBuf { buf, len: 0 }
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes still free in the buffer.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Gives the written bytes back with the buffer's full lifetime.
    pub fn into_bytes(self) -> &'b [u8] {
        &self.buf[..self.len]
    }

    /// Appends `bytes`, or fails without writing anything.
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Overflow> {
        let end = self.len.checked_add(bytes.len()).ok_or(Overflow)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(Overflow)?;
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Appends a string.
    pub fn put_str(&mut self, s: &str) -> Result<(), Overflow> {
        self.put(s.as_bytes())
    }

    /// Appends one byte.
    pub fn put_byte(&mut self, b: u8) -> Result<(), Overflow> {
        self.put(&[b])
    }

    /// Appends `n` in decimal, without going through `core::fmt`.
    pub fn put_decimal(&mut self, n: u64) -> Result<(), Overflow> {
        let mut digits = [0u8; 20];
        let start = format_decimal(n, &mut digits);
        self.put(&digits[start..])
    }

    /// Reserves `n` bytes to be filled later with [`OutBuf::patch`];
    /// returns their offset.
    pub fn reserve(&mut self, n: usize) -> Result<usize, Overflow> {
        let at = self.len;
        let end = at.checked_add(n).ok_or(Overflow)?;
        if end > self.buf.len() {
            return Err(Overflow);
        }
        self.buf[at..end].fill(b' ');
        self.len = end;
        Ok(at)
    }

    /// Overwrites bytes already written at `at`.
    ///
    /// # Panics
    /// Never for offsets returned by [`OutBuf::reserve`] with a matching
    /// length; other ranges outside what was written are a caller bug and
    /// are refused with [`Overflow`].
    pub fn patch(&mut self, at: usize, bytes: &[u8]) -> Result<(), Overflow> {
        let end = at.checked_add(bytes.len()).ok_or(Overflow)?;
        if end > self.len {
            return Err(Overflow);
        }
        self.buf[at..end].copy_from_slice(bytes);
        Ok(())
    }

    /// Drops everything written after the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Removes `n` bytes at offset `at`, moving everything after them left.
    pub fn remove(&mut self, at: usize, n: usize) -> Result<(), Overflow> {
        let end = at.checked_add(n).ok_or(Overflow)?;
        if end > self.len {
            return Err(Overflow);
        }
        self.buf.copy_within(end..self.len, at);
        self.len -= n;
        Ok(())
    }
}

impl fmt::Write for OutBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_str(s).map_err(|_| fmt::Error)
    }
}

/// Writes `n` right-aligned into `digits` and returns where it starts.
pub(crate) fn format_decimal(mut n: u64, digits: &mut [u8; 20]) -> usize {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_does_not_fit_without_partial_write() {
        let mut buf = [0u8; 5];
        let mut out = OutBuf::new(&mut buf);
        out.put(b"abc").unwrap();
        assert_eq!(out.put(b"def"), Err(Overflow));
        assert_eq!(out.as_bytes(), b"abc");
        out.put(b"de").unwrap();
        assert_eq!(out.put_byte(b'x'), Err(Overflow));
        assert_eq!(out.as_bytes(), b"abcde");
    }

    #[test]
    fn decimals() {
        let mut buf = [0u8; 64];
        let mut out = OutBuf::new(&mut buf);
        for n in [0u64, 7, 10, 4711, u64::MAX] {
            out.put_decimal(n).unwrap();
            out.put_byte(b',').unwrap();
        }
        assert_eq!(out.as_bytes(), b"0,7,10,4711,18446744073709551615,");
    }

    #[test]
    fn reserve_patch_remove() {
        let mut buf = [0u8; 16];
        let mut out = OutBuf::new(&mut buf);
        out.put(b"L:").unwrap();
        let at = out.reserve(5).unwrap();
        out.put(b"|body").unwrap();
        out.patch(at, b"12").unwrap();
        out.remove(at + 2, 3).unwrap();
        assert_eq!(out.as_bytes(), b"L:12|body");
        assert_eq!(out.patch(8, b"xx"), Err(Overflow));
        assert_eq!(out.remove(8, 5), Err(Overflow));
        assert_eq!(out.reserve(100), Err(Overflow));
    }
}
