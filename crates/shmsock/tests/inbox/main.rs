//! Multi-process integration tests of the many-writers pattern ([`Inbox`](shmsock::Inbox)).
//!
//! The harness is `shmsock-testkit`'s, as for `tests/conn`: writers are child
//! processes (re-executions of this binary with `SHMSOCK_TEST_ROLE`), the inbox is the test.
//! Every writer sends a self-checking stream (sequence number + checksum, seeded by its
//! index), so the inbox checks per writer that nothing is lost, duplicated, reordered or
//! torn, whatever the interleaving.

mod network;
mod roles;
mod tests;

shmsock_testkit::peer_main!(roles::run);

/// The message format the tests of this binary rely on checks what it claims to check.
#[test]
fn messages_verify_and_damage_is_named() {
    shmsock_testkit::message::self_check();
}
