//! Per-process shared-memory segments, and the one validating accessor for peer memory.
//!
//! Each side of a connection owns one segment: an anonymous memfd, mapped read-write by
//! its owner and **read-only** by the peer, then sealed so that it can never shrink, grow,
//! be mapped writable by anyone else, or be unsealed. Its layout (offsets, never pointers):
//!
//! ```text
//!  0     header      magic, version, segment length, ring offset, ring capacity, pid, flags
//!  64    DATA_SEQ    u32 futex word: bumped by the owner after publishing data, if the
//!                    peer announced it sleeps (the peer waits on it)
//!  68    FENCE_ACK   u32 the last odd FENCE_ASK of the peer's that the owner saw: while the
//!                    peer's ask keeps that value, it wakes the peer's data sleeps with full
//!                    fences
//!  128   CONSUMED    u64 how far the owner has read the *peer's* ring
//!  192   SPACE_SEQ   u32 futex word: bumped after CONSUMED moved, if the peer sleeps for space
//!  256   RX_SLEEPING u32 the owner sleeps waiting for data from the peer
//!  260   FENCE_ASK   u32 how the owner wants its data sleeps woken, if it says
//!                    [`FLAG_FENCE_ASK`]: odd = with a full fence, even = light barriers
//!  320   TX_SLEEPING u32 the owner sleeps waiting for space in its own ring
//!  384   counters    messages/bytes sent and received, messages lost (subscribers), the
//!                    peer's pid and segment inode, creation time (for `shmsock ls`)
//!  448   cursor      publishers only: seqlock'd (oldest, write) positions and sequences
//!  1024  RELEASED    u64 per slot of the *peer's* loan pool: the last generation we
//!                    released (up to [`LOAN_SLOTS_MAX`] words)
//!  4096  ring        the owner's outbound frame ring (see `ring`); a subscriber has none
//!                    and keeps there instead, per slot of the publisher's loan pool, the
//!                    last generation it TOOK (see `loan`: what it holds is taken but not
//!                    released)
//! ```
//!
//! A side that lends (zero-copy loans) also owns a **pool**, a second sealed memfd mapped
//! read-only by the peer: a header page (magic, version, slot count, slot size, pid) and then
//! the slots, each `slot_bytes` long (a multiple of 64). Loan frames in the ring name a slot
//! by index and generation; the peer hands it back by storing that generation in its own
//! `RELEASED` word for the slot (see `loan`).
//!
//! Each segment's memfd is named `shmsock:<role>:<rendezvous socket path>` (see
//! [`label`](super::label)), so `shmsock ls` can find it among a process's fds (`crate::inspect`).
//!
//! Every hot word sits on its own cache line, but for `FENCE_ASK` and `FENCE_ACK`, which
//! share the lines of the words their readers load at the same moments (`RX_SLEEPING`,
//! `DATA_SEQ`) and change rarely. The peer's memory is reached only through
//! [`PeerSegment`], whose accessors check every offset against the mapping.
//!
//! **One fetch per decision.** The peer can change any word of its segment at any moment,
//! so a value read twice may differ between the reads: a check on the first read and a use
//! of the second would validate one number and act on another. Every accessor of
//! [`PeerSegment`] that returns a value (`load64`, `released`, `taken`) performs exactly one
//! load; the caller binds the result, validates it, and takes every decision on that copy,
//! never calling the accessor again for the same decision (see `Producer::refresh`,
//! `loan::holding`, `Cursor::snapshot`). The accessors that hand out the atomic itself
//! (`word32`, `cursor`) exist for the futex wait (the kernel compares the word to the key
//! taken before) and for the seqlock (whose version re-check is the point); other code
//! loads those words once as well. Counters (positions, generations) read this way wrap
//! modulo 2^64 and are compared by distance, see [`serial`](super::serial).
//!
//! # Safety
//! This module holds the raw mappings. The invariants: a mapping lives as long as its
//! struct (unmapped in `Drop`); every pointer handed out is `base + offset` with
//! `offset + size <= len` checked first; memory the peer can write is never turned into a
//! Rust reference other than an atomic, and payload bytes are copied out with `memcpy`
//! into our own buffers before anyone looks at them.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

use super::broadcast::Cursor;
use super::identity::{Owned, SegmentId};
use super::label::memfd_name;
use super::label::SegmentRole;
use super::ring::{Corruption, RingRead, RingWrite};
use super::ring::{RING_CAPACITY_MAX_BYTES, RING_CAPACITY_MIN_BYTES};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Magic at offset 0 of every segment.
pub(crate) const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"SHMSOCK1");
/// Layout/protocol version; bumped on any incompatible change (2: the doorbell became a
/// Unix datagram socket, was an eventfd; 3: loan pools carry their creator's pid, and a
/// subscriber starts reading where the publisher is when it acknowledges the subscriber;
/// 4: the header flags `FLAG_FENCE_WAKE` and `FLAG_KEYED_SLEEPS`, which a version 3 peer
/// would refuse as unknown, so both sides say `VersionMismatch` instead; 5: the handshake
/// takes one round trip, the connector's hello first, and the listener answers with its
/// hello and acknowledgement in one message. A version 5 connector reports a version 4
/// listener's mismatch at once; a version 4 connector waits for a hello that a version 5
/// listener never sends first, and fails at its handshake timeout); 6: the header flag
/// `FLAG_FENCE_ASK` and the words `FENCE_ASK` and `FENCE_ACK`.
pub const PROTOCOL_VERSION: u32 = 6;

/// The words of a segment's header, by name: code outside this file names a place in a
/// segment only as one of these (`seg.word32(word::DATA_SEQ)`), never as a raw offset.
pub(crate) mod word {
    /// A 64-bit word of the header (its offset).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Word64(pub(super) usize);

    /// A 32-bit word of the header: a futex word or a sleep flag (its offset).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Word32(pub(super) usize);

    impl Word64 {
        /// The raw offset, for tests that scribble over a segment as a hostile peer would.
        #[cfg(test)]
        pub(crate) fn raw(self) -> usize {
            self.0
        }
    }

    impl Word32 {
        /// The raw offset, for tests that scribble over a segment as a hostile peer would.
        #[cfg(test)]
        pub(crate) fn raw(self) -> usize {
            self.0
        }
    }

    pub(crate) const MAGIC: Word64 = Word64(0);
    pub(crate) const VERSION: Word64 = Word64(8);
    pub(crate) const SEGMENT_LEN: Word64 = Word64(16);
    pub(crate) const RING_OFFSET: Word64 = Word64(24);
    pub(crate) const RING_CAPACITY: Word64 = Word64(32);
    pub(crate) const PID: Word64 = Word64(40);
    pub(crate) const FLAGS: Word64 = Word64(48);
    pub(crate) const DATA_SEQ: Word32 = Word32(64);
    /// The peer's last odd `FENCE_ASK` we saw (see `FLAG_FENCE_ASK`).
    pub(crate) const FENCE_ACK: Word32 = Word32(68);
    pub(crate) const CONSUMED: Word64 = Word64(128);
    pub(crate) const SPACE_SEQ: Word32 = Word32(192);
    pub(crate) const RX_SLEEPING: Word32 = Word32(256);
    /// How we want our data sleeps woken (see `FLAG_FENCE_ASK`); on the line of the flag
    /// it governs, which the notifier loads anyway.
    pub(crate) const FENCE_ASK: Word32 = Word32(260);
    pub(crate) const TX_SLEEPING: Word32 = Word32(320);
    pub(crate) const MSGS_SENT: Word64 = Word64(384);
    pub(crate) const BYTES_SENT: Word64 = Word64(392);
    pub(crate) const MSGS_RECV: Word64 = Word64(400);
    pub(crate) const BYTES_RECV: Word64 = Word64(408);
    /// Messages a subscriber lost to `Overflow::DropOldest` (its `Lagged` reports, summed).
    pub(crate) const MSGS_LOST: Word64 = Word64(416);
    /// The peer's pid (0: not connected yet, or one segment serves many peers).
    pub(crate) const PEER_PID: Word64 = Word64(424);
    /// The inode of the peer's segment memfd: pairs the two sides of a connection exactly.
    pub(crate) const PEER_SEGMENT: Word64 = Word64(432);
    /// When the owner created the segment, in nanoseconds since the Unix epoch.
    pub(crate) const CREATED_UNIX_NS: Word64 = Word64(440);
    pub(crate) const CURSOR_VERSION: Word64 = Word64(448);
    pub(crate) const OLDEST_POS: Word64 = Word64(456);
    pub(crate) const OLDEST_SEQ: Word64 = Word64(464);
    pub(crate) const WRITE_POS: Word64 = Word64(472);
    pub(crate) const WRITE_SEQ: Word64 = Word64(480);
}

/// Header flag: the owner notifies with light barriers (see `wait`).
pub(crate) const FLAG_LIGHT_NOTIFY: u64 = 1;
/// Header flag: the owner sleeps almost as soon as it waits (`WaitStrategy::Blocking`, after
/// a spin of at most `WaitStrategy::BLOCKING_SPIN`), so whoever wakes it runs a full fence after
/// publishing, even if it could notify with light barriers, and the owner need not run the
/// heavy barrier before every sleep (`membarrier`
/// took 14 µs on our 2-vCPU VM while the other CPU ran a registered process, against 0.7 µs
/// for a trivial system call).
pub(crate) const FLAG_FENCE_WAKE: u64 = 2;
/// Header flag: the owner writes the key it sleeps on into its `*_SLEEPING` flags
/// (`wait::prepare_keyed_wait`), so whoever wakes it may skip a sleep whose key is already
/// stale (`wait::notify_keyed`). Without it a notifier wakes at every look at a set flag.
pub(crate) const FLAG_KEYED_SLEEPS: u64 = 4;
/// Header flag, with [`FLAG_FENCE_WAKE`]: the owner's data sleeps (`RX_SLEEPING`) want a
/// full fence only while its `FENCE_ASK` word is odd. A `Blocking` receiver that sleeps
/// rarely (it keeps up with a stream, thousands of messages between sleeps) makes it even:
/// its peer then wakes it with light barriers, and the receiver runs the heavy one before
/// each of its rare sleeps, instead of the sender paying a full fence per message. Its
/// peer, seeing an odd value, first stores it in its own `FENCE_ACK`; the owner skips the
/// heavy barrier while the peer's `FENCE_ACK` equals its current odd `FENCE_ASK`, or once
/// it has run the heavy barrier after writing that ask (see `wait::Asking`). Only a
/// `Blocking` side woken through its futex words (not an async side's or an `Inbox`'s
/// doorbell) in a process where `membarrier` works says it.
pub(crate) const FLAG_FENCE_ASK: u64 = 8;
/// The per-slot release words (see the layout above).
pub(crate) const OFF_RELEASED: usize = 1024;
/// Most slots a loan pool may have (the release words fit in the header page).
pub const LOAN_SLOTS_MAX: usize = 256;
/// The ring starts one page in.
pub(crate) const RING_OFFSET: usize = 4096;
/// Subscribers only (their ring area is unused): one `u64` per slot of the publisher's
/// loan pool, the last generation claimed. `LOAN_SLOTS_MAX` words fit the smallest ring.
pub(crate) const OFF_TAKEN: usize = RING_OFFSET;
const _: () = assert!(8 * LOAN_SLOTS_MAX <= RING_CAPACITY_MIN_BYTES);

/// Magic at offset 0 of every loan pool.
pub(crate) const POOL_MAGIC: u64 = u64::from_le_bytes(*b"SHMPOOL1");
const OFF_POOL_MAGIC: usize = 0;
const OFF_POOL_VERSION: usize = 8;
const OFF_POOL_SLOTS: usize = 16;
const OFF_POOL_SLOT_BYTES: usize = 24;
/// The pid of the pool's creator (checked against the peer's credentials).
const OFF_POOL_PID: usize = 32;
/// Slots start one page into the pool.
pub(crate) const POOL_SLOTS_OFFSET: usize = 4096;
/// Largest loan pool, in bytes of slots.
pub const LOAN_POOL_MAX_BYTES: usize = 1 << 34;

/// Checks a pool shape requested by a user or announced by a peer.
pub(crate) fn valid_pool(slots: u64, slot_bytes: u64) -> bool {
    (1..=LOAN_SLOTS_MAX as u64).contains(&slots)
        && slot_bytes > 0
        && slot_bytes.is_multiple_of(64)
        && slots
            .checked_mul(slot_bytes)
            .is_some_and(|b| b <= LOAN_POOL_MAX_BYTES as u64)
}

/// Seals a peer segment must carry before we map it.
pub(crate) const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::FUTURE_WRITE)
    .union(SealFlags::SEAL);

/// Segment length for a ring of `capacity` bytes.
pub(crate) fn segment_len(capacity: usize) -> usize {
    RING_OFFSET + capacity
}

/// Checks a ring capacity requested by a user or announced by a peer.
pub(crate) fn valid_capacity(capacity: u64) -> bool {
    capacity.is_power_of_two()
        && capacity >= RING_CAPACITY_MIN_BYTES as u64
        && capacity <= RING_CAPACITY_MAX_BYTES as u64
}

/// A mapping of `len` bytes; unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this struct; moving it to another thread
// moves the handle. Shared access goes through atomics or copies.
unsafe impl Send for Mapping {}
// SAFETY: `Mapping`'s own methods only compute bounds-checked raw pointers and atomic
// references; every user in this module accesses shared bytes through atomics or raw
// copies, and non-atomic writes (our ring payloads, our pool slots) come only from the
// single owner of that region (`OwnedSegment`, which is `!Sync`, or `&mut OwnedPool`).
unsafe impl Sync for Mapping {}

impl Mapping {
    fn map(fd: BorrowedFd<'_>, len: usize, prot: ProtFlags) -> rustix::io::Result<Self> {
        // SAFETY: a fresh kernel-chosen MAP_SHARED mapping overlaps no Rust object, and the
        // caller checked (and sealed) the fd's size, so the whole range is backed.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(rustix::io::Errno::NOMEM)?;
        Ok(Mapping { base, len })
    }

    /// Pointer to `size` bytes at `offset`, or `None` if the range leaves the mapping.
    #[inline]
    fn at(&self, offset: usize, size: usize) -> Option<*mut u8> {
        let end = offset.checked_add(size)?;
        // SAFETY: offset + size <= len, so the pointer stays inside the mapping.
        (end <= self.len).then(|| unsafe { self.base.as_ptr().add(offset) })
    }

    /// [`Mapping::at`] for a `size`-byte word, which must be aligned to its size.
    #[inline]
    fn word_at(&self, offset: usize, size: usize) -> Option<*mut u8> {
        offset
            .is_multiple_of(size)
            .then(|| self.at(offset, size))
            .flatten()
    }

    #[inline]
    fn u64_at(&self, offset: usize) -> Option<&AtomicU64> {
        let p = self.word_at(offset, 8)?;
        // SAFETY: in bounds and 8-aligned (the mapping is page aligned); the memory lives
        // as long as `self`; all accesses to shared words are atomic.
        Some(unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    #[inline]
    fn u32_at(&self, offset: usize) -> Option<&AtomicU32> {
        let p = self.word_at(offset, 4)?;
        // SAFETY: as in `u64_at`, with 4-byte alignment.
        Some(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    /// The 64-bit word at `offset`, a layout constant (a header, ring or release word).
    #[inline]
    fn word64(&self, offset: usize) -> &AtomicU64 {
        self.u64_at(offset)
            .expect("layout offsets are in bounds and aligned")
    }

    /// The 32-bit word at `offset`, a layout constant (a futex word or a sleep flag).
    #[inline]
    fn word32(&self, offset: usize) -> &AtomicU32 {
        self.u32_at(offset)
            .expect("layout offsets are in bounds and aligned")
    }

    /// The broadcast cursor of a publisher's segment.
    fn cursor(&self) -> Cursor<'_> {
        Cursor {
            version: self.word64(word::CURSOR_VERSION.0),
            oldest_pos: self.word64(word::OLDEST_POS.0),
            oldest_seq: self.word64(word::OLDEST_SEQ.0),
            write_pos: self.word64(word::WRITE_POS.0),
            write_seq: self.word64(word::WRITE_SEQ.0),
            writer_alive: None,
        }
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A sealed memfd, sized and mapped read-write: the start of an owned segment or pool.
fn create_sealable(name: &str, len: usize) -> rustix::io::Result<(OwnedFd, Mapping)> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    let map = Mapping::map(fd.as_fd(), len, ProtFlags::READ | ProtFlags::WRITE)?;
    Ok((fd, map))
}

/// Checks that a peer's fd is a memfd with the required seals and exactly `expected` bytes,
/// then maps it read-only.
/// Returns the mapping and the memfd's identity.
fn open_sealed(fd: OwnedFd, expected: u64) -> Result<(Mapping, SegmentId), SegmentRefusal> {
    let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|_| SegmentRefusal::NotMemfd)?;
    if !seals.contains(REQUIRED_SEALS) {
        return Err(SegmentRefusal::MissingSeals(REQUIRED_SEALS - seals));
    }
    let stat = rustix::fs::fstat(&fd).map_err(SegmentRefusal::Os)?;
    let actual = stat.st_size as u64;
    if actual != expected {
        return Err(SegmentRefusal::WrongSize { actual, expected });
    }
    let len =
        usize::try_from(expected).map_err(|_| SegmentRefusal::WrongSize { actual, expected })?;
    // The fd is dropped after this: the mapping keeps the memory alive.
    let map = Mapping::map(fd.as_fd(), len, ProtFlags::READ).map_err(SegmentRefusal::Os)?;
    Ok((map, SegmentId::of_stat(&stat)))
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned, and no reference into the
        // mapping outlives `self` (accessors borrow `self`).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Our own segment: read-write for us, sealed so the peer can only read it.
pub(crate) struct OwnedSegment {
    fd: OwnedFd,
    /// Shared with our [`ReleaseBoard`]s, which only touch the release words.
    map: std::sync::Arc<Mapping>,
    capacity: u64,
    light_notify: bool,
    /// We asked for [`FLAG_FENCE_WAKE`].
    fence_wake: bool,
    /// We said [`FLAG_FENCE_ASK`].
    fence_ask: bool,
    /// Our entry in the registry of owned segments (a peer may not hand it back to us).
    _owned: Owned,
    /// Ring payloads are written through `&self`: never share a segment between threads.
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl OwnedSegment {
    /// An unlabelled segment (invisible to `shmsock ls`), for unit tests.
    #[cfg(test)]
    pub(crate) fn create(capacity: usize) -> rustix::io::Result<Self> {
        Self::create_named("shmsock", capacity)
    }

    /// Creates, sizes, maps, initialises and seals a segment holding a ring of `capacity`
    /// bytes (already validated), playing `role` on `endpoint` (named after both, see
    /// [`memfd_name`]).
    pub(crate) fn create_for(
        capacity: usize,
        role: SegmentRole,
        endpoint: &str,
    ) -> rustix::io::Result<Self> {
        Self::create_named(&memfd_name(role, endpoint), capacity)
    }

    fn create_named(name: &str, capacity: usize) -> rustix::io::Result<Self> {
        debug_assert!(valid_capacity(capacity as u64));
        let len = segment_len(capacity);
        let (fd, map) = create_sealable(name, len)?;
        let seg = OwnedSegment {
            _owned: Owned::register(fd.as_fd())?,
            fd,
            map: std::sync::Arc::new(map),
            capacity: capacity as u64,
            light_notify: crate::sys::light_barriers(),
            fence_wake: false,
            fence_ask: false,
            _not_sync: std::marker::PhantomData,
        };
        seg.word64(word::MAGIC)
            .store(SEGMENT_MAGIC, Ordering::Relaxed);
        seg.word64(word::VERSION)
            .store(u64::from(PROTOCOL_VERSION), Ordering::Relaxed);
        seg.word64(word::SEGMENT_LEN)
            .store(len as u64, Ordering::Relaxed);
        seg.word64(word::RING_OFFSET)
            .store(RING_OFFSET as u64, Ordering::Relaxed);
        seg.word64(word::RING_CAPACITY)
            .store(capacity as u64, Ordering::Relaxed);
        seg.word64(word::PID).store(
            u64::from(rustix::process::getpid().as_raw_nonzero().get() as u32),
            Ordering::Relaxed,
        );
        let flags = if crate::sys::light_barriers() {
            FLAG_LIGHT_NOTIFY
        } else {
            0
        };
        seg.word64(word::FLAGS).store(flags, Ordering::Relaxed);
        seg.word64(word::CREATED_UNIX_NS)
            .store(unix_now_ns(), Ordering::Relaxed);
        // Our RW mapping stays writable; nobody can create a new writable one.
        rustix::fs::fcntl_add_seals(&seg.fd, REQUIRED_SEALS)?;
        Ok(seg)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// We notify with light barriers (our peers run the heavy one).
    pub(crate) fn light_notify(&self) -> bool {
        self.light_notify
    }

    /// Sets [`FLAG_FENCE_WAKE`] if `ask` (an owner whose waits sleep almost at once); call
    /// before the segment is offered to anyone.
    pub(crate) fn fence_wake_if(mut self, ask: bool) -> Self {
        if ask {
            self.fence_wake = true;
            self.add_flag(FLAG_FENCE_WAKE);
        }
        self
    }

    /// With [`FLAG_FENCE_WAKE`] asked, also says [`FLAG_FENCE_ASK`] (our data sleeps say in
    /// `FENCE_ASK` whether they want the full fence; odd to start with), if this process
    /// can run the heavy barrier it needs while the ask is even; call before the segment is
    /// offered to anyone.
    pub(crate) fn with_fence_ask(mut self) -> Self {
        if self.fence_wake && crate::sys::heavy_barrier_works() {
            self.fence_ask = true;
            self.word32(word::FENCE_ASK).store(1, Ordering::Relaxed);
            self.add_flag(FLAG_FENCE_ASK);
        }
        self
    }

    /// We said [`FLAG_FENCE_ASK`].
    pub(crate) fn fence_ask(&self) -> bool {
        self.fence_ask
    }

    /// Sets `flag` in our header's flags word (we are its only writer).
    fn add_flag(&self, flag: u64) {
        let flags = self.word64(word::FLAGS);
        flags.store(flags.load(Ordering::Relaxed) | flag, Ordering::Relaxed);
    }

    /// We asked whoever wakes us for a full fence (then we skip the heavy barrier).
    pub(crate) fn fence_wake(&self) -> bool {
        self.fence_wake
    }

    /// Says [`FLAG_KEYED_SLEEPS`]: every wait on this segment's flags will write its key
    /// there (a `Conn` side's do); call before the segment is offered to anyone.
    pub(crate) fn with_keyed_sleeps(self) -> Self {
        self.add_flag(FLAG_KEYED_SLEEPS);
        self
    }

    /// A 64-bit word of our own segment at a layout constant.
    #[inline]
    pub(crate) fn word64(&self, word: word::Word64) -> &AtomicU64 {
        self.map.word64(word.0)
    }

    /// A 32-bit word of our own segment at a layout constant.
    #[inline]
    pub(crate) fn word32(&self, word: word::Word32) -> &AtomicU32 {
        self.map.word32(word.0)
    }

    /// Records who we are connected to (for `shmsock ls`): the peer's pid and the inode of
    /// its segment.
    pub(crate) fn note_peer(&self, pid: i32, peer: &PeerSegment) {
        // The connection's age starts now (a listener's spare segment was made earlier).
        self.word64(word::CREATED_UNIX_NS)
            .store(unix_now_ns(), Ordering::Relaxed);
        self.word64(word::PEER_PID)
            .store(u64::from(pid.unsigned_abs()), Ordering::Relaxed);
        self.word64(word::PEER_SEGMENT)
            .store(peer.inode(), Ordering::Relaxed);
    }

    /// Adds one message of `bytes` bytes to a counter pair of our segment (for `shmsock
    /// ls`). We are the only writer, so a load and a store suffice (no locked RMW).
    #[inline]
    pub(crate) fn count(&self, counter: Counter, bytes: usize) {
        let (msgs, total) = match counter {
            Counter::Sent => (word::MSGS_SENT, word::BYTES_SENT),
            Counter::Received => (word::MSGS_RECV, word::BYTES_RECV),
        };
        self.bump(msgs, 1);
        self.bump(total, bytes as u64);
    }

    /// Adds `missed` to the messages this subscriber lost to overflow.
    pub(crate) fn count_lost(&self, missed: u64) {
        self.bump(word::MSGS_LOST, missed);
    }

    #[inline]
    fn bump(&self, word: word::Word64, by: u64) {
        let w = self.word64(word);
        w.store(
            w.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }

    /// The broadcast cursor words (publishers).
    pub(crate) fn cursor(&self) -> Cursor<'_> {
        self.map.cursor()
    }

    /// Test hook: the writable bytes of our own segment, to play a hostile peer.
    #[cfg(test)]
    pub(crate) fn scribble(&self, offset: usize, value: u64) {
        if let Some(w) = self.map.u64_at(offset) {
            w.store(value, Ordering::Release);
        }
    }

    #[inline]
    fn ring_byte(&self, index: u64, size: usize) -> *mut u8 {
        debug_assert!(index + size as u64 <= self.capacity);
        self.map
            .at(RING_OFFSET + index as usize, size)
            .expect("the producer only writes inside its ring")
    }
}

impl RingRead for OwnedSegment {
    #[inline]
    fn load_tag(&self, index: u64) -> Result<u64, Corruption> {
        Ok(self
            .map
            .word64(RING_OFFSET + index as usize)
            .load(Ordering::Acquire))
    }
    #[inline]
    fn load_meta(&self, index: u64) -> Result<u64, Corruption> {
        Ok(self
            .map
            .word64(RING_OFFSET + index as usize + 8)
            .load(Ordering::Relaxed))
    }
    #[inline]
    fn read_payload(&self, at: u64, out: &mut [u8]) -> Result<(), Corruption> {
        let p = self.ring_byte(at, out.len());
        // SAFETY: `ring_byte` checked the range; `out` is our own buffer.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

impl RingWrite for OwnedSegment {
    #[inline]
    fn store_meta(&self, index: u64, meta: u64) {
        self.map
            .word64(RING_OFFSET + index as usize + 8)
            .store(meta, Ordering::Relaxed);
    }
    #[inline]
    fn store_tag(&self, index: u64, tag: u64) {
        self.map
            .word64(RING_OFFSET + index as usize)
            .store(tag, Ordering::Release);
    }
    #[inline]
    fn clear_tag(&self, index: u64) {
        self.map
            .word64(RING_OFFSET + index as usize)
            .store(0, Ordering::Relaxed);
    }
    #[inline]
    fn write_payload(&self, at: u64, data: &[u8]) {
        let p = self.ring_byte(at, data.len());
        // SAFETY: `ring_byte` checked the range; only we write our ring, and the consumer
        // does not read these bytes before the Release tag store that follows.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
    }
}

/// Which counter pair of [`OwnedSegment::count`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    /// Messages and bytes we sent.
    Sent,
    /// Messages and bytes we received.
    Received,
}

/// Why a peer's segment was refused.
#[derive(Debug)]
pub(crate) enum SegmentRefusal {
    /// `F_GET_SEALS` failed: the fd is not a memfd.
    NotMemfd,
    /// A required seal is missing.
    MissingSeals(SealFlags),
    /// fstat size differs from what the layout needs.
    WrongSize { actual: u64, expected: u64 },
    /// The header inside the segment disagrees with the hello.
    BadHeader(String),
    /// mmap or fstat failed.
    Os(rustix::io::Errno),
}

impl std::fmt::Display for SegmentRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentRefusal::NotMemfd => write!(f, "the passed fd is not a sealable memfd"),
            SegmentRefusal::MissingSeals(s) => write!(f, "segment lacks required seals {s:?}"),
            SegmentRefusal::WrongSize { actual, expected } => {
                write!(
                    f,
                    "segment is {actual} bytes, the announced layout needs {expected}"
                )
            }
            SegmentRefusal::BadHeader(what) => write!(f, "segment header: {what}"),
            SegmentRefusal::Os(e) => write!(f, "mapping the segment failed: {e}"),
        }
    }
}

/// The peer's segment, mapped read-only: the one validating accessor for peer memory.
pub(crate) struct PeerSegment {
    map: Mapping,
    capacity: u64,
    light_notify: bool,
    /// The peer asked for [`FLAG_FENCE_WAKE`].
    fence_wake: bool,
    /// The peer writes the keys it sleeps on ([`FLAG_KEYED_SLEEPS`]).
    keyed_sleeps: bool,
    /// The peer says in `FENCE_ASK` how to wake its data sleeps ([`FLAG_FENCE_ASK`]).
    fence_ask: bool,
    /// Device and inode of the memfd (identifies the segment across processes).
    id: SegmentId,
    /// The pid in its header: the process that created it.
    creator_pid: u32,
}

impl PeerSegment {
    /// Verifies `fd` (a sealed memfd of exactly the size a ring of `capacity` needs), maps
    /// it read-only, and checks the header it carries, reading each field once.
    pub(crate) fn open(fd: OwnedFd, capacity: u64) -> Result<Self, SegmentRefusal> {
        if !valid_capacity(capacity) {
            return Err(SegmentRefusal::BadHeader(format!(
                "ring capacity {capacity} is not a power of two in range"
            )));
        }
        let expected = segment_len(capacity as usize) as u64;
        let (map, id) = open_sealed(fd, expected)?;
        let read = |w: word::Word64| {
            map.u64_at(w.0)
                .expect("header offsets are in bounds")
                .load(Ordering::Acquire)
        };
        let bad = |what: String| Err(SegmentRefusal::BadHeader(what));
        let (magic, version, len, ring_off, cap, pid, flags) = (
            read(word::MAGIC),
            read(word::VERSION),
            read(word::SEGMENT_LEN),
            read(word::RING_OFFSET),
            read(word::RING_CAPACITY),
            read(word::PID),
            read(word::FLAGS),
        );
        if magic != SEGMENT_MAGIC {
            return bad(format!("bad magic {magic:#x}"));
        }
        if version != u64::from(PROTOCOL_VERSION) {
            return bad(format!("version {version}, expected {PROTOCOL_VERSION}"));
        }
        if len != expected || ring_off != RING_OFFSET as u64 || cap != capacity {
            return bad(format!(
                "layout (len {len}, ring at {ring_off}, capacity {cap}) disagrees with the hello"
            ));
        }
        if pid == 0 || pid > u64::from(u32::MAX) {
            return bad(format!("implausible pid {pid}"));
        }
        if flags & !(FLAG_LIGHT_NOTIFY | FLAG_FENCE_WAKE | FLAG_KEYED_SLEEPS | FLAG_FENCE_ASK) != 0
        {
            return bad(format!("unknown flags {flags:#x}"));
        }
        Ok(PeerSegment {
            map,
            capacity,
            light_notify: flags & FLAG_LIGHT_NOTIFY != 0,
            fence_wake: flags & FLAG_FENCE_WAKE != 0,
            keyed_sleeps: flags & FLAG_KEYED_SLEEPS != 0,
            fence_ask: flags & FLAG_FENCE_ASK != 0 && flags & FLAG_FENCE_WAKE != 0,
            id,
            creator_pid: pid as u32,
        })
    }

    /// Opens a segment found by `shmsock ls` (an fd of another process, reopened read-only
    /// through `/proc`): the ring capacity comes from the memfd's size, then everything is
    /// checked as in [`PeerSegment::open`] (seals, size, header).
    pub(crate) fn inspect(fd: OwnedFd) -> Result<Self, SegmentRefusal> {
        let size = rustix::fs::fstat(&fd).map_err(SegmentRefusal::Os)?.st_size as u64;
        let capacity = size.checked_sub(RING_OFFSET as u64).ok_or_else(|| {
            SegmentRefusal::BadHeader(format!("{size} bytes is smaller than a segment header"))
        })?;
        Self::open(fd, capacity)
    }

    /// Inode number of the segment's memfd.
    pub(crate) fn inode(&self) -> u64 {
        self.id.ino
    }

    /// Device and inode of the segment's memfd.
    pub(crate) fn id(&self) -> SegmentId {
        self.id
    }

    /// The pid its header names: the process that created it (validated nonzero at open).
    pub(crate) fn creator_pid(&self) -> u32 {
        self.creator_pid
    }

    /// The peer notifies with light barriers: before sleeping we must run the heavy one.
    pub(crate) fn light_notify(&self) -> bool {
        self.light_notify
    }

    /// The peer sleeps as soon as it waits and asked us to wake it with a full fence
    /// ([`FLAG_FENCE_WAKE`]).
    pub(crate) fn fence_wake(&self) -> bool {
        self.fence_wake
    }

    /// The peer says in its `FENCE_ASK` word whether to wake its data sleeps with a full
    /// fence ([`FLAG_FENCE_ASK`]).
    pub(crate) fn fence_ask(&self) -> bool {
        self.fence_ask
    }

    /// The peer writes the keys it sleeps on: wake it only on a current key
    /// ([`FLAG_KEYED_SLEEPS`]).
    pub(crate) fn keyed_sleeps(&self) -> bool {
        self.keyed_sleeps
    }

    /// Capacity of the peer's ring in bytes (validated at open).
    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    /// `Acquire` load of a 64-bit word at a layout constant: **one fetch**. The peer may
    /// change the word at any time: bind the result, validate it, and take the whole
    /// decision on that value; never load the word again for the same decision.
    #[inline]
    pub(crate) fn load64(&self, word: word::Word64) -> u64 {
        self.word64(word).load(Ordering::Acquire)
    }

    /// A 64-bit word at a layout constant (we only ever load it, once per decision: only
    /// [`PeerSegment::load64`] calls this).
    #[inline]
    fn word64(&self, word: word::Word64) -> &AtomicU64 {
        self.map.word64(word.0)
    }

    /// `Acquire` load of the peer's release word for slot `slot` of *our* pool: one fetch
    /// (bind, validate, decide on that value; see [`PeerSegment::load64`]).
    #[inline]
    pub(crate) fn released(&self, slot: usize) -> u64 {
        debug_assert!(slot < LOAN_SLOTS_MAX);
        self.map
            .word64(OFF_RELEASED + 8 * slot)
            .load(Ordering::Acquire)
    }

    /// `Acquire` load of a subscriber's "taken" word for slot `slot` of *our* pool (see
    /// [`OFF_TAKEN`]): one fetch, as [`PeerSegment::released`]. Every segment has the
    /// words (the smallest ring holds [`LOAN_SLOTS_MAX`] of them, and `open` checked the
    /// ring's size).
    #[inline]
    pub(crate) fn taken(&self, slot: usize) -> u64 {
        debug_assert!(slot < LOAN_SLOTS_MAX);
        self.map
            .word64(OFF_TAKEN + 8 * slot)
            .load(Ordering::Acquire)
    }

    /// The publisher's broadcast cursor (loads only): read it only through
    /// `Cursor::snapshot`, which loads each word once under the seqlock and validates the
    /// copy.
    pub(crate) fn cursor(&self) -> Cursor<'_> {
        self.map.cursor()
    }

    /// A 32-bit futex word or sleep flag at a layout constant (we only ever load or
    /// futex-wait on it). A decision on its value loads it once; a futex wait passes the
    /// key taken earlier and lets the kernel compare.
    #[inline]
    pub(crate) fn word32(&self, word: word::Word32) -> &AtomicU32 {
        self.map.word32(word.0)
    }

    /// Loads the ring word at `index` and drops the value, if `index` lies in the ring: a
    /// waiting receiver does this to the line after the one it polls, so that a frame
    /// spanning both lines reaches it in one cache-line transfer time instead of two (the
    /// producer writes that line before the tag's). The value means nothing and is never
    /// used; the frame is read and validated afterwards as usual.
    #[inline(always)]
    pub(crate) fn touch_ring(&self, index: u64) {
        if let Ok(word) = self.ring_word(index) {
            std::hint::black_box(word.load(Ordering::Relaxed));
        }
    }

    #[inline]
    fn ring_word(&self, index: u64) -> Result<&AtomicU64, Corruption> {
        (index < self.capacity)
            .then(|| self.map.u64_at(RING_OFFSET + index as usize))
            .flatten()
            .ok_or_else(|| Corruption(format!("ring index {index} outside the segment")))
    }
}

impl RingRead for PeerSegment {
    #[inline]
    fn load_tag(&self, index: u64) -> Result<u64, Corruption> {
        Ok(self.ring_word(index)?.load(Ordering::Acquire))
    }
    #[inline]
    fn load_meta(&self, index: u64) -> Result<u64, Corruption> {
        Ok(self
            .ring_word(index.saturating_add(8))?
            .load(Ordering::Relaxed))
    }
    #[inline]
    fn read_payload(&self, at: u64, out: &mut [u8]) -> Result<(), Corruption> {
        let in_ring = at
            .checked_add(out.len() as u64)
            .is_some_and(|end| end <= self.capacity);
        let p = in_ring
            .then(|| self.map.at(RING_OFFSET + at as usize, out.len()))
            .flatten()
            .ok_or_else(|| {
                Corruption(format!(
                    "payload of {} bytes at ring index {at} leaves the ring",
                    out.len()
                ))
            })?;
        // SAFETY: the range is inside our read-only mapping (checked above) and `out` is our
        // own buffer. The peer may be writing these bytes concurrently (a buggy peer); we copy
        // raw bytes, attach no meaning to them, and never form a reference into peer memory.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

/// What a hello announces of a pool: the fd to pass and its shape.
#[derive(Clone, Copy)]
pub(crate) struct PoolShape<'a> {
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) slots: usize,
    pub(crate) slot_bytes: usize,
}

/// Our loan pool: read-write for us, sealed so the peer can only read it.
pub(crate) struct OwnedPool {
    fd: OwnedFd,
    map: Mapping,
    /// Our entry in the registry of owned segments (a peer may not hand it back to us).
    _owned: Owned,
    slots: usize,
    slot_bytes: usize,
}

impl OwnedPool {
    /// Creates, maps, initialises and seals a pool of `slots` slots of `slot_bytes` bytes
    /// (already validated with [`valid_pool`]).
    pub(crate) fn create(slots: usize, slot_bytes: usize) -> rustix::io::Result<Self> {
        debug_assert!(valid_pool(slots as u64, slot_bytes as u64));
        let len = POOL_SLOTS_OFFSET + slots * slot_bytes;
        let (fd, map) = create_sealable("shmsock-pool", len)?;
        let words = [
            (OFF_POOL_MAGIC, POOL_MAGIC),
            (OFF_POOL_VERSION, u64::from(PROTOCOL_VERSION)),
            (OFF_POOL_SLOTS, slots as u64),
            (OFF_POOL_SLOT_BYTES, slot_bytes as u64),
            (
                OFF_POOL_PID,
                u64::from(rustix::process::getpid().as_raw_nonzero().get() as u32),
            ),
        ];
        for (off, v) in words {
            map.u64_at(off)
                .expect("header offsets are in bounds")
                .store(v, Ordering::Relaxed);
        }
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS)?;
        Ok(OwnedPool {
            _owned: Owned::register(fd.as_fd())?,
            fd,
            map,
            slots,
            slot_bytes,
        })
    }

    /// The fd and shape to announce in a hello.
    pub(crate) fn shape(&self) -> PoolShape<'_> {
        PoolShape {
            fd: self.fd.as_fd(),
            slots: self.slots,
            slot_bytes: self.slot_bytes,
        }
    }

    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// The pool's identity (its memfd's), unique among the pools alive in this process.
    pub(crate) fn id(&self) -> SegmentId {
        self._owned.id()
    }

    pub(crate) fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Where the first `len` bytes of slot `slot` start; panics if they leave the slot.
    fn slot_start(&self, slot: usize, len: usize) -> *mut u8 {
        assert!(
            slot < self.slots && len <= self.slot_bytes,
            "slot out of range"
        );
        self.map
            .at(POOL_SLOTS_OFFSET + slot * self.slot_bytes, len)
            .expect("slots lie inside the pool")
    }

    /// The first `len` bytes of slot `slot`, to read back what we are filling. A shared
    /// borrow of the pool excludes [`OwnedPool::slot_mut`], and the peer cannot write.
    pub(crate) fn slot(&self, slot: usize, len: usize) -> &[u8] {
        let p = self.slot_start(slot, len);
        // SAFETY: in bounds of our mapping; no `&mut` into the pool can exist while `self`
        // is borrowed shared; the peer's mapping is read-only (sealed).
        unsafe { std::slice::from_raw_parts(p, len) }
    }

    /// The first `len` bytes of slot `slot`, to fill in place. `&mut self` makes this the
    /// only reference into the pool in this process; the caller hands out only slots that
    /// are not lent, so a correct peer is not reading them.
    pub(crate) fn slot_mut(&mut self, slot: usize, len: usize) -> &mut [u8] {
        let p = self.slot_start(slot, len);
        // SAFETY: the range is inside our read-write mapping; `&mut self` guarantees no
        // other reference into it exists in this process for the returned lifetime. The
        // peer's read-only mapping can read these bytes but never write them (sealed).
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }
}

/// The peer's loan pool, mapped read-only. Shared by the `Sample`s that view it.
pub(crate) struct PeerPool {
    map: Mapping,
    /// Device and inode of the pool's memfd.
    id: SegmentId,
    /// The pid in its header: the process that created it.
    creator_pid: u32,
    slots: usize,
    slot_bytes: usize,
}

impl PeerPool {
    /// Verifies `fd` (a sealed memfd of exactly the announced shape), maps it read-only and
    /// checks its header, reading each field once.
    pub(crate) fn open(fd: OwnedFd, slots: u64, slot_bytes: u64) -> Result<Self, SegmentRefusal> {
        if !valid_pool(slots, slot_bytes) {
            return Err(SegmentRefusal::BadHeader(format!(
                "loan pool of {slots} slots of {slot_bytes} bytes is out of range"
            )));
        }
        let expected = POOL_SLOTS_OFFSET as u64 + slots * slot_bytes;
        let (map, id) = open_sealed(fd, expected)?;
        let read = |off| {
            map.u64_at(off)
                .expect("header offsets are in bounds")
                .load(Ordering::Acquire)
        };
        let (magic, version, n, size, pid) = (
            read(OFF_POOL_MAGIC),
            read(OFF_POOL_VERSION),
            read(OFF_POOL_SLOTS),
            read(OFF_POOL_SLOT_BYTES),
            read(OFF_POOL_PID),
        );
        if magic != POOL_MAGIC || version != u64::from(PROTOCOL_VERSION) {
            return Err(SegmentRefusal::BadHeader(format!(
                "loan pool magic {magic:#x} / version {version}"
            )));
        }
        if n != slots || size != slot_bytes {
            return Err(SegmentRefusal::BadHeader(format!(
                "loan pool header ({n} x {size} B) disagrees with the hello"
            )));
        }
        let creator_pid = u32::try_from(pid)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| SegmentRefusal::BadHeader(format!("loan pool pid {pid}")))?;
        Ok(PeerPool {
            map,
            id,
            creator_pid,
            slots: slots as usize,
            slot_bytes: slot_bytes as usize,
        })
    }

    /// Device and inode of the pool's memfd.
    pub(crate) fn id(&self) -> SegmentId {
        self.id
    }

    /// The pid its header names: the process that created it.
    pub(crate) fn creator_pid(&self) -> u32 {
        self.creator_pid
    }

    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    pub(crate) fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Pointer to `len` bytes of slot `slot`, or `None` if out of range.
    pub(crate) fn slot_ptr(&self, slot: usize, len: usize) -> Option<*const u8> {
        if slot >= self.slots || len > self.slot_bytes {
            return None;
        }
        self.map
            .at(POOL_SLOTS_OFFSET + slot * self.slot_bytes, len)
            .map(|p| p.cast_const())
    }

    /// Copies `out.len()` bytes at `offset` of slot `slot`; `Err` if that leaves the slot.
    pub(crate) fn read(
        &self,
        slot: usize,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), Corruption> {
        let end = offset.checked_add(out.len());
        let p = end
            .filter(|&e| e <= self.slot_bytes)
            .and_then(|e| self.slot_ptr(slot, e))
            .ok_or_else(|| {
                Corruption(format!(
                    "{} bytes at offset {offset} of slot {slot} leave the pool",
                    out.len()
                ))
            })?;
        // SAFETY: `slot_ptr` checked that `offset + out.len()` bytes of the slot lie in our
        // read-only mapping; `out` is our own buffer. The peer may write these bytes
        // concurrently (a buggy peer); we copy raw bytes and form no reference into them.
        unsafe { std::ptr::copy_nonoverlapping(p.add(offset), out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

/// A handle on one of our own segments that only touches its release words (atomics):
/// what a `Sample` stores into when dropped, from any thread.
pub(crate) struct ReleaseBoard {
    map: std::sync::Arc<Mapping>,
}

impl ReleaseBoard {
    /// The release words of `seg`.
    pub(crate) fn of(seg: &OwnedSegment) -> Self {
        ReleaseBoard {
            map: seg.map.clone(),
        }
    }

    /// Hands slot `slot` of the peer's pool back: stores its generation (`Release`: our
    /// reads of the slot happen before the peer may reuse it).
    pub(crate) fn release(&self, slot: usize, generation: u64) {
        if slot < LOAN_SLOTS_MAX {
            if let Some(w) = self.map.u64_at(OFF_RELEASED + 8 * slot) {
                w.store(generation, Ordering::Release);
            }
        }
    }

    /// A subscriber claims slot `slot` of the publisher's pool as `generation` before its
    /// final check that the loan frame was not evicted: stores the word, then a full fence
    /// (pairs with the publisher's fence between evicting and reading the taken words:
    /// either it sees our claim, or our check sees the eviction).
    pub(crate) fn claim(&self, slot: usize, generation: u64) {
        if slot < LOAN_SLOTS_MAX {
            if let Some(w) = self.map.u64_at(OFF_TAKEN + 8 * slot) {
                w.store(generation, Ordering::Relaxed);
            }
        }
        crate::sync::fence(Ordering::SeqCst);
    }

    /// The last generation we released for `slot`.
    pub(crate) fn last_released(&self, slot: usize) -> u64 {
        self.map
            .u64_at(OFF_RELEASED + 8 * slot.min(LOAN_SLOTS_MAX - 1))
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
}

impl PeerPool {
    /// `len` bytes of slot `slot` in place (no copy), or `None` if they leave the pool.
    ///
    /// # Safety
    /// The bytes are in the sender's memory. The caller must trust the sender not to write
    /// to the slot while the slice lives (a correct shmsock sender never writes a slot it
    /// lent until it is released; a buggy or hostile one could, which would make this a
    /// data race).
    pub(crate) unsafe fn slot_slice(&self, slot: usize, len: usize) -> Option<&[u8]> {
        let p = self.slot_ptr(slot, len)?;
        // SAFETY: `slot_ptr` bounds-checked `len` bytes inside the read-only mapping, which
        // lives as long as `self`; the caller promised that nobody writes them while the
        // slice lives.
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_segment_carries_its_wake_up_flags_to_the_peer() {
        for ask in [false, true] {
            let mine = OwnedSegment::create(4096).unwrap().fence_wake_if(ask);
            assert_eq!(mine.fence_wake(), ask);
            let fd = mine.fd().try_clone_to_owned().unwrap();
            let peer = PeerSegment::open(fd, mine.capacity()).unwrap();
            assert_eq!(peer.fence_wake(), ask);
            assert_eq!(peer.light_notify(), mine.light_notify());
            assert!(!peer.keyed_sleeps());
        }
        let mine = OwnedSegment::create(4096).unwrap().with_keyed_sleeps();
        let fd = mine.fd().try_clone_to_owned().unwrap();
        let peer = PeerSegment::open(fd, mine.capacity()).unwrap();
        assert!(peer.keyed_sleeps());
    }
}
