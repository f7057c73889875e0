//! Bridge latency: what `shmsock bridge` adds to a message's trip. One-way latency
//! of a 64 B message from a `Publisher` process to a `Subscriber` process, over four paths:
//!
//! ```text
//! shm               parent Publisher shm://  ─────────────────────────────▶ Subscriber (child)
//! tcp               parent Publisher tcp://  ─────────────────────────────▶ Subscriber (child)
//! shm->bridge->tcp  parent Publisher shm://  ──▶ Bridge (child) ──tcp://──▶ Subscriber (child)
//! tcp->bridge->shm  parent Publisher tcp://  ──▶ Bridge (child) ──shm://──▶ Subscriber (child)
//! ```
//!
//! The bridge is the library's [`shmsock::Bridge`], the loop `shmsock bridge` runs, with its
//! default options; every endpoint uses the library's defaults (`Adaptive` waits,
//! `Overflow::Block`), tcp over loopback, except `Options::upgrade(false)` (`options()`): every
//! process runs on this machine, where a tcp:// subscriber would otherwise move to its
//! publisher's shared memory and the tcp paths would measure shm:// (the upgrade experiment
//! measures that move).
//!
//! **One-way, with one clock.** All processes run on this machine and read the same
//! `CLOCK_MONOTONIC`. The parent writes a sequence number and the time into the message just
//! before `send`; the subscriber reads the clock as soon as `recv` returns and publishes that
//! time and the sequence number in a shared cache line (Release); the parent waits for it
//! (Acquire), records `received − sent` and only then sends the next message. One message is
//! in flight at a time, so no sample includes queueing behind another. The subscriber checks
//! every sequence number and size (nothing may be lost or reordered), and a bridge's count of
//! forwarded messages must equal what the parent sent.
//!
//! **CPUs.** The publisher runs on the parent's CPU and the subscriber on the child's. The
//! bridge process runs on a third CPU when there is one; with two it shares the
//! subscriber's CPU (see `bridge_cpu`): the table says which, because on two CPUs a
//! bridged message waits for the scheduler once more than a direct one.
//!
//! The table reports each bridged path against `tcp` measured in the same run: the bridge's
//! added latency is the difference of the percentiles (the extra shm:// hop and the bridge's
//! own receive and send), and the ratio of the medians.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmsock::{Bridge, Options, Publisher, Subscriber};

use plotters::chart::SeriesLabelPosition;
use plotters::style::{BLUE, GREEN, MAGENTA, RED};
use serde::{Deserialize, Serialize};

use super::{
    get_seq, now_ns, port_of, publish_bound, put_seq, wait_bound, Budget, Window, SEQ_STOP,
    WATCHDOG_MARGIN,
};
use crate::chart::{Chart, Mark, Scale, Series};
use crate::error::LabError;
use crate::format::{fmt_ns, fmt_ratio, fmt_signed_ns, fmt_size};
use crate::host::{HostInfo, Pinning};
use crate::mechanisms::shmsock::{lib, retry_refused, unique_endpoint};
use crate::process::{allowed_cpus, outcome, wait_ack, wait_until, ChildStats, Children, Pause};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::stats::Percentiles;
use crate::table::Table;

/// One-way latency of one path from a publisher process to a subscriber process, direct or
/// through a `shmsock bridge` process. Times in ns, one message in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeRow {
    /// `shm`, `tcp`, `shm->bridge->tcp`, `tcp->bridge->shm`.
    pub path: String,
    /// Message size in bytes.
    pub size: usize,
    /// The one-way times (`min_ns`, `p50_ns`, ... in the JSON).
    #[serde(flatten)]
    pub one_way: Percentiles,
    /// Messages timed.
    pub samples: u64,
    /// The CPU the bridge process ran on (bridged paths only).
    pub bridge_cpu: Option<usize>,
    /// Bridged paths: `p50_ns` / the p50 of `tcp` in the same run.
    #[serde(default)]
    pub vs_tcp_p50: Option<f64>,
    /// Bridged paths: `p50_ns` minus the p50 of `tcp` in the same run (the bridge's added
    /// latency at the median; negative if noise made it faster).
    #[serde(default)]
    pub added_p50_ns: Option<i64>,
    /// Bridged paths: `p99_ns` minus the p99 of `tcp` in the same run.
    #[serde(default)]
    pub added_p99_ns: Option<i64>,
}

impl BridgeRow {
    /// A row of one-way times summarised as `one_way`.
    pub(crate) fn new(
        path: &str,
        size: usize,
        one_way: Percentiles,
        samples: u64,
        bridge_cpu: Option<usize>,
    ) -> Self {
        Self {
            path: path.to_string(),
            size,
            one_way,
            samples,
            bridge_cpu,
            vs_tcp_p50: None,
            added_p50_ns: None,
            added_p99_ns: None,
        }
    }
}

/// Message size: the lab's small message.
pub(crate) const SIZE: usize = 64;

/// Every endpoint's options: the library's defaults, with the move of local tcp://
/// subscribers to shared memory off, so that tcp paths stay tcp.
pub(crate) fn options() -> Options {
    Options::new().upgrade(false)
}
/// Longest one-way time the histogram holds (longer ones are clamped to it): 100 s.
const MAX_NS: u64 = 100_000_000_000;
/// How long the parent waits for the processes to connect, and for each message.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The subscriber's last sequence number (Release, after [`RECV_NS_OFFSET`]).
const ACK_OFFSET: usize = 0;
/// When the subscriber's `recv` returned that message, ns of `CLOCK_MONOTONIC`.
const RECV_NS_OFFSET: usize = 8;
/// The port of the parent's tcp:// publisher (0 until bound).
const SOURCE_PORT_OFFSET: usize = CACHE_LINE_BYTES;
/// The port of the bridge's tcp:// destination (0 until bound).
const BRIDGE_PORT_OFFSET: usize = 2 * CACHE_LINE_BYTES;
/// Children that failed (so the parent stops waiting for them).
const FAILED_OFFSET: usize = 3 * CACHE_LINE_BYTES;
/// The bridge's stop flag (an `AtomicBool`), set by the parent at the end.
const STOP_OFFSET: usize = 4 * CACHE_LINE_BYTES;
/// Messages the bridge forwarded, written when it stopped.
const FORWARDED_OFFSET: usize = 5 * CACHE_LINE_BYTES;
const REGION_BYTES: usize = 6 * CACHE_LINE_BYTES;

/// One way from a publisher to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// `shm://` publisher → subscriber.
    Shm,
    /// `tcp://` publisher → subscriber over loopback.
    Tcp,
    /// `shm://` publisher → bridge → `tcp://` subscriber.
    ShmBridgeTcp,
    /// `tcp://` publisher → bridge → `shm://` subscriber.
    TcpBridgeShm,
}

/// The paths, in table order.
pub(crate) const PATHS: [Path; 4] = [Path::Shm, Path::Tcp, Path::ShmBridgeTcp, Path::TcpBridgeShm];
/// The direct path the bridged ones are compared with.
pub(crate) const BASELINE: &str = "tcp";

impl Path {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Shm => "shm",
            Path::Tcp => "tcp",
            Path::ShmBridgeTcp => "shm->bridge->tcp",
            Path::TcpBridgeShm => "tcp->bridge->shm",
        }
    }

    fn bridged(self) -> bool {
        matches!(self, Path::ShmBridgeTcp | Path::TcpBridgeShm)
    }

    /// Whether the parent's publisher is tcp:// (else shm://).
    fn source_is_tcp(self) -> bool {
        matches!(self, Path::Tcp | Path::TcpBridgeShm)
    }
}

/// The CPU of the bridge process: a third CPU if this process may use one, else the
/// subscriber's. On two CPUs we measured both: on the publisher's CPU, where the publisher
/// spins (yielding) while it waits for each receipt, the bridged paths' p99 reached
/// milliseconds; on the subscriber's CPU, which idles between messages, it stayed near
/// 150 µs.
pub(crate) fn bridge_cpu(pinning: Pinning) -> usize {
    allowed_cpus()
        .ok()
        .and_then(|cpus| {
            cpus.into_iter()
                .find(|&c| c != pinning.parent_cpu && c != pinning.child_cpu)
        })
        .unwrap_or(pinning.child_cpu)
}

/// The endpoints of one run (`shm://` names are fixed before the forks; `tcp://` ports are
/// published in the control region once bound).
struct Endpoints {
    /// The parent's shm:// publisher.
    source_shm: String,
    /// The bridge's shm:// destination.
    bridge_shm: String,
}

/// Measures the one-way latency of `path` with `budget` (warm-up, then samples until
/// `iters` or `max_time`).
pub(crate) fn measure(path: Path, budget: Budget, pinning: Pinning) -> Result<BridgeRow, LabError> {
    let ends = Endpoints {
        source_shm: unique_endpoint(),
        bridge_shm: unique_endpoint(),
    };
    let control = SharedRegion::new(REGION_BYTES)?;
    let watchdog = budget.watchdog() + 2 * READY_TIMEOUT + WATCHDOG_MARGIN;
    let mut buf = vec![0u8; SIZE];
    let bridge_on = path.bridged().then(|| bridge_cpu(pinning));
    // Children first (the publisher runs threads, and the lab forks only while it has
    // none); they connect by retrying until the parent has bound.
    let mut children = Children::new();
    let failed = |result: Result<ChildStats, LabError>| {
        if result.is_err() {
            control
                .atomic_u64(FAILED_OFFSET)
                .fetch_add(1, Ordering::Release);
        }
        result
    };
    children.fork("subscriber", pinning.child_cpu, watchdog, || {
        failed(subscribe(path, &ends, &control, &mut buf))
    })?;
    if let Some(cpu) = bridge_on {
        children.fork("bridge", cpu, watchdog, || {
            failed(run_bridge(path, &ends, &control))
        })?;
    }
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_NS, 3).map_err(|e| LabError::Integrity {
            detail: format!("creating the latency histogram: {e}"),
        })?;
    let result = publish(path, &ends, budget, &control, &mut hist);
    // Relaxed: the flag carries no data (the bridge's results are read after reaping it).
    control
        .atomic_bool(STOP_OFFSET)
        .store(true, Ordering::Relaxed);
    if result.is_err() {
        children.kill_all();
    }
    let ((samples, sent), _) = outcome("publisher", result, children.reap(READY_TIMEOUT))?;
    if path.bridged() {
        // Relaxed: the bridge has been reaped, which orders its whole life before this.
        let forwarded = control.atomic_u64(FORWARDED_OFFSET).load(Ordering::Relaxed);
        if forwarded != sent {
            return Err(LabError::Integrity {
                detail: format!(
                    "the bridge forwarded {forwarded} messages, the publisher sent {sent}"
                ),
            });
        }
    }
    Ok(BridgeRow::new(
        path.name(),
        SIZE,
        Percentiles::from_histogram(&hist),
        samples,
        bridge_on,
    ))
}

/// Waits for a child to publish the tcp port at `offset`.
fn wait_port(control: &SharedRegion, offset: usize) -> Result<u16, LabError> {
    let what = "waiting for a tcp:// endpoint to be bound";
    wait_bound(
        control,
        offset,
        what,
        Pause::Sleep(Duration::from_millis(1)),
        || None,
    )
}

/// Publishes the port of `endpoint` (`tcp://HOST:PORT`) at `offset`.
fn publish_port(control: &SharedRegion, offset: usize, endpoint: &str) -> Result<(), LabError> {
    publish_bound(control, offset, Some(port_of(endpoint)?));
    Ok(())
}

fn tcp(port: u16) -> String {
    format!("tcp://127.0.0.1:{port}")
}

/// The parent: bind, wait for the subscriber (or the bridge) to join, then send one message
/// at a time and time each one's arrival. Returns (samples, messages sent in all).
fn publish(
    path: Path,
    ends: &Endpoints,
    budget: Budget,
    control: &SharedRegion,
    hist: &mut Histogram<u64>,
) -> Result<(u64, u64), LabError> {
    let mut publisher = if path.source_is_tcp() {
        let p =
            Publisher::bind_with("tcp://127.0.0.1:0", options()).map_err(lib("publisher bind"))?;
        publish_port(control, SOURCE_PORT_OFFSET, p.endpoint())?;
        p
    } else {
        Publisher::bind_with(&ends.source_shm, options()).map_err(lib("publisher bind"))?
    };
    let failed = || control.atomic_u64(FAILED_OFFSET).load(Ordering::Acquire) > 0;
    wait_until(
        "waiting for the subscriber to join",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(200)),
        || publisher.subscriber_count() >= 1,
        || failed().then_some("a child failed before the start"),
    )?;
    let mut msg = [0u8; SIZE];
    let mut seq = 0u64;
    let mut one = |seq: u64| -> Result<u64, LabError> {
        put_seq(&mut msg, seq);
        let sent_ns = now_ns();
        msg[8..16].copy_from_slice(&sent_ns.to_le_bytes());
        publisher.send(&msg).map_err(lib("publisher send"))?;
        let received_ns = wait_receipt(control, seq, &failed)?;
        Ok(received_ns.saturating_sub(sent_ns))
    };
    let warmup_end = Instant::now() + budget.warmup_time;
    while seq < budget.warmup_iters && Instant::now() < warmup_end {
        seq += 1;
        one(seq)?;
    }
    let end = Instant::now() + budget.max_time;
    let mut samples = 0;
    while samples < budget.iters {
        seq += 1;
        hist.saturating_record(one(seq)?.clamp(1, MAX_NS));
        samples += 1;
        if samples % 64 == 0 && Instant::now() >= end {
            break;
        }
    }
    one(SEQ_STOP)?;
    Ok((samples, seq + 1))
}

/// Waits until the subscriber has received message `seq`; returns when it did.
fn wait_receipt(
    control: &SharedRegion,
    seq: u64,
    failed: &impl Fn() -> bool,
) -> Result<u64, LabError> {
    // The subscriber stores its receive time, then (Release) the sequence number.
    wait_ack(
        control,
        ACK_OFFSET,
        seq,
        READY_TIMEOUT,
        "waiting for a message to arrive",
        "a child",
        failed,
    )?;
    Ok(control.atomic_u64(RECV_NS_OFFSET).load(Ordering::Relaxed))
}

/// The subscriber: receive, stamp, check, acknowledge; until the stop message.
fn subscribe(
    path: Path,
    ends: &Endpoints,
    control: &SharedRegion,
    buf: &mut [u8],
) -> Result<ChildStats, LabError> {
    let endpoint = match path {
        Path::Shm => ends.source_shm.clone(),
        Path::Tcp => tcp(wait_port(control, SOURCE_PORT_OFFSET)?),
        Path::ShmBridgeTcp => tcp(wait_port(control, BRIDGE_PORT_OFFSET)?),
        Path::TcpBridgeShm => ends.bridge_shm.clone(),
    };
    let mut sub =
        retry_refused(|| Subscriber::connect_with(&endpoint, options())).map_err(lib("connect"))?;
    let window = Window::start();
    let mut expected = 1u64;
    loop {
        let len = sub.recv(buf).map_err(lib("subscriber recv"))?;
        let received_ns = now_ns();
        let seq = get_seq(&buf[..len]);
        let stop = seq == Some(SEQ_STOP);
        if sub.is_shared_memory() != endpoint.starts_with("shm://") {
            return Err(LabError::Integrity {
                detail: format!(
                    "subscriber of {endpoint}: message {expected} came through {}",
                    if sub.is_shared_memory() {
                        "shared memory, not the network: a tcp:// row would not measure tcp://"
                    } else {
                        "the network"
                    }
                ),
            });
        }
        if len != SIZE || !(stop || seq == Some(expected)) {
            return Err(LabError::Integrity {
                detail: format!(
                    "subscriber: expected message {expected} of {SIZE} B, got {seq:?} of {len} B"
                ),
            });
        }
        // Relaxed for the time: the Release store of the sequence number publishes it.
        control
            .atomic_u64(RECV_NS_OFFSET)
            .store(received_ns, Ordering::Relaxed);
        control
            .atomic_u64(ACK_OFFSET)
            .store(seq.unwrap_or(0), Ordering::Release);
        if stop {
            return Ok(window.stop());
        }
        expected += 1;
    }
}

/// The bridge: `shmsock bridge SOURCE DESTINATION --wait-subscribers 1`, until stopped.
fn run_bridge(
    path: Path,
    ends: &Endpoints,
    control: &SharedRegion,
) -> Result<ChildStats, LabError> {
    let (source, destination) = match path {
        Path::ShmBridgeTcp => (ends.source_shm.clone(), "tcp://127.0.0.1:0".to_owned()),
        Path::TcpBridgeShm => (
            tcp(wait_port(control, SOURCE_PORT_OFFSET)?),
            ends.bridge_shm.clone(),
        ),
        Path::Shm | Path::Tcp => {
            return Err(LabError::Integrity {
                detail: format!("{} has no bridge", path.name()),
            })
        }
    };
    let mut bridge = Bridge::builder(&source, &destination)
        .source_options(options())
        .destination_options(options())
        .wait_subscribers(1)
        .connect_timeout(READY_TIMEOUT)
        .build()
        .map_err(lib("bridge bind"))?;
    if destination.starts_with("tcp://") {
        publish_port(control, BRIDGE_PORT_OFFSET, bridge.destination())?;
    }
    let window = Window::start();
    bridge
        .run(control.atomic_bool(STOP_OFFSET))
        .map_err(lib("bridge run"))?;
    let time = window.stop();
    // Relaxed: the parent reads it after reaping us.
    control
        .atomic_u64(FORWARDED_OFFSET)
        .store(bridge.stats().forwarded, Ordering::Relaxed);
    Ok(time)
}

/// Fills the comparison of each bridged row with [`BASELINE`] in the same rows: the ratio of
/// the medians and the differences at p50 and p99.
pub(crate) fn compare_with_baseline(rows: &mut [BridgeRow]) {
    let baseline = rows
        .iter()
        .find(|r| r.path == BASELINE)
        .map(|r| (r.one_way.p50_ns, r.one_way.p99_ns));
    let diff = |a: u64, b: u64| {
        i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX)
    };
    for row in rows.iter_mut().filter(|r| r.bridge_cpu.is_some()) {
        let (p50, p99) = (row.one_way.p50_ns, row.one_way.p99_ns);
        row.vs_tcp_p50 = baseline.map(|(base, _)| p50 as f64 / base.max(1) as f64);
        row.added_p50_ns = baseline.map(|(base, _)| diff(p50, base));
        row.added_p99_ns = baseline.map(|(_, base)| diff(p99, base));
    }
}

/// The bridge table: one-way latency per path, and what the bridge adds against
/// [`BASELINE`] in the same run.
pub(crate) fn table(rows: &[BridgeRow], host: &HostInfo) -> Option<Table> {
    let first = rows.first()?;
    let cells = rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.path.clone()];
            cells.extend([r.one_way.min_ns, r.one_way.p50_ns, r.one_way.p99_ns].map(fmt_ns));
            cells.extend([r.one_way.p999_ns, r.one_way.max_ns].map(fmt_ns));
            cells.extend([
                r.samples.to_string(),
                fmt_ratio(r.vs_tcp_p50, 2),
                r.added_p50_ns.map_or_else(|| "-".into(), fmt_signed_ns),
                r.added_p99_ns.map_or_else(|| "-".into(), fmt_signed_ns),
            ]);
            cells
        })
        .collect();
    let p = host.pinning;
    let mut notes = vec![format!(
        "One-way times on one clock: the publisher stamps each message with \
         CLOCK_MONOTONIC before send, the subscriber reads it when recv returns; one \
         message in flight, every sequence number checked, and each bridge forwarded \
         exactly what was sent. Library defaults everywhere (Adaptive waits, \
         Overflow::Block), tcp over loopback with Options::upgrade(false) (else local tcp \
         subscribers move to shared memory: see the upgrade table); the bridge is shmsock::Bridge, the loop \
         of `shmsock bridge`. Publisher on CPU {}, subscriber on CPU {}.",
        p.parent_cpu, p.child_cpu
    )];
    if let Some(cpu) = rows.iter().find_map(|r| r.bridge_cpu) {
        let shared = if cpu == p.child_cpu {
            format!(
                " (shared with the subscriber: this machine lets the lab use {} CPU(s), \
                 so a bridged message waits for one more scheduling on a busy CPU)",
                host.cpus_allowed
            )
        } else {
            String::new()
        };
        notes.push(format!("Bridge process on CPU {cpu}{shared}."));
    }
    for r in rows.iter().filter(|r| r.bridge_cpu.is_some()) {
        if let (Some(x), Some(p50), Some(p99)) = (r.vs_tcp_p50, r.added_p50_ns, r.added_p99_ns) {
            notes.push(format!(
                "{}: the bridge adds {} at p50 ({x:.2}x {BASELINE} direct); p99 {} \
                 against {BASELINE} direct (one more hop, shm://, and the bridge's receive \
                 and send).",
                r.path,
                fmt_signed_ns(p50),
                fmt_signed_ns(p99)
            ));
        }
    }
    if rows.iter().any(|r| r.added_p99_ns.is_some_and(|d| d < 0)) {
        notes.push(format!(
            "A negative p99 difference means {BASELINE} direct had the longer tail in this \
             run: its subscriber sleeps in poll between messages on a CPU with nothing else \
             to do, and waking an idle CPU can take milliseconds on a VM, while a bridge \
             that shares the subscriber's CPU keeps it awake. Compare the medians."
        ));
    }
    let mut table = Table::new(
        format!(
            "Bridge: one-way latency publisher -> subscriber, direct and through \
             `shmsock bridge` ({})",
            fmt_size(first.size)
        ),
        vec![
            "path",
            "min",
            "p50",
            "p99",
            "p99.9",
            "max",
            "samples",
            "vs tcp p50",
            "added p50",
            "added p99",
        ],
        cells,
    );
    table.plot = Some("bridge.svg");
    table.notes = notes;
    Some(table)
}

/// `bridge.svg`: one-way min/p50/p99/p99.9 per path, direct and through a bridge, log axis.
pub(crate) fn plot(rows: &[BridgeRow]) -> Option<String> {
    let mut chart = Chart::new(
        "One-way latency, direct and through shmsock bridge (ns, log scale)",
        rows.iter().map(|r| r.path.clone()).collect(),
        "one way (ns)",
    );
    chart.size = (900, 520);
    chart.scale = Scale::Log;
    chart.ns_labels = true;
    chart.legend = SeriesLabelPosition::UpperLeft;
    for (k, colour) in [GREEN, BLUE, MAGENTA, RED].into_iter().enumerate() {
        let points = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, r.one_way.labelled()[k].1.max(1) as f64))
            .collect();
        let label = rows.first()?.one_way.labelled()[k].0;
        chart
            .series
            .push(Series::new(label, colour, Mark::Dots(5), points));
    }
    chart.to_svg()
}

#[cfg(test)]
mod tests;
