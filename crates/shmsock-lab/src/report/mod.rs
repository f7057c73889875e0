//! The report: data first (serde structs, written as JSON), rendering second (the terminal
//! text, `report.md` and the SVG plots, assembled in `report/render.rs` from the tables and plots each
//! experiment owns). The report imports the experiments and [`crate::claims`]; none of them
//! imports the report.
//!
//! Latency numbers are **round trip** times in ns (`min_ns`, `p50_ns`, `p99_ns`, `p999_ns`);
//! `oneway_p50_ns` is `p50_ns / 2`. Throughput is measured by the receiver, first to last
//! message. A mechanism that could not be set up or failed its run is not a row of numbers but
//! an [`UnavailableRow`] with the reason.

use serde::{Deserialize, Serialize};

use crate::claims::{self, ClaimCheck, Metric};
use crate::error::LabError;
use crate::experiments::bridge::{self, BridgeRow};
use crate::experiments::bugs::BugRow;
use crate::experiments::contention::{self, ContentionRow};
use crate::experiments::costs::CostRows;
use crate::experiments::crash::{LeftoverRow, SurvivalRow};
use crate::experiments::fanout::{self, FanoutRow};
use crate::experiments::latency::{self, LatencyRow};
use crate::experiments::network::{self, NetworkRow};
use crate::experiments::python::{self, PythonRun};
use crate::experiments::scale::MillionRow;
use crate::experiments::serialization::SerializationRow;
use crate::experiments::setup::{self, SetupRows};
use crate::experiments::sync_tax::{self, SyncTaxRow};
use crate::experiments::throughput::{self, ThroughputRow};
use crate::experiments::upgrade::{self, UpgradeRow};
use crate::format::{fmt_ns, fmt_size};
use crate::host::HostInfo;
use crate::options::Mode;
use crate::rounds::RoundLog;

mod html;
mod measured;
mod render;

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
    /// One shmsock publisher process to 1/2/4 subscriber processes.
    #[serde(default)]
    pub fanout: Vec<FanoutRow>,
    /// One-way latency direct and through `shmsock bridge`.
    #[serde(default)]
    pub bridge: Vec<BridgeRow>,
    /// shmsock's tcp:// and unix:// against libzmq, same run.
    #[serde(default)]
    pub network: Vec<NetworkRow>,
    /// Serializing a 1 KiB struct (Communication Costs).
    #[serde(default)]
    pub serialization: Vec<SerializationRow>,
    /// One million messages (Communication Costs).
    #[serde(default)]
    pub million: Vec<MillionRow>,
    /// What SIGKILLed creators of named shared-memory objects left in `/dev/shm`.
    #[serde(default)]
    pub shm_leftovers: Vec<LeftoverRow>,
    /// What fresh readers found in the files of SIGKILLed writers.
    #[serde(default)]
    pub crash: Vec<SurvivalRow>,
    /// Connect + first message + close per path, and shm://'s system calls one by one.
    #[serde(default)]
    pub setup: SetupRows,
    /// The reference documents' shared-memory bugs: a naive implementation and shmsock.
    #[serde(default)]
    pub bugs: Vec<BugRow>,
    /// The Python rows: multiprocessing, pyzmq and the shmsock package, Python on both sides
    /// (`None` when the python experiment did not run).
    #[serde(default)]
    pub python: Option<PythonRun>,
    /// Every reference claim checked against this run.
    /// Single operations (Communication Costs): loads, a process-shared mutex, 1 KiB one way.
    #[serde(default)]
    pub costs: CostRows,
    /// A tcp:// subscriber moved to shared memory, against tcp:// and shm:// direct.
    #[serde(default)]
    pub upgrade: Vec<UpgradeRow>,
    /// Every quantitative claim of the reference documents: checked against this run (with a
    /// verdict), or with the reason it was not (see [`crate::claims`]).
    #[serde(default)]
    pub claims: Vec<ClaimCheck>,
    /// Experiments that produced no numbers, and why.
    pub unavailable: Vec<UnavailableRow>,
    /// The floor measured before and after everything else.
    pub floor_check: Option<FloorCheck>,
    /// Every round of every latency and throughput row, with the floor probes around it.
    #[serde(default)]
    pub rounds: Vec<RoundLog>,
    /// Signs that the host was noisy (see `Report::finish`).
    pub warnings: Vec<String>,
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
            network: Vec::new(),
            serialization: Vec::new(),
            million: Vec::new(),
            shm_leftovers: Vec::new(),
            crash: Vec::new(),
            setup: SetupRows::default(),
            bugs: Vec::new(),
            python: None,
            costs: CostRows::default(),
            upgrade: Vec::new(),
            claims: Vec::new(),
            unavailable: Vec::new(),
            floor_check: None,
            rounds: Vec::new(),
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
        let html = dir.join("report.html");
        std::fs::write(&html, self.render_html()).map_err(write_err(&html))?;
        written.push(html);
        for (name, svg) in self.plots() {
            let path = dir.join(name);
            std::fs::write(&path, svg).map_err(write_err(&path))?;
            written.push(path);
        }
        Ok(written)
    }

    /// Mechanisms whose sides never sleep: each should use a whole CPU while streaming.
    pub const SPINNING: [&'static str; 3] = ["raw-ring", "shmsock-busy", "shm-open"];
    /// A spinning side that got less than this share of its CPU (in %) was preempted.
    pub const SPINNING_CPU_MIN_PCT: f64 = 90.0;

    /// Fills the ratio columns and the warnings: a floor that moved (see [`FloorCheck`]),
    /// and spinning sides (of [`Report::SPINNING`]) that got less than
    /// [`Report::SPINNING_CPU_MIN_PCT`] of their CPU, meaning other work ran on the lab's CPUs.
    pub(crate) fn finish(&mut self) {
        self.compute_ratios();
        let facts = self.facts();
        self.claims = claims::check(
            |metric, row, same_cpu| self.measured(metric, row, same_cpu),
            &facts,
        );
        self.warnings
            .extend(self.floor_check.as_ref().and_then(FloorCheck::warning));
        let preempted = |spinning: &[&str], name: &str, send: f64, recv: f64| {
            let cpu = send.min(recv);
            (spinning.contains(&name) && cpu < Self::SPINNING_CPU_MIN_PCT).then(|| {
                format!("spins on both sides but got only {cpu:.0}% of a CPU: other work ran on the lab's CPUs")
            })
        };
        for r in &self.throughput {
            let cpu = (r.sender_cpu_pct, r.receiver_cpu_pct);
            if let Some(why) = preempted(&Self::SPINNING, &r.mechanism, cpu.0, cpu.1) {
                let at = fmt_size(r.size);
                self.warnings.push(format!(
                    "WARNING: {} at {at} {why}; throughput numbers are unreliable",
                    r.mechanism
                ));
            }
        }
        for r in &self.sync_tax {
            let cpu = (r.sender_cpu_pct, r.receiver_cpu_pct);
            if let Some(why) = preempted(&Self::SPINNING_SYNC_TAX, &r.method, cpu.0, cpu.1) {
                self.warnings.push(format!(
                    "WARNING: sync tax {} {why}; the sync-tax table is unreliable",
                    r.method
                ));
            }
        }
    }

    /// Sync-tax methods whose two sides both spin (no sleeping anywhere).
    pub const SPINNING_SYNC_TAX: [&'static str; 2] = ["lock-free", "spinlock"];

    fn compute_ratios(&mut self) {
        latency::compare_with_floor(&mut self.latency);
        latency::compare_with_floor(&mut self.latency_same_cpu);
        throughput::compare_with_references(&mut self.throughput);
        sync_tax::compare_with_lock_free(&mut self.sync_tax);
        contention::compare_with_one_producer(&mut self.contention);
        fanout::compare_with_one_subscriber(&mut self.fanout);
        bridge::compare_with_baseline(&mut self.bridge);
        setup::compare_with_baseline(&mut self.setup);
        network::compare(&mut self.network);
        upgrade::compare(&mut self.upgrade);
        if let Some(run) = &mut self.python {
            python::compare(run);
        }
    }

    /// The measurement of `metric` in lab row `row` (with both sides on one CPU if
    /// `same_cpu`), in the metric's unit, if it was measured: what [`claims::check`] compares.
    fn measured(&self, metric: Metric, row: &str, same_cpu: bool) -> Option<f64> {
        let one_way = |pick: fn(&LatencyRow) -> u64| {
            let rows = if same_cpu {
                &self.latency_same_cpu
            } else {
                &self.latency
            };
            latency::find(rows, row).map(|r| pick(r) as f64 / 2.0)
        };
        let stream = |size: usize| {
            self.throughput
                .iter()
                .find(|r| r.mechanism == row && r.size == size)
        };
        match metric {
            Metric::LatencyMin => one_way(|r| r.rtt.min_ns),
            Metric::LatencyTypical => one_way(|r| r.rtt.p50_ns),
            _ if same_cpu => None,
            Metric::Rate { size } => stream(size).map(|r| r.msgs_per_s as f64),
            Metric::Bandwidth { size } => stream(size).map(|r| r.bytes_per_s as f64),
            Metric::Cpu { size } => {
                stream(size).map(|r| (r.sender_cpu_pct + r.receiver_cpu_pct) / 2.0)
            }
            Metric::SyncTax => self
                .sync_tax
                .iter()
                .find(|r| r.method == row)
                .map(|r| r.msgs_per_s as f64),
            Metric::Contention { producers } => self
                .contention
                .iter()
                .find(|r| r.queue == row && r.producers == producers)
                .map(|r| r.msgs_per_s as f64),
            Metric::Serialize => self
                .serialization
                .iter()
                .find(|r| r.format == row)
                .map(|r| r.encode_ns + r.decode_ns),
            Metric::Million => self
                .million
                .iter()
                .find(|r| r.path == row)
                .map(|r| r.seconds_per_million),
            Metric::VsRawRing { size } => stream(size).and_then(|r| r.vs_raw_ring),
            Metric::UserCpu { size } => stream(size).and_then(ThroughputRow::user_share_pct),
            Metric::Kept => self
                .crash
                .iter()
                .find(|r| r.mechanism == row)
                .map(|r| r.kept_pct),
            _ => self.measured_more(metric, row),
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// How many rows `experiment` (a name of [`crate::EXPERIMENTS`]) put in this report,
    /// unavailable rows included; `None` for an unknown name.
    pub fn rows_of(&self, experiment: &str) -> Option<usize> {
        let measured = match experiment {
            "latency" => self.latency.len() + self.latency_same_cpu.len(),
            "throughput" => self.throughput.len(),
            "sync-tax" => self.sync_tax.len(),
            "contention" => self.contention.len(),
            "fanout" => self.fanout.len(),
            "bridge" => self.bridge.len(),
            "network" => self.network.len(),
            "serialization" => self.serialization.len(),
            "scale" => self.million.len(),
            "crash" => self.crash.len() + self.shm_leftovers.len(),
            "setup" => self.setup.connections.len(),
            "bugs" => self.bugs.len(),
            "costs" => self.costs.operations.len() + self.costs.one_kib.len(),
            "python" => self.python.as_ref().map_or(0, |p| p.rows.len()),
            "upgrade" => self.upgrade.len(),
            _ => return None,
        };
        let unavailable = self
            .unavailable
            .iter()
            .filter(|u| {
                u.experiment == experiment || u.experiment.starts_with(&format!("{experiment}-"))
            })
            .count();
        Some(measured + unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostInfo;
    use crate::stats::Percentiles;

    const SECOND_NS: u64 = 1_000_000_000;

    fn report() -> Report {
        let latency = |mechanism: &str, p50_ns| {
            LatencyRow::new(mechanism, 64, Percentiles::at(p50_ns, [1, 1, 1]), 1)
        };
        let throughput = |mechanism: &str, msgs: u64| {
            ThroughputRow::new(
                mechanism, 64, msgs, SECOND_NS, SECOND_NS, SECOND_NS, SECOND_NS,
            )
        };
        let mechanisms = ["floor", "raw-ring", "uds-stream", "pipe"];
        let mut r = Report::new(
            HostInfo::for_tests(2),
            Mode::Quick,
            mechanisms.map(String::from).to_vec(),
        );
        r.latency = vec![latency("floor", 100), latency("pipe", 5_000)];
        r.latency_same_cpu = vec![latency("floor", 2_000), latency("pipe", 6_000)];
        r.throughput = vec![
            throughput("raw-ring", 20_000_000),
            throughput("uds-stream", 500_000),
            throughput("pipe", 1_000_000),
        ];
        r.unavailable = vec![UnavailableRow {
            mechanism: "raw-ring".into(),
            experiment: "latency".into(),
            size: 64,
            reason: "no memory today".into(),
        }];
        r.floor_check = Some(FloorCheck::new(100, 320));
        r
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
    fn shm_open_is_checked_for_kernel_time_and_speed_against_raw_ring() {
        use crate::claims::Verdict;
        let row = |mechanism: &str, size, msgs, kernel_pct| {
            let mut row = ThroughputRow::new(
                mechanism, size, msgs, SECOND_NS, SECOND_NS, SECOND_NS, SECOND_NS,
            );
            row.sender_kernel_pct = kernel_pct;
            row
        };
        let mut r = report();
        r.throughput = vec![
            row("raw-ring", 64, 20_000_000, 1.0),
            row("raw-ring", 4096, 2_000_000, 0.0),
            row("shm-open", 64, 19_000_000, 30.0),
            row("shm-open", 4096, 1_900_000, 0.0),
        ];
        r.finish();
        let verdict = |metric, name: &str| {
            r.claims
                .iter()
                .find(|c| c.metric == Some(metric) && c.measured_by == name)
                .and_then(|c| c.verdict)
        };
        // 1% of the two sides' 200% is kernel time: 99.5% user space.
        let user = Metric::UserCpu { size: 64 };
        assert_eq!(verdict(user, "raw-ring"), Some(Verdict::Agrees));
        // 30 of 200: 85% user space, more than the claim allows.
        assert_eq!(verdict(user, "shm-open"), Some(Verdict::Slower));
        let speed = Metric::VsRawRing { size: 4096 };
        assert_eq!(verdict(speed, "shm-open"), Some(Verdict::Agrees));
        assert_eq!(
            verdict(speed, "raw-ring"),
            None,
            "raw-ring is not compared with itself"
        );
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
                    && c.metric == Some(crate::claims::Metric::LatencyTypical)
            })
            .expect("pipe latency claim checked");
        assert_eq!(check.verdict, Some(crate::claims::Verdict::Agrees));
        assert_eq!(check.same_cpu, Some(3000.0));
        let text = r.render();
        assert!(
            text.lines().any(|line| line.starts_with("Comparison")
                && line.contains("Pipe (small message)")
                && line.contains("agrees")),
            "{text}"
        );
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
        assert_eq!(files.len(), 5, "{files:?}");
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
            cpu_ns_per_delivered: if subscribers == 4 { 125.0 } else { 100.0 },
            cpu_vs_one_subscriber: None,
            spread: Default::default(),
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
        assert_eq!(r.fanout[1].cpu_vs_one_subscriber, Some(1.25));
        // Ratios the rounds paired are kept.
        let mut paired = r.clone();
        paired.fanout[1].vs_one_subscriber = Some(0.7);
        paired.finish();
        assert_eq!(paired.fanout[1].vs_one_subscriber, Some(0.7));
        let text = r.render();
        assert!(
            text.contains(
                "64 B: 4 subscribers cost 1.25x the CPU per delivered message of one (met)"
            ),
            "{text}"
        );
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
    fn a_report_without_bridge_rows_still_loads_and_shows_no_bridge_table() {
        // A report written before the bridge experiment existed has no `bridge` field.
        let r = report();
        let mut json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("bridge");
        let old: Report = serde_json::from_value(json).expect("an old report loads");
        assert!(old.bridge.is_empty());
        assert!(!old.render().contains("Bridge:"));
        assert!(old.plots().iter().all(|(name, _)| *name != "bridge.svg"));
    }
}
