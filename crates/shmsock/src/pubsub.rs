//! Publish/subscribe: one [`Publisher`], any number of [`Subscriber`]s, every subscriber
//! receives every message it subscribed to (or learns exactly how many it lost).
//!
//! `shm://` is the broadcast ring of [`crate::shm`]; `tcp://` and `unix://` are ZeroMQ PUB
//! and SUB sockets ([`crate::net`]). Topic filtering: over sockets the publisher filters
//! (as ZeroMQ does) and the subscriber filters again (so an `unsubscribe` takes effect at
//! once); over `shm://` every subscriber reads the one ring and skips what it did not
//! subscribe to, here.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::endpoint::{Endpoint, SHM_NAME_MAX_BYTES};
use crate::error::{Error, Result};
use crate::handover::{Book, TakeOver};
use crate::loan::{DetachedLoan, Lends, Loan, LoanInner, Sample, FROM_OUR_POOL};
use crate::net::config::Offering;
use crate::net::publisher::NetPublisher;
use crate::net::subscriber::NetSubscriber;
use crate::net::topics::Topics;
use crate::options::Options;
use crate::shm::loan::{Lender, LoanRef};
use crate::shm::publisher::ShmPublisher;
use crate::shm::subscriber::ShmSubscriber;
use crate::sync::{AtomicU64, Ordering};
use crate::upgrade::NetLeg;
use crate::vocabulary::Mode;

/// The transport behind a [`Subscriber`]. A network subscriber is boxed: its connection,
/// and the ring it may move to, would triple the size of every `Subscriber`; the shm one is
/// not: a pointer chase on every receive costs more than the bytes.
#[allow(clippy::large_enum_variant)]
enum SubscriberInner {
    Shm(ShmSubscriber),
    Net(Box<NetLeg>),
}

/// Counts the hidden rings of this process's publishers (for unique names).
static HIDDEN_RINGS: AtomicU64 = AtomicU64::new(0);

/// The sending side of publish/subscribe: binds an endpoint and broadcasts each message to
/// every subscriber connected at the time whose topics match it.
///
/// Subscribers are accepted by a background thread and join at the next `send` ("late
/// subscribers start at the next message"). What happens when a subscriber falls a whole
/// ring behind is the [`Overflow`](crate::Overflow) policy of [`Options::overflow`]:
/// `Block` (default) waits for it, `DropOldest` overwrites and the subscriber receives
/// [`Error::Lagged`] with the exact number it lost. A subscriber that dies never blocks
/// the publisher.
///
/// Over `tcp://HOST:PORT` and `unix:///path` the publisher is a ZeroMQ PUB socket (ZMTP
/// 3.1): pyzmq/libzmq SUB sockets subscribe to it. It filters by topic prefix before
/// sending, and keeps a queue per subscriber of [`Options::ring_capacity`] bytes (always
/// room for one message; ZeroMQ's high-water mark): `DropOldest` drops that subscriber's
/// oldest queued messages when it is full, silently for the subscriber (ZMTP cannot tell
/// it; a `tracing` warning says so here), and `Block` waits for room ([`Error::SlowSubscriber`]
/// from `send_timeout`, with the subscriber's pid over `unix://`, 0 over `tcp://`).
/// Dropping the publisher delivers what is queued (for up to 5 s), then closes.
///
/// **Several endpoints.** [`Publisher::bind_all`] and [`Publisher::add_endpoint`] serve
/// `shm://`, `unix://` and `tcp://` subscribers from one publisher, each at its own
/// transport's speed, with one overflow policy. A network subscriber on this machine moves
/// to shared memory by itself ([`Options::upgrade`]).
///
/// # Examples
/// ```
/// use shmsock::{Publisher, Subscriber};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// let mut publisher = Publisher::bind("shm://doc-ticks")?;
/// let mut subscriber = Subscriber::connect("shm://doc-ticks")?;
/// while publisher.subscriber_count() < 1 {
///     std::thread::sleep(std::time::Duration::from_millis(1));
/// }
/// publisher.send(b"tick 1")?;
/// assert_eq!(subscriber.recv_vec()?, b"tick 1");
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Publisher {
    /// The first `shm://` ring, inline (the fast path of a one-endpoint publisher): the
    /// first `shm://` endpoint, or else the hidden ring offered to local network
    /// subscribers. Its sequence numbers are the ones a HANDOVER names.
    ring: Option<ShmPublisher>,
    /// Whether `ring` is the hidden ring of a network-only publisher (no endpoint of the
    /// user's): a message too large for it still goes to the network while nobody reads it.
    hidden: bool,
    /// More `shm://` endpoints.
    more: Vec<ShmPublisher>,
    net: Vec<NetPublisher>,
    /// The offers made to network subscribers, if [`Options::upgrade`] is on: then `ring`,
    /// once there is one, takes over their connections.
    book: Option<Arc<Book>>,
    /// The endpoints the user bound, in order (not the hidden ring).
    endpoints: Vec<String>,
    /// [`Publisher::max_message_len`], kept up to date by `add`.
    max_len: usize,
    options: Options,
}

impl Publisher {
    /// Binds `endpoint` with default [`Options`] (1 MiB ring, `Overflow::Block`).
    pub fn bind(endpoint: &str) -> Result<Publisher> {
        Self::bind_with(endpoint, Options::default())
    }

    /// Binds `endpoint` with `options` (ring capacity, overflow policy, wait strategy,
    /// allowed uids; `max_message_len` for `tcp://` and `unix://`).
    ///
    /// `tcp://HOST:0` binds a port the OS chooses: [`Publisher::endpoint`] tells which.
    pub fn bind_with(endpoint: &str, options: Options) -> Result<Publisher> {
        Self::bind_all(&[endpoint], options)
    }

    /// Binds every endpoint of `endpoints` (at least one), `shm://` ones first, with
    /// `options`: one publisher whose messages reach the subscribers of all of them.
    /// Fails, binding nothing, if one of them fails.
    ///
    /// # Examples
    /// ```
    /// use shmsock::{Options, Publisher, Subscriber};
    /// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
    /// let mut publisher =
    ///     Publisher::bind_all(&["shm://doc-quotes", "tcp://127.0.0.1:0"], Options::new())?;
    /// let tcp = publisher.endpoints()[1].to_owned(); // with the port the OS chose
    /// let mut local = Subscriber::connect("shm://doc-quotes")?;
    /// let mut remote = Subscriber::connect_with(&tcp, Options::new().upgrade(false))?;
    /// while publisher.subscriber_count() < 2 {
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// }
    /// publisher.send(b"EURUSD 1.0842")?;
    /// assert_eq!(local.recv_vec()?, b"EURUSD 1.0842");
    /// assert_eq!(remote.recv_vec()?, b"EURUSD 1.0842");
    /// # Ok::<(), shmsock::Error>(())
    /// ```
    pub fn bind_all(endpoints: &[&str], options: Options) -> Result<Publisher> {
        let mut parsed = endpoints
            .iter()
            .map(|e| e.parse::<Endpoint>())
            .collect::<Result<Vec<_>>>()?;
        if parsed.is_empty() {
            return Err(Error::InvalidOptions {
                endpoint: "publisher".into(),
                reason: "no endpoint to bind: give at least one (shm://NAME, unix:///PATH or \
                         tcp://HOST:PORT)"
                    .into(),
            });
        }
        // shm:// first: the first one is the ring local network subscribers move to.
        parsed.sort_by_key(|ep| !matches!(ep, Endpoint::Shm(_)));
        let mut publisher = Publisher {
            ring: None,
            hidden: false,
            more: Vec::new(),
            net: Vec::new(),
            book: options.upgrade.then(Arc::default),
            endpoints: Vec::new(),
            max_len: usize::MAX,
            options,
        };
        for ep in parsed {
            publisher.add(ep)?;
        }
        Ok(publisher)
    }

    /// Binds one more endpoint: its subscribers receive every message sent from now on.
    /// Returns the endpoint as bound (for `tcp://HOST:0`, with the port the OS chose).
    pub fn add_endpoint(&mut self, endpoint: &str) -> Result<&str> {
        self.add(endpoint.parse()?)?;
        Ok(self.endpoints.last().expect("just bound"))
    }

    fn add(&mut self, ep: Endpoint) -> Result<()> {
        self.bind_one(ep)?;
        let shown = self.ring.iter().filter(|_| !self.hidden);
        let shm = shown.chain(&self.more).map(ShmPublisher::max_message_len);
        let net = self.net.iter().map(NetPublisher::max_message_len);
        self.max_len = shm.chain(net).min().unwrap_or(0);
        Ok(())
    }

    fn bind_one(&mut self, ep: Endpoint) -> Result<()> {
        match ep {
            Endpoint::Shm(ref name) => {
                let mut cfg = self.options.shm_config();
                let first = self.ring.is_none();
                if first {
                    cfg.take_over = self.book.clone().map(|book| TakeOver {
                        book,
                        tokens_only: false,
                    });
                }
                let p = ShmPublisher::bind(ep.to_string(), name, &cfg)?;
                self.endpoints.push(p.endpoint().to_owned());
                if first {
                    self.ring = Some(p);
                } else {
                    self.more.push(p);
                }
            }
            ep => {
                let mut cfg = self.options.net_config();
                // The ring is named once the endpoint is bound (a hidden ring takes the
                // port the OS chose into its name, for `shmsock ls`).
                cfg.offering = self.book.clone().map(|book| Offering {
                    name: Arc::new(OnceLock::new()),
                    book,
                });
                let p = NetPublisher::bind(&ep, &cfg, |bound| self.offered_ring(bound))?;
                self.endpoints.push(p.endpoint().to_owned());
                self.net.push(p);
            }
        }
        Ok(())
    }

    /// The name of the ring a network endpoint (`endpoint`, bound) offers its subscribers:
    /// our ring, made now (hidden, only for them) if there is none yet. `None` with upgrades
    /// off, or if no ring could be made here (then subscribers stay on the network, and a
    /// warning says why).
    fn offered_ring(&mut self, endpoint: &str) -> Option<String> {
        let book = self.book.clone()?;
        if self.ring.is_none() {
            let n = HIDDEN_RINGS.fetch_add(1, Ordering::Relaxed);
            let tail: String = endpoint
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let mut name = format!("upgrade.{}.{n}.{tail}", std::process::id());
            name.truncate(SHM_NAME_MAX_BYTES);
            let mut cfg = self.options.shm_config();
            cfg.loan_pool = None;
            cfg.take_over = Some(TakeOver {
                book: book.clone(),
                tokens_only: true,
            });
            match ShmPublisher::bind(format!("shm://{name}"), &name, &cfg) {
                Ok(p) => {
                    self.ring = Some(p);
                    self.hidden = true;
                }
                Err(e) => {
                    tracing::warn!(endpoint, error = %e,
                        "no shared-memory ring for local subscribers: they stay on the network");
                    return None;
                }
            }
        }
        let ring = self.ring.as_ref()?;
        Some(ring.endpoint().strip_prefix("shm://")?.to_owned())
    }

    #[inline]
    fn send_mode(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        match &mut self.ring {
            Some(ring) if self.net.is_empty() && self.more.is_empty() => ring.send(msg, mode),
            _ => self.send_everywhere(msg, mode, None),
        }
    }

    /// Sends `msg` on every transport (a loan of `ring`'s pool if `loan` is given, `msg`
    /// being its bytes). The network queues are made sure to have room first, as `mode`
    /// allows: once the message is in the first ring it goes everywhere, the other rings
    /// waiting for their slowest subscribers if need be.
    fn send_everywhere(&mut self, msg: &[u8], mode: Mode, loan: Option<&LoanRef>) -> Result<()> {
        let max = self.max_message_len();
        if msg.len() > max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
            });
        }
        // The hidden ring: a message too large for it can only go to the network.
        let ring = match &mut self.ring {
            Some(r) if self.hidden && msg.len() > r.max_message_len() => {
                if !r.is_unread() {
                    tracing::warn!(endpoint = %self.endpoints[0], len = msg.len(),
                        ring = r.max_message_len(),
                        "a message larger than the shared-memory ring that local subscribers \
                         read (Options::upgrade): raise ring_capacity, or turn upgrade off");
                    return Err(Error::TooLarge {
                        len: msg.len(),
                        max: r.max_message_len(),
                    });
                }
                None
            }
            other => other.as_mut(),
        };
        for n in &mut self.net {
            n.wait_for_room_for(msg, mode)?;
        }
        let mut committed = false;
        if let Some(ring) = ring {
            let seq = ring.next_seq();
            match loan {
                Some(l) => ring.send_loan(l, mode)?,
                None => ring.send(msg, mode)?,
            }
            committed = true;
            if self.book.is_some() {
                // Message `seq` is not given to the network yet: it is the first the
                // subscribers that just joined read from the ring.
                hand_over(ring, &mut self.net, seq);
            }
        }
        let later = if committed { Mode::Block } else { mode };
        for (i, r) in self.more.iter_mut().enumerate() {
            r.send(msg, if i == 0 { later } else { Mode::Block })?;
            committed = true;
        }
        for n in &mut self.net {
            n.send(msg, if committed { Mode::Block } else { mode })?;
            committed = true;
        }
        Ok(())
    }

    /// Broadcasts one message. With `Overflow::Block` it waits while the slowest
    /// subscriber is a ring behind.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_mode(msg, Mode::Block)
    }

    /// Broadcasts one message if it can be done without waiting, else
    /// [`Error::WouldBlock`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_mode(msg, Mode::Try)
    }

    /// Broadcasts one message, waiting at most `timeout` for the slowest subscriber
    /// ([`Error::SlowSubscriber`] names it).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_mode(msg, Mode::timeout(timeout))
    }

    /// Broadcasts a serde value, encoded with postcard.
    pub fn send_value<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let bytes = crate::typed::encode(value)?;
        self.send(&bytes)
    }

    /// Broadcasts a plain fixed-layout value as its bytes.
    pub fn send_pod<T: bytemuck::NoUninit>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Takes a slot of the publisher's loan pool for a message of `len` bytes, to fill in
    /// place and [`Loan::send`] to every subscriber without a copy through the ring: only a
    /// 24-byte frame crosses it, and each subscriber reads the slot where it was written
    /// ([`Subscriber::recv_sample`]).
    ///
    /// A slot comes back once every subscriber dropped its [`Sample`], skipped the message
    /// (topics) or can no longer read it (it lagged past it, joined after it, or died).
    /// While every slot is out, `loan` waits (`Overflow::Block`: for the slowest
    /// subscriber, as `send` does); under `Overflow::DropOldest` it first evicts the oldest
    /// loan message that no subscriber holds, so subscribers that had not read it get
    /// [`Error::Lagged`] (the pool, like the ring, bounds how far behind one may fall).
    /// Samples a subscriber keeps hold of keep their slots: drop them.
    ///
    /// Needs [`Options::loan_pool`] over `shm://` ([`Error::NoLoanPool`] otherwise). Over
    /// `tcp://` and `unix://` the loan is an ordinary buffer.
    ///
    /// # Examples
    /// ```
    /// use shmsock::{Options, Publisher, Subscriber};
    /// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
    /// let opts = Options::new().loan_pool(8, 1 << 20); // 8 slots of 1 MiB
    /// let mut publisher = Publisher::bind_with("shm://doc-frames", opts)?;
    /// let mut subscriber = Subscriber::connect("shm://doc-frames")?;
    /// while publisher.subscriber_count() < 1 {
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// }
    /// let mut loan = publisher.loan(1 << 20)?;
    /// loan.fill(42); // write the frame in place
    /// loan.send()?;
    /// let sample = subscriber.recv_sample()?;
    /// assert!(sample.is_loan() && sample.len() == 1 << 20);
    /// drop(sample); // the slot goes back to the publisher
    /// # Ok::<(), shmsock::Error>(())
    /// ```
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_mode(len, Mode::Block)
    }

    /// [`Publisher::loan`] if a slot is free now, else [`Error::WouldBlock`].
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_mode(len, Mode::Try)
    }

    /// [`Publisher::loan`], waiting at most `timeout` for a slot ([`Error::TimedOut`]).
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.loan_mode(len, Mode::timeout(timeout))
    }

    fn loan_mode(&mut self, len: usize, mode: Mode) -> Result<Loan<'_>> {
        let inner = match &mut self.ring {
            Some(p) if p.lender.is_some() => LoanInner::Shm(p.loan(len, mode)?),
            Some(p) if self.net.is_empty() => LoanInner::Shm(p.loan(len, mode)?),
            _ => {
                let max = self.max_message_len();
                if len > max {
                    return Err(Error::TooLarge { len, max });
                }
                LoanInner::Buffer(vec![0; len])
            }
        };
        Ok(Loan { owner: self, inner })
    }

    /// Turns a loan of this publisher detached with [`Loan::detach`] back into a
    /// [`Loan`], to fill, send or drop.
    ///
    /// # Panics
    /// If `loan` is a slot of another publisher's or connection's pool.
    pub fn attach(&mut self, loan: DetachedLoan) -> Loan<'_> {
        let inner = loan.into_inner_for(self.lender());
        Loan { owner: self, inner }
    }

    /// Slots of the loan pool not back yet: lent to subscribers that may still read them,
    /// or being filled. 0 without a pool.
    pub fn loans_outstanding(&mut self) -> usize {
        self.ring
            .as_mut()
            .map_or(0, ShmPublisher::loans_outstanding)
    }

    /// Number of live subscribers (including those accepted since the last send).
    ///
    /// Over `tcp://` and `unix://`: subscribers whose first subscription has arrived (a
    /// ZeroMQ SUB that subscribed to nothing is not counted, it would receive nothing), so
    /// once a subscriber is counted, the next `send` reaches it if its topics match.
    ///
    /// With several endpoints: the sum over all of them. A subscriber that moved from the
    /// network to shared memory ([`Options::upgrade`]) is counted once.
    pub fn subscriber_count(&mut self) -> usize {
        let mut count = 0;
        if let Some(ring) = &mut self.ring {
            count += ring.subscriber_count();
            if self.book.is_some() {
                // Counted by the ring from now on.
                let next = ring.next_seq();
                hand_over(ring, &mut self.net, next);
            }
        }
        count += self
            .more
            .iter_mut()
            .map(ShmPublisher::subscriber_count)
            .sum::<usize>();
        count
            + self
                .net
                .iter_mut()
                .map(NetPublisher::subscriber_count)
                .sum::<usize>()
    }

    /// The endpoint this publisher is bound to (for `tcp://…:0`, with the chosen port); with
    /// several, the first `shm://` one, else the first one bound.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[0]
    }

    /// Every endpoint this publisher is bound to (`tcp://…:0` with the chosen port), `shm://`
    /// ones first, then in the order they were bound. The hidden ring of
    /// [`Options::upgrade`] is not listed.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Path of the rendezvous socket of [`Publisher::endpoint`] (for diagnostics): the
    /// `unix://` socket file; empty for `tcp://`.
    pub fn socket_path(&self) -> &Path {
        let first = &self.endpoints[0];
        let shm = self.ring.iter().chain(&self.more);
        if let Some(p) = shm.into_iter().find(|p| p.endpoint() == first) {
            return p.socket_path();
        }
        self.net
            .iter()
            .find(|p| p.endpoint() == first)
            .map_or(Path::new(""), NetPublisher::socket_path)
    }

    /// Largest message `send` accepts: the smallest of every endpoint's. (A network-only
    /// publisher also refuses a message larger than its hidden ring while a subscriber
    /// reads that ring, see [`Options::upgrade`].)
    pub fn max_message_len(&self) -> usize {
        self.max_len
    }
}

/// The receiving side of publish/subscribe. Receives every message the publisher sends
/// after this subscriber joined that matches its topics, in order; after a `shm://`
/// publisher ended, first everything it had published, then [`Error::PeerClosed`] or
/// [`Error::PeerGone`].
///
/// **Topics.** A message is received if one of the subscribed prefixes starts it (ZeroMQ's
/// rule; the empty prefix matches everything). A new subscriber is subscribed to
/// everything, unlike a raw ZeroMQ SUB socket, which receives nothing until it subscribes:
/// call [`unsubscribe(b"")`](Subscriber::unsubscribe) for ZeroMQ's behaviour, then
/// [`subscribe`](Subscriber::subscribe) to the topics you want. Subscriptions are
/// counted: subscribing twice to a prefix needs two unsubscribes.
///
/// **`tcp://` and `unix://`** (a ZeroMQ SUB socket, ZMTP 3.1): `connect` fails at once with
/// [`Error::ConnectionRefused`] if nobody listens. Afterwards, when the publisher goes away
/// (it closed, died or restarted), the subscriber reconnects by itself as ZeroMQ does, so
/// [`Error::PeerClosed`]/[`Error::PeerGone`] are never returned: `recv` waits for a
/// publisher to come back (trying every 100 ms), `recv_timeout` gives [`Error::TimedOut`]
/// and `try_recv` [`Error::WouldBlock`] meanwhile. Messages published while no connection
/// was up are lost. A publisher that sends garbage gives [`Error::Protocol`] (that
/// connection is closed; the next call reconnects). A multipart ZeroMQ message arrives as
/// one message, its parts concatenated.
///
/// # Examples
/// ```
/// use shmsock::{Publisher, Subscriber};
/// let mut publisher = Publisher::bind("tcp://127.0.0.1:0")?;
/// let mut subscriber = Subscriber::connect(publisher.endpoint())?;
/// // Subscribe first, then cancel the default "everything": the publisher applies them in
/// // order, so no message can fall between the two and be filtered out.
/// subscriber.subscribe(b"temp.")?;
/// subscriber.unsubscribe(b"")?; // ZeroMQ's default: nothing
/// while publisher.subscriber_count() < 1 {
///     std::thread::sleep(std::time::Duration::from_millis(1));
/// }
/// publisher.send(b"wind.north 12")?;
/// publisher.send(b"temp.paris 21")?;
/// assert_eq!(subscriber.recv_vec()?, b"temp.paris 21");
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Subscriber {
    inner: SubscriberInner,
    topics: Topics,
    stash: Stash,
}

/// A message read only to look at its topic, because the caller's buffer was too small:
/// the next receive delivers it. With [`Stash::judge`], the topic filter that `Subscriber`
/// and `AsyncSubscriber` share.
#[derive(Default)]
pub(crate) struct Stash(Option<Vec<u8>>);

impl Stash {
    /// Delivers the kept message into `buf` (`BufferTooSmall` keeps it), if there is one.
    pub(crate) fn deliver(&mut self, buf: &mut [u8]) -> Option<Result<usize>> {
        let msg = self.0.take()?;
        if msg.len() > buf.len() {
            let len = msg.len();
            self.0 = Some(msg);
            return Some(Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            }));
        }
        buf[..msg.len()].copy_from_slice(&msg);
        Some(Ok(msg.len()))
    }

    /// Takes the kept message, if there is one.
    fn take(&mut self) -> Option<Vec<u8>> {
        self.0.take()
    }

    /// Judges what a receive into `buf` returned, under `topics`: `Some` is the answer to
    /// give the caller, `None` means "not subscribed, skipped: receive again". A message too
    /// large for `buf` is read whole with `peek` (a receive that does not wait) to see its
    /// topic; a wanted one is kept here and reported as `BufferTooSmall`.
    pub(crate) fn judge(
        &mut self,
        topics: &Topics,
        got: Result<usize>,
        buf: &[u8],
        peek: impl FnOnce(&mut [u8]) -> Result<usize>,
    ) -> Option<Result<usize>> {
        match got {
            Ok(n) if topics.matches(&buf[..n]) => Some(Ok(n)),
            Ok(_) => None,
            Err(Error::BufferTooSmall { len, buf: have }) if !topics.matches_everything() => {
                let mut msg = vec![0; len];
                match peek(&mut msg) {
                    Ok(n) => msg.truncate(n),
                    // Gone meanwhile (lagged past), or grew: look again.
                    Err(Error::BufferTooSmall { .. } | Error::WouldBlock) => return None,
                    Err(e) => return Some(Err(e)),
                }
                if !topics.matches(&msg) {
                    return None;
                }
                let len = msg.len();
                self.0 = Some(msg);
                Some(Err(Error::BufferTooSmall { len, buf: have }))
            }
            other => Some(other),
        }
    }
}

/// One subscription change, shared by `Subscriber` and `AsyncSubscriber`: checks that
/// `prefix` fits a SUBSCRIBE command (`max`: the socket's largest message, `None` over
/// `shm://`; the publisher refuses longer ones), counts it in `topics`, and calls `tell`
/// (tell a `tcp://`/`unix://` publisher) when the set of prefixes changed.
pub(crate) fn change_subscription(
    topics: &mut Topics,
    prefix: &[u8],
    subscribe: bool,
    max: Option<usize>,
    tell: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if let Some(max) = max.filter(|&max| prefix.len() > max) {
        return Err(Error::TooLarge {
            len: prefix.len(),
            max,
        });
    }
    let changed = if subscribe {
        topics.subscribe(prefix)
    } else {
        topics.unsubscribe(prefix)
    };
    if changed {
        tell()
    } else {
        Ok(())
    }
}

/// Receives one whole message with `recv` into a new `Vec`, growing it as
/// `BufferTooSmall` asks (the message stays queued meanwhile).
fn recv_whole(mut recv: impl FnMut(&mut [u8]) -> Result<usize>) -> Result<Vec<u8>> {
    let mut buf = vec![0; 4096];
    loop {
        match recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Error::BufferTooSmall { len, .. }) => buf.resize(len, 0),
            Err(e) => return Err(e),
        }
    }
}

impl Subscriber {
    /// Connects to a publisher with default [`Options`].
    pub fn connect(endpoint: &str) -> Result<Subscriber> {
        Self::connect_with(endpoint, Options::default())
    }

    /// Connects to a publisher with `options` (wait strategy, allowed uids;
    /// `max_message_len` for `tcp://` and `unix://`).
    pub fn connect_with(endpoint: &str, options: Options) -> Result<Subscriber> {
        let topics = Topics::everything();
        let upgrade = options.upgrade.then(|| options.shm_config());
        let inner = options.open(
            endpoint,
            |ep, name, cfg| ShmSubscriber::connect(ep, name, &cfg).map(SubscriberInner::Shm),
            |ep, cfg| {
                let net = NetSubscriber::connect(ep, cfg, &topics)?;
                Ok(SubscriberInner::Net(Box::new(NetLeg::new(net, upgrade))))
            },
        )?;
        Ok(Subscriber {
            inner,
            topics,
            stash: Stash::default(),
        })
    }

    /// Subscribes to messages starting with `prefix` (`b""`: every message).
    ///
    /// Over `tcp://` and `unix://` the publisher is told without waiting; messages it
    /// publishes after it read the subscription are sent to us.
    pub fn subscribe(&mut self, prefix: &[u8]) -> Result<()> {
        self.change_subscription(prefix, true)
    }

    /// Cancels one subscription to `prefix` (subscriptions are counted). Messages that
    /// no longer match are not delivered from now on, even those already on their way.
    /// Unsubscribing from what was not subscribed does nothing.
    pub fn unsubscribe(&mut self, prefix: &[u8]) -> Result<()> {
        self.change_subscription(prefix, false)
    }

    fn change_subscription(&mut self, prefix: &[u8], subscribe: bool) -> Result<()> {
        let net = match &mut self.inner {
            SubscriberInner::Net(s) => Some(s.net()),
            SubscriberInner::Shm(_) => None,
        };
        let max = net.as_ref().map(|s| s.max_message_len());
        change_subscription(&mut self.topics, prefix, subscribe, max, || {
            net.map_or(Ok(()), |s| s.update(subscribe, prefix))
        })
    }

    #[inline]
    fn recv_any(
        inner: &mut SubscriberInner,
        topics: &Topics,
        buf: &mut [u8],
        mode: Mode,
    ) -> Result<usize> {
        match inner {
            SubscriberInner::Shm(s) => s.recv(buf, mode),
            SubscriberInner::Net(s) => s.recv(buf, mode, topics),
        }
    }

    /// Receives the next message that matches the topics, skipping the others.
    fn recv_mode(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        if let Some(done) = self.stash.deliver(buf) {
            return done;
        }
        let Subscriber {
            inner,
            topics,
            stash,
        } = self;
        if topics.matches_everything() {
            return Self::recv_any(inner, topics, buf, mode);
        }
        loop {
            let got = Self::recv_any(inner, topics, buf, mode);
            let peek = |msg: &mut [u8]| Self::recv_any(inner, topics, msg, Mode::Try);
            if let Some(done) = stash.judge(topics, got, buf, peek) {
                return done;
            }
        }
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// [`Error::Lagged`] means messages were lost (`DropOldest`, `shm://`); call `recv`
    /// again to go on with the oldest one still available. [`Error::BufferTooSmall`] leaves
    /// the message queued.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_mode(buf, Mode::Block)
    }

    /// Receives a message if one is there, else [`Error::WouldBlock`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_mode(buf, Mode::Try)
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_mode(buf, Mode::timeout(timeout))
    }

    /// Receives the next message into a new `Vec`.
    pub fn recv_vec(&mut self) -> Result<Vec<u8>> {
        recv_whole(|buf| self.recv_mode(buf, Mode::Block))
    }

    /// Receives the next message that matches the topics as a [`Sample`]: a zero-copy view
    /// of the publisher's slot when it was sent as a loan over `shm://`
    /// ([`Publisher::loan`]), a copy otherwise. Dropping the sample hands the slot back;
    /// while you hold it, the publisher cannot reuse it.
    pub fn recv_sample(&mut self) -> Result<Sample> {
        self.recv_sample_mode(Mode::Block)
    }

    /// [`Subscriber::recv_sample`] if a message is there, else [`Error::WouldBlock`].
    pub fn try_recv_sample(&mut self) -> Result<Sample> {
        self.recv_sample_mode(Mode::Try)
    }

    /// [`Subscriber::recv_sample`], waiting at most `timeout` ([`Error::TimedOut`]).
    pub fn recv_sample_timeout(&mut self, timeout: Duration) -> Result<Sample> {
        self.recv_sample_mode(Mode::timeout(timeout))
    }

    fn recv_sample_mode(&mut self, mode: Mode) -> Result<Sample> {
        if let Some(msg) = self.stash.take() {
            return Ok(Sample::owned(msg));
        }
        let SubscriberInner::Shm(s) = &mut self.inner else {
            return recv_whole(|buf| self.recv_mode(buf, mode)).map(Sample::owned);
        };
        let head_len = self.topics.prefixes().map(<[u8]>::len).max().unwrap_or(0);
        let mut head = vec![0; head_len];
        loop {
            let sample = Sample::from(s.recv_sample(mode)?);
            if self.topics.matches_everything() {
                return Ok(sample);
            }
            let n = head_len.min(sample.len());
            sample.read_at(0, &mut head[..n]);
            if self.topics.matches(&head[..n]) {
                return Ok(sample);
            }
            // Not subscribed: dropped here, which hands a loan back at once.
        }
    }

    /// Receives a message sent by [`Publisher::send_value`] and decodes it.
    pub fn recv_value<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        crate::typed::decode(&self.recv_vec()?)
    }

    /// Receives a message sent by [`Publisher::send_pod`] as a `T`.
    pub fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<T> {
        crate::typed::from_pod_bytes(&self.recv_vec()?)
    }

    /// Leaves cleanly (dropping the subscriber does the same).
    pub fn close(mut self) {
        match &mut self.inner {
            SubscriberInner::Shm(s) => s.close(),
            SubscriberInner::Net(s) => s.net().close(),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        match &self.inner {
            SubscriberInner::Shm(s) => s.endpoint(),
            SubscriberInner::Net(s) => s.net_ref().endpoint(),
        }
    }

    /// The publisher's process id (from `SO_PEERCRED`); 0 (unknown) over `tcp://`, until
    /// the subscriber moved to the publisher's shared memory.
    pub fn publisher_pid(&self) -> i32 {
        match &self.inner {
            SubscriberInner::Shm(s) => s.publisher_pid(),
            SubscriberInner::Net(s) => s.publisher_pid(),
        }
    }

    /// Whether messages come through shared memory: an `shm://` subscriber, or a
    /// `tcp://`/`unix://` one that moved to its publisher's ring ([`Options::upgrade`]; it
    /// moves at the first message the publisher sends after it connected).
    pub fn is_shared_memory(&self) -> bool {
        match &self.inner {
            SubscriberInner::Shm(_) => true,
            SubscriberInner::Net(s) => s.is_upgraded(),
        }
    }
}

/// Hands over the connections whose subscribers joined `ring` (see [`crate::upgrade`]):
/// each gets HANDOVER(`seq`), `seq` being the ring's number of the first message not yet
/// given to the network publishers; then the subscriber holds the ring back like any
/// other. (A token no connection knows any more is left: its subscriber, whose
/// connection ended, leaves the ring too.)
fn hand_over(ring: &mut ShmPublisher, net: &mut [NetPublisher], seq: u64) {
    for token in ring.take_handovers() {
        let mut known = false;
        for n in net.iter_mut() {
            known |= n.hand_over(token, seq);
        }
        if known {
            ring.handed_over(token);
        }
    }
}

impl Lends for Publisher {
    fn send_loan(&mut self, loan: &LoanInner, mode: Mode) -> Result<()> {
        match (&mut self.ring, loan) {
            (Some(p), LoanInner::Shm(l)) if self.net.is_empty() && self.more.is_empty() => {
                p.send_loan(l, mode)
            }
            (Some(p), LoanInner::Shm(l)) => {
                // The other transports get a copy of the slot's bytes.
                let bytes = p.lender.as_ref().expect(FROM_OUR_POOL).bytes(l).to_vec();
                self.send_everywhere(&bytes, mode, Some(l))
            }
            (_, LoanInner::Buffer(b)) => self.send_mode(b, mode),
            (_, _) => unreachable!("a loan is sent by the publisher that made it"),
        }
    }

    fn lender(&self) -> Option<&Lender> {
        self.ring.as_ref()?.lender.as_ref()
    }

    fn lender_mut(&mut self) -> Option<&mut Lender> {
        self.ring.as_mut()?.lender.as_mut()
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("endpoint", &self.endpoint())
            .field("publisher_pid", &self.publisher_pid())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temperature_only() -> Topics {
        let mut topics = Topics::default();
        topics.subscribe(b"temp.");
        topics
    }

    /// A receive that must not be called.
    fn no_peek(_: &mut [u8]) -> Result<usize> {
        panic!("peeked at a message that fit")
    }

    #[test]
    fn judge_passes_wanted_messages_and_skips_the_others() {
        let (topics, mut stash) = (temperature_only(), Stash::default());
        let buf = *b"temp.21 C";
        assert!(matches!(
            stash.judge(&topics, Ok(9), &buf, no_peek),
            Some(Ok(9))
        ));
        let buf = *b"wind.5 kn";
        assert!(stash.judge(&topics, Ok(9), &buf, no_peek).is_none());
        assert!(matches!(
            stash.judge(&topics, Err(Error::Closed), &buf, no_peek),
            Some(Err(Error::Closed))
        ));
        let mut out = [0u8; 64];
        assert!(stash.deliver(&mut out).is_none(), "nothing was kept");
    }

    #[test]
    fn judge_keeps_a_wanted_message_too_large_for_the_buffer_and_drops_an_unwanted_one() {
        let (topics, mut stash) = (temperature_only(), Stash::default());
        let too_small = || Err(Error::BufferTooSmall { len: 12, buf: 4 });
        // Unwanted: read whole, skipped, nothing kept.
        let peek = |msg: &mut [u8]| {
            msg.copy_from_slice(b"wind.5 knots");
            Ok(12)
        };
        assert!(stash.judge(&topics, too_small(), &[0; 4], peek).is_none());
        assert!(stash.deliver(&mut [0u8; 64]).is_none());
        // Gone meanwhile: look again.
        let gone = |_: &mut [u8]| Err(Error::WouldBlock);
        assert!(stash.judge(&topics, too_small(), &[0; 4], gone).is_none());
        // Wanted: kept, reported as too large until a large enough buffer comes.
        let peek = |msg: &mut [u8]| {
            msg.copy_from_slice(b"temp.21.5 C!");
            Ok(12)
        };
        assert!(matches!(
            stash.judge(&topics, too_small(), &[0; 4], peek),
            Some(Err(Error::BufferTooSmall { len: 12, buf: 4 }))
        ));
        assert!(matches!(
            stash.deliver(&mut [0u8; 8]),
            Some(Err(Error::BufferTooSmall { len: 12, buf: 8 }))
        ));
        let mut out = [0u8; 64];
        assert!(matches!(stash.deliver(&mut out), Some(Ok(12))));
        assert_eq!(&out[..12], b"temp.21.5 C!");
        assert!(stash.deliver(&mut out).is_none(), "delivered once");
    }

    #[test]
    fn a_subscriber_to_everything_passes_a_too_small_buffer_through() {
        let (topics, mut stash) = (Topics::everything(), Stash::default());
        let got = Err(Error::BufferTooSmall { len: 12, buf: 4 });
        assert!(matches!(
            stash.judge(&topics, got, &[0; 4], no_peek),
            Some(Err(Error::BufferTooSmall { len: 12, buf: 4 }))
        ));
    }
}
