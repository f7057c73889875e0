//! `signalfd`: a real-time signal taken through a `signalfd` (notification only, latency only).
//!
//! The IPC cheat sheet's menu puts signalfd beside eventfd ("Wakeup primitives for event
//! loops"): a signal made readable as a file descriptor, so an event loop can `poll` it with
//! its sockets instead of running a handler. Here each direction is one queued real-time signal
//! (`SIGRTMIN + 6`), sent exactly as the `signal` mechanism sends it (the thread-directed
//! `rt_tgsigqueueinfo`, see [`super::signal`]), blocked in both processes (the parent's
//! measuring thread with `pthread_sigmask`, the single-threaded child with `sigprocmask`) so it
//! stays pending and is consumed by a `read` of a `signalfd` on that set, never by a handler.
//!
//! A signal carries at most one `sigval` word, so this mechanism is latency only: a "message"
//! is its first 8 bytes (the sequence number), travelling in `si_value` and read back from the
//! `ssi_ptr` field of the `signalfd_siginfo` the `read` returns. It has no throughput row: it
//! wakes a peer, it does not carry data.
//!
//! `recv` reads the non-blocking signalfd first (the signal may already be pending) and
//! otherwise sleeps in `poll` on it, in slices of a second: a dead peer is a stall error after
//! [`super::STALL_TIMEOUT`], not a hang. Each process has its own signalfd (created before the
//! fork; a read returns the signals queued to the reading process or thread).
//!
//! # Safety
//!
//! `signalfd` is not in rustix, so this module calls libc to create the descriptor, which it
//! owns from then on; reads and polls go through rustix on that `OwnedFd`.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::{read, Errno};
use rustix::time::Timespec;

use super::latency_only::{Doorbell, LatencyOnly};
use super::signal::{rt_signal_pair, RtSignal};
use super::sleep_until;
use crate::error::LabError;

/// Which real-time signal above `SIGRTMIN` this mechanism uses (`signal` uses 5).
const SIGRT_OFFSET: libc::c_int = 6;

/// Bytes of one `signalfd_siginfo`, what one `read` returns per signal.
const SIGINFO_BYTES: usize = std::mem::size_of::<libc::signalfd_siginfo>();
const _: () = assert!(SIGINFO_BYTES == 128);
/// Where the signal's number lies in a `signalfd_siginfo`.
const SSI_SIGNO: usize = std::mem::offset_of!(libc::signalfd_siginfo, ssi_signo);
/// Where the `sigval` (as a pointer-sized word) lies in a `signalfd_siginfo`.
const SSI_PTR: usize = std::mem::offset_of!(libc::signalfd_siginfo, ssi_ptr);

/// Real-time signals read through a signalfd.
pub const SIGNALFD: LatencyOnly = LatencyOnly::word::<SignalFdBell>(
    "signalfd",
    "streaming (a signal carries one 8-byte sigval: notifications only)",
);

struct SignalFdBell {
    signal: RtSignal,
    fd: OwnedFd,
}

impl Doorbell for SignalFdBell {
    fn pair() -> Result<(Self, Self), LabError> {
        let (parent, child) = rt_signal_pair("signalfd", SIGRT_OFFSET)?;
        let parent_fd = signalfd_of(&parent)?;
        let child_fd = signalfd_of(&child)?;
        Ok((
            SignalFdBell {
                signal: parent,
                fd: parent_fd,
            },
            SignalFdBell {
                signal: child,
                fd: child_fd,
            },
        ))
    }

    fn start(&mut self) -> Result<(), LabError> {
        self.signal.start()
    }

    #[inline]
    fn ring(&mut self, value: u64) -> Result<(), LabError> {
        self.signal.send(value)
    }

    #[inline]
    fn wait(&mut self) -> Result<u64, LabError> {
        let slice = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        let signo = self.signal.signo();
        let fd = &self.fd;
        sleep_until("waiting for a signal on the signalfd", || {
            let mut raw = [0u8; SIGINFO_BYTES];
            match read(fd, &mut raw) {
                Ok(SIGINFO_BYTES) => return decode(&raw, signo).map(Some),
                Ok(n) => {
                    return Err(LabError::Integrity {
                        detail: format!("a signalfd read returned {n} bytes"),
                    })
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => return Err(LabError::os("reading a signalfd")(e)),
            }
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            match poll(&mut fds, Some(&slice)) {
                Ok(_) | Err(Errno::INTR) => Ok(None),
                Err(e) => Err(LabError::os("polling a signalfd")(e)),
            }
        })
    }
}

/// A non-blocking signalfd for `signal`'s set, owned.
fn signalfd_of(signal: &RtSignal) -> Result<OwnedFd, LabError> {
    // SAFETY: `-1` asks for a new descriptor; the set is an initialised sigset alive for the
    // call; the flags are valid signalfd flags.
    let fd = unsafe { libc::signalfd(-1, signal.set(), libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(LabError::Os {
            what: "creating a signalfd",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is a descriptor signalfd just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The word a `signalfd_siginfo` carries, after checking that it is `signo`'s.
fn decode(raw: &[u8; SIGINFO_BYTES], signo: libc::c_int) -> Result<u64, LabError> {
    let word = |at: usize| raw[at..].first_chunk::<8>().map(|b| u64::from_ne_bytes(*b));
    let got = raw[SSI_SIGNO..]
        .first_chunk::<4>()
        .map(|b| u32::from_ne_bytes(*b));
    if got != u32::try_from(signo).ok() {
        return Err(LabError::Integrity {
            detail: format!("the signalfd returned signal {got:?}, expected {signo}"),
        });
    }
    word(SSI_PTR).ok_or(LabError::Integrity {
        detail: "a signalfd_siginfo too short for its sigval".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_siginfo_of_another_signal_is_refused_and_ours_gives_its_word() {
        let mut raw = [0u8; SIGINFO_BYTES];
        raw[SSI_SIGNO..SSI_SIGNO + 4].copy_from_slice(&40u32.to_ne_bytes());
        raw[SSI_PTR..SSI_PTR + 8].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_ne_bytes());
        assert_eq!(decode(&raw, 40).expect("ours"), 0x0123_4567_89ab_cdef);
        assert!(decode(&raw, 41).is_err());
    }
}
