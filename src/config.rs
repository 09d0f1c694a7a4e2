//! The boot file, `ctigw.conf`: sections of `key = value` lines.
//!
//! ```text
//! [sip]
//! listen = 127.0.0.1:5060        # UDP and TCP; repeat for more addresses
//! host = gw.example.com          # the gateway's SIP host name
//! trusted = 127.0.0.1            # who may open sessions: addresses or CIDR ranges
//! tcp_idle_timeout = 15m
//! tcp_message_timeout = 10s      # a message must arrive whole within this once begun
//! tcp_connections = 1024         # TCP connection slots (default and most: the board's)
//! sessions = 4096                # session table size (default and most: the board's)
//!
//! [tls]                          # SIP over TLS, mutual authentication; off without this section
//! listen = 127.0.0.1:5061        # repeat for more; default: port 5061 on each [sip] listen address
//! certificate = gw.pem           # the gateway's certificate chain (PEM), relative to this file's folder
//! key = gw.key                   # its private key (PEM: PKCS#8, PKCS#1 or SEC1)
//! ca = lync-ca.pem               # the CA(s) the peers' certificates must chain to (PEM)
//! peer = pool.example.com        # a trusted peer: its certificate's CN or a SAN DNS name; repeat
//! handshake_timeout = 10s        # a peer that has not finished the handshake by then is cut off
//!
//! [cti]
//! node = 127.0.0.1:7001          # 1 to 8 nodes; `mode=system-status` for nodes without
//! node = 127.0.0.1:7002          #   ECMA-354 sessions, `mode=system-register` for a switch that speaks first
//! heartbeat_interval = 30s
//! heartbeat_misses = 2
//! reconnect_interval = 10s
//! request_timeout = 5s
//! withhold = ConferenceCall GenerateDigits  # services never offered to Lync, whatever the nodes support
//! failover = move                # a down node's sessions end with BYE, to sign in on a live one; or `wait`
//!
//! [admin]
//! listen = 127.0.0.1:8080        # the default; `off` for none
//!
//! [log]
//! level = info
//!
//! [lines]
//! file = lines.conf              # relative to this file's folder
//!
//! [dialplan]                     # off without this section: Lync's URIs reach the node as they are
//! to_node = +142555501XX strip=9 # numbers Lync dials, to the node's dial strings; first match wins
//! to_node = +! strip=1 prefix=9011
//! to_lync = 1XX prefix=+14255550 # numbers the node reports, to E.164 for Lync
//! ```
//!
//! With `[dialplan]`, the user's own line goes to the node as the device
//! of its appearance in the line file (see [`crate::dialplan`] for rules).
//!
//! Every fault is reported, each as `file:line: what is wrong`; nothing in
//! a bad file is half applied. The files of `[tls]` must exist when the
//! configuration is read; their contents are checked when the TLS server
//! is built (`ctigw --check-config`, and at start). A build without the
//! cargo feature `tls` refuses a `[tls]` section. Configuration is read
//! once at boot, so this module uses the heap freely.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::csta::{Service, Services};
use crate::cti::{MAX_NODES, NodeConfig, Protocol, SessionMode, Timing};
use crate::dialplan::{DialPlan, Direction, Rule};
use crate::rcc::Failover;

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/ctigw/ctigw.conf";
/// Where the admin endpoint listens unless told otherwise: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8080";

/// An address range of trusted SIP peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside the range (IPv4-mapped IPv6 addresses
    /// count as their IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or(format!("bad prefix length in {text:?}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

/// The `[tls]` section: SIP over TLS with mutual authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// Where to listen for TLS (TCP); at least one.
    pub listen: Vec<SocketAddr>,
    /// The gateway's certificate chain, PEM.
    pub certificate: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The CA certificates a peer's certificate must chain to, PEM.
    pub ca: PathBuf,
    /// The trusted peers' names (lowercase): a peer's certificate must
    /// carry one as its subject CN or a SAN DNS name.
    pub peers: Vec<String>,
    /// A handshake not finished within this closes the connection.
    pub handshake_timeout: Duration,
}

/// The TLS port when `[tls]` names no listen address.
pub const DEFAULT_TLS_PORT: u16 = 5061;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the configuration was read from.
    pub path: PathBuf,
    /// SIP listen addresses, each for UDP and TCP.
    pub sip_listen: Vec<SocketAddr>,
    /// The gateway's SIP host name (Contact, Via, From of its requests).
    pub sip_host: String,
    /// Sources allowed to open sessions.
    pub trusted: Vec<Cidr>,
    /// Idle TCP connections are closed after this long.
    pub tcp_idle_timeout: Duration,
    /// A TCP message begun but not whole after this closes its connection.
    pub tcp_message_timeout: Duration,
    /// TCP connection slots; connections beyond them are refused.
    pub tcp_connections: usize,
    /// Sessions the table holds; INVITEs beyond them get 503.
    pub sessions: usize,
    /// The CTI nodes, at most eight.
    pub nodes: Vec<NodeConfig>,
    /// The CTI timers.
    pub timing: Timing,
    /// The services Lync may be offered: all the gateway relays, less
    /// those `[cti] withhold` names.
    pub services: Services,
    /// What happens to a node's sessions when it goes down.
    pub failover: Failover,
    /// Where the admin endpoint listens ([`DEFAULT_ADMIN_LISTEN`] unless
    /// set), or `None` for `listen = off`.
    pub admin_listen: Option<SocketAddr>,
    /// The log level (`RUST_LOG` overrides it).
    pub log_level: log::LevelFilter,
    /// The line-appearance file.
    pub lines_file: PathBuf,
    /// SIP over TLS, when the `[tls]` section is there.
    pub tls: Option<TlsConfig>,
    /// Number and device translation, when the `[dialplan]` section is
    /// there; without it Lync's URIs pass to the node unchanged.
    pub dialplan: Option<DialPlan>,
}

/// One fault in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based), or 0 for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Parses a duration: a number and a unit, `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 30s, 15m)"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "" => return Err(format!("{text:?} needs a unit: ms, s, m or h")),
        other => return Err(format!("unknown unit {other:?} in {text:?} (ms, s, m or h)")),
    };
    ms.map(Duration::from_millis).ok_or(format!("{text:?} is too long"))
}

fn parse_level(text: &str) -> Result<log::LevelFilter, String> {
    match text.to_ascii_lowercase().as_str() {
        "off" => Ok(log::LevelFilter::Off),
        "error" => Ok(log::LevelFilter::Error),
        "warn" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        "trace" => Ok(log::LevelFilter::Trace),
        _ => Err(format!("{text:?} is not a log level (error, warn, info, debug, trace)")),
    }
}

fn parse_node(text: &str) -> Result<NodeConfig, String> {
    let mut words = text.split_whitespace();
    let addr = words.next().unwrap_or("");
    let addr: SocketAddr = addr.parse().map_err(|_| format!("{addr:?} is not an address:port"))?;
    let mut mode = SessionMode::Ecma354;
    for option in words {
        match option {
            // The one protocol there is; named so that a configuration
            // can say it.
            "protocol=csta-xml" => {}
            "mode=ecma354" => mode = SessionMode::Ecma354,
            "mode=system-status" => mode = SessionMode::SystemStatus,
            "mode=system-register" => mode = SessionMode::SystemRegister,
            other if other.starts_with("protocol=") => {
                return Err(format!("unknown CTI protocol {other:?} (protocol=csta-xml)"));
            }
            other => {
                return Err(format!(
                    "unknown node option {other:?} (protocol=csta-xml, mode=ecma354, mode=system-status or mode=system-register)"
                ));
            }
        }
    }
    Ok(NodeConfig { addr, protocol: Protocol::CstaXml(mode) })
}

/// Keys that may be given more than once.
const REPEATABLE: [&str; 7] =
    ["sip.listen", "sip.trusted", "cti.node", "tls.listen", "tls.peer", "dialplan.to_node", "dialplan.to_lync"];
/// Every key, as `section.key`.
const KEYS: [&str; 26] = [
    "sip.listen",
    "sip.host",
    "sip.trusted",
    "sip.tcp_idle_timeout",
    "sip.tcp_message_timeout",
    "sip.tcp_connections",
    "sip.sessions",
    "cti.node",
    "cti.heartbeat_interval",
    "cti.heartbeat_misses",
    "cti.reconnect_interval",
    "cti.request_timeout",
    "cti.connect_timeout",
    "cti.withhold",
    "cti.failover",
    "admin.listen",
    "log.level",
    "lines.file",
    "tls.listen",
    "tls.certificate",
    "tls.key",
    "tls.ca",
    "tls.peer",
    "tls.handshake_timeout",
    "dialplan.to_node",
    "dialplan.to_lync",
];

/// A file `[tls]` names, relative to the configuration's folder; it must
/// exist (its contents are read when the TLS server is built).
fn tls_file(dir: &Path, what: &str, value: &str) -> Result<PathBuf, String> {
    let path = dir.join(value);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(format!("{what} {}: not a file", path.display())),
        Err(e) => Err(format!("{what} {}: {e}", path.display())),
    }
}

impl Config {
    /// Reads and checks `path`. The line-appearance file it names is not
    /// read here; see [`Config::lines_file`].
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError { file: path.to_path_buf(), line: 0, message: format!("cannot read: {e}") }]
        })?;
        Config::parse(path, &text)
    }

    /// Parses the text of a configuration file read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut config = Config {
            path: path.to_path_buf(),
            sip_listen: Vec::new(),
            sip_host: String::new(),
            trusted: Vec::new(),
            tcp_idle_timeout: Duration::from_secs(15 * 60),
            tcp_message_timeout: Duration::from_secs(10),
            tcp_connections: crate::board::TCP_CONNECTIONS,
            sessions: crate::board::SESSIONS,
            nodes: Vec::new(),
            timing: Timing::default(),
            services: Services::all(),
            failover: Failover::Move,
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().ok(),
            log_level: log::LevelFilter::Info,
            lines_file: dir.join("lines.conf"),
            tls: None,
            dialplan: None,
        };
        // `[tls]`: where its header is, whether a peer is named, its keys.
        let (mut tls_line, mut tls_peer_given) = (None, false);
        let mut tls = TlsConfig {
            listen: Vec::new(),
            certificate: PathBuf::new(),
            key: PathBuf::new(),
            ca: PathBuf::new(),
            peers: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
        };
        let mut errors = Vec::new();
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut section = String::new();
        let mut node_lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let mut fail = |message: String| errors.push(ConfigError { file: path.to_path_buf(), line, message });
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            if let Some(name) = content.strip_prefix('[') {
                match name.strip_suffix(']').map(str::trim) {
                    Some(name @ ("sip" | "cti" | "admin" | "log" | "lines")) => section = name.to_string(),
                    Some("dialplan") => {
                        section = "dialplan".to_string();
                        config.dialplan.get_or_insert_with(DialPlan::new);
                    }
                    Some("tls") => {
                        section = "tls".to_string();
                        if !cfg!(feature = "tls") {
                            fail("[tls]: this ctigw was built without TLS (cargo feature `tls`)".to_string());
                        } else if tls_line.is_none() {
                            tls_line = Some(line);
                        }
                    }
                    Some(other) => {
                        fail(format!("unknown section [{other}] (sip, tls, cti, admin, log, lines, dialplan)"))
                    }
                    None => fail(format!("malformed section header {content:?}")),
                }
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                fail(format!("expected `key = value`, found {content:?}"));
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if section.is_empty() {
                fail(format!("key {key:?} before any [section]"));
                continue;
            }
            if section == "tls" && !cfg!(feature = "tls") {
                continue; // the section itself is the error
            }
            let full = format!("{section}.{key}");
            if !KEYS.contains(&full.as_str()) {
                fail(format!("unknown key {key:?} in [{section}]"));
                continue;
            }
            if !REPEATABLE.contains(&full.as_str()) {
                if let Some((_, first)) = seen.iter().find(|(k, _)| *k == full) {
                    fail(format!("duplicate key {key:?} in [{section}] (first on line {first})"));
                    continue;
                }
                seen.push((full.clone(), line));
            }
            if value.is_empty() {
                fail(format!("{key:?} has no value"));
                continue;
            }
            let result: Result<(), String> = (|| {
                match full.as_str() {
                    "sip.listen" => {
                        config.sip_listen.push(value.parse().map_err(|_| format!("{value:?} is not an address:port"))?)
                    }
                    "sip.host" => {
                        if value.contains(|c: char| c.is_whitespace() || "<>\";@".contains(c)) {
                            return Err(format!("{value:?} is not a host name"));
                        }
                        config.sip_host = value.to_string();
                    }
                    "sip.trusted" => config.trusted.push(Cidr::parse(value)?),
                    "sip.tcp_idle_timeout" => config.tcp_idle_timeout = parse_duration(value)?,
                    "sip.tcp_message_timeout" => config.tcp_message_timeout = parse_duration(value)?,
                    "sip.tcp_connections" => {
                        config.tcp_connections =
                            value.parse().ok().filter(|n| (1..=crate::board::TCP_CONNECTIONS).contains(n)).ok_or(
                                format!(
                                    "{value:?} is not a number of connections from 1 to {} (the {} board's slots)",
                                    crate::board::TCP_CONNECTIONS,
                                    crate::board::BOARD
                                ),
                            )?
                    }
                    "sip.sessions" => {
                        config.sessions =
                            value.parse().ok().filter(|n| (1..=crate::board::SESSIONS).contains(n)).ok_or(format!(
                                "{value:?} is not a number of sessions from 1 to {} (the {} board's table)",
                                crate::board::SESSIONS,
                                crate::board::BOARD
                            ))?
                    }
                    "cti.node" => {
                        config.nodes.push(parse_node(value)?);
                        node_lines.push(line);
                    }
                    "cti.heartbeat_interval" => config.timing.heartbeat_interval = parse_duration(value)?,
                    "cti.heartbeat_misses" => {
                        config.timing.heartbeat_misses = value
                            .parse()
                            .ok()
                            .filter(|&n| n >= 1)
                            .ok_or(format!("{value:?} is not a count of 1 or more"))?
                    }
                    "cti.reconnect_interval" => config.timing.reconnect_interval = parse_duration(value)?,
                    "cti.request_timeout" => config.timing.request_timeout = parse_duration(value)?,
                    "cti.connect_timeout" => config.timing.connect_timeout = parse_duration(value)?,
                    "cti.failover" => {
                        config.failover = Failover::parse(value)
                            .ok_or(format!("{value:?} is not a failover policy (move or wait)"))?
                    }
                    "cti.withhold" => {
                        for name in value.split([',', ' ']).filter(|n| !n.is_empty()) {
                            let service = Service::from_request_name(name).ok_or(format!(
                                "{name:?} is not a service the gateway relays (MakeCall, ConferenceCall, \
                                 GenerateDigits...: the CSTA request names)"
                            ))?;
                            if matches!(service, Service::GetCstaFeatures | Service::RequestSystemStatus) {
                                return Err(format!("{name} is answered by the gateway itself and cannot be withheld"));
                            }
                            config.services = config.services.without(service);
                        }
                    }
                    "admin.listen" if value == "off" => config.admin_listen = None,
                    "admin.listen" => {
                        config.admin_listen =
                            Some(value.parse().map_err(|_| format!("{value:?} is not an address:port, or off"))?)
                    }
                    "log.level" => config.log_level = parse_level(value)?,
                    "lines.file" => config.lines_file = dir.join(value),
                    "tls.listen" => {
                        tls.listen.push(value.parse().map_err(|_| format!("{value:?} is not an address:port"))?)
                    }
                    "tls.certificate" => tls.certificate = tls_file(&dir, "certificate", value)?,
                    "tls.key" => tls.key = tls_file(&dir, "key", value)?,
                    "tls.ca" => tls.ca = tls_file(&dir, "CA", value)?,
                    "tls.peer" => {
                        tls_peer_given = true;
                        tls.peers.push(crate::tls::names::peer_name(value)?)
                    }
                    "tls.handshake_timeout" => tls.handshake_timeout = parse_duration(value)?,
                    "dialplan.to_node" | "dialplan.to_lync" => {
                        let direction = if key == "to_node" { Direction::ToNode } else { Direction::ToLync };
                        let rule = Rule::parse(value)?;
                        config.dialplan.get_or_insert_with(DialPlan::new).push(direction, rule);
                    }
                    _ => unreachable!("key list checked above"),
                }
                Ok(())
            })();
            if let Err(message) = result {
                fail(message);
            }
        }
        let whole = |message: &str| ConfigError { file: path.to_path_buf(), line: 0, message: message.to_string() };
        if node_lines.len() > MAX_NODES {
            let line = node_lines[MAX_NODES];
            errors.push(ConfigError {
                file: path.to_path_buf(),
                line,
                message: format!("a ninth CTI node: at most {MAX_NODES} nodes"),
            });
        }
        if config.nodes.is_empty() {
            errors.push(whole("no CTI node: add `node = address:port` under [cti]"));
        }
        if config.sip_listen.is_empty() {
            errors.push(whole("no SIP listen address: add `listen = address:port` under [sip]"));
        }
        for (i, a) in config.nodes.iter().enumerate() {
            if config.nodes[..i].iter().any(|b| b.addr == a.addr) {
                errors.push(ConfigError {
                    file: path.to_path_buf(),
                    line: node_lines[i],
                    message: format!("CTI node {} listed twice", a.addr),
                });
            }
        }
        if let Some(line) = tls_line {
            let mut missing = |what: &str| {
                errors.push(ConfigError { file: path.to_path_buf(), line, message: format!("[tls] needs {what}") })
            };
            for (key, what) in [
                ("tls.certificate", "`certificate = file` (the gateway's certificate chain, PEM)"),
                ("tls.key", "`key = file` (the gateway's private key, PEM)"),
                ("tls.ca", "`ca = file` (the CA of the peers' certificates, PEM)"),
                ("tls.peer", "`peer = name` (a trusted peer: the Lync pool's FQDN; repeat for more)"),
            ] {
                if !(seen.iter().any(|(k, _)| k == key) || key == "tls.peer" && tls_peer_given) {
                    missing(what);
                }
            }
            if tls.listen.is_empty() {
                tls.listen = config.sip_listen.iter().map(|a| SocketAddr::new(a.ip(), DEFAULT_TLS_PORT)).collect();
            }
            config.tls = Some(tls);
        }
        if config.sip_host.is_empty() {
            config.sip_host = config.sip_listen.first().map_or("localhost".to_string(), |a| match a {
                SocketAddr::V4(v4) => v4.ip().to_string(),
                SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            });
        }
        if errors.is_empty() { Ok(config) } else { Err(errors) }
    }

    /// True when `ip` may open sessions.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(Path::new("/etc/ctigw/ctigw.conf"), text).map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn the_embedded_default_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/ctigw.conf");
        let c = Config::load(Path::new(path)).unwrap();
        assert_eq!(c.sip_listen, ["127.0.0.1:5060".parse().unwrap()]);
        assert_eq!(c.nodes.len(), 2);
        assert!(c.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(!c.is_trusted("192.0.2.1".parse().unwrap()));
        assert!(c.lines_file.ends_with("config/lines.conf"));
    }

    #[test]
    fn every_value() {
        let c = parse(
            "[sip]\nlisten = 127.0.0.1:5060\nlisten = [::1]:5060\nhost = gw.example.com\ntrusted = 10.0.0.0/8\ntrusted = ::1\n\
             tcp_idle_timeout = 2m\ntcp_connections = 8\n[cti]\nnode = 127.0.0.1:7001\nnode = 127.0.0.1:7002 mode=system-status\n\
             heartbeat_interval = 500ms\nheartbeat_misses = 3\nreconnect_interval = 1s\nrequest_timeout = 2s\n\
             connect_timeout = 1s\n[admin]\nlisten = 127.0.0.1:8080\n[log]\nlevel = debug\n[lines]\nfile = users.conf\n",
        )
        .unwrap();
        assert_eq!(c.sip_listen.len(), 2);
        assert_eq!(c.sip_host, "gw.example.com");
        assert!(c.is_trusted("10.1.2.3".parse().unwrap()) && c.is_trusted("::1".parse().unwrap()));
        assert!(c.is_trusted("::ffff:10.9.9.9".parse().unwrap()), "IPv4-mapped");
        assert!(!c.is_trusted("11.0.0.1".parse().unwrap()));
        assert_eq!(c.tcp_idle_timeout, Duration::from_secs(120));
        assert_eq!(c.tcp_connections, 8);
        assert_eq!(c.nodes[1].protocol, Protocol::CstaXml(SessionMode::SystemStatus));
        assert_eq!(c.timing.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.timing.heartbeat_misses, 3);
        assert_eq!(c.admin_listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(c.log_level, log::LevelFilter::Debug);
        assert_eq!(c.lines_file, Path::new("/etc/ctigw/users.conf"));
    }

    #[test]
    fn every_fault_is_reported_with_its_line() {
        let errors = parse(
            "listen = 1.2.3.4:5\n[sip]\nlisten = nowhere\nlisen = 127.0.0.1:5060\nhost = a b\n[cti]\nheartbeat_interval = 30\n\
             heartbeat_interval = 30s\nheartbeat_interval = 31s\nheartbeat_misses = 0\nnode = 127.0.0.1:1 mode=fast\n[bogus]\n\
             just text\n[log]\nlevel = loud\n",
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "/etc/ctigw/ctigw.conf:1: key \"listen\" before any [section]",
                "/etc/ctigw/ctigw.conf:3: \"nowhere\" is not an address:port",
                "/etc/ctigw/ctigw.conf:4: unknown key \"lisen\" in [sip]",
                "/etc/ctigw/ctigw.conf:5: \"a b\" is not a host name",
                "/etc/ctigw/ctigw.conf:7: \"30\" needs a unit: ms, s, m or h",
                "/etc/ctigw/ctigw.conf:8: duplicate key \"heartbeat_interval\" in [cti] (first on line 7)",
                "/etc/ctigw/ctigw.conf:9: duplicate key \"heartbeat_interval\" in [cti] (first on line 7)",
                "/etc/ctigw/ctigw.conf:10: \"0\" is not a count of 1 or more",
                "/etc/ctigw/ctigw.conf:11: unknown node option \"mode=fast\" (protocol=csta-xml, mode=ecma354, mode=system-status or mode=system-register)",
                "/etc/ctigw/ctigw.conf:12: unknown section [bogus] (sip, tls, cti, admin, log, lines, dialplan)",
                "/etc/ctigw/ctigw.conf:13: expected `key = value`, found \"just text\"",
                "/etc/ctigw/ctigw.conf:15: \"loud\" is not a log level (error, warn, info, debug, trace)",
                "/etc/ctigw/ctigw.conf: no CTI node: add `node = address:port` under [cti]",
                "/etc/ctigw/ctigw.conf: no SIP listen address: add `listen = address:port` under [sip]",
            ]
        );
    }

    #[test]
    fn a_node_names_its_protocol_or_gets_csta_xml() {
        let path = Path::new("/etc/ctigw/ctigw.conf");
        let text = "[sip]\nlisten = 127.0.0.1:5060\n[cti]\nnode = 127.0.0.1:7001\n\
                    node = 127.0.0.1:7002 protocol=csta-xml mode=system-status\n";
        let c = Config::parse(path, text).unwrap();
        assert_eq!(c.nodes[0].protocol, Protocol::CstaXml(SessionMode::Ecma354));
        assert_eq!(c.nodes[1].protocol, Protocol::CstaXml(SessionMode::SystemStatus));
        assert_eq!(c.nodes[1].protocol.name(), "csta-xml");
        let errors = Config::parse(path, &text.replace("protocol=csta-xml", "protocol=ctiqbe")).unwrap_err();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            ["/etc/ctigw/ctigw.conf:5: unknown CTI protocol \"protocol=ctiqbe\" (protocol=csta-xml)".to_string()]
        );
    }

    #[test]
    fn the_dial_plans_appliance_conf_shows_parse_and_translate() {
        // Its two commented examples, uncommented: the documentation stays true.
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/appliance.conf")).unwrap();
        let base = "[sip]\nlisten = 127.0.0.1:5060\n[cti]\nnode = 127.0.0.1:7001\n";
        let plans: Vec<DialPlan> = text
            .split("# [dialplan]\n")
            .skip(1)
            .map(|block| {
                let rules: String =
                    block.lines().filter_map(|l| l.strip_prefix("# to_")).map(|r| format!("to_{r}\n")).collect();
                Config::parse(Path::new("appliance.conf"), &format!("{base}[dialplan]\n{rules}"))
                    .unwrap()
                    .dialplan
                    .unwrap()
            })
            .collect();
        assert_eq!(plans.len(), 2);
        let (extensions, openscape) = (&plans[0], &plans[1]);
        assert_eq!(extensions.apply(Direction::ToNode, "+14255559876").as_deref(), Some("914255559876"));
        assert_eq!(extensions.apply(Direction::ToNode, "+14255550101").as_deref(), Some("101"));
        assert_eq!(extensions.apply(Direction::ToLync, "4255559876").as_deref(), Some("+14255559876"));
        assert_eq!(openscape.apply(Direction::ToNode, "101").as_deref(), Some("+14255550101"));
        assert_eq!(openscape.apply(Direction::ToLync, "14255550101").as_deref(), Some("+14255550101"));
    }

    #[test]
    fn services_withheld_from_lync() {
        let path = Path::new("/etc/ctigw/ctigw.conf");
        let base = "[sip]\nlisten = 127.0.0.1:5060\n[cti]\nnode = 127.0.0.1:7001\n";
        assert_eq!(Config::parse(path, base).unwrap().services, Services::all());
        let c = Config::parse(path, &format!("{base}withhold = ConferenceCall, GenerateDigits\n")).unwrap();
        assert!(!c.services.contains(Service::ConferenceCall) && !c.services.contains(Service::GenerateDigits));
        assert_eq!(c.services.iter().count(), Service::ALL.len() - 2);
        for (value, why) in [
            (
                "Conference",
                "\"Conference\" is not a service the gateway relays (MakeCall, ConferenceCall, GenerateDigits...: the CSTA request names)",
            ),
            ("GetCSTAFeatures", "GetCSTAFeatures is answered by the gateway itself and cannot be withheld"),
        ] {
            let errors = Config::parse(path, &format!("{base}withhold = {value}\n")).unwrap_err();
            assert_eq!(errors[0].to_string(), format!("/etc/ctigw/ctigw.conf:5: {why}"));
        }
    }

    #[test]
    fn the_dial_plan_section_and_its_faults_at_their_lines() {
        let path = Path::new("/etc/ctigw/ctigw.conf");
        let base = "[sip]\nlisten = 127.0.0.1:5060\n[cti]\nnode = 127.0.0.1:7001\n";
        assert_eq!(Config::parse(path, base).unwrap().dialplan, None, "no section: no translation");
        let text = format!(
            "{base}[dialplan]\nto_node = 1XX\nto_node = +! strip=1 prefix=9011\nto_lync = 1XX prefix=+1425555\n"
        );
        let plan = Config::parse(path, &text).unwrap().dialplan.unwrap();
        assert_eq!(plan.rules(Direction::ToNode).len(), 2);
        assert_eq!(plan.apply(Direction::ToNode, "+3222220220").as_deref(), Some("90113222220220"));
        assert_eq!(plan.apply(Direction::ToLync, "101").as_deref(), Some("+1425555101"));
        let empty = Config::parse(path, &format!("{base}[dialplan]\n")).unwrap().dialplan;
        assert_eq!(empty, Some(DialPlan::new()), "an empty section: translation on, nothing dialled crosses");
        let bad = format!("{base}[dialplan]\nto_node = 1XX strip=5\nto_lync = 1AX\nto_nodes = 1\n");
        let errors: Vec<String> = Config::parse(path, &bad).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "/etc/ctigw/ctigw.conf:6: strip=5 takes more than the 3 characters the pattern 1XX matches at least",
                "/etc/ctigw/ctigw.conf:7: pattern \"1AX\": 'A' is not a digit, X, N, Z, [set], ! or a leading +",
                "/etc/ctigw/ctigw.conf:8: unknown key \"to_nodes\" in [dialplan]",
            ]
        );
    }

    #[test]
    fn the_admin_endpoint_defaults_to_loopback_and_can_be_turned_off() {
        let path = Path::new("/etc/ctigw/ctigw.conf");
        let base = "[sip]\nlisten = 127.0.0.1:5060\n[cti]\nnode = 127.0.0.1:7001\n";
        let c = Config::parse(path, base).unwrap();
        assert_eq!(c.admin_listen, Some("127.0.0.1:8080".parse().unwrap()));
        let c = Config::parse(path, &format!("{base}[admin]\nlisten = off\n")).unwrap();
        assert_eq!(c.admin_listen, None);
        let errors = Config::parse(path, &format!("{base}[admin]\nlisten = everywhere\n")).unwrap_err();
        assert_eq!(errors[0].to_string(), "/etc/ctigw/ctigw.conf:6: \"everywhere\" is not an address:port, or off");
        let errors = Config::parse(path, &format!("{base}[sip]\ntcp_connections = 100000\n")).unwrap_err();
        assert!(errors[0].to_string().contains("the x86_64 board's slots") || !cfg!(target_arch = "x86_64"));
    }

    #[test]
    fn a_ninth_node_and_a_repeated_node() {
        let mut text = "[sip]\nlisten = 127.0.0.1:5060\n[cti]\n".to_string();
        for port in 1..=9 {
            text.push_str(&format!("node = 127.0.0.1:{}\n", 7000 + port));
        }
        text.push_str("node = 127.0.0.1:7001\n");
        let errors = parse(&text).unwrap_err();
        assert_eq!(
            errors,
            [
                "/etc/ctigw/ctigw.conf:12: a ninth CTI node: at most 8 nodes",
                "/etc/ctigw/ctigw.conf:13: CTI node 127.0.0.1:7001 listed twice",
            ]
        );
    }

    /// A folder with the three files `[tls]` names (their contents do not
    /// matter to the parser).
    fn tls_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ctigw-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        for file in ["certs/gw.pem", "certs/gw.key", "certs/ca.pem"] {
            std::fs::write(dir.join(file), "").unwrap();
        }
        dir
    }

    #[cfg(feature = "tls")]
    #[test]
    fn the_tls_section() {
        let dir = tls_dir("tls");
        let path = dir.join("ctigw.conf");
        let base = "[sip]\nlisten = 127.0.0.1:5060\nlisten = [::1]:5060\n[cti]\nnode = 127.0.0.1:7001\n";
        assert_eq!(Config::parse(&path, base).unwrap().tls, None, "off without the section");
        let files = "certificate = certs/gw.pem\nkey = certs/gw.key\nca = certs/ca.pem\n";
        let c =
            Config::parse(&path, &format!("{base}[tls]\n{files}peer = Pool.Example.com\npeer = lync2.example.com.\n"))
                .unwrap();
        let tls = c.tls.unwrap();
        let default_listen: Vec<SocketAddr> = vec!["127.0.0.1:5061".parse().unwrap(), "[::1]:5061".parse().unwrap()];
        assert_eq!(tls.listen, default_listen, "port 5061 on each SIP address");
        assert_eq!(tls.certificate, dir.join("certs/gw.pem"), "relative to the configuration's folder");
        assert_eq!(tls.key, dir.join("certs/gw.key"));
        assert_eq!(tls.ca, dir.join("certs/ca.pem"));
        assert_eq!(tls.peers, ["pool.example.com", "lync2.example.com"]);
        assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
        let c = Config::parse(
            &path,
            &format!(
                "{base}[tls]\nlisten = 127.0.0.1:5071\nlisten = [::1]:5071\n{files}peer = pool.example.com\nhandshake_timeout = 2s\n"
            ),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.listen, ["127.0.0.1:5071".parse().unwrap(), "[::1]:5071".parse().unwrap()]);
        assert_eq!(tls.handshake_timeout, Duration::from_secs(2));

        let text = format!(
            "{base}[tls]\nlisten = here\ncertificate = certs/missing.pem\nkey = certs\nca = certs/ca.pem\nca = certs/ca.pem\n\
             peer = *.example.com\ncolour = blue\n"
        );
        let errors: Vec<String> = Config::parse(&path, &text).unwrap_err().iter().map(ToString::to_string).collect();
        let p = path.display();
        let d = dir.display();
        assert_eq!(
            errors,
            [
                format!("{p}:7: \"here\" is not an address:port"),
                format!("{p}:8: certificate {d}/certs/missing.pem: No such file or directory (os error 2)"),
                format!("{p}:9: key {d}/certs: not a file"),
                format!("{p}:11: duplicate key \"ca\" in [tls] (first on line 10)"),
                format!(
                    "{p}:12: \"*.example.com\" is not a DNS name (the peer's certificate CN or SAN DNS name, no wildcard)"
                ),
                format!("{p}:13: unknown key \"colour\" in [tls]"),
            ]
        );
        let errors: Vec<String> =
            Config::parse(&path, &format!("{base}[tls]\n")).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with(&format!("{p}:6: [tls] needs `certificate = file`")), "{errors:#?}");
        assert!(errors[3].starts_with(&format!("{p}:6: [tls] needs `peer = name`")), "{errors:#?}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_tls_section_is_refused_by_a_build_without_tls() {
        let dir = tls_dir("no-tls");
        let text = "[sip]\nlisten = 127.0.0.1:5060\n[cti]\nnode = 127.0.0.1:7001\n[tls]\ncertificate = certs/gw.pem\n\
                    key = certs/gw.key\nca = certs/ca.pem\npeer = pool.example.com\n";
        let errors = Config::parse(&dir.join("ctigw.conf"), text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 5);
        assert_eq!(errors[0].message, "[tls]: this ctigw was built without TLS (cargo feature `tls`)");
    }

    #[test]
    fn an_unreadable_file() {
        let errors = Config::load(Path::new("/nonexistent/ctigw.conf")).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().starts_with("/nonexistent/ctigw.conf: cannot read:"), "{}", errors[0]);
    }

    #[test]
    fn durations_and_ranges() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("203.0.113.9".parse().unwrap()));
        assert!(!Cidr::parse("192.0.2.0/24").unwrap().contains("::1".parse().unwrap()));
    }
}
