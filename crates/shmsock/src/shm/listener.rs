//! `shm://` listener: a bound name whose accepted peers become [`ShmConn`]s.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::config::ShmConfig;
use super::doorbell::Doorbell;
use super::hello::Role;
use super::label::SegmentRole;
use super::pair::{create_pool, ShmConn};
use super::rendezvous::{listen_side, BoundName, Extras};
use super::segment::{OwnedPool, OwnedSegment};
use crate::error::Result;

/// A bound `shm://` name.
pub(crate) struct ShmListener {
    name: BoundName,
    opts: ShmConfig,
}

impl ShmListener {
    pub(crate) fn bind(endpoint: String, name: &str, opts: ShmConfig) -> Result<Self> {
        Ok(ShmListener {
            name: BoundName::bind(&endpoint, name, SegmentRole::Listener)?,
            opts,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        self.name.endpoint()
    }

    pub(crate) fn socket_path(&self) -> &std::path::Path {
        self.name.socket_path()
    }

    /// The listening socket, for a reactor to watch (see `async_io`).
    #[cfg(feature = "tokio")]
    pub(crate) fn listening_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.name.listening_fd()
    }

    /// Accepts one connection (waiting at most `timeout`) and runs the handshake. A peer
    /// that fails the handshake is dropped and reported as an error; the listener stays
    /// usable.
    pub(crate) fn accept(&self, timeout: Option<Duration>) -> Result<ShmConn> {
        let sock = self.name.accept(timeout)?;
        accept_handshake(self.endpoint(), sock, &self.opts, None)
    }
}

/// The listening side of a `Conn` handshake on an accepted socket. `bell`: ask the peer to
/// wake us by ringing this doorbell (an async receiver) instead of our futex words.
pub(crate) fn accept_handshake(
    endpoint: &str,
    sock: UnixStream,
    opts: &ShmConfig,
    bell: Option<&Doorbell>,
) -> Result<ShmConn> {
    let capacity = opts.ring_capacity;
    let pool = create_pool(endpoint, opts)?;
    let (peer, mine) = listen_side(
        endpoint,
        sock,
        &opts.peers,
        (Role::Conn, Role::Conn),
        Extras {
            bell,
            pool: pool.as_ref().map(OwnedPool::shape),
        },
        || OwnedSegment::create_for(capacity, SegmentRole::Listener, endpoint).map_err(Into::into),
    )?;
    ShmConn::new(endpoint.to_owned(), peer, mine, opts, pool)
}
