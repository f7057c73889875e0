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
//! segment is created, mapped or dropped, never on a data path.

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Device and inode of a memfd: one segment, whoever holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SegmentId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl SegmentId {
    /// The identity of the file behind `fd`.
    pub(crate) fn of(fd: BorrowedFd<'_>) -> rustix::io::Result<SegmentId> {
        let stat = rustix::fs::fstat(fd)?;
        Ok(SegmentId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }
}

#[derive(Default)]
struct Registry {
    /// Segments and pools this process created and has not dropped.
    owned: HashSet<SegmentId>,
    /// Peer segments a connection of this process uses as its peer's (exclusive ones).
    claimed: HashSet<SegmentId>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    // Nothing panics while holding the lock; a poisoned lock still holds valid sets.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    f(registry().get_or_insert_with(Registry::default))
}

/// An owned segment or pool's entry in the registry, removed when dropped.
#[derive(Debug)]
pub(crate) struct Owned(SegmentId);

impl Owned {
    /// Records that this process owns the memfd `fd` (just created).
    pub(crate) fn register(fd: BorrowedFd<'_>) -> rustix::io::Result<Owned> {
        let id = SegmentId::of(fd)?;
        with(|r| r.owned.insert(id));
        Ok(Owned(id))
    }

    /// The segment's identity.
    #[cfg(test)]
    pub(crate) fn id(&self) -> SegmentId {
        self.0
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        with(|r| r.owned.remove(&self.0));
    }
}

/// Whether this process owns the segment or pool `id`.
pub(crate) fn is_owned(id: SegmentId) -> bool {
    with(|r| r.owned.contains(&id))
}

/// A peer segment held by one connection of this process, released when dropped.
#[derive(Debug)]
pub(crate) struct Claim(SegmentId);

impl Claim {
    /// Claims `id` for one connection; `None` if another connection holds it.
    pub(crate) fn take(id: SegmentId) -> Option<Claim> {
        with(|r| r.claimed.insert(id)).then_some(Claim(id))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        with(|r| r.claimed.remove(&self.0));
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
