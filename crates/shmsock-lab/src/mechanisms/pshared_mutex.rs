//! A `PTHREAD_PROCESS_SHARED` mutex living in shared memory: a **measured subject** of the lab.
//!
//! This is exactly what the shmsock library forbids itself (DESIGN.md, principle 4: "no mutex
//! or lock ever lives in shared memory"): if a process dies while it holds the mutex, every
//! other process that needs it waits forever, and a peer that can write the mutex's memory can
//! wedge or corrupt it at will. The reference documents (Comparison) measure it as the usual way
//! to guard a shared-memory queue, so the lab measures it too, for the synchronisation-tax and
//! contention tables, and nowhere else.
//!
//! Two concessions keep the lab from hanging on it: [`ProcessSharedMutex::lock`] tries
//! `pthread_mutex_trylock` first (the same atomic fast path `pthread_mutex_lock` takes) and then
//! waits with `pthread_mutex_timedlock` in slices, giving up with [`LabError::Stalled`] after
//! [`STALL_TIMEOUT`]; and the forked children have a watchdog. The mutex is the default kind
//! (not robust, not error-checking), as in the Comparison's code.
//!
//! # Safety
//!
//! `pthread_mutex_*` are not in rustix, so this module calls libc. The mutex is initialised once,
//! in place, in a [`SharedRegion`] created before the fork, and never moved (the region's
//! address is fixed for its life); every call passes a pointer into that live region. The
//! region is kept alive by the `Rc` this value holds.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::posix_mq::realtime_after;
use super::STALL_TIMEOUT;
use crate::error::LabError;
use crate::shared::SharedRegion;

/// Longest single `pthread_mutex_timedlock`; the stall timeout is checked between them.
const LOCK_SLICE: Duration = Duration::from_secs(1);

/// A process-shared pthread mutex at a fixed offset of a shared region.
pub(crate) struct ProcessSharedMutex {
    region: Rc<SharedRegion>,
    offset: usize,
}

impl ProcessSharedMutex {
    /// Bytes reserved for the mutex in a region (two cache lines; glibc's is 40 on x86-64).
    pub(crate) const BYTES: usize = 128;

    /// Initialises a process-shared mutex at `offset` of `region`, before the fork.
    pub(crate) fn init(region: Rc<SharedRegion>, offset: usize) -> Result<Self, LabError> {
        const { assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= ProcessSharedMutex::BYTES) };
        assert!(
            offset.is_multiple_of(std::mem::align_of::<libc::pthread_mutex_t>()),
            "mutex offset {offset} is misaligned"
        );
        let mutex = Self { region, offset };
        let ptr = mutex.ptr();
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is writable storage for a `pthread_mutexattr_t`; init fills it.
        let rc = unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) };
        check(rc, "pthread_mutexattr_init")?;
        // SAFETY: `attr` was initialised just above.
        let rc = unsafe {
            libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
        };
        let init = check(rc, "pthread_mutexattr_setpshared").and_then(|()| {
            // SAFETY: `ptr` points at `BYTES` (>= the mutex's size) aligned bytes of the live
            // region, which no other process uses yet (we have not forked); `attr` is
            // initialised.
            let rc = unsafe { libc::pthread_mutex_init(ptr, attr.as_ptr()) };
            check(rc, "pthread_mutex_init")
        });
        // SAFETY: `attr` is initialised and not used after this.
        unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
        init.map(|()| mutex)
    }

    /// Another handle on the same mutex.
    pub(crate) fn handle(&self) -> Self {
        Self {
            region: Rc::clone(&self.region),
            offset: self.offset,
        }
    }

    fn ptr(&self) -> *mut libc::pthread_mutex_t {
        self.region
            .ptr_at(self.offset, Self::BYTES)
            .as_ptr()
            .cast::<libc::pthread_mutex_t>()
    }

    /// Locks; fails with [`LabError::Stalled`] if the mutex stays held for [`STALL_TIMEOUT`]
    /// (its holder died or hung).
    #[inline]
    pub(crate) fn lock(&self) -> Result<(), LabError> {
        let ptr = self.ptr();
        // SAFETY: `ptr` is the mutex initialised in `init`, in a region this value keeps alive.
        let rc = unsafe { libc::pthread_mutex_trylock(ptr) };
        if rc == 0 {
            return Ok(());
        }
        if rc != libc::EBUSY {
            return check(rc, "pthread_mutex_trylock");
        }
        let started = Instant::now();
        loop {
            let deadline = realtime_after(LOCK_SLICE);
            // SAFETY: as above; `deadline` is a valid timespec alive for the call.
            let rc = unsafe { libc::pthread_mutex_timedlock(ptr, &deadline) };
            match rc {
                0 => return Ok(()),
                libc::ETIMEDOUT | libc::EINTR => {}
                _ => return check(rc, "pthread_mutex_timedlock"),
            }
            if started.elapsed() > STALL_TIMEOUT {
                return Err(LabError::Stalled {
                    what: "waiting for a process-shared mutex",
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// Unlocks a mutex this process locked.
    #[inline]
    pub(crate) fn unlock(&self) {
        // SAFETY: `ptr` is the live, initialised mutex, and the caller holds it (every `unlock`
        // follows a successful `lock` of the same process).
        unsafe { libc::pthread_mutex_unlock(self.ptr()) };
    }
}

/// A pthread return code as a result.
fn check(rc: libc::c_int, what: &'static str) -> Result<(), LabError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(LabError::Os {
            what,
            source: std::io::Error::from_raw_os_error(rc),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_mutex_is_not_taken_twice_and_is_released() {
        let region = Rc::new(SharedRegion::new(4096).expect("mmap"));
        let mutex = ProcessSharedMutex::init(region, 0).expect("init");
        mutex.lock().expect("lock");
        // SAFETY: the mutex is initialised and alive; trylock on a held default mutex is EBUSY.
        let rc = unsafe { libc::pthread_mutex_trylock(mutex.ptr()) };
        assert_eq!(rc, libc::EBUSY);
        mutex.unlock();
        mutex.handle().lock().expect("free again");
        mutex.unlock();
    }
}
