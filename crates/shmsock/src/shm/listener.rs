//! `shm://` listener: a bound name whose accepted peers become [`ShmConn`]s.

use std::time::Duration;

use super::conn::{create_pool, ShmConn};
use super::handshake::Role;
use super::rendezvous::{listen_side, BoundName, Extras};
use super::segment::{OwnedPool, OwnedSegment, SegmentRole};
use crate::error::Result;
use crate::options::Options;

/// A bound `shm://` name.
pub(crate) struct ShmListener {
    name: BoundName,
    opts: Options,
}

impl ShmListener {
    pub(crate) fn bind(endpoint: String, name: &str, opts: Options) -> Result<Self> {
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

    /// Accepts one connection (waiting at most `timeout`) and runs the handshake. A peer
    /// that fails the handshake is dropped and reported as an error; the listener stays
    /// usable.
    pub(crate) fn accept(&self, timeout: Option<Duration>) -> Result<ShmConn> {
        let sock = self.name.accept(timeout)?;
        let ep = self.endpoint();
        let capacity = self.opts.ring_capacity;
        let pool = create_pool(ep, &self.opts)?;
        let (peer, mine) = listen_side(
            ep,
            sock,
            &self.opts.allowed_uids,
            (Role::Conn, Role::Conn),
            Extras {
                bell: None,
                pool: pool.as_ref().map(OwnedPool::shape),
            },
            || OwnedSegment::create_for(capacity, SegmentRole::Listener, ep).map_err(Into::into),
        )?;
        ShmConn::new(ep.to_owned(), peer, mine, &self.opts, pool)
    }
}
