//! The synchronisation tax (Comparison): what guarding a shared-memory queue with a lock costs.
//!
//! One producer process streams 4 KiB messages to one consumer process on another CPU through
//! the same fixed-slot ring, guarded five ways (the Comparison's four, and a semaphore):
//!
//! | method       | queue                | what synchronises                                   |
//! |--------------|----------------------|-----------------------------------------------------|
//! | `lock-free`  | `raw-ring`           | atomic head/tail, Release/Acquire; no lock          |
//! | `spinlock`   | `spinlock-ring`      | a TTAS spinlock in shared memory, one per message   |
//! | `mutex-low`  | `mutex-ring`         | a process-shared pthread mutex, one per message     |
//! | `mutex-high` | `mutex-ring-polling` | the same mutex, taken by both sides on every poll   |
//! | `semaphore`  | `sem-ring`           | named POSIX semaphore (`sem_open`), one per message |
//!
//! The locked queues copy the payload while holding the lock (see
//! [`crate::mechanisms::locked_ring`]). Each row is a [`super::throughput`] run: the consumer
//! checks every sequence number and times first to last message. A process-shared mutex in
//! shared memory is what the shmsock library forbids (a holder that dies deadlocks everyone);
//! here it is only the thing being measured.
//!
//! The `semaphore` row is not in the Comparison's table: the IPC cheat sheet lists "named
//! sem_open" among the ways to synchronise shared memory, so the lab measures it with the same
//! workload as the spinlock and `mutex-low` rows (peek without the lock, lock once per message).
//! No document gives it a number, so it has no verdict.

use serde::{Deserialize, Serialize};

use super::throughput::{self, ThroughputRow};
use super::{Budget, Budgets};
use crate::chart::{Chart, Mark, Series, CLAIMED};
use crate::claims::{self, ClaimCheck, Metric};
use crate::error::LabError;
use crate::format::{fmt_count, fmt_size};
use crate::host::Pinning;
use crate::mechanisms::locked_ring::LockedRing;
use crate::mechanisms::raw_ring::RawRing;
use crate::mechanisms::Mechanism;
use crate::table::Table;

/// One synchronisation method guarding a single-producer single-consumer queue of 4 KiB
/// messages (the Comparison's "synchronization tax" table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncTaxRow {
    /// `lock-free`, `spinlock`, `mutex-low`, `mutex-high`, `semaphore`.
    pub method: String,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second, measured by the consumer.
    pub msgs_per_s: u64,
    /// Change against `lock-free`, in % (negative: slower).
    pub vs_lock_free_pct: Option<f64>,
    /// What the method does, in a few words.
    pub detail: String,
    /// The queue that implements it (`raw-ring`, `spinlock-ring`, `mutex-ring`, ...).
    #[serde(default)]
    pub queue: String,
    /// Messages counted in the measured window.
    #[serde(default)]
    pub messages: u64,
    /// CPU use of the producer's thread, % of one CPU.
    #[serde(default)]
    pub sender_cpu_pct: f64,
    /// CPU use of the consumer's thread, % of one CPU.
    #[serde(default)]
    pub receiver_cpu_pct: f64,
    /// Whether the row is the throughput table's row of the same queue and size, reused
    /// rather than measured again.
    #[serde(default)]
    pub from_throughput: bool,
}

/// Message size of the table, as in the Comparison.
pub(crate) const SIZE: usize = 4096;
/// Messages per row in the default mode: 1 GiB of 4 KiB messages, as the Comparison's throughput.
pub(crate) const MESSAGES: u64 = 262_144;
/// Fewest messages per row, whatever the mode (64 MiB: fewer would time the start-up).
const MESSAGES_MIN: u64 = 16_384;

/// One row of the table: a synchronisation method and the queue that implements it.
pub(crate) struct Method {
    /// The row's name (the claims' key): `lock-free`, `spinlock`, `mutex-low`, `mutex-high`,
    /// `semaphore`.
    pub(crate) method: &'static str,
    /// The queue.
    pub(crate) mechanism: Box<dyn Mechanism>,
    /// What it does, in a few words.
    pub(crate) detail: &'static str,
}

/// The Comparison's four methods, in its order, then the named semaphore.
pub(crate) fn methods() -> Vec<Method> {
    vec![
        Method {
            method: "lock-free",
            mechanism: Box::new(RawRing::anonymous()),
            detail: "raw-ring: atomic head/tail (Release/Acquire), no lock",
        },
        Method {
            method: "spinlock",
            mechanism: Box::new(LockedRing::spinlock()),
            detail: "TTAS spinlock in shared memory, one lock per message",
        },
        Method {
            method: "mutex-low",
            mechanism: Box::new(LockedRing::mutex()),
            detail: "PTHREAD_PROCESS_SHARED mutex, one lock per message",
        },
        Method {
            method: "mutex-high",
            mechanism: Box::new(LockedRing::mutex_polling()),
            detail: "PTHREAD_PROCESS_SHARED mutex, both sides lock on every poll",
        },
        Method {
            method: "semaphore",
            mechanism: Box::new(LockedRing::named_semaphore()),
            detail: "named POSIX semaphore (sem_open) of value 1, one lock per message",
        },
    ]
}

/// The budget of one row: [`MESSAGES`] / divisor messages (1/16 more as warm-up), capped at
/// the budgets' experiment time.
pub(crate) fn budget(budgets: &Budgets) -> Budget {
    let iters = (MESSAGES / budgets.divisor.max(1)).max(MESSAGES_MIN);
    Budget {
        warmup_iters: iters / 16,
        warmup_time: budgets.experiment_max_time / 4,
        iters,
        max_time: budgets.experiment_max_time,
    }
}

/// Measures one method.
pub(crate) fn measure(
    method: &Method,
    budget: Budget,
    pinning: Pinning,
) -> Result<SyncTaxRow, LabError> {
    let row = throughput::measure(method.mechanism.as_ref(), SIZE, budget, pinning)?;
    Ok(SyncTaxRow::of(method, &row, false))
}

impl SyncTaxRow {
    /// The row of `method` from a throughput measurement of its queue at [`SIZE`];
    /// `reused` when that is the throughput table's own row.
    pub(crate) fn of(method: &Method, row: &ThroughputRow, reused: bool) -> Self {
        SyncTaxRow {
            method: method.method.to_string(),
            size: SIZE,
            msgs_per_s: row.msgs_per_s,
            vs_lock_free_pct: None,
            detail: method.detail.to_string(),
            queue: method.mechanism.name().to_string(),
            messages: row.messages,
            sender_cpu_pct: row.sender_cpu_pct,
            receiver_cpu_pct: row.receiver_cpu_pct,
            from_throughput: reused,
        }
    }
}

/// Fills `vs_lock_free_pct`: each row's rate against the `lock-free` row's, in %.
pub(crate) fn compare_with_lock_free(rows: &mut [SyncTaxRow]) {
    let lock_free = rows
        .iter()
        .find(|r| r.method == "lock-free")
        .map(|r| r.msgs_per_s);
    for row in rows {
        row.vs_lock_free_pct =
            lock_free.map(|base| 100.0 * (row.msgs_per_s as f64 / base.max(1) as f64 - 1.0));
    }
}

/// The synchronisation-tax table, each row beside the Comparison's claim.
pub(crate) fn table(rows: &[SyncTaxRow], checks: &[ClaimCheck]) -> Option<Table> {
    let messages = rows.iter().map(|r| r.messages).max().unwrap_or(0);
    let mut table = claims::checked_table(
        format!(
            "Synchronisation tax: 4 KiB messages, one producer process -> one consumer \
             process on another CPU (up to {} per row)",
            fmt_count(messages)
        ),
        &[
            "method",
            "queue",
            "msgs/s",
            "vs lock-free",
            "CPU% send/recv",
        ],
        "Comparison",
        rows,
        checks,
        |r| {
            let cells = vec![
                r.method.clone(),
                r.queue.clone(),
                fmt_count(r.msgs_per_s),
                r.vs_lock_free_pct
                    .filter(|_| r.method != "lock-free")
                    .map_or_else(|| "baseline".into(), |p| format!("{p:+.0}%")),
                format!("{:.0}/{:.0}", r.sender_cpu_pct, r.receiver_cpu_pct),
            ];
            (cells, Metric::SyncTax, &r.method)
        },
    )?;
    table.plot = Some("sync_tax.svg");
    table.notes = vec![
        "Every locked queue copies the payload while holding its lock; mutex-low peeks \
         at the other side's position without the lock and locks once per message, \
         mutex-high locks on every poll; semaphore does what mutex-low does with a named \
         POSIX semaphore (sem_open, unlinked as soon as both processes have opened it)."
            .into(),
        "The mutex rows put a PTHREAD_PROCESS_SHARED mutex in shared memory: a measured \
         subject only. The shmsock library never does this (a process that dies holding \
         the mutex deadlocks every other one); its rings are lock-free with one writer \
         per shared word."
            .into(),
    ];
    for r in rows.iter().filter(|r| r.from_throughput) {
        table.notes.push(format!(
            "{}: the throughput table's {} {} row (the median of its rounds), not measured \
             again: one queue at one size has one number in this report. The other rows are \
             measured once here, with {} messages each.",
            r.method,
            r.queue,
            fmt_size(r.size),
            fmt_count(
                rows.iter()
                    .filter(|o| !o.from_throughput)
                    .map(|o| o.messages)
                    .max()
                    .unwrap_or(0)
            )
        ));
    }
    let names: Vec<&str> = rows.iter().map(|r| r.method.as_str()).collect();
    table.notes.extend(claims::statement_notes(&names, |name| {
        rows.iter()
            .find(|r| r.method == name)
            .map_or_else(|| "not measured".into(), measured_words)
    }));
    Some(table)
}

/// A row's rate in words, for the documents' statements about it.
fn measured_words(row: &SyncTaxRow) -> String {
    let change = row
        .vs_lock_free_pct
        .filter(|_| row.method != "lock-free")
        .map_or_else(String::new, |p| format!(" ({p:+.0}% vs lock-free)"));
    format!("{} msgs/s{change}", fmt_count(row.msgs_per_s))
}

/// `sync_tax.svg`: messages per second per synchronisation method, measured beside the
/// Comparison's claims.
pub(crate) fn plot(rows: &[SyncTaxRow]) -> Option<String> {
    let mut chart = Chart::new(
        "Synchronisation tax: 4 KiB SPSC between two processes (messages/s)",
        rows.iter().map(|r| r.method.clone()).collect(),
        "messages per second",
    );
    chart.count_labels = true;
    let measured = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i as f64 - 0.15, r.msgs_per_s as f64))
        .collect();
    let claimed = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Some((
                i as f64 + 0.15,
                claims::claimed(Metric::SyncTax, &r.method)?,
            ))
        })
        .collect();
    chart.series = vec![
        Series::new(
            "this machine",
            plotters::style::BLUE,
            Mark::Bars(0.13),
            measured,
        ),
        Series::new("Comparison (claimed)", CLAIMED, Mark::Bars(0.13), claimed),
    ];
    chart.to_svg()
}
