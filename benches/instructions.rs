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
//! INFO, which Lync answers 200. The gateway's share alone is counted: run
//! under `--toggle-collect=*event_through_gateway* --toggle-collect=*answer_through_gateway*`,
//! so writing Lync's 200 (Lync's work) is left out.

use std::time::{Duration, Instant};

use ctigw::config::Cidr;
use ctigw::cti::{LinkAction, LinkEvent, NodeConfig, Nodes, Protocol, SessionMode, SlotId, Timing, frame};
use ctigw::outbuf::OutBuf;
use ctigw::rcc::appearances::Appearances;
use ctigw::rcc::{Gateway, GatewayConfig, Peer, Transport};
use ctigw::sim::node::{Faults, Node};
use ctigw::sim::switch::{LinkId, Outside, Switch};

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
const PREPARED: u32 = 10_000;

struct Rig {
    gw: Box<Gateway>,
    node: Node,
    link: Option<LinkId>,
    now: Instant,
    answers: usize,
    frame: Vec<u8>,
    /// The last message the gateway sent Lync, kept only when `keep` (the
    /// copy would count in the other kinds' figures).
    last: Vec<u8>,
    keep: bool,
}

impl Rig {
    /// Moves CTI bytes both ways and drains what the gateway sends Lync.
    fn settle(&mut self) {
        let slot = SlotId::new(0).expect("slot 0");
        loop {
            let mut moved = false;
            while let Some(action) = self.gw.poll_link_action() {
                moved = true;
                if let LinkAction::Connect { .. } = action {
                    self.link = Some(self.node.open_link());
                    self.gw.handle_link(self.now, slot, LinkEvent::Connected);
                }
            }
            let pending = self.gw.link_tx(slot).to_vec();
            if !pending.is_empty() {
                moved = true;
                self.gw.link_transmitted(slot, pending.len());
                let outputs = self.node.receive(self.now, self.link.expect("connected"), &pending).expect("frames");
                for o in outputs {
                    self.frame.clear();
                    self.frame.resize(o.body.len() + 8, 0);
                    let mut out = OutBuf::new(&mut self.frame);
                    frame::encode(&mut out, o.invoke_id, |w| w.put(&o.body)).expect("room");
                    let len = out.len();
                    self.gw.handle_cti(self.now, slot, &self.frame[..len]);
                }
            }
            while let Some(t) = self.gw.poll_transmit() {
                moved = true;
                self.answers += usize::from(t.bytes.starts_with(b"SIP/2.0 200"));
                if self.keep {
                    self.last.clear();
                    self.last.extend_from_slice(t.bytes);
                }
            }
            if !moved {
                return;
            }
        }
    }
}

/// A node's event into the gateway, and the INFO it sends Lync (into
/// `rig.last`). Counted under callgrind's `--toggle-collect`.
#[inline(never)]
fn event_through_gateway(rig: &mut Rig, frame: &[u8]) {
    let slot = SlotId::new(0).expect("slot 0");
    rig.gw.handle_cti(rig.now, slot, frame);
    while let Some(t) = rig.gw.poll_transmit() {
        rig.last.clear();
        rig.last.extend_from_slice(t.bytes);
    }
}

/// Lync's 200 to an event INFO into the gateway. Counted under
/// callgrind's `--toggle-collect`.
#[inline(never)]
fn answer_through_gateway(rig: &mut Rig, from: Peer, answer: &[u8]) {
    rig.gw.handle_datagram(rig.now, from, answer);
    while rig.gw.poll_transmit().is_some() {
        rig.answers += 1; // nothing is due: counted as a fault below
    }
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
fn events(rig: &mut Rig, pool: Peer, to_tag: &str, n: u32) {
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
    );
    rig.keep = true;
    rig.gw.handle_datagram(rig.now, pool, &request("INFO", 2, to_tag, &monitor));
    rig.settle();
    let answer = ctigw::sip::Message::parse(&rig.last).expect("the 200 to MonitorStart");
    let xref = match ctigw::csta::parse(answer.body()).expect("its CSTA body").message {
        ctigw::csta::Message::Response(ctigw::csta::Response::MonitorStarted { monitor }) => monitor.to_string(),
        other => panic!("MonitorStart answered {other:?}"),
    };
    let frame = event_frame(&xref);
    let mut ok = vec![0u8; 4096];
    rig.answers = 0;
    for _ in 0..n {
        event_through_gateway(rig, &frame);
        let info = ctigw::sip::Message::parse(&rig.last).expect("an event INFO");
        assert_eq!(info.method(), Some(ctigw::sip::Method::Info), "the event went to Lync as an INFO");
        let len = ctigw::sip::MessageWriter::response_to(&mut ok, &info, 200, "OK", None, None)
            .and_then(|w| w.finish())
            .expect("room")
            .len();
        answer_through_gateway(rig, pool, &ok[..len]);
    }
    assert_eq!(rig.answers, 0, "the gateway sends nothing for Lync's 200");
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
    let lines = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf")).expect("lines");
    let config = NodeConfig {
        addr: "127.0.0.1:7001".parse().expect("literal"),
        protocol: Protocol::CstaXml(SessionMode::Ecma354),
    };
    let nodes = Nodes::new(Timing::default(), &[config]).expect("one node");
    let trusted = vec![Cidr { addr: "127.0.0.1".parse().expect("literal"), prefix: 8 }];
    let mut gw_config = GatewayConfig::new("gw.example.com", 5060, trusted);
    gw_config.sessions = 64;
    let now = Instant::now();
    let gw = Gateway::new(now, gw_config, Appearances::parse(&lines).expect("lines parse"), nodes);
    let sim_lines = [("tel:+14255550101;ext=101", "SEPA")];
    let node = Node::new(Switch::new(sim_lines, Outside::Answer(Duration::from_millis(100))), Faults::default());
    let mut rig = Rig { gw, node, link: None, now, answers: 0, frame: Vec::new(), last: Vec::new(), keep: false };
    rig.gw.start(now);
    rig.settle();
    let pool = Peer { addr: "127.0.0.1:5070".parse().expect("literal"), transport: Transport::Udp };
    let invite = request("INVITE", 1, "", &format!("<RequestSystemStatus xmlns=\"{NS}\"/>"));
    rig.gw.handle_datagram(now, pool, &invite);
    let mut gw_tag = String::new();
    while let Some(t) = rig.gw.poll_transmit() {
        if let Ok(m) = ctigw::sip::Message::parse(t.bytes) {
            gw_tag = m.to().ok().and_then(|to| to.tag()).unwrap_or("").to_string();
        }
    }
    let to_tag = format!(";tag={gw_tag}");
    rig.gw.handle_datagram(now, pool, &request("ACK", 1, &to_tag, ""));
    rig.settle();
    if kind == "event" {
        return events(&mut rig, pool, &to_tag, n);
    }
    let body = match kind.as_str() {
        "relayed" => format!("<GetDoNotDisturb xmlns=\"{NS}\"><device>tel:101</device></GetDoNotDisturb>"),
        _ => format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"),
    };
    let prepared: Vec<Vec<u8>> = (0..PREPARED).map(|i| request("INFO", i + 2, &to_tag, &body)).collect();
    rig.answers = 0;
    for info in &prepared[..n as usize] {
        rig.gw.handle_datagram(rig.now, pool, info);
        rig.settle();
    }
    assert_eq!(rig.answers, n as usize, "every request answered 200");
    println!("{kind}: {n} requests answered");
}
