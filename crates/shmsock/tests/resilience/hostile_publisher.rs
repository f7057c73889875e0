//! A hostile publisher: a hand-made peer poses as a `Publisher` that lends (its segment and
//! pool built by hand, the handshake spoken by hand), then, while a real `Subscriber` reads
//! on another thread, publishes well-formed loans and copies and writes arbitrary values
//! into every field of its own segment: the seqlock'd cursor (versions, oldest and write
//! positions and sequences), frame tags and `len|kind` words, loan frames with any slot,
//! generation and length, any ring word, any header word. The subscriber must return valid
//! data (a sample of at most one slot, which it can read, or a copy), `Lagged`, a timeout or
//! `Error::Corrupt` (which then sticks); never panic, never block beyond its timeout plus
//! the seqlock's patience, and never read outside a mapping (that would kill this process).
//!
//! The pub/sub counterpart of `hostile.rs` (a hostile `Conn` peer), in one process: the
//! subscriber is a thread of the test, the publisher's memory a writable mapping the test
//! scribbles on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmsock::{Error, Sample, Subscriber};

use crate::hostile_lender::{pool_fds, CAP, SLOTS, SLOT_BYTES};
use crate::rawloan::{
    self, RawRing, HELLO_FLAG_POOL, KIND_LOAN, OFF_CURSOR_VERSION, ROLE_PUBLISHER,
};
use crate::rawpeer::{WritableSegment, HEADER_WORDS, RING_OFFSET};
use shmsock_testkit::harness;
use shmsock_testkit::message::SplitMix64;
use shmsock_testkit::watchdog::{spawn_watched, CallWatch};

/// How long the publisher scribbles on one connection.
const ROUND: Duration = Duration::from_millis(40);
/// Timeout of each of the subscriber's calls.
const CALL_TIMEOUT: Duration = Duration::from_millis(5);
/// How much longer than its timeout a call may take: the seqlock's patience with a cursor
/// that stays torn (250 ms), plus a loaded 2-core machine.
const CALL_SLACK: Duration = Duration::from_millis(750);
/// The longest one call may take; past it the test fails, even if the call never returns
/// (the subscriber's thread is watched, see [`spawn_watched`]).
const CALL_BOUND: Duration = CALL_TIMEOUT.saturating_add(CALL_SLACK);

/// What the subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    calls: u64,
    samples: u64,
    copies: u64,
    lagged: u64,
    corrupt: u64,
    timeouts: u64,
    slowest: Duration,
    /// Corruption reports by kind (the message with its numbers taken out).
    reasons: BTreeMap<String, u64>,
}

impl Seen {
    fn add(&mut self, o: &Seen) {
        self.calls += o.calls;
        self.samples += o.samples;
        self.copies += o.copies;
        self.lagged += o.lagged;
        self.corrupt += o.corrupt;
        self.timeouts += o.timeouts;
        self.slowest = self.slowest.max(o.slowest);
        for (r, n) in &o.reasons {
            *self.reasons.entry(r.clone()).or_default() += n;
        }
    }
}

/// The subscriber's side: receives (samples and copies, some samples held) until `stop`,
/// a `Corrupt` (checked to stick) or the publisher's end; every call watched.
fn read(mut sub: Subscriber, stop: &AtomicBool, seed: u64, watch: &CallWatch) -> Seen {
    let mut rng = SplitMix64::new(seed);
    let mut seen = Seen::default();
    let mut held: Vec<Sample> = Vec::new();
    let mut buf = vec![0u8; CAP as usize];
    while !stop.load(Ordering::Relaxed) {
        let (r, took) = if rng.below_or_eq(2) == 0 {
            let (r, took) = watch.call(|| sub.recv_timeout(&mut buf, CALL_TIMEOUT));
            let r = r.map(|n| {
                assert!(n <= buf.len());
                seen.copies += 1;
            });
            (r, took)
        } else {
            let (r, took) = watch.call(|| sub.recv_sample_timeout(CALL_TIMEOUT));
            let r = r.map(|sample| {
                if sample.is_loan() {
                    assert!(sample.len() <= SLOT_BYTES as usize, "{sample:?}");
                }
                assert_eq!(sample.to_vec().len(), sample.len());
                seen.samples += 1;
                if rng.below_or_eq(3) == 0 {
                    held.push(sample);
                }
            });
            (r, took)
        };
        seen.calls += 1;
        seen.slowest = seen.slowest.max(took);
        match r {
            Ok(()) => {}
            Err(Error::Corrupt { what, .. }) => {
                assert!(!what.is_empty());
                seen.corrupt += 1;
                let kind: String = what.chars().filter(|c| !c.is_ascii_digit()).collect();
                *seen.reasons.entry(kind).or_default() += 1;
                let (again, _) = watch.call(|| sub.try_recv(&mut buf));
                assert!(
                    matches!(again, Err(Error::Corrupt { .. })),
                    "Corrupt must stick: {again:?}"
                );
                break;
            }
            Err(Error::Lagged { .. }) => seen.lagged += 1,
            Err(Error::TimedOut) => seen.timeouts += 1,
            Err(Error::PeerGone { .. } | Error::PeerClosed { .. }) => break,
            Err(e) => panic!("unexpected error against a hostile publisher: {e:?}"),
        }
    }
    // Samples held across the scribbling still read (whatever bytes are there).
    for s in held.drain(..) {
        assert_eq!(s.to_vec().len(), s.len());
    }
    seen
}

/// Values on the edges the validation must get right.
fn boundary(rng: &mut SplitMix64, pos: u64) -> u64 {
    let edges = [
        0,
        1,
        pos,
        pos + 1,
        pos + 48,
        pos.saturating_sub(48),
        CAP - 1,
        CAP,
        CAP + 1,
        2 * CAP,
        u64::from(u32::MAX),
        u64::MAX / 2,
        u64::MAX - 1,
        u64::MAX,
    ];
    edges[rng.below_or_eq(edges.len() - 1)]
}

/// One random action of the publisher on its own segment.
fn mutate(ring: &mut RawRing, rng: &mut SplitMix64, next_generation: &mut u64) {
    // Well-formed frames only while they fit before the ring end (no laps here).
    let room = ring.pos + 256 + 64 < ring.cap;
    let next = RING_OFFSET + ring.pos as usize;
    match rng.below_or_eq(11) {
        0..=2 if room => {
            *next_generation += 1 + rng.below_or_eq(2) as u64;
            let slot = rng.below_or_eq(SLOTS as usize - 1) as u32;
            let len = rng.below_or_eq(SLOT_BYTES as usize) as u64;
            ring.loan(slot, *next_generation, len);
        }
        3 if room => {
            let slot = [0, 3, 4, u32::MAX][rng.below_or_eq(3)];
            let len = boundary(rng, SLOT_BYTES);
            ring.loan(slot, rng.next_u64() % 8, len);
        }
        4 if room => {
            let words: Vec<u64> = (0..rng.below_or_eq(24)).map(|_| rng.next_u64()).collect();
            let len = (words.len() as u64 * 8).saturating_sub(rng.below_or_eq(7) as u64);
            ring.publish(0, len, &words);
        }
        5 => {
            let word = OFF_CURSOR_VERSION + 8 * rng.below_or_eq(4);
            ring.seg.poke(word, boundary(rng, ring.pos));
        }
        6 => {
            ring.seg.poke(
                next + 8,
                boundary(rng, 24) | (rng.below_or_eq(3) as u64) << 32,
            );
            ring.seg.poke(next, ring.pos + 1);
        }
        7 => {
            // A loan frame header over whatever payload is there.
            ring.seg.poke(next + 8, 24 | u64::from(KIND_LOAN) << 32);
            ring.seg.poke(next, ring.pos + 1);
        }
        8 => {
            let word = RING_OFFSET + 8 * rng.below_or_eq(CAP as usize / 8 - 1);
            ring.seg.poke(word, rng.next_u64());
        }
        9 => {
            let word = HEADER_WORDS[rng.below_or_eq(HEADER_WORDS.len() - 1)];
            ring.seg.poke(word, boundary(rng, ring.pos));
        }
        10 => {
            let word = rng.below_or_eq(ring.seg.len() - 8);
            ring.seg.poke(word, rng.next_u64());
        }
        _ => std::thread::sleep(Duration::from_micros(100)),
    }
}

/// One connection: a hand-made publisher at a fresh endpoint, a subscriber thread, `ROUND`
/// of scribbling. Returns what the subscriber saw and how many actions were taken.
fn round(seed: u64) -> (Seen, u64) {
    let ep = harness::endpoint("hostile-pub");
    let (seg, fds) = pool_fds(WritableSegment::create(CAP), true);
    let hello = rawloan::hello(
        CAP,
        ROLE_PUBLISHER,
        HELLO_FLAG_POOL,
        SLOTS as u32,
        SLOT_BYTES,
    );
    let (sub, peer) = rawloan::against_by_hand(&ep, hello, fds, "publisher", || {
        Subscriber::connect(&ep).expect("subscribing to the hand-made publisher")
    });
    assert!(peer.accepted);
    let mut ring = RawRing::broadcast(seg);
    let stop = Arc::new(AtomicBool::new(false));
    let mut rng = SplitMix64::new(seed);
    let (mut actions, mut generation) = (0, 0);
    // The subscriber reads on a watched thread: a call that hangs fails the test with a
    // message, checked between our scribbles and while we wait for the reader's end.
    let reader = {
        let stop = stop.clone();
        spawn_watched(
            "a hand-made publisher scribbling on its segment",
            CALL_BOUND,
            move |watch| read(sub, &stop, seed ^ 0x5eed, watch),
        )
    };
    let t = Instant::now();
    while t.elapsed() < ROUND && !reader.is_finished() {
        for _ in 0..16 {
            mutate(&mut ring, &mut rng, &mut generation);
            actions += 1;
        }
        reader.check();
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join();
    drop(peer);
    (seen, actions)
}

fn run(rounds: u64) {
    let _serial = crate::serial();
    let t = Instant::now();
    let (mut total, mut actions) = (Seen::default(), 0);
    for i in 0..rounds {
        let (seen, a) = round(0x0b0b_0000 + i);
        total.add(&seen);
        actions += a;
    }
    eprintln!(
        "hostile publisher: {actions} actions over {rounds} connections in {:.1?}: {} calls, \
         {} samples, {} copies, {} lagged, {} corruption reports, {} timeouts, slowest call {:.1?}",
        t.elapsed(),
        total.calls,
        total.samples,
        total.copies,
        total.lagged,
        total.corrupt,
        total.timeouts,
        total.slowest
    );
    for (reason, n) in &total.reasons {
        eprintln!("  {n:>5} x {reason}");
    }
    crate::assert_saw_both(total.corrupt, total.samples, "valid loan");
}

ci_and_long! {
    run,
    /// CI: 300 connections to a hand-made publisher scribbling on its segment.
    fn hostile_publisher_gets_corrupt_or_valid_samples_never_a_crash_or_hang(300);
    /// The long run: 20,000 connections.
    fn hostile_publisher_long(20_000);
}

/// A publisher that dies in the middle of a cursor update (SIGKILL between the two version
/// stores leaves the seqlock odd for good) is `PeerGone` within the peer-death bound, not
/// `Corrupt` after the seqlock's whole patience.
#[test]
fn a_publisher_gone_in_the_middle_of_an_update_is_peer_gone_not_corrupt() {
    let _serial = crate::serial();
    let ep = harness::endpoint("torn-publisher");
    let (seg, fds) = pool_fds(WritableSegment::create(CAP), false);
    let hello = rawloan::hello(CAP, ROLE_PUBLISHER, 0, 0, 0);
    let (mut sub, peer) = rawloan::against_by_hand(&ep, hello, fds, "publisher", || {
        Subscriber::connect(&ep).expect("subscribing to the hand-made publisher")
    });
    assert!(peer.accepted);
    let mut ring = RawRing::broadcast(seg);
    ring.publish(0, 8, &[42]);
    let mut buf = [0u8; 64];
    let n = sub
        .recv_timeout(&mut buf, Duration::from_secs(5))
        .expect("the message");
    assert_eq!(n, 8);
    // The next update starts (odd version) and the publisher dies there.
    ring.seg.poke(OFF_CURSOR_VERSION, 2 * ring.frames + 1);
    drop(peer);
    let t = Instant::now();
    let end = sub.recv_timeout(&mut buf, Duration::from_secs(5));
    let took = t.elapsed();
    assert!(
        matches!(end, Err(Error::PeerGone { .. })),
        "a publisher gone mid-update: {end:?}"
    );
    assert!(
        took < harness::PEER_DEATH_BOUND,
        "reported after {took:?}, the bound is {:?}",
        harness::PEER_DEATH_BOUND
    );
}
