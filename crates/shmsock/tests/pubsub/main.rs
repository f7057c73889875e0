//! Multi-process integration tests of `shm://` publish/subscribe
//! ([`Publisher`](shmsock::Publisher) and [`Subscriber`](shmsock::Subscriber)).
//!
//! The harness is `shmsock-testkit`'s, as for `tests/conn`: a test re-executes this
//! binary with `--exact peer_main` and `SHMSOCK_TEST_ROLE=<role>`, children print
//! `@@peer <line>` reports, a drop guard kills and reaps every child, and every blocking
//! step has a timeout. Subscribers are usually children (so they can be stopped with
//! SIGSTOP and killed with SIGKILL) and the publisher the test itself.
//!
//! Every message carries its sequence number and a checksum of its body
//! ([`shmsock_testkit::message`]), so a subscriber checks order, integrity and, after `Lagged(n)`, that
//! exactly `n` messages were skipped: `delivered + sum(lagged) == sent`.

mod fanout;
mod roles;
mod stream;

mod death;
mod delivery;
mod loans;
mod overflow;
mod reclaim;

shmsock_testkit::peer_main!(roles::run);

/// The message format the tests of this binary rely on checks what it claims to check.
#[test]
fn messages_verify_and_damage_is_named() {
    shmsock_testkit::message::self_check();
}
