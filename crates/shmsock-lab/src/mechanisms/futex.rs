//! `futex`: ping-pong on shared futex words, sleeping in the kernel every time (latency only).
//!
//! The bare kernel wake-up, with no file descriptor, no copy and no spinning: each direction
//! has a cache line with a 4-byte futex word (a generation counter) and an 8-byte payload word.
//!
//! ```text
//! line 0: ping  [gen: u32][pad][payload: u64]   written only by the parent
//! line 1: pong  [gen: u32][pad][payload: u64]   written only by the child
//! ```
//!
//! `send` stores the payload, bumps the generation (Release) and calls `FUTEX_WAKE`
//! unconditionally; `recv` loads the generation (Acquire) and, while it has not changed, calls
//! `FUTEX_WAIT` on it (shared, not `FUTEX_PRIVATE`: the word is in memory shared by two
//! processes). Every wait has a timeout, so a dead peer is a stall error, never a hang. A
//! "message" is its first 8 bytes ([`WORD_BYTES`](super::latency_only::WORD_BYTES)), like `floor`'s.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use super::latency_only::{line_pair, Doorbell, LatencyOnly, Lines};
use super::sleep_until;
use crate::error::LabError;

/// Offset of the payload word inside a line.
const PAYLOAD_OFFSET: usize = 8;
/// Longest single `FUTEX_WAIT`; the stall timeout is checked between waits.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Ping-pong through two futex words.
pub const FUTEX: LatencyOnly =
    LatencyOnly::word::<FutexBell>("futex", "streaming (it measures the wake-up only)");

struct FutexBell {
    lines: Lines,
    tx_gen: u32,
    rx_gen: u32,
}

impl Doorbell for FutexBell {
    fn pair() -> Result<(Self, Self), LabError> {
        line_pair(|lines| FutexBell {
            lines,
            tx_gen: 0,
            rx_gen: 0,
        })
    }

    #[inline]
    fn ring(&mut self, payload: u64) -> Result<(), LabError> {
        self.lines
            .region
            .atomic_u64(self.lines.tx + PAYLOAD_OFFSET)
            .store(payload, Ordering::Relaxed);
        self.tx_gen = self.tx_gen.wrapping_add(1);
        let word = self.lines.region.atomic_u32(self.lines.tx);
        // Release pairs with the Acquire load of the generation in the peer's `wait`: the
        // payload stored above is visible once the new generation is.
        word.store(self.tx_gen, Ordering::Release);
        futex::wake(word, futex::Flags::empty(), 1).map_err(LabError::os("FUTEX_WAKE"))?;
        Ok(())
    }

    #[inline]
    fn wait(&mut self) -> Result<u64, LabError> {
        let word = self.lines.region.atomic_u32(self.lines.rx);
        let slice = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: WAIT_SLICE.subsec_nanos().into(),
        };
        let rx_gen = self.rx_gen;
        self.rx_gen = sleep_until("waiting on the futex", || {
            // Acquire pairs with the Release store of the generation in the peer's `ring`.
            let gen = word.load(Ordering::Acquire);
            if gen != rx_gen {
                return Ok(Some(gen));
            }
            match futex::wait(word, futex::Flags::empty(), gen, Some(&slice)) {
                Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => Ok(None),
                Err(e) => Err(LabError::os("FUTEX_WAIT")(e)),
            }
        })?;
        Ok(self
            .lines
            .region
            .atomic_u64(self.lines.rx + PAYLOAD_OFFSET)
            .load(Ordering::Relaxed))
    }
}
