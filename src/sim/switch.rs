//! The simulated telephone system behind `ctigw-sim`: lines, calls, their
//! connections, monitors, forwarding and do-not-disturb, and an outside
//! world for numbers the switch does not own. Sans I/O and deterministic:
//! the same requests, commands and times give the same responses and
//! events, ids included.
//!
//! A line (a number) is a CSTA device here: calls connect to lines, and
//! monitors watch lines. Each event goes to every monitor on a line taking
//! part in the call, with that line's own view of its connection
//! (`localConnectionInfo`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::csta::{
    CallEvent, CallEventKind, ConnectionId, DoNotDisturbEvent, ErrorCode, Event, ForwardItem, ForwardingEvent,
    ForwardingType, LocalConnectionState as State, Namespace, Redirection, Request, Response, Service, Services,
    SnapshotCall, SystemStatus, Text, cause,
};
use crate::cti::InvokeId;
use crate::dialplan::{device_key, number_of};
use crate::outbuf::OutBuf;
use crate::tel::Number;

/// Identifies one CTI connection to the simulator.
pub type LinkId = u64;

/// A document for one link: a response (the request's invoke id) or an
/// event (invoke id 9999).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Which link.
    pub link: LinkId,
    /// The frame's invoke id.
    pub invoke_id: InvokeId,
    /// The XML document.
    pub body: Vec<u8>,
}

/// How the switch names its devices on the CTI link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Naming {
    /// By Lync's line URIs, read in any spelling of the number: the
    /// demo's switch, which needs no dial plan in the gateway.
    #[default]
    Uri,
    /// As a PBX with plain extension numbers: a line is the number its
    /// line-file device names (`101`), numbers to call are dial strings,
    /// URIs are refused (invalidDeviceID, invalidCalledDevice).
    Extensions,
    /// As an OpenScape-class PBX (the shapes of public CSTA frames):
    /// devices written `N<number>;noa=nk`, read in any spelling of the same
    /// number, URIs refused, and private data in every event.
    OpenScape,
}

impl Naming {
    /// The mode a name given on the command line stands for.
    pub fn parse(name: &str) -> Option<Naming> {
        match name {
            "uri" => Some(Naming::Uri),
            "extensions" => Some(Naming::Extensions),
            "openscape" => Some(Naming::OpenScape),
            _ => None,
        }
    }
}

/// The private data an OpenScape-style switch adds to its events: a
/// Siemens namespace the gateway does not model and must pass over.
pub const PRIVATE_DATA: &str = "<extensions><privateData><private><osv:callingDeviceName      xmlns:osv=\"http://www.siemens.com/schema/csta\">Reception</osv:callingDeviceName></private></privateData>\
     </extensions>";

/// What numbers the switch does not own do when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// Answer after this long.
    Answer(Duration),
    /// Be busy.
    Busy,
    /// Ring until the no-answer timeout, then fail.
    NoAnswer,
}

/// A party to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Party {
    /// One of the switch's lines, by index.
    Line(usize),
    /// A number outside the switch, as dialled.
    Outside(String),
}

#[derive(Debug, Clone)]
struct Connection {
    party: Party,
    state: State,
}

#[derive(Debug, Clone)]
struct Call {
    connections: Vec<Connection>,
    /// The device the call was last diverted from (forwarded, deflected):
    /// the later events' `lastRedirectionDevice`.
    redirected_from: Option<String>,
}

struct Line {
    uri: String,
    number: Number,
    device: String,
    /// The line's other devices (a line on several phones).
    other_devices: Vec<String>,
    forwarding: Vec<(ForwardingType, bool, Option<String>)>,
    dnd: bool,
}

struct Monitor {
    xref: String,
    line: usize,
    link: LinkId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerAction {
    Answer,
    NoAnswer,
}

struct Timer {
    at: Instant,
    seq: u64,
    call: u32,
    party: Party,
    action: TimerAction,
}

/// A change of a line's logical-device features.
enum Logical {
    Forwarding { kind: ForwardingType, active: bool, dn: Option<String> },
    DoNotDisturb(bool),
}

/// What `Switch::joining` found: the held call (primary), the held
/// connection's place in it, the active call (secondary), the joining
/// party, and the active call's other parties.
struct Joining {
    primary: u32,
    held_at: usize,
    secondary: u32,
    me: Party,
    others: Vec<Connection>,
}

/// Extra parts of one call event.
#[derive(Default)]
struct Parts {
    subject: Option<String>,
    target: Option<String>,
    calling: Option<String>,
    called: Option<String>,
    secondary: Option<(String, String)>,
    connections: Vec<(String, String)>,
    redirection: Option<String>,
}

/// The telephone system.
pub struct Switch {
    lines: Vec<Line>,
    calls: BTreeMap<u32, Call>,
    monitors: Vec<Monitor>,
    namespaces: BTreeMap<LinkId, Namespace>,
    next_call: u32,
    next_monitor: u32,
    timers: Vec<Timer>,
    timer_seq: u64,
    outside: Outside,
    ring_timeout: Duration,
    naming: Naming,
    out: Vec<Output>,
}

fn call_name(id: u32) -> String {
    format!("C-{id:04}")
}

fn parse_call(name: &str) -> Option<u32> {
    name.strip_prefix("C-")?.parse().ok()
}

impl Switch {
    /// A switch owning `lines` (URI and device name of each).
    pub fn new<'a>(lines: impl IntoIterator<Item = (&'a str, &'a str)>, outside: Outside) -> Switch {
        let mut switch = Switch {
            lines: Vec::new(),
            calls: BTreeMap::new(),
            monitors: Vec::new(),
            namespaces: BTreeMap::new(),
            next_call: 1,
            next_monitor: 4711,
            timers: Vec::new(),
            timer_seq: 0,
            outside,
            ring_timeout: Duration::from_secs(30),
            naming: Naming::Uri,
            out: Vec::new(),
        };
        for (uri, device) in lines {
            let Ok(number) = Number::parse(uri) else { continue };
            // A line shared by several devices is one line of the switch.
            if let Some(line) = switch.lines.iter_mut().find(|l| l.number.matches(&number)) {
                if !line.device.eq_ignore_ascii_case(device) {
                    line.other_devices.push(device.to_string());
                }
                continue;
            }
            switch.lines.push(Line {
                uri: uri.to_string(),
                number,
                device: device.to_string(),
                other_devices: Vec::new(),
                forwarding: Vec::new(),
                dnd: false,
            });
        }
        switch
    }

    /// How the switch names devices from now on.
    pub fn set_naming(&mut self, naming: Naming) {
        self.naming = naming;
    }

    /// The services the switch supports: everything by URI; a PBX, as
    /// real ones do, only some (no conference, deflection or DTMF here).
    pub fn services(&self) -> Services {
        match self.naming {
            Naming::Uri => Services::all(),
            Naming::Extensions | Naming::OpenScape => Services::all()
                .without(Service::ConferenceCall)
                .without(Service::DeflectCall)
                .without(Service::GenerateDigits),
        }
    }

    /// How numbers outside the switch behave from now on.
    pub fn set_outside(&mut self, outside: Outside) {
        self.outside = outside;
    }

    /// How long an unanswered outside number rings before the call fails.
    pub fn set_ring_timeout(&mut self, timeout: Duration) {
        self.ring_timeout = timeout;
    }

    /// A CTI link connected, speaking `namespace`.
    pub fn link_opened(&mut self, link: LinkId, namespace: Namespace) {
        self.namespaces.insert(link, namespace);
    }

    /// A CTI link closed: its monitors end with it.
    pub fn link_closed(&mut self, link: LinkId) {
        self.namespaces.remove(&link);
        self.monitors.retain(|m| m.link != link);
    }

    /// The lines, as configured.
    pub fn line_uris(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.uri.as_str())
    }

    /// Monitors open (for status).
    pub fn monitor_count(&self) -> usize {
        self.monitors.len()
    }

    /// One line per call: `C-0001 tel:101=connected tel:+14255559876=alerting`.
    pub fn describe_calls(&self) -> Vec<String> {
        self.calls
            .iter()
            .map(|(id, call)| {
                let parties: Vec<String> = call
                    .connections
                    .iter()
                    .map(|c| format!("{}={}", self.device_id(&c.party), c.state.as_str()))
                    .collect();
                format!("{} {}", call_name(*id), parties.join(" "))
            })
            .collect()
    }

    /// The earliest outside-world action due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().map(|t| t.at).min()
    }

    /// Carries out the outside-world actions due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        loop {
            let due = self.timers.iter().enumerate().filter(|(_, t)| t.at <= now).min_by_key(|(_, t)| (t.at, t.seq));
            let Some((i, _)) = due else { break };
            let timer = self.timers.remove(i);
            let Some(at) = self.connection_index(timer.call, &timer.party) else { continue };
            let alerting = self.calls[&timer.call].connections[at].state == State::Alerting;
            if !alerting {
                continue;
            }
            match timer.action {
                TimerAction::Answer => self.answer(timer.call, at),
                TimerAction::NoAnswer => self.fail(timer.call, at, cause::CALL_NOT_ANSWERED),
            }
        }
        std::mem::take(&mut self.out)
    }

    /// Answers one request from `link`: the response (or CSTA error) first,
    /// then the events it causes.
    pub fn request(&mut self, now: Instant, link: LinkId, invoke_id: InvokeId, request: &Request<'_>) -> Vec<Output> {
        let namespace = self.namespace(link);
        // The response is written first; its events are collected behind it.
        let events = std::mem::take(&mut self.out);
        debug_assert!(events.is_empty());
        let result = self.serve(now, link, namespace, request);
        let events = std::mem::replace(&mut self.out, events);
        let body = result.unwrap_or_else(|code| write(|out| code.write(namespace, out)));
        let mut outputs = vec![Output { link, invoke_id, body }];
        outputs.extend(events);
        outputs
    }

    fn namespace(&self, link: LinkId) -> Namespace {
        self.namespaces.get(&link).copied().unwrap_or(Namespace::Ed3)
    }

    /// Carries out a request and writes its response, or names the error.
    fn serve(
        &mut self,
        now: Instant,
        link: LinkId,
        ns: Namespace,
        request: &Request<'_>,
    ) -> Result<Vec<u8>, ErrorCode<'static>> {
        let respond = |response: Response<'_>| write(|out| response.write(ns, out));
        Ok(match *request {
            Request::RequestSystemStatus { .. } => respond(Response::SystemStatus(SystemStatus::Normal)),
            Request::GetCstaFeatures { .. } => respond(Response::Features(self.services())),
            r if !self.services().contains(r.service()) => return Err(ErrorCode::SERVICE_NOT_SUPPORTED),
            Request::MonitorStart { device } => {
                let line = self.line_of(device)?;
                let xref = self.next_monitor.to_string();
                self.next_monitor += 1;
                let response = respond(Response::MonitorStarted { monitor: Text::literal(&xref) });
                self.monitors.push(Monitor { xref, line, link });
                response
            }
            Request::MonitorStop { monitor } => {
                let i = self
                    .monitors
                    .iter()
                    .position(|m| m.link == link && monitor.eq_str(&m.xref))
                    .ok_or(ErrorCode::INVALID_MONITOR_CROSS_REF_ID)?;
                self.monitors.remove(i);
                respond(Response::Ack(Service::MonitorStop))
            }
            Request::SnapshotDevice { device } => {
                let line = self.line_of(device)?;
                // Each call at the line with its compound call state: the
                // line's own connection first, then the other parties'.
                let names: Vec<(String, Vec<State>)> = self
                    .calls
                    .iter()
                    .flat_map(|(id, call)| {
                        call.connections.iter().filter(|c| c.party == Party::Line(line)).map(|own| {
                            let others = call.connections.iter().filter(|c| c.party != Party::Line(line));
                            (call_name(*id), std::iter::once(own.state).chain(others.map(|c| c.state)).collect())
                        })
                    })
                    .collect();
                let uri = self.device_id(&Party::Line(line));
                let uri = uri.as_str();
                let mut calls = heapless::Vec::new();
                for (name, states) in &names {
                    let connection = ConnectionId::new(Text::literal(name), Text::literal(uri));
                    let states = states.iter().copied().take(crate::csta::MAX_CALL_STATES).collect();
                    calls.push(SnapshotCall { connection, states }).map_err(|_| ErrorCode::VALUE_OUT_OF_RANGE)?;
                }
                respond(Response::Snapshot { calls, dropped: None })
            }
            Request::MakeCall { calling, called, .. } => {
                let line = self.line_of(calling)?;
                let id = call_name(self.make_call(now, line, called, cause::MAKE_CALL)?);
                // By URI, the calling device is echoed exactly as sent
                // (Lync compares it); a PBX names it its own way.
                let own = self.device_id(&Party::Line(line));
                let device = if self.naming == Naming::Uri { calling } else { Text::literal(&own) };
                respond(Response::Call {
                    service: Service::MakeCall,
                    call: ConnectionId::new(Text::literal(&id), device),
                })
            }
            Request::AnswerCall { call } => {
                let (id, at) = self.connection(&call)?;
                if self.calls[&id].connections[at].state != State::Alerting {
                    return Err(ErrorCode::INVALID_OBJECT_STATE);
                }
                self.answer(id, at);
                respond(Response::Ack(Service::AnswerCall))
            }
            Request::ClearConnection { connection } => {
                let (id, at) = self.connection(&connection)?;
                self.clear(id, at, cause::NORMAL_CLEARING);
                respond(Response::Ack(Service::ClearConnection))
            }
            Request::HoldCall { call } => {
                let (id, at) = self.connection(&call)?;
                self.hold(id, at)?;
                respond(Response::Ack(Service::HoldCall))
            }
            Request::RetrieveCall { call } => {
                let (id, at) = self.connection(&call)?;
                self.retrieve(id, at)?;
                respond(Response::Ack(Service::RetrieveCall))
            }
            Request::ConsultationCall { existing, consulted } => {
                let (id, at) = self.connection(&existing)?;
                let Party::Line(line) = self.calls[&id].connections[at].party.clone() else {
                    return Err(ErrorCode::INVALID_DEVICE_ID);
                };
                if self.calls[&id].connections[at].state == State::Connected {
                    self.hold(id, at)?;
                }
                let new = call_name(self.make_call(now, line, consulted, cause::CONSULTATION)?);
                let device = self.device_id(&Party::Line(line));
                let device = Text::literal(&device);
                respond(Response::Call {
                    service: Service::ConsultationCall,
                    call: ConnectionId::new(Text::literal(&new), device),
                })
            }
            Request::TransferCall { held, active } => {
                let (to, device) = self.transfer(&held, &active)?;
                respond(Response::Call {
                    service: Service::TransferCall,
                    call: ConnectionId::new(Text::literal(&call_name(to)), Text::literal(&device)),
                })
            }
            Request::ConferenceCall { held, active } => {
                let (id, device) = self.conference(&held, &active)?;
                respond(Response::Call {
                    service: Service::ConferenceCall,
                    call: ConnectionId::new(Text::literal(&call_name(id)), Text::literal(&device)),
                })
            }
            Request::AlternateCall { held, active } => {
                let (held_call, held_at) = self.connection(&held)?;
                let (active_call, active_at) = self.connection(&active)?;
                if self.calls[&held_call].connections[held_at].state != State::Hold {
                    return Err(ErrorCode::INVALID_OBJECT_STATE);
                }
                self.hold(active_call, active_at)?;
                self.retrieve(held_call, held_at)?;
                respond(Response::Ack(Service::AlternateCall))
            }
            Request::SingleStepTransferCall { active, transferred_to } => {
                let (id, device) = self.single_step_transfer(now, &active, transferred_to)?;
                respond(Response::Call {
                    service: Service::SingleStepTransferCall,
                    call: ConnectionId::new(Text::literal(&call_name(id)), Text::literal(&device)),
                })
            }
            Request::DeflectCall { call, new_destination } => {
                let (id, at) = self.connection(&call)?;
                if self.calls[&id].connections[at].state != State::Alerting {
                    return Err(ErrorCode::INVALID_OBJECT_STATE);
                }
                let destination = self.party_of(new_destination)?;
                self.divert(now, id, at, destination, cause::REDIRECTED, 1);
                respond(Response::Ack(Service::DeflectCall))
            }
            Request::GenerateDigits { connection, characters } => {
                let (id, at) = self.connection(&connection)?;
                let digits_ok = characters.chars().all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'));
                if !digits_ok {
                    return Err(ErrorCode::INVALID_PARAMETER_VALUE);
                }
                if self.calls[&id].connections[at].state != State::Connected {
                    return Err(ErrorCode::INVALID_OBJECT_STATE);
                }
                respond(Response::Ack(Service::GenerateDigits))
            }
            Request::SetForwarding { device, forwarding_type, activate, forward_dn } => {
                let line = self.line_of(device)?;
                let kind = forwarding_type.unwrap_or(ForwardingType::Immediate);
                if activate && forward_dn.is_none() {
                    return Err(ErrorCode::INVALID_PARAMETER_VALUE);
                }
                let dn = forward_dn.map(|d| d.to_string());
                let entry = &mut self.lines[line].forwarding;
                entry.retain(|(k, ..)| *k != kind);
                entry.push((kind, activate, dn.clone()));
                self.emit_logical(line, &Logical::Forwarding { kind, active: activate, dn });
                respond(Response::Ack(Service::SetForwarding))
            }
            Request::GetForwarding { device } => {
                let line = self.line_of(device)?;
                let mut items = heapless::Vec::new();
                for (kind, active, dn) in &self.lines[line].forwarding {
                    let forward_dn = dn.as_deref().map(Text::literal);
                    let item = ForwardItem { forwarding_type: Some(*kind), active: *active, forward_dn };
                    items.push(item).map_err(|_| ErrorCode::VALUE_OUT_OF_RANGE)?;
                }
                respond(Response::Forwarding { items })
            }
            Request::SetDoNotDisturb { device, on } => {
                let line = self.line_of(device)?;
                self.lines[line].dnd = on;
                self.emit_logical(line, &Logical::DoNotDisturb(on));
                respond(Response::Ack(Service::SetDoNotDisturb))
            }
            Request::GetDoNotDisturb { device } => {
                let line = self.line_of(device)?;
                respond(Response::DoNotDisturb { on: self.lines[line].dnd })
            }
        })
    }

    /// Carries out a control-channel command; the reply line and the
    /// events it caused.
    pub fn command(&mut self, now: Instant, line: &str) -> (String, Vec<Output>) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["call", from, to] => match self.line_of_str(to) {
                Some(target) => {
                    let id = self.next_call;
                    self.next_call += 1;
                    let caller = Party::Outside(from.to_string());
                    self.calls.insert(
                        id,
                        Call {
                            connections: vec![Connection { party: caller, state: State::Connected }],
                            redirected_from: None,
                        },
                    );
                    self.ring(now, id, Party::Line(target), 0);
                    format!("ok {}", call_name(id))
                }
                None => format!("error no line {to}"),
            },
            ["answer", call, rest @ ..] => {
                self.far_end(call, rest.first().copied(), State::Alerting, |s, id, at| s.answer(id, at))
            }
            ["busy", call, rest @ ..] => {
                self.far_end(call, rest.first().copied(), State::Alerting, |s, id, at| s.fail(id, at, cause::BUSY))
            }
            ["hangup", call, rest @ ..] => {
                let device = rest.first().copied();
                match parse_call(call).filter(|id| self.calls.contains_key(id)) {
                    Some(id) => {
                        let at = self.calls[&id].connections.iter().position(|c| match device {
                            Some(d) => self.device_id(&c.party) == d || self.party_matches(&c.party, d),
                            None => matches!(c.party, Party::Outside(_)),
                        });
                        match at {
                            Some(at) => {
                                self.clear(id, at, cause::NORMAL_CLEARING);
                                "ok".to_string()
                            }
                            None => "error no such party".to_string(),
                        }
                    }
                    None => format!("error no call {call}"),
                }
            }
            ["outside", "answer", ms] => match ms.parse() {
                Ok(ms) => {
                    self.outside = Outside::Answer(Duration::from_millis(ms));
                    "ok".to_string()
                }
                Err(_) => "error bad milliseconds".to_string(),
            },
            ["outside", "busy"] => {
                self.outside = Outside::Busy;
                "ok".to_string()
            }
            ["outside", "noanswer"] => {
                self.outside = Outside::NoAnswer;
                "ok".to_string()
            }
            ["calls"] => {
                let calls = self.describe_calls();
                if calls.is_empty() { "ok no calls".to_string() } else { format!("ok {}", calls.join("; ")) }
            }
            _ => format!("error unknown command: {line}"),
        };
        (reply, std::mem::take(&mut self.out))
    }

    /// The far-end party of `call` in `state` (or the one named) gets `act`.
    fn far_end(
        &mut self,
        call: &str,
        device: Option<&str>,
        state: State,
        act: impl FnOnce(&mut Self, u32, usize),
    ) -> String {
        let Some(id) = parse_call(call).filter(|id| self.calls.contains_key(id)) else {
            return format!("error no call {call}");
        };
        let at = self.calls[&id].connections.iter().position(|c| {
            c.state == state && device.is_none_or(|d| self.device_id(&c.party) == d || self.party_matches(&c.party, d))
        });
        match at {
            Some(at) => {
                act(self, id, at);
                "ok".to_string()
            }
            None => format!("error no {} party in {call}", state.as_str()),
        }
    }

    fn party_matches(&self, party: &Party, text: &str) -> bool {
        if self.naming != Naming::Uri {
            return match party {
                Party::Line(i) => self.line_of_str(text) == Some(*i),
                Party::Outside(s) => number_of(text).is_some_and(|n| n == s.as_str()),
            };
        }
        match (party, Number::parse(text)) {
            (Party::Line(i), Ok(n)) => self.lines[*i].number.matches(&n),
            (Party::Outside(s), _) => s == text,
            _ => false,
        }
    }

    fn line_of_str(&self, device: &str) -> Option<usize> {
        if self.naming != Naming::Uri {
            // A PBX knows its devices by its own names, never by URI.
            if device.contains(':') {
                return None;
            }
            // Its device names, in any spelling of the same number, or the
            // line's own number as dialled (an extension reaches its line).
            let key = device_key(device);
            let named = |d: &String| device_key(d).eq_ignore_ascii_case(key);
            let dialled = number_of(device).and_then(|n| Number::parse(&format!("tel:{n}")).ok());
            return self.lines.iter().position(|l| named(&l.device) || l.other_devices.iter().any(named)).or_else(
                || {
                    let n = dialled?;
                    self.lines.iter().position(|l| l.number.matches(&n))
                },
            );
        }
        let number = Number::parse(device).ok()?;
        self.lines.iter().position(|l| l.number.matches(&number))
    }

    fn line_of(&self, device: Text<'_>) -> Result<usize, ErrorCode<'static>> {
        self.line_of_str(&device.to_string()).ok_or(ErrorCode::INVALID_DEVICE_ID)
    }

    /// A destination: one of the lines, or an outside number.
    fn party_of(&self, device: Text<'_>) -> Result<Party, ErrorCode<'static>> {
        let text = device.to_string();
        if self.naming != Naming::Uri {
            if let Some(line) = self.line_of_str(&text) {
                return Ok(Party::Line(line));
            }
            // A dial string (digits, E.164 with its '+'), never a URI.
            return match number_of(&text) {
                Some(n) if !text.contains(':') => Ok(Party::Outside(n.to_string())),
                _ => Err(ErrorCode::INVALID_CALLED_DEVICE),
            };
        }
        Number::parse(&text).map_err(|_| ErrorCode::INVALID_DEVICE_ID)?;
        Ok(match self.line_of_str(&text) {
            Some(line) => Party::Line(line),
            None => Party::Outside(text),
        })
    }

    fn device_id(&self, party: &Party) -> String {
        match (self.naming, party) {
            (Naming::Uri, Party::Line(i)) => self.lines[*i].uri.clone(),
            (Naming::Uri | Naming::Extensions, Party::Outside(number)) => number.clone(),
            (Naming::Extensions, Party::Line(i)) => device_key(&self.lines[*i].device).to_string(),
            (Naming::OpenScape, Party::Line(i)) => format!("N<{}>;noa=nk", device_key(&self.lines[*i].device)),
            (Naming::OpenScape, Party::Outside(number)) => format!("N<{number}>;noa=nk"),
        }
    }

    fn connection_index(&self, id: u32, party: &Party) -> Option<usize> {
        self.calls.get(&id)?.connections.iter().position(|c| &c.party == party)
    }

    /// The call and connection a ConnectionID names.
    fn connection(&self, c: &ConnectionId<'_>) -> Result<(u32, usize), ErrorCode<'static>> {
        let call = c.call.ok_or(ErrorCode::INVALID_CALL_ID)?.to_string();
        let id = parse_call(&call).filter(|id| self.calls.contains_key(id)).ok_or(ErrorCode::INVALID_CALL_ID)?;
        let device = c.device.ok_or(ErrorCode::INVALID_CONNECTION_ID)?.to_string();
        let at = self.calls[&id]
            .connections
            .iter()
            .position(|conn| self.party_matches(&conn.party, &device) || self.device_id(&conn.party) == device)
            .ok_or(ErrorCode::INVALID_CONNECTION_ID)?;
        Ok((id, at))
    }

    /// The two calls a transfer or conference joins: `held` and `active`
    /// must be one party's connections in two different calls.
    fn joining(&self, held: &ConnectionId<'_>, active: &ConnectionId<'_>) -> Result<Joining, ErrorCode<'static>> {
        let (primary, held_at) = self.connection(held)?;
        let (secondary, active_at) = self.connection(active)?;
        if primary == secondary {
            return Err(ErrorCode::INVALID_CALL_ID);
        }
        let me = self.calls[&primary].connections[held_at].party.clone();
        if self.calls[&secondary].connections[active_at].party != me {
            return Err(ErrorCode::INVALID_CONNECTION_ID);
        }
        let others = self.calls[&secondary].connections.iter().filter(|c| c.party != me).cloned().collect();
        Ok(Joining { primary, held_at, secondary, me, others })
    }

    fn make_call(
        &mut self,
        now: Instant,
        line: usize,
        called: Text<'_>,
        why: Text<'static>,
    ) -> Result<u32, ErrorCode<'static>> {
        let destination = self.party_of(called)?;
        if destination == Party::Line(line) {
            return Err(ErrorCode::REQUEST_INCOMPATIBLE_WITH_OBJECT);
        }
        let id = self.next_call;
        self.next_call += 1;
        let caller = Party::Line(line);
        self.calls.insert(
            id,
            Call {
                connections: vec![Connection { party: caller.clone(), state: State::Initiated }],
                redirected_from: None,
            },
        );
        let me = Some(self.device_id(&caller));
        self.emit(CallEventKind::ServiceInitiated, id, 0, why, Parts { subject: me.clone(), ..Parts::default() });
        self.calls.get_mut(&id).expect("just made").connections[0].state = State::Connected;
        let called_id = Some(self.device_id(&destination));
        self.emit(
            CallEventKind::Originated,
            id,
            0,
            cause::NEW_CALL,
            Parts { subject: me, called: called_id, ..Parts::default() },
        );
        self.ring(now, id, destination, 0);
        Ok(id)
    }

    /// Offers call `id` to `party`: forwarding and do-not-disturb first,
    /// then alerting, and for an outside number its behaviour.
    fn ring(&mut self, now: Instant, id: u32, party: Party, depth: u8) {
        if let Party::Line(line) = party {
            let forward = self.lines[line]
                .forwarding
                .iter()
                .find(|(kind, active, _)| *kind == ForwardingType::Immediate && *active)
                .and_then(|(_, _, dn)| dn.clone());
            if let (Some(dn), true) = (forward, depth < 4) {
                let target = match self.line_of_str(&dn) {
                    Some(l) => Party::Line(l),
                    None => Party::Outside(dn),
                };
                self.calls
                    .get_mut(&id)
                    .expect("ringing a call")
                    .connections
                    .push(Connection { party, state: State::Alerting });
                let at = self.calls[&id].connections.len() - 1;
                return self.divert(now, id, at, target, cause::CALL_FORWARD_IMMEDIATE, depth + 1);
            }
        }
        self.calls
            .get_mut(&id)
            .expect("ringing a call")
            .connections
            .push(Connection { party: party.clone(), state: State::Alerting });
        let at = self.calls[&id].connections.len() - 1;
        if let Party::Line(line) = party {
            if self.lines[line].dnd {
                return self.fail(id, at, cause::DO_NOT_DISTURB);
            }
        }
        let caller = self.calls[&id].connections.first().map(|c| self.device_id(&c.party));
        let me = Some(self.device_id(&party));
        let redirection = self.calls[&id].redirected_from.clone();
        let parts = Parts { subject: me.clone(), calling: caller, called: me, redirection, ..Parts::default() };
        self.emit(CallEventKind::Delivered, id, at, cause::NEW_CALL, parts);
        if let Party::Outside(_) = party {
            match self.outside {
                Outside::Answer(after) => self.schedule(now + after, id, party, TimerAction::Answer),
                Outside::Busy => self.fail(id, at, cause::BUSY),
                Outside::NoAnswer => self.schedule(now + self.ring_timeout, id, party, TimerAction::NoAnswer),
            }
        }
    }

    fn schedule(&mut self, at: Instant, call: u32, party: Party, action: TimerAction) {
        self.timer_seq += 1;
        self.timers.push(Timer { at, seq: self.timer_seq, call, party, action });
    }

    fn answer(&mut self, id: u32, at: usize) {
        self.calls.get_mut(&id).expect("answering a call").connections[at].state = State::Connected;
        let conns = &self.calls[&id].connections;
        let me = Some(self.device_id(&conns[at].party));
        let caller = conns.first().map(|c| self.device_id(&c.party));
        let redirection = self.calls[&id].redirected_from.clone();
        let parts = Parts { subject: me.clone(), calling: caller, called: me, redirection, ..Parts::default() };
        self.emit(CallEventKind::Established, id, at, cause::NORMAL, parts);
    }

    fn fail(&mut self, id: u32, at: usize, why: Text<'static>) {
        self.calls.get_mut(&id).expect("failing a call").connections[at].state = State::Fail;
        let conns = &self.calls[&id].connections;
        let me = Some(self.device_id(&conns[at].party));
        let caller = conns.first().map(|c| self.device_id(&c.party));
        let parts = Parts { subject: me.clone(), calling: caller, called: me, ..Parts::default() };
        self.emit(CallEventKind::Failed, id, at, why, parts);
    }

    fn hold(&mut self, id: u32, at: usize) -> Result<(), ErrorCode<'static>> {
        if self.calls[&id].connections[at].state != State::Connected {
            return Err(ErrorCode::INVALID_OBJECT_STATE);
        }
        self.calls.get_mut(&id).expect("holding a call").connections[at].state = State::Hold;
        let me = Some(self.device_id(&self.calls[&id].connections[at].party));
        self.emit(CallEventKind::Held, id, at, cause::NORMAL, Parts { subject: me, ..Parts::default() });
        Ok(())
    }

    fn retrieve(&mut self, id: u32, at: usize) -> Result<(), ErrorCode<'static>> {
        if self.calls[&id].connections[at].state != State::Hold {
            return Err(ErrorCode::INVALID_OBJECT_STATE);
        }
        self.calls.get_mut(&id).expect("retrieving a call").connections[at].state = State::Connected;
        let me = Some(self.device_id(&self.calls[&id].connections[at].party));
        self.emit(CallEventKind::Retrieved, id, at, cause::NORMAL, Parts { subject: me, ..Parts::default() });
        Ok(())
    }

    /// Drops the party at `at`; a call left with one party is cleared.
    fn clear(&mut self, id: u32, at: usize, why: Text<'static>) {
        let me = Some(self.device_id(&self.calls[&id].connections[at].party));
        self.calls.get_mut(&id).expect("clearing a call").connections[at].state = State::Null;
        self.emit(CallEventKind::ConnectionCleared, id, at, why, Parts { subject: me, ..Parts::default() });
        let call = self.calls.get_mut(&id).expect("clearing a call");
        let dropped = call.connections.remove(at);
        self.timers.retain(|t| !(t.call == id && t.party == dropped.party));
        if call.connections.len() == 1 {
            self.clear(id, 0, why);
        } else if call.connections.is_empty() {
            self.calls.remove(&id);
            self.timers.retain(|t| t.call != id);
        }
    }

    /// Sends the alerting party at `at` away to `target` (deflect, forward);
    /// `depth` counts the diversions so far, so a forwarding loop ends.
    fn divert(&mut self, now: Instant, id: u32, at: usize, target: Party, why: Text<'static>, depth: u8) {
        let me = Some(self.device_id(&self.calls[&id].connections[at].party));
        let to = Some(self.device_id(&target));
        let caller = self.calls[&id].connections.first().map(|c| self.device_id(&c.party));
        self.calls.get_mut(&id).expect("diverting a call").connections[at].state = State::Null;
        let parts = Parts { subject: me, target: to, calling: caller, ..Parts::default() };
        self.emit(CallEventKind::Diverted, id, at, why, parts);
        let from = self.device_id(&self.calls[&id].connections[at].party);
        let call = self.calls.get_mut(&id).expect("diverting a call");
        call.redirected_from = Some(from);
        let gone = call.connections.remove(at);
        self.timers.retain(|t| !(t.call == id && t.party == gone.party));
        self.ring(now, id, target, depth);
    }

    fn transfer(
        &mut self,
        held: &ConnectionId<'_>,
        active: &ConnectionId<'_>,
    ) -> Result<(u32, String), ErrorCode<'static>> {
        let Joining { primary, secondary, me, others, .. } = self.joining(held, active)?;
        let Some(to) = others.first().map(|c| self.device_id(&c.party)) else {
            return Err(ErrorCode::INVALID_OBJECT_STATE);
        };
        let me_id = self.device_id(&me);
        // The audience: everyone in either call, the transferring line included.
        let audience = self.audience(&[primary, secondary]);
        {
            let call = self.calls.get_mut(&primary).expect("transfer primary");
            call.connections.retain(|c| c.party != me);
            call.connections.extend(others);
        }
        self.calls.remove(&secondary);
        self.timers.iter_mut().filter(|t| t.call == secondary).for_each(|t| t.call = primary);
        let connections: Vec<(String, String)> =
            self.calls[&primary].connections.iter().map(|c| (call_name(primary), self.device_id(&c.party))).collect();
        let parts = Parts {
            subject: Some(me_id.clone()),
            target: Some(to.clone()),
            secondary: Some((call_name(secondary), me_id.clone())),
            connections,
            ..Parts::default()
        };
        self.emit_to(
            &audience,
            CallEventKind::Transfered,
            primary,
            (call_name(primary), me_id),
            cause::TRANSFER,
            parts,
        );
        Ok((primary, to))
    }

    fn single_step_transfer(
        &mut self,
        now: Instant,
        active: &ConnectionId<'_>,
        to: Text<'_>,
    ) -> Result<(u32, String), ErrorCode<'static>> {
        let (id, at) = self.connection(active)?;
        let target = self.party_of(to)?;
        let me = self.calls[&id].connections[at].party.clone();
        let me_id = self.device_id(&me);
        let to_id = self.device_id(&target);
        let audience = self.audience(&[id]);
        self.calls.get_mut(&id).expect("transferring").connections.remove(at);
        let mut connections: Vec<(String, String)> =
            self.calls[&id].connections.iter().map(|c| (call_name(id), self.device_id(&c.party))).collect();
        connections.push((call_name(id), to_id.clone()));
        let parts =
            Parts { subject: Some(me_id.clone()), target: Some(to_id.clone()), connections, ..Parts::default() };
        self.emit_to(
            &audience,
            CallEventKind::Transfered,
            id,
            (call_name(id), me_id),
            cause::SINGLE_STEP_TRANSFER,
            parts,
        );
        self.ring(now, id, target, 0);
        Ok((id, to_id))
    }

    fn conference(
        &mut self,
        held: &ConnectionId<'_>,
        active: &ConnectionId<'_>,
    ) -> Result<(u32, String), ErrorCode<'static>> {
        let Joining { primary, held_at, secondary, me, others: added } = self.joining(held, active)?;
        let added_party = added.first().map(|c| self.device_id(&c.party));
        let me_id = self.device_id(&me);
        let audience = self.audience(&[primary, secondary]);
        {
            let call = self.calls.get_mut(&primary).expect("conference primary");
            call.connections[held_at].state = State::Connected;
            call.connections.extend(added);
        }
        self.calls.remove(&secondary);
        let connections: Vec<(String, String)> =
            self.calls[&primary].connections.iter().map(|c| (call_name(primary), self.device_id(&c.party))).collect();
        let parts = Parts {
            subject: Some(me_id.clone()),
            target: added_party,
            secondary: Some((call_name(secondary), me_id.clone())),
            connections,
            ..Parts::default()
        };
        self.emit_to(
            &audience,
            CallEventKind::Conferenced,
            primary,
            (call_name(primary), me_id.clone()),
            cause::CONFERENCE,
            parts,
        );
        Ok((primary, me_id))
    }

    /// The lines taking part in the calls, in line order.
    fn audience(&self, calls: &[u32]) -> Vec<usize> {
        let mut lines: Vec<usize> = calls
            .iter()
            .filter_map(|id| self.calls.get(id))
            .flat_map(|c| c.connections.iter())
            .filter_map(|c| if let Party::Line(l) = c.party { Some(l) } else { None })
            .collect();
        lines.sort_unstable();
        lines.dedup();
        lines
    }

    /// A call event about the connection at `at` of call `id`, to every
    /// monitor on a line in the call.
    fn emit(&mut self, kind: CallEventKind, id: u32, at: usize, why: Text<'static>, parts: Parts) {
        let audience = self.audience(&[id]);
        let connection = (call_name(id), self.device_id(&self.calls[&id].connections[at].party));
        self.emit_to(&audience, kind, id, connection, why, parts);
    }

    fn emit_to(
        &mut self,
        audience: &[usize],
        kind: CallEventKind,
        id: u32,
        connection: (String, String),
        why: Text<'static>,
        parts: Parts,
    ) {
        for m in self.monitors.iter().filter(|m| audience.contains(&m.line)) {
            // This monitor's own view of the call.
            let state = self
                .calls
                .get(&id)
                .and_then(|c| c.connections.iter().find(|c| c.party == Party::Line(m.line)))
                .map_or(State::Null, |c| c.state);
            let mut event = CallEvent::new(
                kind,
                Text::literal(&m.xref),
                ConnectionId::new(Text::literal(&connection.0), Text::literal(&connection.1)),
            );
            event.subject = parts.subject.as_deref().map(Text::literal);
            event.target = parts.target.as_deref().map(Text::literal);
            event.calling = parts.calling.as_deref().map(Text::literal);
            event.called = parts.called.as_deref().map(Text::literal);
            event.secondary_call =
                parts.secondary.as_ref().map(|(c, d)| ConnectionId::new(Text::literal(c), Text::literal(d)));
            for (c, d) in parts.connections.iter().take(crate::csta::MAX_EVENT_CONNECTIONS) {
                let _ = event.connections.push(ConnectionId::new(Text::literal(c), Text::literal(d)));
            }
            event.redirection = parts.redirection.as_deref().map(|d| Redirection::Dialed(Text::literal(d)));
            event.local_state = Some(state);
            event.cause = Some(why);
            let namespace = self.namespaces.get(&m.link).copied().unwrap_or(Namespace::Ed3);
            let body = self.with_private_data(write(|out| Event::Call(event.clone()).write(namespace, out)));
            self.out.push(Output { link: m.link, invoke_id: InvokeId::EVENT, body });
        }
    }

    /// An event as this switch sends it: an OpenScape-style one carries
    /// private data before its closing tag.
    fn with_private_data(&self, mut body: Vec<u8>) -> Vec<u8> {
        if self.naming == Naming::OpenScape {
            if let Some(close) = body.windows(2).rposition(|w| w == b"</") {
                body.splice(close..close, PRIVATE_DATA.bytes());
            }
        }
        body
    }

    /// A logical-device event (forwarding, do-not-disturb) to the monitors of `line`.
    fn emit_logical(&mut self, line: usize, change: &Logical) {
        let device = self.device_id(&Party::Line(line));
        let device = Text::literal(&device);
        for m in self.monitors.iter().filter(|m| m.line == line) {
            let namespace = self.namespaces.get(&m.link).copied().unwrap_or(Namespace::Ed3);
            let monitor = Text::literal(&m.xref);
            let event = match change {
                Logical::Forwarding { kind, active, dn } => Event::Forwarding(ForwardingEvent {
                    monitor,
                    device,
                    forwarding_type: Some(*kind),
                    active: *active,
                    forward_to: dn.as_deref().map(Text::literal),
                }),
                Logical::DoNotDisturb(on) => Event::DoNotDisturb(DoNotDisturbEvent { monitor, device, on: *on }),
            };
            let body = self.with_private_data(write(|out| event.write(namespace, out)));
            self.out.push(Output { link: m.link, invoke_id: InvokeId::EVENT, body });
        }
    }

    /// The device name of a line (for status).
    pub fn device_of(&self, line_uri: &str) -> Option<&str> {
        let number = Number::parse(line_uri).ok()?;
        self.lines.iter().find(|l| l.number.matches(&number)).map(|l| l.device.as_str())
    }
}

/// Writes one document into a fresh buffer.
pub(crate) fn write(f: impl FnOnce(&mut OutBuf<'_>) -> Result<(), crate::outbuf::Overflow>) -> Vec<u8> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = OutBuf::new(&mut buf);
    f(&mut out).expect("a simulator document fits 16 KiB");
    let n = out.len();
    buf.truncate(n);
    buf
}
