//! One writer, many readers: the broadcast ring of publish/subscribe.
//!
//! The publisher's ring uses the frame format of [`ring`](super::ring) (tags, padding,
//! cleared next tag). Every subscriber maps it read-only and keeps its own read position;
//! the publisher never learns what a subscriber read except through the consumed position
//! the subscriber publishes in *its own* segment.
//!
//! ```text
//!              oldest intact frame            write position
//!                    │                               │
//!  ring  ... evicted │ F(seq=s) │ F(s+1) │ ... │ F(n-1) │ cleared tag │ free ...
//!                    └── (oldest_pos, oldest_seq) ───┴── (write_pos, write_seq = n)
//!                       published together under a seqlock in the publisher's segment
//! ```
//!
//! The cursor is published *before* the frame it accounts for: a reader following tags is
//! never ahead of the write position it can see.
//!
//! **Eviction.** Before writing a frame the writer evicts every frame that overlaps the
//! bytes it is about to reuse (one lap back): it zeroes their tags, advances
//! `(oldest_pos, oldest_seq)`, issues a Release fence, and only then writes. Policies:
//! - [`Overflow::Block`]: eviction waits until every subscriber's consumed position is past
//!   the evicted bytes (the slowest subscriber holds the publisher back).
//! - [`Overflow::DropOldest`]: eviction never waits. A subscriber that falls a lap behind
//!   finds `oldest_pos` beyond its position, jumps to `oldest_pos` and reports
//!   `Lagged(oldest_seq - its_seq)`: the exact number of messages it lost.
//!
//! **Torn reads.** Under `DropOldest` the writer may overwrite a frame while a reader copies
//! it. The reader re-checks the frame's tag after the copy (seqlock style: copy, `Acquire`
//! fence, re-load); the writer zeroed that tag and fenced *before* writing new bytes, so a
//! copy that saw any new byte sees the changed tag and is discarded (counted as lost).
//!
//! **Loans.** A loan frame names a slot of the publisher's pool. The slot is the
//! publisher's again once every subscriber either released it or can no longer read the
//! frame. "Can no longer" is decided without the subscriber's help (it may be stopped),
//! with a Dekker pair: the reader copies the frame, *claims* the slot (stores the
//! generation in its own segment's TAKEN word, then a full fence) and only then re-checks
//! the tag; the publisher evicts (zeroes the tag), then a full fence, then reads TAKEN.
//! Either the publisher sees the claim (and waits for the release), or the reader's
//! re-check sees the eviction (and withdraws the claim: it releases the slot at once).
//! `loom_broadcast_loan_is_never_reused_under_a_reader` checks it.
//!
//! **Counters.** Positions and sequences (the cursor's, a reader's) wrap honestly, as
//! everywhere in `shm` (see [`serial`](super::serial)): a publisher may start them anywhere,
//! e.g. just below 2^64, and the ring keeps working across the wrap. What a reader accepts
//! of the cursor is a window: both positions frame aligned, at most one ring between them,
//! at most one message per 16 bytes between the sequences. Its own position is then either
//! inside `[oldest_pos, write_pos]` (nothing lost), or behind `oldest_pos` by less than 2^63
//! (evicted: it lost `oldest_seq - seq` messages, at most one per 16 bytes it skips); any
//! other cursor is a [`Corruption`].

use super::ring::{
    decode, frame_bytes, tag_for, write_frame, write_pad, Corruption, Frame, Header, RingRead,
    RingWrite, FRAME_HEADER_BYTES, LOAN_FRAME_BYTES,
};
use super::serial::{after, dist, within, HALF};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::vocabulary::Overflow;

/// Bytes of the next tag word a frame also reserves (see `ring::write_frame`).
const TAG_BYTES: u64 = 8;
/// A reader spins this many times on a torn seqlock read, then yields: the writer may have
/// been preempted in the middle of `Cursor::publish` and needs a CPU to finish.
const SEQLOCK_SPINS: u32 = 64;
/// A reader gives up on a seqlock that stays torn this long: an honest writer is done
/// within a scheduler latency or two (~24 ms), a hostile one could keep the version odd
/// forever (it then delays one call by this much, and the subscriber is `Corrupt`).
const SEQLOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);
/// How long a torn seqlock is waited on before the reader asks whether its writer is still
/// alive (a `poll` of the control socket) at each yield.
const SEQLOCK_LIVENESS_AFTER: std::time::Duration = std::time::Duration::from_millis(1);

/// The seqlock-protected positions in the publisher's segment.
pub(crate) struct Cursor<'a> {
    pub(crate) version: &'a AtomicU64,
    pub(crate) oldest_pos: &'a AtomicU64,
    pub(crate) oldest_seq: &'a AtomicU64,
    pub(crate) write_pos: &'a AtomicU64,
    pub(crate) write_seq: &'a AtomicU64,
    /// Whether the publisher may still finish a torn update (see [`Cursor::with_liveness`]).
    pub(crate) writer_alive: Option<&'a dyn Fn() -> bool>,
}

#[cfg(test)]
impl<'a> Cursor<'a> {
    /// A cursor over five plain words (version, oldest position and sequence, write
    /// position and sequence), for the unit tests and the loom models.
    pub(crate) fn from_words(w: &'a [AtomicU64; 5]) -> Self {
        let [version, oldest_pos, oldest_seq, write_pos, write_seq] = w;
        Cursor {
            version,
            oldest_pos,
            oldest_seq,
            write_pos,
            write_seq,
            writer_alive: None,
        }
    }
}

/// A consistent snapshot of the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) oldest_pos: u64,
    pub(crate) oldest_seq: u64,
    pub(crate) write_pos: u64,
    pub(crate) write_seq: u64,
}

impl<'a> Cursor<'a> {
    /// This cursor, with a way to learn that its publisher is gone: a snapshot that finds
    /// the seqlock torn asks `alive` while it waits, and gives up at once when the publisher
    /// died in the middle of an update (it would stay torn for good) instead of after the
    /// whole patience.
    pub(crate) fn with_liveness(self, alive: &'a dyn Fn() -> bool) -> Cursor<'a> {
        Cursor {
            writer_alive: Some(alive),
            ..self
        }
    }

    fn publish(&self, s: Snapshot) {
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd version before the new values (pairs with `snapshot`'s fence).
        fence(Ordering::Release);
        self.oldest_pos.store(s.oldest_pos, Ordering::Relaxed);
        self.oldest_seq.store(s.oldest_seq, Ordering::Relaxed);
        self.write_pos.store(s.write_pos, Ordering::Relaxed);
        self.write_seq.store(s.write_seq, Ordering::Relaxed);
        // Pairs with the Acquire version load in `snapshot`.
        self.version.store(v.wrapping_add(2), Ordering::Release);
    }

    /// Reads a consistent snapshot (each word once, under the seqlock) and validates it:
    /// positions frame aligned and at most a ring apart, no more messages between the
    /// sequences than fit between the positions (all modulo 2^64).
    pub(crate) fn snapshot(&self, capacity: u64) -> Result<Snapshot, Corruption> {
        let (mut torn, mut torn_since) = (0u32, None::<std::time::Instant>);
        loop {
            if torn == SEQLOCK_SPINS {
                torn = 0;
                let since = *torn_since.get_or_insert_with(std::time::Instant::now);
                let torn_for = since.elapsed();
                if torn_for > SEQLOCK_PATIENCE {
                    return Err(Corruption(format!(
                        "publisher cursor never became consistent (torn for {SEQLOCK_PATIENCE:?})"
                    )));
                }
                // Past a scheduler latency, ask whether the writer can still finish.
                if torn_for > SEQLOCK_LIVENESS_AFTER && self.writer_alive.is_some_and(|a| !a()) {
                    return Err(Corruption(
                        "publisher cursor torn, and the publisher is gone".into(),
                    ));
                }
                crate::sync::yield_now();
            }
            torn += 1;
            let v1 = self.version.load(Ordering::Acquire);
            if v1 % 2 == 1 {
                crate::sync::spin_hint();
                continue;
            }
            let s = Snapshot {
                oldest_pos: self.oldest_pos.load(Ordering::Relaxed),
                oldest_seq: self.oldest_seq.load(Ordering::Relaxed),
                write_pos: self.write_pos.load(Ordering::Relaxed),
                write_seq: self.write_seq.load(Ordering::Relaxed),
            };
            // Pairs with the Release fence in `publish`.
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) != v1 {
                continue;
            }
            let span = dist(s.oldest_pos, s.write_pos);
            if !s.oldest_pos.is_multiple_of(FRAME_HEADER_BYTES)
                || !s.write_pos.is_multiple_of(FRAME_HEADER_BYTES)
                || span > capacity
                || dist(s.oldest_seq, s.write_seq) > span / FRAME_HEADER_BYTES
            {
                return Err(Corruption(format!(
                    "publisher cursor {s:?} is inconsistent"
                )));
            }
            return Ok(s);
        }
    }
}

/// The publisher's private state.
#[derive(Debug)]
pub(crate) struct Writer {
    capacity: u64,
    at: Snapshot,
    /// Ring position of the last frame written.
    last_frame_pos: u64,
    /// A lower bound of every protected subscriber's consumed position, from the last call
    /// of `min_consumed` (`None`: unknown). Consumed positions only move forward, so while
    /// the bound frees the bytes a frame reuses, nobody's position needs reading: without
    /// it a `Block` publisher read every subscriber's position, a line each subscriber
    /// writes, at every message once the ring had wrapped. The owner calls
    /// [`Writer::forget_min_consumed`] when a subscriber that could be behind the bound
    /// starts counting.
    min_bound: Option<u64>,
}

/// Outcome of [`Writer::try_push`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Published.
    Done,
    /// `Block` policy: a subscriber still needs the bytes we would reuse; it is at this
    /// consumed position.
    Blocked,
}

impl Writer {
    pub(crate) fn new(capacity: u64) -> Self {
        Writer {
            capacity,
            at: Snapshot {
                oldest_pos: 0,
                oldest_seq: 0,
                write_pos: 0,
                write_seq: 0,
            },
            last_frame_pos: 0,
            min_bound: None,
        }
    }

    /// A writer of an empty ring whose next frame is at `pos` (frame aligned) with sequence
    /// `seq`, as if that many bytes and messages had been written and evicted; publishes
    /// that cursor. Tests start rings just below 2^64 with it.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn starting_at(capacity: u64, cursor: &Cursor<'_>, pos: u64, seq: u64) -> Self {
        debug_assert_eq!(pos % FRAME_HEADER_BYTES, 0);
        let at = Snapshot {
            oldest_pos: pos,
            oldest_seq: seq,
            write_pos: pos,
            write_seq: seq,
        };
        cursor.publish(at);
        Writer {
            capacity,
            at,
            last_frame_pos: pos,
            min_bound: None,
        }
    }

    /// Drops the cached lower bound of the consumed positions: the next frame that reuses
    /// bytes asks `min_consumed` again (call when a subscriber joins or starts holding the
    /// writer back, or a floor below the bound may apply).
    pub(crate) fn forget_min_consumed(&mut self) {
        self.min_bound = None;
    }

    /// Ring position of the last frame written.
    pub(crate) fn last_frame_pos(&self) -> u64 {
        self.last_frame_pos
    }

    /// Position of the oldest frame still in the ring: frames below it were evicted.
    pub(crate) fn oldest_pos(&self) -> u64 {
        self.at.oldest_pos
    }

    /// Evicts every frame up to and including the one at `pos` (a `DropOldest` publisher
    /// whose loan pool ran dry takes back slots nobody holds this way; subscribers that
    /// had not read those frames get `Lagged`), and publishes the cursor.
    pub(crate) fn evict_through<M: RingWrite>(&mut self, mem: &M, cursor: &Cursor<'_>, pos: u64) {
        let mut limit = pos.wrapping_add(1);
        if after(limit, self.at.write_pos) {
            limit = self.at.write_pos;
        }
        if after(limit, self.at.oldest_pos) {
            self.evict_below(mem, limit);
            cursor.publish(self.at);
        }
    }

    /// Publishes `msg`. `min_consumed` returns the lowest consumed position of the
    /// subscribers that must not lose data (`Block`), or `None` if there are none; it is
    /// called only when eviction is needed. The caller checked `msg.len()` against
    /// `ring::max_payload`.
    #[cfg(any(test, loom))]
    pub(crate) fn try_push<M: RingWrite>(
        &mut self,
        mem: &M,
        cursor: &Cursor<'_>,
        policy: Overflow,
        min_consumed: impl FnMut() -> Option<u64>,
        msg: &[u8],
    ) -> Push {
        self.try_push_kind(
            mem,
            cursor,
            policy,
            min_consumed,
            msg,
            super::ring::KIND_DATA,
        )
    }

    /// [`Writer::try_push`] of a frame of `kind` (data or loan).
    pub(crate) fn try_push_kind<M: RingWrite>(
        &mut self,
        mem: &M,
        cursor: &Cursor<'_>,
        policy: Overflow,
        mut min_consumed: impl FnMut() -> Option<u64>,
        msg: &[u8],
        kind: u32,
    ) -> Push {
        let len = msg.len() as u64;
        let index = self.at.write_pos & (self.capacity - 1);
        let to_end = self.capacity - index;
        let pad = frame_bytes(index, len) > to_end;
        let frame = if pad {
            frame_bytes(0, len)
        } else {
            frame_bytes(index, len)
        };
        let frame_pos = self.at.write_pos.wrapping_add(if pad { to_end } else { 0 });
        let end = frame_pos.wrapping_add(frame + TAG_BYTES);
        // Bytes below `end - capacity` are reused by this frame (none while the ring has
        // not been filled once: then that lies behind the oldest frame).
        let reuse_below = end.wrapping_sub(self.capacity);
        if after(reuse_below, self.at.oldest_pos) && policy == Overflow::Block {
            let freed = self.min_bound.is_some_and(|min| !after(reuse_below, min));
            if !freed {
                self.min_bound = min_consumed();
                if let Some(min) = self.min_bound {
                    if after(reuse_below, min) {
                        return Push::Blocked;
                    }
                }
            }
        }
        self.evict_below(mem, reuse_below);
        // The cursor moves before the frame is written, so no reader is ever ahead of it
        // (a reader that follows tags could otherwise pass a stale cursor). A subscriber that
        // starts at the new write position polls the tag there: clear it first.
        let next = Snapshot {
            write_pos: frame_pos.wrapping_add(frame),
            write_seq: self.at.write_seq.wrapping_add(1),
            ..self.at
        };
        mem.clear_tag(next.write_pos & (self.capacity - 1));
        cursor.publish(next);
        if pad {
            write_pad(mem, self.at.write_pos, self.capacity);
        }
        write_frame(mem, frame_pos, self.capacity, msg, kind, frame);
        self.at = next;
        self.last_frame_pos = frame_pos;
        Push::Done
    }

    /// Zeroes the tags of every frame starting below `limit`, advances the oldest frame, and
    /// fences so that readers who see new bytes there also see the zeroed tags. Reads only
    /// our own ring.
    fn evict_below<M: RingWrite>(&mut self, mem: &M, limit: u64) {
        let mut evicted = false;
        while after(limit, self.at.oldest_pos) {
            let index = self.at.oldest_pos & (self.capacity - 1);
            let meta = mem.load_meta(index).expect("our own ring is in bounds");
            let header =
                decode(self.at.oldest_pos, self.capacity, meta).expect("we wrote this header");
            mem.clear_tag(index);
            match header {
                Header::Pad { skip } => self.at.oldest_pos = self.at.oldest_pos.wrapping_add(skip),
                Header::Data(frame) | Header::Loan(frame) => {
                    let bytes = frame_bytes(frame.index, frame.len as u64);
                    self.at.oldest_pos = self.at.oldest_pos.wrapping_add(bytes);
                    self.at.oldest_seq = self.at.oldest_seq.wrapping_add(1);
                }
            }
            evicted = true;
        }
        if evicted {
            // Zeroed tags before the bytes that replace them (pairs with the reader's
            // Acquire fence before its tag re-check).
            fence(Ordering::Release);
        }
    }
}

/// The subscriber's side of loans in a broadcast ring (see the module docs).
pub(crate) trait Claims {
    /// What a successful claim gives the caller.
    type Claim;
    /// Validates the payload of a loan frame and claims its slot (stores the TAKEN word
    /// and fences), before the reader's final check that the frame is still there.
    fn claim(&mut self, payload: &[u8; LOAN_FRAME_BYTES]) -> Result<Self::Claim, Corruption>;
    /// The frame was evicted after [`Claims::claim`]: hand the slot back at once.
    fn withdraw(&mut self, claim: Self::Claim);
}

/// A subscriber without the publisher's pool: a loan frame is corruption.
pub(crate) struct NoLoans;

impl Claims for NoLoans {
    type Claim = std::convert::Infallible;
    fn claim(&mut self, _: &[u8; LOAN_FRAME_BYTES]) -> Result<Self::Claim, Corruption> {
        Err(Corruption(
            "loan frame from a publisher that announced no loan pool".into(),
        ))
    }
    fn withdraw(&mut self, claim: Self::Claim) {
        match claim {}
    }
}

/// What [`Reader::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read<C = std::convert::Infallible> {
    /// A message of this length was copied into the buffer.
    Message(usize),
    /// A loan, claimed and consumed: the subscriber holds it until it releases it.
    Loan(C),
    /// Nothing new yet.
    Empty,
    /// This many messages were overwritten before we could read them; we skipped them.
    Lagged(u64),
    /// The next message has this length and does not fit the buffer (nothing consumed).
    TooSmall(usize),
}

/// A subscriber's private state.
#[derive(Debug)]
pub(crate) struct Reader {
    capacity: u64,
    pos: u64,
    seq: u64,
    published: u64,
}

impl Reader {
    /// A reader starting at the publisher's current write position.
    pub(crate) fn new(capacity: u64, start: Snapshot) -> Self {
        Reader {
            capacity,
            pos: start.write_pos,
            seq: start.write_seq,
            published: start.write_pos,
        }
    }

    /// Sequence number of the next message.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Position of the next frame (what we publish as consumed).
    #[cfg(test)]
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Reads the next message into `out`. `check_lag` asks to consult the publisher's
    /// cursor even if the tag looks unpublished (call it now and then while waiting, and
    /// before sleeping: an evicted frame's tag reads as zero).
    #[cfg(any(test, loom))]
    pub(crate) fn read<M: RingRead>(
        &mut self,
        mem: &M,
        cursor: &Cursor<'_>,
        out: &mut [u8],
        check_lag: bool,
    ) -> Result<Read, Corruption> {
        self.read_with(mem, cursor, out, check_lag, &mut NoLoans)
    }

    /// [`Reader::read`] that also takes loan frames, through `claims`.
    pub(crate) fn read_with<M: RingRead, C: Claims>(
        &mut self,
        mem: &M,
        cursor: &Cursor<'_>,
        out: &mut [u8],
        check_lag: bool,
        claims: &mut C,
    ) -> Result<Read<C::Claim>, Corruption> {
        loop {
            let index = self.pos & (self.capacity - 1);
            // Acquire: pairs with the Release tag store in `write_frame`.
            let tag = mem.load_tag(index)?;
            if tag != tag_for(self.pos) {
                if check_lag || tag != 0 {
                    match self.resync(cursor)? {
                        Some(0) => continue, // only padding was evicted: nothing lost
                        Some(lost) => return Ok(Read::Lagged(lost)),
                        None => {}
                    }
                }
                return Ok(Read::Empty);
            }
            let meta = mem.load_meta(index)?;
            let header = match decode(self.pos, self.capacity, meta) {
                Ok(h) => h,
                // A header overwritten under us decodes as garbage; the re-check decides.
                Err(e) => {
                    if self.still_valid(mem, index, tag)? {
                        return Err(e);
                    }
                    continue;
                }
            };
            match header {
                Header::Loan(frame) => {
                    if frame.len != LOAN_FRAME_BYTES {
                        if self.still_valid(mem, index, tag)? {
                            return Err(Corruption(format!(
                                "loan frame of {} bytes at position {}",
                                frame.len, self.pos
                            )));
                        }
                        continue;
                    }
                    let mut payload = [0u8; LOAN_FRAME_BYTES];
                    mem.read_payload(frame.payload_at, &mut payload)?;
                    if !self.still_valid(mem, index, tag)? {
                        continue; // torn copy: the next loop finds the lap
                    }
                    // A whole copy: claim, then look again (the claim's fence orders them).
                    let claim = claims.claim(&payload)?;
                    if mem.load_tag(index)? == tag {
                        self.consume(frame);
                        return Ok(Read::Loan(claim));
                    }
                    claims.withdraw(claim);
                }
                Header::Pad { skip } => {
                    if self.still_valid(mem, index, tag)? {
                        self.pos = self.pos.wrapping_add(skip);
                    }
                }
                Header::Data(frame) if frame.len > out.len() => {
                    if self.still_valid(mem, index, tag)? {
                        return Ok(Read::TooSmall(frame.len));
                    }
                }
                Header::Data(frame) => {
                    mem.read_payload(frame.payload_at, &mut out[..frame.len])?;
                    if self.still_valid(mem, index, tag)? {
                        self.consume(frame);
                        return Ok(Read::Message(frame.len));
                    }
                }
            }
            // The frame was overwritten while we read it: the next loop finds the lap.
        }
    }

    /// Moves past the message `frame` (read whole): one more sequence number.
    fn consume(&mut self, frame: Frame) {
        self.pos = self
            .pos
            .wrapping_add(frame_bytes(frame.index, frame.len as u64));
        self.seq = self.seq.wrapping_add(1);
    }

    /// True if the frame's tag still holds after what we read of it.
    fn still_valid<M: RingRead>(&self, mem: &M, index: u64, tag: u64) -> Result<bool, Corruption> {
        // Pairs with the Release fence in `Writer::evict_below`.
        fence(Ordering::Acquire);
        Ok(mem.load_tag(index)? == tag)
    }

    /// If the publisher evicted our position, jumps to its oldest frame and returns how
    /// many messages we lost (0 if what it evicted under us was only padding). The cursor
    /// is read once (one snapshot) and every decision is taken on that copy.
    fn resync(&mut self, cursor: &Cursor<'_>) -> Result<Option<u64>, Corruption> {
        let s = cursor.snapshot(self.capacity)?;
        // How far the oldest frame is past us; 0 or "negative" (2^63 or more): not evicted.
        let skipped = dist(self.pos, s.oldest_pos);
        if skipped == 0 || skipped >= HALF {
            if !within(self.pos, s.oldest_pos, s.write_pos) {
                return Err(Corruption(format!(
                    "our position {} is beyond the publisher's write position {}",
                    self.pos, s.write_pos
                )));
            }
            return Ok(None);
        }
        if after(self.seq, s.oldest_seq) {
            return Err(Corruption(format!(
                "publisher's oldest sequence {} went back below ours {}",
                s.oldest_seq, self.seq
            )));
        }
        // Each message lost took at least a frame header of the bytes skipped.
        let lost = dist(self.seq, s.oldest_seq);
        if lost > skipped / FRAME_HEADER_BYTES {
            return Err(Corruption(format!(
                "publisher's oldest sequence {} claims {lost} messages lost since ours {}, \
                 more than fit the {skipped} bytes it evicted",
                s.oldest_seq, self.seq
            )));
        }
        // Forward only, so `published` stays at or before `pos`.
        self.pos = s.oldest_pos;
        self.seq = s.oldest_seq;
        Ok(Some(lost))
    }

    /// `Some(pos)` when our consumed position should be published (a quarter ring since the
    /// last time, or always when `idle`).
    pub(crate) fn publication_due(&mut self, idle: bool) -> Option<u64> {
        let due = dist(self.published, self.pos) >= self.capacity / 4
            || (idle && self.pos != self.published);
        due.then(|| {
            self.published = self.pos;
            self.pos
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
