//! [`NetConn`]: one ZMTP PAIR connection over a stream socket (TCP or Unix).
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

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

use super::zmtp::{self, Scan};
use crate::error::{Error, Result};
use crate::shm::Mode;

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

/// A ZMTP PAIR connection.
pub(crate) struct NetConn {
    endpoint: String,
    sock: OwnedFd,
    peer_pid: i32,
    max_len: usize,
    rx: Vec<u8>,
    rx_head: usize,
    rx_tail: usize,
    tx_pending: Vec<u8>,
    ended: Option<Ended>,
}

fn deadline_error(mode: Mode) -> Error {
    match mode {
        Mode::Try => Error::WouldBlock,
        _ => Error::TimedOut,
    }
}

impl NetConn {
    /// Runs the ZMTP handshake (greeting, READY with `Socket-Type: PAIR`) on a connected
    /// socket, within `timeout`.
    pub(crate) fn handshake(
        endpoint: String,
        sock: OwnedFd,
        peer_pid: i32,
        max_len: usize,
        timeout: Duration,
    ) -> Result<NetConn> {
        let mut c = NetConn {
            endpoint,
            sock,
            peer_pid,
            max_len,
            rx: vec![0; RX_CHUNK_BYTES],
            rx_head: 0,
            rx_tail: 0,
            tx_pending: Vec::new(),
            ended: None,
        };
        let mode = Mode::timeout(timeout);
        let handshake_err = |c: &NetConn, e: Error| match e {
            Error::TimedOut => {
                c.handshake_error("the peer did not complete the ZMTP handshake in time")
            }
            Error::Protocol { what, .. } => c.handshake_error(&what),
            e if e.is_disconnect() => {
                c.handshake_error("the peer hung up during the ZMTP handshake")
            }
            e => e,
        };
        c.write_frame(&zmtp::greeting(), None, mode)
            .map_err(|e| handshake_err(&c, e))?;
        c.fill(zmtp::GREETING_LEN, mode)
            .map_err(|e| handshake_err(&c, e))?;
        zmtp::check_greeting(&c.rx[c.rx_head..c.rx_tail]).map_err(|r| c.handshake_error(&r))?;
        c.rx_head += zmtp::GREETING_LEN;
        c.write_frame(&zmtp::ready_body("PAIR"), Some((false, true)), mode)
            .map_err(|e| handshake_err(&c, e))?;
        let body = loop {
            match zmtp::scan(&c.rx[c.rx_head..c.rx_tail], c.max_len.max(4096))
                .map_err(|r| c.handshake_error(&r))?
            {
                Scan::Incomplete { need } => {
                    c.fill(need, mode).map_err(|e| handshake_err(&c, e))?;
                }
                Scan::Command { body, consumed } => {
                    let b = c.rx[c.rx_head + body.start..c.rx_head + body.end].to_vec();
                    c.rx_head += consumed;
                    break b;
                }
                Scan::Message { .. } => {
                    return Err(c.handshake_error("the peer sent a message before READY"))
                }
            }
        };
        let (name, data) = zmtp::split_command(&body).map_err(|r| c.handshake_error(&r))?;
        if name == b"ERROR" {
            let reason = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
            return Err(c.handshake_error(&format!("the peer refused us: {reason}")));
        }
        if name != b"READY" {
            let name = String::from_utf8_lossy(name);
            return Err(c.handshake_error(&format!("expected READY, got command {name:?}")));
        }
        match zmtp::property(data, "Socket-Type").map_err(|r| c.handshake_error(&r))? {
            Some(t) if t.eq_ignore_ascii_case(b"PAIR") => Ok(c),
            Some(t) => Err(c.handshake_error(&format!(
                "the peer is a ZeroMQ {} socket; Conn speaks PAIR and only pairs with PAIR",
                String::from_utf8_lossy(t)
            ))),
            None => Err(c.handshake_error("the peer's READY has no Socket-Type")),
        }
    }

    fn handshake_error(&self, reason: &str) -> Error {
        Error::Handshake {
            endpoint: self.endpoint.clone(),
            reason: reason.to_owned(),
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
        if write || !self.tx_pending.is_empty() {
            flags |= PollFlags::OUT;
        }
        loop {
            let timeout = match mode {
                Mode::Try => Some(Duration::ZERO),
                Mode::Block => None,
                Mode::Until(t) => Some(t.saturating_duration_since(Instant::now())),
            };
            let ts = timeout.map(|t| rustix::time::Timespec {
                tv_sec: t.as_secs() as i64,
                tv_nsec: i64::from(t.subsec_nanos()),
            });
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
        while !self.tx_pending.is_empty() {
            match rustix::net::send(
                &self.sock,
                &self.tx_pending,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => {
                    self.tx_pending.drain(..n);
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
            if self.tx_pending.is_empty() {
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

    /// Handles a command received after the handshake.
    fn command(&mut self, body: std::ops::Range<usize>) -> Result<()> {
        let parsed = zmtp::split_command(&self.rx[body.clone()]).map(|(n, d)| (n == b"PING", d));
        match parsed {
            Ok((true, data)) => {
                let pong = zmtp::pong_body(data);
                let mut h = [0u8; zmtp::HEADER_MAX_LEN];
                let n = zmtp::encode_header(pong.len(), false, true, &mut h);
                self.tx_pending.extend_from_slice(&h[..n]);
                self.tx_pending.extend_from_slice(&pong);
                self.flush_some()
            }
            Ok((false, _)) => Ok(()), // PONG, SUBSCRIBE and future commands mean nothing to PAIR
            Err(what) => Err(self.end(Ended::Protocol(what))),
        }
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
        if self.ended.is_none() {
            let _ = self.flush(Mode::timeout(CLOSE_LINGER));
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
