//! Unit and property tests of the frame ring on heap memory.

use super::heap::HeapRing;
use super::*;
use crate::shm::serial::within;
use proptest::prelude::*;

/// A frame-aligned position `frames` frame headers below 2^64: a ring started there wraps
/// its positions within the first laps.
fn below_top(frames: u64) -> u64 {
    0u64.wrapping_sub(frames * FRAME_HEADER_BYTES)
}

/// Pushes and pops through a ring, with the consumer publishing positions as it would in a
/// connection, and returns the popped messages.
struct Pair {
    mem: HeapRing,
    tx: Producer,
    rx: Consumer,
    consumed: u64,
}

impl Pair {
    fn new(capacity: u64) -> Self {
        Self::starting_at(capacity, 0)
    }

    /// A pair whose first frame is at `pos`.
    fn starting_at(capacity: u64, pos: u64) -> Self {
        Pair {
            mem: HeapRing::new(capacity),
            tx: Producer::starting_at(capacity, pos),
            rx: Consumer::starting_at(capacity, pos),
            consumed: pos,
        }
    }

    fn push(&mut self, msg: &[u8]) -> Push {
        let consumed = self.consumed;
        self.tx.try_push(&self.mem, || consumed, msg).unwrap()
    }

    fn pop(&mut self) -> Option<Vec<u8>> {
        let Some(frame) = self.rx.peek(&self.mem).unwrap() else {
            if let Some(p) = self.rx.unpublished() {
                self.consumed = p;
            }
            return None;
        };
        let mut out = vec![0; frame.len];
        self.rx.read(&self.mem, frame, &mut out).unwrap();
        if let Some(p) = self.rx.advance(frame) {
            self.consumed = p;
        }
        Some(out)
    }
}

#[test]
fn empty_ring_has_no_frame() {
    let mut p = Pair::new(4096);
    assert_eq!(p.pop(), None);
}

#[test]
fn full_ring_refuses_then_accepts_after_a_published_batch() {
    let mut p = Pair::new(4096);
    let msg = [7u8; 240]; // 16 + 240 = 256 bytes a frame
    let mut pushed = 0;
    while p.push(&msg) == Push::Done {
        pushed += 1;
    }
    // 16 frames of 256 bytes would fill 4096, but each frame also needs the next tag word.
    assert_eq!(pushed, 15);
    // Consumption is published a quarter ring (4 frames) at a time.
    for _ in 0..3 {
        assert_eq!(p.pop().unwrap(), msg);
        assert_eq!(p.push(&msg), Push::Full);
    }
    assert_eq!(p.pop().unwrap(), msg);
    assert_eq!(p.push(&msg), Push::Done);
}

#[test]
fn message_of_max_payload_fits_after_padding() {
    let mut p = Pair::new(4096);
    assert_eq!(p.push(&[1; 100]), Push::Done);
    assert_eq!(p.pop().unwrap(), vec![1; 100]);
    let max = p.tx.max_payload() as usize;
    let big = vec![9u8; max];
    // Needs the whole ring: padding goes first, the frame waits for the pad to be consumed.
    assert_eq!(p.push(&big), Push::Full); // the first frame is consumed but not yet published
    assert_eq!(p.pop(), None); // publishes it
                               // Padding written (the consumer must be woken to skip it), the frame waits for that.
    assert_eq!(p.push(&big), Push::Padded);
    assert_eq!(p.pop(), None); // consumes the padding and publishes
    assert_eq!(p.push(&big), Push::Done);
    assert_eq!(p.pop().unwrap(), big);
}

#[test]
fn consumed_position_beyond_written_is_corruption() {
    let mem = HeapRing::new(4096);
    let mut tx = Producer::new(4096);
    while tx.try_push(&mem, || 0, &[0; 500]).unwrap() == Push::Done {}
    let err = tx.try_push(&mem, || 1 << 40, &[0; 500]).unwrap_err();
    assert!(err.0.contains("outside"), "{err}");
}

#[test]
fn hostile_lengths_are_corruption_not_out_of_bounds() {
    let mem = HeapRing::new(4096);
    let mut rx = Consumer::new(4096);
    mem.poke(8, 5000); // data frame longer than the ring
    mem.poke(0, tag_for(0));
    assert!(rx.peek(&mem).unwrap_err().0.contains("remain"));
    mem.poke(8, 12 | (1 << 32)); // padding with a wrong length
    assert!(rx.peek(&mem).unwrap_err().0.contains("padding"));
    mem.poke(8, 12 | (7 << 32));
    assert!(rx.peek(&mem).unwrap_err().0.contains("unknown kind"));
}

proptest! {
    #[test]
    fn frame_bytes_is_aligned_and_covers_payload(len in 0u64..(1 << 31), slot in 0u64..(1 << 20)) {
        let index = slot * FRAME_HEADER_BYTES;
        let f = frame_bytes(index, len);
        let p = payload_offset(index, len);
        prop_assert_eq!(f % FRAME_HEADER_BYTES, 0);
        prop_assert!(p >= FRAME_HEADER_BYTES);
        prop_assert!(f >= len + p);
        prop_assert!(f < len + p + FRAME_HEADER_BYTES);
        if len >= ALIGNED_PAYLOAD_MIN_BYTES {
            prop_assert_eq!((index + p) % 64, 0, "large payloads are line-aligned");
        } else {
            prop_assert_eq!(p, FRAME_HEADER_BYTES);
        }
    }

    /// Random message sizes and random interleavings of push and pop, across many laps
    /// (so every wraparound case is hit): everything arrives once, in order, intact.
    #[test]
    fn messages_arrive_in_order_across_wraparound(
        sizes in prop::collection::vec(0usize..1500, 1..300),
        pops in prop::collection::vec(0u8..4, 1..300),
    ) {
        deliver_in_order(Pair::new(4096), &sizes, &pops)?;
    }

    /// The same with positions starting just below 2^64: they wrap to 0 within the first
    /// laps, and everything still arrives once, in order, intact.
    #[test]
    fn messages_arrive_in_order_across_the_top_of_u64(
        frames_below in 1u64..768,
        sizes in prop::collection::vec(0usize..1500, 1..300),
        pops in prop::collection::vec(0u8..4, 1..300),
    ) {
        let start = below_top(frames_below);
        let end = deliver_in_order(Pair::starting_at(4096, start), &sizes, &pops)?;
        let written: u64 = end.wrapping_sub(start);
        if written >= frames_below * FRAME_HEADER_BYTES {
            prop_assert!(end < start, "the positions wrapped");
        }
    }

    /// A producer started just below 2^64 whose consumer publishes any value: a value in
    /// the window from the last consumed position to what was written is taken, anything
    /// else is corruption; never a panic.
    #[test]
    fn a_hostile_consumed_position_near_the_top_is_corruption(
        frames_below in 1u64..768,
        len in 0usize..1500,
        hostile in prop_oneof![
            any::<u64>(),
            (0u64..8192).prop_map(|d| 0u64.wrapping_sub(d)),
            0u64..8192,
            Just(u64::MAX),
        ],
    ) {
        let start = below_top(frames_below);
        let mem = HeapRing::new(4096);
        let mut tx = Producer::starting_at(4096, start);
        // Fill the ring: the next message makes the producer read the consumer's word.
        while tx.try_push(&mem, || start, &vec![7; len]).unwrap() == Push::Done {}
        let written = tx.position();
        let got = tx.try_push(&mem, || hostile, &vec![7; len]);
        let valid = within(hostile, start, written);
        prop_assert_eq!(got.is_ok(), valid, "consumed {} in [{}, {}]: {:?}", hostile, start, written, got);
        if let Err(e) = got {
            prop_assert!(e.0.contains("consumed position"), "{}", e);
        }
    }

    /// Any meta word, at any frame slot, with the consumer's position near 0 or near 2^64:
    /// corruption, or a frame inside the ring; never a panic.
    #[test]
    fn any_garbage_meta_is_rejected_or_in_bounds(
        meta in any::<u64>(),
        index_frames in 0u64..256,
        near_top in any::<bool>(),
    ) {
        let mem = HeapRing::new(4096);
        // Put the consumer at the frame slot `index_frames`, on the first lap or on the
        // last lap before 2^64.
        let lap = if near_top { 0u64.wrapping_sub(4096) } else { 0 };
        let mut rx = Consumer::starting_at(4096, lap + index_frames * FRAME_HEADER_BYTES);
        let index = rx.pos & 4095;
        mem.poke(index + 8, meta);
        mem.poke(index, tag_for(rx.pos));
        match rx.peek(&mem) {
            Ok(Some(frame)) => {
                prop_assert!(index + FRAME_HEADER_BYTES + frame.len as u64 <= 4096);
                let mut out = vec![0; frame.len];
                prop_assert!(rx.read(&mem, frame, &mut out).is_ok());
            }
            Ok(None) => {} // a valid padding frame led to an unpublished slot
            Err(Corruption(_)) => {}
        }
    }
}

/// Pushes `sizes` and pops on the schedule `pops` until everything arrived; checks that it
/// arrived in order and intact, and returns the final position.
fn deliver_in_order(mut p: Pair, sizes: &[usize], pops: &[u8]) -> Result<u64, TestCaseError> {
    let mut sent = 0usize;
    let mut got = Vec::new();
    let mut step = 0;
    while got.len() < sizes.len() {
        let mut stalled = sent == sizes.len();
        if sent < sizes.len() {
            let n = sizes[sent];
            let msg: Vec<u8> = (0..n).map(|i| (i + sent) as u8).collect();
            if p.push(&msg) == Push::Done {
                sent += 1;
            } else {
                stalled = true;
            }
        }
        // Pop as the schedule says, but at least once when the producer cannot go on.
        for _ in 0..pops[step % pops.len()].max(u8::from(stalled)) {
            if let Some(m) = p.pop() {
                got.push(m);
            }
        }
        step += 1;
        prop_assert!(step < 100_000, "no progress");
    }
    for (k, m) in got.iter().enumerate() {
        prop_assert_eq!(m.len(), sizes[k]);
        prop_assert!(m.iter().enumerate().all(|(i, b)| *b == (i + k) as u8));
    }
    prop_assert_eq!(p.tx.position(), p.rx.position());
    Ok(p.tx.position())
}

/// A ring in real segments started 16 bytes below 2^64 (our segment written by the
/// producer, read by the consumer through the validating read-only mapping, as a `Conn` or
/// an inbox writer's ring is): frames straddling the wrap of the positions arrive intact,
/// and the consumed position is taken across it.
#[test]
fn a_segment_ring_started_below_the_top_of_u64_delivers_across_the_wrap() {
    use crate::shm::segment::{OwnedSegment, PeerSegment};
    const CAP: u64 = 4096;
    let ours = OwnedSegment::create(CAP as usize).unwrap();
    let theirs = PeerSegment::open(ours.fd().try_clone_to_owned().unwrap(), CAP).unwrap();
    let start = below_top(1);
    let mut tx = Producer::starting_at(CAP, start);
    let mut rx = Consumer::starting_at(CAP, start);
    let mut consumed = start;
    let mut buf = vec![0u8; 2048];
    for seq in 0..200u64 {
        let msg: Vec<u8> = (0..(seq as usize * 37) % 2000)
            .map(|i| (i as u64 ^ seq) as u8)
            .collect();
        let pushed = loop {
            match tx.try_push(&ours, || consumed, &msg).unwrap() {
                Push::Done => break true,
                // Drain what is there (publishing it), then push again.
                Push::Full | Push::Padded => match rx.unpublished() {
                    Some(p) => consumed = p,
                    None => break false,
                },
            }
        };
        assert!(pushed, "message {seq} never fit");
        let frame = rx.peek(&theirs).unwrap().expect("a published frame");
        rx.read(&theirs, frame, &mut buf).unwrap();
        assert_eq!(&buf[..frame.len], &msg[..], "message {seq}");
        if let Some(p) = rx.advance(frame) {
            consumed = p;
        }
    }
    assert!(tx.position() < start, "the positions wrapped");
    assert_eq!(rx.peek(&theirs).unwrap(), None);
}

/// Payload bytes left from an earlier lap may contain exactly the tag the consumer waits
/// for next (user data is arbitrary). The producer clears the next tag word before it
/// publishes a frame, so such bytes are never taken for a frame.
#[test]
fn stale_payload_that_looks_like_a_future_tag_is_not_a_frame() {
    const CAP: u64 = 4096;
    let mut p = Pair::new(CAP);
    // Lap 0: 240-byte payloads (256-byte frames) whose every word holds the tag that lap 1
    // expects at that ring index.
    let mut index = 0;
    while index < CAP {
        let msg: Vec<u8> = (0..30u64)
            .flat_map(|w| tag_for(CAP + index + 16 + w * 8).to_le_bytes())
            .collect();
        assert_eq!(p.push(&msg), Push::Done);
        assert_eq!(p.pop().unwrap(), msg);
        index += 256;
    }
    assert_eq!(p.pop(), None);
    // Lap 1 with another frame size: its next header lands inside an old payload.
    assert_eq!(p.push(&[5; 8]), Push::Done);
    assert_eq!(p.pop().unwrap(), vec![5; 8]);
    assert_eq!(p.pop(), None, "a stale payload word was taken for a frame");
}
