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

/// One assignment: its three strings and its line's number (global part
/// and extension, normalised: compared without parsing the line again),
/// one after the other in the table's text.
#[derive(Clone, Copy)]
struct Entry {
    at: u32,
    user: u16,
    device: u16,
    line: u16,
    global: u8,
    extension: u8,
    primary: bool,
}

/// The assignments, sorted by user, with an index by device. Their
/// strings share one buffer: 16,384 users cost their text and 16 bytes
/// each.
pub struct Appearances {
    text: Box<str>,
    entries: Vec<Entry>,
    /// Entry positions, sorted by device key (ASCII case ignored).
    by_device: Vec<u32>,
}

impl Entry {
    /// The user, without slicing the other strings (the binary searches).
    fn user<'a>(&self, text: &'a str) -> &'a str {
        &text[self.at as usize..self.at as usize + usize::from(self.user)]
    }

    /// The device, likewise.
    fn device<'a>(&self, text: &'a str) -> &'a str {
        let at = self.at as usize + usize::from(self.user);
        &text[at..at + usize::from(self.device)]
    }
}

/// An entry with its strings (but the user, which only the searches by
/// user read: [`Entry::user`]).
#[derive(Clone, Copy)]
struct Assigned<'a> {
    device: &'a str,
    line: &'a str,
    global: Option<&'a str>,
    extension: Option<&'a str>,
    primary: bool,
}

impl<'a> Assigned<'a> {
    fn of(text: &'a str, e: &Entry) -> Assigned<'a> {
        let mut at = e.at as usize + usize::from(e.user);
        let mut next = |len: usize| {
            let part = &text[at..at + len];
            at += len;
            part
        };
        let (device, line) = (next(usize::from(e.device)), next(usize::from(e.line)));
        let (global, extension) = (next(usize::from(e.global)), next(usize::from(e.extension)));
        Assigned {
            device,
            line,
            global: (!global.is_empty()).then_some(global),
            extension: (!extension.is_empty()).then_some(extension),
            primary: e.primary,
        }
    }

    /// True when the line is `number`.
    fn is_line(&self, number: &Number) -> bool {
        number.matches_parts(self.global, self.extension)
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
        let parts = |a: &lines::Assignment<'_>| {
            let (global, extension) = (a.number.global().unwrap_or(""), a.number.extension().unwrap_or(""));
            [user_key(a.user).len(), a.device.len(), a.line.len(), global.len(), extension.len()]
        };
        for item in lines::parse(text) {
            match item {
                Ok(a) if parts(&a)[..3].iter().all(|&n| n <= 0xffff) && parts(&a)[3..].iter().all(|&n| n <= 0xff) => {
                    count += 1;
                    bytes += parts(&a).iter().sum::<usize>();
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
            let at = all.len() as u32;
            let (global, extension) = (a.number.global().unwrap_or(""), a.number.extension().unwrap_or(""));
            for part in [user_key(a.user), a.device, a.line, global, extension] {
                all.push_str(part);
            }
            let [user, device, line, global, extension] = parts(&a);
            let (user, device, line) = (user as u16, device as u16, line as u16);
            let (global, extension) = (global as u8, extension as u8);
            entries.push(Entry { at, user, device, line, global, extension, primary: a.primary });
        }
        let text: Box<str> = all.into();
        entries.sort_by(|a, b| cmp_ignore_case(a.user(&text), b.user(&text)));
        let mut by_device: Vec<u32> = (0..entries.len() as u32).collect();
        let device_of = |i: u32| device_key(entries[i as usize].device(&text));
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
        let user_of = |e: &Entry| e.user(&self.text);
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
        let device_of = |i: u32| device_key(self.entries[i as usize].device(&self.text));
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
