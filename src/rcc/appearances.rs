//! Line appearances: which user may control which line on which device,
//! as the administrator assigned them in the line-appearance file.
//!
//! Read at boot (and again on reload) into a table sorted by user; every
//! lookup on the request path is a binary search and a few comparisons,
//! without allocating. Users compare by their URI without parameters,
//! ignoring ASCII case; lines compare as [`Number`]s.

use core::cmp::Ordering;

use crate::dialplan::device_key;
use crate::lines::{self, LineError, LineErrorKind};
use crate::tel::Number;

/// One assignment: its three strings, one after the other in the
/// table's text.
#[derive(Clone, Copy)]
struct Entry {
    at: u32,
    user: u16,
    device: u16,
    line: u16,
    primary: bool,
}

/// The assignments, sorted by user, with an index by device. Their
/// strings share one buffer: 16,384 users cost their text and 12 bytes
/// each.
pub struct Appearances {
    text: Box<str>,
    entries: Vec<Entry>,
    /// Entry positions, sorted by device key (ASCII case ignored).
    by_device: Vec<u32>,
}

/// An entry with its strings.
#[derive(Clone, Copy)]
struct Assigned<'a> {
    user: &'a str,
    device: &'a str,
    line: &'a str,
    primary: bool,
}

impl<'a> Assigned<'a> {
    fn of(text: &'a str, e: &Entry) -> Assigned<'a> {
        let (user_end, device_end) =
            (e.at as usize + usize::from(e.user), e.at as usize + usize::from(e.user + e.device));
        Assigned {
            user: &text[e.at as usize..user_end],
            device: &text[user_end..device_end],
            line: &text[device_end..device_end + usize::from(e.line)],
            primary: e.primary,
        }
    }

    /// True when the line is `number` (its spelling was checked when the
    /// file was read).
    fn is_line(&self, number: &Number) -> bool {
        Number::parse(self.line).is_ok_and(|n| n.matches(number))
    }
}

/// One user's assignments ([`Appearances::of_user`]).
pub struct UserLines<'a> {
    text: &'a str,
    entries: &'a [Entry],
}

impl<'a> UserLines<'a> {
    fn iter(&self) -> impl Iterator<Item = Assigned<'a>> + Clone + use<'a> {
        let text = self.text;
        self.entries.iter().map(move |e| Assigned::of(text, e))
    }

    /// True when `device` (as the telephone system names it, in any
    /// spelling) carries the user's line `number`: the devices the node
    /// may report for the user's own end of a call.
    pub fn is_device_of(&self, number: &Number, device: &str) -> bool {
        self.iter().any(|e| e.is_line(number) && same_device(e.device, device))
    }
}
/// The value of a `;device=` parameter of a line URI
/// (`tel:73124;phone-context=dialstring;device=SEPA1B2C3D4E5F6`), as Cisco
/// deployments name which phone of a shared line Lync controls.
pub fn device_param(uri: &str) -> Option<&str> {
    let uri = uri.split_once('@').map_or(uri, |(user, _)| user);
    uri.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("device").then(|| value.trim().trim_end_matches('>'))
    })
}

/// Two spellings of one device of the telephone system: equal names
/// (ASCII case ignored), or the same number inside `N<...>`.
fn same_device(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
        || crate::dialplan::device_key(a).eq_ignore_ascii_case(crate::dialplan::device_key(b))
}

/// The part of a user URI that identifies the user: without URI
/// parameters or headers, and without angle brackets. Sessions are keyed
/// by it too, so `sip:bob@example.com;user=phone` is bob.
pub fn user_key(uri: &str) -> &str {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let end = uri.find([';', '?', '>']).unwrap_or(uri.len());
    &uri[..end]
}

fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

impl Appearances {
    /// Reads a line-appearance file's text; every bad line is reported.
    /// Two passes over the text (one to size the table, one to fill it),
    /// so that booting with 16,384 users leaves no freed buffers behind.
    pub fn parse(text: &str) -> Result<Appearances, Vec<LineError>> {
        let (mut count, mut bytes) = (0, 0);
        let mut errors = Vec::new();
        for item in lines::parse(text) {
            match item {
                Ok(a) if [user_key(a.user).len(), a.device.len(), a.line.len()].iter().all(|&n| n <= 0xffff) => {
                    count += 1;
                    bytes += user_key(a.user).len() + a.device.len() + a.line.len();
                }
                Ok(a) => errors.push(LineError { line_number: a.line_number, kind: LineErrorKind::TooLong }),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut all = std::string::String::with_capacity(bytes);
        let mut entries = Vec::with_capacity(count);
        for a in lines::parse(text).flatten() {
            let (user, at) = (user_key(a.user), all.len() as u32);
            all.push_str(user);
            all.push_str(a.device);
            all.push_str(a.line);
            let (user, device, line) = (user.len() as u16, a.device.len() as u16, a.line.len() as u16);
            entries.push(Entry { at, user, device, line, primary: a.primary });
        }
        let text: Box<str> = all.into();
        entries.sort_by(|a, b| cmp_ignore_case(Assigned::of(&text, a).user, Assigned::of(&text, b).user));
        let mut by_device: Vec<u32> = (0..entries.len() as u32).collect();
        let device_of = |i: u32| device_key(Assigned::of(&text, &entries[i as usize]).device);
        by_device.sort_by(|&a, &b| cmp_ignore_case(device_of(a), device_of(b)));
        Ok(Appearances { text, entries, by_device })
    }

    /// Assignments held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nobody is assigned anything.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the table takes: its text and its entries.
    pub fn footprint(&self) -> usize {
        self.text.len() + self.entries.len() * core::mem::size_of::<Entry>() + self.by_device.len() * 4
    }

    fn assigned(&self, e: &Entry) -> Assigned<'_> {
        Assigned::of(&self.text, e)
    }

    fn of(&self, user: &str) -> UserLines<'_> {
        let key = user_key(user);
        let user_of = |e: &Entry| self.assigned(e).user;
        let start = self.entries.partition_point(|e| cmp_ignore_case(user_of(e), key) == Ordering::Less);
        let len =
            self.entries[start..].iter().take_while(|e| cmp_ignore_case(user_of(e), key) == Ordering::Equal).count();
        UserLines { text: &self.text, entries: &self.entries[start..start + len] }
    }

    /// True when `user` has at least one assignment.
    pub fn knows(&self, user: &str) -> bool {
        !self.of(user).entries.is_empty()
    }

    /// The line a session of `user` controls: `requested` (Lync's
    /// `lcs:line`) if it is assigned to the user (on `device`, when Lync
    /// names one with `;device=`), the user's first line when nothing is
    /// requested; `None` when the request names a line or device the user
    /// does not have.
    pub fn line_for(&self, user: &str, requested: Option<&Number>, device: Option<&str>) -> Option<&str> {
        match requested {
            Some(n) => self.appearance(user, n, device).map(|e| e.line),
            None => self.of(user).iter().next().map(|e| e.line),
        }
    }

    /// The user's appearance of line `number`: on `device` if named, else
    /// the one marked primary, else the first.
    fn appearance(&self, user: &str, number: &Number, device: Option<&str>) -> Option<Assigned<'_>> {
        let mut on_line = self.of(user).iter().filter(|e| e.is_line(number));
        match device {
            Some(d) => on_line.find(|e| same_device(e.device, d)),
            None => {
                let first = on_line.clone().next();
                on_line.find(|e| e.primary).or(first)
            }
        }
    }

    /// One user's assignments, looked up once for many questions.
    pub fn of_user(&self, user: &str) -> UserLines<'_> {
        self.of(user)
    }

    /// The line a device of the telephone system carries, as the line
    /// file writes it (its first, when it carries several): how Lync
    /// knows a colleague's phone that the node reports by name.
    pub fn line_of_device(&self, device: &str) -> Option<&str> {
        let key = device_key(device);
        let device_of = |i: u32| device_key(self.assigned(&self.entries[i as usize]).device);
        let at = self.by_device.partition_point(|&i| cmp_ignore_case(device_of(i), key) == Ordering::Less);
        let e = self.assigned(&self.entries[*self.by_device.get(at)? as usize]);
        device_key(e.device).eq_ignore_ascii_case(key).then_some(e.line)
    }

    /// The telephone system's name for the device the user controls when
    /// Lync names `device` (a line URI, or a device by name): the device
    /// of the user's appearance of that line, chosen by `;device=` in
    /// `device` or else in `session_line` (the line the session was
    /// opened for), else the primary one. `None` when the user has no such
    /// line or device.
    pub fn node_device(&self, user: &str, device: &str, session_line: &str) -> Option<&str> {
        match Number::parse(device) {
            Ok(n) => {
                let wanted = device_param(device).or_else(|| device_param(session_line));
                self.appearance(user, &n, wanted).map(|e| e.device)
            }
            Err(_) => self.of(user).iter().find(|e| same_device(e.device, device)).map(|e| e.device),
        }
    }

    /// True when `user` may control the line or device `device` names: a
    /// line assigned to them (any spelling of its number), or the name of
    /// a device carrying one of their lines.
    pub fn may_control(&self, user: &str, device: &str) -> bool {
        let mut mine = self.of(user).iter();
        match Number::parse(device) {
            Ok(n) => mine.any(|e| e.is_line(&n)),
            Err(_) => mine.any(|e| same_device(e.device, device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Appearances {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf")).unwrap();
        Appearances::parse(&text).unwrap()
    }

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    #[test]
    fn each_user_controls_exactly_their_lines() {
        let a = demo();
        assert_eq!(a.len(), 5);
        assert!(a.may_control("sip:alice@example.com", "tel:+14255550101;ext=101"));
        assert!(a.may_control("<sip:ALICE@example.com>", "tel:101"), "any case, any spelling");
        assert!(a.may_control("sip:alice@example.com;transport=tcp", "sip:+14255550101@example.com;user=phone"));
        assert!(a.may_control("sip:alice@example.com", "SEPA1B2C3D4E5F6"), "her device by name");
        assert!(!a.may_control("sip:alice@example.com", "tel:102"), "bob's line");
        assert!(!a.may_control("sip:alice@example.com", "SEPB1B2C3D4E5F6"), "bob's device");
        assert!(!a.may_control("sip:mallory@example.com", "tel:101"));
        // The shared line 199: carol and dave both.
        assert!(a.may_control("sip:carol@example.com", "tel:199") && a.may_control("sip:dave@example.com", "tel:199"));
        assert!(a.may_control("sip:carol@example.com", "tel:103") && !a.may_control("sip:dave@example.com", "tel:103"));
    }

    #[test]
    fn the_line_of_a_session() {
        let a = demo();
        assert_eq!(a.line_for("sip:alice@example.com", None, None), Some("tel:+14255550101;ext=101"));
        assert_eq!(a.line_for("sip:carol@example.com", Some(&n("tel:199")), None), Some("tel:+14255550199;ext=199"));
        assert_eq!(
            a.line_for("sip:carol@example.com", Some(&n("tel:199")), Some("SEPC1B2C3D4E5F6")),
            Some("tel:+14255550199;ext=199")
        );
        assert_eq!(
            a.line_for("sip:carol@example.com", Some(&n("tel:199")), Some("SEPD1B2C3D4E5F6")),
            None,
            "dave's phone"
        );
        assert_eq!(a.line_for("sip:alice@example.com", Some(&n("tel:102")), None), None);
        assert_eq!(a.line_for("sip:nobody@example.com", None, None), None);
        assert!(a.knows("sip:dave@example.com") && !a.knows("sip:eve@example.com"));
    }

    #[test]
    fn the_device_of_a_line_on_several_phones() {
        // A Cisco-style line on a desk phone and a soft phone, the soft
        // phone primary; carol's other line is on one phone; an
        // OpenScape-style user whose device is the number itself.
        let a = Appearances::parse(
            "sip:carol@example.com SEPC1B2C3D4E5F6 tel:73124;phone-context=dialstring\n\
             sip:carol@example.com CSFCAROL tel:73124;phone-context=dialstring primary\n\
             sip:carol@example.com SEPC1B2C3D4E5F6 tel:73125\n\
             sip:erin@example.com N<+14255550105>;noa=nk tel:+14255550105;ext=105\n",
        )
        .unwrap();
        let carol = "sip:carol@example.com";
        let line = "tel:73124;phone-context=dialstring;partition=BE_BRS_INT";
        assert_eq!(a.node_device(carol, line, line), Some("CSFCAROL"), "the primary one");
        let on_desk = "tel:73124;phone-context=dialstring;partition=BE_BRS_INT;device=SEPC1B2C3D4E5F6";
        assert_eq!(a.node_device(carol, on_desk, on_desk), Some("SEPC1B2C3D4E5F6"), "Lync's choice");
        assert_eq!(a.node_device(carol, "tel:73124", on_desk), Some("SEPC1B2C3D4E5F6"), "the session's choice");
        assert_eq!(a.node_device(carol, "tel:73125", line), Some("SEPC1B2C3D4E5F6"), "her other line");
        assert_eq!(a.node_device(carol, "tel:73124;device=SEPFFFFFFFFFFFF", line), None, "not her phone");
        assert_eq!(a.node_device(carol, "sepc1b2c3d4e5f6", line), Some("SEPC1B2C3D4E5F6"), "by name");
        assert_eq!(a.node_device(carol, "tel:73126", line), None);
        let erin = "sip:erin@example.com";
        assert_eq!(a.node_device(erin, "tel:+14255550105;ext=105", "tel:105"), Some("N<+14255550105>;noa=nk"));
        assert!(a.may_control(erin, "N<+14255550105>;displayNumber=+14255550105;noa=nk"), "another spelling");
        assert_eq!(device_param("sip:+14255550101;device=SEP1@example.com;user=phone"), Some("SEP1"));
        assert_eq!(a.line_of_device("N<csfcarol>;noa=nk"), Some("tel:73124;phone-context=dialstring"));
        assert_eq!(a.line_of_device("SEPC1B2C3D4E5F6"), Some("tel:73124;phone-context=dialstring"));
        assert_eq!(a.line_of_device("N<+14255550105>"), Some("tel:+14255550105;ext=105"));
        assert_eq!(a.line_of_device("SEPFFFFFFFFFFFF"), None);
        assert_eq!(a.line_of_device("ZZZ"), None);
        assert_eq!(device_param("tel:101;ext=101"), None);
    }

    #[test]
    fn bad_files_are_refused_whole() {
        let errors = Appearances::parse("sip:a@x D tel:1\nnot enough\n").err().unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line_number, 2);
    }
}
