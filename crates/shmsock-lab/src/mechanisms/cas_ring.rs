//! `cas-ring`: a textbook lock-free multi-producer ring in shared memory (the "lock-free queue"
//! of the Comparison's contention table).
//!
//! Dmitry Vyukov's bounded queue, with one consumer: every slot carries a *stamp* saying whose
//! turn it is. Producers share one `tail` counter and claim a position with a compare-and-swap;
//! nobody takes a lock, but every producer bounces the same `tail` cache line, which is what
//! the contention experiment measures as producers are added.
//!
//! ```text
//! 0    : tail    next position to claim (compare-and-swap by every producer)
//! 64.. : slot[i] = [stamp: u64, padded to a line][payload: size bytes, padded to lines]
//! ```
//!
//! - slot `i` starts with stamp `i` (written before the fork);
//! - a producer at position `p` (slot `p & (n-1)`) may claim it when `stamp == p`: it CASes
//!   `tail` from `p` to `p + 1`, copies the payload in, and stores `stamp = p + 1` (Release);
//! - the consumer at position `h` waits for `stamp == h + 1` (Acquire), copies the payload out,
//!   and stores `stamp = h + n` (Release): the slot's turn for the producer one lap later.
//!
//! A producer preempted between its CAS and its stamp store holds up the consumer until it runs
//! again (the queue is lock-free for producers, not for the consumer): on a 2-CPU machine, where
//! the producers time-share a CPU, that is part of what the experiment shows.
//!
//! # Safety
//!
//! The payload copies are `unsafe`: a producer writes slot `p` only after winning the CAS for
//! `p` while the stamp said the slot is free (so no other producer and not the consumer touches
//! it), and the consumer reads it only after seeing the producer's Release store of `p + 1`.
#![allow(unsafe_code)]

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::lanes::{self, Lane};
use super::{
    check_len, message_buf, spin_until, FanIn, FanInSides, Mechanism, Pair, Pattern, Slots,
};
use crate::error::LabError;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

const TAIL_OFFSET: usize = 0;
const SLOTS_OFFSET: usize = CACHE_LINE_BYTES;

/// The textbook multi-producer CAS ring.
#[derive(Debug, Clone, Copy, Default)]
pub struct CasRing;

impl CasRing {
    fn ring(size: usize) -> Result<Ring, LabError> {
        let size = size.max(1);
        let stride = CACHE_LINE_BYTES + size.next_multiple_of(CACHE_LINE_BYTES);
        let slots = Slots::for_messages(size, stride);
        let region = Rc::new(SharedRegion::new(slots.end())?);
        for i in 0..slots.count as u64 {
            // Relaxed: nobody else maps the region yet (we have not forked).
            region.atomic_u64(slots.at(i)).store(i, Ordering::Relaxed);
        }
        Ok(Ring {
            region,
            slots,
            size,
            head: 0,
        })
    }
}

impl Mechanism for CasRing {
    fn name(&self) -> &'static str {
        "cas-ring"
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        lanes::pair("cas-ring", pattern, || Self::ring(size))
    }
}

impl FanIn for CasRing {
    fn name(&self) -> &'static str {
        "cas-ring"
    }

    fn setup_fan_in(&self, producers: usize, size: usize) -> Result<FanInSides, LabError> {
        lanes::fan_in("cas-ring", producers, Self::ring(size)?)
    }
}

/// One process's handle on a ring.
struct Ring {
    region: Rc<SharedRegion>,
    /// Each slot: the stamp, then (one line later) the payload.
    slots: Slots<SLOTS_OFFSET>,
    size: usize,
    /// The consumer's position (only the one consumer uses it).
    head: u64,
}

impl Lane for Ring {
    fn handle(&self) -> Result<Self, LabError> {
        Ok(Self {
            region: Rc::clone(&self.region),
            slots: self.slots,
            size: self.size,
            head: 0,
        })
    }

    fn prefault(&self) {
        self.region.prefault();
    }

    fn push(&mut self, msg: &[u8]) -> Result<(), LabError> {
        check_len(msg.len(), self.size)?;
        let tail = self.region.atomic_u64(TAIL_OFFSET);
        let pos = spin_until("waiting for a free cas-ring slot", || {
            let pos = tail.load(Ordering::Relaxed);
            // Acquire pairs with the consumer's Release store of `h + n` in `pop`: the slot's
            // previous payload has been read before we overwrite it.
            let stamp = self
                .region
                .atomic_u64(self.slots.at(pos))
                .load(Ordering::Acquire);
            // stamp == pos: free for us; stamp < pos: full (a lap behind); stamp > pos: another
            // producer claimed it and `tail` has moved on. Only the first is worth a CAS.
            (stamp == pos
                && tail
                    .compare_exchange_weak(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
            .then_some(pos)
        })?;
        let slot = self.slots.at(pos);
        // SAFETY: we won position `pos` while its stamp said free, so nobody else touches the
        // slot until our Release store of the stamp below.
        unsafe { self.region.write_bytes(slot + CACHE_LINE_BYTES, msg) };
        // Release pairs with the consumer's Acquire load of the stamp in `pop`.
        self.region
            .atomic_u64(slot)
            .store(pos + 1, Ordering::Release);
        Ok(())
    }

    fn pop(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let size = self.size;
        let out = message_buf(buf, size)?;
        let slot = self.slots.at(self.head);
        let stamp = self.region.atomic_u64(slot);
        let ready = self.head + 1;
        // Acquire pairs with the producer's Release store of the stamp in `push`.
        spin_until("waiting for a cas-ring message", || {
            (stamp.load(Ordering::Acquire) == ready).then_some(())
        })?;
        // SAFETY: the stamp says slot `head` holds a published message, and no producer writes
        // it until our Release store below gives it back.
        unsafe { self.region.read_bytes(slot + CACHE_LINE_BYTES, out) };
        // Release pairs with the producers' Acquire load of the stamp in `push`.
        stamp.store(self.head + self.slots.count as u64, Ordering::Release);
        self.head += 1;
        Ok(size)
    }
}
