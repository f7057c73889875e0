//! Receiving a message as `bytes` ([`recv_bytes`]), shared by `Conn`, `Subscriber` and
//! `Inbox`.
//!
//! A message is received into a scratch buffer that the object keeps (one copy out of the
//! ring, one into the new `bytes`); a message larger than that buffer stays queued
//! (`BufferTooSmall` consumes nothing) and is received straight into a `bytes` object of
//! its size. `recv_into` (one copy, into the caller's buffer) and `recv_sample` (none)
//! avoid the second copy.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::raise;
use crate::wait::{wait, Failed};

/// Size of the scratch buffer of each receiving object.
pub(crate) const SCRATCH_BYTES: usize = 64 * 1024;

/// How a receive waits: `Try` (no wait, `WouldBlock`) or `Wait` (at most this long,
/// `None`: for ever).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Patience {
    Try,
    Wait(Option<Duration>),
}

/// One receive call of the Rust API: into a buffer, without waiting (`None`) or waiting at
/// most this long; returns the length and what else the call tells (an inbox's writer).
pub(crate) trait RecvFn<X>:
    FnMut(&mut [u8], Option<Duration>) -> shmsock::Result<(usize, X)> + Send
{
}
impl<X, F: FnMut(&mut [u8], Option<Duration>) -> shmsock::Result<(usize, X)> + Send> RecvFn<X>
    for F
{
}

/// Receives one message as `bytes` (see the module docs) with `recv`.
pub(crate) fn recv_bytes<'py, X: Send>(
    py: Python<'py>,
    scratch: &mut Vec<u8>,
    patience: Patience,
    closing: &AtomicBool,
    mut recv: impl RecvFn<X>,
) -> PyResult<(Bound<'py, PyBytes>, X)> {
    if scratch.len() < SCRATCH_BYTES {
        scratch.resize(SCRATCH_BYTES, 0);
    }
    loop {
        let got = match patience {
            Patience::Try => recv(scratch, None).map_err(Failed::Rust),
            Patience::Wait(timeout) => wait(py, timeout, closing, |t| recv(scratch, Some(t))),
        };
        let len = match got {
            Ok((n, x)) => return Ok((PyBytes::new(py, &scratch[..n]), x)),
            Err(Failed::Rust(shmsock::Error::BufferTooSmall { len, .. })) => len,
            Err(e) => return Err(e.into()),
        };
        // The message is queued: take it into a `bytes` of its size, without waiting.
        let mut taken = None;
        let bytes = PyBytes::new_with(py, len, |buf| {
            taken = Some(recv(buf, None));
            Ok(())
        })?;
        match taken.expect("new_with called the closure") {
            Ok((n, x)) if n == len => return Ok((bytes, x)),
            Ok((n, x)) => return Ok((PyBytes::new(py, &bytes.as_bytes()[..n]), x)),
            // Not the same message any more (a lagging subscriber's was overwritten):
            // receive again.
            Err(shmsock::Error::BufferTooSmall { .. } | shmsock::Error::WouldBlock) => {}
            Err(e) => return Err(raise(e)),
        }
    }
}
