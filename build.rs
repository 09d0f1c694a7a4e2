//! Picks the board the build is for and turns its `board/<name>/capacities`
//! into constants (`src/board.rs` includes them), so the fixed tables fit
//! the board's memory.
//!
//! The board is `CTIGW_BOARD` when set (the Makefile's `BOARD`), otherwise
//! the board whose `target` file names the target being built, otherwise
//! the board of the target's architecture (`x86_64` for anything else).

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::Path;

/// Every key a capacities file must set, with the constant it becomes.
const KEYS: [(&str, &str); 12] = [
    ("sessions", "SESSIONS"),
    ("pending", "PENDING"),
    ("client_transactions", "CLIENT_TRANSACTIONS"),
    ("completed", "COMPLETED"),
    ("out_queue", "OUT_QUEUE"),
    ("message_size", "MESSAGE_SIZE"),
    ("session_store", "SESSION_STORE"),
    ("transaction_store", "TRANSACTION_STORE"),
    ("queue_store", "QUEUE_STORE"),
    ("tcp_connections", "TCP_CONNECTIONS"),
    ("tcp_receive", "TCP_RECEIVE"),
    ("tcp_transmit", "TCP_TRANSMIT"),
];

fn main() {
    println!("cargo:rerun-if-changed=board");
    println!("cargo:rerun-if-env-changed=CTIGW_BOARD");
    let target = env::var("TARGET").unwrap_or_default();
    let board = env::var("CTIGW_BOARD").ok().filter(|b| !b.is_empty()).unwrap_or_else(|| board_for(&target));
    let path = format!("board/{board}/capacities");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: cannot read: {e} (BOARD={board})")));
    let mut values = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{path}:{}", n + 1);
        let Some((key, value)) = line.split_once('=') else { fail(&format!("{at}: expected `key = value`")) };
        let key = key.trim();
        if !KEYS.iter().any(|(k, _)| *k == key) {
            fail(&format!("{at}: unknown key {key:?}"));
        }
        let value: usize = value
            .trim()
            .parse()
            .ok()
            .filter(|&v| v > 0)
            .unwrap_or_else(|| fail(&format!("{at}: {key} must be a positive whole number")));
        // One slot of the outgoing queue is kept for answers, so the
        // gateway's own BYEs need a second.
        if key == "out_queue" && value < 2 {
            fail(&format!("{at}: out_queue must be at least 2"));
        }
        if values.insert(key, value).is_some() {
            fail(&format!("{at}: {key} set twice"));
        }
    }
    // The stores must hold the largest message, and a session's longest
    // strings (four URIs of 192 bytes, a Call-ID of 128, two tags of 64,
    // a route set of 1,024).
    let size = |key: &str| values.get(key).copied().unwrap_or(0);
    for key in ["transaction_store", "queue_store"] {
        if size(key) < size("message_size") {
            fail(&format!("{path}: {key} must hold at least one message of message_size bytes"));
        }
    }
    if values.contains_key("session_store") && size("session_store") < 2048 {
        fail(&format!("{path}: session_store must hold at least one session's longest strings (2048 bytes)"));
    }
    let mut out = format!("/// The board this build is for (`board/{board}/`).\npub const BOARD: &str = {board:?};\n");
    for (key, name) in KEYS {
        let value = values.get(key).unwrap_or_else(|| fail(&format!("{path}: {key} is not set")));
        out.push_str(&format!("/// `{key}` of `board/{board}/capacities`.\npub const {name}: usize = {value};\n"));
    }
    let dest = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("board.rs");
    fs::write(&dest, out).unwrap_or_else(|e| fail(&format!("{}: {e}", dest.display())));
}

/// The board whose `target` file is `target`, else by architecture.
fn board_for(target: &str) -> String {
    if let Ok(entries) = fs::read_dir("board") {
        for entry in entries.flatten() {
            let named = fs::read_to_string(entry.path().join("target")).unwrap_or_default();
            if named.trim() == target {
                return entry.file_name().to_string_lossy().into_owned();
            }
        }
    }
    match target.split('-').next().unwrap_or("") {
        "aarch64" => "aarch64",
        arch if arch.starts_with("arm") => "armv7",
        _ => "x86_64",
    }
    .to_string()
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
