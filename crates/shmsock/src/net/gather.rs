//! The `tcp://` and `unix://` writers of an [`Inbox`](crate::Inbox): [`Gatherer`] accepts
//! them on any number of listening sockets and reads their messages into one queue per
//! writer ([`WriterQueue`]), from which the inbox takes them in its round robin.
//!
//! ```text
//!  accept thread per endpoint: NetListener::accept (handshakes side by side, as a Listener)
//!        │ established connection
//!        ▼
//!  I/O thread: poll(its eventfd, every writer's socket not paused; heartbeats)
//!        │ whole messages, in order          ▲ eventfd: a paused queue has room again
//!        ▼                                   │
//!  WriterQueue (one per writer) ──────────► the inbox (its receiving thread)
//! ```
//!
//! The inbox's receiving path never touches a socket: it looks at the queues, and sleeps on
//! its own doorbell, which the I/O thread rings (through [`InboxHooks::wake`]) only when the
//! inbox announced that it sleeps. So `shm://` writers keep their speed when network
//! endpoints are bound too.
//!
//! **Bounded memory.** A writer's queue holds at most `queue_max_bytes` (the inbox's ring
//! capacity; each message counted with [`MESSAGE_OVERHEAD_BYTES`] more) plus one message: once it holds that much, the I/O thread stops reading the
//! writer's socket (back-pressure: the writer's `send` blocks on its full socket buffer, as
//! it would on a full `shm://` ring) until the inbox has taken enough. A message is read only
//! up to `max_message_len` (a longer one is refused from its header, see `inbound`), and
//! the receive buffer grows only as bytes arrive. A peer that breaks the protocol is logged
//! and dropped; its messages before the break are still delivered.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::io::Errno;

use super::config::NetConfig;
use super::socket::NetListener;
use super::stream::NetConn;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::sync::{AtomicBool, Ordering};
use crate::sys::timespec;
use crate::vocabulary::Mode;

/// How long an accept thread waits for a connection before it looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// What a queued message costs besides its bytes (its `Vec` and the allocator's header),
/// counted against the queue's bound so that a flood of empty messages is bounded too.
const MESSAGE_OVERHEAD_BYTES: usize = 48;

/// What the inbox gives the gatherer: where new writers go, and how to wake it.
pub(crate) trait InboxHooks: Send + Sync + 'static {
    /// A writer completed its handshake: `queue` is where its messages will be.
    fn join(&self, endpoint: &str, pid: i32, queue: WriterQueue);
    /// Messages were queued: wake the inbox if it sleeps.
    fn wake(&self);
}

/// One writer's messages, read by the I/O thread and not yet taken by the inbox.
#[derive(Default)]
struct Queue {
    messages: VecDeque<Vec<u8>>,
    /// Bytes of `messages`, each counted with [`MESSAGE_OVERHEAD_BYTES`] more.
    bytes: usize,
    /// The connection ended: nothing more will come.
    ended: bool,
    /// The I/O thread stopped reading the socket because the queue was full; the inbox
    /// clears it (and rings the eventfd) once it has taken enough.
    paused: bool,
}

/// The inbox's end of one network writer's queue.
pub(crate) struct WriterQueue {
    queue: Arc<Mutex<Queue>>,
    shared: Arc<Shared>,
}

/// What the next message of a queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A message of this many bytes.
    Message(usize),
    /// Nothing now.
    Empty,
    /// The writer ended and every message it sent was taken.
    Ended,
}

fn lock(q: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

impl WriterQueue {
    /// The next message's length, if one is queued.
    pub(crate) fn next(&self) -> Next {
        let q = lock(&self.queue);
        match q.messages.front() {
            Some(m) => Next::Message(m.len()),
            None if q.ended => Next::Ended,
            None => Next::Empty,
        }
    }

    /// Takes the next message (there must be one: [`next`](Self::next) said so).
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut q = lock(&self.queue);
        let msg = q.messages.pop_front().unwrap_or_default();
        q.bytes -= msg.len() + MESSAGE_OVERHEAD_BYTES;
        let resume = q.paused && q.bytes < self.shared.queue_max_bytes;
        if resume {
            q.paused = false;
        }
        drop(q);
        if resume {
            self.shared.wake_io();
        }
        msg
    }
}

/// State shared by the gatherer's threads and the queues.
struct Shared {
    stop: AtomicBool,
    /// Wakes the I/O thread: a new connection, a queue with room again, or stop.
    io_bell: OwnedFd,
    /// Connections accepted and not yet taken in by the I/O thread.
    incoming: Mutex<Vec<NetConn>>,
    queue_max_bytes: usize,
}

impl Shared {
    fn wake_io(&self) {
        // A full counter (never: it would take 2^64 wake-ups) only means one is pending.
        let _ = rustix::io::write(&self.io_bell, &1u64.to_ne_bytes());
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// One bound `tcp://`/`unix://` endpoint and its accept thread.
struct Bound {
    endpoint: String,
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

/// The network side of an inbox: its listening sockets, accept threads and I/O thread.
pub(crate) struct Gatherer {
    shared: Arc<Shared>,
    bound: Vec<Bound>,
    io: Option<JoinHandle<()>>,
}

impl Gatherer {
    /// Starts the I/O thread; writers arrive through endpoints added with
    /// [`add`](Self::add). `queue_max_bytes` bounds each writer's queue.
    pub(crate) fn start(
        label: &str,
        queue_max_bytes: usize,
        hooks: Arc<dyn InboxHooks>,
    ) -> Result<Gatherer> {
        let io_bell = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::io(format!("{label}: creating the I/O thread's eventfd"), e))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            io_bell,
            incoming: Mutex::new(Vec::new()),
            queue_max_bytes: queue_max_bytes.max(1),
        });
        let io = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("shmsock-inbox-io {label}"))
                .spawn(move || Io::new(shared, hooks).run())
                .map_err(|e| Error::io(format!("{label}: spawning the inbox's I/O thread"), e))?
        };
        Ok(Gatherer {
            shared,
            bound: Vec::new(),
            io: Some(io),
        })
    }

    /// Binds `ep` (`tcp://` or `unix://`) and accepts writers on it (ZeroMQ PAIR peers, NULL
    /// or CURVE as `config` says). Returns the endpoint as bound (`tcp://…:0` names its port).
    pub(crate) fn add(&mut self, ep: &Endpoint, config: NetConfig) -> Result<String> {
        let listener = NetListener::bind(ep, config)?;
        let endpoint = listener.endpoint().to_owned();
        let path = listener.socket_path().to_owned();
        let thread = {
            let shared = self.shared.clone();
            std::thread::Builder::new()
                .name(format!("shmsock-accept {endpoint}"))
                .spawn(move || accept_loop(&listener, &shared))
                .map_err(|e| Error::io(format!("{endpoint}: spawning the accept thread"), e))?
        };
        self.bound.push(Bound {
            endpoint: endpoint.clone(),
            path,
            thread: Some(thread),
        });
        Ok(endpoint)
    }

    /// The socket file of the bound endpoint `endpoint` (empty for `tcp://`).
    pub(crate) fn socket_path_of(&self, endpoint: &str) -> Option<&std::path::Path> {
        self.bound
            .iter()
            .find(|b| b.endpoint == endpoint)
            .map(|b| b.path.as_path())
    }

    /// Stops accepting, closes every writer's connection (they see `PeerClosed` after
    /// what we read) and waits for the threads. Messages already queued stay queued.
    pub(crate) fn close(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_io();
        for b in &mut self.bound {
            if let Some(t) = b.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(t) = self.io.take() {
            let _ = t.join();
        }
        // Accepted after the I/O thread's last look: closed here.
        lock_incoming(&self.shared).clear();
    }
}

impl Drop for Gatherer {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock_incoming(shared: &Shared) -> MutexGuard<'_, Vec<NetConn>> {
    shared.incoming.lock().unwrap_or_else(|p| p.into_inner())
}

/// An accept thread: runs the handshakes of `listener`'s peers (many at once, each with its
/// deadline; failures logged and dropped by `NetListener`) and hands each established
/// connection to the I/O thread.
fn accept_loop(listener: &NetListener, shared: &Shared) {
    while !shared.stopping() {
        match listener.accept(Some(ACCEPT_POLL)) {
            Ok(conn) => {
                tracing::debug!(
                    endpoint = listener.endpoint(),
                    peer_pid = conn.peer_pid(),
                    "network writer joined"
                );
                lock_incoming(shared).push(conn);
                shared.wake_io();
            }
            Err(Error::TimedOut) => {}
            Err(e) => {
                // Our own listening socket failed (out of descriptors): say so, retry.
                tracing::warn!(endpoint = listener.endpoint(), error = %e,
                    "accepting inbox writers");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// One writer as the I/O thread sees it.
struct Reader {
    conn: NetConn,
    queue: Arc<Mutex<Queue>>,
    /// It was paused at the last look (its heartbeat restarts when it is resumed).
    was_paused: bool,
    /// Read it at the next turn whatever `poll` says: it is new (its handshake may have
    /// read its first messages along with its READY) or resumed (messages may wait in its
    /// receive buffer, which `poll` cannot see).
    read_now: bool,
}

/// The I/O thread's state.
struct Io {
    shared: Arc<Shared>,
    hooks: Arc<dyn InboxHooks>,
    readers: Vec<Reader>,
}

impl Io {
    fn new(shared: Arc<Shared>, hooks: Arc<dyn InboxHooks>) -> Io {
        Io {
            shared,
            hooks,
            readers: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut ready: Vec<bool> = Vec::new();
        while !self.shared.stopping() {
            self.take_incoming();
            self.wait(&mut ready);
            let mut queued = false;
            for (r, &ready) in self.readers.iter_mut().zip(&ready) {
                if ready {
                    queued |= read(r, self.shared.queue_max_bytes);
                }
            }
            self.beat();
            if queued {
                self.hooks.wake();
            }
            // Ended connections are dropped; their queues live on until drained.
            self.readers.retain(|r| !r.conn.is_ended());
        }
        for mut r in self.readers.drain(..) {
            r.conn.close_within(Duration::from_millis(100));
            lock(&r.queue).ended = true;
        }
        self.hooks.wake();
    }

    /// Takes in the connections the accept threads established.
    fn take_incoming(&mut self) {
        let new: Vec<NetConn> = std::mem::take(&mut *lock_incoming(&self.shared));
        for conn in new {
            let queue = Arc::new(Mutex::new(Queue::default()));
            self.hooks.join(
                conn.endpoint(),
                conn.peer_pid(),
                WriterQueue {
                    queue: queue.clone(),
                    shared: self.shared.clone(),
                },
            );
            self.readers.push(Reader {
                conn,
                queue,
                was_paused: false,
                read_now: true,
            });
        }
    }

    /// Waits for the eventfd, a readable socket (of a writer whose queue has room), or the
    /// next heartbeat; `ready[i]` says whether reader `i` should be read.
    fn wait(&mut self, ready: &mut Vec<bool>) {
        let mut due: Option<Instant> = None;
        let mut fds = Vec::with_capacity(1 + self.readers.len());
        fds.push(PollFd::new(&self.shared.io_bell, PollFlags::IN));
        let mut polled = Vec::with_capacity(self.readers.len());
        for r in &mut self.readers {
            // A paused writer is not read, so not heard from: its heartbeat waits until it
            // is resumed, and then starts again from now.
            let paused = lock(&r.queue).paused;
            if std::mem::replace(&mut r.was_paused, paused) && !paused {
                let heartbeat = r.conn.heartbeat_settings();
                r.conn.set_heartbeat(heartbeat);
                r.read_now = true;
            }
        }
        let read_now = self.readers.iter().any(|r| r.read_now && !r.was_paused);
        for (i, r) in self.readers.iter().enumerate() {
            if r.was_paused {
                continue;
            }
            due = match (due, r.conn.heartbeat_due()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut flags = PollFlags::IN;
            if r.conn.has_pending_tx() {
                flags |= PollFlags::OUT;
            }
            fds.push(PollFd::from_borrowed_fd(r.conn.fd(), flags));
            polled.push(i);
        }
        let timeout = if read_now {
            Some(timespec(Duration::ZERO))
        } else {
            due.map(|d| timespec(d.saturating_duration_since(Instant::now())))
        };
        ready.clear();
        ready.resize(self.readers.len(), false);
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the inbox's I/O thread: poll");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let bell_rang = !fds[0].revents().is_empty();
        let readable: Vec<bool> = fds[1..].iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        if bell_rang {
            let mut sink = [0u8; 8];
            let _ = rustix::io::read(&self.shared.io_bell, &mut sink);
        }
        for (&readable, &i) in readable.iter().zip(&polled) {
            ready[i] = readable || std::mem::take(&mut self.readers[i].read_now);
        }
    }

    /// Keeps the heartbeats of the writers that have them (a silent one is dropped); not of
    /// a paused writer, whose socket we do not read (its bytes wait for the inbox).
    fn beat(&mut self) {
        let now = Instant::now();
        for r in &mut self.readers {
            if r.was_paused {
                continue;
            }
            if r.conn.heartbeat_due().is_some_and(|d| d <= now) {
                if let Err(e) = r.conn.heartbeat() {
                    ended(r, &e);
                }
            }
        }
    }
}

/// Reads whole messages from `r`'s socket into its queue until the kernel has no more or
/// the queue is full (then pauses it). Returns whether a message was queued.
fn read(r: &mut Reader, queue_max_bytes: usize) -> bool {
    let mut queued = false;
    loop {
        {
            let mut q = lock(&r.queue);
            if q.bytes >= queue_max_bytes {
                q.paused = true;
                return queued;
            }
        }
        match r.conn.recv_vec(Mode::Try) {
            Ok(msg) => {
                let mut q = lock(&r.queue);
                q.bytes += msg.len() + MESSAGE_OVERHEAD_BYTES;
                q.messages.push_back(msg);
                queued = true;
            }
            Err(Error::WouldBlock) => return queued,
            Err(e) => {
                ended(r, &e);
                return true;
            }
        }
    }
}

/// `r`'s connection ended with `e`: logged (a protocol breach as a warning), and its queue
/// marked ended (the inbox removes the writer once it took the rest).
fn ended(r: &mut Reader, e: &Error) {
    match e {
        Error::PeerClosed { .. } => {
            tracing::debug!(
                endpoint = r.conn.endpoint(),
                peer_pid = r.conn.peer_pid(),
                "network writer closed"
            )
        }
        Error::PeerGone { .. } => {
            tracing::info!(endpoint = r.conn.endpoint(), peer_pid = r.conn.peer_pid(),
                error = %e, "network writer gone")
        }
        _ => {
            tracing::warn!(endpoint = r.conn.endpoint(), peer_pid = r.conn.peer_pid(),
                error = %e, "network writer dropped")
        }
    }
    if !r.conn.is_ended() {
        r.conn.close_within(Duration::ZERO);
    }
    lock(&r.queue).ended = true;
}
