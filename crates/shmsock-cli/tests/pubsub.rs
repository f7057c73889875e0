//! Drives the real `shmsock` binary: `pub` and `sub` through shm://, lag reports, exit
//! codes, help.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest any child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

fn shmsock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmsock"));
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-pubsub-");
    cmd.env("SHMSOCK_RUNTIME_DIR", dir);
    cmd
}

/// Collects a child's output on another thread (so a full pipe never blocks it), killing
/// it if it runs longer than [`CHILD_TIMEOUT`].
struct Running {
    pid: u32,
    output: mpsc::Receiver<std::io::Result<Output>>,
    done: bool,
}

impl Running {
    fn new(child: Child) -> Running {
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

    fn output(mut self) -> Output {
        match self.output.recv_timeout(CHILD_TIMEOUT) {
            Ok(out) => {
                self.done = true;
                out.expect("child output")
            }
            Err(_) => {
                self.kill("KILL");
                panic!("shmsock did not exit within {CHILD_TIMEOUT:?}");
            }
        }
    }

    fn kill(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status();
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

fn spawn_sub(endpoint: &str, extra: &[&str]) -> Running {
    let child = shmsock()
        .args(["sub", endpoint, "--connect-timeout", "10"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sub");
    Running::new(child)
}

fn spawn_pub(endpoint: &str, extra: &[&str]) -> (Running, std::process::ChildStdin) {
    let mut child = shmsock()
        .args(["pub", endpoint])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pub");
    let stdin = child.stdin.take().expect("stdin");
    (Running::new(child), stdin)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn lines_published_on_stdin_reach_every_subscriber() {
    let subs = [
        spawn_sub("shm://cli-ps-lines", &[]),
        spawn_sub("shm://cli-ps-lines", &[]),
    ];
    let (publisher, mut stdin) = spawn_pub("shm://cli-ps-lines", &["--wait-subscribers", "2"]);
    stdin
        .write_all(b"hello\n\nworld with spaces\n")
        .expect("write");
    drop(stdin);
    let out = publisher.output();
    assert!(out.status.success(), "{}", stderr(&out));
    for sub in subs {
        let out = sub.output();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(out.stdout, b"hello\n\nworld with spaces\n");
    }
}

#[test]
fn synthetic_messages_are_counted_by_a_quiet_subscriber() {
    let sub = spawn_sub("shm://cli-ps-count", &["--quiet", "--count", "1000"]);
    let out = shmsock()
        .args([
            "pub",
            "shm://cli-ps-count",
            "--size",
            "100",
            "--count",
            "1000",
        ])
        .args(["--wait-subscribers", "1"])
        .output()
        .expect("pub");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("published 1000 messages, 100000 bytes"),
        "{}",
        stderr(&out)
    );
    let out = sub.output();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("received 1000 messages, 100000 bytes"),
        "{err}"
    );
    assert!(err.contains("lost 0"), "{err}");
}

/// A subscriber whose stdout nobody reads falls behind a --drop-oldest publisher: it says
/// how many messages it lost, goes on, and what it printed plus what it lost is all.
#[test]
fn lagging_subscriber_reports_what_it_lost_and_goes_on() {
    let (count, size) = (50_000u64, 64usize);
    let sub = spawn_sub("shm://cli-ps-lag", &[]);
    let out = shmsock()
        .args(["pub", "shm://cli-ps-lag", "--drop-oldest", "--ring", "4096"])
        .args(["--size", &size.to_string(), "--count", &count.to_string()])
        .args(["--wait-subscribers", "1"])
        .output()
        .expect("pub");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sub.output();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lost: u64 = err
        .lines()
        .filter_map(|l| l.strip_prefix("shmsock sub: lagged: lost "))
        .map(|l| {
            l.trim_end_matches(" messages")
                .parse::<u64>()
                .expect("a count")
        })
        .sum();
    assert!(lost > 0, "the subscriber never lagged: {err}");
    // Messages are binary (a sequence number, then zeros) and each is followed by '\n'.
    let printed = out.stdout.len() as u64 / (size as u64 + 1);
    assert_eq!(out.stdout.len() as u64 % (size as u64 + 1), 0);
    assert_eq!(
        printed + lost,
        count,
        "printed {printed}, lost {lost}: {err}"
    );
}

#[test]
fn sub_fails_with_a_clear_message_when_the_publisher_dies() {
    let sub = spawn_sub("shm://cli-ps-dies", &[]);
    let (publisher, mut stdin) = spawn_pub("shm://cli-ps-dies", &["--wait-subscribers", "1"]);
    stdin.write_all(b"one\n").expect("write");
    stdin.flush().expect("flush");
    // Give the line time to arrive, then kill the publisher without a clean close.
    std::thread::sleep(Duration::from_millis(500));
    publisher.kill("KILL");
    let out = sub.output();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(out.stdout, b"one\n");
    let err = stderr(&out);
    assert!(
        err.contains("shmsock sub:") && err.contains("is gone"),
        "{err}"
    );
    drop(stdin);
}

#[test]
fn sub_and_recv_refuse_each_others_endpoints() {
    let (publisher, stdin) = spawn_pub("shm://cli-ps-roles", &[]);
    let out = shmsock()
        .args(["send", "shm://cli-ps-roles", "--connect-timeout", "10"])
        .stdin(Stdio::null())
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Publisher") && err.contains("Conn"), "{err}");
    drop(stdin);
    assert!(publisher.output().status.success());
}

#[test]
fn sub_without_a_publisher_says_what_to_do() {
    let out = shmsock()
        .args(["sub", "shm://cli-ps-nobody"])
        .output()
        .expect("sub");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("connection refused") && err.contains("`shmsock pub shm://cli-ps-nobody`"),
        "{err}"
    );
}

#[test]
fn pub_and_sub_have_help_with_examples() {
    for sub in ["pub", "sub"] {
        let out = shmsock().args([sub, "--help"]).output().expect("help");
        assert!(out.status.success(), "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Usage:") && text.contains("Examples:") && text.contains("shmsock pub"),
            "{sub}: {text}"
        );
    }
    let out = shmsock().arg("--help").output().expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shmsock sub shm://"), "{text}");
}
