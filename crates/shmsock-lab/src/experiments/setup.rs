//! Setup cost: what one connection costs from nothing to a first answered message and back to
//! nothing (the Comparison says the kernel is "involved only for setup/teardown" of shared
//! memory; this is that setup, measured).
//!
//! ```text
//! parent (connector, CPU A)                  server (forked, CPU B)
//! ------                                     ------
//!                                            bind; ready = port + 1
//! wait for ready
//! per sample: t0                             loop:
//!   connect ------------------------------->   accept
//!   send 64 B ----------------------------->   recv 64 B
//!   recv 64 B <-----------------------------   send it back
//!   close; t1 = now; record t1 - t0            close; stop after the stop message
//! ```
//!
//! Paths: shmsock's `shm://` (two sealed memfd segments, one per direction, handed over a Unix
//! socket), `unix://` and `tcp://` (a ZMTP handshake over a socket), and the plain sockets
//! underneath (`unix-stream`: a Unix stream socket, `tcp`: loopback TCP with `TCP_NODELAY`),
//! each with its library's defaults. One connection at a time; the server accepts, answers and
//! closes before the next `connect`. The connector times the whole cycle, `close` included, so
//! the table is what a program that connects per request pays.
//!
//! `shm://` is also taken apart ([`syscalls`]): the system calls that create, seal, hand over
//! and map one of its segments, timed one by one in this process, so the table can say how much
//! of a connection's time is memory setup and how much is the handshake's messages and the
//! wake-ups of the server.

pub mod syscalls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use shmsock::{Conn, Listener};

use super::{
    get_seq, port_of, publish_bound, put_seq, wait_bound, Budget, Window, SEQ_STOP, WATCHDOG_MARGIN,
};
use crate::error::LabError;
use crate::format::{bar_verdict, fmt_ns, fmt_ratio, fmt_size};
use crate::host::{HostInfo, Pinning};
use crate::mechanisms::shmsock::{lib, unique_endpoint};
use crate::process::{outcome, ChildStats, Children, Pause};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::stats::Percentiles;
use crate::table::Table;
use syscalls::StepRow;

/// Size of the first message (and its answer).
pub const SIZE: usize = 64;

/// The paths, in report order; [`BASELINE`] is the one the others are compared with.
pub const PATHS: [Path; 5] = [
    Path::Shm,
    Path::ShmsockUnix,
    Path::ShmsockTcp,
    Path::UnixStream,
    Path::Tcp,
];

/// The path every other is compared with: a plain Unix stream socket.
pub const BASELINE: &str = "unix-stream";

/// Most connections timed per path (fewer when the time budget runs out first).
const MAX_SAMPLES: u64 = 5_000;
/// Untimed connections before measuring.
const WARMUP: u64 = 50;
/// Slowest time the histogram keeps exactly (longer samples are clamped).
const MAX_NS: u64 = 10_000_000_000;
/// How long the parent waits for the server to bind, and for a reply.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's port once it is bound ([`publish_bound`]: 0 until then, 1 for paths without a port).
const READY_OFFSET: usize = 0;
/// Non-zero once the server failed.
const FAILED_OFFSET: usize = CACHE_LINE_BYTES;
const REGION_BYTES: usize = 2 * CACHE_LINE_BYTES;

/// One way of connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// shmsock `shm://`.
    Shm,
    /// shmsock `unix://` (ZMTP over a Unix stream socket).
    ShmsockUnix,
    /// shmsock `tcp://` over loopback (ZMTP).
    ShmsockTcp,
    /// A plain Unix stream socket (std).
    UnixStream,
    /// Plain loopback TCP with `TCP_NODELAY` (std).
    Tcp,
}

impl Path {
    /// The row's name.
    pub fn name(self) -> &'static str {
        match self {
            Path::Shm => "shmsock shm://",
            Path::ShmsockUnix => "shmsock unix://",
            Path::ShmsockTcp => "shmsock tcp://",
            Path::UnixStream => BASELINE,
            Path::Tcp => "tcp",
        }
    }
}

/// Connect + first message answered + close, timed by the connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupRow {
    /// [`Path::name`].
    pub path: String,
    /// Size of the first message and its answer, bytes.
    pub size: usize,
    /// The cycle's times (`min_ns`, `p50_ns`, ... in the JSON).
    #[serde(flatten)]
    pub cycle: Percentiles,
    /// Connections timed.
    pub samples: u64,
    /// `p50_ns` / the p50 of [`BASELINE`] in the same run.
    #[serde(default)]
    pub vs_unix_stream_p50: Option<f64>,
}

/// What the setup experiment measured: the cycles, and `shm://`'s system calls one by one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupRows {
    /// One row per path.
    pub connections: Vec<SetupRow>,
    /// The system calls of one `shm://` segment, each timed on its own.
    pub shm_steps: Vec<StepRow>,
}

/// Where the parent connects: an endpoint for shmsock, a path or a port for the plain sockets.
struct Ends {
    shm: String,
    shmsock_unix: PathBuf,
    unix: PathBuf,
}

impl Ends {
    fn new() -> Self {
        let socket = |what: &str| {
            std::env::temp_dir().join(format!(
                "shmsock-lab-setup-{what}-{}-{}.sock",
                std::process::id(),
                unique_endpoint().trim_start_matches("shm://")
            ))
        };
        Self {
            shm: unique_endpoint(),
            shmsock_unix: socket("zmtp"),
            unix: socket("plain"),
        }
    }
}

impl Drop for Ends {
    fn drop(&mut self) {
        // The server's listeners are gone with it; a socket file stays behind unless removed.
        for path in [&self.shmsock_unix, &self.unix] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Measures one path: forks the server, then connects, asks, and closes, one connection at a
/// time, for `budget` (at most [`MAX_SAMPLES`] connections).
pub(crate) fn measure(path: Path, budget: Budget, pinning: Pinning) -> Result<SetupRow, LabError> {
    let ends = Ends::new();
    let control = SharedRegion::new(REGION_BYTES)?;
    let watchdog = budget.watchdog() + READY_TIMEOUT + WATCHDOG_MARGIN;
    let mut children = Children::new();
    children.fork("server", pinning.child_cpu, watchdog, || {
        let result = serve(path, &ends, &control);
        if result.is_err() {
            // Release: pairs with the parent's Acquire load in `failed`.
            control
                .atomic_u64(FAILED_OFFSET)
                .store(1, Ordering::Release);
        }
        result
    })?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_NS, 3).map_err(|e| LabError::Integrity {
            detail: format!("creating the setup histogram: {e}"),
        })?;
    let result = connect_repeatedly(path, &ends, budget, &control, &mut hist);
    if result.is_err() {
        children.kill_all();
    }
    let (samples, _) = outcome("connector", result, children.reap(READY_TIMEOUT))?;
    Ok(SetupRow {
        path: path.name().to_owned(),
        size: SIZE,
        cycle: Percentiles::from_histogram(&hist),
        samples,
        vs_unix_stream_p50: None,
    })
}

/// The parent: waits for the server, then times connect + first message + close.
fn connect_repeatedly(
    path: Path,
    ends: &Ends,
    budget: Budget,
    control: &SharedRegion,
    hist: &mut Histogram<u64>,
) -> Result<u64, LabError> {
    let failed = || control.atomic_u64(FAILED_OFFSET).load(Ordering::Acquire) != 0;
    let port = wait_bound(
        control,
        READY_OFFSET,
        "waiting for the server to bind",
        Pause::Sleep(Duration::from_micros(200)),
        || failed().then_some("the server failed before binding"),
    )?;
    let mut msg = [0u8; SIZE];
    let mut reply = [0u8; SIZE];
    let mut seq = 0u64;
    let mut cycle = |seq: u64| -> Result<u64, LabError> {
        put_seq(&mut msg, seq);
        let start = Instant::now();
        ask(path, ends, port, &msg, &mut reply)?;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if reply != msg {
            return Err(LabError::Integrity {
                detail: format!(
                    "{}: the answer to message {seq} differs from the message",
                    path.name()
                ),
            });
        }
        Ok(ns)
    };
    let warmup_end = Instant::now() + budget.warmup_time;
    while seq < WARMUP && Instant::now() < warmup_end {
        seq += 1;
        cycle(seq)?;
    }
    let end = Instant::now() + budget.max_time;
    let mut samples = 0;
    while samples < MAX_SAMPLES.min(budget.iters) && (samples < 10 || Instant::now() < end) {
        seq += 1;
        hist.saturating_record(cycle(seq)?.clamp(1, MAX_NS));
        samples += 1;
    }
    cycle(SEQ_STOP)?;
    Ok(samples)
}

/// One timed cycle: connect, send `msg`, receive its answer into `reply`, close.
fn ask(
    path: Path,
    ends: &Ends,
    port: u16,
    msg: &[u8; SIZE],
    reply: &mut [u8; SIZE],
) -> Result<(), LabError> {
    let io = LabError::os;
    match path {
        Path::Shm | Path::ShmsockUnix | Path::ShmsockTcp => {
            let endpoint = shmsock_endpoint(path, ends, port);
            let mut conn = Conn::connect(&endpoint).map_err(lib("connect"))?;
            conn.send(msg).map_err(lib("send"))?;
            let len = conn.recv(reply).map_err(lib("recv"))?;
            if len != SIZE {
                return Err(LabError::Integrity {
                    detail: format!(
                        "{}: a {len}-byte answer to a {SIZE}-byte message",
                        path.name()
                    ),
                });
            }
            conn.close();
        }
        Path::UnixStream => {
            let mut stream = UnixStream::connect(&ends.unix).map_err(io("connecting"))?;
            stream.write_all(msg).map_err(io("sending"))?;
            stream.read_exact(reply).map_err(io("receiving"))?;
        }
        Path::Tcp => {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(io("connecting"))?;
            stream
                .set_nodelay(true)
                .map_err(io("setting TCP_NODELAY"))?;
            stream.write_all(msg).map_err(io("sending"))?;
            stream.read_exact(reply).map_err(io("receiving"))?;
        }
    }
    Ok(())
}

/// The shmsock endpoint of `path` (`port` for `tcp://`).
fn shmsock_endpoint(path: Path, ends: &Ends, port: u16) -> String {
    match path {
        Path::ShmsockUnix => format!("unix://{}", ends.shmsock_unix.display()),
        Path::ShmsockTcp => format!("tcp://127.0.0.1:{port}"),
        _ => ends.shm.clone(),
    }
}

/// The listening side of a path.
enum Server {
    Shmsock(Box<Listener>),
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// The child: binds, says so, then answers one connection at a time until the stop message.
fn serve(path: Path, ends: &Ends, control: &SharedRegion) -> Result<ChildStats, LabError> {
    let io = LabError::os;
    let (server, port) = match path {
        Path::Shm | Path::ShmsockUnix => {
            let endpoint = shmsock_endpoint(path, ends, 0);
            let listener = Listener::bind(&endpoint).map_err(lib("bind"))?;
            (Server::Shmsock(Box::new(listener)), None)
        }
        Path::ShmsockTcp => {
            let listener = Listener::bind("tcp://127.0.0.1:0").map_err(lib("bind"))?;
            let port = port_of(listener.endpoint())?;
            (Server::Shmsock(Box::new(listener)), Some(port))
        }
        Path::UnixStream => {
            let listener = UnixListener::bind(&ends.unix).map_err(io("binding a Unix socket"))?;
            (Server::Unix(listener), None)
        }
        Path::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a TCP socket"))?;
            let port = listener
                .local_addr()
                .map_err(io("reading the port"))?
                .port();
            (Server::Tcp(listener), Some(port))
        }
    };
    publish_bound(control, READY_OFFSET, port);
    let window = Window::start();
    let mut buf = [0u8; SIZE];
    loop {
        match &server {
            Server::Shmsock(listener) => {
                let mut conn = listener.accept().map_err(lib("accept"))?;
                let len = conn.recv(&mut buf).map_err(lib("recv"))?;
                conn.send(&buf[..len]).map_err(lib("send"))?;
            }
            Server::Unix(listener) => {
                let (mut stream, _) = listener.accept().map_err(io("accepting"))?;
                stream.read_exact(&mut buf).map_err(io("receiving"))?;
                stream.write_all(&buf).map_err(io("answering"))?;
            }
            Server::Tcp(listener) => {
                let (mut stream, _) = listener.accept().map_err(io("accepting"))?;
                stream
                    .set_nodelay(true)
                    .map_err(io("setting TCP_NODELAY"))?;
                stream.read_exact(&mut buf).map_err(io("receiving"))?;
                stream.write_all(&buf).map_err(io("answering"))?;
            }
        }
        if get_seq(&buf) == Some(SEQ_STOP) {
            return Ok(window.stop());
        }
    }
}

/// Fills in every row's ratio to [`BASELINE`] in the same run.
pub(crate) fn compare_with_baseline(rows: &mut SetupRows) {
    let Some(base) = rows
        .connections
        .iter()
        .find(|r| r.path == BASELINE)
        .map(|r| r.cycle.p50_ns)
    else {
        return;
    };
    for row in &mut rows.connections {
        row.vs_unix_stream_p50 = (base > 0).then(|| row.cycle.p50_ns as f64 / base as f64);
    }
}

/// The setup bar of the `shm://` transport (its design target): a cycle's p50 within this
/// factor of a plain Unix stream socket's.
pub(crate) const SHM_BAR_VS_UNIX: f64 = 2.0;

/// The note that judges [`SHM_BAR_VS_UNIX`], if both paths were measured.
fn bar_note(rows: &[SetupRow]) -> Option<String> {
    let x = rows
        .iter()
        .find(|r| r.path == Path::Shm.name())?
        .vs_unix_stream_p50?;
    Some(format!(
        "shm://: a cycle's p50 is {x:.2}x a Unix stream socket's (bar: <= {SHM_BAR_VS_UNIX:.1}x; \
         {}).",
        bar_verdict(x <= SHM_BAR_VS_UNIX)
    ))
}

/// The connections table, with the `shm://` system calls under it.
pub(crate) fn table(rows: &SetupRows, host: &HostInfo) -> Option<Table> {
    let first = rows.connections.first()?;
    let cells = rows
        .connections
        .iter()
        .map(|r| {
            let mut cells = vec![r.path.clone()];
            cells.extend(
                [
                    r.cycle.min_ns,
                    r.cycle.p50_ns,
                    r.cycle.p99_ns,
                    r.cycle.max_ns,
                ]
                .map(fmt_ns),
            );
            cells.extend([r.samples.to_string(), fmt_ratio(r.vs_unix_stream_p50, 2)]);
            cells
        })
        .collect();
    let p = host.pinning;
    let mut notes = vec![format!(
        "One cycle = connect, send {} and receive it back, close; timed by the connector \
         (CPU {}), the server on CPU {} accepting one connection at a time. Library defaults \
         for shmsock; plain sockets from std, TCP with TCP_NODELAY.",
        fmt_size(first.size),
        p.parent_cpu,
        p.child_cpu
    )];
    notes.extend(bar_note(&rows.connections));
    if let Some(note) = syscalls::summary(&rows.shm_steps, &rows.connections) {
        notes.push(note);
    }
    let mut table = Table::new(
        format!(
            "Setup: connect + first {} message answered + close",
            fmt_size(first.size)
        ),
        vec![
            "path",
            "min",
            "p50",
            "p99",
            "max",
            "samples",
            "vs unix-stream p50",
        ],
        cells,
    );
    table.notes = notes;
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Budget {
        Budget {
            warmup_iters: 5,
            warmup_time: Duration::from_millis(20),
            iters: 20,
            max_time: Duration::from_millis(50),
        }
    }

    #[test]
    fn the_setup_bar_is_judged_on_the_shm_row() {
        let cycle = |p50_ns| Percentiles::at(p50_ns, [1, 1, 1]);
        let row = |path: &str, p50_ns| SetupRow {
            path: path.into(),
            size: 64,
            cycle: cycle(p50_ns),
            samples: 100,
            vs_unix_stream_p50: None,
        };
        let mut rows = SetupRows {
            connections: vec![row(Path::Shm.name(), 119_600), row(BASELINE, 62_600)],
            ..SetupRows::default()
        };
        assert_eq!(bar_note(&rows.connections), None, "no ratio yet");
        compare_with_baseline(&mut rows);
        assert_eq!(
            bar_note(&rows.connections).as_deref(),
            Some("shm://: a cycle's p50 is 1.91x a Unix stream socket's (bar: <= 2.0x; met).")
        );
        rows.connections[0].cycle = cycle(130_000);
        compare_with_baseline(&mut rows);
        assert!(bar_note(&rows.connections)
            .unwrap()
            .ends_with("2.08x a Unix stream socket's (bar: <= 2.0x; NOT met in this run)."));
    }

    #[test]
    fn every_path_connects_answers_and_closes() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("affinity");
        let _pinned = crate::process::AffinityGuard::pin(pinning.parent_cpu).expect("pin");
        let mut rows = SetupRows::default();
        for path in PATHS {
            let row =
                measure(path, quick(), pinning).unwrap_or_else(|e| panic!("{}: {e}", path.name()));
            assert!(row.samples >= 10, "{}: {} samples", row.path, row.samples);
            assert!(
                row.cycle.min_ns > 0 && row.cycle.min_ns <= row.cycle.p50_ns,
                "{row:?}"
            );
            rows.connections.push(row);
        }
        compare_with_baseline(&mut rows);
        let base = rows
            .connections
            .iter()
            .find(|r| r.path == BASELINE)
            .unwrap();
        assert_eq!(base.vs_unix_stream_p50, Some(1.0));
        assert!(rows
            .connections
            .iter()
            .all(|r| r.vs_unix_stream_p50.is_some()));
        let prefix = "shmsock-lab-setup-";
        let pid = format!("-{}-", std::process::id());
        let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(prefix) && name.contains(&pid))
            .collect();
        assert!(left.is_empty(), "socket files left behind: {left:?}");
    }
}
