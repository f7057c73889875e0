//! [`Guarded`]: how each Python object holds its shmsock value.
//!
//! The shmsock types are `Send` but not `Sync` (one thread uses a connection at a time), and
//! a Python object can be reached from any thread, so the value lives in a mutex that a call
//! *tries* to take: a second thread gets `shmsock.InUse` at once instead of waiting behind a
//! `recv` that may never return (and, holding the GIL, blocking the first thread's checks
//! for Ctrl-C). `close()` from another thread asks the busy call to stop: it raises `Closed`
//! within one wait slice and the value is closed then.
//!
//! **Fork.** A child made by `os.fork()` inherits the parent's connections: the same shared
//! memory and sockets. Using or even closing them there would write into the parent's
//! connections (a close would tell the parent's peer that the connection ended). So every
//! object remembers the process that made it; in any other process its methods raise
//! `shmsock.Forked` and dropping it leaks the value (`mem::forget`: no close, no unmap, no
//! write) instead of closing it.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::errors::{err, Kind};

/// This process's id, refreshed in a child after `os.fork()` (see [`after_fork_in_child`]),
/// so that methods compare pids without a system call.
static CURRENT_PID: AtomicI32 = AtomicI32::new(0);

/// The pid of this process, asked of the kernel.
pub(crate) fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// Records this process's pid (at import).
pub(crate) fn init_pid() {
    CURRENT_PID.store(getpid(), Ordering::Relaxed);
}

/// Called by `os.register_at_fork(after_in_child=...)`: the child has a new pid.
#[pyfunction]
pub(crate) fn after_fork_in_child() {
    init_pid();
}

/// True in a process other than `pid`, the one that made an object (cheap: no system call).
pub(crate) fn forked_from(pid: i32) -> bool {
    CURRENT_PID.load(Ordering::Relaxed) != pid
}

/// The error of an object used in a child process.
pub(crate) fn forked_error(what: &str, pid: i32) -> PyErr {
    err(
        Kind::Forked,
        format!(
            "this {what} was created in process {pid}, the parent of this one (os.fork()); a \
             child cannot use it (it would write into the parent's connection): create a new \
             one in the child"
        ),
    )
}

/// How long `close()` waits for a call of another thread to notice that it must stop.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// A shmsock value owned by a Python object: see the module docs.
pub(crate) struct Guarded<T> {
    /// The Python class name, for messages.
    what: &'static str,
    /// The endpoint, for messages.
    endpoint: String,
    /// The process that made the value.
    pid: i32,
    value: Mutex<Option<T>>,
    /// `close()` asked a busy call to stop.
    closing: AtomicBool,
}

impl<T: Send> Guarded<T> {
    /// Wraps `value`, made in this process for `endpoint`.
    pub(crate) fn new(what: &'static str, endpoint: String, value: T) -> Self {
        Guarded {
            what,
            endpoint,
            pid: getpid(),
            value: Mutex::new(Some(value)),
            closing: AtomicBool::new(false),
        }
    }

    /// The endpoint.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Set when `close()` asked a busy call to stop: wait loops look at it between slices.
    pub(crate) fn closing(&self) -> &AtomicBool {
        &self.closing
    }

    fn closed_error(&self) -> PyErr {
        err(
            Kind::Closed,
            format!("{} {} is closed", self.what, self.endpoint),
        )
    }

    /// The lock, if no other thread holds it (a poisoned lock is taken as it is: a panic
    /// was turned into an exception and left the value consistent or closed).
    fn try_lock(&self) -> Option<MutexGuard<'_, Option<T>>> {
        match self.value.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Runs `f` on the value: `InUse` if another thread is using it, `Closed` once closed,
    /// `Forked` in a child process. If `close()` was called meanwhile, the value is closed
    /// when `f` returns.
    pub(crate) fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut T) -> PyResult<R>,
    ) -> PyResult<R> {
        if forked_from(self.pid) {
            return Err(forked_error(self.what, self.pid));
        }
        let Some(mut guard) = self.try_lock() else {
            return Err(err(
                Kind::InUse,
                format!(
                    "{} {} is in use by another thread: a {} serves one thread at a time; \
                     give each thread its own, or guard it with a lock",
                    self.what, self.endpoint, self.what
                ),
            ));
        };
        let Some(value) = guard.as_mut() else {
            return Err(self.closed_error());
        };
        let result = f(value);
        if self.closing.load(Ordering::Relaxed) {
            let value = guard.take();
            drop(guard);
            close_value(py, value);
        }
        result
    }

    /// Runs `f` on the value if it is open and no other thread holds it (for a `Drop`,
    /// which cannot wait or raise); returns whether `f` ran.
    pub(crate) fn try_now(&self, f: impl FnOnce(&mut T)) -> bool {
        if forked_from(self.pid) {
            return false;
        }
        match self.try_lock() {
            Some(mut guard) => match guard.as_mut() {
                Some(value) => {
                    f(value);
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    /// True once closed (or taken away by `close()`).
    pub(crate) fn is_closed(&self) -> bool {
        match self.try_lock() {
            Some(g) => g.is_none(),
            None => self.closing.load(Ordering::Relaxed),
        }
    }

    /// `<shmsock.WHAT ENDPOINT{details}>`, with ` closed` at the end once closed: the
    /// `repr()` of the object that owns the value.
    pub(crate) fn repr(&self, details: &str) -> String {
        let state = if self.is_closed() { " closed" } else { "" };
        format!("<shmsock.{} {}{details}{state}>", self.what, self.endpoint)
    }

    /// Closes the value (dropping it with the GIL released: a `tcp://` publisher delivers
    /// what is queued first). In a child process it is forgotten instead. If another thread
    /// is in a call, that call is asked to stop (it raises `Closed` within one wait slice);
    /// this waits up to half a second for it, then leaves the closing to it.
    pub(crate) fn close(&self, py: Python<'_>) {
        self.closing.store(true, Ordering::Relaxed);
        let started = Instant::now();
        loop {
            if let Some(mut guard) = self.try_lock() {
                let value = guard.take();
                drop(guard);
                if forked_from(self.pid) {
                    std::mem::forget(value);
                } else {
                    close_value(py, value);
                }
                return;
            }
            if started.elapsed() >= CLOSE_WAIT {
                return; // the busy call closes it when it returns
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(1)));
        }
    }
}

/// Drops `value` with the GIL released.
fn close_value<T: Send>(py: Python<'_>, value: Option<T>) {
    if let Some(value) = value {
        py.detach(move || drop(value));
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        let value = match self.value.get_mut() {
            Ok(v) => v.take(),
            Err(p) => p.into_inner().take(),
        };
        if getpid() != self.pid {
            // Inherited through fork(): closing it would close the parent's connection.
            std::mem::forget(value);
        }
        // Otherwise dropped here, GIL held: a Python object being destroyed cannot release
        // it. Only a `tcp://`/`unix://` publisher with queued messages takes long to drop;
        // close() it first to drop it without the GIL.
    }
}
