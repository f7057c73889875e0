//! Running one experiment across two processes: set up, fork, run both sides, reap, combine.
//!
//! ```text
//! parent                                   child (forked, pinned to its own CPU)
//! ------                                   -----
//! pair = mechanism.setup(pattern, size)
//! report = ChildReport::new()  (shared)
//! fork ----------------------------------> abandon(pair.parent); pair.child.start()
//! abandon(pair.child)                      stats = child_fn(side)?
//! pair.parent.start()                      report.finish(stats | error); _exit
//! value = parent_fn(side)?
//! drop(side); waitpid (deadline, then SIGKILL)
//! value + the child's stats, or the first error of either side
//! ```
//!
//! The child's result travels back through a [`ChildReport`]: a page of shared memory written
//! with atomics only (status, CPU time, up to [`MESSAGE_BYTES`] of error text formatted without
//! allocating), read by the parent after the child has been reaped.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::host::Pinning;
use crate::mechanisms::{Mechanism, Pattern, Side};
use crate::process::{fork_child, wait_child, ChildEnd, CHILD_EXIT_FAILED, CHILD_EXIT_PANICKED};
use crate::shared::SharedRegion;
use crate::LabError;

/// How long the parent waits for the child to exit once its own side is done.
const CHILD_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the parent waits for the child after its own side failed, before killing it.
const CHILD_EXIT_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Longest error text a child can report.
const MESSAGE_BYTES: usize = 1024;

/// What the child side measured about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChildStats {
    /// CPU time the child's thread used in its measured window, in ns.
    pub cpu_ns: u64,
    /// Wall time of that window, in ns.
    pub wall_ns: u64,
}

/// Runs `child_fn` in a forked child and `parent_fn` here, on the two sides of `mechanism`.
///
/// `watchdog` bounds the child's whole life (it is killed by `SIGALRM` after it).
pub(crate) fn run_pair<T>(
    mechanism: &dyn Mechanism,
    pattern: Pattern,
    size: usize,
    pinning: Pinning,
    watchdog: Duration,
    child_fn: impl FnOnce(&mut dyn Side) -> Result<ChildStats, LabError>,
    parent_fn: impl FnOnce(&mut dyn Side) -> Result<T, LabError>,
) -> Result<(T, ChildStats), LabError> {
    let pair = mechanism.setup(pattern, size)?;
    let report = ChildReport::new()?;
    let mut parent_side = Some(pair.parent);
    let child_side = pair.child;
    let watchdog_secs = u32::try_from(watchdog.as_secs().max(1)).unwrap_or(u32::MAX);
    let pid = fork_child(pinning.child_cpu, watchdog_secs, || {
        if let Some(parent_side) = parent_side.take() {
            parent_side.abandon();
        }
        let mut side = child_side;
        let result = side.start().and_then(|()| child_fn(&mut *side));
        if result.is_err() {
            side.break_channel();
        }
        drop(side);
        report.finish(&result);
        if result.is_ok() {
            0
        } else {
            CHILD_EXIT_FAILED
        }
    })?;
    // In the parent, the closure (and the child side it owned) has been dropped unexecuted.
    let mut side = parent_side.expect("the child-only closure did not run in the parent");
    let result = side.start().and_then(|()| parent_fn(&mut *side));
    drop(side);
    let end = wait_child(
        pid,
        if result.is_ok() {
            CHILD_EXIT_TIMEOUT
        } else {
            CHILD_EXIT_AFTER_FAILURE
        },
    );
    // When both sides failed, the child's error is usually the cause and the parent's the
    // symptom ("peer closed"), so report the child's first and keep both.
    match (result, end) {
        (Ok(value), Ok(ChildEnd::Exited(0))) => Ok((value, report.stats())),
        (Err(parent), Ok(ChildEnd::Exited(0))) => Err(parent),
        (Ok(_), Ok(end)) => Err(LabError::Child {
            detail: report.failure(end),
        }),
        (Err(parent), Ok(end)) => Err(LabError::Child {
            detail: format!(
                "{}; the parent side then failed: {parent}",
                report.failure(end)
            ),
        }),
        (Ok(_), Err(wait)) => Err(wait),
        (Err(parent), Err(wait)) => Err(LabError::Child {
            detail: format!("{wait}; the parent side failed first: {parent}"),
        }),
    }
}

/// The child's result, in a page of memory shared with the parent.
pub(super) struct ChildReport {
    region: SharedRegion,
}

const STATUS_OFFSET: usize = 0;
const CPU_OFFSET: usize = 8;
const WALL_OFFSET: usize = 16;
const LEN_OFFSET: usize = 24;
const TEXT_OFFSET: usize = 64;
const STATUS_OK: u64 = 1;
const STATUS_FAILED: u64 = 2;

impl ChildReport {
    pub(super) fn new() -> Result<Self, LabError> {
        Ok(Self {
            region: SharedRegion::new(TEXT_OFFSET + MESSAGE_BYTES)?,
        })
    }

    /// Called by the child: records its stats or its error, without allocating.
    pub(super) fn finish(&self, result: &Result<ChildStats, LabError>) {
        // Relaxed everywhere: the parent reads only after reaping the child, and waitpid
        // orders the child's whole life before that.
        let word = |offset| self.region.atomic_u64(offset);
        match result {
            Ok(stats) => {
                word(CPU_OFFSET).store(stats.cpu_ns, Ordering::Relaxed);
                word(WALL_OFFSET).store(stats.wall_ns, Ordering::Relaxed);
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
    pub(super) fn stats(&self) -> ChildStats {
        ChildStats {
            cpu_ns: self.region.atomic_u64(CPU_OFFSET).load(Ordering::Relaxed),
            wall_ns: self.region.atomic_u64(WALL_OFFSET).load(Ordering::Relaxed),
        }
    }

    /// Called by the parent after reaping a failed child: what went wrong, in words.
    pub(super) fn failure(&self, end: ChildEnd) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanisms::pipe::Pipe;
    use std::time::Instant;

    fn pinning() -> Pinning {
        Pinning::choose().expect("affinity")
    }

    #[test]
    fn a_failing_child_is_reported_with_its_reason() {
        let _lock = crate::FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = [0u8; 64];
        let err = run_pair(
            &Pipe,
            Pattern::PingPong,
            64,
            pinning(),
            Duration::from_secs(10),
            |_| {
                Err(LabError::Integrity {
                    detail: "deliberate child failure".into(),
                })
            },
            |side| side.recv(&mut buf),
        )
        .expect_err("the child failed");
        let text = err.to_string();
        assert!(text.contains("deliberate child failure"), "{text}");
        assert!(text.contains("peer closed"), "{text}");
    }

    #[test]
    fn a_hung_child_is_ended_by_its_watchdog_and_the_parent_returns() {
        let _lock = crate::FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = [0u8; 64];
        let started = Instant::now();
        let err = run_pair(
            &Pipe,
            Pattern::PingPong,
            64,
            pinning(),
            Duration::from_secs(1),
            |_| loop {
                std::thread::sleep(Duration::from_millis(10));
            },
            |side| side.recv(&mut buf),
        )
        .expect_err("the child hung");
        assert!(err.to_string().contains("watchdog"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_childs_stats_reach_the_parent() {
        let _lock = crate::FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let ((), stats) = run_pair(
            &Pipe,
            Pattern::Stream,
            8,
            pinning(),
            Duration::from_secs(10),
            |side| {
                side.send(&[1; 8])?;
                Ok(ChildStats {
                    cpu_ns: 11,
                    wall_ns: 22,
                })
            },
            |side| side.recv(&mut [0; 8]).map(|_| ()),
        )
        .expect("both sides succeed");
        assert_eq!(
            stats,
            ChildStats {
                cpu_ns: 11,
                wall_ns: 22
            }
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
}
