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
//! "message" is its first 8 bytes, like `floor`'s.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use super::{Mechanism, Pair, Pattern, Side, STALL_TIMEOUT};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::LabError;

/// Bytes a futex "message" carries: the payload word.
pub const FUTEX_PAYLOAD_BYTES: usize = 8;

const PING_OFFSET: usize = 0;
const PONG_OFFSET: usize = CACHE_LINE_BYTES;
/// Offset of the payload word inside a line.
const PAYLOAD_OFFSET: usize = 8;
/// Longest single `FUTEX_WAIT`; the stall timeout is checked between waits.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Ping-pong through two futex words.
#[derive(Debug, Clone, Copy, Default)]
pub struct Futex;

impl Mechanism for Futex {
    fn name(&self) -> &'static str {
        "futex"
    }

    fn supports(&self, pattern: Pattern) -> bool {
        pattern == Pattern::PingPong
    }

    fn payload_len(&self, _size: usize) -> usize {
        FUTEX_PAYLOAD_BYTES
    }

    fn setup(&self, pattern: Pattern, _size: usize) -> Result<Pair, LabError> {
        if pattern != Pattern::PingPong {
            return Err(LabError::Unsupported {
                mechanism: "futex",
                what: "streaming (it measures the wake-up only)",
            });
        }
        let region = Rc::new(SharedRegion::new(2 * CACHE_LINE_BYTES)?);
        let side = |tx, rx| FutexSide {
            region: Rc::clone(&region),
            tx,
            rx,
            tx_gen: 0,
            rx_gen: 0,
        };
        Ok(Pair {
            parent: Box::new(side(PING_OFFSET, PONG_OFFSET)),
            child: Box::new(side(PONG_OFFSET, PING_OFFSET)),
        })
    }
}

struct FutexSide {
    region: Rc<SharedRegion>,
    tx: usize,
    rx: usize,
    tx_gen: u32,
    rx_gen: u32,
}

impl Side for FutexSide {
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        let payload = msg
            .first_chunk::<FUTEX_PAYLOAD_BYTES>()
            .map(|b| u64::from_le_bytes(*b))
            .ok_or(LabError::WrongSize {
                len: msg.len(),
                size: FUTEX_PAYLOAD_BYTES,
            })?;
        self.region
            .atomic_u64(self.tx + PAYLOAD_OFFSET)
            .store(payload, Ordering::Relaxed);
        self.tx_gen = self.tx_gen.wrapping_add(1);
        let word = self.region.atomic_u32(self.tx);
        // Release pairs with the Acquire load of the generation in the peer's `recv`: the
        // payload stored above is visible once the new generation is.
        word.store(self.tx_gen, Ordering::Release);
        futex::wake(word, futex::Flags::empty(), 1).map_err(LabError::os("FUTEX_WAKE"))?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let len = buf.len();
        let out = buf
            .first_chunk_mut::<FUTEX_PAYLOAD_BYTES>()
            .ok_or(LabError::WrongSize {
                len,
                size: FUTEX_PAYLOAD_BYTES,
            })?;
        let word = self.region.atomic_u32(self.rx);
        let started = Instant::now();
        let slice = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: WAIT_SLICE.subsec_nanos().into(),
        };
        loop {
            // Acquire pairs with the Release store of the generation in the peer's `send`.
            let gen = word.load(Ordering::Acquire);
            if gen != self.rx_gen {
                self.rx_gen = gen;
                break;
            }
            match futex::wait(word, futex::Flags::empty(), gen, Some(&slice)) {
                Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => {}
                Err(e) => return Err(LabError::os("FUTEX_WAIT")(e)),
            }
            if started.elapsed() > STALL_TIMEOUT {
                return Err(LabError::Stalled {
                    what: "waiting on the futex",
                    waited: started.elapsed(),
                });
            }
        }
        let payload = self
            .region
            .atomic_u64(self.rx + PAYLOAD_OFFSET)
            .load(Ordering::Relaxed);
        *out = payload.to_le_bytes();
        Ok(FUTEX_PAYLOAD_BYTES)
    }
}
