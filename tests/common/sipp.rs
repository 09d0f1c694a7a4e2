//! sipp scenarios written step by step: a Lync user's uaCSTA session as a
//! Lync Front End pool hands it to the gateway, each request with the
//! answer it must get and each event with what it must say, so that a
//! test reads as the service's event sequence.
//!
//! The message shapes are a real pool's, from public traces: the client's
//! `From` with `epid` and `Contact` either as its GRUU or as the
//! `proxy=replace;+sip.instance` form a client registers (MS-SIPRE; the
//! OCS 2007 R2 and Lync 2013 traces in pidgin-sipe's tests and in the
//! OCS 2007 R2 Resource Kit, ch. 9); one `Record-Route` per Front End
//! crossed, with `ms-fe`, `opaque=state:`, `ms-route-sig`, and `ms-rrsig`
//! and `tag` as header parameters (a Skype for Business pool's INVITE);
//! the Front End's `Via` with `branched=FALSE;ms-internal-info` above the
//! client's with `ms-received-port`/`ms-received-cid`; `Supported: timer`
//! and a `User-Agent` as a Lync 2010 client sends them; every CSTA body
//! with `Content-Disposition: signal;handling=required` (sip-csta.c).
//! Values (signatures, epids, ids) are made up in those shapes.

use std::fmt::Write as _;

/// The CSTA namespace the scenarios speak.
pub const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";

/// How the client's Contact looks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// The client's GRUU, as a registered Lync client sends it on INVITE:
    /// the gateway's requests carry it as their Request-URI and reach the
    /// client through the pool's route set.
    Gruu,
    /// An address with `ms-opaque`, `proxy=replace` and `+sip.instance`,
    /// the form a client registers before it has a GRUU.
    Instance,
}

const EPID: &str = "bd23d94254";
const GRUU_OPAQUE: &str = "opaque=user:epid:yrmRjH4GQVqJor-JE9ciowAA;gruu";
/// The first Front End's signature: what the gateway must give back in
/// Route on every request of the dialog.
const RRSIG: &str = "fi6ZIFfGLlfTSXVT9Ua1Sc6Dr7PRA0OtFsTUyeWBNxAAA";

/// A sipp scenario under construction.
pub struct Scenario {
    xml: String,
    /// The user's SIP URI without the scheme (sipp's `[user]` key).
    user: String,
    contact: Contact,
    cseq: u32,
    vars: Vec<String>,
    /// Whether each event's Route and Request-URI are checked (sipp reads
    /// at most 64 KiB of scenario: long ones check their events' bodies only).
    check_routing: bool,
}

/// Escapes text for an XML attribute value.
fn attr(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Scenario {
    /// Signs in: the INVITE (RequestSystemStatus, answered `normal`), its
    /// 200 checked to echo the pool's Record-Route, and the ACK.
    pub fn sign_in(name: &str, user: &str, contact: Contact) -> Scenario {
        let mut s = Scenario {
            xml: String::new(),
            user: user.to_string(),
            contact,
            cseq: 1,
            vars: Vec::new(),
            check_routing: true,
        };
        writeln!(s.xml, "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{}\">", attr(name))
            .unwrap();
        s.invite("");
        let rr = s.var();
        let normal = s.var();
        write!(
            s.xml,
            r#"  <recv response="100" optional="true"/>
  <recv response="200" timeout="5000">
    <action>
      <ereg regexp="ms-rrsig={RRSIG};tag=" search_in="hdr" header="Record-Route:" check_it="true" assign_to="{rr}"/>
      <ereg regexp="normal" search_in="body" check_it="true" assign_to="{normal}"/>
    </action>
  </recv>
"#
        )
        .unwrap();
        s.ack();
        s
    }

    /// From here on, events are checked by their bodies only.
    pub fn without_routing_checks(&mut self) -> &mut Self {
        self.check_routing = false;
        self
    }

    /// From here on, events' Route and Request-URI are checked again.
    pub fn with_routing_checks(&mut self) -> &mut Self {
        self.check_routing = true;
        self
    }

    fn var(&mut self) -> String {
        let name = format!("v{}", self.vars.len());
        self.vars.push(name.clone());
        name
    }

    fn contact_header(&self) -> String {
        match self.contact {
            Contact::Gruu => format!("Contact: <sip:[user];{GRUU_OPAQUE}>"),
            Contact::Instance => "Contact: <sip:[local_ip]:[local_port];transport=[transport];ms-opaque=fad3dfab32>;\
                 methods=\"INVITE, MESSAGE, INFO, OPTIONS, BYE, CANCEL, NOTIFY, ACK, REFER, BENOTIFY\";proxy=replace;\
                 +sip.instance=\"<urn:uuid:4B1682A8-F968-5701-83FC-7C6741DC6697>\""
                .to_string(),
        }
    }

    /// The headers every request of the client's carries through the pool:
    /// the Front End's Via above the client's, Max-Forwards two hops down,
    /// From with the tag and epid.
    fn request_head(&self, method: &str, cseq_method: &str) -> String {
        let to_tag = if method == "INVITE" && self.cseq == 1 { "" } else { "[peer_tag_param]" };
        format!(
            "      {method} sip:ctigw@[remote_ip]:[remote_port];transport=[transport] SIP/2.0\n\
             \x20     Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];branched=FALSE;ms-internal-info=\"cjL3EjunLQK1kpXyRTdBq87wAA\"\n\
             \x20     Via: SIP/2.0/[transport] 10.78.251.56:64100;ms-received-port=64100;ms-received-cid=A58B700\n\
             \x20     Max-Forwards: 68\n\
             \x20     From: \"Alice\" <sip:[user]>;tag=[pid]SIPpTag00[call_number];epid={EPID}\n\
             \x20     To: <sip:ctigw@[remote_ip]:[remote_port]>{to_tag}\n\
             \x20     Call-ID: [call_id]\n\
             \x20     CSeq: {} {cseq_method}\n",
            self.cseq,
        )
    }

    /// An INVITE (or re-INVITE) opening or refreshing the session.
    fn invite(&mut self, extra: &str) {
        let head = self.request_head("INVITE", "INVITE");
        let contact = self.contact_header();
        let record_route = if self.cseq == 1 {
            // Two Front Ends crossed, each adding its Record-Route.
            format!(
                "      Record-Route: <sip:[local_ip]:[local_port];transport=[transport];ms-fe=FE-04.corp.example.com;\
                 opaque=state:F:Ci.Rabf6d00;lr;ms-route-sig=fiowNaa3xSVBcLpTKE1sw4ffyrS1Pm5CwqQ0EDNxAAA>;\
                 ms-rrsig={RRSIG};tag=A990A1D3DF287188230E96F588D87AD1\n\
                 \x20     Record-Route: <sip:pool.corp.example.com:5061;transport=tls;ms-fe=FE-01.corp.example.com;\
                 opaque=state:T;lr>;tag=3A78FB75E877D0A0B16EB39156A3983A\n"
            )
        } else {
            String::new()
        };
        write!(
            self.xml,
            r#"  <send retrans="500">
    <![CDATA[
{head}{record_route}      {contact}
      User-Agent: UCCAPI/4.0.7577.0 OC/4.0.7577.0 (Microsoft Lync 2010)
      Supported: timer
      Supported: ms-dialog-route-set-update
      Ms-Conversation-ID: AdPHUWJH0stCMXggSpG6tMex88orbg==
{extra}      Content-Disposition: signal;handling=required
      Content-Type: application/csta+xml
      Content-Length: [len]

      <?xml version="1.0"?><RequestSystemStatus xmlns="{NS}"/>
    ]]>
  </send>
"#
        )
        .unwrap();
    }

    fn ack(&mut self) {
        let head = self.request_head("ACK", "ACK");
        write!(self.xml, "  <send>\n    <![CDATA[\n{head}      Content-Length: 0\n\n    ]]>\n  </send>\n").unwrap();
        self.cseq += 1;
    }

    /// A CSTA request in an INFO; its 200's body must match each of
    /// `answer` (POSIX extended regular expressions).
    pub fn info(&mut self, body: &str, answer: &[impl AsRef<str>]) -> &mut Self {
        self.send_info(body);
        self.xml.push_str("  <recv response=\"200\" timeout=\"5000\">\n    <action>\n");
        for check in answer {
            let v = self.var();
            writeln!(
                self.xml,
                "      <ereg regexp=\"{}\" search_in=\"body\" check_it=\"true\" assign_to=\"{v}\"/>",
                attr(check.as_ref())
            )
            .unwrap();
        }
        self.xml.push_str("    </action>\n  </recv>\n");
        self
    }

    /// As [`info`](Self::info), the regular expression's first group kept
    /// as `[$name]` for later bodies (a call id the node gave).
    pub fn info_keeping(&mut self, body: &str, answer: &str, name: &str) -> &mut Self {
        let whole = self.var();
        self.vars.push(name.to_string());
        self.send_info(body);
        write!(
            self.xml,
            "  <recv response=\"200\" timeout=\"5000\">\n    <action><ereg regexp=\"{}\" search_in=\"body\" check_it=\"true\" assign_to=\"{whole},{name}\"/></action>\n  </recv>\n",
            attr(answer)
        )
        .unwrap();
        self
    }

    fn send_info(&mut self, body: &str) {
        let head = self.request_head("INFO", "INFO");
        write!(
            self.xml,
            "  <send retrans=\"500\">\n    <![CDATA[\n{head}      Content-Disposition: signal;handling=required\n      Content-Type: application/csta+xml\n      Content-Length: [len]\n\n      <?xml version=\"1.0\"?>{body}\n    ]]>\n  </send>\n"
        )
        .unwrap();
        self.cseq += 1;
    }

    /// The events the gateway must send next, in order, each matching its
    /// regular expression; each INFO must come with the pool's route set
    /// and to the client's Contact, and is answered 200.
    pub fn events(&mut self, each: &[&str]) -> &mut Self {
        for pattern in each {
            let event = self.var();
            self.event(pattern, &event);
        }
        self
    }

    /// The next event, the regular expression's first group kept as
    /// `[$name]`.
    pub fn event_keeping(&mut self, pattern: &str, name: &str) -> &mut Self {
        let whole = self.var();
        self.vars.push(name.to_string());
        self.event(pattern, &format!("{whole},{name}"))
    }

    fn event(&mut self, pattern: &str, assign: &str) -> &mut Self {
        let target = match self.contact {
            Contact::Gruu => format!("^INFO sip:{};{GRUU_OPAQUE} SIP/2\\.0", self.user),
            Contact::Instance => {
                "^INFO sip:127\\.0\\.0\\.1:[0-9]+;transport=[A-Za-z]+;ms-opaque=fad3dfab32 SIP/2\\.0".to_string()
            }
        };
        let routing = if self.check_routing {
            let (route, uri) = (self.var(), self.var());
            format!(
                r#"      <ereg regexp="ms-route-sig=fiowNaa3xSVBcLpTKE1sw4ffyrS1Pm5CwqQ0EDNxAAA&gt;;ms-rrsig={RRSIG};tag=A990A1D3DF287188230E96F588D87AD1, &lt;sip:pool.corp.example.com:5061;transport=tls;ms-fe=FE-01.corp.example.com;opaque=state:T;lr&gt;;tag=3A78FB75E877D0A0B16EB39156A3983A" search_in="hdr" header="Route:" check_it="true" assign_to="{route}"/>
      <ereg regexp="{}" search_in="msg" check_it="true" assign_to="{uri}"/>
"#,
                attr(&target)
            )
        } else {
            String::new()
        };
        write!(
            self.xml,
            r#"  <recv request="INFO" timeout="5000">
    <action>
      <ereg regexp="{}" search_in="body" check_it="true" assign_to="{assign}"/>
{routing}    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"#,
            attr(pattern),
        )
        .unwrap();
        self
    }

    /// Runs a shell command (sipp forks it and goes on). sipp reads the
    /// attribute as it is written, so the command carries no `"`.
    pub fn exec(&mut self, command: &str) -> &mut Self {
        assert!(!command.contains('"'), "{command}");
        writeln!(self.xml, "  <nop><action><exec command=\"{command}\"/></action></nop>").unwrap();
        self
    }

    /// Refreshes the session by re-INVITE, as a Lync client does before
    /// its Session-Expires is up: the 200 makes the client the refresher.
    pub fn refresh(&mut self) -> &mut Self {
        self.invite("      Session-Expires: 1800;refresher=uac\n");
        let v = self.var();
        write!(
            self.xml,
            "  <recv response=\"200\" timeout=\"5000\">\n    <action><ereg regexp=\"^ *1800;refresher=uac\" search_in=\"hdr\" header=\"Session-Expires:\" check_it=\"true\" assign_to=\"{v}\"/></action>\n  </recv>\n"
        )
        .unwrap();
        self.ack();
        self
    }

    /// Signs out (BYE, 200) and gives the scenario's text.
    pub fn sign_out(mut self) -> String {
        let head = self.request_head("BYE", "BYE");
        write!(
            self.xml,
            "  <send retrans=\"500\">\n    <![CDATA[\n{head}      Content-Length: 0\n\n    ]]>\n  </send>\n  <recv response=\"200\"/>\n  <Reference variables=\"{}\"/>\n</scenario>\n",
            self.vars.join(",")
        )
        .unwrap();
        self.xml
    }
}

/// A shell command sipp can run that gives `ctigw-sim`'s control channel
/// at `control` one command and waits (up to 5 s) for its reply. sipp
/// takes the command as written: no entity is decoded (so no `<`, `>` or
/// `&`), and `[...]` would be one of its keywords; hence Python, not a
/// shell redirection.
pub fn sim_command(control: std::net::SocketAddr, command: &str) -> String {
    assert!(!command.contains(['\'', '"', '[', '<', '>', '&']), "{command}");
    format!(
        "timeout 5 python3 -c 'import socket,sys; _,h,p,c=sys.argv; s=socket.create_connection((h,int(p))); \
         s.sendall((c+chr(10)).encode()); s.recv(200)' {} {} '{command}'",
        control.ip(),
        control.port()
    )
}

/// `text` as a regular expression matching itself.
pub fn literal(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
