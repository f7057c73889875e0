//! Upgrade: what a `tcp://` subscriber on the same machine gets when it moves to its
//! publisher's shared-memory ring by itself (`Options::upgrade`, on by default), next to the
//! same subscriber kept on loopback TCP (`upgrade(false)` on both sides) and to `shm://`
//! direct. Three paths, every one a `shmsock::Publisher` in one process and a
//! `shmsock::Subscriber` in another (forked) one, library defaults otherwise (`Adaptive`
//! waits, `Overflow::Block`, 1 MiB rings):
//!
//! ```text
//! tcp-upgraded    Publisher tcp://127.0.0.1:0 ──▶ Subscriber tcp://…  (moves to the hidden ring)
//! tcp-no-upgrade  the same, Options::upgrade(false) on both sides      (stays on loopback TCP)
//! shm             Publisher shm://lab-…       ──▶ Subscriber shm://…
//! ```
//!
//! **Round trip (64 B).** Publish/subscribe has no reply path, and a PAIR connection does
//! not upgrade, so a round trip goes out through one publisher/subscriber pair and back
//! through a second one in the other direction, both on the path measured: the parent
//! publishes on A, the child subscribes to A and republishes every message on its own
//! publisher B, the parent subscribes to B. Each round trip (send on A to receive on B) is
//! timed into an HDR histogram; one message in flight. On `tcp-upgraded` both subscribers
//! must have moved: the two directions are both shared memory, as with `shm`.
//!
//! **Stream (64 B and 4 KiB).** The parent publishes numbered messages back to back (it
//! waits for the slowest subscriber, `Overflow::Block`); the child subscriber checks every
//! sequence number and times its window from the first measured message to the stop message,
//! as the throughput experiment's receiver does.
//!
//! **The upgrade is checked, never assumed.** A subscriber moves at the first message
//! published after it connected, once its claim on the ring has been accepted. Before
//! measuring, the parent exchanges messages with the child one at a time (the round trip's
//! warm-up, or a handshake before the stream) until both ends say where their subscriber
//! reads from (`Subscriber::is_shared_memory`), for at most [`MOVE_TIMEOUT`]. Then every
//! measured message is checked on the receiving side: on `tcp-upgraded` a subscriber still
//! on TCP fails the row loudly, and on `tcp-no-upgrade` one that moved fails it too, so a
//! TCP number is never reported as an upgraded one, nor the reverse.
//!
//! The table compares `tcp-upgraded` with `shm` (the bar: within [`BAR_VS_SHM`] of it, for
//! the round trip's median and for the stream's time per message) and with
//! `tcp-no-upgrade` (what moving gains).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use shmsock::{Options, Publisher, Subscriber};

use super::throughput::cpu_pct;
use super::{
    get_seq, port_of, publish_bound, put_seq, send_numbered, wait_bound, Budget, Budgets,
    NumberedStream, SEQ_STOP, WATCHDOG_MARGIN,
};
use crate::error::LabError;
use crate::format::{bar_verdict, fmt_count, fmt_ns, fmt_ratio, fmt_size};
use crate::host::{HostInfo, Pinning};
use crate::mechanisms::shmsock::{lib, retry_refused, unique_endpoint};
use crate::process::{outcome, wait_ack, wait_until, ChildStats, Children, Pause};
use crate::rounds::{self, RoundRow, Spread};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::stats::Percentiles;
use crate::table::Table;

/// One path at one message size: the round trip through two publisher/subscriber pairs
/// (64 B rows) and the stream of one publisher to one subscriber process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeRow {
    /// `tcp-upgraded`, `tcp-no-upgrade` or `shm`.
    pub path: String,
    /// Message size in bytes.
    pub size: usize,
    /// Round trips (out through one publisher/subscriber pair, back through another), ns;
    /// `None` at sizes where only the stream is measured.
    pub round_trip: Option<Percentiles>,
    /// Round trips timed.
    pub round_trips: u64,
    /// Messages per second of the stream, measured by the subscriber.
    pub msgs_per_s: u64,
    /// Messages in the stream's measured window.
    pub messages: u64,
    /// The subscriber's window, seconds.
    pub seconds: f64,
    /// CPU use of the subscriber's thread over its window, % of one CPU.
    pub subscriber_cpu_pct: f64,
    /// Whether the time cap ended the stream before all its messages were sent.
    pub capped: bool,
    /// Whether every measured message was read from shared memory (checked on each one).
    pub shared_memory: bool,
    /// Messages the stream's subscriber had received (over TCP) when it was first seen on
    /// shared memory; `None` on paths that do not move.
    pub moved_after: Option<u64>,
    /// `tcp-upgraded` rows: round-trip p50 / `shm`'s at the same size.
    #[serde(default)]
    pub p50_vs_shm: Option<f64>,
    /// `tcp-upgraded` rows: `msgs_per_s` / `shm`'s at the same size.
    #[serde(default)]
    pub rate_vs_shm: Option<f64>,
    /// `tcp-upgraded` rows: round-trip p50 / `tcp-no-upgrade`'s at the same size.
    #[serde(default)]
    pub p50_vs_tcp: Option<f64>,
    /// `tcp-upgraded` rows: `msgs_per_s` / `tcp-no-upgrade`'s at the same size.
    #[serde(default)]
    pub rate_vs_tcp: Option<f64>,
    /// The row is its median round by stream rate, with the round trip of the median round
    /// by p50; this is the spread of the rates (0 rounds in reports from before rounds).
    #[serde(default)]
    pub spread: Spread,
}

impl RoundRow for UpgradeRow {
    fn key(&self) -> f64 {
        self.msgs_per_s as f64
    }
    fn spread_mut(&mut self) -> &mut Spread {
        &mut self.spread
    }
}

/// One row from its rounds: the median round by stream rate (with the spread of the rates),
/// carrying the round trip of the median round by p50 (each half of a row has its own
/// noise: the two medians need not come from one round).
pub(crate) fn median_of(rounds: Vec<UpgradeRow>) -> Option<UpgradeRow> {
    let mut trips: Vec<(Percentiles, u64)> = rounds
        .iter()
        .filter_map(|r| r.round_trip.map(|p| (p, r.round_trips)))
        .collect();
    trips.sort_by_key(|(p, _)| p.p50_ns);
    let trip = trips.get(trips.len().saturating_sub(1) / 2).copied();
    let mut row = rounds::median(rounds, false, 0)?;
    if let Some((p, n)) = trip {
        row.round_trip = Some(p);
        row.round_trips = n;
    }
    Some(row)
}

/// One way from a publisher process to a subscriber process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `tcp://127.0.0.1`, upgrade on (the default): the subscriber must move.
    TcpUpgraded,
    /// `tcp://127.0.0.1`, `Options::upgrade(false)` on both sides: it must not.
    TcpNoUpgrade,
    /// `shm://` direct.
    Shm,
}

/// The paths, in table order.
pub const PATHS: [Path; 3] = [Path::TcpUpgraded, Path::TcpNoUpgrade, Path::Shm];
/// Stream sizes: the lab's small message and the Comparison's 4 KiB.
pub const SIZES: [usize; 2] = [64, 4096];
/// The size of the round trips.
pub const ROUND_TRIP_SIZE: usize = 64;
/// The bar: the upgraded path's cost per message within this factor of `shm://` direct.
pub const BAR_VS_SHM: f64 = 1.2;
/// How long the parent exchanges messages with the child, after the warm-up, waiting for the
/// subscribers to move to shared memory (or to be seen not to).
pub const MOVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Path {
    /// The row name.
    pub fn name(self) -> &'static str {
        match self {
            Path::TcpUpgraded => "tcp-upgraded",
            Path::TcpNoUpgrade => "tcp-no-upgrade",
            Path::Shm => "shm",
        }
    }

    /// Whether its subscribers must read shared memory once measuring starts.
    fn reads_shared_memory(self) -> bool {
        !matches!(self, Path::TcpNoUpgrade)
    }

    fn is_tcp(self) -> bool {
        !matches!(self, Path::Shm)
    }

    /// Publisher and subscriber options: the library's defaults, upgrade said explicitly.
    fn options(self) -> Options {
        Options::new().upgrade(!matches!(self, Path::TcpNoUpgrade))
    }

    /// What a subscriber on this path reading from `shared_memory` means, if it is wrong.
    fn check(self, shared_memory: bool, who: &str, seq: u64) -> Result<(), LabError> {
        if shared_memory == self.reads_shared_memory() {
            return Ok(());
        }
        let detail = if shared_memory {
            format!(
                "{who} read message {seq} from shared memory on {}, where upgrade is off on \
                 both sides: refusing to report it as a tcp:// number",
                self.name()
            )
        } else {
            format!(
                "{who} still read message {seq} over tcp:// on {}: it did not move to the \
                 publisher's shared-memory ring (Options::upgrade), so this row is not \
                 reported (a tcp:// number is not an upgraded one)",
                self.name()
            )
        };
        Err(LabError::Integrity { detail })
    }
}

/// How long a process waits for the other to bind, connect or answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshake messages before a stream carry `HELLO + i` (below [`SEQ_STOP`]).
const HELLO: u64 = 1 << 62;

/// The parent's tcp:// port (0 until bound; 1 for shm://).
const PARENT_PORT_OFFSET: usize = 0;
/// The child's tcp:// port for the round trip's way back (0 until bound; 1 for shm://).
const CHILD_PORT_OFFSET: usize = CACHE_LINE_BYTES;
/// Set by the child once its publisher counts the parent's subscriber (round trip).
const CHILD_READY_OFFSET: usize = 2 * CACHE_LINE_BYTES;
/// Children that failed.
const FAILED_OFFSET: usize = 3 * CACHE_LINE_BYTES;
/// The last handshake message the stream's subscriber received (Release, after the state).
const ACK_OFFSET: usize = 4 * CACHE_LINE_BYTES;
/// 1 + `is_shared_memory()` of the stream's subscriber at that message.
const STATE_OFFSET: usize = 4 * CACHE_LINE_BYTES + 8;
/// Messages the stream's subscriber received in its window (written before it returns).
const RECEIVED_OFFSET: usize = 5 * CACHE_LINE_BYTES;
/// Messages the subscriber had when it was first on shared memory (+1; 0: never).
const MOVED_OFFSET: usize = 5 * CACHE_LINE_BYTES + 8;
/// Set once the stream's subscriber has the stop message (the round trip: once the parent
/// has the stop message's echo).
const DONE_OFFSET: usize = 6 * CACHE_LINE_BYTES;
const REGION_BYTES: usize = 7 * CACHE_LINE_BYTES;

/// In a round-trip message, byte 8: 1 once the parent measures (the child checks its
/// subscriber from then on); byte 9 of the echo: 1 if the child's subscriber read it from
/// shared memory.
const MEASURED_BYTE: usize = 8;
const CHILD_SHM_BYTE: usize = 9;

/// Longest round trip the histogram holds (longer ones are clamped to it): 100 s.
const MAX_NS: u64 = 100_000_000_000;
/// The stream's publisher looks at the clock once per this many messages.
const CLOCK_CHECK_EVERY: u64 = 256;

/// The stream's budget at `size`: the throughput experiment's, its time cap kept to the
/// small messages' even for bulk ones (so the experiment stays short).
pub(crate) fn stream_budget(budgets: &Budgets, size: usize) -> Budget {
    let bulk = budgets.throughput_for(size);
    Budget {
        warmup_iters: bulk.warmup_iters,
        warmup_time: budgets.throughput.warmup_time,
        iters: bulk.iters,
        max_time: bulk.max_time.min(budgets.throughput.max_time),
    }
}

/// Measures `path` at `size`: the round trip (with `latency`, at [`ROUND_TRIP_SIZE`]) and
/// the stream (with `stream`).
pub(crate) fn measure(
    path: Path,
    size: usize,
    latency: Option<Budget>,
    stream: Budget,
    pinning: Pinning,
) -> Result<UpgradeRow, LabError> {
    if size < 16 {
        return Err(LabError::WrongSize {
            len: size,
            size: 16,
        });
    }
    let (round_trip, round_trips) = match latency {
        Some(budget) => {
            let (p, n) = measure_round_trip(path, size, budget, pinning)?;
            (Some(p), n)
        }
        None => (None, 0),
    };
    let streamed = measure_stream(path, size, stream, pinning)?;
    let seconds = streamed.stats.wall_ns.max(1) as f64 / 1e9;
    Ok(UpgradeRow {
        path: path.name().to_string(),
        size,
        round_trip,
        round_trips,
        msgs_per_s: (streamed.messages as f64 / seconds).round() as u64,
        messages: streamed.messages,
        seconds,
        subscriber_cpu_pct: cpu_pct(streamed.stats.cpu_ns, streamed.stats.wall_ns),
        capped: streamed.capped,
        shared_memory: path.reads_shared_memory(),
        moved_after: streamed.moved_after,
        p50_vs_shm: None,
        rate_vs_shm: None,
        p50_vs_tcp: None,
        rate_vs_tcp: None,
        spread: Spread::default(),
    })
}

/// The endpoints of one run: `shm://` names fixed before the fork, `tcp://` ports bound by
/// each side and published in the control region.
struct Ends {
    path: Path,
    /// The parent's shm:// publisher.
    parent_shm: String,
    /// The child's shm:// publisher (round trip).
    child_shm: String,
}

impl Ends {
    fn new(path: Path) -> Self {
        Self {
            path,
            parent_shm: unique_endpoint(),
            child_shm: unique_endpoint(),
        }
    }

    /// Binds this side's publisher and says so at `offset` (with its port over tcp://).
    fn bind(
        &self,
        control: &SharedRegion,
        offset: usize,
        shm: &str,
    ) -> Result<Publisher, LabError> {
        let endpoint = if self.path.is_tcp() {
            "tcp://127.0.0.1:0"
        } else {
            shm
        };
        let publisher =
            Publisher::bind_with(endpoint, self.path.options()).map_err(lib("publisher bind"))?;
        let port = if self.path.is_tcp() {
            Some(port_of(publisher.endpoint())?)
        } else {
            None
        };
        publish_bound(control, offset, port);
        Ok(publisher)
    }

    /// Connects to the publisher announced at `offset` (waiting for it to be bound).
    fn connect(
        &self,
        control: &SharedRegion,
        offset: usize,
        shm: &str,
    ) -> Result<Subscriber, LabError> {
        let failed = || {
            (control.atomic_u64(FAILED_OFFSET).load(Ordering::Acquire) > 0)
                .then_some("the other process failed before binding")
        };
        let what = "waiting for the publisher to be bound";
        let port = wait_bound(
            control,
            offset,
            what,
            Pause::Sleep(Duration::from_millis(1)),
            failed,
        )?;
        let endpoint = if self.path.is_tcp() {
            format!("tcp://127.0.0.1:{port}")
        } else {
            shm.to_string()
        };
        retry_refused(|| Subscriber::connect_with(&endpoint, self.path.options()))
            .map_err(lib("subscriber connect"))
    }
}

/// Records a failure of the child in `control` (so the parent stops waiting).
fn flag_failure(
    control: &SharedRegion,
    result: Result<ChildStats, LabError>,
) -> Result<ChildStats, LabError> {
    if result.is_err() {
        control
            .atomic_u64(FAILED_OFFSET)
            .fetch_add(1, Ordering::Release);
    }
    result
}

fn child_failed(control: &SharedRegion) -> bool {
    control.atomic_u64(FAILED_OFFSET).load(Ordering::Acquire) > 0
}

/// The round trips of `path`: parent publisher A → child subscriber → child publisher B →
/// parent subscriber. Returns the percentiles and how many were timed.
fn measure_round_trip(
    path: Path,
    size: usize,
    budget: Budget,
    pinning: Pinning,
) -> Result<(Percentiles, u64), LabError> {
    let ends = Ends::new(path);
    let control = SharedRegion::new(REGION_BYTES)?;
    let watchdog = budget.watchdog() + MOVE_TIMEOUT + 2 * READY_TIMEOUT + WATCHDOG_MARGIN;
    // The child first: the publishers run threads, and the lab forks only while it has none.
    let mut children = Children::new();
    children.fork("echo", pinning.child_cpu, watchdog, || {
        flag_failure(&control, echo(&ends, size, &control))
    })?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_NS, 3).map_err(|e| LabError::Integrity {
            detail: format!("creating the round-trip histogram: {e}"),
        })?;
    let result = ping(&ends, size, budget, &control, &mut hist);
    if result.is_err() {
        children.kill_all();
    }
    let (samples, _) = outcome("parent", result, children.reap(READY_TIMEOUT))?;
    Ok((Percentiles::from_histogram(&hist), samples))
}

/// The parent of a round trip: publish on A, receive the echo on B, until the budget is spent;
/// the warm-up goes on until both subscribers are where `path` wants them.
fn ping(
    ends: &Ends,
    size: usize,
    budget: Budget,
    control: &SharedRegion,
    hist: &mut Histogram<u64>,
) -> Result<u64, LabError> {
    let path = ends.path;
    let mut publisher = ends.bind(control, PARENT_PORT_OFFSET, &ends.parent_shm)?;
    let mut back = ends.connect(control, CHILD_PORT_OFFSET, &ends.child_shm)?;
    let failed = || child_failed(control).then_some("the echo process failed before the start");
    wait_until(
        "waiting for the echo process to subscribe and to count our subscriber",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(200)),
        || {
            publisher.subscriber_count() >= 1
                && control
                    .atomic_u64(CHILD_READY_OFFSET)
                    .load(Ordering::Acquire)
                    != 0
        },
        failed,
    )?;
    let mut msg = vec![0x5Au8; size];
    let mut echo = vec![0u8; size];
    // One round trip: returns its time and whether the child's subscriber, then ours, read it
    // from shared memory.
    let mut one = |seq: u64, measured: bool| -> Result<(u64, bool, bool), LabError> {
        put_seq(&mut msg, seq);
        msg[MEASURED_BYTE] = u8::from(measured);
        let start = Instant::now();
        publisher.send(&msg).map_err(lib("publisher send"))?;
        let n = recv_checked(&mut back, &mut echo, "the round trip's way back")?;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if n != size || get_seq(&echo[..n]) != Some(seq) {
            return Err(LabError::Integrity {
                detail: format!(
                    "expected the echo of message {seq} ({size} B), got {:?} ({n} B)",
                    get_seq(&echo[..n])
                ),
            });
        }
        Ok((ns, echo[CHILD_SHM_BYTE] == 1, back.is_shared_memory()))
    };
    let mut seq = 0u64;
    let warmup_end = Instant::now() + budget.warmup_time;
    while seq < budget.warmup_iters && Instant::now() < warmup_end {
        seq += 1;
        one(seq, false)?;
    }
    // Until both subscribers are where the path wants them (a move happens at a message sent
    // after the subscriber's claim on the ring was accepted).
    let want = path.reads_shared_memory();
    let deadline = Instant::now() + MOVE_TIMEOUT;
    loop {
        seq += 1;
        let (_, child_shm, parent_shm) = one(seq, false)?;
        if child_shm == want && parent_shm == want {
            break;
        }
        if Instant::now() >= deadline {
            path.check(child_shm, "the echo process's subscriber", seq)?;
            path.check(parent_shm, "the parent's subscriber", seq)?;
        }
    }
    let end = Instant::now() + budget.max_time;
    let mut samples = 0;
    while samples < budget.iters {
        seq += 1;
        let (ns, child_shm, parent_shm) = one(seq, true)?;
        path.check(child_shm, "the echo process's subscriber", seq)?;
        path.check(parent_shm, "the parent's subscriber", seq)?;
        hist.saturating_record(ns.clamp(1, MAX_NS));
        samples += 1;
        if samples % 64 == 0 && Instant::now() >= end {
            break;
        }
    }
    put_seq(&mut msg, SEQ_STOP);
    publisher.send(&msg).map_err(lib("publisher send"))?;
    recv_checked(&mut back, &mut echo, "the stop message's echo")?;
    // Release: the child keeps its publisher until it sees this.
    control.atomic_u64(DONE_OFFSET).store(1, Ordering::Release);
    Ok(samples)
}

/// Receives one message; a message larger than `buf` is an integrity failure.
fn recv_checked(
    sub: &mut Subscriber,
    buf: &mut [u8],
    what: &'static str,
) -> Result<usize, LabError> {
    sub.recv(buf).map_err(|e| LabError::Shmsock {
        what,
        detail: e.to_string(),
    })
}

/// The child of a round trip: subscribe to the parent, bind the way back, echo every message
/// (saying where it read it from) until the stop message.
fn echo(ends: &Ends, size: usize, control: &SharedRegion) -> Result<ChildStats, LabError> {
    let path = ends.path;
    let mut sub = ends.connect(control, PARENT_PORT_OFFSET, &ends.parent_shm)?;
    let mut back = ends.bind(control, CHILD_PORT_OFFSET, &ends.child_shm)?;
    wait_until(
        "waiting for the parent to subscribe to the way back",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(200)),
        || back.subscriber_count() >= 1,
        || None,
    )?;
    // Release: the parent starts once it sees this (Acquire).
    control
        .atomic_u64(CHILD_READY_OFFSET)
        .store(1, Ordering::Release);
    let window = super::Window::start();
    let mut buf = vec![0u8; size];
    loop {
        let n = recv_checked(&mut sub, &mut buf, "the echo's receive")?;
        let seq = get_seq(&buf[..n]);
        if n != size {
            return Err(LabError::Integrity {
                detail: format!("echo: message {seq:?} has {n} B, expected {size}"),
            });
        }
        let shm = sub.is_shared_memory();
        if buf[MEASURED_BYTE] == 1 {
            path.check(shm, "the echo process's subscriber", seq.unwrap_or(0))?;
        }
        buf[CHILD_SHM_BYTE] = u8::from(shm);
        back.send(&buf[..n]).map_err(lib("echo send"))?;
        if seq == Some(SEQ_STOP) {
            let stats = window.stop();
            // Keep the publisher until the parent has the echo.
            wait_until(
                "waiting for the parent to receive the last echo",
                READY_TIMEOUT,
                Pause::Sleep(Duration::from_micros(200)),
                // Acquire: pairs with the parent's Release store.
                || control.atomic_u64(DONE_OFFSET).load(Ordering::Acquire) != 0,
                || None,
            )?;
            return Ok(stats);
        }
    }
}

/// What the stream's subscriber measured.
struct Streamed {
    messages: u64,
    stats: ChildStats,
    capped: bool,
    moved_after: Option<u64>,
}

/// The stream of `path`: the parent publishes, the child subscribes and times.
fn measure_stream(
    path: Path,
    size: usize,
    budget: Budget,
    pinning: Pinning,
) -> Result<Streamed, LabError> {
    let ends = Ends::new(path);
    let control = SharedRegion::new(REGION_BYTES)?;
    let watchdog = budget.watchdog() + MOVE_TIMEOUT + 2 * READY_TIMEOUT + WATCHDOG_MARGIN;
    let mut children = Children::new();
    children.fork("subscriber", pinning.child_cpu, watchdog, || {
        flag_failure(
            &control,
            receive(&ends, size, budget.warmup_iters, &control),
        )
    })?;
    let result = stream(&ends, size, budget, &control);
    if result.is_err() {
        children.kill_all();
    }
    let ((sent, capped), stats) = outcome("publisher", result, children.reap(READY_TIMEOUT))?;
    let stats = stats.into_iter().next().ok_or(LabError::Integrity {
        detail: "the subscriber reported nothing".into(),
    })?;
    // Relaxed: the child has been reaped, which orders its whole life before this.
    let messages = control.atomic_u64(RECEIVED_OFFSET).load(Ordering::Relaxed);
    if messages == 0 || messages > sent {
        return Err(LabError::Integrity {
            detail: format!("the subscriber counted {messages} measured messages of {sent} sent"),
        });
    }
    let moved = control.atomic_u64(MOVED_OFFSET).load(Ordering::Relaxed);
    Ok(Streamed {
        messages,
        stats,
        capped,
        moved_after: (path == Path::TcpUpgraded && moved > 0).then(|| moved - 1),
    })
}

/// The stream's publisher: handshake until the subscriber is where `path` wants it, then
/// warm-up and measured messages back to back, then the stop message. Returns the measured
/// messages sent and whether the time cap ended the run.
fn stream(
    ends: &Ends,
    size: usize,
    budget: Budget,
    control: &SharedRegion,
) -> Result<(u64, bool), LabError> {
    let path = ends.path;
    let mut publisher = ends.bind(control, PARENT_PORT_OFFSET, &ends.parent_shm)?;
    let failed = || child_failed(control);
    wait_until(
        "waiting for the subscriber to connect",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(200)),
        || publisher.subscriber_count() >= 1,
        || failed().then_some("the subscriber failed before the start"),
    )?;
    let mut buf = vec![0x5Au8; size];
    let deadline = Instant::now() + MOVE_TIMEOUT;
    let want = path.reads_shared_memory();
    let mut hello = HELLO;
    loop {
        hello += 1;
        put_seq(&mut buf, hello);
        publisher.send(&buf).map_err(lib("publisher send"))?;
        wait_ack(
            control,
            ACK_OFFSET,
            hello,
            READY_TIMEOUT,
            "waiting for the subscriber to receive a handshake message",
            "the subscriber",
            &failed,
        )?;
        // Relaxed: ordered by the Acquire load of the acknowledgement.
        let shm = control.atomic_u64(STATE_OFFSET).load(Ordering::Relaxed) == 2;
        if shm == want {
            break;
        }
        if Instant::now() >= deadline {
            path.check(shm, "the subscriber", hello - HELLO)?;
        }
    }
    let (_, _) = send_numbered::<CLOCK_CHECK_EVERY>(
        &mut buf,
        0,
        budget.warmup_iters,
        budget.warmup_time,
        |m| publisher.send(m).map_err(lib("publisher send")),
    )?;
    let (sent, capped) = send_numbered::<CLOCK_CHECK_EVERY>(
        &mut buf,
        budget.warmup_iters,
        budget.iters,
        budget.max_time,
        |m| publisher.send(m).map_err(lib("publisher send")),
    )?;
    put_seq(&mut buf, SEQ_STOP);
    publisher.send(&buf).map_err(lib("publisher send"))?;
    // Keep the publisher until the subscriber has everything.
    wait_until(
        "waiting for the subscriber to receive the stop message",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(200)),
        // Acquire: pairs with the subscriber's Release store after its last message.
        || control.atomic_u64(DONE_OFFSET).load(Ordering::Acquire) != 0,
        || failed().then_some("the subscriber failed during the stream"),
    )?;
    Ok((sent, capped))
}

/// The stream's subscriber: acknowledge the handshake messages (with where it read them
/// from), then check every numbered message, and that it reads where `path` wants, until
/// the stop message.
fn receive(
    ends: &Ends,
    size: usize,
    warmup: u64,
    control: &SharedRegion,
) -> Result<ChildStats, LabError> {
    let path = ends.path;
    let mut sub = ends.connect(control, PARENT_PORT_OFFSET, &ends.parent_shm)?;
    let mut buf = vec![0u8; size];
    let mut numbered = NumberedStream::new(size, warmup, "stream message");
    let mut received = 0u64;
    let mut moved = false;
    loop {
        let n = recv_checked(&mut sub, &mut buf, "the subscriber's receive")?;
        received += 1;
        let shm = sub.is_shared_memory();
        if shm && !moved {
            moved = true;
            // Relaxed: the parent reads it after reaping us.
            control
                .atomic_u64(MOVED_OFFSET)
                .store(received, Ordering::Relaxed);
        }
        match get_seq(&buf[..n]) {
            Some(seq) if seq > HELLO && seq < SEQ_STOP && numbered.before_first() => {
                // Relaxed for the state: the Release store of the sequence number publishes it.
                control
                    .atomic_u64(STATE_OFFSET)
                    .store(1 + u64::from(shm), Ordering::Relaxed);
                control.atomic_u64(ACK_OFFSET).store(seq, Ordering::Release);
                continue;
            }
            seq => path.check(shm, "the subscriber", seq.unwrap_or(0))?,
        }
        if !numbered.take(&buf[..n])? {
            break;
        }
    }
    let (messages, stats) = numbered.finish()?;
    // Relaxed for the count: the parent reads it after reaping us; Release on `done`.
    control
        .atomic_u64(RECEIVED_OFFSET)
        .store(messages, Ordering::Relaxed);
    control.atomic_u64(DONE_OFFSET).store(1, Ordering::Release);
    Ok(stats)
}

/// Fills the comparisons of the `tcp-upgraded` rows with `shm` and `tcp-no-upgrade` at the
/// same size.
pub(crate) fn compare(rows: &mut [UpgradeRow]) {
    let find = |rows: &[UpgradeRow], path: Path, size: usize| {
        rows.iter()
            .find(|r| r.path == path.name() && r.size == size)
            .map(|r| (r.round_trip.map(|p| p.p50_ns), r.msgs_per_s))
    };
    let bases: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                find(rows, Path::Shm, r.size),
                find(rows, Path::TcpNoUpgrade, r.size),
            )
        })
        .collect();
    for (row, (shm, tcp)) in rows.iter_mut().zip(bases) {
        if row.path != Path::TcpUpgraded.name() {
            continue;
        }
        let p50 = row.round_trip.map(|p| p.p50_ns);
        let time_ratio = |base: Option<(Option<u64>, u64)>| {
            p50.zip(base.and_then(|b| b.0))
                .map(|(a, b)| a as f64 / b.max(1) as f64)
        };
        let rate_ratio = |base: Option<(Option<u64>, u64)>| {
            base.map(|b| row.msgs_per_s as f64 / b.1.max(1) as f64)
        };
        row.p50_vs_shm = time_ratio(shm);
        row.rate_vs_shm = rate_ratio(shm);
        row.p50_vs_tcp = time_ratio(tcp);
        row.rate_vs_tcp = rate_ratio(tcp);
    }
}

/// The upgrade table, with the bar against `shm` judged per size.
pub(crate) fn table(rows: &[UpgradeRow], host: &HostInfo) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let cells = rows
        .iter()
        .map(|r| {
            let rt = |pick: fn(&Percentiles) -> u64| {
                r.round_trip
                    .as_ref()
                    .map_or("-".into(), |p| fmt_ns(pick(p)))
            };
            vec![
                r.path.clone(),
                fmt_size(r.size),
                rt(|p| p.p50_ns),
                rt(|p| p.p99_ns),
                format!(
                    "{}{}",
                    fmt_count(r.msgs_per_s),
                    if r.capped { "*" } else { "" }
                ),
                rounds::spread_cell(&r.spread, |v| fmt_count(v.round() as u64)),
                if r.shared_memory { "yes" } else { "no" }.to_string(),
                r.moved_after.map_or_else(|| "-".into(), |m| m.to_string()),
                fmt_ratio(r.p50_vs_shm, 2),
                fmt_ratio(r.rate_vs_shm, 2),
                fmt_ratio(r.p50_vs_tcp, 2),
                fmt_ratio(r.rate_vs_tcp, 2),
            ]
        })
        .collect();
    let p = host.pinning;
    let mut notes = vec![
        format!(
            "A shmsock Publisher process and a Subscriber process on this machine: over \
             tcp://127.0.0.1 with upgrade on (the default; the subscriber moves to the \
             publisher's shared-memory ring by itself), with Options::upgrade(false) on both \
             sides, and over shm:// direct. Library defaults otherwise (Adaptive waits, \
             Overflow::Block). Publisher on CPU {}, subscriber on CPU {}.",
            p.parent_cpu, p.child_cpu
        ),
        "Round trip: out through one publisher/subscriber pair and back through a second one \
         in the other direction (a PAIR connection does not upgrade), both on the path \
         measured; one message in flight. msgs/s: a stream measured by the subscriber, every \
         sequence number checked."
            .into(),
        "shared memory: checked on every measured message (Subscriber::is_shared_memory), on \
         both subscribers of the round trip; a subscriber on the wrong side fails its row \
         instead. moved after: messages the stream's subscriber received over tcp:// before \
         it was first seen on shared memory."
            .into(),
        format!(
            "Each row is its median round by msgs/s, of {} interleaved rounds (msgs/s spread: \
             the smallest and largest), with the round trip of the median round by p50: on a \
             small VM a shared-memory stream runs either at full speed or at the pace of \
             kernel wake-ups, and one measurement per row would compare those modes, not the \
             paths.",
            rows.iter().map(|r| r.spread.rounds).max().unwrap_or(1)
        ),
    ];
    if rows.iter().any(|r| r.capped) {
        notes.push(
            "* the run's time cap ended the stream before all its messages were sent.".into(),
        );
    }
    for r in rows.iter().filter(|r| r.path == Path::TcpUpgraded.name()) {
        let size = fmt_size(r.size);
        if let Some(x) = r.p50_vs_shm {
            notes.push(format!(
                "{size}: the upgraded round trip's median is {x:.2}x shm:// direct's (bar: <= \
                 {BAR_VS_SHM:.1}x; {}).",
                bar_verdict(x <= BAR_VS_SHM)
            ));
        }
        if let Some(x) = r.rate_vs_shm {
            notes.push(format!(
                "{size}: the upgraded stream takes {:.2}x the time per message of shm:// \
                 direct ({x:.2}x its rate; bar: <= {BAR_VS_SHM:.1}x the time; {}).",
                1.0 / x.max(f64::MIN_POSITIVE),
                bar_verdict(x >= 1.0 / BAR_VS_SHM)
            ));
        }
        if let (Some(t), Some(s)) = (r.p50_vs_tcp, r.rate_vs_tcp) {
            notes.push(format!(
                "{size}: against the same subscriber kept on tcp://, moving made the round \
                 trip's median {t:.2}x and the stream's rate {s:.2}x."
            ));
        }
    }
    let mut table = Table::new(
        "Upgrade: a tcp:// subscriber on this machine moved to shared memory, against tcp:// \
         and shm:// direct",
        vec![
            "path",
            "size",
            "RTT p50",
            "RTT p99",
            "msgs/s",
            "msgs/s spread",
            "shared memory",
            "moved after",
            "p50 vs shm",
            "rate vs shm",
            "p50 vs tcp",
            "rate vs tcp",
        ],
        cells,
    );
    table.text_columns = vec![6];
    table.notes = notes;
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: Path, size: usize, p50: Option<u64>, rate: u64) -> UpgradeRow {
        UpgradeRow {
            path: path.name().into(),
            size,
            round_trip: p50.map(|p| Percentiles::at(p, [2, 3, 4])),
            round_trips: 100,
            msgs_per_s: rate,
            messages: rate,
            seconds: 1.0,
            subscriber_cpu_pct: 100.0,
            capped: false,
            shared_memory: path.reads_shared_memory(),
            moved_after: (path == Path::TcpUpgraded).then_some(1),
            p50_vs_shm: None,
            rate_vs_shm: None,
            p50_vs_tcp: None,
            rate_vs_tcp: None,
            spread: Spread::default(),
        }
    }

    #[test]
    fn the_upgraded_rows_are_compared_with_shm_and_tcp_at_their_size() {
        let mut rows = vec![
            row(Path::TcpUpgraded, 64, Some(1100), 9_000_000),
            row(Path::TcpNoUpgrade, 64, Some(44_000), 900_000),
            row(Path::Shm, 64, Some(1000), 10_000_000),
            row(Path::TcpUpgraded, 4096, None, 500_000),
            row(Path::TcpNoUpgrade, 4096, None, 250_000),
            row(Path::Shm, 4096, None, 1_000_000),
        ];
        compare(&mut rows);
        assert_eq!(rows[0].p50_vs_shm, Some(1.1));
        assert_eq!(rows[0].rate_vs_shm, Some(0.9));
        assert_eq!(rows[0].p50_vs_tcp, Some(0.025));
        assert_eq!(rows[0].rate_vs_tcp, Some(10.0));
        assert_eq!(rows[3].p50_vs_shm, None);
        assert_eq!(rows[3].rate_vs_shm, Some(0.5));
        assert!(rows[1].p50_vs_shm.is_none() && rows[2].rate_vs_tcp.is_none());
        let text = table(&rows, &HostInfo::for_tests(2))
            .expect("a table")
            .to_text();
        assert!(
            text.contains("64 B: the upgraded round trip's median is 1.10x shm:// direct's (bar: <= 1.2x; met)"),
            "{text}"
        );
        assert!(
            text.contains("4 KiB: the upgraded stream takes 2.00x the time per message of shm:// direct (0.50x its rate; bar: <= 1.2x the time; NOT met in this run)"),
            "{text}"
        );
    }

    #[test]
    fn a_subscriber_on_the_wrong_side_fails_the_row() {
        assert!(Path::TcpUpgraded.check(true, "s", 1).is_ok());
        let err = Path::TcpUpgraded
            .check(false, "s", 7)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did not move") && err.contains("message 7"),
            "{err}"
        );
        assert!(Path::TcpNoUpgrade.check(false, "s", 1).is_ok());
        assert!(Path::TcpNoUpgrade.check(true, "s", 1).is_err());
        assert!(Path::Shm.check(true, "s", 1).is_ok());
    }

    /// Every path, both patterns, tiny budgets: the upgraded one really moves.
    #[test]
    fn every_path_measures_and_the_upgraded_subscriber_moves() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("pinning");
        let _pinned = crate::process::AffinityGuard::pin(pinning.parent_cpu).expect("pin");
        let budget = Budget {
            warmup_iters: 200,
            warmup_time: Duration::from_millis(50),
            iters: 2_000,
            max_time: Duration::from_millis(100),
        };
        for path in PATHS {
            let row = measure(path, 64, Some(budget), budget, pinning)
                .unwrap_or_else(|e| panic!("{}: {e}", path.name()));
            assert!(row.round_trips > 0 && row.round_trip.is_some(), "{row:?}");
            assert!(row.msgs_per_s > 0 && row.messages > 0, "{row:?}");
            assert_eq!(row.shared_memory, path.reads_shared_memory(), "{row:?}");
            assert_eq!(
                row.moved_after.is_some(),
                path == Path::TcpUpgraded,
                "{row:?}"
            );
        }
    }
}
