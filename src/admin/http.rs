//! Just enough HTTP/1.1 for the admin endpoint, sans I/O: reading a
//! request head out of a fixed buffer (with `httparse`) and writing a
//! response head.
//!
//! A request is either still [`Parsed::Partial`], a [`Request`] for one of
//! the [`Page`]s, or refused with a [`Status`]: a head larger than the
//! buffer (431), a body (413), anything malformed (400), a path the
//! endpoint does not serve (404), a method other than GET or HEAD (405).

use core::fmt;

/// Most header fields a request may carry; more is a 431.
pub const MAX_HEADERS: usize = 32;
/// The `Allow` field of a 405 (and of every answer, it costs nothing).
pub const ALLOW: &str = "GET, HEAD";
/// Room for a response head written by [`write_head`].
pub const HEAD_SIZE: usize = 256;

/// The status codes the endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: here it is.
    Ok,
    /// 400: the request did not parse.
    BadRequest,
    /// 404: no such page.
    NotFound,
    /// 405: a page, but not for this method.
    MethodNotAllowed,
    /// 413: the request has a body; the endpoint reads none.
    ContentTooLarge,
    /// 431: the request head does not fit the buffer.
    HeaderFieldsTooLarge,
    /// 503: not healthy, or the gateway is busy.
    ServiceUnavailable,
}

impl Status {
    /// The three-digit code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::ContentTooLarge => 413,
            Status::HeaderFieldsTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    /// The reason phrase (RFC 9110).
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::ContentTooLarge => "Content Too Large",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

/// The pages the endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/healthz`: 200 while a CTI node is up, 503 otherwise.
    Healthz,
    /// `/metrics`: Prometheus text exposition format 0.0.4.
    Metrics,
    /// `/nodes`: the CTI nodes, as JSON.
    Nodes,
    /// `/sessions`: the open sessions, as JSON.
    Sessions,
}

impl Page {
    /// Every page.
    pub const ALL: [Page; 4] = [Page::Healthz, Page::Metrics, Page::Nodes, Page::Sessions];

    /// Its path.
    pub fn path(self) -> &'static str {
        match self {
            Page::Healthz => "/healthz",
            Page::Metrics => "/metrics",
            Page::Nodes => "/nodes",
            Page::Sessions => "/sessions",
        }
    }

    /// The page at `path` (a query string is ignored), if there is one.
    pub fn from_path(path: &str) -> Option<Page> {
        let path = path.split_once('?').map_or(path, |(path, _query)| path);
        Page::ALL.into_iter().find(|page| page.path() == path)
    }
}

/// A request the endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// What is asked for.
    pub page: Page,
    /// HEAD: the answer's head only, with the length the body would have.
    pub head_only: bool,
}

/// What a buffer holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole head yet: read more.
    Partial,
    /// A request to serve.
    Request(Request),
    /// A request refused with this status.
    Refused(Status),
}

/// Reads the request head at the start of `bytes`, the contents of a
/// buffer of `capacity` bytes: a head that has not ended when the buffer
/// is full is too large.
pub fn parse(bytes: &[u8], capacity: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Partial) if bytes.len() >= capacity => Parsed::Refused(Status::HeaderFieldsTooLarge),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Refused(Status::HeaderFieldsTooLarge),
        Err(_) => Parsed::Refused(Status::BadRequest),
        Ok(httparse::Status::Complete(_)) => match route(&request) {
            Ok(request) => Parsed::Request(request),
            Err(status) => Parsed::Refused(status),
        },
    }
}

/// Checks a complete head: no body, a known page, GET or HEAD.
fn route(request: &httparse::Request<'_, '_>) -> Result<Request, Status> {
    let (Some(method), Some(path)) = (request.method, request.path) else {
        return Err(Status::BadRequest);
    };
    let mut length: Option<u64> = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Status::ContentTooLarge);
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = core::str::from_utf8(header.value).map_err(|_| Status::BadRequest)?.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Status::BadRequest);
            }
            // Too many digits for a u64 is a body too large all the same.
            let n = value.parse::<u64>().unwrap_or(u64::MAX);
            if length.is_some_and(|earlier| earlier != n) {
                return Err(Status::BadRequest);
            }
            length = Some(n);
        }
    }
    if length.is_some_and(|n| n > 0) {
        return Err(Status::ContentTooLarge);
    }
    let page = Page::from_path(path).ok_or(Status::NotFound)?;
    match method {
        "GET" => Ok(Request { page, head_only: false }),
        "HEAD" => Ok(Request { page, head_only: true }),
        _ => Err(Status::MethodNotAllowed),
    }
}

/// Writes the head of an answer whose body is `content_length` bytes of
/// `content_type`. Every answer closes the connection; a 405 says what
/// is allowed.
pub fn write_head(out: &mut impl fmt::Write, status: Status, content_type: &str, content_length: usize) -> fmt::Result {
    write!(out, "HTTP/1.1 {status}\r\n")?;
    write!(out, "Content-Type: {content_type}\r\nContent-Length: {content_length}\r\n")?;
    out.write_str("Cache-Control: no-store\r\nConnection: close\r\n")?;
    if status == Status::MethodNotAllowed {
        write!(out, "Allow: {ALLOW}\r\n")?;
    }
    out.write_str("\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPACITY: usize = 2048;

    fn parse_str(text: &str) -> Parsed {
        parse(text.as_bytes(), CAPACITY)
    }

    fn get(page: Page) -> Parsed {
        Parsed::Request(Request { page, head_only: false })
    }

    #[test]
    fn a_complete_get_or_head_names_its_page() {
        assert_eq!(parse_str("GET /metrics HTTP/1.1\r\nHost: gw\r\nAccept: */*\r\n\r\n"), get(Page::Metrics));
        assert_eq!(parse_str("GET /healthz HTTP/1.0\r\n\r\n"), get(Page::Healthz));
        assert_eq!(parse_str("GET /sessions?limit=3 HTTP/1.1\r\n\r\n"), get(Page::Sessions));
        assert_eq!(
            parse_str("HEAD /nodes HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Parsed::Request(Request { page: Page::Nodes, head_only: true })
        );
        for page in Page::ALL {
            assert_eq!(Page::from_path(page.path()), Some(page));
        }
    }

    #[test]
    fn a_head_cut_short_asks_for_more() {
        let whole = "GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n";
        for end in 0..whole.len() {
            assert_eq!(parse_str(&whole[..end]), Parsed::Partial, "{:?}", &whole[..end]);
        }
        assert_eq!(parse_str(whole), get(Page::Metrics));
    }

    #[test]
    fn a_head_larger_than_the_buffer_is_431() {
        let mut big = String::from("GET /metrics HTTP/1.1\r\nX-Padding: ");
        big.extend(core::iter::repeat_n('a', CAPACITY));
        assert_eq!(parse(&big.as_bytes()[..CAPACITY], CAPACITY), Parsed::Refused(Status::HeaderFieldsTooLarge));
        let mut many = String::from("GET /metrics HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(parse_str(&many), Parsed::Refused(Status::HeaderFieldsTooLarge));
    }

    #[test]
    fn a_request_with_a_body_is_413() {
        let too_large = Parsed::Refused(Status::ContentTooLarge);
        assert_eq!(parse_str("GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), too_large);
        assert_eq!(parse_str("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n"), too_large);
        assert_eq!(parse_str("POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), too_large);
        assert_eq!(parse_str("GET /x HTTP/1.1\r\ncontent-length: 99999999999999999999999\r\n\r\n"), too_large);
    }

    #[test]
    fn malformed_requests_are_400() {
        let bad = Parsed::Refused(Status::BadRequest);
        assert_eq!(parse_str("\u{1}\u{2}garbage\r\n\r\n"), bad);
        assert_eq!(parse_str("GET /metrics HTTP/2.0\r\n\r\n"), bad);
        assert_eq!(parse_str("GET /metrics HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), bad);
        assert_eq!(parse_str("GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), bad);
        assert_eq!(parse_str("GET /metrics HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 2\r\n\r\n"), bad);
        assert_eq!(parse_str("GET /metrics HTTP/1.1\r\nBad Header: x\r\n\r\n"), bad);
    }

    #[test]
    fn an_unknown_path_is_404_and_a_known_one_with_another_method_405() {
        assert_eq!(parse_str("GET / HTTP/1.1\r\n\r\n"), Parsed::Refused(Status::NotFound));
        assert_eq!(parse_str("GET /metrics/ HTTP/1.1\r\n\r\n"), Parsed::Refused(Status::NotFound));
        assert_eq!(parse_str("DELETE /nope HTTP/1.1\r\n\r\n"), Parsed::Refused(Status::NotFound));
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
            let text = format!("{method} /metrics HTTP/1.1\r\n\r\n");
            assert_eq!(parse_str(&text), Parsed::Refused(Status::MethodNotAllowed), "{method}");
        }
    }

    #[test]
    fn response_heads_close_the_connection_and_a_405_says_what_is_allowed() {
        let mut head = heapless::String::<HEAD_SIZE>::new();
        write_head(&mut head, Status::Ok, "text/plain; charset=utf-8", 12).unwrap();
        assert_eq!(
            head.as_str(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        );
        let mut head = heapless::String::<HEAD_SIZE>::new();
        write_head(&mut head, Status::MethodNotAllowed, "text/plain; charset=utf-8", 0).unwrap();
        assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(head.contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        let mut head = heapless::String::<HEAD_SIZE>::new();
        let longest = "text/plain; version=0.0.4; charset=utf-8";
        write_head(&mut head, Status::HeaderFieldsTooLarge, longest, usize::MAX).unwrap();
        assert!(head.contains("431 Request Header Fields Too Large"));
    }
}
