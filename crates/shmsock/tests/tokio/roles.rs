//! The child side: what a peer process does, chosen by `SHMSOCK_TEST_ROLE`. Every child
//! dies with its parent (`PR_SET_PDEATHSIG`), and every wait is bounded.

use std::time::Duration;

use shmsock::{Conn, Publisher};
use shmsock_testkit::child::{report, seed_and_max_len, var_u64, COUNT_ENV, IDLE_MAX};
use shmsock_testkit::harness::STEP_TIMEOUT;
use shmsock_testkit::message;
use shmsock_testkit::pubsub::wait_for_at_least;

/// Messages between two pauses of a sending role (so that its async peer falls asleep).
pub const BURST: u64 = 250;
/// A sending role's pause between bursts.
pub const PAUSE: Duration = Duration::from_millis(30);
/// How long the slow reader waits before it reads anything.
pub const READER_DELAY: Duration = Duration::from_millis(500);
/// How long an idle async echo waits while its CPU time is measured.
pub const IDLE: Duration = Duration::from_secs(2);

/// Runs `role` against `ep`; returns when the role is done (the caller exits the process).
pub fn run(role: &str, ep: &str) {
    match role {
        "sync_sender" => {
            let mut conn = connect(ep);
            std::thread::sleep(crate::LET_IT_SLEEP);
            in_bursts(|seq, msg| {
                conn.send_timeout(msg, STEP_TIMEOUT)
                    .unwrap_or_else(|e| panic!("sending message #{seq}: {e}"));
            });
            report("sent");
        }
        "slow_reader" => {
            let mut conn = connect(ep);
            report("connected");
            std::thread::sleep(READER_DELAY);
            let (seed, max_len) = seed_and_max_len();
            message::receive_stream(&mut conn, var_u64(COUNT_ENV), seed, max_len);
            report("got");
            // Stay until the parent closes, so it can drop us cleanly.
            let _ = conn.recv_timeout(&mut [0u8; 64], STEP_TIMEOUT);
        }
        "connect_then_idle" => {
            let _conn = connect(ep);
            report("connected");
            std::thread::sleep(IDLE_MAX);
        }
        "sync_echo" => {
            let mut conn = connect(ep);
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
            let mut publisher = Publisher::bind(ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
            report(format_args!("bound {}", publisher.endpoint()));
            wait_for_at_least(&mut publisher, 1);
            std::thread::sleep(crate::LET_IT_SLEEP);
            in_bursts(|seq, msg| {
                publisher
                    .send_timeout(msg, STEP_TIMEOUT)
                    .unwrap_or_else(|e| panic!("publishing message #{seq}: {e}"));
            });
            report("sent");
            if role == "publisher_then_hang" {
                std::thread::sleep(IDLE_MAX);
            }
        }
        "async_echo_idle" => {
            crate::runtime().block_on(crate::idle::echo_then_idle(ep));
        }
        other => panic!("unknown role {other}"),
    }
}

fn connect(ep: &str) -> Conn {
    Conn::connect(ep).unwrap_or_else(|e| panic!("connecting to {ep}: {e}"))
}

/// Hands messages `0..COUNT` of the stream the parent asked for to `send`, pausing [`PAUSE`]
/// after every [`BURST`].
fn in_bursts(mut send: impl FnMut(u64, &[u8])) {
    let (seed, max_len) = seed_and_max_len();
    message::for_each_message(var_u64(COUNT_ENV), seed, max_len, |seq, msg| {
        send(seq, msg);
        if seq % BURST == BURST - 1 {
            std::thread::sleep(PAUSE);
        }
    });
}
