//! A stopped subscriber (SIGSTOP): under `DropOldest` it gets the exact `Lagged` count and
//! never slows the others; under `Block` the publisher times out naming it.

use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmsock::{Error, Options};

use crate::fanout::{self, raw_pid, signal, summary};
use crate::roles::{MAX_LEN_ENV, SEED_ENV, SLOW_EVERY_ENV};
use crate::stream::{End, Stream};
use shmsock_testkit::harness::{self, Peer, PEER_DEATH_BOUND, STEP_TIMEOUT};

/// Small enough that a stopped subscriber is lapped many times.
const SMALL_RING_BYTES: usize = 64 * 1024;
/// Messages published while one subscriber is stopped (~1.4 MB, ~20 laps, 0.5 s), then as
/// many again after it was resumed.
const WHILE_STOPPED: u64 = 10_000;
/// No single send of a `DropOldest` publisher may take this long (it never waits).
const SEND_STALL: Duration = Duration::from_secs(1);
/// The publisher sends bursts of this many messages (~15 KB, a quarter of the ring)...
const BURST: u64 = 100;
/// ...every this long (~20,000 messages/s), a rate two running subscribers sustain on a
/// busy 2-core machine even in a debug build, so only the stopped one should lag.
const BURST_EVERY: Duration = Duration::from_millis(5);

/// Publishes `count` messages at the paced rate; returns the longest single send.
fn publish_paced(stream: &mut Stream, publisher: &mut shmsock::Publisher, count: u64) -> Duration {
    let mut longest = Duration::ZERO;
    let mut left = count;
    while left > 0 {
        let burst = left.min(BURST);
        longest = longest.max(stream.send_many(publisher, burst, STEP_TIMEOUT));
        left -= burst;
        std::thread::sleep(BURST_EVERY);
    }
    longest
}

#[test]
fn drop_oldest_stopped_subscriber_gets_the_exact_lag_and_others_keep_up() {
    let _heavy = harness::cpu_heavy_test();
    let ep = harness::endpoint("dropoldest");
    let mut publisher = fanout::bind_drop_oldest(&ep, SMALL_RING_BYTES);
    let (seed, max_len) = (0xd0_0001, 256);
    let mut subs = fanout::subscribers(&mut publisher, 3, seed, max_len);
    let mut stream = Stream::new(seed, max_len);

    // The stopped one is blocked in recv on an empty ring.
    signal(subs[0].pid(), Signal::STOP);
    fanout::wait_until_stopped(subs[0].pid());
    let t = Instant::now();
    let longest_stopped = publish_paced(&mut stream, &mut publisher, WHILE_STOPPED);
    let rate_stopped = WHILE_STOPPED as f64 / t.elapsed().as_secs_f64();

    // Resumed while the publisher keeps going: it reads (and lags) under a live writer.
    signal(subs[0].pid(), Signal::CONT);
    let t = Instant::now();
    let longest_after = publish_paced(&mut stream, &mut publisher, WHILE_STOPPED);
    let rate_after = WHILE_STOPPED as f64 / t.elapsed().as_secs_f64();
    let sent = stream.sent();
    drop(publisher);

    eprintln!(
        "publisher: {rate_stopped:.0} msgs/s with one subscriber stopped (longest send \
         {longest_stopped:.1?}), {rate_after:.0} msgs/s after SIGCONT (longest {longest_after:.1?})"
    );
    assert!(
        longest_stopped < SEND_STALL && longest_after < SEND_STALL,
        "a DropOldest publisher stalled: longest sends {longest_stopped:?}, {longest_after:?}"
    );

    let stopped = summary(&mut subs[0]);
    eprintln!("stopped subscriber: {stopped}");
    stopped.assert_accounts_for(sent, End::Closed);
    assert_eq!(
        stopped.str("lag_came_first"),
        "true",
        "its first recv after SIGCONT must be Lagged: {stopped}"
    );
    // Lagged(n) and then message n exactly (Tally checks the sequence number after every
    // lag); it was lapped ~20 times, so at least most of the first half is gone (and more
    // if the publisher got ahead again before it first looked).
    let first_lag = stopped.num("first_lag");
    assert_eq!(stopped.num("first_lag_at"), 0, "{stopped}");
    assert!(
        first_lag > (WHILE_STOPPED / 2) as i64 && first_lag < sent as i64,
        "{stopped}"
    );
    fanout::check_running_subscribers(&mut subs, &stopped, sent);
}

#[test]
fn block_publisher_times_out_naming_the_stopped_subscriber() {
    let _timing = harness::timing_test();
    let ep = harness::endpoint("blockslow");
    let mut publisher = fanout::bind(&ep, Options::new().ring_capacity(SMALL_RING_BYTES));
    let (seed, max_len) = (0xb1_0c4, 256);
    let mut subs = fanout::subscribers(&mut publisher, 3, seed, max_len);
    let stopped_pid = raw_pid(&subs[0]);
    let mut stream = Stream::new(seed, max_len);
    signal(subs[0].pid(), Signal::STOP);
    fanout::wait_until_stopped(subs[0].pid());

    let patience = Duration::from_millis(300);
    let err = loop {
        match stream.send(&mut publisher, patience) {
            Ok(()) => assert!(
                stream.sent() < (SMALL_RING_BYTES / 16) as u64,
                "the publisher never blocked on the stopped subscriber"
            ),
            Err(e) => break e,
        }
    };
    match &err {
        Error::SlowSubscriber {
            pid,
            waited,
            endpoint,
        } => {
            assert_eq!(*pid, stopped_pid, "{err}");
            assert!(*waited >= patience, "{err}");
            assert_eq!(*endpoint, ep);
        }
        other => panic!(
            "after {} messages: {other:?}, expected SlowSubscriber",
            stream.sent()
        ),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!("subscriber pid {stopped_pid}")),
        "{text}"
    );
    eprintln!("after {} messages: {text}", stream.sent());

    // Kill the stopped subscriber: the same message now goes through.
    let killed = harness::kill_pid(subs[0].pid());
    stream
        .send(&mut publisher, STEP_TIMEOUT)
        .expect("sending once the slow subscriber is dead");
    let took = killed.elapsed();
    eprintln!("publisher proceeded {took:.1?} after the SIGKILL");
    assert!(
        took < PEER_DEATH_BOUND + shmsock::PEER_CHECK_INTERVAL,
        "the publisher went on {took:?} after the kill"
    );
    subs[0].wait();
    assert_eq!(publisher.subscriber_count(), 2);

    stream.send_many(&mut publisher, 2000, STEP_TIMEOUT);
    let sent = stream.sent();
    drop(publisher);
    fanout::assert_none_missed(&mut subs[1..], sent, "Overflow::Block never drops", |_| {});
}

/// Messages of up to a quarter of the ring (so frames wrap with padding and one eviction
/// frees several frames) to a fast and a slow subscriber: every message arrives whole or is
/// counted in a `Lagged`, never torn, duplicated or miscounted.
#[test]
fn drop_oldest_large_messages_arrive_whole_or_are_counted_lost() {
    let _heavy = harness::cpu_heavy_test();
    let ep = harness::endpoint("dropbig");
    let mut publisher = fanout::bind_drop_oldest(&ep, SMALL_RING_BYTES);
    let (seed, max_len) = (0xb16_0001, SMALL_RING_BYTES / 4);
    let (seed_s, max_s) = (seed.to_string(), max_len.to_string());
    let mut subs = vec![
        Peer::spawn(
            "subscribe",
            &ep,
            &[(SEED_ENV, &seed_s), (MAX_LEN_ENV, &max_s)],
        ),
        Peer::spawn(
            "subscribe",
            &ep,
            &[
                (SEED_ENV, &seed_s),
                (MAX_LEN_ENV, &max_s),
                (SLOW_EVERY_ENV, "20"),
            ],
        ),
    ];
    for sub in &mut subs {
        sub.expect("ready");
    }
    shmsock_testkit::pubsub::wait_for_subscribers(&mut publisher, 2);
    let mut stream = Stream::new(seed, max_len);
    let count = 5_000;
    let longest = publish_paced(&mut stream, &mut publisher, count);
    assert!(longest < SEND_STALL, "a DropOldest send took {longest:?}");
    drop(publisher);
    for (sub, name) in subs.iter_mut().zip(["fast", "slow"]) {
        let s = summary(sub);
        eprintln!("{name} subscriber: {s}");
        s.assert_accounts_for(count, End::Closed);
        sub.wait_success();
    }
}
