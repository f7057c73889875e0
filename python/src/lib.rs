//! `shmsock._shmsock`: the native module of the `shmsock` Python package (PyO3, built by
//! maturin: `pip install ./python`). `shmsock/__init__.py` re-exports it; `python/README.md`
//! and the `.pyi` stubs document the Python API, `python/tests` test it (pytest).
//!
//! The classes mirror the Rust API: `Listener`/`Conn` (one peer), `Publisher`/`Subscriber`
//! (one to many), `Inbox` (many to one), `Loan`/`Sample` (zero-copy, through the buffer
//! protocol), and one exception class per `shmsock::Error` variant (`errors`). How the
//! binding behaves as a citizen of the interpreter:
//!
//! - every wait releases the GIL, in slices of at most 50 ms between which Ctrl-C
//!   (`KeyboardInterrupt`) and `close()` from another thread are noticed (`wait`);
//! - each object holds its value in a mutex that a call only tries to take: the shmsock
//!   types are `Send` but not `Sync`, so a second thread gets `InUse` at once (`guard`);
//! - an object inherited through `os.fork()` refuses to work in the child and is never
//!   closed there (`guard`);
//! - loans and samples export their bytes in place and refuse to let them go while an
//!   export is alive (`loan`);
//! - CURVE keys are pyzmq's Z85 `bytes` (`curve`).
//!
//! No asyncio integration: none of the types offers a file descriptor to wait on (the
//! Rust crate's async support is tokio's); the package README says so.

mod buffer;
mod conn;
mod curve;
mod errors;
mod guard;
mod inbox;
mod loan;
mod options;
mod pubsub;
mod recv;
mod send;
mod wait;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _shmsock(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    guard::init_pid();
    errors::register(m)?;
    m.add_class::<conn::PyListener>()?;
    m.add_class::<conn::PyConn>()?;
    m.add_class::<pubsub::PyPublisher>()?;
    m.add_class::<pubsub::PySubscriber>()?;
    m.add_class::<inbox::PyInbox>()?;
    m.add_class::<inbox::PyWriterId>()?;
    m.add_class::<loan::PyLoan>()?;
    m.add_class::<loan::PySample>()?;
    m.add_function(wrap_pyfunction!(curve::curve_keypair, m)?)?;
    m.add_function(wrap_pyfunction!(curve::load_certificate, m)?)?;
    m.add_function(wrap_pyfunction!(curve::load_certificates, m)?)?;
    m.add("SLICE_SECONDS", wait::SLICE.as_secs_f64())?;
    m.add(
        "RING_CAPACITY_DEFAULT",
        shmsock::RING_CAPACITY_DEFAULT_BYTES,
    )?;
    m.add("LOAN_SLOTS_MAX", shmsock::LOAN_SLOTS_MAX)?;
    m.add("PROTOCOL_VERSION", shmsock::PROTOCOL_VERSION)?;
    // A child made by os.fork() learns its pid here (see `guard`).
    let after_fork = wrap_pyfunction!(guard::after_fork_in_child, m)?;
    py.import("os")?.getattr("register_at_fork")?.call(
        (),
        Some(&[("after_in_child", after_fork)].into_py_dict(py)?),
    )?;
    Ok(())
}

use pyo3::types::IntoPyDict;
