//! The reference documents' numbers, as data, and the verdict of this machine on each.
//!
//! Every quantitative claim of the reference documents (see docs/references.md) is in the
//! inventory of [`list`]: a [`Claim`] the lab checks, or an [`Unchecked`] one with the reason no
//! run can check it. A claim is what it is about, the claimed range (`low..=high`; a single
//! value has `low == high`; "at least" has no upper end, "at most" a lower end of 0), its unit,
//! the document and section it comes from with its words, and which lab rows measure it. A
//! claim is checked against every lab row that measures it ([`check`]):
//!
//! - **agrees**: the measurement is inside the claimed range widened by [`TOLERANCE`] (×/÷ 1.5)
//!   on each side ([`Claim::tolerance`]: none for a comparison or words such as "at least",
//!   little for counts and for a share a document calls whole);
//! - **faster** / **slower** than claimed: outside it, in the direction that matters (a lower
//!   latency is faster; a lower rate is slower); **fewer** / **more** for counts (copies,
//!   system calls, context switches: fewer is cheaper); **above** / **below** for a ratio of
//!   two rows, which has no better direction of its own.
//!
//! The ratio printed is measurement / claim, against the claim's middle (the geometric mean of
//! its range), or its bound when it has one end. Latency claims are one-way ("how long it takes
//! for data to travel from sender to receiver"): the lab compares them with RTT / 2.
//!
//! Many claims are words, not table numbers, put as numbers the lab measures: shared memory
//! without the kernel once set up (the user-space share of the CPU time while streaming, and
//! its system calls per message), "the fastest IPC" and "approaches shared memory speed" (the
//! rate against `raw-ring`'s), the persistence of a memory-mapped file (the messages a fresh
//! process reads back after the writer was SIGKILLed), copies, system calls and context
//! switches per message (the throughput rows', see [`crate::mechanisms::data_path`]), and
//! comparisons between rows (`pipe vs raw-ring`: the first row's number over the second's).
//! Each such reading is said in the claim's subject.
//!
//! Some rows have no number in any document, only words: the IPC cheat sheet's menu says what
//! a signal, an eventfd and a signalfd are for, and its "synchronization is your problem" (and
//! the SM and MP article) name semaphores among the ways to synchronise shared memory; its
//! menu's row for D-Bus (with gRPC and ZeroMQ) gives "Easy" where the others give a speed, and
//! the Q&A thread's comments say D-Bus runs on Unix domain (and TCP) sockets. Those
//! are [`STATEMENTS`]: quoted, by `statement_notes`, under the table that measures the rows
//! they are about, beside this run's numbers of those rows, and given no verdict (there is
//! nothing to compare).
//!
//! A report's `claims` array holds the whole inventory: one [`ClaimCheck`] per claim and row
//! measured, with its verdict; one per claim no row of the run measured (its experiment was
//! not selected, or its rows were unavailable), with `not_checked_because`; and one per
//! [`Unchecked`] claim, with the reason.

pub mod list;

use serde::{Deserialize, Serialize};

use crate::format::fmt_size;
use crate::table::Table;

pub use list::{CLAIMS, UNCHECKED};

/// How far outside the claimed range a measurement may be and still agree (a factor).
pub const TOLERANCE: f64 = 1.5;

const COMPARISON: &str = "Comparison";
const COMMUNICATION_COSTS: &str = "Communication Costs";
const IPC_CHEAT_SHEET: &str = "IPC cheat sheet";
const SM_AND_MP: &str = "SM and MP article";
const QA_THREAD: &str = "Q&A thread";

/// What a claim is a number of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Metric {
    /// Minimum one-way latency at 64 B, ns (RTT min / 2).
    LatencyMin,
    /// Typical one-way latency at 64 B, ns (RTT p50 / 2).
    LatencyTypical,
    /// Messages per second streaming `size`-byte messages.
    Rate {
        /// Message size in bytes.
        size: usize,
    },
    /// Bytes per second streaming `size`-byte messages.
    Bandwidth {
        /// Message size in bytes.
        size: usize,
    },
    /// CPU use streaming `size`-byte messages, % of one CPU (mean of the two sides).
    Cpu {
        /// Message size in bytes.
        size: usize,
    },
    /// Messages per second of a synchronisation method (4 KiB SPSC).
    SyncTax,
    /// Messages per second with `producers` producers.
    Contention {
        /// Producer processes.
        producers: u32,
    },
    /// Encode + decode of a 1 KiB struct, ns.
    Serialize,
    /// Seconds to move one million messages.
    Million,
    /// Messages per second streaming `size`-byte messages, divided by `raw-ring`'s at that
    /// size (1.0: as fast as the textbook ring in anonymous shared memory).
    VsRawRing {
        /// Message size in bytes.
        size: usize,
    },
    /// The share of both sides' CPU time spent in user space while streaming `size`-byte
    /// messages, % (100: the kernel did nothing for them once set up).
    UserCpu {
        /// Message size in bytes.
        size: usize,
    },
    /// Of the messages a writer had sent when it was SIGKILLed, the % a fresh process read back
    /// intact from its file (the `crash` experiment).
    Kept,
    /// One operation of the `costs` experiment (a load, a mutex lock + unlock), p50 ns.
    Cost,
    /// One operation of the `costs` experiment, p99 ns (what waiting for a contended mutex can
    /// cost).
    CostTail,
    /// `a vs b`: the p50 of costs row `a` over `b`'s.
    CostRatio,
    /// One-way latency of a 1 KiB message (RTT p50 / 2, the `costs` experiment), ns.
    OneKib,
    /// `a vs b`: the 1 KiB one-way latency of `a` over `b`'s.
    OneKibRatio,
    /// `a vs b`: the one-way p50 at 64 B of `a` over `b`'s.
    LatencyRatio,
    /// `a vs b`: msgs/s of `a` over `b`'s, streaming `size`-byte messages; `b` = `kernel` is
    /// the fastest row whose copies the kernel makes.
    RateRatio {
        /// Message size in bytes.
        size: usize,
    },
    /// `a vs b`: CPU time per message (both sides) of `a` over `b`'s at `size`.
    CpuPerMsgRatio {
        /// Message size in bytes.
        size: usize,
    },
    /// `a vs b`: msgs/s of `a` over `b`'s at 1 MiB, divided by the same at 4 KiB (above 1:
    /// `a`'s advantage grows with the message size).
    AdvantageGrowth,
    /// Copies of the payload per message at `size`, by construction.
    Copies {
        /// Message size in bytes.
        size: usize,
    },
    /// System calls per message of both sides together at `size` (counted by the kernel for
    /// read/write rows, else by construction).
    Syscalls {
        /// Message size in bytes.
        size: usize,
    },
    /// Switches between user space and the kernel per message of the side with fewer: two per
    /// system call, "one to enter the kernel, one to return".
    ModeSwitches {
        /// Message size in bytes.
        size: usize,
    },
    /// Context switches (`getrusage`: voluntary + involuntary) per message of the side with
    /// fewer.
    Switches {
        /// Message size in bytes.
        size: usize,
    },
    /// Bytes that cross the channel per message of a zero-copy row (its offset or loan frame),
    /// by construction.
    ControlBytes,
    /// A synchronisation method's msgs/s over `lock-free`'s (0.85: -15%).
    VsLockFree,
    /// `a vs b`: sync-tax method `a`'s msgs/s over contention queue `b`'s with one producer
    /// (both 4 KiB).
    SyncTaxVsQueue,
    /// `a vs b`: contention queue `a`'s msgs/s over `b`'s with `producers` producers.
    ContentionRatio {
        /// Producer processes.
        producers: u32,
    },
    /// `a vs b`: contention queue `a`'s msgs/s over `b`'s with 8 producers, divided by the
    /// same with 1 (below 1: the gap shrinks).
    GapShrink,
    /// `a vs b`: encode + decode of format `a` over `b`'s.
    SerializeRatio,
    /// `a vs b`: the one-million-messages time of path `a` over `b`'s.
    MillionRatio,
    /// msgs/s streaming `size`-byte messages × the one-way p50 at 64 B, in s: above 1, a
    /// stream moves more messages per second than one per one-way latency.
    RateTimesLatency {
        /// Message size in bytes.
        size: usize,
    },
    /// The system calls that create one `shm://` segment and map it on the other side (the
    /// `setup` experiment's steps).
    SetupSyscalls,
}

/// Which way a metric is better, which names the verdicts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Rates: higher is faster.
    Higher,
    /// Times: lower is faster.
    Lower,
    /// Counts (copies, system calls, switches): fewer is cheaper.
    Fewer,
    /// A ratio of two rows: neither way is better in itself.
    Neither,
}

impl Metric {
    /// Which way this metric is better.
    pub fn direction(self) -> Direction {
        match self {
            Metric::Rate { .. }
            | Metric::Bandwidth { .. }
            | Metric::SyncTax
            | Metric::Contention { .. }
            | Metric::VsRawRing { .. }
            | Metric::UserCpu { .. }
            | Metric::Kept
            | Metric::VsLockFree => Direction::Higher,
            Metric::LatencyMin
            | Metric::LatencyTypical
            | Metric::Cpu { .. }
            | Metric::Serialize
            | Metric::Million
            | Metric::Cost
            | Metric::CostTail
            | Metric::OneKib => Direction::Lower,
            Metric::Copies { .. }
            | Metric::Syscalls { .. }
            | Metric::ModeSwitches { .. }
            | Metric::Switches { .. }
            | Metric::ControlBytes
            | Metric::SetupSyscalls => Direction::Fewer,
            Metric::CostRatio
            | Metric::OneKibRatio
            | Metric::LatencyRatio
            | Metric::RateRatio { .. }
            | Metric::CpuPerMsgRatio { .. }
            | Metric::AdvantageGrowth
            | Metric::SyncTaxVsQueue
            | Metric::ContentionRatio { .. }
            | Metric::GapShrink
            | Metric::SerializeRatio
            | Metric::MillionRatio
            | Metric::RateTimesLatency { .. } => Direction::Neither,
        }
    }

    /// Whether a larger measurement is better (rates) or worse (times, counts; ratios have no
    /// better direction and answer `false`).
    pub fn higher_is_better(self) -> bool {
        self.direction() == Direction::Higher
    }

    /// Whether the measurement is a count per message that the kernel or the scheduler counts
    /// over a window: its edges make it a little more or less than whole.
    const fn counted(self) -> bool {
        matches!(
            self,
            Metric::Syscalls { .. } | Metric::ModeSwitches { .. } | Metric::Switches { .. }
        )
    }

    /// How far outside the claimed range a measurement of this metric may be and still agree
    /// (a factor): [`TOLERANCE`], except for shares that a document says are whole: the user
    /// space share of a mechanism without kernel involvement (within 10%: the kernel samples
    /// the split at its timer ticks, and the `sched_yield` of a waiting side is kernel time)
    /// and the messages kept after a crash (all of them); counts per message over a window
    /// (within 10%: the window's edges), and copies by construction (exact).
    pub const fn tolerance(self) -> f64 {
        match self {
            Metric::UserCpu { .. } => 1.1,
            Metric::Kept | Metric::Copies { .. } | Metric::SetupSyscalls => 1.0,
            m if m.counted() => 1.1,
            _ => TOLERANCE,
        }
    }

    /// Whether a one-sided claim on this metric keeps the metric's tolerance (counts over a
    /// window, and exact ones) rather than none.
    const fn tolerant_when_one_sided(self) -> bool {
        self.counted() || self.tolerance() == 1.0
    }

    /// What was compared, in a few words: `one-way p50`, `msgs/s @ 4 KiB`.
    pub fn label(self) -> String {
        match self {
            Metric::LatencyMin => "one-way min".into(),
            Metric::LatencyTypical => "one-way p50".into(),
            Metric::Rate { size: s } => format!("msgs/s @ {}", fmt_size(s)),
            Metric::Bandwidth { size: s } => format!("GB/s @ {}", fmt_size(s)),
            Metric::Cpu { size: s } => format!("CPU% @ {}", fmt_size(s)),
            Metric::SyncTax => "msgs/s, 4 KiB SPSC".into(),
            Metric::Contention { producers: 1 } => "msgs/s, 1 producer".into(),
            Metric::Contention { producers } => format!("msgs/s, {producers} producers"),
            Metric::Serialize => "encode+decode".into(),
            Metric::Million => "wall time".into(),
            Metric::VsRawRing { size: s } => format!("msgs/s vs raw-ring @ {}", fmt_size(s)),
            Metric::UserCpu { size: s } => format!("user-space CPU share @ {}", fmt_size(s)),
            Metric::Kept => "sent messages read back after SIGKILL".into(),
            Metric::Cost => "ns per operation, p50".into(),
            Metric::CostTail => "ns per operation, p99".into(),
            Metric::CostRatio => "p50 ratio".into(),
            Metric::OneKib => "one-way p50 @ 1 KiB".into(),
            Metric::OneKibRatio => "one-way p50 ratio @ 1 KiB".into(),
            Metric::LatencyRatio => "one-way p50 ratio @ 64 B".into(),
            Metric::RateRatio { size: s } => format!("msgs/s ratio @ {}", fmt_size(s)),
            Metric::CpuPerMsgRatio { size: s } => {
                format!("CPU time per message ratio @ {}", fmt_size(s))
            }
            Metric::AdvantageGrowth => "msgs/s ratio @ 1 MiB / @ 4 KiB".into(),
            Metric::Copies { .. } => "payload copies per message (design)".into(),
            Metric::Syscalls { size: s } => {
                format!("system calls per message, both sides @ {}", fmt_size(s))
            }
            Metric::ModeSwitches { size: s } => {
                format!(
                    "user/kernel switches per message, fewer side @ {}",
                    fmt_size(s)
                )
            }
            Metric::Switches { size: s } => {
                format!("context switches per message, fewer side @ {}", fmt_size(s))
            }
            Metric::ControlBytes => "bytes crossing per message (design)".into(),
            Metric::VsLockFree => "msgs/s vs lock-free".into(),
            Metric::SyncTaxVsQueue => "msgs/s ratio, 4 KiB".into(),
            Metric::ContentionRatio { producers } => {
                format!("msgs/s ratio, {producers} producers")
            }
            Metric::GapShrink => "msgs/s ratio @ 8 producers / @ 1".into(),
            Metric::SerializeRatio => "encode+decode ratio".into(),
            Metric::MillionRatio => "wall time ratio".into(),
            Metric::RateTimesLatency { size: s } => {
                format!("msgs/s @ {} × one-way p50", fmt_size(s))
            }
            Metric::SetupSyscalls => "system calls to set up a segment".into(),
        }
    }

    /// The unit values of this metric are in.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::LatencyMin
            | Metric::LatencyTypical
            | Metric::Serialize
            | Metric::Cost
            | Metric::CostTail
            | Metric::OneKib => "ns",
            Metric::Rate { .. } | Metric::SyncTax | Metric::Contention { .. } => "msgs/s",
            Metric::Bandwidth { .. } => "B/s",
            Metric::Cpu { .. } | Metric::UserCpu { .. } | Metric::Kept => "%",
            Metric::Million => "s",
            Metric::Copies { .. }
            | Metric::Syscalls { .. }
            | Metric::ModeSwitches { .. }
            | Metric::Switches { .. } => "per msg",
            Metric::ControlBytes => "B",
            Metric::SetupSyscalls => "calls",
            Metric::VsRawRing { .. }
            | Metric::CostRatio
            | Metric::OneKibRatio
            | Metric::LatencyRatio
            | Metric::RateRatio { .. }
            | Metric::CpuPerMsgRatio { .. }
            | Metric::AdvantageGrowth
            | Metric::VsLockFree
            | Metric::SyncTaxVsQueue
            | Metric::ContentionRatio { .. }
            | Metric::GapShrink
            | Metric::SerializeRatio
            | Metric::MillionRatio
            | Metric::RateTimesLatency { .. } => "x",
        }
    }
}

/// One number of a reference document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// What the claim is about, and how words were read as a number when they were.
    pub subject: &'static str,
    /// The part of the document it is in.
    pub section: &'static str,
    /// The document's words.
    pub quote: &'static str,
    /// What the number is.
    pub metric: Metric,
    /// Lower end of the claimed range (or the value; 0 for "at most").
    pub low: f64,
    /// Upper end of the claimed range (or the value; infinite for "at least").
    pub high: f64,
    /// How far outside the range a measurement may be and still agree (a factor).
    pub tolerance: f64,
    /// The document, by its short name in docs/references.md: `Comparison`, `Communication
    /// Costs`, `IPC cheat sheet`, `SM and MP article`, `Q&A thread`.
    pub source: &'static str,
    /// The lab rows that measure it (mechanism, sync-tax method, contention queue, ...; `a vs
    /// b` for a ratio of two rows).
    pub measured_by: &'static [&'static str],
}

impl Claim {
    /// A claim of `low..=high` in `metric`'s unit. A one-sided claim ("at least", "at most",
    /// a comparison) gets no tolerance unless its metric is a count over a window; a range
    /// gets the metric's ([`Metric::tolerance`]).
    const fn new(
        subject: &'static str,
        metric: Metric,
        low: f64,
        high: f64,
        source: &'static str,
        measured_by: &'static [&'static str],
    ) -> Self {
        let one_sided = (low == 0.0 && high > 0.0) || high == f64::INFINITY;
        let tolerance = if one_sided && !metric.tolerant_when_one_sided() {
            1.0
        } else {
            metric.tolerance()
        };
        Self {
            subject,
            section: "",
            quote: "",
            metric,
            low,
            high,
            tolerance,
            source,
            measured_by,
        }
    }

    /// The claim found in `section` of its document, in the words `quote`.
    const fn at(mut self, section: &'static str, quote: &'static str) -> Self {
        self.section = section;
        self.quote = quote;
        self
    }

    /// No tolerance: words that already give a wide range ("microseconds") or an exact count.
    const fn strict(mut self) -> Self {
        self.tolerance = 1.0;
        self
    }

    /// Whether the claim has one end only ("at least", "at most").
    pub fn one_sided(&self) -> bool {
        (self.low == 0.0 && self.high > 0.0) || self.high.is_infinite()
    }

    /// What ratios are taken against: the bound of a one-sided claim, else the middle of the
    /// claimed range (geometric mean); `None` for a claim of zero.
    pub fn reference(&self) -> Option<f64> {
        let value = if self.high.is_infinite() {
            self.low
        } else if self.low == 0.0 {
            self.high
        } else {
            (self.low * self.high).sqrt()
        };
        (value > 0.0).then_some(value)
    }

    /// The middle of the claimed range (geometric mean), or its bound (see
    /// [`Claim::reference`]; 0 for a claim of zero).
    pub fn middle(&self) -> f64 {
        self.reference().unwrap_or(0.0)
    }

    /// The verdict on `measured`.
    pub fn verdict(&self, measured: f64) -> Verdict {
        let (below, above) = match self.metric.direction() {
            Direction::Higher => (Verdict::Slower, Verdict::Faster),
            Direction::Lower => (Verdict::Faster, Verdict::Slower),
            Direction::Fewer => (Verdict::Fewer, Verdict::More),
            Direction::Neither => (Verdict::Below, Verdict::Above),
        };
        if measured < self.low / self.tolerance {
            below
        } else if measured > self.high * self.tolerance {
            above
        } else {
            Verdict::Agrees
        }
    }

    /// The claim as the document states it: `2–5 µs`, `450,000 msgs/s`, `≥ 1.00x`.
    pub fn claimed_text(&self) -> String {
        let unit = self.metric.unit();
        if self.high.is_infinite() {
            format!("≥ {}", fmt_value(self.low, unit))
        } else if self.one_sided() {
            format!("≤ {}", fmt_value(self.high, unit))
        } else if self.low == self.high {
            fmt_value(self.low, unit)
        } else {
            format!(
                "{}–{}",
                fmt_value(self.low, unit),
                fmt_value(self.high, unit)
            )
        }
    }
}

/// The range of measurements that agree with a checked claim: its claimed range widened
/// ×/÷ [`TOLERANCE`] (what the plots shade).
/// `None` for a claim with no numeric range.
pub(crate) fn agreement(check: &ClaimCheck) -> Option<(f64, f64)> {
    Some((
        check.claimed_low? / TOLERANCE,
        check.claimed_high? * TOLERANCE,
    ))
}

/// How a measurement compares with a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Within the claimed range, widened by the claim's tolerance.
    Agrees,
    /// Better than claimed (lower latency, higher rate).
    Faster,
    /// Worse than claimed.
    Slower,
    /// Fewer than claimed (copies, system calls, switches): cheaper.
    Fewer,
    /// More than claimed: dearer.
    More,
    /// A ratio of two rows above the claimed range.
    Above,
    /// A ratio of two rows below the claimed range.
    Below,
}

impl Verdict {
    /// `agrees`, `faster than claimed`, `fewer than claimed`, `above the claim`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agrees => "agrees",
            Verdict::Faster => "faster than claimed",
            Verdict::Slower => "slower than claimed",
            Verdict::Fewer => "fewer than claimed",
            Verdict::More => "more than claimed",
            Verdict::Above => "above the claim",
            Verdict::Below => "below the claim",
        }
    }

    /// The verdict in the words of `metric`: a CPU share is not fast or slow, it uses more
    /// or less CPU than claimed; everything else as [`Verdict::as_str`].
    pub fn describe(self, metric: Option<Metric>) -> &'static str {
        match (self, metric) {
            (Verdict::Faster, Some(Metric::Cpu { .. })) => "uses less CPU than claimed",
            (Verdict::Slower, Some(Metric::Cpu { .. })) => "uses more CPU than claimed",
            _ => self.as_str(),
        }
    }
}

/// One entry of a report's claims: a claim checked against one row of the run (with a
/// verdict), or a claim the run did not check (with `not_checked_because`).
///
/// Reports written before the inventory had only checked claims and no `section` or `claim`;
/// they load with those empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimCheck {
    /// What the claim is about.
    pub subject: String,
    /// The document.
    pub source: String,
    /// The part of the document it is in.
    #[serde(default)]
    pub section: String,
    /// The document's words.
    #[serde(default)]
    pub claim: String,
    /// What was compared (`None` for a claim no measurement can check).
    #[serde(default)]
    pub metric: Option<Metric>,
    /// The claim, as text.
    pub claimed: String,
    /// Claimed range, in the metric's unit (`None`: no lower end, or not a number).
    #[serde(default)]
    pub claimed_low: Option<f64>,
    /// Claimed range, in the metric's unit (`None`: no upper end, or not a number).
    #[serde(default)]
    pub claimed_high: Option<f64>,
    /// The lab row that measured it (`a vs b` for a ratio of two rows); the rows that would
    /// have, for a claim this run did not measure.
    pub measured_by: String,
    /// The measurement, in the metric's unit.
    #[serde(default)]
    pub measured: Option<f64>,
    /// The measurement, as text; for a claim not checked, what this run has on the subject.
    #[serde(default)]
    pub measured_text: String,
    /// measured / the claim's middle (or bound); `None` against a claim of zero.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// The verdict; `None` when not checked.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// For latency claims: the same measurement with both sides on one CPU.
    pub same_cpu: Option<f64>,
    /// Verdict on `same_cpu`.
    pub same_cpu_verdict: Option<Verdict>,
    /// Why the claim was not checked in this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_checked_because: Option<String>,
}

impl ClaimCheck {
    /// Whether the claim is measurable but no row of this run measured it (as opposed to a
    /// claim no run can check, which has no metric).
    pub fn not_measured_here(&self) -> bool {
        self.verdict.is_none() && self.metric.is_some()
    }
}

/// A quantitative claim of a document that no measurement checks, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unchecked {
    /// What it is about.
    pub subject: &'static str,
    /// The document, by its short name.
    pub source: &'static str,
    /// The part of the document it is in.
    pub section: &'static str,
    /// The document's words.
    pub quote: &'static str,
    /// The claimed quantity, as the document gives it.
    pub claimed: &'static str,
    /// Why no run checks it.
    pub why: Why,
}

/// Why an [`Unchecked`] claim is not checked; some reasons say what this run has instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A fixed reason.
    Text(&'static str),
    /// The method's platform: this machine's is given.
    Platform,
    /// The NUMA placement of the method: this machine's nodes and the lab's CPUs are given.
    Numa,
    /// The method's repetitions: the lab's own method is given.
    Runs,
    /// The method's volume: the lab's in this mode is given.
    Volume,
    /// "Immediately": no number; the floor row measures the delay.
    Floor,
}

/// What the reasons of the unchecked claims say about this run (see [`Why`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    /// The kernel and CPU architecture.
    pub platform: String,
    /// The NUMA nodes and where the two sides ran.
    pub numa: String,
    /// How often each row is measured in one run.
    pub runs: String,
    /// How much data the throughput rows move.
    pub volume: String,
    /// The floor's one-way latency, if it was measured.
    pub floor: Option<String>,
}

impl Unchecked {
    /// The reason, with what this run has on the subject.
    pub fn reason(&self, facts: &RunFacts) -> String {
        match self.why {
            Why::Text(text) => text.to_string(),
            Why::Platform => format!(
                "a statement of the benchmark's platform, not a measurement; this run: {}",
                facts.platform
            ),
            Why::Numa => format!(
                "a statement of the benchmark's placement, not a measurement; {}",
                facts.numa
            ),
            Why::Runs => format!(
                "a statement of the benchmark's method, not a measurement; the lab's: {}",
                facts.runs
            ),
            Why::Volume => format!(
                "a statement of the benchmark's method, not a measurement; the lab's: {}",
                facts.volume
            ),
            Why::Floor => match &facts.floor {
                Some(floor) => format!(
                    "\"immediately\" has no number to check; the floor row (a cache line \
                     handed between the two CPUs) is that delay here: {floor} one-way (p50)"
                ),
                None => "\"immediately\" has no number to check; the floor row (a cache line \
                         handed between the two CPUs) measures the delay, and did not run"
                    .into(),
            },
        }
    }
}

/// What a reference document says about lab rows in words, with no number to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// The document, by its short name in docs/references.md.
    pub source: &'static str,
    /// The part of the document it is in.
    pub section: &'static str,
    /// The document's words.
    pub says: &'static str,
    /// The lab rows it is about (mechanisms, sync-tax methods).
    pub about: &'static [&'static str],
}

impl Statement {
    /// `IPC cheat sheet, the menu: "…"`.
    pub fn quote(&self) -> String {
        format!("{}, {}: \"{}\"", self.source, self.section, self.says)
    }
}

/// Every statement the lab quotes beside its rows, in the documents' order.
pub const STATEMENTS: &[Statement] = &[
    Statement {
        source: IPC_CHEAT_SHEET,
        section: "the menu",
        says: "Signal | Tiny payload | Notifications only",
        about: &["signal", "signalfd"],
    },
    Statement {
        source: IPC_CHEAT_SHEET,
        section: "the menu",
        says: "eventfd, signalfd | Tiny | Wakeup primitives for event loops",
        about: &["eventfd", "signalfd"],
    },
    Statement {
        source: IPC_CHEAT_SHEET,
        section: "the menu",
        says: "dbus, gRPC, ZeroMQ | Easy | Higher level, message routing",
        about: &["dbus", "grpc-uds", "grpc-tcp"],
    },
    Statement {
        source: QA_THREAD,
        section: "comments on the question",
        says: "A newer method is D-Bus. — Doesn't D-Bus use Unix domain sockets itself? — \
               Indeed, domain and tcp/ip sockets.",
        about: &["dbus"],
    },
    Statement {
        source: IPC_CHEAT_SHEET,
        section: "Synchronization is YOUR problem",
        says: "Semaphores: POSIX sem_init with pshared=1, or named sem_open.",
        about: &["posix-sem", "semaphore"],
    },
    Statement {
        source: SM_AND_MP,
        section: "Advantages of Shared Memory",
        says: "Processes utilizing shared memory can synchronize their activities by \
               manipulating shared variables or employing synchronization primitives like \
               locks and semaphores.",
        about: &["posix-sem", "semaphore"],
    },
];

/// The notes of a table whose rows are named `rows`: each quotes the statements about some of
/// them (consecutive statements about the same rows share a note), then gives `measured(row)`
/// for each of those rows (this run's numbers of that row, in words), and says there is no
/// verdict.
pub(crate) fn statement_notes(rows: &[&str], measured: impl Fn(&str) -> String) -> Vec<String> {
    let mut notes: Vec<(Vec<String>, Vec<&str>)> = Vec::new();
    for statement in STATEMENTS {
        let here: Vec<&str> = statement
            .about
            .iter()
            .copied()
            .filter(|row| rows.contains(row))
            .collect();
        if here.is_empty() {
            continue;
        }
        match notes.last_mut() {
            Some((quotes, rows)) if *rows == here => quotes.push(statement.quote()),
            _ => notes.push((vec![statement.quote()], here)),
        }
    }
    notes
        .into_iter()
        .map(|(quotes, here)| {
            let here: Vec<String> = here
                .into_iter()
                .map(|row| format!("{row}: {}", measured(row)))
                .collect();
            format!(
                "{} (words, no number: no verdict). Here: {}.",
                quotes.join("; "),
                here.join("; ")
            )
        })
        .collect()
}

/// One entry of the inventory ([`inventory`]): a claim and a row that measures it, or a claim
/// no run checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entry {
    /// `claim` measured by lab row `row`.
    Check {
        /// The claim.
        claim: &'static Claim,
        /// The row (`a vs b` for a ratio).
        row: &'static str,
    },
    /// A claim no measurement checks.
    Unchecked(&'static Unchecked),
}

impl Entry {
    /// The document.
    pub fn source(&self) -> &'static str {
        match self {
            Entry::Check { claim, .. } => claim.source,
            Entry::Unchecked(u) => u.source,
        }
    }

    /// The part of the document.
    pub fn section(&self) -> &'static str {
        match self {
            Entry::Check { claim, .. } => claim.section,
            Entry::Unchecked(u) => u.section,
        }
    }

    /// The document's words.
    pub fn quote(&self) -> &'static str {
        match self {
            Entry::Check { claim, .. } => claim.quote,
            Entry::Unchecked(u) => u.quote,
        }
    }
}

/// The whole inventory in the order of a report's `claims`: every claim with each row that
/// measures it (what a run that measures every row checks), then the claims no run checks.
pub fn inventory() -> Vec<Entry> {
    let checks = CLAIMS.iter().flat_map(|claim| {
        claim
            .measured_by
            .iter()
            .map(move |&row| Entry::Check { claim, row })
    });
    checks
        .chain(UNCHECKED.iter().map(Entry::Unchecked))
        .collect()
}

impl Metric {
    /// The experiment (`--only` name) whose rows measure this metric.
    pub fn experiment(self) -> &'static str {
        match self {
            Metric::LatencyMin | Metric::LatencyTypical | Metric::LatencyRatio => "latency",
            Metric::Rate { .. }
            | Metric::Bandwidth { .. }
            | Metric::Cpu { .. }
            | Metric::VsRawRing { .. }
            | Metric::UserCpu { .. }
            | Metric::RateRatio { .. }
            | Metric::CpuPerMsgRatio { .. }
            | Metric::AdvantageGrowth
            | Metric::Copies { .. }
            | Metric::Syscalls { .. }
            | Metric::ModeSwitches { .. }
            | Metric::Switches { .. }
            | Metric::ControlBytes => "throughput",
            Metric::RateTimesLatency { .. } => "throughput and latency",
            Metric::SyncTax | Metric::VsLockFree => "sync-tax",
            Metric::SyncTaxVsQueue => "sync-tax and contention",
            Metric::Contention { .. } | Metric::ContentionRatio { .. } | Metric::GapShrink => {
                "contention"
            }
            Metric::Serialize | Metric::SerializeRatio => "serialization",
            Metric::Million | Metric::MillionRatio => "scale",
            Metric::Kept => "crash",
            Metric::Cost
            | Metric::CostTail
            | Metric::CostRatio
            | Metric::OneKib
            | Metric::OneKibRatio => "costs",
            Metric::SetupSyscalls => "setup",
        }
    }
}

/// Checks every claim against every lab row that measures it: `measured(metric, row,
/// same_cpu)` is the row's measurement of `metric` in the metric's unit, if it was measured
/// (`same_cpu`: with both sides on one CPU, latency claims only). A claim no row measured is
/// listed with the reason, and so is every [`Unchecked`] claim (its reason from `facts`): the
/// result is the whole inventory.
pub fn check(
    measured: impl Fn(Metric, &str, bool) -> Option<f64>,
    facts: &RunFacts,
) -> Vec<ClaimCheck> {
    let mut out = Vec::new();
    for claim in CLAIMS {
        let before = out.len();
        for &row in claim.measured_by {
            let Some(value) = measured(claim.metric, row, false) else {
                continue;
            };
            let same_cpu = match claim.metric {
                Metric::LatencyMin | Metric::LatencyTypical => measured(claim.metric, row, true),
                _ => None,
            };
            out.push(checked(claim, row, value, same_cpu));
        }
        if out.len() == before {
            out.push(not_measured(claim));
        }
    }
    out.extend(UNCHECKED.iter().map(|u| unchecked(u, facts)));
    out
}

/// The fields every entry of `claim` shares.
fn entry(claim: &Claim, measured_by: String) -> ClaimCheck {
    ClaimCheck {
        subject: claim.subject.to_string(),
        source: claim.source.to_string(),
        section: claim.section.to_string(),
        claim: claim.quote.to_string(),
        metric: Some(claim.metric),
        claimed: claim.claimed_text(),
        claimed_low: Some(claim.low).filter(|&low| low > 0.0 || !claim.one_sided()),
        claimed_high: Some(claim.high).filter(|high| high.is_finite()),
        measured_by,
        measured: None,
        measured_text: String::new(),
        ratio: None,
        verdict: None,
        same_cpu: None,
        same_cpu_verdict: None,
        not_checked_because: None,
    }
}

fn checked(claim: &Claim, row: &str, value: f64, same_cpu: Option<f64>) -> ClaimCheck {
    ClaimCheck {
        measured: Some(value),
        measured_text: fmt_value(value, claim.metric.unit()),
        ratio: claim.reference().map(|reference| value / reference),
        verdict: Some(claim.verdict(value)),
        same_cpu,
        same_cpu_verdict: same_cpu.map(|v| claim.verdict(v)),
        ..entry(claim, row.to_string())
    }
}

fn not_measured(claim: &Claim) -> ClaimCheck {
    let rows = claim.measured_by.join(", ");
    ClaimCheck {
        not_checked_because: Some(format!(
            "not measured in this run: the {} experiment gave no number for {rows} (not \
             selected with --only or --mechanisms, or unavailable: see the Unavailable table)",
            claim.metric.experiment()
        )),
        ..entry(claim, rows)
    }
}

fn unchecked(u: &Unchecked, facts: &RunFacts) -> ClaimCheck {
    ClaimCheck {
        subject: u.subject.to_string(),
        source: u.source.to_string(),
        section: u.section.to_string(),
        claim: u.quote.to_string(),
        metric: None,
        claimed: u.claimed.to_string(),
        claimed_low: None,
        claimed_high: None,
        measured_by: String::new(),
        measured: None,
        measured_text: String::new(),
        ratio: None,
        verdict: None,
        same_cpu: None,
        same_cpu_verdict: None,
        not_checked_because: Some(u.reason(facts)),
    }
}

/// The middle (or bound) of the claim on `metric` that lab row `row` measures, if one does
/// (what plots draw beside the measurement).
pub fn claimed(metric: Metric, row: &str) -> Option<f64> {
    CLAIMS
        .iter()
        .find(|c| c.metric == metric && c.measured_by.contains(&row))
        .and_then(Claim::reference)
}

/// The claim, ratio and verdict cells of the table row of lab row `row` on `metric` (dashes
/// when no claim covers it).
pub(crate) fn cells(checks: &[ClaimCheck], metric: Metric, row: &str) -> [String; 3] {
    match checks
        .iter()
        .find(|c| c.metric == Some(metric) && c.measured_by == row && c.verdict.is_some())
    {
        Some(c) => [
            c.claimed.clone(),
            fmt_ratio_cell(c.ratio),
            c.verdict.map_or("-", |v| v.describe(c.metric)).to_string(),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

fn fmt_ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

/// A table of `rows` each beside its claim: the experiment's own `headers` and cells, then the
/// claim's three ([`cells`]) under `source` (the document: `Comparison`, `Communication
/// Costs`), `ratio` and `verdict`. `row` gives a row's own cells and the metric and name its
/// check is filed under. `None` without rows.
pub(crate) fn checked_table<R>(
    title: impl Into<String>,
    headers: &[&'static str],
    source: &'static str,
    rows: &[R],
    checks: &[ClaimCheck],
    row: impl Fn(&R) -> (Vec<String>, Metric, &str),
) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let cells = rows
        .iter()
        .map(|r| {
            let (mut own, metric, name) = row(r);
            own.extend(cells(checks, metric, name));
            own
        })
        .collect();
    let headers = [headers, &[source, "ratio", "verdict"]].concat();
    Some(Table::new(title, headers, cells))
}

/// Every check as one table: source, section, what was compared, claimed and measured values,
/// ratio, verdict, the latency with both sides on one CPU, and the document's words. The cells
/// of a claim are given on its first row only.
pub(crate) fn table(checks: &[ClaimCheck]) -> Option<Table> {
    let checked: Vec<&ClaimCheck> = checks.iter().filter(|c| c.verdict.is_some()).collect();
    if checked.is_empty() {
        return None;
    }
    let mut previous: Option<&ClaimCheck> = None;
    let rows = checked
        .iter()
        .map(|&c| {
            let same = match (c.same_cpu, c.same_cpu_verdict, c.metric) {
                (Some(v), Some(verdict), Some(metric)) => {
                    format!(
                        "{} ({})",
                        fmt_value(v, metric.unit()),
                        verdict.describe(c.metric)
                    )
                }
                _ => String::new(),
            };
            let first = previous.is_none_or(|p| {
                (&p.source, &p.claim, &p.subject, p.metric, &p.claimed)
                    != (&c.source, &c.claim, &c.subject, c.metric, &c.claimed)
            });
            previous = Some(c);
            let once = |text: String| if first { text } else { String::new() };
            vec![
                once(c.source.clone()),
                once(c.section.clone()),
                once(c.metric.map(Metric::label).unwrap_or_default()),
                once(c.claimed.clone()),
                c.measured_by.clone(),
                c.measured_text.clone(),
                fmt_ratio_cell(c.ratio),
                c.verdict.map_or("-", |v| v.describe(c.metric)).to_string(),
                same,
                once(quoted(c)),
            ]
        })
        .collect();
    let mut table = Table::new(
        "Reference claims vs this machine",
        vec![
            "source",
            "section",
            "compared",
            "claimed",
            "measured by",
            "measured",
            "ratio",
            "verdict",
            "same CPU",
            "claim",
        ],
        rows,
    );
    table.text_columns = vec![1, 2, 4, 7, 9];
    table.intro = vec![format!(
        "Agrees = inside the claimed range widened ×/÷ {TOLERANCE} (none for a comparison or \
         \"at least\"/\"at most\"; counts per message: within 10%; copies: exact; a user-space \
         share: within 10%; messages kept after a crash: all); latency claims are one-way \
         (RTT / 2); `a vs b` is row a's number over row b's. Sources: the short names of \
         docs/references.md."
    )];
    table.notes = vec![
        "Same CPU: the latency with both sides on one CPU, and its verdict.".into(),
        "Copies are by construction; system calls are counted by the kernel for the rows whose \
         data calls are read/write and by construction for the others (the throughput table \
         marks those \"(design)\")."
            .into(),
        format!(
            "{} checks of {} claims; the claims this run did not check follow.",
            checked.len(),
            CLAIMS.len()
        ),
    ];
    Some(table)
}

/// The claim's words in quotes, with what the lab made of them when that differs (its
/// subject).
fn quoted(c: &ClaimCheck) -> String {
    if c.claim.is_empty() {
        c.subject.clone()
    } else {
        format!("\"{}\" ({})", c.claim, c.subject)
    }
}

/// The claims no run checks, with the reasons, and a count of those this run did not measure.
pub(crate) fn unchecked_table(checks: &[ClaimCheck]) -> Option<Table> {
    let unchecked: Vec<&ClaimCheck> = checks
        .iter()
        .filter(|c| c.verdict.is_none() && c.metric.is_none())
        .collect();
    let not_here: Vec<&ClaimCheck> = checks.iter().filter(|c| c.not_measured_here()).collect();
    if unchecked.is_empty() && not_here.is_empty() {
        return None;
    }
    let rows = unchecked
        .iter()
        .map(|c| {
            vec![
                c.source.clone(),
                c.section.clone(),
                c.claimed.clone(),
                c.not_checked_because.clone().unwrap_or_default(),
                format!("\"{}\"", c.claim),
            ]
        })
        .collect();
    let mut table = Table::new(
        "Reference claims not checked",
        vec!["source", "section", "claimed", "why", "claim"],
        rows,
    );
    table.text_columns = vec![1, 2, 3, 4];
    if !not_here.is_empty() {
        let experiments: Vec<&str> = not_here
            .iter()
            .filter_map(|c| c.metric.map(Metric::experiment))
            .fold(Vec::new(), |mut seen, e| {
                if !seen.contains(&e) {
                    seen.push(e);
                }
                seen
            });
        table.notes.push(format!(
            "And {} claims this run did not measure (experiments: {}; not selected, or their \
             rows unavailable): report.json lists each with the rows that would.",
            not_here.len(),
            experiments.join(", ")
        ));
    }
    Some(table)
}

/// `1.4 ns`, `850 ns`, `4.5 µs`, `4.50 M msgs/s`, `17.6 GB/s`, `45%`, `0.10 s`, `2 per msg`, `0.97x`.
pub fn fmt_value(value: f64, unit: &str) -> String {
    match unit {
        "ns" if value < 10.0 => format!("{value:.1} ns"),
        "ns" if value < 1000.0 => format!("{value:.0} ns"),
        "ns" if value < 1e6 => format!("{:.1} µs", value / 1e3),
        "ns" => format!("{:.2} ms", value / 1e6),
        "msgs/s" if value >= 1e6 => format!("{:.2} M msgs/s", value / 1e6),
        "msgs/s" if value >= 1e4 => format!("{:.0} k msgs/s", value / 1e3),
        "msgs/s" => format!("{value:.0} msgs/s"),
        "B/s" => format!("{:.2} GB/s", value / 1e9),
        "%" => format!("{value:.0}%"),
        "s" if value < 1.0 => format!("{:.0} ms", value * 1e3),
        "s" => format!("{value:.2} s"),
        "x" if value >= 100.0 => format!("{value:.0}x"),
        "x" if value >= 10.0 => format!("{value:.1}x"),
        "x" => format!("{value:.2}x"),
        "per msg" if value == value.round() => format!("{value:.0} per msg"),
        "per msg" => format!("{value:.2} per msg"),
        "B" | "calls" => format!("{value:.0} {unit}"),
        _ => format!("{value} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_share_uses_more_or_less_cpu_rather_than_being_slow() {
        let cpu = Some(Metric::Cpu { size: 4096 });
        assert_eq!(Verdict::Slower.describe(cpu), "uses more CPU than claimed");
        assert_eq!(Verdict::Faster.describe(cpu), "uses less CPU than claimed");
        assert_eq!(Verdict::Agrees.describe(cpu), "agrees");
        let rate = Some(Metric::Rate { size: 4096 });
        assert_eq!(Verdict::Slower.describe(rate), "slower than claimed");
    }
    use crate::experiments::{contention, costs, crash, scale, setup, sync_tax};
    use crate::mechanisms::{self, data_path, Pattern};

    const KIB4: usize = 4096;

    fn pipe_latency() -> Claim {
        Claim::new(
            "pipe",
            Metric::LatencyTypical,
            2e3,
            5e3,
            COMPARISON,
            &["pipe", "fifo"],
        )
    }

    #[test]
    fn verdicts_respect_the_direction_of_better() {
        let latency = pipe_latency();
        assert_eq!(latency.verdict(3000.0), Verdict::Agrees);
        assert_eq!(latency.verdict(7000.0), Verdict::Agrees, "within ×1.5");
        assert_eq!(latency.verdict(8000.0), Verdict::Slower);
        assert_eq!(latency.verdict(1000.0), Verdict::Faster);
        let rate = Claim::new(
            "pipe",
            Metric::Rate { size: KIB4 },
            450e3,
            450e3,
            COMPARISON,
            &["pipe"],
        );
        assert_eq!(rate.verdict(100e3), Verdict::Slower);
        assert_eq!(rate.verdict(1e6), Verdict::Faster);
        assert_eq!(rate.verdict(400e3), Verdict::Agrees);
    }

    #[test]
    fn comparisons_counts_and_ratios_have_their_own_verdicts() {
        // "At least": no tolerance for a comparison.
        let faster = Claim::new(
            "much faster",
            Metric::LatencyRatio,
            2.0,
            f64::INFINITY,
            QA_THREAD,
            &["uds-stream vs raw-ring"],
        );
        assert!(faster.one_sided());
        assert_eq!(faster.claimed_text(), "≥ 2.00x");
        assert_eq!(faster.verdict(1.9), Verdict::Below);
        assert_eq!(faster.verdict(2.0), Verdict::Agrees);
        assert_eq!(faster.verdict(500.0), Verdict::Agrees);
        assert_eq!(faster.reference(), Some(2.0));
        // "At most" in a unit with a direction.
        let kill = Claim::new(
            "copies kill",
            Metric::Bandwidth { size: 1 << 20 },
            0.0,
            1e9,
            IPC_CHEAT_SHEET,
            &["pipe"],
        );
        assert_eq!(kill.claimed_text(), "≤ 1.00 GB/s");
        assert_eq!(kill.verdict(4e9), Verdict::Faster);
        assert_eq!(kill.verdict(0.9e9), Verdict::Agrees);
        // Counts: fewer is cheaper; a count over a window is allowed 10%, a copy none.
        let calls = Claim::new(
            "two syscalls",
            Metric::Syscalls { size: KIB4 },
            2.0,
            2.0,
            IPC_CHEAT_SHEET,
            &["uds-stream"],
        );
        assert_eq!(calls.verdict(2.1), Verdict::Agrees);
        assert_eq!(calls.verdict(17.0), Verdict::More);
        assert_eq!(calls.verdict(1.0), Verdict::Fewer);
        assert_eq!(fmt_value(2.0, "per msg"), "2 per msg");
        let zero = Claim::new(
            "zero copies",
            Metric::Copies { size: KIB4 },
            0.0,
            0.0,
            IPC_CHEAT_SHEET,
            &["raw-ring"],
        );
        assert_eq!(zero.claimed_text(), "0 per msg");
        assert_eq!(zero.verdict(0.0), Verdict::Agrees);
        assert_eq!(zero.verdict(2.0), Verdict::More);
        assert_eq!(zero.reference(), None, "no ratio against zero");
        let at_least_calls = Claim::new(
            "through the OS",
            Metric::Syscalls { size: KIB4 },
            2.0,
            f64::INFINITY,
            QA_THREAD,
            &["uds-stream"],
        );
        assert_eq!(at_least_calls.verdict(1.9), Verdict::Agrees, "window edges");
        assert_eq!(at_least_calls.verdict(1.0), Verdict::Fewer);
        let words = Claim::new(
            "microseconds",
            Metric::CostTail,
            1e3,
            1e6,
            COMMUNICATION_COSTS,
            &["mutex-contended"],
        )
        .strict();
        assert_eq!(words.verdict(900.0), Verdict::Faster);
    }

    #[test]
    fn every_reference_table_has_claims_with_sources() {
        for metric in [
            Metric::LatencyMin,
            Metric::Rate { size: KIB4 },
            Metric::Rate { size: 1 << 20 },
            Metric::SyncTax,
            Metric::Contention { producers: 8 },
            Metric::Serialize,
            Metric::Million,
        ] {
            assert!(CLAIMS.iter().any(|c| c.metric == metric), "{metric:?}");
        }
        let sources = [
            COMPARISON,
            COMMUNICATION_COSTS,
            IPC_CHEAT_SHEET,
            SM_AND_MP,
            QA_THREAD,
        ];
        for c in CLAIMS {
            assert!(sources.contains(&c.source), "{c:?}");
            assert!(0.0 <= c.low && c.low <= c.high, "{c:?}");
            assert!(c.tolerance >= 1.0, "{c:?}");
            assert!(!c.section.is_empty() && !c.quote.is_empty(), "{c:?}");
        }
        for source in sources {
            assert!(
                inventory().iter().any(|e| e.source() == source),
                "{source} has no claim in the inventory"
            );
        }
    }

    /// Whether a run that measures everything produces a number of `metric` for `row`: the row
    /// exists in the experiment that measures the metric (both rows of `a vs b`), and a cost by
    /// construction is in the data-path table.
    fn produced(metric: Metric, row: &str) -> bool {
        let zero_copy = [
            "raw-offset",
            "shmsock-offset",
            "shmsock-loan",
            "shmsock-loan-read",
        ];
        let streams = |name: &str| {
            zero_copy.contains(&name)
                || mechanisms::all()
                    .iter()
                    .any(|m| m.name() == name && m.supports(Pattern::Stream))
        };
        let pings = |name: &str| {
            mechanisms::all()
                .iter()
                .any(|m| m.name() == name && m.supports(Pattern::PingPong))
        };
        let pair = |row: &str, a: &dyn Fn(&str) -> bool, b: &dyn Fn(&str) -> bool| {
            row.split_once(" vs ").is_some_and(|(x, y)| a(x) && b(y))
        };
        let methods: Vec<&str> = sync_tax::methods().iter().map(|m| m.method).collect();
        let queues: Vec<&str> = contention::queues().iter().map(|q| q.name).collect();
        let costs: Vec<&str> = costs::OPERATIONS.to_vec();
        let one_kib: Vec<&str> = costs::one_kib_mechanisms()
            .iter()
            .map(|m| m.name())
            .collect();
        let path = data_path::of(row);
        match metric {
            Metric::LatencyMin | Metric::LatencyTypical => pings(row),
            Metric::LatencyRatio => pair(row, &pings, &pings),
            Metric::Rate { .. }
            | Metric::Bandwidth { .. }
            | Metric::Cpu { .. }
            | Metric::VsRawRing { .. }
            | Metric::UserCpu { .. }
            | Metric::Switches { .. } => streams(row),
            Metric::Copies { .. } => streams(row) && path.is_some(),
            Metric::Syscalls { .. } | Metric::ModeSwitches { .. } => {
                streams(row) && path.is_some_and(|p| p.rw_family || p.syscalls().is_some())
            }
            Metric::ControlBytes => path.is_some_and(|p| p.control_bytes.is_some()),
            Metric::RateRatio { .. } => pair(row, &streams, &|b| b == "kernel" || streams(b)),
            Metric::CpuPerMsgRatio { .. } | Metric::AdvantageGrowth => {
                pair(row, &streams, &streams)
            }
            Metric::RateTimesLatency { .. } => streams(row) && pings(row),
            Metric::SyncTax | Metric::VsLockFree => methods.contains(&row),
            Metric::SyncTaxVsQueue => {
                pair(row, &|a| methods.contains(&a), &|b| queues.contains(&b))
            }
            Metric::Contention { .. } => queues.contains(&row),
            Metric::ContentionRatio { .. } | Metric::GapShrink => {
                pair(row, &|a| queues.contains(&a), &|b| queues.contains(&b))
            }
            Metric::Serialize => ["postcard", "serde_json"].contains(&row),
            Metric::SerializeRatio => row == "serde_json vs postcard",
            Metric::Million => scale::PATHS.contains(&row),
            Metric::MillionRatio => pair(row, &|a| scale::PATHS.contains(&a), &|b| {
                scale::PATHS.contains(&b)
            }),
            Metric::Kept => crash::writers().iter().any(|(name, _)| *name == row),
            Metric::Cost | Metric::CostTail => costs.contains(&row),
            Metric::CostRatio => pair(row, &|a| costs.contains(&a), &|b| costs.contains(&b)),
            Metric::OneKib => one_kib.contains(&row),
            Metric::OneKibRatio => pair(row, &|a| one_kib.contains(&a), &|b| one_kib.contains(&b)),
            Metric::SetupSyscalls => setup::PATHS.iter().any(|p| p.name() == row),
        }
    }

    #[test]
    fn the_inventory_covers_the_documents_and_every_row_exists() {
        let entries = inventory();
        // What a default run lists: every claim with each of its rows, and the unchecked ones.
        assert!(entries.len() >= 110, "{} entries", entries.len());
        let facts = RunFacts {
            platform: "Linux 6.1 (x86_64)".into(),
            numa: "1 NUMA node".into(),
            runs: "once".into(),
            volume: "1 GiB".into(),
            floor: None,
        };
        let mut reasons = 0;
        for entry in &entries {
            assert!(!entry.source().is_empty(), "{entry:?}");
            assert!(!entry.section().is_empty(), "{entry:?}");
            assert!(!entry.quote().is_empty(), "{entry:?}");
            match entry {
                Entry::Check { claim, row } => assert!(
                    produced(claim.metric, row),
                    "no run measures {:?} of {row} ({})",
                    claim.metric,
                    claim.subject
                ),
                Entry::Unchecked(u) => {
                    assert!(!u.reason(&facts).is_empty(), "{u:?}");
                    reasons += 1;
                }
            }
        }
        assert_eq!(reasons, UNCHECKED.len());
        assert!(reasons >= 10, "{reasons}");
        // A claim is either checked or unchecked, never both.
        for u in UNCHECKED {
            assert!(
                CLAIMS.iter().all(|c| c.quote != u.quote),
                "{} is both checked and not",
                u.quote
            );
        }
    }

    #[test]
    fn check_lists_every_claim_measured_or_with_a_reason() {
        // A run that measured only the pipe's latency.
        let measured = |metric: Metric, row: &str, same_cpu: bool| {
            (metric == Metric::LatencyTypical && row == "pipe" && !same_cpu).then_some(3000.0)
        };
        let facts = RunFacts {
            platform: "Linux (x86_64)".into(),
            numa: "1 NUMA node".into(),
            runs: "once".into(),
            volume: "32 MiB".into(),
            floor: Some("60 ns".into()),
        };
        let checks = check(measured, &facts);
        let verdicts: Vec<_> = checks.iter().filter(|c| c.verdict.is_some()).collect();
        // The Comparison's typical pipe latency, and the flowchart's and the trade-off's "IPC
        // costs microseconds": three claims measured by the pipe's p50.
        assert_eq!(verdicts.len(), 3, "{verdicts:?}");
        assert!(verdicts.iter().all(|c| c.measured_by == "pipe"
            && c.measured == Some(3000.0)
            && c.not_checked_because.is_none()));
        assert_eq!(checks.len(), CLAIMS.len() + UNCHECKED.len());
        for c in &checks {
            assert!(!c.source.is_empty() && !c.claim.is_empty(), "{c:?}");
            assert_eq!(
                c.verdict.is_some(),
                c.not_checked_because.is_none(),
                "{c:?}"
            );
        }
        let not_here = checks.iter().filter(|c| c.not_measured_here()).count();
        assert_eq!(not_here, CLAIMS.len() - 3);
        let fifo = checks
            .iter()
            .find(|c| c.measured_by == "pipe, fifo" && c.metric == Some(Metric::LatencyMin))
            .expect("the pipe's minimum latency, not measured");
        assert!(
            fifo.not_checked_because
                .as_deref()
                .is_some_and(|why| why.contains("latency experiment")),
            "{fifo:?}"
        );
        let immediately = checks
            .iter()
            .find(|c| c.source == IPC_CHEAT_SHEET && c.claimed == "immediately")
            .expect("the unchecked 'immediately'");
        assert!(
            immediately
                .not_checked_because
                .as_deref()
                .is_some_and(|why| why.contains("60 ns one-way")),
            "{immediately:?}"
        );
        // The tables: the checked ones with section and words, the others on their own.
        let text = table(&checks).expect("a table").to_text();
        assert!(text.contains("Latency Analysis"), "{text}");
        assert!(
            text.contains("\"Pipe (small message) | ... | ~2-5 μs\""),
            "{text}"
        );
        let unchecked = unchecked_table(&checks).expect("a table").to_text();
        assert!(unchecked.contains("averaged over 10 runs"), "{unchecked}");
        assert!(
            unchecked.contains(&format!("And {not_here} claims this run did not measure")),
            "{unchecked}"
        );
    }

    #[test]
    fn shares_the_documents_call_whole_have_tight_tolerances() {
        let kept = CLAIMS
            .iter()
            .find(|c| c.metric == Metric::Kept)
            .expect("the persistence claim");
        assert_eq!(kept.source, IPC_CHEAT_SHEET);
        assert_eq!(kept.verdict(100.0), Verdict::Agrees);
        assert_eq!(
            kept.verdict(99.9),
            Verdict::Slower,
            "one lost message is a loss"
        );
        let user = CLAIMS
            .iter()
            .find(|c| c.metric == Metric::UserCpu { size: 64 })
            .expect("the kernel-involvement claim");
        assert_eq!(user.verdict(93.0), Verdict::Agrees);
        assert_eq!(user.verdict(85.0), Verdict::Slower);
        assert_eq!(fmt_value(0.97, "x"), "0.97x");
        let fastest = CLAIMS
            .iter()
            .find(|c| c.measured_by == ["shm-open"] && c.metric == Metric::VsRawRing { size: KIB4 })
            .expect("the 4-calls claim");
        assert_eq!(fastest.source, IPC_CHEAT_SHEET);
    }

    #[test]
    fn statements_are_quoted_only_beside_the_rows_they_are_about() {
        assert!(STATEMENTS
            .iter()
            .all(
                |s| [IPC_CHEAT_SHEET, SM_AND_MP, QA_THREAD].contains(&s.source)
                    && !s.about.is_empty()
                    && !s.says.is_empty()
            ));
        assert!(statement_notes(&["pipe", "tcp"], |_| unreachable!()).is_empty());
        let notes = statement_notes(&["floor", "signalfd", "eventfd"], |row| format!("<{row}>"));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("IPC cheat sheet, the menu: \"Signal | Tiny payload"));
        assert!(
            notes[0].ends_with("Here: signalfd: <signalfd>."),
            "{notes:?}"
        );
        assert!(
            notes[1].ends_with("Here: eventfd: <eventfd>; signalfd: <signalfd>."),
            "{notes:?}"
        );
        // The menu's D-Bus row and the Q&A thread's comments: one note beside dbus only.
        let dbus = statement_notes(&["uds-stream", "dbus"], |row| format!("<{row}>"));
        assert_eq!(dbus.len(), 1, "{dbus:?}");
        assert!(dbus[0].starts_with("IPC cheat sheet, the menu: \"dbus, gRPC, ZeroMQ | Easy"));
        assert!(
            dbus[0].contains("; Q&A thread, comments on the question: \"A newer method is D-Bus.")
        );
        assert!(dbus[0].ends_with("Here: dbus: <dbus>."), "{dbus:?}");
        // Two documents on the same rows: one note, both quotes, the numbers once.
        let semaphores = statement_notes(&["semaphore", "posix-sem"], |row| format!("<{row}>"));
        assert_eq!(semaphores.len(), 1, "{semaphores:?}");
        assert!(semaphores[0].starts_with("IPC cheat sheet, Synchronization is YOUR problem"));
        assert!(semaphores[0].contains("named sem_open.\"; SM and MP article"));
        assert!(
            semaphores[0].ends_with(
                "(words, no number: no verdict). Here: posix-sem: <posix-sem>; semaphore: <semaphore>."
            ),
            "{semaphores:?}"
        );
    }

    #[test]
    fn a_check_of_a_report_from_before_the_inventory_still_loads() {
        let old = r#"{"subject": "Shared memory (cache hit)", "source": "Comparison",
            "metric": {"kind": "latency-min"}, "claimed": "50 ns–100 ns", "claimed_low": 50.0,
            "claimed_high": 100.0, "measured_by": "raw-ring", "measured": 45.0,
            "measured_text": "45 ns", "ratio": 0.64, "verdict": "agrees",
            "same_cpu": 103936.0, "same_cpu_verdict": "slower"}"#;
        let check: ClaimCheck = serde_json::from_str(old).expect("an old check loads");
        assert_eq!(check.verdict, Some(Verdict::Agrees));
        assert_eq!(check.metric, Some(Metric::LatencyMin));
        assert!(check.section.is_empty() && check.claim.is_empty());
        assert_eq!(check.not_checked_because, None);
        // A new entry says which it is: a verdict, or the reason there is none.
        let facts = RunFacts::default();
        let entries = check_none(&facts);
        let json = serde_json::to_value(&entries).expect("json");
        for entry in json.as_array().expect("an array") {
            for key in [
                "source",
                "section",
                "claim",
                "claimed",
                "measured",
                "measured_by",
                "verdict",
            ] {
                assert!(entry.get(key).is_some(), "{key} missing: {entry}");
            }
            assert!(entry["not_checked_because"].is_string(), "{entry}");
        }
    }

    fn check_none(facts: &RunFacts) -> Vec<ClaimCheck> {
        check(|_, _, _| None, facts)
    }

    #[test]
    fn claims_read_like_the_documents() {
        let c = pipe_latency();
        assert_eq!(c.claimed_text(), "2.0 µs–5.0 µs");
        assert_eq!(fmt_value(4.5e6, "msgs/s"), "4.50 M msgs/s");
        assert_eq!(fmt_value(17.6e9, "B/s"), "17.60 GB/s");
    }
}
