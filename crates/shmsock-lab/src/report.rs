//! The report: data first (serde structs, written as JSON), rendering second (the terminal
//! table).
//!
//! Latency numbers are **round trip** times in ns (`min_ns`, `p50_ns`, `p99_ns`, `p999_ns`);
//! `oneway_p50_ns` is `p50_ns / 2`. Throughput is measured by the receiver, first to last
//! message. A mechanism that could not be set up or failed its run is not a row of numbers but
//! an [`UnavailableRow`] with the reason.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::host::HostInfo;

/// Everything one lab run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The machine.
    pub host: HostInfo,
    /// Whether the short `quick` budgets were used.
    pub quick: bool,
    /// The mechanisms run, in order.
    pub mechanisms: Vec<String>,
    /// Ping-pong latency rows.
    pub latency: Vec<LatencyRow>,
    /// Streaming throughput rows.
    pub throughput: Vec<ThroughputRow>,
    /// Experiments that produced no numbers, and why.
    pub unavailable: Vec<UnavailableRow>,
    /// The floor measured before and after everything else.
    pub floor_check: Option<FloorCheck>,
}

/// Ping-pong latency of one mechanism at one message size. Times are round trips, in ns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    /// Mechanism name.
    pub mechanism: String,
    /// Message size in bytes.
    pub size: usize,
    /// Fastest round trip.
    pub min_ns: u64,
    /// Median round trip.
    pub p50_ns: u64,
    /// 99th percentile round trip.
    pub p99_ns: u64,
    /// 99.9th percentile round trip.
    pub p999_ns: u64,
    /// Slowest round trip.
    pub max_ns: u64,
    /// Mean round trip.
    pub mean_ns: f64,
    /// One-way latency estimate: `p50_ns / 2`.
    pub oneway_p50_ns: u64,
    /// Round trips measured.
    pub samples: u64,
    /// `p50_ns` divided by the floor's `p50_ns` (`None` if the floor is unavailable).
    pub p50_vs_floor: Option<f64>,
}

impl LatencyRow {
    /// Summarises a histogram of round-trip times in ns.
    pub(crate) fn from_histogram(
        mechanism: &str,
        size: usize,
        hist: &Histogram<u64>,
        samples: u64,
    ) -> Self {
        let p50_ns = hist.value_at_quantile(0.5);
        Self {
            mechanism: mechanism.to_string(),
            size,
            min_ns: hist.min(),
            p50_ns,
            p99_ns: hist.value_at_quantile(0.99),
            p999_ns: hist.value_at_quantile(0.999),
            max_ns: hist.max(),
            mean_ns: hist.mean(),
            oneway_p50_ns: p50_ns / 2,
            samples,
            p50_vs_floor: None,
        }
    }
}

/// Streaming throughput of one mechanism at one message size, measured by the receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputRow {
    /// Mechanism name.
    pub mechanism: String,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second.
    pub msgs_per_s: u64,
    /// Payload bytes per second.
    pub bytes_per_s: u64,
    /// Messages counted in the measured window.
    pub messages: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// CPU use of the sending process's thread while it sent, in % of one CPU.
    pub sender_cpu_pct: f64,
    /// CPU use of the receiving process's thread while it received, in % of one CPU.
    pub receiver_cpu_pct: f64,
    /// `msgs_per_s` divided by `raw-ring`'s at the same size.
    pub vs_raw_ring: Option<f64>,
    /// `msgs_per_s` divided by `uds-stream`'s at the same size.
    pub vs_uds_stream: Option<f64>,
}

impl ThroughputRow {
    /// Computes the rates from the receiver's count and window and both sides' CPU times.
    pub(crate) fn new(
        mechanism: &str,
        size: usize,
        messages: u64,
        wall_ns: u64,
        sender_cpu_ns: u64,
        sender_wall_ns: u64,
        receiver_cpu_ns: u64,
    ) -> Self {
        let seconds = wall_ns.max(1) as f64 / 1e9;
        let msgs_per_s = messages as f64 / seconds;
        let pct = |cpu: u64, wall: u64| 100.0 * cpu as f64 / wall.max(1) as f64;
        Self {
            mechanism: mechanism.to_string(),
            size,
            msgs_per_s: msgs_per_s.round() as u64,
            bytes_per_s: (msgs_per_s * size as f64).round() as u64,
            messages,
            seconds,
            sender_cpu_pct: pct(sender_cpu_ns, sender_wall_ns),
            receiver_cpu_pct: pct(receiver_cpu_ns, wall_ns),
            vs_raw_ring: None,
            vs_uds_stream: None,
        }
    }
}

/// An experiment that produced no numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnavailableRow {
    /// Mechanism name.
    pub mechanism: String,
    /// `"latency"` or `"throughput"`.
    pub experiment: String,
    /// Message size in bytes.
    pub size: usize,
    /// Why: the setup or run error.
    pub reason: String,
}

/// The floor measured before and after the other experiments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloorCheck {
    /// Floor p50 round trip before, in ns.
    pub before_p50_ns: u64,
    /// Floor p50 round trip after, in ns.
    pub after_p50_ns: u64,
    /// Relative change, in % of the smaller of the two.
    pub moved_pct: f64,
    /// Whether it moved by more than [`FloorCheck::NOISY_PCT`]: the host was noisy.
    pub noisy: bool,
}

impl FloorCheck {
    /// A floor that moves more than this (in %) marks the run as noisy.
    pub const NOISY_PCT: f64 = 50.0;

    /// Compares the two floor measurements.
    pub fn new(before_p50_ns: u64, after_p50_ns: u64) -> Self {
        let (lo, hi) = if before_p50_ns <= after_p50_ns {
            (before_p50_ns, after_p50_ns)
        } else {
            (after_p50_ns, before_p50_ns)
        };
        let moved_pct = 100.0 * (hi - lo) as f64 / lo.max(1) as f64;
        Self {
            before_p50_ns,
            after_p50_ns,
            moved_pct,
            noisy: moved_pct > Self::NOISY_PCT,
        }
    }

    /// The warning to print, if the run was noisy.
    pub fn warning(&self) -> Option<String> {
        self.noisy.then(|| {
            format!(
                "WARNING: the floor moved from {} to {} p50 ({:.0}%) during the run: the host \
                 was noisy (vCPUs moved or shared); rerun before trusting these numbers",
                fmt_ns(self.before_p50_ns),
                fmt_ns(self.after_p50_ns),
                self.moved_pct
            )
        })
    }
}

impl Report {
    /// Fills the ratio columns: latency p50 vs `floor`, throughput vs `raw-ring` and
    /// `uds-stream` at the same size.
    pub(crate) fn compute_ratios(&mut self) {
        let floor = self
            .latency
            .iter()
            .find(|r| r.mechanism == "floor")
            .map(|r| r.p50_ns);
        for row in &mut self.latency {
            row.p50_vs_floor = floor.map(|f| row.p50_ns as f64 / f.max(1) as f64);
        }
        let rate = |rows: &[ThroughputRow], name: &str, size: usize| {
            rows.iter()
                .find(|r| r.mechanism == name && r.size == size)
                .map(|r| r.msgs_per_s)
        };
        let rates: Vec<_> = self
            .throughput
            .iter()
            .map(|r| {
                (
                    rate(&self.throughput, "raw-ring", r.size),
                    rate(&self.throughput, "uds-stream", r.size),
                )
            })
            .collect();
        for (row, (raw, uds)) in self.throughput.iter_mut().zip(rates) {
            let ratio = |base: u64| row.msgs_per_s as f64 / base.max(1) as f64;
            row.vs_raw_ring = raw.map(ratio);
            row.vs_uds_stream = uds.map(ratio);
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// The terminal table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let h = &self.host;
        let _ = writeln!(
            out,
            "shmsock lab{}",
            if self.quick {
                " (quick: indicative numbers)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "  CPU:     {} ({} CPUs online, {} usable)",
            h.cpu_model, h.cpus_online, h.cpus_allowed
        );
        let _ = writeln!(out, "  kernel:  {} ({})", h.kernel, h.machine);
        let _ = writeln!(out, "  pinning: {}", h.pinning_text);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Latency, ping-pong: RTT = round trip; one-way = RTT / 2"
        );
        let _ = writeln!(
            out,
            "{:<13} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10}",
            "mechanism",
            "size",
            "RTT min",
            "RTT p50",
            "RTT p99",
            "RTT p99.9",
            "one-way p50",
            "p50/floor"
        );
        for name in &self.mechanisms {
            for r in self.latency.iter().filter(|r| &r.mechanism == name) {
                let _ = writeln!(
                    out,
                    "{:<13} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10}",
                    r.mechanism,
                    fmt_size(r.size),
                    fmt_ns(r.min_ns),
                    fmt_ns(r.p50_ns),
                    fmt_ns(r.p99_ns),
                    fmt_ns(r.p999_ns),
                    fmt_ns(r.oneway_p50_ns),
                    fmt_ratio(r.p50_vs_floor)
                );
            }
            self.render_unavailable(&mut out, name, "latency");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Throughput, one way, measured by the receiver");
        let _ = writeln!(
            out,
            "{:<13} {:>6} {:>10} {:>10} {:>10} {:>10} {:>15}",
            "mechanism", "size", "msgs/s", "MB/s", "/raw-ring", "/uds", "CPU% send/recv"
        );
        for name in &self.mechanisms {
            for r in self.throughput.iter().filter(|r| &r.mechanism == name) {
                let _ = writeln!(
                    out,
                    "{:<13} {:>6} {:>10} {:>10.0} {:>10} {:>10} {:>15}",
                    r.mechanism,
                    fmt_size(r.size),
                    fmt_count(r.msgs_per_s),
                    r.bytes_per_s as f64 / 1e6,
                    fmt_ratio(r.vs_raw_ring),
                    fmt_ratio(r.vs_uds_stream),
                    format!("{:.0}/{:.0}", r.sender_cpu_pct, r.receiver_cpu_pct)
                );
            }
            self.render_unavailable(&mut out, name, "throughput");
        }
        if let Some(check) = &self.floor_check {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "floor p50 before {} / after {} ({:.0}% apart)",
                fmt_ns(check.before_p50_ns),
                fmt_ns(check.after_p50_ns),
                check.moved_pct
            );
            if let Some(warning) = check.warning() {
                let _ = writeln!(out, "{warning}");
            }
        }
        out
    }

    fn render_unavailable(&self, out: &mut String, name: &str, experiment: &str) {
        for u in self
            .unavailable
            .iter()
            .filter(|u| u.mechanism == name && u.experiment == experiment)
        {
            let _ = writeln!(
                out,
                "{:<13} {:>6}  unavailable: {}",
                u.mechanism,
                fmt_size(u.size),
                u.reason
            );
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// `850 ns`, `45.2 µs`, `1.20 ms`, `2.00 s`.
pub(crate) fn fmt_ns(ns: u64) -> String {
    match ns {
        0..10_000 => format!("{ns} ns"),
        10_000..10_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        10_000_000..10_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

fn fmt_size(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn fmt_count(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1} k", n as f64 / 1e3),
        _ => format!("{:.2} M", n as f64 / 1e6),
    }
}

fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{HostInfo, Pinning};

    fn report() -> Report {
        let pinning = Pinning {
            parent_cpu: 0,
            child_cpu: 1,
        };
        let latency = |mechanism: &str, p50_ns| LatencyRow {
            mechanism: mechanism.into(),
            size: 64,
            min_ns: p50_ns,
            p50_ns,
            p99_ns: p50_ns,
            p999_ns: p50_ns,
            max_ns: p50_ns,
            mean_ns: p50_ns as f64,
            oneway_p50_ns: p50_ns / 2,
            samples: 1,
            p50_vs_floor: None,
        };
        let throughput = |mechanism: &str, msgs: u64| {
            ThroughputRow::new(mechanism, 64, msgs, 1_000_000_000, 1, 1, 1)
        };
        Report {
            host: HostInfo {
                cpu_model: "test".into(),
                cpus_online: 2,
                cpus_allowed: 2,
                kernel: "Linux".into(),
                machine: "x86_64".into(),
                pinning,
                pinning_text: pinning.describe(),
            },
            quick: true,
            mechanisms: vec![
                "floor".into(),
                "raw-ring".into(),
                "uds-stream".into(),
                "pipe".into(),
            ],
            latency: vec![latency("floor", 100), latency("pipe", 5_000)],
            throughput: vec![
                throughput("raw-ring", 20_000_000),
                throughput("uds-stream", 500_000),
                throughput("pipe", 1_000_000),
            ],
            unavailable: vec![UnavailableRow {
                mechanism: "raw-ring".into(),
                experiment: "latency".into(),
                size: 64,
                reason: "no memory today".into(),
            }],
            floor_check: Some(FloorCheck::new(100, 320)),
        }
    }

    #[test]
    fn ratios_compare_with_floor_raw_ring_and_uds_at_the_same_size() {
        let mut r = report();
        r.compute_ratios();
        assert_eq!(r.latency[1].p50_vs_floor, Some(50.0));
        let pipe = &r.throughput[2];
        assert_eq!(pipe.vs_raw_ring, Some(0.05));
        assert_eq!(pipe.vs_uds_stream, Some(2.0));
        assert_eq!(pipe.bytes_per_s, 64_000_000);
    }

    #[test]
    fn a_floor_that_moves_more_than_half_is_flagged() {
        assert!(FloorCheck::new(100, 320).noisy);
        assert!(FloorCheck::new(320, 100).noisy);
        assert!(!FloorCheck::new(100, 140).noisy);
        let text = report().render();
        assert!(text.contains("WARNING: the floor moved"), "{text}");
    }

    #[test]
    fn table_says_round_trip_and_shows_unavailable_rows() {
        let text = report().render();
        assert!(
            text.contains("RTT = round trip; one-way = RTT / 2"),
            "{text}"
        );
        assert!(text.contains("unavailable: no memory today"), "{text}");
        assert!(
            text.contains("pinning: parent on CPU 0, child on CPU 1"),
            "{text}"
        );
    }

    #[test]
    fn durations_and_counts_read_naturally() {
        assert_eq!(fmt_ns(850), "850 ns");
        assert_eq!(fmt_ns(45_200), "45.2 µs");
        assert_eq!(fmt_count(1_500_000), "1.50 M");
        assert_eq!(fmt_count(547_100), "547.1 k");
    }
}
