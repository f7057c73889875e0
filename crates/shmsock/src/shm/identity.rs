//! Who a segment is: the device and inode of its memfd, the same in every process and
//! through every fd that names it, and this process's registry of the segments it owns and
//! of the peer segments its connections use.
//!
//! A peer proves nothing by handing us an fd: a same-uid process can reopen any memfd of
//! another process through `/proc/PID/fd/N`, or hand us back our own. The handshake
//! therefore refuses a peer segment (see `rendezvous::accept_peer_hello`) that
//! - is one we own (our own segment or pool, echoed back), unless the peer is this very
//!   process (a connection between two threads of one process is legitimate, and code in
//!   our own address space needs no fd to reach our memory);
//! - was not created by the peer (its header's pid, written before the seals, is not the
//!   pid `SO_PEERCRED` names);
//! - is already the segment of another connection of this process (a per-connection
//!   segment is [`Claim`]ed for the life of the connection; a publisher's segment, shared by
//!   all its subscribers, is not).
//!
//! The registry is process-wide (a `Mutex` around two sets); it is touched only when a
//! segment is created, mapped or dropped, never on a data path. A forked child starts with
//! an empty one (the parent's segments are not the child's), and never waits forever on a
//! lock that `fork` copied while another thread held it (see [`with`]).

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Device and inode of a memfd: one segment, whoever holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SegmentId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl SegmentId {
    /// The identity of the file behind `fd`.
    pub(crate) fn of(fd: BorrowedFd<'_>) -> rustix::io::Result<SegmentId> {
        rustix::fs::fstat(fd).map(|stat| SegmentId::of_stat(&stat))
    }

    /// The identity of the file `stat` describes.
    pub(crate) fn of_stat(stat: &rustix::fs::Stat) -> SegmentId {
        SegmentId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
}

struct Registry {
    /// The process whose entries these are (a forked child starts afresh).
    pid: u32,
    /// Segments and pools this process created and has not dropped.
    owned: HashSet<SegmentId>,
    /// Peer segments a connection of this process uses as its peer's (exclusive ones).
    claimed: HashSet<SegmentId>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
/// The pid of [`REGISTRY`]'s entries, readable without the lock.
static REGISTRY_PID: AtomicU32 = AtomicU32::new(0);

/// How long a call waits for a busy registry in a forked child before it concludes that the
/// lock was copied locked by `fork` (its holder, a thread of the parent, does not exist
/// here) and goes on without the registry.
const FORKED_LOCK_PATIENCE: Duration = Duration::from_millis(20);

/// Runs `f` on this process's registry. In a forked child whose copy of the lock was held by
/// another thread at the fork (a rare race: the lock is held for a set operation), nothing
/// would ever release it: after [`FORKED_LOCK_PATIENCE`] the call returns `unavailable`
/// instead (the pid checks of the handshake still hold; only the registry's are skipped).
fn with<R>(f: impl FnOnce(&mut Registry) -> R, unavailable: R) -> R {
    let started = Instant::now();
    loop {
        let mut guard: MutexGuard<'_, Option<Registry>> = match REGISTRY.try_lock() {
            Ok(g) => g,
            // Nothing panics while holding the lock; a poisoned lock still holds valid sets.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let inherited = REGISTRY_PID.load(Ordering::Relaxed);
                if inherited != 0
                    && inherited != std::process::id()
                    && started.elapsed() > FORKED_LOCK_PATIENCE
                {
                    tracing::warn!("segment registry locked across a fork; its checks skipped");
                    return unavailable;
                }
                std::thread::yield_now();
                continue;
            }
        };
        let me = std::process::id();
        if guard.as_ref().is_none_or(|r| r.pid != me) {
            // First use, or a forked child: the entries of the parent are not ours.
            *guard = Some(Registry {
                pid: me,
                owned: HashSet::new(),
                claimed: HashSet::new(),
            });
            REGISTRY_PID.store(me, Ordering::Relaxed);
        }
        return f(guard.as_mut().expect("set above"));
    }
}

/// An owned segment or pool's entry in the registry, removed when dropped.
#[derive(Debug)]
pub(crate) struct Owned(SegmentId);

impl Owned {
    /// Records that this process owns the memfd `fd` (just created).
    pub(crate) fn register(fd: BorrowedFd<'_>) -> rustix::io::Result<Owned> {
        let id = SegmentId::of(fd)?;
        with(|r| r.owned.insert(id), false);
        Ok(Owned(id))
    }

    /// The segment's identity.
    pub(crate) fn id(&self) -> SegmentId {
        self.0
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        with(|r| r.owned.remove(&self.0), false);
    }
}

/// Whether this process owns the segment or pool `id`.
pub(crate) fn is_owned(id: SegmentId) -> bool {
    with(|r| r.owned.contains(&id), false)
}

/// A peer segment held by one connection of this process, released when dropped.
#[derive(Debug)]
pub(crate) struct Claim(SegmentId);

impl Claim {
    /// Claims `id` for one connection; `None` if another connection holds it.
    pub(crate) fn take(id: SegmentId) -> Option<Claim> {
        with(|r| r.claimed.insert(id), true).then_some(Claim(id))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        with(|r| r.claimed.remove(&self.0), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_and_claimed_entries_live_as_long_as_their_guards() {
        let id = SegmentId {
            dev: u64::MAX,
            ino: 7,
        };
        let first = Claim::take(id).expect("free");
        assert!(Claim::take(id).is_none(), "one connection at a time");
        drop(first);
        assert!(Claim::take(id).is_some(), "released with its guard");

        let fd = rustix::fs::memfd_create("identity-test", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd");
        let owned = Owned::register(std::os::fd::AsFd::as_fd(&fd)).expect("fstat");
        assert!(is_owned(owned.id()));
        let id = owned.id();
        drop(owned);
        assert!(!is_owned(id));
    }
}
