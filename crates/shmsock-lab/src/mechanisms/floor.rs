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
//! (the sequence number), which is why it has a latency row and no throughput row.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::{spin_until, Mechanism, Pair, Pattern, Side};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::LabError;

/// Bytes a floor "message" carries: one `u64` counter.
pub const FLOOR_PAYLOAD_BYTES: usize = 8;

const PING_OFFSET: usize = 0;
const PONG_OFFSET: usize = CACHE_LINE_BYTES;

/// The cache-line ping-pong.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floor;

impl Mechanism for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }

    fn supports(&self, pattern: Pattern) -> bool {
        pattern == Pattern::PingPong
    }

    fn payload_len(&self, _size: usize) -> usize {
        FLOOR_PAYLOAD_BYTES
    }

    fn setup(&self, pattern: Pattern, _size: usize) -> Result<Pair, LabError> {
        if pattern != Pattern::PingPong {
            return Err(LabError::Unsupported {
                mechanism: "floor",
                what: "streaming (it measures latency only)",
            });
        }
        let region = Rc::new(SharedRegion::new(2 * CACHE_LINE_BYTES)?);
        let side = |tx, rx| FloorSide {
            region: Rc::clone(&region),
            tx,
            rx,
            last_seen: 0,
        };
        Ok(Pair {
            parent: Box::new(side(PING_OFFSET, PONG_OFFSET)),
            child: Box::new(side(PONG_OFFSET, PING_OFFSET)),
        })
    }
}

struct FloorSide {
    region: Rc<SharedRegion>,
    tx: usize,
    rx: usize,
    last_seen: u64,
}

impl Side for FloorSide {
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        let counter = msg
            .first_chunk::<FLOOR_PAYLOAD_BYTES>()
            .map(|b| u64::from_le_bytes(*b))
            .ok_or(LabError::WrongSize {
                len: msg.len(),
                size: FLOOR_PAYLOAD_BYTES,
            })?;
        // Release pairs with the Acquire load in the peer's `recv`.
        self.region
            .atomic_u64(self.tx)
            .store(counter, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let len = buf.len();
        let out = buf
            .first_chunk_mut::<FLOOR_PAYLOAD_BYTES>()
            .ok_or(LabError::WrongSize {
                len,
                size: FLOOR_PAYLOAD_BYTES,
            })?;
        let line = self.region.atomic_u64(self.rx);
        let last = self.last_seen;
        // Acquire pairs with the Release store in the peer's `send`.
        let seen = spin_until("waiting for the floor counter", || {
            let v = line.load(Ordering::Acquire);
            (v != last).then_some(v)
        })?;
        self.last_seen = seen;
        *out = seen.to_le_bytes();
        Ok(FLOOR_PAYLOAD_BYTES)
    }
}
