//! The project's shared SIP and CSTA samples (`../shared/testdata`),
//! parsed in place, checked field by field, and written back.

mod common;

use common::{testdata, testdata_files};
use ctigw::csta::{
    self, CallEventKind, ConnectionId, ErrorCategory, Event, LocalConnectionState, Message as Csta, Namespace, Request,
    Response, Service, SystemStatus,
};
use ctigw::outbuf::OutBuf;
use ctigw::sip::{Frame, Message, Method, StreamBuffer};

fn csta_sample(name: &str) -> Vec<u8> {
    testdata(&format!("csta/{name}.xml"))
}

#[test]
fn every_csta_sample_parses_and_round_trips() {
    let names = testdata_files("csta", ".xml");
    assert_eq!(names.len(), 15, "{names:?}");
    for name in names {
        let bytes = testdata(&format!("csta/{name}"));
        let doc = csta::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut buf = [0u8; 4096];
        let mut out = OutBuf::new(&mut buf);
        doc.message.write(doc.namespace, &mut out).unwrap();
        let again = csta::parse(out.as_bytes()).unwrap_or_else(|e| panic!("{name} rewritten: {e}"));
        assert_eq!(again, doc, "{name}");
    }
}

#[test]
fn requests() {
    let bytes = csta_sample("RequestSystemStatus");
    let doc = csta::parse(&bytes).unwrap();
    assert_eq!(doc.namespace, Namespace::Ed3);
    let Csta::Request(Request::RequestSystemStatus { line: Some(line) }) = doc.message else { panic!("{doc:?}") };
    assert_eq!(line, "tel:+14255550101;ext=101");

    let bytes = csta_sample("GetCSTAFeatures");
    assert_eq!(csta::parse(&bytes).unwrap().message, Csta::Request(Request::GetCstaFeatures { line: None }));

    let bytes = csta_sample("MonitorStart");
    let Csta::Request(Request::MonitorStart { device }) = csta::parse(&bytes).unwrap().message else { panic!() };
    assert_eq!(device, "tel:+14255550101;ext=101");

    let bytes = csta_sample("MakeCall");
    let Csta::Request(Request::MakeCall { calling, called, auto_originate }) = csta::parse(&bytes).unwrap().message
    else {
        panic!()
    };
    assert_eq!((calling, called), ("tel:+14255550101;ext=101".into(), "tel:+14255559876".into()));
    assert_eq!(auto_originate, Some(csta::AutoOriginate::DoNotPrompt));

    let bytes = csta_sample("TransferCall");
    let Csta::Request(Request::TransferCall { held, active }) = csta::parse(&bytes).unwrap().message else { panic!() };
    assert_eq!(held.call.unwrap(), "C-0001");
    assert_eq!(active.call.unwrap(), "C-0002");
    assert_eq!(active.device.unwrap(), "tel:+14255550101;ext=101");
}

#[test]
fn escaped_make_call_in_ed4_with_private_data_skipped() {
    let bytes = csta_sample("MakeCall_escaped");
    let doc = csta::parse(&bytes).unwrap();
    assert_eq!(doc.namespace, Namespace::Ed4);
    let Csta::Request(Request::MakeCall { calling, called, .. }) = doc.message else { panic!() };
    assert_eq!(calling, "sip:+14255550101@example.com;user=phone");
    assert_eq!(called, "tel:+1 (425) 555-9876");
}

#[test]
fn responses() {
    let bytes = csta_sample("RequestSystemStatusResponse");
    assert_eq!(csta::parse(&bytes).unwrap().message, Csta::Response(Response::SystemStatus(SystemStatus::Normal)));

    let bytes = csta_sample("MonitorStartResponse");
    let Csta::Response(Response::MonitorStarted { monitor }) = csta::parse(&bytes).unwrap().message else { panic!() };
    assert_eq!(monitor, "4711");

    let bytes = csta_sample("MakeCallResponse");
    let Csta::Response(Response::Call { service: Service::MakeCall, call }) = csta::parse(&bytes).unwrap().message
    else {
        panic!()
    };
    assert_eq!(call, ConnectionId::new("C-0001".into(), "tel:+14255550101;ext=101".into()));

    // The sample names its service lists `callControlServices` and so on;
    // ECMA-323 names them `callControlServList`. Services are read by
    // their own names, so both spellings give the same set.
    let bytes = csta_sample("GetCSTAFeaturesResponse");
    let Csta::Response(Response::Features(services)) = csta::parse(&bytes).unwrap().message else { panic!() };
    let listed: Vec<Service> = services.iter().collect();
    assert_eq!(listed.len(), 20, "{listed:?}");
    assert!(!services.contains(Service::GetCstaFeatures));
    assert!(services.contains(Service::SingleStepTransferCall) && services.contains(Service::SetDoNotDisturb));
}

#[test]
fn error_code_sample() {
    // The sample files privilegeViolationSpecifiedDevice under `security`;
    // ECMA-285 lists it under `operation`, where the gateway writes it.
    // Any category/value pair is read as given.
    let bytes = csta_sample("CSTAErrorCode");
    let Csta::Error(code) = csta::parse(&bytes).unwrap().message else { panic!() };
    assert_eq!(code.category, ErrorCategory::Security);
    assert_eq!(code.value, "privilegeViolationSpecifiedDevice");
}

#[test]
fn events() {
    let event = |name: &str| {
        let bytes = csta_sample(name);
        let doc = csta::parse(&bytes).unwrap();
        let Csta::Event(Event::Call(e)) = doc.message else { panic!("{name}: {:?}", doc.message) };
        (
            doc.namespace,
            e.kind,
            e.monitor.to_string(),
            e.connection.call.map(|c| c.to_string()),
            e.subject.map(|s| s.to_string()),
            e.calling.map(|s| s.to_string()),
            e.local_state,
            e.cause.map(|c| c.to_string()),
        )
    };
    assert_eq!(
        event("DeliveredEvent"),
        (
            Namespace::Ed3,
            CallEventKind::Delivered,
            "4711".into(),
            Some("C-0001".into()),
            Some("tel:+14255559876".into()),
            Some("tel:+14255550101;ext=101".into()),
            Some(LocalConnectionState::Connected),
            Some("normal".into())
        )
    );
    assert_eq!(
        event("EstablishedEvent"),
        (
            Namespace::Ed3,
            CallEventKind::Established,
            "4711".into(),
            Some("C-0001".into()),
            Some("tel:+14255559876".into()),
            Some("tel:+14255550101;ext=101".into()),
            Some(LocalConnectionState::Connected),
            Some("normal".into())
        )
    );
    assert_eq!(
        event("HeldEvent"),
        (
            Namespace::Ed4,
            CallEventKind::Held,
            "4711".into(),
            Some("C-0001".into()),
            Some("tel:+14255550101;ext=101".into()),
            None,
            Some(LocalConnectionState::Hold),
            Some("normal".into())
        )
    );
    assert_eq!(
        event("ConnectionClearedEvent"),
        (
            Namespace::Ed3,
            CallEventKind::ConnectionCleared,
            "4711".into(),
            Some("C-0001".into()),
            Some("tel:+14255550101;ext=101".into()),
            None,
            Some(LocalConnectionState::Null),
            Some("normalClearing".into())
        )
    );
}

#[test]
fn sip_samples_with_their_csta_bodies() {
    let bytes = testdata("sip/invite_request_system_status.sip");
    let m = Message::parse(&bytes).unwrap();
    m.check_request().unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.from().unwrap().uri, "sip:alice@example.com");
    assert_eq!(m.from().unwrap().params.value("epid"), Some("01010101"));
    assert_eq!(m.to().unwrap().tag(), None);
    assert!(m.supports("timer"));
    assert_eq!(m.user_agent().unwrap(), Some("RTCC/4.0.0.0"));
    assert_eq!(m.content_disposition().unwrap().unwrap().handling(), Some("required"));
    let Csta::Request(Request::RequestSystemStatus { line }) = csta::parse(m.body()).unwrap().message else { panic!() };
    assert_eq!(line.unwrap(), "tel:+14255550101;ext=101");

    let bytes = testdata("sip/info_make_call.sip");
    let m = Message::parse(&bytes).unwrap();
    m.check_request().unwrap();
    assert_eq!((m.cseq().unwrap().number, m.to().unwrap().tag()), (4, Some("gw77")));
    assert!(matches!(csta::parse(m.body()).unwrap().message, Csta::Request(Request::MakeCall { .. })));

    let bytes = testdata("sip/info_compact_folded.sip");
    let m = Message::parse(&bytes).unwrap();
    m.check_request().unwrap();
    assert_eq!(m.call_id().unwrap(), "compact-1@192.0.2.10");
    assert_eq!(m.from().unwrap().tag(), Some("1a2b3c"));
    assert_eq!((m.cseq().unwrap().number, m.cseq().unwrap().method), (5, "INFO"));
    assert_eq!(m.via().unwrap().rport(), Some(None));
    assert!(m.content_type().unwrap().unwrap().is("application", "csta+xml"));
    assert_eq!(csta::parse(m.body()).unwrap().message, Csta::Request(Request::GetCstaFeatures { line: None }));

    let bytes = testdata("sip/response_200_make_call.sip");
    let m = Message::parse(&bytes).unwrap();
    m.check_response().unwrap();
    assert_eq!((m.status_code(), m.reason()), (Some(200), Some("OK")));
    assert!(matches!(
        csta::parse(m.body()).unwrap().message,
        Csta::Response(Response::Call { service: Service::MakeCall, .. })
    ));
}

#[test]
fn pipelined_infos_frame_in_any_split() {
    let bytes = testdata("sip/pipelined_two_infos.sip");
    let expected = ["message:4", "ping", "message:5"];
    for chunk in [bytes.len(), 1, 2, 3, 7, 64, 283] {
        let mut buf = StreamBuffer::<4096>::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(chunk) {
            buf.push(piece);
            while let Some(frame) = buf.next(4096).unwrap() {
                got.push(match frame {
                    Frame::Message(m) => format!("message:{}", m.cseq().unwrap().number),
                    Frame::Ping => "ping".into(),
                    other => panic!("{other:?}"),
                });
            }
        }
        assert_eq!(got, expected, "chunk {chunk}");
    }
}
