//! The gateway at its measured maximum for 60 s, with the real binaries on
//! loopback and over TCP, as a Lync pool connects: every user on one
//! connection, so the gateway's backpressure (event INFOs and node answers
//! held back while the connection's transmit buffer is full, the next
//! request taken only when its answer fits) carries the whole load.
//!
//! The maximum is measured first: the rate of a closed loop (64 requests in
//! flight, the saturation), the latency at a tenth of it (the baseline),
//! then offered rates from 85% of the saturation down in steps of 15% for
//! 5 s each, until one is carried with nothing refused, lost or dropped
//! and a p99 latency within four times the baseline's (not queueing). That
//! rate is offered for a minute: latency stays bounded, every request is
//! answered, every event relayed arrives, and afterwards every table is
//! back to its idle count.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::admin;
use common::load::LoadRig;

const USERS: usize = 200;

fn load(rig: &LoadRig, args: &[&str]) -> serde_json::Value {
    let out =
        rig.load().args(["--transport", "tcp", "--users", &USERS.to_string(), "--json"]).args(args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// How much a counter grew between two readings of /metrics.
fn grew(before: &HashMap<String, f64>, after: &HashMap<String, f64>, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

/// Nothing refused, lost or dropped, every call's ConnectionClearedEvent
/// in, and the p99 latency within `p99_bound` microseconds.
fn clean(
    report: &serde_json::Value,
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    p99_bound: u64,
) -> bool {
    report["p99_us"].as_u64().is_some_and(|p99| p99 <= p99_bound)
        && report["lost"] == 0
        && report["refused"] == 0
        && report["signed_in"] == USERS
        && report["cleared_events_missing"] == 0
        && grew(before, after, "ctigw_sip_queue_drops_total") == 0.0
        && grew(before, after, "ctigw_sip_messages_dropped_total") == 0.0
}

#[test]
fn a_minute_at_the_measured_maximum_loses_nothing_and_drains() {
    let rig = LoadRig::start("max-load", USERS, "warn");
    let admin = rig.admin;
    let idle = admin::metrics(admin);

    let saturated = load(&rig, &["--window", "64", "--duration", "5"]);
    let saturation = saturated["rate_per_s"].as_f64().unwrap();
    assert_eq!(saturated["lost"], 0, "{saturated}");
    let light = load(&rig, &["--rate", &(saturation / 10.0).floor().to_string(), "--window", "256", "--duration", "3"]);
    let p99_bound = (4 * light["p99_us"].as_u64().unwrap()).max(5_000);
    eprintln!("closed loop: {saturation:.0} requests/s; p99 at a tenth of it {} us", light["p99_us"]);
    // The floor is the machine's own: a debug build under qemu-user on a
    // slow machine carries a hundred requests a second, a release build
    // natively tens of thousands.
    let floor = (saturation * 0.2).max(20.0);
    let mut offered = (saturation * 0.85).floor();
    let maximum = loop {
        assert!(offered >= floor, "no rate of {floor:.0}/s (a fifth of the closed loop) or more is carried cleanly");
        let before = admin::metrics(admin);
        let probe = load(&rig, &["--rate", &offered.to_string(), "--window", "256", "--duration", "5"]);
        if clean(&probe, &before, &admin::metrics(admin), p99_bound) {
            break offered;
        }
        eprintln!("{offered:.0}/s is more than is carried cleanly: {probe}");
        offered = (offered * 0.85).floor();
    };
    eprintln!("measured maximum {maximum:.0} requests/s (p99 within {p99_bound} us), offered for 60 s");

    let before = admin::metrics(admin);
    let run = load(&rig, &["--rate", &maximum.to_string(), "--window", "256", "--duration", "60"]);
    let after = admin::metrics(admin);
    eprintln!("{run}");
    eprintln!(
        "held back and sent later: {} messages; refused for an event backlog: {}",
        grew(&before, &after, "ctigw_sip_deferred_total"),
        grew(&before, &after, "ctigw_requests_refused_total{cause=\"event_backlog\"}")
    );
    assert_eq!(run["lost"], 0, "every request answered: {run}");
    assert_eq!(run["refused"], 0, "{run}");
    assert!(run["rate_per_s"].as_f64().unwrap() >= maximum * 0.95, "the offered rate was carried: {run}");
    let p99 = run["p99_us"].as_u64().unwrap();
    assert!(p99 < (2 * p99_bound).max(100_000), "p99 {p99} us");
    assert_eq!(run["cleared_events_missing"], 0, "{run}");
    assert_eq!(grew(&before, &after, "ctigw_sip_queue_drops_total"), 0.0, "no message dropped");
    assert_eq!(grew(&before, &after, "ctigw_sip_messages_dropped_total"), 0.0);
    assert_eq!(grew(&before, &after, "ctigw_event_info_timeouts_total"), 0.0);
    // Every event relayed arrived, but for at most one per user still on
    // its way when that user signed out.
    let relayed = grew(&before, &after, "ctigw_events_relayed_total");
    let received = run["events"].as_f64().unwrap();
    assert!(received <= relayed && relayed - received <= USERS as f64, "relayed {relayed}, received {received}");

    // Back to idle: every table at its count before the load.
    let drained = Instant::now();
    loop {
        let m = admin::metrics(admin);
        let busy: Vec<(&String, &f64)> = m
            .iter()
            .filter(|(k, v)| k.starts_with("ctigw_table_in_use") && idle.get(*k).is_none_or(|idle| *v > idle))
            .collect();
        if m["ctigw_sessions_open"] == 0.0 && busy.is_empty() {
            break;
        }
        assert!(drained.elapsed() < Duration::from_secs(45), "tables still in use: {busy:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("back to idle {} ms after the load ended", drained.elapsed().as_millis());
}
