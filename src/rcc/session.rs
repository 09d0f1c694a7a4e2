//! The session table: one uaCSTA session (one SIP dialog) per signed-in
//! user and line, in a fixed pool, with three indexes: by dialog
//! (Call-ID), by user and line (newest wins), and by monitor (node slot
//! and cross-reference id) for routing events.
//!
//! A session's strings (user, line, Call-ID, tags, URIs, route set) are
//! written once, when it opens, as one record in a shared byte store
//! sized to real Lync values; the fixed part of a session keeps where
//! each string ends. A session costs its own strings, not the longest
//! ones the gateway accepts.

use std::time::{Duration, Instant};

use super::Peer;
use super::session_timer::Timer;
use crate::csta::Namespace;
use crate::cti::SlotId;
use crate::index::{Index, hash};
use heapless::String;

use crate::pool::{Handle, Pool};
use crate::store::{ByteStore, Span, Usage};

/// Longest Call-ID kept.
pub const MAX_CALL_ID: usize = 128;
/// Longest tag kept.
pub const MAX_TAG: usize = 64;
/// Longest URI kept (user, gateway URI, remote target).
pub const MAX_URI: usize = 192;
/// Longest route set kept, its entries joined by `, ` as one Route header
/// value. A Lync Front End's Record-Route alone runs past 200 bytes (its
/// `ms-route-sig`, `ms-rrsig` and `tag`), and a pool puts one per Front
/// End it crossed (a remote user's: the Edge, a Director, the Front End).
pub const MAX_ROUTE_SET: usize = 1024;
/// Most monitors one session may start.
pub const MAX_MONITORS: usize = 4;
/// Monitors the table holds, for each session it holds: a session
/// monitors its own device, and room for as many again.
pub const MONITORS_PER_SESSION: usize = 2;
/// Longest monitor cross-reference id kept.
pub const MAX_XREF: usize = 32;
/// Bytes for the cross-reference ids of one session's monitors together:
/// a node's ids are short (a number, a few hex digits: Cisco's and
/// OpenScape's are seven or eight digits), and a session monitors its own
/// device; four of ten bytes, or one of the longest and another.
pub const MONITOR_BYTES: usize = 40;
/// The granule of the session text store: a session's strings take a
/// multiple of it.
pub const TEXT_GRANULE: usize = 16;

/// A session's strings, as [`Sessions::open`] takes them: each at most
/// its `MAX_` length (the caller checks).
#[derive(Debug, Clone, Copy, Default)]
pub struct Strings<'a> {
    /// The user (the INVITE's From URI).
    pub user: &'a str,
    /// The line, as Lync wrote it in the INVITE (`lcs:line`): it goes back
    /// to Lync byte for byte where the node names the user's device; the
    /// line file's spelling when Lync named none.
    pub line: &'a str,
    /// The dialog's Call-ID.
    pub call_id: &'a str,
    /// Lync's tag.
    pub remote_tag: &'a str,
    /// The gateway's tag.
    pub local_tag: &'a str,
    /// The gateway's URI as Lync addressed it (the INVITE's To URI).
    pub local_uri: &'a str,
    /// Where in-dialog requests go (the INVITE's Contact).
    pub remote_target: &'a str,
    /// The route set (the INVITE's Record-Route, in order), its entries
    /// joined by `, ` as one Route header value.
    pub routes: &'a str,
}

impl<'a> Strings<'a> {
    fn parts(&self) -> [&'a str; FIELDS] {
        [
            self.user,
            self.line,
            self.call_id,
            self.remote_tag,
            self.local_tag,
            self.local_uri,
            self.remote_target,
            self.routes,
        ]
    }
}

const FIELDS: usize = 8;

/// One session: a Lync user's uaCSTA session on one line, as two parts
/// that change for different reasons: the SIP dialog with Lync and the
/// binding to a CTI node. Its strings are in the table's store: read them
/// through [`SessionRef`].
pub struct Session {
    /// The strings' record in the store.
    text: Span,
    /// The length of each string in the record but the route set, in
    /// [`Strings`] order (each at most its `MAX_`, under 256); the route
    /// set is the rest.
    lens: [u8; FIELDS - 1],
    /// How much of the route set is its peer's (the start of the first
    /// route set that came from it), and not in the record.
    routes_shared: u16,
    /// The user and the line as the line file writes it, hashed
    /// ([`user_line_key`]): one session per user and line, whatever
    /// spelling Lync used.
    pub line_key: u64,
    /// The CSTA edition Lync spoke in the INVITE.
    pub namespace: Namespace,
    /// The SIP dialog with Lync.
    pub dialog: Dialog,
    /// The CTI node the session is bound to.
    pub node: NodeBinding,
    /// When the session was opened ([`SessionRef::opened_at`]).
    opened_at: Stamp,
    /// The gateway's URI is the table's common one (see
    /// [`Sessions::open`]), not kept in the session's own strings.
    common_local_uri: bool,
    /// Ending: a BYE is waiting to go out; nothing else is relayed.
    pub ending: bool,
    /// The event INFO in flight, and the last one waiting behind it:
    /// events go to Lync one at a time, in order.
    pub events: Option<(Handle, Handle)>,
}

/// A moment of a session's life, in milliseconds since the table was
/// made: eight bytes where an `Instant` takes sixteen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp(u64);

/// An open session with its strings (read from the table as asked).
#[derive(Clone, Copy)]
pub struct SessionRef<'a> {
    session: &'a Session,
    table: &'a Sessions,
}

impl core::ops::Deref for SessionRef<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.session
    }
}

impl<'a> SessionRef<'a> {
    fn field(&self, i: usize) -> &'a str {
        let strings = self.table.text.get(self.session.text);
        let lens = &self.session.lens;
        let start: usize = lens[..i].iter().map(|&l| usize::from(l)).sum();
        let end = lens.get(i).map_or(strings.len(), |&l| start + usize::from(l));
        let text = strings.get(start..end).unwrap_or_default();
        // Written from `&str`s whole, split where they were joined.
        core::str::from_utf8(text).unwrap_or_default()
    }

    /// The user (the INVITE's From URI).
    pub fn user(&self) -> &'a str {
        self.field(0)
    }

    /// The line as Lync wrote it (see [`Strings::line`]).
    pub fn line(&self) -> &'a str {
        self.field(1)
    }

    /// The dialog's Call-ID.
    pub fn call_id(&self) -> &'a str {
        self.field(2)
    }

    /// Lync's tag.
    pub fn remote_tag(&self) -> &'a str {
        self.field(3)
    }

    /// The gateway's tag.
    pub fn local_tag(&self) -> &'a str {
        self.field(4)
    }

    /// The gateway's URI as Lync addressed it.
    pub fn local_uri(&self) -> &'a str {
        if self.session.common_local_uri { &self.table.common_local_uri } else { self.field(5) }
    }

    /// Where in-dialog requests go (the INVITE's Contact).
    pub fn remote_target(&self) -> &'a str {
        self.field(6)
    }

    /// The route set as one Route header value, in two pieces: the
    /// start it shares with the first route set from its peer, and the
    /// rest. Both empty when there is none.
    pub fn routes(&self) -> [&'a str; 2] {
        let peer_routes =
            self.table.peers.entry(self.session.dialog.peer).map_or(&[][..], |e| self.table.text.get(e.routes));
        let shared = peer_routes.get(..usize::from(self.session.routes_shared)).unwrap_or_default();
        // Cut where the session's own route set has a character boundary.
        [core::str::from_utf8(shared).unwrap_or_default(), self.field(7)]
    }

    /// Where the dialog came from, and over what.
    pub fn peer(&self) -> Peer {
        self.table.peers.entry(self.session.dialog.peer).map_or(Peer::unspecified(), |e| e.peer)
    }

    /// When the session was opened.
    pub fn opened_at(&self) -> Instant {
        self.table.instant(self.session.opened_at)
    }

    /// When the session was last refreshed (INVITE, re-INVITE, UPDATE).
    pub fn refreshed_at(&self) -> Instant {
        self.table.instant(self.session.dialog.refreshed_at)
    }
}

/// The SIP dialog of a session (RFC 3261 section 12) and its session
/// timer (RFC 4028); its strings are the session's, and where it came
/// from is [`SessionRef::peer`].
pub struct Dialog {
    /// Where the dialog came from, in the table's peers.
    peer: u32,
    /// The highest CSeq seen from Lync.
    pub remote_cseq: u32,
    /// The gateway's last CSeq in this dialog.
    pub local_cseq: u32,
    /// The kept 2xx of the INVITE, retransmitted over UDP until ACK.
    pub invite_2xx: Option<Handle>,
    /// The INVITE's CSeq (to match its retransmissions).
    pub invite_cseq: u32,
    /// The session timer (RFC 4028), if negotiated.
    pub timer: Option<Timer>,
    /// The gateway's own refresh (UPDATE) is in flight.
    pub refreshing: bool,
    /// When the session was last refreshed ([`SessionRef::refreshed_at`],
    /// [`Sessions::refreshed`]).
    refreshed_at: Stamp,
}

/// The CTI node a session is bound to, and what it started there.
pub struct NodeBinding {
    /// The node's slot.
    pub slot: SlotId,
    /// The node connection the session was opened on: a node back with a
    /// new connection no longer knows the session's monitors.
    pub connection_id: u64,
    /// The monitors started through this session.
    pub monitors: Monitors,
}

/// The cross-reference ids of a session's monitors, packed in
/// [`MONITOR_BYTES`].
pub struct Monitors {
    lens: [u8; MAX_MONITORS],
    count: u8,
    bytes: [u8; MONITOR_BYTES],
}

impl Default for Monitors {
    fn default() -> Monitors {
        Monitors { lens: [0; MAX_MONITORS], count: 0, bytes: [0; MONITOR_BYTES] }
    }
}

impl Monitors {
    /// How many monitors.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when a monitor with id `xref` is one of them.
    pub fn contains(&self, xref: &str) -> bool {
        self.iter().any(|m| m == xref)
    }

    /// The ids, in the order they were added (but for removals).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut at = 0;
        self.lens[..self.len()].iter().map(move |&len| {
            let id = &self.bytes[at..at + usize::from(len)];
            at += usize::from(len);
            core::str::from_utf8(id).unwrap_or_default()
        })
    }

    fn used(&self) -> usize {
        self.lens[..self.len()].iter().map(|&l| usize::from(l)).sum()
    }

    /// Adds `xref`; false when there are [`MAX_MONITORS`] already or no
    /// room for its bytes.
    fn push(&mut self, xref: &str) -> bool {
        let used = self.used();
        if self.len() == MAX_MONITORS || xref.len() > MAX_XREF || used + xref.len() > MONITOR_BYTES {
            return false;
        }
        self.bytes[used..used + xref.len()].copy_from_slice(xref.as_bytes());
        self.lens[self.len()] = xref.len() as u8;
        self.count += 1;
        true
    }

    /// Removes `xref`; false when it is not one of them.
    fn remove(&mut self, xref: &str) -> bool {
        let Some(i) = self.iter().position(|m| m == xref) else { return false };
        let start: usize = self.lens[..i].iter().map(|&l| usize::from(l)).sum();
        let (len, used) = (xref.len(), self.used());
        self.bytes.copy_within(start + len..used, start);
        let count = self.len();
        self.lens.copy_within(i + 1..count, i);
        self.count -= 1;
        true
    }
}

impl Session {
    fn empty() -> Session {
        Session {
            text: Span::default(),
            lens: [0; FIELDS - 1],
            routes_shared: 0,
            line_key: 0,
            namespace: Namespace::Ed3,
            dialog: Dialog {
                peer: 0,
                remote_cseq: 0,
                local_cseq: 0,
                invite_2xx: None,
                invite_cseq: 0,
                timer: None,
                refreshing: false,
                refreshed_at: Stamp::default(),
            },
            node: NodeBinding {
                slot: SlotId::new(0).expect("slot 0"),
                connection_id: 0,
                monitors: Monitors::default(),
            },
            opened_at: Stamp::default(),
            common_local_uri: false,
            ending: false,
            events: None,
        }
    }
}

/// Why [`Sessions::open`] could not open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every entry of the table is in use.
    Table,
    /// The store of session strings has no room for this session's.
    Text,
}

/// The key of a user's session on a line: the user and the line as the
/// line file writes it, ASCII case ignored.
pub fn user_line_key(user: &str, line: &str) -> u64 {
    hash(&[user.as_bytes(), line.as_bytes()], true)
}

fn dialog_hash(call_id: &str) -> u64 {
    hash(&[call_id.as_bytes()], false)
}

fn monitor_hash(slot: SlotId, xref: &str) -> u64 {
    hash(&[&[slot.index() as u8], xref.as_bytes()], false)
}

/// The sessions, the store of their strings, and their indexes.
pub struct Sessions {
    pool: Pool<Session>,
    /// What the sessions' [`Stamp`]s count from.
    epoch: Instant,
    /// The gateway's URI as the first session's INVITE addressed it: a
    /// pool addresses every INVITE alike, so sessions whose URI is this
    /// one do not keep a copy.
    common_local_uri: String<MAX_URI>,
    text: ByteStore,
    by_dialog: Index,
    by_user_line: Index,
    by_monitor: Index,
    /// The most monitors all sessions may hold together.
    monitor_capacity: usize,
    peers: Peers,
}

/// The peers the sessions came from, each kept once with the count of
/// sessions it serves and the route set of the first (in the string
/// store): a pool's sessions share a few connections, a peer is 40 bytes,
/// and the route sets through one Front End start alike (its address,
/// `ms-fe`, `opaque=state`), so a session keeps only where its own
/// differs.
struct Peers {
    pool: Pool<PeerEntry>,
    index: Index,
}

#[derive(Clone, Copy)]
struct PeerEntry {
    peer: Peer,
    sessions: u32,
    routes: Span,
}

fn peer_hash(peer: &Peer) -> u64 {
    let ip = match peer.addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(ip) => ip.octets(),
    };
    let conn = peer.transport.conn().map_or(0, |c| u64::from(c.0) + 1);
    let kind = [peer.transport.token().len() as u8];
    hash(&[&ip, &peer.addr.port().to_be_bytes(), &conn.to_le_bytes(), &kind], false)
}

impl Peers {
    fn new(capacity: usize) -> Peers {
        let empty = PeerEntry { peer: Peer::unspecified(), sessions: 0, routes: Span::default() };
        Peers { pool: Pool::new(capacity, move || empty), index: Index::new(capacity) }
    }

    fn entry(&self, i: u32) -> Option<&PeerEntry> {
        self.pool.handle_at(i).and_then(|h| self.pool.get(h))
    }

    /// The peer's entry, one more session counted, made with `routes`
    /// (in `text`) when new; `None` when the table or the store is full.
    fn intern(&mut self, peer: Peer, routes: &str, text: &mut ByteStore) -> Option<u32> {
        let key = peer_hash(&peer);
        let found = self.index.candidates(key).find(|&i| self.entry(i).is_some_and(|e| e.peer == peer));
        if let Some(i) = found {
            let h = self.pool.handle_at(i)?;
            self.pool.get_mut(h)?.sessions += 1;
            return Some(i);
        }
        if self.pool.len() == self.pool.capacity() {
            return None;
        }
        let routes = text.put(&[routes.as_bytes()])?;
        let (h, entry) = self.pool.alloc()?;
        *entry = PeerEntry { peer, sessions: 1, routes };
        self.index.insert(key, h.index);
        Some(h.index)
    }

    /// One session fewer for the peer's entry; gone with the last.
    fn release(&mut self, i: u32, text: &mut ByteStore) {
        let Some(h) = self.pool.handle_at(i) else { return };
        let Some(entry) = self.pool.get_mut(h) else { return };
        entry.sessions -= 1;
        if entry.sessions == 0 {
            let (key, routes) = (peer_hash(&entry.peer), entry.routes);
            self.index.remove(key, i);
            text.free(routes);
            self.pool.free(h);
        }
    }
}

impl Sessions {
    /// A table of `capacity` sessions whose strings share `text_bytes`,
    /// made at `now`.
    pub fn new(capacity: usize, text_bytes: usize, now: Instant) -> Sessions {
        Sessions {
            pool: Pool::new(capacity, Session::empty),
            epoch: now,
            common_local_uri: String::new(),
            text: ByteStore::new(text_bytes, TEXT_GRANULE),
            by_dialog: Index::new(capacity),
            by_user_line: Index::new(capacity),
            by_monitor: Index::new(capacity * MONITORS_PER_SESSION),
            monitor_capacity: capacity * MONITORS_PER_SESSION,
            peers: Peers::new(capacity),
        }
    }

    /// Where the bytes of a table of `capacity` sessions with a string
    /// store of `text_bytes` go: what, how many, the bytes of each
    /// (reserved at boot, touched as used).
    pub fn budget(capacity: usize, text_bytes: usize) -> [(&'static str, usize, usize); 5] {
        let buckets = |entries: usize| (entries.max(1) * 2).next_power_of_two();
        [
            ("session, fixed part and its place in the table", capacity, Pool::<Session>::entry_footprint()),
            ("session strings (store, and its bitmap)", 1, ByteStore::footprint(text_bytes, TEXT_GRANULE)),
            (
                "session indexes: dialog, user and line, monitor (8 bytes a bucket)",
                buckets(capacity) * 2 + buckets(capacity * MONITORS_PER_SESSION),
                8,
            ),
            ("peers (one a pool connection or address)", capacity, Pool::<PeerEntry>::entry_footprint()),
            ("peer index (8 bytes a bucket)", buckets(capacity), 8),
        ]
    }

    /// Sessions open.
    pub fn len(&self) -> usize {
        self.pool.len()
    }

    /// True when no session is open.
    pub fn is_empty(&self) -> bool {
        self.pool.is_empty()
    }

    /// How many sessions the table holds.
    pub fn capacity(&self) -> usize {
        self.pool.capacity()
    }

    /// What the store of the sessions' strings holds.
    pub fn text_usage(&self) -> Usage {
        self.text.usage()
    }

    /// Opens a session with `strings`, come from `peer`, the rest filled
    /// in by `fill`.
    pub fn open(
        &mut self,
        now: Instant,
        strings: &Strings<'_>,
        peer: Peer,
        fill: impl FnOnce(&mut Session),
    ) -> Result<Handle, Full> {
        if self.pool.len() == self.pool.capacity() {
            return Err(Full::Table);
        }
        if self.common_local_uri.is_empty() {
            let _ = self.common_local_uri.push_str(strings.local_uri);
        }
        let common_local_uri = strings.local_uri == self.common_local_uri.as_str();
        let mut parts = strings.parts();
        if common_local_uri {
            parts[5] = "";
        }
        let mut lens = [0u8; FIELDS - 1];
        for (len, part) in lens.iter_mut().zip(parts) {
            *len = u8::try_from(part.len()).map_err(|_| Full::Text)?;
        }
        let Some(peer) = self.peers.intern(peer, strings.routes, &mut self.text) else { return Err(Full::Text) };
        // The start of the route set its peer's first one shares.
        let template = self.peers.entry(peer).map_or(&[][..], |e| self.text.get(e.routes));
        let mut shared = template.iter().zip(strings.routes.as_bytes()).take_while(|(a, b)| a == b).count();
        while !strings.routes.is_char_boundary(shared) {
            shared -= 1;
        }
        parts[7] = &strings.routes[shared..];
        let Some(text) = self.text.put(&parts.map(str::as_bytes)) else {
            self.peers.release(peer, &mut self.text);
            return Err(Full::Text);
        };
        let stamp = self.stamp(now);
        let (h, s) = self.pool.alloc().expect("checked for room above");
        *s = Session::empty();
        s.text = text;
        s.lens = lens;
        s.routes_shared = shared as u16;
        s.opened_at = stamp;
        s.dialog.refreshed_at = stamp;
        s.common_local_uri = common_local_uri;
        s.dialog.peer = peer;
        fill(s);
        let line_key = s.line_key;
        self.by_dialog.insert(dialog_hash(strings.call_id), h.index);
        self.by_user_line.insert(line_key, h.index);
        Ok(h)
    }

    /// Removes a session and its monitors from every index.
    pub fn close(&mut self, h: Handle) {
        let Some(s) = self.get(h) else { return };
        let (dialog, line_key, text, peer) = (dialog_hash(s.call_id()), s.line_key, s.text, s.dialog.peer);
        let mut monitors = [0u64; MAX_MONITORS];
        let count = monitors
            .iter_mut()
            .zip(s.node.monitors.iter())
            .map(|(m, xref)| *m = monitor_hash(s.node.slot, xref))
            .count();
        self.by_dialog.remove(dialog, h.index);
        self.by_user_line.remove(line_key, h.index);
        for m in &monitors[..count] {
            self.by_monitor.remove(*m, h.index);
        }
        self.text.free(text);
        self.peers.release(peer, &mut self.text);
        self.pool.free(h);
    }

    /// `at` as a [`Stamp`] of this table.
    fn stamp(&self, at: Instant) -> Stamp {
        Stamp(at.saturating_duration_since(self.epoch).as_millis() as u64)
    }

    /// The moment a [`Stamp`] of this table names.
    fn instant(&self, stamp: Stamp) -> Instant {
        self.epoch + Duration::from_millis(stamp.0)
    }

    /// The session `h` names was refreshed at `now`.
    pub fn refreshed(&mut self, h: Handle, now: Instant) {
        let stamp = self.stamp(now);
        if let Some(s) = self.pool.get_mut(h) {
            s.dialog.refreshed_at = stamp;
        }
    }

    /// The session `h` names, if still open.
    pub fn get(&self, h: Handle) -> Option<SessionRef<'_>> {
        self.pool.get(h).map(|session| SessionRef { session, table: self })
    }

    /// The fixed part of the session `h` names, to change. Indexed fields
    /// (line key, monitors, slot) must only change through this table.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut Session> {
        self.pool.get_mut(h)
    }

    /// The session of a dialog: its Call-ID and both tags.
    pub fn find_dialog(&self, call_id: &str, remote_tag: &str, local_tag: Option<&str>) -> Option<Handle> {
        self.by_dialog.candidates(dialog_hash(call_id)).find_map(|i| {
            let h = self.pool.handle_at(i)?;
            let s = self.get(h)?;
            let matches =
                s.call_id() == call_id && s.remote_tag() == remote_tag && local_tag.is_none_or(|t| s.local_tag() == t);
            matches.then_some(h)
        })
    }

    /// The session of `user` on `line` (as the line file writes it), if
    /// one is open.
    pub fn find_user_line(&self, user: &str, line: &str) -> Option<Handle> {
        let key = user_line_key(user, line);
        self.by_user_line.candidates(key).find_map(|i| {
            let h = self.pool.handle_at(i)?;
            let s = self.get(h)?;
            (s.user().eq_ignore_ascii_case(user) && s.line_key == key).then_some(h)
        })
    }

    /// The session that started monitor `xref` on the node in `slot`.
    pub fn find_monitor(&self, slot: SlotId, xref: &str) -> Option<Handle> {
        self.by_monitor.candidates(monitor_hash(slot, xref)).find_map(|i| {
            let h = self.pool.handle_at(i)?;
            let s = self.pool.get(h)?;
            (s.node.slot == slot && s.node.monitors.contains(xref)).then_some(h)
        })
    }

    /// Records that the session started monitor `xref`; false when the
    /// session has [`MAX_MONITORS`] already or no room for the id, or
    /// every session together holds [`MONITORS_PER_SESSION`] each.
    pub fn add_monitor(&mut self, h: Handle, xref: &str) -> bool {
        let Some(s) = self.pool.get_mut(h) else { return false };
        if s.node.monitors.contains(xref) {
            return true;
        }
        if self.by_monitor.len() == self.monitor_capacity || !s.node.monitors.push(xref) {
            return false;
        }
        let slot = s.node.slot;
        self.by_monitor.insert(monitor_hash(slot, xref), h.index);
        true
    }

    /// Forgets monitor `xref` of the session.
    pub fn remove_monitor(&mut self, h: Handle, xref: &str) {
        let Some(s) = self.pool.get_mut(h) else { return };
        if s.node.monitors.remove(xref) {
            let slot = s.node.slot;
            self.by_monitor.remove(monitor_hash(slot, xref), h.index);
        }
    }

    /// The handle of the session in table entry `index`, if one is open there.
    pub fn handle_at(&self, index: u32) -> Option<Handle> {
        self.pool.handle_at(index)
    }

    /// Every open session.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, SessionRef<'_>)> {
        self.pool.iter().map(|(h, session)| (h, SessionRef { session, table: self }))
    }
}

#[cfg(test)]
fn udp() -> Peer {
    Peer { addr: ([192, 0, 2, 10], 5060).into(), transport: super::Transport::Udp }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(t: &mut Sessions, call_id: &str, user: &str, line: &str) -> Option<Handle> {
        let strings = Strings { user, line, call_id, remote_tag: "r", local_tag: "l", ..Strings::default() };
        t.open(Instant::now(), &strings, udp(), |s| s.line_key = user_line_key(user, line)).ok()
    }

    #[test]
    fn indexes_follow_the_sessions() {
        let mut t = Sessions::new(2, 4096, Instant::now());
        let a = open(&mut t, "c1", "sip:alice@x", "tel:101").unwrap();
        let b = open(&mut t, "c2", "sip:bob@x", "tel:102").unwrap();
        assert!(open(&mut t, "c3", "sip:carol@x", "tel:103").is_none(), "full");
        assert_eq!(t.find_dialog("c1", "r", Some("l")), Some(a));
        assert_eq!(t.find_dialog("c1", "r", None), Some(a));
        assert_eq!(t.find_dialog("c1", "other", Some("l")), None);
        assert_eq!(t.find_dialog("c1", "r", Some("other")), None);
        assert_eq!(t.find_user_line("SIP:ALICE@x", "tel:101"), Some(a));
        assert!(t.add_monitor(b, "4711"));
        assert_eq!(t.find_monitor(SlotId::new(0).unwrap(), "4711"), Some(b));
        assert_eq!(t.find_monitor(SlotId::new(1).unwrap(), "4711"), None);
        t.close(b);
        assert_eq!(t.find_monitor(SlotId::new(0).unwrap(), "4711"), None);
        assert_eq!(t.find_dialog("c2", "r", None), None);
        let c = open(&mut t, "c3", "sip:carol@x", "tel:103").unwrap();
        assert!(t.get(b).is_none(), "the old handle is stale");
        assert_eq!(t.get(c).unwrap().call_id(), "c3");
        for i in 0..MAX_MONITORS {
            assert!(t.add_monitor(c, &format!("m{i}")));
        }
        assert!(!t.add_monitor(c, "one-too-many"));
        t.remove_monitor(c, "m0");
        assert!(t.add_monitor(c, "m0"), "room again");
        t.remove_monitor(c, "m0");
        assert_eq!(t.find_monitor(SlotId::new(0).unwrap(), "m0"), None);
        assert!(t.find_monitor(SlotId::new(0).unwrap(), "m1").is_some());
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;

    fn strings<'a>(call_id: &'a str, routes: &'a str) -> Strings<'a> {
        Strings {
            user: "sip:alice@example.com",
            line: "tel:+14255550101;ext=101",
            call_id,
            remote_tag: "1a2b3c",
            local_tag: "gw1",
            local_uri: "sip:ctigw@gw.example.com",
            remote_target: "sip:alice@example.com;opaque=user:epid:yrmRjH4GQVqJor-JE9ciowAA;gruu",
            routes,
        }
    }

    #[test]
    fn a_sessions_strings_come_back_whole_and_a_full_store_is_refused() {
        let mut t = Sessions::new(4, 2048, Instant::now());
        let routes = "<sip:fe01.example.com;lr>".repeat(60);
        let a = t.open(Instant::now(), &strings("a", &routes[..1000]), udp(), |_| {}).unwrap();
        let s = t.get(a).unwrap();
        let want = strings("a", &routes[..1000]);
        let got = [s.user(), s.line(), s.call_id(), s.remote_tag(), s.local_tag(), s.local_uri()];
        assert_eq!(got, [want.user, want.line, want.call_id, want.remote_tag, want.local_tag, want.local_uri]);
        assert_eq!((s.remote_target(), s.routes().concat()), (want.remote_target, want.routes.to_string()));
        let usage = t.text_usage();
        assert_eq!(
            (usage.capacity, usage.in_use),
            (2048, 1136),
            "the peer's route set (1,000 bytes) and the session's other strings (123: the URI of the gateway is \
             common), in 16-byte granules"
        );
        // From the same peer, a route set starting alike costs only where it differs.
        let b_routes = format!("{}, <sip:b>", &routes[..900]);
        let b = t.open(Instant::now(), &strings("b", &b_routes), udp(), |_| {}).unwrap();
        assert_eq!(t.get(b).unwrap().routes(), [&routes[..900], ", <sip:b>"]);
        // 123 + 9 bytes of its own.
        assert_eq!(t.text_usage().in_use, 1136 + 144);
        // From another peer, its own route set: no room.
        let fe2 = Peer { addr: ([192, 0, 2, 30], 5060).into(), transport: crate::rcc::Transport::Udp };
        let other_routes = "<sip:fe02.example.com;lr>".repeat(36);
        let no_room = t.open(Instant::now(), &strings("c", &other_routes), fe2, |_| {});
        assert_eq!(no_room.err(), Some(Full::Text), "a place in the table, no bytes for the strings");
        assert_eq!((t.len(), t.peers.pool.len()), (2, 1), "the refused session took no place, its peer none");
        t.close(a);
        assert_eq!(t.get(b).unwrap().routes().concat(), b_routes, "the peer's route set stays with b");
        t.close(b);
        assert_eq!(t.text_usage().in_use, 0);
        let c = t.open(Instant::now(), &strings("c", &other_routes), fe2, |_| {}).unwrap();
        assert_eq!(t.find_dialog("c", "1a2b3c", Some("gw1")), Some(c));
        // A string longer than any the gateway keeps (the caller checks
        // first) is refused with nothing held.
        let long = "x".repeat(300);
        let too_long = t.open(Instant::now(), &Strings { user: &long, ..strings("e", "") }, udp(), |_| {});
        assert_eq!((too_long.err(), t.len(), t.peers.pool.len()), (Some(Full::Text), 1, 1));
        let other = Strings { local_uri: "sip:+14255550199@gw.example.com", ..strings("d", "") };
        let d = t.open(Instant::now(), &other, udp(), |_| {}).unwrap();
        assert_eq!(t.get(d).unwrap().local_uri(), "sip:+14255550199@gw.example.com", "not the common one: its own");
        assert_eq!(t.get(c).unwrap().local_uri(), "sip:ctigw@gw.example.com");
    }

    #[test]
    fn sessions_from_one_peer_share_its_entry() {
        let mut t = Sessions::new(4, 4096, Instant::now());
        let pool =
            Peer { addr: ([192, 0, 2, 20], 5061).into(), transport: crate::rcc::Transport::Tls(crate::rcc::ConnId(7)) };
        let a = t.open(Instant::now(), &strings("a", ""), pool, |_| {}).unwrap();
        let b = t.open(Instant::now(), &strings("b", ""), pool, |_| {}).unwrap();
        let c = t.open(Instant::now(), &strings("c", ""), udp(), |_| {}).unwrap();
        assert_eq!(t.peers.pool.len(), 2, "one entry for the pool's connection");
        assert_eq!((t.get(a).unwrap().peer(), t.get(c).unwrap().peer()), (pool, udp()));
        t.close(a);
        assert_eq!(t.get(b).unwrap().peer(), pool, "still b's");
        t.close(b);
        assert_eq!(t.peers.pool.len(), 1, "gone with its last session");
        let d = t.open(Instant::now(), &strings("d", ""), pool, |_| {}).unwrap();
        assert_eq!(t.get(d).unwrap().peer(), pool);
    }

    #[test]
    fn monitor_ids_share_their_bytes_and_the_table_its_count() {
        let mut m = Monitors::default();
        assert!(m.push(&"x".repeat(MAX_XREF)) && m.push("12345678"), "the longest id and an 8-byte one");
        assert!(!m.push("1"), "40 bytes used");
        assert!(m.remove(&"x".repeat(MAX_XREF)));
        assert!(m.push("2400001") && m.push("2400002") && m.push("2400003"));
        assert_eq!(m.iter().collect::<Vec<_>>(), ["12345678", "2400001", "2400002", "2400003"]);
        assert!(!m.push("2400004"), "four at most");
        assert!(m.remove("2400001") && !m.remove("2400001"));
        assert_eq!(m.iter().collect::<Vec<_>>(), ["12345678", "2400002", "2400003"]);
        // The table: two monitors for each session it holds.
        let mut t = Sessions::new(1, 2048, Instant::now());
        let h = t.open(Instant::now(), &strings("c", ""), udp(), |_| {}).unwrap();
        assert!(t.add_monitor(h, "1") && t.add_monitor(h, "2"));
        assert!(!t.add_monitor(h, "3"), "the table's two");
        t.remove_monitor(h, "1");
        assert!(t.add_monitor(h, "3"));
        assert_eq!(t.find_monitor(SlotId::new(0).unwrap(), "3"), Some(h));
    }
}

#[cfg(test)]
mod size {
    /// A session's fixed part (its strings are in the store): 160 bytes
    /// on a 64-bit board, so that 16,384 sessions take 2.5 MiB of it.
    #[test]
    fn a_session_fits_the_budget() {
        let size = std::mem::size_of::<super::Session>();
        eprintln!("size_of::<Session>() = {size}");
        assert!(size <= 160, "{size} bytes");
    }
}
