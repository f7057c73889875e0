//! The child side: what a peer process does, chosen by `SHMSOCK_TEST_ROLE`. Every child
//! dies with its parent (`PR_SET_PDEATHSIG`), and every wait is bounded.

use std::io::Write;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmsock::{Conn, Publisher};

use crate::harness::{ENDPOINT_ENV, REPORT_MARK, STEP_TIMEOUT};
use crate::message;

/// Number of messages a sending role sends.
pub const COUNT_ENV: &str = "SHMSOCK_TEST_COUNT";
/// Seed of a sending role's message stream.
pub const SEED_ENV: &str = "SHMSOCK_TEST_SEED";
/// Largest message a sending role sends.
pub const MAX_LEN_ENV: &str = "SHMSOCK_TEST_MAX_LEN";
/// Messages between two pauses of a sending role (so that its async peer falls asleep).
pub const BURST: u64 = 250;
/// A sending role's pause between bursts.
pub const PAUSE: Duration = Duration::from_millis(30);
/// How long the slow reader waits before it reads anything.
pub const READER_DELAY: Duration = Duration::from_millis(500);
/// How long an idle async echo waits while its CPU time is measured.
pub const IDLE: Duration = Duration::from_secs(2);
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
        "sync_sender" => {
            let mut conn = connect(&ep);
            std::thread::sleep(crate::LET_IT_SLEEP);
            send_in_bursts(
                &mut conn,
                var_u64(COUNT_ENV),
                var_u64(SEED_ENV),
                var_u64(MAX_LEN_ENV) as usize,
            );
            report("sent");
        }
        "slow_reader" => {
            let mut conn = connect(&ep);
            report("connected");
            std::thread::sleep(READER_DELAY);
            message::receive_stream(
                &mut conn,
                var_u64(COUNT_ENV),
                var_u64(SEED_ENV),
                var_u64(MAX_LEN_ENV) as usize,
            );
            report("got");
            // Stay until the parent closes, so it can drop us cleanly.
            let _ = conn.recv_timeout(&mut [0u8; 64], STEP_TIMEOUT);
        }
        "connect_then_idle" => {
            let _conn = connect(&ep);
            report("connected");
            std::thread::sleep(IDLE_MAX);
        }
        "sync_echo" => {
            let mut conn = connect(&ep);
            let mut buf = vec![0u8; 4 << 20];
            loop {
                match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
                    Ok(n) => conn
                        .send_timeout(&buf[..n], STEP_TIMEOUT)
                        .unwrap_or_else(|e| panic!("echoing: {e}")),
                    Err(e) if e.is_disconnect() => break,
                    Err(e) => panic!("echo receiving: {e}"),
                }
            }
        }
        "publisher" | "publisher_then_hang" => {
            let mut publisher =
                Publisher::bind(&ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
            report(format_args!("bound {}", publisher.endpoint()));
            let deadline = Instant::now() + STEP_TIMEOUT;
            while publisher.subscriber_count() < 1 {
                assert!(Instant::now() < deadline, "no subscriber came");
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(crate::LET_IT_SLEEP);
            publish_in_bursts(
                &mut publisher,
                var_u64(COUNT_ENV),
                var_u64(SEED_ENV),
                var_u64(MAX_LEN_ENV) as usize,
            );
            report("sent");
            if role == "publisher_then_hang" {
                std::thread::sleep(IDLE_MAX);
            }
        }
        "async_echo_idle" => {
            crate::runtime().block_on(crate::idle::echo_then_idle(&ep));
        }
        other => panic!("unknown role {other}"),
    }
}

fn connect(ep: &str) -> Conn {
    Conn::connect(ep).unwrap_or_else(|e| panic!("connecting to {ep}: {e}"))
}

/// Sends messages `0..count` of a stream, pausing [`PAUSE`] after every [`BURST`].
fn send_in_bursts(conn: &mut Conn, count: u64, seed: u64, max_len: usize) {
    let (mut lens, mut body) = (message::lengths(seed), message::bodies(seed));
    let mut buf = vec![0u8; max_len];
    for seq in 0..count {
        let msg = &mut buf[..lens.below_or_eq(max_len)];
        message::encode(seq, &mut body, msg);
        conn.send_timeout(msg, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("sending message #{seq}: {e}"));
        if seq % BURST == BURST - 1 {
            std::thread::sleep(PAUSE);
        }
    }
}

/// Publishes messages `0..count` of a stream, pausing [`PAUSE`] after every [`BURST`].
fn publish_in_bursts(publisher: &mut Publisher, count: u64, seed: u64, max_len: usize) {
    let (mut lens, mut body) = (message::lengths(seed), message::bodies(seed));
    let mut buf = vec![0u8; max_len];
    for seq in 0..count {
        let msg = &mut buf[..lens.below_or_eq(max_len)];
        message::encode(seq, &mut body, msg);
        publisher
            .send_timeout(msg, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("publishing message #{seq}: {e}"));
        if seq % BURST == BURST - 1 {
            std::thread::sleep(PAUSE);
        }
    }
}
