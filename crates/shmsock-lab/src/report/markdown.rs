//! `report.md`: the report as Markdown tables, with the plots and the method notes.

use std::fmt::Write as _;

use super::render::{fmt_count, fmt_ns, fmt_size};
use super::Report;

impl Report {
    /// The report as Markdown.
    pub fn render_markdown(&self) -> String {
        let mut out = String::new();
        let h = &self.host;
        let _ = writeln!(out, "# shmsock lab report ({} mode)\n", self.mode.as_str());
        let _ = writeln!(out, "| machine | |\n|---|---|");
        let _ = writeln!(out, "| CPU | {} |", h.cpu_model);
        let _ = writeln!(
            out,
            "| cores | {} online, {} usable |",
            h.cpus_online, h.cpus_allowed
        );
        let _ = writeln!(out, "| kernel | {} ({}) |", h.kernel, h.machine);
        let _ = writeln!(
            out,
            "| governor | {} |",
            h.governor.as_deref().unwrap_or("not readable")
        );
        let _ = writeln!(out, "| pinning | {} |", h.pinning_text);
        let _ = writeln!(out);
        for w in &self.warnings {
            let _ = writeln!(out, "> {w}\n");
        }
        self.markdown_latency(&mut out);
        self.markdown_throughput(&mut out);
        for table in self.experiment_tables() {
            out.push_str(&table.to_markdown());
        }
        self.markdown_claims(&mut out);
        if !self.unavailable.is_empty() {
            let _ = writeln!(out, "## Unavailable\n");
            for u in &self.unavailable {
                let _ = writeln!(
                    out,
                    "- {} {} at {}: {}",
                    u.mechanism,
                    u.experiment,
                    fmt_size(u.size),
                    u.reason
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "## Method\n\nRound trips are timed one by one (clock reads included) into an HDR \
             histogram; one-way = RTT / 2. Throughput is measured by the receiver, first to last \
             message; CPU% is each side's thread CPU time over its wall time. Each pair is two \
             processes forked after setup and pinned (see the table above); `floor` is measured \
             before and after everything, and a move of more than 50% flags the run as noisy. \
             See the README section \"The lab: method\" for warm-up, iteration counts and the \
             coordinated-omission caveat."
        );
        out
    }

    fn markdown_latency(&self, out: &mut String) {
        if self.latency.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Latency: 64 B ping-pong\n");
        let _ = writeln!(out, "![latency](latency.svg)\n");
        let _ = writeln!(
            out,
            "| mechanism | RTT min | RTT p50 | RTT p99 | RTT p99.9 | one-way p50 | p50/floor | same-CPU RTT p50 |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.latency {
            let same = self
                .latency_same_cpu
                .iter()
                .find(|s| s.mechanism == r.mechanism)
                .map_or_else(|| "-".into(), |s| fmt_ns(s.p50_ns));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.mechanism,
                fmt_ns(r.min_ns),
                fmt_ns(r.p50_ns),
                fmt_ns(r.p99_ns),
                fmt_ns(r.p999_ns),
                fmt_ns(r.oneway_p50_ns),
                r.p50_vs_floor
                    .map_or_else(|| "-".into(), |x| format!("{x:.1}x")),
                same
            );
        }
        let _ = writeln!(out);
        if let Some(note) = self.wakeup_note() {
            let _ = writeln!(out, "{}\n", note.replace('\n', " "));
        }
    }

    fn markdown_throughput(&self, out: &mut String) {
        if self.throughput.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Throughput: one way, measured by the receiver\n");
        let _ = writeln!(out, "![throughput](throughput.svg)\n");
        let mut sizes: Vec<usize> = self.throughput.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let rows: Vec<_> = self.throughput.iter().filter(|r| r.size == size).collect();
            let messages = rows.iter().map(|r| r.messages).max().unwrap_or(0);
            let _ = writeln!(
                out,
                "### {} messages (up to {} per row)\n",
                fmt_size(size),
                fmt_count(messages)
            );
            let _ = writeln!(
                out,
                "| mechanism | msgs/s | GB/s | vs raw-ring | CPU% send | CPU% recv |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
            for r in rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.2} | {} | {:.0} | {:.0} |",
                    r.mechanism,
                    fmt_count(r.msgs_per_s),
                    r.bytes_per_s as f64 / 1e9,
                    r.vs_raw_ring
                        .map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
                    r.sender_cpu_pct,
                    r.receiver_cpu_pct
                );
            }
            let _ = writeln!(out);
        }
        if self
            .throughput
            .iter()
            .any(|r| r.mechanism.ends_with("-offset"))
        {
            let _ = writeln!(
                out,
                "`*-offset` rows exchange offsets into a shared pool: the payload is never \
                 copied, so their GB/s is offsets/s × size, the way the Comparison counts its 1 MB \
                 shared-memory row.\n"
            );
        }
    }

    fn markdown_claims(&self, out: &mut String) {
        if self.claims.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Reference claims vs this machine\n\nAgrees = inside the claimed range widened \
             ×/÷ {}; latency claims are one-way (RTT / 2).\n",
            crate::claims::TOLERANCE
        );
        let _ = writeln!(
            out,
            "| source | claim | metric | claimed | measured by | measured | ratio | verdict | same CPU |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---|---:|---:|---|---:|");
        for c in &self.claims {
            let same = match (c.same_cpu, c.same_cpu_verdict) {
                (Some(v), Some(verdict)) => format!(
                    "{} ({})",
                    crate::claims::fmt_value(v, c.metric.unit()),
                    verdict.as_str()
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2}x | {} | {} |",
                c.source,
                c.subject,
                c.metric.label(),
                c.claimed,
                c.measured_by,
                c.measured_text,
                c.ratio,
                c.verdict.as_str(),
                same
            );
        }
        let _ = writeln!(out);
    }
}
