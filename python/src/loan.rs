//! Zero-copy from Python: `Loan` (a writable slot of the sender's pool) and `Sample` (a
//! read-only view of the slot a message arrived in), both exporting the buffer protocol, so
//! `memoryview`, `numpy.frombuffer` and `ctypes.c_char.from_buffer` work on them in place.
//!
//! **Loans.** A Rust `Loan` borrows its `Conn` or `Publisher`; a Python object cannot hold a
//! borrow, so a `Loan` object holds a [`DetachedLoan`] (the slot, owned) and a reference to
//! its lender, and attaches it again only to send it or give it back. The connection stays
//! usable meanwhile, and several loans may be out at once (up to the pool's slots). The
//! slot's address is taken once, when the loan is made; it stays valid until the loan is
//! sent or released, or its lender closed, and the lender's [`Book`] makes sure no export
//! outlives that: `send()`, `release()` and the lender's `close()` raise `BufferError`
//! while a `memoryview` or array of the loan is alive (a buffer written after the send
//! would change the bytes under the receiver), and `memoryview(loan)` of a sent or
//! released loan, or of a loan whose lender is closed, raises `BufferError`. A loan
//! object dropped unsent gives its slot back (if its lender is busy in another thread at
//! that moment, at the lender's next `loan()`).
//!
//! **Samples.** A `Sample` owns a Rust `Sample` (which keeps the sender's pool mapped), so
//! its bytes stay valid as long as it is open, whatever happens to the connection. `close()`
//! hands the slot back to the sender; it raises `BufferError` while an export is alive
//! (delete the numpy array, or release the `memoryview`, first), and every access after
//! it raises `Closed`. A sample never closed is closed when the last reference to it (an
//! export's included) goes away. The bytes are in the *sender's* memory: a correct sender
//! never writes a slot it lent until it comes back, but a buggy or hostile one could change
//! them while Python reads them (as the Rust `Sample::as_slice` warns); copy them
//! (`bytes(sample)`) before validating what you then rely on.

use std::ffi::c_int;
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use shmsock::{DetachedLoan, Loan};

use crate::buffer::export;
use crate::conn::PyConn;
use crate::errors::{err, raise, Kind};
use crate::guard::{forked_error, forked_from, getpid};
use crate::pubsub::PyPublisher;
use crate::wait::{timeout as parse_timeout, wait};

/// What a lender (a `Conn` or `Publisher` object) knows about its loans, shared with them.
#[derive(Default)]
pub(crate) struct Book {
    /// The lender was closed: its pool is (or is about to be) unmapped.
    closed: bool,
    /// Live buffer exports of its loans.
    exports: usize,
    /// Loans dropped while the lender was busy in another thread: returned by its next
    /// `loan()`.
    orphans: Vec<DetachedLoan>,
}

/// A lender's [`Book`], shared with its loans.
pub(crate) type SharedBook = Arc<Mutex<Book>>;

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the lender closed, unless a loan of it is exported (`BufferError`).
pub(crate) fn close_book(book: &Mutex<Book>, what: &str, endpoint: &str) -> PyResult<()> {
    let mut b = lock(book);
    if b.exports > 0 {
        return Err(PyBufferError::new_err(format!(
            "cannot close {what} {endpoint}: {} memoryview(s) or array(s) of its loans are \
             alive; release them (del the array, or memoryview.release()) first",
            b.exports
        )));
    }
    b.closed = true;
    b.orphans.clear();
    Ok(())
}

/// What lends: the state of a `Conn` or `Publisher` object.
pub(crate) trait Lender: Send {
    /// `Conn::attach` / `Publisher::attach`.
    fn attach(&mut self, loan: DetachedLoan) -> Loan<'_>;
    /// `try_loan` (`None`) or `loan_timeout`.
    fn lend(&mut self, len: usize, timeout: Option<Duration>) -> shmsock::Result<Loan<'_>>;
}

/// Returns the slots of loans dropped while the lender was busy.
pub(crate) fn return_orphans(book: &Mutex<Book>, lender: &mut dyn Lender) {
    let orphans = std::mem::take(&mut lock(book).orphans);
    for loan in orphans {
        drop(lender.attach(loan));
    }
}

/// The lender of a loan.
pub(crate) enum Owner {
    Conn(Py<PyConn>),
    Publisher(Py<PyPublisher>),
}

impl Owner {
    /// Runs `f` on the lender (errors as the lender's methods: `InUse`, `Closed`, `Forked`),
    /// with its close request.
    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn Lender, &AtomicBool) -> PyResult<R>,
    ) -> PyResult<R> {
        match self {
            Owner::Conn(c) => {
                let g = &c.get().inner;
                g.with(py, |state| f(state, g.closing()))
            }
            Owner::Publisher(p) => {
                let g = &p.get().inner;
                g.with(py, |state| f(state, g.closing()))
            }
        }
    }

    /// Runs `f` on the lender if it is free and open now (for `Drop`).
    fn try_now(&self, f: impl FnOnce(&mut dyn Lender)) -> bool {
        match self {
            Owner::Conn(c) => c.get().inner.try_now(|s| f(s)),
            Owner::Publisher(p) => p.get().inner.try_now(|s| f(s)),
        }
    }
}

/// Where a loan's bytes are.
struct SlotPtr(NonNull<u8>);

// SAFETY: the pointer is only an address: the bytes behind it are reached through the
// buffer protocol under the rules of the module docs (one owner, the `Loan` object, whose
// exports the `Book` counts), never through shared references across threads.
unsafe impl Send for SlotPtr {}
// SAFETY: as above; the pointer itself is never written after it is made.
unsafe impl Sync for SlotPtr {}

struct LoanState {
    /// `None` once sent or released.
    loan: Option<DetachedLoan>,
    /// Live buffer exports of this loan.
    exports: usize,
}

/// A slot of the sender's loan pool, writable in place: fill it through the buffer
/// protocol (`memoryview(loan)`, `numpy.frombuffer(loan, dtype)`, `ctypes` `from_buffer`),
/// then `send()` it. Over `shm://` only a 24-byte frame crosses the ring and the receiver
/// reads the slot where it was written; over `tcp://` and `unix://` a loan is a plain
/// buffer, sent as an ordinary message. Release every export before `send()` (it raises
/// `BufferError` otherwise: bytes written after the send would change under the receiver).
/// A loan not sent (`release()`, a `with` block's end, or dropping it) gives the slot back.
#[pyclass(name = "Loan", module = "shmsock", frozen)]
pub(crate) struct PyLoan {
    owner: Owner,
    book: SharedBook,
    state: Mutex<LoanState>,
    ptr: SlotPtr,
    len: usize,
    zero_copy: bool,
    pid: i32,
}

/// Takes a loan of `len` bytes from `lender` (waiting as `patience` says: `None` is a try)
/// and makes its Python object.
pub(crate) fn take_loan(
    py: Python<'_>,
    owner: Owner,
    book: SharedBook,
    lender: &mut dyn Lender,
    closing: &AtomicBool,
    len: usize,
    patience: Option<Option<Duration>>,
) -> PyResult<PyLoan> {
    return_orphans(&book, lender);
    let detached = match patience {
        None => lender.lend(len, None).map(Loan::detach).map_err(raise)?,
        Some(timeout) => wait(py, timeout, closing, |t| {
            lender.lend(len, Some(t)).map(Loan::detach)
        })?,
    };
    // The slot's address, taken once (see the module docs).
    let mut loan = lender.attach(detached);
    let ptr = NonNull::new(loan.as_mut_ptr()).unwrap_or(NonNull::dangling());
    let detached = loan.detach();
    Ok(PyLoan {
        owner,
        book,
        len: detached.len(),
        zero_copy: detached.is_zero_copy(),
        state: Mutex::new(LoanState {
            loan: Some(detached),
            exports: 0,
        }),
        ptr: SlotPtr(ptr),
        pid: getpid(),
    })
}

impl PyLoan {
    fn state(&self) -> PyResult<MutexGuard<'_, LoanState>> {
        if forked_from(self.pid) {
            return Err(forked_error("Loan", self.pid));
        }
        match self.state.try_lock() {
            Ok(s) => Ok(s),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(err(
                Kind::InUse,
                "this Loan is being sent by another thread",
            )),
        }
    }

    fn spent_error() -> PyErr {
        err(
            Kind::Closed,
            "this Loan was already sent or released; take a new one with loan()",
        )
    }

    fn exported(exports: usize, doing: &str) -> PyErr {
        PyBufferError::new_err(format!(
            "cannot {doing} this Loan: {exports} memoryview(s) or array(s) of it are alive; \
             release them first (del the array, or memoryview.release()), so that nothing \
             writes the slot after it is sent"
        ))
    }

    /// Gives the slot of an unsent loan back: at once if the lender is free, else at its
    /// next `loan()` (nothing to do once it is closed: its pool went with it).
    fn give_back(&self, loan: DetachedLoan) {
        let mut slot = Some(loan);
        self.owner.try_now(|lender| {
            if let Some(loan) = slot.take() {
                drop(lender.attach(loan));
            }
        });
        if let Some(loan) = slot {
            let mut book = lock(&self.book);
            if !book.closed {
                book.orphans.push(loan);
            }
        }
    }
}

#[pymethods]
impl PyLoan {
    /// Sends the loan: waits for room in the ring (a publisher: for its slowest subscriber)
    /// at most `timeout` seconds (`None`: for ever). On `TimedOut` (a publisher:
    /// `SlowSubscriber`) or `KeyboardInterrupt` nothing was sent and the loan is still
    /// yours, filled as it was; after any other outcome it is spent.
    #[pyo3(signature = (*, timeout = None))]
    fn send(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = parse_timeout(timeout)?;
        let mut st = self.state()?;
        if st.exports > 0 {
            return Err(Self::exported(st.exports, "send"));
        }
        if st.loan.is_none() {
            return Err(Self::spent_error());
        }
        self.owner.with(py, |lender, closing| {
            let mut slot = st.loan.take();
            let sent = wait(py, timeout, closing, |t| {
                let mut loan = lender.attach(slot.take().expect("put back after each slice"));
                let sent = loan.send_timeout(t);
                if matches!(&sent, Err(e) if e.is_out_of_time()) {
                    slot = Some(loan.detach());
                }
                sent
            });
            st.loan = slot; // kept if the wait gave up (out of time, Ctrl-C, closed)
            sent.map_err(PyErr::from)
        })
    }

    /// Gives the slot back without sending (a spent loan: nothing to do). `BufferError`
    /// while an export is alive.
    fn release(&self) -> PyResult<()> {
        let mut st = self.state()?;
        if st.exports > 0 {
            return Err(Self::exported(st.exports, "release"));
        }
        if let Some(loan) = st.loan.take() {
            drop(st);
            self.give_back(loan);
        }
        Ok(())
    }

    /// Length of the loan in bytes.
    fn __len__(&self) -> usize {
        self.len
    }

    /// True for a slot of a `shm://` loan pool (zero-copy), false for the plain buffer of a
    /// `tcp://`/`unix://` loan.
    #[getter]
    fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// True once sent or released.
    #[getter]
    fn spent(&self) -> PyResult<bool> {
        Ok(self.state()?.loan.is_none())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Releases the loan if it was not sent.
    fn __exit__(
        &self,
        _ty: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = match self.state.try_lock() {
            Ok(s) if s.loan.is_none() => "spent",
            Ok(_) => "unsent",
            Err(_) => "being sent",
        };
        format!(
            "<shmsock.Loan {} bytes{} {state}>",
            self.len,
            if self.zero_copy { " zero-copy" } else { "" }
        )
    }

    /// The slot, writable, through the buffer protocol.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        // SAFETY: `view` is what CPython handed `__getbuffer__`.
        unsafe { clear_view(view) };
        let this = slf.get();
        let mut st = this
            .state()
            .map_err(|e| PyBufferError::new_err(e.to_string()))?;
        if st.loan.is_none() {
            return Err(PyBufferError::new_err(
                "this Loan was already sent or released: its slot is not yours any more",
            ));
        }
        let mut book = lock(&this.book);
        if book.closed {
            return Err(PyBufferError::new_err(
                "the connection or publisher of this Loan is closed: its pool is gone",
            ));
        }
        // The slot (or plain buffer) of `len` bytes at `ptr` stays valid and ours until the
        // loan is sent or released, or its lender closed, and each of those refuses while
        // `exports` (counted below, in the loan and in the lender's book) is not 0.
        // SAFETY: so the memory outlives the view, which `__releasebuffer__` uncounts.
        unsafe {
            export(
                view,
                flags,
                slf.as_any(),
                this.ptr.0.as_ptr(),
                this.len,
                true,
            )?;
        }
        st.exports += 1;
        book.exports += 1;
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.exports -= 1;
        lock(&self.book).exports -= 1;
    }
}

impl Drop for PyLoan {
    fn drop(&mut self) {
        let loan = match self.state.get_mut() {
            Ok(s) => s.loan.take(),
            Err(p) => p.into_inner().loan.take(),
        };
        if let Some(loan) = loan {
            if getpid() == self.pid {
                self.give_back(loan);
            }
            // In a forked child the slot is the parent's: leave it.
        }
    }
}

/// Sets a view's `obj` to NULL, as CPython expects of a failed `__getbuffer__`.
///
/// # Safety
/// `view` is null or points to a `Py_buffer` (the one `__getbuffer__` was handed).
unsafe fn clear_view(view: *mut ffi::Py_buffer) {
    if !view.is_null() {
        // SAFETY: a non-null `view` points to a `Py_buffer` (our caller's promise).
        unsafe { (*view).obj = std::ptr::null_mut() };
    }
}

/// A received message: a read-only view of the sender's slot when it came as a loan over
/// `shm://` (zero-copy), a copy otherwise. Read it through the buffer protocol
/// (`memoryview(sample)`, `numpy.frombuffer(sample, dtype)`) or copy it (`bytes(sample)`,
/// `tobytes()`), then `close()` it (or use `with`) to hand the slot back to the sender.
/// `close()` raises `BufferError` while an export is alive; after it, every access raises
/// `Closed`. The bytes are in the sender's memory: a hostile sender could change them while
/// you read them (copy before validating).
#[pyclass(name = "Sample", module = "shmsock", frozen)]
pub(crate) struct PySample {
    state: Mutex<SampleState>,
    len: usize,
    zero_copy: bool,
    pid: i32,
}

struct SampleState {
    /// `None` once closed.
    sample: Option<shmsock::Sample>,
    /// Live buffer exports.
    exports: usize,
}

impl PySample {
    /// The Python object of `sample`.
    pub(crate) fn new(sample: shmsock::Sample) -> Self {
        PySample {
            len: sample.len(),
            zero_copy: sample.is_loan(),
            state: Mutex::new(SampleState {
                sample: Some(sample),
                exports: 0,
            }),
            pid: getpid(),
        }
    }

    fn state(&self) -> PyResult<MutexGuard<'_, SampleState>> {
        if forked_from(self.pid) {
            return Err(forked_error("Sample", self.pid));
        }
        // Held only for short, non-waiting steps: blocking is fine.
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn closed_error() -> PyErr {
        err(
            Kind::Closed,
            "this Sample is closed: its slot went back to the sender",
        )
    }
}

#[pymethods]
impl PySample {
    /// Hands the slot back to the sender. `BufferError` while a `memoryview` or array of
    /// the sample is alive; closing twice does nothing.
    fn close(&self) -> PyResult<()> {
        let mut st = self.state()?;
        if st.exports > 0 {
            return Err(PyBufferError::new_err(format!(
                "cannot close this Sample: {} memoryview(s) or array(s) of it are alive;                  release them first (del the array, or memoryview.release()), or copy what                  you keep (bytes(sample))",
                st.exports
            )));
        }
        let sample = st.sample.take();
        drop(st);
        drop(sample);
        Ok(())
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.state()?.sample.is_none())
    }

    /// True if the bytes are viewed in the sender's pool (a loan over `shm://`), false for
    /// a copy.
    #[getter]
    fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Length in bytes.
    fn __len__(&self) -> usize {
        self.len
    }

    /// A copy of the bytes.
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let st = self.state()?;
        let sample = st.sample.as_ref().ok_or_else(Self::closed_error)?;
        PyBytes::new_with(py, sample.len(), |buf| {
            sample.copy_to(buf);
            Ok(())
        })
    }

    /// A copy of the bytes (`bytes(sample)`).
    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.tobytes(py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes the sample.
    fn __exit__(
        &self,
        _ty: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let closed = self
            .state
            .lock()
            .map(|s| s.sample.is_none())
            .unwrap_or(false);
        format!(
            "<shmsock.Sample {} bytes{}{}>",
            self.len,
            if self.zero_copy { " zero-copy" } else { "" },
            if closed { " closed" } else { "" }
        )
    }

    /// The bytes, read-only, through the buffer protocol.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        // SAFETY: `view` is what CPython handed `__getbuffer__`.
        unsafe { clear_view(view) };
        let this = slf.get();
        let mut st = this
            .state()
            .map_err(|e| PyBufferError::new_err(e.to_string()))?;
        let Some(sample) = st.sample.as_ref() else {
            return Err(PyBufferError::new_err(
                "this Sample is closed: its slot went back to the sender",
            ));
        };
        // SAFETY: the bytes stay until the sample is dropped, which `close()` refuses while
        // `exports` (counted below) is not 0; the sender is trusted not to write a slot it
        // lent, as `Sample::as_slice` requires (the module and class docs say so).
        let bytes = unsafe { sample.as_slice() };
        // SAFETY: `bytes` stays valid until `__releasebuffer__` (above); read-only.
        unsafe {
            export(
                view,
                flags,
                slf.as_any(),
                bytes.as_ptr().cast_mut(),
                bytes.len(),
                false,
            )?;
        }
        st.exports += 1;
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).exports -= 1;
    }
}

impl Drop for PySample {
    fn drop(&mut self) {
        let sample = match self.state.get_mut() {
            Ok(s) => s.sample.take(),
            Err(p) => p.into_inner().sample.take(),
        };
        if getpid() != self.pid {
            // Inherited through fork(): releasing it would release the parent's slot.
            std::mem::forget(sample);
        }
    }
}

/// Receives a sample with `recv` (`None`: without waiting) and makes its Python object.
pub(crate) fn recv_sample(
    py: Python<'_>,
    patience: Option<Option<Duration>>,
    closing: &AtomicBool,
    mut recv: impl FnMut(Option<Duration>) -> shmsock::Result<shmsock::Sample> + Send,
) -> PyResult<PySample> {
    let sample = match patience {
        None => recv(None).map_err(raise)?,
        Some(timeout) => wait(py, timeout, closing, |t| recv(Some(t))).map_err(PyErr::from)?,
    };
    Ok(PySample::new(sample))
}
