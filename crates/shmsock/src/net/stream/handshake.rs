//! The ZMTP handshake of a new connection, as a state machine that never waits: greetings
//! both ways, then one READY command each way whose `Socket-Type` must pair with ours
//! (RFC 23's table: PAIR with PAIR, PUB with SUB/XSUB, SUB with PUB/XPUB). Everything that
//! goes wrong is [`Error::Handshake`].
//!
//! [`Handshake::advance`] does what the socket allows now and returns; a listener keeps
//! many handshakes under way and advances each when `poll` says its socket is ready, so a
//! silent, slow or garbage peer holds up nobody else. The deadline covers the whole
//! handshake (not each read): a peer that drips one byte at a time is cut off when it
//! passes. [`NetConn::handshake`] drives one handshake to the end for a connecting side.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::super::admission::Slot;
use super::super::inbound::Item;
use super::super::zmtp::{self, Mechanism, SocketType};
use super::NetConn;
use crate::error::{Error, Result};
use crate::sys::timespec;

/// Where a handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for the peer's greeting (ours is queued).
    Greeting,
    /// Waiting for the peer's READY (ours is queued).
    Ready,
    /// Finished: the connection carries messages.
    Done,
}

/// A connection whose ZMTP handshake is under way.
pub(crate) struct Handshake {
    conn: NetConn,
    step: Step,
    deadline: Instant,
    max_len: usize,
}

impl Handshake {
    /// Starts the handshake on a connected socket: our greeting is queued (written by the
    /// first [`advance`](Self::advance)). It must finish by `deadline`.
    pub(crate) fn start(
        endpoint: String,
        sock: OwnedFd,
        peer_pid: i32,
        max_len: usize,
        socket_type: SocketType,
        deadline: Instant,
        slot: Option<Slot>,
    ) -> Handshake {
        let mut conn = NetConn::new(endpoint, sock, peer_pid, socket_type, slot);
        conn.queue_raw(&zmtp::greeting(Mechanism::Null, false));
        Handshake {
            conn,
            step: Step::Greeting,
            deadline,
            max_len,
        }
    }

    /// The socket, to `poll`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.conn.sock.as_fd()
    }

    /// Whether bytes wait to be written (poll for writable too).
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.has_pending_tx()
    }

    /// When the whole handshake must be done.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The peer's pid (`unix://`; 0 for `tcp://`).
    pub(crate) fn peer_pid(&self) -> i32 {
        self.conn.peer_pid
    }

    /// The error for a handshake that ran out of time.
    pub(crate) fn timed_out(&self) -> Error {
        self.error("the peer did not complete the ZMTP handshake in time")
    }

    fn error(&self, reason: &str) -> Error {
        Error::Handshake {
            endpoint: self.conn.endpoint.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Does what the socket allows now: `Ok(true)` once the handshake is complete (take the
    /// connection with [`into_conn`](Self::into_conn)), `Ok(false)` when it must wait for
    /// the peer.
    pub(crate) fn advance(&mut self) -> Result<bool> {
        self.conn.flush_some().map_err(|e| self.io_error(e))?;
        loop {
            let progressed = match self.step {
                Step::Done => return Ok(true),
                Step::Greeting => self.on_greeting()?,
                Step::Ready => self.on_ready()?,
            };
            if progressed {
                continue;
            }
            match self.conn.rx.read_from(&self.conn.sock) {
                Ok(0) => return Err(self.error("the peer hung up during the ZMTP handshake")),
                Ok(_) => {}
                Err(Errno::AGAIN) => {
                    self.conn.flush_some().map_err(|e| self.io_error(e))?;
                    return Ok(false);
                }
                Err(Errno::CONNRESET) => {
                    return Err(self.error("the peer hung up during the ZMTP handshake"))
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("{}: recv during the ZMTP handshake", self.conn.endpoint),
                        e,
                    ))
                }
            }
        }
    }

    fn io_error(&self, e: Error) -> Error {
        if e.is_disconnect() {
            self.error("the peer hung up during the ZMTP handshake")
        } else {
            e
        }
    }

    /// Checks the peer's greeting if it is all there, and queues our READY.
    fn on_greeting(&mut self) -> Result<bool> {
        let Some(g) = self.conn.rx.take_raw(zmtp::GREETING_LEN) else {
            return Ok(false);
        };
        let peer = zmtp::check_greeting(g, Mechanism::Null, false).map_err(|r| self.error(&r))?;
        self.conn.peer_minor = peer.minor;
        let ready = zmtp::ready_body(self.conn.socket_type.name());
        self.conn.queue_frame(&ready, false, true);
        self.conn.flush_some().map_err(|e| self.io_error(e))?;
        self.step = Step::Ready;
        Ok(true)
    }

    /// Checks the peer's READY if it is all there.
    fn on_ready(&mut self) -> Result<bool> {
        let body = match self.conn.rx.next() {
            Err(what) => return Err(self.error(&what)),
            Ok(None) => return Ok(false),
            Ok(Some(Item::Message { .. })) => {
                return Err(self.error("the peer sent a message before READY"))
            }
            Ok(Some(Item::Command { body })) => body,
        };
        let socket_type = self.conn.socket_type;
        let bytes = &self.conn.rx.bytes()[body];
        let (name, data) = zmtp::split_command(bytes).map_err(|r| self.error(&r))?;
        if name == b"ERROR" {
            let reason = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
            return Err(self.error(&format!("the peer refused us: {reason}")));
        }
        if name != b"READY" {
            let name = String::from_utf8_lossy(name);
            return Err(self.error(&format!("expected READY, got command {name:?}")));
        }
        match zmtp::property(data, "Socket-Type").map_err(|r| self.error(&r))? {
            Some(t) if socket_type.accepts(t) => {}
            Some(t) => {
                let ours = match socket_type {
                    SocketType::Pair => "Conn",
                    SocketType::Pub => "Publisher",
                    SocketType::Sub => "Subscriber",
                };
                return Err(self.error(&format!(
                    "the peer is a ZeroMQ {} socket; {ours} speaks {} and only pairs with {}",
                    String::from_utf8_lossy(t),
                    socket_type.name(),
                    socket_type.peers().join(" or ")
                )));
            }
            None => return Err(self.error("the peer's READY has no Socket-Type")),
        }
        self.conn.max_len = self.max_len;
        self.conn.rx.set_max_len(self.max_len);
        self.step = Step::Done;
        Ok(true)
    }

    /// The connection, once [`advance`](Self::advance) said the handshake is complete.
    pub(crate) fn into_conn(self) -> NetConn {
        debug_assert_eq!(self.step, Step::Done);
        self.conn
    }
}

impl NetConn {
    /// Runs the ZMTP handshake (greeting, READY with our `Socket-Type`) on a connected
    /// socket, waiting for the peer for at most `timeout` in all; the peer must announce a
    /// type that pairs with ours.
    pub(crate) fn handshake(
        endpoint: String,
        sock: OwnedFd,
        peer_pid: i32,
        max_len: usize,
        timeout: Duration,
        socket_type: SocketType,
    ) -> Result<NetConn> {
        let deadline = Instant::now() + timeout;
        let mut hs = Handshake::start(
            endpoint,
            sock,
            peer_pid,
            max_len,
            socket_type,
            deadline,
            None,
        );
        loop {
            if hs.advance()? {
                return Ok(hs.into_conn());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(hs.timed_out());
            }
            let mut flags = PollFlags::IN;
            if hs.wants_write() {
                flags |= PollFlags::OUT;
            }
            let mut fds = [PollFd::from_borrowed_fd(hs.fd(), flags)];
            match rustix::event::poll(&mut fds, Some(&timespec(left))) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::io(format!("{}: poll", hs.conn.endpoint), e)),
            }
        }
    }
}
