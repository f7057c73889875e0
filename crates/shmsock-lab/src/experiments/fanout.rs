//! Fan-out (issue 5): one `shmsock::Publisher` process broadcasting to 1, 2 and 4
//! `shmsock::Subscriber` processes over `shm://`.
//!
//! ```text
//! parent (publisher, CPU A)                subscriber k = 0..n (forked, all pinned to CPU B)
//! ------                                   ----------
//! fork n subscribers --------------------> Subscriber::connect, retried while refused
//! Publisher::bind (after the forks: it
//! runs a background accept thread)
//! wait until subscriber_count() == n;
//! start the clock
//! send seq 1.. × count, then SEQ_STOP ---> recv; check seq == expected, len == size
//!                                          until SEQ_STOP; received[k] = count; done += 1
//! wait until done == n; stop the clock
//! ```
//!
//! The publisher uses `Overflow::Block` (the default), so it waits for the slowest subscriber
//! and nothing is lost: every subscriber must receive every message, in order, or the run
//! fails. The rate is the publisher's: messages sent per second of its window, which ends when
//! the last subscriber has received the stop message, so every counted message was delivered
//! to every subscriber. The publisher has a CPU of its own and every subscriber is pinned to
//! the other one: with two CPUs, 2 and 4 subscribers *time-share* one CPU. The report says so.
//!
//! The issue's bar: with 4 subscribers the publisher keeps at least half of its rate with one.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shmsock::{Options, Overflow, Publisher, Subscriber};

use super::pair::{ChildReport, ChildStats};
use super::{get_seq, put_seq, Budgets, Window, SEQ_STOP, WATCHDOG_MARGIN};
use crate::host::Pinning;
use crate::mechanisms::shmsock::{lib, retry_refused, unique_endpoint};
use crate::process::{fork_child, kill_child, wait_child, ChildEnd, CHILD_EXIT_FAILED};
use crate::report::FanoutRow;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::LabError;

/// Message sizes: the lab's small message and the Comparison's 4 KiB.
pub(crate) const SIZES: [usize; 2] = [64, 4096];
/// Subscriber counts.
pub(crate) const SUBSCRIBERS: [u32; 3] = [1, 2, 4];
/// The issue's bar: the rate with 4 subscribers over the rate with one.
pub(crate) const BAR_4_VS_1: f64 = 0.5;
/// The row name of unavailable runs (`shmsock-pubsub xN`).
pub(crate) const NAME: &str = "shmsock-pubsub";
/// Messages per run of 64 B in the default mode.
const MESSAGES_SMALL: u64 = 16_777_216;
/// Messages per run of 4 KiB in the default mode: 1 GiB to every subscriber, as the Comparison's
/// 4 KiB rows move.
const MESSAGES_BULK: u64 = 262_144;
/// Fewest messages per run, whatever the mode (fewer would time the start-up).
const MESSAGES_MIN: u64 = 16_384;

/// The publisher looks at the clock once per this many messages.
const CLOCK_CHECK_EVERY: u64 = 256;
/// How long the publisher waits for every subscriber to be counted, and then for every
/// subscriber to receive the stop message.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Subscribers that received the stop message.
const DONE_OFFSET: usize = 0;
/// Subscribers that failed (so the publisher stops waiting for them).
const FAILED_OFFSET: usize = CACHE_LINE_BYTES;
/// Subscriber k's message count is at `RECEIVED_OFFSET + k * CACHE_LINE_BYTES`.
const RECEIVED_OFFSET: usize = 2 * CACHE_LINE_BYTES;

/// (messages per run, time cap per run) for `size`-byte messages.
pub(crate) fn plan(budgets: &Budgets, size: usize) -> (u64, Duration) {
    let base = if size < Budgets::BULK_FROM_BYTES {
        MESSAGES_SMALL
    } else {
        MESSAGES_BULK
    };
    (
        (base / budgets.divisor.max(1)).max(MESSAGES_MIN),
        budgets.experiment_max_time,
    )
}

/// The publisher's options: the library's defaults, `Overflow::Block` said explicitly.
fn options() -> Options {
    Options::new().overflow(Overflow::Block)
}

/// Measures one publisher and `subscribers` subscriber processes, `messages` of `size` bytes
/// (or until `max_time`).
pub(crate) fn measure(
    subscribers: u32,
    size: usize,
    messages: u64,
    max_time: Duration,
    pinning: Pinning,
) -> Result<FanoutRow, LabError> {
    let n = subscribers.max(1) as usize;
    if size < 8 {
        return Err(LabError::WrongSize { len: size, size: 8 });
    }
    let endpoint = unique_endpoint();
    let control = SharedRegion::new(RECEIVED_OFFSET + n * CACHE_LINE_BYTES)?;
    let reports = (0..n)
        .map(|_| ChildReport::new())
        .collect::<Result<Vec<_>, _>>()?;
    let watchdog = max_time + 2 * READY_TIMEOUT + WATCHDOG_MARGIN;
    let watchdog_secs = u32::try_from(watchdog.as_secs()).unwrap_or(u32::MAX);
    let mut buf = vec![0x5Au8; size];
    let mut pids = Vec::with_capacity(n);
    for (k, report) in reports.iter().enumerate() {
        let forked = fork_child(pinning.child_cpu, watchdog_secs, || {
            let result = subscribe(&endpoint, k, size, &control, &mut buf);
            if result.is_err() {
                control
                    .atomic_u64(FAILED_OFFSET)
                    .fetch_add(1, Ordering::Release);
            }
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
    let result = publish(&endpoint, n, messages, max_time, &control, &mut buf);
    if result.is_err() {
        pids.iter().for_each(|&pid| kill_child(pid));
    }
    let mut failures = Vec::new();
    let mut child_stats = Vec::with_capacity(n);
    for (k, pid) in pids.into_iter().enumerate() {
        match wait_child(pid, Duration::from_secs(10)) {
            Ok(ChildEnd::Exited(0)) => child_stats.push(reports[k].stats()),
            Ok(end) => failures.push(format!("subscriber {k}: {}", reports[k].failure(end))),
            Err(err) => failures.push(format!("subscriber {k}: {err}")),
        }
    }
    let published = match result {
        Ok(done) if failures.is_empty() => done,
        Ok(_) => {
            return Err(LabError::Child {
                detail: failures.join("; "),
            })
        }
        Err(err) if failures.is_empty() => return Err(err),
        Err(err) => {
            return Err(LabError::Child {
                detail: format!("{}; the publisher then failed: {err}", failures.join("; ")),
            })
        }
    };
    for k in 0..n {
        // Relaxed: the children have been reaped, which orders their whole lives before this.
        let received = control
            .atomic_u64(RECEIVED_OFFSET + k * CACHE_LINE_BYTES)
            .load(Ordering::Relaxed);
        if received != published.sent {
            return Err(LabError::Integrity {
                detail: format!(
                    "subscriber {k} received {received} messages, the publisher sent {}",
                    published.sent
                ),
            });
        }
    }
    Ok(FanoutRow::new(subscribers, size, &published, &child_stats))
}

/// What the publisher measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// Messages sent (the stop message not counted).
    pub(crate) sent: u64,
    /// From the first send to the last subscriber's receipt of the stop message, ns.
    pub(crate) wall_ns: u64,
    /// CPU time of the publishing thread in that window, ns.
    pub(crate) cpu_ns: u64,
    /// Whether the time cap ended the run before all its messages were sent.
    pub(crate) capped: bool,
}

/// The parent: bind, wait for the subscribers, stream, wait until all have the stop message.
fn publish(
    endpoint: &str,
    n: usize,
    count: u64,
    max_time: Duration,
    control: &SharedRegion,
    buf: &mut [u8],
) -> Result<Published, LabError> {
    let mut publisher = Publisher::bind_with(endpoint, options()).map_err(lib("publisher bind"))?;
    let failed = || control.atomic_u64(FAILED_OFFSET).load(Ordering::Acquire) > 0;
    let started = Instant::now();
    while publisher.subscriber_count() < n {
        if failed() {
            return Err(LabError::Child {
                detail: "a subscriber failed before the start".into(),
            });
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(LabError::Stalled {
                what: "waiting for the subscribers to connect",
                waited: started.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let window = Window::start();
    let end = Instant::now() + max_time;
    let mut sent = 0;
    let mut capped = false;
    for seq in 1..=count {
        put_seq(buf, seq);
        publisher.send(buf).map_err(lib("publisher send"))?;
        sent = seq;
        if seq % CLOCK_CHECK_EVERY == 0 && seq < count && Instant::now() >= end {
            capped = true;
            break;
        }
    }
    put_seq(buf, SEQ_STOP);
    publisher.send(buf).map_err(lib("publisher send"))?;
    let stopped = Instant::now();
    // Acquire: pairs with each subscriber's Release increment after its last message.
    while control.atomic_u64(DONE_OFFSET).load(Ordering::Acquire) < n as u64 {
        if failed() {
            return Err(LabError::Child {
                detail: "a subscriber failed during the run".into(),
            });
        }
        if stopped.elapsed() > READY_TIMEOUT {
            return Err(LabError::Stalled {
                what: "waiting for the subscribers to receive the stop message",
                waited: stopped.elapsed(),
            });
        }
        rustix::thread::sched_yield();
    }
    let (wall_ns, cpu_ns) = window.stop();
    Ok(Published {
        sent,
        wall_ns,
        cpu_ns,
        capped,
    })
}

/// Subscriber `k`: connect (retrying until the publisher is bound), receive and check every
/// message until the stop message, record the count.
fn subscribe(
    endpoint: &str,
    k: usize,
    size: usize,
    control: &SharedRegion,
    buf: &mut [u8],
) -> Result<ChildStats, LabError> {
    let mut subscriber =
        retry_refused(|| Subscriber::connect_with(endpoint, options())).map_err(lib("connect"))?;
    let mut expected = 1u64;
    let mut window = None;
    loop {
        let len = subscriber.recv(buf).map_err(lib("subscriber recv"))?;
        let window = window.get_or_insert_with(Window::start);
        match get_seq(&buf[..len]) {
            Some(SEQ_STOP) => {
                let (wall_ns, cpu_ns) = window.stop();
                let received = expected - 1;
                // Relaxed for the count: the parent reads it after reaping us. Release on
                // `done`: the publisher stops its clock on it.
                control
                    .atomic_u64(RECEIVED_OFFSET + k * CACHE_LINE_BYTES)
                    .store(received, Ordering::Relaxed);
                control
                    .atomic_u64(DONE_OFFSET)
                    .fetch_add(1, Ordering::Release);
                return Ok(ChildStats { cpu_ns, wall_ns });
            }
            Some(seq) if seq == expected && len == size => expected += 1,
            seq => {
                return Err(LabError::Integrity {
                    detail: format!(
                        "subscriber {k}: expected message {expected} of {size} B, got {seq:?} \
                         of {len} B"
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_scales_by_the_divisor_with_a_floor() {
        let quick = Budgets::QUICK;
        assert_eq!(plan(&Budgets::DEFAULT, 64).0, MESSAGES_SMALL);
        assert_eq!(plan(&Budgets::DEFAULT, 4096).0, MESSAGES_BULK);
        assert_eq!(plan(&quick, 64).0, MESSAGES_SMALL / quick.divisor);
        assert_eq!(plan(&quick, 4096).0, MESSAGES_MIN);
        assert_eq!(plan(&quick, 4096).1, quick.experiment_max_time);
    }

    #[test]
    fn one_and_two_subscribers_receive_everything() {
        let _lock = crate::FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("pinning");
        let _pinned = crate::process::AffinityGuard::pin(pinning.parent_cpu).expect("pin");
        for subscribers in [1, 2] {
            let row = measure(subscribers, 64, 20_000, Duration::from_secs(20), pinning)
                .expect("fan-out runs");
            assert_eq!(row.subscribers, subscribers);
            assert_eq!(row.messages, 20_000, "{row:?}");
            assert!(!row.capped && row.msgs_per_s > 0, "{row:?}");
        }
    }
}
