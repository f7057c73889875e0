//! Waits on a publisher's subscriber count, which the tests use to know that their
//! subscribers have arrived (or left) before they publish.

use std::time::{Duration, Instant};

use shmsock::Publisher;

use crate::harness::STEP_TIMEOUT;

/// Waits (at most [`STEP_TIMEOUT`]) until `publisher` counts exactly `n` subscribers
/// (they are merged, or found gone, at its next call).
pub fn wait_for_subscribers(publisher: &mut Publisher, n: usize) {
    wait_for_subscriber_count(publisher, STEP_TIMEOUT, &format!("exactly {n}"), |c| c == n);
}

/// Waits (at most [`STEP_TIMEOUT`]) until `publisher` counts `n` subscribers or more.
pub fn wait_for_at_least(publisher: &mut Publisher, n: usize) {
    wait_for_subscriber_count(publisher, STEP_TIMEOUT, &format!("at least {n}"), |c| {
        c >= n
    });
}

/// Waits (at most `timeout`) until `publisher`'s subscriber count satisfies `enough`, which
/// `expected` describes in the failure message (e.g. `"exactly 2"`).
pub fn wait_for_subscriber_count(
    publisher: &mut Publisher,
    timeout: Duration,
    expected: &str,
    enough: impl Fn(usize) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let count = publisher.subscriber_count();
        if enough(count) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} subscribers after {timeout:?}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
