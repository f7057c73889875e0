//! Hand-made loan pools, hellos with flags, loan frames and the handshake spoken by hand, for
//! peers the library would never be: lenders that forge loan frames, borrowers that lie in
//! their release words, and fake listeners and publishers that pass the wrong fds.
//!
//! The wire format is the library's (`shm/handshake.rs`, `shm/segment.rs`, `shm/ring.rs`,
//! `shm/loan.rs`):
//! ```text
//!  hello (64 B):  ... | role u32 @32 (0 Conn, 1 Publisher, 2 Subscriber, 3 Inbox)
//!                 | flags u32 @36 (1 doorbell, 2 pool) | pool slots u32 @40
//!                 | pool slot bytes u64 @48;  fds: segment, then doorbell, then pool
//!  pool:          magic "SHMPOOL1" u64 @0 | version u64 @8 | slots u64 @16
//!                 | slot bytes u64 @24 | creator pid u64 @32 ... slots from 4096, each
//!                 `slot bytes` long
//!  loan frame:    tag u64 | len 24 u32 | kind 2 u32 | slot u32 | 0 u32 | generation u64
//!                 | length u64   (48 bytes in the ring)
//!  borrower:      RELEASED u64 per slot @1024 of its segment; a subscriber also keeps
//!                 TAKEN u64 per slot @4096
//! ```

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use rustix::fs::{MemfdFlags, SealFlags};
use shmsock::PROTOCOL_VERSION;

use crate::rawpeer::{self, WritableSegment, ACK, ALL_SEALS, KIND_HELLO, RING_OFFSET};
use shmsock_testkit::harness::STEP_TIMEOUT;

pub const HELLO_FLAG_DOORBELL: u32 = 1;
pub const HELLO_FLAG_POOL: u32 = 2;
pub const ROLE_CONN: u32 = 0;
pub const ROLE_PUBLISHER: u32 = 1;
pub const ROLE_SUBSCRIBER: u32 = 2;
pub const ROLE_INBOX: u32 = 3;

pub const POOL_MAGIC: u64 = u64::from_le_bytes(*b"SHMPOOL1");
pub const POOL_SLOTS_OFFSET: u64 = 4096;
/// Per-slot release words in a borrower's segment.
pub const OFF_RELEASED: usize = 1024;
/// Per-slot taken words in a subscriber's segment.
pub const OFF_TAKEN: usize = 4096;
pub const OFF_CONSUMED: usize = rawpeer::OFF_CONSUMED;
/// A publisher's seqlock'd cursor: version, oldest pos, oldest seq, write pos, write seq.
pub const OFF_CURSOR_VERSION: usize = 448;

pub const KIND_LOAN: u32 = 2;
pub const LOAN_FRAME_BYTES: u64 = 24;

/// Numbers the fake pools, so each has a unique name in `/proc/self/fd`.
static NEXT_POOL: AtomicU32 = AtomicU32::new(0);
/// The prefix of every fake pool's memfd name.
pub const FAKE_POOL: &str = "shmsock-fake-pool-";

/// A hello of the current version announcing a ring of `capacity`, `role` and `flags`,
/// and a pool of `slots` x `slot_bytes`.
pub fn hello(capacity: u64, role: u32, flags: u32, slots: u32, slot_bytes: u64) -> Vec<u8> {
    let mut b = rawpeer::hello(PROTOCOL_VERSION, KIND_HELLO, capacity);
    b[32..36].copy_from_slice(&role.to_le_bytes());
    b[36..40].copy_from_slice(&flags.to_le_bytes());
    b[40..44].copy_from_slice(&slots.to_le_bytes());
    b[48..56].copy_from_slice(&slot_bytes.to_le_bytes());
    b
}

/// The byte at offset `i` of slot `slot` of every fake pool (so a reader can check it).
pub fn pool_byte(slot: u64, i: u64) -> u8 {
    (slot.wrapping_mul(31) ^ i.wrapping_mul(7) ^ 0x5a) as u8
}

/// How to build a fake pool: its header words, its size and its seals.
#[derive(Debug, Clone, Copy)]
pub struct PoolSpec {
    pub magic: u64,
    pub version: u64,
    pub slots: u64,
    pub slot_bytes: u64,
    pub size: u64,
    pub seals: SealFlags,
}

impl PoolSpec {
    /// A correct pool of `slots` x `slot_bytes`.
    pub fn good(slots: u64, slot_bytes: u64) -> Self {
        PoolSpec {
            magic: POOL_MAGIC,
            version: u64::from(PROTOCOL_VERSION),
            slots,
            slot_bytes,
            size: POOL_SLOTS_OFFSET + slots * slot_bytes,
            seals: ALL_SEALS,
        }
    }

    /// The memfd: header, slots filled with [`pool_byte`] (as far as the size allows),
    /// then the seals.
    pub fn build(self) -> OwnedFd {
        let name = format!("{FAKE_POOL}{}", NEXT_POOL.fetch_add(1, Ordering::Relaxed));
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, self.size).expect("ftruncate");
        if self.size >= 40 {
            // The creator's pid: ours (the hand-made peer runs in this process).
            let pid = u64::from(std::process::id());
            let header = [self.magic, self.version, self.slots, self.slot_bytes, pid];
            for (i, w) in header.iter().enumerate() {
                rustix::io::pwrite(&fd, &w.to_le_bytes(), 8 * i as u64).expect("pwrite header");
            }
        }
        let slots_len = self.size.saturating_sub(POOL_SLOTS_OFFSET);
        if self.slot_bytes > 0 && slots_len > 0 {
            let bytes: Vec<u8> = (0..slots_len)
                .map(|i| pool_byte(i / self.slot_bytes, i % self.slot_bytes))
                .collect();
            rustix::io::pwrite(&fd, &bytes, POOL_SLOTS_OFFSET).expect("pwrite slots");
        }
        if !self.seals.is_empty() {
            rustix::fs::fcntl_add_seals(&fd, self.seals).expect("sealing");
        }
        fd
    }
}

/// The names of our open fds that are fake pools.
pub fn open_fake_pools() -> Vec<String> {
    crate::leaks::open_fds()
        .into_iter()
        .map(|(_, target)| target)
        .filter(|t| t.contains(FAKE_POOL))
        .collect()
}

/// A peer's ring written by hand into its own (writable) segment: well-formed frames with
/// any kind and any length word.
pub struct RawRing {
    pub seg: WritableSegment,
    pub cap: u64,
    pub pos: u64,
    /// A publisher's broadcast ring: the seqlock'd cursor moves before each frame.
    pub broadcast: bool,
    /// Frames written (the broadcast cursor's write sequence).
    pub frames: u64,
}

impl RawRing {
    pub fn new(seg: WritableSegment) -> Self {
        RawRing {
            cap: (seg.len() - RING_OFFSET) as u64,
            seg,
            pos: 0,
            broadcast: false,
            frames: 0,
        }
    }

    /// A publisher's ring (see [`RawRing::broadcast`]).
    pub fn broadcast(seg: WritableSegment) -> Self {
        RawRing {
            broadcast: true,
            ..RawRing::new(seg)
        }
    }

    /// Publishes the cursor `(0, 0, write_pos, write_seq)` under the seqlock.
    fn publish_cursor(&self, write_pos: u64, write_seq: u64) {
        let version = 2 * self.frames;
        self.seg.poke(OFF_CURSOR_VERSION, version + 1);
        self.seg.poke(OFF_CURSOR_VERSION + 24, write_pos);
        self.seg.poke(OFF_CURSOR_VERSION + 32, write_seq);
        self.seg.poke(OFF_CURSOR_VERSION, version + 2);
    }

    /// Publishes a frame of `kind` whose header claims `len` bytes and whose payload is
    /// `payload` (8-byte words), padding to the ring end first if needed; returns its
    /// position.
    pub fn publish(&mut self, kind: u32, len: u64, payload: &[u64]) -> u64 {
        let body = (payload.len() as u64 * 8)
            .max(len.min(240))
            .next_multiple_of(16);
        let index = self.pos & (self.cap - 1);
        assert!(
            !self.broadcast || 16 + body + 8 <= self.cap - index,
            "no padding here"
        );
        if 16 + body + 8 > self.cap - index {
            let to_end = self.cap - index;
            self.seg.poke(self.at(index + 8), (to_end - 16) | 1 << 32);
            self.seg.poke(RING_OFFSET, 0);
            self.seg.poke(self.at(index), self.pos + 1);
            self.pos += to_end;
            return self.publish(kind, len, payload);
        }
        for (i, w) in payload.iter().enumerate() {
            self.seg.poke(self.at(index + 16 + 8 * i as u64), *w);
        }
        self.seg
            .poke(self.at(index + 8), len | u64::from(kind) << 32);
        self.seg
            .poke(self.at((index + 16 + body) & (self.cap - 1)), 0);
        if self.broadcast {
            self.publish_cursor(self.pos + 16 + body, self.frames + 1);
        }
        self.frames += 1;
        // The tag last (a Release store): the reader sees the payload and header with it.
        self.seg.poke(self.at(index), self.pos + 1);
        let at = self.pos;
        self.pos += 16 + body;
        at
    }

    /// Publishes a loan frame `{slot, generation, len}`.
    pub fn loan(&mut self, slot: u32, generation: u64, len: u64) -> u64 {
        let words = [u64::from(slot), generation, len];
        self.publish(KIND_LOAN, LOAN_FRAME_BYTES, &words)
    }

    fn at(&self, index: u64) -> usize {
        RING_OFFSET + index as usize
    }
}

/// A read-only view of a peer's segment received in a hello (its release and taken words).
pub struct PeerWords {
    fd: OwnedFd,
}

impl PeerWords {
    pub fn new(fd: OwnedFd) -> Self {
        PeerWords { fd }
    }

    /// The u64 at `offset` (read with `pread`: no mapping needed).
    pub fn word(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        rustix::io::pread(&self.fd, &mut b, offset as u64).expect("pread of the peer's segment");
        u64::from_le_bytes(b)
    }

    pub fn released(&self, slot: u64) -> u64 {
        self.word(OFF_RELEASED + 8 * slot as usize)
    }

    pub fn taken(&self, slot: u64) -> u64 {
        self.word(OFF_TAKEN + 8 * slot as usize)
    }
}

/// One side of a handshake spoken by hand: what the other side sent, and the verdict.
pub struct ByHand {
    pub sock: UnixStream,
    /// The fds that came with the other side's hello.
    pub fds: Vec<OwnedFd>,
    /// We got the ACK (connector) or the peer answered with its own hello (listener).
    pub accepted: bool,
}

/// A connector speaking the handshake by hand on another thread: sends `bytes` with `fds`,
/// then reads the listener's hello and the ACK that follows it.
pub fn connect_by_hand(path: &Path, bytes: Vec<u8>, fds: Vec<OwnedFd>) -> JoinHandle<ByHand> {
    let path = path.to_owned();
    std::thread::spawn(move || connect_now(&path, &bytes, fds))
}

/// [`connect_by_hand`] on this thread (for listeners that accept on their own thread).
pub fn connect_now(path: &Path, bytes: &[u8], fds: Vec<OwnedFd>) -> ByHand {
    let sock = UnixStream::connect(path).expect("connecting by hand");
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let sent = rawpeer::send_with_fds(&sock, bytes, &borrowed).is_ok();
    drop(borrowed);
    drop(fds);
    // A listener that refuses us may hang up with our bytes unread (a reset).
    let (theirs, their_fds) = rawpeer::read_hello(&sock).unwrap_or_default();
    // The whole acknowledgement (a publisher's says where we start), so that only what the
    // listener sends later is left to read.
    let mut reply = vec![0u8; ack_for(&theirs).len()];
    sock.set_read_timeout(Some(STEP_TIMEOUT)).expect("timeout");
    let accepted = sent
        && theirs.len() == rawpeer::HELLO_BYTES
        && (&sock).read_exact(&mut reply).is_ok()
        && reply[0] == ACK;
    ByHand {
        sock,
        fds: their_fds,
        accepted,
    }
}

/// [`listen_by_hand`] at `endpoint` while our side (`connect`) connects to it; returns what
/// `connect` returned and the hand-made peer (`what`, for the failure message), once its
/// thread ended and its socket file is removed.
pub fn against_by_hand<T>(
    endpoint: &str,
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    what: &str,
    connect: impl FnOnce() -> T,
) -> (T, ByHand) {
    let (path, peer) = listen_by_hand(endpoint, bytes, fds, true);
    let ours = connect();
    let mut peer = peer
        .join()
        .unwrap_or_else(|_| panic!("the hand-made {what} panicked"));
    let _ = std::fs::remove_file(path);
    peer.accepted = peer.accepted && stayed(&peer.sock);
    (ours, peer)
}

/// Whether a connector that has made up its mind (its `connect` returned) kept the
/// connection or closed it after it was established: a refusing connector hangs up
/// without a goodbye, one that accepted is still there or said goodbye (`B`) first.
fn stayed(sock: &UnixStream) -> bool {
    let mut first = [0u8; 1];
    let flags = rustix::net::RecvFlags::DONTWAIT | rustix::net::RecvFlags::PEEK;
    match rustix::net::recv(sock, &mut first, flags) {
        Err(rustix::io::Errno::AGAIN) => true,
        Ok((1, _)) => first[0] == b'B',
        _ => false,
    }
}

/// The acknowledgement a listener sends after the hello `ours`: a publisher's (role 1 at
/// offset 32) also says where the subscriber starts (position and sequence, here 0 and 0).
pub fn ack_for(ours: &[u8]) -> Vec<u8> {
    let mut ack = vec![ACK];
    if ours.get(32..36) == Some(&1u32.to_le_bytes()[..]) {
        ack.extend([0u8; 16]);
    }
    ack
}

/// A fake listener (or publisher) at `endpoint`'s socket, on another thread: accepts one
/// connector, reads its hello, and answers with `bytes` with `fds` (followed by the ACK
/// if `ack`). `accepted` says whether the connector sent its hello ([`against_by_hand`]
/// then also asks whether it stayed).
fn listen_by_hand(
    endpoint: &str,
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    ack: bool,
) -> (PathBuf, JoinHandle<ByHand>) {
    let path = rawpeer::socket_path(endpoint);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("binding a fake listener");
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accepting by hand");
        let (hello, their_fds) = rawpeer::read_hello(&sock).unwrap_or_default();
        let accepted = hello.len() == rawpeer::HELLO_BYTES;
        let mut answer = bytes.clone();
        if accepted && ack {
            answer.extend(ack_for(&bytes));
        }
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        rawpeer::send_with_fds(&sock, &answer, &borrowed).expect("our hello");
        drop(borrowed);
        drop(fds);
        ByHand {
            sock,
            fds: their_fds,
            accepted,
        }
    });
    (path, handle)
}
