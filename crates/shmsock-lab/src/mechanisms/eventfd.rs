//! `eventfd`: a kernel counter used as a doorbell (notification only, latency only).
//!
//! An eventfd carries no payload, only an 8-byte counter: `write` adds to it and wakes a reader,
//! `read` returns the sum and resets it to zero. Ping-pong uses two eventfds (one per
//! direction); a "message" is its first 8 bytes (the sequence number), written as the value
//! added, which is what the reader gets back because only one is ever outstanding. It is the
//! kernel's cheapest wake-up through a file descriptor: the row shows the price of the wake-up
//! alone, with no data copied.
//!
//! An eventfd has no end of file, so `recv` first `poll`s it with a timeout (a dead peer is a
//! stall error, not a hang); the poll is where the reader sleeps, the `read` that follows finds
//! the counter ready.
//!
//! An eventfd counter cannot hold `u64::MAX`, so the lab's stop sequence number (`u64::MAX`)
//! travels as `u64::MAX - 1`, and zero (which would add nothing and wake nobody) is refused.

use std::os::fd::OwnedFd;

use std::time::Instant;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::io::{read, write, Errno};
use rustix::time::Timespec;

use super::{Mechanism, Pair, Pattern, Side, STALL_TIMEOUT};
use crate::LabError;

/// Bytes an eventfd "message" carries: the counter.
pub const EVENTFD_PAYLOAD_BYTES: usize = 8;

/// Largest value an eventfd counter can take; the stop value travels as this.
const COUNTER_MAX: u64 = u64::MAX - 1;

/// eventfd doorbells.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFd;

impl Mechanism for EventFd {
    fn name(&self) -> &'static str {
        "eventfd"
    }

    fn supports(&self, pattern: Pattern) -> bool {
        pattern == Pattern::PingPong
    }

    fn payload_len(&self, _size: usize) -> usize {
        EVENTFD_PAYLOAD_BYTES
    }

    fn setup(&self, pattern: Pattern, _size: usize) -> Result<Pair, LabError> {
        if pattern != Pattern::PingPong {
            return Err(LabError::Unsupported {
                mechanism: "eventfd",
                what: "streaming (it carries a counter, not data)",
            });
        }
        let new = || eventfd(0, EventfdFlags::CLOEXEC).map_err(LabError::os("creating an eventfd"));
        let down = new()?;
        let up = new()?;
        let down_tx = down.try_clone().map_err(|source| LabError::Os {
            what: "duplicating an eventfd",
            source,
        })?;
        let up_tx = up.try_clone().map_err(|source| LabError::Os {
            what: "duplicating an eventfd",
            source,
        })?;
        Ok(Pair {
            parent: Box::new(EventFdSide {
                tx: down_tx,
                rx: up,
            }),
            child: Box::new(EventFdSide {
                tx: up_tx,
                rx: down,
            }),
        })
    }
}

struct EventFdSide {
    tx: OwnedFd,
    rx: OwnedFd,
}

impl Side for EventFdSide {
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        let value = msg
            .first_chunk::<EVENTFD_PAYLOAD_BYTES>()
            .map(|b| u64::from_le_bytes(*b))
            .ok_or(LabError::WrongSize {
                len: msg.len(),
                size: EVENTFD_PAYLOAD_BYTES,
            })?;
        let value = match value {
            0 => {
                return Err(LabError::Integrity {
                    detail: "an eventfd cannot carry the value 0".into(),
                })
            }
            u64::MAX => COUNTER_MAX,
            v => v,
        };
        loop {
            match write(&self.tx, &value.to_ne_bytes()) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => return Err(LabError::os("writing an eventfd")(e)),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let len = buf.len();
        let out = buf
            .first_chunk_mut::<EVENTFD_PAYLOAD_BYTES>()
            .ok_or(LabError::WrongSize {
                len,
                size: EVENTFD_PAYLOAD_BYTES,
            })?;
        let mut raw = [0u8; 8];
        wait_readable(&self.rx)?;
        loop {
            match read(&self.rx, &mut raw) {
                Ok(8) => break,
                Ok(n) => {
                    return Err(LabError::Integrity {
                        detail: format!("an eventfd read returned {n} bytes"),
                    })
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(LabError::os("reading an eventfd")(e)),
            }
        }
        let value = match u64::from_ne_bytes(raw) {
            COUNTER_MAX => u64::MAX,
            v => v,
        };
        *out = value.to_le_bytes();
        Ok(EVENTFD_PAYLOAD_BYTES)
    }
}

/// Sleeps in `poll` until `fd` is readable; fails after [`STALL_TIMEOUT`].
fn wait_readable(fd: &OwnedFd) -> Result<(), LabError> {
    let started = Instant::now();
    let slice = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&slice)) {
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(LabError::os("polling an eventfd")(e)),
        }
        if started.elapsed() > STALL_TIMEOUT {
            return Err(LabError::Stalled {
                what: "waiting on the eventfd",
                waited: started.elapsed(),
            });
        }
    }
}
