//! The sans-I/O gateway driven by a sequence of operations decoded from
//! the input: SIP from Lync (structured dialogs and raw bytes, over UDP
//! and TCP), CTI frames and link events from the nodes (the simulator
//! behind slot 0, a scripted node behind slot 1), the time, TCP closes,
//! reloads and a shutdown. After every operation the tables must agree
//! with the counters; every message the gateway writes must parse; at the
//! end every session must be gone and the gateway drained (no leak).
//!
//! The input format (see `fuzz/seeds/gateway.py`, which writes the seeds):
//! three header bytes, then operations of one opcode byte and their
//! arguments; a missing argument byte reads as zero. `GATEWAY_FUZZ_TRACE=1`
//! prints the decoded operations (for reading a crash).
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ctigw::config::Cidr;
use ctigw::csta;
use ctigw::cti::frame::{self, InvokeId};
use ctigw::cti::{LinkAction, LinkEvent, MAX_OUTSTANDING, NodeConfig, Nodes, Protocol, SessionMode, SlotId, Timing};
use ctigw::outbuf::OutBuf;
use ctigw::rcc::appearances::Appearances;
use ctigw::rcc::session::MAX_MONITORS;
use ctigw::rcc::{ConnId, Gateway, GatewayConfig, Peer, Transport};
use ctigw::rig::{Direct, Rig, SimNode};
use ctigw::sim::node::{Faults, Node};
use ctigw::sim::switch::{Outside, Switch};
use ctigw::sip::{self, Frame, Message, MessageWriter, Method, StreamBuffer};
use libfuzzer_sys::fuzz_target;

const LINES: &str = include_str!("../../config/lines.conf");
const SIM_LINES: &str = include_str!("../../config/sim-lines.conf");
const ED3: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
const ED4: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed4";
const APP: &str = "http://www.ecma-international.org/standards/ecma-354/appl_session";
/// RFC 3261 T1 and the transaction timeout 64*T1.
const T1: u64 = 500;
const TIMER_F: u64 = 64 * T1;
/// The largest body the SIP shell frames on TCP (io::sip::MAX_BODY).
const MAX_BODY: usize = 8 * 1024;
const TCP_RECEIVE: usize = 16 * 1024;
/// Dialogs the harness keeps (Lync's side).
const DIALOGS: usize = 6;

fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("GATEWAY_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if trace() {
            eprintln!($($arg)*);
        }
    };
}

// ----- the input -----

struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A length byte, then that many bytes (fewer at the end of input).
    fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = usize::from(self.u16()) % (max + 1);
        let start = self.at.min(self.data.len());
        let end = (start + len).min(self.data.len());
        self.at = start + len;
        &self.data[start..end]
    }
}

// ----- Lync's side -----

const USERS: [&str; 7] = [
    "sip:alice@example.com",
    "sip:bob@example.com",
    "sip:carol@example.com",
    "sip:dave@example.com",
    "sip:eve@example.com",
    "sip:ALICE@Example.com",
    "sip:bob@example.com;user=phone",
];

/// The user's own line, extension and device (from config/lines.conf).
fn own(user: &str) -> (&'static str, &'static str, &'static str) {
    let u = user.to_ascii_lowercase();
    if u.contains("alice") {
        ("tel:+14255550101;ext=101", "tel:101", "SEPA1B2C3D4E5F6")
    } else if u.contains("bob") {
        ("tel:+14255550102;ext=102", "tel:102", "SEPB1B2C3D4E5F6")
    } else if u.contains("carol") {
        ("tel:+14255550103;ext=103", "tel:103", "SEPC1B2C3D4E5F6")
    } else if u.contains("dave") {
        ("tel:+14255550199;ext=199", "tel:199", "SEPD1B2C3D4E5F6")
    } else {
        ("tel:+14255550100", "tel:100", "SEP000000000000")
    }
}

const DEVICES: [&str; 10] = [
    "tel:+14255550102;ext=102",
    "tel:102",
    "tel:199",
    "tel:+14255550199;ext=199",
    "SEPB1B2C3D4E5F6",
    "tel:+14255558888",
    "tel:103",
    "",
    "tel:&amp;101",
    "tel:+14255550101;ext=101",
];

const NUMBERS: [&str; 8] = [
    "tel:+14255559876",
    "tel:102",
    "tel:+14255550102;ext=102",
    "tel:199",
    "tel:101",
    "sip:someone@example.com",
    "tel:+1",
    "tel:103",
];

/// Where Lync sends from: the pool over UDP, over one of two TCP
/// connections, or an untrusted host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Udp,
    Tcp(usize),
    Untrusted,
}

const VIAS: [Via; 4] = [Via::Udp, Via::Tcp(0), Via::Tcp(1), Via::Untrusted];

#[derive(Debug, Clone)]
struct Dialog {
    user: &'static str,
    call_id: String,
    tag: String,
    gw_tag: Option<String>,
    cseq: u32,
    branch: String,
    via: Via,
    /// Generation: a new dialog in the same slot gets a new Call-ID.
    generation: u32,
}

// ----- the nodes -----

#[derive(Default)]
struct ScriptedSlot {
    connect_requested: bool,
    /// Requests the gateway sent: invoke id and root element.
    outstanding: Vec<(u16, String)>,
    /// Bytes the gateway wrote, not yet a whole frame.
    rx: Vec<u8>,
}

/// Where the gateway sent a request (an event INFO or a BYE).
struct GwRequest {
    to: Peer,
    bytes: Vec<u8>,
}

struct World {
    /// The gateway, the simulator behind slot 0 and the scripted node
    /// behind slot 1 (`ctigw::rig`); the fault layer holds and stalls
    /// their links, and the rig hands back what may wait for the TCP
    /// connections whose transmit buffers are full.
    rig: Rig,
    nodes: usize,
    scripted: ScriptedSlot,
    dialogs: Vec<Option<Dialog>>,
    gw_requests: Vec<GwRequest>,
    auto_answer: bool,
    /// The two TCP connections: their current id and framer.
    tcp: [(ConnId, Option<Box<StreamBuffer<TCP_RECEIVE>>>); 2],
    closed_conns: BTreeSet<u32>,
    xrefs: Vec<String>,
    call_ids: Vec<String>,
    /// The last SIP bytes Lync sent, and how (for retransmissions).
    last_sent: Option<(Via, Vec<u8>)>,
    branches: u32,
    shut: Option<u64>,
    /// Every dialog Lync opened: Call-ID and Lync's tag.
    lync_dialogs: BTreeSet<(String, String)>,
    /// The gateway's requests by branch (retransmissions are identical),
    /// and the last CSeq of each of its dialogs (Call-ID, gateway tag).
    gw_branches: BTreeMap<String, Vec<u8>>,
    gw_cseqs: BTreeMap<(String, String), u32>,
}

fn switch() -> Switch {
    let lines: Vec<(String, String)> = ctigw::lines::parse(SIM_LINES)
        .map(|a| a.expect("sim-lines.conf parses"))
        .map(|a| (a.line.to_string(), a.device.to_string()))
        .collect();
    Switch::new(lines.iter().map(|(l, d)| (l.as_str(), d.as_str())), Outside::Answer(Duration::from_millis(1000)))
}

fn appearances(variant: usize) -> Appearances {
    let text = match variant {
        0 => LINES.to_string(),
        // alice is gone from the file
        1 => LINES.lines().filter(|l| !l.contains("alice")).collect::<Vec<_>>().join("\n"),
        // alice moves to bob's line as well
        _ => format!("{LINES}\nsip:alice@example.com SEPA1B2C3D4E5F6 tel:+14255550102;ext=102\n"),
    };
    Appearances::parse(&text).ok().expect("the line appearances parse")
}

fn trusted(variant: usize) -> Vec<Cidr> {
    match variant {
        0 => vec![Cidr { addr: "127.0.0.1".parse().unwrap(), prefix: 32 }],
        1 => vec![],
        _ => vec![Cidr { addr: "0.0.0.0".parse().unwrap(), prefix: 0 }],
    }
}

fn is_csta(m: &Message<'_>) -> bool {
    m.content_type().ok().flatten().is_some_and(|t| t.is("application", "csta+xml"))
}

/// The texts of every `<name>...</name>` in `body`.
fn texts_of<'b>(body: &'b str, name: &str) -> Vec<&'b str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(&rest[..j]);
        rest = &rest[j..];
    }
    out
}

fn remember(list: &mut Vec<String>, item: &str) {
    if item.is_empty() || item.len() > 40 || list.iter().any(|x| x == item) {
        return;
    }
    if list.len() == 8 {
        list.remove(0);
    }
    list.push(item.to_string());
}

/// SIP text with CR LF line ends and a computed Content-Length.
fn sip_text(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = head.trim().replace('\n', "\r\n");
    write!(out, "\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

impl World {
    fn new(input: &mut Input<'_>) -> World {
        let flags = input.byte();
        let sizes = input.byte();
        let more = input.byte();
        let nodes = if flags & 1 != 0 { 2 } else { 1 };
        let timing = Timing {
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_misses: 2,
            reconnect_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        };
        let mode = |bit: u8| if flags & bit != 0 { SessionMode::SystemStatus } else { SessionMode::Ecma354 };
        let configs: Vec<NodeConfig> = (0..nodes)
            .map(|i| NodeConfig {
                addr: format!("127.0.0.1:{}", 7001 + i).parse().unwrap(),
                protocol: Protocol::CstaXml(mode(if i == 0 { 0x10 } else { 0x20 })),
            })
            .collect();
        let node_table = Nodes::new(timing, &configs).ok().expect("two nodes fit");
        let mut config = GatewayConfig::new("gw.example.com", 5060, trusted(0));
        config.sessions = 1 + usize::from(sizes & 3);
        config.pending = [1, 2, 4, 16][usize::from(sizes >> 2 & 3)];
        config.client_transactions = [1, 2, 8, 32][usize::from(sizes >> 4 & 3)];
        config.completed = [1, 2, 8, 32][usize::from(sizes >> 6 & 3)];
        // The BYE of an ending session waits for two free places in the
        // outgoing queue: a queue of one would never send it.
        config.out_queue = [2, 3, 8, 16][usize::from(more & 3)];
        config.message_size = if flags & 0x40 != 0 { 2048 } else { 8192 };
        trace!(
            "config: nodes {nodes}, sessions {}, pending {}, client {}, completed {}, out {}, message {}",
            config.sessions,
            config.pending,
            config.client_transactions,
            config.completed,
            config.out_queue,
            config.message_size
        );
        let now = Instant::now();
        let gw = Gateway::new(now, config, appearances(0), node_table);
        // Slot 1's node is played by the harness: the rig's simulator there
        // only stands in.
        let sim_nodes = (0..nodes)
            .map(|i| SimNode { scripted: i == 1, ..SimNode::new(Node::new(switch(), Faults::default())) })
            .collect();
        let rig = Rig::with_nodes(now, gw, sim_nodes, Direct);
        let mut world = World {
            rig,
            nodes,
            scripted: ScriptedSlot::default(),
            dialogs: vec![None; DIALOGS],
            gw_requests: Vec::new(),
            auto_answer: flags & 2 != 0,
            tcp: [(ConnId(1), Some(Box::new(StreamBuffer::new()))), (ConnId(2), Some(Box::new(StreamBuffer::new())))],
            closed_conns: BTreeSet::new(),
            xrefs: Vec::new(),
            call_ids: Vec::new(),
            last_sent: None,
            branches: 0,
            shut: None,
            lync_dialogs: BTreeSet::new(),
            gw_branches: BTreeMap::new(),
            gw_cseqs: BTreeMap::new(),
        };
        world.pump();
        world.check();
        world
    }

    fn slot(i: usize) -> SlotId {
        SlotId::new(i).expect("a slot")
    }

    fn peer(&self, via: Via) -> Peer {
        match via {
            Via::Udp => Peer { addr: "127.0.0.1:5070".parse().unwrap(), transport: Transport::Udp },
            Via::Tcp(i) => Peer {
                addr: format!("127.0.0.1:{}", 5071 + i).parse().unwrap(),
                transport: Transport::Tcp(self.tcp[i].0),
            },
            Via::Untrusted => Peer { addr: "192.0.2.66:5060".parse().unwrap(), transport: Transport::Udp },
        }
    }

    // ----- moving bytes -----

    /// Moves CTI bytes, link actions and SIP messages until nothing moves:
    /// the rig's pump, then what it collected for the harness (the
    /// scripted node's link actions and bytes, the gateway's SIP, checked
    /// as it comes).
    fn pump(&mut self) {
        for _ in 0..10_000 {
            self.rig.pump();
            let mut moved = false;
            if self.nodes > 1 {
                for action in std::mem::take(&mut self.rig.nodes[1].actions) {
                    moved = true;
                    trace!("  cti action {action:?}");
                    self.scripted.connect_requested = matches!(action, LinkAction::Connect { .. });
                    self.scripted.outstanding.clear();
                    self.scripted.rx.clear();
                }
                let written = std::mem::take(&mut self.rig.nodes[1].written);
                if !written.is_empty() {
                    moved = true;
                    self.scripted_read(&written);
                }
            }
            for (to, bytes) in std::mem::take(&mut self.rig.sent) {
                moved = true;
                self.sent_by_gateway(to, bytes);
            }
            if self.auto_answer && !self.gw_requests.is_empty() {
                moved = true;
                for r in std::mem::take(&mut self.gw_requests) {
                    self.answer(&r, 200);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the world does not settle");
    }

    /// What the gateway wrote to the scripted node: its requests.
    fn scripted_read(&mut self, bytes: &[u8]) {
        if !self.scripted.connect_requested {
            return;
        }
        self.scripted.rx.extend_from_slice(bytes);
        loop {
            let (id, root, used) = match frame::decode(&self.scripted.rx, frame::MAX_FRAME_LEN) {
                Ok(sip::Status::Complete((f, used))) => {
                    if let Err(e) = csta::parse(f.body) {
                        panic!("the gateway wrote a CSTA document that does not parse ({e}): {:?}", lossy(f.body));
                    }
                    let text = String::from_utf8_lossy(f.body);
                    let root = text
                        .split('<')
                        .map(|t| t.trim_start_matches('?'))
                        .find(|t| !t.is_empty() && !t.starts_with("xml"))
                        .map(|t| t.split([' ', '>', '/']).next().unwrap_or("").to_string())
                        .unwrap_or_default();
                    (f.invoke_id.get(), root, used)
                }
                Ok(sip::Status::Partial) => return,
                Err(e) => panic!("the gateway's CTI bytes do not frame: {e}"),
            };
            self.scripted.rx.drain(..used);
            trace!("  scripted node got {id:04} {root}");
            if self.scripted.outstanding.len() == 2 * MAX_OUTSTANDING {
                self.scripted.outstanding.remove(0);
            }
            self.scripted.outstanding.push((id, root));
        }
    }

    /// One message the gateway sent towards Lync: it must parse; a CSTA
    /// body must parse; requests are kept to be answered.
    fn sent_by_gateway(&mut self, to: Peer, bytes: Vec<u8>) {
        if bytes == b"\r\n" {
            assert!(to.transport.is_reliable(), "a pong over UDP");
            return;
        }
        let m = match Message::parse(&bytes) {
            Ok(m) => m,
            // A response copies the request's Via, From, To, Call-ID and
            // CSeq headers: a request with a few less than MAX_HEADERS Via
            // headers gets a response with more (see the sip_message target).
            Err(sip::Error::TooManyHeaders) if bytes.starts_with(b"SIP/2.0 ") => return,
            Err(e) => panic!("the gateway wrote SIP that does not parse ({e}): {:?}", lossy(&bytes)),
        };
        trace!("  gw -> {to}: {}", lossy(&bytes[..bytes.iter().position(|&b| b == b'\r').unwrap_or(0)]));
        if is_csta(&m) {
            if let Err(e) = csta::parse(m.body()) {
                panic!("the gateway wrote a CSTA body that does not parse ({e}): {:?}", lossy(&bytes));
            }
        }
        let body = String::from_utf8_lossy(m.body()).into_owned();
        for x in texts_of(&body, "monitorCrossRefID") {
            remember(&mut self.xrefs, x);
        }
        for c in texts_of(&body, "callID") {
            remember(&mut self.call_ids, c);
        }
        if let Some(method) = m.method() {
            m.check_request().unwrap_or_else(|e| panic!("the gateway's own request fails its checks ({e})"));
            assert!(matches!(method, Method::Info | Method::Bye), "the gateway sent a {method:?}");
            self.check_own_request(&m, &bytes);
            if let Transport::Tcp(c) = to.transport {
                if self.closed_conns.contains(&c.0) {
                    return; // the shell has no such connection any more
                }
            }
            if self.gw_requests.len() == 32 {
                self.gw_requests.remove(0);
            }
            self.gw_requests.push(GwRequest { to, bytes });
            return;
        }
        // A 2xx to an INVITE: the gateway's tag of the dialog.
        let Ok(cseq) = m.cseq() else { return };
        if m.status_code().is_some_and(|c| (200..300).contains(&c)) && cseq.method == "INVITE" {
            let (Ok(call_id), Ok(from), Ok(to_header)) = (m.call_id(), m.from(), m.to()) else { return };
            for d in self.dialogs.iter_mut().flatten() {
                if d.call_id == call_id && Some(d.tag.as_str()) == from.tag() {
                    d.gw_tag = to_header.tag().map(str::to_string);
                }
            }
        }
    }

    /// The gateway's own request: in a dialog Lync opened; a
    /// retransmission is the same bytes; a new request has a higher CSeq.
    fn check_own_request(&mut self, m: &Message<'_>, bytes: &[u8]) {
        let call_id = m.call_id().expect("checked").to_string();
        let gw_tag = m.from().expect("checked").tag().expect("the gateway's tag in From").to_string();
        let lync_tag = m.to().expect("checked").tag().expect("Lync's tag in To").to_string();
        assert!(self.lync_dialogs.contains(&(call_id.clone(), lync_tag)), "a request in a dialog Lync never opened");
        let branch = m.via().expect("checked").branch().expect("a branch").to_string();
        if let Some(first) = self.gw_branches.get(&branch) {
            assert_eq!(first.as_slice(), bytes, "a retransmission differs from the first transmission");
            return;
        }
        self.gw_branches.insert(branch, bytes.to_vec());
        let cseq = m.cseq().expect("checked").number;
        let last = self.gw_cseqs.insert((call_id, gw_tag), cseq);
        assert!(last.is_none_or(|last| cseq > last), "CSeq {cseq} after {last:?} in the gateway's dialog");
    }

    /// Lync answers one of the gateway's requests.
    fn answer(&mut self, r: &GwRequest, code: u16) {
        let m = Message::parse(&r.bytes).expect("checked when it was sent");
        let mut buf = vec![0u8; 4096];
        let reason = match code {
            200 => "OK",
            481 => "Call/Transaction Does Not Exist",
            408 => "Request Timeout",
            _ => "Whatever",
        };
        let Ok(w) = MessageWriter::response_to(&mut buf, &m, code, reason, None, None) else { return };
        let Ok(bytes) = w.finish() else { return };
        let bytes = bytes.to_vec();
        trace!("  lync answers {code} to {}", lossy(&r.bytes[..r.bytes.iter().position(|&b| b == b' ').unwrap_or(0)]));
        match r.to.transport {
            Transport::Udp => self.datagram(r.to, &bytes),
            _ => {
                let Ok(sip::Status::Complete((frame, _))) = sip::next_frame(&bytes, MAX_BODY) else {
                    panic!("a response does not frame")
                };
                self.frame(r.to, frame);
            }
        }
    }

    // ----- SIP in, with the counters checked -----

    fn sip_counts(&self) -> (u64, u64) {
        (self.rig.gw.counters.requests.iter().sum(), self.rig.gw.counters.malformed)
    }

    /// Lync opens a dialog with every INVITE it sends (raw ones too).
    fn note_dialog(&mut self, m: &Message<'_>) {
        if m.method() == Some(Method::Invite) {
            if let (Ok(call_id), Some(tag)) = (m.call_id(), m.from().ok().and_then(|f| f.tag())) {
                self.lync_dialogs.insert((call_id.to_string(), tag.to_string()));
            }
        }
    }

    fn datagram(&mut self, from: Peer, bytes: &[u8]) {
        if let Ok(m) = Message::parse(bytes) {
            self.note_dialog(&m);
        }
        let before = self.sip_counts();
        self.rig.gw.handle_datagram(self.rig.now, from, bytes);
        let expected = if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
            (0, 0)
        } else {
            match Message::parse(bytes) {
                Ok(m) => (u64::from(m.method().is_some()), 0),
                Err(_) => (0, 1),
            }
        };
        self.check_sip_counts(before, expected);
    }

    fn frame(&mut self, from: Peer, frame: Frame<'_>) {
        if let Frame::Message(m) = &frame {
            self.note_dialog(m);
        }
        let before = self.sip_counts();
        let expected = match &frame {
            Frame::Message(m) => (u64::from(m.method().is_some()), 0),
            Frame::Invalid { .. } => (0, 1),
            Frame::Ping | Frame::Pong => (0, 0),
        };
        self.rig.gw.handle_frame(self.rig.now, from, frame);
        self.check_sip_counts(before, expected);
    }

    fn check_sip_counts(&self, before: (u64, u64), expected: (u64, u64)) {
        let after = self.sip_counts();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            expected,
            "requests and malformed counted once per message"
        );
    }

    /// Lync sends `bytes` the way `via` says (TCP through the framer).
    fn send(&mut self, via: Via, bytes: &[u8]) {
        self.last_sent = Some((via, bytes.to_vec()));
        let from = self.peer(via);
        match via {
            Via::Udp | Via::Untrusted => self.datagram(from, bytes),
            Via::Tcp(i) => self.tcp_bytes(i, bytes),
        }
        self.pump();
    }

    /// Bytes on TCP connection `i`, framed as the shell frames them; a
    /// framing error closes the connection.
    fn tcp_bytes(&mut self, i: usize, mut bytes: &[u8]) {
        let from = self.peer(Via::Tcp(i));
        while !bytes.is_empty() {
            let mut framer = self.tcp[i].1.take().expect("the framer is put back");
            let n = framer.push(bytes);
            bytes = &bytes[n..];
            let result = loop {
                match framer.next(MAX_BODY) {
                    Ok(Some(frame)) => self.frame(from, frame),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            self.tcp[i].1 = Some(framer);
            if result.is_err() || n == 0 {
                trace!("  tcp {i} closed: {result:?}");
                self.tcp_close(i);
                return;
            }
        }
    }

    fn tcp_close(&mut self, i: usize) {
        let old = self.tcp[i].0;
        self.closed_conns.insert(old.0);
        self.tcp[i] = (ConnId(old.0 + 0x10000), Some(Box::new(StreamBuffer::new())));
        self.rig.full.retain(|&c| c != old);
        self.rig.gw.tcp_closed(self.rig.now, old);
        self.pump();
    }

    fn advance(&mut self, ms: u64) {
        self.rig.advance(ms);
        self.pump();
        // Everything due is handled: the next deadline is later, or the
        // shell would spin.
        if let Some(at) = self.rig.gw.poll_timeout() {
            assert!(at > self.rig.now, "poll_timeout is {:?} in the past after handle_timeout", self.rig.now - at);
        }
    }

    fn next_deadline(&self) -> u64 {
        let sim = &self.rig.nodes[0];
        let at =
            [self.rig.gw.poll_timeout(), sim.node.poll_timeout(), sim.faults.deadline()].into_iter().flatten().min();
        at.map_or(1, |at| at.saturating_duration_since(self.rig.now).as_millis() as u64)
    }

    // ----- the invariants -----

    fn check(&self) {
        let gw = &self.rig.gw;
        let c = &gw.counters;
        assert!(gw.session_count() <= gw.session_capacity(), "more sessions than the table holds");
        assert_eq!(gw.sessions().count(), gw.session_count(), "the session iterator and count agree");
        let live: Vec<_> = gw.sessions().filter(|s| !s.ending).collect();
        // A session counts as closed when it starts ending; an ending
        // session stays in the table only until its BYE goes out.
        let open = c.sessions_opened.checked_sub(c.sessions_closed).expect("more sessions closed than opened");
        assert_eq!(open, live.len() as u64, "sessions opened - closed = sessions not ending");
        assert!(c.sessions_replaced <= c.sessions_closed);
        for s in gw.sessions() {
            assert!(s.node.monitors.len() <= MAX_MONITORS);
            assert!(s.node.slot.index() < self.nodes, "a session on an unconfigured node");
            let unique: BTreeSet<&str> = s.node.monitors.iter().collect();
            assert_eq!(unique.len(), s.node.monitors.len(), "a monitor recorded twice");
        }
        // Newest wins: one live session per user and line.
        for (i, a) in live.iter().enumerate() {
            for b in &live[i + 1..] {
                assert!(
                    !(a.user().eq_ignore_ascii_case(b.user()) && a.line().eq_ignore_ascii_case(b.line())),
                    "two live sessions of {} on {}",
                    a.user(),
                    a.line()
                );
            }
        }
        for i in 0..self.nodes {
            assert!(gw.nodes().outstanding(Self::slot(i)) <= MAX_OUTSTANDING);
        }
        if let Some(opened) = self.shut {
            assert_eq!(c.sessions_opened, opened, "a session opened while shutting down");
            assert!(live.is_empty(), "a live session while shutting down");
        }
    }

    // ----- the operations -----

    fn next_branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bKf{}", self.branches)
    }

    fn invite(&mut self, input: &mut Input<'_>) {
        let d = input.below(DIALOGS);
        let user = input.pick(&USERS);
        let line = input.below(6);
        let via = input.pick(&VIAS);
        let se = input.pick(&[None, Some("1800"), Some("90"), Some("30"), Some("x;refresher=uac")]);
        let flags = input.byte();
        let (new, retransmit, with_to_tag) = (flags & 1 != 0, flags & 0x10 != 0, flags & 0x20 != 0);
        let generation = self.dialogs[d].as_ref().map_or(0, |x| x.generation + u32::from(new));
        let keep = self.dialogs[d].as_ref().is_some_and(|x| x.generation == generation && x.user == user);
        if !keep {
            self.dialogs[d] = Some(Dialog {
                user,
                call_id: format!("d{d}g{generation}@lync"),
                tag: format!("t{d}g{generation}"),
                gw_tag: None,
                cseq: 0,
                branch: String::new(),
                via,
                generation,
            });
        }
        let mut dialog = self.dialogs[d].clone().expect("just set");
        dialog.via = via;
        if !retransmit || dialog.branch.is_empty() {
            dialog.cseq = dialog.cseq.wrapping_add(1);
            dialog.branch = self.next_branch();
        }
        let (own_line, own_ext, _) = own(user);
        let line_xml = match line {
            0 | 1 => None,
            2 => Some(own_line),
            3 => Some(own_ext),
            4 => Some("tel:+14255550199;ext=199"),
            _ => Some("not a number"),
        };
        let ns = if flags & 8 != 0 { ED4 } else { ED3 };
        let private = line_xml.map_or(String::new(), |l| {
            format!("<extensions><privateData><private><lcs:line xmlns:lcs=\"http://schemas.microsoft.com/Lcs/2005/04/RCCExtension\">{l}</lcs:line></private></privateData></extensions>")
        });
        let (content_type, body) = match flags >> 6 {
            0 | 1 => {
                ("application/csta+xml", format!("<RequestSystemStatus xmlns=\"{ns}\">{private}</RequestSystemStatus>"))
            }
            2 => ("application/csta+xml", format!("<GetCSTAFeatures xmlns=\"{ns}\"/>")),
            _ => ("application/sdp", "v=0\r\n".to_string()),
        };
        let peer = self.peer(via);
        let mut head = format!(
            "INVITE sip:ctigw@gw.example.com SIP/2.0\nVia: SIP/2.0/{t} {a};branch={b}\nMax-Forwards: 70\n\
             From: <{u}>;tag={tag};epid=01\nTo: <sip:ctigw@gw.example.com>{tt}\nCall-ID: {c}\nCSeq: {cs} INVITE\n",
            t = peer.transport.token(),
            a = peer.addr,
            b = dialog.branch,
            u = user,
            tag = dialog.tag,
            tt = match (&dialog.gw_tag, with_to_tag) {
                (Some(t), true) => format!(";tag={t}"),
                _ => String::new(),
            },
            c = dialog.call_id,
            cs = dialog.cseq,
        );
        if flags & 4 == 0 {
            writeln!(head, "Contact: <sip:pool.example.com:5070;transport={}>", peer.transport.token().to_lowercase())
                .unwrap();
        }
        head.push_str("Record-Route: <sip:pool.example.com;lr>\n");
        if flags & 2 != 0 {
            head.push_str("Record-Route: <sip:edge.example.com;lr>\n");
        }
        if let Some(se) = se {
            writeln!(head, "Supported: timer\nSession-Expires: {se}").unwrap();
        }
        writeln!(head, "Content-Type: {content_type}").unwrap();
        trace!("op invite d{d} {user} line {line} {via:?} se {se:?} flags {flags:#x}");
        self.dialogs[d] = Some(dialog);
        self.send(via, &sip_text(&head, body.as_bytes()));
    }

    fn in_dialog(&mut self, input: &mut Input<'_>) {
        let d = input.below(DIALOGS);
        let method =
            input.pick(&["INFO", "INFO", "INFO", "BYE", "UPDATE", "INVITE", "ACK", "CANCEL", "OPTIONS", "PRACK"]);
        let cseq_mode = input.below(4);
        let to_mode = input.below(4);
        let via_mode = input.below(4);
        let template = input.byte();
        let params = [input.byte(), input.byte(), input.byte(), input.byte()];
        let Some(mut dialog) = self.dialogs[d].clone() else {
            trace!("op {method} d{d}: no dialog");
            return;
        };
        let via = match via_mode {
            0 => dialog.via,
            i => VIAS[i - 1],
        };
        match (cseq_mode, method) {
            // ACK and CANCEL carry the INVITE's number.
            (_, "ACK" | "CANCEL") => {}
            (0, _) => {
                dialog.cseq = dialog.cseq.wrapping_add(1);
                dialog.branch = self.next_branch();
            }
            (1, _) => {} // a retransmission
            (2, _) => {
                dialog.cseq = dialog.cseq.saturating_sub(1);
                dialog.branch = self.next_branch();
            }
            _ => {
                dialog.cseq = dialog.cseq.wrapping_add(0x7fff_ffff);
                dialog.branch = self.next_branch();
            }
        }
        let branch = if method == "ACK" { self.next_branch() } else { dialog.branch.clone() };
        let to_tag = match to_mode {
            0 | 1 => dialog.gw_tag.clone().map_or(String::new(), |t| format!(";tag={t}")),
            2 => String::new(),
            _ => ";tag=wrong".to_string(),
        };
        let (content_type, body) = if matches!(method, "INFO" | "INVITE" | "UPDATE") {
            self.body(&dialog, template, params)
        } else {
            (None, Vec::new())
        };
        let peer = self.peer(via);
        let mut head = format!(
            "{method} sip:ctigw@gw.example.com SIP/2.0\nVia: SIP/2.0/{t} {a};branch={branch}\nMax-Forwards: 70\n\
             From: <{u}>;tag={tag}\nTo: <sip:ctigw@gw.example.com>{to_tag}\nCall-ID: {c}\nCSeq: {cs} {method}\n",
            t = peer.transport.token(),
            a = peer.addr,
            u = dialog.user,
            tag = dialog.tag,
            c = dialog.call_id,
            cs = dialog.cseq,
        );
        if method == "INVITE" {
            head.push_str("Contact: <sip:pool.example.com:5070>\nSupported: timer\nSession-Expires: 1800\n");
        }
        if let Some(ct) = content_type {
            writeln!(head, "Content-Type: {ct}").unwrap();
        }
        trace!("op {method} d{d} cseq {} to {to_mode} {via:?} body {:?}", dialog.cseq, String::from_utf8_lossy(&body));
        self.dialogs[d] = Some(dialog);
        self.send(via, &sip_text(&head, &body));
    }

    fn device(&self, dialog: &Dialog, b: u8) -> &'static str {
        let (line, ext, device) = own(dialog.user);
        match b % 16 {
            0..=2 => line,
            3 | 4 => ext,
            5 => device,
            i => DEVICES[usize::from(i) - 6],
        }
    }

    fn call_id(&self, b: u8) -> String {
        let known = self.call_ids.len();
        let i = usize::from(b) % (known + 3);
        if i < known { self.call_ids[i].clone() } else { format!("C-{:04}", i - known + 1) }
    }

    fn xref(&self, b: u8) -> String {
        let known = self.xrefs.len();
        let i = usize::from(b) % (known + 2);
        if i < known { self.xrefs[i].clone() } else { ["4711", "x&amp;y"][i - known].to_string() }
    }

    /// A CSTA request body for an INFO (or a re-INVITE/UPDATE).
    fn body(&self, dialog: &Dialog, template: u8, p: [u8; 4]) -> (Option<&'static str>, Vec<u8>) {
        let ns = if p[3] & 0x80 != 0 { ED4 } else { ED3 };
        let dev = self.device(dialog, p[0]);
        let dev2 = self.device(dialog, p[1]);
        let call = self.call_id(p[1]);
        let call2 = self.call_id(p[2]);
        let number = NUMBERS[usize::from(p[2]) % NUMBERS.len()];
        let conn = |name: &str, call: &str, dev: &str| {
            let call = if p[3] & 1 != 0 { String::new() } else { format!("<callID>{call}</callID>") };
            let dev = if p[3] & 2 != 0 { String::new() } else { format!("<deviceID>{dev}</deviceID>") };
            format!("<{name}>{call}{dev}</{name}>")
        };
        let xml = match template % 26 {
            0 => format!("<GetCSTAFeatures xmlns=\"{ns}\"/>"),
            1 => format!("<RequestSystemStatus xmlns=\"{ns}\"/>"),
            2 | 3 => format!(
                "<MonitorStart xmlns=\"{ns}\"><monitorObject><deviceObject>{dev}</deviceObject></monitorObject></MonitorStart>"
            ),
            4 => format!(
                "<MonitorStop xmlns=\"{ns}\"><monitorCrossRefID>{}</monitorCrossRefID></MonitorStop>",
                self.xref(p[1])
            ),
            5 | 6 => format!(
                "<MakeCall xmlns=\"{ns}\"><callingDevice>{dev}</callingDevice><calledDirectoryNumber>{number}</calledDirectoryNumber>{}</MakeCall>",
                if p[3] & 4 != 0 { "<autoOriginate>doNotPrompt</autoOriginate>" } else { "" }
            ),
            7 => format!(
                "<ClearConnection xmlns=\"{ns}\">{}</ClearConnection>",
                conn("connectionToBeCleared", &call, dev)
            ),
            8 => format!("<AnswerCall xmlns=\"{ns}\">{}</AnswerCall>", conn("callToBeAnswered", &call, dev)),
            9 => format!("<HoldCall xmlns=\"{ns}\">{}</HoldCall>", conn("callToBeHeld", &call, dev)),
            10 => format!("<RetrieveCall xmlns=\"{ns}\">{}</RetrieveCall>", conn("callToBeRetrieved", &call, dev)),
            11 => format!(
                "<DeflectCall xmlns=\"{ns}\">{}<newDestination>{number}</newDestination></DeflectCall>",
                conn("callToBeDiverted", &call, dev)
            ),
            12 | 13 | 14 => {
                let root = ["TransferCall", "ConferenceCall", "AlternateCall"][usize::from(template % 26 - 12)];
                format!(
                    "<{root} xmlns=\"{ns}\">{}{}</{root}>",
                    conn("heldCall", &call, dev),
                    conn("activeCall", &call2, dev2)
                )
            }
            15 => format!(
                "<ConsultationCall xmlns=\"{ns}\">{}<consultedDevice>{number}</consultedDevice></ConsultationCall>",
                conn("existingCall", &call, dev)
            ),
            16 => format!(
                "<SingleStepTransferCall xmlns=\"{ns}\">{}<transferredTo>{number}</transferredTo></SingleStepTransferCall>",
                conn("activeCall", &call, dev)
            ),
            17 => format!(
                "<GenerateDigits xmlns=\"{ns}\">{}<charactersToSend>12#</charactersToSend></GenerateDigits>",
                conn("connectionToSendDigits", &call, dev)
            ),
            18 => format!("<SnapshotDevice xmlns=\"{ns}\"><snapshotObject>{dev}</snapshotObject></SnapshotDevice>"),
            19 => format!(
                "<SetDoNotDisturb xmlns=\"{ns}\"><device>{dev}</device><doNotDisturbOn>{}</doNotDisturbOn></SetDoNotDisturb>",
                p[3] & 4 != 0
            ),
            20 => format!("<GetDoNotDisturb xmlns=\"{ns}\"><device>{dev}</device></GetDoNotDisturb>"),
            21 => format!(
                "<SetForwarding xmlns=\"{ns}\"><device>{dev}</device><forwardingType>{}</forwardingType><activateForward>{}</activateForward><forwardDN>{number}</forwardDN></SetForwarding>",
                ["forwardImmediate", "forwardBusy", "forwardNoAns", "bogus"][usize::from(p[0] >> 6)],
                p[3] & 4 != 0
            ),
            22 => format!("<GetForwarding xmlns=\"{ns}\"><device>{dev}</device></GetForwarding>"),
            23 => format!(
                "<MonitorStartResponse xmlns=\"{ns}\"><monitorCrossRefID>1</monitorCrossRefID></MonitorStartResponse>"
            ),
            24 => format!("<MakeCall xmlns=\"{ns}\"><callingDevice>{dev}"),
            _ => return (if p[3] & 8 != 0 { Some("text/plain") } else { None }, b"hello".to_vec()),
        };
        (Some("application/csta+xml"), format!("<?xml version=\"1.0\"?>{xml}").into_bytes())
    }

    fn raw_sip(&mut self, input: &mut Input<'_>) {
        let via = input.pick(&VIAS);
        let bytes = input.bytes(4096);
        trace!("op raw sip {via:?} {:?}", lossy(bytes));
        self.send(via, bytes);
    }

    fn answer_op(&mut self, input: &mut Input<'_>) {
        let k = input.byte();
        let code = input.pick(&[200, 200, 481, 408, 500, 180, 486, 202]);
        trace!("op answer #{k} with {code}");
        if self.gw_requests.is_empty() {
            return;
        }
        let r = self.gw_requests.remove(usize::from(k) % self.gw_requests.len());
        self.answer(&r, code);
        self.pump();
    }

    fn answer_all(&mut self, code: u16) {
        trace!("op answer all with {code}");
        for r in std::mem::take(&mut self.gw_requests) {
            self.answer(&r, code);
        }
        self.pump();
    }

    fn sim_command(&mut self, input: &mut Input<'_>) {
        let t = input.below(10);
        let (a, b) = (input.byte(), input.byte());
        let call = format!("C-{:04}", 1 + a % 6);
        let line = ["tel:101", "tel:102", "tel:103", "tel:199"][usize::from(b % 4)];
        let command = match t {
            0 | 1 => format!("call tel:+1425555{:04} {line}", 7000 + u32::from(a)),
            2 => format!("answer {call}"),
            3 => format!("hangup {call}"),
            4 => format!("hangup {call} {line}"),
            5 => format!("busy {call}"),
            6 => "outside busy".to_string(),
            7 => "outside noanswer".to_string(),
            8 => format!("outside answer {}", u32::from(a) * 100),
            _ => format!("answer {call} {line}"),
        };
        trace!("op sim {command}");
        if let Some((_, outputs)) = self.rig.nodes[0].node.command(self.rig.now, &command) {
            self.rig.deliver(0, outputs);
        }
        self.pump();
    }

    fn sim_life(&mut self, input: &mut Input<'_>) {
        if input.byte() % 2 == 0 {
            trace!("op sim kill");
            self.rig.kill(0);
        } else {
            trace!("op sim revive");
            self.rig.revive(0);
        }
        self.pump();
    }

    fn sim_hold(&mut self, input: &mut Input<'_>) {
        let faults = &mut self.rig.nodes[0].faults;
        if input.byte() % 2 == 0 {
            faults.hold = !faults.hold;
            trace!("op sim hold {}", faults.hold);
        } else {
            trace!("op sim release {} bytes", faults.in_flight());
            let hold = std::mem::replace(&mut faults.hold, false);
            self.rig.release(0);
            self.rig.nodes[0].faults.hold = hold;
        }
        self.pump();
    }

    fn stall(&mut self, input: &mut Input<'_>) {
        let i = input.below(2);
        if let Some(node) = self.rig.nodes.get_mut(i) {
            node.faults.stall = !node.faults.stall;
            trace!("op stall {i} {}", node.faults.stall);
        }
        self.pump();
    }

    /// A document as a node would write it, for the scripted node.
    fn node_document(&self, root: &str, template: u8, p: [u8; 3]) -> String {
        let ns = if p[2] & 0x80 != 0 { ED4 } else { ED3 };
        let xref = self.xref(p[0]);
        match template % 8 {
            0 => match root {
                "StartApplicationSession" => format!(
                    "<StartApplicationSessionPosResponse xmlns=\"{APP}\"><sessionID>S{}</sessionID><actualProtocolVersion>{ns}</actualProtocolVersion><actualSessionDuration>90</actualSessionDuration></StartApplicationSessionPosResponse>",
                    p[1]
                ),
                "ResetApplicationSessionTimer" => format!(
                    "<ResetApplicationSessionTimerPosResponse xmlns=\"{APP}\"><actualSessionDuration>90</actualSessionDuration></ResetApplicationSessionTimerPosResponse>"
                ),
                "StopApplicationSession" => format!("<StopApplicationSessionPosResponse xmlns=\"{APP}\"/>"),
                "RequestSystemStatus" => format!(
                    "<RequestSystemStatusResponse xmlns=\"{ns}\"><systemStatus>normal</systemStatus></RequestSystemStatusResponse>"
                ),
                "MonitorStart" => format!(
                    "<MonitorStartResponse xmlns=\"{ns}\"><monitorCrossRefID>{}</monitorCrossRefID></MonitorStartResponse>",
                    ["4711", "4712", "m1", "m2", "7"][usize::from(p[0]) % 5]
                ),
                "MakeCall" => format!(
                    "<MakeCallResponse xmlns=\"{ns}\"><callingDevice><callID>{}</callID><deviceID>tel:101</deviceID></callingDevice></MakeCallResponse>",
                    self.call_id(p[1])
                ),
                other => format!("<{other}Response xmlns=\"{ns}\"/>"),
            },
            1 => format!(
                "<CSTAErrorCode xmlns=\"{ns}\"><operation>{}</operation></CSTAErrorCode>",
                ["generic", "invalidDeviceID", "privilegeViolationSpecifiedDevice"][usize::from(p[1]) % 3]
            ),
            2 => format!(
                "<StartApplicationSessionNegResponse xmlns=\"{APP}\"><errorCode><definedError>invalidApplicationInfo</definedError></errorCode></StartApplicationSessionNegResponse>"
            ),
            3 => format!(
                "<ApplicationSessionTerminated xmlns=\"{APP}\"><sessionTermReason><definedTermReason>normal</definedTermReason></sessionTermReason></ApplicationSessionTerminated>"
            ),
            4 | 5 => self.event(&xref, template, p),
            6 => format!(
                "<MonitorStartResponse xmlns=\"{ns}\"><monitorCrossRefID>{}</monitorCrossRefID></MonitorStartResponse>",
                "x".repeat(usize::from(p[1]) % 48)
            ),
            _ => String::new(),
        }
    }

    fn event(&self, xref: &str, template: u8, p: [u8; 3]) -> String {
        let ns = if p[2] & 0x80 != 0 { ED4 } else { ED3 };
        let call = self.call_id(p[1]);
        let dev =
            ["tel:101", "tel:+14255550101;ext=101", "tel:102", "tel:+14255559876", "&amp;"][usize::from(p[2]) % 5];
        let kind = (usize::from(template / 8) + usize::from(p[1])) % 14;
        let calls = |list: &str| {
            let mut items = String::new();
            for i in 0..usize::from(p[2] >> 4) {
                write!(items, "<connectionListItem><newConnection><callID>C-{i}</callID><deviceID>{dev}</deviceID></newConnection></connectionListItem>").unwrap();
            }
            format!("<{list}>{items}</{list}>")
        };
        let (root, conn, subject, extra) = match kind {
            0 => ("ServiceInitiatedEvent", "initiatedConnection", "initiatingDevice", String::new()),
            1 => ("OriginatedEvent", "originatedConnection", "callingDevice", String::new()),
            2 => ("DeliveredEvent", "connection", "alertingDevice", String::new()),
            3 => ("EstablishedEvent", "establishedConnection", "answeringDevice", String::new()),
            4 => ("HeldEvent", "heldConnection", "holdingDevice", String::new()),
            5 => ("RetrievedEvent", "retrievedConnection", "retrievingDevice", String::new()),
            6 => ("ConnectionClearedEvent", "droppedConnection", "releasingDevice", String::new()),
            7 => ("TransferedEvent", "primaryOldCall", "transferringDevice", calls("transferredConnections")),
            8 => ("ConferencedEvent", "primaryOldCall", "conferencingDevice", calls("conferenceConnections")),
            9 => ("DivertedEvent", "connection", "divertingDevice", String::new()),
            10 => ("FailedEvent", "failedConnection", "failingDevice", String::new()),
            11 => {
                return format!(
                    "<ForwardingEvent xmlns=\"{ns}\"><monitorCrossRefID>{xref}</monitorCrossRefID><device><deviceIdentifier>{dev}</deviceIdentifier></device><forwardingType>forwardImmediate</forwardingType><forwardStatus>true</forwardStatus><forwardTo>tel:+14255551234</forwardTo></ForwardingEvent>"
                );
            }
            12 => {
                return format!(
                    "<DoNotDisturbEvent xmlns=\"{ns}\"><monitorCrossRefID>{xref}</monitorCrossRefID><device><deviceIdentifier>{dev}</deviceIdentifier></device><doNotDisturbOn>true</doNotDisturbOn></DoNotDisturbEvent>"
                );
            }
            _ => {
                return format!(
                    "<DeliveredEvent xmlns=\"{ns}\"><monitorCrossRefID>{xref}</monitorCrossRefID></DeliveredEvent>"
                );
            }
        };
        let state = ["connected", "alerting", "hold", "null", "bogus"][usize::from(p[0]) % 5];
        format!(
            "<{root} xmlns=\"{ns}\"><monitorCrossRefID>{xref}</monitorCrossRefID><{conn}><callID>{call}</callID><deviceID>{dev}</deviceID></{conn}><{subject}><deviceIdentifier>{dev}</deviceIdentifier></{subject}>{extra}<localConnectionInfo>{state}</localConnectionInfo><cause>normal</cause></{root}>"
        )
    }

    fn cti_frame(&mut self, input: &mut Input<'_>) {
        let slot = input.below(3);
        let kind = input.below(5);
        let k = input.byte();
        let template = input.byte();
        let p = [input.byte(), input.byte(), input.byte()];
        let framed = |id: u16, body: &[u8]| {
            let mut buf = vec![0u8; body.len() + 8];
            let mut out = OutBuf::new(&mut buf);
            frame::encode(&mut out, InvokeId::new(id).expect("an id"), |w| w.put(body))
                .ok()
                .map(|_| out.as_bytes().to_vec())
        };
        let bytes = match kind {
            // An answer to one of the scripted node's requests.
            0 if slot == 1 && !self.scripted.outstanding.is_empty() => {
                let i = usize::from(k) % self.scripted.outstanding.len();
                let (id, root) = self.scripted.outstanding.remove(i);
                framed(id, self.node_document(&root, template, p).as_bytes())
            }
            0 => framed(u16::from(k) % 4, self.node_document("MonitorStart", template, p).as_bytes()),
            // An event.
            1 => {
                let xref = self.xref(p[0]);
                framed(InvokeId::EVENT.get(), self.event(&xref, template, p).as_bytes())
            }
            // A frame with a body from the input.
            2 => {
                let body = input.bytes(4096);
                framed(if template & 1 != 0 { InvokeId::EVENT.get() } else { u16::from(k) % 10 }, body)
            }
            // Bytes, framed or not.
            3 => Some(input.bytes(4096).to_vec()),
            // A document delivered in two pieces.
            _ => {
                let xref = self.xref(p[0]);
                let bytes = framed(InvokeId::EVENT.get(), self.event(&xref, template, p).as_bytes());
                if let Some(bytes) = bytes {
                    let cut = usize::from(k) % bytes.len();
                    trace!("op cti slot {slot} in two pieces at {cut}");
                    self.rig.gw.handle_cti(self.rig.now, Self::slot(slot), &bytes[..cut]);
                    self.pump();
                    self.rig.gw.handle_cti(self.rig.now, Self::slot(slot), &bytes[cut..]);
                    self.pump();
                }
                return;
            }
        };
        let Some(bytes) = bytes else { return };
        trace!("op cti slot {slot} kind {kind}: {:?}", lossy(&bytes));
        self.rig.gw.handle_cti(self.rig.now, Self::slot(slot), &bytes);
        self.pump();
    }

    fn scripted_link(&mut self, input: &mut Input<'_>) {
        let what = input.below(4);
        let slot = Self::slot(1);
        trace!("op scripted link {what} (state {:?})", self.rig.gw.nodes().state(slot));
        match what {
            0 | 1 => {
                if self.scripted.connect_requested || what == 1 {
                    self.rig.gw.handle_link(self.rig.now, slot, LinkEvent::Connected);
                }
            }
            2 => self.rig.gw.handle_link(self.rig.now, slot, LinkEvent::ConnectFailed),
            _ => {
                self.scripted.outstanding.clear();
                self.scripted.rx.clear();
                self.rig.gw.handle_link(self.rig.now, slot, LinkEvent::Closed);
            }
        }
        self.pump();
    }

    fn tcp_split(&mut self, input: &mut Input<'_>) {
        let i = input.below(2);
        let kind = input.below(3);
        let cut = input.u16();
        let bytes: Vec<u8> = match kind {
            0 => b"\r\n\r\n".to_vec(),
            1 => b"\r\n".to_vec(),
            _ => match &self.last_sent {
                Some((_, bytes)) => bytes.clone(),
                None => return,
            },
        };
        let cut = usize::from(cut) % (bytes.len() + 1);
        trace!("op tcp {i} split at {cut}: {:?}", lossy(&bytes));
        self.tcp_bytes(i, &bytes[..cut]);
        self.pump();
        self.tcp_bytes(i, &bytes[cut..]);
        self.pump();
    }

    fn retransmit(&mut self) {
        let Some((via, bytes)) = self.last_sent.clone() else { return };
        trace!("op retransmit {via:?}");
        self.send(via, &bytes);
    }

    fn shut_down(&mut self) {
        trace!("op shut down");
        self.rig.gw.shut_down(self.rig.now);
        self.shut = Some(self.rig.gw.counters.sessions_opened);
        self.pump();
    }

    fn run(&mut self, input: &mut Input<'_>) {
        match input.below(20) {
            0 | 1 => self.invite(input),
            2..=4 => self.in_dialog(input),
            5 => self.raw_sip(input),
            6 => self.answer_op(input),
            7 => {
                self.auto_answer = !self.auto_answer;
                trace!("op auto answer {}", self.auto_answer);
                self.pump();
            }
            8 => {
                let ms = match input.below(16) {
                    0 => self.next_deadline(),
                    i => [
                        0, 1, 100, 499, 500, 1000, 2000, 4000, 5000, 10_000, 30_000, 32_000, 90_000, 1_800_000,
                        3_600_000,
                    ][i - 1],
                };
                trace!("op advance {ms} ms");
                self.advance(ms);
            }
            9 => {
                let i = input.below(2);
                trace!("op tcp {i} close");
                self.tcp_close(i);
            }
            10 => self.shut_down(),
            11 => self.sim_command(input),
            12 => self.sim_life(input),
            13 => self.sim_hold(input),
            14 => self.stall(input),
            15 => self.cti_frame(input),
            16 => self.scripted_link(input),
            17 => self.tcp_split(input),
            18 => {
                let (a, t) = (input.below(3), input.below(3));
                trace!("op reload appearances {a} trusted {t}");
                self.rig.gw.set_appearances(appearances(a));
                self.rig.gw.set_trusted(trusted(t));
                self.pump();
            }
            _ => match input.below(6) {
                0 => self.retransmit(),
                5 => {
                    let i = input.below(2);
                    let conn = self.tcp[i].0;
                    let full = !self.rig.full.contains(&conn);
                    trace!("op tcp {i} transmit buffer full {full}");
                    if full {
                        self.rig.full.push(conn);
                    } else {
                        self.rig.full.retain(|&c| c != conn);
                        self.rig.gw.stream_drained(self.rig.now, conn);
                    }
                    self.pump();
                }
                1 => {
                    let code = input.pick(&[200, 481, 408, 503]);
                    self.answer_all(code);
                }
                2 => {
                    trace!("op stop nodes");
                    self.rig.gw.stop_nodes(self.rig.now);
                    self.pump();
                }
                3 => {
                    // A BYE of every dialog Lync knows.
                    self.byes();
                }
                _ => self.forged_response(input),
            },
        }
    }

    /// A response to a request of the gateway's it may not have sent yet:
    /// its branch is the gateway's prefix and a guessed transaction handle
    /// (index, generation), from anyone.
    fn forged_response(&mut self, input: &mut Input<'_>) {
        let index = u64::from(input.byte() % 8);
        let generation = u64::from(input.byte() % 4);
        let code = input.pick(&[200, 481, 408, 500, 180]);
        let via = input.pick(&VIAS);
        let method = input.pick(&["INFO", "BYE"]);
        let handle = generation << 32 | index;
        trace!("op forged {code} to {method} z9hG4bKgw{handle:x} {via:?}");
        let head = format!(
            "SIP/2.0 {code} Forged\nVia: SIP/2.0/UDP gw.example.com:5060;branch=z9hG4bKgw{handle:x}\n\
             From: <sip:ctigw@gw.example.com>;tag=gw1\nTo: <sip:alice@example.com>;tag=x\nCall-ID: forged\nCSeq: 1 {method}\n"
        );
        self.send(via, &sip_text(&head, b""));
    }

    /// Lync ends every dialog it has a tag for.
    fn byes(&mut self) {
        trace!("op bye all");
        for d in 0..DIALOGS {
            let Some(mut dialog) = self.dialogs[d].clone() else { continue };
            let Some(gw_tag) = dialog.gw_tag.clone() else { continue };
            dialog.cseq = dialog.cseq.wrapping_add(1);
            dialog.branch = self.next_branch();
            let peer = self.peer(dialog.via);
            let head = format!(
                "BYE sip:ctigw@gw.example.com SIP/2.0\nVia: SIP/2.0/{t} {a};branch={b}\nMax-Forwards: 70\n\
                 From: <{u}>;tag={tag}\nTo: <sip:ctigw@gw.example.com>;tag={gw_tag}\nCall-ID: {c}\nCSeq: {cs} BYE\n",
                t = peer.transport.token(),
                a = peer.addr,
                b = dialog.branch,
                u = dialog.user,
                tag = dialog.tag,
                c = dialog.call_id,
                cs = dialog.cseq,
            );
            let via = dialog.via;
            self.dialogs[d] = Some(dialog);
            self.send(via, &sip_text(&head, b""));
        }
    }

    /// The end: the shell stops the gateway; every BYE is answered (or
    /// left to time out); after 64*T1 and more nothing may be left.
    fn finish(&mut self, flags: u8) {
        trace!("finish");
        for node in &mut self.rig.nodes {
            node.faults.stall = false;
            node.faults.hold = false;
        }
        for conn in std::mem::take(&mut self.rig.full) {
            self.rig.gw.stream_drained(self.rig.now, conn);
        }
        self.pump();
        if flags & 4 != 0 {
            self.byes();
        }
        self.auto_answer = flags & 8 != 0;
        self.shut_down();
        self.check();
        assert_eq!(self.rig.gw.session_count(), 0, "sessions left after shut_down");
        for _ in 0..(TIMER_F + 10_000) / T1 {
            self.advance(T1);
            self.check();
        }
        assert_eq!(self.rig.gw.session_count(), 0, "sessions left at the end");
        assert!(self.rig.gw.is_drained(), "not drained 64*T1 after shut_down: a transaction or BYE leaked");
        self.rig.gw.stop_nodes(self.rig.now);
        self.pump();
        assert!(self.rig.gw.is_drained());
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data, at: 0 };
    let flags = data.first().copied().unwrap_or(0);
    let mut world = World::new(&mut input);
    let mut ops = 0;
    while !input.is_empty() && ops < 256 {
        world.run(&mut input);
        world.check();
        trace!(
            "  sessions {} ({} live)",
            world.rig.gw.session_count(),
            world.rig.gw.sessions().filter(|s| !s.ending).count()
        );
        ops += 1;
    }
    world.finish(flags);
});
