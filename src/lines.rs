//! The line-appearance file: which user may control which line on which
//! device. One assignment a line, three fields separated by white space:
//!
//! ```text
//! # user SIP URI          device            line (tel URI)
//! sip:alice@example.com   SEPA1B2C3D4E5F6   tel:+14255550101;ext=101
//! sip:alice@example.com   SEPA9B8C7D6E5F4   tel:+14255550101;ext=101  primary
//! ```
//!
//! `#` starts a comment; blank lines are ignored. A line may appear on many
//! devices and a device may carry many lines. The device is the telephone
//! system's name for it, as its CTI interface spells it (`SEP...`, `101`,
//! `N<+14255550101>;noa=nk`). When a user's line is on several devices,
//! the one marked `primary` is the one controlled unless Lync names
//! another (`;device=` in its line URI). The gateway reads it into its
//! tables; the simulator reads the same format for its telephone system.

use core::fmt;

use crate::tel::{Number, NumberError};

/// One assignment, borrowed from the file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment<'a> {
    /// The user's SIP URI, as written.
    pub user: &'a str,
    /// The device name.
    pub device: &'a str,
    /// The line's URI, as written.
    pub line: &'a str,
    /// The line, normalised.
    pub number: Number,
    /// Marked `primary`: the device controlled when Lync names none.
    pub primary: bool,
    /// Where in the file (1-based).
    pub line_number: usize,
}

/// What is wrong with one line of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineError {
    /// Where (1-based).
    pub line_number: usize,
    /// What.
    pub kind: LineErrorKind,
}

/// The faults a line can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineErrorKind {
    /// Not three fields (and an optional fourth).
    FieldCount(usize),
    /// A fourth field other than `primary`.
    BadFlag,
    /// The user is not a `sip:` or `sips:` URI.
    BadUser,
    /// The line is not a number.
    BadLine(NumberError),
    /// A field longer than the gateway keeps (65,535 bytes).
    TooLong,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            LineErrorKind::FieldCount(n) => {
                write!(
                    f,
                    "{}: expected 3 fields (user device line) and an optional `primary`, found {n}",
                    self.line_number
                )
            }
            LineErrorKind::BadFlag => write!(f, "{}: the fourth field can only be `primary`", self.line_number),
            LineErrorKind::BadUser => write!(f, "{}: the user must be a sip: or sips: URI", self.line_number),
            LineErrorKind::BadLine(e) => write!(f, "{}: the line is not a telephone number: {e}", self.line_number),
            LineErrorKind::TooLong => write!(f, "{}: a field is longer than 65535 bytes", self.line_number),
        }
    }
}

impl std::error::Error for LineError {}

/// Every assignment of `text`, or the error of each bad line, in order.
pub fn parse(text: &str) -> impl Iterator<Item = Result<Assignment<'_>, LineError>> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line_number = i + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            return None;
        }
        let fail = |kind| Some(Err(LineError { line_number, kind }));
        let mut fields = content.split_whitespace();
        let (Some(user), Some(device), Some(line), flag, None) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return fail(LineErrorKind::FieldCount(content.split_whitespace().count()));
        };
        let primary = match flag {
            None => false,
            Some(f) if f.eq_ignore_ascii_case("primary") => true,
            Some(_) => return fail(LineErrorKind::BadFlag),
        };
        let lower = user.get(..5).unwrap_or("").to_ascii_lowercase();
        if !(lower.starts_with("sip:") || lower.starts_with("sips:")) || !user.contains('@') {
            return fail(LineErrorKind::BadUser);
        }
        match Number::parse(line) {
            Ok(number) => Some(Ok(Assignment { user, device, line, number, primary, line_number })),
            Err(e) => fail(LineErrorKind::BadLine(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_directory() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/lines.conf")).unwrap();
        let all: Vec<_> = parse(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].user, "sip:alice@example.com");
        assert_eq!(all[0].device, "SEPA1B2C3D4E5F6");
        assert_eq!(all[0].number.global(), Some("+14255550101"));
        // The shared line: carol and dave, the same number.
        assert!(all[3].number.matches(&all[4].number));
        assert_ne!(all[3].user, all[4].user);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "# comment\n\nsip:a@x D1 tel:101\nsip:b@x D2\nbob D3 tel:103\nsip:c@x D4 tel:abc # bad\nsip:d@x D5 tel:105 extra\n\
                    sip:e@x D6 tel:106 primary more\nsip:f@x N<+14255550107>;noa=nk tel:107 PRIMARY\n";
        let errors: Vec<String> = parse(text).filter_map(Result::err).map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "4: expected 3 fields (user device line) and an optional `primary`, found 2",
                "5: the user must be a sip: or sips: URI",
                "6: the line is not a telephone number: the number has a character that is not a digit",
                "7: the fourth field can only be `primary`",
                "8: expected 3 fields (user device line) and an optional `primary`, found 5",
            ]
        );
        let good: Vec<_> = parse(text).filter_map(Result::ok).map(|a| (a.device, a.primary)).collect();
        assert_eq!(good, [("D1", false), ("N<+14255550107>;noa=nk", true)]);
    }
}
