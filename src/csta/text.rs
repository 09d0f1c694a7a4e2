//! Character data of a CSTA element, borrowed from the document with its
//! entity references still in it, and decoded only when asked.

use core::fmt;

use crate::outbuf::{OutBuf, Overflow};

/// The text of one element: a slice of the input, entities unresolved.
///
/// Device identifiers, call ids and cross-reference ids are almost never
/// escaped, so [`Text::as_str`] usually hands out the slice as is; when
/// they are, [`Text::chars`] decodes on the fly and
/// [`Text::unescape_into`] decodes into a small caller-owned scratch buffer.
/// Entity references were checked when the document was parsed, so
/// decoding cannot fail.
#[derive(Clone, Copy)]
pub struct Text<'a> {
    raw: &'a str,
    /// True when `raw` is the text itself (CDATA, or built in code), false
    /// when it is XML character data with references still in it.
    literal: bool,
}

impl<'a> Text<'a> {
    /// Text as it appears in character data, entities unresolved. The
    /// caller has checked the references with [`check_references`].
    pub(crate) fn escaped(raw: &'a str) -> Self {
        Text { raw, literal: false }
    }

    /// Text taken literally: a CDATA section, or a value built in code.
    /// It is escaped when written.
    pub const fn literal(text: &'a str) -> Self {
        Text { raw: text, literal: true }
    }

    /// The text exactly as it appears in the document.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded text without copying, when no decoding is needed.
    pub fn as_str(&self) -> Option<&'a str> {
        (self.literal || !self.raw.contains('&')).then_some(self.raw)
    }

    /// True for empty text.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The decoded characters.
    pub fn chars(&self) -> Unescaped<'a> {
        Unescaped { rest: self.raw, literal: self.literal }
    }

    /// Compares the decoded text with `other`.
    pub fn eq_str(&self, other: &str) -> bool {
        match self.as_str() {
            Some(s) => s == other,
            None => self.chars().eq(other.chars()),
        }
    }

    /// Decodes into `scratch`, returning the decoded text.
    pub fn unescape_into<'s>(&self, scratch: &'s mut [u8]) -> Result<&'s str, Overflow> {
        let mut out = OutBuf::new(scratch);
        for c in self.chars() {
            out.put_str(c.encode_utf8(&mut [0; 4]))?;
        }
        let bytes = out.into_bytes();
        Ok(core::str::from_utf8(bytes).expect("encoded from chars"))
    }

    /// Writes the text as XML character data: copied as is when it came
    /// escaped from a document, escaped otherwise.
    pub fn write_xml(&self, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        if self.literal { write_escaped(out, self.raw) } else { out.put_str(self.raw) }
    }
}

/// Literal text, as [`Text::literal`].
impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        Text::literal(text)
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.eq_str(other)
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        self.chars().try_for_each(|c| f.write_char(c))
    }
}

/// Texts are equal when their decoded characters are.
impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_str(), other.as_str()) {
            (Some(a), Some(b)) => a == b,
            _ => self.chars().eq(other.chars()),
        }
    }
}

impl Eq for Text<'_> {}

/// The characters of a [`Text`], entity references decoded.
#[derive(Debug, Clone)]
pub struct Unescaped<'a> {
    rest: &'a str,
    literal: bool,
}

impl Iterator for Unescaped<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let c = self.rest.chars().next()?;
        if c != '&' || self.literal {
            self.rest = &self.rest[c.len_utf8()..];
            return Some(c);
        }
        let end = self.rest.find(';').expect("references checked at parse");
        let decoded = decode_reference(&self.rest[1..end]).expect("references checked at parse");
        self.rest = &self.rest[end + 1..];
        Some(decoded)
    }
}

/// Decodes the name of one reference (between `&` and `;`).
fn decode_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix('x') {
                Some(hex) if !hex.is_empty() && hex.len() <= 6 => u32::from_str_radix(hex, 16).ok()?,
                None if !number.is_empty() && number.len() <= 7 => number.parse().ok()?,
                _ => return None,
            };
            char::from_u32(code).filter(|&c| c != '\0')
        }
    }
}

/// Checks that every `&` in character data starts one of the five
/// predefined entities or a character reference. Documents carry no DTD
/// (it is refused), so no other entity can be defined.
pub(crate) fn check_references(raw: &str) -> bool {
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        rest = &rest[at + 1..];
        let Some(end) = rest.find(';') else { return false };
        if decode_reference(&rest[..end]).is_none() {
            return false;
        }
        rest = &rest[end + 1..];
    }
    true
}

/// Writes `text` as XML character data or attribute value.
pub fn write_escaped(out: &mut OutBuf<'_>, text: &str) -> Result<(), Overflow> {
    let mut rest = text;
    while let Some(at) = rest.find(['<', '>', '&', '"', '\'']) {
        out.put_str(&rest[..at])?;
        out.put_str(match rest.as_bytes()[at] {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'"' => "&quot;",
            _ => "&apos;",
        })?;
        rest = &rest[at + 1..];
    }
    out.put_str(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_predefined_and_character_references() {
        let t = Text::escaped("a &amp; b &lt;c&gt; &#65;&#x42; &quot;&apos;");
        assert!(check_references(t.raw()));
        assert_eq!(t.as_str(), None);
        assert_eq!(t.to_string(), "a & b <c> AB \"'");
        assert!(t.eq_str("a & b <c> AB \"'"));
        let mut scratch = [0u8; 64];
        assert_eq!(t.unescape_into(&mut scratch).unwrap(), "a & b <c> AB \"'");
        let mut small = [0u8; 4];
        assert_eq!(t.unescape_into(&mut small), Err(Overflow));
    }

    #[test]
    fn plain_text_is_borrowed() {
        let t = Text::escaped("tel:+14255550101;ext=101");
        assert_eq!(t.as_str(), Some("tel:+14255550101;ext=101"));
        assert!(t.eq_str("tel:+14255550101;ext=101"));
    }

    #[test]
    fn bad_references_are_caught() {
        for bad in ["&", "&amp", "&foo;", "&#;", "&#x;", "&#0;", "&#x110000;", "&#99999999;", "& amp;"] {
            assert!(!check_references(bad), "{bad:?}");
        }
    }

    #[test]
    fn escaping_round_trips() {
        let mut buf = [0u8; 64];
        let mut out = OutBuf::new(&mut buf);
        write_escaped(&mut out, "a & b <c> \"'").unwrap();
        let written = core::str::from_utf8(out.as_bytes()).unwrap().to_owned();
        assert_eq!(written, "a &amp; b &lt;c&gt; &quot;&apos;");
        assert!(check_references(&written));
        assert_eq!(Text::escaped(&written).to_string(), "a & b <c> \"'");
        let mut buf = [0u8; 64];
        let mut out = OutBuf::new(&mut buf);
        Text::literal("x&y").write_xml(&mut out).unwrap();
        assert_eq!(out.as_bytes(), b"x&amp;y");
    }
}
