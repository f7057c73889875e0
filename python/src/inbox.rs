//! `Inbox` (many writers, one reader, `shm://` only) and `WriterId`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::raise;
use crate::guard::Guarded;
use crate::options;
use crate::recv::{recv_bytes, recv_into, Patience, Receiving};
use crate::wait::timeout as parse_timeout;

/// Who sent an inbox message: the writer's process id and the order in which the inbox
/// accepted it (from 0). Equal ids are the same writer; hashable.
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
    /// The writer's process id.
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

/// The receiving end of many writers: `Inbox.bind("shm://name")`; every `Conn.connect` to
/// that name is a writer with a ring of its own. The inbox takes one message from each
/// writer in turn, so a flooding writer cannot starve a quiet one; one writer's messages
/// arrive in order. `shm://` only.
#[pyclass(name = "Inbox", module = "shmsock", frozen)]
pub(crate) struct PyInbox {
    inner: Guarded<InboxState>,
    socket_path: String,
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
    /// Binds `endpoint` (an `shm://` name; other schemes raise `Unsupported`). Keyword
    /// options: wait_strategy, spin_budget (seconds), handshake_timeout (seconds),
    /// allowed_uids. Each writer chooses its own ring capacity when it connects.
    #[staticmethod]
    #[pyo3(signature = (endpoint, **options))]
    fn bind(py: Python<'_>, endpoint: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let opts = options::parse("Inbox.bind", options::INBOX, options)?;
        let inbox = py
            .detach(|| shmsock::Inbox::bind_with(endpoint, opts))
            .map_err(raise)?;
        Ok(PyInbox {
            socket_path: inbox.socket_path().display().to_string(),
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

    /// The bound endpoint.
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
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
