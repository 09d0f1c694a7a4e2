//! The I/O shell of the CTI side: smol tasks that carry out what
//! [`crate::cti::Nodes`] asks for, on the one thread of the executor.
//!
//! Per slot, a link task connects when told to, then a reader feeds the
//! bytes to the core and a writer writes what the core has pending. A
//! timer task sleeps until the core's next deadline. Each gives its input
//! to the [`Driver`], which carries out what follows; the tasks never
//! decide anything themselves.

use std::rc::Rc;
use std::time::Instant;

use smol::channel::Receiver;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::{LocalExecutor, Timer};

use super::driver::{Core, Driver, Order, Wakeups};
use crate::cti::{LINK_BUFFER, LinkEvent, SlotId};

/// Starts the link task of every slot and the timer task.
pub(super) fn spawn<C: Core + 'static>(ex: &Rc<LocalExecutor<'static>>, driver: &Rc<Driver<C>>, wakeups: Wakeups) {
    for (i, (orders, wake)) in wakeups.orders.into_iter().zip(wakeups.writers).enumerate() {
        let slot = SlotId::new(i).expect("index below MAX_NODES");
        ex.spawn(link_task(ex.clone(), slot, driver.clone(), orders, wake)).detach();
    }
    ex.spawn(timer_task(driver.clone(), wakeups.timer)).detach();
}

async fn timer_task<C: Core>(driver: Rc<Driver<C>>, wake: Receiver<()>) {
    loop {
        let deadline = driver.arm();
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
        if deadline.is_some_and(|d| d <= Instant::now()) {
            driver.feed(|core, now| core.handle_timeout(now));
        }
    }
}

async fn link_task<C: Core + 'static>(
    ex: Rc<LocalExecutor<'static>>,
    slot: SlotId,
    driver: Rc<Driver<C>>,
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
                driver.feed(|core, now| core.handle_link(now, slot, LinkEvent::ConnectFailed));
                continue;
            }
            Some(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        driver.feed(|core, now| core.handle_link(now, slot, LinkEvent::Connected));
        let writer = ex.spawn(write_loop(slot, driver.clone(), stream.clone(), wake_writer.clone()));
        let reading = read_loop(slot, driver.clone(), stream.clone());
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
            driver.feed(|core, now| core.handle_link(now, slot, LinkEvent::Closed));
        }
    }
}

async fn read_loop<C: Core>(slot: SlotId, driver: Rc<Driver<C>>, mut stream: TcpStream) {
    let mut buf = vec![0u8; LINK_BUFFER];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        driver.feed(|core, now| core.handle_cti(now, slot, &buf[..n]));
    }
}

async fn write_loop<C: Core>(slot: SlotId, driver: Rc<Driver<C>>, mut stream: TcpStream, wake: Receiver<()>) {
    let mut buf = vec![0u8; LINK_BUFFER];
    loop {
        let n = {
            let core = driver.core();
            let pending = core.link_tx(slot);
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
        driver.link_transmitted(slot, n);
    }
}
