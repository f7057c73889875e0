//! `posix-mq`: POSIX message queues (`mq_open`, `mq_send`, `mq_timedreceive`).
//!
//! A kernel-managed queue of whole messages, each with a priority (all 0 here). Setup opens
//! each queue under a name unique to this run and unlinks the name at once, so nothing is left
//! in `/dev/mqueue` whatever happens; the descriptors are inherited by the child. Ping-pong uses
//! two queues, streaming one. Receives have a timeout, so a dead peer is a stall, not a hang.
//!
//! Limits: a queue holds at most `/proc/sys/fs/mqueue/msg_max` messages (10 by default) of at
//! most `msgsize_max` bytes (8 KiB by default); larger sizes are reported as unavailable.
//!
//! # Safety
//!
//! The `mq_*` calls are not in rustix, so this module calls libc. Each call gets a descriptor
//! this module opened and still owns, and pointers/lengths of live Rust buffers.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::lanes::{self, Lane};
use super::{again_or_fail, sleep_until, sysctl, FanIn, FanInSides, Mechanism, Pair, Pattern};
use crate::error::LabError;

/// Distinguishes the queues made by one process.
static NEXT_QUEUE: AtomicU64 = AtomicU64::new(0);

/// Linux's default `msgsize_max`, used when `/proc` does not say.
const MSGSIZE_MAX_DEFAULT_BYTES: usize = 8192;
/// Linux's default `msg_max`, used when `/proc` does not say.
const MSG_MAX_DEFAULT: usize = 10;
/// Longest single `mq_timedreceive`; the stall timeout is checked between them.
const RECEIVE_SLICE: Duration = Duration::from_secs(1);

/// POSIX message queues.
#[derive(Debug, Clone, Copy, Default)]
pub struct PosixMq;

impl Mechanism for PosixMq {
    fn name(&self) -> &'static str {
        "posix-mq"
    }

    fn max_message(&self) -> usize {
        sysctl("fs/mqueue/msgsize_max", MSGSIZE_MAX_DEFAULT_BYTES)
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let depth = match pattern {
            Pattern::PingPong => 1,
            Pattern::Stream => sysctl("fs/mqueue/msg_max", MSG_MAX_DEFAULT),
        };
        lanes::pair("posix-mq", pattern, || MessageQueue::create(size, depth))
    }
}

impl FanIn for PosixMq {
    fn name(&self) -> &'static str {
        "posix-mq"
    }

    fn max_message(&self) -> usize {
        Mechanism::max_message(self)
    }

    /// One queue, as deep as the kernel allows; every producer holds its own descriptor.
    fn setup_fan_in(&self, producers: usize, size: usize) -> Result<FanInSides, LabError> {
        let queue = MessageQueue::create(size, sysctl("fs/mqueue/msg_max", MSG_MAX_DEFAULT))?;
        lanes::fan_in("posix-mq", producers, queue)
    }
}

/// An open, already unlinked POSIX message queue; closed on drop.
pub(crate) struct MessageQueue {
    mqd: libc::mqd_t,
    msgsize: usize,
}

impl MessageQueue {
    /// Creates a queue of up to `depth` messages of up to `msgsize` bytes, and unlinks its name.
    pub(crate) fn create(msgsize: usize, depth: usize) -> Result<Self, LabError> {
        let name = format!(
            "/shmsock-lab-{}-{}",
            std::process::id(),
            NEXT_QUEUE.fetch_add(1, Ordering::Relaxed)
        );
        let name = CString::new(name).map_err(|_| LabError::Integrity {
            detail: "queue name with a NUL byte".into(),
        })?;
        let too_big = |_| LabError::WrongSize {
            len: msgsize,
            size: MSGSIZE_MAX_DEFAULT_BYTES,
        };
        // SAFETY: `mq_attr` is a plain C struct; all-zero is a valid value of it.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = libc::c_long::try_from(depth.max(1)).map_err(too_big)?;
        attr.mq_msgsize = libc::c_long::try_from(msgsize.max(1)).map_err(too_big)?;
        // SAFETY: `name` is a NUL-terminated string and `attr` a valid `mq_attr`, both alive
        // for the call; with O_CREAT the variadic arguments are the mode and the attributes.
        let mqd = unsafe {
            libc::mq_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::mode_t,
                &attr as *const libc::mq_attr,
            )
        };
        if mqd == -1 {
            return Err(LabError::Os {
                what: "mq_open (creating a POSIX message queue)",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `name` is a NUL-terminated string alive for the call.
        unsafe { libc::mq_unlink(name.as_ptr()) };
        Ok(Self { mqd, msgsize })
    }
}

impl Lane for MessageQueue {
    /// Another descriptor of the same queue.
    fn handle(&self) -> Result<Self, LabError> {
        // SAFETY: `dup` on a descriptor this value owns; a message queue descriptor is a file
        // descriptor on Linux.
        let mqd = unsafe { libc::dup(self.mqd) };
        if mqd == -1 {
            return Err(LabError::Os {
                what: "duplicating a message queue descriptor",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `mqd` is a fresh descriptor we own; set close-on-exec like the original.
        unsafe { libc::fcntl(mqd, libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(Self {
            mqd,
            msgsize: self.msgsize,
        })
    }

    /// Sends one message; blocks while the queue is full.
    fn push(&mut self, msg: &[u8]) -> Result<(), LabError> {
        loop {
            // SAFETY: `msg` is a live buffer of `msg.len()` bytes; `mqd` is open.
            let rc = unsafe { libc::mq_send(self.mqd, msg.as_ptr().cast(), msg.len(), 0) };
            if rc == 0 {
                return Ok(());
            }
            again_or_fail::<()>("mq_send", &[libc::EINTR])?;
        }
    }

    /// Receives one message into `buf` (at least the queue's message size); fails after
    /// [`super::STALL_TIMEOUT`] without one.
    fn pop(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        if buf.len() < self.msgsize {
            return Err(LabError::WrongSize {
                len: buf.len(),
                size: self.msgsize,
            });
        }
        sleep_until("waiting on a POSIX message queue", || {
            let deadline = realtime_after(RECEIVE_SLICE);
            // SAFETY: `buf` is a live buffer of `buf.len()` bytes, at least the queue's message
            // size (checked above); `deadline` is a valid timespec; `mqd` is open.
            let n = unsafe {
                libc::mq_timedreceive(
                    self.mqd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                    &deadline,
                )
            };
            if let Ok(n) = usize::try_from(n) {
                return Ok(Some(n));
            }
            again_or_fail("mq_timedreceive", &[libc::EINTR, libc::ETIMEDOUT])
        })
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        // SAFETY: `mqd` was opened by this value and is closed exactly once, here.
        unsafe { libc::mq_close(self.mqd) };
    }
}

/// `CLOCK_REALTIME` now + `after`, as `mq_timedreceive` wants it.
pub(crate) fn realtime_after(after: Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let mut sec = now.tv_sec + after.as_secs() as i64;
    let mut nsec = now.tv_nsec + i64::from(after.subsec_nanos());
    if nsec >= 1_000_000_000 {
        sec += 1;
        nsec -= 1_000_000_000;
    }
    // SAFETY: `timespec` is a plain C struct; all-zero is a valid value of it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    ts.tv_sec = sec as libc::time_t;
    ts.tv_nsec = nsec as libc::c_long;
    ts
}
