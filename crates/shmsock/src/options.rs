//! Connection options (a small builder).

use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::net::config::NetConfig;
use crate::net::config::{
    Curve, Heartbeat, NET_CONNECTIONS_MAX_DEFAULT, NET_MESSAGE_MAX_DEFAULT_BYTES,
};
use crate::net::curve::keys::{CurveKeyPair, CurvePublicKey};
use crate::shm::config::ShmConfig;
use crate::shm::ring::{RING_CAPACITY_MAX_BYTES, RING_CAPACITY_MIN_BYTES};
use crate::shm::segment::LOAN_SLOTS_MAX;
use crate::vocabulary::{
    Overflow, PeerPolicy, WaitStrategy, HANDSHAKE_TIMEOUT, SPIN_BUDGET_DEFAULT,
};

/// Default ring capacity of each direction, in bytes.
pub const RING_CAPACITY_DEFAULT_BYTES: usize = 1 << 20;

/// Options for [`Listener::bind_with`](crate::Listener::bind_with) and
/// [`Conn::connect_with`](crate::Conn::connect_with).
///
/// # Examples
/// ```
/// use shmsock::{Options, WaitStrategy};
/// let opts = Options::new()
///     .ring_capacity(256 * 1024)
///     .wait_strategy(WaitStrategy::BusyPoll);
/// assert_eq!(opts.get_ring_capacity(), 256 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) ring_capacity: usize,
    pub(crate) wait: WaitStrategy,
    pub(crate) spin_budget: Duration,
    pub(crate) peers: PeerPolicy,
    pub(crate) overflow: Overflow,
    pub(crate) max_message_len: usize,
    pub(crate) loan_pool: Option<(usize, usize)>,
    pub(crate) max_connections: usize,
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) curve: Option<Curve>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) upgrade: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ring_capacity: RING_CAPACITY_DEFAULT_BYTES,
            wait: WaitStrategy::default(),
            spin_budget: SPIN_BUDGET_DEFAULT,
            peers: PeerPolicy::default(),
            overflow: Overflow::default(),
            max_message_len: NET_MESSAGE_MAX_DEFAULT_BYTES,
            loan_pool: None,
            max_connections: NET_CONNECTIONS_MAX_DEFAULT,
            heartbeat: None,
            curve: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            upgrade: true,
        }
    }
}

impl Options {
    /// Defaults: 1 MiB ring, [`WaitStrategy::Adaptive`], same-uid peers only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives this side a pool of `slots` slots of `slot_bytes` bytes each, so that
    /// [`Conn::loan`](crate::Conn::loan) can lend them zero-copy (over `shm://`; other
    /// transports copy). `slots` is clamped to 1..=[`LOAN_SLOTS_MAX`](crate::LOAN_SLOTS_MAX),
    /// `slot_bytes` rounded up to a multiple of 64; the pool is one sealed memfd of
    /// `slots * slot_bytes` bytes (plus a 4 KiB header), created per connection. No pool by
    /// default.
    pub fn loan_pool(mut self, slots: usize, slot_bytes: usize) -> Self {
        let slots = slots.clamp(1, LOAN_SLOTS_MAX);
        let slot_bytes = slot_bytes.max(1).next_multiple_of(64);
        self.loan_pool = Some((slots, slot_bytes));
        self
    }

    /// The loan pool shape (slots, bytes per slot), if any.
    pub fn get_loan_pool(&self) -> Option<(usize, usize)> {
        self.loan_pool
    }

    /// Capacity in bytes of the ring this side sends into (rounded up to a power of two,
    /// at least 4 KiB, at most 1 GiB). The largest message is the capacity minus 128 bytes.
    ///
    /// A side that sleeps while it waits ([`WaitStrategy::Blocking`], or `Adaptive` past its
    /// spin budget) needs a ring that holds several wake-ups' worth of messages: a 1 MiB
    /// stream between two `Blocking` sides ran at 0.7x the memcpy limit over a 4 MiB ring
    /// (three messages: each side often found it empty or full and slept) and at 0.95x over
    /// 8 MiB. Give large messages a ring of about eight.
    pub fn ring_capacity(mut self, bytes: usize) -> Self {
        self.ring_capacity = bytes
            .clamp(RING_CAPACITY_MIN_BYTES, RING_CAPACITY_MAX_BYTES)
            .next_power_of_two();
        self
    }

    /// The ring capacity that will be used.
    pub fn get_ring_capacity(&self) -> usize {
        self.ring_capacity
    }

    /// How blocking calls wait (default [`WaitStrategy::Adaptive`]).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// How long an [`WaitStrategy::Adaptive`] waiter spins before sleeping
    /// (default [`SPIN_BUDGET_DEFAULT`]). It also caps the spin of a
    /// [`WaitStrategy::Blocking`] receiver of large messages, which spins as long as its last
    /// copy took.
    pub fn spin_budget(mut self, budget: Duration) -> Self {
        self.spin_budget = budget;
        self
    }

    /// What a [`Publisher`](crate::Publisher) does when a subscriber is a full ring behind
    /// (default [`Overflow::Block`]). Ignored by `Conn`.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Whether `tcp://` and `unix://` publish/subscribe moves to shared memory by itself
    /// when publisher and subscriber run on the same machine (default: on).
    ///
    /// A [`Publisher`](crate::Publisher) bound to a network endpoint also writes an
    /// `shm://` ring (`upgrade.<pid>.<n>…` in `shmsock ls`; nothing is written to it while
    /// nobody reads it) and offers it in each subscriber's ZMTP handshake, as metadata
    /// that ZeroMQ peers ignore. A [`Subscriber`](crate::Subscriber) of ours takes the
    /// offer only after proving, through `SO_PEERCRED` and `/proc`, that the process
    /// behind the ring holds the other end of its connection (so never across machines or
    /// network namespaces); the publisher proves the same of the subscriber, and the
    /// ring admits only uids [`Options::allow_uid`] allows, as any `shm://` endpoint. Under
    /// CURVE the offer travels encrypted, so only the authenticated peer can take it.
    /// Messages keep their order across the switch, with none lost or repeated.
    ///
    /// Turn it off on either side to keep every message on the network (e.g. to capture
    /// it). With it on, a network publisher's largest message is also bounded by its
    /// ring ([`Options::ring_capacity`]).
    pub fn upgrade(mut self, on: bool) -> Self {
        self.upgrade = on;
        self
    }

    /// Whether [`Options::upgrade`] is on.
    pub fn get_upgrade(&self) -> bool {
        self.upgrade
    }

    /// Most connections one `tcp://`/`unix://` [`Listener`](crate::Listener) or
    /// [`Publisher`](crate::Publisher) holds at once, handshakes under way included
    /// (default [`NET_CONNECTIONS_MAX_DEFAULT`](crate::NET_CONNECTIONS_MAX_DEFAULT), 1024;
    /// at least 1). Newcomers beyond it are accepted and closed at once, with a warning in
    /// the log. Ignored by `shm://`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// ZMTP 3.1 heartbeats on `tcp://` and `unix://` connections (ZeroMQ's
    /// `ZMQ_HEARTBEAT_IVL` and `ZMQ_HEARTBEAT_TIMEOUT`): after `interval` without hearing from
    /// the peer we send it a PING (any peer since libzmq 4.2 answers with a PONG), and after
    /// `timeout` without hearing anything the peer is gone: `recv` and `send` report
    /// [`Error::PeerGone`](crate::Error::PeerGone) (a `Subscriber` reconnects; a `Publisher`
    /// drops that subscriber). This finds a peer that vanished without closing (a machine
    /// that lost power, a cable cut, a stopped process), which TCP alone reports only after
    /// many minutes, if ever. Checked while a call waits (and at each `try_` call), not in the
    /// background: a `Conn` that is not being used notices at its next call. Off by default;
    /// `timeout` is at least `interval`. Ignored by `shm://`, which checks its peer's pid.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        self.heartbeat = Some(Heartbeat {
            interval,
            timeout: timeout.max(interval),
        });
        self
    }

    /// The heartbeat interval and timeout, if set.
    pub fn get_heartbeat(&self) -> Option<(Duration, Duration)> {
        self.heartbeat.map(|h| (h.interval, h.timeout))
    }

    /// CURVE security (ZeroMQ's `ZMQ_CURVE_SECRETKEY`/`ZMQ_CURVE_PUBLICKEY`): this side's
    /// long-term key pair. On a bound side (a [`Listener`](crate::Listener) or
    /// [`Publisher`](crate::Publisher)) it makes the endpoint a CURVE server: every peer
    /// must complete the CurveZMQ handshake (RFC 26) against this key, NULL peers are
    /// refused, and every message either way is encrypted and authenticated. On a
    /// connecting side it is the client's identity, which the server's
    /// [`curve_allow`](Self::curve_allow) list checks. Interoperates with libzmq and pyzmq
    /// (`zmq.CURVE_SERVER`...). Keys come from [`CurveKeyPair::generate`] or certificate
    /// files ([`CurveKeyPair::load`], `shmsock keygen`). Ignored by `shm://`.
    pub fn curve_secret(mut self, keys: CurveKeyPair) -> Self {
        self.curve.get_or_insert_with(Curve::default).keys = Some(std::sync::Arc::new(keys));
        self
    }

    /// CURVE client side (ZeroMQ's `ZMQ_CURVE_SERVERKEY`): the public key of the server to
    /// connect to. The connection is refused unless the server proves it holds the matching
    /// secret key. Without [`curve_secret`](Self::curve_secret) the client uses a fresh key
    /// pair per connection (fine for servers without an allow-list). Ignored by `shm://`.
    pub fn curve_server(mut self, server: CurvePublicKey) -> Self {
        self.curve.get_or_insert_with(Curve::default).server = Some(server);
        self
    }

    /// CURVE server side: admit only clients whose long-term public key is in `clients`
    /// (as pyzmq's `zmq.auth` allow-lists do; [`CurvePublicKey::load_dir`] reads a directory
    /// of `.key` certificates). Others are refused during the handshake with ZeroMQ's
    /// `ERROR "400"`, and the refusal is logged. Without it, any client that completes the
    /// CURVE handshake is admitted. Ignored by `shm://`.
    pub fn curve_allow(mut self, clients: impl IntoIterator<Item = CurvePublicKey>) -> Self {
        let allow = self
            .curve
            .get_or_insert_with(Curve::default)
            .allow
            .get_or_insert_with(Default::default);
        std::sync::Arc::make_mut(allow).extend(clients);
        self
    }

    /// Whether CURVE is configured (any of the three `curve_*` settings).
    pub fn is_curve(&self) -> bool {
        self.curve.is_some()
    }

    /// The most connections one `tcp://`/`unix://` listening socket holds.
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// Largest message a `tcp://` or `unix://` connection sends or accepts (default
    /// [`NET_MESSAGE_MAX_DEFAULT_BYTES`](crate::NET_MESSAGE_MAX_DEFAULT_BYTES), 64 MiB). A
    /// peer announcing a longer message is cut off with [`Error::Protocol`](crate::Error::Protocol)
    /// before any memory is set aside for it: buffers grow only as bytes arrive. Ignored by `shm://`, where the ring capacity
    /// decides.
    pub fn max_message_len(mut self, bytes: usize) -> Self {
        self.max_message_len = bytes;
        self
    }

    /// How long a whole connection handshake may take, on every transport (default
    /// [`HANDSHAKE_TIMEOUT`](crate::HANDSHAKE_TIMEOUT), 5 s; at least 1 ms). One deadline
    /// covers the whole exchange, however the peer splits it: a listening socket drops a
    /// peer that has not completed its handshake by then (logged, never an error of
    /// `accept`), and a connecting side gives up with [`Error::Io`](crate::Error::Io)
    /// (`TimedOut`). A listening socket runs many handshakes at once, so a slow peer delays
    /// nobody else.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a whole connection handshake may take.
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Admits peers running as `uid`. By default only our own effective uid is admitted;
    /// once any uid is added, exactly the listed uids are (add your own too if needed).
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.peers.allow(uid);
        self
    }

    /// Opens `endpoint` on its transport: `shm` with the `shm://` name (and the endpoint as
    /// text) and the settings of [`Options::shm_config`], or `net` with the parsed `tcp://`
    /// or `unix://` endpoint and the settings of [`Options::net_config`].
    pub(crate) fn open<T>(
        &self,
        endpoint: &str,
        shm: impl FnOnce(String, &str, ShmConfig) -> Result<T>,
        net: impl FnOnce(Endpoint, NetConfig) -> Result<T>,
    ) -> Result<T> {
        let ep: Endpoint = endpoint.parse()?;
        match ep {
            Endpoint::Shm(ref name) => shm(ep.to_string(), name, self.shm_config()),
            ep => net(ep, self.net_config()),
        }
    }

    /// The settings the `shm://` transport takes.
    pub(crate) fn shm_config(&self) -> ShmConfig {
        ShmConfig {
            ring_capacity: self.ring_capacity,
            wait: self.wait,
            spin_budget: self.spin_budget,
            peers: self.peers.clone(),
            overflow: self.overflow,
            loan_pool: self.loan_pool,
            handshake_timeout: self.handshake_timeout,
            take_over: None,
        }
    }

    /// The settings the `tcp://` and `unix://` transport takes.
    pub(crate) fn net_config(&self) -> NetConfig {
        NetConfig {
            peers: self.peers.clone(),
            max_message_len: self.max_message_len,
            overflow: self.overflow,
            queue_max_bytes: self.ring_capacity,
            max_connections: self.max_connections,
            heartbeat: self.heartbeat,
            curve: self.curve.clone(),
            handshake_timeout: self.handshake_timeout,
            offering: None,
        }
    }
}
