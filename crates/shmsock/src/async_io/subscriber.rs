//! [`AsyncSubscriber`]: the receiving side of publish/subscribe for tokio.

use super::net::AsyncNetSub;
use super::reactor::blocking;
use super::shm::AsyncShmSub;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::net::subscriber::NetSubscriber;
use crate::net::topics::Topics;
use crate::options::Options;
use crate::pubsub::{change_subscription, Stash};
use crate::shm::doorbell::Doorbell;
use crate::shm::subscriber::ShmSubscriber;

/// The transport behind an [`AsyncSubscriber`].
enum SubscriberInner {
    Shm(AsyncShmSub),
    Net(AsyncNetSub),
}

impl SubscriberInner {
    async fn recv(&mut self, buf: &mut [u8], topics: &Topics) -> Result<usize> {
        match self {
            SubscriberInner::Shm(s) => s.recv(buf).await,
            SubscriberInner::Net(s) => s.recv(buf, topics).await,
        }
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self {
            SubscriberInner::Shm(s) => s.try_recv(buf),
            SubscriberInner::Net(s) => s.try_recv(buf),
        }
    }
}

/// The receiving side of publish/subscribe for tokio: the async
/// [`Subscriber`](crate::Subscriber), with the same topics, ordering and errors. The
/// publisher is an ordinary [`Publisher`](crate::Publisher) (or, over `tcp://` and
/// `unix://`, any ZeroMQ PUB socket).
///
/// Over `shm://` it waits on a doorbell (a Unix datagram socket pair) that the publisher
/// rings only when this subscriber announced that it sleeps, and on its control socket (a dead publisher wakes it
/// at once: [`Error::PeerGone`] after everything it published). Over `tcp://` and `unix://`
/// it waits on the socket's readiness and reconnects by itself like `Subscriber` (each
/// attempt's connect and handshake on tokio's blocking pool, every 100 ms while nobody
/// listens). It never spins and uses no thread of its own.
///
/// # Examples
/// ```
/// use shmsock::{AsyncSubscriber, Publisher};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut publisher = Publisher::bind("shm://doc-async-ticks")?;
/// let mut subscriber = AsyncSubscriber::connect("shm://doc-async-ticks").await?;
/// while publisher.subscriber_count() < 1 {
///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
/// }
/// publisher.send(b"tick 1")?;
/// assert_eq!(subscriber.recv_vec().await?, b"tick 1");
/// # Ok::<(), shmsock::Error>(())
/// # }).unwrap();
/// ```
pub struct AsyncSubscriber {
    inner: SubscriberInner,
    topics: Topics,
    stash: Stash,
}

impl AsyncSubscriber {
    /// Connects to a publisher with default [`Options`], subscribed to every message.
    /// Errors as [`Subscriber::connect`](crate::Subscriber::connect).
    ///
    /// # Cancel safety
    /// Not cancel-safe: a connection completed after the future was dropped is closed.
    pub async fn connect(endpoint: &str) -> Result<AsyncSubscriber> {
        Self::connect_with(endpoint, Options::default()).await
    }

    /// Connects to a publisher with `options` (allowed uids; `max_message_len` for `tcp://`
    /// and `unix://`).
    pub async fn connect_with(endpoint: &str, options: Options) -> Result<AsyncSubscriber> {
        let ep: Endpoint = endpoint.parse()?;
        let shown = ep.to_string();
        let topics = Topics::everything();
        let inner = match ep {
            Endpoint::Shm(name) => {
                let bell = Doorbell::new().map_err(|e| {
                    Error::io(format!("{shown}: creating the doorbell socket pair"), e)
                })?;
                let ep = shown.clone();
                let (sub, bell) = blocking(&shown, move || {
                    let sub = ShmSubscriber::connect_with_bell(
                        ep,
                        &name,
                        &options.shm_config(),
                        Some(&bell),
                    )?;
                    Ok((sub, bell))
                })
                .await?;
                SubscriberInner::Shm(AsyncShmSub::new(sub, bell)?)
            }
            ep => {
                let t = topics.clone();
                let sub = blocking(&shown, move || {
                    NetSubscriber::connect(ep, options.net_config(), &t)
                })
                .await?;
                SubscriberInner::Net(AsyncNetSub::new(sub)?)
            }
        };
        Ok(AsyncSubscriber {
            inner,
            topics,
            stash: Stash::default(),
        })
    }

    /// Subscribes to messages starting with `prefix` (`b""`: every message). Never waits;
    /// see [`Subscriber::subscribe`](crate::Subscriber::subscribe).
    pub fn subscribe(&mut self, prefix: &[u8]) -> Result<()> {
        self.change_subscription(prefix, true)
    }

    /// Cancels one subscription to `prefix` (subscriptions are counted); see
    /// [`Subscriber::unsubscribe`](crate::Subscriber::unsubscribe).
    pub fn unsubscribe(&mut self, prefix: &[u8]) -> Result<()> {
        self.change_subscription(prefix, false)
    }

    fn change_subscription(&mut self, prefix: &[u8], subscribe: bool) -> Result<()> {
        let net = match &mut self.inner {
            SubscriberInner::Net(s) => Some(s),
            SubscriberInner::Shm(_) => None,
        };
        let max = net.as_ref().map(|s| s.sub().max_message_len());
        change_subscription(&mut self.topics, prefix, subscribe, max, || {
            net.map_or(Ok(()), |s| s.update(subscribe, prefix))
        })
    }

    /// Receives the next message that matches the topics into `buf`; returns its length.
    ///
    /// [`Error::Lagged`] means messages were lost (`DropOldest`, `shm://`): call `recv`
    /// again. [`Error::BufferTooSmall`] leaves the message queued.
    ///
    /// # Cancel safety
    /// Cancel-safe: if the future is dropped, no message is lost; the next `recv` returns it.
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if let Some(done) = self.stash.deliver(buf) {
            return done;
        }
        loop {
            let got = self.inner.recv(buf, &self.topics).await;
            let peek = |msg: &mut [u8]| self.inner.try_recv(msg);
            if let Some(done) = self.stash.judge(&self.topics, got, buf, peek) {
                return done;
            }
        }
    }

    /// Receives the next message that matches the topics into a new `Vec`.
    ///
    /// # Cancel safety
    /// Cancel-safe, like [`AsyncSubscriber::recv`].
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let mut buf = vec![0; 4096];
        loop {
            match self.recv(&mut buf).await {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Error::BufferTooSmall { len, .. }) => buf.resize(len, 0),
                Err(e) => return Err(e),
            }
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        match &self.inner {
            SubscriberInner::Shm(s) => s.side().endpoint(),
            SubscriberInner::Net(s) => s.sub().endpoint(),
        }
    }

    /// The publisher's process id (from `SO_PEERCRED`); 0 (unknown) over `tcp://`.
    pub fn publisher_pid(&self) -> i32 {
        match &self.inner {
            SubscriberInner::Shm(s) => s.side().publisher_pid(),
            SubscriberInner::Net(s) => s.sub().publisher_pid(),
        }
    }

    /// Leaves cleanly (dropping the subscriber does the same).
    pub fn close(mut self) {
        match &mut self.inner {
            SubscriberInner::Shm(s) => s.side_mut().close(),
            SubscriberInner::Net(s) => s.close(),
        }
    }
}

impl std::fmt::Debug for AsyncSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSubscriber")
            .field("endpoint", &self.endpoint())
            .field("publisher_pid", &self.publisher_pid())
            .finish_non_exhaustive()
    }
}
