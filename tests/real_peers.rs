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
use common::sipp::{Contact, Scenario, sim_command};
use ctigw::csta::{ForwardingType, Service};

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

/// The call services of issue 15, item 4, each through the running gateway with
/// sipp as the Lync client (in a Front End pool's message shapes: see
/// common/sipp.rs), each checked with its answer and the event sequence
/// ECMA-269 gives for it as the monitored device sees it:
/// - SnapshotDevice at sign-in: a call already alerting, its connection
///   states (alerting here, connected at the caller);
/// - AnswerCall: Established; GenerateDigits: the answer (no event);
///   SingleStepTransferCall: Transfered;
/// - a new incoming call: Delivered; DeflectCall: Diverted;
/// - MakeCall: ServiceInitiated, Originated, Delivered, Established;
///   ConsultationCall: Held, then the new call's four; AlternateCall:
///   Held, Retrieved; ConferenceCall: Conferenced with every party;
///   ClearConnection: ConnectionCleared;
/// - a refresh by re-INVITE keeps the session, its monitor and events.
fn calls_scenario(user: &str, line: &str, control: std::net::SocketAddr, contact: Contact) -> String {
    use common::sipp::literal as l;
    let ns = common::sipp::NS;
    let me = l(line);
    let device = |name: &str, who: &str| format!("<{name}><deviceIdentifier>{}</deviceIdentifier></{name}>", l(who));
    let conn = |element: &str, call: &str| {
        format!("<{element}><callID>{call}</callID><deviceID>{line}</deviceID></{element}>")
    };
    let (caller, transfer_to, deflect_to) = ("tel:+14255557777", "tel:+14255551111", "tel:+14255551234");
    let mut s = Scenario::sign_in("every advertised service", user, contact);
    let features: Vec<String> = Service::ALL
        .into_iter()
        .filter(|s| !matches!(s, Service::RequestSystemStatus))
        .map(|s| format!("<{}/>", s.feature_name()))
        .collect();
    s.info(&format!("<GetCSTAFeatures xmlns=\"{ns}\"/>"), &features);
    // A call is already ringing when the user signs in (the test places it
    // before sipp starts).
    s.info(
        &format!("<MonitorStart xmlns=\"{ns}\"><monitorObject><deviceObject>{line}</deviceObject></monitorObject></MonitorStart>"),
        &["<MonitorStartResponse"],
    );
    s.info_keeping(
        &format!("<SnapshotDevice xmlns=\"{ns}\"><snapshotObject>{line}</snapshotObject></SnapshotDevice>"),
        &format!(
            "<snapshotDeviceResponseInfo><connectionIdentifier><callID>([^<]+)</callID><deviceID>{me}</deviceID>\
             </connectionIdentifier><localCallState><compoundCallState><localConnectionState>alerting</localConnectionState>\
             <localConnectionState>connected</localConnectionState></compoundCallState>"
        ),
        "ringing",
    );
    s.info(
        &format!("<AnswerCall xmlns=\"{ns}\">{}</AnswerCall>", conn("callToBeAnswered", "[$ringing]")),
        &["<AnswerCallResponse"],
    );
    s.events(&[&format!(
        "<EstablishedEvent.*{}.*{}.*<localConnectionInfo>connected</localConnectionInfo><cause>normal</cause>",
        device("answeringDevice", line),
        device("callingDevice", caller)
    )]);
    // The route set does not change in a dialog: checked on the events so
    // far and after the refresh (sipp reads at most 64 KiB of scenario).
    s.without_routing_checks();
    s.info(
        &format!(
            "<GenerateDigits xmlns=\"{ns}\">{}<charactersToSend>1234#</charactersToSend></GenerateDigits>",
            conn("connectionToSendDigits", "[$ringing]")
        ),
        &["<GenerateDigitsResponse"],
    );
    s.info(
        &format!(
            "<SingleStepTransferCall xmlns=\"{ns}\">{}<transferredTo>{transfer_to}</transferredTo></SingleStepTransferCall>",
            conn("activeCall", "[$ringing]")
        ),
        &["<SingleStepTransferCallResponse[^>]*><transferredCall><callID>[^<]+</callID><deviceID>tel:\\+14255551111<"],
    );
    s.events(&[&format!(
        "<TransferedEvent.*{}.*{}.*<cause>singleStepTransfer</cause>",
        device("transferringDevice", line),
        device("transferredToDevice", transfer_to)
    )]);
    // Another call comes in and is sent on.
    s.exec(&sim_command(control, &format!("call {caller} {line}")));
    s.event_keeping(
        &format!(
            "<DeliveredEvent.*<callID>([^<]+)</callID>.*{}.*{}.*<localConnectionInfo>alerting</localConnectionInfo><cause>newCall</cause>",
            device("alertingDevice", line),
            device("callingDevice", caller)
        ),
        "second",
    );
    s.info(
        &format!(
            "<DeflectCall xmlns=\"{ns}\">{}<newDestination>{deflect_to}</newDestination></DeflectCall>",
            conn("callToBeDiverted", "[$second]")
        ),
        &["<DeflectCallResponse"],
    );
    s.events(&[&format!(
        "<DivertedEvent.*{}.*{}.*<cause>redirected</cause>",
        device("divertingDevice", line),
        device("newDestination", deflect_to)
    )]);
    // A call, a consultation, alternating between them, a conference.
    // A call to the same outside number, its id kept as `[$name]`, and its
    // four events.
    let a_call = ["<ServiceInitiatedEvent", "<OriginatedEvent", "<DeliveredEvent", "<EstablishedEvent"];
    let make_call = |s: &mut Scenario, name: &str| {
        s.info_keeping(
            &format!(
                "<MakeCall xmlns=\"{ns}\"><callingDevice>{line}</callingDevice><calledDirectoryNumber>tel:+14255559876\
                 </calledDirectoryNumber><autoOriginate>doNotPrompt</autoOriginate></MakeCall>"
            ),
            "<callingDevice><callID>([^<]+)</callID>",
            name,
        )
        .events(&a_call);
    };
    make_call(&mut s, "first");
    s.info(
        &format!("<HoldCall xmlns=\"{ns}\">{}</HoldCall>", conn("callToBeHeld", "[$first]")),
        &["<HoldCallResponse"],
    );
    s.events(&[&format!(
        "<HeldEvent.*{}.*<localConnectionInfo>hold</localConnectionInfo>",
        device("holdingDevice", line)
    )]);
    s.info(
        &format!("<RetrieveCall xmlns=\"{ns}\">{}</RetrieveCall>", conn("callToBeRetrieved", "[$first]")),
        &["<RetrieveCallResponse"],
    );
    s.events(&["<RetrievedEvent.*<localConnectionInfo>connected</localConnectionInfo>"]);
    s.info_keeping(
        &format!(
            "<ConsultationCall xmlns=\"{ns}\">{}<consultedDevice>{transfer_to}</consultedDevice></ConsultationCall>",
            conn("existingCall", "[$first]")
        ),
        "<initiatedCall><callID>([^<]+)</callID>",
        "consulted",
    );
    s.events(&["<HeldEvent.*<localConnectionInfo>hold</localConnectionInfo>"]).events(&a_call);
    s.info(
        &format!(
            "<AlternateCall xmlns=\"{ns}\">{}{}</AlternateCall>",
            conn("heldCall", "[$first]"),
            conn("activeCall", "[$consulted]")
        ),
        &["<AlternateCallResponse"],
    );
    s.events(&["<HeldEvent.*<cause>", "<RetrievedEvent.*<localConnectionInfo>connected</localConnectionInfo>"]);
    s.info_keeping(
        &format!(
            "<ConferenceCall xmlns=\"{ns}\">{}{}</ConferenceCall>",
            conn("heldCall", "[$consulted]"),
            conn("activeCall", "[$first]")
        ),
        "<ConferenceCallResponse[^>]*><conferenceCall><callID>([^<]+)</callID>",
        "conference",
    );
    s.events(&[&format!(
        "<ConferencedEvent.*<conferenceConnections>(<connectionListItem><newConnection><callID>[^<]+</callID>\
         <deviceID>({me}|tel:\\+14255559876|{})</deviceID></newConnection></connectionListItem>){{3}}\
         </conferenceConnections>.*<cause>conference</cause>",
        l(transfer_to)
    )]);
    // A consultation from the conference, and the conference transferred to it.
    s.info_keeping(
        &format!(
            "<ConsultationCall xmlns=\"{ns}\">{}<consultedDevice>tel:+14255552222</consultedDevice></ConsultationCall>",
            conn("existingCall", "[$conference]")
        ),
        "<initiatedCall><callID>([^<]+)</callID>",
        "consulted2",
    );
    s.events(&["<HeldEvent"]).events(&a_call);
    s.info(
        &format!(
            "<TransferCall xmlns=\"{ns}\">{}{}</TransferCall>",
            conn("heldCall", "[$conference]"),
            conn("activeCall", "[$consulted2]")
        ),
        &["<TransferCallResponse[^>]*><transferredCall><callID>"],
    );
    s.events(&[&format!("<TransferedEvent.*{}.*<cause>transfer</cause>", device("transferringDevice", line))]);
    // One more call, cleared.
    make_call(&mut s, "last");
    s.info(
        &format!("<ClearConnection xmlns=\"{ns}\">{}</ClearConnection>", conn("connectionToBeCleared", "[$last]")),
        &["<ClearConnectionResponse"],
    );
    s.events(&["<ConnectionClearedEvent.*<cause>normalClearing</cause>"]);
    // The client refreshes its dialog; the same session goes on, its
    // monitor and events with it.
    s.refresh().with_routing_checks();
    s.info(
        &format!("<SetDoNotDisturb xmlns=\"{ns}\"><device>{line}</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>"),
        &["<SetDoNotDisturbResponse"],
    );
    s.events(&["<DoNotDisturbEvent"]);
    s.sign_out()
}

/// The logical-device services of issue 15, item 4: do-not-disturb on and
/// off, each with its DoNotDisturbEvent and GetDoNotDisturb after it;
/// forwarding of every type on, each with its ForwardingEvent,
/// GetForwarding listing them all, then each off the same way. (Events
/// are checked by body here: sipp reads at most 64 KiB of scenario, and
/// their routing is checked in [`calls_scenario`].)
fn logical_scenario(user: &str, line: &str, contact: Contact) -> String {
    let ns = common::sipp::NS;
    let device = common::sipp::literal(line);
    let mut s = Scenario::sign_in("logical device services", user, contact);
    s.without_routing_checks();
    s.info_keeping(
        &format!("<MonitorStart xmlns=\"{ns}\"><monitorObject><deviceObject>{line}</deviceObject></monitorObject></MonitorStart>"),
        "<monitorCrossRefID>([^<]+)</monitorCrossRefID>",
        "monitor",
    );
    for on in ["true", "false"] {
        s.info(
            &format!("<SetDoNotDisturb xmlns=\"{ns}\"><device>{line}</device><doNotDisturbOn>{on}</doNotDisturbOn></SetDoNotDisturb>"),
            &["<SetDoNotDisturbResponse"],
        );
        s.events(&[&format!(
            "<DoNotDisturbEvent.*<device><deviceIdentifier>{device}</deviceIdentifier></device><doNotDisturbOn>{on}</doNotDisturbOn>"
        )]);
        s.info(
            &format!("<GetDoNotDisturb xmlns=\"{ns}\"><device>{line}</device></GetDoNotDisturb>"),
            &[&format!("<doNotDisturbOn>{on}</doNotDisturbOn>")],
        );
    }
    for on in ["true", "false"] {
        for kind in ForwardingType::ALL {
            let kind = kind.as_str();
            s.info(
                &format!(
                    "<SetForwarding xmlns=\"{ns}\"><device>{line}</device><forwardingType>{kind}</forwardingType>\
                     <activateForward>{on}</activateForward><forwardDN>tel:+14255559999</forwardDN></SetForwarding>"
                ),
                &["<SetForwardingResponse"],
            );
            s.events(&[&format!(
                "<ForwardingEvent.*<device><deviceIdentifier>{device}</deviceIdentifier></device>\
                 <forwardingType>{kind}</forwardingType><forwardStatus>{on}</forwardStatus>"
            )]);
        }
        let listed: Vec<String> = ForwardingType::ALL
            .iter()
            .map(|kind| {
                format!(
                    "<forwardListItem><forwardingType>{}</forwardingType><forwardStatus>{on}</forwardStatus>",
                    kind.as_str()
                )
            })
            .collect();
        s.info(&format!("<GetForwarding xmlns=\"{ns}\"><device>{line}</device></GetForwarding>"), &listed);
    }
    s.info(
        &format!("<MonitorStop xmlns=\"{ns}\"><monitorCrossRefID>[$monitor]</monitorCrossRefID></MonitorStop>"),
        &["<MonitorStopResponse"],
    );
    // No event after the monitor is stopped: a change now is not reported.
    s.info(
        &format!("<SetDoNotDisturb xmlns=\"{ns}\"><device>{line}</device><doNotDisturbOn>false</doNotDisturbOn></SetDoNotDisturb>"),
        &["<SetDoNotDisturbResponse"],
    );
    s.sign_out()
}

/// Every service the gateway advertises, through the running binary with
/// sipp as the client, over TCP (the client's GRUU as Contact) and UDP
/// (the registered `+sip.instance` form).
#[test]
fn sipp_drives_every_advertised_service_with_its_event_sequence() {
    let sim = Sim::start(&[]);
    let gw = Gateway::start("sipp-services", &config_text(free_port(), &[sim.listen], ""));
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let dir = scratch_dir(&format!("sipp-services-{}", gw.sip.port()));
    for (transport, user, line, contact) in [
        ("t1", "alice@example.com", "tel:+14255550101;ext=101", Contact::Gruu),
        ("u1", "bob@example.com", "tel:+14255550102;ext=102", Contact::Instance),
    ] {
        let ringing = sim.control(&format!("call tel:+14255557777 {line}"));
        assert!(ringing.starts_with("ok "), "{ringing}");
        let scenarios = [
            ("calls", calls_scenario(user, line, sim.control, contact)),
            ("logical", logical_scenario(user, line, contact)),
        ];
        for service in Service::ALL {
            let request = format!("<{} xmlns", service.request_name());
            assert!(scenarios.iter().any(|(_, text)| text.contains(&request)), "{service:?} is not exercised");
        }
        for (name, text) in scenarios {
            assert!(text.len() < 64 * 1024, "sipp reads at most 64 KiB of scenario: {name} is {}", text.len());
            let scenario = dir.join(format!("{name}-{transport}.xml"));
            std::fs::write(&scenario, text).unwrap();
            sipp(&gw, scenario.to_str().unwrap(), transport, user, line, &[]);
        }
    }
}
