//! Runs `ctigw-sim` processes for the tests and talks to their control channel.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

/// One simulator process.
pub struct Sim {
    child: Option<Child>,
    /// Where its CTI links connect.
    pub listen: SocketAddr,
    /// Its control channel.
    pub control: SocketAddr,
}

impl Sim {
    /// Starts a simulator on free loopback ports.
    pub fn start(extra: &[&str]) -> Sim {
        Sim::start_on("127.0.0.1:0", extra)
    }

    /// Starts a simulator listening on `listen` (to restart one in place).
    pub fn start_on(listen: &str, extra: &[&str]) -> Sim {
        let lines = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim-lines.conf");
        let mut child = super::binary(env!("CARGO_BIN_EXE_ctigw-sim"))
            .args(["--listen", listen, "--control", "127.0.0.1:0", "--lines", lines])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ctigw-sim starts");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut field = |name: &str| {
            let mut line = String::new();
            out.read_line(&mut line).expect("simulator prints its addresses");
            let value = line.trim().strip_prefix(name).unwrap_or_else(|| panic!("expected {name}, got {line:?}"));
            value.trim().parse::<SocketAddr>().expect("an address")
        };
        let listen = field("LISTEN");
        let control = field("CONTROL");
        Sim { child: Some(child), listen, control }
    }

    /// Sends one control command; returns the reply line.
    pub fn control(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(self.control).expect("control channel");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(stream, "{command}").unwrap();
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).expect("a reply");
        reply.trim().to_string()
    }

    /// kill -9, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}
