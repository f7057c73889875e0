//! [`NetConn`]: one ZMTP connection over a stream socket (TCP or Unix), as a PAIR, PUB or
//! SUB socket.
//!
//! The socket stays in blocking mode, but every read and write passes `MSG_DONTWAIT` and
//! waits in `poll(2)` when the kernel has nothing to give, so the same code serves `try_*`
//! (no wait), timeouts (wait until a deadline) and blocking calls (wait forever). Received
//! bytes collect in `rx` until a whole message is there; a message is delivered (copied out)
//! only when the caller's buffer is large enough, so `BufferTooSmall` keeps it. When a
//! `try_send` or `send_timeout` could write only part of a frame, the rest waits in
//! `tx_pending` and goes out before anything else (the message counts as sent, as with
//! libzmq); blocking calls, `recv`s included, keep flushing it, so two peers never wait on
//! each other's unsent bytes.
//!
//! As a PUB, the connection keeps the SUBSCRIBE/CANCEL commands it receives in a log that
//! the publisher drains ([`NetConn::take_subscriptions`]); as a SUB it sends them with
//! [`NetConn::queue_subscription`], which never waits (they join `tx_pending`).

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

use super::zmtp::{self, Scan, SocketType, Subscription};
use crate::error::{Error, Result};
use crate::sys::timespec;
use crate::vocabulary::Mode;

mod handshake;

/// How long `close`/`Drop` keep trying to flush bytes a `try_send` left pending.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Size of the receive buffer, and of each read while no big message is expected.
const RX_CHUNK_BYTES: usize = 64 * 1024;
/// A receive buffer grown past this for a big message shrinks back once empty.
const RX_KEEP_MAX_BYTES: usize = 4 << 20;

/// Why the connection cannot carry messages any more.
#[derive(Debug, Clone)]
enum Ended {
    /// EOF at a message boundary.
    PeerClosed,
    /// EOF inside a message, or a reset.
    PeerGone,
    /// The peer sent something that is not ZMTP.
    Protocol(String),
    /// We closed it.
    Closed,
}

/// A ZMTP connection (PAIR, PUB or SUB).
pub(crate) struct NetConn {
    endpoint: String,
    sock: OwnedFd,
    peer_pid: i32,
    /// The ZMTP minor version the peer announced (0 or 1).
    peer_minor: u8,
    socket_type: SocketType,
    max_len: usize,
    rx: Vec<u8>,
    rx_head: usize,
    rx_tail: usize,
    /// Bytes that must go out before anything else: `tx_pending[tx_head..]`.
    tx_pending: Vec<u8>,
    tx_head: usize,
    /// SUBSCRIBE/CANCEL commands received (PUB only), oldest first.
    subscriptions: Vec<Subscription>,
    ended: Option<Ended>,
}

fn deadline_error(mode: Mode) -> Error {
    match mode {
        Mode::Try => Error::WouldBlock,
        _ => Error::TimedOut,
    }
}

impl NetConn {
    fn new(
        endpoint: String,
        sock: OwnedFd,
        peer_pid: i32,
        max_len: usize,
        socket_type: SocketType,
    ) -> NetConn {
        NetConn {
            endpoint,
            sock,
            peer_pid,
            peer_minor: 0,
            socket_type,
            max_len,
            rx: vec![0; RX_CHUNK_BYTES],
            rx_head: 0,
            rx_tail: 0,
            tx_pending: Vec::new(),
            tx_head: 0,
            subscriptions: Vec::new(),
            ended: None,
        }
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn peer_pid(&self) -> i32 {
        self.peer_pid
    }

    pub(crate) fn max_message_len(&self) -> usize {
        self.max_len
    }

    /// The socket, for `poll(2)` by a thread serving many connections.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// The connection has ended (peer closed or gone, garbage, or closed by us).
    pub(crate) fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    fn tx_pending(&self) -> &[u8] {
        &self.tx_pending[self.tx_head..]
    }

    /// Bytes are waiting for room in the socket buffer.
    pub(crate) fn has_pending_tx(&self) -> bool {
        self.tx_head < self.tx_pending.len()
    }

    /// Writes as much of what is pending as the kernel takes now, without waiting.
    pub(crate) fn flush_pending(&mut self) -> Result<()> {
        self.flush_some()
    }

    /// The SUBSCRIBE/CANCEL commands received since the last call, oldest first (as a PUB).
    pub(crate) fn take_subscriptions(&mut self) -> std::vec::Drain<'_, Subscription> {
        self.subscriptions.drain(..)
    }

    /// Queues a subscription change for the peer (as a SUB): a ZMTP 3.1 command, or for a
    /// ZMTP 3.0 peer a message starting with 1 or 0. Never waits: it is written now if the
    /// socket has room, else by the next call that writes or receives.
    pub(crate) fn queue_subscription(&mut self, subscribe: bool, prefix: &[u8]) -> Result<()> {
        if let Some(ended) = &self.ended {
            return Err(self.ended_error(ended));
        }
        let (body, command) = if self.peer_minor >= 1 {
            (zmtp::subscription_command(subscribe, prefix), true)
        } else {
            (zmtp::subscription_message(subscribe, prefix), false)
        };
        let mut h = [0u8; zmtp::HEADER_MAX_LEN];
        let n = zmtp::encode_header(body.len(), false, command, &mut h);
        self.tx_pending.extend_from_slice(&h[..n]);
        self.tx_pending.extend_from_slice(&body);
        self.flush_some()
    }

    fn ended_error(&self, ended: &Ended) -> Error {
        let (endpoint, pid) = (self.endpoint.clone(), self.peer_pid);
        match ended {
            Ended::PeerClosed => Error::PeerClosed { endpoint, pid },
            Ended::PeerGone => Error::PeerGone { endpoint, pid },
            Ended::Protocol(what) => Error::Protocol {
                endpoint,
                what: what.clone(),
            },
            Ended::Closed => Error::Closed,
        }
    }

    /// Records that the connection ended (the first reason wins) and returns its error.
    fn end(&mut self, why: Ended) -> Error {
        if let Ended::Protocol(_) = why {
            // Garbage in: stop talking to this peer at once.
            let _ = rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Both);
        }
        let why = self.ended.get_or_insert(why).clone();
        self.ended_error(&why)
    }

    /// Waits until the socket is readable (if `read`) or writable (if `write`, or while
    /// bytes are pending), within `mode`. Returns whether it is writable.
    fn wait(&self, read: bool, write: bool, mode: Mode) -> Result<bool> {
        let mut flags = PollFlags::empty();
        if read {
            flags |= PollFlags::IN;
        }
        if write || self.has_pending_tx() {
            flags |= PollFlags::OUT;
        }
        loop {
            let timeout = match mode {
                Mode::Try => Some(Duration::ZERO),
                Mode::Block => None,
                Mode::Until(t) => Some(t.saturating_duration_since(Instant::now())),
            };
            let ts = timeout.map(timespec);
            let mut fds = [PollFd::new(&self.sock, flags)];
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(0) => return Err(deadline_error(mode)),
                Ok(_) => {
                    let r = fds[0].revents();
                    let broken = r.intersects(PollFlags::HUP | PollFlags::ERR);
                    return Ok(r.contains(PollFlags::OUT) || broken);
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::io(format!("{}: poll", self.endpoint), e)),
            }
        }
    }

    /// Writes as much of `tx_pending` as the kernel takes now.
    fn flush_some(&mut self) -> Result<()> {
        while self.has_pending_tx() {
            match rustix::net::send(
                &self.sock,
                self.tx_pending(),
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => {
                    self.tx_head += n;
                    if self.tx_head == self.tx_pending.len() {
                        self.tx_pending.clear();
                        self.tx_head = 0;
                        if self.tx_pending.capacity() > RX_KEEP_MAX_BYTES {
                            self.tx_pending = Vec::new();
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(self.send_failed(e)),
            }
        }
        Ok(())
    }

    /// Flushes `tx_pending` completely within `mode`.
    fn flush(&mut self, mode: Mode) -> Result<()> {
        loop {
            self.flush_some()?;
            if !self.has_pending_tx() {
                return Ok(());
            }
            self.wait(false, true, mode)?;
        }
    }

    fn send_failed(&mut self, e: Errno) -> Error {
        match e {
            Errno::PIPE => self.end(Ended::PeerClosed),
            Errno::CONNRESET => self.end(Ended::PeerGone),
            e => Error::io(format!("{}: send", self.endpoint), e),
        }
    }

    /// Writes one frame (`header`: `None` for raw bytes, else `(more, command)`), within
    /// `mode`. Once some of it is written, the rest is queued rather than abandoned.
    fn write_frame(&mut self, body: &[u8], header: Option<(bool, bool)>, mode: Mode) -> Result<()> {
        self.flush(mode)?;
        let mut hbuf = [0u8; zmtp::HEADER_MAX_LEN];
        let hlen = match header {
            Some((more, command)) => zmtp::encode_header(body.len(), more, command, &mut hbuf),
            None => 0,
        };
        let total = hlen + body.len();
        let mut done = 0;
        while done < total {
            let iov = if done < hlen {
                [IoSlice::new(&hbuf[done..hlen]), IoSlice::new(body)]
            } else {
                [IoSlice::new(&[]), IoSlice::new(&body[done - hlen..])]
            };
            let sent = rustix::net::sendmsg(
                &self.sock,
                &iov,
                &mut SendAncillaryBuffer::default(),
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            );
            match sent {
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if done > 0 && !matches!(mode, Mode::Block) => {
                    // Part of the frame is out: the rest must follow before anything else.
                    if done < hlen {
                        self.tx_pending.extend_from_slice(&hbuf[done..hlen]);
                        done = hlen;
                    }
                    self.tx_pending.extend_from_slice(&body[done - hlen..]);
                    return Ok(());
                }
                Err(Errno::AGAIN) => {
                    let wait_mode = if done > 0 { Mode::Block } else { mode };
                    self.wait(false, true, wait_mode)?;
                }
                Err(e) => return Err(self.send_failed(e)),
            }
        }
        Ok(())
    }

    /// Sends one message.
    pub(crate) fn send(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        if let Some(ended) = &self.ended {
            return Err(self.ended_error(ended));
        }
        if msg.len() > self.max_len {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max_len,
            });
        }
        self.write_frame(msg, Some((false, false)), mode)
    }

    /// Reads from the socket until at least `need` bytes are buffered, within `mode`.
    fn fill(&mut self, need: usize, mode: Mode) -> Result<()> {
        if self.rx_tail - self.rx_head >= need {
            return Ok(());
        }
        if self.rx.len() - self.rx_head < need {
            // Make room: move the partial message to the front, grow if still too small.
            self.rx.copy_within(self.rx_head..self.rx_tail, 0);
            self.rx_tail -= self.rx_head;
            self.rx_head = 0;
            if self.rx.len() < need {
                self.rx.resize(need.max(RX_CHUNK_BYTES), 0);
            }
        }
        loop {
            let got = rustix::net::recv(
                &self.sock,
                &mut self.rx[self.rx_tail..],
                RecvFlags::DONTWAIT,
            );
            match got {
                Ok((0, _)) => {
                    let why = if self.rx_tail == self.rx_head {
                        Ended::PeerClosed
                    } else {
                        Ended::PeerGone
                    };
                    return Err(self.end(why));
                }
                Ok((n, _)) => {
                    self.rx_tail += n;
                    if self.rx_tail - self.rx_head >= need {
                        return Ok(());
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    if self.wait(true, false, mode)? {
                        self.flush_some()?;
                    }
                }
                Err(Errno::CONNRESET) => return Err(self.end(Ended::PeerGone)),
                Err(e) => return Err(Error::io(format!("{}: recv", self.endpoint), e)),
            }
        }
    }

    /// Waits for the next whole message in `rx`; returns `(len, frames, consumed)`.
    /// Commands that arrive meanwhile are handled (PING answered, others ignored).
    fn next_message(&mut self, mode: Mode) -> Result<(usize, usize, usize)> {
        if let Some(ended @ (Ended::Protocol(_) | Ended::Closed)) = &self.ended {
            return Err(self.ended_error(ended));
        }
        loop {
            let scanned = zmtp::scan(&self.rx[self.rx_head..self.rx_tail], self.max_len);
            match scanned {
                Err(what) => return Err(self.end(Ended::Protocol(what))),
                Ok(Scan::Message {
                    len,
                    frames,
                    consumed,
                }) => return Ok((len, frames, consumed)),
                Ok(Scan::Command { body, consumed }) => {
                    let body = self.rx_head + body.start..self.rx_head + body.end;
                    self.command(body)?;
                    self.rx_head += consumed;
                }
                Ok(Scan::Incomplete { need }) => {
                    if let Some(ended) = &self.ended {
                        return Err(self.ended_error(ended));
                    }
                    self.fill(need, mode)?;
                }
            }
        }
    }

    /// Handles a command received after the handshake: PING is answered, SUBSCRIBE and
    /// CANCEL are logged by a PUB, others (PONG, future commands) are ignored.
    fn command(&mut self, body: std::ops::Range<usize>) -> Result<()> {
        let (name, data) = match zmtp::split_command(&self.rx[body]) {
            Ok(parsed) => parsed,
            Err(what) => return Err(self.end(Ended::Protocol(what))),
        };
        if name == b"PING" {
            let pong = zmtp::pong_body(data);
            let mut h = [0u8; zmtp::HEADER_MAX_LEN];
            let n = zmtp::encode_header(pong.len(), false, true, &mut h);
            self.tx_pending.extend_from_slice(&h[..n]);
            self.tx_pending.extend_from_slice(&pong);
            return self.flush_some();
        }
        if self.socket_type == SocketType::Pub {
            if let Some(sub) = Subscription::from_command(name, data) {
                self.subscriptions.push(sub);
            }
        }
        Ok(())
    }

    fn consumed(&mut self, consumed: usize) {
        self.rx_head += consumed;
        if self.rx_head == self.rx_tail {
            self.rx_head = 0;
            self.rx_tail = 0;
            if self.rx.len() > RX_KEEP_MAX_BYTES {
                self.rx = vec![0; RX_CHUNK_BYTES];
            }
        }
    }

    /// Receives the next message into `buf` (kept queued if `buf` is too small).
    pub(crate) fn recv_into(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        let (len, frames, consumed) = self.next_message(mode)?;
        if len > buf.len() {
            return Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            });
        }
        zmtp::copy_payload(&self.rx[self.rx_head..], frames, &mut buf[..len]);
        self.consumed(consumed);
        Ok(len)
    }

    /// Receives the next message into a new `Vec`.
    pub(crate) fn recv_vec(&mut self, mode: Mode) -> Result<Vec<u8>> {
        let (len, frames, consumed) = self.next_message(mode)?;
        let mut out = vec![0; len];
        zmtp::copy_payload(&self.rx[self.rx_head..], frames, &mut out);
        self.consumed(consumed);
        Ok(out)
    }

    /// Flushes what is pending (for at most [`CLOSE_LINGER`]) and shuts the connection down:
    /// the peer reads everything we sent, then end of stream.
    pub(crate) fn close(&mut self) {
        self.close_within(CLOSE_LINGER);
    }

    /// [`close`](Self::close), flushing for at most `linger`.
    pub(crate) fn close_within(&mut self, linger: Duration) {
        if self.ended.is_none() {
            let _ = self.flush(Mode::timeout(linger));
            let _ = rustix::net::shutdown(self.sock.as_fd(), rustix::net::Shutdown::Write);
            // Unread bytes at close make the kernel send a reset, which can destroy what the
            // peer has not read yet: discard what already arrived (a bounded amount).
            for _ in 0..64 {
                match rustix::net::recv(&self.sock, &mut self.rx[..], RecvFlags::DONTWAIT) {
                    Ok((n, _)) if n > 0 => {}
                    _ => break,
                }
            }
        }
        self.ended = Some(Ended::Closed);
    }
}

impl Drop for NetConn {
    fn drop(&mut self) {
        self.close();
    }
}
