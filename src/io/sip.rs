//! The I/O shell of the SIP side: a UDP socket and a TCP listener per
//! listen address, TLS listeners (feature `tls`), a fixed table of stream
//! connection slots, and the [`Host`] that feeds the [`Gateway`] and
//! writes out what it sends.
//!
//! The shell decides nothing about SIP. It frames TCP streams (the pure
//! [`StreamBuffer`]), refuses connections when every slot is taken
//! (counted, the others untouched), closes connections idle for longer
//! than the configured time, and after every call into the core writes
//! out the core's messages: datagrams at once, stream messages into the
//! connection's fixed transmit buffer for its writer task.
//!
//! A TLS connection takes a slot as soon as it is accepted (so handshakes
//! in progress are bounded by the slots too), must finish its handshake
//! within the configured time with a trusted peer's certificate, and is
//! then a stream like a TCP connection: the same reader and writer tasks
//! over the decrypted bytes, the same framing, limits and timeouts.

use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::channel::{Receiver, Sender, bounded};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Async, LocalExecutor, Timer};

use super::driver::{Core, Driver};
use crate::cti::{LinkAction, LinkEvent, SlotId};
use crate::rcc::{ConnId, Gateway, Peer, Transport};
use crate::sendbuf::SendBuf;
use crate::sip::StreamBuffer;
use crate::tls::Refusal;

/// Bytes of a TCP connection's receive buffer: the largest SIP message.
pub const TCP_RECEIVE: usize = crate::board::TCP_RECEIVE;
/// Bytes of a TCP connection's transmit buffer. Event INFOs, BYEs and
/// node answers that would leave less than [`TCP_RESERVE`] of it free wait
/// in the core until the writer has drained it (backpressure); a peer that
/// takes nothing for [`StreamTimeouts::message`] is disconnected rather
/// than waited for.
pub const TCP_TRANSMIT: usize = crate::board::TCP_TRANSMIT;
/// Bytes of a transmit buffer kept for what one request may make the
/// gateway send at once (its response, and a BYE that a replaced session
/// gets): event INFOs are held back rather than fill it, and a
/// connection's next request is taken only when this much is free.
pub const TCP_RESERVE: usize = 2 * crate::board::MESSAGE_SIZE;
const _: () = assert!(TCP_TRANSMIT >= 2 * TCP_RESERVE, "tcp_transmit must hold four messages of message_size");
/// The largest body accepted on a stream.
pub const MAX_BODY: usize = 8 * 1024;
/// The time limits of a TCP connection.
#[derive(Debug, Clone, Copy)]
pub struct StreamTimeouts {
    /// A connection that sends nothing for this long is closed.
    pub idle: Duration,
    /// How long a message may take to arrive once its first byte has: a
    /// peer that trickles a message (slowloris) loses its connection,
    /// however often it sends a byte.
    pub message: Duration,
}

/// A connection's bytes as its reader task sees them: the TCP stream, or
/// the decrypted side of TLS over it.
type Reader = Box<dyn AsyncRead + Unpin>;
/// A connection's bytes as its writer task sends them.
type Writer = Box<dyn AsyncWrite + Unpin>;

struct Conn {
    peer: SocketAddr,
    generation: u16,
    /// The TCP socket (under TLS too): shut down to cut the connection off.
    stream: TcpStream,
    tls: bool,
    tx: Box<SendBuf<TCP_TRANSMIT>>,
    wake: Sender<()>,
    /// Told each time the writer has taken bytes out of `tx`.
    room: Sender<()>,
    /// Event INFOs are being held back until the writer drains `tx`.
    congested: bool,
}

impl Conn {
    fn kind(&self) -> &'static str {
        if self.tls { "TLS" } else { "TCP" }
    }
}

/// What became of a message handed to [`SipOut::send`].
enum Sent {
    /// Written, or dropped (counted).
    Done,
    /// A message that may wait, which the connection has no room for now:
    /// the core keeps it.
    Deferred(ConnId),
}

/// The buffers a slot keeps between its connections: allocated the first
/// time the slot is used, then lent to each connection it holds and given
/// back when that connection ends, so connections coming and going (a
/// flood, say) never allocate them again and memory stays flat.
#[derive(Default)]
struct Spare {
    rx: Option<Box<StreamBuffer<TCP_RECEIVE>>>,
    tx: Option<Box<SendBuf<TCP_TRANSMIT>>>,
    copy: Option<Box<[u8]>>,
}

/// What a new connection borrows from its slot for its reader and writer.
struct Lent {
    rx: Box<StreamBuffer<TCP_RECEIVE>>,
    copy: Box<[u8]>,
    /// Where the reader hears that the transmit buffer has room again.
    room: Receiver<()>,
}

/// Where the core's messages go: the UDP sockets and the TCP slots.
pub struct SipOut {
    /// The UDP sockets, each with whether it is bound to IPv4 (asked once:
    /// a send picks its socket by the peer's family).
    udp: Vec<(bool, Rc<Async<UdpSocket>>)>,
    conns: Vec<Option<Conn>>,
    generations: Vec<u16>,
    spares: Vec<Spare>,
    /// TCP connections refused because every slot was taken (TLS ones included).
    pub tcp_refused: u64,
    /// TCP connections open now (TLS ones included, handshakes in progress too).
    pub tcp_open: usize,
    /// TLS connections open now (handshakes in progress included).
    pub tls_open: usize,
    /// TLS handshakes finished with a trusted peer.
    pub tls_handshakes: u64,
    /// TLS connections refused, by cause ([`Refusal::index`]).
    pub tls_refused: [u64; Refusal::ALL.len()],
    /// Messages dropped because their connection was gone or congested.
    pub dropped: u64,
    /// SIP bytes received: UDP datagrams and TCP reads.
    pub bytes_received: u64,
    /// SIP bytes handed to the sockets: UDP datagrams sent and TCP writes.
    pub bytes_sent: u64,
    /// False once stopping: new TCP connections are closed at once.
    pub accepting: bool,
}

impl SipOut {
    /// Sends a message; one that may wait (`deferrable`: an event INFO, a
    /// BYE, a node's answer) is handed back instead when its stream
    /// connection has no room for it beside [`TCP_RESERVE`].
    fn send(&mut self, to: Peer, bytes: &[u8], deferrable: bool) -> Sent {
        match to.transport {
            Transport::Udp => {
                let socket = self.udp.iter().find(|(ipv4, _)| *ipv4 == to.addr.is_ipv4()).map(|(_, s)| s);
                match socket {
                    // A non-blocking send: a full socket buffer drops the
                    // datagram, as the network might; retransmissions cover it.
                    Some(s) => match s.get_ref().send_to(bytes, to.addr) {
                        Ok(n) => self.bytes_sent += n as u64,
                        Err(_) => self.dropped += 1,
                    },
                    None => self.dropped += 1,
                }
                Sent::Done
            }
            Transport::Tcp(id) | Transport::Tls(id) => {
                let Some(conn) = self.conn_mut(id) else {
                    self.dropped += 1;
                    return Sent::Done;
                };
                if deferrable && (conn.congested || conn.tx.room() < bytes.len() + TCP_RESERVE) {
                    conn.congested = true;
                    return Sent::Deferred(id);
                }
                if conn.tx.append(|out| out.put(bytes)).is_err() {
                    // Responses and BYEs the peer does not read: cut it off
                    // rather than grow.
                    log::warn!("{} {}: transmit buffer full, closing", to.transport.token(), conn.peer);
                    let _ = conn.stream.shutdown(Shutdown::Both);
                    self.dropped += 1;
                    return Sent::Done;
                }
                let _ = conn.wake.try_send(());
                Sent::Done
            }
        }
    }

    /// Bytes written into TCP transmit buffers and not yet onto the wire.
    pub fn unsent(&self) -> usize {
        self.conns.iter().flatten().map(|c| c.tx.pending().len()).sum()
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        let (index, generation) = ((id.0 & 0xffff) as usize, (id.0 >> 16) as u16);
        self.conns.get(index)?.as_ref().filter(|c| c.generation == generation)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let (index, generation) = ((id.0 & 0xffff) as usize, (id.0 >> 16) as u16);
        self.conns.get_mut(index)?.as_mut().filter(|c| c.generation == generation)
    }

    /// Gives the connection just accepted from `peer` a free slot, or
    /// closes it: when stopping, or when every slot is taken (counted, the
    /// other connections untouched). Its writer is woken on the receiver.
    fn claim(&mut self, peer: SocketAddr, stream: &TcpStream, tls: bool) -> Option<(ConnId, Receiver<()>, Lent)> {
        let kind = if tls { "TLS" } else { "TCP" };
        if !self.accepting {
            log::info!("{kind} {peer}: refused, stopping");
            let _ = stream.shutdown(Shutdown::Both);
            return None;
        }
        let Some(index) = self.conns.iter().position(Option::is_none) else {
            self.tcp_refused += 1;
            log::warn!("{kind} {peer}: refused, all {} connection slots in use", self.conns.len());
            let _ = stream.shutdown(Shutdown::Both);
            return None;
        };
        let (wake, woken) = bounded(1);
        let (room, roomy) = bounded(1);
        self.generations[index] = self.generations[index].wrapping_add(1);
        let generation = self.generations[index];
        let spare = &mut self.spares[index];
        let tx = match spare.tx.take() {
            Some(mut tx) => {
                tx.clear();
                tx
            }
            None => Box::new(SendBuf::new()),
        };
        let rx = match spare.rx.take() {
            Some(mut rx) => {
                *rx = StreamBuffer::new();
                rx
            }
            None => Box::new(StreamBuffer::new()),
        };
        let copy = spare.copy.take().unwrap_or_else(|| vec![0u8; TCP_TRANSMIT].into_boxed_slice());
        self.conns[index] =
            Some(Conn { peer, generation, stream: stream.clone(), tls, tx, wake, room, congested: false });
        self.tcp_open += 1;
        self.tls_open += usize::from(tls);
        Some((ConnId(index as u32 | (u32::from(generation) << 16)), woken, Lent { rx, copy, room: roomy }))
    }

    /// Gives a connection's receive buffer back to its slot.
    fn give_back_rx(&mut self, id: ConnId, rx: Box<StreamBuffer<TCP_RECEIVE>>) {
        if let Some(spare) = self.spares.get_mut((id.0 & 0xffff) as usize) {
            spare.rx.get_or_insert(rx);
        }
    }

    /// Gives a connection writer's copy buffer back to its slot.
    fn give_back_copy(&mut self, id: ConnId, copy: Box<[u8]>) {
        if let Some(spare) = self.spares.get_mut((id.0 & 0xffff) as usize) {
            spare.copy.get_or_insert(copy);
        }
    }

    /// Frees the slot of `id`, if it still holds that connection, and
    /// shuts its socket.
    fn release(&mut self, id: ConnId) {
        let index = (id.0 & 0xffff) as usize;
        if let Some(conn) = self.conns[index].take_if(|c| u32::from(c.generation) == id.0 >> 16) {
            let _ = conn.stream.shutdown(Shutdown::Both);
            self.tcp_open -= 1;
            self.tls_open -= usize::from(conn.tls);
            self.spares[index].tx.get_or_insert(conn.tx);
        }
    }
}

/// The gateway with its outputs: the [`Core`] the [`Driver`] drives, which
/// writes out what the gateway has to send after every input.
pub struct Host {
    /// The core.
    pub gw: Box<Gateway>,
    /// The sockets.
    pub out: SipOut,
}

impl Host {
    /// True once a stop has nothing left to send or wait for, on either
    /// side of the shell.
    pub fn drained(&self) -> bool {
        self.gw.is_drained() && self.out.unsent() == 0
    }

    /// Writes out everything the core has queued; event INFOs a
    /// connection has no room for go back to the core.
    pub fn flush(&mut self) {
        while let Some(t) = self.gw.poll_transmit() {
            let deferrable = t.deferrable;
            if let Sent::Deferred(id) = self.out.send(t.to, t.bytes, deferrable.is_some()) {
                if let Some(deferrable) = deferrable {
                    self.gw.transmit_deferred(Instant::now(), id, deferrable);
                }
            }
        }
    }
}

impl Core for Host {
    fn handle_link(&mut self, now: Instant, slot: SlotId, event: LinkEvent) {
        self.gw.handle_link(now, slot, event);
    }
    fn handle_cti(&mut self, now: Instant, slot: SlotId, bytes: &[u8]) {
        self.gw.handle_cti(now, slot, bytes);
    }
    fn link_tx(&self, slot: SlotId) -> &[u8] {
        self.gw.link_tx(slot)
    }
    fn link_transmitted(&mut self, slot: SlotId, n: usize) {
        self.gw.link_transmitted(slot, n);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.gw.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.gw.poll_timeout()
    }
    fn poll_link_action(&mut self) -> Option<LinkAction> {
        self.gw.poll_link_action()
    }
    fn transmit(&mut self) {
        self.flush();
    }
}

/// The listening sockets of one address.
pub struct Listeners {
    udp: Rc<Async<UdpSocket>>,
    ipv4: bool,
    tcp: TcpListener,
}

/// Binds UDP and TCP on `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Listeners> {
    let udp = Rc::new(Async::<UdpSocket>::bind(addr)?);
    let tcp = TcpListener::bind(addr).await?;
    Ok(Listeners { udp, ipv4: addr.is_ipv4(), tcp })
}

/// Builds the host around `gw` with room for `tcp_slots` TCP connections.
pub fn host(gw: Box<Gateway>, listeners: &[Listeners], tcp_slots: usize) -> Host {
    Host {
        gw,
        out: SipOut {
            udp: listeners.iter().map(|l| (l.ipv4, l.udp.clone())).collect(),
            conns: (0..tcp_slots).map(|_| None).collect(),
            generations: vec![0; tcp_slots],
            spares: (0..tcp_slots).map(|_| Spare::default()).collect(),
            tcp_refused: 0,
            tcp_open: 0,
            tls_open: 0,
            tls_handshakes: 0,
            tls_refused: [0; Refusal::ALL.len()],
            dropped: 0,
            bytes_received: 0,
            bytes_sent: 0,
            accepting: true,
        },
    }
}

/// Starts the UDP and TCP tasks of every listener.
pub fn spawn(
    ex: &Rc<LocalExecutor<'static>>,
    driver: Rc<Driver<Host>>,
    listeners: Vec<Listeners>,
    timeouts: StreamTimeouts,
) {
    for l in listeners {
        ex.spawn(udp_task(driver.clone(), l.udp)).detach();
        ex.spawn(accept_task(ex.clone(), driver.clone(), l.tcp, timeouts)).detach();
    }
}

async fn udp_task(driver: Rc<Driver<Host>>, socket: Rc<Async<UdpSocket>>) {
    let mut buf = vec![0u8; 65_536];
    for received in 1u64.. {
        let Ok((n, addr)) = socket.recv_from(&mut buf).await else { continue };
        driver.feed(|h, now| {
            h.out.bytes_received += n as u64;
            h.gw.handle_datagram(now, Peer { addr, transport: Transport::Udp }, &buf[..n]);
        });
        // A datagram that is waiting does not yield: let the CTI writers
        // and the stream connections run now and then.
        if received % 16 == 0 {
            smol::future::yield_now().await;
        }
    }
}

async fn accept_task(
    ex: Rc<LocalExecutor<'static>>,
    driver: Rc<Driver<Host>>,
    listener: TcpListener,
    timeouts: StreamTimeouts,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let Some((id, woken, lent)) = driver.feed(|h, _| h.out.claim(peer, &stream, false)) else { continue };
        let _ = stream.set_nodelay(true);
        log::debug!("TCP {peer}: connected");
        let from = Peer { addr: peer, transport: Transport::Tcp(id) };
        let writer = Box::new(stream.clone());
        ex.spawn(write_task(driver.clone(), id, writer, woken, lent.copy, timeouts.message)).detach();
        ex.spawn(read_task(driver.clone(), from, Box::new(stream), timeouts, (lent.rx, lent.room))).detach();
    }
}

/// Binds a TLS listener (TCP) on `addr`.
pub async fn bind_tls(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Starts the accepting task of each TLS listener. Each handshake must
/// finish within `handshake` (a peer that stalls it loses the connection).
#[cfg(feature = "tls")]
pub fn spawn_tls(
    ex: &Rc<LocalExecutor<'static>>,
    driver: Rc<Driver<Host>>,
    listeners: Vec<TcpListener>,
    server: crate::tls::Server,
    timeouts: StreamTimeouts,
    handshake: Duration,
) {
    let acceptor = futures_rustls::TlsAcceptor::from(server.config.clone());
    let tls = TlsShell { ex: ex.clone(), driver, server: Rc::new(server), acceptor, timeouts, handshake };
    for listener in listeners {
        ex.spawn(tls_accept_task(tls.clone(), listener)).detach();
    }
}

/// Without the `tls` feature there is no TLS server to start.
#[cfg(not(feature = "tls"))]
pub fn spawn_tls(
    _: &Rc<LocalExecutor<'static>>,
    _: Rc<Driver<Host>>,
    _: Vec<TcpListener>,
    server: crate::tls::Server,
    _: StreamTimeouts,
    _: Duration,
) {
    match server {}
}

/// What every TLS connection's tasks share.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct TlsShell {
    ex: Rc<LocalExecutor<'static>>,
    driver: Rc<Driver<Host>>,
    server: Rc<crate::tls::Server>,
    acceptor: futures_rustls::TlsAcceptor,
    timeouts: StreamTimeouts,
    handshake: Duration,
}

#[cfg(feature = "tls")]
async fn tls_accept_task(tls: TlsShell, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let Some((id, woken, lent)) = tls.driver.feed(|h, _| h.out.claim(peer, &stream, true)) else { continue };
        let _ = stream.set_nodelay(true);
        let accept = tls.acceptor.accept(stream);
        tls.ex.spawn(tls_connection(tls.clone(), accept, (id, peer), woken, lent)).detach();
    }
}

/// One TLS connection in its slot: the handshake within its time limit
/// (a refusal is logged with its cause, counted, and frees the slot), then
/// the writer task and the reader, as for TCP.
#[cfg(feature = "tls")]
async fn tls_connection(
    tls: TlsShell,
    accept: futures_rustls::Accept<TcpStream>,
    (id, peer): (ConnId, SocketAddr),
    woken: Receiver<()>,
    lent: Lent,
) {
    let limit = tls.handshake;
    let handshake = smol::future::or(async { Some(accept.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await;
    let stream = match handshake {
        Some(Ok(stream)) => stream,
        failed => {
            let (cause, reason) = match failed {
                Some(Err(e)) => crate::tls::refusal(&e),
                _ => (Refusal::Timeout, format!("handshake not finished within {} ms", limit.as_millis())),
            };
            log::info!("TLS {peer}: refused: {reason}");
            tls.driver.feed(|h, _| {
                h.out.tls_refused[cause.index()] += 1;
                h.out.give_back_rx(id, lent.rx);
                h.out.give_back_copy(id, lent.copy);
                h.out.release(id);
            });
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let version = session.protocol_version().map_or("TLS".to_string(), |v| format!("{v:?}"));
    let name = tls.server.peer_of(session).unwrap_or("?");
    log::info!("TLS {peer}: connected, {version}, trusted peer {name}");
    tls.driver.feed(|h, _| h.out.tls_handshakes += 1);
    let (reader, writer) = smol::io::split(stream);
    let from = Peer { addr: peer, transport: Transport::Tls(id) };
    let limit = tls.timeouts.message;
    tls.ex.spawn(write_task(tls.driver.clone(), id, Box::new(writer), woken, lent.copy, limit)).detach();
    read_task(tls.driver, from, Box::new(reader), tls.timeouts, (lent.rx, lent.room)).await;
}

/// Reads a connection's messages into the core. A message is taken only
/// while the connection's transmit buffer has [`TCP_RESERVE`] free, so
/// what the gateway answers always fits: a peer that sends faster than it
/// reads is slowed down (TCP flow control does the rest), and one that
/// reads nothing for [`StreamTimeouts::message`] is cut off.
async fn read_task(
    driver: Rc<Driver<Host>>,
    from: Peer,
    mut stream: Reader,
    timeouts: StreamTimeouts,
    (mut framer, room): (Box<StreamBuffer<TCP_RECEIVE>>, Receiver<()>),
) {
    let (peer, kind) = (from.addr, from.transport.token());
    let Some(id) = from.transport.conn() else { return };
    // When the message in the buffer began to arrive, if one has.
    let mut message_started: Option<Instant> = None;
    let reason = 'connection: loop {
        // Handle what is framed, as far as the transmit buffer has room.
        loop {
            let (result, stalled) = driver.feed(|h, now| {
                let mut stalled = false;
                let result = loop {
                    if h.out.conn_mut(id).is_some_and(|c| c.tx.room() < TCP_RESERVE) {
                        stalled = true;
                        break Ok(());
                    }
                    match framer.next(MAX_BODY) {
                        Ok(Some(frame)) => h.gw.handle_frame(now, from, frame),
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                    // Into the transmit buffer now, for the next room check.
                    h.flush();
                };
                (result, stalled)
            });
            if let Err(e) = result {
                log::info!("{kind} {peer}: {e}; closing (the stream is out of step)");
                break 'connection "framing error";
            }
            if !stalled {
                break;
            }
            let waited = smol::future::or(async { room.recv().await.is_ok() }, async {
                Timer::after(timeouts.message).await;
                false
            })
            .await;
            if !waited {
                break 'connection "it reads nothing of what the gateway sends";
            }
        }
        message_started = match (framer.pending().is_empty(), message_started) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, started) => started,
        };
        let spare = framer.spare();
        if spare.is_empty() {
            break "a message larger than the receive buffer";
        }
        let (deadline, why) = match message_started {
            Some(at) => (at + timeouts.message, "a message not completed in time"),
            None => (Instant::now() + timeouts.idle, "idle"),
        };
        let read = smol::future::or(async { Some(stream.read(spare).await) }, async {
            Timer::at(deadline).await;
            None
        })
        .await;
        let n = match read {
            None => break why,
            Some(Ok(0)) => break "closed by the peer",
            Some(Err(_)) => break "broken",
            Some(Ok(n)) => n,
        };
        framer.filled(n);
        driver.feed(|h, _| h.out.bytes_received += n as u64);
        // A read that is ready does not yield: let the CTI writers and the
        // other connections run between two batches.
        smol::future::yield_now().await;
    };
    if matches!(reason, "idle" | "closed by the peer") {
        log::debug!("{kind} {peer}: {reason}");
    } else {
        log::info!("{kind} {peer}: closed: {reason}");
    }
    driver.feed(|h, now| {
        h.out.release(id);
        h.out.give_back_rx(id, framer);
        h.gw.tcp_closed(now, id);
    });
}

/// Writes out what the core puts into the connection's transmit buffer.
/// A write the peer does not take within `limit` cuts the connection (its
/// reader then ends it); once the buffer drains below a quarter, event
/// INFOs held back for it go out again.
async fn write_task(
    driver: Rc<Driver<Host>>,
    id: ConnId,
    mut stream: Writer,
    wake: Receiver<()>,
    mut buf: Box<[u8]>,
    limit: Duration,
) {
    loop {
        let n = {
            let h = driver.core();
            let Some(conn) = h.out.conn(id) else { break };
            let pending = conn.tx.pending();
            buf[..pending.len()].copy_from_slice(pending);
            pending.len()
        };
        if n == 0 {
            if wake.recv().await.is_err() {
                break;
            }
            continue;
        }
        // TLS keeps what the socket did not take until flushed.
        let write = async { stream.write_all(&buf[..n]).await.and(stream.flush().await) };
        let written = smol::future::or(async { Some(write.await.is_ok()) }, async {
            Timer::after(limit).await;
            None
        })
        .await;
        match written {
            Some(true) => {}
            Some(false) => break, // the reader sees the broken connection
            None => {
                if let Some(conn) = driver.core().out.conn(id) {
                    log::info!(
                        "{} {}: closed: {n} bytes not taken in {} ms",
                        conn.kind(),
                        conn.peer,
                        limit.as_millis()
                    );
                    let _ = conn.stream.shutdown(Shutdown::Both);
                }
                break;
            }
        }
        let open = driver.feed(|h, now| {
            h.out.bytes_sent += n as u64;
            let Some(conn) = h.out.conn_mut(id) else { return false };
            conn.tx.written(n);
            let _ = conn.room.try_send(());
            if conn.congested && conn.tx.pending().len() <= TCP_TRANSMIT / 4 {
                conn.congested = false;
                h.gw.stream_drained(now, id);
            }
            true
        });
        if !open {
            break;
        }
    }
    driver.feed(|h, _| h.out.give_back_copy(id, buf));
}
