//! Drives the real `shmsock bridge` between real processes (`shmsock pub`, `shmsock sub`,
//! pyzmq) and library publishers and subscribers in this process: every message arrives
//! byte for byte, in order (sequence numbers), topics filter, both directions, a dying
//! shm:// source is reported (or survived with --reconnect), signals stop it with a
//! summary.

use std::process::Command;
use std::time::Duration;

use shmsock::{Publisher, Subscriber};
use shmsock_testkit::assert_mentions;
use shmsock_testkit::process::{self, assert_fails_saying, assert_success, LinePeer, LinesOf};
use shmsock_testkit::pubsub::wait_for_subscriber_count;

/// Longest any step may take before the test fails instead of hanging.
const STEP_TIMEOUT: Duration = process::CHILD_TIMEOUT;

/// A `shmsock` child: its stderr arrives line by line, its stdout is collected.
type Proc = LinePeer;

fn shmsock() -> Command {
    // The children's rendezvous directory (this process's library calls use tcp:// only).
    let dir = shmsock::test_support::runtime_dir("shmsock-cli-bridge-");
    process::command(env!("CARGO_BIN_EXE_shmsock"), &dir)
}

fn spawn(cmd: &mut Command) -> Proc {
    LinePeer::spawn(cmd, LinesOf::Stderr)
}

/// Closes the child's stdin and waits for a successful exit; returns its stderr.
fn finish_ok(proc: Proc) -> String {
    let (status, _, err) = proc.finish();
    assert!(status.success(), "{status:?}: {err}");
    err
}

/// Starts `shmsock bridge SRC DST EXTRA...` and returns it with its destination endpoint
/// (the bridge prints it: `tcp://127.0.0.1:0` becomes the port chosen).
fn bridge(source: &str, destination: &str, extra: &[&str]) -> (Proc, String) {
    let mut proc = spawn(shmsock().args(["bridge", source, destination]).args(extra));
    let line = proc.wait_for_line("shmsock bridge: forwarding");
    let bound = line
        .split(" -> ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
        .to_owned();
    (proc, bound)
}

fn shmsock_pub(endpoint: &str, extra: &[&str]) -> Proc {
    spawn(shmsock().args(["pub", endpoint]).args(extra))
}

/// `shmsock pub SOURCE PUB_EXTRA...` bridged to tcp:// (`shmsock bridge SOURCE
/// tcp://127.0.0.1:0 BRIDGE_EXTRA...`), both waiting for one subscriber: the publisher,
/// the bridge and the bridge's tcp:// endpoint. The bridge may start before the publisher
/// has bound its name (a loaded machine): it retries its first connection meanwhile.
fn bridged_pub(source: &str, pub_extra: &[&str], bridge_extra: &[&str]) -> (Proc, Proc, String) {
    let one = ["--wait-subscribers", "1"];
    let publisher = shmsock_pub(source, &[pub_extra, &one].concat());
    let retry = ["--connect-timeout", "20"];
    let (bridge, remote) = bridge(
        source,
        "tcp://127.0.0.1:0",
        &[bridge_extra, &one, &retry].concat(),
    );
    (publisher, bridge, remote)
}

fn recv(sub: &mut Subscriber) -> Vec<u8> {
    let mut buf = vec![0; 4096];
    let n = sub
        .recv_timeout(&mut buf, STEP_TIMEOUT)
        .expect("a forwarded message");
    buf.truncate(n);
    buf
}

/// Waits until the bridge (and any other subscriber) has subscribed: `n` in all.
fn wait_subscribers(publisher: &mut Publisher, n: usize) {
    let expected = format!("at least {n} (the bridge's included)");
    wait_for_subscriber_count(publisher, STEP_TIMEOUT, &expected, |c| c >= n);
}

/// `shmsock pub shm://… --size 64 --count N` → bridge → a tcp:// Subscriber: every
/// synthetic message (sequence number, then zeros), in order; the source's clean close
/// ends the bridge with exit 0 and a summary.
#[test]
fn shm_to_tcp_delivers_every_message_in_order_and_ends_with_its_source() {
    let (count, size) = (20_000u64, 64usize);
    let (mut publisher, bridge, remote) = bridged_pub(
        "shm://cli-br-seq",
        &["--size", "64", "--count", "20000"],
        &[],
    );
    assert!(
        remote.starts_with("tcp://127.0.0.1:") && !remote.ends_with(":0"),
        "{remote}"
    );
    let mut sub = Subscriber::connect(&remote).expect("connect to the bridge");
    for seq in 0..count {
        let msg = recv(&mut sub);
        assert_eq!(msg.len(), size, "message {seq}");
        assert_eq!(msg[..8], seq.to_le_bytes(), "message {seq} out of order");
        assert!(msg[8..].iter().all(|&b| b == 0), "message {seq} corrupted");
    }
    publisher.wait_for_line("published 20000 messages");
    finish_ok(publisher);
    assert_mentions(
        &finish_ok(bridge),
        &[
            "the source closed: forwarded 20000 messages, 1280000 bytes",
            "received 20000, lost upstream 0",
        ],
    );
}

/// `--topic` subscribes upstream: only the matching lines cross, byte for byte.
#[test]
fn topic_filters_choose_what_crosses() {
    let topics = ["--topic", "a.", "--topic", "c."];
    let (mut publisher, bridge, remote) = bridged_pub("shm://cli-br-topics", &[], &topics);
    assert!(remote.starts_with("tcp://127.0.0.1:"), "{remote}");
    let mut sub = Subscriber::connect(&remote).expect("connect to the bridge");
    let mut input = Vec::new();
    let mut wanted = Vec::new();
    for seq in 0..100u32 {
        let topic = ["a.", "b.", "c.", "ab"][seq as usize % 4];
        let line = format!("{topic}{seq:05} \u{e9}\t{}", "x".repeat(seq as usize));
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        if topic == "a." || topic == "c." {
            wanted.push(line.into_bytes());
        }
    }
    publisher.write(&input);
    for line in &wanted {
        assert_eq!(&recv(&mut sub), line);
    }
    finish_ok(publisher);
    let err = finish_ok(bridge);
    assert_mentions(&err, &["forwarded 50 messages", "received 50,"]);
}

/// The other way: a tcp:// publisher (this process) → bridge → `shmsock sub shm://…`;
/// SIGTERM stops the bridge with exit 0 and its summary.
#[test]
fn tcp_to_shm_reaches_a_shm_subscriber_and_sigterm_stops_the_bridge() {
    let count = 5_000;
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").expect("bind tcp");
    let (bridge, local) = bridge(
        publisher.endpoint(),
        "shm://cli-br-back",
        &["--wait-subscribers", "1"],
    );
    assert_eq!(local, "shm://cli-br-back");
    let sub = spawn(
        shmsock()
            .args(["sub", "shm://cli-br-back", "--connect-timeout", "20"])
            .args(["--count", &count.to_string()]),
    );
    wait_subscribers(&mut publisher, 1);
    let mut expected = Vec::new();
    for seq in 0..count {
        let msg = format!("tick {seq:06} {}", "#".repeat(seq % 300));
        publisher.send(msg.as_bytes()).expect("publish");
        expected.extend_from_slice(msg.as_bytes());
        expected.push(b'\n');
    }
    let (status, stdout, err) = sub.finish();
    assert!(status.success(), "{err}");
    assert!(
        stdout == expected,
        "the shm:// subscriber printed other bytes: {err}"
    );
    bridge.signal("TERM");
    let err = finish_ok(bridge);
    assert_mentions(&err, &[&format!("stopped: forwarded {count} messages")]);
}

/// Without --reconnect, a shm:// source killed with SIGKILL ends the bridge with exit 1,
/// after what it had published was forwarded, and the message says what to do.
#[test]
fn a_killed_shm_source_is_reported_after_its_messages() {
    let (mut publisher, bridge, remote) = bridged_pub("shm://cli-br-dies", &[], &[]);
    let mut sub = Subscriber::connect(&remote).expect("connect to the bridge");
    publisher.write(b"one\ntwo\n");
    assert_eq!(recv(&mut sub), b"one");
    assert_eq!(recv(&mut sub), b"two");
    publisher.signal("KILL");
    let (status, _, err) = bridge.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_mentions(&err, &["is gone", "--reconnect", "forwarded 2 messages"]);
}

/// With --reconnect the bridge outlives a killed shm:// source and forwards from its
/// successor; SIGINT then stops it with exit 0, one reconnection counted.
#[test]
fn reconnect_outlives_a_killed_source_and_sigint_stops_it() {
    let (mut first, mut bridge, remote) =
        bridged_pub("shm://cli-br-again", &[], &["--reconnect", "-v"]);
    let mut sub = Subscriber::connect(&remote).expect("connect to the bridge");
    first.write(b"before\n");
    assert_eq!(recv(&mut sub), b"before");
    first.signal("KILL");
    bridge.wait_for_line("bridge source ended");
    let mut second = shmsock_pub("shm://cli-br-again", &["--wait-subscribers", "1"]);
    bridge.wait_for_line("bridge reconnected");
    second.write(b"after\n");
    assert_eq!(recv(&mut sub), b"after");
    bridge.signal("INT");
    let err = finish_ok(bridge);
    assert_mentions(&err, &["stopped: forwarded 2 messages", "reconnections 1"]);
    finish_ok(second);
}

#[test]
fn a_missing_source_is_a_clear_error() {
    let out = shmsock()
        .args(["bridge", "shm://cli-br-nobody", "tcp://127.0.0.1:0"])
        .output()
        .expect("bridge");
    assert_fails_saying(
        &out,
        &[
            "connection refused",
            "`shmsock pub shm://cli-br-nobody`",
            "--reconnect",
        ],
    );
}

/// A pyzmq SUB (libzmq) subscribed to one topic receives, through the bridge, exactly the
/// matching messages of a shm:// publisher, byte for byte (binary bytes included).
#[test]
fn pyzmq_subscriber_receives_from_the_bridge() {
    if !process::pyzmq_available() {
        return;
    }
    const SUB_PY: &str = r#"
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.SUB)
s.setsockopt(zmq.RCVTIMEO, 20000)
s.connect(sys.argv[1])
s.setsockopt(zmq.SUBSCRIBE, sys.argv[3].encode())
for _ in range(int(sys.argv[2])):
    print(b"".join(s.recv_multipart()).hex(), flush=True)
"#;
    let (mut publisher, bridge, remote) = bridged_pub("shm://cli-br-py", &[], &[]);
    let mut input = Vec::new();
    let mut wanted = Vec::new();
    for seq in 0..60u8 {
        let topic: &[u8] = if seq % 3 == 0 { b"AB" } else { b"B" };
        let msg = [topic, b".", &[seq, 0, 0xff, 0x80, seq.wrapping_mul(7)]].concat();
        input.extend_from_slice(&msg);
        input.push(b'\n');
        if topic == b"AB" {
            wanted.push(msg);
        }
    }
    let python = spawn(Command::new("python3").args([
        "-c",
        SUB_PY,
        &remote,
        &wanted.len().to_string(),
        "AB",
    ]));
    // The bridge subscribes upstream once pyzmq's subscription arrived; then publish.
    publisher.write(&input);
    let (status, stdout, err) = python.finish();
    assert!(status.success(), "python: {err}");
    let got: Vec<String> = String::from_utf8_lossy(&stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let hex = |m: &[u8]| m.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let wanted: Vec<String> = wanted.iter().map(|m| hex(m)).collect();
    assert_eq!(got, wanted);
    finish_ok(publisher);
    finish_ok(bridge);
}

#[test]
fn bridge_has_help_with_examples() {
    let out = shmsock().args(["bridge", "--help"]).output().expect("help");
    assert_mentions(
        &assert_success(&out),
        &[
            "Usage:",
            "Examples:",
            "shmsock bridge shm://prices tcp://127.0.0.1:5556",
            "--topic",
            "--reconnect",
            "--drop-oldest",
        ],
    );
}
