//! A minimal Lync user for the tests that need to hold a session open and
//! see what the gateway sends into it (a BYE at shutdown, say): one dialog
//! over TCP, UDP or TLS, written by hand, read with a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";

/// A rustls client connection over TCP (`tests/tls_e2e.rs` makes them).
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

enum Link {
    Tcp(TcpStream, Vec<u8>),
    Udp(UdpSocket),
    Tls(Box<TlsStream>, Vec<u8>),
}

/// The Front End pool's Record-Route parameters (its own entry, which it
/// strips from the client's requests in the dialog).
const POOL_ROUTE: &str = "ms-fe=FE-01.corp.example.com;opaque=state:T;lr;ms-route-sig=aaXkS1xV3ZKXQdAqhR9oQ4pZxKbwAA";

/// One user's dialog with the gateway.
pub struct Lync {
    link: Link,
    gateway: SocketAddr,
    local: SocketAddr,
    user: String,
    call_id: String,
    gw_tag: String,
    cseq: u32,
    /// Through a proxy that record-routes (Kamailio): the gateway's Contact
    /// and the route set, for requests in the dialog.
    target: Option<String>,
    routes: Vec<String>,
    /// Dialogs opened so far (a fresh one gets a fresh Call-ID).
    dialogs: u32,
    /// The gateway's requests (event INFOs) answered while waiting for a
    /// response, in order.
    pub requests_seen: Vec<String>,
}

impl Lync {
    /// Opens the transport (`"tcp"` or `"udp"`) to `gateway`.
    pub fn connect(gateway: SocketAddr, transport: &str, user: &str) -> Lync {
        let link = match transport {
            "tcp" => {
                let stream = TcpStream::connect(gateway).expect("TCP to the gateway");
                // A SIP client's small messages go at once, not held by Nagle.
                stream.set_nodelay(true).unwrap();
                Link::Tcp(stream, Vec::new())
            }
            _ => {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.connect(gateway).unwrap();
                Link::Udp(socket)
            }
        };
        Lync::on(link, gateway, user)
    }

    /// A dialog over a TLS connection to `gateway` (its handshake is
    /// finished, or finishes with the first message).
    pub fn over_tls(gateway: SocketAddr, stream: TlsStream, user: &str) -> Lync {
        Lync::on(Link::Tls(Box::new(stream), Vec::new()), gateway, user)
    }

    fn on(link: Link, gateway: SocketAddr, user: &str) -> Lync {
        let local = match &link {
            Link::Tcp(s, _) => s.local_addr().unwrap(),
            Link::Udp(s) => s.local_addr().unwrap(),
            Link::Tls(s, _) => s.sock.local_addr().unwrap(),
        };
        let call_id = format!("{}-{}-{}", user.split('@').next().unwrap_or("u"), local.port(), std::process::id());
        Lync {
            link,
            gateway,
            local,
            user: user.into(),
            call_id,
            gw_tag: String::new(),
            cseq: 0,
            target: None,
            routes: Vec::new(),
            dialogs: 0,
            requests_seen: Vec::new(),
        }
    }

    /// Forgets the dialog: the next sign-in opens a new one (new Call-ID),
    /// as Lync does after its session failed.
    pub fn new_dialog(&mut self) {
        self.dialogs += 1;
        self.call_id = format!("{}~{}", self.call_id.split('~').next().unwrap_or(""), self.dialogs);
        self.gw_tag.clear();
        self.cseq = 0;
        self.target = None;
        self.routes.clear();
    }

    /// The gateway's Contact URI in the dialog's 200, when it came through
    /// a record-routing proxy.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    fn transport(&self) -> &'static str {
        match self.link {
            Link::Tcp(..) => "TCP",
            Link::Udp(_) => "UDP",
            Link::Tls(..) => "TLS",
        }
    }

    fn send(&mut self, text: &str) {
        match &mut self.link {
            Link::Tcp(s, _) => s.write_all(text.as_bytes()).unwrap(),
            Link::Tls(s, _) => s.write_all(text.as_bytes()).unwrap(),
            Link::Udp(s) => {
                s.send(text.as_bytes()).unwrap();
            }
        }
    }

    /// The next whole SIP message from the gateway, or `None` after `limit`.
    pub fn receive(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Link::Tcp(_, pending) | Link::Tls(_, pending) = &mut self.link {
                if let Some(message) = take_message(pending) {
                    return Some(message);
                }
            }
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
            let mut buf = [0u8; 65_536];
            match &mut self.link {
                Link::Tcp(s, pending) => {
                    s.set_read_timeout(Some(left)).unwrap();
                    match s.read(&mut buf) {
                        Ok(0) => return None,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(_) => return None,
                    }
                }
                Link::Tls(s, pending) => {
                    s.sock.set_read_timeout(Some(left)).unwrap();
                    match s.read(&mut buf) {
                        Ok(0) => return None,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(_) => return None,
                    }
                }
                Link::Udp(s) => {
                    s.set_read_timeout(Some(left)).unwrap();
                    if let Ok(n) = s.recv(&mut buf) {
                        return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    return None;
                }
            }
        }
    }

    /// The next final response (requests the gateway sends meanwhile are
    /// answered with 200, as Lync does).
    fn response(&mut self) -> String {
        self.response_within(Duration::from_secs(5)).expect("a response within 5 s")
    }

    /// The next final response within `limit`, if one comes.
    pub fn response_within(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.receive(left)?;
            if m.starts_with("SIP/2.0 1") {
                continue;
            }
            if m.starts_with("SIP/2.0 ") {
                return Some(m);
            }
            self.answer(&m, 200);
            self.requests_seen.push(m);
        }
    }

    fn request(&mut self, method: &str, to_tag: &str, extra: &str, body: &str) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        // The shapes of a real uaCSTA client's requests (pidgin-sipe's
        // src/core/sip-csta.c and sip-transport.c, an open-source Lync/OCS
        // RCC client): epid on From, a User-Agent, Supported: timer on the
        // INVITE, Content-Disposition: signal;handling=required on every
        // CSTA body; a Contact with proxy=replace and +sip.instance (the
        // form a client registers, MS-SIPRE); and, as the Front End pool
        // the client stands for, the pool's Record-Route on the INVITE
        // (ms-fe, opaque=state, ms-route-sig, tag: a Skype for Business
        // pool's, common/sipp.rs says where from), which the pool itself
        // strips from the client's later requests (loose routing).
        let content = if body.is_empty() {
            String::new()
        } else {
            "Content-Disposition: signal;handling=required\r\nContent-Type: application/csta+xml\r\n".into()
        };
        let supported = match (method, to_tag.is_empty()) {
            ("INVITE", true) => format!(
                "Supported: timer\r\nRecord-Route: <sip:{l};transport={tl};{POOL_ROUTE}>;tag=3A78FB75E877D0A0B16EB39156A3983A\r\n",
                l = self.local,
                tl = self.transport().to_lowercase(),
            ),
            ("INVITE", false) => "Supported: timer\r\n".to_string(),
            _ => String::new(),
        };
        let in_dialog = !to_tag.is_empty() && method != "INVITE";
        let uri = match (&self.target, in_dialog) {
            (Some(target), true) => target.clone(),
            _ => format!("sip:ctigw@{}", self.gateway),
        };
        let routes: String = match in_dialog {
            true => self.routes.iter().map(|r| format!("Route: {r}\r\n")).collect(),
            false => String::new(),
        };
        let extra = format!("{routes}{extra}");
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {l};branch=z9hG4bK{c}{cs}{method}\r\nMax-Forwards: 70\r\n\
             From: <sip:{u}>;tag={c}-tag;epid=1c2d3e4f5a\r\nTo: <sip:ctigw@{gw}>{to_tag}\r\nCall-ID: {c}\r\n\
             CSeq: {cs} {method}\r\nContact: <sip:{u}@{l};transport={tl}>;proxy=replace;\
             +sip.instance=\"<urn:uuid:4B1682A8-F968-5701-83FC-7C6741DC6697>\"\r\n\
             User-Agent: UCCAPI/4.0.7577.0 OC/4.0.7577.0 (Microsoft Lync 2010)\r\n{supported}{extra}{content}\
             Content-Length: {len}\r\n\r\n{body}",
            gw = self.gateway,
            t = self.transport(),
            tl = self.transport().to_lowercase(),
            l = self.local,
            c = self.call_id,
            cs = self.cseq,
            u = self.user,
            len = body.len(),
        )
    }

    /// INVITE (with the line, if any) and ACK; returns the INVITE's status.
    pub fn sign_in(&mut self, line: Option<&str>) -> u16 {
        status_of(&self.sign_in_response(line))
    }

    /// BYE; returns its status.
    pub fn bye(&mut self) -> u16 {
        let bye = self.request("BYE", &format!(";tag={}", self.gw_tag), "", "");
        self.send(&bye);
        status_of(&self.response())
    }

    /// INVITE (with the line, if any) and ACK; returns the INVITE's final
    /// response.
    pub fn sign_in_response(&mut self, line: Option<&str>) -> String {
        let private = line.map_or(String::new(), |l| {
            format!("<extensions><privateData><private><lcs:line xmlns:lcs=\"http://schemas.microsoft.com/Lcs/2005/04/RCCExtension\">{l}</lcs:line></private></privateData></extensions>")
        });
        let body = format!("<RequestSystemStatus xmlns=\"{NS}\">{private}</RequestSystemStatus>");
        let invite = self.request("INVITE", "", "", &body);
        self.send(&invite);
        let response = self.response();
        let status = status_of(&response);
        if status == 200 {
            self.gw_tag = header(&response, "To").and_then(|to| to.split(";tag=").nth(1)).unwrap_or("").to_string();
            // Through a record-routing proxy: the route set (the
            // Record-Route entries in reverse) and the gateway's Contact.
            let mut routes: Vec<String> = headers(&response, "Record-Route")
                .flat_map(|v| v.split(','))
                .map(|r| r.trim().to_string())
                .filter(|r| !r.contains(POOL_ROUTE))
                .collect();
            if !routes.is_empty() {
                routes.reverse();
                self.routes = routes;
                self.target = header(&response, "Contact")
                    .map(|c| c.trim_start_matches('<').split('>').next().unwrap_or(c).to_string());
            }
        }
        let ack = self.request("ACK", &format!(";tag={}", self.gw_tag), "", "");
        self.send(&ack);
        response
    }

    /// An INFO carrying `xml` in the dialog; returns its status.
    pub fn info(&mut self, xml: &str) -> u16 {
        status_of(&self.info_response(xml))
    }

    /// GetCSTAFeatures in the dialog: its status if answered within
    /// `limit`, else `None`.
    pub fn features_within(&mut self, limit: Duration) -> Option<u16> {
        self.send_features();
        self.response_within(limit).map(|r| status_of(&r))
    }

    /// Sends GetCSTAFeatures in the dialog without waiting for the answer
    /// (many users at once); [`Lync::response_within`] reads it.
    pub fn send_features(&mut self) {
        let info =
            self.request("INFO", &format!(";tag={}", self.gw_tag), "", &format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"));
        self.send(&info);
    }

    /// An INFO carrying `xml` in the dialog; returns the whole response.
    pub fn info_response(&mut self, xml: &str) -> String {
        let info = self.request("INFO", &format!(";tag={}", self.gw_tag), "", xml);
        self.send(&info);
        self.response()
    }

    /// GetCSTAFeatures, which the gateway answers itself: 200 while the
    /// session is alive.
    pub fn features(&mut self) -> u16 {
        self.info(&format!("<GetCSTAFeatures xmlns=\"{NS}\"/>"))
    }

    /// Answers the gateway's request `m` with `status`.
    pub fn answer(&mut self, m: &str, status: u16) {
        let mut text = format!("SIP/2.0 {status} OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for value in headers(m, name) {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        self.send(&text);
    }
}

fn take_message(pending: &mut Vec<u8>) -> Option<String> {
    let end = pending.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
    let body: usize = header(&head, "Content-Length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    if pending.len() < end + body {
        return None;
    }
    let message = String::from_utf8_lossy(&pending[..end + body]).into_owned();
    pending.drain(..end + body);
    Some(message)
}

/// The status code of a response (0 for a request).
pub fn status_of(m: &str) -> u16 {
    m.strip_prefix("SIP/2.0 ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The first value of header `name`.
pub fn header<'a>(m: &'a str, name: &'a str) -> Option<&'a str> {
    headers(m, name).next()
}

fn headers<'a>(m: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    m.split("\r\n\r\n").next().unwrap_or("").lines().filter_map(move |l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
