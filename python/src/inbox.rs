//! `Inbox` (many writers, one reader, on one or several endpoints of any transport) and
//! `WriterId`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::raise;
use crate::guard::Guarded;
use crate::options;
use crate::recv::{recv_bytes, recv_into, Patience, Receiving};
use crate::wait::timeout as parse_timeout;

/// Who sent an inbox message: the writer's process id (0 for a `tcp://` writer) and the
/// order in which the inbox accepted it (from 0, unique across its endpoints). Equal ids are
/// the same writer; hashable.
#[pyclass(
    name = "WriterId",
    module = "shmsock",
    frozen,
    eq,
    hash,
    skip_from_py_object
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PyWriterId {
    /// The writer's process id (0 over `tcp://`).
    #[pyo3(get)]
    pid: i32,
    /// The order in which the inbox accepted the writer, from 0.
    #[pyo3(get)]
    serial: u64,
}

impl From<shmsock::WriterId> for PyWriterId {
    fn from(w: shmsock::WriterId) -> Self {
        PyWriterId {
            pid: w.pid,
            serial: w.serial,
        }
    }
}

#[pymethods]
impl PyWriterId {
    fn __repr__(&self) -> String {
        format!("WriterId(pid={}, serial={})", self.pid, self.serial)
    }
}

/// What an `Inbox` object holds: the `shmsock::Inbox` and `recv()`'s scratch buffer.
pub(crate) type InboxState = Receiving<shmsock::Inbox>;

/// The receiving end of many writers: `Inbox.bind("shm://name")`, or
/// `Inbox.bind_all([...])` for several endpoints of any transport; every `Conn.connect` to
/// one of them (or a pyzmq PAIR socket, over `tcp://`/`unix://`) is a writer. The inbox
/// takes one message from each writer in turn, whatever its transport, so a flooding writer
/// cannot starve a quiet one; one writer's messages arrive in order.
#[pyclass(name = "Inbox", module = "shmsock", frozen)]
pub(crate) struct PyInbox {
    inner: Guarded<InboxState>,
    socket_path: String,
    endpoints: Vec<String>,
}

impl PyInbox {
    fn recv_with<'py>(
        &self,
        py: Python<'py>,
        patience: Patience,
    ) -> PyResult<(PyWriterId, Bound<'py, PyBytes>)> {
        recv_bytes(py, &self.inner, patience).map(|(bytes, from)| (from.into(), bytes))
    }

    fn recv_into_with(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        patience: Patience,
    ) -> PyResult<(PyWriterId, usize)> {
        recv_into(py, &self.inner, buffer, patience).map(|(n, from)| (from.into(), n))
    }
}

#[pymethods]
impl PyInbox {
    /// Binds `endpoint` (`shm://name`, `unix:///path` or `tcp://host:port`). Keyword
    /// options: wait_strategy, spin_budget (seconds), handshake_timeout (seconds),
    /// allowed_uids; for `tcp://`/`unix://` writers also ring_capacity (what is read ahead of
    /// each), max_message_len, max_connections, heartbeat, curve_secret, curve_allow. Each
    /// `shm://` writer chooses its own ring capacity when it connects.
    #[staticmethod]
    #[pyo3(signature = (endpoint, **options))]
    fn bind(py: Python<'_>, endpoint: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::bind_all(py, vec![endpoint.to_owned()], options)
    }

    /// Binds every endpoint of `endpoints` (a list of at least one, any mix of schemes): the
    /// writers of all of them feed this inbox. Options as for `bind`.
    #[staticmethod]
    #[pyo3(signature = (endpoints, **options))]
    fn bind_all(
        py: Python<'_>,
        endpoints: Vec<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = options::parse("Inbox.bind", options::INBOX, options)?;
        let inbox = py
            .detach(|| {
                let eps: Vec<&str> = endpoints.iter().map(String::as_str).collect();
                shmsock::Inbox::bind_all(&eps, opts)
            })
            .map_err(raise)?;
        Ok(PyInbox {
            socket_path: inbox.socket_path().display().to_string(),
            endpoints: inbox.endpoints().to_vec(),
            inner: Guarded::new("Inbox", inbox.endpoint().to_owned(), Receiving::new(inbox)),
        })
    }

    /// Receives the next message (from whichever writer's turn it is) as
    /// `(WriterId, bytes)`, waiting at most `timeout` seconds (`None`: for ever). With no
    /// writer connected it waits for one.
    #[pyo3(signature = (*, timeout = None))]
    fn recv_from<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(PyWriterId, Bound<'py, PyBytes>)> {
        self.recv_with(py, Patience::Wait(parse_timeout(timeout)?))
    }

    /// `recv_from` if a message is queued, else raises `WouldBlock`.
    fn try_recv_from<'py>(&self, py: Python<'py>) -> PyResult<(PyWriterId, Bound<'py, PyBytes>)> {
        self.recv_with(py, Patience::Try)
    }

    /// The next message as `bytes`, without its writer. `timeout` as for `recv_from`.
    #[pyo3(signature = (*, timeout = None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        self.recv_with(py, Patience::Wait(parse_timeout(timeout)?))
            .map(|(_, bytes)| bytes)
    }

    /// Receives the next message into `buffer` (writable bytes-like) and returns
    /// `(WriterId, length)`; `BufferTooSmall` leaves it queued (and it stays that writer's
    /// turn).
    #[pyo3(signature = (buffer, *, timeout = None))]
    fn recv_from_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<(PyWriterId, usize)> {
        self.recv_into_with(py, buffer, Patience::Wait(parse_timeout(timeout)?))
    }

    /// `recv_from_into` if a message is queued, else raises `WouldBlock`.
    fn try_recv_from_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
    ) -> PyResult<(PyWriterId, usize)> {
        self.recv_into_with(py, buffer, Patience::Try)
    }

    /// Connected writers, counting those that ended with messages still unread.
    fn writer_count(&self, py: Python<'_>) -> PyResult<usize> {
        self.inner.with(py, |s| Ok(s.end.writer_count()))
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

    /// The rendezvous socket's path (diagnostics).
    #[getter]
    fn socket_path(&self) -> &str {
        &self.socket_path
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stops accepting writers and closes every connection (writers see `PeerClosed`).
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
