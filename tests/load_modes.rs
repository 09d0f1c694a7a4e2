//! The load client's three request kinds, as `make bench` uses them
//! against the gateway: GetCSTAFeatures answered by the gateway itself,
//! GetDoNotDisturb relayed through the user's node, and the call mix with
//! its events. Each must be answered for every request, and go where it
//! says it goes (the gateway's counters tell).

mod common;

use std::process::Stdio;

use common::admin;
use common::load::LoadRig;

const USERS: usize = 10;

/// Runs `ctigw-load --requests kind` for one second; returns its report.
fn run(rig: &LoadRig, kind: &str) -> serde_json::Value {
    let out = rig
        .load()
        .args(["--users", &USERS.to_string(), "--window", "4", "--duration", "1", "--requests", kind, "--json"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "ctigw-load --requests {kind}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["signed_in"], USERS, "{kind}: {report}");
    assert_eq!(report["lost"], 0, "{kind}: {report}");
    assert_eq!(report["refused"], 0, "{kind}: {report}");
    report
}

fn relayed(rig: &LoadRig) -> f64 {
    admin::metrics(rig.admin).get("ctigw_requests_relayed_total").copied().unwrap_or(0.0)
}

#[test]
fn features_stay_in_the_gateway_relayed_requests_reach_a_node_calls_bring_events() {
    let rig = LoadRig::start("load-modes", USERS, "warn");

    let before = relayed(&rig);
    let features = run(&rig, "features");
    let answered = features["kinds"]["GetCSTAFeatures"]["ok"].as_u64().unwrap();
    assert!(answered > 0, "{features}");
    assert_eq!(features["events"], 0);
    assert_eq!(relayed(&rig), before, "GetCSTAFeatures is answered without a node");

    let before = relayed(&rig);
    let dnd = run(&rig, "relayed");
    let answered = dnd["kinds"]["GetDoNotDisturb"]["ok"].as_u64().unwrap();
    assert!(answered > 0, "{dnd}");
    assert_eq!(dnd["events"], 0, "no monitor, no events");
    assert_eq!(relayed(&rig) - before, answered as f64, "every GetDoNotDisturb went through a node");

    let calls = run(&rig, "calls");
    assert!(calls["kinds"]["MakeCall"]["ok"].as_u64().unwrap() > 0, "{calls}");
    assert!(calls["events"].as_u64().unwrap() > 0, "{calls}");
    assert_eq!(calls["cleared_events_missing"], 0, "{calls}");
}
