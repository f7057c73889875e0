//! [`NetConn`]: one ZMTP connection over a stream socket (TCP or Unix), as a PAIR, PUB or
//! SUB socket.
//!
//! The socket stays in blocking mode, but every read and write passes `MSG_DONTWAIT` and
//! waits in `poll(2)` when the kernel has nothing to give, so the same code serves `try_*`
//! (no wait), timeouts (wait until a deadline) and blocking calls (wait forever).
//!
//! **Receiving.** Bytes collect in an [`Inbound`] buffer that grows only as bytes arrive
//! and is parsed frame after frame, each byte once; every read takes all the kernel has
//! (up to the buffer's room), so a stream of small messages costs one `recv` per buffer
//! full, not one per message. A message is copied out only when the caller's buffer is
//! large enough, so `BufferTooSmall` keeps it queued. A non-waiting receive reads at most
//! [`TRY_READS`] times, so a peer that never stops sending (an endless multipart message)
//! cannot hold a thread that serves others.
//!
//! **Sending.** Frames are encoded into a send queue (`tx`) and written with one `send`
//! as soon as the caller hands them over: a lone message goes out at once (TCP_NODELAY is
//! set), and when the kernel's buffer is full, later messages pile up in the queue and
//! leave together in one large write. A message counts as sent once queued, as with
//! libzmq; the queue holds at most [`TX_QUEUE_MAX_BYTES`] (plus one message), beyond which
//! `send` waits (or says `WouldBlock`/`TimedOut`). Blocking calls, `recv`s included, keep
//! flushing it, so two peers never wait on each other's unsent bytes, and `close`/`Drop`
//! flush it for at most [`CLOSE_LINGER`]. Messages of [`DIRECT_MIN_BYTES`] or more skip the
//! copy when the queue is empty: header and body go to the kernel in one `sendmsg`.
//!
//! **Commands.** PING is answered with PONG unless [`PONG_QUEUE_MAX_BYTES`] are already
//! waiting to go out (a peer that floods PINGs and never reads gets no more replies, and
//! costs no memory). As a PUB, the connection keeps the SUBSCRIBE/CANCEL commands it
//! receives in a log that the publisher drains ([`NetConn::take_subscriptions`]); as a SUB
//! it sends them with [`NetConn::queue_subscription`], which never waits.

use std::io::IoSlice;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

use super::admission::Slot;
use super::config::Heartbeat;
use super::curve::session::CurveSession;
use super::flusher::{self, Tx};
use super::inbound::{Inbound, Item};
use super::zmtp::{self, SocketType, Subscription};
use crate::error::{Error, Result};
use crate::handover::{self, Offer, PeerEnd, Ticket, Token, HANDOVER_COMMAND};
use crate::sys::timespec;
use crate::vocabulary::Mode;

pub(crate) mod handshake;

/// How long `close`/`Drop` keep trying to flush queued bytes.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Queued outgoing bytes beyond which `send` waits for the kernel to take some.
pub(crate) const TX_QUEUE_MAX_BYTES: usize = 256 * 1024;
/// Messages at least this long are written straight from the caller's buffer when nothing
/// is queued (no copy into the queue).
pub(crate) const DIRECT_MIN_BYTES: usize = 16 * 1024;
/// A PING is not answered while this many bytes already wait to go out.
pub(crate) const PONG_QUEUE_MAX_BYTES: usize = 64 * 1024;
/// Reads a non-waiting receive makes before it gives up (`WouldBlock`).
pub(crate) const TRY_READS: usize = 4;
/// A `Conn` send that follows the previous one's end within this is part of a stream: its
/// frame is queued and written in a batch (see [`super::flusher`]).
pub(crate) const STREAM_GAP: Duration = Duration::from_micros(2);
/// Queued bytes a stream writes at once, without waiting for the flusher.
pub(crate) const WRITE_BATCH_BYTES: usize = 64 * 1024;

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
    sock: Arc<OwnedFd>,
    peer_pid: i32,
    /// The ZMTP minor version the peer announced (0 or 1).
    peer_minor: u8,
    socket_type: SocketType,
    max_len: usize,
    rx: Inbound,
    /// Encoded frames not yet written, shared with the flusher thread.
    tx: Arc<Mutex<Tx>>,
    /// Streams of sends are batched (a `Conn`; a publisher's I/O thread batches itself).
    batching: bool,
    /// When the last `send` returned.
    last_send: Option<Instant>,
    /// SUBSCRIBE/CANCEL commands received (PUB only), oldest first.
    subscriptions: Vec<Subscription>,
    ended: Option<Ended>,
    /// This connection's place in its listener's count (accepted connections only).
    _slot: Option<Slot>,
    heartbeat: Option<Heartbeat>,
    /// When bytes last arrived from the peer.
    last_rx: Instant,
    /// When we last sent a PING.
    pinged: Option<Instant>,
    /// CURVE: the session of the finished handshake; every frame then travels sealed.
    curve: Option<CurveSession>,
    /// CURVE: the opened frames of a multipart message so far, or (with `plain_ready`) a
    /// whole message waiting to be delivered.
    plain: Vec<u8>,
    plain_ready: bool,
    /// PUB: the shared-memory offer made to this subscriber, on record while we live.
    ticket: Option<Ticket>,
    /// SUB: the publisher's offer of its shared-memory ring, until the API takes it.
    offer: Option<Offer>,
    /// SUB: we took the offer, so a HANDOVER command may come.
    expects_handover: bool,
    /// SUB: the HANDOVER received (the sequence number of the first message to read from
    /// the ring), until the API takes it.
    handover: Option<u64>,
}

/// Where the payload of a received message lies.
enum Payload {
    /// In the receive buffer.
    Rx(Range<usize>),
    /// In `plain` (a CURVE multipart message, or one kept for a larger buffer).
    Plain,
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
        socket_type: SocketType,
        slot: Option<Slot>,
    ) -> NetConn {
        NetConn {
            endpoint,
            sock: Arc::new(sock),
            peer_pid,
            peer_minor: 0,
            socket_type,
            // Until the handshake is done, only its commands (a few KiB) are accepted.
            max_len: 0,
            rx: Inbound::new(0),
            tx: Arc::default(),
            batching: socket_type == SocketType::Pair,
            last_send: None,
            subscriptions: Vec::new(),
            ended: None,
            _slot: slot,
            heartbeat: None,
            last_rx: Instant::now(),
            pinged: None,
            curve: None,
            plain: Vec::new(),
            plain_ready: false,
            ticket: None,
            offer: None,
            expects_handover: false,
            handover: None,
        }
    }

    /// PUB: the token offered to this subscriber, if any.
    pub(crate) fn offered_token(&self) -> Option<Token> {
        self.ticket.as_ref().map(Ticket::token)
    }

    /// SUB: takes the publisher's offer of its shared-memory ring, if it made one.
    pub(crate) fn take_offer(&mut self) -> Option<Offer> {
        self.offer.take()
    }

    /// SUB: from now on a HANDOVER command from the publisher ends the stream on this
    /// connection (we presented its token on its ring); before, one is ignored.
    pub(crate) fn expect_handover(&mut self) {
        self.expects_handover = true;
    }

    /// SUB: the HANDOVER received, if one was: the sequence number of the first message to
    /// read from the ring. Receives return [`Error::WouldBlock`] once it arrived.
    pub(crate) fn take_handover(&mut self) -> Option<u64> {
        self.handover.take()
    }

    /// Where the other end of this connection is (`None` if the socket cannot say).
    pub(crate) fn peer_end(&self) -> Option<PeerEnd> {
        handover::peer_end(self.sock.as_fd(), self.peer_pid)
    }

    /// PUB: queues the HANDOVER command: the subscriber reads the ring from message `seq`.
    pub(crate) fn queue_handover(&mut self, seq: u64) {
        let mut body = Vec::with_capacity(1 + HANDOVER_COMMAND.len() + 8);
        body.push(HANDOVER_COMMAND.len() as u8);
        body.extend_from_slice(HANDOVER_COMMAND);
        body.extend_from_slice(&seq.to_be_bytes());
        self.queue_command(&body);
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

    /// Turns ZMTP heartbeats on (or off) for this connection.
    pub(crate) fn set_heartbeat(&mut self, heartbeat: Option<Heartbeat>) {
        self.heartbeat = heartbeat;
        self.last_rx = Instant::now();
    }

    /// The heartbeat settings, if on.
    pub(crate) fn heartbeat_settings(&self) -> Option<Heartbeat> {
        self.heartbeat
    }

    /// When the heartbeat next needs looking at ([`heartbeat`](Self::heartbeat)), if on.
    pub(crate) fn heartbeat_due(&self) -> Option<Instant> {
        let hb = self.heartbeat?;
        let quiet_since = self.last_rx;
        match self.pinged {
            Some(p) if p >= quiet_since => Some((quiet_since + hb.timeout).min(p + hb.interval)),
            _ => Some(quiet_since + hb.interval),
        }
    }

    /// Keeps the heartbeat: a PING once the peer was silent for the interval (and again each
    /// interval), [`Error::PeerGone`] once it was silent for the timeout.
    pub(crate) fn heartbeat(&mut self) -> Result<()> {
        let Some(hb) = self.heartbeat else {
            return Ok(());
        };
        if self.ended.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        let silent = now.saturating_duration_since(self.last_rx);
        if silent >= hb.timeout {
            tracing::info!(endpoint = %self.endpoint, peer_pid = self.peer_pid,
                silent_ms = silent.as_millis() as u64, "peer missed its heartbeats");
            return Err(self.end(Ended::PeerGone));
        }
        let ping_due = silent >= hb.interval
            && self
                .pinged
                .is_none_or(|p| p < self.last_rx || now.duration_since(p) >= hb.interval);
        if ping_due {
            // Counted as sent even when too much waits to go out: the next one is due an
            // interval later, so a full socket never makes this spin.
            self.pinged = Some(now);
            if self.queued_tx() < PONG_QUEUE_MAX_BYTES {
                self.queue_command(&zmtp::ping_body(hb.timeout));
                self.flush_some()?;
            }
        }
        Ok(())
    }

    /// `mode`, shortened to the next heartbeat check; and whether it was shortened.
    fn beat_mode(&self, mode: Mode) -> (Mode, bool) {
        match (self.heartbeat_due(), mode) {
            (Some(due), Mode::Block) => (Mode::Until(due), true),
            (Some(due), Mode::Until(d)) if due < d => (Mode::Until(due), true),
            _ => (mode, false),
        }
    }

    /// [`wait`](Self::wait), keeping the heartbeat meanwhile.
    fn wait_beating(&mut self, read: bool, write: bool, mode: Mode) -> Result<bool> {
        loop {
            let (wait_mode, beat) = self.beat_mode(mode);
            match self.wait(read, write, wait_mode) {
                Err(Error::TimedOut) if beat => self.heartbeat()?,
                Err(Error::WouldBlock) => {
                    self.heartbeat()?;
                    return Err(Error::WouldBlock);
                }
                other => return other,
            }
        }
    }

    /// The send queue, locked.
    fn tx(&self) -> MutexGuard<'_, Tx> {
        flusher::lock(&self.tx)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_tx(&self) -> usize {
        self.tx().queued()
    }

    /// Bytes are waiting for room in the socket buffer.
    pub(crate) fn has_pending_tx(&self) -> bool {
        self.queued_tx() > 0
    }

    /// Writes as much of what is queued as the kernel takes now, without waiting.
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
        if self.peer_minor >= 1 {
            let body = zmtp::subscription_command(subscribe, prefix);
            self.queue_command(&body);
        } else {
            let body = zmtp::subscription_message(subscribe, prefix);
            self.queue_data(&body);
        }
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
    /// bytes are queued), within `mode`. Returns whether it is writable.
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

    /// Appends one frame to the send queue (nothing is written yet).
    fn queue_frame(&mut self, body: &[u8], more: bool, command: bool) {
        let mut h = [0u8; zmtp::HEADER_MAX_LEN];
        let n = zmtp::encode_header(body.len(), more, command, &mut h);
        let mut tx = self.tx();
        tx.buf.extend_from_slice(&h[..n]);
        tx.buf.extend_from_slice(body);
    }

    /// Appends one message (a data frame) to the send queue, sealed under CURVE.
    fn queue_data(&mut self, msg: &[u8]) {
        self.queue(msg, false);
    }

    /// Appends one command (PING, PONG, SUBSCRIBE...) to the send queue; under CURVE it
    /// travels sealed in a MESSAGE, as libzmq sends it.
    fn queue_command(&mut self, body: &[u8]) {
        self.queue(body, true);
    }

    /// Appends a frame: in clear with the COMMAND flag as given, or under CURVE as a MESSAGE
    /// (a data frame) whose box carries that flag.
    fn queue(&mut self, body: &[u8], command: bool) {
        let Some(session) = &mut self.curve else {
            return self.queue_frame(body, false, command);
        };
        let mut h = [0u8; zmtp::HEADER_MAX_LEN];
        let n = zmtp::encode_header(CurveSession::sealed_len(body.len()), false, false, &mut h);
        let mut tx = flusher::lock(&self.tx);
        tx.buf.extend_from_slice(&h[..n]);
        if command {
            session.seal_command(body, &mut tx.buf);
        } else {
            session.seal(false, body, &mut tx.buf);
        }
    }

    /// Appends raw bytes (the greeting) to the send queue.
    fn queue_raw(&mut self, bytes: &[u8]) {
        self.tx().buf.extend_from_slice(bytes);
    }

    /// Writes as much of the send queue as the kernel takes now.
    fn flush_some(&mut self) -> Result<()> {
        let written = {
            let mut tx = flusher::lock(&self.tx);
            match tx.take_failure() {
                Some(e) => Err(e),
                None => tx.write_to(&self.sock),
            }
        };
        written.map_err(|e| self.send_failed(e))
    }

    /// Writes the send queue until at most `keep` bytes are left, within `mode`.
    fn flush_down_to(&mut self, keep: usize, mode: Mode) -> Result<()> {
        loop {
            self.flush_some()?;
            if self.queued_tx() <= keep {
                return Ok(());
            }
            self.wait_beating(false, true, mode)?;
        }
    }

    fn send_failed(&mut self, e: Errno) -> Error {
        match e {
            Errno::PIPE => self.end(Ended::PeerClosed),
            Errno::CONNRESET => self.end(Ended::PeerGone),
            e => Error::io(format!("{}: send", self.endpoint), e),
        }
    }

    /// Writes header and body straight from the caller (nothing is queued); what the kernel
    /// does not take joins the queue.
    fn send_direct(&mut self, body: &[u8], more: bool) -> Result<()> {
        let mut hbuf = [0u8; zmtp::HEADER_MAX_LEN];
        let hlen = zmtp::encode_header(body.len(), more, false, &mut hbuf);
        let mut done = 0;
        loop {
            let iov = [IoSlice::new(&hbuf[..hlen]), IoSlice::new(body)];
            match rustix::net::sendmsg(
                &self.sock,
                &iov,
                &mut SendAncillaryBuffer::default(),
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => {
                    done = n;
                    break;
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(e) => return Err(self.send_failed(e)),
            }
        }
        let mut tx = self.tx();
        if done < hlen {
            tx.buf.extend_from_slice(&hbuf[done..hlen]);
            done = hlen;
        }
        tx.buf.extend_from_slice(&body[done - hlen..]);
        Ok(())
    }

    /// Sends one message: queued (at most [`TX_QUEUE_MAX_BYTES`] wait, beyond which this
    /// waits within `mode`), and written now as far as the kernel takes it.
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
        let now = Instant::now();
        let streaming = self.batching
            && !matches!(mode, Mode::Try)
            && self
                .last_send
                .is_some_and(|t| now.saturating_duration_since(t) < STREAM_GAP);
        let sent = if streaming {
            self.send_streaming(msg, mode)
        } else {
            self.send_now(msg, mode)
        };
        self.last_send = Some(Instant::now());
        sent
    }

    /// A send in a stream: queued, and written with the rest of the batch, by this call
    /// once the queue holds [`WRITE_BATCH_BYTES`]; whatever is left is written by the
    /// flusher thread soon after, so nothing waits for the caller's next call.
    fn send_streaming(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        if self.queued_tx() >= TX_QUEUE_MAX_BYTES {
            self.flush_down_to(WRITE_BATCH_BYTES, mode)?;
        }
        self.queue_data(msg);
        if self.queued_tx() >= WRITE_BATCH_BYTES {
            self.flush_some()?;
        }
        let mut tx = flusher::lock(&self.tx);
        let planned = tx.queued() == 0 || flusher::schedule(&self.tx, &mut tx, &self.sock);
        drop(tx);
        if planned {
            return Ok(());
        }
        // No flusher thread: behave as a lone send would.
        self.settle(mode)
    }

    /// A lone send: written at once.
    fn send_now(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        // A waiting send first lets earlier bytes go (so it never leaves them behind); a
        // non-waiting one queues behind them, up to the queue's limit.
        let keep = match mode {
            Mode::Try => TX_QUEUE_MAX_BYTES,
            Mode::Block | Mode::Until(_) => 0,
        };
        self.flush_down_to(keep, mode)?;
        if !self.has_pending_tx() && msg.len() >= DIRECT_MIN_BYTES && self.curve.is_none() {
            self.send_direct(msg, false)?;
        } else {
            self.queue_data(msg);
            self.flush_some()?;
        }
        self.settle(mode)
    }

    /// After a message is queued (it counts as sent): a blocking send waits until the
    /// kernel has all of it, so nothing stays behind if the caller goes quiet; a send with a
    /// deadline leaves the rest queued when the deadline passes; a non-waiting one returns.
    fn settle(&mut self, mode: Mode) -> Result<()> {
        match mode {
            Mode::Try => Ok(()),
            Mode::Block => self.flush_down_to(0, mode),
            Mode::Until(_) => match self.flush_down_to(0, mode) {
                Err(Error::TimedOut) => Ok(()),
                other => other,
            },
        }
    }

    /// Queues one message without writing it (a batch is written by
    /// [`flush_pending`](Self::flush_pending)); the caller bounds the queue.
    pub(crate) fn queue_message(&mut self, msg: &[u8]) {
        self.queue_data(msg);
    }

    /// The next whole item (message or command), reading as `mode` allows; `reads` counts
    /// the reads of the whole receive call (a `try_` call stops at [`TRY_READS`], however
    /// many commands the peer packs in).
    fn next_item(&mut self, mode: Mode, reads: &mut usize) -> Result<Item> {
        loop {
            match self.rx.next() {
                Err(what) => return Err(self.end(Ended::Protocol(what))),
                Ok(Some(item)) => return Ok(item),
                Ok(None) => {}
            }
            if let Some(ended) = &self.ended {
                return Err(self.ended_error(ended));
            }
            if matches!(mode, Mode::Try) && *reads >= TRY_READS {
                return Err(Error::WouldBlock);
            }
            match self.rx.read_from(&self.sock) {
                Ok(0) => {
                    let why = if self.rx.is_empty() {
                        Ended::PeerClosed
                    } else {
                        Ended::PeerGone
                    };
                    return Err(self.end(why));
                }
                Ok(_) => {
                    *reads += 1;
                    self.last_rx = Instant::now();
                }
                Err(Errno::AGAIN) => {
                    if self.wait_beating(true, false, mode)? {
                        self.flush_some()?;
                    }
                }
                Err(Errno::CONNRESET) => return Err(self.end(Ended::PeerGone)),
                Err(e) => return Err(Error::io(format!("{}: recv", self.endpoint), e)),
            }
        }
    }

    /// Waits for the next whole message; returns where its payload lies. Commands that
    /// arrive meanwhile are handled (PING answered, others ignored or logged).
    fn next_message(&mut self, mode: Mode) -> Result<Payload> {
        if let Some(ended @ (Ended::Protocol(_) | Ended::Closed)) = &self.ended {
            return Err(self.ended_error(ended));
        }
        if self.plain_ready {
            return Ok(Payload::Plain);
        }
        if self.has_pending_tx() {
            // A stream's tail may wait for the flusher: the caller now waits for an
            // answer, so write it first.
            self.flush_some()?;
        }
        let mut reads = 0;
        loop {
            if self.handover.is_some() {
                // Nothing follows a HANDOVER on this connection: the ring takes over.
                return Err(Error::WouldBlock);
            }
            let item = self.next_item(mode, &mut reads)?;
            if self.curve.is_some() {
                if let Some(payload) = self.open_sealed(item)? {
                    return Ok(payload);
                }
                continue;
            }
            match item {
                Item::Message { payload, .. } => return Ok(Payload::Rx(payload)),
                Item::Command { body } => self.command(body)?,
            }
        }
    }

    /// CURVE: opens one frame (a MESSAGE) where it lies in `rx`; a command inside is
    /// handled, a part of a multipart message joins `plain`, and the last part gives the
    /// message.
    fn open_sealed(&mut self, item: Item) -> Result<Option<Payload>> {
        let body = match item {
            Item::Message { payload, .. } => payload,
            Item::Command { body } => {
                let bytes = &self.rx.bytes()[body.clone()];
                if !bytes.starts_with(b"\x07MESSAGE") {
                    let what = match zmtp::split_command(bytes) {
                        Ok((b"ERROR", data)) => {
                            format!("the peer closed with ERROR {:?}", zmtp::error_reason(data))
                        }
                        Ok((name, _)) => format!(
                            "a CURVE peer sent the command {:?} in clear",
                            String::from_utf8_lossy(name)
                        ),
                        Err(what) => what,
                    };
                    return Err(self.end(Ended::Protocol(what)));
                }
                body
            }
        };
        let session = self.curve.as_mut().expect("a CURVE connection");
        let opened = match session.open_in_place(&mut self.rx.bytes_mut()[body.clone()]) {
            Ok(o) => (o.more, o.command, o.frame.len()),
            Err(e) => return Err(self.end(Ended::Protocol(e.to_string()))),
        };
        let (more, command, len) = opened;
        let frame = body.end - len..body.end;
        if command {
            self.command(frame)?;
            return Ok(None);
        }
        if more || !self.plain.is_empty() {
            if self.plain.len() + len > self.max_len {
                let what = format!(
                    "a message of {} bytes or more is larger than max_message_len ({} bytes)",
                    self.plain.len() + len,
                    self.max_len
                );
                return Err(self.end(Ended::Protocol(what)));
            }
            self.plain.extend_from_slice(&self.rx.bytes()[frame]);
            if more {
                return Ok(None);
            }
            self.plain_ready = true;
            return Ok(Some(Payload::Plain));
        }
        Ok(Some(Payload::Rx(frame)))
    }

    /// The bytes of a payload [`next_message`](Self::next_message) returned.
    fn payload(&self, payload: &Payload) -> &[u8] {
        match payload {
            Payload::Rx(range) => &self.rx.bytes()[range.clone()],
            Payload::Plain => &self.plain,
        }
    }

    /// The message was delivered: forget it.
    fn delivered(&mut self, payload: &Payload) {
        if let Payload::Plain = payload {
            self.plain.clear();
            self.plain_ready = false;
        }
    }

    /// Handles a command received after the handshake: PING is answered, SUBSCRIBE and
    /// CANCEL are logged by a PUB, others (PONG, future commands) are ignored.
    fn command(&mut self, body: Range<usize>) -> Result<()> {
        let (name, data) = match zmtp::split_command(&self.rx.bytes()[body]) {
            Ok(parsed) => parsed,
            Err(what) => return Err(self.end(Ended::Protocol(what))),
        };
        if name == b"PING" {
            if self.queued_tx() < PONG_QUEUE_MAX_BYTES {
                let pong = zmtp::pong_body(data);
                self.queue_command(&pong);
                return self.flush_some();
            }
            return Ok(());
        }
        if self.socket_type == SocketType::Pub {
            if let Some(sub) = Subscription::from_command(name, data) {
                self.subscriptions.push(sub);
            }
        }
        if self.expects_handover && name == HANDOVER_COMMAND {
            let Ok(seq) = <[u8; 8]>::try_from(data) else {
                let what = format!("a HANDOVER command of {} bytes, expected 8", data.len());
                return Err(self.end(Ended::Protocol(what)));
            };
            self.handover = Some(u64::from_be_bytes(seq));
        }
        Ok(())
    }

    /// Receives the next message into `buf` (kept queued if `buf` is too small).
    pub(crate) fn recv_into(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        let payload = self.next_message(mode)?;
        let len = self.payload(&payload).len();
        if len > buf.len() {
            match payload {
                // Opened in place already: it cannot be opened again, so keep the bytes.
                Payload::Rx(range) if self.curve.is_some() => {
                    self.plain.clear();
                    self.plain.extend_from_slice(&self.rx.bytes()[range]);
                    self.plain_ready = true;
                }
                Payload::Rx(_) => self.rx.keep(),
                Payload::Plain => {}
            }
            return Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            });
        }
        buf[..len].copy_from_slice(self.payload(&payload));
        self.delivered(&payload);
        Ok(len)
    }

    /// Receives the next message into a new `Vec`.
    pub(crate) fn recv_vec(&mut self, mode: Mode) -> Result<Vec<u8>> {
        let payload = self.next_message(mode)?;
        let out = self.payload(&payload).to_vec();
        self.delivered(&payload);
        Ok(out)
    }

    /// Flushes what is queued (for at most [`CLOSE_LINGER`]) and shuts the connection down:
    /// the peer reads everything we sent, then end of stream.
    pub(crate) fn close(&mut self) {
        self.close_within(CLOSE_LINGER);
    }

    /// [`close`](Self::close), flushing for at most `linger`.
    pub(crate) fn close_within(&mut self, linger: Duration) {
        if self.ended.is_none() {
            let _ = self.flush_down_to(0, Mode::timeout(linger));
            let _ = rustix::net::shutdown(self.sock.as_fd(), rustix::net::Shutdown::Write);
            // Unread bytes at close make the kernel send a reset, which can destroy what the
            // peer has not read yet: discard what already arrived (a bounded amount).
            let mut sink = [0u8; 4096];
            for _ in 0..64 {
                match rustix::net::recv(&self.sock, &mut sink, RecvFlags::DONTWAIT) {
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
