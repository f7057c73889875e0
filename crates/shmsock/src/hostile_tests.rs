//! A hostile peer writes garbage into its own segment while we read it: we must return
//! `Error::Corrupt` (or valid data, or a timeout), never panic, hang or read out of bounds.
//! Every call against the mutating peer is watched ([`shmsock_testkit::watchdog`]): one
//! that runs past [`CALL_BOUND`] fails the test with a message, even if it never returns.

use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmsock_testkit::watchdog::{watched, CallWatch};

use crate::shm::segment::word;
use crate::shm::segment::RING_OFFSET;
use crate::{Conn, Error, Listener, Options};

/// Timeout each receive asks for.
const CALL_TIMEOUT: Duration = Duration::from_millis(5);

/// The longest one call against the mutating peer may take before the test calls it a
/// hang. A receive asks for [`CALL_TIMEOUT`] and a send never waits; the longest a read
/// of shared memory may legitimately wait past that is the broadcast seqlock's patience
/// with a torn cursor (250 ms, `SEQLOCK_PATIENCE` in `shm/broadcast.rs`; the pair ring
/// has no seqlock, so here it is only a margin), plus the scheduling delays of a loaded
/// 2-core CI machine. 2 s is far above both, and far below CI's own timeout.
const CALL_BOUND: Duration = Duration::from_secs(2);

fn pair(name: &str, cap: usize) -> (Conn, Conn) {
    let dir = crate::test_support::runtime_dir("shmsock-unit-");
    std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    let ep = format!("shm://{name}");
    let opts = Options::new().ring_capacity(cap);
    let listener = Listener::bind_with(&ep, opts.clone()).unwrap();
    let t = std::thread::spawn(move || Conn::connect_with(&ep, opts).unwrap());
    let ours = listener.accept().unwrap();
    (ours, t.join().unwrap())
}

/// A tiny deterministic generator (xorshift), so failures replay.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn frame_longer_than_the_ring_is_corrupt() {
    let (mut ours, hostile) = pair("hostile-len", 4096);
    let seg = hostile.shm().own_segment();
    seg.scribble(RING_OFFSET + 8, 1 << 20); // len = 1 MiB in a 4 KiB ring
    seg.scribble(RING_OFFSET, 1); // tag of position 0: "published"
    let err = ours.recv_vec().unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("remain before the ring end"),
        "{err}"
    );
    // Poisoned for good.
    assert!(matches!(
        ours.try_recv(&mut [0; 8]),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(ours.try_send(b"x"), Err(Error::Corrupt { .. })));
}

#[test]
fn consumed_position_beyond_what_we_wrote_is_corrupt() {
    let (mut ours, hostile) = pair("hostile-consumed", 4096);
    // Fill the ring so the producer must re-read the peer's consumed position.
    while ours.try_send(&[0; 1000]).is_ok() {}
    hostile
        .shm()
        .own_segment()
        .scribble(word::CONSUMED.raw(), u64::MAX - 7);
    let err = ours.try_send(&[0; 1000]).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("consumed position"), "{err}");
}

/// Sets its flag when dropped: the hostile writer stops even if the reader failed.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, StdOrdering::Relaxed);
    }
}

/// Runs one hostile writer against one reader until the reader reports corruption or
/// `until` passes. Returns (writes, messages accepted, corrupt).
fn hostile_round(name: &str, seed: u64, until: Instant) -> (u64, u64, bool) {
    let (ours, hostile) = pair(name, 4096);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut next = rng(seed);
        let seg = hostile.shm().own_segment();
        let mut writes = 0u64;
        while !stop2.load(StdOrdering::Relaxed) {
            // Mostly ring headers and the hot words; sometimes anywhere in the segment.
            let off = match next() % 4 {
                0 => RING_OFFSET + ((next() % 4096) & !15) as usize,
                1 => RING_OFFSET + ((next() % 4096) & !15) as usize + 8,
                2 => [
                    word::CONSUMED.raw(),
                    word::DATA_SEQ.raw(),
                    word::SPACE_SEQ.raw(),
                    word::TX_SLEEPING.raw(),
                ][(next() % 4) as usize],
                _ => ((next() % (4096 + 4096)) & !7) as usize,
            };
            let value = match next() % 4 {
                0 => next(),
                1 => next() % 8192,
                2 => (next() % 4096) | 1, // plausible tags
                _ => (next() % 4096) | ((next() % 3) << 32),
            };
            seg.scribble(off, value);
            writes += 1;
        }
        writes
    });
    let stopping = StopOnDrop(stop);
    let (ok, corrupt) = watched(
        &format!("a peer mutating its segment ({name})"),
        CALL_BOUND,
        move |watch| read_and_write(ours, until, watch),
    );
    drop(stopping);
    (writer.join().unwrap(), ok, corrupt)
}

/// Our side of a round: receives and sends, every call watched, until corruption is
/// reported (then checked to stick) or `until` passes. Returns (messages accepted, corrupt).
fn read_and_write(mut ours: Conn, until: Instant, watch: &CallWatch) -> (u64, bool) {
    let mut ok = 0u64;
    let mut corrupt = false;
    let mut buf = vec![0u8; 8192];
    while Instant::now() < until && !corrupt {
        match watch.call(|| ours.recv_timeout(&mut buf, CALL_TIMEOUT)).0 {
            Ok(n) => {
                assert!(n <= 4096);
                ok += 1;
            }
            Err(Error::Corrupt { .. }) => corrupt = true,
            Err(Error::TimedOut) | Err(Error::BufferTooSmall { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
        match watch.call(|| ours.try_send(&[1; 64])).0 {
            Ok(()) | Err(Error::WouldBlock) => {}
            Err(Error::Corrupt { .. }) => corrupt = true,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    if corrupt {
        // Poisoned for good: every later call says so at once.
        let (r, _) = watch.call(|| ours.try_recv(&mut buf));
        assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
        let (r, _) = watch.call(|| ours.try_send(b"x"));
        assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    }
    (ok, corrupt)
}

#[test]
fn random_mutations_during_reads_never_panic_or_hang() {
    let until = Instant::now() + Duration::from_millis(1500);
    let (mut writes, mut ok, mut corrupt, mut rounds) = (0, 0, 0, 0u64);
    while Instant::now() < until {
        let (w, o, c) = hostile_round(&format!("hostile-random-{rounds}"), 0x5eed + rounds, until);
        writes += w;
        ok += o;
        corrupt += u64::from(c);
        rounds += 1;
    }
    assert!(writes > 1000, "the hostile writer ran ({writes} writes)");
    assert!(
        corrupt > 0,
        "random garbage was never detected in {rounds} rounds"
    );
    eprintln!("hostile: {rounds} rounds, {writes} writes, {ok} messages accepted, {corrupt} corruption reports");
}
