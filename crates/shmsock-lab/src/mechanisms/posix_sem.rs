//! `posix-sem`: a shared-memory ring whose wake-up is a pair of unnamed POSIX semaphores.
//!
//! The IPC cheat sheet's "synchronization is your problem" lists "Semaphores: POSIX sem_init
//! with pshared=1, or named sem_open" among the ways to synchronise processes that share
//! memory. This is the first of the two, the textbook bounded buffer: the data travel in fixed
//! slots of a shared ring (as in `raw-ring`), and two counting semaphores, initialised with
//! `sem_init(pshared = 1)` inside the same `MAP_SHARED` mapping, say how many slots are full
//! and how many are free.
//!
//! ```text
//! line 0: items  sem_t, initially 0      posted by the producer, one per message
//! line 1: space  sem_t, initially n      posted by the consumer, one per message taken
//! 128.. : slot[0] slot[1] ... slot[n-1]  n = a power of two, n * size ≈ RING_BYTES
//! ```
//!
//! The producer waits on `space`, copies the message into its next slot and posts `items`; the
//! consumer waits on `items`, copies its next slot out and posts `space`. Each side counts its
//! own position privately: the semaphores are the only shared state besides the slots, and
//! `sem_post`/`sem_wait` order memory (POSIX lists them among the functions that synchronise
//! memory), so the slot's bytes are visible once the post is. A wait on a semaphore above zero
//! is one atomic decrement in user space; a side sleeps in the kernel (a futex in glibc) only
//! when its semaphore is zero: the consumer when the ring is empty, the producer when it is
//! full. A post makes a system call only when the peer sleeps.
//!
//! Latency ping-pong uses two rings (one per direction), streaming one. Every wait has a
//! timeout: `Semaphore::wait` tries `sem_trywait` first and then sleeps in
//! `sem_timedwait` in slices, giving up with [`LabError::Stalled`] after [`STALL_TIMEOUT`].
//!
//! The named flavour (`sem_open`) guards the sync-tax experiment's queue as a lock (see
//! `named_sem`); both use `Semaphore`.
//!
//! # Safety
//!
//! The `sem_*` calls are not in rustix, so this module calls libc. A `Semaphore` holds a
//! pointer to a `sem_t` that was initialised (or opened) before it was made, and the `Rc` of
//! whatever keeps that memory mapped, so every call gets a live semaphore. The slot copies are
//! `unsafe` (`SharedRegion::write_bytes`/`read_bytes`): a slot is written only
//! after a successful wait on `space` and read only after one on `items`, so the two processes
//! never touch it at once.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::lanes::{self, Lane};
use super::posix_mq::realtime_after;
use super::{check_len, message_buf, Mechanism, Pair, Pattern, Slots, STALL_TIMEOUT};
use crate::error::LabError;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

const ITEMS_OFFSET: usize = 0;
const SPACE_OFFSET: usize = CACHE_LINE_BYTES;
const SLOTS_OFFSET: usize = 2 * CACHE_LINE_BYTES;

const _: () = assert!(std::mem::size_of::<libc::sem_t>() <= CACHE_LINE_BYTES);

/// Longest single `sem_timedwait`; the stall timeout is checked between them.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// The semaphore-signalled shared-memory ring.
#[derive(Debug, Clone, Copy, Default)]
pub struct PosixSem;

impl Mechanism for PosixSem {
    fn name(&self) -> &'static str {
        "posix-sem"
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        lanes::pair("posix-sem", pattern, || SemRing::create(size))
    }
}

/// A POSIX semaphore this process can use: a pointer to a live `sem_t` and the owner `K` of
/// the memory it lies in (a shared region, or the mapping `sem_open` made), kept alive as long
/// as the handle.
pub(crate) struct Semaphore<K> {
    sem: NonNull<libc::sem_t>,
    _owner: Rc<K>,
}

impl Semaphore<SharedRegion> {
    /// Initialises an unnamed process-shared semaphore (`sem_init` with `pshared = 1`) of
    /// value `value` at `offset` of `region`, before the fork.
    pub(crate) fn init(
        region: Rc<SharedRegion>,
        offset: usize,
        value: u32,
    ) -> Result<Self, LabError> {
        assert!(
            offset.is_multiple_of(std::mem::align_of::<libc::sem_t>()),
            "semaphore offset {offset} is misaligned"
        );
        let sem = region
            .ptr_at(offset, std::mem::size_of::<libc::sem_t>())
            .cast::<libc::sem_t>();
        // SAFETY: `sem` points at enough aligned bytes (checked above and by `ptr_at`) of the
        // live region, which no other process uses yet (we have not forked).
        let rc = unsafe { libc::sem_init(sem.as_ptr(), 1, value) };
        if rc != 0 {
            return Err(LabError::Os {
                what: "sem_init (a process-shared semaphore)",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Self {
            sem,
            _owner: region,
        })
    }
}

impl<K> Semaphore<K> {
    /// A handle on the semaphore at `sem`, which `owner` keeps mapped.
    ///
    /// # Safety
    /// `sem` must point at a `sem_t` that is initialised (`sem_init`) or open (`sem_open`)
    /// and stays mapped while `owner` is alive.
    pub(crate) unsafe fn from_raw(sem: NonNull<libc::sem_t>, owner: Rc<K>) -> Self {
        Self { sem, _owner: owner }
    }

    /// Another handle on the same semaphore.
    pub(crate) fn handle(&self) -> Self {
        Self {
            sem: self.sem,
            _owner: Rc::clone(&self._owner),
        }
    }

    /// Increments the semaphore, waking a waiter if there is one.
    #[inline]
    pub(crate) fn post(&self) -> Result<(), LabError> {
        // SAFETY: `sem` is a live semaphore (the type's invariant).
        if unsafe { libc::sem_post(self.sem.as_ptr()) } == 0 {
            return Ok(());
        }
        Err(LabError::Os {
            what: "sem_post",
            source: std::io::Error::last_os_error(),
        })
    }

    /// Decrements the semaphore if it is above zero, without waiting; whether it did.
    #[cfg(test)]
    pub(crate) fn try_wait(&self) -> bool {
        // SAFETY: `sem` is a live semaphore (the type's invariant).
        unsafe { libc::sem_trywait(self.sem.as_ptr()) == 0 }
    }

    /// Decrements the semaphore, sleeping while it is zero; fails with [`LabError::Stalled`]
    /// (`what`) if it stays zero for [`STALL_TIMEOUT`].
    #[inline]
    pub(crate) fn wait(&self, what: &'static str) -> Result<(), LabError> {
        // SAFETY: `sem` is a live semaphore (the type's invariant).
        if unsafe { libc::sem_trywait(self.sem.as_ptr()) } == 0 {
            return Ok(());
        }
        self.wait_slow(what, std::io::Error::last_os_error())
    }

    /// The rest of `Semaphore::wait` after `sem_trywait` failed with `err`.
    #[cold]
    fn wait_slow(&self, what: &'static str, mut err: std::io::Error) -> Result<(), LabError> {
        let started = Instant::now();
        loop {
            match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR | libc::ETIMEDOUT) => {}
                _ => {
                    return Err(LabError::Os {
                        what: "waiting on a POSIX semaphore",
                        source: err,
                    })
                }
            }
            if started.elapsed() > STALL_TIMEOUT {
                return Err(LabError::Stalled {
                    what,
                    waited: started.elapsed(),
                });
            }
            let deadline = realtime_after(WAIT_SLICE);
            // SAFETY: `sem` is a live semaphore (the type's invariant); `deadline` is a valid
            // timespec alive for the call.
            if unsafe { libc::sem_timedwait(self.sem.as_ptr(), &deadline) } == 0 {
                return Ok(());
            }
            err = std::io::Error::last_os_error();
        }
    }
}

/// One process's handle on one ring (see the module docs).
struct SemRing {
    region: Rc<SharedRegion>,
    items: Semaphore<SharedRegion>,
    space: Semaphore<SharedRegion>,
    slots: Slots<SLOTS_OFFSET>,
    size: usize,
    /// Messages this handle has sent (producer) or received (consumer): its next slot.
    pos: u64,
}

impl SemRing {
    /// A ring of `size`-byte messages, both semaphores initialised, before the fork.
    fn create(size: usize) -> Result<Self, LabError> {
        let size = size.max(1);
        let slots = Slots::for_messages(size, size);
        let region = Rc::new(SharedRegion::new(slots.end())?);
        let free = u32::try_from(slots.count).map_err(|_| LabError::WrongSize {
            len: size,
            size: slots.count,
        })?;
        Ok(Self {
            items: Semaphore::init(Rc::clone(&region), ITEMS_OFFSET, 0)?,
            space: Semaphore::init(Rc::clone(&region), SPACE_OFFSET, free)?,
            region,
            slots,
            size,
            pos: 0,
        })
    }
}

impl Lane for SemRing {
    fn handle(&self) -> Result<Self, LabError> {
        Ok(Self {
            region: Rc::clone(&self.region),
            items: self.items.handle(),
            space: self.space.handle(),
            slots: self.slots,
            size: self.size,
            pos: 0,
        })
    }

    fn prefault(&self) {
        self.region.prefault();
    }

    #[inline]
    fn push(&mut self, msg: &[u8]) -> Result<(), LabError> {
        check_len(msg.len(), self.size)?;
        self.space.wait("waiting for a free posix-sem slot")?;
        // SAFETY: the wait on `space` gave this producer slot `pos` (the consumer has posted
        // `space` for it, after reading it); the consumer reads it only after the post below.
        unsafe { self.region.write_bytes(self.slots.at(self.pos), msg) };
        self.pos += 1;
        self.items.post()
    }

    #[inline]
    fn pop(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let size = self.size;
        let out = message_buf(buf, size)?;
        self.items.wait("waiting for a posix-sem message")?;
        // SAFETY: the wait on `items` means the producer filled slot `pos` and posted it; it
        // writes the slot again only after our post on `space` below.
        unsafe { self.region.read_bytes(self.slots.at(self.pos), out) };
        self.pos += 1;
        self.space.post()?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_semaphore_counts_its_posts_across_handles() {
        let region = Rc::new(SharedRegion::new(4096).expect("mmap"));
        let sem = Semaphore::init(region, 0, 1).expect("sem_init");
        sem.wait("first").expect("one to take");
        assert!(!sem.try_wait(), "its one unit is taken");
        sem.post().expect("post");
        sem.post().expect("post");
        assert!(sem.try_wait(), "two posts, two units");
        sem.handle()
            .wait("second")
            .expect("the post is seen through another handle");
        assert!(!sem.try_wait(), "zero again");
    }
}
