//! `shm://` listener: a bound name whose accepted peers become [`ShmConn`]s. Its handshakes
//! run side by side (see [`acceptor`](super::acceptor)) within each `accept` call, and the
//! ones under way survive between calls.

use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::acceptor::{Admit, Handshakes};
use super::config::ShmConfig;
use super::doorbell::Doorbell;
use super::hello::Role;
use super::label::SegmentRole;
use super::pair::{create_pool, ShmConn};
use super::rendezvous::{greet, BoundName, Extras, Greeting, Validated};
use super::segment::{OwnedPool, OwnedSegment};
use crate::error::{Error, Result};
use crate::vocabulary::WaitStrategy;

/// A bound `shm://` name.
pub(crate) struct ShmListener {
    name: BoundName,
    state: Mutex<State>,
}

/// Handshakes under way, and connections they completed that no `accept` returned yet.
struct State {
    handshakes: Handshakes<ConnAdmit>,
    ready: VecDeque<(ShmConn, Option<Doorbell>)>,
}

/// The `Conn` side of each connection to a listener's name.
struct ConnAdmit {
    opts: ShmConfig,
    /// Our segment for the next connection, made before a wait with no handshake under
    /// way, so that a connector does not wait for its system calls; with the pid of the
    /// process that made it (a process forked from us inherits it, and must not hand the
    /// same segment to a second peer). It has no peer yet: `shmsock ls` counts it apart
    /// from the connections.
    spare: Option<(u32, OwnedSegment)>,
    /// Give each connection a doorbell (an async listener: its connections wake a task).
    bells: bool,
}

impl Admit for ConnAdmit {
    type Offer = OwnedSegment;
    type Kept = (Option<OwnedPool>, Option<Doorbell>);
    type Peer = (ShmConn, Option<Doorbell>);

    fn greet(
        &mut self,
        endpoint: &str,
        sock: UnixStream,
        deadline: Instant,
    ) -> Result<(Greeting<OwnedSegment>, Self::Kept)> {
        let bell = if self.bells {
            Some(Doorbell::new().map_err(|e| {
                Error::io(format!("{endpoint}: creating the doorbell socket pair"), e)
            })?)
        } else {
            None
        };
        let pool = create_pool(endpoint, &self.opts)?;
        let ConnAdmit {
            opts, spare, bells, ..
        } = self;
        let bells = *bells;
        // The spare is taken only once the peer's credentials passed: a refused peer
        // leaves it for the next.
        let greeting = greet(
            endpoint,
            sock,
            &opts.peers,
            (Role::Conn, Role::Conn),
            || own_spare(spare).map_or_else(|| new_segment(opts, endpoint, bells), Ok),
            deadline,
        )?;
        Ok((greeting, (pool, bell)))
    }

    fn prepare(&mut self, endpoint: &str) {
        let me = std::process::id();
        if !matches!(self.spare, Some((pid, _)) if pid == me) {
            // (Out of memory or fds now: the next handshake tries again, and refuses its
            // peer, saying why, if it cannot either.)
            self.spare = new_segment(&self.opts, endpoint, self.bells)
                .ok()
                .map(|seg| (me, seg));
        }
    }

    fn recycle(&mut self, offer: OwnedSegment) {
        self.spare.get_or_insert((std::process::id(), offer));
    }

    fn finish(
        &mut self,
        endpoint: &str,
        hello: Validated<OwnedSegment>,
        (pool, bell): Self::Kept,
        deliver: &mut dyn FnMut(Self::Peer),
    ) -> Result<()> {
        let extras = Extras {
            bell: bell.as_ref(),
            pool: pool.as_ref().map(OwnedPool::shape),
            handover: None,
        };
        let (peer, mine) = hello.finish(endpoint, extras)?;
        let pid = peer.pid;
        let conn = ShmConn::new(endpoint.to_owned(), peer, mine, &self.opts, pool)?;
        tracing::debug!(endpoint, peer_pid = pid, "accepted");
        deliver((conn, bell));
        Ok(())
    }
}

/// A new segment of ours for one connection (`bells`: its peer will ring our doorbell
/// rather than wake our futex words).
fn new_segment(opts: &ShmConfig, endpoint: &str, bells: bool) -> std::io::Result<OwnedSegment> {
    OwnedSegment::create_for(opts.ring_capacity, SegmentRole::Listener, endpoint)
        .map(|seg| {
            let seg = seg.fence_wake_if(opts.wait == WaitStrategy::Blocking);
            let seg = if bells { seg } else { seg.with_fence_ask() };
            seg.with_keyed_sleeps()
        })
        .map_err(Into::into)
}

/// Takes the spare if this process made it (one inherited across `fork` is dropped: its
/// maker may hand it out too).
fn own_spare(spare: &mut Option<(u32, OwnedSegment)>) -> Option<OwnedSegment> {
    spare
        .take()
        .and_then(|(pid, seg)| (pid == std::process::id()).then_some(seg))
}

impl ShmListener {
    /// Binds `name` for blocking `Conn`s.
    pub(crate) fn bind(endpoint: String, name: &str, opts: ShmConfig) -> Result<Self> {
        Self::bind_with(endpoint, name, opts, false)
    }

    /// Binds `name` for async `Conn`s: each accepted connection comes with a doorbell its
    /// peer rings to wake us (see [`ShmListener::accept_with_bell`]).
    #[cfg(feature = "tokio")]
    pub(crate) fn bind_async(endpoint: String, name: &str, opts: ShmConfig) -> Result<Self> {
        Self::bind_with(endpoint, name, opts, true)
    }

    fn bind_with(endpoint: String, name: &str, opts: ShmConfig, bells: bool) -> Result<Self> {
        let timeout = opts.handshake_timeout;
        let admit = ConnAdmit {
            opts,
            spare: None,
            bells,
        };
        Ok(ShmListener {
            name: BoundName::bind(&endpoint, name, SegmentRole::Listener)?,
            state: Mutex::new(State {
                handshakes: Handshakes::new(admit, timeout),
                ready: VecDeque::new(),
            }),
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

    /// Whether handshakes are under way (an async listener keeps turning while they are).
    #[cfg(feature = "tokio")]
    pub(crate) fn has_handshakes(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.handshakes.is_busy() || !state.ready.is_empty()
    }

    /// Waits at most `timeout` (`None`: forever) for a connection whose handshake
    /// completes. Handshakes run side by side: a peer that fails or stalls its own is
    /// logged and dropped, never returned as an error, and delays no other peer.
    pub(crate) fn accept(&self, timeout: Option<Duration>) -> Result<ShmConn> {
        self.accept_with_bell(timeout).map(|(conn, _)| conn)
    }

    /// [`ShmListener::accept`], with the connection's doorbell if the listener was bound
    /// for async connections.
    pub(crate) fn accept_with_bell(
        &self,
        timeout: Option<Duration>,
    ) -> Result<(ShmConn, Option<Doorbell>)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { handshakes, ready } = &mut *state;
        let mut first = true;
        loop {
            if let Some(conn) = ready.pop_front() {
                return Ok(conn);
            }
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !first && wait.is_some_and(|w| w.is_zero()) {
                return Err(Error::TimedOut);
            }
            first = false;
            handshakes.turn(&self.name, wait, &mut |conn| ready.push_back(conn))?;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A process forked from a listener inherits its spare; handing it out there too would
    /// give two peers one ring. Only the process that made a spare takes it.
    #[test]
    fn a_spare_made_by_another_process_is_never_handed_out() {
        let opts = crate::Options::new().shm_config();
        let seg = new_segment(&opts, "shm://spare-test", false).expect("a segment");
        let inode = |seg: &OwnedSegment| rustix::fs::fstat(seg.fd()).expect("fstat").st_ino;
        let ino = inode(&seg);
        let mut spare = Some((std::process::id() + 1, seg));
        assert!(
            own_spare(&mut spare).is_none(),
            "another pid's spare was taken"
        );
        assert!(spare.is_none(), "and it was dropped, not kept");

        let seg = new_segment(&opts, "shm://spare-test", false).expect("a segment");
        let ino2 = inode(&seg);
        assert_ne!(ino, ino2);
        let mut spare = Some((std::process::id(), seg));
        let taken = own_spare(&mut spare).expect("our own spare");
        assert_eq!(inode(&taken), ino2);
    }
}
