//! SVG plots of the report (plotters, SVG backend only: no fonts or system libraries needed).
//!
//! - `latency.svg`: RTT min / p50 / p99 / p99.9 per mechanism (sides on different CPUs), on a
//!   log axis, with the same-CPU p50 beside them;
//! - `throughput.svg`: messages per second per mechanism, one series per message size, log axis;
//! - `sync_tax.svg`: messages per second per synchronisation method, measured beside the Comparison's claims;
//! - `contention.svg`: messages per second against producers (1, 2, 4, 8), one curve per queue,
//!   measured (solid) and the Comparison (faint), log axis;
//! - `fanout.svg`: the publisher's messages per second against subscribers (1, 2, 4), one
//!   curve per message size, log axis;
//! - `bridge.svg`: one-way min/p50/p99/p99.9 per path, direct and through a bridge, log
//!   axis (drawn in `report/bridge.rs`).

use plotters::prelude::*;

use super::Report;
use crate::claims::Metric;

const WIDTH_PX: u32 = 1100;
const HEIGHT_PX: u32 = 560;

impl Report {
    /// The plots: (file name, SVG text). A plot with no data is left out.
    pub fn plots(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(svg) = self.latency_plot() {
            out.push(("latency.svg", svg));
        }
        if let Some(svg) = self.throughput_plot() {
            out.push(("throughput.svg", svg));
        }
        if let Some(svg) = self.sync_tax_plot() {
            out.push(("sync_tax.svg", svg));
        }
        if let Some(svg) = self.contention_plot() {
            out.push(("contention.svg", svg));
        }
        if let Some(svg) = self.fanout_plot() {
            out.push(("fanout.svg", svg));
        }
        if let Some(svg) = self.bridge_plot() {
            out.push(("bridge.svg", svg));
        }
        out
    }

    /// The claimed value of `metric` for lab row `row`, if a claim covers it.
    fn claimed(metric: Metric, row: &str) -> Option<f64> {
        crate::claims::CLAIMS
            .iter()
            .find(|c| c.metric == metric && c.measured_by.contains(&row))
            .map(|c| c.middle())
    }

    fn sync_tax_plot(&self) -> Option<String> {
        if self.sync_tax.is_empty() {
            return None;
        }
        let names: Vec<String> = self.sync_tax.iter().map(|r| r.method.clone()).collect();
        let measured: Vec<f64> = self.sync_tax.iter().map(|r| r.msgs_per_s as f64).collect();
        let claimed: Vec<Option<f64>> = names
            .iter()
            .map(|n| Self::claimed(Metric::SyncTax, n))
            .collect();
        let max = measured
            .iter()
            .copied()
            .chain(claimed.iter().flatten().copied())
            .fold(1.0, f64::max);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
            root.fill(&WHITE).ok()?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "Synchronisation tax: 4 KiB SPSC between two processes (messages/s)",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(-0.5f64..(names.len() as f64 - 0.5), 0f64..max * 1.15)
                .ok()?;
            chart
                .configure_mesh()
                .x_labels(names.len())
                .x_label_formatter(&|x| label_at(&names, *x))
                .y_label_formatter(&|y| super::render::fmt_count(*y as u64))
                .y_desc("messages per second")
                .draw()
                .ok()?;
            let bars: [(&str, RGBColor, Vec<Option<f64>>, f64); 2] = [
                (
                    "this machine",
                    BLUE,
                    measured.iter().map(|&v| Some(v)).collect(),
                    -0.15,
                ),
                (
                    "Comparison (claimed)",
                    RGBColor(170, 170, 170),
                    claimed.clone(),
                    0.15,
                ),
            ];
            for (label, color, values, offset) in bars {
                chart
                    .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                        let x = i as f64 + offset;
                        v.map(|v| Rectangle::new([(x - 0.13, 0.0), (x + 0.13, v)], color.filled()))
                    }))
                    .ok()?
                    .label(label)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 4), (x + 10, y + 4)], color.filled())
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .ok()?;
            root.present().ok()?;
        }
        Some(svg)
    }

    fn contention_plot(&self) -> Option<String> {
        if self.contention.is_empty() {
            return None;
        }
        let mut queues: Vec<String> = Vec::new();
        for r in &self.contention {
            if !queues.contains(&r.queue) {
                queues.push(r.queue.clone());
            }
        }
        let producers = crate::experiments::contention::PRODUCERS;
        let x_of = |p: u32| f64::from(p).log2();
        let mut values: Vec<f64> = self
            .contention
            .iter()
            .map(|r| r.msgs_per_s as f64)
            .collect();
        for q in &queues {
            for &p in &producers {
                values.extend(Self::claimed(Metric::Contention { producers: p }, q));
            }
        }
        let max = values.iter().copied().fold(10.0, f64::max);
        let min = values.iter().copied().fold(max, f64::min).max(1.0);
        let colors = [BLUE, RED, GREEN, MAGENTA, BLACK];
        let names: Vec<String> = producers.iter().map(|p| p.to_string()).collect();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
            root.fill(&WHITE).ok()?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "Contention: producers -> one consumer, 4 KiB (messages/s, log scale)",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(-0.3f64..3.3, (min / 2.0..max * 2.0).log_scale())
                .ok()?;
            chart
                .configure_mesh()
                .x_labels(names.len())
                .x_label_formatter(&|x| label_at(&names, *x))
                .y_label_formatter(&|y| super::render::fmt_count(*y as u64))
                .x_desc("producer processes")
                .y_desc("messages per second, all producers")
                .draw()
                .ok()?;
            for (k, q) in queues.iter().enumerate() {
                let color = colors[k % colors.len()];
                let points: Vec<(f64, f64)> = self
                    .contention
                    .iter()
                    .filter(|r| &r.queue == q)
                    .map(|r| (x_of(r.producers), r.msgs_per_s.max(1) as f64))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .ok()?
                    .label(q.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .ok()?;
                let claimed: Vec<(f64, f64)> = producers
                    .iter()
                    .filter_map(|&p| {
                        Self::claimed(Metric::Contention { producers: p }, q).map(|v| (x_of(p), v))
                    })
                    .collect();
                let faint = color.mix(0.35);
                chart
                    .draw_series(LineSeries::new(claimed.clone(), faint.stroke_width(1)))
                    .ok()?
                    .label(format!("{q}, Comparison (claimed)"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], faint.stroke_width(1))
                    });
                chart
                    .draw_series(claimed.iter().map(|&p| Circle::new(p, 3, faint)))
                    .ok()?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerLeft)
                .draw()
                .ok()?;
            root.present().ok()?;
        }
        Some(svg)
    }

    fn fanout_plot(&self) -> Option<String> {
        if self.fanout.is_empty() {
            return None;
        }
        let mut sizes: Vec<usize> = self.fanout.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let subscribers = crate::experiments::fanout::SUBSCRIBERS;
        let x_of = |n: u32| f64::from(n).log2();
        let max = self.fanout.iter().map(|r| r.msgs_per_s).max()?.max(10) as f64;
        let min = self.fanout.iter().map(|r| r.msgs_per_s).min()?.max(1) as f64;
        let colors = [BLUE, RED, GREEN, MAGENTA];
        let names: Vec<String> = subscribers.iter().map(|n| n.to_string()).collect();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
            root.fill(&WHITE).ok()?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "Fan-out: one publisher -> N subscribers over shm:// (messages/s sent, log \
                     scale)",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(-0.3f64..2.3, (min / 2.0..max * 2.0).log_scale())
                .ok()?;
            chart
                .configure_mesh()
                .x_labels(names.len())
                .x_label_formatter(&|x| label_at(&names, *x))
                .y_label_formatter(&|y| super::render::fmt_count(*y as u64))
                .x_desc("subscriber processes")
                .y_desc("messages per second, sent to all")
                .draw()
                .ok()?;
            for (k, size) in sizes.iter().enumerate() {
                let color = colors[k % colors.len()];
                let points: Vec<(f64, f64)> = self
                    .fanout
                    .iter()
                    .filter(|r| r.size == *size)
                    .map(|r| (x_of(r.subscribers), r.msgs_per_s.max(1) as f64))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .ok()?
                    .label(super::render::fmt_size(*size))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .ok()?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerLeft)
                .draw()
                .ok()?;
            root.present().ok()?;
        }
        Some(svg)
    }

    fn latency_plot(&self) -> Option<String> {
        let rows = &self.latency;
        if rows.is_empty() {
            return None;
        }
        let names: Vec<String> = rows.iter().map(|r| r.mechanism.clone()).collect();
        let same = |name: &str| {
            self.latency_same_cpu
                .iter()
                .find(|r| r.mechanism == name)
                .map(|r| r.p50_ns)
        };
        let series: Vec<(&str, RGBColor, Vec<Option<u64>>)> = vec![
            (
                "RTT min",
                GREEN,
                rows.iter().map(|r| Some(r.min_ns)).collect(),
            ),
            (
                "RTT p50",
                BLUE,
                rows.iter().map(|r| Some(r.p50_ns)).collect(),
            ),
            (
                "RTT p99",
                MAGENTA,
                rows.iter().map(|r| Some(r.p99_ns)).collect(),
            ),
            (
                "RTT p99.9",
                RED,
                rows.iter().map(|r| Some(r.p999_ns)).collect(),
            ),
            (
                "RTT p50, same CPU",
                BLACK,
                names.iter().map(|n| same(n)).collect(),
            ),
        ];
        let max = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().flatten())
            .copied()
            .max()
            .unwrap_or(1)
            .max(10);
        let min = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().flatten())
            .copied()
            .min()
            .unwrap_or(1)
            .max(1);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
            root.fill(&WHITE).ok()?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "Ping-pong round trip, 64 B (ns, log scale)",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(90)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    -0.5f64..(names.len() as f64 - 0.5),
                    ((min as f64) / 2.0..(max as f64) * 2.0).log_scale(),
                )
                .ok()?;
            chart
                .configure_mesh()
                .x_labels(names.len())
                .x_label_formatter(&|x| label_at(&names, *x))
                .x_label_style(
                    ("sans-serif", 11)
                        .into_font()
                        .transform(FontTransform::Rotate90),
                )
                .y_desc("round trip (ns)")
                .draw()
                .ok()?;
            for (label, color, values) in &series {
                let points: Vec<(f64, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i as f64, v.max(1) as f64)))
                    .collect();
                let color = *color;
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .ok()?
                    .label(*label)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
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

    fn throughput_plot(&self) -> Option<String> {
        if self.throughput.is_empty() {
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        for r in &self.throughput {
            if !names.contains(&r.mechanism) {
                names.push(r.mechanism.clone());
            }
        }
        let mut sizes: Vec<usize> = self.throughput.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let max = self.throughput.iter().map(|r| r.msgs_per_s).max()?.max(10);
        let min = self.throughput.iter().map(|r| r.msgs_per_s).min()?.max(1);
        let colors = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
            root.fill(&WHITE).ok()?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "Streaming throughput (messages/s, log scale)",
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(90)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    -0.5f64..(names.len() as f64 - 0.5),
                    ((min as f64) / 2.0..(max as f64) * 2.0).log_scale(),
                )
                .ok()?;
            chart
                .configure_mesh()
                .x_labels(names.len())
                .x_label_formatter(&|x| label_at(&names, *x))
                .x_label_style(
                    ("sans-serif", 11)
                        .into_font()
                        .transform(FontTransform::Rotate90),
                )
                .y_desc("messages per second")
                .draw()
                .ok()?;
            for (k, size) in sizes.iter().enumerate() {
                let color = colors[k % colors.len()];
                let offset = (k as f64 - (sizes.len() as f64 - 1.0) / 2.0) * 0.15;
                let points: Vec<(f64, f64)> = self
                    .throughput
                    .iter()
                    .filter(|r| r.size == *size)
                    .filter_map(|r| {
                        let i = names.iter().position(|n| *n == r.mechanism)?;
                        Some((i as f64 + offset, r.msgs_per_s.max(1) as f64))
                    })
                    .collect();
                chart
                    .draw_series(points.iter().map(|&p| {
                        Rectangle::new(
                            [(p.0 - 0.06, min as f64 / 2.0), (p.0 + 0.06, p.1)],
                            color.filled(),
                        )
                    }))
                    .ok()?
                    .label(super::render::fmt_size(*size))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 4), (x + 10, y + 4)], color.filled())
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .ok()?;
            root.present().ok()?;
        }
        Some(svg)
    }
}

/// The category name at axis position `x` (an index), or nothing between categories.
pub(super) fn label_at(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    names.get(i as usize).cloned().unwrap_or_default()
}
