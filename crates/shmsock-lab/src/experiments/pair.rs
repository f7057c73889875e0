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
//! The child's result travels back through a [`crate::process::ChildReport`], read by the
//! parent after the child has been reaped ([`crate::process::Children`]).

use std::time::Duration;

use crate::error::LabError;
use crate::host::Pinning;
use crate::mechanisms::{Mechanism, Pattern, Side};
use crate::process::{outcome, ChildStats, Children};

/// How long the parent waits for the child to exit once its own side is done.
const CHILD_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the parent waits for the child after its own side failed, before killing it.
const CHILD_EXIT_AFTER_FAILURE: Duration = Duration::from_secs(1);

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
    let mut parent_side = Some(pair.parent);
    let child_side = pair.child;
    let mut children = Children::new();
    children.fork("", pinning.child_cpu, watchdog, || {
        if let Some(parent_side) = parent_side.take() {
            parent_side.abandon();
        }
        let mut side = child_side;
        let result = side.start().and_then(|()| child_fn(&mut *side));
        if result.is_err() {
            side.break_channel();
        }
        result
    })?;
    // In the parent, the closure (and the child side it owned) has been dropped unexecuted.
    let mut side = parent_side.expect("the child-only closure did not run in the parent");
    let result = side.start().and_then(|()| parent_fn(&mut *side));
    drop(side);
    // When both sides failed, the child's error is usually the cause and the parent's the
    // symptom ("peer closed"), so give the child a moment to report it before killing it.
    let reaped = children.reap(if result.is_ok() {
        CHILD_EXIT_TIMEOUT
    } else {
        CHILD_EXIT_AFTER_FAILURE
    });
    let (value, stats) = outcome("parent side", result, reaped)?;
    Ok((value, stats.first().copied().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanisms::pipe::PIPE;
    use std::time::Instant;

    fn pinning() -> Pinning {
        Pinning::choose().expect("affinity")
    }

    #[test]
    fn a_failing_child_is_reported_with_its_reason() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut buf = [0u8; 64];
        let err = run_pair(
            &PIPE,
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
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut buf = [0u8; 64];
        let started = Instant::now();
        let err = run_pair(
            &PIPE,
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
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let ((), stats) = run_pair(
            &PIPE,
            Pattern::Stream,
            8,
            pinning(),
            Duration::from_secs(10),
            |side| {
                side.send(&[1; 8])?;
                Ok(ChildStats {
                    cpu_ns: 11,
                    wall_ns: 22,
                    sys_ns: 5,
                    voluntary_switches: 3,
                    involuntary_switches: 4,
                    rw_syscalls: Some(6),
                })
            },
            |side| side.recv(&mut [0; 8]).map(|_| ()),
        )
        .expect("both sides succeed");
        assert_eq!(
            stats,
            ChildStats {
                cpu_ns: 11,
                wall_ns: 22,
                sys_ns: 5,
                voluntary_switches: 3,
                involuntary_switches: 4,
                rw_syscalls: Some(6),
            }
        );
    }
}
