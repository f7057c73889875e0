//! A doorbell: one eventfd a receiver sleeps on and any number of peers ring.
//!
//! A receiver that reads from several rings (an [`Inbox`](crate::Inbox)) cannot sleep on
//! each writer's futex word at once. Instead it creates one eventfd and passes it to every
//! writer with its hello; a writer rings it (an 8-byte `write`) only when the receiver
//! announced in its own segment that it sleeps — the same Dekker handshake as the futex
//! eventcount (see `wait`), with the eventfd's counter as the "sequence": a ring that
//! happens before the receiver's `poll` is not lost, it leaves the counter non-zero.
//!
//! A doorbell fd received from a peer is checked to be an eventfd (`/proc/self/fd` link)
//! and made non-blocking before we ever write to it, so a pipe or socket passed in its
//! place is refused and a full counter cannot block the writer. A same-uid peer can clear
//! `O_NONBLOCK` on the shared file description again and saturate the counter: a ring
//! therefore skips a counter that `poll` says is full. (A peer that refills it between that
//! `poll` and the `write` can still block the ring; the threat model in the README lists
//! what a same-uid peer can do.)

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::fs::OFlags;

/// One eventfd, ours (to sleep on) or a peer's (to ring).
#[derive(Debug)]
pub(crate) struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// A new doorbell of our own (close-on-exec, non-blocking).
    pub(crate) fn new() -> io::Result<Self> {
        let fd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Doorbell { fd })
    }

    /// Accepts a peer's doorbell: it must be an eventfd; it is made non-blocking.
    pub(crate) fn from_peer(fd: OwnedFd) -> Result<Self, String> {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| format!("cannot inspect the doorbell fd: {e}"))?;
        if link.as_os_str() != "anon_inode:[eventfd]" {
            return Err(format!(
                "the doorbell fd is not an eventfd (it is {})",
                link.display()
            ));
        }
        let flags = rustix::fs::fcntl_getfl(&fd)
            .map_err(|e| format!("cannot read the doorbell's flags: {e}"))?;
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)
            .map_err(|e| format!("cannot make the doorbell non-blocking: {e}"))?;
        Ok(Doorbell { fd })
    }

    /// The fd, to pass to a peer.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Rings: adds one to the counter. A saturated counter (only a hostile peer fills it)
    /// already means "wake up", so it is left alone: EAGAIN is fine, and the write is
    /// skipped when `poll` says it would block. The skip matters because `O_NONBLOCK` lives
    /// in the file description, which the peer shares and may clear again: a blocking write
    /// on a full counter would then wait until the peer reads it, i.e. forever. (A peer
    /// that refills the counter between our `poll` and our `write` can still block us
    /// there; see the threat model in the README.)
    #[inline]
    pub(crate) fn ring(&self) {
        let mut fds = [PollFd::new(&self.fd, PollFlags::OUT)];
        let now = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let writable = loop {
            match rustix::event::poll(&mut fds, Some(&now)) {
                Ok(_) => break fds[0].revents().contains(PollFlags::OUT),
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break true,
            }
        };
        if writable {
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }

    /// Sleeps until rung or `timeout`; returns whether it was rung. Does not reset it.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
    }

    /// Resets the counter (after a wake-up, before looking at the rings again).
    pub(crate) fn reset(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
    }
}

/// An async receiver registers its doorbell with the reactor (`tokio::io::unix::AsyncFd`).
#[cfg(feature = "tokio")]
impl From<Doorbell> for OwnedFd {
    fn from(bell: Doorbell) -> OwnedFd {
        bell.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_ring_before_the_wait_is_not_lost() {
        let bell = Doorbell::new().unwrap();
        assert!(!bell.wait(Duration::from_millis(1)));
        bell.ring();
        bell.ring();
        let t = Instant::now();
        assert!(bell.wait(Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(1));
        bell.reset();
        assert!(!bell.wait(Duration::ZERO));
    }

    #[test]
    fn a_peer_doorbell_must_be_an_eventfd() {
        let bell = Doorbell::new().unwrap();
        let dup = bell.fd().try_clone_to_owned().unwrap();
        let peer = Doorbell::from_peer(dup).unwrap();
        peer.ring();
        assert!(bell.wait(Duration::ZERO));

        let (r, _w) = rustix::pipe::pipe().unwrap();
        let err = Doorbell::from_peer(r).unwrap_err();
        assert!(err.contains("not an eventfd"), "{err}");
        let memfd = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(Doorbell::from_peer(memfd).is_err());
    }

    #[test]
    fn a_blocking_peer_doorbell_is_made_non_blocking() {
        let fd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        let peer = Doorbell::from_peer(fd).unwrap();
        assert!(rustix::fs::fcntl_getfl(&peer.fd)
            .unwrap()
            .contains(OFlags::NONBLOCK));
        // A saturated counter: a further ring must return at once instead of blocking.
        let _ = rustix::io::write(&peer.fd, &(u64::MAX - 1).to_ne_bytes());
        peer.ring();
    }
}
