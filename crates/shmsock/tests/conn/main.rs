//! Multi-process integration tests of the `shm://` [`Conn`](shmsock::Conn) and
//! [`Listener`](shmsock::Listener).
//!
//! Peers are real processes (the harness is `shmsock-testkit`): a test re-executes this test
//! binary with `--exact peer_main --include-ignored` and `SHMSOCK_TEST_ROLE=<role>`, and
//! `peer_main` runs that role (see `roles.rs`) instead of a test. Children report progress on stdout
//! (`@@peer <line>`) when the parent must synchronise with them, e.g. before a SIGKILL.
//! Every child is killed and reaped by a drop guard, and every blocking step has a timeout,
//! so a bug fails a test instead of hanging CI.
//!
//! Each test process uses its own rendezvous directory (`$TMPDIR/shmsock-it-<pid>`, via
//! `SHMSOCK_RUNTIME_DIR`) and every test a unique name, so runs never collide with each
//! other or with a user's names.

mod roles;

mod death;
mod delivery;
mod handshake;
mod loans;
mod permissions;
mod rendezvous;
mod several;

shmsock_testkit::peer_main!(roles::run);

/// The message format the tests of this binary rely on checks what it claims to check.
#[test]
fn messages_verify_and_damage_is_named() {
    shmsock_testkit::message::self_check();
}
