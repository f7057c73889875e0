//! The hand-made lender of `forged_loans`: a peer whose segment and loan pool are built by
//! hand and whose handshake is spoken by hand, lending to a real `Conn` (it connects to our
//! `Listener`) or to a real `Subscriber` (it poses as the publisher), and the receiving side
//! it talks to.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use shmsock::{Conn, Error, Listener, Sample, Subscriber};

use crate::rawloan::{
    self, PeerWords, PoolSpec, RawRing, HELLO_FLAG_POOL, ROLE_CONN, ROLE_PUBLISHER,
};
use crate::rawpeer::WritableSegment;
use shmsock_testkit::harness::{self, STEP_TIMEOUT};

/// The ring capacity and the loan pool (slots of `SLOT_BYTES`) of the hand-made peers.
pub const CAP: u64 = 4096;
pub const SLOTS: u64 = 4;
pub const SLOT_BYTES: u64 = 256;

/// Our receiving side.
pub enum Receiver {
    Conn(Conn),
    Sub(Subscriber),
}

/// How a frame is received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `recv_sample_timeout`: a view of the slot, released when dropped.
    Sample,
    /// `recv_timeout` into a buffer: copied, released at once.
    Plain,
}

/// A received message: a sample (still held) or a copy.
pub enum Got {
    Sample(Sample),
    Copy(Vec<u8>),
}

impl Got {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Got::Sample(s) => s.to_vec(),
            Got::Copy(v) => v.clone(),
        }
    }
}

impl Receiver {
    pub fn recv(&mut self, api: Api) -> shmsock::Result<Got> {
        let mut buf = vec![0u8; SLOT_BYTES as usize];
        let n = match (self, api) {
            (Receiver::Conn(c), Api::Sample) => {
                return c.recv_sample_timeout(STEP_TIMEOUT).map(Got::Sample)
            }
            (Receiver::Sub(s), Api::Sample) => {
                return s.recv_sample_timeout(STEP_TIMEOUT).map(Got::Sample)
            }
            (Receiver::Conn(c), Api::Plain) => c.recv_timeout(&mut buf, STEP_TIMEOUT)?,
            (Receiver::Sub(s), Api::Plain) => s.recv_timeout(&mut buf, STEP_TIMEOUT)?,
        };
        buf.truncate(n);
        Ok(Got::Copy(buf))
    }

    pub fn try_recv(&mut self) -> shmsock::Result<usize> {
        let mut buf = [0u8; 8];
        match self {
            Receiver::Conn(c) => c.try_recv(&mut buf),
            Receiver::Sub(s) => s.try_recv(&mut buf),
        }
    }
}

/// A hand-made lender and the receiver it talks to.
pub struct Lender {
    pub ring: RawRing,
    /// The receiver's segment, read-only: its release (and, for a subscriber, taken) words.
    pub theirs: PeerWords,
    pub rx: Receiver,
    /// The lender's end of the control socket (dropping it is its death).
    _sock: UnixStream,
}

pub fn pool_fds(seg: WritableSegment, with_pool: bool) -> (WritableSegment, Vec<OwnedFd>) {
    let mut fds = vec![seg.fd.try_clone().expect("dup of our segment")];
    if with_pool {
        fds.push(PoolSpec::good(SLOTS, SLOT_BYTES).build());
    }
    (seg, fds)
}

pub fn shape(with_pool: bool) -> (u32, u32, u64) {
    if with_pool {
        (HELLO_FLAG_POOL, SLOTS as u32, SLOT_BYTES)
    } else {
        (0, 0, 0)
    }
}

/// A hand-made connector lending to a `Conn` that `listener` accepts.
pub fn conn_lender(listener: &Listener, with_pool: bool) -> Lender {
    let (seg, fds) = pool_fds(WritableSegment::create(CAP), with_pool);
    let (flags, slots, bytes) = shape(with_pool);
    let hello = rawloan::hello(CAP, ROLE_CONN, flags, slots, bytes);
    let peer = rawloan::connect_by_hand(listener.socket_path(), hello, fds);
    let conn = harness::accept(listener).expect("accepting the hand-made lender");
    let peer = peer.join().expect("the hand-made lender");
    assert!(peer.accepted, "the hand-made lender's handshake is correct");
    Lender {
        ring: RawRing::new(seg),
        theirs: PeerWords::new(peer.fds.into_iter().next().expect("the listener's segment")),
        rx: Receiver::Conn(conn),
        _sock: peer.sock,
    }
}

/// A hand-made publisher at `ep` lending to a `Subscriber`.
pub fn publisher_lender(ep: &str, with_pool: bool) -> Lender {
    let (seg, fds) = pool_fds(WritableSegment::create(CAP), with_pool);
    let (flags, slots, bytes) = shape(with_pool);
    let hello = rawloan::hello(CAP, ROLE_PUBLISHER, flags, slots, bytes);
    let (sub, peer) = rawloan::against_by_hand(ep, hello, fds, "publisher", || {
        Subscriber::connect(ep).expect("subscribing to the hand-made publisher")
    });
    assert!(peer.accepted, "the subscriber answered the hand-made hello");
    Lender {
        ring: RawRing::broadcast(seg),
        theirs: PeerWords::new(
            peer.fds
                .into_iter()
                .next()
                .expect("the subscriber's segment"),
        ),
        rx: Receiver::Sub(sub),
        _sock: peer.sock,
    }
}

/// The first `len` bytes of slot `slot` of every fake pool.
pub fn slot_bytes(slot: u64, len: u64) -> Vec<u8> {
    (0..len).map(|i| rawloan::pool_byte(slot, i)).collect()
}

pub fn assert_corrupt(r: shmsock::Result<Got>, words: &[&str], what: &str) {
    match r {
        Err(Error::Corrupt { what: reason, .. }) => {
            for w in words {
                assert!(reason.contains(w), "{what}: {reason:?} lacks {w:?}");
            }
        }
        Err(e) => panic!("{what}: {e:?}, expected Corrupt"),
        Ok(g) => panic!(
            "{what}: accepted {} bytes, expected Corrupt",
            g.bytes().len()
        ),
    }
}
