//! ECMA-354 application session services, which open and keep alive the
//! gateway's session on a CTI node link: Start, ResetTimer (the heartbeat),
//! Stop, and the node's Terminated notice.

use super::Error;
use super::request::Slots;
use super::text::Text;
use super::types::Namespace;
use super::xml::{Reader, XmlWriter};
use crate::outbuf::{OutBuf, Overflow};

/// An application session message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMessage<'a> {
    /// StartApplicationSession (gateway to node).
    Start {
        /// `applicationInfo/applicationID`
        application_id: Text<'a>,
        /// The first `requestedProtocolVersions/protocolVersion`.
        protocol_version: Option<Text<'a>>,
        /// `requestedSessionDuration`, seconds.
        duration: Option<u32>,
    },
    /// StartApplicationSessionPosResponse.
    Started {
        /// `sessionID`
        session_id: Text<'a>,
        /// `actualProtocolVersion`
        protocol_version: Option<Text<'a>>,
        /// `actualSessionDuration`, seconds.
        duration: Option<u32>,
    },
    /// ResetApplicationSessionTimer (the heartbeat).
    ResetTimer {
        /// `sessionID`
        session_id: Text<'a>,
        /// `requestedSessionDuration`, seconds.
        duration: Option<u32>,
    },
    /// ResetApplicationSessionTimerPosResponse.
    TimerReset {
        /// `actualSessionDuration`, seconds.
        duration: Option<u32>,
    },
    /// StopApplicationSession.
    Stop {
        /// `sessionID`
        session_id: Text<'a>,
    },
    /// StopApplicationSessionPosResponse.
    Stopped,
    /// A negative response to Start, ResetTimer or Stop.
    Refused {
        /// Which request was refused.
        refused: SessionRequest,
        /// `errorCode/definedError` or `errorCode/applError`.
        error: Text<'a>,
    },
    /// ApplicationSessionTerminated (node to gateway).
    Terminated {
        /// `sessionID`
        session_id: Option<Text<'a>>,
        /// `sessionTermReason/definedTermReason` or `serverTermReason`.
        reason: Option<Text<'a>>,
    },
}

/// The three requests of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRequest {
    /// StartApplicationSession
    Start,
    /// ResetApplicationSessionTimer
    ResetTimer,
    /// StopApplicationSession
    Stop,
}

impl SessionRequest {
    /// The request's root element name.
    pub fn request_name(self) -> &'static str {
        match self {
            SessionRequest::Start => "StartApplicationSession",
            SessionRequest::ResetTimer => "ResetApplicationSessionTimer",
            SessionRequest::Stop => "StopApplicationSession",
        }
    }
}

const NEGATIVE: [(&str, SessionRequest); 3] = [
    ("StartApplicationSessionNegResponse", SessionRequest::Start),
    ("ResetApplicationSessionTimerNegResponse", SessionRequest::ResetTimer),
    ("StopApplicationSessionNegResponse", SessionRequest::Stop),
];

fn duration(slots: &Slots<'_>, i: usize, element: &'static str) -> Result<Option<u32>, Error> {
    slots.get(i).map(|t| t.as_str().and_then(|s| s.parse().ok()).ok_or(Error::BadValue(element))).transpose()
}

impl<'a> SessionMessage<'a> {
    /// True for the root element name of a message of this service.
    pub(crate) fn is_session_name(name: &str) -> bool {
        matches!(
            name,
            "StartApplicationSession"
                | "StartApplicationSessionPosResponse"
                | "ResetApplicationSessionTimer"
                | "ResetApplicationSessionTimerPosResponse"
                | "StopApplicationSession"
                | "StopApplicationSessionPosResponse"
                | "ApplicationSessionTerminated"
        ) || NEGATIVE.iter().any(|(n, _)| *n == name)
    }

    pub(crate) fn parse(name: &str, reader: Reader<'a>) -> Result<SessionMessage<'a>, Error> {
        Ok(match name {
            "StartApplicationSession" => {
                let s = Slots::collect(
                    reader,
                    &[
                        &["applicationInfo", "applicationID"],
                        &["requestedProtocolVersions", "protocolVersion"],
                        &["requestedSessionDuration"],
                    ],
                )?;
                SessionMessage::Start {
                    application_id: s.required(0, "applicationID")?,
                    protocol_version: s.get(1),
                    duration: duration(&s, 2, "requestedSessionDuration")?,
                }
            }
            "StartApplicationSessionPosResponse" => {
                let s =
                    Slots::collect(reader, &[&["sessionID"], &["actualProtocolVersion"], &["actualSessionDuration"]])?;
                SessionMessage::Started {
                    session_id: s.required(0, "sessionID")?,
                    protocol_version: s.get(1),
                    duration: duration(&s, 2, "actualSessionDuration")?,
                }
            }
            "ResetApplicationSessionTimer" => {
                let s = Slots::collect(reader, &[&["sessionID"], &["requestedSessionDuration"]])?;
                SessionMessage::ResetTimer {
                    session_id: s.required(0, "sessionID")?,
                    duration: duration(&s, 1, "requestedSessionDuration")?,
                }
            }
            "ResetApplicationSessionTimerPosResponse" => {
                let s = Slots::collect(reader, &[&["actualSessionDuration"]])?;
                SessionMessage::TimerReset { duration: duration(&s, 0, "actualSessionDuration")? }
            }
            "StopApplicationSession" => {
                let s = Slots::collect(reader, &[&["sessionID"]])?;
                SessionMessage::Stop { session_id: s.required(0, "sessionID")? }
            }
            "StopApplicationSessionPosResponse" => {
                reader.walk(|_| {})?;
                SessionMessage::Stopped
            }
            "ApplicationSessionTerminated" => {
                let s = Slots::collect(
                    reader,
                    &[
                        &["sessionID"],
                        &["sessionTermReason", "definedTermReason"],
                        &["sessionTermReason", "serverTermReason"],
                    ],
                )?;
                SessionMessage::Terminated { session_id: s.get(0), reason: s.get(1).or(s.get(2)) }
            }
            _ => {
                let refused = NEGATIVE.iter().find(|(n, _)| *n == name).ok_or(Error::UnknownMessage)?.1;
                let s = Slots::collect(reader, &[&["errorCode", "definedError"], &["errorCode", "applError"]])?;
                let error = s.get(0).or(s.get(1)).ok_or(Error::MissingElement("errorCode"))?;
                SessionMessage::Refused { refused, error }
            }
        })
    }

    /// Writes the message in the ECMA-354 namespace.
    pub fn write(&self, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        let ns = Namespace::AppSession;
        let name = match self {
            SessionMessage::Start { .. } => "StartApplicationSession",
            SessionMessage::Started { .. } => "StartApplicationSessionPosResponse",
            SessionMessage::ResetTimer { .. } => "ResetApplicationSessionTimer",
            SessionMessage::TimerReset { .. } => "ResetApplicationSessionTimerPosResponse",
            SessionMessage::Stop { .. } => "StopApplicationSession",
            SessionMessage::Stopped => return XmlWriter::empty_root(out, "StopApplicationSessionPosResponse", ns),
            SessionMessage::Refused { refused, .. } => match refused {
                SessionRequest::Start => "StartApplicationSessionNegResponse",
                SessionRequest::ResetTimer => "ResetApplicationSessionTimerNegResponse",
                SessionRequest::Stop => "StopApplicationSessionNegResponse",
            },
            SessionMessage::Terminated { .. } => "ApplicationSessionTerminated",
        };
        let mut x = XmlWriter::root(out, name, ns)?;
        match *self {
            SessionMessage::Start { application_id, protocol_version, duration } => {
                x.open("applicationInfo")?.leaf("applicationID", application_id)?.close("applicationInfo")?;
                if let Some(v) = protocol_version {
                    x.open("requestedProtocolVersions")?.leaf("protocolVersion", v)?;
                    x.close("requestedProtocolVersions")?;
                }
                if let Some(d) = duration {
                    x.leaf_number("requestedSessionDuration", d.into())?;
                }
            }
            SessionMessage::Started { session_id, protocol_version, duration } => {
                x.leaf("sessionID", session_id)?;
                if let Some(v) = protocol_version {
                    x.leaf("actualProtocolVersion", v)?;
                }
                if let Some(d) = duration {
                    x.leaf_number("actualSessionDuration", d.into())?;
                }
            }
            SessionMessage::ResetTimer { session_id, duration } => {
                x.leaf("sessionID", session_id)?;
                if let Some(d) = duration {
                    x.leaf_number("requestedSessionDuration", d.into())?;
                }
            }
            SessionMessage::TimerReset { duration } => {
                if let Some(d) = duration {
                    x.leaf_number("actualSessionDuration", d.into())?;
                }
            }
            SessionMessage::Stop { session_id } => {
                x.leaf("sessionID", session_id)?;
                x.raw("<sessionEndReason><definedEndReason>normal</definedEndReason></sessionEndReason>")?;
            }
            SessionMessage::Refused { error, .. } => {
                x.open("errorCode")?.leaf("definedError", error)?.close("errorCode")?;
            }
            SessionMessage::Terminated { session_id, reason } => {
                if let Some(id) = session_id {
                    x.leaf("sessionID", id)?;
                }
                if let Some(r) = reason {
                    x.open("sessionTermReason")?.leaf("serverTermReason", r)?.close("sessionTermReason")?;
                }
            }
            SessionMessage::Stopped => unreachable!("written above"),
        }
        x.close(name)?;
        Ok(())
    }

    /// The request a response or refusal answers, if it is one.
    pub fn answers(&self) -> Option<SessionRequest> {
        match self {
            SessionMessage::Started { .. } => Some(SessionRequest::Start),
            SessionMessage::TimerReset { .. } => Some(SessionRequest::ResetTimer),
            SessionMessage::Stopped => Some(SessionRequest::Stop),
            SessionMessage::Refused { refused, .. } => Some(*refused),
            _ => None,
        }
    }
}
