//! Resilience of the `shm://` transport (issue 6): peers SIGKILLed at random moments,
//! hostile peers in other processes, handshake abuse, resource exhaustion, and a soak.
//!
//! Each test has a CI version (runs with `cargo test`) and, where it makes sense, a long
//! version behind `#[ignore]`:
//! ```text
//! cargo test --release -p shmsock --test resilience -- --ignored
//! ```
//! Peers are real processes: the harness of `tests/conn` (`harness.rs`, `message.rs`,
//! included with `#[path]`, as `tests/pubsub` does) re-executes this binary with `SHMSOCK_TEST_ROLE`, and [`peer_main`] runs
//! the role (`roles.rs`). The tests of this binary run one at a time ([`serial`]): they
//! count fds of this process and measure latencies, which parallel tests would disturb.

#[allow(dead_code)]
#[path = "../conn/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../conn/message.rs"]
mod message;

mod hostile_lender;
mod leaks;
mod rawloan;
mod rawpeer;
mod roles;

mod crash;
mod crash_patterns;
mod doorbell_abuse;
mod exhaustion;
mod forged_loans;
mod handshake;
mod hostile;
mod hostile_publisher;
mod lint;
mod lying_borrowers;
mod pool_doorbell;
mod soak;

use std::sync::{Mutex, MutexGuard, PoisonError};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held by every test of this binary: they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The child-process side of every multi-process test. Does nothing unless a test spawned
/// this binary with `SHMSOCK_TEST_ROLE` set; then it runs that role and exits.
#[test]
#[ignore = "the child-process side of the multi-process tests; runs only when they spawn it"]
fn peer_main() {
    let Ok(role) = std::env::var(harness::ROLE_ENV) else {
        return;
    };
    roles::run(&role);
    std::process::exit(0);
}
