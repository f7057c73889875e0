//! Soak: a writer process streams small checked messages to us for a long time; nothing
//! may be lost, duplicated or torn, RSS must stay flat (checked at every report and at the
//! end against a baseline taken before the first message, so whatever the run's length),
//! and the latency must not drift.
//!
//! Each 32-byte message is `[seq][send time, CLOCK_MONOTONIC ns][seq-derived word][checksum
//! of the first 24 bytes]`. CLOCK_MONOTONIC is one clock for every process of the machine,
//! so the receiver measures the one-way delivery latency of every 16th message. Under
//! saturation that latency includes the time a message waits in the (64 KiB) ring.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmsock::{Error, Options};

use crate::leaks;
use shmsock_testkit::child::{report, var_u64, COUNT_ENV};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::message::checksum;

const MSG_BYTES: usize = 32;
const RING_BYTES: usize = 64 * 1024;
/// The CI soak: 10 million messages (debug build; see the README for the measured time).
const CI_MESSAGES: u64 = 10_000_000;
const LONG_MESSAGES: u64 = 1_000_000_000;
const SAMPLE_EVERY: u64 = 16;
/// How much our RSS may grow from the moment we are connected to the end of the run (and
/// at every report on the way): far more than a run needs (the peer's ring is 64 KiB,
/// every buffer is allocated before the baseline), far less than a leak per message or
/// per report would add over millions of messages.
const RSS_GROWTH_MAX: u64 = 16 << 20;

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn mix(seq: u64) -> u64 {
    seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

fn encode(seq: u64, msg: &mut [u8; MSG_BYTES]) {
    msg[0..8].copy_from_slice(&seq.to_le_bytes());
    msg[8..16].copy_from_slice(&now_ns().to_le_bytes());
    msg[16..24].copy_from_slice(&mix(seq).to_le_bytes());
    let sum = checksum(&msg[..24]);
    msg[24..32].copy_from_slice(&sum.to_le_bytes());
}

/// Checks message `seq`; returns its send time.
fn verify(seq: u64, msg: &[u8]) -> u64 {
    assert_eq!(msg.len(), MSG_BYTES, "message #{seq} has the wrong length");
    let word = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().expect("8 bytes"));
    assert_eq!(word(0), seq, "lost, duplicated or reordered message");
    assert_eq!(word(16), mix(seq), "message #{seq} is torn");
    assert_eq!(
        word(24),
        checksum(&msg[..24]),
        "message #{seq} has a bad checksum"
    );
    word(8)
}

pub fn writer_child(ep: &str) {
    let count = var_u64(COUNT_ENV);
    let mut conn = shmsock::Conn::connect_with(ep, Options::new().ring_capacity(RING_BYTES))
        .unwrap_or_else(|e| panic!("connecting to {ep}: {e}"));
    let mut msg = [0u8; MSG_BYTES];
    for seq in 0..count {
        encode(seq, &mut msg);
        conn.send_timeout(&msg, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("sending message #{seq}: {e}"));
    }
    drop(conn);
    report("done");
}

fn soak(count: u64, until: Option<Duration>, interval: Duration) {
    let _serial = crate::serial();
    let ep = harness::endpoint("soak");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn("soak_writer", &ep, &[(COUNT_ENV, &count.to_string())]);
    let child = peer.pid().as_raw_nonzero().get().to_string();
    let mut conn = harness::accept(&listener).expect("accepting the writer");
    // The RSS baseline, taken before the first message: the bound below is asserted
    // whatever the run's length, even one shorter than a report interval.
    let rss_start = leaks::rss_bytes();
    let mut interval_hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut total_hist = interval_hist.clone();
    let mut buf = [0u8; 64];
    let t0 = Instant::now();
    let mut last_report = t0;
    let mut at_last_report = 0u64;
    let mut seq = 0u64;
    loop {
        let n = match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
            Ok(n) => n,
            Err(Error::PeerClosed { .. }) => break,
            Err(e) => panic!("after {seq} messages: {e}"),
        };
        let sent = verify(seq, &buf[..n]);
        if seq.is_multiple_of(SAMPLE_EVERY) {
            let lat = now_ns().saturating_sub(sent).max(1);
            interval_hist.saturating_record(lat);
        }
        seq += 1;
        if seq.is_multiple_of(65_536) && last_report.elapsed() >= interval {
            let (rss, child_rss) = (leaks::rss_bytes(), leaks::status_bytes(&child, "VmRSS"));
            assert_rss_flat(rss_start, rss, seq);
            let secs = last_report.elapsed().as_secs_f64();
            eprintln!(
                "soak {:>7.1}s: {seq:>13} msgs, {:>9.0} msgs/s, RSS us {:>6} KiB peer {:>6} KiB, \
                 latency p50 {:>8.1} µs p99 {:>8.1} µs p99.9 {:>8.1} µs max {:>9.1} µs",
                t0.elapsed().as_secs_f64(),
                (seq - at_last_report) as f64 / secs,
                rss >> 10,
                child_rss >> 10,
                interval_hist.value_at_quantile(0.5) as f64 / 1e3,
                interval_hist.value_at_quantile(0.99) as f64 / 1e3,
                interval_hist.value_at_quantile(0.999) as f64 / 1e3,
                interval_hist.max() as f64 / 1e3,
            );
            total_hist.add(&interval_hist).expect("same bounds");
            interval_hist.reset();
            last_report = Instant::now();
            at_last_report = seq;
            if until.is_some_and(|u| t0.elapsed() >= u) {
                break;
            }
        }
    }
    let took = t0.elapsed();
    total_hist.add(&interval_hist).expect("same bounds");
    let stopped_early = seq < count;
    if !stopped_early {
        assert_eq!(seq, count, "every message arrived");
        peer.expect("done");
        peer.wait_success();
    }
    let rss = leaks::rss_bytes();
    eprintln!(
        "soak: {seq} messages in {took:.1?} ({:.0} msgs/s), latency p50 {:.1} µs p99 {:.1} µs \
         p99.9 {:.1} µs max {:.1} µs, RSS {} KiB (connected: {} KiB)",
        seq as f64 / took.as_secs_f64(),
        total_hist.value_at_quantile(0.5) as f64 / 1e3,
        total_hist.value_at_quantile(0.99) as f64 / 1e3,
        total_hist.value_at_quantile(0.999) as f64 / 1e3,
        total_hist.max() as f64 / 1e3,
        rss >> 10,
        rss_start >> 10,
    );
    assert_rss_flat(rss_start, rss, seq);
}

/// Checks that our RSS (`rss`, after `seq` messages) grew by less than [`RSS_GROWTH_MAX`]
/// since `start`.
#[track_caller]
fn assert_rss_flat(start: u64, rss: u64, seq: u64) {
    assert!(
        rss < start.saturating_add(RSS_GROWTH_MAX),
        "RSS grew from {} KiB to {} KiB after {seq} messages of the soak (bound: +{} KiB)",
        start >> 10,
        rss >> 10,
        RSS_GROWTH_MAX >> 10
    );
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// CI: 10 million messages across processes, every one checked.
#[test]
fn soak_ten_million_checked_messages() {
    soak(
        env_u64("SHMSOCK_SOAK_MESSAGES").unwrap_or(CI_MESSAGES),
        None,
        Duration::from_secs(5),
    );
}

/// The long run: 1e9 messages (`SHMSOCK_SOAK_MESSAGES`), or `SHMSOCK_SOAK_SECS` seconds,
/// with a report every minute.
#[test]
#[ignore = "long run (1e9 messages or SHMSOCK_SOAK_SECS); see the README"]
fn soak_long() {
    let secs = env_u64("SHMSOCK_SOAK_SECS");
    soak(
        env_u64("SHMSOCK_SOAK_MESSAGES").unwrap_or(if secs.is_some() {
            u64::MAX
        } else {
            LONG_MESSAGES
        }),
        secs.map(Duration::from_secs),
        Duration::from_secs(60),
    );
}
