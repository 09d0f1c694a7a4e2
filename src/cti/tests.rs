//! The node links against a scripted node, with a fake clock: every state
//! change, timer and failure played out in microseconds.

use std::time::{Duration, Instant};

use super::*;
use crate::csta::{Message, Response, SessionMessage, SystemStatus, Text};
use crate::outbuf::OutBuf;
use httparse::Status;

const S0: SlotId = SlotId(0);
const S1: SlotId = SlotId(1);
const S2: SlotId = SlotId(2);

fn timing() -> Timing {
    Timing {
        heartbeat_interval: Duration::from_secs(30),
        heartbeat_misses: 2,
        reconnect_interval: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(3),
    }
}

fn node(port: u16, mode: SessionMode) -> NodeConfig {
    NodeConfig { addr: format!("127.0.0.1:{port}").parse().unwrap(), protocol: Protocol::CstaXml(mode) }
}

struct Harness {
    nodes: Box<Nodes>,
    now: Instant,
}

impl Harness {
    fn new(count: usize, mode: SessionMode) -> Self {
        let configs: Vec<_> = (0..count).map(|i| node(4000 + i as u16, mode)).collect();
        let mut h = Harness { nodes: Nodes::new(timing(), &configs).unwrap(), now: Instant::now() };
        h.nodes.start(h.now);
        h
    }

    fn advance(&mut self, secs: f64) {
        self.now += Duration::from_secs_f64(secs);
        self.nodes.handle_timeout(self.now);
    }

    fn actions(&mut self) -> Vec<LinkAction> {
        std::iter::from_fn(|| self.nodes.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<CtiEvent> {
        std::iter::from_fn(|| self.nodes.poll_event()).collect()
    }

    /// Takes the frames the link wrote: (invoke id, root element name).
    fn written(&mut self, slot: SlotId) -> Vec<(InvokeId, String)> {
        let bytes = self.nodes.tx_pending(slot).to_vec();
        self.nodes.transmitted(slot, bytes.len());
        let mut frames = Vec::new();
        let mut at = 0;
        while let Status::Complete((f, used)) = frame::decode(&bytes[at..], LINK_BUFFER).unwrap() {
            let root = std::str::from_utf8(f.body).unwrap();
            let start = root.find("?><").map(|i| i + 3).unwrap_or(1);
            let name: String = root[start..].chars().take_while(|c| c.is_alphanumeric()).collect();
            frames.push((f.invoke_id, name));
            at += used;
        }
        assert_eq!(at, bytes.len());
        frames
    }

    /// The node sends a frame.
    fn feed(&mut self, slot: SlotId, invoke: InvokeId, message: &Message<'_>) {
        let mut buf = vec![0u8; 4096];
        let mut out = OutBuf::new(&mut buf);
        frame::encode(&mut out, invoke, |o| message.write(Namespace::Ed3, o)).unwrap();
        self.feed_bytes(slot, out.as_bytes());
    }

    fn feed_bytes(&mut self, slot: SlotId, bytes: &[u8]) {
        assert_eq!(self.nodes.receive(slot, bytes), bytes.len());
    }

    /// Drains what the link hands up, described.
    fn incoming(&mut self, slot: SlotId) -> Vec<String> {
        let now = self.now;
        let mut out = Vec::new();
        let mut inbox = vec![0u8; LINK_BUFFER];
        while let Some(inc) = self.nodes.next_incoming(now, slot, &mut inbox) {
            out.push(match inc {
                Incoming::Handled => continue,
                Incoming::Event { event } => format!("event {event:?}"),
                Incoming::Response { tag, answer: Ok(message) } => format!("response {} {message:?}", tag.0),
                Incoming::Response { tag, answer: Err(code) } => format!("response {} unreadable {code}", tag.0),
            });
        }
        out
    }

    /// Connects `slot` and completes its ECMA-354 session.
    fn bring_up(&mut self, slot: SlotId, session: &str) -> u64 {
        self.nodes.connected(self.now, slot);
        let frames = self.written(slot);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1, "StartApplicationSession");
        let started = Message::Session(SessionMessage::Started {
            session_id: Text::literal(session),
            protocol_version: Some(Text::literal(Namespace::Ed3.uri())),
            duration: Some(90),
        });
        self.feed(slot, frames[0].0, &started);
        assert!(self.incoming(slot).is_empty());
        assert_eq!(self.nodes.state(slot), LinkState::Up);
        self.answer_features(slot);
        self.nodes.connection_id(slot).unwrap()
    }

    /// Answers the GetCSTAFeatures a link sends once up, as a node that
    /// supports everything but conferences.
    fn answer_features(&mut self, slot: SlotId) {
        let frames = self.written(slot);
        assert_eq!(frames.iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["GetCSTAFeatures"]);
        assert_eq!(self.nodes.services(slot), None, "not known until the node says");
        let services = crate::csta::Services::all().without(crate::csta::Service::ConferenceCall);
        self.feed(slot, frames[0].0, &Message::Response(Response::Features(services)));
        assert!(self.incoming(slot).is_empty(), "the link's own question: not handed up");
        assert_eq!(self.nodes.services(slot), Some(services));
    }

    fn send(&mut self, slot: SlotId, tag: u64) -> Result<InvokeId, SendError> {
        let request = Request::MonitorStart { device: Text::literal("tel:101") };
        self.nodes.send_request(self.now, slot, RequestTag(tag), &request)
    }
}

fn ack(service: crate::csta::Service) -> Message<'static> {
    Message::Response(Response::Ack(service))
}

#[test]
fn link_comes_up_through_the_application_session() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    let addr = h.nodes.addr(S0).unwrap();
    assert_eq!(h.actions(), [LinkAction::Connect { slot: S0, addr }]);
    assert_eq!(h.events(), [CtiEvent::Connecting { slot: S0, addr, attempt: 1 }]);
    assert_eq!(h.nodes.state(S0), LinkState::Connecting);
    assert_eq!(h.nodes.pick(), None, "nothing is up yet");
    let id = h.bring_up(S0, "S-1");
    assert_eq!(h.events(), [CtiEvent::NodeUp { slot: S0, connection_id: id }]);
    assert_eq!(h.nodes.pick(), Some(S0));
    assert_eq!(h.nodes.counters(S0).connects, 1);
}

#[test]
fn heartbeats_keep_an_answering_node_up() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-7");
    h.events();
    for round in 1..=5 {
        h.advance(29.9);
        assert!(h.written(S0).is_empty(), "no heartbeat before the interval");
        h.advance(0.1);
        let frames = h.written(S0);
        assert_eq!(frames.iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["ResetApplicationSessionTimer"]);
        h.advance(1.0);
        h.feed(S0, frames[0].0, &Message::Session(SessionMessage::TimerReset { duration: Some(90) }));
        assert!(h.incoming(S0).is_empty());
        assert_eq!(h.nodes.state(S0), LinkState::Up, "round {round}");
        h.now -= Duration::from_secs(1); // keep the rounds 30 s apart
    }
    assert_eq!(h.nodes.counters(S0).heartbeats_sent, 5);
    assert_eq!(h.nodes.counters(S0).heartbeats_missed, 0);
    assert!(h.events().is_empty());
}

#[test]
fn missed_heartbeats_take_the_node_down_and_it_reconnects_with_a_new_connection_id() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    let first = h.bring_up(S0, "S-1");
    h.actions();
    h.events();
    h.advance(30.0); // heartbeat 1 sent
    assert_eq!(h.written(S0).len(), 1);
    h.advance(5.0); // unanswered: one miss, still up
    assert_eq!(h.nodes.state(S0), LinkState::Up);
    assert_eq!(h.nodes.counters(S0).heartbeats_missed, 1);
    h.advance(25.0); // heartbeat 2
    assert_eq!(h.written(S0).len(), 1);
    h.advance(5.0); // second miss: down
    assert_eq!(h.nodes.state(S0), LinkState::Down);
    assert_eq!(h.actions(), [LinkAction::Close { slot: S0 }]);
    assert_eq!(
        h.events(),
        [CtiEvent::NodeDown { slot: S0, connection_id: Some(first), reason: DownReason::HeartbeatsMissed(2) }]
    );
    assert_eq!(h.nodes.pick(), None);

    h.advance(9.9);
    assert!(h.actions().is_empty(), "no attempt before reconnect_interval");
    h.advance(0.1);
    let addr = h.nodes.addr(S0).unwrap();
    assert_eq!(h.actions(), [LinkAction::Connect { slot: S0, addr }]);
    let second = h.bring_up(S0, "S-2");
    assert_ne!(second, first);
    assert!(second > first);
    assert_eq!(h.nodes.counters(S0).disconnects, 1);
}

#[test]
fn a_dead_node_is_retried_forever() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.actions();
    h.nodes.connect_failed(h.now, S0);
    for attempt in 2..=20 {
        assert_eq!(h.nodes.state(S0), LinkState::Down);
        h.advance(10.0);
        assert_eq!(h.nodes.state(S0), LinkState::Connecting);
        let events = h.events();
        assert!(events.contains(&CtiEvent::Connecting { slot: S0, addr: h.nodes.addr(S0).unwrap(), attempt }));
        if attempt % 2 == 0 {
            h.nodes.connect_failed(h.now, S0);
        } else {
            h.advance(3.0); // connect timeout
            assert_eq!(h.actions().last(), Some(&LinkAction::Close { slot: S0 }));
        }
    }
    assert_eq!(h.nodes.counters(S0).connect_failures, 20);
    assert_eq!(h.nodes.counters(S0).connects, 0);
}

#[test]
fn outstanding_requests_fail_at_once_when_the_link_drops() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    h.events();
    for tag in 1..=3 {
        h.send(S0, tag).unwrap();
    }
    assert_eq!(h.nodes.outstanding(S0), 3);
    h.nodes.closed(h.now, S0);
    let events = h.events();
    for tag in 1..=3 {
        assert!(events.contains(&CtiEvent::RequestFailed {
            slot: S0,
            tag: RequestTag(tag),
            failure: Failure::NodeDown
        }));
    }
    assert!(matches!(events.last(), Some(CtiEvent::NodeDown { reason: DownReason::Closed, .. })));
    assert_eq!(h.nodes.outstanding(S0), 0);
    assert_eq!(h.send(S0, 4), Err(SendError::NodeDown), "refused at once while down");
}

#[test]
fn a_request_times_out_and_its_late_answer_is_dropped_and_counted() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    h.events();
    let id = h.send(S0, 42).unwrap();
    h.advance(4.9);
    assert!(h.events().is_empty());
    h.advance(0.1);
    assert_eq!(h.events(), [CtiEvent::RequestFailed { slot: S0, tag: RequestTag(42), failure: Failure::Timeout }]);
    h.feed(S0, id, &ack(crate::csta::Service::MonitorStart));
    assert!(h.incoming(S0).is_empty(), "the late answer is not handed up");
    assert_eq!(h.events(), [CtiEvent::LateAnswer { slot: S0, invoke_id: id }]);
    let c = h.nodes.counters(S0);
    assert_eq!((c.timeouts, c.late_answers, c.responses), (1, 1, 0));
    assert_eq!(h.nodes.state(S0), LinkState::Up);
}

#[test]
fn answers_and_events_are_handed_up_with_their_tags() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    let a = h.send(S0, 7).unwrap();
    let b = h.send(S0, 8).unwrap();
    assert_ne!(a, b);
    let started = Message::Response(Response::MonitorStarted { monitor: Text::literal("M1") });
    h.feed(S0, b, &started);
    // Something that is no event under the event invoke id is not for a
    // monitor: not handed up, not a fault of the link's.
    h.feed(S0, InvokeId::EVENT, &Message::Error(crate::csta::ErrorCode::RESOURCE_BUSY));
    let held = crate::csta::CallEvent::new(
        crate::csta::CallEventKind::Held,
        Text::literal("M1"),
        crate::csta::ConnectionId::new(Text::literal("C-1"), Text::literal("tel:101")),
    );
    h.feed(S0, InvokeId::EVENT, &Message::Event(crate::csta::Event::Call(held)));
    h.feed(S0, a, &Message::Error(crate::csta::ErrorCode::INVALID_DEVICE_ID));
    let got = h.incoming(S0);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].starts_with("response 8 Response(MonitorStarted"), "{}", got[0]);
    assert!(got[1].starts_with("event Call("), "{}", got[1]);
    assert!(got[2].starts_with("response 7 Error"), "{}", got[2]);
    assert_eq!(h.nodes.outstanding(S0), 0);
    assert_eq!(h.nodes.counters(S0).malformed, 0);
}

#[test]
fn an_unreadable_answer_fails_its_request_and_an_unreadable_event_is_dropped_both_counted() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    let a = h.send(S0, 7).unwrap();
    let mut buf = vec![0u8; 256];
    for (invoke, junk) in [(InvokeId::EVENT, &b"<DeliveredEvent><unclosed>"[..]), (a, b"not xml at all")] {
        let mut out = OutBuf::new(&mut buf);
        frame::encode(&mut out, invoke, |o| o.put(junk)).unwrap();
        let len = out.len();
        h.feed_bytes(S0, &buf[..len]);
    }
    let got = h.incoming(S0);
    assert_eq!(got, ["response 7 unreadable operation/generic".to_string()]);
    assert_eq!(h.nodes.counters(S0).malformed, 2);
    assert_eq!(h.nodes.state(S0), LinkState::Up, "a bad document is not a framing fault");
}

#[test]
fn partial_frames_wait_and_several_frames_in_one_read_all_come_out() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    let ids: Vec<_> = (0..3).map(|t| h.send(S0, t).unwrap()).collect();
    let mut bytes = Vec::new();
    for &id in &ids {
        let mut buf = vec![0u8; 1024];
        let mut out = OutBuf::new(&mut buf);
        frame::encode(&mut out, id, |o| ack(crate::csta::Service::HoldCall).write(Namespace::Ed3, o)).unwrap();
        bytes.extend_from_slice(out.as_bytes());
    }
    let mut got = Vec::new();
    for piece in bytes.chunks(7) {
        h.feed_bytes(S0, piece);
        got.extend(h.incoming(S0));
    }
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn a_garbled_or_over_long_frame_drops_the_link_with_its_reason() {
    let mut h = Harness::new(2, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    h.bring_up(S1, "S-2");
    h.events();
    h.feed_bytes(S0, b"GET / HTTP/1.1\r\n\r\n");
    assert!(h.incoming(S0).is_empty());
    assert_eq!(h.nodes.state(S0), LinkState::Down);
    assert!(matches!(h.events()[..], [CtiEvent::NodeDown { reason: DownReason::Frame(FrameError::BadPrefix), .. }]));

    h.feed_bytes(S1, b"\x00\x00\xff\xff0001");
    h.incoming(S1);
    assert!(matches!(
        h.events()[..],
        [CtiEvent::NodeDown { reason: DownReason::Frame(FrameError::TooLong { len: 65535, .. }), .. }]
    ));
}

#[test]
fn session_refused_or_terminated_takes_the_node_down() {
    let mut h = Harness::new(2, SessionMode::Ecma354);
    h.nodes.connected(h.now, S0);
    let start = h.written(S0)[0].0;
    let refused = Message::Session(SessionMessage::Refused {
        refused: crate::csta::SessionRequest::Start,
        error: Text::literal("serverResourcesBusy"),
    });
    h.feed(S0, start, &refused);
    h.incoming(S0);
    assert_eq!(h.nodes.state(S0), LinkState::Down);

    h.bring_up(S1, "S-9");
    h.events();
    let terminated =
        Message::Session(SessionMessage::Terminated { session_id: Some(Text::literal("S-9")), reason: None });
    h.feed(S1, InvokeId::EVENT, &terminated);
    h.incoming(S1);
    assert!(matches!(h.events()[..], [CtiEvent::NodeDown { reason: DownReason::SessionTerminated, .. }]));
}

#[test]
fn an_unanswered_session_start_times_out() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.nodes.connected(h.now, S0);
    h.written(S0);
    h.events();
    h.advance(5.0);
    assert!(matches!(h.events()[..], [CtiEvent::NodeDown { reason: DownReason::SessionTimeout, .. }]));
}

#[test]
fn system_status_nodes_come_up_at_once_and_use_it_as_heartbeat() {
    let mut h = Harness::new(1, SessionMode::SystemStatus);
    h.nodes.connected(h.now, S0);
    assert_eq!(h.nodes.state(S0), LinkState::Up);
    h.answer_features(S0);
    h.advance(30.0);
    let frames = h.written(S0);
    assert_eq!(frames[0].1, "RequestSystemStatus");
    h.feed(S0, frames[0].0, &Message::Response(Response::SystemStatus(SystemStatus::Normal)));
    h.incoming(S0);
    h.advance(35.0);
    assert_eq!(h.nodes.state(S0), LinkState::Up, "answered heartbeat reset the misses");
}

#[test]
fn round_robin_skips_dead_nodes_and_takes_returning_ones() {
    let mut h = Harness::new(3, SessionMode::Ecma354);
    for (slot, session) in [(S0, "a"), (S1, "b"), (S2, "c")] {
        h.bring_up(slot, session);
    }
    let picks: Vec<_> = (0..6).map(|_| h.nodes.pick().unwrap().index()).collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    h.nodes.closed(h.now, S1);
    let picks: Vec<_> = (0..4).map(|_| h.nodes.pick().unwrap().index()).collect();
    assert_eq!(picks, [0, 2, 0, 2]);
    h.advance(10.0);
    h.bring_up(S1, "b2");
    let picks: Vec<_> = (0..3).map(|_| h.nodes.pick().unwrap().index()).collect();
    assert_eq!(picks, [0, 1, 2]);
    for slot in [S0, S1, S2] {
        h.nodes.closed(h.now, slot);
    }
    assert_eq!(h.nodes.pick(), None);
    assert!(!h.nodes.any_up());
}

#[test]
fn the_outstanding_table_is_bounded_and_invoke_ids_are_unique() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    let mut ids: Vec<_> = (0..MAX_OUTSTANDING as u64)
        .map(|t| {
            let id = h.send(S0, t).unwrap();
            let written = h.nodes.tx_pending(S0).len();
            h.nodes.transmitted(S0, written);
            id
        })
        .collect();
    assert_eq!(h.send(S0, 999), Err(SendError::TooManyOutstanding));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), MAX_OUTSTANDING);
    assert_eq!(SendError::TooManyOutstanding.error_code(), crate::csta::ErrorCode::OUTSTANDING_REQUEST_LIMIT_EXCEEDED);
}

#[test]
fn invoke_ids_wrap_and_skip_ids_still_waiting() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    // Keep one request (the first, id 0001) waiting while 9 997 others come
    // and go, so the ids wrap past 9998 and must step over it.
    let waiting = h.send(S0, 0).unwrap();
    for tag in 1..=10_000u64 {
        let id = h.send(S0, tag).unwrap();
        assert_ne!(id, waiting);
        assert!(!id.is_event());
        h.written(S0);
        h.feed(S0, id, &ack(crate::csta::Service::HoldCall));
        assert_eq!(h.incoming(S0).len(), 1);
    }
    assert_eq!(h.nodes.outstanding(S0), 1);
}

#[test]
fn a_congested_link_refuses_requests_instead_of_growing() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    // The node reads nothing: frames pile up in the transmit buffer.
    let mut refused = None;
    for tag in 0..MAX_OUTSTANDING as u64 {
        let big = "9".repeat(1000);
        let request = Request::GenerateDigits {
            connection: crate::csta::ConnectionId::new(Text::literal("C"), Text::literal("tel:1")),
            characters: Text::literal(&big),
        };
        if let Err(e) = h.nodes.send_request(h.now, S0, RequestTag(tag), &request) {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(refused, Some(SendError::LinkCongested));
    assert!(h.nodes.tx_pending(S0).len() <= LINK_BUFFER);
}

#[test]
fn more_than_eight_nodes_are_refused() {
    let configs: Vec<_> = (0..9).map(|i| node(5000 + i, SessionMode::Ecma354)).collect();
    assert!(Nodes::new(timing(), &configs).is_err());
    assert!(Nodes::new(timing(), &configs[..8]).is_ok());
}

#[test]
fn poll_timeout_names_the_earliest_deadline() {
    let mut h = Harness::new(2, SessionMode::Ecma354);
    assert_eq!(h.nodes.poll_timeout(), Some(h.now + Duration::from_secs(3)), "connect timeouts");
    h.bring_up(S0, "a");
    h.bring_up(S1, "b");
    assert_eq!(h.nodes.poll_timeout(), Some(h.now + Duration::from_secs(30)), "heartbeats");
    h.send(S0, 1).unwrap();
    assert_eq!(h.nodes.poll_timeout(), Some(h.now + Duration::from_secs(5)), "a request");
}

/// The node's raw document under `invoke` (a shape the gateway's own
/// writer may not produce: no namespace, a later edition).
fn feed_text(h: &mut Harness, slot: SlotId, invoke: InvokeId, xml: &str) {
    let mut buf = vec![0u8; xml.len() + 8];
    let mut out = OutBuf::new(&mut buf);
    frame::encode(&mut out, invoke, |o| o.put(xml.as_bytes())).unwrap();
    let len = out.len();
    h.feed_bytes(slot, &buf[..len]);
}

const ED4: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed4";

/// An OpenScape-class switch speaks first: its SystemStatus (invoke id
/// 0000) is answered with an empty SystemStatusResponse under the same
/// id, then the gateway registers; the link is up when SystemRegister is
/// answered. Shapes as public CSTA-over-TCP clients and test switches
/// exchange them (pyssimist's templates, a Go recording agent's
/// auto-answer): PROTOCOL.md, South.
#[test]
fn a_node_that_speaks_first_is_answered_then_registered() {
    let mut h = Harness::new(1, SessionMode::SystemRegister);
    h.actions();
    h.nodes.connected(h.now, S0);
    assert!(h.written(S0).is_empty(), "the node speaks first");
    assert_eq!(h.nodes.state(S0), LinkState::StartingSession);
    let zero = InvokeId::new(0).unwrap();
    feed_text(
        &mut h,
        S0,
        zero,
        &format!("<SystemStatus xmlns=\"{ED4}\"><systemStatus>enabled</systemStatus></SystemStatus>"),
    );
    assert!(h.incoming(S0).is_empty(), "the node's request is the link's own business");
    let frames = h.written(S0);
    assert_eq!(frames[0], (zero, "SystemStatusResponse".to_string()), "answered under the node's invoke id");
    assert_eq!(frames[1].1, "SystemRegister");
    assert_eq!(h.nodes.state(S0), LinkState::StartingSession, "up only once registered");
    assert_eq!(h.nodes.namespace(S0), Namespace::Ed4, "the edition the switch greeted in");
    feed_text(
        &mut h,
        S0,
        frames[1].0,
        &format!(
            "<SystemRegisterResponse xmlns=\"{ED4}\"><sysStatRegisterID>27ss</sysStatRegisterID></SystemRegisterResponse>"
        ),
    );
    assert!(h.incoming(S0).is_empty());
    assert_eq!(h.nodes.state(S0), LinkState::Up);
    assert!(h.events().iter().any(|e| matches!(e, CtiEvent::NodeUp { slot: S0, .. })));
    let c = h.nodes.counters(S0);
    assert_eq!((c.node_requests, c.malformed), (1, 0));
    h.answer_features(S0);
    // Its heartbeat is RequestSystemStatus.
    h.advance(30.0);
    assert_eq!(h.written(S0).iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(), ["RequestSystemStatus"]);
}

#[test]
fn a_node_that_should_speak_first_and_does_not_is_registered_all_the_same() {
    let mut h = Harness::new(1, SessionMode::SystemRegister);
    h.actions();
    h.nodes.connected(h.now, S0);
    h.advance(5.0); // request_timeout
    let frames = h.written(S0);
    assert_eq!(frames.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(), ["SystemRegister"]);
    feed_text(&mut h, S0, frames[0].0, &format!("<SystemRegisterResponse xmlns=\"{ED4}\"/>"));
    h.incoming(S0);
    assert_eq!(h.nodes.state(S0), LinkState::Up);
    // A register that is never answered takes the link down.
    let mut h = Harness::new(1, SessionMode::SystemRegister);
    h.actions();
    h.nodes.connected(h.now, S0);
    h.advance(5.0);
    h.advance(5.0);
    assert_eq!(h.nodes.state(S0), LinkState::Down);
}

/// A node's SystemStatus mid-session whose invoke id is one of the link's
/// outstanding requests: answered, and the request still waits for its
/// own answer (requests told apart by root element, not by id).
#[test]
fn a_node_request_with_the_id_of_an_outstanding_request_is_not_taken_for_its_answer() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    let id = h.send(S0, 7).unwrap();
    h.written(S0);
    feed_text(
        &mut h,
        S0,
        id,
        &format!("<SystemStatus xmlns=\"{ED4}\"><systemStatus>normal</systemStatus></SystemStatus>"),
    );
    assert!(h.incoming(S0).is_empty());
    assert_eq!(h.written(S0), [(id, "SystemStatusResponse".to_string())]);
    assert_eq!(h.nodes.outstanding(S0), 1, "the request still waits");
    h.feed(S0, id, &Message::Response(Response::MonitorStarted { monitor: Text::literal("M1") }));
    let got = h.incoming(S0);
    assert!(got[0].starts_with("response 7 Response(MonitorStarted"), "{got:?}");
}

/// Replies without a default namespace are read in the link's edition;
/// later editions (ed5, ed6) are read as they come; vendor private data
/// is skipped, not counted as a fault.
#[test]
fn replies_without_a_namespace_and_later_editions_are_read() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    let a = h.send(S0, 1).unwrap();
    let b = h.send(S0, 2).unwrap();
    feed_text(&mut h, S0, a, "<MonitorStartResponse><monitorCrossRefID>M1</monitorCrossRefID></MonitorStartResponse>");
    let ed6 = "http://www.ecma-international.org/standards/ecma-323/csta/ed6";
    feed_text(
        &mut h,
        S0,
        b,
        &format!(
            "<MonitorStartResponse xmlns=\"{ed6}\"><monitorCrossRefID>M2</monitorCrossRefID><extensions><privateData><private><scx:x xmlns:scx=\"http://www.siemens.com/schema/csta\">1</scx:x></private></privateData></extensions></MonitorStartResponse>"
        ),
    );
    let held = "<HeldEvent xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed5\"><monitorCrossRefID>M1</monitorCrossRefID><heldConnection><callID>C1</callID><deviceID>N&lt;302118840100&gt;;noa=nk</deviceID></heldConnection><holdingDevice><deviceIdentifier>N&lt;302118840100&gt;;noa=nk</deviceIdentifier></holdingDevice><localConnectionInfo>hold</localConnectionInfo><cause>normal</cause></HeldEvent>";
    feed_text(&mut h, S0, InvokeId::EVENT, held);
    let got = h.incoming(S0);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].starts_with("response 1 Response(MonitorStarted"), "{}", got[0]);
    assert!(got[1].starts_with("response 2 Response(MonitorStarted"), "{}", got[1]);
    assert!(got[2].starts_with("event Call("), "{}", got[2]);
    assert_eq!(h.nodes.counters(S0).malformed, 0);
}

#[test]
fn a_node_that_will_not_list_its_features_stays_up_with_none_known() {
    // One answers GetCSTAFeatures with an error, one never answers it, one
    // answers with something else: each stays up, its services unknown.
    let mut h = Harness::new(3, SessionMode::SystemStatus);
    for slot in [S0, S1, S2] {
        h.nodes.connected(h.now, slot);
    }
    let error = Message::Error(crate::csta::ErrorCode::SERVICE_NOT_SUPPORTED);
    let frames = h.written(S0);
    h.feed(S0, frames[0].0, &error);
    h.written(S1);
    let frames = h.written(S2);
    h.feed(S2, frames[0].0, &Message::Response(Response::SystemStatus(SystemStatus::Normal)));
    for slot in [S0, S2] {
        assert!(h.incoming(slot).is_empty());
    }
    h.advance(5.0);
    for slot in [S0, S1, S2] {
        assert_eq!(h.nodes.state(slot), LinkState::Up, "{slot}");
        assert_eq!(h.nodes.services(slot), None, "{slot}");
        assert_eq!(h.nodes.counters(slot).timeouts, 0, "the link's own question is no user's timeout");
    }
}

#[test]
fn events_the_gateway_does_not_model_are_passed_over_not_counted_as_faults() {
    let mut h = Harness::new(1, SessionMode::Ecma354);
    h.bring_up(S0, "S-1");
    // A well-formed event of a kind the gateway does not relay, with
    // private data, and a known event carrying Siemens private data.
    let ns = Namespace::Ed4.uri();
    let unknown = format!(
        "<CallInformationEvent xmlns=\"{ns}\"><monitorCrossRefID>4711</monitorCrossRefID><connection><callID>C-1</callID>\
         <deviceID>N&lt;101&gt;;noa=nk</deviceID></connection><extensions><privateData><private>\
         <osv:accountCode xmlns:osv=\"http://www.siemens.com/schema/csta\">42</osv:accountCode></private>\
         </privateData></extensions></CallInformationEvent>"
    );
    feed_text(&mut h, S0, InvokeId::EVENT, &unknown);
    let held = format!(
        "<HeldEvent xmlns=\"{ns}\"><monitorCrossRefID>4711</monitorCrossRefID><heldConnection><callID>C-1</callID>\
         <deviceID>N&lt;101&gt;;noa=nk</deviceID></heldConnection><holdingDevice><deviceIdentifier>N&lt;101&gt;;noa=nk\
         </deviceIdentifier></holdingDevice><cause>normal</cause>{}</HeldEvent>",
        crate::sim::switch::PRIVATE_DATA
    );
    feed_text(&mut h, S0, InvokeId::EVENT, &held);
    let handed = h.incoming(S0);
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert!(handed[0].starts_with("event Call(CallEvent { kind: Held"), "{handed:?}");
    let c = h.nodes.counters(S0);
    assert_eq!((c.events, c.events_ignored, c.malformed), (2, 1, 0));
    assert_eq!(h.nodes.state(S0), LinkState::Up);
}
