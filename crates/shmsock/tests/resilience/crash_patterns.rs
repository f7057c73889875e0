//! The crash matrix, continued for the patterns built on the ring: a `Publisher` lending
//! zero-copy loans to subscribers, and the many-writers `Inbox`. A peer process is
//! SIGKILLed at a random moment and the survivor (this process) checks what it got.
//!
//! | cell                   | victim (child)                                  | survivor (us)                        |
//! |------------------------|-------------------------------------------------|--------------------------------------|
//! | publisher/loan         | `Publisher` streaming loans (2 of 3 messages) and copies to 2 subscribers, often waiting in `loan` for a slot that a subscriber holds | 2 `Subscriber`s (threads) receiving `Sample`s, one holding up to 3 of the 4 slots |
//! | inbox-writer/full-ring | `Conn` writer blocked on its full ring          | `Inbox` not reading, then draining   |
//! | inbox-writer/doorbell  | `Conn` writer sending in bursts (`Blocking`)    | `Inbox` asleep on its doorbell between bursts (`Blocking`), with a second, idle writer |
//!
//! After every kill: every message delivered was whole, in order and exactly once (seq +
//! checksum), and every message the victim's `send` accepted arrived ([`Acked`]:
//! acknowledged, then lost, is a failure); a subscriber gets `PeerGone` within
//! [`PEER_DEATH_BOUND`] of the moment there was nothing left to read, and the samples it
//! still holds read the same bytes after the publisher's death (the pool stays mapped while
//! a sample lives: no torn sample); the inbox delivers everything the dead writer
//! published, then drops it, and still serves its other writer and a new one; the name is
//! usable again; and our fd count, our mappings of segments, the rendezvous directory and
//! `/dev/shm` are back to what they were.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Inbox, Options, Overflow, Publisher, Sample, Subscriber, WaitStrategy};

use crate::acked::Acked;
use crate::crash::expect_killed;
use crate::leaks;
use crate::roles::{strategy_name, MAX_LEN_ENV, PACE_ENV, RING_ENV, SEED_ENV, STRATEGY_ENV};
use shmsock_testkit::child::{report, var_u64};
use shmsock_testkit::harness::{self, Peer, PEER_DEATH_BOUND, STEP_TIMEOUT};
use shmsock_testkit::message::{self, SplitMix64};

/// Kill points per cell in CI.
const CI_POINTS_PER_CELL: usize = 16;
/// Kill points per cell of the long run.
const LONG_POINTS_PER_CELL: usize = 1000;
/// Ring capacity of the victims: small, so rings fill within milliseconds.
const RING_BYTES: usize = 16 * 1024;
/// The publisher's pool: 4 slots of 4 KiB (messages of up to 4 KiB, loans or copies).
const POOL_SLOTS: usize = 4;
const MAX_LEN: usize = 4096;
/// Subscribers of the publisher cell.
const SUBSCRIBERS: usize = 2;
/// How long a surviving writer waits before it sends (the inbox is asleep by then).
const SURVIVOR_SEND_DELAY: Duration = Duration::from_millis(10);
/// Largest message of the inbox cells.
const INBOX_MAX_LEN: usize = 512;

/// The child of the publisher cell: binds, waits for its subscribers, then streams loans
/// and copies of the checked stream until it is killed, recording in the parent's
/// [`Acked`] counter how many were accepted.
pub fn publisher_child(ep: &str) {
    let acked = Acked::open_from_env();
    let opts = Options::new()
        .ring_capacity(RING_BYTES)
        .loan_pool(POOL_SLOTS, MAX_LEN)
        .overflow(Overflow::Block);
    let mut publisher =
        Publisher::bind_with(ep, opts).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    report("ready");
    let t = Instant::now();
    while publisher.subscriber_count() < SUBSCRIBERS {
        assert!(t.elapsed() < STEP_TIMEOUT, "the subscribers never came");
        std::thread::sleep(Duration::from_micros(200));
    }
    report("streaming");
    let seed = var_u64(SEED_ENV);
    let (mut lens, mut body) = (message::lengths(seed), message::bodies(seed));
    let mut buf = vec![0u8; MAX_LEN];
    for seq in 0.. {
        let len = lens.below_or_eq(MAX_LEN);
        let sent = if seq % 3 == 2 {
            message::encode(seq, &mut body, &mut buf[..len]);
            publisher.send(&buf[..len])
        } else {
            match publisher.loan(len) {
                Ok(mut loan) => {
                    message::encode(seq, &mut body, &mut loan);
                    loan.send()
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = sent {
            panic!("the publisher failed before it was killed: {e}");
        }
        acked.store(seq + 1);
    }
}

/// What one subscriber saw of a publisher that died.
struct Survivor {
    messages: u64,
    last_message: Option<Instant>,
    ended: Instant,
    end: Error,
    held: usize,
}

/// Receives samples until an error, checking each; keeps the newest `hold`; after the end,
/// checks that the samples it holds still read the same bytes.
fn subscribe(mut sub: Subscriber, seed: u64, hold: usize) -> Survivor {
    let mut lens = message::lengths(seed);
    let mut held: VecDeque<(u64, usize, Sample)> = VecDeque::new();
    let mut last_message = None;
    let mut seq = 0u64;
    let end = loop {
        match sub.recv_sample_timeout(STEP_TIMEOUT) {
            Ok(sample) => {
                let len = lens.below_or_eq(MAX_LEN);
                if let Err(what) = message::verify(seq, len, &sample.to_vec()) {
                    panic!("subscriber (holding {hold}): {what}");
                }
                held.push_back((seq, len, sample));
                if held.len() > hold {
                    held.pop_front();
                }
                seq += 1;
                last_message = Some(Instant::now());
            }
            Err(e) => break e,
        }
    };
    let ended = Instant::now();
    for (seq, len, sample) in &held {
        if let Err(what) = message::verify(*seq, *len, &sample.to_vec()) {
            panic!("a sample held across the publisher's death changed: {what}");
        }
    }
    Survivor {
        messages: seq,
        last_message,
        ended,
        end,
        held: held.len(),
    }
}

/// Death-detection latencies and totals of one cell.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    messages: u64,
    points: usize,
    note: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn print(&mut self, cell: &str, what: &str) {
        let max = self.latencies.iter().max().copied().unwrap_or_default();
        let notes: Vec<String> = self.note.iter().map(|(k, n)| format!("{k} {n}")).collect();
        eprintln!(
            "  {cell:<24} {} points, {} messages checked; {what} p50 {:.2?} p99 {:.2?} max {max:.2?} ({})",
            self.points,
            self.messages,
            leaks::percentile(&mut self.latencies, 50.0),
            leaks::percentile(&mut self.latencies, 99.0),
            notes.join(", ")
        );
    }
}

fn publisher_cell(points: usize, rng: &mut SplitMix64) -> Tally {
    let dir = harness::setup();
    let ep = harness::endpoint("crash-publisher");
    let baseline = leaks::open_fds();
    let maps = leaks::segment_mappings();
    let mut tally = Tally::default();
    for i in 0..points {
        let what = format!("publisher/loan point {i}");
        let (seed, hold) = (rng.next_u64(), rng.below_or_eq(3));
        let delay = Duration::from_micros(rng.below_or_eq(20_000) as u64);
        let acked = Acked::create();
        let mut peer = Peer::spawn(
            "crash_publisher",
            &ep,
            &[(SEED_ENV, &seed.to_string()), acked.env()],
        );
        peer.expect("ready");
        let survivors = std::thread::scope(|s| {
            let subs: Vec<_> = [hold, 0]
                .into_iter()
                .map(|hold| {
                    let ep = &ep;
                    s.spawn(move || {
                        let sub = Subscriber::connect(ep).expect("subscribing");
                        subscribe(sub, seed, hold)
                    })
                })
                .collect();
            peer.expect("streaming");
            std::thread::sleep(delay);
            let killed = peer.kill();
            let survivors: Vec<Survivor> = subs
                .into_iter()
                .map(|t| t.join().expect("a subscriber thread"))
                .collect();
            (killed, survivors)
        });
        expect_killed(&mut peer);
        let (killed, survivors) = survivors;
        for s in survivors {
            assert!(
                matches!(s.end, Error::PeerGone { .. }),
                "{what}: after {} messages: {:?}, expected PeerGone",
                s.messages,
                s.end
            );
            let from = s.last_message.map_or(killed, |t| t.max(killed));
            let latency = s.ended.saturating_duration_since(from);
            assert!(
                latency < PEER_DEATH_BOUND,
                "{what}: the death was reported {latency:?} after there was nothing left to read"
            );
            acked.assert_all_received(s.messages, &what);
            tally.latencies.push(latency);
            tally.messages += s.messages;
            *tally.note.entry("samples held at death").or_default() += s.held;
        }
        tally.points += 1;
        // The dead publisher's name is reusable, and serves.
        let mut again = Publisher::bind(&ep).unwrap_or_else(|e| panic!("{what}: rebinding: {e}"));
        let mut sub = Subscriber::connect(&ep).expect("subscribing again");
        shmsock_testkit::pubsub::wait_for_at_least(&mut again, 1);
        again.send(b"again").expect("sending again");
        let mut buf = [0u8; 8];
        let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).expect("again");
        assert_eq!(&buf[..n], b"again");
        leaks::assert_mappings_seen(&maps, &what);
        drop((sub, again, acked));
        assert_eq!(
            leaks::runtime_files(dir, &ep),
            Vec::<String>::new(),
            "{what}"
        );
        leaks::assert_fds_return_to(&baseline, &what);
        leaks::assert_mappings_return_to(&maps, &what);
    }
    tally
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InboxCell {
    FullRing,
    Doorbell,
}

fn inbox_cell(cell: InboxCell, points: usize, rng: &mut SplitMix64) -> (Tally, Tally) {
    let dir = harness::setup();
    let ep = harness::endpoint(&format!("crash-inbox-{cell:?}"));
    let strategy = match cell {
        InboxCell::FullRing => WaitStrategy::Adaptive,
        InboxCell::Doorbell => WaitStrategy::Blocking,
    };
    let mut inbox = Inbox::bind_with(&ep, Options::new().wait_strategy(strategy))
        .unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    let baseline = leaks::open_fds();
    let maps = leaks::segment_mappings();
    let (mut drained, mut woken) = (Tally::default(), Tally::default());
    let mut buf = vec![0u8; INBOX_MAX_LEN];
    for i in 0..points {
        let what = format!("inbox-writer/{cell:?} point {i}");
        let seed = rng.next_u64();
        let (victim_strategy, pace, delay) = match cell {
            InboxCell::FullRing => (
                [
                    WaitStrategy::BusyPoll,
                    WaitStrategy::Adaptive,
                    WaitStrategy::Blocking,
                ][rng.below_or_eq(2)],
                "none",
                Duration::from_millis(2) + Duration::from_micros(rng.below_or_eq(18_000) as u64),
            ),
            InboxCell::Doorbell => (
                WaitStrategy::Blocking,
                "burst",
                Duration::from_micros(rng.below_or_eq(30_000) as u64),
            ),
        };
        let acked = Acked::create();
        let mut victim = Peer::spawn(
            "crash_writer",
            &ep,
            &[
                (STRATEGY_ENV, strategy_name(victim_strategy)),
                (RING_ENV, &RING_BYTES.to_string()),
                (PACE_ENV, pace),
                (SEED_ENV, &seed.to_string()),
                (MAX_LEN_ENV, &INBOX_MAX_LEN.to_string()),
                acked.env(),
            ],
        );
        victim.expect("ready");
        // A second writer that stays idle: the inbox sleeps with it too.
        let witness = Conn::connect(&ep).expect("the witness writer");
        let t = Instant::now();
        while inbox.writer_count() < 2 {
            assert!(t.elapsed() < STEP_TIMEOUT, "{what}: writers never merged");
            std::thread::sleep(Duration::from_micros(200));
        }
        leaks::assert_mappings_seen(&maps, &what);
        let killer = harness::kill_after(victim.pid(), delay);
        if cell == InboxCell::FullRing {
            // Not reading: the victim fills its ring and blocks in send until it dies.
            std::thread::sleep(delay + Duration::from_millis(3));
        }
        let mut lens = message::lengths(seed);
        let (mut seq, mut last_message) = (0u64, None);
        let deadline = Instant::now() + STEP_TIMEOUT;
        // Until the victim is dead, drained and dropped by the inbox.
        let gone = loop {
            assert!(Instant::now() < deadline, "{what}: the dead writer stays");
            match inbox.recv_from_timeout(&mut buf, Duration::from_millis(5)) {
                Ok((n, from)) => {
                    assert_eq!(from.pid, victim.pid().as_raw_nonzero().get(), "{what}");
                    let len = lens.below_or_eq(INBOX_MAX_LEN);
                    if let Err(e) = message::verify(seq, len, &buf[..n]) {
                        panic!("{what}: {e}");
                    }
                    seq += 1;
                    last_message = Some(Instant::now());
                }
                Err(Error::TimedOut) => {}
                Err(e) => panic!("{what}: {e}"),
            }
            if killer.is_finished() && inbox.writer_count() == 1 {
                break Instant::now();
            }
        };
        let killed = killer.join().expect("the killer thread");
        expect_killed(&mut victim);
        // The victim is dead and reaped (its count is final) and dropped by the inbox.
        acked.assert_all_received(seq, &what);
        drop(acked);
        let from = last_message.map_or(killed, |t| t.max(killed));
        drained.latencies.push(gone.saturating_duration_since(from));
        drained.messages += seq;
        drained.points += 1;
        // The survivors are served: the idle writer wakes the inbox, so does a new one.
        // The survivors are served, and wake the inbox from its sleep on the doorbell: the
        // idle writer, then a new one, each sending from another thread once the inbox sleeps.
        let newcomer = Conn::connect(&ep).expect("a new writer");
        for (who, mut conn) in [("witness", witness), ("new", newcomer)] {
            let sender = std::thread::spawn(move || {
                std::thread::sleep(SURVIVOR_SEND_DELAY);
                let t = Instant::now();
                conn.send(who.as_bytes()).expect("a surviving writer");
                (t, conn)
            });
            let (n, _) = inbox
                .recv_from_timeout(&mut buf, STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{what}: {who}: {e}"));
            let received = Instant::now();
            assert_eq!(&buf[..n], who.as_bytes(), "{what}");
            let (sent, conn) = sender.join().expect("the surviving writer");
            woken
                .latencies
                .push(received.saturating_duration_since(sent));
            woken.points += 1;
            drop(conn);
        }
        let t = Instant::now();
        while inbox.writer_count() > 0 {
            assert!(t.elapsed() < STEP_TIMEOUT, "{what}: closed writers stay");
            std::thread::sleep(Duration::from_micros(200));
        }
        let name = ep.trim_start_matches("shm://");
        assert_eq!(
            leaks::runtime_files(dir, &ep),
            [format!("{name}.lock"), format!("{name}.sock")],
            "{what}"
        );
        leaks::assert_fds_return_to(&baseline, &what);
        leaks::assert_mappings_return_to(&maps, &what);
    }
    drop(inbox);
    assert_eq!(leaks::runtime_files(dir, &ep), Vec::<String>::new());
    (drained, woken)
}

fn run(points: usize, seed: u64) {
    let _serial = crate::serial();
    let shm_before = leaks::dev_shm();
    let mut rng = SplitMix64::new(seed);
    let t = Instant::now();
    let mut publisher = publisher_cell(points, &mut rng);
    let (mut full, mut full_woken) = inbox_cell(InboxCell::FullRing, points, &mut rng);
    let (mut bell, mut bell_woken) = inbox_cell(InboxCell::Doorbell, points, &mut rng);
    leaks::assert_dev_shm_unchanged(&shm_before, "crash matrix of the patterns");
    eprintln!(
        "crash matrix of the patterns (seed {seed:#x}) in {:.1?}:",
        t.elapsed()
    );
    publisher.print("publisher/loan", "PeerGone seen after");
    full.print("inbox-writer/full-ring", "dropped (5 ms polls) after");
    full_woken.print("  (surviving writers)", "a send woke the inbox after");
    bell.print("inbox-writer/doorbell", "dropped (5 ms polls) after");
    bell_woken.print("  (surviving writers)", "a send woke the inbox after");
}

fn seed() -> u64 {
    crate::crash::seed_or(0x10a0_dead_0f1b_0c0c)
}

/// 48 kill points (16 per cell), the CI version.
#[test]
fn sigkilled_publisher_or_inbox_writer_leaves_whole_messages_and_no_leaks() {
    run(CI_POINTS_PER_CELL, seed());
}

/// The long run: 3,000 kill points (`cargo test --release -p shmsock --test resilience
/// -- --ignored crash_patterns_long`).
#[test]
#[ignore = "long run (3,000 kill points); see the README"]
fn crash_patterns_long() {
    run(LONG_POINTS_PER_CELL, seed() ^ 0x5678);
}
