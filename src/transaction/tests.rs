//! The transaction layer on a fake clock: each test steps the clock to the
//! layer's next deadline and records what happened then, so the RFC 3261
//! schedules are checked to the millisecond.

use std::time::{Duration, Instant};

use super::*;
use crate::rcc::ConnId;

/// A client transaction's owner data in these tests: a number.
type Layer = Transactions<u32, u32>;

fn udp(port: u16) -> Peer {
    Peer { addr: ([127, 0, 0, 1], port).into(), transport: Transport::Udp }
}

fn tcp() -> Peer {
    Peer { addr: ([127, 0, 0, 1], 5070).into(), transport: Transport::Tcp(ConnId(7)) }
}

/// What happened, owned, with the time since the start in milliseconds.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Retransmit(u64),
    TimedOut(u64, u32),
    Expired(u64, Option<u32>, bool),
}

/// Steps the clock from deadline to deadline up to `until` after `t0`.
fn run(layer: &mut Layer, t0: Instant, until: Duration) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some(at) = layer.poll_timeout().filter(|&at| at <= t0 + until) {
        let ms = (at - t0).as_millis() as u64;
        while let Some(happened) = layer.handle_timeout(at) {
            seen.push(match happened {
                Happened::Retransmit { .. } => Seen::Retransmit(ms),
                Happened::TimedOut { owner, .. } => Seen::TimedOut(ms, owner),
                Happened::Expired { owner, unacknowledged } => Seen::Expired(ms, owner, unacknowledged),
            });
        }
    }
    seen
}

fn info(branch: &str, cseq: u32) -> String {
    format!(
        "INFO sip:alice@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP gw:5060;branch={branch}\r\n\
         From: <sip:gw>;tag=gw1\r\nTo: <sip:alice@example.com>;tag=a1\r\nCall-ID: c1\r\n\
         CSeq: {cseq} INFO\r\nContent-Length: 0\r\n\r\n"
    )
}

fn open(layer: &mut Layer, to: Peer, owner: u32) -> Handle {
    layer
        .open_client(to, owner, |buf, branch| {
            let text = info(branch, 7);
            buf[..text.len()].copy_from_slice(text.as_bytes());
            Ok(text.len())
        })
        .unwrap()
}

#[test]
fn a_request_over_udp_is_sent_again_at_t1_doubling_to_t2_until_timer_f() {
    let mut layer = Layer::new(Instant::now(), 4, 4, 1024, 16 * 1024);
    let t0 = Instant::now();
    let h = open(&mut layer, udp(5070), 42);
    assert!(!layer.client(h).unwrap().is_started());
    assert_eq!(layer.poll_timeout(), None, "no timer runs before the request is sent");
    let (to, bytes) = layer.start_client(t0, h).unwrap();
    assert_eq!(to, udp(5070));
    assert!(bytes.starts_with(b"INFO "));
    let seen = run(&mut layer, t0, Duration::from_secs(40));
    // Timer E: 0.5, 1, 2, 4, then every 4 s (T2); Timer F at 64*T1 = 32 s.
    let mut expected: Vec<Seen> =
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500].map(Seen::Retransmit).into();
    expected.push(Seen::TimedOut(32_000, 42));
    assert_eq!(seen, expected);
    // Timed out, it stays until its owner closes it, and does nothing more.
    assert_eq!(layer.client_count(), 1);
    layer.close_client(h);
    assert_eq!(layer.client_count(), 0);
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn a_request_over_tcp_is_never_sent_again_and_times_out() {
    let mut layer = Layer::new(Instant::now(), 4, 4, 1024, 16 * 1024);
    let t0 = Instant::now();
    let h = open(&mut layer, tcp(), 1);
    layer.start_client(t0, h).unwrap();
    assert_eq!(run(&mut layer, t0, Duration::from_secs(60)), [Seen::TimedOut(32_000, 1)]);
}

#[test]
fn a_closed_transaction_leaves_no_timer_behind() {
    let mut layer = Layer::new(Instant::now(), 2, 2, 1024, 16 * 1024);
    let t0 = Instant::now();
    let h = open(&mut layer, udp(5070), 1);
    layer.start_client(t0, h).unwrap();
    layer.close_client(h);
    assert_eq!(layer.poll_timeout(), None);
    assert!(layer.client(h).is_none());
    layer.close_client(h); // twice: nothing
    // Its place serves the next one, with a fresh schedule.
    let next = open(&mut layer, udp(5070), 2);
    layer.start_client(t0 + Duration::from_secs(1), next).unwrap();
    assert_eq!(run(&mut layer, t0, Duration::from_millis(1500)), [Seen::Retransmit(1500)]);
}

#[test]
fn a_full_client_table_and_a_request_too_large_are_refused() {
    let mut layer = Layer::new(Instant::now(), 1, 1, 64, 1024);
    let write = |buf: &mut [u8], _: &str| buf.get_mut(..100).map(|_| 100).ok_or(Overflow);
    assert_eq!(layer.open_client(udp(1), 0, write), Err(OpenError::TooLarge));
    assert_eq!(layer.client_count(), 0, "the refused one took no place");
    let _ = layer.open_client(udp(1), 0, |_, _| Ok(0)).unwrap();
    assert_eq!(layer.open_client(udp(1), 0, |_, _| Ok(0)), Err(OpenError::Full));
}

#[test]
fn messages_share_the_store_by_their_size_and_a_full_store_is_refused_or_makes_room() {
    // Two granules of store: one 100-byte request fills it.
    let mut layer = Layer::new(Instant::now(), 4, 4, 200, 2 * MESSAGE_GRANULE);
    let sized = |len: usize| move |buf: &mut [u8], _: &str| buf.get_mut(..len).map(|_| len).ok_or(Overflow);
    let big = layer.open_client(udp(1), 0, sized(100)).unwrap();
    assert_eq!((layer.store_usage().capacity, layer.store_usage().in_use), (128, 128));
    assert_eq!(layer.open_client(udp(1), 0, sized(10)), Err(OpenError::Full), "a place, but no bytes");
    assert_eq!(layer.client_count(), 1, "the refused one took no place");
    layer.close_client(big);
    assert_eq!(layer.store_usage().in_use, 0, "closing gives the bytes back");
    let small = layer.open_client(udp(1), 0, sized(10)).unwrap();
    assert_eq!(layer.start_client(Instant::now(), small).map(|(_, b)| b.len()), Some(10));
    // A kept response that finds no room makes it with the oldest kept.
    let t0 = Instant::now();
    assert!(layer.keep(t0, 1, udp(1), &[b'a'; 40], None).is_some());
    assert_eq!((layer.store_usage().capacity, layer.store_usage().in_use), (128, 128));
    assert!(layer.keep(t0, 2, udp(1), &[b'b'; 30], None).is_some());
    assert_eq!(layer.kept(1), None, "evicted for the newer one");
    assert_eq!(layer.kept(2).map(|(_, b)| b.to_vec()), Some(vec![b'b'; 30]));
    assert_eq!(layer.evicted(), 1);
    assert_eq!(layer.keep(t0, 3, udp(1), &[b'c'; 201], None), None, "larger than message_size");
    // A request that finds no room takes it from the kept responses.
    assert!(layer.clients_backlogged(), "the store is full");
    let _ = layer.open_client(udp(1), 0, sized(60)).unwrap();
    assert_eq!((layer.kept(2), layer.evicted()), (None, 2), "the kept response made room");
    assert_eq!(layer.open_client(udp(1), 0, sized(10)), Err(OpenError::Full), "nothing left to evict");
}

#[test]
fn a_response_counts_only_from_where_its_request_went_and_for_its_dialog() {
    let mut layer = Layer::new(Instant::now(), 4, 4, 1024, 16 * 1024);
    let t0 = Instant::now();
    let h = open(&mut layer, udp(5070), 1);
    layer.start_client(t0, h).unwrap();
    let branch = format!("{BRANCH}{:x}", h.pack());
    let response = |branch: &str, cseq: u32| {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP gw:5060;branch={branch}\r\nFrom: <sip:gw>;tag=gw1\r\n\
             To: <sip:alice@example.com>;tag=a1\r\nCall-ID: c1\r\nCSeq: {cseq} INFO\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let ok = response(&branch, 7);
    let ok = Message::parse(ok.as_bytes()).unwrap();
    assert_eq!(layer.match_response(udp(5070), &ok), ResponseMatch::Matched(h));
    // Over UDP the reply may come from another port of the same host.
    assert_eq!(layer.match_response(udp(6000), &ok), ResponseMatch::Matched(h));
    let elsewhere = Peer { addr: ([127, 0, 0, 2], 5070).into(), transport: Transport::Udp };
    assert_eq!(layer.match_response(elsewhere, &ok), ResponseMatch::Mismatched);
    assert_eq!(layer.match_response(tcp(), &ok), ResponseMatch::Mismatched);
    let other_cseq = response(&branch, 8);
    assert_eq!(
        layer.match_response(udp(5070), &Message::parse(other_cseq.as_bytes()).unwrap()),
        ResponseMatch::Mismatched
    );
    let foreign = response("z9hG4bKsomeoneelse", 7);
    assert_eq!(layer.match_response(udp(5070), &Message::parse(foreign.as_bytes()).unwrap()), ResponseMatch::Unknown);
    layer.close_client(h);
    assert_eq!(layer.match_response(udp(5070), &ok), ResponseMatch::Unknown, "over: a late response names nothing");
}

#[test]
fn a_kept_response_answers_for_64_t1_and_is_gone() {
    let mut layer = Layer::new(Instant::now(), 1, 4, 1024, 16 * 1024);
    let t0 = Instant::now();
    layer.keep(t0, 0xabc, udp(5070), b"SIP/2.0 200 OK\r\n\r\n", None).unwrap();
    assert_eq!(layer.kept(0xabc), Some((udp(5070), &b"SIP/2.0 200 OK\r\n\r\n"[..])));
    assert_eq!(layer.kept(0xabd), None);
    assert_eq!(run(&mut layer, t0, Duration::from_secs(40)), [Seen::Expired(32_000, None, false)]);
    assert_eq!(layer.kept(0xabc), None);
    assert_eq!(layer.server_count(), 0);
}

#[test]
fn an_invite_2xx_over_udp_is_sent_again_until_its_ack() {
    let mut layer = Layer::new(Instant::now(), 1, 4, 1024, 16 * 1024);
    let t0 = Instant::now();
    let kept = layer.keep(t0, 1, udp(5070), b"SIP/2.0 200 OK\r\n\r\n", Some(9)).unwrap();
    assert_eq!(run(&mut layer, t0, Duration::from_millis(3600)), [500, 1500, 3500].map(Seen::Retransmit));
    layer.acknowledged(kept);
    assert_eq!(run(&mut layer, t0, Duration::from_secs(40)), [Seen::Expired(32_000, Some(9), false)]);
}

#[test]
fn an_invite_2xx_never_acknowledged_says_so_when_it_expires() {
    let mut layer = Layer::new(Instant::now(), 1, 4, 1024, 16 * 1024);
    let t0 = Instant::now();
    layer.keep(t0, 1, udp(5070), b"SIP/2.0 200 OK\r\n\r\n", Some(9)).unwrap();
    let seen = run(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(seen.last(), Some(&Seen::Expired(32_000, Some(9), true)));
    assert_eq!(seen.len(), 11, "ten retransmissions, then the expiry: {seen:?}");
    // Over TCP the 2xx is never sent again, and no ACK is waited for.
    let kept = layer.keep(t0, 2, tcp(), b"SIP/2.0 200 OK\r\n\r\n", Some(3));
    assert!(kept.is_some());
    assert_eq!(run(&mut layer, t0, Duration::from_secs(40)), [Seen::Expired(32_000, Some(3), false)]);
}

#[test]
fn a_full_table_of_kept_responses_makes_room_with_its_oldest() {
    let mut layer = Layer::new(Instant::now(), 1, 2, 1024, 16 * 1024);
    let t0 = Instant::now();
    for key in 1..=3u64 {
        layer.keep(t0 + Duration::from_millis(key), key, udp(5070), key.to_string().as_bytes(), None).unwrap();
    }
    assert_eq!(layer.evicted(), 1);
    assert_eq!(layer.kept(1), None, "the oldest made room");
    assert_eq!(layer.kept(2).map(|(_, b)| b), Some(&b"2"[..]));
    assert_eq!(layer.kept(3).map(|(_, b)| b), Some(&b"3"[..]));
    // Its timers went with it: two expiries are left, not three.
    assert_eq!(run(&mut layer, t0, Duration::from_secs(40)).len(), 2);
    // A response larger than the message size is not kept.
    assert_eq!(layer.keep(t0, 4, udp(5070), &[b'x'; 2000], None), None);
    assert_eq!(layer.server_count(), 0);
}

#[test]
fn kept_responses_expire_in_the_order_kept_between_the_other_deadlines() {
    let mut layer = Layer::new(Instant::now(), 2, 4, 1024, 16 * 1024);
    let t0 = Instant::now();
    layer.keep(t0, 1, udp(5070), b"first", None).unwrap();
    let h = open(&mut layer, tcp(), 7);
    layer.start_client(t0 + Duration::from_millis(500), h).unwrap();
    layer.keep(t0 + Duration::from_secs(1), 2, udp(5070), b"second", None).unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + LIFETIME));
    assert_eq!(
        run(&mut layer, t0, Duration::from_secs(40)),
        [Seen::Expired(32_000, None, false), Seen::TimedOut(32_500, 7), Seen::Expired(33_000, None, false)]
    );
    assert_eq!((layer.kept(1), layer.kept(2)), (None, None));
}
