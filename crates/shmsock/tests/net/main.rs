//! Integration tests of `tcp://` and `unix://` (ZMTP 3.x, PAIR): Rust↔Rust conformance
//! over both schemes, hostile raw-socket peers, interop with pyzmq (CURVE keys and
//! certificate files included), and attacks on a victim in another process (`attacks.rs`:
//! this binary re-executed with a role, see [`shmsock_testkit::peer_main!`]) whose memory
//! is read from `/proc`.
//!
//! Only loopback addresses and ephemeral ports (`tcp://127.0.0.1:0`, then
//! [`Listener::endpoint`](shmsock::Listener::endpoint)) and per-test socket paths are used,
//! and every blocking step is bounded, so a bug fails a test instead of hanging CI.

mod attacks;
mod batching;
mod common;
mod conformance;
mod curve;
mod curve_pyzmq;
mod heartbeat;
mod hostile;
mod inbox_pyzmq;
mod pubsub;
mod pubsub_pyzmq;
mod pubsub_raw;
mod pyzmq;
mod upgrade;

shmsock_testkit::peer_main!(run_role);

/// The roles this binary runs as a child process.
fn run_role(role: &str, endpoint: &str) {
    match role {
        "idle_beating_conn" => heartbeat::idle_beating_conn(endpoint),
        "fork_streamer" => batching::fork_streamer(endpoint),
        "upgrade_sub" => upgrade::upgrade_sub(endpoint),
        "victim_publisher" => upgrade::victim_publisher(endpoint),
        "upgrade_pub" => upgrade::upgrade_pub(endpoint),
        other => attacks::run_role(other, endpoint),
    }
}
