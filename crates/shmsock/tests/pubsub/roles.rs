//! The child side: what a peer process does, chosen by `SHMSOCK_TEST_ROLE`.
//!
//! Every child dies with the thread that spawned it (`PR_SET_PDEATHSIG`) and a role that
//! waits to be killed sleeps at most [`IDLE_MAX`], so no role outlives a failed test.

use std::time::Duration;

use crate::stream::{receive_until_end, Stream, Tally};
use shmsock::{Conn, Options, Overflow, Publisher, Subscriber};
use shmsock_testkit::child::{report, seed_and_max_len, var_u64, IDLE_MAX};
use shmsock_testkit::harness::{open_fds, Peer, STEP_TIMEOUT};
use shmsock_testkit::pubsub::wait_for_at_least;

/// Number of messages a publishing role sends, the seed and the largest message of the
/// stream.
pub use shmsock_testkit::child::{COUNT_ENV, MAX_LEN_ENV, SEED_ENV};
/// If set, a subscriber learns where it starts from its first message.
pub const LATE_ENV: &str = "SHMSOCK_TEST_LATE";
/// If set to N, a subscriber sleeps 1 ms after every N messages (it falls behind).
pub const SLOW_EVERY_ENV: &str = "SHMSOCK_TEST_SLOW_EVERY";

/// Runs `role` against `ep`; returns when the role is done (the caller exits the process).
pub fn run(role: &str, ep: &str) {
    match role {
        "subscribe" => subscribe(ep),
        "idle_subscriber" => {
            let _sub = connect(ep);
            report("ready");
            std::thread::sleep(IDLE_MAX);
        }
        "publish_then_hang" => {
            let _publisher = publish(ep);
            std::thread::sleep(IDLE_MAX);
        }
        "publish_then_close" => {
            drop(publish(ep));
            report("closed");
        }
        "churn_publisher" => churn_publisher(ep),
        "sample_subscribe" => crate::loans::sample_subscribe(ep),
        "hold_samples" => crate::loans::hold_samples(ep),
        "subscribe_to_anything" => match Subscriber::connect(ep) {
            Ok(_) => report("connected"),
            Err(e) => report(format!("error {e:?} | {e}")),
        },
        "connect_to_anything" => match Conn::connect(ep) {
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
    let (seed, max_len) = seed_and_max_len();
    let mut tally = Tally::new(seed, max_len, std::env::var_os(LATE_ENV).is_some());
    let mut sub = connect(ep);
    report("ready");
    let slow_every = std::env::var(SLOW_EVERY_ENV).map_or(0, |v| v.parse().expect("a number"));
    let mut buf = vec![0u8; max_len];
    let received = receive_until_end(&mut tally, |tally| {
        let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT)?;
        if slow_every > 0 && tally.delivered % slow_every == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(tally.message(&buf[..n]))
    });
    match received {
        Ok((end, secs)) => report(tally.report(end, secs)),
        Err(what) => report(format!("error {what}")),
    }
}

/// Binds a publisher, waits for one subscriber, sends `COUNT` messages.
fn publish(ep: &str) -> Publisher {
    let mut publisher = Publisher::bind(ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    report("bound");
    wait_for_at_least(&mut publisher, 1);
    let count = var_u64(COUNT_ENV);
    let (seed, max_len) = seed_and_max_len();
    let mut stream = Stream::new(seed, max_len);
    stream.send_many(&mut publisher, count, STEP_TIMEOUT);
    report(format!("sent {count}"));
    publisher
}

/// A `DropOldest` publisher whose subscribers come and die (SIGKILL) one after another
/// while it publishes; it never asks for its subscriber count. Reports how many fds it
/// holds more than before the first subscriber.
fn churn_publisher(ep: &str) {
    // Our own rendezvous directory, the one our own children will be pointed at.
    shmsock_testkit::harness::setup();
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
