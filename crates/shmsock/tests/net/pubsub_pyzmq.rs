//! Publish/subscribe interop with pyzmq (libzmq): pyzmq PUB and XPUB → our Subscriber, our
//! Publisher → pyzmq SUB, over tcp:// and unix:// (ZeroMQ's ipc://), with topic filters and
//! payloads checked byte for byte. The Python side is `pubsub_peer.py`, whose schedule of
//! messages this file mirrors. Without python3 or pyzmq the tests print why they are
//! skipped and pass, except under `CI=true`, where they fail.

use std::time::{Duration, Instant};

use shmsock::{Options, Publisher, Subscriber};

use crate::common::{bind_endpoint, payload, RemoveOnDrop, Scheme, SIZES, STEP_TIMEOUT};
use crate::pyzmq::{pyzmq_schemes, PyPeer};

const SCRIPT: &str = "pubsub_peer.py";
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

/// A pyzmq publisher (`role`, with the script's options `py_args`) bound on `scheme`, and
/// our subscriber to it (with `options`), subscribed to the wanted topics
/// ([`subscribe_wanted`]).
fn subscribed_to(
    role: &str,
    scheme: Scheme,
    options: Options,
    py_args: &[&str],
) -> (PyPeer, Subscriber, RemoveOnDrop) {
    let (py, ep, socket_file) = PyPeer::bound_with(SCRIPT, role, scheme, py_args);
    let mut sub = Subscriber::connect_with(&ep, options).expect("connecting to pyzmq");
    subscribe_wanted(&mut sub);
    (py, sub, socket_file)
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

/// A pyzmq PUB (with the script's options `py_args`) bound on `scheme` sends the schedule
/// to our subscriber (with `options`), which receives exactly the wanted messages.
pub fn pyzmq_pub_to_our_subscriber(scheme: Scheme, options: Options, py_args: &[&str]) {
    let (mut py, mut sub, _socket_file) = subscribed_to("pub", scheme, options, py_args);
    // The warm-ups reach us once the connection is up (S or "" is always subscribed).
    let mut buf = [0u8; 64];
    let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).expect("a warm-up");
    assert_eq!(&buf[..n], b"Swarm");
    py.say("GO");
    receive_wanted(&mut sub);
    py.say("BYE");
}

#[test]
fn pyzmq_pub_to_our_subscriber_with_topics() {
    for &scheme in pyzmq_schemes() {
        pyzmq_pub_to_our_subscriber(scheme, Options::new(), &[]);
        eprintln!("{scheme:?}: pyzmq PUB -> our SUB: ok");
    }
}

#[test]
fn pyzmq_xpub_sees_our_subscriptions_and_filters_for_us() {
    for &scheme in pyzmq_schemes() {
        let (mut py, mut sub, _socket_file) = subscribed_to("xpub", scheme, Options::new(), &[]);
        // The XPUB starts once it has read our SUBSCRIBE commands for every wanted topic.
        receive_wanted(&mut sub);
        py.say("BYE");
        eprintln!("{scheme:?}: pyzmq XPUB -> our SUB: ok");
    }
}

/// Our publisher (with `options`) bound on `scheme` sends the schedule to a pyzmq SUB (with
/// the script's options `py_args`), which checks it received exactly the wanted messages.
pub fn our_publisher_to_a_pyzmq_sub(scheme: Scheme, options: Options, py_args: &[&str]) {
    // Room for the whole schedule, so a slow Python reader never makes us wait.
    let options = options.ring_capacity(32 << 20);
    let mut publisher = Publisher::bind_with(&bind_endpoint(scheme), options).unwrap();
    let mut py = PyPeer::spawn_with(SCRIPT, "sub", publisher.endpoint(), py_args);
    // pyzmq subscribes to AB, C, then S: once it sees an S message, all three are in.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        publisher.send(b"Swarm").unwrap();
        match py.next_line(Duration::from_millis(10)) {
            Some(line) if line == "SYNC" => break,
            Some(line) => panic!("python: {line}"),
            None => assert!(Instant::now() < deadline, "pyzmq never synced"),
        }
    }
    for m in schedule() {
        publisher.send_timeout(&m, STEP_TIMEOUT).unwrap();
    }
    for t in WANTED {
        publisher.send(&[t, &b"end"[..]].concat()).unwrap();
    }
    assert_eq!(py.line(), "OK", "{scheme:?}: pyzmq checked our messages");
}

#[test]
fn our_publisher_to_a_pyzmq_sub_with_topics() {
    for &scheme in pyzmq_schemes() {
        our_publisher_to_a_pyzmq_sub(scheme, Options::new(), &[]);
        eprintln!("{scheme:?}: our PUB -> pyzmq SUB: ok");
    }
}
