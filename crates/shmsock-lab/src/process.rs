//! Forking the other sides of an experiment, pinning, waiting for them and reaping them
//! without hanging.
//!
//! The method: everything a pair needs (mappings, pipes, sockets, a bound listener, buffers) is
//! created in the parent; then [`fork_child`] makes a copy of the process in which the child
//! side runs, pinned to its own CPU, and ends with `_exit` so it never returns into the
//! parent's code (not even when it panics). The parent waits with [`wait_child`], which polls
//! `waitpid` against a deadline and kills a child that overstays, so a stuck child costs a
//! timeout, never a hang. The child also arms `alarm(2)`, so a parent that stops answering
//! cannot leave it spinning forever either.
//!
//! Experiments fork through [`Children`]: N children, each reporting its stats or its error
//! through a [`ChildReport`], all killed if a later fork or the parent's side fails, all
//! reaped with a deadline; [`outcome`] combines their results with the parent's, and
//! [`wait_until`] is the parent's (or a child's) bounded wait for the others.
//!
//! A mechanism that needs a program of its own running (the `dbus` rows' `dbus-daemon`) starts
//! it with [`spawn_helper`]: `fork` + `exec` through `std::process::Command`, with the kernel
//! told to send the helper `SIGTERM` if the lab goes away first, so not even a lab killed by a
//! signal leaves one behind.
//!
//! # Safety
//!
//! `fork` in a process with several threads copies only the calling thread; a lock held by
//! another thread stays locked forever in the child. The lab itself is single-threaded. The
//! test harness is not, so the child side keeps to code that takes no such lock: it does not
//! print, works on buffers allocated before the fork, and glibc's `malloc` (which re-initialises
//! its locks in the child) is the only allocator it may touch. This module is the only place
//! that calls `fork`, `_exit` and `alarm`.
#![allow(unsafe_code)]

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions, WaitStatus};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

use crate::error::LabError;
use crate::shared::SharedRegion;

/// Serialises every fork in this process: the lab pins the calling thread and forks, and two
/// labs (or tests) doing so at once would measure each other.
pub(crate) static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Longest error text a child can report.
const MESSAGE_BYTES: usize = 1024;

/// Exit code of a child whose side returned an error (the error text is in its report).
pub(crate) const CHILD_EXIT_FAILED: i32 = 1;
/// Exit code of a child whose side panicked.
pub(crate) const CHILD_EXIT_PANICKED: i32 = 101;

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildEnd {
    /// It called `_exit(code)`.
    Exited(i32),
    /// A signal ended it (`SIGALRM` from its watchdog, `SIGKILL` from [`wait_child`], ...).
    Signaled(i32),
}

/// Forks; the child pins itself to `child_cpu`, arms a watchdog of `watchdog_secs` seconds,
/// runs `child_side` and exits with the code it returns. Returns the child's pid in the parent.
///
/// The closure runs only in the child and never returns into the caller there.
pub(crate) fn fork_child<F>(
    child_cpu: usize,
    watchdog_secs: u32,
    child_side: F,
) -> Result<Pid, LabError>
where
    F: FnOnce() -> i32,
{
    // SAFETY: `fork` has no memory-safety preconditions of its own; the hazards of forking a
    // multi-threaded process (locks held by other threads) are avoided by what the child runs,
    // as the module docs explain, and the child never returns from this function.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(LabError::Os {
            what: "forking the child side",
            source: std::io::Error::last_os_error(),
        }),
        0 => {
            // SAFETY: `alarm` only sets a timer of this (single-threaded) child; SIGALRM has its
            // default disposition (terminate) unless the embedding program changed it.
            unsafe { libc::alarm(watchdog_secs) };
            let code = match pin_current_thread(child_cpu) {
                Err(_) => CHILD_EXIT_FAILED,
                Ok(()) => catch_unwind(AssertUnwindSafe(child_side)).unwrap_or(CHILD_EXIT_PANICKED),
            };
            // SAFETY: `_exit` ends the child at once without running the parent's atexit
            // handlers or flushing stdio buffers inherited from the parent (which would
            // duplicate their output); every resource the child holds belongs to the kernel.
            unsafe { libc::_exit(code) }
        }
        child => Pid::from_raw(child).ok_or(LabError::Child {
            detail: format!("fork returned an impossible pid {child}"),
        }),
    }
}

/// Waits up to `timeout` for `pid` to exit; then kills it with `SIGKILL` and reaps it, so the
/// lab never hangs on a child and never leaves a zombie.
pub(crate) fn wait_child(pid: Pid, timeout: Duration) -> Result<ChildEnd, LabError> {
    const POLL: Duration = Duration::from_millis(1);
    let deadline = Instant::now() + timeout;
    loop {
        let reaped = waitpid(Some(pid), WaitOptions::NOHANG)
            .map_err(LabError::os("waiting for the child side"))?;
        if let Some((_, status)) = reaped {
            return Ok(child_end(status));
        }
        if Instant::now() >= deadline {
            kill_child(pid);
            let (_, status) = waitpid(Some(pid), WaitOptions::empty())
                .map_err(LabError::os("reaping the killed child side"))?
                .ok_or(LabError::Child {
                    detail: "waitpid returned no status after SIGKILL".into(),
                })?;
            return Err(LabError::Child {
                detail: format!(
                    "did not exit within {timeout:?} and was killed ({:?})",
                    child_end(status)
                ),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `SIGKILL` to the child; it is gone already if this fails, which is what we wanted.
pub(crate) fn kill_child(pid: Pid) {
    let _ = kill_process(pid, Signal::KILL);
}

fn child_end(status: WaitStatus) -> ChildEnd {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => ChildEnd::Exited(code),
        (None, Some(signal)) => ChildEnd::Signaled(signal),
        (None, None) => ChildEnd::Signaled(0),
    }
}

/// One measured window of one thread ([`crate::experiments`]' `Window`): its wall time, the
/// thread's CPU time, how often it left its CPU and how many read/write system calls it made.
/// What a child reports about itself, and what a parent keeps of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChildStats {
    /// CPU time the child's thread used in its measured window, in ns.
    pub cpu_ns: u64,
    /// Wall time of that window, in ns.
    pub wall_ns: u64,
    /// The part of `cpu_ns` the kernel spent working for the thread (system time), in ns.
    pub sys_ns: u64,
    /// Voluntary context switches of the thread in the window (it waited: a blocking read, a
    /// futex sleep), from `getrusage(RUSAGE_THREAD)`.
    pub voluntary_switches: u64,
    /// Involuntary context switches of the thread in the window (the scheduler took its CPU:
    /// preemption, or a `sched_yield` that let another task run).
    pub involuntary_switches: u64,
    /// read(2)/write(2)-family system calls the thread made in the window, as the kernel counts
    /// them ([`thread_rw_syscalls`]); `None` where the kernel does not count them.
    pub rw_syscalls: Option<u64>,
}

/// The child's result, in a page of memory shared with the parent: written with atomics only
/// (status, CPU time, up to [`MESSAGE_BYTES`] of error text formatted without allocating),
/// read by the parent after the child has been reaped.
pub(crate) struct ChildReport {
    region: SharedRegion,
}

const STATUS_OFFSET: usize = 0;
const CPU_OFFSET: usize = 8;
const WALL_OFFSET: usize = 16;
const LEN_OFFSET: usize = 24;
const SYS_OFFSET: usize = 32;
const VOLUNTARY_OFFSET: usize = 40;
const INVOLUNTARY_OFFSET: usize = 48;
/// `u64::MAX` stands for "not counted" (`rw_syscalls: None`).
const RW_SYSCALLS_OFFSET: usize = 56;
const TEXT_OFFSET: usize = 64;
const STATUS_OK: u64 = 1;
const STATUS_FAILED: u64 = 2;

impl ChildReport {
    pub(crate) fn new() -> Result<Self, LabError> {
        Ok(Self {
            region: SharedRegion::new(TEXT_OFFSET + MESSAGE_BYTES)?,
        })
    }

    /// Called by the child: records its stats or its error, without allocating.
    pub(crate) fn finish(&self, result: &Result<ChildStats, LabError>) {
        // Relaxed everywhere: the parent reads only after reaping the child, and waitpid
        // orders the child's whole life before that.
        let word = |offset| self.region.atomic_u64(offset);
        match result {
            Ok(stats) => {
                word(CPU_OFFSET).store(stats.cpu_ns, Ordering::Relaxed);
                word(WALL_OFFSET).store(stats.wall_ns, Ordering::Relaxed);
                word(SYS_OFFSET).store(stats.sys_ns, Ordering::Relaxed);
                word(VOLUNTARY_OFFSET).store(stats.voluntary_switches, Ordering::Relaxed);
                word(INVOLUNTARY_OFFSET).store(stats.involuntary_switches, Ordering::Relaxed);
                let rw = stats.rw_syscalls.unwrap_or(u64::MAX);
                word(RW_SYSCALLS_OFFSET).store(rw, Ordering::Relaxed);
                word(STATUS_OFFSET).store(STATUS_OK, Ordering::Relaxed);
            }
            Err(err) => {
                let mut text = FixedText::default();
                let _ = write!(text, "{err}");
                for (i, chunk) in text.bytes().chunks(8).enumerate() {
                    let mut le = [0u8; 8];
                    le[..chunk.len()].copy_from_slice(chunk);
                    word(TEXT_OFFSET + 8 * i).store(u64::from_le_bytes(le), Ordering::Relaxed);
                }
                word(LEN_OFFSET).store(text.len as u64, Ordering::Relaxed);
                word(STATUS_OFFSET).store(STATUS_FAILED, Ordering::Relaxed);
            }
        }
    }

    /// Called by the parent after reaping a successful child.
    pub(crate) fn stats(&self) -> ChildStats {
        let word = |offset| self.region.atomic_u64(offset).load(Ordering::Relaxed);
        ChildStats {
            cpu_ns: word(CPU_OFFSET),
            wall_ns: word(WALL_OFFSET),
            sys_ns: word(SYS_OFFSET),
            voluntary_switches: word(VOLUNTARY_OFFSET),
            involuntary_switches: word(INVOLUNTARY_OFFSET),
            rw_syscalls: Some(word(RW_SYSCALLS_OFFSET)).filter(|&n| n != u64::MAX),
        }
    }

    /// Called by the parent after reaping a failed child: what went wrong, in words.
    pub(crate) fn failure(&self, end: ChildEnd) -> String {
        let status = self
            .region
            .atomic_u64(STATUS_OFFSET)
            .load(Ordering::Relaxed);
        let how = match end {
            ChildEnd::Exited(CHILD_EXIT_PANICKED) => "panicked".to_string(),
            ChildEnd::Exited(code) => format!("exited with code {code}"),
            ChildEnd::Signaled(sig) if sig == libc::SIGALRM => {
                "killed by its watchdog (SIGALRM): it ran too long".to_string()
            }
            ChildEnd::Signaled(sig) => format!("killed by signal {sig}"),
        };
        if status != STATUS_FAILED {
            return how;
        }
        let len = usize::try_from(self.region.atomic_u64(LEN_OFFSET).load(Ordering::Relaxed))
            .map_or(MESSAGE_BYTES, |l| l.min(MESSAGE_BYTES));
        let mut bytes = Vec::with_capacity(len.next_multiple_of(8));
        for i in 0..len.div_ceil(8) {
            let word = self.region.atomic_u64(TEXT_OFFSET + 8 * i);
            bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        bytes.truncate(len);
        format!("{} ({how})", String::from_utf8_lossy(&bytes))
    }
}

/// A `fmt::Write` sink of fixed capacity that truncates instead of allocating.
struct FixedText {
    buf: [u8; MESSAGE_BYTES],
    len: usize,
}

impl Default for FixedText {
    fn default() -> Self {
        Self {
            buf: [0; MESSAGE_BYTES],
            len: 0,
        }
    }
}

impl FixedText {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for FixedText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = MESSAGE_BYTES - self.len;
        // Cut at a char boundary so the parent always reads valid UTF-8.
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// The children one experiment forked: each runs its side, reports its result through its own
/// [`ChildReport`], and is reaped with a deadline. Whatever fails, no child outlives the
/// experiment: a failed fork kills and reaps the ones already forked, and [`Children::reap`]
/// kills a child that overstays.
pub(crate) struct Children {
    forked: Vec<Forked>,
}

struct Forked {
    who: String,
    pid: Pid,
    report: ChildReport,
}

impl Children {
    /// How long the children already forked get to exit after a later fork failed.
    const AFTER_FORK_FAILURE: Duration = Duration::from_secs(1);

    /// No children yet.
    pub(crate) fn new() -> Self {
        Self { forked: Vec::new() }
    }

    /// Forks a child that pins itself to `cpu`, runs `side` (its whole life bounded by
    /// `watchdog`), reports the result and exits. `who` names it in failures (`producer 3`;
    /// empty for the only child of a pair). If the fork fails, the children forked before are
    /// killed and reaped and the error returned.
    pub(crate) fn fork(
        &mut self,
        who: impl Into<String>,
        cpu: usize,
        watchdog: Duration,
        side: impl FnOnce() -> Result<ChildStats, LabError>,
    ) -> Result<(), LabError> {
        let watchdog_secs = u32::try_from(watchdog.as_secs().max(1)).unwrap_or(u32::MAX);
        let forked = ChildReport::new().and_then(|report| {
            let pid = fork_child(cpu, watchdog_secs, || {
                let result = side();
                report.finish(&result);
                if result.is_ok() {
                    0
                } else {
                    CHILD_EXIT_FAILED
                }
            })?;
            Ok((pid, report))
        });
        match forked {
            Ok((pid, report)) => {
                self.forked.push(Forked {
                    who: who.into(),
                    pid,
                    report,
                });
                Ok(())
            }
            Err(err) => {
                self.kill_all();
                let _ = std::mem::replace(self, Self::new()).reap(Self::AFTER_FORK_FAILURE);
                Err(err)
            }
        }
    }

    /// Sends `SIGKILL` to every child (they are reaped by [`Children::reap`]).
    pub(crate) fn kill_all(&self) {
        self.forked.iter().for_each(|c| kill_child(c.pid));
    }

    /// Waits up to `timeout` for each child to exit (killing one that overstays) and returns
    /// every child's stats, or what went wrong with each one that failed (`who: what`).
    pub(crate) fn reap(self, timeout: Duration) -> Result<Vec<ChildStats>, Vec<String>> {
        let mut stats = Vec::with_capacity(self.forked.len());
        let mut failures = Vec::new();
        for child in self.forked {
            let failure = match wait_child(child.pid, timeout) {
                Ok(ChildEnd::Exited(0)) => {
                    stats.push(child.report.stats());
                    continue;
                }
                Ok(end) => child.report.failure(end),
                Err(LabError::Child { detail }) => detail,
                Err(err) => err.to_string(),
            };
            failures.push(if child.who.is_empty() {
                failure
            } else {
                format!("{}: {failure}", child.who)
            });
        }
        if failures.is_empty() {
            Ok(stats)
        } else {
            Err(failures)
        }
    }
}

/// The result of an experiment from the parent's `result` and its children's (from
/// [`Children::reap`]): the value and the children's stats, or the children's failures first
/// (usually the cause; the parent's error, named `parent`, is then the symptom).
pub(crate) fn outcome<T>(
    parent: &str,
    result: Result<T, LabError>,
    children: Result<Vec<ChildStats>, Vec<String>>,
) -> Result<(T, Vec<ChildStats>), LabError> {
    match (result, children) {
        (Ok(value), Ok(stats)) => Ok((value, stats)),
        (Err(err), Ok(_)) => Err(err),
        (Ok(_), Err(failures)) => Err(LabError::Child {
            detail: failures.join("; "),
        }),
        (Err(err), Err(failures)) => Err(LabError::Child {
            detail: format!("{}; the {parent} then failed: {err}", failures.join("; ")),
        }),
    }
}

/// How a process waiting for another lets it run between two looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    /// `sched_yield`: the other process is likely on this CPU.
    Yield,
    /// Sleep this long.
    Sleep(Duration),
}

/// Waits up to `timeout` until `ready()`, pausing between looks. Fails with
/// [`LabError::Stalled`] naming `what` when the time is up, or with [`LabError::Child`] as soon
/// as `failed()` says why a child failed.
pub(crate) fn wait_until(
    what: &'static str,
    timeout: Duration,
    pause: Pause,
    mut ready: impl FnMut() -> bool,
    failed: impl Fn() -> Option<&'static str>,
) -> Result<(), LabError> {
    let started = Instant::now();
    while !ready() {
        if let Some(detail) = failed() {
            return Err(LabError::Child {
                detail: detail.into(),
            });
        }
        if started.elapsed() > timeout {
            return Err(LabError::Stalled {
                what,
                waited: started.elapsed(),
            });
        }
        match pause {
            Pause::Yield => rustix::thread::sched_yield(),
            Pause::Sleep(d) => std::thread::sleep(d),
        }
    }
    Ok(())
}

/// Waits until the word at `offset` of `control` holds `seq`: another process stores it
/// (Release) once message `seq` has arrived. Spins, yielding every 16th look so that a process
/// sharing this CPU (a library thread, a bridge) runs at once; every 4096th look it fails with
/// [`LabError::Child`] ("`who` failed while message `seq` was on its way") if `failed()`, or
/// with [`LabError::Stalled`] naming `what` once `timeout` has passed since the first such
/// check.
pub(crate) fn wait_ack(
    control: &SharedRegion,
    offset: usize,
    seq: u64,
    timeout: Duration,
    what: &'static str,
    who: &str,
    failed: &impl Fn() -> bool,
) -> Result<(), LabError> {
    let ack = control.atomic_u64(offset);
    let mut polls = 0u32;
    let mut since: Option<Instant> = None;
    // Acquire: pairs with the other process's Release store of the sequence number, after what
    // it publishes with it.
    while ack.load(Ordering::Acquire) != seq {
        polls = polls.wrapping_add(1);
        if !polls.is_multiple_of(16) {
            std::hint::spin_loop();
            continue;
        }
        rustix::thread::sched_yield();
        if polls.is_multiple_of(4096) {
            let since = *since.get_or_insert_with(Instant::now);
            if failed() {
                return Err(LabError::Child {
                    detail: format!("{who} failed while message {seq} was on its way"),
                });
            }
            if since.elapsed() > timeout {
                return Err(LabError::Stalled {
                    what,
                    waited: since.elapsed(),
                });
            }
        }
    }
    Ok(())
}

/// What `getrusage(RUSAGE_THREAD)` says of the calling thread so far (rustix does not wrap it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadUsage {
    /// CPU time the kernel has spent working for the thread (its system time). The kernel
    /// splits a thread's CPU time between user and system by sampling at its timer ticks, so
    /// short windows get an estimate.
    pub sys: Duration,
    /// Voluntary context switches (`ru_nvcsw`): the thread waited and gave up its CPU.
    pub voluntary: u64,
    /// Involuntary context switches (`ru_nivcsw`): the scheduler took its CPU.
    pub involuntary: u64,
}

/// The calling thread's system time and context switches so far, from
/// `getrusage(RUSAGE_THREAD)` (one system call, no allocation).
pub(crate) fn thread_usage() -> ThreadUsage {
    // SAFETY: `rusage` is plain integers, for which all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` writes only into `usage`, which is a valid, exclusive `rusage`; it
    // cannot fail with `RUSAGE_THREAD` on Linux, and a failure would leave the zeros.
    let _ = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = usage.ru_stime;
    ThreadUsage {
        sys: Duration::new(
            u64::try_from(tv.tv_sec).unwrap_or(0),
            u32::try_from(tv.tv_usec).unwrap_or(0).saturating_mul(1000),
        ),
        voluntary: u64::try_from(usage.ru_nvcsw).unwrap_or(0),
        involuntary: u64::try_from(usage.ru_nivcsw).unwrap_or(0),
    }
}

/// The read(2)/write(2)-family system calls (read, write, readv, writev, pread, pwrite,
/// sendfile, ...) the calling thread has made so far, as the kernel counts them for it: `syscr +
/// syscw` of `/proc/thread-self/io`. Socket calls of the send/recv family, message queues,
/// futexes and semaphores are not in these counters. `None` when the file cannot be read (a
/// kernel without task I/O accounting).
///
/// One `open`, one `read` into a buffer on the stack and one `close`: no allocation, so a forked
/// child may call it. The `read` is itself counted, after the numbers it returns were taken, so
/// a window that reads the counters at both ends counts one call of its own.
pub(crate) fn thread_rw_syscalls() -> Option<u64> {
    use rustix::fs::{open, Mode, OFlags};
    let fd = open(
        c"/proc/thread-self/io",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 512];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    parse_rw_syscalls(buf.get(..n)?)
}

/// `syscr + syscw` of the text of a `/proc/<pid>/io` file.
fn parse_rw_syscalls(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
    };
    Some(field("syscr:")? + field("syscw:")?)
}

/// Pins the calling thread to one CPU.
pub(crate) fn pin_current_thread(cpu: usize) -> Result<(), LabError> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(LabError::os("pinning to a CPU"))
}

/// Starts `command` as a helper process of the lab (a daemon a mechanism needs), which the
/// kernel sends `SIGTERM` when the thread that started it exits (`PR_SET_PDEATHSIG`): a lab
/// killed by a signal leaves no helper running. The lab runs on one thread, the one that starts
/// helpers; a test starts and stops its helpers on its own thread.
///
/// The helper inherits the calling thread's CPU affinity; the caller sets the one it wants.
pub(crate) fn spawn_helper(
    command: &mut std::process::Command,
) -> std::io::Result<std::process::Child> {
    let lab = rustix::process::getpid();
    let arm = move || -> std::io::Result<()> {
        rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
        // The lab may have exited between the fork and the line above: then no signal will
        // come, so do not start.
        if rustix::process::getppid() != Some(lab) {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: `arm` runs in the forked child before `exec`; it makes two system calls (`prctl`,
    // `getppid`) and builds an `io::Error` from an errno without allocating: no lock, no
    // allocation, nothing a fork from a multi-threaded process could leave locked.
    unsafe { command.pre_exec(arm) };
    command.spawn()
}

/// The CPUs the calling thread may run on, in ascending order.
pub(crate) fn allowed_cpus() -> Result<Vec<usize>, LabError> {
    let set = sched_getaffinity(None).map_err(LabError::os("reading the CPU affinity"))?;
    Ok((0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

/// Restores the calling thread's affinity to `cpus` when dropped.
#[must_use = "the affinity is restored when the guard is dropped"]
pub(crate) struct AffinityGuard {
    saved: CpuSet,
}

impl AffinityGuard {
    /// Remembers the current affinity, then pins the calling thread to `cpu`.
    pub(crate) fn pin(cpu: usize) -> Result<Self, LabError> {
        let saved = sched_getaffinity(None).map_err(LabError::os("reading the CPU affinity"))?;
        pin_current_thread(cpu)?;
        Ok(Self { saved })
    }
}

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        let _ = sched_setaffinity(None, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_exit_code_is_reported() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let cpu = allowed_cpus().expect("affinity")[0];
        let pid = fork_child(cpu, 10, || 7).expect("fork");
        assert_eq!(
            wait_child(pid, Duration::from_secs(10)).expect("wait"),
            ChildEnd::Exited(7)
        );
    }

    #[test]
    fn stuck_child_is_killed_after_the_timeout() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let cpu = allowed_cpus().expect("affinity")[0];
        let pid = fork_child(cpu, 30, || loop {
            std::thread::sleep(Duration::from_millis(10));
        })
        .expect("fork");
        let started = Instant::now();
        let err = wait_child(pid, Duration::from_millis(200)).expect_err("must time out");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("killed"), "{err}");
    }

    #[test]
    fn system_time_grows_with_system_calls_and_stays_within_cpu_time() {
        let (cpu0, sys0) = (crate::experiments::thread_cpu_time(), thread_usage().sys);
        let started = Instant::now();
        // `stat` is almost all kernel work (path lookup), 100 ms of it.
        while started.elapsed() < Duration::from_millis(100) {
            let _ = std::fs::metadata("/");
        }
        let cpu = crate::experiments::thread_cpu_time() - cpu0;
        let sys = thread_usage().sys - sys0;
        assert!(
            sys > Duration::ZERO,
            "no system time in {cpu:?} of stat calls"
        );
        // The kernel's split is sampled; allow it a tick of slack beyond the CPU time.
        assert!(sys <= cpu + Duration::from_millis(10), "{sys:?} of {cpu:?}");
    }

    #[test]
    fn read_and_write_calls_and_context_switches_are_counted_per_thread() {
        assert_eq!(
            parse_rw_syscalls(b"rchar: 10\nwchar: 3\nsyscr: 7\nsyscw: 2\nread_bytes: 0\n"),
            Some(9)
        );
        assert_eq!(parse_rw_syscalls(b"rchar: 10\n"), None);
        let Some(before) = thread_rw_syscalls() else {
            // A kernel without task I/O accounting: the rows say "by construction" instead.
            assert!(
                std::fs::metadata("/proc/thread-self/io").is_err(),
                "/proc/thread-self/io exists but could not be read"
            );
            return;
        };
        let (read_end, write_end) = rustix::pipe::pipe().expect("pipe");
        for _ in 0..10 {
            rustix::io::write(&write_end, &[1]).expect("write");
            rustix::io::read(&read_end, &mut [0]).expect("read");
        }
        let after = thread_rw_syscalls().expect("counted before, counted after");
        // 20 calls, and the first look's own read.
        assert_eq!(after - before, 21);
        let usage = thread_usage();
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            thread_usage().voluntary > usage.voluntary,
            "a sleep is a voluntary context switch"
        );
    }

    #[test]
    fn child_error_text_reaches_the_parent() {
        let report = ChildReport::new().expect("mmap");
        report.finish(&Err(LabError::Integrity {
            detail: "seq 3 arrived as 4".into(),
        }));
        let text = report.failure(ChildEnd::Exited(CHILD_EXIT_FAILED));
        assert!(text.contains("seq 3 arrived as 4"), "{text}");
        assert!(text.contains("exited with code 1"), "{text}");
    }

    #[test]
    fn long_error_text_is_truncated_not_lost() {
        let mut text = FixedText::default();
        let long = "é".repeat(MESSAGE_BYTES);
        let _ = write!(text, "{long}");
        assert!(text.len <= MESSAGE_BYTES);
        assert!(std::str::from_utf8(text.bytes()).is_ok());
    }

    #[test]
    fn a_failed_child_is_named_and_its_siblings_still_reaped() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let cpu = allowed_cpus().expect("affinity")[0];
        let mut children = Children::new();
        let watchdog = Duration::from_secs(10);
        children
            .fork("first", cpu, watchdog, || {
                Ok(ChildStats {
                    cpu_ns: 1,
                    wall_ns: 2,
                    ..ChildStats::default()
                })
            })
            .expect("fork");
        children
            .fork("second", cpu, watchdog, || {
                Err(LabError::Integrity {
                    detail: "deliberate".into(),
                })
            })
            .expect("fork");
        let failures = children
            .reap(Duration::from_secs(10))
            .expect_err("the second failed");
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("second: ") && failures[0].contains("deliberate"));
        let err = outcome("parent", Ok(()), Err(failures)).expect_err("a child failed");
        assert!(err.to_string().contains("second: "), "{err}");
    }

    #[test]
    fn killed_children_are_reaped_and_reported() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let cpu = allowed_cpus().expect("affinity")[0];
        let mut children = Children::new();
        for k in 0..2 {
            children
                .fork(format!("sleeper {k}"), cpu, Duration::from_secs(30), || {
                    loop {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
                .expect("fork");
        }
        children.kill_all();
        let failures = children.reap(Duration::from_secs(10)).expect_err("killed");
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures.iter().all(|f| f.contains("killed by signal")),
            "{failures:?}"
        );
        let err = outcome::<()>(
            "parent",
            Err(LabError::Integrity {
                detail: "parent broke".into(),
            }),
            Err(failures),
        )
        .expect_err("both failed");
        assert!(
            err.to_string().contains("the parent then failed: "),
            "{err}"
        );
    }
}
