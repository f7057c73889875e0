//! The crash matrix: a peer process is SIGKILLed at random moments of every phase of a
//! connection's life, and the survivor (this process) checks what it got.
//!
//! | cell                 | victim (child)                    | survivor (us)               |
//! |----------------------|-----------------------------------|-----------------------------|
//! | writer/send          | streaming                         | reading (Adaptive)          |
//! | writer/full-ring     | blocked on a full ring (any strategy) | not reading, then draining |
//! | writer/futex         | streaming in bursts (Blocking)    | asleep in futex (Blocking)  |
//! | reader/recv          | reading                           | streaming (Adaptive)        |
//! | reader/full-ring     | reading slowly (any strategy)     | blocked on a full ring      |
//! | reader/futex         | asleep in futex (Blocking)        | sending in bursts (Blocking)|
//! | connector/handshake  | library connect killed at a random µs, or a raw connector killed after each step | in `accept` |
//! | listener/handshake   | library listener killed at a random µs, or a raw listener killed after each step | in `connect` |
//!
//! After every kill: every message delivered was whole, in order and exactly once (seq +
//! checksum, checked by whichever side reads); a killed writer's messages that its `send`
//! accepted all arrived ([`Acked`]: acknowledged, then lost, is a failure); the survivor
//! gets `PeerGone` (never `PeerClosed`) within [`PEER_DEATH_BOUND`] of the moment there
//! was nothing left to read; a new connection on the same name works; and our fd count,
//! our mappings of segments, the rendezvous directory and `/dev/shm` are back to what they
//! were.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Listener, Options, WaitStrategy};

use crate::acked::Acked;
use crate::leaks;
use crate::roles::{
    is_handshake_casualty, strategy_name, EXIT_BAD_MESSAGE, MAX_LEN_ENV, PACE_ENV, RING_ENV,
    SEED_ENV, START_AT_ENV, STEP_ENV, STRATEGY_ENV,
};
use shmsock_testkit::harness::{self, Peer, Verdict, PEER_DEATH_BOUND, STEP_TIMEOUT};
use shmsock_testkit::message::{self, SplitMix64};

/// Kill points per cell in CI (8 cells: 320 points).
const CI_POINTS_PER_CELL: usize = 40;
/// Kill points per cell of the long run (8 cells: 10,000 points).
const LONG_POINTS_PER_CELL: usize = 1250;
/// Ring capacity of both sides: small, so rings fill and drain within milliseconds.
const RING_BYTES: usize = 16 * 1024;
const MAX_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    WriterSend,
    WriterFullRing,
    WriterFutex,
    ReaderRecv,
    ReaderFullRing,
    ReaderFutex,
    ConnectorHandshake,
    ListenerHandshake,
}

const CELLS: [Cell; 8] = [
    Cell::WriterSend,
    Cell::WriterFullRing,
    Cell::WriterFutex,
    Cell::ReaderRecv,
    Cell::ReaderFullRing,
    Cell::ReaderFutex,
    Cell::ConnectorHandshake,
    Cell::ListenerHandshake,
];

impl Cell {
    fn name(self) -> &'static str {
        match self {
            Cell::WriterSend => "writer/send",
            Cell::WriterFullRing => "writer/full-ring",
            Cell::WriterFutex => "writer/futex",
            Cell::ReaderRecv => "reader/recv",
            Cell::ReaderFullRing => "reader/full-ring",
            Cell::ReaderFutex => "reader/futex",
            Cell::ConnectorHandshake => "connector/handshake",
            Cell::ListenerHandshake => "listener/handshake",
        }
    }

    /// The survivor's wait strategy.
    fn survivor_strategy(self) -> WaitStrategy {
        match self {
            Cell::WriterFutex | Cell::ReaderFutex => WaitStrategy::Blocking,
            _ => WaitStrategy::Adaptive,
        }
    }
}

/// What one kill point produced.
struct Outcome {
    /// How long the survivor took to report the death once nothing was left to read
    /// (`None`: the child was killed before it ever connected).
    latency: Option<Duration>,
    /// Where the kill landed, for the summary ("stream", "before", "during", "after").
    class: &'static str,
}

struct Matrix {
    rng: SplitMix64,
    latencies: BTreeMap<Cell, Vec<Duration>>,
    classes: BTreeMap<(Cell, &'static str), usize>,
    points: usize,
    messages: u64,
}

fn random_strategy(rng: &mut SplitMix64) -> WaitStrategy {
    [
        WaitStrategy::BusyPoll,
        WaitStrategy::Adaptive,
        WaitStrategy::Blocking,
    ][rng.below_or_eq(2)]
}

fn micros(rng: &mut SplitMix64, max: usize) -> Duration {
    Duration::from_micros(rng.below_or_eq(max) as u64)
}

impl Matrix {
    fn run(points_per_cell: usize, seed: u64) {
        let mut m = Matrix {
            rng: SplitMix64::new(seed),
            latencies: BTreeMap::new(),
            classes: BTreeMap::new(),
            points: 0,
            messages: 0,
        };
        let dir = harness::setup();
        let shm_before = leaks::dev_shm();
        let t = Instant::now();
        for cell in CELLS {
            let ep = harness::endpoint(&format!("crash-{}", cell.name().replace('/', "-")));
            let options = Options::new()
                .ring_capacity(RING_BYTES)
                .wait_strategy(cell.survivor_strategy());
            // The survivor listens in every cell but the one where the listener dies.
            let listener = (cell != Cell::ListenerHandshake).then(|| harness::bind(&ep, options));
            let baseline = leaks::open_fds();
            let maps = leaks::segment_mappings();
            for i in 0..points_per_cell {
                let outcome = match cell {
                    Cell::WriterSend | Cell::WriterFullRing | Cell::WriterFutex => {
                        m.writer_dies(listener.as_ref().expect("bound"), &ep, cell)
                    }
                    Cell::ReaderRecv | Cell::ReaderFullRing | Cell::ReaderFutex => {
                        m.reader_dies(listener.as_ref().expect("bound"), &ep, cell)
                    }
                    Cell::ConnectorHandshake => {
                        m.connector_dies(listener.as_ref().expect("bound"), &ep, i)
                    }
                    Cell::ListenerHandshake => m.listener_dies(&ep, i),
                };
                let what = format!("{} point {i} (seed {seed:#x})", cell.name());
                if let Some(l) = outcome.latency {
                    assert!(
                        l < PEER_DEATH_BOUND,
                        "{what}: the death was reported {l:?} after there was nothing left to read"
                    );
                    m.latencies.entry(cell).or_default().push(l);
                }
                *m.classes.entry((cell, outcome.class)).or_default() += 1;
                m.points += 1;
                after_point(&ep, listener.as_ref(), (&baseline, &maps), dir, &what);
            }
            drop(listener);
            assert!(
                leaks::runtime_files(dir, &ep).is_empty(),
                "{}: the name is left behind",
                cell.name()
            );
        }
        leaks::assert_dev_shm_unchanged(&shm_before, "crash matrix");
        m.summary(t.elapsed());
    }

    fn summary(&mut self, took: Duration) {
        let mut all: Vec<Duration> = self.latencies.values().flatten().copied().collect();
        eprintln!(
            "crash matrix: {} kill points in {took:.1?}, {} messages checked",
            self.points, self.messages
        );
        for (cell, v) in &mut self.latencies {
            let classes: Vec<String> = self
                .classes
                .iter()
                .filter(|((c, _), _)| c == cell)
                .map(|((_, k), n)| format!("{k} {n}"))
                .collect();
            eprintln!(
                "  {:<20} death seen after p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  ({} samples; {})",
                cell.name(),
                leaks::percentile(v, 50.0),
                leaks::percentile(v, 99.0),
                v.last().copied().unwrap_or_default(),
                v.len(),
                classes.join(", ")
            );
        }
        eprintln!(
            "  {:<20} death seen after p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  ({} samples)",
            "all",
            leaks::percentile(&mut all, 50.0),
            leaks::percentile(&mut all, 99.0),
            all.last().copied().unwrap_or_default(),
            all.len()
        );
    }

    /// The end of a stream cut by `killer` after `seq` messages: `end` must be `PeerGone`
    /// and the child must have died by the kill. Counts the messages; returns the instant
    /// just before the kill.
    fn stream_cut_by_kill(
        &mut self,
        cell: Cell,
        peer: &mut Peer,
        killer: JoinHandle<Instant>,
        seq: u64,
        end: &Error,
    ) -> Instant {
        let killed = killer.join().expect("the killer thread");
        assert!(
            matches!(end, Error::PeerGone { .. }),
            "{}: after {seq} messages: {end:?}, expected PeerGone",
            cell.name()
        );
        expect_killed(peer);
        self.messages += seq;
        killed
    }

    /// The child streams to us and dies; we check every message, then expect `PeerGone`
    /// and every message its `send` accepted.
    fn writer_dies(&mut self, listener: &Listener, ep: &str, cell: Cell) -> Outcome {
        let rng = &mut self.rng;
        let seed = rng.next_u64();
        let (strategy, pace, delay) = match cell {
            Cell::WriterSend => (WaitStrategy::Adaptive, "none", micros(rng, 15_000)),
            Cell::WriterFullRing => (
                random_strategy(rng),
                "none",
                Duration::from_millis(2) + micros(rng, 18_000),
            ),
            _ => (WaitStrategy::Blocking, "burst", micros(rng, 30_000)),
        };
        let acked = Acked::create();
        let mut peer = Peer::spawn(
            "crash_writer",
            ep,
            &[
                (STRATEGY_ENV, strategy_name(strategy)),
                (RING_ENV, &RING_BYTES.to_string()),
                (PACE_ENV, pace),
                (SEED_ENV, &seed.to_string()),
                (MAX_LEN_ENV, &MAX_LEN.to_string()),
                acked.env(),
            ],
        );
        let mut conn = harness::accept(listener).expect("accepting the writer");
        peer.expect("ready");
        let killer = harness::kill_after(peer.pid(), delay);
        if cell == Cell::WriterFullRing {
            // Not reading: the writer fills the ring and waits for space until it dies.
            std::thread::sleep(delay + Duration::from_millis(3));
        }
        let mut lens = message::lengths(seed);
        let mut buf = vec![0u8; MAX_LEN];
        let mut last_message = None;
        let mut seq = 0u64;
        let end = loop {
            match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
                Ok(n) => {
                    if let Err(what) = message::verify(seq, lens.below_or_eq(MAX_LEN), &buf[..n]) {
                        panic!("{} (strategy {strategy:?}): {what}", cell.name());
                    }
                    seq += 1;
                    last_message = Some(Instant::now());
                }
                Err(e) => break e,
            }
        };
        let ended = Instant::now();
        let killed = self.stream_cut_by_kill(cell, &mut peer, killer, seq, &end);
        // The child is dead and reaped: its count is final.
        acked.assert_all_received(seq, &format!("{} (strategy {strategy:?})", cell.name()));
        let from = last_message.map_or(killed, |t| t.max(killed));
        Outcome {
            latency: Some(ended.saturating_duration_since(from)),
            class: "stream",
        }
    }

    /// We stream to the child, which checks every message and dies; our `send` must report
    /// `PeerGone` once the ring the dead reader no longer drains is full.
    fn reader_dies(&mut self, listener: &Listener, ep: &str, cell: Cell) -> Outcome {
        let rng = &mut self.rng;
        let seed = rng.next_u64();
        let (strategy, pace, delay) = match cell {
            Cell::ReaderRecv => (WaitStrategy::Adaptive, "none", micros(rng, 15_000)),
            Cell::ReaderFullRing => (random_strategy(rng), "slow", micros(rng, 20_000)),
            _ => (WaitStrategy::Blocking, "none", micros(rng, 30_000)),
        };
        let mut peer = Peer::spawn(
            "crash_reader",
            ep,
            &[
                (STRATEGY_ENV, strategy_name(strategy)),
                (PACE_ENV, pace),
                (SEED_ENV, &seed.to_string()),
                (MAX_LEN_ENV, &MAX_LEN.to_string()),
            ],
        );
        let mut conn = harness::accept(listener).expect("accepting the reader");
        peer.expect("ready");
        let dead = Arc::new(AtomicBool::new(false));
        let killer = {
            let (pid, dead) = (peer.pid(), dead.clone());
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let t = harness::kill_pid(pid);
                dead.store(true, Ordering::Release);
                t
            })
        };
        let (mut lens, mut body) = (message::lengths(seed), message::bodies(seed));
        let mut pause = SplitMix64::new(seed ^ 0x77);
        let mut buf = vec![0u8; MAX_LEN];
        let mut seq = 0u64;
        let end = loop {
            let msg = &mut buf[..lens.below_or_eq(MAX_LEN)];
            message::encode(seq, &mut body, msg);
            if let Err(e) = conn.send_timeout(msg, STEP_TIMEOUT) {
                break e;
            }
            seq += 1;
            // Bursts and pauses leave the Blocking reader asleep in futex_wait; once the
            // reader is dead we send flat out, so the measured time is the detection's.
            if cell == Cell::ReaderFutex
                && !dead.load(Ordering::Acquire)
                && pause.below_or_eq(20) == 0
            {
                std::thread::sleep(micros(&mut pause, 3000));
            }
        };
        let ended = Instant::now();
        let killed = self.stream_cut_by_kill(cell, &mut peer, killer, seq, &end);
        Outcome {
            latency: Some(ended.saturating_duration_since(killed)),
            class: "stream",
        }
    }

    /// A connector dies during the handshake; `accept` must fail promptly with a typed
    /// error (or succeed, then report `PeerGone`), and the listener serve the next one.
    fn connector_dies(&mut self, listener: &Listener, ep: &str, i: usize) -> Outcome {
        if i.is_multiple_of(2) {
            // The library's connect, killed at a random microsecond of its handshake.
            let start_at =
                std::time::UNIX_EPOCH.elapsed().expect("clock") + Duration::from_millis(60);
            let mut peer = Peer::spawn(
                "connect_at",
                ep,
                &[(START_AT_ENV, &start_at.as_nanos().to_string())],
            );
            let kill_at = start_at + micros(&mut self.rng, 3000);
            std::thread::scope(|s| {
                let accepting =
                    s.spawn(|| harness::verdict_within(listener, Duration::from_millis(700)));
                sleep_until_epoch(kill_at);
                let killed = peer.kill();
                let (verdict, returned) = accepting.join().expect("the accepting thread");
                expect_killed(&mut peer);
                accept_outcome(verdict, returned, killed, "connector")
            })
        } else {
            // A raw connector killed right after step 0..=3 of the protocol.
            let step = (i / 2) % 4;
            let mut peer = Peer::spawn("raw_connector", ep, &[(STEP_ENV, &step.to_string())]);
            std::thread::scope(|s| {
                let accepting = s.spawn(|| harness::verdict_within(listener, STEP_TIMEOUT));
                assert_eq!(peer.expect("step"), step.to_string());
                let killed = peer.kill();
                let (verdict, returned) = accepting.join().expect("the accepting thread");
                expect_killed(&mut peer);
                let mut o = accept_outcome(verdict, returned, killed, "raw connector");
                assert!(o.latency.is_some(), "raw connector step {step}: no outcome");
                o.class = ["raw step 0", "raw step 1", "raw step 2", "raw step 3"][step];
                o
            })
        }
    }

    /// A listener dies during the handshake; `connect` must fail promptly with a typed error
    /// (or succeed, then report `PeerGone`).
    fn listener_dies(&mut self, ep: &str, i: usize) -> Outcome {
        if i.is_multiple_of(2) {
            let mut peer = Peer::spawn("listen", ep, &[]);
            peer.expect("ready");
            let delay = micros(&mut self.rng, 3000);
            std::thread::scope(|s| {
                let connecting = s.spawn(|| {
                    let r = Conn::connect(ep);
                    (r, Instant::now())
                });
                std::thread::sleep(delay);
                let killed = peer.kill();
                let (connected, returned) = connecting.join().expect("the connecting thread");
                expect_killed(&mut peer);
                handshake_outcome(connected, returned, killed, "listener")
            })
        } else {
            let step = (i / 2) % 3;
            let mut peer = Peer::spawn("raw_listener", ep, &[(STEP_ENV, &step.to_string())]);
            peer.expect("ready");
            std::thread::scope(|s| {
                let connecting = s.spawn(|| {
                    let r = Conn::connect(ep);
                    (r, Instant::now())
                });
                assert_eq!(peer.expect("step"), step.to_string());
                let killed = peer.kill();
                let (connected, returned) = connecting.join().expect("the connecting thread");
                expect_killed(&mut peer);
                assert!(
                    connected.is_err(),
                    "raw listener step {step} never sent the ACK, yet connect succeeded"
                );
                let mut o = handshake_outcome(connected, returned, killed, "raw listener");
                o.class = ["raw step 0", "raw step 1", "raw step 2"][step];
                o
            })
        }
    }
}

fn sleep_until_epoch(t: Duration) {
    let now = std::time::UNIX_EPOCH.elapsed().expect("clock");
    std::thread::sleep(t.saturating_sub(now));
}

/// Classifies what `accept`/`connect` returned when its peer was killed mid-handshake.
/// What a listener made of a connector killed around its handshake: dropped (logged, and
/// `accept` went on), accepted (then the connection reports the death), or nothing (it
/// was killed before it connected).
fn accept_outcome(verdict: Verdict, seen: Instant, killed: Instant, who: &str) -> Outcome {
    match verdict {
        Verdict::Nothing => Outcome {
            latency: None,
            class: "before",
        },
        Verdict::Dropped(line) => {
            assert!(
                line.contains("peer_pid="),
                "{who} killed mid-handshake: the warning names its pid: {line}"
            );
            Outcome {
                latency: Some(seen.saturating_duration_since(killed)),
                class: "during",
            }
        }
        Verdict::Accepted(conn) => handshake_outcome(Ok(conn), seen, killed, who),
        Verdict::Failed(e) => panic!("{who} killed mid-handshake made accept fail: {e:?}"),
    }
}

fn handshake_outcome(
    r: shmsock::Result<Conn>,
    returned: Instant,
    killed: Instant,
    who: &str,
) -> Outcome {
    match r {
        Err(Error::TimedOut) => Outcome {
            latency: None,
            class: "before",
        },
        Err(e) => {
            assert!(
                is_handshake_casualty(&e),
                "{who} killed mid-handshake: {e:?}"
            );
            Outcome {
                latency: Some(returned.saturating_duration_since(killed)),
                class: "during",
            }
        }
        Ok(mut conn) => {
            // The handshake completed before the kill: the connection reports the death.
            let mut buf = [0u8; 8];
            let end = conn.recv_timeout(&mut buf, STEP_TIMEOUT);
            let ended = Instant::now();
            assert!(
                matches!(end, Err(Error::PeerGone { .. })),
                "{who} killed after the handshake: {end:?}, expected PeerGone"
            );
            Outcome {
                latency: Some(ended.saturating_duration_since(killed.max(returned))),
                class: "after",
            }
        }
    }
}

/// The child must have died of our SIGKILL, not of its own failure.
pub fn expect_killed(peer: &mut Peer) {
    let status = peer.wait();
    if status.code() == Some(EXIT_BAD_MESSAGE) {
        panic!("the reader child received a torn, lost or duplicated message (see its stderr)");
    }
    assert_eq!(
        status.signal(),
        Some(9),
        "the child should have died of SIGKILL: {status}"
    );
}

/// After a kill point: a new connection on the same name works, and nothing is left over
/// (`baseline`: our fds and segment mappings before the cell).
fn after_point(
    ep: &str,
    listener: Option<&Listener>,
    (baseline, maps): (&[(u32, String)], &[String]),
    dir: &std::path::Path,
    what: &str,
) {
    // After a dead listener, its socket is stale: binding the name again must work.
    let temporary = listener
        .is_none()
        .then(|| Listener::bind(ep).unwrap_or_else(|e| panic!("{what}: rebinding: {e}")));
    let l = listener.or(temporary.as_ref()).expect("a listener");
    let ep2 = ep.to_owned();
    let client = std::thread::spawn(move || -> shmsock::Result<()> {
        let mut c = Conn::connect(&ep2)?;
        c.send(b"again")?;
        let mut buf = [0u8; 8];
        c.recv_timeout(&mut buf, STEP_TIMEOUT).map(drop)
    });
    let mut conn = harness::accept(l).unwrap_or_else(|e| panic!("{what}: reconnecting: {e}"));
    let mut buf = [0u8; 8];
    let n = conn
        .recv_timeout(&mut buf, STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: message on the new connection: {e}"));
    assert_eq!(&buf[..n], b"again");
    leaks::assert_mappings_seen(maps, what);
    conn.send(b"ok").expect("reply on the new connection");
    client
        .join()
        .expect("the reconnecting thread")
        .unwrap_or_else(|e| panic!("{what}: reconnecting client: {e}"));
    drop(conn);
    let expected: Vec<String> = match listener {
        Some(_) => {
            let name = ep.trim_start_matches("shm://");
            vec![format!("{name}.lock"), format!("{name}.sock")]
        }
        None => {
            drop(temporary);
            Vec::new()
        }
    };
    assert_eq!(
        leaks::runtime_files(dir, ep),
        expected,
        "{what}: rendezvous directory"
    );
    leaks::assert_fds_return_to(baseline, what);
    leaks::assert_mappings_return_to(maps, what);
}

fn points(default: usize) -> usize {
    std::env::var("SHMSOCK_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(default, |total| total.div_ceil(CELLS.len()))
}

/// The seed of a crash matrix's random kill moments: `SHMSOCK_CRASH_SEED`, or `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var("SHMSOCK_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    seed_or(0xc0ff_ee00_dead_beef)
}

/// 320 kill points (40 per cell), the CI version. `SHMSOCK_CRASH_POINTS` and
/// `SHMSOCK_CRASH_SEED` change the count and the random moments.
#[test]
fn sigkill_at_random_moments_leaves_whole_messages_prompt_peer_gone_and_no_leaks() {
    let _serial = crate::serial();
    Matrix::run(points(CI_POINTS_PER_CELL), seed());
}

/// The long run: 10,000 kill points (`cargo test --release -p shmsock --test resilience
/// -- --ignored crash_matrix_long`).
#[test]
#[ignore = "long run (10,000 kill points); see the README"]
fn crash_matrix_long() {
    let _serial = crate::serial();
    Matrix::run(points(LONG_POINTS_PER_CELL), seed() ^ 0x1234);
}
