//! Drives the real `shmsock` binary: `ls`, `top` and `clean` against live endpoints
//! started by other `shmsock` processes, and against a listener killed with SIGKILL.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shmsock_testkit::assert_mentions;
use shmsock_testkit::process::{self, assert_success};

/// How long a test waits for the state it expects to show up in `ls`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// A rendezvous directory of one test (tests run in parallel; `clean` must not see the
/// names of another test), removed at the end.
struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runtime_dir(test: &str) -> TestDir {
    TestDir(std::env::temp_dir().join(format!("shmsock-cli-inspect-{}-{test}", std::process::id())))
}

fn shmsock(dir: &Path) -> Command {
    process::command(env!("CARGO_BIN_EXE_shmsock"), dir)
}

/// Runs `shmsock ARGS` to the end: it must succeed; returns its stdout.
fn run_ok(dir: &Path, args: &[&str]) -> String {
    assert_success(&shmsock(dir).args(args).output().expect("running shmsock"))
}

/// A child killed (SIGKILL) and reaped when dropped.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn spawn(dir: &Path, args: &[&str]) -> Proc {
        let mut child = shmsock(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn shmsock");
        let stdin = child.stdin.take();
        Proc { child, stdin }
    }

    fn pid(&self) -> u64 {
        u64::from(self.child.id())
    }

    fn send_lines(&mut self, lines: &[&str]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        for line in lines {
            stdin.write_all(line.as_bytes()).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
        stdin.flush().expect("flush");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ls_json(dir: &Path) -> Value {
    serde_json::from_str(&run_ok(dir, &["ls", "--json"])).expect("ls --json prints one JSON object")
}

/// The endpoint `endpoint` in a scan, if listed.
fn endpoint<'a>(scan: &'a Value, endpoint: &str, dir: &Path) -> Option<&'a Value> {
    let socket = dir.join(format!("{}.sock", endpoint.trim_start_matches("shm://")));
    scan["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["endpoint"] == endpoint && e["socket_path"] == socket.display().to_string())
}

/// Runs `ls --json` until `ready` accepts the endpoint, and returns it.
fn wait_for(dir: &Path, name: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let scan = ls_json(dir);
        if let Some(ep) = endpoint(&scan, name, dir) {
            if ready(ep) {
                return ep.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} never showed {what} in ls; last scan: {scan:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sides<'a>(ep: &'a Value, role: &str) -> Vec<&'a Value> {
    ep["sides"]
        .as_array()
        .expect("sides")
        .iter()
        .filter(|s| s["role"] == role)
        .collect()
}

#[test]
fn ls_lists_a_pair_with_pids_commands_and_exact_counters() {
    let dir = runtime_dir("pair");
    let recv = Proc::spawn(&dir, &["recv", "shm://pair", "--quiet"]);
    let mut send = Proc::spawn(&dir, &["send", "shm://pair", "--connect-timeout", "10"]);
    send.send_lines(&["alpha", "beta", "gamma", "delta", "omega", "", "seven"]);
    let payload: u64 = [5, 4, 5, 5, 5, 0, 5].iter().sum();
    // A sender counts a message just after publishing it, so its receiver may show it
    // first: wait for both counts.
    let ep = wait_for(&dir, "shm://pair", "7 messages sent and received", |ep| {
        let counted =
            |role, counter: &str| sides(ep, role).first().is_some_and(|s| s[counter] == 7);
        counted("listener", "msgs_received") && counted("connector", "msgs_sent")
    });
    assert_eq!(ep["state"], "live");
    assert_eq!(ep["pattern"], "pair");
    assert_eq!(ep["scheme"], "shm");
    assert_eq!(ep["bound_by"]["pid"], recv.pid());
    assert_eq!(ep["bound_by"]["command"], "shmsock");
    assert!(ep["age_secs"].as_f64().is_some());
    let (listener, connector) = (sides(&ep, "listener"), sides(&ep, "connector"));
    assert_eq!((listener.len(), connector.len()), (1, 1), "{ep:#}");
    let (l, c) = (listener[0], connector[0]);
    assert_eq!(l["process"]["pid"], recv.pid());
    assert_eq!(l["peer"]["pid"], send.pid());
    assert_eq!(c["process"]["pid"], send.pid());
    assert_eq!(c["peer"]["pid"], recv.pid());
    assert!(c["process"]["cmdline"]
        .as_str()
        .is_some_and(|s| s.contains("send shm://pair")));
    // Each side points at the other's segment.
    assert_eq!(l["peer_segment_inode"], c["segment_inode"]);
    assert_eq!(c["peer_segment_inode"], l["segment_inode"]);
    // Exact counters in both directions.
    assert_eq!(c["msgs_sent"], 7);
    assert_eq!(c["bytes_sent"], payload);
    assert_eq!(l["msgs_received"], 7);
    assert_eq!(l["bytes_received"], payload);
    assert_eq!(
        (l["msgs_sent"].clone(), c["msgs_received"].clone()),
        (0.into(), 0.into())
    );
    // The receiver is idle: nothing waits in the sender's ring.
    assert_eq!(c["backlog"]["messages"], 0);
    assert_eq!(c["backlog"]["bytes"], 0);
    assert_eq!(c["ring_capacity_bytes"], c["backlog"]["ring_bytes"]);
    assert!(l["msgs_lost"].is_null(), "a Conn loses nothing");

    let connector = format!("connector  {}", send.pid());
    let backlog = format!("7 / {payload} B");
    assert_mentions(
        &run_ok(&dir, &["ls"]),
        &["shm://pair  pair  live, bound by pid", &connector, &backlog],
    );
}

#[test]
fn ls_shows_a_publisher_its_subscribers_and_their_counters() {
    let dir = runtime_dir("pubsub");
    let mut publisher = Proc::spawn(&dir, &["pub", "shm://ticks", "--wait-subscribers", "2"]);
    let subs = [
        Proc::spawn(
            &dir,
            &["sub", "shm://ticks", "--quiet", "--connect-timeout", "10"],
        ),
        Proc::spawn(
            &dir,
            &["sub", "shm://ticks", "--quiet", "--connect-timeout", "10"],
        ),
    ];
    wait_for(&dir, "shm://ticks", "two subscribers", |ep| {
        sides(ep, "subscriber").len() == 2
    });
    publisher.send_lines(&["t1", "t2", "t3", "t4", "t5"]);
    let ep = wait_for(
        &dir,
        "shm://ticks",
        "5 messages sent and at each subscriber",
        |ep| {
            let s = sides(ep, "subscriber");
            let sent = sides(ep, "publisher")
                .first()
                .is_some_and(|p| p["msgs_sent"] == 5);
            sent && s.len() == 2 && s.iter().all(|s| s["msgs_received"] == 5)
        },
    );
    assert_eq!(ep["pattern"], "pubsub");
    assert_eq!(ep["bound_by"]["pid"], publisher.pid());
    let p = sides(&ep, "publisher");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["process"]["pid"], publisher.pid());
    assert_eq!(p[0]["msgs_sent"], 5);
    assert_eq!(p[0]["bytes_sent"], 10);
    assert!(
        p[0]["msgs_received"].is_null(),
        "a publisher receives nothing"
    );
    assert!(p[0]["peer"].is_null(), "a publisher has many peers");
    assert_eq!(p[0]["backlog"]["messages"], 0);
    let mut pids: Vec<u64> = sides(&ep, "subscriber")
        .iter()
        .map(|s| {
            assert_eq!(s["peer"]["pid"], publisher.pid());
            assert_eq!(s["peer_segment_inode"], p[0]["segment_inode"]);
            assert_eq!(s["bytes_received"], 10);
            assert_eq!(s["msgs_lost"], 0);
            assert_eq!(s["backlog"]["messages"], 0);
            assert!(s["msgs_sent"].is_null());
            s["process"]["pid"].as_u64().expect("pid")
        })
        .collect();
    pids.sort_unstable();
    let mut expected: Vec<u64> = subs.iter().map(Proc::pid).collect();
    expected.sort_unstable();
    assert_eq!(pids, expected);
}

#[test]
fn a_killed_listener_is_stale_and_clean_removes_only_its_files() {
    let dir = runtime_dir("stale");
    let mut dead = Proc::spawn(&dir, &["recv", "shm://dead"]);
    let mut orphan = Proc::spawn(&dir, &["send", "shm://dead", "--connect-timeout", "10"]);
    let alive = Proc::spawn(&dir, &["recv", "shm://alive"]);
    wait_for(&dir, "shm://dead", "a connection", |ep| {
        ep["sides"].as_array().is_some_and(|s| s.len() == 2)
    });
    wait_for(&dir, "shm://alive", "its binding", |ep| {
        ep["state"] == "live"
    });
    let dead_pid = dead.pid();
    dead.kill(); // SIGKILL: no chance to remove its socket and lock files
    let ep = wait_for(&dir, "shm://dead", "stale", |ep| ep["state"] == "stale");
    assert!(ep["bound_by"].is_null());
    assert_eq!(ep["last_bound_by_pid"], dead_pid);
    assert_eq!(
        ep["pattern"], "pair",
        "the lock file still says what bound it"
    );
    // The sender (blocked on its stdin) still holds its side; its peer is gone.
    let c = sides(&ep, "connector");
    assert_eq!(c.len(), 1, "{ep:#}");
    assert_eq!(c[0]["process"]["pid"], orphan.pid());
    assert_eq!(c[0]["peer"]["pid"], dead_pid);
    assert_eq!(c[0]["peer"]["alive"], false);
    assert!(c[0]["backlog"].is_null(), "the consumer's side is gone");

    let text = run_ok(&dir, &["clean", "--dry-run"]);
    assert_mentions(&text, &["would remove", "dead.sock", "dead.lock"]);
    assert!(!text.contains("alive"), "{text}");
    assert!(dir.join("dead.sock").exists() && dir.join("dead.lock").exists());

    let text = run_ok(&dir, &["clean"]);
    let removed = format!("removed {}", dir.join("dead.sock").display());
    assert_mentions(&text, &[&removed]);
    assert!(!dir.join("dead.sock").exists() && !dir.join("dead.lock").exists());
    assert!(dir.join("alive.sock").exists() && dir.join("alive.lock").exists());
    let scan = ls_json(&dir);
    assert_eq!(
        endpoint(&scan, "shm://alive", &dir).expect("alive listed")["state"],
        "live"
    );
    // The orphaned connection is still listed, with no name behind it.
    assert_eq!(
        endpoint(&scan, "shm://dead", &dir).expect("orphan listed")["state"],
        "unbound"
    );
    orphan.kill();
    assert_mentions(&run_ok(&dir, &["clean"]), &["nothing stale"]);
    drop(alive);
}

#[test]
fn top_shows_rates_between_frames() {
    let dir = runtime_dir("top");
    let _recv = Proc::spawn(&dir, &["recv", "shm://top", "--quiet"]);
    let mut send = Proc::spawn(&dir, &["send", "shm://top", "--connect-timeout", "10"]);
    wait_for(&dir, "shm://top", "a connection", |ep| {
        ep["sides"].as_array().is_some_and(|s| s.len() == 2)
    });
    let top = shmsock(&dir)
        .args(["top", "--json", "--iterations", "2", "--interval", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("top");
    // A paced sender (about 200 messages/s of 8 bytes) while top measures.
    let pacer_deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < pacer_deadline {
        send.send_lines(&["12345678"]);
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = top.wait_with_output().expect("top output");
    let frames: Vec<Value> = assert_success(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(frames.len(), 2, "--iterations 2 prints two frames");
    for frame in &frames {
        let ep = endpoint(frame, "shm://top", &dir).expect("listed");
        let c = sides(ep, "connector")[0];
        let l = sides(ep, "listener")[0];
        let rates = &c["rates"];
        let secs = rates["interval_secs"].as_f64().expect("interval");
        assert!((0.25..5.0).contains(&secs), "{secs}");
        let out_rate = rates["msgs_sent_per_s"].as_f64().expect("rate");
        let bytes_rate = rates["bytes_sent_per_s"].as_f64().expect("rate");
        let in_rate = l["rates"]["msgs_received_per_s"].as_f64().expect("rate");
        assert!(out_rate > 10.0 && in_rate > 10.0, "{rates} {}", l["rates"]);
        assert!(
            (bytes_rate / out_rate - 8.0).abs() < 0.01,
            "8-byte messages"
        );
    }
}

#[test]
fn ls_top_and_clean_have_help_with_examples() {
    let dir = runtime_dir("help");
    for sub in ["ls", "top", "clean"] {
        let text = run_ok(&dir, &[sub, "--help"]);
        assert_mentions(&text, &["Examples:", &format!("shmsock {sub}")]);
    }
}

/// A `tcp://` subscriber that moved to its publisher's hidden ring: `ls` names the ring
/// "upgraded from tcp://…" and lists the subscriber, in text and in JSON.
#[test]
fn ls_marks_a_hidden_upgrade_ring_with_the_endpoint_and_the_subscribers_that_moved() {
    let dir = runtime_dir("upgrade");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let mut publisher = Proc::spawn(&dir, &["pub", &tcp, "--wait-subscribers", "1"]);
    let sub = Proc::spawn(&dir, &["sub", &tcp, "--connect-timeout", "10"]);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let ring = loop {
        // A subscriber moves at a message published after it connected.
        publisher.send_lines(&["tick"]);
        let scan = ls_json(&dir);
        let found = scan["endpoints"].as_array().and_then(|eps| {
            eps.iter()
                .find(|e| {
                    e["upgraded_from"] == tcp.as_str()
                        && sides(e, "subscriber")
                            .iter()
                            .any(|s| s["process"]["pid"] == sub.pid())
                })
                .cloned()
        });
        if let Some(ring) = found {
            break ring;
        }
        assert!(
            Instant::now() < deadline,
            "no ring upgraded from {tcp} with subscriber {}; last scan: {scan:#}",
            sub.pid()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ring["upgraded_from_exact"], true, "{ring:#}");
    assert_eq!(ring["bound_by"]["pid"], publisher.pid(), "{ring:#}");
    let name = ring["endpoint"].as_str().expect("a name");
    assert!(
        name.starts_with(&format!("shm://upgrade.{}.", publisher.pid())),
        "{name}"
    );
    let text = run_ok(&dir, &["ls"]);
    let moved = format!(
        "1 subscriber(s) moved to shared memory: pid {} (shmsock) from {tcp}",
        sub.pid()
    );
    assert_mentions(
        &text,
        &[
            name,
            &format!("upgraded from {tcp}: the publisher's hidden ring"),
            &moved,
        ],
    );
    // An ordinary endpoint says nothing of the kind.
    assert!(!text.contains("upgraded from shm://"), "{text}");
}
