//! CSTA events: what a CTI node reports for the monitors the gateway
//! started, and what the gateway passes on to Lync in INFO requests.
//!
//! The eleven call-control events share one shape, [`CallEvent`]; which
//! element carries each part differs by kind and is kept in one table
//! ([`CallEventKind`]). Devices in events are written in their extended
//! form (`<alertingDevice><deviceIdentifier>..</deviceIdentifier></alertingDevice>`);
//! the plain form some servers send is accepted too.

use heapless::Vec;

use super::Error;
use super::request::{Slots, write_connection};
use super::text::Text;
use super::types::{ConnectionId, ForwardingType, LocalConnectionState, Namespace, bool_str};
use super::xml::{Reader, Visit, XmlWriter};
use crate::outbuf::{OutBuf, Overflow};

/// Most connections a Transfered or Conferenced event carries: a
/// conference of sixteen parties. A node's event listing more keeps the
/// first sixteen and reports the rest in [`CallEvent::dropped`].
pub const MAX_EVENT_CONNECTIONS: usize = 16;

/// `lastRedirectionDevice` (ECMA-323 RedirectionDeviceID): the device a
/// call was last redirected from, or why there is none. Written back in
/// the form the node used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirection<'a> {
    /// `<numberDialed>`, ECMA-323's form.
    Dialed(Text<'a>),
    /// `<deviceIdentifier>`, as some switches write it.
    Device(Text<'a>),
    /// The device as the element's own text, as some switches write it.
    Plain(Text<'a>),
    /// `<notKnown/>`
    NotKnown,
    /// `<notRequired/>`
    NotRequired,
    /// `<notSpecified/>`
    NotSpecified,
    /// `<restricted/>`
    Restricted,
}

impl<'a> Redirection<'a> {
    /// The device, when the node named one.
    pub fn device_mut(&mut self) -> Option<&mut Text<'a>> {
        match self {
            Redirection::Dialed(t) | Redirection::Device(t) | Redirection::Plain(t) => Some(t),
            _ => None,
        }
    }

    fn write(&self, x: &mut XmlWriter<'_, '_>) -> Result<(), Overflow> {
        let device = match *self {
            Redirection::Plain(t) => {
                x.leaf("lastRedirectionDevice", t)?;
                return Ok(());
            }
            Redirection::Dialed(t) => Some(("numberDialed", t)),
            Redirection::Device(t) => Some(("deviceIdentifier", t)),
            _ => None,
        };
        x.open("lastRedirectionDevice")?;
        match device {
            Some((form, t)) => x.leaf(form, t)?,
            None => {
                let (form, _) = NO_DEVICE.iter().find(|(_, r)| r == self).expect("every form without a device");
                x.empty(form)?
            }
        };
        x.close("lastRedirectionDevice")?;
        Ok(())
    }
}

/// The forms of `lastRedirectionDevice` that name no device, by element.
const NO_DEVICE: [(&str, Redirection<'static>); 4] = [
    ("notKnown", Redirection::NotKnown),
    ("notRequired", Redirection::NotRequired),
    ("notSpecified", Redirection::NotSpecified),
    ("restricted", Redirection::Restricted),
];

/// What a node's message said that the gateway does not pass on: an
/// element it does not model (private data, call linkage, user data...)
/// or list items past its capacity. The gateway counts it and logs each
/// kind once; nothing is rewritten silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped<'a> {
    /// The names of the elements dropped, each once, the first four kinds.
    pub kinds: Vec<&'a str, MAX_DROPPED_KINDS>,
    /// How many were dropped.
    pub count: u16,
}

/// Most kinds of dropped element one message reports by name.
pub const MAX_DROPPED_KINDS: usize = 4;

impl<'a> Dropped<'a> {
    /// One element of `name` dropped.
    pub fn one(name: &'a str) -> Dropped<'a> {
        let mut kinds = Vec::new();
        let _ = kinds.push(name);
        Dropped { kinds, count: 1 }
    }

    /// Records one more dropped element.
    pub(crate) fn note(dropped: &mut Option<Dropped<'a>>, name: &'a str) {
        match dropped {
            Some(d) => {
                d.count = d.count.saturating_add(1);
                if !d.kinds.contains(&name) {
                    let _ = d.kinds.push(name);
                }
            }
            None => *dropped = Some(Dropped::one(name)),
        }
    }
}

/// The call-control events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the event of the same name
pub enum CallEventKind {
    ServiceInitiated,
    Originated,
    Delivered,
    Established,
    Held,
    Retrieved,
    ConnectionCleared,
    /// ECMA's spelling: `TransferedEvent`.
    Transfered,
    Conferenced,
    Diverted,
    Failed,
}

/// Where one kind of call event keeps each part.
struct Layout {
    root: &'static str,
    connection: &'static str,
    subject: &'static str,
    /// transferredToDevice, addedParty or newDestination.
    target: Option<&'static str>,
    /// secondaryOldCall and the list of new connections.
    joins_calls: Option<&'static str>,
    /// Whether callingDevice and calledDevice follow the subject
    /// (Originated has only calledDevice: its subject is the caller).
    parties: Parties,
    /// Whether the event has `lastRedirectionDevice`, and whether ECMA-323
    /// requires it (then written as `notKnown` when the node gave none).
    redirection: RedirectionPart,
}

#[derive(PartialEq)]
enum RedirectionPart {
    None,
    Optional,
    Required,
}

#[derive(PartialEq)]
enum Parties {
    None,
    Called,
    Both,
}

impl Layout {
    /// Whether the gateway carries the top-level element `name` of this
    /// kind of event.
    fn carries(&self, name: &str) -> bool {
        let device = |n: &str| name == n;
        matches!(name, "monitorCrossRefID" | "localConnectionInfo" | "cause")
            || (self.redirection != RedirectionPart::None && name == "lastRedirectionDevice")
            || name == self.connection
            || name == self.subject
            || self.target.is_some_and(device)
            || self.joins_calls.is_some_and(|l| name == l || name == "secondaryOldCall")
            || (self.parties == Parties::Both && name == "callingDevice")
            || (self.parties != Parties::None && name == "calledDevice")
    }
}

impl CallEventKind {
    /// Every kind.
    pub const ALL: [CallEventKind; 11] = [
        CallEventKind::ServiceInitiated,
        CallEventKind::Originated,
        CallEventKind::Delivered,
        CallEventKind::Established,
        CallEventKind::Held,
        CallEventKind::Retrieved,
        CallEventKind::ConnectionCleared,
        CallEventKind::Transfered,
        CallEventKind::Conferenced,
        CallEventKind::Diverted,
        CallEventKind::Failed,
    ];

    fn layout(self) -> Layout {
        use CallEventKind::*;
        let simple = |root, connection, subject| Layout {
            root,
            connection,
            subject,
            target: None,
            joins_calls: None,
            parties: Parties::None,
            redirection: RedirectionPart::None,
        };
        match self {
            ServiceInitiated => simple("ServiceInitiatedEvent", "initiatedConnection", "initiatingDevice"),
            Originated => Layout {
                parties: Parties::Called,
                ..simple("OriginatedEvent", "originatedConnection", "callingDevice")
            },
            Delivered => Layout {
                parties: Parties::Both,
                redirection: RedirectionPart::Required,
                ..simple("DeliveredEvent", "connection", "alertingDevice")
            },
            Established => Layout {
                parties: Parties::Both,
                redirection: RedirectionPart::Required,
                ..simple("EstablishedEvent", "establishedConnection", "answeringDevice")
            },
            Held => simple("HeldEvent", "heldConnection", "holdingDevice"),
            Retrieved => simple("RetrievedEvent", "retrievedConnection", "retrievingDevice"),
            ConnectionCleared => simple("ConnectionClearedEvent", "droppedConnection", "releasingDevice"),
            Transfered => Layout {
                target: Some("transferredToDevice"),
                joins_calls: Some("transferredConnections"),
                ..simple("TransferedEvent", "primaryOldCall", "transferringDevice")
            },
            Conferenced => Layout {
                target: Some("addedParty"),
                joins_calls: Some("conferenceConnections"),
                ..simple("ConferencedEvent", "primaryOldCall", "conferencingDevice")
            },
            Diverted => Layout {
                target: Some("newDestination"),
                parties: Parties::Both,
                redirection: RedirectionPart::Optional,
                ..simple("DivertedEvent", "connection", "divertingDevice")
            },
            Failed => Layout {
                parties: Parties::Both,
                redirection: RedirectionPart::Required,
                ..simple("FailedEvent", "failedConnection", "failingDevice")
            },
        }
    }

    /// The event's root element name.
    pub fn name(self) -> &'static str {
        self.layout().root
    }

    /// The kind whose root element is `name`.
    pub fn from_name(name: &str) -> Option<CallEventKind> {
        CallEventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A call-control event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent<'a> {
    /// Which event.
    pub kind: CallEventKind,
    /// `monitorCrossRefID`: the monitor the event belongs to.
    pub monitor: Text<'a>,
    /// The event's connection (`connection`, `heldConnection`,
    /// `primaryOldCall`...).
    pub connection: ConnectionId<'a>,
    /// `secondaryOldCall` (Transfered, Conferenced).
    pub secondary_call: Option<ConnectionId<'a>>,
    /// The device the event happened at (`alertingDevice`,
    /// `holdingDevice`...; `callingDevice` for Originated).
    pub subject: Option<Text<'a>>,
    /// `transferredToDevice`, `addedParty` or `newDestination`.
    pub target: Option<Text<'a>>,
    /// `callingDevice` (Delivered, Established, Diverted, Failed).
    pub calling: Option<Text<'a>>,
    /// `calledDevice` (Originated, Delivered, Established, Diverted, Failed).
    pub called: Option<Text<'a>>,
    /// The new connections of a Transfered or Conferenced event.
    pub connections: Vec<ConnectionId<'a>, MAX_EVENT_CONNECTIONS>,
    /// `lastRedirectionDevice` (Delivered, Established, Diverted, Failed).
    pub redirection: Option<Redirection<'a>>,
    /// `localConnectionInfo`
    pub local_state: Option<LocalConnectionState>,
    /// `cause` (an ECMA-323 EventCause such as `normal`, `newCall`,
    /// `normalClearing`, `busy`; see [`cause`](super::cause)).
    pub cause: Option<Text<'a>>,
    /// What the node's event said that is not carried on.
    pub dropped: Option<Dropped<'a>>,
}

impl<'a> CallEvent<'a> {
    /// An event of `kind` for `monitor` on `connection`, everything else empty.
    pub fn new(kind: CallEventKind, monitor: Text<'a>, connection: ConnectionId<'a>) -> Self {
        CallEvent {
            kind,
            monitor,
            connection,
            secondary_call: None,
            subject: None,
            target: None,
            calling: None,
            called: None,
            connections: Vec::new(),
            redirection: None,
            local_state: None,
            cause: None,
            dropped: None,
        }
    }

    pub(crate) fn parse(kind: CallEventKind, reader: Reader<'a>) -> Result<CallEvent<'a>, Error> {
        let layout = kind.layout();
        let mut event = CallEvent::new(kind, Text::literal(""), ConnectionId::default());
        let mut monitor = None;
        let mut fault = None;
        let mut secondary = ConnectionId::default();
        let list = layout.joins_calls.unwrap_or("\0");
        let mut extra_items = false;
        reader.walk(|visit| {
            let (path, text) = match visit {
                Visit::Open([l, "connectionListItem"]) if *l == list => {
                    extra_items = event.connections.push(ConnectionId::default()).is_err();
                    if extra_items {
                        Dropped::note(&mut event.dropped, "connectionListItem");
                    }
                    return;
                }
                // oldConnection, endpoint, associatedNID: not carried.
                Visit::Open([l, "connectionListItem", part]) if *l == list => {
                    if *part != "newConnection" && !extra_items {
                        Dropped::note(&mut event.dropped, part);
                    }
                    return;
                }
                Visit::Open([name]) => {
                    if !layout.carries(name) {
                        Dropped::note(&mut event.dropped, name);
                    }
                    return;
                }
                Visit::Open(["lastRedirectionDevice", form]) if layout.redirection != RedirectionPart::None => {
                    match NO_DEVICE.iter().find(|(name, _)| name == form) {
                        Some((_, r)) => event.redirection = Some(*r),
                        None if matches!(*form, "numberDialed" | "deviceIdentifier") => {}
                        None => Dropped::note(&mut event.dropped, form),
                    }
                    return;
                }
                Visit::Open(_) => return,
                Visit::Text(path, text) => (path, text),
            };
            // A device in its extended form or, leniently, as plain text.
            let device = |name: &str| match path {
                [n] | [n, "deviceIdentifier"] => *n == name,
                _ => false,
            };
            match path {
                ["monitorCrossRefID"] => {
                    monitor.get_or_insert(text);
                }
                [c, "callID"] if *c == layout.connection => event.connection.call = Some(text),
                [c, "deviceID"] if *c == layout.connection => event.connection.device = Some(text),
                ["secondaryOldCall", "callID"] => secondary.call = Some(text),
                ["secondaryOldCall", "deviceID"] => secondary.device = Some(text),
                [l, "connectionListItem", "newConnection", part] if *l == list && !extra_items => {
                    if let Some(c) = event.connections.last_mut() {
                        match *part {
                            "callID" => c.call = Some(text),
                            "deviceID" => c.device = Some(text),
                            _ => {}
                        }
                    }
                }
                [l, "connectionListItem", ..] if *l == list => {}
                ["lastRedirectionDevice", ..] if layout.redirection == RedirectionPart::None => {}
                ["lastRedirectionDevice", "numberDialed"] => event.redirection = Some(Redirection::Dialed(text)),
                ["lastRedirectionDevice", "deviceIdentifier"] => event.redirection = Some(Redirection::Device(text)),
                ["lastRedirectionDevice"] => event.redirection = Some(Redirection::Plain(text)),
                ["localConnectionInfo"] => match LocalConnectionState::parse(text) {
                    Some(state) => event.local_state = Some(state),
                    None => {
                        fault.get_or_insert(Error::BadValue("localConnectionInfo"));
                    }
                },
                ["cause"] => event.cause = Some(text),
                _ if device(layout.subject) => event.subject = Some(text),
                _ if layout.target.is_some_and(device) => event.target = Some(text),
                _ if layout.parties == Parties::Both && device("callingDevice") => event.calling = Some(text),
                _ if layout.parties != Parties::None && device("calledDevice") => event.called = Some(text),
                _ => {}
            }
        })?;
        if let Some(e) = fault {
            return Err(e);
        }
        event.monitor = monitor.ok_or(Error::MissingElement("monitorCrossRefID"))?;
        if event.connection.is_empty() {
            return Err(Error::MissingElement(layout.connection));
        }
        event.secondary_call = (!secondary.is_empty()).then_some(secondary);
        Ok(event)
    }

    /// Writes the event in `namespace`, its elements in ECMA-323 order.
    pub fn write(&self, namespace: Namespace, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        let layout = self.kind.layout();
        let mut x = XmlWriter::root(out, layout.root, namespace)?;
        x.leaf("monitorCrossRefID", self.monitor)?;
        write_connection(&mut x, layout.connection, &self.connection)?;
        if layout.joins_calls.is_some() {
            if let Some(secondary) = &self.secondary_call {
                write_connection(&mut x, "secondaryOldCall", secondary)?;
            }
        }
        x.device(layout.subject, self.subject)?;
        if let Some(target) = layout.target {
            x.device(target, self.target)?;
        }
        if let Some(list) = layout.joins_calls {
            x.open(list)?;
            for c in &self.connections {
                x.open("connectionListItem")?;
                write_connection(&mut x, "newConnection", c)?;
                x.close("connectionListItem")?;
            }
            x.close(list)?;
        }
        if layout.parties == Parties::Both {
            x.device("callingDevice", self.calling)?;
        }
        if layout.parties != Parties::None {
            x.device("calledDevice", self.called)?;
        }
        match self.redirection {
            Some(r) => r.write(&mut x)?,
            None if layout.redirection == RedirectionPart::Required => Redirection::NotKnown.write(&mut x)?,
            None => {}
        }
        if let Some(state) = self.local_state {
            x.leaf_str("localConnectionInfo", state.as_str())?;
        }
        // ECMA-323 makes `cause` mandatory; a relay writes what the node
        // said, so an event that came without one goes on without one.
        if let Some(cause) = self.cause {
            x.leaf("cause", cause)?;
        }
        x.close(layout.root)?;
        Ok(())
    }
}

/// ForwardingEvent: a device's forwarding changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardingEvent<'a> {
    /// `monitorCrossRefID`
    pub monitor: Text<'a>,
    /// `device`
    pub device: Text<'a>,
    /// `forwardingType`
    pub forwarding_type: Option<ForwardingType>,
    /// `forwardStatus`
    pub active: bool,
    /// `forwardTo`
    pub forward_to: Option<Text<'a>>,
}

/// DoNotDisturbEvent: a device's do-not-disturb changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoNotDisturbEvent<'a> {
    /// `monitorCrossRefID`
    pub monitor: Text<'a>,
    /// `device`
    pub device: Text<'a>,
    /// `doNotDisturbOn`
    pub on: bool,
}

/// Any event the gateway relays.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // boxing would allocate per event
pub enum Event<'a> {
    /// A call-control event.
    Call(CallEvent<'a>),
    /// ForwardingEvent.
    Forwarding(ForwardingEvent<'a>),
    /// DoNotDisturbEvent.
    DoNotDisturb(DoNotDisturbEvent<'a>),
}

impl<'a> Event<'a> {
    /// True for the root element name of an event this module knows.
    pub(crate) fn is_event_name(name: &str) -> bool {
        CallEventKind::from_name(name).is_some() || name == "ForwardingEvent" || name == "DoNotDisturbEvent"
    }

    pub(crate) fn parse(name: &str, reader: Reader<'a>) -> Result<Event<'a>, Error> {
        if let Some(kind) = CallEventKind::from_name(name) {
            return CallEvent::parse(kind, reader).map(Event::Call);
        }
        if name == "ForwardingEvent" {
            let paths: [&[&str]; 5] =
                [&["monitorCrossRefID"], &["device"], &["forwardingType"], &["forwardStatus"], &["forwardTo"]];
            let s = Slots::collect(reader, &paths)?;
            return Ok(Event::Forwarding(ForwardingEvent {
                monitor: s.required(0, "monitorCrossRefID")?,
                device: s.required(1, "device")?,
                forwarding_type: s.enumerated(2, "forwardingType", ForwardingType::parse)?,
                active: s.boolean(3, "forwardStatus")?,
                forward_to: s.get(4),
            }));
        }
        let paths: [&[&str]; 3] = [&["monitorCrossRefID"], &["device"], &["doNotDisturbOn"]];
        let s = Slots::collect(reader, &paths)?;
        Ok(Event::DoNotDisturb(DoNotDisturbEvent {
            monitor: s.required(0, "monitorCrossRefID")?,
            device: s.required(1, "device")?,
            on: s.boolean(2, "doNotDisturbOn")?,
        }))
    }

    /// The monitor the event belongs to.
    pub fn monitor(&self) -> Text<'a> {
        match self {
            Event::Call(e) => e.monitor,
            Event::Forwarding(e) => e.monitor,
            Event::DoNotDisturb(e) => e.monitor,
        }
    }

    /// The event's root element name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Call(e) => e.kind.name(),
            Event::Forwarding(_) => "ForwardingEvent",
            Event::DoNotDisturb(_) => "DoNotDisturbEvent",
        }
    }

    /// Writes the event in `namespace`.
    pub fn write(&self, namespace: Namespace, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        match self {
            Event::Call(e) => e.write(namespace, out),
            Event::Forwarding(e) => {
                let mut x = XmlWriter::root(out, "ForwardingEvent", namespace)?;
                x.leaf("monitorCrossRefID", e.monitor)?.device("device", Some(e.device))?;
                if let Some(t) = e.forwarding_type {
                    x.leaf_str("forwardingType", t.as_str())?;
                }
                x.leaf_str("forwardStatus", bool_str(e.active))?;
                if let Some(to) = e.forward_to {
                    x.leaf("forwardTo", to)?;
                }
                x.close("ForwardingEvent")?;
                Ok(())
            }
            Event::DoNotDisturb(e) => {
                let mut x = XmlWriter::root(out, "DoNotDisturbEvent", namespace)?;
                x.leaf("monitorCrossRefID", e.monitor)?.device("device", Some(e.device))?;
                x.leaf_str("doNotDisturbOn", bool_str(e.on))?.close("DoNotDisturbEvent")?;
                Ok(())
            }
        }
    }
}
