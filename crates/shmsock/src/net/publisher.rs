//! `tcp://` and `unix://` publisher: a ZeroMQ PUB socket.
//!
//! ```text
//!  accept thread ──handshake (PUB↔SUB)──▶ State.incoming ─┐
//!                                                          ▼
//!  Publisher::send ──filter by topics──▶ Outbox (one per subscriber) ──▶ I/O thread (pump)
//!        ▲                               queue ≤ ring_capacity bytes        │ writes frames,
//!        └───────── room (Condvar, Overflow::Block only) ◀──────────────────┘ reads SUBSCRIBE
//! ```
//!
//! Filtering happens here, on the publisher's side, as in ZeroMQ: a message is queued for
//! a subscriber only if one of its prefixes ([`Topics`](super::topics::Topics)) starts the message. Each
//! subscriber's queue is bounded by [`Options::ring_capacity`](crate::Options::ring_capacity) bytes (always room for one
//! message): the high-water mark. When it is reached, [`Overflow::DropOldest`] drops that
//! subscriber's oldest queued messages (no one else is affected, nothing waits) and
//! [`Overflow::Block`] makes `send` wait for room ([`Error::SlowSubscriber`] on timeout).
//! A message is copied once: a short one into each queue's slot, a longer one into an
//! `Arc<[u8]>` shared by every queue that takes it. The
//! I/O thread ([`super::pump`]) owns the sockets: a stalled subscriber fills its own socket
//! buffer and queue, never anyone else's; a dead one is removed as soon as the kernel says
//! so, waking a waiting `send`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{eventfd, EventfdFlags};

use super::config::NetConfig;
use super::outbox::{Outbox, Queued, Shared, State};
use super::socket::NetListener;
use super::zmtp::SocketType;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::handover::{Book, Token};
use crate::sync::{AtomicBool, AtomicUsize, Ordering};
use crate::vocabulary::{Mode, Overflow};

/// How long the accept thread waits in `poll` before it looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// A bound `tcp://` or `unix://` publisher.
pub(crate) struct NetPublisher {
    endpoint: String,
    socket_path: PathBuf,
    shared: Arc<Shared>,
    policy: Overflow,
    queue_max_bytes: usize,
    max_len: usize,
    /// The offers of our shared-memory ring, if we make them.
    book: Option<Arc<Book>>,
    acceptor: Option<JoinHandle<()>>,
    pump: Option<JoinHandle<()>>,
}

impl NetPublisher {
    /// Binds `ep`. With an offering, `ring_for` names the ring to offer, from the endpoint
    /// as bound (a `tcp://…:0` with its port), before any subscriber is taken in: none
    /// misses the offer. (A subscriber that connects meanwhile waits in the backlog.)
    pub(crate) fn bind(
        ep: &Endpoint,
        options: &NetConfig,
        ring_for: impl FnOnce(&str) -> Option<String>,
    ) -> Result<NetPublisher> {
        let listener = NetListener::bind(ep, options.clone())?;
        let endpoint = listener.endpoint().to_owned();
        if let Some(offering) = &options.offering {
            if let Some(name) = ring_for(&endpoint) {
                let _ = offering.name.set(name);
            }
        }
        let socket_path = listener.socket_path().to_owned();
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::io(format!("{endpoint}: eventfd"), e))?;
        let shared = Arc::new(Shared {
            endpoint: endpoint.clone(),
            state: Mutex::new(State {
                outboxes: Vec::new(),
                incoming: Vec::new(),
                stop: false,
                sender_waits: false,
                pump_sleeping: false,
                due: Vec::new(),
            }),
            room: Condvar::new(),
            wake,
            stop_accepting: AtomicBool::new(false),
            reachable: AtomicUsize::new(0),
        });
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| Error::io(format!("{endpoint}: spawning a thread"), e))
        };
        let pump = {
            let shared = shared.clone();
            spawn(
                format!("shmsock-pub-io {endpoint}"),
                Box::new(move || super::pump::run(&shared)),
            )?
        };
        let mut publisher = NetPublisher {
            endpoint: endpoint.clone(),
            socket_path,
            shared: shared.clone(),
            policy: options.overflow,
            queue_max_bytes: options.queue_max_bytes,
            max_len: options.max_message_len,
            book: options.offering.as_ref().map(|o| o.book.clone()),
            acceptor: None,
            pump: Some(pump),
        };
        // On failure `publisher` is dropped, which stops the I/O thread.
        publisher.acceptor = Some(spawn(
            format!("shmsock-accept {endpoint}"),
            Box::new(move || accept_loop(&listener, &shared)),
        )?);
        tracing::info!(endpoint = %endpoint, role = "publisher", "bound");
        Ok(publisher)
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    pub(crate) fn max_message_len(&self) -> usize {
        self.max_len
    }

    /// Subscribers connected that have subscribed to something (a ZeroMQ SUB that
    /// subscribed to nothing receives nothing and is not counted).
    pub(crate) fn subscriber_count(&mut self) -> usize {
        self.shared
            .lock()
            .outboxes
            .iter()
            .filter(|o| o.subscribed && !o.handed_over)
            .count()
    }

    /// The subscriber that was offered `token` joined our shared-memory ring: its
    /// connection gets the HANDOVER command now, naming `seq` (the ring's sequence number
    /// of the first message not yet given to this publisher), and nothing more. A
    /// connection not taken in yet is handed over as it is. Returns false if no open
    /// connection of ours was offered `token`.
    pub(crate) fn hand_over(&mut self, token: Token, seq: u64) -> bool {
        let mut st = self.shared.lock();
        let found = st
            .outboxes
            .iter_mut()
            .find(|o| o.token == Some(token) && !o.handed_over);
        if let Some(o) = found {
            o.handed_over = true;
            o.queue.push_back(Queued::Handover(seq));
            tracing::info!(endpoint = %self.endpoint, peer_pid = o.pid, seq,
                "subscriber upgraded to shared memory");
            self.shared.recount(&st);
            let wake = std::mem::take(&mut st.pump_sleeping);
            drop(st);
            if wake {
                self.shared.wake();
            }
            return true;
        }
        let Some(book) = &self.book else {
            return false;
        };
        st.due.retain(|&(t, _)| book.lookup(t).is_some());
        let open = book.lookup(token).is_some();
        if open && !st.due.iter().any(|&(t, _)| t == token) {
            st.due.push((token, seq));
        }
        open
    }

    /// Waits (`Overflow::Block`) as `mode` allows until every subscriber that wants `msg`
    /// has room for it, queuing nothing: a caller sending on several transports makes sure
    /// of this before it commits the message to any of them (only `send` adds to the
    /// queues, so the room stays).
    pub(crate) fn wait_for_room_for(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        if self.policy != Overflow::Block || self.is_unreachable() {
            return Ok(());
        }
        let st = self.shared.lock();
        self.wait_for_room(st, msg, mode).map(drop)
    }

    /// Whether no connection takes messages now (none, or all handed over to our ring):
    /// then `send` has nothing to do.
    fn is_unreachable(&self) -> bool {
        self.shared.reachable.load(Ordering::Relaxed) == 0
    }

    /// The first subscriber that wants `msg` and has no room for it in its queue.
    fn first_full<'a>(&self, st: &'a State, msg: &[u8]) -> Option<&'a Outbox> {
        st.outboxes.iter().find(|o| {
            !o.handed_over && !o.has_room(msg.len(), self.queue_max_bytes) && o.topics.matches(msg)
        })
    }

    /// Queues `msg` for every subscriber whose topics match it.
    pub(crate) fn send(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        if msg.len() > self.max_len {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max_len,
            });
        }
        if self.is_unreachable() {
            return Ok(());
        }
        // Copied before taking the lock, so the I/O thread never waits for a memcpy.
        let shared_msg = Queued::share(msg);
        let mut st = self.shared.lock();
        if self.policy == Overflow::Block {
            st = self.wait_for_room(st, msg, mode)?;
        }
        let mut queued = false;
        for o in st.outboxes.iter_mut() {
            if o.handed_over {
                continue;
            }
            if !o.topics.matches(msg) {
                continue;
            }
            if self.policy == Overflow::DropOldest {
                while !o.has_room(msg.len(), self.queue_max_bytes) {
                    if let Some(old) = o.queue.pop_front() {
                        o.queued_bytes -= old.len();
                        o.dropped += 1;
                    }
                    if !o.dropping {
                        o.dropping = true;
                        tracing::warn!(endpoint = %self.endpoint, peer_pid = o.pid, dropped = o.dropped,
                            "subscriber is slow: dropping its oldest messages");
                    }
                }
            }
            queued = true;
            o.queued_bytes += msg.len();
            o.queue.push_back(Queued::new(msg, &shared_msg));
        }
        let wake = queued && std::mem::take(&mut st.pump_sleeping);
        drop(st);
        if wake {
            self.shared.wake();
        }
        Ok(())
    }

    /// Waits (`Overflow::Block`) until every subscriber that wants `msg` has room for it.
    fn wait_for_room<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        msg: &[u8],
        mode: Mode,
    ) -> Result<MutexGuard<'a, State>> {
        // When the wait began, read only once there is one (a clock read costs about as
        // much as queuing a message).
        let mut started = None::<Instant>;
        loop {
            let Some(slow) = self.first_full(&st, msg) else {
                return Ok(st);
            };
            let pid = slow.pid;
            if matches!(mode, Mode::Try) {
                return Err(Error::WouldBlock);
            }
            let started = *started.get_or_insert_with(Instant::now);
            st.sender_waits = true;
            st = match mode {
                Mode::Try | Mode::Block => {
                    self.shared.room.wait(st).unwrap_or_else(|p| p.into_inner())
                }
                Mode::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::SlowSubscriber {
                            endpoint: self.endpoint.clone(),
                            pid,
                            waited: started.elapsed(),
                        });
                    }
                    self.shared
                        .room
                        .wait_timeout(st, left)
                        .map_or_else(|p| p.into_inner().0, |(g, _)| g)
                }
            };
        }
    }
}

impl Drop for NetPublisher {
    fn drop(&mut self) {
        // Stop accepting first (the listener closes: newcomers are refused, not accepted
        // and dropped), then let the I/O thread deliver what is queued (for at most
        // PUB_CLOSE_LINGER) and close every connection.
        self.shared.stop_accepting.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        self.shared.lock().stop = true;
        self.shared.wake();
        if let Some(t) = self.pump.take() {
            let _ = t.join();
        }
    }
}

/// The accept thread: handshakes with subscribers and hands them to the I/O thread.
fn accept_loop(listener: &NetListener, shared: &Shared) {
    let endpoint = listener.endpoint();
    while !shared.stop_accepting.load(Ordering::Relaxed) {
        match listener.accept_as(Some(ACCEPT_POLL), SocketType::Pub) {
            Ok(conn) => {
                tracing::debug!(
                    endpoint,
                    peer_pid = conn.peer_pid(),
                    role = "publisher",
                    "accepted"
                );
                shared.lock().incoming.push(conn);
                shared.wake();
            }
            Err(Error::TimedOut) => {}
            Err(e @ (Error::Handshake { .. } | Error::PermissionDenied { .. })) => {
                tracing::warn!(endpoint, error = %e, "subscriber refused");
            }
            Err(e) => {
                tracing::debug!(endpoint, error = %e, "accept failed");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}
