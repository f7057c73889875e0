//! SPSC ring of variable-length frames.
//!
//! ```text
//!  ring (capacity C bytes, a power of two; positions are u64 modulo 2^64, index = pos & (C-1))
//!  ┌────────┬───────────────┬────────┬──────────┬────────┬────────────────────┐
//!  │ header │ payload (pad  │ header │ payload  │ header │ padding to the end │
//!  │ 16 B   │ to 16 B)      │        │          │ PAD    │ (no payload)       │
//!  └────────┴───────────────┴────────┴──────────┴────────┴────────────────────┘
//!  header = [ tag: u64 = pos + 1 ][ len: u32 | kind: u32 ]   kind: DATA, PAD or LOAN
//! ```
//!
//! A payload shorter than [`ALIGNED_PAYLOAD_MIN_BYTES`] follows its header directly; a
//! longer one starts at the next cache-line boundary, so large copies are line-aligned
//! (`rep movsb` and wide vector copies are markedly slower on misaligned destinations).
//!
//! The producer owns the ring memory (it lives in the producer's segment) and is its only
//! writer. To publish a frame at position `pos` it writes the payload, then the `len|kind`
//! word, then stores `tag = pos + 1` with `Release`. The consumer polls the tag of the *next*
//! frame with `Acquire`: a small message costs one cache-line transfer. Tags are odd (frame
//! positions are multiples of 16), so zeroed memory never looks published, and a tag names
//! its exact position, so a frame from an earlier lap never matches.
//!
//! Before publishing a frame, the producer clears the tag word where the *next* frame will
//! start: old payload bytes there could equal the tag the consumer will wait for.
//!
//! A frame never wraps: if it does not fit before the end of the ring, the producer first
//! publishes a `PAD` frame covering the rest of the ring.
//!
//! Back-pressure: the consumer publishes how far it has read (its *consumed position*, in
//! its own segment) in batches of a quarter ring, and whenever it finds the ring empty. The
//! producer caches that value and re-reads it only when the cache says the ring is full.
//!
//! Every value the consumer reads from the producer's memory (the `len|kind` word) and every
//! consumed position the producer reads from the consumer are read once, then validated; an
//! impossible value is a [`Corruption`], never an out-of-bounds access or a panic.
//!
//! Positions wrap honestly (see [`serial`](super::serial)): both sides add with
//! `wrapping_add`, the producer's free space is `capacity - dist(consumed, pos)`, and a
//! consumed position is valid if it lies in the window from the last one we saw to our write
//! position. A ring whose positions start just below 2^64 works across the wrap
//! (`ring/tests.rs` starts rings there).

use std::fmt;

use super::serial::{dist, within};

/// Size of a frame header in bytes; also the frame alignment.
pub(crate) const FRAME_HEADER_BYTES: u64 = 16;
/// Smallest ring capacity in bytes.
pub const RING_CAPACITY_MIN_BYTES: usize = 4096;
/// Largest ring capacity in bytes.
pub const RING_CAPACITY_MAX_BYTES: usize = 1 << 30;

pub(crate) const KIND_DATA: u32 = 0;
const KIND_PAD: u32 = 1;
/// A loan: the payload names a slot of the producer's pool (see `loan`).
pub(crate) const KIND_LOAN: u32 = 2;
/// Payload bytes of a loan frame: slot (u32), reserved (u32), generation (u64), length (u64).
pub(crate) const LOAN_FRAME_BYTES: usize = 24;

/// Payloads of at least this many bytes start on a cache-line boundary.
pub(crate) const ALIGNED_PAYLOAD_MIN_BYTES: u64 = 256;
const CACHE_LINE_BYTES: u64 = 64;

/// Distance from the start of a frame at ring index `index` to its payload.
#[inline]
pub(crate) fn payload_offset(index: u64, len: u64) -> u64 {
    if len < ALIGNED_PAYLOAD_MIN_BYTES {
        FRAME_HEADER_BYTES
    } else {
        (index + FRAME_HEADER_BYTES).next_multiple_of(CACHE_LINE_BYTES) - index
    }
}

/// Bytes a frame with a payload of `len` bytes occupies in the ring at `index`.
#[inline]
pub(crate) fn frame_bytes(index: u64, len: u64) -> u64 {
    payload_offset(index, len) + len.next_multiple_of(FRAME_HEADER_BYTES)
}

/// Bytes of the next frame's tag word, which the producer clears with each frame.
const TAG_BYTES: u64 = 8;

/// Largest payload a ring of `capacity` bytes accepts: a frame at index 0 may need a whole
/// cache line before its payload, plus the next tag word (rounded to two cache lines).
#[inline]
pub(crate) fn max_payload(capacity: u64) -> u64 {
    capacity
        .saturating_sub(2 * CACHE_LINE_BYTES)
        .min(u32::MAX as u64)
}

/// The tag that marks the frame at `pos` as published.
#[inline]
pub(crate) fn tag_for(pos: u64) -> u64 {
    pos.wrapping_add(1)
}

/// A value read from a peer's memory that no correct peer could have written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corruption(pub String);

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read access to ring memory. Implementations bounds-check every access against the
/// mapping and report an out-of-bounds request as `Err`, whatever the ring computed.
pub(crate) trait RingRead {
    /// `Acquire` load of the tag word of the frame at `index`.
    fn load_tag(&self, index: u64) -> Result<u64, Corruption>;
    /// `Relaxed` load of the `len | kind << 32` word of the frame at `index`.
    fn load_meta(&self, index: u64) -> Result<u64, Corruption>;
    /// Copies `out.len()` bytes starting at ring index `at`.
    fn read_payload(&self, at: u64, out: &mut [u8]) -> Result<(), Corruption>;
}

/// Write access to ring memory, used only by the ring's owner.
pub(crate) trait RingWrite: RingRead {
    /// `Relaxed` store of the meta word of the frame at `index`.
    fn store_meta(&self, index: u64, meta: u64);
    /// `Release` store of the tag word of the frame at `index`.
    fn store_tag(&self, index: u64, tag: u64);
    /// Copies `data` to ring index `at`.
    fn write_payload(&self, at: u64, data: &[u8]);
    /// `Relaxed` store of 0 to the tag word at `index` (ordered by the next `store_tag`).
    fn clear_tag(&self, index: u64);
}

/// Publishes a padding frame from `pos` to the end of the ring (the caller reserved it and
/// the next tag word).
#[inline]
pub(crate) fn write_pad<M: RingWrite>(mem: &M, pos: u64, capacity: u64) {
    let index = pos & (capacity - 1);
    let to_end = capacity - index;
    mem.store_meta(
        index,
        (to_end - FRAME_HEADER_BYTES) | (u64::from(KIND_PAD) << 32),
    );
    mem.clear_tag(0);
    // Pairs with the Acquire load in `Consumer::peek`.
    mem.store_tag(index, tag_for(pos));
}

/// Publishes `msg` as a frame of `kind` (DATA or LOAN) at `pos`, `need` bytes long (its
/// [`frame_bytes`], which the caller computed to reserve the frame and the next tag word,
/// and to check that it fits before the ring end).
#[inline(always)]
pub(crate) fn write_frame<M: RingWrite>(
    mem: &M,
    pos: u64,
    capacity: u64,
    msg: &[u8],
    kind: u32,
    need: u64,
) {
    let index = pos & (capacity - 1);
    let len = msg.len() as u64;
    debug_assert_eq!(need, frame_bytes(index, len));
    // `need` is the payload's offset plus its rounded length (see `frame_bytes`).
    let at = index + need - len.next_multiple_of(FRAME_HEADER_BYTES);
    // A waiting consumer spins on the line of this frame's tag. So everything else goes
    // first, and that line's stores (the payload's head, the meta word, the tag) go last and
    // back to back: the line then moves to us once. Written first, the head's store took
    // the line, the consumer's next look took it back while we waited for the payload's
    // other lines, and the tag's store had to fetch it again.
    let head = ((index | (CACHE_LINE_BYTES - 1)) + 1)
        .saturating_sub(at)
        .min(len) as usize;
    let (head_bytes, rest) = msg.split_at(head);
    mem.write_payload(at + head as u64, rest);
    // The next frame's tag word may hold stale bytes of an old payload that happen to equal
    // the tag the consumer will wait for there; clear it (the space is reserved).
    mem.clear_tag((index + need) & (capacity - 1));
    // Empty when the payload starts past the tag's line (a quarter of 64 B frames): no call.
    if !head_bytes.is_empty() {
        mem.write_payload(at, head_bytes);
    }
    mem.store_meta(index, len | (u64::from(kind) << 32));
    // Pairs with the Acquire load in `Consumer::peek`: payload, meta and the cleared next
    // tag are visible to a consumer that sees this tag.
    mem.store_tag(index, tag_for(pos));
}

/// A decoded, validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// Padding: skip this many bytes (to the ring end).
    Pad { skip: u64 },
    /// A data frame.
    Data(Frame),
    /// A loan frame (its payload, [`LOAN_FRAME_BYTES`] long, names a pool slot).
    Loan(Frame),
}

/// Validates the `len | kind` word of the published frame at `pos`: the frame must start
/// frame aligned and lie inside the ring, before its end.
#[inline]
pub(crate) fn decode(pos: u64, capacity: u64, meta: u64) -> Result<Header, Corruption> {
    // The common case, a data frame that fits, without the error paths (see `decode_any`).
    let index = pos & (capacity - 1);
    let (len, kind) = (meta & 0xffff_ffff, (meta >> 32) as u32);
    if kind == KIND_DATA && index.is_multiple_of(FRAME_HEADER_BYTES) {
        if let Some(frame) = data_frame(index, len, capacity - index) {
            return Ok(Header::Data(frame));
        }
    }
    decode_any(pos, capacity, meta)
}

/// The data frame of `len` bytes at ring index `index`, if it fits in the `room` bytes left
/// before the ring end.
#[inline]
fn data_frame(index: u64, len: u64, room: u64) -> Option<Frame> {
    let offset = payload_offset(index, len);
    (offset + len <= room).then_some(Frame {
        index,
        payload_at: index + offset,
        len: len as usize,
        loan: false,
    })
}

/// [`decode`] of any header: padding, loans, and what no correct producer writes.
#[cold]
#[inline(never)]
fn decode_any(pos: u64, capacity: u64, meta: u64) -> Result<Header, Corruption> {
    let index = pos & (capacity - 1);
    if !index.is_multiple_of(FRAME_HEADER_BYTES) {
        // Only a position taken from a hostile broadcast cursor can be; the room left
        // before the ring end would then be smaller than a header.
        return Err(Corruption(format!(
            "frame position {pos} is not a multiple of {FRAME_HEADER_BYTES}"
        )));
    }
    let (len, kind) = (meta & 0xffff_ffff, (meta >> 32) as u32);
    let room = capacity - index;
    match kind {
        KIND_PAD if len == room - FRAME_HEADER_BYTES => Ok(Header::Pad { skip: room }),
        KIND_PAD => Err(Corruption(format!(
            "padding frame at position {pos} claims {len} bytes, expected {}",
            room - FRAME_HEADER_BYTES
        ))),
        KIND_DATA => data_frame(index, len, room)
            .map(Header::Data)
            .ok_or_else(|| {
                Corruption(format!(
                "frame at position {pos} claims {len} bytes but only {} remain before the ring end",
                room - FRAME_HEADER_BYTES
            ))
            }),
        KIND_LOAN if len == LOAN_FRAME_BYTES as u64 && FRAME_HEADER_BYTES + len <= room => {
            Ok(Header::Loan(Frame {
                index,
                payload_at: index + FRAME_HEADER_BYTES,
                len: LOAN_FRAME_BYTES,
                loan: true,
            }))
        }
        KIND_LOAN => Err(Corruption(format!(
            "loan frame at position {pos} claims {len} bytes, expected {LOAN_FRAME_BYTES}"
        ))),
        other => Err(Corruption(format!(
            "frame at position {pos} has unknown kind {other}"
        ))),
    }
}

/// The producer's private state.
#[derive(Debug)]
pub(crate) struct Producer {
    capacity: u64,
    /// [`max_payload`] of `capacity`, checked on every send.
    max_payload: u64,
    /// Next position to write.
    pos: u64,
    /// Last consumed position read from the consumer (validated).
    consumed: u64,
}

/// Outcome of [`Producer::try_push`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// The frame is published.
    Done,
    /// Not enough free space; wait for the consumer.
    Full,
    /// A padding frame to the ring's end is published, but the frame itself does not fit
    /// yet: it needs the consumer to skip the padding. Wake the consumer (it may be asleep,
    /// and nothing else would tell it about the padding), then wait as for `Full`.
    Padded,
}

impl Producer {
    pub(crate) fn new(capacity: u64) -> Self {
        Self::starting_at(capacity, 0)
    }

    /// A producer of an empty ring whose next frame is at `pos` (frame aligned), as if
    /// `pos` bytes had been written and consumed: tests start rings just below 2^64.
    pub(crate) fn starting_at(capacity: u64, pos: u64) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= FRAME_HEADER_BYTES * 2);
        debug_assert_eq!(pos % FRAME_HEADER_BYTES, 0);
        Producer {
            capacity,
            max_payload: max_payload(capacity),
            pos,
            consumed: pos,
        }
    }

    /// Largest payload this ring accepts.
    #[inline]
    pub(crate) fn max_payload(&self) -> u64 {
        self.max_payload
    }

    /// Position of the next frame.
    #[cfg(test)]
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Validates a consumed position read (once) from the consumer's memory: it may only
    /// move forward and never past what we wrote (modulo 2^64: it lies in the window from
    /// the last one we saw to our write position).
    fn refresh(&mut self, read: impl FnOnce() -> u64) -> Result<(), Corruption> {
        let seen = read();
        if !within(seen, self.consumed, self.pos) {
            return Err(Corruption(format!(
                "consumed position {seen} is outside [{}, {}]",
                self.consumed, self.pos
            )));
        }
        self.consumed = seen;
        Ok(())
    }

    /// Free bytes. `dist(consumed, pos) <= capacity`: we never write more than a ring
    /// ahead of a consumed position, and `refresh` only moves it within what we wrote.
    #[inline]
    fn free(&self) -> u64 {
        self.capacity - dist(self.consumed, self.pos)
    }

    /// Ensures `need` free bytes, re-reading the consumer's position only if the cache says full.
    #[inline]
    fn reserve(&mut self, need: u64, read: &mut impl FnMut() -> u64) -> Result<bool, Corruption> {
        if self.free() >= need {
            return Ok(true);
        }
        self.refresh(&mut *read)?;
        Ok(self.free() >= need)
    }

    /// Publishes `msg` as one frame if there is room. `read_consumed` loads the consumer's
    /// published consumed position (`Acquire`, pairs with its `Release` store).
    ///
    /// The caller has checked `msg.len() <= self.max_payload()`.
    #[cfg(any(test, loom))]
    pub(crate) fn try_push<M: RingWrite>(
        &mut self,
        mem: &M,
        read_consumed: impl FnMut() -> u64,
        msg: &[u8],
    ) -> Result<Push, Corruption> {
        self.try_push_kind(mem, read_consumed, msg, KIND_DATA)
    }

    /// [`Producer::try_push`] of a frame of `kind` (DATA or LOAN).
    ///
    /// Always inlined: the common case (the frame fits before the ring end, and the cached
    /// consumed position already shows room for it) is a few instructions and the frame's
    /// stores, and in a round trip they lie between the peer's message and our answer.
    #[inline(always)]
    pub(crate) fn try_push_kind<M: RingWrite>(
        &mut self,
        mem: &M,
        read_consumed: impl FnMut() -> u64,
        msg: &[u8],
        kind: u32,
    ) -> Result<Push, Corruption> {
        let len = msg.len() as u64;
        debug_assert!(len <= self.max_payload());
        let index = self.pos & (self.capacity - 1);
        let need = frame_bytes(index, len);
        if need <= self.capacity - index && need + TAG_BYTES <= self.free() {
            write_frame(mem, self.pos, self.capacity, msg, kind, need);
            self.pos = self.pos.wrapping_add(need);
            return Ok(Push::Done);
        }
        self.try_push_slow(mem, read_consumed, msg, kind)
    }

    /// [`Producer::try_push_kind`] when the frame needs padding first or the cached consumed
    /// position shows no room: pads, re-reads the consumer's position, and publishes if it can.
    #[inline(never)]
    fn try_push_slow<M: RingWrite>(
        &mut self,
        mem: &M,
        mut read_consumed: impl FnMut() -> u64,
        msg: &[u8],
        kind: u32,
    ) -> Result<Push, Corruption> {
        let len = msg.len() as u64;
        let index = self.pos & (self.capacity - 1);
        let need = frame_bytes(index, len);
        let to_end = self.capacity - index;
        if need > to_end {
            // Pad to the end of the ring first; it is published on its own.
            if !self.reserve(to_end + TAG_BYTES, &mut read_consumed)? {
                return Ok(Push::Full);
            }
            write_pad(mem, self.pos, self.capacity);
            self.pos = self.pos.wrapping_add(to_end);
            // A frame at index 0 always fits an empty ring (`max_payload`), so this does not
            // pad again.
            return Ok(match self.try_push_kind(mem, read_consumed, msg, kind)? {
                Push::Done => Push::Done,
                Push::Full | Push::Padded => Push::Padded,
            });
        }
        if !self.reserve(need + TAG_BYTES, &mut read_consumed)? {
            return Ok(Push::Full);
        }
        write_frame(mem, self.pos, self.capacity, msg, kind, need);
        self.pos = self.pos.wrapping_add(need);
        Ok(Push::Done)
    }
}

/// A published data frame found by [`Consumer::peek`]; its length is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) index: u64,
    pub(crate) payload_at: u64,
    /// Payload length in bytes.
    pub(crate) len: usize,
    /// A loan frame: the payload names a slot of the producer's pool.
    pub(crate) loan: bool,
}

/// The consumer's private state.
#[derive(Debug)]
pub(crate) struct Consumer {
    capacity: u64,
    /// Next position to read.
    pos: u64,
    /// Last position published to the producer.
    published: u64,
}

impl Consumer {
    pub(crate) fn new(capacity: u64) -> Self {
        Self::starting_at(capacity, 0)
    }

    /// A consumer whose next frame is at `pos`, already published as consumed (pairs with
    /// [`Producer::starting_at`]).
    pub(crate) fn starting_at(capacity: u64, pos: u64) -> Self {
        // `peek`'s fast path relies on it (it does not check a data frame's alignment).
        debug_assert_eq!(pos % FRAME_HEADER_BYTES, 0);
        Consumer {
            capacity,
            pos,
            published: pos,
        }
    }

    /// Position of the next frame.
    #[cfg(test)]
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Whether the next frame looks published: one load of its tag word, for a waiter to
    /// spin on; [`Consumer::peek`] then reads and validates the frame. A tag word that cannot
    /// be read counts as published, so that `peek` reports it.
    #[inline(always)]
    pub(crate) fn ready<M: RingRead>(&self, mem: &M) -> bool {
        let index = self.pos & (self.capacity - 1);
        // Acquire: pairs with the Release tag store in `write_frame` (`peek` loads it again).
        mem.load_tag(index)
            .map_or(true, |tag| tag == tag_for(self.pos))
    }

    /// The ring index of the cache line after the one holding the next frame's tag (a frame
    /// of more than one line continues there). It may be past the ring's end.
    #[inline(always)]
    pub(crate) fn next_line(&self) -> u64 {
        (self.pos & (self.capacity - 1) | (CACHE_LINE_BYTES - 1)) + 1
    }

    /// Returns the next published data frame, skipping padding, or `None` if the producer
    /// has not published one yet. Each header word is read once and validated.
    ///
    /// Always inlined: a data frame is the common case, and in a round trip this is the
    /// start of the path from the peer's message to our answer. Padding, loans and what no
    /// correct producer writes go through [`Consumer::peek_other`].
    #[inline(always)]
    pub(crate) fn peek<M: RingRead>(&mut self, mem: &M) -> Result<Option<Frame>, Corruption> {
        let index = self.pos & (self.capacity - 1);
        // Acquire: pairs with the Release tag store in `write_frame`.
        if mem.load_tag(index)? != tag_for(self.pos) {
            return Ok(None);
        }
        let meta = mem.load_meta(index)?;
        let (len, kind) = (meta & 0xffff_ffff, (meta >> 32) as u32);
        if kind == KIND_DATA {
            if let Some(frame) = data_frame(index, len, self.capacity - index) {
                return Ok(Some(frame));
            }
        }
        self.peek_other(mem, meta)
    }

    /// [`Consumer::peek`] of a published frame that is not a data frame fitting the ring:
    /// skips padding (and looks at the frames after it), returns a loan frame, or reports
    /// the corruption. `meta` is the frame's header word, as read once by `peek`. A loop, not
    /// a call back into `peek`: a peer that keeps publishing padding must not grow our stack.
    #[inline(never)]
    fn peek_other<M: RingRead>(
        &mut self,
        mem: &M,
        mut meta: u64,
    ) -> Result<Option<Frame>, Corruption> {
        loop {
            match decode_any(self.pos, self.capacity, meta)? {
                Header::Data(frame) | Header::Loan(frame) => return Ok(Some(frame)),
                Header::Pad { skip } => self.pos = self.pos.wrapping_add(skip),
            }
            let index = self.pos & (self.capacity - 1);
            // Acquire: pairs with the Release tag store in `write_frame`.
            if mem.load_tag(index)? != tag_for(self.pos) {
                return Ok(None);
            }
            meta = mem.load_meta(index)?;
        }
    }

    /// Copies the payload of `frame` (from `peek`) into `out[..frame.len]`.
    #[inline(always)]
    pub(crate) fn read<M: RingRead>(
        &self,
        mem: &M,
        frame: Frame,
        out: &mut [u8],
    ) -> Result<(), Corruption> {
        mem.read_payload(frame.payload_at, &mut out[..frame.len])
    }

    /// Moves past `frame`. Returns `Some(pos)` when the consumed position should be
    /// published now (a quarter ring was consumed since the last publication).
    #[inline]
    pub(crate) fn advance(&mut self, frame: Frame) -> Option<u64> {
        self.pos = self
            .pos
            .wrapping_add(frame_bytes(frame.index, frame.len as u64));
        (dist(self.published, self.pos) >= self.capacity / 4).then(|| self.mark_published())
    }

    /// Returns `Some(pos)` if consumed bytes have not been published yet (call when the
    /// ring looks empty, before waiting, so a producer waiting for space is not starved).
    #[inline]
    pub(crate) fn unpublished(&mut self) -> Option<u64> {
        (self.pos != self.published).then(|| self.mark_published())
    }

    fn mark_published(&mut self) -> u64 {
        self.published = self.pos;
        self.pos
    }
}

/// Ring memory on the heap, for unit tests, proptests and loom models.
#[cfg(any(test, loom))]
pub(crate) mod heap {
    use super::*;
    use crate::sync::{AtomicU64, Ordering};

    /// A ring stored in atomic words (payload bytes are packed 8 per word and copied with
    /// `Relaxed` accesses, so loom sees any reordering of payload and tag).
    pub(crate) struct HeapRing {
        words: Vec<AtomicU64>,
    }

    impl HeapRing {
        pub(crate) fn new(capacity: u64) -> Self {
            HeapRing {
                words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
            }
        }

        fn word(&self, byte: u64) -> Result<&AtomicU64, Corruption> {
            self.words
                .get((byte / 8) as usize)
                .ok_or_else(|| Corruption(format!("offset {byte} out of bounds")))
        }

        /// Raw access for tests that play a hostile producer.
        pub(crate) fn poke(&self, byte: u64, value: u64) {
            self.words[(byte / 8) as usize].store(value, Ordering::Release);
        }
    }

    impl RingRead for HeapRing {
        fn load_tag(&self, index: u64) -> Result<u64, Corruption> {
            Ok(self.word(index)?.load(Ordering::Acquire))
        }
        fn load_meta(&self, index: u64) -> Result<u64, Corruption> {
            Ok(self.word(index + 8)?.load(Ordering::Relaxed))
        }
        fn read_payload(&self, start: u64, out: &mut [u8]) -> Result<(), Corruption> {
            for (i, chunk) in out.chunks_mut(8).enumerate() {
                let w = self.word(start + i as u64 * 8)?.load(Ordering::Relaxed);
                chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
            }
            Ok(())
        }
    }

    impl RingWrite for HeapRing {
        fn store_meta(&self, index: u64, meta: u64) {
            self.words[(index / 8 + 1) as usize].store(meta, Ordering::Relaxed);
        }
        fn store_tag(&self, index: u64, tag: u64) {
            self.words[(index / 8) as usize].store(tag, Ordering::Release);
        }
        fn clear_tag(&self, index: u64) {
            self.words[(index / 8) as usize].store(0, Ordering::Relaxed);
        }
        fn write_payload(&self, at: u64, data: &[u8]) {
            let start = at / 8;
            for (i, chunk) in data.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                self.words[start as usize + i].store(u64::from_le_bytes(w), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
