//! [`AsyncListener`] and [`AsyncConn`]: the socket-like 1:1 API for tokio.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;

use super::net::AsyncNetConn;
use super::reactor::{blocking, joined, reactor_error, register};
use super::shm::AsyncShmConn;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::net::socket::{self as net_socket, NetListener};
use crate::net::stream::NetConn;
use crate::options::Options;
use crate::shm::doorbell::Doorbell;
use crate::shm::listener::ShmListener;
use crate::shm::pair::{self as shm_pair, ShmConn};

/// The transport behind an [`AsyncConn`]. Not boxed, as in `Conn`: a pointer chase on
/// every shm send/recv costs more than the bytes.
#[allow(clippy::large_enum_variant)]
enum ConnInner {
    Shm(AsyncShmConn),
    Net(AsyncNetConn),
}

/// A finished handshake, before its fds are registered with the reactor (moved once).
#[allow(clippy::large_enum_variant)]
enum Handshaken {
    Shm(ShmConn, Doorbell),
    Net(NetConn),
}

impl Handshaken {
    fn into_conn(self) -> Result<AsyncConn> {
        let inner = match self {
            Handshaken::Shm(conn, bell) => ConnInner::Shm(AsyncShmConn::new(conn, bell)?),
            Handshaken::Net(conn) => ConnInner::Net(AsyncNetConn::new(conn)?),
        };
        Ok(AsyncConn { inner })
    }
}

/// A new doorbell for an async `shm://` side.
fn doorbell(endpoint: &str) -> Result<Doorbell> {
    Doorbell::new()
        .map_err(|e| Error::io(format!("{endpoint}: creating the doorbell socket pair"), e))
}

/// The transport behind an [`AsyncListener`].
#[allow(clippy::large_enum_variant)]
enum ListenerInner {
    /// Shared with the blocking-pool task that runs its handshakes.
    Shm(Arc<ShmListener>),
    /// Shared with the blocking-pool task that runs its handshakes.
    Net(Arc<NetListener>),
}

/// How long one blocking-pool turn of an accept runs before the task ends and the next
/// `accept` starts another (so an idle listener holds no thread).
const ACCEPT_SLICE: Duration = Duration::from_millis(100);

/// A bound endpoint that accepts [`AsyncConn`]s: the async [`Listener`](crate::Listener).
///
/// Peers may be blocking [`Conn`](crate::Conn)s or [`AsyncConn`]s alike. The listening
/// socket is registered with tokio's reactor; while peers are connecting, the handshakes
/// run on tokio's blocking pool in short turns (each bounded by
/// [`Options::handshake_timeout`](crate::Options::handshake_timeout)). Dropping the listener
/// removes its name; accepted connections live on. As with the blocking listener, many
/// handshakes run at once and a peer that fails or stalls its own delays nobody.
///
/// # Examples
/// ```
/// use shmsock::{AsyncConn, AsyncListener};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut listener = AsyncListener::bind("shm://doc-async-listener")?;
/// let client = tokio::spawn(async {
///     let mut conn = AsyncConn::connect("shm://doc-async-listener").await?;
///     conn.send(b"hello").await
/// });
/// let mut conn = listener.accept().await?;
/// assert_eq!(conn.recv_vec().await?, b"hello");
/// client.await.unwrap()?;
/// # Ok::<(), shmsock::Error>(())
/// # }).unwrap();
/// ```
pub struct AsyncListener {
    inner: ListenerInner,
    /// A non-blocking duplicate of the listening socket, registered with the reactor.
    accept_fd: AsyncFd<OwnedFd>,
    /// A handshake under way (kept across a cancelled `accept`).
    pending: Option<JoinHandle<Result<Handshaken>>>,
}

impl AsyncListener {
    /// Binds `endpoint` with default [`Options`]. Must be called within a tokio runtime.
    /// Errors as [`Listener::bind`](crate::Listener::bind).
    pub fn bind(endpoint: &str) -> Result<AsyncListener> {
        Self::bind_with(endpoint, Options::default())
    }

    /// Binds `endpoint` with `options` (ring capacity, allowed uids, loan pool; the wait
    /// strategy does not apply: async sides never spin).
    pub fn bind_with(endpoint: &str, options: Options) -> Result<AsyncListener> {
        let inner = options.open(
            endpoint,
            |ep, name, cfg| {
                ShmListener::bind_async(ep, name, cfg).map(|l| ListenerInner::Shm(Arc::new(l)))
            },
            |ep, cfg| NetListener::bind(&ep, cfg).map(|l| ListenerInner::Net(Arc::new(l))),
        )?;
        let (endpoint, fd) = match &inner {
            ListenerInner::Shm(l) => (l.endpoint(), l.listening_fd()),
            ListenerInner::Net(l) => (l.endpoint(), l.listening_fd()),
        };
        let accept_fd = register(endpoint, fd, Interest::READABLE)?;
        // The flag is on the socket itself, shared with the listener's own fd: nothing
        // accepts on that one any more (this type owns it).
        rustix::fs::fcntl_getfl(accept_fd.get_ref())
            .and_then(|flags| {
                rustix::fs::fcntl_setfl(accept_fd.get_ref(), flags | rustix::fs::OFlags::NONBLOCK)
            })
            .map_err(|e| Error::io(format!("{endpoint}: O_NONBLOCK"), e))?;
        Ok(AsyncListener {
            inner,
            accept_fd,
            pending: None,
        })
    }

    /// Waits for a peer and completes the handshake with it.
    ///
    /// A peer that fails the handshake is dropped: over `shm://` its error is returned and
    /// the listener stays usable; over `tcp://` and `unix://` it is logged and `accept`
    /// goes on (see [`Listener::accept`](crate::Listener::accept)).
    ///
    /// # Cancel safety
    /// Cancel-safe: if the future is dropped while a handshake is under way, the handshake
    /// goes on and the next `accept` returns its connection; no peer is lost.
    pub async fn accept(&mut self) -> Result<AsyncConn> {
        loop {
            if let Some(pending) = &mut self.pending {
                let done = pending.await;
                self.pending = None;
                match joined(self.endpoint(), done) {
                    // A turn of a tcp:// or unix:// accept ended with no handshake done.
                    Err(Error::TimedOut) => continue,
                    other => return other?.into_conn(),
                }
            }
            // The blocking listener runs every handshake under way at once (a silent peer
            // delays nobody); it runs on the blocking pool in turns, and only while a peer
            // is connecting or a handshake is under way.
            let busy = match &self.inner {
                ListenerInner::Shm(l) => l.has_handshakes(),
                ListenerInner::Net(l) => l.has_handshakes(),
            };
            if !busy {
                let mut ready = self
                    .accept_fd
                    .readable()
                    .await
                    .map_err(|e| reactor_error(self.endpoint(), e))?;
                ready.clear_ready();
            }
            self.pending = Some(match &self.inner {
                ListenerInner::Shm(l) => {
                    let l = l.clone();
                    tokio::task::spawn_blocking(move || {
                        let (conn, bell) = l.accept_with_bell(Some(ACCEPT_SLICE))?;
                        let bell = bell.expect("an async listener gives every connection a bell");
                        Ok(Handshaken::Shm(conn, bell))
                    })
                }
                ListenerInner::Net(l) => {
                    let l = l.clone();
                    tokio::task::spawn_blocking(move || {
                        l.accept(Some(ACCEPT_SLICE)).map(Handshaken::Net)
                    })
                }
            });
        }
    }

    /// The endpoint this listener is bound to (for `tcp://…:0`, with the chosen port).
    pub fn endpoint(&self) -> &str {
        match &self.inner {
            ListenerInner::Shm(l) => l.endpoint(),
            ListenerInner::Net(l) => l.endpoint(),
        }
    }

    /// Path of the rendezvous socket (empty for `tcp://`).
    pub fn socket_path(&self) -> &Path {
        match &self.inner {
            ListenerInner::Shm(l) => l.socket_path(),
            ListenerInner::Net(l) => l.socket_path(),
        }
    }
}

/// A connection for tokio: the async [`Conn`](crate::Conn). Ordered, reliable messages in
/// both directions; the peer may be a blocking `Conn` or another `AsyncConn`, in this
/// process or another. After the peer closed or died, `recv` first returns everything it
/// had sent, then [`Error::PeerClosed`] or [`Error::PeerGone`] — at once, not at the next
/// periodic check: the peer's hang-up wakes the task.
///
/// Over `shm://` it waits on a doorbell (a Unix datagram socket pair) that the peer rings
/// only when this side announced that it sleeps (see the crate's "tokio" section); over
/// `tcp://` and `unix://`
/// on the socket's readiness. It never spins and uses no thread of its own. Methods take
/// `&mut self`: one task uses a connection at a time. Dropping it closes it cleanly (over
/// `tcp://`/`unix://` the drop may wait up to a second for unsent bytes, as `Conn`'s does).
///
/// # Examples
/// An echo server and its client over `unix://` (the same code runs over `shm://` and
/// `tcp://`):
/// ```
/// use shmsock::{AsyncConn, AsyncListener};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("shmsock-doc-echo-{}.sock", std::process::id()));
/// let endpoint = format!("unix://{}", path.display());
/// let mut listener = AsyncListener::bind(&endpoint)?;
/// let server = tokio::spawn(async move {
///     let mut conn = listener.accept().await?;
///     let mut buf = vec![0u8; 4096];
///     loop {
///         match conn.recv(&mut buf).await {
///             Ok(n) => conn.send(&buf[..n]).await?,
///             Err(e) if e.is_disconnect() => return Ok(()),
///             Err(e) => return Err(e),
///         }
///     }
/// });
/// let mut conn = AsyncConn::connect(&endpoint).await?;
/// conn.send(b"ping").await?;
/// assert_eq!(conn.recv_vec().await?, b"ping");
/// drop(conn);
/// server.await.unwrap()?;
/// # Ok::<(), shmsock::Error>(())
/// # }).unwrap();
/// ```
pub struct AsyncConn {
    inner: ConnInner,
}

impl AsyncConn {
    /// Connects to `endpoint` with default [`Options`]. Errors as
    /// [`Conn::connect`](crate::Conn::connect).
    ///
    /// # Cancel safety
    /// Not cancel-safe: a connection whose handshake completes after the future was
    /// dropped is closed at once (the listener's side sees [`Error::PeerClosed`]).
    pub async fn connect(endpoint: &str) -> Result<AsyncConn> {
        Self::connect_with(endpoint, Options::default()).await
    }

    /// Connects to `endpoint` with `options` (ring capacity, allowed uids, loan pool; the
    /// wait strategy does not apply).
    pub async fn connect_with(endpoint: &str, options: Options) -> Result<AsyncConn> {
        let ep: Endpoint = endpoint.parse()?;
        let shown = ep.to_string();
        let done = match ep {
            Endpoint::Shm(name) => {
                let bell = doorbell(&shown)?;
                let ep = shown.clone();
                blocking(&shown, move || {
                    let conn =
                        shm_pair::connect_with_bell(ep, &name, &options.shm_config(), Some(&bell))?;
                    Ok(Handshaken::Shm(conn, bell))
                })
                .await?
            }
            ep => {
                blocking(&shown, move || {
                    net_socket::connect(&ep, &options.net_config()).map(Handshaken::Net)
                })
                .await?
            }
        };
        done.into_conn()
    }

    /// Sends one message, waiting while the peer's ring (or socket buffer) is full.
    ///
    /// Errors: [`Error::TooLarge`] (nothing is sent), [`Error::PeerGone`] /
    /// [`Error::PeerClosed`] once the peer is known to have ended.
    ///
    /// # Cancel safety
    /// Cancel-safe. Over `shm://` the message is sent entirely or not at all. Over
    /// `tcp://`/`unix://`, once its first byte reached the kernel the message counts as sent:
    /// if the future is dropped then, the rest is kept and written before anything else
    /// (by the next call, or the drop), so the stream never carries half a message.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        match &mut self.inner {
            ConnInner::Shm(c) => c.send(msg).await,
            ConnInner::Net(c) => c.send(msg).await,
        }
    }

    /// Receives the next message into `buf` and returns its length.
    ///
    /// If `buf` is too small, [`Error::BufferTooSmall`] is returned and the message stays
    /// queued. After the peer ended: its remaining messages, then the end.
    ///
    /// # Cancel safety
    /// Cancel-safe: if the future is dropped (e.g. by `tokio::time::timeout` or a losing
    /// `select!` branch), no message is lost; the next `recv` returns it.
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let shm = match &mut self.inner {
            ConnInner::Shm(c) => c,
            ConnInner::Net(c) => return c.recv(buf).await,
        };
        let frame = shm.next_frame().await?;
        let conn = shm.side_mut();
        let (len, loan) = conn.message_len(frame)?;
        if len > buf.len() {
            return Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            });
        }
        conn.take_message(frame, loan, &mut buf[..len])?;
        Ok(len)
    }

    /// Receives the next message into a new `Vec`.
    ///
    /// # Cancel safety
    /// Cancel-safe, like [`AsyncConn::recv`].
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let shm = match &mut self.inner {
            ConnInner::Shm(c) => c,
            ConnInner::Net(c) => return c.recv_vec().await,
        };
        let frame = shm.next_frame().await?;
        let conn = shm.side_mut();
        let (len, loan) = conn.message_len(frame)?;
        let mut out = vec![0; len];
        conn.take_message(frame, loan, &mut out)?;
        Ok(out)
    }

    /// Closes the connection cleanly: the peer receives everything sent so far, then
    /// [`Error::PeerClosed`]. Dropping the connection does the same.
    pub fn close(mut self) {
        match &mut self.inner {
            ConnInner::Shm(c) => c.side_mut().close(),
            ConnInner::Net(c) => c.conn_mut().close(),
        }
    }

    /// The endpoint of this connection.
    pub fn endpoint(&self) -> &str {
        match &self.inner {
            ConnInner::Shm(c) => c.side().endpoint(),
            ConnInner::Net(c) => c.conn().endpoint(),
        }
    }

    /// The peer's process id (from `SO_PEERCRED`), or 0 when unknown (`tcp://` peers).
    pub fn peer_pid(&self) -> i32 {
        match &self.inner {
            ConnInner::Shm(c) => c.side().peer_pid(),
            ConnInner::Net(c) => c.conn().peer_pid(),
        }
    }

    /// Largest message `send` accepts on this connection (see
    /// [`Conn::max_message_len`](crate::Conn::max_message_len)).
    pub fn max_message_len(&self) -> usize {
        match &self.inner {
            ConnInner::Shm(c) => c.side().max_message_len(),
            ConnInner::Net(c) => c.conn().max_message_len(),
        }
    }
}

impl std::fmt::Debug for AsyncConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncConn")
            .field("endpoint", &self.endpoint())
            .field("peer_pid", &self.peer_pid())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AsyncListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncListener")
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}
