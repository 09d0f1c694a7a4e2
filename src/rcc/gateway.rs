//! The gateway core: SIP in, CSTA to the nodes, CSTA back, SIP out.
//!
//! Every table is sized once, at boot ([`GatewayConfig`]), and never grows:
//! sessions, requests waiting for a node, the gateway's own client
//! transactions (event INFOs, BYEs), responses kept for UDP
//! retransmissions, the outgoing queue and the timer heap. A full table is
//! a clear refusal (503, or a CSTA error), never an allocation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use heapless::String;

use super::appearances::{Appearances, user_key};
use super::index::{Index, hash};
use super::pool::{Handle, Pool};
use super::session::{self, MAX_CALL_ID, MAX_MONITORS, MAX_ROUTE, MAX_ROUTES, MAX_TAG, MAX_URI, Sessions};
use super::{Peer, Transport};
use crate::board;
use crate::config::Cidr;
use crate::csta::{self, ErrorCode, Message as Csta, Namespace, Request, Response, Service, Services, SystemStatus};
use crate::cti::{CtiEvent, Incoming, LinkAction, LinkEvent, LinkState, Nodes, RequestTag, SlotId};
use crate::outbuf::{OutBuf, Overflow};
use crate::sip::{self, DialogRequest, Frame, HeaderName, Message, MessageWriter, Method};
use crate::tel::Number;

/// RFC 3261 T1: the round-trip estimate retransmissions start from.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the longest retransmission interval.
const T2: Duration = Duration::from_secs(4);
/// The Allow header of every response that lists methods.
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";
/// The Content-Type of CSTA bodies.
const CSTA_XML: &str = "application/csta+xml";
/// The branch prefix of the gateway's own requests.
const BRANCH: &str = "z9hG4bKgw";
/// Request tags at or above this mark the gateway's own requests to a node.
const INTERNAL: u64 = 1 << 63;
/// Sessions are checked for expiry this often.
const SWEEP: Duration = Duration::from_secs(5);
/// The smallest session interval accepted (RFC 4028 Min-SE default).
const MIN_SE: u32 = 90;

/// The gateway's sizes and identity, fixed at boot.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The host in the gateway's URIs, Via and Contact.
    pub sip_host: std::string::String,
    /// The port in the gateway's Via and Contact.
    pub sip_port: u16,
    /// The SIP over TLS port, in the Via and Contact of TLS dialogs
    /// (`None`: no TLS listener; `sip_port` stands in).
    pub tls_port: Option<u16>,
    /// Sources that may open sessions.
    pub trusted: Vec<Cidr>,
    /// Sessions the table holds.
    pub sessions: usize,
    /// Requests that may wait for a node at once.
    pub pending: usize,
    /// The gateway's own transactions in flight (event INFOs, BYEs).
    pub client_transactions: usize,
    /// Responses kept for UDP retransmissions.
    pub completed: usize,
    /// Messages the outgoing queue holds.
    pub out_queue: usize,
    /// The largest SIP message kept or written.
    pub message_size: usize,
    /// Retry-After of a 503 when the session table is full, in seconds.
    pub retry_after_full: u32,
}

impl GatewayConfig {
    /// The board's sizes ([`crate::board`]); `sip_host`, `sip_port` and
    /// `trusted` to be filled in; no TLS port.
    pub fn new(sip_host: &str, sip_port: u16, trusted: Vec<Cidr>) -> GatewayConfig {
        GatewayConfig {
            sip_host: sip_host.to_string(),
            sip_port,
            tls_port: None,
            trusted,
            sessions: board::SESSIONS,
            pending: board::PENDING,
            client_transactions: board::CLIENT_TRANSACTIONS,
            completed: board::COMPLETED,
            out_queue: board::OUT_QUEUE,
            message_size: board::MESSAGE_SIZE,
            retry_after_full: 30,
        }
    }
}

/// What the gateway has done, for logs and the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// SIP requests received, by method: INVITE, ACK, BYE, CANCEL,
    /// OPTIONS, INFO, UPDATE, other.
    pub requests: [u64; 8],
    /// SIP responses sent, by class: 1xx to 6xx.
    pub responses: [u64; 6],
    /// Messages that did not parse.
    pub malformed: u64,
    /// Sessions opened.
    pub sessions_opened: u64,
    /// Sessions ended (by either side, or replaced).
    pub sessions_closed: u64,
    /// Sessions replaced by a newer INVITE of the same user and line.
    pub sessions_replaced: u64,
    /// INVITEs refused: untrusted source.
    pub refused_untrusted: u64,
    /// INVITEs refused: unknown user, or a line not theirs.
    pub refused_user: u64,
    /// INVITEs refused: the session table is full.
    pub refused_full: u64,
    /// INVITEs refused: no CTI node up.
    pub refused_no_node: u64,
    /// INVITEs refused: not CSTA, or malformed CSTA.
    pub refused_body: u64,
    /// Requests refused for a device or line not assigned to the user.
    pub privilege_violations: u64,
    /// Requests refused at once because the session's node is down.
    pub node_down_refusals: u64,
    /// Requests relayed to a node.
    pub relayed: u64,
    /// Events relayed to Lync.
    pub events_relayed: u64,
    /// Events for no known monitor, dropped.
    pub events_unknown: u64,
    /// Event INFOs Lync never answered.
    pub event_timeouts: u64,
    /// Messages dropped because the outgoing queue was full.
    pub transmit_drops: u64,
    /// Responses kept for UDP retransmissions that made room for newer
    /// ones before their 64*T1 were up (the table was full).
    pub completed_evicted: u64,
    /// Relayed requests refused because Lync is not taking its events as
    /// fast as they come (too many event INFOs waiting).
    pub backlog_refusals: u64,
    /// Event INFOs, BYEs and answers held back because their stream
    /// connection's transmit buffer was full (sent once it drained).
    pub deferred: u64,
    /// Requests from sources not trusted, ignored.
    pub untrusted_ignored: u64,
    /// Responses that answer none of the gateway's requests (wrong source,
    /// dialog or CSeq), ignored.
    pub responses_ignored: u64,
}

fn method_index(method: Method<'_>) -> usize {
    match method {
        Method::Invite => 0,
        Method::Ack => 1,
        Method::Bye => 2,
        Method::Cancel => 3,
        Method::Options => 4,
        Method::Info => 5,
        Method::Update => 6,
        _ => 7,
    }
}

/// A message to send: to whom, over what, which bytes.
#[derive(Debug)]
pub struct Transmit<'a> {
    /// The destination.
    pub to: Peer,
    /// The bytes.
    pub bytes: &'a [u8],
    /// Set when the message may wait: an event INFO's or a BYE's first
    /// sending, or the answer to a request relayed to a node. A shell that
    /// cannot take it now (its stream connection's transmit buffer is
    /// full) hands it back with [`Gateway::transmit_deferred`], right after
    /// this call and before any other into the gateway, and it goes again
    /// after [`Gateway::stream_drained`]. Everything else (answers made at
    /// once to what the peer sent) is bounded by what the shell reads.
    pub deferrable: Option<Deferrable>,
}

/// A message that may wait for room, as [`Transmit::deferrable`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferrable(Defer);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defer {
    /// One of the gateway's own requests (its [`ClientTx`]).
    Client(Handle),
    /// The answer to a relayed request: its bytes are copied back.
    Answer,
}

struct OutSlot {
    to: Peer,
    len: usize,
    bytes: Box<[u8]>,
    deferrable: Option<Deferrable>,
}

/// The outgoing queue: a ring of fixed message buffers.
struct OutQueue {
    slots: Box<[OutSlot]>,
    head: usize,
    count: usize,
}

impl OutQueue {
    fn new(count: usize, size: usize, peer: Peer) -> OutQueue {
        OutQueue {
            slots: (0..count)
                .map(|_| OutSlot { to: peer, len: 0, bytes: vec![0; size].into_boxed_slice(), deferrable: None })
                .collect(),
            head: 0,
            count: 0,
        }
    }

    fn room(&self) -> usize {
        self.slots.len() - self.count
    }

    /// Writes one message with `write`; false when the queue is full or
    /// the message did not fit its buffer.
    fn push(&mut self, to: Peer, write: impl FnOnce(&mut [u8]) -> Result<usize, Overflow>) -> bool {
        if self.count == self.slots.len() {
            return false;
        }
        let at = (self.head + self.count) % self.slots.len();
        let slot = &mut self.slots[at];
        match write(&mut slot.bytes) {
            Ok(len) => {
                slot.to = to;
                slot.len = len;
                slot.deferrable = None;
                self.count += 1;
                true
            }
            Err(Overflow) => false,
        }
    }

    /// Queues a stored message again; false when the queue is full.
    fn resend(&mut self, message: &Stored) -> bool {
        self.push(message.to, |buf| copy_into(buf, message.as_bytes()))
    }

    /// Marks the message queued last as one that may wait.
    fn mark_last(&mut self, defer: Defer) {
        let last = (self.head + self.count + self.slots.len() - 1) % self.slots.len();
        self.slots[last].deferrable = Some(Deferrable(defer));
    }

    /// The message [`OutQueue::pop`] returned last (its slot is reused
    /// only by the next push).
    fn last_popped(&self) -> &OutSlot {
        &self.slots[(self.head + self.slots.len() - 1) % self.slots.len()]
    }

    fn pop(&mut self) -> Option<Transmit<'_>> {
        if self.count == 0 {
            return None;
        }
        let slot = &self.slots[self.head];
        self.head = (self.head + 1) % self.slots.len();
        self.count -= 1;
        Some(Transmit { to: slot.to, bytes: &slot.bytes[..slot.len], deferrable: slot.deferrable })
    }
}

/// A request relayed to a node, waiting for its answer.
struct Pending {
    request: Box<[u8]>,
    len: usize,
    from: Peer,
    session: Handle,
    namespace: Namespace,
    /// The entry holds no request but its answer, which waits for room on
    /// the stream connection `from` names.
    answer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    EventInfo,
    Bye,
}

/// One of the gateway's own requests in flight.
struct ClientTx {
    /// The event INFO queued behind this one in its session.
    next: Option<Handle>,
    kind: ClientKind,
    session: Handle,
    message: Stored,
    timeout_at: Instant,
    state: ClientState,
}

/// Where one of the gateway's own requests is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// An event INFO behind another of its session's, in the queue.
    Queued,
    /// Next to go, waiting for room (the outgoing queue, or its stream
    /// connection, was full): its timers do not run.
    Waiting,
    /// Sent: Timer F runs (and Timer E over UDP).
    Started,
}

/// A final response kept to answer UDP retransmissions of its request
/// (and, for an INVITE's 2xx, retransmitted until the ACK).
struct Completed {
    key: u64,
    message: Stored,
    expires_at: Instant,
    session: Option<Handle>,
}

/// A message the gateway may send again: its bytes, where they go, and
/// RFC 3261's retransmission back-off (T1, doubling up to T2).
struct Stored {
    to: Peer,
    bytes: Box<[u8]>,
    len: usize,
    interval: Duration,
    retransmit_at: Option<Instant>,
}

impl Stored {
    fn new(to: Peer, size: usize) -> Self {
        Stored { to, bytes: vec![0; size].into_boxed_slice(), len: 0, interval: T1, retransmit_at: None }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Restarts the back-off at T1; when `retransmit`, the first
    /// retransmission is due one T1 from `now`. Returns that time.
    fn arm(&mut self, now: Instant, retransmit: bool) -> Option<Instant> {
        self.interval = T1;
        self.retransmit_at = retransmit.then_some(now + T1);
        self.retransmit_at
    }

    /// If a retransmission is due by `now`: doubles the interval (up to
    /// T2) and returns when the one after it is due.
    fn back_off(&mut self, now: Instant) -> Option<Instant> {
        self.retransmit_at.filter(|&at| at <= now)?;
        self.interval = (self.interval * 2).min(T2);
        self.retransmit_at = Some(now + self.interval);
        self.retransmit_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Client(u64),
    Completed(u64),
}

/// The gateway.
pub struct Gateway {
    config: GatewayConfig,
    appearances: Appearances,
    nodes: Box<Nodes>,
    sessions: Sessions,
    pending: Pool<Pending>,
    pending_index: Index,
    client: Pool<ClientTx>,
    completed: Pool<Completed>,
    /// The kept responses, oldest first (with stale handles of ones freed
    /// since): when the table is full the oldest makes room, since a
    /// retransmission is likelier for a response just sent.
    completed_order: VecDeque<Handle>,
    completed_index: Index,
    out: OutQueue,
    byes: VecDeque<Handle>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    timer_capacity: usize,
    next_sweep: Option<Instant>,
    next_tag: u64,
    /// The time given by the call in progress (every entry point sets it).
    now: Instant,
    /// Where a node's document is copied before it is handled.
    inbox: Box<[u8]>,
    /// The gateway's Contact URIs for UDP, TCP and TLS dialogs, made at boot.
    contacts: [String<160>; 3],
    /// Stopping: new INVITEs are refused, sessions are being ended.
    shutting_down: bool,
    /// Stream connections whose transmit buffer is full: event INFOs for
    /// their sessions wait (capacity fixed at boot: one per TCP slot).
    congested: Vec<super::ConnId>,
    /// Some request of the gateway's, or an answer, waits for room.
    waiting: bool,
    /// What has happened.
    pub counters: Counters,
}

/// The key a completed response is kept under: the request's branch,
/// method and source (RFC 3261 §17.2.3 matching).
fn transaction_key(m: &Message<'_>, from: &Peer) -> Option<u64> {
    let via = m.via().ok()?;
    let branch = via.branch()?;
    let method = m.cseq().ok()?.method;
    let (v4, v6);
    let ip: &[u8] = match from.addr.ip() {
        IpAddr::V4(ip) => {
            v4 = ip.octets();
            &v4
        }
        IpAddr::V6(ip) => {
            v6 = ip.octets();
            &v6
        }
    };
    Some(hash(&[branch.as_bytes(), method.as_bytes(), ip, &from.addr.port().to_be_bytes()], false))
}

/// Where the gateway's Contact URI for dialogs over `transport` is in
/// `Gateway::contacts`.
fn contact_index(transport: Transport) -> usize {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp(_) => 1,
        Transport::Tls(_) => 2,
    }
}

fn copy_str<const N: usize>(text: &str) -> Option<String<N>> {
    String::try_from(text).ok()
}

impl Gateway {
    /// A gateway with the given tables, line appearances and CTI nodes,
    /// made at `now`. The nodes are not started: see [`Gateway::start`].
    pub fn new(now: Instant, config: GatewayConfig, appearances: Appearances, nodes: Box<Nodes>) -> Box<Gateway> {
        let size = config.message_size;
        let anyone = Peer { addr: "0.0.0.0:0".parse().expect("literal address"), transport: Transport::Udp };
        let timer_capacity = 4 * (config.client_transactions + config.completed) + 16;
        Box::new(Gateway {
            appearances,
            nodes,
            sessions: Sessions::new(config.sessions, now),
            pending: Pool::new(config.pending, || Pending {
                request: vec![0; size].into_boxed_slice(),
                len: 0,
                from: anyone,
                session: Handle { index: 0, generation: 0 },
                namespace: Namespace::Ed3,
                answer: false,
            }),
            pending_index: Index::new(config.pending),
            client: Pool::new(config.client_transactions, || ClientTx {
                next: None,
                kind: ClientKind::EventInfo,
                session: Handle { index: 0, generation: 0 },
                message: Stored::new(anyone, size),
                timeout_at: now,
                state: ClientState::Queued,
            }),
            completed: Pool::new(config.completed, || Completed {
                key: 0,
                message: Stored::new(anyone, size),
                expires_at: now,
                session: None,
            }),
            completed_index: Index::new(config.completed),
            completed_order: VecDeque::with_capacity(config.completed),
            out: OutQueue::new(config.out_queue, size, anyone),
            byes: VecDeque::with_capacity(config.sessions),
            timers: BinaryHeap::with_capacity(timer_capacity),
            timer_capacity,
            next_sweep: None,
            next_tag: 0,
            now,
            inbox: vec![0; crate::cti::LINK_BUFFER].into_boxed_slice(),
            contacts: ["udp", "tcp", "tls"].map(|t| {
                let port = if t == "tls" { config.tls_port.unwrap_or(config.sip_port) } else { config.sip_port };
                let mut uri = String::new();
                let _ = write!(uri, "sip:{}:{port};transport={t}", config.sip_host);
                uri
            }),
            shutting_down: false,
            congested: Vec::with_capacity(board::TCP_CONNECTIONS),
            waiting: false,
            counters: Counters::default(),
            config,
        })
    }

    /// Starts the CTI nodes and the session sweep.
    pub fn start(&mut self, now: Instant) {
        self.now = now;
        self.nodes.start(now);
        self.next_sweep = Some(now + SWEEP);
        self.drain_cti_events(now);
    }

    /// The CTI nodes (state, counters).
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// The sessions open now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session table's size.
    pub fn session_capacity(&self) -> usize {
        self.sessions.capacity()
    }

    /// Every open session, in table order (for the admin endpoint).
    pub fn sessions(&self) -> impl Iterator<Item = &super::session::Session> {
        self.sessions.iter().map(|(_, session)| session)
    }

    /// How many entries of each fixed table are in use now: requests
    /// waiting for a node, the gateway's own transactions, kept responses,
    /// messages waiting to go out.
    pub fn tables_in_use(&self) -> [(&'static str, usize, usize); 4] {
        [
            ("pending", self.pending.len(), self.pending.capacity()),
            ("client_transactions", self.client.len(), self.client.capacity()),
            ("completed", self.completed.len(), self.completed.capacity()),
            ("out_queue", self.out.count, self.out.slots.len()),
        ]
    }

    /// The line appearances in force.
    pub fn appearances(&self) -> &Appearances {
        &self.appearances
    }

    /// Replaces the line appearances (a reload); sessions are kept.
    pub fn set_appearances(&mut self, appearances: Appearances) {
        self.appearances = appearances;
    }

    /// Replaces the trusted sources (a reload); sessions are kept.
    pub fn set_trusted(&mut self, trusted: Vec<Cidr>) {
        self.config.trusted = trusted;
    }

    /// Begins an orderly stop: new INVITEs get 503, and every session is
    /// ended with a BYE (its monitors stopped on its node) so that Lync
    /// signs its users in again through another gateway.
    /// [`Gateway::is_drained`] tells when the BYEs are answered or have
    /// timed out; [`Gateway::stop_nodes`] then ends the CTI sessions.
    pub fn shut_down(&mut self, now: Instant) {
        self.now = now;
        self.shutting_down = true;
        let mut open: heapless::Vec<Handle, 256> = heapless::Vec::new();
        loop {
            open.clear();
            for (h, s) in self.sessions.iter() {
                if !s.ending && open.push(h).is_err() {
                    break;
                }
            }
            if open.is_empty() {
                return;
            }
            for h in open.iter().copied() {
                self.end_session(h, true);
            }
        }
    }

    /// True once stopping and nothing is left to send or wait for: no
    /// session, no BYE waiting, no transaction of the gateway's in flight.
    pub fn is_drained(&self) -> bool {
        self.shutting_down
            && self.sessions.is_empty()
            && self.byes.is_empty()
            && self.client.is_empty()
            && self.out.count == 0
            && !self.waiting
    }

    /// Ends the application sessions with the CTI nodes (the last step of
    /// a stop); the shell writes what is pending and closes the links.
    pub fn stop_nodes(&mut self, now: Instant) {
        self.now = now;
        self.nodes.stop(now);
    }

    /// The next message to send, or `None`.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        // Ending sessions waiting for room get their BYE now.
        while self.out.room() > 1 {
            let Some(h) = self.byes.pop_front() else { break };
            self.send_bye_and_close(h);
        }
        if self.out.count == 0 {
            self.resume_waiting();
        }
        self.out.pop()
    }

    /// The shell could not take the message [`Gateway::poll_transmit`]
    /// just returned, `deferrable`, because the transmit buffer of stream
    /// connection `conn` is full. The gateway keeps it, sends nothing that
    /// may wait to that connection until [`Gateway::stream_drained`], and
    /// then sends it again: a session's events stay in order, nothing is
    /// lost.
    pub fn transmit_deferred(&mut self, now: Instant, conn: super::ConnId, deferrable: Deferrable) {
        self.now = now;
        if !self.congested.contains(&conn) && self.congested.len() < self.congested.capacity() {
            self.congested.push(conn);
        }
        match deferrable.0 {
            Defer::Client(h) => {
                if let Some(c) = self.client.get_mut(h) {
                    c.state = ClientState::Waiting;
                    self.waiting = true;
                    self.counters.deferred += 1;
                }
            }
            Defer::Answer => {
                let slot = self.out.last_popped();
                let Some((_, p)) = self.pending.alloc() else {
                    self.counters.transmit_drops += 1;
                    return;
                };
                p.request[..slot.len].copy_from_slice(&slot.bytes[..slot.len]);
                p.len = slot.len;
                p.from = slot.to;
                p.answer = true;
                self.waiting = true;
                self.counters.deferred += 1;
            }
        }
    }

    /// The transmit buffer of stream connection `conn` has room again:
    /// what waits for it goes out (through [`Gateway::poll_transmit`]).
    pub fn stream_drained(&mut self, now: Instant, conn: super::ConnId) {
        self.now = now;
        self.congested.retain(|&c| c != conn);
    }

    /// True when a message that may wait can go to `peer` now.
    fn room_for(&self, peer: &Peer) -> bool {
        self.out.room() > 1 && peer.transport.conn().is_none_or(|c| !self.congested.contains(&c))
    }

    /// Sends what waits for room and now has it: the gateway's own
    /// requests first in line, and answers kept back.
    fn resume_waiting(&mut self) {
        if !self.waiting || self.out.room() <= 1 {
            return;
        }
        self.waiting = false;
        for index in 0..self.client.capacity() as u32 {
            let Some(ch) = self.client.handle_at(index) else { continue };
            if self.client.get(ch).is_some_and(|c| c.state == ClientState::Waiting) {
                // Leaves it waiting (and the flag set) when there is no room.
                self.start_client(ch);
            }
        }
        for index in 0..self.pending.capacity() as u32 {
            let Some(p) = self.pending.handle_at(index) else { continue };
            let Some(pending) = self.pending.get(p).filter(|p| p.answer) else { continue };
            let to = pending.from;
            if !self.room_for(&to) {
                self.waiting = true;
                continue;
            }
            let bytes = &pending.request[..pending.len];
            if self.out.push(to, |buf| copy_into(buf, bytes)) {
                self.out.mark_last(Defer::Answer);
            }
            if let Some(pending) = self.pending.get_mut(p) {
                pending.answer = false;
            }
            self.pending.free(p);
        }
    }

    /// When [`Gateway::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.peek().map(|Reverse((at, _))| *at);
        [own, self.nodes.poll_timeout(), self.next_sweep].into_iter().flatten().min()
    }

    /// Handles everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.nodes.handle_timeout(now);
        self.drain_cti_events(now);
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Client(h) => self.client_timer(Handle::unpack(h)),
                Timer::Completed(h) => self.completed_timer(Handle::unpack(h)),
            }
        }
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.next_sweep = Some(now + SWEEP);
            self.sweep_expired_sessions();
        }
    }

    fn schedule(&mut self, at: Instant, timer: Timer) {
        if self.timers.len() == self.timer_capacity {
            // Only stale entries can fill the heap: drop those not due
            // for a live item. Never grows past its boot capacity.
            let live: Vec<Reverse<(Instant, Timer)>> = Vec::new();
            let mut kept = core::mem::replace(&mut self.timers, BinaryHeap::from(live));
            kept.retain(|Reverse((at, t))| match *t {
                Timer::Client(h) => self
                    .client
                    .get(Handle::unpack(h))
                    .is_some_and(|c| c.message.retransmit_at == Some(*at) || c.timeout_at == *at),
                Timer::Completed(h) => self
                    .completed
                    .get(Handle::unpack(h))
                    .is_some_and(|c| c.message.retransmit_at == Some(*at) || c.expires_at == *at),
            });
            self.timers = kept;
        }
        if self.timers.len() < self.timer_capacity {
            self.timers.push(Reverse((at, timer)));
        }
    }

    // ----- SIP in -----

    /// One datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        self.now = now;
        if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
            return; // a keep-alive
        }
        match Message::parse(bytes) {
            Ok(m) => self.handle_message(from, &m),
            Err(e) => self.malformed(from, bytes, e),
        }
    }

    /// One frame from a stream connection (see [`sip::stream`]).
    pub fn handle_frame(&mut self, now: Instant, from: Peer, frame: Frame<'_>) {
        self.now = now;
        match frame {
            Frame::Message(m) => self.handle_message(from, &m),
            Frame::Invalid { error, bytes } => self.malformed(from, bytes, error),
            Frame::Ping => {
                // RFC 5626: a ping (CRLF CRLF) is answered with a pong (CRLF).
                if !self.out.push(from, |buf| copy_into(buf, b"\r\n")) {
                    self.counters.transmit_drops += 1;
                }
            }
            Frame::Pong => {}
        }
    }

    /// A message that did not parse: a request is answered with the
    /// reason when its headers allow building a response (RFC 3261 §8.2:
    /// 400, 505...); anything else is dropped and counted.
    fn malformed(&mut self, from: Peer, bytes: &[u8], error: sip::Error) {
        self.counters.malformed += 1;
        log::debug!("{from}: malformed message: {error}");
        if !self.trusted(from.addr.ip()) {
            return;
        }
        let mut scratch = [0u8; 4096];
        let Some(len) = salvage(bytes, &mut scratch) else { return };
        if let Ok(m) = Message::parse(&scratch[..len]) {
            let answerable = m.cseq().is_ok_and(|c| c.method != "ACK") && m.check_response().is_ok();
            if answerable {
                self.respond(from, &m, error.status_code(), error, None, |_| Ok(()));
            }
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.config.trusted.iter().any(|c| c.contains(ip))
    }

    fn handle_message(&mut self, from: Peer, m: &Message<'_>) {
        if m.method().is_none() {
            return self.handle_response(from, m);
        }
        let method = m.method().expect("a request");
        self.counters.requests[method_index(method)] += 1;
        if !self.trusted(from.addr.ip()) {
            if method == Method::Invite {
                self.counters.refused_untrusted += 1;
                log::info!("{from}: INVITE refused: untrusted source");
                self.respond(from, m, 403, "Forbidden: untrusted source", None, |_| Ok(()));
            } else {
                self.counters.untrusted_ignored += 1;
            }
            return;
        }
        if let Err(e) = m.check_request() {
            if method != Method::Ack {
                self.respond(from, m, e.status_code(), e, None, |_| Ok(()));
            }
            return;
        }
        // A retransmission over UDP: answered from what was sent, or
        // absorbed while the answer is still being worked out.
        if !from.transport.is_reliable() && method != Method::Ack {
            if let Some(key) = transaction_key(m, &from) {
                if self.resend_completed(key) || self.pending_index.candidates(key).next().is_some() {
                    return;
                }
            }
        }
        if method != Method::Ack
            && !m.request_uri().is_some_and(|u| {
                let scheme = u.split(':').next().unwrap_or("");
                scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
            })
        {
            return self.respond(from, m, 416, "Unsupported URI Scheme", None, |_| Ok(()));
        }
        if let Some(option) = unsupported_requirement(m) {
            let mut reason = [0u8; 96];
            let mut out = OutBuf::new(&mut reason);
            let _ = write!(out, "Bad Extension: {option}");
            let reason = core::str::from_utf8(out.as_bytes()).unwrap_or("Bad Extension");
            return self.respond(from, m, 420, reason, None, |w| w.header("Unsupported", option).map(drop));
        }
        match method {
            Method::Invite if self.shutting_down && m.to().is_ok_and(|t| t.tag().is_none()) => {
                self.respond(from, m, 503, "Service Unavailable: gateway shutting down", None, |_| Ok(()))
            }
            Method::Invite if m.to().is_ok_and(|t| t.tag().is_none()) => self.invite(from, m),
            Method::Invite | Method::Update => self.refresh(from, m),
            Method::Ack => self.ack(m),
            Method::Info => self.info(from, m),
            Method::Bye => self.bye(from, m),
            Method::Options => self.respond(from, m, 200, "OK", None, |w| {
                w.header("Allow", ALLOW)?.header("Accept", CSTA_XML)?.header("Supported", "timer")?;
                Ok(())
            }),
            Method::Cancel => self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(())),
            Method::Extension(_) => {
                self.respond(from, m, 501, "Not Implemented", None, |w| w.header("Allow", ALLOW).map(drop))
            }
            _ => self.respond(from, m, 405, "Method Not Allowed", None, |w| w.header("Allow", ALLOW).map(drop)),
        }
    }

    /// Writes a response to `m` (with `extra` headers and no body).
    fn respond(
        &mut self,
        to: Peer,
        m: &Message<'_>,
        code: u16,
        reason: impl core::fmt::Display,
        to_tag: Option<&str>,
        extra: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), Overflow>,
    ) {
        self.respond_with(to, m, code, reason, to_tag, extra, None::<fn(&mut OutBuf<'_>) -> Result<(), Overflow>>);
    }

    /// Writes a response to `m`, with a CSTA body if `body` is given;
    /// keeps a final response to a UDP request for its retransmissions.
    #[allow(clippy::too_many_arguments)]
    fn respond_with(
        &mut self,
        to: Peer,
        m: &Message<'_>,
        code: u16,
        reason: impl core::fmt::Display,
        to_tag: Option<&str>,
        extra: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), Overflow>,
        body: Option<impl FnOnce(&mut OutBuf<'_>) -> Result<(), Overflow>>,
    ) {
        let source = Some(to.addr);
        let written = self.out.push(to, |buf| {
            let mut w = MessageWriter::response_to(buf, m, code, reason, to_tag, source)?;
            extra(&mut w)?;
            let bytes = match body {
                Some(body) => w.finish_with_body(CSTA_XML, body)?,
                None => w.finish()?,
            };
            Ok(bytes.len())
        });
        if !written {
            self.counters.transmit_drops += 1;
            return;
        }
        self.counters.responses[usize::from(code / 100).clamp(1, 6) - 1] += 1;
        let is_invite = m.method() == Some(Method::Invite);
        if code >= 200 && !to.transport.is_reliable() && !is_invite {
            if let Some(key) = transaction_key(m, &to) {
                self.keep_completed(key, to, None);
            }
        }
    }

    /// Keeps the message just queued as the answer to retransmissions of
    /// the request `key` names; for an INVITE 2xx (`session`), also
    /// retransmits it until the ACK.
    fn keep_completed(&mut self, key: u64, to: Peer, session: Option<Handle>) -> Option<Handle> {
        let last = (self.out.head + self.out.count + self.out.slots.len() - 1) % self.out.slots.len();
        let now = self.now;
        while self.completed.len() == self.completed.capacity()
            || self.completed_order.len() == self.completed_order.capacity()
        {
            let Some(oldest) = self.completed_order.pop_front() else { break };
            if let Some(c) = self.completed.get(oldest) {
                self.completed_index.remove(c.key, oldest.index);
                self.completed.free(oldest);
                self.counters.completed_evicted += 1;
            }
        }
        let (h, c) = self.completed.alloc()?;
        self.completed_order.push_back(h);
        let slot = &self.out.slots[last];
        c.message.bytes[..slot.len].copy_from_slice(&slot.bytes[..slot.len]);
        c.message.len = slot.len;
        c.message.to = to;
        c.key = key;
        c.expires_at = now + 64 * T1;
        c.session = session;
        let (expires, retransmit) = (c.expires_at, c.message.arm(now, session.is_some()));
        self.completed_index.insert(key, h.index);
        self.schedule(expires, Timer::Completed(h.pack()));
        if let Some(at) = retransmit {
            self.schedule(at, Timer::Completed(h.pack()));
        }
        Some(h)
    }

    /// Answers a UDP retransmission from the response kept for it.
    fn resend_completed(&mut self, key: u64) -> bool {
        let found = self.completed_index.candidates(key).find_map(|i| {
            let h = self.completed.handle_at(i)?;
            (self.completed.get(h)?.key == key).then_some(h)
        });
        let Some(h) = found else { return false };
        let c = self.completed.get(h).expect("just found");
        if !self.out.resend(&c.message) {
            self.counters.transmit_drops += 1;
        }
        true
    }

    fn completed_timer(&mut self, h: Handle) {
        let now = self.now;
        let Some(c) = self.completed.get_mut(h) else { return };
        if c.expires_at <= now {
            // Kept long enough (64*T1). An INVITE 2xx still unacknowledged
            // means the dialog is dead (RFC 3261 §13.3.1.4).
            let (key, session, unacked) = (c.key, c.session, c.message.retransmit_at.is_some());
            self.completed_index.remove(key, h.index);
            self.completed.free(h);
            if let (Some(s), true) = (session, unacked) {
                self.log_session_end(s, "the 200 to its INVITE was never acknowledged");
                self.end_session(s, true);
            }
            return;
        }
        let Some(next) = c.message.back_off(now) else { return };
        if !self.out.resend(&c.message) {
            self.counters.transmit_drops += 1;
        }
        self.schedule(next, Timer::Completed(h.pack()));
    }

    /// The session of an in-dialog request.
    fn dialog_of(&self, m: &Message<'_>) -> Option<Handle> {
        let call_id = m.call_id().ok()?;
        let remote = m.from().ok()?.tag()?;
        let local = m.to().ok()?.tag()?;
        self.sessions.find_dialog(call_id, remote, Some(local))
    }

    /// Checks the CSeq of an in-dialog request (RFC 3261 §12.2.2): it
    /// must be higher than the last one. Answers 500 and returns false
    /// when it is not.
    fn in_order(&mut self, from: Peer, m: &Message<'_>, h: Handle) -> bool {
        let cseq = m.cseq().map(|c| c.number).unwrap_or(0);
        let Some(s) = self.sessions.get_mut(h) else { return false };
        if cseq < s.remote_cseq {
            self.respond(from, m, 500, "Server Internal Error: CSeq out of order", None, |_| Ok(()));
            return false;
        }
        if cseq == s.remote_cseq {
            // A retransmission whose answer is kept, or is in the making,
            // never gets here.
            let reason =
                "Server Internal Error: retransmission of a request already answered, its response no longer kept";
            self.respond(from, m, 500, reason, None, |_| Ok(()));
            return false;
        }
        s.remote_cseq = cseq;
        true
    }

    fn invite(&mut self, from: Peer, m: &Message<'_>) {
        let now = self.now;
        if !m.content_type().ok().flatten().is_some_and(|t| t.is("application", "csta+xml")) {
            self.counters.refused_body += 1;
            let reason = "Unsupported Media Type: the body must be application/csta+xml";
            return self.respond(from, m, 415, reason, None, |w| w.header("Accept", CSTA_XML).map(drop));
        }
        let doc = match csta::parse(m.body()) {
            Ok(doc) => doc,
            Err(e) => {
                self.counters.refused_body += 1;
                return self.respond(from, m, 400, Reason("Malformed CSTA body: ", e), None, |_| Ok(()));
            }
        };
        let Csta::Request(Request::RequestSystemStatus { line }) = doc.message else {
            self.counters.refused_body += 1;
            let reason = "Not Acceptable Here: only RequestSystemStatus opens a session";
            return self.respond(from, m, 488, reason, None, |_| Ok(()));
        };
        let from_header = m.from().expect("checked by check_request");
        let user = user_key(from_header.uri);
        if from_header.tag().is_none() {
            return self.respond(from, m, 400, "Bad Request: no tag in From", None, |_| Ok(()));
        }
        let mut scratch = [0u8; 128];
        let requested = match line.map(|l| l.unescape_into(&mut scratch).map(Number::parse)) {
            None => None,
            Some(Ok(Ok(n))) => Some(n),
            Some(_) => {
                return self.respond(from, m, 400, "Bad Request: lcs:line is not a telephone number", None, |_| Ok(()));
            }
        };
        if !self.appearances.knows(user) {
            self.counters.refused_user += 1;
            log::info!("{from}: INVITE refused: unknown user {user}");
            return self.respond(from, m, 403, "Forbidden: unknown user", None, |_| Ok(()));
        }
        let Some(line) = self.appearances.line_for(user, requested.as_ref()).and_then(copy_str::<MAX_URI>) else {
            self.counters.refused_user += 1;
            log::info!("{from}: INVITE refused: {user} asked for a line not assigned to them");
            return self.respond(from, m, 403, "Forbidden: line not assigned to the user", None, |_| Ok(()));
        };
        let session_expires = match session_expires(m) {
            Ok(se) => se,
            Err(()) => return self.respond(from, m, 400, "Bad Request: malformed Session-Expires", None, |_| Ok(())),
        };
        if session_expires.is_some_and(|se| se < MIN_SE) {
            return self.respond(from, m, 422, "Session Interval Too Small", None, |w| {
                w.header_fmt("Min-SE", MIN_SE).map(drop)
            });
        }
        // Everything the session keeps must fit its fixed fields.
        let fields = SessionFields::read(m);
        let Some(fields) = fields else {
            return self.respond(
                from,
                m,
                400,
                "Bad Request: a dialog header is missing or too long for this gateway",
                None,
                |_| Ok(()),
            );
        };
        if let Some(old) = self.sessions.find_user_line(user, &line) {
            self.counters.sessions_replaced += 1;
            log::info!("session of {user} on {line} replaced by a new INVITE");
            self.end_session(old, true);
        }
        let Some(slot) = self.nodes.pick() else {
            self.counters.refused_no_node += 1;
            log::info!("{from}: INVITE of {user} refused: no CTI node is up");
            let retry = self.nodes.timing().reconnect_interval.as_secs().max(1);
            return self.respond(from, m, 503, "Service Unavailable: no CTI node is up", None, |w| {
                w.header_fmt("Retry-After", retry).map(drop)
            });
        };
        let connection_id = self.nodes.connection_id(slot).expect("a picked node is up");
        let local_tag = self.fresh_tag();
        let namespace = doc.namespace;
        let opened = self.sessions.open(now, |s| {
            s.call_id = fields.call_id;
            s.remote_tag = fields.remote_tag;
            s.local_tag = local_tag.clone();
            s.user = fields.user;
            s.local_uri = fields.local_uri;
            s.remote_target = fields.remote_target;
            s.routes = fields.routes;
            s.line = line.clone();
            s.peer = from;
            s.namespace = namespace;
            s.slot = slot;
            s.connection_id = connection_id;
            s.remote_cseq = fields.cseq;
            s.invite_cseq = fields.cseq;
            s.session_expires = session_expires.map(|se| Duration::from_secs(u64::from(se)));
        });
        let Some(h) = opened else {
            self.counters.refused_full += 1;
            log::warn!(
                "{from}: INVITE of {user} refused: the session table is full ({} sessions)",
                self.sessions.capacity()
            );
            let retry = self.config.retry_after_full;
            return self.respond(from, m, 503, "Service Unavailable: session table full", None, |w| {
                w.header_fmt("Retry-After", retry).map(drop)
            });
        };
        self.counters.sessions_opened += 1;
        log::info!("session opened: {user} on {line}, {slot}, from {from}");
        self.answer_invite(from, m, h, session_expires, true);
    }

    /// The 200 to an INVITE or re-INVITE (and to UPDATE): Contact,
    /// session timer, and RequestSystemStatusResponse when `with_status`.
    fn answer_invite(&mut self, from: Peer, m: &Message<'_>, h: Handle, se: Option<u32>, with_status: bool) {
        let Some(s) = self.sessions.get(h) else { return };
        let (tag, namespace, up) = (s.local_tag.clone(), s.namespace, self.nodes.state(s.slot) == LinkState::Up);
        let contact = self.contacts[contact_index(from.transport)].clone();
        let require_timer = se.is_some() && m.supports("timer");
        let status = Response::SystemStatus(if up { SystemStatus::Normal } else { SystemStatus::Disabled });
        let extra = |w: &mut MessageWriter<'_>| {
            // RFC 3261 12.1.1: the proxies that record-routed (a load
            // balancer in front of several gateways) learn the route set.
            for header in m.headers().filter(|h| h.kind == HeaderName::RecordRoute) {
                w.header_bytes("Record-Route", header.value)?;
            }
            w.header_fmt("Contact", format_args!("<{contact}>"))?;
            w.header("Allow", ALLOW)?.header("Supported", "timer")?;
            if let Some(se) = se {
                w.header_fmt("Session-Expires", format_args!("{se};refresher=uac"))?;
                if require_timer {
                    w.header("Require", "timer")?;
                }
            }
            Ok(())
        };
        let body = with_status.then_some(|o: &mut OutBuf<'_>| status.write(namespace, o));
        self.respond_with(from, m, 200, "OK", Some(&tag), extra, body);
        if m.method() == Some(Method::Invite) && !from.transport.is_reliable() {
            let Some(key) = transaction_key(m, &from) else { return };
            let kept = self.keep_completed(key, from, Some(h));
            if let Some(s) = self.sessions.get_mut(h) {
                if let Some(old) = core::mem::replace(&mut s.invite_2xx, kept) {
                    if let Some(c) = self.completed.get_mut(old) {
                        c.message.retransmit_at = None;
                    }
                }
            }
        }
    }

    /// A re-INVITE or UPDATE: a session refresh.
    fn refresh(&mut self, from: Peer, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else {
            return self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(()));
        };
        if !self.in_order(from, m, h) {
            return;
        }
        let se = match session_expires(m) {
            Ok(se) => se,
            Err(()) => return self.respond(from, m, 400, "Bad Request: malformed Session-Expires", None, |_| Ok(())),
        };
        if let Some(s) = self.sessions.get_mut(h) {
            s.refreshed_at = self.now;
            if let Some(se) = se {
                s.session_expires = Some(Duration::from_secs(u64::from(se)));
            }
            if m.method() == Some(Method::Invite) {
                s.invite_cseq = m.cseq().map(|c| c.number).unwrap_or(0);
            }
        }
        let with_status = m.content_type().ok().flatten().is_some_and(|t| t.is("application", "csta+xml"));
        self.answer_invite(from, m, h, se, with_status);
    }

    fn ack(&mut self, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else { return };
        let Some(kept) = self.sessions.get(h).and_then(|s| s.invite_2xx) else { return };
        if let Some(c) = self.completed.get_mut(kept) {
            c.message.retransmit_at = None;
        }
    }

    fn bye(&mut self, from: Peer, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else {
            return self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(()));
        };
        self.respond(from, m, 200, "OK", None, |_| Ok(()));
        if let Some(s) = self.sessions.get(h) {
            log::info!("session closed by {}: {} on {}", from, s.user, s.line);
        }
        self.end_session(h, false);
    }

    /// Answers an INFO (or a pending one) with a CSTA document.
    fn answer_csta(&mut self, to: Peer, m: &Message<'_>, namespace: Namespace, message: &Csta<'_>) {
        self.respond_with(to, m, 200, "OK", None, |_| Ok(()), Some(|o: &mut OutBuf<'_>| message.write(namespace, o)));
    }

    fn info(&mut self, from: Peer, m: &Message<'_>) {
        let Some(h) = self.dialog_of(m) else {
            return self.respond(from, m, 481, "Call/Transaction Does Not Exist", None, |_| Ok(()));
        };
        if !self.in_order(from, m, h) {
            return;
        }
        if !m.content_type().ok().flatten().is_some_and(|t| t.is("application", "csta+xml")) {
            let reason = "Unsupported Media Type: the body must be application/csta+xml";
            return self.respond(from, m, 415, reason, None, |w| w.header("Accept", CSTA_XML).map(drop));
        }
        let s = self.sessions.get(h).expect("found above");
        let namespace = s.namespace;
        if s.ending {
            return self.answer_csta(from, m, namespace, &Csta::Error(ErrorCode::RESOURCE_OUT_OF_SERVICE));
        }
        let doc = match csta::parse(m.body()) {
            Ok(doc) => doc,
            Err(e)
                if matches!(
                    e,
                    csta::Error::UnknownMessage
                        | csta::Error::MissingElement(_)
                        | csta::Error::BadValue(_)
                        | csta::Error::TooManyItems(_)
                ) =>
            {
                return self.answer_csta(from, m, namespace, &Csta::Error(e.error_code()));
            }
            Err(e) => return self.respond(from, m, 400, Reason("Malformed CSTA body: ", e), None, |_| Ok(())),
        };
        let Csta::Request(request) = doc.message else {
            return self.respond(from, m, 400, "Bad Request: the body is not a CSTA request", None, |_| Ok(()));
        };
        match request {
            Request::GetCstaFeatures { .. } => {
                self.answer_csta(from, m, namespace, &Csta::Response(Response::Features(Services::all())))
            }
            Request::RequestSystemStatus { .. } => {
                let up = self.nodes.state(s.slot) == LinkState::Up
                    && self.nodes.connection_id(s.slot) == Some(s.connection_id);
                let status = if up { SystemStatus::Normal } else { SystemStatus::Disabled };
                self.answer_csta(from, m, namespace, &Csta::Response(Response::SystemStatus(status)))
            }
            _ => self.relay(from, m, h, &request),
        }
    }

    /// Relays a request to the session's node, after checking the user
    /// may touch what it names; refusals are answered at once.
    fn relay(&mut self, from: Peer, m: &Message<'_>, h: Handle, request: &Request<'_>) {
        let s = self.sessions.get(h).expect("checked by the caller");
        let namespace = s.namespace;
        let refuse = |code: ErrorCode<'static>| Csta::Error(code);
        // Line appearances: every controlled device must be the user's.
        let mut scratch = [0u8; 128];
        let allowed = request.controlled_devices().into_iter().flatten().all(|device| match device {
            Some(text) => text.unescape_into(&mut scratch).is_ok_and(|d| self.appearances.may_control(&s.user, d)),
            None => false, // a connection without its device cannot be authorised
        });
        let monitor_ok = match request {
            Request::MonitorStop { monitor } => s.monitors.iter().any(|x| monitor.eq_str(x)),
            _ => true,
        };
        let room_for_monitor = !matches!(request, Request::MonitorStart { .. }) || s.monitors.len() < MAX_MONITORS;
        let node_up =
            self.nodes.state(s.slot) == LinkState::Up && self.nodes.connection_id(s.slot) == Some(s.connection_id);
        let (slot, user) = (s.slot, s.user.clone());
        let verdict = if !allowed {
            self.counters.privilege_violations += 1;
            log::info!("{user}: {} refused: a device not assigned to the user", request.service().request_name());
            Some(ErrorCode::PRIVILEGE_VIOLATION)
        } else if !monitor_ok {
            Some(ErrorCode::INVALID_MONITOR_CROSS_REF_ID)
        } else if !room_for_monitor {
            Some(ErrorCode::OBJECT_MONITOR_LIMIT_EXCEEDED)
        } else if !node_up {
            self.counters.node_down_refusals += 1;
            log::info!("{}: {} refused: its CTI node is down", s.user, request.service().request_name());
            Some(ErrorCode::RESOURCE_OUT_OF_SERVICE)
        } else if self.client.len() * 4 >= self.client.capacity() * 3 {
            // Lync is not taking events as fast as calls make them: new
            // work is refused before events would have to be dropped.
            self.counters.backlog_refusals += 1;
            if self.counters.backlog_refusals.is_power_of_two() {
                log::warn!(
                    "{user}: {} refused: {} event INFOs wait for Lync's answers ({} requests refused so far)",
                    request.service().request_name(),
                    self.client.len(),
                    self.counters.backlog_refusals
                );
            }
            Some(ErrorCode::RESOURCE_BUSY)
        } else {
            None
        };
        if let Some(code) = verdict {
            return self.answer_csta(from, m, namespace, &refuse(code));
        }
        let bytes = m.as_bytes();
        let Some((p, pending)) = self.pending.alloc().filter(|(_, p)| bytes.len() <= p.request.len()) else {
            log::warn!("{user}: {} refused: too many requests waiting for the nodes", request.service().request_name());
            return self.answer_csta(from, m, namespace, &refuse(ErrorCode::RESOURCE_BUSY));
        };
        pending.request[..bytes.len()].copy_from_slice(bytes);
        pending.len = bytes.len();
        pending.from = from;
        pending.session = h;
        pending.namespace = namespace;
        let key = transaction_key(m, &from);
        if let (Some(key), false) = (key, from.transport.is_reliable()) {
            self.pending_index.insert(key, p.index);
        }
        match self.nodes.send_request(self.now, slot, RequestTag(p.pack()), request) {
            Ok(_) => self.counters.relayed += 1,
            Err(e) => {
                self.forget_pending(p);
                self.answer_csta(from, m, namespace, &refuse(e.error_code()));
            }
        }
    }

    fn forget_pending(&mut self, p: Handle) {
        let Some(pending) = self.pending.get(p) else { return };
        if let Ok(m) = Message::parse(&pending.request[..pending.len]) {
            if let Some(key) = transaction_key(&m, &pending.from) {
                self.pending_index.remove(key, p.index);
            }
        }
        self.pending.free(p);
    }

    /// A node answered (or could not answer) a relayed request.
    /// True when the node's document did not parse (the caller counts it).
    fn node_answered(&mut self, tag: RequestTag, answer: Result<&[u8], ErrorCode<'static>>) -> bool {
        let mut malformed = false;
        if tag.0 >= INTERNAL {
            return malformed; // the gateway's own MonitorStop
        }
        let p = Handle::unpack(tag.0);
        let Some(pending) = self.pending.get_mut(p) else { return malformed };
        // The stored request is moved out while it is answered: the
        // answer needs the whole gateway. Taking a boxed slice does not allocate.
        let request = core::mem::take(&mut pending.request);
        let (len, from, session, namespace) = (pending.len, pending.from, pending.session, pending.namespace);
        if let Ok(m) = Message::parse(&request[..len]) {
            let answer_doc = answer.map(csta::parse);
            malformed = matches!(answer_doc, Ok(Err(_)));
            let message = match &answer_doc {
                Ok(Ok(doc)) => Some(&doc.message),
                _ => None,
            };
            // Monitors: learn the ids the node gives, forget stopped ones.
            match message {
                Some(Csta::Response(Response::MonitorStarted { monitor })) => {
                    let mut scratch = [0u8; 64];
                    if let Ok(xref) = monitor.unescape_into(&mut scratch) {
                        self.sessions.add_monitor(session, xref);
                    }
                }
                Some(Csta::Response(Response::Ack(Service::MonitorStop))) => {
                    if let Ok(csta::Document { message: Csta::Request(Request::MonitorStop { monitor }), .. }) =
                        csta::parse(m.body())
                    {
                        let mut scratch = [0u8; 64];
                        if let Ok(xref) = monitor.unescape_into(&mut scratch) {
                            self.sessions.remove_monitor(session, xref);
                        }
                    }
                }
                _ => {}
            }
            let queued = self.out.count;
            match &answer_doc {
                Ok(Ok(doc)) => self.answer_csta(from, &m, namespace, &doc.message),
                // The node's document did not parse: tell Lync it failed.
                Ok(Err(_)) => self.answer_csta(from, &m, namespace, &Csta::Error(ErrorCode::GENERIC_OPERATION)),
                Err(code) => self.answer_csta(from, &m, namespace, &Csta::Error(*code)),
            }
            if self.out.count > queued && from.transport.is_reliable() {
                self.out.mark_last(Defer::Answer);
            }
            if let Some(key) = transaction_key(&m, &from) {
                self.pending_index.remove(key, p.index);
            }
        }
        if let Some(pending) = self.pending.get_mut(p) {
            pending.request = request;
        }
        self.pending.free(p);
        malformed
    }

    /// An event from the node in `slot`: to the session that monitors it.
    fn node_event(&mut self, slot: SlotId, body: &[u8]) {
        let Ok(doc) = csta::parse(body) else {
            self.nodes.malformed(slot);
            return;
        };
        let Csta::Event(event) = &doc.message else { return };
        let mut scratch = [0u8; 64];
        let Ok(xref) = event.monitor().unescape_into(&mut scratch) else { return };
        let Some(h) = self.sessions.find_monitor(slot, xref) else {
            self.counters.events_unknown += 1;
            log::debug!("{slot}: event for unknown monitor {xref} dropped");
            return;
        };
        self.send_in_dialog(h, ClientKind::EventInfo, Some(event));
    }

    /// Sends the gateway's own request in the session's dialog: an event
    /// INFO, or a BYE. Over UDP it is retransmitted until answered.
    fn send_in_dialog(&mut self, h: Handle, kind: ClientKind, event: Option<&csta::Event<'_>>) {
        let Some(s) = self.sessions.get_mut(h) else { return };
        if s.ending && kind == ClientKind::EventInfo {
            return;
        }
        s.local_cseq += 1;
        let s = self.sessions.get(h).expect("just used");
        let Some((ch, c)) = self.client.alloc() else {
            self.counters.transmit_drops += 1;
            // Overload: said once, then at every power of two, not per event.
            if self.counters.transmit_drops.is_power_of_two() {
                log::warn!(
                    "{}: event dropped: too many INFOs waiting for answers ({} messages dropped so far)",
                    s.user,
                    self.counters.transmit_drops
                );
            }
            return;
        };
        let mut branch = [0u8; 40];
        let mut b = OutBuf::new(&mut branch);
        let _ = write!(b, "{BRANCH}{:x}", ch.pack());
        let branch = core::str::from_utf8(b.as_bytes()).unwrap_or(BRANCH);
        let mut routes: [&str; MAX_ROUTES] = [""; MAX_ROUTES];
        for (r, route) in routes.iter_mut().zip(&s.routes) {
            *r = route;
        }
        let mut sent_by = [0u8; 80];
        let mut out = OutBuf::new(&mut sent_by);
        let port = match s.peer.transport {
            Transport::Tls(_) => self.config.tls_port.unwrap_or(self.config.sip_port),
            Transport::Udp | Transport::Tcp(_) => self.config.sip_port,
        };
        let _ = write!(out, "{}:{port}", self.config.sip_host);
        let sent_by = core::str::from_utf8(out.as_bytes()).unwrap_or("");
        let contact = &self.contacts[contact_index(s.peer.transport)];
        let target = if s.remote_target.is_empty() { s.user.as_str() } else { s.remote_target.as_str() };
        let d = DialogRequest {
            method: if kind == ClientKind::Bye { Method::Bye } else { Method::Info },
            request_uri: target,
            route_set: &routes[..s.routes.len()],
            via_transport: s.peer.transport.token(),
            via_sent_by: sent_by,
            branch,
            local_uri: &s.local_uri,
            local_tag: &s.local_tag,
            remote_uri: &s.user,
            remote_tag: &s.remote_tag,
            call_id: &s.call_id,
            cseq: s.local_cseq,
            contact,
        };
        let namespace = s.namespace;
        let written = MessageWriter::in_dialog(&mut c.message.bytes, &d).and_then(|w| match event {
            Some(event) => w.finish_with_body(CSTA_XML, |o| event.write(namespace, o)).map(|b| b.len()),
            None => w.finish().map(|b| b.len()),
        });
        let Ok(len) = written else {
            self.client.free(ch);
            self.counters.transmit_drops += 1;
            return;
        };
        c.message.len = len;
        c.message.to = s.peer;
        c.kind = kind;
        c.session = h;
        c.next = None;
        c.state = ClientState::Queued;
        if kind == ClientKind::EventInfo {
            self.counters.events_relayed += 1;
            // One event INFO in flight per session: later ones wait, in order.
            let s = self.sessions.get_mut(h).expect("just used");
            match s.events {
                Some((head, tail)) => {
                    s.events = Some((head, ch));
                    if let Some(t) = self.client.get_mut(tail) {
                        t.next = Some(ch);
                    }
                    return;
                }
                None => s.events = Some((ch, ch)),
            }
        }
        self.start_client(ch);
    }

    /// Sends a client transaction and starts its timers (E and F). With
    /// no room to go (the outgoing queue, or its stream connection, is
    /// full) it waits for [`Gateway::resume_waiting`].
    fn start_client(&mut self, ch: Handle) {
        let now = self.now;
        let Some(c) = self.client.get(ch) else { return };
        if !self.room_for(&c.message.to) {
            self.waiting = true;
            if let Some(c) = self.client.get_mut(ch) {
                c.state = ClientState::Waiting;
            }
            return;
        }
        let Some(c) = self.client.get_mut(ch) else { return };
        c.state = ClientState::Started;
        c.timeout_at = now + 64 * T1;
        let (retransmit, timeout) = (c.message.arm(now, !c.message.to.transport.is_reliable()), c.timeout_at);
        if self.out.resend(&c.message) {
            self.out.mark_last(Defer::Client(ch));
        } else {
            self.counters.transmit_drops += 1;
        }
        self.schedule(timeout, Timer::Client(ch.pack()));
        if let Some(at) = retransmit {
            self.schedule(at, Timer::Client(ch.pack()));
        }
    }

    /// The event INFO in flight of session `h` got its final answer: the
    /// next one goes out.
    fn next_event(&mut self, h: Handle, done: Handle) {
        let next = self.client.get(done).and_then(|c| c.next);
        self.client.free(done);
        let Some(s) = self.sessions.get_mut(h) else { return };
        match (s.events, next) {
            (Some((head, tail)), Some(next)) if head == done => {
                s.events = Some((next, tail));
                self.start_client(next);
            }
            (Some((head, _)), None) if head == done => s.events = None,
            _ => {}
        }
    }

    /// Frees the session's queued event INFOs (it is ending).
    fn drop_events(&mut self, h: Handle) {
        let Some((head, _)) = self.sessions.get_mut(h).and_then(|s| s.events.take()) else { return };
        let mut next = Some(head);
        while let Some(ch) = next {
            next = self.client.get(ch).and_then(|c| c.next);
            self.client.free(ch);
        }
    }

    fn client_timer(&mut self, h: Handle) {
        let now = self.now;
        let Some(c) = self.client.get_mut(h).filter(|c| c.state == ClientState::Started) else { return };
        if c.timeout_at <= now {
            // Timer F: never answered.
            let (kind, session) = (c.kind, c.session);
            // An event INFO is freed with its session's queue below.
            if kind != ClientKind::EventInfo || self.sessions.get(session).is_none() {
                self.client.free(h);
            }
            if kind == ClientKind::EventInfo {
                self.counters.event_timeouts += 1;
                self.log_session_end(session, "an event INFO was never answered (dead dialog)");
                self.end_session(session, true);
            }
            return;
        }
        // Timer E: retransmit, doubling up to T2.
        let Some(next) = c.message.back_off(now) else { return };
        if !self.out.resend(&c.message) {
            self.counters.transmit_drops += 1;
        }
        self.schedule(next, Timer::Client(h.pack()));
    }

    /// A response to one of the gateway's own requests.
    fn handle_response(&mut self, from: Peer, m: &Message<'_>) {
        let Some(code) = m.status_code() else { return };
        let Some(h) = m
            .via()
            .ok()
            .and_then(|v| v.branch())
            .and_then(|b| b.strip_prefix(BRANCH))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(Handle::unpack)
        else {
            return;
        };
        let Some(c) = self.client.get(h) else { return };
        // A response counts only from where its request went (the same
        // connection; over UDP the same host) and only if it names that
        // request's dialog and CSeq: a guessed branch changes nothing.
        let sent = &c.message;
        let same_peer = match sent.to.transport {
            Transport::Udp => from.transport == Transport::Udp && sent.to.addr.ip() == from.addr.ip(),
            _ => sent.to == from,
        };
        let same_request = Message::parse(sent.as_bytes()).is_ok_and(|request| {
            request.call_id().ok() == m.call_id().ok()
                && request.cseq().ok().map(|c| c.number) == m.cseq().ok().map(|c| c.number)
        });
        if !same_peer || !same_request {
            self.counters.responses_ignored += 1;
            log::debug!("{from}: a response to none of the gateway's requests, ignored");
            return;
        }
        if code < 200 {
            return;
        }
        let (kind, session) = (c.kind, c.session);
        if kind == ClientKind::Bye {
            self.client.free(h);
            return;
        }
        // Only the head of the session's event queue has been sent; a
        // response naming one still queued (a guessed branch) would unlink
        // it from the queue and strand the ones behind it.
        if self.sessions.get(session).and_then(|s| s.events).map(|(head, _)| head) != Some(h) {
            return;
        }
        if code >= 300 {
            // 481: the dialog is gone at Lync's end; anything else: end it.
            let bye = code != 481 && code != 408;
            if let Some(s) = self.sessions.get(session) {
                log::info!("session of {} on {} ended: Lync answered an event INFO with {code}", s.user, s.line);
            }
            self.end_session(session, bye);
        } else {
            self.next_event(session, h);
        }
    }

    /// Ends a session: its monitors are stopped on the node and, when
    /// `bye`, Lync gets a BYE (as soon as the outgoing queue has room).
    fn end_session(&mut self, h: Handle, bye: bool) {
        let now = self.now;
        let Some(s) = self.sessions.get_mut(h) else { return };
        if s.ending {
            return;
        }
        s.ending = true;
        if let Some(kept) = s.invite_2xx.take() {
            if let Some(c) = self.completed.get_mut(kept) {
                c.message.retransmit_at = None;
            }
        }
        let s = self.sessions.get(h).expect("just used");
        let (slot, connection_id) = (s.slot, s.connection_id);
        let on_same_connection =
            self.nodes.state(slot) == LinkState::Up && self.nodes.connection_id(slot) == Some(connection_id);
        let mut monitors: heapless::Vec<String<{ session::MAX_XREF }>, MAX_MONITORS> = heapless::Vec::new();
        for xref in &s.monitors {
            let _ = monitors.push(xref.clone());
        }
        if on_same_connection {
            for xref in &monitors {
                self.next_tag += 1;
                let stop = Request::MonitorStop { monitor: csta::Text::literal(xref) };
                let _ = self.nodes.send_request(now, slot, RequestTag(INTERNAL | self.next_tag), &stop);
            }
        }
        self.counters.sessions_closed += 1;
        self.drop_events(h);
        if !bye {
            self.sessions.close(h);
        } else if self.out.room() > 1 && self.byes.is_empty() {
            self.send_bye_and_close(h);
        } else {
            self.byes.push_back(h);
        }
    }

    fn log_session_end(&self, h: Handle, why: &str) {
        if let Some(s) = self.sessions.get(h) {
            log::info!("session of {} on {} ended: {why}", s.user, s.line);
        }
    }

    fn send_bye_and_close(&mut self, h: Handle) {
        self.send_in_dialog(h, ClientKind::Bye, None);
        self.sessions.close(h);
    }

    /// Sessions whose refresh interval (RFC 4028) passed without a refresh.
    fn sweep_expired_sessions(&mut self) {
        let now = self.now;
        let mut expired: heapless::Vec<Handle, 64> = heapless::Vec::new();
        for (h, s) in self.sessions.iter() {
            if s.ending {
                continue;
            }
            if s.session_expires.is_some_and(|se| now >= s.refreshed_at + se) && expired.push(h).is_err() {
                break; // the rest at the next sweep
            }
        }
        for h in expired {
            if let Some(s) = self.sessions.get(h) {
                log::info!("session of {} expired: not refreshed within its Session-Expires", s.user);
            }
            self.end_session(h, true);
        }
    }

    /// A node came up with a new connection: the sessions bound to its old
    /// connection are ended, so Lync re-INVITEs onto a live node.
    fn node_up(&mut self, slot: SlotId, connection_id: u64) {
        let mut stale: heapless::Vec<Handle, 256> = heapless::Vec::new();
        loop {
            stale.clear();
            for (h, s) in self.sessions.iter() {
                if s.slot == slot && s.connection_id != connection_id && !s.ending && stale.push(h).is_err() {
                    break;
                }
            }
            if stale.is_empty() {
                return;
            }
            log::info!(
                "{slot}: back with connection {connection_id}; ending {} sessions of its old connection",
                stale.len()
            );
            for h in stale.iter().copied() {
                self.end_session(h, true);
            }
        }
    }

    /// A TCP or TLS connection closed: its sessions cannot be reached any more.
    pub fn tcp_closed(&mut self, now: Instant, conn: super::ConnId) {
        self.now = now;
        self.congested.retain(|&c| c != conn);
        let mut gone: heapless::Vec<Handle, 256> = heapless::Vec::new();
        loop {
            gone.clear();
            for (h, s) in self.sessions.iter() {
                if s.peer.transport.conn() == Some(conn) && !s.ending && gone.push(h).is_err() {
                    break;
                }
            }
            if gone.is_empty() {
                return;
            }
            for h in gone.iter().copied() {
                if let Some(s) = self.sessions.get(h) {
                    log::info!("session of {} ended: its {} connection closed", s.user, s.peer.transport.token());
                }
                self.end_session(h, false);
            }
        }
    }

    fn drain_cti_events(&mut self, _now: Instant) {
        while let Some(event) = self.nodes.poll_event() {
            event.log();
            match event {
                CtiEvent::NodeUp { slot, connection_id } => self.node_up(slot, connection_id),
                CtiEvent::RequestFailed { tag, failure, .. } => {
                    self.node_answered(tag, Err(failure.error_code()));
                }
                _ => {}
            }
        }
    }

    fn fresh_tag(&mut self) -> String<MAX_TAG> {
        self.next_tag += 1;
        let mut tag = String::new();
        let _ = write!(tag, "gw{:x}", self.next_tag);
        tag
    }
}

/// The CTI side of the core: what the shell saw on the node links, and
/// what it must do for them. The nodes' documents reach the gateway's
/// handlers from here; the shell never sees them.
impl Gateway {
    /// What the shell saw happen to the TCP connection of `slot`.
    pub fn handle_link(&mut self, now: Instant, slot: SlotId, event: LinkEvent) {
        self.now = now;
        self.nodes.handle_link(now, slot, event);
        self.drain_cti_events(now);
    }

    /// Bytes read from the link of `slot`: every frame they complete is
    /// handled (a node's answer to its pending request, an event to the
    /// session monitoring it).
    pub fn handle_cti(&mut self, now: Instant, slot: SlotId, bytes: &[u8]) {
        self.now = now;
        // Each frame's document is copied out of the link's buffer into the
        // inbox (taken out of self: no allocation) before it is handled.
        let mut inbox = core::mem::take(&mut self.inbox);
        let mut rest = bytes;
        loop {
            let spare = self.nodes.rx_spare(slot);
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            self.nodes.received(slot, n);
            rest = &rest[n..];
            loop {
                let (what, len) = match self.nodes.next_incoming(now, slot) {
                    None => break,
                    Some(Incoming::Handled) => continue,
                    Some(Incoming::Response { tag, body, .. }) => {
                        let len = body.len().min(inbox.len());
                        inbox[..len].copy_from_slice(&body[..len]);
                        (Some(tag), len)
                    }
                    Some(Incoming::Event { body, .. }) => {
                        let len = body.len().min(inbox.len());
                        inbox[..len].copy_from_slice(&body[..len]);
                        (None, len)
                    }
                };
                match what {
                    Some(tag) => {
                        if self.node_answered(tag, Ok(&inbox[..len])) {
                            self.nodes.malformed(slot);
                        }
                    }
                    None => self.node_event(slot, &inbox[..len]),
                }
            }
            if rest.is_empty() || n == 0 {
                break;
            }
        }
        self.inbox = inbox;
        self.drain_cti_events(now);
    }

    /// Bytes waiting to be written on the link of `slot`.
    pub fn link_tx(&self, slot: SlotId) -> &[u8] {
        self.nodes.tx_pending(slot)
    }

    /// The first `n` bytes of [`Gateway::link_tx`] were written.
    pub fn link_transmitted(&mut self, slot: SlotId, n: usize) {
        self.nodes.transmitted(slot, n);
    }

    /// The next thing the shell must do for a link (connect, close).
    pub fn poll_link_action(&mut self) -> Option<LinkAction> {
        self.nodes.poll_action()
    }
}

/// What a session keeps of the INVITE that opens it, checked to fit.
struct SessionFields {
    call_id: String<MAX_CALL_ID>,
    remote_tag: String<MAX_TAG>,
    user: String<MAX_URI>,
    local_uri: String<MAX_URI>,
    remote_target: String<MAX_URI>,
    routes: heapless::Vec<String<MAX_ROUTE>, MAX_ROUTES>,
    cseq: u32,
}

impl SessionFields {
    fn read(m: &Message<'_>) -> Option<SessionFields> {
        let from = m.from().ok()?;
        let mut routes = heapless::Vec::new();
        for route in m.name_addrs(HeaderName::RecordRoute) {
            let route = route.ok()?;
            let mut text: String<MAX_ROUTE> = String::new();
            write!(text, "<{}>{}", route.uri, route.params.as_str()).ok()?;
            routes.push(text).ok()?;
        }
        Some(SessionFields {
            call_id: copy_str(m.call_id().ok()?)?,
            remote_tag: copy_str(from.tag()?)?,
            user: copy_str(user_key(from.uri))?,
            local_uri: copy_str(m.to().ok()?.uri)?,
            remote_target: copy_str(m.contact().ok()??.uri)?,
            routes,
            cseq: m.cseq().ok()?.number,
        })
    }
}

/// Session-Expires (RFC 4028), in seconds: `Ok(None)` when absent.
fn session_expires(m: &Message<'_>) -> Result<Option<u32>, ()> {
    let Some(value) = m.single(HeaderName::SessionExpires).map_err(drop)? else { return Ok(None) };
    let delta = value.split(';').next().unwrap_or("").trim();
    let n = sip::grammar::parse_digits(delta).ok_or(())?;
    Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
}

/// The first option of Require this gateway does not support.
fn unsupported_requirement<'a>(m: &Message<'a>) -> Option<&'a str> {
    m.list(HeaderName::Require).filter_map(Result::ok).find(|tag| !tag.eq_ignore_ascii_case("timer"))
}

fn copy_into(buf: &mut [u8], bytes: &[u8]) -> Result<usize, Overflow> {
    buf.get_mut(..bytes.len()).ok_or(Overflow)?.copy_from_slice(bytes);
    Ok(bytes.len())
}

/// A reason phrase: a fixed prefix and what went wrong.
struct Reason<E>(&'static str, E);

impl<E: core::fmt::Display> core::fmt::Display for Reason<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

/// Rewrites a request whose start line (or Content-Length) was refused
/// into one whose headers can be answered: a neutral request line, the
/// original header lines minus Content-Length, no body. `None` for a
/// response, or when the header block does not end.
fn salvage(bytes: &[u8], scratch: &mut [u8]) -> Option<usize> {
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let bytes = &bytes[start..];
    if bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let first_eol = bytes.iter().position(|&b| b == b'\n')?;
    let head = &bytes[first_eol + 1..];
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 2)?;
    let mut out = OutBuf::new(scratch);
    out.put(b"OPTIONS sip:invalid SIP/2.0\r\n").ok()?;
    for line in head[..end].split(|&b| b == b'\n') {
        let name = line.split(|&b| b == b':').next().unwrap_or(b"");
        let name = core::str::from_utf8(name).unwrap_or("").trim();
        if line.is_empty() || HeaderName::classify(name) == HeaderName::ContentLength {
            continue;
        }
        out.put(line).ok()?;
        out.put(b"\n").ok()?;
    }
    out.put(b"Content-Length: 0\r\n\r\n").ok()?;
    Some(out.len())
}
