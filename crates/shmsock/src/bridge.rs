//! Bridge: republish everything a publisher sends through another publisher, on another
//! transport, e.g. a local `shm://` topic to `tcp://` subscribers on other machines.
//!
//! ```text
//!  source publisher        Bridge (one thread)                          destination
//!  shm:// tcp:// unix:// ──▶ Subscriber ──recv──▶ buffer ──send──▶ Publisher ──▶ its subscribers
//!                            (topics)                               (Overflow policy)
//! ```
//!
//! A bridge is an ordinary [`Subscriber`] of the source and an ordinary [`Publisher`] of
//! the destination, with one loop between them, built only on the public API. Local
//! subscribers of an `shm://` publisher keep shared-memory speed; remote ones reach the
//! bridge over ZeroMQ (`tcp://`), and pyzmq/libzmq SUB sockets are valid subscribers.
//!
//! What is forwarded, back-pressure and reconnection: see [`Bridge`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::options::Options;
use crate::pubsub::{Publisher, Subscriber};

/// The longest a [`Bridge::run`] goes without looking at its stop flag.
pub const BRIDGE_STOP_POLL: Duration = Duration::from_millis(100);
/// First wait before connecting to a source again ([`BridgeBuilder::reconnect`]).
pub const BRIDGE_RECONNECT_MIN: Duration = Duration::from_millis(10);
/// Longest wait between two attempts to connect to a source ([`BridgeBuilder::reconnect`]).
pub const BRIDGE_RECONNECT_MAX: Duration = Duration::from_secs(1);
/// How often a bridge waiting for destination subscribers counts them.
const SUBSCRIBER_POLL: Duration = Duration::from_millis(5);
/// First size of the forwarding buffer (it grows to the largest message seen).
const BUFFER_START_BYTES: usize = 64 * 1024;

/// What a bridge did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Messages received from the source (those matching the topics).
    pub received: u64,
    /// Messages sent to the destination.
    pub forwarded: u64,
    /// Bytes of the forwarded messages.
    pub forwarded_bytes: u64,
    /// Messages a `shm://` `DropOldest` source overwrote before the bridge read them.
    pub lost_upstream: u64,
    /// Messages skipped because the destination does not accept messages that large.
    pub too_large: u64,
    /// Connections to the source made after the first one.
    pub reconnects: u64,
}

/// Why [`Bridge::run`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeEnd {
    /// The stop flag was set.
    Stopped,
    /// The `shm://` source publisher closed cleanly (without [`BridgeBuilder::reconnect`]);
    /// everything it published was forwarded.
    SourceClosed,
    /// [`BridgeBuilder::max_messages`] messages were forwarded.
    Limit,
}

/// Configures a [`Bridge`]; [`Bridge::builder`] makes one.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct BridgeBuilder {
    source: String,
    destination: String,
    source_options: Options,
    destination_options: Options,
    topics: Vec<Vec<u8>>,
    reconnect: bool,
    connect_timeout: Duration,
    wait_subscribers: usize,
    max_messages: Option<u64>,
}

impl BridgeBuilder {
    /// Forwards only messages starting with `prefix` (call it once per prefix; by default
    /// every message). The source is subscribed to these prefixes, so a `tcp://` or
    /// `unix://` source publisher filters before sending.
    pub fn topic(mut self, prefix: impl Into<Vec<u8>>) -> Self {
        self.topics.push(prefix.into());
        self
    }

    /// Options of the subscriber to the source (wait strategy, `max_message_len`, allowed
    /// uids).
    pub fn source_options(mut self, options: Options) -> Self {
        self.source_options = options;
        self
    }

    /// Options of the destination publisher (ring capacity or per-subscriber queue,
    /// [`Overflow`](crate::Overflow) policy, wait strategy, allowed uids).
    pub fn destination_options(mut self, options: Options) -> Self {
        self.destination_options = options;
        self
    }

    /// Connects to the source again whenever it is missing: refused at the start, or a
    /// `shm://` publisher that closed, died or broke its shared memory (off by default).
    pub fn reconnect(mut self, on: bool) -> Self {
        self.reconnect = on;
        self
    }

    /// Without [`reconnect`](Self::reconnect): how long the first connection keeps
    /// retrying while no source publisher is bound (default: no retry).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Subscribes to the source only once the destination has this many subscribers, so
    /// that nothing is consumed before someone can receive it (default 0).
    pub fn wait_subscribers(mut self, count: usize) -> Self {
        self.wait_subscribers = count;
        self
    }

    /// Ends the run after forwarding this many messages ([`BridgeEnd::Limit`]).
    pub fn max_messages(mut self, count: u64) -> Self {
        self.max_messages = Some(count);
        self
    }

    /// Binds the destination publisher. The source is connected by [`Bridge::run`].
    pub fn build(self) -> Result<Bridge> {
        // Fail on a malformed source now rather than in `run`.
        let _: crate::endpoint::Endpoint = self.source.parse()?;
        let destination = Publisher::bind_with(&self.destination, self.destination_options)?;
        tracing::info!(source = %self.source, destination = %destination.endpoint(),
            "bridge bound");
        Ok(Bridge {
            source: self.source,
            source_options: self.source_options,
            topics: self.topics,
            reconnect: self.reconnect,
            connect_timeout: self.connect_timeout,
            wait_subscribers: self.wait_subscribers,
            max_messages: self.max_messages,
            upstream: None,
            connected_once: false,
            destination,
            buf: vec![0; BUFFER_START_BYTES],
            stats: BridgeStats::default(),
        })
    }
}

/// Subscribes to a source publisher and republishes every message through a destination
/// publisher: a [`Subscriber`] of the source and a [`Publisher`] of the destination with one
/// loop between them (one thread, one copy per message).
///
/// **What arrives.** Every message the source publishes while the bridge is subscribed and
/// whose topic matches [`BridgeBuilder::topic`] (all by default) is sent to the destination
/// once, in order, byte for byte; the destination then filters per subscriber as usual.
/// What is not forwarded, each counted in [`BridgeStats`]: what a `shm://` source overwrote
/// before the bridge read it (`Overflow::DropOldest` upstream: [`Error::Lagged`]); messages
/// larger than the destination accepts ([`Error::TooLarge`]; skipped with a warning);
/// what the source publishes while the bridge is not connected; and, when the bridge is
/// stopped while it waits for room downstream, the one message it holds.
///
/// **Back-pressure.** With the destination's default `Overflow::Block`, its slowest
/// subscriber holds the bridge back, and the bridge, like any subscriber of a `Block`
/// `shm://` publisher, holds the source back: nothing is lost end to end. With
/// `Overflow::DropOldest` on the destination ([`BridgeBuilder::destination_options`]) the
/// bridge never waits for its subscribers.
///
/// **When the source goes away.** A `tcp://`/`unix://` source is a ZeroMQ SUB socket that
/// reconnects by itself (see [`Subscriber`]): the bridge waits for the publisher to come
/// back. A `shm://` source that closes ends the run with [`BridgeEnd::SourceClosed`], one
/// that dies with [`Error::PeerGone`], after everything it had published was forwarded;
/// with [`BridgeBuilder::reconnect`] the bridge instead connects again, retrying with
/// exponential backoff ([`BRIDGE_RECONNECT_MIN`] doubling to [`BRIDGE_RECONNECT_MAX`]) for
/// as long as it runs. `Conn` (PAIR) endpoints are not bridged.
///
/// # Examples
/// A local `shm://` topic republished on `tcp://` (a thread stands in for the bridge
/// process; `shmsock bridge SRC DST` is the same from the shell):
/// ```
/// use std::sync::atomic::AtomicBool;
/// use std::sync::Arc;
/// use shmsock::{Bridge, BridgeEnd, Publisher, Subscriber};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// let mut prices = Publisher::bind("shm://doc-bridge-prices")?;
/// let mut bridge = Bridge::builder("shm://doc-bridge-prices", "tcp://127.0.0.1:0")
///     .topic("AAPL")
///     .wait_subscribers(1)
///     .build()?;
/// let remote = bridge.destination().to_owned(); // tcp://127.0.0.1:<the port chosen>
/// let stop = Arc::new(AtomicBool::new(false)); // e.g. set by SIGINT
/// let running = std::thread::spawn(move || (bridge.run(&stop), bridge.stats()));
///
/// let mut subscriber = Subscriber::connect(&remote)?; // on another machine, or pyzmq
/// while prices.subscriber_count() < 1 {
///     std::thread::sleep(std::time::Duration::from_millis(1)); // the bridge subscribes
/// }
/// prices.send(b"MSFT 410.2")?;
/// prices.send(b"AAPL 187.3")?;
/// assert_eq!(subscriber.recv_vec()?, b"AAPL 187.3");
/// drop(prices); // the source closes: the bridge forwards what is left, then returns
/// let (end, stats) = running.join().unwrap();
/// assert_eq!(end?, BridgeEnd::SourceClosed);
/// assert_eq!((stats.received, stats.forwarded), (1, 1));
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Bridge {
    source: String,
    source_options: Options,
    topics: Vec<Vec<u8>>,
    reconnect: bool,
    connect_timeout: Duration,
    wait_subscribers: usize,
    max_messages: Option<u64>,
    /// `None` until the first connection, and while reconnecting.
    upstream: Option<Subscriber>,
    connected_once: bool,
    destination: Publisher,
    buf: Vec<u8>,
    stats: BridgeStats,
}

impl Bridge {
    /// A bridge from the publisher at `source` to a publisher bound at `destination`,
    /// with default options: every topic, `Overflow::Block`, no reconnection.
    pub fn builder(source: &str, destination: &str) -> BridgeBuilder {
        BridgeBuilder {
            source: source.to_owned(),
            destination: destination.to_owned(),
            source_options: Options::default(),
            destination_options: Options::default(),
            topics: Vec::new(),
            reconnect: false,
            connect_timeout: Duration::ZERO,
            wait_subscribers: 0,
            max_messages: None,
        }
    }

    /// The source endpoint.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The endpoint the destination publisher is bound to (for `tcp://…:0`, with the port
    /// the OS chose).
    pub fn destination(&self) -> &str {
        self.destination.endpoint()
    }

    /// Subscribers of the destination (see [`Publisher::subscriber_count`]).
    pub fn subscriber_count(&mut self) -> usize {
        self.destination.subscriber_count()
    }

    /// What the bridge did so far.
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// Forwards until `stop` is set (checked at least every [`BRIDGE_STOP_POLL`]), the
    /// `shm://` source closes, [`BridgeBuilder::max_messages`] is reached, or an error.
    ///
    /// Connects to the source first (after [`BridgeBuilder::wait_subscribers`]
    /// subscribers joined the destination); a source that refuses is
    /// [`Error::ConnectionRefused`] after [`BridgeBuilder::connect_timeout`], unless
    /// [`BridgeBuilder::reconnect`]. A dead `shm://` source is [`Error::PeerGone`] (after
    /// its messages), unless `reconnect`. Destination errors other than
    /// [`Error::TooLarge`] end the run. The bridge can be run again after it returned.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<BridgeEnd> {
        // Relaxed: the flag carries no data; it only has to be seen eventually.
        let stopped = || stop.load(Ordering::Relaxed);
        if !self.connected_once && !self.wait_for_subscribers(stopped) {
            return Ok(BridgeEnd::Stopped);
        }
        loop {
            if stopped() {
                return Ok(BridgeEnd::Stopped);
            }
            if self
                .max_messages
                .is_some_and(|max| self.stats.forwarded >= max)
            {
                return Ok(BridgeEnd::Limit);
            }
            let Some(upstream) = self.upstream.as_mut() else {
                if !self.connect(stopped)? {
                    return Ok(BridgeEnd::Stopped);
                }
                continue;
            };
            // `try_recv` first: a busy bridge never reads the clock for a deadline.
            let got = match upstream.try_recv(&mut self.buf) {
                Err(Error::WouldBlock) => upstream.recv_timeout(&mut self.buf, BRIDGE_STOP_POLL),
                other => other,
            };
            match got {
                Ok(n) => {
                    self.stats.received += 1;
                    self.forward(n, stopped)?;
                }
                Err(Error::TimedOut | Error::WouldBlock) => {}
                Err(Error::BufferTooSmall { len, .. }) => self.buf.resize(len, 0),
                Err(Error::Lagged { missed, .. }) => {
                    self.stats.lost_upstream += missed;
                    tracing::warn!(source = %self.source, missed,
                        "bridge lagged behind its source: messages lost");
                }
                // A tcp:// or unix:// source: the subscriber reconnects at the next call.
                Err(e @ Error::Protocol { .. }) => {
                    tracing::warn!(source = %self.source, error = %e, "source broke the protocol");
                }
                Err(e) if e.is_disconnect() || matches!(e, Error::Corrupt { .. }) => {
                    self.upstream = None;
                    tracing::info!(source = %self.source, error = %e, reconnect = self.reconnect,
                        "bridge source ended");
                    if !self.reconnect {
                        return match e {
                            Error::PeerClosed { .. } => Ok(BridgeEnd::SourceClosed),
                            e => Err(e),
                        };
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `buf[..n]` downstream, waiting for room in slices of [`BRIDGE_STOP_POLL`].
    fn forward(&mut self, n: usize, stopped: impl Fn() -> bool) -> Result<()> {
        let msg = &self.buf[..n];
        loop {
            match self.destination.send_timeout(msg, BRIDGE_STOP_POLL) {
                Ok(()) => {
                    self.stats.forwarded += 1;
                    self.stats.forwarded_bytes += n as u64;
                    return Ok(());
                }
                // `Block`: a send that timed out sent nothing; try again unless stopping.
                Err(Error::SlowSubscriber { .. }) if !stopped() => {}
                Err(Error::SlowSubscriber { .. }) => return Ok(()),
                Err(Error::TooLarge { len, max }) => {
                    self.stats.too_large += 1;
                    tracing::warn!(destination = %self.destination.endpoint(), len, max,
                        "message too large for the bridge's destination: skipped");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the destination has the subscribers asked for; false if stopped first.
    fn wait_for_subscribers(&mut self, stopped: impl Fn() -> bool) -> bool {
        while self.destination.subscriber_count() < self.wait_subscribers {
            if stopped() {
                return false;
            }
            std::thread::sleep(SUBSCRIBER_POLL);
        }
        true
    }

    /// Connects (or reconnects) to the source, retrying as configured; false if stopped
    /// first.
    fn connect(&mut self, stopped: impl Fn() -> bool) -> Result<bool> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut backoff = BRIDGE_RECONNECT_MIN;
        loop {
            if stopped() {
                return Ok(false);
            }
            match self.subscribe() {
                Ok(sub) => {
                    if self.connected_once {
                        self.stats.reconnects += 1;
                        tracing::info!(source = %self.source, "bridge reconnected to its source");
                    } else {
                        tracing::info!(source = %self.source, "bridge connected to its source");
                    }
                    self.connected_once = true;
                    self.upstream = Some(sub);
                    return Ok(true);
                }
                Err(e) if self.retries(&e, deadline) => {
                    tracing::debug!(source = %self.source, error = %e, ?backoff,
                        "source not there; retrying");
                }
                Err(e) => return Err(e),
            }
            // Sleep `backoff` in slices, so a stop is seen within BRIDGE_STOP_POLL.
            let wake = Instant::now() + backoff;
            while let Some(left) = wake.checked_duration_since(Instant::now()) {
                if stopped() || left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(BRIDGE_STOP_POLL));
            }
            backoff = (backoff * 2).min(BRIDGE_RECONNECT_MAX);
        }
    }

    /// Whether a failed connection attempt is worth another.
    fn retries(&self, e: &Error, deadline: Instant) -> bool {
        match e {
            Error::ConnectionRefused { .. } => self.reconnect || Instant::now() < deadline,
            // A publisher closing with us in its backlog, or replaced while we knocked.
            Error::Handshake { .. } | Error::PeerClosed { .. } | Error::PeerGone { .. } => {
                self.reconnect
            }
            _ => false,
        }
    }

    fn subscribe(&self) -> Result<Subscriber> {
        let mut sub = Subscriber::connect_with(&self.source, self.source_options.clone())?;
        if !self.topics.is_empty() {
            for prefix in &self.topics {
                sub.subscribe(prefix)?;
            }
            sub.unsubscribe(b"")?;
        }
        Ok(sub)
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("source", &self.source)
            .field("destination", &self.destination())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
