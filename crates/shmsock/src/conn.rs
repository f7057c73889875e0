//! The socket-like 1:1 API: [`Listener`] and [`Conn`], dispatching on the endpoint's scheme.

use std::path::Path;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::shm::{Mode, ShmConn, ShmListener};

fn unsupported(ep: &Endpoint) -> Error {
    Error::Unsupported {
        endpoint: ep.to_string(),
        scheme: ep.scheme(),
    }
}

/// A bound endpoint that accepts connections, like a listening socket.
///
/// Dropping it removes its name; connections already accepted live on.
///
/// # Examples
/// ```
/// use shmsock::{Conn, Listener};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", std::env::temp_dir().join(format!("shmsock-doc-{}", std::process::id())));
/// let listener = Listener::bind("shm://doc-listener")?;
/// let client = std::thread::spawn(|| -> shmsock::Result<()> {
///     let mut conn = Conn::connect("shm://doc-listener")?;
///     conn.send(b"hello")?;
///     Ok(())
/// });
/// let mut conn = listener.accept()?;
/// assert_eq!(conn.recv_vec()?, b"hello");
/// client.join().unwrap()?;
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Listener {
    inner: ShmListener,
}

impl Listener {
    /// Binds `endpoint` with default [`Options`].
    ///
    /// Errors: [`Error::InvalidEndpoint`], [`Error::AddrInUse`] if a live listener holds the
    /// name (a stale one left by a dead process is replaced), [`Error::Unsupported`] for
    /// `unix://` and `tcp://` (not implemented yet).
    pub fn bind(endpoint: &str) -> Result<Listener> {
        Self::bind_with(endpoint, Options::default())
    }

    /// Binds `endpoint` with `options` (ring capacity of each accepted connection's
    /// outbound ring, wait strategy, allowed uids).
    pub fn bind_with(endpoint: &str, options: Options) -> Result<Listener> {
        let ep: Endpoint = endpoint.parse()?;
        match &ep {
            Endpoint::Shm(name) => Ok(Listener {
                inner: ShmListener::bind(ep.to_string(), name, options)?,
            }),
            _ => Err(unsupported(&ep)),
        }
    }

    /// Waits for a peer and completes the handshake with it.
    ///
    /// A peer that fails the handshake (wrong uid: [`Error::PermissionDenied`]; bad hello or
    /// segment: [`Error::Handshake`]) is dropped and its error returned; the listener stays
    /// usable, so servers typically log the error and call `accept` again.
    pub fn accept(&self) -> Result<Conn> {
        Ok(Conn {
            inner: self.inner.accept(None)?,
        })
    }

    /// Like [`Listener::accept`], but returns [`Error::TimedOut`] if no peer connects within
    /// `timeout`. (A peer that connects in time gets the full handshake timeout.)
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Conn> {
        Ok(Conn {
            inner: self.inner.accept(Some(timeout))?,
        })
    }

    /// The endpoint this listener is bound to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// Path of the rendezvous socket (for diagnostics).
    pub fn socket_path(&self) -> &Path {
        self.inner.socket_path()
    }
}

/// A connection: ordered, reliable messages in both directions, like a `SOCK_SEQPACKET`
/// socket. `send` blocks when the peer's ring is full (back-pressure); `recv` blocks when
/// there is nothing to read. After the peer closed or died, `recv` first returns everything
/// it had sent, then [`Error::PeerClosed`] or [`Error::PeerGone`].
///
/// A `Conn` is `Send` (it can move to another thread) but not `Sync`: one thread uses it at
/// a time. Dropping it closes it cleanly.
///
/// # Examples
/// ```
/// use shmsock::{Conn, Listener, Error};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", std::env::temp_dir().join(format!("shmsock-doc-{}", std::process::id())));
/// let listener = Listener::bind("shm://doc-conn")?;
/// let t = std::thread::spawn(|| -> shmsock::Result<()> {
///     let mut c = Conn::connect("shm://doc-conn")?;
///     c.send(b"ping")?;
///     let mut buf = [0u8; 64];
///     let n = c.recv(&mut buf)?;
///     assert_eq!(&buf[..n], b"pong");
///     Ok(())
/// });
/// let mut s = listener.accept()?;
/// assert_eq!(s.recv_vec()?, b"ping");
/// s.send(b"pong")?;
/// t.join().unwrap()?;
/// assert!(matches!(s.recv_vec(), Err(Error::PeerClosed { .. })));
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Conn {
    inner: ShmConn,
}

impl Conn {
    /// Connects to `endpoint` with default [`Options`].
    ///
    /// Errors: [`Error::ConnectionRefused`] if nobody listens, [`Error::PermissionDenied`]
    /// if the listener runs as a uid we do not allow, [`Error::Refused`] if it refused us,
    /// [`Error::Handshake`]/[`Error::VersionMismatch`] for a bad peer.
    pub fn connect(endpoint: &str) -> Result<Conn> {
        Self::connect_with(endpoint, Options::default())
    }

    /// Connects to `endpoint` with `options`.
    pub fn connect_with(endpoint: &str, options: Options) -> Result<Conn> {
        let ep: Endpoint = endpoint.parse()?;
        match &ep {
            Endpoint::Shm(name) => Ok(Conn {
                inner: crate::shm::conn_connect(ep.to_string(), name, &options)?,
            }),
            _ => Err(unsupported(&ep)),
        }
    }

    /// Sends one message, waiting while the peer's ring is full.
    ///
    /// Errors: [`Error::TooLarge`] (nothing is sent), [`Error::PeerGone`] /
    /// [`Error::PeerClosed`] once the peer is known to have ended.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg, Mode::Block)
    }

    /// Sends one message if there is room now, else [`Error::WouldBlock`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg, Mode::Try)
    }

    /// Sends one message, waiting at most `timeout` for room ([`Error::TimedOut`]).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.inner.send(msg, Mode::timeout(timeout))
    }

    /// Receives the next message into `buf` and returns its length.
    ///
    /// If `buf` is too small, [`Error::BufferTooSmall`] is returned and the message stays
    /// queued (retry with a larger buffer, or use [`Conn::recv_vec`]).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into(buf, Mode::Block)
    }

    /// Receives a message if one is queued, else [`Error::WouldBlock`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into(buf, Mode::Try)
    }

    /// Receives the next message, waiting at most `timeout` ([`Error::TimedOut`]).
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_into(buf, Mode::timeout(timeout))
    }

    /// Receives the next message into a new `Vec`.
    pub fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let frame = self.inner.next_frame(Mode::Block)?;
        let mut out = vec![0; frame.len];
        self.inner.read_frame(frame, &mut out)?;
        self.inner.finish_frame(frame);
        Ok(out)
    }

    fn recv_into(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        let frame = self.inner.next_frame(mode)?;
        if frame.len > buf.len() {
            return Err(Error::BufferTooSmall {
                len: frame.len,
                buf: buf.len(),
            });
        }
        self.inner.read_frame(frame, buf)?;
        self.inner.finish_frame(frame);
        Ok(frame.len)
    }

    /// Closes the connection cleanly: the peer receives everything sent so far, then
    /// [`Error::PeerClosed`]. Dropping the `Conn` does the same.
    pub fn close(mut self) {
        self.inner.close();
    }

    /// The endpoint of this connection.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// The peer's process id (from `SO_PEERCRED`).
    pub fn peer_pid(&self) -> i32 {
        self.inner.peer_pid()
    }

    /// Largest message `send` accepts on this connection.
    pub fn max_message_len(&self) -> usize {
        self.inner.max_message_len()
    }

    #[cfg(test)]
    pub(crate) fn shm(&self) -> &ShmConn {
        &self.inner
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("endpoint", &self.endpoint())
            .field("peer_pid", &self.peer_pid())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}
