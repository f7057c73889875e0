//! loom models of the frame ring, the eventcount (and its `FENCE_ASK` handshake), the inbox
//! doorbell, the broadcast ring and its loans (the pool reuse rule), run against the real
//! code:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shmsock --release --lib loom
//! RUSTFLAGS="--cfg loom" cargo test -p shmsock --release --lib loom_broadcast -- --ignored
//! ```

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::time::Duration;

use super::broadcast::{Cursor, Read, Reader, Writer};
use super::ring::heap::HeapRing;
use super::ring::{Consumer, Producer, Push};
use super::wait::{self, Asking, Futex};
use crate::vocabulary::Overflow;

/// A futex model: `wait` blocks (without timeout) until woken while the word still holds
/// `expected`, so a lost wake-up shows up as a deadlock that loom reports.
struct ModelFutex {
    lock: Mutex<()>,
    cv: Condvar,
}

impl ModelFutex {
    fn new() -> Self {
        ModelFutex {
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }
}

impl Futex for ModelFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Duration) {
        let guard = self.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(self.cv.wait(guard).unwrap());
        }
    }
    fn wake(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap();
        self.cv.notify_all();
    }
}

/// Producer pushes three messages through a 64-byte ring (so frames wrap and pad); the
/// consumer must see each exactly once, in order, with its bytes intact.
#[test]
fn loom_ring_delivers_in_order_without_tearing() {
    loom::model(|| {
        const CAP: u64 = 64;
        let ring = Arc::new(HeapRing::new(CAP));
        let consumed = Arc::new(AtomicU64::new(0));
        let msgs: [&[u8]; 3] = [&[1; 20], &[2; 8], &[3; 24]];

        let producer = {
            let (ring, consumed) = (ring.clone(), consumed.clone());
            thread::spawn(move || {
                let mut tx = Producer::new(CAP);
                for m in msgs {
                    // Acquire pairs with the consumer's Release store of its position.
                    while tx
                        .try_push(&*ring, || consumed.load(Ordering::Acquire), m)
                        .unwrap()
                        != Push::Done
                    {
                        thread::yield_now();
                    }
                }
            })
        };

        let mut rx = Consumer::new(CAP);
        for want in msgs {
            let frame = loop {
                if let Some(f) = rx.peek(&*ring).unwrap() {
                    break f;
                }
                if let Some(p) = rx.unpublished() {
                    consumed.store(p, Ordering::Release);
                }
                thread::yield_now();
            };
            let mut out = vec![0u8; frame.len];
            rx.read(&*ring, frame, &mut out).unwrap();
            assert_eq!(out, want);
            if let Some(p) = rx.advance(frame) {
                consumed.store(p, Ordering::Release);
            }
        }
        producer.join().unwrap();
    });
}

/// A producer publishing `messages` values, calling `notify` after each, and a consumer
/// that sleeps with `prepare` whenever it has seen everything published so far. The model
/// futex has no timeout, so a lost wake-up deadlocks and loom fails.
fn eventcount_model(
    messages: u64,
    notify: fn(&AtomicU32, &AtomicU32, &ModelFutex),
    prepare: fn(&AtomicU32, &AtomicU32) -> u32,
) {
    loom::model(move || {
        let data = Arc::new(AtomicU64::new(0));
        let consumer_sleeping = Arc::new(AtomicU32::new(0));
        let producer_seq = Arc::new(AtomicU32::new(0));
        let futex = Arc::new(ModelFutex::new());

        let producer = {
            let (data, sleeping, seq, futex) = (
                data.clone(),
                consumer_sleeping.clone(),
                producer_seq.clone(),
                futex.clone(),
            );
            thread::spawn(move || {
                for v in 1..=messages {
                    data.store(v, Ordering::Release);
                    notify(&sleeping, &seq, &futex);
                }
            })
        };

        let mut seen = 0;
        while seen < messages {
            let v = data.load(Ordering::Acquire);
            if v > seen {
                seen = v;
                continue;
            }
            let key = prepare(&consumer_sleeping, &producer_seq);
            if data.load(Ordering::Acquire) > seen {
                wait::cancel_wait(&consumer_sleeping);
                continue;
            }
            wait::sleep(
                &consumer_sleeping,
                &producer_seq,
                key,
                Duration::MAX,
                &*futex,
            );
        }
        producer.join().unwrap();
    });
}

/// The eventcount: a consumer that goes to sleep while the producer publishes is always
/// woken.
#[test]
fn loom_eventcount_loses_no_wake_up() {
    eventcount_model(
        2,
        |sleeping, seq, futex| wait::notify(sleeping, seq, false, futex),
        |sleeping, seq| wait::prepare_wait(sleeping, seq, false),
    );
}

/// The eventcount with keyed sleeps: a producer that skips the wake-up of a sleep whose key
/// is stale (`notify_keyed`) never leaves the consumer asleep, over three messages (waking
/// each numbered sleep once instead failed this model: the consumer can read its key after
/// the wake-up and sleep on it).
#[test]
fn loom_keyed_sleeps_lose_no_wake_up() {
    eventcount_model(
        3,
        |sleeping, seq, futex| wait::notify_keyed(sleeping, seq, false, futex),
        |sleeping, seq| wait::prepare_keyed_wait(sleeping, seq, false),
    );
}

/// The `FENCE_ASK` handshake (`segment::FLAG_FENCE_ASK`): a receiver that asked for light
/// barriers (its `FENCE_ASK` word starts even here) asks for a full fence again, and sleeps
/// without the heavy barrier only once `Asking::heavy` says the sender acknowledged the
/// ask. The sender does what `ShmConn::data_light` does: after each publication it loads
/// the ask; even, a light notification (no fence at all: loom cannot model `membarrier`,
/// so the receiver never sleeps while it would need one, it yields instead); odd, it
/// stores the acknowledgement (Release) the first time, then notifies with a full fence
/// (the sender's steps are copied here: `data_light` needs real segments; the receiver's
/// decision is the real `Asking::heavy`).
/// The model futex has no timeout: a wake-up lost to a light notification that raced
/// with a sleep deadlocks the model.
#[test]
fn loom_fence_ask_loses_no_wake_up() {
    loom::model(|| {
        let messages = 2;
        let data = Arc::new(AtomicU64::new(0));
        let sleeping = Arc::new(AtomicU32::new(0));
        let seq = Arc::new(AtomicU32::new(0));
        let ask = Arc::new(AtomicU32::new(0));
        let ack = Arc::new(AtomicU32::new(0));
        let futex = Arc::new(ModelFutex::new());

        let producer = {
            let (data, sleeping, seq, ask, ack, futex) = (
                data.clone(),
                sleeping.clone(),
                seq.clone(),
                ask.clone(),
                ack.clone(),
                futex.clone(),
            );
            thread::spawn(move || {
                let mut acked = 0;
                for v in 1..=messages {
                    data.store(v, Ordering::Release);
                    let asked = ask.load(Ordering::Relaxed);
                    if asked & 1 == 0 {
                        if sleeping.load(Ordering::Relaxed) != 0 {
                            seq.fetch_add(1, Ordering::Release);
                            futex.wake(&seq);
                        }
                        continue;
                    }
                    if asked != acked {
                        acked = asked;
                        ack.store(asked, Ordering::Release);
                    }
                    wait::notify(&sleeping, &seq, false, &*futex);
                }
            })
        };

        let asking = Asking::new();
        ask.store(1, Ordering::Relaxed);
        let mut seen = 0;
        while seen < messages {
            let v = data.load(Ordering::Acquire);
            if v > seen {
                seen = v;
                continue;
            }
            if asking.heavy(ack.load(Ordering::Acquire)) {
                thread::yield_now();
                continue;
            }
            let key = wait::prepare_wait(&sleeping, &seq, false);
            if data.load(Ordering::Acquire) > seen {
                wait::cancel_wait(&sleeping);
                continue;
            }
            wait::sleep(&sleeping, &seq, key, Duration::MAX, &*futex);
        }
        producer.join().unwrap();
    });
}

/// A doorbell model (an `Inbox`'s socket pairs): ringing queues a datagram (adds to a
/// counter) and wakes; waiting blocks while none is queued; resetting drains them.
struct ModelBell {
    count: AtomicU32,
    futex: ModelFutex,
}

impl ModelBell {
    fn ring(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.futex.wake(&self.count);
    }
    fn wait(&self) {
        self.futex.wait(&self.count, 0, Duration::MAX);
    }
    fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
    }
}

/// The inbox's doorbell protocol: two writers each publish one message and ring the bell
/// only if they see the reader's flag; the reader announces its sleep in both flags,
/// re-checks both rings, and waits on the bell (one bell stands for the writers' pairs:
/// the inbox polls them all at once). A lost wake-up deadlocks the model.
#[test]
fn loom_doorbell_loses_no_wake_up() {
    loom::model(|| {
        let data: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let flags: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let bell = Arc::new(ModelBell {
            count: AtomicU32::new(0),
            futex: ModelFutex::new(),
        });
        let writers: Vec<_> = (0..2)
            .map(|i| {
                let (data, flags, bell) = (data.clone(), flags.clone(), bell.clone());
                thread::spawn(move || {
                    data[i].store(1, Ordering::Release);
                    if wait::any_sleeps([&flags[i]], false) {
                        bell.ring();
                    }
                })
            })
            .collect();

        let mut seen = [false; 2];
        let look = |seen: &mut [bool; 2]| {
            let mut found = false;
            for i in 0..2 {
                if !seen[i] && data[i].load(Ordering::Acquire) == 1 {
                    seen[i] = true;
                    found = true;
                }
            }
            found
        };
        while seen != [true, true] {
            if look(&mut seen) {
                continue;
            }
            assert!(wait::prepare_doorbell_wait(flags.iter(), false));
            // As `ShmInbox::sleep`: a wake-up drains the bell before the flags are
            // withdrawn, and the loop looks at every ring again afterwards.
            if !look(&mut seen) {
                bell.wait();
                bell.reset();
            }
            for f in flags.iter() {
                wait::cancel_wait(f);
            }
        }
        for w in writers {
            w.join().unwrap();
        }
    });
}

fn cursor(w: &[AtomicU64; 5]) -> Cursor<'_> {
    Cursor::from_words(w)
}

/// The broadcast ring under DropOldest: the writer laps a concurrent reader; every message
/// the reader delivers is intact and in order, and delivered + lost = sent.
#[test]
fn loom_broadcast_never_delivers_a_torn_message() {
    broadcast_model(false);
}

/// The same, with the reader consulting the publisher's cursor on every racing read (the
/// path that found the stale-cursor bug); about 5 minutes on 2 cores, so not in CI.
#[test]
#[ignore = "long model (about 5 minutes on 2 cores); run it with --ignored, see the README"]
fn loom_broadcast_resyncs_against_a_consistent_cursor() {
    broadcast_model(true);
}

fn broadcast_model(check_lag_while_racing: bool) {
    // Each payload word is a scheduling point; bound preemptions so the model stays in CI's
    // budget (the ring and eventcount models take LOOM_MAX_PREEMPTIONS).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.check(move || {
        // A 64-byte ring and 16-byte messages (32-byte frames): the second message evicts
        // the first, the third overwrites its bytes, while the reader may be copying them.
        const CAP: u64 = 64;
        const SENT: u64 = 3;
        let ring = Arc::new(HeapRing::new(CAP));
        let words: Arc<[AtomicU64; 5]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
        let message = |seq: u64| vec![seq as u8 + 1; 16];
        let start = cursor(&words).snapshot(CAP).unwrap();

        let writer = {
            let (ring, words) = (ring.clone(), words.clone());
            thread::spawn(move || {
                let mut w = Writer::new(CAP);
                for seq in 0..SENT {
                    w.try_push(
                        &*ring,
                        &cursor(&words),
                        Overflow::DropOldest,
                        || None,
                        &message(seq),
                    );
                }
            })
        };

        let mut r = Reader::new(CAP, start);
        let (mut delivered, mut lost) = (0u64, 0u64);
        let mut buf = [0u8; 16];
        let mut step =
            |r: &mut Reader, delivered: &mut u64, lost: &mut u64, check_lag: bool| match r
                .read(&*ring, &cursor(&words), &mut buf, check_lag)
                .unwrap()
            {
                Read::Message(n) => {
                    assert_eq!(
                        &buf[..n],
                        &message(*delivered + *lost)[..],
                        "torn or out of order"
                    );
                    *delivered += 1;
                }
                Read::Lagged(n) => *lost += n,
                Read::Empty => {}
                Read::TooSmall(_) => unreachable!(),
            };
        // A bounded number of reads race the writer (unbounded polling would make the model
        // explode); the rest is drained once it is done.
        for _ in 0..2 {
            step(&mut r, &mut delivered, &mut lost, check_lag_while_racing);
        }
        writer.join().unwrap();
        while delivered + lost < SENT {
            step(&mut r, &mut delivered, &mut lost, true);
        }
        assert_eq!(delivered + lost, SENT);
    });
}

/// A subscriber's loan words in the model: TAKEN and RELEASED for the one slot, claimed
/// exactly as `ReleaseBoard::claim` does (store, then a full fence).
struct ModelClaims {
    words: Arc<[AtomicU64; 2]>,
}

const TAKEN: usize = 0;
const RELEASED: usize = 1;

impl super::broadcast::Claims for ModelClaims {
    type Claim = u64;
    fn claim(
        &mut self,
        payload: &[u8; super::ring::LOAN_FRAME_BYTES],
    ) -> Result<u64, super::ring::Corruption> {
        let generation = u64::from_le_bytes(payload[8..16].try_into().unwrap());
        self.words[TAKEN].store(generation, Ordering::Relaxed);
        loom::sync::atomic::fence(Ordering::SeqCst);
        Ok(generation)
    }
    fn withdraw(&mut self, generation: u64) {
        self.words[RELEASED].store(generation, Ordering::Release);
    }
}

/// Pub/sub loans: the publisher lends its one slot through the broadcast ring, then evicts
/// the loan frame (as a `DropOldest` publisher whose pool ran dry does) and reuses the slot
/// if the subscriber's words say it may (`loan::holding`'s rule, after the same fence as
/// `ShmPublisher::try_take_loan`), while the subscriber reads the frame, claims it and reads
/// the slot. The slot is a `Relaxed` word, so loom lets the subscriber see any write not
/// ordered before its read: it must always see the bytes that were lent. Checked to fail
/// when the fence in the claim is removed.
#[test]
fn loom_broadcast_loan_is_never_reused_under_a_reader() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        const CAP: u64 = 256;
        let ring = Arc::new(HeapRing::new(CAP));
        let words: Arc<[AtomicU64; 5]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
        let sub_words: Arc<[AtomicU64; 2]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
        let slot = Arc::new(AtomicU64::new(0));
        let start = cursor(&words).snapshot(CAP).unwrap();

        let publisher = {
            let (ring, words, sub_words, slot) =
                (ring.clone(), words.clone(), sub_words.clone(), slot.clone());
            thread::spawn(move || {
                let mut w = Writer::new(CAP);
                slot.store(1, Ordering::Relaxed);
                // `LoanRef::encode` of {slot 0, generation 1, 8 bytes}.
                let mut frame = [0u8; super::ring::LOAN_FRAME_BYTES];
                frame[8..16].copy_from_slice(&1u64.to_le_bytes());
                frame[16..24].copy_from_slice(&8u64.to_le_bytes());
                w.try_push_kind(
                    &*ring,
                    &cursor(&words),
                    Overflow::DropOldest,
                    || None,
                    &frame,
                    super::ring::KIND_LOAN,
                );
                let pos = w.last_frame_pos();
                w.evict_through(&*ring, &cursor(&words), pos);
                loom::sync::atomic::fence(Ordering::SeqCst);
                let back = sub_words[RELEASED].load(Ordering::Acquire) == 1
                    || (sub_words[TAKEN].load(Ordering::Acquire) < 1 && w.oldest_pos() > pos);
                if back {
                    slot.store(2, Ordering::Relaxed);
                }
            })
        };

        let mut r = Reader::new(CAP, start);
        let mut claims = ModelClaims {
            words: sub_words.clone(),
        };
        let mut buf = [0u8; 16];
        for _ in 0..2 {
            match r
                .read_with(&*ring, &cursor(&words), &mut buf, true, &mut claims)
                .unwrap()
            {
                Read::Loan(generation) => {
                    assert_eq!(generation, 1);
                    let seen = slot.load(Ordering::Relaxed);
                    assert_eq!(seen, 1, "the slot was reused under the reader");
                    sub_words[RELEASED].store(generation, Ordering::Release);
                }
                Read::Lagged(n) => assert_eq!(n, 1),
                Read::Empty => {}
                Read::Message(_) | Read::TooSmall(_) => unreachable!(),
            }
        }
        publisher.join().unwrap();
    });
}
