//! The session table: one uaCSTA session (one SIP dialog) per signed-in
//! user and line, in a fixed pool, with three indexes: by dialog
//! (Call-ID), by user and line (newest wins), and by monitor (node slot
//! and cross-reference id) for routing events.

use std::time::Instant;

use heapless::{String, Vec};

use super::Peer;
use super::session_timer::Timer;
use crate::csta::Namespace;
use crate::cti::SlotId;
use crate::index::{Index, hash};
use crate::pool::{Handle, Pool};

/// Longest Call-ID kept.
pub const MAX_CALL_ID: usize = 128;
/// Longest tag kept.
pub const MAX_TAG: usize = 64;
/// Longest URI kept (user, gateway URI, remote target).
pub const MAX_URI: usize = 192;
/// Longest route set kept, its entries joined by `, ` as one Route header
/// value. A Lync Front End's Record-Route alone runs past 200 bytes (its
/// `ms-route-sig`, `ms-rrsig` and `tag`), and a pool puts one per Front
/// End it crossed (a remote user's: the Edge, a Director, the Front End);
/// the set shares one buffer, whatever its entries' sizes.
pub const MAX_ROUTE_SET: usize = 1024;
/// Most monitors one session may start.
pub const MAX_MONITORS: usize = 4;
/// Longest monitor cross-reference id kept.
pub const MAX_XREF: usize = 32;

/// One session: a Lync user's uaCSTA session on one line, as two parts
/// that change for different reasons: the SIP dialog with Lync and the
/// binding to a CTI node.
pub struct Session {
    /// The user (the INVITE's From URI).
    pub user: String<MAX_URI>,
    /// The line the session controls, as Lync wrote it in the INVITE
    /// (`lcs:line`): it goes back to Lync byte for byte where the node
    /// names the user's device. The line file's spelling when Lync named
    /// none.
    pub line: String<MAX_URI>,
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
    /// When the session was opened.
    pub opened_at: Instant,
    /// Ending: a BYE is waiting to go out; nothing else is relayed.
    pub ending: bool,
    /// The event INFO in flight, and the last one waiting behind it:
    /// events go to Lync one at a time, in order.
    pub events: Option<(Handle, Handle)>,
}

/// The SIP dialog of a session (RFC 3261 section 12) and its session
/// timer (RFC 4028).
pub struct Dialog {
    /// The dialog's Call-ID.
    pub call_id: String<MAX_CALL_ID>,
    /// Lync's tag.
    pub remote_tag: String<MAX_TAG>,
    /// The gateway's tag.
    pub local_tag: String<MAX_TAG>,
    /// The gateway's URI as Lync addressed it (the INVITE's To URI).
    pub local_uri: String<MAX_URI>,
    /// Where in-dialog requests go (the INVITE's Contact).
    pub remote_target: String<MAX_URI>,
    /// The route set (the INVITE's Record-Route, in order).
    pub routes: String<MAX_ROUTE_SET>,
    /// Where the dialog came from, and over what.
    pub peer: Peer,
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
    /// When the session was last refreshed (INVITE, re-INVITE, UPDATE).
    pub refreshed_at: Instant,
}

/// The CTI node a session is bound to, and what it started there.
pub struct NodeBinding {
    /// The node's slot.
    pub slot: SlotId,
    /// The node connection the session was opened on: a node back with a
    /// new connection no longer knows the session's monitors.
    pub connection_id: u64,
    /// The monitors started through this session.
    pub monitors: Vec<String<MAX_XREF>, MAX_MONITORS>,
}

impl Session {
    fn empty(now: Instant) -> Session {
        Session {
            user: String::new(),
            line: String::new(),
            line_key: 0,
            namespace: Namespace::Ed3,
            dialog: Dialog {
                call_id: String::new(),
                remote_tag: String::new(),
                local_tag: String::new(),
                local_uri: String::new(),
                remote_target: String::new(),
                routes: String::new(),
                peer: Peer { addr: "0.0.0.0:0".parse().expect("literal address"), transport: super::Transport::Udp },
                remote_cseq: 0,
                local_cseq: 0,
                invite_2xx: None,
                invite_cseq: 0,
                timer: None,
                refreshing: false,
                refreshed_at: now,
            },
            node: NodeBinding { slot: SlotId::new(0).expect("slot 0"), connection_id: 0, monitors: Vec::new() },
            opened_at: now,
            ending: false,
            events: None,
        }
    }

    fn user_line_hash(&self) -> u64 {
        self.line_key
    }
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

/// The sessions and their indexes.
pub struct Sessions {
    pool: Pool<Session>,
    by_dialog: Index,
    by_user_line: Index,
    by_monitor: Index,
}

impl Sessions {
    /// A table of `capacity` sessions, made at `now`.
    pub fn new(capacity: usize, now: Instant) -> Sessions {
        Sessions {
            pool: Pool::new(capacity, || Session::empty(now)),
            by_dialog: Index::new(capacity),
            by_user_line: Index::new(capacity),
            by_monitor: Index::new(capacity * MAX_MONITORS),
        }
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

    /// Opens a session filled in by `fill`; `None` when the table is full.
    /// The caller has checked that every field fits.
    pub fn open(&mut self, now: Instant, fill: impl FnOnce(&mut Session)) -> Option<Handle> {
        let (h, s) = self.pool.alloc()?;
        *s = Session::empty(now);
        fill(s);
        let (dialog, user_line) = (dialog_hash(&s.dialog.call_id), s.user_line_hash());
        self.by_dialog.insert(dialog, h.index);
        self.by_user_line.insert(user_line, h.index);
        Some(h)
    }

    /// Removes a session and its monitors from every index.
    pub fn close(&mut self, h: Handle) {
        let Some(s) = self.pool.get(h) else { return };
        self.by_dialog.remove(dialog_hash(&s.dialog.call_id), h.index);
        self.by_user_line.remove(s.user_line_hash(), h.index);
        for xref in &s.node.monitors {
            self.by_monitor.remove(monitor_hash(s.node.slot, xref), h.index);
        }
        self.pool.free(h);
    }

    /// The session `h` names, if still open.
    pub fn get(&self, h: Handle) -> Option<&Session> {
        self.pool.get(h)
    }

    /// Like [`Sessions::get`], mutable. Indexed fields (Call-ID, user,
    /// line, monitors, slot) must only change through this table.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut Session> {
        self.pool.get_mut(h)
    }

    /// The session of a dialog: its Call-ID and both tags.
    pub fn find_dialog(&self, call_id: &str, remote_tag: &str, local_tag: Option<&str>) -> Option<Handle> {
        self.by_dialog.candidates(dialog_hash(call_id)).find_map(|i| {
            let h = self.pool.handle_at(i)?;
            let s = self.pool.get(h)?;
            let matches = s.dialog.call_id.as_str() == call_id
                && s.dialog.remote_tag.as_str() == remote_tag
                && local_tag.is_none_or(|t| s.dialog.local_tag.as_str() == t);
            matches.then_some(h)
        })
    }

    /// The session of `user` on `line` (as the line file writes it), if
    /// one is open.
    pub fn find_user_line(&self, user: &str, line: &str) -> Option<Handle> {
        let key = user_line_key(user, line);
        self.by_user_line.candidates(key).find_map(|i| {
            let h = self.pool.handle_at(i)?;
            let s = self.pool.get(h)?;
            (s.user.eq_ignore_ascii_case(user) && s.line_key == key).then_some(h)
        })
    }

    /// The session that started monitor `xref` on the node in `slot`.
    pub fn find_monitor(&self, slot: SlotId, xref: &str) -> Option<Handle> {
        self.by_monitor.candidates(monitor_hash(slot, xref)).find_map(|i| {
            let h = self.pool.handle_at(i)?;
            let s = self.pool.get(h)?;
            (s.node.slot == slot && s.node.monitors.iter().any(|m| m.as_str() == xref)).then_some(h)
        })
    }

    /// Records that the session started monitor `xref`; false when the
    /// session has [`MAX_MONITORS`] already or the id is too long.
    pub fn add_monitor(&mut self, h: Handle, xref: &str) -> bool {
        let Some(s) = self.pool.get_mut(h) else { return false };
        if s.node.monitors.iter().any(|m| m.as_str() == xref) {
            return true;
        }
        let Ok(id) = String::try_from(xref) else { return false };
        if s.node.monitors.push(id).is_err() {
            return false;
        }
        let slot = s.node.slot;
        self.by_monitor.insert(monitor_hash(slot, xref), h.index);
        true
    }

    /// Forgets monitor `xref` of the session.
    pub fn remove_monitor(&mut self, h: Handle, xref: &str) {
        let Some(s) = self.pool.get_mut(h) else { return };
        if let Some(i) = s.node.monitors.iter().position(|m| m.as_str() == xref) {
            s.node.monitors.swap_remove(i);
            let slot = s.node.slot;
            self.by_monitor.remove(monitor_hash(slot, xref), h.index);
        }
    }

    /// The handle of the session in table entry `index`, if one is open there.
    pub fn handle_at(&self, index: u32) -> Option<Handle> {
        self.pool.handle_at(index)
    }

    /// Every open session.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &Session)> {
        self.pool.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(t: &mut Sessions, call_id: &str, user: &str, line: &str) -> Option<Handle> {
        t.open(Instant::now(), |s| {
            s.dialog.call_id.push_str(call_id).unwrap();
            s.dialog.remote_tag.push_str("r").unwrap();
            s.dialog.local_tag.push_str("l").unwrap();
            s.user.push_str(user).unwrap();
            s.line.push_str(line).unwrap();
            s.line_key = user_line_key(user, line);
        })
    }

    #[test]
    fn indexes_follow_the_sessions() {
        let mut t = Sessions::new(2, Instant::now());
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
        assert_eq!(t.get(b).map(|s| s.dialog.call_id.as_str()), None, "the old handle is stale");
        assert_eq!(t.get(c).unwrap().dialog.call_id.as_str(), "c3");
        for i in 0..MAX_MONITORS {
            assert!(t.add_monitor(c, &format!("m{i}")));
        }
        assert!(!t.add_monitor(c, "one-too-many"));
        t.remove_monitor(c, "m0");
        assert_eq!(t.find_monitor(SlotId::new(0).unwrap(), "m0"), None);
        assert!(t.find_monitor(SlotId::new(0).unwrap(), "m1").is_some());
    }
}

#[cfg(test)]
mod size {
    /// The board budgets (board/*/README.md) count 2.5 KiB a session.
    #[test]
    fn a_session_fits_the_budget() {
        let size = std::mem::size_of::<super::Session>();
        eprintln!("size_of::<Session>() = {size}");
        assert!(size <= 2560, "{size} bytes");
    }
}
