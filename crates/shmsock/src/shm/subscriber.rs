//! `shm://` subscriber: reads the publisher's broadcast ring through a read-only mapping and
//! publishes its read position in its own segment.

use std::time::Duration;

use super::broadcast::{NoLoans, Read, Reader, Snapshot};
use super::config::ShmConfig;
use super::control::{Idle, Link};
use super::hello::Role;
use super::label::SegmentRole;
use super::loan::{Borrower, BroadcastBorrower, LentSlot, LoanRef, ShmSample};
use super::rendezvous::{connect_side, Extras};
use super::ring::RING_CAPACITY_MIN_BYTES;
use super::segment::word;
use super::segment::{Counter, OwnedSegment, PeerSegment, ReleaseBoard};
use super::wait::{self, Outcome, SharedFutex, Turn, FUTEX_SLEEP_MAX};
use crate::error::{Error, Result};
use crate::handover::{PeerEnd, Token};
use crate::sync::Ordering;
use crate::vocabulary::{Mode, WaitStrategy};

/// Empty polls between two looks at the publisher's cursor (to notice eviction).
const POLLS_PER_LAG_CHECK: u32 = 64;

pub(crate) struct ShmSubscriber {
    link: Link,
    mine: OwnedSegment,
    publisher: PeerSegment,
    reader: Reader,
    wait: WaitStrategy,
    spin_budget: Duration,
    sleep_cap: Duration,
    /// Claims loan frames, if the publisher lends.
    borrower: Option<BroadcastBorrower>,
    /// A loan received by `recv` into a buffer too small for it, delivered next.
    stash: Option<LentSlot>,
    /// Buffer of `recv_sample` for messages that came as copies.
    scratch: Vec<u8>,
}

/// What one attempt at receiving gave.
pub(crate) enum Got {
    Message(usize),
    Loan(LentSlot),
    Nothing,
}

impl ShmSubscriber {
    pub(crate) fn connect(endpoint: String, name: &str, opts: &ShmConfig) -> Result<Self> {
        Self::connect_with(endpoint, name, opts, None, None)
    }

    /// [`ShmSubscriber::connect`], asking the publisher to wake us by ringing `bell` (an
    /// async subscriber's doorbell) instead of its futex word.
    #[cfg(feature = "tokio")]
    pub(crate) fn connect_with_bell(
        endpoint: String,
        name: &str,
        opts: &ShmConfig,
        bell: Option<&super::doorbell::Doorbell>,
    ) -> Result<Self> {
        Self::connect_with(endpoint, name, opts, bell, None)
    }

    /// [`ShmSubscriber::connect`] to take over a network connection to the same publisher:
    /// the publisher's pid must hold `peer` (that connection's other end) before our hello
    /// leaves, and the hello presents `token`, the one offered on that connection.
    pub(crate) fn connect_handover(
        endpoint: String,
        name: &str,
        opts: &ShmConfig,
        token: Token,
        peer: &PeerEnd,
    ) -> Result<Self> {
        Self::connect_with(endpoint, name, opts, None, Some((token, peer)))
    }

    fn connect_with(
        endpoint: String,
        name: &str,
        opts: &ShmConfig,
        bell: Option<&super::doorbell::Doorbell>,
        handover: Option<(Token, &PeerEnd)>,
    ) -> Result<Self> {
        let (peer, mine) = connect_side(
            &endpoint,
            name,
            &opts.peers,
            (Role::Subscriber, Role::Publisher),
            Extras {
                bell,
                pool: None,
                handover,
            },
            || {
                OwnedSegment::create_for(
                    RING_CAPACITY_MIN_BYTES,
                    SegmentRole::Subscriber,
                    &endpoint,
                )
                .map_err(Into::into)
            },
            opts.wait,
            opts.handshake_timeout,
        )?;
        // Start where the publisher's acknowledgement says: its write position then, which it
        // protects until it has taken us in, then through our start. Checked against its
        // cursor now (a hostile publisher could name anything).
        let now = peer
            .segment
            .cursor()
            .snapshot(peer.segment.capacity_bytes());
        let start = match now {
            Ok(now)
                if peer.start.pos <= now.write_pos
                    && peer.start.seq <= now.write_seq
                    && now.write_seq - peer.start.seq <= now.write_pos - peer.start.pos =>
            {
                Snapshot {
                    write_pos: peer.start.pos,
                    write_seq: peer.start.seq,
                    ..now
                }
            }
            Ok(now) => {
                return Err(Error::Corrupt {
                    endpoint,
                    pid: peer.pid,
                    what: format!(
                        "the publisher said we start at {:?}, beyond its cursor {now:?}",
                        peer.start
                    ),
                })
            }
            Err(c) => {
                return Err(Error::Corrupt {
                    endpoint,
                    pid: peer.pid,
                    what: c.0,
                })
            }
        };
        // Release: pairs with the publisher's Acquire load of our position.
        mine.word64(word::CONSUMED)
            .store(start.write_pos, Ordering::Release);
        let sleep_cap = if peer.segment.light_notify() && !crate::sys::heavy_barrier_works() {
            Duration::from_millis(1)
        } else {
            FUTEX_SLEEP_MAX
        };
        let borrower = peer
            .pool
            .map(|pool| BroadcastBorrower(Borrower::new(pool, ReleaseBoard::of(&mine))));
        Ok(ShmSubscriber {
            borrower,
            stash: None,
            scratch: Vec::new(),
            reader: Reader::new(peer.segment.capacity_bytes(), start),
            link: Link::new(endpoint, peer.pid, peer.sock),
            mine,
            publisher: peer.segment,
            wait: opts.wait,
            spin_budget: opts.spin_budget,
            sleep_cap,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.link.endpoint
    }

    pub(crate) fn publisher_pid(&self) -> i32 {
        self.link.peer_pid
    }

    /// The sequence number of the next message we read (the publisher numbers every
    /// message it writes, from 0).
    pub(crate) fn next_seq(&self) -> u64 {
        self.reader.seq()
    }

    fn publish_consumed(&mut self, idle: bool) {
        if let Some(pos) = self.reader.publication_due(idle) {
            // Release: pairs with the publisher's Acquire load in `min_consumed`.
            self.mine
                .word64(word::CONSUMED)
                .store(pos, Ordering::Release);
            wait::notify(
                self.publisher.word32(word::TX_SLEEPING),
                self.mine.word32(word::SPACE_SEQ),
                self.mine.light_notify(),
                &SharedFutex,
            );
        }
    }

    /// One look at the ring.
    fn attempt(&mut self, buf: &mut [u8], check_lag: bool) -> Result<Got> {
        let link = &self.link;
        let alive = || link.peer_silent();
        let cursor = self.publisher.cursor().with_liveness(&alive);
        let read = match &mut self.borrower {
            Some(b) => self
                .reader
                .read_with(&self.publisher, &cursor, buf, check_lag, b),
            None => self
                .reader
                .read_with(&self.publisher, &cursor, buf, check_lag, &mut NoLoans)
                .map(|r| match r {
                    Read::Message(n) => Read::Message(n),
                    Read::Empty => Read::Empty,
                    Read::Lagged(n) => Read::Lagged(n),
                    Read::TooSmall(n) => Read::TooSmall(n),
                    Read::Loan(never) => match never {},
                }),
        };
        match read {
            Ok(Read::Message(n)) => {
                self.mine.count(Counter::Received, n);
                self.publish_consumed(false);
                Ok(Got::Message(n))
            }
            Ok(Read::Loan(loan)) => {
                // Bytes count what crossed the ring: a loan's descriptor, as a Conn counts it.
                self.mine
                    .count(Counter::Received, super::ring::LOAN_FRAME_BYTES);
                self.publish_consumed(false);
                Ok(Got::Loan(self.sample(loan)))
            }
            Ok(Read::Empty) => Ok(Got::Nothing),
            Ok(Read::Lagged(missed)) => {
                self.mine.count_lost(missed);
                tracing::warn!(endpoint = %self.link.endpoint, missed, "subscriber lagged");
                self.publish_consumed(true);
                Err(Error::Lagged {
                    endpoint: self.link.endpoint.clone(),
                    missed,
                })
            }
            Ok(Read::TooSmall(len)) => Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            }),
            // A publisher killed in the middle of an update leaves its memory torn: that is
            // its death, not corruption.
            Err(c) => {
                self.link.poll_peer()?;
                match self.link.ended {
                    Some(end) => Err(self.link.end_error(end)),
                    None => Err(self.link.poison(c)),
                }
            }
        }
    }

    /// A view of a claimed loan, released when dropped.
    fn sample(&self, loan: LoanRef) -> LentSlot {
        let b = &self.borrower.as_ref().expect("a loan was claimed").0;
        LentSlot::new(b.pool.clone(), b.board.clone(), loan)
    }

    /// Receives the next message into `buf` as `mode` allows (a loan is copied, then
    /// released). After the publisher ended, what it had published is still delivered;
    /// then the end is reported.
    pub(crate) fn recv(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        let sample = match self.stash.take() {
            Some(sample) => sample,
            None => match self.next(buf, mode)? {
                Got::Loan(sample) => sample,
                Got::Message(n) => return Ok(n),
                Got::Nothing => unreachable!("`next` waits for a message"),
            },
        };
        self.deliver(sample, buf)
    }

    /// Copies a loan into `buf` and releases it; keeps it for the next call if `buf` is too
    /// small for it.
    fn deliver(&mut self, sample: LentSlot, buf: &mut [u8]) -> Result<usize> {
        if sample.len() > buf.len() {
            let len = sample.len();
            self.stash = Some(sample);
            return Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            });
        }
        let n = sample.len();
        sample.read_at(0, &mut buf[..n]);
        Ok(n)
    }

    /// Receives the next message: the publisher's slot in place for a loan, a copy
    /// otherwise.
    pub(crate) fn recv_sample(&mut self, mode: Mode) -> Result<ShmSample> {
        if let Some(sample) = self.stash.take() {
            return Ok(ShmSample::Lent(sample));
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let got = loop {
            match self.next(&mut scratch, mode) {
                Err(Error::BufferTooSmall { len, .. }) => scratch.resize(len, 0),
                other => break other,
            }
        };
        let sample = match got {
            Ok(Got::Loan(sample)) => Ok(ShmSample::Lent(sample)),
            Ok(Got::Message(n)) => Ok(ShmSample::Copied(scratch[..n].to_vec())),
            Ok(Got::Nothing) => unreachable!("`next` waits for a message"),
            Err(e) => Err(e),
        };
        self.scratch = scratch;
        sample
    }

    /// Waits for the next message or loan as `mode` allows.
    #[inline]
    fn next(&mut self, buf: &mut [u8], mode: Mode) -> Result<Got> {
        // A message already published is taken without setting up a wait (the lag check
        // matters only when the ring looks empty, and the waiting path makes it).
        if self.link.is_usable() {
            match self.attempt(buf, false)? {
                Got::Nothing => {}
                got => return Ok(got),
            }
        }
        self.next_waiting(buf, mode)
    }

    /// [`ShmSubscriber::next`] once the ring looked empty: the wait.
    #[inline(never)]
    fn next_waiting(&mut self, buf: &mut [u8], mode: Mode) -> Result<Got> {
        self.link.usable()?;
        let mut polls = 0u32;
        let (strategy, spin_budget) = (self.wait, self.spin_budget);
        wait::drive(strategy, spin_budget, mode.deadline(), |turn| {
            match turn {
                Turn::Attempt => {
                    polls = polls.wrapping_add(1);
                    match self.attempt(buf, polls.is_multiple_of(POLLS_PER_LAG_CHECK))? {
                        Got::Nothing => {}
                        got => return Ok(Outcome::Done(got)),
                    }
                    self.publish_consumed(true);
                    if self.link.nothing_to_read(mode)? == Idle::Retry {
                        return Ok(Outcome::Again);
                    }
                }
                Turn::CheckPeer => self.link.poll_peer()?,
                Turn::Sleep(t) => {
                    let key = wait::prepare_wait(
                        self.mine.word32(word::RX_SLEEPING),
                        self.publisher.word32(word::DATA_SEQ),
                        self.publisher.light_notify(),
                    );
                    // The re-check after announcing the sleep also looks at the lag.
                    let got = self.attempt(buf, true);
                    if !matches!(got, Ok(Got::Nothing)) {
                        wait::cancel_wait(self.mine.word32(word::RX_SLEEPING));
                        return got.map(Outcome::Done);
                    }
                    let (flag, seq) = (
                        self.mine.word32(word::RX_SLEEPING),
                        self.publisher.word32(word::DATA_SEQ),
                    );
                    wait::sleep(flag, seq, key, t.min(self.sleep_cap), &SharedFutex);
                }
            }
            Ok(Outcome::Pending)
        })
    }

    /// One look at the ring without waiting or syscalls (an async subscriber's step):
    /// `Some(len)` for a message, `None` if there is none yet; after the publisher ended
    /// (as seen by [`ShmSubscriber::check_peer`]) and everything it published was read,
    /// the end.
    #[cfg(feature = "tokio")]
    pub(crate) fn poll(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.link.usable()?;
        let sample = match self.stash.take() {
            Some(sample) => sample,
            None => match self.attempt(buf, true)? {
                Got::Message(n) => return Ok(Some(n)),
                Got::Loan(sample) => sample,
                Got::Nothing => {
                    self.publish_consumed(true);
                    return match self.link.ended {
                        Some(end) => Err(self.link.end_error(end)),
                        None => Ok(None),
                    };
                }
            },
        };
        // A loan is copied, then released, as by `recv`.
        self.deliver(sample, buf).map(Some)
    }

    /// Looks at the control socket (one `poll`); true if the publisher has ended.
    #[cfg(feature = "tokio")]
    pub(crate) fn check_peer(&mut self) -> Result<bool> {
        self.link.poll_peer()?;
        Ok(self.link.ended.is_some())
    }

    /// The flag a waiting subscriber sets to ask the publisher for a wake-up, and whether
    /// the publisher notifies with light barriers (the waiter must run the heavy one).
    #[cfg(feature = "tokio")]
    pub(crate) fn rx_sleeping_flag(&self) -> (&crate::sync::AtomicU32, bool) {
        (
            self.mine.word32(word::RX_SLEEPING),
            self.publisher.light_notify(),
        )
    }

    /// The control socket, for a reactor to watch.
    #[cfg(feature = "tokio")]
    pub(crate) fn control_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.link.control_fd()
    }

    pub(crate) fn close(&mut self) {
        self.link.close();
    }
}

impl Drop for ShmSubscriber {
    fn drop(&mut self) {
        self.close();
    }
}
