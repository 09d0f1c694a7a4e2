//! Telephone numbers as device identifiers: `tel:+14255550101;ext=101`,
//! `tel:101`, `sip:+14255550101@example.com;user=phone`, `tel:+1 (425)
//! 555-0101`. Lync and administrators write the same line in all these
//! ways; [`Number`] keeps what identifies it so that they compare equal.
//!
//! The rule (PROTOCOL.md): the global number, with its extension, wins;
//! without one on either side, the extension (or a bare local number,
//! which is one) decides. Case and visual separators (`-`, `.`, space,
//! parentheses) are ignored.

use core::fmt;

use heapless::String;

/// Most digits kept of a global number or an extension.
pub const MAX_DIGITS: usize = 24;

/// A number, normalised: digits (and `*`, `#`) only, a global number
/// keeping its leading `+`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Number {
    global: Option<String<MAX_DIGITS>>,
    extension: Option<String<MAX_DIGITS>>,
}

/// Why a device identifier is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// Neither `tel:`, `sip:` nor `sips:`.
    UnknownScheme,
    /// No digits where the number should be.
    NoDigits,
    /// A character that is neither a digit nor a visual separator.
    BadCharacter,
    /// More than [`MAX_DIGITS`] digits.
    TooLong,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberError::UnknownScheme => "not a tel: or sip: URI",
            NumberError::NoDigits => "no number in the URI",
            NumberError::BadCharacter => "the number has a character that is not a digit",
            NumberError::TooLong => "the number is too long",
        })
    }
}

impl std::error::Error for NumberError {}

fn digits(text: &str) -> Result<String<MAX_DIGITS>, NumberError> {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        match c {
            '0'..='9' | '*' | '#' => out.push(c).map_err(|_| NumberError::TooLong)?,
            '+' if i == 0 => out.push(c).map_err(|_| NumberError::TooLong)?,
            '-' | '.' | ' ' | '(' | ')' => {}
            _ => return Err(NumberError::BadCharacter),
        }
    }
    if out.is_empty() || out.as_str() == "+" {
        return Err(NumberError::NoDigits);
    }
    Ok(out)
}

impl Number {
    /// Reads a `tel:` or `sip:`/`sips:` URI.
    pub fn parse(uri: &str) -> Result<Number, NumberError> {
        let uri = uri.trim();
        let (scheme, rest) = uri.split_once(':').ok_or(NumberError::UnknownScheme)?;
        let (number, params) = if scheme.eq_ignore_ascii_case("tel") {
            rest.split_once(';').unwrap_or((rest, ""))
        } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            // The user part is the number; user parameters (;ext=, ;phone-context=)
            // may sit inside it before the '@'.
            let user = rest.split_once('@').map_or(rest, |(user, _)| user);
            user.split_once(';').unwrap_or((user, ""))
        } else {
            return Err(NumberError::UnknownScheme);
        };
        let number = digits(number)?;
        let extension = params
            .split(';')
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("ext"))
            .map(|(_, value)| digits(value))
            .transpose()?;
        Ok(if number.starts_with('+') {
            Number { global: Some(number), extension }
        } else {
            // A local number: it is the extension (an explicit ;ext= wins).
            Number { global: None, extension: extension.or(Some(number)) }
        })
    }

    /// The global number with its `+`, if the URI had one.
    pub fn global(&self) -> Option<&str> {
        self.global.as_deref()
    }

    /// The extension, if known.
    pub fn extension(&self) -> Option<&str> {
        self.extension.as_deref()
    }

    /// True when both name the same line: equal global numbers (and no
    /// conflicting extensions), or, when either lacks a global number,
    /// equal extensions.
    pub fn matches(&self, other: &Number) -> bool {
        self.matches_parts(other.global(), other.extension())
    }

    /// [`Number::matches`] against a number kept as its two parts (as
    /// [`Number::global`] and [`Number::extension`] give them).
    pub fn matches_parts(&self, global: Option<&str>, extension: Option<&str>) -> bool {
        match (self.global(), global) {
            (Some(a), Some(b)) => {
                a == b
                    && match (self.extension(), extension) {
                        (Some(x), Some(y)) => x == y,
                        _ => true,
                    }
            }
            _ => self.extension().is_some() && self.extension() == extension,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.global, &self.extension) {
            (Some(g), Some(e)) => write!(f, "tel:{g};ext={e}"),
            (Some(g), None) => write!(f, "tel:{g}"),
            (None, Some(e)) => write!(f, "tel:{e}"),
            (None, None) => f.write_str("tel:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(uri: &str) -> Number {
        Number::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    #[test]
    fn the_same_line_written_every_way() {
        let line = n("tel:+14255550101;ext=101");
        for same in [
            "tel:+14255550101;ext=101",
            "TEL:+1-425-555-0101;EXT=101",
            "tel:+1 (425) 555.0101",
            "tel:101",
            "tel:101;phone-context=dialstring",
            "sip:+14255550101@example.com;user=phone",
            "sip:+14255550101;ext=101@example.com;user=phone",
            "sip:101@example.com",
        ] {
            assert!(line.matches(&n(same)), "{same}");
            assert!(n(same).matches(&line), "{same} (symmetric)");
        }
        for other in ["tel:+14255550102;ext=102", "tel:102", "tel:+14255550101;ext=199", "tel:+14255559876"] {
            assert!(!line.matches(&n(other)), "{other}");
        }
    }

    #[test]
    fn parts_and_display() {
        let line = n("tel:+1 (425) 555-0101;ext=101");
        assert_eq!((line.global(), line.extension()), (Some("+14255550101"), Some("101")));
        assert_eq!(line.to_string(), "tel:+14255550101;ext=101");
        assert_eq!(n("tel:73124;phone-context=dialstring").to_string(), "tel:73124");
        assert!(!n("tel:+14255559876").matches(&n("tel:9876")), "no extension on either side");
    }

    #[test]
    fn refusals() {
        assert_eq!(Number::parse("mailto:a@b"), Err(NumberError::UnknownScheme));
        assert_eq!(Number::parse("101"), Err(NumberError::UnknownScheme));
        assert_eq!(Number::parse("tel:"), Err(NumberError::NoDigits));
        assert_eq!(Number::parse("tel:+"), Err(NumberError::NoDigits));
        assert_eq!(Number::parse("tel:12a4"), Err(NumberError::BadCharacter));
        assert_eq!(Number::parse("tel:1+2"), Err(NumberError::BadCharacter));
        assert_eq!(Number::parse(&format!("tel:{}", "1".repeat(30))), Err(NumberError::TooLong));
        assert_eq!(Number::parse("sip:alice@example.com"), Err(NumberError::BadCharacter));
    }
}
