//! Rounds: how the lab measures a row several times and reports one number.
//!
//! Every latency, throughput, contention and fan-out row is measured in several rounds (5 by
//! default, 3 with `--quick`), interleaved: round 1 of every row, then round 2 of every row,
//! and so on, so a
//! slow minute of a noisy host lands on one round of many rows rather than on every round of
//! one. Each round gets its share of the row's budget. A short floor probe (the bare
//! cache-line round trip) runs between rows; a round whose probes before and after moved more
//! than [`NOISY_PROBE_PCT`], or were both over [`SLOW_HOST_FACTOR`] times the run's median
//! probe, is measured again, up to [`RERUNS_MAX`] times, and the row is marked noisy if the
//! probes still moved (or stayed slow). The row reported is the round with the median key
//! value (p50 round trip for latency, messages per second otherwise), with the smallest
//! and largest of all rounds as its spread. A row compared with another measured in the same
//! rounds (a shmsock stream with the raw ring, N producers or subscribers with one) gives the
//! median of the per-round ratios: rounds measured moments apart share the host's mood.

use serde::{Deserialize, Serialize};

use crate::experiments::Budget;

/// Rounds per row by default.
pub const ROUNDS_DEFAULT: u32 = 5;
/// Rounds per row with `--quick`.
pub const ROUNDS_QUICK: u32 = 3;
/// Floor probes that moved more than this (in % of the smaller) make a round noisy.
pub const NOISY_PROBE_PCT: f64 = 25.0;
/// How many times a noisy round is measured again before the row is marked noisy.
pub const RERUNS_MAX: u32 = 2;

/// How a row's rounds went: their number, the spread of their key values, and whether the
/// host was noisy during them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Rounds that produced a measurement (0 in reports from before rounds existed).
    pub rounds: u32,
    /// Smallest key value of the rounds (p50 ns for latency, msgs/s for throughput).
    pub min: f64,
    /// Largest key value of the rounds.
    pub max: f64,
    /// Whether the floor probes around a round still moved more than [`NOISY_PROBE_PCT`]
    /// (or were both over [`SLOW_HOST_FACTOR`] times the run's median probe) after
    /// [`RERUNS_MAX`] re-runs.
    pub noisy: bool,
    /// Rounds measured again because the floor probes around them moved (or were both slow).
    #[serde(default)]
    pub reruns: u32,
}

impl Spread {
    /// `(max - min) / median`, in %; 0 with fewer than two rounds.
    pub fn pct_of(&self, median: f64) -> f64 {
        if self.rounds < 2 || median <= 0.0 {
            return 0.0;
        }
        100.0 * (self.max - self.min) / median
    }
}

/// One measurement of one round of a row, with the floor probes taken just before and just
/// after it: the report keeps them all (`rounds` in report.json), so a row's spread can be
/// told apart from the host's (a slow round between two slow probes was the host; one
/// between two fast probes was the row itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundLog {
    /// The row's mechanism.
    pub mechanism: String,
    /// `latency`, `latency-same-cpu`, `throughput`, `contention` or `fanout`.
    pub experiment: String,
    /// Message size in bytes.
    pub size: usize,
    /// The round, from 1.
    pub round: u32,
    /// 0 for the round's first measurement, then 1, 2 for its re-runs.
    pub attempt: u32,
    /// The round's key value (p50 round trip in ns, or msgs/s); `None` if it failed.
    pub key: Option<f64>,
    /// The floor's p50 round trip just before it, in ns, if the probe worked.
    pub floor_before_ns: Option<u64>,
    /// The floor's p50 round trip just after it, in ns, if the probe worked.
    pub floor_after_ns: Option<u64>,
    /// For a throughput row measured next to the raw ring: the raw ring's msgs/s at the
    /// same size, measured right after the round.
    #[serde(default)]
    pub raw_ring_after: Option<f64>,
    /// For a contention or fan-out row: its producer or subscriber processes.
    #[serde(default)]
    pub processes: Option<u32>,
}

impl RoundLog {
    /// The log of round `round` of a row, before it is measured.
    pub(crate) fn new(mechanism: &str, experiment: &str, size: usize, round: u32) -> Self {
        Self {
            mechanism: mechanism.to_owned(),
            experiment: experiment.to_owned(),
            size,
            round,
            attempt: 0,
            key: None,
            floor_before_ns: None,
            floor_after_ns: None,
            raw_ring_after: None,
            processes: None,
        }
    }
}

/// A row measured in rounds.
pub(crate) trait RoundRow {
    /// The value the rounds are ranked by.
    fn key(&self) -> f64;
    /// Where the row keeps its [`Spread`].
    fn spread_mut(&mut self) -> &mut Spread;
}

/// A row of a table that sets N processes beside one (contention, fan-out), measured in
/// rounds: its ratios to the one-process row are the medians of the per-round ratios.
pub(crate) trait ScaledRow: RoundRow {
    /// CPU time per delivered message, ns.
    fn cpu_ns(&self) -> f64;
    /// Sets the row's rate and CPU per message over the one-process row's.
    fn set_vs_one(&mut self, rate: Option<f64>, cpu: Option<f64>);
}

/// A row's rounds as they are measured: each round's row (`None` where it failed), why
/// rounds failed, and how the floor probes around them went.
#[derive(Debug)]
pub(crate) struct Measurements<T> {
    /// Round k's row at index k - 1 (`None` if it failed); shorter than the run's rounds
    /// when the row stopped after failing every round so far.
    pub(crate) rounds: Vec<Option<T>>,
    /// Why rounds failed, in order.
    pub(crate) failures: Vec<String>,
    /// Whether the floor probes around one of its rounds still moved after the re-runs.
    pub(crate) noisy: bool,
    /// Rounds measured again because the probes moved.
    pub(crate) reruns: u32,
}

impl<T> Default for Measurements<T> {
    fn default() -> Self {
        Self {
            rounds: Vec::new(),
            failures: Vec::new(),
            noisy: false,
            reruns: 0,
        }
    }
}

impl<T: RoundRow> Measurements<T> {
    /// Records the next round: its outcome, whether its probes still moved, its re-runs.
    pub(crate) fn record(&mut self, outcome: Result<T, String>, moved: bool, reruns: u32) {
        self.reruns += reruns;
        match outcome {
            Ok(row) => {
                self.noisy |= moved;
                self.rounds.push(Some(row));
            }
            Err(reason) => {
                self.failures.push(reason);
                self.rounds.push(None);
            }
        }
    }

    /// True when every round so far failed (the next would too: the row stops).
    pub(crate) fn only_failed(&self) -> bool {
        !self.failures.is_empty() && self.rounds.iter().all(Option::is_none)
    }

    /// Rounds that produced a row.
    pub(crate) fn measured(&self) -> usize {
        self.rounds.iter().flatten().count()
    }

    /// The median round with the spread of all ([`median`]), or why no round worked.
    pub(crate) fn into_median(self) -> Result<T, String> {
        let (noisy, reruns) = (self.noisy, self.reruns);
        let first_failure = self.failures.into_iter().next();
        median(self.rounds.into_iter().flatten().collect(), noisy, reruns)
            .ok_or_else(|| first_failure.unwrap_or_else(|| "no round was measured".into()))
    }
}

/// The medians of the per-round ratios of `row` to `one` (the same table's one-process row,
/// measured in the same rounds): (rate, CPU per message). Rounds where either failed are
/// left out.
pub(crate) fn vs_one<T: ScaledRow>(
    row: &Measurements<T>,
    one: &Measurements<T>,
) -> (Option<f64>, Option<f64>) {
    let pairs: Vec<(&T, &T)> = row
        .rounds
        .iter()
        .zip(&one.rounds)
        .filter_map(|(r, o)| Some((r.as_ref()?, o.as_ref()?)))
        .collect();
    let rate = pairs
        .iter()
        .filter(|(_, o)| o.key() > 0.0)
        .map(|(r, o)| r.key() / o.key())
        .collect();
    let cpu = pairs
        .iter()
        .filter(|(_, o)| o.cpu_ns() > 0.0)
        .map(|(r, o)| r.cpu_ns() / o.cpu_ns())
        .collect();
    (median_value(rate), median_value(cpu))
}

/// A latency round's p50 round trip (`key`, ns) over the mean of the floor probes taken just
/// before and just after it, if both worked: its ratio to the floor of its own moment.
pub(crate) fn floor_paired(key: f64, before: Option<u64>, after: Option<u64>) -> Option<f64> {
    let floor = (before? + after?) as f64 / 2.0;
    (floor > 0.0).then(|| key / floor)
}

/// The round with the median key (the lower of the two middle ones for an even count), with
/// the spread of all of them; `None` for no rounds.
pub(crate) fn median<T: RoundRow>(mut rows: Vec<T>, noisy: bool, reruns: u32) -> Option<T> {
    if rows.is_empty() {
        return None;
    }
    rows.sort_by(|a, b| a.key().total_cmp(&b.key()));
    let (min, max) = (rows[0].key(), rows[rows.len() - 1].key());
    let count = rows.len() as u32;
    let mut row = rows.swap_remove((rows.len() - 1) / 2);
    *row.spread_mut() = Spread {
        rounds: count,
        min,
        max,
        noisy,
        reruns,
    };
    Some(row)
}

/// The median of per-round values, the same middle round [`median`] picks (the lower of the
/// two middle ones for an even count); `None` for none.
pub(crate) fn median_value(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len().checked_sub(1)? / 2).copied()
}

/// Fewest iterations a round of a row gets (all of the row's when it has fewer): a window of a
/// few thousand messages is over before the ring's pages are warm.
pub const ROUND_ITERS_MIN: u64 = 8192;

/// A round's share of `budget`: iterations and times divided by `rounds` (at least
/// [`ROUND_ITERS_MIN`] iterations or the whole budget's, at least a millisecond of warm-up).
pub(crate) fn share(budget: Budget, rounds: u32) -> Budget {
    let n = rounds.max(1);
    Budget {
        warmup_iters: (budget.warmup_iters / u64::from(n)).max(1),
        warmup_time: (budget.warmup_time / n).max(std::time::Duration::from_millis(1)),
        iters: (budget.iters / u64::from(n)).max(budget.iters.min(ROUND_ITERS_MIN)),
        max_time: budget.max_time / n,
    }
}

/// A table cell for a row's spread: `min–max` of its rounds (formatted by `fmt`), `*` when
/// noisy; `-` with fewer than two rounds.
pub(crate) fn spread_cell(spread: &Spread, fmt: impl Fn(f64) -> String) -> String {
    if spread.rounds < 2 {
        return "-".into();
    }
    let noisy = if spread.noisy { "*" } else { "" };
    format!("{}–{}{noisy}", fmt(spread.min), fmt(spread.max))
}

/// The note under a table of rows measured in rounds; `None` if none was.
pub(crate) fn spread_note<'a>(spreads: impl Iterator<Item = &'a Spread> + Clone) -> Option<String> {
    let most = spreads
        .clone()
        .map(|s| s.rounds)
        .max()
        .filter(|&n| n >= 2)?;
    let reruns: u32 = spreads.clone().map(|s| s.reruns).sum();
    let noisy = spreads.filter(|s| s.noisy).count();
    let mut note = format!(
        "Each row is the median of its rounds (up to {most}, interleaved with every other \
         row's); spread = the smallest and the largest of them. Between rows a short floor \
         probe runs; a round whose probes moved more than {NOISY_PROBE_PCT:.0}%, or were both \
         over {SLOW_HOST_FACTOR:.0}x the run's median probe (the host slow throughout), was \
         measured again ({reruns} re-run(s) in this table)"
    );
    if noisy > 0 {
        note.push_str(&format!(
            "; * = noisy: the probes still moved or stayed slow after {RERUNS_MAX} re-runs \
             ({noisy} row(s))."
        ));
    } else {
        note.push('.');
    }
    Some(note)
}

/// Whether two floor probes (p50 ns) moved more than [`NOISY_PROBE_PCT`] apart.
pub(crate) fn moved(before: u64, after: u64) -> bool {
    let (lo, hi) = (before.min(after).max(1) as f64, before.max(after) as f64);
    100.0 * (hi - lo) / lo > NOISY_PROBE_PCT
}

/// A round whose floor probes before and after are both more than this many times the
/// median probe of the run so far ran while the host was slow throughout: our VMs have
/// modes, seconds to minutes long, in which a cache line between the CPUs costs 3-5x, and
/// two probes inside one do not move.
pub const SLOW_HOST_FACTOR: f64 = 2.0;

/// Whether both probes around a round (`before`, `after`) are [`SLOW_HOST_FACTOR`] times
/// the median of `probes` (every probe of the run so far, these two included): such a
/// round is measured again, as one whose probes moved.
pub(crate) fn slow_host(probes: &[u64], before: u64, after: u64) -> bool {
    let Some(median) = median_value(probes.iter().map(|&p| p as f64).collect()) else {
        return false;
    };
    let slow = |p: u64| p as f64 > SLOW_HOST_FACTOR * median;
    slow(before) && slow(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_between_two_slow_probes_is_a_slow_host() {
        let run = [140, 150, 130, 160, 141, 450, 470];
        assert!(slow_host(&run, 450, 470), "both probes 3x the median");
        assert!(
            !slow_host(&run, 150, 470),
            "one fast probe: moved, not slow"
        );
        assert!(!slow_host(&run, 160, 150));
        // A run slow from the start has a slow median: nothing stands out.
        assert!(!slow_host(&[450, 470, 460], 450, 470));
        assert!(!slow_host(&[], 450, 470));
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Scaled {
        rate: f64,
        cpu: f64,
        vs: (Option<f64>, Option<f64>),
        spread: Spread,
    }

    impl RoundRow for Scaled {
        fn key(&self) -> f64 {
            self.rate
        }
        fn spread_mut(&mut self) -> &mut Spread {
            &mut self.spread
        }
    }

    impl ScaledRow for Scaled {
        fn cpu_ns(&self) -> f64 {
            self.cpu
        }
        fn set_vs_one(&mut self, rate: Option<f64>, cpu: Option<f64>) {
            self.vs = (rate, cpu);
        }
    }

    fn scaled(rate: f64, cpu: f64) -> Result<Scaled, String> {
        Ok(Scaled {
            rate,
            cpu,
            vs: (None, None),
            spread: Spread::default(),
        })
    }

    #[test]
    fn ratios_to_one_process_pair_rounds_and_skip_failed_ones() {
        // The host halves both rows' rates in rounds 2 and 4: the per-round ratios do not
        // see it.
        let mut one = Measurements::default();
        let mut eight = Measurements::default();
        for (o, e) in [(2.0, 1.8), (1.0, 0.9), (2.0, 1.9), (1.0, 1.0)] {
            one.record(scaled(o, 100.0 / o), false, 0);
            eight.record(scaled(e, 100.0 / e), false, 0);
        }
        one.record(Err("round 5 failed".into()), false, 0);
        eight.record(scaled(0.1, 1000.0), true, 2);
        let (rate, cpu) = vs_one(&eight, &one);
        assert_eq!(rate, Some(0.9), "median of 0.9, 0.9, 0.95, 1.0");
        assert_eq!(cpu.map(|x| (x * 1000.0).round()), Some(1053.0), "1 / 0.95");
        assert!(!one.only_failed());
        assert_eq!((one.measured(), eight.measured()), (4, 5));
        let row = eight.into_median().unwrap();
        assert_eq!(row.rate, 1.0);
        assert_eq!(
            (row.spread.rounds, row.spread.noisy, row.spread.reruns),
            (5, true, 2)
        );
        let mut failed = Measurements::<Scaled>::default();
        failed.record(Err("no shm".into()), false, 0);
        assert!(failed.only_failed());
        assert_eq!(failed.into_median().unwrap_err(), "no shm");
        assert_eq!(
            vs_one(&Measurements::<Scaled>::default(), &one),
            (None, None)
        );
    }

    #[test]
    fn median_value_is_the_middle_round_as_for_rows() {
        assert_eq!(median_value(vec![]), None);
        assert_eq!(median_value(vec![0.9]), Some(0.9));
        assert_eq!(median_value(vec![1.2, 0.5, 0.9]), Some(0.9));
        assert_eq!(median_value(vec![1.2, 0.5, 0.9, 0.7]), Some(0.7));
    }
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq)]
    struct Row(f64, Spread);

    impl RoundRow for Row {
        fn key(&self) -> f64 {
            self.0
        }
        fn spread_mut(&mut self) -> &mut Spread {
            &mut self.1
        }
    }

    #[test]
    fn the_median_round_is_reported_with_the_spread_of_all() {
        let rows = [5.0, 1.0, 4.0, 2.0, 3.0].map(|k| Row(k, Spread::default()));
        let row = median(rows.to_vec(), false, 1).unwrap();
        assert_eq!(row.0, 3.0);
        assert_eq!(
            row.1,
            Spread {
                rounds: 5,
                min: 1.0,
                max: 5.0,
                noisy: false,
                reruns: 1
            }
        );
        assert_eq!(row.1.pct_of(row.0), 400.0 / 3.0);
        let even = median(
            [4.0, 1.0].map(|k| Row(k, Spread::default())).to_vec(),
            true,
            0,
        );
        assert_eq!(even.map(|r| (r.0, r.1.noisy)), Some((1.0, true)));
        assert!(median(Vec::<Row>::new(), false, 0).is_none());
    }

    #[test]
    fn a_round_gets_its_share_of_the_budget() {
        let b = Budget {
            warmup_iters: 100,
            warmup_time: Duration::from_millis(300),
            iters: 100_000,
            max_time: Duration::from_millis(1500),
        };
        let s = share(b, 5);
        assert_eq!((s.warmup_iters, s.iters), (20, 20_000));
        assert_eq!(
            (s.max_time, s.warmup_time),
            (Duration::from_millis(300), Duration::from_millis(60))
        );
        assert_eq!(share(b, 0), share(b, 1));
        // A small row keeps a window worth measuring in every round.
        let small = Budget { iters: 20_000, ..b };
        assert_eq!(share(small, 5).iters, ROUND_ITERS_MIN);
        let tiny = Budget { iters: 32, ..b };
        assert_eq!(share(tiny, 3).iters, 32);
    }

    #[test]
    fn a_latency_round_is_paired_with_the_probes_around_it() {
        assert_eq!(floor_paired(300.0, Some(140), Some(160)), Some(2.0));
        assert_eq!(floor_paired(300.0, None, Some(160)), None, "a probe failed");
        assert_eq!(floor_paired(300.0, Some(150), None), None, "a probe failed");
        assert_eq!(
            floor_paired(300.0, Some(0), Some(0)),
            None,
            "no floor to divide by"
        );
        // A slow round between two slow probes was the host: the ratio does not move.
        let fast = floor_paired(240.0, Some(150), Some(150)).unwrap();
        let slow = floor_paired(720.0, Some(450), Some(450)).unwrap();
        assert!((fast - slow).abs() < 1e-9, "{fast} {slow}");
    }

    #[test]
    fn probes_moving_more_than_a_quarter_are_noise() {
        assert!(!moved(100, 120));
        assert!(!moved(125, 100));
        assert!(moved(100, 130));
        assert!(moved(130, 100));
        assert!(moved(0, 10));
    }
}
