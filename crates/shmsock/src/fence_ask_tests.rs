//! A `Blocking` receiver's `FENCE_ASK` (see `segment::FLAG_FENCE_ASK` and `wait::Asking`)
//! over real connections: it asks for light barriers after a dense stream and for the full
//! fence again in a sparse one, its sender acknowledges, and every message arrives once, in
//! order; a peer that scribbles over those words delays only the wake-ups for its own
//! messages (and costs the other side at most a few `membarrier`s per `Asking::LIGHT_AFTER`
//! messages it sends), never a message.

use std::time::Duration;

use crate::shm::segment::word;
use crate::sync::Ordering;
use crate::{Conn, Listener, Options, WaitStrategy};

/// A connected pair, both sides `Blocking`, rings of `capacity` bytes: (accepted, connected).
fn blocking_pair(name: &str, capacity: usize) -> (Conn, Conn) {
    let dir = crate::test_support::runtime_dir("shmsock-unit-");
    std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    let ep = format!("shm://{name}");
    let opts = Options::new()
        .wait_strategy(WaitStrategy::Blocking)
        .ring_capacity(capacity);
    let listener = Listener::bind_with(&ep, opts.clone()).unwrap();
    let t = std::thread::spawn(move || Conn::connect_with(&ep, opts).unwrap());
    let ours = listener.accept().unwrap();
    (ours, t.join().unwrap())
}

/// Whether this process can run the heavy barrier and notify with light ones (else the
/// segments say no `FLAG_FENCE_ASK` and the static rule applies).
fn asks() -> bool {
    crate::sys::light_barriers() && crate::sys::heavy_barrier_works()
}

/// Receives `n` messages numbered from `first`, checking each.
fn take(rx: &mut Conn, first: u64, n: u64) {
    let mut buf = [0u8; 64];
    for i in first..first + n {
        let len = rx
            .recv_timeout(&mut buf, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(len, 64);
        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i, "order");
    }
}

/// Dense messages per cycle: more than `Asking::LIGHT_AFTER`, all in the ring before the
/// receiver looks (a 4 MiB ring holds them), so it reads them without waiting.
const DENSE: u64 = 10_000;
/// Sparse messages per cycle, each sent some time after the receiver asked for it (so it
/// waits and sleeps for each): the first after 2 ms (one sleep, shorter than
/// `FUTEX_SLEEP_MAX`), the others after 20 ms (a sleep, and another after its timeout).
const SPARSE: u64 = 4;

#[test]
fn a_blocking_receiver_switches_barriers_with_its_stream_and_loses_nothing() {
    if !asks() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true, but membarrier(GLOBAL_EXPEDITED) is refused: the FENCE_ASK path is \
             not tested"
        );
        return;
    }
    let (mut rx, mut tx) = blocking_pair("fence-ask", 4 << 20);
    assert_eq!(
        rx.shm().fence_words(),
        (1, 1),
        "first ask odd, acknowledged at setup"
    );
    let cycles = 3;
    let (go_tx, go) = std::sync::mpsc::channel::<()>();
    let (sent_tx, sent) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        let mut msg = [0u8; 64];
        let mut i = 0u64;
        let mut send = |tx: &mut Conn| {
            msg[..8].copy_from_slice(&i.to_le_bytes());
            tx.send(&msg).unwrap();
            i += 1;
        };
        for _ in 0..cycles {
            for _ in 0..DENSE {
                send(&mut tx);
            }
            sent_tx.send(()).unwrap();
            for k in 0..SPARSE {
                go.recv().unwrap();
                std::thread::sleep(Duration::from_millis(if k == 0 { 2 } else { 20 }));
                send(&mut tx);
            }
        }
        tx
    });
    let mut next = 0;
    let mut seen = vec![];
    for _ in 0..cycles {
        sent.recv().unwrap();
        take(&mut rx, next, DENSE);
        next += DENSE;
        let mut light = None;
        for k in 0..SPARSE {
            go_tx.send(()).unwrap();
            take(&mut rx, next, 1);
            next += 1;
            if k == 0 {
                light = Some(rx.shm().fence_words().0);
            }
        }
        let (fence, ack) = rx.shm().fence_words();
        seen.push((light.unwrap(), fence, ack));
    }
    drop(sender.join().unwrap());
    // Each cycle: the wait for the first sparse message asks for light barriers (even),
    // after DENSE messages without a sleep, and its one sleep keeps them; a sleep soon
    // after another (the next waits' second sleeps) asks for the fence (odd); the sender
    // acknowledges it with its next message. A receiver descheduled for a while may miss a
    // wait or sleep differently: one cycle in three must show the whole pattern, and none
    // may break the rules.
    let whole = seen
        .iter()
        .filter(|&&(light, fence, ack)| light % 2 == 0 && fence == light + 1 && ack == fence)
        .count();
    assert!(whole >= 1, "no cycle switched both ways: {seen:?}");
    for (light, fence, ack) in &seen {
        assert!(
            fence % 2 == 1 && ack == fence,
            "a sparse stream ends fenced and acknowledged: {seen:?}"
        );
        assert!(light <= fence);
    }
}

#[test]
fn scribbled_fence_words_cost_the_other_side_nothing() {
    if !asks() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true, but membarrier is refused"
        );
        return;
    }
    // A hostile receiver flips its FENCE_ASK at random while our sender streams; a hostile
    // sender writes garbage into its FENCE_ACK while our receiver waits: both sides go on
    // delivering everything (a lie only delays the wake-ups for the liar's own messages).
    let (mut rx, tx) = blocking_pair("fence-ask-hostile", 1 << 20);
    let sender = std::thread::spawn(move || {
        let mut tx = tx;
        let mut msg = [0u8; 64];
        for i in 0..50_000u64 {
            if i % 97 == 0 {
                let lie = (i as u32).wrapping_mul(0x9e37_79b9);
                tx.shm()
                    .own_segment()
                    .word32(word::FENCE_ACK)
                    .store(lie, Ordering::Release);
            }
            if i % 5_000 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            msg[..8].copy_from_slice(&i.to_le_bytes());
            tx.send(&msg).unwrap();
        }
        tx
    });
    let mut buf = [0u8; 64];
    for i in 0..50_000u64 {
        if i % 89 == 0 {
            let lie = (i as u32).wrapping_mul(0x2545_f491);
            rx.shm()
                .own_segment()
                .word32(word::FENCE_ASK)
                .store(lie, Ordering::Relaxed);
        }
        let len = rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap();
        assert_eq!(len, 64);
        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i);
    }
    drop(sender.join().unwrap());
}
