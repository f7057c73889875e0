//! Python: the IPC a Python program reaches for, with a Python interpreter on both sides.
//!
//! Rows (the `py-` prefix says a Python interpreter runs both sides):
//!
//! - `py-mp-pipe`: `multiprocessing.Pipe()`, `send_bytes` / `recv_bytes`;
//! - `py-mp-queue`: `multiprocessing.Queue` (bounded to 1 MiB worth of messages), `put` /
//!   `get`, one queue each way;
//! - `py-shared-memory`: `multiprocessing.shared_memory.SharedMemory` holding a ring of slots
//!   per direction, its indices guarded by a `multiprocessing.Condition`;
//! - `py-zmq-ipc`: pyzmq, a PAIR socket pair over `ipc://`, default options;
//! - `py-shmsock`: the shmsock Python package over `shm://`, `send` / `recv_into` (copying);
//! - `py-shmsock-loan`: the same with a loan pool, `loan` / `recv_sample` (the sender writes the
//!   sequence number into the first and last 8 bytes of the loan, the receiver reads those 16
//!   bytes of the sample: pointer exchange, like the `shmsock-loan` row).
//!
//! How: a driver script kept in the repository (`crates/shmsock-lab/python/ipc_bench.py`,
//! embedded with `include_str!`) is written into a private temporary directory and run by the
//! interpreter under test (`$SHMSOCK_PYTHON`, else `python3`), once per row, pattern and size.
//! It sets the mechanism up, forks the other side with multiprocessing's `fork` context, pins
//! the two processes to the lab's two CPUs with `os.sched_setaffinity`, measures, and prints
//! one JSON object that this module turns into a [`PythonRow`]:
//!
//! - **round trip** at 64 B, 4 KiB and 1 MiB (the throughput sizes): the parent sends message
//!   `n`, the child sends it back, every round trip is timed (`time.perf_counter_ns`) and the
//!   times (a file of them in the temporary directory) are summarised here in an HDR histogram,
//!   like the latency table;
//! - **stream**: the child sends the warm-up, the measured messages and a stop message with the
//!   throughput experiment's budget; the parent checks every sequence number and times the
//!   first measured message to the stop message; each side measures its process's CPU time
//!   (`getrusage(RUSAGE_SELF)`: all its threads, such as a `Queue`'s feeder thread or libzmq's
//!   I/O thread) over its window.
//!
//! First the driver probes the interpreter (its version and which of pyzmq and shmsock it can
//! import): a row whose module is missing is skipped with the reason and how to install it; with
//! no interpreter at all the experiment says so and the lab goes on. The table ends with the
//! ratios the shmsock package is judged by: `py-shmsock`'s 64 B stream and round-trip p50
//! against `py-mp-queue`'s and `py-zmq-ipc`'s ([`PythonSummary`]). No reference document
//! gives a number about Python or multiprocessing, so these rows have no verdicts.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::throughput::cpu_pct;
use super::Budget;
use crate::error::LabError;
use crate::format::{fmt_count, fmt_ns, fmt_ratio, fmt_size};
use crate::host::Pinning;
use crate::stats::Percentiles;
use crate::table::{Group, Table};

/// The driver script, run by the interpreter under test.
pub const SCRIPT: &str = include_str!("../../python/ipc_bench.py");

/// The environment variable naming the interpreter to measure (default `python3`).
pub const PYTHON_ENV: &str = "SHMSOCK_PYTHON";

/// The rows, in report order (the driver script has the same mechanisms, in the same order).
pub const ROWS: [&str; 6] = [
    "py-mp-pipe",
    "py-mp-queue",
    "py-shared-memory",
    "py-zmq-ipc",
    "py-shmsock",
    "py-shmsock-loan",
];

/// The row of the shmsock package that the summary judges.
pub const SHMSOCK_ROW: &str = "py-shmsock";
/// The summary's first reference: `multiprocessing.Queue`.
pub const QUEUE_ROW: &str = "py-mp-queue";
/// The summary's second reference: pyzmq over `ipc://`.
pub const ZMQ_ROW: &str = "py-zmq-ipc";
/// The message size the summary compares at.
pub const SUMMARY_SIZE: usize = 64;
/// Smallest message the rows carry: a sequence number at each end of a loan.
pub const MIN_SIZE: usize = 16;

/// Time the interpreter gets beyond a row's watchdog to start, import and report.
const STARTUP_MARGIN: Duration = Duration::from_secs(15);
/// Time a probe gets.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest round trip the histogram holds (longer ones are clamped to it): 100 s.
const MAX_RTT_NS: u64 = 100_000_000_000;

/// The interpreter to measure: `$SHMSOCK_PYTHON` if set and not empty, else `python3`.
pub fn interpreter() -> PathBuf {
    std::env::var_os(PYTHON_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// The rows `filter` (the lab's `--mechanisms`) selects: the rows it names, or all of them when
/// it names none (it then filters the other experiments' rows only).
pub fn selected(filter: Option<&[String]>) -> Vec<&'static str> {
    let named: Vec<&'static str> = ROWS
        .into_iter()
        .filter(|row| filter.is_some_and(|names| names.iter().any(|n| n == row)))
        .collect();
    if named.is_empty() {
        ROWS.to_vec()
    } else {
        named
    }
}

/// Which way messages flow in one run of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Round trips: the parent sends, the child sends every message back.
    RoundTrip,
    /// One way: the child streams, the parent receives.
    Stream,
}

impl Pattern {
    /// `round trip` or `stream`.
    pub fn label(self) -> &'static str {
        match self {
            Pattern::RoundTrip => "round trip",
            Pattern::Stream => "stream",
        }
    }

    fn driver_name(self) -> &'static str {
        match self {
            Pattern::RoundTrip => "latency",
            Pattern::Stream => "stream",
        }
    }
}

/// One Python run of the lab: the interpreter, its modules, and the rows measured with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonRun {
    /// The interpreter as given (`python3`, or `$SHMSOCK_PYTHON`).
    pub interpreter: String,
    /// Its version (`3.11.7`); `None` if it could not be run.
    pub version: Option<String>,
    /// The executable it reports (`sys.executable`).
    #[serde(default)]
    pub executable: Option<String>,
    /// The modules the rows need (`multiprocessing`, `zmq`, `shmsock`, ...), by import name.
    #[serde(default)]
    pub modules: BTreeMap<String, Module>,
    /// What each row uses, in the driver's words, by row name.
    #[serde(default)]
    pub uses: BTreeMap<String, String>,
    /// One row per mechanism and message size measured.
    pub rows: Vec<PythonRow>,
    /// The ratios the shmsock package is judged by, when its rows and the references were
    /// measured (filled by the report).
    #[serde(default)]
    pub summary: Option<PythonSummary>,
}

/// A module as the interpreter sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Its version (`pyzmq 27.3.0, libzmq 4.3.5`), if it imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why it does not import, if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// How to install it, if it does not import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<String>,
}

/// One mechanism at one message size: its round trips and its stream, each `None` if that
/// part was not measured (the report's unavailable rows say why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonRow {
    /// Row name (`py-mp-queue`).
    pub mechanism: String,
    /// Message size in bytes.
    pub size: usize,
    /// Round trips, one message in flight.
    pub round_trip: Option<RoundTrips>,
    /// One-way stream, measured by the receiver.
    pub stream: Option<Stream>,
}

/// Round trips of one message at a time, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundTrips {
    /// The round trips (`min_ns`, `p50_ns`, ... in the JSON).
    #[serde(flatten)]
    pub rtt: Percentiles,
    /// Round trips timed.
    pub samples: u64,
}

/// A one-way stream measured by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    /// Messages per second.
    pub msgs_per_s: u64,
    /// Payload bytes per second.
    pub bytes_per_s: u64,
    /// Messages counted in the measured window (every sequence number checked).
    pub messages: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Whether the time cap ended the stream before all its planned messages.
    pub capped: bool,
    /// CPU use of the sending process (all its threads) while it sent, % of one CPU.
    pub sender_cpu_pct: f64,
    /// CPU use of the receiving process while it received, % of one CPU.
    pub receiver_cpu_pct: f64,
    /// The part of `sender_cpu_pct` spent in the kernel, % of one CPU.
    pub sender_kernel_pct: f64,
    /// The part of `receiver_cpu_pct` spent in the kernel, % of one CPU.
    pub receiver_kernel_pct: f64,
    /// `msgs_per_s` divided by `py-mp-queue`'s at the same size.
    #[serde(default)]
    pub vs_mp_queue: Option<f64>,
}

/// The ratios the shmsock package is judged by, at [`SUMMARY_SIZE`]: `py-shmsock` against
/// `multiprocessing.Queue` and pyzmq `ipc://`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PythonSummary {
    /// Message size, bytes.
    pub size: usize,
    /// `py-shmsock` msgs/s ÷ `py-mp-queue` msgs/s (above 1: faster).
    pub stream_vs_mp_queue: Option<f64>,
    /// `py-shmsock` msgs/s ÷ `py-zmq-ipc` msgs/s (above 1: faster).
    pub stream_vs_zmq_ipc: Option<f64>,
    /// `py-shmsock` round-trip p50 ÷ `py-mp-queue`'s (below 1: faster).
    pub rtt_p50_vs_mp_queue: Option<f64>,
    /// `py-shmsock` round-trip p50 ÷ `py-zmq-ipc`'s (below 1: faster).
    pub rtt_p50_vs_zmq_ipc: Option<f64>,
}

impl Stream {
    /// Shortest window whose CPU% is shown: `getrusage` counts CPU time to the microsecond,
    /// but a few microseconds of a very short window would make a large share.
    pub const CPU_MIN_SECONDS: f64 = 0.01;

    /// Whether the window was long enough for its CPU% to mean something.
    pub fn cpu_known(&self) -> bool {
        self.seconds >= Self::CPU_MIN_SECONDS
    }
}

impl PythonRun {
    /// A run of `interpreter` that has not reached it yet.
    pub fn new(interpreter: &Path) -> Self {
        Self {
            interpreter: interpreter.display().to_string(),
            version: None,
            executable: None,
            modules: BTreeMap::new(),
            uses: BTreeMap::new(),
            rows: Vec::new(),
            summary: None,
        }
    }

    /// Takes in what the probe found.
    pub(crate) fn probed(&mut self, probe: &Probe) {
        self.version = Some(probe.python.clone());
        self.executable = Some(probe.executable.clone());
        self.modules = probe.modules.clone();
        self.uses = probe
            .rows
            .iter()
            .map(|row| (row.name.clone(), row.uses.clone()))
            .collect();
    }

    /// The interpreter in words: `python3 (Python 3.11.7, /usr/bin/python3)`.
    pub fn describe(&self) -> String {
        match (&self.version, &self.executable) {
            (Some(v), Some(exe)) if *exe != self.interpreter => {
                format!("{} (Python {v}, {exe})", self.interpreter)
            }
            (Some(v), _) => format!("{} (Python {v})", self.interpreter),
            _ => self.interpreter.clone(),
        }
    }

    /// Why `row` cannot run with this interpreter (its module does not import), if so.
    pub fn missing(&self, row: &str, probe_rows: &[ProbeRow]) -> Option<String> {
        let module = probe_rows.iter().find(|r| r.name == row)?.module.as_str();
        let info = self.modules.get(module)?;
        let why = info.missing.as_deref()?;
        let name = match module {
            "zmq" => "pyzmq",
            other => other,
        };
        Some(format!(
            "{name} does not import in {}: {why}; to measure this row: {}",
            self.describe(),
            info.install.as_deref().unwrap_or("install it")
        ))
    }

    /// The row of `mechanism` at `size`, added if new.
    pub(crate) fn row_mut(&mut self, mechanism: &str, size: usize) -> &mut PythonRow {
        let at = self
            .rows
            .iter()
            .position(|r| r.mechanism == mechanism && r.size == size);
        let at = at.unwrap_or_else(|| {
            self.rows.push(PythonRow {
                mechanism: mechanism.to_string(),
                size,
                round_trip: None,
                stream: None,
            });
            self.rows.len() - 1
        });
        &mut self.rows[at]
    }

    /// The row of `mechanism` at `size`, if measured.
    pub fn find(&self, mechanism: &str, size: usize) -> Option<&PythonRow> {
        self.rows
            .iter()
            .find(|r| r.mechanism == mechanism && r.size == size)
    }
}

/// What the driver's `--probe` reports.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Probe {
    /// `platform.python_version()`.
    pub(crate) python: String,
    /// `sys.executable`.
    pub(crate) executable: String,
    /// The modules the rows need.
    pub(crate) modules: BTreeMap<String, Module>,
    /// The driver's rows.
    pub(crate) rows: Vec<ProbeRow>,
}

/// One row as the driver describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProbeRow {
    /// Row name.
    pub name: String,
    /// The module it imports.
    pub module: String,
    /// What it uses, in words.
    pub uses: String,
}

/// What one run of the driver measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Measured {
    /// Round trips.
    RoundTrips(RoundTrips),
    /// A stream.
    Stream(Stream),
    /// The row's module is missing (the driver's words).
    Skipped(String),
}

/// The driver's output line.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Output {
    Ok(Body),
    Skipped(String),
    Error(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    RoundTrips {
        /// The round trips in ns, native unsigned 64-bit integers.
        rtt_file: PathBuf,
        samples: u64,
    },
    Stream {
        window: Window,
        messages: u64,
        sender: Window,
        capped: bool,
    },
}

/// A measured window of one process.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Window {
    wall_ns: u64,
    cpu_ns: u64,
    sys_ns: u64,
}

/// Distinguishes the temporary directories of one process.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// The driver script in a private temporary directory (removed on drop), and the interpreter
/// that runs it.
pub(crate) struct Driver {
    interpreter: PathBuf,
    dir: PathBuf,
    script: PathBuf,
}

impl Driver {
    /// Writes the script into a fresh directory under the temporary directory.
    pub(crate) fn new(interpreter: PathBuf) -> Result<Self, LabError> {
        let dir = std::env::temp_dir().join(format!(
            "shmsock-lab-py-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LabError::Write { path, source }
        };
        std::fs::create_dir(&dir).map_err(write_err(&dir))?;
        let script = dir.join("ipc_bench.py");
        let driver = Self {
            interpreter,
            dir,
            script,
        };
        std::fs::write(&driver.script, SCRIPT).map_err(write_err(&driver.script))?;
        Ok(driver)
    }

    fn error(&self, detail: impl Into<String>) -> LabError {
        LabError::Python {
            interpreter: self.interpreter.display().to_string(),
            detail: detail.into(),
        }
    }

    /// Asks the interpreter what it is and which modules it has.
    pub(crate) fn probe(&self) -> Result<Probe, LabError> {
        let (status, stdout, stderr) = self.run(&["--probe".to_string()], PROBE_TIMEOUT)?;
        let parsed = last_json_line(&stdout).and_then(|line| serde_json::from_str(line).ok());
        match parsed {
            Some(probe) if status.success() => Ok(probe),
            _ => Err(self.error(format!(
                "the probe {} and printed no description of the interpreter{}",
                ended(status),
                stderr_tail(&stderr)
            ))),
        }
    }

    /// Measures `row` with `size`-byte messages in `pattern`, within `budget`, the parent side
    /// on `pinning.parent_cpu` and the child on `pinning.child_cpu`.
    pub(crate) fn measure(
        &self,
        row: &str,
        pattern: Pattern,
        size: usize,
        budget: Budget,
        pinning: Pinning,
    ) -> Result<Measured, LabError> {
        let watchdog = budget.watchdog();
        let plan = serde_json::json!({
            "mechanism": row,
            "pattern": pattern.driver_name(),
            "size": size,
            "cpus": [pinning.parent_cpu, pinning.child_cpu],
            "warmup_iters": budget.warmup_iters,
            "warmup_time_s": budget.warmup_time.as_secs_f64(),
            "iters": budget.iters,
            "max_time_s": budget.max_time.as_secs_f64(),
            "watchdog_s": watchdog.as_secs().max(1),
            "dir": self.dir.display().to_string(),
        });
        let (status, stdout, stderr) = self.run(&[plan.to_string()], watchdog + STARTUP_MARGIN)?;
        let output = last_json_line(&stdout)
            .and_then(|line| serde_json::from_str::<Output>(line).ok())
            .ok_or_else(|| {
                self.error(format!(
                    "the driver {} and printed no result{}",
                    ended(status),
                    stderr_tail(&stderr)
                ))
            })?;
        match output {
            Output::Error(text) => Err(self.error(text)),
            Output::Skipped(why) => Ok(Measured::Skipped(why)),
            Output::Ok(_) if !status.success() => Err(self.error(format!(
                "the driver printed a result but {}{}",
                ended(status),
                stderr_tail(&stderr)
            ))),
            Output::Ok(body) => from_body(body, size).map_err(|detail| self.error(detail)),
        }
    }

    /// Runs the script with `args`; kills it after `timeout`. Returns how it ended and what it
    /// printed (through files: the lab runs no thread to drain pipes).
    fn run(
        &self,
        args: &[String],
        timeout: Duration,
    ) -> Result<(ExitStatus, String, String), LabError> {
        let out_path = self.dir.join("stdout");
        let err_path = self.dir.join("stderr");
        let create = |path: &Path| {
            File::create(path).map_err(|source| LabError::Write {
                path: path.to_path_buf(),
                source,
            })
        };
        let mut child = Command::new(&self.interpreter)
            .arg(&self.script)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(create(&out_path)?)
            .stderr(create(&err_path)?)
            .spawn()
            .map_err(|e| {
                self.error(format!(
                    "cannot run it: {e}; install CPython 3 (python3), or set {PYTHON_ENV} to \
                     an interpreter"
                ))
            })?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| self.error(format!("waiting for it: {e}")))?
            {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.error(format!(
                    "the driver did not finish within {timeout:?} and was killed"
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let read = |path: &Path| {
            std::fs::read(path)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        };
        Ok((status, read(&out_path), read(&err_path)))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last line of `stdout` that looks like a JSON object.
fn last_json_line(stdout: &str) -> Option<&str> {
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('{'))
}

/// `exited with status 1`, `was killed by signal 9`.
fn ended(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended".to_string(),
    }
}

/// The last lines of the driver's stderr, to show with an error (empty if it printed none).
fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    format!("; its stderr ends: {tail}")
}

/// The measurement in a successful output, checked.
fn from_body(body: Body, size: usize) -> Result<Measured, String> {
    match body {
        Body::RoundTrips { rtt_file, samples } => {
            let bytes = std::fs::read(&rtt_file);
            let _ = std::fs::remove_file(&rtt_file);
            let bytes = bytes
                .map_err(|e| format!("reading the round trips {}: {e}", rtt_file.display()))?;
            if samples == 0 || bytes.len() as u64 != samples * 8 {
                return Err(format!(
                    "{} round trips timed, {} bytes of them in {}",
                    samples,
                    bytes.len(),
                    rtt_file.display()
                ));
            }
            let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_RTT_NS, 3)
                .map_err(|e| format!("creating the round-trip histogram: {e}"))?;
            for ns in bytes.chunks_exact(8) {
                let ns = u64::from_ne_bytes(ns.try_into().unwrap_or_default());
                hist.saturating_record(ns.clamp(1, MAX_RTT_NS));
            }
            Ok(Measured::RoundTrips(RoundTrips {
                rtt: Percentiles::from_histogram(&hist),
                samples,
            }))
        }
        Body::Stream {
            window,
            messages,
            sender,
            capped,
        } => {
            if messages == 0 || window.wall_ns == 0 {
                return Err(format!(
                    "the stream counted {messages} messages in {} ns",
                    window.wall_ns
                ));
            }
            let seconds = window.wall_ns as f64 / 1e9;
            let rate = messages as f64 / seconds;
            Ok(Measured::Stream(Stream {
                msgs_per_s: rate.round() as u64,
                bytes_per_s: (rate * size as f64).round() as u64,
                messages,
                seconds,
                capped,
                sender_cpu_pct: cpu_pct(sender.cpu_ns, sender.wall_ns),
                receiver_cpu_pct: cpu_pct(window.cpu_ns, window.wall_ns),
                sender_kernel_pct: cpu_pct(sender.sys_ns, sender.wall_ns),
                receiver_kernel_pct: cpu_pct(window.sys_ns, window.wall_ns),
                vs_mp_queue: None,
            }))
        }
    }
}

/// Fills every stream's `vs_mp_queue` and the run's summary.
pub(crate) fn compare(run: &mut PythonRun) {
    let queue_rates: Vec<Option<u64>> = run
        .rows
        .iter()
        .map(|r| {
            run.find(QUEUE_ROW, r.size)
                .and_then(|q| q.stream)
                .map(|s| s.msgs_per_s)
        })
        .collect();
    for (row, queue) in run.rows.iter_mut().zip(queue_rates) {
        if let Some(stream) = &mut row.stream {
            stream.vs_mp_queue = queue.map(|q| stream.msgs_per_s as f64 / q.max(1) as f64);
        }
    }
    let at = |name: &str| run.find(name, SUMMARY_SIZE);
    let Some(shmsock) = at(SHMSOCK_ROW) else {
        run.summary = None;
        return;
    };
    let stream_vs = |other: &str| {
        let mine = shmsock.stream?.msgs_per_s as f64;
        Some(mine / at(other)?.stream?.msgs_per_s.max(1) as f64)
    };
    let rtt_vs = |other: &str| {
        let mine = shmsock.round_trip?.rtt.p50_ns as f64;
        Some(mine / at(other)?.round_trip?.rtt.p50_ns.max(1) as f64)
    };
    run.summary = Some(PythonSummary {
        size: SUMMARY_SIZE,
        stream_vs_mp_queue: stream_vs(QUEUE_ROW),
        stream_vs_zmq_ipc: stream_vs(ZMQ_ROW),
        rtt_p50_vs_mp_queue: rtt_vs(QUEUE_ROW),
        rtt_p50_vs_zmq_ipc: rtt_vs(ZMQ_ROW),
    });
}

impl PythonRun {
    /// The one line the shmsock package is judged by, once [`PythonRun::summary`] is filled:
    /// `py-shmsock`'s 64 B stream and round-trip p50 against `py-mp-queue`'s and
    /// `py-zmq-ipc`'s.
    pub fn summary_line(&self) -> Option<String> {
        let summary = self.summary?;
        let rtt = |name: &str| {
            self.find(name, summary.size)?
                .round_trip
                .map(|t| t.rtt.p50_ns)
        };
        let against = |other: &str, whose: &str| match (rtt(SHMSOCK_ROW), rtt(other)) {
            (Some(mine), Some(theirs)) => {
                format!(
                    "{} {whose}'s {}",
                    times_shorter(mine, theirs),
                    fmt_ns(theirs)
                )
            }
            _ => format!("{whose}'s not measured"),
        };
        let own = rtt(SHMSOCK_ROW).map_or_else(|| "not measured".into(), fmt_ns);
        Some(format!(
            "shmsock-python ({SHMSOCK_ROW}) at {}: streams {} multiprocessing.Queue \
             ({QUEUE_ROW}) and {} pyzmq ipc:// ({ZMQ_ROW}) (msgs/s); round trip p50 {own}, \
             {} and {}.",
            fmt_size(summary.size),
            fmt_ratio(summary.stream_vs_mp_queue, 2),
            fmt_ratio(summary.stream_vs_zmq_ipc, 2),
            against(QUEUE_ROW, "Queue"),
            against(ZMQ_ROW, "pyzmq"),
        ))
    }
}

/// `12.5x shorter than` or `2.0x longer than`: round trip `mine` against `theirs`.
fn times_shorter(mine: u64, theirs: u64) -> String {
    let (mine, theirs) = (mine.max(1) as f64, theirs.max(1) as f64);
    if mine <= theirs {
        format!("{:.1}x shorter than", theirs / mine)
    } else {
        format!("{:.1}x longer than", mine / theirs)
    }
}

/// The Python table: one group per message size, a row per mechanism, the summary first.
pub(crate) fn table(run: &PythonRun) -> Option<Table> {
    if run.rows.is_empty() {
        return None;
    }
    let mut sizes: Vec<usize> = run.rows.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let cpu = |s: Stream, pct: f64| {
        if s.cpu_known() {
            format!("{pct:.0}")
        } else {
            "-".to_string()
        }
    };
    let groups = sizes
        .into_iter()
        .map(|size| Group {
            heading: Some(format!("{} messages", fmt_size(size))),
            rows: run
                .rows
                .iter()
                .filter(|r| r.size == size)
                .map(|r| {
                    let rtt = r.round_trip.map(|t| t.rtt);
                    let mut cells = vec![
                        r.mechanism.clone(),
                        rtt.map_or_else(|| "-".into(), |t| fmt_ns(t.p50_ns)),
                        rtt.map_or_else(|| "-".into(), |t| fmt_ns(t.p99_ns)),
                    ];
                    match r.stream {
                        Some(s) => cells.extend([
                            format!(
                                "{}{}",
                                fmt_count(s.msgs_per_s),
                                if s.capped { "*" } else { "" }
                            ),
                            format!("{:.1}", s.bytes_per_s as f64 / 1e6),
                            cpu(s, s.sender_cpu_pct),
                            cpu(s, s.receiver_cpu_pct),
                            fmt_ratio(s.vs_mp_queue, 2),
                        ]),
                        None => cells.extend(std::iter::repeat_n("-".to_string(), 5)),
                    }
                    cells
                })
                .collect(),
        })
        .collect();
    let mut intro = vec![format!(
        "Python rows: a Python interpreter on both sides, {}. Each row is two Python processes \
         (the driver forks the other side with multiprocessing and pins the two to the lab's \
         CPUs). RTT: round trips of one message at a time; msgs/s, MB/s: a one-way stream \
         measured by the receiver, every sequence number checked; CPU%: each process's CPU time \
         (all its threads) over its window (- for a window under {:.0} ms, too short to tell); \
         vs py-mp-queue: msgs/s ÷ py-mp-queue's.",
        run.describe(),
        Stream::CPU_MIN_SECONDS * 1e3
    )];
    intro.push(match run.summary_line() {
        Some(line) => line,
        None => format!(
            "{SHMSOCK_ROW} was not measured at {}: no ratios to judge the shmsock package by \
             in this run.",
            fmt_size(SUMMARY_SIZE)
        ),
    });
    let mut notes: Vec<String> = ROWS
        .iter()
        .filter(|row| run.rows.iter().any(|r| r.mechanism == **row))
        .filter_map(|row| Some(format!("{row}: {}.", run.uses.get(*row)?)))
        .collect();
    let versions: Vec<String> = run
        .modules
        .iter()
        .filter_map(|(name, m)| Some((name, m.version.as_deref()?)))
        .filter(|(_, version)| !version.ends_with("standard library"))
        .map(|(name, version)| format!("{name}: {version}"))
        .collect();
    if !versions.is_empty() {
        notes.push(format!("Modules: {}.", versions.join("; ")));
    }
    if run.rows.iter().any(|r| r.mechanism == "py-shmsock-loan") {
        notes.push(
            "py-shmsock-loan's MB/s is messages/s × size: the payload is written in place and \
             never copied, the way the Comparison counts its pointer exchange."
                .into(),
        );
    }
    if run.rows.iter().any(|r| r.stream.is_some_and(|s| s.capped)) {
        notes.push(
            "* the time cap ended the stream before all its planned messages (the rate is over \
             what was sent)."
                .into(),
        );
    }
    notes.push(
        "No reference document gives a number about Python or multiprocessing: these rows have \
         no verdicts."
            .into(),
    );
    Some(Table {
        title: "Python: multiprocessing, pyzmq and shmsock-python, Python on both sides".into(),
        intro,
        headers: vec![
            "mechanism",
            "RTT p50",
            "RTT p99",
            "msgs/s",
            "MB/s",
            "CPU% send",
            "CPU% recv",
            "vs py-mp-queue",
        ],
        groups,
        notes,
        ..Table::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(msgs_per_s: u64) -> Stream {
        Stream {
            msgs_per_s,
            bytes_per_s: msgs_per_s * 64,
            messages: msgs_per_s,
            seconds: 1.0,
            capped: false,
            sender_cpu_pct: 90.0,
            receiver_cpu_pct: 80.0,
            sender_kernel_pct: 10.0,
            receiver_kernel_pct: 20.0,
            vs_mp_queue: None,
        }
    }

    fn round_trips(p50_ns: u64) -> RoundTrips {
        RoundTrips {
            rtt: Percentiles::at(p50_ns, [2, 3, 4]),
            samples: 100,
        }
    }

    fn run_with(rows: &[(&str, u64, u64)]) -> PythonRun {
        let mut run = PythonRun::new(Path::new("python3"));
        for &(name, rate, p50) in rows {
            let row = run.row_mut(name, 64);
            row.stream = Some(stream(rate));
            row.round_trip = Some(round_trips(p50));
        }
        run
    }

    #[test]
    fn the_summary_compares_shmsock_with_queue_and_zmq_at_64_bytes() {
        let mut run = run_with(&[
            (QUEUE_ROW, 100_000, 60_000),
            (ZMQ_ROW, 400_000, 50_000),
            (SHMSOCK_ROW, 800_000, 15_000),
        ]);
        compare(&mut run);
        let summary = run.summary.expect("a summary");
        assert_eq!(summary.stream_vs_mp_queue, Some(8.0));
        assert_eq!(summary.stream_vs_zmq_ipc, Some(2.0));
        assert_eq!(summary.rtt_p50_vs_mp_queue, Some(0.25));
        assert_eq!(summary.rtt_p50_vs_zmq_ipc, Some(0.3));
        let zmq = run.find(ZMQ_ROW, 64).and_then(|r| r.stream).expect("zmq");
        assert_eq!(zmq.vs_mp_queue, Some(4.0));
        let text = table(&run).expect("a table").to_text();
        assert!(
            text.contains("streams 8.00x multiprocessing.Queue (py-mp-queue) and 2.00x pyzmq"),
            "{text}"
        );
        assert!(
            text.contains(
                "round trip p50 15.0 µs, 4.0x shorter than Queue's 60.0 µs and 3.3x shorter \
                 than pyzmq's 50.0 µs."
            ),
            "{text}"
        );
        assert_eq!(times_shorter(300, 100), "3.0x longer than");
        assert!(text.contains("64 B messages"), "{text}");
    }

    #[test]
    fn cpu_of_a_window_too_short_to_tell_is_not_shown() {
        let mut run = run_with(&[(QUEUE_ROW, 100_000, 60_000)]);
        let short = run.row_mut(ZMQ_ROW, 64);
        short.stream = Some(Stream {
            seconds: 0.002,
            ..stream(5_000)
        });
        let text = table(&run).expect("a table").to_text();
        let cpus = |name: &str| {
            let line = text.lines().find(|l| l.starts_with(name)).expect("a row");
            line.split_whitespace()
                .rev()
                .skip(1)
                .take(2)
                .collect::<Vec<_>>()
        };
        assert_eq!(cpus(QUEUE_ROW), ["80", "90"], "{text}");
        assert_eq!(cpus(ZMQ_ROW), ["-", "-"], "{text}");
    }

    #[test]
    fn without_the_shmsock_row_the_table_says_there_is_nothing_to_judge() {
        let mut run = run_with(&[(QUEUE_ROW, 100_000, 60_000)]);
        compare(&mut run);
        assert_eq!(run.summary, None);
        let text = table(&run).expect("a table").to_text();
        assert!(
            text.contains("py-shmsock was not measured at 64 B"),
            "{text}"
        );
        // The reference itself has no ratio to anything but itself.
        let queue = run
            .find(QUEUE_ROW, 64)
            .and_then(|r| r.stream)
            .expect("queue");
        assert_eq!(queue.vs_mp_queue, Some(1.0));
    }

    #[test]
    fn the_driver_output_becomes_rows_skips_and_errors() {
        let parse = |line: &str| serde_json::from_str::<Output>(line).expect("parses");
        let file = std::env::temp_dir().join(format!("shmsock-lab-rtt-{}", std::process::id()));
        let times: Vec<u8> = [3000u64, 1000, 2000]
            .iter()
            .flat_map(|t| t.to_ne_bytes())
            .collect();
        let round_trips = |samples: u64| {
            std::fs::write(&file, &times).expect("written");
            let line = format!(
                r#"{{"ok": {{"rtt_file": "{}", "samples": {samples}}}}}"#,
                file.display()
            );
            let Output::Ok(body) = parse(&line) else {
                panic!("ok expected");
            };
            from_body(body, 64)
        };
        let Ok(Measured::RoundTrips(rt)) = round_trips(3) else {
            panic!("round trips expected");
        };
        assert_eq!((rt.samples, rt.rtt.min_ns, rt.rtt.p50_ns), (3, 1000, 2000));
        assert!(!file.exists(), "the file is removed once read");
        let err = round_trips(4).expect_err("a sample missing from the file");
        assert!(err.contains("4 round trips timed, 24 bytes"), "{err}");
        let line = r#"{"ok": {"window": {"wall_ns": 500000000, "cpu_ns": 250000000,
            "sys_ns": 50000000}, "messages": 1000, "sender": {"wall_ns": 400000000,
            "cpu_ns": 400000000, "sys_ns": 0}, "capped": true}}"#
            .replace('\n', " ");
        let Output::Ok(body) = parse(&line) else {
            panic!("ok expected");
        };
        let Ok(Measured::Stream(s)) = from_body(body, 4096) else {
            panic!("a stream expected");
        };
        assert_eq!((s.msgs_per_s, s.bytes_per_s), (2000, 2000 * 4096));
        assert_eq!((s.receiver_cpu_pct, s.sender_cpu_pct), (50.0, 100.0));
        assert_eq!(s.receiver_kernel_pct, 10.0);
        assert!(s.capped);
        assert!(matches!(
            parse(r#"{"skipped": "No module named 'zmq'"}"#),
            Output::Skipped(why) if why.contains("zmq")
        ));
        assert!(matches!(parse(r#"{"error": "boom"}"#), Output::Error(e) if e == "boom"));
        let Output::Ok(gone) =
            parse(r#"{"ok": {"rtt_file": "/nonexistent/rtt.bin", "samples": 1}}"#)
        else {
            panic!("ok expected");
        };
        assert!(from_body(gone, 64).is_err_and(|e| e.contains("/nonexistent/rtt.bin")));
        assert_eq!(
            last_json_line("Traceback\n{\"a\": 1}\nnoise\n"),
            Some("{\"a\": 1}")
        );
    }

    #[test]
    fn a_filter_selects_the_rows_it_names_or_all() {
        assert_eq!(selected(None), ROWS.to_vec());
        assert_eq!(selected(Some(&["pipe".to_string()])), ROWS.to_vec());
        let named = ["pipe".to_string(), "py-zmq-ipc".to_string()];
        assert_eq!(selected(Some(&named)), ["py-zmq-ipc"]);
    }

    #[test]
    fn a_missing_module_is_a_reason_with_the_way_to_install_it() {
        let mut run = PythonRun::new(Path::new("/venv/bin/python"));
        run.version = Some("3.11.7".into());
        run.modules.insert(
            "zmq".into(),
            Module {
                version: None,
                missing: Some("ModuleNotFoundError: No module named 'zmq'".into()),
                install: Some("pip install pyzmq".into()),
            },
        );
        let rows = [ProbeRow {
            name: ZMQ_ROW.into(),
            module: "zmq".into(),
            uses: "PAIR".into(),
        }];
        let why = run.missing(ZMQ_ROW, &rows).expect("missing");
        assert!(
            why.starts_with("pyzmq does not import in /venv/bin/python (Python 3.11.7)"),
            "{why}"
        );
        assert!(
            why.ends_with("to measure this row: pip install pyzmq"),
            "{why}"
        );
        assert_eq!(run.missing(QUEUE_ROW, &rows), None);
    }

    #[test]
    fn a_missing_interpreter_says_what_to_do() {
        let driver = Driver::new(PathBuf::from("/nonexistent/python3")).expect("temp dir");
        let err = driver
            .probe()
            .expect_err("no interpreter there")
            .to_string();
        assert!(err.contains("/nonexistent/python3"), "{err}");
        assert!(
            err.contains("cannot run it") && err.contains(PYTHON_ENV),
            "{err}"
        );
    }

    /// The interpreter's probe, or `None` (the test is skipped, saying why) when there is no
    /// interpreter, except under `CI=true`, where that fails the test.
    fn probe_for_tests() -> Option<(Driver, Probe)> {
        let driver = Driver::new(interpreter()).expect("temp dir");
        match driver.probe() {
            Ok(probe) => Some((driver, probe)),
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but {why}"
                );
                println!("skipped: {why}");
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    #[test]
    fn the_driver_has_the_rows_of_this_module_in_the_same_order() {
        let Some((_driver, probe)) = probe_for_tests() else {
            return;
        };
        let names: Vec<&str> = probe.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ROWS);
        assert!(probe.python.starts_with('3'), "{probe:?}");
        for row in &probe.rows {
            assert!(probe.modules.contains_key(&row.module), "{probe:?}");
            assert!(!row.uses.is_empty(), "{row:?}");
        }
        let stdlib = &probe.modules["multiprocessing"];
        assert!(
            stdlib.version.is_some() && stdlib.missing.is_none(),
            "{stdlib:?}"
        );
    }

    #[test]
    fn a_driver_error_names_what_failed() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some((driver, _)) = probe_for_tests() else {
            return;
        };
        let cpu = crate::process::allowed_cpus().expect("affinity")[0];
        let pinning = Pinning {
            parent_cpu: cpu,
            child_cpu: cpu,
        };
        let budget = crate::Budgets::QUICK.latency;
        let err = driver
            .measure("py-carrier-pigeon", Pattern::RoundTrip, 64, budget, pinning)
            .expect_err("no such row");
        let text = err.to_string();
        assert!(
            text.contains("unknown mechanism 'py-carrier-pigeon'") && text.contains("py-mp-pipe"),
            "{text}"
        );
        // A CPU the lab may not use: the child cannot pin itself, and the parent says so.
        let pinning = Pinning {
            parent_cpu: cpu,
            child_cpu: rustix::thread::CpuSet::MAX_CPU - 1,
        };
        let err = driver
            .measure(QUEUE_ROW, Pattern::Stream, 64, budget, pinning)
            .expect_err("the child cannot pin itself");
        let text = err.to_string();
        assert!(
            text.contains("the child failed: pinning the child to CPU"),
            "{text}"
        );
    }
}
