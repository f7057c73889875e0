//! Contention (Comparison): 1, 2, 4 and 8 producer processes feeding one consumer process.
//!
//! ```text
//! parent (consumer, CPU A)                 producer k = 0..n (forked, all pinned to CPU B)
//! ------                                   ----------
//! sides = queue.setup_fan_in(n, 4 KiB)
//! fork n producers ----------------------> abandon every side but its own; start()
//!                                          send the warm-up (seq 1..=W, id k)
//! take n × W warm-up messages <----------- (W × 4 KiB = 2 MiB: every ring page touched)
//!                                          ready += 1; wait for go
//! wait until ready == n; start the clock;
//! go = 1 --------------------------------> send (seq W+1.., id k) × count, then SEQ_STOP
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
use std::time::Duration;

use plotters::style::Color;
use serde::{Deserialize, Serialize};

use super::{
    cpu_ns_per_message, get_seq, put_seq, send_numbered, Budgets, Window, SEQ_STOP, WATCHDOG_MARGIN,
};
use crate::chart::{distinct, Chart, Mark, Series, COLOURS};
use crate::claims::{self, ClaimCheck, Metric};
use crate::error::LabError;
use crate::format::{bar_verdict, fmt_count, fmt_ratio};
use crate::host::{HostInfo, Pinning};
use crate::mechanisms::cas_ring::CasRing;
use crate::mechanisms::locked_ring::LockedRing;
use crate::mechanisms::posix_mq::PosixMq;
use crate::mechanisms::shmsock::ShmsockInbox;
use crate::mechanisms::{FanIn, Side};
use crate::process::{outcome, wait_until, ChildStats, Children, Pause};
use crate::rounds::{spread_cell, spread_note, RoundRow, ScaledRow, Spread};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::table::Table;

/// One multi-producer queue with `producers` producer processes and one consumer (the Comparison's
/// contention table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionRow {
    /// `lock-free` (CAS multi-producer ring), `mutex` (process-shared mutex queue),
    /// `posix-mq`.
    pub queue: String,
    /// Producer processes.
    pub producers: u32,
    /// Messages per second, all producers together, measured by the consumer.
    pub msgs_per_s: u64,
    /// Message size in bytes.
    pub size: usize,
    /// The implementation (`cas-ring`, `mutex-ring`, `posix-mq`).
    #[serde(default)]
    pub implementation: String,
    /// Messages received in the window.
    #[serde(default)]
    pub messages: u64,
    /// The consumer's window, seconds.
    #[serde(default)]
    pub seconds: f64,
    /// `msgs_per_s` / the same queue's with one producer: the median of the per-round
    /// ratios (each round's run over the same round's one-producer run).
    #[serde(default)]
    pub vs_one_producer: Option<f64>,
    /// CPU time of every process (the consumer and all producers, each over its own window)
    /// per message delivered, ns: what the queue costs the machine per message, which a
    /// machine with fewer CPUs than processes shows where msgs/s cannot.
    #[serde(default)]
    pub cpu_ns_per_msg: f64,
    /// `cpu_ns_per_msg` / the same queue's with one producer: the median of the per-round
    /// ratios, like `vs_one_producer`.
    #[serde(default)]
    pub cpu_vs_one_producer: Option<f64>,
    /// The rounds this row is the median of, and their spread of msgs/s.
    #[serde(default)]
    pub spread: Spread,
}

impl RoundRow for ContentionRow {
    fn key(&self) -> f64 {
        self.msgs_per_s as f64
    }
    fn spread_mut(&mut self) -> &mut Spread {
        &mut self.spread
    }
}

impl ScaledRow for ContentionRow {
    fn cpu_ns(&self) -> f64 {
        self.cpu_ns_per_msg
    }
    fn set_vs_one(&mut self, rate: Option<f64>, cpu: Option<f64>) {
        self.vs_one_producer = rate;
        self.cpu_vs_one_producer = cpu;
    }
}

/// Message size, as in the Comparison's synchronisation-tax table that the contention table extends.
pub(crate) const SIZE: usize = 4096;
/// Producer counts of the Comparison's table.
pub(crate) const PRODUCERS: [u32; 4] = [1, 2, 4, 8];
/// Messages per run (all producers together) in the default mode.
pub(crate) const MESSAGES: u64 = 262_144;
/// Fewest messages per run, whatever the mode (fewer would time the start-up).
const MESSAGES_MIN: u64 = 65_536;
/// The row of shmsock's own many-writers pattern (an `Inbox`: one SPSC ring per writer and a
/// doorbell, DESIGN.md "Patterns on top").
pub(crate) const SHMSOCK_MANY_WRITERS: &str = "shmsock-many-writers";

/// The CPU bar of shmsock's many writers: CPU per message with 8 producers over that with one.
pub(crate) const CPU_BAR_8_VS_1: f64 = 1.3;

/// Bytes each producer sends before the clock starts (the consumer takes and checks them
/// too): enough to touch every page of its ring (shmsock's are 1 MiB at this size), so that
/// a short run does not count the first touch of 8 fresh rings as the cost of a message.
const WARMUP_BYTES: usize = 2 << 20;
/// Messages each producer sends before the clock starts.
const WARMUP: u64 = (WARMUP_BYTES / SIZE) as u64;

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
    let per_producer = (messages / n as u64).max(1);
    let watchdog = max_time + READY_TIMEOUT + WATCHDOG_MARGIN;
    let mut send_buf = vec![0x5Au8; SIZE];
    let mut recv_buf = vec![0u8; SIZE];
    let mut consumer = Some(sides.consumer);
    let mut pending: Vec<Option<Box<dyn Side>>> = sides.producers.into_iter().map(Some).collect();
    let mut children = Children::new();
    for k in 0..n {
        let mine = pending[k]
            .take()
            .expect("each producer side is forked once");
        children.fork(format!("producer {k}"), pinning.child_cpu, watchdog, || {
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
            result
        })?;
    }
    let mut consumer = consumer.expect("the consumer side stays in the parent");
    let result = consumer
        .start()
        .and_then(|()| consume(&mut *consumer, n, &control, &mut recv_buf));
    if result.is_err() {
        consumer.break_channel();
        children.kill_all();
    }
    drop(consumer);
    let ((received, window), producer_stats) =
        outcome("consumer", result, children.reap(Duration::from_secs(10)))?;
    let seconds = window.wall_ns.max(1) as f64 / 1e9;
    Ok(ContentionRow {
        queue: queue.name.to_string(),
        producers,
        msgs_per_s: (received as f64 / seconds).round() as u64,
        size: SIZE,
        implementation: queue.fan_in.name().to_string(),
        messages: received,
        seconds,
        vs_one_producer: None,
        cpu_ns_per_msg: cpu_ns_per_message(&window, &producer_stats, received),
        cpu_vs_one_producer: None,
        spread: Spread::default(),
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
    buf[8..16].copy_from_slice(&id.to_le_bytes());
    send_numbered::<CLOCK_CHECK_EVERY>(buf, 0, WARMUP, max_time, |m| side.send(m))?;
    // Release/Acquire pair with the consumer's loads of `ready` and store of `go`.
    control
        .atomic_u64(READY_OFFSET)
        .fetch_add(1, Ordering::Release);
    wait_until(
        "waiting for the consumer's start signal",
        READY_TIMEOUT,
        Pause::Yield,
        || control.atomic_u64(GO_OFFSET).load(Ordering::Acquire) != 0,
        || None,
    )?;
    let window = Window::start();
    send_numbered::<CLOCK_CHECK_EVERY>(buf, WARMUP, count, max_time, |m| side.send(m))?;
    put_seq(buf, SEQ_STOP);
    side.send(buf)?;
    Ok(window.stop())
}

/// The consumer: take every producer's warm-up, start the producers, receive until every
/// one of them stopped; returns the messages received and the consumer's window.
fn consume(
    side: &mut dyn Side,
    producers: usize,
    control: &SharedRegion,
    buf: &mut [u8],
) -> Result<(u64, ChildStats), LabError> {
    let mut next = vec![1u64; producers];
    for _ in 0..WARMUP * producers as u64 {
        if take(side, buf, &mut next)?.is_none() {
            return Err(LabError::Integrity {
                detail: "a producer stopped during its warm-up".into(),
            });
        }
    }
    wait_until(
        "waiting for the producers to be ready",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(100)),
        || control.atomic_u64(READY_OFFSET).load(Ordering::Acquire) >= producers as u64,
        || None,
    )?;
    let mut stopped = 0usize;
    let mut messages = 0u64;
    let window = Window::start();
    control.atomic_u64(GO_OFFSET).store(1, Ordering::Release);
    while stopped < producers {
        match take(side, buf, &mut next)? {
            Some(_) => messages += 1,
            None => stopped += 1,
        }
    }
    Ok((messages, window.stop()))
}

/// Receives one message and checks it against `next` (each producer's next sequence
/// number): `Some(producer)` for a message, `None` for a producer's stop message.
fn take(side: &mut dyn Side, buf: &mut [u8], next: &mut [u64]) -> Result<Option<usize>, LabError> {
    let len = side.recv(buf)?;
    let msg = &buf[..len];
    let (Some(seq), Some(id)) = (get_seq(msg), msg.get(8..16)) else {
        return Err(LabError::Integrity {
            detail: format!("a message of {len} bytes, expected {SIZE}"),
        });
    };
    let id = u64::from_le_bytes(id.try_into().expect("an 8-byte slice"));
    let producers = next.len();
    let Some((k, expected)) = usize::try_from(id)
        .ok()
        .and_then(|k| Some((k, next.get_mut(k)?)))
    else {
        return Err(LabError::Integrity {
            detail: format!("a message from producer {id} of {producers}"),
        });
    };
    if seq == SEQ_STOP {
        Ok(None)
    } else if seq == *expected && len == SIZE {
        *expected += 1;
        Ok(Some(k))
    } else {
        Err(LabError::Integrity {
            detail: format!(
                "producer {id}: expected message {expected} of {SIZE} B, got {seq} of {len} B"
            ),
        })
    }
}

/// Fills `vs_one_producer` and `cpu_vs_one_producer` where the rounds did not (a report
/// from before rounds): each row's over the same queue's with one producer.
pub(crate) fn compare_with_one_producer(rows: &mut [ContentionRow]) {
    let singles: Vec<(String, u64, f64)> = rows
        .iter()
        .filter(|r| r.producers == 1)
        .map(|r| (r.queue.clone(), r.msgs_per_s, r.cpu_ns_per_msg))
        .collect();
    for row in rows {
        row.vs_one_producer = row.vs_one_producer.or_else(|| {
            singles
                .iter()
                .find(|(q, _, _)| *q == row.queue)
                .map(|(_, base, _)| row.msgs_per_s as f64 / (*base).max(1) as f64)
        });
        row.cpu_vs_one_producer = row.cpu_vs_one_producer.or_else(|| {
            singles
                .iter()
                .find(|(q, _, cpu)| *q == row.queue && *cpu > 0.0)
                .map(|(_, _, cpu)| row.cpu_ns_per_msg / cpu)
        });
    }
}

/// The contention table, each row beside the Comparison's claim, with what the machine's
/// CPUs and shmsock's Inbox mean for it.
pub(crate) fn table(
    rows: &[ContentionRow],
    host: &HostInfo,
    checks: &[ClaimCheck],
) -> Option<Table> {
    let mut table = claims::checked_table(
        "Contention: N producer processes -> one consumer (msgs/s, all producers)",
        &[
            "queue",
            "implementation",
            "producers",
            "msgs/s",
            "msgs/s spread",
            "vs 1 producer",
            "CPU ns/msg",
            "CPU vs 1",
        ],
        "Comparison",
        rows,
        checks,
        |r| {
            let cells = vec![
                r.queue.clone(),
                r.implementation.clone(),
                r.producers.to_string(),
                fmt_count(r.msgs_per_s),
                spread_cell(&r.spread, |rate| fmt_count(rate as u64)),
                fmt_ratio(r.vs_one_producer, 2),
                format!("{:.0}", r.cpu_ns_per_msg),
                fmt_ratio(r.cpu_vs_one_producer, 2),
            ];
            let metric = Metric::Contention {
                producers: r.producers,
            };
            (cells, metric, &r.queue)
        },
    )?;
    let p = host.pinning;
    let mut notes = vec![format!(
        "The consumer runs on CPU {}, every producer on CPU {}; messages are 4 KiB, \
         sequence-checked per producer.",
        p.parent_cpu, p.child_cpu
    )];
    if host.cpus_allowed <= 2 {
        notes.push(format!(
            "This machine has {} usable CPU(s): 2, 4 and 8 producers time-share one CPU, so \
             they contend through preemption (a producer descheduled while holding the \
             mutex, or between claiming a ring slot and publishing it), not in parallel as \
             on the many-core machine the Comparison implies.",
            host.cpus_allowed
        ));
    }
    notes.push(
        "CPU ns/msg: the CPU time of the consumer and every producer, each over its own \
         window, per message received: the work a queue costs per message, which does not \
         depend on how many CPUs share it. `vs 1` and `CPU vs 1`: the median over the \
         rounds of each round's run over the same round's one-producer run."
            .into(),
    );
    notes.extend(spread_note(rows.iter().map(|r| &r.spread)));
    let many = SHMSOCK_MANY_WRITERS;
    if let Some(x) = rows
        .iter()
        .find(|r| r.queue == many && r.producers == 8)
        .and_then(|r| r.cpu_vs_one_producer)
    {
        notes.push(format!(
            "`{many}`: 8 producers cost {x:.2}x the CPU per message of one (bar: <= \
             {CPU_BAR_8_VS_1:.1}x; {}).",
            bar_verdict(x <= CPU_BAR_8_VS_1)
        ));
    }
    let eight = rows
        .iter()
        .find(|r| r.queue == many && r.producers == 8)
        .and_then(|r| r.vs_one_producer);
    notes.push(match eight {
        Some(x) => {
            format!(
                "`{many}` is shmsock's Inbox: one SPSC ring per producer (no shared tail, no \
                 CAS), a doorbell per writer. 8 producers reach {x:.2}x the rate of one (bar: >= \
                 0.80x; {}).",
                bar_verdict(x >= 0.8)
            )
        }
        _ => format!(
            "`{many}` is shmsock's Inbox: one SPSC ring per producer (no shared tail, no \
             CAS), a doorbell per writer."
        ),
    });
    table.plot = Some("contention.svg");
    table.notes = notes;
    Some(table)
}

/// `contention.svg`: messages per second against producers (1, 2, 4, 8), one curve per
/// queue, measured (solid) and the Comparison's claims (faint), log axis.
pub(crate) fn plot(rows: &[ContentionRow]) -> Option<String> {
    let x_of = Chart::x_of;
    let mut chart = Chart::over_counts(
        "Contention: producers -> one consumer, 4 KiB (messages/s, log scale)",
        &PRODUCERS,
        "producer processes",
        "messages per second, all producers",
    );
    for (k, queue) in distinct(rows.iter().map(|r| r.queue.clone()))
        .into_iter()
        .enumerate()
    {
        let colour = COLOURS[k % 5];
        let measured = rows
            .iter()
            .filter(|r| r.queue == queue)
            .map(|r| (x_of(r.producers), r.msgs_per_s.max(1) as f64))
            .collect();
        let claimed = PRODUCERS
            .iter()
            .filter_map(|&p| {
                let claim = claims::claimed(Metric::Contention { producers: p }, &queue)?;
                Some((x_of(p), claim))
            })
            .collect();
        let line = |width, radius, filled| Mark::Line {
            width,
            radius,
            filled,
        };
        chart.series.push(Series::new(
            queue.as_str(),
            colour,
            line(2, 4, true),
            measured,
        ));
        chart.series.push(Series::new(
            format!("{queue}, Comparison (claimed)"),
            colour.mix(0.35),
            line(1, 3, false),
            claimed,
        ));
    }
    chart.to_svg()
}
