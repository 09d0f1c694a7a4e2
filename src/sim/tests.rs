//! The simulated telephone system's call flows: responses first, then the
//! events a switch emits, in order, with ids and causes consistent, each
//! monitor seeing its own line's view. Deterministic: the same scenario
//! twice gives the same bytes.

use std::time::{Duration, Instant};

use super::node::{Faults, Node};
use super::switch::{LinkId, Output, Outside, Switch};
use crate::csta::{self, ConnectionId, Event, ForwardingType, Message, Request, Response, Text};
use crate::cti::frame::{self, InvokeId};
use crate::outbuf::OutBuf;

const ALICE: &str = "tel:+14255550101;ext=101";
const BOB: &str = "tel:+14255550102;ext=102";
const CAROL: &str = "tel:+14255550103;ext=103";
const OUTSIDE: &str = "tel:+14255559876";

fn switch() -> Switch {
    let lines = [
        (ALICE, "SEPA"),
        (BOB, "SEPB"),
        (CAROL, "SEPC"),
        ("tel:+14255550199;ext=199", "SEPC"),
        ("tel:+14255550199;ext=199", "SEPD"),
    ];
    Switch::new(lines, Outside::Answer(Duration::from_millis(1000)))
}

/// One line per output: what a test can compare exactly.
fn describe(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| {
            let doc = csta::parse(&o.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.body)));
            let body = match doc.message {
                Message::Response(Response::Call { service, call }) => {
                    format!("{} {}/{}", service.response_name(), call.call.unwrap(), call.device.unwrap())
                }
                Message::Response(Response::MonitorStarted { monitor }) => format!("MonitorStartResponse {monitor}"),
                Message::Response(r) => r.service().response_name().to_string(),
                Message::Error(code) => format!("error {code}"),
                Message::Event(Event::Call(e)) => format!(
                    "{} m={} {}/{} local={} cause={}",
                    e.kind.name(),
                    e.monitor,
                    e.connection.call.unwrap(),
                    e.connection.device.unwrap(),
                    e.local_state.unwrap().as_str(),
                    e.cause.unwrap()
                ),
                Message::Event(Event::Forwarding(e)) => {
                    format!("ForwardingEvent m={} {} active={}", e.monitor, e.device, e.active)
                }
                Message::Event(Event::DoNotDisturb(e)) => {
                    format!("DoNotDisturbEvent m={} {} on={}", e.monitor, e.device, e.on)
                }
                other => format!("{other:?}"),
            };
            if o.invoke_id.is_event() {
                format!("L{} {body}", o.link)
            } else {
                format!("L{} #{} {body}", o.link, o.invoke_id)
            }
        })
        .collect()
}

struct Run {
    switch: Switch,
    now: Instant,
    invoke: u16,
}

impl Run {
    fn new() -> Self {
        let mut switch = switch();
        switch.link_opened(1, csta::Namespace::Ed3);
        switch.link_opened(2, csta::Namespace::Ed3);
        Run { switch, now: Instant::now(), invoke: 0 }
    }

    fn req(&mut self, link: LinkId, request: Request<'_>) -> Vec<String> {
        self.invoke += 1;
        let id = InvokeId::new(self.invoke).unwrap();
        describe(&self.switch.request(self.now, link, id, &request))
    }

    fn cmd(&mut self, line: &str) -> (String, Vec<String>) {
        let (reply, out) = self.switch.command(self.now, line);
        (reply, describe(&out))
    }

    fn advance(&mut self, ms: u64) -> Vec<String> {
        self.now += Duration::from_millis(ms);
        describe(&self.switch.handle_timeout(self.now))
    }

    fn monitor(&mut self, link: LinkId, line: &'static str) -> String {
        let out = self.req(link, Request::MonitorStart { device: Text::literal(line) });
        out[0].rsplit(' ').next().unwrap().to_string()
    }
}

fn t(s: &str) -> Text<'_> {
    Text::literal(s)
}

fn conn<'a>(call: &'a str, device: &'a str) -> ConnectionId<'a> {
    ConnectionId::new(t(call), t(device))
}

#[test]
fn make_call_to_an_outside_number_and_hang_up() {
    let mut r = Run::new();
    assert_eq!(r.monitor(1, ALICE), "4711");
    let out = r.req(1, Request::MakeCall { calling: t("tel:101"), called: t(OUTSIDE), auto_originate: None });
    assert_eq!(
        out,
        [
            "L1 #0002 MakeCallResponse C-0001/tel:101",
            "L1 ServiceInitiatedEvent m=4711 C-0001/tel:+14255550101;ext=101 local=initiated cause=makeCall",
            "L1 OriginatedEvent m=4711 C-0001/tel:+14255550101;ext=101 local=connected cause=newCall",
            "L1 DeliveredEvent m=4711 C-0001/tel:+14255559876 local=connected cause=newCall",
        ],
        "the response echoes the calling device exactly as sent"
    );
    assert!(r.advance(999).is_empty());
    assert_eq!(r.advance(1), ["L1 EstablishedEvent m=4711 C-0001/tel:+14255559876 local=connected cause=normal"]);
    let out = r.req(1, Request::ClearConnection { connection: conn("C-0001", ALICE) });
    assert_eq!(
        out,
        [
            "L1 #0003 ClearConnectionResponse",
            "L1 ConnectionClearedEvent m=4711 C-0001/tel:+14255550101;ext=101 local=null cause=normalClearing",
        ],
        "Alice's monitor stops following the call once her connection is cleared"
    );
    assert_eq!(r.cmd("calls").0, "ok no calls");
}

#[test]
fn internal_call_each_monitor_sees_its_own_line() {
    let mut r = Run::new();
    r.monitor(1, ALICE);
    r.monitor(2, BOB);
    let out = r.req(1, Request::MakeCall { calling: t(ALICE), called: t("tel:102"), auto_originate: None });
    assert_eq!(
        out[3..],
        [
            "L1 DeliveredEvent m=4711 C-0001/tel:+14255550102;ext=102 local=connected cause=newCall",
            "L2 DeliveredEvent m=4712 C-0001/tel:+14255550102;ext=102 local=alerting cause=newCall",
        ]
    );
    assert!(r.advance(60_000).is_empty(), "an internal line rings until answered");
    let out = r.req(2, Request::AnswerCall { call: conn("C-0001", "tel:102") });
    assert_eq!(
        out,
        [
            "L2 #0004 AnswerCallResponse",
            "L1 EstablishedEvent m=4711 C-0001/tel:+14255550102;ext=102 local=connected cause=normal",
            "L2 EstablishedEvent m=4712 C-0001/tel:+14255550102;ext=102 local=connected cause=normal",
        ]
    );
    let out = r.req(1, Request::HoldCall { call: conn("C-0001", ALICE) });
    assert_eq!(
        out[1..],
        [
            "L1 HeldEvent m=4711 C-0001/tel:+14255550101;ext=101 local=hold cause=normal",
            "L2 HeldEvent m=4712 C-0001/tel:+14255550101;ext=101 local=connected cause=normal"
        ]
    );
    let out = r.req(1, Request::RetrieveCall { call: conn("C-0001", ALICE) });
    assert_eq!(out[1], "L1 RetrievedEvent m=4711 C-0001/tel:+14255550101;ext=101 local=connected cause=normal");
    assert_eq!(
        r.req(1, Request::RetrieveCall { call: conn("C-0001", ALICE) }),
        ["L1 #0007 error stateIncompatibility/invalidObjectState"]
    );
}

#[test]
fn consult_then_transfer() {
    let mut r = Run::new();
    r.monitor(1, ALICE);
    r.cmd("outside answer 0");
    r.req(1, Request::MakeCall { calling: t(ALICE), called: t(OUTSIDE), auto_originate: None });
    r.advance(0);
    let out = r.req(1, Request::ConsultationCall { existing: conn("C-0001", ALICE), consulted: t(CAROL) });
    assert_eq!(
        out,
        [
            "L1 #0003 ConsultationCallResponse C-0002/tel:+14255550101;ext=101",
            "L1 HeldEvent m=4711 C-0001/tel:+14255550101;ext=101 local=hold cause=normal",
            "L1 ServiceInitiatedEvent m=4711 C-0002/tel:+14255550101;ext=101 local=initiated cause=consultation",
            "L1 OriginatedEvent m=4711 C-0002/tel:+14255550101;ext=101 local=connected cause=newCall",
            "L1 DeliveredEvent m=4711 C-0002/tel:+14255550103;ext=103 local=connected cause=newCall",
        ]
    );
    r.cmd("answer C-0002");
    let out = r.req(1, Request::TransferCall { held: conn("C-0001", ALICE), active: conn("C-0002", ALICE) });
    assert_eq!(
        out,
        [
            "L1 #0004 TransferCallResponse C-0001/tel:+14255550103;ext=103",
            "L1 TransferedEvent m=4711 C-0001/tel:+14255550101;ext=101 local=null cause=transfer",
        ]
    );
    let (calls, _) = r.cmd("calls");
    assert_eq!(calls, "ok C-0001 tel:+14255559876=connected tel:+14255550103;ext=103=connected");
}

#[test]
fn conference_alternate_and_single_step_transfer() {
    let mut r = Run::new();
    r.monitor(1, ALICE);
    r.cmd("outside answer 0");
    r.req(1, Request::MakeCall { calling: t(ALICE), called: t(OUTSIDE), auto_originate: None });
    r.advance(0);
    r.req(1, Request::ConsultationCall { existing: conn("C-0001", ALICE), consulted: t("tel:+14255550000") });
    r.advance(0);
    let out = r.req(1, Request::AlternateCall { held: conn("C-0001", ALICE), active: conn("C-0002", ALICE) });
    assert_eq!(
        out[1..],
        [
            "L1 HeldEvent m=4711 C-0002/tel:+14255550101;ext=101 local=hold cause=normal",
            "L1 RetrievedEvent m=4711 C-0001/tel:+14255550101;ext=101 local=connected cause=normal"
        ]
    );
    let out = r.req(1, Request::ConferenceCall { held: conn("C-0002", ALICE), active: conn("C-0001", ALICE) });
    assert_eq!(out[0], "L1 #0005 ConferenceCallResponse C-0002/tel:+14255550101;ext=101");
    assert_eq!(out[1], "L1 ConferencedEvent m=4711 C-0002/tel:+14255550101;ext=101 local=connected cause=conference");
    assert_eq!(
        r.cmd("calls").0,
        "ok C-0002 tel:+14255550101;ext=101=connected tel:+14255550000=connected tel:+14255559876=connected"
    );
    let out = r.req(1, Request::SingleStepTransferCall { active: conn("C-0002", ALICE), transferred_to: t(BOB) });
    assert_eq!(out[0], "L1 #0006 SingleStepTransferCallResponse C-0002/tel:+14255550102;ext=102");
    assert_eq!(out[1], "L1 TransferedEvent m=4711 C-0002/tel:+14255550101;ext=101 local=null cause=singleStepTransfer");
}

#[test]
fn an_outside_call_comes_in_and_is_deflected() {
    let mut r = Run::new();
    r.monitor(1, BOB);
    r.monitor(2, CAROL);
    let (reply, out) = r.cmd("call tel:+14255557777 tel:102");
    assert_eq!(reply, "ok C-0001");
    assert_eq!(out, ["L1 DeliveredEvent m=4711 C-0001/tel:+14255550102;ext=102 local=alerting cause=newCall"]);
    let out = r.req(1, Request::DeflectCall { call: conn("C-0001", BOB), new_destination: t("tel:103") });
    assert_eq!(
        out,
        [
            "L1 #0003 DeflectCallResponse",
            "L1 DivertedEvent m=4711 C-0001/tel:+14255550102;ext=102 local=null cause=redirected",
            "L2 DeliveredEvent m=4712 C-0001/tel:+14255550103;ext=103 local=alerting cause=newCall",
        ]
    );
    let (reply, out) = r.cmd("hangup C-0001");
    assert_eq!(reply, "ok");
    assert_eq!(out[0], "L2 ConnectionClearedEvent m=4712 C-0001/tel:+14255557777 local=alerting cause=normalClearing");
    assert_eq!(out.len(), 2, "the remaining party is cleared too: {out:?}");
}

#[test]
fn outside_world_busy_and_no_answer() {
    let mut r = Run::new();
    r.monitor(1, ALICE);
    r.cmd("outside busy");
    let out = r.req(1, Request::MakeCall { calling: t(ALICE), called: t(OUTSIDE), auto_originate: None });
    assert_eq!(out.last().unwrap(), "L1 FailedEvent m=4711 C-0001/tel:+14255559876 local=connected cause=busy");
    r.cmd("outside noanswer");
    r.req(1, Request::MakeCall { calling: t(ALICE), called: t(OUTSIDE), auto_originate: None });
    assert!(r.advance(29_999).is_empty());
    assert_eq!(r.advance(1), ["L1 FailedEvent m=4711 C-0002/tel:+14255559876 local=connected cause=callNotAnswered"]);
}

#[test]
fn forwarding_and_do_not_disturb() {
    let mut r = Run::new();
    r.monitor(1, ALICE);
    r.monitor(2, BOB);
    let out = r.req(
        2,
        Request::SetForwarding {
            device: t(BOB),
            forwarding_type: Some(ForwardingType::Immediate),
            activate: true,
            forward_dn: Some(t(CAROL)),
        },
    );
    assert_eq!(
        out,
        ["L2 #0003 SetForwardingResponse", "L2 ForwardingEvent m=4712 tel:+14255550102;ext=102 active=true"]
    );
    let out = r.req(1, Request::MakeCall { calling: t(ALICE), called: t(BOB), auto_originate: None });
    assert!(
        out.contains(
            &"L2 DivertedEvent m=4712 C-0001/tel:+14255550102;ext=102 local=null cause=callForwardImmediate"
                .to_string()
        ),
        "{out:#?}"
    );
    assert!(out.last().unwrap().contains("DeliveredEvent m=4711 C-0001/tel:+14255550103;ext=103"), "{out:#?}");
    let out = r.req(2, Request::GetForwarding { device: t(BOB) });
    assert_eq!(out, ["L2 #0005 GetForwardingResponse"]);

    r.req(1, Request::SetDoNotDisturb { device: t(CAROL), on: true });
    let out = r.req(1, Request::MakeCall { calling: t(ALICE), called: t(CAROL), auto_originate: None });
    assert_eq!(
        out.last().unwrap(),
        "L1 FailedEvent m=4711 C-0002/tel:+14255550103;ext=103 local=connected cause=doNotDisturb"
    );
    assert_eq!(r.req(1, Request::GetDoNotDisturb { device: t(CAROL) }), ["L1 #0008 GetDoNotDisturbResponse"]);
}

#[test]
fn errors_name_what_is_wrong() {
    let mut r = Run::new();
    assert_eq!(r.req(1, Request::MonitorStart { device: t("tel:999") }), ["L1 #0001 error operation/invalidDeviceID"]);
    assert_eq!(
        r.req(1, Request::MonitorStop { monitor: t("1") }),
        ["L1 #0002 error operation/invalidMonitorCrossRefID"]
    );
    assert_eq!(r.req(1, Request::HoldCall { call: conn("C-0042", ALICE) }), ["L1 #0003 error operation/invalidCallID"]);
    assert_eq!(
        r.req(1, Request::MakeCall { calling: t(ALICE), called: t("tel:101"), auto_originate: None }),
        ["L1 #0004 error operation/requestIncompatibleWithObject"]
    );
    let m = r.monitor(2, ALICE);
    assert_eq!(
        r.req(1, Request::MonitorStop { monitor: t(&m) }),
        ["L1 #0006 error operation/invalidMonitorCrossRefID"],
        "only the link that started a monitor stops it"
    );
    r.switch.link_closed(2);
    r.req(1, Request::MakeCall { calling: t(ALICE), called: t(OUTSIDE), auto_originate: None });
    assert!(r.advance(1000).is_empty(), "a closed link's monitors get nothing");
}

#[test]
fn snapshot_lists_the_calls_at_a_line() {
    let mut r = Run::new();
    r.req(1, Request::MakeCall { calling: t(ALICE), called: t(OUTSIDE), auto_originate: None });
    r.req(1, Request::MakeCall { calling: t(ALICE), called: t(BOB), auto_originate: None });
    let out = r.switch.request(r.now, 1, InvokeId::new(9).unwrap(), &Request::SnapshotDevice { device: t(ALICE) });
    let Message::Response(Response::Snapshot { calls, dropped: None }) = csta::parse(&out[0].body).unwrap().message
    else {
        panic!()
    };
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].connection.call.unwrap(), "C-0002");
    // Each call's compound state: alice's connection, then the far end's.
    use csta::LocalConnectionState as State;
    assert_eq!(calls[0].states, [State::Connected, State::Alerting]);
}

fn scenario() -> Vec<String> {
    let mut r = Run::new();
    r.monitor(1, ALICE);
    r.monitor(2, "tel:199");
    let mut all = Vec::new();
    all.extend(r.req(1, Request::MakeCall { calling: t(ALICE), called: t("tel:199"), auto_originate: None }));
    all.extend(r.cmd("answer C-0001").1);
    all.extend(r.req(1, Request::HoldCall { call: conn("C-0001", ALICE) }));
    all.extend(r.cmd("call tel:+15555550000 tel:101").1);
    all.extend(r.advance(5000));
    all
}

#[test]
fn the_same_scenario_gives_the_same_events() {
    assert_eq!(scenario(), scenario());
    assert!(scenario().len() > 8);
}

fn frame_of(invoke: u16, message: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut out = OutBuf::new(&mut buf);
    frame::encode(&mut out, InvokeId::new(invoke).unwrap(), |o| message.write(csta::Namespace::Ed3, o)).unwrap();
    out.as_bytes().to_vec()
}

#[test]
fn node_sessions_heartbeats_and_silent_heartbeat_fault() {
    let mut node = Node::new(switch(), Faults::default());
    let now = Instant::now();
    let link = node.open_link();
    let start = csta::SessionMessage::Start {
        application_id: t("ctigw"),
        protocol_version: Some(t(csta::Namespace::Ed4.uri())),
        duration: Some(90),
    };
    let out = node.receive(now, link, &frame_of(1, &Message::Session(start))).unwrap();
    let Message::Session(csta::SessionMessage::Started { session_id, protocol_version, .. }) =
        csta::parse(&out[0].body).unwrap().message
    else {
        panic!()
    };
    assert_eq!(session_id, "SIM-1");
    assert!(protocol_version.unwrap().eq_str(csta::Namespace::Ed4.uri()));

    let reset = Message::Session(csta::SessionMessage::ResetTimer { session_id: t("SIM-1"), duration: Some(90) });
    let bytes = frame_of(2, &reset);
    // Split across reads: answered once the frame is whole.
    assert!(node.receive(now, link, &bytes[..10]).unwrap().is_empty());
    let out = node.receive(now, link, &bytes[10..]).unwrap();
    assert!(matches!(
        csta::parse(&out[0].body).unwrap().message,
        Message::Session(csta::SessionMessage::TimerReset { .. })
    ));
    assert_eq!(out[0].invoke_id.get(), 2);

    node.faults.silent_heartbeats = true;
    assert!(node.receive(now, link, &frame_of(3, &reset)).unwrap().is_empty());
    // Requests are still answered while heartbeats are not.
    let monitor = Message::Request(Request::MonitorStart { device: t(ALICE) });
    let out = node.receive(now, link, &frame_of(4, &monitor)).unwrap();
    assert_eq!(describe(&out), ["L1 #0004 MonitorStartResponse 4711"]);
    // Events for an ed4 session are written in ed4.
    assert_eq!(csta::parse(&out[0].body).unwrap().namespace, csta::Namespace::Ed4);

    let unknown = Message::Session(csta::SessionMessage::ResetTimer { session_id: t("OTHER"), duration: None });
    node.faults.silent_heartbeats = false;
    let out = node.receive(now, link, &frame_of(5, &unknown)).unwrap();
    assert!(matches!(
        csta::parse(&out[0].body).unwrap().message,
        Message::Session(csta::SessionMessage::Refused { .. })
    ));

    assert!(node.receive(now, link, b"\x01\x00garbage").is_err(), "a bad frame closes the link");
}

#[test]
fn a_forwarding_loop_ends_after_a_few_diversions() {
    // Found by the gateway fuzz target: bob forwards to carol and carol to
    // bob, and ringing either recursed until the stack overflowed.
    let mut r = Run::new();
    r.monitor(1, ALICE);
    for (from, to) in [(BOB, CAROL), (CAROL, BOB)] {
        let forward = Some(ForwardingType::Immediate);
        r.req(
            1,
            Request::SetForwarding {
                device: t(from),
                forwarding_type: forward,
                activate: true,
                forward_dn: Some(t(to)),
            },
        );
    }
    let out = r.req(1, Request::MakeCall { calling: t(ALICE), called: t(BOB), auto_originate: None });
    assert!(out.iter().any(|o| o.contains("MakeCallResponse")), "{out:#?}");
    assert!(out.last().unwrap().contains("DeliveredEvent m=4711 C-0001/"), "the call rings somewhere: {out:#?}");
}

/// A switch named as a PBX: the line file's device column is each line's
/// name on the link (`101`), as in config/pbx-lines.conf.
fn pbx(naming: super::switch::Naming) -> Run {
    let lines = [(ALICE, "101"), (BOB, "102"), ("tel:+14255550199;ext=199", "N<199>;noa=nk")];
    let mut switch = Switch::new(lines, Outside::Answer(Duration::from_millis(1000)));
    switch.set_naming(naming);
    switch.link_opened(1, csta::Namespace::Ed4);
    Run { switch, now: Instant::now(), invoke: 0 }
}

#[test]
fn a_pbx_names_its_devices_by_its_dial_plan_and_refuses_uris() {
    use super::switch::Naming;
    let mut r = pbx(Naming::Extensions);
    let refused = r.req(1, Request::MonitorStart { device: t(ALICE) });
    assert_eq!(refused, ["L1 #0001 error operation/invalidDeviceID"], "a PBX does not know Lync's URIs");
    assert_eq!(r.monitor(1, "101"), "4711");
    let out = r.req(1, Request::MakeCall { calling: t("101"), called: t(OUTSIDE), auto_originate: None });
    assert_eq!(out, ["L1 #0003 error operation/invalidCalledDevice"], "nor URIs to call");
    let out = r.req(1, Request::MakeCall { calling: t("101"), called: t("914255559876"), auto_originate: None });
    assert_eq!(
        out,
        [
            "L1 #0004 MakeCallResponse C-0001/101",
            "L1 ServiceInitiatedEvent m=4711 C-0001/101 local=initiated cause=makeCall",
            "L1 OriginatedEvent m=4711 C-0001/101 local=connected cause=newCall",
            "L1 DeliveredEvent m=4711 C-0001/914255559876 local=connected cause=newCall",
        ]
    );
    assert_eq!(r.advance(1000), ["L1 EstablishedEvent m=4711 C-0001/914255559876 local=connected cause=normal"]);
    let out = r.req(1, Request::ClearConnection { connection: conn("C-0001", "101") });
    assert_eq!(out[0], "L1 #0005 ClearConnectionResponse");
}

#[test]
fn an_openscape_style_pbx_writes_n_forms_and_private_data() {
    use super::switch::{Naming, PRIVATE_DATA};
    let mut r = pbx(Naming::OpenScape);
    // Any spelling of the same number names the device.
    assert_eq!(r.monitor(1, "N<101>;displayNumber=101;noa=nk"), "4711");
    assert_eq!(r.monitor(1, "199"), "4712");
    r.invoke += 1;
    let request = Request::MakeCall { calling: t("N<101>;noa=nk"), called: t("102"), auto_originate: None };
    let outputs = r.switch.request(r.now, 1, InvokeId::new(r.invoke).unwrap(), &request);
    assert_eq!(describe(&outputs[..1]), ["L1 #0003 MakeCallResponse C-0001/N<101>;noa=nk"]);
    let delivered = std::str::from_utf8(&outputs[3].body).unwrap();
    assert!(delivered.contains("<deviceID>N&lt;102&gt;;noa=nk</deviceID>"), "{delivered}");
    assert!(delivered.ends_with(&format!("{PRIVATE_DATA}</DeliveredEvent>")), "{delivered}");
    assert!(delivered.contains("ecma-323/csta/ed4"), "{delivered}");
    assert!(!std::str::from_utf8(&outputs[0].body).unwrap().contains("privateData"), "events only");
}
