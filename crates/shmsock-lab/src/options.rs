//! What a lab run measures: its mode (how long), the experiments and mechanisms selected,
//! the message sizes, and where the report goes.

use std::path::PathBuf;

use crate::error::LabError;
use crate::experiments::python;
use crate::mechanisms;

/// Size of the latency experiment's messages, in bytes.
pub const LATENCY_SIZE: usize = 64;
/// Sizes of the throughput experiment's messages, in bytes: the foundation's 64 B, and the
/// reference documents' 4 KiB and 1 MiB.
pub const THROUGHPUT_SIZES: [usize; 3] = [64, 4096, 1 << 20];
/// The experiments, by the names `--only` takes.
pub const EXPERIMENTS: [&str; 15] = [
    "latency",
    "throughput",
    "sync-tax",
    "contention",
    "fanout",
    "bridge",
    "network",
    "serialization",
    "scale",
    "crash",
    "setup",
    "bugs",
    "python",
    "costs",
    "upgrade",
];

/// How long and how thoroughly to measure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// About a minute and a half on 2 CPUs: indicative numbers
    /// ([`Budgets::QUICK`](crate::Budgets::QUICK)).
    Quick,
    /// About 15 minutes on 2 CPUs: the reference documents' volumes, every row in rounds
    /// ([`Budgets::DEFAULT`](crate::Budgets::DEFAULT)).
    #[default]
    Default,
    /// Longer runs for stable tails ([`Budgets::FULL`](crate::Budgets::FULL)).
    Full,
}

impl Mode {
    /// `quick`, `default` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Default => "default",
            Mode::Full => "full",
        }
    }
}

/// What to run and where to write it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabOptions {
    /// How long to measure.
    pub mode: Mode,
    /// Also write the report as JSON to this path.
    pub json: Option<PathBuf>,
    /// Write `report.html`, `report.md`, `report.json` and the SVG plots into this directory.
    pub out: Option<PathBuf>,
    /// Run only these mechanisms (by name, or by family: `mmap-file-durable` is its three
    /// rows) in the latency and throughput experiments, and only the `py-...` rows named here
    /// in the python experiment (all of them if it names none); `None` runs all. `floor` always runs: it is the reference for the latency ratios and the noise
    /// check. The other experiments have fixed subjects (their reference tables' rows).
    pub mechanisms: Option<Vec<String>>,
    /// Run only these experiments (names of [`EXPERIMENTS`]); `None` runs all.
    pub only: Option<Vec<String>>,
    /// Throughput message sizes in bytes; `None` means [`THROUGHPUT_SIZES`].
    pub sizes: Option<Vec<usize>>,
}

impl LabOptions {
    /// Whether `experiment` is selected.
    pub fn runs(&self, experiment: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|e| e == experiment))
    }

    /// The throughput sizes to measure.
    pub fn throughput_sizes(&self) -> Vec<usize> {
        self.sizes
            .clone()
            .unwrap_or_else(|| THROUGHPUT_SIZES.to_vec())
    }

    pub(crate) fn validate(&self) -> Result<(), LabError> {
        for name in self.only.iter().flatten() {
            if !EXPERIMENTS.contains(&name.as_str()) {
                return Err(LabError::UnknownExperiment {
                    name: name.clone(),
                    known: EXPERIMENTS.join(", "),
                });
            }
        }
        for name in self.mechanisms.iter().flatten() {
            if python::ROWS.contains(&name.as_str()) {
                continue;
            }
            mechanisms::by_filter(name).map_err(|err| match err {
                LabError::UnknownMechanism { name, known } => LabError::UnknownMechanism {
                    name,
                    known: format!("{known}; python experiment: {}", python::ROWS.join(", ")),
                },
                other => other,
            })?;
        }
        Ok(())
    }
}
