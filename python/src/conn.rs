//! `Listener` and `Conn`: one peer, both ways (ZeroMQ's PAIR over `tcp://`/`unix://`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{is_end, raise};
use crate::guard::Guarded;
use crate::loan::{self, Book, Owner, PyLoan, PySample, SharedBook};
use crate::options;
use crate::recv::{recv_bytes, recv_into, recv_sample, Patience, Receiving};
use crate::send;
use crate::wait::{timeout as parse_timeout, wait};

/// A bound endpoint that accepts connections, like a listening socket:
/// `Listener.bind("shm://name")`, then `accept()`. Closing it (or the end of a `with`
/// block) removes its name; accepted connections live on.
#[pyclass(name = "Listener", module = "shmsock", frozen)]
pub(crate) struct PyListener {
    inner: Guarded<shmsock::Listener>,
    socket_path: String,
    endpoints: Vec<String>,
}

#[pymethods]
impl PyListener {
    /// Binds `endpoint` (`shm://NAME`, `unix:///path`, `tcp://HOST:PORT`; `tcp://HOST:0`
    /// picks a free port, see `endpoint`). Keyword options: ring_capacity (bytes of each
    /// accepted connection's outbound ring), wait_strategy, spin_budget (seconds),
    /// loan_pool=(slots, slot_bytes), handshake_timeout (seconds), allowed_uids,
    /// max_message_len, max_connections, heartbeat=(interval, timeout); over
    /// `tcp://`/`unix://`, CURVE: curve_secret (this server's key pair: the secret key, or
    /// `(public, secret)` as `curve_keypair()` gives it) and curve_allow (the client public
    /// keys admitted).
    #[staticmethod]
    #[pyo3(signature = (endpoint, **options))]
    fn bind(py: Python<'_>, endpoint: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::bind_all(py, vec![endpoint.to_owned()], options)
    }

    /// Binds every endpoint of `endpoints` (a list of at least one, any mix of schemes):
    /// `accept` returns the next connection from whichever. Options as for `bind`.
    #[staticmethod]
    #[pyo3(signature = (endpoints, **options))]
    fn bind_all(
        py: Python<'_>,
        endpoints: Vec<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = options::parse("Listener.bind", options::LISTENER, options)?;
        let listener = py
            .detach(|| {
                let eps: Vec<&str> = endpoints.iter().map(String::as_str).collect();
                shmsock::Listener::bind_all(&eps, opts)
            })
            .map_err(raise)?;
        Ok(PyListener {
            socket_path: listener.socket_path().display().to_string(),
            endpoints: listener.endpoints().to_vec(),
            inner: Guarded::new("Listener", listener.endpoint().to_owned(), listener),
        })
    }

    /// Waits for a peer (at most `timeout` seconds; `None`: for ever) and returns the
    /// connection. Peers that fail their handshake are logged and dropped, never returned.
    #[pyo3(signature = (*, timeout = None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyConn> {
        let timeout = parse_timeout(timeout)?;
        let conn = self.inner.with(py, |l| {
            wait(py, timeout, self.inner.closing(), |t| l.accept_timeout(t)).map_err(PyErr::from)
        })?;
        Ok(PyConn::new(conn))
    }

    /// The (first) bound endpoint (for `tcp://HOST:0`, with the port the OS chose).
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// Every bound endpoint, in the order bound.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    /// The rendezvous socket's path (diagnostics; empty for `tcp://`).
    #[getter]
    fn socket_path(&self) -> &str {
        &self.socket_path
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stops listening and removes the name (a call blocked in `accept` in another thread
    /// raises `Closed`). Closing twice does nothing.
    fn close(&self, py: Python<'_>) {
        self.inner.close(py);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _ty: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        self.inner.repr("")
    }
}

/// What a `Conn` object holds: the `shmsock::Conn` and `recv()`'s scratch buffer.
pub(crate) type ConnState = Receiving<shmsock::Conn>;

/// A connection: ordered, reliable messages both ways. Made by `Conn.connect(endpoint)`
/// or `Listener.accept()`. `send` waits while the peer's ring is full; `recv` waits for a
/// message. After the peer closed or died, `recv` first returns everything it sent, then
/// raises `PeerClosed` or `PeerGone`. One thread uses a connection at a time (`InUse`
/// otherwise). Closing it (or the end of a `with` block) closes it cleanly.
#[pyclass(name = "Conn", module = "shmsock", frozen)]
pub(crate) struct PyConn {
    pub(crate) inner: Guarded<ConnState>,
    book: SharedBook,
    peer_pid: i32,
    max_message_len: usize,
}

impl PyConn {
    pub(crate) fn new(conn: shmsock::Conn) -> Self {
        PyConn {
            peer_pid: conn.peer_pid(),
            max_message_len: conn.max_message_len(),
            book: Arc::new(Mutex::new(Book::default())),
            inner: Guarded::new("Conn", conn.endpoint().to_owned(), Receiving::new(conn)),
        }
    }

    fn send_with(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        patience: Patience,
    ) -> PyResult<()> {
        send::send(py, &self.inner, data, patience)
    }

    fn recv_with<'py>(&self, py: Python<'py>, patience: Patience) -> PyResult<Bound<'py, PyBytes>> {
        recv_bytes(py, &self.inner, patience).map(|(bytes, ())| bytes)
    }

    fn recv_into_with(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        patience: Patience,
    ) -> PyResult<usize> {
        recv_into(py, &self.inner, buffer, patience).map(|(n, ())| n)
    }

    fn loan_with(
        slf: &Bound<'_, Self>,
        size: usize,
        patience: Option<Option<Duration>>,
    ) -> PyResult<PyLoan> {
        let py = slf.py();
        let this = slf.get();
        let owner = Owner::Conn(slf.clone().unbind());
        this.inner.with(py, |s| {
            loan::take_loan(
                py,
                owner,
                this.book.clone(),
                s,
                this.inner.closing(),
                size,
                patience,
            )
        })
    }

    fn sample_with(
        &self,
        py: Python<'_>,
        patience: Option<Option<Duration>>,
    ) -> PyResult<PySample> {
        recv_sample(py, &self.inner, patience)
    }
}

#[pymethods]
impl PyConn {
    /// Connects to `endpoint` (`shm://NAME`, `unix:///path`, `tcp://HOST:PORT`; over
    /// `tcp://`/`unix://` the peer may be a pyzmq PAIR socket). Waits for the handshake
    /// (at most handshake_timeout, 5 s by default). Keyword options: ring_capacity (bytes
    /// of this side's outbound ring), wait_strategy ('adaptive', 'busy_poll',
    /// 'blocking'), spin_budget (seconds), loan_pool=(slots, slot_bytes),
    /// handshake_timeout (seconds), allowed_uids, max_message_len, heartbeat=(interval,
    /// timeout); CURVE over `tcp://`/`unix://`: curve_server (the server's public key) and
    /// curve_secret (this client's key pair, for a server with an allow-list).
    #[staticmethod]
    #[pyo3(signature = (endpoint, **options))]
    fn connect(
        py: Python<'_>,
        endpoint: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = options::parse("Conn.connect", options::CONN, options)?;
        let conn = py
            .detach(|| shmsock::Conn::connect_with(endpoint, opts))
            .map_err(raise)?;
        Ok(PyConn::new(conn))
    }

    /// Sends one message: any bytes-like object (`bytes`, `bytearray`, `memoryview`, a
    /// contiguous numpy array...), read in place. Waits while the peer's ring is full, at
    /// most `timeout` seconds (`None`: for ever; `TimedOut` after it, nothing sent).
    /// `TooLarge` if it can never fit.
    #[pyo3(signature = (data, *, timeout = None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        self.send_with(py, data, Patience::Wait(parse_timeout(timeout)?))
    }

    /// Sends one message if there is room now, else raises `WouldBlock`.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.send_with(py, data, Patience::Try)
    }

    /// Receives the next message as `bytes`, waiting at most `timeout` seconds (`None`:
    /// for ever; `TimedOut` after it). `PeerClosed`/`PeerGone` once the peer ended and
    /// everything it sent was received.
    #[pyo3(signature = (*, timeout = None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        self.recv_with(py, Patience::Wait(parse_timeout(timeout)?))
    }

    /// Receives a message if one is queued, else raises `WouldBlock`.
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.recv_with(py, Patience::Try)
    }

    /// Receives the next message into `buffer` (a writable bytes-like object, e.g. a
    /// `bytearray` or numpy array) and returns its length. `BufferTooSmall` (attributes
    /// len, buf) leaves the message queued. `timeout` as for `recv`.
    #[pyo3(signature = (buffer, *, timeout = None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        self.recv_into_with(py, buffer, Patience::Wait(parse_timeout(timeout)?))
    }

    /// `recv_into` if a message is queued, else raises `WouldBlock`.
    fn try_recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.recv_into_with(py, buffer, Patience::Try)
    }

    /// Takes a slot of this side's loan pool for a message of `size` bytes, to fill in place
    /// and `send()` without a copy through the ring. Waits while every slot is lent, at most
    /// `timeout` seconds. Needs loan_pool=(slots, slot_bytes) over `shm://` (`NoLoanPool`
    /// otherwise); over `tcp://`/`unix://` a loan is a plain buffer.
    #[pyo3(signature = (size, *, timeout = None))]
    fn loan(slf: &Bound<'_, Self>, size: usize, timeout: Option<f64>) -> PyResult<PyLoan> {
        Self::loan_with(slf, size, Some(parse_timeout(timeout)?))
    }

    /// `loan` if a slot is free now, else raises `WouldBlock`.
    fn try_loan(slf: &Bound<'_, Self>, size: usize) -> PyResult<PyLoan> {
        Self::loan_with(slf, size, None)
    }

    /// Slots of this side's loan pool lent (not released by the peer yet) or being filled.
    fn loans_outstanding(&self, py: Python<'_>) -> PyResult<usize> {
        self.inner.with(py, |s| {
            loan::return_orphans(&self.book, s);
            s.end.loans_outstanding().map_err(raise)
        })
    }

    /// Receives the next message as a `Sample`: a zero-copy view of the sender's slot when
    /// it was sent as a loan over `shm://`, a copy otherwise. `timeout` as for `recv`.
    #[pyo3(signature = (*, timeout = None))]
    fn recv_sample(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PySample> {
        self.sample_with(py, Some(parse_timeout(timeout)?))
    }

    /// `recv_sample` if a message is queued, else raises `WouldBlock`.
    fn try_recv_sample(&self, py: Python<'_>) -> PyResult<PySample> {
        self.sample_with(py, None)
    }

    /// The endpoint of this connection.
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// The peer's process id (0 when unknown: `tcp://` peers).
    #[getter]
    fn peer_pid(&self) -> i32 {
        self.peer_pid
    }

    /// Largest message `send` accepts.
    #[getter]
    fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Closes the connection cleanly: the peer receives everything sent so far, then
    /// `PeerClosed`. A call blocked in another thread raises `Closed`. `BufferError` while
    /// a memoryview or array of one of its loans is alive. Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        loan::close_book(&self.book, "Conn", self.inner.endpoint())?;
        self.inner.close(py);
        Ok(())
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next message; the iteration ends when the peer ended (`PeerClosed`,
    /// `PeerGone`).
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        match self.recv_with(py, Patience::Wait(None)) {
            Err(e) if is_end(py, &e) => Ok(None),
            other => other.map(Some),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _ty: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        self.inner.repr(&format!(" peer_pid={}", self.peer_pid))
    }
}
