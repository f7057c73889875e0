//! The control socket kept open for the life of a connection: how we learn that the peer
//! closed (a goodbye byte) or died (hang-up without one).

use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvFlags, SendFlags};

use super::hello::BYE;
use super::ring::Corruption;
use crate::error::{Error, Result};
use crate::sys::timespec;
use crate::vocabulary::Mode;

/// What a receiver does after finding nothing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Look again now (the peer just ended: drain what it published).
    Retry,
    /// Wait (as long as the call's mode allows).
    Wait,
}

/// How the peer ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerEnd {
    /// It sent BYE: clean close.
    Closed,
    /// Hang-up without BYE: it died.
    Gone,
}

/// What a non-blocking look at the control socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Nothing: the peer is there.
    Alive,
    /// The peer ended.
    Ended(PeerEnd),
    /// The peer sent bytes the protocol does not allow.
    Garbage,
}

/// Looks at the control socket without blocking (one `poll`, and a `recv` if readable).
pub(crate) fn check(sock: &UnixStream) -> rustix::io::Result<Control> {
    let mut fds = [PollFd::new(sock, PollFlags::IN | PollFlags::RDHUP)];
    if rustix::event::poll(&mut fds, Some(&timespec(Duration::ZERO)))? == 0 {
        return Ok(Control::Alive);
    }
    let mut buf = [0u8; 16];
    let mut said_bye = false;
    loop {
        match rustix::net::recv(sock, &mut buf, RecvFlags::DONTWAIT) {
            Ok((0, _)) if said_bye => return Ok(Control::Ended(PeerEnd::Closed)),
            Ok((0, _)) => return Ok(Control::Ended(PeerEnd::Gone)),
            Ok((n, _)) if buf[..n].iter().all(|&b| b == BYE) => said_bye = true,
            Ok(_) => return Ok(Control::Garbage),
            Err(rustix::io::Errno::AGAIN) if said_bye => {
                return Ok(Control::Ended(PeerEnd::Closed))
            }
            Err(rustix::io::Errno::AGAIN) => return Ok(Control::Alive),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Ok(Control::Ended(PeerEnd::Gone)),
        }
    }
}

/// Says goodbye (best effort, never blocks, never raises SIGPIPE).
pub(crate) fn say_bye(sock: &UnixStream) {
    let _ = rustix::net::send(sock, &[BYE], SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
}

/// One side's view of a connection's life: the control socket, how the peer ended, whether
/// its memory turned out corrupt, whether we closed. Shared by `Conn` and `Subscriber`.
pub(crate) struct Link {
    pub(crate) endpoint: String,
    pub(crate) peer_pid: i32,
    sock: UnixStream,
    /// How the peer ended, once known (what it published before is still delivered).
    pub(crate) ended: Option<PeerEnd>,
    corrupt: Option<String>,
    closed: bool,
}

impl Link {
    pub(crate) fn new(endpoint: String, peer_pid: i32, sock: UnixStream) -> Self {
        Link {
            endpoint,
            peer_pid,
            sock,
            ended: None,
            corrupt: None,
            closed: false,
        }
    }

    /// The error that reports how the peer ended.
    pub(crate) fn end_error(&self, end: PeerEnd) -> Error {
        let (endpoint, pid) = (self.endpoint.clone(), self.peer_pid);
        match end {
            PeerEnd::Closed => Error::PeerClosed { endpoint, pid },
            PeerEnd::Gone => Error::PeerGone { endpoint, pid },
        }
    }

    /// Records corruption: the connection is unusable from now on.
    #[cold]
    pub(crate) fn poison(&mut self, c: Corruption) -> Error {
        tracing::warn!(endpoint = %self.endpoint, peer_pid = self.peer_pid, what = %c, "peer shared memory is corrupt; connection closed");
        self.corrupt = Some(c.0);
        self.usable().expect_err("just poisoned")
    }

    /// Neither closed nor corrupt: what [`Link::usable`] checks, as one test for the fast
    /// paths (their errors are built on the slow path).
    #[inline]
    pub(crate) fn is_usable(&self) -> bool {
        !self.closed && self.corrupt.is_none()
    }

    /// `Err` once we closed or found the peer's memory corrupt.
    pub(crate) fn usable(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        match &self.corrupt {
            Some(what) => Err(Error::Corrupt {
                endpoint: self.endpoint.clone(),
                pid: self.peer_pid,
                what: what.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The control socket, for a reactor to watch (readable: the peer said goodbye or hung
    /// up; then call [`Link::poll_peer`]).
    #[cfg(feature = "tokio")]
    pub(crate) fn control_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.sock)
    }

    /// Whether the peer has said nothing on the control socket yet: no goodbye, no hang-up
    /// (a `poll`, nothing read: [`Link::poll_peer`] then tells which).
    pub(crate) fn peer_silent(&self) -> bool {
        let mut fds = [PollFd::new(&self.sock, PollFlags::IN | PollFlags::RDHUP)];
        matches!(
            rustix::event::poll(&mut fds, Some(&timespec(Duration::ZERO))),
            Ok(0)
        )
    }

    /// Checks the socket for the peer's goodbye or hang-up, without blocking.
    pub(crate) fn poll_peer(&mut self) -> Result<()> {
        if self.ended.is_some() {
            return Ok(());
        }
        match check(&self.sock)
            .map_err(|e| Error::io(format!("{}: polling the control socket", self.endpoint), e))?
        {
            Control::Alive => Ok(()),
            Control::Ended(end) => {
                tracing::info!(endpoint = %self.endpoint, peer_pid = self.peer_pid, ?end, "peer ended");
                self.ended = Some(end);
                Ok(())
            }
            Control::Garbage => {
                Err(self.poison(Corruption("unexpected bytes on the control socket".into())))
            }
        }
    }

    /// The shared step of every receive loop after an empty look at the ring: report the
    /// end once the peer's messages are drained, answer `try_*` without waiting, or say to
    /// wait.
    pub(crate) fn nothing_to_read(&mut self, mode: Mode) -> Result<Idle> {
        if let Some(end) = self.ended {
            return Err(self.end_error(end));
        }
        match mode {
            Mode::Try => {
                self.poll_peer()?;
                if self.ended.is_some() {
                    return Ok(Idle::Retry);
                }
                Err(Error::WouldBlock)
            }
            Mode::Until(_) | Mode::Block => Ok(Idle::Wait),
        }
    }

    /// Marks us closed and says goodbye (unless the peer is gone). False if already closed.
    pub(crate) fn close(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        if self.ended.is_none() {
            say_bye(&self.sock);
        }
        true
    }
}
