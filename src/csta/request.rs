//! CSTA requests: what Lync sends in INFO (and INVITE) bodies and what the
//! gateway relays to a CTI node.

use super::Error;
use super::text::Text;
use super::types::{
    AutoOriginate, ConnectionId, ForwardingType, LCS_NAMESPACE, Namespace, Service, bool_str, parse_bool,
};
use super::xml::{Reader, Visit, XmlWriter};
use crate::outbuf::{OutBuf, Overflow};

/// A CSTA request with its arguments, borrowed from the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Opens a uaCSTA session (in the INVITE); `line` is Lync's `lcs:line`.
    RequestSystemStatus {
        /// The line the user wants to control, from Microsoft private data.
        line: Option<Text<'a>>,
    },
    /// Asks which services and events are supported.
    GetCstaFeatures {
        /// The user's line, from Microsoft private data.
        line: Option<Text<'a>>,
    },
    /// Starts monitoring a device.
    MonitorStart {
        /// `monitorObject/deviceObject`
        device: Text<'a>,
    },
    /// Stops a monitor.
    MonitorStop {
        /// `monitorCrossRefID`
        monitor: Text<'a>,
    },
    /// Asks for the calls at a device.
    SnapshotDevice {
        /// `snapshotObject`
        device: Text<'a>,
    },
    /// Places a call from a device.
    MakeCall {
        /// `callingDevice`: the controlled device.
        calling: Text<'a>,
        /// `calledDirectoryNumber`
        called: Text<'a>,
        /// `autoOriginate`
        auto_originate: Option<AutoOriginate>,
    },
    /// Answers an alerting call.
    AnswerCall {
        /// `callToBeAnswered`
        call: ConnectionId<'a>,
    },
    /// Drops a device from a call.
    ClearConnection {
        /// `connectionToBeCleared`
        connection: ConnectionId<'a>,
    },
    /// Puts a call on hold.
    HoldCall {
        /// `callToBeHeld`
        call: ConnectionId<'a>,
    },
    /// Takes a call off hold.
    RetrieveCall {
        /// `callToBeRetrieved`
        call: ConnectionId<'a>,
    },
    /// Holds a call and calls another party.
    ConsultationCall {
        /// `existingCall`
        existing: ConnectionId<'a>,
        /// `consultedDevice`
        consulted: Text<'a>,
    },
    /// Joins a held and an active call and drops out.
    TransferCall {
        /// `heldCall`
        held: ConnectionId<'a>,
        /// `activeCall`
        active: ConnectionId<'a>,
    },
    /// Transfers an active call to a number in one step.
    SingleStepTransferCall {
        /// `activeCall`
        active: ConnectionId<'a>,
        /// `transferredTo`
        transferred_to: Text<'a>,
    },
    /// Joins a held and an active call into a conference.
    ConferenceCall {
        /// `heldCall`
        held: ConnectionId<'a>,
        /// `activeCall`
        active: ConnectionId<'a>,
    },
    /// Holds the active call and retrieves the held one.
    AlternateCall {
        /// `heldCall`
        held: ConnectionId<'a>,
        /// `activeCall`
        active: ConnectionId<'a>,
    },
    /// Sends an alerting call elsewhere.
    DeflectCall {
        /// `callToBeDiverted`
        call: ConnectionId<'a>,
        /// `newDestination`
        new_destination: Text<'a>,
    },
    /// Sends DTMF digits on a connection.
    GenerateDigits {
        /// `connectionToSendDigits`
        connection: ConnectionId<'a>,
        /// `charactersToSend`
        characters: Text<'a>,
    },
    /// Turns a forwarding on or off.
    SetForwarding {
        /// `device`
        device: Text<'a>,
        /// `forwardingType`
        forwarding_type: Option<ForwardingType>,
        /// `activateForward`
        activate: bool,
        /// `forwardDN`
        forward_dn: Option<Text<'a>>,
    },
    /// Asks for a device's forwardings.
    GetForwarding {
        /// `device`
        device: Text<'a>,
    },
    /// Turns do-not-disturb on or off.
    SetDoNotDisturb {
        /// `device`
        device: Text<'a>,
        /// `doNotDisturbOn`
        on: bool,
    },
    /// Asks whether do-not-disturb is on.
    GetDoNotDisturb {
        /// `device`
        device: Text<'a>,
    },
}

const LINE: &[&str] = &["extensions", "privateData", "private", "line"];

/// The leaf paths a request reads, in slot order. A ConnectionID takes two
/// slots: its `callID`, then its `deviceID`.
fn paths(service: Service) -> &'static [&'static [&'static str]] {
    use Service::*;
    match service {
        RequestSystemStatus | GetCstaFeatures => &[LINE],
        MonitorStart => &[&["monitorObject", "deviceObject"]],
        MonitorStop => &[&["monitorCrossRefID"]],
        SnapshotDevice => &[&["snapshotObject"]],
        MakeCall => &[&["callingDevice"], &["calledDirectoryNumber"], &["autoOriginate"]],
        AnswerCall => &[&["callToBeAnswered", "callID"], &["callToBeAnswered", "deviceID"]],
        ClearConnection => &[&["connectionToBeCleared", "callID"], &["connectionToBeCleared", "deviceID"]],
        HoldCall => &[&["callToBeHeld", "callID"], &["callToBeHeld", "deviceID"]],
        RetrieveCall => &[&["callToBeRetrieved", "callID"], &["callToBeRetrieved", "deviceID"]],
        ConsultationCall => &[&["existingCall", "callID"], &["existingCall", "deviceID"], &["consultedDevice"]],
        TransferCall | ConferenceCall | AlternateCall => &[
            &["heldCall", "callID"],
            &["heldCall", "deviceID"],
            &["activeCall", "callID"],
            &["activeCall", "deviceID"],
        ],
        SingleStepTransferCall => &[&["activeCall", "callID"], &["activeCall", "deviceID"], &["transferredTo"]],
        DeflectCall => &[&["callToBeDiverted", "callID"], &["callToBeDiverted", "deviceID"], &["newDestination"]],
        GenerateDigits => {
            &[&["connectionToSendDigits", "callID"], &["connectionToSendDigits", "deviceID"], &["charactersToSend"]]
        }
        SetForwarding => &[&["device"], &["forwardingType"], &["activateForward"], &["forwardDN"]],
        GetForwarding | GetDoNotDisturb => &[&["device"]],
        SetDoNotDisturb => &[&["device"], &["doNotDisturbOn"]],
    }
}

/// Most leaf paths one message reads through [`Slots`].
const MAX_SLOTS: usize = 5;

/// The text found at each of a message's paths (first occurrence wins).
pub(crate) struct Slots<'a>([Option<Text<'a>>; MAX_SLOTS]);

impl<'a> Slots<'a> {
    /// Walks the document and fills one slot per path. A device may come
    /// plain (`<device>x</device>`) or in the extended form events use
    /// (`<device><deviceIdentifier>x</deviceIdentifier></device>`); both
    /// fill the slot of the plain path.
    pub(crate) fn collect(reader: Reader<'a>, paths: &[&[&str]]) -> Result<Slots<'a>, Error> {
        debug_assert!(paths.len() <= MAX_SLOTS);
        let mut slots = Slots([None; MAX_SLOTS]);
        reader.walk(|visit| {
            if let Visit::Text(path, text) = visit {
                let path = match path {
                    [plain @ .., "deviceIdentifier"] => plain,
                    _ => path,
                };
                if let Some(i) = paths.iter().position(|p| *p == path) {
                    slots.0[i].get_or_insert(text);
                }
            }
        })?;
        Ok(slots)
    }

    /// The text at slot `i`, if any.
    pub(crate) fn get(&self, i: usize) -> Option<Text<'a>> {
        self.0[i]
    }

    /// The text at slot `i`, or the error naming the missing element.
    pub(crate) fn required(&self, i: usize, element: &'static str) -> Result<Text<'a>, Error> {
        self.0[i].ok_or(Error::MissingElement(element))
    }

    /// The connection in slots `i` (callID) and `i + 1` (deviceID); at
    /// least one part must be there.
    pub(crate) fn connection(&self, i: usize, element: &'static str) -> Result<ConnectionId<'a>, Error> {
        let c = ConnectionId { call: self.0[i], device: self.0[i + 1] };
        if c.is_empty() { Err(Error::MissingElement(element)) } else { Ok(c) }
    }

    /// The boolean at slot `i`.
    pub(crate) fn boolean(&self, i: usize, element: &'static str) -> Result<bool, Error> {
        parse_bool(self.required(i, element)?).ok_or(Error::BadValue(element))
    }

    /// An optional enumerated value at slot `i`.
    pub(crate) fn enumerated<T>(
        &self,
        i: usize,
        element: &'static str,
        parse: fn(Text<'a>) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        self.0[i].map(|t| parse(t).ok_or(Error::BadValue(element))).transpose()
    }
}

impl<'a> Request<'a> {
    pub(crate) fn parse(service: Service, reader: Reader<'a>) -> Result<Request<'a>, Error> {
        use Service as S;
        let s = Slots::collect(reader, paths(service))?;
        Ok(match service {
            S::RequestSystemStatus => Request::RequestSystemStatus { line: s.get(0) },
            S::GetCstaFeatures => Request::GetCstaFeatures { line: s.get(0) },
            S::MonitorStart => Request::MonitorStart { device: s.required(0, "deviceObject")? },
            S::MonitorStop => Request::MonitorStop { monitor: s.required(0, "monitorCrossRefID")? },
            S::SnapshotDevice => Request::SnapshotDevice { device: s.required(0, "snapshotObject")? },
            S::MakeCall => Request::MakeCall {
                calling: s.required(0, "callingDevice")?,
                called: s.required(1, "calledDirectoryNumber")?,
                auto_originate: s.enumerated(2, "autoOriginate", AutoOriginate::parse)?,
            },
            S::AnswerCall => Request::AnswerCall { call: s.connection(0, "callToBeAnswered")? },
            S::ClearConnection => Request::ClearConnection { connection: s.connection(0, "connectionToBeCleared")? },
            S::HoldCall => Request::HoldCall { call: s.connection(0, "callToBeHeld")? },
            S::RetrieveCall => Request::RetrieveCall { call: s.connection(0, "callToBeRetrieved")? },
            S::ConsultationCall => Request::ConsultationCall {
                existing: s.connection(0, "existingCall")?,
                consulted: s.required(2, "consultedDevice")?,
            },
            S::TransferCall => {
                Request::TransferCall { held: s.connection(0, "heldCall")?, active: s.connection(2, "activeCall")? }
            }
            S::ConferenceCall => {
                Request::ConferenceCall { held: s.connection(0, "heldCall")?, active: s.connection(2, "activeCall")? }
            }
            S::AlternateCall => {
                Request::AlternateCall { held: s.connection(0, "heldCall")?, active: s.connection(2, "activeCall")? }
            }
            S::SingleStepTransferCall => Request::SingleStepTransferCall {
                active: s.connection(0, "activeCall")?,
                transferred_to: s.required(2, "transferredTo")?,
            },
            S::DeflectCall => Request::DeflectCall {
                call: s.connection(0, "callToBeDiverted")?,
                new_destination: s.required(2, "newDestination")?,
            },
            S::GenerateDigits => Request::GenerateDigits {
                connection: s.connection(0, "connectionToSendDigits")?,
                characters: s.required(2, "charactersToSend")?,
            },
            S::SetForwarding => Request::SetForwarding {
                device: s.required(0, "device")?,
                forwarding_type: s.enumerated(1, "forwardingType", ForwardingType::parse)?,
                activate: s.boolean(2, "activateForward")?,
                forward_dn: s.get(3),
            },
            S::GetForwarding => Request::GetForwarding { device: s.required(0, "device")? },
            S::SetDoNotDisturb => {
                Request::SetDoNotDisturb { device: s.required(0, "device")?, on: s.boolean(1, "doNotDisturbOn")? }
            }
            S::GetDoNotDisturb => Request::GetDoNotDisturb { device: s.required(0, "device")? },
        })
    }

    /// Which service this is.
    pub fn service(&self) -> Service {
        match self {
            Request::RequestSystemStatus { .. } => Service::RequestSystemStatus,
            Request::GetCstaFeatures { .. } => Service::GetCstaFeatures,
            Request::MonitorStart { .. } => Service::MonitorStart,
            Request::MonitorStop { .. } => Service::MonitorStop,
            Request::SnapshotDevice { .. } => Service::SnapshotDevice,
            Request::MakeCall { .. } => Service::MakeCall,
            Request::AnswerCall { .. } => Service::AnswerCall,
            Request::ClearConnection { .. } => Service::ClearConnection,
            Request::HoldCall { .. } => Service::HoldCall,
            Request::RetrieveCall { .. } => Service::RetrieveCall,
            Request::ConsultationCall { .. } => Service::ConsultationCall,
            Request::TransferCall { .. } => Service::TransferCall,
            Request::SingleStepTransferCall { .. } => Service::SingleStepTransferCall,
            Request::ConferenceCall { .. } => Service::ConferenceCall,
            Request::AlternateCall { .. } => Service::AlternateCall,
            Request::DeflectCall { .. } => Service::DeflectCall,
            Request::GenerateDigits { .. } => Service::GenerateDigits,
            Request::SetForwarding { .. } => Service::SetForwarding,
            Request::GetForwarding { .. } => Service::GetForwarding,
            Request::SetDoNotDisturb { .. } => Service::SetDoNotDisturb,
            Request::GetDoNotDisturb { .. } => Service::GetDoNotDisturb,
        }
    }

    /// The devices the request acts on, which the user must be allowed to
    /// control: the calling device of MakeCall, the device of every
    /// connection argument, the device of monitoring, snapshot and
    /// logical-device services. Destinations (called, consulted,
    /// transferred-to, deflected-to numbers) are not controlled devices.
    /// A connection given without its deviceID yields `None`, which the
    /// caller must treat as "cannot be authorised".
    pub fn controlled_devices(&self) -> [Option<Option<Text<'a>>>; 2] {
        let one = |d: Text<'a>| [Some(Some(d)), None];
        let conn = |c: &ConnectionId<'a>| Some(c.device);
        match self {
            Request::RequestSystemStatus { .. } | Request::GetCstaFeatures { .. } | Request::MonitorStop { .. } => {
                [None, None]
            }
            Request::MonitorStart { device }
            | Request::SnapshotDevice { device }
            | Request::SetForwarding { device, .. }
            | Request::GetForwarding { device }
            | Request::SetDoNotDisturb { device, .. }
            | Request::GetDoNotDisturb { device } => one(*device),
            Request::MakeCall { calling, .. } => one(*calling),
            Request::AnswerCall { call }
            | Request::HoldCall { call }
            | Request::RetrieveCall { call }
            | Request::DeflectCall { call, .. } => [conn(call), None],
            Request::ClearConnection { connection } | Request::GenerateDigits { connection, .. } => {
                [conn(connection), None]
            }
            Request::ConsultationCall { existing, .. } => [conn(existing), None],
            Request::SingleStepTransferCall { active, .. } => [conn(active), None],
            Request::TransferCall { held, active }
            | Request::ConferenceCall { held, active }
            | Request::AlternateCall { held, active } => [conn(held), conn(active)],
        }
    }

    /// Writes the request as a CSTA document in `namespace`.
    pub fn write(&self, namespace: Namespace, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        let name = self.service().request_name();
        let mut x = XmlWriter::root(out, name, namespace)?;
        match *self {
            Request::RequestSystemStatus { line } | Request::GetCstaFeatures { line } => {
                if let Some(line) = line {
                    x.raw("<extensions><privateData><private><lcs:line xmlns:lcs=\"")?;
                    x.raw(LCS_NAMESPACE)?.raw("\">")?;
                    x.text(line)?;
                    x.raw("</lcs:line></private></privateData></extensions>")?;
                }
            }
            Request::MonitorStart { device } => {
                x.open("monitorObject")?.leaf("deviceObject", device)?.close("monitorObject")?;
            }
            Request::MonitorStop { monitor } => {
                x.leaf("monitorCrossRefID", monitor)?;
            }
            Request::SnapshotDevice { device } => {
                x.leaf("snapshotObject", device)?;
            }
            Request::MakeCall { calling, called, auto_originate } => {
                x.leaf("callingDevice", calling)?.leaf("calledDirectoryNumber", called)?;
                if let Some(a) = auto_originate {
                    x.leaf_str("autoOriginate", a.as_str())?;
                }
            }
            Request::AnswerCall { call } => write_connection(&mut x, "callToBeAnswered", &call)?,
            Request::ClearConnection { connection } => write_connection(&mut x, "connectionToBeCleared", &connection)?,
            Request::HoldCall { call } => write_connection(&mut x, "callToBeHeld", &call)?,
            Request::RetrieveCall { call } => write_connection(&mut x, "callToBeRetrieved", &call)?,
            Request::ConsultationCall { existing, consulted } => {
                write_connection(&mut x, "existingCall", &existing)?;
                x.leaf("consultedDevice", consulted)?;
            }
            Request::TransferCall { held, active }
            | Request::ConferenceCall { held, active }
            | Request::AlternateCall { held, active } => {
                write_connection(&mut x, "heldCall", &held)?;
                write_connection(&mut x, "activeCall", &active)?;
            }
            Request::SingleStepTransferCall { active, transferred_to } => {
                write_connection(&mut x, "activeCall", &active)?;
                x.leaf("transferredTo", transferred_to)?;
            }
            Request::DeflectCall { call, new_destination } => {
                write_connection(&mut x, "callToBeDiverted", &call)?;
                x.leaf("newDestination", new_destination)?;
            }
            Request::GenerateDigits { connection, characters } => {
                write_connection(&mut x, "connectionToSendDigits", &connection)?;
                x.leaf("charactersToSend", characters)?;
            }
            Request::SetForwarding { device, forwarding_type, activate, forward_dn } => {
                x.leaf("device", device)?;
                if let Some(t) = forwarding_type {
                    x.leaf_str("forwardingType", t.as_str())?;
                }
                x.leaf_str("activateForward", bool_str(activate))?;
                if let Some(dn) = forward_dn {
                    x.leaf("forwardDN", dn)?;
                }
            }
            Request::GetForwarding { device } | Request::GetDoNotDisturb { device } => {
                x.leaf("device", device)?;
            }
            Request::SetDoNotDisturb { device, on } => {
                x.leaf("device", device)?.leaf_str("doNotDisturbOn", bool_str(on))?;
            }
        }
        x.close(name)?;
        Ok(())
    }
}

/// `<name><callID>..</callID><deviceID>..</deviceID></name>`
pub(crate) fn write_connection(x: &mut XmlWriter<'_, '_>, name: &str, c: &ConnectionId<'_>) -> Result<(), Overflow> {
    x.open(name)?;
    if let Some(call) = c.call {
        x.leaf("callID", call)?;
    }
    if let Some(device) = c.device {
        x.leaf("deviceID", device)?;
    }
    x.close(name)?;
    Ok(())
}
