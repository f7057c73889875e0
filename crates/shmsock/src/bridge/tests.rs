//! The bridge with its source, destination and subscribers as threads of this process
//! (the CLI's tests run it as a process between processes, and kill its source).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Bridge, BridgeBuilder, BridgeEnd, BridgeStats, Error, Options, Publisher, Subscriber};

/// Longest any step may take before the test fails instead of hanging.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

fn endpoint(name: &str) -> String {
    let dir = crate::test_support::runtime_dir("shmsock-unit-");
    std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    format!("shm://bridge-{name}")
}

type Running = JoinHandle<(Result<BridgeEnd, Error>, BridgeStats)>;

/// Builds the bridge and runs it on a thread; returns its destination and the stop flag.
fn spawn(builder: BridgeBuilder) -> (String, Arc<AtomicBool>, Running) {
    let mut bridge = builder.build().expect("bridge builds");
    let destination = bridge.destination().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let running = std::thread::spawn(move || (bridge.run(&flag), bridge.stats()));
    (destination, stop, running)
}

fn wait_subscribers(publisher: &mut Publisher, n: usize) {
    let started = Instant::now();
    while publisher.subscriber_count() < n {
        assert!(started.elapsed() < STEP_TIMEOUT, "no subscriber came");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn recv(sub: &mut Subscriber) -> Vec<u8> {
    let mut buf = vec![0; 64 * 1024];
    let n = sub
        .recv_timeout(&mut buf, STEP_TIMEOUT)
        .expect("a forwarded message");
    buf.truncate(n);
    buf
}

fn finish(running: Running) -> (Result<BridgeEnd, Error>, BridgeStats) {
    let started = Instant::now();
    while !running.is_finished() {
        assert!(
            started.elapsed() < STEP_TIMEOUT,
            "the bridge did not return"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    running.join().expect("the bridge thread")
}

#[test]
fn matching_topics_reach_tcp_subscribers_in_order_and_a_closed_source_ends_the_run() {
    let source = endpoint("topics");
    let mut publisher = Publisher::bind(&source).unwrap();
    let (destination, _stop, running) = spawn(
        Bridge::builder(&source, "tcp://127.0.0.1:0")
            .topic("a.")
            .topic(b"c.".to_vec())
            .wait_subscribers(1),
    );
    let mut sub = Subscriber::connect(&destination).unwrap();
    wait_subscribers(&mut publisher, 1);
    let topics = ["a.", "b.", "c.", "d."];
    let mut wanted = Vec::new();
    for seq in 0..400usize {
        let topic = topics[seq % topics.len()];
        let msg = [topic.as_bytes(), &seq.to_le_bytes(), &vec![seq as u8; seq]].concat();
        publisher.send(&msg).unwrap();
        if topic == "a." || topic == "c." {
            wanted.push(msg);
        }
    }
    for msg in &wanted {
        assert_eq!(&recv(&mut sub), msg);
    }
    drop(publisher);
    let (end, stats) = finish(running);
    assert_eq!(end.unwrap(), BridgeEnd::SourceClosed);
    assert_eq!((stats.received, stats.forwarded), (200, 200));
    let bytes: usize = wanted.iter().map(Vec::len).sum();
    assert_eq!(stats.forwarded_bytes, bytes as u64);
    assert_eq!(stats.reconnects, 0);
}

#[test]
fn reconnect_follows_a_restarted_shm_source() {
    let source = endpoint("restart");
    let mut first = Publisher::bind(&source).unwrap();
    let (destination, stop, running) =
        spawn(Bridge::builder(&source, &endpoint("restart-out")).reconnect(true));
    let mut sub = Subscriber::connect(&destination).unwrap();
    wait_subscribers(&mut first, 1);
    first.send(b"one").unwrap();
    assert_eq!(recv(&mut sub), b"one");
    drop(first);
    let mut second = Publisher::bind(&source).unwrap();
    wait_subscribers(&mut second, 1);
    second.send(b"two").unwrap();
    assert_eq!(recv(&mut sub), b"two");
    stop.store(true, Ordering::Relaxed);
    let (end, stats) = finish(running);
    assert_eq!(end.unwrap(), BridgeEnd::Stopped);
    assert_eq!((stats.forwarded, stats.reconnects), (2, 1));
}

#[test]
fn messages_too_large_for_the_destination_are_skipped_and_counted() {
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let (destination, stop, running) = spawn(
        Bridge::builder(publisher.endpoint(), &endpoint("small-out"))
            .destination_options(Options::new().ring_capacity(4096))
            .wait_subscribers(1),
    );
    let mut sub = Subscriber::connect(&destination).unwrap();
    wait_subscribers(&mut publisher, 1);
    publisher.send(&[7u8; 10_000]).unwrap();
    publisher.send(b"small").unwrap();
    assert_eq!(recv(&mut sub), b"small");
    stop.store(true, Ordering::Relaxed);
    let (end, stats) = finish(running);
    assert_eq!(end.unwrap(), BridgeEnd::Stopped);
    assert_eq!(
        (stats.received, stats.forwarded, stats.too_large),
        (2, 1, 1)
    );
}

#[test]
fn stop_ends_a_run_blocked_on_a_subscriber_that_does_not_read() {
    let source = endpoint("stuck");
    let mut publisher = Publisher::bind(&source).unwrap();
    let (destination, stop, running) = spawn(
        Bridge::builder(&source, &endpoint("stuck-out"))
            .destination_options(Options::new().ring_capacity(4096))
            .wait_subscribers(1),
    );
    let _stuck = Subscriber::connect(&destination).unwrap(); // never reads
    wait_subscribers(&mut publisher, 1);
    for seq in 0..200u64 {
        publisher
            .send(&[seq.to_le_bytes(), [0; 8]].concat())
            .unwrap();
    }
    std::thread::sleep(3 * crate::BRIDGE_STOP_POLL);
    let stopping = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let (end, stats) = finish(running);
    assert!(
        stopping.elapsed() < 3 * crate::BRIDGE_STOP_POLL,
        "{stats:?}"
    );
    assert_eq!(end.unwrap(), BridgeEnd::Stopped);
    // The 4 KiB ring filled; the message in hand when it stopped is the one not forwarded.
    assert!(stats.forwarded > 0 && stats.forwarded < 200, "{stats:?}");
    assert_eq!(stats.received, stats.forwarded + 1, "{stats:?}");
}

#[test]
fn a_refused_source_is_an_error_after_the_connect_timeout() {
    let started = Instant::now();
    let (_, _stop, running) = spawn(
        Bridge::builder(&endpoint("nobody"), &endpoint("nobody-out"))
            .connect_timeout(Duration::from_millis(200)),
    );
    let (end, stats) = finish(running);
    assert!(
        matches!(end, Err(Error::ConnectionRefused { .. })),
        "{end:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(stats, BridgeStats::default());
}

#[test]
fn stop_ends_a_run_that_waits_for_a_missing_source() {
    let (_, stop, running) =
        spawn(Bridge::builder(&endpoint("absent"), &endpoint("absent-out")).reconnect(true));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!running.is_finished(), "reconnect keeps knocking");
    let stopping = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let (end, _) = finish(running);
    assert_eq!(end.unwrap(), BridgeEnd::Stopped);
    assert!(stopping.elapsed() < 3 * crate::BRIDGE_STOP_POLL);
}

#[test]
fn a_malformed_source_is_refused_by_build() {
    let err = Bridge::builder("shm://no/slash", "tcp://127.0.0.1:0")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidEndpoint { .. }), "{err}");
}
