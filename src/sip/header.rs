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
        const LONGEST: usize = 19; // "Content-Disposition"
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > LONGEST {
            return Other;
        }
        let mut lower = [0u8; LONGEST];
        for (dst, src) in lower.iter_mut().zip(bytes) {
            *dst = src.to_ascii_lowercase();
        }
        match &lower[..bytes.len()] {
            b"v" | b"via" => Via,
            b"f" | b"from" => From,
            b"t" | b"to" => To,
            b"i" | b"call-id" => CallId,
            b"cseq" => CSeq,
            b"m" | b"contact" => Contact,
            b"l" | b"content-length" => ContentLength,
            b"c" | b"content-type" => ContentType,
            b"max-forwards" => MaxForwards,
            b"content-disposition" => ContentDisposition,
            b"e" | b"content-encoding" => ContentEncoding,
            b"k" | b"supported" => Supported,
            b"require" => Require,
            b"proxy-require" => ProxyRequire,
            b"unsupported" => Unsupported,
            b"expires" => Expires,
            b"user-agent" => UserAgent,
            b"server" => Server,
            b"route" => Route,
            b"record-route" => RecordRoute,
            b"x" | b"session-expires" => SessionExpires,
            b"min-se" => MinSe,
            b"s" | b"subject" => Subject,
            b"o" | b"event" => Event,
            b"u" | b"allow-events" => AllowEvents,
            b"allow" => Allow,
            b"accept" => Accept,
            b"retry-after" => RetryAfter,
            b"date" => Date,
            _ => Other,
        }
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
