//! Thin, safe wrappers over the few syscalls rustix does not wrap the way we need.
//!
//! Futexes here are *shared* (no `FUTEX_PRIVATE_FLAG`): the word lives in a memfd mapping
//! that another process maps too, and the kernel keys the wait queue by inode and offset.
//! Waiting only reads the word, so it works on a read-only mapping.
//!
//! # References
//!  - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//!
//! # Safety
//! One `unsafe` call lives here: registering an fd with tokio's reactor
//! ([`register_with_reactor`]), whose contract (the fd stays open and the same while
//! registered) an `OwnedFd` moved into the registration meets by construction.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::thread::futex;

use crate::sync::AtomicU32;

/// Sleeps while `*word == expected`, for at most `timeout`. Returns on a wake-up, a value
/// change, a signal or the timeout; callers re-check their condition in every case.
#[inline]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = timespec(timeout);
    // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "re-check".
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// `d` as a kernel timeout (saturating at `i64::MAX` seconds).
#[inline]
pub(crate) fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Waits until `fd` is readable (or hung up), at most `timeout`: `Ok(true)` if it is,
/// `Ok(false)` once the timeout passed. A signal restarts the wait with the time left.
pub(crate) fn wait_readable(fd: impl AsFd, timeout: Duration) -> rustix::io::Result<bool> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timespec(left))) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Wakes every process sleeping on `word`.
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

/// Whether this process uses *light* barriers on its notify path: it registered for
/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, so a waiting peer can force a full barrier on our CPU
/// with [`heavy_barrier`] instead of us paying an `mfence` on every send. Decided once.
///
/// # References
///  - [membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html)
pub(crate) fn light_barriers() -> bool {
    static LIGHT: Probed = Probed::new();
    LIGHT.get(|| {
        // Opt-out for environments where the waiter's IPIs are unwelcome (and for A/B runs).
        if std::env::var_os("SHMSOCK_NO_MEMBARRIER").is_some() {
            return false;
        }
        use rustix::thread::{membarrier, MembarrierCommand};
        membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
            && membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    })
}

/// A yes/no answer worked out once per process, without a lock: threads that race to
/// probe all probe (the probes are idempotent), so a `fork` in the middle of one leaves the
/// child no lock held forever (a `OnceLock` would).
struct Probed(std::sync::atomic::AtomicU8);

impl Probed {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;

    const fn new() -> Self {
        Probed(std::sync::atomic::AtomicU8::new(Self::UNKNOWN))
    }

    fn get(&self, probe: impl FnOnce() -> bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self.0.load(Relaxed) {
            Self::YES => true,
            Self::NO => false,
            _ => {
                let yes = probe();
                self.0
                    .store(if yes { Self::YES } else { Self::NO }, Relaxed);
                yes
            }
        }
    }
}

/// Runs a full memory barrier on every running thread of every process registered by
/// [`light_barriers`]. Returns false if the kernel refused.
pub(crate) fn heavy_barrier() -> bool {
    rustix::thread::membarrier(rustix::thread::MembarrierCommand::GlobalExpedited).is_ok()
}

/// Whether [`heavy_barrier`] works here (tried once per process: a `membarrier` costs up
/// to ~15 µs on a VM whose other CPU is busy, too much to pay on every connection's setup).
pub(crate) fn heavy_barrier_works() -> bool {
    static WORKS: Probed = Probed::new();
    WORKS.get(heavy_barrier)
}

/// Registers `fd` with the current tokio reactor for `interest`: the safe form of
/// `AsyncFd::register_with_interest` for an owned fd. Must run within a tokio runtime with
/// I/O enabled.
///
/// # References
///  - [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
pub(crate) fn register_with_reactor(
    fd: std::os::fd::OwnedFd,
    interest: tokio::io::Interest,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: the `AsyncFd` owns `fd` from here on: nothing else can close it, and
    // `OwnedFd::as_raw_fd` returns the same number, until the `AsyncFd` is dropped or gives
    // the fd back (`into_inner`), which is what `register_with_interest` requires.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
        .map_err(|e| e.into_parts().1)
}
