//! The node side of the CTI link, as `ctigw-sim` plays it: frames in,
//! application sessions, heartbeats, requests handed to the [`Switch`],
//! and the faults tests inject. Sans I/O: the binary reads and writes the
//! sockets, and delays outputs by [`Faults::delay`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use httparse::Status;

use super::switch::{LinkId, Output, Switch, write};
use crate::csta::{self, ErrorCode, Message, Namespace, Request, SessionMessage, SystemMessage, Text};
use crate::cti::frame::{self, FrameError, InvokeId, MAX_FRAME_LEN};

/// What the simulator is told to do wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    /// Leave heartbeats (ResetApplicationSessionTimer, RequestSystemStatus) unanswered.
    pub silent_heartbeats: bool,
    /// Hold every response and event this long before writing it.
    pub delay: Duration,
    /// Refuse new connections.
    pub refuse: bool,
}

#[derive(Default)]
struct LinkSide {
    rx: Vec<u8>,
    session: Option<String>,
}

/// The simulated CTI manager: its links and its telephone system.
pub struct Node {
    switch: Switch,
    links: BTreeMap<LinkId, LinkSide>,
    next_link: LinkId,
    next_session: u32,
    /// Faults in force.
    pub faults: Faults,
    /// Speaks first, as an OpenScape-class switch does: on every new link
    /// a SystemStatus (`enabled`, invoke id 0000, ed4) before anything
    /// else; SystemRegister is answered with a register id.
    pub speaks_first: bool,
    /// The gateway's answers to those SystemStatus requests.
    greetings_answered: u64,
    /// SystemRegister requests answered.
    registrations: u64,
}

impl Node {
    /// A node in front of `switch`.
    pub fn new(switch: Switch, faults: Faults) -> Node {
        Node {
            switch,
            links: BTreeMap::new(),
            next_link: 1,
            next_session: 1,
            faults,
            speaks_first: false,
            greetings_answered: 0,
            registrations: 0,
        }
    }

    /// The telephone system.
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// A connection was accepted.
    pub fn open_link(&mut self) -> LinkId {
        let link = self.next_link;
        self.next_link += 1;
        self.links.insert(link, LinkSide::default());
        self.switch.link_opened(link, Namespace::Ed3);
        link
    }

    /// What the node says on a new link before the gateway says anything:
    /// nothing, or when it [`Node::speaks_first`], its SystemStatus.
    pub fn greeting(&mut self, link: LinkId) -> Vec<Output> {
        if !self.speaks_first || !self.links.contains_key(&link) {
            return Vec::new();
        }
        self.switch.link_opened(link, Namespace::Ed4);
        let status = SystemMessage::Status { status: Text::literal("enabled") };
        let body = write(|out| status.write(Namespace::Ed4, out));
        vec![Output { link, invoke_id: InvokeId::new(0).expect("0 is an invoke id"), body }]
    }

    /// How many of its SystemStatus requests the gateway answered.
    pub fn greetings_answered(&self) -> u64 {
        self.greetings_answered
    }

    /// How many SystemRegister requests it answered.
    pub fn registrations(&self) -> u64 {
        self.registrations
    }

    /// A connection ended; its monitors end with it.
    pub fn close_link(&mut self, link: LinkId) {
        self.links.remove(&link);
        self.switch.link_closed(link);
    }

    /// Links open now.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Bytes arrived on `link`: the frames they complete are handled, in
    /// order. A framing error means the link must be closed.
    pub fn receive(&mut self, now: Instant, link: LinkId, bytes: &[u8]) -> Result<Vec<Output>, FrameError> {
        let Some(side) = self.links.get_mut(&link) else { return Ok(Vec::new()) };
        side.rx.extend_from_slice(bytes);
        let mut outputs = Vec::new();
        loop {
            let side = self.links.get_mut(&link).expect("link checked above");
            let rx = std::mem::take(&mut side.rx);
            let (invoke_id, body, used) = match frame::decode(&rx, MAX_FRAME_LEN)? {
                Status::Complete((f, used)) => (f.invoke_id, f.body.to_vec(), used),
                Status::Partial => {
                    self.links.get_mut(&link).expect("link checked above").rx = rx;
                    return Ok(outputs);
                }
            };
            self.links.get_mut(&link).expect("link checked above").rx = rx[used..].to_vec();
            outputs.extend(self.handle_frame(now, link, invoke_id, &body));
        }
    }

    fn handle_frame(&mut self, now: Instant, link: LinkId, invoke_id: InvokeId, body: &[u8]) -> Vec<Output> {
        let reply = |body: Vec<u8>| vec![Output { link, invoke_id, body }];
        let doc = match csta::parse(body) {
            Ok(doc) => doc,
            Err(e) => {
                let code = e.error_code();
                return reply(write(|out| code.write(Namespace::Ed3, out)));
            }
        };
        match doc.message {
            Message::Session(SessionMessage::Start { protocol_version, duration, .. }) => {
                let ed4 = protocol_version.is_some_and(|v| v.eq_str(Namespace::Ed4.uri()));
                let namespace = if ed4 { Namespace::Ed4 } else { Namespace::Ed3 };
                let session = format!("SIM-{}", self.next_session);
                self.next_session += 1;
                self.switch.link_opened(link, namespace);
                let started = SessionMessage::Started {
                    session_id: Text::literal(&session),
                    protocol_version: Some(Text::literal(namespace.uri())),
                    duration: Some(duration.unwrap_or(90)),
                };
                let out = reply(write(|o| started.write(o)));
                if let Some(side) = self.links.get_mut(&link) {
                    side.session = Some(session);
                }
                out
            }
            Message::Session(SessionMessage::ResetTimer { session_id, duration }) => {
                if self.faults.silent_heartbeats {
                    return Vec::new();
                }
                let known =
                    self.links.get(&link).and_then(|s| s.session.as_deref()).is_some_and(|s| session_id.eq_str(s));
                let answer = if known {
                    SessionMessage::TimerReset { duration: Some(duration.unwrap_or(90)) }
                } else {
                    SessionMessage::Refused {
                        refused: csta::SessionRequest::ResetTimer,
                        error: Text::literal("invalidSessionID"),
                    }
                };
                reply(write(|o| answer.write(o)))
            }
            Message::Session(SessionMessage::Stop { .. }) => reply(write(|o| SessionMessage::Stopped.write(o))),
            Message::Request(Request::RequestSystemStatus { .. }) if self.faults.silent_heartbeats => Vec::new(),
            Message::Request(request) => self.switch.request(now, link, invoke_id, &request),
            Message::System(SystemMessage::StatusAnswered) => {
                self.greetings_answered += 1;
                Vec::new()
            }
            Message::System(SystemMessage::Register) => {
                self.registrations += 1;
                let id = format!("SIM-REG-{link}");
                let registered = SystemMessage::Registered { register_id: Some(Text::literal(&id)) };
                reply(write(|out| registered.write(doc.namespace, out)))
            }
            _ => {
                let code = ErrorCode::SERVICE_NOT_SUPPORTED;
                reply(write(|out| code.write(doc.namespace, out)))
            }
        }
    }

    /// The outside world's actions due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        self.switch.handle_timeout(now)
    }

    /// When [`Node::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.switch.poll_timeout()
    }

    /// A control-channel command the node itself carries out: the faults it
    /// applies and the switch's commands. Returns `None` for the commands
    /// the binary handles (`fault close`, `fault refuse`, `exit`, `status`).
    pub fn command(&mut self, now: Instant, line: &str) -> Option<(String, Vec<Output>)> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ok = || Some(("ok".to_string(), Vec::new()));
        match words.as_slice() {
            ["fault", "heartbeat", "off"] => {
                self.faults.silent_heartbeats = true;
                ok()
            }
            ["fault", "heartbeat", "on"] => {
                self.faults.silent_heartbeats = false;
                ok()
            }
            ["fault", "delay", ms] => match ms.parse() {
                Ok(ms) => {
                    self.faults.delay = Duration::from_millis(ms);
                    ok()
                }
                Err(_) => Some(("error bad milliseconds".to_string(), Vec::new())),
            },
            ["fault", "refuse", "on"] => {
                self.faults.refuse = true;
                None
            }
            ["fault", "refuse", "off"] => {
                self.faults.refuse = false;
                None
            }
            ["fault", "close"] | ["exit"] | ["status"] => None,
            _ => Some(self.switch.command(now, line)),
        }
    }
}
