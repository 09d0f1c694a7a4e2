//! The one driver of the core, after quinn's `ConnectionDriver`.
//!
//! Every task of the shell (a socket reader, a writer, the timer, a CTI
//! link) gives the core its input through [`Driver::feed`], and nothing
//! else: the driver then loops over what the core asks for until nothing
//! moves — SIP messages written out, link actions carried out, deadlines
//! that have passed handled — and finally wakes the CTI writers that have
//! bytes to write and the timer task when the next deadline is earlier
//! than the one it sleeps until. No call site can forget a step.
//!
//! The core is anything that implements [`Core`]: the gateway with its SIP
//! sockets ([`crate::io::sip::Host`]), or in a test the CTI nodes alone.

use std::cell::{Cell, Ref, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use smol::LocalExecutor;
use smol::channel::{Receiver, Sender, bounded, unbounded};

use crate::cti::{LinkAction, LinkEvent, MAX_NODES, SlotId};

/// How often one drive may find a deadline passed before it leaves the
/// rest to the timer task (a bound, never reached in practice: a handled
/// deadline is replaced by a later one).
const MAX_ROUNDS: usize = 64;

/// What the driver drives: the sans-I/O core's entry points, named as the
/// gateway's own ([`crate::rcc::Gateway::handle_link`] and the rest).
pub trait Core {
    /// What happened to the TCP connection of `slot`.
    fn handle_link(&mut self, now: Instant, slot: SlotId, event: LinkEvent);
    /// Bytes arrived on `slot`: hand them to the link and handle every
    /// frame they complete.
    fn handle_cti(&mut self, now: Instant, slot: SlotId, bytes: &[u8]);
    /// Bytes waiting to be written on `slot`.
    fn link_tx(&self, slot: SlotId) -> &[u8];
    /// The first `n` bytes of [`Core::link_tx`] were written.
    fn link_transmitted(&mut self, slot: SlotId, n: usize);
    /// Everything due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// When [`Core::handle_timeout`] is due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next link action the core asks for.
    fn poll_link_action(&mut self) -> Option<LinkAction>;
    /// Writes out what the core has queued for its SIP peers; a core
    /// without them has nothing to write.
    fn transmit(&mut self) {}
}

/// An order to a CTI link task.
pub(super) enum Order {
    /// Connect to the node at this address.
    Connect(SocketAddr),
    /// Close the link.
    Close,
}

/// The receiving ends of the driver's wake-ups, handed to the tasks it
/// spawns.
pub(super) struct Wakeups {
    pub(super) orders: Vec<Receiver<Order>>,
    pub(super) writers: Vec<Receiver<()>>,
    pub(super) timer: Receiver<()>,
}

/// The core and the wake-ups of the tasks that serve it.
pub struct Driver<C> {
    core: RefCell<C>,
    orders: [Sender<Order>; MAX_NODES],
    writers: [Sender<()>; MAX_NODES],
    timer: Sender<()>,
    /// The deadline the timer task sleeps until (`None`: no deadline).
    armed: Cell<Option<Instant>>,
}

impl<C: Core + 'static> Driver<C> {
    /// Takes the core, starts the CTI link tasks and the timer task, and
    /// carries out what the core asks for already (the first connects).
    pub fn spawn(ex: &Rc<LocalExecutor<'static>>, core: C) -> Rc<Driver<C>> {
        let (driver, wakeups) = Driver::new(core);
        let driver = Rc::new(driver);
        super::cti::spawn(ex, &driver, wakeups);
        driver.feed(|_, _| ());
        driver
    }
}

impl<C: Core> Driver<C> {
    fn new(core: C) -> (Driver<C>, Wakeups) {
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
        let driver = Driver { core: RefCell::new(core), orders, writers, timer, armed: Cell::new(None) };
        (driver, Wakeups { orders: order_rx, writers: writer_rx, timer: timer_rx })
    }

    /// Gives the core one input at the time read now, then drives it until
    /// nothing moves. Returns what `input` returns.
    pub fn feed<R>(&self, input: impl FnOnce(&mut C, Instant) -> R) -> R {
        let mut core = self.core.borrow_mut();
        let now = Instant::now();
        let result = input(&mut core, now);
        self.drive(&mut core, now);
        result
    }

    /// A CTI writer wrote the first `n` bytes of [`Core::link_tx`]: the
    /// one input that asks nothing more of the core (the writer looks for
    /// more bytes itself), so nothing is driven after it.
    pub fn link_transmitted(&self, slot: SlotId, n: usize) {
        self.core.borrow_mut().link_transmitted(slot, n);
    }

    /// The core, to read (the admin pages, a stop's progress); `None`
    /// while it is being fed, which no task does across an await.
    pub fn try_core(&self) -> Option<Ref<'_, C>> {
        self.core.try_borrow().ok()
    }

    /// The core, to read.
    pub fn core(&self) -> Ref<'_, C> {
        self.core.borrow()
    }

    /// When the timer task is to wake next; remembered as armed.
    pub(super) fn arm(&self) -> Option<Instant> {
        let deadline = self.core.borrow().poll_timeout();
        self.armed.set(deadline);
        deadline
    }

    fn drive(&self, core: &mut C, now: Instant) {
        // The core's next deadline, asked once a round: finding it may
        // look at every request outstanding on every link.
        let mut deadline = None;
        for _ in 0..MAX_ROUNDS {
            core.transmit();
            let mut moved = false;
            while let Some(action) = core.poll_link_action() {
                moved = true;
                let (slot, order) = match action {
                    LinkAction::Connect { slot, addr } => (slot, Order::Connect(addr)),
                    LinkAction::Close { slot } => (slot, Order::Close),
                };
                let _ = self.orders[slot.index()].try_send(order);
            }
            deadline = core.poll_timeout();
            if deadline.is_some_and(|at| at <= now) {
                core.handle_timeout(now);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        for (i, writer) in self.writers.iter().enumerate() {
            let slot = SlotId::new(i).expect("index below MAX_NODES");
            if !core.link_tx(slot).is_empty() {
                let _ = writer.try_send(());
            }
        }
        // The timer task is woken only for a deadline earlier than the
        // one it sleeps until: a later one it finds when it wakes.
        if deadline.is_some_and(|d| self.armed.get().is_none_or(|armed| d < armed)) {
            let _ = self.timer.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    /// A core that does what a test tells it: actions to ask for, bytes
    /// pending on slot 0, a deadline, and a count of what it was given.
    #[derive(Default)]
    struct Scripted {
        actions: Vec<LinkAction>,
        tx: Vec<u8>,
        deadline: Option<Instant>,
        timeouts: usize,
        transmits: usize,
    }

    impl Core for Scripted {
        fn handle_link(&mut self, _: Instant, _: SlotId, _: LinkEvent) {}
        fn handle_cti(&mut self, _: Instant, _: SlotId, _: &[u8]) {}
        fn link_tx(&self, slot: SlotId) -> &[u8] {
            if slot.index() == 0 { &self.tx } else { &[] }
        }
        fn link_transmitted(&mut self, _: SlotId, n: usize) {
            self.tx.drain(..n);
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.timeouts += 1;
            // A handled deadline is replaced by a later one, as the gateway's are.
            self.deadline = Some(now + Duration::from_secs(1));
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.deadline
        }
        fn poll_link_action(&mut self) -> Option<LinkAction> {
            self.actions.pop()
        }
        fn transmit(&mut self) {
            self.transmits += 1;
        }
    }

    #[test]
    fn one_input_is_carried_through_to_every_task_it_concerns() {
        let (driver, wakeups) = Driver::new(Scripted::default());
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let slot = SlotId::new(3).unwrap();
        driver.feed(|core, now| {
            core.actions.push(LinkAction::Connect { slot, addr });
            core.tx.extend_from_slice(b"bytes for node 1");
            core.deadline = Some(now - Duration::from_millis(1)); // already passed
        });
        let core = driver.core();
        assert!(core.transmits >= 1, "SIP output written");
        assert_eq!(core.timeouts, 1, "the passed deadline handled in the same drive");
        assert!(matches!(wakeups.orders[3].try_recv(), Ok(Order::Connect(a)) if a == addr));
        assert!(wakeups.writers[0].try_recv().is_ok(), "the writer of the slot with bytes woken");
        assert!(wakeups.writers[1].try_recv().is_err(), "no other writer woken");
        assert!(wakeups.timer.try_recv().is_ok(), "the timer woken for the new deadline");
    }

    #[test]
    fn the_timer_is_woken_only_for_a_deadline_earlier_than_the_one_armed() {
        let (driver, wakeups) = Driver::new(Scripted::default());
        let start = Instant::now();
        driver.feed(|core, _| core.deadline = Some(start + Duration::from_secs(10)));
        assert_eq!(driver.arm(), Some(start + Duration::from_secs(10)));
        let _ = wakeups.timer.try_recv();
        // Any input that leaves a later deadline does not wake it...
        driver.feed(|core, _| core.deadline = Some(start + Duration::from_secs(20)));
        assert!(wakeups.timer.try_recv().is_err());
        // ...and one that leaves an earlier deadline does, whatever input it
        // was (a stream connection drained, say).
        driver.feed(|core, _| core.deadline = Some(start + Duration::from_secs(5)));
        assert!(wakeups.timer.try_recv().is_ok());
    }
}
