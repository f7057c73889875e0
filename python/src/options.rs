//! Keyword arguments to `shmsock::Options`: each constructor (`Listener.bind`,
//! `Conn.connect`, `Publisher.bind`, `Subscriber.connect`, `Inbox.bind`) takes the options
//! that mean something to it, by name, and refuses any other with a `TypeError` that lists
//! the accepted ones.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use shmsock::{Options, Overflow, WaitStrategy};

/// One option: its keyword and how it changes the `Options`.
pub(crate) struct Opt {
    name: &'static str,
    apply: fn(Options, &Bound<'_, PyAny>) -> PyResult<Options>,
}

/// A duration in seconds (a float or an int), at least 0.
fn seconds(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let s: f64 = value.extract()?;
    if !(s.is_finite() && s >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a number of seconds >= 0, not {s}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

/// A choice given as a string or as a member of its Python enum (whose `str()` is such a
/// string, or `Enum.MEMBER`): the text as given, for messages, and the key to match (the
/// part after the last `.`, lowercase).
fn choice(value: &Bound<'_, PyAny>) -> PyResult<(String, String)> {
    let name: String = value.str()?.extract()?;
    let key = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok((name, key))
}

/// `"busy_poll"`, `"adaptive"` or `"blocking"` (a `shmsock.WaitStrategy` is such a string).
fn wait_strategy(value: &Bound<'_, PyAny>) -> PyResult<WaitStrategy> {
    let (name, key) = choice(value)?;
    match key.as_str() {
        "busy_poll" => Ok(WaitStrategy::BusyPoll),
        "adaptive" => Ok(WaitStrategy::Adaptive),
        "blocking" => Ok(WaitStrategy::Blocking),
        _ => Err(PyValueError::new_err(format!(
            "wait_strategy must be 'busy_poll', 'adaptive' or 'blocking' (or a \
             shmsock.WaitStrategy), not {name:?}"
        ))),
    }
}

/// `"block"` or `"drop_oldest"` (a `shmsock.Overflow` is such a string).
fn overflow(value: &Bound<'_, PyAny>) -> PyResult<Overflow> {
    let (name, key) = choice(value)?;
    match key.as_str() {
        "block" => Ok(Overflow::Block),
        "drop_oldest" => Ok(Overflow::DropOldest),
        _ => Err(PyValueError::new_err(format!(
            "overflow must be 'block' or 'drop_oldest' (or a shmsock.Overflow), not {name:?}"
        ))),
    }
}

const RING_CAPACITY: Opt = Opt {
    name: "ring_capacity",
    apply: |o, v| Ok(o.ring_capacity(v.extract()?)),
};
const WAIT_STRATEGY: Opt = Opt {
    name: "wait_strategy",
    apply: |o, v| Ok(o.wait_strategy(wait_strategy(v)?)),
};
const SPIN_BUDGET: Opt = Opt {
    name: "spin_budget",
    apply: |o, v| Ok(o.spin_budget(seconds("spin_budget", v)?)),
};
const LOAN_POOL: Opt = Opt {
    name: "loan_pool",
    apply: |o, v| {
        let (slots, slot_bytes): (usize, usize) = v
            .extract()
            .map_err(|_| PyTypeError::new_err("loan_pool must be a tuple (slots, slot_bytes)"))?;
        Ok(o.loan_pool(slots, slot_bytes))
    },
};
const HANDSHAKE_TIMEOUT: Opt = Opt {
    name: "handshake_timeout",
    apply: |o, v| Ok(o.handshake_timeout(seconds("handshake_timeout", v)?)),
};
const ALLOWED_UIDS: Opt = Opt {
    name: "allowed_uids",
    apply: |o, v| {
        let uids: Vec<u32> = v
            .extract()
            .map_err(|_| PyTypeError::new_err("allowed_uids must be a list of user ids (int)"))?;
        Ok(uids.into_iter().fold(o, Options::allow_uid))
    },
};
const OVERFLOW: Opt = Opt {
    name: "overflow",
    apply: |o, v| Ok(o.overflow(overflow(v)?)),
};
const MAX_MESSAGE_LEN: Opt = Opt {
    name: "max_message_len",
    apply: |o, v| Ok(o.max_message_len(v.extract()?)),
};
const MAX_CONNECTIONS: Opt = Opt {
    name: "max_connections",
    apply: |o, v| Ok(o.max_connections(v.extract()?)),
};
const HEARTBEAT: Opt = Opt {
    name: "heartbeat",
    apply: |o, v| {
        let (interval, timeout): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
            v.extract().map_err(|_| {
                PyTypeError::new_err("heartbeat must be a tuple (interval, timeout) in seconds")
            })?;
        Ok(o.heartbeat(
            seconds("heartbeat interval", &interval)?,
            seconds("heartbeat timeout", &timeout)?,
        ))
    },
};

const UPGRADE: Opt = Opt {
    name: "upgrade",
    apply: |o, v| Ok(o.upgrade(v.extract()?)),
};

const CURVE_SECRET: Opt = Opt {
    name: "curve_secret",
    apply: |o, v| Ok(o.curve_secret(crate::curve::key_pair(v)?)),
};
const CURVE_SERVER: Opt = Opt {
    name: "curve_server",
    apply: |o, v| Ok(o.curve_server(crate::curve::public_key("curve_server", v)?)),
};
const CURVE_ALLOW: Opt = Opt {
    name: "curve_allow",
    apply: |o, v| {
        let keys = v
            .try_iter()?
            .map(|k| crate::curve::public_key("curve_allow", &k?))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(o.curve_allow(keys))
    },
};

/// The options of `Listener.bind`.
pub(crate) const LISTENER: &[Opt] = &[
    RING_CAPACITY,
    WAIT_STRATEGY,
    SPIN_BUDGET,
    LOAN_POOL,
    HANDSHAKE_TIMEOUT,
    ALLOWED_UIDS,
    MAX_MESSAGE_LEN,
    MAX_CONNECTIONS,
    HEARTBEAT,
    CURVE_SECRET,
    CURVE_ALLOW,
];
/// The options of `Conn.connect`.
pub(crate) const CONN: &[Opt] = &[
    RING_CAPACITY,
    WAIT_STRATEGY,
    SPIN_BUDGET,
    LOAN_POOL,
    HANDSHAKE_TIMEOUT,
    ALLOWED_UIDS,
    MAX_MESSAGE_LEN,
    HEARTBEAT,
    CURVE_SECRET,
    CURVE_SERVER,
];
/// The options of `Publisher.bind`.
pub(crate) const PUBLISHER: &[Opt] = &[
    RING_CAPACITY,
    WAIT_STRATEGY,
    SPIN_BUDGET,
    LOAN_POOL,
    OVERFLOW,
    HANDSHAKE_TIMEOUT,
    ALLOWED_UIDS,
    MAX_MESSAGE_LEN,
    MAX_CONNECTIONS,
    HEARTBEAT,
    CURVE_SECRET,
    CURVE_ALLOW,
    UPGRADE,
];
/// The options of `Subscriber.connect`.
pub(crate) const SUBSCRIBER: &[Opt] = &[
    UPGRADE,
    WAIT_STRATEGY,
    SPIN_BUDGET,
    HANDSHAKE_TIMEOUT,
    ALLOWED_UIDS,
    MAX_MESSAGE_LEN,
    HEARTBEAT,
    CURVE_SECRET,
    CURVE_SERVER,
];
/// The options of `Inbox.bind` and `Inbox.bind_all` (the socket ones apply to `tcp://` and
/// `unix://` endpoints; ring_capacity bounds what is read ahead of each network writer).
pub(crate) const INBOX: &[Opt] = &[
    RING_CAPACITY,
    WAIT_STRATEGY,
    SPIN_BUDGET,
    HANDSHAKE_TIMEOUT,
    ALLOWED_UIDS,
    MAX_MESSAGE_LEN,
    MAX_CONNECTIONS,
    HEARTBEAT,
    CURVE_SECRET,
    CURVE_ALLOW,
];

/// Builds `Options` from the keyword arguments `kwargs` of `call` (e.g. `"Conn.connect"`),
/// which accepts `accepted`. `None` values mean "the default".
pub(crate) fn parse(
    call: &str,
    accepted: &[Opt],
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Options> {
    let mut options = Options::new();
    let Some(kwargs) = kwargs else {
        return Ok(options);
    };
    for (key, value) in kwargs.iter() {
        let key: String = key.extract()?;
        let Some(opt) = accepted.iter().find(|o| o.name == key) else {
            let names: Vec<&str> = accepted.iter().map(|o| o.name).collect();
            return Err(PyTypeError::new_err(format!(
                "{call}() got an unexpected keyword argument {key:?}; it accepts {}",
                names.join(", ")
            )));
        };
        if value.is_none() {
            continue;
        }
        options = (opt.apply)(options, &value).map_err(|e| prefixed(value.py(), &key, e))?;
    }
    Ok(options)
}

/// `e` with the option's name in front of its message.
fn prefixed(py: Python<'_>, key: &str, e: PyErr) -> PyErr {
    let message = e.value(py).to_string();
    if message.starts_with(key) || crate::errors::is_ours(py, &e) {
        return e;
    }
    let new = if e.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(format!("{key}: {message}"))
    } else {
        PyValueError::new_err(format!("{key}: {message}"))
    };
    new.set_cause(py, Some(e));
    new
}
