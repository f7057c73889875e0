//! Numbers as the report writes them: durations, sizes, counts, ratios.

/// `850 ns`, `45.2 µs`, `1.20 ms`, `2.00 s`.
pub(crate) fn fmt_ns(ns: u64) -> String {
    match ns {
        0..10_000 => format!("{ns} ns"),
        10_000..10_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        10_000_000..10_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// `+12.3 µs`, `-850 ns`.
pub(crate) fn fmt_signed_ns(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "+" };
    format!("{sign}{}", fmt_ns(ns.unsigned_abs()))
}

/// `64 B`, `4 KiB`, `1 MiB`.
pub(crate) fn fmt_size(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// `850`, `547.1 k`, `1.50 M`.
pub(crate) fn fmt_count(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1} k", n as f64 / 1e3),
        _ => format!("{:.2} M", n as f64 / 1e6),
    }
}

/// An axis tick in ns, short: `100 ns`, `2.5 µs`, `10 ms`, `1 s`.
pub(crate) fn fmt_tick_ns(ns: f64) -> String {
    let (value, unit) = match ns.abs() {
        v if v < 1e3 => (ns, "ns"),
        v if v < 1e6 => (ns / 1e3, "µs"),
        v if v < 1e9 => (ns / 1e6, "ms"),
        _ => (ns / 1e9, "s"),
    };
    let digits = if value.abs() >= 10.0 || value.fract() == 0.0 {
        0
    } else {
        1
    };
    format!("{value:.digits$} {unit}")
}

/// `0.60x` with `decimals` decimals, or `-` when there is no ratio.
pub(crate) fn fmt_ratio(ratio: Option<f64>, decimals: usize) -> String {
    ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.decimals$}x"))
}

/// How a table's note judges a bar (a design target of shmsock's): `met`, or `NOT met in
/// this run` (one run on a noisy host is not the last word).
pub(crate) fn bar_verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met in this run"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_counts_read_naturally() {
        assert_eq!(fmt_ns(850), "850 ns");
        assert_eq!(fmt_ns(45_200), "45.2 µs");
        assert_eq!(fmt_count(1_500_000), "1.50 M");
        assert_eq!(fmt_count(547_100), "547.1 k");
        assert_eq!(fmt_signed_ns(-850), "-850 ns");
        assert_eq!(fmt_ratio(Some(0.6), 2), "0.60x");
        assert_eq!(fmt_ratio(None, 1), "-");
        assert_eq!(fmt_tick_ns(100.0), "100 ns");
        assert_eq!(fmt_tick_ns(2_500.0), "2.5 µs");
        assert_eq!(fmt_tick_ns(10_000_000.0), "10 ms");
        assert_eq!(fmt_tick_ns(1e9), "1 s");
    }
}
