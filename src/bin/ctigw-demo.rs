//! `ctigw-demo`: one scripted Lync user against a running gateway, over TCP
//! or UDP, printing the SIP/CSTA ladder. It signs in, asks for the
//! features, monitors its line, makes a call, holds and retrieves it,
//! consults a second party and transfers, makes another call and hangs
//! it up, and signs out; every event INFO from the gateway is answered.
//! Exits 0 when every step got the answer and the events it should.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ctigw::csta::{self, ConnectionId, Event, Message as Csta, Namespace, Request, Response, Text};
use ctigw::outbuf::OutBuf;
use ctigw::sip::{Frame, Message, StreamBuffer};

const USAGE: &str = "\
usage: ctigw-demo [--gateway ADDR] [--transport tcp|udp] [--user URI] [--line TEL]
                  [--called TEL] [--consulted TEL] [--quiet]
       ctigw-demo --incoming CONTROL [...]     calls come in from outside instead: the simulator
                                               (its control channel at CONTROL) rings the line; one
                                               call is answered and hung up, one deflected
       ctigw-demo --probe [--gateway ADDR]     exit 0 if a gateway answers OPTIONS

defaults: --gateway 127.0.0.1:5060 --transport tcp --user sip:alice@example.com
          --line tel:+14255550101;ext=101 --called tel:+14255559876 --consulted tel:+14255551111";

enum Link {
    Tcp(TcpStream, Box<StreamBuffer<16384>>),
    Udp(UdpSocket, SocketAddr),
}

struct Client {
    link: Link,
    local: SocketAddr,
    transport: &'static str,
    user: String,
    call_id: String,
    tag: String,
    gw_tag: String,
    cseq: u32,
    branch: u32,
    quiet: bool,
    /// Events received: (name, call id, local connection state).
    events: Vec<(String, String, String)>,
}

fn describe(body: &[u8]) -> String {
    match csta::parse(body) {
        Ok(doc) => match doc.message {
            Csta::Request(r) => r.service().request_name().to_string(),
            Csta::Response(Response::SystemStatus(s)) => format!("RequestSystemStatusResponse {}", s.as_str()),
            Csta::Response(Response::MonitorStarted { monitor }) => format!("MonitorStartResponse {monitor}"),
            Csta::Response(Response::Call { service, call }) => {
                format!("{} {}", service.response_name(), call.call.map(|c| c.to_string()).unwrap_or_default())
            }
            Csta::Response(r) => r.service().response_name().to_string(),
            Csta::Event(Event::Call(e)) => format!(
                "{} {} {}",
                e.kind.name(),
                e.connection.call.map(|c| c.to_string()).unwrap_or_default(),
                e.local_state.map(|s| s.as_str()).unwrap_or("")
            ),
            Csta::Event(e) => e.name().to_string(),
            Csta::Error(code) => format!("CSTAErrorCode {code}"),
            Csta::Session(_) => "(session message)".to_string(),
            Csta::System(_) => "(system status message)".to_string(),
        },
        Err(_) if body.is_empty() => String::new(),
        Err(e) => format!("(unreadable CSTA: {e})"),
    }
}

impl Client {
    fn connect(gateway: SocketAddr, transport: &'static str, user: &str, quiet: bool) -> std::io::Result<Client> {
        let (link, local) = if transport == "udp" {
            let any: SocketAddr = if gateway.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal");
            let socket = UdpSocket::bind(any)?;
            socket.connect(gateway)?; // so that local_addr names the address the gateway sees
            socket.set_read_timeout(Some(Duration::from_millis(200)))?;
            let local = socket.local_addr()?;
            (Link::Udp(socket, gateway), local)
        } else {
            let stream = TcpStream::connect_timeout(&gateway, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_millis(200)))?;
            let local = stream.local_addr()?;
            (Link::Tcp(stream, Box::new(StreamBuffer::new())), local)
        };
        let id = std::process::id();
        Ok(Client {
            link,
            local,
            transport,
            user: user.to_string(),
            call_id: format!("demo-{id}-{}@{}", local.port(), local.ip()),
            tag: format!("lync{id}"),
            gw_tag: String::new(),
            cseq: 0,
            branch: 0,
            quiet,
            events: Vec::new(),
        })
    }

    fn say(&self, arrow: &str, first: &str, what: &str) {
        if !self.quiet {
            println!("  {arrow} {first:<14} {what}");
        }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.link {
            Link::Tcp(s, _) => s.write_all(bytes),
            Link::Udp(s, to) => s.send_to(bytes, *to).map(drop),
        }
    }

    /// The next message from the gateway, or `None` after `wait`.
    fn receive(&mut self, wait: Duration) -> std::io::Result<Option<Vec<u8>>> {
        let until = Instant::now() + wait;
        loop {
            match &mut self.link {
                Link::Tcp(s, framer) => {
                    if let Some(frame) = framer.next(65536).map_err(std::io::Error::other)? {
                        match frame {
                            Frame::Message(m) => return Ok(Some(m.as_bytes().to_vec())),
                            _ => continue,
                        }
                    }
                    let spare = framer.spare();
                    match s.read(spare) {
                        Ok(0) => return Err(std::io::Error::other("the gateway closed the connection")),
                        Ok(n) => framer.filled(n),
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(e) => return Err(e),
                    }
                }
                Link::Udp(s, _) => {
                    let mut buf = vec![0u8; 65536];
                    match s.recv(&mut buf) {
                        Ok(n) => return Ok(Some(buf[..n].to_vec())),
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            if Instant::now() >= until {
                return Ok(None);
            }
        }
    }

    /// Answers a request of the gateway (an event INFO, a BYE) with 200.
    fn answer(&mut self, request: &Message<'_>) -> std::io::Result<()> {
        let mut buf = vec![0u8; 4096];
        let ok = ctigw::sip::MessageWriter::response_to(&mut buf, request, 200, "OK", None, None)
            .and_then(|w| w.finish())
            .map_err(std::io::Error::other)?
            .to_vec();
        self.send(&ok)
    }

    /// Handles what arrives until the response to CSeq `cseq` comes.
    fn await_response(&mut self, cseq: u32, timeout: Duration) -> Result<Vec<u8>, String> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer to CSeq {cseq} within {timeout:?}"));
            }
            let Some(bytes) = self.receive(left).map_err(|e| e.to_string())? else { continue };
            let m = Message::parse(&bytes).map_err(|e| format!("the gateway sent bad SIP: {e}"))?;
            match m.status_code() {
                Some(code)
                    if m.cseq().is_ok_and(|c| {
                        c.number == cseq && c.method != "INFO"
                            || c.number == cseq
                                && m.call_id().is_ok_and(|id| id == self.call_id)
                                && m.from().is_ok_and(|f| f.tag() == Some(self.tag.as_str()))
                    }) =>
                {
                    if code < 200 {
                        continue;
                    }
                    return Ok(bytes);
                }
                Some(_) => continue,
                None => self.handle_request(&m).map_err(|e| e.to_string())?,
            }
        }
    }

    fn handle_request(&mut self, m: &Message<'_>) -> std::io::Result<()> {
        let what = describe(m.body());
        self.say("<-", m.method().map(|x| x.as_str()).unwrap_or("?"), &what);
        if let Ok(doc) = csta::parse(m.body()) {
            if let Csta::Event(Event::Call(e)) = doc.message {
                self.events.push((
                    e.kind.name().to_string(),
                    e.connection.call.map(|c| c.to_string()).unwrap_or_default(),
                    e.local_state.map(|s| s.as_str().to_string()).unwrap_or_default(),
                ));
            }
        }
        self.answer(m)?;
        self.say("->", "200 OK", "");
        Ok(())
    }

    /// Waits for an event `name` on `call`, answering everything on the way.
    fn await_event(&mut self, name: &str, call: &str, timeout: Duration) -> Result<(), String> {
        let until = Instant::now() + timeout;
        loop {
            if self.events.iter().any(|(n, c, _)| n == name && c == call) {
                return Ok(());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no {name} for {call} within {timeout:?}"));
            }
            if let Some(bytes) = self.receive(left).map_err(|e| e.to_string())? {
                let m = Message::parse(&bytes).map_err(|e| format!("the gateway sent bad SIP: {e}"))?;
                if m.method().is_some() {
                    self.handle_request(&m).map_err(|e| e.to_string())?;
                }
            }
        }
    }

    fn request(&mut self, method: &str, body: Option<&Request<'_>>) -> Result<Vec<u8>, String> {
        self.cseq += 1;
        self.branch += 1;
        let mut xml = vec![0u8; 4096];
        let mut out = OutBuf::new(&mut xml);
        if let Some(r) = body {
            r.write(Namespace::Ed3, &mut out).map_err(|e| e.to_string())?;
        }
        let xml = out.as_bytes().to_vec();
        let to_tag = if self.gw_tag.is_empty() { String::new() } else { format!(";tag={}", self.gw_tag) };
        let content = if xml.is_empty() {
            ""
        } else {
            "Content-Type: application/csta+xml\r\nContent-Disposition: signal;handling=required\r\n"
        };
        let head = format!(
            "{method} sip:ctigw@gateway SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bKdemo{b}x{cs}\r\nMax-Forwards: 70\r\n\
             From: <{user}>;tag={tag};epid=demo\r\nTo: <sip:ctigw@gateway>{to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cs} {method}\r\n\
             Contact: <sip:{local};transport={tl}>\r\nUser-Agent: ctigw-demo\r\nSupported: timer\r\n{content}Content-Length: {len}\r\n\r\n",
            t = self.transport.to_uppercase(),
            tl = self.transport,
            local = self.local,
            b = self.branch,
            cs = self.cseq,
            user = self.user,
            tag = self.tag,
            cid = self.call_id,
            len = xml.len(),
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&xml);
        self.say("->", method, &describe(&xml));
        self.send(&bytes).map_err(|e| e.to_string())?;
        let response = self.await_response(self.cseq, Duration::from_secs(10))?;
        let m = Message::parse(&response).map_err(|e| e.to_string())?;
        let status = format!("{} {}", m.status_code().unwrap_or(0), m.reason().unwrap_or(""));
        self.say("<-", &status, &describe(m.body()));
        if m.status_code() != Some(200) {
            return Err(format!("{method} answered {status}"));
        }
        if let Ok(Csta::Error(code)) = csta::parse(m.body()).map(|d| d.message) {
            return Err(format!("{method} refused by CSTA error {code}"));
        }
        if method == "INVITE" {
            self.gw_tag = m.to().ok().and_then(|t| t.tag()).unwrap_or("").to_string();
            self.ack()?;
        }
        Ok(response)
    }

    fn ack(&mut self) -> Result<(), String> {
        self.branch += 1;
        let text = format!(
            "ACK sip:ctigw@gateway SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bKdemo{b}ack\r\nMax-Forwards: 70\r\n\
             From: <{user}>;tag={tag};epid=demo\r\nTo: <sip:ctigw@gateway>;tag={gt}\r\nCall-ID: {cid}\r\nCSeq: {cs} ACK\r\nContent-Length: 0\r\n\r\n",
            t = self.transport.to_uppercase(),
            local = self.local,
            b = self.branch,
            user = self.user,
            tag = self.tag,
            gt = self.gw_tag,
            cid = self.call_id,
            cs = self.cseq,
        );
        self.say("->", "ACK", "");
        self.send(text.as_bytes()).map_err(|e| e.to_string())
    }
}

/// The call id in a MakeCall or ConsultationCall response.
fn call_of(response: &[u8]) -> Result<String, String> {
    let m = Message::parse(response).map_err(|e| e.to_string())?;
    match csta::parse(m.body()).map(|d| d.message) {
        Ok(Csta::Response(Response::Call { call, .. })) => call.call.map(|c| c.to_string()).ok_or("no callID".into()),
        other => Err(format!("expected a call in the answer, got {other:?}")),
    }
}

struct Options {
    gateway: SocketAddr,
    transport: &'static str,
    user: String,
    line: String,
    called: String,
    consulted: String,
    quiet: bool,
    probe: bool,
    incoming: Option<SocketAddr>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        gateway: "127.0.0.1:5060".parse().expect("literal"),
        transport: "tcp",
        user: "sip:alice@example.com".into(),
        line: "tel:+14255550101;ext=101".into(),
        called: "tel:+14255559876".into(),
        consulted: "tel:+14255551111".into(),
        quiet: false,
        probe: false,
        incoming: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--gateway" => o.gateway = value()?.parse().map_err(|e| format!("--gateway: {e}"))?,
            "--transport" => {
                o.transport = match value()?.as_str() {
                    "tcp" => "tcp",
                    "udp" => "udp",
                    other => return Err(format!("--transport: tcp or udp, not {other}")),
                }
            }
            "--user" => o.user = value()?,
            "--line" => o.line = value()?,
            "--called" => o.called = value()?,
            "--consulted" => o.consulted = value()?,
            "--quiet" => o.quiet = true,
            "--probe" => o.probe = true,
            "--incoming" => o.incoming = Some(value()?.parse().map_err(|e| format!("--incoming: {e}"))?),
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn run(o: &Options) -> Result<(), String> {
    let mut c = Client::connect(o.gateway, o.transport, &o.user, o.quiet)
        .map_err(|e| format!("cannot reach {}: {e}", o.gateway))?;
    if !o.quiet {
        println!(
            "{} signs in to ctigw at {} over {}, controlling {}\n",
            o.user,
            o.gateway,
            o.transport.to_uppercase(),
            o.line
        );
    }
    let t = Text::literal;
    c.request("INVITE", Some(&Request::RequestSystemStatus { line: Some(t(&o.line)) }))?;
    c.request("INFO", Some(&Request::GetCstaFeatures { line: None }))?;
    c.request("INFO", Some(&Request::MonitorStart { device: t(&o.line) }))?;
    let make_call = |c: &mut Client| {
        let request = Request::MakeCall {
            calling: t(&o.line),
            called: t(&o.called),
            auto_originate: Some(csta::AutoOriginate::DoNotPrompt),
        };
        call_of(&c.request("INFO", Some(&request))?)
    };
    let first = make_call(&mut c)?;
    c.await_event("EstablishedEvent", &first, Duration::from_secs(10))?;
    fn mine<'a>(call: &'a str, line: &'a str) -> ConnectionId<'a> {
        ConnectionId::new(Text::literal(call), Text::literal(line))
    }
    c.request("INFO", Some(&Request::HoldCall { call: mine(&first, &o.line) }))?;
    c.await_event("HeldEvent", &first, Duration::from_secs(5))?;
    c.request("INFO", Some(&Request::RetrieveCall { call: mine(&first, &o.line) }))?;
    c.await_event("RetrievedEvent", &first, Duration::from_secs(5))?;
    let second = call_of(&c.request(
        "INFO",
        Some(&Request::ConsultationCall { existing: mine(&first, &o.line), consulted: t(&o.consulted) }),
    )?)?;
    c.await_event("EstablishedEvent", &second, Duration::from_secs(10))?;
    c.request("INFO", Some(&Request::TransferCall { held: mine(&first, &o.line), active: mine(&second, &o.line) }))?;
    c.await_event("TransferedEvent", &first, Duration::from_secs(5))?;
    let third = make_call(&mut c)?;
    c.await_event("EstablishedEvent", &third, Duration::from_secs(10))?;
    c.request("INFO", Some(&Request::ClearConnection { connection: mine(&third, &o.line) }))?;
    c.await_event("ConnectionClearedEvent", &third, Duration::from_secs(5))?;
    c.request("BYE", None)?;
    if !o.quiet {
        println!(
            "\ndemo complete: a call made, held, retrieved, transferred; another made and hung up; {} events",
            c.events.len()
        );
    }
    Ok(())
}

/// One command on the simulator's control channel; its reply.
fn control(addr: SocketAddr, command: &str) -> Result<String, String> {
    use std::io::BufRead;
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("simulator control {addr}: {e}"))?;
    writeln!(stream, "{command}").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    std::io::BufReader::new(stream).read_line(&mut reply).map_err(|e| e.to_string())?;
    let reply = reply.trim().to_string();
    if !reply.starts_with("ok") {
        return Err(format!("simulator: {command}: {reply}"));
    }
    Ok(reply)
}

/// Calls from outside: answered, hung up by the far end; then deflected.
fn run_incoming(o: &Options, sim: SocketAddr) -> Result<(), String> {
    let mut c = Client::connect(o.gateway, o.transport, &o.user, o.quiet)
        .map_err(|e| format!("cannot reach {}: {e}", o.gateway))?;
    let t = Text::literal;
    c.request("INVITE", Some(&Request::RequestSystemStatus { line: Some(t(&o.line)) }))?;
    c.request("INFO", Some(&Request::MonitorStart { device: t(&o.line) }))?;
    let call_of_reply = |reply: String| reply.trim_start_matches("ok ").to_string();
    let first = call_of_reply(control(sim, &format!("call {} {}", o.called, o.line))?);
    c.await_event("DeliveredEvent", &first, Duration::from_secs(5))?;
    c.request("INFO", Some(&Request::AnswerCall { call: ConnectionId::new(t(&first), t(&o.line)) }))?;
    c.await_event("EstablishedEvent", &first, Duration::from_secs(5))?;
    control(sim, &format!("hangup {first}"))?;
    c.await_event("ConnectionClearedEvent", &first, Duration::from_secs(5))?;
    let second = call_of_reply(control(sim, &format!("call {} {}", o.called, o.line))?);
    c.await_event("DeliveredEvent", &second, Duration::from_secs(5))?;
    c.request(
        "INFO",
        Some(&Request::DeflectCall {
            call: ConnectionId::new(t(&second), t(&o.line)),
            new_destination: t(&o.consulted),
        }),
    )?;
    c.await_event("DivertedEvent", &second, Duration::from_secs(5))?;
    c.request("BYE", None)?;
    if !o.quiet {
        println!(
            "\nincoming calls complete: one answered and hung up by the caller, one deflected; {} events",
            c.events.len()
        );
    }
    Ok(())
}

fn probe(gateway: SocketAddr) -> bool {
    let Ok(mut c) = Client::connect(gateway, "udp", "sip:probe@example.com", true) else { return false };
    c.cseq = 1;
    let text = format!(
        "OPTIONS sip:ctigw@gateway SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKprobe\r\nFrom: <sip:probe@example.com>;tag=p\r\nTo: <sip:ctigw@gateway>\r\nCall-ID: probe-{id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        l = c.local,
        id = std::process::id()
    );
    c.send(text.as_bytes()).is_ok() && c.receive(Duration::from_secs(1)).ok().flatten().is_some()
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ctigw-demo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.probe {
        return if probe(options.gateway) { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let result = match options.incoming {
        Some(sim) => run_incoming(&options, sim),
        None => run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctigw-demo: {e}");
            ExitCode::from(1)
        }
    }
}
