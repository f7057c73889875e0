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
//! A ringing end received from a peer is checked to be a Unix datagram socket made by that
//! peer itself (`SO_PEERCRED` of a socket pair names the process that created it), so a
//! pipe, an eventfd, a stream socket, or a datagram socket connected to some other service
//! (say `/dev/log`, which our rings would then write to) is refused at the handshake.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// Most datagrams one drain reads: rings are one byte each and a peer rings only while we
/// announce a sleep, so a few are queued at most; a peer that floods its end cannot keep
/// us draining (what is left keeps the bell readable, so the next `poll` returns at once;
/// an async waiter, which is edge-triggered, gets a new edge from the next ring, for which
/// the drain made room).
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

    /// The end we sleep on (see [`wait_any`](Doorbell::wait_any)).
    pub(crate) fn sleep_end(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    /// Sleeps until rung or `timeout`; returns whether it was rung. Does not reset it.
    #[cfg(test)]
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(&self.rx, PollFlags::IN)];
        poll(&mut fds, timeout) > 0
    }

    /// Sleeps until one of the doorbells whose sleeping ends are `ends` is rung or
    /// `timeout` passed, then resets the ones that were rung. Returns whether one was. A
    /// ring after the reset is not lost: it leaves its bell readable for the next wait.
    pub(crate) fn wait_any<'a>(
        ends: impl IntoIterator<Item = BorrowedFd<'a>>,
        timeout: Duration,
    ) -> bool {
        let mut fds: Vec<PollFd<'_>> = ends
            .into_iter()
            .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
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

/// `poll(2)` on `fds` for at most `timeout`: the number of ready fds. A signal ends the wait
/// early (0: the callers look at their rings and wait again, so a stream of signals cannot
/// stretch a wait past its deadline). Any other error (out of memory) sleeps out the
/// timeout, capped at 1 ms, rather than letting the caller spin.
fn poll(fds: &mut [PollFd<'_>], timeout: Duration) -> usize {
    match rustix::event::poll(fds, Some(&crate::sys::timespec(timeout))) {
        Ok(n) => n,
        Err(rustix::io::Errno::INTR) => 0,
        Err(_) => {
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            0
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
    /// Accepts the ringing end of the peer whose process id is `peer_pid` (from the
    /// rendezvous socket's `SO_PEERCRED`): it must be a Unix datagram socket of a pair that
    /// process created.
    pub(crate) fn from_peer(fd: OwnedFd, peer_pid: i32) -> Result<Self, String> {
        let stat =
            rustix::fs::fstat(&fd).map_err(|e| format!("cannot inspect the doorbell: {e}"))?;
        let what = match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::Socket => {
                let domain = rustix::net::sockopt::socket_domain(&fd)
                    .map_err(|e| format!("cannot read the doorbell's socket domain: {e}"))?;
                let kind = rustix::net::sockopt::socket_type(&fd)
                    .map_err(|e| format!("cannot read the doorbell's socket type: {e}"))?;
                if domain == AddressFamily::UNIX && kind == SocketType::DGRAM {
                    return match rustix::net::sockopt::socket_peercred(&fd) {
                        Ok(cred) if cred.pid.as_raw_nonzero().get() == peer_pid => {
                            Ok(Ringer { fd })
                        }
                        Ok(cred) => Err(format!(
                            "the doorbell is a Unix datagram socket made by process {}, \
                             not by the peer (process {peer_pid})",
                            cred.pid.as_raw_nonzero()
                        )),
                        // A datagram socket `connect`ed elsewhere carries no credentials.
                        Err(_) => Err("the doorbell is a Unix datagram socket that is not \
                                       one end of a socket pair made by the peer"
                            .to_owned()),
                    };
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

/// The end we sleep on, once the ringing end was passed to the peer (our copy of it is
/// closed): an `Inbox` keeps one per writer, an async receiver registers it with the
/// reactor (`tokio::io::unix::AsyncFd`) and empties it with [`drain`].
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

    fn my_pid() -> i32 {
        rustix::process::getpid().as_raw_nonzero().get()
    }

    fn peer_end(bell: &Doorbell) -> Ringer {
        Ringer::from_peer(bell.ring_end().try_clone_to_owned().unwrap(), my_pid()).unwrap()
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
        let ends = || bells.iter().map(Doorbell::sleep_end);
        assert!(!Doorbell::wait_any(ends(), Duration::from_millis(1)));
        peer_end(&bells[2]).ring();
        assert!(Doorbell::wait_any(ends(), Duration::from_secs(5)));
        assert!(!Doorbell::wait_any(ends(), Duration::ZERO), "reset");
        // Rings while nobody waits stay pending, however many.
        for _ in 0..1000 {
            bells[0].ring();
        }
        assert!(Doorbell::wait_any(ends(), Duration::ZERO));
        let mut rounds = 1;
        while Doorbell::wait_any(ends(), Duration::ZERO) {
            rounds += 1;
            assert!(rounds < 100, "a drain never ends");
        }
    }

    #[test]
    fn a_peer_doorbell_must_be_a_unix_datagram_socket() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let err = Ringer::from_peer(r, my_pid()).unwrap_err();
        assert!(err.contains("not a Unix datagram socket"), "{err}");
        let memfd = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(Ringer::from_peer(memfd, my_pid()).is_err());
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        assert!(Ringer::from_peer(efd, my_pid()).is_err());
        let (s, _t) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let err = Ringer::from_peer(s, my_pid()).unwrap_err();
        assert!(err.contains("a Unix stream socket"), "{err}");
        // A pair made by another process than the peer.
        let bell = Doorbell::new().unwrap();
        let theirs = bell.ring_end().try_clone_to_owned().unwrap();
        let err = Ringer::from_peer(theirs, my_pid() + 1).unwrap_err();
        assert!(err.contains("not by the peer"), "{err}");
        // A datagram socket connected to some other service.
        let dir = std::env::temp_dir().join(format!("shmsock-bell-{}", my_pid()));
        std::fs::create_dir_all(&dir).unwrap();
        let service = std::os::unix::net::UnixDatagram::bind(dir.join("log")).unwrap();
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.connect(dir.join("log")).unwrap();
        let err = Ringer::from_peer(client.into(), my_pid()).unwrap_err();
        drop(service);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("not one end of a socket pair"), "{err}");
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
        let ringer = Ringer::from_peer(tx, my_pid()).unwrap();
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
