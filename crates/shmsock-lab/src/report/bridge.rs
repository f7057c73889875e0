//! The bridge experiment's table (one-way latency per path, and what the bridge adds against
//! tcp in the same run) and its plot, `bridge.svg` (min/p50/p99/p99.9 per path, log axis).

use plotters::prelude::*;

use super::render::{fmt_ns, fmt_size};
use super::tables::Table;
use super::Report;
use crate::experiments::bridge::BASELINE;

const WIDTH_PX: u32 = 900;
const HEIGHT_PX: u32 = 520;

/// `+12.3 µs`, `-850 ns`.
fn fmt_signed_ns(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "+" };
    format!("{sign}{}", fmt_ns(ns.unsigned_abs()))
}

impl Report {
    pub(crate) fn bridge_table(&self) -> Option<Table> {
        let first = self.bridge.first()?;
        let rows = self
            .bridge
            .iter()
            .map(|r| {
                vec![
                    r.path.clone(),
                    fmt_ns(r.min_ns),
                    fmt_ns(r.p50_ns),
                    fmt_ns(r.p99_ns),
                    fmt_ns(r.p999_ns),
                    fmt_ns(r.max_ns),
                    r.samples.to_string(),
                    r.vs_tcp_p50
                        .map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
                    r.added_p50_ns.map_or_else(|| "-".into(), fmt_signed_ns),
                    r.added_p99_ns.map_or_else(|| "-".into(), fmt_signed_ns),
                ]
            })
            .collect();
        let p = self.host.pinning;
        let mut notes = vec![format!(
            "One-way times on one clock: the publisher stamps each message with \
             CLOCK_MONOTONIC before send, the subscriber reads it when recv returns; one \
             message in flight, every sequence number checked, and each bridge forwarded \
             exactly what was sent. Library defaults everywhere (Adaptive waits, \
             Overflow::Block), tcp over loopback; the bridge is shmsock::Bridge, the loop \
             of `shmsock bridge`. Publisher on CPU {}, subscriber on CPU {}.",
            p.parent_cpu, p.child_cpu
        )];
        if let Some(cpu) = self.bridge.iter().find_map(|r| r.bridge_cpu) {
            let shared = if cpu == p.child_cpu {
                format!(
                    " (shared with the subscriber: this machine lets the lab use {} CPU(s), \
                     so a bridged message waits for one more scheduling on a busy CPU)",
                    self.host.cpus_allowed
                )
            } else {
                String::new()
            };
            notes.push(format!("Bridge process on CPU {cpu}{shared}."));
        }
        for r in self.bridge.iter().filter(|r| r.bridge_cpu.is_some()) {
            if let (Some(x), Some(p50), Some(p99)) = (r.vs_tcp_p50, r.added_p50_ns, r.added_p99_ns)
            {
                notes.push(format!(
                    "{}: the bridge adds {} at p50 ({x:.2}x {BASELINE} direct); p99 {} \
                     against {BASELINE} direct (one more hop, shm://, and the bridge's receive \
                     and send).",
                    r.path,
                    fmt_signed_ns(p50),
                    fmt_signed_ns(p99)
                ));
            }
        }
        if self
            .bridge
            .iter()
            .any(|r| r.added_p99_ns.is_some_and(|d| d < 0))
        {
            notes.push(format!(
                "A negative p99 difference means {BASELINE} direct had the longer tail in this \
                 run: its subscriber sleeps in poll between messages on a CPU with nothing else \
                 to do, and waking an idle CPU can take milliseconds on a VM, while a bridge \
                 that shares the subscriber's CPU keeps it awake. Compare the medians."
            ));
        }
        Some(Table {
            title: format!(
                "Bridge: one-way latency publisher -> subscriber, direct and through \
                 `shmsock bridge` ({})",
                fmt_size(first.size)
            ),
            plot: Some("bridge.svg"),
            headers: vec![
                "path",
                "min",
                "p50",
                "p99",
                "p99.9",
                "max",
                "samples",
                "vs tcp p50",
                "added p50",
                "added p99",
            ],
            rows,
            notes,
        })
    }

    pub(crate) fn bridge_plot(&self) -> Option<String> {
        if self.bridge.is_empty() {
            return None;
        }
        let names: Vec<String> = self.bridge.iter().map(|r| r.path.clone()).collect();
        let series: [(&str, RGBColor, Vec<u64>); 4] = [
            ("min", GREEN, self.bridge.iter().map(|r| r.min_ns).collect()),
            ("p50", BLUE, self.bridge.iter().map(|r| r.p50_ns).collect()),
            (
                "p99",
                MAGENTA,
                self.bridge.iter().map(|r| r.p99_ns).collect(),
            ),
            (
                "p99.9",
                RED,
                self.bridge.iter().map(|r| r.p999_ns).collect(),
            ),
        ];
        let all = series.iter().flat_map(|(_, _, v)| v.iter().copied());
        let max = all.clone().max()?.max(10) as f64;
        let min = all.min()?.max(1) as f64;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
            root.fill(&WHITE).ok()?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "One-way latency, direct and through shmsock bridge (ns, log scale)",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    -0.5f64..(names.len() as f64 - 0.5),
                    (min / 2.0..max * 2.0).log_scale(),
                )
                .ok()?;
            chart
                .configure_mesh()
                .x_labels(names.len())
                .x_label_formatter(&|x| super::plot::label_at(&names, *x))
                .y_desc("one way (ns)")
                .draw()
                .ok()?;
            for (label, color, values) in &series {
                let color = *color;
                let points: Vec<(f64, f64)> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64, (*v).max(1) as f64))
                    .collect();
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))
                    .ok()?
                    .label(*label)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .ok()?;
            root.present().ok()?;
        }
        Some(svg)
    }
}

#[cfg(test)]
mod tests {
    use crate::host::{HostInfo, Pinning};
    use crate::report::{BridgeRow, Report};
    use crate::Mode;

    fn row(path: &str, p50_ns: u64, p99_ns: u64, bridge_cpu: Option<usize>) -> BridgeRow {
        BridgeRow {
            path: path.into(),
            size: 64,
            min_ns: p50_ns / 2,
            p50_ns,
            p99_ns,
            p999_ns: 2 * p99_ns,
            max_ns: 3 * p99_ns,
            mean_ns: p50_ns as f64,
            samples: 1000,
            bridge_cpu,
            vs_tcp_p50: None,
            added_p50_ns: None,
            added_p99_ns: None,
        }
    }

    fn report(cpus: usize) -> Report {
        let pinning = Pinning {
            parent_cpu: 0,
            child_cpu: 1,
        };
        let host = HostInfo {
            cpu_model: "test".into(),
            cpus_online: cpus,
            cpus_allowed: cpus,
            kernel: "Linux".into(),
            machine: "x86_64".into(),
            governor: None,
            pinning,
            pinning_text: pinning.describe(),
        };
        let mut r = Report::new(host, Mode::Quick, Vec::new());
        r.bridge = vec![
            row("shm", 200, 400, None),
            row("tcp", 20_000, 60_000, None),
            row("shm->bridge->tcp", 30_000, 50_000, Some(1)),
        ];
        r.finish();
        r
    }

    #[test]
    fn bridged_rows_are_compared_with_tcp_of_the_same_run() {
        let r = report(2);
        assert_eq!(
            r.bridge[0].added_p50_ns, None,
            "direct rows have no comparison"
        );
        assert_eq!(r.bridge[1].vs_tcp_p50, None);
        let bridged = &r.bridge[2];
        assert_eq!(bridged.vs_tcp_p50, Some(1.5));
        assert_eq!(bridged.added_p50_ns, Some(10_000));
        assert_eq!(bridged.added_p99_ns, Some(-10_000));
        let table = r.bridge_table().expect("a table").to_text();
        assert!(
            table.contains("+10.0 µs") && table.contains("-10.0 µs"),
            "{table}"
        );
        assert!(
            table.contains("the bridge adds +10.0 µs at p50 (1.50x tcp direct); p99 -10.0 µs"),
            "{table}"
        );
        assert!(table.contains("shared with the subscriber"), "{table}");
        assert!(table.contains("negative p99 difference"), "{table}");
        assert!(r.plots().iter().any(|(name, _)| *name == "bridge.svg"));
        assert!(r.render().contains("shm->bridge->tcp"));
        assert!(r.render_markdown().contains("![bridge](bridge.svg)"));
    }

    #[test]
    fn a_bridge_on_its_own_cpu_is_not_called_shared_and_old_reports_still_load() {
        let mut r = report(4);
        r.bridge[2].bridge_cpu = Some(2);
        let table = r.bridge_table().expect("a table").to_text();
        assert!(table.contains("Bridge process on CPU 2."), "{table}");
        assert!(!table.contains("shared with the subscriber"), "{table}");
        r.bridge[2].added_p99_ns = Some(5_000);
        let table = r.bridge_table().expect("a table").to_text();
        assert!(!table.contains("negative p99 difference"), "{table}");
        // A report written before the bridge experiment existed has no `bridge` field.
        let mut json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("bridge");
        let old: Report = serde_json::from_value(json).expect("an old report loads");
        assert!(old.bridge.is_empty() && old.bridge_table().is_none());
    }
}
