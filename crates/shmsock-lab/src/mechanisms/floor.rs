//! `floor`: the bare cache-line ping-pong, the fastest any shared-memory round trip can be here.
//!
//! Two counters, each alone on its cache line of a shared anonymous mapping:
//!
//! ```text
//! line 0: ping  (written only by the parent)    line 1: pong  (written only by the child)
//! ```
//!
//! The parent stores sequence number `n` into `ping`; the child spins until `ping` changes,
//! stores what it saw into `pong`; the parent spins until `pong` changes. A round trip is two
//! cache-line transfers between the cores and nothing else, so every other mechanism's latency
//! is reported as a multiple of this one. It moves no payload: a "message" is its first 8 bytes
//! (the sequence number, [`WORD_BYTES`](super::latency_only::WORD_BYTES)), which is why it has
//! a latency row and no throughput row.

use std::sync::atomic::Ordering;

use super::latency_only::{line_pair, Doorbell, LatencyOnly, Lines};
use super::spin_until;
use crate::error::LabError;

/// The cache-line ping-pong.
pub const FLOOR: LatencyOnly =
    LatencyOnly::word::<FloorBell>("floor", "streaming (it measures latency only)");

struct FloorBell {
    lines: Lines,
    last_seen: u64,
}

impl Doorbell for FloorBell {
    fn pair() -> Result<(Self, Self), LabError> {
        line_pair(|lines| FloorBell {
            lines,
            last_seen: 0,
        })
    }

    #[inline]
    fn ring(&mut self, counter: u64) -> Result<(), LabError> {
        // Release pairs with the Acquire load in the peer's `wait`.
        self.lines
            .region
            .atomic_u64(self.lines.tx)
            .store(counter, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn wait(&mut self) -> Result<u64, LabError> {
        let line = self.lines.region.atomic_u64(self.lines.rx);
        let last = self.last_seen;
        // Acquire pairs with the Release store in the peer's `ring`.
        let seen = spin_until("waiting for the floor counter", || {
            let v = line.load(Ordering::Acquire);
            (v != last).then_some(v)
        })?;
        self.last_seen = seen;
        Ok(seen)
    }
}
