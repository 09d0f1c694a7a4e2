//! One test rig for the sans-I/O core (feature `rig`, and the crate's own
//! unit tests): the gateway, simulated CTI nodes in memory (the switch of
//! `ctigw-sim`), a fault layer over each node link ([`faults`]), a fake
//! clock that steps to the next deadline, and a scripted Lync client
//! ([`lync`]). The unit scenarios, the zero-allocation test, the
//! instruction benchmark and the gateway fuzz target drive the core
//! through it instead of pumps of their own.
//!
//! Every call into the core goes through [`Calls::call`], so a test can
//! watch each one (the zero-allocation test counts their allocations);
//! the rig's own work (the simulated nodes, copying what the gateway sent)
//! happens outside those calls.

pub mod faults;
pub mod lync;

use std::time::{Duration, Instant};

use crate::cti::{LinkAction, LinkEvent, SlotId, frame};
use crate::outbuf::OutBuf;
use crate::rcc::{ConnId, Gateway, Peer, Transport};
use crate::sim::node::Node;
use crate::sim::switch::{LinkId, Output};
use crate::sip::{self, Message};
pub use faults::FaultInjector;

/// How the rig calls into the core: a test that wants to watch every call
/// wraps it here.
pub trait Calls {
    /// Makes one call into the core.
    fn call<R>(&mut self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Calls the core directly.
#[derive(Debug, Default)]
pub struct Direct;

impl Calls for Direct {}

/// A CTI node of the rig's world: the simulator, its link, whether it
/// accepts connections, and the faults on its link.
pub struct SimNode {
    /// The simulated node.
    pub node: Node,
    /// Its link with the gateway, while connected.
    pub link: Option<LinkId>,
    /// False: connects to it fail (a node that is down).
    pub alive: bool,
    /// What happens to the bytes on its link.
    pub faults: FaultInjector,
    /// The test plays this node itself: the rig records the link actions
    /// in [`SimNode::actions`] instead of answering them, and collects the
    /// gateway's bytes in [`SimNode::written`] instead of handing them to
    /// the simulator; the test answers with [`Rig::node_writes`] and
    /// [`Rig::link_event`].
    pub scripted: bool,
    /// A scripted node's link actions, not yet looked at.
    pub actions: Vec<LinkAction>,
    /// The bytes the gateway wrote to a scripted node, not yet looked at.
    pub written: Vec<u8>,
}

impl SimNode {
    /// A node that is up, on a link without faults.
    pub fn new(node: Node) -> SimNode {
        SimNode {
            node,
            link: None,
            alive: true,
            faults: FaultInjector::default(),
            scripted: false,
            actions: Vec::new(),
            written: Vec::new(),
        }
    }
}

/// The gateway, its nodes and a Lync pool, wired in memory.
pub struct Rig<C: Calls = Direct> {
    /// The core.
    pub gw: Box<Gateway>,
    /// The node of each slot, in slot order.
    pub nodes: Vec<SimNode>,
    /// The fake clock.
    pub now: Instant,
    /// What the gateway sent towards Lync, not yet looked at (kept only
    /// while [`Rig::keep_sent`]).
    pub sent: Vec<(Peer, Vec<u8>)>,
    /// Whether what the gateway sends is kept in [`Rig::sent`] (a
    /// benchmark counts it without the copies).
    pub keep_sent: bool,
    /// Messages the gateway sent towards Lync, kept or not.
    pub transmits: u64,
    /// Stream connections whose transmit buffer is full: the rig hands
    /// what may wait back, as the shell does.
    pub full: Vec<ConnId>,
    /// How the core is called.
    pub calls: C,
}

impl Rig<Direct> {
    /// Starts `gw` at `now` with `nodes` behind its slots and lets the
    /// links come up.
    pub fn new(now: Instant, gw: Box<Gateway>, nodes: Vec<Node>) -> Rig<Direct> {
        Rig::with_calls(now, gw, nodes, Direct)
    }
}

impl<C: Calls> Rig<C> {
    /// As [`Rig::new`], every call into the core made through `calls`.
    pub fn with_calls(now: Instant, gw: Box<Gateway>, nodes: Vec<Node>, calls: C) -> Rig<C> {
        Rig::with_nodes(now, gw, nodes.into_iter().map(SimNode::new).collect(), calls)
    }

    /// As [`Rig::with_calls`], with the nodes set up by the caller (a
    /// scripted one, faults from the start).
    pub fn with_nodes(now: Instant, gw: Box<Gateway>, nodes: Vec<SimNode>, calls: C) -> Rig<C> {
        let mut rig = Rig { gw, nodes, now, sent: Vec::new(), keep_sent: true, transmits: 0, full: Vec::new(), calls };
        let gw = &mut rig.gw;
        rig.calls.call(|| gw.start(now));
        rig.pump();
        rig
    }

    fn slot(i: usize) -> SlotId {
        SlotId::new(i).expect("at most eight nodes")
    }

    /// Moves bytes and actions until nothing is left to move.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            loop {
                let gw = &mut self.gw;
                let Some(action) = self.calls.call(|| gw.poll_link_action()) else { break };
                moved = true;
                self.carry_out(action);
            }
            for i in 0..self.nodes.len() {
                moved |= self.carry_to_node(i);
                moved |= self.release(i);
            }
            loop {
                let gw = &mut self.gw;
                // The bytes are copied outside the call: the rig's work, not the core's.
                let Some(t) = self.calls.call(|| gw.poll_transmit()) else { break };
                moved = true;
                match (t.deferrable, t.to.transport.conn()) {
                    (Some(deferrable), Some(conn)) if self.full.contains(&conn) => {
                        let now = self.now;
                        self.calls.call(|| gw.transmit_deferred(now, conn, deferrable));
                    }
                    _ => {
                        self.transmits += 1;
                        if self.keep_sent {
                            self.sent.push((t.to, t.bytes.to_vec()));
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the world does not settle");
    }

    fn carry_out(&mut self, action: LinkAction) {
        let i = match action {
            LinkAction::Connect { slot, .. } | LinkAction::Close { slot } => slot.index(),
        };
        if self.nodes[i].scripted {
            self.nodes[i].actions.push(action);
            return;
        }
        match action {
            LinkAction::Connect { slot, .. } => {
                let now = self.now;
                let n = &mut self.nodes[slot.index()];
                let mut greeting = Vec::new();
                let event = if n.alive {
                    let link = n.node.open_link();
                    n.link = Some(link);
                    greeting = n.node.greeting(link);
                    LinkEvent::Connected
                } else {
                    LinkEvent::ConnectFailed
                };
                let gw = &mut self.gw;
                self.calls.call(|| gw.handle_link(now, slot, event));
                self.deliver(slot.index(), greeting);
            }
            LinkAction::Close { slot } => {
                let n = &mut self.nodes[slot.index()];
                if let Some(link) = n.link.take() {
                    n.node.close_link(link);
                }
                n.faults.clear();
            }
        }
    }

    /// The gateway's bytes for node `i`, to the simulator (unless the
    /// link stalls). True when any moved.
    fn carry_to_node(&mut self, i: usize) -> bool {
        if self.nodes[i].faults.stall {
            return false;
        }
        let slot = Self::slot(i);
        let gw = &mut self.gw;
        let pending = self.calls.call(|| gw.link_tx(slot)).to_vec();
        if pending.is_empty() {
            return false;
        }
        let gw = &mut self.gw;
        self.calls.call(|| gw.link_transmitted(slot, pending.len()));
        let n = &mut self.nodes[i];
        if n.scripted {
            n.written.extend_from_slice(&pending);
        } else if let Some(link) = n.link {
            let outputs = n.node.receive(self.now, link, &pending).expect("the gateway frames correctly");
            self.deliver(i, outputs);
        }
        true
    }

    /// A scripted node writes `bytes`: through its link's faults to the
    /// gateway.
    pub fn node_writes(&mut self, i: usize, bytes: Vec<u8>) {
        let now = self.now;
        self.nodes[i].faults.to_gateway(now, bytes);
        self.release(i);
    }

    /// What became of a scripted node's connection, as the shell would
    /// report it.
    pub fn link_event(&mut self, i: usize, event: LinkEvent) {
        let (now, slot, gw) = (self.now, Self::slot(i), &mut self.gw);
        self.calls.call(|| gw.handle_link(now, slot, event));
    }

    /// What node `i` says, framed, through its link's faults to the gateway.
    pub fn deliver(&mut self, i: usize, outputs: Vec<Output>) {
        for o in outputs {
            if Some(o.link) != self.nodes[i].link {
                continue;
            }
            let mut buf = vec![0u8; o.body.len() + 8];
            let mut out = OutBuf::new(&mut buf);
            frame::encode(&mut out, o.invoke_id, |w| w.put(&o.body)).expect("a simulator document fits a frame");
            let len = out.len();
            buf.truncate(len);
            let now = self.now;
            self.nodes[i].faults.to_gateway(now, buf);
            self.release(i);
        }
    }

    /// Hands the gateway what node `i`'s link lets through now (held
    /// bytes too, when `hold` was just lifted). True when any went.
    pub fn release(&mut self, i: usize) -> bool {
        let now = self.now;
        let pieces = self.nodes[i].faults.due(now);
        let moved = !pieces.is_empty();
        let slot = Self::slot(i);
        for piece in pieces {
            let gw = &mut self.gw;
            self.calls.call(|| gw.handle_cti(now, slot, &piece));
        }
        moved
    }

    /// Moves the clock on by `ms` and handles at once everything due by
    /// then (the gateway's and the nodes'), as a shell that slept through
    /// the interval would.
    pub fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.tick();
    }

    /// Moves the clock to the earliest deadline of the gateway, a node or
    /// a link's delayed bytes, and handles it. `None` when nothing is due
    /// ever; otherwise the time stepped to.
    pub fn step(&mut self) -> Option<Instant> {
        let next = self.next_deadline()?;
        self.now = self.now.max(next);
        self.tick();
        Some(self.now)
    }

    /// Steps from deadline to deadline until `d` from now has passed.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(next) = self.next_deadline().filter(|&t| t <= end) {
            self.now = self.now.max(next);
            self.tick();
        }
        self.now = end;
        self.tick();
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let gw = &mut self.gw;
        let gateway = self.calls.call(|| gw.poll_timeout());
        let nodes = self.nodes.iter().flat_map(|n| [n.node.poll_timeout(), n.faults.deadline()]).flatten();
        gateway.into_iter().chain(nodes).min()
    }

    fn tick(&mut self) {
        let now = self.now;
        let gw = &mut self.gw;
        self.calls.call(|| gw.handle_timeout(now));
        for i in 0..self.nodes.len() {
            let outputs = self.nodes[i].node.handle_timeout(now);
            self.deliver(i, outputs);
            self.release(i);
        }
        self.pump();
    }

    /// Lync sends `bytes` from `from`: a datagram, or one framed message
    /// on a stream connection.
    pub fn receive_sip(&mut self, from: Peer, bytes: &[u8]) {
        let now = self.now;
        let gw = &mut self.gw;
        match from.transport {
            Transport::Udp => self.calls.call(|| gw.handle_datagram(now, from, bytes)),
            Transport::Tcp(_) | Transport::Tls(_) => {
                let sip::Status::Complete((frame, _)) =
                    sip::next_frame(bytes, 8192).expect("the test frames correctly")
                else {
                    panic!("a partial message");
                };
                self.calls.call(|| gw.handle_frame(now, from, frame));
            }
        }
        self.pump();
    }

    /// Lync sends `text` (LF line ends are turned into CR LF; the body
    /// keeps its own and gets a correct Content-Length); returns what the
    /// gateway sent.
    pub fn send(&mut self, from: Peer, text: &str) -> Vec<Message<'static>> {
        self.receive_sip(from, &lync::sip_text(text));
        self.take()
    }

    /// What the gateway sent since the last look, parsed (the bytes are
    /// leaked: a test's lifetime).
    pub fn take(&mut self) -> Vec<Message<'static>> {
        std::mem::take(&mut self.sent)
            .into_iter()
            .map(|(_, bytes)| {
                Message::parse(Box::leak(bytes.into_boxed_slice())).expect("the gateway writes valid SIP")
            })
            .collect()
    }

    /// Node `i` is killed: its link breaks, it accepts no more.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        if let Some(link) = self.nodes[i].link.take() {
            self.nodes[i].node.close_link(link);
        }
        self.nodes[i].faults.clear();
        let (now, slot, gw) = (self.now, Self::slot(i), &mut self.gw);
        self.calls.call(|| gw.handle_link(now, slot, LinkEvent::Closed));
        self.pump();
    }

    /// Node `i` accepts connections again (the gateway's next attempt
    /// reaches it).
    pub fn revive(&mut self, i: usize) {
        self.nodes[i].alive = true;
    }
}
