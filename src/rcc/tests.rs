//! The gateway core against the simulator's telephone system, in memory,
//! with a fake clock: every flow of PROTOCOL.md, every refusal, node loss
//! and return, retransmissions, CSeq errors, BYE both ways, a full table.

use std::time::{Duration, Instant};

use super::appearances::Appearances;
use super::{ConnId, Gateway, GatewayConfig, Peer, Transport};
use crate::config::Cidr;
use crate::csta::{self, Event, Message as Csta, Request, Response};
use crate::cti::frame::InvokeId;
use crate::cti::{NodeConfig, Nodes, Protocol, SessionMode, Timing};
use crate::rig::Rig;
use crate::rig::lync::{Lync, NS, POOL, body_of, csta_answer, events, only_request, only_response};
use crate::sim::node::{Faults, Node};
use crate::sim::switch::{Outside, Switch};
use crate::sip::{self, Message};

const ALICE_LINE: &str = "tel:+14255550101;ext=101";

fn lines() -> Appearances {
    Appearances::parse(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf")).unwrap())
        .unwrap()
}

fn switch() -> Switch {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim-lines.conf")).unwrap();
    let lines: Vec<(String, String)> =
        crate::lines::parse(&text).map(|a| a.unwrap()).map(|a| (a.line.to_string(), a.device.to_string())).collect();
    Switch::new(lines.iter().map(|(l, d)| (l.as_str(), d.as_str())), Outside::Answer(Duration::from_millis(1000)))
}

fn udp() -> Peer {
    Peer { addr: POOL.parse().unwrap(), transport: Transport::Udp }
}

fn tcp() -> Peer {
    Peer { addr: POOL.parse().unwrap(), transport: Transport::Tcp(ConnId(7)) }
}

fn tls() -> Peer {
    Peer { addr: POOL.parse().unwrap(), transport: Transport::Tls(ConnId(9)) }
}

/// The rig as these scenarios set it up: `node_count` simulated nodes
/// with the demo directory, the gateway with `sessions` sessions.
fn world(node_count: usize, sessions: usize) -> Rig {
    world_with(node_count, sessions, |_| {})
}

/// As [`world`], the gateway's configuration changed by `tweak` first.
fn world_with(node_count: usize, sessions: usize, tweak: impl FnOnce(&mut GatewayConfig)) -> Rig {
    let timing = Timing {
        heartbeat_interval: Duration::from_secs(30),
        heartbeat_misses: 2,
        reconnect_interval: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(3),
    };
    let configs: Vec<NodeConfig> = (0..node_count)
        .map(|i| NodeConfig {
            addr: format!("127.0.0.1:{}", 7001 + i).parse().unwrap(),
            protocol: Protocol::CstaXml(SessionMode::Ecma354),
        })
        .collect();
    let nodes = Nodes::new(timing, &configs).unwrap();
    let mut config =
        GatewayConfig::new("gw.example.com", 5060, vec![Cidr { addr: "127.0.0.1".parse().unwrap(), prefix: 32 }]);
    config.sessions = sessions;
    config.tls_port = Some(5061);
    tweak(&mut config);
    let now = Instant::now();
    let gw = Gateway::new(now, config, lines(), nodes);
    Rig::new(now, gw, (0..node_count).map(|_| Node::new(switch(), Faults::default())).collect())
}

#[test]
fn sign_in_features_monitor_make_call_and_the_events() {
    let mut w = world(2, 16);
    let mut alice = Lync::new("alice@example.com", "c1", udp());
    let out = alice.invite(&mut w, Some(ALICE_LINE));
    let ok = only_response(&out);
    assert_eq!(ok.status_code(), Some(200));
    assert!(ok.to().unwrap().tag().is_some());
    assert_eq!(ok.contact().unwrap().unwrap().uri, "sip:gw.example.com:5060;transport=udp");
    let record_route: Vec<_> = ok.name_addrs(sip::HeaderName::RecordRoute).map(|r| r.unwrap().uri).collect();
    assert_eq!(record_route, ["sip:pool.example.com;lr"], "RFC 3261 12.1.1: copied into the 2xx");
    assert_eq!(body_of(ok), Csta::Response(Response::SystemStatus(csta::SystemStatus::Normal)));
    assert_eq!(ok.single(sip::HeaderName::SessionExpires).unwrap(), Some("1800;refresher=uac"));
    assert!(ok.requires("timer"));
    assert!(alice.ack(&mut w).is_empty());
    assert_eq!(w.gw.session_count(), 1);

    let Csta::Response(Response::Features(services)) =
        csta_answer(&alice.info(&mut w, &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>")))
    else {
        panic!()
    };
    assert!(services.contains(csta::Service::MakeCall));

    let answer = csta_answer(&alice.info(&mut w, &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>")));
    assert!(matches!(answer, Csta::Response(Response::MonitorStarted { .. })), "{answer:?}");

    let out = alice.info(&mut w, &format!("<MakeCall xmlns=\"{NS}\"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:+14255559876</calledDirectoryNumber></MakeCall>"));
    assert_eq!(events(&out), ["ServiceInitiatedEvent"], "one event INFO in flight at a time");
    let out = alice.answer_all(&mut w, out);
    let r = only_response(&out);
    let Csta::Response(Response::Call { call, .. }) = body_of(r) else { panic!("{r:?}") };
    assert_eq!(call.device.unwrap(), "tel:101", "the calling device echoed as sent");
    assert_eq!(events(&out), ["ServiceInitiatedEvent", "OriginatedEvent", "DeliveredEvent"]);
    // The events are in-dialog INFOs: the gateway's tag in From, its own CSeq.
    let infos: Vec<_> = out.iter().filter(|m| m.method().is_some()).collect();
    assert_eq!(infos[0].from().unwrap().tag(), Some(alice.gw_tag.as_str()));
    assert_eq!(infos[0].to().unwrap().tag(), Some(alice.tag.as_str()));
    let cseqs: Vec<u32> = infos.iter().map(|m| m.cseq().unwrap().number).collect();
    assert_eq!(cseqs, [1, 2, 3]);
    assert_eq!(infos[0].request_uri(), Some("sip:pool.example.com:5070;transport=udp"));
    assert_eq!(infos[0].name_addrs(sip::HeaderName::Route).next().unwrap().unwrap().uri, "sip:pool.example.com;lr");

    w.advance(1000); // the outside party answers
    let out = w.take();
    assert_eq!(events(&out), ["EstablishedEvent"]);
    alice.answer(&mut w, &out);

    let out = alice.info(&mut w, &format!("<HoldCall xmlns=\"{NS}\"><callToBeHeld><callID>C-0001</callID><deviceID>{ALICE_LINE}</deviceID></callToBeHeld></HoldCall>"));
    assert!(matches!(body_of(only_response(&out)), Csta::Response(Response::Ack(csta::Service::HoldCall))));
    assert_eq!(events(&out), ["HeldEvent"]);
}

#[test]
fn refusals_of_the_invite() {
    let mut w = world(1, 1);
    let untrusted = Peer { addr: "192.0.2.66:5060".parse().unwrap(), transport: Transport::Udp };
    let mut mallory = Lync::new("alice@example.com", "m1", untrusted);
    assert_eq!(only_response(&mallory.invite(&mut w, None)).reason(), Some("Forbidden: untrusted source"));
    // Anything else from an untrusted source is ignored.
    assert!(mallory.info(&mut w, "<x/>").is_empty());

    let mut eve = Lync::new("eve@example.com", "e1", udp());
    assert_eq!(only_response(&eve.invite(&mut w, None)).reason(), Some("Forbidden: unknown user"));
    let mut alice = Lync::new("alice@example.com", "a1", udp());
    assert_eq!(
        only_response(&alice.invite(&mut w, Some("tel:102"))).reason(),
        Some("Forbidden: line not assigned to the user")
    );

    let not_csta = "INVITE sip:ctigw@gw SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKsdp\nFrom: <sip:alice@example.com>;tag=s\nTo: <sip:ctigw@gw>\nCall-ID: sdp\nCSeq: 1 INVITE\nContact: <sip:p>\nContent-Type: application/sdp\n\nv=0\n";
    let out = w.send(udp(), not_csta);
    assert_eq!(only_response(&out).status_code(), Some(415));
    assert_eq!(only_response(&out).value_of("Accept"), Some(&b"application/csta+xml"[..]));

    let malformed = not_csta.replace("application/sdp", "application/csta+xml").replace("v=0\n", "<MakeCall");
    let out = w.send(udp(), &malformed);
    assert_eq!(only_response(&out).status_code(), Some(400));
    assert!(only_response(&out).reason().unwrap().starts_with("Malformed CSTA body:"));

    let wrong = not_csta
        .replace("application/sdp", "application/csta+xml")
        .replace("v=0\n", &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"));
    assert_eq!(only_response(&w.send(udp(), &wrong)).status_code(), Some(488));

    // Full: one session fits; bob is refused with Retry-After.
    alice.invite(&mut w, None);
    let mut bob = Lync::new("bob@example.com", "b1", udp());
    let out = bob.invite(&mut w, None);
    assert_eq!(only_response(&out).reason(), Some("Service Unavailable: session table full"));
    assert_eq!(only_response(&out).value_of("Retry-After"), Some(&b"30"[..]));
    assert_eq!(w.gw.session_count(), 1);
    assert_eq!(w.gw.counters.refused_full, 1);

    // With no node up as well, that is what is said first.
    w.kill(0);
    let mut carol = Lync::new("carol@example.com", "k1", udp());
    let out = carol.invite(&mut w, None);
    assert_eq!(only_response(&out).reason(), Some("Service Unavailable: no CTI node is up"));
}

#[test]
fn no_node_up_is_503_with_the_reconnect_interval() {
    let mut w = world(1, 4);
    w.kill(0);
    let mut alice = Lync::new("alice@example.com", "a1", udp());
    let out = alice.invite(&mut w, None);
    assert_eq!(only_response(&out).reason(), Some("Service Unavailable: no CTI node is up"));
    assert_eq!(only_response(&out).value_of("Retry-After"), Some(&b"10"[..]));
}

#[test]
fn another_users_device_or_line_is_refused_without_reaching_the_node() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "a1", tcp());
    alice.sign_in(&mut w);
    let bobs = [
        format!(
            "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:102</deviceObject></monitorObject></MonitorStart>"
        ),
        format!(
            "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:+14255550102;ext=102</callingDevice><calledDirectoryNumber>tel:101</calledDirectoryNumber></MakeCall>"
        ),
        format!(
            "<AnswerCall xmlns=\"{NS}\"><callToBeAnswered><callID>C-1</callID><deviceID>tel:102</deviceID></callToBeAnswered></AnswerCall>"
        ),
        format!(
            "<TransferCall xmlns=\"{NS}\"><heldCall><callID>C-1</callID><deviceID>tel:101</deviceID></heldCall><activeCall><callID>C-2</callID><deviceID>SEPB1B2C3D4E5F6</deviceID></activeCall></TransferCall>"
        ),
        format!(
            "<SetDoNotDisturb xmlns=\"{NS}\"><device>tel:199</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>"
        ),
        format!("<HoldCall xmlns=\"{NS}\"><callToBeHeld><callID>C-1</callID></callToBeHeld></HoldCall>"),
    ];
    for xml in &bobs {
        let answer = csta_answer(&alice.info(&mut w, xml));
        assert_eq!(answer, Csta::Error(csta::ErrorCode::PRIVILEGE_VIOLATION), "{xml}");
    }
    assert_eq!(w.gw.counters.privilege_violations, bobs.len() as u64);
    assert_eq!(w.gw.counters.relayed, 0, "nothing reached the node");
    assert_eq!(w.nodes[0].node.switch().describe_calls().len(), 0);
}

#[test]
fn a_dead_node_refuses_at_once_and_its_return_ends_the_old_sessions() {
    let mut w = world_with(2, 8, |c| c.failover = super::Failover::Wait);
    let mut alice = Lync::new("alice@example.com", "a1", udp());
    alice.sign_in(&mut w); // node 1
    let mut bob = Lync::new("bob@example.com", "b1", udp());
    bob.sign_in(&mut w); // node 2 (round-robin)
    w.kill(0);
    let answer = csta_answer(&alice.info(
        &mut w,
        &format!("<SnapshotDevice xmlns=\"{NS}\"><snapshotObject>tel:101</snapshotObject></SnapshotDevice>"),
    ));
    assert_eq!(answer, Csta::Error(csta::ErrorCode::RESOURCE_OUT_OF_SERVICE));
    let answer = csta_answer(&bob.info(
        &mut w,
        &format!("<SnapshotDevice xmlns=\"{NS}\"><snapshotObject>tel:102</snapshotObject></SnapshotDevice>"),
    ));
    assert!(matches!(answer, Csta::Response(Response::Snapshot { .. })), "bob's node serves on");
    let Csta::Response(Response::SystemStatus(status)) =
        csta_answer(&alice.info(&mut w, &format!("<RequestSystemStatus xmlns=\"{NS}\"/>")))
    else {
        panic!()
    };
    assert_eq!(status, csta::SystemStatus::Disabled);

    // The node comes back: a new connection, alice's old session is ended.
    w.revive(0);
    w.advance(10_000);
    let out = w.take();
    let byes: Vec<_> = out.iter().filter(|m| m.method() == Some(sip::Method::Bye)).collect();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].call_id().unwrap(), "a1");
    assert_eq!(w.gw.session_count(), 1);
    // Lync re-INVITEs and lands on a live node.
    let mut again = Lync::new("alice@example.com", "a2", udp());
    again.sign_in(&mut w);
    assert_eq!(w.gw.session_count(), 2);
}

#[test]
fn outstanding_requests_fail_when_the_node_dies() {
    let mut w = world(1, 4);
    w.nodes[0].node.faults.delay = Duration::from_secs(100); // (the sans-IO world ignores delay)
    let mut alice = Lync::new("alice@example.com", "a1", tcp());
    alice.sign_in(&mut w);
    // Make the node keep the request: stop delivering its outputs.
    let link = w.nodes[0].link.take();
    let out =
        alice.info(&mut w, &format!("<GetDoNotDisturb xmlns=\"{NS}\"><device>tel:101</device></GetDoNotDisturb>"));
    assert!(out.is_empty(), "waiting for the node");
    w.nodes[0].link = link;
    w.kill(0);
    let out = w.take();
    assert_eq!(csta_answer(&out), Csta::Error(csta::ErrorCode::RESOURCE_OUT_OF_SERVICE));
}

#[test]
fn udp_retransmissions_are_absorbed_and_answered_from_the_kept_response() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "a1", udp());
    let first = alice.invite(&mut w, None);
    // An INVITE retransmission gets the same 200 again.
    alice.cseq -= 1;
    let again = alice.invite(&mut w, None);
    assert_eq!(only_response(&again).as_bytes(), only_response(&first).as_bytes());
    // The 200 is retransmitted until the ACK: T1, then 2 T1.
    w.advance(500);
    assert_eq!(w.take().len(), 1);
    w.advance(1000);
    assert_eq!(w.take().len(), 1);
    alice.ack(&mut w);
    w.advance(4000);
    assert!(w.take().is_empty(), "no more after the ACK");

    // An INFO retransmitted after its answer: the kept answer.
    let xml = format!("<GetCSTAFeatures xmlns=\"{NS}\"/>");
    let first = alice.info(&mut w, &xml);
    let text = alice.request_text(
        "INFO",
        &format!("<?xml version=\"1.0\"?>{xml}"),
        &format!("z9hG4bK{}{}", alice.call_id, alice.cseq),
    );
    let again = w.send(udp(), &text);
    assert_eq!(only_response(&again).as_bytes(), only_response(&first).as_bytes());
    assert_eq!(w.gw.counters.requests[5], 2);

    // A retransmission while the node has not answered yet is absorbed.
    let link = w.nodes[0].link.take();
    let xml = format!("<GetDoNotDisturb xmlns=\"{NS}\"><device>tel:101</device></GetDoNotDisturb>");
    assert!(alice.info(&mut w, &xml).is_empty());
    let text = alice.request_text(
        "INFO",
        &format!("<?xml version=\"1.0\"?>{xml}"),
        &format!("z9hG4bK{}{}", alice.call_id, alice.cseq),
    );
    assert!(w.send(udp(), &text).is_empty());
    assert_eq!(w.gw.counters.relayed, 1, "relayed once");
    w.nodes[0].link = link;
}

#[test]
fn an_unanswered_event_info_is_retransmitted_then_the_dialog_ends() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "a1", udp());
    alice.sign_in(&mut w);
    alice.info(&mut w, &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"));
    // A call rings the monitored line; the shell would hand the node's
    // events to the gateway, as `deliver` does.
    let (reply, outputs) = w.nodes[0].node.command(w.now, "call tel:+14255558888 tel:101").unwrap();
    assert_eq!(reply, "ok C-0001");
    w.deliver(0, outputs);
    w.pump();
    let out = w.take();
    assert_eq!(events(&out), ["DeliveredEvent"]);
    // Nobody answers: Timer E retransmissions, then Timer F ends the dialog.
    let mut retransmissions = 0;
    let mut byes = std::collections::BTreeSet::new();
    for _ in 0..80 {
        w.advance(500);
        for m in w.take() {
            match m.method() {
                Some(sip::Method::Info) => retransmissions += 1,
                // The BYE is itself retransmitted while unanswered.
                Some(sip::Method::Bye) => {
                    byes.insert(m.via().unwrap().branch().unwrap().to_string());
                }
                _ => {}
            }
        }
    }
    assert!((6..=11).contains(&retransmissions), "{retransmissions} retransmissions in 40 s");
    assert_eq!(byes.len(), 1, "the dead dialog is ended with one BYE");
    assert_eq!(w.gw.counters.event_timeouts, 1);
    assert_eq!(w.gw.session_count(), 0);
}

#[test]
fn cseq_out_of_order_and_unknown_dialogs() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "a1", tcp());
    alice.sign_in(&mut w);
    alice.info(&mut w, &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"));
    alice.cseq -= 1;
    let out = alice.info(&mut w, &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"));
    assert_eq!(only_response(&out).status_code(), Some(500));
    let mut stranger = Lync::new("alice@example.com", "nobody", tcp());
    stranger.gw_tag = "nope".into();
    assert_eq!(only_response(&stranger.info(&mut w, "<x/>")).status_code(), Some(481));
    assert_eq!(only_response(&stranger.in_dialog(&mut w, "BYE", "")).status_code(), Some(481));
}

#[test]
fn bye_from_lync_stops_the_monitors_and_newest_session_wins() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "a1", tcp());
    alice.sign_in(&mut w);
    alice.info(&mut w, &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"));
    assert_eq!(w.nodes[0].node.switch().monitor_count(), 1);
    // A new INVITE of the same user and line replaces the session.
    let mut again = Lync::new("alice@example.com", "a2", tcp());
    let out = again.invite(&mut w, Some("tel:101"));
    assert!(out.iter().any(|m| m.method() == Some(sip::Method::Bye) && m.call_id().unwrap() == "a1"), "{out:#?}");
    assert_eq!(w.gw.session_count(), 1);
    assert_eq!(w.nodes[0].node.switch().monitor_count(), 0, "the old session's monitor stopped");
    again.ack(&mut w);
    again.info(&mut w, &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"));
    assert_eq!(w.nodes[0].node.switch().monitor_count(), 1);
    let out = again.in_dialog(&mut w, "BYE", "");
    assert_eq!(only_response(&out).status_code(), Some(200));
    assert_eq!(w.gw.session_count(), 0);
    assert_eq!(w.nodes[0].node.switch().monitor_count(), 0);
}

#[test]
fn options_unknown_methods_required_extensions_and_session_timers() {
    let mut w = world(1, 4);
    let options = "OPTIONS sip:ctigw@gw SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKo1\nFrom: <sip:alice@example.com>;tag=o\nTo: <sip:ctigw@gw>\nCall-ID: o1\nCSeq: 1 OPTIONS\n\n";
    let out = w.send(udp(), options);
    assert_eq!(only_response(&out).status_code(), Some(200));
    assert!(only_response(&out).value_of("Allow").is_some());
    assert_eq!(
        only_response(&w.send(udp(), &options.replace("OPTIONS", "REGISTER").replace("z9hG4bKo1", "z9hG4bKr1")))
            .status_code(),
        Some(405)
    );
    assert_eq!(
        only_response(&w.send(udp(), &options.replace("OPTIONS", "FROBNICATE").replace("z9hG4bKo1", "z9hG4bKf1")))
            .status_code(),
        Some(501)
    );
    let out = w.send(
        udp(),
        &options.replace("CSeq: 1 OPTIONS", "CSeq: 1 OPTIONS\nRequire: 100rel").replace("z9hG4bKo1", "z9hG4bKq1"),
    );
    assert_eq!(only_response(&out).status_code(), Some(420));
    assert_eq!(only_response(&out).value_of("Unsupported"), Some(&b"100rel"[..]));

    // Session-Expires 1800, Lync the refresher: without a refresh the
    // gateway ends the session 32 s before it expires (RFC 4028 section 10).
    let mut alice = Lync::new("alice@example.com", "a1", tcp());
    alice.sign_in(&mut w);
    w.advance(1_767_000);
    assert_eq!(w.gw.session_count(), 1, "not yet");
    w.advance(6_000);
    let out = w.take();
    assert!(out.iter().any(|m| m.method() == Some(sip::Method::Bye)), "expired: {out:?}");
    assert_eq!(w.gw.session_count(), 0);
    // A refresh (UPDATE) keeps it.
    let mut bob = Lync::new("bob@example.com", "b1", tcp());
    bob.sign_in(&mut w);
    w.advance(1_000_000);
    assert_eq!(only_response(&bob.in_dialog(&mut w, "UPDATE", "")).status_code(), Some(200));
    w.advance(1_000_000);
    assert_eq!(w.gw.session_count(), 1);
}

#[test]
fn an_incoming_call_is_answered_and_another_deflected() {
    let mut w = world(1, 4);
    let mut bob = Lync::new("bob@example.com", "b1", tcp());
    bob.sign_in(&mut w);
    bob.info(&mut w, &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:102</deviceObject></monitorObject></MonitorStart>"));
    let (reply, outputs) = w.nodes[0].node.command(w.now, "call tel:+14255557777 tel:102").unwrap();
    assert_eq!(reply, "ok C-0001");
    w.deliver(0, outputs);
    w.pump();
    let out = w.take();
    assert_eq!(events(&out), ["DeliveredEvent"]);
    let Csta::Event(Event::Call(delivered)) = body_of(out.iter().find(|m| m.method().is_some()).unwrap()) else {
        panic!()
    };
    assert_eq!(delivered.local_state, Some(csta::LocalConnectionState::Alerting));
    bob.answer(&mut w, &out);
    let out = bob.info(&mut w, &format!("<AnswerCall xmlns=\"{NS}\"><callToBeAnswered><callID>C-0001</callID><deviceID>tel:102</deviceID></callToBeAnswered></AnswerCall>"));
    assert!(matches!(body_of(only_response(&out)), Csta::Response(Response::Ack(csta::Service::AnswerCall))));
    assert_eq!(events(&out), ["EstablishedEvent"]);
    bob.answer(&mut w, &out);

    let (_, outputs) = w.nodes[0].node.command(w.now, "call tel:+14255556666 tel:102").unwrap();
    w.deliver(0, outputs);
    w.pump();
    let out = w.take();
    bob.answer_all(&mut w, out);
    let out = bob.info(&mut w, &format!("<DeflectCall xmlns=\"{NS}\"><callToBeDiverted><callID>C-0002</callID><deviceID>tel:102</deviceID></callToBeDiverted><newDestination>tel:+14255551234</newDestination></DeflectCall>"));
    assert!(matches!(body_of(only_response(&out)), Csta::Response(Response::Ack(csta::Service::DeflectCall))));
    assert_eq!(events(&out), ["DivertedEvent"]);
}

#[test]
fn malformed_requests_get_their_reason() {
    let mut w = world(1, 4);
    let bad_version = "OPTIONS sip:ctigw@gw SIP/7.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKv7\nFrom: <sip:a@b>;tag=v\nTo: <sip:c@d>\nCall-ID: v7\nCSeq: 1 OPTIONS\n\n";
    let out = w.send(udp(), bad_version);
    assert_eq!(only_response(&out).status_code(), Some(505));
    let no_call_id = "OPTIONS sip:ctigw@gw SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKn1\nFrom: <sip:a@b>;tag=v\nTo: <sip:c@d>\nCSeq: 1 OPTIONS\n\n";
    assert_eq!(only_response(&w.send(udp(), no_call_id)).reason(), Some("Missing Call-ID header"));
    let gibberish = "this is not SIP at all\n\n";
    assert!(w.send(udp(), gibberish).is_empty(), "nothing to answer");
    assert_eq!(w.gw.counters.malformed, 2);
}

#[test]
fn every_invite_header_limit_is_a_clear_refusal() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", &"x".repeat(200), udp());
    let out = alice.invite(&mut w, None);
    assert_eq!(only_response(&out).status_code(), Some(400));
    assert!(only_response(&out).reason().unwrap().contains("too long"));
    let _ = InvokeId::EVENT;
    let _ = Request::GetCstaFeatures { line: None };
}

#[test]
fn shutting_down_ends_every_session_with_bye_and_refuses_new_ones() {
    let mut w = world(2, 4);
    let mut alice = Lync::new("alice@example.com", "a1", tcp());
    let mut bob = Lync::new("bob@example.com", "b1", udp());
    alice.sign_in(&mut w);
    bob.sign_in(&mut w);
    alice.info(&mut w, &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"));
    let monitors = || w.nodes.iter().map(|n| n.node.switch().monitor_count()).sum::<usize>();
    assert_eq!(monitors(), 1);
    assert!(!w.gw.is_drained(), "running, not stopping");

    w.gw.shut_down(w.now);
    w.pump();
    let out = w.take();
    let byes: Vec<&str> =
        out.iter().filter(|m| m.method() == Some(sip::Method::Bye)).map(|m| m.call_id().unwrap()).collect();
    assert_eq!(byes.len(), 2, "{out:#?}");
    assert!(byes.contains(&"a1") && byes.contains(&"b1"));
    assert_eq!(w.gw.session_count(), 0);
    let monitors = w.nodes.iter().map(|n| n.node.switch().monitor_count()).sum::<usize>();
    assert_eq!(monitors, 0, "the monitors are stopped on the node");
    // Nobody new gets in while stopping; Lync tries another gateway.
    let mut carol = Lync::new("carol@example.com", "c1", tcp());
    let refused = carol.invite(&mut w, None);
    assert_eq!(only_response(&refused).status_code(), Some(503));
    assert_eq!(only_response(&refused).reason(), Some("Service Unavailable: gateway shutting down"));
    // Drained once Lync has answered the BYEs.
    assert!(!w.gw.is_drained(), "the BYEs are still in flight");
    let (to_alice, to_bob): (Vec<_>, Vec<_>) =
        out.into_iter().filter(|m| m.method().is_some()).partition(|m| m.call_id().unwrap() == "a1");
    alice.answer(&mut w, &to_alice);
    assert!(!w.gw.is_drained(), "bob's BYE is still in flight");
    bob.answer(&mut w, &to_bob);
    assert!(w.gw.is_drained());
}

#[test]
fn over_tls_the_gateway_names_tls_and_its_port_and_a_closed_connection_ends_the_dialog() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "t1", tls());
    let out = alice.invite(&mut w, Some(ALICE_LINE));
    let ok = only_response(&out);
    assert_eq!(ok.status_code(), Some(200));
    assert_eq!(ok.contact().unwrap().unwrap().uri, "sip:gw.example.com:5061;transport=tls");
    assert!(alice.ack(&mut w).is_empty(), "no retransmission over a reliable transport");
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
    );
    assert!(matches!(csta_answer(&alice.info(&mut w, &monitor)), Csta::Response(Response::MonitorStarted { .. })));
    let out = alice.info(&mut w, &format!("<MakeCall xmlns=\"{NS}\"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:+14255559876</calledDirectoryNumber></MakeCall>"));
    let info = out.iter().find(|m| m.method() == Some(sip::Method::Info)).expect("an event INFO");
    let via = info.via().unwrap();
    assert_eq!((via.transport, via.host, via.port), ("TLS", "gw.example.com", Some(5061)));
    assert_eq!(info.contact().unwrap().unwrap().uri, "sip:gw.example.com:5061;transport=tls");
    assert!(w.sent.is_empty());

    // Beside it, a TCP dialog keeps the SIP port; bob's line stays bob's over TLS too.
    let mut carol = Lync::new("carol@example.com", "t2", tcp());
    let out = carol.invite(&mut w, None);
    assert_eq!(only_response(&out).contact().unwrap().unwrap().uri, "sip:gw.example.com:5060;transport=tcp");
    carol.ack(&mut w);
    let bobs = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:102</deviceObject></monitorObject></MonitorStart>"
    );
    assert_eq!(csta_answer(&alice.info(&mut w, &bobs)), Csta::Error(csta::ErrorCode::PRIVILEGE_VIOLATION));
    let mut mallory = Lync::new("alice@example.com", "t3", tls());
    assert_eq!(
        only_response(&mallory.invite(&mut w, Some("tel:102"))).reason(),
        Some("Forbidden: line not assigned to the user")
    );

    // The TLS connection closes: its dialog ends, the TCP one stays.
    assert_eq!(w.gw.session_count(), 2);
    w.gw.tcp_closed(w.now, ConnId(9));
    w.pump();
    assert_eq!(w.gw.session_count(), 1);
    assert_eq!(w.gw.sessions().next().unwrap().user(), "sip:carol@example.com");
}

#[test]
fn every_request_kind_against_another_users_device_and_line_is_refused() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "a1", tcp());
    alice.sign_in(&mut w);
    let conn = |tag: &str, d: &str| format!("<{tag}><callID>C-1</callID><deviceID>{d}</deviceID></{tag}>");
    // Every request that names a device, with `D` for it.
    type Body = Box<dyn Fn(&str) -> String>;
    let kinds: Vec<(&str, Body)> = vec![
        ("MonitorStart", Box::new(|d| format!("<monitorObject><deviceObject>{d}</deviceObject></monitorObject>"))),
        ("SnapshotDevice", Box::new(|d| format!("<snapshotObject>{d}</snapshotObject>"))),
        (
            "MakeCall",
            Box::new(|d| {
                format!("<callingDevice>{d}</callingDevice><calledDirectoryNumber>tel:101</calledDirectoryNumber>")
            }),
        ),
        ("AnswerCall", Box::new(move |d| conn("callToBeAnswered", d))),
        ("ClearConnection", Box::new(move |d| conn("connectionToBeCleared", d))),
        ("HoldCall", Box::new(move |d| conn("callToBeHeld", d))),
        ("RetrieveCall", Box::new(move |d| conn("callToBeRetrieved", d))),
        (
            "ConsultationCall",
            Box::new(move |d| format!("{}<consultedDevice>tel:101</consultedDevice>", conn("existingCall", d))),
        ),
        ("TransferCall", Box::new(move |d| format!("{}{}", conn("heldCall", d), conn("activeCall", "tel:101")))),
        ("ConferenceCall", Box::new(move |d| format!("{}{}", conn("heldCall", "tel:101"), conn("activeCall", d)))),
        ("AlternateCall", Box::new(move |d| format!("{}{}", conn("heldCall", d), conn("activeCall", d)))),
        (
            "SingleStepTransferCall",
            Box::new(move |d| format!("{}<transferredTo>tel:101</transferredTo>", conn("activeCall", d))),
        ),
        (
            "DeflectCall",
            Box::new(move |d| format!("{}<newDestination>tel:101</newDestination>", conn("callToBeDiverted", d))),
        ),
        (
            "GenerateDigits",
            Box::new(move |d| format!("{}<charactersToSend>12</charactersToSend>", conn("connectionToSendDigits", d))),
        ),
        (
            "SetForwarding",
            Box::new(|d| {
                format!(
                    "<device>{d}</device><forwardingType>forwardImmediate</forwardingType><activateForward>true</activateForward><forwardDN>tel:101</forwardDN>"
                )
            }),
        ),
        ("GetForwarding", Box::new(|d| format!("<device>{d}</device>"))),
        ("SetDoNotDisturb", Box::new(|d| format!("<device>{d}</device><doNotDisturbOn>true</doNotDisturbOn>"))),
        ("GetDoNotDisturb", Box::new(|d| format!("<device>{d}</device>"))),
    ];
    // Bob's device, bob's line in its forms, and a line nobody has.
    let targets = [
        "SEPB1B2C3D4E5F6",
        "tel:+14255550102;ext=102",
        "tel:102",
        "sip:+14255550102@example.com;user=phone",
        "tel:999",
    ];
    let mut tried = 0;
    for (name, body) in &kinds {
        for target in targets {
            let xml = format!("<{name} xmlns=\"{NS}\">{}</{name}>", body(target));
            let answer = csta_answer(&alice.info(&mut w, &xml));
            assert_eq!(answer, Csta::Error(csta::ErrorCode::PRIVILEGE_VIOLATION), "{xml}");
            tried += 1;
        }
        // The same request on alice's own device is not refused for privilege.
        let own = format!("<{name} xmlns=\"{NS}\">{}</{name}>", body("tel:101"));
        assert_ne!(csta_answer(&alice.info(&mut w, &own)), Csta::Error(csta::ErrorCode::PRIVILEGE_VIOLATION), "{own}");
    }
    assert_eq!(tried, 18 * 5);
    assert_eq!(w.gw.counters.privilege_violations, tried as u64);
}

/// A response to the gateway's request `request`, as `from` would send it,
/// with the request's Via branch, Call-ID and CSeq unless overridden.
fn forged_response(code: u16, request: &Message<'_>, branch: Option<&str>, call_id: Option<&str>, cseq: u32) -> String {
    let via = request.value_of("Via").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap();
    let via = match branch {
        Some(b) => format!("{};branch={b}", via.split(";branch=").next().unwrap()),
        None => via,
    };
    format!(
        "SIP/2.0 {code} Whatever\nVia: {via}\nFrom: <sip:ctigw@gw.example.com>;tag=x\nTo: <sip:alice@example.com>;tag=y\n\
         Call-ID: {}\nCSeq: {cseq} INFO\n\n",
        call_id.unwrap_or(request.call_id().unwrap())
    )
}

#[test]
fn responses_from_elsewhere_or_to_no_request_of_ours_change_nothing() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "a1", udp());
    alice.sign_in(&mut w);
    alice.info(&mut w, &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"));
    let out = alice.info(&mut w, &format!("<MakeCall xmlns=\"{NS}\"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:+14255558888</calledDirectoryNumber></MakeCall>"));
    let first = out.into_iter().find(|m| m.method() == Some(sip::Method::Info)).expect("an event INFO in flight");
    let cseq = first.cseq().unwrap().number;
    // A 481 with the right branch, from a host that is not the pool:
    // untrusted, and not where the INFO went. The session lives.
    let stranger = Peer { addr: "192.0.2.66:5060".parse().unwrap(), transport: Transport::Udp };
    assert!(w.send(stranger, &forged_response(481, &first, None, None, cseq)).is_empty());
    // From the pool, but over a TCP connection the INFO did not take, or
    // naming another dialog, or another CSeq.
    assert!(w.send(tcp(), &forged_response(481, &first, None, None, cseq)).is_empty());
    assert!(w.send(udp(), &forged_response(481, &first, None, Some("other-dialog"), cseq)).is_empty());
    assert!(w.send(udp(), &forged_response(481, &first, None, None, cseq + 7)).is_empty());
    assert_eq!(w.gw.counters.responses_ignored, 4);
    assert_eq!(w.gw.session_count(), 1);
    // 200s guessing the branches of the INFOs still queued behind it (the
    // fuzzer's find: one unlinked a queued INFO and stranded the rest).
    for generation in 0..3u64 {
        for index in 0..16u64 {
            let branch = format!("z9hG4bKgw{:x}", (generation << 32) | index);
            for guess in cseq + 1..cseq + 6 {
                w.send(udp(), &forged_response(200, &first, Some(&branch), None, guess));
            }
        }
    }
    // The real answers still get every event, in order, and nothing is left.
    let rest = alice.answer_all(&mut w, vec![first]);
    let names = events(&rest);
    assert!(names.len() >= 3, "{names:?}");
    let features = alice.info(&mut w, &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"));
    assert_eq!(only_response(&features).status_code(), Some(200), "the session lives");
    alice.in_dialog(&mut w, "BYE", "");
    w.gw.shut_down(w.now);
    w.pump();
    for _ in 0..90 {
        w.advance(500);
    }
    assert_eq!(w.gw.session_count(), 0);
    assert!(w.gw.is_drained(), "every transaction of the gateway's ended");
}

#[test]
fn a_user_uri_with_parameters_is_the_same_user_and_replaces_the_session() {
    let mut w = world(1, 4);
    let mut bob = Lync::new("bob@example.com", "b1", udp());
    bob.sign_in(&mut w);
    let mut again = Lync::new("bob@example.com;user=phone", "b2", udp());
    let out = again.invite(&mut w, None);
    assert!(out.iter().any(|m| m.method() == Some(sip::Method::Bye) && m.call_id().unwrap() == "b1"), "{out:#?}");
    assert_eq!(w.gw.session_count(), 1, "one session per user and line");
    assert_eq!(w.gw.counters.sessions_replaced, 1);
    assert_eq!(w.gw.sessions().next().unwrap().user(), "sip:bob@example.com");
    // The same line in another spelling is the same line: replaced again,
    // and the session keeps the spelling of the newest INVITE.
    let mut third = Lync::new("bob@example.com", "b3", udp());
    let out = third.invite(&mut w, Some("tel:102"));
    assert!(out.iter().any(|m| m.method() == Some(sip::Method::Bye) && m.call_id().unwrap() == "b2"), "{out:#?}");
    assert_eq!((w.gw.session_count(), w.gw.counters.sessions_replaced), (1, 2));
    assert_eq!(w.gw.sessions().next().unwrap().line(), "tel:102");
}

#[test]
fn event_infos_wait_in_order_while_their_connection_is_full_and_other_dialogs_go_on() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "f1", tcp());
    alice.sign_in(&mut w);
    let mut bob = Lync::new("bob@example.com", "f2", udp());
    bob.sign_in(&mut w);
    let monitor = |d: &str| {
        format!(
            "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>{d}</deviceObject></monitorObject></MonitorStart>"
        )
    };
    let make_call = |d: &str| {
        format!(
            "<MakeCall xmlns=\"{NS}\"><callingDevice>{d}</callingDevice><calledDirectoryNumber>tel:+14255559876</calledDirectoryNumber></MakeCall>"
        )
    };
    assert!(matches!(
        csta_answer(&alice.info(&mut w, &monitor("tel:101"))),
        Csta::Response(Response::MonitorStarted { .. })
    ));
    assert!(matches!(
        csta_answer(&bob.info(&mut w, &monitor("tel:102"))),
        Csta::Response(Response::MonitorStarted { .. })
    ));

    // Alice's connection fills: the node's answer to her MakeCall and her
    // events wait; bob's go on over UDP.
    w.full.push(ConnId(7));
    let out = alice.info(&mut w, &make_call("tel:101"));
    assert!(out.is_empty(), "{out:?}");
    assert!(w.gw.counters.deferred >= 2, "the answer and the first event");
    let out = bob.info(&mut w, &make_call("tel:102"));
    let bobs = bob.answer_all(&mut w, out);
    assert_eq!(events(&bobs), ["ServiceInitiatedEvent", "OriginatedEvent", "DeliveredEvent"]);
    // Longer than Timer F: a held-back INFO is not a dead dialog.
    w.advance(40_000);
    let later = w.take();
    assert!(events(&later).iter().all(|e| e == "EstablishedEvent"), "only bob's call goes on: {later:?}");
    bob.answer(&mut w, &later);
    assert_eq!(w.gw.session_count(), 2);
    assert_eq!(w.gw.counters.event_timeouts, 0);

    // It drains: alice gets every event, in order, with CSeqs in order.
    w.full.clear();
    w.gw.stream_drained(w.now, ConnId(7));
    w.pump();
    let first = w.take();
    assert!(matches!(csta_answer(&first), Csta::Response(Response::Call { .. })), "the answer kept back");
    assert_eq!(events(&first), ["ServiceInitiatedEvent"], "still one in flight at a time");
    let all = alice.answer_all(&mut w, first);
    assert_eq!(events(&all), ["ServiceInitiatedEvent", "OriginatedEvent", "DeliveredEvent", "EstablishedEvent"]);
    let cseqs: Vec<u32> = all.iter().filter(|m| m.method().is_some()).map(|m| m.cseq().unwrap().number).collect();
    assert_eq!(cseqs, [1, 2, 3, 4]);
    assert_eq!(w.gw.counters.transmit_drops, 0);
}

#[test]
fn requests_are_refused_busy_before_a_backlog_of_events_would_drop_any() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "b1", tcp());
    alice.sign_in(&mut w);
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
    );
    assert!(matches!(csta_answer(&alice.info(&mut w, &monitor)), Csta::Response(Response::MonitorStarted { .. })));
    // Alice never answers her event INFOs.
    let capacity = super::GatewayConfig::new("x", 1, vec![]).client_transactions;
    let hold = format!(
        "<HoldCall xmlns=\"{NS}\"><callToBeHeld><callID>C-0001</callID><deviceID>tel:101</deviceID></callToBeHeld></HoldCall>"
    );
    let make_call = format!(
        "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:+14255559876</calledDirectoryNumber></MakeCall>"
    );
    let mut busy = 0;
    for i in 0..capacity {
        let out = alice.info(&mut w, if i % 2 == 0 { &make_call } else { &hold });
        if csta_answer(&out) == Csta::Error(csta::ErrorCode::RESOURCE_BUSY) {
            busy += 1;
        }
    }
    assert!(busy > 0, "refused once three quarters of the event table is taken");
    assert_eq!(w.gw.counters.backlog_refusals, busy);
    assert_eq!(w.gw.counters.transmit_drops, 0, "no event dropped");
}

#[test]
fn a_full_table_of_kept_responses_makes_room_with_its_oldest() {
    let mut w = world_with(1, 4, |c| c.completed = 3);
    let mut alice = Lync::new("alice@example.com", "e1", udp());
    alice.sign_in(&mut w);
    let xml = format!("<?xml version=\"1.0\"?><GetCSTAFeatures xmlns=\"{NS}\"/>");
    let mut sent = Vec::new();
    for _ in 0..5 {
        let answer = alice.info(&mut w, &xml[21..]);
        let text = alice.request_text("INFO", &xml, &format!("z9hG4bK{}{}", alice.call_id, alice.cseq));
        sent.push((text, only_response(&answer).as_bytes().to_vec()));
    }
    assert_eq!(w.gw.counters.completed_evicted, 3, "the INVITE's 200 and the first two answers");
    // The newest three are still answered from the table, in any order.
    for (text, answer) in sent[2..].iter().rev() {
        assert_eq!(only_response(&w.send(udp(), text)).as_bytes(), answer.as_slice());
    }
    // An older one, evicted, is out of order now.
    let old = w.send(udp(), &sent[0].0);
    assert_eq!(only_response(&old).reason(), Some("Server Internal Error: CSeq out of order"));
    // The newest, evicted by three OPTIONS, says what happened to it.
    for i in 0..3 {
        let options = format!(
            "OPTIONS sip:ctigw@gw SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKo{i}\nFrom: <sip:alice@example.com>;tag=o\nTo: <sip:ctigw@gw>\nCall-ID: o{i}\nCSeq: 1 OPTIONS\n\n"
        );
        assert_eq!(only_response(&w.send(udp(), &options)).status_code(), Some(200));
    }
    let newest = w.send(udp(), &sent[4].0);
    assert_eq!(
        only_response(&newest).reason(),
        Some("Server Internal Error: retransmission of a request already answered, its response no longer kept")
    );
}

/// The rig's fault layer on the node link: the node's bytes split into
/// single-byte reads and 200 ms late still answer the request, once the
/// fake clock reaches them.
#[test]
fn a_node_answer_split_into_bytes_and_late_still_answers_lync() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "f1", udp());
    alice.sign_in(&mut w);
    w.nodes[0].faults.split = Some(1);
    w.nodes[0].faults.delay = Some(Duration::from_millis(200));
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
    );
    assert!(alice.info(&mut w, &monitor).is_empty(), "nothing before the node's answer arrives");
    let asked = w.now;
    let at = w.step().expect("the delayed answer is a deadline");
    assert_eq!(at - asked, Duration::from_millis(200), "the clock steps to the delayed bytes");
    let answer = csta_answer(&w.take());
    assert!(matches!(answer, Csta::Response(Response::MonitorStarted { .. })), "{answer:?}");
    assert_eq!(w.gw.nodes().counters(crate::cti::SlotId::new(0).unwrap()).malformed, 0);
}

/// A node whose answers are lost: the request fails after
/// `request_timeout` with `resourceBusy`, and the node is still up.
#[test]
fn a_node_answer_lost_fails_the_request_at_its_timeout() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "f2", udp());
    alice.sign_in(&mut w);
    w.nodes[0].faults.drop = true;
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
    );
    assert!(alice.info(&mut w, &monitor).is_empty());
    w.run_for(Duration::from_millis(4900));
    assert!(w.take().is_empty(), "no answer before request_timeout (5 s)");
    w.run_for(Duration::from_millis(200));
    assert_eq!(csta_answer(&w.take()), Csta::Error(csta::ErrorCode::RESOURCE_BUSY));
    assert_eq!(w.gw.nodes().state(crate::cti::SlotId::new(0).unwrap()), crate::cti::LinkState::Up);
}

/// A node that speaks first, through the rig: the gateway answers its
/// SystemStatus, registers, and serves a user once the node answered.
#[test]
fn a_node_that_speaks_first_serves_once_registered() {
    let configs = [NodeConfig {
        addr: "127.0.0.1:7001".parse().unwrap(),
        protocol: Protocol::CstaXml(SessionMode::SystemRegister),
    }];
    let nodes = Nodes::new(crate::cti::Timing::default(), &configs).unwrap();
    let trusted = vec![Cidr { addr: "127.0.0.1".parse().unwrap(), prefix: 32 }];
    let now = Instant::now();
    let gw = Gateway::new(now, GatewayConfig::new("gw.example.com", 5060, trusted), lines(), nodes);
    let mut node = Node::new(switch(), Faults::default());
    node.speaks_first = true;
    let mut w = Rig::new(now, gw, vec![node]);
    assert_eq!((w.nodes[0].node.greetings_answered(), w.nodes[0].node.registrations()), (1, 1));
    assert_eq!(w.gw.nodes().state(crate::cti::SlotId::new(0).unwrap()), crate::cti::LinkState::Up);
    let mut alice = Lync::new("alice@example.com", "s1", udp());
    alice.sign_in(&mut w);
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"
    );
    let answer = csta_answer(&alice.info(&mut w, &monitor));
    assert!(matches!(answer, Csta::Response(Response::MonitorStarted { .. })), "{answer:?}");
}

/// The rig in front of a PBX: config/pbx.conf's dial plan and line file
/// (devices named `101`, a Cisco-style line on two phones), one node
/// simulating an OpenScape-class switch (`N<...>` ids, private data in
/// events, URIs refused) that speaks first.
fn pbx_world() -> Rig {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/");
    let config = crate::config::Config::load(std::path::Path::new(&format!("{dir}pbx.conf"))).unwrap();
    let text = std::fs::read_to_string(&config.lines_file).unwrap();
    let appearances = Appearances::parse(&text).unwrap();
    let assignments: Vec<(String, String)> =
        crate::lines::parse(&text).map(|a| a.unwrap()).map(|a| (a.line.to_string(), a.device.to_string())).collect();
    let mut switch = Switch::new(
        assignments.iter().map(|(l, d)| (l.as_str(), d.as_str())),
        Outside::Answer(Duration::from_millis(1000)),
    );
    switch.set_naming(crate::sim::switch::Naming::OpenScape);
    let nodes = Nodes::new(Timing::default(), &config.nodes[..1]).unwrap();
    let trusted = vec![Cidr { addr: "127.0.0.1".parse().unwrap(), prefix: 32 }];
    let now = Instant::now();
    let mut gw = Gateway::new(now, GatewayConfig::new("gw.example.com", 5060, trusted), appearances, nodes);
    gw.set_dialplan(config.dialplan);
    let mut node = Node::new(switch, Faults::default());
    node.speaks_first = true;
    Rig::new(now, gw, vec![node])
}

fn make_call(calling: &str, called: &str) -> String {
    format!(
        "<MakeCall xmlns=\"{NS}\"><callingDevice>{calling}</callingDevice>\
         <calledDirectoryNumber>{called}</calledDirectoryNumber></MakeCall>"
    )
}

fn monitor_start(device: &str) -> String {
    format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>{device}</deviceObject></monitorObject></MonitorStart>"
    )
}

/// Every device identifier of the event INFOs and answers in `out`.
fn devices_in(out: &[Message<'static>]) -> Vec<String> {
    let mut all = Vec::new();
    for m in out {
        let mut doc = body_of(m);
        let mut push = |_, t: &mut csta::Text<'_>| -> Result<(), ()> {
            all.push(t.to_string());
            Ok(())
        };
        match &mut doc {
            Csta::Event(e) => e.visit_devices(&mut push).unwrap(),
            Csta::Response(r) => r.visit_devices(&mut push).unwrap(),
            _ => {}
        }
    }
    all
}

#[test]
fn through_a_pbx_the_dial_plan_names_everything_both_ways() {
    let mut w = pbx_world();
    let slot = crate::cti::SlotId::new(0).unwrap();
    let mut alice = Lync::new("alice@example.com", "p1", udp());
    assert_eq!(only_response(&alice.invite(&mut w, Some(ALICE_LINE))).status_code(), Some(200));
    alice.ack(&mut w);
    // The PBX refuses URIs: MonitorStart only works as the PBX's device.
    let answer = csta_answer(&alice.info(&mut w, &monitor_start("tel:+14255550101;ext=101")));
    assert!(matches!(answer, Csta::Response(Response::MonitorStarted { .. })), "{answer:?}");

    let out = alice.info(&mut w, &make_call("tel:+14255550101;ext=101", "tel:+14255559876"));
    let out = alice.answer_all(&mut w, out);
    let Csta::Response(Response::Call { call, .. }) = body_of(only_response(&out)) else { panic!("{out:?}") };
    assert_eq!(call.device.unwrap(), ALICE_LINE, "the MakeCall answer names the line exactly as Lync wrote it");
    // The PBX dialled 9, 1, ten digits, and names the parties its own way.
    assert_eq!(
        w.nodes[0].node.switch().describe_calls(),
        ["C-0001 N<101>;noa=nk=connected N<914255559876>;noa=nk=alerting"]
    );
    let seen = devices_in(&out);
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|d| d == ALICE_LINE || d == "tel:+14255559876"), "{seen:?}");
    assert_eq!(seen.iter().filter(|d| *d == "tel:+14255559876").count(), 4, "Lync sees the far end in E.164");
    w.advance(1000); // the far end answers
    let taken = w.take();
    let established = alice.answer_all(&mut w, taken);
    assert_eq!(events(&established), ["EstablishedEvent"]);
    assert!(devices_in(&established).iter().all(|d| d == ALICE_LINE || d == "tel:+14255559876"));

    // A number no rule lets through: refused here, the node never asked.
    let asked = w.gw.nodes().counters(slot).requests;
    let answer = csta_answer(&alice.info(&mut w, &make_call(ALICE_LINE, "tel:555")));
    assert_eq!(answer, Csta::Error(csta::ErrorCode::INVALID_CALLED_DEVICE));
    assert_eq!(w.gw.nodes().counters(slot).requests, asked, "no node round trip");
    assert_eq!(w.gw.counters.dialplan_refusals, 1);

    let clear = format!(
        "<ClearConnection xmlns=\"{NS}\"><connectionToBeCleared><callID>C-0001</callID><deviceID>{ALICE_LINE}</deviceID>\
         </connectionToBeCleared></ClearConnection>"
    );
    let out = alice.info(&mut w, &clear);
    let out = alice.answer_all(&mut w, out);
    assert_eq!(events(&out), ["ConnectionClearedEvent"]);
    assert_eq!(w.nodes[0].node.switch().describe_calls(), Vec::<String>::new());
}

#[test]
fn a_cisco_style_line_on_two_phones_and_an_internal_call() {
    let mut w = pbx_world();
    let line = "tel:73124;phone-context=dialstring;partition=BE_BRS_INT";
    let mut erin = Lync::new("erin@example.com", "p2", tcp());
    assert_eq!(only_response(&erin.invite(&mut w, Some(line))).status_code(), Some(200));
    erin.ack(&mut w);
    assert!(matches!(
        csta_answer(&erin.info(&mut w, &monitor_start(line))),
        Csta::Response(Response::MonitorStarted { .. })
    ));
    let mut alice = Lync::new("alice@example.com", "p3", tls());
    alice.invite(&mut w, Some("tel:+14255550101;ext=101"));
    alice.ack(&mut w);
    csta_answer(&alice.info(&mut w, &monitor_start("tel:101")));
    // Alice calls erin's number: 73124 is in the plan as it is.
    let out = alice.info(&mut w, &make_call("tel:101", "tel:73124"));
    let out = alice.answer_all(&mut w, out);
    let (to_erin, to_alice): (Vec<_>, Vec<_>) = out.into_iter().partition(|m| m.call_id() == Ok("p2"));
    assert_eq!(events(&to_alice), ["ServiceInitiatedEvent", "OriginatedEvent", "DeliveredEvent"]);
    assert_eq!(events(&to_erin), ["DeliveredEvent"]);
    let seen = devices_in(&to_erin);
    assert_eq!(seen, [line, line, "tel:+14255550101", line].map(String::from), "erin's own device is her line URI");
    // Erin's phone, which the PBX names by its device name, reaches alice
    // as the line it carries.
    let seen = devices_in(&to_alice);
    assert!(seen.iter().all(|d| d == ALICE_LINE || d == "tel:73124;phone-context=dialstring"), "{seen:?}");
    assert_eq!(seen.iter().filter(|d| *d != ALICE_LINE).count(), 4, "{seen:?}");
    // A ;device= naming a phone that is not hers is refused at sign-in.
    let mut mallory = Lync::new("erin@example.com", "p4", udp());
    let out = mallory.invite(&mut w, Some("tel:73124;phone-context=dialstring;device=SEPFFFFFFFFFFFF"));
    assert_eq!(only_response(&out).status_code(), Some(403));
    assert_eq!(only_response(&out).reason(), Some("Forbidden: line not assigned to the user on that device"));
}

#[test]
fn lync_is_offered_what_the_node_supports_and_the_operator_allows() {
    use crate::csta::Service;
    let mut w = pbx_world();
    let slot = crate::cti::SlotId::new(0).unwrap();
    let node = w.gw.nodes().services(slot).expect("asked at link-up");
    assert!(!node.contains(Service::ConferenceCall) && node.contains(Service::MakeCall), "the PBX's own list");
    let mut alice = Lync::new("alice@example.com", "f1", udp());
    alice.invite(&mut w, Some(ALICE_LINE));
    alice.ack(&mut w);
    let Csta::Response(Response::Features(offered)) =
        csta_answer(&alice.info(&mut w, &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>")))
    else {
        panic!()
    };
    assert_eq!(offered, node, "no button Lync cannot use");
    let asked = w.gw.nodes().counters(slot).requests;
    let conference = format!(
        "<ConferenceCall xmlns=\"{NS}\"><heldCall><callID>C-1</callID><deviceID>{ALICE_LINE}</deviceID></heldCall>\
         <activeCall><callID>C-2</callID><deviceID>{ALICE_LINE}</deviceID></activeCall></ConferenceCall>"
    );
    assert_eq!(csta_answer(&alice.info(&mut w, &conference)), Csta::Error(csta::ErrorCode::SERVICE_NOT_SUPPORTED));
    assert_eq!(w.gw.nodes().counters(slot).requests, asked, "refused here");
    assert_eq!(w.gw.counters.unsupported_refusals, 1);

    // The demo's node supports everything; the operator withholds hold.
    let mut w = world_with(1, 4, |c| c.services = csta::Services::all().without(Service::HoldCall));
    let mut bob = Lync::new("bob@example.com", "f2", udp());
    bob.sign_in(&mut w);
    let Csta::Response(Response::Features(offered)) =
        csta_answer(&bob.info(&mut w, &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>")))
    else {
        panic!()
    };
    assert!(!offered.contains(Service::HoldCall) && offered.contains(Service::ConferenceCall));
    assert_eq!(offered.iter().count(), Service::ALL.len() - 1);
    let hold = format!(
        "<HoldCall xmlns=\"{NS}\"><callToBeHeld><callID>C-1</callID><deviceID>tel:102</deviceID></callToBeHeld></HoldCall>"
    );
    assert_eq!(csta_answer(&bob.info(&mut w, &hold)), Csta::Error(csta::ErrorCode::SERVICE_NOT_SUPPORTED));
}

#[test]
fn a_shared_line_through_a_pbx_brings_each_user_its_events_in_their_own_names() {
    // 199 is on carol's and dave's phones (config/pbx-lines.conf); each
    // monitors it, each with the line written their own Lync's way.
    let mut w = pbx_world();
    let (carol_line, dave_line) = ("tel:+14255550199;ext=199", "tel:199");
    let mut carol = Lync::new("carol@example.com", "sh1", udp());
    carol.invite(&mut w, Some(carol_line));
    carol.ack(&mut w);
    let mut dave = Lync::new("dave@example.com", "sh2", tcp());
    dave.invite(&mut w, Some(dave_line));
    dave.ack(&mut w);
    for (lync, line) in [(&mut carol, carol_line), (&mut dave, dave_line)] {
        let answer = csta_answer(&lync.info(&mut w, &monitor_start(line)));
        assert!(matches!(answer, Csta::Response(Response::MonitorStarted { .. })), "{answer:?}");
    }
    // A caller from the PSTN rings the shared line.
    let (reply, outputs) = {
        let now = w.now;
        w.nodes[0].node.command(now, "call 4255557777 199").expect("a switch command")
    };
    assert!(reply.starts_with("ok C-"), "{reply}");
    w.deliver(0, outputs);
    w.pump();
    let out = w.take();
    let (to_carol, to_dave): (Vec<_>, Vec<_>) = out.into_iter().partition(|m| m.call_id() == Ok("sh1"));
    assert_eq!(events(&to_carol), ["DeliveredEvent"]);
    assert_eq!(events(&to_dave), ["DeliveredEvent"]);
    let (carol_sees, dave_sees) = (devices_in(&to_carol), devices_in(&to_dave));
    assert!(
        carol_sees.contains(&carol_line.to_string()) && !carol_sees.contains(&dave_line.to_string()),
        "{carol_sees:?}"
    );
    assert!(
        dave_sees.contains(&dave_line.to_string()) && !dave_sees.contains(&carol_line.to_string()),
        "{dave_sees:?}"
    );
    for seen in [&carol_sees, &dave_sees] {
        assert!(seen.contains(&"tel:+14255557777".to_string()), "the caller id in E.164 by to_lync: {seen:?}");
    }
}

#[test]
fn failover_move_ends_a_dead_nodes_sessions_at_once_and_they_sign_in_on_a_live_node() {
    let mut w = world(2, 8);
    let mut alice = Lync::new("alice@example.com", "m1", udp());
    alice.sign_in(&mut w); // node 1
    let mut bob = Lync::new("bob@example.com", "m2", tcp());
    bob.sign_in(&mut w); // node 2
    w.kill(0);
    let out = w.take();
    let byes: Vec<_> = out.iter().filter(|m| m.method() == Some(sip::Method::Bye)).collect();
    assert_eq!(byes.len(), 1, "{out:#?}");
    assert_eq!(byes[0].call_id().unwrap(), "m1", "alice's session, at once");
    assert_eq!(w.gw.session_count(), 1, "bob's stays");
    alice.answer(&mut w, &out);
    // Alice's client signs in again: on the live node.
    let mut again = Lync::new("alice@example.com", "m3", udp());
    again.sign_in(&mut w);
    let slot = |w: &Rig, call_id: &str| w.gw.sessions().find(|s| s.call_id() == call_id).unwrap().node.slot.index();
    assert_eq!(slot(&w, "m3"), 1);
    let answer = csta_answer(&again.info(
        &mut w,
        &format!("<SnapshotDevice xmlns=\"{NS}\"><snapshotObject>tel:101</snapshotObject></SnapshotDevice>"),
    ));
    assert!(matches!(answer, Csta::Response(Response::Snapshot { .. })), "{answer:?}");
    // The node's return ends nothing: its sessions were moved already.
    w.revive(0);
    w.advance(10_000);
    assert!(w.take().iter().all(|m| m.method() != Some(sip::Method::Bye)));
    assert_eq!(w.gw.session_count(), 2);

    // A silenced node (its link open, its heartbeats unanswered) is
    // declared down after heartbeat_interval x heartbeat_misses: the same.
    let mut carol = Lync::new("carol@example.com", "m4", udp());
    carol.sign_in(&mut w);
    let on = slot(&w, "m4");
    w.nodes[on].faults.stall = true;
    // Heartbeats every 30 s, each given 5 s, two misses: down between 35
    // and 65 s after the stall, whatever the phase of the heartbeat timer.
    w.run_for(Duration::from_secs(34));
    assert!(w.take().iter().all(|m| m.method() != Some(sip::Method::Bye)), "not yet: one heartbeat missed at most");
    w.run_for(Duration::from_secs(32));
    let out = w.take();
    let mut byes: Vec<_> =
        out.iter().filter(|m| m.method() == Some(sip::Method::Bye)).map(|m| m.call_id().unwrap()).collect();
    byes.dedup(); // over UDP, retransmitted until answered
    assert_eq!(byes, ["m4"], "carol's session, on the silenced node");
}

/// The session-timer headers of the gateway's 200 to an INVITE.
fn timer_of(out: &[Message<'static>]) -> (Option<String>, Option<String>, Option<String>) {
    let ok = only_response(out);
    let header = |name| ok.single(name).unwrap().map(str::to_string);
    (header(sip::HeaderName::SessionExpires), header(sip::HeaderName::Require), header(sip::HeaderName::MinSe))
}

#[test]
fn session_timers_are_negotiated_as_rfc_4028_section_9_says() {
    let mut w = world(1, 8);
    let some = |s: &str| Some(s.to_string());
    let mut invite = |user: &'static str, call_id: &str, headers: &str| {
        let mut lync = Lync::new(user, call_id, tcp());
        lync.timer_headers = headers.to_string();
        let out = lync.invite(&mut w, None);
        (lync, out)
    };
    // Supported: timer: the UAC refreshes unless it asked otherwise.
    let (_, out) = invite("alice@example.com", "t1", "Supported: timer\nSession-Expires: 1800\n");
    assert_eq!(timer_of(&out), (some("1800;refresher=uac"), some("timer"), None));
    let (_, out) = invite("bob@example.com", "t2", "Supported: timer\nSession-Expires: 600;refresher=uas\n");
    assert_eq!(timer_of(&out), (some("600;refresher=uas"), some("timer"), None));
    // No Supported: timer (a proxy asked): the UAS refreshes, nothing required.
    let (_, out) = invite("carol@example.com", "t3", "Session-Expires: 1800;refresher=uac\n");
    assert_eq!(timer_of(&out), (some("1800;refresher=uas"), None, None));
    // Too small: 422 with support; raised to the minimum without.
    let (_, out) = invite("dave@example.com", "t4", "Supported: timer\nSession-Expires: 60\n");
    assert_eq!(only_response(&out).status_code(), Some(422));
    assert_eq!(only_response(&out).single(sip::HeaderName::MinSe).unwrap(), Some("90"));
    let (_, out) = invite("dave@example.com", "t5", "Session-Expires: 60\n");
    assert_eq!(timer_of(&out), (some("90;refresher=uas"), None, some("90")));
    // No Session-Expires: no timer.
    let (_, out) = invite("bob@example.com", "t6", "Supported: timer\n");
    assert_eq!(timer_of(&out), (None, None, None));
    let (_, out) = invite("alice@example.com", "t7", "Session-Expires: soon\n");
    assert_eq!(only_response(&out).reason(), Some("Bad Request: malformed Session-Expires or Min-SE"));
}

#[test]
fn the_gateway_refreshes_with_update_when_it_is_the_refresher() {
    let mut w = world(1, 8);
    let mut carol = Lync::new("carol@example.com", "u1", tcp());
    carol.timer_headers = "Session-Expires: 600\n".into();
    carol.invite(&mut w, None);
    carol.ack(&mut w);
    w.advance(295_000);
    assert!(w.take().is_empty(), "not before half the interval");
    w.advance(10_000);
    let out = w.take();
    let update = only_request(&out, sip::Method::Update);
    assert_eq!(update.single(sip::HeaderName::SessionExpires).unwrap(), Some("600;refresher=uas"));
    assert_eq!(update.call_id().unwrap(), "u1");
    carol.answer(&mut w, &out);
    // Renewed: the next one half an interval after that answer.
    w.advance(295_000);
    assert!(w.take().is_empty());
    w.advance(10_000);
    let out = w.take();
    only_request(&out, sip::Method::Update);
    assert_eq!(w.gw.session_count(), 1);
    // Lync no longer knows the dialog: 481 ends the session with BYE.
    let ok = out.iter().find(|m| m.method().is_some()).unwrap();
    let mut buf = vec![0u8; 2048];
    let gone = sip::MessageWriter::response_to(&mut buf, ok, 481, "Call/Transaction Does Not Exist", None, None)
        .unwrap()
        .finish()
        .unwrap()
        .to_vec();
    let text = std::str::from_utf8(&gone).unwrap().trim_end_matches("Content-Length: 0\r\n\r\n").replace("\r\n", "\n");
    let out = w.send(carol.peer, &text);
    only_request(&out, sip::Method::Bye);
    assert_eq!(w.gw.session_count(), 0);
}

#[test]
fn a_refresh_a_minute_before_expiry_keeps_the_session_its_monitors_and_events() {
    let mut w = world(1, 8);
    let mut alice = Lync::new("alice@example.com", "r1", udp());
    alice.sign_in(&mut w);
    let answer = csta_answer(&alice.info(
        &mut w,
        &format!("<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:101</deviceObject></monitorObject></MonitorStart>"),
    ));
    assert!(matches!(answer, Csta::Response(Response::MonitorStarted { .. })));
    // As pidgin-sipe's uaCSTA code does: a re-INVITE of the session at
    // Session-Expires minus 60 s, the same RequestSystemStatus body.
    w.advance(1_740_000);
    let body = format!("<RequestSystemStatus xmlns=\"{NS}\"/>");
    let out = alice.in_dialog(&mut w, "INVITE", &body);
    let ok = only_response(&out);
    assert_eq!(ok.status_code(), Some(200));
    alice.ack(&mut w);
    w.advance(1_000_000); // past the first expiry
    assert_eq!(w.gw.session_count(), 1, "refreshed");
    // Its monitor still brings events.
    let (reply, outputs) = w.nodes[0].node.command(w.now, "call tel:+14255557777 tel:101").unwrap();
    assert!(reply.starts_with("ok"));
    w.deliver(0, outputs);
    w.pump();
    assert_eq!(events(&w.take()), ["DeliveredEvent"]);
}

fn call_event(m: &Message<'static>) -> csta::CallEvent<'static> {
    match body_of(m) {
        Csta::Event(Event::Call(e)) => e,
        other => panic!("{other:?}"),
    }
}

/// Issue 15, item 5: what the node says reaches Lync. A forwarded call
/// brings the forwarding line as `lastRedirectionDevice` (in the Lync
/// user's names, through the dial plan), and the OpenScape-style private
/// data it cannot carry is counted, not passed on nor refused.
#[test]
fn a_forwarded_call_names_where_it_came_from_in_lyncs_names() {
    let mut w = pbx_world();
    let mut alice = Lync::new("alice@example.com", "f1", udp());
    alice.invite(&mut w, Some(ALICE_LINE));
    alice.ack(&mut w);
    csta_answer(&alice.info(&mut w, &monitor_start(ALICE_LINE)));
    let bob_line = "tel:+14255550102;ext=102";
    let mut bob = Lync::new("bob@example.com", "f2", tcp());
    bob.invite(&mut w, Some(bob_line));
    bob.ack(&mut w);
    csta_answer(&bob.info(&mut w, &monitor_start(bob_line)));
    let forward = format!(
        "<SetForwarding xmlns=\"{NS}\"><device>{ALICE_LINE}</device><forwardingType>forwardImmediate</forwardingType>\
         <activateForward>true</activateForward><forwardDN>{bob_line}</forwardDN></SetForwarding>"
    );
    let out = alice.info(&mut w, &forward);
    alice.answer_all(&mut w, out);
    let dropped = w.gw.counters.fields_dropped;
    let (_, outputs) = w.nodes[0].node.command(w.now, "call 4255557777 101").unwrap();
    w.deliver(0, outputs);
    w.pump();
    let out = w.take();
    let (to_bob, to_alice): (Vec<_>, Vec<_>) = out.into_iter().partition(|m| m.call_id() == Ok("f2"));
    assert_eq!(events(&to_alice), ["DivertedEvent"]);
    assert_eq!(events(&to_bob), ["DeliveredEvent"]);
    let delivered = call_event(&to_bob[0]);
    // Alice's phone, which the PBX names by number, reaches bob as the
    // number in E.164 (as it does as a caller).
    assert_eq!(delivered.redirection, Some(csta::Redirection::Dialed(csta::Text::literal("tel:+14255550101"))));
    assert_eq!(delivered.calling.unwrap(), "tel:+14255557777");
    assert_eq!(delivered.cause.unwrap(), csta::cause::NEW_CALL);
    // Each event's private data: counted, once per event.
    assert_eq!(w.gw.counters.fields_dropped, dropped + 2);
}

/// Issue 15, item 5: a conference of five parties reaches Lync whole (the
/// old limit was four), and a snapshot lists its call with every
/// connection's state.
#[test]
fn every_party_of_a_conference_and_a_snapshots_states_reach_lync() {
    let mut w = world(1, 4);
    let mut alice = Lync::new("alice@example.com", "c1", tcp());
    alice.sign_in(&mut w);
    csta_answer(&alice.info(&mut w, &monitor_start("tel:101")));
    let out = alice.info(&mut w, &make_call("tel:101", "tel:+14255550001"));
    alice.answer_all(&mut w, out);
    w.advance(1000);
    let out = w.take();
    alice.answer_all(&mut w, out);
    let mut conference = None;
    for n in 2..=4 {
        let call = "C-0001";
        let consult = format!(
            "<ConsultationCall xmlns=\"{NS}\"><existingCall><callID>{call}</callID><deviceID>tel:101</deviceID>\
             </existingCall><consultedDevice>tel:+1425555000{n}</consultedDevice></ConsultationCall>"
        );
        let out = alice.info(&mut w, &consult);
        let Csta::Response(Response::Call { call: consulted, .. }) = body_of(only_response(&out)) else { panic!() };
        let consulted = consulted.call.unwrap().to_string();
        alice.answer_all(&mut w, out);
        w.advance(1000);
        let out = w.take();
        alice.answer_all(&mut w, out);
        let join = format!(
            "<ConferenceCall xmlns=\"{NS}\"><heldCall><callID>{call}</callID><deviceID>tel:101</deviceID></heldCall>\
             <activeCall><callID>{consulted}</callID><deviceID>tel:101</deviceID></activeCall></ConferenceCall>"
        );
        let out = alice.info(&mut w, &join);
        assert_eq!(events(&out), ["ConferencedEvent"], "round {n}");
        conference = Some(call_event(out.iter().find(|m| m.method().is_some()).unwrap()));
        alice.answer_all(&mut w, out);
    }
    let conference = conference.unwrap();
    let parties: Vec<_> = conference.connections.iter().map(|c| c.device.unwrap().raw().to_string()).collect();
    assert_eq!(
        parties,
        [ALICE_LINE, "tel:+14255550001", "tel:+14255550002", "tel:+14255550003", "tel:+14255550004"],
        "five parties, in the node's order"
    );
    assert_eq!(conference.cause.unwrap(), csta::cause::CONFERENCE);

    let snapshot = format!("<SnapshotDevice xmlns=\"{NS}\"><snapshotObject>tel:101</snapshotObject></SnapshotDevice>");
    let Csta::Response(Response::Snapshot { calls, dropped: None }) = csta_answer(&alice.info(&mut w, &snapshot))
    else {
        panic!()
    };
    use csta::LocalConnectionState::Connected;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].states, [Connected; 5], "alice's connection, then the four others'");
    assert_eq!(w.gw.counters.fields_dropped, 0, "the URI-naming switch says nothing the gateway drops");
}

/// The pool's route set goes back whole as the Route of the gateway's
/// requests: three Front End-sized Record-Routes (a remote user's INVITE
/// crosses an Edge, a Director and a Front End) fit; an entry that does
/// not close its quote, which would swallow the entries after it once
/// they are joined, is refused.
#[test]
fn a_long_route_set_goes_back_whole_and_a_broken_entry_is_refused() {
    let mut w = world(1, 4);
    let entry = |host: &str| {
        format!(
            "<sip:{host}.corp.example.com:5061;transport=tls;ms-fe=FE-04.corp.example.com;opaque=state:F:Ci.Rabf6d00;lr;\
             ms-route-sig=fiowNaa3xSVBcLpTKE1sw4ffyrS1Pm5CwqQ0EDNxAAA>;ms-rrsig=fi6ZIFfGLlfTSXVT9Ua1Sc6Dr7PRA0OtFsTUyeWBNxAAA;\
             tag=A990A1D3DF287188230E96F588D87AD1"
        )
    };
    let (edge, director, fe) = (entry("edge"), entry("director"), entry("fe01"));
    assert!(edge.len() > 250, "{}", edge.len());
    let mut alice = Lync::new("alice@example.com", "r1", tcp());
    alice.timer_headers = format!("Record-Route: {fe}\nRecord-Route: {director}, {edge}\nSupported: timer\n");
    assert_eq!(only_response(&alice.invite(&mut w, Some(ALICE_LINE))).status_code(), Some(200));
    alice.ack(&mut w);
    let monitor = monitor_start(ALICE_LINE);
    csta_answer(&alice.info(&mut w, &monitor));
    let out = alice.info(&mut w, &make_call(ALICE_LINE, "tel:+14255559876"));
    let event = out.iter().find(|m| m.method() == Some(crate::sip::Method::Info)).expect("an event");
    let routes: Vec<_> = event.name_addrs(crate::sip::HeaderName::Route).map(|r| r.unwrap()).collect();
    assert_eq!(routes.len(), 4, "the rig's own pool entry, then the three");
    let text = core::str::from_utf8(event.as_bytes()).unwrap();
    assert!(text.contains(&format!("Route: <sip:pool.example.com;lr>, {fe}, {director}, {edge}\r\n")), "{text}");

    let mut bob = Lync::new("bob@example.com", "r2", tcp());
    bob.timer_headers = "Record-Route: <sip:fe01.corp.example.com;lr>;x=\"abc\nRecord-Route: <sip:b;lr>\n".into();
    let out = bob.invite(&mut w, Some("tel:+14255550102;ext=102"));
    assert_eq!(only_response(&out).status_code(), Some(400), "{out:?}");
}
