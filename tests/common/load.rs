//! The rig of the load, fault and soak tests: `ctigw-load`'s users (their
//! line files written by `ctigw-load --write-lines`), two simulated nodes
//! that answer outside calls at once, and a gateway for them with its
//! admin endpoint, both nodes up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::admin;
use super::gateway::{Gateway, config_text, free_port, scratch_dir};
use super::sim::Sim;

/// The running rig.
pub struct LoadRig {
    /// Where the line files are.
    pub dir: PathBuf,
    /// The two nodes.
    pub sims: [Sim; 2],
    /// The gateway.
    pub gw: Gateway,
    /// Its admin endpoint.
    pub admin: SocketAddr,
}

impl LoadRig {
    /// Starts the rig for `users` load users; the gateway logs at `log_level`.
    pub fn start(name: &str, users: usize, log_level: &str) -> LoadRig {
        LoadRig::start_with(name, users, log_level, "")
    }

    /// [`LoadRig::start`] with more `[cti]` keys (`failover = wait`).
    pub fn start_with(name: &str, users: usize, log_level: &str, cti: &str) -> LoadRig {
        let dir = scratch_dir(&format!("{name}-lines"));
        let written = super::binary(env!("CARGO_BIN_EXE_ctigw-load"))
            .args(["--write-lines", &users.to_string()])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(written.success());
        let mut rig_sims = Vec::new();
        for _ in 0..2 {
            rig_sims.push(Sim::start(&sim_args(&dir).iter().map(String::as_str).collect::<Vec<_>>()));
        }
        let sims: [Sim; 2] = rig_sims.try_into().unwrap_or_else(|_| unreachable!("two"));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let default_lines = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf");
        let config = config_text(free_port(), &[sims[0].listen, sims[1].listen], &format!("[admin]\nlisten = {admin}"))
            .replace(default_lines, &dir.join("lines.conf").display().to_string())
            .replace("[log]\nlevel = info", &format!("[log]\nlevel = {log_level}"))
            .replace("[cti]\n", &format!("[cti]\n{cti}"));
        let gw = Gateway::start(name, &config);
        let up = Instant::now();
        while admin::metrics(admin).get("ctigw_cti_nodes_up").copied() != Some(2.0) {
            assert!(up.elapsed() < Duration::from_secs(10), "both nodes up");
            std::thread::sleep(Duration::from_millis(50));
        }
        LoadRig { dir, sims, gw, admin }
    }

    /// Starts node `i` again, on its address (after it was killed).
    pub fn restart_sim(&mut self, i: usize) {
        let listen = self.sims[i].listen.to_string();
        let args = sim_args(&self.dir);
        self.sims[i] = Sim::start_on(&listen, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// `ctigw-load` aimed at the gateway.
    pub fn load(&self) -> Command {
        let mut command = super::binary(env!("CARGO_BIN_EXE_ctigw-load"));
        command.args(["--gateway", &self.gw.sip.to_string()]);
        command
    }
}

fn sim_args(dir: &std::path::Path) -> Vec<String> {
    let lines = dir.join("sim-lines.conf").display().to_string();
    vec!["--lines".into(), lines, "--outside".into(), "answer=0".into()]
}
