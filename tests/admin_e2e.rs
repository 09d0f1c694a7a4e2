//! The admin endpoint end to end: `ctigw` booted with `[admin] listen`
//! beside two `ctigw-sim` nodes, scraped over real HTTP while a Lync user
//! signs in and works, and after the nodes are killed.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::gateway::{Gateway, config_text, free_port};
use common::lync::Lync;
use common::sim::Sim;

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
const ALICE_LINE: &str = "tel:+14255550101;ext=101";
const BOB_LINE: &str = "tel:+14255550102;ext=102";

/// A gateway with the admin endpoint on a free loopback port.
fn start(name: &str, nodes: &[SocketAddr]) -> (Gateway, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // `extra` lands at the end of [sip]; a section header there opens [admin].
    let gw = Gateway::start(name, &config_text(free_port(), nodes, &format!("[admin]\nlisten = {admin}")));
    gw.wait_log(&format!("admin endpoint on {admin}"), Duration::from_secs(5));
    (gw, admin)
}

/// One HTTP answer.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` as it is and reads the answer up to the close.
fn http(admin: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(admin).expect("the admin endpoint accepts");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("an answer, then the close");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {text:?}"));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("status line {head:?}"));
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    let answer = Answer { status, head: head.to_string(), body: body.to_string() };
    assert_eq!(answer.header("Connection"), Some("close"), "{head}");
    answer
}

fn get(admin: SocketAddr, path: &str) -> Answer {
    let answer = http(admin, format!("GET {path} HTTP/1.1\r\nHost: ctigw\r\nUser-Agent: test\r\n\r\n").as_bytes());
    let length: usize = answer.header("Content-Length").and_then(|v| v.parse().ok()).expect("Content-Length");
    assert_eq!(length, answer.body.len(), "Content-Length of {path}");
    answer
}

/// One scrape of /metrics: (name, labels) to value.
struct Metrics(HashMap<(String, Vec<(String, String)>), f64>);

impl Metrics {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        key.sort();
        *self.0.get(&(name.to_string(), key)).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// The sum over every label set of `name`.
    fn sum(&self, name: &str) -> f64 {
        self.0.iter().filter(|((n, _), _)| n == name).map(|(_, v)| v).sum()
    }
}

/// Scrapes /metrics and checks its format with `prometheus-parse`: every
/// line is a HELP, a TYPE or a sample it understands, every sample is
/// typed and documented, counters end with `_total`, names with `ctigw_`.
fn scrape(admin: SocketAddr) -> Metrics {
    use prometheus_parse::{LineInfo, Scrape, Value};
    let answer = get(admin, "/metrics");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = &answer.body;
    assert!(text.ends_with('\n'));
    let mut sample_lines = 0;
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Sample { .. } => sample_lines += 1,
            LineInfo::Doc { .. } | LineInfo::Type { .. } => {}
            other => panic!("prometheus-parse does not understand {line:?}: {other:?}"),
        }
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the scrape parses");
    assert_eq!(scrape.samples.len(), sample_lines, "every sample line is a sample");
    let mut metrics = HashMap::new();
    for sample in scrape.samples {
        let name = sample.metric;
        assert!(name.starts_with("ctigw_"), "{name}");
        assert!(scrape.docs.contains_key(&name), "{name} has no HELP");
        let value = match sample.value {
            Value::Counter(v) => {
                assert!(name.ends_with("_total") && v >= 0.0, "counter {name} = {v}");
                v
            }
            Value::Gauge(v) => {
                assert!(!name.ends_with("_total"), "gauge {name}");
                v
            }
            other => panic!("{name}: untyped or unexpected {other:?}"),
        };
        let mut labels: Vec<(String, String)> = sample.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.sort();
        assert!(metrics.insert((name.clone(), labels), value).is_none(), "{name} twice");
    }
    Metrics(metrics)
}

fn json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let answer = get(admin, path);
    assert_eq!(answer.status, 200, "{path}");
    assert_eq!(answer.header("Content-Type"), Some("application/json"));
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{path}: {e}\n{}", answer.body))
}

fn monitor_start(line: &str) -> String {
    format!(
        "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>{line}</deviceObject></monitorObject></MonitorStart>"
    )
}

#[test]
fn counters_move_exactly_with_the_traffic_and_health_follows_the_nodes() {
    let mut sims = [Sim::start(&[]), Sim::start(&[])];
    let (gw, admin) = start("admin-traffic", &[sims[0].listen, sims[1].listen]);
    gw.wait_log("node 1: up", Duration::from_secs(5));
    gw.wait_log("node 2: up", Duration::from_secs(5));

    let health = get(admin, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok: 2 of 2 CTI nodes up\n"));
    let before = scrape(admin);
    assert_eq!(before.get("ctigw_sessions_open", &[]), 0.0);
    assert_eq!(before.get("ctigw_sessions_capacity", &[]) as usize, json(admin, "/sessions")["capacity"]);
    for (i, sim) in sims.iter().enumerate() {
        let addr = sim.listen.to_string();
        assert_eq!(before.get("ctigw_cti_node_up", &[("node", &i.to_string()), ("addr", &addr)]), 1.0);
    }

    // Alice signs in over TCP, asks for the features and monitors her line;
    // then tries to monitor Bob's: a privilege violation.
    let mut alice = Lync::connect(gw.sip, "tcp", "alice@example.com");
    assert_eq!(alice.sign_in(Some(ALICE_LINE)), 200);
    assert_eq!(alice.features(), 200);
    assert_eq!(alice.info(&monitor_start(ALICE_LINE)), 200);
    assert_eq!(alice.info(&monitor_start(BOB_LINE)), 200, "refused inside a 200, by a CSTA error");
    // An INVITE for Bob's line in Alice's name, over UDP: 403.
    let mut intruder = Lync::connect(gw.sip, "udp", "alice@example.com");
    assert_eq!(intruder.sign_in(Some(BOB_LINE)), 403);

    // /sessions says which node holds Alice's session: a call to her line
    // there brings event INFOs, each counted and answered.
    let sessions = json(admin, "/sessions");
    assert_eq!(sessions["open"], 1);
    let session = &sessions["sessions"][0];
    assert_eq!(session["user"], "sip:alice@example.com");
    assert_eq!(session["line"], ALICE_LINE);
    assert_eq!(session["transport"], "tcp");
    assert!(session["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{session}");
    assert!(session["call_id"].as_str().is_some_and(|c| c.starts_with("alice-")), "{session}");
    assert!(session["age_s"].as_u64().is_some_and(|age| age < 60), "{session}");
    assert_eq!(session["monitors"], 1);
    let slot = session["slot"].as_u64().expect("a slot") as usize;
    let reply = sims[slot].control(&format!("call tel:+14255559876 {ALICE_LINE}"));
    assert!(reply.starts_with("ok"), "{reply}");
    let mut event_infos = 0;
    while let Some(m) = alice.receive(Duration::from_millis(1500)) {
        assert!(m.starts_with("INFO "), "only event INFOs are expected now: {m}");
        event_infos += 1;
        alice.answer(&m, 200);
    }
    assert!(event_infos >= 1, "the call was offered to the monitored line");

    let after = scrape(admin);
    let delta = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let method = |m: &'static str| delta("ctigw_sip_requests_total", &[("method", m)]);
    assert_eq!(method("INVITE"), 2.0);
    assert_eq!(method("ACK"), 2.0);
    assert_eq!(method("INFO"), 3.0);
    for m in ["BYE", "CANCEL", "OPTIONS", "UPDATE", "other"] {
        assert_eq!(method(m), 0.0, "{m}");
    }
    let class = |c: &'static str| delta("ctigw_sip_responses_total", &[("class", c)]);
    assert_eq!(class("2xx"), 4.0, "the INVITE and three INFOs");
    assert_eq!(class("4xx"), 1.0, "the 403");
    assert_eq!(class("1xx") + class("3xx") + class("5xx") + class("6xx"), 0.0);
    assert_eq!(after.get("ctigw_sessions_open", &[]), 1.0);
    assert_eq!(delta("ctigw_sessions_opened_total", &[]), 1.0);
    assert_eq!(delta("ctigw_sessions_closed_total", &[]), 0.0);
    assert_eq!(delta("ctigw_requests_refused_total", &[("cause", "privilege_violation")]), 1.0);
    assert_eq!(delta("ctigw_requests_refused_total", &[("cause", "cti_node_down")]), 0.0);
    assert_eq!(delta("ctigw_invites_refused_total", &[("cause", "unknown_user_or_line")]), 1.0);
    assert_eq!(after.sum("ctigw_invites_refused_total") - before.sum("ctigw_invites_refused_total"), 1.0);
    assert_eq!(delta("ctigw_requests_relayed_total", &[]), 1.0, "only the first MonitorStart reached a node");
    assert_eq!(delta("ctigw_events_relayed_total", &[]), f64::from(event_infos));
    assert_eq!(delta("ctigw_event_info_timeouts_total", &[]), 0.0);
    assert_eq!(after.sum("ctigw_cti_requests_total") - before.sum("ctigw_cti_requests_total"), 1.0);
    assert_eq!(after.sum("ctigw_cti_responses_total") - before.sum("ctigw_cti_responses_total"), 1.0);
    let node_events = after.sum("ctigw_cti_events_total") - before.sum("ctigw_cti_events_total");
    assert_eq!(
        node_events,
        delta("ctigw_events_relayed_total", &[]) + delta("ctigw_events_unknown_monitor_total", &[])
    );
    assert_eq!(after.get("ctigw_sip_tcp_connections_open", &[]), 1.0, "Alice's connection");
    assert_eq!(delta("ctigw_sip_tcp_connections_refused_total", &[]), 0.0);
    assert_eq!(delta("ctigw_sip_messages_dropped_total", &[]), 0.0);
    // Every message above is a few hundred bytes at least.
    let messages_in = 2.0 + 2.0 + 3.0 + f64::from(event_infos);
    let messages_out = 5.0 + f64::from(event_infos);
    assert!(delta("ctigw_sip_received_bytes_total", &[]) >= messages_in * 100.0);
    assert!(delta("ctigw_sip_sent_bytes_total", &[]) >= messages_out * 100.0);

    let nodes = json(admin, "/nodes");
    assert_eq!((nodes["configured"].as_u64(), nodes["up"].as_u64()), (Some(2), Some(2)));
    for (i, sim) in sims.iter().enumerate() {
        let node = &nodes["nodes"][i];
        assert_eq!(node["addr"], sim.listen.to_string());
        assert_eq!(node["state"], "up");
        assert_eq!(node["slot"], i);
    }
    assert_eq!(
        nodes["nodes"][slot]["counters"]["requests"],
        after.get("ctigw_cti_requests_total", &[("node", &slot.to_string()), ("addr", &sims[slot].listen.to_string())])
    );

    // Both nodes gone: unhealthy, and the metrics say so.
    for sim in &mut sims {
        sim.kill();
    }
    gw.wait_log("node 1: down", Duration::from_secs(5));
    gw.wait_log("node 2: down", Duration::from_secs(5));
    let health = get(admin, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (503, "no CTI node up (0 of 2)\n"));
    let down = scrape(admin);
    assert_eq!(down.get("ctigw_cti_nodes_up", &[]), 0.0);
    assert_eq!(down.sum("ctigw_cti_node_up"), 0.0);
    assert_eq!(down.sum("ctigw_cti_disconnects_total"), 2.0);
    assert_eq!(json(admin, "/nodes")["up"], 0);
}

#[test]
fn refusals_are_answered_with_their_status() {
    let sim = Sim::start(&[]);
    let (_gw, admin) = start("admin-refusals", &[sim.listen]);
    let answer = http(admin, b"GET /nope HTTP/1.1\r\nHost: ctigw\r\n\r\n");
    assert_eq!((answer.status, answer.body.as_str()), (404, "404 Not Found\n"));
    let answer = http(admin, b"POST /metrics HTTP/1.1\r\nHost: ctigw\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("Allow"), Some("GET, HEAD"));
    let answer = http(admin, b"DELETE /sessions HTTP/1.1\r\n\r\n");
    assert_eq!(answer.status, 405);
    let answer = http(admin, b"POST /metrics HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(answer.status, 413);
    let answer = http(admin, b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(answer.status, 413);
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 3000));
    big.extend(b"\r\n\r\n");
    let answer = http(admin, &big);
    assert_eq!((answer.status, answer.body.as_str()), (431, "431 Request Header Fields Too Large\n"));
    let answer = http(admin, b"\x01\x02 not http\r\n\r\n");
    assert_eq!(answer.status, 400);
    // HEAD: the head of the GET, without its body.
    let head = http(admin, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length: usize = head.header("Content-Length").and_then(|v| v.parse().ok()).unwrap();
    assert!(length > 1000, "{length}");
    // And the endpoint still serves.
    assert_eq!(get(admin, "/nodes").status, 200);
}

#[test]
fn four_connections_are_served_at_once_and_slow_clients_are_dropped() {
    let sim = Sim::start(&[]);
    let (gw, admin) = start("admin-slots", &[sim.listen]);
    gw.wait_log("node 1: up", Duration::from_secs(5));
    let mut slow: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(admin).unwrap()).collect();
    for s in &mut slow {
        s.write_all(b"GET /heal").unwrap(); // and never the rest
    }
    std::thread::sleep(Duration::from_millis(300)); // all four accepted
    let started = Instant::now();
    let mut fifth = TcpStream::connect(admin).unwrap();
    fifth.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\n\r\n"); // may meet the close already
    let mut buf = [0u8; 64];
    assert!(matches!(fifth.read(&mut buf), Ok(0) | Err(_)), "the fifth connection is closed unanswered");
    assert!(started.elapsed() < Duration::from_secs(1), "closed at once");
    // The slow ones are dropped after the read timeout (5 s from accept).
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let read = s.read(&mut buf);
        assert!(matches!(read, Ok(0) | Err(_)), "a slow client gets no answer: {read:?}");
    }
    let waited = started.elapsed();
    assert!(waited > Duration::from_secs(3) && waited < Duration::from_secs(7), "{waited:?}");
    // Their places are free again.
    let health = get(admin, "/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
}
