//! The CTI side over real TCP on loopback: the eight node slots against
//! eight `ctigw-sim` processes, through the smol shell. Nodes are killed
//! (kill -9) and restarted, links cut, heartbeats silenced, connections
//! refused and answers delayed; each test asserts what the gateway sees.
//!
//! Timers are shortened (heartbeat 500 ms, reconnect 1 s, request timeout
//! 1 s) so the faults play out in seconds; every wait is bounded.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use common::sim::Sim;
use ctigw::csta::{Message, Request, Text};
use ctigw::cti::{
    CtiEvent, DownReason, Failure, Incoming, LinkAction, LinkEvent, LinkState, NodeConfig, Nodes, Protocol, RequestTag,
    SendError, SessionMode, SlotId, Timing,
};
use ctigw::io::driver::{Core, Driver};
use smol::{LocalExecutor, Timer};

fn timing() -> Timing {
    Timing {
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_misses: 2,
        reconnect_interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
    }
}

/// Owns the nodes and records what comes out of them.
struct Host {
    nodes: Box<Nodes>,
    /// (tag, what answered it)
    answers: Vec<(u64, String)>,
    /// (slot, event root element)
    events: Vec<(SlotId, String)>,
    cti: Vec<(Instant, CtiEvent)>,
}

impl Host {
    fn drain(&mut self, now: Instant) {
        while let Some(e) = self.nodes.poll_event() {
            e.log();
            self.cti.push((now, e));
        }
    }
}

impl Core for Host {
    fn handle_link(&mut self, now: Instant, slot: SlotId, event: LinkEvent) {
        self.nodes.handle_link(now, slot, event);
        self.drain(now);
    }
    fn handle_cti(&mut self, now: Instant, slot: SlotId, bytes: &[u8]) {
        let mut inbox = vec![0u8; ctigw::cti::LINK_BUFFER];
        let mut rest = bytes;
        loop {
            let n = self.nodes.receive(slot, rest);
            rest = &rest[n..];
            while let Some(incoming) = self.nodes.next_incoming(now, slot, &mut inbox) {
                match incoming {
                    Incoming::Handled => {}
                    Incoming::Response { tag, answer } => self.answers.push((
                        tag.0,
                        match answer {
                            Ok(Message::Response(r)) => r.service().response_name().to_string(),
                            Ok(Message::Error(code)) => format!("error {code}"),
                            other => format!("{other:?}"),
                        },
                    )),
                    Incoming::Event { event } => self.events.push((slot, event.name().to_string())),
                }
            }
            if rest.is_empty() || n == 0 {
                break;
            }
        }
        self.drain(now);
    }
    fn link_tx(&self, slot: SlotId) -> &[u8] {
        self.nodes.tx_pending(slot)
    }
    fn link_transmitted(&mut self, slot: SlotId, n: usize) {
        self.nodes.transmitted(slot, n);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.nodes.handle_timeout(now);
        self.drain(now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.nodes.poll_timeout()
    }
    fn poll_link_action(&mut self) -> Option<LinkAction> {
        self.nodes.poll_action()
    }
}

struct Rig {
    driver: Rc<Driver<Host>>,
}

impl Rig {
    fn new(ex: &Rc<LocalExecutor<'static>>, sims: &[&Sim], mode: SessionMode) -> Rig {
        Rig::with_timing(ex, sims, mode, timing())
    }

    fn with_timing(ex: &Rc<LocalExecutor<'static>>, sims: &[&Sim], mode: SessionMode, timing: Timing) -> Rig {
        let configs: Vec<NodeConfig> =
            sims.iter().map(|s| NodeConfig { addr: s.listen, protocol: Protocol::CstaXml(mode) }).collect();
        let mut nodes = Nodes::new(timing, &configs).unwrap();
        nodes.start(Instant::now());
        let host = Host { nodes, answers: Vec::new(), events: Vec::new(), cti: Vec::new() };
        Rig { driver: Driver::spawn(ex, host) }
    }

    fn state(&self, slot: SlotId) -> LinkState {
        self.driver.core().nodes.state(slot)
    }

    /// Polls `cond` every 5 ms for at most `limit`; how long it took.
    async fn wait(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Host) -> bool) -> Duration {
        let start = Instant::now();
        while !cond(&self.driver.core()) {
            assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
            Timer::after(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    fn send(&self, slot: SlotId, tag: u64) -> Result<(), SendError> {
        let request = Request::MonitorStart { device: Text::literal("tel:101") };
        self.driver.feed(|h, now| h.nodes.send_request(now, slot, RequestTag(tag), &request).map(drop))
    }

    fn answered(&self, tag: u64) -> Option<String> {
        self.driver.core().answers.iter().find(|(t, _)| *t == tag).map(|(_, a)| a.clone())
    }

    fn failure(&self, tag: u64) -> Option<Failure> {
        self.driver.core().cti.iter().find_map(|(_, e)| match e {
            CtiEvent::RequestFailed { tag: t, failure, .. } if t.0 == tag => Some(*failure),
            _ => None,
        })
    }
}

fn slot(i: usize) -> SlotId {
    SlotId::new(i).unwrap()
}

fn run<F: std::future::Future<Output = ()>>(test: impl FnOnce(Rc<LocalExecutor<'static>>) -> F) {
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(test(ex.clone())));
}

#[test]
fn eight_slots_kill_one_node_the_others_serve_it_comes_back() {
    let mut sims: Vec<Sim> = (0..8).map(|_| Sim::start(&[])).collect();
    run(|ex| async move {
        let rig = Rig::new(&ex, &sims.iter().collect::<Vec<_>>(), SessionMode::Ecma354);
        rig.wait(Duration::from_secs(5), "all eight nodes up", |h| {
            (0..8).all(|i| h.nodes.state(slot(i)) == LinkState::Up)
        })
        .await;
        for i in 0..8 {
            rig.send(slot(i), i as u64).unwrap();
        }
        rig.wait(Duration::from_secs(2), "eight answers", |h| h.answers.len() == 8).await;
        assert!(rig.driver.core().answers.iter().all(|(_, a)| a == "MonitorStartResponse"));
        let first_id = rig.driver.core().nodes.connection_id(slot(2)).unwrap();

        // kill -9 node 3, with a request outstanding on it.
        sims[2].control("fault delay 5000");
        rig.send(slot(2), 100).unwrap();
        sims[2].kill();
        let detected =
            rig.wait(Duration::from_secs(2), "node 3 down", |h| h.nodes.state(slot(2)) != LinkState::Up).await;
        rig.wait(Duration::from_millis(100), "the outstanding request failed", |_| rig.failure(100).is_some()).await;
        assert_eq!(rig.failure(100), Some(Failure::NodeDown));

        // Refused at once while down.
        let t = Instant::now();
        assert_eq!(rig.send(slot(2), 101), Err(SendError::NodeDown));
        let refusal = t.elapsed();
        assert!(refusal < Duration::from_millis(5), "refusal took {refusal:?}");
        // Round-robin skips it; the seven others keep serving.
        let picks: Vec<usize> = (0..14).map(|_| rig.driver.feed(|h, _| h.nodes.pick()).unwrap().index()).collect();
        assert!(!picks.contains(&2), "{picks:?}");
        for i in (0..8).filter(|&i| i != 2) {
            rig.send(slot(i), 200 + i as u64).unwrap();
        }
        rig.wait(Duration::from_secs(2), "seven answers", |h| h.answers.iter().filter(|(t, _)| *t >= 200).count() == 7)
            .await;

        // Restart it on the same port: reconnected within reconnect_interval + 1 s.
        let addr = sims[2].listen.to_string();
        sims[2] = Sim::start_on(&addr, &[]);
        let back = rig
            .wait(timing().reconnect_interval + Duration::from_secs(1), "node 3 back", |h| {
                h.nodes.state(slot(2)) == LinkState::Up
            })
            .await;
        let second_id = rig.driver.core().nodes.connection_id(slot(2)).unwrap();
        assert_ne!(second_id, first_id, "a new connection id");
        rig.send(slot(2), 300).unwrap();
        rig.wait(Duration::from_secs(1), "node 3 answers again", |_| rig.answered(300).is_some()).await;
        eprintln!(
            "MEASURED kill->down {detected:?} (polled every 5 ms); refusal while down {refusal:?}; \
             restart->up {back:?} (reconnect_interval {:?})",
            timing().reconnect_interval
        );
        // The node's down/up are in the event log with the old and new ids.
        let cti = rig.driver.core().cti.clone();
        assert!(cti.iter().any(|(_, e)| matches!(e, CtiEvent::NodeDown { slot: s, connection_id: Some(id), reason: DownReason::Closed } if *s == slot(2) && *id == first_id)));
        assert!(cti.iter().any(|(_, e)| matches!(e, CtiEvent::NodeUp { slot: s, connection_id } if *s == slot(2) && *connection_id == second_id)));
    });
}

#[test]
fn silenced_heartbeats_take_a_node_down_and_it_recovers() {
    let sim = Sim::start(&[]);
    run(|ex| async move {
        let rig = Rig::new(&ex, &[&sim], SessionMode::Ecma354);
        rig.wait(Duration::from_secs(3), "up", |h| h.nodes.state(slot(0)) == LinkState::Up).await;
        assert_eq!(sim.control("fault heartbeat off"), "ok");
        let silenced = rig.driver.core().cti.len();
        // Two misses: heartbeats go out every 500 ms and get 500 ms each.
        let took = rig.wait(Duration::from_secs(3), "down", |h| h.nodes.state(slot(0)) != LinkState::Up).await;
        assert!(took >= Duration::from_millis(900), "down too early: {took:?}");
        let reason = rig.driver.core().cti[silenced..].iter().find_map(|(_, e)| match e {
            CtiEvent::NodeDown { reason, .. } => Some(*reason),
            _ => None,
        });
        assert_eq!(reason, Some(DownReason::HeartbeatsMissed(2)));
        assert_eq!(sim.control("fault heartbeat on"), "ok");
        rig.wait(Duration::from_secs(3), "back up", |h| h.nodes.state(slot(0)) == LinkState::Up).await;
        assert!(rig.driver.core().nodes.counters(slot(0)).heartbeats_missed >= 2);
    });
}

#[test]
fn cut_links_refused_connections_and_delayed_answers() {
    let sim = Sim::start(&[]);
    run(|ex| async move {
        let rig = Rig::new(&ex, &[&sim], SessionMode::Ecma354);
        rig.wait(Duration::from_secs(3), "up", |h| h.nodes.state(slot(0)) == LinkState::Up).await;

        // The node cuts the link: down at once, back after reconnect_interval.
        assert_eq!(sim.control("fault close"), "ok");
        rig.wait(Duration::from_secs(1), "down", |h| h.nodes.state(slot(0)) != LinkState::Up).await;
        rig.wait(Duration::from_secs(3), "up again", |h| h.nodes.state(slot(0)) == LinkState::Up).await;

        // The node refuses connections: attempts fail, forever, until it accepts.
        assert_eq!(sim.control("fault refuse on"), "ok");
        assert_eq!(sim.control("fault close"), "ok");
        rig.wait(Duration::from_secs(5), "two failed attempts", |h| h.nodes.counters(slot(0)).connect_failures >= 2)
            .await;
        assert_ne!(rig.state(slot(0)), LinkState::Up);
        assert_eq!(sim.control("fault refuse off"), "ok");
        rig.wait(Duration::from_secs(3), "accepted again", |h| h.nodes.state(slot(0)) == LinkState::Up).await;
    });
}

#[test]
fn a_late_answer_is_counted_not_delivered() {
    let sim = Sim::start(&[]);
    run(|ex| async move {
        // Heartbeats far apart: a delay that outlasts request_timeout would
        // otherwise take the node down (rightly) before the answer comes.
        let timing = Timing { heartbeat_interval: Duration::from_secs(10), ..timing() };
        let rig = Rig::with_timing(&ex, &[&sim], SessionMode::Ecma354, timing);
        rig.wait(Duration::from_secs(3), "up", |h| h.nodes.state(slot(0)) == LinkState::Up).await;
        // Answers slower than request_timeout: the request fails with a
        // timeout and the late answer is counted, not delivered.
        assert_eq!(sim.control("fault delay 1500"), "ok");
        rig.send(slot(0), 7).unwrap();
        rig.wait(Duration::from_secs(2), "timeout", |_| rig.failure(7).is_some()).await;
        assert_eq!(rig.failure(7), Some(Failure::Timeout));
        rig.wait(Duration::from_secs(2), "the late answer", |h| h.nodes.counters(slot(0)).late_answers >= 1).await;
        assert_eq!(rig.answered(7), None);
        assert_eq!(sim.control("fault delay 0"), "ok");
    });
}

#[test]
fn events_reach_the_gateway_and_system_status_nodes_work() {
    let sim = Sim::start(&["--outside", "answer=0"]);
    run(|ex| async move {
        let rig = Rig::new(&ex, &[&sim], SessionMode::SystemStatus);
        rig.wait(Duration::from_secs(3), "up", |h| h.nodes.state(slot(0)) == LinkState::Up).await;
        rig.send(slot(0), 1).unwrap();
        rig.wait(Duration::from_secs(1), "monitor started", |_| rig.answered(1).is_some()).await;
        assert_eq!(sim.control("call tel:+14255557777 tel:101"), "ok C-0001");
        assert_eq!(sim.control("answer C-0001"), "ok");
        assert_eq!(sim.control("hangup C-0001"), "ok");
        rig.wait(Duration::from_secs(1), "four events", |h| h.events.len() >= 4).await;
        let names: Vec<String> = rig.driver.core().events.iter().map(|(_, n)| n.clone()).collect();
        // The caller hangs up: its connection clears, then the line's as the call ends.
        assert_eq!(names, ["DeliveredEvent", "EstablishedEvent", "ConnectionClearedEvent", "ConnectionClearedEvent"]);
        // Heartbeats (RequestSystemStatus) keep it up.
        Timer::after(Duration::from_millis(1600)).await;
        assert_eq!(rig.state(slot(0)), LinkState::Up);
        assert!(rig.driver.core().nodes.counters(slot(0)).heartbeats_sent >= 2);
    });
}
