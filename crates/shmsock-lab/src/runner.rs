//! The driver: which experiment runs when, and where each result goes in the report.
//!
//! Order: the floor (reference and noise check), then per mechanism an integrity check, the
//! latency on different CPUs and on one CPU, and the throughput rows; then the floor again.
//! Every failure becomes an `unavailable` row and the run goes on.

use crate::experiments::{self, Budgets};
use crate::host::{HostInfo, Pinning};
use crate::mechanisms::offset::OffsetExchange;
use crate::mechanisms::{self, Mechanism, Pattern};

/// Offset-exchange rows run at throughput sizes of this many bytes or more (the Comparison measures
/// pointer exchange at 1 MB).
const OFFSET_FROM_BYTES: usize = 1 << 20;
use crate::error::LabError;
use crate::experiments::latency::LatencyRow;
use crate::experiments::throughput::ThroughputRow;
use crate::format::fmt_size;
use crate::mechanisms::libzmq::Libzmq;
use crate::options::{LabOptions, Mode, LATENCY_SIZE};
use crate::progress::Progress;
use crate::report::{FloorCheck, Report, UnavailableRow};
use crate::rounds::{self, Measurements, RoundLog, RoundRow, ScaledRow, Spread};
use std::time::Duration;

/// The experiments of one mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Experiment {
    /// Ping-pong, the two sides on different CPUs.
    Latency,
    /// Ping-pong, both sides on the same CPU.
    LatencySameCpu,
    /// One-way streaming.
    Throughput,
    /// A synchronisation method guarding a 4 KiB SPSC queue.
    SyncTax,
    /// Several producers into one consumer.
    Contention,
    /// One publisher to several subscribers.
    Fanout,
    /// Publisher to subscriber, direct and through a bridge.
    Bridge,
    /// shmsock's network transports against libzmq.
    Network,
    /// Encoding and decoding a 1 KiB struct.
    Serialization,
    /// One million messages.
    Scale,
    /// What a SIGKILL leaves behind.
    Crash,
    /// Connect + first message + close.
    Setup,
    /// The reference documents' shared-memory bugs, naive and shmsock.
    Bugs,
    /// A Python row whose module or interpreter is missing (both patterns).
    Python,
    /// Python round trips.
    PythonLatency,
    /// A Python stream.
    PythonThroughput,
    /// Single operations: loads, a mutex, a 1 KiB message.
    Costs,
    /// A tcp:// subscriber moved to shared memory, against tcp:// and shm:// direct.
    Upgrade,
}

impl Experiment {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Experiment::Latency => "latency",
            Experiment::LatencySameCpu => "latency-same-cpu",
            Experiment::Throughput => "throughput",
            Experiment::SyncTax => "sync-tax",
            Experiment::Contention => "contention",
            Experiment::Fanout => "fanout",
            Experiment::Bridge => "bridge",
            Experiment::Network => "network",
            Experiment::Serialization => "serialization",
            Experiment::Scale => "scale",
            Experiment::Crash => "crash",
            Experiment::Setup => "setup",
            Experiment::Bugs => "bugs",
            Experiment::Python => "python",
            Experiment::PythonLatency => "python-latency",
            Experiment::PythonThroughput => "python-throughput",
            Experiment::Costs => "costs",
            Experiment::Upgrade => "upgrade",
        }
    }
}

/// One lab run in progress.
pub(crate) struct Lab<'a> {
    opts: &'a LabOptions,
    budgets: Budgets,
    pinning: Pinning,
    /// Both sides on the parent's CPU; `None` when `pinning` already is that.
    same_cpu: Option<Pinning>,
    selected: Vec<Box<dyn Mechanism>>,
    progress: Progress,
    report: Report,
}

impl<'a> Lab<'a> {
    pub(crate) fn new(
        opts: &'a LabOptions,
        budgets: Budgets,
        host: HostInfo,
    ) -> Result<Self, LabError> {
        let selected = select(opts.mechanisms.as_deref())?;
        let pinning = host.pinning;
        let same_cpu = (!pinning.same_cpu()).then_some(Pinning {
            parent_cpu: pinning.parent_cpu,
            child_cpu: pinning.parent_cpu,
        });
        let report = Report::new(
            host,
            opts.mode,
            selected.iter().map(|m| m.name().to_string()).collect(),
        );
        let mut lab = Self {
            opts,
            budgets,
            pinning,
            same_cpu,
            selected,
            progress: Progress::new(0),
            report,
        };
        lab.progress = Progress::new(lab.planned_steps());
        Ok(lab)
    }

    fn planned_steps(&self) -> u64 {
        let rounds = u64::from(self.rounds());
        let per_mechanism = |m: &dyn Mechanism| {
            let mut rows = 0;
            if self.opts.runs("latency") {
                rows += 1 + u64::from(self.same_cpu.is_some());
            }
            if self.opts.runs("throughput") && m.supports(Pattern::Stream) {
                rows += self
                    .opts
                    .throughput_sizes()
                    .iter()
                    .filter(|&&size| size <= m.max_message())
                    .count() as u64;
            }
            1 + rounds * rows
        };
        let offset = rounds as usize * self.offset_rows().len() * self.offset_sizes().len();
        let mechanisms = if self.runs_mechanisms() {
            self.selected
                .iter()
                .map(|m| per_mechanism(m.as_ref()))
                .sum::<u64>()
        } else {
            0
        };
        let others = [
            ("sync-tax", experiments::sync_tax::methods().len()),
            (
                "contention",
                rounds as usize
                    * experiments::contention::queues().len()
                    * experiments::contention::PRODUCERS.len(),
            ),
            (
                "fanout",
                rounds as usize
                    * experiments::fanout::SIZES.len()
                    * experiments::fanout::SUBSCRIBERS.len(),
            ),
            ("bridge", experiments::bridge::PATHS.len()),
            ("network", experiments::network::configs().len()),
            ("serialization", 1),
            ("scale", experiments::scale::PATHS.len()),
            ("crash", 1 + experiments::crash::writers().len()),
            ("setup", 1 + experiments::setup::PATHS.len()),
            ("bugs", experiments::bugs::BUGS.len()),
            (
                "python",
                1 + 2
                    * experiments::python::selected(self.opts.mechanisms.as_deref()).len()
                    * self.opts.throughput_sizes().len(),
            ),
            ("costs", 2 + experiments::costs::one_kib_mechanisms().len()),
            (
                "upgrade",
                experiments::upgrade::PATHS.len() * experiments::upgrade::SIZES.len(),
            ),
        ]
        .iter()
        .filter(|(name, _)| self.opts.runs(name))
        .map(|(_, steps)| *steps as u64)
        .sum::<u64>();
        2 + offset as u64 + mechanisms + others
    }

    /// Whether the per-mechanism experiments (latency, throughput) run at all.
    fn runs_mechanisms(&self) -> bool {
        self.opts.runs("latency") || self.opts.runs("throughput")
    }

    pub(crate) fn run(mut self) -> Result<Report, LabError> {
        let floor = mechanisms::floor::FLOOR;
        self.progress.step("floor (reference)");
        // A first, discarded pass: the idle CPU the child lands on is slow to wake up at first,
        // which would make the "before" floor look worse than the "after" one.
        let _ = experiments::latency::measure(
            &floor,
            LATENCY_SIZE,
            crate::experiments::Budgets::QUICK.latency,
            self.pinning,
        );
        let floor_before =
            experiments::latency::measure(&floor, LATENCY_SIZE, self.budgets.latency, self.pinning);
        let selected = std::mem::take(&mut self.selected);
        let offsets = self.offset_rows();
        if self.runs_mechanisms() {
            self.run_rows(&selected, &offsets);
        }
        let experiments = [
            ("sync-tax", Self::run_sync_tax as fn(&mut Self)),
            ("contention", Self::run_contention),
            ("fanout", Self::run_fanout),
            ("bridge", Self::run_bridge),
            ("network", Self::run_network),
            ("serialization", Self::run_serialization),
            ("scale", Self::run_scale),
            ("crash", Self::run_crash),
            ("setup", Self::run_setup),
            ("bugs", Self::run_bugs),
            ("python", Self::run_python),
            ("costs", Self::run_costs),
            ("upgrade", Self::run_upgrade),
        ];
        for (name, run) in experiments {
            if self.opts.runs(name) {
                run(&mut self);
            }
        }
        self.progress.step("floor again (noise check)");
        if let Ok(before) = &floor_before {
            if let Ok(after) = experiments::latency::measure(
                &floor,
                LATENCY_SIZE,
                self.budgets.latency,
                self.pinning,
            ) {
                self.report.floor_check =
                    Some(FloorCheck::new(before.rtt.p50_ns, after.rtt.p50_ns));
            }
        }
        self.progress.finish();
        self.report.finish();
        for warning in &self.report.warnings {
            eprintln!("lab: {warning}");
        }
        Ok(self.report)
    }

    /// Rounds per latency and throughput row.
    fn rounds(&self) -> u32 {
        match self.opts.mode {
            Mode::Quick => rounds::ROUNDS_QUICK,
            Mode::Default | Mode::Full => rounds::ROUNDS_DEFAULT,
        }
    }

    /// The latency and throughput rows of `mechanism` this run measures (after its integrity
    /// check; rows it cannot carry, or a failed check, become unavailable rows here).
    fn plan_mechanism<'m>(&mut self, mechanism: &'m dyn Mechanism, planned: &mut Vec<Planned<'m>>) {
        let name = mechanism.name();
        let mut rows = Vec::new();
        if self.opts.runs("latency") {
            rows.push((Experiment::Latency, LATENCY_SIZE));
            if self.same_cpu.is_some() {
                rows.push((Experiment::LatencySameCpu, LATENCY_SIZE));
            }
        }
        if self.opts.runs("throughput") && mechanism.supports(Pattern::Stream) {
            for size in self.opts.throughput_sizes() {
                rows.push((Experiment::Throughput, size));
            }
        }
        self.progress.step(&format!("{name}: integrity check"));
        if let Some(why) = mechanism.skipped() {
            // Each unavailable row prints the reason as it is added.
            let reason = format!("skipped: {why}");
            for (experiment, size) in rows {
                self.unavailable(name, experiment, size, reason.clone());
            }
            return;
        }
        if let Err(err) = experiments::integrity::check(mechanism, self.pinning) {
            let reason = format!("integrity check failed: {err}");
            for (experiment, size) in rows {
                self.unavailable(name, experiment, size, reason.clone());
            }
            return;
        }
        for (experiment, size) in rows {
            if size > mechanism.max_message() {
                let reason = format!(
                    "messages of {size} B exceed this mechanism's limit of {} B here",
                    mechanism.max_message()
                );
                self.unavailable(name, experiment, size, reason);
            } else {
                planned.push(Planned::new(mechanism, experiment, size));
            }
        }
    }

    /// Every latency and throughput row, in rounds (see [`rounds`]): round 1 of every row,
    /// then round 2, ...; a floor probe between rows; a round whose probes moved is measured
    /// again. Each row reported is its median round.
    fn run_rows(&mut self, selected: &[Box<dyn Mechanism>], offsets: &[Box<dyn Mechanism>]) {
        let mut planned = Vec::new();
        for mechanism in selected {
            self.plan_mechanism(mechanism.as_ref(), &mut planned);
        }
        for exchange in offsets {
            self.report.mechanisms.push(exchange.name().to_string());
            for size in self.offset_sizes() {
                planned.push(Planned::new(
                    exchange.as_ref(),
                    Experiment::Throughput,
                    size,
                ));
            }
        }
        pair_with_raw_ring(&mut planned);
        let rounds = self.rounds();
        let mut probes = Probes::new(self.pinning);
        for round in 1..=rounds {
            for row in &mut planned {
                if row.measured.only_failed() {
                    continue; // it failed in every round so far: the next would too
                }
                self.progress.step(&format!(
                    "{}: {}, {} B, round {round}/{rounds}",
                    row.mechanism.name(),
                    row.experiment.as_str(),
                    row.size
                ));
                let log = RoundLog::new(
                    row.mechanism.name(),
                    row.experiment.as_str(),
                    row.size,
                    round,
                );
                let mut done = probes.attempt(
                    log,
                    |m: &Measured| m.key(),
                    || self.measure_round(row, rounds),
                );
                if let (Some(raw), Ok(Measured::Throughput(r))) = (row.paired, &done.outcome) {
                    let budget = rounds::share(self.budgets.throughput_for(row.size), rounds);
                    if let Ok(partner) =
                        experiments::throughput::measure(raw, row.size, budget, self.pinning)
                    {
                        if let Some(log) = done.logs.last_mut() {
                            log.raw_ring_after = Some(partner.msgs_per_s as f64);
                        }
                        row.paired_ratios
                            .push(r.msgs_per_s as f64 / partner.msgs_per_s.max(1) as f64);
                    }
                }
                if let (Experiment::Latency, Ok(Measured::Latency(r)), Some(log)) =
                    (row.experiment, &done.outcome, done.logs.last())
                {
                    row.paired_ratios.extend(rounds::floor_paired(
                        r.key(),
                        log.floor_before_ns,
                        log.floor_after_ns,
                    ));
                }
                self.report.rounds.append(&mut done.logs);
                row.measured.record(done.outcome, done.moved, done.reruns);
            }
        }
        for row in planned {
            self.report_row(row, rounds);
        }
    }

    /// The rows of a table that sets N processes beside one (contention, fan-out), in
    /// rounds like the latency and throughput rows: round 1 of every row, then round 2, ...,
    /// floor probes between them, a round whose probes moved measured again. Each row
    /// reported is its median round, its ratios to its group's one-process row the medians
    /// of the per-round ratios ([`rounds::vs_one`]).
    fn run_scaled<T: ScaledRow>(
        &mut self,
        experiment: Experiment,
        mut cells: Vec<ScaledCell<T>>,
        measure: impl Fn(&ScaledCell<T>) -> Result<T, LabError>,
    ) -> Vec<T> {
        let rounds = self.rounds();
        let mut probes = Probes::new(self.pinning);
        for round in 1..=rounds {
            for cell in &mut cells {
                if cell.measured.only_failed() {
                    continue;
                }
                self.progress.step(&format!(
                    "{}: {}, {} process(es), {} B, round {round}/{rounds}",
                    experiment.as_str(),
                    cell.name,
                    cell.processes,
                    cell.size
                ));
                let mut log = RoundLog::new(&cell.name, experiment.as_str(), cell.size, round);
                log.processes = Some(cell.processes);
                let mut done =
                    probes.attempt(log, T::key, || measure(cell).map_err(|e| e.to_string()));
                self.report.rounds.append(&mut done.logs);
                cell.measured.record(done.outcome, done.moved, done.reruns);
            }
        }
        let ratios: Vec<_> = cells
            .iter()
            .map(|cell| {
                cells
                    .iter()
                    .find(|one| one.group == cell.group && one.processes == 1)
                    .map_or((None, None), |one| {
                        rounds::vs_one(&cell.measured, &one.measured)
                    })
            })
            .collect();
        let mut rows = Vec::new();
        for (cell, (rate, cpu)) in cells.into_iter().zip(ratios) {
            let name = format!("{} x{}", cell.name, cell.processes);
            self.note_failed_rounds(&name, experiment, cell.size, &cell.measured, rounds);
            match cell.measured.into_median() {
                Ok(mut row) => {
                    row.set_vs_one(rate, cpu);
                    rows.push(row);
                }
                Err(reason) => self.unavailable(&name, experiment, cell.size, reason),
            }
        }
        rows
    }

    /// Says so when some (not all) of a row's rounds failed: the row is the median of the
    /// others.
    fn note_failed_rounds<T: RoundRow>(
        &mut self,
        name: &str,
        experiment: Experiment,
        size: usize,
        measured: &Measurements<T>,
        rounds: u32,
    ) {
        let count = measured.measured();
        if let (Some(first), true) = (measured.failures.first(), count > 0) {
            self.progress.note(&format!(
                "{name}: {} at {size} B: {} of {rounds} rounds failed (the row is the median \
                 of the other {count}): {first}",
                experiment.as_str(),
                measured.failures.len()
            ));
        }
    }

    /// One round of `row`, on its share of the row's budget.
    fn measure_round(&self, row: &Planned<'_>, rounds: u32) -> Result<Measured, String> {
        let (mechanism, size) = (row.mechanism, row.size);
        let outcome = match row.experiment {
            Experiment::Latency | Experiment::LatencySameCpu => {
                let pinning = if row.experiment == Experiment::Latency {
                    self.pinning
                } else {
                    self.same_cpu.unwrap_or(self.pinning)
                };
                let budget = rounds::share(self.budgets.latency, rounds);
                experiments::latency::measure(mechanism, size, budget, pinning)
                    .map(Measured::Latency)
            }
            Experiment::Throughput => {
                let budget = rounds::share(self.budgets.throughput_for(size), rounds);
                experiments::throughput::measure(mechanism, size, budget, self.pinning)
                    .map(Measured::Throughput)
            }
            other => {
                return Err(format!(
                    "{} is not a per-mechanism experiment",
                    other.as_str()
                ))
            }
        };
        outcome.map_err(|e| e.to_string())
    }

    /// Puts a row's median round in the report, or an unavailable row if no round worked.
    fn report_row(&mut self, row: Planned<'_>, rounds: u32) {
        let name = row.mechanism.name();
        let (experiment, size) = (row.experiment, row.size);
        self.note_failed_rounds(name, experiment, size, &row.measured, rounds);
        let paired = rounds::median_value(row.paired_ratios);
        match row.measured.into_median() {
            Ok(Measured::Latency(r)) if experiment == Experiment::LatencySameCpu => {
                self.report.latency_same_cpu.push(r)
            }
            Ok(Measured::Latency(mut r)) => {
                r.p50_vs_floor_paired = paired;
                self.report.latency.push(r)
            }
            Ok(Measured::Throughput(mut r)) => {
                r.vs_raw_ring_paired = paired;
                self.report.throughput.push(r);
            }
            Err(reason) => self.unavailable(name, experiment, size, reason),
        }
    }

    fn offset_rows(&self) -> Vec<Box<dyn Mechanism>> {
        if !self.opts.runs("throughput") || self.offset_sizes().is_empty() {
            return Vec::new();
        }
        let selected = |name: &str| self.report.mechanisms.iter().any(|m| m == name);
        let mut rows: Vec<Box<dyn Mechanism>> = [OffsetExchange::raw(), OffsetExchange::shmsock()]
            .into_iter()
            .filter(|x| selected(x.copying_counterpart()))
            .map(|x| Box::new(x) as Box<dyn Mechanism>)
            .collect();
        if selected("shmsock") {
            rows.push(Box::new(mechanisms::loan::Loans::pointer_exchange()));
            rows.push(Box::new(mechanisms::loan::Loans::read_all()));
        }
        rows
    }

    fn offset_sizes(&self) -> Vec<usize> {
        self.opts
            .throughput_sizes()
            .into_iter()
            .filter(|&s| s >= OFFSET_FROM_BYTES)
            .collect()
    }

    fn run_sync_tax(&mut self) {
        let budget = experiments::sync_tax::budget(&self.budgets);
        let size = experiments::sync_tax::SIZE;
        for method in experiments::sync_tax::methods() {
            let name = method.method;
            self.progress.step(&format!(
                "sync tax: {name} ({}), {size} B",
                method.mechanism.name()
            ));
            // One queue at one size has one number: the throughput table's, when it has it.
            if let Some(row) = self
                .report
                .throughput
                .iter()
                .find(|r| r.mechanism == method.mechanism.name() && r.size == size)
            {
                let row = experiments::sync_tax::SyncTaxRow::of(&method, row, true);
                self.report.sync_tax.push(row);
                continue;
            }
            let outcome = experiments::integrity::check(method.mechanism.as_ref(), self.pinning)
                .map_err(|e| format!("integrity check failed: {e}"))
                .and_then(|()| {
                    experiments::sync_tax::measure(&method, budget, self.pinning)
                        .map_err(|e| e.to_string())
                });
            match outcome {
                Ok(row) => self.report.sync_tax.push(row),
                Err(reason) => self.unavailable(name, Experiment::SyncTax, size, reason),
            }
        }
    }

    fn run_contention(&mut self) {
        use experiments::contention;
        let (messages, max_time) = contention::plan(&self.budgets);
        let queues = contention::queues();
        let mut cells = Vec::new();
        for (group, queue) in queues.iter().enumerate() {
            for producers in contention::PRODUCERS {
                cells.push(ScaledCell::new(
                    queue.name,
                    group,
                    producers,
                    contention::SIZE,
                ));
            }
        }
        let pinning = self.pinning;
        let rows = self.run_scaled(Experiment::Contention, cells, |cell| {
            contention::measure(
                &queues[cell.group],
                cell.processes,
                messages,
                max_time,
                pinning,
            )
        });
        self.report.contention.extend(rows);
    }

    fn run_fanout(&mut self) {
        use experiments::fanout;
        let mut cells = Vec::new();
        for (group, size) in fanout::SIZES.into_iter().enumerate() {
            for subscribers in fanout::SUBSCRIBERS {
                cells.push(ScaledCell::new(fanout::NAME, group, subscribers, size));
            }
        }
        let plans = fanout::SIZES.map(|size| fanout::plan(&self.budgets, size));
        let pinning = self.pinning;
        let rows = self.run_scaled(Experiment::Fanout, cells, |cell| {
            let (messages, max_time) = plans[cell.group];
            fanout::measure(cell.processes, cell.size, messages, max_time, pinning)
        });
        self.report.fanout.extend(rows);
    }

    fn run_bridge(&mut self) {
        use experiments::bridge;
        for path in bridge::PATHS {
            self.progress.step(&format!(
                "bridge: publisher -> {} -> subscriber, {} B",
                path.name(),
                bridge::SIZE
            ));
            match bridge::measure(path, self.budgets.latency, self.pinning) {
                Ok(row) => self.report.bridge.push(row),
                Err(e) => {
                    self.unavailable(path.name(), Experiment::Bridge, bridge::SIZE, e.to_string())
                }
            }
        }
    }

    fn run_network(&mut self) {
        use experiments::network::{self, Library};
        let libzmq = Libzmq::load();
        match &libzmq {
            Ok(zmq) => self.progress.note(&format!(
                "network: libzmq {} loaded from {}",
                zmq.version(),
                zmq.library()
            )),
            Err(why) => {
                // Each unavailable row prints the reason as it is added.
                for size in network::SIZES {
                    let reason = format!("skipped: {why}");
                    self.unavailable("libzmq", Experiment::Network, size, reason);
                }
            }
        }
        for config in network::configs() {
            if config.library == Library::Libzmq && libzmq.is_err() {
                continue;
            }
            let name = config.name();
            let size = config.size;
            self.progress
                .step(&format!("network: {name}, {}", fmt_size(size)));
            let plan = network::plan(&self.budgets, size);
            match network::measure(config, &plan, self.pinning) {
                Ok(row) => self.report.network.push(row),
                Err(e) => self.unavailable(&name, Experiment::Network, size, e.to_string()),
            }
        }
    }

    fn run_serialization(&mut self) {
        self.progress
            .step("serialization: 1 KiB struct, postcard and serde_json");
        match experiments::serialization::measure(self.budgets.experiment_max_time / 10) {
            Ok(rows) => self.report.serialization = rows,
            Err(e) => self.unavailable(
                "postcard/serde_json",
                Experiment::Serialization,
                1024,
                e.to_string(),
            ),
        }
    }

    fn run_scale(&mut self) {
        use experiments::scale;
        let (messages, max_time) = scale::plan(&self.budgets);
        for path in scale::PATHS {
            self.progress
                .step(&format!("scale: {messages} messages, {path}"));
            match scale::measure(path, messages, max_time, self.pinning) {
                Ok(row) => self.report.million.push(row),
                Err(e) => self.unavailable(path, Experiment::Scale, scale::SIZE, e.to_string()),
            }
        }
    }

    fn run_crash(&mut self) {
        use experiments::crash;
        self.progress
            .step("crash: shm-open, creator SIGKILLed before shm_unlink");
        match crash::measure_leftover(self.pinning) {
            Ok(row) => {
                self.progress.note(&row.finding());
                self.report.shm_leftovers.push(row);
            }
            Err(e) => self.unavailable(
                "shm-open",
                Experiment::Crash,
                crate::options::LATENCY_SIZE,
                e.to_string(),
            ),
        }
        for (mechanism, every) in crash::writers() {
            self.progress.step(&format!(
                "crash: {mechanism}, writer SIGKILLed after {} messages",
                crash::kill_after(every)
            ));
            match crash::measure_survival(mechanism, every, self.pinning) {
                Ok(row) => self.report.crash.push(row),
                Err(e) => {
                    self.unavailable(mechanism, Experiment::Crash, crash::SIZE, e.to_string())
                }
            }
        }
    }

    fn run_setup(&mut self) {
        use experiments::setup;
        for path in setup::PATHS {
            self.progress.step(&format!(
                "setup: {} connect + first {} B message + close",
                path.name(),
                setup::SIZE
            ));
            match setup::measure(path, self.budgets.latency, self.pinning) {
                Ok(row) => self.report.setup.connections.push(row),
                Err(e) => {
                    self.unavailable(path.name(), Experiment::Setup, setup::SIZE, e.to_string())
                }
            }
        }
        self.progress
            .step("setup: the system calls of one shm:// segment, one by one");
        match setup::syscalls::measure(self.budgets.latency.max_time) {
            Ok(steps) => self.report.setup.shm_steps = steps,
            Err(e) => self.unavailable(
                "shm:// segment system calls",
                Experiment::Setup,
                setup::SIZE,
                e.to_string(),
            ),
        }
    }

    fn run_bugs(&mut self) {
        use experiments::bugs;
        let plan = bugs::plan(&self.budgets);
        for (i, bug) in bugs::BUGS.into_iter().enumerate() {
            self.progress.step(&format!(
                "bugs: {}. {}, naive and shmsock",
                i + 1,
                bug.name()
            ));
            match bugs::measure(bug, &plan, self.pinning) {
                Ok(row) => {
                    self.progress.note(&row.finding());
                    self.report.bugs.push(row);
                }
                Err(e) => self.unavailable(bug.name(), Experiment::Bugs, bug.size(), e.to_string()),
            }
        }
    }

    fn run_python(&mut self) {
        use experiments::python::{self, Driver, Measured, Pattern, PythonRun};
        let interpreter = python::interpreter();
        let rows = python::selected(self.opts.mechanisms.as_deref());
        let sizes = self.opts.throughput_sizes();
        self.progress.step(&format!(
            "python: probing {} (${} names another interpreter)",
            interpreter.display(),
            python::PYTHON_ENV
        ));
        let mut run = PythonRun::new(&interpreter);
        let probed = Driver::new(interpreter).and_then(|driver| Ok((driver.probe()?, driver)));
        let (probe, driver) = match probed {
            Ok(probed) => probed,
            Err(e) => {
                self.progress
                    .note(&format!("python: skipped, no Python rows: {e}"));
                for row in rows {
                    self.skip_python(row, &sizes, &format!("skipped: {e}"));
                }
                self.report.python = Some(run);
                return;
            }
        };
        run.probed(&probe);
        self.progress
            .note(&format!("python: measuring with {}", run.describe()));
        for row in rows {
            if let Some(why) = run.missing(row, &probe.rows) {
                self.progress.note(&format!("{row}: skipped: {why}"));
                self.skip_python(row, &sizes, &format!("skipped: {why}"));
                continue;
            }
            for &size in &sizes {
                let patterns = [
                    (Pattern::RoundTrip, Experiment::PythonLatency),
                    (Pattern::Stream, Experiment::PythonThroughput),
                ];
                for (pattern, experiment) in patterns {
                    self.progress
                        .step(&format!("python: {row} {}, {size} B", pattern.label()));
                    if size < python::MIN_SIZE {
                        let reason = format!(
                            "messages of {size} B are below the Python rows' {} B",
                            python::MIN_SIZE
                        );
                        self.unavailable(row, experiment, size, reason);
                        continue;
                    }
                    let budget = match pattern {
                        Pattern::RoundTrip => self.budgets.latency,
                        Pattern::Stream => self.budgets.throughput_for(size),
                    };
                    match driver.measure(row, pattern, size, budget, self.pinning) {
                        Ok(Measured::RoundTrips(rt)) => {
                            run.row_mut(row, size).round_trip = Some(rt)
                        }
                        Ok(Measured::Stream(s)) => run.row_mut(row, size).stream = Some(s),
                        Ok(Measured::Skipped(why)) => {
                            self.unavailable(row, experiment, size, format!("skipped: {why}"))
                        }
                        Err(e) => self.unavailable(row, experiment, size, e.to_string()),
                    }
                }
            }
        }
        self.report.python = Some(run);
    }

    /// Adds the unavailable rows of a Python row that cannot run at all (said once already).
    fn skip_python(&mut self, row: &str, sizes: &[usize], reason: &str) {
        for &size in sizes {
            self.report.unavailable.push(UnavailableRow {
                mechanism: row.to_string(),
                experiment: Experiment::Python.as_str().to_string(),
                size,
                reason: reason.to_string(),
            });
        }
    }

    fn run_costs(&mut self) {
        use experiments::costs;
        let max_time = self.budgets.latency.max_time;
        self.progress
            .step("costs: a load in and out of the cache, shared and private memory");
        match costs::measure_loads(max_time / 2) {
            Ok(rows) => self.report.costs.operations.extend(rows),
            Err(e) => self.unavailable("loads", Experiment::Costs, 8, e.to_string()),
        }
        self.progress
            .step("costs: a process-shared mutex, uncontended and contended");
        match costs::measure_mutex(max_time, self.pinning) {
            Ok(rows) => self.report.costs.operations.extend(rows),
            Err(e) => self.unavailable("process-shared mutex", Experiment::Costs, 8, e.to_string()),
        }
        let size = costs::MESSAGE_SIZE;
        for mechanism in costs::one_kib_mechanisms() {
            let name = mechanism.name();
            self.progress
                .step(&format!("costs: {name} one-way, {size} B"));
            match experiments::latency::measure(
                mechanism.as_ref(),
                size,
                self.budgets.latency,
                self.pinning,
            ) {
                Ok(row) => self.report.costs.one_kib.push(row),
                Err(e) => self.unavailable(name, Experiment::Costs, size, e.to_string()),
            }
        }
    }

    /// The upgrade experiment in interleaved rounds (as latency and throughput rows): a
    /// shared-memory stream on this VM runs either fast or at the pace of kernel wake-ups, so
    /// one measurement per row would compare modes, not paths.
    fn run_upgrade(&mut self) {
        use experiments::upgrade;
        let rounds = self.rounds();
        let cells: Vec<(usize, upgrade::Path)> = upgrade::SIZES
            .iter()
            .flat_map(|&size| upgrade::PATHS.iter().map(move |&path| (size, path)))
            .collect();
        let mut measured: Vec<Vec<upgrade::UpgradeRow>> = vec![Vec::new(); cells.len()];
        let mut failed: Vec<Option<String>> = vec![None; cells.len()];
        for round in 1..=rounds {
            for (i, &(size, path)) in cells.iter().enumerate() {
                if failed[i].is_some() {
                    continue;
                }
                let latency = (size == upgrade::ROUND_TRIP_SIZE)
                    .then(|| rounds::share(self.budgets.latency, rounds));
                let stream = rounds::share(upgrade::stream_budget(&self.budgets, size), rounds);
                let what = if latency.is_some() {
                    "round trip and stream"
                } else {
                    "stream"
                };
                self.progress.step(&format!(
                    "upgrade: {} {what}, {}, round {round}/{rounds}",
                    path.name(),
                    fmt_size(size)
                ));
                match upgrade::measure(path, size, latency, stream, self.pinning) {
                    Ok(row) => measured[i].push(row),
                    Err(e) => failed[i] = Some(e.to_string()),
                }
            }
        }
        for ((&(size, path), rows), failed) in cells.iter().zip(measured).zip(failed) {
            match failed {
                Some(e) => self.unavailable(path.name(), Experiment::Upgrade, size, e),
                None => self.report.upgrade.extend(upgrade::median_of(rows)),
            }
        }
    }

    fn unavailable(
        &mut self,
        mechanism: &str,
        experiment: Experiment,
        size: usize,
        reason: String,
    ) {
        self.progress.note(&format!(
            "{mechanism}: {} at {size} B unavailable: {reason}",
            experiment.as_str()
        ));
        self.report.unavailable.push(UnavailableRow {
            mechanism: mechanism.to_string(),
            experiment: experiment.as_str().to_string(),
            size,
            reason,
        });
    }
}

/// The mechanisms to run, in report order; `floor` always included.
fn select(filter: Option<&[String]>) -> Result<Vec<Box<dyn Mechanism>>, LabError> {
    let Some(names) = filter else {
        return Ok(mechanisms::all());
    };
    for name in names {
        if !experiments::python::ROWS.contains(&name.as_str()) {
            mechanisms::by_filter(name)?;
        }
    }
    Ok(mechanisms::all()
        .into_iter()
        .filter(|m| m.name() == "floor" || names.iter().any(|n| mechanisms::selects(n, m.name())))
        .collect())
}

/// The budget of a floor probe between rows: enough round trips for a stable median.
const PROBE_BUDGET: experiments::Budget = experiments::Budget {
    warmup_iters: 1_000,
    warmup_time: Duration::from_millis(5),
    iters: 20_000,
    max_time: Duration::from_millis(10),
};

/// Throughput rows measured each round next to the raw ring at the same size (right after
/// it): shmsock's, whose bars are ratios to the raw ring (see
/// [`ThroughputRow::vs_raw_ring_paired`]). Only where a raw-ring row is measured anyway.
const PAIRED_WITH_RAW_RING: [&str; 3] = ["shmsock-busy", "shmsock", "shmsock-blocking"];

/// Gives each throughput row of [`PAIRED_WITH_RAW_RING`] the raw ring of its size, if one
/// is planned.
fn pair_with_raw_ring(planned: &mut [Planned<'_>]) {
    let raw_rings: Vec<_> = planned
        .iter()
        .filter(|p| p.experiment == Experiment::Throughput && p.mechanism.name() == "raw-ring")
        .map(|p| (p.size, p.mechanism))
        .collect();
    for row in planned.iter_mut().filter(|p| {
        p.experiment == Experiment::Throughput && PAIRED_WITH_RAW_RING.contains(&p.mechanism.name())
    }) {
        row.paired = raw_rings
            .iter()
            .find(|(size, _)| *size == row.size)
            .map(|(_, raw)| *raw);
    }
}

/// The floor's p50 round trip from a short run: the probe between rows.
fn probe_floor(pinning: Pinning) -> Option<u64> {
    experiments::latency::measure(
        &mechanisms::floor::FLOOR,
        LATENCY_SIZE,
        PROBE_BUDGET,
        pinning,
    )
    .ok()
    .map(|row| row.rtt.p50_ns)
}

/// The floor probes of a run of rounds (see [`rounds`]): the last one, and every one so far
/// (the slow-host rule compares with their median).
struct Probes {
    pinning: Pinning,
    last: Option<u64>,
    all: Vec<u64>,
}

/// One round of a row, measured again while the probes around it moved.
struct Attempted<T> {
    /// The last attempt's outcome.
    outcome: Result<T, String>,
    /// Whether the probes around the last attempt still moved.
    moved: bool,
    /// Attempts before the last.
    reruns: u32,
    /// Every attempt's log, the last one's last.
    logs: Vec<RoundLog>,
}

impl Probes {
    /// Starts with a probe.
    fn new(pinning: Pinning) -> Self {
        let last = probe_floor(pinning);
        Self {
            pinning,
            last,
            all: last.into_iter().collect(),
        }
    }

    /// Measures a round with `measure` and probes the floor after it; measures it again (up
    /// to [`rounds::RERUNS_MAX`] times) while the probes before and after moved or were both
    /// slow. `log` names the round; each attempt gets a copy with its key and probes.
    fn attempt<T>(
        &mut self,
        log: RoundLog,
        key: impl Fn(&T) -> f64,
        mut measure: impl FnMut() -> Result<T, String>,
    ) -> Attempted<T> {
        let mut logs = Vec::new();
        let mut reruns = 0;
        loop {
            let outcome = measure();
            let after = probe_floor(self.pinning);
            self.all.extend(after);
            let moved = matches!((self.last, after), (Some(b), Some(a))
                if rounds::moved(b, a) || rounds::slow_host(&self.all, b, a));
            logs.push(RoundLog {
                attempt: reruns,
                key: outcome.as_ref().ok().map(&key),
                floor_before_ns: self.last,
                floor_after_ns: after,
                ..log.clone()
            });
            self.last = after;
            if moved && outcome.is_ok() && reruns < rounds::RERUNS_MAX {
                reruns += 1;
                continue;
            }
            return Attempted {
                outcome,
                moved,
                reruns,
                logs,
            };
        }
    }
}

/// One row of a contention or fan-out table being measured in rounds.
struct ScaledCell<T> {
    /// The row's queue or publisher.
    name: String,
    /// The rows compared with one another (a queue, a message size): the ratios are to the
    /// group's one-process row.
    group: usize,
    /// Producer or subscriber processes.
    processes: u32,
    /// Message size in bytes.
    size: usize,
    measured: Measurements<T>,
}

impl<T> ScaledCell<T> {
    fn new(name: impl Into<String>, group: usize, processes: u32, size: usize) -> Self {
        Self {
            name: name.into(),
            group,
            processes,
            size,
            measured: Measurements::default(),
        }
    }
}

/// One round's row.
enum Measured {
    Latency(LatencyRow),
    Throughput(ThroughputRow),
}

impl RoundRow for Measured {
    fn key(&self) -> f64 {
        match self {
            Measured::Latency(row) => row.key(),
            Measured::Throughput(row) => row.key(),
        }
    }
    fn spread_mut(&mut self) -> &mut Spread {
        match self {
            Measured::Latency(row) => row.spread_mut(),
            Measured::Throughput(row) => row.spread_mut(),
        }
    }
}

/// A latency or throughput row being measured in rounds.
struct Planned<'m> {
    mechanism: &'m dyn Mechanism,
    experiment: Experiment,
    size: usize,
    measured: Measurements<Measured>,
    /// The raw ring, measured at the same size after each of this row's rounds
    /// ([`PAIRED_WITH_RAW_RING`]).
    paired: Option<&'m dyn Mechanism>,
    /// Each round's ratio to its partner of the same moment: a throughput round's rate over
    /// the raw ring's measured right after it, a latency round's p50 over the floor probes
    /// around it ([`rounds::floor_paired`]).
    paired_ratios: Vec<f64>,
}

impl<'m> Planned<'m> {
    fn new(mechanism: &'m dyn Mechanism, experiment: Experiment, size: usize) -> Self {
        Self {
            mechanism,
            experiment,
            size,
            measured: Measurements::default(),
            paired: None,
            paired_ratios: Vec::new(),
        }
    }
}
