//! One-way streaming throughput.
//!
//! The child (sender) sends `warmup_iters` messages, then up to `iters` more or until
//! `max_time` has passed (it checks the clock every `CLOCK_CHECK_EVERY` messages, so the
//! check costs nothing per message), then one `SEQ_STOP` message. Each message carries its
//! sequence number in its first 8 bytes. The parent (receiver) checks every sequence number,
//! starts its clock when the first message after the warm-up arrives and stops it when the stop
//! message arrives, so the rate is `messages received in between / elapsed`, measured by the
//! receiver. Both sides also time their own thread's CPU use over their window, for CPU%.

use serde::{Deserialize, Serialize};

use super::pair::run_pair;
use super::{put_seq, send_numbered, Budget, NumberedStream, Window, SEQ_STOP};
use crate::chart::{sorted, Chart, Mark, Scale, Series, COLOURS};
use crate::claims;
use crate::error::LabError;
use crate::format::{bar_verdict, fmt_count, fmt_ratio, fmt_size};
use crate::host::Pinning;
use crate::mechanisms::data_path::{self, DataPath};
use crate::mechanisms::{Mechanism, Pattern, Side};
use crate::process::ChildStats;
use crate::rounds::{spread_cell, spread_note, RoundRow, Spread};
use crate::table::{Group, Table};

/// Streaming throughput of one mechanism at one message size, measured by the receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputRow {
    /// Mechanism name.
    pub mechanism: String,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second.
    pub msgs_per_s: u64,
    /// Payload bytes per second.
    pub bytes_per_s: u64,
    /// Messages counted in the measured window.
    pub messages: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// CPU use of the sending process's thread while it sent, in % of one CPU.
    pub sender_cpu_pct: f64,
    /// CPU use of the receiving process's thread while it received, in % of one CPU.
    pub receiver_cpu_pct: f64,
    /// `msgs_per_s` divided by `raw-ring`'s at the same size.
    pub vs_raw_ring: Option<f64>,
    /// `msgs_per_s` divided by `uds-stream`'s at the same size.
    pub vs_uds_stream: Option<f64>,
    /// For rows measured next to the raw ring (shmsock's): the median over rounds of the
    /// round's rate divided by the raw ring's, measured at the same size right after it. The
    /// host's speed drifts over seconds (2-3x on our VMs), which moves `vs_raw_ring`, a
    /// ratio of two medians measured minutes apart; this one compares like with like.
    #[serde(default)]
    pub vs_raw_ring_paired: Option<f64>,
    /// The part of `sender_cpu_pct` spent in the kernel (system time), in % of one CPU.
    #[serde(default)]
    pub sender_kernel_pct: f64,
    /// The part of `receiver_cpu_pct` spent in the kernel (system time), in % of one CPU.
    #[serde(default)]
    pub receiver_kernel_pct: f64,
    /// Where the mechanism ran, when that matters (the filesystem of its file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Copies of the payload per message from the sender's buffer to the receiver's, by
    /// construction ([`crate::mechanisms::data_path`]); `None` for a row the table lacks.
    #[serde(default)]
    pub copies_per_msg: Option<u32>,
    /// How many of `copies_per_msg` the kernel makes.
    #[serde(default)]
    pub kernel_copies_per_msg: Option<u32>,
    /// System calls per message of the sending side: counted by the kernel when
    /// `syscalls_counted`, else by construction; `None` when neither is known.
    #[serde(default)]
    pub sender_syscalls_per_msg: Option<f64>,
    /// System calls per message of the receiving side, likewise.
    #[serde(default)]
    pub receiver_syscalls_per_msg: Option<f64>,
    /// Whether the system calls were counted by the kernel (the row's data calls are
    /// `read(2)`/`write(2)`, which `/proc/thread-self/io` counts per thread) rather than taken
    /// from the mechanism's construction.
    #[serde(default)]
    pub syscalls_counted: bool,
    /// Context switches (voluntary + involuntary, `getrusage(RUSAGE_THREAD)`) of the sending
    /// side's thread per message over its window.
    #[serde(default)]
    pub sender_switches_per_msg: Option<f64>,
    /// Context switches of the receiving side's thread per message over its window.
    #[serde(default)]
    pub receiver_switches_per_msg: Option<f64>,
    /// The rounds this row is the median of, and their spread of msgs/s.
    #[serde(default)]
    pub spread: Spread,
}

impl RoundRow for ThroughputRow {
    fn key(&self) -> f64 {
        self.msgs_per_s as f64
    }
    fn spread_mut(&mut self) -> &mut Spread {
        &mut self.spread
    }
}

impl ThroughputRow {
    /// Computes the rates from the receiver's count and window and both sides' CPU times.
    pub(crate) fn new(
        mechanism: &str,
        size: usize,
        messages: u64,
        wall_ns: u64,
        sender_cpu_ns: u64,
        sender_wall_ns: u64,
        receiver_cpu_ns: u64,
    ) -> Self {
        let seconds = wall_ns.max(1) as f64 / 1e9;
        let msgs_per_s = messages as f64 / seconds;
        Self {
            mechanism: mechanism.to_string(),
            size,
            msgs_per_s: msgs_per_s.round() as u64,
            bytes_per_s: (msgs_per_s * size as f64).round() as u64,
            messages,
            seconds,
            sender_cpu_pct: cpu_pct(sender_cpu_ns, sender_wall_ns),
            receiver_cpu_pct: cpu_pct(receiver_cpu_ns, wall_ns),
            vs_raw_ring: None,
            vs_uds_stream: None,
            vs_raw_ring_paired: None,
            sender_kernel_pct: 0.0,
            receiver_kernel_pct: 0.0,
            note: None,
            spread: Spread::default(),
            copies_per_msg: None,
            kernel_copies_per_msg: None,
            sender_syscalls_per_msg: None,
            receiver_syscalls_per_msg: None,
            syscalls_counted: false,
            sender_switches_per_msg: None,
            receiver_switches_per_msg: None,
        }
    }

    /// Fills the per-message costs of the row from both sides' windows and the mechanism's
    /// data path: copies by construction, context switches as counted, and system calls as
    /// the kernel counted them when the data calls are read/write ones (and both sides' counts
    /// could be read), else by construction.
    pub(crate) fn account(
        &mut self,
        sender: &ChildStats,
        receiver: &ChildStats,
        path: Option<DataPath>,
    ) {
        let per_msg = |n: u64| n as f64 / self.messages.max(1) as f64;
        self.sender_switches_per_msg = Some(per_msg(
            sender.voluntary_switches + sender.involuntary_switches,
        ));
        self.receiver_switches_per_msg = Some(per_msg(
            receiver.voluntary_switches + receiver.involuntary_switches,
        ));
        let Some(path) = path else {
            return;
        };
        self.copies_per_msg = Some(path.copies);
        self.kernel_copies_per_msg = Some(path.kernel_copies);
        match (path.rw_family, sender.rw_syscalls, receiver.rw_syscalls) {
            (true, Some(send), Some(recv)) => {
                self.sender_syscalls_per_msg = Some(per_msg(send));
                self.receiver_syscalls_per_msg = Some(per_msg(recv));
                self.syscalls_counted = true;
            }
            _ => {
                self.sender_syscalls_per_msg = path.send_syscalls;
                self.receiver_syscalls_per_msg = path.recv_syscalls;
            }
        }
    }

    /// System calls per message of both sides together, if both are known.
    pub fn syscalls_per_msg(&self) -> Option<f64> {
        Some(self.sender_syscalls_per_msg? + self.receiver_syscalls_per_msg?)
    }

    /// CPU time of both sides per message, ns (what `CPU%` costs each message).
    pub fn cpu_ns_per_msg(&self) -> f64 {
        (self.sender_cpu_pct + self.receiver_cpu_pct) / 100.0 * 1e9 / self.msgs_per_s.max(1) as f64
    }

    /// Shortest measured window whose kernel/user split is reported: the kernel splits a
    /// thread's CPU time by sampling at its timer ticks (every 1–10 ms), so a shorter window
    /// gets a handful of samples, or none.
    pub const KERNEL_SPLIT_MIN_SECONDS: f64 = 0.1;

    /// Whether the window was long enough for the kernel/user split to mean something
    /// ([`ThroughputRow::KERNEL_SPLIT_MIN_SECONDS`]).
    pub fn kernel_split_known(&self) -> bool {
        self.seconds >= Self::KERNEL_SPLIT_MIN_SECONDS
    }

    /// The share of both sides' CPU time spent in user space, in %: 100 when the kernel did
    /// no work for either side while they streamed (`None` if they used no CPU or the window
    /// was too short to tell).
    pub fn user_share_pct(&self) -> Option<f64> {
        let cpu = self.sender_cpu_pct + self.receiver_cpu_pct;
        let kernel = self.sender_kernel_pct + self.receiver_kernel_pct;
        (cpu > 0.0 && self.kernel_split_known())
            .then(|| 100.0 * (1.0 - kernel / cpu).clamp(0.0, 1.0))
    }
}

/// CPU time over wall time, in % of one CPU.
pub(crate) fn cpu_pct(cpu_ns: u64, wall_ns: u64) -> f64 {
    100.0 * cpu_ns as f64 / wall_ns.max(1) as f64
}

/// Fills `vs_raw_ring` and `vs_uds_stream`: each row's rate over theirs at the same size.
pub(crate) fn compare_with_references(rows: &mut [ThroughputRow]) {
    let rate = |rows: &[ThroughputRow], name: &str, size: usize| {
        rows.iter()
            .find(|r| r.mechanism == name && r.size == size)
            .map(|r| r.msgs_per_s)
    };
    let rates: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                rate(rows, "raw-ring", r.size),
                rate(rows, "uds-stream", r.size),
            )
        })
        .collect();
    for (row, (raw, uds)) in rows.iter_mut().zip(rates) {
        let ratio = |base: u64| row.msgs_per_s as f64 / base.max(1) as f64;
        row.vs_raw_ring = raw.map(ratio);
        row.vs_uds_stream = uds.map(ratio);
    }
}

/// The streaming bars of the `shm://` transport (its design targets): at each of these
/// message sizes, every wait strategy's rate at least this fraction of the raw ring's,
/// paired (the raw ring measured right after each round).
pub(crate) const STREAM_BARS: [(usize, f64); 3] = [(64, 0.7), (4096, 0.9), (1 << 20, 0.9)];

/// The rows [`STREAM_BARS`] judge: shmsock's `Conn` in its three wait strategies.
const STREAM_BAR_ROWS: [&str; 3] = ["shmsock-busy", "shmsock", "shmsock-blocking"];

/// The notes that judge [`STREAM_BARS`], one per size with paired rows, naming the rows
/// under the bar.
fn bar_notes(rows: &[ThroughputRow]) -> Vec<String> {
    STREAM_BARS
        .iter()
        .filter_map(|&(size, bar)| {
            let measured: Vec<(&str, f64)> = STREAM_BAR_ROWS
                .iter()
                .filter_map(|&name| {
                    let row = rows
                        .iter()
                        .find(|r| r.size == size && r.mechanism == name)?;
                    Some((name, row.vs_raw_ring_paired?))
                })
                .collect();
            if measured.is_empty() {
                return None;
            }
            let listed: Vec<String> = measured
                .iter()
                .map(|(name, x)| format!("{name} {x:.2}x"))
                .collect();
            let under: Vec<&str> = measured
                .iter()
                .filter(|(_, x)| *x < bar)
                .map(|(name, _)| *name)
                .collect();
            let verdict = if under.is_empty() {
                bar_verdict(true).to_string()
            } else {
                format!("{} by {}", bar_verdict(false), under.join(", "))
            };
            Some(format!(
                "{}: {} the raw ring's rate, paired (bar: >= {bar:.1}x in every wait \
                 strategy; {verdict}).",
                fmt_size(size),
                listed.join(", ")
            ))
        })
        .collect()
}

/// The throughput table, one group of rows per message size.
pub(crate) fn table(rows: &[ThroughputRow]) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let groups = sorted(rows.iter().map(|r| r.size))
        .into_iter()
        .map(|size| {
            let of_size: Vec<_> = rows.iter().filter(|r| r.size == size).collect();
            let messages = of_size.iter().map(|r| r.messages).max().unwrap_or(0);
            Group {
                heading: Some(format!(
                    "{} messages (up to {} per row)",
                    fmt_size(size),
                    fmt_count(messages)
                )),
                rows: of_size
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.mechanism.clone(),
                            fmt_count(r.msgs_per_s),
                            spread_cell(&r.spread, |rate| fmt_count(rate as u64)),
                            format!("{:.2}", r.bytes_per_s as f64 / 1e9),
                            fmt_ratio(r.vs_raw_ring, 2),
                            fmt_ratio(r.vs_raw_ring_paired, 2),
                            format!("{:.0}", r.sender_cpu_pct),
                            format!("{:.0}", r.receiver_cpu_pct),
                            if r.kernel_split_known() {
                                format!("{:.0}/{:.0}", r.sender_kernel_pct, r.receiver_kernel_pct)
                            } else {
                                "-".into()
                            },
                            match (r.copies_per_msg, r.kernel_copies_per_msg) {
                                (Some(all), Some(kernel)) => format!("{all} ({kernel})"),
                                _ => "-".into(),
                            },
                            match (r.sender_syscalls_per_msg, r.receiver_syscalls_per_msg) {
                                (Some(send), Some(recv)) => format!(
                                    "{}/{}{}",
                                    fmt_per_msg(send),
                                    fmt_per_msg(recv),
                                    if r.syscalls_counted { "" } else { " (design)" }
                                ),
                                _ => "-".into(),
                            },
                            match (r.sender_switches_per_msg, r.receiver_switches_per_msg) {
                                (Some(send), Some(recv)) => {
                                    format!("{}/{}", fmt_per_msg(send), fmt_per_msg(recv))
                                }
                                _ => "-".into(),
                            },
                        ]
                    })
                    .collect(),
            }
        })
        .collect();
    let mut notes = vec![format!(
        "kernel%: the part of each side's CPU% spent in the kernel (system time, which the \
         kernel splits from user time at its timer ticks); - for a window under {:.0} ms, too \
         short to tell.",
        ThroughputRow::KERNEL_SPLIT_MIN_SECONDS * 1e3
    )];
    notes.extend(spread_note(rows.iter().map(|r| &r.spread)));
    if rows.iter().any(|r| r.vs_raw_ring_paired.is_some()) {
        notes.push(
            "paired: each round of the row over the raw ring measured at the same size right \
             after it, the median over the rounds. `vs raw-ring` divides two medians measured \
             minutes apart, and a host whose speed drifts (2-3x over seconds on our VMs) moves \
             it; the paired ratio compares rounds that ran moments apart."
                .into(),
        );
    }
    notes.extend(bar_notes(rows));
    notes.push(
        "copies (kernel): copies of the payload per message from the sender's buffer to the \
         receiver's, and how many the kernel makes, by construction. syscalls/msg send/recv: \
         counted by the kernel for rows whose data calls are read(2)/write(2) \
         (/proc/thread-self/io), else from the mechanism's construction, marked (design); a \
         spinning side's sched_yield while it waits is not in them. switches/msg: context \
         switches per message of each side's thread (getrusage: voluntary, it slept; \
         involuntary, the scheduler took its CPU)."
            .into(),
    );
    notes.extend(distinct_notes(rows.iter().map(|r| &r.note)));
    if rows.iter().any(|r| r.mechanism.ends_with("-offset")) {
        notes.push(
            "`*-offset` rows exchange offsets into a shared pool: the payload is never copied, \
             so their GB/s is offsets/s × size, the way the Comparison counts its 1 MB \
             shared-memory row."
                .into(),
        );
    }
    Some(Table {
        title: "Throughput: one way, measured by the receiver".into(),
        plot: Some("throughput.svg"),
        headers: vec![
            "mechanism",
            "msgs/s",
            "msgs/s spread",
            "GB/s",
            "vs raw-ring",
            "paired",
            "CPU% send",
            "CPU% recv",
            "kernel% send/recv",
            "copies (kernel)",
            "syscalls/msg send/recv",
            "switches/msg send/recv",
        ],
        groups,
        notes,
        ..Table::default()
    })
}

/// A count per message: `0`, else with two decimals (`0.02`, `1.00`: a count, not a design
/// number, is rarely whole), or one from 10 on (`15.9`).
pub(crate) fn fmt_per_msg(value: f64) -> String {
    if value == 0.0 {
        "0".into()
    } else if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

/// The distinct notes among `notes`, in order of first appearance.
pub(crate) fn distinct_notes<'a>(notes: impl Iterator<Item = &'a Option<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for note in notes.flatten() {
        if !out.contains(note) {
            out.push(note.clone());
        }
    }
    out
}

/// Whether a row exchanges pointers (offsets, loans) rather than moving its payload: its
/// "messages per second" at 1 MiB count offsets, not bytes moved, so the plot leaves it out
/// (the table has it).
fn exchanges_pointers(mechanism: &str) -> bool {
    mechanism.ends_with("-offset") || mechanism == "shmsock-loan"
}

/// `throughput.svg`: one panel per message size, messages per second per mechanism on a log
/// axis labelled with both rates (msgs/s and GB/s), over the reference documents' claimed rates
/// as shaded bands. Rows that only exchange pointers are left out (see the table).
pub(crate) fn plot(rows: &[ThroughputRow], checks: &[claims::ClaimCheck]) -> Option<String> {
    let panels: Vec<String> = sorted(rows.iter().map(|r| r.size))
        .into_iter()
        .enumerate()
        .filter_map(|(k, size)| {
            let of_size: Vec<&ThroughputRow> = rows
                .iter()
                .filter(|r| r.size == size && !exchanges_pointers(&r.mechanism))
                .collect();
            if of_size.is_empty() {
                return None;
            }
            let mut chart = Chart::new(
                format!(
                    "Streaming throughput, {} messages (log scale)",
                    fmt_size(size)
                ),
                of_size.iter().map(|r| r.mechanism.clone()).collect(),
                "messages/s · bytes/s",
            );
            chart.vertical_labels = true;
            chart.scale = Scale::Log;
            chart.rate_of_size = Some(size);
            chart.legend = plotters::chart::SeriesLabelPosition::UpperRight;
            chart.band_label = "agrees with the claimed rate (x/÷ 1.5)";
            chart.bands = of_size
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let c = checks.iter().find(|c| {
                        c.metric == Some(claims::Metric::Rate { size })
                            && c.measured_by == r.mechanism
                    })?;
                    let (low, high) = claims::agreement(c)?;
                    Some((i as f64, low, high))
                })
                .collect();
            let points = of_size
                .iter()
                .enumerate()
                .map(|(i, r)| (i as f64, r.msgs_per_s.max(1) as f64))
                .collect();
            chart.series.push(Series::new(
                format!("{} msgs/s, measured", fmt_size(size)),
                COLOURS[k % COLOURS.len()],
                Mark::Bars(0.2),
                points,
            ));
            chart.to_svg()
        })
        .collect();
    crate::chart::stack(&panels)
}

/// The sender looks at the clock once per this many messages.
const CLOCK_CHECK_EVERY: u64 = 1024;

/// What the receiver measured.
struct Received {
    messages: u64,
    time: ChildStats,
}

/// Measures `mechanism` streaming `size`-byte messages from the child to the parent.
pub(crate) fn measure(
    mechanism: &dyn Mechanism,
    size: usize,
    budget: Budget,
    pinning: Pinning,
) -> Result<ThroughputRow, LabError> {
    if size < 8 {
        return Err(LabError::WrongSize { len: size, size: 8 });
    }
    let mut send_buf = vec![0x5Au8; size];
    let mut recv_buf = vec![0u8; size];
    let (received, sender) = run_pair(
        mechanism,
        Pattern::Stream,
        size,
        pinning,
        budget.watchdog(),
        |side| stream(side, &mut send_buf, budget),
        |side| receive(side, &mut recv_buf, budget.warmup_iters),
    )?;
    let mut row = ThroughputRow::new(
        mechanism.name(),
        size,
        received.messages,
        received.time.wall_ns,
        sender.cpu_ns,
        sender.wall_ns,
        received.time.cpu_ns,
    );
    row.sender_kernel_pct = cpu_pct(sender.sys_ns, sender.wall_ns);
    row.receiver_kernel_pct = cpu_pct(received.time.sys_ns, received.time.wall_ns);
    row.note = mechanism.note();
    row.account(&sender, &received.time, data_path::of(mechanism.name()));
    Ok(row)
}

/// The child's side: send the warm-up, the measured messages, then the stop message.
fn stream(side: &mut dyn Side, buf: &mut [u8], budget: Budget) -> Result<ChildStats, LabError> {
    let warmup = budget.warmup_iters;
    send_numbered::<CLOCK_CHECK_EVERY>(buf, 0, warmup, budget.warmup_time, |m| side.send(m))?;
    // The receiver starts timing at the first message with `seq > warmup_iters`; skip the
    // numbers of an early-ended warm-up so the two sides agree on where measuring starts.
    let window = Window::start();
    send_numbered::<CLOCK_CHECK_EVERY>(buf, warmup, budget.iters, budget.max_time, |m| {
        side.send(m)
    })?;
    put_seq(buf, SEQ_STOP);
    side.send(buf)?;
    Ok(window.stop())
}

/// The parent's side: check every sequence number, time from the first measured message to
/// the stop message.
fn receive(side: &mut dyn Side, buf: &mut [u8], warmup: u64) -> Result<Received, LabError> {
    let mut stream = NumberedStream::new(buf.len(), warmup, "message");
    loop {
        let n = side.recv(buf)?;
        if !stream.take(&buf[..n])? {
            break;
        }
    }
    let (messages, time) = stream.finish()?;
    Ok(Received { messages, time })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mechanism: &str, size: usize, paired: Option<f64>) -> ThroughputRow {
        let mut row = ThroughputRow::new(mechanism, size, 1000, 1_000_000, 1, 1, 1);
        row.vs_raw_ring_paired = paired;
        row
    }

    #[test]
    fn the_stream_bars_name_the_rows_under_them() {
        let rows = [
            row("raw-ring", 64, None),
            row("shmsock-busy", 64, Some(0.74)),
            row("shmsock", 64, Some(0.82)),
            row("shmsock-blocking", 64, Some(0.84)),
            row("shmsock-busy", 4096, Some(0.77)),
            row("shmsock", 4096, Some(0.91)),
            row("shmsock-blocking", 4096, Some(0.97)),
            // A size without a bar, and a bar's size without paired rows: no note.
            row("shmsock", 256, Some(0.5)),
            row("shmsock", 1 << 20, None),
        ];
        assert_eq!(
            bar_notes(&rows),
            [
                "64 B: shmsock-busy 0.74x, shmsock 0.82x, shmsock-blocking 0.84x the raw ring's \
                 rate, paired (bar: >= 0.7x in every wait strategy; met).",
                "4 KiB: shmsock-busy 0.77x, shmsock 0.91x, shmsock-blocking 0.97x the raw \
                 ring's rate, paired (bar: >= 0.9x in every wait strategy; NOT met in this run \
                 by shmsock-busy).",
            ]
        );
    }
}
