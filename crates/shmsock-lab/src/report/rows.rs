//! Rows of the experiments beyond latency and throughput: the synchronisation tax, contention,
//! pub/sub fan-out, serialization, and one million messages.

use serde::{Deserialize, Serialize};

/// One synchronisation method guarding a single-producer single-consumer queue of 4 KiB
/// messages (the Comparison's "synchronization tax" table).
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

/// One multi-producer queue with `producers` producer processes and one consumer (the Comparison's
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

/// Serializing one ~1 KiB struct (Communication Costs).
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

/// One-way latency of one path from a publisher process to a subscriber process, direct or
/// through a `shmsock bridge` process (issue 7). Times in ns, one message in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeRow {
    /// `shm`, `tcp`, `shm->bridge->tcp`, `tcp->bridge->shm`.
    pub path: String,
    /// Message size in bytes.
    pub size: usize,
    /// Fastest one-way time.
    pub min_ns: u64,
    /// Median one-way time.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
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
    /// Summarises a histogram of one-way times in ns.
    pub(crate) fn from_histogram(
        path: &str,
        size: usize,
        hist: &hdrhistogram::Histogram<u64>,
        samples: u64,
        bridge_cpu: Option<usize>,
    ) -> Self {
        Self {
            path: path.to_string(),
            size,
            min_ns: hist.min(),
            p50_ns: hist.value_at_quantile(0.5),
            p99_ns: hist.value_at_quantile(0.99),
            p999_ns: hist.value_at_quantile(0.999),
            max_ns: hist.max(),
            mean_ns: hist.mean(),
            samples,
            bridge_cpu,
            vs_tcp_p50: None,
            added_p50_ns: None,
            added_p99_ns: None,
        }
    }
}
