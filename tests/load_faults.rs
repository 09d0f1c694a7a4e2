//! Faults under load, with the real binaries on loopback: `ctigw-load`
//! drives calls for forty users over two simulated nodes while one node is
//! killed with SIGKILL and started again. The load is a quarter of what
//! this machine carries in a closed loop (at most 200 requests a second),
//! measured first: a fault test under a load the gateway cannot carry
//! (a debug build under qemu-user on a slow machine) would measure the
//! queue, not the fault. The users on the other node see no error, no
//! request goes unanswered, no event of the live node is lost, and the
//! node, once back, takes sessions again. With `failover = move` (the
//! default) the dead node's users are ended with BYE at once and sign in
//! on the live node; with `wait` they are refused at once until it returns.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::admin;
use common::load::LoadRig;

const USERS: usize = 40;
/// How long the load runs; node 1 is killed 2 s in and restarted 2 s later.
const RUN_SECONDS: u64 = 8;

/// Which node slot each load user's session is on, from /sessions.
fn slots_of_users(admin: SocketAddr) -> std::collections::HashMap<usize, u64> {
    let sessions: serde_json::Value = serde_json::from_str(&admin::get(admin, "/sessions")).unwrap();
    let list = sessions.as_array().or_else(|| sessions["sessions"].as_array()).expect("a list of sessions").clone();
    list.iter()
        .filter_map(|s| {
            let user = s["user"].as_str()?;
            let index = user.strip_prefix("sip:load")?.strip_suffix("@example.com")?.parse().ok()?;
            Some((index, s["slot"].as_u64()?))
        })
        .collect()
}

/// What one run of the fault showed.
struct Run {
    report: serde_json::Value,
    nominal: f64,
    on_node_1: Vec<usize>,
    rig: LoadRig,
}

/// Forty users under load over two nodes; node 1 killed 2 s in and
/// started again 2 s later.
fn kill_node_1_under_load(name: &str, cti: &str) -> Run {
    let mut rig = LoadRig::start_with(name, USERS, "info", cti);
    let admin = rig.admin;

    let closed_loop = rig
        .load()
        .args(["--users", &USERS.to_string(), "--window", "16", "--duration", "2", "--json"])
        .output()
        .unwrap();
    let closed_loop: serde_json::Value = serde_json::from_slice(&closed_loop.stdout).unwrap();
    let rate = (closed_loop["rate_per_s"].as_f64().unwrap() / 4.0).clamp(20.0, 200.0).floor();
    let nominal = rate * RUN_SECONDS as f64;
    eprintln!("closed loop {} requests/s; offered {rate}/s", closed_loop["rate_per_s"]);

    // Forty users, call requests at that rate for 8 s, over UDP.
    let runner = rig
        .load()
        .args(["--users", &USERS.to_string(), "--rate", &rate.to_string(), "--duration", &RUN_SECONDS.to_string()])
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once everyone is in, note who is on which node; then kill node 1.
    let start = Instant::now();
    let slots = loop {
        let slots = slots_of_users(admin);
        if slots.len() == USERS {
            break slots;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "only {} sessions", slots.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    let on_node_1: Vec<usize> = slots.iter().filter(|(_, slot)| **slot == 0).map(|(u, _)| *u).collect();
    assert!(!on_node_1.is_empty() && on_node_1.len() < USERS, "round robin spread them: {slots:?}");
    std::thread::sleep(Duration::from_secs(2));
    rig.sims[0].kill();
    rig.gw.wait_log("node 1: down", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    rig.restart_sim(0);
    let out = runner.wait_with_output().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    eprintln!("{report}");
    // Nothing unanswered, whatever the policy.
    assert_eq!(report["lost"], 0, "{report}");
    // The live node's events all arrived: every call cleared on it got its
    // ConnectionClearedEvent (calls of the killed node may not). Every
    // answered call request causes at least one event.
    assert!(report["events"].as_u64().unwrap() >= report["call_requests_ok"].as_u64().unwrap(), "{report}");
    for user in report["cleared_missing_users"].as_array().unwrap() {
        let user = user.as_u64().unwrap() as usize;
        assert!(on_node_1.contains(&user), "load{user} on the live node lacks a ConnectionClearedEvent: {report}");
    }
    rig.gw.wait_log("node 1: up", Duration::from_secs(5));
    Run { report, nominal, on_node_1, rig }
}

/// How many sessions the gateway has opened on node 1 so far.
fn opened_on_node_1(rig: &LoadRig) -> usize {
    rig.gw.log_text().lines().filter(|l| l.contains("session opened: sip:load") && l.contains(", node 1,")).count()
}

#[test]
fn a_node_killed_under_load_moves_its_users_to_the_live_node_at_once() {
    // The default policy, failover = move.
    let Run { report, nominal, on_node_1, rig } = kill_node_1_under_load("load-faults-move", "");
    // Each of the dead node's users got a BYE at once and signed in again
    // (on the live node); nobody else was touched.
    assert_eq!(report["ended_by_gateway"].as_u64().unwrap() as usize, on_node_1.len(), "{report}");
    assert_eq!(report["kinds"]["INVITE"]["ok"].as_u64().unwrap() as usize, USERS + on_node_1.len(), "{report}");
    let refused: Vec<u64> = report["refused_users"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    for user in &refused {
        assert!(on_node_1.contains(&(*user as usize)), "load{user} was on the live node but got an error: {report}");
    }
    // Served throughout: the moved users lose a sign-in's worth, not the outage.
    assert!(report["call_requests_ok"].as_f64().unwrap() > 0.7 * nominal, "{report}");
    // The node is back and takes new sessions: the next sign-ins spread again.
    let before = opened_on_node_1(&rig);
    let again =
        rig.load().args(["--users", &USERS.to_string(), "--requests", "features", "--duration", "1"]).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(opened_on_node_1(&rig) > before, "node 1 took sessions again after its restart");
}

#[test]
fn with_failover_wait_a_dead_nodes_users_are_refused_until_it_returns() {
    let Run { report, nominal, on_node_1, rig } = kill_node_1_under_load("load-faults-wait", "failover = wait\n");
    // Half the users lose about a third of the run (down, then signing in again).
    assert!(report["call_requests_ok"].as_f64().unwrap() > 0.4 * nominal, "{report}");
    // Only users of the killed node were refused, and at once.
    let refused: Vec<usize> =
        report["refused_users"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert!(!refused.is_empty(), "the dead node's users were refused: {report}");
    for user in &refused {
        assert!(on_node_1.contains(user), "load{user} was on the live node but got an error: {report}");
    }
    // At once: not after the 2 s request timeout the node would have had
    // (the bound leaves room for qemu and a loaded machine; natively the
    // p99 is under 1 ms).
    assert!(report["refusal_p99_us"].as_u64().unwrap() < 500_000, "refusals at once: {report}");
    // The node came back: its old sessions were ended with BYE (Lync signs
    // in again), and it takes sessions once more.
    let after = slots_of_users(rig.admin);
    eprintln!("sessions per node after the run: {after:?}");
    assert!(opened_on_node_1(&rig) > on_node_1.len(), "node 1 took sessions again after its restart");
}
