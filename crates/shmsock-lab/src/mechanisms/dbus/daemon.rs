//! The private bus of the `dbus` rows: a real `dbus-daemon`, started by the lab for one run.
//!
//! [`Bus::start`] makes a directory of its own in the temporary directory (mode 0700), writes
//! a configuration file into it, a session bus (`<type>session</type>`) listening on a Unix
//! socket in that directory (`unix:path=`), `EXTERNAL` authentication (the peer's uid, from
//! the socket), a policy that lets every connection own any name and send anything, and the
//! limits the stock session bus sets, then runs
//!
//! ```text
//! dbus-daemon --config-file=<dir>/bus.conf --print-address --nofork --nosyslog
//! ```
//!
//! and waits until it prints its address (it is listening then). Its log (stderr) goes to
//! `<dir>/daemon.log` and is quoted when something goes wrong. The daemon is not pinned: the
//! lab's thread is pinned when it starts it, so [`Bus::start`] widens the daemon's affinity to
//! every CPU the machine lets it use, and the scheduler puts it where it likes.
//!
//! Dropping the [`Bus`] stops the daemon (`SIGTERM`, then `SIGKILL` if it has not exited within
//! a second), reaps it and removes the directory; only the process that started it does (a
//! forked child that inherited the value leaves it alone). A lab killed by a signal cannot run
//! `Drop`: the kernel then sends the daemon `SIGTERM` ([`crate::process::spawn_helper`]).

use std::fs::File;
use std::io::{ErrorKind, Read as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{kill_process, Pid, Signal};
use rustix::thread::{sched_setaffinity, CpuSet};

use crate::error::LabError;
use crate::process::spawn_helper;

/// The program the lab runs, looked up in `PATH`.
pub const PROGRAM: &str = "dbus-daemon";

/// What to install when [`PROGRAM`] is missing.
pub const INSTALL_HINT: &str =
    "install it (Debian/Ubuntu: apt-get install dbus-daemon; Fedora: dbus-daemon)";

/// The stock session bus's memory limits (`max_incoming_bytes`, `max_outgoing_bytes`,
/// `max_message_size` in its `session.conf`: 1 GB, "essentially infinite"), which the private
/// bus copies.
pub const SESSION_LIMIT_BYTES: u64 = 1_000_000_000;

/// How long the daemon gets to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the daemon gets to exit after `SIGTERM` before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Lines of the daemon's log quoted in an error.
const LOG_LINES: usize = 12;

/// Tells the directories of the buses one process starts apart.
static NEXT_BUS: AtomicU32 = AtomicU32::new(0);

/// The full path of `program`: itself if it names a path (has a `/`), else the first
/// executable file of that name in `PATH`; otherwise why not, in words, with what to install.
pub fn find(program: &str) -> Result<PathBuf, String> {
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{program} is not an executable file; {INSTALL_HINT}"
            ))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
        .ok_or_else(|| format!("{program} not found in PATH; {INSTALL_HINT}"))
}

/// A running `dbus-daemon` on a private bus, stopped when dropped.
#[derive(Debug)]
pub struct Bus {
    child: Child,
    /// Where the daemon prints its address; kept open, so a later line never meets a closed
    /// pipe.
    stdout: ChildStdout,
    /// The process that started the daemon, the only one that stops it.
    owner: Pid,
    dir: PathBuf,
    address: String,
    max_outgoing_bytes: u64,
}

impl Bus {
    /// Starts `program` (a `dbus-daemon`) on a private bus whose daemon drops a signal for a
    /// receiver that has more than `max_outgoing_bytes` waiting in its queue; returns once it
    /// listens.
    pub fn start(program: &Path, max_outgoing_bytes: u64) -> Result<Bus, LabError> {
        let dir = private_dir()?;
        let started = Self::start_in(program, &dir, max_outgoing_bytes);
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    fn start_in(program: &Path, dir: &Path, max_outgoing_bytes: u64) -> Result<Bus, LabError> {
        let failed = |detail: String| LabError::Dbus {
            what: "starting the lab's dbus-daemon",
            detail,
        };
        let socket = dir.join("bus");
        let config = dir.join("bus.conf");
        let log_path = dir.join("daemon.log");
        let listen = format!("unix:path={}", address_escape(&socket.to_string_lossy()));
        std::fs::write(&config, config_text(&listen, max_outgoing_bytes))
            .map_err(|e| failed(format!("writing {}: {e}", config.display())))?;
        let log =
            File::create(&log_path).map_err(|e| failed(format!("creating its log file: {e}")))?;
        let mut command = Command::new(program);
        command
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address", "--nofork", "--nosyslog"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = spawn_helper(&mut command)
            .map_err(|e| failed(format!("running {}: {e}", program.display())))?;
        let Some(stdout) = child.stdout.take() else {
            stop(&mut child);
            return Err(failed("its stdout was not captured".into()));
        };
        let mut bus = Bus {
            owner: rustix::process::getpid(),
            child,
            stdout,
            dir: dir.to_path_buf(),
            address: String::new(),
            max_outgoing_bytes,
        };
        match bus.read_address() {
            Ok(address) => {
                bus.address = address;
                bus.float()?;
                Ok(bus)
            }
            // Dropping `bus` stops the daemon and removes the directory.
            Err(why) => Err(failed(format!("{why}{}", bus.log_tail()))),
        }
    }

    /// Reads the line the daemon prints once it listens: its address.
    fn read_address(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut printed = Vec::new();
        let mut chunk = [0u8; 256];
        while !printed.contains(&b'\n') {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("it printed no address within {START_TIMEOUT:?}"));
            }
            let timeout = Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.stdout, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for its address: {e}")),
            }
            match self.stdout.read(&mut chunk) {
                Ok(0) => {
                    let status = self
                        .child
                        .wait()
                        .map_or_else(|e| e.to_string(), |s| s.to_string());
                    return Err(format!("it exited before it listened ({status})"));
                }
                Ok(n) => printed.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading its address: {e}")),
            }
        }
        let line = String::from_utf8_lossy(&printed);
        let address = line.lines().next().unwrap_or_default().trim();
        if address.starts_with("unix:") {
            Ok(address.to_string())
        } else {
            Err(format!("it printed {address:?} instead of a unix: address"))
        }
    }

    /// Lets the daemon run on every CPU the machine allows (it inherited the lab thread's
    /// pinning); the kernel keeps only those of the lab's cgroup.
    fn float(&self) -> Result<(), LabError> {
        let mut every = CpuSet::new();
        (0..CpuSet::MAX_CPU).for_each(|cpu| every.set(cpu));
        sched_setaffinity(Some(self.pid()), &every).map_err(|e| LabError::Dbus {
            what: "letting the lab's dbus-daemon run on every CPU",
            detail: e.to_string(),
        })
    }

    /// The address clients connect to (`unix:path=...,guid=...`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Pid {
        // A child's id is a positive `pid_t`.
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX)).unwrap_or(Pid::INIT)
    }

    /// The bus's directory (configuration, socket, log).
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    /// The queue size past which the daemon drops signals for a receiver, in bytes.
    pub fn max_outgoing_bytes(&self) -> u64 {
        self.max_outgoing_bytes
    }

    /// The last lines of the daemon's log, as a sentence to append to an error (empty if the
    /// log is empty).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = &lines[lines.len().saturating_sub(LOG_LINES)..];
        format!("; its log says: {}", tail.join(" | "))
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if rustix::process::getpid() != self.owner {
            return;
        }
        stop(&mut self.child);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != ErrorKind::NotFound {
                eprintln!(
                    "lab: could not remove the D-Bus directory {}: {e}",
                    self.dir.display()
                );
            }
        }
    }
}

/// Stops `child` (`SIGTERM`, then `SIGKILL` after [`STOP_TIMEOUT`]) and reaps it.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::TERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A new directory of this process in the temporary directory, readable by its owner only.
fn private_dir() -> Result<PathBuf, LabError> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..100 {
        let n = NEXT_BUS.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("shmsock-lab-dbus-{pid}-{n}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            // Left by an earlier process with this pid: take the next number.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    Err(LabError::Dbus {
        what: "creating a directory for the lab's bus",
        detail: format!(
            "in {}: {}",
            base.display(),
            last.map_or_else(|| "no free name".into(), |e| e.to_string())
        ),
    })
}

/// The daemon's configuration: a session bus on `listen`, `EXTERNAL` authentication, a policy
/// that allows everything, and the stock session bus's limits except `max_outgoing_bytes`.
fn config_text(listen: &str, max_outgoing_bytes: u64) -> String {
    format!(
        "<busconfig>\n\
         \x20 <type>session</type>\n\
         \x20 <listen>{listen}</listen>\n\
         \x20 <auth>EXTERNAL</auth>\n\
         \x20 <policy context=\"default\">\n\
         \x20   <allow send_destination=\"*\" eavesdrop=\"true\"/>\n\
         \x20   <allow eavesdrop=\"true\"/>\n\
         \x20   <allow own=\"*\"/>\n\
         \x20 </policy>\n\
         \x20 <limit name=\"max_incoming_bytes\">{SESSION_LIMIT_BYTES}</limit>\n\
         \x20 <limit name=\"max_outgoing_bytes\">{max_outgoing_bytes}</limit>\n\
         \x20 <limit name=\"max_message_size\">{SESSION_LIMIT_BYTES}</limit>\n\
         </busconfig>\n",
        listen = xml_escape(listen),
    )
}

/// `value` escaped for a D-Bus address: bytes other than `[-0-9A-Za-z_/.\*]` become `%XX`.
fn address_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_/.\\*".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02x}"));
        }
    }
    out
}

/// `value` escaped for XML text.
fn xml_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_config_are_escaped() {
        assert_eq!(address_escape("/tmp/a b,c=d"), "/tmp/a%20b%2cc%3dd");
        assert_eq!(
            address_escape("/tmp/shmsock-lab_1.x"),
            "/tmp/shmsock-lab_1.x"
        );
        let text = config_text("unix:path=/tmp/a&b", 123);
        assert!(
            text.contains("<listen>unix:path=/tmp/a&amp;b</listen>"),
            "{text}"
        );
        assert!(text.contains("<type>session</type>"), "{text}");
        assert!(text.contains("<auth>EXTERNAL</auth>"), "{text}");
        assert!(
            text.contains("<limit name=\"max_outgoing_bytes\">123</limit>"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_program_names_the_package_to_install() {
        let err = find("dbus-daemon-that-does-not-exist").expect_err("missing");
        assert!(err.contains("not found in PATH"), "{err}");
        assert!(err.contains("apt-get install dbus-daemon"), "{err}");
        let err = find("/nonexistent/dbus-daemon").expect_err("missing");
        assert!(err.contains("not an executable file"), "{err}");
    }

    #[test]
    fn a_program_that_does_not_start_a_bus_is_reported_with_its_words_and_cleaned_up() {
        let _serial = super::super::tests::serial();
        let ours = || {
            let prefix = format!("shmsock-lab-dbus-{}-", std::process::id());
            std::fs::read_dir(std::env::temp_dir())
                .expect("temporary directory")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        };
        let before = ours();
        // `false` exits at once without printing an address.
        let program = find("false").expect("coreutils' false");
        let err = Bus::start(&program, SESSION_LIMIT_BYTES).expect_err("no bus");
        let text = err.to_string();
        assert!(text.contains("exited before it listened"), "{text}");
        assert!(text.contains("starting the lab's dbus-daemon"), "{text}");
        assert_eq!(ours(), before, "the bus directory was left behind");
    }
}
