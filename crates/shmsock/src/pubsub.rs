//! Publish/subscribe: one [`Publisher`], any number of [`Subscriber`]s, every subscriber
//! receives every message it subscribed to (or learns exactly how many it lost).
//!
//! `shm://` is the broadcast ring of [`crate::shm`]; `tcp://` and `unix://` are ZeroMQ PUB
//! and SUB sockets ([`crate::net`]). Topic filtering: over sockets the publisher filters
//! (as ZeroMQ does) and the subscriber filters again (so an `unsubscribe` takes effect at
//! once); over `shm://` every subscriber reads the one ring and skips what it did not
//! subscribe to, here.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::loan::{DetachedLoan, Lends, Loan, LoanInner, Sample};
use crate::net::publisher::NetPublisher;
use crate::net::subscriber::NetSubscriber;
use crate::net::topics::Topics;
use crate::options::Options;
use crate::shm::loan::Lender;
use crate::shm::publisher::ShmPublisher;
use crate::shm::subscriber::ShmSubscriber;
use crate::vocabulary::Mode;

/// The transport behind a [`Publisher`]. Not boxed, as in `Conn`: a pointer chase on every
/// shm publish costs more than the bytes.
#[allow(clippy::large_enum_variant)]
enum PublisherInner {
    Shm(ShmPublisher),
    Net(NetPublisher),
}

/// The transport behind a [`Subscriber`].
enum SubscriberInner {
    Shm(ShmSubscriber),
    Net(NetSubscriber),
}

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
    inner: PublisherInner,
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
        let inner = options.open(
            endpoint,
            |ep, name, cfg| ShmPublisher::bind(ep, name, &cfg).map(PublisherInner::Shm),
            |ep, cfg| NetPublisher::bind(&ep, &cfg).map(PublisherInner::Net),
        )?;
        Ok(Publisher { inner })
    }

    #[inline]
    fn send_mode(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        match &mut self.inner {
            PublisherInner::Shm(p) => p.send(msg, mode),
            PublisherInner::Net(p) => p.send(msg, mode),
        }
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
        let inner = match &mut self.inner {
            PublisherInner::Shm(p) => LoanInner::Shm(p.loan(len, mode)?),
            PublisherInner::Net(p) => {
                if len > p.max_message_len() {
                    return Err(Error::TooLarge {
                        len,
                        max: p.max_message_len(),
                    });
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
        match &mut self.inner {
            PublisherInner::Shm(p) => p.loans_outstanding(),
            PublisherInner::Net(_) => 0,
        }
    }

    /// Number of live subscribers (including those accepted since the last send).
    ///
    /// Over `tcp://` and `unix://`: subscribers whose first subscription has arrived (a
    /// ZeroMQ SUB that subscribed to nothing is not counted, it would receive nothing), so
    /// once a subscriber is counted, the next `send` reaches it if its topics match.
    pub fn subscriber_count(&mut self) -> usize {
        match &mut self.inner {
            PublisherInner::Shm(p) => p.subscriber_count(),
            PublisherInner::Net(p) => p.subscriber_count(),
        }
    }

    /// The endpoint this publisher is bound to (for `tcp://…:0`, with the chosen port).
    pub fn endpoint(&self) -> &str {
        match &self.inner {
            PublisherInner::Shm(p) => p.endpoint(),
            PublisherInner::Net(p) => p.endpoint(),
        }
    }

    /// Path of the rendezvous socket (for diagnostics): the `unix://` socket file; empty for
    /// `tcp://`.
    pub fn socket_path(&self) -> &Path {
        match &self.inner {
            PublisherInner::Shm(p) => p.socket_path(),
            PublisherInner::Net(p) => p.socket_path(),
        }
    }

    /// Largest message `send` accepts.
    pub fn max_message_len(&self) -> usize {
        match &self.inner {
            PublisherInner::Shm(p) => p.max_message_len(),
            PublisherInner::Net(p) => p.max_message_len(),
        }
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
        let inner = options.open(
            endpoint,
            |ep, name, cfg| ShmSubscriber::connect(ep, name, &cfg).map(SubscriberInner::Shm),
            |ep, cfg| NetSubscriber::connect(ep, cfg, &topics).map(SubscriberInner::Net),
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
            SubscriberInner::Net(s) => Some(s),
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
            SubscriberInner::Net(s) => s.close(),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        match &self.inner {
            SubscriberInner::Shm(s) => s.endpoint(),
            SubscriberInner::Net(s) => s.endpoint(),
        }
    }

    /// The publisher's process id (from `SO_PEERCRED`); 0 (unknown) over `tcp://`.
    pub fn publisher_pid(&self) -> i32 {
        match &self.inner {
            SubscriberInner::Shm(s) => s.publisher_pid(),
            SubscriberInner::Net(s) => s.publisher_pid(),
        }
    }
}

impl Lends for Publisher {
    fn send_loan(&mut self, loan: &LoanInner, mode: Mode) -> Result<()> {
        match (&mut self.inner, loan) {
            (PublisherInner::Shm(p), LoanInner::Shm(l)) => p.send_loan(l, mode),
            (_, LoanInner::Buffer(b)) => self.send_mode(b, mode),
            (_, _) => unreachable!("a loan is sent by the publisher that made it"),
        }
    }

    fn lender(&self) -> Option<&Lender> {
        match &self.inner {
            PublisherInner::Shm(p) => p.lender.as_ref(),
            PublisherInner::Net(_) => None,
        }
    }

    fn lender_mut(&mut self) -> Option<&mut Lender> {
        match &mut self.inner {
            PublisherInner::Shm(p) => p.lender.as_mut(),
            PublisherInner::Net(_) => None,
        }
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
