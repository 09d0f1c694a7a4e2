//! ECMA-323 system status services between a node and the gateway: the
//! node's SystemStatus (a switch that speaks first sends one as soon as
//! the link is up, with an invoke id of its own) and the gateway's empty
//! SystemStatusResponse, and SystemRegister, by which the gateway asks for
//! the node's status reports. Shapes as public CSTA-over-TCP clients and
//! test switches exchange them (an empty `SystemStatusResponse`; the
//! register id an opaque string).

use super::Error;
use super::request::Slots;
use super::text::Text;
use super::types::Namespace;
use super::xml::{Reader, XmlWriter};
use crate::outbuf::{OutBuf, Overflow};

/// A system status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemMessage<'a> {
    /// SystemStatus (node to gateway): the switching function's state
    /// (`initializing`, `enabled`, `normal`, `messagesLost`, `disabled`,
    /// `partiallyDisabled`, `overloadImminent`, `overloadReached`,
    /// `overloadRelieved`), kept as the node wrote it.
    Status {
        /// `systemStatus`
        status: Text<'a>,
    },
    /// SystemStatusResponse (gateway to node): empty.
    StatusAnswered,
    /// SystemRegister (gateway to node): asks for the node's SystemStatus
    /// reports.
    Register,
    /// SystemRegisterResponse.
    Registered {
        /// `sysStatRegisterID`, opaque.
        register_id: Option<Text<'a>>,
    },
}

impl<'a> SystemMessage<'a> {
    /// True for the root element name of a message of this service.
    pub(crate) fn is_system_name(name: &str) -> bool {
        matches!(name, "SystemStatus" | "SystemStatusResponse" | "SystemRegister" | "SystemRegisterResponse")
    }

    pub(crate) fn parse(name: &str, reader: Reader<'a>) -> Result<SystemMessage<'a>, Error> {
        Ok(match name {
            "SystemStatus" => {
                let s = Slots::collect(reader, &[&["systemStatus"]])?;
                SystemMessage::Status { status: s.required(0, "systemStatus")? }
            }
            "SystemStatusResponse" => {
                reader.walk(|_| {})?;
                SystemMessage::StatusAnswered
            }
            "SystemRegister" => {
                reader.walk(|_| {})?;
                SystemMessage::Register
            }
            "SystemRegisterResponse" => {
                let s = Slots::collect(reader, &[&["sysStatRegisterID"]])?;
                SystemMessage::Registered { register_id: s.get(0) }
            }
            _ => return Err(Error::UnknownMessage),
        })
    }

    /// Writes the message in `namespace`.
    pub fn write(&self, namespace: Namespace, out: &mut OutBuf<'_>) -> Result<(), Overflow> {
        match *self {
            SystemMessage::StatusAnswered => XmlWriter::empty_root(out, "SystemStatusResponse", namespace),
            SystemMessage::Status { status } => {
                let mut x = XmlWriter::root(out, "SystemStatus", namespace)?;
                x.leaf("systemStatus", status)?.close("SystemStatus")?;
                Ok(())
            }
            SystemMessage::Register => {
                let mut x = XmlWriter::root(out, "SystemRegister", namespace)?;
                x.open("requestTypes")?.leaf_str("systemStatus", "true")?.close("requestTypes")?;
                x.close("SystemRegister")?;
                Ok(())
            }
            SystemMessage::Registered { register_id } => {
                let mut x = XmlWriter::root(out, "SystemRegisterResponse", namespace)?;
                if let Some(id) = register_id {
                    x.leaf("sysStatRegisterID", id)?;
                }
                x.close("SystemRegisterResponse")?;
                Ok(())
            }
        }
    }
}
