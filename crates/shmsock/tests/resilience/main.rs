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

/// Writes the two versions of a test that runs `$run(n)`: the CI one (`$ci`, `n` =
/// `$ci_n`) and the long one (`$long`, `n` = `$long_n`, behind `#[ignore]`), each with its
/// own doc.
macro_rules! ci_and_long {
    (
        $run:path,
        $(#[$ci_doc:meta])* fn $ci:ident($ci_n:expr);
        $(#[$long_doc:meta])* fn $long:ident($long_n:expr);
    ) => {
        $(#[$ci_doc])*
        #[test]
        fn $ci() {
            $run($ci_n);
        }

        $(#[$long_doc])*
        #[test]
        #[ignore = "long run; see the README"]
        fn $long() {
            $run($long_n);
        }
    };
}

mod acked;
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
mod setup_attacks;
mod soak;

use std::sync::{Mutex, MutexGuard, PoisonError};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held by every test of this binary: they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The verdict of a run against a hostile peer: it must have seen both outcomes, some
/// corruption detected and some valid `what` delivered (a run that saw only one of them
/// did not test what it claims).
#[track_caller]
pub fn assert_saw_both(corrupt: u64, valid: u64, what: &str) {
    assert!(corrupt > 0, "no corruption was ever detected");
    assert!(valid > 0, "no {what} got through");
}

shmsock_testkit::peer_main!(roles::run);

/// The message format the tests of this binary rely on checks what it claims to check.
#[test]
fn messages_verify_and_damage_is_named() {
    shmsock_testkit::message::self_check();
}
