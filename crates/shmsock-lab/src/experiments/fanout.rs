//! Fan-out: one `shmsock::Publisher` process broadcasting to 1, 2 and 4
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
use std::time::Duration;

use shmsock::{Options, Overflow, Publisher, Subscriber};

use serde::{Deserialize, Serialize};

use super::throughput::cpu_pct;
use super::{
    cpu_ns_per_message, get_seq, put_seq, send_numbered, Budgets, Window, SEQ_STOP, WATCHDOG_MARGIN,
};
use crate::chart::{sorted, Chart, Mark, Series, COLOURS};
use crate::error::LabError;
use crate::format::{bar_verdict, fmt_count, fmt_ratio, fmt_size};
use crate::host::{HostInfo, Pinning};
use crate::mechanisms::shmsock::{lib, retry_refused, unique_endpoint};
use crate::process::{outcome, wait_until, ChildStats, Children, Pause};
use crate::rounds::{spread_cell, spread_note, RoundRow, ScaledRow, Spread};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::table::Table;

/// One `shm://` publisher process broadcasting to `subscribers` subscriber processes
/// (the fan-out experiment), `Overflow::Block`: every message reaches every subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutRow {
    /// Subscriber processes.
    pub subscribers: u32,
    /// Message size in bytes.
    pub size: usize,
    /// Messages the publisher sent per second; each was delivered to every subscriber (the
    /// window ends when the last subscriber has everything).
    pub msgs_per_s: u64,
    /// Messages delivered per second, all subscribers together (`msgs_per_s` × subscribers).
    pub delivered_per_s: u64,
    /// Messages sent in the window (every subscriber received exactly these, in order).
    pub messages: u64,
    /// The publisher's window, seconds.
    pub seconds: f64,
    /// CPU use of the publishing thread in its window, % of one CPU.
    pub publisher_cpu_pct: f64,
    /// Mean CPU use of the subscribers' threads from their first message to the last, % of
    /// one CPU.
    pub subscriber_cpu_pct: f64,
    /// Whether the time cap stopped the run before all its messages were sent.
    pub capped: bool,
    /// `msgs_per_s` / the rate with one subscriber at the same size: the median of the
    /// per-round ratios (each round's run over the same round's one-subscriber run).
    #[serde(default)]
    pub vs_one_subscriber: Option<f64>,
    /// CPU time of the publisher and every subscriber (each over its own window) per message
    /// delivered to a subscriber, ns: what fan-out costs the machine per delivery, which a
    /// machine with fewer CPUs than subscribers shows where msgs/s cannot.
    #[serde(default)]
    pub cpu_ns_per_delivered: f64,
    /// `cpu_ns_per_delivered` / the same size's with one subscriber: the median of the
    /// per-round ratios, like `vs_one_subscriber`.
    #[serde(default)]
    pub cpu_vs_one_subscriber: Option<f64>,
    /// The rounds this row is the median of, and their spread of msgs/s.
    #[serde(default)]
    pub spread: Spread,
}

impl RoundRow for FanoutRow {
    fn key(&self) -> f64 {
        self.msgs_per_s as f64
    }
    fn spread_mut(&mut self) -> &mut Spread {
        &mut self.spread
    }
}

impl ScaledRow for FanoutRow {
    fn cpu_ns(&self) -> f64 {
        self.cpu_ns_per_delivered
    }
    fn set_vs_one(&mut self, rate: Option<f64>, cpu: Option<f64>) {
        self.vs_one_subscriber = rate;
        self.cpu_vs_one_subscriber = cpu;
    }
}

impl FanoutRow {
    /// A row from what the publisher measured and its subscribers' own windows.
    pub(crate) fn new(
        subscribers: u32,
        size: usize,
        published: &Published,
        subscriber_stats: &[ChildStats],
    ) -> Self {
        let seconds = published.time.wall_ns.max(1) as f64 / 1e9;
        let msgs_per_s = published.sent as f64 / seconds;
        let subscriber_cpu_pct = subscriber_stats
            .iter()
            .map(|s| cpu_pct(s.cpu_ns, s.wall_ns))
            .sum::<f64>()
            / subscriber_stats.len().max(1) as f64;
        Self {
            subscribers,
            size,
            msgs_per_s: msgs_per_s.round() as u64,
            delivered_per_s: (msgs_per_s * f64::from(subscribers)).round() as u64,
            messages: published.sent,
            seconds,
            publisher_cpu_pct: cpu_pct(published.time.cpu_ns, published.time.wall_ns),
            subscriber_cpu_pct,
            capped: published.capped,
            vs_one_subscriber: None,
            cpu_ns_per_delivered: cpu_ns_per_message(
                &published.time,
                subscriber_stats,
                published.sent * u64::from(subscribers),
            ),
            cpu_vs_one_subscriber: None,
            spread: Spread::default(),
        }
    }
}

/// Message sizes: the lab's small message and the Comparison's 4 KiB.
pub(crate) const SIZES: [usize; 2] = [64, 4096];
/// Subscriber counts.
pub(crate) const SUBSCRIBERS: [u32; 3] = [1, 2, 4];
/// The issue's bar: the rate with 4 subscribers over the rate with one.
pub(crate) const BAR_4_VS_1: f64 = 0.5;
/// The CPU bar: CPU per delivered message with 4 subscribers over that with one.
pub(crate) const CPU_BAR_4_VS_1: f64 = 1.3;
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
    let watchdog = max_time + 2 * READY_TIMEOUT + WATCHDOG_MARGIN;
    let mut buf = vec![0x5Au8; size];
    let mut children = Children::new();
    for k in 0..n {
        children.fork(
            format!("subscriber {k}"),
            pinning.child_cpu,
            watchdog,
            || {
                let result = subscribe(&endpoint, k, size, &control, &mut buf);
                if result.is_err() {
                    control
                        .atomic_u64(FAILED_OFFSET)
                        .fetch_add(1, Ordering::Release);
                }
                result
            },
        )?;
    }
    let result = publish(&endpoint, n, messages, max_time, &control, &mut buf);
    if result.is_err() {
        children.kill_all();
    }
    let (published, child_stats) =
        outcome("publisher", result, children.reap(Duration::from_secs(10)))?;
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
    /// From the first send to the last subscriber's receipt of the stop message: the wall
    /// time, and the CPU time of the publishing thread.
    pub(crate) time: ChildStats,
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
    wait_until(
        "waiting for the subscribers to connect",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(200)),
        || publisher.subscriber_count() >= n,
        || failed().then_some("a subscriber failed before the start"),
    )?;
    let window = Window::start();
    let (sent, capped) = send_numbered::<CLOCK_CHECK_EVERY>(buf, 0, count, max_time, |m| {
        publisher.send(m).map_err(lib("publisher send"))
    })?;
    put_seq(buf, SEQ_STOP);
    publisher.send(buf).map_err(lib("publisher send"))?;
    wait_until(
        "waiting for the subscribers to receive the stop message",
        READY_TIMEOUT,
        Pause::Yield,
        // Acquire: pairs with each subscriber's Release increment after its last message.
        || control.atomic_u64(DONE_OFFSET).load(Ordering::Acquire) >= n as u64,
        || failed().then_some("a subscriber failed during the run"),
    )?;
    Ok(Published {
        sent,
        time: window.stop(),
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
                let time = window.stop();
                let received = expected - 1;
                // Relaxed for the count: the parent reads it after reaping us. Release on
                // `done`: the publisher stops its clock on it.
                control
                    .atomic_u64(RECEIVED_OFFSET + k * CACHE_LINE_BYTES)
                    .store(received, Ordering::Relaxed);
                control
                    .atomic_u64(DONE_OFFSET)
                    .fetch_add(1, Ordering::Release);
                return Ok(time);
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

/// Fills `vs_one_subscriber` and `cpu_vs_one_subscriber` where the rounds did not (a report
/// from before rounds): each row's over the one-subscriber row's at its size.
pub(crate) fn compare_with_one_subscriber(rows: &mut [FanoutRow]) {
    let singles: Vec<(usize, u64, f64)> = rows
        .iter()
        .filter(|r| r.subscribers == 1)
        .map(|r| (r.size, r.msgs_per_s, r.cpu_ns_per_delivered))
        .collect();
    for row in rows {
        row.vs_one_subscriber = row.vs_one_subscriber.or_else(|| {
            singles
                .iter()
                .find(|(size, _, _)| *size == row.size)
                .map(|(_, base, _)| row.msgs_per_s as f64 / (*base).max(1) as f64)
        });
        row.cpu_vs_one_subscriber = row.cpu_vs_one_subscriber.or_else(|| {
            singles
                .iter()
                .find(|(size, _, cpu)| *size == row.size && *cpu > 0.0)
                .map(|(_, _, cpu)| row.cpu_ns_per_delivered / cpu)
        });
    }
}

/// The fan-out table, with the 4-vs-1 bar judged per size.
pub(crate) fn table(rows: &[FanoutRow], host: &HostInfo) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                fmt_size(r.size),
                r.subscribers.to_string(),
                format!(
                    "{}{}",
                    fmt_count(r.msgs_per_s),
                    if r.capped { "*" } else { "" }
                ),
                spread_cell(&r.spread, |rate| fmt_count(rate as u64)),
                fmt_count(r.delivered_per_s),
                fmt_ratio(r.vs_one_subscriber, 2),
                format!("{:.0}/{:.0}", r.publisher_cpu_pct, r.subscriber_cpu_pct),
                format!("{:.0}", r.cpu_ns_per_delivered),
                fmt_ratio(r.cpu_vs_one_subscriber, 2),
            ]
        })
        .collect();
    let p = host.pinning;
    let mut notes = vec![format!(
        "shmsock::Publisher -> Subscriber over shm:// (default options: one broadcast \
         ring, Overflow::Block, so the publisher waits for the slowest subscriber and \
         nothing is lost; every subscriber checked every sequence number). The publisher \
         runs on CPU {}, every subscriber on CPU {}; msgs/s is the publisher's rate, its \
         window ending when the last subscriber has the last message.",
        p.parent_cpu, p.child_cpu
    )];
    if host.cpus_allowed <= 2 {
        notes.push(format!(
            "This machine has {} usable CPU(s): 2 and 4 subscribers time-share one CPU, so \
             the publisher waits while the scheduler rotates them (each gets 1/N of the \
             CPU), not while they read in parallel as on a machine with a CPU per \
             subscriber. Their CPU does all the reading (delivered/s (all) is its total), \
             so N subscribers can reach at most ~1/N of the rate of one: 0.25x for 4, \
             under the bar by construction; the bar needs a CPU per subscriber to be \
             judged.",
            host.cpus_allowed
        ));
    }
    if rows.iter().any(|r| r.capped) {
        notes.push("* the run's time cap ended it before all its messages were sent.".into());
    }
    for size in sorted(rows.iter().map(|r| r.size)) {
        if let Some(x) = rows
            .iter()
            .find(|r| r.size == size && r.subscribers == 4)
            .and_then(|r| r.vs_one_subscriber)
        {
            notes.push(format!(
                "{}: 4 subscribers reach {x:.2}x the publisher rate with one (bar: >= \
                 {BAR_4_VS_1:.2}x; {}).",
                fmt_size(size),
                bar_verdict(x >= BAR_4_VS_1)
            ));
        }
    }
    notes.push(format!(
        "CPU ns/delivered: the CPU time of the publisher and every subscriber, each over its \
         own window, per message delivered to a subscriber: the work fan-out costs, which \
         does not depend on how many CPUs share it (bar: 4 subscribers <= \
         {CPU_BAR_4_VS_1:.1}x the CPU per delivered message of one)."
    ));
    for size in sorted(rows.iter().map(|r| r.size)) {
        if let Some(x) = rows
            .iter()
            .find(|r| r.size == size && r.subscribers == 4)
            .and_then(|r| r.cpu_vs_one_subscriber)
        {
            notes.push(format!(
                "{}: 4 subscribers cost {x:.2}x the CPU per delivered message of one ({}).",
                fmt_size(size),
                bar_verdict(x <= CPU_BAR_4_VS_1)
            ));
        }
    }
    let mut table = Table::new(
        "Fan-out: one publisher process -> N subscriber processes over shm:// \
         (msgs/s sent, each delivered to every subscriber)",
        vec![
            "size",
            "subscribers",
            "msgs/s",
            "msgs/s spread",
            "delivered/s (all)",
            "vs 1 subscriber",
            "CPU% pub/sub",
            "CPU ns/delivered",
            "CPU vs 1",
        ],
        cells,
    );
    notes.push(
        "`vs 1 subscriber` and `CPU vs 1`: the median over the rounds of each round's run \
         over the same round's one-subscriber run."
            .into(),
    );
    notes.extend(spread_note(rows.iter().map(|r| &r.spread)));
    table.plot = Some("fanout.svg");
    table.notes = notes;
    Some(table)
}

/// `fanout.svg`: the publisher's messages per second against subscribers (1, 2, 4), one
/// curve per message size, log axis.
pub(crate) fn plot(rows: &[FanoutRow]) -> Option<String> {
    let mut chart = Chart::over_counts(
        "Fan-out: one publisher -> N subscribers over shm:// (messages/s sent, log scale)",
        &SUBSCRIBERS,
        "subscriber processes",
        "messages per second, sent to all",
    );
    for (k, size) in sorted(rows.iter().map(|r| r.size)).into_iter().enumerate() {
        let points = rows
            .iter()
            .filter(|r| r.size == size)
            .map(|r| (Chart::x_of(r.subscribers), r.msgs_per_s.max(1) as f64))
            .collect();
        let line = Mark::Line {
            width: 2,
            radius: 4,
            filled: true,
        };
        chart
            .series
            .push(Series::new(fmt_size(size), COLOURS[k % 4], line, points));
    }
    chart.to_svg()
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
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("pinning");
        let _pinned = crate::process::AffinityGuard::pin(pinning.parent_cpu).expect("pin");
        for subscribers in [1, 2] {
            let row = measure(subscribers, 64, 20_000, Duration::from_secs(20), pinning)
                .expect("fan-out runs");
            assert_eq!(row.subscribers, subscribers);
            assert_eq!(row.messages, 20_000, "{row:?}");
            assert!(!row.capped && row.msgs_per_s > 0, "{row:?}");
            assert!(row.cpu_ns_per_delivered > 0.0, "{row:?}");
        }
    }
}
