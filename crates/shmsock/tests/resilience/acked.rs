//! "Acknowledged then lost": what a victim child's `send` accepted must reach the survivor
//! even though the child is SIGKILLed right after.
//!
//! The parent creates a one-page memfd ([`Acked::create`]) and names it to the child in
//! [`ACKED_ENV`] as `/proc/<parent pid>/fd/<fd>` (the child reopens the parent's memfd
//! through that link: the same memory, no fd to inherit). After every `send` that
//! returned `Ok`, the child stores in it how many of its messages were accepted so far
//! (the last accepted sequence number + 1), a plain atomic store into the mapping, which
//! survives the child. After the kill the survivor drains until `PeerGone` and must have
//! received at least that many: a message acknowledged to the sender is never lost with
//! it. (A kill between `send`'s return and the store only makes the count one lower, so
//! the check is never wrong, only at worst one message less strict.)

use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{MemfdFlags, Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// Where a victim child finds the parent's counter: `/proc/<pid>/fd/<fd>`.
pub const ACKED_ENV: &str = "SHMSOCK_TEST_ACKED";

/// Bytes of the memfd and of its mapping (one page; the counter is its first word).
const LEN: usize = 4096;

/// The shared counter of messages a victim's `send` accepted.
pub struct Acked {
    /// Kept open: a child reopens it through `path`.
    _fd: OwnedFd,
    word: NonNull<AtomicU64>,
    /// `/proc/<our pid>/fd/<fd>`, for [`ACKED_ENV`].
    path: String,
}

impl Acked {
    /// A fresh counter at 0, for one victim (the parent's side).
    pub fn create() -> Acked {
        let fd = rustix::fs::memfd_create("acked-messages", MemfdFlags::CLOEXEC)
            .expect("memfd_create for the acked counter");
        rustix::fs::ftruncate(&fd, LEN as u64).expect("sizing the acked counter");
        Acked::map(fd)
    }

    /// The counter the parent named in [`ACKED_ENV`] (the child's side).
    pub fn open_from_env() -> Acked {
        let path = std::env::var(ACKED_ENV)
            .unwrap_or_else(|_| panic!("{ACKED_ENV} is not set: the parent passes its counter"));
        let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .unwrap_or_else(|e| panic!("opening the parent's acked counter {path}: {e}"));
        Acked::map(fd)
    }

    fn map(fd: OwnedFd) -> Acked {
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint) overlaps nothing;
        // the memfd is LEN bytes long and nobody shrinks it.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .expect("mapping the acked counter");
        let path = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
        Acked {
            _fd: fd,
            word: NonNull::new(ptr.cast()).expect("mmap returns non-null"),
            path,
        }
    }

    /// The environment entry that names this counter to a child.
    pub fn env(&self) -> (&'static str, &str) {
        (ACKED_ENV, &self.path)
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the first word of a live, page-aligned mapping of LEN bytes; every
        // process reaches it only atomically.
        unsafe { self.word.as_ref() }
    }

    /// Records that `count` messages were accepted (the child, after each `Ok` send).
    pub fn store(&self, count: u64) {
        self.word().store(count, Ordering::Release);
    }

    /// How many messages the child recorded as accepted.
    pub fn load(&self) -> u64 {
        self.word().load(Ordering::Acquire)
    }

    /// Checks that the survivor received (`received`) at least what the child recorded as
    /// accepted; `what` names the kill point.
    #[track_caller]
    pub fn assert_all_received(&self, received: u64, what: &str) {
        let acked = self.load();
        assert!(
            received >= acked,
            "{what}: the killed child's send accepted {acked} messages, yet only {received} \
             arrived: acknowledged messages were lost with the sender"
        );
    }
}

impl Drop for Acked {
    fn drop(&mut self) {
        // SAFETY: the address and length mmap returned; no reference into the mapping
        // outlives `self` (`word` borrows it).
        let _ = unsafe { rustix::mm::munmap(self.word.as_ptr().cast(), LEN) };
    }
}
