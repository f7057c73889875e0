//! The numbers behind the claims beyond the reference tables' own: ratios of two rows (`a vs
//! b`), copies, system calls and context switches per message, the `costs` experiment's
//! operations and 1 KiB messages, and the `setup` experiment's system calls; and the facts
//! the reasons of the unchecked claims give ([`RunFacts`]).

use super::Report;
use crate::claims::{Metric, RunFacts};
use crate::experiments::costs::CostRow;
use crate::experiments::latency;
use crate::experiments::setup::syscalls::setup_calls;
use crate::experiments::throughput::ThroughputRow;
use crate::experiments::Budgets;
use crate::format::{fmt_ns, fmt_size};
use crate::mechanisms::data_path;

/// The row of the `setup` experiment whose system calls the claims count.
const SHM_SETUP: &str = "shmsock shm://";

impl Report {
    /// The measurement of `metric` (one of the claims' own metrics, not a reference table's)
    /// in lab row `row`, if this run measured it. `a vs b` rows are `a`'s number over `b`'s.
    pub(super) fn measured_more(&self, metric: Metric, row: &str) -> Option<f64> {
        let stream = |name: &str, size: usize| {
            self.throughput
                .iter()
                .find(|r| r.mechanism == name && r.size == size)
        };
        let one_way =
            |name: &str| latency::find(&self.latency, name).map(|r| r.rtt.p50_ns as f64 / 2.0);
        let contention = |queue: &str, producers: u32| {
            self.contention
                .iter()
                .find(|r| r.queue == queue && r.producers == producers)
                .map(|r| r.msgs_per_s as f64)
        };
        let ratio = |number: &dyn Fn(&str) -> Option<f64>| {
            let (a, b) = row.split_once(" vs ")?;
            divide(number(a)?, number(b)?)
        };
        match metric {
            Metric::Cost => self.cost(row).map(|r| r.p50_ns),
            Metric::CostTail => self.cost(row).map(|r| r.p99_ns),
            Metric::CostRatio => ratio(&|name| self.cost(name).map(|r| r.p50_ns)),
            Metric::OneKib => self.one_kib(row),
            Metric::OneKibRatio => ratio(&|name| self.one_kib(name)),
            Metric::LatencyRatio => ratio(&one_way),
            Metric::RateRatio { size } => {
                let (a, b) = row.split_once(" vs ")?;
                let rate = stream(a, size)?.msgs_per_s as f64;
                let base = if b == "kernel" {
                    self.fastest_kernel_row(size)?
                } else {
                    stream(b, size)?.msgs_per_s as f64
                };
                divide(rate, base)
            }
            Metric::CpuPerMsgRatio { size } => {
                ratio(&|name| stream(name, size).map(ThroughputRow::cpu_ns_per_msg))
            }
            Metric::AdvantageGrowth => {
                let (a, b) = row.split_once(" vs ")?;
                let at = |size| {
                    divide(
                        stream(a, size)?.msgs_per_s as f64,
                        stream(b, size)?.msgs_per_s as f64,
                    )
                };
                divide(at(1 << 20)?, at(4096)?)
            }
            Metric::Copies { size } => stream(row, size)?.copies_per_msg.map(f64::from),
            Metric::Syscalls { size } => stream(row, size)?.syscalls_per_msg(),
            Metric::ModeSwitches { size } => {
                let r = stream(row, size)?;
                Some(2.0 * r.sender_syscalls_per_msg?.min(r.receiver_syscalls_per_msg?))
            }
            Metric::Switches { size } => {
                let r = stream(row, size)?;
                Some(r.sender_switches_per_msg?.min(r.receiver_switches_per_msg?))
            }
            Metric::ControlBytes => {
                let ran = self.throughput.iter().any(|r| r.mechanism == row);
                ran.then(|| data_path::of(row)?.control_bytes)
                    .flatten()
                    .map(|bytes| bytes as f64)
            }
            Metric::VsLockFree => self
                .sync_tax
                .iter()
                .find(|r| r.method == row && r.method != "lock-free")?
                .vs_lock_free_pct
                .map(|pct| 1.0 + pct / 100.0),
            Metric::SyncTaxVsQueue => {
                let (a, b) = row.split_once(" vs ")?;
                let method = self.sync_tax.iter().find(|r| r.method == a)?;
                divide(method.msgs_per_s as f64, contention(b, 1)?)
            }
            Metric::ContentionRatio { producers } => ratio(&|queue| contention(queue, producers)),
            Metric::GapShrink => {
                let (a, b) = row.split_once(" vs ")?;
                let gap = |producers| divide(contention(a, producers)?, contention(b, producers)?);
                divide(gap(8)?, gap(1)?)
            }
            Metric::SerializeRatio => ratio(&|format| {
                self.serialization
                    .iter()
                    .find(|r| r.format == format)
                    .map(|r| r.encode_ns + r.decode_ns)
            }),
            Metric::MillionRatio => ratio(&|path| {
                self.million
                    .iter()
                    .find(|r| r.path == path)
                    .map(|r| r.seconds_per_million)
            }),
            Metric::RateTimesLatency { size } => {
                Some(stream(row, size)?.msgs_per_s as f64 * one_way(row)? / 1e9)
            }
            Metric::SetupSyscalls => (row == SHM_SETUP)
                .then(|| setup_calls(&self.setup.shm_steps))
                .flatten()
                .map(f64::from),
            _ => None,
        }
    }

    fn cost(&self, operation: &str) -> Option<&CostRow> {
        self.costs
            .operations
            .iter()
            .find(|r| r.operation == operation)
    }

    fn one_kib(&self, mechanism: &str) -> Option<f64> {
        self.costs
            .one_kib
            .iter()
            .find(|r| r.mechanism == mechanism)
            .map(|r| r.rtt.p50_ns as f64 / 2.0)
    }

    /// The highest msgs/s at `size` of a row whose copies the kernel makes.
    fn fastest_kernel_row(&self, size: usize) -> Option<f64> {
        self.throughput
            .iter()
            .filter(|r| r.size == size && r.kernel_copies_per_msg.is_some_and(|k| k > 0))
            .map(|r| r.msgs_per_s as f64)
            .max_by(f64::total_cmp)
    }

    /// What the reasons of the unchecked claims say about this run.
    pub(super) fn facts(&self) -> RunFacts {
        let h = &self.host;
        let kernel: Vec<&str> = h.kernel.split_whitespace().take(2).collect();
        let moved = self
            .throughput
            .iter()
            .filter(|r| r.size >= Budgets::BULK_FROM_BYTES)
            .map(|r| r.messages * r.size as u64)
            .max();
        let bulk = Budgets::of(self.mode).bulk_bytes;
        RunFacts {
            platform: format!("{} ({})", kernel.join(" "), h.machine),
            numa: h.numa_text(),
            runs: "every row is measured once per run (a latency row: the percentiles of every \
                   round trip of its window, after a warm-up; a throughput row: the messages \
                   of one window over its length), and the report says when the floor moved \
                   during the run; averaging runs means running the lab again"
                .into(),
            volume: format!(
                "each 4 KiB and 1 MiB throughput row moves up to {} in {} mode, or less if \
                 its time cap comes first{}",
                fmt_size(usize::try_from(bulk).unwrap_or(usize::MAX)),
                self.mode.as_str(),
                moved.map_or_else(String::new, |bytes| format!(
                    "; the most one row of this run moved: {}",
                    fmt_size(usize::try_from(bytes).unwrap_or(usize::MAX))
                ))
            ),
            floor: latency::find(&self.latency, "floor").map(|r| fmt_ns(r.rtt.p50_ns / 2)),
        }
    }
}

/// `a / b`, unless `b` is zero.
fn divide(a: f64, b: f64) -> Option<f64> {
    (b != 0.0).then(|| a / b)
}
