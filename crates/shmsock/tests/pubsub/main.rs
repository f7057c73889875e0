//! Multi-process integration tests of `shm://` publish/subscribe
//! ([`Publisher`](shmsock::Publisher) and [`Subscriber`](shmsock::Subscriber)).
//!
//! The harness is the one of `tests/conn` (shared with `#[path]`): a test re-executes this
//! binary with `--exact peer_main` and `SHMSOCK_TEST_ROLE=<role>`, children print
//! `@@peer <line>` reports, a drop guard kills and reaps every child, and every blocking
//! step has a timeout. Subscribers are usually children (so they can be stopped with
//! SIGSTOP and killed with SIGKILL) and the publisher the test itself.
//!
//! Every message carries its sequence number and a checksum of its body
//! ([`message`]), so a subscriber checks order, integrity and, after `Lagged(n)`, that
//! exactly `n` messages were skipped: `delivered + sum(lagged) == sent`.

mod fanout;
#[allow(dead_code)] // the Conn helpers of the shared harness are not all used here
#[path = "../conn/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../conn/message.rs"]
mod message;
mod roles;
mod stream;

mod death;
mod delivery;
mod loans;
mod overflow;
mod reclaim;

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
