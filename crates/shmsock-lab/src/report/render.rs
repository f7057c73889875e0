//! The report assembled for people: the experiments' tables in order, rendered as text for the
//! terminal or as `report.md`, and their SVG plots. Every table comes from the experiment that
//! owns its rows (or [`claims::table`]); this module only orders them and adds the frame (the
//! machine, the warnings, the method).

use std::fmt::Write as _;

use super::Report;
use crate::claims;
use crate::experiments::{
    bridge, bugs, contention, costs, crash, fanout, latency, network, python, scale, serialization,
    setup, sync_tax, throughput, upgrade,
};
use crate::format::{fmt_ns, fmt_size};
use crate::table::Table;

impl Report {
    /// The tables of this report, in order: every experiment that produced rows, the claims,
    /// and what was unavailable.
    pub(crate) fn tables(&self) -> Vec<Table> {
        let checks = &self.claims;
        [
            latency::table(&self.latency, &self.latency_same_cpu),
            throughput::table(&self.throughput),
            sync_tax::table(&self.sync_tax, checks),
            contention::table(&self.contention, &self.host, checks),
            fanout::table(&self.fanout, &self.host),
            bridge::table(&self.bridge, &self.host),
            network::table(&self.network, &self.host),
            serialization::table(&self.serialization, checks),
            scale::table(&self.million, &self.latency, checks),
            crash::leftover_table(&self.shm_leftovers),
            crash::table(&self.crash, checks),
            setup::table(&self.setup, &self.host),
            bugs::table(&self.bugs),
            self.python.as_ref().and_then(python::table),
            costs::table(&self.costs, checks),
            upgrade::table(&self.upgrade, &self.host),
            claims::table(checks),
            claims::unchecked_table(checks),
            self.unavailable_table(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The experiments that produced no numbers, and why.
    fn unavailable_table(&self) -> Option<Table> {
        if self.unavailable.is_empty() {
            return None;
        }
        let rows = self
            .unavailable
            .iter()
            .map(|u| {
                vec![
                    u.mechanism.clone(),
                    u.experiment.clone(),
                    fmt_size(u.size),
                    format!("unavailable: {}", u.reason),
                ]
            })
            .collect();
        let mut table = Table::new(
            "Unavailable",
            vec!["mechanism", "experiment", "size", "why"],
            rows,
        );
        table.text_columns = vec![1, 3];
        Some(table)
    }

    /// The plots: (file name, SVG text). A plot with no data is left out.
    pub fn plots(&self) -> Vec<(&'static str, String)> {
        [
            (
                "latency.svg",
                latency::plot(&self.latency, &self.latency_same_cpu, &self.claims),
            ),
            (
                "throughput.svg",
                throughput::plot(&self.throughput, &self.claims),
            ),
            ("sync_tax.svg", sync_tax::plot(&self.sync_tax)),
            ("contention.svg", contention::plot(&self.contention)),
            ("fanout.svg", fanout::plot(&self.fanout)),
            ("bridge.svg", bridge::plot(&self.bridge)),
            ("network.svg", network::plot(&self.network)),
        ]
        .into_iter()
        .filter_map(|(name, svg)| Some((name, svg?)))
        .collect()
    }

    /// The machine, as (what, description) pairs.
    pub(super) fn machine(&self) -> [(&'static str, String); 5] {
        let h = &self.host;
        [
            ("CPU", h.cpu_model.clone()),
            (
                "cores",
                format!("{} online, {} usable", h.cpus_online, h.cpus_allowed),
            ),
            ("kernel", format!("{} ({})", h.kernel, h.machine)),
            (
                "governor",
                h.governor.as_deref().unwrap_or("not readable").to_string(),
            ),
            ("pinning", h.pinning_text.clone()),
        ]
    }

    /// The terminal text: the machine, every table, the floor check and the warnings.
    pub fn render(&self) -> String {
        let mut out = format!(
            "shmsock lab{}\n",
            if self.quick {
                " (quick: indicative numbers)"
            } else {
                ""
            }
        );
        for (what, value) in self.machine() {
            let _ = writeln!(out, "  {what}: {value}");
        }
        for table in self.tables() {
            let _ = writeln!(out);
            out.push_str(&table.to_text());
        }
        if let Some(check) = &self.floor_check {
            let _ = writeln!(
                out,
                "\nfloor p50 before {} / after {} ({:.0}% apart)",
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

    /// The report as Markdown (`report.md`): the machine, the warnings, every table with its
    /// plot, and the method.
    pub fn render_markdown(&self) -> String {
        let mut out = format!("# shmsock lab report ({} mode)\n\n", self.mode.as_str());
        let _ = writeln!(out, "| machine | |\n|---|---|");
        for (what, value) in self.machine() {
            let _ = writeln!(out, "| {what} | {value} |");
        }
        let _ = writeln!(out);
        for w in &self.warnings {
            let _ = writeln!(out, "> {w}\n");
        }
        for table in self.tables() {
            out.push_str(&table.to_markdown());
        }
        let _ = writeln!(out, "## Method\n\n{}", super::html::METHOD);
        out
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}
