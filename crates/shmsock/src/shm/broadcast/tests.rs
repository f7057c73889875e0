//! Broadcast ring on heap memory: policies, lag accounting, torn reads.

use std::cell::RefCell;

use proptest::prelude::*;

use super::*;
use crate::shm::ring::heap::HeapRing;
use crate::shm::ring::max_payload;
use crate::sync::AtomicU64;

/// A frame-aligned position `frames` frame headers below 2^64.
fn below_top(frames: u64) -> u64 {
    0u64.wrapping_sub(frames * FRAME_HEADER_BYTES)
}

struct Words([AtomicU64; 5]);

impl Words {
    fn new() -> Self {
        Words(std::array::from_fn(|_| AtomicU64::new(0)))
    }
    fn cursor(&self) -> Cursor<'_> {
        Cursor::from_words(&self.0)
    }

    /// Stores a whole cursor under a consistent (even) version, as a hostile publisher may.
    fn forge(&self, s: Snapshot) {
        let version = self.0[0].load(Ordering::Relaxed);
        self.0[0].store(version.wrapping_add(2) & !1, Ordering::Relaxed);
        self.0[1].store(s.oldest_pos, Ordering::Relaxed);
        self.0[2].store(s.oldest_seq, Ordering::Relaxed);
        self.0[3].store(s.write_pos, Ordering::Relaxed);
        self.0[4].store(s.write_seq, Ordering::Relaxed);
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

/// One `Block` push of message `seq` (100 bytes) against reader `r`, counting the reads of
/// its position in `reads`.
fn push_counting(
    w: &mut Writer,
    ring: &HeapRing,
    words: &Words,
    r: &Reader,
    seq: u64,
    reads: &mut u32,
) -> Push {
    w.try_push(
        ring,
        &words.cursor(),
        Overflow::Block,
        || {
            *reads += 1;
            Some(r.position())
        },
        &message(seq, 100),
    )
}

#[test]
fn block_reads_consumed_positions_only_when_its_bound_does_not_free_the_bytes() {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut w = Writer::new(CAP);
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    let (mut reads, mut seq) = (0, 0);
    // Filling the ring reuses nothing; the push that would reuse unread bytes reads once.
    while push_counting(&mut w, &ring, &words, &r, seq, &mut reads) == Push::Done {
        seq += 1;
    }
    assert_eq!(reads, 1, "{seq} frames filled the ring");
    // The reader catches up: the stale bound does not free the bytes, so the writer reads
    // the position again, once, and that bound then covers most of a ring of frames.
    let mut buf = [0u8; 256];
    while let Read::Message(_) = r.read(&ring, &words.cursor(), &mut buf, true).unwrap() {}
    for _ in 0..20 {
        assert_eq!(
            push_counting(&mut w, &ring, &words, &r, seq, &mut reads),
            Push::Done
        );
        seq += 1;
    }
    assert_eq!(reads, 2);
    // Forgotten (a subscriber joined): the next push that reuses bytes reads again.
    w.forget_min_consumed();
    assert_eq!(
        push_counting(&mut w, &ring, &words, &r, seq, &mut reads),
        Push::Done
    );
    assert_eq!(reads, 3);
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

/// Three readers of speeds `speeds` under DropOldest, with the writer's first frame at
/// `pos` and sequence `seq`: each sees an in-order, intact subsequence, and delivered +
/// lost = sent.
fn readers_account_for_every_message(
    pos: u64,
    seq: u64,
    sizes: &[usize],
    speeds: &[u8],
) -> Result<(), TestCaseError> {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut w = Writer::starting_at(CAP, &words.cursor(), pos, seq);
    let start = words.cursor().snapshot(CAP).unwrap();
    prop_assert_eq!((start.write_pos, start.write_seq), (pos, seq));
    let mut readers: Vec<(Reader, u64, u64)> =
        (0..3).map(|_| (Reader::new(CAP, start), 0, 0)).collect();
    let mut buf = vec![0u8; 1024];
    for (k, len) in sizes.iter().enumerate() {
        w.try_push(
            &ring,
            &words.cursor(),
            Overflow::DropOldest,
            || None,
            &message(k as u64, *len),
        );
        for (r, (reader, delivered, lost)) in readers.iter_mut().enumerate() {
            for _ in 0..speeds[r] {
                match reader.read(&ring, &words.cursor(), &mut buf, true).unwrap() {
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
    for (reader, delivered, lost) in readers.iter_mut() {
        loop {
            match reader.read(&ring, &words.cursor(), &mut buf, true).unwrap() {
                Read::Message(_) => *delivered += 1,
                Read::Lagged(n) => *lost += n,
                Read::Empty => break,
                Read::TooSmall(_) => unreachable!(),
            }
        }
        prop_assert_eq!(*delivered + *lost, sizes.len() as u64);
        prop_assert_eq!(reader.position(), w.at.write_pos);
    }
    prop_assert_eq!(w.at.write_seq, seq.wrapping_add(sizes.len() as u64));
    Ok(())
}

proptest! {
    /// Three readers of random speeds under DropOldest: each sees an in-order, intact
    /// subsequence, and delivered + lost = sent.
    #[test]
    fn every_reader_accounts_for_every_message(
        sizes in prop::collection::vec(0usize..600, 1..400),
        speeds in prop::collection::vec(0u8..6, 3),
    ) {
        readers_account_for_every_message(0, 0, &sizes, &speeds)?;
    }

    /// The same with the cursor's positions and sequences starting just below 2^64: both
    /// wrap within the first laps; lag accounting and delivery stay exact.
    #[test]
    fn every_reader_accounts_for_every_message_across_the_top_of_u64(
        frames_below in 1u64..768,
        seqs_below in 1u64..64,
        sizes in prop::collection::vec(0usize..600, 1..400),
        speeds in prop::collection::vec(0u8..6, 3),
    ) {
        readers_account_for_every_message(below_top(frames_below), 0u64.wrapping_sub(seqs_below), &sizes, &speeds)?;
    }

    /// `Block` with positions starting just below 2^64: the writer waits for a reader of
    /// random speed across the wrap, and the reader gets every message, in order.
    #[test]
    fn block_loses_nothing_across_the_top_of_u64(
        frames_below in 1u64..768,
        sizes in prop::collection::vec(0usize..600, 1..300),
        reads in prop::collection::vec(0u8..4, 1..50),
    ) {
        let (ring, words) = (HeapRing::new(CAP), Words::new());
        let mut w = Writer::starting_at(CAP, &words.cursor(), below_top(frames_below), 7);
        let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
        let mut buf = vec![0u8; 1024];
        let (mut sent, mut got, mut step) = (0usize, 0usize, 0usize);
        while got < sizes.len() {
            let blocked = sent == sizes.len()
                || w.try_push(&ring, &words.cursor(), Overflow::Block, || Some(r.position()), &message(sent as u64, sizes[sent])) == Push::Blocked;
            if !blocked {
                sent += 1;
            }
            for _ in 0..reads[step % reads.len()].max(u8::from(blocked)) {
                match r.read(&ring, &words.cursor(), &mut buf, true).unwrap() {
                    Read::Message(n) => {
                        prop_assert_eq!(&buf[..n], &message(got as u64, sizes[got])[..]);
                        got += 1;
                    }
                    Read::Empty => break,
                    other => prop_assert!(false, "{:?} under Block", other),
                }
            }
            step += 1;
            prop_assert!(step < 100_000, "no progress");
        }
    }

    /// A reader near 2^64 against a publisher that forges its cursor (consistent version,
    /// any words, mostly near the reader's position): every read ends with a message,
    /// `Empty`, `Lagged` or a `Corruption`; never a panic or a hang.
    #[test]
    fn a_forged_cursor_near_the_top_never_panics(
        frames_below in 1u64..768,
        pushed in 0usize..80,
        forged in prop::collection::vec(
            prop_oneof![
                any::<u64>(),
                (-9000i64..9000).prop_map(|d| d as u64),
                Just(u64::MAX),
                Just(0u64),
            ],
            4,
        ),
        relative in any::<bool>(),
    ) {
        let (ring, words) = (HeapRing::new(CAP), Words::new());
        let start = below_top(frames_below);
        let mut w = Writer::starting_at(CAP, &words.cursor(), start, start / 3);
        let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
        for k in 0..pushed {
            w.try_push(&ring, &words.cursor(), Overflow::DropOldest, || None, &message(k as u64, 100));
        }
        // Offsets from the honest cursor, or raw values.
        let base = if relative { [w.at.oldest_pos, w.at.oldest_seq, w.at.write_pos, w.at.write_seq] } else { [0; 4] };
        words.forge(Snapshot {
            oldest_pos: base[0].wrapping_add(forged[0]),
            oldest_seq: base[1].wrapping_add(forged[1]),
            write_pos: base[2].wrapping_add(forged[2]),
            write_seq: base[3].wrapping_add(forged[3]),
        });
        let mut buf = [0u8; 128];
        for _ in 0..(pushed + 4) {
            match r.read(&ring, &words.cursor(), &mut buf, true) {
                Ok(Read::Empty) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// A reader at position `pos`, sequence `seq`, and a cursor that says the frames from
/// `pos` on were evicted.
fn reader_at(pos: u64, seq: u64) -> (HeapRing, Words, Reader) {
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let start = Snapshot {
        oldest_pos: pos,
        oldest_seq: seq,
        write_pos: pos,
        write_seq: seq,
    };
    words.forge(start);
    let r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    (ring, words, r)
}

#[test]
fn a_lag_across_the_top_of_u64_counts_exactly() {
    let (pos, seq) = (below_top(4), u64::MAX - 1);
    let (ring, words) = (HeapRing::new(CAP), Words::new());
    let mut w = Writer::starting_at(CAP, &words.cursor(), pos, seq);
    let mut r = Reader::new(CAP, words.cursor().snapshot(CAP).unwrap());
    push_dropping(&mut w, &ring, &words, 0..100);
    let mut buf = [0u8; 128];
    let Read::Lagged(lost) = r.read(&ring, &words.cursor(), &mut buf, true).unwrap() else {
        panic!("expected Lagged")
    };
    assert_eq!(lost, w.at.oldest_seq.wrapping_sub(seq));
    assert!(w.at.oldest_seq < seq, "the sequences wrapped");
    assert!(w.at.oldest_pos < pos, "the positions wrapped");
    let mut n = 0;
    while let Read::Message(len) = r.read(&ring, &words.cursor(), &mut buf, true).unwrap() {
        assert_eq!(&buf[..len], &message(lost + n, 100)[..]);
        n += 1;
    }
    assert_eq!(lost + n, 100);
    // What the reader publishes as consumed crossed the top too.
    assert_eq!(r.publication_due(true), Some(w.at.write_pos));
}

#[test]
fn a_forged_cursor_near_the_top_is_corruption() {
    let (pos, seq) = (below_top(2), u64::MAX);
    let mut buf = [0u8; 8];
    let read = |words: &Words, r: &mut Reader, ring: &HeapRing| {
        r.read(ring, &words.cursor(), &mut [0u8; 8], true)
            .unwrap_err()
            .0
    };
    let cases: [(&str, Snapshot, &str); 6] = [
        (
            "the sequence went back",
            Snapshot {
                oldest_pos: pos.wrapping_add(64),
                oldest_seq: seq - 1,
                write_pos: pos.wrapping_add(64),
                write_seq: seq - 1,
            },
            "went back below ours",
        ),
        (
            "more messages lost than fit the bytes evicted",
            Snapshot {
                oldest_pos: pos.wrapping_add(64),
                oldest_seq: seq.wrapping_add(5),
                write_pos: pos.wrapping_add(64),
                write_seq: seq.wrapping_add(5),
            },
            "more than fit the 64 bytes",
        ),
        (
            "the write position went back below ours",
            Snapshot {
                oldest_pos: pos - 64,
                oldest_seq: seq - 1,
                write_pos: pos - 16,
                write_seq: seq - 1,
            },
            "beyond the publisher's write position",
        ),
        (
            "positions that are not frame aligned",
            Snapshot {
                oldest_pos: pos.wrapping_add(8),
                oldest_seq: seq,
                write_pos: pos.wrapping_add(8),
                write_seq: seq,
            },
            "inconsistent",
        ),
        (
            "more than a ring between oldest and write",
            Snapshot {
                oldest_pos: pos,
                oldest_seq: seq,
                write_pos: pos.wrapping_add(CAP + 16),
                write_seq: seq,
            },
            "inconsistent",
        ),
        (
            "oldest past write (a span of almost 2^64)",
            Snapshot {
                oldest_pos: pos.wrapping_add(32),
                oldest_seq: seq,
                write_pos: pos,
                write_seq: seq,
            },
            "inconsistent",
        ),
    ];
    for (what, forged, expect) in cases {
        let (ring, words, mut r) = reader_at(pos, seq);
        words.forge(forged);
        let err = read(&words, &mut r, &ring);
        assert!(err.contains(expect), "{what}: {err}");
    }
    // The control: an eviction of 64 bytes with up to 4 messages lost is believed.
    let (ring, words, mut r) = reader_at(pos, seq);
    words.forge(Snapshot {
        oldest_pos: pos.wrapping_add(64),
        oldest_seq: seq.wrapping_add(4),
        write_pos: pos.wrapping_add(64),
        write_seq: seq.wrapping_add(4),
    });
    assert_eq!(
        r.read(&ring, &words.cursor(), &mut buf, true).unwrap(),
        Read::Lagged(4)
    );
    assert_eq!(r.position(), pos.wrapping_add(64));
}
