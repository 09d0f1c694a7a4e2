//! Real SIP peers against the running gateway: sipp (Debian `sip-tester`)
//! as the Lync client, with the project's shared scenario and our own call
//! flow, over TCP and UDP; and tshark's SIP dissector reading what the
//! gateway sends, which must decode with no malformed or error-level
//! expert flag. `make test` (and `.ci/run`) install both tools.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{Gateway, config_text, demo, free_port, scratch_dir};
use common::sim::Sim;

fn tool(name: &str) -> String {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(found.status.success(), "{name} is not installed: run `make deps` (Debian: sip-tester, tshark)");
    String::from_utf8_lossy(&found.stdout).trim().to_string()
}

fn stack(name: &str) -> (Vec<Sim>, Gateway) {
    let sims = vec![Sim::start(&[]), Sim::start(&[])];
    let gw = Gateway::start(name, &config_text(free_port(), &[sims[0].listen, sims[1].listen], ""));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    gw.wait_log("node 2: up", Duration::from_secs(5));
    (sims, gw)
}

fn sipp(gw: &Gateway, scenario: &str, transport: &str, user: &str, line: &str, extra: &[&str]) {
    // One folder per gateway too: tests run side by side with the same scenario.
    let scenario_name = scenario.rsplit('/').next().unwrap();
    let dir = scratch_dir(&format!("sipp-{transport}-{scenario_name}-{}", gw.sip.port()));
    let out = Command::new(tool("sipp"))
        .current_dir(&dir)
        .args(["-sf", scenario, "-key", "user", user, "-key", "line", line])
        .args(["-t", transport, "-m", "1", "-p", &free_port().to_string(), "-nostdin", "-timeout", "40s"])
        .args(["-trace_err", "-error_file", "errors.log"])
        .args(extra)
        .arg(gw.sip.to_string())
        .stdout(Stdio::null())
        .output()
        .expect("sipp runs");
    let errors = std::fs::read_to_string(dir.join("errors.log")).unwrap_or_default();
    assert!(out.status.success(), "sipp {scenario} over {transport}: exit {:?}\n{errors}", out.status.code());
}

#[test]
fn sipp_signs_in_and_monitors_with_the_shared_scenario() {
    let (_sims, gw) = stack("sipp-shared");
    let scenario = common::testdata_dir().join("sipp/signin_monitor.xml");
    for transport in ["t1", "u1"] {
        sipp(&gw, scenario.to_str().unwrap(), transport, "alice@example.com", "tel:+14255550101;ext=101", &["-aa"]);
    }
}

#[test]
fn sipp_makes_holds_retrieves_transfers_and_clears_a_call() {
    let (_sims, gw) = stack("sipp-flow");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/call_flow.xml");
    for (transport, user, line) in
        [("t1", "alice@example.com", "tel:+14255550101;ext=101"), ("u1", "bob@example.com", "tel:102")]
    {
        sipp(&gw, scenario, transport, user, line, &[]);
    }
}

/// The same call flow through a PBX (common/pbx.rs: the simulator as an
/// OpenScape-class switch, config/pbx.conf's dial plan), for a plain line
/// over TCP and a Cisco-style line over UDP.
#[test]
fn sipp_runs_the_call_flow_through_a_pbx() {
    let sims = [common::pbx::start_sim(), common::pbx::start_sim()];
    let gw = Gateway::start("sipp-pbx", &common::pbx::config(free_port(), &[sims[0].listen, sims[1].listen], ""));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    gw.wait_log("node 2: up", Duration::from_secs(5));
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/call_flow.xml");
    for (transport, user, line) in [
        ("t1", "alice@example.com", "tel:+14255550101;ext=101"),
        ("u1", "erin@example.com", "tel:73124;phone-context=dialstring;partition=BE_BRS_INT"),
    ] {
        sipp(&gw, scenario, transport, user, line, &[]);
    }
    // The transferred calls go on between the outside parties, dialled
    // as the PBX dials them; the users are out of every call.
    for sim in &sims {
        let calls = sim.control("calls");
        assert!(!calls.contains("N<101>") && !calls.contains("CSFERIN"), "{calls}");
    }
    let calls = sims[0].control("calls") + &sims[1].control("calls");
    assert_eq!(calls.matches("N<914255551111>;noa=nk=connected").count(), 2, "{calls}");
}

/// RFC 4028 with a real peer: a client without timer support gets the
/// gateway as refresher and its UPDATE at half the 90 s interval; a
/// refresh with `Supported: timer` makes the client the refresher
/// (tests/sipp/session_timer.xml). About 50 s, over UDP.
#[test]
fn sipp_session_timers_the_gateway_refreshes_then_the_client() {
    let (_sims, gw) = stack("sipp-timer");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/session_timer.xml");
    sipp(&gw, scenario, "u1", "alice@example.com", "tel:+14255550101;ext=101", &[]);
}

#[test]
fn tshark_decodes_everything_the_gateway_sends() {
    let tshark = tool("tshark");
    let (_sims, gw) = stack("tshark");
    let port = gw.sip.port();
    let dir = scratch_dir("tshark");
    let capture = dir.join("sip.pcapng");
    let mut dump = Command::new(&tshark)
        .args(["-i", "lo", "-f", &format!("port {port}"), "-w"])
        .arg(&capture)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark captures");
    // Wait for the capture to start: tshark says so on stderr.
    let mut stderr = dump.stderr.take().unwrap();
    let started = Instant::now();
    let mut seen = String::new();
    while !seen.contains("Capturing on") {
        assert!(started.elapsed() < Duration::from_secs(10), "tshark did not start: {seen}");
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap_or(0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // "Capturing on" comes a moment before packets are recorded.
    std::thread::sleep(Duration::from_millis(500));
    for transport in ["udp", "tcp"] {
        let out = demo(gw.sip, &["--transport", transport, "--quiet"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill").arg("-INT").arg(dump.id().to_string()).status();
    let _ = dump.wait();

    let decode = |filter: &str| -> Vec<String> {
        let out = Command::new(&tshark)
            .arg("-r")
            .arg(&capture)
            .args([
                "-d",
                &format!("udp.port=={port},sip"),
                "-d",
                &format!("tcp.port=={port},sip"),
                "-o",
                "tcp.desegment_tcp_streams:TRUE",
            ])
            .args([
                "-Y",
                filter,
                "-T",
                "fields",
                "-e",
                "frame.number",
                "-e",
                "sip.Method",
                "-e",
                "sip.Status-Code",
                "-e",
                "_ws.expert.message",
            ])
            .output()
            .expect("tshark reads");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    };
    let sip = decode("sip");
    assert!(sip.len() > 60, "too few SIP packets decoded: {}", sip.len());
    for method in ["INVITE", "ACK", "INFO", "BYE"] {
        assert!(sip.iter().any(|l| l.contains(method)), "no {method} decoded: {sip:#?}");
    }
    let bad = decode("_ws.malformed || _ws.expert.severity >= \"error\"");
    assert!(bad.is_empty(), "tshark flags: {bad:#?}");
}
