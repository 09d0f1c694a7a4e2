//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test binary uses its own subset

pub mod admin;
pub mod gateway;
pub mod load;
pub mod lync;
pub mod pbx;
pub mod sim;
pub mod sipp;

use std::path::PathBuf;
use std::process::Command;

/// A command running one of the crate's binaries (`env!("CARGO_BIN_EXE_…")`).
/// When the tests run for another architecture (`make test-arm`), the
/// binaries are ARM code: `CTIGW_TEST_RUNNER` (e.g. `qemu-aarch64`) runs
/// them, as cargo's runner runs the test itself.
pub fn binary(path: &str) -> Command {
    let runner = std::env::var("CTIGW_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(path);
            command
        }
        None => Command::new(path),
    }
}

/// Where the project's shared samples live: `$CTIGW_TESTDATA`, or
/// `../shared/testdata` beside the checkout. They are read in place and
/// never copied into the repository.
pub fn testdata_dir() -> PathBuf {
    match std::env::var_os("CTIGW_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"),
    }
}

/// The bytes of one shared sample, e.g. `csta/MakeCall.xml`.
pub fn testdata(relative: &str) -> Vec<u8> {
    let path = testdata_dir().join(relative);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set CTIGW_TESTDATA to the shared testdata folder)", path.display()))
}

/// The names of the shared samples in `folder` with `extension`, sorted.
pub fn testdata_files(folder: &str, extension: &str) -> Vec<String> {
    let dir = testdata_dir().join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(extension))
        .collect();
    names.sort();
    names
}

/// What the gateway's receive path decides for one SIP datagram: parse,
/// then the checks every request or response must pass. The RFC 4475
/// tests judge each torture message by it; the hostile-input tests use it
/// to tell the invalid ones.
pub fn sip_verdict(bytes: &[u8]) -> Result<ctigw::sip::Message<'_>, ctigw::sip::Error> {
    let message = ctigw::sip::Message::parse(bytes)?;
    if message.method().is_some() {
        message.check_request()?;
    } else {
        message.check_response()?;
    }
    Ok(message)
}
