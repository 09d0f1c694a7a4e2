//! SIP header names: the ones the gateway reads or writes, their compact
//! forms (RFC 3261 §7.3.3, RFC 4028, RFC 3265, RFC 3515) and a
//! case-insensitive classifier that does not allocate.

/// A header the gateway knows by name; everything else is [`HeaderName::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the header of the same name
pub enum HeaderName {
    Accept,
    Allow,
    AllowEvents,
    CallId,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Event,
    Expires,
    From,
    MaxForwards,
    MinSe,
    ProxyRequire,
    RecordRoute,
    Require,
    RetryAfter,
    Route,
    Server,
    SessionExpires,
    Subject,
    Supported,
    To,
    Unsupported,
    UserAgent,
    Via,
    /// Any header this crate has no accessor for; kept by its own name.
    Other,
}

impl HeaderName {
    /// The canonical spelling, as the gateway writes it.
    pub fn as_str(self) -> &'static str {
        use HeaderName::*;
        match self {
            Accept => "Accept",
            Allow => "Allow",
            AllowEvents => "Allow-Events",
            CallId => "Call-ID",
            Contact => "Contact",
            ContentDisposition => "Content-Disposition",
            ContentEncoding => "Content-Encoding",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            CSeq => "CSeq",
            Date => "Date",
            Event => "Event",
            Expires => "Expires",
            From => "From",
            MaxForwards => "Max-Forwards",
            MinSe => "Min-SE",
            ProxyRequire => "Proxy-Require",
            RecordRoute => "Record-Route",
            Require => "Require",
            RetryAfter => "Retry-After",
            Route => "Route",
            Server => "Server",
            SessionExpires => "Session-Expires",
            Subject => "Subject",
            Supported => "Supported",
            To => "To",
            Unsupported => "Unsupported",
            UserAgent => "User-Agent",
            Via => "Via",
            Other => "(other)",
        }
    }

    /// Classifies a header name as it appears on the wire: long or compact
    /// form, any letter case.
    pub fn classify(name: &str) -> HeaderName {
        use HeaderName::*;
        // Compare only against the names of the same length.
        let candidates: &[(&str, HeaderName)] = match name.len() {
            1 => {
                return match name.as_bytes()[0].to_ascii_lowercase() {
                    b'v' => Via,
                    b'f' => From,
                    b't' => To,
                    b'i' => CallId,
                    b'm' => Contact,
                    b'l' => ContentLength,
                    b'c' => ContentType,
                    b'e' => ContentEncoding,
                    b'k' => Supported,
                    b's' => Subject,
                    b'o' => Event,
                    b'x' => SessionExpires,
                    b'u' => AllowEvents,
                    _ => Other,
                };
            }
            2 => &[("to", To)],
            3 => &[("via", Via)],
            4 => &[("from", From), ("cseq", CSeq), ("date", Date)],
            5 => &[("route", Route), ("event", Event), ("allow", Allow)],
            6 => &[("accept", Accept), ("server", Server), ("min-se", MinSe)],
            7 => &[
                ("call-id", CallId),
                ("contact", Contact),
                ("require", Require),
                ("expires", Expires),
                ("subject", Subject),
            ],
            9 => &[("supported", Supported)],
            10 => &[("user-agent", UserAgent)],
            11 => &[("unsupported", Unsupported), ("retry-after", RetryAfter)],
            12 => &[
                ("max-forwards", MaxForwards),
                ("content-type", ContentType),
                ("record-route", RecordRoute),
                ("allow-events", AllowEvents),
            ],
            13 => &[("proxy-require", ProxyRequire)],
            14 => &[("content-length", ContentLength)],
            15 => &[("session-expires", SessionExpires)],
            16 => &[("content-encoding", ContentEncoding)],
            19 => &[("content-disposition", ContentDisposition)],
            _ => &[],
        };
        candidates.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or(Other, |&(_, kind)| kind)
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderName::{self, *};

    #[test]
    fn compact_and_long_forms_are_the_same_header() {
        let pairs = [
            ("i", CallId),
            ("f", From),
            ("t", To),
            ("v", Via),
            ("m", Contact),
            ("l", ContentLength),
            ("c", ContentType),
            ("k", Supported),
            ("s", Subject),
            ("e", ContentEncoding),
            ("o", Event),
            ("x", SessionExpires),
            ("u", AllowEvents),
        ];
        for (compact, name) in pairs {
            assert_eq!(HeaderName::classify(compact), name, "{compact}");
            assert_eq!(HeaderName::classify(&compact.to_uppercase()), name);
            assert_eq!(HeaderName::classify(name.as_str()), name);
        }
    }

    #[test]
    fn case_insensitive_and_unknown() {
        assert_eq!(HeaderName::classify("cALL-iD"), CallId);
        assert_eq!(HeaderName::classify("CONTENT-DISPOSITION"), ContentDisposition);
        assert_eq!(HeaderName::classify("X-Custom"), Other);
        assert_eq!(HeaderName::classify(""), Other);
        assert_eq!(HeaderName::classify("Content-Disposition-Extra"), Other);
        assert_eq!(HeaderName::classify("Vía"), Other);
    }
}
