//! `shm://` publisher: one broadcast ring in our segment, mapped read-only by every
//! subscriber; each subscriber publishes its read position in its own segment. A background
//! thread accepts subscribers (the send path never makes a syscall for that); the publisher
//! merges them at its next send.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::acceptor::{Acceptor, Admit};
use super::broadcast::{self, Writer};
use super::config::ShmConfig;
use super::control::{self, Control};
use super::doorbell::Ringer;
use super::hello::{RefuseReason, Role, Start};
use super::identity::Claim;
use super::label::SegmentRole;
use super::loan::{check_loan_len, holding, Holding, Lender, Lent, LoanRef, LOAN_RECLAIM_NAP};
use super::pair::create_pool;
use super::rendezvous::{greet, BoundName, Extras, Greeting, SharedOffer, Validated};
use super::ring::{max_payload, KIND_DATA, KIND_LOAN};
use super::segment::word;
use super::segment::{Counter, OwnedSegment, PeerSegment, PoolShape};
use super::wait::{self, Outcome, SharedFutex, Turn};
use crate::error::{Error, Result};
use crate::handover::{TakeOver, Token};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::vocabulary::{Mode, Overflow, PeerPolicy, WaitStrategy};

/// Sends between two looks at the subscribers' control sockets. A publisher that never
/// waits (`DropOldest`, or `Block` with fast subscribers) finds dead subscribers, and
/// releases their sockets and mappings, only this way.
const SENDS_PER_PEER_CHECK: u32 = 1024;

/// A subscriber as the publisher sees it.
struct Sub {
    pid: i32,
    sock: UnixStream,
    seg: PeerSegment,
    /// Its doorbell, if it is an async subscriber: ring it instead of our futex word.
    bell: Option<Ringer>,
    /// Where it starts reading: our write position when we acknowledged it. Until it
    /// publishes a consumed position past this, this is where it is.
    start: u64,
    /// Set when it died or published an impossible position: removed at the next chance.
    dropped: bool,
    /// Its segment's place in this process's registry.
    _claim: Option<Claim>,
    /// The token it presented to take over a network connection, if any.
    token: Option<Token>,
    /// It took over a network connection that is not handed over yet: it reads that
    /// connection until the handover, so it does not hold the writer back (what it misses
    /// meanwhile comes over the connection; see [`ShmPublisher::handed_over`]).
    awaiting_handover: bool,
}

impl Sub {
    /// Where it has read up to: its published consumed position (read once), or its start
    /// if that is further. A position beyond what we wrote is impossible: it is dropped.
    fn consumed(&mut self, write_pos: u64) -> Option<u64> {
        let c = self.seg.load64(word::CONSUMED);
        if self.dropped || c > write_pos {
            self.dropped = true;
            return None;
        }
        Some(c.max(self.start))
    }
}

/// No subscriber is joining (see [`ShmPublisher::join_floor`]).
const NO_FLOOR: u64 = u64::MAX;

pub(crate) struct ShmPublisher {
    endpoint: String,
    socket_path: PathBuf,
    seg: OwnedSegment,
    writer: Writer,
    policy: Overflow,
    subs: Vec<Sub>,
    acceptor: Acceptor<Sub>,
    /// While the accept thread acknowledges a subscriber: the write position it read just
    /// before, where the subscriber starts (the acknowledgement carries it). A `Block` publisher evicts nothing at or above it until the
    /// subscriber is merged, so it is never lapped before the publisher knows it. Held for
    /// a constant-time step (acknowledge, queue), never while a peer is slow to send its
    /// hello: a joining subscriber never stalls the stream. [`NO_FLOOR`] otherwise.
    join_floor: Arc<AtomicU64>,
    wait: WaitStrategy,
    spin_budget: Duration,
    max_len: usize,
    sends_since_peer_check: u32,
    /// Our loan pool, if [`ShmConfig::loan_pool`] asked for one.
    pub(crate) lender: Option<Lender>,
    /// Tokens of subscribers merged since the last [`ShmPublisher::take_handovers`]: each
    /// took over a network connection, which the API must now hand over.
    handovers: Vec<Token>,
    /// A ring only for taking over network connections: while nobody reads it, nothing is
    /// written (no subscriber can miss what it could not have joined for).
    write_only_when_read: bool,
}

/// The lowest consumed position among live subscribers and the index of that subscriber
/// (each position read once, see [`Sub::consumed`]).
fn slowest_sub(subs: &mut [Sub], write_pos: u64) -> Option<(u64, usize)> {
    let mut min = None::<(u64, usize)>;
    for (i, sub) in subs.iter_mut().enumerate() {
        if sub.awaiting_handover {
            continue;
        }
        let Some(c) = sub.consumed(write_pos) else {
            continue;
        };
        if min.is_none_or(|(m, _)| c < m) {
            min = Some((c, i));
        }
    }
    min
}

impl ShmPublisher {
    pub(crate) fn bind(endpoint: String, name: &str, opts: &ShmConfig) -> Result<Self> {
        let bound = BoundName::bind(&endpoint, name, SegmentRole::Publisher)?;
        let seg =
            OwnedSegment::create_for(opts.ring_capacity, SegmentRole::Publisher, &endpoint)
                .map_err(|e| Error::io(format!("{endpoint}: creating the publisher segment"), e))?;
        let offer = SharedOffer {
            fd: seg
                .fd()
                .try_clone_to_owned()
                .map_err(|e| Error::io(format!("{endpoint}: dup"), e))?,
            capacity: seg.capacity(),
        };
        let join_floor = Arc::new(AtomicU64::new(NO_FLOOR));
        // The accept thread's own read-only view of our cursor (for `join_floor`).
        let own = seg
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io(format!("{endpoint}: dup"), e))
            .and_then(|fd| {
                PeerSegment::open(fd, seg.capacity()).map_err(|r| Error::Handshake {
                    endpoint: endpoint.clone(),
                    reason: format!("mapping our own segment: {r}"),
                })
            })?;
        let socket_path = bound.socket_path().to_owned();
        let pool = create_pool(&endpoint, opts)?;
        // The accept thread's handle on the pool, to pass to every subscriber.
        let pool_offer = match &pool {
            Some(p) => Some(PoolOffer {
                fd: p
                    .shape()
                    .fd
                    .try_clone_to_owned()
                    .map_err(|e| Error::io(format!("{endpoint}: dup"), e))?,
                slots: p.slots(),
                slot_bytes: p.slot_bytes(),
            }),
            None => None,
        };
        let admit = Joining {
            offer,
            pool: pool_offer,
            own,
            peers: opts.peers.clone(),
            floor: join_floor.clone(),
            take_over: opts.take_over.clone(),
        };
        let acceptor = Acceptor::spawn(bound, admit, opts.handshake_timeout)?;
        Ok(ShmPublisher {
            writer: Writer::new(seg.capacity()),
            max_len: max_payload(seg.capacity()) as usize,
            endpoint,
            socket_path,
            seg,
            policy: opts.overflow,
            subs: Vec::new(),
            acceptor,
            join_floor,
            wait: opts.wait,
            spin_budget: opts.spin_budget,
            sends_since_peer_check: 0,
            lender: pool.map(Lender::new),
            handovers: Vec::new(),
            write_only_when_read: opts.take_over.as_ref().is_some_and(|t| t.tokens_only),
        })
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

    /// The sequence number the next message written gets.
    pub(crate) fn next_seq(&self) -> u64 {
        // Relaxed: we are the only writer of our cursor.
        self.seg.cursor().write_seq.load(Ordering::Relaxed)
    }

    /// Whether nobody reads the ring or is joining it (then a message written now would be
    /// read by nobody: a subscriber being acknowledged starts at the write position it read,
    /// which stays where it is while we write nothing).
    pub(crate) fn is_unread(&self) -> bool {
        // Acquire: pairs with the Release in `Joining::finish`.
        self.subs.is_empty()
            && self.join_floor.load(Ordering::Acquire) == NO_FLOOR
            && !self.acceptor.is_pending()
    }

    /// The tokens of the subscribers that took over a network connection since the last
    /// call (each joined the ring: its connection must now be handed over, then
    /// [`ShmPublisher::handed_over`] called).
    pub(crate) fn take_handovers(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.handovers)
    }

    /// The connection of the subscriber that presented `token` was handed over, naming the
    /// next message written (or a later one): from now on the subscriber holds the writer
    /// back like any other. Until then it did not, so a subscriber that reads its
    /// connection slowly never blocks the ring it has not started reading (and the writer
    /// never waits for a handover that only the writer can make). What the ring
    /// overwrote of it meanwhile was older than the handover: it came over the connection.
    pub(crate) fn handed_over(&mut self, token: Token) {
        for sub in self.subs.iter_mut().filter(|s| s.token == Some(token)) {
            sub.awaiting_handover = false;
        }
        // It holds the writer back from now on, possibly from behind the cached bound.
        self.writer.forget_min_consumed();
    }

    /// Takes in newly accepted subscribers and drops dead ones.
    fn refresh_subscribers(&mut self, check_sockets: bool) {
        // A plain load first: this runs on every Block send, and a swap is a locked RMW.
        let before = self.subs.len();
        self.acceptor.take_into(&mut self.subs);
        if self.subs.len() > before {
            self.handovers
                .extend(self.subs[before..].iter().filter_map(|s| s.token));
            self.writer.forget_min_consumed();
        }
        if check_sockets {
            for sub in &mut self.subs {
                if !matches!(control::check(&sub.sock), Ok(Control::Alive)) {
                    sub.dropped = true;
                }
            }
        }
        if self.subs.iter().any(|s| s.dropped) {
            self.subs.retain(|s| !s.dropped);
        }
    }

    /// Live subscribers (checks their sockets).
    pub(crate) fn subscriber_count(&mut self) -> usize {
        self.refresh_subscribers(true);
        self.subs.len()
    }

    fn try_push(&mut self, msg: &[u8], kind: u32) -> bool {
        let floor = if self.policy == Overflow::Block {
            // Acquire: pairs with the Release stores in `Joining::finish`. A cleared floor means
            // its subscriber is queued: merge it now, so one of the two protects it.
            let floor = self.join_floor.load(Ordering::Acquire);
            self.refresh_subscribers(false);
            if floor != NO_FLOOR {
                // A joining subscriber's floor may lie below the cached bound.
                self.writer.forget_min_consumed();
            }
            floor
        } else {
            NO_FLOOR
        };
        let cursor = self.seg.cursor();
        let write_pos = cursor.write_pos.load(Ordering::Relaxed);
        let subs = &mut self.subs;
        let pushed = self.writer.try_push_kind(
            &self.seg,
            &cursor,
            self.policy,
            || match (slowest_sub(subs, write_pos).map(|(c, _)| c), floor) {
                (min, NO_FLOOR) => min,
                (min, floor) => Some(min.map_or(floor, |m| m.min(floor))),
            },
            msg,
            kind,
        );
        if pushed == broadcast::Push::Done {
            self.seg.count(Counter::Sent, msg.len());
            wait::notify_each(
                self.subs
                    .iter()
                    .map(|s| (s.seg.word32(word::RX_SLEEPING), s.bell.as_ref())),
                Ringer::ring,
                self.seg.word32(word::DATA_SEQ),
                self.seg.light_notify(),
                &SharedFutex,
            );
            return true;
        }
        false
    }

    /// The subscriber holding us back (lowest consumed position).
    fn slowest(&mut self) -> Option<usize> {
        let write_pos = self.seg.cursor().write_pos.load(Ordering::Relaxed);
        slowest_sub(&mut self.subs, write_pos).map(|(_, i)| i)
    }

    pub(crate) fn send(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        if msg.len() > self.max_len {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max_len,
            });
        }
        self.send_frame(msg, mode, KIND_DATA)
    }

    fn send_frame(&mut self, msg: &[u8], mode: Mode, kind: u32) -> Result<()> {
        self.sends_since_peer_check += 1;
        let check = self.sends_since_peer_check >= SENDS_PER_PEER_CHECK;
        if check {
            self.sends_since_peer_check = 0;
        }
        // A `Block` attempt takes new subscribers in itself (after reading the join floor).
        if check || self.policy != Overflow::Block || self.write_only_when_read {
            self.refresh_subscribers(check);
        }
        if self.write_only_when_read && self.is_unread() {
            return Ok(());
        }
        // Most sends find room at once: only one that does not sets up the wait.
        if self.try_push(msg, kind) {
            return Ok(());
        }
        self.send_waiting(msg, mode, kind)
    }

    /// [`ShmPublisher::send_frame`] once a first attempt found no room: the wait for the
    /// slowest subscriber.
    #[inline(never)]
    fn send_waiting(&mut self, msg: &[u8], mode: Mode, kind: u32) -> Result<()> {
        // When the wait began, read only once there is one: on a VM a clock read costs
        // about as much as the message.
        let mut started = None::<Instant>;
        let (strategy, spin_budget) = (self.wait, self.spin_budget);
        let sent = wait::drive(strategy, spin_budget, mode.deadline(), |turn| {
            match turn {
                Turn::Attempt => {
                    if self.try_push(msg, kind) {
                        return Ok(Outcome::Done(()));
                    }
                    started.get_or_insert_with(Instant::now);
                    if mode == Mode::Try {
                        self.refresh_subscribers(true);
                        if self.try_push(msg, kind) {
                            return Ok(Outcome::Done(()));
                        }
                        return Err(Error::WouldBlock);
                    }
                }
                // Subscriber death never blocks us: a dead one is dropped here.
                Turn::CheckPeer => self.refresh_subscribers(true),
                Turn::Sleep(t) => {
                    let Some(i) = self.slowest() else {
                        return Ok(Outcome::Pending);
                    };
                    let (flag, seq) = (
                        self.seg.word32(word::TX_SLEEPING),
                        self.subs[i].seg.word32(word::SPACE_SEQ),
                    );
                    let key = wait::prepare_wait(flag, seq, self.subs[i].seg.light_notify());
                    if self.try_push(msg, kind) {
                        wait::cancel_wait(self.seg.word32(word::TX_SLEEPING));
                        return Ok(Outcome::Done(()));
                    }
                    let (flag, seq) = (
                        self.seg.word32(word::TX_SLEEPING),
                        self.subs[i].seg.word32(word::SPACE_SEQ),
                    );
                    wait::sleep(flag, seq, key, t, &SharedFutex);
                }
            }
            Ok(Outcome::Pending)
        });
        match sent {
            Err(Error::TimedOut) => {
                let pid = self.slowest().map_or(0, |i| self.subs[i].pid);
                Err(Error::SlowSubscriber {
                    endpoint: self.endpoint.clone(),
                    pid,
                    waited: started.map_or(Duration::ZERO, |t| t.elapsed()),
                })
            }
            other => other,
        }
    }
    /// Takes a free slot of our pool for `len` bytes, waiting as `mode` allows for the
    /// subscribers to release one (under `DropOldest`, evicting loan frames nobody holds).
    pub(crate) fn loan(&mut self, len: usize, mode: Mode) -> Result<LoanRef> {
        check_loan_len(self.lender.as_ref(), len, &self.endpoint)?;
        let (strategy, spin_budget) = (self.wait, self.spin_budget);
        wait::drive(strategy, spin_budget, mode.deadline(), |turn| {
            match turn {
                Turn::Attempt => {
                    if let Some(loan) = self.try_take_loan(len) {
                        return Ok(Outcome::Done(loan));
                    }
                    if self.policy == Overflow::DropOldest && self.evict_for_loan() {
                        return Ok(Outcome::Again);
                    }
                    if mode == Mode::Try {
                        self.refresh_subscribers(true);
                        return self
                            .try_take_loan(len)
                            .map(Outcome::Done)
                            .ok_or(Error::WouldBlock);
                    }
                }
                // A dead subscriber's slots come back here.
                Turn::CheckPeer => self.refresh_subscribers(true),
                Turn::Sleep(t) => std::thread::sleep(t.min(LOAN_RECLAIM_NAP)),
            }
            Ok(Outcome::Pending)
        })
    }

    /// A free slot, after taking back what the subscribers are done with, if any.
    fn try_take_loan(&mut self, len: usize) -> Option<LoanRef> {
        if !self.lender.as_ref()?.has_free() {
            self.reclaim_loans(false);
        }
        self.lender.as_mut()?.take_free(len)
    }

    /// Takes back the slots every subscriber is done with (after taking in the subscribers
    /// queued, and, if `check_sockets`, dropping dead ones).
    fn reclaim_loans(&mut self, check_sockets: bool) {
        // Acquire: pairs with the Release stores in `Joining::finish` (see `try_push`).
        let floor = self.join_floor.load(Ordering::Acquire);
        self.refresh_subscribers(check_sockets);
        let Some(lender) = self.lender.as_mut() else {
            return;
        };
        // Pairs with the fence in `ReleaseBoard::claim`: our evictions (tag stores) before
        // the TAKEN loads in `loan_is_back`.
        fence(Ordering::SeqCst);
        let span = (
            self.writer.oldest_pos(),
            self.seg.cursor().write_pos.load(Ordering::Relaxed),
        );
        let subs = &mut self.subs;
        let _ = lender.reclaim_with(|lent| Ok(loan_is_back(subs, floor, span, lent)));
    }

    /// `DropOldest` with no free slot: evicts the oldest loan frame that no subscriber
    /// holds (and everything before it; subscribers that had not read it get `Lagged`).
    /// False if there is none.
    fn evict_for_loan(&mut self) -> bool {
        let Some(lender) = self.lender.as_ref() else {
            return false;
        };
        let oldest = self.writer.oldest_pos();
        let target = lender.lent_slots().into_iter().find(|lent| {
            lent.pos >= oldest
                && self
                    .subs
                    .iter()
                    .filter(|s| !s.dropped)
                    .all(|s| !matches!(holding(&s.seg, *lent), Ok(Holding::Holds)))
        });
        let Some(target) = target else {
            return false;
        };
        let cursor = self.seg.cursor();
        self.writer.evict_through(&self.seg, &cursor, target.pos);
        true
    }

    /// Publishes a filled loan as a loan frame. On error the slot is ours again.
    pub(crate) fn send_loan(&mut self, loan: &LoanRef, mode: Mode) -> Result<()> {
        match self.send_frame(&loan.encode(), mode, KIND_LOAN) {
            Ok(()) => {
                let pos = self.writer.last_frame_pos();
                self.lender.as_mut().expect("our pool").lent(loan, pos);
                Ok(())
            }
            // Out of time (a `Loan::send_timeout`): the loan is still the caller's.
            Err(e) if e.is_out_of_time() => Err(e),
            Err(e) => {
                if let Some(lender) = self.lender.as_mut() {
                    lender.abandon(loan);
                }
                Err(e)
            }
        }
    }

    /// Slots of our pool lent (not yet back) or being filled.
    pub(crate) fn loans_outstanding(&mut self) -> usize {
        self.reclaim_loans(true);
        self.lender.as_ref().map_or(0, Lender::outstanding_count)
    }
}

/// Whether every subscriber is done with the loan `lent`: it released it, or never claimed
/// it and can no longer read its frame (evicted: below `oldest`; or it read past it). A
/// subscriber still joining (`floor`) may read any frame at or above the floor. A
/// subscriber whose words name a generation never lent is dropped.
fn loan_is_back(subs: &mut [Sub], floor: u64, (oldest, write_pos): (u64, u64), lent: Lent) -> bool {
    if floor != NO_FLOOR && lent.pos >= floor {
        return false;
    }
    for sub in subs.iter_mut().filter(|s| !s.dropped) {
        // The consumed position first: a reader stores its claim before it moves its
        // consumed position past the frame (Release), so once we see it past (Acquire) the
        // TAKEN load below sees the claim. The other order would miss a claim made between
        // the two loads, and free a slot still held.
        let Some(consumed) = sub.consumed(write_pos) else {
            continue; // an impossible position: dropped
        };
        match holding(&sub.seg, lent) {
            Ok(Holding::Released) => {}
            Ok(Holding::Holds) => return false,
            Ok(Holding::NotTaken) if lent.pos >= oldest && consumed <= lent.pos => return false,
            Ok(Holding::NotTaken) => {}
            Err(_) => sub.dropped = true,
        }
    }
    true
}

/// The accept thread's handle on the publisher's loan pool.
struct PoolOffer {
    fd: std::os::fd::OwnedFd,
    slots: usize,
    slot_bytes: usize,
}

impl Drop for ShmPublisher {
    fn drop(&mut self) {
        self.acceptor.stop();
        // Subscribers accepted since our last send are still queued: they get the goodbye
        // too, or they would see a bare hang-up and report PeerGone.
        self.refresh_subscribers(false);
        for sub in &self.subs {
            control::say_bye(&sub.sock);
        }
    }
}

/// What the accept thread needs to take in subscribers.
struct Joining {
    offer: SharedOffer,
    pool: Option<PoolOffer>,
    /// Our own segment, read-only, for the join floor.
    own: PeerSegment,
    peers: PeerPolicy,
    floor: Arc<AtomicU64>,
    /// Set if the ring takes over network connections.
    take_over: Option<TakeOver>,
}

impl Admit for Joining {
    type Offer = SharedOffer;
    type Kept = ();
    type Peer = Sub;

    fn greet(
        &mut self,
        endpoint: &str,
        sock: UnixStream,
        deadline: Instant,
    ) -> Result<(Greeting<SharedOffer>, ())> {
        let offer = &self.offer;
        let greeting = greet(
            endpoint,
            sock,
            &self.peers,
            (Role::Publisher, Role::Subscriber),
            || {
                Ok(SharedOffer {
                    fd: offer.fd.as_fd().try_clone_to_owned()?,
                    capacity: offer.capacity,
                })
            },
            deadline,
        )?;
        Ok((greeting, ()))
    }

    /// Acknowledges a validated subscriber and queues it. The subscriber starts reading at
    /// our write position now, which the acknowledgement carries (so it gets every message
    /// published once the publisher counts it); the join floor protects what follows until
    /// the publisher merged the subscriber, a constant-time step, and its start after that.
    fn finish(
        &mut self,
        endpoint: &str,
        hello: Validated<SharedOffer>,
        (): (),
        deliver: &mut dyn FnMut(Sub),
    ) -> Result<()> {
        // A subscriber taking over a network connection must hold it (checked before it
        // is acknowledged); a token where none was offered is refused.
        let admitted = match &self.take_over {
            Some(t) => t.admit(hello.pid(), hello.token()),
            None if hello.token().is_some() => Err("this publisher made no offer".into()),
            None => Ok(()),
        };
        if let Err(why) = admitted {
            hello.refuse(RefuseReason::NotGranted);
            return Err(Error::Handshake {
                endpoint: endpoint.to_owned(),
                reason: format!("refused a subscriber taking over a connection: {why}"),
            });
        }
        let token = hello.token();
        // Our own cursor is consistent (a failure would be a bug: then no subscriber joins).
        let at = self
            .own
            .cursor()
            .snapshot(self.own.capacity_bytes())
            .map_err(|c| Error::Handshake {
                endpoint: endpoint.to_owned(),
                reason: format!("reading our own cursor: {}", c.0),
            })?;
        let start = Start {
            pos: at.write_pos,
            seq: at.write_seq,
        };
        let floor = start.pos;
        self.floor.store(floor, Ordering::SeqCst);
        let extras = Extras {
            bell: None,
            pool: self.pool.as_ref().map(|p| PoolShape {
                fd: p.fd.as_fd(),
                slots: p.slots,
                slot_bytes: p.slot_bytes,
            }),
            handover: None,
        };
        let done = hello.finish_at(endpoint, extras, start).map(|(peer, _)| {
            tracing::debug!(endpoint, peer_pid = peer.pid, "subscriber joined");
            deliver(Sub {
                pid: peer.pid,
                sock: peer.sock,
                seg: peer.segment,
                bell: peer.doorbell,
                start: floor,
                dropped: false,
                _claim: peer.claim,
                token,
                awaiting_handover: token.is_some(),
            });
        });
        // Release: the publisher that sees the floor cleared also sees the queued subscriber.
        self.floor.store(NO_FLOOR, Ordering::Release);
        done
    }
}
