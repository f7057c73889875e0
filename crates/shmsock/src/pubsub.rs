//! Publish/subscribe: one [`Publisher`], any number of [`Subscriber`]s, every subscriber
//! receives every message (or learns exactly how many it lost).

use std::path::Path;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::shm::{Mode, ShmPublisher, ShmSubscriber};

fn shm_name(endpoint: &str) -> Result<(Endpoint, String)> {
    let ep: Endpoint = endpoint.parse()?;
    match &ep {
        Endpoint::Shm(name) => {
            let name = name.clone();
            Ok((ep, name))
        }
        _ => Err(Error::Unsupported {
            endpoint: ep.to_string(),
            scheme: ep.scheme(),
        }),
    }
}

/// The sending side of publish/subscribe: binds an endpoint and broadcasts each message to
/// every subscriber connected at the time.
///
/// Subscribers are accepted by a background thread and join at the next `send` ("late
/// subscribers start at the next message"). What happens when a subscriber falls a whole
/// ring behind is the [`Overflow`](crate::Overflow) policy of [`Options::overflow`]:
/// `Block` (default) waits for it, `DropOldest` overwrites and the subscriber receives
/// [`Error::Lagged`] with the exact number it lost. A subscriber that dies never blocks
/// the publisher.
///
/// # Examples
/// ```
/// use shmsock::{Publisher, Subscriber};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", std::env::temp_dir().join(format!("shmsock-doc-{}", std::process::id())));
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
    inner: ShmPublisher,
}

impl Publisher {
    /// Binds `endpoint` with default [`Options`] (1 MiB ring, `Overflow::Block`).
    pub fn bind(endpoint: &str) -> Result<Publisher> {
        Self::bind_with(endpoint, Options::default())
    }

    /// Binds `endpoint` with `options` (ring capacity, overflow policy, wait strategy,
    /// allowed uids).
    pub fn bind_with(endpoint: &str, options: Options) -> Result<Publisher> {
        let (ep, name) = shm_name(endpoint)?;
        Ok(Publisher {
            inner: ShmPublisher::bind(ep.to_string(), &name, &options)?,
        })
    }

    /// Broadcasts one message. With `Overflow::Block` it waits while the slowest
    /// subscriber is a ring behind.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg, Mode::Block)
    }

    /// Broadcasts one message if it can be done without waiting, else
    /// [`Error::WouldBlock`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg, Mode::Try)
    }

    /// Broadcasts one message, waiting at most `timeout` for the slowest subscriber
    /// ([`Error::SlowSubscriber`] names it).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.inner.send(msg, Mode::timeout(timeout))
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

    /// Number of live subscribers (including those accepted since the last send).
    pub fn subscriber_count(&mut self) -> usize {
        self.inner.subscriber_count()
    }

    /// The endpoint this publisher is bound to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// Path of the rendezvous socket (for diagnostics).
    pub fn socket_path(&self) -> &Path {
        self.inner.socket_path()
    }

    /// Largest message `send` accepts.
    pub fn max_message_len(&self) -> usize {
        self.inner.max_message_len()
    }
}

/// The receiving side of publish/subscribe. Receives every message the publisher sends
/// after this subscriber joined, in order; after the publisher ended, first everything it
/// had published, then [`Error::PeerClosed`] or [`Error::PeerGone`].
pub struct Subscriber {
    inner: ShmSubscriber,
}

impl Subscriber {
    /// Connects to a publisher with default [`Options`].
    pub fn connect(endpoint: &str) -> Result<Subscriber> {
        Self::connect_with(endpoint, Options::default())
    }

    /// Connects to a publisher with `options` (wait strategy, allowed uids).
    pub fn connect_with(endpoint: &str, options: Options) -> Result<Subscriber> {
        let (ep, name) = shm_name(endpoint)?;
        Ok(Subscriber {
            inner: ShmSubscriber::connect(ep.to_string(), &name, &options)?,
        })
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// [`Error::Lagged`] means messages were lost (`DropOldest`); call `recv` again to go
    /// on with the oldest one still available. [`Error::BufferTooSmall`] leaves the message
    /// queued.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inner.recv(buf, Mode::Block)
    }

    /// Receives a message if one is there, else [`Error::WouldBlock`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inner.recv(buf, Mode::Try)
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.inner.recv(buf, Mode::timeout(timeout))
    }

    /// Receives the next message into a new `Vec`.
    pub fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let mut buf = vec![0; 4096];
        loop {
            match self.inner.recv(&mut buf, Mode::Block) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Error::BufferTooSmall { len, .. }) => buf.resize(len, 0),
                Err(e) => return Err(e),
            }
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
        self.inner.close();
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// The publisher's process id (from `SO_PEERCRED`).
    pub fn publisher_pid(&self) -> i32 {
        self.inner.publisher_pid()
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
