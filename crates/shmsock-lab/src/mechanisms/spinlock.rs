//! A test-and-test-and-set spinlock in shared memory: a **measured subject** of the lab.
//!
//! One 8-byte word, `0` free and `1` held. `lock` reads the word until it looks free (the "test"
//! that keeps waiting CPUs on their own cached copy of the line), then tries to swing it from
//! `0` to `1` with a compare-and-swap (the "test-and-set"). `unlock` stores `0`. Like the
//! process-shared mutex, it is what the shmsock library never does (a holder that dies leaves it
//! held forever); here it only guards the synchronisation-tax queue, and a waiter gives up with
//! [`LabError::Stalled`] after [`STALL_TIMEOUT`] (see [`super::spin_until`]).

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::spin_until;
use crate::error::LabError;
use crate::shared::SharedRegion;

const FREE: u64 = 0;
const HELD: u64 = 1;

/// A TTAS spinlock at a fixed offset of a shared region.
pub(crate) struct SpinLock {
    region: Rc<SharedRegion>,
    offset: usize,
}

impl SpinLock {
    /// The lock word at `offset` of `region` (zero-filled memory is a free lock).
    pub(crate) fn new(region: Rc<SharedRegion>, offset: usize) -> Self {
        Self { region, offset }
    }

    /// Another handle on the same lock.
    pub(crate) fn handle(&self) -> Self {
        Self::new(Rc::clone(&self.region), self.offset)
    }

    /// Spins until the lock is ours.
    #[inline]
    pub(crate) fn lock(&self) -> Result<(), LabError> {
        let word = self.region.atomic_u64(self.offset);
        spin_until("waiting for a spinlock", || {
            // Test (a plain load, served from our cache while the holder keeps the line), then
            // test-and-set. Acquire pairs with the Release store in `unlock`: everything the
            // previous holder wrote under the lock is visible to us.
            (word.load(Ordering::Relaxed) == FREE
                && word
                    .compare_exchange_weak(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok())
            .then_some(())
        })
    }

    /// Releases the lock.
    #[inline]
    pub(crate) fn unlock(&self) {
        // Release pairs with the Acquire compare-and-swap in `lock`.
        self.region
            .atomic_u64(self.offset)
            .store(FREE, Ordering::Release);
    }
}
