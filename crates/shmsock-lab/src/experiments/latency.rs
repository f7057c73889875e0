//! Ping-pong latency.
//!
//! The parent (ping) writes sequence number `n` into the first 8 bytes of a message and sends
//! it; the child (pong) receives it and sends back exactly the bytes it received; the parent
//! receives the echo and checks that it carries `n`. One round trip is timed per sample
//! (`Instant::now` before the send and after the receive, ~20 ns of clock reads included) and
//! recorded in an HDR histogram in ns. After the warm-up and the measured loop the parent sends
//! `SEQ_STOP`, which the child echoes and then stops.
//!
//! One-way latency is reported as RTT / 2: with the two processes on different CPUs there is no
//! shared clock precise enough to time one direction alone.

use std::time::Instant;

use hdrhistogram::Histogram;
use plotters::style::{BLUE, GREEN, MAGENTA, RED};
use serde::{Deserialize, Serialize};

use super::pair::run_pair;
use super::{get_seq, put_seq, Budget, Window, SEQ_STOP};
use crate::chart::{Chart, Mark, Scale, Series};
use crate::claims;
use crate::error::LabError;
use crate::format::{bar_verdict, fmt_ns, fmt_ratio, fmt_size};
use crate::host::Pinning;
use crate::mechanisms::{self, Mechanism, Pattern, Side};
use crate::options::LATENCY_SIZE;
use crate::process::ChildStats;
use crate::rounds::{spread_cell, spread_note, RoundRow, Spread};
use crate::stats::Percentiles;
use crate::table::Table;

/// Ping-pong latency of one mechanism at one message size. Times are round trips, in ns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    /// Mechanism name.
    pub mechanism: String,
    /// Message size in bytes.
    pub size: usize,
    /// The round trips (`min_ns`, `p50_ns`, ... in the JSON).
    #[serde(flatten)]
    pub rtt: Percentiles,
    /// One-way latency estimate: `p50_ns / 2`.
    pub oneway_p50_ns: u64,
    /// Round trips measured.
    pub samples: u64,
    /// `p50_ns` divided by the floor's `p50_ns` (`None` if the floor is unavailable).
    pub p50_vs_floor: Option<f64>,
    /// The median over the row's rounds of each round's p50 over the mean of the floor
    /// probes just before and just after it (see [`rounds::floor_paired`]): the ratio to a
    /// floor measured moments apart, which the VM's modes move far less than
    /// `p50_vs_floor`. `None` on one CPU and where no round had both probes.
    ///
    /// [`rounds::floor_paired`]: crate::rounds::floor_paired
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_vs_floor_paired: Option<f64>,
    /// Where the mechanism ran, when that matters (the filesystem of its file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The rounds this row is the median of, and their spread of p50 round trips (ns).
    #[serde(default)]
    pub spread: Spread,
}

impl RoundRow for LatencyRow {
    fn key(&self) -> f64 {
        self.rtt.p50_ns as f64
    }
    fn spread_mut(&mut self) -> &mut Spread {
        &mut self.spread
    }
}

impl LatencyRow {
    /// A row of round trips summarised as `rtt`.
    pub(crate) fn new(mechanism: &str, size: usize, rtt: Percentiles, samples: u64) -> Self {
        Self {
            mechanism: mechanism.to_string(),
            size,
            rtt,
            oneway_p50_ns: rtt.p50_ns / 2,
            samples,
            p50_vs_floor: None,
            p50_vs_floor_paired: None,
            note: None,
            spread: Spread::default(),
        }
    }
}

/// Longest round trip the histogram holds (longer ones are clamped to it): 100 s.
const MAX_RTT_NS: u64 = 100_000_000_000;

/// Measures `mechanism`'s round trip with `size`-byte messages.
pub(crate) fn measure(
    mechanism: &dyn Mechanism,
    size: usize,
    budget: Budget,
    pinning: Pinning,
) -> Result<LatencyRow, LabError> {
    let payload = mechanism.payload_len(size);
    let buf_len = size.max(8);
    let mut child_buf = vec![0u8; buf_len];
    let mut ping = vec![0xA5u8; buf_len];
    let mut echo = vec![0u8; buf_len];
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_RTT_NS, 3).map_err(|e| LabError::Integrity {
            detail: format!("creating the latency histogram: {e}"),
        })?;
    let (samples, _) = run_pair(
        mechanism,
        Pattern::PingPong,
        size,
        pinning,
        budget.watchdog(),
        |side| pong(side, &mut child_buf),
        |side| {
            let mut seq = 0u64;
            let mut round_trip = |side: &mut dyn Side, seq: u64| -> Result<(), LabError> {
                put_seq(&mut ping, seq);
                side.send(&ping[..size])?;
                let n = side.recv(&mut echo)?;
                check_echo(&echo[..n], payload, seq)
            };
            let warmup_end = Instant::now() + budget.warmup_time;
            while seq < budget.warmup_iters && Instant::now() < warmup_end {
                seq += 1;
                round_trip(side, seq)?;
            }
            let end = Instant::now() + budget.max_time;
            let mut measured = 0u64;
            while measured < budget.iters {
                seq += 1;
                side.prepare_round_trip();
                let t0 = Instant::now();
                round_trip(side, seq)?;
                let t1 = Instant::now();
                let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
                hist.saturating_record(ns.clamp(1, MAX_RTT_NS));
                measured += 1;
                if t1 >= end {
                    break;
                }
            }
            round_trip(side, SEQ_STOP)?;
            Ok(measured)
        },
    )?;
    let mut row = LatencyRow::new(
        mechanism.name(),
        size,
        Percentiles::from_histogram(&hist),
        samples,
    );
    row.note = mechanism.note();
    Ok(row)
}

/// The child's side: echo every message until the stop message has been echoed.
fn pong(side: &mut dyn Side, buf: &mut [u8]) -> Result<ChildStats, LabError> {
    let window = Window::start();
    loop {
        let n = side.recv(buf)?;
        side.send(&buf[..n])?;
        if get_seq(&buf[..n]) == Some(SEQ_STOP) {
            return Ok(window.stop());
        }
    }
}

fn check_echo(echo: &[u8], payload: usize, seq: u64) -> Result<(), LabError> {
    if echo.len() != payload {
        return Err(LabError::Integrity {
            detail: format!(
                "echo of message {seq} has {} bytes, expected {payload}",
                echo.len()
            ),
        });
    }
    match get_seq(echo) {
        Some(got) if got == seq => Ok(()),
        got => Err(LabError::Integrity {
            detail: format!("echo of message {seq} carries sequence number {got:?}"),
        }),
    }
}

/// Fills `p50_vs_floor` of every row: its p50 over the p50 of the `floor` row among them.
pub(crate) fn compare_with_floor(rows: &mut [LatencyRow]) {
    let floor = rows
        .iter()
        .find(|r| r.mechanism == "floor")
        .map(|r| r.rtt.p50_ns);
    for row in rows.iter_mut() {
        row.p50_vs_floor = floor.map(|f| row.rtt.p50_ns as f64 / f.max(1) as f64);
    }
}

/// The round trip bars of the `shm://` transport (its design targets): each row's p50 within
/// this factor of the floor's, busy-polling and adaptive (a waiter that is awake).
pub(crate) const ROUND_TRIP_BARS: [(&str, f64); 2] = [("shmsock-busy", 1.5), ("shmsock", 1.6)];

/// The notes that judge [`ROUND_TRIP_BARS`], in the bars' own terms (`p50/floor`) and by the
/// paired ratio, each with its verdict: the two can disagree in a noisy run.
fn bar_notes(rows: &[LatencyRow]) -> Vec<String> {
    ROUND_TRIP_BARS
        .iter()
        .filter_map(|&(name, bar)| {
            let row = find(rows, name)?;
            let ratio = row.p50_vs_floor?;
            let paired = row.p50_vs_floor_paired.map_or_else(String::new, |x| {
                format!("; {x:.2}x paired, {}", bar_verdict(x <= bar))
            });
            Some(format!(
                "{name}: p50 round trip {ratio:.2}x the floor's (bar: <= {bar:.1}x; {}{paired}).",
                bar_verdict(ratio <= bar)
            ))
        })
        .collect()
}

/// The row of `mechanism` at the lab's latency size, if measured.
pub(crate) fn find<'a>(rows: &'a [LatencyRow], mechanism: &str) -> Option<&'a LatencyRow> {
    rows.iter()
        .find(|r| r.mechanism == mechanism && r.size == LATENCY_SIZE)
}

/// Why a kernel wake-up costs more across CPUs than on one, with this run's numbers (the
/// first mechanism among `futex`, `pipe`, `uds-stream`, `eventfd` whose two placements were
/// both measured).
pub(crate) fn wakeup_note(rows: &[LatencyRow], same_cpu: &[LatencyRow]) -> Option<String> {
    let (cross, same) = ["futex", "pipe", "uds-stream", "eventfd"]
        .iter()
        .find_map(|name| Some((find(rows, name)?, find(same_cpu, name)?)))?;
    Some(format!(
        "Why kernel mechanisms are slower across CPUs ({m}: {c} RTT p50 across CPUs, {s} on \
         one CPU):\n\
         a blocked reader sleeps; waking it on ANOTHER CPU means an inter-processor interrupt\n\
         to a CPU that is idle. On a small VM an idle vCPU halts (its host thread sleeps), so\n\
         the wake-up waits for the hypervisor to reschedule that vCPU: tens of µs per\n\
         direction. On the SAME CPU the writer just marks the reader runnable and the\n\
         scheduler switches to it when the writer blocks: a context switch, a few µs, no\n\
         interrupt, no halted CPU. Spinning mechanisms (floor, raw-ring, shmsock-busy) show\n\
         the opposite: across CPUs they never sleep, on one CPU each must yield to let the\n\
         other run.",
        m = cross.mechanism,
        c = fmt_ns(cross.rtt.p50_ns),
        s = fmt_ns(same.rtt.p50_ns),
    ))
}

/// This run's latency of `mechanism` in words, for the documents' statements about it: one-way
/// p50 on two CPUs and on one, how much of a message it carries, whether it streams.
fn measured_words(rows: &[LatencyRow], same_cpu: &[LatencyRow], mechanism: &str) -> String {
    let Some(row) = find(rows, mechanism) else {
        return "not measured".into();
    };
    let same = find(same_cpu, mechanism).map_or_else(String::new, |s| {
        format!(", {} on one CPU", fmt_ns(s.oneway_p50_ns))
    });
    let carries = mechanisms::by_name(mechanism).map_or_else(
        |_| String::new(),
        |m| {
            let streams = if m.supports(Pattern::Stream) {
                "streams too"
            } else {
                "latency only"
            };
            format!(
                "; carries {} of a {LATENCY_SIZE} B message, {streams}",
                fmt_size(m.payload_len(LATENCY_SIZE))
            )
        },
    );
    format!(
        "one-way p50 {} across CPUs{same}{carries}",
        fmt_ns(row.oneway_p50_ns)
    )
}

/// The latency table: round trips across CPUs, one-way, against the floor and on one CPU.
pub(crate) fn table(rows: &[LatencyRow], same_cpu: &[LatencyRow]) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let cells = rows
        .iter()
        .map(|r| {
            let same = same_cpu
                .iter()
                .find(|s| s.mechanism == r.mechanism)
                .map_or_else(|| "-".into(), |s| fmt_ns(s.rtt.p50_ns));
            vec![
                r.mechanism.clone(),
                fmt_ns(r.rtt.min_ns),
                fmt_ns(r.rtt.p50_ns),
                fmt_ns(r.rtt.p99_ns),
                fmt_ns(r.rtt.p999_ns),
                fmt_ns(r.oneway_p50_ns),
                fmt_ratio(r.p50_vs_floor, 1),
                fmt_ratio(r.p50_vs_floor_paired, 2),
                spread_cell(&r.spread, |ns| fmt_ns(ns as u64)),
                same,
            ]
        })
        .collect();
    let mut table = Table::new(
        format!("Latency: {LATENCY_SIZE} B ping-pong"),
        vec![
            "mechanism",
            "RTT min",
            "RTT p50",
            "RTT p99",
            "RTT p99.9",
            "one-way p50",
            "p50/floor",
            "paired",
            "p50 spread",
            "same-CPU RTT p50",
        ],
        cells,
    );
    table.plot = Some("latency.svg");
    table.intro = vec!["RTT = round trip; one-way = RTT / 2.".into()];
    table
        .notes
        .extend(spread_note(rows.iter().chain(same_cpu).map(|r| &r.spread)));
    if rows.iter().any(|r| r.p50_vs_floor_paired.is_some()) {
        table.notes.push(
            "paired: each round's p50 over the mean of the floor probes just before and just \
             after it, the median of those ratios over the row's rounds. p50/floor divides \
             medians taken minutes apart, and this VM's cache-line round trip changes 3x for \
             seconds at a time; the paired ratio compares a round with the floor of its own \
             moment (the floor row's own paired ratio shows how well the short probe agrees \
             with a full round)."
                .into(),
        );
    }
    table.notes.extend(bar_notes(rows));
    table.notes.extend(wakeup_note(rows, same_cpu));
    let names: Vec<&str> = rows.iter().map(|r| r.mechanism.as_str()).collect();
    table.notes.extend(claims::statement_notes(&names, |name| {
        measured_words(rows, same_cpu, name)
    }));
    table.notes.extend(super::throughput::distinct_notes(
        rows.iter().map(|r| &r.note),
    ));
    Some(table)
}

/// `latency.svg`: two panels. Top, sides on different CPUs: RTT min / p50 / p99 / p99.9 per
/// mechanism on a log axis, over the reference documents' claimed typical latencies (one way,
/// so drawn at twice their range) as shaded bands. Bottom, both sides on one CPU: the same
/// percentiles in their own panel, whose scale (a scheduler's time slices for spinning
/// mechanisms) would otherwise flatten the top one.
pub(crate) fn plot(
    rows: &[LatencyRow],
    same_cpu: &[LatencyRow],
    checks: &[claims::ClaimCheck],
) -> Option<String> {
    let across = panel(
        format!("Ping-pong round trip, {LATENCY_SIZE} B, sides on different CPUs (log scale)"),
        rows,
        checks,
    )?;
    let mut panels = vec![across];
    if let Some(same) = panel(
        format!("The same, both sides on one CPU ({LATENCY_SIZE} B, log scale)"),
        same_cpu,
        &[],
    ) {
        panels.push(same);
    }
    crate::chart::stack(&panels)
}

/// One panel of `latency.svg`: the percentiles of `rows`, with the claimed typical latencies
/// of `checks` as bands.
fn panel(caption: String, rows: &[LatencyRow], checks: &[claims::ClaimCheck]) -> Option<String> {
    let mut chart = Chart::new(
        caption,
        rows.iter().map(|r| r.mechanism.clone()).collect(),
        "round trip",
    );
    chart.vertical_labels = true;
    chart.scale = Scale::Log;
    chart.ns_labels = true;
    chart.legend = plotters::chart::SeriesLabelPosition::UpperLeft;
    chart.band_label = "agrees with the claimed typical latency (2 x one way, x/÷ 1.5)";
    chart.bands = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let c = checks.iter().find(|c| {
                c.metric == Some(claims::Metric::LatencyTypical) && c.measured_by == r.mechanism
            })?;
            let (low, high) = claims::agreement(c)?;
            Some((i as f64, 2.0 * low, 2.0 * high))
        })
        .collect();
    let colours = [GREEN, BLUE, MAGENTA, RED];
    for (k, colour) in colours.into_iter().enumerate() {
        let points = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, r.rtt.labelled()[k].1.max(1) as f64))
            .collect();
        let label = format!("RTT {}", rows.first()?.rtt.labelled()[k].0);
        chart
            .series
            .push(Series::new(label, colour, Mark::Dots(4), points));
    }
    chart.to_svg()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mechanism: &str, p50_ns: u64, paired: Option<f64>) -> LatencyRow {
        let rtt = Percentiles::at(p50_ns, [1, 1, 1]);
        let mut row = LatencyRow::new(mechanism, LATENCY_SIZE, rtt, 1000);
        row.p50_vs_floor_paired = paired;
        row
    }

    #[test]
    fn the_round_trip_bars_are_judged_both_ways() {
        let mut rows = vec![
            row("floor", 150, Some(1.0)),
            row("shmsock-busy", 231, Some(1.62)),
            row("shmsock", 231, None),
        ];
        compare_with_floor(&mut rows);
        let notes = bar_notes(&rows);
        assert_eq!(
            notes,
            [
                "shmsock-busy: p50 round trip 1.54x the floor's (bar: <= 1.5x; NOT met in \
                 this run; 1.62x paired, NOT met in this run).",
                "shmsock: p50 round trip 1.54x the floor's (bar: <= 1.6x; met).",
            ]
        );
        // Without a floor there is nothing to judge.
        let mut alone = vec![row("shmsock", 231, None)];
        compare_with_floor(&mut alone);
        assert!(bar_notes(&alone).is_empty());
    }
}
