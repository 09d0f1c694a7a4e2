//! The files an init system uses: the BusyBox/sysvinit script driven for
//! real (start, status, reload, stop) against the built binary and two
//! simulators, and the systemd units checked for what the service needs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::gateway::{config_text, free_port, scratch_dir};
use common::sim::Sim;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/board/sysvinit/ctigw");

fn init(action: &str, env: &[(&str, String)]) -> (bool, String) {
    let out = Command::new("sh").arg(SCRIPT).arg(action).envs(env.iter().map(|(k, v)| (*k, v))).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn wait_for(path: &std::path::Path, text: &str) -> String {
    for _ in 0..500 {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(text) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{}: no {text:?}: {}", path.display(), std::fs::read_to_string(path).unwrap_or_default());
}

#[test]
fn the_init_script_starts_reloads_and_stops_the_gateway() {
    if std::env::var_os("CTIGW_TEST_RUNNER").is_some() {
        // The script runs the board's binary directly; under qemu-user the
        // binary needs its emulator in front. The same script is run on
        // the host build.
        eprintln!("skipped under CTIGW_TEST_RUNNER");
        return;
    }
    let sim = Sim::start(&[]);
    let dir = scratch_dir("initscript");
    let config = dir.join("ctigw.conf");
    std::fs::write(&config, config_text(free_port(), &[sim.listen], "")).unwrap();
    let log = dir.join("ctigw.log");
    let env = [
        ("DAEMON", env!("CARGO_BIN_EXE_ctigw").to_string()),
        ("CONFIG", config.display().to_string()),
        ("RUNDIR", dir.join("run").display().to_string()),
        ("RUNAS", "root".to_string()),
        ("LOGFILE", log.display().to_string()),
        ("RUST_LOG", String::new()),
    ];
    assert_eq!(init("status", &env), (false, "ctigw: not running\n".to_string()));
    let (ok, out) = init("start", &env);
    assert!(ok && out.starts_with("ctigw: started ("), "{out}");
    wait_for(&log, "node 1: up");
    let (ok, out) = init("status", &env);
    assert!(ok && out.starts_with("ctigw: running ("), "{out}");
    let (ok, out) = init("start", &env);
    assert!(ok && out.contains("already running"), "{out}");

    let (ok, out) = init("reload", &env);
    assert!(ok, "{out}");
    wait_for(&log, "reload: ");

    let (ok, out) = init("stop", &env);
    assert!(ok && out.contains("ctigw: stopped"), "{out}");
    let log_text = wait_for(&log, "SIGTERM: stopped in");
    assert!(!log_text.contains("killing"), "{log_text}");
    assert!(!init("status", &env).0, "not running after stop");
}

#[test]
fn the_systemd_units_run_unprivileged_with_notify_reload_and_restart() {
    for board in ["aarch64", "armv7", "x86_64"] {
        let path = format!("{}/board/{board}/ctigw.service", env!("CARGO_MANIFEST_DIR"));
        let unit = std::fs::read_to_string(&path).unwrap();
        let has = |line: &str| unit.lines().any(|l| l.trim() == line);
        for line in [
            "Type=notify",
            "ExecStart=/usr/sbin/ctigw --config /etc/ctigw/ctigw.conf",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "User=ctigw",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
            "NoNewPrivileges=yes",
        ] {
            assert!(has(line), "{path}: no {line:?}");
        }
        // The stop grace of ctigw (5 s) fits inside systemd's.
        let stop: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .and_then(|v| v.trim_end_matches('s').parse().ok())
            .expect("TimeoutStopSec");
        assert!(stop > 5, "{path}: TimeoutStopSec={stop}");
    }
}

/// The board's README shows where each byte goes as this very build
/// computes it (`ctigw --budget`: `size_of` of each table's entries times
/// the board's capacities), so the table cannot drift from the code. Under
/// `make test-arm` the ARM binaries answer for their own boards.
#[test]
fn the_board_readme_shows_this_builds_budget() {
    let out = common::binary(env!("CARGO_BIN_EXE_ctigw")).arg("--budget").output().unwrap();
    assert!(out.status.success());
    let budget = String::from_utf8(out.stdout).unwrap();
    let board = ctigw::board::BOARD;
    assert!(budget.contains(&format!("board {board}:")) && budget.contains("| session strings"), "{budget}");
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/board/");
    let readme = std::fs::read_to_string(format!("{readme}{board}/README.md")).unwrap();
    assert!(
        readme.contains(&budget),
        "board/{board}/README.md does not show this build's `ctigw --budget`; paste it:\n{budget}"
    );
}
