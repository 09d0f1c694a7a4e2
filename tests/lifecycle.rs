//! The service lifecycle with the real binaries on loopback: SIGTERM ends
//! every session with a BYE and exits 0 in bounded time; SIGHUP reloads
//! the line appearances without dropping a session, and a bad file is
//! refused as a whole with file:line errors.

mod common;

use std::time::{Duration, Instant};

use common::gateway::{Gateway, config_text, free_port, scratch_dir};
use common::lync::Lync;
use common::sim::Sim;

fn start(name: &str, lines_file: Option<&std::path::Path>) -> (Vec<Sim>, Gateway) {
    let sims = vec![Sim::start(&[]), Sim::start(&[])];
    let mut config = config_text(free_port(), &[sims[0].listen, sims[1].listen], "");
    if let Some(path) = lines_file {
        let default = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf");
        config = config.replace(default, &path.display().to_string());
    }
    let gw = Gateway::start(name, &config);
    gw.wait_log("node 1: up", Duration::from_secs(10));
    gw.wait_log("node 2: up", Duration::from_secs(10));
    (sims, gw)
}

#[test]
fn sigterm_ends_every_session_with_bye_and_exits_zero() {
    let (_sims, mut gw) = start("sigterm", None);
    let mut alice = Lync::connect(gw.sip, "tcp", "alice@example.com");
    let mut bob = Lync::connect(gw.sip, "udp", "bob@example.com");
    assert_eq!(alice.sign_in(None), 200);
    assert_eq!(bob.sign_in(None), 200);
    assert_eq!(alice.features(), 200);

    let asked = Instant::now();
    gw.signal("TERM");
    for (name, user) in [("alice", &mut alice), ("bob", &mut bob)] {
        let bye = user.receive(Duration::from_secs(5)).unwrap_or_else(|| panic!("{name} got no BYE"));
        assert!(bye.starts_with("BYE "), "{name}: {bye}");
        user.answer(&bye, 200);
    }
    // Every BYE answered: the gateway exits at once, not at the grace's end.
    let status = gw.wait_exit(Duration::from_secs(10)).expect("ctigw exits after SIGTERM");
    assert!(status.success(), "{status:?}: {}", gw.log_text());
    let took = asked.elapsed();
    eprintln!("SIGTERM to exit, two sessions ended with BYE: {took:?}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    let log = gw.log_text();
    assert!(log.contains("SIGTERM: stopping; ending 2 sessions with BYE"), "{log}");
    assert!(log.contains("SIGTERM: stopped in"), "{log}");
}

#[test]
fn sigterm_with_an_unanswered_bye_still_exits_within_the_grace() {
    let (_sims, mut gw) = start("sigterm-grace", None);
    let mut alice = Lync::connect(gw.sip, "udp", "alice@example.com");
    assert_eq!(alice.sign_in(None), 200);
    gw.signal("INT");
    // Alice never answers (her BYE is retransmitted meanwhile).
    let bye = alice.receive(Duration::from_secs(5)).expect("a BYE");
    assert!(bye.starts_with("BYE "), "{bye}");
    let status = gw.wait_exit(Duration::from_secs(15)).expect("ctigw exits within its grace");
    assert!(status.success(), "{status:?}");
    let log = gw.log_text();
    assert!(log.contains("SIGINT: some BYEs were not answered within 5 s"), "{log}");
}

#[test]
fn new_sessions_are_refused_while_stopping() {
    let (_sims, mut gw) = start("sigterm-refuse", None);
    let mut alice = Lync::connect(gw.sip, "udp", "alice@example.com");
    assert_eq!(alice.sign_in(None), 200);
    gw.signal("TERM");
    let bye = alice.receive(Duration::from_secs(5)).expect("a BYE");
    assert!(bye.starts_with("BYE "));
    // Alice's BYE is left unanswered, so the gateway is still stopping.
    let mut bob = Lync::connect(gw.sip, "udp", "bob@example.com");
    assert_eq!(bob.sign_in(None), 503);
    alice.answer(&bye, 200);
    assert!(gw.wait_exit(Duration::from_secs(10)).expect("exits").success());
}

#[test]
fn sighup_reloads_the_lines_keeps_sessions_and_refuses_a_bad_file() {
    let dir = scratch_dir("sighup-lines");
    let lines = dir.join("lines.conf");
    let original = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf")).unwrap();
    // Bob has no line at first.
    let without_bob: String = original.lines().filter(|l| !l.contains("bob@")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&lines, &without_bob).unwrap();
    let (_sims, gw) = start("sighup", Some(&lines));

    let mut alice = Lync::connect(gw.sip, "tcp", "alice@example.com");
    assert_eq!(alice.sign_in(None), 200);
    let mut bob = Lync::connect(gw.sip, "tcp", "bob@example.com");
    assert_eq!(bob.sign_in(None), 403, "bob has no line yet");

    std::fs::write(&lines, &original).unwrap();
    gw.signal("HUP");
    gw.wait_log("reload: ", Duration::from_secs(5));
    let log = gw.log_text();
    assert!(log.contains("sessions kept"), "{log}");
    let mut bob = Lync::connect(gw.sip, "tcp", "bob@example.com");
    assert_eq!(bob.sign_in(None), 200, "bob's line is in force after the reload");
    assert_eq!(alice.features(), 200, "alice's session survived the reload");

    // A file with a fault is refused as a whole; the old one stays.
    std::fs::write(&lines, format!("{original}sip:eve@example.com   SEPE1   not-a-number\n")).unwrap();
    gw.signal("HUP");
    gw.wait_log("reload refused", Duration::from_secs(5));
    let log = gw.log_text();
    let error = format!("{}:", lines.display());
    assert!(log.lines().any(|l| l.contains("reload: ") && l.contains(&error)), "no file:line error: {log}");
    let mut carol = Lync::connect(gw.sip, "tcp", "carol@example.com");
    assert_eq!(carol.sign_in(None), 200, "the previous appearances are still in force");
    assert_eq!(alice.features(), 200);
    assert_eq!(bob.features(), 200);
}

#[test]
fn systemd_is_told_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = scratch_dir("notify-socket");
    let path = dir.join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let sim = Sim::start(&[]);
    let config = config_text(free_port(), &[sim.listen], "");
    let mut gw = Gateway::start_with_env("notify", &config, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let next = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1");
    gw.signal("HUP");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    gw.signal("TERM");
    assert_eq!(next(), "STOPPING=1");
    assert!(gw.wait_exit(Duration::from_secs(10)).expect("exits").success());
}

/// SIGHUP reloads the dial plan: a session open across the reload dials by
/// the new rules at once, and a rule with a fault is refused at file:line
/// with the rules in force kept (common/pbx.rs: an OpenScape-class switch).
#[test]
fn sighup_reloads_the_dial_plan_keeps_sessions_and_refuses_a_bad_rule() {
    use common::lync::status_of;
    let sim = common::pbx::start_sim();
    let full = common::pbx::config(free_port(), &[sim.listen], "");
    let international = "to_node = +! strip=1 prefix=9011";
    assert!(full.contains(international));
    let national_only = full.replace(international, "");
    let gw = Gateway::start("sighup-dialplan", &national_only);
    gw.wait_log("node 1: up", Duration::from_secs(10));
    let path = std::env::temp_dir().join(format!("ctigw-test-{}-sighup-dialplan/ctigw.conf", std::process::id()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), national_only);

    let line = "tel:+14255550101;ext=101";
    let mut alice = Lync::connect(gw.sip, "udp", "alice@example.com");
    assert_eq!(alice.sign_in(Some(line)), 200);
    let ns = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
    let call = format!(
        "<MakeCall xmlns=\"{ns}\"><callingDevice>{line}</callingDevice>\
         <calledDirectoryNumber>tel:+3222220220</calledDirectoryNumber></MakeCall>"
    );
    assert!(alice.info_response(&call).contains("invalidCalledDevice"), "no international rule yet");

    std::fs::write(&path, &full).unwrap();
    gw.signal("HUP");
    gw.wait_log("reload: 7 line appearances", Duration::from_secs(5));
    gw.wait_log("a dial plan of 5 to_node and 4 to_lync rules", Duration::from_secs(1));
    let answer = alice.info_response(&call);
    assert_eq!(status_of(&answer), 200);
    assert!(answer.contains("MakeCallResponse"), "the session dials by the new rules: {answer}");
    let calls = sim.control("calls");
    assert!(calls.contains("N<90113222220220>;noa=nk"), "9, 011 and the number: {calls}");

    // A bad rule: the whole file is refused, the rules in force stay.
    let bad = full.replace("to_lync = 1XX prefix=+14255550", "to_lync = 1XX prefix=+1425555O");
    std::fs::write(&path, &bad).unwrap();
    gw.signal("HUP");
    gw.wait_log("reload refused", Duration::from_secs(5));
    let number = bad.lines().position(|l| l.contains("+1425555O")).unwrap() + 1;
    gw.wait_log(
        &format!("{}:{number}: prefix=\"+1425555O\" is not digits (*, # and a leading + allowed)", path.display()),
        Duration::from_secs(1),
    );
    assert_eq!(alice.features(), 200, "the session never noticed");
}
