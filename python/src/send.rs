//! What `Conn` and `Publisher` share as senders: sending a message ([`send`], through
//! [`Sender`]) and lending loan slots ([`Lender`]); one macro implements both for the
//! state of each, whose Rust calls have the same names.

use std::time::Duration;

use pyo3::prelude::*;

use shmsock::{DetachedLoan, Loan};

use crate::buffer::Input;
use crate::conn::ConnState;
use crate::errors::raise;
use crate::guard::Guarded;
use crate::loan::Lender;
use crate::pubsub::PublisherState;
use crate::recv::Patience;
use crate::wait::wait;

/// What sends: the state of a `Conn` or `Publisher` object.
pub(crate) trait Sender: Send {
    /// `try_send` (`None`) or `send_timeout`.
    fn send(&mut self, msg: &[u8], timeout: Option<Duration>) -> shmsock::Result<()>;
}

/// Implements [`Sender`] and [`Lender`] for a state type over its field that holds the
/// Rust end.
macro_rules! sending_state {
    ($($state:ty => $end:ident),*) => {$(
        impl Sender for $state {
            fn send(&mut self, msg: &[u8], timeout: Option<Duration>) -> shmsock::Result<()> {
                match timeout {
                    None => self.$end.try_send(msg),
                    Some(t) => self.$end.send_timeout(msg, t),
                }
            }
        }

        impl Lender for $state {
            fn attach(&mut self, loan: DetachedLoan) -> Loan<'_> {
                self.$end.attach(loan)
            }

            fn lend(&mut self, len: usize, timeout: Option<Duration>) -> shmsock::Result<Loan<'_>> {
                match timeout {
                    None => self.$end.try_loan(len),
                    Some(t) => self.$end.loan_timeout(len, t),
                }
            }
        }
    )*};
}

sending_state!(ConnState => end, PublisherState => publisher);

/// Sends `data` (any bytes-like object, read in place) with `inner`: once (`Try`,
/// `WouldBlock` if it would wait) or waiting at most this long.
pub(crate) fn send<S: Sender>(
    py: Python<'_>,
    inner: &Guarded<S>,
    data: &Bound<'_, PyAny>,
    patience: Patience,
) -> PyResult<()> {
    let input = Input::read(data)?;
    let msg = input.as_slice();
    inner.with(py, |s| match patience {
        Patience::Try => s.send(msg, None).map_err(raise),
        Patience::Wait(timeout) => {
            wait(py, timeout, inner.closing(), |t| s.send(msg, Some(t))).map_err(PyErr::from)
        }
    })
}
