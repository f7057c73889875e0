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

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::io::{read, write, Errno};
use rustix::time::Timespec;

use super::latency_only::{Doorbell, LatencyOnly};
use super::sleep_until;
use crate::error::LabError;

/// Largest value an eventfd counter can take; the stop value travels as this.
const COUNTER_MAX: u64 = u64::MAX - 1;

/// eventfd doorbells.
pub const EVENTFD: LatencyOnly =
    LatencyOnly::word::<EventFdBell>("eventfd", "streaming (it carries a counter, not data)");

struct EventFdBell {
    tx: OwnedFd,
    rx: OwnedFd,
}

impl Doorbell for EventFdBell {
    fn pair() -> Result<(Self, Self), LabError> {
        let new = || eventfd(0, EventfdFlags::CLOEXEC).map_err(LabError::os("creating an eventfd"));
        let down = new()?;
        let up = new()?;
        let dup = |fd: &OwnedFd| {
            fd.try_clone().map_err(|source| LabError::Os {
                what: "duplicating an eventfd",
                source,
            })
        };
        let (down_tx, up_tx) = (dup(&down)?, dup(&up)?);
        let parent = EventFdBell {
            tx: down_tx,
            rx: up,
        };
        let child = EventFdBell {
            tx: up_tx,
            rx: down,
        };
        Ok((parent, child))
    }

    #[inline]
    fn ring(&mut self, value: u64) -> Result<(), LabError> {
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

    #[inline]
    fn wait(&mut self) -> Result<u64, LabError> {
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
        Ok(match u64::from_ne_bytes(raw) {
            COUNTER_MAX => u64::MAX,
            v => v,
        })
    }
}

/// Sleeps in `poll` until `fd` is readable; fails after [`super::STALL_TIMEOUT`].
fn wait_readable(fd: &OwnedFd) -> Result<(), LabError> {
    let slice = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    sleep_until("waiting on the eventfd", || {
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&slice)) {
            Ok(n) if n > 0 => Ok(Some(())),
            Ok(_) | Err(Errno::INTR) => Ok(None),
            Err(e) => Err(LabError::os("polling an eventfd")(e)),
        }
    })
}
