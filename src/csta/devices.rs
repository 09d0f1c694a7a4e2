//! The device identifiers of a message, each with what it stands for, for
//! whoever rewrites them between two naming schemes (the gateway's dial
//! plan: Lync's line URIs on one side, a PBX's dial-plan numbers on the
//! other). Everything else of the message (call ids, cross-reference ids,
//! states, causes) is left as it is.

use super::event::{Event, Redirection};
use super::request::Request;
use super::response::Response;
use super::text::Text;
use super::types::ConnectionId;

/// What a device identifier in a message stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRole {
    /// A device the requester controls: MonitorStart's `deviceObject`,
    /// MakeCall's `callingDevice`, the `deviceID` of a connection in a
    /// request, the device of a forwarding or do-not-disturb request.
    Controlled,
    /// A number to call: `calledDirectoryNumber`, `consultedDevice`,
    /// `transferredTo`, `newDestination`.
    Called,
    /// Where calls are to be forwarded: SetForwarding's `forwardDN`.
    ForwardTo,
    /// A device a node reports in an answer or an event: the monitored
    /// device, the far end, a forwarding destination.
    Reported,
}

/// Visits a connection's device, if it has one.
fn connection<'a, E>(
    c: &mut ConnectionId<'a>,
    role: DeviceRole,
    f: &mut impl FnMut(DeviceRole, &mut Text<'a>) -> Result<(), E>,
) -> Result<(), E> {
    match &mut c.device {
        Some(device) => f(role, device),
        None => Ok(()),
    }
}

/// Visits an optional device.
fn optional<'a, E>(
    t: &mut Option<Text<'a>>,
    role: DeviceRole,
    f: &mut impl FnMut(DeviceRole, &mut Text<'a>) -> Result<(), E>,
) -> Result<(), E> {
    match t {
        Some(t) => f(role, t),
        None => Ok(()),
    }
}

impl<'a> Request<'a> {
    /// Calls `f` with every device identifier of the request and its
    /// role, in document order; the first error stops the visit.
    pub fn visit_devices<E>(&mut self, mut f: impl FnMut(DeviceRole, &mut Text<'a>) -> Result<(), E>) -> Result<(), E> {
        use DeviceRole::*;
        let f = &mut f;
        match self {
            Request::RequestSystemStatus { .. } | Request::GetCstaFeatures { .. } | Request::MonitorStop { .. } => {
                Ok(())
            }
            Request::MonitorStart { device }
            | Request::SnapshotDevice { device }
            | Request::GetForwarding { device }
            | Request::SetDoNotDisturb { device, .. }
            | Request::GetDoNotDisturb { device } => f(Controlled, device),
            Request::SetForwarding { device, forward_dn, .. } => {
                f(Controlled, device)?;
                optional(forward_dn, ForwardTo, f)
            }
            Request::MakeCall { calling, called, .. } => {
                f(Controlled, calling)?;
                f(Called, called)
            }
            Request::AnswerCall { call } | Request::HoldCall { call } | Request::RetrieveCall { call } => {
                connection(call, Controlled, f)
            }
            Request::ClearConnection { connection: c } | Request::GenerateDigits { connection: c, .. } => {
                connection(c, Controlled, f)
            }
            Request::DeflectCall { call, new_destination } => {
                connection(call, Controlled, f)?;
                f(Called, new_destination)
            }
            Request::ConsultationCall { existing, consulted } => {
                connection(existing, Controlled, f)?;
                f(Called, consulted)
            }
            Request::SingleStepTransferCall { active, transferred_to } => {
                connection(active, Controlled, f)?;
                f(Called, transferred_to)
            }
            Request::TransferCall { held, active }
            | Request::ConferenceCall { held, active }
            | Request::AlternateCall { held, active } => {
                connection(held, Controlled, f)?;
                connection(active, Controlled, f)
            }
        }
    }
}

impl<'a> Response<'a> {
    /// Calls `f` with every device identifier of the response, each
    /// [`DeviceRole::Reported`]; the first error stops the visit.
    pub fn visit_devices<E>(&mut self, mut f: impl FnMut(DeviceRole, &mut Text<'a>) -> Result<(), E>) -> Result<(), E> {
        let f = &mut f;
        match self {
            Response::Call { call, .. } => connection(call, DeviceRole::Reported, f),
            Response::Snapshot { calls, .. } => {
                calls.iter_mut().try_for_each(|c| connection(&mut c.connection, DeviceRole::Reported, f))
            }
            Response::Forwarding { items } => {
                items.iter_mut().try_for_each(|i| optional(&mut i.forward_dn, DeviceRole::Reported, f))
            }
            Response::SystemStatus(_)
            | Response::Features(_)
            | Response::MonitorStarted { .. }
            | Response::DoNotDisturb { .. }
            | Response::Ack(_) => Ok(()),
        }
    }
}

impl<'a> Event<'a> {
    /// Calls `f` with every device identifier of the event, each
    /// [`DeviceRole::Reported`]; the first error stops the visit.
    pub fn visit_devices<E>(&mut self, mut f: impl FnMut(DeviceRole, &mut Text<'a>) -> Result<(), E>) -> Result<(), E> {
        use DeviceRole::Reported;
        let f = &mut f;
        match self {
            Event::Call(e) => {
                connection(&mut e.connection, Reported, f)?;
                if let Some(c) = &mut e.secondary_call {
                    connection(c, Reported, f)?;
                }
                optional(&mut e.subject, Reported, f)?;
                optional(&mut e.target, Reported, f)?;
                optional(&mut e.calling, Reported, f)?;
                optional(&mut e.called, Reported, f)?;
                if let Some(device) = e.redirection.as_mut().and_then(Redirection::device_mut) {
                    f(Reported, device)?;
                }
                e.connections.iter_mut().try_for_each(|c| connection(c, Reported, f))
            }
            Event::Forwarding(e) => {
                f(Reported, &mut e.device)?;
                optional(&mut e.forward_to, Reported, f)
            }
            Event::DoNotDisturb(e) => f(Reported, &mut e.device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csta::{Message, parse};

    fn devices(xml: &str) -> Vec<(DeviceRole, String)> {
        let mut seen = Vec::new();
        let mut record = |role, t: &mut Text<'_>| -> Result<(), ()> {
            seen.push((role, t.raw().to_string()));
            *t = Text::literal("X");
            Ok(())
        };
        let mut doc = parse(xml.as_bytes()).unwrap();
        match &mut doc.message {
            Message::Request(r) => r.visit_devices(&mut record).unwrap(),
            Message::Response(r) => r.visit_devices(&mut record).unwrap(),
            Message::Event(e) => e.visit_devices(&mut record).unwrap(),
            other => panic!("{other:?}"),
        }
        // Every device was replaced: none of the old ones is written back.
        let mut buf = [0u8; 4096];
        let mut out = crate::outbuf::OutBuf::new(&mut buf);
        doc.message.write(doc.namespace, &mut out).unwrap();
        let written = core::str::from_utf8(out.as_bytes()).unwrap().to_string();
        for (_, old) in &seen {
            assert!(!written.contains(old.as_str()), "{old} still in {written}");
        }
        seen
    }

    const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";

    #[test]
    fn each_device_of_a_request_with_its_role() {
        use DeviceRole::*;
        let make_call = format!(
            "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:+14255550101;ext=101</callingDevice>\
             <calledDirectoryNumber>tel:+14255559876</calledDirectoryNumber></MakeCall>"
        );
        assert_eq!(
            devices(&make_call),
            [(Controlled, "tel:+14255550101;ext=101".into()), (Called, "tel:+14255559876".into())]
        );
        let transfer = format!(
            "<SingleStepTransferCall xmlns=\"{NS}\"><activeCall><callID>C-1</callID><deviceID>tel:101</deviceID>\
             </activeCall><transferredTo>tel:+3222220220</transferredTo></SingleStepTransferCall>"
        );
        assert_eq!(devices(&transfer), [(Controlled, "tel:101".into()), (Called, "tel:+3222220220".into())]);
        let forward = format!(
            "<SetForwarding xmlns=\"{NS}\"><device>tel:101</device><forwardingType>forwardImmediate</forwardingType>\
             <activateForward>true</activateForward><forwardDN>tel:+14255559999</forwardDN></SetForwarding>"
        );
        assert_eq!(devices(&forward), [(Controlled, "tel:101".into()), (ForwardTo, "tel:+14255559999".into())]);
    }

    #[test]
    fn each_device_of_an_event_and_an_answer() {
        use DeviceRole::Reported;
        // The shape of an OpenScape-style DeliveredEvent (public frames):
        // devices as N<...> forms in their extended form.
        let delivered = format!(
            "<DeliveredEvent xmlns=\"{NS}\"><monitorCrossRefID>4711</monitorCrossRefID><connection><callID>C-1</callID>\
             <deviceID>N&lt;+14255550101&gt;;noa=nk</deviceID></connection><alertingDevice><deviceIdentifier>\
             N&lt;+14255550101&gt;;noa=nk</deviceIdentifier></alertingDevice><callingDevice><deviceIdentifier>\
             N&lt;+14255559876&gt;;noa=nk</deviceIdentifier></callingDevice><calledDevice><deviceIdentifier>101\
             </deviceIdentifier></calledDevice><lastRedirectionDevice><notKnown/></lastRedirectionDevice>\
             <localConnectionInfo>alerting</localConnectionInfo><cause>newCall</cause></DeliveredEvent>"
        );
        let seen = devices(&delivered);
        assert_eq!(
            seen,
            [
                (Reported, "N&lt;+14255550101&gt;;noa=nk".into()),
                (Reported, "N&lt;+14255550101&gt;;noa=nk".into()),
                (Reported, "N&lt;+14255559876&gt;;noa=nk".into()),
                (Reported, "101".into()),
            ]
        );
        let answer = format!(
            "<MakeCallResponse xmlns=\"{NS}\"><callingDevice><callID>C-7</callID><deviceID>101</deviceID>\
             </callingDevice></MakeCallResponse>"
        );
        assert_eq!(devices(&answer), [(Reported, "101".into())]);
    }
}
