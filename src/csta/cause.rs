//! The event causes (ECMA-323 EventCause) the gateway and its simulator
//! use. Causes are kept as text in events, since the standard defines
//! over a hundred; these are the ones a call-control flow produces.

use super::text::Text;

/// `normal`: the expected outcome.
pub const NORMAL: Text<'static> = Text::literal("normal");
/// `newCall`: a call was created.
pub const NEW_CALL: Text<'static> = Text::literal("newCall");
/// `makeCall`: a call was created by MakeCall.
pub const MAKE_CALL: Text<'static> = Text::literal("makeCall");
/// `normalClearing`: a party hung up.
pub const NORMAL_CLEARING: Text<'static> = Text::literal("normalClearing");
/// `busy`: the called party is busy.
pub const BUSY: Text<'static> = Text::literal("busy");
/// `callNotAnswered`: the called party did not answer in time.
pub const CALL_NOT_ANSWERED: Text<'static> = Text::literal("callNotAnswered");
/// `destNotObtainable`: the number cannot be reached.
pub const DEST_NOT_OBTAINABLE: Text<'static> = Text::literal("destNotObtainable");
/// `consultation`: a consultation call was made.
pub const CONSULTATION: Text<'static> = Text::literal("consultation");
/// `transfer`: the call was transferred.
pub const TRANSFER: Text<'static> = Text::literal("transfer");
/// `singleStepTransfer`: the call was transferred in one step.
pub const SINGLE_STEP_TRANSFER: Text<'static> = Text::literal("singleStepTransfer");
/// `conference`: the calls were joined into a conference.
pub const CONFERENCE: Text<'static> = Text::literal("conference");
/// `alternate`: the calls were swapped.
pub const ALTERNATE: Text<'static> = Text::literal("alternate");
/// `redirected`: the call was deflected.
pub const REDIRECTED: Text<'static> = Text::literal("redirected");
/// `callForwardImmediate`: the call was forwarded unconditionally.
pub const CALL_FORWARD_IMMEDIATE: Text<'static> = Text::literal("callForwardImmediate");
/// `doNotDisturb`: the called party has do-not-disturb on.
pub const DO_NOT_DISTURB: Text<'static> = Text::literal("doNotDisturb");
