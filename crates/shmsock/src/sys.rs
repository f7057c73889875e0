//! Thin, safe wrappers over the few syscalls rustix does not wrap the way we need.
//!
//! Futexes here are *shared* (no `FUTEX_PRIVATE_FLAG`): the word lives in a memfd mapping
//! that another process maps too, and the kernel keys the wait queue by inode and offset.
//! Waiting only reads the word, so it works on a read-only mapping.
//!
//! # References
//!  - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)

use std::time::Duration;

use rustix::thread::futex;

use crate::sync::AtomicU32;

/// Sleeps while `*word == expected`, for at most `timeout`. Returns on a wake-up, a value
/// change, a signal or the timeout; callers re-check their condition in every case.
#[inline]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "re-check".
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes every process sleeping on `word`.
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}
