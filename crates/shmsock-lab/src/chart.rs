//! The one chart set-up of the report's SVG plots (plotters, SVG backend only: no fonts or
//! system libraries needed): a [`Chart`] names its caption, its categories or points on the x
//! axis, its y axis (linear from 0 or logarithmic) and its [`Series`]; [`Chart::to_svg`] draws
//! the background, caption, mesh, axis labels, every series and the legend.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

use crate::format::{fmt_count, fmt_tick_ns};

/// The size of most plots, in pixels.
pub(crate) const WIDE: (u32, u32) = (1100, 560);

/// The palette series take their colours from, in order.
pub(crate) const COLOURS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];

/// The colour of a reference document's claimed values.
pub(crate) const CLAIMED: RGBColor = RGBColor(170, 170, 170);

/// How the y axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// From 0 to 1.15 × the largest value.
    Linear,
    /// From half the smallest value to twice the largest.
    Log,
}

/// How a series marks its points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mark {
    /// A filled dot of this radius per point.
    Dots(u32),
    /// A line of this width through the points, and a dot of `radius` on each (`filled` or
    /// an outline).
    Line {
        /// Stroke width of the line.
        width: u32,
        /// Radius of the dots.
        radius: u32,
        /// Whether the dots are filled.
        filled: bool,
    },
    /// A bar of this half-width from the bottom of the axis up to each point.
    Bars(f64),
}

/// One series of a chart: a legend entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    /// Its legend text.
    pub(crate) label: String,
    /// Its colour.
    pub(crate) colour: RGBAColor,
    /// How it is drawn.
    pub(crate) mark: Mark,
    /// Its points, (x, y).
    pub(crate) points: Vec<(f64, f64)>,
}

impl Series {
    /// A series of `points` in `colour`, drawn as `mark`.
    pub(crate) fn new(
        label: impl Into<String>,
        colour: impl Into<RGBAColor>,
        mark: Mark,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Self {
            label: label.into(),
            colour: colour.into(),
            mark,
            points,
        }
    }
}

/// One plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chart {
    /// The caption above the plot.
    pub(crate) caption: String,
    /// Width and height in pixels.
    pub(crate) size: (u32, u32),
    /// Labels of the x positions 0, 1, 2, ...
    pub(crate) categories: Vec<String>,
    /// The x range; `None`: half a category beyond the first and the last.
    pub(crate) x_range: Option<Range<f64>>,
    /// Whether the category labels are written vertically (long names).
    pub(crate) vertical_labels: bool,
    /// The x axis' description, if any.
    pub(crate) x_desc: Option<&'static str>,
    /// The y axis' description.
    pub(crate) y_desc: &'static str,
    /// How the y axis maps values.
    pub(crate) scale: Scale,
    /// Whether y labels are counts (`1.50 M`) rather than plain numbers.
    pub(crate) count_labels: bool,
    /// Whether y values are times in ns, labelled with their unit (`100 ns`, `10 µs`).
    pub(crate) ns_labels: bool,
    /// When set, y values are messages/s of this size, labelled with both rates
    /// (`1.50 M/s · 6.1 GB/s`).
    pub(crate) rate_of_size: Option<usize>,
    /// Claimed ranges drawn behind the series as shaded bands: (x, low, high).
    pub(crate) bands: Vec<(f64, f64, f64)>,
    /// The legend text of the bands.
    pub(crate) band_label: &'static str,
    /// Where the legend goes.
    pub(crate) legend: SeriesLabelPosition,
    /// What is drawn.
    pub(crate) series: Vec<Series>,
}

impl Chart {
    /// A [`WIDE`] chart of `categories` with no series yet, linear y, legend upper right.
    pub(crate) fn new(
        caption: impl Into<String>,
        categories: Vec<String>,
        y_desc: &'static str,
    ) -> Self {
        Self {
            caption: caption.into(),
            size: WIDE,
            categories,
            x_range: None,
            vertical_labels: false,
            x_desc: None,
            y_desc,
            scale: Scale::Linear,
            count_labels: false,
            ns_labels: false,
            rate_of_size: None,
            bands: Vec::new(),
            band_label: "claimed range",
            legend: SeriesLabelPosition::UpperRight,
            series: Vec::new(),
        }
    }

    /// A chart of a rate against 1, 2, 4, ... processes (`counts`, on a log2 x axis): log y of
    /// counts, legend lower left.
    pub(crate) fn over_counts(
        caption: &str,
        counts: &[u32],
        x_desc: &'static str,
        y_desc: &'static str,
    ) -> Self {
        let mut chart = Self::new(caption, counts.iter().map(u32::to_string).collect(), y_desc);
        chart.x_range = Some(-0.3..Self::x_of(counts.last().copied().unwrap_or(1)) + 0.3);
        chart.x_desc = Some(x_desc);
        chart.scale = Scale::Log;
        chart.count_labels = true;
        chart.legend = SeriesLabelPosition::LowerLeft;
        chart
    }

    /// The x position of `count` processes on an [`Chart::over_counts`] chart.
    pub(crate) fn x_of(count: u32) -> f64 {
        f64::from(count).log2()
    }

    /// The plot as SVG text; `None` if there is nothing to draw or plotters failed.
    pub(crate) fn to_svg(&self) -> Option<String> {
        let values = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain(self.bands.iter().flat_map(|b| [b.1, b.2]))
        };
        values().next()?;
        let max = values().fold(f64::MIN, f64::max);
        match self.scale {
            Scale::Linear => {
                let max = max.max(1.0) * 1.15;
                self.draw(0f64..max, 0.0)
            }
            Scale::Log => {
                let max = max.max(10.0) * 2.0;
                let min = values().fold(f64::MAX, f64::min).max(1.0) / 2.0;
                self.draw((min..max).log_scale(), min)
            }
        }
    }

    fn draw<Y>(&self, y: Y, bottom: f64) -> Option<String>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let n = self.categories.len() as f64;
        let x = self.x_range.clone().unwrap_or(-0.5..n - 0.5);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).ok()?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.caption, ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(if self.vertical_labels { 90 } else { 40 })
                .y_label_area_size(if self.rate_of_size.is_some() {
                    150
                } else if self.count_labels {
                    80
                } else {
                    70
                })
                .build_cartesian_2d(x, y)
                .ok()?;
            let label = |x: &f64| {
                let name = label_at(&self.categories, *x);
                if self.vertical_labels {
                    // The axis centres a label on its tick, which puts half of a rotated one
                    // above the axis, under the plot: as many no-break spaces before the name
                    // push all of it below.
                    format!("{}{name}", "\u{a0}".repeat(name.chars().count() + 1))
                } else {
                    name
                }
            };
            let count = |y: &f64| fmt_count(*y as u64);
            let ns = |y: &f64| fmt_tick_ns(*y);
            let rate = |y: &f64| {
                let size = self.rate_of_size.unwrap_or(0) as f64;
                format!("{}/s · {:.2} GB/s", fmt_count(*y as u64), *y * size / 1e9)
            };
            let mut mesh = chart.configure_mesh();
            mesh.x_labels(self.categories.len())
                .x_label_formatter(&label)
                .y_desc(self.y_desc);
            if self.rate_of_size.is_some() {
                mesh.y_label_formatter(&rate);
            } else if self.count_labels {
                mesh.y_label_formatter(&count);
            } else if self.ns_labels {
                mesh.y_label_formatter(&ns);
            }
            if let Some(desc) = self.x_desc {
                mesh.x_desc(desc);
            }
            if self.vertical_labels {
                mesh.x_label_style(
                    ("sans-serif", 11)
                        .into_font()
                        .transform(FontTransform::Rotate90),
                );
            }
            mesh.draw().ok()?;
            if !self.bands.is_empty() {
                let shade = CLAIMED.mix(0.35);
                chart
                    .draw_series(self.bands.iter().map(|&(x, low, high)| {
                        Rectangle::new([(x - 0.4, low), (x + 0.4, high)], shade.filled())
                    }))
                    .ok()?
                    .label(self.band_label)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], shade.filled())
                    });
            }
            for s in &self.series {
                let colour = s.colour;
                match s.mark {
                    Mark::Dots(radius) => {
                        chart
                            .draw_series(
                                s.points
                                    .iter()
                                    .map(|&p| Circle::new(p, radius, colour.filled())),
                            )
                            .ok()?
                            .label(s.label.as_str())
                            .legend(move |(x, y)| Circle::new((x + 8, y), radius, colour.filled()));
                    }
                    Mark::Line {
                        width,
                        radius,
                        filled,
                    } => {
                        chart
                            .draw_series(LineSeries::new(
                                s.points.clone(),
                                colour.stroke_width(width),
                            ))
                            .ok()?
                            .label(s.label.as_str())
                            .legend(move |(x, y)| {
                                PathElement::new(
                                    vec![(x, y), (x + 16, y)],
                                    colour.stroke_width(width),
                                )
                            });
                        let style = if filled {
                            colour.filled()
                        } else {
                            colour.into()
                        };
                        chart
                            .draw_series(s.points.iter().map(|&p| Circle::new(p, radius, style)))
                            .ok()?;
                    }
                    Mark::Bars(half) => {
                        chart
                            .draw_series(s.points.iter().map(|&(x, y)| {
                                Rectangle::new([(x - half, bottom), (x + half, y)], colour.filled())
                            }))
                            .ok()?
                            .label(s.label.as_str())
                            .legend(move |(x, y)| {
                                Rectangle::new([(x, y - 4), (x + 10, y + 4)], colour.filled())
                            });
                    }
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(self.legend.clone())
                .draw()
                .ok()?;
            root.present().ok()?;
        }
        Some(svg)
    }
}

/// Panels stacked top to bottom in one SVG document (each an SVG of [`Chart::to_svg`], nested
/// at its offset); `None` without panels.
pub(crate) fn stack(panels: &[String]) -> Option<String> {
    let size = |svg: &str, attr: &str| -> u32 {
        let key = format!("{attr}=\"");
        svg.find(&key)
            .and_then(|i| {
                let rest = &svg[i + key.len()..];
                rest[..rest.find('"')?].parse().ok()
            })
            .unwrap_or(0)
    };
    if panels.is_empty() {
        return None;
    }
    let width = panels.iter().map(|p| size(p, "width")).max().unwrap_or(0);
    let height: u32 = panels.iter().map(|p| size(p, "height")).sum();
    let mut out = format!(
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n"
    );
    let mut y = 0;
    for panel in panels {
        let body = crate::table::strip_xml_prolog(panel);
        // Nest the panel's own <svg> element at its offset.
        out.push_str(&body.replacen("<svg ", &format!("<svg y=\"{y}\" "), 1));
        out.push('\n');
        y += size(panel, "height");
    }
    out.push_str("</svg>\n");
    Some(out)
}

/// The category name at axis position `x` (an index), or nothing between categories.
fn label_at(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    names.get(i as usize).cloned().unwrap_or_default()
}

/// The distinct values of `items`, ascending.
pub(crate) fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = items.into_iter().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The distinct values of `items`, in the order they first appear.
pub(crate) fn distinct<T: PartialEq + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mark_draws_on_both_scales_with_its_legend() {
        for scale in [Scale::Linear, Scale::Log] {
            let mut chart = Chart::new("caption", vec!["a".into(), "b".into()], "y");
            chart.scale = scale;
            chart.series = vec![
                Series::new("dots", BLUE, Mark::Dots(4), vec![(0.0, 10.0), (1.0, 20.0)]),
                Series::new(
                    "line",
                    RED.mix(0.35),
                    Mark::Line {
                        width: 1,
                        radius: 3,
                        filled: false,
                    },
                    vec![(0.0, 5.0), (1.0, 50.0)],
                ),
                Series::new("bars", GREEN, Mark::Bars(0.1), vec![(0.0, 30.0)]),
            ];
            let svg = chart.to_svg().expect("drawn");
            assert!(svg.starts_with("<svg"), "{svg}");
            for text in ["caption", "dots", "line", "bars"] {
                assert!(svg.contains(text), "{text}");
            }
        }
        assert!(Chart::new("empty", Vec::new(), "y").to_svg().is_none());
    }

    #[test]
    fn categories_label_whole_positions_only() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(label_at(&names, 1.0), "b");
        assert_eq!(label_at(&names, 0.5), "");
        assert_eq!(distinct([3, 1, 3, 2]), [3, 1, 2]);
        assert_eq!(sorted([3, 1, 3, 2]), [1, 2, 3]);
        assert_eq!(
            Chart::over_counts("c", &[1, 2, 4, 8], "x", "y").x_range,
            Some(-0.3..3.3)
        );
    }
}
