//! The integrity check: does a mechanism deliver every byte, in order, at every size?
//!
//! For each size in [`SIZES`] (the ones a mechanism supports), two short untimed runs:
//!
//! - ping-pong: the parent sends [`MESSAGES`] messages; the child verifies each (sequence
//!   number, every payload byte, trailing checksum) and echoes it; the parent verifies the echo
//!   the same way;
//! - streaming: the child generates the messages, the parent verifies them.
//!
//! A message of `len` bytes is `[seq: u64 LE][pattern bytes derived from seq][FNV-1a of all
//! bytes before it: u64 LE]` (the checksum only when `len >= 16`). Generating and checking
//! allocate nothing, so the child side is safe to run after a fork from a test harness.

use super::pair::run_pair;
use super::{get_seq, Budgets};
use crate::error::LabError;
use crate::host::Pinning;
use crate::mechanisms::{Mechanism, Pattern, Side};
use crate::process::ChildStats;

/// Message sizes checked: the smallest, odd ones, the two measured ones, and a large one.
pub const SIZES: [usize; 6] = [8, 13, 64, 1000, 4096, 65536];
/// Messages per size and pattern.
pub const MESSAGES: u64 = 16;

/// Checks `mechanism` at every size and pattern it supports.
pub(crate) fn check(mechanism: &dyn Mechanism, pinning: Pinning) -> Result<(), LabError> {
    let watchdog = Budgets::QUICK.latency.watchdog();
    for size in SIZES {
        let payload = mechanism.payload_len(size);
        // Sizes beyond what the mechanism carries add nothing (floor carries 8 bytes).
        if (payload != size && size != SIZES[0]) || size > mechanism.max_message() {
            continue;
        }
        let mut child_buf = vec![0u8; size];
        let mut parent_out = vec![0u8; size];
        let mut parent_in = vec![0u8; size];
        run_pair(
            mechanism,
            Pattern::PingPong,
            size,
            pinning,
            watchdog,
            |side| {
                for seq in 1..=MESSAGES {
                    let n = side.recv(&mut child_buf)?;
                    verify(&child_buf[..n], payload, seq)?;
                    side.send(&child_buf[..n])?;
                }
                Ok(ChildStats::default())
            },
            |side| {
                for seq in 1..=MESSAGES {
                    fill(&mut parent_out, seq);
                    side.send(&parent_out)?;
                    let n = side.recv(&mut parent_in)?;
                    verify(&parent_in[..n], payload, seq)?;
                }
                Ok(())
            },
        )
        .map_err(LabError::context(format!(
            "{} ping-pong at {size} B",
            mechanism.name()
        )))?;
        if mechanism.supports(Pattern::Stream) {
            stream_check(mechanism, size, pinning)?;
        }
    }
    Ok(())
}

fn stream_check(mechanism: &dyn Mechanism, size: usize, pinning: Pinning) -> Result<(), LabError> {
    let mut child_buf = vec![0u8; size];
    let mut parent_buf = vec![0u8; size];
    run_pair(
        mechanism,
        Pattern::Stream,
        size,
        pinning,
        Budgets::QUICK.latency.watchdog(),
        |side: &mut dyn Side| {
            for seq in 1..=MESSAGES {
                fill(&mut child_buf, seq);
                side.send(&child_buf)?;
            }
            Ok(ChildStats::default())
        },
        |side: &mut dyn Side| {
            for seq in 1..=MESSAGES {
                let n = side.recv(&mut parent_buf)?;
                verify(&parent_buf[..n], size, seq)?;
            }
            Ok(())
        },
    )
    .map(|_| ())
    .map_err(LabError::context(format!(
        "{} streaming at {size} B",
        mechanism.name()
    )))
}

/// Fills `msg` with message number `seq` (see the module docs for the layout).
pub(crate) fn fill(msg: &mut [u8], seq: u64) {
    let len = msg.len();
    for (i, byte) in msg.iter_mut().enumerate() {
        *byte = pattern_byte(seq, i);
    }
    if let Some(head) = msg.first_chunk_mut::<8>() {
        *head = seq.to_le_bytes();
    }
    if len >= 16 {
        let sum = fnv1a(&msg[..len - 8]);
        msg[len - 8..].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Checks that `msg` is message number `seq` of `expected_len` bytes, as [`fill`] made it.
pub(crate) fn verify(msg: &[u8], expected_len: usize, seq: u64) -> Result<(), LabError> {
    let fail = |what: &str| {
        Err(LabError::Integrity {
            detail: format!("message {seq} ({} bytes): {what}", msg.len()),
        })
    };
    if msg.len() != expected_len {
        return fail(&format!("expected {expected_len} bytes"));
    }
    let len = msg.len();
    match get_seq(msg) {
        Some(got) if got == seq => {}
        got => return fail(&format!("carries sequence number {got:?}")),
    }
    let body_end = if len >= 16 { len - 8 } else { len };
    if let Some(i) = (8..body_end).find(|&i| msg[i] != pattern_byte(seq, i)) {
        return fail(&format!("byte {i} is corrupt"));
    }
    if len >= 16 && msg[len - 8..] != fnv1a(&msg[..len - 8]).to_le_bytes() {
        return fail("checksum mismatch");
    }
    Ok(())
}

/// A byte that depends on both the message and the position, so a stale, shifted or
/// reordered buffer does not pass.
fn pattern_byte(seq: u64, i: usize) -> u8 {
    let x =
        seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 56) as u8 ^ (i as u8)
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanisms::pipe::PIPE;
    use crate::mechanisms::Pair;

    /// Pipes whose child side flips one bit of every message it sends at one size.
    struct BitFlippingPipe {
        bad_size: usize,
    }

    struct BitFlipper {
        inner: Box<dyn Side>,
        scratch: Vec<u8>,
    }

    impl Side for BitFlipper {
        fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
            self.scratch.clear();
            self.scratch.extend_from_slice(msg);
            let last = self.scratch.len() - 1;
            self.scratch[last / 2] ^= 0x10;
            self.inner.send(&self.scratch)
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
            self.inner.recv(buf)
        }
    }

    impl Mechanism for BitFlippingPipe {
        fn name(&self) -> &'static str {
            "bit-flipping-pipe"
        }

        fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
            let pair = PIPE.setup(pattern, size)?;
            if size != self.bad_size {
                return Ok(pair);
            }
            Ok(Pair {
                parent: pair.parent,
                child: Box::new(BitFlipper {
                    inner: pair.child,
                    scratch: Vec::with_capacity(size),
                }),
            })
        }
    }

    #[test]
    fn a_mechanism_that_corrupts_one_size_fails_the_check() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("affinity");
        check(&PIPE, pinning).expect("plain pipes are intact");
        let err = check(&BitFlippingPipe { bad_size: 1000 }, pinning).expect_err("corrupt");
        let text = err.to_string();
        assert!(text.contains("at 1000 B"), "{text}");
        assert!(
            text.contains("corrupt") || text.contains("checksum"),
            "{text}"
        );
    }

    #[test]
    fn filled_messages_verify_and_corruption_is_caught() {
        for size in SIZES {
            let mut msg = vec![0u8; size];
            fill(&mut msg, 42);
            verify(&msg, size, 42).expect("intact message verifies");
            assert!(verify(&msg, size, 43).is_err(), "wrong seq at {size}");
            let last = size - 1;
            msg[last] ^= 1;
            assert!(
                verify(&msg, size, 42).is_err(),
                "flipped last byte at {size}"
            );
        }
    }

    #[test]
    fn a_middle_byte_flip_is_caught() {
        let mut msg = vec![0u8; 64];
        fill(&mut msg, 7);
        msg[30] ^= 0x80;
        let err = verify(&msg, 64, 7).expect_err("corrupt");
        assert!(err.to_string().contains("byte 30"), "{err}");
    }
}
