//! `raw-offset` and `shmsock-offset`: pointer (offset) exchange, the zero-copy hybrid of the
//! reference documents (the Comparison measures 1 MB "pointer exchange only; no data copying").
//!
//! The payload stays in a shared pool of [`POOL_SLOTS`] slots; only a 16-byte message
//! `[sequence number][offset of the slot]` crosses a carrier channel (the textbook ring for
//! `raw-offset`, a shmsock connection for `shmsock-offset`). The producer writes the sequence
//! number into the first and last 8 bytes of the slot (standing for producing the payload in
//! place) and sends the offset; the consumer checks both words against the carrier message and
//! hands the slot back by publishing how many slots it has released. Nobody copies the payload,
//! so the row's "bytes per second" is offsets per second × message size: what zero copy buys.
//!
//! ```text
//! pool: line 0: released  (slots handed back; written only by the consumer)
//!       64..  : slot[0] slot[1] ... slot[POOL_SLOTS-1], `size` bytes each
//! ```
//!
//! Because `recv` hands back only the first 8 bytes of a message (the payload is not copied:
//! that is the point), this is not a [`Mechanism`] of the integrity check or the latency
//! table; it runs only in the bulk throughput rows, and verifies every message itself.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::{spin_until, Mechanism, Pair, Pattern, Side};
use crate::error::LabError;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

/// Slots in the pool: how many messages may be in flight.
pub const POOL_SLOTS: u64 = 8;
/// Bytes of a carrier message: sequence number and slot offset.
const CARRIER_BYTES: usize = 16;
const RELEASED_OFFSET: usize = 0;
const SLOTS_OFFSET: usize = CACHE_LINE_BYTES;

/// Offsets over a carrier mechanism, payload in a shared pool.
pub struct OffsetExchange {
    name: &'static str,
    carrier: Box<dyn Mechanism>,
}

impl OffsetExchange {
    /// `raw-offset`: offsets over the textbook ring.
    pub fn raw() -> Self {
        Self {
            name: "raw-offset",
            carrier: Box::new(super::raw_ring::RawRing::anonymous()),
        }
    }

    /// `shmsock-offset`: offsets over a shmsock connection (default options).
    pub fn shmsock() -> Self {
        Self {
            name: "shmsock-offset",
            carrier: Box::new(super::shmsock::Shmsock::adaptive()),
        }
    }

    /// The copying mechanism this row is the zero-copy counterpart of.
    pub fn copying_counterpart(&self) -> &'static str {
        match self.name {
            "raw-offset" => "raw-ring",
            _ => "shmsock",
        }
    }
}

impl Mechanism for OffsetExchange {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, pattern: Pattern) -> bool {
        pattern == Pattern::Stream
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        if pattern != Pattern::Stream || size < 16 || !size.is_multiple_of(8) {
            return Err(LabError::Unsupported {
                mechanism: "offset exchange",
                what: "anything but streaming messages of a multiple of 8 bytes, 16 or more",
            });
        }
        let pool = Rc::new(SharedRegion::new(
            SLOTS_OFFSET + POOL_SLOTS as usize * size,
        )?);
        let carrier = self.carrier.setup(Pattern::Stream, CARRIER_BYTES)?;
        let side = |carrier| OffsetSide {
            carrier,
            pool: Rc::clone(&pool),
            size,
            count: 0,
        };
        Ok(Pair {
            parent: Box::new(side(carrier.parent)),
            child: Box::new(side(carrier.child)),
        })
    }
}

struct OffsetSide {
    carrier: Box<dyn Side>,
    pool: Rc<SharedRegion>,
    size: usize,
    /// Messages sent (producer) or received (consumer) so far.
    count: u64,
}

impl OffsetSide {
    fn slot_offset(&self, n: u64) -> usize {
        SLOTS_OFFSET + (n % POOL_SLOTS) as usize * self.size
    }
}

impl Side for OffsetSide {
    fn start(&mut self) -> Result<(), LabError> {
        self.pool.prefault();
        self.carrier.start()
    }

    fn abandon(self: Box<Self>) {
        let this = *self;
        this.carrier.abandon();
    }

    fn break_channel(&mut self) {
        self.carrier.break_channel();
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        let seq = msg
            .first_chunk::<8>()
            .map(|b| u64::from_le_bytes(*b))
            .ok_or(LabError::WrongSize {
                len: msg.len(),
                size: self.size,
            })?;
        let n = self.count;
        let released = self.pool.atomic_u64(RELEASED_OFFSET);
        // Acquire pairs with the consumer's Release store of `released`: the slot we reuse has
        // been read before we write it.
        spin_until("waiting for a free pool slot", || {
            (n - released.load(Ordering::Acquire) < POOL_SLOTS).then_some(())
        })?;
        let offset = self.slot_offset(n);
        // Relaxed: published by the carrier's send below (a Release store in both carriers).
        self.pool.atomic_u64(offset).store(seq, Ordering::Relaxed);
        self.pool
            .atomic_u64(offset + self.size - 8)
            .store(seq, Ordering::Relaxed);
        let mut carried = [0u8; CARRIER_BYTES];
        carried[..8].copy_from_slice(&seq.to_le_bytes());
        carried[8..].copy_from_slice(&(offset as u64).to_le_bytes());
        self.carrier.send(&carried)?;
        self.count += 1;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let mut carried = [0u8; CARRIER_BYTES];
        let n = self.carrier.recv(&mut carried)?;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&carried[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let (seq, offset) = (word(0), word(8));
        let expected = self.slot_offset(self.count) as u64;
        if n != CARRIER_BYTES || offset != expected {
            return Err(LabError::Integrity {
                detail: format!("offset {offset} ({n} bytes) where slot offset {expected} was due"),
            });
        }
        let offset = expected as usize;
        // Relaxed: the carrier's recv (an Acquire load) made the producer's stores visible.
        let head = self.pool.atomic_u64(offset).load(Ordering::Relaxed);
        let tail = self
            .pool
            .atomic_u64(offset + self.size - 8)
            .load(Ordering::Relaxed);
        if head != seq || tail != seq {
            return Err(LabError::Integrity {
                detail: format!("slot carries {head}/{tail}, message says {seq}"),
            });
        }
        self.count += 1;
        // Release pairs with the producer's Acquire load in `send`: we are done with the slot.
        self.pool
            .atomic_u64(RELEASED_OFFSET)
            .store(self.count, Ordering::Release);
        let len = buf.len();
        let out = buf.first_chunk_mut::<8>().ok_or(LabError::WrongSize {
            len,
            size: self.size,
        })?;
        *out = seq.to_le_bytes();
        Ok(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::{throughput, Budget};
    use crate::host::Pinning;
    use std::time::Duration;

    const TINY: Budget = Budget {
        warmup_iters: 64,
        warmup_time: Duration::from_millis(20),
        iters: 2_000,
        max_time: Duration::from_millis(100),
    };

    fn streams_every_offset_intact(exchange: OffsetExchange) {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("affinity");
        let row = throughput::measure(&exchange, 4096, TINY, pinning)
            .unwrap_or_else(|e| panic!("{}: {e}", exchange.name()));
        assert!(row.messages > 0, "{row:?}");
    }

    #[test]
    fn raw_offset_exchange_delivers_every_slot_in_order() {
        streams_every_offset_intact(OffsetExchange::raw());
    }

    #[test]
    fn shmsock_offset_exchange_delivers_every_slot_in_order() {
        streams_every_offset_intact(OffsetExchange::shmsock());
    }
}
