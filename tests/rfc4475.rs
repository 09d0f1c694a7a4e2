//! The RFC 4475 torture messages, byte-exact from the RFC's archive (see
//! `tests/rfc4475/MANIFEST.md`), through the parser as a datagram and as a
//! stream. Each message has one expected verdict: accepted, or refused with
//! the error that names what is wrong. Where the RFC lets a tolerant parser
//! accept an invalid message, the test says so and why ctigw does.

mod common;

use std::path::PathBuf;

use ctigw::sip::{Error, Frame, Message, Method, StreamBuffer};

fn load(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475").join(format!("{name}.sip"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

use common::sip_verdict as verdict;

fn accepted(name: &str) -> Vec<u8> {
    let bytes = load(name);
    if let Err(e) = verdict(&bytes) {
        panic!("{name} should be accepted, got: {e}");
    }
    bytes
}

fn refused(name: &str, want: Error) {
    let bytes = load(name);
    match verdict(&bytes) {
        Ok(_) => panic!("{name} should be refused with {want:?}"),
        Err(got) => assert_eq!(got, want, "{name}: reason phrase would be {got}"),
    }
}

/// The RFC's list: every file is covered by one of the tests below.
const ALL: [&str; 49] = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
    "badbranch",
    "insuf",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "multi01",
    "mcl01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
];

#[test]
fn the_directory_holds_exactly_the_rfc_list() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".sip").map(str::to_owned))
        .collect();
    found.sort();
    let mut want: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

// 3.1.1: valid messages. Every one must parse.

#[test]
fn wsinv_short_tortuous_invite() {
    let bytes = accepted("wsinv");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.number, cseq.method), (9, "INVITE"));
    let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
    let hosts: Vec<_> = vias.iter().map(|v| (v.transport, v.host, v.branch())).collect();
    assert_eq!(
        hosts,
        [
            ("UDP", "192.0.2.2", Some("390skdjuw")),
            ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8")),
            ("UDP", "192.168.255.111", Some("z9hG4bK30239")),
        ]
    );
    let to = m.to().unwrap();
    assert_eq!((to.uri, to.tag()), ("sip:vivekg@chair-dnrc.example.com", Some("1918181833n")));
    let from = m.from().unwrap();
    assert_eq!((from.display_name, from.tag()), (Some(r#"J Rosenberg \\\""#), Some("98asjd8")));
    assert_eq!(m.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    let contact = m.contact().unwrap().unwrap();
    assert_eq!((contact.params.value("newparam"), contact.params.value("q")), (Some("newvalue"), Some("0.33")));
    assert_eq!(m.content_length().unwrap(), Some(150));
    assert_eq!(m.body().len(), 150);
    let unusual = m.value_of("UnknownHeaderWithUnusualValue").unwrap();
    assert_eq!(unusual, b";;,,;;,;");
}

#[test]
fn intmeth_unusual_token_characters() {
    let bytes = accepted("intmeth");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.method(), Some(Method::Extension("!interesting-Method0123456789_*+`.%indeed'~")));
    assert_eq!(m.call_id().unwrap(), "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    assert_eq!(m.to().unwrap().display_name, Some("BEL:\\\x07 NUL:\\\0 DEL:\\\x7f"));
    assert_eq!(m.from().unwrap().display_name, Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(m.via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
}

#[test]
fn escapes_are_not_decoded_by_the_parser() {
    let m_bytes = accepted("esc01");
    let m = Message::parse(&m_bytes).unwrap();
    assert_eq!(m.request_uri(), Some("sip:sips%3Auser%40example.com@example.net"));

    accepted("escnull");

    let bytes = accepted("esc02");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.method(), Some(Method::Extension("RE%47IST%45R")));
    // `C%6Fntact` is an unknown header: two Contact values, not three.
    assert_eq!(m.name_addrs(ctigw::sip::HeaderName::Contact).count(), 2);
}

#[test]
fn lwsdisp_semiuri_transports_are_well_formed() {
    let bytes = accepted("lwsdisp");
    assert_eq!(Message::parse(&bytes).unwrap().from().unwrap().display_name, Some("caller"));
    let bytes = accepted("semiuri");
    assert_eq!(Message::parse(&bytes).unwrap().request_uri(), Some("sip:user;par=u%40example.net@example.com"));
    let bytes = accepted("transports");
    let m = Message::parse(&bytes).unwrap();
    let transports: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn longreq_long_values_and_many_vias() {
    let bytes = accepted("longreq");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.vias().count(), 34);
    assert_eq!(m.from().unwrap().tag().unwrap().len(), 155);
}

#[test]
fn dblreq_extra_octets_after_content_length_are_ignored_on_udp() {
    let bytes = accepted("dblreq");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    assert!(m.body().is_empty());
    assert!(m.len() < bytes.len());
}

#[test]
fn mpart01_binary_multipart_body_framed_by_content_length() {
    let bytes = accepted("mpart01");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.body().len(), 553);
    assert!(m.content_type().unwrap().unwrap().is("multipart", "mixed"));
}

#[test]
fn unusual_and_empty_reason_phrases() {
    let bytes = accepted("unreason");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.status_code(), Some(200));
    assert_eq!(m.reason(), Some("= 2**3 * 5**2 но сто девяносто девять - простое"));
    let bytes = accepted("noreason");
    assert_eq!(Message::parse(&bytes).unwrap().reason(), Some(""));
}

// 3.1.2: invalid messages. Each is refused with the error naming the fault,
// or accepted where the RFC lets a tolerant element do so.

#[test]
fn badinv01_empty_via_parameters() {
    refused("badinv01", Error::BadHeader("Via"));
}

#[test]
fn clerr_content_length_beyond_the_datagram() {
    refused("clerr", Error::BodyTruncated { declared: 9999, available: 154 });
}

#[test]
fn ncl_negative_content_length() {
    refused("ncl", Error::BadContentLength);
}

#[test]
fn scalar02_and_scalarlg_out_of_range_cseq() {
    refused("scalar02", Error::BadHeader("CSeq"));
    refused("scalarlg", Error::BadHeader("CSeq"));
}

#[test]
fn quotbal_unterminated_quote() {
    refused("quotbal", Error::BadHeader("To"));
}

#[test]
fn request_line_faults() {
    refused("ltgtruri", Error::BadStartLine("Request-URI in angle brackets"));
    refused("lwsruri", Error::BadStartLine("white space in the Request-URI"));
    refused("lwsstart", Error::BadStartLine("white space in the Request-URI"));
    refused("trws", Error::BadStartLine("white space at the end of the request line"));
}

#[test]
fn escruri_tolerated_because_the_gateway_never_forwards_its_request_uri() {
    // RFC 4475 §3.1.2.11: an element may reject or ignore the escaped
    // headers. ctigw terminates requests and never routes on the
    // Request-URI, so the headers are harmless and ignored.
    let bytes = accepted("escruri");
    assert_eq!(Message::parse(&bytes).unwrap().request_uri(), Some("sip:user@example.com?Route=%3Csip:example.com%3E"));
}

#[test]
fn baddate_tolerated_because_date_is_never_read() {
    // §3.1.2.12: reject only if Date matters to the element; it does not here.
    accepted("baddate");
}

#[test]
fn regbadct_addr_spec_with_escaped_header_needs_brackets() {
    refused("regbadct", Error::BadHeader("Contact"));
}

#[test]
fn badaspec_spaces_inside_brackets_tolerated() {
    // §3.1.2.14: reasonable to reject, and a tolerant element may ignore
    // the spaces, which is unambiguous here; ctigw trims them.
    let bytes = accepted("badaspec");
    assert_eq!(Message::parse(&bytes).unwrap().to().unwrap().uri, "sip:t.watson@example.org");
}

#[test]
fn baddn_unquoted_display_name_with_comma() {
    // The archive's file also lacks the blank line ending the header block,
    // so as a datagram it is truncated before the display names matter.
    refused("baddn", Error::Truncated);
    let mut completed = load("baddn");
    completed.extend_from_slice(b"\r\n");
    assert_eq!(verdict(&completed).unwrap_err(), Error::BadHeader("From"));
}

#[test]
fn badvers_is_505() {
    refused("badvers", Error::UnsupportedVersion);
    assert_eq!(Error::UnsupportedVersion.status_code(), 505);
}

#[test]
fn cseq_method_mismatch() {
    refused("mismatch01", Error::CSeqMethodMismatch);
    // §3.1.2.18 prefers 501 for the unknown method; the gateway answers
    // methods it does not implement with 501 before it checks CSeq, and
    // the parser names the mismatch.
    refused("mismatch02", Error::CSeqMethodMismatch);
}

#[test]
fn bigcode_status_code_out_of_range() {
    refused("bigcode", Error::BadStartLine("status code is not 100 to 699"));
}

// 3.2, 3.3, 3.4: transaction and application layer.

#[test]
fn badbranch_magic_cookie_alone() {
    refused("badbranch", Error::BadHeader("Via"));
}

#[test]
fn insuf_missing_required_headers() {
    refused("insuf", Error::MissingHeader("From"));
}

#[test]
fn multi01_repeated_singletons() {
    refused("multi01", Error::DuplicateHeader("From"));
}

#[test]
fn mcl01_conflicting_content_lengths() {
    refused("mcl01", Error::DuplicateHeader("Content-Length"));
}

#[test]
fn well_formed_application_layer_messages_parse() {
    // Each of these is syntactically valid; what an element does with them
    // (416, 420, 415, 483...) is decided above the parser.
    for name in [
        "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf", "cparam01", "cparam02",
        "regescrt", "sdp01", "inv2543",
    ] {
        accepted(name);
    }
    let bytes = load("bext01");
    let m = Message::parse(&bytes).unwrap();
    assert!(m.requires("nothingSupportsThis") && m.requires("nothingSupportsThisEither"));
    let bytes = load("zeromf");
    assert_eq!(Message::parse(&bytes).unwrap().max_forwards().unwrap(), Some(0));
    let bytes = load("inv2543");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!((m.via().unwrap().branch(), m.from().unwrap().tag()), (None, None));
    assert_eq!(m.body().len(), 105);
    let bytes = load("cparam01");
    let contact = Message::parse(&bytes).unwrap().contact().unwrap().unwrap();
    assert_eq!(contact.uri, "sip:+19725552222@gw1.example.net");
    assert!(contact.params.has("unknownparam"));
    let bytes = load("cparam02");
    let contact = Message::parse(&bytes).unwrap().contact().unwrap().unwrap();
    assert_eq!(contact.uri, "sip:+19725552222@gw1.example.net;unknownparam");
}

/// Every message fed to a stream connection one byte at a time and in one
/// piece frames the same, and faults of framing are stream errors.
#[test]
fn every_message_on_a_stream() {
    for name in ALL {
        let bytes = load(name);
        let whole = frame_all(&bytes, bytes.len());
        let bytewise = frame_all(&bytes, 1);
        assert_eq!(whole, bytewise, "{name}");
        let expected = match name {
            // Content-Length beyond the configured maximum body: refused
            // as soon as the header block is complete, not waited for.
            "clerr" => "error: Content-Length 9999 exceeds the maximum of 4096",
            "ncl" => "error: Bad Content-Length",
            "mcl01" => "error: Duplicate Content-Length header",
            // No Content-Length: unframeable on a stream.
            "inv2543" => "error: Missing Content-Length on a stream",
            // No blank line: the header block never ends.
            "baddn" => "partial",
            // On a stream the bytes after the REGISTER are what follows
            // it: a pong (CR LF), the INVITE, and then body bytes beyond
            // the INVITE's Content-Length, which carry no Content-Length.
            "dblreq" => "message,keep-alive,message,error: Missing Content-Length on a stream",
            // A bad start line is framed by Content-Length and answered;
            // the connection stays in step for the other users on it.
            "ltgtruri" | "lwsruri" | "lwsstart" | "trws" | "badvers" | "bigcode" => "invalid",
            _ => "message",
        };
        assert_eq!(whole, expected, "{name}");
    }
}

fn frame_all(bytes: &[u8], chunk: usize) -> String {
    let mut buf = StreamBuffer::<8192>::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        assert_eq!(buf.push(piece), piece.len());
        loop {
            match buf.next(4096) {
                Ok(Some(Frame::Message(_))) => out.push("message".to_string()),
                Ok(Some(Frame::Invalid { .. })) => out.push("invalid".to_string()),
                Ok(Some(_)) => out.push("keep-alive".to_string()),
                Ok(None) => break,
                Err(e) => {
                    out.push(format!("error: {e}"));
                    return out.join(",");
                }
            }
        }
    }
    if !buf.pending().is_empty() {
        out.push("partial".into());
    }
    out.join(",")
}
