//! The publisher's I/O thread: one `poll(2)` loop over every subscriber's socket.
//!
//! Each turn it takes in newly accepted subscribers, reads what subscribers sent
//! (SUBSCRIBE/CANCEL commands, ZMTP 3.0 subscription messages, PINGs), writes queued
//! messages until a socket's buffer is full, drops the connections that ended, and sleeps
//! in `poll` until a socket is ready or the publisher wakes it (eventfd). Every read and
//! write is non-blocking ([`Mode::Try`]), so a subscriber that stopped reading costs the
//! others nothing: its frame stays half-written in its connection's pending bytes.
//!
//! Connections live here, in `peers`; their queues and topics live in the shared
//! [`State::outboxes`](super::outbox::State), index for index.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::outbox::{Outbox, Queued, Shared, PUB_CLOSE_LINGER};
use super::stream::{NetConn, DIRECT_MIN_BYTES, WRITE_BATCH_BYTES};
use super::zmtp::Subscription;
use crate::error::{Error, Result};
use crate::sys::timespec;
use crate::vocabulary::Mode;

/// Bytes of queued messages taken from an outbox at a time (at least one message).
const TAKE_BATCH_BYTES: usize = 64 * 1024;
/// Messages read from one subscriber per turn, so a flooding peer cannot starve the others.
const READS_PER_TURN: usize = 256;
/// Most distinct prefixes one subscriber may hold; more is treated as an attack and ends
/// its connection.
pub(super) const TOPICS_MAX_PER_SUBSCRIBER: usize = 10_000;
/// Most bytes of prefixes one subscriber may hold, in all; more ends its connection.
pub(super) const TOPIC_BYTES_MAX_PER_SUBSCRIBER: usize = 1 << 20;

/// A subscriber's connection and the messages taken from its outbox, not yet written.
struct Peer {
    conn: NetConn,
    batch: VecDeque<Queued>,
    /// Read it this turn: `poll` said so, it is new (its first subscriptions may already be
    /// buffered), or it had more than [`READS_PER_TURN`] messages last turn.
    readable: bool,
}

impl Peer {
    fn has_output(&self) -> bool {
        !self.batch.is_empty() || self.conn.has_pending_tx()
    }
}

/// Runs the I/O thread until the publisher is dropped and what it queued is delivered (or
/// [`PUB_CLOSE_LINGER`] passed).
pub(super) fn run(shared: &Shared) {
    let mut peers: Vec<Peer> = Vec::new();
    let mut linger_until = None::<Instant>;
    let mut revents: Vec<PollFlags> = Vec::new();
    loop {
        let stopping = take_in(shared, &mut peers);
        for (i, peer) in peers.iter_mut().enumerate() {
            if peer.readable {
                peer.readable = false;
                if let Err(e) = read(shared, i, peer) {
                    end(shared, peer, &e);
                    continue;
                }
            }
            if let Err(e) = write(shared, i, peer) {
                end(shared, peer, &e);
                continue;
            }
            if peer
                .conn
                .heartbeat_due()
                .is_some_and(|t| t <= Instant::now())
            {
                if let Err(e) = peer.conn.heartbeat() {
                    end(shared, peer, &e);
                }
            }
        }
        remove_ended(shared, &mut peers);
        let timeout = if stopping {
            let until = *linger_until.get_or_insert_with(|| Instant::now() + PUB_CLOSE_LINGER);
            let st = shared.lock();
            let idle = st.outboxes.iter().all(Outbox::is_empty);
            drop(st);
            if (idle && !peers.iter().any(Peer::has_output)) || Instant::now() >= until {
                break;
            }
            Some(until.saturating_duration_since(Instant::now()))
        } else if peers.iter().any(|p| p.readable) || !may_sleep(shared, &peers) {
            Some(Duration::ZERO)
        } else {
            // Asleep until a socket or the publisher wakes us, or a heartbeat is due.
            peers
                .iter()
                .filter_map(|p| p.conn.heartbeat_due())
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()))
        };
        let asleep = timeout.is_none_or(|t| !t.is_zero());
        let woken = wait(shared, &peers, timeout, &mut revents);
        if asleep {
            shared.lock().pump_sleeping = false;
        }
        if !woken {
            continue;
        }
        for (peer, r) in peers.iter_mut().zip(&revents) {
            peer.readable |= r.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
        }
    }
    let left = linger_until.map_or(Duration::ZERO, |t| {
        t.saturating_duration_since(Instant::now())
    });
    for mut peer in peers {
        peer.conn.close_within(left);
    }
    // Connections accepted after the last turn never subscribed: they only see the close.
    let incoming = std::mem::take(&mut shared.lock().incoming);
    drop(incoming);
}

/// Whether the I/O thread has nothing to write (every subscriber's outbox is empty or its
/// socket is full); if so, it is marked as sleeping, so the next `send` wakes it. Checked
/// and marked under the lock `send` queues under, so no message is left unseen.
fn may_sleep(shared: &Shared, peers: &[Peer]) -> bool {
    let mut st = shared.lock();
    let busy = peers
        .iter()
        .zip(&st.outboxes)
        .any(|(p, o)| !p.conn.has_pending_tx() && (!o.is_empty() || !p.batch.is_empty()));
    st.pump_sleeping = !busy;
    !busy
}

/// Takes in newly accepted subscribers; returns whether the publisher is stopping.
fn take_in(shared: &Shared, peers: &mut Vec<Peer>) -> bool {
    let mut st = shared.lock();
    let st = &mut *st;
    for conn in st.incoming.drain(..) {
        let token = conn.offered_token();
        let mut outbox = Outbox::new(conn.peer_pid(), token);
        if let Some(i) = token.and_then(|t| st.due.iter().position(|&(d, _)| d == t)) {
            // Its subscriber already joined our ring: nothing came here, so it reads the
            // ring from where it counts as joined.
            let (_, seq) = st.due.swap_remove(i);
            outbox.handed_over = true;
            outbox.queue.push_back(Queued::Handover(seq));
        }
        st.outboxes.push(outbox);
        peers.push(Peer {
            conn,
            batch: VecDeque::new(),
            readable: true,
        });
    }
    shared.recount(st);
    st.stop
}

/// Polls the wake eventfd and every connection (for writing too if it has output), for at
/// most `timeout`. Fills `revents` (one per peer); false if nothing is ready.
fn wait(
    shared: &Shared,
    peers: &[Peer],
    timeout: Option<Duration>,
    revents: &mut Vec<PollFlags>,
) -> bool {
    let mut fds = Vec::with_capacity(peers.len() + 1);
    fds.push(PollFd::from_borrowed_fd(shared.wake_fd(), PollFlags::IN));
    for p in peers {
        let mut flags = PollFlags::IN;
        if p.has_output() {
            flags |= PollFlags::OUT;
        }
        fds.push(PollFd::from_borrowed_fd(p.conn.fd(), flags));
    }
    let ts = timeout.map(timespec);
    match rustix::event::poll(&mut fds, ts.as_ref()) {
        Ok(0) | Err(Errno::INTR) => false,
        Ok(_) => {
            if !fds[0].revents().is_empty() {
                shared.clear_wake();
            }
            revents.clear();
            revents.extend(fds[1..].iter().map(|f| f.revents()));
            true
        }
        Err(e) => {
            // Not expected (EINVAL, ENOMEM): do not spin; the next turn tries again.
            tracing::warn!(endpoint = %shared.endpoint, error = %e, "poll failed");
            std::thread::sleep(Duration::from_millis(10));
            false
        }
    }
}

/// Reads what subscriber `i` sent and applies its subscription changes.
fn read(shared: &Shared, i: usize, peer: &mut Peer) -> Result<()> {
    let mut changes = Vec::new();
    let mut result = Ok(());
    for n in 0..=READS_PER_TURN {
        if n == READS_PER_TURN {
            peer.readable = true; // more next turn
            break;
        }
        match peer.conn.recv_vec(Mode::Try) {
            Ok(msg) => {
                changes.extend(peer.conn.take_subscriptions());
                changes.extend(Subscription::from_message(&msg));
            }
            Err(Error::WouldBlock) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    changes.extend(peer.conn.take_subscriptions());
    if !changes.is_empty() {
        let mut st = shared.lock();
        let o = &mut st.outboxes[i];
        for change in changes {
            match change {
                Subscription::Subscribe(p) => {
                    if o.topics.insert(&p)
                        && (o.topics.len() > TOPICS_MAX_PER_SUBSCRIBER
                            || o.topics.bytes() > TOPIC_BYTES_MAX_PER_SUBSCRIBER)
                    {
                        return Err(Error::Protocol {
                            endpoint: shared.endpoint.clone(),
                            what: format!(
                                "the subscriber holds more than {TOPICS_MAX_PER_SUBSCRIBER} \
                                 prefixes or {TOPIC_BYTES_MAX_PER_SUBSCRIBER} bytes of them"
                            ),
                        });
                    }
                    o.subscribed = true;
                }
                Subscription::Cancel(p) => {
                    o.topics.remove(&p);
                }
            }
        }
        // A cancelled prefix may be what a waiting `Block` send waited for.
        shared.notify_room(&mut st);
    }
    result
}

/// Writes subscriber `i`'s queued messages until its socket buffer is full or nothing is
/// left: they are encoded into the connection's send queue, [`WRITE_BATCH_BYTES`] at a
/// time, and each batch leaves in one `send` (a large message goes straight from its
/// buffer when nothing else is queued).
fn write(shared: &Shared, i: usize, peer: &mut Peer) -> Result<()> {
    loop {
        if peer.conn.has_pending_tx() {
            peer.conn.flush_pending()?;
            if peer.conn.has_pending_tx() {
                return Ok(());
            }
        }
        if peer.batch.is_empty() {
            let mut st = shared.lock();
            st.outboxes[i].take(TAKE_BATCH_BYTES, &mut peer.batch);
            if peer.batch.is_empty() {
                return Ok(());
            }
            shared.notify_room(&mut st);
        }
        while let Some(msg) = peer.batch.front() {
            if let Queued::Handover(seq) = *msg {
                peer.conn.queue_handover(seq);
                peer.batch.pop_front();
                continue;
            }
            if msg.len() >= DIRECT_MIN_BYTES && !peer.conn.has_pending_tx() {
                peer.conn.send(msg, Mode::Try)?;
                peer.batch.pop_front();
                break;
            }
            if peer.conn.queued_tx() >= WRITE_BATCH_BYTES {
                break;
            }
            peer.conn.queue_message(msg);
            peer.batch.pop_front();
        }
        peer.conn.flush_pending()?;
    }
}

/// Reports why a subscriber's connection ended and closes it without lingering.
fn end(shared: &Shared, peer: &mut Peer, e: &Error) {
    let (endpoint, pid) = (&shared.endpoint, peer.conn.peer_pid());
    match e {
        Error::PeerClosed { .. } => {
            tracing::info!(%endpoint, peer_pid = pid, end = "closed", "subscriber ended")
        }
        Error::PeerGone { .. } => {
            tracing::info!(%endpoint, peer_pid = pid, end = "gone", "subscriber ended")
        }
        e => tracing::warn!(%endpoint, peer_pid = pid, error = %e, "subscriber connection closed"),
    }
    peer.conn.close_within(Duration::ZERO);
}

/// Drops the connections that ended, with their outboxes; wakes a waiting `send`.
fn remove_ended(shared: &Shared, peers: &mut Vec<Peer>) {
    if !peers.iter().any(|p| p.conn.is_ended()) {
        return;
    }
    let mut st = shared.lock();
    for i in (0..peers.len()).rev() {
        if peers[i].conn.is_ended() {
            peers.remove(i);
            st.outboxes.remove(i);
        }
    }
    shared.recount(&st);
    shared.notify_room(&mut st);
}
