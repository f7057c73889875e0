//! `shmsock advise`: the Comparison's decision flowchart, answered with this machine's numbers.
//!
//! ```text
//! different machines (now or later)? --yes--> message passing over the network   tcp:// (+ bridge)
//!   | no
//! more than 100 KiB per transfer? --yes--> more than 10,000 transfers/s?
//!   | no                                      | yes: shared memory, zero-copy      shm:// + loans
//!   |                                         | no:  hybrid (control + bulk)       shm:// + loans
//! latency budget under 1 µs? --yes--> shared memory, busy-polling                   shm:// BusyPoll
//!   | no: message passing (the default)                                             unix:/// or shm://
//! (any shared-memory answer) untrusted peer? --yes--> copy every message            shm:// Conn, no loans
//! ```
//!
//! [`decide`] walks the chart and returns the [`Leaf`] and the path it took; [`advise`] turns
//! that into an [`Advice`] with the concrete shmsock endpoint and the numbers of a lab
//! [`Report`] that justify it ([`evidence`]). [`interview`] asks the same questions on a
//! terminal. Answers the user did not give count as "no" and the path says so.

mod evidence;
mod interview;
mod parse;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::LabError;
use crate::experiments::Budgets;
use crate::options::{LabOptions, Mode};
use crate::report::Report;

pub use interview::interview;
pub use parse::{parse_bytes, parse_duration_ns, parse_rate};

/// "Is data size > 100 KB per transfer?" (Comparison), in bytes.
pub const LARGE_TRANSFER_BYTES: u64 = 100 * 1024;
/// "Is transfer frequency > 10,000/sec?" (Comparison).
pub const FREQUENT_PER_S: f64 = 10_000.0;
/// "Is latency critical (< 1 microsecond)?" (Comparison), in ns.
pub const LATENCY_CRITICAL_NS: u64 = 1_000;

/// What the user needs: the flowchart's questions, answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Needs {
    /// The processes run (or will run) on different machines.
    pub remote: bool,
    /// Bytes per transfer, if known.
    pub size_bytes: Option<u64>,
    /// Transfers per second, if known.
    pub rate_per_s: Option<f64>,
    /// Latency budget per message in ns, if there is one.
    pub latency_budget_ns: Option<u64>,
    /// The peer is not trusted (another user, a sandbox, code you do not control).
    pub untrusted: bool,
}

/// Where the flowchart ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leaf {
    /// Different machines: message passing over network sockets.
    Network,
    /// Large and frequent transfers: shared memory without copies.
    SharedMemoryBulk,
    /// Large, infrequent transfers: messages for control, shared memory for the bulk.
    Hybrid,
    /// Small messages with a sub-microsecond budget: shared memory, busy-polling.
    SharedMemoryLowLatency,
    /// Small messages, no hard latency budget: message passing, the default.
    MessagePassing,
    /// A shared-memory answer, but the peer is untrusted: copy every message, share no buffer.
    UntrustedCopying,
}

impl Leaf {
    /// Every leaf, in the chart's order.
    pub const ALL: [Leaf; 6] = [
        Leaf::Network,
        Leaf::SharedMemoryBulk,
        Leaf::Hybrid,
        Leaf::SharedMemoryLowLatency,
        Leaf::MessagePassing,
        Leaf::UntrustedCopying,
    ];

    /// The mechanism, in the flowchart's words.
    pub fn mechanism(self) -> &'static str {
        match self {
            Leaf::Network => "message passing over the network (sockets)",
            Leaf::SharedMemoryBulk => "shared memory, zero-copy (with careful synchronisation)",
            Leaf::Hybrid => "hybrid: message passing for control, shared memory for bulk data",
            Leaf::SharedMemoryLowLatency => "shared memory, busy-polling",
            Leaf::MessagePassing => "message passing (the default)",
            Leaf::UntrustedCopying => "message passing with copies: no buffer shared with the peer",
        }
    }

    /// The shmsock endpoint and pattern to use.
    pub fn endpoint(self) -> &'static str {
        match self {
            Leaf::Network => {
                "tcp://HOST:PORT, ZeroMQ's wire protocol (ZMTP 3.1): a Conn (PAIR) for one \
                 peer, Publisher/Subscriber (PUB/SUB with topic prefixes) for many; pyzmq and \
                 libzmq sockets are peers. A port other machines reach needs CURVE (RFC 26 \
                 CurveZMQ: every frame encrypted and authenticated; Options::curve_secret, \
                 curve_server, curve_allow): `shmsock keygen server` and a key per client, \
                 then `shmsock bridge shm://NAME tcp://0.0.0.0:PORT --dest-curve-secret \
                 server.key_secret --dest-curve-allow clients/` republishes a shm:// topic to \
                 the remote ones, which subscribe with `shmsock sub tcp://HOST:PORT \
                 --curve-server server.key --curve-secret alice.key_secret`. Processes that \
                 share a machine keep shm://NAME"
            }
            Leaf::SharedMemoryBulk => {
                "shm://NAME Conn + loans: the sender connects with Options::loan_pool(slots, \
                 slot_bytes), fills a slot in place with conn.loan(len) and sends 24 bytes; \
                 the receiver's recv_sample() reads the slot where it lies (zero-copy; for a \
                 Conn, not yet for pub/sub)"
            }
            Leaf::Hybrid => {
                "shm://NAME Conn: send/recv for the control messages and loans for the bulk \
                 on the same connection (Options::loan_pool, conn.loan, recv_sample), or \
                 plain copies while the rate stays low"
            }
            Leaf::SharedMemoryLowLatency => {
                "shm://NAME Conn with Options::new().wait_strategy(WaitStrategy::BusyPoll) on \
                 both sides (each receiver keeps one CPU busy)"
            }
            Leaf::MessagePassing => {
                "unix:///path (ZMTP over a Unix stream socket, ZeroMQ's ipc://, so pyzmq is \
                 a peer) or shm://NAME with the default Adaptive wait: the same Conn send/recv \
                 API, and Publisher/Subscriber for one-to-many"
            }
            Leaf::UntrustedCopying => {
                "shm://NAME Conn without loans (the peer's segment is sealed and mapped read-only, \
                 every value read from it is validated, SO_PEERCRED is checked; \
                 Options::allow_uid for another user), or unix:///path (ZMTP over a Unix \
                 socket, the peer's uid checked the same way) when the peer is in another \
                 trust domain"
            }
        }
    }

    /// Why, in a sentence.
    pub fn reason(self) -> &'static str {
        match self {
            Leaf::Network => {
                "shared memory stops at the machine; sockets scale out, and shmsock keeps the \
                 API the same when some peers later share a machine (shm://), with a bridge \
                 between the two"
            }
            Leaf::SharedMemoryBulk => {
                "at this size and rate copying costs whole CPUs and memory bandwidth; passing an \
                 offset into shared memory costs the same whatever the size"
            }
            Leaf::Hybrid => {
                "large transfers are worth not copying, but at this rate a copy is affordable: \
                 keep coordination explicit as messages and share only the bulk"
            }
            Leaf::SharedMemoryLowLatency => {
                "every kernel mechanism pays a system call and a wake-up (microseconds); only \
                 shared memory polled by a spinning reader stays near the hardware floor"
            }
            Leaf::MessagePassing => {
                "small messages without a sub-microsecond budget are fast enough through a \
                 socket; message passing is simpler to get right, debug and scale"
            }
            Leaf::UntrustedCopying => {
                "a peer that shares a buffer with you can change it while you read it; copying \
                 every message (and validating it) keeps its mistakes or malice out of your memory"
            }
        }
    }

    /// Whether the leaf puts data in shared memory (the untrusted question follows it).
    fn shares_memory(self) -> bool {
        matches!(
            self,
            Leaf::SharedMemoryBulk | Leaf::Hybrid | Leaf::SharedMemoryLowLatency
        )
    }
}

/// One question of the chart and the answer taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The question.
    pub question: &'static str,
    /// The answer, with the value it came from.
    pub answer: String,
}

/// The advice: the leaf, what to use, the path through the chart, and the numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// What was asked.
    pub needs: Needs,
    /// Where the chart ended.
    pub leaf: Leaf,
    /// The mechanism, in the chart's words.
    pub mechanism: &'static str,
    /// The shmsock endpoint and pattern.
    pub endpoint: &'static str,
    /// Why.
    pub reason: &'static str,
    /// The questions and answers that led here.
    pub path: Vec<Step>,
    /// This machine's numbers that back the answer.
    pub evidence: Vec<String>,
    /// Where the numbers come from, and caveats.
    pub notes: Vec<String>,
}

/// Records the step `question` about a number the needs may not give: `given` is whether it
/// passes the threshold and how it reads; without it the answer is "no (`missing`)". Returns
/// the answer.
fn threshold(
    path: &mut Vec<Step>,
    question: &'static str,
    given: Option<(bool, String)>,
    missing: &str,
) -> bool {
    let (yes, answer) = match given {
        Some((yes, value)) => (yes, format!("{} ({value})", yes_no(yes))),
        None => (false, format!("no ({missing})")),
    };
    path.push(Step { question, answer });
    yes
}

/// `yes` or `no`.
fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Walks the flowchart.
pub fn decide(needs: &Needs) -> (Leaf, Vec<Step>) {
    let mut path = vec![Step {
        question: "Different machines, now or later?",
        answer: yes_no(needs.remote).to_string(),
    }];
    if needs.remote {
        return (Leaf::Network, path);
    }
    let large = threshold(
        &mut path,
        "More than 100 KiB per transfer?",
        needs
            .size_bytes
            .map(|s| (s > LARGE_TRANSFER_BYTES, format!("{s} bytes"))),
        "size not given",
    );
    let leaf = if large {
        let frequent = threshold(
            &mut path,
            "More than 10,000 transfers per second?",
            needs
                .rate_per_s
                .map(|r| (r > FREQUENT_PER_S, format!("{r:.0}/s"))),
            "rate not given",
        );
        if frequent {
            Leaf::SharedMemoryBulk
        } else {
            Leaf::Hybrid
        }
    } else {
        let critical = threshold(
            &mut path,
            "Latency budget under 1 µs?",
            needs
                .latency_budget_ns
                .map(|ns| (ns < LATENCY_CRITICAL_NS, format!("{ns} ns"))),
            "no budget given",
        );
        if critical {
            Leaf::SharedMemoryLowLatency
        } else {
            Leaf::MessagePassing
        }
    };
    if !leaf.shares_memory() {
        if needs.untrusted {
            path.push(Step {
                question: "Untrusted peer?",
                answer: "yes: message passing already keeps its memory apart from yours".into(),
            });
        }
        return (leaf, path);
    }
    path.push(Step {
        question: "Untrusted peer?",
        answer: yes_no(needs.untrusted).to_string(),
    });
    if needs.untrusted {
        (Leaf::UntrustedCopying, path)
    } else {
        (leaf, path)
    }
}

/// The advice for `needs`, justified with `report` (`None`: no numbers, the notes say so).
pub fn advise(needs: &Needs, report: Option<&Report>) -> Advice {
    let (leaf, path) = decide(needs);
    let mut notes = Vec::new();
    let evidence = match report {
        Some(report) => {
            notes.push(format!(
                "numbers: {} lab report, {} ({}; {})",
                report.mode.as_str(),
                report.host.cpu_model,
                report.host.kernel,
                report.host.pinning_text
            ));
            evidence::for_leaf(leaf, needs, report)
        }
        None => {
            notes.push(
                "no lab report: run `shmsock lab` (or drop --no-measure) for this machine's \
                 numbers"
                    .into(),
            );
            Vec::new()
        }
    };
    Advice {
        needs: needs.clone(),
        leaf,
        mechanism: leaf.mechanism(),
        endpoint: leaf.endpoint(),
        reason: leaf.reason(),
        path,
        evidence,
        notes,
    }
}

/// Where `shmsock lab` writes its report when run from the same directory.
pub const REPORT_DEFAULT: &str = "lab-report/report.json";

/// The report the advice rests on, and a note saying where it came from.
///
/// `path` (else [`REPORT_DEFAULT`]) is read if it exists; a `path` that was given but cannot
/// be read is an error. Without a report, and when `measure` is set, a quick latency and
/// throughput run of the mechanisms the answer rests on ([`mechanisms_to_measure`]) is made
/// (a few seconds; progress on stderr); it is not written anywhere.
pub fn load_or_measure(
    needs: &Needs,
    path: Option<&Path>,
    measure: bool,
) -> Result<(Option<Report>, String), LabError> {
    let file = path.map_or_else(|| PathBuf::from(REPORT_DEFAULT), Path::to_path_buf);
    let read_err = |source| LabError::Json {
        path: file.clone(),
        source,
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let report: Report =
                serde_json::from_str(&text).map_err(|e| read_err(std::io::Error::other(e)))?;
            let note = format!("numbers from {}", file.display());
            Ok((Some(report), note))
        }
        Err(err) if path.is_some() => Err(read_err(err)),
        Err(_) if !measure => Ok((
            None,
            format!("no report at {} and --no-measure given", file.display()),
        )),
        Err(_) => {
            let (mechanisms, sizes) = mechanisms_to_measure(needs);
            let opts = LabOptions {
                mode: Mode::Quick,
                mechanisms: Some(mechanisms),
                only: Some(vec!["latency".into(), "throughput".into()]),
                sizes: Some(sizes),
                ..Default::default()
            };
            let report = crate::run_with(&opts, Budgets::of(Mode::Quick))?;
            let note = format!(
                "no report at {}: measured the relevant mechanisms just now (quick mode, \
                 indicative); run `shmsock lab` for the full report",
                file.display()
            );
            Ok((Some(report), note))
        }
    }
}

/// The mechanisms whose numbers back the answer for `needs`, and the throughput sizes: what a
/// quick measurement must run when there is no report.
pub fn mechanisms_to_measure(needs: &Needs) -> (Vec<String>, Vec<usize>) {
    let mut names = vec!["shmsock-busy", "shmsock", "uds-stream"];
    if needs.remote {
        names.push("tcp");
    }
    let mut sizes = vec![64, 4096];
    if needs.size_bytes.is_some_and(|s| s > LARGE_TRANSFER_BYTES) {
        names.push("raw-ring");
        sizes.push(1 << 20);
    }
    (names.into_iter().map(String::from).collect(), sizes)
}

impl Advice {
    /// The advice as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

impl std::fmt::Display for Advice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Use: {}", self.mechanism)?;
        writeln!(f, "  endpoint: {}", self.endpoint)?;
        writeln!(f, "  why: {}", self.reason)?;
        writeln!(f)?;
        writeln!(f, "Path through the Comparison's flowchart:")?;
        for step in &self.path {
            writeln!(f, "  {} {}", step.question, step.answer)?;
        }
        writeln!(f, "  -> {}", self.mechanism)?;
        if !self.evidence.is_empty() {
            writeln!(f)?;
            writeln!(f, "This machine's numbers:")?;
            for line in &self.evidence {
                writeln!(f, "  - {line}")?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f)?;
            for note in &self.notes {
                writeln!(f, "note: {note}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
