//! `Publisher` and `Subscriber`: one to many, by topic prefix (ZeroMQ's PUB/SUB over
//! `tcp://`/`unix://`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::buffer::Input;
use crate::errors::{err, is_end, raise, Kind};
use crate::guard::Guarded;
use crate::loan::{self, Book, Owner, PyLoan, PySample, SharedBook};
use crate::options;
use crate::recv::{recv_bytes, recv_into, recv_sample, Patience, Receiving};
use crate::send;
use crate::wait::{timeout as parse_timeout, SLICE};

/// What a `Publisher` object holds.
pub(crate) struct PublisherState {
    /// The Rust end.
    pub(crate) publisher: shmsock::Publisher,
}

/// The sending side of publish/subscribe: `Publisher.bind(endpoint)`, then `send(msg)` to
/// every subscriber connected at the time whose topics match. `overflow='block'` (default)
/// waits for the slowest subscriber; `overflow='drop_oldest'` never waits, and a subscriber
/// that falls a whole ring behind gets `Lagged` with the number it lost. Subscribers join
/// at the next `send` (see `wait_for_subscribers`). Over `tcp://`/`unix://` it is a ZeroMQ
/// PUB socket (pyzmq SUB sockets subscribe to it).
#[pyclass(name = "Publisher", module = "shmsock", frozen)]
pub(crate) struct PyPublisher {
    pub(crate) inner: Guarded<PublisherState>,
    book: SharedBook,
    socket_path: String,
    max_message_len: usize,
    endpoints: Vec<String>,
}

impl PyPublisher {
    fn send_with(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        patience: Patience,
    ) -> PyResult<()> {
        send::send(py, &self.inner, data, patience)
    }

    fn loan_with(
        slf: &Bound<'_, Self>,
        size: usize,
        patience: Option<Option<Duration>>,
    ) -> PyResult<PyLoan> {
        let py = slf.py();
        let this = slf.get();
        let owner = Owner::Publisher(slf.clone().unbind());
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
}

#[pymethods]
impl PyPublisher {
    /// Binds `endpoint` (`shm://NAME`, `unix:///path`, `tcp://HOST:PORT`). Keyword options:
    /// ring_capacity (bytes; over `tcp://`/`unix://` each subscriber's queue),
    /// overflow ('block' or 'drop_oldest', or a shmsock.Overflow), wait_strategy,
    /// spin_budget (seconds), loan_pool=(slots, slot_bytes), handshake_timeout (seconds),
    /// allowed_uids, max_message_len, max_connections, heartbeat=(interval, timeout);
    /// CURVE over `tcp://`/`unix://`: curve_secret and curve_allow (as for `Listener.bind`);
    /// upgrade (bool, default True: local network subscribers move to shared memory).
    #[staticmethod]
    #[pyo3(signature = (endpoint, **options))]
    fn bind(py: Python<'_>, endpoint: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::bind_all(py, vec![endpoint.to_owned()], options)
    }

    /// Binds every endpoint of `endpoints` (a list of at least one, any mix of schemes):
    /// one publisher serving the subscribers of all of them. Options as for `bind`.
    #[staticmethod]
    #[pyo3(signature = (endpoints, **options))]
    fn bind_all(
        py: Python<'_>,
        endpoints: Vec<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = options::parse("Publisher.bind", options::PUBLISHER, options)?;
        let publisher = py
            .detach(|| {
                let eps: Vec<&str> = endpoints.iter().map(String::as_str).collect();
                shmsock::Publisher::bind_all(&eps, opts)
            })
            .map_err(raise)?;
        Ok(PyPublisher {
            socket_path: publisher.socket_path().display().to_string(),
            max_message_len: publisher.max_message_len(),
            endpoints: publisher.endpoints().to_vec(),
            book: Arc::new(Mutex::new(Book::default())),
            inner: Guarded::new(
                "Publisher",
                publisher.endpoint().to_owned(),
                PublisherState { publisher },
            ),
        })
    }

    /// Broadcasts one message (any bytes-like object, read in place). With
    /// overflow='block' it waits for the slowest subscriber, at most `timeout` seconds
    /// (`None`: for ever): `SlowSubscriber` (a `TimeoutError`, attribute pid) after it,
    /// nothing sent.
    #[pyo3(signature = (data, *, timeout = None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        self.send_with(py, data, Patience::Wait(parse_timeout(timeout)?))
    }

    /// Broadcasts one message if that needs no wait, else raises `WouldBlock`.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.send_with(py, data, Patience::Try)
    }

    /// Takes a slot of the publisher's loan pool for a message of `size` bytes, to fill in
    /// place and `send()` to every subscriber without a copy through the ring (they read it
    /// with `recv_sample`). A slot comes back once every subscriber is done with it. Needs
    /// loan_pool=(slots, slot_bytes) over `shm://`. `timeout` in seconds.
    #[pyo3(signature = (size, *, timeout = None))]
    fn loan(slf: &Bound<'_, Self>, size: usize, timeout: Option<f64>) -> PyResult<PyLoan> {
        Self::loan_with(slf, size, Some(parse_timeout(timeout)?))
    }

    /// `loan` if a slot is free now, else raises `WouldBlock`.
    fn try_loan(slf: &Bound<'_, Self>, size: usize) -> PyResult<PyLoan> {
        Self::loan_with(slf, size, None)
    }

    /// Slots of the loan pool not back yet (0 without a pool).
    fn loans_outstanding(&self, py: Python<'_>) -> PyResult<usize> {
        self.inner.with(py, |s| {
            loan::return_orphans(&self.book, s);
            Ok(s.publisher.loans_outstanding())
        })
    }

    /// Number of live subscribers (over `tcp://`/`unix://`: those whose first subscription
    /// arrived, so the next `send` reaches them).
    fn subscriber_count(&self, py: Python<'_>) -> PyResult<usize> {
        self.inner.with(py, |s| Ok(s.publisher.subscriber_count()))
    }

    /// Waits until at least `count` subscribers are connected (at most `timeout` seconds,
    /// `None`: for ever; `TimedOut` after it) and returns how many are.
    #[pyo3(signature = (count, *, timeout = None))]
    fn wait_for_subscribers(
        &self,
        py: Python<'_>,
        count: usize,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = parse_timeout(timeout)?;
        let started = Instant::now();
        self.inner.with(py, |s| loop {
            let n = s.publisher.subscriber_count();
            if n >= count {
                return Ok(n);
            }
            if timeout.is_some_and(|t| started.elapsed() >= t) {
                return Err(raise(shmsock::Error::TimedOut));
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(1).min(SLICE)));
            py.check_signals()?;
            if self
                .inner
                .closing()
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return Err(err(Kind::Closed, "closed by another thread while waiting"));
            }
        })
    }

    /// The bound endpoint (for `tcp://HOST:0`, with the chosen port); with several, the
    /// first `shm://` one, else the first.
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// Every bound endpoint, `shm://` ones first.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    /// The rendezvous socket's path (diagnostics; empty for `tcp://`).
    #[getter]
    fn socket_path(&self) -> &str {
        &self.socket_path
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

    /// Closes the publisher (over `tcp://`/`unix://` after delivering what is queued, for up
    /// to 5 s; `shm://` subscribers receive everything published, then `PeerClosed`).
    /// `BufferError` while a memoryview or array of one of its loans is alive.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        loan::close_book(&self.book, "Publisher", self.inner.endpoint())?;
        self.inner.close(py);
        Ok(())
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
        self.inner.repr("")
    }
}

/// What a `Subscriber` object holds: the `shmsock::Subscriber` and `recv()`'s scratch
/// buffer.
pub(crate) type SubscriberState = Receiving<shmsock::Subscriber>;

/// The receiving side of publish/subscribe: `Subscriber.connect(endpoint)`, then `recv()`.
/// Receives every message published after it joined whose start matches one of its topic
/// prefixes. A new subscriber is subscribed to everything (unlike a raw ZeroMQ SUB):
/// `unsubscribe(b"")` then `subscribe(b"prefix")` to choose. `Lagged` (attribute `missed`)
/// says how many messages a drop_oldest publisher overwrote before this subscriber read
/// them; `recv` again to go on. After a `shm://` publisher ended: everything it published,
/// then `PeerClosed`/`PeerGone`; a `tcp://`/`unix://` subscriber reconnects by itself.
/// Iterating over a subscriber receives until the publisher ended.
#[pyclass(name = "Subscriber", module = "shmsock", frozen)]
pub(crate) struct PySubscriber {
    inner: Guarded<SubscriberState>,
    publisher_pid: i32,
}

impl PySubscriber {
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

    fn sample_with(
        &self,
        py: Python<'_>,
        patience: Option<Option<Duration>>,
    ) -> PyResult<PySample> {
        recv_sample(py, &self.inner, patience)
    }

    fn change(&self, py: Python<'_>, prefix: &Bound<'_, PyAny>, subscribe: bool) -> PyResult<()> {
        let input = Input::read(prefix)?;
        let prefix = input.as_slice();
        self.inner.with(py, |s| {
            if subscribe {
                s.end.subscribe(prefix)
            } else {
                s.end.unsubscribe(prefix)
            }
            .map_err(raise)
        })
    }
}

#[pymethods]
impl PySubscriber {
    /// Connects to a publisher at `endpoint`. Keyword options: wait_strategy, spin_budget
    /// (seconds), handshake_timeout (seconds), allowed_uids, max_message_len,
    /// heartbeat=(interval, timeout); CURVE over `tcp://`/`unix://`: curve_server and
    /// curve_secret (as for `Conn.connect`); upgrade (bool, default True: over `tcp://` or
    /// `unix://` to a publisher on this machine, move to its shared memory).
    #[staticmethod]
    #[pyo3(signature = (endpoint, **options))]
    fn connect(
        py: Python<'_>,
        endpoint: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = options::parse("Subscriber.connect", options::SUBSCRIBER, options)?;
        let sub = py
            .detach(|| shmsock::Subscriber::connect_with(endpoint, opts))
            .map_err(raise)?;
        Ok(PySubscriber {
            publisher_pid: sub.publisher_pid(),
            inner: Guarded::new("Subscriber", sub.endpoint().to_owned(), Receiving::new(sub)),
        })
    }

    /// Subscribes to messages starting with `prefix` (bytes-like; `b""`: every message).
    /// Subscriptions are counted.
    fn subscribe(&self, py: Python<'_>, prefix: &Bound<'_, PyAny>) -> PyResult<()> {
        self.change(py, prefix, true)
    }

    /// Cancels one subscription to `prefix`; messages that no longer match are not
    /// delivered from now on.
    fn unsubscribe(&self, py: Python<'_>, prefix: &Bound<'_, PyAny>) -> PyResult<()> {
        self.change(py, prefix, false)
    }

    /// Receives the next matching message as `bytes`, waiting at most `timeout` seconds
    /// (`None`: for ever). `Lagged` if messages were lost (drop_oldest); `PeerClosed` /
    /// `PeerGone` after a `shm://` publisher ended and everything was received.
    #[pyo3(signature = (*, timeout = None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        self.recv_with(py, Patience::Wait(parse_timeout(timeout)?))
    }

    /// Receives a message if one is there, else raises `WouldBlock`.
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.recv_with(py, Patience::Try)
    }

    /// Receives the next matching message into `buffer` (writable bytes-like) and returns
    /// its length; `BufferTooSmall` leaves it queued.
    #[pyo3(signature = (buffer, *, timeout = None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        self.recv_into_with(py, buffer, Patience::Wait(parse_timeout(timeout)?))
    }

    /// `recv_into` if a message is there, else raises `WouldBlock`.
    fn try_recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.recv_into_with(py, buffer, Patience::Try)
    }

    /// Receives the next matching message as a `Sample` (zero-copy for a publisher's loan
    /// over `shm://`). While you hold it, the publisher cannot reuse its slot: close it.
    #[pyo3(signature = (*, timeout = None))]
    fn recv_sample(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PySample> {
        self.sample_with(py, Some(parse_timeout(timeout)?))
    }

    /// `recv_sample` if a message is there, else raises `WouldBlock`.
    fn try_recv_sample(&self, py: Python<'_>) -> PyResult<PySample> {
        self.sample_with(py, None)
    }

    /// The endpoint.
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// The publisher's process id (0 over `tcp://`).
    #[getter]
    fn publisher_pid(&self) -> i32 {
        self.publisher_pid
    }

    /// True if messages come through shared memory (`shm://`, or a network subscriber that
    /// moved to its publisher's ring).
    #[getter]
    fn is_shared_memory(&self, py: Python<'_>) -> PyResult<bool> {
        self.inner.with(py, |s| Ok(s.end.is_shared_memory()))
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Leaves cleanly. A call blocked in another thread raises `Closed`.
    fn close(&self, py: Python<'_>) {
        self.inner.close(py);
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next message; the iteration ends when the publisher ended (`PeerClosed`,
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
    ) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        self.inner
            .repr(&format!(" publisher_pid={}", self.publisher_pid))
    }
}
