//! The harness of shmsock's multi-process integration tests (dev-only, never published).
//!
//! The `shm://` transport is between processes, so its tests need real peers: a test
//! re-executes its own test binary as a child with `--exact peer_main` and
//! `SHMSOCK_TEST_ROLE=<role>` ([`harness::Peer::spawn`]), and the binary's `peer_main`
//! test (written by [`peer_main!`]) runs that role instead of a test, then exits. The pieces:
//!
//! - [`harness`], the parent side: a private rendezvous directory per test process
//!   (`SHMSOCK_RUNTIME_DIR`), unique endpoint names, child processes that are killed and
//!   reaped by a drop guard and whose `@@peer <line>` reports the parent waits for, and
//!   bounded versions of the blocking calls ([`harness::STEP_TIMEOUT`]).
//! - [`child`], the child side: reporting to the parent, reading the parameters the parent
//!   put in the environment, dying with the parent (`PR_SET_PDEATHSIG`).
//! - [`message`], the self-checking message format: a seeded size sequence, a sequence
//!   number and a checksum, so a receiver sees any lost, duplicated, reordered or torn
//!   message.
//! - [`wire`], the `shm://` handshake spoken by hand (hellos, fake segments, fds over the
//!   rendezvous socket), for hostile or half-finished peers the library would never be.
//! - [`process`], other programs the tests run (the `shmsock` binary, python3 with pyzmq):
//!   killed and reaped by drop guards, their output read on other threads, bounded waits.
//! - [`source`], the library's source files for the source-scanning lints: one walker,
//!   one comment and literal stripper.
//! - [`logs`], the `tracing` events of the test's own thread (why a listener dropped a
//!   peer).
//! - [`pubsub`], waits on a publisher's subscriber count, and [`assert_mentions`], for the
//!   messages a test expects.
//! - [`watchdog`], calls against a hostile peer that fail the test, with a message, once
//!   one has run past its bound, even if it never returns.
//!
//! Each test binary keeps what is specific to it (its roles, its checks); what several
//! binaries need lives here once. The kit holds no `unsafe` code: a test that needs it
//! (mapping a peer's memory by hand, switching uid) keeps it in its own binary.

#![forbid(unsafe_code)]

pub mod child;
pub mod harness;
pub mod logs;
pub mod message;
pub mod process;
pub mod pubsub;
pub mod source;
pub mod watchdog;
pub mod wire;

/// Checks that `text` (a child's output, an error message) mentions every one of `words`;
/// the failure names the first missing one and shows the whole text.
#[track_caller]
pub fn assert_mentions(text: &str, words: &[&str]) {
    if let Some(missing) = words.iter().find(|w| !text.contains(*w)) {
        panic!("{missing:?} is missing from:\n{text}");
    }
}

/// Writes the `peer_main` test of a multi-process test binary: the child-process side of
/// every test, which runs the role named by `SHMSOCK_TEST_ROLE` with `$run` and exits.
///
/// It is `#[ignore]`d, so it runs only when [`harness::Peer::spawn`] starts it (with
/// `--include-ignored`); a plain `--include-ignored` run finds no role and does nothing.
///
/// ```ignore
/// mod roles; // pub fn run(role: &str) { match role { ... } }
/// shmsock_testkit::peer_main!(roles::run);
/// ```
#[macro_export]
macro_rules! peer_main {
    ($run:path) => {
        /// The child-process side of every multi-process test. Does nothing unless a test
        /// spawned this binary with `SHMSOCK_TEST_ROLE` set; then it runs that role and
        /// exits.
        #[test]
        #[ignore = "the child-process side of the multi-process tests; runs only when they spawn it"]
        fn peer_main() {
            $crate::child::run_role($run);
        }
    };
}

#[test]
fn assert_mentions_fails_on_a_missing_word() {
    assert_mentions("forwarded 2 messages, is gone", &["is gone", "forwarded 2"]);
    let missing =
        std::panic::catch_unwind(|| assert_mentions("is gone", &["is gone", "--reconnect"]));
    assert!(missing.is_err());
}
