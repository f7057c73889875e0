//! Multi-process integration tests of the many-writers pattern ([`Inbox`](shmsock::Inbox)).
//!
//! The harness is the one of `tests/conn` (shared with `#[path]`): writers are child
//! processes (re-executions of this binary with `SHMSOCK_TEST_ROLE`), the inbox is the test.
//! Every writer sends a self-checking stream (sequence number + checksum, seeded by its
//! index), so the inbox checks per writer that nothing is lost, duplicated, reordered or
//! torn, whatever the interleaving.

#[allow(dead_code)] // the Conn helpers of the shared harness are not all used here
#[path = "../conn/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../conn/message.rs"]
mod message;
mod roles;
mod tests;

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
