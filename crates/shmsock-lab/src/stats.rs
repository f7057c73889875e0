//! Summaries of timed samples: the percentiles every latency-like row carries.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The spread of a set of times, in ns: what `LatencyRow` and
/// `BridgeRow` report. Rows embed it with `#[serde(flatten)]`,
/// so its fields sit in the row's JSON object (`min_ns`, `p50_ns`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Fastest.
    pub min_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

impl Percentiles {
    /// Summarises a histogram of times in ns.
    pub(crate) fn from_histogram(hist: &Histogram<u64>) -> Self {
        Self {
            min_ns: hist.min(),
            p50_ns: hist.value_at_quantile(0.5),
            p99_ns: hist.value_at_quantile(0.99),
            p999_ns: hist.value_at_quantile(0.999),
            max_ns: hist.max(),
            mean_ns: hist.mean(),
        }
    }

    /// min, p50, p99 and p99.9 with their labels (`min`, `p50`, `p99`, `p99.9`), in that order.
    pub fn labelled(&self) -> [(&'static str, u64); 4] {
        [
            ("min", self.min_ns),
            ("p50", self.p50_ns),
            ("p99", self.p99_ns),
            ("p99.9", self.p999_ns),
        ]
    }
}

#[cfg(test)]
impl Percentiles {
    /// Made-up times for tests: min and mean at `p50_ns`, p99, p99.9 and max at the `tail`
    /// multiples of it.
    pub(crate) fn at(p50_ns: u64, tail: [u64; 3]) -> Self {
        Self {
            min_ns: p50_ns,
            p50_ns,
            p99_ns: tail[0] * p50_ns,
            p999_ns: tail[1] * p50_ns,
            max_ns: tail[2] * p50_ns,
            mean_ns: p50_ns as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_summarised_in_order() {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).expect("bounds");
        for v in 1..=1000 {
            hist.record(v).expect("in range");
        }
        let p = Percentiles::from_histogram(&hist);
        assert_eq!((p.min_ns, p.max_ns), (1, 1000));
        assert!(p.p50_ns <= p.p99_ns && p.p99_ns <= p.p999_ns && p.p999_ns <= p.max_ns);
        assert_eq!(p.labelled()[1], ("p50", p.p50_ns));
    }
}
