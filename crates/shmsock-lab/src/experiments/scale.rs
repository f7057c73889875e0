//! One million messages (Communication Costs): between two threads of one process, and between two
//! processes over a Unix socket and over shmsock.
//!
//! Communication Costs claims ~100 ms for threads with a lock-free queue and ~10 s for processes with
//! sockets. Each path moves `MESSAGES` sequence-numbered 64-byte messages one way, back to
//! back, and the receiver times first to last message (connection setup is not timed):
//!
//! - `threads`: a `crossbeam-channel` bounded (array, lock-free) channel of `[u8; 64]`, the
//!   sending thread pinned to the child's CPU and the receiving one to the parent's;
//! - `uds-stream` and `shmsock`: the [`super::throughput`] experiment with no warm-up, over a
//!   Unix stream socket and over a `shm://` `Conn` (default options).
//!
//! A path that hits the time cap is stopped there and its time for a million is extrapolated
//! (the row says so), which is also how `--quick` (fewer messages) reports.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{throughput, Budget, Budgets};
use crate::claims::{self, fmt_value, ClaimCheck, Metric};
use crate::error::LabError;
use crate::experiments::latency::{self, LatencyRow};
use crate::format::{fmt_count, fmt_ns};
use crate::host::Pinning;
use crate::mechanisms::shmsock::Shmsock;
use crate::mechanisms::uds_stream::UDS_STREAM;
use crate::mechanisms::Mechanism;
use crate::process::pin_current_thread;
use crate::table::Table;

/// Moving one million messages one way (Communication Costs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MillionRow {
    /// `threads` (crossbeam channel), `uds-stream` (processes), `shmsock` (processes).
    pub path: String,
    /// Messages moved.
    pub messages: u64,
    /// Message size in bytes.
    pub size: usize,
    /// Wall time of `messages`, seconds.
    pub seconds: f64,
    /// Time for one million at the measured rate, seconds (= `seconds` when `messages` is a
    /// million).
    #[serde(default)]
    pub seconds_per_million: f64,
    /// Whether the run stopped at its time cap before moving all its messages.
    #[serde(default)]
    pub capped: bool,
}

impl MillionRow {
    /// A row of `messages` moved in `seconds`; `capped` if the time cap stopped it early.
    pub fn new(path: &str, messages: u64, size: usize, seconds: f64, capped: bool) -> Self {
        Self {
            path: path.to_string(),
            messages,
            size,
            seconds,
            seconds_per_million: seconds * 1e6 / messages.max(1) as f64,
            capped,
        }
    }
}

/// Messages of the Communication Costs' claim.
pub(crate) const MESSAGES: u64 = 1_000_000;
/// Message size.
pub(crate) const SIZE: usize = 64;
/// Slots of the threads' channel.
const CHANNEL_CAPACITY: usize = 1024;

/// The paths, in the table's order.
pub(crate) const PATHS: [&str; 3] = ["threads", "uds-stream", "shmsock"];

/// (messages per path, time cap per path).
pub(crate) fn plan(budgets: &Budgets) -> (u64, Duration) {
    (
        (MESSAGES / budgets.divisor.max(1)).max(1000),
        budgets.experiment_max_time * 4,
    )
}

/// Measures `path` (one of [`PATHS`]).
pub(crate) fn measure(
    path: &str,
    messages: u64,
    max_time: Duration,
    pinning: Pinning,
) -> Result<MillionRow, LabError> {
    let (moved, seconds) = match path {
        "threads" => threads(messages, max_time, pinning)?,
        "uds-stream" => processes(&UDS_STREAM, messages, max_time, pinning)?,
        _ => processes(&Shmsock::adaptive(), messages, max_time, pinning)?,
    };
    Ok(MillionRow::new(
        path,
        moved,
        SIZE,
        seconds,
        moved < messages,
    ))
}

fn processes(
    mechanism: &dyn Mechanism,
    messages: u64,
    max_time: Duration,
    pinning: Pinning,
) -> Result<(u64, f64), LabError> {
    let budget = Budget {
        warmup_iters: 0,
        warmup_time: Duration::ZERO,
        iters: messages,
        max_time,
    };
    let row = throughput::measure(mechanism, SIZE, budget, pinning)?;
    Ok((row.messages, row.seconds))
}

fn threads(messages: u64, max_time: Duration, pinning: Pinning) -> Result<(u64, f64), LabError> {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; SIZE]>(CHANNEL_CAPACITY);
    let sender = std::thread::Builder::new()
        .name("lab-sender".into())
        .spawn(move || -> Result<(), LabError> {
            pin_current_thread(pinning.child_cpu)?;
            let end = Instant::now() + max_time;
            let mut msg = [0x5Au8; SIZE];
            for seq in 1..=messages {
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                if tx.send(msg).is_err() {
                    return Err(LabError::PeerClosed {
                        what: "sending on the threads' channel",
                    });
                }
                if seq % 1024 == 0 && Instant::now() >= end {
                    break;
                }
            }
            Ok(())
        })
        .map_err(|e| LabError::Os {
            what: "spawning the sending thread",
            source: e,
        })?;
    // The receiving thread is this one, already pinned to the parent's CPU.
    let mut expected = 1u64;
    let mut started: Option<Instant> = None;
    // The loop ends when the sender has sent its last message and dropped its end.
    for msg in &rx {
        started.get_or_insert_with(Instant::now);
        let seq = u64::from_le_bytes(msg[..8].try_into().expect("an 8-byte slice"));
        if seq != expected {
            return Err(LabError::Integrity {
                detail: format!("threads: expected message {expected}, got {seq}"),
            });
        }
        expected += 1;
    }
    let last = Instant::now();
    sender.join().map_err(|_| LabError::Integrity {
        detail: "the sending thread panicked".into(),
    })??;
    let moved = expected - 1;
    let seconds = started.map_or(0.0, |s| (last - s).as_secs_f64());
    Ok((moved, seconds))
}
/// The one-million-messages table, each path beside Communication Costs' claim, and what
/// request/response would cost at the latency rows' round trips.
pub(crate) fn table(
    rows: &[MillionRow],
    latency: &[LatencyRow],
    checks: &[ClaimCheck],
) -> Option<Table> {
    let mut notes = vec![
        "One way, back to back, 64 B messages; the receiver times first to last message \
         (connection setup not included). threads: crossbeam-channel (bounded, lock-free) \
         between two threads pinned to two CPUs; uds-stream and shmsock: two processes. \
         shmsock is held to the threads' claim: moving messages between processes at the \
         speed of threads is what it is for."
            .into(),
    ];
    let rtt = |name: &str| latency::find(latency, name).map(|r| r.rtt.p50_ns);
    if let Some(uds) = rtt("uds-stream") {
        notes.push(format!(
            "If every message waited for its reply (request/response), a million would take \
             a million round trips: uds-stream {} (RTT p50 {}){}.",
            fmt_value(uds as f64 * 1e6 / 1e9, "s"),
            fmt_ns(uds),
            rtt("shmsock").map_or_else(String::new, |s| format!(
                ", shmsock {}",
                fmt_value(s as f64 * 1e6 / 1e9, "s")
            ))
        ));
    }
    let mut table = claims::checked_table(
        "One million messages: threads vs processes",
        &["path", "messages", "time", "time for 1M", "per message"],
        "Communication Costs",
        rows,
        checks,
        |r| {
            let cells = vec![
                r.path.clone(),
                fmt_count(r.messages),
                fmt_value(r.seconds, "s"),
                format!(
                    "{}{}",
                    fmt_value(r.seconds_per_million, "s"),
                    if r.messages < 1_000_000 {
                        " (extrapolated)"
                    } else {
                        ""
                    }
                ),
                fmt_ns((r.seconds_per_million * 1e3).round() as u64),
            ];
            (cells, Metric::Million, &r.path)
        },
    )?;
    table.notes = notes;
    Some(table)
}
