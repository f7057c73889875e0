//! `spinlock-ring`, `mutex-ring`, `mutex-ring-polling`, `sem-ring`: a shared-memory queue
//! guarded by a lock.
//!
//! The queue of the Comparison's synchronisation-tax and contention tables: fixed slots of the
//! message size, and every push and pop — index update *and* copy — done while holding one
//! lock in the shared memory, the way a textbook lock-protected queue works. It measures what
//! the lock costs next to the lock-free `raw-ring`, which has the same slots without the lock.
//!
//! ```text
//! 0..128 : lock   a TTAS spinlock word, or a PTHREAD_PROCESS_SHARED pthread_mutex_t, or (for
//!                 a named semaphore, which lives in its own mapping) the word that says the
//!                 peer opened it by name
//! 128    : head   consumer's position (changed only under the lock)
//! 192    : tail   producers' position (changed only under the lock)
//! 256..  : slot[0] slot[1] ... slot[n-1]    n = a power of two, n * size ≈ RING_BYTES
//! ```
//!
//! How a side finds out that there is something to do is the contention knob:
//!
//! - [`Polling::Peek`] ("low contention", one lock per message): a side reads the other side's
//!   position *without* the lock (a hint), and takes the lock only when the hint says there is
//!   a message (consumer) or room (producer); under the lock it checks again.
//! - [`Polling::Locked`] ("high contention"): a side takes the lock for every poll, so a
//!   consumer waiting on an empty queue and a producer waiting on a full one hammer the lock
//!   the other side needs.
//!
//! Several producers may share one queue (the contention experiment): all of them update
//! `tail` under the lock. Positions are `u64` counts of messages; a slot is `pos & (n - 1)`.
//!
//! # Safety
//!
//! The slot copies are `unsafe` ([`SharedRegion::write_bytes`]/[`SharedRegion::read_bytes`]):
//! they happen only while this process holds the lock, so no other process touches the
//! queue's memory at the same time; the lock's Acquire/Release orders them with the previous
//! holder's.
#![allow(unsafe_code)]

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::lanes::{self, Lane};
use super::named_sem::NamedSemLock;
use super::pshared_mutex::ProcessSharedMutex;
use super::spinlock::SpinLock;
use super::{
    check_len, message_buf, spin_until, FanIn, FanInSides, Mechanism, Pair, Pattern, Slots,
};
use crate::error::LabError;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

const LOCK_OFFSET: usize = 0;
const HEAD_OFFSET: usize = ProcessSharedMutex::BYTES;
const TAIL_OFFSET: usize = HEAD_OFFSET + CACHE_LINE_BYTES;
const SLOTS_OFFSET: usize = TAIL_OFFSET + CACHE_LINE_BYTES;

/// Which lock guards the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A test-and-test-and-set spinlock word.
    Spin,
    /// A `PTHREAD_PROCESS_SHARED` pthread mutex.
    Mutex,
    /// A named POSIX semaphore (`sem_open`) of value 1.
    Semaphore,
}

/// How a side learns that the queue has a message (consumer) or room (producer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polling {
    /// Read the other side's position without the lock; lock once per message.
    Peek,
    /// Take the lock for every poll.
    Locked,
}

/// A lock-guarded shared-memory queue (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct LockedRing {
    name: &'static str,
    lock: LockKind,
    polling: Polling,
}

impl LockedRing {
    /// `spinlock-ring`: a TTAS spinlock, one lock per message.
    pub fn spinlock() -> Self {
        Self {
            name: "spinlock-ring",
            lock: LockKind::Spin,
            polling: Polling::Peek,
        }
    }

    /// `mutex-ring`: a process-shared mutex, one lock per message (low contention).
    pub fn mutex() -> Self {
        Self {
            name: "mutex-ring",
            lock: LockKind::Mutex,
            polling: Polling::Peek,
        }
    }

    /// `mutex-ring-polling`: a process-shared mutex taken for every poll (high contention).
    pub fn mutex_polling() -> Self {
        Self {
            name: "mutex-ring-polling",
            lock: LockKind::Mutex,
            polling: Polling::Locked,
        }
    }

    /// `sem-ring`: a named POSIX semaphore as the lock, one lock per message; one producer
    /// and one consumer (no fan-in, see `named_sem`).
    pub fn named_semaphore() -> Self {
        Self {
            name: "sem-ring",
            lock: LockKind::Semaphore,
            polling: Polling::Peek,
        }
    }

    /// The lock.
    pub fn lock_kind(&self) -> LockKind {
        self.lock
    }

    /// The polling discipline.
    pub fn polling(&self) -> Polling {
        self.polling
    }

    fn queue(&self, size: usize) -> Result<Queue, LabError> {
        let size = size.max(1);
        let slots = Slots::for_messages(size, size);
        let region = Rc::new(SharedRegion::new(slots.end())?);
        let lock = match self.lock {
            LockKind::Spin => Lock::Spin(SpinLock::new(Rc::clone(&region), LOCK_OFFSET)),
            LockKind::Mutex => {
                Lock::Mutex(ProcessSharedMutex::init(Rc::clone(&region), LOCK_OFFSET)?)
            }
            LockKind::Semaphore => {
                Lock::Semaphore(NamedSemLock::create(Rc::clone(&region), LOCK_OFFSET)?)
            }
        };
        Ok(Queue {
            region,
            lock,
            slots,
            size,
            polling: self.polling,
        })
    }
}

impl Mechanism for LockedRing {
    fn name(&self) -> &'static str {
        self.name
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        lanes::pair(self.name, pattern, || self.queue(size))
    }
}

impl FanIn for LockedRing {
    fn name(&self) -> &'static str {
        self.name
    }

    fn setup_fan_in(&self, producers: usize, size: usize) -> Result<FanInSides, LabError> {
        if self.lock == LockKind::Semaphore {
            return Err(LabError::Unsupported {
                mechanism: self.name,
                what: "several producers (each would have to open the name before it goes)",
            });
        }
        lanes::fan_in(self.name, producers, self.queue(size)?)
    }
}

enum Lock {
    Spin(SpinLock),
    Mutex(ProcessSharedMutex),
    Semaphore(NamedSemLock),
}

impl Lock {
    #[inline]
    fn lock(&self) -> Result<(), LabError> {
        match self {
            Lock::Spin(l) => l.lock(),
            Lock::Mutex(m) => m.lock(),
            Lock::Semaphore(s) => s.lock(),
        }
    }

    #[inline]
    fn unlock(&self) {
        match self {
            Lock::Spin(l) => l.unlock(),
            Lock::Mutex(m) => m.unlock(),
            Lock::Semaphore(s) => s.unlock(),
        }
    }

    fn handle(&self) -> Self {
        match self {
            Lock::Spin(l) => Lock::Spin(l.handle()),
            Lock::Mutex(m) => Lock::Mutex(m.handle()),
            Lock::Semaphore(s) => Lock::Semaphore(s.handle()),
        }
    }
}

/// One process's handle on a queue.
struct Queue {
    region: Rc<SharedRegion>,
    lock: Lock,
    slots: Slots<SLOTS_OFFSET>,
    size: usize,
    polling: Polling,
}

impl Queue {
    /// Relaxed loads and stores of the positions are enough: they change only under the lock,
    /// whose Acquire/Release orders them; a load outside the lock is a hint, checked again
    /// under it.
    fn position(&self, offset: usize) -> u64 {
        self.region.atomic_u64(offset).load(Ordering::Relaxed)
    }

    /// Runs `f` under the lock.
    #[inline]
    fn locked<T>(&self, f: impl FnOnce(&Self) -> T) -> Result<T, LabError> {
        self.lock.lock()?;
        let value = f(self);
        self.lock.unlock();
        Ok(value)
    }
}

impl Lane for Queue {
    fn handle(&self) -> Result<Self, LabError> {
        Ok(Self {
            region: Rc::clone(&self.region),
            lock: self.lock.handle(),
            slots: self.slots,
            size: self.size,
            polling: self.polling,
        })
    }

    /// This process's page faults on the slots, now rather than in the timed loop.
    fn prefault(&self) {
        self.region.prefault();
    }

    /// The named semaphore's handles open it by name (or wait for the peer to, and unlink it).
    fn start(&mut self) -> Result<(), LabError> {
        match &mut self.lock {
            Lock::Semaphore(s) => s.start(),
            Lock::Spin(_) | Lock::Mutex(_) => Ok(()),
        }
    }

    fn push(&mut self, msg: &[u8]) -> Result<(), LabError> {
        check_len(msg.len(), self.size)?;
        let slots = self.slots.count as u64;
        spin_until("waiting for room in a locked queue", || {
            if self.polling == Polling::Peek
                && self.position(TAIL_OFFSET) - self.position(HEAD_OFFSET) >= slots
            {
                return None;
            }
            Some(self.locked(|q| {
                let tail = q.position(TAIL_OFFSET);
                if tail - q.position(HEAD_OFFSET) >= slots {
                    return false;
                }
                // SAFETY: we hold the lock (see the module's Safety section), and slot `tail`
                // is free (`tail - head < slots`).
                unsafe { q.region.write_bytes(q.slots.at(tail), msg) };
                q.region
                    .atomic_u64(TAIL_OFFSET)
                    .store(tail + 1, Ordering::Relaxed);
                true
            }))
            .and_then(|r| r.map(|done| done.then_some(())).transpose())
        })?
    }

    fn pop(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let size = self.size;
        let out = message_buf(buf, size)?;
        spin_until("waiting for a message in a locked queue", || {
            if self.polling == Polling::Peek
                && self.position(TAIL_OFFSET) == self.position(HEAD_OFFSET)
            {
                return None;
            }
            Some(self.locked(|q| {
                let head = q.position(HEAD_OFFSET);
                if q.position(TAIL_OFFSET) == head {
                    return false;
                }
                // SAFETY: we hold the lock, and slot `head` holds a message (`head != tail`).
                unsafe { q.region.read_bytes(q.slots.at(head), out) };
                q.region
                    .atomic_u64(HEAD_OFFSET)
                    .store(head + 1, Ordering::Relaxed);
                true
            }))
            .and_then(|r| r.map(|done| done.then_some(size)).transpose())
        })?
    }
}
