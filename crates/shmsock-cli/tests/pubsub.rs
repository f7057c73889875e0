//! Drives the real `shmsock` binary: `pub` and `sub` through shm://, lag reports, exit
//! codes, help.

use std::io::Write;
use std::process::{ChildStdin, Command, Output, Stdio};
use std::time::Duration;

use shmsock_testkit::assert_mentions;
use shmsock_testkit::process::{
    self, assert_fails_saying, assert_printed, assert_success, stderr, Running,
};

fn shmsock() -> Command {
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-pubsub-");
    process::command(env!("CARGO_BIN_EXE_shmsock"), &dir)
}

fn run(args: &[&str]) -> Output {
    shmsock().args(args).output().expect("running shmsock")
}

fn spawn_sub(endpoint: &str, extra: &[&str]) -> Running {
    let mut cmd = shmsock();
    cmd.args(["sub", endpoint, "--connect-timeout", "10"])
        .args(extra);
    Running::new(process::spawn_piped(&mut cmd))
}

fn spawn_pub(endpoint: &str, extra: &[&str]) -> (Running, ChildStdin) {
    Running::spawn_with_stdin(shmsock().args(["pub", endpoint]).args(extra))
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
    assert_success(&publisher.output());
    for sub in subs {
        assert_printed(&sub.output(), b"hello\n\nworld with spaces\n");
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
    assert_success(&out);
    assert_mentions(&stderr(&out), &["published 1000 messages, 100000 bytes"]);
    let out = sub.output();
    assert_success(&out);
    assert_mentions(
        &stderr(&out),
        &["received 1000 messages, 100000 bytes", "lost 0"],
    );
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
    assert_fails_saying(&out, &["shmsock sub:", "is gone"]);
    assert_eq!(out.stdout, b"one\n");
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
    assert_fails_saying(&out, &["Publisher", "Conn"]);
    drop(stdin);
    assert!(publisher.output().status.success());
}

#[test]
fn sub_without_a_publisher_says_what_to_do() {
    assert_fails_saying(
        &run(&["sub", "shm://cli-ps-nobody"]),
        &["connection refused", "`shmsock pub shm://cli-ps-nobody`"],
    );
}

#[test]
fn pub_and_sub_have_help_with_examples() {
    for sub in ["pub", "sub"] {
        let text = assert_success(&run(&[sub, "--help"]));
        assert_mentions(&text, &["Usage:", "Examples:", "shmsock pub"]);
    }
    assert_mentions(&assert_success(&run(&["--help"])), &["shmsock sub shm://"]);
}

/// A port nobody listens on now (the OS's choice for a listener dropped at once).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe listener");
    listener.local_addr().expect("its address").port()
}

/// `shmsock pub tcp://… --size 64 --count N` and `shmsock sub tcp://…` on this machine; the
/// subscriber's stderr.
fn tcp_pair(count: u64, extra: &[&str]) -> String {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let quiet = ["--quiet", "--count", &count.to_string()];
    let sub = spawn_sub(&endpoint, &[&quiet[..], extra].concat());
    let out = shmsock()
        .args([
            "pub",
            &endpoint,
            "--size",
            "64",
            "--count",
            &count.to_string(),
        ])
        .args(["--wait-subscribers", "1"])
        .args(extra)
        .output()
        .expect("pub");
    assert_success(&out);
    let out = sub.output();
    assert_success(&out);
    let err = stderr(&out);
    assert_mentions(
        &err,
        &[
            &format!("received {count} messages, {} bytes", count * 64),
            "lost 0",
        ],
    );
    err
}

/// A tcp:// subscriber of a publisher on the same machine moves to its shared memory, says
/// so once, and receives every message; with --no-upgrade on both it stays on tcp://.
#[test]
fn a_local_tcp_subscriber_moves_to_shared_memory_unless_told_not_to() {
    let err = tcp_pair(200_000, &[]);
    assert_eq!(
        err.matches("shmsock sub: moved to shared memory after")
            .count(),
        1,
        "{err}"
    );
    let err = tcp_pair(20_000, &["--no-upgrade"]);
    assert!(!err.contains("moved to shared memory"), "{err}");
}

/// One `shmsock pub` on shm://, unix:// and tcp:// at once: a subscriber of each receives
/// every line.
#[test]
fn one_publisher_serves_several_endpoints() {
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-pubsub-several-");
    std::fs::create_dir_all(&dir).expect("a directory for the unix:// socket");
    let unix = format!("unix://{}/several.sock", dir.display());
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let endpoints = ["shm://cli-ps-several", unix.as_str(), tcp.as_str()];
    let subs: Vec<Running> = endpoints
        .iter()
        .map(|e| spawn_sub(e, &["--count", "2"]))
        .collect();
    let (publisher, mut stdin) = spawn_pub(
        endpoints[0],
        &[endpoints[1], endpoints[2], "--wait-subscribers", "3"],
    );
    stdin.write_all(b"one\ntwo\n").expect("write");
    drop(stdin);
    assert_success(&publisher.output());
    for sub in subs {
        assert_printed(&sub.output(), b"one\ntwo\n");
    }
}

#[test]
fn pub_says_every_port_it_chose() {
    let (publisher, stdin) = spawn_pub("tcp://127.0.0.1:0", &["shm://cli-ps-ports"]);
    drop(stdin);
    let out = publisher.output();
    assert_success(&out);
    let err = stderr(&out);
    assert_mentions(
        &err,
        &[
            "listening on shm://cli-ps-ports",
            "listening on tcp://127.0.0.1:",
        ],
    );
    assert!(!err.contains("tcp://127.0.0.1:0\n"), "{err}");
}

/// CURVE flags secure the network endpoints of a publisher that also binds shm:// (left to
/// its uid checks); alone, a shm:// endpoint refuses them.
#[test]
fn curve_flags_beside_a_shm_endpoint_secure_the_network_ones() {
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-pubsub-curve-");
    std::fs::create_dir_all(&dir).expect("a directory for the keys");
    let name = dir.join("server");
    assert_success(&run(&["keygen", name.to_str().expect("utf-8 path")]));
    let secret = format!("{}.key_secret", name.display());
    let (publisher, stdin) = spawn_pub(
        "shm://cli-ps-curve",
        &["tcp://127.0.0.1:0", "--curve-secret", &secret],
    );
    drop(stdin);
    let out = publisher.output();
    assert_success(&out);
    assert_mentions(&stderr(&out), &["listening on tcp://127.0.0.1:"]);
    assert_fails_saying(
        &run(&["pub", "shm://cli-ps-curve", "--curve-secret", &secret]),
        &["CURVE is for tcp:// and unix://"],
    );
}
