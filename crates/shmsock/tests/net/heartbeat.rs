//! ZMTP 3.1 heartbeats (`Options::heartbeat`): a peer that stops answering without closing
//! (here a raw peer that completed the handshake, then neither reads nor writes, as a
//! stopped process or a cut cable would) is `PeerGone` within the timeout; a live idle peer
//! is not, because both sides answer PINGs while they wait.

use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Listener, Options, Publisher};

use rustix::process::{kill_process, Signal};
use shmsock_testkit::child::{report, IDLE_MAX};
use shmsock_testkit::harness::Peer;

use crate::common::{Raw, STEP_TIMEOUT};

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(500);

fn beating() -> Options {
    Options::new().heartbeat(INTERVAL, TIMEOUT)
}

/// A raw PAIR peer connected to `l` (handshake done), and our side of it.
fn raw_pair(l: &Listener) -> (Raw, Conn) {
    let ep = l.endpoint().to_owned();
    let t = std::thread::spawn(move || Raw::connect(&ep, "PAIR", 1));
    let c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    (t.join().unwrap(), c)
}

#[test]
fn a_silent_peer_is_pinged_then_reported_gone_within_the_timeout() {
    let l = Listener::bind_with("tcp://127.0.0.1:0", beating()).unwrap();
    let (mut raw, mut c) = raw_pair(&l);
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let err = c.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::PeerGone { .. }), "{err}");
    assert!(
        took >= TIMEOUT,
        "reported gone after {took:?}, before the timeout"
    );
    assert!(
        took < TIMEOUT + Duration::from_secs(1),
        "reported gone after {took:?}"
    );
    // What the silent peer was sent meanwhile: PINGs with our timeout as TTL (5 tenths).
    let (flags, body) = raw.frame();
    assert_eq!(flags, 0x04, "a command");
    assert_eq!(body, b"\x04PING\x00\x05");
}

#[test]
fn a_silent_peer_unblocks_a_send_waiting_on_a_full_socket() {
    let l = Listener::bind_with("tcp://127.0.0.1:0", beating()).unwrap();
    let (_raw, mut c) = raw_pair(&l);
    let big = vec![7u8; 1 << 20];
    let start = Instant::now();
    let err = loop {
        if let Err(e) = c.send(&big) {
            break e;
        }
        assert!(start.elapsed() < STEP_TIMEOUT, "send never failed");
    };
    assert!(matches!(err, Error::PeerGone { .. }), "{err}");
}

#[test]
fn live_idle_peers_keep_each_other_alive() {
    let l = Listener::bind_with("tcp://127.0.0.1:0", beating()).unwrap();
    let ep = l.endpoint().to_owned();
    let t = std::thread::spawn(move || {
        let mut c = Conn::connect_with(&ep, beating()).unwrap();
        // Idle for four timeouts, answering PINGs while it waits.
        let mut buf = [0u8; 64];
        let err = c.recv_timeout(&mut buf, 4 * TIMEOUT).unwrap_err();
        assert!(matches!(err, Error::TimedOut), "{err}");
        c.send(b"still here").unwrap();
        c.recv_vec().unwrap()
    });
    let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
    assert_eq!(&buf[..n], b"still here");
    c.send(b"me too").unwrap();
    assert_eq!(t.join().unwrap(), b"me too");
}

#[test]
fn a_publisher_drops_a_subscriber_that_stopped_answering() {
    let mut p = Publisher::bind_with("tcp://127.0.0.1:0", beating()).unwrap();
    let mut raw = Raw::connect(p.endpoint(), "SUB", 1);
    raw.send(&crate::common::command("SUBSCRIBE", b""));
    let start = Instant::now();
    while p.subscriber_count() == 0 {
        assert!(
            start.elapsed() < STEP_TIMEOUT,
            "the subscriber never counted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let counted = Instant::now();
    while p.subscriber_count() == 1 {
        assert!(
            counted.elapsed() < TIMEOUT + Duration::from_secs(2),
            "the silent subscriber was never dropped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(counted.elapsed() >= TIMEOUT - Duration::from_millis(50));
}

/// Child role: connects a `Conn` with heartbeats to `endpoint`, reports `connected`, then
/// waits in `recv` (answering PINGs) until it is killed.
pub fn idle_beating_conn(endpoint: &str) {
    let mut c = Conn::connect_with(endpoint, beating())
        .unwrap_or_else(|e| panic!("connecting to {endpoint}: {e}"));
    report("connected");
    let until = Instant::now() + IDLE_MAX;
    let mut buf = [0u8; 64];
    while Instant::now() < until {
        match c.recv_timeout(&mut buf, TIMEOUT) {
            Ok(_) | Err(Error::TimedOut) => {}
            Err(e) => panic!("idle peer: {e}"),
        }
    }
}

#[test]
fn a_stopped_peer_process_is_gone_within_the_timeout_and_a_running_one_is_not() {
    let l = Listener::bind_with("tcp://127.0.0.1:0", beating()).unwrap();
    let mut peer = Peer::spawn("idle_beating_conn", l.endpoint(), &[]);
    let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    peer.expect("connected");
    // Alive: three timeouts pass with heartbeats answered both ways.
    let mut buf = [0u8; 64];
    let err = c.recv_timeout(&mut buf, 3 * TIMEOUT).unwrap_err();
    assert!(
        matches!(err, Error::TimedOut),
        "a live peer was reported: {err}"
    );
    // Stopped, as a machine that vanished: the connection stays open but nothing answers.
    kill_process(peer.pid(), Signal::STOP).unwrap();
    let stopped = Instant::now();
    let err = c.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap_err();
    let took = stopped.elapsed();
    let _ = kill_process(peer.pid(), Signal::CONT);
    assert!(matches!(err, Error::PeerGone { .. }), "{err}");
    assert!(
        took < TIMEOUT + Duration::from_secs(1),
        "the stopped peer was reported after {took:?}"
    );
}
