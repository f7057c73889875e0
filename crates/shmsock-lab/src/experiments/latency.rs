//! Ping-pong latency.
//!
//! The parent (ping) writes sequence number `n` into the first 8 bytes of a message and sends
//! it; the child (pong) receives it and sends back exactly the bytes it received; the parent
//! receives the echo and checks that it carries `n`. One round trip is timed per sample
//! (`Instant::now` before the send and after the receive, ~20 ns of clock reads included) and
//! recorded in an HDR histogram in ns. After the warm-up and the measured loop the parent sends
//! [`SEQ_STOP`], which the child echoes and then stops.
//!
//! One-way latency is reported as RTT / 2: with the two processes on different CPUs there is no
//! shared clock precise enough to time one direction alone.

use std::time::Instant;

use hdrhistogram::Histogram;

use super::pair::{run_pair, ChildStats};
use super::{get_seq, put_seq, Budget, Window, SEQ_STOP};
use crate::host::Pinning;
use crate::mechanisms::{Mechanism, Pattern, Side};
use crate::report::LatencyRow;
use crate::LabError;

/// Longest round trip the histogram holds (longer ones are clamped to it): 100 s.
const MAX_RTT_NS: u64 = 100_000_000_000;

/// Measures `mechanism`'s round trip with `size`-byte messages.
pub(crate) fn measure(
    mechanism: &dyn Mechanism,
    size: usize,
    budget: Budget,
    pinning: Pinning,
) -> Result<LatencyRow, LabError> {
    let payload = mechanism.payload_len(size);
    let buf_len = size.max(8);
    let mut child_buf = vec![0u8; buf_len];
    let mut ping = vec![0xA5u8; buf_len];
    let mut echo = vec![0u8; buf_len];
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_RTT_NS, 3).map_err(|e| LabError::Integrity {
            detail: format!("creating the latency histogram: {e}"),
        })?;
    let (samples, _) = run_pair(
        mechanism,
        Pattern::PingPong,
        size,
        pinning,
        budget.watchdog(),
        |side| pong(side, &mut child_buf),
        |side| {
            let mut seq = 0u64;
            let mut round_trip = |side: &mut dyn Side, seq: u64| -> Result<(), LabError> {
                put_seq(&mut ping, seq);
                side.send(&ping[..size])?;
                let n = side.recv(&mut echo)?;
                check_echo(&echo[..n], payload, seq)
            };
            let warmup_end = Instant::now() + budget.warmup_time;
            while seq < budget.warmup_iters && Instant::now() < warmup_end {
                seq += 1;
                round_trip(side, seq)?;
            }
            let end = Instant::now() + budget.max_time;
            let mut measured = 0u64;
            while measured < budget.iters {
                seq += 1;
                side.prepare_round_trip();
                let t0 = Instant::now();
                round_trip(side, seq)?;
                let t1 = Instant::now();
                let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
                hist.saturating_record(ns.clamp(1, MAX_RTT_NS));
                measured += 1;
                if t1 >= end {
                    break;
                }
            }
            round_trip(side, SEQ_STOP)?;
            Ok(measured)
        },
    )?;
    Ok(LatencyRow::from_histogram(
        mechanism.name(),
        size,
        &hist,
        samples,
    ))
}

/// The child's side: echo every message until the stop message has been echoed.
fn pong(side: &mut dyn Side, buf: &mut [u8]) -> Result<ChildStats, LabError> {
    let window = Window::start();
    loop {
        let n = side.recv(buf)?;
        side.send(&buf[..n])?;
        if get_seq(&buf[..n]) == Some(SEQ_STOP) {
            let (wall_ns, cpu_ns) = window.stop();
            return Ok(ChildStats { cpu_ns, wall_ns });
        }
    }
}

fn check_echo(echo: &[u8], payload: usize, seq: u64) -> Result<(), LabError> {
    if echo.len() != payload {
        return Err(LabError::Integrity {
            detail: format!(
                "echo of message {seq} has {} bytes, expected {payload}",
                echo.len()
            ),
        });
    }
    match get_seq(echo) {
        Some(got) if got == seq => Ok(()),
        got => Err(LabError::Integrity {
            detail: format!("echo of message {seq} carries sequence number {got:?}"),
        }),
    }
}
