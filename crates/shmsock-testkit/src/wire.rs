//! The `shm://` handshake spoken by hand, for peers the library would never be: hostile
//! ones, and ones that stop (or die) in the middle of the handshake.
//!
//! The wire format is the library's (`shm/handshake.rs`, `shm/segment.rs`):
//! ```text
//!  hello (64 B): "SHMSOCKH" | version u32 | kind u32 (1 hello, 2 refuse) | pid u32
//!                | reason u32 | ring capacity u64 | zeros      + one memfd (SCM_RIGHTS)
//!  segment:      magic "SHMSOCK1" u64 @0 | version u64 @8 | length u64 @16
//!                | ring offset u64 @24 (4096) | ring capacity u64 @32 | pid u64 @40
//!                ... ring at 4096, length 4096 + capacity
//! ```
//! The connector speaks first; the listener answers a connector it accepts with its own
//! hello followed by one [`ACK`] byte, in one message (a refused one gets a refusal, kind 2,
//! and no fd).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use shmsock::PROTOCOL_VERSION;

use crate::harness::STEP_TIMEOUT;

/// The `kind` of a hello that offers a connection (2 is a refusal).
pub const KIND_HELLO: u32 = 1;
/// Length of a hello.
pub const HELLO_BYTES: usize = 64;
/// Offset of the ring in a segment (the header page comes first).
pub const RING_OFFSET: u64 = 4096;
/// The byte a listener sends to a connector it accepts.
pub const ACK: u8 = b'A';
/// The four seals the library requires of a peer's memfd.
pub const ALL_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::FUTURE_WRITE)
    .union(SealFlags::SEAL);

/// A 64-byte hello of protocol `version` and `kind`, from this process, announcing a ring
/// of `capacity` bytes.
pub fn hello(version: u32, kind: u32, capacity: u64) -> Vec<u8> {
    let mut b = vec![0u8; HELLO_BYTES];
    b[0..8].copy_from_slice(b"SHMSOCKH");
    b[8..12].copy_from_slice(&version.to_le_bytes());
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    b[24..32].copy_from_slice(&capacity.to_le_bytes());
    b
}

/// A correct hello announcing a ring of `capacity` bytes.
pub fn good_hello(capacity: u64) -> Vec<u8> {
    hello(PROTOCOL_VERSION, KIND_HELLO, capacity)
}

/// A memfd called `name` of `size` bytes with a correct header for a ring of `capacity`
/// (none if `size` is too small for it: writing it would grow the file), then `seals`.
pub fn segment(name: &str, capacity: u64, size: u64, seals: SealFlags) -> OwnedFd {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .expect("memfd_create");
    rustix::fs::ftruncate(&fd, size).expect("ftruncate");
    let header = [
        u64::from_le_bytes(*b"SHMSOCK1"),
        u64::from(PROTOCOL_VERSION),
        RING_OFFSET + capacity,
        RING_OFFSET,
        capacity,
        u64::from(std::process::id()),
    ];
    for (i, word) in header.iter().enumerate().filter(|_| size >= 48) {
        rustix::io::pwrite(&fd, &word.to_le_bytes(), 8 * i as u64).expect("pwrite header");
    }
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals).expect("sealing");
    }
    fd
}

/// The rendezvous socket of a `shm://NAME` endpoint.
pub fn socket_path(endpoint: &str) -> PathBuf {
    let name = endpoint.trim_start_matches("shm://");
    shmsock::runtime_dir()
        .expect("the rendezvous directory")
        .join(format!("{name}.sock"))
}

/// Sends `bytes` with `fds` attached in one `sendmsg`; returns how many bytes went.
pub fn send_with_fds(
    sock: &UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<usize> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    Ok(rustix::net::sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// Receives into `buf` until `want` bytes have come or the peer hangs up (at most
/// [`STEP_TIMEOUT`] per read), as the library's handshake does; returns the bytes received
/// (up to `buf.len()`: a read may bring more than `want`) and every fd that came with them.
pub fn recv_with_fds(
    sock: &UnixStream,
    buf: &mut [u8],
    want: usize,
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    sock.set_read_timeout(Some(STEP_TIMEOUT))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut got = 0;
    let mut fds = Vec::new();
    while got < want {
        let msg = rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf[got..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        if msg.bytes == 0 {
            break;
        }
        got += msg.bytes;
    }
    Ok((got, fds))
}

/// Reads the peer's [`HELLO_BYTES`]-byte hello by hand: its bytes (fewer if the peer hung up)
/// and the fds that came with it.
pub fn read_hello(sock: &UnixStream) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = [0u8; HELLO_BYTES];
    let (got, fds) = recv_with_fds(sock, &mut buf, HELLO_BYTES)?;
    Ok((buf[..got].to_vec(), fds))
}
