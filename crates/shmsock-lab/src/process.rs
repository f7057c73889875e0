//! Forking the second side of an experiment, pinning, and reaping it without hanging.
//!
//! The method: everything a pair needs (mappings, pipes, sockets, a bound listener, buffers) is
//! created in the parent; then [`fork_child`] makes a copy of the process in which the child
//! side runs, pinned to its own CPU, and ends with `_exit` so it never returns into the
//! parent's code (not even when it panics). The parent waits with [`wait_child`], which polls
//! `waitpid` against a deadline and kills a child that overstays, so a stuck child costs a
//! timeout, never a hang. The child also arms `alarm(2)`, so a parent that stops answering
//! cannot leave it spinning forever either.
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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions, WaitStatus};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

use crate::LabError;

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

/// Pins the calling thread to one CPU.
pub(crate) fn pin_current_thread(cpu: usize) -> Result<(), LabError> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(LabError::os("pinning to a CPU"))
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
        let _lock = crate::FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let cpu = allowed_cpus().expect("affinity")[0];
        let pid = fork_child(cpu, 10, || 7).expect("fork");
        assert_eq!(
            wait_child(pid, Duration::from_secs(10)).expect("wait"),
            ChildEnd::Exited(7)
        );
    }

    #[test]
    fn stuck_child_is_killed_after_the_timeout() {
        let _lock = crate::FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
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
}
