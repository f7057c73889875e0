//! Rows of the experiments beyond latency and throughput: the synchronisation tax, contention,
//! serialization, and one million messages.

use serde::{Deserialize, Serialize};

/// One synchronisation method guarding a single-producer single-consumer queue of 4 KiB
/// messages (seed 002's "synchronization tax" table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncTaxRow {
    /// `lock-free`, `spinlock`, `mutex-low`, `mutex-high`.
    pub method: String,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second, measured by the consumer.
    pub msgs_per_s: u64,
    /// Change against `lock-free`, in % (negative: slower).
    pub vs_lock_free_pct: Option<f64>,
    /// What the method does, in a few words.
    pub detail: String,
}

/// One multi-producer queue with `producers` producer processes and one consumer (seed 002's
/// contention table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionRow {
    /// `lock-free` (CAS multi-producer ring), `mutex` (process-shared mutex queue),
    /// `posix-mq`.
    pub queue: String,
    /// Producer processes.
    pub producers: u32,
    /// Messages per second, all producers together, measured by the consumer.
    pub msgs_per_s: u64,
    /// Message size in bytes.
    pub size: usize,
}

/// Serializing one ~1 KiB struct (seed 003).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SerializationRow {
    /// `postcard` or `serde_json`.
    pub format: String,
    /// Encoded size in bytes.
    pub encoded_bytes: usize,
    /// Median time to encode, ns.
    pub encode_ns: f64,
    /// Median time to decode, ns.
    pub decode_ns: f64,
}

/// Moving one million messages one way (seed 003).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MillionRow {
    /// `threads` (crossbeam channel), `uds-stream` (processes), `shmsock` (processes).
    pub path: String,
    /// Messages moved.
    pub messages: u64,
    /// Message size in bytes.
    pub size: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}
