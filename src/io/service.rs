//! The gateway as a service: boot, SIGHUP reload and the orderly stop,
//! around the [`Driver`] of the core and the shell's tasks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::LocalExecutor;

use super::admin;
use super::driver::Driver;
use super::signal::{Signal, Signals};
use super::sip::{self, Host};
use crate::config::Config;
use crate::cti::Nodes;
use crate::rcc::appearances::Appearances;
use crate::rcc::{Gateway, GatewayConfig};

/// Reads the configuration and its line file; every error, as file:line.
pub fn load(path: &Path) -> Result<(Config, Appearances), Vec<String>> {
    let config = Config::load(path).map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let lines = &config.lines_file;
    let text = std::fs::read_to_string(lines).map_err(|e| vec![format!("{}: cannot read: {e}", lines.display())])?;
    let appearances = Appearances::parse(&text)
        .map_err(|errors| errors.iter().map(|e| format!("{}:{e}", lines.display())).collect::<Vec<_>>())?;
    Ok((config, appearances))
}

/// How long a stop waits for Lync to answer the BYEs and for the last
/// bytes to go out before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Tells systemd (`Type=notify`) about the service's state, when it asks.
fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let path = path.to_string_lossy();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(path.as_ref()),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr));
    if let Err(e) = sent {
        log::warn!("cannot tell systemd {state:?} at {path}: {e}");
    }
}

/// SIGHUP: reads the configuration and its line file again. The line
/// appearances, the trusted sources and the log level take effect at
/// once, without touching a session; keys that need a restart are named.
/// A file with any fault changes nothing.
fn reload(path: &Path, running: &mut Config, gw: &mut Gateway) {
    let (new, appearances) = match load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                log::error!("reload: {e}");
            }
            log::error!("reload refused ({} errors): the configuration in force stays", errors.len());
            return;
        }
    };
    let restart_only = [
        ("sip.listen", new.sip_listen != running.sip_listen),
        ("sip.host", new.sip_host != running.sip_host),
        ("sip.tcp_idle_timeout", new.tcp_idle_timeout != running.tcp_idle_timeout),
        ("sip.tcp_message_timeout", new.tcp_message_timeout != running.tcp_message_timeout),
        ("sip.tcp_connections", new.tcp_connections != running.tcp_connections),
        ("sip.sessions", new.sessions != running.sessions),
        (
            "cti",
            new.nodes != running.nodes
                || new.timing != running.timing
                || new.services != running.services
                || new.failover != running.failover,
        ),
        ("admin.listen", new.admin_listen != running.admin_listen),
        ("tls", new.tls != running.tls),
    ];
    for (key, _) in restart_only.iter().filter(|(_, changed)| *changed) {
        log::warn!("reload: {key} changed in {}; it takes effect at the next start", path.display());
    }
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(new.log_level);
    }
    log::info!(
        "reload: {} line appearances from {}, {}, {} trusted source ranges; {} sessions kept",
        appearances.len(),
        new.lines_file.display(),
        describe_dialplan(new.dialplan.as_ref()),
        new.trusted.len(),
        gw.session_count()
    );
    gw.set_appearances(appearances);
    gw.set_dialplan(new.dialplan.clone());
    gw.set_trusted(new.trusted.clone());
    running.trusted = new.trusted;
    running.log_level = new.log_level;
    running.lines_file = new.lines_file;
    running.dialplan = new.dialplan;
}

/// The dial plan in a few words, for the log.
pub fn describe_dialplan(plan: Option<&crate::dialplan::DialPlan>) -> String {
    use crate::dialplan::Direction;
    match plan {
        None => "no dial plan (Lync's names pass unchanged)".to_string(),
        Some(p) => format!(
            "a dial plan of {} to_node and {} to_lync rules",
            p.rules(Direction::ToNode).len(),
            p.rules(Direction::ToLync).len()
        ),
    }
}

/// Runs the gateway until SIGTERM or SIGINT: binds the sockets, starts the
/// CTI links, serves SIP and the admin endpoint, reloads on SIGHUP, and
/// stops in order. The exit code says whether it started.
pub fn run(path: PathBuf, mut config: Config, appearances: Appearances, tls: Option<crate::tls::Server>) -> ExitCode {
    let nodes = match Nodes::new(config.timing, &config.nodes) {
        Ok(n) => n,
        Err(_) => {
            eprintln!("ctigw: more CTI nodes than the gateway has slots");
            return ExitCode::from(1);
        }
    };
    let port = config.sip_listen[0].port();
    let mut sizes = GatewayConfig::new(&config.sip_host, port, config.trusted.clone());
    sizes.sessions = config.sessions;
    sizes.tls_port = config.tls.as_ref().map(|t| t.listen[0].port());
    sizes.services = config.services;
    sizes.failover = config.failover;
    let mut gateway = Gateway::new(Instant::now(), sizes, appearances, nodes);
    gateway.set_dialplan(config.dialplan.clone());
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let mut listeners = Vec::new();
        for addr in &config.sip_listen {
            match sip::bind(*addr).await {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    eprintln!("ctigw: cannot listen on {addr} (UDP and TCP): {e}");
                    return ExitCode::from(1);
                }
            }
        }
        let mut tls_listeners = Vec::new();
        for addr in config.tls.iter().flat_map(|t| &t.listen) {
            match sip::bind_tls(*addr).await {
                Ok(l) => tls_listeners.push(l),
                Err(e) => {
                    eprintln!("ctigw: cannot listen on {addr} for SIP over TLS: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        let mut host = sip::host(gateway, &listeners, config.tcp_connections);
        host.gw.start(Instant::now());
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ctigw: cannot install the signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let driver = Driver::spawn(&ex, host);
        let timeouts = sip::StreamTimeouts { idle: config.tcp_idle_timeout, message: config.tcp_message_timeout };
        sip::spawn(&ex, driver.clone(), listeners, timeouts);
        if let (Some(server), Some(t)) = (tls, &config.tls) {
            sip::spawn_tls(&ex, driver.clone(), tls_listeners, server, timeouts, t.handshake_timeout);
        }
        if let Some(addr) = config.admin_listen {
            match admin::spawn(&ex, driver.clone(), addr) {
                Ok(bound) => log::info!("admin endpoint on {bound}"),
                Err(e) => {
                    eprintln!("ctigw: cannot listen on {addr} for the admin endpoint: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        log::info!(
            "ctigw {} listening for SIP on {} (UDP and TCP){}, {} CTI nodes, {} line appearances, {}",
            env!("CARGO_PKG_VERSION"),
            config.sip_listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            config.tls.as_ref().map_or(String::new(), |t| {
                let addrs = t.listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                format!(" and {addrs} (TLS, {} trusted peers)", t.peers.len())
            }),
            config.nodes.len(),
            driver.core().gw.appearances().len(),
            describe_dialplan(config.dialplan.as_ref())
        );
        notify_systemd("READY=1");
        let why = loop {
            match signals.next().await {
                Signal::Reload => {
                    notify_systemd("RELOADING=1");
                    driver.feed(|h, _| reload(&path, &mut config, &mut h.gw));
                    notify_systemd("READY=1");
                }
                Signal::Terminate(why) => break why,
            }
        };
        notify_systemd("STOPPING=1");
        stop(why, &driver).await;
        ExitCode::SUCCESS
    }))
}

/// The orderly stop: no new connections or sessions, every session ended
/// with a BYE (so Lync moves its users to another gateway), the BYEs
/// answered or given up on within [`STOP_GRACE`], then the CTI sessions
/// ended and the last bytes written.
async fn stop(why: &str, driver: &Driver<Host>) {
    let started = Instant::now();
    driver.feed(|h, now| {
        log::info!("{why}: stopping; ending {} sessions with BYE", h.gw.session_count());
        h.out.accepting = false;
        h.gw.shut_down(now);
    });
    let deadline = started + STOP_GRACE;
    while Instant::now() < deadline && !driver.core().drained() {
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    driver.feed(|h, now| {
        if !h.gw.is_drained() {
            log::warn!("{why}: some BYEs were not answered within {} s", STOP_GRACE.as_secs());
        }
        h.gw.stop_nodes(now);
    });
    let cti_deadline = Instant::now() + Duration::from_millis(500);
    let cti_written = || {
        let h = driver.core();
        let nodes = h.gw.nodes();
        nodes.slots().all(|slot| nodes.tx_pending(slot).is_empty())
    };
    while Instant::now() < cti_deadline && !cti_written() {
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    log::info!("{why}: stopped in {} ms", started.elapsed().as_millis());
}
