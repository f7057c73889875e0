//! The budgets the lab's integration tests run at: small enough for CI, large enough for
//! every row to hold real measurements.

use std::time::Duration;

use shmsock_lab::{Budget, Budgets};

/// A few thousand iterations, tens of milliseconds.
pub const TINY: Budget = Budget {
    warmup_iters: 100,
    warmup_time: Duration::from_millis(20),
    iters: 2_000,
    max_time: Duration::from_millis(50),
};

/// Every experiment at [`TINY`], the others a thousandth of their volume (bulk streams move
/// 4 MiB).
pub const SMALL: Budgets = Budgets {
    latency: TINY,
    throughput: TINY,
    bulk_bytes: 4 << 20,
    bulk_max_time: Duration::from_millis(200),
    divisor: 1000,
    experiment_max_time: Duration::from_millis(300),
};
