//! The admin pages, sans I/O: health, metrics in the Prometheus text
//! exposition format 0.0.4, and the nodes and sessions as JSON, written
//! from a [`View`] of the gateway into any [`fmt::Write`].
//!
//! Metric names start with `ctigw_`; counters end with `_total`. Per-node
//! metrics carry the labels `node` (the slot index, 0 to 7; the logs call
//! slot 0 "node 1") and `addr` (the node's address).

use core::fmt::{self, Write as _};
use std::time::Instant;

use super::http::{Page, Status};
use crate::cti::{self, LinkState, Nodes, SlotId};
use crate::rcc::session::SessionRef;
use crate::rcc::{Gateway, Transport};

/// The Content-Type of `/metrics`.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The Content-Type of `/healthz` and of refusals.
pub const TEXT_TYPE: &str = "text/plain; charset=utf-8";
/// The Content-Type of `/nodes` and `/sessions`.
pub const JSON_TYPE: &str = "application/json";

/// The SIP shell's own counters (the sockets, not the core), copied out of
/// [`crate::io::sip::SipOut`] by the shell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipTransport {
    /// TCP connections open now.
    pub tcp_open: usize,
    /// TCP connections refused because every slot was taken.
    pub tcp_refused: u64,
    /// Messages dropped because their connection was gone or congested.
    pub dropped: u64,
    /// SIP bytes received (UDP datagrams and TCP reads).
    pub bytes_received: u64,
    /// SIP bytes handed to the sockets.
    pub bytes_sent: u64,
    /// TLS connections open now (handshakes in progress included).
    pub tls_open: usize,
    /// TLS handshakes finished with a trusted peer.
    pub tls_handshakes: u64,
    /// TLS connections refused, by cause ([`crate::tls::Refusal::index`]).
    pub tls_refused: [u64; crate::tls::Refusal::ALL.len()],
}

/// What the pages are rendered from: a borrow of the gateway, the SIP
/// shell's counters and the time, for one answer.
pub struct View<'a> {
    /// The core.
    pub gateway: &'a Gateway,
    /// The SIP shell's counters.
    pub sip: SipTransport,
    /// Now (for session ages).
    pub now: Instant,
}

/// What an answer is, besides its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendered {
    /// Its status.
    pub status: Status,
    /// Its Content-Type.
    pub content_type: &'static str,
}

/// Writes `page` into `out`; returns its status and type.
pub fn page(page: Page, view: &View<'_>, out: &mut impl fmt::Write) -> Result<Rendered, fmt::Error> {
    let gw = view.gateway;
    Ok(match page {
        Page::Healthz => Rendered { status: health(gw.nodes(), out)?, content_type: TEXT_TYPE },
        Page::Metrics => {
            metrics(view, out)?;
            Rendered { status: Status::Ok, content_type: METRICS_TYPE }
        }
        Page::Nodes => {
            nodes_json(gw.nodes(), out)?;
            Rendered { status: Status::Ok, content_type: JSON_TYPE }
        }
        Page::Sessions => {
            sessions_json(gw.session_count(), gw.session_capacity(), gw.sessions(), view.now, out)?;
            Rendered { status: Status::Ok, content_type: JSON_TYPE }
        }
    })
}

/// The one-line body of a refusal, e.g. `404 Not Found`.
pub fn refusal(status: Status, out: &mut impl fmt::Write) -> fmt::Result {
    writeln!(out, "{status}")
}

/// The health line: 200 while at least one CTI node is up, 503 otherwise.
pub fn health(nodes: &Nodes, out: &mut impl fmt::Write) -> Result<Status, fmt::Error> {
    let configured = nodes.slots().count();
    let up = nodes.slots().filter(|&slot| nodes.state(slot) == LinkState::Up).count();
    if up > 0 {
        writeln!(out, "ok: {up} of {configured} CTI nodes up")?;
        Ok(Status::Ok)
    } else {
        writeln!(out, "no CTI node up (0 of {configured})")?;
        Ok(Status::ServiceUnavailable)
    }
}

/// The SIP request methods, in the order of
/// [`crate::rcc::Counters::requests`].
const METHODS: [&str; 8] = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "other"];
/// The response classes, in the order of [`crate::rcc::Counters::responses`].
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];
/// The link states a node can be in, for `ctigw_cti_node_state`.
const STATES: [LinkState; 4] = [LinkState::Connecting, LinkState::StartingSession, LinkState::Up, LinkState::Down];

type GatewayCounter = fn(&crate::rcc::Counters) -> u64;
type NodeCounter = fn(&cti::Counters) -> u64;

/// The gateway's plain counters: name, help, value.
const GATEWAY_COUNTERS: [(&str, &str, GatewayCounter); 15] = [
    ("ctigw_sessions_opened_total", "Sessions opened.", |c| c.sessions_opened),
    ("ctigw_sessions_closed_total", "Sessions ended, by either side or replaced.", |c| c.sessions_closed),
    ("ctigw_sessions_replaced_total", "Sessions replaced by a newer INVITE of the same user and line.", |c| {
        c.sessions_replaced
    }),
    ("ctigw_sip_malformed_total", "SIP messages that did not parse.", |c| c.malformed),
    ("ctigw_sip_untrusted_ignored_total", "SIP requests from untrusted sources, ignored.", |c| c.untrusted_ignored),
    ("ctigw_sip_responses_ignored_total", "SIP responses answering none of the gateway's requests, ignored.", |c| {
        c.responses_ignored
    }),
    ("ctigw_sip_queue_drops_total", "SIP messages dropped because the outgoing queue was full.", |c| c.transmit_drops),
    (
        "ctigw_sip_completed_evicted_total",
        "Responses kept for UDP retransmissions that made room for newer ones early.",
        |c| c.completed_evicted,
    ),
    ("ctigw_requests_relayed_total", "CSTA requests relayed to a CTI node.", |c| c.relayed),
    ("ctigw_events_relayed_total", "CSTA events relayed to Lync in event INFOs.", |c| c.events_relayed),
    (
        "ctigw_sip_deferred_total",
        "Event INFOs, BYEs and answers held back until their TCP/TLS connection drained.",
        |c| c.deferred,
    ),
    ("ctigw_events_unknown_monitor_total", "CSTA events for no known monitor, dropped.", |c| c.events_unknown),
    ("ctigw_event_info_timeouts_total", "Event INFOs Lync never answered.", |c| c.event_timeouts),
    (
        "ctigw_cti_fields_dropped_total",
        "Parts of CTI events and answers not carried on to Lync (not modelled, or past a capacity).",
        |c| c.fields_dropped,
    ),
    (
        "ctigw_dialplan_untranslated_total",
        "Devices sent to Lync in the node's names: no room left to rewrite them through the dial plan.",
        |c| c.untranslated,
    ),
];

/// INVITE refusals by cause.
const INVITE_REFUSALS: [(&str, GatewayCounter); 5] = [
    ("untrusted_source", |c| c.refused_untrusted),
    ("unknown_user_or_line", |c| c.refused_user),
    ("session_table_full", |c| c.refused_full),
    ("no_cti_node_up", |c| c.refused_no_node),
    ("bad_body", |c| c.refused_body),
];

/// In-session request refusals by cause.
const REQUEST_REFUSALS: [(&str, GatewayCounter); 5] = [
    ("privilege_violation", |c| c.privilege_violations),
    ("dial_plan", |c| c.dialplan_refusals),
    ("service_not_supported", |c| c.unsupported_refusals),
    ("cti_node_down", |c| c.node_down_refusals),
    ("event_backlog", |c| c.backlog_refusals),
];

/// The counters of every CTI link: name, help, value.
const NODE_COUNTERS: [(&str, &str, NodeCounter); 14] = [
    ("ctigw_cti_connects_total", "Times the CTI link came up.", |c| c.connects),
    ("ctigw_cti_connect_failures_total", "TCP connects to the CTI node that failed or timed out.", |c| {
        c.connect_failures
    }),
    ("ctigw_cti_disconnects_total", "Times the CTI link went down after being up.", |c| c.disconnects),
    ("ctigw_cti_heartbeats_sent_total", "Heartbeats sent to the CTI node.", |c| c.heartbeats_sent),
    ("ctigw_cti_heartbeats_missed_total", "Heartbeats the CTI node left unanswered.", |c| c.heartbeats_missed),
    ("ctigw_cti_requests_total", "Requests sent to the CTI node for Lync users.", |c| c.requests),
    ("ctigw_cti_responses_total", "Answers from the CTI node to Lync users' requests.", |c| c.responses),
    ("ctigw_cti_request_timeouts_total", "Lync users' requests the CTI node did not answer in time.", |c| c.timeouts),
    ("ctigw_cti_late_answers_total", "Answers from the CTI node to requests that had timed out.", |c| c.late_answers),
    ("ctigw_cti_events_total", "Events received from the CTI node.", |c| c.events),
    ("ctigw_cti_malformed_total", "Frames from the CTI node whose document did not parse.", |c| c.malformed),
    ("ctigw_cti_events_ignored_total", "Events from the CTI node of kinds the gateway does not relay.", |c| {
        c.events_ignored
    }),
    ("ctigw_cti_received_bytes_total", "Bytes read from the CTI node.", |c| c.bytes_in),
    ("ctigw_cti_sent_bytes_total", "Bytes written to the CTI node.", |c| c.bytes_out),
];

/// A metric family's type.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Writes the exposition format: a family's `# HELP` and `# TYPE`, then
/// its samples, each family once.
struct Exposition<'o, W: fmt::Write> {
    out: &'o mut W,
}

impl<W: fmt::Write> Exposition<'_, W> {
    fn family(&mut self, name: &str, kind: Kind, help: &str) -> fmt::Result {
        write!(self.out, "# HELP {name} ")?;
        for c in help.chars() {
            match c {
                '\\' => self.out.write_str("\\\\")?,
                '\n' => self.out.write_str("\\n")?,
                c => self.out.write_char(c)?,
            }
        }
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        write!(self.out, "\n# TYPE {name} {kind}\n")
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) -> fmt::Result {
        self.out.write_str(name)?;
        if !labels.is_empty() {
            self.out.write_char('{')?;
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.write_char(',')?;
                }
                write!(self.out, "{label}=\"")?;
                for c in text.chars() {
                    match c {
                        '\\' => self.out.write_str("\\\\")?,
                        '"' => self.out.write_str("\\\"")?,
                        '\n' => self.out.write_str("\\n")?,
                        c => self.out.write_char(c)?,
                    }
                }
                self.out.write_char('"')?;
            }
            self.out.write_char('}')?;
        }
        writeln!(self.out, " {value}")
    }

    /// A family of one sample without labels.
    fn single(&mut self, name: &str, kind: Kind, help: &str, value: u64) -> fmt::Result {
        self.family(name, kind, help)?;
        self.sample(name, &[], value)
    }
}

/// A node's labels: its slot index and address, formatted once.
struct NodeLabels {
    slot: SlotId,
    index: heapless::String<4>,
    addr: heapless::String<64>,
}

impl NodeLabels {
    fn of(nodes: &Nodes) -> heapless::Vec<NodeLabels, { cti::MAX_NODES }> {
        let mut all = heapless::Vec::new();
        for slot in nodes.slots() {
            let mut index = heapless::String::new();
            let mut addr = heapless::String::new();
            // Both fit: a slot index is one digit, an address at most 47 characters.
            let _ = write!(index, "{}", slot.index());
            if let Some(a) = nodes.addr(slot) {
                let _ = write!(addr, "{a}");
            }
            let _ = all.push(NodeLabels { slot, index, addr });
        }
        all
    }

    fn pairs(&self) -> [(&str, &str); 2] {
        [("node", self.index.as_str()), ("addr", self.addr.as_str())]
    }
}

/// Every metric, in the Prometheus text exposition format 0.0.4.
pub fn metrics(view: &View<'_>, out: &mut impl fmt::Write) -> fmt::Result {
    let gw = view.gateway;
    let counters = &gw.counters;
    let nodes = gw.nodes();
    let mut m = Exposition { out };
    use Kind::{Counter, Gauge};

    m.family("ctigw_build_info", Gauge, "The gateway's version, as a label; always 1.")?;
    m.sample("ctigw_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1)?;
    m.single("ctigw_sessions_open", Gauge, "Sessions open now.", gw.session_count() as u64)?;
    m.single("ctigw_sessions_capacity", Gauge, "Sessions the table holds.", gw.session_capacity() as u64)?;
    m.family("ctigw_table_in_use", Gauge, "Entries of each fixed table in use now.")?;
    for (table, in_use, _) in gw.tables_in_use() {
        m.sample("ctigw_table_in_use", &[("table", table)], in_use as u64)?;
    }
    m.family("ctigw_table_capacity", Gauge, "Entries each fixed table holds.")?;
    for (table, _, capacity) in gw.tables_in_use() {
        m.sample("ctigw_table_capacity", &[("table", table)], capacity as u64)?;
    }
    let stores = gw.stores();
    m.family("ctigw_store_bytes_in_use", Gauge, "Bytes of each byte store its records take now.")?;
    for (store, usage) in stores {
        m.sample("ctigw_store_bytes_in_use", &[("store", store)], usage.in_use as u64)?;
    }
    m.family(
        "ctigw_store_bytes_high_water",
        Gauge,
        "The most bytes of each byte store ever taken: its resident part.",
    )?;
    for (store, usage) in stores {
        m.sample("ctigw_store_bytes_high_water", &[("store", store)], usage.high_water as u64)?;
    }
    m.family("ctigw_store_bytes", Gauge, "Bytes each byte store holds.")?;
    for (store, usage) in stores {
        m.sample("ctigw_store_bytes", &[("store", store)], usage.capacity as u64)?;
    }
    for (name, help, value) in GATEWAY_COUNTERS {
        m.single(name, Counter, help, value(counters))?;
    }

    m.family("ctigw_sip_requests_total", Counter, "SIP requests received, by method.")?;
    for (method, count) in METHODS.iter().zip(counters.requests) {
        m.sample("ctigw_sip_requests_total", &[("method", method)], count)?;
    }
    m.family("ctigw_sip_responses_total", Counter, "SIP responses sent, by class.")?;
    for (class, count) in CLASSES.iter().zip(counters.responses) {
        m.sample("ctigw_sip_responses_total", &[("class", class)], count)?;
    }
    m.family("ctigw_invites_refused_total", Counter, "INVITEs refused, by cause.")?;
    for (cause, value) in INVITE_REFUSALS {
        m.sample("ctigw_invites_refused_total", &[("cause", cause)], value(counters))?;
    }
    m.family("ctigw_requests_refused_total", Counter, "CSTA requests in a session refused, by cause.")?;
    for (cause, value) in REQUEST_REFUSALS {
        m.sample("ctigw_requests_refused_total", &[("cause", cause)], value(counters))?;
    }

    let sip = &view.sip;
    m.single("ctigw_sip_tcp_connections_open", Gauge, "SIP TCP connections open now.", sip.tcp_open as u64)?;
    let help = "SIP TCP connections refused because every connection slot was taken.";
    m.single("ctigw_sip_tcp_connections_refused_total", Counter, help, sip.tcp_refused)?;
    let help = "SIP messages dropped because their connection was gone or congested, or the socket refused them.";
    m.single("ctigw_sip_messages_dropped_total", Counter, help, sip.dropped)?;
    let help = "SIP bytes received (UDP datagrams and TCP reads).";
    m.single("ctigw_sip_received_bytes_total", Counter, help, sip.bytes_received)?;
    m.single("ctigw_sip_sent_bytes_total", Counter, "SIP bytes handed to the sockets.", sip.bytes_sent)?;
    let help = "SIP TLS connections open now (also counted as TCP connections), handshakes in progress included.";
    m.single("ctigw_sip_tls_connections_open", Gauge, help, sip.tls_open as u64)?;
    let help = "TLS handshakes finished with a trusted peer.";
    m.single("ctigw_tls_handshakes_total", Counter, help, sip.tls_handshakes)?;
    m.family("ctigw_tls_refused_total", Counter, "TLS connections refused in the handshake, by cause.")?;
    for cause in crate::tls::Refusal::ALL {
        m.sample("ctigw_tls_refused_total", &[("cause", cause.label())], sip.tls_refused[cause.index()])?;
    }

    let labels = NodeLabels::of(nodes);
    let up = labels.iter().filter(|n| nodes.state(n.slot) == LinkState::Up).count();
    m.single("ctigw_cti_nodes_configured", Gauge, "CTI nodes configured.", labels.len() as u64)?;
    m.single("ctigw_cti_nodes_up", Gauge, "CTI nodes up now.", up as u64)?;
    m.family("ctigw_cti_node_up", Gauge, "1 while the CTI node is up (serving requests), else 0.")?;
    for n in &labels {
        m.sample("ctigw_cti_node_up", &n.pairs(), u64::from(nodes.state(n.slot) == LinkState::Up))?;
    }
    m.family("ctigw_cti_node_state", Gauge, "1 for the state the CTI link is in, 0 for the others.")?;
    for n in &labels {
        let [node, addr] = n.pairs();
        for state in STATES {
            let value = u64::from(nodes.state(n.slot) == state);
            m.sample("ctigw_cti_node_state", &[node, addr, ("state", state.as_str())], value)?;
        }
    }
    m.family("ctigw_cti_requests_outstanding", Gauge, "Requests waiting for the CTI node's answer.")?;
    for n in &labels {
        m.sample("ctigw_cti_requests_outstanding", &n.pairs(), nodes.outstanding(n.slot) as u64)?;
    }
    for (name, help, value) in NODE_COUNTERS {
        m.family(name, Counter, help)?;
        for n in &labels {
            m.sample(name, &n.pairs(), value(nodes.counters(n.slot)))?;
        }
    }
    Ok(())
}

/// Writes `text` as a JSON string (RFC 8259), quoted and escaped.
pub fn json_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if u32::from(c) < 0x20 || c == '\u{7f}' => write!(out, "\\u{:04x}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// Writes `value` (an address, a number) as a JSON string.
fn json_display(out: &mut impl fmt::Write, value: impl fmt::Display) -> fmt::Result {
    let mut text = heapless::String::<64>::new();
    if write!(text, "{value}").is_ok() { json_string(out, &text) } else { json_string(out, "?") }
}

/// The CTI nodes, as JSON: `{"configured":N,"up":N,"nodes":[...]}`.
pub fn nodes_json(nodes: &Nodes, out: &mut impl fmt::Write) -> fmt::Result {
    let configured = nodes.slots().count();
    let up = nodes.slots().filter(|&slot| nodes.state(slot) == LinkState::Up).count();
    write!(out, "{{\"configured\":{configured},\"up\":{up},\"nodes\":[")?;
    for (i, slot) in nodes.slots().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        write!(out, "{{\"slot\":{},\"name\":", slot.index())?;
        json_display(out, slot)?;
        out.write_str(",\"addr\":")?;
        match nodes.addr(slot) {
            Some(addr) => json_display(out, addr)?,
            None => out.write_str("null")?,
        }
        write!(out, ",\"state\":\"{}\",\"connection_id\":", nodes.state(slot).as_str())?;
        match nodes.connection_id(slot) {
            Some(id) => write!(out, "{id}")?,
            None => out.write_str("null")?,
        }
        out.write_str(",\"namespace\":")?;
        json_string(out, nodes.namespace(slot).uri())?;
        write!(out, ",\"outstanding\":{},\"counters\":{{", nodes.outstanding(slot))?;
        let counters = nodes.counters(slot);
        for (j, (name, _help, value)) in NODE_COUNTERS.iter().enumerate() {
            if j > 0 {
                out.write_char(',')?;
            }
            let key = name.trim_start_matches("ctigw_cti_").trim_end_matches("_total");
            write!(out, "\"{key}\":{}", value(counters))?;
        }
        out.write_str("}}")?;
    }
    out.write_str("]}\n")
}

/// The open sessions, as JSON: `{"open":N,"capacity":N,"sessions":[...]}`,
/// each with its user, line, node slot, transport, peer, age in seconds
/// and Call-ID.
pub fn sessions_json<'s>(
    open: usize,
    capacity: usize,
    sessions: impl IntoIterator<Item = SessionRef<'s>>,
    now: Instant,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    write!(out, "{{\"open\":{open},\"capacity\":{capacity},\"sessions\":[")?;
    for (i, s) in sessions.into_iter().enumerate() {
        out.write_str(if i > 0 { ",\n" } else { "\n" })?;
        out.write_str("{\"user\":")?;
        json_string(out, s.user())?;
        out.write_str(",\"line\":")?;
        json_string(out, s.line())?;
        write!(out, ",\"slot\":{},\"node\":", s.node.slot.index())?;
        json_display(out, s.node.slot)?;
        let transport = match s.peer().transport {
            Transport::Udp => "udp",
            Transport::Tcp(_) => "tcp",
            Transport::Tls(_) => "tls",
        };
        write!(out, ",\"transport\":\"{transport}\",\"peer\":")?;
        json_display(out, s.peer().addr)?;
        let age = now.saturating_duration_since(s.opened_at()).as_secs();
        let refreshed = now.saturating_duration_since(s.refreshed_at()).as_secs();
        write!(out, ",\"age_s\":{age},\"refreshed_s_ago\":{refreshed},\"call_id\":")?;
        json_string(out, s.call_id())?;
        write!(out, ",\"monitors\":{},\"ending\":{}}}", s.node.monitors.len(), s.ending)?;
    }
    out.write_str("\n]}\n")
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    use super::*;
    use crate::cti::{LinkEvent, NodeConfig, Protocol, SessionMode, Timing};
    use crate::rcc::appearances::Appearances;
    use crate::rcc::session::{Sessions, Strings};
    use crate::rcc::{GatewayConfig, Peer, Transport};

    /// A sample's labels, in order: name, value.
    type Labels = Vec<(String, String)>;
    /// One sample: name, labels, value.
    type Sample = (String, Labels, f64);

    fn valid_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn valid_label_name(name: &str) -> bool {
        let mut chars = name.chars();
        !name.starts_with("__")
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// Reads `{a="x",b="y"}` from the start of `text`; returns the labels
    /// and the rest.
    fn parse_labels(text: &str) -> Result<(Labels, &str), String> {
        let mut labels = Vec::new();
        let mut rest = text.strip_prefix('{').ok_or("no {")?;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok((labels, after));
            }
            let (name, after) = rest.split_once("=\"").ok_or(format!("no =\" in {rest:?}"))?;
            if !valid_label_name(name) {
                return Err(format!("bad label name {name:?}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, '\n')) => return Err("raw newline in a label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.iter().any(|(n, _)| n == name) {
                return Err(format!("label {name} twice"));
            }
            labels.push((name.to_string(), value));
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }

    /// A strict reading of the text exposition format 0.0.4, plus this
    /// endpoint's conventions: every family has HELP and TYPE before its
    /// samples, families are not interleaved or repeated, names start with
    /// `ctigw_`, counters end with `_total` and are not negative.
    fn check_exposition(text: &str) -> Result<Vec<Sample>, String> {
        if !text.ends_with('\n') {
            return Err("the text does not end with a newline".into());
        }
        let mut help: HashSet<String> = HashSet::new();
        let mut types: HashMap<String, String> = HashMap::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        let mut samples = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let at = |what: String| format!("line {}: {what}: {line:?}", number + 1);
            if line.is_empty() {
                return Err(at("empty line".into()));
            }
            let family = if let Some(comment) = line.strip_prefix("# ") {
                let (keyword, rest) = comment.split_once(' ').unwrap_or((comment, ""));
                let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                if !valid_metric_name(name) {
                    return Err(at("bad metric name".into()));
                }
                match keyword {
                    "HELP" => {
                        if !help.insert(name.to_string()) {
                            return Err(at("HELP twice".into()));
                        }
                        if rest.is_empty() {
                            return Err(at("empty HELP".into()));
                        }
                    }
                    "TYPE" => {
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                            return Err(at("unknown type".into()));
                        }
                        if types.insert(name.to_string(), rest.to_string()).is_some() {
                            return Err(at("TYPE twice".into()));
                        }
                        if seen.contains(name) {
                            return Err(at("TYPE after samples".into()));
                        }
                    }
                    _ => return Err(at("a comment that is neither HELP nor TYPE".into())),
                }
                name.to_string()
            } else if line.starts_with('#') {
                return Err(at("a comment without a space".into()));
            } else {
                let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
                let name = &line[..name_end];
                if !valid_metric_name(name) {
                    return Err(at("bad metric name".into()));
                }
                let (labels, rest) = if line[name_end..].starts_with('{') {
                    parse_labels(&line[name_end..]).map_err(&at)?
                } else {
                    (Vec::new(), &line[name_end..])
                };
                let mut fields =
                    rest.strip_prefix(' ').ok_or_else(|| at("no space before the value".into()))?.split(' ');
                let value = match fields.next() {
                    Some("NaN") => f64::NAN,
                    Some("+Inf") => f64::INFINITY,
                    Some("-Inf") => f64::NEG_INFINITY,
                    Some(v) => v.parse::<f64>().map_err(|e| e.to_string()).map_err(&at)?,
                    None => return Err(at("no value".into())),
                };
                if let Some(timestamp) = fields.next() {
                    timestamp.parse::<i64>().map_err(|e| e.to_string()).map_err(&at)?;
                }
                if fields.next().is_some() {
                    return Err(at("trailing fields".into()));
                }
                let Some(kind) = types.get(name) else { return Err(at("a sample without TYPE".into())) };
                if !help.contains(name) {
                    return Err(at("a sample without HELP".into()));
                }
                if !name.starts_with("ctigw_") {
                    return Err(at("not prefixed ctigw_".into()));
                }
                if kind == "counter" && (!name.ends_with("_total") || value < 0.0) {
                    return Err(at("a counter not named _total, or negative".into()));
                }
                if kind != "counter" && name.ends_with("_total") {
                    return Err(at("a gauge named _total".into()));
                }
                let mut key = labels.clone();
                key.sort();
                if !seen.insert(format!("{name}{key:?}")) {
                    return Err(at("a sample twice".into()));
                }
                seen.insert(name.to_string());
                samples.push((name.to_string(), labels, value));
                name.to_string()
            };
            if current.as_deref() != Some(family.as_str()) {
                if done.contains(&family) {
                    return Err(format!("line {}: family {family} interleaved with another", number + 1));
                }
                if let Some(previous) = current.replace(family.clone()) {
                    done.insert(previous);
                }
            }
        }
        Ok(samples)
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|(_, _, v)| *v)
    }

    fn small_gateway() -> Box<Gateway> {
        let node = |addr: &str| NodeConfig {
            addr: addr.parse().unwrap(),
            protocol: Protocol::CstaXml(SessionMode::SystemStatus),
        };
        let nodes = Nodes::new(Timing::default(), &[node("127.0.0.1:7001"), node("[::1]:7002")]).unwrap();
        let mut config = GatewayConfig::new("gw.example.com", 5060, Vec::new());
        config.sessions = 8;
        config.pending = 4;
        config.client_transactions = 4;
        config.completed = 4;
        config.out_queue = 4;
        config.message_size = 1024;
        Gateway::new(Instant::now(), config, Appearances::parse("").unwrap(), nodes)
    }

    fn render(page_: Page, gw: &Gateway, sip: SipTransport) -> (Rendered, String) {
        let mut out = String::new();
        let rendered = page(page_, &View { gateway: gw, sip, now: Instant::now() }, &mut out).unwrap();
        (rendered, out)
    }

    #[test]
    fn the_checker_refuses_what_the_format_forbids() {
        let ok = "# HELP ctigw_a_total A.\n# TYPE ctigw_a_total counter\nctigw_a_total{x=\"1\"} 3\n";
        assert!(check_exposition(ok).is_ok());
        for bad in [
            "ctigw_a_total 3\n",
            "# HELP ctigw_a_total A.\n# TYPE ctigw_a_total counter\nctigw_a_total 3",
            "# HELP ctigw_a A.\n# TYPE ctigw_a counter\nctigw_a 3\n",
            "# HELP ctigw_a_total A.\n# TYPE ctigw_a_total counter\nctigw_a_total{x=\"1} 3\n",
            "# HELP ctigw_a_total A.\n# TYPE ctigw_a_total counter\nctigw_a_total{x=\"1\"} three\n",
            "# HELP ctigw_a_total A.\n# TYPE ctigw_a_total counter\nctigw_a_total 1\nctigw_a_total 2\n",
            "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n",
            "# HELP ctigw_a A.\n# TYPE ctigw_a gauge\nctigw_a{x=\"\\q\"} 1\n",
            "# HELP ctigw_a A.\n# TYPE ctigw_a gauge\n# HELP ctigw_b B.\n# TYPE ctigw_b gauge\nctigw_b 1\nctigw_a 1\n",
        ] {
            assert!(check_exposition(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn metrics_follow_the_exposition_format_and_carry_the_counters() {
        let mut gw = small_gateway();
        gw.counters.requests[0] = 3; // INVITE
        gw.counters.requests[5] = 11; // INFO
        gw.counters.responses[1] = 13; // 2xx
        gw.counters.privilege_violations = 7;
        gw.counters.refused_no_node = 2;
        gw.counters.events_relayed = 42;
        gw.counters.event_timeouts = 1;
        let now = Instant::now();
        gw.start(now);
        gw.handle_link(now, SlotId::new(0).unwrap(), LinkEvent::Connected); // a system-status node is up at once
        let sip = SipTransport {
            tcp_open: 2,
            tcp_refused: 5,
            dropped: 6,
            bytes_received: 1234,
            bytes_sent: 5678,
            tls_open: 1,
            tls_handshakes: 3,
            tls_refused: [1, 2, 3, 4, 5, 6],
        };
        let (rendered, text) = render(Page::Metrics, &gw, sip);
        assert_eq!(rendered, Rendered { status: Status::Ok, content_type: METRICS_TYPE });
        let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels).unwrap_or(f64::NAN);
        assert_eq!(v("ctigw_sessions_open", &[]), 0.0);
        assert_eq!(v("ctigw_sessions_capacity", &[]), 8.0);
        assert_eq!(v("ctigw_sip_requests_total", &[("method", "INVITE")]), 3.0);
        assert_eq!(v("ctigw_sip_requests_total", &[("method", "INFO")]), 11.0);
        assert_eq!(v("ctigw_sip_requests_total", &[("method", "other")]), 0.0);
        assert_eq!(v("ctigw_sip_responses_total", &[("class", "2xx")]), 13.0);
        assert_eq!(v("ctigw_requests_refused_total", &[("cause", "privilege_violation")]), 7.0);
        assert_eq!(v("ctigw_invites_refused_total", &[("cause", "no_cti_node_up")]), 2.0);
        assert_eq!(v("ctigw_events_relayed_total", &[]), 42.0);
        assert_eq!(v("ctigw_event_info_timeouts_total", &[]), 1.0);
        assert_eq!(v("ctigw_sip_tcp_connections_open", &[]), 2.0);
        assert_eq!(v("ctigw_sip_tcp_connections_refused_total", &[]), 5.0);
        assert_eq!(v("ctigw_sip_messages_dropped_total", &[]), 6.0);
        assert_eq!(v("ctigw_sip_received_bytes_total", &[]), 1234.0);
        assert_eq!(v("ctigw_sip_sent_bytes_total", &[]), 5678.0);
        assert_eq!(v("ctigw_sip_tls_connections_open", &[]), 1.0);
        assert_eq!(v("ctigw_tls_handshakes_total", &[]), 3.0);
        assert_eq!(v("ctigw_tls_refused_total", &[("cause", "no_certificate")]), 1.0);
        assert_eq!(v("ctigw_tls_refused_total", &[("cause", "unknown_ca")]), 2.0);
        assert_eq!(v("ctigw_tls_refused_total", &[("cause", "name_not_trusted")]), 4.0);
        assert_eq!(v("ctigw_tls_refused_total", &[("cause", "handshake_failed")]), 6.0);
        assert_eq!(v("ctigw_cti_nodes_configured", &[]), 2.0);
        assert_eq!(v("ctigw_cti_nodes_up", &[]), 1.0);
        assert_eq!(v("ctigw_cti_node_up", &[("node", "0"), ("addr", "127.0.0.1:7001")]), 1.0);
        assert_eq!(v("ctigw_cti_node_up", &[("node", "1"), ("addr", "[::1]:7002")]), 0.0);
        let state = |node: &str, addr: &str, state: &str| {
            v("ctigw_cti_node_state", &[("node", node), ("addr", addr), ("state", state)])
        };
        assert_eq!(state("0", "127.0.0.1:7001", "up"), 1.0);
        assert_eq!(state("0", "127.0.0.1:7001", "connecting"), 0.0);
        assert_eq!(state("1", "[::1]:7002", "connecting"), 1.0);
        assert_eq!(v("ctigw_cti_connects_total", &[("node", "0"), ("addr", "127.0.0.1:7001")]), 1.0);
        assert!(text.contains("\nctigw_cti_node_up{node=\"0\",addr=\"127.0.0.1:7001\"} 1\n"), "{text}");
        assert!(text.contains("\nctigw_requests_refused_total{cause=\"privilege_violation\"} 7\n"), "{text}");
        let names =
            NODE_COUNTERS.iter().map(|(name, _, _)| name).chain(GATEWAY_COUNTERS.iter().map(|(name, _, _)| name));
        for name in names {
            assert!(samples.iter().any(|(n, _, _)| n == name), "{name} missing");
        }
    }

    #[test]
    fn health_is_200_while_a_node_is_up() {
        let mut gw = small_gateway();
        let (rendered, text) = render(Page::Healthz, &gw, SipTransport::default());
        assert_eq!(rendered, Rendered { status: Status::ServiceUnavailable, content_type: TEXT_TYPE });
        assert_eq!(text, "no CTI node up (0 of 2)\n");
        let now = Instant::now();
        gw.start(now);
        gw.handle_link(now, SlotId::new(1).unwrap(), LinkEvent::Connected);
        let (rendered, text) = render(Page::Healthz, &gw, SipTransport::default());
        assert_eq!(rendered.status, Status::Ok);
        assert_eq!(text, "ok: 1 of 2 CTI nodes up\n");
    }

    #[test]
    fn nodes_are_json() {
        let mut gw = small_gateway();
        let now = Instant::now();
        gw.start(now);
        gw.handle_link(now, SlotId::new(0).unwrap(), LinkEvent::Connected);
        let (rendered, text) = render(Page::Nodes, &gw, SipTransport::default());
        assert_eq!(rendered.content_type, JSON_TYPE);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(json["configured"], 2);
        assert_eq!(json["up"], 1);
        assert_eq!(json["nodes"][0]["addr"], "127.0.0.1:7001");
        assert_eq!(json["nodes"][0]["name"], "node 1");
        assert_eq!(json["nodes"][0]["state"], "up");
        assert_eq!(json["nodes"][0]["connection_id"], 1);
        assert_eq!(json["nodes"][0]["counters"]["connects"], 1);
        assert_eq!(json["nodes"][1]["addr"], "[::1]:7002");
        assert_eq!(json["nodes"][1]["state"], "connecting");
        assert!(json["nodes"][1]["connection_id"].is_null());
    }

    #[test]
    fn sessions_are_json_with_every_string_escaped() {
        let mut table = Sessions::new(4, 4096, Instant::now());
        let opened = Instant::now();
        let awkward = "c\"1\\2\n\t\u{1}\u{7f}é@host";
        for (call_id, user, transport) in [
            (awkward, "sip:alice@example.com", Transport::Udp),
            ("plain", "sip:bob@example.com", Transport::Tcp(crate::rcc::ConnId(3))),
            ("secure", "sip:carol@example.com", Transport::Tls(crate::rcc::ConnId(4))),
        ] {
            table
                .open(
                    opened,
                    &Strings { user, line: "tel:+14255550101;ext=101", call_id, ..Strings::default() },
                    Peer { addr: "192.0.2.10:5060".parse().unwrap(), transport },
                    |s| s.node.slot = SlotId::new(1).unwrap(),
                )
                .unwrap();
        }
        let mut text = String::new();
        let later = opened + Duration::from_secs(75);
        sessions_json(table.len(), table.capacity(), table.iter().map(|(_, s)| s), later, &mut text).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(json["open"], 3);
        assert_eq!(json["capacity"], 4);
        let sessions = json["sessions"].as_array().unwrap();
        let alice = sessions.iter().find(|s| s["user"] == "sip:alice@example.com").unwrap();
        assert_eq!(alice["call_id"], awkward);
        assert_eq!(alice["line"], "tel:+14255550101;ext=101");
        assert_eq!(alice["transport"], "udp");
        assert_eq!(alice["peer"], "192.0.2.10:5060");
        assert_eq!(alice["slot"], 1);
        assert_eq!(alice["node"], "node 2");
        assert_eq!(alice["age_s"], 75);
        let bob = sessions.iter().find(|s| s["user"] == "sip:bob@example.com").unwrap();
        assert_eq!(bob["transport"], "tcp");
        let carol = sessions.iter().find(|s| s["user"] == "sip:carol@example.com").unwrap();
        assert_eq!(carol["transport"], "tls");
        let mut empty = String::new();
        sessions_json(0, 4, core::iter::empty(), later, &mut empty).unwrap();
        let json: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(json["sessions"].as_array().map(Vec::len), Some(0));
    }

    #[test]
    fn refusals_are_one_line() {
        let mut text = String::new();
        refusal(Status::HeaderFieldsTooLarge, &mut text).unwrap();
        assert_eq!(text, "431 Request Header Fields Too Large\n");
    }
}
