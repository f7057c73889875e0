//! `shm://` listener: binds the rendezvous socket and runs the listener side of the handshake.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use rustix::fs::{FlockOperation, Mode as FileMode, OFlags};

use super::conn::{accept_peer_hello, ShmConn};
use super::handshake::{self, Hello, RefuseReason, ACK, HANDSHAKE_TIMEOUT};
use super::segment::OwnedSegment;
use crate::error::{Error, Result};
use crate::options::Options;

/// A bound `shm://` name.
pub(crate) struct ShmListener {
    endpoint: String,
    listener: UnixListener,
    sock_path: PathBuf,
    lock_path: PathBuf,
    /// Held (flock) for the life of the listener; released by the kernel if we die.
    _lock: OwnedFd,
    opts: Options,
}

/// Takes the exclusive lock on `path`, making sure the locked file is still the one at `path`
/// (a previous owner may have unlinked it between our open and our flock).
fn lock_name(endpoint: &str, path: &PathBuf) -> Result<OwnedFd> {
    let ctx = |what: &str| format!("{endpoint}: {what} lock file {}", path.display());
    for _ in 0..8 {
        let fd = rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            FileMode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io(ctx("opening"), e))?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Error::AddrInUse {
                    endpoint: endpoint.to_owned(),
                    lock: path.display().to_string(),
                })
            }
            Err(e) => return Err(Error::io(ctx("locking"), e)),
        }
        let ours = rustix::fs::fstat(&fd).map_err(|e| Error::io(ctx("checking"), e))?;
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == ours.st_ino && m.dev() == ours.st_dev => return Ok(fd),
            _ => continue, // unlinked or replaced under us: retry on the new file
        }
    }
    Err(Error::io(
        ctx("locking"),
        io::Error::other("lock file keeps changing"),
    ))
}

impl ShmListener {
    pub(crate) fn bind(endpoint: String, name: &str, opts: Options) -> Result<Self> {
        let (sock_path, lock_path) = handshake::paths(name)
            .map_err(|e| Error::io(format!("{endpoint}: rendezvous directory"), e))?;
        let lock = lock_name(&endpoint, &lock_path)?;
        // We hold the lock, so any socket file left here belongs to a dead listener.
        match std::fs::remove_file(&sock_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    format!("{endpoint}: removing stale socket {}", sock_path.display()),
                    e,
                ))
            }
        }
        let listener = UnixListener::bind(&sock_path)
            .map_err(|e| Error::io(format!("{endpoint}: binding {}", sock_path.display()), e))?;
        std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("{endpoint}: chmod {}", sock_path.display()), e))?;
        Ok(ShmListener {
            endpoint,
            listener,
            sock_path,
            lock_path,
            _lock: lock,
            opts,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn socket_path(&self) -> &std::path::Path {
        &self.sock_path
    }

    /// Accepts one connection and runs the handshake. A peer that fails the handshake is
    /// dropped and reported as an error; the listener stays usable.
    pub(crate) fn accept(&self) -> Result<ShmConn> {
        let (sock, _) = self
            .listener
            .accept()
            .map_err(|e| Error::io(format!("{}: accept", self.endpoint), e))?;
        self.handshake(sock)
    }

    /// Like `accept`, but gives up with `TimedOut` if no peer connects within `timeout`.
    pub(crate) fn accept_timeout(&self, timeout: std::time::Duration) -> Result<ShmConn> {
        use rustix::event::{PollFd, PollFlags};
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ts = rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.listener, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => return Err(Error::TimedOut),
                Ok(_) => return self.accept(),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io(format!("{}: poll", self.endpoint), e)),
            }
        }
    }

    fn handshake(&self, sock: UnixStream) -> Result<ShmConn> {
        let ep = &self.endpoint;
        let io_err = |what: &str, e: io::Error| Error::io(format!("{ep}: handshake: {what}"), e);
        handshake::set_handshake_timeouts(&sock, Some(HANDSHAKE_TIMEOUT))
            .map_err(|e| io_err("timeouts", e))?;
        let cred = rustix::net::sockopt::socket_peercred(&sock)
            .map_err(|e| io_err("SO_PEERCRED", e.into()))?;
        let (pid, uid) = (cred.pid.as_raw_nonzero().get(), cred.uid.as_raw());
        // Credentials are checked before any fd leaves this process.
        if !handshake::uid_allowed(uid, &self.opts.allowed_uids) {
            let _ = handshake::send_hello(&sock, &Hello::refuse(RefuseReason::Uid), None);
            return Err(Error::PermissionDenied {
                endpoint: ep.clone(),
                pid,
                uid,
                allowed: allowed_text(&self.opts.allowed_uids),
            });
        }
        let mine = match OwnedSegment::create(self.opts.ring_capacity) {
            Ok(seg) => seg,
            Err(e) => {
                let _ = handshake::send_hello(&sock, &Hello::refuse(RefuseReason::Resources), None);
                return Err(io_err(
                    "creating our segment (memfd_create/ftruncate/mmap)",
                    e.into(),
                ));
            }
        };
        let fd = mine
            .fd()
            .try_clone_to_owned()
            .map_err(|e| io_err("dup", e))?;
        handshake::send_hello(&sock, &Hello::greeting(mine.capacity()), Some(&fd))
            .map_err(|e| io_err("sending hello", e))?;
        drop(fd);
        let received = handshake::recv_hello(&sock).map_err(|e| io_err("receiving hello", e))?;
        let (_, peer) = accept_peer_hello(ep, received)?;
        rustix::net::send(&sock, &[ACK], rustix::net::SendFlags::NOSIGNAL)
            .map_err(|e| io_err("sending ack", e.into()))?;
        handshake::set_handshake_timeouts(&sock, None).map_err(|e| io_err("timeouts", e))?;
        ShmConn::new(ep.clone(), pid, sock, mine, peer, &self.opts)
    }
}

/// The allow-list as text for error messages.
pub(crate) fn allowed_text(allowed: &[u32]) -> String {
    if allowed.is_empty() {
        format!("only our own uid {}", rustix::process::geteuid().as_raw())
    } else {
        format!("{allowed:?}")
    }
}

impl Drop for ShmListener {
    fn drop(&mut self) {
        // Remove the names while we still hold the lock, so a new binder never sees our
        // socket as live after we are gone.
        let _ = std::fs::remove_file(&self.sock_path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}
