//! A peer built by hand from the wire format, for peers the library would never be: a
//! hostile one that keeps a writable mapping of its own segment and scribbles over it, and
//! fake connectors/listeners that stop (or die) in the middle of the handshake.
//!
//! The wire format is the library's (`shm/handshake.rs`, `shm/segment.rs`):
//! ```text
//!  hello (64 B): "SHMSOCKH" | version u32 | kind u32 (1 hello, 2 refuse) | pid u32
//!                | reason u32 | ring capacity u64 | zeros      + one memfd (SCM_RIGHTS)
//!  segment:      magic "SHMSOCK1" u64 @0 | version u64 @8 | length u64 @16
//!                | ring offset u64 @24 (4096) | ring capacity u64 @32 | pid u64 @40
//!                | flags u64 @48 | DATA_SEQ u32 @64 | CONSUMED u64 @128 | SPACE_SEQ u32 @192
//!                | RX_SLEEPING u32 @256 | TX_SLEEPING u32 @320 | counters @384..416
//!                ... ring at 4096, length 4096 + capacity
//!  frame:        tag u64 = position + 1 | len u32 | kind u32 (0 data, 1 pad) | payload
//! ```

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use shmsock_testkit::wire;

pub use shmsock_testkit::wire::{
    good_hello, hello, read_hello, send_with_fds, socket_path, ACK, ALL_SEALS, HELLO_BYTES,
    KIND_HELLO,
};

/// Offset of the ring in a segment, as an index into a mapping.
pub const RING_OFFSET: usize = wire::RING_OFFSET as usize;

pub const OFF_FLAGS: usize = 48;
pub const OFF_DATA_SEQ: usize = 64;
pub const OFF_CONSUMED: usize = 128;
pub const OFF_SPACE_SEQ: usize = 192;
pub const OFF_RX_SLEEPING: usize = 256;
pub const OFF_TX_SLEEPING: usize = 320;
pub const OFF_COUNTERS: usize = 384;
/// Every 8-byte word of the header page the library gives a meaning to.
pub const HEADER_WORDS: [usize; 16] = [
    0,
    8,
    16,
    24,
    32,
    40,
    OFF_FLAGS,
    OFF_DATA_SEQ,
    OFF_CONSUMED,
    OFF_SPACE_SEQ,
    OFF_RX_SLEEPING,
    OFF_TX_SLEEPING,
    OFF_COUNTERS,
    OFF_COUNTERS + 8,
    OFF_COUNTERS + 16,
    OFF_COUNTERS + 24,
];

/// The ring capacity a hello announces (0 if it is too short).
pub fn hello_capacity(h: &[u8]) -> u64 {
    h.get(24..32)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// A memfd sized for a ring of `capacity`, with a correct header, unsealed.
fn raw_segment(capacity: u64, size: u64) -> OwnedFd {
    wire::segment("shmsock-raw-peer", capacity, size, SealFlags::empty())
}

/// A correct, sealed segment for a ring of `capacity` (the fd only; nobody keeps a mapping).
pub fn sealed_segment(capacity: u64) -> OwnedFd {
    let fd = raw_segment(capacity, RING_OFFSET as u64 + capacity);
    rustix::fs::fcntl_add_seals(&fd, ALL_SEALS).expect("sealing");
    fd
}

/// Our own segment with a writable mapping kept *before* sealing (F_SEAL_FUTURE_WRITE only
/// forbids new writable mappings): what a hostile peer uses to lie in its own memory.
pub struct WritableSegment {
    pub fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

impl WritableSegment {
    pub fn create(capacity: u64) -> Self {
        let len = RING_OFFSET + capacity as usize;
        let fd = raw_segment(capacity, len as u64);
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint) overlaps nothing;
        // the memfd is `len` bytes long and cannot shrink once sealed below.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .expect("mmap of our own segment");
        rustix::fs::fcntl_add_seals(&fd, ALL_SEALS).expect("sealing");
        WritableSegment {
            fd,
            base: NonNull::new(ptr.cast()).expect("mmap returns non-null"),
            len,
        }
    }

    /// Stores `value` at byte `offset` (rounded down to 8, clamped into the mapping).
    pub fn poke(&self, offset: usize, value: u64) {
        let offset = (offset & !7).min(self.len - 8);
        // SAFETY: `offset + 8 <= len` and 8-aligned (the mapping is page aligned); the
        // mapping lives as long as `self`; the reader only accesses it atomically or copies.
        let word = unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) };
        word.store(value, Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for WritableSegment {
    fn drop(&mut self) {
        // SAFETY: base/len are what mmap returned; no reference into the mapping outlives
        // `self` (poke/peek create temporaries).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A regular file in `dir` (unlinked at once) holding the first `len` bytes of `image`: a
/// perfect image in an fd of the wrong kind.
pub fn regular_file_copy(dir: &Path, name: &str, image: &OwnedFd, len: usize) -> OwnedFd {
    let path = dir.join(format!("{name}-{}", std::process::id()));
    let fd = rustix::fs::open(
        &path,
        OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::TRUNC,
        Mode::from_raw_mode(0o600),
    )
    .expect("creating a regular file");
    let _ = std::fs::remove_file(&path);
    let mut bytes = vec![0u8; len];
    rustix::io::pread(image, &mut bytes, 0).expect("reading the image");
    rustix::io::pwrite(&fd, &bytes, 0).expect("writing the image");
    fd
}

/// Sends `bytes` with the one fd `fd` attached.
pub fn send_hello_with(sock: &UnixStream, bytes: &[u8], fd: &OwnedFd) -> std::io::Result<usize> {
    send_with_fds(sock, bytes, &[fd.as_fd()])
}
