//! `ctigw-load`: a Lync pool's worth of users against a gateway, for load
//! tests and benchmarks. Signs N users in (INVITE, 200, ACK, MonitorStart
//! on their line), then drives calls through them: MakeCall, HoldCall,
//! RetrieveCall, ClearConnection, each user one request at a time, all
//! users at once up to a rate and a window of requests in flight. Every
//! request's latency is recorded, every event INFO answered and counted;
//! at the end everyone signs out with BYE.
//!
//! With `--requests features`, each signed-in user asks GetCSTAFeatures
//! instead, which the gateway answers itself (no node, no events, no
//! monitor): the SIP+CSTA path alone. A bodiless 200 counts as an answer
//! there, so the same client measures a stateless SIP server (Kamailio's
//! `sl_send_reply`) as the reference. With `--requests relayed`, each asks
//! GetDoNotDisturb for its line, which the gateway relays to the user's
//! node and whose answer it relays back (no monitor, no events): one CSTA
//! round trip through the node per request.
//!
//! All users share one UDP socket or one TCP connection, as a Lync pool
//! front end does. `--write-lines N DIR` writes the line files that give
//! the gateway and the simulator those users.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ctigw::csta::{self, Event, Message as Csta, Response};
use ctigw::sip::{Frame, Message, StreamBuffer};

const USAGE: &str = "\
usage: ctigw-load [--gateway ADDR] [--transport tcp|udp] [--users N] [--rate PER_SECOND]
                  [--duration SECONDS] [--window N] [--called TEL] [--requests calls|features|relayed] [--json]
       ctigw-load --write-lines N DIR    the gateway's and the simulator's line files for N load users

defaults: --gateway 127.0.0.1:5060 --transport udp --users 10 --rate 0 (as fast as the window allows)
          --duration 10 --window 64 --called tel:+18005550100 (an outside number) --requests calls";

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
/// A request not answered within this is lost.
const LOST_AFTER: Duration = Duration::from_secs(5);
/// RFC 3261 T1: the first retransmission interval over UDP.
const T1: Duration = Duration::from_millis(500);

/// The `i`th load user: SIP URI, device, line.
fn load_user(i: usize) -> (String, String, String) {
    (format!("sip:load{i}@example.com"), format!("SEPL{i:07}"), format!("tel:+1425{:07}", 6_000_000 + i))
}

fn write_lines(n: usize, dir: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut text = String::from("# ctigw-load users: user device line\n");
    for i in 0..n {
        let (user, device, line) = load_user(i);
        text.push_str(&format!("{user} {device} {line}\n"));
    }
    std::fs::write(format!("{dir}/lines.conf"), &text)?;
    std::fs::write(format!("{dir}/sim-lines.conf"), &text)
}

struct Options {
    gateway: SocketAddr,
    tcp: bool,
    users: usize,
    rate: f64,
    duration: Duration,
    window: usize,
    called: String,
    /// What each signed-in user asks.
    requests: Requests,
    json: bool,
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut o = Options {
        gateway: "127.0.0.1:5060".parse().expect("literal"),
        tcp: false,
        users: 10,
        rate: 0.0,
        duration: Duration::from_secs(10),
        window: 64,
        called: "tel:+18005550100".into(),
        requests: Requests::Calls,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--gateway" => o.gateway = value()?.parse().map_err(|e| format!("--gateway: {e}"))?,
            "--transport" => o.tcp = value()? == "tcp",
            "--users" => o.users = value()?.parse().map_err(|e| format!("--users: {e}"))?,
            "--rate" => o.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--duration" => {
                o.duration = Duration::from_secs_f64(value()?.parse().map_err(|e| format!("--duration: {e}"))?)
            }
            "--window" => o.window = value()?.parse().map_err(|e| format!("--window: {e}"))?,
            "--called" => o.called = value()?,
            "--requests" => {
                o.requests = match value()?.as_str() {
                    "calls" => Requests::Calls,
                    "features" => Requests::Features,
                    "relayed" => Requests::Relayed,
                    other => return Err(format!("--requests: calls, features or relayed, not {other:?}")),
                }
            }
            "--json" => o.json = true,
            "--write-lines" => {
                let n: usize = value()?.parse().map_err(|e| format!("--write-lines: {e}"))?;
                let dir = args.next().ok_or("--write-lines needs N and a folder")?;
                write_lines(n, &dir).map_err(|e| format!("{dir}: {e}"))?;
                return Ok(None);
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.users == 0 || o.window == 0 {
        return Err("--users and --window must be at least 1".into());
    }
    Ok(Some(o))
}

/// What the signed-in users ask, over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requests {
    /// MakeCall, HoldCall, RetrieveCall, ClearConnection on a monitored line.
    Calls,
    /// GetCSTAFeatures, answered by the gateway itself.
    Features,
    /// GetDoNotDisturb, answered by the user's node.
    Relayed,
}

/// Where a user is in its cycle: the next request it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Invite,
    Monitor,
    Features,
    Relayed,
    MakeCall,
    Hold,
    Retrieve,
    Clear,
    Bye,
    Done,
}

struct User {
    index: usize,
    call_id: String,
    gw_tag: String,
    cseq: u32,
    step: Step,
    /// The request in flight: its CSeq and when it went out.
    in_flight: Option<(u32, Instant)>,
    /// The call being driven, from the MakeCall response.
    call: String,
    /// Over UDP: the request in flight, and when to send it again
    /// (RFC 3261 Timer A/E: 500 ms, doubling up to 4 s).
    last: Vec<u8>,
    retransmit: Option<(Instant, Duration)>,
    /// Dialogs this user has had (a BYE from the gateway starts another).
    generation: u32,
    /// Requests of this user refused (CSTA or SIP error).
    refused: u64,
}

/// Requests of one kind: answered, refused (CSTA error or SIP error), lost.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    csta_errors: u64,
    sip_errors: u64,
    lost: u64,
}

struct Link {
    udp: Option<UdpSocket>,
    tcp: Option<(TcpStream, Box<StreamBuffer<65536>>)>,
    gateway: SocketAddr,
    local: SocketAddr,
}

impl Link {
    fn open(gateway: SocketAddr, tcp: bool) -> std::io::Result<Link> {
        if tcp {
            let stream = TcpStream::connect(gateway)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_millis(2)))?;
            let local = stream.local_addr()?;
            Ok(Link { udp: None, tcp: Some((stream, Box::new(StreamBuffer::new()))), gateway, local })
        } else {
            let any: SocketAddr = if gateway.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal");
            let socket = UdpSocket::bind(any)?;
            socket.connect(gateway)?;
            socket.set_read_timeout(Some(Duration::from_millis(2)))?;
            let local = socket.local_addr()?;
            Ok(Link { udp: Some(socket), tcp: None, gateway, local })
        }
    }

    fn transport(&self) -> &'static str {
        if self.tcp.is_some() { "TCP" } else { "UDP" }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match (&mut self.udp, &mut self.tcp) {
            (Some(s), _) => s.send(bytes).map(drop),
            (_, Some((s, _))) => s.write_all(bytes),
            _ => unreachable!("one of the two"),
        }
    }

    /// The messages that arrived, within about 2 ms.
    fn receive(&mut self, into: &mut Vec<Vec<u8>>) -> std::io::Result<()> {
        let timed_out =
            |e: &std::io::Error| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
        match (&mut self.udp, &mut self.tcp) {
            (Some(s), _) => {
                // Wait up to 2 ms for the first datagram, then take what else is there.
                let mut buf = [0u8; 65536];
                match s.recv(&mut buf) {
                    Ok(n) => into.push(buf[..n].to_vec()),
                    Err(e) if timed_out(&e) => return Ok(()),
                    Err(e) => return Err(e),
                }
                s.set_nonblocking(true)?;
                let drained = loop {
                    match s.recv(&mut buf) {
                        Ok(n) => into.push(buf[..n].to_vec()),
                        Err(e) if timed_out(&e) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                s.set_nonblocking(false)?;
                drained
            }
            (_, Some((s, framer))) => {
                // Wait up to 2 ms for bytes, then read all there are, so the
                // gateway's transmit buffer never fills on our account.
                let mut waited = false;
                let result = loop {
                    match s.read(framer.spare()) {
                        Ok(0) => break Err(std::io::Error::other("the gateway closed the connection")),
                        Ok(n) => framer.filled(n),
                        Err(e) if timed_out(&e) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                    while let Some(frame) = framer.next(65536).map_err(std::io::Error::other)? {
                        if let Frame::Message(m) = frame {
                            into.push(m.as_bytes().to_vec());
                        }
                    }
                    if !waited {
                        waited = true;
                        s.set_nonblocking(true)?;
                    }
                };
                if waited {
                    s.set_nonblocking(false)?;
                }
                result
            }
            _ => unreachable!("one of the two"),
        }
    }
}

struct Load {
    o: Options,
    link: Link,
    users: Vec<User>,
    by_call_id: HashMap<String, usize>,
    tallies: HashMap<&'static str, Tally>,
    in_flight: usize,
    events: u64,
    /// Calls cleared (user, call id) whose ConnectionClearedEvent has not
    /// come (yet).
    awaiting_cleared: HashSet<(usize, String)>,
    /// ConnectionClearedEvents that came before the answer to their
    /// ClearConnection (events and answers travel independently).
    cleared_early: HashSet<(usize, String)>,
    branch: u64,
    retransmissions: u64,
    /// ACKs sent again for a retransmitted 200.
    acks_repeated: u64,
    /// Sessions the gateway ended with BYE.
    ended_by_gateway: u64,
    /// Each user's first Call-ID; later dialogs add `~generation`.
    base_call_ids: Vec<String>,
    /// How long refusals took to come back.
    refusal_latencies_us: Vec<u64>,
}

impl Load {
    fn request(&mut self, u: usize, method: &str, body: &str) -> std::io::Result<()> {
        self.request_with(u, method, body, None)
    }

    /// A request of user `u`; an ACK takes the CSeq of the INVITE it
    /// acknowledges (`ack_of`), the current one if `None`.
    fn request_with(&mut self, u: usize, method: &str, body: &str, ack_of: Option<u32>) -> std::io::Result<()> {
        self.branch += 1;
        let (user, _, _) = load_user(self.users[u].index);
        let link = &self.link;
        let usr = &mut self.users[u];
        if method != "ACK" {
            usr.cseq += 1;
        }
        let to_tag = if usr.gw_tag.is_empty() { String::new() } else { format!(";tag={}", usr.gw_tag) };
        let content = if body.is_empty() { "" } else { "Content-Type: application/csta+xml\r\n" };
        // The INVITE in a Lync pool's shapes (see tests/common/sipp.rs for
        // the sources): the client's GRUU as Contact and the Record-Route
        // of the Front End it came through, with its signature and tag,
        // so the gateway keeps what a real session costs.
        let (l, tl) = (link.local, link.transport().to_lowercase());
        let (contact, record_route) = if method == "INVITE" {
            (
                format!("<{user};opaque=user:epid:{:022x}AA;gruu>", usr.index * 7919),
                format!(
                    "Record-Route: <sip:{l};transport={tl};ms-fe=FE-01.corp.example.com;opaque=state:F:Ci.R{:x};lr;\
                     ms-route-sig=fi{:040x}AA>;ms-rrsig=fi{:038x}AA;tag={:032X}\r\n",
                    usr.index,
                    usr.index * 104_729,
                    usr.index * 1_299_709,
                    usr.index * 15_485_863,
                ),
            )
        } else {
            (format!("<sip:load@{l};transport={tl}>"), String::new())
        };
        let text = format!(
            "{method} sip:ctigw@{gw} SIP/2.0\r\nVia: SIP/2.0/{t} {l};branch=z9hG4bKload{b}\r\nMax-Forwards: 70\r\n\
             From: <{user}>;tag=l{i}\r\nTo: <sip:ctigw@{gw}>{to_tag}\r\nCall-ID: {c}\r\nCSeq: {cs} {method}\r\n\
             {record_route}Contact: {contact}\r\n{content}Content-Length: {len}\r\n\r\n{body}",
            gw = link.gateway,
            t = link.transport(),
            b = self.branch,
            i = usr.index,
            c = usr.call_id,
            cs = ack_of.unwrap_or(usr.cseq),
            len = body.len(),
        );
        if method != "ACK" {
            usr.in_flight = Some((usr.cseq, Instant::now()));
            self.in_flight += 1;
            if self.link.udp.is_some() {
                usr.last = text.clone().into_bytes();
                usr.retransmit = Some((Instant::now() + T1, T1));
            }
        }
        self.link.send(text.as_bytes())
    }

    fn step_request(&mut self, u: usize) -> std::io::Result<()> {
        let (_, _, line) = load_user(self.users[u].index);
        let call = self.users[u].call.clone();
        let conn = |tag: &str| format!("<{tag}><callID>{call}</callID><deviceID>{line}</deviceID></{tag}>");
        match self.users[u].step {
            Step::Invite => {
                let body = format!("<RequestSystemStatus xmlns=\"{NS}\"/>");
                self.request(u, "INVITE", &body)
            }
            Step::Monitor => {
                let body = format!(
                    "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>{line}</deviceObject></monitorObject></MonitorStart>"
                );
                self.request(u, "INFO", &body)
            }
            Step::Features => self.request(u, "INFO", &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>")),
            Step::Relayed => self.request(
                u,
                "INFO",
                &format!("<GetDoNotDisturb xmlns=\"{NS}\"><device>{line}</device></GetDoNotDisturb>"),
            ),
            Step::MakeCall => {
                let body = format!(
                    "<MakeCall xmlns=\"{NS}\"><callingDevice>{line}</callingDevice><calledDirectoryNumber>{}</calledDirectoryNumber></MakeCall>",
                    self.o.called
                );
                self.request(u, "INFO", &body)
            }
            Step::Hold => {
                self.request(u, "INFO", &format!("<HoldCall xmlns=\"{NS}\">{}</HoldCall>", conn("callToBeHeld")))
            }
            Step::Retrieve => self.request(
                u,
                "INFO",
                &format!("<RetrieveCall xmlns=\"{NS}\">{}</RetrieveCall>", conn("callToBeRetrieved")),
            ),
            Step::Clear => self.request(
                u,
                "INFO",
                &format!("<ClearConnection xmlns=\"{NS}\">{}</ClearConnection>", conn("connectionToBeCleared")),
            ),
            Step::Bye => self.request(u, "BYE", ""),
            Step::Done => Ok(()),
        }
    }

    fn kind(step: Step) -> &'static str {
        match step {
            Step::Invite => "INVITE",
            Step::Monitor => "MonitorStart",
            Step::Features => "GetCSTAFeatures",
            Step::Relayed => "GetDoNotDisturb",
            Step::MakeCall => "MakeCall",
            Step::Hold => "HoldCall",
            Step::Retrieve => "RetrieveCall",
            Step::Clear => "ClearConnection",
            Step::Bye => "BYE",
            Step::Done => "-",
        }
    }

    /// Handles one message from the gateway.
    fn handle(&mut self, bytes: &[u8], running: bool) -> std::io::Result<()> {
        let Ok(m) = Message::parse(bytes) else { return Ok(()) };
        let Ok(call_id) = m.call_id() else { return Ok(()) };
        let Some(&u) = self.by_call_id.get(call_id) else { return Ok(()) };
        if m.method().is_some() {
            // An event INFO (or the gateway's BYE): answered at once.
            if let Ok(doc) = csta::parse(m.body()) {
                if let Csta::Event(Event::Call(e)) = doc.message {
                    self.events += 1;
                    if e.kind.name() == "ConnectionClearedEvent" {
                        if let Some(call) = e.connection.call {
                            let key = (u, call.to_string());
                            if !self.awaiting_cleared.remove(&key) {
                                self.cleared_early.insert(key);
                            }
                        }
                    }
                } else if let Csta::Event(_) = doc.message {
                    self.events += 1;
                }
            }
            let mut buf = vec![0u8; 4096];
            let ok = ctigw::sip::MessageWriter::response_to(&mut buf, &m, 200, "OK", None, None)
                .and_then(|w| w.finish())
                .map_err(std::io::Error::other)?
                .to_vec();
            if m.method() == Some(ctigw::sip::Method::Bye) {
                // The gateway ended the session (its node came back with a
                // new connection, or it is stopping): Lync signs in again
                // in a new dialog.
                self.ended_by_gateway += 1;
                let user = &mut self.users[u];
                if user.in_flight.take().is_some() {
                    self.in_flight -= 1;
                }
                user.retransmit = None;
                user.generation += 1;
                let fresh = format!("{}~{}", self.base_call_ids[u], user.generation);
                user.call_id = fresh.clone();
                user.gw_tag.clear();
                user.cseq = 0;
                if user.step != Step::Done {
                    user.step = Step::Invite;
                }
                self.by_call_id.insert(fresh, u);
            }
            return self.link.send(&ok);
        }
        let Some(status) = m.status_code() else { return Ok(()) };
        let Ok(cseq) = m.cseq() else { return Ok(()) };
        // A 2xx to an INVITE already answered: our ACK was lost, and the
        // gateway retransmits its 200 until one arrives (RFC 3261 13.2.2.4).
        if (200..300).contains(&status)
            && cseq.method == "INVITE"
            && self.users[u].in_flight.is_none_or(|(want, _)| want != cseq.number)
        {
            self.acks_repeated += 1;
            return self.request_with(u, "ACK", "", Some(cseq.number));
        }
        let Some((want, sent)) = self.users[u].in_flight else { return Ok(()) };
        if cseq.number != want || status < 200 {
            return Ok(());
        }
        self.users[u].in_flight = None;
        self.users[u].retransmit = None;
        self.in_flight -= 1;
        let step = self.users[u].step;
        let tally = self.tallies.entry(Load::kind(step)).or_default();
        let answer = csta::parse(m.body()).ok().map(|d| d.message);
        let refused = status >= 300 || matches!(answer, Some(Csta::Error(_)));
        if refused && tally.csta_errors + tally.sip_errors < 3 && std::env::var_os("CTIGW_LOAD_VERBOSE").is_some() {
            eprintln!("{} refused: {}", Load::kind(step), String::from_utf8_lossy(bytes));
        }
        if refused {
            self.users[u].refused += 1;
            self.refusal_latencies_us.push(sent.elapsed().as_micros() as u64);
        }
        if status >= 300 {
            tally.sip_errors += 1;
        } else if refused {
            tally.csta_errors += 1;
        } else {
            tally.latencies_us.push(sent.elapsed().as_micros() as u64);
        }
        if step == Step::Invite {
            if !refused {
                self.users[u].gw_tag = m.to().ok().and_then(|t| t.tag()).unwrap_or("").to_string();
            }
            self.request(u, "ACK", "")?;
        }
        let user = &mut self.users[u];
        user.step = match (step, refused) {
            (Step::Invite, false) if self.o.requests == Requests::Features => Step::Features,
            (Step::Invite, false) if self.o.requests == Requests::Relayed => Step::Relayed,
            (Step::Invite, false) => Step::Monitor,
            (Step::Features, _) => Step::Features,
            (Step::Relayed, _) => Step::Relayed,
            (Step::Invite, true) => Step::Done,
            (Step::Monitor, _) => Step::MakeCall,
            (Step::MakeCall, false) => {
                if let Some(Csta::Response(Response::Call { call, .. })) = answer {
                    user.call = call.call.map(|c| c.to_string()).unwrap_or_default();
                }
                Step::Hold
            }
            (Step::MakeCall, true) => Step::MakeCall,
            (Step::Hold, _) => Step::Retrieve,
            (Step::Retrieve, _) => Step::Clear,
            (Step::Clear, refused) => {
                if !refused {
                    let key = (u, user.call.clone());
                    if !self.cleared_early.remove(&key) {
                        self.awaiting_cleared.insert(key);
                    }
                }
                Step::MakeCall
            }
            (Step::Bye, _) | (Step::Done, _) => Step::Done,
        };
        if !running && user.step != Step::Done && user.step != Step::Invite {
            user.step = Step::Bye;
        }
        Ok(())
    }

    /// Over UDP, requests still unanswered are sent again.
    fn retransmit(&mut self, now: Instant) -> std::io::Result<()> {
        for u in 0..self.users.len() {
            if let Some((at, interval)) = self.users[u].retransmit {
                if at <= now {
                    let next = (interval * 2).min(Duration::from_secs(4));
                    self.users[u].retransmit = Some((now + next, next));
                    self.retransmissions += 1;
                    let bytes = std::mem::take(&mut self.users[u].last);
                    self.link.send(&bytes)?;
                    self.users[u].last = bytes;
                }
            }
        }
        Ok(())
    }

    /// Requests unanswered for too long: counted lost; the user moves on.
    fn expire(&mut self, now: Instant) {
        for u in 0..self.users.len() {
            if let Some((_, sent)) = self.users[u].in_flight {
                if now.duration_since(sent) > LOST_AFTER {
                    let step = self.users[u].step;
                    self.tallies.entry(Load::kind(step)).or_default().lost += 1;
                    self.users[u].in_flight = None;
                    self.users[u].retransmit = None;
                    self.in_flight -= 1;
                    self.users[u].step = match step {
                        Step::Invite | Step::Bye => Step::Done,
                        Step::Monitor | Step::Clear => Step::MakeCall,
                        other => other,
                    };
                }
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn run(o: Options) -> Result<bool, String> {
    let link = Link::open(o.gateway, o.tcp).map_err(|e| format!("cannot reach {}: {e}", o.gateway))?;
    let pid = std::process::id();
    let users: Vec<User> = (0..o.users)
        .map(|index| User {
            index,
            call_id: format!("load-{pid}-{index}@{}", link.local),
            gw_tag: String::new(),
            cseq: 0,
            step: Step::Invite,
            in_flight: None,
            call: String::new(),
            last: Vec::new(),
            retransmit: None,
            generation: 0,
            refused: 0,
        })
        .collect();
    let by_call_id = users.iter().enumerate().map(|(i, u)| (u.call_id.clone(), i)).collect();
    let mut load = Load {
        o,
        link,
        users,
        by_call_id,
        tallies: HashMap::new(),
        in_flight: 0,
        events: 0,
        awaiting_cleared: HashSet::new(),
        cleared_early: HashSet::new(),
        branch: 0,
        retransmissions: 0,
        acks_repeated: 0,
        ended_by_gateway: 0,
        base_call_ids: Vec::new(),
        refusal_latencies_us: Vec::new(),
    };
    load.base_call_ids = load.users.iter().map(|u| u.call_id.clone()).collect();
    let started = Instant::now();
    let mut storm_done: Option<Duration> = None;
    let mut calls_started: Option<Instant> = None;
    let mut sent_in_calls = 0u64;
    let mut next = 0usize;
    let mut inbox = Vec::new();
    let mut stopping_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let signing_in = storm_done.is_none();
        if !signing_in
            && stopping_at.is_none()
            && calls_started.is_some_and(|t| now.duration_since(t) >= load.o.duration)
        {
            stopping_at = Some(now);
            for u in &mut load.users {
                if u.in_flight.is_none() && !matches!(u.step, Step::Done | Step::Invite) {
                    u.step = Step::Bye;
                }
            }
        }
        let running = stopping_at.is_none();
        // Send what the window and the rate allow, round robin over users.
        let mut budget = load.users.len();
        while load.in_flight < load.o.window && budget > 0 {
            budget -= 1;
            let u = next;
            next = (next + 1) % load.users.len();
            let user = &load.users[u];
            if user.in_flight.is_some() || user.step == Step::Done {
                continue;
            }
            let in_calls = matches!(
                user.step,
                Step::Features | Step::Relayed | Step::MakeCall | Step::Hold | Step::Retrieve | Step::Clear
            );
            if signing_in && in_calls {
                continue; // everyone signs in before the calls start
            }
            if in_calls && running && load.o.rate > 0.0 {
                let elapsed = calls_started.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
                if sent_in_calls as f64 >= elapsed * load.o.rate {
                    break;
                }
            }
            if in_calls && !running {
                continue;
            }
            // Sign out once the last call's ConnectionClearedEvent is in
            // (events come in order), or 2 s after the load ended.
            let waiting_for_events = stopping_at.is_some_and(|at| now.duration_since(at) < Duration::from_secs(2));
            if user.step == Step::Bye && waiting_for_events && load.awaiting_cleared.contains(&(u, user.call.clone())) {
                continue;
            }
            if in_calls {
                sent_in_calls += 1;
            }
            load.step_request(u).map_err(|e| format!("send: {e}"))?;
        }
        inbox.clear();
        load.link.receive(&mut inbox).map_err(|e| format!("receive: {e}"))?;
        for bytes in std::mem::take(&mut inbox) {
            load.handle(&bytes, running).map_err(|e| format!("send: {e}"))?;
        }
        load.retransmit(Instant::now()).map_err(|e| format!("send: {e}"))?;
        load.expire(Instant::now());
        if signing_in
            && load.users.iter().all(|u| u.in_flight.is_none() && !matches!(u.step, Step::Invite | Step::Monitor))
        {
            storm_done = Some(started.elapsed());
            calls_started = Some(Instant::now());
        }
        if let Some(at) = stopping_at {
            let all_out = load.users.iter().all(|u| u.step == Step::Done && u.in_flight.is_none());
            // Give the last ConnectionClearedEvents a moment to arrive.
            if all_out && (load.awaiting_cleared.is_empty() || at.elapsed() > Duration::from_secs(2)) {
                break;
            }
            if at.elapsed() > LOST_AFTER * 3 {
                break;
            }
        }
    }
    let calls_time = stopping_at.zip(calls_started).map_or(0.0, |(s, c)| s.duration_since(c).as_secs_f64());
    let signed_in = load.tallies.get("INVITE").map_or(0, |t| t.latencies_us.len());
    let mut all: Vec<u64> = Vec::new();
    let mut lost = 0;
    let mut refused = 0;
    let mut kinds = Vec::new();
    for (kind, t) in &mut load.tallies {
        t.latencies_us.sort_unstable();
        lost += t.lost;
        refused += t.csta_errors + t.sip_errors;
        if matches!(
            *kind,
            "GetCSTAFeatures" | "GetDoNotDisturb" | "MakeCall" | "HoldCall" | "RetrieveCall" | "ClearConnection"
        ) {
            all.extend_from_slice(&t.latencies_us);
        }
        kinds.push(format!(
            "\"{kind}\":{{\"ok\":{},\"csta_errors\":{},\"sip_errors\":{},\"lost\":{},\"p50_us\":{},\"p99_us\":{}}}",
            t.latencies_us.len(),
            t.csta_errors,
            t.sip_errors,
            t.lost,
            percentile(&t.latencies_us, 0.5),
            percentile(&t.latencies_us, 0.99)
        ));
    }
    kinds.sort();
    all.sort_unstable();
    load.refusal_latencies_us.sort_unstable();
    let storm_ms = storm_done.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    // Whose calls still lack their ConnectionClearedEvent, each user once.
    let cleared_missing_users: std::collections::BTreeSet<usize> =
        load.awaiting_cleared.iter().map(|(u, _)| *u).collect();
    let rate = if calls_time > 0.0 { all.len() as f64 / calls_time } else { 0.0 };
    let json = format!(
        "{{\"users\":{},\"signed_in\":{signed_in},\"storm_ms\":{storm_ms:.1},\"call_requests_ok\":{},\"call_seconds\":{calls_time:.3},\
         \"rate_per_s\":{rate:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"refused\":{refused},\"lost\":{lost},\
         \"events\":{},\"cleared_events_missing\":{},\"cleared_missing_users\":[{}],\"retransmissions\":{},\"acks_repeated\":{},\"ended_by_gateway\":{},\
         \"refusal_p99_us\":{},\"refused_users\":[{}],\"kinds\":{{{}}}}}",
        load.users.len(),
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.last().copied().unwrap_or(0),
        load.events,
        load.awaiting_cleared.len(),
        cleared_missing_users.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
        load.retransmissions,
        load.acks_repeated,
        load.ended_by_gateway,
        percentile(&load.refusal_latencies_us, 0.99),
        load.users.iter().filter(|u| u.refused > 0).map(|u| u.index.to_string()).collect::<Vec<_>>().join(","),
        kinds.join(",")
    );
    if load.o.json {
        println!("{json}");
    } else {
        println!(
            "{signed_in}/{} users signed in in {storm_ms:.1} ms; {} call requests answered in {calls_time:.1} s \
             ({rate:.0}/s): p50 {} us, p99 {} us, p99.9 {} us; {refused} refused, {lost} lost; {} events, \
             {} ConnectionClearedEvents missing",
            load.users.len(),
            all.len(),
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 0.999),
            load.events,
            load.awaiting_cleared.len()
        );
    }
    Ok(lost == 0)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ctigw-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ctigw-load: {e}");
            ExitCode::from(1)
        }
    }
}
