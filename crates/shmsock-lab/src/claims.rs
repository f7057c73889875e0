//! The reference documents' numbers, as data, and the verdict of this machine on each.
//!
//! Every number of the reference documents' tables (see docs/references.md) that the lab can measure is one
//! [`Claim`]: what it is about, the claimed range (`low..=high`; a single value has
//! `low == high`), its unit, the document it comes from, and which lab rows measure it. A
//! claim is checked against every lab row that measures it ([`check`]):
//!
//! - **agrees**: the measurement is inside the claimed range widened by [`TOLERANCE`] (×/÷ 1.5)
//!   on each side ([`Metric::tolerance`]: less for a share a document calls whole);
//! - **faster** / **slower** than claimed: outside it, in the direction that matters (a lower
//!   latency is faster; a lower rate is slower).
//!
//! The ratio printed is measurement / claim, against the claim's middle (the geometric mean of
//! its range). Latency claims are one-way ("how long it takes for data to travel from sender to
//! receiver"): the lab compares them with RTT / 2.
//!
//! A few claims are words, not table numbers, put as numbers the lab measures: shared memory
//! without the kernel once set up (the user-space share of the CPU time while streaming),
//! "the fastest IPC" and "approaches shared memory speed" (the rate against `raw-ring`'s), and
//! the persistence of a memory-mapped file (the messages a fresh process reads back after the
//! writer was SIGKILLed).
//!
//! Some rows have no number in any document, only words: the IPC cheat sheet's menu says what
//! a signal, an eventfd and a signalfd are for, and its "synchronization is your problem" (and
//! the SM and MP article) name semaphores among the ways to synchronise shared memory; its
//! menu's row for D-Bus (with gRPC and ZeroMQ) gives "Easy" where the others give a speed, and
//! the Q&A thread's comments say D-Bus runs on Unix domain (and TCP) sockets. Those
//! are [`STATEMENTS`]: quoted, by `statement_notes`, under the table that measures the rows
//! they are about, beside this run's numbers of those rows, and given no verdict (there is
//! nothing to compare).

use serde::{Deserialize, Serialize};

use crate::format::fmt_size;
use crate::table::Table;

/// How far outside the claimed range a measurement may be and still agree (a factor).
pub const TOLERANCE: f64 = 1.5;

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
}

impl Metric {
    /// Whether a larger measurement is better (rates) or worse (times).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::Rate { .. }
                | Metric::Bandwidth { .. }
                | Metric::SyncTax
                | Metric::Contention { .. }
                | Metric::VsRawRing { .. }
                | Metric::UserCpu { .. }
                | Metric::Kept
        )
    }

    /// How far outside the claimed range a measurement of this metric may be and still agree
    /// (a factor): [`TOLERANCE`], except for shares that a document says are whole: the user
    /// space share of a mechanism without kernel involvement (within 10%: the kernel samples
    /// the split at its timer ticks, and the `sched_yield` of a waiting side is kernel time)
    /// and the messages kept after a crash (all of them).
    pub fn tolerance(self) -> f64 {
        match self {
            Metric::UserCpu { .. } => 1.1,
            Metric::Kept => 1.0,
            _ => TOLERANCE,
        }
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
        }
    }

    /// The unit values of this metric are in.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::LatencyMin | Metric::LatencyTypical | Metric::Serialize => "ns",
            Metric::Rate { .. } | Metric::SyncTax | Metric::Contention { .. } => "msgs/s",
            Metric::Bandwidth { .. } => "B/s",
            Metric::Cpu { .. } | Metric::UserCpu { .. } | Metric::Kept => "%",
            Metric::Million => "s",
            Metric::VsRawRing { .. } => "x",
        }
    }
}

/// One number of a reference document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// The row of the reference table, in its words.
    pub subject: &'static str,
    /// What the number is.
    pub metric: Metric,
    /// Lower end of the claimed range (or the value).
    pub low: f64,
    /// Upper end of the claimed range (or the value).
    pub high: f64,
    /// The document, by its short name in docs/references.md: `Comparison`, `Communication
    /// Costs`, `IPC cheat sheet`.
    pub source: &'static str,
    /// The lab rows that measure it (mechanism, sync-tax method, contention queue, ...).
    pub measured_by: &'static [&'static str],
}

impl Claim {
    const fn new(
        subject: &'static str,
        metric: Metric,
        low: f64,
        high: f64,
        source: &'static str,
        measured_by: &'static [&'static str],
    ) -> Self {
        Self {
            subject,
            metric,
            low,
            high,
            source,
            measured_by,
        }
    }

    /// The middle of the claimed range (geometric mean), what ratios are taken against.
    pub fn middle(&self) -> f64 {
        (self.low * self.high).sqrt()
    }

    /// The verdict on `measured`.
    pub fn verdict(&self, measured: f64) -> Verdict {
        let tolerance = self.metric.tolerance();
        if measured < self.low / tolerance {
            if self.metric.higher_is_better() {
                Verdict::Slower
            } else {
                Verdict::Faster
            }
        } else if measured > self.high * tolerance {
            if self.metric.higher_is_better() {
                Verdict::Faster
            } else {
                Verdict::Slower
            }
        } else {
            Verdict::Agrees
        }
    }

    /// The claim as the document states it: `2–5 µs`, `450,000 msgs/s`.
    pub fn claimed_text(&self) -> String {
        let unit = self.metric.unit();
        if self.low == self.high {
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
pub(crate) fn agreement(check: &ClaimCheck) -> (f64, f64) {
    (
        check.claimed_low / TOLERANCE,
        check.claimed_high * TOLERANCE,
    )
}

/// How a measurement compares with a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Within the claimed range, widened by [`TOLERANCE`].
    Agrees,
    /// Better than claimed (lower latency, higher rate).
    Faster,
    /// Worse than claimed.
    Slower,
}

impl Verdict {
    /// `agrees`, `faster than claimed`, `slower than claimed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agrees => "agrees",
            Verdict::Faster => "faster than claimed",
            Verdict::Slower => "slower than claimed",
        }
    }
}

/// A claim checked against one row of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimCheck {
    /// The reference table's row.
    pub subject: String,
    /// The document.
    pub source: String,
    /// What was compared.
    pub metric: Metric,
    /// The claim, as text.
    pub claimed: String,
    /// Claimed range, in the metric's unit.
    pub claimed_low: f64,
    /// Claimed range, in the metric's unit.
    pub claimed_high: f64,
    /// The lab row that measured it.
    pub measured_by: String,
    /// The measurement, in the metric's unit.
    pub measured: f64,
    /// The measurement, as text.
    pub measured_text: String,
    /// measured / the claim's middle.
    pub ratio: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// For latency claims: the same measurement with both sides on one CPU.
    pub same_cpu: Option<f64>,
    /// Verdict on `same_cpu`.
    pub same_cpu_verdict: Option<Verdict>,
}

const SHM_HOT: &[&str] = &["raw-ring", "mmap-file", "shmsock-busy", "shmsock"];
const SHM_STREAM: &[&str] = &["raw-ring", "shmsock-busy", "shmsock", "shmsock-blocking"];
const PIPES: &[&str] = &["pipe", "fifo"];
const UDS: &[&str] = &["uds-stream", "uds-dgram", "uds-seqpacket"];
const MIB: usize = 1 << 20;
const KIB4: usize = 4096;
const COMPARISON: &str = "Comparison";
const COMMUNICATION_COSTS: &str = "Communication Costs";
const IPC_CHEAT_SHEET: &str = "IPC cheat sheet";
const SM_AND_MP: &str = "SM and MP article";
const QA_THREAD: &str = "Q&A thread";
const MAPPED_FILES: &[&str] = &[
    "mmap-file",
    "mmap-file-durable/1",
    "mmap-file-durable/64",
    "mmap-file-durable/4096",
];

/// Every claim the lab checks, in the documents' order.
pub const CLAIMS: &[Claim] = &[
    // Comparison, "Latency Analysis" (one-way).
    Claim::new(
        "Shared memory (cache hit)",
        Metric::LatencyMin,
        50.0,
        100.0,
        COMPARISON,
        SHM_HOT,
    ),
    Claim::new(
        "Shared memory (cache hit)",
        Metric::LatencyTypical,
        100.0,
        500.0,
        COMPARISON,
        SHM_HOT,
    ),
    Claim::new(
        "Shared memory (cache miss)",
        Metric::LatencyMin,
        100.0,
        300.0,
        COMPARISON,
        &["shm-cold"],
    ),
    Claim::new(
        "Shared memory (cache miss)",
        Metric::LatencyTypical,
        300.0,
        1000.0,
        COMPARISON,
        &["shm-cold"],
    ),
    Claim::new(
        "Pipe (small message)",
        Metric::LatencyMin,
        1500.0,
        3000.0,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Pipe (small message)",
        Metric::LatencyTypical,
        2000.0,
        5000.0,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Unix domain socket",
        Metric::LatencyMin,
        2000.0,
        4000.0,
        COMPARISON,
        UDS,
    ),
    Claim::new(
        "Unix domain socket",
        Metric::LatencyTypical,
        3000.0,
        8000.0,
        COMPARISON,
        UDS,
    ),
    Claim::new(
        "POSIX message queue",
        Metric::LatencyMin,
        3000.0,
        6000.0,
        COMPARISON,
        &["posix-mq"],
    ),
    Claim::new(
        "POSIX message queue",
        Metric::LatencyTypical,
        5000.0,
        15000.0,
        COMPARISON,
        &["posix-mq"],
    ),
    Claim::new(
        "TCP socket (loopback)",
        Metric::LatencyMin,
        8000.0,
        15000.0,
        COMPARISON,
        &["tcp"],
    ),
    Claim::new(
        "TCP socket (loopback)",
        Metric::LatencyTypical,
        15000.0,
        30000.0,
        COMPARISON,
        &["tcp"],
    ),
    // Comparison, throughput, 4 KB × 262,144.
    Claim::new(
        "Shared memory (SPSC), 4 KB",
        Metric::Rate { size: KIB4 },
        4.5e6,
        4.5e6,
        COMPARISON,
        SHM_STREAM,
    ),
    Claim::new(
        "Shared memory (SPSC), 4 KB",
        Metric::Bandwidth { size: KIB4 },
        17.6e9,
        17.6e9,
        COMPARISON,
        SHM_STREAM,
    ),
    Claim::new(
        "Shared memory (SPSC), 4 KB",
        Metric::Cpu { size: KIB4 },
        18.0,
        18.0,
        COMPARISON,
        SHM_STREAM,
    ),
    Claim::new(
        "Pipe, 4 KB",
        Metric::Rate { size: KIB4 },
        450e3,
        450e3,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Pipe, 4 KB",
        Metric::Bandwidth { size: KIB4 },
        1.7e9,
        1.7e9,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Pipe, 4 KB",
        Metric::Cpu { size: KIB4 },
        45.0,
        45.0,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Unix domain socket, 4 KB",
        Metric::Rate { size: KIB4 },
        380e3,
        380e3,
        COMPARISON,
        UDS,
    ),
    Claim::new(
        "Unix domain socket, 4 KB",
        Metric::Bandwidth { size: KIB4 },
        1.5e9,
        1.5e9,
        COMPARISON,
        UDS,
    ),
    Claim::new(
        "Unix domain socket, 4 KB",
        Metric::Cpu { size: KIB4 },
        52.0,
        52.0,
        COMPARISON,
        UDS,
    ),
    Claim::new(
        "POSIX message queue, 4 KB",
        Metric::Rate { size: KIB4 },
        180e3,
        180e3,
        COMPARISON,
        &["posix-mq"],
    ),
    Claim::new(
        "POSIX message queue, 4 KB",
        Metric::Bandwidth { size: KIB4 },
        0.7e9,
        0.7e9,
        COMPARISON,
        &["posix-mq"],
    ),
    Claim::new(
        "POSIX message queue, 4 KB",
        Metric::Cpu { size: KIB4 },
        68.0,
        68.0,
        COMPARISON,
        &["posix-mq"],
    ),
    // Comparison, throughput, 1 MB × 1,024.
    Claim::new(
        "Shared memory (mmap, pointer exchange), 1 MB",
        Metric::Rate { size: MIB },
        50e3,
        50e3,
        COMPARISON,
        &["raw-offset", "shmsock-offset"],
    ),
    Claim::new(
        "Shared memory (mmap, pointer exchange), 1 MB",
        Metric::Bandwidth { size: MIB },
        50e9,
        50e9,
        COMPARISON,
        &["raw-offset", "shmsock-offset"],
    ),
    Claim::new(
        "Shared memory (mmap, pointer exchange), 1 MB",
        Metric::Cpu { size: MIB },
        8.0,
        8.0,
        COMPARISON,
        &["raw-offset", "shmsock-offset"],
    ),
    Claim::new(
        "Pipe, 1 MB",
        Metric::Rate { size: MIB },
        2800.0,
        2800.0,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Pipe, 1 MB",
        Metric::Bandwidth { size: MIB },
        2.8e9,
        2.8e9,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Pipe, 1 MB",
        Metric::Cpu { size: MIB },
        72.0,
        72.0,
        COMPARISON,
        PIPES,
    ),
    Claim::new(
        "Unix domain socket, 1 MB",
        Metric::Rate { size: MIB },
        2400.0,
        2400.0,
        COMPARISON,
        &["uds-stream"],
    ),
    Claim::new(
        "Unix domain socket, 1 MB",
        Metric::Bandwidth { size: MIB },
        2.4e9,
        2.4e9,
        COMPARISON,
        &["uds-stream"],
    ),
    Claim::new(
        "Unix domain socket, 1 MB",
        Metric::Cpu { size: MIB },
        75.0,
        75.0,
        COMPARISON,
        &["uds-stream"],
    ),
    // Comparison, "The Synchronization Tax" (4 KB, SPSC).
    Claim::new(
        "Lock-free (atomic flag)",
        Metric::SyncTax,
        4.5e6,
        4.5e6,
        COMPARISON,
        &["lock-free"],
    ),
    Claim::new(
        "Spinlock (low contention)",
        Metric::SyncTax,
        3.8e6,
        3.8e6,
        COMPARISON,
        &["spinlock"],
    ),
    Claim::new(
        "Mutex (low contention)",
        Metric::SyncTax,
        2.2e6,
        2.2e6,
        COMPARISON,
        &["mutex-low"],
    ),
    Claim::new(
        "Mutex (high contention)",
        Metric::SyncTax,
        450e3,
        450e3,
        COMPARISON,
        &["mutex-high"],
    ),
    // Comparison, contention.
    Claim::new(
        "Lock-free queue, 1 producer",
        Metric::Contention { producers: 1 },
        4.5e6,
        4.5e6,
        COMPARISON,
        &["lock-free"],
    ),
    Claim::new(
        "Lock-free queue, 2 producers",
        Metric::Contention { producers: 2 },
        3.8e6,
        3.8e6,
        COMPARISON,
        &["lock-free"],
    ),
    Claim::new(
        "Lock-free queue, 4 producers",
        Metric::Contention { producers: 4 },
        2.2e6,
        2.2e6,
        COMPARISON,
        &["lock-free"],
    ),
    Claim::new(
        "Lock-free queue, 8 producers",
        Metric::Contention { producers: 8 },
        1.4e6,
        1.4e6,
        COMPARISON,
        &["lock-free"],
    ),
    Claim::new(
        "Mutex queue, 1 producer",
        Metric::Contention { producers: 1 },
        2.2e6,
        2.2e6,
        COMPARISON,
        &["mutex"],
    ),
    Claim::new(
        "Mutex queue, 2 producers",
        Metric::Contention { producers: 2 },
        1.1e6,
        1.1e6,
        COMPARISON,
        &["mutex"],
    ),
    Claim::new(
        "Mutex queue, 4 producers",
        Metric::Contention { producers: 4 },
        380e3,
        380e3,
        COMPARISON,
        &["mutex"],
    ),
    Claim::new(
        "Mutex queue, 8 producers",
        Metric::Contention { producers: 8 },
        120e3,
        120e3,
        COMPARISON,
        &["mutex"],
    ),
    Claim::new(
        "Message queue, 1 producer",
        Metric::Contention { producers: 1 },
        450e3,
        450e3,
        COMPARISON,
        &["posix-mq"],
    ),
    Claim::new(
        "Message queue, 2 producers",
        Metric::Contention { producers: 2 },
        420e3,
        420e3,
        COMPARISON,
        &["posix-mq"],
    ),
    Claim::new(
        "Message queue, 4 producers",
        Metric::Contention { producers: 4 },
        400e3,
        400e3,
        COMPARISON,
        &["posix-mq"],
    ),
    Claim::new(
        "Message queue, 8 producers",
        Metric::Contention { producers: 8 },
        380e3,
        380e3,
        COMPARISON,
        &["posix-mq"],
    ),
    // Communication Costs.
    Claim::new(
        "Shared memory access (~100 ns)",
        Metric::LatencyTypical,
        100.0,
        100.0,
        COMMUNICATION_COSTS,
        &["floor"],
    ),
    Claim::new(
        "Socket-based IPC (2–10 µs)",
        Metric::LatencyTypical,
        2000.0,
        10000.0,
        COMMUNICATION_COSTS,
        &["uds-stream", "tcp"],
    ),
    Claim::new(
        "Serializing 1 KB, binary",
        Metric::Serialize,
        1000.0,
        5000.0,
        COMMUNICATION_COSTS,
        &["postcard"],
    ),
    Claim::new(
        "Serializing 1 KB, JSON",
        Metric::Serialize,
        10000.0,
        50000.0,
        COMMUNICATION_COSTS,
        &["serde_json"],
    ),
    // shmsock is held to the threads' number: moving messages between processes at the speed
    // of threads is what it is for.
    Claim::new(
        "1,000,000 messages, threads + lock-free queue",
        Metric::Million,
        0.1,
        0.1,
        COMMUNICATION_COSTS,
        &["threads", "shmsock"],
    ),
    Claim::new(
        "1,000,000 messages, processes + sockets",
        Metric::Million,
        10.0,
        10.0,
        COMMUNICATION_COSTS,
        &["uds-stream"],
    ),
    // Beyond the tables: what the documents say of named shared memory and mapped files, in
    // words the lab can measure.
    // Comparison, the shared-memory architecture: "Kernel involved only for: setup/teardown,
    // synchronization primitives" (the rings' sides spin: no synchronisation primitive).
    Claim::new(
        "Shared memory: kernel involved only for setup/teardown",
        Metric::UserCpu { size: 64 },
        100.0,
        100.0,
        COMPARISON,
        &["raw-ring", "shm-open", "mmap-file"],
    ),
    // Communication Costs: memory-mapped files as a middle ground, where "communication
    // approaches shared memory speed after the initial mapping setup".
    Claim::new(
        "Memory-mapped files approach shared memory speed",
        Metric::VsRawRing { size: KIB4 },
        1.0,
        1.0,
        COMMUNICATION_COSTS,
        &["mmap-file"],
    ),
    // IPC cheat sheet, "Shared memory in 4 calls" (shm_open, ftruncate, mmap) and its
    // interview answer: "Shared memory via shm_open + mmap is the fastest IPC".
    Claim::new(
        "Shared memory in 4 calls (shm_open + ftruncate + mmap): the fastest IPC",
        Metric::VsRawRing { size: KIB4 },
        1.0,
        1.0,
        IPC_CHEAT_SHEET,
        &["shm-open"],
    ),
    // IPC cheat sheet, the menu: "Memory-mapped file | Fast | Producer/consumer with
    // persistence".
    Claim::new(
        "Memory-mapped file: producer/consumer with persistence",
        Metric::Kept,
        100.0,
        100.0,
        IPC_CHEAT_SHEET,
        MAPPED_FILES,
    ),
];

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

/// Checks every claim against every lab row that measures it: `measured(metric, row,
/// same_cpu)` is the row's measurement of `metric` in the metric's unit, if it was measured
/// (`same_cpu`: with both sides on one CPU, latency claims only).
pub fn check(measured: impl Fn(Metric, &str, bool) -> Option<f64>) -> Vec<ClaimCheck> {
    let mut out = Vec::new();
    for claim in CLAIMS {
        for &row in claim.measured_by {
            let Some(value) = measured(claim.metric, row, false) else {
                continue;
            };
            let same_cpu = match claim.metric {
                Metric::LatencyMin | Metric::LatencyTypical => measured(claim.metric, row, true),
                _ => None,
            };
            out.push(ClaimCheck {
                subject: claim.subject.to_string(),
                source: claim.source.to_string(),
                metric: claim.metric,
                claimed: claim.claimed_text(),
                claimed_low: claim.low,
                claimed_high: claim.high,
                measured_by: row.to_string(),
                measured: value,
                measured_text: fmt_value(value, claim.metric.unit()),
                ratio: value / claim.middle(),
                verdict: claim.verdict(value),
                same_cpu,
                same_cpu_verdict: same_cpu.map(|v| claim.verdict(v)),
            });
        }
    }
    out
}

/// The middle of the claim on `metric` that lab row `row` measures, if one does (what plots
/// draw beside the measurement).
pub fn claimed(metric: Metric, row: &str) -> Option<f64> {
    CLAIMS
        .iter()
        .find(|c| c.metric == metric && c.measured_by.contains(&row))
        .map(Claim::middle)
}

/// The claim, ratio and verdict cells of the table row of lab row `row` on `metric` (dashes
/// when no claim covers it).
pub(crate) fn cells(checks: &[ClaimCheck], metric: Metric, row: &str) -> [String; 3] {
    match checks
        .iter()
        .find(|c| c.metric == metric && c.measured_by == row)
    {
        Some(c) => [
            c.claimed.clone(),
            format!("{:.2}x", c.ratio),
            c.verdict.as_str().to_string(),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
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

/// Every check as one table: source, claim, what was compared, claimed and measured values,
/// ratio, verdict, and the latency with both sides on one CPU.
pub(crate) fn table(checks: &[ClaimCheck]) -> Option<Table> {
    if checks.is_empty() {
        return None;
    }
    let rows = checks
        .iter()
        .map(|c| {
            let same = match (c.same_cpu, c.same_cpu_verdict) {
                (Some(v), Some(verdict)) => {
                    format!("{} ({})", fmt_value(v, c.metric.unit()), verdict.as_str())
                }
                _ => String::new(),
            };
            vec![
                c.source.clone(),
                c.subject.clone(),
                c.metric.label(),
                c.claimed.clone(),
                c.measured_by.clone(),
                c.measured_text.clone(),
                format!("{:.2}x", c.ratio),
                c.verdict.as_str().to_string(),
                same,
            ]
        })
        .collect();
    let mut table = Table::new(
        "Reference claims vs this machine",
        vec![
            "source",
            "claim",
            "metric",
            "claimed",
            "measured by",
            "measured",
            "ratio",
            "verdict",
            "same CPU",
        ],
        rows,
    );
    table.text_columns = vec![1, 2, 4, 7];
    table.intro = vec![format!(
        "Agrees = inside the claimed range widened ×/÷ {TOLERANCE} (a user-space share: within \
         10%; messages kept after a crash: all); latency claims are one-way (RTT / 2). Sources: \
         the short names of docs/references.md."
    )];
    table.notes = vec!["Same CPU: the latency with both sides on one CPU, and its verdict.".into()];
    Some(table)
}

/// `850 ns`, `4.5 µs`, `4.50 M msgs/s`, `17.6 GB/s`, `45%`, `0.10 s`.
pub fn fmt_value(value: f64, unit: &str) -> String {
    match unit {
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
        "x" => format!("{value:.2}x"),
        _ => format!("{value} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_latency() -> Claim {
        Claim::new("pipe", Metric::LatencyTypical, 2e3, 5e3, COMPARISON, PIPES)
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
            PIPES,
        );
        assert_eq!(rate.verdict(100e3), Verdict::Slower);
        assert_eq!(rate.verdict(1e6), Verdict::Faster);
        assert_eq!(rate.verdict(400e3), Verdict::Agrees);
    }

    #[test]
    fn every_reference_table_has_claims_with_sources() {
        for metric in [
            Metric::LatencyMin,
            Metric::Rate { size: KIB4 },
            Metric::Rate { size: MIB },
            Metric::SyncTax,
            Metric::Contention { producers: 8 },
            Metric::Serialize,
            Metric::Million,
        ] {
            assert!(CLAIMS.iter().any(|c| c.metric == metric), "{metric:?}");
        }
        assert!(CLAIMS
            .iter()
            .all(
                |c| [COMPARISON, COMMUNICATION_COSTS, IPC_CHEAT_SHEET].contains(&c.source)
                    && c.low <= c.high
                    && c.low > 0.0
            ));
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
            .find(|c| c.measured_by == ["shm-open"])
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
    fn claims_read_like_the_documents() {
        let c = pipe_latency();
        assert_eq!(c.claimed_text(), "2.0 µs–5.0 µs");
        assert_eq!(fmt_value(4.5e6, "msgs/s"), "4.50 M msgs/s");
        assert_eq!(fmt_value(17.6e9, "B/s"), "17.60 GB/s");
    }
}
