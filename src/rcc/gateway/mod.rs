//! The gateway core: SIP in, CSTA to the nodes, CSTA back, SIP out.
//!
//! Every table is sized once, at boot ([`GatewayConfig`]), and never grows:
//! sessions, requests waiting for a node, the outgoing queue, and in the
//! transaction layer ([`crate::transaction`]) the gateway's own client
//! transactions (event INFOs, BYEs), the responses kept for UDP
//! retransmissions and their timers. A full table is a clear refusal
//! (503, or a CSTA error), never an allocation.
//!
//! One type, [`Gateway`], its methods spread over files by concern:
//! - `incoming`: SIP in, checked and handed to the concern of its method;
//! - `responses`: responses written, final ones kept for UDP retransmissions;
//! - `dialogs`: INVITE, refresh (RFC 4028), ACK, BYE, a session's end;
//! - `relay`: Lync's CSTA requests, answered, refused or relayed to a node;
//! - `events`: the gateway's own requests to Lync (event INFOs, BYEs);
//! - `nodes`: the CTI links' entry points and the nodes' state changes;
//! - `transmit`: the outgoing queue and backpressure.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use heapless::String;

use super::appearances::{Appearances, device_param, user_key};
use super::session::{self, MAX_CALL_ID, MAX_MONITORS, MAX_ROUTE_SET, MAX_TAG, MAX_URI, Sessions, Strings};
use super::session_timer::{Asked, Negotiated, Refresher, negotiate};
use super::translate::{Arena, Translation, arena_buffer};
use super::{Peer, Transport};
use crate::board;
use crate::config::Cidr;
use crate::csta::{self, ErrorCode, Message as Csta, Namespace, Request, Response, Service, Services, SystemStatus};
use crate::cti::{CtiEvent, Incoming, LinkAction, LinkEvent, LinkState, Nodes, RequestTag, SlotId};
use crate::dialplan::DialPlan;
use crate::index::Index;
use crate::outbuf::{OutBuf, Overflow};
use crate::pool::{Handle, Pool};
use crate::sip::{self, DialogRequest, Frame, HeaderName, Message, MessageWriter, Method};
use crate::store::{ByteStore, Span};
use crate::tel::Number;
use crate::transaction::{Happened, MESSAGE_GRANULE, OpenError, ResponseMatch, Transactions, server_key};

mod dialogs;
mod events;
mod incoming;
mod nodes;
mod relay;
mod responses;
mod transmit;

use events::{ClientKind, ClientState, Outgoing};
use relay::Pending;
use transmit::{Defer, OutQueue};
pub use transmit::{Deferrable, Transmit};

/// The Allow header of every response that lists methods.
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";
/// The Content-Type of CSTA bodies.
const CSTA_XML: &str = "application/csta+xml";
/// Request tags at or above this mark the gateway's own requests to a node.
const INTERNAL: u64 = 1 << 63;
/// Sessions are checked for expiry this often.
const SWEEP: Duration = Duration::from_secs(5);

/// What happens to a node's sessions when the node goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failover {
    /// Ended with BYE as soon as the node is declared down: Lync signs its
    /// users in again and round robin puts them on a live node.
    #[default]
    Move,
    /// Kept, their requests refused (`resourceOutOfService`), until the
    /// node is back; then ended, so that Lync signs in again.
    Wait,
}

impl Failover {
    /// The policy a configuration value names (`move`, `wait`).
    pub fn parse(name: &str) -> Option<Failover> {
        match name {
            "move" => Some(Failover::Move),
            "wait" => Some(Failover::Wait),
            _ => None,
        }
    }
}

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
    /// Bytes for the sessions' strings together.
    pub session_store: usize,
    /// Bytes for the gateway's own requests and the responses kept.
    pub transaction_store: usize,
    /// Bytes for the requests waiting for a node and the messages waiting
    /// to go out.
    pub queue_store: usize,
    /// Retry-After of a 503 when the session table is full, in seconds.
    pub retry_after_full: u32,
    /// The services Lync may be offered (all, unless the operator
    /// withholds some); each node's own list narrows it further.
    pub services: Services,
    /// What happens to a node's sessions when it goes down.
    pub failover: Failover,
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
            session_store: board::SESSION_STORE,
            transaction_store: board::TRANSACTION_STORE,
            queue_store: board::QUEUE_STORE,
            retry_after_full: 30,
            services: Services::all(),
            failover: Failover::Move,
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
    /// Requests for a service the session's node does not support (or
    /// the operator withholds), refused without a round trip.
    pub unsupported_refusals: u64,
    /// Requests refused because a number to call matched no `to_node`
    /// rule of the dial plan (or a device did not translate).
    pub dialplan_refusals: u64,
    /// Event INFOs, BYEs and answers held back because their stream
    /// connection's transmit buffer was full (sent once it drained).
    pub deferred: u64,
    /// Requests from sources not trusted, ignored.
    pub untrusted_ignored: u64,
    /// Responses that answer none of the gateway's requests (wrong source,
    /// dialog or CSeq), ignored.
    pub responses_ignored: u64,
    /// Parts of a node's events and answers the gateway does not carry on
    /// to Lync (elements it does not model, list items past its
    /// capacities); each kind is logged once.
    pub fields_dropped: u64,
    /// Devices sent to Lync in the node's names because there was no room
    /// left to rewrite them through the dial plan.
    pub untranslated: u64,
}

/// The gateway.
pub struct Gateway {
    config: GatewayConfig,
    appearances: Appearances,
    /// Number and device translation; `None`: names pass unchanged.
    dialplan: Option<DialPlan>,
    nodes: Box<Nodes>,
    sessions: Sessions,
    pending: Pool<Pending>,
    pending_index: Index,
    /// The gateway's own requests (event INFOs, BYEs) and the responses
    /// kept for UDP retransmissions, with their timers.
    transactions: Transactions<Outgoing, Handle>,
    out: OutQueue,
    byes: VecDeque<Handle>,
    next_sweep: Option<Instant>,
    next_tag: u64,
    /// The time given by the call in progress (every entry point sets it).
    now: Instant,
    /// Where a node's document is copied before it is handled.
    inbox: Box<[u8]>,
    /// A relayed request being answered, copied out of the queue store.
    answering: Box<[u8]>,
    /// The gateway's Contact URIs for UDP, TCP and TLS dialogs, made at boot.
    contacts: [String<160>; 3],
    /// Stopping: new INVITEs are refused, sessions are being ended.
    shutting_down: bool,
    /// Stream connections whose transmit buffer is full: event INFOs for
    /// their sessions wait (capacity fixed at boot: one per TCP slot).
    congested: Vec<super::ConnId>,
    /// Some request of the gateway's, or an answer, waits for room.
    waiting: bool,
    /// The kinds of dropped fields already logged (hashes of their names;
    /// past its capacity a kind is counted, not logged).
    dropped_logged: heapless::Vec<u64, 64>,
    /// What has happened.
    pub counters: Counters,
}

impl Gateway {
    /// How session `h`'s messages are rewritten between Lync's names and
    /// its node's: `None` without a dial plan (names pass as they are).
    fn translation(&self, h: Handle) -> Option<Translation<'_>> {
        let (plan, s) = (self.dialplan.as_ref()?, self.sessions.get(h)?);
        Some(Translation { plan, appearances: &self.appearances, user: s.user(), line: s.line() })
    }
}

/// Where the gateway's Contact URI for dialogs over `transport` is in
/// `Gateway::contacts`.
pub(super) fn contact_index(transport: Transport) -> usize {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp(_) => 1,
        Transport::Tls(_) => 2,
    }
}

pub(super) fn copy_str<const N: usize>(text: &str) -> Option<String<N>> {
    String::try_from(text).ok()
}

pub(super) fn copy_into(buf: &mut [u8], bytes: &[u8]) -> Result<usize, Overflow> {
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

impl Gateway {
    /// A gateway with the given tables, line appearances and CTI nodes,
    /// made at `now`. The nodes are not started: see [`Gateway::start`].
    pub fn new(now: Instant, config: GatewayConfig, appearances: Appearances, nodes: Box<Nodes>) -> Box<Gateway> {
        let size = config.message_size;
        let anyone = Peer::unspecified();
        Box::new(Gateway {
            appearances,
            dialplan: None,
            nodes,
            sessions: Sessions::new(config.sessions, config.session_store, now),
            pending: Pool::new(config.pending, move || Pending {
                request: Span::default(),
                from: anyone,
                session: Handle { index: 0, generation: 0 },
                namespace: Namespace::Ed3,
                answer: false,
            }),
            pending_index: Index::new(config.pending),
            transactions: Transactions::new(
                now,
                config.client_transactions,
                config.completed,
                size,
                config.transaction_store,
            ),
            out: OutQueue::new(config.out_queue, size, config.queue_store, anyone),
            answering: vec![0; size].into_boxed_slice(),
            byes: VecDeque::with_capacity(config.sessions),
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
            dropped_logged: heapless::Vec::new(),
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
    pub fn sessions(&self) -> impl Iterator<Item = super::session::SessionRef<'_>> {
        self.sessions.iter().map(|(_, session)| session)
    }

    /// How many entries of each fixed table are in use now: requests
    /// waiting for a node, the gateway's own transactions, kept responses,
    /// messages waiting to go out.
    pub fn tables_in_use(&self) -> [(&'static str, usize, usize); 4] {
        [
            ("pending", self.pending.len(), self.pending.capacity()),
            ("client_transactions", self.transactions.client_count(), self.transactions.client_capacity()),
            ("completed", self.transactions.server_count(), self.transactions.server_capacity()),
            ("out_queue", self.out.count, self.out.slots.len()),
        ]
    }

    /// Where each byte of the tables `config` sizes goes: what, how many,
    /// the bytes of each. All of it is reserved at boot; a page is
    /// resident once used (`ctigw --budget` prints it).
    pub fn budget(config: &GatewayConfig) -> Vec<(&'static str, usize, usize)> {
        let mut lines = Vec::new();
        lines.extend(Sessions::budget(config.sessions, config.session_store));
        lines.push(("sessions waiting for room for their BYE", config.sessions, size_of::<Handle>()));
        lines.extend(Transactions::<Outgoing, Handle>::budget(
            config.client_transactions,
            config.completed,
            config.message_size,
            config.transaction_store,
        ));
        lines.extend([
            ("requests waiting for a node, and their index", config.pending, Pool::<Pending>::entry_footprint() + 16),
            ("outgoing queue", config.out_queue, size_of::<transmit::OutSlot>()),
            (
                "queue store (waiting requests, outgoing messages), bitmap, scratch",
                1,
                ByteStore::footprint(config.queue_store, MESSAGE_GRANULE) + 2 * config.message_size,
            ),
            ("CTI node slots (link state, transmit and receive buffers)", crate::cti::MAX_NODES, Nodes::slot_size()),
            ("CTI link read and write buffers, per node connected", 2 * crate::cti::MAX_NODES, crate::cti::LINK_BUFFER),
        ]);
        lines
    }

    /// What each byte store holds: the sessions' strings, the gateway's
    /// own requests and kept responses, the queue (requests waiting for a
    /// node, messages waiting to go out).
    pub fn stores(&self) -> [(&'static str, crate::store::Usage); 3] {
        [
            ("session", self.sessions.text_usage()),
            ("transaction", self.transactions.store_usage()),
            ("queue", self.out.store.usage()),
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

    /// The dial plan in force, if names are translated.
    pub fn dialplan(&self) -> Option<&DialPlan> {
        self.dialplan.as_ref()
    }

    /// Replaces the dial plan (at boot, and on reload); sessions are kept,
    /// and their next request and event use the new rules.
    pub fn set_dialplan(&mut self, dialplan: Option<DialPlan>) {
        self.dialplan = dialplan;
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
            && self.transactions.client_count() == 0
            && self.out.count == 0
            && !self.waiting
    }

    /// Ends the application sessions with the CTI nodes (the last step of
    /// a stop); the shell writes what is pending and closes the links.
    pub fn stop_nodes(&mut self, now: Instant) {
        self.now = now;
        self.nodes.stop(now);
    }

    /// When [`Gateway::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.transactions.poll_timeout(), self.nodes.poll_timeout(), self.next_sweep].into_iter().flatten().min()
    }

    /// Handles everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.nodes.handle_timeout(now);
        self.drain_cti_events(now);
        while let Some(happened) = self.transactions.handle_timeout(now) {
            match happened {
                Happened::Retransmit { to, bytes } => {
                    if !self.out.push(to, |buf| copy_into(buf, bytes)) {
                        self.counters.transmit_drops += 1;
                    }
                }
                Happened::TimedOut { id, owner } => self.client_timed_out(id, owner),
                // Kept long enough (64*T1). An INVITE 2xx still
                // unacknowledged means the dialog is dead (RFC 3261 13.3.1.4).
                Happened::Expired { owner: Some(session), unacknowledged: true } => {
                    self.log_session_end(session, "the 200 to its INVITE was never acknowledged");
                    self.end_session(session, true);
                }
                Happened::Expired { .. } => {}
            }
        }
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.next_sweep = Some(now + SWEEP);
            self.sweep_session_timers();
        }
    }

    fn fresh_tag(&mut self) -> String<MAX_TAG> {
        self.next_tag += 1;
        let mut tag = String::new();
        let _ = write!(tag, "gw{:x}", self.next_tag);
        tag
    }
}
