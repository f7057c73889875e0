//! The shmsock IPC lab: measures IPC mechanisms on this machine, two processes on two CPUs.
//!
//! # Method
//!
//! Every measurement runs the two sides of a [`mechanisms::Mechanism`] in two processes: the
//! parent sets the mechanism up, forks, and each process pins itself to its own CPU (the first
//! two this process may use). Then:
//!
//! - **latency**: ping-pong with 64-byte messages; every round trip is timed and recorded in an
//!   HDR histogram; the report gives min/p50/p99/p99.9 of the *round trip* and one-way = RTT/2;
//! - **throughput**: the child streams 64-byte and 4-KiB messages, the parent receives, checks
//!   every sequence number, and times first to last message;
//! - **integrity**: before any of that, a short pass checks every byte at several sizes.
//!
//! `floor` (a bare cache-line ping-pong) is measured before and after everything else: it is
//! the reference for latency ratios, and if it moved by more than 50% the host was noisy and
//! the report says so. `raw-ring` (a textbook SPSC ring) is the reference for throughput.
//!
//! # Example
//!
//! ```no_run
//! let report = shmsock_lab::run(&shmsock_lab::LabOptions {
//!     quick: true,
//!     json: None,
//!     mechanisms: Some(vec!["floor".into(), "pipe".into()]),
//! })?;
//! assert!(report.latency.iter().any(|row| row.mechanism == "floor"));
//! # Ok::<(), shmsock_lab::LabError>(())
//! ```
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod error;
pub mod experiments;
pub mod host;
pub mod mechanisms;
mod process;
pub mod report;
mod shared;

use std::path::PathBuf;
use std::sync::Mutex;

pub use error::LabError;
pub use experiments::{Budget, Budgets};
pub use host::{HostInfo, Pinning};
pub use report::{FloorCheck, LatencyRow, Report, ThroughputRow, UnavailableRow};

use mechanisms::{Mechanism, Pattern};
use process::AffinityGuard;

/// Size of the latency experiment's messages, in bytes.
pub const LATENCY_SIZE: usize = 64;
/// Sizes of the throughput experiment's messages, in bytes.
pub const THROUGHPUT_SIZES: [usize; 2] = [64, 4096];

/// Serialises every fork in this process: the lab pins the calling thread and forks, and two
/// labs (or tests) doing so at once would measure each other.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// What to run and where to write it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabOptions {
    /// Short budgets: the whole lab in well under a minute, indicative numbers.
    pub quick: bool,
    /// Also write the report as JSON to this path.
    pub json: Option<PathBuf>,
    /// Run only these mechanisms (by name); `None` runs all. `floor` always runs: it is the
    /// reference for the latency ratios and the noise check.
    pub mechanisms: Option<Vec<String>>,
}

/// Runs the lab: prints progress to stderr and the table to stdout, writes the JSON if asked,
/// and returns the report.
///
/// Mechanisms that fail become [`UnavailableRow`]s; only an unknown mechanism name, a machine
/// where the lab cannot pin or fork at all, or an unwritable JSON path are errors.
pub fn run(opts: &LabOptions) -> Result<Report, LabError> {
    let budgets = if opts.quick {
        Budgets::QUICK
    } else {
        Budgets::DEFAULT
    };
    let report = run_with(opts.mechanisms.as_deref(), opts.quick, budgets)?;
    println!("{}", report.render());
    if let Some(path) = &opts.json {
        let json_err = |source| LabError::Json {
            path: path.clone(),
            source,
        };
        let json = report
            .to_json()
            .map_err(|e| json_err(std::io::Error::other(e)))?;
        std::fs::write(path, json + "\n").map_err(json_err)?;
        eprintln!("lab: wrote {}", path.display());
    }
    Ok(report)
}

/// Runs the lab with explicit budgets and returns the report without printing the table.
pub fn run_with(
    filter: Option<&[String]>,
    quick: bool,
    budgets: Budgets,
) -> Result<Report, LabError> {
    let selected = select(filter)?;
    let _lock = FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pinning = Pinning::choose()?;
    let host = HostInfo::collect(pinning)?;
    let _pinned = AffinityGuard::pin(pinning.parent_cpu)?;
    eprintln!(
        "lab: {} on {}; {}",
        host.cpu_model, host.kernel, host.pinning_text
    );
    let mut report = Report {
        host,
        quick,
        mechanisms: selected.iter().map(|m| m.name().to_string()).collect(),
        latency: Vec::new(),
        throughput: Vec::new(),
        unavailable: Vec::new(),
        floor_check: None,
        warnings: Vec::new(),
    };
    let floor = mechanisms::floor::Floor;
    let floor_before =
        experiments::latency::measure(&floor, LATENCY_SIZE, budgets.latency, pinning);
    for mechanism in &selected {
        run_mechanism(
            &mut report,
            mechanism.as_ref(),
            budgets,
            pinning,
            &floor_before,
        );
    }
    if let Ok(before) = &floor_before {
        eprintln!("lab: floor again (noise check)");
        if let Ok(after) =
            experiments::latency::measure(&floor, LATENCY_SIZE, budgets.latency, pinning)
        {
            report.floor_check = Some(FloorCheck::new(before.p50_ns, after.p50_ns));
        }
    }
    report.finish();
    for warning in &report.warnings {
        eprintln!("lab: {warning}");
    }
    Ok(report)
}

/// Checks that `mechanism` delivers every byte intact, in order, at several sizes, in both
/// patterns it supports (see [`experiments`]); forks a child per size and pattern.
pub fn check_integrity(mechanism: &str) -> Result<(), LabError> {
    let mechanism = mechanisms::by_name(mechanism)?;
    let _lock = FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pinning = Pinning::choose()?;
    let _pinned = AffinityGuard::pin(pinning.parent_cpu)?;
    experiments::integrity::check(mechanism.as_ref(), pinning)
}

/// The mechanisms to run, in report order; `floor` always included.
fn select(filter: Option<&[String]>) -> Result<Vec<Box<dyn Mechanism>>, LabError> {
    let Some(names) = filter else {
        return Ok(mechanisms::all());
    };
    for name in names {
        mechanisms::by_name(name)?;
    }
    Ok(mechanisms::all()
        .into_iter()
        .filter(|m| m.name() == "floor" || names.iter().any(|n| n == m.name()))
        .collect())
}

fn run_mechanism(
    report: &mut Report,
    mechanism: &dyn Mechanism,
    budgets: Budgets,
    pinning: Pinning,
    floor_before: &Result<LatencyRow, LabError>,
) {
    let name = mechanism.name();
    let mut planned = vec![(Experiment::Latency, LATENCY_SIZE)];
    if mechanism.supports(Pattern::Stream) {
        planned.extend(THROUGHPUT_SIZES.map(|size| (Experiment::Throughput, size)));
    }
    eprintln!("lab: {name}: integrity check");
    if let Err(err) = experiments::integrity::check(mechanism, pinning) {
        let reason = format!("integrity check failed: {err}");
        for (experiment, size) in planned {
            report.push_unavailable(name, experiment, size, reason.clone());
        }
        return;
    }
    for (experiment, size) in planned {
        if size > mechanism.max_message() {
            let reason = format!(
                "messages of {size} B exceed this mechanism's limit of {} B here",
                mechanism.max_message()
            );
            report.push_unavailable(name, experiment, size, reason);
            continue;
        }
        eprintln!("lab: {name}: {}, {size} B", experiment.as_str());
        let outcome = match experiment {
            Experiment::Latency if name == "floor" => match floor_before {
                Ok(row) => {
                    report.latency.push(row.clone());
                    Ok(())
                }
                Err(err) => Err(err.to_string()),
            },
            Experiment::Latency => {
                experiments::latency::measure(mechanism, size, budgets.latency, pinning)
                    .map(|row| report.latency.push(row))
                    .map_err(|e| e.to_string())
            }
            Experiment::Throughput => {
                experiments::throughput::measure(mechanism, size, budgets.throughput, pinning)
                    .map(|row| report.throughput.push(row))
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(reason) = outcome {
            report.push_unavailable(name, experiment, size, reason);
        }
    }
}

/// The two timed experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Experiment {
    Latency,
    Throughput,
}

impl Experiment {
    fn as_str(self) -> &'static str {
        match self {
            Experiment::Latency => "latency",
            Experiment::Throughput => "throughput",
        }
    }
}

impl Report {
    fn push_unavailable(
        &mut self,
        mechanism: &str,
        experiment: Experiment,
        size: usize,
        reason: String,
    ) {
        eprintln!(
            "lab: {mechanism}: {} at {size} B unavailable: {reason}",
            experiment.as_str()
        );
        self.unavailable.push(UnavailableRow {
            mechanism: mechanism.to_string(),
            experiment: experiment.as_str().to_string(),
            size,
            reason,
        });
    }
}
