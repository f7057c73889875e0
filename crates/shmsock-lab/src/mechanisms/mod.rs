//! The IPC mechanisms the lab measures, all behind one small trait.
//!
//! A [`Mechanism`] prepares a [`Pair`] of [`Side`]s in the parent, *before* the fork: shared
//! mappings, pipes, sockets, a bound listener. After the fork the parent keeps `pair.parent`, the
//! child keeps `pair.child`; each calls [`Side::start`] (where a connection-oriented mechanism
//! connects or accepts) and then only [`Side::send`] and [`Side::recv`].
//!
//! Two traffic patterns cover the experiments:
//!
//! ```text
//! Pattern::PingPong   parent --msg--> child --echo--> parent      (latency)
//! Pattern::Stream     child  --msg--> parent, one way, back to back  (throughput)
//! ```
//!
//! [`dbus`] needs a program running beside the two sides: it starts a `dbus-daemon` of its own
//! on first use and stops it when the mechanism is dropped, at the end of the run.
//!
//! [`libzmq`] is not a mechanism but the reference the `network` experiment measures shmsock's
//! network transports against: libzmq loaded at run time, behind a small safe wrapper.
//!
//! Messages have the fixed size given to [`Mechanism::setup`]; byte-stream mechanisms (pipe,
//! Unix stream, TCP) rely on it for framing, reading exactly that many bytes per message.

pub mod cas_ring;
pub mod data_path;
pub mod dbus;
pub mod eventfd;
mod fd_msg;
pub mod fd_stream;
pub mod fifo;
pub mod floor;
pub mod futex;
pub mod grpc;
mod lanes;
pub mod latency_only;
pub mod libzmq;
pub mod loan;
pub mod locked_ring;
pub mod mmap_durable;
mod named_sem;
pub mod offset;
pub mod pipe;
pub mod posix_mq;
pub mod posix_sem;
pub(crate) mod pshared_mutex;
pub mod raw_ring;
pub mod shm_open;
pub mod shmsock;
pub mod signal;
pub mod signalfd;
mod spinlock;
pub mod sysv_mq;
pub mod tcp;
pub mod udp;
pub mod uds_msg;
pub mod uds_stream;

use std::time::{Duration, Instant};

use crate::error::LabError;

/// Capacity of the shared-memory rings (the textbook ring and shmsock's), in bytes; the same for
/// both so their throughput rows compare like with like.
pub const RING_BYTES: usize = 1 << 20;

/// How long a side spins on shared memory without seeing progress before it gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Which way messages flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// The parent sends, the child echoes every message back.
    PingPong,
    /// The child sends, the parent receives; nothing flows back.
    Stream,
}

/// One IPC mechanism.
pub trait Mechanism {
    /// The name used in reports and filters (`floor`, `raw-ring`, `pipe`, ...).
    fn name(&self) -> &'static str;

    /// Whether the mechanism can run `pattern` (`floor` is latency only).
    fn supports(&self, pattern: Pattern) -> bool {
        let _ = pattern;
        true
    }

    /// How many bytes of a `size`-byte message actually travel: `size`, except for `floor`,
    /// which moves one 8-byte counter however large the message.
    fn payload_len(&self, size: usize) -> usize {
        size
    }

    /// Largest message the mechanism carries here; the experiments report larger sizes as
    /// unavailable instead of trying them.
    fn max_message(&self) -> usize {
        usize::MAX
    }

    /// What a reader of its rows should know about where it ran (the filesystem of a file),
    /// printed under the tables and kept in the rows; the default has nothing to say.
    fn note(&self) -> Option<String> {
        None
    }

    /// Why the mechanism cannot run on this machine at all (a program it needs is not
    /// installed), if it cannot: its rows are then reported unavailable with this reason
    /// before any is tried. The default can always run.
    fn skipped(&self) -> Option<String> {
        None
    }

    /// Creates both sides for messages of exactly `size` bytes, before the fork.
    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError>;
}

/// Both sides of a mechanism, created before the fork.
pub struct Pair {
    /// Kept by the parent (ping side; receiving side of a stream).
    pub parent: Box<dyn Side>,
    /// Kept by the child (pong side; sending side of a stream).
    pub child: Box<dyn Side>,
}

/// One side of a pair, used by one process after the fork.
pub trait Side {
    /// Finishes setup after the fork (connect, accept); the default does nothing.
    fn start(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    /// Gives up this side in the process that does not use it (right after the fork); the
    /// default drops it. A side whose `Drop` would undo something the other process still
    /// needs (a listener unlinking its name) overrides this to close less.
    fn abandon(self: Box<Self>) {
        drop(self);
    }

    /// Called by the latency experiment before every round trip, outside the timed interval;
    /// the default does nothing (`shm-cold` evicts the next payload from the caches here).
    fn prepare_round_trip(&mut self) {}

    /// Called in a process whose side failed, before the side is dropped: a mechanism whose
    /// peer would otherwise wait forever (no end of file, no timeout) wakes it with an error
    /// here. The default does nothing.
    fn break_channel(&mut self) {}

    /// Sends one message (blocks or spins while the channel is full).
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError>;

    /// Receives one message into `buf` and returns its length (blocks or spins until one
    /// arrives).
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError>;
}

/// A queue that several producer processes feed and one consumer process drains (the
/// contention experiment). The sides are [`Side`]s: producers only send, the consumer only
/// receives.
pub trait FanIn {
    /// The name used in reports (`cas-ring`, `mutex-ring`, `posix-mq`).
    fn name(&self) -> &'static str;

    /// Largest message the queue carries here.
    fn max_message(&self) -> usize {
        usize::MAX
    }

    /// Creates the consumer and `producers` producer sides for `size`-byte messages, before
    /// the forks.
    fn setup_fan_in(&self, producers: usize, size: usize) -> Result<FanInSides, LabError>;
}

/// The sides of a [`FanIn`] queue, created before the forks.
pub struct FanInSides {
    /// Kept by the parent: receives from every producer.
    pub consumer: Box<dyn Side>,
    /// One per producer child.
    pub producers: Vec<Box<dyn Side>>,
}

/// Every mechanism, in report order.
pub fn all() -> Vec<Box<dyn Mechanism>> {
    let [durable_1, durable_64, durable_4096] = mmap_durable::MmapFileDurable::rows();
    vec![
        Box::new(floor::FLOOR),
        Box::new(raw_ring::RawRing::anonymous()),
        Box::new(raw_ring::RawRing::cold()),
        Box::new(raw_ring::RawRing::mapped_file()),
        Box::new(shm_open::ShmOpen),
        Box::new(durable_1),
        Box::new(durable_64),
        Box::new(durable_4096),
        Box::new(shmsock::Shmsock::busy_poll()),
        Box::new(shmsock::Shmsock::adaptive()),
        Box::new(shmsock::Shmsock::blocking()),
        Box::new(futex::FUTEX),
        Box::new(posix_sem::PosixSem),
        Box::new(eventfd::EVENTFD),
        Box::new(signal::SIGNAL),
        Box::new(signalfd::SIGNALFD),
        Box::new(pipe::PIPE),
        Box::new(fifo::FIFO),
        Box::new(uds_stream::UDS_STREAM),
        Box::new(uds_msg::UdsMsg::dgram()),
        Box::new(uds_msg::UdsMsg::seqpacket()),
        Box::new(tcp::TCP),
        Box::new(udp::UDP),
        Box::new(grpc::GRPC_UDS),
        Box::new(grpc::GRPC_TCP),
        Box::new(dbus::Dbus::new()),
        Box::new(posix_mq::PosixMq),
        Box::new(sysv_mq::SysvMq),
    ]
}

/// The queues the sync-tax and contention experiments measure beyond [`all`]: the
/// lock-guarded rings and the multi-producer CAS ring (not latency/throughput rows).
pub fn queues() -> Vec<Box<dyn Mechanism>> {
    vec![
        Box::new(locked_ring::LockedRing::spinlock()),
        Box::new(locked_ring::LockedRing::mutex()),
        Box::new(locked_ring::LockedRing::mutex_polling()),
        Box::new(locked_ring::LockedRing::named_semaphore()),
        Box::new(cas_ring::CasRing),
    ]
}

/// The names of [`all`], in report order.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|m| m.name()).collect()
}

/// The mechanism called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Mechanism>, LabError> {
    all()
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| LabError::UnknownMechanism {
            name: name.to_string(),
            known: names().join(", "),
        })
}

/// The mechanisms `filter` names: the one called `filter`, or the family of rows whose names
/// are `filter/...` (`mmap-file-durable` selects `mmap-file-durable/1`, `/64` and `/4096`).
pub fn by_filter(filter: &str) -> Result<Vec<Box<dyn Mechanism>>, LabError> {
    let selected: Vec<_> = all()
        .into_iter()
        .filter(|m| selects(filter, m.name()))
        .collect();
    if selected.is_empty() {
        return Err(LabError::UnknownMechanism {
            name: filter.to_string(),
            known: names().join(", "),
        });
    }
    Ok(selected)
}

/// Whether `filter` selects the mechanism called `name`: the same name, or its family.
pub fn selects(filter: &str, name: &str) -> bool {
    name == filter
        || name
            .strip_prefix(filter)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Spins until `poll` yields a value; yields the CPU now and then (so a peer sharing this CPU
/// gets to run) and fails with [`LabError::Stalled`] after [`STALL_TIMEOUT`] without progress.
///
/// The fast path is one call of `poll`; the clock is read only every few thousand spins.
#[inline]
pub(crate) fn spin_until<T>(
    what: &'static str,
    mut poll: impl FnMut() -> Option<T>,
) -> Result<T, LabError> {
    const SPINS_PER_CHECK: u32 = 1 << 12;
    if let Some(value) = poll() {
        return Ok(value);
    }
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    loop {
        std::hint::spin_loop();
        if let Some(value) = poll() {
            return Ok(value);
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(SPINS_PER_CHECK) {
            rustix::thread::sched_yield();
            let now = Instant::now();
            let waited = now - *since.get_or_insert(now);
            if waited > STALL_TIMEOUT {
                return Err(LabError::Stalled { what, waited });
            }
        }
    }
}

/// Sleeps until `attempt` yields a value: each `attempt` is one bounded wait in the kernel (a
/// slice of a second or less) that returns `None` if it ended empty-handed; fails with
/// [`LabError::Stalled`] once [`STALL_TIMEOUT`] has passed since the first.
#[inline]
pub(crate) fn sleep_until<T>(
    what: &'static str,
    mut attempt: impl FnMut() -> Result<Option<T>, LabError>,
) -> Result<T, LabError> {
    let started = Instant::now();
    loop {
        if let Some(value) = attempt()? {
            return Ok(value);
        }
        if started.elapsed() > STALL_TIMEOUT {
            return Err(LabError::Stalled {
                what,
                waited: started.elapsed(),
            });
        }
    }
}

/// Fewest slots a shared-memory ring has, however large its messages.
pub(crate) const MIN_RING_SLOTS: usize = 8;

/// Where the slots of a shared-memory ring (`raw-ring`, `cas-ring`, the locked rings) lie in its
/// region: `count` slots of `stride` bytes from offset `FIRST` (a constant, so the offset
/// arithmetic in the timed loops is what it would be written out by hand).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots<const FIRST: usize> {
    /// How many: a power of two.
    pub(crate) count: usize,
    /// Bytes from one slot to the next.
    pub(crate) stride: usize,
}

impl<const FIRST: usize> Slots<FIRST> {
    /// The slots of a ring of `size`-byte messages, `stride` bytes each: enough for
    /// [`RING_BYTES`] of messages (at least [`MIN_RING_SLOTS`]), rounded up to a power of two.
    pub(crate) fn for_messages(size: usize, stride: usize) -> Self {
        let count = (RING_BYTES / size.max(1))
            .max(MIN_RING_SLOTS)
            .next_power_of_two();
        Self { count, stride }
    }

    /// Bytes the region needs: up to the end of the last slot.
    pub(crate) fn end(&self) -> usize {
        FIRST + self.count * self.stride
    }

    /// Offset of the slot of position `pos`. `count` is a power of two, so the mask keeps the
    /// index below it (truncating the `u64` position first is fine: the mask only keeps its
    /// low bits anyway).
    #[inline]
    pub(crate) fn at(&self, pos: u64) -> usize {
        FIRST + (pos as usize & (self.count - 1)) * self.stride
    }
}

/// For a libc call that just failed: `Ok(None)` (try again) if `errno` is one of `again`, else
/// the error, as [`LabError::Os`] of `what`.
pub(crate) fn again_or_fail<T>(
    what: &'static str,
    again: &[libc::c_int],
) -> Result<Option<T>, LabError> {
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(code) if again.contains(&code) => Ok(None),
        _ => Err(LabError::Os { what, source: err }),
    }
}

/// The number in `/proc/sys/{name}` (`kernel/msgmax`, `fs/mqueue/msg_max`), or `default` when
/// it cannot be read.
pub(crate) fn sysctl(name: &str, default: usize) -> usize {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// The first `size` bytes of `buf`, where a `size`-byte message is received; fails with
/// [`LabError::WrongSize`] if `buf` is shorter.
#[inline]
pub(crate) fn message_buf(buf: &mut [u8], size: usize) -> Result<&mut [u8], LabError> {
    let len = buf.len();
    buf.get_mut(..size).ok_or(LabError::WrongSize { len, size })
}

/// Fails with [`LabError::WrongSize`] unless `len == size`.
pub(crate) fn check_len(len: usize, size: usize) -> Result<(), LabError> {
    if len == size {
        Ok(())
    } else {
        Err(LabError::WrongSize { len, size })
    }
}
