//! `report.html`: the whole report in one self-contained page (inline CSS and SVG, no script,
//! nothing fetched), with a headline of what the run says at the top.

use std::fmt::Write as _;

use super::Report;
use crate::claims::Verdict;
use crate::experiments::latency::LatencyRow;
use crate::format::{fmt_count, fmt_ns, fmt_size};
use crate::table::{html_escape, html_id};

/// The page's style: readable on a laptop and printable; tables scroll sideways on narrow
/// screens; verdict cells coloured.
const STYLE: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;\
max-width:1200px;margin:0 auto;padding:0 1.2em 3em}\
h1{font-size:1.6em;margin:1em 0 .3em}h2{font-size:1.25em;margin:2em 0 .5em;\
border-bottom:1px solid #d0d7de;padding-bottom:.2em}h3{font-size:1.05em}\
.machine td{padding:.1em .8em .1em 0}.machine td:first-child{color:#57606a}\
.headline{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.6em 1.2em}\
.headline li{margin:.35em 0}.warning{background:#fff8c5;border:1px solid #d4a72c;\
border-radius:6px;padding:.5em 1em}.scroll{overflow-x:auto}\
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}\
th,td{border:1px solid #d0d7de;padding:.25em .6em;white-space:nowrap}\
th{background:#f6f8fa}.n{text-align:right;font-variant-numeric:tabular-nums}.t{text-align:left}\
td.ok{background:#dafbe1}td.off{background:#ffebe9}.note{color:#424a53;font-size:.92em}\
figure.plot{margin:.5em 0}figure.plot svg{max-width:100%;height:auto}\
nav ul{columns:2;padding-left:1.2em}";

/// How the lab measures: the closing section of `report.md` and `report.html`.
pub(crate) const METHOD: &str = "Round trips are timed one by one (clock reads included) into \
     an HDR histogram; one-way = RTT / 2. Throughput is measured by the receiver, first to last \
     message; CPU% is each side's thread CPU time over its wall time. Each pair is two \
     processes forked after setup and pinned (see the machine table). Latency and throughput \
     rows are the median of several interleaved rounds, with floor probes between rows; \
     `floor` is also measured before and after everything, and a move of more than 50% flags \
     the run as noisy. See the \
     README section \"The lab: method\" for warm-up, iteration counts and the \
     coordinated-omission caveat.";

impl Report {
    /// The report as one self-contained HTML page (`report.html`): the machine, a headline
    /// of the findings that matter, the warnings, every table with its plot inlined, and the
    /// method.
    pub fn render_html(&self) -> String {
        let plots = self.plots();
        let tables = self.tables();
        let mut out = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>shmsock lab report ({})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>shmsock lab report <small>({} mode)</small></h1>\n",
            self.mode.as_str(),
            self.mode.as_str()
        );
        out.push_str("<table class=\"machine\">\n");
        for (what, value) in self.machine() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                html_escape(what),
                html_escape(&value)
            );
        }
        out.push_str(
            "</table>\n<section class=\"headline\" id=\"headline\">\n<h2>Headline</h2>\n<ul>\n",
        );
        for finding in self.headline() {
            let _ = writeln!(out, "<li>{}</li>", html_escape(&finding));
        }
        out.push_str("</ul>\n</section>\n");
        for w in &self.warnings {
            let _ = writeln!(out, "<p class=\"warning\">{}</p>", html_escape(w));
        }
        out.push_str("<nav><h2>Contents</h2><ul>\n");
        for t in &tables {
            let _ = writeln!(
                out,
                "<li><a href=\"#{}\">{}</a></li>",
                html_id(&t.title),
                html_escape(&t.title)
            );
        }
        out.push_str("</ul></nav>\n");
        for t in &tables {
            out.push_str(&t.to_html(&plots));
        }
        let _ = writeln!(
            out,
            "<section id=\"method\"><h2>Method</h2>\n<p>{}</p></section>\n</body>\n</html>",
            html_escape(METHOD)
        );
        out
    }

    /// The handful of findings a reader should take away, as sentences: the machine's noise,
    /// shared memory against sockets, the kernel's wake-up, streaming, setup, the bugs made to
    /// happen, the shmsock Python package against multiprocessing and pyzmq, and how many
    /// reference claims agree. Each only when the run measured it.
    pub fn headline(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(match &self.floor_check {
            Some(c) if c.noisy => format!(
                "Noisy run: the bare cache-line round trip (floor) moved {:.0}% between the \
                 start ({}) and the end ({}); rerun on a quiet machine before trusting close \
                 calls.",
                c.moved_pct,
                fmt_ns(c.before_p50_ns),
                fmt_ns(c.after_p50_ns)
            ),
            Some(c) => format!(
                "Quiet run: the floor (a bare cache-line round trip between two pinned \
                 processes) was {} at the start and {} at the end ({:.0}% apart).",
                fmt_ns(c.before_p50_ns),
                fmt_ns(c.after_p50_ns),
                c.moved_pct
            ),
            None => "No noise check: the floor was not measured twice in this run.".into(),
        });
        let rtt = |name: &str| {
            self.latency
                .iter()
                .find(|r| r.mechanism == name)
                .map(|r: &LatencyRow| r.rtt.p50_ns)
        };
        if let (Some(shm), Some(uds)) = (rtt("shmsock"), rtt("uds-stream")) {
            let mut line = format!(
                "Shared memory vs sockets, measured here: a shmsock shm:// round trip takes {} \
                 at the median, a Unix stream socket's {} ({:.0}x slower)",
                fmt_ns(shm),
                fmt_ns(uds),
                uds as f64 / shm.max(1) as f64
            );
            if let Some(tcp) = rtt("tcp") {
                let _ = write!(
                    line,
                    ", loopback TCP's {} ({:.0}x)",
                    fmt_ns(tcp),
                    tcp as f64 / shm.max(1) as f64
                );
            }
            line.push('.');
            lines.push(line);
        }
        if let (Some(futex), Some(floor)) = (rtt("futex"), rtt("floor")) {
            lines.push(format!(
                "The kernel's wake-up: a round trip that sleeps in the kernel (futex) takes {}, \
                 {:.0}x the floor ({}): what waking a process on another CPU costs on this \
                 machine, and what a shared-memory channel avoids while its peer is awake.",
                fmt_ns(futex),
                futex as f64 / floor.max(1) as f64,
                fmt_ns(floor)
            ));
        }
        let rate = |name: &str, size: usize| {
            self.throughput
                .iter()
                .find(|r| r.mechanism == name && r.size == size)
        };
        if let (Some(shm), Some(pipe)) = (rate("shmsock", 4096), rate("pipe", 4096)) {
            let mut line = format!(
                "Streaming {}: shmsock {} msgs/s ({:.1} GB/s), a pipe {} msgs/s ({:.1} GB/s)",
                fmt_size(4096),
                fmt_count(shm.msgs_per_s),
                shm.bytes_per_s as f64 / 1e9,
                fmt_count(pipe.msgs_per_s),
                pipe.bytes_per_s as f64 / 1e9
            );
            if let Some(uds) = rate("uds-stream", 4096) {
                let _ = write!(
                    line,
                    ", a Unix stream socket {} msgs/s",
                    fmt_count(uds.msgs_per_s)
                );
            }
            line.push('.');
            lines.push(line);
        }
        let setup = |path: &str| {
            self.setup
                .connections
                .iter()
                .find(|r| r.path == path)
                .map(|r| r.cycle.p50_ns)
        };
        if let (Some(shm), Some(uds)) = (setup("shmsock shm://"), setup("unix-stream")) {
            lines.push(format!(
                "Setting up costs shared memory: connect + first message + close takes {} over \
                 shm://, {} over a plain Unix socket ({:.1}x): keep connections open.",
                fmt_ns(shm),
                fmt_ns(uds),
                shm as f64 / uds.max(1) as f64
            ));
        }
        if !self.bugs.is_empty() {
            let shown = self.bugs.iter().filter(|b| b.shown()).count();
            lines.push(format!(
                "The shared-memory bugs the reference documents warn about, made to happen: {} \
                 of {} hit deliberately naive code and not shmsock doing the same job (table \
                 \"Bugs\").",
                shown,
                self.bugs.len()
            ));
        }
        if let Some(line) = self
            .python
            .as_ref()
            .and_then(crate::experiments::python::PythonRun::summary_line)
        {
            lines.push(format!("From Python, an interpreter on both sides: {line}"));
        }
        let checked = self.claims.iter().filter(|c| c.verdict.is_some()).count();
        if checked > 0 {
            let count = |verdicts: &[Verdict]| {
                self.claims
                    .iter()
                    .filter(|c| c.verdict.is_some_and(|v| verdicts.contains(&v)))
                    .count()
            };
            lines.push(format!(
                "Reference claims: {checked} checks against this run; {} agree, {} faster or \
                 cheaper than claimed, {} slower or dearer, {} comparisons outside the claimed \
                 range (table \"Reference claims vs this machine\"); {} claims not checked, \
                 with the reasons.",
                count(&[Verdict::Agrees]),
                count(&[Verdict::Faster, Verdict::Fewer]),
                count(&[Verdict::Slower, Verdict::More]),
                count(&[Verdict::Above, Verdict::Below]),
                self.claims.len() - checked
            ));
        }
        if !self.unavailable.is_empty() {
            lines.push(format!(
                "{} measurement(s) unavailable on this machine (last table, with the reasons).",
                self.unavailable.len()
            ));
        }
        lines
    }
}
