//! CSTAErrorCode: the negative answer to any CSTA request (ECMA-323,
//! categories and values from ECMA-285's UniversalFailure).

use core::fmt;

use super::Error;
use super::text::Text;
use super::types::{Namespace, xml_enum};
use super::xml::{Reader, Visit, XmlWriter};
use crate::outbuf::{OutBuf, Overflow};

xml_enum! {
    /// The category of a CSTA error: the child element of CSTAErrorCode.
    ErrorCategory {
        Operation = "operation",
        Security = "security",
        StateIncompatibility = "stateIncompatibility",
        SystemResourceAvailability = "systemResourceAvailability",
        SubscribedResourceAvailability = "subscribedResourceAvailability",
        PerformanceManagement = "performanceManagement",
        PrivateData = "privateData",
        Unspecified = "unspecified",
    }
}

/// A CSTA error: a category and a value such as `invalidDeviceID`.
/// The value is kept as text: the standard defines some two hundred and
/// vendors add their own; the ones the gateway produces are constants here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// The category element.
    pub category: ErrorCategory,
    /// The value inside it.
    pub value: Text<'a>,
}

const fn code(category: ErrorCategory, value: &'static str) -> ErrorCode<'static> {
    ErrorCode { category, value: Text::literal(value) }
}

impl ErrorCode<'static> {
    /// The device is not known to the switch, or not to this user.
    pub const INVALID_DEVICE_ID: Self = code(ErrorCategory::Operation, "invalidDeviceID");
    /// The number to call is not one the dial plan lets through (ECMA-269
    /// invalidCalledDevice).
    pub const INVALID_CALLED_DEVICE: Self = code(ErrorCategory::Operation, "invalidCalledDevice");
    /// The forwarding destination is not one the dial plan lets through.
    pub const INVALID_FORWARDING_DESTINATION: Self = code(ErrorCategory::Operation, "invalidForwardingDestination");
    /// The call is not known.
    pub const INVALID_CALL_ID: Self = code(ErrorCategory::Operation, "invalidCallID");
    /// The connection is not known.
    pub const INVALID_CONNECTION_ID: Self = code(ErrorCategory::Operation, "invalidConnectionID");
    /// The monitor cross-reference id is not known.
    pub const INVALID_MONITOR_CROSS_REF_ID: Self = code(ErrorCategory::Operation, "invalidMonitorCrossRefID");
    /// The user may not control the device (a line appearance not theirs).
    pub const PRIVILEGE_VIOLATION: Self = code(ErrorCategory::Operation, "privilegeViolationSpecifiedDevice");
    /// The request does not apply to the object in its current form.
    pub const REQUEST_INCOMPATIBLE_WITH_OBJECT: Self = code(ErrorCategory::Operation, "requestIncompatibleWithObject");
    /// A parameter is missing or has a value outside its type.
    pub const INVALID_PARAMETER_VALUE: Self = code(ErrorCategory::Operation, "invalidParameterValue");
    /// A list is longer than the gateway handles.
    pub const VALUE_OUT_OF_RANGE: Self = code(ErrorCategory::Operation, "valueOutOfRange");
    /// The service is not provided.
    pub const SERVICE_NOT_SUPPORTED: Self = code(ErrorCategory::Operation, "serviceNotSupported");
    /// An operation error with no better description.
    pub const GENERIC_OPERATION: Self = code(ErrorCategory::Operation, "generic");
    /// The object's state does not allow the request.
    pub const INVALID_OBJECT_STATE: Self = code(ErrorCategory::StateIncompatibility, "invalidObjectState");
    /// The resource is busy (e.g. the node has too many requests pending).
    pub const RESOURCE_BUSY: Self = code(ErrorCategory::SystemResourceAvailability, "resourceBusy");
    /// The resource is out of service (e.g. the session's CTI node is down).
    pub const RESOURCE_OUT_OF_SERVICE: Self = code(ErrorCategory::SystemResourceAvailability, "resourceOutOfService");
    /// No more monitors may be started on this object.
    pub const OBJECT_MONITOR_LIMIT_EXCEEDED: Self =
        code(ErrorCategory::SubscribedResourceAvailability, "objectMonitorLimitExceeded");
    /// Too many requests are outstanding.
    pub const OUTSTANDING_REQUEST_LIMIT_EXCEEDED: Self =
        code(ErrorCategory::SubscribedResourceAvailability, "outstandingReqLimitExceeded");
}

impl<'a> ErrorCode<'a> {
    pub(crate) fn parse(reader: Reader<'a>) -> Result<ErrorCode<'a>, Error> {
        let mut found: Option<ErrorCode<'a>> = None;
        reader.walk(|visit| match visit {
            // `<unspecified/>` and the like: a category without a value.
            Visit::Open([element]) if found.is_none() => {
                let category = ErrorCategory::parse(Text::literal(element)).unwrap_or(ErrorCategory::Unspecified);
                found = Some(ErrorCode { category, value: Text::literal("") });
            }
            Visit::Text([_], text) => {
                if let Some(code) = found.as_mut().filter(|c| c.value.is_empty()) {
                    code.value = text;
                }
            }
            _ => {}
        })?;
        found.ok_or(Error::MissingElement("error category"))
    }

    /// Writes `<CSTAErrorCode><category>value</category></CSTAErrorCode>`.
    pub fn write(&self, namespace: Namespace, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        let mut x = XmlWriter::root(out, "CSTAErrorCode", namespace)?;
        x.leaf(self.category.as_str(), self.value)?.close("CSTAErrorCode")?;
        Ok(())
    }
}

impl fmt::Display for ErrorCode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.category.as_str(), self.value)
    }
}
