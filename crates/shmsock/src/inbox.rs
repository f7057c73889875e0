//! Many writers, one reader: an [`Inbox`] receives from every [`Conn`](crate::Conn) that
//! connects to it, fairly, on any number of endpoints of any transport.
//!
//! The `shm://` inbox (`shm::inbox`) owns the round robin and the sleep; the network writers
//! (`net::gather`) join it as foreign writers whose messages an I/O thread queues. This
//! module connects the two (neither layer knows the other).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::net::gather::{self, Gatherer, InboxHooks, WriterQueue};
use crate::options::Options;
pub use crate::shm::inbox::WriterId;
use crate::shm::inbox::{ForeignDoor, ForeignWriter, Next, ShmInbox};
use crate::vocabulary::Mode;

/// A network writer as the inbox's round robin sees it.
struct NetWriter(WriterQueue);

impl ForeignWriter for NetWriter {
    fn next(&mut self) -> Next {
        match self.0.next() {
            gather::Next::Message(len) => Next::Message(len),
            gather::Next::Empty => Next::Empty,
            gather::Next::Ended => Next::Ended,
        }
    }

    fn take(&mut self, out: &mut [u8]) {
        out.copy_from_slice(&self.0.take());
    }

    fn take_vec(&mut self) -> Vec<u8> {
        self.0.take()
    }
}

impl InboxHooks for ForeignDoor {
    fn join(&self, endpoint: &str, pid: i32, queue: WriterQueue) {
        let id = ForeignDoor::join(self, pid, Box::new(NetWriter(queue)));
        tracing::debug!(endpoint, writer = %id, "writer joined");
    }

    fn wake(&self) {
        ForeignDoor::wake(self);
    }
}

/// The receiving end of many writers (ZeroMQ's PULL, iceoryx2's many publishers): binds one
/// or more endpoints (`shm://`, `unix://`, `tcp://`, in any mix: [`Inbox::bind_all`],
/// [`Inbox::add_endpoint`]); every process that connects to one of them with
/// [`Conn::connect`](crate::Conn) becomes a writer.
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
/// # Network writers (`tcp://`, `unix://`)
/// A network endpoint speaks ZMTP as a ZeroMQ **PAIR** socket (NULL, or CURVE with
/// [`Options::curve_secret`], exactly as a [`Listener`](crate::Listener)): writers are
/// [`Conn`](crate::Conn)s or pyzmq/libzmq `PAIR` sockets, one connection each (a ZeroMQ
/// `PUSH` socket cannot write to an inbox: it pairs only with `PULL`, RFC 23). Their
/// handshakes run side by side on an accept thread per endpoint (a slow or garbage peer
/// delays nobody), and one I/O thread reads every network writer's messages into a queue
/// of its own; the inbox takes from those queues in the same round robin as from the
/// `shm://` rings, so every writer, whatever its transport, gets one message per turn, and
/// sleeps on the same doorbell, which the I/O thread rings only when the inbox sleeps (the
/// receiving path never polls a socket: `shm://` writers keep their speed). A writer's queue
/// holds at most [`Options::ring_capacity`] bytes (plus one message, of at most
/// [`Options::max_message_len`]); beyond that its socket is not read until the inbox caught
/// up, so a fast network writer is held back by TCP's flow control, as a full ring holds
/// back an `shm://` writer. A peer that breaks the protocol is logged and dropped, after its
/// earlier messages. [`WriterId::pid`] is the writer's pid for `unix://` (`SO_PEERCRED`)
/// and 0 for `tcp://`.
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
    /// The network endpoints' threads, once one is bound (boxed, as `options`: neither is
    /// on the receiving path, and an `Inbox` stays small to move).
    net: Option<Box<Gatherer>>,
    /// Every endpoint, in the order bound (`tcp://…:0` with the port the OS chose).
    endpoints: Vec<String>,
    options: Box<Options>,
}

impl Inbox {
    /// Binds `endpoint` (`shm://name`, `unix:///path` or `tcp://host:port`) with default
    /// [`Options`].
    pub fn bind(endpoint: &str) -> Result<Inbox> {
        Self::bind_with(endpoint, Options::default())
    }

    /// Binds `endpoint` with `options` (wait strategy, spin budget, allowed uids; each
    /// `shm://` writer chooses its own ring capacity when it connects; for `tcp://` and
    /// `unix://` writers the ring capacity bounds what is read ahead of each, and
    /// `max_message_len`, `max_connections`, `heartbeat`, the CURVE settings and
    /// `handshake_timeout` apply as for a [`Listener`](crate::Listener)).
    pub fn bind_with(endpoint: &str, options: Options) -> Result<Inbox> {
        Self::bind_all(&[endpoint], options)
    }

    /// Binds every endpoint of `endpoints` (at least one, any mix of `shm://`, `unix://` and
    /// `tcp://`): writers connecting to any of them feed this one inbox, each at its own
    /// transport's speed, one message per writer in turn. If one fails to bind, the error
    /// names it and nothing stays bound.
    ///
    /// # Examples
    /// ```
    /// use shmsock::{Conn, Inbox, Options};
    /// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
    /// let mut inbox = Inbox::bind_all(&["shm://doc-mixed", "tcp://127.0.0.1:0"], Options::new())?;
    /// let tcp = inbox.endpoints()[1].clone(); // tcp://127.0.0.1:<port>
    /// let local = std::thread::spawn(|| Conn::connect("shm://doc-mixed")?.send(b"from shm"));
    /// let remote = std::thread::spawn(move || Conn::connect(&tcp)?.send(b"from tcp"));
    /// let mut got = vec![inbox.recv_vec()?, inbox.recv_vec()?];
    /// got.sort();
    /// assert_eq!(got, [b"from shm".to_vec(), b"from tcp".to_vec()]);
    /// local.join().unwrap()?;
    /// remote.join().unwrap()?;
    /// # Ok::<(), shmsock::Error>(())
    /// ```
    pub fn bind_all(endpoints: &[&str], options: Options) -> Result<Inbox> {
        let Some(first) = endpoints.first() else {
            return Err(Error::InvalidOptions {
                endpoint: "inbox".into(),
                reason: "no endpoint to bind: give at least one (shm://NAME, unix:///PATH or \
                         tcp://HOST:PORT)"
                    .into(),
            });
        };
        let mut inbox = Inbox {
            inner: ShmInbox::new((*first).to_owned(), &options.shm_config())?,
            net: None,
            endpoints: Vec::new(),
            options: Box::new(options),
        };
        for ep in endpoints {
            inbox.add_endpoint(ep)?;
        }
        Ok(inbox)
    }

    /// Binds one more endpoint (any transport) to this inbox, with the options it was bound
    /// with; its writers join the same round robin. Returns the endpoint as bound (for
    /// `tcp://HOST:0`, with the port the OS chose).
    pub fn add_endpoint(&mut self, endpoint: &str) -> Result<&str> {
        let ep: Endpoint = endpoint.parse()?;
        let bound = match &ep {
            Endpoint::Shm(name) => {
                let text = ep.to_string();
                self.inner.add_name(text.clone(), name)?;
                text
            }
            _ => {
                let net = match &mut self.net {
                    Some(net) => net,
                    None => self.net.insert(Box::new(Gatherer::start(
                        &ep.to_string(),
                        self.options.ring_capacity,
                        Arc::new(self.inner.door()),
                    )?)),
                };
                net.add(&ep, self.options.net_config())?
            }
        };
        self.endpoints.push(bound);
        Ok(self
            .endpoints
            .last()
            .map(String::as_str)
            .unwrap_or_default())
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

    /// The endpoint this inbox was bound to first (see [`Inbox::endpoints`]). For `tcp://`
    /// it is the bound address, with the port the OS chose for `tcp://HOST:0`.
    pub fn endpoint(&self) -> &str {
        self.endpoints
            .first()
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Every endpoint this inbox is bound to, in the order they were bound.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Path of the first endpoint's socket (for diagnostics): the rendezvous socket of an
    /// `shm://` name, the socket file of `unix://`, empty for `tcp://`.
    pub fn socket_path(&self) -> &Path {
        let first = self.endpoint();
        self.inner
            .socket_path_of(first)
            .or_else(|| self.net.as_ref().and_then(|n| n.socket_path_of(first)))
            .unwrap_or(Path::new(""))
    }

    /// Stops accepting writers and closes every connection (writers see
    /// [`Error::PeerClosed`]); dropping the inbox does the same.
    pub fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.inner.close();
        if let Some(net) = &mut self.net {
            net.close();
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.shut();
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}
