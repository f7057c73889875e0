//! Many writers, one reader: an [`Inbox`] receives from every [`Conn`](crate::Conn) that
//! connects to it, fairly.

use std::path::Path;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::shm::inbox::ShmInbox;
pub use crate::shm::inbox::WriterId;
use crate::vocabulary::Mode;

/// The receiving end of many writers (ZeroMQ's PULL, iceoryx2's many publishers): binds an
/// `shm://` name; every process that connects to it with [`Conn::connect`](crate::Conn)
/// becomes a writer.
///
/// Each writer has its own ring, so writers never contend with each other (no shared tail,
/// no compare-and-swap). The inbox takes **one message from each writer in turn**, so a
/// writer that floods it cannot starve one that sends rarely; the messages of one writer
/// arrive in order. Waiting spins briefly, then sleeps on the writers' doorbells (a Unix
/// datagram socket pair each) that a writer rings only when the inbox announced that it
/// sleeps.
///
/// A writer that closes or dies is removed once its messages were read; a writer whose
/// memory turns out corrupt is dropped (and the message being read, if any, reported as
/// [`Error::Corrupt`]); neither ends the inbox. Writers are accepted by a background thread.
/// The inbox never sends: a writer's `recv` waits until the inbox closes.
///
/// # Examples
/// ```
/// use shmsock::{Conn, Inbox};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// let mut inbox = Inbox::bind("shm://doc-orders")?;
/// let writers: Vec<_> = (0..3u8)
///     .map(|w| {
///         std::thread::spawn(move || -> shmsock::Result<()> {
///             let mut conn = Conn::connect("shm://doc-orders")?;
///             conn.send(&[w; 8])
///         })
///     })
///     .collect();
/// let mut seen = Vec::new();
/// for _ in 0..3 {
///     let (msg, from) = inbox.recv_from_vec()?;
///     assert_eq!(from.pid, std::process::id() as i32);
///     seen.push(msg[0]);
/// }
/// seen.sort();
/// assert_eq!(seen, [0, 1, 2]);
/// for w in writers {
///     w.join().unwrap()?;
/// }
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Inbox {
    inner: ShmInbox,
}

impl Inbox {
    /// Binds `endpoint` (an `shm://` name) with default [`Options`].
    pub fn bind(endpoint: &str) -> Result<Inbox> {
        Self::bind_with(endpoint, Options::default())
    }

    /// Binds `endpoint` with `options` (wait strategy, spin budget, allowed uids; each
    /// writer chooses its own ring capacity when it connects).
    pub fn bind_with(endpoint: &str, options: Options) -> Result<Inbox> {
        let ep: Endpoint = endpoint.parse()?;
        let Endpoint::Shm(name) = &ep else {
            return Err(Error::Unsupported {
                endpoint: ep.to_string(),
                scheme: ep.scheme(),
            });
        };
        Ok(Inbox {
            inner: ShmInbox::bind(ep.to_string(), name, &options.shm_config())?,
        })
    }

    /// Receives the next message (from whichever writer's turn it is) into `buf`; returns
    /// its length. [`Error::BufferTooSmall`] leaves it queued. With no writer connected it
    /// waits for one.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inner.recv(buf, Mode::Block).map(|(n, _)| n)
    }

    /// [`Inbox::recv`], also saying which writer sent the message.
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, WriterId)> {
        self.inner.recv(buf, Mode::Block)
    }

    /// Receives a message if one is queued, else [`Error::WouldBlock`].
    pub fn try_recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, WriterId)> {
        self.inner.recv(buf, Mode::Try)
    }

    /// Receives the next message, waiting at most `timeout` ([`Error::TimedOut`]).
    pub fn recv_from_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(usize, WriterId)> {
        self.inner.recv(buf, Mode::timeout(timeout))
    }

    /// Receives the next message into a new `Vec`.
    pub fn recv_vec(&mut self) -> Result<Vec<u8>> {
        self.recv_from_vec().map(|(v, _)| v)
    }

    /// Receives the next message into a new `Vec`, with its writer.
    pub fn recv_from_vec(&mut self) -> Result<(Vec<u8>, WriterId)> {
        self.inner.recv_vec(Mode::Block)
    }

    /// Receives a message sent by [`Conn::send_value`](crate::Conn::send_value) and decodes it.
    pub fn recv_value<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        crate::typed::decode(&self.recv_vec()?)
    }

    /// Number of connected writers, counting those that ended but still have unread
    /// messages.
    pub fn writer_count(&mut self) -> usize {
        self.inner.writer_count()
    }

    /// The endpoint this inbox is bound to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// Path of the rendezvous socket (for diagnostics).
    pub fn socket_path(&self) -> &Path {
        self.inner.socket_path()
    }

    /// Stops accepting writers and closes every connection (writers see
    /// [`Error::PeerClosed`]); dropping the inbox does the same.
    pub fn close(mut self) {
        self.inner.close();
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}
