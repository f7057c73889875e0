//! Costs (Communication Costs): what single operations cost on this machine, the numbers the
//! lesson gives in its text rather than in a table.
//!
//! - **Loads**: a pointer chase (each load's address is the value of the one before, so the
//!   loads cannot overlap and each costs the full trip to wherever the line is) through a
//!   random cycle of cache lines: 16 KiB of them (`load-cached-*`: in the L1 cache after the
//!   first pass, "1-10 nanoseconds if data is in CPU cache") and four times the last-level
//!   cache, at least 64 MiB (`load-miss-*`: nearly every load misses every cache and, with 4
//!   KiB pages, the TLB too, "~100 nanoseconds for a cache miss"). Each chase runs in shared
//!   memory (`MAP_SHARED`, what two processes map) and in private memory (a heap buffer), so
//!   the lab can check "after setup, access is as fast as regular memory". In this process,
//!   on the parent's CPU; the result is the median (and p99) of batches of [`BATCH`] loads.
//! - **Mutex**: a `PTHREAD_PROCESS_SHARED` mutex in shared memory (the sync-tax experiment's),
//!   locked and unlocked with nobody else wanting it (`mutex-uncontended`, batches of
//!   [`BATCH`] pairs, "an uncontended mutex costs 25-50 nanoseconds"), and while a process on
//!   the other CPU locks and unlocks it in a loop (`mutex-contended`: each `lock` of the parent
//!   timed on its own, its median and p99, "a contended mutex can cost microseconds as threads
//!   wait"). Both sides increment a counter under the lock, and the parent checks that the
//!   counter equals their iterations together: the mutex excluded.
//! - **1 KiB one-way**: the latency experiment at 1 KiB for a Unix stream socket, loopback TCP
//!   and the textbook shared-memory ring (`raw-ring`): "Sending 1KB through a local socket
//!   takes 2-10 microseconds, roughly 100x slower than shared memory".

use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::latency::LatencyRow;
use super::WATCHDOG_MARGIN;
use crate::claims::{self, ClaimCheck, Metric};
use crate::error::LabError;
use crate::format::{fmt_count, fmt_ns};
use crate::host::Pinning;
use crate::mechanisms::pshared_mutex::ProcessSharedMutex;
use crate::mechanisms::raw_ring::RawRing;
use crate::mechanisms::tcp::TCP;
use crate::mechanisms::uds_stream::UDS_STREAM;
use crate::mechanisms::Mechanism;
use crate::process::{outcome, wait_until, ChildStats, Children, Pause};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::table::{Group, Table};

/// One operation's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    /// One of [`OPERATIONS`].
    pub operation: String,
    /// What was timed, in a few words.
    pub detail: String,
    /// Median time of one operation, ns.
    pub p50_ns: f64,
    /// 99th percentile of one operation, ns (of batches for the batched rows).
    pub p99_ns: f64,
    /// Operations timed.
    pub operations: u64,
}

/// What the costs experiment measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostRows {
    /// Loads and mutexes, one row per operation of [`OPERATIONS`] measured.
    pub operations: Vec<CostRow>,
    /// Ping-pong latency with 1 KiB messages (`raw-ring`, `uds-stream`, `tcp`).
    pub one_kib: Vec<LatencyRow>,
}

/// The operations, in table order.
pub const OPERATIONS: [&str; 6] = [
    LOAD_CACHED_SHARED,
    LOAD_CACHED_PRIVATE,
    LOAD_MISS_SHARED,
    LOAD_MISS_PRIVATE,
    MUTEX_UNCONTENDED,
    MUTEX_CONTENDED,
];
const LOAD_CACHED_SHARED: &str = "load-cached-shared";
const LOAD_CACHED_PRIVATE: &str = "load-cached-private";
const LOAD_MISS_SHARED: &str = "load-miss-shared";
const LOAD_MISS_PRIVATE: &str = "load-miss-private";
const MUTEX_UNCONTENDED: &str = "mutex-uncontended";
const MUTEX_CONTENDED: &str = "mutex-contended";

/// Size of the 1 KiB one-way rows' messages.
pub const MESSAGE_SIZE: usize = 1024;

/// Operations per timed batch.
pub const BATCH: u64 = 1024;
/// Bytes of the cached chase: half an L1 data cache of 32 KiB.
const CACHED_BYTES: usize = 16 << 10;
/// Fewest bytes of the missing chase.
const MISS_MIN_BYTES: usize = 64 << 20;
/// Most bytes of the missing chase.
const MISS_MAX_BYTES: usize = 512 << 20;
/// Bytes of the missing chase when the last-level cache's size cannot be read.
const MISS_DEFAULT_BYTES: usize = 256 << 20;
/// Longest single lock wait the contended histogram keeps exactly: 10 s.
const MAX_WAIT_NS: u64 = 10_000_000_000;
/// How long the parent waits for the contending child to start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The mechanisms of the 1 KiB one-way rows.
pub(crate) fn one_kib_mechanisms() -> Vec<Box<dyn Mechanism>> {
    vec![
        Box::new(RawRing::anonymous()),
        Box::new(UDS_STREAM),
        Box::new(TCP),
    ]
}

/// Times the four pointer chases, each for about `max_time` (at least a few batches).
pub(crate) fn measure_loads(max_time: Duration) -> Result<Vec<CostRow>, LabError> {
    let miss_bytes = miss_bytes();
    let mut rows = Vec::with_capacity(4);
    for (bytes, shared_name, private_name, what) in [
        (
            CACHED_BYTES,
            LOAD_CACHED_SHARED,
            LOAD_CACHED_PRIVATE,
            "in cache",
        ),
        (miss_bytes, LOAD_MISS_SHARED, LOAD_MISS_PRIVATE, "missing"),
    ] {
        let lines = bytes / CACHE_LINE_BYTES;
        let next = cycle(lines);
        let detail = |memory: &str| {
            format!(
                "dependent loads {what}: a random cycle through {} of {memory}",
                fmt_bytes(bytes)
            )
        };
        let shared = SharedRegion::new(bytes)?;
        for (line, &to) in next.iter().enumerate() {
            shared
                .atomic_u64(line * CACHE_LINE_BYTES)
                .store((to * CACHE_LINE_BYTES) as u64, Ordering::Relaxed);
        }
        let batches = chase(max_time, lines, |offset| {
            shared.atomic_u64(offset).load(Ordering::Relaxed) as usize
        });
        rows.push(row(
            shared_name,
            detail("shared memory (MAP_SHARED)"),
            &batches,
        ));
        drop(shared);
        let private: Vec<AtomicU64> = (0..bytes / 8).map(|_| AtomicU64::new(0)).collect();
        for (line, &to) in next.iter().enumerate() {
            private[line * CACHE_LINE_BYTES / 8]
                .store((to * CACHE_LINE_BYTES) as u64, Ordering::Relaxed);
        }
        let batches = chase(max_time, lines, |offset| {
            private[offset / 8].load(Ordering::Relaxed) as usize
        });
        rows.push(row(private_name, detail("private memory (heap)"), &batches));
    }
    Ok(rows)
}

/// Bytes the missing chase walks: four times the largest cache of CPU 0, within bounds.
fn miss_bytes() -> usize {
    let largest = (0..8)
        .filter_map(|index| {
            let path = format!("/sys/devices/system/cpu/cpu0/cache/index{index}/size");
            parse_cache_size(&std::fs::read_to_string(path).ok()?)
        })
        .max();
    largest.map_or(MISS_DEFAULT_BYTES, |bytes| {
        (4 * bytes).clamp(MISS_MIN_BYTES, MISS_MAX_BYTES)
    })
}

/// `32768K` (the kernel's way of writing a cache size) in bytes.
fn parse_cache_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (number, scale) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 1 << 10),
        b'M' => (&text[..text.len() - 1], 1 << 20),
        b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    number.parse::<usize>().ok().map(|n| n * scale)
}

/// A random cyclic permutation of `0..n` (Sattolo's algorithm): `next[i]` follows `i`, and
/// following it from any start visits all `n`.
fn cycle(n: usize) -> Vec<usize> {
    let mut next: Vec<usize> = (0..n).collect();
    // xorshift64*: fixed seed, so every run walks the same cycle.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..n).rev() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let random = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = (random % i as u64) as usize;
        next.swap(i, j);
    }
    next
}

/// Follows the chain `load` describes (offset → next offset) from 0: one pass over its `lines`
/// untimed, then batches of [`BATCH`] loads for `max_time`; returns each batch's ns per load.
fn chase(max_time: Duration, lines: usize, load: impl Fn(usize) -> usize) -> Vec<f64> {
    let mut offset = 0usize;
    for _ in 0..lines {
        offset = load(offset);
    }
    let mut batches = Vec::new();
    let end = Instant::now() + max_time;
    while batches.len() < 16 || Instant::now() < end {
        let started = Instant::now();
        for _ in 0..BATCH {
            offset = load(offset);
        }
        batches.push(started.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    black_box(offset);
    batches
}

/// A row of `batches` (ns per operation of each batch).
fn row(operation: &str, detail: String, batches: &[f64]) -> CostRow {
    let mut sorted = batches.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    CostRow {
        operation: operation.to_string(),
        detail,
        p50_ns: at(0.5),
        p99_ns: at(0.99),
        operations: sorted.len() as u64 * BATCH,
    }
}

fn fmt_bytes(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

const MUTEX_OFFSET: usize = 0;
const COUNTER_OFFSET: usize = 2 * CACHE_LINE_BYTES;
const READY_OFFSET: usize = 3 * CACHE_LINE_BYTES;
const STOP_OFFSET: usize = 4 * CACHE_LINE_BYTES;
const CHILD_COUNT_OFFSET: usize = 5 * CACHE_LINE_BYTES;
const MUTEX_REGION_BYTES: usize = 6 * CACHE_LINE_BYTES;

/// Times the process-shared mutex uncontended, then contended by a child on the other CPU of
/// `pinning`, each for about `max_time`.
pub(crate) fn measure_mutex(
    max_time: Duration,
    pinning: Pinning,
) -> Result<Vec<CostRow>, LabError> {
    let region = Rc::new(SharedRegion::new(MUTEX_REGION_BYTES)?);
    let mutex = ProcessSharedMutex::init(Rc::clone(&region), MUTEX_OFFSET)?;
    let mut batches = Vec::new();
    let end = Instant::now() + max_time / 4;
    while batches.len() < 16 || Instant::now() < end {
        let started = Instant::now();
        for _ in 0..BATCH {
            mutex.lock()?;
            mutex.unlock();
        }
        batches.push(started.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    let uncontended = row(
        MUTEX_UNCONTENDED,
        "lock + unlock of a PTHREAD_PROCESS_SHARED mutex nobody else wants".into(),
        &batches,
    );
    let contended = contended(&region, &mutex, max_time, pinning)?;
    Ok(vec![uncontended, contended])
}

/// The parent's lock waits while the child locks and unlocks the same mutex in a loop.
fn contended(
    region: &Rc<SharedRegion>,
    mutex: &ProcessSharedMutex,
    max_time: Duration,
    pinning: Pinning,
) -> Result<CostRow, LabError> {
    let word = |offset| region.atomic_u64(offset);
    let mut children = Children::new();
    let theirs = mutex.handle();
    children.fork(
        "contending process",
        pinning.child_cpu,
        max_time + READY_TIMEOUT + WATCHDOG_MARGIN,
        || {
            // Release: the parent's Acquire load of `ready` sees the child running.
            word(READY_OFFSET).store(1, Ordering::Release);
            let mut count = 0u64;
            while word(STOP_OFFSET).load(Ordering::Acquire) == 0 {
                theirs.lock()?;
                let counter = word(COUNTER_OFFSET);
                counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                theirs.unlock();
                count += 1;
            }
            word(CHILD_COUNT_OFFSET).store(count, Ordering::Release);
            Ok(ChildStats::default())
        },
    )?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_WAIT_NS, 3).map_err(|e| LabError::Integrity {
            detail: format!("creating the lock-wait histogram: {e}"),
        })?;
    let result = wait_until(
        "waiting for the contending process to start",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(100)),
        || word(READY_OFFSET).load(Ordering::Acquire) != 0,
        || None,
    )
    .and_then(|()| {
        let end = Instant::now() + max_time;
        let mut count = 0u64;
        while count < 1000 || Instant::now() < end {
            let started = Instant::now();
            mutex.lock()?;
            let waited = started.elapsed();
            let counter = word(COUNTER_OFFSET);
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            mutex.unlock();
            let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            hist.saturating_record(ns.clamp(1, MAX_WAIT_NS));
            count += 1;
        }
        Ok(count)
    });
    word(STOP_OFFSET).store(1, Ordering::Release);
    if result.is_err() {
        children.kill_all();
    }
    let (ours, _) = outcome(
        "parent (timing its locks)",
        result,
        children.reap(Duration::from_secs(10)),
    )?;
    let theirs = word(CHILD_COUNT_OFFSET).load(Ordering::Acquire);
    let counted = word(COUNTER_OFFSET).load(Ordering::Relaxed);
    if counted != ours + theirs {
        return Err(LabError::Integrity {
            detail: format!(
                "the process-shared mutex let increments through at once: the counter is \
                 {counted}, the two processes made {ours} + {theirs}"
            ),
        });
    }
    Ok(CostRow {
        operation: MUTEX_CONTENDED.to_string(),
        detail: format!(
            "one lock of the same mutex while a process on CPU {} locks and unlocks it in a \
             loop ({} locks of the other process meanwhile)",
            pinning.child_cpu,
            fmt_count(theirs)
        ),
        p50_ns: hist.value_at_quantile(0.5) as f64,
        p99_ns: hist.value_at_quantile(0.99) as f64,
        operations: ours,
    })
}

/// The costs table: the operations, then the 1 KiB one-way rows, each beside its claim.
pub(crate) fn table(rows: &CostRows, checks: &[ClaimCheck]) -> Option<Table> {
    if rows.operations.is_empty() && rows.one_kib.is_empty() {
        return None;
    }
    let claim = |metric: Metric, name: &str| claims::cells(checks, metric, name);
    let operations = rows
        .operations
        .iter()
        .map(|r| {
            let metric = if r.operation == MUTEX_CONTENDED {
                Metric::CostTail
            } else {
                Metric::Cost
            };
            let mut cells = vec![
                r.operation.clone(),
                fmt_ns_f(r.p50_ns),
                fmt_ns_f(r.p99_ns),
                fmt_count(r.operations),
            ];
            cells.extend(claim(metric, &r.operation));
            cells.push(r.detail.clone());
            cells
        })
        .collect();
    let one_kib = rows
        .one_kib
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.mechanism.clone(),
                fmt_ns(r.oneway_p50_ns),
                fmt_ns(r.rtt.p99_ns / 2),
                fmt_count(r.samples),
            ];
            cells.extend(claim(Metric::OneKib, &r.mechanism));
            cells.push("one-way = round trip / 2, ping-pong between the two CPUs".into());
            cells
        })
        .collect();
    let groups = [
        ("Single operations", operations),
        ("A 1 KiB message, one way", one_kib),
    ]
    .into_iter()
    .filter(|(_, rows): &(_, Vec<Vec<String>>)| !rows.is_empty())
    .map(|(heading, rows)| Group {
        heading: Some(heading.into()),
        rows,
    })
    .collect();
    Some(Table {
        title: "Costs: one operation at a time (Communication Costs)".into(),
        headers: vec![
            "operation",
            "p50",
            "p99",
            "operations",
            "Communication Costs",
            "ratio",
            "verdict",
            "what",
        ],
        text_columns: vec![6, 7],
        groups,
        notes: vec![
            "Loads are timed in batches of 1,024 dependent loads (p50 and p99 of the batches' \
             ns per load); the contended mutex's p50 and p99 are of single lock waits (two \
             clock reads, ~20-40 ns, included), checked at the p99: \"can cost\"."
                .into(),
        ],
        ..Table::default()
    })
}

/// A time in ns with a fraction below 10 ns (`1.3 ns`), else as [`fmt_ns`].
fn fmt_ns_f(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.1} ns")
    } else {
        fmt_ns(ns.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chase_is_one_cycle_through_every_line() {
        for n in [1, 2, 3, 256, 10_000] {
            let next = cycle(n);
            let mut seen = vec![false; n];
            let mut at = 0;
            for _ in 0..n {
                assert!(!seen[at], "line {at} visited twice in a cycle of {n}");
                seen[at] = true;
                at = next[at];
            }
            assert_eq!(at, 0, "back at the start after {n}");
            assert!(seen.iter().all(|&s| s));
        }
        assert_eq!(parse_cache_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_cache_size("1M"), Some(1 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("lots"), None);
    }

    #[test]
    fn a_cached_load_is_cheaper_than_a_missing_one() {
        let rows = measure_loads(Duration::from_millis(20)).expect("loads");
        let names: Vec<&str> = rows.iter().map(|r| r.operation.as_str()).collect();
        assert_eq!(names, OPERATIONS[..4]);
        for r in &rows {
            assert!(r.p50_ns > 0.0 && r.p50_ns <= r.p99_ns, "{r:?}");
            assert!(r.operations >= 16 * BATCH, "{r:?}");
        }
        let (cached, missing) = (rows[0].p50_ns, rows[2].p50_ns);
        assert!(
            missing > 3.0 * cached,
            "a load from {} should cost more than one from 16 KiB: {missing} vs {cached} ns",
            fmt_bytes(miss_bytes())
        );
    }

    #[test]
    fn the_mutex_is_timed_alone_and_contended_and_excludes() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("affinity");
        let _pinned = crate::process::AffinityGuard::pin(pinning.parent_cpu).expect("pin");
        let rows = measure_mutex(Duration::from_millis(50), pinning).expect("mutex rows");
        let names: Vec<&str> = rows.iter().map(|r| r.operation.as_str()).collect();
        assert_eq!(names, OPERATIONS[4..]);
        for r in &rows {
            assert!(r.p50_ns > 0.0 && r.p50_ns <= r.p99_ns, "{r:?}");
            assert!(r.operations >= 1000, "{r:?}");
        }
        assert!(
            rows[1].detail.contains("locks of the other process"),
            "{rows:?}"
        );
    }
}
