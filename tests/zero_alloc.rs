//! Proof that the SIP and CSTA codecs never touch the heap: a counting
//! global allocator watches this thread while 10,000 mixed messages are
//! parsed, read through every accessor the gateway uses, and answered.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::net::SocketAddr;

use ctigw::csta::{self, CallEvent, CallEventKind, ConnectionId, Event, Message as Csta, Namespace, Response, Text};
use ctigw::outbuf::OutBuf;
use ctigw::sip::{DialogRequest, Frame, HeaderName, Message, MessageWriter, Method, StreamBuffer};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `work` and returns how many allocations this thread made in it.
fn allocations_in(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    work();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

/// What the gateway does with one datagram: parse, read what routing
/// needs, parse the CSTA body, answer it. Returns a digest of the work so
/// none of it can be optimised away.
fn handle_datagram(bytes: &[u8], out: &mut [u8], scratch: &mut [u8]) -> usize {
    let source: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    let Ok(m) = Message::parse(bytes) else { return 1 };
    let mut digest = m.len();
    if m.method().is_some() && m.check_request().is_err() {
        // A refused request is answered with its reason phrase.
        let err = m.check_request().unwrap_err();
        if let Ok(w) = MessageWriter::response_to(out, &m, err.status_code(), err, Some("gw1"), Some(source)) {
            digest = digest.wrapping_add(w.finish().map(|b| b.len()).unwrap_or(0));
        }
        return digest;
    }
    digest = digest.wrapping_add(m.call_id().map(str::len).unwrap_or(0));
    digest = digest.wrapping_add(m.from().ok().and_then(|f| f.tag()).map(str::len).unwrap_or(0));
    digest = digest.wrapping_add(m.to().ok().and_then(|t| t.tag()).map(str::len).unwrap_or(0));
    digest = digest.wrapping_add(m.via().ok().and_then(|v| v.branch()).map(str::len).unwrap_or(0));
    digest = digest.wrapping_add(m.cseq().map(|c| c.number as usize).unwrap_or(0));
    digest = digest.wrapping_add(m.vias().count() + m.name_addrs(HeaderName::Route).count());
    digest = digest.wrapping_add(usize::from(m.supports("timer")));
    digest = digest.wrapping_add(m.max_forwards().ok().flatten().map(usize::from).unwrap_or(0));
    digest = digest.wrapping_add(m.content_length().ok().flatten().unwrap_or(0));
    let is_csta = m.content_type().ok().flatten().is_some_and(|ct| ct.is("application", "csta+xml"));
    if !is_csta || m.method().is_none() {
        return digest;
    }
    let doc = match csta::parse(m.body()) {
        Ok(doc) => doc,
        Err(e) => {
            let code = e.error_code();
            let w = MessageWriter::response_to(out, &m, 200, "OK", Some("gw1"), Some(source)).unwrap();
            return digest
                + w.finish_with_body("application/csta+xml", |o| code.write(Namespace::Ed3, o)).unwrap().len();
        }
    };
    // Read identifiers the way the gateway will: borrowed, or decoded
    // into a fixed scratch buffer when they carry entities.
    if let Csta::Request(request) = &doc.message {
        for device in request.controlled_devices().into_iter().flatten().flatten() {
            digest = digest.wrapping_add(device.unescape_into(scratch).map(str::len).unwrap_or(0));
        }
    }
    let answer = match &doc.message {
        Csta::Request(r) if r.service() == csta::Service::MakeCall => Response::Call {
            service: csta::Service::MakeCall,
            call: ConnectionId::new(Text::literal("C-0001"), Text::literal("tel:+14255550101;ext=101")),
        },
        Csta::Request(r) => Response::Ack(r.service()),
        _ => return digest,
    };
    let w = MessageWriter::response_to(out, &m, 200, "OK", Some("gw1"), Some(source)).unwrap();
    let bytes = w.finish_with_body("application/csta+xml", |o| answer.write(doc.namespace, o)).unwrap();
    digest + bytes.len()
}

/// An event relayed to Lync as a new INFO in the dialog.
fn write_event_info(cseq: u32, out: &mut [u8]) -> usize {
    let routes = ["<sip:pool.example.com;lr>"];
    let mut branch = [0u8; 32];
    let mut b = OutBuf::new(&mut branch);
    write!(b, "z9hG4bKgw{cseq}").unwrap();
    let branch = std::str::from_utf8(b.as_bytes()).unwrap();
    let d = DialogRequest {
        method: Method::Info,
        request_uri: "sip:pool.example.com:5060;transport=tcp",
        route_set: &routes,
        via_transport: "TCP",
        via_sent_by: "gw.example.com:5060",
        branch,
        local_uri: "sip:ctigw@gw.example.com",
        local_tag: "gw77",
        remote_uri: "sip:alice@example.com",
        remote_tag: "1a2b3c",
        call_id: "7f3e9c51d0a4@192.0.2.10",
        cseq,
        contact: "sip:gw.example.com:5060;transport=tcp",
    };
    let mut event = CallEvent::new(
        CallEventKind::Delivered,
        Text::literal("4711"),
        ConnectionId::new(Text::literal("C-0001"), Text::literal("tel:+14255550101;ext=101")),
    );
    event.subject = Some(Text::literal("tel:+14255559876"));
    event.cause = Some(csta::cause::NEW_CALL);
    let event = Event::Call(event);
    let w = MessageWriter::in_dialog(out, &d).unwrap();
    let bytes = w.finish_with_body("application/csta+xml", |o| event.write(Namespace::Ed3, o)).unwrap();
    // The gateway's own INFO must parse back.
    let m = Message::parse(bytes).unwrap();
    m.len() + csta::parse(m.body()).map(|_| 1).unwrap_or(0)
}

/// The mix: the shared samples, every RFC 4475 message, and generated
/// INFOs with every CSTA request kind.
fn corpus() -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut datagrams = Vec::new();
    for name in common::testdata_files("sip", ".sip") {
        datagrams.push(common::testdata(&format!("sip/{name}")));
    }
    let rfc = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475");
    for entry in std::fs::read_dir(rfc).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sip") {
            datagrams.push(std::fs::read(path).unwrap());
        }
    }
    for name in common::testdata_files("csta", ".xml") {
        let body = common::testdata(&format!("csta/{name}"));
        let mut m = format!(
            "INFO sip:ctigw@gw.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK{name}\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: <sip:ctigw@gw.example.com>;tag=gw77\r\nCall-ID: c\r\n\
             CSeq: 9 INFO\r\nContent-Type: application/csta+xml\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(&body);
        datagrams.push(m);
    }
    let stream = common::testdata("sip/pipelined_two_infos.sip");
    (datagrams, stream)
}

#[test]
fn ten_thousand_mixed_messages_without_one_allocation() {
    let (datagrams, stream) = corpus();
    assert!(datagrams.len() > 60);
    let mut out = vec![0u8; 16 * 1024];
    let mut scratch = [0u8; 256];
    let mut receive = Box::new(StreamBuffer::<8192>::new());

    // The counter sees allocations when there are some.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 64]))) >= 1);

    let mut digest = 0usize;
    let mut messages = 0usize;
    let allocations = allocations_in(|| {
        let mut i = 0;
        while messages < 10_000 {
            digest = digest.wrapping_add(handle_datagram(&datagrams[i % datagrams.len()], &mut out, &mut scratch));
            digest = digest.wrapping_add(write_event_info(i as u32, &mut out));
            messages += 2;
            if i % 10 == 0 {
                // A pipelined TCP read in uneven pieces.
                for piece in stream.chunks(97) {
                    receive.push(piece);
                    while let Ok(Some(frame)) = receive.next(4096) {
                        if let Frame::Message(m) = frame {
                            digest = digest.wrapping_add(m.len() + csta::parse(m.body()).map(|_| 1).unwrap_or(0));
                            messages += 1;
                        }
                    }
                }
            }
            i += 1;
        }
    });
    assert_eq!(allocations, 0, "heap allocations while handling {messages} messages");
    assert!(messages >= 10_000);
    assert!(digest > messages * 100, "the work was done: digest {digest}");
}

/// The CTI link path in steady state: requests framed out, the node's
/// frames (responses, events, heartbeat answers) in, parsed and handed up,
/// timers run. The node's side is played here with stack buffers.
#[test]
fn the_cti_link_path_allocates_nothing_in_steady_state() {
    use ctigw::csta::{Request as CstaRequest, SessionMessage};
    use ctigw::cti::frame::{self, InvokeId};
    use ctigw::cti::{Incoming, NodeConfig, Nodes, Protocol, RequestTag, SessionMode, SlotId, Timing};
    use std::time::{Duration, Instant};

    let slot = SlotId::new(0).unwrap();
    let timing = Timing { heartbeat_interval: Duration::from_secs(1), ..Timing::default() };
    let config =
        NodeConfig { addr: "127.0.0.1:7001".parse().unwrap(), protocol: Protocol::CstaXml(SessionMode::Ecma354) };
    let mut nodes = Nodes::new(timing, &[config]).unwrap();
    let mut now = Instant::now();
    nodes.start(now);
    nodes.connected(now, slot);

    // The node's side: reads what the link wrote, answers every request.
    fn answer_everything(nodes: &mut Nodes, slot: SlotId, now: Instant, event_every: u64, sent: u64) -> usize {
        let mut written = [0u8; 4096];
        let mut inbox = [0u8; ctigw::cti::LINK_BUFFER];
        let n = nodes.tx_pending(slot).len();
        written[..n].copy_from_slice(nodes.tx_pending(slot));
        nodes.transmitted(slot, n);
        let mut at = 0;
        let mut handed_up = 0;
        while let Ok(httparse::Status::Complete((f, used))) = frame::decode(&written[at..n], 65535) {
            at += used;
            let mut reply = [0u8; 1024];
            let mut out = OutBuf::new(&mut reply);
            let message = match csta::parse(f.body).unwrap().message {
                Csta::Session(SessionMessage::Start { .. }) => Csta::Session(SessionMessage::Started {
                    session_id: Text::literal("S-1"),
                    protocol_version: None,
                    duration: Some(90),
                }),
                Csta::Session(SessionMessage::ResetTimer { .. }) => {
                    Csta::Session(SessionMessage::TimerReset { duration: Some(90) })
                }
                Csta::Request(_) => Csta::Response(Response::MonitorStarted { monitor: Text::literal("4711") }),
                other => panic!("unexpected {other:?}"),
            };
            frame::encode(&mut out, f.invoke_id, |o| message.write(Namespace::Ed3, o)).unwrap();
            if sent % event_every == 0 {
                let mut e = CallEvent::new(
                    CallEventKind::Held,
                    Text::literal("4711"),
                    ConnectionId::new(Text::literal("C-1"), Text::literal("tel:101")),
                );
                e.cause = Some(csta::cause::NORMAL);
                frame::encode(&mut out, InvokeId::EVENT, |o| Event::Call(e).write(Namespace::Ed3, o)).unwrap();
            }
            let bytes = out.as_bytes();
            assert_eq!(nodes.receive(slot, bytes), bytes.len());
            while let Some(incoming) = nodes.next_incoming(now, slot, &mut inbox) {
                match incoming {
                    Incoming::Response { answer, .. } => {
                        assert!(matches!(answer, Ok(Csta::Response(Response::MonitorStarted { .. }))));
                        handed_up += 1;
                    }
                    Incoming::Event { .. } => handed_up += 1,
                    Incoming::Handled => {}
                }
            }
        }
        while nodes.poll_event().is_some() {}
        handed_up
    }

    answer_everything(&mut nodes, slot, now, u64::MAX, 1); // the session comes up
    assert_eq!(nodes.state(slot), ctigw::cti::LinkState::Up);

    let mut handed_up = 0;
    let allocations = allocations_in(|| {
        for i in 1..=10_000u64 {
            let request = CstaRequest::MonitorStart { device: Text::literal("tel:+14255550101;ext=101") };
            nodes.send_request(now, slot, RequestTag(i), &request).unwrap();
            handed_up += answer_everything(&mut nodes, slot, now, 10, i);
            // Time passes: a heartbeat every 1 000 requests, answered.
            now += Duration::from_millis(1);
            nodes.handle_timeout(now);
            handed_up += answer_everything(&mut nodes, slot, now, u64::MAX, i);
            while nodes.poll_action().is_some() {}
        }
    });
    assert_eq!(allocations, 0, "heap allocations on the CTI link path");
    assert_eq!(handed_up, 11_000, "10 000 responses and 1 000 events handed up");
    let counters = nodes.counters(slot);
    assert_eq!((counters.requests, counters.responses, counters.events), (10_000, 10_000, 1_000));
    assert!(counters.heartbeats_sent >= 9, "heartbeats ran: {}", counters.heartbeats_sent);
    assert_eq!(counters.heartbeats_missed, 0);
}

/// Whole sessions through the gateway core: sign-in, features, monitor,
/// make call with its events, hold, retrieve, clear, BYE; over UDP, many
/// times, driven by the crate's test rig (`ctigw::rig`) with its scripted
/// Lync. Only the calls into the core are counted: the rig's Lync
/// (formatting SIP text) and simulated node run with counting off.
#[test]
fn full_sessions_through_the_core_allocate_nothing() {
    full_sessions(false);
}

/// The same through a PBX with config/pbx.conf's dial plan: every request
/// and event rewritten both ways (the PBX simulated OpenScape-style), and a
/// number no rule matches refused, without one allocation.
#[test]
fn full_sessions_with_the_dial_plan_allocate_nothing() {
    full_sessions(true);
}

fn full_sessions(pbx: bool) {
    use ctigw::config::{Cidr, Config};
    use ctigw::cti::{NodeConfig, Nodes, Protocol, SessionMode, Timing};
    use ctigw::rcc::appearances::Appearances;
    use ctigw::rcc::{Gateway, GatewayConfig, Peer, Transport};
    use ctigw::rig::lync::{Lync, NS, body_of, csta_answer, only_response};
    use ctigw::rig::{Calls, Rig};
    use ctigw::sim::node::{Faults, Node};
    use ctigw::sim::switch::{Naming, Outside, Switch};
    use std::time::{Duration, Instant};

    /// Every call into the core, its allocations counted.
    struct Counting(u64);

    impl Calls for Counting {
        fn call<R>(&mut self, f: impl FnOnce() -> R) -> R {
            let mut result = None;
            self.0 += allocations_in(|| result = Some(f()));
            result.expect("the call returned")
        }
    }

    let mut probe = Counting(0);
    probe.call(|| drop(Vec::<u8>::with_capacity(8)));
    assert_eq!(probe.0, 1, "the counter sees an allocation made inside a call");

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/");
    let pbx_config = Config::load(std::path::Path::new(&format!("{dir}pbx.conf"))).unwrap();
    let lines =
        std::fs::read_to_string(if pbx { format!("{dir}pbx-lines.conf") } else { format!("{dir}lines.conf") }).unwrap();
    let config =
        NodeConfig { addr: "127.0.0.1:7001".parse().unwrap(), protocol: Protocol::CstaXml(SessionMode::Ecma354) };
    let nodes = Nodes::new(Timing::default(), &[config]).unwrap();
    let mut gw_config =
        GatewayConfig::new("gw.example.com", 5060, vec![Cidr { addr: "127.0.0.1".parse().unwrap(), prefix: 8 }]);
    gw_config.sessions = 64;
    let now = Instant::now();
    let mut gw = Gateway::new(now, gw_config, Appearances::parse(&lines).unwrap(), nodes);
    let sim_lines = [("tel:+14255550101;ext=101", if pbx { "101" } else { "SEPA" })];
    let mut switch = Switch::new(sim_lines, Outside::Answer(Duration::from_millis(100)));
    if pbx {
        gw.set_dialplan(pbx_config.dialplan);
        switch.set_naming(Naming::OpenScape);
    }
    let node = Node::new(switch, Faults::default());
    let mut rig = Rig::with_calls(now, gw, vec![node], Counting(0));
    let pool = Peer { addr: "127.0.0.1:5070".parse().unwrap(), transport: Transport::Udp };

    for round in 0..200u32 {
        let mut alice = Lync::new("alice@example.com", &format!("z{round}"), pool);
        alice.sign_in(&mut rig);
        for body in [
            format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"),
            format!(
                "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
            ),
            format!(
                "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:+14255559876</calledDirectoryNumber></MakeCall>"
            ),
        ] {
            let out = alice.info(&mut rig, &body);
            let out = alice.answer_all(&mut rig, out);
            if pbx && body.contains("MakeCall") {
                // Translated both ways: the answer names the user's line.
                let answer = out.iter().find(|m| m.status_code().is_some()).unwrap();
                let csta::Message::Response(Response::Call { call, .. }) = body_of(answer) else { panic!() };
                assert_eq!(call.device.unwrap(), "tel:+14255550101;ext=101");
            }
        }
        if pbx {
            let refused = format!(
                "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:555</calledDirectoryNumber></MakeCall>"
            );
            assert_eq!(
                csta_answer(&alice.info(&mut rig, &refused)),
                csta::Message::Error(csta::ErrorCode::INVALID_CALLED_DEVICE)
            );
        }
        rig.advance(100); // the outside party answers
        let out = rig.take();
        alice.answer_all(&mut rig, out);
        let call = format!("C-{:04}", round + 1);
        let conn = |tag: &str| format!("<{tag}><callID>{call}</callID><deviceID>tel:101</deviceID></{tag}>");
        for body in [
            format!("<HoldCall xmlns=\"{NS}\">{}</HoldCall>", conn("callToBeHeld")),
            format!("<RetrieveCall xmlns=\"{NS}\">{}</RetrieveCall>", conn("callToBeRetrieved")),
            format!("<ClearConnection xmlns=\"{NS}\">{}</ClearConnection>", conn("connectionToBeCleared")),
        ] {
            let out = alice.info(&mut rig, &body);
            alice.answer_all(&mut rig, out);
        }
        let out = alice.in_dialog(&mut rig, "BYE", "");
        assert_eq!(only_response(&out).status_code(), Some(200), "the BYE is answered");
        // Time passes between sessions: timers fire, kept responses expire.
        rig.advance(40_000);
        rig.take();
    }
    assert_eq!(rig.gw.counters.sessions_opened, 200);
    assert!(rig.gw.counters.events_relayed >= 200 * 6, "events flowed: {}", rig.gw.counters.events_relayed);
    assert_eq!(rig.gw.counters.dialplan_refusals, if pbx { 200 } else { 0 });
    assert_eq!(rig.gw.session_count(), 0);
    assert_eq!(rig.calls.0, 0, "heap allocations inside the gateway core");
}
