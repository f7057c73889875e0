//! A named POSIX semaphore (`sem_open`) used as a lock: a **measured subject** of the lab.
//!
//! The IPC cheat sheet's "synchronization is your problem" names "Semaphores: POSIX sem_init
//! with pshared=1, or named sem_open"; the unnamed kind is the `posix-sem` ring's wake-up, the
//! named kind guards the sync-tax experiment's queue here: a binary semaphore (value 1),
//! `sem_wait` to lock, `sem_post` to unlock, in place of the spinlock or the mutex of the other
//! rows. Like them it is what the shmsock library never does (a holder that dies leaves it
//! taken; anyone who can open the name can take it), measured here and used nowhere else.
//!
//! The name is a kernel object that outlives the lab if nobody removes it, so:
//!
//! - it is unique to the process and the queue (`/shmsock-lab-sem-<pid>-<n>`), created with
//!   `O_EXCL` in setup, before the fork;
//! - after the fork the other process opens it by that name ([`NamedSemLock::start`], as an
//!   unrelated process would) and says so in a word of the queue's shared memory; the creator
//!   waits for that word and unlinks the name at once, so from then on nothing is left whatever
//!   happens to either process (the semaphore itself lives as long as someone has it open);
//! - if the creator gives up before that (its peer never opened it), dropping its last handle
//!   unlinks the name;
//! - a name left by a lab that was killed in the instant between creating and unlinking it is
//!   removed by the next lab's setup (names of processes that no longer exist, see
//!   [`sweep_stale`]).
//!
//! With several processes opening one name the creator would have to wait for each, so the
//! lock serves one producer and one consumer (no fan-in).
//!
//! # Safety
//!
//! `sem_open`, `sem_close` and `sem_unlink` are not in rustix, so this module calls libc. An
//! [`Opened`] holds the pointer `sem_open` returned until its drop closes it; every
//! [`Semaphore`] made from it holds the `Rc<Opened>`, so none outlives the mapping.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::CString;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::posix_sem::Semaphore;
use super::spin_until;
use crate::error::LabError;
use crate::shared::SharedRegion;

/// What every name this module creates starts with (after the `/`).
const PREFIX: &str = "shmsock-lab-sem-";
/// Where glibc and musl keep named semaphores, as `sem.<name>` files.
const SEM_DIR: &str = "/dev/shm";
/// The value of the word in shared memory once the peer has opened the name.
const OPENED: u64 = 1;

/// Distinguishes the semaphores made by one process.
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// A named semaphore's name, and who removes it: the process that created it, once.
struct Name {
    name: CString,
    creator: u32,
    unlinked: Cell<bool>,
}

impl Name {
    /// Removes the name (in the creating process only, once); the semaphore lives on for
    /// whoever has it open.
    fn unlink(&self) {
        if self.creator != std::process::id() || self.unlinked.replace(true) {
            return;
        }
        // SAFETY: `name` is a NUL-terminated string alive for the call.
        unsafe { libc::sem_unlink(self.name.as_ptr()) };
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// This process's mapping of an open named semaphore; closed on drop.
pub(crate) struct Opened {
    sem: NonNull<libc::sem_t>,
}

impl Opened {
    /// Opens `name` (creating it with value `value` if `create`).
    fn open(name: &CString, create: Option<u32>) -> Result<Self, LabError> {
        let sem = match create {
            // SAFETY: `name` is a NUL-terminated string alive for the call; with O_CREAT the
            // variadic arguments are the mode and the initial value, as unsigned ints.
            Some(value) => unsafe {
                libc::sem_open(
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL,
                    0o600 as libc::c_uint,
                    value as libc::c_uint,
                )
            },
            // SAFETY: `name` is a NUL-terminated string alive for the call; without O_CREAT
            // there are no variadic arguments.
            None => unsafe { libc::sem_open(name.as_ptr(), 0) },
        };
        if sem == libc::SEM_FAILED {
            return Err(LabError::Os {
                what: if create.is_some() {
                    "sem_open (creating a named semaphore)"
                } else {
                    "sem_open (opening the named semaphore by its name)"
                },
                source: std::io::Error::last_os_error(),
            });
        }
        let sem = NonNull::new(sem).ok_or(LabError::Os {
            what: "sem_open",
            source: std::io::Error::other("sem_open returned a null pointer"),
        })?;
        Ok(Self { sem })
    }

    /// A semaphore handle on this mapping.
    fn semaphore(self: &Rc<Self>) -> Semaphore<Opened> {
        // SAFETY: `sem` was returned by a successful `sem_open` and stays mapped until this
        // `Opened` is dropped, which the handle's `Rc` prevents.
        unsafe { Semaphore::from_raw(self.sem, Rc::clone(self)) }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: `sem` came from `sem_open` in this process (or was inherited with its
        // mapping across fork) and no handle on it is left (they hold this value's `Rc`).
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// One process's handle on a named binary semaphore used as a lock (see the module docs).
pub(crate) struct NamedSemLock {
    name: Rc<Name>,
    sem: Semaphore<Opened>,
    /// The queue's shared memory, and the offset of the word saying the peer opened the name.
    region: Rc<SharedRegion>,
    opened_offset: usize,
}

impl NamedSemLock {
    /// Creates a free lock under a new unique name, before the fork; the word at
    /// `opened_offset` of `region` (zero) is where the peer will say it opened the name.
    pub(crate) fn create(region: Rc<SharedRegion>, opened_offset: usize) -> Result<Self, LabError> {
        sweep_stale();
        let name = format!(
            "/{PREFIX}{}-{}",
            std::process::id(),
            NEXT_NAME.fetch_add(1, Ordering::Relaxed)
        );
        let name = CString::new(name).map_err(|_| LabError::Integrity {
            detail: "semaphore name with a NUL byte".into(),
        })?;
        let opened = Rc::new(Opened::open(&name, Some(1))?);
        let name = Rc::new(Name {
            name,
            creator: std::process::id(),
            unlinked: Cell::new(false),
        });
        Ok(Self {
            name,
            sem: opened.semaphore(),
            region,
            opened_offset,
        })
    }

    /// Another handle on the same lock.
    pub(crate) fn handle(&self) -> Self {
        Self {
            name: Rc::clone(&self.name),
            sem: self.sem.handle(),
            region: Rc::clone(&self.region),
            opened_offset: self.opened_offset,
        }
    }

    /// After the fork: the peer opens the semaphore by its name and says so; the creator waits
    /// for that and unlinks the name.
    pub(crate) fn start(&mut self) -> Result<(), LabError> {
        let word = self.region.atomic_u64(self.opened_offset);
        if self.name.creator == std::process::id() {
            spin_until("waiting for the peer to open the named semaphore", || {
                // Acquire pairs with the peer's Release store below.
                (word.load(Ordering::Acquire) == OPENED).then_some(())
            })?;
            self.name.unlink();
            return Ok(());
        }
        let opened = Rc::new(Opened::open(&self.name.name, None)?);
        self.sem = opened.semaphore();
        // Release pairs with the creator's Acquire load above.
        word.store(OPENED, Ordering::Release);
        Ok(())
    }

    /// Takes the lock; fails with [`LabError::Stalled`] if it stays taken for
    /// [`super::STALL_TIMEOUT`].
    #[inline]
    pub(crate) fn lock(&self) -> Result<(), LabError> {
        self.sem.wait("waiting for a named semaphore")
    }

    /// Releases the lock.
    #[inline]
    pub(crate) fn unlock(&self) {
        // `sem_post` fails only on an invalid semaphore or an overflow, neither possible on
        // a live binary semaphore posted once per wait; a lock's release has no error path.
        let _ = self.sem.post();
    }
}

/// Unlinks the names this module made in processes that no longer exist: what a lab killed
/// between creating a name and unlinking it left behind. Best effort: a directory it cannot
/// read or a name it cannot remove (another user's) is left alone.
pub(crate) fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir(SEM_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix("sem."))
            .and_then(|f| f.strip_prefix(PREFIX))
        else {
            continue;
        };
        let pid = rest
            .split('-')
            .next()
            .and_then(|p| p.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        let Some(pid) = pid else {
            continue;
        };
        if rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH) {
            continue;
        }
        if let Ok(name) = CString::new(format!("/{PREFIX}{rest}")) {
            // SAFETY: `name` is a NUL-terminated string alive for the call.
            unsafe { libc::sem_unlink(name.as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(name: &CString) -> bool {
        let file = name.to_str().expect("utf-8").trim_start_matches('/');
        std::path::Path::new(SEM_DIR)
            .join(format!("sem.{file}"))
            .exists()
    }

    #[test]
    fn a_lock_excludes_and_its_name_is_gone_when_its_creator_drops_it() {
        let region = Rc::new(SharedRegion::new(4096).expect("mmap"));
        let lock = NamedSemLock::create(region, 0).expect("sem_open");
        let name = lock.name.name.clone();
        assert!(exists(&name), "{name:?} exists while the lock is alive");
        lock.lock().expect("free");
        assert!(!lock.sem.try_wait(), "taken twice");
        lock.unlock();
        lock.handle().lock().expect("free again");
        lock.unlock();
        drop(lock);
        assert!(!exists(&name), "{name:?} was not unlinked");
    }

    #[test]
    fn names_of_dead_processes_are_swept_and_live_ones_kept() {
        // A pid that no running process has: the largest the kernel would hand out, plus one.
        let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        let dead = CString::new(format!("/{PREFIX}{}-0", max + 1)).expect("name");
        let live =
            CString::new(format!("/{PREFIX}{}-swept-test", std::process::id())).expect("name");
        let (dead_sem, live_sem) = (
            Opened::open(&dead, Some(0)).expect("create the dead one"),
            Opened::open(&live, Some(0)).expect("create the live one"),
        );
        sweep_stale();
        let (dead_left, live_left) = (exists(&dead), exists(&live));
        // SAFETY: NUL-terminated names alive for the calls (clean-up of whatever is left).
        unsafe {
            libc::sem_unlink(dead.as_ptr());
            libc::sem_unlink(live.as_ptr());
        }
        drop((dead_sem, live_sem));
        assert!(!dead_left, "a dead process's name was kept");
        assert!(live_left, "a live process's name was swept");
    }
}
