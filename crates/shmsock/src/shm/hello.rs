//! The hello: the one message each side of an `shm://` handshake sends (its wire format, the
//! fd it carries, the refusal reasons) and the bytes sent on the socket afterwards ([`BYE`],
//! [`ACK`], a publisher's [`Start`]). Every hello is exactly [`HELLO_BYTES`] long, carries one fd (or none for REFUSE;
//! up to three with a doorbell and a pool), and is read without blocking, within one
//! deadline for the whole handshake ([`HelloRx`]). The procedure that exchanges them is in
//! [`rendezvous`](super::rendezvous).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::segment::PROTOCOL_VERSION;
use crate::sys::wait_readable;

/// Size of every hello/refuse message.
pub(crate) const HELLO_BYTES: usize = 64;
/// Byte sent on the socket by a clean close.
pub(crate) const BYE: u8 = b'B';
/// Byte the listener sends once it accepted the connector's segment, right after its own
/// hello and in the same message.
pub(crate) const ACK: u8 = b'A';
/// A publisher's acknowledgement: [`ACK`], then where the subscriber starts reading (the
/// publisher's write position and sequence when it acknowledged, little-endian `u64`s). A
/// listener's or an inbox's is the one [`ACK`] byte.
pub(crate) const PUBLISHER_ACK_BYTES: usize = 17;

/// Where a subscriber starts: a write position of the publisher and its sequence number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Start {
    pub(crate) pos: u64,
    pub(crate) seq: u64,
}

impl Start {
    /// The acknowledgement that carries it.
    pub(crate) fn encode(self) -> [u8; PUBLISHER_ACK_BYTES] {
        let mut b = [0u8; PUBLISHER_ACK_BYTES];
        b[0] = ACK;
        b[1..9].copy_from_slice(&self.pos.to_le_bytes());
        b[9..17].copy_from_slice(&self.seq.to_le_bytes());
        b
    }

    /// Reads back a whole acknowledgement: a publisher's carries the start, anyone else's
    /// (the one [`ACK`] byte) starts nowhere in particular (`None`: not an acknowledgement).
    pub(crate) fn decode(b: &[u8]) -> Option<Start> {
        match b {
            [ACK] => Some(Start::default()),
            [ACK, rest @ ..] if rest.len() == 16 => Some(Start {
                pos: u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
                seq: u64::from_le_bytes(rest[8..].try_into().expect("8 bytes")),
            }),
            _ => None,
        }
    }

    /// How long the acknowledgement of a peer playing `role` is.
    pub(crate) fn ack_len(role: Role) -> usize {
        if role == Role::Publisher {
            PUBLISHER_ACK_BYTES
        } else {
            1
        }
    }
}

const HELLO_MAGIC: [u8; 8] = *b"SHMSOCKH";
const KIND_HELLO: u32 = 1;
const KIND_REFUSE: u32 = 2;

/// Reasons a listener gives for refusing a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum RefuseReason {
    /// The connector's uid is not allowed.
    Uid = 1,
    /// The listener could not create its segment.
    Resources = 2,
    /// The connector's hello, or what it carried, failed the listener's checks (the
    /// listener logs which). A refusal carries the listener's protocol version, so a
    /// connector of another version reports the mismatch instead.
    Invalid = 3,
    /// A subscriber asked to take over a network connection that is not its to take.
    NotGranted = 4,
}

/// What a side of a handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Role {
    /// Either side of a `Conn` (listener or connector).
    Conn = 0,
    /// A `Publisher` (listening side).
    Publisher = 1,
    /// A `Subscriber` (connecting side).
    Subscriber = 2,
    /// An `Inbox` (listening side; its connectors are plain `Conn`s).
    Inbox = 3,
}

impl Role {
    fn from_u32(v: u32) -> Option<Self> {
        [Role::Conn, Role::Publisher, Role::Subscriber, Role::Inbox]
            .into_iter()
            .find(|r| *r as u32 == v)
    }

    /// How a user reaches this role, for error messages.
    pub(crate) fn api(self) -> &'static str {
        match self {
            Role::Conn => "a Conn (Listener::bind / Conn::connect)",
            Role::Publisher => "a Publisher (Publisher::bind / Subscriber::connect)",
            Role::Subscriber => "a Subscriber",
            Role::Inbox => "an Inbox (Inbox::bind / Conn::connect)",
        }
    }

    /// Whether a peer announcing `self` may stand where `expected` was asked for: a `Conn`
    /// connects to a `Listener` or to an `Inbox` alike.
    pub(crate) fn fits(self, expected: Role) -> bool {
        self == expected || (expected == Role::Conn && self == Role::Inbox)
    }
}

/// Hello flag: a doorbell's ringing end (a Unix datagram socket) follows the segment fd;
/// ring it, not the futex, to wake the sender of this hello (see `doorbell`).
pub(crate) const HELLO_FLAG_DOORBELL: u32 = 1;
/// Hello flag: a loan pool fd follows (after the doorbell, if any); its shape is in
/// `pool_slots` and `pool_slot_bytes`.
pub(crate) const HELLO_FLAG_POOL: u32 = 2;

/// Hello flag: a subscriber taking over a network connection presents the token that
/// connection was offered (`token`; see `crate::handover`).
pub(crate) const HELLO_FLAG_TOKEN: u32 = 4;

/// The fixed-size hello: magic, version, kind, pid, refuse reason, ring capacity, role,
/// flags, loan pool shape, handover token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u32,
    pub(crate) kind: u32,
    pub(crate) pid: u32,
    pub(crate) ring_capacity: u64,
    pub(crate) reason: u32,
    pub(crate) role: Role,
    pub(crate) flags: u32,
    pub(crate) pool_slots: u32,
    pub(crate) pool_slot_bytes: u64,
    /// With [`HELLO_FLAG_TOKEN`]: the token presented (else 0).
    pub(crate) token: u64,
}

impl Hello {
    pub(crate) fn greeting(ring_capacity: u64, role: Role) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            kind: KIND_HELLO,
            pid: std::process::id(),
            ring_capacity,
            reason: 0,
            role,
            flags: 0,
            pool_slots: 0,
            pool_slot_bytes: 0,
            token: 0,
        }
    }

    /// A refusal by a side playing `role` (which the connector checks first: a peer of
    /// the wrong kind hears that, whatever else is wrong).
    pub(crate) fn refuse(reason: RefuseReason, role: Role) -> Self {
        Hello {
            kind: KIND_REFUSE,
            reason: reason as u32,
            ..Hello::greeting(0, role)
        }
    }

    pub(crate) fn is_refuse(&self) -> bool {
        self.kind == KIND_REFUSE
    }

    pub(crate) fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut b = [0u8; HELLO_BYTES];
        b[0..8].copy_from_slice(&HELLO_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.kind.to_le_bytes());
        b[16..20].copy_from_slice(&self.pid.to_le_bytes());
        b[20..24].copy_from_slice(&self.reason.to_le_bytes());
        b[24..32].copy_from_slice(&self.ring_capacity.to_le_bytes());
        b[32..36].copy_from_slice(&(self.role as u32).to_le_bytes());
        b[36..40].copy_from_slice(&self.flags.to_le_bytes());
        b[40..44].copy_from_slice(&self.pool_slots.to_le_bytes());
        b[48..56].copy_from_slice(&self.pool_slot_bytes.to_le_bytes());
        b[56..64].copy_from_slice(&self.token.to_le_bytes());
        b
    }

    /// Decodes a hello. A version mismatch is reported separately (the caller names both
    /// versions); anything else malformed is a string for `Error::Handshake`.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != HELLO_BYTES {
            return Err(format!(
                "hello of {} bytes, expected {HELLO_BYTES}",
                b.len()
            ));
        }
        if b[0..8] != HELLO_MAGIC {
            return Err("hello has a bad magic (not a shmsock peer?)".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let hello = Hello {
            version: u32_at(8),
            kind: u32_at(12),
            pid: u32_at(16),
            reason: u32_at(20),
            ring_capacity: u64::from_le_bytes(b[24..32].try_into().expect("8 bytes")),
            role: Role::from_u32(u32_at(32))
                .ok_or_else(|| format!("hello has unknown role {}", u32_at(32)))?,
            flags: u32_at(36),
            pool_slots: u32_at(40),
            pool_slot_bytes: u64::from_le_bytes(b[48..56].try_into().expect("8 bytes")),
            token: u64::from_le_bytes(b[56..64].try_into().expect("8 bytes")),
        };
        if hello.flags & !(HELLO_FLAG_DOORBELL | HELLO_FLAG_POOL | HELLO_FLAG_TOKEN) != 0 {
            return Err(format!("hello has unknown flags {:#x}", hello.flags));
        }
        if hello.kind != KIND_HELLO && hello.kind != KIND_REFUSE {
            return Err(format!("hello has unknown kind {}", hello.kind));
        }
        Ok(hello)
    }
}

/// Sends a hello with at most three fds (segment, doorbell, pool), followed in the same
/// message by `tail` (the listener's acknowledgement; empty for a connector's hello and
/// for a refusal).
pub(crate) fn send_hello(
    sock: &UnixStream,
    hello: &Hello,
    fds: &[BorrowedFd<'_>],
    tail: &[u8],
) -> io::Result<()> {
    let bytes = hello.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control buffer too small for the fds"));
    }
    let sent = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&bytes), IoSlice::new(tail)],
        &mut control,
        // Never blocks: a hello is the first thing either side sends, into an empty buffer.
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )?;
    if sent != bytes.len() + tail.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short hello write",
        ));
    }
    Ok(())
}

/// A received hello and the fds that came with it.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    /// Control data was truncated: the kernel closed fds it could not give us (out of
    /// descriptors), or the peer sent more fds than a hello carries (the rest were closed).
    pub(crate) truncated: bool,
}

/// How long a connector that does not wait `Blocking` reads the socket without sleeping
/// while it waits for the listener's answer ([`recv_hello`]). The answer takes a wake-up of
/// the listener and its segment's system calls (about 50 µs on our 2-vCPU VM); sleeping
/// for it in `poll` adds a wake-up of ours (about 25 µs there): the lab's setup cycle went
/// from 180-193 to 118-134 µs p50 with it.
pub(crate) const ANSWER_SPIN: Duration = Duration::from_micros(200);

/// How long after accepting a connection a listener looks for its hello without sleeping
/// (a `poll` with no timeout, yielding the CPU between looks). An honest connector's hello
/// follows its `connect` by the time it takes to make its segment (about 20 µs on our
/// 2-vCPU VM), and the listener, just woken by that `connect`, often looks first: sleeping
/// in `poll` then adds a second wake-up (about 25 µs there). A connector that never sends
/// costs the listener at most this much CPU.
pub(crate) const HELLO_SPIN: Duration = Duration::from_micros(50);

/// Most fds a hello carries: the segment, a doorbell and a pool.
pub(crate) const HELLO_FDS_MAX: usize = 3;

/// A hello arriving in pieces, read without blocking.
///
/// A peer may split its hello into any number of writes, slowly: each read takes what is
/// there and returns, so one handshake never holds a thread (the caller waits with `poll`
/// and owns the deadline for the whole exchange). Memory is bounded: at most
/// [`HELLO_BYTES`]` + 1` bytes (one more, to see an oversized hello) and
/// [`HELLO_FDS_MAX`]` + 1` fds are ever held; every received fd is owned, so none leaks.
#[derive(Debug)]
pub(crate) struct HelloRx {
    buf: [u8; HELLO_BYTES + 1],
    /// How many bytes to take: one more than a hello on the listening side (to see an
    /// oversized one), exactly a hello on the connecting side (the acknowledgement that
    /// follows it is read on its own).
    limit: usize,
    got: usize,
    fds: Vec<OwnedFd>,
    truncated: bool,
    hung_up: bool,
}

impl Default for HelloRx {
    fn default() -> Self {
        HelloRx {
            buf: [0; HELLO_BYTES + 1],
            limit: HELLO_BYTES + 1,
            got: 0,
            fds: Vec::new(),
            truncated: false,
            hung_up: false,
        }
    }
}

impl HelloRx {
    /// Takes exactly one hello's bytes and leaves what follows it in the socket.
    pub(crate) fn exact() -> Self {
        HelloRx {
            limit: HELLO_BYTES,
            ..HelloRx::default()
        }
    }

    /// Reads what `sock` holds of the hello, without waiting. True once there is nothing
    /// more to wait for: the whole hello is in, the peer sent too much, or it hung up (the
    /// hello is then judged, and refused, by its length).
    pub(crate) fn read_ready(&mut self, sock: &UnixStream) -> io::Result<bool> {
        while !self.is_complete() {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let msg = match rustix::net::recvmsg(
                sock,
                &mut [IoSliceMut::new(&mut self.buf[self.got..self.limit])],
                &mut control,
                RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
            ) {
                Ok(msg) => msg,
                Err(rustix::io::Errno::AGAIN) => return Ok(false),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            self.truncated |= msg.flags.contains(ReturnFlags::CTRUNC);
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(rights) = m {
                    self.fds.extend(rights);
                }
            }
            if msg.bytes == 0 {
                self.hung_up = true;
            }
            self.got += msg.bytes;
        }
        Ok(true)
    }

    /// Whether there is nothing more to read (see [`HelloRx::read_ready`]).
    fn is_complete(&self) -> bool {
        self.got >= HELLO_BYTES || self.hung_up || self.fds.len() > HELLO_FDS_MAX
    }

    /// What arrived. More than [`HELLO_FDS_MAX`] fds count as truncated control data.
    pub(crate) fn into_received(self) -> Received {
        let truncated = self.truncated || self.fds.len() > HELLO_FDS_MAX;
        Received {
            bytes: self.buf[..self.got].to_vec(),
            fds: self.fds,
            truncated,
        }
    }
}

/// Receives the listener's hello on a non-blocking `sock` (exactly its bytes: its
/// acknowledgement follows), waiting until `deadline` for the whole of it (not for each
/// piece: a peer that drip-feeds its hello gets no more time than one that sends nothing).
///
/// For its first `spin` it keeps reading without sleeping (yielding its CPU between reads):
/// an answer that comes within it costs no wake-up of this thread.
pub(crate) fn recv_hello(
    sock: &UnixStream,
    deadline: Instant,
    spin: Duration,
) -> io::Result<Received> {
    let mut rx = HelloRx::exact();
    let spin_until = Instant::now() + spin;
    while !rx.read_ready(sock)? {
        if Instant::now() < spin_until {
            std::thread::yield_now();
        } else {
            wait_until(sock, deadline, "no complete hello")?;
        }
    }
    Ok(rx.into_received())
}

/// Waits for `sock` to be readable, until `deadline`; `what` names what did not come in
/// time, for the error.
pub(crate) fn wait_until(sock: &UnixStream, deadline: Instant, what: &str) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() || !wait_readable(sock, left)? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} from the peer before the handshake deadline"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_rejects_garbage() {
        let h = Hello::greeting(1 << 20, Role::Publisher);
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        let r = Hello::refuse(RefuseReason::Uid, Role::Inbox);
        assert!(Hello::decode(&r.encode()).unwrap().is_refuse());
        assert!(Hello::decode(&h.encode()[..63])
            .unwrap_err()
            .contains("63 bytes"));
        let mut bad = h.encode();
        bad[0] = b'X';
        assert!(Hello::decode(&bad).unwrap_err().contains("magic"));
        let mut bad = h.encode();
        bad[12] = 9;
        assert!(Hello::decode(&bad).unwrap_err().contains("kind"));
    }
}
