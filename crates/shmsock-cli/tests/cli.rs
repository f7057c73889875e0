//! Drives the real `shmsock` binary: send/recv through shm://, exit codes, help, lab JSON.

use std::io::Write;
use std::process::{ChildStdin, Command, Output};
use std::time::Duration;

use shmsock_testkit::assert_mentions;
use shmsock_testkit::process::{
    self, assert_fails_saying, assert_printed, assert_success, Running,
};

fn shmsock() -> Command {
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-");
    process::command(env!("CARGO_BIN_EXE_shmsock"), &dir)
}

fn run(args: &[&str]) -> Output {
    shmsock().args(args).output().expect("running shmsock")
}

/// `shmsock send ENDPOINT`, with its stdin.
fn spawn_send(endpoint: &str) -> (Running, ChildStdin) {
    Running::spawn_with_stdin(shmsock().args(["send", endpoint, "--connect-timeout", "10"]))
}

fn spawn_recv(endpoint: &str, extra: &[&str]) -> Running {
    Running::new(process::spawn_piped(
        shmsock().args(["recv", endpoint]).args(extra),
    ))
}

#[test]
fn lines_sent_on_stdin_arrive_on_stdout_and_recv_exits_zero() {
    let recv = spawn_recv("shm://cli-lines", &[]);
    let (send, mut stdin) = spawn_send("shm://cli-lines");
    stdin
        .write_all(b"hello\n\nworld with spaces\n")
        .expect("write");
    drop(stdin);
    assert_success(&send.output());
    assert_printed(&recv.output(), b"hello\n\nworld with spaces\n");
}

/// `shmsock recv` with several endpoints receives the first sender on any of them (here the
/// unix:// one; the shm:// name is bound too, and both are freed at exit).
#[test]
fn recv_binds_several_endpoints() {
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-");
    let path = dir.join(format!("cli-several-{}.sock", std::process::id()));
    let unix = format!("unix://{}", path.display());
    let recv = spawn_recv("shm://cli-several", &[&unix, "--count", "2"]);
    let (send, mut stdin) = spawn_send(&unix);
    stdin.write_all(b"over\nunix\n").expect("write");
    drop(stdin);
    assert_success(&send.output());
    assert_printed(&recv.output(), b"over\nunix\n");
    assert!(!path.exists(), "recv removes its unix:// socket file");
}

/// Connections to `recv`'s name that never complete a handshake (silent ones and one
/// that sends half a hello) neither end `shmsock recv` nor delay an honest sender: the
/// listener runs handshakes side by side and drops the bad ones at their deadline.
#[test]
fn silent_connectors_neither_end_recv_nor_delay_an_honest_sender() {
    let endpoint = "shm://cli-silent";
    let recv = spawn_recv(endpoint, &[]);
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-");
    let socket = dir.join("cli-silent.sock");
    let started = std::time::Instant::now();
    let mut attackers = Vec::new();
    while attackers.len() < 3 {
        match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(s) => attackers.push(s),
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("recv never bound {}: {e}", socket.display()),
        }
    }
    attackers[0].write_all(b"SHMSOCKH").expect("half a hello");
    let t = std::time::Instant::now();
    let (send, mut stdin) = spawn_send(endpoint);
    stdin.write_all(b"honest\n").expect("write");
    drop(stdin);
    assert_success(&send.output());
    let out = recv.output();
    let took = t.elapsed();
    assert_printed(&out, b"honest\n");
    // Well within the 5 s handshake deadline the attackers would have cost in turn.
    assert!(
        took < Duration::from_secs(3),
        "the honest sender took {took:?}"
    );
    drop(attackers);
}

#[test]
fn synthetic_messages_are_counted() {
    let recv = spawn_recv("shm://cli-count", &["--quiet", "--count", "1000"]);
    let sent = shmsock()
        .args(["send", "shm://cli-count", "--connect-timeout", "10"])
        .args(["--size", "100", "--count", "1000"])
        .output()
        .expect("send");
    assert_success(&sent);
    let out = recv.output();
    assert_success(&out);
    assert_mentions(
        &process::stderr(&out),
        &["received 1000 messages, 100000 bytes"],
    );
}

#[test]
fn recv_fails_with_a_clear_message_when_the_sender_dies() {
    let recv = spawn_recv("shm://cli-dies", &[]);
    let (send, mut stdin) = spawn_send("shm://cli-dies");
    stdin.write_all(b"one\n").expect("write");
    stdin.flush().expect("flush");
    // Give the line time to arrive, then kill the sender without a clean close.
    std::thread::sleep(Duration::from_millis(500));
    send.kill("KILL");
    let out = recv.output();
    assert_fails_saying(&out, &["is gone"]);
    assert_eq!(out.stdout, b"one\n");
}

#[test]
fn send_without_a_listener_says_what_to_do() {
    assert_fails_saying(
        &run(&["send", "shm://cli-nobody"]),
        &["no listener is bound", "shmsock recv shm://cli-nobody"],
    );
}

#[test]
fn malformed_endpoint_lists_the_accepted_forms() {
    assert_fails_saying(
        &run(&["recv", "shm://a/b"]),
        &["\"shm://a/b\"", "tcp://HOST:PORT"],
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
        assert_mentions(&assert_success(&run(sub)), &["Usage:", "xample"]);
    }
}

#[test]
fn endpoint_commands_show_tcp_and_unix_examples() {
    for sub in ["send", "recv", "pub", "sub"] {
        let text = assert_success(&run(&[sub, "--help"]));
        let examples = text.split("Examples:").nth(1).unwrap_or_default();
        for scheme in ["shm://", "tcp://", "unix:///"] {
            assert!(
                examples.contains(&format!("shmsock {sub} {scheme}")),
                "{sub}: no {scheme} example in {text}"
            );
        }
        assert!(text.contains("ZeroMQ"), "{sub}: {text}");
    }
    assert_mentions(
        &assert_success(&run(&["--help"])),
        &["shmsock recv tcp://", "shmsock bridge shm://"],
    );
}
