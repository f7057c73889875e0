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
//! - **integrity**: before any of that, a short pass checks every byte at several sizes;
//! - **sync-tax**, **contention**, **serialization**, **scale**: the tables of the Comparison (what a
//!   lock costs a shared-memory queue; 1/2/4/8 producers) and Communication Costs (a 1 KiB struct in
//!   postcard and JSON; a million messages between threads and between processes). See
//!   [`experiments`].
//! - **fanout**: one shmsock `Publisher` process broadcasting over `shm://` to 1, 2 and 4
//!   `Subscriber` processes (64 B and 4 KiB, nothing lost): the publisher's rate and its
//!   ratio to one subscriber.
//! - **bridge**: one-way latency of a 64 B message from a `Publisher` process to a
//!   `Subscriber` process over `shm://`, over `tcp://`, and through a `shmsock bridge`
//!   process both ways (shm -> tcp, tcp -> shm): what the bridge adds, against tcp in the
//!   same run.
//! - **network**: shmsock's `tcp://` and `unix://` against libzmq (loaded at run time with
//!   `dlopen`, measured natively in the same run): PAIR and PUB/SUB streams (msgs/s, MB/s) and
//!   the one-way latency of lone messages, at 64 B, 4 KiB and 1 MiB; libzmq with CURVE too.
//! - **bugs**: the reference documents' shared-memory bugs (a mutex without
//!   `PTHREAD_PROCESS_SHARED`, a `strcpy` overflow, a holder killed with the lock, a torn read,
//!   a pointer in shared memory) made to happen in deliberately naive code in forked processes
//!   (hangs killed and counted, crashes counted), next to shmsock doing the same job.
//! - **python**: what a Python program gets from `multiprocessing` (Pipe, Queue, shared_memory),
//!   pyzmq `ipc://` and the shmsock Python package, a Python interpreter on both sides (a driver
//!   script run by `$SHMSOCK_PYTHON` or `python3`): round trips and streams at 64 B, 4 KiB and
//!   1 MiB. See [`experiments::python`].
//!
//! - **costs**: single operations of the Communication Costs: a load in and out of the cache,
//!   a process-shared mutex uncontended and contended, 1 KiB one way over a socket and shared
//!   memory.
//! - **upgrade**: a `tcp://` subscriber on this machine that moved to its publisher's
//!   shared-memory ring by itself (`Options::upgrade`), against the same subscriber kept on
//!   loopback TCP and against `shm://` direct: round trips through two publisher/subscriber
//!   pairs and streams at 64 B and 4 KiB; the move is checked on every measured message. See
//!   [`experiments::upgrade`].
//!
//! Every quantitative claim of the reference documents is checked against these rows or
//! listed with the reason it is not ([`claims`]).
//!
//! `floor` (a bare cache-line ping-pong) is measured before and after everything else: it is
//! the reference for latency ratios, and if it moved by more than 50% the host was noisy and
//! the report says so. `raw-ring` (a textbook SPSC ring) is the reference for throughput.
//!
//! # Example
//!
//! ```no_run
//! let report = shmsock_lab::run(&shmsock_lab::LabOptions {
//!     mode: shmsock_lab::Mode::Quick,
//!     mechanisms: Some(vec!["floor".into(), "pipe".into()]),
//!     ..Default::default()
//! })?;
//! assert!(report.latency.iter().any(|row| row.mechanism == "floor"));
//! # Ok::<(), shmsock_lab::LabError>(())
//! ```
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod advise;
mod chart;
pub mod claims;
mod error;
pub mod experiments;
mod format;
pub mod host;
pub mod mechanisms;
mod options;
mod process;
mod progress;
pub mod report;
pub mod rounds;
mod runner;
mod shared;
pub mod stats;
mod table;

pub use error::LabError;
pub use experiments::latency::LatencyRow;
pub use experiments::throughput::ThroughputRow;
pub use experiments::{Budget, Budgets};
pub use host::{HostInfo, Pinning};
pub use options::{LabOptions, Mode, EXPERIMENTS, LATENCY_SIZE, THROUGHPUT_SIZES};
pub use report::{FloorCheck, Report, UnavailableRow};

use process::{AffinityGuard, FORK_LOCK};

/// Runs the lab: prints progress to stderr and the table to stdout, writes the JSON and the
/// report directory if asked, and returns the report.
///
/// Mechanisms that fail become [`UnavailableRow`]s; only an unknown mechanism or experiment
/// name, a machine where the lab cannot pin or fork at all, or an unwritable output path are
/// errors.
pub fn run(opts: &LabOptions) -> Result<Report, LabError> {
    let report = run_with(opts, Budgets::of(opts.mode))?;
    println!("{}", report.render());
    if let Some(path) = &opts.json {
        report.write_json(path)?;
        eprintln!("lab: wrote {}", path.display());
    }
    if let Some(dir) = &opts.out {
        let files = report.write_dir(dir)?;
        println!("Report written to {}:", dir.display());
        for file in &files {
            println!("  {}", file.display());
        }
        println!("Open {} in a browser.", dir.join("report.html").display());
    }
    Ok(report)
}

/// Runs the lab with explicit budgets and returns the report without printing the table.
pub fn run_with(opts: &LabOptions, budgets: Budgets) -> Result<Report, LabError> {
    opts.validate()?;
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
    runner::Lab::new(opts, budgets, host)?.run()
}

/// Checks that `mechanism` delivers every byte intact, in order, at several sizes, in both
/// patterns it supports (see [`experiments`]); forks a child per size and pattern.
///
/// `mechanism` is a name of [`mechanisms::all`] or of [`mechanisms::queues`].
pub fn check_integrity(mechanism: &str) -> Result<(), LabError> {
    let mechanism = match mechanisms::queues()
        .into_iter()
        .find(|m| m.name() == mechanism)
    {
        Some(queue) => queue,
        None => mechanisms::by_name(mechanism)?,
    };
    let _lock = FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pinning = Pinning::choose()?;
    let _pinned = AffinityGuard::pin(pinning.parent_cpu)?;
    experiments::integrity::check(mechanism.as_ref(), pinning)
}
