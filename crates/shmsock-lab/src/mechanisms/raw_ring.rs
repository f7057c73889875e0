//! `raw-ring`: a minimal textbook single-producer single-consumer ring in shared memory.
//!
//! It is the memcpy limit: fixed slots of exactly the message size, copy in, copy out, no
//! framing, no validation, no sleeping. A transport that copies messages cannot move them
//! faster than this, so the throughput table reports every mechanism as a fraction of it.
//!
//! ```text
//! line 0: head  consumer's position (written only by the consumer)
//! line 1: tail  producer's position (written only by the producer)
//! 128.. : slot[0] slot[1] ... slot[n-1]     n = a power of two, n * size ≈ RING_BYTES
//! ```
//!
//! Positions count messages and never wrap in practice (`u64`); a position's slot is
//! `pos & (n - 1)`. The producer writes slot `tail`, then publishes `tail + 1` with a Release
//! store; the consumer sees it with an Acquire load, copies the slot out, then publishes
//! `head + 1` with a Release store, which hands the slot back. Each side caches the other's
//! position and rereads it only when the ring looks full (producer) or empty (consumer), the
//! usual trick that keeps the two cache lines from bouncing on every message.
//!
//! # Safety
//!
//! The slot copies are `unsafe` ([`SharedRegion::write_bytes`]/[`SharedRegion::read_bytes`]):
//! the protocol above guarantees that a slot is written only while it is outside
//! `head..tail` and read only while inside it, so the two processes never touch it at once.
#![allow(unsafe_code)]

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::{check_len, message_buf, spin_until, Mechanism, Pair, Pattern, Side, Slots};
use crate::error::LabError;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

const HEAD_OFFSET: usize = 0;
const TAIL_OFFSET: usize = CACHE_LINE_BYTES;
const SLOTS_OFFSET: usize = 2 * CACHE_LINE_BYTES;

/// What the ring's memory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backing {
    /// `MAP_SHARED | MAP_ANONYMOUS`, inherited across `fork`.
    Anonymous,
    /// A `MAP_SHARED` mapping of a file in the temporary directory.
    File,
}

/// The textbook SPSC ring, over anonymous shared memory or a memory-mapped file.
///
/// Three rows use it: `raw-ring` (anonymous memory), `mmap-file` (the same ring in a
/// `MAP_SHARED` file mapping: the "memory-mapped file" of the reference menu) and `shm-cold`
/// (anonymous memory, but before every timed round trip the parent evicts the next two
/// payload slots from every cache with `clflush`, so each message's payload is a cache miss:
/// the reference documents' "shared memory (cache miss)" row).
///
/// Other rows build the same ring in other memory through [`sides`] and [`ends`]: `shm-open`
/// (a POSIX shared-memory object) and `mmap-file-durable/N` (a file, with `msync`).
#[derive(Debug, Clone, Copy)]
pub struct RawRing {
    name: &'static str,
    backing: Backing,
    cold: bool,
}

impl Default for RawRing {
    fn default() -> Self {
        Self::anonymous()
    }
}

impl RawRing {
    /// `raw-ring`: anonymous shared memory, payload hot in the caches.
    pub fn anonymous() -> Self {
        Self {
            name: "raw-ring",
            backing: Backing::Anonymous,
            cold: false,
        }
    }

    /// `mmap-file`: the ring in a `MAP_SHARED` mapping of a temporary file.
    pub fn mapped_file() -> Self {
        Self {
            name: "mmap-file",
            backing: Backing::File,
            cold: false,
        }
    }

    /// `shm-cold`: anonymous shared memory, payload evicted before every round trip
    /// (latency only).
    pub fn cold() -> Self {
        Self {
            name: "shm-cold",
            backing: Backing::Anonymous,
            cold: true,
        }
    }
}

impl Mechanism for RawRing {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, pattern: Pattern) -> bool {
        !self.cold || pattern == Pattern::PingPong
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        if self.cold && (pattern != Pattern::PingPong || !cfg!(target_arch = "x86_64")) {
            return Err(LabError::Unsupported {
                mechanism: "shm-cold",
                what: "anything but ping-pong on x86-64 (it evicts lines with clflush)",
            });
        }
        let backing = self.backing;
        let (mut parent, mut child) = sides(pattern, size, |len| match backing {
            Backing::Anonymous => SharedRegion::new(len),
            Backing::File => SharedRegion::new_file(len),
        })?;
        parent.cold = self.cold;
        child.cold = self.cold;
        Ok(Pair {
            parent: Box::new(parent),
            child: Box::new(child),
        })
    }
}

/// Bytes the region of one ring of `size`-byte messages needs.
pub(crate) fn ring_len(size: usize) -> usize {
    let size = size.max(1);
    Slots::<SLOTS_OFFSET>::for_messages(size, size).end()
}

/// Bytes of the slots of one ring of `size`-byte messages (its region less the two lines of
/// positions).
pub(crate) fn slots_len(size: usize) -> usize {
    ring_len(size) - SLOTS_OFFSET
}

/// Slots of one ring of `size`-byte messages: how many messages it holds.
pub(crate) fn slot_count(size: usize) -> u64 {
    let size = size.max(1);
    Slots::<SLOTS_OFFSET>::for_messages(size, size).count as u64
}

/// The parent's and the child's side of the ring(s) `pattern` needs for `size`-byte messages,
/// each ring in a region of [`ring_len`] bytes that `region` makes (zero-filled): child ->
/// parent always, parent -> child too for ping-pong.
pub(crate) fn sides(
    pattern: Pattern,
    size: usize,
    mut region: impl FnMut(usize) -> Result<SharedRegion, LabError>,
) -> Result<(RawRingSide, RawRingSide), LabError> {
    let mut ring = || Ok::<_, LabError>(ends(Rc::new(region(ring_len(size))?), size));
    let (up_tx, up_rx) = ring()?;
    Ok(match pattern {
        Pattern::Stream => (
            RawRingSide::new(None, Some(up_rx)),
            RawRingSide::new(Some(up_tx), None),
        ),
        Pattern::PingPong => {
            let (down_tx, down_rx) = ring()?;
            (
                RawRingSide::new(Some(down_tx), Some(up_rx)),
                RawRingSide::new(Some(up_tx), Some(down_rx)),
            )
        }
    })
}

/// The two ends of a ring of `size`-byte messages in `region` (at least [`ring_len`] bytes,
/// zero-filled or holding a ring an earlier producer left: the positions are in the region).
pub(crate) fn ends(region: Rc<SharedRegion>, size: usize) -> (Producer, Consumer) {
    let size = size.max(1);
    let layout = Layout {
        slots: Slots::for_messages(size, size),
        size,
    };
    // Relaxed: only a starting point; `push` and `pop` reread the other side's position with
    // Acquire before they rely on it.
    let head = region.atomic_u64(HEAD_OFFSET).load(Ordering::Relaxed);
    let tail = region.atomic_u64(TAIL_OFFSET).load(Ordering::Relaxed);
    (
        Producer {
            region: Rc::clone(&region),
            layout,
            tail,
            cached_head: head,
        },
        Consumer {
            region,
            layout,
            head,
            cached_tail: head,
        },
    )
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    slots: Slots<SLOTS_OFFSET>,
    size: usize,
}

/// The producing end of a ring.
pub(crate) struct Producer {
    region: Rc<SharedRegion>,
    layout: Layout,
    tail: u64,
    cached_head: u64,
}

impl Producer {
    fn push(&mut self, msg: &[u8]) -> Result<(), LabError> {
        check_len(msg.len(), self.layout.size)?;
        let slots = self.layout.slots.count as u64;
        if self.tail - self.cached_head == slots {
            let head = self.region.atomic_u64(HEAD_OFFSET);
            let tail = self.tail;
            // Acquire pairs with the consumer's Release store of `head` in `pop`: the slot
            // it frees has been fully read before we overwrite it.
            self.cached_head = spin_until("waiting for a free raw-ring slot", || {
                let h = head.load(Ordering::Acquire);
                (tail - h < slots).then_some(h)
            })?;
        }
        // SAFETY: slot `tail` is outside `head..tail`, so the consumer does not read it until
        // the Release store below publishes it.
        unsafe {
            self.region
                .write_bytes(self.layout.slots.at(self.tail), msg)
        };
        self.tail += 1;
        // Release pairs with the consumer's Acquire load of `tail` in `pop`.
        self.region
            .atomic_u64(TAIL_OFFSET)
            .store(self.tail, Ordering::Release);
        Ok(())
    }
}

/// The consuming end of a ring.
pub(crate) struct Consumer {
    region: Rc<SharedRegion>,
    layout: Layout,
    head: u64,
    cached_tail: u64,
}

impl Consumer {
    /// How many messages are in the ring now: published by the producer, not yet taken.
    pub(crate) fn available(&self) -> u64 {
        // Acquire pairs with the producer's Release store of `tail` in `push`: the slots up to
        // it are fully written before `pop` copies them out.
        let tail = self.region.atomic_u64(TAIL_OFFSET).load(Ordering::Acquire);
        tail.wrapping_sub(self.head)
    }

    /// Takes the next message into `buf` (spinning until there is one); returns its size.
    pub(crate) fn pop(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let size = self.layout.size;
        let out = message_buf(buf, size)?;
        if self.head == self.cached_tail {
            let tail = self.region.atomic_u64(TAIL_OFFSET);
            let head = self.head;
            // Acquire pairs with the producer's Release store of `tail` in `push`: the slot's
            // bytes are visible before we copy them out.
            self.cached_tail = spin_until("waiting for a raw-ring message", || {
                let t = tail.load(Ordering::Acquire);
                (t != head).then_some(t)
            })?;
        }
        // SAFETY: slot `head` is inside `head..tail`, so the producer does not write it until
        // the Release store below hands it back.
        unsafe { self.region.read_bytes(self.layout.slots.at(self.head), out) };
        self.head += 1;
        // Release pairs with the producer's Acquire load of `head` in `push`.
        self.region
            .atomic_u64(HEAD_OFFSET)
            .store(self.head, Ordering::Release);
        Ok(size)
    }
}

/// One process's side of one or two rings: the ring it produces into, the one it consumes.
pub(crate) struct RawRingSide {
    tx: Option<Producer>,
    rx: Option<Consumer>,
    /// Evict the next payload slots before each round trip (`shm-cold`).
    cold: bool,
}

impl RawRingSide {
    /// A side that sends through `tx` and receives through `rx`, payloads left in the caches.
    pub(crate) fn new(tx: Option<Producer>, rx: Option<Consumer>) -> Self {
        Self {
            tx,
            rx,
            cold: false,
        }
    }

    /// The memory of the ring this side sends through, if it sends.
    pub(crate) fn sent_region(&self) -> Option<&SharedRegion> {
        self.tx.as_ref().map(|p| &*p.region)
    }
}

impl Side for RawRingSide {
    fn start(&mut self) -> Result<(), LabError> {
        // Take this process's page faults on the slots now rather than in the timed loop.
        let producer = self.tx.as_ref().map(|p| &p.region);
        let consumer = self.rx.as_ref().map(|c| &c.region);
        producer
            .into_iter()
            .chain(consumer)
            .for_each(|r| r.prefault());
        Ok(())
    }

    fn prepare_round_trip(&mut self) {
        if !self.cold {
            return;
        }
        // The slot this side will write next and the one the peer will answer into: in
        // ping-pong both rings advance in lockstep, so neither is in use right now.
        if let Some(p) = &self.tx {
            p.region.evict(p.layout.slots.at(p.tail), p.layout.size);
        }
        if let Some(c) = &self.rx {
            c.region.evict(c.layout.slots.at(c.head), c.layout.size);
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        self.tx.as_mut().ok_or(NOT_THIS_WAY)?.push(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        self.rx.as_mut().ok_or(NOT_THIS_WAY)?.pop(buf)
    }
}

const NOT_THIS_WAY: LabError = LabError::Unsupported {
    mechanism: "raw-ring",
    what: "this direction in the pattern it was set up for",
};
