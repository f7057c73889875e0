//! `bugs`: the shared-memory bugs of the reference documents, made to happen, next to shmsock
//! doing the same job.
//!
//! The documents warn about bugs that shmsock's design rules out (no lock in shared memory,
//! every shared word with one writer, lengths checked, offsets instead of pointers); the
//! library's tests prove it does. This experiment shows each bug *happening*: a deliberately
//! naive implementation (module `naive`, wrong on purpose and kept small) runs in forked
//! processes, and the lab counts what went wrong. Then shmsock does the same job, with the same
//! counts and sizes, over `shm://`:
//!
//! 1. **Mutex without `PTHREAD_PROCESS_SHARED`** (Comparison, "The Shared Memory Bug
//!    Taxonomy"). `pthread_mutex_init(&m, NULL)` in a shared mapping; two processes on two CPUs
//!    each add 1 to a shared counter [`Plan::increments`] times under it, in [`MUTEX_RUNS`]
//!    runs. glibc (2.34 and later) takes a mutex that is not process-shared with a plain store
//!    when its process has one thread, so both processes can hold it at once: increments are
//!    lost, and glibc's assertion that a mutex it just took has no owner aborts a worker
//!    (SIGABRT). A worker that finds it held sleeps on a futex private to its own process,
//!    which the other process never wakes: a hang, killed after [`Plan::hang_bound`]. Which
//!    comes first varies from run to run. The same loop with `PTHREAD_PROCESS_SHARED` is run
//!    once as the control. shmsock: two writer processes send the same number of
//!    increments as messages to an `Inbox`, which adds them up.
//! 2. **`strcpy` overflowing `data[]`** (same section). The Comparison's `shared_t` (a lock word,
//!    a version, `data[64]`, a checksum) × [`RECORDS`] in shared memory; a writer process
//!    updates every record with its `update_data`, one update in [`OVERLONG_EVERY`] with a
//!    [`OVERLONG_BYTES`]-byte string. The parent then checks every record: lock word, version,
//!    data and checksum as the writer meant them. Then a later process updates the first
//!    damaged record ("crash in unrelated code later"): its lock word now holds text. shmsock:
//!    the updates go as loans of 64-byte slots (a record index and the text); the too-long ones
//!    are refused with `Error::TooLarge`, and the receiver's records are checked the same way.
//! 3. **A process dies holding the lock** (same section). A process takes a
//!    `PTHREAD_PROCESS_SHARED` mutex (not robust, as by default) and is SIGKILLed while it holds
//!    it; a survivor then calls `pthread_mutex_lock` and waits until the lab kills it after
//!    [`Plan::hang_bound`]. shmsock: a writer process streaming 64 B messages is SIGKILLed
//!    after the reader got [`Plan::before_kill`]; the reader gets every message sent, then
//!    `Error::PeerGone`, and the lab times how long after the kill.
//! 4. **Torn read** (Q&A thread: "a mishmash of old and new data"). A writer process rewrites a
//!    4 KiB record in place (every 8-byte word its rewrite number) as fast as it can; the parent,
//!    on the other CPU, copies it [`Plan::copies`] times (or for [`Plan::copy_time`]) with
//!    nothing between them and counts the copies whose words disagree. shmsock: the same number
//!    of 4 KiB messages of the same layout, every word checked.
//! 5. **Pointer in shared memory** (IPC cheat sheet: "each process has a different virtual
//!    address for the same physical page"). Process A maps a named shared-memory object and
//!    builds a linked list of [`NODES`] nodes in it, each `next` being A's address of the next
//!    node; walking it in A works. Process B, which has the object mapped at another address,
//!    follows the same links. Two forks of one parent have the same address layout and would
//!    map the object at the same address (which is how this bug passes tests); here A maps the
//!    object by its name after the fork, as another program would, and B uses the mapping it
//!    inherited, so the addresses differ as between unrelated processes. shmsock: A sends the
//!    nodes as loans (only a slot index crosses), B reads them through its own mapping.
//!
//! Every naive process is forked with a watchdog, made not dumpable (a crash leaves no core
//! file) and with its standard error captured (glibc's assertion text is quoted); a process
//! that should have finished and did not is killed by the lab after [`Plan::hang_bound`] and
//! counted as hung. A case that cannot be set up at all becomes an `unavailable` row.

mod locks;
mod memory;
mod naive;

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::process::{waitpid, Pid, WaitOptions};
use serde::{Deserialize, Serialize};

use super::Budgets;
use crate::error::LabError;
use crate::host::Pinning;
use crate::process::{fork_child, kill_child};
use crate::table::Table;

/// Records of the overflow case.
pub const RECORDS: usize = 64;
/// One update in this many writes a string longer than the record's `data[64]`.
pub const OVERLONG_EVERY: usize = 8;
/// Length of the too-long strings (without their NUL).
pub const OVERLONG_BYTES: usize = 100;
/// Nodes of the pointer case's list.
pub const NODES: usize = 1_000;
/// Runs of the mutex case (the control with `PTHREAD_PROCESS_SHARED` is one more).
pub const MUTEX_RUNS: u32 = 2;

/// Increments per worker process in the default mode.
const INCREMENTS: u64 = 1_000_000;
/// Fewest increments per worker, whatever the mode.
const MIN_INCREMENTS: u64 = 20_000;
/// Copies of the torn read in the default mode.
const COPIES: u64 = 200_000;
/// Fewest copies, whatever the mode.
const MIN_COPIES: u64 = 10_000;
/// Messages the reader takes before the writer is killed, default mode.
const BEFORE_KILL: u64 = 1_000_000;
/// Fewest messages before the kill.
const MIN_BEFORE_KILL: u64 = 10_000;
/// Shortest and longest wait for a process that should have finished.
const HANG_BOUND: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(2));
/// Life of every child (a backstop: the lab kills hung ones much earlier).
const WATCHDOG_SECS: u32 = 60;
/// How long the lab waits for a step that must happen (a child ready, a message).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// One bug of the reference documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// A mutex in shared memory without `PTHREAD_PROCESS_SHARED`.
    PrivateMutex,
    /// `strcpy` overflowing a fixed buffer in shared memory.
    Overflow,
    /// A process killed while it holds the lock.
    DeadHolder,
    /// A reader copying a record while it is rewritten.
    TornRead,
    /// A pointer stored in shared memory, followed by another process.
    Pointer,
}

/// The bugs, in report order.
pub const BUGS: [Bug; 5] = [
    Bug::PrivateMutex,
    Bug::Overflow,
    Bug::DeadHolder,
    Bug::TornRead,
    Bug::Pointer,
];

impl Bug {
    /// The row's name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::PrivateMutex => "mutex without PTHREAD_PROCESS_SHARED",
            Bug::Overflow => "strcpy overflows data[64]",
            Bug::DeadHolder => "process dies holding the lock",
            Bug::TornRead => "torn read",
            Bug::Pointer => "pointer in shared memory",
        }
    }

    /// The document (short name, see docs/references.md) and its section.
    pub fn source(self) -> &'static str {
        match self {
            Bug::PrivateMutex | Bug::Overflow | Bug::DeadHolder => {
                "Comparison, The Shared Memory Bug Taxonomy"
            }
            Bug::TornRead => "Q&A thread, an answer",
            Bug::Pointer => "IPC cheat sheet",
        }
    }

    /// What the document says.
    pub fn quote(self) -> &'static str {
        match self {
            Bug::PrivateMutex => {
                "What if mutex wasn't initialized with PTHREAD_PROCESS_SHARED? Works in tests \
                 (single process), fails in production (multi-process)."
            }
            Bug::Overflow => {
                "What if strcpy overflows data[]? Corrupts checksum, lock, or beyond. Crash in \
                 unrelated code later."
            }
            Bug::DeadHolder => {
                "What if one process crashes while holding the lock? All other processes \
                 deadlock. Forever."
            }
            Bug::TornRead => "what it has read in is a mishmash of old and new data",
            Bug::Pointer => {
                "never store pointers in shared memory: each process has a different virtual \
                 address for the same physical page"
            }
        }
    }

    /// Size of the case's messages, for an unavailable row.
    pub fn size(self) -> usize {
        match self {
            Bug::PrivateMutex => 8,
            Bug::Overflow | Bug::DeadHolder => 64,
            Bug::TornRead => 4096,
            Bug::Pointer => 16,
        }
    }
}

/// One bug: what the naive implementation did, and what shmsock did with the same job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BugRow {
    /// [`Bug::name`].
    pub bug: String,
    /// The document and section ([`Bug::source`]).
    pub source: String,
    /// What the document says ([`Bug::quote`]).
    pub quote: String,
    /// The naive shared-memory implementation.
    pub naive: BugOutcome,
    /// shmsock doing the same job.
    pub shmsock: BugOutcome,
}

impl BugRow {
    fn new(bug: Bug, naive: BugOutcome, shmsock: BugOutcome) -> Self {
        Self {
            bug: bug.name().into(),
            source: bug.source().into(),
            quote: bug.quote().into(),
            naive,
            shmsock,
        }
    }

    /// Whether the row shows what it is for: the naive version failed and shmsock did not.
    pub fn shown(&self) -> bool {
        self.naive.failed && !self.shmsock.failed
    }

    /// The finding, in one line.
    pub fn finding(&self) -> String {
        format!(
            "{}: naive: {}; shmsock: {}",
            self.bug, self.naive.result, self.shmsock.result
        )
    }
}

/// What one implementation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BugOutcome {
    /// What ran: the code and the job.
    pub method: String,
    /// What happened, short (the table's cell).
    pub result: String,
    /// What happened, with the details (addresses, glibc's message, timings).
    pub detail: String,
    /// What went wrong, counted in `unit` (0: nothing did).
    pub failures: u64,
    /// Out of how many.
    pub out_of: u64,
    /// What `failures` and `out_of` count.
    pub unit: String,
    /// Processes that did not finish and were killed by the lab after `waited_s`.
    pub hung: u32,
    /// Signals that killed processes nobody meant to kill (`SIGSEGV`, `SIGABRT`, ...).
    pub crashed: Vec<String>,
    /// How long the lab waited for a hung process before killing it, seconds (0: none hung).
    pub waited_s: f64,
    /// Whether the bug showed: a failure counted, a hang or a crash.
    pub failed: bool,
    /// Wall time of the run, seconds.
    pub seconds: f64,
}

impl BugOutcome {
    /// An outcome whose `failed` follows from the counts.
    #[allow(clippy::too_many_arguments)]
    fn new(
        method: impl Into<String>,
        result: impl Into<String>,
        detail: impl Into<String>,
        (failures, out_of, unit): (u64, u64, &str),
        ends: &Ends,
        started: Instant,
    ) -> Self {
        Self {
            method: method.into(),
            result: result.into(),
            detail: detail.into(),
            failures,
            out_of,
            unit: unit.into(),
            hung: ends.hung,
            crashed: ends.crashed.clone(),
            waited_s: ends.waited.as_secs_f64(),
            failed: failures > 0 || ends.hung > 0 || !ends.crashed.is_empty(),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Counts and bounds of one run of the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Increments per worker process (and messages per shmsock writer) of the mutex case.
    pub increments: u64,
    /// Copies of the torn read (and 4 KiB messages of its shmsock run).
    pub copies: u64,
    /// Time cap of the torn read's copies.
    pub copy_time: Duration,
    /// Messages the reader takes before the writer is killed.
    pub before_kill: u64,
    /// How long a process that should finish gets before the lab calls it hung and kills it.
    pub hang_bound: Duration,
}

/// The plan of a run with `budgets`: the default counts divided by its divisor, the hang
/// bound its experiment time within 1 and 2 s.
pub fn plan(budgets: &Budgets) -> Plan {
    let div = budgets.divisor.max(1);
    Plan {
        increments: (INCREMENTS / div).max(MIN_INCREMENTS),
        copies: (COPIES / div).max(MIN_COPIES),
        copy_time: budgets.experiment_max_time,
        before_kill: (BEFORE_KILL / div).max(MIN_BEFORE_KILL),
        hang_bound: budgets
            .experiment_max_time
            .clamp(HANG_BOUND.0, HANG_BOUND.1),
    }
}

/// Runs one bug's naive implementation and shmsock's.
pub(crate) fn measure(bug: Bug, plan: &Plan, pinning: Pinning) -> Result<BugRow, LabError> {
    let row = match bug {
        Bug::PrivateMutex => locks::private_mutex(plan, pinning),
        Bug::Overflow => memory::overflow(plan, pinning),
        Bug::DeadHolder => locks::dead_holder(plan, pinning),
        Bug::TornRead => memory::torn_read(plan, pinning),
        Bug::Pointer => memory::pointer(pinning),
    };
    row.map_err(LabError::context(bug.name()))
}

/// How a naive process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It called `_exit(code)`.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// It was still running at its deadline; the lab killed it.
    Hung,
}

/// What the processes of one run did, for [`BugOutcome`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Ends {
    hung: u32,
    crashed: Vec<String>,
    waited: Duration,
}

impl Ends {
    /// Counts `ended`: a hang (after `waited`), a crash (a signal other than `planned`), or a
    /// failure of the child's own (an exit code other than 0, `Err` with `who` and `why`).
    fn count(
        &mut self,
        who: &str,
        ended: Ended,
        waited: Duration,
        planned: Option<i32>,
    ) -> Result<(), LabError> {
        match ended {
            Ended::Hung => {
                self.hung += 1;
                self.waited = self.waited.max(waited);
            }
            Ended::Signaled(sig) if Some(sig) == planned => {}
            Ended::Signaled(sig) => self.crashed.push(signal_name(sig)),
            Ended::Exited(0) => {}
            Ended::Exited(code) => {
                return Err(LabError::Child {
                    detail: format!(
                        "{who} exited with code {code}: its own setup failed (a system call of \
                         the lab, not the bug under test), so this bug was not shown; rerun \
                         `shmsock lab --only bugs`"
                    ),
                })
            }
        }
        Ok(())
    }

    /// "2 workers hung, killed after 1.0 s; 1 worker killed by SIGABRT" (empty for none):
    /// `what` names one process.
    fn describe(&self, what: &str) -> String {
        let named = |n: usize| {
            if n == 1 {
                format!("1 {what}")
            } else {
                format!("{n} {what}s")
            }
        };
        let mut parts = Vec::new();
        if self.hung > 0 {
            parts.push(format!(
                "{} hung, killed after {}",
                named(self.hung as usize),
                fmt_secs(self.waited)
            ));
        }
        let mut signals = self.crashed.clone();
        signals.sort();
        signals.dedup();
        for sig in signals {
            let n = self.crashed.iter().filter(|s| **s == sig).count();
            parts.push(format!("{} killed by {sig}", named(n)));
        }
        parts.join("; ")
    }
}

/// `SIGSEGV`, `SIGABRT`, ... or `signal N`.
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGALRM => "SIGALRM (its watchdog)",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// `1.0 s`, `10.6 ms`, `85.2 µs`, `850 ns`.
fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{} ns", d.as_nanos())
    }
}

/// Waits until `deadline` for `pid` to end; then kills and reaps it ([`Ended::Hung`]).
fn wait_or_kill(pid: Pid, deadline: Instant) -> Result<Ended, LabError> {
    loop {
        let reaped = waitpid(Some(pid), WaitOptions::NOHANG)
            .map_err(LabError::os("waiting for a naive process"))?;
        if let Some((_, status)) = reaped {
            return Ok(match (status.exit_status(), status.terminating_signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(sig)) => Ended::Signaled(sig),
                (None, None) => Ended::Signaled(0),
            });
        }
        if Instant::now() >= deadline {
            kill_child(pid);
            waitpid(Some(pid), WaitOptions::empty())
                .map_err(LabError::os("reaping a hung naive process"))?;
            return Ok(Ended::Hung);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Where the naive processes' standard error goes: a memory file the parent reads afterwards
/// (glibc prints its assertion failures there before it aborts).
struct Stderr(OwnedFd);

impl Stderr {
    fn new() -> Result<Self, LabError> {
        rustix::fs::memfd_create("shmsock-lab-bugs-stderr", rustix::fs::MemfdFlags::CLOEXEC)
            .map(Self)
            .map_err(LabError::os(
                "creating a memory file for the naive processes' stderr",
            ))
    }

    /// The first line written, if any.
    fn first_line(&self) -> Option<String> {
        let mut buf = [0u8; 512];
        let n = rustix::io::pread(&self.0, &mut buf, 0).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]);
        let line = text.lines().next()?.trim();
        (!line.is_empty()).then(|| line.to_string())
    }
}

/// Forks a naive process on `cpu`: not dumpable (a crash it is expected to have leaves no core
/// file), its standard error into `stderr`, then `body` (its exit code).
fn fork_naive(cpu: usize, stderr: &Stderr, body: impl FnOnce() -> i32) -> Result<Pid, LabError> {
    fork_child(cpu, WATCHDOG_SECS, || {
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Core,
            rustix::process::Rlimit {
                current: Some(0),
                maximum: None,
            },
        );
        let _ = rustix::stdio::dup2_stderr(&stderr.0);
        body()
    })
}

/// Exit code of a naive process whose own setup failed (not the bug: an error of the lab).
const NAIVE_SETUP_FAILED: i32 = 3;

/// `12,345`: counts in the cells and sentences.
fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table: one line per bug, what the naive version did and what shmsock did; the quotes,
/// methods and details as notes.
pub(crate) fn table(rows: &[BugRow]) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let cells = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                format!("{}. {}", i + 1, r.bug),
                r.naive.result.clone(),
                r.shmsock.result.clone(),
            ]
        })
        .collect();
    let mut table = Table::new(
        "Bugs: the reference documents' shared-memory bugs, made to happen, and shmsock doing \
         the same job",
        vec![
            "bug",
            "naive shared memory (wrong on purpose)",
            "shmsock over shm://",
        ],
        cells,
    );
    table.text_columns = vec![1, 2];
    let shown = rows.iter().filter(|r| r.shown()).count();
    table.intro = vec![format!(
        "Each naive version runs in forked processes; one that should have finished and did \
         not is killed by the lab after a bound and counted as hung. {shown} of {} bugs \
         happened to the naive version and not to shmsock.",
        rows.len()
    )];
    for (i, r) in rows.iter().enumerate() {
        table.notes.push(format!(
            "{}. {} ({}: \"{}\")\n   naive: {} {}\n   shmsock: {} {}",
            i + 1,
            r.bug,
            r.source,
            r.quote,
            r.naive.method,
            r.naive.detail,
            r.shmsock.method,
            r.shmsock.detail
        ));
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(failures: u64, hung: u32) -> BugOutcome {
        let ends = Ends {
            hung,
            crashed: Vec::new(),
            waited: Duration::from_secs(hung.into()),
        };
        BugOutcome::new(
            "method.",
            format!("{failures} failures"),
            "detail.",
            (failures, 10, "things"),
            &ends,
            Instant::now(),
        )
    }

    #[test]
    fn the_plan_scales_counts_and_bounds_the_hangs() {
        let quick = plan(&Budgets::QUICK);
        assert_eq!(quick.increments, 20_000);
        assert_eq!(quick.hang_bound, Duration::from_secs(1));
        let default = plan(&Budgets::DEFAULT);
        assert_eq!(default.increments, 1_000_000);
        assert_eq!(default.hang_bound, Duration::from_secs(2));
        assert!(default.copies >= quick.copies && quick.copies >= MIN_COPIES);
    }

    #[test]
    fn an_outcome_failed_when_something_was_counted_hung_or_crashed() {
        assert!(!outcome(0, 0).failed);
        assert!(outcome(3, 0).failed);
        assert!(outcome(0, 1).failed);
        let mut ends = Ends::default();
        ends.count("b", Ended::Signaled(libc::SIGSEGV), Duration::ZERO, None)
            .expect("a crash is counted");
        ends.count(
            "a",
            Ended::Signaled(libc::SIGKILL),
            Duration::ZERO,
            Some(libc::SIGKILL),
        )
        .expect("a planned kill is not counted");
        assert_eq!(ends.crashed, ["SIGSEGV"]);
        assert!(ends
            .count("c", Ended::Exited(1), Duration::ZERO, None)
            .is_err());
        ends.count("d", Ended::Hung, Duration::from_secs(1), None)
            .expect("a hang is counted");
        assert_eq!(
            ends.describe("process"),
            "1 process hung, killed after 1.0 s; 1 process killed by SIGSEGV"
        );
        ends.crashed.push("SIGSEGV".into());
        assert!(ends
            .describe("worker")
            .ends_with("2 workers killed by SIGSEGV"));
    }

    #[test]
    fn the_table_has_a_line_per_bug_and_the_quotes_below() {
        let row = |bug: Bug, naive, shmsock| BugRow::new(bug, naive, shmsock);
        let rows = [
            row(Bug::TornRead, outcome(1_204, 0), outcome(0, 0)),
            row(Bug::DeadHolder, outcome(0, 1), outcome(0, 0)),
            row(Bug::Pointer, outcome(0, 0), outcome(0, 0)),
        ];
        assert!(rows[0].shown() && rows[1].shown() && !rows[2].shown());
        let text = table(&rows).expect("a table").to_text();
        assert!(text.contains("1. torn read"), "{text}");
        assert!(text.contains("1204 failures"), "{text}");
        assert!(text.contains("2 of 3 bugs happened"), "{text}");
        assert!(text.contains("Q&A thread, an answer"), "{text}");
        assert!(table(&[]).is_none());
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(fmt_secs(Duration::from_millis(1000)), "1.0 s");
        assert_eq!(fmt_secs(Duration::from_micros(10_640)), "10.6 ms");
        assert_eq!(fmt_secs(Duration::from_nanos(85_200)), "85.2 µs");
        assert_eq!(fmt_secs(Duration::from_nanos(850)), "850 ns");
    }

    #[test]
    fn counts_read_with_separators() {
        assert_eq!(fmt_int(0), "0");
        assert_eq!(fmt_int(1_204), "1,204");
        assert_eq!(fmt_int(1_000_000), "1,000,000");
    }
}
