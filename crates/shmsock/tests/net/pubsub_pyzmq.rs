//! Publish/subscribe interop with pyzmq (libzmq): pyzmq PUB and XPUB → our Subscriber, our
//! Publisher → pyzmq SUB, over tcp:// and unix:// (ZeroMQ's ipc://), with topic filters and
//! payloads checked byte for byte. The Python side is `pubsub_peer.py`, whose schedule of
//! messages this file mirrors. Without python3 or pyzmq the tests print why they are
//! skipped and pass.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmsock::{Options, Publisher, Subscriber};

use crate::common::{bind_endpoint, foreign_bind_endpoint, payload, SCHEMES, SIZES, STEP_TIMEOUT};
use crate::pyzmq::pyzmq_available;

const TOPICS: [&[u8]; 4] = [b"AB", b"B", b"C", b"D"];
const WANTED: [&[u8]; 2] = [b"AB", b"C"];
const COUNT: usize = 28;

/// Every message of the schedule, whole (topic first).
fn schedule() -> Vec<Vec<u8>> {
    (0..COUNT)
        .map(|k| {
            let topic = TOPICS[k % TOPICS.len()];
            [topic, b".", &payload(k, SIZES[k % SIZES.len()])].concat()
        })
        .collect()
}

/// What a subscriber to [`WANTED`] receives: the matching messages, then one end marker
/// per wanted topic.
fn wanted() -> Vec<Vec<u8>> {
    let mut out: Vec<_> = schedule()
        .into_iter()
        .filter(|m| WANTED.iter().any(|w| m.starts_with(w)))
        .collect();
    out.extend(WANTED.iter().map(|t| [t, &b"end"[..]].concat()));
    out
}

/// The Python peer: killed and reaped on drop; its stdout lines arrive on `lines`.
struct PyPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl PyPeer {
    fn spawn(role: &str, endpoint: &str) -> PyPeer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/net/pubsub_peer.py");
        let mut child = Command::new("python3")
            .args([script, role, endpoint])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python3");
        let out = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyPeer {
            child,
            stdin,
            lines,
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(STEP_TIMEOUT)
            .expect("a line from the python peer")
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("writing to the python peer");
        stdin.flush().unwrap();
    }

    /// pyzmq binds: its endpoint, with the port it chose.
    fn bound(&self) -> String {
        let line = self.line();
        line.strip_prefix("BOUND ")
            .unwrap_or_else(|| panic!("expected BOUND, got {line:?}"))
            .to_owned()
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Subscribes to the wanted topics and `S` (sync) and cancels "everything" last, so at
/// every moment the pyzmq publisher sends us either everything or what we want.
fn subscribe_wanted(sub: &mut Subscriber) {
    for t in WANTED {
        sub.subscribe(t).unwrap();
    }
    sub.subscribe(b"S").unwrap();
    sub.unsubscribe(b"").unwrap();
}

/// Receives the schedule's wanted messages (skipping `Swarm`) and compares them.
fn receive_wanted(sub: &mut Subscriber) {
    let mut buf = vec![0u8; 4 << 20];
    let expected = wanted();
    let mut got = 0;
    while got < expected.len() {
        let n = sub
            .recv_timeout(&mut buf, STEP_TIMEOUT)
            .expect("receiving from pyzmq");
        if &buf[..n] == b"Swarm" {
            continue;
        }
        assert!(
            buf[..n] == expected[got][..],
            "message {got}: {n} bytes {:?}, expected {} bytes {:?}",
            String::from_utf8_lossy(&buf[..n.min(8)]),
            expected[got].len(),
            String::from_utf8_lossy(&expected[got][..8.min(expected[got].len())])
        );
        got += 1;
    }
}

#[test]
fn pyzmq_pub_to_our_subscriber_with_topics() {
    if !pyzmq_available() {
        return;
    }
    for scheme in SCHEMES {
        let (ep, _socket_file) = foreign_bind_endpoint(scheme);
        let mut py = PyPeer::spawn("pub", &ep);
        let mut sub = Subscriber::connect(&py.bound()).expect("connecting to pyzmq");
        subscribe_wanted(&mut sub);
        // The warm-ups reach us once the connection is up (S or "" is always subscribed).
        let mut buf = [0u8; 64];
        let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).expect("a warm-up");
        assert_eq!(&buf[..n], b"Swarm");
        py.say("GO");
        receive_wanted(&mut sub);
        py.say("BYE");
        eprintln!("{scheme:?}: pyzmq PUB -> our SUB: ok");
    }
}

#[test]
fn pyzmq_xpub_sees_our_subscriptions_and_filters_for_us() {
    if !pyzmq_available() {
        return;
    }
    for scheme in SCHEMES {
        let (ep, _socket_file) = foreign_bind_endpoint(scheme);
        let mut py = PyPeer::spawn("xpub", &ep);
        let mut sub = Subscriber::connect(&py.bound()).expect("connecting to pyzmq");
        subscribe_wanted(&mut sub);
        // The XPUB starts once it has read our SUBSCRIBE commands for every wanted topic.
        receive_wanted(&mut sub);
        py.say("BYE");
        eprintln!("{scheme:?}: pyzmq XPUB -> our SUB: ok");
    }
}

#[test]
fn our_publisher_to_a_pyzmq_sub_with_topics() {
    if !pyzmq_available() {
        return;
    }
    for scheme in SCHEMES {
        // Room for the whole schedule, so a slow Python reader never makes us wait.
        let options = Options::new().ring_capacity(32 << 20);
        let mut publisher = Publisher::bind_with(&bind_endpoint(scheme), options).unwrap();
        let py = PyPeer::spawn("sub", publisher.endpoint());
        // pyzmq subscribes to AB, C, then S: once it sees an S message, all three are in.
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            publisher.send(b"Swarm").unwrap();
            match py.lines.recv_timeout(Duration::from_millis(10)) {
                Ok(line) if line == "SYNC" => break,
                Ok(line) => panic!("python: {line}"),
                Err(_) => assert!(Instant::now() < deadline, "pyzmq never synced"),
            }
        }
        for m in schedule() {
            publisher.send_timeout(&m, STEP_TIMEOUT).unwrap();
        }
        for t in WANTED {
            publisher.send(&[t, &b"end"[..]].concat()).unwrap();
        }
        assert_eq!(py.line(), "OK", "{scheme:?}: pyzmq checked our messages");
        eprintln!("{scheme:?}: our PUB -> pyzmq SUB: ok");
    }
}
