//! The I/O shell of the CTI side: smol tasks that carry out what
//! [`crate::cti::Nodes`] asks for, on the one thread of the executor.
//!
//! Per slot, a link task connects when told to, then a reader feeds the
//! bytes to the core and a writer writes what the core has pending. A
//! timer task sleeps until the core's next deadline. After every call
//! into the core, [`Pump::run`] carries out its link actions and wakes the
//! writers and the timer. The tasks never decide anything themselves.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::{LocalExecutor, Timer};

use crate::cti::{LINK_BUFFER, LinkAction, LinkEvent, MAX_NODES, SlotId};

/// What the shell needs from whoever owns the [`crate::cti::Nodes`]: the
/// gateway core, or a test. Each method is one call into the sans-I/O
/// core, named as the gateway's own ([`crate::rcc::Gateway::handle_link`]
/// and the rest); the owner also drains and handles the core's events there.
pub trait CtiHost {
    /// What happened to the TCP connection of `slot`.
    fn handle_link(&mut self, now: Instant, slot: SlotId, event: LinkEvent);
    /// Bytes arrived on `slot`: hand them to the link and handle every
    /// frame they complete.
    fn handle_cti(&mut self, now: Instant, slot: SlotId, bytes: &[u8]);
    /// Bytes waiting to be written on `slot`.
    fn link_tx(&self, slot: SlotId) -> &[u8];
    /// The first `n` bytes of [`CtiHost::link_tx`] were written.
    fn link_transmitted(&mut self, slot: SlotId, n: usize);
    /// Everything due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// When [`CtiHost::handle_timeout`] is due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next link action the core asks for.
    fn poll_link_action(&mut self) -> Option<LinkAction>;
}

/// Feeds a host's [`Nodes::rx_spare`](crate::cti::Nodes::rx_spare) from a
/// byte slice: what [`CtiHost::handle_cti`] usually does first.
pub fn feed(
    nodes: &mut crate::cti::Nodes,
    slot: SlotId,
    mut bytes: &[u8],
    mut handle: impl FnMut(&mut crate::cti::Nodes),
) {
    while !bytes.is_empty() {
        let spare = nodes.rx_spare(slot);
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        nodes.received(slot, n);
        bytes = &bytes[n..];
        handle(nodes);
        if n == 0 {
            // The buffer is full of one partial frame: handling it above
            // took the link down; the rest of the read is dropped.
            break;
        }
    }
}

enum Order {
    Connect(SocketAddr),
    Close,
}

/// Wakes the tasks after the core changed.
pub struct Pump {
    orders: [Sender<Order>; MAX_NODES],
    writers: [Sender<()>; MAX_NODES],
    timer: Sender<()>,
    /// The deadline the timer task sleeps until (`None`: no deadline).
    armed: Cell<Option<Instant>>,
}

impl Pump {
    /// Carries out the core's link actions and wakes the writers and the
    /// timer. Call after every call into the core.
    pub fn run<H: CtiHost>(&self, host: &mut H) {
        while let Some(action) = host.poll_link_action() {
            let (slot, order) = match action {
                LinkAction::Connect { slot, addr } => (slot, Order::Connect(addr)),
                LinkAction::Close { slot } => (slot, Order::Close),
            };
            let _ = self.orders[slot.index()].try_send(order);
        }
        for (i, writer) in self.writers.iter().enumerate() {
            let slot = SlotId::new(i).expect("index below MAX_NODES");
            if !host.link_tx(slot).is_empty() {
                let _ = writer.try_send(());
            }
        }
        // The timer task is woken only for a deadline earlier than the
        // one it sleeps until: a later one it finds when it wakes.
        if host.poll_timeout().is_some_and(|d| self.armed.get().is_none_or(|armed| d < armed)) {
            let _ = self.timer.try_send(());
        }
    }
}

/// Starts the tasks of every slot and the timer; returns the pump the
/// host's other callers (the SIP side) must run after touching the core.
pub fn spawn<H: CtiHost + 'static>(ex: &Rc<LocalExecutor<'static>>, host: Rc<RefCell<H>>) -> Rc<Pump> {
    let mut order_rx = Vec::new();
    let mut writer_rx = Vec::new();
    let orders = core::array::from_fn(|_| {
        let (tx, rx) = unbounded();
        order_rx.push(rx);
        tx
    });
    let writers = core::array::from_fn(|_| {
        let (tx, rx) = bounded(1);
        writer_rx.push(rx);
        tx
    });
    let (timer, timer_rx) = bounded(1);
    let pump = Rc::new(Pump { orders, writers, timer, armed: Cell::new(None) });
    for (i, (orders, wake)) in order_rx.into_iter().zip(writer_rx).enumerate() {
        let slot = SlotId::new(i).expect("index below MAX_NODES");
        ex.spawn(link_task(ex.clone(), slot, host.clone(), pump.clone(), orders, wake)).detach();
    }
    ex.spawn(timer_task(host, pump.clone(), timer_rx)).detach();
    pump
}

async fn timer_task<H: CtiHost>(host: Rc<RefCell<H>>, pump: Rc<Pump>, wake: Receiver<()>) {
    loop {
        let deadline = host.borrow().poll_timeout();
        pump.armed.set(deadline);
        let sleep = async {
            match deadline {
                Some(at) => {
                    Timer::at(at).await;
                }
                None => {
                    Timer::never().await;
                }
            }
        };
        smol::future::or(sleep, async {
            let _ = wake.recv().await;
        })
        .await;
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            let mut h = host.borrow_mut();
            h.handle_timeout(now);
            pump.run(&mut *h);
        }
    }
}

async fn link_task<H: CtiHost + 'static>(
    ex: Rc<LocalExecutor<'static>>,
    slot: SlotId,
    host: Rc<RefCell<H>>,
    pump: Rc<Pump>,
    orders: Receiver<Order>,
    wake_writer: Receiver<()>,
) {
    loop {
        let Ok(order) = orders.recv().await else { return };
        let Order::Connect(addr) = order else { continue };
        // The core times the connect out itself and then orders a Close.
        let connected = smol::future::or(async { Some(TcpStream::connect(addr).await) }, async {
            loop {
                match orders.recv().await {
                    Ok(Order::Close) | Err(_) => return None,
                    Ok(Order::Connect(_)) => {}
                }
            }
        })
        .await;
        let stream = match connected {
            None => continue,
            Some(Err(_)) => {
                let mut h = host.borrow_mut();
                h.handle_link(Instant::now(), slot, LinkEvent::ConnectFailed);
                pump.run(&mut *h);
                continue;
            }
            Some(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        {
            let mut h = host.borrow_mut();
            h.handle_link(Instant::now(), slot, LinkEvent::Connected);
            pump.run(&mut *h);
        }
        let writer = ex.spawn(write_loop(slot, host.clone(), stream.clone(), wake_writer.clone()));
        let reading = read_loop(slot, host.clone(), pump.clone(), stream.clone());
        let closed_by_core = smol::future::or(
            async {
                reading.await;
                false
            },
            async {
                loop {
                    match orders.recv().await {
                        Ok(Order::Close) | Err(_) => return true,
                        Ok(Order::Connect(_)) => {}
                    }
                }
            },
        )
        .await;
        writer.cancel().await;
        let _ = stream.shutdown(std::net::Shutdown::Both);
        if !closed_by_core {
            let mut h = host.borrow_mut();
            h.handle_link(Instant::now(), slot, LinkEvent::Closed);
            pump.run(&mut *h);
        }
    }
}

async fn read_loop<H: CtiHost>(slot: SlotId, host: Rc<RefCell<H>>, pump: Rc<Pump>, mut stream: TcpStream) {
    let mut buf = vec![0u8; LINK_BUFFER];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut h = host.borrow_mut();
        h.handle_cti(Instant::now(), slot, &buf[..n]);
        pump.run(&mut *h);
    }
}

async fn write_loop<H: CtiHost>(slot: SlotId, host: Rc<RefCell<H>>, mut stream: TcpStream, wake: Receiver<()>) {
    let mut buf = vec![0u8; LINK_BUFFER];
    loop {
        let n = {
            let h = host.borrow();
            let pending = h.link_tx(slot);
            buf[..pending.len()].copy_from_slice(pending);
            pending.len()
        };
        if n == 0 {
            if wake.recv().await.is_err() {
                return;
            }
            continue;
        }
        if stream.write_all(&buf[..n]).await.is_err() {
            return; // the reader sees the broken connection and reports it
        }
        host.borrow_mut().link_transmitted(slot, n);
    }
}
