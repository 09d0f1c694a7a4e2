//! The CTI side: eight watched node links, sans I/O.
//!
//! [`Nodes`] holds a static array of [`MAX_NODES`] slots. It never touches a
//! socket or a clock: the shell tells it what happened (connected, bytes
//! read, closed, the time) and carries out what it asks for
//! ([`LinkAction`]s, the bytes of [`Nodes::tx_pending`], a wake-up at
//! [`Nodes::poll_timeout`]). What the gateway needs to know comes out as
//! [`CtiEvent`]s, and node answers and events as [`Incoming`] CSTA
//! messages, decoded by the node's [`Protocol`] (one folder each:
//! [`csta_xml`]) into an inbox the caller lends.

pub mod csta_xml;

use core::fmt;
use core::net::SocketAddr;
use std::time::Instant;

use heapless::Deque;

use crate::csta::{self, ErrorCode, Namespace, Request, Services};
use crate::outbuf::{OutBuf, Overflow};
use crate::recvbuf::RecvBuf;
pub use csta_xml::frame;
use csta_xml::{Context, Link};
pub use csta_xml::{Counters, LINK_BUFFER, LinkState, MAX_OUTSTANDING, SessionMode, Timing};
pub use frame::{FrameError, InvokeId};

/// Most CTI nodes the gateway connects to.
pub const MAX_NODES: usize = 8;
/// Room for every event the links can produce between two drains.
pub(crate) const EVENT_QUEUE: usize = MAX_NODES * (MAX_OUTSTANDING + 4);
/// Room for every action the links can ask for between two drains.
pub(crate) const ACTION_QUEUE: usize = MAX_NODES * 4;

/// A node slot, 0 to 7 (shown as node 1 to 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(u8);

impl SlotId {
    /// The slot at `index`, if there is one.
    pub fn new(index: usize) -> Option<SlotId> {
        (index < MAX_NODES).then_some(SlotId(index as u8))
    }

    /// Its index into the slot array.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0 + 1)
    }
}

/// The caller's name for one of its requests, handed back with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestTag(pub u64);

/// What the shell must do for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    /// Open a TCP connection; report [`Nodes::connected`] or [`Nodes::connect_failed`].
    Connect {
        /// The slot.
        slot: SlotId,
        /// Where to.
        addr: SocketAddr,
    },
    /// Close the link's socket; no [`Nodes::closed`] report is needed.
    Close {
        /// The slot.
        slot: SlotId,
    },
}

/// What the shell saw happen to a node's TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// The connect asked for by [`LinkAction::Connect`] succeeded.
    Connected,
    /// The connect failed.
    ConnectFailed,
    /// The connection closed or broke (not after a [`LinkAction::Close`]).
    Closed,
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The TCP connect was refused or failed.
    ConnectFailed,
    /// The TCP connect took longer than `connect_timeout`.
    ConnectTimeout,
    /// The node closed the connection, or it broke.
    Closed,
    /// The node refused the application session, or dropped it.
    SessionRefused,
    /// The node did not answer StartApplicationSession in time.
    SessionTimeout,
    /// The node ended the application session.
    SessionTerminated,
    /// So many heartbeats in a row went unanswered.
    HeartbeatsMissed(u32),
    /// A frame could not be read; the stream is out of step.
    Frame(FrameError),
    /// Something the protocol does not allow.
    Protocol(&'static str),
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ConnectFailed => f.write_str("connect failed"),
            DownReason::ConnectTimeout => f.write_str("connect timed out"),
            DownReason::Closed => f.write_str("connection closed"),
            DownReason::SessionRefused => f.write_str("application session refused"),
            DownReason::SessionTimeout => f.write_str("application session not answered"),
            DownReason::SessionTerminated => f.write_str("application session terminated by the node"),
            DownReason::HeartbeatsMissed(n) => write!(f, "{n} heartbeats missed"),
            DownReason::Frame(e) => write!(f, "bad frame: {e}"),
            DownReason::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

/// Why a caller's request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer within `request_timeout`.
    Timeout,
    /// The link went down with the request outstanding.
    NodeDown,
}

impl Failure {
    /// The CSTA error that tells Lync.
    pub fn error_code(self) -> ErrorCode<'static> {
        match self {
            Failure::Timeout => ErrorCode::RESOURCE_BUSY,
            Failure::NodeDown => ErrorCode::RESOURCE_OUT_OF_SERVICE,
        }
    }
}

/// Why a request could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The node is not up.
    NodeDown,
    /// The link has [`MAX_OUTSTANDING`] requests waiting already.
    TooManyOutstanding,
    /// The link's transmit buffer is full (the node reads too slowly).
    LinkCongested,
}

impl SendError {
    /// The CSTA error that tells Lync.
    pub fn error_code(self) -> ErrorCode<'static> {
        match self {
            SendError::NodeDown => ErrorCode::RESOURCE_OUT_OF_SERVICE,
            SendError::TooManyOutstanding => ErrorCode::OUTSTANDING_REQUEST_LIMIT_EXCEEDED,
            SendError::LinkCongested => ErrorCode::RESOURCE_BUSY,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::NodeDown => "CTI node is down",
            SendError::TooManyOutstanding => "too many requests outstanding on the CTI link",
            SendError::LinkCongested => "CTI link congested",
        })
    }
}

/// What happened on the CTI side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtiEvent {
    /// An attempt to reach a node starts (`attempt` counts since it was last up).
    Connecting {
        /// The slot.
        slot: SlotId,
        /// The node's address.
        addr: SocketAddr,
        /// 1 for the first attempt after the node went down.
        attempt: u32,
    },
    /// A node is up with a new connection id.
    NodeUp {
        /// The slot.
        slot: SlotId,
        /// Never used before, never used again.
        connection_id: u64,
    },
    /// A node went down (or an attempt to reach it failed).
    NodeDown {
        /// The slot.
        slot: SlotId,
        /// The connection that ended, if the link had been up.
        connection_id: Option<u64>,
        /// Why.
        reason: DownReason,
    },
    /// A caller's request will get no answer.
    RequestFailed {
        /// The slot it was sent on.
        slot: SlotId,
        /// The caller's tag.
        tag: RequestTag,
        /// Why.
        failure: Failure,
    },
    /// An answer arrived for a request that had already failed; dropped.
    LateAnswer {
        /// The slot.
        slot: SlotId,
        /// Its invoke id.
        invoke_id: InvokeId,
    },
}

impl CtiEvent {
    /// Logs the event the way an operator wants it: a node's state changes
    /// at info or warn, one line each; a down node's retries at info the
    /// first time and then at debug, so a node that stays away does not
    /// flood the log.
    pub fn log(&self) {
        match *self {
            CtiEvent::Connecting { slot, addr, attempt: 1 } => log::info!("{slot} ({addr}): connecting"),
            CtiEvent::Connecting { slot, addr, attempt } => {
                log::debug!("{slot} ({addr}): connecting, attempt {attempt}")
            }
            CtiEvent::NodeUp { slot, connection_id } => log::info!("{slot}: up, connection {connection_id}"),
            CtiEvent::NodeDown { slot, connection_id: Some(id), reason } => {
                log::warn!("{slot}: down ({reason}), connection {id} ended")
            }
            CtiEvent::NodeDown { slot, connection_id: None, reason } => log::debug!("{slot}: not reached ({reason})"),
            CtiEvent::RequestFailed { slot, tag, failure } => {
                log::debug!("{slot}: request {} failed: {failure:?}", tag.0)
            }
            CtiEvent::LateAnswer { slot, invoke_id } => {
                log::debug!("{slot}: late answer to invoke {invoke_id} dropped")
            }
        }
    }
}

/// What a node said for the caller, decoded by the node's protocol into
/// the caller's inbox ([`Nodes::next_incoming`]).
#[derive(Debug)]
pub enum Incoming<'a> {
    /// The answer to a caller's request: the node's CSTA response or
    /// error, or the error to report for a document that could not be
    /// read (counted on the link as malformed).
    Response {
        /// The caller's tag.
        tag: RequestTag,
        /// What the node answered.
        answer: Result<csta::Message<'a>, ErrorCode<'static>>,
    },
    /// An event for a monitor.
    Event {
        /// The event.
        event: csta::Event<'a>,
    },
    /// A frame the link consumed itself; ask again.
    Handled,
}

/// The protocol a node speaks, chosen per node (`protocol=` in the
/// configuration). Each is a folder of its own under `cti/` that turns the
/// node's wire into the CSTA messages the core works with
/// ([`csta::Request`] out, [`Incoming`] in); the core knows none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// CSTA XML over TCP ([`csta_xml`]), the session kept alive as the
    /// [`SessionMode`] says.
    CstaXml(SessionMode),
}

impl Protocol {
    /// The name the configuration gives it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::CstaXml(_) => "csta-xml",
        }
    }
}

/// A configured node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeConfig {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it speaks.
    pub protocol: Protocol,
}

/// More than [`MAX_NODES`] nodes were configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyNodes;

/// The eight node slots.
pub struct Nodes {
    /// `MAX_NODES` links, and as many receive buffers: boxed slices, each
    /// element made on its own (a whole array would be made on the stack
    /// first, and the stack pages it touched stay resident).
    links: Box<[Link]>,
    rx: Box<[RecvBuf<LINK_BUFFER>]>,
    timing: Timing,
    events: Deque<CtiEvent, EVENT_QUEUE>,
    actions: Deque<LinkAction, ACTION_QUEUE>,
    last_connection_id: u64,
    last_picked: usize,
}

macro_rules! with_link {
    ($self:ident, $slot:expr, |$link:ident, $rx:ident, $ctx:ident| $body:expr) => {{
        let Nodes { links, rx, timing, events, actions, last_connection_id, .. } = $self;
        let $link = &mut links[$slot.index()];
        #[allow(unused_variables)]
        let $rx = &mut rx[$slot.index()];
        #[allow(unused_mut)]
        let mut $ctx = Context { timing, events, actions, last_connection_id };
        $body
    }};
}

impl Nodes {
    /// The slots, the first `nodes.len()` of them configured. Built on the
    /// heap once, at boot: the buffers make it a few hundred KiB.
    pub fn new(timing: Timing, nodes: &[NodeConfig]) -> Result<Box<Nodes>, TooManyNodes> {
        if nodes.len() > MAX_NODES {
            return Err(TooManyNodes);
        }
        let mut this = Box::new(Nodes {
            links: (0..MAX_NODES).map(|i| Link::new(SlotId(i as u8))).collect(),
            rx: (0..MAX_NODES).map(|_| RecvBuf::new()).collect(),
            timing,
            events: Deque::new(),
            actions: Deque::new(),
            last_connection_id: 0,
            last_picked: MAX_NODES - 1,
        });
        for (link, node) in this.links.iter_mut().zip(nodes) {
            match node.protocol {
                Protocol::CstaXml(mode) => link.configure(node.addr, mode),
            }
        }
        Ok(this)
    }

    /// The bytes of one slot: its link and its receive buffer.
    pub fn slot_size() -> usize {
        size_of::<Link>() + size_of::<RecvBuf<LINK_BUFFER>>()
    }

    /// The timers in force.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The configured slots.
    pub fn slots(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.links.iter().enumerate().filter(|(_, l)| l.addr().is_some()).map(|(i, _)| SlotId(i as u8))
    }

    /// Makes the first connect attempt to every configured node.
    pub fn start(&mut self, now: Instant) {
        for i in 0..MAX_NODES {
            with_link!(self, SlotId(i as u8), |link, rx, ctx| link.start(now, &mut ctx));
        }
    }

    /// The next live node after the one picked last (round-robin), or
    /// `None` at once when no node is up.
    pub fn pick(&mut self) -> Option<SlotId> {
        let found = (1..=MAX_NODES)
            .map(|step| (self.last_picked + step) % MAX_NODES)
            .find(|&i| self.links[i].state() == LinkState::Up)?;
        self.last_picked = found;
        Some(SlotId(found as u8))
    }

    /// True when at least one node is up.
    pub fn any_up(&self) -> bool {
        self.links.iter().any(|l| l.state() == LinkState::Up)
    }

    /// Sends a caller's request on `slot`; the document is written by
    /// `write` straight into the link's transmit buffer.
    pub fn send(
        &mut self,
        now: Instant,
        slot: SlotId,
        tag: RequestTag,
        write: impl FnOnce(&mut OutBuf<'_>) -> Result<(), Overflow>,
    ) -> Result<InvokeId, SendError> {
        let timing = self.timing;
        self.links[slot.index()].send(now, &timing, tag, write)
    }

    /// Sends `request` on `slot` in the namespace the node speaks.
    pub fn send_request(
        &mut self,
        now: Instant,
        slot: SlotId,
        tag: RequestTag,
        request: &Request<'_>,
    ) -> Result<InvokeId, SendError> {
        let namespace = self.links[slot.index()].namespace();
        self.send(now, slot, tag, |out| request.write(namespace, out))
    }

    /// The TCP connection of `slot` is up.
    pub fn connected(&mut self, now: Instant, slot: SlotId) {
        with_link!(self, slot, |link, rx, ctx| {
            rx.clear();
            link.connected(now, &mut ctx)
        })
    }

    /// The TCP connect of `slot` failed.
    pub fn connect_failed(&mut self, now: Instant, slot: SlotId) {
        with_link!(self, slot, |link, rx, ctx| link.connect_failed(now, &mut ctx))
    }

    /// The connection of `slot` closed or broke.
    pub fn closed(&mut self, now: Instant, slot: SlotId) {
        with_link!(self, slot, |link, rx, ctx| link.closed(now, &mut ctx))
    }

    /// What the shell saw happen to the connection of `slot`.
    pub fn handle_link(&mut self, now: Instant, slot: SlotId, event: LinkEvent) {
        match event {
            LinkEvent::Connected => self.connected(now, slot),
            LinkEvent::ConnectFailed => self.connect_failed(now, slot),
            LinkEvent::Closed => self.closed(now, slot),
        }
    }

    /// Bytes read from the connection of `slot`: takes what fits into the
    /// link's receive buffer and returns how many it took. Take the frames
    /// they complete with [`Nodes::next_incoming`] before giving it more;
    /// none taken means the buffer holds one partial frame too long for
    /// it, which the next call to [`Nodes::next_incoming`] reports.
    pub fn receive(&mut self, slot: SlotId, bytes: &[u8]) -> usize {
        let spare = self.rx[slot.index()].spare();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.rx[slot.index()].filled(n);
        self.links[slot.index()].count_received(n);
        n
    }

    /// The next thing the node in `slot` said, decoded by its protocol
    /// into `inbox` (a frame's worth, [`LINK_BUFFER`]), or `None` until
    /// more bytes come.
    pub fn next_incoming<'b>(&mut self, now: Instant, slot: SlotId, inbox: &'b mut [u8]) -> Option<Incoming<'b>> {
        with_link!(self, slot, |link, rx, ctx| link.next_incoming(rx, inbox, now, &mut ctx))
    }

    /// Bytes waiting to be written on `slot`.
    pub fn tx_pending(&self, slot: SlotId) -> &[u8] {
        self.links[slot.index()].tx_pending()
    }

    /// The first `n` bytes of [`Nodes::tx_pending`] were written.
    pub fn transmitted(&mut self, slot: SlotId, n: usize) {
        self.links[slot.index()].transmitted(n);
    }

    /// Handles everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..MAX_NODES {
            with_link!(self, SlotId(i as u8), |link, rx, ctx| link.handle_timeout(now, &mut ctx));
        }
    }

    /// When [`Nodes::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links.iter().filter_map(Link::deadline).min()
    }

    /// The next thing the shell must do.
    pub fn poll_action(&mut self) -> Option<LinkAction> {
        self.actions.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<CtiEvent> {
        self.events.pop_front()
    }

    /// Ends the application sessions politely (at shutdown); the shell
    /// writes what is pending, then closes the sockets.
    pub fn stop(&mut self, now: Instant) {
        let timing = self.timing;
        for link in &mut self.links {
            link.stop(now, &timing);
        }
    }

    /// The state of `slot`.
    pub fn state(&self, slot: SlotId) -> LinkState {
        self.links[slot.index()].state()
    }

    /// The node address of `slot`.
    pub fn addr(&self, slot: SlotId) -> Option<SocketAddr> {
        self.links[slot.index()].addr()
    }

    /// The current connection id of `slot`, while it is up.
    pub fn connection_id(&self, slot: SlotId) -> Option<u64> {
        self.links[slot.index()].connection_id()
    }

    /// The CSTA edition the node of `slot` speaks.
    pub fn namespace(&self, slot: SlotId) -> Namespace {
        self.links[slot.index()].namespace()
    }

    /// The services the node of `slot` listed when asked at link-up
    /// (GetCSTAFeatures); `None` while it has not said.
    pub fn services(&self, slot: SlotId) -> Option<Services> {
        self.links[slot.index()].services()
    }

    /// The counters of `slot`.
    pub fn counters(&self, slot: SlotId) -> &Counters {
        self.links[slot.index()].counters()
    }

    /// The caller found a document the node of `slot` sent malformed.
    pub fn malformed(&mut self, slot: SlotId) {
        self.links[slot.index()].malformed();
    }

    /// Requests outstanding on `slot`.
    pub fn outstanding(&self, slot: SlotId) -> usize {
        self.links[slot.index()].outstanding()
    }
}

#[cfg(test)]
mod tests;
