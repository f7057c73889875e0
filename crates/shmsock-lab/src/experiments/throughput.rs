//! One-way streaming throughput.
//!
//! The child (sender) sends `warmup_iters` messages, then up to `iters` more or until
//! `max_time` has passed (it checks the clock every [`CLOCK_CHECK_EVERY`] messages, so the
//! check costs nothing per message), then one [`SEQ_STOP`] message. Each message carries its
//! sequence number in its first 8 bytes. The parent (receiver) checks every sequence number,
//! starts its clock when the first message after the warm-up arrives and stops it when the stop
//! message arrives, so the rate is `messages received in between / elapsed`, measured by the
//! receiver. Both sides also time their own thread's CPU use over their window, for CPU%.

use std::time::Instant;

use super::pair::{run_pair, ChildStats};
use super::{get_seq, put_seq, Budget, Window, SEQ_STOP};
use crate::host::Pinning;
use crate::mechanisms::{Mechanism, Pattern, Side};
use crate::report::ThroughputRow;
use crate::LabError;

/// The sender looks at the clock once per this many messages.
const CLOCK_CHECK_EVERY: u64 = 1024;

/// What the receiver measured.
struct Received {
    messages: u64,
    wall_ns: u64,
    cpu_ns: u64,
}

/// Measures `mechanism` streaming `size`-byte messages from the child to the parent.
pub(crate) fn measure(
    mechanism: &dyn Mechanism,
    size: usize,
    budget: Budget,
    pinning: Pinning,
) -> Result<ThroughputRow, LabError> {
    if size < 8 {
        return Err(LabError::WrongSize { len: size, size: 8 });
    }
    let mut send_buf = vec![0x5Au8; size];
    let mut recv_buf = vec![0u8; size];
    let (received, sender) = run_pair(
        mechanism,
        Pattern::Stream,
        size,
        pinning,
        budget.watchdog(),
        |side| stream(side, &mut send_buf, budget),
        |side| receive(side, &mut recv_buf, budget.warmup_iters),
    )?;
    Ok(ThroughputRow::new(
        mechanism.name(),
        size,
        received.messages,
        received.wall_ns,
        sender.cpu_ns,
        sender.wall_ns,
        received.cpu_ns,
    ))
}

/// The child's side: send the warm-up, the measured messages, then the stop message.
fn stream(side: &mut dyn Side, buf: &mut [u8], budget: Budget) -> Result<ChildStats, LabError> {
    let mut seq = 0u64;
    let warmup_end = Instant::now() + budget.warmup_time;
    while seq < budget.warmup_iters {
        seq += 1;
        put_seq(buf, seq);
        side.send(buf)?;
        if seq % CLOCK_CHECK_EVERY == 0 && Instant::now() >= warmup_end {
            break;
        }
    }
    // The receiver starts timing at the first message with `seq > warmup_iters`; skip the
    // numbers of an early-ended warm-up so the two sides agree on where measuring starts.
    seq = budget.warmup_iters;
    let window = Window::start();
    let end = Instant::now() + budget.max_time;
    for i in 1..=budget.iters {
        seq += 1;
        put_seq(buf, seq);
        side.send(buf)?;
        if i % CLOCK_CHECK_EVERY == 0 && Instant::now() >= end {
            break;
        }
    }
    put_seq(buf, SEQ_STOP);
    side.send(buf)?;
    let (wall_ns, cpu_ns) = window.stop();
    Ok(ChildStats { cpu_ns, wall_ns })
}

/// The parent's side: check every sequence number, time from the first measured message to
/// the stop message.
fn receive(side: &mut dyn Side, buf: &mut [u8], warmup: u64) -> Result<Received, LabError> {
    let size = buf.len();
    let mut expected = 1u64;
    let mut window: Option<Window> = None;
    let mut messages = 0u64;
    loop {
        let n = side.recv(buf)?;
        let seq = get_seq(&buf[..n]);
        if n != size {
            return Err(LabError::Integrity {
                detail: format!("message {expected} has {n} bytes, expected {size}"),
            });
        }
        match seq {
            Some(SEQ_STOP) => break,
            Some(seq) if seq == expected => {}
            // The first measured message after a warm-up the sender cut short.
            Some(seq) if window.is_none() && seq == warmup + 1 && expected <= warmup + 1 => {
                expected = seq;
            }
            got => {
                return Err(LabError::Integrity {
                    detail: format!("expected message {expected}, got sequence number {got:?}"),
                })
            }
        }
        if expected > warmup {
            match window {
                None => window = Some(Window::start()),
                Some(_) => messages += 1,
            }
        }
        expected += 1;
    }
    let window = window.ok_or(LabError::Integrity {
        detail: "the stream ended before any measured message arrived".into(),
    })?;
    // The stop message ends the last interval: count it as the message that closes it.
    messages += 1;
    let (wall_ns, cpu_ns) = window.stop();
    Ok(Received {
        messages,
        wall_ns,
        cpu_ns,
    })
}
