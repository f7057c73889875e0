//! Binding, accepting and connecting `tcp://` and `unix://` sockets, with the ZMTP
//! handshake on each new connection.

use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::NetConfig;
use super::stream::NetConn;
use super::zmtp::SocketType;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::sys::wait_readable;
use crate::vocabulary::HANDSHAKE_TIMEOUT;

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
                Ok(NetListener {
                    endpoint: format!("tcp://{local}"),
                    path: PathBuf::new(),
                    bound: Bound::Tcp(listener),
                    config,
                })
            }
            Endpoint::Unix(path) => {
                let (listener, id) = bind_unix(&endpoint, path)?;
                Ok(NetListener {
                    endpoint,
                    path: path.clone(),
                    bound: Bound::Unix { listener, id },
                    config,
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

    /// Accepts one peer and runs the ZMTP handshake with it as a `socket_type` socket.
    pub(crate) fn accept_as(
        &self,
        timeout: Option<Duration>,
        socket_type: SocketType,
    ) -> Result<NetConn> {
        if let Some(timeout) = timeout {
            match wait_readable(self.listening_fd(), timeout) {
                Ok(true) => {}
                Ok(false) => return Err(Error::TimedOut),
                Err(e) => return Err(io_err(&self.endpoint, "poll", e)),
            }
        }
        let accept_err = |e| io_err(&self.endpoint, "accept", e);
        let (sock, pid) = match &self.bound {
            Bound::Tcp(l) => {
                let (s, _) = l.accept().map_err(accept_err)?;
                let _ = s.set_nodelay(true);
                (OwnedFd::from(s), 0)
            }
            Bound::Unix { listener, .. } => {
                let (s, _) = listener.accept().map_err(accept_err)?;
                let pid = self.config.peers.check_peer(&self.endpoint, &s)?;
                (OwnedFd::from(s), pid)
            }
        };
        NetConn::handshake(
            self.endpoint.clone(),
            sock,
            pid,
            self.config.max_message_len,
            HANDSHAKE_TIMEOUT,
            socket_type,
        )
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

#[cfg(feature = "tokio")]
impl NetListener {
    /// Whether this listener is `tcp://` (else `unix://`).
    pub(crate) fn is_tcp(&self) -> bool {
        matches!(self.bound, Bound::Tcp(_))
    }

    /// The settings it was bound with.
    pub(crate) fn config(&self) -> &NetConfig {
        &self.config
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
                match TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT) {
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
    NetConn::handshake(
        endpoint,
        sock,
        pid,
        config.max_message_len,
        HANDSHAKE_TIMEOUT,
        socket_type,
    )
}
