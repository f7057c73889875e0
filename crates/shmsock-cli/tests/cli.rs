//! Drives the real `shmsock` binary: send/recv through shm://, exit codes, help, lab JSON.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn shmsock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmsock"));
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-");
    cmd.env("SHMSOCK_RUNTIME_DIR", dir);
    cmd
}

/// Kills and reaps a child however the test ends.
struct Reap(Option<Child>);

impl Reap {
    fn wait_output(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().expect("child");
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "child did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().expect("output")
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_recv(endpoint: &str, extra: &[&str]) -> Reap {
    let child = shmsock()
        .args(["recv", endpoint])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recv");
    Reap(Some(child))
}

#[test]
fn lines_sent_on_stdin_arrive_on_stdout_and_recv_exits_zero() {
    let recv = spawn_recv("shm://cli-lines", &[]);
    let mut send = shmsock()
        .args(["send", "shm://cli-lines", "--connect-timeout", "10"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn send");
    send.stdin
        .take()
        .expect("stdin")
        .write_all(b"hello\n\nworld with spaces\n")
        .expect("write");
    let sent = send.wait_with_output().expect("send output");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let out = recv.wait_output(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello\n\nworld with spaces\n");
}

#[test]
fn synthetic_messages_are_counted() {
    let recv = spawn_recv("shm://cli-count", &["--quiet", "--count", "1000"]);
    let sent = shmsock()
        .args([
            "send",
            "shm://cli-count",
            "--size",
            "100",
            "--count",
            "1000",
            "--connect-timeout",
            "10",
        ])
        .output()
        .expect("send");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let out = recv.wait_output(Duration::from_secs(20));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("received 1000 messages, 100000 bytes"),
        "{err}"
    );
}

#[test]
fn recv_fails_with_a_clear_message_when_the_sender_dies() {
    let recv = spawn_recv("shm://cli-dies", &[]);
    let mut send = Reap(Some(
        shmsock()
            .args(["send", "shm://cli-dies", "--connect-timeout", "10"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn send"),
    ));
    let child = send.0.as_mut().expect("child");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"one\n").expect("write");
    stdin.flush().expect("flush");
    // Give the line time to arrive, then kill the sender without a clean close.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().expect("kill");
    let out = recv.wait_output(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"one\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is gone"), "{err}");
}

#[test]
fn send_without_a_listener_says_what_to_do() {
    let out = shmsock()
        .args(["send", "shm://cli-nobody"])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no listener is bound") && err.contains("shmsock recv shm://cli-nobody"),
        "{err}"
    );
}

#[test]
fn malformed_endpoint_lists_the_accepted_forms() {
    let out = shmsock()
        .args(["recv", "shm://a/b"])
        .output()
        .expect("recv");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"shm://a/b\"") && err.contains("tcp://HOST:PORT"),
        "{err}"
    );
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [
        &["--help"][..],
        &["send", "--help"],
        &["recv", "--help"],
        &["lab", "--help"],
    ] {
        let out = shmsock().args(sub).output().expect("help");
        assert!(out.status.success(), "{sub:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Usage:") && text.contains("xample"),
            "{sub:?}: {text}"
        );
    }
}

#[test]
fn endpoint_commands_show_tcp_and_unix_examples() {
    for sub in ["send", "recv", "pub", "sub"] {
        let out = shmsock().args([sub, "--help"]).output().expect("help");
        assert!(out.status.success(), "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        let examples = text.split("Examples:").nth(1).unwrap_or_default();
        for scheme in ["shm://", "tcp://", "unix:///"] {
            assert!(
                examples.contains(&format!("shmsock {sub} {scheme}")),
                "{sub}: no {scheme} example in {text}"
            );
        }
        assert!(text.contains("ZeroMQ"), "{sub}: {text}");
    }
    let out = shmsock().arg("--help").output().expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shmsock recv tcp://") && text.contains("shmsock bridge shm://"),
        "{text}"
    );
}
