//! `ctigw`: boots the gateway. Arguments, configuration file, logger,
//! executor; everything else lives in the library.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ctigw::config::{self, Config};
use ctigw::cti::Nodes;
use ctigw::io;
use ctigw::io::signal::{Signal, Signals};
use ctigw::rcc::appearances::Appearances;
use ctigw::rcc::{Gateway, GatewayConfig};
use smol::LocalExecutor;

const USAGE: &str = "\
usage: ctigw [--config PATH]        run the gateway (default /etc/ctigw/ctigw.conf)
       ctigw --check-config PATH    check a configuration and its line file, then exit
       ctigw --version
       ctigw --help

The log level comes from the configuration; RUST_LOG overrides it.";

enum Command {
    Run(PathBuf),
    Check(PathBuf),
}

fn parse_args() -> Result<Option<Command>, String> {
    let mut args = std::env::args().skip(1);
    let mut command = Command::Run(PathBuf::from(config::DEFAULT_PATH));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--version" | "-V" => {
                println!("ctigw {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--help" | "-h" => {
                println!(
                    "ctigw {}: remote call control gateway (Lync uaCSTA to CTI nodes)\n\n{USAGE}",
                    env!("CARGO_PKG_VERSION")
                );
                return Ok(None);
            }
            "--config" => command = Command::Run(args.next().ok_or("--config needs a path")?.into()),
            "--check-config" => command = Command::Check(args.next().ok_or("--check-config needs a path")?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(command))
}

/// Reads the configuration and its line file; every error, as file:line.
fn load(path: &Path) -> Result<(Config, Appearances), Vec<String>> {
    let config = Config::load(path).map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let lines = &config.lines_file;
    let text = std::fs::read_to_string(lines).map_err(|e| vec![format!("{}: cannot read: {e}", lines.display())])?;
    let appearances = Appearances::parse(&text)
        .map_err(|errors| errors.iter().map(|e| format!("{}:{e}", lines.display())).collect::<Vec<_>>())?;
    Ok((config, appearances))
}

fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctigw: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (path, check_only) = match command {
        Command::Run(p) => (p, false),
        Command::Check(p) => (p, true),
    };
    let (config, appearances) = match load(&path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(1);
        }
    };
    // SIP over TLS: the certificate, key and CA of [tls] read and checked now.
    let tls = match config.tls.as_ref().map(ctigw::tls::server_config).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("ctigw: {e}");
            return ExitCode::from(1);
        }
    };
    if check_only {
        println!(
            "{}: ok ({} CTI nodes, {} line appearances in {})",
            path.display(),
            config.nodes.len(),
            appearances.len(),
            config.lines_file.display()
        );
        return ExitCode::SUCCESS;
    }
    // The logger passes everything; the level in force is log's maximum,
    // which a reload may change. RUST_LOG, when set, rules instead.
    let from_env = std::env::var_os("RUST_LOG").is_some();
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Trace)
        .parse_env(env_logger::Env::default())
        .format_timestamp_millis()
        .init();
    if !from_env {
        log::set_max_level(config.log_level);
    }
    run(path, config, appearances, tls)
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
        ("cti", new.nodes != running.nodes || new.timing != running.timing),
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
        "reload: {} line appearances from {}, {} trusted source ranges; {} sessions kept",
        appearances.len(),
        new.lines_file.display(),
        new.trusted.len(),
        gw.session_count()
    );
    gw.set_appearances(appearances);
    gw.set_trusted(new.trusted.clone());
    running.trusted = new.trusted;
    running.log_level = new.log_level;
    running.lines_file = new.lines_file;
}

fn run(path: PathBuf, mut config: Config, appearances: Appearances, tls: Option<ctigw::tls::Server>) -> ExitCode {
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
    let gateway = Gateway::new(Instant::now(), sizes, appearances, nodes);
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let mut listeners = Vec::new();
        for addr in &config.sip_listen {
            match io::sip::bind(*addr).await {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    eprintln!("ctigw: cannot listen on {addr} (UDP and TCP): {e}");
                    return ExitCode::from(1);
                }
            }
        }
        let mut tls_listeners = Vec::new();
        for addr in config.tls.iter().flat_map(|t| &t.listen) {
            match io::sip::bind_tls(*addr).await {
                Ok(l) => tls_listeners.push(l),
                Err(e) => {
                    eprintln!("ctigw: cannot listen on {addr} for SIP over TLS: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        let host = Rc::new(RefCell::new(io::sip::host(gateway, &listeners, config.tcp_connections)));
        host.borrow_mut().gw.start(Instant::now());
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ctigw: cannot install the signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let pump = io::cti::spawn(&ex, host.clone());
        pump.run(&mut *host.borrow_mut());
        let timeouts = io::sip::StreamTimeouts { idle: config.tcp_idle_timeout, message: config.tcp_message_timeout };
        io::sip::spawn(&ex, host.clone(), pump.clone(), listeners, timeouts);
        if let (Some(server), Some(t)) = (tls, &config.tls) {
            io::sip::spawn_tls(&ex, host.clone(), pump.clone(), tls_listeners, server, timeouts, t.handshake_timeout);
        }
        if let Some(addr) = config.admin_listen {
            match io::admin::spawn(&ex, host.clone(), addr) {
                Ok(bound) => log::info!("admin endpoint on {bound}"),
                Err(e) => {
                    eprintln!("ctigw: cannot listen on {addr} for the admin endpoint: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        log::info!(
            "ctigw {} listening for SIP on {} (UDP and TCP){}, {} CTI nodes, {} line appearances",
            env!("CARGO_PKG_VERSION"),
            config.sip_listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            config.tls.as_ref().map_or(String::new(), |t| {
                let addrs = t.listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                format!(" and {addrs} (TLS, {} trusted peers)", t.peers.len())
            }),
            config.nodes.len(),
            host.borrow().gw.appearances().len()
        );
        notify_systemd("READY=1");
        let why = loop {
            match signals.next().await {
                Signal::Reload => {
                    notify_systemd("RELOADING=1");
                    reload(&path, &mut config, &mut host.borrow_mut().gw);
                    notify_systemd("READY=1");
                }
                Signal::Terminate(why) => break why,
            }
        };
        notify_systemd("STOPPING=1");
        stop(why, &host, &pump).await;
        ExitCode::SUCCESS
    }))
}

/// The orderly stop: no new connections or sessions, every session ended
/// with a BYE (so Lync moves its users to another gateway), the BYEs
/// answered or given up on within [`STOP_GRACE`], then the CTI sessions
/// ended and the last bytes written.
async fn stop(why: &str, host: &RefCell<io::sip::Host>, pump: &io::cti::Pump) {
    let started = Instant::now();
    {
        let mut h = host.borrow_mut();
        log::info!("{why}: stopping; ending {} sessions with BYE", h.gw.session_count());
        h.out.accepting = false;
        h.gw.shut_down(started);
        h.flush();
        pump.run(&mut *h);
    }
    let deadline = started + STOP_GRACE;
    while Instant::now() < deadline && !host.borrow().drained() {
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    {
        let mut h = host.borrow_mut();
        if !h.gw.is_drained() {
            log::warn!("{why}: some BYEs were not answered within {} s", STOP_GRACE.as_secs());
        }
        h.gw.stop_nodes(Instant::now());
        pump.run(&mut *h);
    }
    let cti_deadline = Instant::now() + Duration::from_millis(500);
    let cti_written = || {
        let nodes = host.borrow();
        let nodes = nodes.gw.nodes();
        nodes.slots().all(|slot| nodes.tx_pending(slot).is_empty())
    };
    while Instant::now() < cti_deadline && !cti_written() {
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    log::info!("{why}: stopped in {} ms", started.elapsed().as_millis());
}
