//! Integration tests of `tcp://` and `unix://` (ZMTP 3.x, PAIR): Rust↔Rust conformance
//! over both schemes, hostile raw-socket peers, and interop with pyzmq (CURVE keys and
//! certificate files included).
//!
//! Only loopback addresses and ephemeral ports (`tcp://127.0.0.1:0`, then
//! [`Listener::endpoint`](shmsock::Listener::endpoint)) and per-test socket paths are used,
//! and every blocking step is bounded, so a bug fails a test instead of hanging CI.

mod common;
mod conformance;
mod curve_pyzmq;
mod hostile;
mod pubsub;
mod pubsub_pyzmq;
mod pubsub_raw;
mod pyzmq;
