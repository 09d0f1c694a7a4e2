//! SIP messages parsed in place: a start line, a fixed table of header
//! views and a body, all borrowed from the input bytes.
//!
//! The header block goes through `httparse::parse_headers`. Two forms that
//! SIP allows and HTTP no longer does, white space before the colon and
//! header lines folded over several lines (RFC 3261 §7.3.1), make httparse
//! stop; for such a message a small line splitter takes over and keeps the
//! folded value as one slice, CR LF included, which the value grammar reads
//! as white space. Nothing is copied, nothing is allocated.

use core::str;

use httparse::{EMPTY_HEADER, Header, Status};

use super::grammar::{self, CSeq, Disposition, ListItems, MediaType, NameAddr, Via, trim_lws};
use super::{Error, HeaderName};

/// The RFC 3261 branch prefix; a branch of only this names no transaction.
const MAGIC_COOKIE: &str = "z9hG4bK";

/// Most headers one message may carry; more is [`Error::TooManyHeaders`].
pub const MAX_HEADERS: usize = 64;

/// A request method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the method of the same name
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Register,
    Prack,
    Update,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// An extension method, by its token.
    Extension(&'a str),
}

impl<'a> Method<'a> {
    /// Classifies a method token (which must already be a valid token).
    pub fn parse(token: &'a str) -> Method<'a> {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(token) => token,
        }
    }
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP/2.0`
    Request {
        /// The method.
        method: Method<'a>,
        /// The Request-URI, as written.
        uri: &'a str,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`
    Response {
        /// The status code, 100 to 699.
        code: u16,
        /// The reason phrase, possibly empty.
        reason: &'a str,
    },
}

/// One header as it appears in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderView<'a> {
    /// What the name means, compact forms resolved.
    pub kind: HeaderName,
    /// The name as written.
    pub name: &'a str,
    /// The value as written, surrounding white space removed. A folded
    /// value keeps its CR LF and leading white space of continuation lines.
    pub value: &'a [u8],
}

/// A parsed SIP request or response, borrowing from the input.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    start: StartLine<'a>,
    headers: [Header<'a>; MAX_HEADERS],
    kinds: [HeaderName; MAX_HEADERS],
    count: usize,
    body: &'a [u8],
    len: usize,
    input: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses one whole message from a datagram.
    ///
    /// Leading CR LF lines are skipped (RFC 3261 §7.5). Without a
    /// Content-Length the body is the rest of the datagram; with one, the
    /// body is that many bytes and anything after it is ignored, while a
    /// Content-Length beyond the datagram is [`Error::BodyTruncated`]
    /// (RFC 3261 §18.3).
    pub fn parse(input: &'a [u8]) -> Result<Message<'a>, Error> {
        let mut message = Message::empty();
        let Status::Complete(head_len) = message.parse_head(input)? else {
            return Err(Error::Truncated);
        };
        let rest = &input[head_len..];
        let body_len = match message.content_length()? {
            Some(declared) if declared > rest.len() => {
                return Err(Error::BodyTruncated { declared, available: rest.len() });
            }
            Some(declared) => declared,
            None => rest.len(),
        };
        message.body = &rest[..body_len];
        message.len = head_len + body_len;
        message.input = &input[..message.len];
        Ok(message)
    }

    /// Parses the message at the start of a stream buffer (TCP, TLS).
    ///
    /// Returns `Partial` until the whole message is there. On a stream the
    /// Content-Length is mandatory, and a body larger than `max_body` is
    /// refused as soon as the header block is complete.
    pub fn parse_stream(input: &'a [u8], max_body: usize) -> Result<Status<Message<'a>>, Error> {
        let mut message = Message::empty();
        let Status::Complete(head_len) = message.parse_head(input)? else {
            return Ok(Status::Partial);
        };
        let declared = message.content_length()?.ok_or(Error::MissingContentLength)?;
        if declared > max_body {
            return Err(Error::BodyTooLarge { declared, max: max_body });
        }
        let Some(body) = input[head_len..].get(..declared) else {
            return Ok(Status::Partial);
        };
        message.body = body;
        message.len = head_len + declared;
        message.input = &input[..message.len];
        Ok(Status::Complete(message))
    }

    /// The start line.
    pub fn start_line(&self) -> StartLine<'a> {
        self.start
    }

    /// The method of a request; `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// The body (empty when there is none).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// How many input bytes this message occupies, body included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The message's bytes, as received (from any blank lines before it
    /// to the end of its body).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.input
    }

    /// True for a message of zero bytes, which parsing never produces.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every header, in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderView<'a>> + '_ {
        self.headers[..self.count].iter().zip(&self.kinds).map(|(h, &kind)| HeaderView {
            kind,
            name: h.name,
            value: h.value,
        })
    }

    /// The raw values of every header of kind `name`, in order.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.headers().filter(move |h| h.kind == name).map(|h| h.value)
    }

    /// The raw value of the first header called `name` (any case), for
    /// headers without an accessor of their own.
    pub fn value_of(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    /// The value of a header that may appear at most once, as text.
    pub fn single(&self, name: HeaderName) -> Result<Option<&'a str>, Error> {
        let mut values = self.values(name);
        let Some(first) = values.next() else { return Ok(None) };
        if values.next().is_some() {
            return Err(Error::DuplicateHeader(name.as_str()));
        }
        text(name, first).map(Some)
    }

    /// Like [`Message::single`], for a header the message must carry.
    pub fn required(&self, name: HeaderName) -> Result<&'a str, Error> {
        self.single(name)?.ok_or(Error::MissingHeader(name.as_str()))
    }

    /// The comma-separated elements of every header of kind `name`.
    pub fn list(&self, name: HeaderName) -> ListValues<'_, 'a> {
        ListValues { message: self, name, next_header: 0, items: ListItems::new("") }
    }

    /// Call-ID.
    pub fn call_id(&self) -> Result<&'a str, Error> {
        let id = trim_lws(self.required(HeaderName::CallId)?);
        if id.is_empty() || id.contains(grammar::is_lws) {
            return Err(Error::BadHeader("Call-ID"));
        }
        Ok(id)
    }

    /// From, with its tag.
    pub fn from(&self) -> Result<NameAddr<'a>, Error> {
        NameAddr::parse(self.required(HeaderName::From)?).ok_or(Error::BadHeader("From"))
    }

    /// To, with its tag if the dialog has one.
    pub fn to(&self) -> Result<NameAddr<'a>, Error> {
        NameAddr::parse(self.required(HeaderName::To)?).ok_or(Error::BadHeader("To"))
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq<'a>, Error> {
        CSeq::parse(self.required(HeaderName::CSeq)?).ok_or(Error::BadHeader("CSeq"))
    }

    /// The topmost Via element: the one a response goes back by.
    pub fn via(&self) -> Result<Via<'a>, Error> {
        self.vias().next().unwrap_or(Err(Error::MissingHeader("Via")))
    }

    /// Every Via element, topmost first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>, Error>> + '_ {
        self.list(HeaderName::Via).map(|item| item.and_then(|text| Via::parse(text).ok_or(Error::BadHeader("Via"))))
    }

    /// Max-Forwards, 0 to 255.
    pub fn max_forwards(&self) -> Result<Option<u8>, Error> {
        let Some(value) = self.single(HeaderName::MaxForwards)? else { return Ok(None) };
        grammar::parse_digits(trim_lws(value))
            .and_then(|n| u8::try_from(n).ok())
            .map(Some)
            .ok_or(Error::BadHeader("Max-Forwards"))
    }

    /// The first Contact (the remote target of a dialog).
    pub fn contact(&self) -> Result<Option<NameAddr<'a>>, Error> {
        self.name_addrs(HeaderName::Contact).next().transpose()
    }

    /// Every element of the headers of kind `name` (Contact, Route,
    /// Record-Route) as a name-addr, in order.
    pub fn name_addrs(&self, name: HeaderName) -> impl Iterator<Item = Result<NameAddr<'a>, Error>> + '_ {
        self.list(name)
            .map(move |item| item.and_then(|text| NameAddr::parse(text).ok_or(Error::BadHeader(name.as_str()))))
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType<'a>>, Error> {
        let Some(value) = self.single(HeaderName::ContentType)? else { return Ok(None) };
        MediaType::parse(value).map(Some).ok_or(Error::BadHeader("Content-Type"))
    }

    /// Content-Length.
    pub fn content_length(&self) -> Result<Option<usize>, Error> {
        let Some(value) = self.single(HeaderName::ContentLength)? else { return Ok(None) };
        grammar::parse_digits(trim_lws(value))
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or(Error::BadContentLength)
    }

    /// Content-Disposition.
    pub fn content_disposition(&self) -> Result<Option<Disposition<'a>>, Error> {
        let Some(value) = self.single(HeaderName::ContentDisposition)? else { return Ok(None) };
        Disposition::parse(value).map(Some).ok_or(Error::BadHeader("Content-Disposition"))
    }

    /// True when a Supported header lists `option` (e.g. `timer`).
    pub fn supports(&self, option: &str) -> bool {
        self.lists_option(HeaderName::Supported, option)
    }

    /// True when a Require header lists `option`.
    pub fn requires(&self, option: &str) -> bool {
        self.lists_option(HeaderName::Require, option)
    }

    fn lists_option(&self, name: HeaderName, option: &str) -> bool {
        self.list(name).any(|item| item.is_ok_and(|tag| tag.eq_ignore_ascii_case(option)))
    }

    /// Expires, in seconds; values beyond 2^32-1 read as 2^32-1 (RFC 3261 §20.19).
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        let Some(value) = self.single(HeaderName::Expires)? else { return Ok(None) };
        let digits = trim_lws(value);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadHeader("Expires"));
        }
        let n = grammar::parse_digits(digits).unwrap_or(u64::MAX);
        Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// User-Agent, as written.
    pub fn user_agent(&self) -> Result<Option<&'a str>, Error> {
        self.single(HeaderName::UserAgent)
    }

    /// Checks what every request must carry to be handled (RFC 3261 §8.1.1):
    /// Via, From, To, Call-ID and CSeq present and well-formed, the CSeq
    /// method equal to the request method, Max-Forwards a number, and the
    /// singleton headers not repeated.
    pub fn check_request(&self) -> Result<(), Error> {
        let Some(method) = self.method() else { return Ok(()) };
        self.via()?;
        self.vias().try_for_each(|via| via.map(drop))?;
        self.from()?;
        self.to()?;
        self.call_id()?;
        if self.cseq()?.method != method.as_str() {
            return Err(Error::CSeqMethodMismatch);
        }
        self.max_forwards()?;
        self.content_type()?;
        self.content_length()?;
        if self.via()?.branch() == Some(MAGIC_COOKIE) {
            return Err(Error::BadHeader("Via"));
        }
        let is_wildcard = |item: &Result<&str, Error>| matches!(item, Ok("*"));
        if let Some(bad) = self
            .list(HeaderName::Contact)
            .filter(|c| !is_wildcard(c))
            .find_map(|contact| contact.and_then(|text| NameAddr::parse(text).ok_or(Error::BadHeader("Contact"))).err())
        {
            return Err(bad);
        }
        Ok(())
    }

    /// Checks what every response must carry for the gateway to match it to
    /// a transaction: Via, From, To, Call-ID, CSeq.
    pub fn check_response(&self) -> Result<(), Error> {
        self.via()?;
        self.from()?;
        self.to()?;
        self.call_id()?;
        self.cseq()?;
        Ok(())
    }
}

/// The list elements of every header of one kind; see [`Message::list`].
#[derive(Debug, Clone)]
pub struct ListValues<'m, 'a> {
    message: &'m Message<'a>,
    name: HeaderName,
    next_header: usize,
    items: ListItems<'a>,
}

impl<'a> Iterator for ListValues<'_, 'a> {
    type Item = Result<&'a str, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.items.next() {
                return Some(Ok(item));
            }
            let m = self.message;
            let i = (self.next_header..m.count).find(|&i| m.kinds[i] == self.name)?;
            self.next_header = i + 1;
            match text(self.name, m.headers[i].value) {
                Ok(value) => self.items = ListItems::new(value),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn text(name: HeaderName, value: &[u8]) -> Result<&str, Error> {
    str::from_utf8(value).map_err(|_| Error::NotUtf8(name.as_str()))
}

impl<'a> Message<'a> {
    /// A message with no headers, to be filled in place by
    /// [`Message::parse_head`] (the table is large; building it where it
    /// stays saves copying it on every return).
    fn empty() -> Self {
        Message {
            start: StartLine::Response { code: 0, reason: "" },
            headers: [EMPTY_HEADER; MAX_HEADERS],
            kinds: [HeaderName::Other; MAX_HEADERS],
            count: 0,
            body: &[],
            len: 0,
            input: &[],
        }
    }

    /// Parses the start line and the header block into `self`; returns the
    /// offset of the first body byte once the header block is complete.
    fn parse_head(&mut self, input: &'a [u8]) -> Result<Status<usize>, Error> {
        let start_at = input.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(input.len());
        let Some(eol) = input[start_at..].iter().position(|&b| b == b'\n') else {
            return Ok(Status::Partial);
        };
        let line = &input[start_at..start_at + eol];
        self.start = parse_start_line(line.strip_suffix(b"\r").unwrap_or(line))?;
        let headers_at = start_at + eol + 1;
        let block = &input[headers_at..];
        let parsed = match httparse::parse_headers(block, &mut self.headers) {
            Ok(Status::Complete((used, headers))) => Ok(Status::Complete((used, headers.len()))),
            Ok(Status::Partial) => Ok(Status::Partial),
            Err(httparse::Error::TooManyHeaders) => Err(Error::TooManyHeaders),
            Err(_) => split_sip_headers(block, &mut self.headers),
        };
        let Status::Complete((used, count)) = parsed? else { return Ok(Status::Partial) };
        self.count = count;
        for (kind, header) in self.kinds.iter_mut().zip(&self.headers[..count]) {
            *kind = HeaderName::classify(header.name);
        }
        Ok(Status::Complete(headers_at + used))
    }
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, Error> {
    let line = str::from_utf8(line).map_err(|_| Error::BadStartLine("not UTF-8"))?;
    let bytes = line.as_bytes();
    if bytes.len() > 4 && bytes[..4].eq_ignore_ascii_case(b"SIP/") && bytes[4].is_ascii_digit() {
        return parse_status_line(line);
    }
    if line.ends_with([' ', '\t']) {
        return Err(Error::BadStartLine("white space at the end of the request line"));
    }
    let (method, rest) = line.split_once(' ').ok_or(Error::BadStartLine("no Request-URI"))?;
    let (uri, version) = rest.rsplit_once(' ').ok_or(Error::BadStartLine("no SIP version"))?;
    if !grammar::is_token(method) {
        return Err(Error::BadStartLine("method is not a token"));
    }
    check_version(version)?;
    if uri.is_empty() {
        return Err(Error::BadStartLine("no Request-URI"));
    }
    if uri.contains(grammar::is_lws) {
        return Err(Error::BadStartLine("white space in the Request-URI"));
    }
    if uri.starts_with('<') {
        return Err(Error::BadStartLine("Request-URI in angle brackets"));
    }
    if !valid_request_uri(uri) {
        return Err(Error::BadStartLine("Request-URI is not a URI"));
    }
    Ok(StartLine::Request { method: Method::parse(method), uri })
}

fn parse_status_line(line: &str) -> Result<StartLine<'_>, Error> {
    let (version, rest) = line.split_once(' ').ok_or(Error::BadStartLine("no status code"))?;
    check_version(version)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code = match code.as_bytes() {
        [b'1'..=b'6', b'0'..=b'9', b'0'..=b'9'] => code.parse().expect("three ASCII digits"),
        _ => return Err(Error::BadStartLine("status code is not 100 to 699")),
    };
    if reason.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(Error::BadStartLine("control character in reason phrase"));
    }
    Ok(StartLine::Response { code, reason })
}

/// `SIP/2.0`, where "SIP" is case-insensitive (RFC 3261 §7.1); another
/// well-formed version is refused with 505.
fn check_version(version: &str) -> Result<(), Error> {
    let numbers = match version.get(..4) {
        Some(sip) if sip.eq_ignore_ascii_case("SIP/") => &version[4..],
        _ => return Err(Error::BadStartLine("no SIP version")),
    };
    let (major, minor) = numbers.split_once('.').ok_or(Error::BadStartLine("malformed SIP version"))?;
    match (grammar::parse_digits(major), grammar::parse_digits(minor)) {
        (Some(2), Some(0)) => Ok(()),
        (Some(_), Some(_)) => Err(Error::UnsupportedVersion),
        _ => Err(Error::BadStartLine("malformed SIP version")),
    }
}

/// A Request-URI: `scheme:rest`, no white space, no control characters,
/// and not in angle brackets (RFC 3261 §25.1).
fn valid_request_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else { return false };
    let scheme_ok = scheme.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok && !rest.is_empty() && uri.bytes().all(|b| b > b' ' && b != 0x7f && b != b'<' && b != b'>')
}

/// Splits a header block that httparse refused because it uses SIP's white
/// space before the colon or folded lines; everything else httparse refuses
/// is refused here too.
fn split_sip_headers<'a>(
    block: &'a [u8],
    out: &mut [Header<'a>; MAX_HEADERS],
) -> Result<Status<(usize, usize)>, Error> {
    let is_name_byte = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            )
    };
    let is_value_byte = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
    // A quoted-pair may escape any byte but CR and LF (RFC 3261 §25.1).
    let valid_value = |line: &[u8]| {
        let mut escaped = false;
        line.iter().all(|&b| {
            let ok = is_value_byte(b) || (escaped && b != b'\r' && b != b'\n');
            escaped = !escaped && b == b'\\';
            ok
        })
    };
    let (mut at, mut count) = (0, 0);
    loop {
        match block.get(at..) {
            None | Some([]) | Some([b'\r']) => return Ok(Status::Partial),
            Some([b'\r', b'\n', ..]) => return Ok(Status::Complete((at + 2, count))),
            Some([b'\n', ..]) => return Ok(Status::Complete((at + 1, count))),
            Some(_) => {}
        }
        let name_len = block[at..].iter().take_while(|&&b| is_name_byte(b)).count();
        if name_len == 0 {
            return Err(Error::BadHeaderLine);
        }
        let name = str::from_utf8(&block[at..at + name_len]).expect("ASCII name bytes");
        let mut i = at + name_len;
        while matches!(block.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        match block.get(i) {
            None => return Ok(Status::Partial),
            Some(b':') => i += 1,
            Some(_) => return Err(Error::BadHeaderLine),
        }
        let value_start = i;
        // The value runs to the end of the first line not followed by a
        // continuation line (one that starts with SP or HT).
        let mut value_end;
        loop {
            let Some(eol) = block[i..].iter().position(|&b| b == b'\n') else {
                return Ok(Status::Partial);
            };
            value_end = i + eol;
            let line = &block[i..value_end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !valid_value(line) {
                return Err(Error::BadHeaderLine);
            }
            i = value_end + 1;
            match block.get(i) {
                None => return Ok(Status::Partial),
                Some(b' ' | b'\t') => continue,
                Some(_) => break,
            }
        }
        if count == MAX_HEADERS {
            return Err(Error::TooManyHeaders);
        }
        out[count] = Header { name, value: trim_lws_bytes(&block[value_start..value_end]) };
        count += 1;
        at = i;
    }
}

fn trim_lws_bytes(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:ctigw@gw.example.com;transport=tcp SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK74bf9\r\n\
Via: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKold, SIP/2.0/UDP 192.0.2.98;branch=z9hG4bKolder\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=1a2b3c;epid=01010101\r\n\
To: <sip:ctigw@gw.example.com>\r\n\
Call-ID: 7f3e9c51d0a4@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:pool.example.com:5060;transport=tcp>\r\n\
Supported: timer, ms-dialog-route-set-update\r\n\
Supported: 100rel\r\n\
Content-Type: application/csta+xml\r\n\
Content-Disposition: signal;handling=required\r\n\
Content-Length: 5\r\n\
\r\n\
<x/>\n";

    #[test]
    fn request_with_every_accessor() {
        let m = Message::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri(), Some("sip:ctigw@gw.example.com;transport=tcp"));
        assert_eq!(m.via().unwrap().branch(), Some("z9hG4bK74bf9"));
        let branches: Vec<_> = m.vias().map(|v| v.unwrap().branch().unwrap()).collect();
        assert_eq!(branches, ["z9hG4bK74bf9", "z9hG4bKold", "z9hG4bKolder"]);
        assert_eq!(m.from().unwrap().tag(), Some("1a2b3c"));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(m.call_id().unwrap(), "7f3e9c51d0a4@192.0.2.10");
        assert_eq!(m.cseq().unwrap(), CSeq { number: 1, method: "INVITE" });
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        assert_eq!(m.contact().unwrap().unwrap().uri, "sip:pool.example.com:5060;transport=tcp");
        assert!(m.content_type().unwrap().unwrap().is("application", "csta+xml"));
        assert_eq!(m.content_disposition().unwrap().unwrap().handling(), Some("required"));
        assert!(m.supports("timer") && m.supports("100rel") && m.supports("TIMER"));
        assert!(!m.supports("path") && !m.requires("timer"));
        assert_eq!(m.content_length().unwrap(), Some(5));
        assert_eq!(m.body(), b"<x/>\n");
        assert_eq!(m.len(), INVITE.len());
        m.check_request().unwrap();
    }

    #[test]
    fn expires_user_agent_and_routes() {
        let m = Message::parse(
            b"REGISTER sip:a@b SIP/2.0\r\nExpires: 3600\r\nUser-Agent: RTCC/4.0.0.0 OCS/4.0\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p3.example.com;lr>\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.expires().unwrap(), Some(3600));
        assert_eq!(m.user_agent().unwrap(), Some("RTCC/4.0.0.0 OCS/4.0"));
        let routes: Vec<_> = m.name_addrs(HeaderName::RecordRoute).map(|r| r.unwrap().uri).collect();
        assert_eq!(routes, ["sip:p1.example.com;lr", "sip:p2.example.com;lr", "sip:p3.example.com;lr"]);
        assert_eq!(m.contact().unwrap(), None);

        let huge = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nExpires: 99999999999999999999999\r\n\r\n").unwrap();
        assert_eq!(huge.expires().unwrap(), Some(u32::MAX), "saturates (RFC 3261 §20.19)");
        let bad = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nExpires: soon\r\n\r\n").unwrap();
        assert_eq!(bad.expires().unwrap_err(), Error::BadHeader("Expires"));
        let latin1 = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nUser-Agent: caf\xe9\r\n\r\n").unwrap();
        assert_eq!(latin1.user_agent().unwrap_err(), Error::NotUtf8("User-Agent"));
    }

    #[test]
    fn datagram_body_is_cut_at_content_length_and_must_be_there() {
        let mut with_trailer = INVITE.to_vec();
        with_trailer.extend_from_slice(b"trailing junk");
        let m = Message::parse(&with_trailer).unwrap();
        assert_eq!(m.body(), b"<x/>\n");
        assert_eq!(m.len(), INVITE.len());

        let short = &INVITE[..INVITE.len() - 2];
        assert_eq!(Message::parse(short).unwrap_err(), Error::BodyTruncated { declared: 5, available: 3 });
    }

    #[test]
    fn responses() {
        let m = Message::parse(b"SIP/2.0 180 Ringing\r\nCall-ID: a\r\n\r\n").unwrap();
        assert_eq!((m.status_code(), m.reason()), (Some(180), Some("Ringing")));
        let m = Message::parse(b"SIP/2.0 100 \r\n\r\n").unwrap();
        assert_eq!(m.reason(), Some(""));
        let m = Message::parse(b"sip/2.0 200\r\n\r\n").unwrap();
        assert_eq!((m.status_code(), m.reason()), (Some(200), Some("")));
        for bad in [&b"SIP/2.0 99 Low\r\n\r\n"[..], b"SIP/2.0 700 High\r\n\r\n", b"SIP/2.0 4294967301 Big\r\n\r\n"] {
            assert!(matches!(Message::parse(bad), Err(Error::BadStartLine(_))), "{bad:?}");
        }
        assert_eq!(Message::parse(b"SIP/3.0 200 OK\r\n\r\n").unwrap_err(), Error::UnsupportedVersion);
    }

    #[test]
    fn bad_request_lines_say_what() {
        let cases: [(&[u8], Error); 7] = [
            (b"INVITE sip:a@b SIP/7.0\r\n\r\n", Error::UnsupportedVersion),
            (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", Error::BadStartLine("white space in the Request-URI")),
            (b"INVITE <sip:a@b> SIP/2.0\r\n\r\n", Error::BadStartLine("Request-URI in angle brackets")),
            (b"INVITE sip:a@b SIP/2.0 \r\n\r\n", Error::BadStartLine("white space at the end of the request line")),
            (b"INVITE sip:a@b\r\n\r\n", Error::BadStartLine("no SIP version")),
            (b"IN(VITE sip:a@b SIP/2.0\r\n\r\n", Error::BadStartLine("method is not a token")),
            (b"INVITE sip:a@b HTTP/1.1\r\n\r\n", Error::BadStartLine("no SIP version")),
        ];
        for (input, want) in cases {
            assert_eq!(Message::parse(input).unwrap_err(), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn folded_lines_and_space_before_colon() {
        let input = b"INFO sip:a@b SIP/2.0\r\nVia  : SIP/2.0/UDP\r\n  192.0.2.1;branch=z9hG4bK1\r\ncseq: 5\r\n\tINFO\r\nf: <sip:a@b>\r\n ;tag=x\r\n\r\n";
        let m = Message::parse(input).unwrap();
        assert_eq!(m.via().unwrap().host, "192.0.2.1");
        assert_eq!(m.cseq().unwrap(), CSeq { number: 5, method: "INFO" });
        assert_eq!(m.from().unwrap().tag(), Some("x"));
        let names: Vec<_> = m.headers().map(|h| h.name).collect();
        assert_eq!(names, ["Via", "cseq", "f"]);
    }

    #[test]
    fn singletons_may_not_repeat_and_missing_headers_are_named() {
        let m = Message::parse(b"BYE sip:a@b SIP/2.0\r\nCall-ID: 1\r\ni: 2\r\n\r\n").unwrap();
        assert_eq!(m.call_id().unwrap_err(), Error::DuplicateHeader("Call-ID"));
        assert_eq!(m.from().unwrap_err(), Error::MissingHeader("From"));
        let two_lengths = b"BYE sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 4\r\n\r\nabcd";
        assert_eq!(Message::parse(two_lengths).unwrap_err(), Error::DuplicateHeader("Content-Length"));
    }

    #[test]
    fn content_length_errors() {
        for bad in ["-1", "abc", "99999999999999999999999", ""] {
            let input = format!("BYE sip:a@b SIP/2.0\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(Message::parse(input.as_bytes()).unwrap_err(), Error::BadContentLength, "{bad:?}");
            assert_eq!(Message::parse_stream(input.as_bytes(), 100).unwrap_err(), Error::BadContentLength);
        }
    }

    #[test]
    fn stream_parse() {
        let no_length = b"BYE sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n";
        assert_eq!(Message::parse_stream(no_length, 100).unwrap_err(), Error::MissingContentLength);
        let big = b"INFO sip:a@b SIP/2.0\r\nContent-Length: 101\r\n\r\n";
        assert_eq!(Message::parse_stream(big, 100).unwrap_err(), Error::BodyTooLarge { declared: 101, max: 100 });
        for cut in 0..INVITE.len() {
            assert!(Message::parse_stream(&INVITE[..cut], 100).unwrap().is_partial(), "cut at {cut}");
        }
        let Status::Complete(m) = Message::parse_stream(INVITE, 100).unwrap() else { panic!() };
        assert_eq!(m.len(), INVITE.len());
    }

    #[test]
    fn check_request_catches_semantic_errors() {
        let mismatch = b"INFO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 BYE\r\n\r\n";
        assert_eq!(Message::parse(mismatch).unwrap().check_request().unwrap_err(), Error::CSeqMethodMismatch);
        let big_mf = b"INFO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INFO\r\nMax-Forwards: 300\r\n\r\n";
        assert_eq!(Message::parse(big_mf).unwrap().check_request().unwrap_err(), Error::BadHeader("Max-Forwards"));
    }

    #[test]
    fn too_many_headers() {
        let mut input = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(Message::parse(&input).unwrap_err(), Error::TooManyHeaders);
        // The same through the folding fallback.
        input.splice(27..27, b"Y : folded\r\n more\r\n".iter().copied());
        assert_eq!(Message::parse(&input).unwrap_err(), Error::TooManyHeaders);
    }

    /// Found by the sip_message fuzzer: byte 4 of the start line inside a
    /// two-byte character made the status-line check slice a str mid-char.
    #[test]
    fn fuzz_regression_start_line_with_multibyte_char_at_byte_4() {
        let input = b"*.s\xc8\x92\n";
        assert!(matches!(Message::parse(input), Err(Error::BadStartLine(_)) | Err(Error::Truncated)));
        assert!(Message::parse(b"SIP\xc8\x92 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn leading_blank_lines_are_skipped_and_bare_lf_accepted() {
        let m = Message::parse(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nCall-ID: q\n\n").unwrap();
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.call_id().unwrap(), "q");
        assert_eq!(Message::parse(b"\r\n\r\n").unwrap_err(), Error::Truncated);
    }
}
