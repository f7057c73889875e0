//! Resilience of the `shm://` transport: peers SIGKILLed at random moments,
//! hostile peers in other processes, handshake abuse, resource exhaustion, and a soak.
//!
//! Each test has a CI version (runs with `cargo test`) and, where it makes sense, a long
//! version behind `#[ignore]`:
//! ```text
//! cargo test --release -p shmsock --test resilience -- --ignored
//! ```
//! Peers are real processes: the harness of `shmsock-testkit` (as for `tests/conn` and
//! `tests/pubsub`) re-executes this binary with `SHMSOCK_TEST_ROLE`, and `peer_main` runs
//! the role (`roles.rs`). The tests of this binary run one at a time ([`serial`]): they
//! count fds of this process and measure latencies, which parallel tests would disturb.

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

shmsock_testkit::peer_main!(roles::run);

/// The message format the tests of this binary rely on checks what it claims to check.
#[test]
fn messages_verify_and_damage_is_named() {
    shmsock_testkit::message::self_check();
}
