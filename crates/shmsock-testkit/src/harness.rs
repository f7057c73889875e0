//! The parent side of the harness: a private rendezvous directory, unique names, child
//! processes with a kill-and-reap guard, and bounded versions of the blocking calls.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use shmsock::{Conn, Listener, Options};

/// Environment variable naming the role a child runs.
pub const ROLE_ENV: &str = "SHMSOCK_TEST_ROLE";
/// Environment variable carrying the endpoint a child uses.
pub const ENDPOINT_ENV: &str = "SHMSOCK_TEST_ENDPOINT";
/// The library's rendezvous-directory override.
pub const RUNTIME_DIR_ENV: &str = "SHMSOCK_RUNTIME_DIR";
/// Prefix of the protocol lines children print on stdout (libtest prints there too).
pub const REPORT_MARK: &str = "@@peer ";

/// Longest any single step of a test may take (a child starting, a connection, a message)
/// before the test fails instead of hanging.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How soon a peer's death must be reported (the design says "within ~100 ms"; the library
/// checks every `PEER_CHECK_INTERVAL`).
pub const PEER_DEATH_BOUND: Duration = Duration::from_millis(100);

static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();
static NEXT_NAME: AtomicU32 = AtomicU32::new(0);
/// Tests that assert a latency bound take it shared; CPU-heavy tests take it exclusively,
/// so a million-message stream on a 2-core machine never starves a timing assertion.
static TIMING: RwLock<()> = RwLock::new(());

/// Creates this process's private rendezvous directory and points the library at it.
/// Also removes directories left by earlier runs whose process is gone.
pub fn setup() -> &'static Path {
    RUNTIME_DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        shmsock::test_support::remove_dirs_of_dead_runs(&tmp, "shmsock-it-");
        let dir = tmp.join(format!("shmsock-it-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .expect("creating the private rendezvous directory");
        // Tests share this process; the variable is set once, before any test reads it
        // through the library (std serialises its environment accesses).
        std::env::set_var(RUNTIME_DIR_ENV, &dir);
        dir
    })
}

/// A unique `shm://` endpoint for one test.
pub fn endpoint(tag: &str) -> String {
    setup();
    format!(
        "shm://{tag}-{}-{}",
        std::process::id(),
        NEXT_NAME.fetch_add(1, Ordering::Relaxed)
    )
}

/// Shared hold on the timing lock, for a test that asserts a latency bound (CPU-heavy tests
/// wait for it to end).
pub fn timing_test() -> RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(PoisonError::into_inner)
}

/// Exclusive hold on the timing lock, for a CPU-heavy test (no timing assertion runs
/// meanwhile).
pub fn cpu_heavy_test() -> RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `endpoint` with `options`.
pub fn bind(endpoint: &str, options: Options) -> Listener {
    setup();
    Listener::bind_with(endpoint, options).unwrap_or_else(|e| panic!("binding {endpoint}: {e}"))
}

/// `listener.accept()`, failing the test if no peer arrives within [`STEP_TIMEOUT`].
pub fn accept(listener: &Listener) -> shmsock::Result<Conn> {
    match listener.accept_timeout(STEP_TIMEOUT) {
        Err(shmsock::Error::TimedOut) => panic!(
            "no peer came to {} within {STEP_TIMEOUT:?}",
            listener.endpoint()
        ),
        accepted => accepted,
    }
}

/// What became of a peer's handshake with `listener`: `Ok` if `accept` returned it, or
/// the warnings the listener logged when it dropped it (a listener never returns another
/// peer's failed handshake as an error). `peer_done` says when the peer has seen the
/// listener's verdict (it runs on another thread or process): once it has and no
/// connection came, the peer was dropped.
pub fn accept_or_dropped(
    listener: &Listener,
    peer_done: impl Fn() -> bool,
) -> Result<Conn, Vec<String>> {
    let (accepted, lines) = crate::logs::capture_logs(|| {
        let started = Instant::now();
        loop {
            match listener.accept_timeout(Duration::from_millis(20)) {
                Ok(conn) => return Some(conn),
                Err(shmsock::Error::TimedOut) if peer_done() => return None,
                Err(shmsock::Error::TimedOut) => assert!(
                    started.elapsed() < STEP_TIMEOUT,
                    "no verdict on a peer of {} within {STEP_TIMEOUT:?}",
                    listener.endpoint()
                ),
                Err(e) => panic!(
                    "accept on {} failed ({e}): another peer's handshake must never fail it",
                    listener.endpoint()
                ),
            }
        }
    });
    accepted.ok_or_else(|| {
        lines
            .into_iter()
            .filter(|l| l.starts_with("WARN"))
            .collect()
    })
}

/// Turns `listener`'s accept until it logs a warning that mentions every one of `words`
/// (it dropped a peer's handshake) and returns that line. Panics if it accepts a
/// connection instead, if `accept` fails, or after [`STEP_TIMEOUT`].
pub fn expect_dropped(listener: &Listener, words: &[&str]) -> String {
    expect_dropped_times(listener, words, 1).remove(0)
}

/// [`expect_dropped`] for `times` peers: returns once that many warnings with every one of
/// `words` were logged.
pub fn expect_dropped_times(listener: &Listener, words: &[&str], times: usize) -> Vec<String> {
    let (lines, _) = crate::logs::capture_logs(|| {
        let started = Instant::now();
        loop {
            match listener.accept_timeout(Duration::from_millis(20)) {
                Ok(conn) => panic!(
                    "{}: accepted {conn:?}, expected a peer dropped with {words:?}",
                    listener.endpoint()
                ),
                Err(shmsock::Error::TimedOut) => {}
                Err(e) => panic!(
                    "accept on {} failed ({e}): another peer's handshake must never fail it",
                    listener.endpoint()
                ),
            }
            let logged = crate::logs::captured_so_far();
            let found: Vec<String> = logged
                .iter()
                .filter(|l| l.starts_with("WARN") && words.iter().all(|w| l.contains(w)))
                .cloned()
                .collect();
            if found.len() >= times {
                return found;
            }
            assert!(
                started.elapsed() < STEP_TIMEOUT,
                "{}: not {times} warnings with {words:?} within {STEP_TIMEOUT:?}; logged: \
                 {logged:#?}",
                listener.endpoint()
            );
        }
    });
    lines
}

/// What a listener made of the peers that came within a time limit (see [`verdict_within`]).
/// Not boxed: tests match on the connection directly.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Verdict {
    /// `accept` returned this connection.
    Accepted(Conn),
    /// The listener dropped a peer's handshake and logged this warning.
    Dropped(String),
    /// `accept` itself failed (our own listening socket: out of fds, for instance).
    Failed(shmsock::Error),
    /// Neither happened.
    Nothing,
}

/// Turns `listener`'s accept in 1 ms slices for at most `limit`, until it accepts a
/// connection, logs a dropped handshake or fails; returns which and when it was seen
/// (within a slice of when it happened).
pub fn verdict_within(listener: &Listener, limit: Duration) -> (Verdict, Instant) {
    let ((verdict, at), _) = crate::logs::capture_logs(|| {
        let started = Instant::now();
        loop {
            match listener.accept_timeout(Duration::from_millis(1)) {
                Ok(conn) => return (Verdict::Accepted(conn), Instant::now()),
                Err(shmsock::Error::TimedOut) => {}
                Err(e) => return (Verdict::Failed(e), Instant::now()),
            }
            let now = Instant::now();
            if let Some(line) = crate::logs::captured_so_far()
                .into_iter()
                .find(|l| l.starts_with("WARN") && l.contains("peer dropped"))
            {
                return (Verdict::Dropped(line), now);
            }
            if now.duration_since(started) >= limit {
                return (Verdict::Nothing, now);
            }
        }
    });
    (verdict, at)
}

/// A child process running one role; killed and reaped when dropped.
pub struct Peer {
    child: Child,
    role: String,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// Spawns this test binary as a child running `role` against `endpoint`.
    pub fn spawn(role: &str, endpoint: &str, env: &[(&str, &str)]) -> Peer {
        let dir = setup();
        let exe = std::env::current_exe().expect("path of the test binary");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            "peer_main",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(ROLE_ENV, role)
        .env(ENDPOINT_ENV, endpoint)
        .env(RUNTIME_DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning peer {role}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find(REPORT_MARK) {
                    if tx.send(line[i + REPORT_MARK.len()..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        Peer {
            child,
            role: role.to_owned(),
            lines,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).expect("child pids are positive")
    }

    /// Waits for the child's next report, which must start with `prefix`; returns the rest.
    pub fn expect(&mut self, prefix: &str) -> String {
        match self.lines.recv_timeout(STEP_TIMEOUT) {
            Ok(line) => match line.strip_prefix(prefix) {
                Some(rest) => rest.trim().to_owned(),
                None => panic!(
                    "peer {} reported {line:?} while we waited for {prefix:?}",
                    self.role
                ),
            },
            Err(RecvTimeoutError::Timeout) => panic!(
                "peer {} did not report {prefix:?} within {STEP_TIMEOUT:?}",
                self.role
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait();
                panic!(
                    "peer {} exited ({status}) before reporting {prefix:?}",
                    self.role
                )
            }
        }
    }

    /// The child's next report if one comes within `limit` (`None` if none came, or the
    /// child exited), for a parent that polls what a long-running child says.
    pub fn next_report(&mut self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Sends SIGKILL; returns the instant just before the signal was sent.
    pub fn kill(&self) -> Instant {
        kill_pid(self.pid())
    }

    /// Waits (at most [`STEP_TIMEOUT`]) for the child to exit and reaps it.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match self.child.try_wait().expect("waitpid") {
                Some(status) => return status,
                None if Instant::now() >= deadline => {
                    panic!("peer {} did not exit within {STEP_TIMEOUT:?}", self.role)
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// Waits for the child to exit and checks that it succeeded.
    pub fn wait_success(&mut self) {
        let status = self.wait();
        assert!(status.success(), "peer {} failed: {status}", self.role);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // std does not signal a child it has already reaped, so this is safe after `wait`.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGKILL to `pid` (a child that has not been reaped yet); returns the instant just
/// before the signal was sent.
pub fn kill_pid(pid: Pid) -> Instant {
    let t = Instant::now();
    rustix::process::kill_process(pid, Signal::KILL).expect("kill(SIGKILL)");
    t
}

/// Kills `pid` after `delay` on another thread; the handle yields the kill instant.
pub fn kill_after(pid: Pid, delay: Duration) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        kill_pid(pid)
    })
}

/// Number of open fds of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("listing /proc/self/fd")
        .count()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmSize`...) of process `pid` (`"self"`
/// for us), in bytes; 0 if the field is missing (a zombie has no `VmRSS`).
pub fn status_bytes(pid: &str, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Removes a directory tree when dropped.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
