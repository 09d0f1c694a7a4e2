//! `ctigw`: boots the gateway. Arguments, configuration file, logger,
//! executor; everything else lives in the library.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use ctigw::config::{self, Config};
use ctigw::cti::Nodes;
use ctigw::io;
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
    env_logger::Builder::new()
        .filter_level(config.log_level)
        .parse_env(env_logger::Env::default())
        .format_timestamp_millis()
        .init();
    run(config, appearances)
}

fn run(config: Config, appearances: Appearances) -> ExitCode {
    let nodes = match Nodes::new(config.timing, &config.nodes) {
        Ok(n) => n,
        Err(_) => {
            eprintln!("ctigw: more CTI nodes than the gateway has slots");
            return ExitCode::from(1);
        }
    };
    let port = config.sip_listen[0].port();
    let gateway = Gateway::new(GatewayConfig::new(&config.sip_host, port, config.trusted.clone()), appearances, nodes);
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
        let host = Rc::new(RefCell::new(io::sip::host(gateway, &listeners, config.tcp_connections)));
        host.borrow_mut().gw.start(Instant::now());
        let pump = io::cti::spawn(&ex, host.clone());
        pump.run(&mut *host.borrow_mut());
        io::sip::spawn(&ex, host.clone(), pump.clone(), listeners, config.tcp_idle_timeout);
        log::info!(
            "ctigw {} listening for SIP on {} (UDP and TCP), {} CTI nodes, {} line appearances",
            env!("CARGO_PKG_VERSION"),
            config.sip_listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            config.nodes.len(),
            host.borrow().gw.appearances().len()
        );
        // Runs until the process is stopped.
        smol::future::pending::<()>().await;
        ExitCode::SUCCESS
    }))
}
