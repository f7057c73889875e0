//! Contention (Comparison): 1, 2, 4 and 8 producer processes feeding one consumer process.
//!
//! ```text
//! parent (consumer, CPU A)                 producer k = 0..n (forked, all pinned to CPU B)
//! ------                                   ----------
//! sides = queue.setup_fan_in(n, 4 KiB)
//! fork n producers ----------------------> abandon every side but its own; start()
//!                                          ready += 1; wait for go
//! wait until ready == n; start the clock;
//! go = 1 --------------------------------> send (seq 1.., id k) × count, then SEQ_STOP
//! receive; check each producer's sequence
//! until n SEQ_STOPs; stop the clock
//! ```
//!
//! Every message carries its sequence number (bytes 0..8) and its producer's id (bytes 8..16);
//! the consumer checks that each producer's messages arrive in order and none is lost. The rate
//! is all producers' messages over the consumer's window. The consumer has a CPU of its own and
//! every producer is pinned to the other one: with two CPUs, 2, 4 and 8 producers *time-share*
//! one CPU and contend through preemption (a producer descheduled while it holds the mutex, or
//! between claiming a ring slot and publishing it) rather than in parallel. The report says so.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pair::{ChildReport, ChildStats};
use super::{get_seq, put_seq, Budgets, Window, SEQ_STOP, WATCHDOG_MARGIN};
use crate::host::Pinning;
use crate::mechanisms::cas_ring::CasRing;
use crate::mechanisms::locked_ring::LockedRing;
use crate::mechanisms::posix_mq::PosixMq;
use crate::mechanisms::shmsock::ShmsockInbox;
use crate::mechanisms::{FanIn, Side};
use crate::process::{fork_child, kill_child, wait_child, ChildEnd, CHILD_EXIT_FAILED};
use crate::report::ContentionRow;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::LabError;

/// Message size, as in the Comparison's synchronisation-tax table that the contention table extends.
pub(crate) const SIZE: usize = 4096;
/// Producer counts of the Comparison's table.
pub(crate) const PRODUCERS: [u32; 4] = [1, 2, 4, 8];
/// Messages per run (all producers together) in the default mode.
pub(crate) const MESSAGES: u64 = 262_144;
/// Fewest messages per run, whatever the mode (fewer would time the start-up).
const MESSAGES_MIN: u64 = 16_384;
/// The row of shmsock's own many-writers pattern (an `Inbox`: one SPSC ring per writer and a
/// doorbell, DESIGN.md "Patterns on top").
pub(crate) const SHMSOCK_MANY_WRITERS: &str = "shmsock-many-writers";

/// The producers look at the clock once per this many messages.
const CLOCK_CHECK_EVERY: u64 = 256;
/// How long the consumer waits for every producer to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const READY_OFFSET: usize = 0;
const GO_OFFSET: usize = CACHE_LINE_BYTES;

/// One column of the table: a queue several producers can feed.
pub(crate) struct Queue {
    /// The row's name (the claims' key): `lock-free`, `mutex`, `posix-mq`.
    pub(crate) name: &'static str,
    /// The implementation.
    pub(crate) fan_in: Box<dyn FanIn>,
}

/// The queues of the Comparison's table, in its order.
pub(crate) fn queues() -> Vec<Queue> {
    vec![
        Queue {
            name: "lock-free",
            fan_in: Box::new(CasRing),
        },
        Queue {
            name: "mutex",
            fan_in: Box::new(LockedRing::mutex()),
        },
        Queue {
            name: "posix-mq",
            fan_in: Box::new(PosixMq),
        },
        Queue {
            name: SHMSOCK_MANY_WRITERS,
            fan_in: Box::new(ShmsockInbox),
        },
    ]
}

/// (messages per run, time cap per run).
pub(crate) fn plan(budgets: &Budgets) -> (u64, Duration) {
    (
        (MESSAGES / budgets.divisor.max(1)).max(MESSAGES_MIN),
        budgets.experiment_max_time,
    )
}

/// Measures `queue` with `producers` producer processes sending `messages` in all.
pub(crate) fn measure(
    queue: &Queue,
    producers: u32,
    messages: u64,
    max_time: Duration,
    pinning: Pinning,
) -> Result<ContentionRow, LabError> {
    let n = producers.max(1) as usize;
    if SIZE > queue.fan_in.max_message() {
        return Err(LabError::WrongSize {
            len: SIZE,
            size: queue.fan_in.max_message(),
        });
    }
    let sides = queue.fan_in.setup_fan_in(n, SIZE)?;
    let control = SharedRegion::new(2 * CACHE_LINE_BYTES)?;
    let reports = (0..n)
        .map(|_| ChildReport::new())
        .collect::<Result<Vec<_>, _>>()?;
    let per_producer = (messages / n as u64).max(1);
    let watchdog = max_time + READY_TIMEOUT + WATCHDOG_MARGIN;
    let watchdog_secs = u32::try_from(watchdog.as_secs()).unwrap_or(u32::MAX);
    let mut send_buf = vec![0x5Au8; SIZE];
    let mut recv_buf = vec![0u8; SIZE];
    let mut consumer = Some(sides.consumer);
    let mut pending: Vec<Option<Box<dyn Side>>> = sides.producers.into_iter().map(Some).collect();
    let mut pids = Vec::with_capacity(n);
    for (k, report) in reports.iter().enumerate() {
        let mine = pending[k]
            .take()
            .expect("each producer side is forked once");
        let forked = fork_child(pinning.child_cpu, watchdog_secs, || {
            // Child k: keep only its own side.
            if let Some(other) = consumer.take() {
                other.abandon();
            }
            for other in pending.iter_mut().filter_map(Option::take) {
                other.abandon();
            }
            let mut side = mine;
            let result = side.start().and_then(|()| {
                produce(
                    &mut *side,
                    k as u64,
                    per_producer,
                    max_time,
                    &control,
                    &mut send_buf,
                )
            });
            if result.is_err() {
                side.break_channel();
            }
            drop(side);
            report.finish(&result);
            if result.is_ok() {
                0
            } else {
                CHILD_EXIT_FAILED
            }
        });
        match forked {
            Ok(pid) => pids.push(pid),
            Err(err) => {
                for pid in pids {
                    kill_child(pid);
                    let _ = wait_child(pid, Duration::from_secs(1));
                }
                return Err(err);
            }
        }
    }
    let mut consumer = consumer.expect("the consumer side stays in the parent");
    let result = consumer
        .start()
        .and_then(|()| consume(&mut *consumer, n, &control, &mut recv_buf));
    if result.is_err() {
        consumer.break_channel();
        pids.iter().for_each(|&pid| kill_child(pid));
    }
    drop(consumer);
    let mut failures = Vec::new();
    for (k, pid) in pids.into_iter().enumerate() {
        match wait_child(pid, Duration::from_secs(10)) {
            Ok(ChildEnd::Exited(0)) => {}
            Ok(end) => failures.push(format!("producer {k}: {}", reports[k].failure(end))),
            Err(err) => failures.push(format!("producer {k}: {err}")),
        }
    }
    let (received, wall_ns) = match result {
        Ok(done) if failures.is_empty() => done,
        Ok(_) => {
            return Err(LabError::Child {
                detail: failures.join("; "),
            })
        }
        Err(err) if failures.is_empty() => return Err(err),
        Err(err) => {
            return Err(LabError::Child {
                detail: format!("{}; the consumer then failed: {err}", failures.join("; ")),
            })
        }
    };
    let seconds = wall_ns.max(1) as f64 / 1e9;
    Ok(ContentionRow {
        queue: queue.name.to_string(),
        producers,
        msgs_per_s: (received as f64 / seconds).round() as u64,
        size: SIZE,
        implementation: queue.fan_in.name().to_string(),
        messages: received,
        seconds,
        vs_one_producer: None,
    })
}

/// Producer `id`: announce readiness, wait for the start, send `count` messages (or until
/// `max_time`), then the stop message.
fn produce(
    side: &mut dyn Side,
    id: u64,
    count: u64,
    max_time: Duration,
    control: &SharedRegion,
    buf: &mut [u8],
) -> Result<ChildStats, LabError> {
    // Release/Acquire pair with the consumer's loads of `ready` and store of `go`.
    control
        .atomic_u64(READY_OFFSET)
        .fetch_add(1, Ordering::Release);
    let deadline = Instant::now() + READY_TIMEOUT;
    while control.atomic_u64(GO_OFFSET).load(Ordering::Acquire) == 0 {
        if Instant::now() > deadline {
            return Err(LabError::Stalled {
                what: "waiting for the consumer's start signal",
                waited: READY_TIMEOUT,
            });
        }
        rustix::thread::sched_yield();
    }
    buf[8..16].copy_from_slice(&id.to_le_bytes());
    let window = Window::start();
    let end = Instant::now() + max_time;
    for seq in 1..=count {
        put_seq(buf, seq);
        side.send(buf)?;
        if seq % CLOCK_CHECK_EVERY == 0 && Instant::now() >= end {
            break;
        }
    }
    put_seq(buf, SEQ_STOP);
    side.send(buf)?;
    let (wall_ns, cpu_ns) = window.stop();
    Ok(ChildStats { cpu_ns, wall_ns })
}

/// The consumer: start the producers, receive until every one of them stopped; returns the
/// messages received and the window in ns.
fn consume(
    side: &mut dyn Side,
    producers: usize,
    control: &SharedRegion,
    buf: &mut [u8],
) -> Result<(u64, u64), LabError> {
    let started = Instant::now();
    while control.atomic_u64(READY_OFFSET).load(Ordering::Acquire) < producers as u64 {
        if started.elapsed() > READY_TIMEOUT {
            return Err(LabError::Stalled {
                what: "waiting for the producers to be ready",
                waited: started.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut next = vec![1u64; producers];
    let mut stopped = 0usize;
    let mut messages = 0u64;
    let window = Window::start();
    control.atomic_u64(GO_OFFSET).store(1, Ordering::Release);
    while stopped < producers {
        let len = side.recv(buf)?;
        let msg = &buf[..len];
        let (Some(seq), Some(id)) = (get_seq(msg), msg.get(8..16)) else {
            return Err(LabError::Integrity {
                detail: format!("a message of {len} bytes, expected {SIZE}"),
            });
        };
        let id = u64::from_le_bytes(id.try_into().expect("an 8-byte slice"));
        let Some(expected) = usize::try_from(id).ok().and_then(|k| next.get_mut(k)) else {
            return Err(LabError::Integrity {
                detail: format!("a message from producer {id} of {producers}"),
            });
        };
        if seq == SEQ_STOP {
            stopped += 1;
        } else if seq == *expected && len == SIZE {
            *expected += 1;
            messages += 1;
        } else {
            return Err(LabError::Integrity {
                detail: format!(
                    "producer {id}: expected message {expected} of {SIZE} B, got {seq} of {len} B"
                ),
            });
        }
    }
    Ok((messages, window.stop().0))
}
