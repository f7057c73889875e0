//! Receiving a message as `bytes` ([`recv_bytes`]), into the caller's buffer
//! ([`recv_into`]) or as a `Sample` ([`recv_sample`]), shared by `Conn`, `Subscriber` and
//! `Inbox` through [`Receiver`], [`SampleReceiver`] and [`Receiving`].
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

use crate::buffer::Input;
use crate::errors::raise;
use crate::guard::Guarded;
use crate::loan::{self, PySample};
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

/// A receiving end of the Rust API (`Conn`, `Subscriber`, `Inbox`): its receive calls as
/// one.
pub(crate) trait Receiver: Send {
    /// What a receive tells besides the length: an inbox's writer, `()` otherwise.
    type From: Send;

    /// Receives into `buf` without waiting (`None`, the `try_*` call) or waiting at most
    /// this long (the `*_timeout` call); returns the length and [`Self::From`].
    fn receive(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> shmsock::Result<(usize, Self::From)>;
}

/// A receiving end that also receives samples (`Conn`, `Subscriber`; an inbox has none).
pub(crate) trait SampleReceiver: Receiver {
    /// Receives a sample without waiting (`None`) or waiting at most this long.
    fn sample(&mut self, timeout: Option<Duration>) -> shmsock::Result<shmsock::Sample>;
}

/// `Conn` and `Subscriber`, whose receive calls have the same names and tell nothing
/// besides the length.
macro_rules! one_peer_receiver {
    ($($end:ty),*) => {$(
        impl Receiver for $end {
            type From = ();

            fn receive(
                &mut self,
                buf: &mut [u8],
                timeout: Option<Duration>,
            ) -> shmsock::Result<(usize, ())> {
                match timeout {
                    None => self.try_recv(buf),
                    Some(t) => self.recv_timeout(buf, t),
                }
                .map(|n| (n, ()))
            }
        }

        impl SampleReceiver for $end {
            fn sample(&mut self, timeout: Option<Duration>) -> shmsock::Result<shmsock::Sample> {
                match timeout {
                    None => self.try_recv_sample(),
                    Some(t) => self.recv_sample_timeout(t),
                }
            }
        }
    )*};
}

one_peer_receiver!(shmsock::Conn, shmsock::Subscriber);

impl Receiver for shmsock::Inbox {
    type From = shmsock::WriterId;

    fn receive(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> shmsock::Result<(usize, shmsock::WriterId)> {
        match timeout {
            None => self.try_recv_from(buf),
            Some(t) => self.recv_from_timeout(buf, t),
        }
    }
}

/// What a receiving Python object holds: the Rust end and `recv()`'s scratch buffer.
pub(crate) struct Receiving<R> {
    /// The Rust end.
    pub(crate) end: R,
    /// `recv()`'s scratch buffer (see the module docs).
    scratch: Vec<u8>,
}

impl<R> Receiving<R> {
    /// Wraps `end`; the scratch buffer is allocated by the first `recv()`.
    pub(crate) fn new(end: R) -> Self {
        Receiving {
            end,
            scratch: Vec::new(),
        }
    }
}

/// Receives one message of `inner` as `bytes` (see the module docs), with what the
/// receive tells besides ([`Receiver::From`]).
pub(crate) fn recv_bytes<'py, R: Receiver>(
    py: Python<'py>,
    inner: &Guarded<Receiving<R>>,
    patience: Patience,
) -> PyResult<(Bound<'py, PyBytes>, R::From)> {
    inner.with(py, |s| {
        let Receiving { end, scratch } = s;
        recv_bytes_with(py, scratch, patience, inner.closing(), |buf, t| {
            end.receive(buf, t)
        })
    })
}

/// Receives one message of `inner` into `buffer` (a writable bytes-like object); returns
/// its length and what the receive tells besides. `BufferTooSmall` leaves it queued.
pub(crate) fn recv_into<R: Receiver>(
    py: Python<'_>,
    inner: &Guarded<Receiving<R>>,
    buffer: &Bound<'_, PyAny>,
    patience: Patience,
) -> PyResult<(usize, R::From)> {
    let mut out = Input::write(buffer)?;
    let buf = out.as_mut_slice();
    inner.with(py, |s| match patience {
        Patience::Try => s.end.receive(buf, None).map_err(raise),
        Patience::Wait(timeout) => wait(py, timeout, inner.closing(), |t| {
            s.end.receive(buf, Some(t))
        })
        .map_err(PyErr::from),
    })
}

/// Receives one message of `inner` as a `Sample`: without waiting (`None`) or waiting at
/// most this long (`Some(None)`: for ever).
pub(crate) fn recv_sample<R: SampleReceiver>(
    py: Python<'_>,
    inner: &Guarded<Receiving<R>>,
    patience: Option<Option<Duration>>,
) -> PyResult<PySample> {
    inner.with(py, |s| {
        loan::recv_sample(py, patience, inner.closing(), |t| s.end.sample(t))
    })
}

/// [`recv_bytes`] with the receive call `recv` and the scratch buffer `scratch`.
fn recv_bytes_with<'py, X: Send>(
    py: Python<'py>,
    scratch: &mut Vec<u8>,
    patience: Patience,
    closing: &AtomicBool,
    mut recv: impl FnMut(&mut [u8], Option<Duration>) -> shmsock::Result<(usize, X)> + Send,
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
