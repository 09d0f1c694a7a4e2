//! `ctigw`: boots the gateway. Arguments, configuration file, logger;
//! the service itself (executor, sockets, reload, stop) lives in
//! [`ctigw::io::service`].

use std::path::PathBuf;
use std::process::ExitCode;

use ctigw::config;
use ctigw::io;

const USAGE: &str = "\
usage: ctigw [--config PATH]        run the gateway (default /etc/ctigw/ctigw.conf)
       ctigw --check-config PATH    check a configuration and its line file, then exit
       ctigw --budget               where each byte of this board's fixed tables goes
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
            "--budget" => {
                print!("{}", budget());
                return Ok(None);
            }
            "--config" => command = Command::Run(args.next().ok_or("--config needs a path")?.into()),
            "--check-config" => command = Command::Check(args.next().ok_or("--check-config needs a path")?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(command))
}

/// The board's tables as a Markdown table: what, how many, the bytes of
/// each, the total; then the TCP buffers, taken as connections open.
fn budget() -> String {
    use ctigw::board;
    use std::fmt::Write as _;
    let config = ctigw::rcc::GatewayConfig::new("budget", 0, Vec::new());
    let lines = ctigw::rcc::Gateway::budget(&config);
    let mut out = format!(
        "ctigw {}, board {}: where each byte of the fixed tables goes (`ctigw --budget`)\n\n\
         | what | count | bytes each | KiB |\n|---|---:|---:|---:|\n",
        env!("CARGO_PKG_VERSION"),
        board::BOARD
    );
    let mut total = 0;
    for (what, count, each) in lines {
        total += count * each;
        let _ = writeln!(out, "| {what} | {count} | {each} | {} |", (count * each).div_ceil(1024));
    }
    let _ = writeln!(out, "| reserved at boot, resident as used | | | {} |", total.div_ceil(1024));
    let tcp = board::TCP_RECEIVE + 2 * board::TCP_TRANSMIT;
    let _ = writeln!(
        out,
        "| TCP connection buffers (receive, transmit and its copy), when a connection opens | {} | {tcp} | {} |",
        board::TCP_CONNECTIONS,
        (board::TCP_CONNECTIONS * tcp).div_ceil(1024)
    );
    out
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
    let (config, appearances) = match io::service::load(&path) {
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
            "{}: ok ({} CTI nodes, {} line appearances in {}, {})",
            path.display(),
            config.nodes.len(),
            appearances.len(),
            config.lines_file.display(),
            ctigw::io::service::describe_dialplan(config.dialplan.as_ref())
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
    io::service::run(path, config, appearances, tls)
}
