//! The I/O shell of the SIP side: a UDP socket and a TCP listener per
//! listen address, a fixed table of TCP connection slots, and the [`Host`]
//! that feeds the [`Gateway`] and writes out what it sends.
//!
//! The shell decides nothing about SIP. It frames TCP streams (the pure
//! [`StreamBuffer`]), refuses connections when every slot is taken
//! (counted, the others untouched), closes connections idle for longer
//! than the configured time, and after every call into the core writes
//! out the core's messages: datagrams at once, stream messages into the
//! connection's fixed transmit buffer for its writer task.

use std::cell::RefCell;
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::channel::{Receiver, Sender, bounded};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Async, LocalExecutor, Timer};

use super::cti::{CtiHost, Pump};
use crate::cti::{LinkAction, SlotId};
use crate::rcc::{ConnId, Gateway, Peer, Transport};
use crate::sendbuf::SendBuf;
use crate::sip::StreamBuffer;

/// Bytes of a TCP connection's receive buffer: the largest SIP message.
pub const TCP_RECEIVE: usize = crate::board::TCP_RECEIVE;
/// Bytes of a TCP connection's transmit buffer. A peer that lets it fill
/// (reads nothing) is disconnected rather than waited for.
pub const TCP_TRANSMIT: usize = crate::board::TCP_TRANSMIT;
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

struct Conn {
    peer: SocketAddr,
    generation: u16,
    stream: TcpStream,
    tx: Box<SendBuf<TCP_TRANSMIT>>,
    wake: Sender<()>,
}

/// Where the core's messages go: the UDP sockets and the TCP slots.
pub struct SipOut {
    udp: Vec<Rc<Async<UdpSocket>>>,
    conns: Vec<Option<Conn>>,
    generations: Vec<u16>,
    /// TCP connections refused because every slot was taken.
    pub tcp_refused: u64,
    /// TCP connections open now.
    pub tcp_open: usize,
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
    fn send(&mut self, to: Peer, bytes: &[u8]) {
        match to.transport {
            Transport::Udp => {
                let socket =
                    self.udp.iter().find(|s| s.get_ref().local_addr().is_ok_and(|a| a.is_ipv4() == to.addr.is_ipv4()));
                match socket {
                    // A non-blocking send: a full socket buffer drops the
                    // datagram, as the network might; retransmissions cover it.
                    Some(s) => match s.get_ref().send_to(bytes, to.addr) {
                        Ok(n) => self.bytes_sent += n as u64,
                        Err(_) => self.dropped += 1,
                    },
                    None => self.dropped += 1,
                }
            }
            Transport::Tcp(id) => {
                let Some(conn) = self.conn_mut(id) else {
                    self.dropped += 1;
                    return;
                };
                if conn.tx.append(|out| out.put(bytes)).is_err() {
                    // The peer reads nothing: cut it off rather than grow.
                    log::warn!("TCP {}: transmit buffer full, closing", conn.peer);
                    let _ = conn.stream.shutdown(Shutdown::Both);
                    self.dropped += 1;
                    return;
                }
                let _ = conn.wake.try_send(());
            }
        }
    }

    /// Bytes written into TCP transmit buffers and not yet onto the wire.
    pub fn unsent(&self) -> usize {
        self.conns.iter().flatten().map(|c| c.tx.pending().len()).sum()
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let (index, generation) = ((id.0 & 0xffff) as usize, (id.0 >> 16) as u16);
        self.conns.get_mut(index)?.as_mut().filter(|c| c.generation == generation)
    }
}

/// The gateway with its outputs: every call into the core is followed by
/// writing out what the core has to send.
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

    /// Writes out everything the core has queued.
    pub fn flush(&mut self) {
        while let Some(t) = self.gw.poll_transmit() {
            self.out.send(t.to, t.bytes);
        }
    }
}

impl CtiHost for Host {
    fn cti_connected(&mut self, now: Instant, slot: SlotId) {
        self.gw.cti_connected(now, slot);
        self.flush();
    }
    fn cti_connect_failed(&mut self, now: Instant, slot: SlotId) {
        self.gw.cti_connect_failed(now, slot);
        self.flush();
    }
    fn cti_closed(&mut self, now: Instant, slot: SlotId) {
        self.gw.cti_closed(now, slot);
        self.flush();
    }
    fn cti_received(&mut self, now: Instant, slot: SlotId, bytes: &[u8]) {
        self.gw.cti_received(now, slot, bytes);
        self.flush();
    }
    fn cti_tx(&self, slot: SlotId) -> &[u8] {
        self.gw.cti_tx(slot)
    }
    fn cti_transmitted(&mut self, slot: SlotId, n: usize) {
        self.gw.cti_transmitted(slot, n);
    }
    fn cti_timeout(&mut self, now: Instant) {
        self.gw.cti_timeout(now);
        self.flush();
    }
    fn cti_deadline(&self) -> Option<Instant> {
        self.gw.cti_deadline()
    }
    fn cti_action(&mut self) -> Option<LinkAction> {
        self.gw.cti_action()
    }
}

/// The listening sockets of one address.
pub struct Listeners {
    udp: Rc<Async<UdpSocket>>,
    tcp: TcpListener,
}

/// Binds UDP and TCP on `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Listeners> {
    let udp = Rc::new(Async::<UdpSocket>::bind(addr)?);
    let tcp = TcpListener::bind(addr).await?;
    Ok(Listeners { udp, tcp })
}

/// Builds the host around `gw` with room for `tcp_slots` TCP connections.
pub fn host(gw: Box<Gateway>, listeners: &[Listeners], tcp_slots: usize) -> Host {
    Host {
        gw,
        out: SipOut {
            udp: listeners.iter().map(|l| l.udp.clone()).collect(),
            conns: (0..tcp_slots).map(|_| None).collect(),
            generations: vec![0; tcp_slots],
            tcp_refused: 0,
            tcp_open: 0,
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
    host: Rc<RefCell<Host>>,
    pump: Rc<Pump>,
    listeners: Vec<Listeners>,
    timeouts: StreamTimeouts,
) {
    for l in listeners {
        ex.spawn(udp_task(host.clone(), pump.clone(), l.udp)).detach();
        ex.spawn(accept_task(ex.clone(), host.clone(), pump.clone(), l.tcp, timeouts)).detach();
    }
}

async fn udp_task(host: Rc<RefCell<Host>>, pump: Rc<Pump>, socket: Rc<Async<UdpSocket>>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, addr)) = socket.recv_from(&mut buf).await else { continue };
        let mut h = host.borrow_mut();
        h.out.bytes_received += n as u64;
        h.gw.handle_datagram(Instant::now(), Peer { addr, transport: Transport::Udp }, &buf[..n]);
        h.flush();
        pump.run(&mut *h);
    }
}

async fn accept_task(
    ex: Rc<LocalExecutor<'static>>,
    host: Rc<RefCell<Host>>,
    pump: Rc<Pump>,
    listener: TcpListener,
    timeouts: StreamTimeouts,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let (wake_tx, wake_rx) = bounded(1);
        let id = {
            let mut h = host.borrow_mut();
            let out = &mut h.out;
            if !out.accepting {
                log::info!("TCP {peer}: refused, stopping");
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
            match out.conns.iter().position(Option::is_none) {
                None => {
                    out.tcp_refused += 1;
                    log::warn!("TCP {peer}: refused, all {} connection slots in use", out.conns.len());
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
                Some(index) => {
                    out.generations[index] = out.generations[index].wrapping_add(1);
                    let generation = out.generations[index];
                    out.conns[index] = Some(Conn {
                        peer,
                        generation,
                        stream: stream.clone(),
                        tx: Box::new(SendBuf::new()),
                        wake: wake_tx,
                    });
                    out.tcp_open += 1;
                    ConnId(index as u32 | (u32::from(generation) << 16))
                }
            }
        };
        let _ = stream.set_nodelay(true);
        log::debug!("TCP {peer}: connected");
        ex.spawn(write_task(host.clone(), id, stream.clone(), wake_rx)).detach();
        ex.spawn(read_task(host.clone(), pump.clone(), id, peer, stream, timeouts)).detach();
    }
}

async fn read_task(
    host: Rc<RefCell<Host>>,
    pump: Rc<Pump>,
    id: ConnId,
    peer: SocketAddr,
    mut stream: TcpStream,
    timeouts: StreamTimeouts,
) {
    let mut framer = Box::new(StreamBuffer::<TCP_RECEIVE>::new());
    let from = Peer { addr: peer, transport: Transport::Tcp(id) };
    // When the message in the buffer began to arrive, if one has.
    let mut message_started: Option<Instant> = None;
    let reason = loop {
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
        let mut h = host.borrow_mut();
        h.out.bytes_received += n as u64;
        let now = Instant::now();
        let result = loop {
            match framer.next(MAX_BODY) {
                Ok(Some(frame)) => h.gw.handle_frame(now, from, frame),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        h.flush();
        pump.run(&mut *h);
        if let Err(e) = result {
            log::info!("TCP {peer}: {e}; closing (the stream is out of step)");
            break "framing error";
        }
        message_started = match (framer.pending().is_empty(), message_started) {
            (true, _) => None,
            (false, None) => Some(now),
            (false, started) => started,
        };
    };
    if matches!(reason, "idle" | "closed by the peer") {
        log::debug!("TCP {peer}: {reason}");
    } else {
        log::info!("TCP {peer}: closed: {reason}");
    }
    let mut h = host.borrow_mut();
    let index = (id.0 & 0xffff) as usize;
    if let Some(conn) = h.out.conns[index].take_if(|c| u32::from(c.generation) == id.0 >> 16) {
        let _ = conn.stream.shutdown(Shutdown::Both);
        h.out.tcp_open -= 1;
    }
    h.gw.tcp_closed(Instant::now(), id);
    h.flush();
    pump.run(&mut *h);
}

async fn write_task(host: Rc<RefCell<Host>>, id: ConnId, mut stream: TcpStream, wake: Receiver<()>) {
    let mut buf = vec![0u8; TCP_TRANSMIT];
    loop {
        let n = {
            let mut h = host.borrow_mut();
            let Some(conn) = h.out.conn_mut(id) else { return };
            let pending = conn.tx.pending();
            buf[..pending.len()].copy_from_slice(pending);
            pending.len()
        };
        if n == 0 {
            if wake.recv().await.is_err() {
                return;
            }
            continue;
        }
        if stream.write_all(&buf[..n]).await.is_err() {
            return; // the reader sees the broken connection
        }
        let mut h = host.borrow_mut();
        h.out.bytes_sent += n as u64;
        if let Some(conn) = h.out.conn_mut(id) {
            conn.tx.written(n);
        }
    }
}
