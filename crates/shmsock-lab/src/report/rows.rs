//! Rows of the experiments beyond latency and throughput: the synchronisation tax, contention,
//! pub/sub fan-out, serialization, and one million messages.

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

/// One `shm://` publisher process broadcasting to `subscribers` subscriber processes
/// (issue 5's fan-out), `Overflow::Block`: every message reaches every subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutRow {
    /// Subscriber processes.
    pub subscribers: u32,
    /// Message size in bytes.
    pub size: usize,
    /// Messages the publisher sent per second; each was delivered to every subscriber (the
    /// window ends when the last subscriber has everything).
    pub msgs_per_s: u64,
    /// Messages delivered per second, all subscribers together (`msgs_per_s` × subscribers).
    pub delivered_per_s: u64,
    /// Messages sent in the window (every subscriber received exactly these, in order).
    pub messages: u64,
    /// The publisher's window, seconds.
    pub seconds: f64,
    /// CPU use of the publishing thread in its window, % of one CPU.
    pub publisher_cpu_pct: f64,
    /// Mean CPU use of the subscribers' threads from their first message to the last, % of
    /// one CPU.
    pub subscriber_cpu_pct: f64,
    /// Whether the time cap stopped the run before all its messages were sent.
    pub capped: bool,
    /// `msgs_per_s` / the rate with one subscriber at the same size.
    #[serde(default)]
    pub vs_one_subscriber: Option<f64>,
}

impl FanoutRow {
    /// A row from what the publisher measured and its subscribers' own windows.
    pub(crate) fn new(
        subscribers: u32,
        size: usize,
        published: &crate::experiments::fanout::Published,
        subscriber_stats: &[crate::experiments::pair::ChildStats],
    ) -> Self {
        let seconds = published.wall_ns.max(1) as f64 / 1e9;
        let msgs_per_s = published.sent as f64 / seconds;
        let pct = |cpu: u64, wall: u64| 100.0 * cpu as f64 / wall.max(1) as f64;
        let subscriber_cpu_pct = subscriber_stats
            .iter()
            .map(|s| pct(s.cpu_ns, s.wall_ns))
            .sum::<f64>()
            / subscriber_stats.len().max(1) as f64;
        Self {
            subscribers,
            size,
            msgs_per_s: msgs_per_s.round() as u64,
            delivered_per_s: (msgs_per_s * f64::from(subscribers)).round() as u64,
            messages: published.sent,
            seconds,
            publisher_cpu_pct: pct(published.cpu_ns, published.wall_ns),
            subscriber_cpu_pct,
            capped: published.capped,
            vs_one_subscriber: None,
        }
    }
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
