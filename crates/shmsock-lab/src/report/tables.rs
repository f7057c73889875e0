//! The tables of the sync-tax, contention, fan-out, serialization and one-million-messages
//! experiments,
//! as data ([`Table`]: a title, headers, rows of text, notes), rendered two ways: padded text
//! for the terminal and Markdown for `report.md`. Every row that a reference claim covers
//! carries the claim, the ratio and the verdict.

use std::fmt::Write as _;

use super::render::{fmt_count, fmt_ns, fmt_size};
use super::Report;
use crate::claims::{fmt_value, ClaimCheck, Metric};

/// One table: what the terminal and `report.md` show for one experiment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    /// The heading.
    pub(crate) title: String,
    /// Plot file shown above it in `report.md`, if any.
    pub(crate) plot: Option<&'static str>,
    /// Column headers.
    pub(crate) headers: Vec<&'static str>,
    /// Cells, one `Vec` per row, as many as `headers`.
    pub(crate) rows: Vec<Vec<String>>,
    /// Sentences printed under the table.
    pub(crate) notes: Vec<String>,
}

impl Table {
    /// Padded columns (the first left-aligned, the others right-aligned), then the notes.
    pub(crate) fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.zip(&widths).enumerate() {
                let pad = w.saturating_sub(cell.chars().count());
                if i == 0 {
                    let _ = write!(text, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(text, "  {}{cell}", " ".repeat(pad));
                }
            }
            text.trim_end().to_string()
        };
        let mut out = format!("{}\n", self.title);
        let _ = writeln!(out, "{}", line(&mut self.headers.iter().copied()));
        for row in &self.rows {
            let _ = writeln!(out, "{}", line(&mut row.iter().map(String::as_str)));
        }
        for note in &self.notes {
            let _ = writeln!(out, "  {note}");
        }
        out
    }

    /// A Markdown section: heading, plot, table, notes.
    pub(crate) fn to_markdown(&self) -> String {
        let mut out = format!("## {}\n\n", self.title);
        if let Some(plot) = self.plot {
            let _ = writeln!(out, "![{}]({plot})\n", plot.trim_end_matches(".svg"));
        }
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let align: Vec<&str> = (0..self.headers.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", align.join("|"));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let _ = writeln!(out);
        for note in &self.notes {
            let _ = writeln!(out, "{note}\n");
        }
        out
    }
}

impl Report {
    /// The tables of the experiments beyond latency and throughput that produced rows.
    pub(crate) fn experiment_tables(&self) -> Vec<Table> {
        [
            self.sync_tax_table(),
            self.contention_table(),
            self.fanout_table(),
            self.bridge_table(),
            self.serialization_table(),
            self.million_table(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The check of the claim on `metric` measured by `row`, if any.
    fn check_of(&self, metric: Metric, row: &str) -> Option<&ClaimCheck> {
        self.claims
            .iter()
            .find(|c| c.metric == metric && c.measured_by == row)
    }

    fn sync_tax_table(&self) -> Option<Table> {
        if self.sync_tax.is_empty() {
            return None;
        }
        let messages = self.sync_tax.iter().map(|r| r.messages).max().unwrap_or(0);
        let rows = self
            .sync_tax
            .iter()
            .map(|r| {
                let mut cells = vec![
                    r.method.clone(),
                    r.queue.clone(),
                    fmt_count(r.msgs_per_s),
                    r.vs_lock_free_pct
                        .filter(|_| r.method != "lock-free")
                        .map_or_else(|| "baseline".into(), |p| format!("{p:+.0}%")),
                    format!("{:.0}/{:.0}", r.sender_cpu_pct, r.receiver_cpu_pct),
                ];
                cells.extend(claim_cells(self.check_of(Metric::SyncTax, &r.method)));
                cells
            })
            .collect();
        Some(Table {
            title: format!(
                "Synchronisation tax: 4 KiB messages, one producer process -> one consumer \
                 process on another CPU (up to {} per row)",
                fmt_count(messages)
            ),
            plot: Some("sync_tax.svg"),
            headers: vec![
                "method",
                "queue",
                "msgs/s",
                "vs lock-free",
                "CPU% send/recv",
                "Comparison",
                "ratio",
                "verdict",
            ],
            rows,
            notes: vec![
                "Every locked queue copies the payload while holding its lock; mutex-low peeks \
                 at the other side's position without the lock and locks once per message, \
                 mutex-high locks on every poll."
                    .into(),
                "The mutex rows put a PTHREAD_PROCESS_SHARED mutex in shared memory: a measured \
                 subject only. The shmsock library never does this (a process that dies holding \
                 the mutex deadlocks every other one); its rings are lock-free with one writer \
                 per shared word."
                    .into(),
            ],
        })
    }

    fn contention_table(&self) -> Option<Table> {
        if self.contention.is_empty() {
            return None;
        }
        let rows = self
            .contention
            .iter()
            .map(|r| {
                let mut cells = vec![
                    r.queue.clone(),
                    r.implementation.clone(),
                    r.producers.to_string(),
                    fmt_count(r.msgs_per_s),
                    r.vs_one_producer
                        .map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
                ];
                cells.extend(claim_cells(self.check_of(
                    Metric::Contention {
                        producers: r.producers,
                    },
                    &r.queue,
                )));
                cells
            })
            .collect();
        let p = self.host.pinning;
        let mut notes = vec![format!(
            "The consumer runs on CPU {}, every producer on CPU {}; messages are 4 KiB, \
             sequence-checked per producer.",
            p.parent_cpu, p.child_cpu
        )];
        if self.host.cpus_allowed <= 2 {
            notes.push(format!(
                "This machine has {} usable CPU(s): 2, 4 and 8 producers time-share one CPU, so \
                 they contend through preemption (a producer descheduled while holding the \
                 mutex, or between claiming a ring slot and publishing it), not in parallel as \
                 on the many-core machine the Comparison implies.",
                self.host.cpus_allowed
            ));
        }
        let many = crate::experiments::contention::SHMSOCK_MANY_WRITERS;
        let rate = |n: u32| {
            self.contention
                .iter()
                .find(|r| r.queue == many && r.producers == n)
                .map(|r| r.msgs_per_s)
        };
        notes.push(match (rate(1), rate(8)) {
            (Some(one), Some(eight)) if one > 0 => {
                let x = eight as f64 / one as f64;
                format!(
                    "`{many}` is shmsock's Inbox: one SPSC ring per producer (no shared tail, no \
                     CAS), a doorbell per writer. 8 producers reach {x:.2}x the rate of one (bar: >= \
                     0.80x; {}).",
                    if x >= 0.8 {
                        "met"
                    } else {
                        "NOT met in this run"
                    }
                )
            }
            _ => format!(
                "`{many}` is shmsock's Inbox: one SPSC ring per producer (no shared tail, no \
                 CAS), a doorbell per writer."
            ),
        });
        Some(Table {
            title: "Contention: N producer processes -> one consumer (msgs/s, all producers)"
                .into(),
            plot: Some("contention.svg"),
            headers: vec![
                "queue",
                "implementation",
                "producers",
                "msgs/s",
                "vs 1 producer",
                "Comparison",
                "ratio",
                "verdict",
            ],
            rows,
            notes,
        })
    }

    fn fanout_table(&self) -> Option<Table> {
        use crate::experiments::fanout::BAR_4_VS_1;
        if self.fanout.is_empty() {
            return None;
        }
        let rows = self
            .fanout
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
                    fmt_count(r.delivered_per_s),
                    r.vs_one_subscriber
                        .map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
                    format!("{:.0}/{:.0}", r.publisher_cpu_pct, r.subscriber_cpu_pct),
                ]
            })
            .collect();
        let p = self.host.pinning;
        let mut notes = vec![format!(
            "shmsock::Publisher -> Subscriber over shm:// (default options: one broadcast \
             ring, Overflow::Block, so the publisher waits for the slowest subscriber and \
             nothing is lost; every subscriber checked every sequence number). The publisher \
             runs on CPU {}, every subscriber on CPU {}; msgs/s is the publisher's rate, its \
             window ending when the last subscriber has the last message.",
            p.parent_cpu, p.child_cpu
        )];
        if self.host.cpus_allowed <= 2 {
            notes.push(format!(
                "This machine has {} usable CPU(s): 2 and 4 subscribers time-share one CPU, so \
                 the publisher waits while the scheduler rotates them (each gets 1/N of the \
                 CPU), not while they read in parallel as on a machine with a CPU per \
                 subscriber. Their CPU does all the reading (delivered/s (all) is its total), \
                 so N subscribers can reach at most ~1/N of the rate of one: 0.25x for 4, \
                 under the bar by construction; the bar needs a CPU per subscriber to be \
                 judged.",
                self.host.cpus_allowed
            ));
        }
        if self.fanout.iter().any(|r| r.capped) {
            notes.push("* the run's time cap ended it before all its messages were sent.".into());
        }
        let mut sizes: Vec<usize> = self.fanout.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let rate = |n: u32| {
                self.fanout
                    .iter()
                    .find(|r| r.size == size && r.subscribers == n)
                    .map(|r| r.msgs_per_s)
            };
            if let (Some(one), Some(four)) = (rate(1), rate(4)) {
                let x = four as f64 / one.max(1) as f64;
                notes.push(format!(
                    "{}: 4 subscribers reach {x:.2}x the publisher rate with one (bar: >= \
                     {BAR_4_VS_1:.2}x; {}).",
                    fmt_size(size),
                    if x >= BAR_4_VS_1 {
                        "met"
                    } else {
                        "NOT met in this run"
                    }
                ));
            }
        }
        Some(Table {
            title: "Fan-out: one publisher process -> N subscriber processes over shm:// \
                    (msgs/s sent, each delivered to every subscriber)"
                .into(),
            plot: Some("fanout.svg"),
            headers: vec![
                "size",
                "subscribers",
                "msgs/s",
                "delivered/s (all)",
                "vs 1 subscriber",
                "CPU% pub/sub",
            ],
            rows,
            notes,
        })
    }

    fn serialization_table(&self) -> Option<Table> {
        if self.serialization.is_empty() {
            return None;
        }
        let base = self
            .serialization
            .iter()
            .find(|r| r.format == "postcard")
            .map(|r| r.encode_ns + r.decode_ns);
        let rows = self
            .serialization
            .iter()
            .map(|r| {
                let total = r.encode_ns + r.decode_ns;
                let mut cells = vec![
                    r.format.clone(),
                    format!("{} B", r.encoded_bytes),
                    fmt_value(r.encode_ns, "ns"),
                    fmt_value(r.decode_ns, "ns"),
                    fmt_value(total, "ns"),
                    base.map_or_else(|| "-".into(), |b| format!("{:.1}x", total / b.max(1.0))),
                ];
                cells.extend(claim_cells(self.check_of(Metric::Serialize, &r.format)));
                cells
            })
            .collect();
        Some(Table {
            title: "Serialization: a ~1 KiB struct (order-book snapshot), encode + decode, one \
                    process"
                .into(),
            plot: None,
            headers: vec![
                "format",
                "encoded",
                "encode",
                "decode",
                "enc+dec",
                "vs postcard",
                "Communication Costs",
                "ratio",
                "verdict",
            ],
            rows,
            notes: vec![
                "Binary is postcard (bincode is unmaintained, RUSTSEC-2025-0141); JSON is \
                 serde_json. Median of batches of 64; decoding rebuilds every String and Vec."
                    .into(),
            ],
        })
    }

    fn million_table(&self) -> Option<Table> {
        if self.million.is_empty() {
            return None;
        }
        let rows = self
            .million
            .iter()
            .map(|r| {
                let mut cells = vec![
                    r.path.clone(),
                    fmt_count(r.messages),
                    fmt_value(r.seconds, "s"),
                    format!(
                        "{}{}",
                        fmt_value(r.seconds_per_million, "s"),
                        if r.messages < 1_000_000 {
                            " (extrapolated)"
                        } else {
                            ""
                        }
                    ),
                    fmt_ns((r.seconds_per_million * 1e3).round() as u64),
                ];
                cells.extend(claim_cells(self.check_of(Metric::Million, &r.path)));
                cells
            })
            .collect();
        let mut notes = vec![
            "One way, back to back, 64 B messages; the receiver times first to last message \
             (connection setup not included). threads: crossbeam-channel (bounded, lock-free) \
             between two threads pinned to two CPUs; uds-stream and shmsock: two processes. \
             shmsock is held to the threads' claim: moving messages between processes at the \
             speed of threads is what it is for."
                .into(),
        ];
        let rtt = |name: &str| {
            self.latency
                .iter()
                .find(|r| r.mechanism == name)
                .map(|r| r.p50_ns)
        };
        if let Some(uds) = rtt("uds-stream") {
            notes.push(format!(
                "If every message waited for its reply (request/response), a million would take \
                 a million round trips: uds-stream {} (RTT p50 {}){}.",
                fmt_value(uds as f64 * 1e6 / 1e9, "s"),
                fmt_ns(uds),
                rtt("shmsock").map_or_else(String::new, |s| format!(
                    ", shmsock {}",
                    fmt_value(s as f64 * 1e6 / 1e9, "s")
                ))
            ));
        }
        Some(Table {
            title: "One million messages: threads vs processes".into(),
            plot: None,
            headers: vec![
                "path",
                "messages",
                "time",
                "time for 1M",
                "per message",
                "Communication Costs",
                "ratio",
                "verdict",
            ],
            rows,
            notes,
        })
    }
}

/// The claim, ratio and verdict cells of a row (dashes when no claim covers it).
fn claim_cells(check: Option<&ClaimCheck>) -> [String; 3] {
    match check {
        Some(c) => [
            c.claimed.clone(),
            format!("{:.2}x", c.ratio),
            c.verdict.as_str().to_string(),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
}
