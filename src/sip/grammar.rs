//! The grammar of SIP header values (RFC 3261 §25), as borrowed views.
//!
//! Every function here takes the text of one header value (or one element
//! of a comma-separated list) and returns slices of it. Linear white space
//! includes CR and LF, so values that arrived folded over several lines
//! parse the same as unfolded ones.

/// SIP linear white space, including the CR LF of a folded line.
pub(crate) fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Removes linear white space at both ends.
pub fn trim_lws(s: &str) -> &str {
    s.trim_matches(is_lws)
}

/// True for a non-empty RFC 3261 `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
        })
}

/// Parses a non-empty run of ASCII digits, refusing overflow.
pub fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
}

/// Finds the first `sep` that is outside a quoted string and outside `<...>`.
fn find_unquoted(s: &str, sep: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    // Fast path, which most values take: the first separator has no quote
    // or bracket before it, so nothing can hide it.
    let first = bytes.iter().position(|&b| b == sep)?;
    if !bytes[..first].iter().any(|&b| b == b'"' || b == b'<') {
        return Some(first);
    }
    let (mut quoted, mut angle, mut i) = (false, false, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            match b {
                b'\\' => i += 1,
                b'"' => quoted = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => quoted = true,
                b'<' => angle = true,
                b'>' => angle = false,
                _ if b == sep && !angle => return Some(i),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Index of the `"` closing a quoted string that starts at `s[0]`.
fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The elements of a comma-separated header value (`Via`, `Contact`,
/// `Supported`, `Route`...), trimmed, empty elements skipped. Commas inside
/// quoted strings and `<...>` do not split.
#[derive(Debug, Clone)]
pub struct ListItems<'a> {
    rest: &'a str,
}

impl<'a> ListItems<'a> {
    /// Iterates over the elements of `value`.
    pub fn new(value: &'a str) -> Self {
        ListItems { rest: value }
    }
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while !self.rest.is_empty() {
            let (item, rest) = match find_unquoted(self.rest, b',') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            let item = trim_lws(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    }
}

/// The `;name=value` parameters after a URI, a name-addr, a Via or a media
/// type. Names compare case-insensitively; values are returned as written
/// (a quoted value keeps its quotes in [`Params::iter`], loses them in
/// [`Params::get`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// Wraps the text that starts at the first `;` (or is empty).
    pub fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The parameters as written, including the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Every parameter as `(name, value)`; `value` is `None` for a flag such
    /// as `;lr` or `;rport`.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let mut rest = self.raw;
        core::iter::from_fn(move || {
            loop {
                let text = trim_lws(rest);
                if text.is_empty() {
                    return None;
                }
                let text = text.strip_prefix(';').unwrap_or(text);
                let (param, tail) = match find_unquoted(text, b';') {
                    Some(i) => (&text[..i], &text[i..]),
                    None => (text, ""),
                };
                rest = tail;
                let param = trim_lws(param);
                if param.is_empty() {
                    continue;
                }
                return Some(match param.find('=') {
                    Some(eq) => (trim_lws(&param[..eq]), Some(trim_lws(&param[eq + 1..]))),
                    None => (param, None),
                });
            }
        })
    }

    /// Looks a parameter up by name: `None` when absent, `Some(None)` when
    /// present without a value, `Some(Some(v))` otherwise (quotes removed).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.map(unquote))
    }

    /// The value of parameter `name`, if present with a value.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    /// True when parameter `name` is present, with or without a value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Removes the quotes around a quoted string; other text is returned as is.
/// Backslash escapes inside are left for the caller (they are rare and
/// never matter to the gateway).
pub fn unquote(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') { &s[1..s.len() - 1] } else { s }
}

/// A `name-addr` or `addr-spec` with header parameters, as in From, To,
/// Contact, Route and Record-Route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, without quotes, if one was given.
    pub display_name: Option<&'a str>,
    /// The URI, without angle brackets.
    pub uri: &'a str,
    /// The header parameters after the URI (`;tag=...`, `;expires=...`).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one element; `None` when it is not a name-addr.
    pub fn parse(text: &'a str) -> Option<NameAddr<'a>> {
        let text = trim_lws(text);
        let (display_name, rest) = if text.starts_with('"') {
            let end = closing_quote(text)?;
            (Some(&text[1..end]), text[end + 1..].trim_start_matches(is_lws))
        } else if let Some(lt) = text.find('<') {
            // An unquoted display name is a run of tokens (RFC 3261 §25.1).
            let name = trim_lws(&text[..lt]);
            if !name.split(is_lws).filter(|word| !word.is_empty()).all(is_token) {
                return None;
            }
            ((!name.is_empty()).then_some(name), &text[lt..])
        } else {
            // addr-spec: the URI cannot carry parameters of its own here,
            // so the first ';' starts the header parameters, and a URI with
            // ',' or '?' must have been in angle brackets (§20).
            let end = text.find(';').unwrap_or(text.len());
            let uri = trim_lws(&text[..end]);
            if uri.is_empty() || uri.contains(is_lws) || uri.contains(['<', '>', '"', ',', '?']) {
                return None;
            }
            return Some(NameAddr { display_name: None, uri, params: Params::new(&text[end..]) });
        };
        let inner = rest.strip_prefix('<')?;
        let gt = inner.find('>')?;
        let uri = trim_lws(&inner[..gt]);
        let after = trim_lws(&inner[gt + 1..]);
        if uri.is_empty() || uri.contains(is_lws) || uri.contains('<') {
            return None;
        }
        if !(after.is_empty() || after.starts_with(';')) {
            return None;
        }
        Some(NameAddr { display_name, uri, params: Params::new(after) })
    }

    /// The `tag` parameter (From and To).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.value("tag")
    }
}

/// One Via element: `SIP/2.0/TCP host:port;branch=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// The transport: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`...
    pub transport: &'a str,
    /// The sent-by host: a name, an IPv4 address or a bracketed IPv6 address.
    pub host: &'a str,
    /// The sent-by port, if given.
    pub port: Option<u16>,
    /// The Via parameters.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via element; `None` when it does not follow the grammar.
    pub fn parse(text: &'a str) -> Option<Via<'a>> {
        let (name, rest) = text.split_once('/')?;
        let (version, rest) = rest.split_once('/')?;
        if !trim_lws(name).eq_ignore_ascii_case("SIP") || trim_lws(version) != "2.0" {
            return None;
        }
        let rest = rest.trim_start_matches(is_lws);
        let transport_end = rest.find(is_lws)?;
        let transport = &rest[..transport_end];
        let rest = &rest[transport_end..];
        let params_at = rest.find(';').unwrap_or(rest.len());
        let (host, port) = split_host_port(trim_lws(&rest[..params_at]))?;
        if !is_token(transport) {
            return None;
        }
        Some(Via { transport, host, port, params: Params::new(&rest[params_at..]) })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.value("branch")
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.value("received")
    }

    /// The `rport` parameter (RFC 3581): `None` when absent, `Some(None)`
    /// when asked for, `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }
}

/// Splits `host[:port]`, with IPv6 references in brackets.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let rest = trim_lws(&s[close + 1..]);
        let port = if rest.is_empty() { None } else { Some(rest.strip_prefix(':')?) };
        (&s[..=close], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (trim_lws(h), Some(p)),
            None => (s, None),
        }
    };
    let valid_host = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':' | b'_'));
    if !valid_host {
        return None;
    }
    let port = match port {
        Some(p) => Some(u16::try_from(parse_digits(trim_lws(p))?).ok()?),
        None => None,
    };
    Some((host, port))
}

/// A CSeq value: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number, below 2^31 (RFC 3261 §8.1.1.5).
    pub number: u32,
    /// The method it numbers.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(value: &'a str) -> Option<CSeq<'a>> {
        let value = trim_lws(value);
        let digits_end = value.find(|c: char| !c.is_ascii_digit())?;
        let number = parse_digits(&value[..digits_end])?;
        let rest = &value[digits_end..];
        let method = trim_lws(rest);
        if rest.len() == method.len() || !is_token(method) || number >= 1 << 31 {
            return None;
        }
        Some(CSeq { number: number as u32, method })
    }
}

/// A media type as in Content-Type: `application/csta+xml;charset=utf-8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// The top-level type, e.g. `application`.
    pub ty: &'a str,
    /// The subtype, e.g. `csta+xml`.
    pub subtype: &'a str,
    /// The parameters.
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses `type/subtype;params`.
    pub fn parse(value: &'a str) -> Option<MediaType<'a>> {
        let params_at = find_unquoted(value, b';').unwrap_or(value.len());
        let (ty, subtype) = value[..params_at].split_once('/')?;
        let (ty, subtype) = (trim_lws(ty), trim_lws(subtype));
        (is_token(ty) && is_token(subtype)).then(|| MediaType { ty, subtype, params: Params::new(&value[params_at..]) })
    }

    /// Case-insensitive comparison with `ty/subtype`.
    pub fn is(&self, ty: &str, subtype: &str) -> bool {
        self.ty.eq_ignore_ascii_case(ty) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// A Content-Disposition value: `signal;handling=required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disposition<'a> {
    /// The disposition type: `session`, `render`, `signal`...
    pub kind: &'a str,
    /// The parameters.
    pub params: Params<'a>,
}

impl<'a> Disposition<'a> {
    /// Parses `type;params`.
    pub fn parse(value: &'a str) -> Option<Disposition<'a>> {
        let params_at = find_unquoted(value, b';').unwrap_or(value.len());
        let kind = trim_lws(&value[..params_at]);
        is_token(kind).then(|| Disposition { kind, params: Params::new(&value[params_at..]) })
    }

    /// The `handling` parameter: `required` or `optional`.
    pub fn handling(&self) -> Option<&'a str> {
        self.params.value("handling")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_respect_quotes_and_brackets() {
        let items: Vec<_> = ListItems::new(r#" "Doe, John" <sip:a@b;x=1,2>;tag=1 , <sip:c@d>,, timer "#).collect();
        assert_eq!(items, [r#""Doe, John" <sip:a@b;x=1,2>;tag=1"#, "<sip:c@d>", "timer"]);
        assert_eq!(ListItems::new(" , ").count(), 0);
    }

    #[test]
    fn params() {
        let p = Params::new(";tag=1a2b3c; epid=01010101 ;lr;x=\"a;b\";RPORT");
        assert_eq!(p.value("tag"), Some("1a2b3c"));
        assert_eq!(p.value("EPID"), Some("01010101"));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.value("x"), Some("a;b"));
        assert!(p.has("rport"));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.iter().count(), 5);
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(r#""Alice \"A\" Smith" <sip:alice@example.com>;tag=1a"#).unwrap();
        assert_eq!(a.display_name, Some(r#"Alice \"A\" Smith"#));
        assert_eq!(a.uri, "sip:alice@example.com");
        assert_eq!(a.tag(), Some("1a"));

        let b = NameAddr::parse("Bob Jones <sip:bob@example.com;transport=tcp>").unwrap();
        assert_eq!(b.display_name, Some("Bob Jones"));
        assert_eq!(b.uri, "sip:bob@example.com;transport=tcp");
        assert_eq!(b.tag(), None);

        let c = NameAddr::parse("sip:carol@example.com;tag=77").unwrap();
        assert_eq!((c.display_name, c.uri, c.tag()), (None, "sip:carol@example.com", Some("77")));

        let d = NameAddr::parse("<sip:d@example.com>\r\n ;tag=9").unwrap();
        assert_eq!(d.tag(), Some("9"));

        for bad in [
            "",
            "<>",
            "<sip:a@b",
            "\"unterminated <sip:a@b>",
            "<sip:a@b> junk",
            "sip:a b@c",
            "Bell, Alexander <sip:a@b>",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        ] {
            assert_eq!(NameAddr::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn via_forms() {
        let v = Via::parse("SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK74bf9;received=192.0.2.10;rport=4000").unwrap();
        assert_eq!((v.transport, v.host, v.port), ("TCP", "192.0.2.10", Some(5060)));
        assert_eq!(v.branch(), Some("z9hG4bK74bf9"));
        assert_eq!(v.received(), Some("192.0.2.10"));
        assert_eq!(v.rport(), Some(Some(4000)));

        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.transport, v.host, v.port), ("UDP", "192.0.2.2", None));

        let v = Via::parse("sip/2.0/UDP [2001:db8::9]:5061;rport").unwrap();
        assert_eq!((v.host, v.port, v.rport()), ("[2001:db8::9]", Some(5061), Some(None)));

        for bad in ["SIP/3.0/UDP h", "SIP/2.0/UDP", "SIP/2.0/UDP h:99999", "SIP/2.0/UDP ;branch=x", "HTTP/2.0/UDP h"] {
            assert_eq!(Via::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cseq() {
        assert_eq!(CSeq::parse("4 INFO"), Some(CSeq { number: 4, method: "INFO" }));
        assert_eq!(CSeq::parse(" 0009\r\n\tINVITE "), Some(CSeq { number: 9, method: "INVITE" }));
        assert_eq!(CSeq::parse("2147483647 ACK").map(|c| c.number), Some(2147483647));
        for bad in ["INFO", "4", "4INFO", "-1 INFO", "2147483648 INFO", "36893488147419103232 INVITE", "4 IN FO"] {
            assert_eq!(CSeq::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn media_type_and_disposition() {
        let m = MediaType::parse("Application/CSTA+XML ; charset=\"utf-8\"").unwrap();
        assert!(m.is("application", "csta+xml"));
        assert_eq!(m.params.value("charset"), Some("utf-8"));
        assert_eq!(MediaType::parse("application"), None);
        assert_eq!(MediaType::parse("application/"), None);

        let d = Disposition::parse("signal;handling=required").unwrap();
        assert_eq!((d.kind, d.handling()), ("signal", Some("required")));
        assert_eq!(Disposition::parse(";handling=required"), None);
    }

    #[test]
    fn digits() {
        assert_eq!(parse_digits("0"), Some(0));
        assert_eq!(parse_digits("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_digits("18446744073709551616"), None);
        assert_eq!(parse_digits(""), None);
        assert_eq!(parse_digits("-1"), None);
        assert_eq!(parse_digits("1 2"), None);
    }
}
