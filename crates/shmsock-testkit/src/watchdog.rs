//! Bounded calls against hostile peers: a test that makes many calls against a peer that
//! scribbles on its shared memory must fail, with a message, as soon as one of them has
//! run longer than its bound, even if that call never returns.
//!
//! Measuring each call after it returned ([`Instant::elapsed`]) catches a slow call but
//! not a hung one: the test would sit until CI's own timeout kills it, with no word of
//! which call hung. So the calls run on a worker thread ([`watched`], or
//! [`spawn_watched`] when the test's thread has work of its own) and go through a
//! [`CallWatch`], which records when the call in flight started; the test's own thread
//! looks at that every few milliseconds and panics (failing the test) once a call has run
//! past the bound. A hung worker is left behind (it cannot be stopped from outside); the
//! test has failed by then and the process ends with the test run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the watching thread looks at the call in flight.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// No call in flight (the value of `Inner::started_ns` between calls).
const IDLE: u64 = u64::MAX;

/// The clock of one watched run: when the call in flight started, read by the watcher.
#[derive(Clone)]
pub struct CallWatch {
    inner: Arc<Inner>,
}

struct Inner {
    /// The instant the nanosecond counts below are measured from.
    base: Instant,
    /// When the call in flight started (ns since `base`), or [`IDLE`].
    started_ns: AtomicU64,
    /// The longest a call may take.
    bound: Duration,
    /// What the calls are made against, for failure messages.
    what: String,
    /// The number of calls made so far, for failure messages.
    calls: AtomicU64,
}

impl CallWatch {
    fn new(what: &str, bound: Duration) -> CallWatch {
        CallWatch {
            inner: Arc::new(Inner {
                base: Instant::now(),
                started_ns: AtomicU64::new(IDLE),
                bound,
                what: what.to_owned(),
                calls: AtomicU64::new(0),
            }),
        }
    }

    fn now_ns(&self) -> u64 {
        // A test run lasts far less than the 584 years a u64 of ns holds.
        u64::try_from(self.inner.base.elapsed().as_nanos()).unwrap_or(IDLE - 1)
    }

    /// Runs one call, timed: the watcher fails the test if it has not returned after the
    /// bound, and a call that returns late fails it here. Returns the call's result and
    /// how long it took.
    #[track_caller]
    pub fn call<T>(&self, call: impl FnOnce() -> T) -> (T, Duration) {
        let t = Instant::now();
        self.inner.started_ns.store(self.now_ns(), Ordering::SeqCst);
        let r = call();
        self.inner.started_ns.store(IDLE, Ordering::SeqCst);
        let took = t.elapsed();
        let n = self.inner.calls.fetch_add(1, Ordering::Relaxed);
        assert!(
            took < self.inner.bound,
            "call #{n} against {} took {took:?} (bound {:?})",
            self.inner.what,
            self.inner.bound
        );
        (r, took)
    }

    /// How long the call in flight has run, if one is in flight.
    fn in_flight(&self) -> Option<Duration> {
        let started = self.inner.started_ns.load(Ordering::SeqCst);
        (started != IDLE).then(|| Duration::from_nanos(self.now_ns().saturating_sub(started)))
    }
}

/// Runs `work` on a thread of its own while this thread watches the calls it makes
/// through the [`CallWatch`] it is given: panics (failing the test) as soon as one of
/// them has run `bound` without returning, naming `what` they were made against. Returns
/// what `work` returns; a panic in `work` (a failed assertion) is raised again here.
#[track_caller]
pub fn watched<T: Send + 'static>(
    what: &str,
    bound: Duration,
    work: impl FnOnce(&CallWatch) -> T + Send + 'static,
) -> T {
    spawn_watched(what, bound, work).join()
}

/// Starts `work` on a thread of its own, its calls made through a [`CallWatch`]; this
/// thread can go on (a hostile peer's scribbling, say), [`Watched::check`] now and then,
/// and [`Watched::join`] at the end. See [`watched`].
pub fn spawn_watched<T: Send + 'static>(
    what: &str,
    bound: Duration,
    work: impl FnOnce(&CallWatch) -> T + Send + 'static,
) -> Watched<T> {
    let watch = CallWatch::new(what, bound);
    let worker = {
        let watch = watch.clone();
        std::thread::Builder::new()
            .name(format!("watched: {what}"))
            .spawn(move || work(&watch))
            .unwrap_or_else(|e| panic!("spawning the thread that calls {what}: {e}"))
    };
    Watched { watch, worker }
}

/// A thread making watched calls ([`spawn_watched`]).
pub struct Watched<T> {
    watch: CallWatch,
    worker: JoinHandle<T>,
}

impl<T> Watched<T> {
    /// Whether the work has ended (returned or panicked).
    pub fn is_finished(&self) -> bool {
        self.worker.is_finished()
    }

    /// Fails the test if the call in flight has run past the bound.
    #[track_caller]
    pub fn check(&self) {
        if let Some(running) = self.watch.in_flight() {
            let inner = &self.watch.inner;
            assert!(
                running < inner.bound,
                "a call against {} has not returned after {running:?} (bound {:?}, call #{} \
                 of the run): it hangs",
                inner.what,
                inner.bound,
                inner.calls.load(Ordering::Relaxed)
            );
        }
    }

    /// Waits for the work to end, checking its calls all along; returns its result, or
    /// raises its panic again.
    #[track_caller]
    pub fn join(self) -> T {
        loop {
            if self.worker.is_finished() {
                return self
                    .worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            }
            self.check();
            std::thread::sleep(LOOK_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_calls_pass_and_return_the_work_s_result() {
        let n = watched("a quick peer", Duration::from_secs(2), |watch| {
            (0..100).map(|i| watch.call(|| i).0).sum::<u64>()
        });
        assert_eq!(n, 4950);
    }

    #[test]
    fn a_call_that_never_returns_fails_the_watcher_with_a_message() {
        let hang = std::panic::catch_unwind(|| {
            watched("a hanging peer", Duration::from_millis(50), |watch| {
                watch.call(|| std::thread::sleep(Duration::from_secs(3600)));
            })
        });
        let message = *hang
            .expect_err("the hang is a failure")
            .downcast::<String>()
            .expect("a formatted message");
        crate::assert_mentions(&message, &["a hanging peer", "has not returned", "hangs"]);
    }

    #[test]
    fn a_late_call_and_a_failed_assertion_in_the_work_fail_the_test() {
        let late = std::panic::catch_unwind(|| {
            let watch = CallWatch::new("a slow peer", Duration::from_millis(1));
            watch.call(|| std::thread::sleep(Duration::from_millis(20)));
        });
        assert!(late.is_err(), "a call past its bound fails");
        let failed = std::panic::catch_unwind(|| {
            watched("a peer", Duration::from_secs(2), |_| {
                panic!("the work's own check failed")
            })
        });
        let message = *failed
            .expect_err("raised again")
            .downcast::<&str>()
            .expect("the work's message");
        assert_eq!(message, "the work's own check failed");
    }
}
