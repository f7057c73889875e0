//! The terminal table: latency rows, throughput rows, unavailable rows in place, then the
//! noise warnings. Pure formatting of [`Report`]; nothing here measures.

use std::fmt::Write as _;

use super::Report;

impl Report {
    /// The terminal table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let h = &self.host;
        let _ = writeln!(
            out,
            "shmsock lab{}",
            if self.quick {
                " (quick: indicative numbers)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "  CPU:     {} ({} CPUs online, {} usable)",
            h.cpu_model, h.cpus_online, h.cpus_allowed
        );
        let _ = writeln!(out, "  kernel:  {} ({})", h.kernel, h.machine);
        let _ = writeln!(
            out,
            "  governor: {}",
            h.governor.as_deref().unwrap_or("not readable")
        );
        let _ = writeln!(out, "  pinning: {}", h.pinning_text);
        let _ = writeln!(out);
        self.render_latency(&mut out);
        self.render_throughput(&mut out);
        for table in self.experiment_tables() {
            let _ = writeln!(out);
            out.push_str(&table.to_text());
        }
        self.render_other_unavailable(&mut out);
        self.render_claims(&mut out);
        if let Some(check) = &self.floor_check {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "floor p50 before {} / after {} ({:.0}% apart)",
                fmt_ns(check.before_p50_ns),
                fmt_ns(check.after_p50_ns),
                check.moved_pct
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "{warning}");
        }
        out
    }

    fn render_latency(&self, out: &mut String) {
        if self.latency.is_empty()
            && self
                .unavailable
                .iter()
                .all(|u| !u.experiment.starts_with("latency"))
        {
            return;
        }
        let _ = writeln!(
            out,
            "Latency, ping-pong: RTT = round trip; one-way = RTT / 2"
        );
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>13}",
            "mechanism",
            "size",
            "RTT min",
            "RTT p50",
            "RTT p99",
            "RTT p99.9",
            "one-way p50",
            "p50/floor",
            "same-CPU p50"
        );
        for name in &self.mechanisms {
            for r in self.latency.iter().filter(|r| &r.mechanism == name) {
                let same = self
                    .latency_same_cpu
                    .iter()
                    .find(|s| s.mechanism == r.mechanism && s.size == r.size)
                    .map_or_else(|| "-".to_string(), |s| fmt_ns(s.p50_ns));
                let _ = writeln!(
                    out,
                    "{:<16} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>13}",
                    r.mechanism,
                    fmt_size(r.size),
                    fmt_ns(r.min_ns),
                    fmt_ns(r.p50_ns),
                    fmt_ns(r.p99_ns),
                    fmt_ns(r.p999_ns),
                    fmt_ns(r.oneway_p50_ns),
                    fmt_ratio(r.p50_vs_floor),
                    same
                );
            }
            self.render_unavailable(out, name, "latency");
            self.render_unavailable(out, name, "latency-same-cpu");
        }
        if let Some(note) = self.wakeup_note() {
            let _ = writeln!(out);
            for line in note.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }

    fn render_throughput(&self, out: &mut String) {
        if self.throughput.is_empty()
            && self
                .unavailable
                .iter()
                .all(|u| u.experiment != "throughput")
        {
            return;
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Throughput, one way, measured by the receiver");
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>10} {:>10} {:>10} {:>10} {:>15}",
            "mechanism", "size", "msgs/s", "MB/s", "/raw-ring", "/uds", "CPU% send/recv"
        );
        for name in &self.mechanisms {
            for r in self.throughput.iter().filter(|r| &r.mechanism == name) {
                let _ = writeln!(
                    out,
                    "{:<16} {:>6} {:>10} {:>10.0} {:>10} {:>10} {:>15}",
                    r.mechanism,
                    fmt_size(r.size),
                    fmt_count(r.msgs_per_s),
                    r.bytes_per_s as f64 / 1e6,
                    fmt_ratio(r.vs_raw_ring),
                    fmt_ratio(r.vs_uds_stream),
                    format!("{:.0}/{:.0}", r.sender_cpu_pct, r.receiver_cpu_pct)
                );
            }
            self.render_unavailable(out, name, "throughput");
        }
    }

    fn render_claims(&self, out: &mut String) {
        if self.claims.is_empty() {
            return;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Reference claims vs this machine (agrees = within the claimed range ×/÷ {}; latency is one-way = RTT / 2)",
            crate::claims::TOLERANCE
        );
        let _ = writeln!(
            out,
            "{:<8} {:<34} {:<20} {:>18} {:<16} {:>14} {:>8}  {:<20} {:>12}",
            "source",
            "claim",
            "metric",
            "claimed",
            "measured by",
            "measured",
            "ratio",
            "verdict",
            "same CPU"
        );
        for c in &self.claims {
            let same = match (c.same_cpu, c.same_cpu_verdict) {
                (Some(v), Some(verdict)) => format!(
                    "{} {}",
                    crate::claims::fmt_value(v, c.metric.unit()),
                    match verdict {
                        crate::claims::Verdict::Agrees => "=",
                        crate::claims::Verdict::Faster => "+",
                        crate::claims::Verdict::Slower => "-",
                    }
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<8} {:<34} {:<20} {:>18} {:<16} {:>14} {:>7.2}x  {:<20} {:>12}",
                c.source,
                truncate(&c.subject, 34),
                c.metric.label(),
                c.claimed,
                c.measured_by,
                c.measured_text,
                c.ratio,
                c.verdict.as_str(),
                same
            );
        }
        let _ = writeln!(
            out,
            "  (same CPU: the latency with both sides on one CPU; = agrees, + faster, - slower than claimed)"
        );
    }

    fn render_other_unavailable(&self, out: &mut String) {
        let per_mechanism = ["latency", "latency-same-cpu", "throughput"];
        let others: Vec<_> = self
            .unavailable
            .iter()
            .filter(|u| !per_mechanism.contains(&u.experiment.as_str()))
            .collect();
        if others.is_empty() {
            return;
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Unavailable rows of the other experiments");
        for u in others {
            let _ = writeln!(
                out,
                "{:<22} {:<14} unavailable: {}",
                u.mechanism, u.experiment, u.reason
            );
        }
    }

    fn render_unavailable(&self, out: &mut String, name: &str, experiment: &str) {
        for u in self
            .unavailable
            .iter()
            .filter(|u| u.mechanism == name && u.experiment == experiment)
        {
            let _ = writeln!(
                out,
                "{:<16} {:>6}  unavailable{}: {}",
                u.mechanism,
                fmt_size(u.size),
                if u.experiment == "latency-same-cpu" {
                    " (same CPU)"
                } else {
                    ""
                },
                u.reason
            );
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// `850 ns`, `45.2 µs`, `1.20 ms`, `2.00 s`.
pub(crate) fn fmt_ns(ns: u64) -> String {
    match ns {
        0..10_000 => format!("{ns} ns"),
        10_000..10_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        10_000_000..10_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

pub(crate) fn fmt_size(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

pub(crate) fn fmt_count(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1} k", n as f64 / 1e3),
        _ => format!("{:.2} M", n as f64 / 1e6),
    }
}

fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}
