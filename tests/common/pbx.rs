//! A gateway in front of a PBX for the end-to-end tests: `ctigw-sim` as
//! an OpenScape-class switch (`--naming openscape --speaks-first`: devices
//! named by its dial plan and written `N<...>;noa=nk`, URIs refused,
//! private data in events, SystemStatus first), and the gateway with
//! config/pbx.conf's line file and dial plan. One user's whole call flow
//! through it, checked at both ends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ctigw::csta::{self, Message};

use super::lync::{Lync, status_of};
use super::sim::Sim;

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";

/// The far end every flow calls, as Lync dials it.
pub const FAR_END: &str = "tel:+14255559876";

/// A simulated PBX node on free loopback ports.
pub fn start_sim() -> Sim {
    let lines = concat!(env!("CARGO_MANIFEST_DIR"), "/config/pbx-lines.conf");
    Sim::start(&["--lines", lines, "--naming", "openscape", "--speaks-first"])
}

/// A gateway configuration on `port` for PBX `nodes`: the nodes with
/// `mode=system-register`, pbx-lines.conf, config/pbx.conf's [dialplan].
pub fn config(port: u16, nodes: &[SocketAddr], extra: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/");
    let mut text =
        super::gateway::config_text(port, nodes, extra).replace("/config/lines.conf", "/config/pbx-lines.conf");
    for n in nodes {
        text = text.replace(&format!("node = {n}\n"), &format!("node = {n} mode=system-register\n"));
    }
    let pbx = std::fs::read_to_string(format!("{dir}pbx.conf")).unwrap();
    text.push_str(&pbx[pbx.find("[dialplan]").expect("pbx.conf has a [dialplan]")..]);
    text
}

/// Every device identifier of a CSTA body (answers and events).
pub fn devices(body: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let Ok(mut doc) = csta::parse(body.as_bytes()) else { return seen };
    let mut push = |_, t: &mut csta::Text<'_>| -> Result<(), ()> {
        seen.push(t.to_string());
        Ok(())
    };
    match &mut doc.message {
        Message::Event(e) => e.visit_devices(&mut push).unwrap(),
        Message::Response(r) => r.visit_devices(&mut push).unwrap(),
        _ => {}
    }
    seen
}

fn body(m: &str) -> &str {
    m.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// `user` on `line` through the gateway: sign in, monitor, an outside
/// call, its events, clear, sign out. Checks that the node was asked in
/// its own names (the call's parties on the switch), that Lync gets its
/// line back byte for byte and the far end in E.164, and that a number no
/// rule matches is refused without reaching the switch.
pub fn call_flow(lync: &mut Lync, sim: &Sim, line: &str) {
    assert_eq!(lync.sign_in(Some(line)), 200);
    let monitor = format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>{line}</deviceObject></monitorObject></MonitorStart>"
    );
    let answer = lync.info_response(&monitor);
    assert!(answer.contains("MonitorStartResponse"), "{answer}");
    let make_call = |called: &str| {
        format!(
            "<MakeCall xmlns=\"{NS}\"><callingDevice>{line}</callingDevice>\
             <calledDirectoryNumber>{called}</calledDirectoryNumber></MakeCall>"
        )
    };
    let refused = lync.info_response(&make_call("tel:555"));
    assert!(refused.contains("invalidCalledDevice"), "no rule for tel:555: {refused}");
    assert_eq!(sim.control("calls"), "ok no calls", "the switch never saw it");
    let answer = lync.info_response(&make_call(FAR_END));
    assert_eq!(status_of(&answer), 200);
    assert_eq!(devices(body(&answer)), [line], "the MakeCall answer names the line as Lync wrote it: {answer}");
    let calls = sim.control("calls");
    assert!(calls.contains("N<914255559876>;noa=nk=alerting"), "the PBX dialled 9 1 and ten digits: {calls}");
    let call = calls.split_whitespace().nth(1).unwrap().to_string();
    // The far end answers after a second: EstablishedEvent.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lync.requests_seen.iter().any(|m| m.contains("EstablishedEvent")) {
        let left = deadline.checked_duration_since(Instant::now()).expect("EstablishedEvent within 5 s");
        if let Some(m) = lync.receive(left) {
            if m.starts_with("INFO ") {
                lync.answer(&m, 200);
                lync.requests_seen.push(m);
            }
        }
    }
    let clear = format!(
        "<ClearConnection xmlns=\"{NS}\"><connectionToBeCleared><callID>{call}</callID><deviceID>{line}</deviceID>\
         </connectionToBeCleared></ClearConnection>"
    );
    assert_eq!(lync.info(&clear), 200);
    assert_eq!(sim.control("calls"), "ok no calls");
    assert_eq!(lync.bye(), 200);
    let events: Vec<&str> = lync.requests_seen.iter().map(|m| body(m)).collect();
    let names: Vec<&str> = events
        .iter()
        .filter_map(|b| b.split('<').find(|t| t.contains("Event ")).map(|t| t.split(' ').next().unwrap()))
        .collect();
    for name in
        ["ServiceInitiatedEvent", "OriginatedEvent", "DeliveredEvent", "EstablishedEvent", "ConnectionClearedEvent"]
    {
        assert!(names.contains(&name), "no {name} in {names:?}");
    }
    let seen: Vec<String> = events.iter().flat_map(|b| devices(b)).collect();
    assert!(seen.iter().any(|d| d == line) && seen.iter().any(|d| d == FAR_END), "{seen:?}");
    assert!(seen.iter().all(|d| d == line || d == FAR_END), "only Lync's names reach Lync: {seen:?}");
}
