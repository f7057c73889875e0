//! The glue to tokio every async type uses: registering fds with the reactor and running
//! blocking handshakes on the blocking pool.

use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};

/// Registers a duplicate of `fd` with the current tokio reactor (the original stays with
/// its owner; the registration ends when the duplicate is dropped).
pub(super) fn register(
    endpoint: &str,
    fd: BorrowedFd<'_>,
    interest: Interest,
) -> Result<AsyncFd<OwnedFd>> {
    let dup = fd
        .try_clone_to_owned()
        .map_err(|e| Error::io(format!("{endpoint}: duplicating a socket for tokio"), e))?;
    register_owned(endpoint, dup, interest)
}

/// Registers `fd` itself with the current tokio reactor.
pub(super) fn register_owned(
    endpoint: &str,
    fd: OwnedFd,
    interest: Interest,
) -> Result<AsyncFd<OwnedFd>> {
    crate::sys::register_with_reactor(fd, interest).map_err(|e| reactor_error(endpoint, e))
}

/// The error of a failed registration or readiness wait.
pub(super) fn reactor_error(endpoint: &str, e: std::io::Error) -> Error {
    Error::io(format!("{endpoint}: tokio reactor"), e)
}

/// Runs a blocking step (a handshake) on tokio's blocking pool and waits for it.
pub(super) async fn blocking<T: Send + 'static>(
    endpoint: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    joined(endpoint, tokio::task::spawn_blocking(f).await)
}

/// The result of a blocking task: its panic goes on in the caller; a task cancelled by a
/// runtime shutting down is an I/O error.
pub(super) fn joined<T>(
    endpoint: &str,
    r: std::result::Result<Result<T>, tokio::task::JoinError>,
) -> Result<T> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io(
            format!("{endpoint}: handshake task"),
            std::io::Error::other(e.to_string()),
        )),
    }
}
