//! One `shm://` connection: our segment (outbound ring), the peer's segment (inbound ring,
//! read-only), and the Unix socket that tells us when the peer is gone.

use std::time::Duration;

use super::control::{Idle, Link, Mode};
use super::doorbell::Doorbell;
use super::handshake::Role;
use super::rendezvous::{connect_side, Peer};
use super::ring::{Consumer, Frame, Producer, Push};
use super::segment::{self, OwnedSegment, PeerSegment};
use super::wait::{self, Schedule, SharedFutex, Step, WaitStrategy};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::sync::Ordering;

/// Sends between two updates of the counters in our segment.
const COUNTER_FLUSH_MESSAGES: u64 = 64;

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
    sent: (u64, u64),
    received: (u64, u64),
    /// The peer's doorbell (it is an `Inbox`): ring it instead of our data futex.
    peer_bell: Option<Doorbell>,
}

/// Connects to a bound `shm://` name and runs the connector side of the handshake.
pub(crate) fn connect(endpoint: String, name: &str, opts: &Options) -> Result<ShmConn> {
    let capacity = opts.ring_capacity;
    let (peer, mine) = connect_side(
        &endpoint,
        name,
        &opts.allowed_uids,
        (Role::Conn, Role::Conn),
        None,
        |_| OwnedSegment::create(capacity).map_err(Into::into),
    )?;
    ShmConn::new(endpoint, peer, mine, opts)
}

impl ShmConn {
    pub(super) fn new(
        endpoint: String,
        peer: Peer,
        mine: OwnedSegment,
        opts: &Options,
    ) -> Result<Self> {
        let Peer {
            pid: peer_pid,
            sock,
            segment: peer,
            doorbell: peer_bell,
        } = peer;
        let (tx_cap, rx_cap) = (mine.capacity(), peer.capacity_bytes());
        let sleep_cap = if peer.light_notify() && !crate::sys::heavy_barrier() {
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
            sent: (0, 0),
            received: (0, 0),
            peer_bell,
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
    pub(crate) fn send(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        self.link.usable()?;
        if let Some(end) = self.link.ended {
            return Err(self.link.end_error(end));
        }
        let max = self.max_message_len();
        if msg.len() > max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let mut schedule = None;
        loop {
            if self.try_push(msg)? {
                return Ok(());
            }
            if mode == Mode::Try {
                self.link.poll_peer()?;
                return Err(self
                    .link
                    .ended
                    .map_or(Error::WouldBlock, |end| self.link.end_error(end)));
            }
            let deadline = match mode {
                Mode::Until(d) => Some(d),
                _ => None,
            };
            match schedule
                .get_or_insert_with(|| Schedule::new(self.wait, self.spin_budget, deadline))
                .next()
            {
                Step::Spin => std::hint::spin_loop(),
                Step::CheckPeer => {
                    self.link.poll_peer()?;
                    if let Some(end) = self.link.ended {
                        return Err(self.link.end_error(end));
                    }
                }
                Step::Sleep(t) => {
                    let (flag, seq) = (
                        self.mine.word32(segment::OFF_TX_SLEEPING),
                        self.peer.word32(segment::OFF_SPACE_SEQ),
                    );
                    let key = wait::prepare_wait(flag, seq, self.peer.light_notify());
                    let pushed = self.try_push(msg);
                    if !matches!(pushed, Ok(false)) {
                        wait::cancel_wait(self.mine.word32(segment::OFF_TX_SLEEPING));
                        pushed?;
                        return Ok(());
                    }
                    let (flag, seq) = (
                        self.mine.word32(segment::OFF_TX_SLEEPING),
                        self.peer.word32(segment::OFF_SPACE_SEQ),
                    );
                    wait::sleep(flag, seq, key, t.min(self.sleep_cap), &SharedFutex);
                }
                Step::TimedOut => return Err(Error::TimedOut),
            }
        }
    }

    /// One attempt to publish `msg`; wakes the peer if it sleeps.
    #[inline]
    fn try_push(&mut self, msg: &[u8]) -> Result<bool> {
        let peer = &self.peer;
        match self
            .tx
            .try_push(&self.mine, || peer.load64(segment::OFF_CONSUMED), msg)
        {
            Ok(Push::Done) => {
                let peer_sleeping = self.peer.word32(segment::OFF_RX_SLEEPING);
                match &self.peer_bell {
                    None => wait::notify(
                        peer_sleeping,
                        self.mine.word32(segment::OFF_DATA_SEQ),
                        self.mine.light_notify(),
                        &SharedFutex,
                    ),
                    Some(bell) => {
                        if wait::any_sleeps([peer_sleeping], self.mine.light_notify()) {
                            bell.ring();
                        }
                    }
                }
                self.sent.0 += 1;
                self.sent.1 += msg.len() as u64;
                if self.sent.0 % COUNTER_FLUSH_MESSAGES == 0 {
                    self.flush_counters();
                }
                Ok(true)
            }
            Ok(Push::Full) => Ok(false),
            Err(c) => Err(self.link.poison(c)),
        }
    }

    #[inline]
    fn peek(&mut self) -> Result<Option<Frame>> {
        match self.rx.peek(&self.peer) {
            Ok(f) => Ok(f),
            Err(c) => Err(self.link.poison(c)),
        }
    }

    /// Publishes our consumed position and wakes a producer sleeping for space.
    fn publish_consumed(&self, pos: u64) {
        self.flush_counters();
        // Release: pairs with the Acquire load in the peer's `Producer::refresh`; our reads
        // of the consumed frames happen before the producer may overwrite them.
        self.mine
            .word64(segment::OFF_CONSUMED)
            .store(pos, Ordering::Release);
        wait::notify(
            self.peer.word32(segment::OFF_TX_SLEEPING),
            self.mine.word32(segment::OFF_SPACE_SEQ),
            self.mine.light_notify(),
            &SharedFutex,
        );
    }

    /// Waits for the next frame as `mode` allows. After the peer ended, frames it had
    /// published are still returned; then the end is reported.
    pub(crate) fn next_frame(&mut self, mode: Mode) -> Result<Frame> {
        self.link.usable()?;
        let mut schedule = None;
        loop {
            if let Some(frame) = self.peek()? {
                return Ok(frame);
            }
            if let Some(pos) = self.rx.unpublished() {
                self.publish_consumed(pos);
            }
            let deadline = match self.link.nothing_to_read(mode)? {
                Idle::Retry => continue,
                Idle::Wait(deadline) => deadline,
            };
            match schedule
                .get_or_insert_with(|| Schedule::new(self.wait, self.spin_budget, deadline))
                .next()
            {
                Step::Spin => std::hint::spin_loop(),
                Step::CheckPeer => self.link.poll_peer()?,
                Step::Sleep(t) => {
                    let (flag, seq) = (
                        self.mine.word32(segment::OFF_RX_SLEEPING),
                        self.peer.word32(segment::OFF_DATA_SEQ),
                    );
                    let key = wait::prepare_wait(flag, seq, self.peer.light_notify());
                    let next = self.peek();
                    if !matches!(next, Ok(None)) {
                        wait::cancel_wait(self.mine.word32(segment::OFF_RX_SLEEPING));
                        if let Some(frame) = next? {
                            return Ok(frame);
                        }
                    }
                    let (flag, seq) = (
                        self.mine.word32(segment::OFF_RX_SLEEPING),
                        self.peer.word32(segment::OFF_DATA_SEQ),
                    );
                    wait::sleep(flag, seq, key, t.min(self.sleep_cap), &SharedFutex);
                }
                Step::TimedOut => return Err(Error::TimedOut),
            }
        }
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
        self.mine.word32(segment::OFF_RX_SLEEPING)
    }

    /// Whether the peer notifies with light barriers (its waiter must run the heavy one).
    pub(crate) fn peer_light(&self) -> bool {
        self.peer.light_notify()
    }

    /// Copies the payload of `frame` into `out[..frame.len]`.
    pub(crate) fn read_frame(&mut self, frame: Frame, out: &mut [u8]) -> Result<()> {
        match self.rx.read(&self.peer, frame, out) {
            Ok(()) => Ok(()),
            Err(c) => Err(self.link.poison(c)),
        }
    }

    /// Consumes `frame` (after `read_frame`).
    pub(crate) fn finish_frame(&mut self, frame: Frame) {
        if let Some(pos) = self.rx.advance(frame) {
            self.publish_consumed(pos);
        }
        self.received.0 += 1;
        self.received.1 += frame.len as u64;
    }

    /// Copies our message counters into our segment (for `shmsock ls`): every
    /// [`COUNTER_FLUSH_MESSAGES`] sends and whenever we publish our consumed position.
    fn flush_counters(&self) {
        let words = [
            (segment::OFF_MSGS_SENT, self.sent.0),
            (segment::OFF_BYTES_SENT, self.sent.1),
            (segment::OFF_MSGS_RECV, self.received.0),
            (segment::OFF_BYTES_RECV, self.received.1),
        ];
        for (offset, value) in words {
            self.mine.word64(offset).store(value, Ordering::Relaxed);
        }
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
}

impl Drop for ShmConn {
    fn drop(&mut self) {
        self.close();
    }
}
