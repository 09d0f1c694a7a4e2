//! `ctigw-sim`: a CTI manager node with a small telephone system behind
//! it, for `make run`, the tests and the benchmarks.
//!
//! It listens for CTI links (CSTA XML framed as the gateway frames it) and,
//! on a second loopback port, for a line-based control channel through
//! which tests make the telephone system act and inject faults:
//!
//! ```text
//! call <from> <to-line>        an outside number calls a line   -> ok C-0001
//! answer <call> [<device>]     the alerting party answers
//! busy <call>                  the alerting party is busy
//! hangup <call> [<device>]     a party hangs up (default: the outside one)
//! outside answer <ms> | outside busy | outside noanswer
//! calls                        the calls and their parties
//! status                       links, monitors, calls, faults
//! fault heartbeat off|on       stop (or resume) answering heartbeats
//! fault delay <ms>             hold every response and event this long
//! fault close                  close every CTI link
//! fault refuse on|off          refuse (or accept again) CTI connections
//! exit                         stop the simulator
//! ```
//!
//! Every reply is one line starting with `ok` or `error`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ctigw::cti::frame;
use ctigw::outbuf::OutBuf;
use ctigw::sim::node::{Faults, Node};
use ctigw::sim::switch::{LinkId, Naming, Output, Outside, Switch};
use smol::channel::{Receiver, Sender};
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::net::{TcpListener, TcpStream};
use smol::stream::StreamExt;
use smol::{LocalExecutor, Timer};

const USAGE: &str = "\
usage: ctigw-sim [--listen ADDR] [--control ADDR] [--lines FILE]
                 [--outside answer=MS|busy|noanswer] [--ring-timeout MS]
                 [--silent-heartbeats] [--delay MS] [--refuse] [--speaks-first]
                 [--naming uri|extensions|openscape]

defaults: --listen 127.0.0.1:7001 --control 127.0.0.1:7101
          --lines config/sim-lines.conf --outside answer=1000 --ring-timeout 30000
--naming: how the switch names devices. uri (the default) takes Lync's
line URIs as they come; extensions is a PBX of plain extension numbers
(the line file's device column, `101`) that refuses URIs; openscape writes
devices as `N<number>;noa=nk` and adds private data to its events. With a
PBX naming, the gateway needs a [dialplan].
With port 0 the system picks a port; the addresses in use are printed on
stdout as `LISTEN <addr>` and `CONTROL <addr>` once the simulator is ready.";

struct Options {
    listen: SocketAddr,
    control: SocketAddr,
    lines: String,
    outside: Outside,
    ring_timeout: Duration,
    faults: Faults,
    speaks_first: bool,
    naming: Naming,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        listen: "127.0.0.1:7001".parse().expect("literal address"),
        control: "127.0.0.1:7101".parse().expect("literal address"),
        lines: "config/sim-lines.conf".into(),
        outside: Outside::Answer(Duration::from_secs(1)),
        ring_timeout: Duration::from_secs(30),
        faults: Faults::default(),
        speaks_first: false,
        naming: Naming::Uri,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let ms = |v: String, name: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{name}: not a number of milliseconds: {v}"))
        };
        match arg.as_str() {
            "--listen" => o.listen = value("--listen")?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--control" => o.control = value("--control")?.parse().map_err(|e| format!("--control: {e}"))?,
            "--lines" => o.lines = value("--lines")?,
            "--outside" => {
                let v = value("--outside")?;
                o.outside = match v.as_str() {
                    "busy" => Outside::Busy,
                    "noanswer" => Outside::NoAnswer,
                    _ => match v.strip_prefix("answer=") {
                        Some(n) => Outside::Answer(ms(n.to_string(), "--outside")?),
                        None => return Err(format!("--outside: expected answer=MS, busy or noanswer, not {v}")),
                    },
                }
            }
            "--ring-timeout" => o.ring_timeout = ms(value("--ring-timeout")?, "--ring-timeout")?,
            "--delay" => o.faults.delay = ms(value("--delay")?, "--delay")?,
            "--silent-heartbeats" => o.faults.silent_heartbeats = true,
            "--refuse" => o.faults.refuse = true,
            "--speaks-first" => o.speaks_first = true,
            "--naming" => {
                let v = value("--naming")?;
                o.naming =
                    Naming::parse(&v).ok_or(format!("--naming: expected uri, extensions or openscape, not {v}"))?;
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// A frame for a link's writer, and when the fault delay releases it.
type Queued = (Instant, Vec<u8>);

/// Everything the tasks share, on the one thread.
struct Sim {
    node: RefCell<Node>,
    /// Each link's writer, and its socket (to close it on `fault close`).
    links: RefCell<BTreeMap<LinkId, (Sender<Queued>, TcpStream)>>,
    /// Wakes the timer task when new outside-world actions may be due.
    timers_changed: Sender<()>,
    /// Wakes the accept loop when `fault refuse` changes.
    refuse_changed: Sender<()>,
}

impl Sim {
    /// Frames each output and queues it for its link, held by the fault delay.
    fn send(&self, outputs: Vec<Output>) {
        let release = Instant::now() + self.node.borrow().faults.delay;
        let links = self.links.borrow();
        for output in outputs {
            let Some((writer, _)) = links.get(&output.link) else { continue };
            let mut buf = vec![0u8; output.body.len() + frame::HEADER_LEN];
            let mut out = OutBuf::new(&mut buf);
            if frame::encode(&mut out, output.invoke_id, |o| o.put(&output.body)).is_err() {
                log::warn!("link {}: a document too large for a frame was dropped", output.link);
                continue;
            }
            let _ = writer.try_send((release, buf));
        }
        let _ = self.timers_changed.try_send(());
    }
}

async fn serve_link(sim: Rc<Sim>, stream: TcpStream, peer: SocketAddr, ex: Rc<LocalExecutor<'static>>) {
    let link = sim.node.borrow_mut().open_link();
    log::info!("link {link} from {peer}");
    let (tx, rx): (Sender<Queued>, Receiver<Queued>) = smol::channel::unbounded();
    sim.links.borrow_mut().insert(link, (tx, stream.clone()));
    let greeting = sim.node.borrow_mut().greeting(link);
    sim.send(greeting);
    let mut writer = stream.clone();
    ex.spawn(async move {
        while let Ok((release, bytes)) = rx.recv().await {
            if release > Instant::now() {
                Timer::at(release).await;
            }
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    })
    .detach();
    let mut reader = stream;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let received = sim.node.borrow_mut().receive(Instant::now(), link, &buf[..n]);
        match received {
            Ok(outputs) => sim.send(outputs),
            Err(e) => {
                log::warn!("link {link}: {e}; closing");
                break;
            }
        }
    }
    log::info!("link {link} closed");
    sim.node.borrow_mut().close_link(link);
    if let Some((_, stream)) = sim.links.borrow_mut().remove(&link) {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

async fn accept_links(sim: Rc<Sim>, first: TcpListener, refuse_changed: Receiver<()>, ex: Rc<LocalExecutor<'static>>) {
    let addr = first.local_addr().expect("bound");
    let mut bound = Some(first);
    loop {
        if sim.node.borrow().faults.refuse {
            // Not listening at all: connects are refused by the kernel.
            bound = None;
            let _ = refuse_changed.recv().await;
            continue;
        }
        let listener = match bound.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    log::error!("cannot listen on {addr}: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        loop {
            let accepted = smol::future::or(async { Some(listener.accept().await) }, async {
                let _ = refuse_changed.recv().await;
                None
            })
            .await;
            match accepted {
                Some(Ok((stream, peer))) => {
                    let _ = stream.set_nodelay(true);
                    ex.spawn(serve_link(sim.clone(), stream, peer, ex.clone())).detach();
                }
                Some(Err(e)) => log::warn!("accept: {e}"),
                None if sim.node.borrow().faults.refuse => break,
                None => {}
            }
        }
        log::info!("refusing CTI connections");
    }
}

async fn run_timers(sim: Rc<Sim>, changed: Receiver<()>) {
    loop {
        let deadline = sim.node.borrow().poll_timeout();
        let timer = match deadline {
            Some(at) => Timer::at(at),
            None => Timer::never(),
        };
        smol::future::or(
            async {
                timer.await;
            },
            async {
                let _ = changed.recv().await;
            },
        )
        .await;
        let outputs = sim.node.borrow_mut().handle_timeout(Instant::now());
        if !outputs.is_empty() {
            sim.send(outputs);
        }
    }
}

fn status(sim: &Sim) -> String {
    let node = sim.node.borrow();
    let f = node.faults;
    format!(
        "ok links={} monitors={} calls={} silent_heartbeats={} delay_ms={} refuse={} greetings_answered={} registrations={}",
        node.link_count(),
        node.switch().monitor_count(),
        node.switch().describe_calls().len(),
        f.silent_heartbeats,
        f.delay.as_millis(),
        f.refuse,
        node.greetings_answered(),
        node.registrations()
    )
}

async fn serve_control(sim: Rc<Sim>, stream: TcpStream) {
    let mut lines = BufReader::new(stream.clone()).lines();
    let mut out = stream;
    while let Some(Ok(line)) = lines.next().await {
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        let handled = sim.node.borrow_mut().command(Instant::now(), &line);
        let reply = match handled {
            Some((reply, outputs)) => {
                sim.send(outputs);
                reply
            }
            None => match line.as_str() {
                "status" => status(&sim),
                "fault close" => {
                    for (_, stream) in sim.links.borrow().values() {
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                    }
                    "ok".into()
                }
                "fault refuse on" | "fault refuse off" => {
                    let _ = sim.refuse_changed.try_send(());
                    "ok".into()
                }
                "exit" => {
                    let _ = out.write_all(b"ok\n").await;
                    let _ = out.flush().await;
                    log::info!("exit requested");
                    std::process::exit(0);
                }
                _ => format!("error unknown command: {line}"),
            },
        };
        log::debug!("control: {line} -> {reply}");
        if out.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
            break;
        }
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ctigw-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let text = match std::fs::read_to_string(&options.lines) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ctigw-sim: {}: {e}", options.lines);
            return ExitCode::from(1);
        }
    };
    let mut assignments = Vec::new();
    for entry in ctigw::lines::parse(&text) {
        match entry {
            Ok(a) => assignments.push((a.line.to_string(), a.device.to_string())),
            Err(e) => {
                eprintln!("ctigw-sim: {}:{e}", options.lines);
                return ExitCode::from(1);
            }
        }
    }
    let mut switch = Switch::new(assignments.iter().map(|(l, d)| (l.as_str(), d.as_str())), options.outside);
    switch.set_ring_timeout(options.ring_timeout);
    switch.set_naming(options.naming);

    let (timers_changed, timers_rx) = smol::channel::bounded(1);
    let (refuse_changed, refuse_rx) = smol::channel::bounded(1);
    let mut node = Node::new(switch, options.faults);
    node.speaks_first = options.speaks_first;
    let sim =
        Rc::new(Sim { node: RefCell::new(node), links: RefCell::new(BTreeMap::new()), timers_changed, refuse_changed });
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        // Bound before the addresses are printed: a client that reads them
        // can connect at once.
        let links = match TcpListener::bind(options.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ctigw-sim: cannot listen on {}: {e}", options.listen);
                return ExitCode::from(1);
            }
        };
        let listen = links.local_addr().expect("bound");
        let control = match TcpListener::bind(options.control).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ctigw-sim: cannot listen on {}: {e}", options.control);
                return ExitCode::from(1);
            }
        };
        let control_addr = control.local_addr().expect("bound");
        ex.spawn(accept_links(sim.clone(), links, refuse_rx, ex.clone())).detach();
        ex.spawn(run_timers(sim.clone(), timers_rx)).detach();
        log::info!(
            "ctigw-sim: {} lines, CTI on {listen}, control on {control_addr}",
            sim.node.borrow().switch().line_uris().count()
        );
        println!("LISTEN {listen}");
        println!("CONTROL {control_addr}");
        loop {
            match control.accept().await {
                Ok((stream, _)) => {
                    ex.spawn(serve_control(sim.clone(), stream)).detach();
                }
                Err(e) => log::warn!("control accept: {e}"),
            }
        }
    }))
}
