//! A hostile owner of a doorbell: a hand-made peer (an `Inbox`, or a connector or subscriber
//! that asks to be woken through a doorbell, as an async side does) passes the ringing end
//! of a Unix datagram socket pair in blocking mode, fills its queue, never reads it, and
//! announces that it sleeps. A ring that waited for room in that queue would block our
//! `send_timeout` forever (a publisher's, for every subscriber). It must return in time —
//! also while the peer keeps toggling `O_NONBLOCK` on the shared description and emptying
//! and refilling the queue to catch a ring at the wrong moment (the attack that beat the
//! eventfd doorbell of protocol version 1, whose writes had no per-call non-blocking flag).

use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::fs::OFlags;
use rustix::net::{RecvFlags, SendFlags};
use shmsock::{Conn, Options, Publisher};

use crate::rawloan::{self, HELLO_FLAG_DOORBELL, ROLE_CONN, ROLE_INBOX, ROLE_SUBSCRIBER};
use crate::rawpeer::{self, WritableSegment};
use shmsock_testkit::harness;

const CAP: u64 = 4096;
/// How long a send may take here: its timeout plus a loaded machine's slack.
const SEND_BOUND: Duration = Duration::from_secs(2);

/// The hand-made peer's doorbell: the end it would sleep on, and the ringing end it passed.
struct HostileBell {
    rx: OwnedFd,
    tx: OwnedFd,
}

impl HostileBell {
    fn new() -> Self {
        let (rx, tx) = std::os::unix::net::UnixDatagram::pair().expect("socketpair");
        HostileBell {
            rx: rx.into(),
            tx: tx.into(),
        }
    }

    /// Clears `O_NONBLOCK` on the ringing end (shared with the writer) if `blocking`, else
    /// sets it.
    fn set_blocking(&self, blocking: bool) {
        let flags = rustix::fs::fcntl_getfl(&self.tx).expect("F_GETFL");
        let flags = if blocking {
            flags - OFlags::NONBLOCK
        } else {
            flags | OFlags::NONBLOCK
        };
        rustix::fs::fcntl_setfl(&self.tx, flags).expect("F_SETFL");
    }

    /// Fills the queue: a ring that waited for room would wait until we read.
    fn fill(&self) -> usize {
        let mut n = 0;
        while rustix::net::send(&self.tx, &[7], SendFlags::DONTWAIT).is_ok() {
            n += 1;
        }
        n
    }

    /// Empties the queue (unblocks a stuck ring).
    fn empty(&self) {
        let mut b = [0u8; 1];
        while rustix::net::recv(&self.rx, &mut b, RecvFlags::DONTWAIT).is_ok() {}
    }
}

/// The hand-made peer's side of the attack: blocking description, queue full, "I sleep".
fn saturate(bell: &HostileBell, seg: &WritableSegment) {
    bell.set_blocking(true);
    assert!(bell.fill() > 0, "the queue took no ring at all");
    // "I sleep": the writer rings the doorbell after its next frame.
    seg.poke(rawpeer::OFF_RX_SLEEPING, 1);
}

/// Runs `send` three times on another thread (each must succeed within [`SEND_BOUND`]);
/// whatever happens, empties the queue afterwards so that a stuck sender ends.
fn sends_return_in_time<T: Send + 'static>(
    mut sender: T,
    send: fn(&mut T) -> shmsock::Result<()>,
    bell: &HostileBell,
    what: &str,
) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut results = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            results.push((send(&mut sender).map_err(|e| e.to_string()), t.elapsed()));
        }
        let _ = tx.send(results);
        sender
    });
    let results = rx.recv_timeout(SEND_BOUND);
    bell.empty();
    drop(thread.join().expect("the sender"));
    let results = results.unwrap_or_else(|_| {
        panic!("{what}: a send was still blocked after {SEND_BOUND:?} (in the doorbell's ring)")
    });
    for (r, took) in results {
        assert!(r.is_ok(), "{what}: {r:?}");
        assert!(took < SEND_BOUND, "{what}: a send took {took:?}");
    }
}

/// A hand-made peer's segment and doorbell, and the fds its hello passes.
fn hostile_bell() -> (WritableSegment, HostileBell, Vec<OwnedFd>) {
    let seg = WritableSegment::create(CAP);
    let bell = HostileBell::new();
    let fds = vec![
        seg.fd.try_clone().expect("dup"),
        bell.tx.try_clone().expect("dup"),
    ];
    (seg, bell, fds)
}

/// A writer (our `Conn`, rings of `ring_bytes`) connected to a hand-made inbox with a
/// hostile doorbell at a fresh endpoint (`tag`): the inbox's segment, its doorbell and
/// the writer.
fn writer_to_hostile_inbox(tag: &str, ring_bytes: usize) -> (WritableSegment, HostileBell, Conn) {
    let ep = harness::endpoint(tag);
    let (seg, bell, fds) = hostile_bell();
    let hello = rawloan::hello(CAP, ROLE_INBOX, HELLO_FLAG_DOORBELL, 0, 0);
    let (conn, peer) = rawloan::against_by_hand(&ep, hello, fds, "inbox", || {
        Conn::connect_with(&ep, Options::new().ring_capacity(ring_bytes))
            .expect("connecting to the hand-made inbox")
    });
    assert!(peer.accepted, "the writer answered the hand-made hello");
    (seg, bell, conn)
}

fn send_timeout(conn: &mut Conn) -> shmsock::Result<()> {
    conn.send_timeout(b"ring", Duration::from_millis(100))
}

/// A writer (`Conn::connect`) to a hostile `Inbox`.
#[test]
fn a_hostile_inbox_cannot_block_a_writer_in_its_doorbell() {
    let _serial = crate::serial();
    let (seg, bell, conn) = writer_to_hostile_inbox("bell-abuse", 4096);
    saturate(&bell, &seg);
    sends_return_in_time(conn, send_timeout, &bell, "a writer to a hostile inbox");
}

/// A `Conn` accepted by a `Listener` from a hostile connector that asked to be woken
/// through a doorbell (as an async side does).
#[test]
fn a_hostile_connector_cannot_block_our_conn_in_its_doorbell() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("bell-abuse-conn"), Options::new());
    let (seg, bell, fds) = hostile_bell();
    let hello = rawloan::hello(CAP, ROLE_CONN, HELLO_FLAG_DOORBELL, 0, 0);
    let peer = rawloan::connect_by_hand(listener.socket_path(), hello, fds);
    let conn = harness::accept(&listener).expect("accepting the hand-made connector");
    assert!(peer.join().expect("the hand-made connector").accepted);
    saturate(&bell, &seg);
    sends_return_in_time(conn, send_timeout, &bell, "a Conn to a hostile connector");
}

/// A `Publisher` with a hostile subscriber that asked to be woken through a doorbell (as
/// an async subscriber does): it would block the publisher, hence every subscriber.
#[test]
fn a_hostile_subscriber_cannot_block_a_publisher_in_its_doorbell() {
    let _serial = crate::serial();
    let ep = harness::endpoint("bell-abuse-pub");
    harness::setup();
    let mut publisher = Publisher::bind(&ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    let (seg, bell, fds) = hostile_bell();
    let hello = rawloan::hello(CAP, ROLE_SUBSCRIBER, HELLO_FLAG_DOORBELL, 0, 0);
    let peer = rawloan::connect_now(publisher.socket_path(), &hello, fds);
    assert!(peer.accepted);
    shmsock_testkit::pubsub::wait_for_at_least(&mut publisher, 1);
    saturate(&bell, &seg);
    sends_return_in_time(
        publisher,
        |p| p.send_timeout(b"ring", Duration::from_millis(100)),
        &bell,
        "a publisher to a hostile subscriber",
    );
    drop(peer);
}

/// The number of sendto(2) (`send` is `sendto` without an address) in
/// `/proc/PID/task/TID/syscall`.
#[cfg(target_arch = "x86_64")]
const SENDTO_SYSCALL: &str = "44";
#[cfg(not(target_arch = "x86_64"))]
const SENDTO_SYSCALL: &str = "206";

/// The attack raced: the hand-made inbox keeps emptying and refilling the queue while
/// toggling `O_NONBLOCK`, so that a ring may find the queue full on a blocking description;
/// once the writer stops making progress, the inbox stops reading, which would leave the
/// writer blocked for good. (This beat the eventfd doorbell within a few rings.)
#[test]
fn a_hostile_inbox_racing_the_doorbell_cannot_block_a_writer() {
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    let _serial = crate::serial();
    let (seg, bell, mut conn) = writer_to_hostile_inbox("bell-race", 1 << 30);
    seg.poke(rawpeer::OFF_RX_SLEEPING, 1);
    let (stop, progress) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let tid = Arc::new(AtomicI32::new(0));
    let bell = Arc::new(bell);
    let attacker = {
        let (bell, stop, tid) = (bell.clone(), stop.clone(), tid.clone());
        std::thread::spawn(move || {
            let mut cycles = 0u64;
            while !stop.load(Relaxed) {
                bell.set_blocking(false);
                bell.empty();
                bell.fill();
                bell.set_blocking(true);
                cycles += 1;
                // Is the writer blocked in a 1-byte sendto? Then never read again.
                let stuck = std::fs::read_to_string(format!(
                    "/proc/self/task/{}/syscall",
                    tid.load(Relaxed)
                ))
                .is_ok_and(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[0] == SENDTO_SYSCALL && f[3] == "0x1"
                });
                while stuck && !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            cycles
        })
    };
    let (tx, rx) = mpsc::channel();
    let sender = {
        let (progress, tid) = (progress.clone(), tid.clone());
        std::thread::spawn(move || {
            tid.store(rustix::thread::gettid().as_raw_nonzero().get(), Relaxed);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if conn
                    .send_timeout(b"ring", Duration::from_millis(100))
                    .is_err()
                {
                    break;
                }
                progress.fetch_add(1, Relaxed);
            }
            let _ = tx.send(());
            conn
        })
    };
    let outcome = rx.recv_timeout(Duration::from_secs(3) + SEND_BOUND);
    stop.store(true, Relaxed);
    let cycles = attacker.join().expect("the attacker");
    // Unblock a stuck writer so the test ends.
    bell.empty();
    drop(sender.join().expect("the sender"));
    let rings = progress.load(Relaxed);
    assert!(
        outcome.is_ok(),
        "after {rings} rings and {cycles} attack cycles, a send was blocked in the doorbell's ring"
    );
    assert!(
        cycles > 10,
        "the attack barely ran ({cycles} cycles): proved nothing"
    );
    eprintln!("{rings} rings against {cycles} attack cycles, none blocked");
}
