//! `shm://` publisher: one broadcast ring in our segment, mapped read-only by every
//! subscriber; each subscriber publishes its read position in its own segment. A background
//! thread accepts subscribers (the send path never makes a syscall for that); the publisher
//! merges them at its next send.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::broadcast::{self, Overflow, Writer};
use super::control::Mode;
use super::control::{self, Control};
use super::handshake::Role;
use super::rendezvous::{listen_side, BoundName, Extras, SharedOffer};
use super::ring::max_payload;
use super::segment::{self, OwnedSegment, PeerSegment};
use super::wait::{self, Schedule, SharedFutex, Step};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// How long the accept thread waits in `poll` before it looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// Sends between two looks at the subscribers' control sockets. A publisher that never
/// waits (`DropOldest`, or `Block` with fast subscribers) finds dead subscribers, and
/// releases their sockets and mappings, only this way.
const SENDS_PER_PEER_CHECK: u32 = 1024;

/// A subscriber as the publisher sees it.
struct Sub {
    pid: i32,
    sock: UnixStream,
    seg: PeerSegment,
    /// Set when it died or published an impossible position: removed at the next chance.
    dropped: bool,
}

/// No subscriber is joining (see [`Incoming::join_floor`]).
const NO_FLOOR: u64 = u64::MAX;

/// Subscribers accepted by the background thread, waiting to be merged.
struct Incoming {
    queue: Mutex<Vec<Sub>>,
    pending: AtomicBool,
    stop: AtomicBool,
    /// While a subscriber is joining: the write position the accept thread read before the
    /// handshake began, a lower bound of where the subscriber starts (it reads the cursor
    /// later). A `Block` publisher evicts nothing at or above it until the subscriber is
    /// merged, so it is never lapped before the publisher knows it. [`NO_FLOOR`] otherwise.
    join_floor: AtomicU64,
}

pub(crate) struct ShmPublisher {
    endpoint: String,
    socket_path: PathBuf,
    seg: OwnedSegment,
    writer: Writer,
    policy: Overflow,
    subs: Vec<Sub>,
    incoming: Arc<Incoming>,
    acceptor: Option<JoinHandle<()>>,
    wait: crate::WaitStrategy,
    spin_budget: Duration,
    max_len: usize,
    sends_since_peer_check: u32,
}

/// The lowest consumed position among live subscribers, validated against what we wrote;
/// a subscriber that claims more is dropped.
fn min_consumed(subs: &mut [Sub], write_pos: u64) -> Option<u64> {
    let mut min = None::<(u64, usize)>;
    for (i, sub) in subs.iter_mut().enumerate().filter(|(_, s)| !s.dropped) {
        let c = sub.seg.load64(segment::OFF_CONSUMED);
        if c > write_pos {
            sub.dropped = true;
            continue;
        }
        if min.is_none_or(|(m, _)| c < m) {
            min = Some((c, i));
        }
    }
    min.map(|(c, _)| c)
}

impl ShmPublisher {
    pub(crate) fn bind(endpoint: String, name: &str, opts: &Options) -> Result<Self> {
        let bound = BoundName::bind(&endpoint, name)?;
        let seg = OwnedSegment::create(opts.ring_capacity)
            .map_err(|e| Error::io(format!("{endpoint}: creating the publisher segment"), e))?;
        let offer = SharedOffer {
            fd: seg
                .fd()
                .try_clone_to_owned()
                .map_err(|e| Error::io(format!("{endpoint}: dup"), e))?,
            capacity: seg.capacity(),
        };
        let incoming = Arc::new(Incoming {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            join_floor: AtomicU64::new(NO_FLOOR),
        });
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
        let acceptor = {
            let (incoming, allowed) = (incoming.clone(), opts.allowed_uids.clone());
            std::thread::Builder::new()
                .name(format!("shmsock-accept {endpoint}"))
                .spawn(move || accept_loop(bound, offer, &own, &allowed, &incoming))
                .map_err(|e| Error::io(format!("{endpoint}: spawning the accept thread"), e))?
        };
        Ok(ShmPublisher {
            writer: Writer::new(seg.capacity()),
            max_len: max_payload(seg.capacity()) as usize,
            endpoint,
            socket_path,
            seg,
            policy: opts.overflow,
            subs: Vec::new(),
            incoming,
            acceptor: Some(acceptor),
            wait: opts.wait,
            spin_budget: opts.spin_budget,
            sends_since_peer_check: 0,
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

    /// Takes in newly accepted subscribers and drops dead ones.
    fn refresh_subscribers(&mut self, check_sockets: bool) {
        // A plain load first: this runs on every Block send, and a swap is a locked RMW.
        if self.incoming.pending.load(Ordering::Relaxed)
            && self.incoming.pending.swap(false, Ordering::Acquire)
        {
            let mut queue = self
                .incoming
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.subs.append(&mut queue);
        }
        if check_sockets {
            for sub in &mut self.subs {
                if !matches!(control::check(&sub.sock), Ok(Control::Alive)) {
                    sub.dropped = true;
                }
            }
        }
        self.subs.retain(|s| !s.dropped);
    }

    /// Live subscribers (checks their sockets).
    pub(crate) fn subscriber_count(&mut self) -> usize {
        self.refresh_subscribers(true);
        self.subs.len()
    }

    fn try_push(&mut self, msg: &[u8]) -> bool {
        let floor = if self.policy == Overflow::Block {
            // Acquire: pairs with the Release stores in `accept_loop`. A cleared floor means
            // its subscriber is queued: merge it now, so one of the two protects it.
            let floor = self.incoming.join_floor.load(Ordering::Acquire);
            self.refresh_subscribers(false);
            floor
        } else {
            NO_FLOOR
        };
        let cursor = self.seg.cursor();
        let write_pos = cursor.write_pos.load(Ordering::Relaxed);
        let subs = &mut self.subs;
        let pushed = self.writer.try_push(
            &self.seg,
            &cursor,
            self.policy,
            || match (min_consumed(subs, write_pos), floor) {
                (min, NO_FLOOR) => min,
                (min, floor) => Some(min.map_or(floor, |m| m.min(floor))),
            },
            msg,
        );
        if pushed == broadcast::Push::Done {
            wait::notify_any(
                self.subs
                    .iter()
                    .map(|s| s.seg.word32(segment::OFF_RX_SLEEPING)),
                self.seg.word32(segment::OFF_DATA_SEQ),
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
        let min = min_consumed(&mut self.subs, write_pos)?;
        self.subs
            .iter()
            .position(|s| !s.dropped && s.seg.load64(segment::OFF_CONSUMED) == min)
    }

    pub(crate) fn send(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        if msg.len() > self.max_len {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max_len,
            });
        }
        self.sends_since_peer_check += 1;
        let check = self.sends_since_peer_check >= SENDS_PER_PEER_CHECK;
        if check {
            self.sends_since_peer_check = 0;
        }
        self.refresh_subscribers(check);
        let started = Instant::now();
        let mut schedule = None;
        loop {
            if self.try_push(msg) {
                return Ok(());
            }
            let deadline = match mode {
                Mode::Try => {
                    self.refresh_subscribers(true);
                    if self.try_push(msg) {
                        return Ok(());
                    }
                    return Err(Error::WouldBlock);
                }
                Mode::Until(d) => Some(d),
                Mode::Block => None,
            };
            match schedule
                .get_or_insert_with(|| Schedule::new(self.wait, self.spin_budget, deadline))
                .next()
            {
                Step::Spin => std::hint::spin_loop(),
                // Subscriber death never blocks us: a dead one is dropped here.
                Step::CheckPeer => self.refresh_subscribers(true),
                Step::Sleep(t) => {
                    let Some(i) = self.slowest() else { continue };
                    let (flag, seq) = (
                        self.seg.word32(segment::OFF_TX_SLEEPING),
                        self.subs[i].seg.word32(segment::OFF_SPACE_SEQ),
                    );
                    let key = wait::prepare_wait(flag, seq, self.subs[i].seg.light_notify());
                    if self.try_push(msg) {
                        wait::cancel_wait(self.seg.word32(segment::OFF_TX_SLEEPING));
                        return Ok(());
                    }
                    let (flag, seq) = (
                        self.seg.word32(segment::OFF_TX_SLEEPING),
                        self.subs[i].seg.word32(segment::OFF_SPACE_SEQ),
                    );
                    wait::sleep(flag, seq, key, t, &SharedFutex);
                }
                Step::TimedOut => {
                    let pid = self.slowest().map_or(0, |i| self.subs[i].pid);
                    return Err(Error::SlowSubscriber {
                        endpoint: self.endpoint.clone(),
                        pid,
                        waited: started.elapsed(),
                    });
                }
            }
        }
    }
}

impl Drop for ShmPublisher {
    fn drop(&mut self) {
        self.incoming.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        // Subscribers accepted since our last send are still queued: they get the goodbye
        // too, or they would see a bare hang-up and report PeerGone.
        self.refresh_subscribers(false);
        for sub in &self.subs {
            control::say_bye(&sub.sock);
        }
    }
}

/// The accept thread: handshakes with subscribers and queues them for the publisher.
fn accept_loop(
    bound: BoundName,
    offer: SharedOffer,
    own: &PeerSegment,
    allowed: &[u32],
    incoming: &Incoming,
) {
    let endpoint = bound.endpoint().to_owned();
    while !incoming.stop.load(Ordering::Relaxed) {
        let sock = match bound.accept(Some(ACCEPT_POLL)) {
            Ok(sock) => sock,
            Err(Error::TimedOut) => continue,
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        // Before the subscriber can read the cursor (it does after our hello), pin where it
        // will start at the latest. Our own cursor is consistent; 0 would only be stricter.
        let floor = own
            .cursor()
            .snapshot(own.capacity_bytes())
            .map_or(0, |s| s.write_pos);
        incoming.join_floor.store(floor, Ordering::SeqCst);
        let handshake = listen_side(
            &endpoint,
            sock,
            allowed,
            (Role::Publisher, Role::Subscriber),
            Extras::default(),
            || {
                Ok(SharedOffer {
                    fd: offer.fd.as_fd().try_clone_to_owned()?,
                    capacity: offer.capacity,
                })
            },
        );
        // A refused or broken subscriber is simply not added; it got its error.
        if let Ok((peer, _)) = handshake {
            let sub = Sub {
                pid: peer.pid,
                sock: peer.sock,
                seg: peer.segment,
                dropped: false,
            };
            incoming
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(sub);
            incoming.pending.store(true, Ordering::Release);
        }
        // Release: the publisher that sees the floor cleared also sees the queued subscriber.
        incoming.join_floor.store(NO_FLOOR, Ordering::Release);
    }
}
