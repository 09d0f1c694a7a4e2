//! Overload, with the real binaries on loopback: twice the session
//! capacity offered, exactly the capacity accepted, the rest refused with
//! 503 and Retry-After, the sessions already open untouched, and room
//! given back as sessions end.

mod common;

use std::time::Duration;

use common::gateway::{Gateway, config_text, free_port, scratch_dir};
use common::lync::{Lync, header, status_of};
use common::sim::Sim;

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
const CAPACITY: usize = 8;

#[test]
fn twice_the_capacity_offered_exactly_the_capacity_accepted() {
    // The demo directory plus sixteen users with a line each.
    let dir = scratch_dir("overload-lines");
    let lines = dir.join("lines.conf");
    let mut text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf")).unwrap();
    for i in 1..=2 * CAPACITY {
        text.push_str(&format!("sip:u{i:02}@example.com SEPU{i:02} tel:+1425555{:04};ext={}\n", 2000 + i, 2000 + i));
    }
    std::fs::write(&lines, text).unwrap();
    let sim = Sim::start(&[]);
    let default_lines = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf");
    let config = config_text(free_port(), &[sim.listen], &format!("sessions = {CAPACITY}"))
        .replace(default_lines, &lines.display().to_string());
    let gw = Gateway::start("overload", &config);
    gw.wait_log("node 1: up", Duration::from_secs(10));

    let mut alice = Lync::connect(gw.sip, "tcp", "alice@example.com");
    assert_eq!(alice.sign_in(None), 200);
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for i in 1..2 * CAPACITY {
        let mut user = Lync::connect(gw.sip, if i % 2 == 0 { "tcp" } else { "udp" }, &format!("u{i:02}@example.com"));
        let answer = user.sign_in_response(None);
        match status_of(&answer) {
            200 => accepted.push(user),
            503 => {
                assert!(answer.starts_with("SIP/2.0 503 Service Unavailable: session table full"), "{answer}");
                let retry: u32 = header(&answer, "Retry-After").and_then(|v| v.parse().ok()).expect("Retry-After");
                assert!(retry > 0);
                refused.push(user);
            }
            other => panic!("u{i:02}: {other}: {answer}"),
        }
    }
    assert_eq!(accepted.len() + 1, CAPACITY, "exactly the capacity is accepted");
    assert_eq!(refused.len(), CAPACITY, "and the other half refused");

    // The sessions already open keep working, a relayed request included.
    let make_call = format!(
        "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:102</calledDirectoryNumber></MakeCall>"
    );
    let answer = alice.info_response(&make_call);
    assert!(answer.starts_with("SIP/2.0 200") && answer.contains("MakeCallResponse"), "{answer}");
    for user in &mut accepted {
        assert_eq!(user.features(), 200);
    }
    // Room given back is taken again: three leave, three refused get in.
    for user in accepted.iter_mut().take(3) {
        assert_eq!(user.bye(), 200);
    }
    for user in refused.iter_mut().take(3) {
        assert_eq!(user.sign_in(None), 200, "a refused user gets in once there is room");
    }
    assert_eq!(refused[3].sign_in(None), 503, "and the table is full again");
    assert!(gw.log_text().contains(&format!("the session table is full ({CAPACITY} sessions)")));
}
