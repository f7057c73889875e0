//! The lab's error type.
//!
//! One enum for the whole lab: every variant says which step failed and carries the OS error or
//! the detail a reader needs to act on it. A mechanism that fails turns into an `unavailable` row
//! of the report; only errors that make the whole run meaningless (no clock, no mapping for the
//! control block, an unwritable JSON path) are returned from [`crate::run`].

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in the lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What the lab was doing, e.g. "creating a pipe".
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The peer made no progress for too long while this side was spinning on shared memory.
    #[error("peer stalled: no progress for {waited:?} while {what}")]
    Stalled {
        /// What this side was waiting for.
        what: &'static str,
        /// How long it waited.
        waited: Duration,
    },
    /// The peer closed its end (end of file, broken pipe, or a closed connection).
    #[error("peer closed its end while {what}")]
    PeerClosed {
        /// What this side was doing.
        what: &'static str,
    },
    /// A message arrived with the wrong length, sequence number or bytes.
    #[error("payload check failed: {detail}")]
    Integrity {
        /// What was expected and what arrived.
        detail: String,
    },
    /// A message does not have the size the mechanism was set up for.
    #[error("message of {len} bytes given to a mechanism set up for {size}-byte messages")]
    WrongSize {
        /// Length of the message (or of the receive buffer).
        len: usize,
        /// Size the mechanism was set up for.
        size: usize,
    },
    /// A mechanism was asked for something it does not do.
    #[error("{mechanism} does not support {what}")]
    Unsupported {
        /// The mechanism.
        mechanism: &'static str,
        /// What it was asked for.
        what: &'static str,
    },
    /// The shmsock library reported an error.
    #[error("shmsock {what}: {detail}")]
    Shmsock {
        /// The library call, e.g. "connect".
        what: &'static str,
        /// The library's error, rendered.
        detail: String,
    },
    /// libzmq (loaded at run time by the network experiment) reported an error.
    #[error("libzmq {what}: {detail}")]
    Libzmq {
        /// The libzmq call, e.g. "zmq_bind".
        what: &'static str,
        /// libzmq's error text and errno.
        detail: String,
    },
    /// The `dbus` mechanism's bus (the `dbus-daemon` the lab starts, or a connection to it)
    /// failed.
    #[error("D-Bus {what}: {detail}")]
    Dbus {
        /// What the lab was doing, e.g. "starting dbus-daemon".
        what: &'static str,
        /// What went wrong, and what to do about it when the user can do something.
        detail: String,
    },
    /// gRPC (the `grpc-uds` and `grpc-tcp` rows, tonic) reported an error.
    #[error("{mechanism}: gRPC {what} failed: {detail}")]
    Grpc {
        /// The row, e.g. `grpc-uds`.
        mechanism: &'static str,
        /// The step or call, e.g. "Echo call".
        what: &'static str,
        /// tonic's status code and message, or its transport error and their causes.
        detail: String,
    },
    /// The Python driver of the `python` experiment could not run, or reported a failure.
    #[error("Python driver ({interpreter}): {detail}")]
    Python {
        /// The interpreter (`python3`, or `$SHMSOCK_PYTHON`).
        interpreter: String,
        /// What failed, in the driver's words when it said.
        detail: String,
    },
    /// The child process failed, was killed, or did not exit in time.
    #[error("child process: {detail}")]
    Child {
        /// What the child reported, or how it ended.
        detail: String,
    },
    /// A mechanism name given in [`crate::LabOptions::mechanisms`] is not known.
    #[error("unknown mechanism {name:?}; known mechanisms: {known}")]
    UnknownMechanism {
        /// The name that was asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// An experiment name given in [`crate::LabOptions::only`] is not known.
    #[error("unknown experiment {name:?}; known experiments: {known}")]
    UnknownExperiment {
        /// The name that was asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// A report file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An error, with the step of the lab it happened in.
    #[error("{context}: {source}")]
    Context {
        /// The step, e.g. "pipe ping-pong at 64 B".
        context: String,
        /// What went wrong.
        #[source]
        source: Box<LabError>,
    },
    /// The JSON report could not be written.
    #[error("writing the JSON report to {}: {source}", path.display())]
    Json {
        /// Where the report was to be written.
        path: PathBuf,
        /// The I/O or encoding error.
        #[source]
        source: io::Error,
    },
}

impl LabError {
    /// Wraps `self` with the step of the lab it happened in.
    pub(crate) fn context(context: impl Into<String>) -> impl FnOnce(LabError) -> LabError {
        let context = context.into();
        move |source| LabError::Context {
            context,
            source: Box::new(source),
        }
    }

    /// Wraps an OS error (`rustix::io::Errno` or `std::io::Error`) with what the lab was doing.
    pub(crate) fn os<E: Into<io::Error>>(what: &'static str) -> impl FnOnce(E) -> LabError {
        move |err| LabError::Os {
            what,
            source: err.into(),
        }
    }
}
