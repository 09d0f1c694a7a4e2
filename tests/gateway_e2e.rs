//! The gateway end to end, with the real binaries on loopback: two
//! `ctigw-sim` nodes, `ctigw` booted from a configuration file, and
//! `ctigw-demo` playing a Lync user over TCP and over UDP.

mod common;

use std::time::Duration;

use common::gateway::{Gateway, config_text, demo, free_port, scratch_dir};
use common::sim::Sim;

#[test]
fn a_user_signs_in_calls_holds_transfers_and_hangs_up_over_tcp_and_udp() {
    let sims = [Sim::start(&[]), Sim::start(&[])];
    let gw = Gateway::start("flows", &config_text(free_port(), &[sims[0].listen, sims[1].listen], ""));
    gw.wait_log("node 2: up", Duration::from_secs(5));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    for transport in ["tcp", "udp"] {
        let out = demo(gw.sip, &["--transport", transport]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{transport}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("demo complete"), "{stdout}");
        for line in ["TransferedEvent C-", "HeldEvent C-", "RetrievedEvent C-", "ConnectionClearedEvent C-"] {
            assert!(stdout.contains(line), "{transport}: no {line}\n{stdout}");
        }
    }
    // Round-robin: the two sessions went to different nodes.
    let log = gw.log.lock().unwrap().join("\n");
    assert!(
        log.contains("node 1, from TCP") && log.contains("node 2, from UDP")
            || log.contains("node 2, from TCP") && log.contains("node 1, from UDP"),
        "{log}"
    );
}

#[test]
fn lync_reaches_the_gateway_over_ipv6_too() {
    let sim = Sim::start(&[]);
    let port = free_port();
    let gw =
        Gateway::start("ipv6", &config_text(port, &[sim.listen], &format!("listen = [::1]:{port}\ntrusted = ::1")));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    for transport in ["tcp", "udp"] {
        let out = demo(v6, &["--transport", transport, "--quiet"]);
        assert!(out.status.success(), "{transport} over IPv6: {}", String::from_utf8_lossy(&out.stderr));
    }
    let log = gw.log.lock().unwrap().join("\n");
    assert!(log.contains("from TCP/[::1]:") && log.contains("from UDP/[::1]:"), "{log}");
}

#[test]
fn users_keep_working_on_the_live_node_when_the_other_is_killed() {
    let mut sims = [Sim::start(&[]), Sim::start(&[])];
    let gw = Gateway::start("failover", &config_text(free_port(), &[sims[0].listen, sims[1].listen], ""));
    gw.wait_log("node 2: up", Duration::from_secs(5));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    sims[0].kill();
    gw.wait_log("node 1: down", Duration::from_secs(5));
    for (user, line) in [("sip:bob@example.com", "tel:102"), ("sip:carol@example.com", "tel:103")] {
        let out = demo(gw.sip, &["--user", user, "--line", line, "--quiet"]);
        assert!(out.status.success(), "{user}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // And back: the node is reconnected and takes sessions again.
    let addr = sims[0].listen.to_string();
    sims[0] = Sim::start_on(&addr, &[]);
    gw.wait_log("node 1: up", Duration::from_secs(5));
}

#[test]
fn another_users_line_is_refused() {
    let sim = Sim::start(&[]);
    let gw = Gateway::start("privilege", &config_text(free_port(), &[sim.listen], ""));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let out = demo(gw.sip, &["--user", "sip:alice@example.com", "--line", "tel:102", "--quiet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403 Forbidden: line not assigned to the user"));
}

#[test]
fn check_config_reports_every_error_as_file_and_line() {
    let dir = scratch_dir("check");
    let good = dir.join("good.conf");
    std::fs::write(&good, config_text(5060, &["127.0.0.1:7001".parse().unwrap()], "")).unwrap();
    let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--check-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok (1 CTI nodes, 5 line appearances"));

    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "[sip]\nlisten = 127.0.0.1:5060\nlisten = here\ncolour = blue\n[cti]\nnode = 127.0.0.1:7001\nnode = 127.0.0.1:7001\n").unwrap();
    let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = bad.display();
    assert!(stderr.contains(&format!("{path}:3: \"here\" is not an address:port")), "{stderr}");
    assert!(stderr.contains(&format!("{path}:4: unknown key \"colour\" in [sip]")), "{stderr}");
    assert!(stderr.contains(&format!("{path}:7: CTI node 127.0.0.1:7001 listed twice")), "{stderr}");

    let bad_lines = dir.join("lines.conf");
    std::fs::write(&bad_lines, "sip:a@example.com D1 tel:101\nsip:b@example.com D2\n").unwrap();
    let conf = dir.join("with-bad-lines.conf");
    std::fs::write(
        &conf,
        format!(
            "[sip]\nlisten = 127.0.0.1:5060\n[cti]\nnode = 127.0.0.1:7001\n[lines]\nfile = {}\n",
            bad_lines.display()
        ),
    )
    .unwrap();
    let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--check-config").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:2: expected 3 fields", bad_lines.display())), "{stderr}");

    let out = common::binary(env!("CARGO_BIN_EXE_ctigw"))
        .arg("--check-config")
        .arg(dir.join("missing.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.conf: cannot read"));
    let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ctigw "));
    let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tcp_slots_refuse_the_extra_connection_and_idle_ones_are_closed() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let sim = Sim::start(&[]);
    let gw =
        Gateway::start("slots", &config_text(free_port(), &[sim.listen], "tcp_connections = 2\ntcp_idle_timeout = 1s"));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let options = "OPTIONS sip:ctigw@gw SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKslot\r\nFrom: <sip:a@b>;tag=s\r\nTo: <sip:c@d>\r\nCall-ID: slot\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let answered = |s: &mut TcpStream| {
        s.write_all(options.as_bytes()).unwrap();
        let mut buf = [0u8; 2048];
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"SIP/2.0 200"))
    };
    let mut first = TcpStream::connect(gw.sip).unwrap();
    let mut second = TcpStream::connect(gw.sip).unwrap();
    assert!(answered(&mut first) && answered(&mut second));
    // The third is closed at once; the two others are untouched.
    let mut third = TcpStream::connect(gw.sip).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)), "the extra connection is refused");
    assert!(answered(&mut first) && answered(&mut second));
    gw.wait_log("refused, all 2 connection slots in use", Duration::from_secs(1));
    // Idle for longer than tcp_idle_timeout: closed by the gateway.
    std::thread::sleep(Duration::from_millis(1500));
    first.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)), "an idle connection is closed");
    // With slots free again, new connections are served.
    let mut fourth = TcpStream::connect(gw.sip).unwrap();
    assert!(answered(&mut fourth));
}

#[test]
fn calls_from_outside_are_answered_and_deflected() {
    let sim = Sim::start(&[]);
    let gw = Gateway::start("incoming", &config_text(free_port(), &[sim.listen], ""));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    for transport in ["tcp", "udp"] {
        let out = demo(
            gw.sip,
            &[
                "--transport",
                transport,
                "--incoming",
                &sim.control.to_string(),
                "--user",
                "sip:bob@example.com",
                "--line",
                "tel:+14255550102;ext=102",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{transport}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
        for line in [
            "DeliveredEvent C-",
            "AnswerCallResponse",
            "EstablishedEvent C-",
            "ConnectionClearedEvent C-",
            "DeflectCallResponse",
            "DivertedEvent C-",
        ] {
            assert!(stdout.contains(line), "{transport}: no {line}\n{stdout}");
        }
    }
}

/// A switch that speaks first (an OpenScape-class node: SystemStatus with
/// invoke id 0000 on accept, then SystemRegister expected; PROTOCOL.md,
/// South, and the shapes public CSTA-over-TCP clients exchange with such
/// a switch): with `mode=system-register` the link comes up once
/// registered, and a user's whole call flow runs through it.
#[test]
fn a_node_that_speaks_first_is_answered_registered_and_serves_a_call_flow() {
    let sim = Sim::start(&["--speaks-first"]);
    let config = config_text(free_port(), &[sim.listen], "")
        .replace(&format!("node = {}\n", sim.listen), &format!("node = {} mode=system-register\n", sim.listen));
    assert!(config.contains("mode=system-register"), "{config}");
    let gw = Gateway::start("speaks-first", &config);
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let status = sim.control("status");
    assert!(status.contains("greetings_answered=1 registrations=1"), "{status}");
    let out = demo(gw.sip, &["--transport", "tcp"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    for line in ["demo complete", "HeldEvent C-", "ConnectionClearedEvent C-"] {
        assert!(stdout.contains(line), "no {line}\n{stdout}");
    }
}

/// Through a PBX (common/pbx.rs: the simulator as an OpenScape-class
/// switch, config/pbx.conf's line file and dial plan): a user's whole
/// outside call over UDP and over TCP with the line Lync writes, and the
/// same for a Cisco-style line with phone-context and partition; the
/// scripted demo client's ladder through it too.
#[test]
fn through_a_pbx_lync_and_the_switch_each_see_their_own_names() {
    use common::lync::Lync;
    use common::pbx;
    let sim = pbx::start_sim();
    let gw = Gateway::start("pbx", &pbx::config(free_port(), &[sim.listen], ""));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    gw.wait_log("a dial plan of 5 to_node and 4 to_lync rules", Duration::from_secs(1));
    let mut alice = Lync::connect(gw.sip, "udp", "alice@example.com");
    pbx::call_flow(&mut alice, &sim, "tel:+14255550101;ext=101");
    let mut bob = Lync::connect(gw.sip, "tcp", "bob@example.com");
    pbx::call_flow(&mut bob, &sim, "tel:+14255550102;ext=102");
    let mut erin = Lync::connect(gw.sip, "tcp", "erin@example.com");
    pbx::call_flow(&mut erin, &sim, "tel:73124;phone-context=dialstring;partition=BE_BRS_INT");
    let mut erin = Lync::connect(gw.sip, "udp", "erin@example.com");
    pbx::call_flow(&mut erin, &sim, "tel:73124;phone-context=dialstring;device=SEPE1B2C3D4E5F6");
    let status = sim.control("status");
    assert!(status.contains("greetings_answered=1 registrations=1"), "{status}");
    // The demo client's ladder: hold, retrieve, consult, transfer, hang up.
    let out = demo(gw.sip, &["--transport", "udp"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    for line in ["demo complete", "HeldEvent C-", "TransferedEvent C-", "ConnectionClearedEvent C-"] {
        assert!(stdout.contains(line), "no {line}\n{stdout}");
    }
}
