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
    /// The implementation (`cas-ring`, `mutex-ring`, `posix-mq`).
    #[serde(default)]
    pub implementation: String,
    /// Messages received in the window.
    #[serde(default)]
    pub messages: u64,
    /// The consumer's window, seconds.
    #[serde(default)]
    pub seconds: f64,
    /// `msgs_per_s` / the same queue's with one producer.
    #[serde(default)]
    pub vs_one_producer: Option<f64>,
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
