//! `shm://` inbox: many writers, one reader.
//!
//! Each writer is an ordinary `Conn` with its own SPSC ring (no shared tail, no CAS between
//! writers). The inbox takes one message from each writer in turn (round robin), so a
//! writer that never stops cannot starve one that sends rarely. To sleep it sets the "I
//! sleep" flag in every connection's segment, and waits on the doorbells it passed to the
//! writers in their hellos, one per writer (so that no writer can touch another's); a
//! writer rings its doorbell only when it sees the flag (see `doorbell` and
//! `wait::prepare_doorbell_wait`). A background thread per bound name accepts writers; it
//! rings a doorbell of its own, so a sleeping inbox merges a new writer at once.
//!
//! One inbox may be bound to several names ([`ShmInbox::add_name`]), and may take in
//! writers of another transport ([`ForeignWriter`], joined through a [`ForeignDoor`]):
//! another thread queues their messages, and rings the inbox's own doorbell when it sleeps
//! (the same flag-then-barrier handshake as the writers' doorbells, with a flag of the
//! door's). Every writer, whatever its transport, has one turn in the same round robin, and
//! its serial comes from one counter, so it is unique within the inbox.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::acceptor::{Acceptor, Admit};
use super::config::ShmConfig;
use super::doorbell::{Doorbell, Ringer};
use super::hello::Role;
use super::label::SegmentRole;
use super::loan::LoanRef;
use super::pair::ShmConn;
use super::rendezvous::{greet, BoundName, Extras, Greeting, Validated};
use super::ring::{Frame, RING_CAPACITY_MIN_BYTES};
use super::segment::OwnedSegment;
use super::wait::{self, Outcome, Turn};
use crate::error::{Error, Result};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::vocabulary::{Mode, WaitStrategy};

/// Identifies the writer a message came from: its pid and a serial number unique within
/// this inbox (a pid can connect several times).
///
/// `pid` comes from `SO_PEERCRED` for `shm://` and `unix://` writers; it is 0 for `tcp://`
/// writers (the kernel does not know the process at the other end). The serial is unique
/// across all the inbox's endpoints and transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriterId {
    /// The writer's process id (from `SO_PEERCRED`; 0 for a `tcp://` writer).
    pub pid: i32,
    /// The order in which this inbox accepted it, from 0.
    pub serial: u64,
}

impl std::fmt::Display for WriterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writer #{} (pid {})", self.serial, self.pid)
    }
}

/// What the next message of a [`ForeignWriter`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A message of this many bytes is queued.
    Message(usize),
    /// Nothing is queued now.
    Empty,
    /// The writer ended and everything it sent was taken: remove it.
    Ended,
}

/// A writer of another transport whose messages another thread queues for the inbox.
pub(crate) trait ForeignWriter: Send {
    /// The next message's length, if one is queued.
    fn next(&mut self) -> Next;
    /// Moves the next message (of the length [`next`](Self::next) said) into `out`.
    fn take(&mut self, out: &mut [u8]);
    /// Takes the next message as it lies.
    fn take_vec(&mut self) -> Vec<u8>;
}

/// One writer: an `shm://` connection, or a writer of another transport. Not boxed: the
/// round robin reads the `shm://` connection on every look, a pointer chase it can spare.
#[allow(clippy::large_enum_variant)]
enum Link {
    Shm {
        conn: ShmConn,
        /// The end of the doorbell this writer rings when we sleep (the other end is the
        /// writer's alone).
        bell: OwnedFd,
    },
    Foreign(Box<dyn ForeignWriter>),
}

struct Writer {
    id: WriterId,
    link: Link,
}

impl Writer {
    fn shm(&self) -> Option<&ShmConn> {
        match &self.link {
            Link::Shm { conn, .. } => Some(conn),
            Link::Foreign(_) => None,
        }
    }
}

/// Where the next message of a writer lies.
#[derive(Clone, Copy)]
enum Found {
    Shm(Frame),
    Foreign(usize),
}

/// One bound `shm://` name and its accept thread.
struct Name {
    endpoint: String,
    socket_path: PathBuf,
    acceptor: Acceptor<Writer>,
}

/// How writers of another transport join an inbox and wake it (cheap to clone, `Send` and
/// `Sync`: the other transport's threads keep one).
#[derive(Clone)]
pub(crate) struct ForeignDoor {
    shared: Arc<Door>,
}

struct Door {
    joining: Mutex<Vec<Writer>>,
    /// Set (Release) after a join; swapped back by the inbox (Acquire).
    pending: AtomicBool,
    /// Non-zero while the inbox announces that it sleeps (see `wait`).
    sleeping: AtomicU32,
    /// The serial of the next writer, shared with the accept threads.
    serial: Arc<AtomicU64>,
    /// Rings the inbox's own doorbell.
    ringer: Ringer,
}

impl ForeignDoor {
    /// Adds `writer` (of process `pid`, 0 if unknown) to the inbox; it is taken in at the
    /// inbox's next look, at once if it sleeps. Returns its id.
    pub(crate) fn join(&self, pid: i32, writer: Box<dyn ForeignWriter>) -> WriterId {
        let d = &self.shared;
        let id = WriterId {
            pid,
            serial: d.serial.fetch_add(1, Ordering::Relaxed),
        };
        d.joining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Writer {
                id,
                link: Link::Foreign(writer),
            });
        d.pending.store(true, Ordering::Release);
        d.ringer.ring();
        id
    }

    /// Wakes the inbox if it announced that it sleeps. Call it after a message was queued
    /// where [`ForeignWriter::next`] sees it (under a lock the inbox also takes).
    pub(crate) fn wake(&self) {
        let d = &self.shared;
        if wait::any_sleeps(std::iter::once(&d.sleeping), false) {
            d.ringer.ring();
        }
    }
}

pub(crate) struct ShmInbox {
    /// The inbox's first endpoint (for the log).
    endpoint: String,
    /// The doorbell the accept threads and the foreign door ring when they queued a writer.
    bell: Doorbell,
    writers: Vec<Writer>,
    /// Index of the writer whose turn it is.
    turn: usize,
    names: Vec<Name>,
    door: ForeignDoor,
    opts: ShmConfig,
    closed: bool,
}

impl ShmInbox {
    /// An inbox bound to no name yet (see [`add_name`](Self::add_name) and
    /// [`door`](Self::door)); `endpoint` names it in the log.
    pub(crate) fn new(endpoint: String, opts: &ShmConfig) -> Result<Self> {
        let bell = new_doorbell(&endpoint)?;
        let ringer = ringer_of(&endpoint, &bell)?;
        let door = ForeignDoor {
            shared: Arc::new(Door {
                joining: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                sleeping: AtomicU32::new(0),
                serial: Arc::new(AtomicU64::new(0)),
                ringer,
            }),
        };
        Ok(ShmInbox {
            endpoint,
            bell,
            writers: Vec::new(),
            turn: 0,
            names: Vec::new(),
            door,
            opts: opts.clone(),
            closed: false,
        })
    }

    /// Binds one more `shm://` name (`endpoint`): its writers join the same round robin.
    pub(crate) fn add_name(&mut self, endpoint: String, name: &str) -> Result<()> {
        let bound = BoundName::bind(&endpoint, name, SegmentRole::Inbox)?;
        let socket_path = bound.socket_path().to_owned();
        let admit = Writers {
            opts: self.opts.clone(),
            serial: self.door.shared.serial.clone(),
            ringer: ringer_of(&endpoint, &self.bell)?,
        };
        let acceptor = Acceptor::spawn(bound, admit, self.opts.handshake_timeout)?;
        self.names.push(Name {
            endpoint,
            socket_path,
            acceptor,
        });
        Ok(())
    }

    /// The door through which writers of another transport join this inbox.
    pub(crate) fn door(&self) -> ForeignDoor {
        self.door.clone()
    }

    /// The rendezvous socket of the bound name `endpoint`.
    pub(crate) fn socket_path_of(&self, endpoint: &str) -> Option<&Path> {
        self.names
            .iter()
            .find(|n| n.endpoint == endpoint)
            .map(|n| n.socket_path.as_path())
    }

    /// Takes in newly accepted writers.
    fn merge_incoming(&mut self) {
        for name in &self.names {
            name.acceptor.take_into(&mut self.writers);
        }
        let d = &self.door.shared;
        if d.pending.load(Ordering::Relaxed) && d.pending.swap(false, Ordering::Acquire) {
            self.writers
                .append(&mut d.joining.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Whether writers wait to be taken in.
    fn is_pending(&self) -> bool {
        self.names.iter().any(|n| n.acceptor.is_pending())
            || self.door.shared.pending.load(Ordering::Acquire)
    }

    /// Live writers (looks at their control sockets; ended ones whose messages were all
    /// read are removed).
    pub(crate) fn writer_count(&mut self) -> usize {
        self.merge_incoming();
        self.check_writers();
        let mut i = 0;
        while i < self.writers.len() {
            match self.look(i) {
                Err(()) => self.remove(i),
                Ok(_) => i += 1,
            }
        }
        self.writers.len()
    }

    /// Removes writer `i` (ended and drained, or corrupt), keeping the turn order.
    fn remove(&mut self, i: usize) {
        let w = self.writers.remove(i);
        tracing::debug!(endpoint = %self.endpoint, writer = %w.id, "writer removed from the inbox");
        if i < self.turn {
            self.turn -= 1;
        }
        if self.turn >= self.writers.len() {
            self.turn = 0;
        }
    }

    /// One round-robin look at every writer, starting with the one whose turn it is: the
    /// first published frame, and the index of its writer. Drops writers that ended (once
    /// drained) or whose memory is corrupt.
    fn poll_once(&mut self) -> Option<(usize, Found)> {
        let mut looked = 0;
        while looked < self.writers.len() {
            let i = (self.turn + looked) % self.writers.len();
            match self.look(i) {
                Ok(Some(found)) => return Some((i, found)),
                Ok(None) => looked += 1,
                // An ended writer's error is not ours to report: it is simply gone. A
                // corrupt one was logged by its link.
                Err(()) => {
                    self.remove(i);
                    looked = 0;
                }
            }
        }
        None
    }

    /// Writer `i`'s next message, if one is there; `Err` if it ended and was drained (or
    /// is corrupt): remove it.
    #[inline]
    fn look(&mut self, i: usize) -> std::result::Result<Option<Found>, ()> {
        match &mut self.writers[i].link {
            Link::Shm { conn, .. } => match conn.poll_frame() {
                Ok(frame) => Ok(frame.map(Found::Shm)),
                Err(_) => Err(()),
            },
            Link::Foreign(w) => match w.next() {
                Next::Message(len) => Ok(Some(Found::Foreign(len))),
                Next::Empty => Ok(None),
                Next::Ended => Err(()),
            },
        }
    }

    /// Looks at every writer's control socket; true if one has ended (its last messages
    /// must then be drained before it is removed).
    fn check_writers(&mut self) -> bool {
        let mut ended = false;
        let mut i = 0;
        while i < self.writers.len() {
            let Link::Shm { conn, .. } = &mut self.writers[i].link else {
                // Another thread watches a foreign writer; `Next::Ended` says it ended.
                i += 1;
                continue;
            };
            match conn.check_peer() {
                Ok(e) => {
                    ended |= e;
                    i += 1;
                }
                Err(_) => self.remove(i),
            }
        }
        ended
    }

    /// Waits for the next message as `mode` allows: its writer's index and frame.
    fn next_frame(&mut self, mode: Mode) -> Result<(usize, Found)> {
        if self.closed {
            return Err(Error::Closed);
        }
        let (strategy, spin_budget) = (self.opts.wait, self.opts.spin_budget);
        wait::drive(strategy, spin_budget, mode.deadline(), |turn| {
            match turn {
                Turn::Attempt => {
                    self.merge_incoming();
                    if let Some(found) = self.poll_once() {
                        return Ok(Outcome::Done(found));
                    }
                    if mode == Mode::Try {
                        // A writer that just ended may still have messages to drain.
                        if self.check_writers() {
                            return Ok(Outcome::Again);
                        }
                        return Err(Error::WouldBlock);
                    }
                }
                Turn::CheckPeer => {
                    self.check_writers();
                }
                Turn::Sleep(t) => {
                    if let Some(found) = self.sleep(t) {
                        return Ok(Outcome::Done(found));
                    }
                }
            }
            Ok(Outcome::Pending)
        })
    }

    /// Announces the sleep to every writer, re-checks, and waits on the doorbell at most
    /// `t`. Returns a frame found by the re-check.
    fn sleep(&mut self, t: Duration) -> Option<(usize, Found)> {
        let any_light = self
            .writers
            .iter()
            .filter_map(Writer::shm)
            .any(ShmConn::peer_light);
        let door = self.door.shared.clone();
        let sound = wait::prepare_doorbell_wait(
            self.writers
                .iter()
                .filter_map(Writer::shm)
                .map(ShmConn::rx_sleeping_flag)
                .chain(std::iter::once(&door.sleeping)),
            any_light,
        );
        let found = if self.is_pending() {
            None
        } else {
            let found = self.poll_once();
            if found.is_none() {
                // Without the heavy barrier a light writer's ring may be missed: cap it.
                // The wait resets the bells that rang; we look at every ring after it.
                Doorbell::wait_any(
                    std::iter::once(self.bell.sleep_end()).chain(self.writers.iter().filter_map(
                        |w| match &w.link {
                            Link::Shm { bell, .. } => Some(bell.as_fd()),
                            Link::Foreign(_) => None,
                        },
                    )),
                    if sound {
                        t
                    } else {
                        t.min(Duration::from_millis(1))
                    },
                );
            }
            found
        };
        for conn in self.writers.iter().filter_map(Writer::shm) {
            wait::cancel_wait(conn.rx_sleeping_flag());
        }
        wait::cancel_wait(&door.sleeping);
        found
    }

    /// Receives the next message into `buf`: its length and writer. `BufferTooSmall`
    /// leaves it queued, and it stays that writer's turn.
    pub(crate) fn recv(&mut self, buf: &mut [u8], mode: Mode) -> Result<(usize, WriterId)> {
        let (i, frame) = self.next_frame(mode)?;
        let (len, loan) = self.message_len(i, frame)?;
        if len > buf.len() {
            self.turn = i;
            return Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            });
        }
        self.take(i, frame, loan, &mut buf[..len])
    }

    /// The length of writer `i`'s message found; a corrupt loan drops the writer.
    fn message_len(&mut self, i: usize, found: Found) -> Result<(usize, Option<LoanRef>)> {
        let (conn, frame) = match (&mut self.writers[i].link, found) {
            (Link::Shm { conn, .. }, Found::Shm(frame)) => (conn, frame),
            (_, Found::Foreign(len)) => return Ok((len, None)),
            (Link::Foreign(_), Found::Shm(_)) => unreachable!("a frame of a foreign writer"),
        };
        let len = conn.message_len(frame);
        if len.is_err() {
            self.remove(i);
        }
        len
    }

    /// Receives the next message into a new `Vec`.
    pub(crate) fn recv_vec(&mut self, mode: Mode) -> Result<(Vec<u8>, WriterId)> {
        let (i, found) = self.next_frame(mode)?;
        if let Link::Foreign(w) = &mut self.writers[i].link {
            // Queued as a `Vec` already: handed over without a copy.
            let (out, id) = (w.take_vec(), self.writers[i].id);
            self.turn = (i + 1) % self.writers.len();
            return Ok((out, id));
        }
        let (len, loan) = self.message_len(i, found)?;
        let mut out = vec![0; len];
        let (_, id) = self.take(i, found, loan, &mut out)?;
        Ok((out, id))
    }

    /// Copies `frame` of writer `i` out, consumes it, and passes the turn on. A corrupt
    /// frame drops that writer and is reported.
    fn take(
        &mut self,
        i: usize,
        found: Found,
        loan: Option<LoanRef>,
        out: &mut [u8],
    ) -> Result<(usize, WriterId)> {
        let w = &mut self.writers[i];
        let id = w.id;
        match (&mut w.link, found) {
            (Link::Shm { conn, .. }, Found::Shm(frame)) => {
                if let Err(e) = conn.take_message(frame, loan, out) {
                    self.remove(i);
                    return Err(e);
                }
            }
            (Link::Foreign(w), Found::Foreign(_)) => w.take(out),
            _ => unreachable!("a writer's message found on another transport"),
        }
        self.turn = (i + 1) % self.writers.len();
        Ok((out.len(), id))
    }

    /// Stops accepting and says goodbye to every writer (they see `PeerClosed`).
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for name in &mut self.names {
            name.acceptor.stop();
        }
        self.merge_incoming();
        for w in &mut self.writers {
            if let Link::Shm { conn, .. } = &mut w.link {
                conn.close();
            }
        }
    }
}

impl Drop for ShmInbox {
    fn drop(&mut self) {
        self.close();
    }
}

/// Another handle on `bell`'s ringing end, for a thread of `endpoint`'s.
fn ringer_of(endpoint: &str, bell: &Doorbell) -> Result<Ringer> {
    bell.ringer()
        .map_err(|e| Error::io(format!("{endpoint}: duplicating the inbox's doorbell"), e))
}

/// A new doorbell for `endpoint`.
fn new_doorbell(endpoint: &str) -> Result<Doorbell> {
    Doorbell::new()
        .map_err(|e| Error::io(format!("{endpoint}: creating a doorbell socket pair"), e))
}

/// What the accept thread needs to take in writers.
struct Writers {
    opts: ShmConfig,
    /// The serial of the next writer (shared by every transport of the inbox).
    serial: Arc<AtomicU64>,
    /// Rung after a writer is queued.
    ringer: Ringer,
}

impl Admit for Writers {
    type Offer = OwnedSegment;
    /// The writer's own doorbell: it rings it when we sleep.
    type Kept = Doorbell;
    type Peer = Writer;

    fn greet(
        &mut self,
        endpoint: &str,
        sock: UnixStream,
        deadline: Instant,
    ) -> Result<(Greeting<OwnedSegment>, Doorbell)> {
        let bell = new_doorbell(endpoint)?;
        // Our own ring in each connection is never written: keep it minimal.
        let greeting = greet(
            endpoint,
            sock,
            &self.opts.peers,
            (Role::Inbox, Role::Conn),
            || {
                OwnedSegment::create_for(RING_CAPACITY_MIN_BYTES, SegmentRole::Inbox, endpoint)
                    .map(|seg| seg.fence_wake_if(self.opts.wait == WaitStrategy::Blocking))
                    .map_err(Into::into)
            },
            deadline,
        )?;
        Ok((greeting, bell))
    }

    fn finish(
        &mut self,
        endpoint: &str,
        hello: Validated<OwnedSegment>,
        bell: Doorbell,
        deliver: &mut dyn FnMut(Writer),
    ) -> Result<()> {
        let extras = Extras {
            bell: Some(&bell),
            pool: None,
            handover: None,
        };
        let (peer, mine) = hello.finish(endpoint, extras)?;
        let pid = peer.pid;
        let conn = ShmConn::new(endpoint.to_owned(), peer, mine, &self.opts, None)?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(endpoint, peer_pid = pid, serial, "writer joined");
        deliver(Writer {
            id: WriterId { pid, serial },
            link: Link::Shm {
                conn,
                bell: bell.into(),
            },
        });
        self.ringer.ring();
        Ok(())
    }
}
