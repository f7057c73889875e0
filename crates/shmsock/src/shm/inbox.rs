//! `shm://` inbox: many writers, one reader.
//!
//! Each writer is an ordinary `Conn` with its own SPSC ring (no shared tail, no CAS between
//! writers). The inbox takes one message from each writer in turn (round robin), so a
//! writer that never stops cannot starve one that sends rarely. To sleep it sets the "I
//! sleep" flag in every connection's segment, and waits on the doorbells it passed to the
//! writers in their hellos, one per writer (so that no writer can touch another's); a
//! writer rings its doorbell only when it sees the flag (see `doorbell` and
//! `wait::prepare_doorbell_wait`). A background thread accepts writers; it rings a doorbell
//! of its own, so a sleeping inbox merges a new writer at once.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
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
use crate::vocabulary::Mode;

/// Identifies the writer a message came from: its pid and a serial number unique within
/// this inbox (a pid can connect several times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriterId {
    /// The writer's process id (from `SO_PEERCRED`).
    pub pid: i32,
    /// The order in which this inbox accepted it, from 0.
    pub serial: u64,
}

impl std::fmt::Display for WriterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writer #{} (pid {})", self.serial, self.pid)
    }
}

struct Writer {
    id: WriterId,
    conn: ShmConn,
    /// The end of the doorbell this writer rings when we sleep (the other end is the
    /// writer's alone).
    bell: OwnedFd,
}

pub(crate) struct ShmInbox {
    endpoint: String,
    socket_path: PathBuf,
    /// The doorbell the accept thread rings when it queued a writer.
    bell: Doorbell,
    writers: Vec<Writer>,
    /// Index of the writer whose turn it is.
    turn: usize,
    acceptor: Acceptor<Writer>,
    opts: ShmConfig,
    closed: bool,
}

impl ShmInbox {
    pub(crate) fn bind(endpoint: String, name: &str, opts: &ShmConfig) -> Result<Self> {
        let bound = BoundName::bind(&endpoint, name, SegmentRole::Inbox)?;
        let bell = new_doorbell(&endpoint)?;
        let ringer = bell.ringer().map_err(|e| {
            Error::io(
                format!("{endpoint}: duplicating the accept thread's doorbell"),
                e,
            )
        })?;
        let socket_path = bound.socket_path().to_owned();
        let admit = Writers {
            opts: opts.clone(),
            serial: 0,
            ringer,
        };
        let acceptor = Acceptor::spawn(bound, admit, opts.handshake_timeout)?;
        Ok(ShmInbox {
            endpoint,
            socket_path,
            bell,
            writers: Vec::new(),
            turn: 0,
            acceptor,
            opts: opts.clone(),
            closed: false,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Takes in newly accepted writers.
    fn merge_incoming(&mut self) {
        self.acceptor.take_into(&mut self.writers);
    }

    /// Live writers (looks at their control sockets; ended ones whose messages were all
    /// read are removed).
    pub(crate) fn writer_count(&mut self) -> usize {
        self.merge_incoming();
        self.check_writers();
        let mut i = 0;
        while i < self.writers.len() {
            match self.writers[i].conn.poll_frame() {
                Err(_) => self.remove(i),
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
    fn poll_once(&mut self) -> Option<(usize, Frame)> {
        let mut looked = 0;
        while looked < self.writers.len() {
            let i = (self.turn + looked) % self.writers.len();
            match self.writers[i].conn.poll_frame() {
                Ok(Some(frame)) => return Some((i, frame)),
                Ok(None) => looked += 1,
                // An ended writer's error is not ours to report: it is simply gone. A
                // corrupt one was logged by its link.
                Err(_) => {
                    self.remove(i);
                    looked = 0;
                }
            }
        }
        None
    }

    /// Looks at every writer's control socket; true if one has ended (its last messages
    /// must then be drained before it is removed).
    fn check_writers(&mut self) -> bool {
        let mut ended = false;
        let mut i = 0;
        while i < self.writers.len() {
            match self.writers[i].conn.check_peer() {
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
    fn next_frame(&mut self, mode: Mode) -> Result<(usize, Frame)> {
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
    fn sleep(&mut self, t: Duration) -> Option<(usize, Frame)> {
        let any_light = self.writers.iter().any(|w| w.conn.peer_light());
        let sound = wait::prepare_doorbell_wait(
            self.writers.iter().map(|w| w.conn.rx_sleeping_flag()),
            any_light,
        );
        let found = if self.acceptor.is_pending() {
            None
        } else {
            let found = self.poll_once();
            if found.is_none() {
                // Without the heavy barrier a light writer's ring may be missed: cap it.
                // The wait resets the bells that rang; we look at every ring after it.
                Doorbell::wait_any(
                    std::iter::once(self.bell.sleep_end())
                        .chain(self.writers.iter().map(|w| w.bell.as_fd())),
                    if sound {
                        t
                    } else {
                        t.min(Duration::from_millis(1))
                    },
                );
            }
            found
        };
        for w in &self.writers {
            wait::cancel_wait(w.conn.rx_sleeping_flag());
        }
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

    /// The length of writer `i`'s message in `frame`; a corrupt loan drops the writer.
    fn message_len(&mut self, i: usize, frame: Frame) -> Result<(usize, Option<LoanRef>)> {
        let found = self.writers[i].conn.message_len(frame);
        if found.is_err() {
            self.remove(i);
        }
        found
    }

    /// Receives the next message into a new `Vec`.
    pub(crate) fn recv_vec(&mut self, mode: Mode) -> Result<(Vec<u8>, WriterId)> {
        let (i, frame) = self.next_frame(mode)?;
        let (len, loan) = self.message_len(i, frame)?;
        let mut out = vec![0; len];
        let (_, id) = self.take(i, frame, loan, &mut out)?;
        Ok((out, id))
    }

    /// Copies `frame` of writer `i` out, consumes it, and passes the turn on. A corrupt
    /// frame drops that writer and is reported.
    fn take(
        &mut self,
        i: usize,
        frame: Frame,
        loan: Option<LoanRef>,
        out: &mut [u8],
    ) -> Result<(usize, WriterId)> {
        let w = &mut self.writers[i];
        let id = w.id;
        if let Err(e) = w.conn.take_message(frame, loan, out) {
            self.remove(i);
            return Err(e);
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
        self.acceptor.stop();
        self.merge_incoming();
        for w in &mut self.writers {
            w.conn.close();
        }
    }
}

impl Drop for ShmInbox {
    fn drop(&mut self) {
        self.close();
    }
}

/// A new doorbell for `endpoint`.
fn new_doorbell(endpoint: &str) -> Result<Doorbell> {
    Doorbell::new()
        .map_err(|e| Error::io(format!("{endpoint}: creating a doorbell socket pair"), e))
}

/// What the accept thread needs to take in writers.
struct Writers {
    opts: ShmConfig,
    /// The serial of the next writer.
    serial: u64,
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
            Extras {
                bell: Some(&bell),
                pool: None,
                handover: None,
            },
            || {
                OwnedSegment::create_for(RING_CAPACITY_MIN_BYTES, SegmentRole::Inbox, endpoint)
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
        let (peer, mine) = hello.finish(endpoint)?;
        let pid = peer.pid;
        let conn = ShmConn::new(endpoint.to_owned(), peer, mine, &self.opts, None)?;
        tracing::debug!(
            endpoint,
            peer_pid = pid,
            serial = self.serial,
            "writer joined"
        );
        deliver(Writer {
            id: WriterId {
                pid,
                serial: self.serial,
            },
            conn,
            bell: bell.into(),
        });
        self.serial += 1;
        self.ringer.ring();
        Ok(())
    }
}
