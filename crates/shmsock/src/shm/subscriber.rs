//! `shm://` subscriber: reads the publisher's broadcast ring through a read-only mapping and
//! publishes its read position in its own segment.

use std::time::Duration;

use super::broadcast::{Read, Reader, Snapshot};
use super::control::{Idle, Link, Mode};
use super::handshake::Role;
use super::rendezvous::{connect_side, Extras};
use super::ring::{Corruption, RING_CAPACITY_MIN_BYTES};
use super::segment::{self, OwnedSegment, PeerSegment};
use super::wait::{self, Schedule, SharedFutex, Step, FUTEX_SLEEP_MAX};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::sync::Ordering;

/// Empty polls between two looks at the publisher's cursor (to notice eviction).
const POLLS_PER_LAG_CHECK: u32 = 64;

pub(crate) struct ShmSubscriber {
    link: Link,
    mine: OwnedSegment,
    publisher: PeerSegment,
    reader: Reader,
    wait: crate::WaitStrategy,
    spin_budget: Duration,
    sleep_cap: Duration,
}

/// What one attempt at receiving gave.
enum Got {
    Message(usize),
    Nothing,
}

impl ShmSubscriber {
    pub(crate) fn connect(endpoint: String, name: &str, opts: &Options) -> Result<Self> {
        let mut start: Option<std::result::Result<Snapshot, Corruption>> = None;
        let (peer, mine) = connect_side(
            &endpoint,
            name,
            &opts.allowed_uids,
            (Role::Subscriber, Role::Publisher),
            Extras::default(),
            |publisher| {
                // Start at the next message: the publisher's current write position, which we
                // publish as consumed before it even knows us (so `Block` waits for us).
                let snapshot = publisher.cursor().snapshot(publisher.capacity_bytes());
                let pos = snapshot.as_ref().map_or(0, |s| s.write_pos);
                start = Some(snapshot);
                let mine = OwnedSegment::create(RING_CAPACITY_MIN_BYTES)?;
                mine.word64(segment::OFF_CONSUMED)
                    .store(pos, Ordering::Release);
                Ok(mine)
            },
        )?;
        let start = match start.expect("set by the handshake") {
            Ok(s) => s,
            Err(c) => {
                return Err(Error::Corrupt {
                    endpoint,
                    pid: peer.pid,
                    what: c.0,
                })
            }
        };
        let sleep_cap = if peer.segment.light_notify() && !crate::sys::heavy_barrier() {
            Duration::from_millis(1)
        } else {
            FUTEX_SLEEP_MAX
        };
        Ok(ShmSubscriber {
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

    fn publish_consumed(&mut self, idle: bool) {
        if let Some(pos) = self.reader.publication_due(idle) {
            // Release: pairs with the publisher's Acquire load in `min_consumed`.
            self.mine
                .word64(segment::OFF_CONSUMED)
                .store(pos, Ordering::Release);
            wait::notify(
                self.publisher.word32(segment::OFF_TX_SLEEPING),
                self.mine.word32(segment::OFF_SPACE_SEQ),
                self.mine.light_notify(),
                &SharedFutex,
            );
        }
    }

    /// One look at the ring.
    fn attempt(&mut self, buf: &mut [u8], check_lag: bool) -> Result<Got> {
        let cursor = self.publisher.cursor();
        match self.reader.read(&self.publisher, &cursor, buf, check_lag) {
            Ok(Read::Message(n)) => {
                self.publish_consumed(false);
                Ok(Got::Message(n))
            }
            Ok(Read::Empty) => Ok(Got::Nothing),
            Ok(Read::Lagged(missed)) => {
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
            Err(c) => Err(self.link.poison(c)),
        }
    }

    /// Receives the next message into `buf` as `mode` allows. After the publisher ended,
    /// what it had published is still delivered; then the end is reported.
    pub(crate) fn recv(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        self.link.usable()?;
        let mut schedule = None;
        let mut polls = 0u32;
        // Set between announcing sleep and sleeping: the key and the sleep length.
        let mut sleeping: Option<(u32, Duration)> = None;
        loop {
            polls = polls.wrapping_add(1);
            let check_lag = sleeping.is_some() || polls % POLLS_PER_LAG_CHECK == 0;
            let got = self.attempt(buf, check_lag);
            if let Some((key, t)) = sleeping.take() {
                if matches!(got, Ok(Got::Nothing)) {
                    let (flag, seq) = (
                        self.mine.word32(segment::OFF_RX_SLEEPING),
                        self.publisher.word32(segment::OFF_DATA_SEQ),
                    );
                    wait::sleep(flag, seq, key, t.min(self.sleep_cap), &SharedFutex);
                    continue;
                }
                wait::cancel_wait(self.mine.word32(segment::OFF_RX_SLEEPING));
            }
            if let Got::Message(n) = got? {
                return Ok(n);
            }
            self.publish_consumed(true);
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
                    let key = wait::prepare_wait(
                        self.mine.word32(segment::OFF_RX_SLEEPING),
                        self.publisher.word32(segment::OFF_DATA_SEQ),
                        self.publisher.light_notify(),
                    );
                    sleeping = Some((key, t));
                }
                Step::TimedOut => return Err(Error::TimedOut),
            }
        }
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
