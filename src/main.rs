//! `ctigw`: boots the gateway. This build carries the wire layer (the SIP
//! and CSTA codecs); the gateway runtime that reads the configuration file
//! and serves Lync arrives with the gateway issue, and until then the
//! binary says so instead of pretending to run.

use std::process::ExitCode;

const USAGE: &str = "\
usage: ctigw [--config PATH]
       ctigw --version
       ctigw --help";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version" | "-V") => {
            println!("ctigw {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!(
                "ctigw {}: remote call control gateway (Lync uaCSTA to CTI nodes)\n\n{USAGE}",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        None | Some("--config") => {
            eprintln!(
                "ctigw {}: this build contains the SIP and CSTA wire layer only; the gateway runtime \
                 (configuration, CTI node links, Lync sessions) is not built yet, so there is nothing to run.",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
        Some(other) => {
            eprintln!("ctigw: unknown argument {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
