//! One million messages (Communication Costs): between two threads of one process, and between two
//! processes over a Unix socket and over shmsock.
//!
//! Seed 003 claims ~100 ms for threads with a lock-free queue and ~10 s for processes with
//! sockets. Each path moves [`MESSAGES`] sequence-numbered 64-byte messages one way, back to
//! back, and the receiver times first to last message (connection setup is not timed):
//!
//! - `threads`: a `crossbeam-channel` bounded (array, lock-free) channel of `[u8; 64]`, the
//!   sending thread pinned to the child's CPU and the receiving one to the parent's;
//! - `uds-stream` and `shmsock`: the [`super::throughput`] experiment with no warm-up, over a
//!   Unix stream socket and over a `shm://` `Conn` (default options).
//!
//! A path that hits the time cap is stopped there and its time for a million is extrapolated
//! (the row says so), which is also how `--quick` (fewer messages) reports.

use std::time::{Duration, Instant};

use super::{throughput, Budget, Budgets};
use crate::host::Pinning;
use crate::mechanisms::shmsock::Shmsock;
use crate::mechanisms::uds_stream::UdsStream;
use crate::mechanisms::Mechanism;
use crate::process::pin_current_thread;
use crate::report::MillionRow;
use crate::LabError;

/// Messages of the Communication Costs' claim.
pub(crate) const MESSAGES: u64 = 1_000_000;
/// Message size.
pub(crate) const SIZE: usize = 64;
/// Slots of the threads' channel.
const CHANNEL_CAPACITY: usize = 1024;

/// The paths, in the table's order.
pub(crate) const PATHS: [&str; 3] = ["threads", "uds-stream", "shmsock"];

/// (messages per path, time cap per path).
pub(crate) fn plan(budgets: &Budgets) -> (u64, Duration) {
    (
        (MESSAGES / budgets.divisor.max(1)).max(1000),
        budgets.experiment_max_time * 4,
    )
}

/// Measures `path` (one of [`PATHS`]).
pub(crate) fn measure(
    path: &str,
    messages: u64,
    max_time: Duration,
    pinning: Pinning,
) -> Result<MillionRow, LabError> {
    let (moved, seconds) = match path {
        "threads" => threads(messages, max_time, pinning)?,
        "uds-stream" => processes(&UdsStream, messages, max_time, pinning)?,
        _ => processes(&Shmsock::adaptive(), messages, max_time, pinning)?,
    };
    Ok(MillionRow::new(
        path,
        moved,
        SIZE,
        seconds,
        moved < messages,
    ))
}

fn processes(
    mechanism: &dyn Mechanism,
    messages: u64,
    max_time: Duration,
    pinning: Pinning,
) -> Result<(u64, f64), LabError> {
    let budget = Budget {
        warmup_iters: 0,
        warmup_time: Duration::ZERO,
        iters: messages,
        max_time,
    };
    let row = throughput::measure(mechanism, SIZE, budget, pinning)?;
    Ok((row.messages, row.seconds))
}

fn threads(messages: u64, max_time: Duration, pinning: Pinning) -> Result<(u64, f64), LabError> {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; SIZE]>(CHANNEL_CAPACITY);
    let sender = std::thread::Builder::new()
        .name("lab-sender".into())
        .spawn(move || -> Result<(), LabError> {
            pin_current_thread(pinning.child_cpu)?;
            let end = Instant::now() + max_time;
            let mut msg = [0x5Au8; SIZE];
            for seq in 1..=messages {
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                if tx.send(msg).is_err() {
                    return Err(LabError::PeerClosed {
                        what: "sending on the threads' channel",
                    });
                }
                if seq % 1024 == 0 && Instant::now() >= end {
                    break;
                }
            }
            Ok(())
        })
        .map_err(|e| LabError::Os {
            what: "spawning the sending thread",
            source: e,
        })?;
    // The receiving thread is this one, already pinned to the parent's CPU.
    let mut expected = 1u64;
    let mut started: Option<Instant> = None;
    // The loop ends when the sender has sent its last message and dropped its end.
    for msg in &rx {
        started.get_or_insert_with(Instant::now);
        let seq = u64::from_le_bytes(msg[..8].try_into().expect("an 8-byte slice"));
        if seq != expected {
            return Err(LabError::Integrity {
                detail: format!("threads: expected message {expected}, got {seq}"),
            });
        }
        expected += 1;
    }
    let last = Instant::now();
    sender.join().map_err(|_| LabError::Integrity {
        detail: "the sending thread panicked".into(),
    })??;
    let moved = expected - 1;
    let seconds = started.map_or(0.0, |s| (last - s).as_secs_f64());
    Ok((moved, seconds))
}
