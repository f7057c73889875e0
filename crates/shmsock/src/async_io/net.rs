//! The async `tcp://` and `unix://` sides: the ZMTP connection's non-waiting steps (every
//! read and write is `MSG_DONTWAIT`), run whenever tokio's reactor says the socket is ready.

use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;

use super::reactor::{joined, reactor_error, register};
use crate::error::{Error, Result};
use crate::net::stream::NetConn;
use crate::net::subscriber::NetSubscriber;
use crate::net::topics::Topics;
use crate::vocabulary::Mode;

/// What to wait for on a connection's socket: readable (`read`) and, while bytes of an
/// earlier frame wait for room, writable.
fn interest(conn: &NetConn, read: bool) -> Interest {
    match (read, conn.has_pending_tx()) {
        (true, true) => Interest::READABLE | Interest::WRITABLE,
        (true, false) => Interest::READABLE,
        (false, _) => Interest::WRITABLE,
    }
}

/// Runs `step` until it does not answer [`Error::WouldBlock`], waiting in between for the
/// readiness `want` asks for (`None`: the socket is gone, give the `WouldBlock` back).
/// `step` must have drained the socket when it answers `WouldBlock` (the ZMTP code reads
/// and writes until `EAGAIN`), so the readiness can be cleared then.
async fn drive<S, T>(
    endpoint: &str,
    fd: &AsyncFd<OwnedFd>,
    side: &mut S,
    want: impl Fn(&S) -> Option<Interest>,
    mut step: impl FnMut(&mut S) -> Result<T>,
) -> Result<T> {
    loop {
        match step(side) {
            Err(Error::WouldBlock) => {}
            done => return done,
        }
        let Some(interest) = want(side) else {
            return Err(Error::WouldBlock);
        };
        let mut ready = fd
            .ready(interest)
            .await
            .map_err(|e| reactor_error(endpoint, e))?;
        match step(side) {
            Err(Error::WouldBlock) => {}
            done => return done,
        }
        if want(side).is_none() {
            return Err(Error::WouldBlock);
        }
        ready.clear_ready();
    }
}

/// An async ZMTP PAIR connection.
pub(super) struct AsyncNetConn {
    conn: NetConn,
    fd: AsyncFd<OwnedFd>,
}

impl AsyncNetConn {
    pub(super) fn new(conn: NetConn) -> Result<Self> {
        let fd = register(
            conn.endpoint(),
            conn.fd(),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(AsyncNetConn { conn, fd })
    }

    pub(super) fn conn(&self) -> &NetConn {
        &self.conn
    }

    pub(super) fn conn_mut(&mut self) -> &mut NetConn {
        &mut self.conn
    }

    /// Sends `msg` and waits until all of it is in the kernel's socket buffer. If cancelled
    /// after its first byte left, the rest stays queued and goes out before anything else
    /// (by the next call, or the drop): a message is never cut.
    pub(super) async fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.until(false, |c| c.send(msg, Mode::Try)).await?;
        self.until(false, |c| {
            c.flush_pending()?;
            if c.has_pending_tx() {
                Err(Error::WouldBlock)
            } else {
                Ok(())
            }
        })
        .await
    }

    /// [`drive`] on this connection: `step` until it does not answer `WouldBlock`, waiting
    /// for the socket to be readable (`reading`) or writable in between.
    async fn until<T>(
        &mut self,
        reading: bool,
        step: impl FnMut(&mut NetConn) -> Result<T>,
    ) -> Result<T> {
        let AsyncNetConn { conn, fd } = self;
        let endpoint = conn.endpoint().to_owned();
        drive(&endpoint, fd, conn, |c| Some(interest(c, reading)), step).await
    }

    /// Receives the next message into `buf`. Cancel-safe: bytes read so far stay buffered.
    pub(super) async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.until(true, |c| c.recv_into(buf, Mode::Try)).await
    }

    /// Receives the next message into a new `Vec`. Cancel-safe.
    pub(super) async fn recv_vec(&mut self) -> Result<Vec<u8>> {
        self.until(true, |c| c.recv_vec(Mode::Try)).await
    }
}

/// An async ZMTP SUB socket that reconnects like the blocking one: the connect and
/// handshake of each attempt run on the blocking pool, the waits between attempts on a
/// tokio timer ([`RECONNECT_INTERVAL`](crate::net::subscriber::RECONNECT_INTERVAL)).
pub(super) struct AsyncNetSub {
    sub: NetSubscriber,
    /// The current connection's socket, registered (`None` while disconnected).
    fd: Option<AsyncFd<OwnedFd>>,
    /// A connection attempt under way (kept across a cancelled `recv`).
    dialing: Option<JoinHandle<Result<NetConn>>>,
}

impl AsyncNetSub {
    /// Wraps a connected subscriber.
    pub(super) fn new(sub: NetSubscriber) -> Result<Self> {
        let mut s = AsyncNetSub {
            sub,
            fd: None,
            dialing: None,
        };
        s.register()?;
        Ok(s)
    }

    fn register(&mut self) -> Result<()> {
        self.fd = match self.sub.conn() {
            Some(conn) => Some(register(
                conn.endpoint(),
                conn.fd(),
                Interest::READABLE | Interest::WRITABLE,
            )?),
            None => None,
        };
        Ok(())
    }

    pub(super) fn sub(&self) -> &NetSubscriber {
        &self.sub
    }

    /// Tells the publisher about a subscription change (never waits). A connection attempt
    /// under way subscribed with the old set: it is abandoned, the next one uses the new set.
    pub(super) fn update(&mut self, subscribe: bool, prefix: &[u8]) -> Result<()> {
        self.dialing = None;
        self.sub.update(subscribe, prefix)
    }

    /// Closes the connection (queued subscription changes are flushed first, briefly).
    pub(super) fn close(&mut self) {
        self.dialing = None;
        self.fd = None;
        self.sub.close();
    }

    /// A message if one has arrived, else [`Error::WouldBlock`] (also while disconnected).
    pub(super) fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.sub.recv_connected(buf, Mode::Try)
    }

    /// Receives the next message into `buf`, reconnecting (with `topics`) while the
    /// publisher is away. Cancel-safe: bytes read so far stay buffered, and a connection
    /// attempt under way is picked up by the next call.
    pub(super) async fn recv(&mut self, buf: &mut [u8], topics: &Topics) -> Result<usize> {
        loop {
            if self.sub.conn().is_none() {
                self.fd = None;
                self.reconnect(topics).await?;
                continue;
            }
            if self.fd.is_none() {
                self.register()?;
            }
            let fd = self.fd.as_ref().expect("registered above");
            let endpoint = self.sub.endpoint().to_owned();
            let got = drive(
                &endpoint,
                fd,
                &mut self.sub,
                |s| s.conn().map(|c| interest(c, true)),
                |s| s.recv_connected(buf, Mode::Try),
            )
            .await;
            match got {
                // The connection was lost: reconnect.
                Err(Error::WouldBlock) => {}
                done => return done,
            }
        }
    }

    /// One reconnection attempt, at the earliest at the subscriber's next attempt time.
    async fn reconnect(&mut self, topics: &Topics) -> Result<()> {
        let dialing = match &mut self.dialing {
            Some(d) => d,
            None => {
                tokio::time::sleep_until(self.sub.next_attempt().into()).await;
                let (ep, options) = self.sub.dial_args();
                let topics = topics.clone();
                self.dialing.insert(tokio::task::spawn_blocking(move || {
                    NetSubscriber::dial(&ep, &options, &topics)
                }))
            }
        };
        let attempt = dialing.await;
        self.dialing = None;
        let endpoint = self.sub.endpoint().to_owned();
        if self.sub.install(joined(&endpoint, attempt.map(Ok))?)? {
            self.register()?;
        }
        Ok(())
    }
}
