//! The control socket kept open for the life of a connection: how we learn that the peer
//! closed (a goodbye byte) or died (hang-up without one).

use std::os::unix::net::UnixStream;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvFlags, SendFlags};

use super::handshake::BYE;

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
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut fds, Some(&zero))? == 0 {
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
