//! Unit tests of the CSTA codec: every message kind written and read back,
//! and every way a document can be refused.

use super::*;
use crate::outbuf::OutBuf;

fn t(s: &'static str) -> Text<'static> {
    Text::literal(s)
}

fn conn(call: &'static str, device: &'static str) -> ConnectionId<'static> {
    ConnectionId::new(t(call), t(device))
}

/// One instance of every message the codec knows.
pub(crate) fn every_message() -> Vec<Message<'static>> {
    let mut all = Vec::new();
    let a = conn("C-1", "tel:+14255550101;ext=101");
    let b = conn("C-2", "tel:+14255550101;ext=101");
    for request in [
        Request::RequestSystemStatus { line: Some(t("tel:+14255550101;ext=101")) },
        Request::RequestSystemStatus { line: None },
        Request::GetCstaFeatures { line: None },
        Request::MonitorStart { device: t("tel:101") },
        Request::MonitorStop { monitor: t("4711") },
        Request::SnapshotDevice { device: t("tel:101") },
        Request::MakeCall {
            calling: t("tel:101"),
            called: t("tel:+1 (425) 555-9876"),
            auto_originate: Some(AutoOriginate::DoNotPrompt),
        },
        Request::MakeCall { calling: t("tel:101"), called: t("tel:102"), auto_originate: None },
        Request::AnswerCall { call: a },
        Request::ClearConnection { connection: a },
        Request::HoldCall { call: a },
        Request::RetrieveCall { call: ConnectionId { call: Some(t("C-1")), device: None } },
        Request::ConsultationCall { existing: a, consulted: t("tel:103") },
        Request::TransferCall { held: a, active: b },
        Request::SingleStepTransferCall { active: a, transferred_to: t("tel:104") },
        Request::ConferenceCall { held: a, active: b },
        Request::AlternateCall { held: a, active: b },
        Request::DeflectCall { call: a, new_destination: t("tel:105") },
        Request::GenerateDigits { connection: a, characters: t("12#*") },
        Request::SetForwarding {
            device: t("tel:101"),
            forwarding_type: Some(ForwardingType::Immediate),
            activate: true,
            forward_dn: Some(t("tel:199")),
        },
        Request::SetForwarding { device: t("tel:101"), forwarding_type: None, activate: false, forward_dn: None },
        Request::GetForwarding { device: t("tel:101") },
        Request::SetDoNotDisturb { device: t("tel:101"), on: true },
        Request::GetDoNotDisturb { device: t("tel:101") },
    ] {
        all.push(Message::Request(request));
    }
    let mut snapshot = heapless::Vec::new();
    let conference = [LocalConnectionState::Connected, LocalConnectionState::Hold, LocalConnectionState::Alerting];
    snapshot.push(SnapshotCall { connection: a, states: conference.into_iter().collect() }).unwrap();
    snapshot.push(SnapshotCall { connection: b, states: heapless::Vec::new() }).unwrap();
    let mut forwardings = heapless::Vec::new();
    forwardings
        .push(ForwardItem { forwarding_type: Some(ForwardingType::Busy), active: true, forward_dn: Some(t("tel:199")) })
        .unwrap();
    forwardings.push(ForwardItem { forwarding_type: None, active: false, forward_dn: None }).unwrap();
    for response in [
        Response::SystemStatus(SystemStatus::Normal),
        Response::Features(Services::all()),
        Response::Features(Services::NONE.with(Service::MakeCall).with(Service::SingleStepTransferCall)),
        Response::MonitorStarted { monitor: t("4711") },
        Response::Snapshot { calls: snapshot, dropped: None },
        Response::Snapshot { calls: heapless::Vec::new(), dropped: None },
        Response::Forwarding { items: forwardings },
        Response::DoNotDisturb { on: false },
    ] {
        all.push(Message::Response(response));
    }
    for service in [
        Service::MakeCall,
        Service::ConsultationCall,
        Service::TransferCall,
        Service::SingleStepTransferCall,
        Service::ConferenceCall,
    ] {
        all.push(Message::Response(Response::Call { service, call: a }));
    }
    for service in [
        Service::MonitorStop,
        Service::AnswerCall,
        Service::ClearConnection,
        Service::HoldCall,
        Service::RetrieveCall,
        Service::AlternateCall,
        Service::DeflectCall,
        Service::GenerateDigits,
        Service::SetForwarding,
        Service::SetDoNotDisturb,
    ] {
        all.push(Message::Response(Response::Ack(service)));
    }
    for kind in CallEventKind::ALL {
        let mut e = CallEvent::new(kind, t("4711"), a);
        e.subject = Some(t("tel:101"));
        e.local_state = Some(LocalConnectionState::Connected);
        e.cause = Some(cause::NEW_CALL);
        if matches!(kind, CallEventKind::Transfered | CallEventKind::Conferenced) {
            e.secondary_call = Some(b);
            e.connections.push(conn("C-3", "tel:103")).unwrap();
            e.connections.push(conn("C-3", "tel:104")).unwrap();
        }
        if matches!(kind, CallEventKind::Transfered | CallEventKind::Conferenced | CallEventKind::Diverted) {
            e.target = Some(t("tel:103"));
        }
        if matches!(
            kind,
            CallEventKind::Delivered | CallEventKind::Established | CallEventKind::Diverted | CallEventKind::Failed
        ) {
            e.calling = Some(t("tel:101"));
        }
        // Both forms of a redirecting device: ECMA-323's and the one some
        // switches write.
        e.redirection = match kind {
            CallEventKind::Delivered | CallEventKind::Established => Some(Redirection::Dialed(t("tel:199"))),
            CallEventKind::Diverted => Some(Redirection::Device(t("tel:101"))),
            CallEventKind::Failed => Some(Redirection::Restricted),
            _ => None,
        };
        if !matches!(
            kind,
            CallEventKind::ServiceInitiated
                | CallEventKind::Held
                | CallEventKind::Retrieved
                | CallEventKind::ConnectionCleared
                | CallEventKind::Transfered
                | CallEventKind::Conferenced
        ) {
            e.called = Some(t("tel:102"));
        }
        all.push(Message::Event(Event::Call(e)));
    }
    all.push(Message::Event(Event::Forwarding(ForwardingEvent {
        monitor: t("4711"),
        device: t("tel:101"),
        forwarding_type: Some(ForwardingType::NoAnswer),
        active: true,
        forward_to: Some(t("tel:199")),
    })));
    all.push(Message::Event(Event::DoNotDisturb(DoNotDisturbEvent {
        monitor: t("4711"),
        device: t("tel:101"),
        on: true,
    })));
    for code in [
        ErrorCode::INVALID_DEVICE_ID,
        ErrorCode::PRIVILEGE_VIOLATION,
        ErrorCode::INVALID_CALL_ID,
        ErrorCode::RESOURCE_BUSY,
        ErrorCode::RESOURCE_OUT_OF_SERVICE,
        ErrorCode::REQUEST_INCOMPATIBLE_WITH_OBJECT,
        ErrorCode::GENERIC_OPERATION,
    ] {
        all.push(Message::Error(code));
    }
    for session in [
        SessionMessage::Start {
            application_id: t("ctigw"),
            protocol_version: Some(t(Namespace::Ed3.uri())),
            duration: Some(90),
        },
        SessionMessage::Started {
            session_id: t("S-1"),
            protocol_version: Some(t(Namespace::Ed3.uri())),
            duration: Some(90),
        },
        SessionMessage::ResetTimer { session_id: t("S-1"), duration: Some(90) },
        SessionMessage::TimerReset { duration: Some(90) },
        SessionMessage::Stop { session_id: t("S-1") },
        SessionMessage::Stopped,
        SessionMessage::Refused { refused: SessionRequest::Start, error: t("serverResourcesBusy") },
        SessionMessage::Refused { refused: SessionRequest::ResetTimer, error: t("invalidSessionID") },
        SessionMessage::Refused { refused: SessionRequest::Stop, error: t("invalidSessionID") },
        SessionMessage::Terminated { session_id: Some(t("S-1")), reason: Some(t("sessionTimerExpired")) },
    ] {
        all.push(Message::Session(session));
    }
    for system in [
        SystemMessage::Status { status: t("enabled") },
        SystemMessage::StatusAnswered,
        SystemMessage::Register,
        SystemMessage::Registered { register_id: Some(t("27ss")) },
        SystemMessage::Registered { register_id: None },
    ] {
        all.push(Message::System(system));
    }
    all
}

fn write(message: &Message<'_>, namespace: Namespace) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut out = OutBuf::new(&mut buf);
    message.write(namespace, &mut out).unwrap();
    out.as_bytes().to_vec()
}

#[test]
fn every_message_round_trips_in_every_edition() {
    let all = every_message();
    assert_eq!(all.len(), 82);
    for message in &all {
        for namespace in [Namespace::Ed3, Namespace::Ed4, Namespace::Ed5, Namespace::Ed6] {
            let bytes = write(message, namespace);
            let doc = parse(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
            assert_eq!(&doc.message, message, "{}", String::from_utf8_lossy(&bytes));
            let want = if matches!(message, Message::Session(_)) { Namespace::AppSession } else { namespace };
            assert_eq!(doc.namespace, want);
        }
    }
}

#[test]
fn every_service_and_event_kind_is_covered() {
    let all = every_message();
    for service in Service::ALL {
        assert!(all.iter().any(|m| matches!(m, Message::Request(r) if r.service() == service)), "{service:?} request");
        assert!(
            all.iter().any(|m| matches!(m, Message::Response(r) if r.service() == service)),
            "{service:?} response"
        );
    }
    for kind in CallEventKind::ALL {
        assert!(all.iter().any(|m| matches!(m, Message::Event(Event::Call(e)) if e.kind == kind)), "{kind:?}");
    }
}

/// Found by the csta_document fuzzer: an event without a cause came back
/// with `normal` added; a relay must not invent what the node did not say.
#[test]
fn fuzz_regression_an_event_without_cause_is_written_without_one() {
    let xml = br#"<EstablishedEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"><monitorCrossRefID>4711</monitorCrossRefID><establishedConnection><callID>C-0001</callID><deviceID>tel:+14255559876</deviceID></establishedConnection><answeringDevice><deviceIdentifier>tel:+14255559876</deviceIdentifier></answeringDevice></EstablishedEvent>"#;
    let doc = parse(xml).unwrap();
    let bytes = write(&doc.message, Namespace::Ed3);
    let mut again = parse(&bytes).unwrap();
    // ECMA-323's mandatory lastRedirectionDevice, which the node left out,
    // goes on as what the gateway knows of it: notKnown.
    let Message::Event(Event::Call(e)) = &mut again.message else { panic!() };
    assert_eq!(e.redirection.take(), Some(Redirection::NotKnown));
    assert_eq!(again, doc);
    assert!(!String::from_utf8_lossy(&bytes).contains("<cause>"));
}

#[test]
fn written_text_is_escaped() {
    let m = Message::Request(Request::MakeCall { calling: t("tel:101"), called: t("a&b<c>\"'"), auto_originate: None });
    let bytes = write(&m, Namespace::Ed3);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("<calledDirectoryNumber>a&amp;b&lt;c&gt;&quot;&apos;</calledDirectoryNumber>"), "{text}");
    let Message::Request(Request::MakeCall { called, .. }) = parse(&bytes).unwrap().message else { panic!() };
    assert_eq!(called.to_string(), "a&b<c>\"'");
}

#[test]
fn text_is_borrowed_from_the_input() {
    let xml = br#"<MakeCall xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"><callingDevice>tel:101</callingDevice><calledDirectoryNumber>tel:102</calledDirectoryNumber></MakeCall>"#;
    let Message::Request(Request::MakeCall { calling, .. }) = parse(xml).unwrap().message else { panic!() };
    let slice = calling.as_str().unwrap();
    let start = slice.as_ptr() as usize - xml.as_ptr() as usize;
    assert_eq!(&xml[start..start + slice.len()], b"tel:101");
}

#[test]
fn prefixed_root_cdata_comments_and_unknown_elements() {
    let xml = br#"<?xml version="1.0"?>
<!-- a comment -->
<csta:HoldCall xmlns:csta="http://www.ecma-international.org/standards/ecma-323/csta/ed4">
  <csta:callToBeHeld><csta:callID><![CDATA[C<1>]]></csta:callID><csta:deviceID>tel:101</csta:deviceID></csta:callToBeHeld>
  <connectionReservation>true</connectionReservation>
  <extensions><privateData><private><x:y xmlns:x="urn:vendor"><deep>ignored</deep></x:y></private></privateData></extensions>
</csta:HoldCall>"#;
    let doc = parse(xml).unwrap();
    assert_eq!(doc.namespace, Namespace::Ed4);
    let Message::Request(Request::HoldCall { call }) = doc.message else { panic!("{:?}", doc.message) };
    assert_eq!(call.call.unwrap().to_string(), "C<1>");
    assert_eq!(call.device.unwrap(), "tel:101");
}

#[test]
fn session_messages_without_namespace_or_in_a_csta_one() {
    for xml in [
        &br#"<StartApplicationSessionPosResponse><sessionID>S1</sessionID><actualSessionDuration>60</actualSessionDuration></StartApplicationSessionPosResponse>"#[..],
        br#"<StartApplicationSessionPosResponse xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"><sessionID>S1</sessionID><actualSessionDuration>60</actualSessionDuration></StartApplicationSessionPosResponse>"#,
    ] {
        let doc = parse(xml).unwrap();
        assert_eq!(doc.message, Message::Session(SessionMessage::Started { session_id: t("S1"), protocol_version: None, duration: Some(60) }));
    }
}

#[test]
fn lenient_plain_device_in_logical_events() {
    let xml = br#"<DoNotDisturbEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"><monitorCrossRefID>7</monitorCrossRefID><device>7659366</device><doNotDisturbOn>1</doNotDisturbOn></DoNotDisturbEvent>"#;
    let doc = parse(xml).unwrap();
    assert_eq!(
        doc.message,
        Message::Event(Event::DoNotDisturb(DoNotDisturbEvent { monitor: t("7"), device: t("7659366"), on: true }))
    );
}

#[test]
fn refusals_say_what_is_wrong() {
    let ns = r#"xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3""#;
    let cases: Vec<(String, Error)> = vec![
        (
            format!("<MakeCall {ns}><callingDevice>tel:1</callingDevice></MakeCall>"),
            Error::MissingElement("calledDirectoryNumber"),
        ),
        (format!("<HoldCall {ns}><callToBeHeld/></HoldCall>"), Error::MissingElement("callToBeHeld")),
        (
            format!(
                "<SetDoNotDisturb {ns}><device>tel:1</device><doNotDisturbOn>maybe</doNotDisturbOn></SetDoNotDisturb>"
            ),
            Error::BadValue("doNotDisturbOn"),
        ),
        (
            format!(
                "<MakeCall {ns}><callingDevice>tel:1</callingDevice><calledDirectoryNumber>2</calledDirectoryNumber><autoOriginate>now</autoOriginate></MakeCall>"
            ),
            Error::BadValue("autoOriginate"),
        ),
        ("<MakeCall><callingDevice>tel:1</callingDevice></MakeCall>".into(), Error::MissingNamespace),
        (r#"<MakeCall xmlns="urn:evil"/>"#.into(), Error::UnknownNamespace),
        (format!("<SendMeMoney {ns}/>"), Error::UnknownMessage),
        (format!("<MakeCall {ns}><callingDevice>tel:1</calledDevice></MakeCall>"), Error::MismatchedTag),
        (format!("<MakeCall {ns}><callingDevice>tel:1"), Error::Truncated),
        (format!("<MakeCall {ns}>text</MakeCall>"), Error::UnexpectedText),
        (format!("<MonitorStop {ns}><monitorCrossRefID>&bomb;</monitorCrossRefID></MonitorStop>"), Error::BadReference),
        (format!("<!DOCTYPE x [<!ENTITY bomb \"boom\">]><MonitorStop {ns}/>"), Error::DtdNotAllowed),
        ("".into(), Error::NoRootElement),
        ("   ".into(), Error::NoRootElement),
        (format!("<MonitorStop {ns}>{}{}</MonitorStop>", "<a>".repeat(20), "</a>".repeat(20)), Error::TooDeep),
        (format!("<CSTAErrorCode {ns}></CSTAErrorCode>"), Error::MissingElement("error category")),
    ];
    for (xml, want) in cases {
        assert_eq!(parse(xml.as_bytes()).unwrap_err(), want, "{xml}");
    }
    assert_eq!(parse(&[0xff, 0xfe]).unwrap_err(), Error::NotUtf8);
    assert!(matches!(parse(b"<MakeCall xmlns=>").unwrap_err(), Error::Xml(_)));
    // A second root element: xmlparser itself refuses it.
    let two_roots =
        format!("<MonitorStop {ns}><monitorCrossRefID>1</monitorCrossRefID></MonitorStop><MonitorStop {ns}/>");
    assert!(matches!(parse(two_roots.as_bytes()).unwrap_err(), Error::Xml(_)));
}

/// What does not fit is kept up to the capacity and reported as dropped,
/// never refused whole nor cut silently: a snapshot of more calls, a call
/// of more parties, a conference of more than sixteen, elements the
/// gateway does not model.
#[test]
fn lists_longer_than_the_tables_keep_what_fits_and_say_what_was_dropped() {
    let ns = r#"xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3""#;
    let states = "<localConnectionState>connected</localConnectionState>".repeat(MAX_CALL_STATES + 2);
    let item = format!(
        "<snapshotDeviceResponseInfo><connectionIdentifier><callID>C</callID></connectionIdentifier>\
         <localCallState><compoundCallState>{states}</compoundCallState></localCallState></snapshotDeviceResponseInfo>"
    );
    let xml = format!(
        "<SnapshotDeviceResponse {ns}><crossRefIDorSnapshotData><snapshotData>{}</snapshotData></crossRefIDorSnapshotData></SnapshotDeviceResponse>",
        item.repeat(MAX_SNAPSHOT_CALLS + 1)
    );
    let Message::Response(Response::Snapshot { calls, dropped }) = parse(xml.as_bytes()).unwrap().message else {
        panic!()
    };
    assert_eq!(calls.len(), MAX_SNAPSHOT_CALLS);
    assert!(calls.iter().all(|c| c.states.len() == MAX_CALL_STATES));
    // Two states too many in each of sixteen calls, and one call.
    let dropped = dropped.unwrap();
    assert_eq!(dropped.kinds, ["localConnectionState", "snapshotDeviceResponseInfo"]);
    assert_eq!(dropped.count, 2 * 16 + 1);

    let party = |i: usize| {
        format!(
            "<connectionListItem><newConnection><callID>C-9</callID><deviceID>tel:{i}</deviceID></newConnection></connectionListItem>"
        )
    };
    let parties: String = (0..MAX_EVENT_CONNECTIONS + 3).map(party).collect();
    let xml = format!(
        "<ConferencedEvent {ns}><monitorCrossRefID>1</monitorCrossRefID><primaryOldCall><callID>C-1</callID>\
         <deviceID>tel:101</deviceID></primaryOldCall><conferencingDevice><deviceIdentifier>tel:101</deviceIdentifier>\
         </conferencingDevice><addedParty><deviceIdentifier>tel:120</deviceIdentifier></addedParty>\
         <conferenceConnections>{parties}</conferenceConnections><localConnectionInfo>connected</localConnectionInfo>\
         <cause>conference</cause><servicesPermitted><callControlServices/></servicesPermitted>\
         <extensions><privateData><private>x</private></privateData></extensions></ConferencedEvent>"
    );
    let Message::Event(Event::Call(e)) = parse(xml.as_bytes()).unwrap().message else { panic!() };
    assert_eq!(e.connections.len(), MAX_EVENT_CONNECTIONS);
    assert_eq!(e.connections[15].device.unwrap(), "tel:15", "the first sixteen, in order");
    assert_eq!(e.cause.unwrap(), "conference");
    let dropped = e.dropped.unwrap();
    assert_eq!(dropped.kinds, ["connectionListItem", "servicesPermitted", "extensions"], "each kind named once");
    assert_eq!(dropped.count, 3 + 2);
    assert_eq!(Error::TooManyItems("x").error_code(), ErrorCode::VALUE_OUT_OF_RANGE);
}

/// lastRedirectionDevice as switches write it: ECMA-323's numberDialed,
/// deviceIdentifier, plain text, each written back as it came; an unknown
/// form counted as dropped; in an event whose schema has none (Held), not
/// passed on but counted.
#[test]
fn last_redirection_device_in_each_form_and_where_it_does_not_belong() {
    let ns = r#"xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3""#;
    let event = |root: &str, connection: &str, redirection: &str| {
        format!(
            "<{root} {ns}><monitorCrossRefID>1</monitorCrossRefID><{connection}><callID>C-1</callID>\
             <deviceID>tel:101</deviceID></{connection}><lastRedirectionDevice>{redirection}</lastRedirectionDevice>\
             <cause>redirected</cause></{root}>"
        )
    };
    for (form, want) in [
        ("<numberDialed>tel:102</numberDialed>", Some(Redirection::Dialed(Text::literal("tel:102")))),
        ("<deviceIdentifier>tel:102</deviceIdentifier>", Some(Redirection::Device(Text::literal("tel:102")))),
        ("tel:102", Some(Redirection::Plain(Text::literal("tel:102")))),
        ("<restricted/>", Some(Redirection::Restricted)),
        ("<vendorThing>x</vendorThing>", None),
    ] {
        let xml = event("DeliveredEvent", "connection", form);
        let doc = parse(xml.as_bytes()).unwrap();
        let Message::Event(Event::Call(e)) = &doc.message else { panic!() };
        assert_eq!(e.redirection, want, "{form}");
        assert_eq!(e.dropped.is_some(), want.is_none(), "{form}");
        if want.is_some() {
            let written = String::from_utf8(write(&doc.message, Namespace::Ed3)).unwrap();
            assert!(written.contains(&format!("<lastRedirectionDevice>{form}</lastRedirectionDevice>")), "{written}");
        }
    }
    let held = event("HeldEvent", "heldConnection", "<numberDialed>tel:102</numberDialed>");
    let doc = parse(held.as_bytes()).unwrap();
    let Message::Event(Event::Call(e)) = &doc.message else { panic!() };
    assert_eq!(e.redirection, None);
    assert_eq!(e.dropped.as_ref().unwrap().kinds, ["lastRedirectionDevice"]);
    assert!(!String::from_utf8(write(&doc.message, Namespace::Ed3)).unwrap().contains("lastRedirection"));
}

#[test]
fn every_too_small_buffer_is_an_overflow() {
    for message in every_message() {
        let whole = write(&message, Namespace::Ed3).len();
        for size in [0, 1, whole / 2, whole - 1] {
            let mut buf = vec![0u8; size];
            let mut out = OutBuf::new(&mut buf);
            assert_eq!(message.write(Namespace::Ed3, &mut out), Err(crate::outbuf::Overflow), "{message:?} in {size}");
        }
    }
}

#[test]
fn controlled_devices_name_what_must_be_authorised() {
    let a = conn("C-1", "tel:101");
    let b = conn("C-2", "tel:102");
    let devices = |r: Request<'static>| -> Vec<Option<String>> {
        r.controlled_devices().into_iter().flatten().map(|d| d.map(|t| t.to_string())).collect()
    };
    assert_eq!(
        devices(Request::MakeCall { calling: t("tel:101"), called: t("tel:999"), auto_originate: None }),
        [Some("tel:101".to_string())]
    );
    assert_eq!(
        devices(Request::TransferCall { held: a, active: b }),
        [Some("tel:101".to_string()), Some("tel:102".to_string())]
    );
    assert_eq!(devices(Request::DeflectCall { call: a, new_destination: t("tel:999") }), [Some("tel:101".to_string())]);
    assert_eq!(devices(Request::HoldCall { call: ConnectionId { call: Some(t("C-1")), device: None } }), [None]);
    assert!(devices(Request::MonitorStop { monitor: t("1") }).is_empty());
}

#[test]
fn the_root_name_is_found_without_parsing() {
    use super::root_name;
    assert_eq!(root_name(b"<ApplicationSessionTerminated xmlns=\"x\"/>"), Some("ApplicationSessionTerminated"));
    assert_eq!(
        root_name(b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\r\n<!-- a -->\n<csta:DeliveredEvent xmlns:csta=\"x\">"),
        Some("DeliveredEvent")
    );
    assert_eq!(root_name(b"<MakeCallResponse>"), Some("MakeCallResponse"));
    for nothing in [&b""[..], b"   ", b"<?xml", b"<!-- open", b"text", b"<unended"] {
        assert_eq!(root_name(nothing), None, "{:?}", String::from_utf8_lossy(nothing));
    }
}

#[test]
fn service_all_keeps_each_feature_list_together_in_the_lists_order() {
    // write_features relies on it to write each list once, in order.
    let mut lists: Vec<&str> = Service::ALL.iter().map(|s| s.feature_list()).collect();
    lists.dedup();
    let mut unique = lists.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(lists.len(), unique.len(), "a list split in two: {lists:?}");
    let ecma_323_order = [
        "capExchangeServList",
        "systemStatServList",
        "monitoringServList",
        "snapshotServList",
        "callControlServList",
        "callAssociatedServList",
        "logicalServList",
    ];
    assert_eq!(lists, ecma_323_order, "in the order ECMA-323 lists them");
}

#[test]
fn a_node_reply_without_a_namespace_is_read_in_the_one_assumed_and_lync_must_name_one() {
    let xml = b"<MonitorStartResponse><monitorCrossRefID>M1</monitorCrossRefID></MonitorStartResponse>";
    assert_eq!(parse(xml), Err(Error::MissingNamespace), "from Lync a namespace is required");
    let doc = parse_in(xml, Namespace::Ed4).unwrap();
    assert_eq!(doc.namespace, Namespace::Ed4);
    assert_eq!(doc.message, Message::Response(Response::MonitorStarted { monitor: t("M1") }));
    let foreign =
        b"<MonitorStartResponse xmlns=\"urn:other\"><monitorCrossRefID>M1</monitorCrossRefID></MonitorStartResponse>";
    assert_eq!(parse_in(foreign, Namespace::Ed4), Err(Error::UnknownNamespace), "a wrong namespace is still wrong");
}
