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
//!
//! **Generations** wrap honestly, like ring positions (see [`serial`](super::serial)): the
//! lender counts them modulo 2^64 and skips 0, which every release and taken word holds
//! before its slot is first lent and so means "none". "Newer" is [`after`]. The lender
//! knows every generation it issued, from its first one to its last: a release or taken
//! word outside that window (other than 0) names a generation never lent and is a
//! [`Corruption`]. A borrower only knows the last generation of each slot it accepted: the
//! next one of that slot must be newer (less than 2^63 ahead).

use std::sync::Arc;

use super::broadcast::Claims;
use super::identity::SegmentId;
use super::ring::{Corruption, LOAN_FRAME_BYTES};
use super::segment::{OwnedPool, PeerPool, PeerSegment, ReleaseBoard};
use super::serial::{after, within};

/// What a release or taken word holds before its slot was ever lent: no generation.
const NO_GENERATION: u64 = 0;

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
    /// The lender's first generation: a borrower's word naming one outside
    /// `[first_generation, generation]` (other than 0) names a generation never lent.
    pub(crate) first_generation: u64,
}

impl Lent {
    /// Whether a borrower's release or taken word for this slot may name a generation we
    /// lent of it (or none): anything else is a lie.
    fn plausible(&self, word: u64) -> bool {
        word == NO_GENERATION || within(word, self.first_generation, self.generation)
    }
}

/// The lending side: our pool and the state of each slot (private memory).
pub(crate) struct Lender {
    pool: OwnedPool,
    slots: Vec<Slot>,
    /// Free slots, taken from the end.
    free: Vec<usize>,
    /// The generation of the next loan (never 0, see the module docs).
    next_generation: u64,
    /// The generation of our first loan: generations in use lie from it to the last one.
    first_generation: u64,
}

impl Lender {
    pub(crate) fn new(pool: OwnedPool) -> Self {
        Self::from_generation(pool, 1)
    }

    /// A lender whose first loan has generation `first` (not 0): tests start just below
    /// 2^64 to lend across the wrap.
    pub(crate) fn from_generation(pool: OwnedPool, first: u64) -> Self {
        debug_assert_ne!(first, NO_GENERATION);
        let n = pool.slots();
        Lender {
            pool,
            slots: vec![Slot::Free; n],
            free: (0..n).rev().collect(),
            next_generation: first,
            first_generation: first,
        }
    }

    pub(crate) fn slot_bytes(&self) -> usize {
        self.pool.slot_bytes()
    }

    /// This lender's identity (its pool's), to tell whose a detached loan is.
    pub(crate) fn id(&self) -> SegmentId {
        self.pool.id()
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
                first_generation: self.first_generation,
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
                    first_generation: self.first_generation,
                }),
                _ => None,
            })
            .collect();
        // Positions wrap (see `serial`): order by signed distance from any one of them,
        // which is the ring order while they lie within 2^63 bytes of each other (they lie
        // within what subscribers still hold).
        if let Some(base) = lent.first().map(|l| l.pos) {
            lent.sort_by_key(|l| l.pos.wrapping_sub(base) as i64);
        }
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
        self.next_generation = match generation.wrapping_add(1) {
            NO_GENERATION => 1,
            next => next,
        };
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

/// Whether the one borrower of a connection released `lent`: its release word (read once)
/// names that generation (an older one: still lent; one never lent: corruption).
pub(crate) fn released_by(peer: &PeerSegment, lent: Lent) -> Result<bool, Corruption> {
    let released = peer.released(lent.slot);
    if !lent.plausible(released) {
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
    /// Per slot, the last generation we accepted ([`NO_GENERATION`]: none yet).
    last: Vec<u64>,
}

impl Borrower {
    pub(crate) fn new(pool: PeerPool, board: ReleaseBoard) -> Self {
        let n = pool.slots();
        Borrower {
            pool: Arc::new(pool),
            board: Arc::new(board),
            last: vec![NO_GENERATION; n],
        }
    }

    /// Validates the payload of a loan frame without accepting it: the slot exists, the
    /// length fits it, the generation is newer than the slot's last one (modulo 2^64, see
    /// the module docs; any but 0 if the slot was never lent to us), and we released that
    /// one (a correct lender never reuses a slot we still hold).
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
        // 0 is never lent (it means "none"); the first loan of a slot may be any other.
        let newer =
            generation != NO_GENERATION && (last == NO_GENERATION || after(generation, last));
        if !newer {
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
    if !lent.plausible(released) || !lent.plausible(taken) {
        return Err(Corruption(format!(
            "subscriber words for slot {} (released {released}, taken {taken}) name a \
             generation never lent: it was lent as generation {}",
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
    use std::collections::{BTreeSet, VecDeque};

    use proptest::prelude::*;

    use super::*;
    use crate::shm::segment::OwnedSegment;

    /// A lender whose first generation is `below` under 2^64, lending `slots` slots of 64
    /// bytes to a borrower: (lender, borrower, the lender's view of the borrower's
    /// segment, the borrower's segment).
    fn lending_near_the_top(
        below: u64,
        slots: usize,
    ) -> (Lender, Borrower, PeerSegment, OwnedSegment) {
        let (pool, theirs, b) = borrower(slots, 64);
        let peer = PeerSegment::open(theirs.fd().try_clone_to_owned().unwrap(), theirs.capacity())
            .unwrap();
        let lender = Lender::from_generation(pool, 0u64.wrapping_sub(below));
        (lender, b, peer, theirs)
    }

    /// Lends one loan of 8 bytes filled with `byte` (the slot must be free); returns it.
    fn lend(lender: &mut Lender, peer: &PeerSegment, byte: u8) -> LoanRef {
        let loan = lender.take(8, peer).unwrap().expect("a free slot");
        lender.bytes_mut(&loan).fill(byte);
        lender.lent(&loan, 0);
        loan
    }

    /// A value near `first`, near 2^64 or 0, or anything.
    fn suspicious(first: u64) -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (0u64..300).prop_map(move |d| first.wrapping_add(d)),
            (0u64..300).prop_map(move |d| first.wrapping_sub(d)),
            (0u64..300).prop_map(|d| 0u64.wrapping_sub(d)),
            0u64..300,
        ]
    }

    proptest! {
        /// An honest lender whose generations start just below 2^64 (and wrap, skipping 0)
        /// and a borrower that holds up to a random number of loans: every loan is accepted
        /// with its bytes intact, and every released slot comes back.
        #[test]
        fn loans_come_back_across_the_top_of_u64(
            below in 1u64..64,
            slots in 1usize..5,
            holds in prop::collection::vec(0usize..4, 1..200),
        ) {
            let (mut lender, mut b, peer, _theirs) = lending_near_the_top(below, slots);
            let first = 0u64.wrapping_sub(below);
            let mut held = VecDeque::new();
            for (k, hold) in holds.iter().enumerate() {
                let loan = loop {
                    if let Some(loan) = lender.take(8, &peer).unwrap() {
                        break loan;
                    }
                    let oldest: LoanRef = held.pop_front().expect("a dry pool has loans held");
                    b.board.release(oldest.slot, oldest.generation);
                };
                prop_assert_ne!(loan.generation, NO_GENERATION);
                prop_assert_eq!(loan.generation, first.wrapping_add(k as u64) + u64::from(k as u64 >= below));
                lender.bytes_mut(&loan).fill(k as u8);
                lender.lent(&loan, 0);
                let got = b.check(&loan.encode()).unwrap();
                prop_assert_eq!(got, loan);
                b.accept(&got);
                let mut out = [0u8; 8];
                b.pool.read(got.slot, 0, &mut out).unwrap();
                prop_assert_eq!(out, [k as u8; 8]);
                held.push_back(got);
                while held.len() > *hold {
                    let done = held.pop_front().unwrap();
                    b.board.release(done.slot, done.generation);
                }
            }
            prop_assert_eq!(lender.outstanding(&peer).unwrap(), held.len());
            for done in held.drain(..) {
                b.board.release(done.slot, done.generation);
            }
            prop_assert_eq!(lender.outstanding(&peer).unwrap(), 0);
        }

        /// A borrower's release word near the top of u64: a generation the lender issued
        /// (or 0, "none") is believed (the slot is back if it is the one lent, still lent
        /// otherwise); any other value is corruption. Never a panic.
        #[test]
        fn a_release_near_the_top_names_a_generation_lent_or_is_corruption(
            below in 1u64..64,
            lends in 1usize..130,
            hostile in suspicious(0u64.wrapping_sub(64)),
        ) {
            let (mut lender, _b, peer, theirs) = lending_near_the_top(below, 2);
            let board = ReleaseBoard::of(&theirs);
            let mut issued = BTreeSet::new();
            let mut last = None;
            for k in 0..lends {
                let loan = lend(&mut lender, &peer, k as u8);
                issued.insert(loan.generation);
                if let Some(prev) = last.replace(loan) {
                    board.release(prev.slot, prev.generation);
                }
            }
            let held = last.unwrap();
            board.release(held.slot, hostile);
            let got = lender.outstanding(&peer);
            if hostile == NO_GENERATION || issued.contains(&hostile) {
                let back = usize::from(hostile != held.generation);
                prop_assert_eq!(got.unwrap(), back);
            } else {
                let err = got.unwrap_err().0;
                prop_assert!(err.contains(&format!("released generation {hostile}")), "{}", err);
            }
        }

        /// A subscriber's release and taken words near the top of u64, as the publisher
        /// reads them (`holding`): generations the lender issued (or 0) are believed, any
        /// other value is corruption. Never a panic.
        #[test]
        fn a_subscriber_naming_a_generation_never_lent_near_the_top_is_corruption(
            below in 1u64..64,
            lends in 1usize..130,
            released in suspicious(0u64.wrapping_sub(64)),
            taken in suspicious(0u64.wrapping_sub(64)),
        ) {
            let (mut lender, _b, peer, theirs) = lending_near_the_top(below, 1);
            let board = ReleaseBoard::of(&theirs);
            let mut issued = BTreeSet::new();
            for k in 0..lends {
                let loan = lend(&mut lender, &peer, k as u8);
                issued.insert(loan.generation);
                if k + 1 < lends {
                    board.release(loan.slot, loan.generation);
                }
            }
            let [lent] = lender.lent_slots()[..] else {
                panic!("one slot lent");
            };
            board.release(lent.slot, released);
            board.claim(lent.slot, taken);
            let plausible = |w: u64| w == NO_GENERATION || issued.contains(&w);
            let got = holding(&peer, lent);
            if released == lent.generation {
                prop_assert_eq!(got.unwrap(), Holding::Released);
            } else if !plausible(released) || !plausible(taken) {
                prop_assert!(got.unwrap_err().0.contains("never lent"));
            } else if taken == lent.generation {
                prop_assert_eq!(got.unwrap(), Holding::Holds);
            } else {
                prop_assert_eq!(got.unwrap(), Holding::NotTaken);
            }
        }
    }

    #[test]
    fn a_borrower_takes_generations_across_the_top_of_u64_but_no_replay() {
        let (_pool, _mine, mut b) = borrower(1, 64);
        let mut accept = |generation: u64| -> Result<(), String> {
            let loan = b.check(&frame(0, generation, 8)).map_err(|c| c.0)?;
            b.accept(&loan);
            b.board.release(0, generation);
            Ok(())
        };
        // The first loan of a slot may have any generation but 0 ("none").
        assert!(accept(0).unwrap_err().contains("not newer than 0"));
        accept(u64::MAX - 1).unwrap();
        accept(u64::MAX).unwrap();
        // The wrap: a lender skips 0.
        assert!(accept(0).unwrap_err().contains("not newer"));
        accept(1).unwrap();
        accept(2).unwrap();
        // Replays and older generations, across the wrap too; and one 2^63 or more ahead
        // (behind, modulo 2^64).
        for stale in [2, 1, u64::MAX, u64::MAX - 1, 2 + (1 << 63), 3 + (1 << 63)] {
            let err = accept(stale).unwrap_err();
            assert!(err.contains("not newer than 2"), "{stale}: {err}");
        }
        accept(2 + (1 << 63) - 1).unwrap();
    }

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
