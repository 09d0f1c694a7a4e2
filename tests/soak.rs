//! The soak (`make soak`, not CI): steady traffic from `ctigw-load` through
//! the gateway and two simulated nodes for SOAK_SECONDS (600 by default),
//! resident memory sampled every 5 s, and at the end every counter that
//! should agree agreeing. Ignored by `cargo test`; run with `--ignored`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::admin::metrics;
use common::load::LoadRig;

fn sum(m: &HashMap<String, f64>, prefix: &str) -> f64 {
    m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
}

#[test]
#[ignore = "ten minutes: make soak"]
fn ten_minutes_of_steady_traffic_keep_memory_flat_and_counters_consistent() {
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let users = 200;
    let rig = LoadRig::start("soak", users, "info");
    let (gw, admin) = (&rig.gw, rig.admin);

    let runner = rig
        .load()
        .args(["--users", &users.to_string(), "--rate", "500"])
        .args(["--duration", &seconds.to_string(), "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(5));
        samples.push(gw.rss_kib());
        eprintln!("{:>4} s: RSS {} KiB", started.elapsed().as_secs(), samples.last().unwrap());
    }
    let out = runner.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the load report");
    eprintln!("{report}");
    std::thread::sleep(Duration::from_secs(1));
    let m = metrics(admin);

    // Memory: flat once warm (the second half of the run within 1 MiB).
    let half = &samples[samples.len() / 2..];
    let (low, high) = (half.iter().min().unwrap(), half.iter().max().unwrap());
    assert!(high - low <= 1024, "RSS moved from {low} to {high} KiB in the second half: {samples:?}");
    // Nothing lost; everyone signed out; the tables are back to idle.
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(m["ctigw_sessions_open"], 0.0);
    assert_eq!(m["ctigw_sessions_opened_total"], m["ctigw_sessions_closed_total"]);
    // What the load saw is what the gateway counted.
    assert_eq!(m["ctigw_events_relayed_total"], report["events"].as_f64().unwrap(), "events");
    assert_eq!(m["ctigw_event_info_timeouts_total"], 0.0);
    assert_eq!(m["ctigw_sip_queue_drops_total"], 0.0);
    // Every request relayed to a node was answered by it.
    assert_eq!(sum(&m, "ctigw_cti_requests_total"), sum(&m, "ctigw_cti_responses_total"));
    assert_eq!(sum(&m, "ctigw_cti_request_timeouts_total"), 0.0);
}
