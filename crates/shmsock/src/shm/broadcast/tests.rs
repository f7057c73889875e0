//! Broadcast ring on heap memory: policies, lag accounting, torn reads.

use std::cell::RefCell;

use proptest::prelude::*;

use super::*;
use crate::shm::ring::heap::HeapRing;
use crate::shm::ring::max_payload;
use crate::sync::AtomicU64;

struct Words([AtomicU64; 5]);

impl Words {
    fn new() -> Self {
        Words(std::array::from_fn(|_| AtomicU64::new(0)))
    }
    fn cursor(&self) -> Cursor<'_> {
        Cursor::from_words(&self.0)
    }
}

/// Publishes messages `seqs` (100 bytes each) under `DropOldest`.
fn push_dropping(writer: &mut Writer, ring: &HeapRing, words: &Words, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        writer.try_push(
            ring,
            &words.cursor(),
            Overflow::DropOldest,
            || None,
            &message(seq, 100),
        );
    }
}

/// Message `seq` of length `len`: its bytes are derived from `seq`, so any mix-up shows.
fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 7 + i) as u8).collect()
}

const CAP: u64 = 4096;

#[test]
fn late_reader_starts_at_the_next_message() {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut w = Writer::new(CAP);
    for seq in 0..3 {
        assert_eq!(
            w.try_push(
                &ring,
                &words.cursor(),
                Overflow::Block,
                || None,
                &message(seq, 10)
            ),
            Push::Done
        );
    }
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    let mut buf = [0u8; 64];
    assert_eq!(
        r.read(&ring, &words.cursor(), &mut buf, true).unwrap(),
        Read::Empty
    );
    w.try_push(
        &ring,
        &words.cursor(),
        Overflow::Block,
        || None,
        &message(3, 10),
    );
    assert_eq!(
        r.read(&ring, &words.cursor(), &mut buf, false).unwrap(),
        Read::Message(10)
    );
    assert_eq!(&buf[..10], &message(3, 10)[..]);
}

#[test]
fn drop_oldest_reports_the_exact_number_lost() {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut w = Writer::new(CAP);
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    // 100-byte messages take 128 bytes: far more than a lap.
    for seq in 0..100 {
        assert_eq!(
            w.try_push(
                &ring,
                &words.cursor(),
                Overflow::DropOldest,
                || Some(0),
                &message(seq, 100)
            ),
            Push::Done
        );
    }
    let mut buf = [0u8; 256];
    let first = r.read(&ring, &words.cursor(), &mut buf, false).unwrap();
    let Read::Lagged(lost) = first else {
        panic!("expected Lagged, got {first:?}")
    };
    let mut delivered = Vec::new();
    while let Read::Message(n) = r.read(&ring, &words.cursor(), &mut buf, true).unwrap() {
        delivered.push(buf[..n].to_vec());
    }
    assert_eq!(
        lost + delivered.len() as u64,
        100,
        "delivered + lost = sent"
    );
    for (k, m) in delivered.iter().enumerate() {
        assert_eq!(m, &message(lost + k as u64, 100));
    }
}

#[test]
fn block_waits_for_the_slowest_reader() {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut w = Writer::new(CAP);
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    let mut pushed = 0;
    while w.try_push(
        &ring,
        &words.cursor(),
        Overflow::Block,
        || Some(r.position()),
        &message(pushed, 100),
    ) == Push::Done
    {
        pushed += 1;
    }
    assert!(
        (25..=32).contains(&pushed),
        "{pushed} frames of 128 bytes in 4096"
    );
    let mut buf = [0u8; 256];
    assert_eq!(
        r.read(&ring, &words.cursor(), &mut buf, false).unwrap(),
        Read::Message(100)
    );
    assert_eq!(
        w.try_push(
            &ring,
            &words.cursor(),
            Overflow::Block,
            || Some(r.position()),
            &message(pushed, 100)
        ),
        Push::Done
    );
    // Nothing was lost.
    for seq in 1..=pushed {
        assert_eq!(
            r.read(&ring, &words.cursor(), &mut buf, true).unwrap(),
            Read::Message(100)
        );
        assert_eq!(&buf[..100], &message(seq, 100)[..]);
    }
}

#[test]
fn max_payload_messages_pad_and_evict() {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut w = Writer::new(CAP);
    let max = max_payload(CAP) as usize;
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    let mut buf = vec![0u8; max];
    for seq in 0..10 {
        w.try_push(
            &ring,
            &words.cursor(),
            Overflow::Block,
            || Some(r.position()),
            &message(seq, 40 + seq as usize),
        );
        assert_eq!(
            r.read(&ring, &words.cursor(), &mut buf, false).unwrap(),
            Read::Message(40 + seq as usize)
        );
        assert_eq!(
            w.try_push(
                &ring,
                &words.cursor(),
                Overflow::Block,
                || Some(r.position()),
                &message(seq, max)
            ),
            Push::Done
        );
        assert_eq!(
            r.read(&ring, &words.cursor(), &mut buf, false).unwrap(),
            Read::Message(max)
        );
        assert_eq!(buf, message(seq, max));
    }
}

/// Ring memory that lets the writer run in the middle of a payload copy.
struct Interleave<'a> {
    ring: &'a HeapRing,
    during_copy: RefCell<Option<Box<dyn FnMut() + 'a>>>,
}

impl RingRead for Interleave<'_> {
    fn load_tag(&self, index: u64) -> Result<u64, Corruption> {
        self.ring.load_tag(index)
    }
    fn load_meta(&self, index: u64) -> Result<u64, Corruption> {
        self.ring.load_meta(index)
    }
    fn read_payload(&self, at: u64, out: &mut [u8]) -> Result<(), Corruption> {
        if let Some(mut f) = self.during_copy.borrow_mut().take() {
            f();
        }
        self.ring.read_payload(at, out)
    }
}

#[test]
fn a_frame_overwritten_during_the_copy_is_discarded_and_counted() {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let writer = RefCell::new(Writer::new(CAP));
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    push_dropping(&mut writer.borrow_mut(), &ring, &words, 0..20);
    // While we copy message 0, the publisher laps us.
    let mem = Interleave {
        ring: &ring,
        during_copy: RefCell::new(Some(Box::new(|| {
            push_dropping(&mut writer.borrow_mut(), &ring, &words, 20..60);
        }))),
    };
    let mut buf = [0u8; 128];
    let got = r.read(&mem, &words.cursor(), &mut buf, false).unwrap();
    let Read::Lagged(lost) = got else {
        panic!("expected Lagged, got {got:?}")
    };
    let mut n = 0;
    while let Read::Message(len) = r.read(&mem, &words.cursor(), &mut buf, true).unwrap() {
        assert_eq!(
            &buf[..len],
            &message(lost + n, 100)[..],
            "no torn message is delivered"
        );
        n += 1;
    }
    assert_eq!(lost + n, 60);
}

#[test]
fn inconsistent_cursor_is_corruption() {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    words.0[1].store(1 << 40, Ordering::Relaxed); // oldest beyond write
    let mut buf = [0u8; 8];
    assert!(r.read(&ring, &words.cursor(), &mut buf, true).is_err());
    words.0[0].store(1, Ordering::Relaxed); // odd version forever
    assert!(words
        .cursor()
        .snapshot(CAP)
        .unwrap_err()
        .0
        .contains("never became consistent"));
}

proptest! {
    /// Three readers of random speeds under DropOldest: each sees an in-order, intact
    /// subsequence, and delivered + lost = sent.
    #[test]
    fn every_reader_accounts_for_every_message(
        sizes in prop::collection::vec(0usize..600, 1..400),
        speeds in prop::collection::vec(0u8..6, 3),
    ) {
        let (ring, words) = (HeapRing::new(CAP), Words::new());
        let mut w = Writer::new(CAP);
        let start = words.cursor().snapshot(CAP).unwrap();
        let mut readers: Vec<(Reader, u64, u64)> = (0..3).map(|_| (Reader::new(CAP, start), 0, 0)).collect();
        let mut buf = vec![0u8; 1024];
        for (seq, len) in sizes.iter().enumerate() {
            w.try_push(&ring, &words.cursor(), Overflow::DropOldest, || None, &message(seq as u64, *len));
            for (k, (r, delivered, lost)) in readers.iter_mut().enumerate() {
                for _ in 0..speeds[k] {
                    match r.read(&ring, &words.cursor(), &mut buf, true).unwrap() {
                        Read::Message(n) => {
                            let expect = *delivered + *lost;
                            prop_assert_eq!(&buf[..n], &message(expect, sizes[expect as usize])[..]);
                            *delivered += 1;
                        }
                        Read::Lagged(n) => *lost += n,
                        Read::Empty => break,
                        Read::TooSmall(_) => prop_assert!(false, "buffer is large enough"),
                    }
                }
            }
        }
        for (r, delivered, lost) in readers.iter_mut() {
            loop {
                match r.read(&ring, &words.cursor(), &mut buf, true).unwrap() {
                    Read::Message(_) => *delivered += 1,
                    Read::Lagged(n) => *lost += n,
                    Read::Empty => break,
                    Read::TooSmall(_) => unreachable!(),
                }
            }
            prop_assert_eq!(*delivered + *lost, sizes.len() as u64);
        }
    }
}
