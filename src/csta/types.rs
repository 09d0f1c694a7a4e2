//! Types shared by CSTA requests, responses and events (ECMA-323 §§ on
//! common types), with their XML spellings.

use super::text::Text;

/// Declares an enumeration whose values are XML tokens.
macro_rules! xml_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = concat!("`", $text, "`")] $variant),+
        }

        impl $name {
            /// Every value, in the order of the standard.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The XML spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Reads the XML spelling.
            pub fn parse(text: Text<'_>) -> Option<Self> {
                match text.as_str()? { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}
pub(crate) use xml_enum;

/// The ECMA-323 edition a document is written in, kept per session so the
/// gateway answers in the namespace it was spoken to in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// ECMA-323 3rd edition (what Lync speaks).
    Ed3,
    /// ECMA-323 4th edition.
    Ed4,
    /// ECMA-323 5th edition.
    Ed5,
    /// ECMA-323 6th edition.
    Ed6,
    /// ECMA-354 application session services (the CTI link's session).
    AppSession,
}

impl Namespace {
    /// The namespace URI.
    pub fn uri(self) -> &'static str {
        match self {
            Namespace::Ed3 => "http://www.ecma-international.org/standards/ecma-323/csta/ed3",
            Namespace::Ed4 => "http://www.ecma-international.org/standards/ecma-323/csta/ed4",
            Namespace::Ed5 => "http://www.ecma-international.org/standards/ecma-323/csta/ed5",
            Namespace::Ed6 => "http://www.ecma-international.org/standards/ecma-323/csta/ed6",
            Namespace::AppSession => "http://www.ecma-international.org/standards/ecma-354/appl_session",
        }
    }

    /// Recognises a namespace URI.
    pub fn from_uri(uri: &str) -> Option<Namespace> {
        [Namespace::Ed3, Namespace::Ed4, Namespace::Ed5, Namespace::Ed6, Namespace::AppSession]
            .into_iter()
            .find(|ns| ns.uri() == uri)
    }
}

/// The Microsoft RCC private-data namespace of `lcs:line`.
pub const LCS_NAMESPACE: &str = "http://schemas.microsoft.com/Lcs/2005/04/RCCExtension";

/// A connection: a call at a device (ECMA-323 ConnectionID). Either part
/// may be absent on the wire; services that need one say so when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionId<'a> {
    /// `callID`
    pub call: Option<Text<'a>>,
    /// `deviceID`
    pub device: Option<Text<'a>>,
}

impl<'a> ConnectionId<'a> {
    /// A connection with both parts.
    pub fn new(call: Text<'a>, device: Text<'a>) -> Self {
        ConnectionId { call: Some(call), device: Some(device) }
    }

    /// True when neither part is present.
    pub fn is_empty(&self) -> bool {
        self.call.is_none() && self.device.is_none()
    }
}

xml_enum! {
    /// The state of a connection as one device sees it (LocalConnectionState).
    LocalConnectionState {
        Null = "null",
        Initiated = "initiated",
        Alerting = "alerting",
        Connected = "connected",
        Hold = "hold",
        Queued = "queued",
        Fail = "fail",
    }
}

xml_enum! {
    /// The state of the switching function (RequestSystemStatusResponse).
    SystemStatus {
        Disabled = "disabled",
        PartiallyDisabled = "partiallyDisabled",
        Enabled = "enabled",
        Initializing = "initializing",
        MessagesLost = "messagesLost",
        Normal = "normal",
        OverloadImminent = "overloadImminent",
        OverloadReached = "overloadReached",
        OverloadRelieved = "overloadRelieved",
    }
}

xml_enum! {
    /// Which calls a forwarding applies to.
    ForwardingType {
        Immediate = "forwardImmediate",
        Busy = "forwardBusy",
        NoAnswer = "forwardNoAns",
        DoNotDisturb = "forwardDND",
        BusyInternal = "forwardBusyInt",
        BusyExternal = "forwardBusyExt",
        NoAnswerInternal = "forwardNoAnsInt",
        NoAnswerExternal = "forwardNoAnsExt",
        ImmediateInternal = "forwardImmInt",
        ImmediateExternal = "forwardImmExt",
        DoNotDisturbInternal = "forwardDNDInt",
        DoNotDisturbExternal = "forwardDNDExt",
    }
}

xml_enum! {
    /// Whether MakeCall waits for the user to go off-hook.
    AutoOriginate {
        Prompt = "prompt",
        DoNotPrompt = "doNotPrompt",
    }
}

/// Reads an XML boolean (`true`, `false`, `1`, `0`).
pub(crate) fn parse_bool(text: Text<'_>) -> Option<bool> {
    match text.as_str()? {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The XML spelling of a boolean.
pub(crate) fn bool_str(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// A CSTA service the gateway relays: the kind of a request, without its
/// arguments. Used to name requests and responses, to list features and
/// to count traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the service of the same name
pub enum Service {
    RequestSystemStatus,
    GetCstaFeatures,
    MonitorStart,
    MonitorStop,
    SnapshotDevice,
    MakeCall,
    AnswerCall,
    ClearConnection,
    HoldCall,
    RetrieveCall,
    ConsultationCall,
    TransferCall,
    SingleStepTransferCall,
    ConferenceCall,
    AlternateCall,
    DeflectCall,
    GenerateDigits,
    SetForwarding,
    GetForwarding,
    SetDoNotDisturb,
    GetDoNotDisturb,
}

impl Service {
    /// Every service, in the order ECMA-323 lists them in
    /// GetCSTAFeaturesResponse (each list's sequence order).
    pub const ALL: [Service; 21] = [
        Service::GetCstaFeatures,
        Service::RequestSystemStatus,
        Service::MonitorStart,
        Service::MonitorStop,
        Service::SnapshotDevice,
        Service::AlternateCall,
        Service::AnswerCall,
        Service::ClearConnection,
        Service::ConferenceCall,
        Service::ConsultationCall,
        Service::DeflectCall,
        Service::HoldCall,
        Service::MakeCall,
        Service::RetrieveCall,
        Service::SingleStepTransferCall,
        Service::TransferCall,
        Service::GenerateDigits,
        Service::GetDoNotDisturb,
        Service::GetForwarding,
        Service::SetDoNotDisturb,
        Service::SetForwarding,
    ];

    /// The root element of the request, and its row in the feature table:
    /// the ECMA-323 service list it belongs to and its name there.
    fn names(self) -> (&'static str, &'static str, &'static str, &'static str) {
        use Service::*;
        match self {
            RequestSystemStatus => {
                ("RequestSystemStatus", "RequestSystemStatusResponse", "systemStatServList", "requestSystemStatus")
            }
            GetCstaFeatures => ("GetCSTAFeatures", "GetCSTAFeaturesResponse", "capExchangeServList", "getCSTAFeatures"),
            MonitorStart => ("MonitorStart", "MonitorStartResponse", "monitoringServList", "monitorStart"),
            MonitorStop => ("MonitorStop", "MonitorStopResponse", "monitoringServList", "monitorStop"),
            SnapshotDevice => ("SnapshotDevice", "SnapshotDeviceResponse", "snapshotServList", "snapshotDevice"),
            MakeCall => ("MakeCall", "MakeCallResponse", "callControlServList", "makeCall"),
            AnswerCall => ("AnswerCall", "AnswerCallResponse", "callControlServList", "answerCall"),
            ClearConnection => ("ClearConnection", "ClearConnectionResponse", "callControlServList", "clearConnection"),
            HoldCall => ("HoldCall", "HoldCallResponse", "callControlServList", "holdCall"),
            RetrieveCall => ("RetrieveCall", "RetrieveCallResponse", "callControlServList", "retrieveCall"),
            ConsultationCall => {
                ("ConsultationCall", "ConsultationCallResponse", "callControlServList", "consultationCall")
            }
            TransferCall => ("TransferCall", "TransferCallResponse", "callControlServList", "transferCall"),
            SingleStepTransferCall => (
                "SingleStepTransferCall",
                "SingleStepTransferCallResponse",
                "callControlServList",
                "singleStepTransfer",
            ),
            ConferenceCall => ("ConferenceCall", "ConferenceCallResponse", "callControlServList", "conferenceCall"),
            AlternateCall => ("AlternateCall", "AlternateCallResponse", "callControlServList", "alternateCall"),
            DeflectCall => ("DeflectCall", "DeflectCallResponse", "callControlServList", "deflectCall"),
            GenerateDigits => ("GenerateDigits", "GenerateDigitsResponse", "callAssociatedServList", "generateDigits"),
            SetForwarding => ("SetForwarding", "SetForwardingResponse", "logicalServList", "setForwarding"),
            GetForwarding => ("GetForwarding", "GetForwardingResponse", "logicalServList", "getForwarding"),
            SetDoNotDisturb => ("SetDoNotDisturb", "SetDoNotDisturbResponse", "logicalServList", "setDoNotDisturb"),
            GetDoNotDisturb => ("GetDoNotDisturb", "GetDoNotDisturbResponse", "logicalServList", "getDoNotDisturb"),
        }
    }

    /// The request's root element name.
    pub fn request_name(self) -> &'static str {
        self.names().0
    }

    /// The positive response's root element name.
    pub fn response_name(self) -> &'static str {
        self.names().1
    }

    /// The ECMA-323 service list this service is announced in.
    pub fn feature_list(self) -> &'static str {
        self.names().2
    }

    /// The service's name in GetCSTAFeaturesResponse.
    pub fn feature_name(self) -> &'static str {
        self.names().3
    }

    /// The service whose request root element is `name`.
    pub fn from_request_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.request_name() == name)
    }

    /// The service whose response root element is `name`.
    pub fn from_response_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.response_name() == name)
    }

    /// The service announced as `name` in a feature list.
    pub fn from_feature_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.feature_name() == name)
    }

    /// Its bit in a [`Services`] set (its declaration order; at most 32).
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// A set of services, as GetCSTAFeaturesResponse announces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Services(u32);

impl Services {
    /// No service.
    pub const NONE: Services = Services(0);

    /// Every service in [`Service::ALL`].
    pub fn all() -> Services {
        Service::ALL.into_iter().fold(Services::NONE, Services::with)
    }

    /// This set plus `service`.
    pub fn with(self, service: Service) -> Services {
        Services(self.0 | service.bit())
    }

    /// This set without `service`.
    pub fn without(self, service: Service) -> Services {
        Services(self.0 & !service.bit())
    }

    /// The services in both sets.
    pub fn and(self, other: Services) -> Services {
        Services(self.0 & other.0)
    }

    /// True when `service` is in the set.
    pub fn contains(self, service: Service) -> bool {
        self.0 & service.bit() != 0
    }

    /// The services in the set, in [`Service::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Service> {
        Service::ALL.into_iter().filter(move |&s| self.contains(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for s in Service::ALL {
            assert_eq!(Service::from_request_name(s.request_name()), Some(s));
            assert_eq!(Service::from_response_name(s.response_name()), Some(s));
            assert_eq!(Service::from_feature_name(s.feature_name()), Some(s));
        }
        assert_eq!(Services::all().iter().count(), Service::ALL.len());
        assert!(!Services::NONE.with(Service::MakeCall).contains(Service::HoldCall));
    }

    #[test]
    fn enums_round_trip() {
        for v in LocalConnectionState::ALL {
            assert_eq!(LocalConnectionState::parse(Text::literal(v.as_str())), Some(*v));
        }
        for v in ForwardingType::ALL {
            assert_eq!(ForwardingType::parse(Text::literal(v.as_str())), Some(*v));
        }
        assert_eq!(SystemStatus::parse(Text::literal("normal")), Some(SystemStatus::Normal));
        assert_eq!(SystemStatus::parse(Text::literal("Normal")), None);
        assert_eq!(Namespace::from_uri(Namespace::Ed4.uri()), Some(Namespace::Ed4));
        assert_eq!(Namespace::from_uri("urn:other"), None);
    }
}
