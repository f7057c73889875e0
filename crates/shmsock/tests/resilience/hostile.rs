//! A hostile peer in another process: it connects correctly (a hand-built memfd with the
//! right layout and seals, whose writable mapping it keeps), then writes arbitrary values
//! into every field of its own segment while we read and write: positions, lengths, frame
//! headers, payloads, futex words, sleep flags, header words and counters. We must return
//! `Error::Corrupt` or valid data; never panic, never block beyond the call's timeout, and
//! never touch memory outside the mapping (a SIGSEGV or SIGBUS would kill this test
//! process: that is the failure signal). It also tries to write *our* segment, which the
//! seals must refuse.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use shmsock::{Error, Listener, Options, WaitStrategy};

use crate::rawpeer::{self, WritableSegment, HEADER_WORDS, RING_OFFSET};
use shmsock_testkit::child::{report, var_u64, SEED_ENV};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::message::SplitMix64;
use shmsock_testkit::watchdog::{watched, CallWatch};

/// Rounds (connections) a random-mutation child plays.
const ROUNDS_ENV: &str = "SHMSOCK_TEST_ROUNDS";
/// A fixed mutation script `offset:value,...` (proptest cases) instead of random mutations.
const SCRIPT_ENV: &str = "SHMSOCK_TEST_SCRIPT";
/// How long our side plays one round before dropping the connection.
const ROUND: Duration = Duration::from_millis(40);
/// Timeout of each of our blocking calls during a round.
const CALL_TIMEOUT: Duration = Duration::from_millis(5);
/// How much longer than its timeout a call may take: a loaded 2-core machine (a `Conn`
/// ring has no seqlock to wait on; the mutating peer can only make us see garbage).
const CALL_SLACK: Duration = Duration::from_millis(500);
/// The longest one call may take; past it the test fails, even if the call never returns
/// ([`watched`]).
const CALL_BOUND: Duration = CALL_TIMEOUT.saturating_add(CALL_SLACK);

/// Values that sit on the edges the validation must get right.
fn boundary(rng: &mut SplitMix64, cap: u64) -> u64 {
    let edges = [
        0,
        1,
        7,
        8,
        15,
        16,
        17,
        cap - 17,
        cap - 16,
        cap - 15,
        cap - 1,
        cap,
        cap + 1,
        2 * cap + 1,
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        u64::MAX / 2,
        u64::MAX - 15,
        u64::MAX - 1,
        u64::MAX,
    ];
    edges[rng.below_or_eq(edges.len() - 1)]
}

/// Bytes a frame with `len` payload bytes at ring index `index` takes (the library's rule).
fn frame_bytes(index: u64, len: u64) -> u64 {
    let off = if len < 256 {
        16
    } else {
        (index + 16).next_multiple_of(64) - index
    };
    off + len.next_multiple_of(16)
}

/// The hostile peer's view of its own ring: it may also publish correct frames.
struct HostileRing<'a> {
    seg: &'a WritableSegment,
    cap: u64,
    pos: u64,
}

impl HostileRing<'_> {
    /// Publishes a well-formed frame (if it fits before the ring end).
    fn publish(&mut self, len: u64) {
        let index = self.pos & (self.cap - 1);
        let need = frame_bytes(index, len);
        if need + 8 > self.cap - index {
            self.pos = 0; // restart from a fresh lap; the reader will likely call it corrupt
            return;
        }
        let at = RING_OFFSET + index as usize;
        for w in (0..len).step_by(8) {
            self.seg.poke(at + 16 + w as usize, self.pos ^ w);
        }
        self.seg.poke(at + 8, len);
        self.seg
            .poke(RING_OFFSET + ((index + need) & (self.cap - 1)) as usize, 0);
        self.seg.poke(at, self.pos + 1);
        self.pos += need;
    }

    /// One random mutation; returns what it touched (for the statistics).
    fn mutate(&mut self, rng: &mut SplitMix64) {
        let cap = self.cap;
        let ring_word =
            |rng: &mut SplitMix64| RING_OFFSET + (rng.below_or_eq(cap as usize / 8 - 1) * 8);
        let next_index = RING_OFFSET + (self.pos & (cap - 1)) as usize;
        match rng.below_or_eq(9) {
            // The next frame's tag: plausible (this lap or another) or anything.
            0 => {
                let v = match rng.below_or_eq(3) {
                    0 => self.pos + 1,
                    1 => self.pos + 1 + cap * (1 + rng.below_or_eq(3) as u64),
                    2 => boundary(rng, cap),
                    _ => rng.next_u64() | 1,
                };
                self.seg.poke(next_index, v);
            }
            // The next frame's len|kind word, then maybe its tag.
            1 => {
                let len = boundary(rng, cap) & 0xffff_ffff;
                let kind = rng.below_or_eq(3) as u64;
                self.seg.poke(next_index + 8, len | kind << 32);
                if rng.below_or_eq(1) == 0 {
                    self.seg.poke(next_index, self.pos + 1);
                }
            }
            // A correct frame (valid data must still get through).
            2 | 3 => self.publish(rng.below_or_eq(300) as u64),
            // Any word of the ring.
            4 => self.seg.poke(ring_word(rng), rng.next_u64()),
            5 => self.seg.poke(ring_word(rng), boundary(rng, cap)),
            // Our consumed position of the peer's ring (the producer validates it).
            6 => self.seg.poke(rawpeer::OFF_CONSUMED, boundary(rng, cap)),
            // Futex words and sleep flags.
            7 => {
                let off = [
                    rawpeer::OFF_DATA_SEQ,
                    rawpeer::OFF_SPACE_SEQ,
                    rawpeer::OFF_RX_SLEEPING,
                    rawpeer::OFF_TX_SLEEPING,
                ][rng.below_or_eq(3)];
                let v = [0, 1, u64::from(u32::MAX), rng.next_u64()][rng.below_or_eq(3)];
                self.seg.poke(off, v);
            }
            // Header words (magic, layout, pid, flags, counters): read once at open.
            8 => self.seg.poke(
                HEADER_WORDS[rng.below_or_eq(HEADER_WORDS.len() - 1)],
                boundary(rng, cap),
            ),
            // Anywhere in the segment.
            _ => self
                .seg
                .poke(rng.below_or_eq(self.seg.len() - 8), rng.next_u64()),
        }
    }
}

/// Tries to write the listener's segment every way a peer could; returns how many of the
/// attempts the kernel refused (all of them must be).
fn attack_their_segment(fd: &OwnedFd, len: usize) -> (usize, usize) {
    let mut refused = 0;
    // SAFETY: a fresh mapping (null hint) that we unmap at once if it is ever created.
    let writable = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    };
    match writable {
        Err(_) => refused += 1,
        // SAFETY: unmapping exactly what mmap returned, never used.
        Ok(p) => unsafe {
            let _ = rustix::mm::munmap(p, len);
        },
    }
    refused += usize::from(rustix::io::pwrite(fd, b"x", 0).is_err());
    refused += usize::from(rustix::fs::ftruncate(fd, 4096).is_err());
    refused += usize::from(rustix::fs::ftruncate(fd, len as u64 * 2).is_err());
    // SAFETY: a fresh read-only mapping (null hint), unmapped below; nothing reads it.
    if let Ok(p) = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED,
            fd,
            0,
        )
    } {
        // SAFETY: `p` is our own mapping of `len` bytes; making it writable would only
        // affect it (and is what must be refused).
        refused +=
            usize::from(unsafe { rustix::mm::mprotect(p, len, MprotectFlags::WRITE) }.is_err());
        // SAFETY: unmapping exactly what mmap returned.
        let _ = unsafe { rustix::mm::munmap(p, len) };
    }
    (refused, 5)
}

fn parse_script(s: &str) -> Vec<(usize, u64)> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (o, v) = p.split_once(':').expect("offset:value");
            (o.parse().expect("offset"), v.parse().expect("value"))
        })
        .collect()
}

/// Whether the parent hung up (or said goodbye): it dropped this round's connection.
fn hung_up(sock: &mut UnixStream) -> bool {
    let mut b = [0u8; 16];
    match sock.read(&mut b) {
        Ok(_n) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// The child: plays `ROUNDS` connections, mutating its segment until the parent hangs up.
pub fn child(ep: &str) {
    let mut rng = SplitMix64::new(var_u64(SEED_ENV));
    let rounds = var_u64(ROUNDS_ENV);
    let script = std::env::var(SCRIPT_ENV).ok().map(|s| parse_script(&s));
    let mut mutations = 0u64;
    let mut attacks = (0, 0);
    for round in 0..rounds {
        let Ok(mut sock) = UnixStream::connect(rawpeer::socket_path(ep)) else {
            break;
        };
        let cap = if script.is_some() {
            4096
        } else {
            [4096u64, 8192, 65536][rng.below_or_eq(2)]
        };
        let seg = WritableSegment::create(cap);
        // Sealed: our own segment cannot shrink under the reader either.
        assert!(
            rustix::fs::ftruncate(&seg.fd, 0).is_err(),
            "shrinking a sealed segment"
        );
        if rawpeer::send_with_fds(&sock, &rawpeer::good_hello(cap), &[seg.fd.as_fd()]).is_err() {
            continue;
        }
        let Ok((hello, fds)) = rawpeer::read_hello(&sock) else {
            break;
        };
        if round == 0 {
            let len = RING_OFFSET + rawpeer::hello_capacity(&hello) as usize;
            attacks = attack_their_segment(fds.first().expect("the listener's fd"), len);
        }
        drop(fds);
        let mut ack = [0u8; 1];
        if !matches!(sock.read(&mut ack), Ok(1)) || ack[0] != rawpeer::ACK {
            continue;
        }
        sock.set_nonblocking(true).expect("nonblocking");
        let mut ring = HostileRing {
            seg: &seg,
            cap,
            pos: 0,
        };
        let deadline = Instant::now() + STEP_TIMEOUT;
        match &script {
            Some(script) => {
                for &(off, value) in script {
                    seg.poke(off, value);
                    mutations += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
                while !hung_up(&mut sock) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            None => loop {
                for _ in 0..64 {
                    ring.mutate(&mut rng);
                }
                mutations += 64;
                if hung_up(&mut sock) || Instant::now() >= deadline {
                    break;
                }
            },
        }
    }
    report(format!(
        "mutations {mutations} attacks-refused {} of {}",
        attacks.0, attacks.1
    ));
}

/// What our side saw in a hostile run.
#[derive(Debug, Default)]
struct Seen {
    rounds: u64,
    valid: u64,
    corrupt: u64,
    timeouts: u64,
    calls: u64,
    slowest: Duration,
}

/// Plays one round against the hostile peer on `conn`: receives and sends, each call with
/// a short timeout and watched (bounded by [`CALL_BOUND`]), until corruption is reported
/// or the round ends.
fn play_round(conn: &mut shmsock::Conn, rng: &mut SplitMix64, seen: &mut Seen, watch: &CallWatch) {
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 17];
    let msg = [0x42u8; 300];
    seen.rounds += 1;
    while t.elapsed() < ROUND {
        let (r, took) = match rng.below_or_eq(3) {
            0 | 1 => watch.call(|| conn.recv_timeout(&mut buf, CALL_TIMEOUT)),
            2 => {
                let small = rng.below_or_eq(16);
                watch.call(|| conn.recv_timeout(&mut buf[..small], CALL_TIMEOUT))
            }
            _ => {
                let len = rng.below_or_eq(msg.len());
                if rng.below_or_eq(1) == 0 {
                    watch.call(|| conn.try_send(&msg[..len]).map(|()| 0))
                } else {
                    watch.call(|| conn.send_timeout(&msg[..len], CALL_TIMEOUT).map(|()| 0))
                }
            }
        };
        seen.calls += 1;
        seen.slowest = seen.slowest.max(took);
        match r {
            Ok(n) => {
                assert!(n <= buf.len());
                seen.valid += 1;
            }
            Err(Error::Corrupt { what, .. }) => {
                assert!(!what.is_empty());
                seen.corrupt += 1;
                // Poisoned for good: every later call says so at once.
                let (r, _) = watch.call(|| conn.try_recv(&mut buf));
                assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
                let (r, _) = watch.call(|| conn.try_send(b"x"));
                assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
                return;
            }
            Err(Error::TimedOut | Error::WouldBlock | Error::BufferTooSmall { .. }) => {
                seen.timeouts += 1;
            }
            Err(Error::PeerGone { .. } | Error::PeerClosed { .. }) => return,
            Err(e) => panic!("unexpected error against a hostile peer: {e:?}"),
        }
    }
}

/// Runs a hostile child for `rounds` connections on a fresh listener.
fn hostile_run(
    seed: u64,
    rounds: u64,
    strategy: WaitStrategy,
    script: Option<String>,
) -> (Seen, String) {
    let ep = harness::endpoint("hostile");
    let listener: Listener = harness::bind(
        &ep,
        Options::new().ring_capacity(8192).wait_strategy(strategy),
    );
    let mut env = vec![
        (SEED_ENV, seed.to_string()),
        (ROUNDS_ENV, rounds.to_string()),
    ];
    if let Some(s) = script {
        env.push((SCRIPT_ENV, s));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut peer = Peer::spawn("hostile", &ep, &env);
    // Our side plays on a watched thread: a call that hangs fails the test with a message.
    let seen = watched(
        "a peer process mutating its segment",
        CALL_BOUND,
        move |watch| {
            let mut rng = SplitMix64::new(seed ^ 0x9999);
            let mut seen = Seen::default();
            for _ in 0..rounds {
                match harness::accept(&listener) {
                    Ok(mut conn) => play_round(&mut conn, &mut rng, &mut seen, watch),
                    Err(e) => panic!("the hostile peer's handshake is correct, yet: {e:?}"),
                }
            }
            seen
        },
    );
    let summary = peer.expect("mutations");
    peer.wait_success();
    (seen, summary)
}

fn mutations_of(summary: &str) -> u64 {
    summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn assert_attacks_refused(summary: &str) {
    assert!(
        summary.ends_with("attacks-refused 5 of 5"),
        "the peer could write our segment: {summary}"
    );
}

fn random_mutations(rounds_per_strategy: u64) {
    let _serial = crate::serial();
    let mut total = Seen::default();
    let mut mutations = 0;
    let t = Instant::now();
    for (i, strategy) in [
        WaitStrategy::Adaptive,
        WaitStrategy::BusyPoll,
        WaitStrategy::Blocking,
    ]
    .into_iter()
    .enumerate()
    {
        let (seen, summary) =
            hostile_run(0x4057_11e0 + i as u64, rounds_per_strategy, strategy, None);
        assert_attacks_refused(&summary);
        mutations += mutations_of(&summary);
        total.rounds += seen.rounds;
        total.valid += seen.valid;
        total.corrupt += seen.corrupt;
        total.timeouts += seen.timeouts;
        total.calls += seen.calls;
        total.slowest = total.slowest.max(seen.slowest);
    }
    eprintln!(
        "hostile peer: {mutations} mutations over {} connections in {:.1?}: {} calls, {} valid messages, \
         {} corruption reports, {} timeouts, slowest call {:.1?}",
        total.rounds,
        t.elapsed(),
        total.calls,
        total.valid,
        total.corrupt,
        total.timeouts,
        total.slowest
    );
    crate::assert_saw_both(total.corrupt, total.valid, "valid message");
}

ci_and_long! {
    random_mutations,
    /// CI: 3 × 40 connections to a peer process mutating its own segment at random.
    fn hostile_peer_process_gets_corrupt_or_valid_data_never_a_crash_or_hang(40);
    /// The long run: 3 × 2,000 connections.
    fn hostile_peer_long(2000);
}

fn script_strategy() -> impl Strategy<Value = Vec<(usize, u64)>> {
    let cap = 4096u64;
    let offset = prop_oneof![
        prop::sample::select(HEADER_WORDS.to_vec()),
        (0..cap / 16).prop_map(|f| RING_OFFSET + f as usize * 16),
        (0..cap / 16).prop_map(|f| RING_OFFSET + f as usize * 16 + 8),
        (0..(RING_OFFSET + cap as usize) / 8).prop_map(|w| w * 8),
    ];
    let value = prop_oneof![
        any::<u64>(),
        (0..cap / 16).prop_map(|f| f * 16 + 1),
        (0u64..=cap + 64, 0u64..3).prop_map(|(len, kind)| len | kind << 32),
        prop::sample::select(vec![0, 1, cap, u64::from(u32::MAX), u64::MAX]),
    ];
    prop::collection::vec((offset, value), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// proptest-generated writes into every field of a peer process's segment: each script
    /// runs in its own hostile child while we read and write.
    #[test]
    fn hostile_peer_scripts_from_proptest(script in script_strategy()) {
        let _serial = crate::serial();
        let text: Vec<String> = script.iter().map(|(o, v)| format!("{o}:{v}")).collect();
        let (seen, summary) = hostile_run(7, 1, WaitStrategy::Adaptive, Some(text.join(",")));
        assert_attacks_refused(&summary);
        prop_assert_eq!(mutations_of(&summary), script.len() as u64);
        prop_assert!(seen.calls > 0);
    }
}
