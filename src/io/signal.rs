//! The signals an init system sends, as events for the executor.
//!
//! The handler does the one thing that is safe in a signal handler: it
//! writes the signal's number, one byte, into a socket pair. A task reads
//! the other end like any socket. The few libc calls are declared here
//! rather than pulling in a crate for them; the signal numbers are those
//! of Linux on x86_64, aarch64 and arm alike.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use smol::Async;
use smol::io::AsyncReadExt;

const SIGHUP: c_int = 1;
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;

unsafe extern "C" {
    fn signal(signum: c_int, handler: usize) -> usize;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    fn __errno_location() -> *mut c_int;
}

/// The write end of the socket pair, for the handler.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// Keeps the write end open for the life of the process.
static WRITE_END: OnceLock<UnixStream> = OnceLock::new();

extern "C" fn on_signal(signum: c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    let byte = signum as u8;
    // SAFETY: write(2) and errno are async-signal-safe; errno is put back
    // so the interrupted code sees its own. A full pair (signals nobody
    // read yet) drops the byte: the same signal is already waiting.
    unsafe {
        let errno = *__errno_location();
        write(fd, (&raw const byte).cast(), 1);
        *__errno_location() = errno;
    }
}

/// What the operator (or the init system) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: stop in order.
    Terminate(&'static str),
    /// SIGHUP: read the configuration and line file again.
    Reload,
}

/// The signals received, in order.
pub struct Signals {
    read_end: Async<UnixStream>,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP. Call once.
    pub fn install() -> std::io::Result<Signals> {
        let (read_end, write_end) = UnixStream::pair()?;
        write_end.set_nonblocking(true)?;
        WRITE_FD.store(write_end.as_raw_fd(), Ordering::Relaxed);
        if WRITE_END.set(write_end).is_err() {
            return Err(std::io::Error::other("signal handlers are already installed"));
        }
        let handler = on_signal as extern "C" fn(c_int) as usize;
        for signum in [SIGHUP, SIGINT, SIGTERM] {
            // SAFETY: `on_signal` only calls async-signal-safe functions.
            // glibc's and musl's signal() keep the handler installed and
            // restart interrupted system calls.
            if unsafe { signal(signum, handler) } == usize::MAX {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Signals { read_end: Async::new(read_end)? })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        let mut byte = [0u8; 1];
        loop {
            match self.read_end.read(&mut byte).await {
                Ok(1) => match c_int::from(byte[0]) {
                    SIGHUP => return Signal::Reload,
                    SIGINT => return Signal::Terminate("SIGINT"),
                    SIGTERM => return Signal::Terminate("SIGTERM"),
                    _ => {}
                },
                // The write end lives as long as the process: nothing else
                // ends the stream. Wait for the next signal regardless.
                _ => {
                    smol::Timer::after(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}
