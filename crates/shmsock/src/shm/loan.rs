//! Zero-copy loans: the lender's slot pool and the borrower's bookkeeping.
//!
//! ```text
//!  lender (owns the pool)                       borrower (maps it read-only)
//!  take a free slot s, generation g (g grows)
//!  fill slot s in place
//!  LOAN frame {s, g, len} in the ring ───────▶  validate: s < slots, len <= slot size,
//!                                               g newer than the last loan of s, and that
//!                                               one was released; view slot s
//!  s is free again once RELEASED[s] == g ◀────  drop the view: RELEASED[s] = g (its own
//!  (read from the borrower's segment)           segment, one word per slot)
//! ```
//!
//! Only the lender allocates, so the pool needs no shared allocator state. The release
//! travels back as a word per slot in the borrower's own segment rather than as a frame in
//! its ring: that ring may be full of the borrower's own messages, which the lender may
//! never read, and a word per slot can neither overflow nor be stuck behind them. A
//! release word that names a generation never lent is corruption; a stale one (older
//! generation) just means "still lent". When the connection ends the pool goes with it, so
//! slots lent to a dead peer come back with the memory.

use std::sync::Arc;

use super::broadcast::Claims;
use super::ring::{Corruption, LOAN_FRAME_BYTES};
use super::segment::{OwnedPool, PeerPool, PeerSegment, ReleaseBoard};

/// Longest nap of a lender waiting for a slot to come back (releases wake nobody).
pub(crate) const LOAN_RECLAIM_NAP: std::time::Duration = std::time::Duration::from_micros(50);

/// Checks that `lender` exists and that a loan of `len` bytes fits one of its slots:
/// [`Error::NoLoanPool`](crate::Error) or [`Error::TooLarge`](crate::Error) otherwise.
pub(crate) fn check_loan_len(
    lender: Option<&Lender>,
    len: usize,
    endpoint: &str,
) -> crate::error::Result<()> {
    let Some(lender) = lender else {
        return Err(crate::error::Error::NoLoanPool {
            endpoint: endpoint.to_owned(),
        });
    };
    let max = lender.slot_bytes();
    if len > max {
        return Err(crate::error::Error::TooLarge { len, max });
    }
    Ok(())
}

/// A message received over `shm://` for a `recv_sample`: a loan viewed in the sender's slot
/// (handed back when dropped), or a copy of a message that came through the ring.
pub(crate) enum ShmSample {
    /// A loan, in place.
    Lent(LentSlot),
    /// A copy.
    Copied(Vec<u8>),
}

impl ShmSample {
    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            ShmSample::Lent(l) => l.len(),
            ShmSample::Copied(b) => b.len(),
        }
    }

    /// Copies `out.len()` bytes at `offset` (inside the message: the caller checked).
    pub(crate) fn read_at(&self, offset: usize, out: &mut [u8]) {
        match self {
            ShmSample::Lent(l) => l.read_at(offset, out),
            ShmSample::Copied(b) => out.copy_from_slice(&b[offset..offset + out.len()]),
        }
    }
}

/// A claimed loan of the peer's pool: its slot is read in place until this is dropped,
/// which hands the slot back (its generation in our release board). `Send`: it may be
/// dropped on another thread.
pub(crate) struct LentSlot {
    pool: Arc<PeerPool>,
    board: Arc<ReleaseBoard>,
    loan: LoanRef,
}

impl LentSlot {
    /// A view of `loan`, checked against `pool`, to be released on `board`.
    pub(crate) fn new(pool: Arc<PeerPool>, board: Arc<ReleaseBoard>, loan: LoanRef) -> Self {
        LentSlot { pool, board, loan }
    }

    /// Length of the loan in bytes.
    pub(crate) fn len(&self) -> usize {
        self.loan.len
    }

    /// Copies `out.len()` bytes at `offset` of the loan's slot; `Err` if that leaves it.
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), Corruption> {
        self.pool.read(self.loan.slot, offset, out)
    }

    /// Copies `out.len()` bytes at `offset` of the loan (inside it: the caller checked).
    pub(crate) fn read_at(&self, offset: usize, out: &mut [u8]) {
        self.read(offset, out)
            .expect("the loan was checked against the pool");
    }

    /// The pool and the slot, for an in-place view ([`PeerPool::slot_slice`]).
    pub(crate) fn place(&self) -> (&PeerPool, usize) {
        (&self.pool, self.loan.slot)
    }
}

impl Drop for LentSlot {
    fn drop(&mut self) {
        self.board.release(self.loan.slot, self.loan.generation);
    }
}

/// What a loan frame says: which slot, which lending of it, how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoanRef {
    pub(crate) slot: usize,
    pub(crate) generation: u64,
    pub(crate) len: usize,
}

impl LoanRef {
    pub(crate) fn encode(&self) -> [u8; LOAN_FRAME_BYTES] {
        let mut b = [0u8; LOAN_FRAME_BYTES];
        b[0..4].copy_from_slice(&(self.slot as u32).to_le_bytes());
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&(self.len as u64).to_le_bytes());
        b
    }

    fn decode(b: &[u8; LOAN_FRAME_BYTES]) -> (u64, u64, u64) {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        (
            u64::from(u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"))),
            u64_at(8),
            u64_at(16),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Ours; `generation` was its last lending (0: never lent).
    Free,
    /// Handed to the caller to fill (a `Loan` not yet sent).
    Filling,
    /// Sent as `generation` in the frame at ring position `pos`; free once every borrower
    /// released it or can no longer read it.
    Lent { generation: u64, pos: u64 },
}

/// A slot lent out, as the reclaim test sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lent {
    pub(crate) slot: usize,
    pub(crate) generation: u64,
    /// Ring position of the loan frame (broadcast rings; 0 for a connection's ring).
    pub(crate) pos: u64,
}

/// The lending side: our pool and the state of each slot (private memory).
pub(crate) struct Lender {
    pool: OwnedPool,
    slots: Vec<Slot>,
    /// Free slots, taken from the end.
    free: Vec<usize>,
    next_generation: u64,
}

impl Lender {
    pub(crate) fn new(pool: OwnedPool) -> Self {
        let n = pool.slots();
        Lender {
            pool,
            slots: vec![Slot::Free; n],
            free: (0..n).rev().collect(),
            next_generation: 1,
        }
    }

    pub(crate) fn slot_bytes(&self) -> usize {
        self.pool.slot_bytes()
    }

    /// Takes back every lent slot that `is_back` says is ours again (it reads the
    /// borrowers' words, each once).
    pub(crate) fn reclaim_with(
        &mut self,
        mut is_back: impl FnMut(Lent) -> Result<bool, Corruption>,
    ) -> Result<(), Corruption> {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Slot::Lent { generation, pos } = *slot else {
                continue;
            };
            if is_back(Lent {
                slot: i,
                generation,
                pos,
            })? {
                *slot = Slot::Free;
                self.free.push(i);
            }
        }
        Ok(())
    }

    /// Takes back every slot the one peer of a connection released (read from its
    /// segment, each word once).
    fn reclaim(&mut self, peer: &PeerSegment) -> Result<(), Corruption> {
        self.reclaim_with(|lent| released_by(peer, lent))
    }

    /// The slots lent out, oldest loan frame first.
    pub(crate) fn lent_slots(&self) -> Vec<Lent> {
        let mut lent: Vec<Lent> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| match *s {
                Slot::Lent { generation, pos } => Some(Lent {
                    slot,
                    generation,
                    pos,
                }),
                _ => None,
            })
            .collect();
        lent.sort_by_key(|l| l.pos);
        lent
    }

    /// True if a slot is free without reclaiming.
    pub(crate) fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// A free slot to fill with up to `len` bytes, if any (looks at the peer's releases
    /// only when none is known free).
    pub(crate) fn take(
        &mut self,
        len: usize,
        peer: &PeerSegment,
    ) -> Result<Option<LoanRef>, Corruption> {
        if self.free.is_empty() {
            self.reclaim(peer)?;
        }
        Ok(self.take_free(len))
    }

    /// A slot already known free (see [`Lender::reclaim_with`]), if any.
    pub(crate) fn take_free(&mut self, len: usize) -> Option<LoanRef> {
        debug_assert!(len <= self.pool.slot_bytes());
        let slot = self.free.pop()?;
        self.slots[slot] = Slot::Filling;
        let generation = self.next_generation;
        self.next_generation += 1;
        Some(LoanRef {
            slot,
            generation,
            len,
        })
    }

    /// The bytes of a slot being filled, to read back.
    pub(crate) fn bytes(&self, loan: &LoanRef) -> &[u8] {
        self.pool.slot(loan.slot, loan.len)
    }

    /// The bytes of a slot being filled.
    pub(crate) fn bytes_mut(&mut self, loan: &LoanRef) -> &mut [u8] {
        debug_assert_eq!(self.slots[loan.slot], Slot::Filling);
        self.pool.slot_mut(loan.slot, loan.len)
    }

    /// The loan frame for `loan` was published at ring position `pos`.
    pub(crate) fn lent(&mut self, loan: &LoanRef, pos: u64) {
        self.slots[loan.slot] = Slot::Lent {
            generation: loan.generation,
            pos,
        };
    }

    /// A loan dropped without being sent: its slot is free again.
    pub(crate) fn abandon(&mut self, loan: &LoanRef) {
        if self.slots[loan.slot] == Slot::Filling {
            self.slots[loan.slot] = Slot::Free;
            self.free.push(loan.slot);
        }
    }

    /// Slots currently lent to the peer (after taking back what it released) or being
    /// filled.
    pub(crate) fn outstanding(&mut self, peer: &PeerSegment) -> Result<usize, Corruption> {
        self.reclaim(peer)?;
        Ok(self.outstanding_count())
    }

    /// Slots lent or being filled, as last reclaimed.
    pub(crate) fn outstanding_count(&self) -> usize {
        self.slots.iter().filter(|s| **s != Slot::Free).count()
    }
}

/// Whether the one borrower of a connection released `lent`: its release word names that
/// generation (an older one: still lent; a newer one was never lent: corruption).
pub(crate) fn released_by(peer: &PeerSegment, lent: Lent) -> Result<bool, Corruption> {
    let released = peer.released(lent.slot);
    if released > lent.generation {
        return Err(Corruption(format!(
            "the peer released generation {released} of slot {}, which was lent as generation {}",
            lent.slot, lent.generation
        )));
    }
    Ok(released == lent.generation)
}

/// The borrowing side: the peer's pool (shared with our `Sample`s) and, per slot, the last
/// generation the peer lent us.
pub(crate) struct Borrower {
    pub(crate) pool: Arc<PeerPool>,
    pub(crate) board: Arc<ReleaseBoard>,
    last: Vec<u64>,
}

impl Borrower {
    pub(crate) fn new(pool: PeerPool, board: ReleaseBoard) -> Self {
        let n = pool.slots();
        Borrower {
            pool: Arc::new(pool),
            board: Arc::new(board),
            last: vec![0; n],
        }
    }

    /// Validates the payload of a loan frame without accepting it: the slot exists, the
    /// length fits it, the generation is newer than the slot's last one, and we released
    /// that one (a correct lender never reuses a slot we still hold).
    pub(crate) fn check(&self, payload: &[u8; LOAN_FRAME_BYTES]) -> Result<LoanRef, Corruption> {
        let (slot, generation, len) = LoanRef::decode(payload);
        let slots = self.pool.slots();
        if slot >= slots as u64 {
            return Err(Corruption(format!(
                "loan of slot {slot}, but the pool has {slots}"
            )));
        }
        let slot = slot as usize;
        if len > self.pool.slot_bytes() as u64 {
            return Err(Corruption(format!(
                "loan of {len} bytes in a slot of {}",
                self.pool.slot_bytes()
            )));
        }
        let last = self.last[slot];
        if generation <= last {
            return Err(Corruption(format!(
                "loan of slot {slot} as generation {generation}, not newer than {last}"
            )));
        }
        if self.board.last_released(slot) != last {
            return Err(Corruption(format!(
                "slot {slot} lent again (generation {generation}) while we still hold \
                 generation {last}"
            )));
        }
        Ok(LoanRef {
            slot,
            generation,
            len: len as usize,
        })
    }

    /// Records that we hold `loan` (after [`Borrower::check`]).
    pub(crate) fn accept(&mut self, loan: &LoanRef) {
        self.last[loan.slot] = loan.generation;
    }
}

/// A subscriber's borrower: claims loan frames of the publisher's broadcast ring (see
/// `broadcast`'s module docs) in the TAKEN words of the subscriber's own segment.
pub(crate) struct BroadcastBorrower(pub(crate) Borrower);

impl Claims for BroadcastBorrower {
    type Claim = LoanRef;

    fn claim(&mut self, payload: &[u8; LOAN_FRAME_BYTES]) -> Result<LoanRef, Corruption> {
        let loan = self.0.check(payload)?;
        self.0.accept(&loan);
        self.0.board.claim(loan.slot, loan.generation);
        Ok(loan)
    }

    fn withdraw(&mut self, loan: LoanRef) {
        self.0.board.release(loan.slot, loan.generation);
    }
}

/// What a subscriber's words say about one of our lent slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holding {
    /// It released this generation.
    Released,
    /// It claimed this generation and still holds it.
    Holds,
    /// It never claimed this generation.
    NotTaken,
}

/// Reads a subscriber's release and taken words for `lent` (each once). `Err` if it names a
/// generation never lent (the publisher drops that subscriber).
pub(crate) fn holding(sub: &PeerSegment, lent: Lent) -> Result<Holding, Corruption> {
    let released = sub.released(lent.slot);
    if released == lent.generation {
        return Ok(Holding::Released);
    }
    let taken = sub.taken(lent.slot);
    if released > lent.generation || taken > lent.generation {
        return Err(Corruption(format!(
            "subscriber words for slot {} (released {released}, taken {taken}) are beyond \
             the generation lent, {}",
            lent.slot, lent.generation
        )));
    }
    Ok(if taken == lent.generation {
        Holding::Holds
    } else {
        Holding::NotTaken
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::segment::OwnedSegment;

    fn borrower(slots: usize, slot_bytes: usize) -> (OwnedPool, OwnedSegment, Borrower) {
        let pool = OwnedPool::create(slots, slot_bytes).unwrap();
        let peer = PeerPool::open(
            pool.shape().fd.try_clone_to_owned().unwrap(),
            slots as u64,
            slot_bytes as u64,
        )
        .unwrap();
        let mine = OwnedSegment::create(4096).unwrap();
        let b = Borrower::new(peer, ReleaseBoard::of(&mine));
        (pool, mine, b)
    }

    fn frame(slot: u32, generation: u64, len: u64) -> [u8; LOAN_FRAME_BYTES] {
        let mut b = [0u8; LOAN_FRAME_BYTES];
        b[0..4].copy_from_slice(&slot.to_le_bytes());
        b[8..16].copy_from_slice(&generation.to_le_bytes());
        b[16..24].copy_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn forged_or_stale_loan_frames_are_corruption() {
        let (_pool, _mine, mut b) = borrower(4, 128);
        let err = |f| b.check(&f).unwrap_err().0;
        assert!(err(frame(4, 1, 8)).contains("pool has 4"));
        assert!(err(frame(u32::MAX, 1, 8)).contains("pool has 4"));
        assert!(err(frame(0, 1, 129)).contains("slot of 128"));
        assert!(err(frame(0, 0, 8)).contains("not newer"));
        let ok = b.check(&frame(1, 5, 128)).unwrap();
        assert_eq!((ok.slot, ok.generation, ok.len), (1, 5, 128));
        b.accept(&ok);
        // Lent again before we released it: the lender broke the protocol.
        assert!(b
            .check(&frame(1, 6, 8))
            .unwrap_err()
            .0
            .contains("still hold"));
        // A replay of the same or an older generation.
        b.board.release(1, 5);
        assert!(b
            .check(&frame(1, 5, 8))
            .unwrap_err()
            .0
            .contains("not newer"));
        assert!(b
            .check(&frame(1, 3, 8))
            .unwrap_err()
            .0
            .contains("not newer"));
        assert!(b.check(&frame(1, 6, 8)).is_ok());
    }

    #[test]
    fn a_release_of_a_generation_never_lent_is_corruption() {
        let (pool, theirs, _b) = borrower(2, 64);
        // We are the lender now: `theirs` is the borrower's segment, mapped read-only.
        let peer = PeerSegment::open(theirs.fd().try_clone_to_owned().unwrap(), theirs.capacity())
            .unwrap();
        let board = ReleaseBoard::of(&theirs);
        let mut lender = Lender::new(pool);
        let a = lender.take(10, &peer).unwrap().unwrap();
        lender.bytes_mut(&a).fill(1);
        lender.lent(&a, 0);
        let b = lender.take(10, &peer).unwrap().unwrap();
        lender.lent(&b, 0);
        assert_eq!(lender.take(10, &peer).unwrap(), None, "pool exhausted");
        // A stale release (older generation) means "still lent".
        board.release(a.slot, a.generation - 1);
        assert_eq!(lender.take(10, &peer).unwrap(), None);
        board.release(a.slot, a.generation);
        let c = lender.take(10, &peer).unwrap().unwrap();
        assert_eq!(c.slot, a.slot);
        assert!(c.generation > b.generation);
        lender.abandon(&c);
        assert_eq!(lender.outstanding(&peer).unwrap(), 1);
        board.release(b.slot, b.generation + 100);
        assert!(lender
            .outstanding(&peer)
            .unwrap_err()
            .0
            .contains("was lent as generation"));
    }
}
