//! A hostile borrower: a hand-made peer that borrows from our pool and lies in the words it
//! hands slots back with (its own segment, which it keeps a writable mapping of). A `Conn`
//! lender that reads a release of a generation it never lent reports `Error::Corrupt` from
//! `loans_outstanding` and from `loan` (and stays poisoned); a `Publisher` drops a
//! subscriber whose TAKEN or RELEASED words name a generation never lent, takes its slots
//! back, and goes on serving the other subscribers. The hand-made peer also plays the
//! protocol correctly first (the control experiment): a release it writes by hand gives
//! the slot back, a stale one does not.
//!
//! The peer learns which slot and generation each loan has by reading the loan frames in
//! our ring (our segment is the fd our hello passed it), as a real borrower does.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Listener, Options, Publisher, Subscriber};

use crate::leaks;
use crate::rawloan::{
    self, PeerWords, OFF_CONSUMED, OFF_RELEASED, OFF_TAKEN, ROLE_CONN, ROLE_SUBSCRIBER,
};
use crate::rawpeer::{self, WritableSegment};
use shmsock_testkit::harness::{self, STEP_TIMEOUT};
use shmsock_testkit::pubsub::wait_for_subscriber_count;

const CAP: u64 = 4096;
const SLOTS: usize = 4;
const SLOT_BYTES: usize = 256;
/// A loan frame's size in a ring (16-byte header, 24-byte payload padded to 32).
const LOAN_FRAME_RING_BYTES: u64 = 48;
/// The write position in a publisher's cursor.
const OFF_WRITE_POS: usize = 472;

/// A hand-made borrower: its writable segment and our segment (read-only).
struct Borrower {
    seg: WritableSegment,
    ours: PeerWords,
    sock: std::os::unix::net::UnixStream,
}

impl Borrower {
    /// The (slot, generation, len) of the loan frame at ring position `pos` of our ring.
    fn loan_at(&self, pos: u64) -> (usize, u64, u64) {
        let at = rawpeer::RING_OFFSET + pos as usize;
        let kind = self.ours.word(at + 8) >> 32;
        assert_eq!(kind, u64::from(rawloan::KIND_LOAN), "a loan frame at {pos}");
        let slot = self.ours.word(at + 16) & 0xffff_ffff;
        (
            slot as usize,
            self.ours.word(at + 24),
            self.ours.word(at + 32),
        )
    }

    fn release(&self, slot: usize, generation: u64) {
        self.seg.poke(OFF_RELEASED + 8 * slot, generation);
    }

    /// Whether the other side closed the connection (a goodbye or a bare hang-up).
    fn was_dropped(&self) -> bool {
        self.sock
            .set_read_timeout(Some(STEP_TIMEOUT))
            .expect("timeout");
        let mut rest = Vec::new();
        (&self.sock).read_to_end(&mut rest).is_ok() && rest.iter().all(|&b| b == b'B')
    }
}

fn segment_and_fd() -> (WritableSegment, OwnedFd) {
    let seg = WritableSegment::create(CAP);
    let fd = seg.fd.try_clone().expect("dup of our segment");
    (seg, fd)
}

/// A hand-made connector borrowing from the `Conn` that `listener` (which lends) accepts.
fn conn_borrower(listener: &Listener) -> (Conn, Borrower) {
    let (seg, fd) = segment_and_fd();
    let peer = rawloan::connect_by_hand(
        listener.socket_path(),
        rawloan::hello(CAP, ROLE_CONN, 0, 0, 0),
        vec![fd],
    );
    let conn = harness::accept(listener).expect("accepting the hand-made borrower");
    let peer = peer.join().expect("the hand-made borrower");
    assert!(
        peer.accepted,
        "the hand-made borrower's handshake is correct"
    );
    assert_eq!(
        peer.fds.len(),
        2,
        "our hello passes our segment and our pool"
    );
    let ours = PeerWords::new(peer.fds.into_iter().next().expect("our segment"));
    let b = Borrower {
        seg,
        ours,
        sock: peer.sock,
    };
    (conn, b)
}

/// Lends `n` loans of `len` bytes; returns their (slot, generation) in order.
fn lend(conn: &mut Conn, b: &Borrower, n: usize, next_pos: &mut u64) -> Vec<(usize, u64)> {
    (0..n)
        .map(|_| {
            let mut loan = conn.loan_timeout(100, STEP_TIMEOUT).expect("a free slot");
            loan.fill(0x77);
            loan.send().expect("sending a loan");
            let (slot, generation, len) = b.loan_at(*next_pos);
            assert_eq!(len, 100);
            *next_pos += LOAN_FRAME_RING_BYTES;
            (slot, generation)
        })
        .collect()
}

fn assert_corrupt<T: std::fmt::Debug>(r: shmsock::Result<T>, words: &[&str], what: &str) {
    match r {
        Err(Error::Corrupt { what: reason, .. }) => {
            for w in words {
                assert!(reason.contains(w), "{what}: {reason:?} lacks {w:?}");
            }
            eprintln!("{what}: Corrupt: {reason}");
        }
        other => panic!("{what}: {other:?}, expected Corrupt"),
    }
}

#[test]
fn a_borrower_releasing_a_generation_never_lent_makes_our_lender_corrupt() {
    let _serial = crate::serial();
    let opts = Options::new().loan_pool(SLOTS, SLOT_BYTES);
    let listener = harness::bind(&harness::endpoint("liar-conn"), opts);

    // Through `loans_outstanding`, after the control: a correct release gives the slot back,
    // a stale one (an older generation) does not.
    let (mut conn, b) = conn_borrower(&listener);
    let mut pos = 0;
    let lent = lend(&mut conn, &b, 2, &mut pos);
    assert_eq!(conn.loans_outstanding().expect("outstanding"), 2);
    b.release(lent[0].0, lent[0].1);
    assert_eq!(conn.loans_outstanding().expect("a correct release"), 1);
    b.release(lent[1].0, lent[1].1 - 1);
    assert_eq!(conn.loans_outstanding().expect("a stale release"), 1);
    b.release(lent[1].0, lent[1].1 + 1000);
    let words = [
        format!("released generation {}", lent[1].1 + 1000),
        format!("of slot {}", lent[1].0),
        format!("lent as generation {}", lent[1].1),
    ];
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_corrupt(conn.loans_outstanding(), &words, "loans_outstanding");
    assert_corrupt(conn.try_loan(1).map(drop), &[], "try_loan after Corrupt");
    assert_corrupt(conn.send(b"x"), &[], "send after Corrupt");

    // Through a `loan` waiting for a slot of a dry pool: Corrupt, not a hang.
    let (mut conn, b) = conn_borrower(&listener);
    let mut pos = 0;
    let lent = lend(&mut conn, &b, SLOTS, &mut pos);
    assert!(matches!(conn.try_loan(1), Err(Error::WouldBlock)));
    b.release(lent[2].0, u64::MAX);
    let t = Instant::now();
    assert_corrupt(
        conn.loan_timeout(1, STEP_TIMEOUT).map(drop),
        &["released generation 18446744073709551615"],
        "a waiting loan",
    );
    assert!(
        t.elapsed() < STEP_TIMEOUT / 2,
        "the waiting loan was not told at once"
    );

    // A release planted before the slot was ever lent.
    let (mut conn, b) = conn_borrower(&listener);
    for slot in 0..SLOTS {
        b.release(slot, 500);
    }
    let mut pos = 0;
    lend(&mut conn, &b, SLOTS, &mut pos);
    assert_corrupt(
        conn.loans_outstanding(),
        &["released generation 500"],
        "a planted release",
    );
}

/// Waits until the publisher counts `n` subscribers (they are merged at its next call); a
/// failure names `what`.
fn wait_for_subscribers(publisher: &mut Publisher, n: usize, what: &str) {
    let expected = format!("{n} ({what})");
    wait_for_subscriber_count(publisher, STEP_TIMEOUT, &expected, |c| c == n);
}

/// A loan of `len` bytes filled with `byte`, sent; returns its (slot, generation) as the
/// publisher's ring shows it.
fn publish_loan(publisher: &mut Publisher, pub_seg: &PeerWords, byte: u8) -> (usize, u64) {
    let mut loan = publisher
        .loan_timeout(100, STEP_TIMEOUT)
        .expect("a free slot");
    loan.fill(byte);
    loan.send().expect("sending a loan");
    let end = pub_seg.word(OFF_WRITE_POS);
    let at = rawpeer::RING_OFFSET + (end - LOAN_FRAME_RING_BYTES) as usize;
    (
        (pub_seg.word(at + 16) & 0xffff_ffff) as usize,
        pub_seg.word(at + 24),
    )
}

/// The correct subscriber receives the loan filled with `byte` and drops it.
fn receive(sub: &mut Subscriber, byte: u8, what: &str) {
    let sample = sub
        .recv_sample_timeout(STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: the correct subscriber: {e}"));
    assert!(sample.is_loan());
    assert_eq!(sample.to_vec(), vec![byte; 100], "{what}");
}

#[test]
fn a_subscriber_whose_taken_or_released_words_lie_is_dropped_and_the_others_go_on() {
    let _serial = crate::serial();
    let ep = harness::endpoint("liar-pub");
    harness::setup();
    let opts = Options::new().loan_pool(SLOTS, SLOT_BYTES);
    let mut publisher =
        Publisher::bind_with(&ep, opts).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    let mut sub = Subscriber::connect(&ep).expect("the correct subscriber");
    wait_for_subscribers(&mut publisher, 1, "the correct subscriber");
    let baseline = leaks::open_fds();
    // How the hand-made subscriber plays a loan it saw: (slot, generation, its segment).
    type Play = fn(usize, u64, &WritableSegment);
    let cases: [(&str, bool, Play); 5] = [
        (
            "claims and releases correctly (control)",
            false,
            |s, g, seg| {
                seg.poke(OFF_TAKEN + 8 * s, g);
                seg.poke(OFF_RELEASED + 8 * s, g);
            },
        ),
        ("TAKEN = u64::MAX", true, |s, _, seg| {
            seg.poke(OFF_TAKEN + 8 * s, u64::MAX)
        }),
        ("TAKEN one generation ahead", true, |s, g, seg| {
            seg.poke(OFF_TAKEN + 8 * s, g + 1)
        }),
        ("RELEASED 1000 generations ahead", true, |s, g, seg| {
            seg.poke(OFF_RELEASED + 8 * s, g + 1000)
        }),
        ("RELEASED = u64::MAX in every slot", true, |_, _, seg| {
            for slot in 0..SLOTS {
                seg.poke(OFF_RELEASED + 8 * slot, u64::MAX);
            }
        }),
    ];
    let mut byte = 0u8;
    for (name, lies, play) in cases {
        let (seg, fd) = segment_and_fd();
        let hello = rawloan::hello(CAP, ROLE_SUBSCRIBER, 0, 0, 0);
        let peer = rawloan::connect_now(publisher.socket_path(), &hello, vec![fd]);
        assert!(
            peer.accepted,
            "{name}: the hand-made subscriber's handshake"
        );
        let mut fds = peer.fds.into_iter();
        let pub_seg = PeerWords::new(fds.next().expect("the publisher's segment"));
        // It starts where the publisher is, as a subscriber does.
        seg.poke(OFF_CONSUMED, pub_seg.word(OFF_WRITE_POS));
        let b = Borrower {
            seg,
            ours: pub_seg,
            sock: peer.sock,
        };
        wait_for_subscribers(&mut publisher, 2, name);
        byte = byte.wrapping_add(1);
        let (slot, generation) = publish_loan(&mut publisher, &b.ours, byte);
        receive(&mut sub, byte, name);
        // The correct subscriber released it; the hand-made one has not said anything yet,
        // and could still read the frame: the slot stays lent.
        assert_eq!(publisher.loans_outstanding(), 1, "{name}: before the words");
        play(slot, generation, &b.seg);
        let deadline = Instant::now() + STEP_TIMEOUT;
        while publisher.loans_outstanding() != 0 {
            assert!(
                Instant::now() < deadline,
                "{name}: the slot never came back"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let expected = if lies { 1 } else { 2 };
        assert_eq!(publisher.subscriber_count(), expected, "{name}");
        // The correct subscriber goes on: every slot keeps coming back.
        for _ in 0..2 * SLOTS {
            byte = byte.wrapping_add(1);
            let (s, g) = publish_loan(&mut publisher, &b.ours, byte);
            if !lies {
                play(s, g, &b.seg);
            }
            receive(&mut sub, byte, name);
        }
        if lies {
            assert!(
                b.was_dropped(),
                "{name}: the publisher kept its socket open"
            );
        }
        drop(b);
        wait_for_subscribers(&mut publisher, 1, name);
        drop(fds);
        leaks::assert_fds_return_to(&baseline, name);
        eprintln!("{name}: {}", if lies { "dropped" } else { "kept" });
    }
}
