//! SIP transactions (RFC 3261 section 17), sans I/O: the gateway's own
//! requests until their final response (client transactions, Timers E
//! and F), and final responses kept to answer retransmissions of their
//! request (server transactions; an INVITE's 2xx also sent again until its
//! ACK, section 13.3.1.4).
//!
//! The layer knows peers, bytes and time, and its owner's opaque data
//! (`C` for a client transaction, `S` for a kept response); nothing of
//! CSTA or of sessions. It never touches a socket or a clock: the owner
//! writes a request into [`Transactions::open_client`]'s buffer, sends
//! what [`Transactions::start_client`] and [`Transactions::handle_timeout`]
//! hand back, and hears from the latter what happened ([`Happened`]).
//! Every table is sized at boot. The deadlines live in a fixed [`Timers`]
//! table, one place per client transaction and kind and one per kept
//! response for its retransmissions; kept responses all live [`LIFETIME`]
//! from when they were kept, so they expire in the order they were kept
//! and their expiries are read off that order, with no table work.

mod timers;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use timers::Timers;

use crate::index::{Index, hash};
use crate::outbuf::{OutBuf, Overflow};
use crate::pool::{Handle, Pool};
use crate::sip::Message;
use crate::store::{ByteStore, Span, Usage};
use crate::transport::{Peer, Transport};

/// The granule of the message stores: a message takes a multiple of it.
pub const MESSAGE_GRANULE: usize = 64;

/// RFC 3261 T1: the round-trip estimate retransmissions start from.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the longest retransmission interval.
pub const T2: Duration = Duration::from_secs(4);
/// 64*T1: how long a client transaction waits for its final response
/// (Timer F) and how long a final response is kept (Timer J).
pub const LIFETIME: Duration = Duration::from_millis(64 * 500);
/// The branch prefix of the gateway's own requests (RFC 3261's magic
/// cookie, then ours); the rest names the transaction.
pub const BRANCH: &str = "z9hG4bKgw";

/// The key a kept response is found by: the request's top Via branch,
/// its method and its source (RFC 3261 section 17.2.3 matching).
pub fn server_key(m: &Message<'_>, from: &Peer) -> Option<u64> {
    let via = m.via().ok()?;
    let branch = via.branch()?;
    let method = m.cseq().ok()?.method;
    let (v4, v6);
    let ip: &[u8] = match from.addr.ip() {
        IpAddr::V4(ip) => {
            v4 = ip.octets();
            &v4
        }
        IpAddr::V6(ip) => {
            v6 = ip.octets();
            &v6
        }
    };
    Some(hash(&[branch.as_bytes(), method.as_bytes(), ip, &from.addr.port().to_be_bytes()], false))
}

/// A message the layer may send again: where to, where its bytes are in
/// the layer's store, and the retransmission interval (T1, doubling up
/// to T2).
struct Stored {
    to: Peer,
    span: Span,
    interval: Duration,
}

impl Stored {
    fn new() -> Stored {
        Stored { to: Peer::unspecified(), span: Span::default(), interval: T1 }
    }

    /// Doubles the interval, up to T2, and returns it.
    fn back_off(&mut self) -> Duration {
        self.interval = (self.interval * 2).min(T2);
        self.interval
    }
}

/// One of the owner's requests, from its writing to its final response.
pub struct ClientTx<C> {
    message: Stored,
    started: bool,
    /// The owner's data.
    pub owner: C,
}

impl<C> ClientTx<C> {
    /// Where the request goes.
    pub fn to(&self) -> Peer {
        self.message.to
    }

    /// True once [`Transactions::start_client`] sent it: its timers run.
    pub fn is_started(&self) -> bool {
        self.started
    }
}

/// A final response kept for retransmissions of its request.
struct ServerTx<S> {
    key: u64,
    /// When it is forgotten (Timer J): [`LIFETIME`] after it was kept.
    expires_at: Instant,
    message: Stored,
    /// An INVITE 2xx not yet acknowledged.
    awaiting_ack: bool,
    owner: Option<S>,
}

/// Which of a transaction's two deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The next retransmission (Timer E; an INVITE 2xx's Timer G).
    Retransmit = 0,
    /// The end of its life (Timer F; a kept response's Timer J).
    Expire = 1,
}

/// What a passed deadline did.
#[derive(Debug, PartialEq, Eq)]
pub enum Happened<'a, C, S> {
    /// Send these bytes again.
    Retransmit {
        /// Where to.
        to: Peer,
        /// The message.
        bytes: &'a [u8],
    },
    /// A started client transaction got no final response within
    /// [`LIFETIME`] (Timer F). It stays in the table, inert, until the
    /// owner closes it.
    TimedOut {
        /// The transaction.
        id: Handle,
        /// Its owner's data.
        owner: C,
    },
    /// A kept response's time is up; it is gone.
    Expired {
        /// Its owner's data, if it had any.
        owner: Option<S>,
        /// An INVITE 2xx whose ACK never came: the dialog is dead (RFC
        /// 3261 section 13.3.1.4).
        unacknowledged: bool,
    },
}

/// Why [`Transactions::open_client`] opened nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Every client transaction is in use, or the message store has no
    /// room for the request.
    Full,
    /// The request did not fit the message size.
    TooLarge,
}

/// What a response names, as [`Transactions::match_response`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMatch {
    /// One of the owner's requests, from where it went, for its dialog and CSeq.
    Matched(Handle),
    /// No request of the owner's (a branch not ours, or one that is over).
    Unknown,
    /// A branch of ours from elsewhere, or for another Call-ID or CSeq: a
    /// guessed branch changes nothing.
    Mismatched,
}

/// The client and server transactions, their messages and deadlines.
pub struct Transactions<C, S> {
    client: Pool<ClientTx<C>>,
    server: Pool<ServerTx<S>>,
    /// Kept responses by [`server_key`].
    server_index: Index,
    /// Every kept response, oldest first. All live [`LIFETIME`] from when
    /// they were kept, so this is also the order they expire in: the
    /// earliest expiry is the front's, and their expiries need no place
    /// in `timers`. When the table is full the oldest makes room, since a
    /// retransmission is likelier for a response just sent.
    server_order: VecDeque<Handle>,
    /// The client transactions' deadlines (two places each) and the
    /// retransmissions of INVITE 2xx responses (one place per kept response).
    timers: Timers,
    evicted: u64,
    /// The bytes of every request and kept response.
    store: ByteStore,
    /// Where a request is written before it takes its exact size in `store`.
    scratch: Box<[u8]>,
}

impl<C: Copy + Default, S: Copy> Transactions<C, S> {
    /// Room for `clients` client transactions and `servers` kept
    /// responses, each message of at most `message_size` bytes, all of
    /// them in a store of `store_bytes`.
    pub fn new(
        now: Instant,
        clients: usize,
        servers: usize,
        message_size: usize,
        store_bytes: usize,
    ) -> Transactions<C, S> {
        Transactions {
            client: Pool::new(clients, || ClientTx { message: Stored::new(), started: false, owner: C::default() }),
            server: Pool::new(servers, move || ServerTx {
                key: 0,
                expires_at: now,
                message: Stored::new(),
                awaiting_ack: false,
                owner: None,
            }),
            server_index: Index::new(servers),
            server_order: VecDeque::with_capacity(servers),
            timers: Timers::new(2 * clients + servers),
            evicted: 0,
            store: ByteStore::new(store_bytes, MESSAGE_GRANULE),
            scratch: vec![0; message_size].into_boxed_slice(),
        }
    }

    /// Where the bytes of a layer of `clients` client transactions and
    /// `servers` kept responses go: what, how many, the bytes of each.
    pub fn budget(
        clients: usize,
        servers: usize,
        message_size: usize,
        store_bytes: usize,
    ) -> [(&'static str, usize, usize); 4] {
        [
            ("client transactions (the gateway's requests)", clients, Pool::<ClientTx<C>>::entry_footprint()),
            ("kept responses, their order and index", servers, Pool::<ServerTx<S>>::entry_footprint() + 8 + 16),
            ("transaction deadlines", 2 * clients + servers, size_of::<Option<Instant>>() + 8),
            (
                "transaction store (requests and kept responses), bitmap, scratch",
                1,
                ByteStore::footprint(store_bytes, MESSAGE_GRANULE) + message_size,
            ),
        ]
    }

    /// True when three quarters of the client transactions or of the
    /// message store are taken: time to refuse new work before requests
    /// would have to be dropped.
    pub fn clients_backlogged(&self) -> bool {
        self.client.len() * 4 >= self.client.capacity() * 3 || self.store.in_use() * 4 >= self.store.capacity() * 3
    }

    /// What the message store holds.
    pub fn store_usage(&self) -> Usage {
        self.store.usage()
    }

    fn client_place(&self, h: Handle, kind: Kind) -> usize {
        2 * h.index as usize + kind as usize
    }

    fn server_place(&self, h: Handle) -> usize {
        2 * self.client.capacity() + h.index as usize
    }

    // ----- client transactions -----

    /// Opens a client transaction for a request to `to`, which `write`
    /// writes into its buffer given the transaction's Via branch; it is
    /// sent by [`Transactions::start_client`].
    pub fn open_client(
        &mut self,
        to: Peer,
        owner: C,
        write: impl FnOnce(&mut [u8], &str) -> Result<usize, Overflow>,
    ) -> Result<Handle, OpenError> {
        let (h, _) = self.client.alloc().ok_or(OpenError::Full)?;
        let mut branch = [0u8; 40];
        let mut b = OutBuf::new(&mut branch);
        let _ = write!(b, "{BRANCH}{:x}", h.pack());
        let branch = core::str::from_utf8(b.as_bytes()).unwrap_or(BRANCH);
        let Ok(len) = write(&mut self.scratch, branch) else {
            self.client.free(h);
            return Err(OpenError::TooLarge);
        };
        // The owner's requests come first: kept responses (only there for
        // retransmissions) make room, oldest first.
        let span = loop {
            if let Some(span) = self.store.put(&[&self.scratch[..len]]) {
                break span;
            }
            if !self.evict_oldest() {
                self.client.free(h);
                return Err(OpenError::Full);
            }
        };
        let c = self.client.get_mut(h).expect("just taken");
        c.message.span = span;
        c.message.to = to;
        c.started = false;
        c.owner = owner;
        Ok(h)
    }

    /// Starts the timers of client transaction `h` (F, and E over UDP)
    /// and returns what to send now.
    pub fn start_client(&mut self, now: Instant, h: Handle) -> Option<(Peer, &[u8])> {
        let (retransmit, expire) = (self.client_place(h, Kind::Retransmit), self.client_place(h, Kind::Expire));
        let c = self.client.get_mut(h)?;
        c.started = true;
        c.message.interval = T1;
        let reliable = c.message.to.transport.is_reliable();
        self.timers.set(expire, Some(now + LIFETIME));
        self.timers.set(retransmit, (!reliable).then_some(now + T1));
        let c = self.client.get(h)?;
        Some((c.message.to, self.store.get(c.message.span)))
    }

    /// Client transaction `h` could not be sent after all (no room to
    /// send it): its timers stop until [`Transactions::start_client`]
    /// starts it again.
    pub fn hold_client(&mut self, h: Handle) {
        let Some(c) = self.client.get_mut(h) else { return };
        c.started = false;
        self.timers.set(self.client_place(h, Kind::Retransmit), None);
        self.timers.set(self.client_place(h, Kind::Expire), None);
    }

    /// Client transaction `h`, if it is still open.
    pub fn client(&self, h: Handle) -> Option<&ClientTx<C>> {
        self.client.get(h)
    }

    /// Client transaction `h`, for its owner's data.
    pub fn client_mut(&mut self, h: Handle) -> Option<&mut ClientTx<C>> {
        self.client.get_mut(h)
    }

    /// The client transaction at `index` of the table, if one is open there.
    pub fn client_at(&self, index: u32) -> Option<Handle> {
        self.client.handle_at(index)
    }

    /// Ends client transaction `h`: its timers stop, its place is free.
    pub fn close_client(&mut self, h: Handle) {
        if self.client.get(h).is_none() {
            return;
        }
        self.timers.set(self.client_place(h, Kind::Retransmit), None);
        self.timers.set(self.client_place(h, Kind::Expire), None);
        let span = self.client.get(h).map(|c| c.message.span).unwrap_or_default();
        self.store.free(span);
        self.client.free(h);
    }

    /// Client transactions open.
    pub fn client_count(&self) -> usize {
        self.client.len()
    }

    /// How many client transactions the table holds.
    pub fn client_capacity(&self) -> usize {
        self.client.capacity()
    }

    /// Which client transaction the response `m` from `from` answers:
    /// its branch names one, it comes from where the request went (the
    /// same connection; over UDP the same host) and it names the request's
    /// Call-ID and CSeq.
    pub fn match_response(&self, from: Peer, m: &Message<'_>) -> ResponseMatch {
        let Some(h) = m
            .via()
            .ok()
            .and_then(|v| v.branch())
            .and_then(|b| b.strip_prefix(BRANCH))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(Handle::unpack)
        else {
            return ResponseMatch::Unknown;
        };
        let Some(c) = self.client.get(h) else { return ResponseMatch::Unknown };
        let sent = &c.message;
        let same_peer = match sent.to.transport {
            Transport::Udp => from.transport == Transport::Udp && sent.to.addr.ip() == from.addr.ip(),
            _ => sent.to == from,
        };
        let same_request = Message::parse(self.store.get(sent.span)).is_ok_and(|request| {
            request.call_id().ok() == m.call_id().ok()
                && request.cseq().ok().map(|c| c.number) == m.cseq().ok().map(|c| c.number)
        });
        if same_peer && same_request { ResponseMatch::Matched(h) } else { ResponseMatch::Mismatched }
    }

    // ----- server transactions: kept responses -----

    /// The response kept for the request `key` names, to send again.
    pub fn kept(&self, key: u64) -> Option<(Peer, &[u8])> {
        let h = self.server_index.candidates(key).find_map(|i| {
            let h = self.server.handle_at(i)?;
            (self.server.get(h)?.key == key).then_some(h)
        })?;
        let s = self.server.get(h)?;
        Some((s.message.to, self.store.get(s.message.span)))
    }

    /// Keeps `bytes`, the final response sent to `to`, for [`LIFETIME`]
    /// as the answer to retransmissions of the request `key` names. With
    /// an `owner` (an INVITE's 2xx) it is also sent again over UDP until
    /// [`Transactions::acknowledged`]. A full table, or a store without
    /// room for it, makes room with the oldest ([`Transactions::evicted`]).
    pub fn keep(&mut self, now: Instant, key: u64, to: Peer, bytes: &[u8], owner: Option<S>) -> Option<Handle> {
        if bytes.len() > self.scratch.len() {
            return None;
        }
        let span = loop {
            if self.server.len() < self.server.capacity() {
                if let Some(span) = self.store.put(&[bytes]) {
                    break span;
                }
            }
            if !self.evict_oldest() {
                return None;
            }
        };
        // Never earlier than the one kept before it: the order stays the
        // order of expiry.
        let after = self.server_order.back().and_then(|&h| self.server.get(h)).map(|s| s.expires_at);
        let expires_at = after.map_or(now + LIFETIME, |after| after.max(now + LIFETIME));
        let (h, _) = self.server.alloc()?;
        let retransmit = self.server_place(h);
        let s = self.server.get_mut(h).expect("just taken");
        s.message.span = span;
        s.message.to = to;
        s.message.interval = T1;
        s.key = key;
        s.expires_at = expires_at;
        s.owner = owner;
        s.awaiting_ack = owner.is_some() && !to.transport.is_reliable();
        let awaiting_ack = s.awaiting_ack;
        self.server_order.push_back(h);
        self.server_index.insert(key, h.index);
        self.timers.set(retransmit, awaiting_ack.then_some(now + T1));
        Some(h)
    }

    /// The ACK for the 2xx kept as `h` came (or its dialog ended): it is
    /// not sent again, and its expiry reports no missing ACK.
    pub fn acknowledged(&mut self, h: Handle) {
        let place = self.server_place(h);
        if let Some(s) = self.server.get_mut(h) {
            s.awaiting_ack = false;
            self.timers.set(place, None);
        }
    }

    /// Kept responses.
    pub fn server_count(&self) -> usize {
        self.server.len()
    }

    /// How many responses the table keeps.
    pub fn server_capacity(&self) -> usize {
        self.server.capacity()
    }

    /// Kept responses that made room for newer ones before their time
    /// was up (the table was full).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Forgets the oldest kept response to make room ([`Transactions::evicted`]);
    /// false when none is kept.
    fn evict_oldest(&mut self) -> bool {
        let Some(oldest) = self.server_order.pop_front() else { return false };
        self.forget_server(oldest);
        self.evicted += 1;
        true
    }

    /// Forgets kept response `h`, just taken off the front of `server_order`.
    fn forget_server(&mut self, h: Handle) {
        let Some(s) = self.server.get(h) else { return };
        self.server_index.remove(s.key, h.index);
        self.timers.set(self.server_place(h), None);
        self.store.free(s.message.span);
        self.server.free(h);
    }

    /// When the oldest kept response expires.
    fn next_expiry(&self) -> Option<Instant> {
        self.server_order.front().and_then(|&h| self.server.get(h)).map(|s| s.expires_at)
    }

    // ----- time -----

    /// When [`Transactions::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let table = self.timers.next().map(|(at, _)| at);
        match (table, self.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing due by `now`, done; `None` when nothing is. Call
    /// until `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Happened<'_, C, S>> {
        let table = self.timers.next();
        if self.next_expiry().is_some_and(|at| at <= now && table.is_none_or(|(next, _)| at <= next)) {
            let h = self.server_order.pop_front().expect("it has an expiry");
            let s = self.server.get(h).expect("the order holds live ones only");
            let (owner, unacknowledged) = (s.owner, s.awaiting_ack);
            self.forget_server(h);
            return Some(Happened::Expired { owner, unacknowledged });
        }
        let (_, place) = table.filter(|(at, _)| *at <= now)?;
        self.timers.set(place, None);
        if place < 2 * self.client.capacity() {
            let kind = if place % 2 == 0 { Kind::Retransmit } else { Kind::Expire };
            let index = place / 2;
            let h = self.client.handle_at(index as u32).expect("a client deadline is cleared when it closes");
            let other = self.client_place(h, Kind::Retransmit);
            let c = self.client.get_mut(h).expect("just found");
            match kind {
                Kind::Retransmit => {
                    let next = c.message.back_off();
                    self.timers.set(place, Some(now + next));
                    let c = self.client.get(h).expect("just found");
                    Some(Happened::Retransmit { to: c.message.to, bytes: self.store.get(c.message.span) })
                }
                Kind::Expire => {
                    let owner = c.owner;
                    self.timers.set(other, None);
                    Some(Happened::TimedOut { id: h, owner })
                }
            }
        } else {
            // An INVITE 2xx not yet acknowledged: sent again (Timer G).
            let h = self
                .server
                .handle_at((place - 2 * self.client.capacity()) as u32)
                .expect("a kept response's deadline is cleared when it goes");
            let s = self.server.get_mut(h).expect("just found");
            let next = s.message.back_off();
            self.timers.set(place, Some(now + next));
            let s = self.server.get(h).expect("just found");
            Some(Happened::Retransmit { to: s.message.to, bytes: self.store.get(s.message.span) })
        }
    }
}

#[cfg(test)]
mod tests;
