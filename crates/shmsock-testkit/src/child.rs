//! The child side of the harness: running the role the parent asked for, reporting to the
//! parent, and reading the parameters it put in the environment.
//!
//! A role reports progress with [`report`] (a `@@peer` line on stdout) when the parent has
//! to synchronise with it. Every child dies with the thread that spawned it
//! (`PR_SET_PDEATHSIG`, set by [`run_role`]) and a role that waits to be killed sleeps at
//! most [`IDLE_MAX`], so no role outlives a failed test.

use std::io::Write;
use std::time::Duration;

use rustix::process::Signal;

use crate::harness::{ENDPOINT_ENV, REPORT_MARK, ROLE_ENV};

/// Number of messages a sending role sends.
pub const COUNT_ENV: &str = "SHMSOCK_TEST_COUNT";
/// Seed of a role's message stream (lengths and bodies, see [`crate::message`]).
pub const SEED_ENV: &str = "SHMSOCK_TEST_SEED";
/// Largest message of a role's stream.
pub const MAX_LEN_ENV: &str = "SHMSOCK_TEST_MAX_LEN";
/// Wall-clock instant (ns since the Unix epoch) at which a role starts its race (see
/// [`wait_for_start`]).
pub const START_AT_ENV: &str = "SHMSOCK_TEST_START_AT";

/// Longest a role waits to be killed.
pub const IDLE_MAX: Duration = Duration::from_secs(60);

/// The body of a binary's `peer_main` test (see [`crate::peer_main!`]): if this process was
/// spawned with a role, makes it die with its parent, runs `run(role, endpoint)` and exits;
/// otherwise returns at once.
pub fn run_role(run: impl FnOnce(&str, &str)) {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    die_with_parent();
    run(&role, &var(ENDPOINT_ENV));
    std::process::exit(0);
}

/// Dies by SIGKILL when the parent thread that spawned us ends (also to be called again
/// after a credential change, which clears it).
pub fn die_with_parent() {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .expect("prctl(PR_SET_PDEATHSIG)");
}

/// Prints one protocol line for the parent ([`crate::harness::Peer::expect`] reads it).
pub fn report(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{REPORT_MARK}{line}").expect("writing to the parent");
    out.flush().expect("flushing to the parent");
}

/// The environment variable `name`, which the parent must have set.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent did not set {name}"))
}

/// The environment variable `name` as a number, which the parent must have set.
pub fn var_u64(name: &str) -> u64 {
    var(name)
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not a number: {e}"))
}

/// The seed ([`SEED_ENV`]) and largest length ([`MAX_LEN_ENV`]) of this role's stream.
pub fn seed_and_max_len() -> (u64, usize) {
    (var_u64(SEED_ENV), var_u64(MAX_LEN_ENV) as usize)
}

/// Spins until the wall-clock instant of [`START_AT_ENV`], so that several children (or a
/// child and the parent's kill) meet at the same moment.
pub fn wait_for_start() {
    let start = Duration::from_nanos(var_u64(START_AT_ENV));
    while std::time::UNIX_EPOCH.elapsed().expect("clock after 1970") < start {
        std::hint::spin_loop();
    }
}
