//! Runs a `ctigw` process with a generated configuration for the tests.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A private folder for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctigw-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration for a gateway on `port` with these CTI nodes and the
/// demo directory's line appearances; no admin endpoint unless `extra`
/// has an `[admin]` section.
pub fn config_text(port: u16, nodes: &[SocketAddr], extra: &str) -> String {
    let lines = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf");
    let mut text = format!("[sip]\nlisten = 127.0.0.1:{port}\nhost = 127.0.0.1\ntrusted = 127.0.0.1\n{extra}\n[cti]\n");
    for n in nodes {
        text.push_str(&format!("node = {n}\n"));
    }
    text.push_str("heartbeat_interval = 2s\nreconnect_interval = 1s\nrequest_timeout = 2s\nconnect_timeout = 1s\n");
    text.push_str(&format!("[log]\nlevel = info\n[lines]\nfile = {lines}\n"));
    if !extra.contains("[admin]") {
        // Not on the default 127.0.0.1:8080: tests run side by side.
        text.push_str("[admin]\nlisten = off\n");
    }
    text
}

/// One gateway process.
pub struct Gateway {
    child: Option<Child>,
    /// Where it listens for SIP (UDP and TCP).
    pub sip: SocketAddr,
    /// What it logged, collected by a thread.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Gateway {
    /// Starts `ctigw` with `config` and waits until its SIP port answers.
    pub fn start(name: &str, config: &str) -> Gateway {
        Gateway::start_with_env(name, config, &[])
    }

    /// [`Gateway::start`] with more environment variables.
    pub fn start_with_env(name: &str, config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = scratch_dir(name);
        let path = dir.join("ctigw.conf");
        std::fs::write(&path, config).unwrap();
        let port: u16 = config
            .lines()
            .find_map(|l| l.strip_prefix("listen = 127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
            .expect("a listen line");
        let mut child = super::binary(env!("CARGO_BIN_EXE_ctigw"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctigw starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Ready when it answers OPTIONS over UDP (a TCP probe would hold
        // one of its connection slots for a moment).
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let options = format!(
            "OPTIONS sip:ctigw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKready\r\nFrom: <sip:t@example.com>;tag=r\r\n\
             To: <sip:ctigw@127.0.0.1>\r\nCall-ID: ready\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            probe.local_addr().unwrap()
        );
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < Duration::from_secs(10), "ctigw did not start answering");
            let _ = probe.send_to(options.as_bytes(), sip);
            let mut buf = [0u8; 1024];
            if probe.recv(&mut buf).is_ok() {
                break;
            }
        }
        Gateway { child: Some(child), sip, log }
    }

    /// Waits until the log has a line containing `text`.
    pub fn wait_log(&self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
            assert!(start.elapsed() < limit, "no log line with {text:?}: {:#?}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = std::process::Command::new("kill").args(["-s", signal, &pid]).status().unwrap();
        assert!(status.success(), "kill -s {signal} {pid}");
    }

    /// Waits up to `limit` for the process to exit; its status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The process's resident memory now, in KiB (under qemu-user, the
    /// emulator's included).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// The log so far, one string.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// kill -9, and wait.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `ctigw-demo` against `gateway` with `args`.
pub fn demo(gateway: SocketAddr, args: &[&str]) -> Output {
    super::binary(env!("CARGO_BIN_EXE_ctigw-demo"))
        .arg("--gateway")
        .arg(gateway.to_string())
        .args(args)
        .output()
        .expect("ctigw-demo runs")
}
