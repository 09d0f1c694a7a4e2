//! The I/O shell of the admin endpoint ([`crate::admin`]): a listener
//! and one task per connection, at most [`MAX_CONNECTIONS`] at once.
//!
//! A connection's request head is read into a fixed buffer within
//! [`READ_TIMEOUT`]; the page is rendered into a buffer of its own while
//! the gateway is borrowed (synchronously, no await in between), the
//! borrow is released, and only then is the answer written, within
//! [`WRITE_TIMEOUT`]. The connection is then closed: one request each.

use std::cell::Cell;
use std::future::Future;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Async, LocalExecutor, Timer};

use super::driver::Driver;
use super::sip::{Host, SipOut};
use crate::admin::http::{self, HEAD_SIZE, Page, Parsed, Status};
use crate::admin::render::{self, Rendered, SipTransport, TEXT_TYPE, View};
use crate::admin::{LINGER, MAX_CONNECTIONS, READ_TIMEOUT, REQUEST_BUFFER, WRITE_TIMEOUT};

/// Most bytes read and dropped while lingering after an answer.
const LINGER_BYTES: usize = 64 * 1024;
/// Bytes reserved per session for `/sessions`, so the buffer rarely grows.
const SESSION_JSON: usize = 320;

/// Binds `listen` at once, so that a bad address is reported at boot, and
/// serves the admin endpoint on `ex`. Returns the address bound (its port
/// chosen by the system when `listen` names port 0).
pub fn spawn(
    ex: &Rc<LocalExecutor<'static>>,
    driver: Rc<Driver<Host>>,
    listen: SocketAddr,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::from(Async::<std::net::TcpListener>::bind(listen)?);
    let bound = listener.local_addr()?;
    ex.spawn(accept_task(ex.clone(), driver, listener)).detach();
    Ok(bound)
}

/// One of the [`MAX_CONNECTIONS`] places; given back when dropped, however
/// the connection's task ends.
struct Place(Rc<Cell<usize>>);

impl Place {
    fn take(in_use: &Rc<Cell<usize>>) -> Option<Place> {
        if in_use.get() >= MAX_CONNECTIONS {
            return None;
        }
        in_use.set(in_use.get() + 1);
        Some(Place(in_use.clone()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

async fn accept_task(ex: Rc<LocalExecutor<'static>>, driver: Rc<Driver<Host>>, listener: TcpListener) {
    let in_use = Rc::new(Cell::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, usually: wait instead of spinning.
                log::warn!("admin endpoint: accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(place) = Place::take(&in_use) else {
            log::debug!("admin {peer}: refused, all {MAX_CONNECTIONS} admin connections in use");
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        };
        ex.spawn(serve(driver.clone(), stream, peer, place)).detach();
    }
}

/// `work`, or `None` if it takes longer than `limit`.
async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(work.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

/// Serves one request on `stream`, then closes it.
async fn serve(driver: Rc<Driver<Host>>, mut stream: TcpStream, peer: SocketAddr, _place: Place) {
    let mut buf = [0u8; REQUEST_BUFFER];
    let request = match within(READ_TIMEOUT, read_head(&mut stream, &mut buf)).await {
        Some(Ok(request)) => request,
        Some(Err(e)) => {
            log::debug!("admin {peer}: {e}");
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        None => {
            log::debug!("admin {peer}: no whole request within {READ_TIMEOUT:?}, dropped");
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    };
    let answer = answer(&driver, request);
    log::debug!("admin {peer}: {:?} -> {}", request, answer.status);
    // Head and body go out as two writes: no Nagle wait between them.
    let _ = stream.set_nodelay(true);
    let written = within(WRITE_TIMEOUT, async {
        stream.write_all(answer.head.as_bytes()).await?;
        if !answer.head_only {
            stream.write_all(answer.body.as_bytes()).await?;
        }
        stream.flush().await
    })
    .await;
    match written {
        Some(Ok(())) => {}
        Some(Err(e)) => log::debug!("admin {peer}: writing the answer failed: {e}"),
        None => log::debug!("admin {peer}: answer not taken within {WRITE_TIMEOUT:?}, dropped"),
    }
    drop(answer);
    // Close our side, then read and drop what the client still sends until
    // it closes too: closing with unread bytes would reset the connection
    // and could destroy the answer before the client reads it.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = within(LINGER, async {
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

/// Reads until `buf` holds a whole request head; what it asks for, or the
/// status it is refused with.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut [u8; REQUEST_BUFFER],
) -> std::io::Result<Result<http::Request, Status>> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a whole request head"));
        }
        filled += n;
        match http::parse(&buf[..filled], REQUEST_BUFFER) {
            Parsed::Partial => continue,
            Parsed::Request(request) => return Ok(Ok(request)),
            Parsed::Refused(status) => return Ok(Err(status)),
        }
    }
}

/// An answer, ready to write.
struct Answer {
    status: Status,
    head: heapless::String<HEAD_SIZE>,
    body: String,
    head_only: bool,
}

/// The SIP shell's counters, for the metrics.
fn sip_counters(out: &SipOut) -> SipTransport {
    SipTransport {
        tcp_open: out.tcp_open,
        tcp_refused: out.tcp_refused,
        dropped: out.dropped,
        bytes_received: out.bytes_received,
        bytes_sent: out.bytes_sent,
        tls_open: out.tls_open,
        tls_handshakes: out.tls_handshakes,
        tls_refused: out.tls_refused,
    }
}

/// Renders the answer to `request`. The gateway is borrowed only inside
/// this function, which does not await: SIP waits for the rendering, never
/// for the client.
fn answer(driver: &Driver<Host>, request: Result<http::Request, Status>) -> Answer {
    let mut body = String::new();
    let refused = |status: Status, body: &mut String| {
        body.clear();
        // Writing into a String cannot fail.
        let _ = render::refusal(status, body);
        Rendered { status, content_type: TEXT_TYPE }
    };
    let (rendered, head_only) = match request {
        Err(status) => (refused(status, &mut body), false),
        Ok(request) => {
            let rendered = match driver.try_core() {
                Some(h) => {
                    if request.page == Page::Sessions {
                        body.reserve(h.gw.session_count().saturating_mul(SESSION_JSON));
                    }
                    let view = View { gateway: &h.gw, sip: sip_counters(&h.out), now: Instant::now() };
                    render::page(request.page, &view, &mut body)
                        .unwrap_or_else(|_| refused(Status::ServiceUnavailable, &mut body))
                }
                // Only a task holding the gateway across an await could
                // cause this; answer rather than panic.
                None => refused(Status::ServiceUnavailable, &mut body),
            };
            (rendered, request.head_only)
        }
    };
    let mut head = heapless::String::new();
    // HEAD_SIZE holds the longest head: the longest status, type and length.
    if http::write_head(&mut head, rendered.status, rendered.content_type, body.len()).is_err() {
        head.clear();
        let _ = http::write_head(&mut head, Status::ServiceUnavailable, TEXT_TYPE, 0);
        body.clear();
    }
    Answer { status: rendered.status, head, body, head_only }
}
