//! Session timers as RFC 4028 has the UAS negotiate them (section 9): what
//! the 2xx to an INVITE, re-INVITE or UPDATE says, and who refreshes.
//!
//! - No Session-Expires in the request: no timer (the UAS may add one; the
//!   gateway does not, so a client that asks for none gets none).
//! - The UAC supports timers (`Supported: timer`): an interval below the
//!   gateway's minimum is refused with 422 and Min-SE; otherwise the
//!   refresher is the one the request names, else the UAC (Lync clients
//!   refresh by re-INVITE before expiry, e.g. pidgin-sipe's uaCSTA code at
//!   expiry minus 60 s); `Require: timer` goes in the 2xx.
//! - The UAC does not (a proxy put Session-Expires in): the refresher must
//!   be the UAS, an interval below the minimum is raised to it (RFC 4028
//!   erratum 1687: a 422 would only fail the call), and no `Require`.
//!
//! The side that does not refresh ends the session slightly before it
//! expires: at the interval less the smaller of 32 s and a third of it
//! (section 10). The refresher refreshes at half the interval.

use std::time::Duration;

/// The smallest session interval accepted (RFC 4028's floor, 90 s).
pub const MIN_SE: u32 = 90;

/// Who refreshes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// Lync (the UAC of the INVITE).
    Uac,
    /// The gateway.
    Uas,
}

impl Refresher {
    /// The `refresher` parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// What a request says about session timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Asked {
    /// `Supported: timer` (or `Require: timer`).
    pub supported: bool,
    /// Session-Expires' delta-seconds.
    pub interval: Option<u32>,
    /// Session-Expires' `refresher` parameter.
    pub refresher: Option<Refresher>,
    /// Min-SE.
    pub min_se: Option<u32>,
}

/// A session timer in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// The session interval, in seconds.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
}

impl Timer {
    /// When, after a refresh, the gateway acts: sends its own refresh (it
    /// is the refresher: at half the interval) or ends the session (Lync
    /// is: slightly before expiry).
    pub fn due_after(&self) -> Duration {
        let interval = u64::from(self.interval);
        Duration::from_secs(match self.refresher {
            Refresher::Uas => interval / 2,
            Refresher::Uac => interval - (interval / 3).min(32),
        })
    }
}

/// The UAS's answer to what a request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    /// No session timer.
    None,
    /// A timer: the 2xx carries `Session-Expires: interval;refresher=..`,
    /// `Require: timer` when `require`, and Min-SE when `min_se` says so.
    Timer {
        /// The timer.
        timer: Timer,
        /// `Require: timer` in the 2xx.
        require: bool,
        /// A Min-SE for the 2xx: the interval was raised to it.
        min_se: Option<u32>,
    },
    /// 422 Session Interval Too Small, with this Min-SE.
    TooSmall(u32),
}

impl Negotiated {
    /// The timer in force after this answer.
    pub fn timer(&self) -> Option<Timer> {
        match *self {
            Negotiated::Timer { timer, .. } => Some(timer),
            Negotiated::None | Negotiated::TooSmall(_) => None,
        }
    }
}

/// RFC 4028 section 9, for a UAS whose own minimum is [`MIN_SE`].
pub fn negotiate(asked: &Asked) -> Negotiated {
    let Some(interval) = asked.interval else { return Negotiated::None };
    let floor = MIN_SE.max(asked.min_se.unwrap_or(0));
    if asked.supported {
        if interval < MIN_SE {
            return Negotiated::TooSmall(MIN_SE);
        }
        let refresher = asked.refresher.unwrap_or(Refresher::Uac);
        return Negotiated::Timer { timer: Timer { interval, refresher }, require: true, min_se: None };
    }
    let raised = interval < floor;
    let timer = Timer { interval: interval.max(floor), refresher: Refresher::Uas };
    Negotiated::Timer { timer, require: false, min_se: raised.then_some(floor) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(supported: bool, interval: Option<u32>, refresher: Option<Refresher>) -> Asked {
        Asked { supported, interval, refresher, min_se: None }
    }

    #[test]
    fn table_2_of_rfc_4028() {
        use Refresher::*;
        let timer = |interval, refresher, require| Negotiated::Timer {
            timer: Timer { interval, refresher },
            require,
            min_se: None,
        };
        // The UAC supports timers: its choice, or the UAC when it made none.
        assert_eq!(negotiate(&asked(true, Some(1800), None)), timer(1800, Uac, true));
        assert_eq!(negotiate(&asked(true, Some(1800), Some(Uac))), timer(1800, Uac, true));
        assert_eq!(negotiate(&asked(true, Some(1800), Some(Uas))), timer(1800, Uas, true));
        // It does not (a proxy asked): the UAS refreshes, nothing required.
        assert_eq!(negotiate(&asked(false, Some(1800), None)), timer(1800, Uas, false));
        assert_eq!(negotiate(&asked(false, Some(1800), Some(Uac))), timer(1800, Uas, false));
        // No Session-Expires: no timer, with or without support.
        assert_eq!(negotiate(&asked(true, None, None)), Negotiated::None);
        assert_eq!(negotiate(&asked(false, None, None)), Negotiated::None);
    }

    #[test]
    fn intervals_below_the_minimum() {
        assert_eq!(negotiate(&asked(true, Some(60), None)), Negotiated::TooSmall(90));
        // Without support a 422 would fail the call: raised instead.
        let raised = negotiate(&Asked { supported: false, interval: Some(60), refresher: None, min_se: Some(120) });
        assert_eq!(
            raised,
            Negotiated::Timer {
                timer: Timer { interval: 120, refresher: Refresher::Uas },
                require: false,
                min_se: Some(120)
            }
        );
        assert_eq!(
            negotiate(&asked(true, Some(90), None)),
            Negotiated::Timer { timer: Timer { interval: 90, refresher: Refresher::Uac }, require: true, min_se: None }
        );
    }

    #[test]
    fn when_the_gateway_acts() {
        let uas = Timer { interval: 1800, refresher: Refresher::Uas };
        assert_eq!(uas.due_after(), Duration::from_secs(900), "half the interval");
        let uac = Timer { interval: 1800, refresher: Refresher::Uac };
        assert_eq!(uac.due_after(), Duration::from_secs(1768), "32 s before expiry");
        let short = Timer { interval: 90, refresher: Refresher::Uac };
        assert_eq!(short.due_after(), Duration::from_secs(60), "a third before expiry");
    }
}
