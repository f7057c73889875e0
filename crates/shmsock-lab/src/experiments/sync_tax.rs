//! The synchronisation tax (Comparison): what guarding a shared-memory queue with a lock costs.
//!
//! One producer process streams 4 KiB messages to one consumer process on another CPU through
//! the same fixed-slot ring, guarded four ways:
//!
//! | method       | queue                | what synchronises                                   |
//! |--------------|----------------------|-----------------------------------------------------|
//! | `lock-free`  | `raw-ring`           | atomic head/tail, Release/Acquire; no lock          |
//! | `spinlock`   | `spinlock-ring`      | a TTAS spinlock in shared memory, one per message   |
//! | `mutex-low`  | `mutex-ring`         | a process-shared pthread mutex, one per message     |
//! | `mutex-high` | `mutex-ring-polling` | the same mutex, taken by both sides on every poll   |
//!
//! The locked queues copy the payload while holding the lock (see
//! [`crate::mechanisms::locked_ring`]). Each row is a [`super::throughput`] run: the consumer
//! checks every sequence number and times first to last message. A process-shared mutex in
//! shared memory is what the shmsock library forbids (a holder that dies deadlocks everyone);
//! here it is only the thing being measured.

use super::{throughput, Budget, Budgets};
use crate::host::Pinning;
use crate::mechanisms::locked_ring::LockedRing;
use crate::mechanisms::raw_ring::RawRing;
use crate::mechanisms::Mechanism;
use crate::report::SyncTaxRow;
use crate::LabError;

/// Message size of the table, as in the Comparison.
pub(crate) const SIZE: usize = 4096;
/// Messages per row in the default mode: 1 GiB of 4 KiB messages, as the Comparison's throughput.
pub(crate) const MESSAGES: u64 = 262_144;
/// Fewest messages per row, whatever the mode (64 MiB: fewer would time the start-up).
const MESSAGES_MIN: u64 = 16_384;

/// One row of the table: a synchronisation method and the queue that implements it.
pub(crate) struct Method {
    /// The row's name (the claims' key): `lock-free`, `spinlock`, `mutex-low`, `mutex-high`.
    pub(crate) method: &'static str,
    /// The queue.
    pub(crate) mechanism: Box<dyn Mechanism>,
    /// What it does, in a few words.
    pub(crate) detail: &'static str,
}

/// The four methods, in the Comparison's order.
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
    Ok(SyncTaxRow {
        method: method.method.to_string(),
        size: SIZE,
        msgs_per_s: row.msgs_per_s,
        vs_lock_free_pct: None,
        detail: method.detail.to_string(),
        queue: method.mechanism.name().to_string(),
        messages: row.messages,
        sender_cpu_pct: row.sender_cpu_pct,
        receiver_cpu_pct: row.receiver_cpu_pct,
    })
}
