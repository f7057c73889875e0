//! Binding, accepting and connecting `tcp://` and `unix://` sockets, with the ZMTP
//! handshake on each new connection.
//!
//! A listener runs many handshakes at once: [`NetListener::accept_as`] takes every
//! connection the kernel has queued, advances each handshake when `poll` says its socket is
//! ready, and returns the first that completes. Each handshake has its own deadline
//! ([`NetConfig::handshake_timeout`] from its accept, for the whole exchange); a peer that misses it,
//! breaks the protocol or is not allowed (`unix://` uid check) is logged and dropped,
//! never returned as an error, so one bad peer cannot make a server give up. Handshakes
//! under way survive between calls. At most [`NetConfig::max_connections`] connections
//! (handshakes under way plus established connections) are held at once; newcomers beyond
//! that are accepted and closed at once, with a warning.

use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::admission::Admission;
use super::config::NetConfig;
use super::stream::handshake::Handshake;
use super::stream::NetConn;
use super::zmtp::SocketType;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::sys::timespec;

/// How often a listener at its connection limit logs the refusals (at most).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

enum Bound {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        /// Device and inode of our socket file, so Drop removes only our own.
        id: (u64, u64),
    },
}

/// A bound `tcp://` or `unix://` endpoint.
pub(crate) struct NetListener {
    /// The endpoint as bound (for `tcp://…:0`, with the port the OS chose).
    endpoint: String,
    path: PathBuf,
    bound: Bound,
    config: NetConfig,
    admission: Admission,
    /// Handshakes under way, kept between `accept` calls.
    pending: Mutex<Pending>,
}

/// A handshake under way, and whether its socket was ready at the last `poll`.
struct InFlight {
    handshake: Handshake,
    ready: bool,
}

/// The listener's handshakes under way and its refusal log.
#[derive(Default)]
struct Pending {
    handshakes: Vec<InFlight>,
    /// Connections refused at the limit since the last warning, and when that was.
    refused: u64,
    last_warning: Option<Instant>,
}

fn io_err(endpoint: &str, what: &str, e: impl Into<io::Error>) -> Error {
    Error::io(format!("{endpoint}: {what}"), e)
}

fn resolve(endpoint: &str, host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| io_err(endpoint, &format!("resolving host {host:?}"), e))?
        .collect();
    if addrs.is_empty() {
        return Err(io_err(
            endpoint,
            "resolving host",
            io::Error::other(format!("{host:?} has no address")),
        ));
    }
    Ok(addrs)
}

fn addr_in_use(endpoint: &str, what: String) -> Error {
    Error::AddrInUse {
        endpoint: endpoint.to_owned(),
        lock: what,
    }
}

/// Binds a Unix socket at `path`, replacing a stale socket file (nobody accepts on it) but
/// never a live one or a file that is not a socket. The socket is made 0600.
fn bind_unix(endpoint: &str, path: &Path) -> Result<(UnixListener, (u64, u64))> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(addr_in_use(endpoint, path.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(|e| {
                    io_err(
                        endpoint,
                        &format!("removing stale socket {}", path.display()),
                        e,
                    )
                })?;
            }
            Err(e) => return Err(io_err(endpoint, &format!("probing {}", path.display()), e)),
        },
        Ok(_) => {
            return Err(io_err(
                endpoint,
                &format!("binding {}", path.display()),
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way; remove it or pick another path",
                ),
            ))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => addr_in_use(endpoint, path.display().to_string()),
        _ => io_err(endpoint, &format!("binding {}", path.display()), e),
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err(endpoint, &format!("chmod {}", path.display()), e))?;
    let m = std::fs::symlink_metadata(path)
        .map_err(|e| io_err(endpoint, &format!("stat {}", path.display()), e))?;
    Ok((listener, (m.dev(), m.ino())))
}

impl NetListener {
    pub(crate) fn bind(ep: &Endpoint, config: NetConfig) -> Result<NetListener> {
        let endpoint = ep.to_string();
        if let Some(curve) = &config.curve {
            if !curve.is_client() && curve.keys.is_none() {
                return Err(Error::InvalidOptions {
                    endpoint,
                    reason: "a CURVE server needs its key pair: set Options::curve_secret \
                             (--curve-secret FILE), or drop curve_allow"
                        .into(),
                });
            }
        }
        match ep {
            Endpoint::Tcp { host, port } => {
                let addrs = resolve(&endpoint, host, *port)?;
                let listener = TcpListener::bind(&addrs[..]).map_err(|e| match e.kind() {
                    io::ErrorKind::AddrInUse => addr_in_use(&endpoint, format!("tcp port {port}")),
                    _ => io_err(&endpoint, "binding", e),
                })?;
                let local = listener
                    .local_addr()
                    .map_err(|e| io_err(&endpoint, "getsockname", e))?;
                listener
                    .set_nonblocking(true)
                    .map_err(|e| io_err(&endpoint, "making the socket non-blocking", e))?;
                Ok(NetListener {
                    endpoint: format!("tcp://{local}"),
                    path: PathBuf::new(),
                    bound: Bound::Tcp(listener),
                    admission: Admission::new(config.max_connections),
                    config,
                    pending: Mutex::default(),
                })
            }
            Endpoint::Unix(path) => {
                let (listener, id) = bind_unix(&endpoint, path)?;
                listener
                    .set_nonblocking(true)
                    .map_err(|e| io_err(&endpoint, "making the socket non-blocking", e))?;
                Ok(NetListener {
                    endpoint,
                    path: path.clone(),
                    bound: Bound::Unix { listener, id },
                    admission: Admission::new(config.max_connections),
                    config,
                    pending: Mutex::default(),
                })
            }
            Endpoint::Shm(_) => unreachable!("shm:// endpoints are bound by the shm transport"),
        }
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The listening socket (an async listener watches it and accepts on it).
    pub(crate) fn listening_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.bound {
            Bound::Tcp(l) => l.as_fd(),
            Bound::Unix { listener, .. } => listener.as_fd(),
        }
    }

    /// Accepts one PAIR peer and runs the ZMTP handshake with it.
    pub(crate) fn accept(&self, timeout: Option<Duration>) -> Result<NetConn> {
        self.accept_as(timeout, SocketType::Pair)
    }

    /// Whether handshakes are under way.
    #[cfg(feature = "tokio")]
    pub(crate) fn has_handshakes(&self) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        !pending.handshakes.is_empty()
    }

    /// Accepts peers and runs their ZMTP handshakes (as a `socket_type` socket), many at
    /// once; returns the first connection whose handshake completes, or
    /// [`Error::TimedOut`] when none does within `timeout` (`None`: wait for one). Peers
    /// that fail their handshake are logged and dropped.
    pub(crate) fn accept_as(
        &self,
        timeout: Option<Duration>,
        socket_type: SocketType,
    ) -> Result<NetConn> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut revents: Vec<PollFlags> = Vec::new();
        loop {
            self.take_new(&mut pending, socket_type);
            if let Some(conn) = self.advance_ready(&mut pending) {
                return Ok(conn);
            }
            let now = Instant::now();
            let earliest = pending
                .handshakes
                .iter()
                .map(|h| h.handshake.deadline())
                .min();
            let wake = match (deadline, earliest) {
                (Some(d), Some(e)) => Some(d.min(e)),
                (d, e) => d.or(e),
            };
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::TimedOut);
            }
            let ts = wake.map(|w| timespec(w.saturating_duration_since(now)));
            let mut fds = Vec::with_capacity(pending.handshakes.len() + 1);
            fds.push(PollFd::from_borrowed_fd(self.listening_fd(), PollFlags::IN));
            for h in &pending.handshakes {
                let mut flags = PollFlags::IN;
                if h.handshake.wants_write() {
                    flags |= PollFlags::OUT;
                }
                fds.push(PollFd::from_borrowed_fd(h.handshake.fd(), flags));
            }
            let polled = rustix::event::poll(&mut fds, ts.as_ref());
            revents.clear();
            revents.extend(fds.iter().skip(1).map(PollFd::revents));
            drop(fds);
            match polled {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(io_err(&self.endpoint, "poll", e)),
            }
            for (h, r) in pending.handshakes.iter_mut().zip(&revents) {
                h.ready |= !r.is_empty();
            }
        }
    }

    /// Accepts every connection the kernel has queued and starts its handshake (or closes
    /// it at once when the listener is at its connection limit).
    fn take_new(&self, pending: &mut MutexGuard<'_, Pending>, socket_type: SocketType) {
        loop {
            let accepted = match &self.bound {
                Bound::Tcp(l) => l.accept().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    OwnedFd::from(s)
                }),
                Bound::Unix { listener, .. } => listener.accept().map(|(s, _)| OwnedFd::from(s)),
            };
            let sock = match accepted {
                Ok(sock) => sock,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // Out of descriptors or memory: say so, and let the next call retry
                    // (the handshakes under way go on meanwhile).
                    tracing::warn!(endpoint = %self.endpoint, error = %e, "accept failed");
                    return;
                }
            };
            let Some(slot) = self.admission.admit() else {
                drop(sock);
                pending.refused += 1;
                let now = Instant::now();
                if pending
                    .last_warning
                    .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_INTERVAL)
                {
                    tracing::warn!(endpoint = %self.endpoint, refused = pending.refused,
                        max_connections = self.admission.max(),
                        "connection limit reached: refusing newcomers (Options::max_connections)");
                    pending.refused = 0;
                    pending.last_warning = Some(now);
                }
                continue;
            };
            let (sock, pid) = match &self.bound {
                Bound::Tcp(_) => (sock, 0),
                Bound::Unix { .. } => {
                    let stream = UnixStream::from(sock);
                    match self.config.peers.check_peer(&self.endpoint, &stream) {
                        Ok(pid) => (OwnedFd::from(stream), pid),
                        Err(e) => {
                            tracing::warn!(endpoint = %self.endpoint, error = %e, "peer refused");
                            continue;
                        }
                    }
                }
            };
            let handshake = Handshake::start(
                self.endpoint.clone(),
                sock,
                pid,
                socket_type,
                Instant::now() + self.config.handshake_timeout,
                Some(slot),
                &self.config,
            );
            pending.handshakes.push(InFlight {
                handshake,
                ready: true,
            });
        }
    }

    /// Advances the handshakes whose sockets are ready and drops those that failed or ran
    /// out of time; returns the first that completed.
    fn advance_ready(&self, pending: &mut Pending) -> Option<NetConn> {
        let now = Instant::now();
        let mut i = 0;
        while i < pending.handshakes.len() {
            let h = &mut pending.handshakes[i];
            let outcome = match std::mem::take(&mut h.ready) {
                true => h.handshake.advance(),
                false => Ok(false),
            };
            match outcome {
                Ok(true) => {
                    return Some(pending.handshakes.swap_remove(i).handshake.into_conn());
                }
                Ok(false) if now < h.handshake.deadline() => i += 1,
                failed => {
                    let e = failed.err().unwrap_or_else(|| h.handshake.timed_out());
                    tracing::warn!(endpoint = %self.endpoint, peer_pid = h.handshake.peer_pid(),
                        error = %e, "peer dropped");
                    pending.handshakes.swap_remove(i);
                }
            }
        }
        None
    }
}

impl Drop for NetListener {
    fn drop(&mut self) {
        if let Bound::Unix { id, .. } = &self.bound {
            match std::fs::symlink_metadata(&self.path) {
                Ok(m) if (m.dev(), m.ino()) == *id => {
                    let _ = std::fs::remove_file(&self.path);
                }
                _ => {} // replaced by someone else: not ours to remove
            }
        }
    }
}

/// Connects to a `tcp://` or `unix://` endpoint and runs the ZMTP handshake as a PAIR.
pub(crate) fn connect(ep: &Endpoint, config: &NetConfig) -> Result<NetConn> {
    connect_as(ep, config, SocketType::Pair)
}

/// Connects to a `tcp://` or `unix://` endpoint and runs the ZMTP handshake as a
/// `socket_type` socket.
pub(crate) fn connect_as(
    ep: &Endpoint,
    config: &NetConfig,
    socket_type: SocketType,
) -> Result<NetConn> {
    let endpoint = ep.to_string();
    let refused = |path: String| Error::ConnectionRefused {
        endpoint: endpoint.clone(),
        path,
    };
    let (sock, pid) = match ep {
        Endpoint::Tcp { host, port } => {
            let mut last = None;
            let mut stream = None;
            for addr in resolve(&endpoint, host, *port)? {
                match TcpStream::connect_timeout(&addr, config.handshake_timeout) {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = Some((addr, e)),
                }
            }
            match (stream, last) {
                (Some(s), _) => {
                    let _ = s.set_nodelay(true);
                    (OwnedFd::from(s), 0)
                }
                (None, Some((addr, e))) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(refused(addr.to_string()))
                }
                (None, Some((addr, e))) => {
                    return Err(io_err(&endpoint, &format!("connecting to {addr}"), e))
                }
                (None, None) => unreachable!("resolve returns at least one address"),
            }
        }
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path).map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
                    refused(path.display().to_string())
                }
                _ => io_err(&endpoint, &format!("connecting to {}", path.display()), e),
            })?;
            let pid = config.peers.check_peer(&endpoint, &s)?;
            (OwnedFd::from(s), pid)
        }
        Endpoint::Shm(_) => unreachable!("shm:// endpoints are connected by the shm transport"),
    };
    let mut conn = NetConn::handshake(
        endpoint,
        sock,
        pid,
        config,
        config.handshake_timeout,
        socket_type,
    )?;
    conn.set_heartbeat(config.heartbeat);
    Ok(conn)
}
