//! The exception hierarchy: `shmsock.Error` and one subclass per `shmsock::Error` variant.
//!
//! The classes are made at import time (`type(name, bases, namespace)`), so each can also
//! derive from the built-in exception a Python program already catches: `PeerGone` is a
//! `ConnectionError`, `TimedOut` a `TimeoutError`, `TooLarge` a `ValueError`, and so on.
//! A raised exception's message is the Rust error's `Display` text (it says what failed, on
//! which endpoint, and what to do) and its attributes carry the error's data (`endpoint`,
//! `pid`, `len`, `max`, `missed`...). [`raise`] maps a `shmsock::Error` one to one.

use pyo3::exceptions::{
    PyBlockingIOError, PyConnectionError, PyConnectionRefusedError, PyException, PyOSError,
    PyPermissionError, PyRuntimeError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// One exception class: its name, its bases besides `shmsock.Error` (which comes first;
/// `None` for `Error` itself), its docstring.
struct Class {
    name: &'static str,
    bases: fn(Python<'_>) -> Vec<Bound<'_, PyType>>,
    doc: &'static str,
}

/// Every class, `Error` first. Order matters: [`Kind`] indexes this table.
const CLASSES: &[Class] = &[
    Class {
        name: "Error",
        bases: |py| vec![py.get_type::<PyException>()],
        doc: "Base class of every shmsock error. The message says what failed, on which \
              endpoint, and what to do; attributes carry the details.",
    },
    Class {
        name: "InvalidEndpoint",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "The endpoint string could not be parsed (attributes: input, reason). Accepted: \
              shm://NAME, unix:///absolute/path, tcp://HOST:PORT.",
    },
    Class {
        name: "Unsupported",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "This type does not support the endpoint's transport, e.g. an Inbox over tcp:// \
              (attributes: endpoint, scheme).",
    },
    Class {
        name: "AddrInUse",
        bases: |py| vec![py.get_type::<PyOSError>()],
        doc: "Another live listener is bound to this endpoint (attributes: endpoint, lock; \
              errno is EADDRINUSE).",
    },
    Class {
        name: "ConnectionRefused",
        bases: |py| vec![py.get_type::<PyConnectionRefusedError>()],
        doc: "Nobody listens on this endpoint (attributes: endpoint, path).",
    },
    Class {
        name: "PermissionDenied",
        bases: |py| vec![py.get_type::<PyPermissionError>()],
        doc: "The peer runs as a uid that is not allowed (attributes: endpoint, pid, uid, \
              allowed); admit it with allowed_uids=[...].",
    },
    Class {
        name: "Refused",
        bases: |py| vec![py.get_type::<PyConnectionError>()],
        doc: "The listener refused the connection (attributes: endpoint, reason).",
    },
    Class {
        name: "Handshake",
        bases: |py| vec![py.get_type::<PyConnectionError>()],
        doc: "The peer broke the connection handshake (attributes: endpoint, reason).",
    },
    Class {
        name: "VersionMismatch",
        bases: |py| vec![py.get_type::<PyConnectionError>()],
        doc: "The peer speaks another protocol version (attributes: endpoint, ours, peer).",
    },
    Class {
        name: "TooLarge",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "The message is larger than this connection allows; nothing was sent \
              (attributes: len, max).",
    },
    Class {
        name: "BufferTooSmall",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "recv_into's buffer is too small for the next message, which stays queued \
              (attributes: len, buf).",
    },
    Class {
        name: "WouldBlock",
        bases: |py| vec![py.get_type::<PyBlockingIOError>()],
        doc: "A try_* call could not complete without waiting.",
    },
    Class {
        name: "TimedOut",
        bases: |py| vec![py.get_type::<PyTimeoutError>()],
        doc: "The call did not complete within its timeout; nothing was sent or received.",
    },
    Class {
        name: "PeerClosed",
        bases: |py| vec![py.get_type::<PyConnectionError>()],
        doc: "The peer closed the connection cleanly, after everything it sent was received \
              (attributes: endpoint, pid).",
    },
    Class {
        name: "PeerGone",
        bases: |py| vec![py.get_type::<PyConnectionError>()],
        doc: "The peer died without closing, after everything it sent was received \
              (attributes: endpoint, pid).",
    },
    Class {
        name: "Corrupt",
        bases: |_| vec![],
        doc: "The peer's shared memory holds an impossible value; the connection is closed \
              (attributes: endpoint, pid, what).",
    },
    Class {
        name: "Protocol",
        bases: |py| vec![py.get_type::<PyConnectionError>()],
        doc: "A tcp:// or unix:// peer broke the ZeroMQ protocol; that connection is closed \
              (attributes: endpoint, what).",
    },
    Class {
        name: "Lagged",
        bases: |_| vec![],
        doc: "This subscriber fell a whole ring behind a drop_oldest publisher and lost \
              `missed` messages; the next recv goes on with the oldest one still there \
              (attributes: endpoint, missed).",
    },
    Class {
        name: "SlowSubscriber",
        bases: |py| vec![py.get_type::<PyTimeoutError>()],
        doc: "A blocking publisher's send timed out waiting for its slowest subscriber \
              (attributes: endpoint, pid, waited in seconds).",
    },
    Class {
        name: "Closed",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "The object was closed (by close(), a with block, or another thread).",
    },
    Class {
        name: "NoLoanPool",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "loan() on a connection without a loan pool: connect or bind with \
              loan_pool=(slots, slot_bytes) (attribute: endpoint).",
    },
    Class {
        name: "InvalidOptions",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "The options cannot work for this endpoint (attributes: endpoint, reason).",
    },
    Class {
        name: "InvalidKey",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "A CURVE key is not valid: 40 Z85 characters or 32 bytes (attributes: what, \
              reason).",
    },
    Class {
        name: "Certificate",
        bases: |py| vec![py.get_type::<PyValueError>()],
        doc: "A ZeroMQ certificate file cannot be used (attributes: path, reason).",
    },
    Class {
        name: "IoError",
        bases: |py| vec![py.get_type::<PyOSError>()],
        doc: "An operating-system call failed (attributes: context, errno).",
    },
    Class {
        name: "InUse",
        bases: |py| vec![py.get_type::<PyRuntimeError>()],
        doc: "Another thread is using this object. A connection serves one thread at a \
              time, as in Rust (it is Send but not Sync): give each thread its own, or \
              guard it with a lock.",
    },
    Class {
        name: "Forked",
        bases: |py| vec![py.get_type::<PyRuntimeError>()],
        doc: "The object was created in the parent of this process (before os.fork()); a \
              child cannot use it. Create new ones in the child.",
    },
];

/// Index of each class in [`CLASSES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    InvalidEndpoint,
    Unsupported,
    AddrInUse,
    ConnectionRefused,
    PermissionDenied,
    Refused,
    Handshake,
    VersionMismatch,
    TooLarge,
    BufferTooSmall,
    WouldBlock,
    TimedOut,
    PeerClosed,
    PeerGone,
    Corrupt,
    Protocol,
    Lagged,
    SlowSubscriber,
    Closed,
    NoLoanPool,
    InvalidOptions,
    InvalidKey,
    Certificate,
    IoError,
    InUse,
    Forked,
}

/// The classes, made once per interpreter.
static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Vec<Py<PyType>>> {
    TYPES.get_or_try_init(py, || {
        let builtins = py.import("builtins")?;
        let type_ = builtins.getattr("type")?;
        let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
        for class in CLASSES {
            let mut bases: Vec<Bound<'_, PyAny>> = Vec::new();
            if let Some(error) = made.first() {
                bases.push(error.bind(py).clone().into_any());
            }
            bases.extend((class.bases)(py).into_iter().map(Bound::into_any));
            let namespace = PyDict::new(py);
            namespace.set_item("__doc__", class.doc)?;
            namespace.set_item("__module__", "shmsock")?;
            let made_type = type_.call1((class.name, PyTuple::new(py, bases)?, namespace))?;
            made.push(made_type.cast_into::<PyType>()?.unbind());
        }
        Ok(made)
    })
}

/// Adds every exception class to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (class, made) in CLASSES.iter().zip(types(py)?) {
        m.add(class.name, made.bind(py))?;
    }
    Ok(())
}

/// A new exception of class `kind` with `message` and the attributes `attrs`.
pub(crate) fn new_err(
    py: Python<'_>,
    kind: Kind,
    message: String,
    attrs: &[(&str, Bound<'_, PyAny>)],
) -> PyErr {
    let made = match types(py) {
        Ok(t) => t[kind as usize].bind(py).clone(),
        Err(e) => return e,
    };
    let exc = match made.call1((message,)) {
        Ok(exc) => exc,
        Err(e) => return e,
    };
    for (name, value) in attrs {
        if let Err(e) = exc.setattr(*name, value) {
            return e;
        }
    }
    PyErr::from_value(exc)
}

/// A binding-level error (no Rust error behind it): `kind` with `message`.
pub(crate) fn err(kind: Kind, message: impl Into<String>) -> PyErr {
    Python::attach(|py| new_err(py, kind, message.into(), &[]))
}

/// The Python exception for a `shmsock::Error`: its class, its message (the error's
/// `Display`) and its data as attributes.
pub(crate) fn raise(e: shmsock::Error) -> PyErr {
    Python::attach(|py| convert(py, e))
}

/// An attribute of an exception: its name and its value (converting it may fail).
type Attr<'py> = (&'static str, PyResult<Bound<'py, PyAny>>);

fn convert(py: Python<'_>, e: shmsock::Error) -> PyErr {
    use shmsock::Error as E;
    let message = e.to_string();
    macro_rules! attrs {
        ($($name:literal => $value:expr),* $(,)?) => {
            vec![$(($name, ($value).into_pyobject(py).map(|v| v.into_any()).map_err(PyErr::from)),)*]
        };
    }
    let errno = |n: rustix::io::Errno| n.raw_os_error();
    let (kind, attrs): (Kind, Vec<Attr<'_>>) = match e {
        E::InvalidEndpoint { input, reason } => (
            Kind::InvalidEndpoint,
            attrs!["input" => input, "reason" => reason],
        ),
        E::Unsupported { endpoint, scheme } => (
            Kind::Unsupported,
            attrs!["endpoint" => endpoint, "scheme" => scheme],
        ),
        E::AddrInUse { endpoint, lock } => (
            Kind::AddrInUse,
            attrs![
                "endpoint" => endpoint,
                "lock" => lock,
                "errno" => errno(rustix::io::Errno::ADDRINUSE),
            ],
        ),
        E::ConnectionRefused { endpoint, path } => (
            Kind::ConnectionRefused,
            attrs![
                "endpoint" => endpoint,
                "path" => path,
                "errno" => errno(rustix::io::Errno::CONNREFUSED),
            ],
        ),
        E::PermissionDenied {
            endpoint,
            pid,
            uid,
            allowed,
        } => (
            Kind::PermissionDenied,
            attrs![
                "endpoint" => endpoint,
                "pid" => pid,
                "uid" => uid,
                "allowed" => allowed,
                "errno" => errno(rustix::io::Errno::ACCESS),
            ],
        ),
        E::Refused { endpoint, reason } => (
            Kind::Refused,
            attrs!["endpoint" => endpoint, "reason" => reason],
        ),
        E::Handshake { endpoint, reason } => (
            Kind::Handshake,
            attrs!["endpoint" => endpoint, "reason" => reason],
        ),
        E::VersionMismatch {
            endpoint,
            ours,
            peer,
        } => (
            Kind::VersionMismatch,
            attrs!["endpoint" => endpoint, "ours" => ours, "peer" => peer],
        ),
        E::TooLarge { len, max } => (Kind::TooLarge, attrs!["len" => len, "max" => max]),
        E::BufferTooSmall { len, buf } => {
            (Kind::BufferTooSmall, attrs!["len" => len, "buf" => buf])
        }
        E::WouldBlock => (
            Kind::WouldBlock,
            attrs!["errno" => errno(rustix::io::Errno::AGAIN)],
        ),
        E::TimedOut => (
            Kind::TimedOut,
            attrs!["errno" => errno(rustix::io::Errno::TIMEDOUT)],
        ),
        E::PeerClosed { endpoint, pid } => (
            Kind::PeerClosed,
            attrs!["endpoint" => endpoint, "pid" => pid],
        ),
        E::PeerGone { endpoint, pid } => {
            (Kind::PeerGone, attrs!["endpoint" => endpoint, "pid" => pid])
        }
        E::Corrupt {
            endpoint,
            pid,
            what,
        } => (
            Kind::Corrupt,
            attrs!["endpoint" => endpoint, "pid" => pid, "what" => what],
        ),
        E::Protocol { endpoint, what } => (
            Kind::Protocol,
            attrs!["endpoint" => endpoint, "what" => what],
        ),
        E::Lagged { endpoint, missed } => (
            Kind::Lagged,
            attrs!["endpoint" => endpoint, "missed" => missed],
        ),
        E::SlowSubscriber {
            endpoint,
            pid,
            waited,
        } => (
            Kind::SlowSubscriber,
            attrs![
                "endpoint" => endpoint,
                "pid" => pid,
                "waited" => waited.as_secs_f64(),
            ],
        ),
        E::Closed => (Kind::Closed, attrs![]),
        E::NoLoanPool { endpoint } => (Kind::NoLoanPool, attrs!["endpoint" => endpoint]),
        E::InvalidOptions { endpoint, reason } => (
            Kind::InvalidOptions,
            attrs!["endpoint" => endpoint, "reason" => reason],
        ),
        E::InvalidKey { what, reason } => {
            (Kind::InvalidKey, attrs!["what" => what, "reason" => reason])
        }
        E::Certificate { path, reason } => (
            Kind::Certificate,
            attrs!["path" => path, "reason" => reason],
        ),
        E::Io { context, source } => (
            Kind::IoError,
            attrs!["context" => context, "errno" => source.raw_os_error()],
        ),
        // Typed messages (`Encode`, `Decode`) are not reachable from Python; a variant
        // added later lands here too, still with its message.
        _ => (Kind::Error, attrs![]),
    };
    let mut values = Vec::with_capacity(attrs.len());
    for (name, value) in attrs {
        match value {
            Ok(v) => values.push((name, v)),
            Err(e) => return e,
        }
    }
    new_err(py, kind, message, &values)
}

/// True for `PeerClosed` and `PeerGone`: the peer ended (iteration stops there).
pub(crate) fn is_end(py: Python<'_>, e: &PyErr) -> bool {
    let Ok(made) = types(py) else {
        return false;
    };
    [Kind::PeerClosed, Kind::PeerGone]
        .iter()
        .any(|&k| e.is_instance(py, made[k as usize].bind(py)))
}

/// True for a `shmsock.Error` (it already names what it is about).
pub(crate) fn is_ours(py: Python<'_>, e: &PyErr) -> bool {
    types(py).is_ok_and(|made| e.is_instance(py, made[Kind::Error as usize].bind(py)))
}
