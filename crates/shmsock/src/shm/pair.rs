//! One `shm://` connection: our segment (outbound ring), the peer's segment (inbound ring,
//! read-only), and the Unix socket that tells us when the peer is gone.

use std::time::Duration;

use super::config::ShmConfig;
use super::control::{Idle, Link};
use super::doorbell::{Doorbell, Ringer};
use super::hello::Role;
use super::identity::Claim;
use super::label::SegmentRole::Connector;
use super::loan::{check_loan_len, Borrower, Lender, LentSlot, LoanRef, LOAN_RECLAIM_NAP};
use super::rendezvous::{connect_side, Extras, Peer};
use super::ring::{
    Consumer, Corruption, Frame, Producer, Push, KIND_DATA, KIND_LOAN, LOAN_FRAME_BYTES,
};
use super::segment::word;
use super::segment::{OwnedPool, OwnedSegment, PeerSegment, ReleaseBoard};
use super::wait::{self, Asking, CopyPace, Outcome, SharedFutex, Turn};
use crate::error::{Error, Result};
use crate::sync::Ordering;
use crate::vocabulary::{Mode, WaitStrategy};

/// Spins of a receiver's wait on the next frame's tag word alone, before the full waiting
/// loop (whose turns also publish our position, look at the peer's end and step the
/// schedule). A turn of this one is a `pause` and one load, so it notices a frame sooner;
/// most waits of a receiver that keeps up end within it. About 3 µs here (a `pause` takes
/// 25 ns); the full loop then reads the clock every `SPINS_PER_CLOCK_READ` spins (deadlines,
/// the spin budget).
const FIRST_SPINS: u32 = 2 * wait::SPINS_PER_CLOCK_READ;

/// `pause`s between two looks of a receiver that caught up with a stream: one that found a
/// frame already waiting since its last wait. Such a receiver is in the producer's way: the
/// line it polls is the one the producer writes next, and each look takes that line back
/// mid-write; looking less often lets a few frames accumulate instead. About 100 ns on our
/// VMs, where a `pause` takes 25 ns. A receiver that never finds a frame waiting (a round
/// trip, on one connection or two; a stream slower than its receiver) looks at every
/// `pause`.
const CAUGHT_UP_PAUSES: u32 = 4;

pub(crate) struct ShmConn {
    link: Link,
    mine: OwnedSegment,
    peer: PeerSegment,
    tx: Producer,
    rx: Consumer,
    wait: WaitStrategy,
    spin_budget: Duration,
    /// Longest sleep: `FUTEX_SLEEP_MAX`, or 1 ms if the peer uses light barriers and the
    /// kernel refuses us the heavy one (a wake-up may then be missed; the cap bounds it).
    sleep_cap: Duration,
    /// We notify the peer with light barriers (a compiler fence; see `ShmConn::new`).
    notify_light: bool,
    /// Before sleeping we run the heavy barrier (the peer notifies with light ones).
    wait_heavy: bool,
    /// The peer writes the keys it sleeps on: we wake it only on a current one
    /// (`wait::notify_keyed`).
    peer_keyed: bool,
    /// The peer's `FENCE_ASK` says how to wake its data sleeps (see `FLAG_FENCE_ASK`): we
    /// notify with light barriers and the peer sleeps on its futex words.
    peer_asks: bool,
    /// The last odd `FENCE_ASK` of the peer's we stored in our `FENCE_ACK`.
    acked: u32,
    /// Our data sleeps' `FENCE_ASK`, if we said `FLAG_FENCE_ASK` and the peer notifies
    /// with light barriers.
    asking: Option<Asking>,
    sent: (u64, u64),
    received: (u64, u64),
    /// A `Blocking` receiver's last copy, which sets how long it spins before it sleeps
    /// ([`CopyPace`]); `None` for the other strategies.
    pace: Option<CopyPace>,
    /// `next_frame` found a frame already published, without waiting, since our last wait:
    /// the next wait is that of a receiver that caught up with a stream (see
    /// [`CAUGHT_UP_PAUSES`]).
    backlog: bool,
    /// The peer's doorbell (it is an `Inbox` or an async receiver): ring it instead of our
    /// futex words, for data and for space alike.
    peer_bell: Option<Ringer>,
    /// Our loan pool, if we lend.
    pub(crate) lender: Option<Lender>,
    /// The peer's loan pool, if it lends.
    borrower: Option<Borrower>,
    /// The peer's segment's place in this process's registry (see `identity`).
    _claim: Option<Claim>,
}

/// Connects to a bound `shm://` name and runs the connector side of the handshake.
pub(crate) fn connect(endpoint: String, name: &str, opts: &ShmConfig) -> Result<ShmConn> {
    connect_with_bell(endpoint, name, opts, None)
}

/// [`connect`], asking the peer to wake us by ringing `bell` (an async receiver's doorbell)
/// instead of our futex words.
pub(crate) fn connect_with_bell(
    endpoint: String,
    name: &str,
    opts: &ShmConfig,
    bell: Option<&Doorbell>,
) -> Result<ShmConn> {
    let capacity = opts.ring_capacity;
    let pool = create_pool(&endpoint, opts)?;
    let (peer, mine) = connect_side(
        &endpoint,
        name,
        &opts.peers,
        (Role::Conn, Role::Conn),
        Extras {
            bell,
            pool: pool.as_ref().map(OwnedPool::shape),
            handover: None,
        },
        || {
            OwnedSegment::create_for(capacity, Connector, &endpoint)
                .map(|seg| {
                    let seg = seg.fence_wake_if(opts.wait == WaitStrategy::Blocking);
                    let seg = if bell.is_some() {
                        seg
                    } else {
                        seg.with_fence_ask()
                    };
                    seg.with_keyed_sleeps()
                })
                .map_err(Into::into)
        },
        opts.wait,
        opts.handshake_timeout,
    )?;
    ShmConn::new(endpoint, peer, mine, opts, pool)
}

/// Our loan pool, if `opts` asks for one.
pub(crate) fn create_pool(endpoint: &str, opts: &ShmConfig) -> Result<Option<OwnedPool>> {
    opts.loan_pool
        .map(|(slots, bytes)| {
            OwnedPool::create(slots, bytes).map_err(|e| {
                Error::io(
                    format!("{endpoint}: creating a loan pool of {slots} x {bytes} bytes"),
                    e,
                )
            })
        })
        .transpose()
}

impl ShmConn {
    pub(super) fn new(
        endpoint: String,
        peer: Peer,
        mine: OwnedSegment,
        opts: &ShmConfig,
        pool: Option<OwnedPool>,
    ) -> Result<Self> {
        let Peer {
            pid: peer_pid,
            sock,
            segment: peer,
            doorbell: peer_bell,
            pool: peer_pool,
            claim,
            ..
        } = peer;
        let borrower = peer_pool.map(|p| Borrower::new(p, ReleaseBoard::of(&mine)));
        let (tx_cap, rx_cap) = (mine.capacity(), peer.capacity_bytes());
        // Who runs which barrier around a sleep (see `wait`): we notify with light barriers
        // if we may and the peer did not ask for a fence; we wait with the heavy one if the
        // peer notifies with light barriers and we did not ask it for a fence. Both sides
        // derive this from the same two header flags.
        let notify_light = mine.light_notify() && !peer.fence_wake();
        let wait_heavy = peer.light_notify() && !mine.fence_wake();
        let peer_keyed = peer.keyed_sleeps();
        let peer_asks = peer.fence_ask() && mine.light_notify() && peer_bell.is_none();
        let mut acked = 0;
        if peer_asks {
            // Before any notification of ours: the peer's first ask is odd (a full fence),
            // and every notification of ours will load it.
            let ask = peer.word32(word::FENCE_ASK).load(Ordering::Relaxed);
            acknowledge(&mine, &mut acked, ask);
        }
        let asking = (mine.fence_ask() && peer.light_notify()).then(Asking::new);
        let sleep_cap = if wait_heavy && !crate::sys::heavy_barrier_works() {
            Duration::from_millis(1)
        } else {
            wait::FUTEX_SLEEP_MAX
        };
        Ok(ShmConn {
            link: Link::new(endpoint, peer_pid, sock),
            tx: Producer::new(tx_cap),
            rx: Consumer::new(rx_cap),
            mine,
            peer,
            wait: opts.wait,
            spin_budget: opts.spin_budget,
            sleep_cap,
            notify_light,
            wait_heavy,
            peer_keyed,
            peer_asks,
            acked,
            asking,
            sent: (0, 0),
            received: (0, 0),
            pace: (opts.wait == WaitStrategy::Blocking).then(CopyPace::default),
            backlog: false,
            peer_bell,
            lender: pool.map(Lender::new),
            borrower,
            _claim: claim,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.link.endpoint
    }

    pub(crate) fn peer_pid(&self) -> i32 {
        self.link.peer_pid
    }

    pub(crate) fn max_message_len(&self) -> usize {
        self.tx.max_payload() as usize
    }

    /// Sends one message, waiting for room as `mode` allows.
    ///
    /// The fast path publishes at once when the connection is open and the ring has room;
    /// only a send that must wait, or fail, sets up the wait and builds errors (at 64 B that
    /// machinery cost more instructions than the frame itself).
    #[inline]
    pub(crate) fn send(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        if msg.len() <= self.max_message_len() && self.link.is_usable() && self.link.ended.is_none()
        {
            match self.try_push(msg, KIND_DATA) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(e),
            }
        }
        self.send_waiting(msg, mode)
    }

    /// [`ShmConn::send`] beyond its fast path: checks, errors, and the wait for room.
    #[inline(never)]
    fn send_waiting(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        let max = self.max_message_len();
        if msg.len() > max {
            self.link.usable()?;
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
            });
        }
        self.send_frame(msg, mode, KIND_DATA)
    }

    /// Publishes one frame of `kind`, waiting for room as `mode` allows.
    #[inline]
    fn send_frame(&mut self, msg: &[u8], mode: Mode, kind: u32) -> Result<()> {
        self.link.usable()?;
        if let Some(end) = self.link.ended {
            return Err(self.link.end_error(end));
        }
        let (strategy, spin_budget) = (self.wait, self.spin_budget);
        wait::drive(strategy, spin_budget, mode.deadline(), |turn| {
            match turn {
                Turn::Attempt => {
                    if self.try_push(msg, kind)? {
                        return Ok(Outcome::Done(()));
                    }
                    if mode == Mode::Try {
                        self.link.poll_peer()?;
                        return Err(self
                            .link
                            .ended
                            .map_or(Error::WouldBlock, |end| self.link.end_error(end)));
                    }
                }
                Turn::CheckPeer => {
                    self.link.poll_peer()?;
                    if let Some(end) = self.link.ended {
                        return Err(self.link.end_error(end));
                    }
                }
                Turn::Sleep(t) => {
                    let (flag, seq) = (
                        self.mine.word32(word::TX_SLEEPING),
                        self.peer.word32(word::SPACE_SEQ),
                    );
                    let key = wait::prepare_keyed_wait(flag, seq, self.wait_heavy);
                    let pushed = self.try_push(msg, kind);
                    if !matches!(pushed, Ok(false)) {
                        wait::cancel_wait(self.mine.word32(word::TX_SLEEPING));
                        pushed?;
                        return Ok(Outcome::Done(()));
                    }
                    let (flag, seq) = (
                        self.mine.word32(word::TX_SLEEPING),
                        self.peer.word32(word::SPACE_SEQ),
                    );
                    wait::sleep(flag, seq, key, t.min(self.sleep_cap), &SharedFutex);
                }
            }
            Ok(Outcome::Pending)
        })
    }

    /// One attempt to publish `msg`; wakes the peer if it sleeps. Always inlined: it is
    /// the fast path of `send`.
    #[inline(always)]
    fn try_push(&mut self, msg: &[u8], kind: u32) -> Result<bool> {
        let peer = &self.peer;
        match self
            .tx
            .try_push_kind(&self.mine, || peer.load64(word::CONSUMED), msg, kind)
        {
            Ok(Push::Done) => {
                self.wake_receiver();
                self.sent.0 = self.sent.0.wrapping_add(1);
                self.sent.1 = self.sent.1.wrapping_add(msg.len() as u64);
                self.flush_sent();
                Ok(true)
            }
            Ok(Push::Full) => Ok(false),
            // Only padding went out: the peer must skip it before our frame fits.
            Ok(Push::Padded) => {
                self.wake_receiver();
                Ok(false)
            }
            Err(c) => Err(self.link.poison(c)),
        }
    }

    #[inline(always)]
    fn peek(&mut self) -> Result<Option<Frame>> {
        match self.rx.peek(&self.peer) {
            Ok(f) => Ok(f),
            Err(c) => Err(self.link.poison(c)),
        }
    }

    /// Notifier half of the eventcount after we published progress: if the peer announced
    /// a sleep in its flag at `peer_flag`, bump and wake our futex word at `my_seq`, or ring
    /// its doorbell if it gave us one.
    ///
    /// Always inlined: after every send it is one load of the peer's flag, and with light
    /// barriers a peer that is awake costs nothing more (see [`wait::surely_awake`]). With
    /// this out of line and all four counters written after every send (not just the two
    /// of [`ShmConn::flush_sent`]), a 64 B stream ran 21-29 M msgs/s; with both changes
    /// 36-41 M (lab, four alternating runs; raw ring 36-58 M in the same runs).
    #[inline(always)]
    fn wake_peer(&self, peer_flag: word::Word32, my_seq: word::Word32) {
        if wait::surely_awake(self.peer.word32(peer_flag), self.notify_light) {
            return;
        }
        self.wake_peer_slow(peer_flag, my_seq, self.notify_light);
    }

    /// [`ShmConn::wake_peer`] after publishing data: with the barriers the peer's
    /// `FENCE_ASK` asks for, if it says one (see [`ShmConn::data_light`]).
    #[inline(always)]
    fn wake_receiver(&mut self) {
        let light = self.data_light();
        if wait::surely_awake(self.peer.word32(word::RX_SLEEPING), light) {
            return;
        }
        self.wake_peer_slow(word::RX_SLEEPING, word::DATA_SEQ, light);
    }

    /// Whether to wake the peer's data sleep with light barriers, for a notification whose
    /// data we just published. A peer that says `FENCE_ASK` decides (one load of a word on
    /// the line of its flag, which we load next anyway): even, light (it runs the heavy
    /// barrier before each sleep); odd, a full fence, and first we store the value in our
    /// `FENCE_ACK` (Release, after everything we published so far) the first time we see
    /// it: each later notification loads the ask again and fences while it keeps that
    /// value, so a sleep that saw the acknowledgement needs no heavy barrier.
    #[inline(always)]
    fn data_light(&mut self) -> bool {
        if !self.peer_asks {
            return self.notify_light;
        }
        let ask = self.peer.word32(word::FENCE_ASK).load(Ordering::Relaxed);
        acknowledge(&self.mine, &mut self.acked, ask)
    }

    /// [`ShmConn::wake_peer`] when the peer may sleep, or we notify with full fences
    /// (`light` false).
    #[inline(never)]
    fn wake_peer_slow(&self, peer_flag: word::Word32, my_seq: word::Word32, light: bool) {
        let peer_sleeping = self.peer.word32(peer_flag);
        match &self.peer_bell {
            None if self.peer_keyed => {
                wait::notify_keyed(peer_sleeping, self.mine.word32(my_seq), light, &SharedFutex)
            }
            None => wait::notify(peer_sleeping, self.mine.word32(my_seq), light, &SharedFutex),
            Some(bell) => {
                if wait::any_sleeps([peer_sleeping], light) {
                    bell.ring();
                }
            }
        }
    }

    /// Publishes our consumed position and wakes a producer sleeping for space.
    fn publish_consumed(&self, pos: u64) {
        self.flush_counters();
        // Release: pairs with the Acquire load in the peer's `Producer::refresh`; our reads
        // of the consumed frames happen before the producer may overwrite them.
        self.mine
            .word64(word::CONSUMED)
            .store(pos, Ordering::Release);
        self.wake_peer(word::TX_SLEEPING, word::SPACE_SEQ);
    }

    /// Waits for the next frame as `mode` allows. After the peer ended, frames it had
    /// published are still returned; then the end is reported.
    ///
    /// Always inlined: it reads the frame itself, and [`ShmConn::wait_frame`] only waits
    /// until one looks published, so the frame's header and payload are read in the caller
    /// (in a round trip, that is the path from the peer's message to our answer).
    #[inline(always)]
    pub(crate) fn next_frame(&mut self, mode: Mode) -> Result<Frame> {
        let mut waited = false;
        loop {
            if self.link.is_usable() {
                match self.rx.peek(&self.peer) {
                    Ok(Some(frame)) => {
                        self.backlog |= !waited;
                        return Ok(frame);
                    }
                    Ok(None) => {}
                    Err(c) => return Err(self.link.poison(c)),
                }
            }
            waited = true;
            self.wait_frame(mode)?;
        }
    }

    /// [`ShmConn::next_frame`] beyond its fast path: checks, errors, publishing our consumed
    /// position, and the wait until the next frame's tag says it is published (padding
    /// included: the caller skips it and may call again).
    #[inline(never)]
    fn wait_frame(&mut self, mode: Mode) -> Result<()> {
        self.link.usable()?;
        let ask = self
            .asking
            .as_mut()
            .and_then(|a| a.on_wait(self.received.0));
        store_ask(&self.mine, ask);
        // First a short spin on the tag alone: each turn of the full loop below also looks
        // at the peer's end and the schedule, which delays noticing a frame (a busy 8 B round
        // trip took 270 ns with the loop alone, 240-250 ns with this spin first), and most
        // waits of a spinning receiver end within the batch.
        if self.wait != WaitStrategy::Blocking
            && !matches!(mode, Mode::Try)
            && self.link.ended.is_none()
        {
            if let Some(pos) = self.rx.unpublished() {
                self.publish_consumed(pos);
            }
            // A receiver that found no frame waiting since its last wait looks at every
            // `pause` and also loads the line after the tag's (see `touch_ring`); one that
            // caught up with a stream looks less often and touches nothing (see
            // `CAUGHT_UP_PAUSES`).
            let caught_up = std::mem::take(&mut self.backlog);
            let (pauses, next_line) = if caught_up {
                (CAUGHT_UP_PAUSES, None)
            } else {
                (1, Some(self.rx.next_line()))
            };
            for _ in 0..FIRST_SPINS / pauses {
                for _ in 0..pauses {
                    std::hint::spin_loop();
                }
                if let Some(line) = next_line {
                    self.peer.touch_ring(line);
                }
                if self.rx.ready(&self.peer) {
                    return Ok(());
                }
            }
        }
        let spin = match &mut self.pace {
            Some(pace) => pace.take_spin(self.spin_budget),
            None => wait::spin_limit(self.wait, self.spin_budget),
        };
        wait::drive_spinning(self.wait, spin, mode.deadline(), |turn| {
            match turn {
                Turn::Attempt => {
                    if self.rx.ready(&self.peer) {
                        return Ok(Outcome::Done(()));
                    }
                    if let Some(pos) = self.rx.unpublished() {
                        self.publish_consumed(pos);
                    }
                    if self.link.nothing_to_read(mode)? == Idle::Retry {
                        return Ok(Outcome::Again);
                    }
                }
                Turn::CheckPeer => self.link.poll_peer()?,
                Turn::Sleep(t) => {
                    let heavy = self.data_sleep_heavy();
                    let (flag, seq) = (
                        self.mine.word32(word::RX_SLEEPING),
                        self.peer.word32(word::DATA_SEQ),
                    );
                    let key = wait::prepare_keyed_wait(flag, seq, heavy);
                    if self.rx.ready(&self.peer) {
                        wait::cancel_wait(self.mine.word32(word::RX_SLEEPING));
                        return Ok(Outcome::Done(()));
                    }
                    let (flag, seq) = (
                        self.mine.word32(word::RX_SLEEPING),
                        self.peer.word32(word::DATA_SEQ),
                    );
                    wait::sleep(flag, seq, key, t.min(self.sleep_cap), &SharedFutex);
                }
            }
            Ok(Outcome::Pending)
        })
    }

    /// Whether the data sleep we are about to take must run the heavy barrier: if we ask
    /// with `FENCE_ASK`, while it is even or the peer has not acknowledged its odd value
    /// (then its notifications may use light barriers); otherwise as the header flags say.
    fn data_sleep_heavy(&mut self) -> bool {
        let Some(asking) = self.asking.as_mut() else {
            return self.wait_heavy;
        };
        store_ask(&self.mine, asking.on_sleep(self.received.0));
        // Acquire: pairs with the peer's Release store in `data_light`; what it published
        // before acknowledging is visible to our re-check.
        let heavy = asking.heavy(self.peer.word32(word::FENCE_ACK).load(Ordering::Acquire));
        if heavy {
            // The caller runs it next (`prepare_keyed_wait`), after the ask we just stored.
            asking.ran_heavy();
        }
        heavy
    }

    /// For a receiver of several connections (`Inbox`): the next frame if one is
    /// published, without waiting or syscalls. `Err` with the end once the peer ended (as
    /// seen by [`ShmConn::check_peer`]) and everything it published was read.
    pub(crate) fn poll_frame(&mut self) -> Result<Option<Frame>> {
        self.link.usable()?;
        if let Some(frame) = self.peek()? {
            return Ok(Some(frame));
        }
        if let Some(pos) = self.rx.unpublished() {
            self.publish_consumed(pos);
        }
        match self.link.ended {
            Some(end) => Err(self.link.end_error(end)),
            None => Ok(None),
        }
    }

    /// Looks at the control socket (one `poll`); true if the peer has ended.
    pub(crate) fn check_peer(&mut self) -> Result<bool> {
        self.link.poll_peer()?;
        Ok(self.link.ended.is_some())
    }

    /// The flag a waiting receiver sets to ask the peer for a wake-up.
    pub(crate) fn rx_sleeping_flag(&self) -> &crate::sync::AtomicU32 {
        self.mine.word32(word::RX_SLEEPING)
    }

    /// The flag a sender waiting for room sets to ask the peer for a wake-up.
    #[cfg(feature = "tokio")]
    pub(crate) fn tx_sleeping_flag(&self) -> &crate::sync::AtomicU32 {
        self.mine.word32(word::TX_SLEEPING)
    }

    /// The control socket, for a reactor to watch (see [`Link::control_fd`]).
    #[cfg(feature = "tokio")]
    pub(crate) fn control_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.link.control_fd()
    }

    /// Whether our waits must run the heavy barrier (the peer notifies with light barriers
    /// and we did not ask it for a fence).
    pub(crate) fn peer_light(&self) -> bool {
        self.wait_heavy
    }

    /// Takes a free slot of our pool for `len` bytes, waiting for the peer to release one
    /// as `mode` allows.
    pub(crate) fn loan(&mut self, len: usize, mode: Mode) -> Result<LoanRef> {
        self.link.usable()?;
        check_loan_len(self.lender.as_ref(), len, &self.link.endpoint)?;
        let (strategy, spin_budget) = (self.wait, self.spin_budget);
        wait::drive(strategy, spin_budget, mode.deadline(), |turn| {
            match turn {
                Turn::Attempt => {
                    if let Some(end) = self.link.ended {
                        return Err(self.link.end_error(end));
                    }
                    let lender = self.lender.as_mut().expect("checked above");
                    match lender.take(len, &self.peer) {
                        Ok(Some(loan)) => return Ok(Outcome::Done(loan)),
                        Ok(None) => {}
                        Err(c) => return Err(self.link.poison(c)),
                    }
                    if mode == Mode::Try {
                        self.link.poll_peer()?;
                        if self.link.ended.is_none() {
                            return Err(Error::WouldBlock);
                        }
                        return Ok(Outcome::Again);
                    }
                }
                Turn::CheckPeer => self.link.poll_peer()?,
                // Releases are words in the peer's segment, with no wake-up: nap briefly.
                Turn::Sleep(t) => std::thread::sleep(t.min(LOAN_RECLAIM_NAP)),
            }
            Ok(Outcome::Pending)
        })
    }

    /// Sends a filled loan as a loan frame. On error the slot is ours again.
    pub(crate) fn send_loan(&mut self, loan: &LoanRef, mode: Mode) -> Result<()> {
        match self.send_frame(&loan.encode(), mode, KIND_LOAN) {
            Ok(()) => {
                self.lender.as_mut().expect("our pool").lent(loan, 0);
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

    /// Slots of our pool lent to the peer (or being filled).
    pub(crate) fn loans_outstanding(&mut self) -> Result<usize> {
        let Some(lender) = self.lender.as_mut() else {
            return Ok(0);
        };
        lender
            .outstanding(&self.peer)
            .map_err(|c| self.link.poison(c))
    }

    /// Reads and validates the loan frame `frame` (not consumed yet).
    pub(crate) fn check_loan(&mut self, frame: Frame) -> Result<LoanRef> {
        let mut payload = [0u8; LOAN_FRAME_BYTES];
        self.read_frame(frame, &mut payload)?;
        let checked = match &self.borrower {
            Some(b) => b.check(&payload),
            None => Err(Corruption(
                "loan frame from a peer that announced no loan pool".into(),
            )),
        };
        checked.map_err(|c| self.link.poison(c))
    }

    /// Accepts a checked loan and consumes its frame: a view of the slot, handed back
    /// when dropped.
    pub(crate) fn take_loan(&mut self, frame: Frame, loan: LoanRef) -> LentSlot {
        let b = self.borrower.as_mut().expect("checked by check_loan");
        b.accept(&loan);
        let lent = LentSlot::new(b.pool.clone(), b.board.clone(), loan);
        self.finish_frame(frame);
        lent
    }

    /// The length of the message `frame` carries (a loan's length for a loan frame, which
    /// is checked here), and the loan.
    pub(crate) fn message_len(&mut self, frame: Frame) -> Result<(usize, Option<LoanRef>)> {
        if !frame.loan {
            return Ok((frame.len, None));
        }
        let loan = self.check_loan(frame)?;
        Ok((loan.len, Some(loan)))
    }

    /// Copies the message of `frame` into `out` (exactly its length, from
    /// [`ShmConn::message_len`]) and consumes it; a loan is released at once.
    pub(crate) fn take_message(
        &mut self,
        frame: Frame,
        loan: Option<LoanRef>,
        out: &mut [u8],
    ) -> Result<()> {
        let Some(loan) = loan else {
            self.read_frame(frame, out)?;
            self.finish_frame(frame);
            return Ok(());
        };
        let lent = self.take_loan(frame, loan);
        let copied = lent.read(0, out);
        drop(lent); // released before a poisoning error is built
        copied.map_err(|c| self.link.poison(c))
    }

    /// Copies the payload of `frame` into `out[..frame.len]`, untimed: for frames under
    /// [`ShmConn::inline_copy_max`], or a receiver whose wait does not follow its copies.
    #[inline(always)]
    pub(crate) fn read_frame(&mut self, frame: Frame, out: &mut [u8]) -> Result<()> {
        match self.rx.read(&self.peer, frame, out) {
            Ok(()) => Ok(()),
            Err(c) => Err(self.link.poison(c)),
        }
    }

    /// The largest frame a `Conn` receive copies with [`ShmConn::read_frame`] into a buffer
    /// of `buf_len` bytes; a larger one is too large for the buffer or goes through
    /// [`ShmConn::read_large`]. One comparison on the path from a frame's arrival to its
    /// copy, as before the copies were timed: a second one there (the length against
    /// `CopyPace::TIMED_MIN_BYTES` inside `read_frame`) made the busy 64 B round trip of
    /// `examples/pingpong` 201-220 ns instead of 181-190 ns in alternating runs.
    #[inline(always)]
    pub(crate) fn inline_copy_max(buf_len: usize) -> usize {
        buf_len.min(CopyPace::TIMED_MIN_BYTES - 1)
    }

    /// Copies `frame` (a data frame, not a loan) into a new `Vec` and consumes it; a large
    /// one through [`ShmConn::read_large`].
    pub(crate) fn take_owned(&mut self, frame: Frame) -> Result<Vec<u8>> {
        let mut out = vec![0; frame.len];
        if frame.len >= CopyPace::TIMED_MIN_BYTES {
            self.read_large(frame, &mut out)?;
        } else {
            self.read_frame(frame, &mut out)?;
        }
        self.finish_frame(frame);
        Ok(out)
    }

    /// [`ShmConn::read_frame`] of a large message: timed for a `Blocking` receiver, for the
    /// spin of its next wait ([`CopyPace`]).
    #[inline(never)]
    pub(crate) fn read_large(&mut self, frame: Frame, out: &mut [u8]) -> Result<()> {
        let (rx, peer) = (&self.rx, &self.peer);
        let read = match &mut self.pace {
            Some(pace) => pace.time(|| rx.read(peer, frame, out)),
            None => rx.read(peer, frame, out),
        };
        read.map_err(|c| self.link.poison(c))
    }

    /// Consumes `frame` (after `read_frame`).
    #[inline]
    pub(crate) fn finish_frame(&mut self, frame: Frame) {
        if let Some(pos) = self.rx.advance(frame) {
            self.publish_consumed(pos);
        }
        // Counts for `shmsock ls`: they wrap as the segment's counters do.
        self.received.0 = self.received.0.wrapping_add(1);
        self.received.1 = self.received.1.wrapping_add(frame.len as u64);
    }

    /// Copies our sent counters into our segment (for `shmsock ls`), after every send: two
    /// stores to a line only we write. The received ones wait for [`ShmConn::flush_counters`].
    #[inline(always)]
    fn flush_sent(&self) {
        self.mine
            .word64(word::MSGS_SENT)
            .store(self.sent.0, Ordering::Relaxed);
        self.mine
            .word64(word::BYTES_SENT)
            .store(self.sent.1, Ordering::Relaxed);
    }

    /// Copies all our message counters into our segment (for `shmsock ls`): whenever we
    /// publish our consumed position, and when we close.
    #[inline]
    fn flush_counters(&self) {
        self.flush_sent();
        self.mine
            .word64(word::MSGS_RECV)
            .store(self.received.0, Ordering::Relaxed);
        self.mine
            .word64(word::BYTES_RECV)
            .store(self.received.1, Ordering::Relaxed);
    }

    /// Closes our side: the peer drains what we sent, then sees `PeerClosed`.
    pub(crate) fn close(&mut self) {
        self.flush_counters();
        self.link.close();
    }

    /// Test hook: our own segment, to play a hostile peer.
    #[cfg(test)]
    pub(crate) fn own_segment(&self) -> &OwnedSegment {
        &self.mine
    }

    /// Test hook: our `FENCE_ASK` and the peer's `FENCE_ACK` (see `wait::Asking`).
    #[cfg(test)]
    pub(crate) fn fence_words(&self) -> (u32, u32) {
        (
            self.mine.word32(word::FENCE_ASK).load(Ordering::Relaxed),
            self.peer.word32(word::FENCE_ACK).load(Ordering::Acquire),
        )
    }
}

/// The sender's side of the fence ask (see [`ShmConn::data_light`]): for the peer's `ask`,
/// whether our notifications may use light barriers (even) or must fence (odd); the first
/// time an odd value is seen it goes into our `FENCE_ACK` (Release, after everything we
/// published so far) and into `acked`.
#[inline(always)]
fn acknowledge(mine: &OwnedSegment, acked: &mut u32, ask: u32) -> bool {
    if ask & 1 == 0 {
        return true;
    }
    if ask != *acked {
        *acked = ask;
        mine.word32(word::FENCE_ACK).store(ask, Ordering::Release);
    }
    false
}

/// The receiver's side of the fence ask: publishes a new `ask` (from [`Asking`]) in our
/// `FENCE_ASK`. Relaxed: until the sender acknowledged an odd ask, or one of our sleeps ran
/// the heavy barrier after storing it, our sleeps run the heavy barrier (see `wait::Asking`).
fn store_ask(mine: &OwnedSegment, ask: Option<u32>) {
    if let Some(ask) = ask {
        mine.word32(word::FENCE_ASK).store(ask, Ordering::Relaxed);
    }
}

impl Drop for ShmConn {
    fn drop(&mut self) {
        self.close();
    }
}
