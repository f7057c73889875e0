//! Other programs run by the tests: the `shmsock` binary (the CLI's tests), python3 with
//! pyzmq (the interop tests). A child is always killed and reaped by a drop guard, its
//! output is read on other threads (so a full pipe never blocks it), and every wait is
//! bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a test waits for a child's line or exit before it fails instead of hanging.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// `bin` (a `CARGO_BIN_EXE_…` path) with its rendezvous directory set to `runtime_dir`.
pub fn command(bin: &str, runtime_dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("SHMSOCK_RUNTIME_DIR", runtime_dir);
    cmd
}

/// A finished command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Checks that a finished command succeeded (the failure shows its stderr) and returns its
/// stdout as text.
#[track_caller]
pub fn assert_success(out: &Output) -> String {
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks that a finished command succeeded and printed exactly `expected` on stdout.
#[track_caller]
pub fn assert_printed(out: &Output, expected: &[u8]) {
    assert_success(out);
    assert!(
        out.stdout == expected,
        "printed {:?}, expected {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(expected)
    );
}

/// Checks that a finished command failed with exit code 1 and that its stderr mentions
/// every one of `words` ([`crate::assert_mentions`]).
#[track_caller]
pub fn assert_fails_saying(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    crate::assert_mentions(&err, words);
}

/// Spawns `cmd` with stdin, stdout and stderr piped.
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// The lines read from `from` on another thread, as they come.
pub fn lines(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Sends `signal` (`"KILL"`, `"TERM"`, `"INT"`) to process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> std::io::Result<ExitStatus> {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
}

/// A child whose whole output is collected on another thread; killed (SIGKILL) if it is
/// still running when dropped, or when [`Running::output`] waited [`CHILD_TIMEOUT`].
pub struct Running {
    pid: u32,
    output: mpsc::Receiver<std::io::Result<Output>>,
    done: bool,
}

impl Running {
    /// Takes over `child` (what it has piped is collected; take its stdin first if needed).
    pub fn new(child: Child) -> Running {
        let pid = child.id();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Running {
            pid,
            output,
            done: false,
        }
    }

    /// Spawns `cmd` with everything piped; returns it with its stdin.
    pub fn spawn_with_stdin(cmd: &mut Command) -> (Running, ChildStdin) {
        let mut child = spawn_piped(cmd);
        let stdin = child.stdin.take().expect("piped stdin");
        (Running::new(child), stdin)
    }

    /// Waits for the exit and returns the output.
    pub fn output(mut self) -> Output {
        match self.output.recv_timeout(CHILD_TIMEOUT) {
            Ok(out) => {
                self.done = true;
                out.expect("child output")
            }
            Err(_) => {
                self.kill("KILL");
                panic!("the child did not exit within {CHILD_TIMEOUT:?}");
            }
        }
    }

    /// Sends `signal` to the child.
    pub fn kill(&self, signal: &str) {
        let _ = self::signal(self.pid, signal);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Not reaped yet (its output thread is still waiting for it): kill it.
        if !self.done && self.output.try_recv().is_err() {
            self.kill("KILL");
        }
    }
}

/// A child that talks in lines: its stdout (or stderr) arrives line by line, its stdin
/// takes lines; killed and reaped on drop.
pub struct LinePeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every line received so far, for failure messages and [`LinePeer::finish`].
    seen: String,
    other: Option<JoinHandle<Vec<u8>>>,
}

/// Which output of a [`LinePeer`] arrives line by line (the other one is collected whole).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LinesOf {
    Stdout,
    Stderr,
}

impl LinePeer {
    /// Spawns `cmd` with everything piped; `which` output arrives in lines.
    pub fn spawn(cmd: &mut Command, which: LinesOf) -> LinePeer {
        let mut child = spawn_piped(cmd);
        let (by_line, mut whole): (Box<dyn Read + Send>, Box<dyn Read + Send>) = match which {
            LinesOf::Stdout => (
                Box::new(child.stdout.take().expect("piped stdout")),
                Box::new(child.stderr.take().expect("piped stderr")),
            ),
            LinesOf::Stderr => (
                Box::new(child.stderr.take().expect("piped stderr")),
                Box::new(child.stdout.take().expect("piped stdout")),
            ),
        };
        let other = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = whole.read_to_end(&mut bytes);
            bytes
        });
        LinePeer {
            stdin: child.stdin.take(),
            child,
            lines: lines(by_line),
            seen: String::new(),
            other: Some(other),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line, waiting at most `limit`; `None` if none came.
    pub fn next_line(&mut self, limit: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(limit).ok()?;
        self.seen.push_str(&line);
        self.seen.push('\n');
        Some(line)
    }

    /// The next line (within [`CHILD_TIMEOUT`]).
    #[track_caller]
    pub fn line(&mut self) -> String {
        self.next_line(CHILD_TIMEOUT)
            .unwrap_or_else(|| panic!("no line within {CHILD_TIMEOUT:?}; so far:\n{}", self.seen))
    }

    /// Waits for a line containing `needle` and returns it.
    #[track_caller]
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if line.contains(needle) => return line,
                Some(_) => {}
                None => panic!("no line with {needle:?}; so far:\n{}", self.seen),
            }
        }
    }

    /// Writes `bytes` to the child's stdin.
    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("writing to the child");
        stdin.flush().expect("flushing to the child");
    }

    /// Writes one line to the child's stdin.
    pub fn say(&mut self, line: &str) {
        self.write(format!("{line}\n").as_bytes());
    }

    /// Sends `signal` to the child; fails if kill(1) fails.
    pub fn signal(&self, signal: &str) {
        let status = self::signal(self.pid(), signal).expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Closes stdin, waits for the exit; returns the status, the output collected whole and
    /// every line.
    pub fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit; so far:\n{}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let whole = self
            .other
            .take()
            .map(|t| t.join().expect("the output thread"))
            .unwrap_or_default();
        while self.next_line(Duration::from_secs(5)).is_some() {}
        (status, whole, std::mem::take(&mut self.seen))
    }
}

impl Drop for LinePeer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether python3 can `import zmq`. Without it the interop tests are skipped (they print
/// why), except under `CI=true`, where a missing pyzmq fails the test.
pub fn pyzmq_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import zmq"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but python3 cannot import zmq (pip install pyzmq)"
        );
        println!("skipped: pyzmq not installed (pip install pyzmq)");
        eprintln!("skipped: pyzmq not installed (pip install pyzmq)");
    }
    ok
}

/// Whether python3 has pyzmq with CURVE support (`zmq.has('curve')`: its libzmq was built
/// with libsodium). Without it the CURVE interop tests are skipped (they print why), except
/// under `CI=true`, where it fails the test.
pub fn pyzmq_curve_available() -> bool {
    if !pyzmq_available() {
        return false;
    }
    let ok = Command::new("python3")
        .args([
            "-c",
            "import sys, zmq; sys.exit(0 if zmq.has('curve') else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but pyzmq has no CURVE support (its libzmq was built without libsodium)"
        );
        println!("skipped: pyzmq has no CURVE support");
        eprintln!("skipped: pyzmq has no CURVE support");
    }
    ok
}
