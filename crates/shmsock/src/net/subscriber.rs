//! `tcp://` and `unix://` subscriber: a ZeroMQ SUB socket that reconnects.
//!
//! The first connection is made by `connect` (no publisher: [`Error::ConnectionRefused`],
//! at once). After that, when the publisher's connection ends (it closed, died or
//! restarted), `recv` reconnects by itself, as a ZeroMQ SUB does: immediately, then every
//! [`RECONNECT_INTERVAL`] while nobody listens, within the call's own deadline
//! (`try_recv`: [`Error::WouldBlock`], `recv_timeout`: [`Error::TimedOut`], `recv`: waits).
//! Every subscribed prefix is sent again on the new connection. What the publisher sent
//! while we were away is lost, as in ZeroMQ. A failed handshake while reconnecting is
//! retried too (with a `tracing` warning); other errors (e.g. `PermissionDenied`, I/O) are
//! returned, and the next call tries again. A publisher that sends garbage on an
//! established connection gives [`Error::Protocol`] once; the next call reconnects.
//!
//! Subscription changes are queued on the connection without waiting
//! ([`NetConn::queue_subscription`]): the next `recv` (or the drop) writes them.

use std::time::Instant;

use super::config::NetConfig;
use super::stream::NetConn;
use super::topics::Topics;
use super::zmtp::SocketType;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::handover::{Offer, PeerEnd};
use crate::vocabulary::Mode;

/// How long a subscriber waits between two attempts to reach a publisher that is gone
/// (ZeroMQ's default `ZMQ_RECONNECT_IVL`).
pub const RECONNECT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A connected (or reconnecting) `tcp://`/`unix://` subscriber.
pub(crate) struct NetSubscriber {
    ep: Endpoint,
    endpoint: String,
    options: NetConfig,
    /// `None` while the publisher is gone. Boxed: a connection's buffers and state would
    /// triple the size of every `Subscriber`, and a socket's costs dwarf the pointer.
    conn: Option<Box<NetConn>>,
    publisher_pid: i32,
    /// No reconnection attempt before this instant.
    next_attempt: Instant,
    closed: bool,
}

/// Sends every prefix of `topics` on a new connection.
fn send_topics(conn: &mut NetConn, topics: &Topics) -> Result<()> {
    for prefix in topics.prefixes() {
        conn.queue_subscription(true, prefix)?;
    }
    Ok(())
}

impl NetSubscriber {
    /// Connects to the publisher at `ep` and subscribes to `topics`.
    pub(crate) fn connect(ep: Endpoint, options: NetConfig, topics: &Topics) -> Result<Self> {
        let mut conn = super::socket::connect_as(&ep, &options, SocketType::Sub)?;
        send_topics(&mut conn, topics)?;
        let endpoint = ep.to_string();
        tracing::debug!(endpoint = %endpoint, peer_pid = conn.peer_pid(), role = "subscriber", "connected");
        Ok(NetSubscriber {
            ep,
            endpoint,
            options,
            publisher_pid: conn.peer_pid(),
            conn: Some(Box::new(conn)),
            next_attempt: Instant::now(),
            closed: false,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The publisher's pid (`unix://`, the last one connected to), 0 for `tcp://`.
    pub(crate) fn publisher_pid(&self) -> i32 {
        self.publisher_pid
    }

    pub(crate) fn max_message_len(&self) -> usize {
        self.options.max_message_len
    }

    /// Tells the publisher that `prefix` was subscribed (`subscribe`) or cancelled. While
    /// disconnected there is nothing to tell: the reconnection sends the whole set.
    pub(crate) fn update(&mut self, subscribe: bool, prefix: &[u8]) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        match conn.queue_subscription(subscribe, prefix) {
            Err(e) if e.is_disconnect() => {
                self.lost(&e);
                Ok(())
            }
            other => other,
        }
    }

    /// The publisher's offer of its shared-memory ring, made on the current connection, if
    /// it made one and it was not taken yet.
    pub(crate) fn take_offer(&mut self) -> Option<Offer> {
        self.conn.as_mut()?.take_offer()
    }

    /// Where the other end of the current connection is.
    pub(crate) fn peer_end(&self) -> Option<PeerEnd> {
        self.conn.as_ref()?.peer_end()
    }

    /// We presented the offer's token on the ring: a HANDOVER may come on this connection.
    pub(crate) fn expect_handover(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.expect_handover();
        }
    }

    /// The HANDOVER received on the current connection, if any (receives return
    /// `WouldBlock` once it came): the sequence number of the first message to read from
    /// the ring. The connection is closed then; the next receive here reconnects.
    pub(crate) fn take_handover(&mut self) -> Option<u64> {
        let seq = self.conn.as_mut()?.take_handover()?;
        if let Some(mut conn) = self.conn.take() {
            conn.close();
        }
        self.next_attempt = Instant::now();
        Some(seq)
    }

    /// The connection ended: reconnect at the next receive.
    fn lost(&mut self, e: &Error) {
        tracing::info!(endpoint = %self.endpoint, peer_pid = self.publisher_pid,
            end = if matches!(e, Error::PeerGone { .. }) { "gone" } else { "closed" },
            "publisher ended; reconnecting");
        self.conn = None;
    }

    /// Receives the next message into `buf`, reconnecting (with `topics`) if needed.
    pub(crate) fn recv(&mut self, buf: &mut [u8], mode: Mode, topics: &Topics) -> Result<usize> {
        loop {
            match self.recv_connected(buf, mode) {
                Err(Error::WouldBlock) if self.conn.is_none() && !self.closed => {
                    self.reconnect(mode, topics)?
                }
                other => return other,
            }
        }
    }

    /// Receives the next message on the current connection, as `mode` allows;
    /// [`Error::WouldBlock`] without a connection (it was lost, or is lost now): reconnect
    /// then.
    pub(crate) fn recv_connected(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        if self.closed {
            return Err(Error::Closed);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::WouldBlock);
        };
        match conn.recv_into(buf, mode) {
            Err(e) if e.is_disconnect() => {
                self.lost(&e);
                Err(Error::WouldBlock)
            }
            Err(e @ Error::Protocol { .. }) => {
                tracing::warn!(endpoint = %self.endpoint, peer_pid = self.publisher_pid,
                    error = %e, "publisher broke the protocol; connection closed");
                self.conn = None;
                self.next_attempt = Instant::now() + RECONNECT_INTERVAL;
                Err(e)
            }
            other => other,
        }
    }

    /// The current connection, if any (for a reactor to watch its socket).
    #[cfg(feature = "tokio")]
    pub(crate) fn conn(&self) -> Option<&NetConn> {
        self.conn.as_deref()
    }

    /// The earliest instant of the next reconnection attempt.
    #[cfg(feature = "tokio")]
    pub(crate) fn next_attempt(&self) -> Instant {
        self.next_attempt
    }

    /// What [`NetSubscriber::dial`] needs: the endpoint and the options.
    #[cfg(feature = "tokio")]
    pub(crate) fn dial_args(&self) -> (Endpoint, NetConfig) {
        (self.ep.clone(), self.options.clone())
    }

    /// One connection attempt (blocking: connect and ZMTP handshake), subscribing to
    /// `topics`. Pass the result to [`NetSubscriber::install`].
    pub(crate) fn dial(ep: &Endpoint, options: &NetConfig, topics: &Topics) -> Result<NetConn> {
        super::socket::connect_as(ep, options, SocketType::Sub)
            .and_then(|mut conn| send_topics(&mut conn, topics).map(|()| conn))
    }

    /// Takes the outcome of a [`NetSubscriber::dial`]: `Ok(true)` connected, `Ok(false)`
    /// nobody (or a closing publisher) answered: try again at [`NetSubscriber::next_attempt`].
    pub(crate) fn install(&mut self, attempt: Result<NetConn>) -> Result<bool> {
        self.next_attempt = Instant::now() + RECONNECT_INTERVAL;
        match attempt {
            Ok(conn) => {
                self.publisher_pid = conn.peer_pid();
                tracing::info!(endpoint = %self.endpoint, peer_pid = self.publisher_pid, "reconnected");
                self.conn = Some(Box::new(conn));
                Ok(true)
            }
            // Accepted by a publisher that was closing: try again later.
            Err(e) if e.is_disconnect() => Ok(false),
            // A handshake that fails (a publisher closing with us in its backlog, or
            // something else now bound there) is retried like a refusal, as ZeroMQ does;
            // the warning says why nothing arrives.
            Err(e @ Error::Handshake { .. }) => {
                tracing::warn!(endpoint = %self.endpoint, error = %e, "reconnection failed; retrying");
                Ok(false)
            }
            Err(Error::ConnectionRefused { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Connects again, waiting between attempts as `mode` allows.
    fn reconnect(&mut self, mode: Mode, topics: &Topics) -> Result<()> {
        loop {
            let now = Instant::now();
            if now < self.next_attempt {
                match mode {
                    Mode::Try => return Err(Error::WouldBlock),
                    Mode::Until(deadline) if deadline < self.next_attempt => {
                        std::thread::sleep(deadline.saturating_duration_since(now));
                        return Err(Error::TimedOut);
                    }
                    _ => std::thread::sleep(self.next_attempt - now),
                }
            }
            let attempt = Self::dial(&self.ep, &self.options, topics);
            if self.install(attempt)? {
                return Ok(());
            }
            if matches!(mode, Mode::Try) {
                return Err(Error::WouldBlock);
            }
        }
    }

    /// Closes the connection (queued subscription changes are flushed first, briefly).
    pub(crate) fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close();
        }
        self.closed = true;
    }
}
