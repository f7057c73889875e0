//! A doorbell: a Unix datagram socket pair; a receiver sleeps on one end, its peer rings
//! the other.
//!
//! A receiver that cannot sleep on the peer's futex word (an [`Inbox`](crate::Inbox), which
//! reads from many rings, or an async side, which sleeps in the reactor) creates a doorbell
//! and passes its ringing end to the peer with its hello; the peer rings it (sends one byte)
//! only when the receiver announced in its own segment that it sleeps — the same Dekker
//! handshake as the futex eventcount (see `wait`), with the socket's receive queue as the
//! "sequence": a ring that happens before the receiver's `poll` is not lost, it leaves a
//! datagram queued.
//!
//! Why a datagram socket and not an eventfd: the ringing end is shared with the peer that
//! passed it (one open file description), so any `O_NONBLOCK` we set on it, the peer can
//! clear again. A socket is written with `send(MSG_DONTWAIT)`, non-blocking per call
//! whatever the description's flags say, so a hostile doorbell owner can never make a ring
//! block; a queue it never reads only makes the ring fail with `EAGAIN`, which already means
//! "a wake-up is pending". Each peer gets a pair of its own (an `Inbox` polls one per
//! writer), so no peer can steal, redirect or shut down another's rings, and the pair has
//! no name: nothing outside the two processes can reach it.
//!
//! A ringing end received from a peer is checked to be a Unix datagram socket, so a pipe,
//! an eventfd or a stream socket passed in its place is refused at the handshake.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// Most datagrams one drain reads: rings are one byte each and a peer rings only while we
/// announce a sleep, so a few are queued at most; a peer that floods its end cannot keep
/// us draining (what is left keeps the bell readable: the next wait returns at once).
const DRAIN_MAX: usize = 256;

/// Our doorbell: the end we sleep on, and the ringing end we pass to the one peer that
/// rings it (and may ring ourselves, e.g. an inbox's accept thread).
#[derive(Debug)]
pub(crate) struct Doorbell {
    rx: OwnedFd,
    tx: Ringer,
}

/// A doorbell's ringing end: a peer's (passed in its hello), or our own.
#[derive(Debug)]
pub(crate) struct Ringer {
    fd: OwnedFd,
}

impl Doorbell {
    /// A new doorbell (both ends close-on-exec and non-blocking).
    pub(crate) fn new() -> io::Result<Self> {
        let (rx, tx) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        Ok(Doorbell {
            rx,
            tx: Ringer { fd: tx },
        })
    }

    /// The ringing end, to pass to the peer.
    pub(crate) fn ring_end(&self) -> BorrowedFd<'_> {
        self.tx.fd.as_fd()
    }

    /// Another handle on the ringing end, for a thread of ours that rings it.
    pub(crate) fn ringer(&self) -> io::Result<Ringer> {
        Ok(Ringer {
            fd: self.tx.fd.try_clone()?,
        })
    }

    /// Rings our own doorbell.
    #[cfg(test)]
    pub(crate) fn ring(&self) {
        self.tx.ring();
    }

    /// Sleeps until rung or `timeout`; returns whether it was rung. Does not reset it.
    #[cfg(test)]
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(&self.rx, PollFlags::IN)];
        poll(&mut fds, timeout) > 0
    }

    /// Sleeps until one of `bells` is rung or `timeout` passed, then resets the ones that
    /// were rung. Returns whether one was. A ring after the reset is not lost: it leaves
    /// its bell readable for the next wait.
    pub(crate) fn wait_any<'a>(
        bells: impl IntoIterator<Item = &'a Doorbell>,
        timeout: Duration,
    ) -> bool {
        let mut fds: Vec<PollFd<'_>> = bells
            .into_iter()
            .map(|b| PollFd::new(&b.rx, PollFlags::IN))
            .collect();
        if poll(&mut fds, timeout) == 0 {
            return false;
        }
        for fd in &fds {
            if !fd.revents().is_empty() {
                drain(fd.as_fd());
            }
        }
        true
    }

    /// Resets the doorbell (after a wake-up, before looking at the rings again).
    #[cfg(test)]
    pub(crate) fn reset(&self) {
        drain(self.rx.as_fd());
    }
}

/// `poll(2)` on `fds` for at most `timeout`, retried on `EINTR`; the number of ready fds (0
/// on a timeout or an error).
fn poll(fds: &mut [PollFd<'_>], timeout: Duration) -> usize {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    loop {
        match rustix::event::poll(fds, Some(&ts)) {
            Ok(n) => return n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return 0,
        }
    }
}

/// Empties the end of a doorbell we sleep on (reads at most [`DRAIN_MAX`] rings).
pub(crate) fn drain(rx: BorrowedFd<'_>) {
    let mut byte = [0u8; 1];
    for _ in 0..DRAIN_MAX {
        match rustix::net::recv(rx, &mut byte, RecvFlags::DONTWAIT) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

impl Ringer {
    /// Accepts a peer's ringing end: it must be a Unix datagram socket.
    pub(crate) fn from_peer(fd: OwnedFd) -> Result<Self, String> {
        let stat =
            rustix::fs::fstat(&fd).map_err(|e| format!("cannot inspect the doorbell: {e}"))?;
        let what = match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::Socket => {
                let domain = rustix::net::sockopt::socket_domain(&fd)
                    .map_err(|e| format!("cannot read the doorbell's socket domain: {e}"))?;
                let kind = rustix::net::sockopt::socket_type(&fd)
                    .map_err(|e| format!("cannot read the doorbell's socket type: {e}"))?;
                if domain == AddressFamily::UNIX && kind == SocketType::DGRAM {
                    return Ok(Ringer { fd });
                }
                let domain = match domain {
                    AddressFamily::UNIX => "Unix".to_owned(),
                    AddressFamily::INET => "IPv4".to_owned(),
                    AddressFamily::INET6 => "IPv6".to_owned(),
                    other => format!("family {}", other.as_raw()),
                };
                let kind = match kind {
                    SocketType::STREAM => "stream".to_owned(),
                    SocketType::DGRAM => "datagram".to_owned(),
                    SocketType::SEQPACKET => "seqpacket".to_owned(),
                    other => format!("type {}", other.as_raw()),
                };
                format!("a {domain} {kind} socket")
            }
            other => format!("a {}", format!("{other:?}").to_lowercase()),
        };
        Err(format!(
            "the doorbell is not a Unix datagram socket (it is {what})"
        ))
    }

    /// Rings: sends one byte, never waiting. A full queue (`EAGAIN`: the owner has rings it
    /// did not read yet) already means "wake up"; a closed owner (`ECONNREFUSED`, `EPIPE`)
    /// is found by its control socket, not here. `MSG_DONTWAIT` makes this call
    /// non-blocking whatever flags the owner sets on the shared description, and
    /// `MSG_NOSIGNAL` spares us a `SIGPIPE`.
    #[inline]
    pub(crate) fn ring(&self) {
        let _ = rustix::net::send(&self.fd, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
    }
}

/// An async receiver registers the end it sleeps on with the reactor
/// (`tokio::io::unix::AsyncFd`) and empties it with [`drain`]. Our copy of the ringing end
/// is closed: the peer holds its own.
#[cfg(feature = "tokio")]
impl From<Doorbell> for OwnedFd {
    fn from(bell: Doorbell) -> OwnedFd {
        bell.rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::OFlags;
    use std::time::Instant;

    fn peer_end(bell: &Doorbell) -> Ringer {
        Ringer::from_peer(bell.ring_end().try_clone_to_owned().unwrap()).unwrap()
    }

    #[test]
    fn a_ring_before_the_wait_is_not_lost() {
        let bell = Doorbell::new().unwrap();
        assert!(!bell.wait(Duration::from_millis(1)));
        bell.ring();
        peer_end(&bell).ring();
        let t = Instant::now();
        assert!(bell.wait(Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(1));
        bell.reset();
        assert!(!bell.wait(Duration::ZERO));
    }

    #[test]
    fn wait_any_wakes_on_any_bell_and_resets_only_what_it_read() {
        let bells: Vec<Doorbell> = (0..3).map(|_| Doorbell::new().unwrap()).collect();
        assert!(!Doorbell::wait_any(&bells, Duration::from_millis(1)));
        peer_end(&bells[2]).ring();
        assert!(Doorbell::wait_any(&bells, Duration::from_secs(5)));
        assert!(!Doorbell::wait_any(&bells, Duration::ZERO), "reset");
        // Rings while nobody waits stay pending, however many.
        for _ in 0..1000 {
            bells[0].ring();
        }
        assert!(Doorbell::wait_any(&bells, Duration::ZERO));
        let mut rounds = 1;
        while Doorbell::wait_any(&bells, Duration::ZERO) {
            rounds += 1;
            assert!(rounds < 100, "a drain never ends");
        }
    }

    #[test]
    fn a_peer_doorbell_must_be_a_unix_datagram_socket() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let err = Ringer::from_peer(r).unwrap_err();
        assert!(err.contains("not a Unix datagram socket"), "{err}");
        let memfd = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(Ringer::from_peer(memfd).is_err());
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        assert!(Ringer::from_peer(efd).is_err());
        let (s, _t) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let err = Ringer::from_peer(s).unwrap_err();
        assert!(err.contains("a Unix stream socket"), "{err}");
    }

    #[test]
    fn a_ring_never_blocks_on_a_blocking_end_whose_queue_is_full() {
        // The owner hands us a blocking end and never reads: rings fill the queue, then
        // fail with EAGAIN instead of waiting.
        let (rx, tx) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let ringer = Ringer::from_peer(tx).unwrap();
        assert!(!rustix::fs::fcntl_getfl(&ringer.fd)
            .unwrap()
            .contains(OFlags::NONBLOCK));
        let t = Instant::now();
        for _ in 0..100_000 {
            ringer.ring();
        }
        assert!(t.elapsed() < Duration::from_secs(30));
        let full = rustix::net::send(&ringer.fd, &[1], SendFlags::DONTWAIT);
        assert_eq!(full, Err(rustix::io::Errno::AGAIN), "the queue is full");
        // A closed owner: rings fail quietly, no SIGPIPE.
        drop(rx);
        ringer.ring();
    }
}
