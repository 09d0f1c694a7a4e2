//! The dial plan: how numbers cross between Lync and the telephone system.
//!
//! Lync names every party by a URI in E.164 (`tel:+14255559876`,
//! `sip:+14255550101@example.com;user=phone`); a PBX names them by its dial
//! plan (`914255559876`, `101`, `N<+14255550101>;noa=nk`). The operator
//! writes two ordered lists of rules, as PBX route patterns are written:
//! `to_node` for the numbers Lync dials, `to_lync` for the numbers the node
//! reports. The first rule whose pattern matches the whole number rewrites
//! it: `strip` leading characters go, `prefix` is put in front.
//!
//! ```text
//! [dialplan]
//! to_node = +142555501XX  strip=9            # our DIDs: +14255550101 dials 101
//! to_node = 1XX                              # extensions as they are
//! to_node = +1NXXNXXXXXX  strip=2 prefix=91  # national: 9, 1, ten digits
//! to_node = +!            strip=1 prefix=9011 # international: 9, 011, the number
//! to_lync = 1XX           prefix=+14255550   # 101 is +14255550101
//! to_lync = 91NXXNXXXXXX  strip=2 prefix=+1
//! ```
//!
//! A pattern is digits, `*`, `#` and `+` (first only) matched as they are,
//! `X` any digit, `N` 2-9, `Z` 1-9, `[1-5]` or `[139]` one digit of a set,
//! and a final `!` for one or more further digits. Rules are read once,
//! from the configuration; matching and rewriting never allocate.

use core::fmt;

use heapless::String;

use crate::tel::Number;

/// Most characters of a number, before or after a rule.
pub const MAX_NUMBER: usize = 32;

/// One rule: a pattern, and how a matching number is rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pattern: String<MAX_NUMBER>,
    strip: usize,
    prefix: String<MAX_NUMBER>,
}

/// Which way a rule rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A number Lync dials, to the node's dial string (`to_node`).
    ToNode,
    /// A number the node reports, to what Lync shows (`to_lync`).
    ToLync,
}

/// The rules of both directions, each list in the operator's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialPlan {
    to_node: Vec<Rule>,
    to_lync: Vec<Rule>,
}

/// A number as rules see it: digits, `*`, `#`, a leading `+`.
pub type Digits = String<MAX_NUMBER>;

fn is_dial_char(c: u8) -> bool {
    c.is_ascii_digit() || c == b'*' || c == b'#'
}

/// True when `text` is a number rules can read: dial characters, a
/// leading `+` allowed.
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(is_dial_char)
}

/// The number a device identifier carries, if it is one: the global
/// number (else the extension) of a `tel:` or `sip:` URI, the inside of a
/// `N<...>` form (`N<+14255550101>;noa=nk`), or a bare dial string (`101`,
/// `914255559876;displayNumber=...`). `None` for a device name
/// (`SEPA1B2C3D4E5F6`) or anything else that is not a number.
pub fn number_of(device: &str) -> Option<Digits> {
    let device = device.trim();
    let scheme = device.split_once(':').map(|(s, _)| s);
    if scheme.is_some_and(|s| ["tel", "sip", "sips"].iter().any(|k| s.eq_ignore_ascii_case(k))) {
        let n = Number::parse(device).ok()?;
        return n.global().or(n.extension()).and_then(|d| Digits::try_from(d).ok());
    }
    let inner = match device.strip_prefix("N<").or_else(|| device.strip_prefix("n<")) {
        Some(rest) => rest.split_once('>')?.0,
        None => device.split(';').next().unwrap_or(""),
    };
    let inner = inner.trim();
    if !is_number(inner) {
        return None;
    }
    Digits::try_from(inner).ok()
}

/// What identifies a device the node names, for comparing two spellings
/// of it: the inside of `N<...>`, else the text before any `;` parameter.
pub fn device_key(device: &str) -> &str {
    let device = device.trim();
    match device.strip_prefix("N<").or_else(|| device.strip_prefix("n<")) {
        Some(rest) => rest.split_once('>').map_or(rest, |(inner, _)| inner),
        None => device.split(';').next().unwrap_or(""),
    }
    .trim()
}

/// How many characters of a number one pattern item takes, and whether it
/// takes `c`.
enum Item {
    One(fn(u8) -> bool),
    Literal(u8),
    Set(usize, usize),
    Rest,
}

/// Reads the pattern item at `at`; `None` at the end.
fn item(pattern: &[u8], at: usize) -> Option<(Item, usize)> {
    let c = *pattern.get(at)?;
    Some(match c {
        b'X' | b'x' => (Item::One(|c| c.is_ascii_digit()), at + 1),
        b'N' | b'n' => (Item::One(|c| (b'2'..=b'9').contains(&c)), at + 1),
        b'Z' | b'z' => (Item::One(|c| (b'1'..=b'9').contains(&c)), at + 1),
        b'!' => (Item::Rest, at + 1),
        b'[' => {
            let close = pattern[at..].iter().position(|&c| c == b']').map_or(pattern.len(), |p| at + p);
            (Item::Set(at + 1, close), close + 1)
        }
        c => (Item::Literal(c), at + 1),
    })
}

fn in_set(set: &[u8], c: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            if (set[i]..=set[i + 2]).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if set[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

impl Rule {
    /// Reads a rule's text: `PATTERN [strip=N] [prefix=DIGITS]`.
    pub fn parse(text: &str) -> Result<Rule, std::string::String> {
        let mut words = text.split_whitespace();
        let pattern = words.next().ok_or("a rule needs a pattern")?;
        let pattern = check_pattern(pattern)?;
        let mut rule = Rule { pattern, strip: 0, prefix: String::new() };
        let (mut strip_seen, mut prefix_seen) = (false, false);
        for word in words {
            match word.split_once('=') {
                Some(("strip", n)) if !strip_seen => {
                    strip_seen = true;
                    rule.strip = n.parse().map_err(|_| format!("strip={n:?} is not a count of characters"))?;
                    if rule.strip > rule.shortest() {
                        return Err(format!(
                            "strip={} takes more than the {} characters the pattern {} matches at least",
                            rule.strip,
                            rule.shortest(),
                            rule.pattern
                        ));
                    }
                }
                Some(("prefix", p)) if !prefix_seen => {
                    prefix_seen = true;
                    let digits = p.strip_prefix('+').unwrap_or(p);
                    if p.is_empty() || !digits.bytes().all(is_dial_char) {
                        return Err(format!("prefix={p:?} is not digits (*, # and a leading + allowed)"));
                    }
                    rule.prefix = String::try_from(p).map_err(|_| format!("prefix={p:?} is too long"))?;
                }
                Some(("strip" | "prefix", _)) => return Err(format!("{word:?} given twice")),
                _ => return Err(format!("{word:?} is not strip=N or prefix=DIGITS")),
            }
        }
        Ok(rule)
    }

    /// The fewest characters a number matching the pattern has.
    fn shortest(&self) -> usize {
        let p = self.pattern.as_bytes();
        let (mut n, mut at) = (0, 0);
        while let Some((_, next)) = item(p, at) {
            n += 1;
            at = next;
        }
        n
    }

    /// True when the pattern matches all of `number`.
    pub fn matches(&self, number: &str) -> bool {
        let (p, s) = (self.pattern.as_bytes(), number.as_bytes());
        let (mut at, mut i) = (0, 0);
        while let Some((it, next)) = item(p, at) {
            match it {
                Item::Rest => return i < s.len() && s[i..].iter().all(|&c| is_dial_char(c)),
                _ if i >= s.len() => return false,
                Item::One(test) if test(s[i]) => {}
                Item::Literal(c) if c == s[i] => {}
                Item::Set(from, to) if in_set(&p[from..to], s[i]) => {}
                _ => return false,
            }
            at = next;
            i += 1;
        }
        i == s.len()
    }

    /// `number` rewritten: its first `strip` characters replaced by the
    /// prefix. `None` if the result is too long.
    fn rewrite(&self, number: &str) -> Option<Digits> {
        let mut out = self.prefix.clone();
        out.push_str(number.get(self.strip..)?).ok()?;
        Some(out)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)?;
        if self.strip > 0 {
            write!(f, " strip={}", self.strip)?;
        }
        if !self.prefix.is_empty() {
            write!(f, " prefix={}", self.prefix)?;
        }
        Ok(())
    }
}

fn check_pattern(pattern: &str) -> Result<String<MAX_NUMBER>, std::string::String> {
    let p = pattern.as_bytes();
    let bad = |why: &str| Err(format!("pattern {pattern:?}: {why}"));
    let mut at = 0;
    while at < p.len() {
        match p[at] {
            b'+' if at == 0 => {}
            b'+' => return bad("+ only at the start"),
            b'!' if at + 1 == p.len() => {}
            b'!' => return bad("! only at the end"),
            b'[' => {
                let Some(close) = p[at..].iter().position(|&c| c == b']') else {
                    return bad("[ without ]");
                };
                let set = &p[at + 1..at + close];
                if set.is_empty() || !set.iter().all(|&c| c.is_ascii_digit() || c == b'-') {
                    return bad("a [set] holds digits and ranges such as 1-5");
                }
                at += close;
            }
            c if is_dial_char(c) || b"XxNnZz".contains(&c) => {}
            c => return bad(&format!("{:?} is not a digit, X, N, Z, [set], ! or a leading +", c as char)),
        }
        at += 1;
    }
    if p.is_empty() {
        return bad("empty");
    }
    String::try_from(pattern).map_err(|_| format!("pattern {pattern:?} is longer than {MAX_NUMBER} characters"))
}

impl DialPlan {
    /// An empty plan: no number crosses (every dialled number is refused).
    pub fn new() -> DialPlan {
        DialPlan::default()
    }

    /// Appends a rule to one direction's list.
    pub fn push(&mut self, direction: Direction, rule: Rule) {
        match direction {
            Direction::ToNode => self.to_node.push(rule),
            Direction::ToLync => self.to_lync.push(rule),
        }
    }

    /// The rules of one direction, in order.
    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::ToNode => &self.to_node,
            Direction::ToLync => &self.to_lync,
        }
    }

    /// `number` rewritten by the first rule of `direction` that matches
    /// it; `None` when none does.
    pub fn apply(&self, direction: Direction, number: &str) -> Option<Digits> {
        self.rules(direction).iter().find(|r| r.matches(number)).and_then(|r| r.rewrite(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rules: &[(Direction, &str)]) -> DialPlan {
        let mut plan = DialPlan::new();
        for (d, text) in rules {
            plan.push(*d, Rule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")));
        }
        plan
    }

    /// The rules of config/appliance.conf's plain-extension example.
    fn extensions() -> DialPlan {
        use Direction::*;
        plan(&[
            (ToNode, "+142555501XX strip=9"),
            (ToNode, "1XX"),
            (ToNode, "+1NXXNXXXXXX strip=2 prefix=91"),
            (ToNode, "+! strip=1 prefix=9011"),
            (ToLync, "1XX prefix=+14255550"),
            (ToLync, "91NXXNXXXXXX strip=2 prefix=+1"),
            (ToLync, "9011! strip=4 prefix=+"),
        ])
    }

    #[test]
    fn numbers_lync_dials_become_dial_strings() {
        let p = extensions();
        let to_node = |uri: &str| p.apply(Direction::ToNode, &number_of(uri).unwrap()).map(|d| d.to_string());
        assert_eq!(to_node("tel:+14255550102;ext=102").as_deref(), Some("102"), "a colleague by line URI");
        assert_eq!(to_node("tel:102").as_deref(), Some("102"), "an extension");
        assert_eq!(to_node("tel:+14255559876").as_deref(), Some("914255559876"), "national");
        assert_eq!(to_node("sip:+14255559876@example.com;user=phone").as_deref(), Some("914255559876"));
        assert_eq!(to_node("tel:+3222220220").as_deref(), Some("90113222220220"), "international");
        assert_eq!(to_node("tel:73124;phone-context=dialstring"), None, "outside the plan");
        assert_eq!(to_node("tel:555"), None);
    }

    #[test]
    fn numbers_the_node_reports_become_e164() {
        let p = extensions();
        let to_lync = |device: &str| p.apply(Direction::ToLync, &number_of(device).unwrap()).map(|d| d.to_string());
        assert_eq!(to_lync("101").as_deref(), Some("+14255550101"));
        assert_eq!(to_lync("914255559876").as_deref(), Some("+14255559876"));
        assert_eq!(to_lync("90113222220220").as_deref(), Some("+3222220220"));
        assert_eq!(to_lync("N<914255559876>;noa=nk").as_deref(), Some("+14255559876"));
        assert_eq!(to_lync("4255559876"), None);
    }

    #[test]
    fn numbers_in_every_spelling() {
        // OpenScape-style ids from public CSTA frames, Lync's URIs, dial strings.
        for (device, number) in [
            ("N<302118840101>;displayNumber=302118840101;noa=nk", Some("302118840101")),
            ("N<+14255550101>;noa=nk", Some("+14255550101")),
            ("101", Some("101")),
            (" 914255559876 ", Some("914255559876")),
            ("tel:+14255550101;ext=101", Some("+14255550101")),
            ("tel:73124;phone-context=dialstring;partition=BE_BRS_INT", Some("73124")),
            ("sip:+14255550101@example.com;user=phone", Some("+14255550101")),
            ("SEPA1B2C3D4E5F6", None),
            ("N<302118840101", None),
            ("sip:alice@example.com", None),
            ("", None),
        ] {
            assert_eq!(number_of(device).as_deref(), number, "{device}");
        }
        assert_eq!(device_key("N<302118840101>;displayNumber=302118840101;noa=nk"), "302118840101");
        assert_eq!(device_key("101;noa=nk"), "101");
        assert_eq!(device_key("SEPA1B2C3D4E5F6"), "SEPA1B2C3D4E5F6");
    }

    #[test]
    fn patterns() {
        let r = |p: &str| Rule::parse(p).unwrap();
        assert!(r("1XX").matches("101") && !r("1XX").matches("1011") && !r("1XX").matches("10"));
        assert!(r("[2-4]X").matches("35") && !r("[2-4]X").matches("55"));
        assert!(r("[139]").matches("3") && !r("[139]").matches("2"));
        assert!(r("NXX").matches("201") && !r("NXX").matches("101"));
        assert!(r("Z!").matches("19") && !r("Z!").matches("1") && !r("Z!").matches("09"));
        assert!(r("+!").matches("+3222220220") && !r("+!").matches("3222220220"));
        assert!(r("*7X").matches("*72") && r("#").matches("#"));
        assert_eq!(r("+1NXXNXXXXXX strip=2 prefix=91").to_string(), "+1NXXNXXXXXX strip=2 prefix=91");
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (text, why) in [
            ("", "a rule needs a pattern"),
            ("1A1", "pattern \"1A1\": 'A' is not a digit, X, N, Z, [set], ! or a leading +"),
            ("1+1", "pattern \"1+1\": + only at the start"),
            ("1!1", "pattern \"1!1\": ! only at the end"),
            ("[1-5", "pattern \"[1-5\": [ without ]"),
            ("[a]", "pattern \"[a]\": a [set] holds digits and ranges such as 1-5"),
            ("1XX strip=4", "strip=4 takes more than the 3 characters the pattern 1XX matches at least"),
            ("1XX strip=x", "strip=\"x\" is not a count of characters"),
            ("1XX prefix=9a", "prefix=\"9a\" is not digits (*, # and a leading + allowed)"),
            ("1XX prefix=9 prefix=8", "\"prefix=8\" given twice"),
            ("1XX drop=1", "\"drop=1\" is not strip=N or prefix=DIGITS"),
        ] {
            assert_eq!(Rule::parse(text).err().as_deref(), Some(why), "{text}");
        }
        assert!(Rule::parse(&"1".repeat(40)).is_err());
    }

    #[test]
    fn the_first_matching_rule_wins_and_overlong_results_fail() {
        use Direction::*;
        let p = plan(&[(ToNode, "1XX prefix=8"), (ToNode, "1!")]);
        assert_eq!(p.apply(ToNode, "101").as_deref(), Some("8101"));
        assert_eq!(p.apply(ToNode, "1011").as_deref(), Some("1011"));
        let long = plan(&[(ToNode, "! prefix=99999999999999999999")]);
        assert_eq!(long.apply(ToNode, "1234567890123"), None);
        assert!(DialPlan::new().apply(ToNode, "101").is_none());
    }
}
