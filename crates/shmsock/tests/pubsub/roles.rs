//! The child side: what a peer process does, chosen by `SHMSOCK_TEST_ROLE`.
//!
//! Every child dies with the thread that spawned it (`PR_SET_PDEATHSIG`) and a role that
//! waits to be killed sleeps at most [`IDLE_MAX`], so no role outlives a failed test.

use std::io::Write;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmsock::{Conn, Error, Options, Overflow, Publisher, Subscriber};

use crate::harness::{Peer, ENDPOINT_ENV, REPORT_MARK, STEP_TIMEOUT};
use crate::stream::{End, Stream, Tally};

/// Number of messages a publishing role sends.
pub const COUNT_ENV: &str = "SHMSOCK_TEST_COUNT";
/// Seed of the message stream.
pub const SEED_ENV: &str = "SHMSOCK_TEST_SEED";
/// Largest message of the stream.
pub const MAX_LEN_ENV: &str = "SHMSOCK_TEST_MAX_LEN";
/// If set, a subscriber learns where it starts from its first message.
pub const LATE_ENV: &str = "SHMSOCK_TEST_LATE";
/// If set to N, a subscriber sleeps 1 ms after every N messages (it falls behind).
pub const SLOW_EVERY_ENV: &str = "SHMSOCK_TEST_SLOW_EVERY";

/// Longest a role waits to be killed.
const IDLE_MAX: Duration = Duration::from_secs(60);

/// Prints one protocol line for the parent.
pub fn report(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{REPORT_MARK}{line}").expect("writing to the parent");
    out.flush().expect("flushing to the parent");
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent did not set {name}"))
}

fn var_u64(name: &str) -> u64 {
    var(name)
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not a number: {e}"))
}

/// Runs `role`; returns when the role is done (the caller exits the process).
pub fn run(role: &str) {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .expect("prctl(PR_SET_PDEATHSIG)");
    let ep = var(ENDPOINT_ENV);
    match role {
        "subscribe" => subscribe(&ep),
        "idle_subscriber" => {
            let _sub = connect(&ep);
            report("ready");
            std::thread::sleep(IDLE_MAX);
        }
        "publish_then_hang" => {
            let _publisher = publish(&ep);
            std::thread::sleep(IDLE_MAX);
        }
        "publish_then_close" => {
            drop(publish(&ep));
            report("closed");
        }
        "churn_publisher" => churn_publisher(&ep),
        "sample_subscribe" => crate::loans::sample_subscribe(&ep),
        "hold_samples" => crate::loans::hold_samples(&ep),
        "subscribe_to_anything" => match Subscriber::connect(&ep) {
            Ok(_) => report("connected"),
            Err(e) => report(format!("error {e:?} | {e}")),
        },
        "connect_to_anything" => match Conn::connect(&ep) {
            Ok(_) => report("connected"),
            Err(e) => report(format!("error {e:?} | {e}")),
        },
        other => panic!("unknown role {other:?}"),
    }
}

fn connect(ep: &str) -> Subscriber {
    Subscriber::connect(ep).unwrap_or_else(|e| panic!("subscribing to {ep}: {e}"))
}

/// Receives until the publisher ends, checking every message; reports the tally.
fn subscribe(ep: &str) {
    let (seed, max_len) = (var_u64(SEED_ENV), var_u64(MAX_LEN_ENV) as usize);
    let mut tally = Tally::new(seed, max_len, std::env::var_os(LATE_ENV).is_some());
    let mut sub = connect(ep);
    report("ready");
    let slow_every = std::env::var(SLOW_EVERY_ENV).map_or(0, |v| v.parse().expect("a number"));
    let mut buf = vec![0u8; max_len];
    let mut start = None;
    let end = loop {
        let checked = match sub.recv_timeout(&mut buf, STEP_TIMEOUT) {
            Ok(n) => {
                if slow_every > 0 && tally.delivered % slow_every == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                tally.message(&buf[..n])
            }
            Err(Error::Lagged { missed, .. }) => tally.lagged(missed),
            Err(Error::PeerClosed { .. }) => break End::Closed,
            Err(Error::PeerGone { .. }) => break End::Gone,
            Err(e) => Err(format!("after {} messages: {e}", tally.delivered)),
        };
        start.get_or_insert_with(Instant::now);
        if let Err(what) = checked {
            report(format!("error {what}"));
            return;
        }
    };
    let secs = start.map_or(0.0, |t| t.elapsed().as_secs_f64());
    report(tally.report(end, secs));
}

/// Binds a publisher, waits for one subscriber, sends `COUNT` messages.
fn publish(ep: &str) -> Publisher {
    let mut publisher = Publisher::bind(ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    report("bound");
    let deadline = Instant::now() + STEP_TIMEOUT;
    while publisher.subscriber_count() == 0 {
        assert!(Instant::now() < deadline, "no subscriber came");
        std::thread::sleep(Duration::from_millis(1));
    }
    let count = var_u64(COUNT_ENV);
    let mut stream = Stream::new(var_u64(SEED_ENV), var_u64(MAX_LEN_ENV) as usize);
    stream.send_many(&mut publisher, count, STEP_TIMEOUT);
    report(format!("sent {count}"));
    publisher
}

/// Number of open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("listing /proc/self/fd")
        .count()
}

/// A `DropOldest` publisher whose subscribers come and die (SIGKILL) one after another
/// while it publishes; it never asks for its subscriber count. Reports how many fds it
/// holds more than before the first subscriber.
fn churn_publisher(ep: &str) {
    // Our own rendezvous directory, the one our own children will be pointed at.
    crate::harness::setup();
    let options = Options::new().overflow(Overflow::DropOldest);
    let mut publisher =
        Publisher::bind_with(ep, options).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    let msg = [7u8; 100];
    // Warm up (the first send allocates, the accept thread has started).
    publisher.send(&msg).expect("send");
    let before = open_fds();
    let rounds = var_u64(COUNT_ENV);
    for _ in 0..rounds {
        let mut sub = Peer::spawn("idle_subscriber", ep, &[]);
        sub.expect("ready");
        sub.kill();
        sub.wait();
        for _ in 0..1000 {
            publisher.send(&msg).expect("a DropOldest send");
        }
        // One step at a time for the parent's timeout (a slow machine or valgrind).
        report("round");
    }
    report(format!("extra_fds {}", open_fds() as i64 - before as i64));
    drop(publisher);
}
