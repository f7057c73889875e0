//! How a blocking call waits: [`wait`].
//!
//! A call first tries once holding the GIL (no wait, so no GIL hand-off: with other Python
//! threads running, giving the GIL up can cost a whole switch interval). If that has to
//! wait, it waits with the GIL released, in slices of at most [`SLICE`]: between two slices
//! it takes the GIL back and runs `PyErr_CheckSignals`, so Ctrl-C raises
//! `KeyboardInterrupt` within a slice, and it looks whether another thread closed the
//! object. Each slice is the Rust `*_timeout` call, which gives up without changing
//! anything ([`shmsock::Error::is_out_of_time`]), so slicing loses no message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{err, raise, Kind};

/// Longest wait with the GIL released between two looks at signals and `close()`.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// Why a wait ended without a result.
pub(crate) enum Failed {
    /// The Rust call failed (the caller may look at the error before raising it).
    Rust(shmsock::Error),
    /// A signal handler raised (`KeyboardInterrupt`), or the object was closed meanwhile.
    Py(PyErr),
}

impl From<Failed> for PyErr {
    fn from(f: Failed) -> PyErr {
        match f {
            Failed::Rust(e) => raise(e),
            Failed::Py(e) => e,
        }
    }
}

/// A `timeout=` argument in seconds: `None` waits for ever, `0` tries once.
pub(crate) fn timeout(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(
            Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX),
        )),
        Some(s) if s == f64::INFINITY => Ok(None),
        Some(s) => Err(PyValueError::new_err(format!(
            "timeout must be None or a number of seconds >= 0, not {s}"
        ))),
    }
}

/// Runs `op(slice)` until it gives something other than "out of time", for at most
/// `timeout` (`None`: for ever): once with the GIL, then in slices without it (see the
/// module docs). `closing`: the object's close request.
pub(crate) fn wait<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    closing: &AtomicBool,
    mut op: impl FnMut(Duration) -> shmsock::Result<T> + Send,
) -> Result<T, Failed> {
    let started = Instant::now();
    let mut last = match op(Duration::ZERO) {
        Err(e) if e.is_out_of_time() => e,
        done => return done.map_err(Failed::Rust),
    };
    let deadline = timeout.and_then(|t| started.checked_add(t));
    loop {
        let slice = match deadline {
            // No timeout, or one too far away to represent: for ever.
            None => SLICE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Failed::Rust(whole_wait(last, started)));
                }
                left.min(SLICE)
            }
        };
        match py.detach(|| op(slice)) {
            Err(e) if e.is_out_of_time() => last = e,
            done => return done.map_err(Failed::Rust),
        }
        py.check_signals().map_err(Failed::Py)?;
        if closing.load(Ordering::Relaxed) {
            return Err(Failed::Py(err(
                Kind::Closed,
                "closed by another thread while this call waited",
            )));
        }
    }
}

/// The error of a wait that ran out of time, telling the whole wait rather than the last
/// slice (a publisher's `SlowSubscriber` says how long it waited).
fn whole_wait(last: shmsock::Error, started: Instant) -> shmsock::Error {
    match last {
        shmsock::Error::SlowSubscriber { endpoint, pid, .. } => shmsock::Error::SlowSubscriber {
            endpoint,
            pid,
            waited: started.elapsed(),
        },
        other => other,
    }
}
