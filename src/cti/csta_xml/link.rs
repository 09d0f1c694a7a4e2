//! One CTI node link: its state machine, sans I/O.
//!
//! ```text
//!  Unconfigured
//!  Down ──retry──▶ Connecting ──connected──▶ StartingSession ──started──▶ Up
//!    ▲                │ failed/timeout             │ refused/timeout       │ closed, heartbeats
//!    └────────────────┴────────────────────────────┴───────────────────────┘ missed, bad frame
//! ```
//!
//! Every transition to Down fails the link's outstanding requests at once
//! and schedules the next attempt `reconnect_interval` later, forever. The
//! link's receive buffer is kept beside it (in [`crate::cti::Nodes`]) so that a
//! frame handed to the caller borrows only the buffer, not the link.

use core::net::SocketAddr;
use std::time::{Duration, Instant};

use heapless::{Deque, String, Vec};
use httparse::Status;

use super::frame::{self, FrameError, InvokeId};
use crate::csta::{
    self, ErrorCode, Message, Namespace, Request, Response, Services, SessionMessage, SystemMessage, Text,
};
use crate::cti::{CtiEvent, DownReason, Failure, Incoming, LinkAction, RequestTag, SendError, SlotId};
use crate::outbuf::{OutBuf, Overflow};
use crate::recvbuf::RecvBuf;
use crate::sendbuf::SendBuf;

/// Requests one link may have outstanding at once (a sign-in storm sends a
/// MonitorStart per user at once).
pub const MAX_OUTSTANDING: usize = 128;
/// Bytes of a link's receive and transmit buffers; also its longest frame.
pub const LINK_BUFFER: usize = 16 * 1024;
/// Longest ECMA-354 session id kept.
pub const MAX_SESSION_ID: usize = 64;

/// How a node opens and keeps the gateway's session alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// ECMA-354: StartApplicationSession on connect, then
    /// ResetApplicationSessionTimer as the heartbeat.
    Ecma354,
    /// No application session; RequestSystemStatus is the heartbeat.
    SystemStatus,
    /// The node speaks first (an OpenScape-class switch): its SystemStatus
    /// is answered, then the gateway's SystemRegister; the link is up once
    /// that is answered. A node silent for `request_timeout` after the
    /// connect gets the SystemRegister all the same. RequestSystemStatus
    /// is the heartbeat.
    SystemRegister,
}

/// The timers of every link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Heartbeats left unanswered in a row that take a node down.
    pub heartbeat_misses: u32,
    /// Time between attempts to reach a node that is down.
    pub reconnect_interval: Duration,
    /// Time a request (heartbeats included) may wait for its answer.
    pub request_timeout: Duration,
    /// Time a TCP connect may take.
    pub connect_timeout: Duration,
}

impl Default for Timing {
    /// The defaults of PROTOCOL.md: heartbeat every 30 s, down after two
    /// misses, reconnect every 10 s, requests answered within 5 s.
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_misses: 2,
            reconnect_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Timing {
    /// The session duration asked of an ECMA-354 node: long enough to
    /// outlast the missed heartbeats that would take the node down anyway.
    fn session_duration(&self) -> u32 {
        let secs = self.heartbeat_interval.as_secs().saturating_mul(u64::from(self.heartbeat_misses) + 1);
        u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
    }
}

/// Where a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No node in this slot.
    Unconfigured,
    /// A TCP connect is under way.
    Connecting,
    /// Connected; the application session is being opened.
    StartingSession,
    /// Serving requests.
    Up,
    /// Waiting to try again.
    Down,
}

impl LinkState {
    /// The name shown in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Unconfigured => "unconfigured",
            LinkState::Connecting => "connecting",
            LinkState::StartingSession => "starting_session",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

/// What a link has done, for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Times the link came up.
    pub connects: u64,
    /// TCP connects that failed or timed out.
    pub connect_failures: u64,
    /// Times an up link went down.
    pub disconnects: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Heartbeats left unanswered.
    pub heartbeats_missed: u64,
    /// Requests sent for callers.
    pub requests: u64,
    /// Answers to callers' requests.
    pub responses: u64,
    /// Callers' requests that timed out.
    pub timeouts: u64,
    /// Answers to requests that had timed out, or to none.
    pub late_answers: u64,
    /// Events received.
    pub events: u64,
    /// Frames whose document did not parse.
    pub malformed: u64,
    /// Events and notices the gateway does not model (well-formed, not
    /// for a monitor), passed over.
    pub events_ignored: u64,
    /// The node's own requests answered (its SystemStatus).
    pub node_requests: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes handed to the socket.
    pub bytes_out: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    StartSession,
    Register,
    Heartbeat,
    StopSession,
    /// GetCSTAFeatures, asked once the link is up.
    Features,
    Caller(RequestTag),
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    invoke_id: InvokeId,
    deadline: Instant,
    purpose: Purpose,
}

/// Shared by the links: where they report, and the connection id counter.
pub(crate) struct Context<'c> {
    pub timing: &'c Timing,
    pub events: &'c mut Deque<CtiEvent, { crate::cti::EVENT_QUEUE }>,
    pub actions: &'c mut Deque<LinkAction, { crate::cti::ACTION_QUEUE }>,
    pub last_connection_id: &'c mut u64,
}

impl Context<'_> {
    fn event(&mut self, event: CtiEvent) {
        // Sized so that it cannot fill between two drains: every link's
        // outstanding table plus its state changes.
        self.events.push_back(event).expect("event queue holds every link's outstanding requests");
    }

    fn action(&mut self, action: LinkAction) {
        self.actions.push_back(action).expect("action queue holds two actions per link");
    }
}

/// The request side of a link: frames waiting to be written, the invoke
/// ids in use and what each is waiting for.
struct Requests {
    tx: SendBuf<LINK_BUFFER>,
    outstanding: Vec<Outstanding, MAX_OUTSTANDING>,
    next_invoke: InvokeId,
}

impl Requests {
    fn send(
        &mut self,
        deadline: Instant,
        purpose: Purpose,
        write: impl FnOnce(&mut OutBuf<'_>) -> Result<(), Overflow>,
    ) -> Result<InvokeId, SendError> {
        if self.outstanding.is_full() {
            return Err(SendError::TooManyOutstanding);
        }
        let id = self.fresh_invoke_id();
        self.tx.append(|out| frame::encode(out, id, write)).map_err(|_| SendError::LinkCongested)?;
        self.outstanding.push(Outstanding { invoke_id: id, deadline, purpose }).expect("checked not full");
        Ok(id)
    }

    /// The next request id not in use on this link (ids wrap after 9998).
    fn fresh_invoke_id(&mut self) -> InvokeId {
        loop {
            let id = self.next_invoke;
            self.next_invoke = id.next_request();
            if !self.outstanding.iter().any(|o| o.invoke_id == id) {
                return id;
            }
        }
    }

    fn take(&mut self, id: InvokeId) -> Option<Outstanding> {
        let i = self.outstanding.iter().position(|o| o.invoke_id == id)?;
        Some(self.outstanding.swap_remove(i))
    }

    fn waiting_for(&self, purpose: Purpose) -> bool {
        self.outstanding.iter().any(|o| o.purpose == purpose)
    }
}

/// One node slot.
pub struct Link {
    slot: SlotId,
    addr: Option<SocketAddr>,
    mode: SessionMode,
    state: LinkState,
    connection_id: Option<u64>,
    session_id: String<MAX_SESSION_ID>,
    namespace: Namespace,
    requests: Requests,
    missed: u32,
    /// The connect deadline, the next attempt or the next heartbeat.
    timer: Option<Instant>,
    attempts: u32,
    /// The services the node listed in its GetCSTAFeaturesResponse on
    /// this connection; `None` until it did (or when it would not).
    services: Option<Services>,
    counters: Counters,
}

impl Link {
    pub(crate) fn new(slot: SlotId) -> Self {
        Link {
            slot,
            addr: None,
            mode: SessionMode::Ecma354,
            state: LinkState::Unconfigured,
            connection_id: None,
            session_id: String::new(),
            namespace: Namespace::Ed3,
            requests: Requests {
                tx: SendBuf::new(),
                outstanding: Vec::new(),
                next_invoke: InvokeId::new(0).expect("0 is an invoke id"),
            },
            missed: 0,
            timer: None,
            attempts: 0,
            services: None,
            counters: Counters::default(),
        }
    }

    pub(crate) fn configure(&mut self, addr: SocketAddr, mode: SessionMode) {
        self.addr = Some(addr);
        self.mode = mode;
        self.state = LinkState::Down;
    }

    pub(crate) fn state(&self) -> LinkState {
        self.state
    }

    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    pub(crate) fn connection_id(&self) -> Option<u64> {
        self.connection_id
    }

    pub(crate) fn namespace(&self) -> Namespace {
        self.namespace
    }

    pub(crate) fn services(&self) -> Option<Services> {
        self.services
    }

    /// Counts a document of the node's that the caller could not parse.
    pub(crate) fn malformed(&mut self) {
        self.counters.malformed += 1;
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.requests.outstanding.len()
    }

    /// The earliest instant something is due on this link.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.requests.outstanding.iter().map(|o| o.deadline).chain(self.timer).min()
    }

    pub(crate) fn tx_pending(&self) -> &[u8] {
        self.requests.tx.pending()
    }

    pub(crate) fn transmitted(&mut self, n: usize) {
        self.counters.bytes_out += n as u64;
        self.requests.tx.written(n);
    }

    pub(crate) fn count_received(&mut self, n: usize) {
        self.counters.bytes_in += n as u64;
    }

    /// Makes the first attempt now.
    pub(crate) fn start(&mut self, now: Instant, ctx: &mut Context<'_>) {
        if self.state == LinkState::Down {
            self.connect(now, ctx);
        }
    }

    fn connect(&mut self, now: Instant, ctx: &mut Context<'_>) {
        let Some(addr) = self.addr else { return };
        self.attempts += 1;
        self.state = LinkState::Connecting;
        self.timer = Some(now + ctx.timing.connect_timeout);
        self.requests.tx.clear();
        ctx.event(CtiEvent::Connecting { slot: self.slot, addr, attempt: self.attempts });
        ctx.action(LinkAction::Connect { slot: self.slot, addr });
    }

    /// The TCP connection is established.
    pub(crate) fn connected(&mut self, now: Instant, ctx: &mut Context<'_>) {
        if self.state != LinkState::Connecting {
            return;
        }
        match self.mode {
            SessionMode::Ecma354 => {
                self.state = LinkState::StartingSession;
                self.timer = None;
                let start = SessionMessage::Start {
                    application_id: Text::literal("ctigw"),
                    protocol_version: Some(Text::literal(Namespace::Ed3.uri())),
                    duration: Some(ctx.timing.session_duration()),
                };
                let deadline = now + ctx.timing.request_timeout;
                if self.requests.send(deadline, Purpose::StartSession, |o| start.write(o)).is_err() {
                    self.go_down(now, ctx, DownReason::Protocol("no room for StartApplicationSession"));
                }
            }
            SessionMode::SystemStatus => self.come_up(now, ctx),
            SessionMode::SystemRegister => {
                // The node speaks first; the timer is how long it may not.
                self.state = LinkState::StartingSession;
                self.timer = Some(now + ctx.timing.request_timeout);
            }
        }
    }

    /// The TCP connect failed.
    pub(crate) fn connect_failed(&mut self, now: Instant, ctx: &mut Context<'_>) {
        if self.state == LinkState::Connecting {
            self.counters.connect_failures += 1;
            self.go_down(now, ctx, DownReason::ConnectFailed);
        }
    }

    /// The peer closed the connection, or reading or writing failed.
    pub(crate) fn closed(&mut self, now: Instant, ctx: &mut Context<'_>) {
        match self.state {
            LinkState::Connecting => self.connect_failed(now, ctx),
            LinkState::StartingSession | LinkState::Up => self.go_down(now, ctx, DownReason::Closed),
            LinkState::Down | LinkState::Unconfigured => {}
        }
    }

    fn come_up(&mut self, now: Instant, ctx: &mut Context<'_>) {
        *ctx.last_connection_id += 1;
        let id = *ctx.last_connection_id;
        self.connection_id = Some(id);
        self.state = LinkState::Up;
        self.missed = 0;
        self.attempts = 0;
        self.counters.connects += 1;
        self.timer = Some(now + ctx.timing.heartbeat_interval);
        ctx.event(CtiEvent::NodeUp { slot: self.slot, connection_id: id });
        // What the node supports, for what Lync is offered.
        let namespace = self.namespace;
        let features = Request::GetCstaFeatures { line: None };
        let deadline = now + ctx.timing.request_timeout;
        if self.requests.send(deadline, Purpose::Features, |o| features.write(namespace, o)).is_err() {
            log::warn!("{}: no room to ask the node for its features; every relayable service is offered", self.slot);
        }
    }

    /// Takes the link down: every outstanding request fails at once, the
    /// socket is closed and the next attempt scheduled.
    pub(crate) fn go_down(&mut self, now: Instant, ctx: &mut Context<'_>, reason: DownReason) {
        if self.state == LinkState::Up {
            self.counters.disconnects += 1;
        }
        for o in self.requests.outstanding.drain(..) {
            if let Purpose::Caller(tag) = o.purpose {
                ctx.event(CtiEvent::RequestFailed { slot: self.slot, tag, failure: Failure::NodeDown });
            }
        }
        if matches!(self.state, LinkState::Connecting | LinkState::StartingSession | LinkState::Up) {
            ctx.action(LinkAction::Close { slot: self.slot });
        }
        ctx.event(CtiEvent::NodeDown { slot: self.slot, connection_id: self.connection_id, reason });
        self.state = LinkState::Down;
        self.connection_id = None;
        self.services = None;
        self.session_id.clear();
        self.requests.tx.clear();
        self.timer = Some(now + ctx.timing.reconnect_interval);
    }

    /// Sends a caller's request, written by `write` as a CSTA document.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        timing: &Timing,
        tag: RequestTag,
        write: impl FnOnce(&mut OutBuf<'_>) -> Result<(), Overflow>,
    ) -> Result<InvokeId, SendError> {
        if self.state != LinkState::Up {
            return Err(SendError::NodeDown);
        }
        let id = self.requests.send(now + timing.request_timeout, Purpose::Caller(tag), write)?;
        self.counters.requests += 1;
        Ok(id)
    }

    /// Whatever is due at `now`: timeouts, heartbeats, reconnects.
    pub(crate) fn handle_timeout(&mut self, now: Instant, ctx: &mut Context<'_>) {
        let mut i = 0;
        while i < self.requests.outstanding.len() {
            if self.requests.outstanding[i].deadline > now {
                i += 1;
                continue;
            }
            match self.requests.outstanding.swap_remove(i).purpose {
                Purpose::Caller(tag) => {
                    self.counters.timeouts += 1;
                    ctx.event(CtiEvent::RequestFailed { slot: self.slot, tag, failure: Failure::Timeout });
                }
                Purpose::Heartbeat => {
                    if self.heartbeat_missed(now, ctx) {
                        return;
                    }
                }
                Purpose::StartSession | Purpose::Register => {
                    return self.go_down(now, ctx, DownReason::SessionTimeout);
                }
                Purpose::Features => {
                    log::warn!(
                        "{}: the node did not answer GetCSTAFeatures; every relayable service is offered",
                        self.slot
                    );
                }
                Purpose::StopSession => {}
            }
        }
        if self.timer.is_none_or(|t| t > now) {
            return;
        }
        match self.state {
            LinkState::Connecting => {
                self.counters.connect_failures += 1;
                self.go_down(now, ctx, DownReason::ConnectTimeout);
            }
            LinkState::Down => self.connect(now, ctx),
            LinkState::Up => {
                self.timer = Some(now + ctx.timing.heartbeat_interval);
                if !self.requests.waiting_for(Purpose::Heartbeat) {
                    self.send_heartbeat(now, ctx);
                }
            }
            // A node that should have spoken first did not: register anyway.
            LinkState::StartingSession if self.mode == SessionMode::SystemRegister => {
                self.timer = None;
                self.register(now, ctx);
            }
            LinkState::StartingSession | LinkState::Unconfigured => self.timer = None,
        }
    }

    fn send_heartbeat(&mut self, now: Instant, ctx: &mut Context<'_>) {
        let deadline = now + ctx.timing.request_timeout.min(ctx.timing.heartbeat_interval);
        let sent = match self.mode {
            SessionMode::Ecma354 => {
                let reset = SessionMessage::ResetTimer {
                    session_id: Text::literal(&self.session_id),
                    duration: Some(ctx.timing.session_duration()),
                };
                self.requests.send(deadline, Purpose::Heartbeat, |o| reset.write(o))
            }
            SessionMode::SystemStatus | SessionMode::SystemRegister => {
                let namespace = self.namespace;
                let status = Request::RequestSystemStatus { line: None };
                self.requests.send(deadline, Purpose::Heartbeat, |o| status.write(namespace, o))
            }
        };
        match sent {
            Ok(_) => self.counters.heartbeats_sent += 1,
            // A link too congested to take a heartbeat has missed one.
            Err(_) => {
                self.heartbeat_missed(now, ctx);
            }
        }
    }

    /// Counts a missed heartbeat; true when that took the link down.
    fn heartbeat_missed(&mut self, now: Instant, ctx: &mut Context<'_>) -> bool {
        self.counters.heartbeats_missed += 1;
        self.missed += 1;
        if self.missed >= ctx.timing.heartbeat_misses {
            self.go_down(now, ctx, DownReason::HeartbeatsMissed(self.missed));
            return true;
        }
        false
    }

    /// The next frame in `rx`: a response to a caller's request, an event,
    /// or [`Incoming::Handled`] for a frame the link consumed itself
    /// (session, heartbeat, late answer, malformed event). A framing error
    /// takes the link down.
    pub(crate) fn next_incoming<'b>(
        &mut self,
        rx: &mut RecvBuf<LINK_BUFFER>,
        inbox: &'b mut [u8],
        now: Instant,
        ctx: &mut Context<'_>,
    ) -> Option<Incoming<'b>> {
        if !matches!(self.state, LinkState::StartingSession | LinkState::Up) {
            return None;
        }
        let full = rx.is_full();
        let (pending, consume) = rx.split();
        let (frame, used) = match frame::decode(pending, LINK_BUFFER) {
            Ok(Status::Complete(found)) => found,
            Ok(Status::Partial) if full => {
                let max = LINK_BUFFER;
                self.go_down(now, ctx, DownReason::Frame(FrameError::TooLong { len: max + 1, max }));
                return None;
            }
            Ok(Status::Partial) => return None,
            Err(e) => {
                self.go_down(now, ctx, DownReason::Frame(e));
                return None;
            }
        };
        consume.consume(used);
        // A node's own request comes with an invoke id of its own, which
        // may be one of the link's: told apart by its root element.
        if csta::root_name(frame.body) == Some("SystemStatus") {
            return Some(self.system_status(frame.invoke_id, frame.body, now, ctx));
        }
        if frame.invoke_id.is_event() {
            self.counters.events += 1;
            // Decoded once, in the caller's inbox; the link's own session
            // notice is acted on here.
            return Some(match decode_into(inbox, frame.body, self.namespace).map(|d| d.message) {
                Ok(Message::Event(event)) => Incoming::Event { event },
                Ok(Message::Session(SessionMessage::Terminated { .. })) => {
                    self.go_down(now, ctx, DownReason::SessionTerminated);
                    Incoming::Handled
                }
                // Anything else the node says unasked is not for a monitor,
                // nor are events the gateway does not model: not faults.
                Ok(_) | Err(csta::Error::UnknownMessage) => {
                    self.counters.events_ignored += 1;
                    Incoming::Handled
                }
                Err(_) => {
                    self.counters.malformed += 1;
                    Incoming::Handled
                }
            });
        }
        let Some(request) = self.requests.take(frame.invoke_id) else {
            self.counters.late_answers += 1;
            ctx.event(CtiEvent::LateAnswer { slot: self.slot, invoke_id: frame.invoke_id });
            return Some(Incoming::Handled);
        };
        match request.purpose {
            Purpose::Caller(tag) => {
                self.counters.responses += 1;
                let answer = match decode_into(inbox, frame.body, self.namespace) {
                    Ok(doc) => Ok(doc.message),
                    Err(_) => {
                        // The caller's request failed: it hears so.
                        self.counters.malformed += 1;
                        Err(ErrorCode::GENERIC_OPERATION)
                    }
                };
                Some(Incoming::Response { tag, answer })
            }
            Purpose::StartSession => {
                match csta::parse(frame.body).map(|d| d.message) {
                    Ok(Message::Session(SessionMessage::Started { session_id, protocol_version, .. })) => {
                        self.session_id.clear();
                        match session_id.as_str().map(|id| self.session_id.push_str(id)) {
                            Some(Ok(())) => {
                                // The edition the node speaks, ed3 when it does not say.
                                self.namespace = protocol_version
                                    .and_then(|v| v.as_str())
                                    .and_then(Namespace::from_uri)
                                    .filter(|ns| *ns != Namespace::AppSession)
                                    .unwrap_or(Namespace::Ed3);
                                self.come_up(now, ctx);
                            }
                            _ => self.go_down(now, ctx, DownReason::Protocol("session id too long")),
                        }
                    }
                    _ => self.go_down(now, ctx, DownReason::SessionRefused),
                }
                Some(Incoming::Handled)
            }
            Purpose::Heartbeat => {
                match csta::parse(frame.body).map(|d| d.message) {
                    Ok(Message::Session(SessionMessage::Refused { .. })) => {
                        self.go_down(now, ctx, DownReason::SessionRefused);
                    }
                    // Any other answer is an answer: the node is alive.
                    _ => self.missed = 0,
                }
                Some(Incoming::Handled)
            }
            Purpose::Register => {
                match csta::parse_in(frame.body, self.namespace).map(|d| d.message) {
                    Ok(Message::System(SystemMessage::Registered { .. })) => self.come_up(now, ctx),
                    _ => self.go_down(now, ctx, DownReason::SessionRefused),
                }
                Some(Incoming::Handled)
            }
            Purpose::Features => {
                match csta::parse_in(frame.body, self.namespace).map(|d| d.message) {
                    Ok(Message::Response(Response::Features(services))) => {
                        log::info!("{}: the node supports {} of the services", self.slot, services.iter().count());
                        self.services = Some(services);
                    }
                    _ => log::warn!(
                        "{}: the node would not list its features; every relayable service is offered",
                        self.slot
                    ),
                }
                Some(Incoming::Handled)
            }
            Purpose::StopSession => Some(Incoming::Handled),
        }
    }

    /// The node's SystemStatus, whatever its invoke id: answered at once
    /// with an empty SystemStatusResponse under the same id. A node that
    /// speaks first then gets the gateway's SystemRegister.
    fn system_status(&mut self, id: InvokeId, body: &[u8], now: Instant, ctx: &mut Context<'_>) -> Incoming<'static> {
        let (status, spoken) = match csta::parse_in(body, self.namespace) {
            Ok(csta::Document { message: Message::System(SystemMessage::Status { status }), namespace }) => {
                (status, namespace)
            }
            _ => {
                self.counters.malformed += 1;
                return Incoming::Handled;
            }
        };
        self.counters.node_requests += 1;
        // A switch that speaks first says its edition in its greeting: the
        // link speaks it too from its SystemStatusResponse on.
        if self.state == LinkState::StartingSession && self.mode == SessionMode::SystemRegister {
            if let Some(edition) = Some(spoken).filter(|ns| *ns != Namespace::AppSession) {
                self.namespace = edition;
            }
        }
        if status.eq_str("disabled") {
            log::warn!("{}: the node reports its system status disabled", self.slot);
        }
        let namespace = self.namespace;
        let answer = SystemMessage::StatusAnswered;
        if self.requests.tx.append(|out| frame::encode(out, id, |o| answer.write(namespace, o))).is_err() {
            self.go_down(now, ctx, DownReason::Protocol("no room to answer the node's SystemStatus"));
            return Incoming::Handled;
        }
        if self.state == LinkState::StartingSession
            && self.mode == SessionMode::SystemRegister
            && !self.requests.waiting_for(Purpose::Register)
        {
            self.timer = None;
            self.register(now, ctx);
        }
        Incoming::Handled
    }

    /// Sends SystemRegister; the link is up when it is answered.
    fn register(&mut self, now: Instant, ctx: &mut Context<'_>) {
        let namespace = self.namespace;
        let deadline = now + ctx.timing.request_timeout;
        let sent = self.requests.send(deadline, Purpose::Register, |o| SystemMessage::Register.write(namespace, o));
        if sent.is_err() {
            self.go_down(now, ctx, DownReason::Protocol("no room for SystemRegister"));
        }
    }

    /// Ends the application session politely (at shutdown).
    pub(crate) fn stop(&mut self, now: Instant, timing: &Timing) {
        if self.state == LinkState::Up && self.mode == SessionMode::Ecma354 {
            let stop = SessionMessage::Stop { session_id: Text::literal(&self.session_id) };
            let _ = self.requests.send(now + timing.request_timeout, Purpose::StopSession, |o| stop.write(o));
        }
    }
}

/// Copies a frame's document into the caller's `inbox` and decodes it
/// there, so that what is handed up borrows the inbox, not the link. A
/// reply without a default namespace is read in the link's `namespace`.
fn decode_into<'b>(inbox: &'b mut [u8], body: &[u8], namespace: Namespace) -> Result<csta::Document<'b>, csta::Error> {
    let len = body.len().min(inbox.len());
    inbox[..len].copy_from_slice(&body[..len]);
    let inbox: &'b [u8] = inbox;
    csta::parse_in(&inbox[..len], namespace)
}
