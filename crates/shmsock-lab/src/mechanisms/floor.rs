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

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::latency_only::{line_pair, Carries, Doorbell, LatencyOnly};
use super::{spin_until, Pair};
use crate::shared::SharedRegion;
use crate::LabError;

/// The cache-line ping-pong.
pub const FLOOR: LatencyOnly = LatencyOnly::new(
    "floor",
    "streaming (it measures latency only)",
    Carries::Word,
    floor_pair,
);

/// Both sides of the ping-pong, before the fork.
fn floor_pair(_size: usize) -> Result<Pair, LabError> {
    line_pair(|region, tx, rx| FloorBell {
        region,
        tx,
        rx,
        last_seen: 0,
    })
}

struct FloorBell {
    region: Rc<SharedRegion>,
    tx: usize,
    rx: usize,
    last_seen: u64,
}

impl Doorbell for FloorBell {
    #[inline]
    fn ring(&mut self, counter: u64) -> Result<(), LabError> {
        // Release pairs with the Acquire load in the peer's `wait`.
        self.region
            .atomic_u64(self.tx)
            .store(counter, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn wait(&mut self) -> Result<u64, LabError> {
        let line = self.region.atomic_u64(self.rx);
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
