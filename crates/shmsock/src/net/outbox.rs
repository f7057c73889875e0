//! The state a publisher shares with its I/O thread ([`super::pump`]): one [`Outbox`] (a
//! bounded queue of messages) per subscriber, the subscribers accepted but not yet taken
//! in, and the wake-ups between the two threads.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::stream::NetConn;
use super::topics::Topics;
use crate::handover::Token;
use crate::sync::{AtomicBool, AtomicUsize, Ordering};

/// How long dropping a publisher keeps delivering what it queued before it closes the
/// subscribers' connections (ZeroMQ's `ZMQ_LINGER`); a stalled subscriber delays the drop
/// by at most this much.
pub const PUB_CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Messages up to this long are queued inline (copied into the queue's slot), longer ones
/// as one `Arc` shared by every subscriber's queue: no allocation per small message.
pub(super) const INLINE_MAX_BYTES: usize = 94;

/// A message in a subscriber's queue.
#[derive(Clone)]
pub(super) enum Queued {
    /// A short message, in place.
    Inline {
        len: u8,
        bytes: [u8; INLINE_MAX_BYTES],
    },
    /// A longer one, shared by the queues that take it.
    Shared(Arc<[u8]>),
    /// Not a message: the HANDOVER command (the subscriber reads our ring from this
    /// sequence number on); the last item its queue ever gets.
    Handover(u64),
}

impl Queued {
    /// `msg` as queued: inline if short, else `shared` (made once per `send`, by the caller).
    pub(super) fn new(msg: &[u8], shared: &Option<Arc<[u8]>>) -> Queued {
        match shared {
            Some(arc) => Queued::Shared(arc.clone()),
            None => {
                let mut bytes = [0u8; INLINE_MAX_BYTES];
                bytes[..msg.len()].copy_from_slice(msg);
                Queued::Inline {
                    len: msg.len() as u8,
                    bytes,
                }
            }
        }
    }

    /// The shared copy `send` makes of `msg`, if it is too long to queue inline.
    pub(super) fn share(msg: &[u8]) -> Option<Arc<[u8]>> {
        (msg.len() > INLINE_MAX_BYTES).then(|| Arc::from(msg))
    }
}

impl std::ops::Deref for Queued {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Queued::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Queued::Shared(arc) => arc,
            Queued::Handover(_) => &[],
        }
    }
}

/// One subscriber's side of the publisher, shared by `send` and the I/O thread.
pub(super) struct Outbox {
    /// Its process id (`unix://`), 0 for `tcp://`.
    pub(super) pid: i32,
    /// What it subscribed to (a set, as libzmq's PUB keeps it).
    pub(super) topics: Topics,
    /// It has sent at least one subscription: from then on it counts as a subscriber.
    pub(super) subscribed: bool,
    /// Messages waiting for the I/O thread, oldest first.
    pub(super) queue: VecDeque<Queued>,
    pub(super) queued_bytes: usize,
    /// Messages dropped for it (`DropOldest`) in all.
    pub(super) dropped: u64,
    /// It is dropping now (one warning per episode; cleared when its queue drains).
    pub(super) dropping: bool,
    /// The token of the offer of our ring made to it, if any.
    pub(super) token: Option<Token>,
    /// It moved to our ring: HANDOVER is queued, it gets nothing more here (and is not
    /// counted here).
    pub(super) handed_over: bool,
}

impl Outbox {
    pub(super) fn new(pid: i32, token: Option<Token>) -> Outbox {
        Outbox {
            pid,
            token,
            handed_over: false,
            topics: Topics::default(),
            subscribed: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            dropped: 0,
            dropping: false,
        }
    }

    pub(super) fn has_room(&self, len: usize, max_bytes: usize) -> bool {
        self.queue.is_empty() || self.queued_bytes + len <= max_bytes
    }

    /// Takes messages from the front, at least one and up to about `bytes`, into `out`.
    pub(super) fn take(&mut self, bytes: usize, out: &mut VecDeque<Queued>) {
        let mut taken = 0;
        while let Some(m) = self.queue.front() {
            if taken > 0 && taken + m.len() > bytes {
                break;
            }
            taken += m.len();
            self.queued_bytes -= m.len();
            out.extend(self.queue.pop_front());
        }
        if self.queue.is_empty() {
            self.dropping = false;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// What the publisher, the accept thread and the I/O thread share, under one lock.
pub(super) struct State {
    /// One per connection of the I/O thread, index for index.
    pub(super) outboxes: Vec<Outbox>,
    /// Subscribers accepted and not yet taken in by the I/O thread.
    pub(super) incoming: Vec<NetConn>,
    /// The publisher is being dropped: deliver what is queued, then close.
    pub(super) stop: bool,
    /// A `Block` send waits on [`Shared::room`].
    pub(super) sender_waits: bool,
    /// The I/O thread found nothing to write and sleeps in `poll`: a `send` that queues a
    /// message wakes it (through the eventfd) and clears this. While it is clear, sends
    /// queue without a system call.
    pub(super) pump_sleeping: bool,
    /// Subscribers that joined our shared-memory ring before their connection was taken in
    /// here (their side of the handshake ends first): the token, and the sequence number to
    /// hand over at (as if it joined then), handed over as they are taken in.
    pub(super) due: Vec<(Token, u64)>,
}

pub(super) struct Shared {
    pub(super) endpoint: String,
    pub(super) state: Mutex<State>,
    /// Notified when a queue shrinks or a subscriber leaves while `sender_waits`.
    pub(super) room: Condvar,
    /// An eventfd that wakes the I/O thread from `poll`.
    pub(super) wake: OwnedFd,
    pub(super) stop_accepting: AtomicBool,
    /// How many outboxes still take messages (not handed over to our ring): while none
    /// does, `send` has nothing to do and takes no lock. Written under the lock
    /// ([`Shared::recount`]).
    pub(super) reachable: AtomicUsize,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the queues consistent (every update is one step).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Updates [`Shared::reachable`] after outboxes came, went or were handed over.
    pub(super) fn recount(&self, st: &State) {
        let n = st.outboxes.iter().filter(|o| !o.handed_over).count();
        // Relaxed: read by the thread that sends, which also takes the lock to see a
        // subscriber it counted (`subscriber_count`); a newcomer seen one message late
        // joined one message later.
        self.reachable.store(n, Ordering::Relaxed);
    }

    pub(super) fn wake(&self) {
        // Fails only when the counter would overflow, i.e. the thread is already woken.
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    pub(super) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    pub(super) fn clear_wake(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.wake, &mut buf);
    }

    /// Lets a waiting `Block` send look again.
    pub(super) fn notify_room(&self, st: &mut State) {
        if st.sender_waits {
            st.sender_waits = false;
            self.room.notify_all();
        }
    }
}
