//! The writer side: what a child process does, chosen by `SHMSOCK_TEST_ROLE`.

use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Options, WaitStrategy};
use shmsock_testkit::child::{report, var_u64};
use shmsock_testkit::harness::STEP_TIMEOUT;
use shmsock_testkit::message;

/// Messages a streaming writer sends, the seed of its stream (its index) and its largest
/// message.
pub use shmsock_testkit::child::{COUNT_ENV, MAX_LEN_ENV, SEED_ENV};
/// Pause between two messages of a paced writer, in microseconds.
pub const GAP_US_ENV: &str = "SHMSOCK_TEST_GAP_US";

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn connect(ep: &str) -> Conn {
    let opts = Options::new().ring_capacity(64 * 1024);
    let conn = Conn::connect_with(ep, opts).unwrap_or_else(|e| panic!("connecting to {ep}: {e}"));
    report("connected");
    conn
}

/// Runs `role` against `ep`; returns when the role is done (the caller exits the process).
pub fn run(role: &str, ep: &str) {
    match role {
        // A self-checking stream, then a clean close.
        "stream" => {
            let mut conn = connect(ep);
            let count = var_u64(COUNT_ENV);
            let seed = var_u64(SEED_ENV);
            let max = var_u64(MAX_LEN_ENV) as usize;
            message::send_stream(&mut conn, count, seed, max);
            report("sent");
        }
        // Its seed as an 8-byte message (a tcp:// writer has no pid to tell it by), then a
        // self-checking stream and a clean close.
        "tagged_stream" => {
            let mut conn = connect(ep);
            let seed = var_u64(SEED_ENV);
            conn.send(&seed.to_le_bytes()).expect("sending the tag");
            let count = var_u64(COUNT_ENV);
            let max = var_u64(MAX_LEN_ENV) as usize;
            message::send_stream(&mut conn, count, seed, max);
            report("sent");
        }
        // 1 KiB messages (seed, sequence number) until one waits a second for room (the
        // inbox stopped reading): reports how many it sent, then waits for the close.
        "flood_until_blocked" => {
            let mut conn = connect(ep);
            let seed = var_u64(SEED_ENV);
            let mut msg = [0u8; 1024];
            msg[..8].copy_from_slice(&seed.to_le_bytes());
            let mut n = 0u64;
            loop {
                msg[8..16].copy_from_slice(&n.to_le_bytes());
                match conn.send_timeout(&msg, Duration::from_secs(1)) {
                    Ok(()) => n += 1,
                    Err(Error::TimedOut) => break,
                    Err(e) => panic!("flooding: {e}"),
                }
            }
            report(format!("blocked {n}"));
            loop {
                match conn.send_timeout(&msg, STEP_TIMEOUT) {
                    Ok(()) => {}
                    Err(Error::PeerClosed { .. } | Error::PeerGone { .. }) => break,
                    Err(e) => panic!("after the block: {e}"),
                }
                n += 1;
                msg[8..16].copy_from_slice(&n.to_le_bytes());
            }
            report("sent");
        }
        // Sends its seed as an 8-byte message as fast as it can, until the inbox closes.
        "flood" => {
            let mut conn = connect(ep);
            let seed = var_u64(SEED_ENV);
            let mut n = 0u64;
            loop {
                let mut msg = [0u8; 16];
                msg[..8].copy_from_slice(&seed.to_le_bytes());
                msg[8..].copy_from_slice(&n.to_le_bytes());
                match conn.send_timeout(&msg, STEP_TIMEOUT) {
                    Ok(()) => n += 1,
                    Err(Error::PeerClosed { .. } | Error::PeerGone { .. }) => break,
                    Err(e) => panic!("flooding: {e}"),
                }
            }
            report(format!("sent {n}"));
        }
        // `COUNT` messages carrying their send time, `GAP_US` apart (the inbox sleeps in
        // between).
        "paced" => {
            let mut conn = connect(ep);
            let count = var_u64(COUNT_ENV);
            let gap = Duration::from_micros(var_u64(GAP_US_ENV));
            let seed = var_u64(SEED_ENV);
            let start = Instant::now();
            for i in 0..count {
                let due = start + gap * (i as u32 + 1);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let mut msg = [0u8; 24];
                msg[..8].copy_from_slice(&seed.to_le_bytes());
                msg[8..16].copy_from_slice(&i.to_le_bytes());
                msg[16..].copy_from_slice(&monotonic_ns().to_le_bytes());
                conn.send_timeout(&msg, STEP_TIMEOUT)
                    .unwrap_or_else(|e| panic!("paced message {i}: {e}"));
            }
            report("sent");
        }
        // A blocking writer whose inbox must wake from its futex-free sleep.
        "blocking_stream" => {
            let opts = Options::new().wait_strategy(WaitStrategy::Blocking);
            let mut conn = Conn::connect_with(ep, opts).expect("connect");
            report("connected");
            message::send_stream(&mut conn, var_u64(COUNT_ENV), var_u64(SEED_ENV), 512);
            report("sent");
        }
        // Connects, then waits until the inbox closes: reports what it saw.
        "wait_for_close" => {
            let mut conn = connect(ep);
            let mut buf = [0u8; 8];
            match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
                Err(Error::PeerClosed { .. }) => report("peer closed"),
                other => report(format!("unexpected {other:?}")),
            }
        }
        other => panic!("unknown role {other}"),
    }
}
