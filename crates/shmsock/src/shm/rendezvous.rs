//! The rendezvous of `shm://`: binding a name (the Unix socket and its lock file) and the
//! two sides of the handshake, shared by `Conn`, publish/subscribe and the inbox: peer
//! credentials, the hello exchange (wire format in [`hello`](super::hello)) and fd passing.
//!
//! ```text
//!  $XDG_RUNTIME_DIR/shmsock/ (or /tmp/shmsock-$UID/; mode 0700, owned by us, checked)
//!     NAME.lock   flock'd by the live listener: a stale socket is one whose lock is free
//!     NAME.sock   the listening Unix stream socket (0600)
//!
//!  connector                                  listener
//!  connect(NAME.sock); SO_PEERCRED of the
//!  listener checked (known at connect)
//!  HELLO + memfd ────────────────────────────▶ accept; SO_PEERCRED checked *before any read*
//!                                              the connector's segment verified (seals,
//!                                              size, header) and mapped read-only
//!       ◀──────────── HELLO + memfd + ACK, one message (or REFUSE + reason, and no fd)
//!  its segment verified and mapped read-only
//! ```
//!
//! One round trip: the connector speaks first, so the listener answers with its own hello
//! and the acknowledgement at once (a publisher's acknowledgement also says where the
//! subscriber starts). Each side checks the other's credentials before any fd leaves it,
//! and the listener passes its memfd only to a connector whose hello and segment passed
//! every check. A refusal carries the listener's protocol version, so a connector of
//! another version reports `VersionMismatch`.
//!
//! The socket stays open for the life of the connection: a clean close sends
//! [`BYE`](super::hello::BYE); a hang-up without it means the peer died.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode as FileMode, OFlags};

use super::doorbell::{Doorbell, Ringer};
use super::hello::{
    self, Hello, HelloRx, Received, RefuseReason, Role, Start, ACK, HELLO_FLAG_DOORBELL,
    HELLO_FLAG_POOL, HELLO_FLAG_TOKEN, PUBLISHER_ACK_BYTES,
};
use super::identity::{self, Claim, SegmentId};
use super::label::SegmentRole;
use super::runtime_dir;
use super::segment::{OwnedSegment, PeerPool, PeerSegment, PoolShape, PROTOCOL_VERSION};
use crate::error::{Error, Result};
use crate::handover::{PeerEnd, Token};
use crate::vocabulary::{PeerPolicy, WaitStrategy};

/// A bound `shm://` name: the flock'd lock file and the listening socket. Dropping it
/// removes both names.
pub(crate) struct BoundName {
    endpoint: String,
    listener: UnixListener,
    sock_path: PathBuf,
    lock_path: PathBuf,
    /// Held (flock) for the life of the binding; released by the kernel if we die.
    _lock: OwnedFd,
}

/// Takes the exclusive lock on `path`, making sure the locked file is still the one at `path`
/// (a previous owner may have unlinked it between our open and our flock).
fn lock_name(endpoint: &str, path: &Path) -> Result<OwnedFd> {
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

/// What a live lock file says (see [`label_lock`]): the role its holder binds for and its
/// pid. At most this many bytes are read of a lock file.
pub(crate) const LOCK_LABEL_MAX_BYTES: usize = 64;

/// Writes `shmsock <role> <pid>` into the lock file we hold, for `shmsock ls`. Only its
/// holder writes it; a failure only costs `ls` the pattern of an idle endpoint.
fn label_lock(lock: &OwnedFd, role: SegmentRole) {
    let text = format!(
        "shmsock {role} {}\n",
        rustix::process::getpid().as_raw_nonzero()
    );
    let written =
        rustix::fs::ftruncate(lock, 0).and_then(|()| rustix::io::pwrite(lock, text.as_bytes(), 0));
    if let Err(e) = written {
        tracing::debug!(error = %e, "could not label the lock file");
    }
}

/// Parses a lock file's label: the role and pid its holder wrote (hostile input: anything
/// malformed is `None`).
pub(crate) fn parse_lock_label(bytes: &[u8]) -> Option<(SegmentRole, u32)> {
    let text = std::str::from_utf8(bytes.get(..LOCK_LABEL_MAX_BYTES.min(bytes.len()))?).ok()?;
    let mut words = text.trim_end_matches('\n').split(' ');
    let (magic, role, pid) = (words.next()?, words.next()?, words.next()?);
    if magic != "shmsock" || words.next().is_some() {
        return None;
    }
    let pid: u32 = pid.parse().ok().filter(|&p| p > 0)?;
    Some((SegmentRole::from_word(role)?, pid))
}

/// What [`remove_if_stale`] found at a name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cleanup {
    /// A live listener holds the lock: nothing was touched.
    Live,
    /// The name was stale; these files were removed (or, for a dry run, would be).
    Removed(Vec<PathBuf>),
}

/// Removes the rendezvous files of `name` in `dir` if no live listener holds its lock,
/// following the same protocol as a bind (take the lock, remove the socket, remove the lock
/// file while still holding it), so it can never remove a live listener's socket. A
/// `dry_run` takes and releases the lock but removes nothing.
pub(crate) fn remove_if_stale(dir: &Path, name: &str, dry_run: bool) -> Result<Cleanup> {
    let sock_path = dir.join(format!("{name}.sock"));
    let lock_path = dir.join(format!("{name}.lock"));
    let what = format!("shm://{name}");
    let lock_existed = std::fs::symlink_metadata(&lock_path).is_ok();
    let lock = match lock_name(&what, &lock_path) {
        Ok(fd) => fd,
        Err(Error::AddrInUse { .. }) => return Ok(Cleanup::Live),
        Err(e) => return Err(e),
    };
    let remove = |path: &Path| match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            format!("removing stale {} (check its permissions)", path.display()),
            e,
        )),
    };
    let mut removed = Vec::new();
    if std::fs::symlink_metadata(&sock_path).is_ok() {
        if !dry_run {
            remove(&sock_path)?;
        }
        removed.push(sock_path);
    }
    if lock_existed {
        removed.push(lock_path.clone());
    }
    // Still holding the lock, as `BoundName`'s drop does; a dry run only takes back the
    // lock file that `lock_name` created.
    if !dry_run || !lock_existed {
        remove(&lock_path)?;
    }
    drop(lock);
    Ok(Cleanup::Removed(removed))
}

impl BoundName {
    /// Binds `name` for a `role` (listener, publisher or inbox, written into the lock file
    /// for `shmsock ls`): takes its lock (a live holder → `AddrInUse`), replaces a stale
    /// socket.
    pub(crate) fn bind(endpoint: &str, name: &str, role: SegmentRole) -> Result<Self> {
        let (sock_path, lock_path) = runtime_dir::paths(name)
            .map_err(|e| Error::io(format!("{endpoint}: rendezvous directory"), e))?;
        let lock = lock_name(endpoint, &lock_path)?;
        label_lock(&lock, role);
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
        // Connections are taken as `poll` reports them, next to the handshakes under way.
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(format!("{endpoint}: making the socket non-blocking"), e))?;
        std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("{endpoint}: chmod {}", sock_path.display()), e))?;
        tracing::info!(endpoint, socket = %sock_path.display(), "bound");
        Ok(BoundName {
            endpoint: endpoint.to_owned(),
            listener,
            sock_path,
            lock_path,
            _lock: lock,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn socket_path(&self) -> &Path {
        &self.sock_path
    }

    /// The listening socket, for a reactor to watch (an async listener accepts on it).
    #[cfg(feature = "tokio")]
    pub(crate) fn listening_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// The listening socket (non-blocking), for `poll`.
    pub(crate) fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// The next connection the kernel has queued, without waiting (`None`: none).
    pub(crate) fn try_accept(&self) -> Result<Option<UnixStream>> {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => return Ok(Some(sock)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                // The peer gave up before we took it, or a signal: look at the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io(format!("{}: accept", self.endpoint), e)),
            }
        }
    }
}

impl Drop for BoundName {
    fn drop(&mut self) {
        // Remove the names while we still hold the lock, so a new binder never sees our
        // socket as live after we are gone.
        let _ = std::fs::remove_file(&self.sock_path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// A completed handshake: the peer's pid (from SO_PEERCRED), the socket (kept open to
/// detect its death) and its mapped segment.
pub(crate) struct Peer {
    pub(crate) pid: i32,
    pub(crate) sock: UnixStream,
    pub(crate) segment: PeerSegment,
    /// The peer's doorbell, if it asked to be woken through one instead of our futex.
    pub(crate) doorbell: Option<Ringer>,
    /// The peer's loan pool, if it lends.
    pub(crate) pool: Option<PeerPool>,
    /// Its segment's place in this process's registry, for the life of the connection
    /// (none for a publisher's segment, which all its subscribers share).
    pub(crate) claim: Option<Claim>,
    /// A subscriber's: where its publisher said it starts (in the acknowledgement).
    pub(crate) start: Start,
}

/// What a side offers in its hello besides its segment.
#[derive(Clone, Copy, Default)]
pub(crate) struct Extras<'a> {
    /// Wake us through this doorbell instead of our futex (its ringing end is passed).
    pub(crate) bell: Option<&'a Doorbell>,
    /// Our loan pool.
    pub(crate) pool: Option<PoolShape<'a>>,
    /// A subscriber taking over a network connection: the token it was offered, and where
    /// that connection's other end is, which the listener's pid must hold before our
    /// hello leaves (see `crate::handover`).
    pub(crate) handover: Option<(Token, &'a PeerEnd)>,
}

fn io_err(endpoint: &str, what: &str, e: impl Into<io::Error>) -> Error {
    Error::io(format!("{endpoint}: handshake: {what}"), e)
}

/// A segment we can offer in a hello: its fd and its ring capacity.
pub(crate) trait Offer {
    /// The memfd to pass.
    fn offer_fd(&self) -> BorrowedFd<'_>;
    /// The ring capacity to announce.
    fn offer_capacity(&self) -> u64;
    /// Records the peer we completed the handshake with (for `shmsock ls`); a segment
    /// shared by many peers records none.
    fn note_peer(&self, _pid: i32, _peer: &PeerSegment) {}
}

impl Offer for OwnedSegment {
    fn offer_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
    fn offer_capacity(&self) -> u64 {
        self.capacity()
    }
    fn note_peer(&self, pid: i32, peer: &PeerSegment) {
        OwnedSegment::note_peer(self, pid, peer);
    }
}

/// Another handle on a segment that stays with its owner (a publisher's, offered to every
/// subscriber by its accept thread).
pub(crate) struct SharedOffer {
    pub(crate) fd: OwnedFd,
    pub(crate) capacity: u64,
}

impl Offer for SharedOffer {
    fn offer_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    fn offer_capacity(&self) -> u64 {
        self.capacity
    }
}

/// Sends our hello with our segment (and doorbell, pool, token as `extras` say), then
/// `tail` in the same message (the listener's acknowledgement).
fn send_segment(
    sock: &UnixStream,
    seg: &impl Offer,
    role: Role,
    extras: Extras<'_>,
    tail: &[u8],
) -> io::Result<()> {
    let mut hello = Hello::greeting(seg.offer_capacity(), role);
    let mut fds = vec![seg.offer_fd()];
    if let Some(bell) = extras.bell {
        hello.flags |= HELLO_FLAG_DOORBELL;
        fds.push(bell.ring_end());
    }
    if let Some(pool) = extras.pool {
        hello.flags |= HELLO_FLAG_POOL;
        hello.pool_slots = pool.slots as u32;
        hello.pool_slot_bytes = pool.slot_bytes as u64;
        fds.push(pool.fd);
    }
    if let Some((token, _)) = extras.handover {
        hello.flags |= HELLO_FLAG_TOKEN;
        hello.token = token;
    }
    hello::send_hello(sock, &hello, &fds, tail)
}

/// What a validated hello brought: the peer's segment, doorbell and pool.
pub(crate) struct Accepted {
    pub(crate) segment: PeerSegment,
    pub(crate) doorbell: Option<Ringer>,
    pub(crate) pool: Option<PeerPool>,
    pub(crate) claim: Option<Claim>,
    /// The token it presented to take over a network connection, if any.
    pub(crate) token: Option<Token>,
}

/// Checks that a segment or pool a peer handed us is its own (see
/// [`identity`](super::identity)): created by the process `SO_PEERCRED` names, not one of
/// ours unless the peer is this very process. `what` names it for the error.
fn check_creator(
    what: &str,
    id: SegmentId,
    creator_pid: u32,
    peer_pid: i32,
) -> std::result::Result<(), String> {
    let peer = peer_pid.unsigned_abs();
    if peer != std::process::id() && identity::is_owned(id) {
        return Err(format!(
            "the peer (pid {peer}) handed us back a {what} of our own (inode {})",
            id.ino
        ));
    }
    if creator_pid != peer {
        return Err(format!(
            "the peer (pid {peer}) handed us a {what} created by pid {creator_pid} \
             (a segment of another process, reopened?)"
        ));
    }
    Ok(())
}

/// Validates a received hello (from a peer expected to play `role`), maps its segment and
/// pool, checks that they are the peer's own, claims the segment (unless it is a
/// publisher's, shared by design) and takes its doorbell, if it sent them.
pub(crate) fn accept_peer_hello(
    endpoint: &str,
    received: Received,
    role: Role,
    peer_pid: i32,
) -> Result<Accepted> {
    let fail = |reason: String| Error::Handshake {
        endpoint: endpoint.to_owned(),
        reason,
    };
    if received.truncated && received.fds.is_empty() {
        // The kernel could not install the fd in our table: we are out of descriptors.
        return Err(Error::io(
            format!("{endpoint}: handshake: receiving the peer's segment (raise RLIMIT_NOFILE or close files)"),
            rustix::io::Errno::MFILE,
        ));
    }
    if received.truncated {
        return Err(fail(
            "peer sent more fds than a hello carries (one fd, plus a doorbell and a pool)".into(),
        ));
    }
    let hello = Hello::decode(&received.bytes).map_err(fail)?;
    if hello.version != PROTOCOL_VERSION {
        return Err(Error::VersionMismatch {
            endpoint: endpoint.to_owned(),
            ours: PROTOCOL_VERSION,
            peer: hello.version,
        });
    }
    if !hello.role.fits(role) {
        return Err(fail(format!(
            "the peer is {}, but {} was expected",
            hello.role.api(),
            role.api()
        )));
    }
    if hello.is_refuse() {
        return Err(Error::Refused {
            endpoint: endpoint.to_owned(),
            reason: match hello.reason {
                1 => "our uid is not in its allow-list".into(),
                2 => "it could not create its shared-memory segment (out of memory or fds?)".into(),
                3 => "it found our hello or segment invalid (its log says why)".into(),
                4 => "it did not grant our takeover of the network connection".into(),
                r => format!("reason code {r}"),
            },
        });
    }
    let with_bell = hello.flags & HELLO_FLAG_DOORBELL != 0;
    let with_pool = hello.flags & HELLO_FLAG_POOL != 0;
    let mut fds = received.fds.into_iter();
    if fds.len() != 1 + usize::from(with_bell) + usize::from(with_pool) {
        return Err(fail(format!(
            "expected exactly one fd with the hello (plus one per doorbell or pool flag), got {}",
            fds.len()
        )));
    }
    let fd = fds.next().expect("one fd");
    let segment = PeerSegment::open(fd, hello.ring_capacity).map_err(|r| fail(r.to_string()))?;
    check_creator("segment", segment.id(), segment.creator_pid(), peer_pid).map_err(fail)?;
    // Only a publisher's segment is shared between connections (its subscribers).
    let claim = if hello.role == Role::Publisher {
        None
    } else {
        Some(Claim::take(segment.id()).ok_or_else(|| {
            fail(format!(
                "the peer's segment (inode {}) is already the segment of another connection \
                 of this process",
                segment.id().ino
            ))
        })?)
    };
    let doorbell = if with_bell {
        Some(Ringer::from_peer(fds.next().expect("counted"), peer_pid).map_err(fail)?)
    } else {
        None
    };
    let pool = if with_pool {
        let fd = fds.next().expect("counted");
        let pool = PeerPool::open(fd, u64::from(hello.pool_slots), hello.pool_slot_bytes)
            .map_err(|r| fail(format!("loan pool: {r}")))?;
        check_creator("loan pool", pool.id(), pool.creator_pid(), peer_pid).map_err(fail)?;
        Some(pool)
    } else {
        None
    };
    let token = (hello.flags & HELLO_FLAG_TOKEN != 0).then_some(hello.token);
    Ok(Accepted {
        segment,
        doorbell,
        pool,
        claim,
        token,
    })
}

/// The listening side of a handshake under way: our segment is ready, the peer's hello is
/// coming in (read without blocking by [`Greeting::read`]; the caller waits with `poll`
/// and drops the greeting at its [`Greeting::deadline`]). Our hello goes out only with the
/// acknowledgement ([`Validated::finish`]).
pub(crate) struct Greeting<S> {
    sock: UnixStream,
    pid: i32,
    mine: S,
    roles: (Role, Role),
    rx: HelloRx,
    deadline: Instant,
}

/// Starts the listening side of a handshake on an accepted socket: credentials are checked
/// before `mine` is even created and before anything of the peer's is read. Nothing here
/// waits for the peer, and nothing of ours leaves this process yet.
pub(crate) fn greet<S: Offer>(
    endpoint: &str,
    sock: UnixStream,
    peers: &PeerPolicy,
    roles: (Role, Role),
    mine: impl FnOnce() -> io::Result<S>,
    deadline: Instant,
) -> Result<Greeting<S>> {
    sock.set_nonblocking(true)
        .map_err(|e| io_err(endpoint, "making the socket non-blocking", e))?;
    let pid = match peers.check_peer(endpoint, &sock) {
        Ok(pid) => pid,
        Err(e) => {
            refuse(&sock, RefuseReason::Uid, roles.0);
            return Err(e);
        }
    };
    let mine = match mine() {
        Ok(seg) => seg,
        Err(e) => {
            refuse(&sock, RefuseReason::Resources, roles.0);
            return Err(io_err(
                endpoint,
                "creating our segment (memfd_create/ftruncate/mmap)",
                e,
            ));
        }
    };
    Ok(Greeting {
        sock,
        pid,
        mine,
        roles,
        rx: HelloRx::default(),
        deadline,
    })
}

/// Tells a connector why we, playing `role`, drop it (best effort: it may be gone already).
fn refuse(sock: &UnixStream, reason: RefuseReason, role: Role) {
    let _ = hello::send_hello(sock, &Hello::refuse(reason, role), &[], &[]);
}

impl<S: Offer> Greeting<S> {
    /// The peer's pid (from `SO_PEERCRED`).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// When the whole handshake must be done by.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The socket, to wait for with `poll`.
    pub(crate) fn socket(&self) -> &UnixStream {
        &self.sock
    }

    /// Reads what arrived of the peer's hello, without waiting. True once it is all in
    /// (then [`Greeting::validate`]).
    pub(crate) fn read(&mut self, endpoint: &str) -> Result<bool> {
        self.rx
            .read_ready(&self.sock)
            .map_err(|e| io_err(endpoint, "receiving hello", e))
    }

    /// Our offer back, unsent, from a handshake that ends here.
    pub(crate) fn into_offer(self) -> S {
        self.mine
    }

    /// Validates the peer's complete hello: its segment, pool and doorbell (see
    /// [`accept_peer_hello`]). A peer that fails is told so (a refusal, which carries our
    /// protocol version) before it is dropped; our offer, never sent, comes back with the
    /// error.
    pub(crate) fn validate(self, endpoint: &str) -> std::result::Result<Validated<S>, (Error, S)> {
        let Greeting {
            sock,
            pid,
            mine,
            roles,
            rx,
            ..
        } = self;
        match accept_peer_hello(endpoint, rx.into_received(), roles.1, pid) {
            Ok(accepted) => Ok(Validated {
                sock,
                pid,
                mine,
                my_role: roles.0,
                accepted,
            }),
            Err(e) => {
                // Our own failure (out of fds for its segment) is not the peer's fault.
                let reason = match e {
                    Error::Io { .. } => RefuseReason::Resources,
                    _ => RefuseReason::Invalid,
                };
                refuse(&sock, reason, roles.0);
                Err((e, mine))
            }
        }
    }
}

/// A listening side whose peer's hello was validated: only our hello and the
/// acknowledgement are left ([`Validated::finish`], which never waits).
pub(crate) struct Validated<S> {
    sock: UnixStream,
    pid: i32,
    mine: S,
    my_role: Role,
    accepted: Accepted,
}

impl<S: Offer> Validated<S> {
    /// The peer's pid (from `SO_PEERCRED`).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// The token the peer presented to take over a network connection, if any.
    pub(crate) fn token(&self) -> Option<Token> {
        self.accepted.token
    }

    /// Refuses the peer after all (its hello was valid, but what it asks for is not
    /// granted): it gets a refusal and none of our fds.
    pub(crate) fn refuse(self, reason: RefuseReason) {
        refuse(&self.sock, reason, self.my_role);
    }

    /// Sends our hello (with our segment and `extras`) and the acknowledgement, in one
    /// message: the connection is established.
    pub(crate) fn finish(self, endpoint: &str, extras: Extras<'_>) -> Result<(Peer, S)> {
        self.finish_with(endpoint, extras, &[ACK])
    }

    /// A publisher's [`Validated::finish`]: the acknowledgement tells the subscriber where
    /// to start reading.
    pub(crate) fn finish_at(
        self,
        endpoint: &str,
        extras: Extras<'_>,
        start: Start,
    ) -> Result<(Peer, S)> {
        self.finish_with(endpoint, extras, &start.encode())
    }

    fn finish_with(self, endpoint: &str, extras: Extras<'_>, ack: &[u8]) -> Result<(Peer, S)> {
        let Validated {
            sock,
            pid,
            mine,
            my_role,
            accepted,
        } = self;
        mine.note_peer(pid, &accepted.segment);
        // The first bytes we send, into an empty buffer: never blocks.
        send_segment(&sock, &mine, my_role, extras, ack)
            .map_err(|e| io_err(endpoint, "sending hello", e))?;
        let peer = established(endpoint, sock, pid, accepted, Start::default())?;
        Ok((peer, mine))
    }
}

/// The end of a handshake on either side: the socket back in blocking mode (it is only
/// watched from now on, with non-blocking calls), and the peer.
fn established(
    endpoint: &str,
    sock: UnixStream,
    pid: i32,
    accepted: Accepted,
    start: Start,
) -> Result<Peer> {
    sock.set_nonblocking(false)
        .map_err(|e| io_err(endpoint, "making the socket blocking", e))?;
    let Accepted {
        segment,
        doorbell,
        pool,
        claim,
        token: _,
    } = accepted;
    Ok(Peer {
        pid,
        sock,
        segment,
        doorbell,
        pool,
        claim,
        start,
    })
}

/// The connecting side of a handshake, with one deadline (`timeout` from now) for the whole
/// exchange: the listener's credentials checked, our segment created by `mine` and sent,
/// then the listener's hello and acknowledgement received in one message (waited for as
/// `wait` says: a `Blocking` side sleeps at once (a handshake is no stream), others first
/// spin [`hello::ANSWER_SPIN`];
/// an async connect, which passes a doorbell, sleeps at once too: it runs on tokio's
/// blocking pool, and its wait strategy does not apply).
#[allow(clippy::too_many_arguments)]
pub(crate) fn connect_side(
    endpoint: &str,
    name: &str,
    peers: &PeerPolicy,
    (my_role, peer_role): (Role, Role),
    extras: Extras<'_>,
    mine: impl FnOnce() -> io::Result<OwnedSegment>,
    wait: WaitStrategy,
    timeout: Duration,
) -> Result<(Peer, OwnedSegment)> {
    let deadline = Instant::now() + timeout;
    let spin = match wait {
        _ if extras.bell.is_some() => Duration::ZERO,
        WaitStrategy::Blocking => Duration::ZERO,
        WaitStrategy::BusyPoll | WaitStrategy::Adaptive => hello::ANSWER_SPIN,
    };
    let (sock_path, _) = runtime_dir::paths(name)
        .map_err(|e| Error::io(format!("{endpoint}: rendezvous directory"), e))?;
    let sock = match UnixStream::connect(&sock_path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(Error::ConnectionRefused {
                path: sock_path.display().to_string(),
                endpoint: endpoint.to_owned(),
            })
        }
        Err(e) => {
            return Err(Error::io(
                format!("{endpoint}: connecting to {}", sock_path.display()),
                e,
            ))
        }
    };
    sock.set_nonblocking(true)
        .map_err(|e| io_err(endpoint, "making the socket non-blocking", e))?;
    let pid = peers.check_peer(endpoint, &sock)?;
    if let Some((_, end)) = extras.handover {
        end.held_by(pid).map_err(|why| Error::Handshake {
            endpoint: endpoint.to_owned(),
            reason: format!(
                "the process behind this name (pid {pid}) is not our network peer: {why}"
            ),
        })?;
    }
    let mine = mine().map_err(|e| {
        io_err(
            endpoint,
            "creating our segment (memfd_create/ftruncate/mmap)",
            e,
        )
    })?;
    match send_segment(&sock, &mine, my_role, extras, &[]) {
        Ok(()) => {}
        // A listener that refused us at once (our credentials) may have hung up before our
        // hello arrived: its refusal is still there to read.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => return Err(io_err(endpoint, "sending hello", e)),
    }
    let hung_up = || Error::Refused {
        endpoint: endpoint.to_owned(),
        reason: "it hung up without answering our hello".into(),
    };
    let received = match hello::recv_hello(&sock, deadline, spin) {
        // It hung up with our hello unread (a reset) or read (an empty answer): it dropped
        // us (out of fds or memory for this connection, or evicted by a flood of connections).
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(hung_up()),
        Err(e) => return Err(io_err(endpoint, "receiving hello", e)),
        Ok(r) if r.bytes.is_empty() && r.fds.is_empty() => return Err(hung_up()),
        Ok(r) => r,
    };
    let accepted = accept_peer_hello(endpoint, received, peer_role, pid)?;
    mine.note_peer(pid, &accepted.segment);
    // A publisher's acknowledgement says where we start; anyone else's is one byte. It
    // came in the message of the listener's hello.
    let mut ack = [0u8; PUBLISHER_ACK_BYTES];
    let len = Start::ack_len(peer_role);
    let mut got = 0;
    while got < len {
        match rustix::io::read(sock.as_fd(), &mut ack[got..len]) {
            Ok(0) => {
                return Err(Error::Refused {
                    endpoint: endpoint.to_owned(),
                    reason: "it hung up after its hello, without an acknowledgement".into(),
                })
            }
            Ok(n) => got += n,
            Err(rustix::io::Errno::AGAIN) => hello::wait_until(&sock, deadline, "no ack")
                .map_err(|e| io_err(endpoint, "waiting for ack", e))?,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(io_err(endpoint, "waiting for ack", e)),
        }
    }
    let Some(start) = Start::decode(&ack[..len]) else {
        return Err(Error::Handshake {
            endpoint: endpoint.to_owned(),
            reason: format!(
                "the peer answered our hello with {:#04x}, not an ack",
                ack[0]
            ),
        });
    };
    let peer = established(endpoint, sock, pid, accepted, start)?;
    tracing::debug!(endpoint, peer_pid = pid, role = ?my_role, "connected");
    Ok((peer, mine))
}
