//! The experiments: what each side of a pair does, and how long.
//!
//! - [`latency`]: ping-pong round trips, one timed per sample into an HDR histogram.
//! - [`throughput`]: the child streams sequence-numbered messages, the parent receives and
//!   checks them and times first to last.
//! - `integrity`: a short, untimed pass that proves a mechanism delivers every byte intact
//!   at several sizes, before any number of it is believed.
//! - [`sync_tax`]: the Comparison's synchronisation tax: one 4 KiB SPSC stream through queues
//!   guarded by nothing (lock-free), a spinlock, a process-shared mutex, and a named POSIX
//!   semaphore.
//! - [`contention`]: the Comparison's producers 1/2/4/8 into one consumer.
//! - [`fanout`]: one shmsock publisher process to 1/2/4 subscriber processes.
//! - [`bridge`]: one-way latency publisher → subscriber over shm://, tcp:// and through a
//!   `shmsock bridge` process.
//! - [`network`]: shmsock's `tcp://` and `unix://` against libzmq (loaded at run time) in the
//!   same run: PAIR and PUB/SUB streams and one-way latency, NULL and CURVE security.
//! - [`serialization`]: the Communication Costs' 1 KiB struct, postcard vs JSON.
//! - [`scale`]: the Communication Costs' one million messages: threads vs processes.
//! - [`python`]: the IPC a Python program reaches for (multiprocessing, pyzmq, the shmsock
//!   package), a Python interpreter on both sides, run by a driver script.
//! - [`crash`]: what a SIGKILL leaves: a named shared-memory object in `/dev/shm`, and the
//!   messages a killed writer put in a mapped file (with and without `msync`).
//! - [`bugs`]: the reference documents' shared-memory bugs (a mutex without
//!   `PTHREAD_PROCESS_SHARED`, a `strcpy` overflow, a holder that dies, a torn read, a pointer
//!   in shared memory) made to happen in naive code, next to shmsock doing the same job.
//! - [`setup`]: what one connection costs: connect + first message answered + close, over
//!   shm://, shmsock's unix:// and tcp://, and plain Unix and TCP sockets.
//! - [`costs`]: the Communication Costs' single operations: a load in and out of the cache
//!   (shared and private memory), a process-shared mutex uncontended and contended, and a
//!   1 KiB message one way over a Unix socket, TCP and shared memory.
//! - [`upgrade`]: a `tcp://` subscriber on this machine that moved to its publisher's
//!   shared-memory ring by itself, against the same one kept on TCP and `shm://` direct.
//!
//! Each experiment module owns its measurement, its row type (serialised into `report.json`),
//! its table (a `table::Table`) and its plot (a `chart::Chart`); the `report` only
//! collects them. The experiments build on the kit below them: `process`, [`crate::stats`],
//! `table`, `chart`, `format` and [`crate::claims`].
//!
//! Every message carries its sequence number in its first 8 bytes (little endian), and both
//! sides touch the payload, so no mechanism is timed moving bytes nobody looks at.

pub mod bridge;
pub mod bugs;
pub mod contention;
pub mod costs;
pub mod crash;
pub mod fanout;
pub(crate) mod integrity;
pub mod latency;
pub mod network;
pub(crate) mod pair;
pub mod python;
pub mod scale;
pub mod serialization;
pub mod setup;
pub mod sync_tax;
pub mod throughput;
pub mod upgrade;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::time::{clock_gettime, ClockId};

use crate::error::LabError;
use crate::mechanisms::MIN_RING_SLOTS;
use crate::options::Mode;
use crate::process::{
    thread_rw_syscalls, thread_usage, wait_until, ChildStats, Pause, ThreadUsage,
};
use crate::shared::SharedRegion;

/// Sequence number that tells the peer the experiment is over (it is echoed, then both stop).
pub(crate) const SEQ_STOP: u64 = u64::MAX;

/// Extra life the child's watchdog allows beyond an experiment's time budget.
const WATCHDOG_MARGIN: Duration = Duration::from_secs(30);

/// How many iterations an experiment runs: up to `iters`, or until `max_time` has passed,
/// whichever comes first (kernel mechanisms are ~500x slower than shared memory, so a time
/// cap keeps them from dominating the run while the fast ones still get many samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Untimed iterations before measuring (caches, page faults, CPU frequency).
    pub warmup_iters: u64,
    /// Cap on warm-up time.
    pub warmup_time: Duration,
    /// Most measured iterations.
    pub iters: u64,
    /// Cap on measured time.
    pub max_time: Duration,
}

impl Budget {
    /// Life allowed to the child of an experiment run with this budget.
    pub(crate) fn watchdog(&self) -> Duration {
        self.warmup_time + self.max_time + WATCHDOG_MARGIN
    }
}

/// The budgets of one lab run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Ping-pong latency (each placement: different CPUs, same CPU).
    pub latency: Budget,
    /// Streaming throughput of small messages (below [`Budgets::BULK_FROM_BYTES`]):
    /// iterations are messages.
    pub throughput: Budget,
    /// Bytes moved per bulk throughput row (messages of [`Budgets::BULK_FROM_BYTES`] or more):
    /// the reference documents move 1 GiB (262,144 × 4 KiB, 1,024 × 1 MiB).
    pub bulk_bytes: u64,
    /// Time cap of one bulk throughput row.
    pub bulk_max_time: Duration,
    /// Scale of the other experiments (sync tax, contention, serialization, 1M messages):
    /// messages per run are their reference counts divided by this.
    pub divisor: u64,
    /// Time cap of one run of the sync-tax and contention experiments (the 1M-message runs
    /// get four times this; serialization a tenth per format and direction).
    pub experiment_max_time: Duration,
}

impl Budgets {
    /// The budgets of `mode`.
    pub fn of(mode: Mode) -> Budgets {
        match mode {
            Mode::Quick => Budgets::QUICK,
            Mode::Default => Budgets::DEFAULT,
            Mode::Full => Budgets::FULL,
        }
    }

    /// Messages this large or larger are measured by volume ([`Budgets::bulk_bytes`]).
    pub const BULK_FROM_BYTES: usize = 4096;

    /// The default run: the reference documents' volumes, a few minutes in all on 2 CPUs.
    pub const DEFAULT: Budgets = Budgets {
        latency: Budget {
            warmup_iters: 20_000,
            warmup_time: Duration::from_millis(300),
            iters: 2_000_000,
            max_time: Duration::from_millis(1500),
        },
        throughput: Budget {
            warmup_iters: 50_000,
            warmup_time: Duration::from_millis(300),
            iters: 100_000_000,
            max_time: Duration::from_millis(1500),
        },
        bulk_bytes: 1 << 30,
        bulk_max_time: Duration::from_secs(15),
        divisor: 1,
        experiment_max_time: Duration::from_secs(4),
    };

    /// Longer latency and small-message runs, for stable tails.
    pub const FULL: Budgets = Budgets {
        latency: Budget {
            warmup_iters: 50_000,
            warmup_time: Duration::from_secs(1),
            iters: 10_000_000,
            max_time: Duration::from_secs(5),
        },
        throughput: Budget {
            warmup_iters: 100_000,
            warmup_time: Duration::from_secs(1),
            iters: 1_000_000_000,
            max_time: Duration::from_secs(5),
        },
        bulk_bytes: 1 << 30,
        bulk_max_time: Duration::from_secs(60),
        divisor: 1,
        experiment_max_time: Duration::from_secs(15),
    };

    /// The whole lab in under a minute: indicative numbers, not stable ones.
    pub const QUICK: Budgets = Budgets {
        latency: Budget {
            warmup_iters: 2_000,
            warmup_time: Duration::from_millis(30),
            iters: 100_000,
            max_time: Duration::from_millis(150),
        },
        throughput: Budget {
            warmup_iters: 5_000,
            warmup_time: Duration::from_millis(30),
            iters: 10_000_000,
            max_time: Duration::from_millis(150),
        },
        bulk_bytes: 32 << 20,
        bulk_max_time: Duration::from_secs(2),
        divisor: 50,
        experiment_max_time: Duration::from_millis(600),
    };

    /// Laps of a bulk row's ring sent before its clock starts. A new shm:// connection's
    /// first lap pays a page fault per 4 KiB page its ring's messages touch (about 1 ms per
    /// 1 MiB message on our VMs), and the next few laps still ran 1.5-2.5x slower than the
    /// steady stream (per-message times of a 1 MiB stream over an 8 MiB ring: 1-1.5 ms,
    /// then 40-75 µs for a lap or so, then 26-30 µs). With four warm-up messages, a quick
    /// run's 32 timed 1 MiB messages streamed at 0.15-0.25x the raw ring in every wait
    /// strategy; with 32 (four laps), 0.76-0.89x paired in three runs (and 0.42-0.64x with
    /// four over the 4 MiB ring shmsock had before). A default run sends 64 anyway.
    pub const BULK_WARMUP_LAPS: u64 = 4;

    /// The budget of a throughput row of `size`-byte messages: time-capped for small
    /// messages, [`Budgets::bulk_bytes`] worth of messages for bulk, plus 1/16 of that as
    /// warm-up, and at least [`Self::BULK_WARMUP_LAPS`] laps of the deepest ring a mechanism gets
    /// for bulk messages (eight messages: the raw ring's slots, and as many
    /// bytes for shmsock's).
    pub fn throughput_for(&self, size: usize) -> Budget {
        if size < Self::BULK_FROM_BYTES {
            return self.throughput;
        }
        let iters = (self.bulk_bytes / size.max(1) as u64).max(8);
        Budget {
            warmup_iters: (iters / 16).max(Self::BULK_WARMUP_LAPS * MIN_RING_SLOTS as u64),
            warmup_time: Duration::from_secs(1),
            iters,
            max_time: self.bulk_max_time,
        }
    }
}

/// Writes `seq` into the first 8 bytes of `msg` (which the experiments size to at least 8).
#[inline]
pub(crate) fn put_seq(msg: &mut [u8], seq: u64) {
    if let Some(head) = msg.first_chunk_mut::<8>() {
        *head = seq.to_le_bytes();
    }
}

/// The sequence number in the first 8 bytes of `msg`, if it has 8 bytes.
#[inline]
pub(crate) fn get_seq(msg: &[u8]) -> Option<u64> {
    msg.first_chunk::<8>().map(|b| u64::from_le_bytes(*b))
}

/// The time now, ns of `CLOCK_MONOTONIC`: the clock every process of the lab shares, so a
/// time read in one process and one read in another can be subtracted (one-way latency).
#[inline]
pub(crate) fn now_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// CPU time consumed so far by the calling thread.
pub(crate) fn thread_cpu_time() -> Duration {
    let ts = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Wall, CPU and system time of a window, started with [`Window::start`], and the thread's
/// context switches and read/write system calls in it (see [`ChildStats`]).
pub(crate) struct Window {
    wall: Instant,
    cpu: Duration,
    usage: ThreadUsage,
    rw_syscalls: Option<u64>,
}

impl Window {
    pub(crate) fn start() -> Self {
        // The counters' file first, so that reading it is outside the times; then the times
        // in the order `stop` reads them.
        let rw_syscalls = thread_rw_syscalls();
        let wall = Instant::now();
        let cpu = thread_cpu_time();
        Self {
            wall,
            cpu,
            usage: thread_usage(),
            rw_syscalls,
        }
    }

    /// The wall, CPU and system time elapsed since `start`, and the context switches and
    /// read/write system calls made since.
    pub(crate) fn stop(&self) -> ChildStats {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let wall_ns = ns(self.wall.elapsed());
        let cpu_ns = ns(thread_cpu_time().saturating_sub(self.cpu));
        let usage = thread_usage();
        // The counters' own read at `start` is the one call of this window's that is not the
        // experiment's.
        let rw_syscalls = self
            .rw_syscalls
            .zip(thread_rw_syscalls())
            .map(|(before, after)| after.saturating_sub(before).saturating_sub(1));
        ChildStats {
            wall_ns,
            cpu_ns,
            sys_ns: ns(usage.sys.saturating_sub(self.usage.sys)),
            voluntary_switches: usage.voluntary.saturating_sub(self.usage.voluntary),
            involuntary_switches: usage.involuntary.saturating_sub(self.usage.involuntary),
            rw_syscalls,
        }
    }
}

/// How long a process waits for another one to bind its listener ([`wait_bound`]).
const BIND_TIMEOUT: Duration = Duration::from_secs(10);

/// The port of a `tcp://HOST:PORT` endpoint.
pub(crate) fn port_of(endpoint: &str) -> Result<u16, LabError> {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| LabError::Integrity {
            detail: format!("no port in {endpoint}"),
        })
}

/// Tells the other processes of an experiment, through the word at `offset` of `control`,
/// that a listener is bound: its TCP `port`, or 1 for a listener without one (0: not yet).
pub(crate) fn publish_bound(control: &SharedRegion, offset: usize, port: Option<u16>) {
    // Release: pairs with the Acquire load in `wait_bound`; the binding happened before.
    control
        .atomic_u64(offset)
        .store(port.map_or(1, u64::from), Ordering::Release);
}

/// Waits until another process has said at `offset` that its listener is bound
/// ([`publish_bound`]) and returns the port it published (1 for a listener without one).
pub(crate) fn wait_bound(
    control: &SharedRegion,
    offset: usize,
    what: &'static str,
    pause: Pause,
    failed: impl Fn() -> Option<&'static str>,
) -> Result<u16, LabError> {
    let mut word = 0;
    wait_until(
        what,
        BIND_TIMEOUT,
        pause,
        // Acquire: pairs with the Release store in `publish_bound`.
        || {
            word = control.atomic_u64(offset).load(Ordering::Acquire);
            word != 0
        },
        failed,
    )?;
    u16::try_from(word).map_err(|_| LabError::Integrity {
        detail: format!("impossible port {word}"),
    })
}

/// CPU time of every process of a run (`one`, and `others`, each over its own window) per
/// message delivered, in ns: what a pattern costs the machine per message. On a machine with
/// fewer CPUs than processes, msgs/s measures the scheduler; this still measures the work.
pub(crate) fn cpu_ns_per_message(one: &ChildStats, others: &[ChildStats], delivered: u64) -> f64 {
    let cpu_ns: u64 = others.iter().map(|s| s.cpu_ns).sum::<u64>() + one.cpu_ns;
    cpu_ns as f64 / delivered.max(1) as f64
}

/// The receiving end of a stream of numbered messages (sent with [`send_numbered`], ended by
/// [`SEQ_STOP`]): checks every message's size and sequence number, and times the window from
/// the first measured message (the first after the `warmup` ones) to the stop message.
pub(crate) struct NumberedStream {
    /// The size every message has.
    size: usize,
    /// How many warm-up messages come before the measured ones.
    warmup: u64,
    /// How errors name a message ("message", "stream message").
    what: &'static str,
    /// The sequence number the next message must carry.
    expected: u64,
    /// Started at the first measured message.
    window: Option<Window>,
    /// Measured messages after the one that opened the window.
    messages: u64,
}

impl NumberedStream {
    /// A stream of `size`-byte messages, the first `warmup` of them not measured; errors call
    /// a message `what`.
    pub(crate) fn new(size: usize, warmup: u64, what: &'static str) -> Self {
        Self {
            size,
            warmup,
            what,
            expected: 1,
            window: None,
            messages: 0,
        }
    }

    /// Whether no numbered message has been taken yet.
    pub(crate) fn before_first(&self) -> bool {
        self.expected == 1
    }

    /// Checks the next message `msg`: `Ok(true)` to go on, `Ok(false)` at the stop message.
    #[inline]
    pub(crate) fn take(&mut self, msg: &[u8]) -> Result<bool, LabError> {
        let (what, expected, size, n) = (self.what, self.expected, self.size, msg.len());
        if n != size {
            return Err(LabError::Integrity {
                detail: format!("{what} {expected} has {n} bytes, expected {size}"),
            });
        }
        let warmup = self.warmup;
        match get_seq(msg) {
            Some(SEQ_STOP) => return Ok(false),
            Some(seq) if seq == expected => {}
            // The first measured message after a warm-up the sender's time cap cut short.
            Some(seq) if self.window.is_none() && seq == warmup + 1 && expected <= warmup + 1 => {
                self.expected = seq;
            }
            got => {
                return Err(LabError::Integrity {
                    detail: format!("expected {what} {expected}, got sequence number {got:?}"),
                })
            }
        }
        if self.expected > warmup {
            match self.window {
                None => self.window = Some(Window::start()),
                Some(_) => self.messages += 1,
            }
        }
        self.expected += 1;
        Ok(true)
    }

    /// After the stop message: how many measured messages arrived and the window's time.
    pub(crate) fn finish(self) -> Result<(u64, ChildStats), LabError> {
        let window = self.window.ok_or(LabError::Integrity {
            detail: "the stream ended before any measured message arrived".into(),
        })?;
        // The stop message closes the last interval: count it as the message that ends it
        // (the first measured message opened the window and is not counted).
        Ok((self.messages + 1, window.stop()))
    }
}

/// Sends the messages numbered `first + 1 ..= first + count` back to back through `send`,
/// stopping early once `max_time` has passed; returns how many it sent and whether the time
/// cap cut the run short. The clock is read only every `CHECK_EVERY` messages (a power of two,
/// a constant: the loop stays a counter, a store of the number and the send).
#[inline]
pub(crate) fn send_numbered<const CHECK_EVERY: u64>(
    buf: &mut [u8],
    first: u64,
    count: u64,
    max_time: Duration,
    mut send: impl FnMut(&[u8]) -> Result<(), LabError>,
) -> Result<(u64, bool), LabError> {
    let end = Instant::now() + max_time;
    for i in 1..=count {
        put_seq(buf, first + i);
        send(buf)?;
        if i % CHECK_EVERY == 0 && i < count && Instant::now() >= end {
            return Ok((i, true));
        }
    }
    Ok((count, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_rows_warm_up_over_laps_of_the_deepest_ring_in_every_mode() {
        for budgets in [Budgets::QUICK, Budgets::DEFAULT, Budgets::FULL] {
            for size in [4096, 64 << 10, 1 << 20] {
                let budget = budgets.throughput_for(size);
                assert!(
                    budget.warmup_iters >= Budgets::BULK_WARMUP_LAPS * MIN_RING_SLOTS as u64,
                    "{size} B: {} warm-up messages",
                    budget.warmup_iters
                );
            }
        }
    }
}
