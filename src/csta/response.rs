//! Positive CSTA responses: what a CTI node answers, and what the gateway
//! answers itself (RequestSystemStatus, GetCSTAFeatures).

use heapless::Vec;

use super::Error;
use super::event::Dropped;
use super::request::{Slots, write_connection};
use super::text::Text;
use super::types::{
    ConnectionId, ForwardingType, LocalConnectionState, Namespace, Service, Services, SystemStatus, bool_str,
    parse_bool,
};
use super::xml::{Reader, Visit, XmlWriter};
use crate::outbuf::{OutBuf, Overflow};

/// Most calls a SnapshotDeviceResponse carries; a node's answer listing
/// more keeps the first ones and reports the rest as dropped.
pub const MAX_SNAPSHOT_CALLS: usize = 16;
/// Most connection states a snapshot call carries (its `compoundCallState`:
/// one per connection of the call, as the device sees them).
pub const MAX_CALL_STATES: usize = 8;
/// Most entries a GetForwardingResponse may list.
pub const MAX_FORWARD_ITEMS: usize = 12;

/// One call at a device, as SnapshotDeviceResponse lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotCall<'a> {
    /// `connectionIdentifier`
    pub connection: ConnectionId<'a>,
    /// The `localConnectionState`s of `localCallState`'s
    /// `compoundCallState`, in order.
    pub states: Vec<LocalConnectionState, MAX_CALL_STATES>,
}

/// One forwarding of a device, as GetForwardingResponse lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForwardItem<'a> {
    /// `forwardingType`
    pub forwarding_type: Option<ForwardingType>,
    /// `forwardStatus`: whether this forwarding is on.
    pub active: bool,
    /// `forwardDN`
    pub forward_dn: Option<Text<'a>>,
}

/// A positive response, borrowed from the document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // boxing would allocate per answer; it lives on the stack
pub enum Response<'a> {
    /// RequestSystemStatusResponse.
    SystemStatus(SystemStatus),
    /// GetCSTAFeaturesResponse: the services supported.
    Features(Services),
    /// MonitorStartResponse.
    MonitorStarted {
        /// `monitorCrossRefID`: what the node's events will carry.
        monitor: Text<'a>,
    },
    /// SnapshotDeviceResponse.
    Snapshot {
        /// The calls at the device.
        calls: Vec<SnapshotCall<'a>, MAX_SNAPSHOT_CALLS>,
        /// What the node's answer listed beyond the capacities.
        dropped: Option<Dropped<'a>>,
    },
    /// A response carrying the connection a service created or changed:
    /// MakeCall (`callingDevice`), ConsultationCall (`initiatedCall`),
    /// TransferCall and SingleStepTransferCall (`transferredCall`),
    /// ConferenceCall (`conferenceCall`).
    Call {
        /// Which of the five services.
        service: Service,
        /// The connection.
        call: ConnectionId<'a>,
    },
    /// GetForwardingResponse.
    Forwarding {
        /// The forwardings of the device.
        items: Vec<ForwardItem<'a>, MAX_FORWARD_ITEMS>,
    },
    /// GetDoNotDisturbResponse.
    DoNotDisturb {
        /// `doNotDisturbOn`
        on: bool,
    },
    /// A response with no content (`<HoldCallResponse/>` and the like).
    Ack(Service),
}

/// The element that carries the connection of a [`Response::Call`].
fn call_element(service: Service) -> Option<&'static str> {
    match service {
        Service::MakeCall => Some("callingDevice"),
        Service::ConsultationCall => Some("initiatedCall"),
        Service::TransferCall | Service::SingleStepTransferCall => Some("transferredCall"),
        Service::ConferenceCall => Some("conferenceCall"),
        _ => None,
    }
}

/// The events the gateway relays, announced in GetCSTAFeaturesResponse.
const CALL_CONTROL_EVENTS: [&str; 11] = [
    "conferenced",
    "connectionCleared",
    "delivered",
    "diverted",
    "established",
    "failed",
    "held",
    "originated",
    "retrieved",
    "serviceInitiated",
    "transferred",
];
const LOGICAL_EVENTS: [&str; 2] = ["doNotDisturb", "forwarding"];

impl<'a> Response<'a> {
    pub(crate) fn parse(service: Service, reader: Reader<'a>) -> Result<Response<'a>, Error> {
        match service {
            Service::RequestSystemStatus => {
                let s = Slots::collect(reader, &[&["systemStatus"]])?;
                let status = s.required(0, "systemStatus")?;
                Ok(Response::SystemStatus(SystemStatus::parse(status).ok_or(Error::BadValue("systemStatus"))?))
            }
            Service::GetCstaFeatures => {
                // Any service list name is accepted (the spelling varies
                // between sources); services are known by their own names.
                let mut services = Services::NONE;
                reader.walk(|visit| {
                    if let Visit::Open(["supportedServices", _, item]) = visit {
                        if let Some(s) = Service::from_feature_name(item) {
                            services = services.with(s);
                        }
                    }
                })?;
                Ok(Response::Features(services))
            }
            Service::MonitorStart => {
                let s = Slots::collect(reader, &[&["monitorCrossRefID"]])?;
                Ok(Response::MonitorStarted { monitor: s.required(0, "monitorCrossRefID")? })
            }
            Service::SnapshotDevice => parse_snapshot(reader),
            Service::GetForwarding => parse_forwarding(reader),
            Service::GetDoNotDisturb => {
                let s = Slots::collect(reader, &[&["doNotDisturbOn"]])?;
                Ok(Response::DoNotDisturb { on: s.boolean(0, "doNotDisturbOn")? })
            }
            _ => match call_element(service) {
                Some(element) => {
                    let s = Slots::collect(reader, &[&[element, "callID"], &[element, "deviceID"]])?;
                    Ok(Response::Call { service, call: s.connection(0, element)? })
                }
                None => {
                    reader.walk(|_| {})?;
                    Ok(Response::Ack(service))
                }
            },
        }
    }

    /// The service this responds to.
    pub fn service(&self) -> Service {
        match self {
            Response::SystemStatus(_) => Service::RequestSystemStatus,
            Response::Features(_) => Service::GetCstaFeatures,
            Response::MonitorStarted { .. } => Service::MonitorStart,
            Response::Snapshot { .. } => Service::SnapshotDevice,
            Response::Call { service, .. } | Response::Ack(service) => *service,
            Response::Forwarding { .. } => Service::GetForwarding,
            Response::DoNotDisturb { .. } => Service::GetDoNotDisturb,
        }
    }

    /// Writes the response as a CSTA document in `namespace`.
    pub fn write(&self, namespace: Namespace, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        let name = self.service().response_name();
        if let Response::Ack(_) = self {
            return XmlWriter::empty_root(out, name, namespace);
        }
        let mut x = XmlWriter::root(out, name, namespace)?;
        match self {
            Response::SystemStatus(status) => {
                x.leaf_str("systemStatus", status.as_str())?;
            }
            Response::Features(services) => write_features(&mut x, *services)?,
            Response::MonitorStarted { monitor } => {
                x.leaf("monitorCrossRefID", *monitor)?;
            }
            Response::Snapshot { calls, .. } => {
                x.open("crossRefIDorSnapshotData")?.open("snapshotData")?;
                for call in calls {
                    x.open("snapshotDeviceResponseInfo")?;
                    write_connection(&mut x, "connectionIdentifier", &call.connection)?;
                    if !call.states.is_empty() {
                        x.open("localCallState")?.open("compoundCallState")?;
                        for state in &call.states {
                            x.leaf_str("localConnectionState", state.as_str())?;
                        }
                        x.close("compoundCallState")?.close("localCallState")?;
                    }
                    x.close("snapshotDeviceResponseInfo")?;
                }
                x.close("snapshotData")?.close("crossRefIDorSnapshotData")?;
            }
            Response::Call { service, call } => {
                let element = call_element(*service).unwrap_or("callingDevice");
                write_connection(&mut x, element, call)?;
            }
            Response::Forwarding { items } => {
                x.open("forwardingList")?;
                for item in items {
                    x.open("forwardListItem")?;
                    if let Some(t) = item.forwarding_type {
                        x.leaf_str("forwardingType", t.as_str())?;
                    }
                    x.leaf_str("forwardStatus", bool_str(item.active))?;
                    if let Some(dn) = item.forward_dn {
                        x.leaf("forwardDN", dn)?;
                    }
                    x.close("forwardListItem")?;
                }
                x.close("forwardingList")?;
            }
            Response::DoNotDisturb { on } => {
                x.leaf_str("doNotDisturbOn", bool_str(*on))?;
            }
            Response::Ack(_) => unreachable!("written above"),
        }
        x.close(name)?;
        Ok(())
    }
}

fn write_features(x: &mut XmlWriter<'_, '_>, services: Services) -> Result<(), Overflow> {
    x.open("supportedServices")?;
    // Service::ALL keeps each list's services together, in list order.
    let mut open: Option<&str> = None;
    for service in services.iter() {
        let list = service.feature_list();
        if open != Some(list) {
            if let Some(previous) = open {
                x.close(previous)?;
            }
            x.open(list)?;
            open = Some(list);
        }
        x.empty(service.feature_name())?;
    }
    if let Some(last) = open {
        x.close(last)?;
    }
    x.close("supportedServices")?;
    x.open("supportedEvents")?.open("callControlEvtsList")?;
    for event in CALL_CONTROL_EVENTS {
        x.empty(event)?;
    }
    x.close("callControlEvtsList")?.open("logicalEvtsList")?;
    for event in LOGICAL_EVENTS {
        x.empty(event)?;
    }
    x.close("logicalEvtsList")?.close("supportedEvents")?;
    Ok(())
}

fn parse_snapshot(reader: Reader<'_>) -> Result<Response<'_>, Error> {
    const INFO: &str = "snapshotDeviceResponseInfo";
    let mut calls: Vec<SnapshotCall<'_>, MAX_SNAPSHOT_CALLS> = Vec::new();
    let mut dropped = None;
    let mut extra_call = false;
    let mut fault = None;
    reader.walk(|visit| match visit {
        Visit::Open(["crossRefIDorSnapshotData", "snapshotData", INFO]) => {
            extra_call = calls.push(SnapshotCall::default()).is_err();
            if extra_call {
                Dropped::note(&mut dropped, INFO);
            }
        }
        // servicesPermitted, mediaClass, a simpleCallState...: not carried.
        Visit::Open(["crossRefIDorSnapshotData", "snapshotData", INFO, part])
            if !extra_call && !matches!(*part, "connectionIdentifier" | "localCallState") =>
        {
            Dropped::note(&mut dropped, part);
        }
        Visit::Open(["crossRefIDorSnapshotData", "snapshotData", INFO, "localCallState", part])
            if !extra_call && *part != "compoundCallState" =>
        {
            Dropped::note(&mut dropped, part);
        }
        Visit::Text(["crossRefIDorSnapshotData", "snapshotData", INFO, rest @ ..], text) if !extra_call => {
            let Some(call) = calls.last_mut() else { return };
            match rest {
                ["connectionIdentifier", "callID"] => call.connection.call = Some(text),
                ["connectionIdentifier", "deviceID"] => call.connection.device = Some(text),
                ["localCallState", "compoundCallState", "localConnectionState"] => {
                    match LocalConnectionState::parse(text) {
                        Some(state) => {
                            if call.states.push(state).is_err() {
                                Dropped::note(&mut dropped, "localConnectionState");
                            }
                        }
                        None => {
                            fault.get_or_insert(Error::BadValue("localConnectionState"));
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    })?;
    match fault {
        Some(e) => Err(e),
        None => Ok(Response::Snapshot { calls, dropped }),
    }
}

fn parse_forwarding(reader: Reader<'_>) -> Result<Response<'_>, Error> {
    let mut items: Vec<ForwardItem<'_>, MAX_FORWARD_ITEMS> = Vec::new();
    let mut fault = None;
    reader.walk(|visit| match visit {
        Visit::Open(["forwardingList", "forwardListItem"]) if items.push(ForwardItem::default()).is_err() => {
            fault.get_or_insert(Error::TooManyItems("forwardListItem"));
        }
        Visit::Text(["forwardingList", "forwardListItem", field], text) => {
            let Some(item) = items.last_mut() else { return };
            match *field {
                "forwardingType" => match ForwardingType::parse(text) {
                    Some(t) => item.forwarding_type = Some(t),
                    None => {
                        fault.get_or_insert(Error::BadValue("forwardingType"));
                    }
                },
                "forwardStatus" => match parse_bool(text) {
                    Some(b) => item.active = b,
                    None => {
                        fault.get_or_insert(Error::BadValue("forwardStatus"));
                    }
                },
                "forwardDN" => item.forward_dn = Some(text),
                _ => {}
            }
        }
        _ => {}
    })?;
    match fault {
        Some(e) => Err(e),
        None => Ok(Response::Forwarding { items }),
    }
}
