//! One request through the gateway core, for instruction counts under
//! `valgrind --tool=callgrind` (`benches/instructions.py`, run by `make
//! bench`): a repeatable figure beside the noisy times.
//!
//! `instructions KIND N`: boots the sans-IO gateway with a simulated node
//! in memory, signs one user in over UDP, prepares 10,000 in-dialog INFOs
//! of KIND (`features`: GetCSTAFeatures, answered by the gateway itself;
//! `relayed`: GetDoNotDisturb, relayed to the node and its answer back),
//! then hands the first N to the core (parse, route, write the answer).
//! Two runs, N = 0 and N = 10,000, give the instructions of one request as
//! their difference over 10,000; for `relayed` that includes the simulated
//! node's share.
//!
//! `instructions event N`: the user monitors its device, then the node
//! sends N DeliveredEvents (the shared sample), each relayed to Lync as an
//! INFO, which Lync answers 200.
//!
//! `relayed+dialplan` and `event+dialplan`: the same through a PBX, with
//! config/pbx.conf's dial plan and line file (the node simulated
//! OpenScape-style): every device of the request, the answer and the event
//! rewritten on the way.
//!
//! The core is driven by the crate's test rig (`ctigw::rig`), every call
//! into it made through [`core_call`]: run under
//! `--toggle-collect=*core_call*`, callgrind counts the gateway's work
//! alone, not the rig's, the simulated node's or Lync's.

use std::time::{Duration, Instant};

use ctigw::config::Cidr;
use ctigw::cti::{NodeConfig, Nodes, Protocol, SessionMode, SlotId, Timing, frame};
use ctigw::outbuf::OutBuf;
use ctigw::rcc::appearances::Appearances;
use ctigw::rcc::{Gateway, GatewayConfig, Peer, Transport};
use ctigw::rig::{Calls, Rig};
use ctigw::sim::node::{Faults, Node};
use ctigw::sim::switch::{Outside, Switch};

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
const PREPARED: u32 = 10_000;

/// Every call into the core goes through [`core_call`], the function
/// callgrind counts.
struct Counted;

impl Calls for Counted {
    fn call<R>(&mut self, f: impl FnOnce() -> R) -> R {
        core_call(f)
    }
}

/// One call into the core: what callgrind's `--toggle-collect=*core_call*` counts.
#[inline(never)]
fn core_call<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The node's DeliveredEvent sample for monitor `xref`, framed as an event.
fn event_frame(xref: &str) -> Vec<u8> {
    let sample =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/csta/DeliveredEvent.xml"))
            .expect("the shared DeliveredEvent sample");
    let body = sample.replace(
        "<monitorCrossRefID>4711</monitorCrossRefID>",
        &format!("<monitorCrossRefID>{xref}</monitorCrossRefID>"),
    );
    let mut frame = vec![0u8; body.len() + 8];
    let mut out = OutBuf::new(&mut frame);
    let len = frame::encode(&mut out, frame::InvokeId::EVENT, |w| w.put(body.as_bytes())).expect("room");
    frame.truncate(len);
    frame
}

/// Sends N events through the gateway, each answered 200 by Lync.
fn events(rig: &mut Rig<Counted>, pool: Peer, to_tag: &str, n: u32) {
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
    );
    rig.receive_sip(pool, &request("INFO", 2, to_tag, &monitor));
    let answer = rig.take().pop().expect("the 200 to MonitorStart");
    let xref = match ctigw::csta::parse(answer.body()).expect("its CSTA body").message {
        ctigw::csta::Message::Response(ctigw::csta::Response::MonitorStarted { monitor }) => monitor.to_string(),
        other => panic!("MonitorStart answered {other:?}"),
    };
    let frame = event_frame(&xref);
    let slot = SlotId::new(0).expect("slot 0");
    let mut ok = vec![0u8; 4096];
    let mut last = Vec::new();
    for _ in 0..n {
        // The node's event into the gateway, and the INFO it sends Lync.
        let now = rig.now;
        let gw = &mut rig.gw;
        rig.calls.call(|| gw.handle_cti(now, slot, &frame));
        while let Some(t) = rig.calls.call(|| gw.poll_transmit()) {
            last.clear();
            last.extend_from_slice(t.bytes);
        }
        let info = ctigw::sip::Message::parse(&last).expect("an event INFO");
        assert_eq!(info.method(), Some(ctigw::sip::Method::Info), "the event went to Lync as an INFO");
        let len = ctigw::sip::MessageWriter::response_to(&mut ok, &info, 200, "OK", None, None)
            .and_then(|w| w.finish())
            .expect("room")
            .len();
        // Lync's 200 into the gateway: nothing comes out.
        let transmits = rig.transmits;
        rig.keep_sent = false;
        rig.receive_sip(pool, &ok[..len]);
        assert_eq!(rig.transmits, transmits, "the gateway sends nothing for Lync's 200");
    }
    println!("event: {n} events relayed and answered");
}

fn request(method: &str, cseq: u32, to_tag: &str, body: &str) -> Vec<u8> {
    let ct = if body.is_empty() { "" } else { "Content-Type: application/csta+xml\r\n" };
    format!(
        "{method} sip:ctigw@gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbench{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=bench\r\nTo: <sip:ctigw@gw>{to_tag}\r\nCall-ID: bench\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:127.0.0.1:5070>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let kind = args.next().unwrap_or_else(|| "features".into());
    let n: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(PREPARED).min(PREPARED);
    let dialplan = kind.ends_with("+dialplan");
    let kind = kind.trim_end_matches("+dialplan").to_string();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/");
    let lines = std::fs::read_to_string(format!("{dir}{}", if dialplan { "pbx-lines.conf" } else { "lines.conf" }))
        .expect("lines");
    let config = NodeConfig {
        addr: "127.0.0.1:7001".parse().expect("literal"),
        protocol: Protocol::CstaXml(SessionMode::Ecma354),
    };
    let nodes = Nodes::new(Timing::default(), &[config]).expect("one node");
    let trusted = vec![Cidr { addr: "127.0.0.1".parse().expect("literal"), prefix: 8 }];
    let mut gw_config = GatewayConfig::new("gw.example.com", 5060, trusted);
    gw_config.sessions = 64;
    let now = Instant::now();
    let mut gw = Gateway::new(now, gw_config, Appearances::parse(&lines).expect("lines parse"), nodes);
    let sim_lines = [("tel:+14255550101;ext=101", if dialplan { "101" } else { "SEPA" })];
    let mut switch = Switch::new(sim_lines, Outside::Answer(Duration::from_millis(100)));
    if dialplan {
        let pbx = ctigw::config::Config::load(std::path::Path::new(&format!("{dir}pbx.conf"))).expect("pbx.conf");
        gw.set_dialplan(pbx.dialplan);
        switch.set_naming(ctigw::sim::switch::Naming::OpenScape);
    }
    let node = Node::new(switch, Faults::default());
    let mut rig = Rig::with_calls(now, gw, vec![node], Counted);
    let pool = Peer { addr: "127.0.0.1:5070".parse().expect("literal"), transport: Transport::Udp };
    let invite = request("INVITE", 1, "", &format!("<RequestSystemStatus xmlns=\"{NS}\"/>"));
    rig.receive_sip(pool, &invite);
    let ok = rig.take().pop().expect("the 200 to the INVITE");
    let to_tag = format!(";tag={}", ok.to().ok().and_then(|to| to.tag()).expect("the gateway's tag"));
    rig.receive_sip(pool, &request("ACK", 1, &to_tag, ""));
    if kind == "event" {
        return events(&mut rig, pool, &to_tag, n);
    }
    let body = match kind.as_str() {
        "relayed" => format!("<GetDoNotDisturb xmlns=\"{NS}\"><device>tel:101</device></GetDoNotDisturb>"),
        _ => format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"),
    };
    let prepared: Vec<Vec<u8>> = (0..PREPARED).map(|i| request("INFO", i + 2, &to_tag, &body)).collect();
    rig.keep_sent = false;
    let transmits = rig.transmits;
    for info in &prepared[..n as usize] {
        rig.receive_sip(pool, info);
    }
    assert_eq!(rig.transmits - transmits, u64::from(n), "every request answered, once");
    println!("{kind}: {n} requests answered");
}
