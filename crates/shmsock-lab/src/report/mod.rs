//! The report: data first (serde structs, written as JSON), rendering second (the terminal
//! table).
//!
//! Latency numbers are **round trip** times in ns (`min_ns`, `p50_ns`, `p99_ns`, `p999_ns`);
//! `oneway_p50_ns` is `p50_ns / 2`. Throughput is measured by the receiver, first to last
//! message. A mechanism that could not be set up or failed its run is not a row of numbers but
//! an [`UnavailableRow`] with the reason.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::host::HostInfo;
use crate::{LabError, Mode};

mod bridge;
mod markdown;
mod plot;
mod render;
mod rows;
mod tables;

pub use rows::{BridgeRow, ContentionRow, FanoutRow, MillionRow, SerializationRow, SyncTaxRow};

use crate::claims::ClaimCheck;

#[cfg(test)]
use render::fmt_count;
use render::{fmt_ns, fmt_size};

/// Everything one lab run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The machine.
    pub host: HostInfo,
    /// Whether the short `quick` budgets were used.
    pub quick: bool,
    /// `quick`, `default` or `full`.
    #[serde(default)]
    pub mode: Mode,
    /// The mechanisms run, in order.
    pub mechanisms: Vec<String>,
    /// Ping-pong latency rows, the two sides on different CPUs.
    pub latency: Vec<LatencyRow>,
    /// Ping-pong latency rows, both sides pinned to the same CPU.
    #[serde(default)]
    pub latency_same_cpu: Vec<LatencyRow>,
    /// Streaming throughput rows.
    pub throughput: Vec<ThroughputRow>,
    /// The synchronisation tax (Comparison).
    #[serde(default)]
    pub sync_tax: Vec<SyncTaxRow>,
    /// Producers 1/2/4/8 into one consumer (Comparison).
    #[serde(default)]
    pub contention: Vec<ContentionRow>,
    /// One shmsock publisher process to 1/2/4 subscriber processes (issue 5).
    #[serde(default)]
    pub fanout: Vec<FanoutRow>,
    /// One-way latency direct and through `shmsock bridge` (issue 7).
    #[serde(default)]
    pub bridge: Vec<BridgeRow>,
    /// Serializing a 1 KiB struct (Communication Costs).
    #[serde(default)]
    pub serialization: Vec<SerializationRow>,
    /// One million messages (Communication Costs).
    #[serde(default)]
    pub million: Vec<MillionRow>,
    /// Every reference claim checked against this run.
    #[serde(default)]
    pub claims: Vec<ClaimCheck>,
    /// Experiments that produced no numbers, and why.
    pub unavailable: Vec<UnavailableRow>,
    /// The floor measured before and after everything else.
    pub floor_check: Option<FloorCheck>,
    /// Signs that the host was noisy (see [`Report::finish`]).
    pub warnings: Vec<String>,
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
    /// An empty report of a run about to start.
    pub fn new(host: HostInfo, mode: Mode, mechanisms: Vec<String>) -> Self {
        Self {
            host,
            quick: mode == Mode::Quick,
            mode,
            mechanisms,
            latency: Vec::new(),
            latency_same_cpu: Vec::new(),
            throughput: Vec::new(),
            sync_tax: Vec::new(),
            contention: Vec::new(),
            fanout: Vec::new(),
            bridge: Vec::new(),
            serialization: Vec::new(),
            million: Vec::new(),
            claims: Vec::new(),
            unavailable: Vec::new(),
            floor_check: None,
            warnings: Vec::new(),
        }
    }

    /// Writes the report as JSON to `path`.
    pub fn write_json(&self, path: &std::path::Path) -> Result<(), LabError> {
        let json_err = |source| LabError::Json {
            path: path.to_path_buf(),
            source,
        };
        let json = self
            .to_json()
            .map_err(|e| json_err(std::io::Error::other(e)))?;
        std::fs::write(path, json + "\n").map_err(json_err)
    }

    /// Writes `report.md`, `report.json` and the SVG plots into `dir` (created if needed) and
    /// returns the paths written.
    pub fn write_dir(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, LabError> {
        let write_err = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| LabError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        let mut written = Vec::new();
        let json = dir.join("report.json");
        self.write_json(&json)?;
        written.push(json);
        let md = dir.join("report.md");
        std::fs::write(&md, self.render_markdown()).map_err(write_err(&md))?;
        written.push(md);
        for (name, svg) in self.plots() {
            let path = dir.join(name);
            std::fs::write(&path, svg).map_err(write_err(&path))?;
            written.push(path);
        }
        Ok(written)
    }

    /// Why a kernel wake-up costs more across CPUs than on one, with this run's numbers (the
    /// mechanism among `pipe`, `uds-stream`, `futex` whose two placements were both measured).
    pub fn wakeup_note(&self) -> Option<String> {
        let (cross, same) = ["futex", "pipe", "uds-stream", "eventfd"]
            .iter()
            .find_map(|name| {
                let find = |rows: &[LatencyRow]| {
                    rows.iter()
                        .find(|r| r.mechanism == *name && r.size == crate::LATENCY_SIZE)
                        .cloned()
                };
                Some((find(&self.latency)?, find(&self.latency_same_cpu)?))
            })?;
        Some(format!(
            "Why kernel mechanisms are slower across CPUs ({m}: {c} RTT p50 across CPUs, {s} on \
             one CPU):\n\
             a blocked reader sleeps; waking it on ANOTHER CPU means an inter-processor interrupt\n\
             to a CPU that is idle. On a small VM an idle vCPU halts (its host thread sleeps), so\n\
             the wake-up waits for the hypervisor to reschedule that vCPU: tens of µs per\n\
             direction. On the SAME CPU the writer just marks the reader runnable and the\n\
             scheduler switches to it when the writer blocks: a context switch, a few µs, no\n\
             interrupt, no halted CPU. Spinning mechanisms (floor, raw-ring, shmsock-busy) show\n\
             the opposite: across CPUs they never sleep, on one CPU each must yield to let the\n\
             other run.",
            m = cross.mechanism,
            c = fmt_ns(cross.p50_ns),
            s = fmt_ns(same.p50_ns),
        ))
    }

    /// Mechanisms whose sides never sleep: each should use a whole CPU while streaming.
    pub const SPINNING: [&'static str; 2] = ["raw-ring", "shmsock-busy"];
    /// A spinning side that got less than this share of its CPU (in %) was preempted.
    pub const SPINNING_CPU_MIN_PCT: f64 = 90.0;

    /// Fills the ratio columns and the warnings: a floor that moved (see [`FloorCheck`]),
    /// and spinning sides (of [`Report::SPINNING`]) that got less than
    /// [`Report::SPINNING_CPU_MIN_PCT`] of their CPU, meaning other work ran on the lab's CPUs.
    pub(crate) fn finish(&mut self) {
        self.compute_ratios();
        self.claims = crate::claims::check(self);
        self.warnings
            .extend(self.floor_check.as_ref().and_then(FloorCheck::warning));
        for row in &self.throughput {
            let cpu = row.sender_cpu_pct.min(row.receiver_cpu_pct);
            if Self::SPINNING.contains(&row.mechanism.as_str()) && cpu < Self::SPINNING_CPU_MIN_PCT
            {
                self.warnings.push(format!(
                    "WARNING: {} at {} spins on both sides but got only {cpu:.0}% of a CPU: \
                     other work ran on the lab's CPUs; throughput numbers are unreliable",
                    row.mechanism,
                    fmt_size(row.size)
                ));
            }
        }
        for row in &self.sync_tax {
            let cpu = row.sender_cpu_pct.min(row.receiver_cpu_pct);
            if Self::SPINNING_SYNC_TAX.contains(&row.method.as_str())
                && cpu < Self::SPINNING_CPU_MIN_PCT
            {
                self.warnings.push(format!(
                    "WARNING: sync tax {} spins on both sides but got only {cpu:.0}% of a CPU: \
                     other work ran on the lab's CPUs; the sync-tax table is unreliable",
                    row.method
                ));
            }
        }
    }

    /// Sync-tax methods whose two sides both spin (no sleeping anywhere).
    pub const SPINNING_SYNC_TAX: [&'static str; 2] = ["lock-free", "spinlock"];

    fn compute_ratios(&mut self) {
        for rows in [&mut self.latency, &mut self.latency_same_cpu] {
            let floor = rows
                .iter()
                .find(|r| r.mechanism == "floor")
                .map(|r| r.p50_ns);
            for row in rows.iter_mut() {
                row.p50_vs_floor = floor.map(|f| row.p50_ns as f64 / f.max(1) as f64);
            }
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
        let lock_free = self
            .sync_tax
            .iter()
            .find(|r| r.method == "lock-free")
            .map(|r| r.msgs_per_s);
        for row in &mut self.sync_tax {
            row.vs_lock_free_pct =
                lock_free.map(|base| 100.0 * (row.msgs_per_s as f64 / base.max(1) as f64 - 1.0));
        }
        let singles: Vec<(String, u64)> = self
            .contention
            .iter()
            .filter(|r| r.producers == 1)
            .map(|r| (r.queue.clone(), r.msgs_per_s))
            .collect();
        for row in &mut self.contention {
            row.vs_one_producer = singles
                .iter()
                .find(|(q, _)| *q == row.queue)
                .map(|(_, base)| row.msgs_per_s as f64 / (*base).max(1) as f64);
        }
        let singles: Vec<(usize, u64)> = self
            .fanout
            .iter()
            .filter(|r| r.subscribers == 1)
            .map(|r| (r.size, r.msgs_per_s))
            .collect();
        for row in &mut self.fanout {
            row.vs_one_subscriber = singles
                .iter()
                .find(|(size, _)| *size == row.size)
                .map(|(_, base)| row.msgs_per_s as f64 / (*base).max(1) as f64);
        }
        let baseline = self
            .bridge
            .iter()
            .find(|r| r.path == crate::experiments::bridge::BASELINE)
            .map(|r| (r.p50_ns, r.p99_ns));
        for row in &mut self.bridge {
            if row.bridge_cpu.is_none() {
                continue;
            }
            let diff = |a: u64, b: u64| {
                i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX)
            };
            row.vs_tcp_p50 = baseline.map(|(p50, _)| row.p50_ns as f64 / p50.max(1) as f64);
            row.added_p50_ns = baseline.map(|(p50, _)| diff(row.p50_ns, p50));
            row.added_p99_ns = baseline.map(|(_, p99)| diff(row.p99_ns, p99));
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{HostInfo, Pinning};

    const SECOND_NS: u64 = 1_000_000_000;

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
            ThroughputRow::new(
                mechanism, 64, msgs, SECOND_NS, SECOND_NS, SECOND_NS, SECOND_NS,
            )
        };
        Report {
            host: HostInfo {
                cpu_model: "test".into(),
                cpus_online: 2,
                cpus_allowed: 2,
                kernel: "Linux".into(),
                machine: "x86_64".into(),
                governor: None,
                pinning,
                pinning_text: pinning.describe(),
            },
            quick: true,
            mode: Mode::Quick,
            mechanisms: vec![
                "floor".into(),
                "raw-ring".into(),
                "uds-stream".into(),
                "pipe".into(),
            ],
            latency: vec![latency("floor", 100), latency("pipe", 5_000)],
            latency_same_cpu: vec![latency("floor", 2_000), latency("pipe", 6_000)],
            throughput: vec![
                throughput("raw-ring", 20_000_000),
                throughput("uds-stream", 500_000),
                throughput("pipe", 1_000_000),
            ],
            sync_tax: Vec::new(),
            contention: Vec::new(),
            fanout: Vec::new(),
            bridge: Vec::new(),
            serialization: Vec::new(),
            million: Vec::new(),
            claims: Vec::new(),
            unavailable: vec![UnavailableRow {
                mechanism: "raw-ring".into(),
                experiment: "latency".into(),
                size: 64,
                reason: "no memory today".into(),
            }],
            floor_check: Some(FloorCheck::new(100, 320)),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn ratios_compare_with_floor_raw_ring_and_uds_at_the_same_size() {
        let mut r = report();
        r.finish();
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
        let mut r = report();
        r.finish();
        let text = r.render();
        assert!(text.contains("WARNING: the floor moved"), "{text}");
    }

    #[test]
    fn a_preempted_spinning_side_is_flagged() {
        let mut r = report();
        r.throughput[0].sender_cpu_pct = 55.0;
        r.finish();
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("raw-ring") && w.contains("55%")),
            "{:?}",
            r.warnings
        );
        let mut calm = report();
        calm.floor_check = None;
        calm.throughput
            .iter_mut()
            .for_each(|t| t.sender_cpu_pct = 99.0);
        calm.throughput
            .iter_mut()
            .for_each(|t| t.receiver_cpu_pct = 99.0);
        calm.finish();
        assert!(calm.warnings.is_empty(), "{:?}", calm.warnings);
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
    fn claims_are_printed_with_source_ratio_and_verdict() {
        let mut r = report();
        r.finish();
        // pipe: 5 µs RTT = 2.5 µs one-way, inside the Comparison's 2–5 µs typical.
        let check = r
            .claims
            .iter()
            .find(|c| {
                c.measured_by == "pipe"
                    && c.subject.starts_with("Pipe (small")
                    && c.metric == crate::claims::Metric::LatencyTypical
            })
            .expect("pipe latency claim checked");
        assert_eq!(check.verdict, crate::claims::Verdict::Agrees);
        assert_eq!(check.same_cpu, Some(3000.0));
        let text = r.render();
        assert!(text.contains("Comparison Pipe (small message)"), "{text}");
        assert!(text.contains("agrees"), "{text}");
    }

    #[test]
    fn markdown_and_plots_are_written_for_a_report() {
        let mut r = report();
        r.finish();
        let md = r.render_markdown();
        assert!(md.contains("| pipe |"), "{md}");
        assert!(md.contains("## Reference claims vs this machine"), "{md}");
        let plots = r.plots();
        let names: Vec<_> = plots.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["latency.svg", "throughput.svg"]);
        assert!(plots.iter().all(|(_, svg)| svg.starts_with("<svg")));
        let dir = std::env::temp_dir().join(format!("shmsock-lab-md-{}", std::process::id()));
        let files = r.write_dir(&dir).expect("written");
        assert_eq!(files.len(), 4, "{files:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fanout_table_states_the_4_vs_1_bar_per_size() {
        let row = |subscribers: u32, size: usize, msgs_per_s: u64| FanoutRow {
            subscribers,
            size,
            msgs_per_s,
            delivered_per_s: msgs_per_s * u64::from(subscribers),
            messages: msgs_per_s,
            seconds: 1.0,
            publisher_cpu_pct: 100.0,
            subscriber_cpu_pct: 100.0 / f64::from(subscribers),
            capped: subscribers == 4,
            vs_one_subscriber: None,
        };
        let mut r = report();
        r.fanout = vec![
            row(1, 64, 1000),
            row(4, 64, 600),
            row(1, 4096, 1000),
            row(4, 4096, 300),
        ];
        r.finish();
        assert_eq!(r.fanout[1].vs_one_subscriber, Some(0.6));
        assert_eq!(r.fanout[3].vs_one_subscriber, Some(0.3));
        let text = r.render();
        assert!(
            text.contains(
                "64 B: 4 subscribers reach 0.60x the publisher rate with one (bar: >= 0.50x; met)"
            ),
            "{text}"
        );
        assert!(
            text.contains("4 KiB: 4 subscribers reach 0.30x the publisher rate with one (bar: >= 0.50x; NOT met in this run)"),
            "{text}"
        );
        assert!(text.contains("time-share one CPU"), "{text}");
        assert!(text.contains("time cap"), "{text}");
        assert!(r.plots().iter().any(|(name, _)| *name == "fanout.svg"));
    }

    #[test]
    fn durations_and_counts_read_naturally() {
        assert_eq!(fmt_ns(850), "850 ns");
        assert_eq!(fmt_ns(45_200), "45.2 µs");
        assert_eq!(fmt_count(1_500_000), "1.50 M");
        assert_eq!(fmt_count(547_100), "547.1 k");
    }
}
