//! Codec benchmarks: nanoseconds per message for the three messages that
//! dominate a gateway's traffic (INVITE + RequestSystemStatus, INFO +
//! MakeCall, INFO + DeliveredEvent), parsed and written by ctigw, and the
//! same bytes parsed by the `rsip` crate in the same run for comparison.
//!
//! Each parse reads what routing needs (Call-ID, both tags, CSeq, top Via
//! branch), so a lazy parser is not credited for work it skipped.
//! `benches/report.py` turns criterion's medians into the ratio table.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctigw::csta::{
    self, CallEvent, CallEventKind, ConnectionId, Event, Namespace, Response, Service, SystemStatus, Text,
};
use ctigw::sip::{DialogRequest, Message, MessageWriter, Method};

fn testdata(relative: &str) -> Vec<u8> {
    let dir = std::env::var_os("CTIGW_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"));
    std::fs::read(dir.join(relative)).expect("shared testdata")
}

/// The three messages, as the gateway receives them.
fn messages() -> [(&'static str, Vec<u8>); 3] {
    let event = testdata("csta/DeliveredEvent.xml");
    let mut delivered = format!(
        "INFO sip:alice@192.0.2.10:5060;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bKgw1042\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:ctigw@gw.example.com>;tag=gw77\r\n\
         To: <sip:alice@example.com>;tag=1a2b3c;epid=01010101\r\n\
         Call-ID: 7f3e9c51d0a4@192.0.2.10\r\n\
         CSeq: 12 INFO\r\n\
         Content-Type: application/csta+xml\r\n\
         Content-Disposition: signal;handling=required\r\n\
         Content-Length: {}\r\n\r\n",
        event.len()
    )
    .into_bytes();
    delivered.extend_from_slice(&event);
    [
        ("invite_request_system_status", testdata("sip/invite_request_system_status.sip")),
        ("info_make_call", testdata("sip/info_make_call.sip")),
        ("info_delivered_event", delivered),
    ]
}

/// ctigw: the SIP message and the fields routing reads.
fn ctigw_sip(bytes: &[u8]) -> usize {
    let m = Message::parse(bytes).unwrap();
    m.call_id().unwrap().len()
        + m.from().unwrap().tag().map_or(0, str::len)
        + m.to().unwrap().tag().map_or(0, str::len)
        + m.cseq().unwrap().number as usize
        + m.via().unwrap().branch().map_or(0, str::len)
        + m.body().len()
}

/// ctigw: the same, plus the CSTA body.
fn ctigw_sip_csta(bytes: &[u8]) -> usize {
    let m = Message::parse(bytes).unwrap();
    let doc = csta::parse(m.body()).unwrap();
    m.call_id().unwrap().len()
        + m.from().unwrap().tag().map_or(0, str::len)
        + m.to().unwrap().tag().map_or(0, str::len)
        + m.cseq().unwrap().number as usize
        + m.via().unwrap().branch().map_or(0, str::len)
        + matches!(doc.message, csta::Message::Event(_)) as usize
}

/// rsip: the same SIP fields from the same bytes.
fn rsip_sip(bytes: &[u8]) -> usize {
    use rsip::prelude::*;
    let m = rsip::SipMessage::try_from(bytes).unwrap();
    let from_tag = m.from_header().unwrap().tag().unwrap().map_or(0, |t| t.value().len());
    let to_tag = m.to_header().unwrap().tag().unwrap().map_or(0, |t| t.value().len());
    let branch = m.via_header().unwrap().typed().unwrap().branch().map_or(0, |b| b.to_string().len());
    m.call_id_header().unwrap().value().len()
        + from_tag
        + to_tag
        + m.cseq_header().unwrap().seq().unwrap() as usize
        + branch
        + m.body().len()
}

/// ctigw: the answer the gateway writes for each message.
fn ctigw_write(name: &str, request: &Message<'_>, out: &mut [u8]) -> usize {
    let source: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    match name {
        "invite_request_system_status" => {
            let w = MessageWriter::response_to(out, request, 200, "OK", Some("gw77"), Some(source)).unwrap();
            let answer = Response::SystemStatus(SystemStatus::Normal);
            w.finish_with_body("application/csta+xml", |o| answer.write(Namespace::Ed3, o)).unwrap().len()
        }
        "info_make_call" => {
            let w = MessageWriter::response_to(out, request, 200, "OK", None, Some(source)).unwrap();
            let answer = Response::Call {
                service: Service::MakeCall,
                call: ConnectionId::new(Text::literal("C-0001"), Text::literal("tel:+14255550101;ext=101")),
            };
            w.finish_with_body("application/csta+xml", |o| answer.write(Namespace::Ed3, o)).unwrap().len()
        }
        _ => {
            let routes = ["<sip:pool.example.com;lr>"];
            let d = DialogRequest {
                method: Method::Info,
                request_uri: "sip:alice@192.0.2.10:5060;transport=tcp",
                route_set: &routes,
                via_transport: "TCP",
                via_sent_by: "192.0.2.20:5060",
                branch: "z9hG4bKgw1042",
                local_uri: "sip:ctigw@gw.example.com",
                local_tag: "gw77",
                remote_uri: "sip:alice@example.com",
                remote_tag: "1a2b3c",
                call_id: "7f3e9c51d0a4@192.0.2.10",
                cseq: 12,
                contact: "sip:192.0.2.20:5060;transport=tcp",
            };
            let mut event = CallEvent::new(
                CallEventKind::Delivered,
                Text::literal("4711"),
                ConnectionId::new(Text::literal("C-0001"), Text::literal("tel:+14255559876")),
            );
            event.subject = Some(Text::literal("tel:+14255559876"));
            event.calling = Some(Text::literal("tel:+14255550101;ext=101"));
            event.called = Some(Text::literal("tel:+14255559876"));
            event.local_state = Some(csta::LocalConnectionState::Alerting);
            event.cause = Some(csta::cause::NEW_CALL);
            let event = Event::Call(event);
            let w = MessageWriter::in_dialog(out, &d).unwrap();
            w.finish_with_body("application/csta+xml", |o| event.write(Namespace::Ed3, o)).unwrap().len()
        }
    }
}

fn parse(c: &mut Criterion) {
    for (name, bytes) in messages() {
        // Both parsers must accept the bytes before they are timed.
        assert_eq!(ctigw_sip(&bytes), rsip_sip(&bytes), "{name}: both parsers read the same fields");
        let mut group = c.benchmark_group(format!("parse/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("ctigw_sip", |b| b.iter(|| ctigw_sip(black_box(&bytes))));
        group.bench_function("ctigw_sip_csta", |b| b.iter(|| ctigw_sip_csta(black_box(&bytes))));
        group.bench_function("rsip_sip", |b| b.iter(|| rsip_sip(black_box(&bytes))));
        group.finish();
    }
}

fn write(c: &mut Criterion) {
    let mut out = vec![0u8; 4096];
    for (name, bytes) in messages() {
        let request = Message::parse(&bytes).unwrap();
        let mut group = c.benchmark_group(format!("write/{name}"));
        group.bench_function("ctigw", |b| b.iter(|| ctigw_write(name, black_box(&request), &mut out)));
        group.finish();
    }
}

criterion_group! {
    name = codec;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);
    targets = parse, write
}
criterion_main!(codec);
