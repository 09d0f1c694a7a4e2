//! Devices and numbers between Lync's names and the telephone system's,
//! for one session, when the configuration has a `[dialplan]`.
//!
//! Lync to node: the user's own line becomes the device of its appearance
//! in the line file; a number to call goes through the `to_node` rules and
//! is refused (a CSTA error, no node round trip) when none matches.
//! Node to Lync: the user's own device becomes the line URI exactly as
//! Lync wrote it (Lync compares it as a string); other parties go through
//! the `to_lync` rules and become `tel:` URIs; a colleague's phone named
//! by name becomes the line the line file gives it; other names pass as
//! they are. Call and monitor ids are never touched.
//!
//! Rewritten identifiers are written into an [`Arena`] the caller lends,
//! which the rewritten message borrows: nothing allocates.

use core::mem::MaybeUninit;

use heapless::String;

use super::appearances::{Appearances, UserLines};
use crate::csta::{DeviceRole, ErrorCode, Event, Request, Response, Text};
use crate::dialplan::{DialPlan, Direction, number_of};
use crate::tel::Number;

/// Room for the identifiers one message's rewriting writes.
pub const ARENA_SIZE: usize = 4096;

/// Longest device identifier read from a message for rewriting.
const MAX_DEVICE: usize = 192;

/// A bump area for rewritten identifiers, borrowed by the message that
/// uses them. Its buffer is not initialised beforehand: zeroing 4 KiB a
/// message (glibc's memset takes `rep stosb` at that size) counted as
/// 4,096 instructions a message under callgrind, a tenth of a request.
pub struct Arena<'s> {
    rest: &'s mut [MaybeUninit<u8>],
}

/// A buffer for an [`Arena`], left uninitialised.
pub fn arena_buffer() -> [MaybeUninit<u8>; ARENA_SIZE] {
    [MaybeUninit::uninit(); ARENA_SIZE]
}

impl<'s> Arena<'s> {
    /// An arena over `buf`.
    pub fn new(buf: &'s mut [MaybeUninit<u8>]) -> Arena<'s> {
        Arena { rest: buf }
    }

    /// The concatenation of `parts`, kept for as long as the arena's
    /// buffer; `None` when it is full.
    #[allow(unsafe_code)]
    fn put(&mut self, parts: &[&str]) -> Option<&'s str> {
        let len = parts.iter().map(|p| p.len()).sum();
        if len > self.rest.len() {
            return None;
        }
        let (used, rest) = core::mem::take(&mut self.rest).split_at_mut(len);
        self.rest = rest;
        let mut at = 0;
        for p in parts {
            for (to, byte) in used[at..at + p.len()].iter_mut().zip(p.bytes()) {
                to.write(byte);
            }
            at += p.len();
        }
        // SAFETY: every byte of `used` was written just above, and
        // MaybeUninit<u8> has the layout of u8.
        let used: &'s [u8] = unsafe { &*(used as *mut [MaybeUninit<u8>] as *const [u8]) };
        core::str::from_utf8(used).ok()
    }
}

/// One message being rewritten into Lync's names.
struct Rewrite<'t> {
    own: Option<Own<'t>>,
    untranslated: u16,
}

impl<'t> Rewrite<'t> {
    fn reported<'s>(&mut self, t: &'t Translation<'_>, text: &mut Text<'s>, arena: &mut Arena<'s>) -> Result<(), ()> {
        let own = self.own.get_or_insert_with(|| t.own());
        self.untranslated += u16::from(!t.reported(own, text, arena));
        Ok(())
    }
}

/// The user's lines and the session's line number, for one message.
struct Own<'a> {
    mine: UserLines<'a>,
    line: Option<Number>,
}

/// What rewriting one session's messages needs.
pub struct Translation<'c> {
    /// The operator's rules.
    pub plan: &'c DialPlan,
    /// The line file.
    pub appearances: &'c Appearances,
    /// The session's user.
    pub user: &'c str,
    /// The session's line as Lync wrote it.
    pub line: &'c str,
}

impl Translation<'_> {
    /// Rewrites Lync's request into the node's names; `Err` is the CSTA
    /// error to answer Lync with instead of relaying.
    pub fn request_to_node<'s>(
        &self,
        request: &mut Request<'s>,
        arena: &mut Arena<'s>,
    ) -> Result<(), ErrorCode<'static>> {
        request.visit_devices(|role, text| {
            let mut scratch = [0u8; MAX_DEVICE];
            let refusal = match role {
                DeviceRole::Controlled | DeviceRole::Reported => ErrorCode::PRIVILEGE_VIOLATION,
                DeviceRole::Called => ErrorCode::INVALID_CALLED_DEVICE,
                DeviceRole::ForwardTo => ErrorCode::INVALID_FORWARDING_DESTINATION,
            };
            let device = text.unescape_into(&mut scratch).map_err(|_| refusal)?;
            let node_name = match role {
                DeviceRole::Controlled | DeviceRole::Reported => {
                    self.appearances.node_device(self.user, device, self.line).ok_or(refusal)?
                }
                DeviceRole::Called | DeviceRole::ForwardTo => {
                    let number = number_of(device).ok_or(refusal)?;
                    let dial = self.plan.apply(Direction::ToNode, &number).ok_or(refusal)?;
                    *text = Text::literal(arena.put(&[&dial]).ok_or(ErrorCode::RESOURCE_BUSY)?);
                    return Ok(());
                }
            };
            *text = Text::literal(arena.put(&[node_name]).ok_or(ErrorCode::RESOURCE_BUSY)?);
            Ok(())
        })
    }

    /// Rewrites a node's answer into Lync's names; returns how many
    /// devices stayed in the node's names because the arena was full.
    pub fn response_to_lync<'s>(&self, response: &mut Response<'s>, arena: &mut Arena<'s>) -> u16 {
        let mut rewrite = Rewrite { own: None, untranslated: 0 };
        let _ = response.visit_devices(|_, text| rewrite.reported(self, text, arena));
        rewrite.untranslated
    }

    /// Rewrites a node's event into Lync's names; returns how many devices
    /// stayed in the node's names because the arena was full.
    pub fn event_to_lync<'s>(&self, event: &mut Event<'s>, arena: &mut Arena<'s>) -> u16 {
        let mut rewrite = Rewrite { own: None, untranslated: 0 };
        let _ = event.visit_devices(|_, text| rewrite.reported(self, text, arena));
        rewrite.untranslated
    }

    /// What tells the user's own end of a call, looked up once a message
    /// (at its first device: many answers have none).
    fn own(&self) -> Own<'_> {
        Own { mine: self.appearances.of_user(self.user), line: Number::parse(self.line).ok() }
    }

    /// One device a node reports, rewritten: the user's own (a device of
    /// theirs carrying the session's line, or the line's number) as the
    /// line Lync wrote; left as it is when it is a name, or when the
    /// arena is full (then `false`).
    fn reported<'s>(&self, own: &Own<'_>, text: &mut Text<'s>, arena: &mut Arena<'s>) -> bool {
        let mut scratch = [0u8; MAX_DEVICE];
        let reported = match text.as_str() {
            Some(plain) => plain,
            None => match text.unescape_into(&mut scratch) {
                Ok(decoded) => decoded,
                Err(_) => return true,
            },
        };
        let line = own.line.as_ref();
        let is_device = line.is_some_and(|l| own.mine.is_device_of(l, reported));
        let rewritten = match number_of(reported) {
            _ if is_device => arena.put(&[self.line]),
            // A colleague's phone by name: the line it carries.
            None => match self.appearances.line_of_device(reported) {
                Some(line) => arena.put(&[line]),
                None => return true,
            },
            Some(number) => {
                let e164 = self.plan.apply(Direction::ToLync, &number).unwrap_or(number);
                let mut uri: String<40> = String::new();
                let _ = uri.push_str("tel:").and_then(|()| uri.push_str(&e164));
                if line.is_some_and(|l| Number::parse(&uri).is_ok_and(|n| l.matches(&n))) {
                    arena.put(&[self.line])
                } else {
                    arena.put(&["tel:", &e164])
                }
            }
        };
        match rewritten {
            Some(rewritten) => {
                *text = Text::literal(rewritten);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csta::{Message, Namespace, parse};
    use crate::dialplan::Rule;
    use crate::outbuf::OutBuf;

    fn plan() -> DialPlan {
        let mut p = DialPlan::new();
        for (d, r) in [
            (Direction::ToNode, "+142555501XX strip=9"),
            (Direction::ToNode, "1XX"),
            (Direction::ToNode, "+1NXXNXXXXXX strip=2 prefix=91"),
            (Direction::ToNode, "+! strip=1 prefix=9011"),
            (Direction::ToLync, "1XX prefix=+14255550"),
            (Direction::ToLync, "91NXXNXXXXXX strip=2 prefix=+1"),
        ] {
            p.push(d, Rule::parse(r).unwrap());
        }
        p
    }

    fn appearances() -> Appearances {
        Appearances::parse(
            "sip:alice@example.com 101 tel:+14255550101;ext=101\n\
             sip:erin@example.com N<+14255550105>;noa=nk tel:+14255550105;ext=105\n",
        )
        .unwrap()
    }

    /// Alice's session on her line as Lync writes it.
    fn alice<'c>(plan: &'c DialPlan, appearances: &'c Appearances) -> Translation<'c> {
        Translation { plan, appearances, user: "sip:alice@example.com", line: "tel:+14255550101;ext=101" }
    }

    fn write(m: &Message<'_>) -> std::string::String {
        let mut buf = [0u8; 4096];
        let mut out = OutBuf::new(&mut buf);
        m.write(Namespace::Ed3, &mut out).unwrap();
        core::str::from_utf8(out.as_bytes()).unwrap().to_string()
    }

    const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";

    fn to_node(t: &Translation<'_>, xml: &str) -> Result<std::string::String, ErrorCode<'static>> {
        let doc = parse(xml.as_bytes()).unwrap();
        let Message::Request(request) = doc.message else { panic!() };
        let mut buf = arena_buffer();
        let mut arena = Arena::new(&mut buf);
        let mut r = request;
        t.request_to_node(&mut r, &mut arena)?;
        Ok(write(&Message::Request(r)))
    }

    #[test]
    fn a_make_call_in_the_nodes_names() {
        let (plan, apps) = (plan(), appearances());
        let alice = alice(&plan, &apps);
        let make_call = |called: &str| {
            format!(
                "<MakeCall xmlns=\"{NS}\"><callingDevice>tel:+14255550101;ext=101</callingDevice>\
                 <calledDirectoryNumber>{called}</calledDirectoryNumber></MakeCall>"
            )
        };
        let sent = to_node(&alice, &make_call("tel:+14255559876")).unwrap();
        assert!(sent.contains("<callingDevice>101</callingDevice>"), "{sent}");
        assert!(sent.contains("<calledDirectoryNumber>914255559876</calledDirectoryNumber>"), "{sent}");
        let sent = to_node(&alice, &make_call("tel:+3222220220")).unwrap();
        assert!(sent.contains("<calledDirectoryNumber>90113222220220</calledDirectoryNumber>"), "{sent}");
        assert_eq!(to_node(&alice, &make_call("tel:555")), Err(ErrorCode::INVALID_CALLED_DEVICE), "no rule");
        assert_eq!(to_node(&alice, &make_call("sip:bob@example.com")), Err(ErrorCode::INVALID_CALLED_DEVICE));
        let erin = Translation {
            plan: &plan,
            appearances: &apps,
            user: "sip:erin@example.com",
            line: "tel:+14255550105;ext=105",
        };
        let monitor = format!(
            "<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>tel:105</deviceObject></monitorObject></MonitorStart>"
        );
        let sent = to_node(&erin, &monitor).unwrap();
        assert!(sent.contains("<deviceObject>N&lt;+14255550105&gt;;noa=nk</deviceObject>"), "{sent}");
    }

    #[test]
    fn an_event_in_lyncs_names() {
        let (plan, apps) = (plan(), appearances());
        let line = "tel:+14255550105;EXT=105"; // Lync's own spelling, kept byte for byte
        let erin = Translation { plan: &plan, appearances: &apps, user: "sip:erin@example.com", line };
        let xml = format!(
            "<DeliveredEvent xmlns=\"{NS}\"><monitorCrossRefID>4711</monitorCrossRefID><connection><callID>C-1</callID>\
             <deviceID>N&lt;+14255550105&gt;;displayNumber=+14255550105;noa=nk</deviceID></connection><alertingDevice>\
             <deviceIdentifier>N&lt;+14255550105&gt;;noa=nk</deviceIdentifier></alertingDevice><callingDevice>\
             <deviceIdentifier>N&lt;914255559876&gt;;noa=nk</deviceIdentifier></callingDevice><calledDevice>\
             <deviceIdentifier>105</deviceIdentifier></calledDevice><lastRedirectionDevice><notKnown/>\
             </lastRedirectionDevice><localConnectionInfo>alerting</localConnectionInfo><cause>newCall</cause>\
             </DeliveredEvent>"
        );
        let doc = parse(xml.as_bytes()).unwrap();
        let Message::Event(mut event) = doc.message else { panic!() };
        let mut buf = arena_buffer();
        let mut arena = Arena::new(&mut buf);
        erin.event_to_lync(&mut event, &mut arena);
        let sent = write(&Message::Event(event));
        assert!(sent.contains("<callID>C-1</callID><deviceID>tel:+14255550105;EXT=105</deviceID>"), "{sent}");
        assert!(
            sent.contains("<alertingDevice><deviceIdentifier>tel:+14255550105;EXT=105</deviceIdentifier>"),
            "{sent}"
        );
        assert!(sent.contains("<callingDevice><deviceIdentifier>tel:+14255559876</deviceIdentifier>"), "{sent}");
        assert!(
            sent.contains("<calledDevice><deviceIdentifier>tel:+14255550105;EXT=105</deviceIdentifier>"),
            "own, by number: {sent}"
        );
        assert!(sent.contains("<monitorCrossRefID>4711</monitorCrossRefID>"));
    }

    #[test]
    fn names_pass_and_a_full_arena_leaves_devices_as_they_are() {
        let (plan, apps) = (plan(), appearances());
        let alice = alice(&plan, &apps);
        let xml = format!(
            "<MakeCallResponse xmlns=\"{NS}\"><callingDevice><callID>C-7</callID><deviceID>101</deviceID>\
             </callingDevice></MakeCallResponse>"
        );
        let doc = parse(xml.as_bytes()).unwrap();
        let Message::Response(response) = doc.message else { panic!() };
        let mut buf = arena_buffer();
        let mut r = response.clone();
        alice.response_to_lync(&mut r, &mut Arena::new(&mut buf));
        assert!(write(&Message::Response(r)).contains("<deviceID>tel:+14255550101;ext=101</deviceID>"));
        let mut tiny = [MaybeUninit::uninit(); 4];
        let mut r = response.clone();
        assert_eq!(alice.response_to_lync(&mut r, &mut Arena::new(&mut tiny)), 1, "one device left as it was");
        assert!(write(&Message::Response(r)).contains("<deviceID>101</deviceID>"));
        let xml = xml.replace(">101<", ">Reception Desk<");
        let doc = parse(xml.as_bytes()).unwrap();
        let Message::Response(mut r) = doc.message else { panic!() };
        alice.response_to_lync(&mut r, &mut Arena::new(&mut buf));
        assert!(write(&Message::Response(r)).contains("<deviceID>Reception Desk</deviceID>"));
    }
}
