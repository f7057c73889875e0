//! The ZMTP handshake of a new connection, as a state machine that never waits: greetings
//! both ways (naming the security mechanism, NULL or CURVE), then the mechanism's commands:
//! with NULL one READY each way; with CURVE (RFC 26 CurveZMQ) HELLO, WELCOME, INITIATE and
//! READY, after which every frame travels sealed. Either way the peer's `Socket-Type` must
//! pair with ours (RFC 23's table: PAIR with PAIR, PUB with SUB/XSUB, SUB with PUB/XPUB).
//! Everything that goes wrong is [`Error::Handshake`]; a CURVE server tells the client why
//! with an ERROR command first (`"400"` for a key not on its allow-list, as libzmq does).
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
use super::super::config::{Curve, Heartbeat, NetConfig};
use super::super::curve::client::CurveClient;
use super::super::curve::keys::CurveKeyPair;
use super::super::curve::server::CurveServer;
use super::super::curve::session::MESSAGE_OVERHEAD;
use super::super::curve::CurveError;
use super::super::inbound::Item;
use super::super::zmtp::{self, Mechanism, SocketType};
use super::NetConn;
use crate::error::{Error, Result};
use crate::handover::{Offer, OFFER_PROPERTY};
use crate::sys::timespec;

/// Where a handshake stands.
enum Step {
    /// Waiting for the peer's greeting (ours is queued).
    Greeting,
    /// NULL: waiting for the peer's READY (ours is queued).
    Ready,
    /// CURVE client: HELLO sent, waiting for WELCOME.
    Welcome(Box<CurveClient>),
    /// CURVE client: INITIATE sent, waiting for READY.
    CurveReady(Box<CurveClient>),
    /// CURVE server: waiting for HELLO.
    Hello(Box<CurveServer>),
    /// CURVE server: WELCOME sent, waiting for INITIATE.
    Initiate(Box<CurveServer>),
    /// Finished: the connection carries messages.
    Done,
}

/// A connection whose ZMTP handshake is under way.
pub(crate) struct Handshake {
    conn: NetConn,
    step: Step,
    deadline: Instant,
    max_len: usize,
    curve: Option<Curve>,
    heartbeat: Option<Heartbeat>,
    /// Our metadata (READY properties): `Socket-Type`, and a publisher's offer.
    metadata: Vec<u8>,
}

impl Handshake {
    /// Starts the handshake on a connected socket: our greeting is queued (written by the
    /// first [`advance`](Self::advance)). It must finish by `deadline`.
    pub(crate) fn start(
        endpoint: String,
        sock: OwnedFd,
        peer_pid: i32,
        socket_type: SocketType,
        deadline: Instant,
        slot: Option<Slot>,
        config: &NetConfig,
    ) -> Handshake {
        let (max_len, curve) = (config.max_message_len, config.curve.clone());
        let mut conn = NetConn::new(endpoint, sock, peer_pid, socket_type, slot);
        let mut metadata = zmtp::socket_type_metadata(socket_type.name());
        if let (SocketType::Pub, Some(offering)) = (socket_type, &config.offering) {
            // A subscriber on this host may read our ring instead: offer it, with a token
            // of its own (ZeroMQ peers ignore the property).
            if let (Some(peer), Some(name)) = (conn.peer_end(), offering.name.get()) {
                let ticket = offering.book.issue(peer);
                let offer = Offer {
                    name: name.clone(),
                    token: ticket.token(),
                };
                zmtp::push_property(&mut metadata, OFFER_PROPERTY, &offer.encode());
                conn.ticket = Some(ticket);
            }
        }
        let (mechanism, as_server) = Self::mechanism_of(curve.as_ref());
        conn.queue_raw(&zmtp::greeting(mechanism, as_server));
        Handshake {
            conn,
            step: Step::Greeting,
            deadline,
            max_len,
            curve,
            heartbeat: config.heartbeat,
            metadata,
        }
    }

    /// Our mechanism, and whether we are its server.
    fn mechanism_of(curve: Option<&Curve>) -> (Mechanism, bool) {
        match curve {
            None => (Mechanism::Null, false),
            Some(c) => (Mechanism::Curve, !c.is_client()),
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
                _ => self.on_command()?,
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

    /// Checks the peer's greeting if it is all there, and starts the mechanism: queues our
    /// READY (NULL) or HELLO (CURVE client).
    fn on_greeting(&mut self) -> Result<bool> {
        let (mechanism, as_server) = Self::mechanism_of(self.curve.as_ref());
        let Some(g) = self.conn.rx.take_raw(zmtp::GREETING_LEN) else {
            return Ok(false);
        };
        let peer = zmtp::check_greeting(g, mechanism, as_server).map_err(|r| self.error(&r))?;
        self.conn.peer_minor = peer.minor;
        let metadata = std::mem::take(&mut self.metadata);
        self.step =
            match self.curve.clone() {
                None => {
                    self.conn
                        .queue_frame(&zmtp::ready_with(&metadata), false, true);
                    Step::Ready
                }
                Some(curve) => match (curve.server, curve.keys) {
                    (Some(server), keys) => {
                        // A client without a key pair of its own gets a fresh one.
                        let keys = keys.unwrap_or_else(|| CurveKeyPair::generate().into());
                        let mut client = CurveClient::new(&keys, server, &metadata)
                            .map_err(|e| self.curve_error(e))?;
                        let hello = client.hello();
                        self.conn.queue_frame(&hello, false, true);
                        Step::Welcome(Box::new(client))
                    }
                    (None, Some(keys)) => {
                        Step::Hello(Box::new(CurveServer::new(&keys, curve.allow, &metadata)))
                    }
                    (None, None) => return Err(self.error(
                        "a CURVE server needs its key pair (Options::curve_secret, --curve-secret)",
                    )),
                },
            };
        self.conn.flush_some().map_err(|e| self.io_error(e))?;
        Ok(true)
    }

    /// Takes the next command of the mechanism if it is all there, and answers it.
    fn on_command(&mut self) -> Result<bool> {
        let body = match self.conn.rx.next() {
            Err(what) => return Err(self.error(&what)),
            Ok(None) => return Ok(false),
            Ok(Some(Item::Message { .. })) => {
                return Err(self.error("the peer sent a message before the handshake completed"))
            }
            Ok(Some(Item::Command { body })) => self.conn.rx.bytes()[body].to_vec(),
        };
        let (name, data) = zmtp::split_command(&body).map_err(|r| self.error(&r))?;
        if name == b"ERROR" {
            let reason = zmtp::error_reason(data);
            let hint = if reason == "400" {
                " (our CURVE key is not on the server's allow-list)"
            } else {
                ""
            };
            let during = if self.curve.is_some() {
                " during the CURVE handshake"
            } else {
                ""
            };
            return Err(self.error(&format!("the peer refused us{during}: {reason:?}{hint}")));
        }
        self.step = match std::mem::replace(&mut self.step, Step::Done) {
            Step::Ready => {
                if name != b"READY" {
                    let name = String::from_utf8_lossy(name);
                    return Err(self.error(&format!("expected READY, got command {name:?}")));
                }
                self.check_socket_type(data)?;
                self.finish(None);
                Step::Done
            }
            Step::Welcome(mut client) => {
                let initiate = client.on_welcome(&body).map_err(|e| self.curve_error(e))?;
                self.conn.queue_frame(&initiate, false, true);
                Step::CurveReady(client)
            }
            Step::CurveReady(mut client) => {
                let (session, metadata) =
                    client.on_ready(&body).map_err(|e| self.curve_error(e))?;
                self.check_socket_type(&metadata)?;
                self.finish(Some(session));
                Step::Done
            }
            Step::Hello(mut server) => {
                let welcome = server.on_hello(&body).map_err(|e| self.curve_error(e))?;
                self.conn.queue_frame(&welcome, false, true);
                Step::Initiate(server)
            }
            Step::Initiate(mut server) => {
                let accepted = server.on_initiate(&body).map_err(|e| self.curve_error(e))?;
                self.check_socket_type(&accepted.metadata)?;
                tracing::debug!(endpoint = %self.conn.endpoint, client_key = %accepted.client,
                    "CURVE client admitted");
                self.conn.queue_frame(&accepted.ready, false, true);
                self.finish(Some(accepted.session));
                Step::Done
            }
            Step::Greeting | Step::Done => unreachable!("on_command runs between the two"),
        };
        self.conn.flush_some().map_err(|e| self.io_error(e))?;
        Ok(true)
    }

    /// The error for a failed CURVE step; a server first queues the ERROR command that
    /// tells the client why (written before the connection closes, as far as the socket
    /// takes it now).
    fn curve_error(&mut self, e: CurveError) -> Error {
        if let (Some(body), Some(curve)) = (e.error_body(), &self.curve) {
            if !curve.is_client() {
                self.conn.queue_frame(&body, false, true);
                let _ = self.conn.flush_some();
            }
        }
        self.error(&format!("CURVE: {e}"))
    }

    /// Checks the peer's `Socket-Type` (in READY, or in CURVE's INITIATE/READY metadata);
    /// a subscriber also keeps the publisher's offer of its ring, if it made one.
    fn check_socket_type(&mut self, properties: &[u8]) -> Result<()> {
        let socket_type = self.conn.socket_type;
        if socket_type == SocketType::Sub {
            let offer = zmtp::property(properties, OFFER_PROPERTY).map_err(|r| self.error(&r))?;
            self.conn.offer = offer.and_then(Offer::decode);
        }
        match zmtp::property(properties, "Socket-Type").map_err(|r| self.error(&r))? {
            Some(t) if socket_type.accepts(t) => Ok(()),
            Some(t) => {
                let ours = match socket_type {
                    SocketType::Pair => "Conn",
                    SocketType::Pub => "Publisher",
                    SocketType::Sub => "Subscriber",
                };
                Err(self.error(&format!(
                    "the peer is a ZeroMQ {} socket; {ours} speaks {} and only pairs with {}",
                    String::from_utf8_lossy(t),
                    socket_type.name(),
                    socket_type.peers().join(" or ")
                )))
            }
            None => Err(self.error("the peer's READY has no Socket-Type")),
        }
    }

    /// The handshake is done: messages may be as long as configured, sealed under CURVE,
    /// with heartbeats if configured.
    fn finish(&mut self, session: Option<super::super::curve::session::CurveSession>) {
        self.conn.max_len = self.max_len;
        self.conn.set_heartbeat(self.heartbeat);
        let curve = session.is_some();
        self.conn.curve = session;
        self.conn.rx.set_frames_only(curve);
        let wire_max = if curve {
            self.max_len.saturating_add(MESSAGE_OVERHEAD)
        } else {
            self.max_len
        };
        self.conn.rx.set_max_len(wire_max);
    }

    /// The connection, once [`advance`](Self::advance) said the handshake is complete.
    pub(crate) fn into_conn(self) -> NetConn {
        debug_assert!(matches!(self.step, Step::Done));
        self.conn
    }
}

impl NetConn {
    /// Runs the ZMTP handshake (greeting, then the mechanism's commands, `Socket-Type`
    /// included) on a connected socket, waiting for the peer for at most `timeout` in all;
    /// the peer must announce a type that pairs with ours.
    pub(crate) fn handshake(
        endpoint: String,
        sock: OwnedFd,
        peer_pid: i32,
        config: &NetConfig,
        timeout: Duration,
        socket_type: SocketType,
    ) -> Result<NetConn> {
        let deadline = Instant::now() + timeout;
        let mut hs = Handshake::start(
            endpoint,
            sock,
            peer_pid,
            socket_type,
            deadline,
            None,
            config,
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
