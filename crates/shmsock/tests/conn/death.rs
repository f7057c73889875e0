//! A peer killed with SIGKILL is reported as `PeerGone`: after everything it had
//! published, and within `PEER_DEATH_BOUND` even when we are blocked waiting for it.

use std::time::{Duration, Instant};

use shmsock::{Error, Options, WaitStrategy};

use shmsock_testkit::harness::{self, Peer, PEER_DEATH_BOUND, STEP_TIMEOUT};
use shmsock_testkit::message::{self, stream_env};

const STRATEGIES: [WaitStrategy; 3] = [
    WaitStrategy::BusyPoll,
    WaitStrategy::Adaptive,
    WaitStrategy::Blocking,
];

/// How long the parent is left blocked before the kill, so that Adaptive and Blocking
/// waiters are asleep on the futex when the peer dies.
const BLOCKED_BEFORE_KILL: Duration = Duration::from_millis(60);

/// A listener on `ep` and an `idle` peer it accepted (ready, never sending).
fn idle_peer(ep: &str, options: Options) -> (shmsock::Listener, Peer, shmsock::Conn) {
    let listener = harness::bind(ep, options);
    let mut peer = Peer::spawn("idle", ep, &[]);
    let conn = harness::accept(&listener).expect("accepting the peer");
    peer.expect("ready");
    (listener, peer, conn)
}

#[test]
fn dead_writer_is_reported_after_its_messages() {
    let _timing = harness::timing_test();
    let ep = harness::endpoint("deadwriter");
    let listener = harness::bind(&ep, Options::new());
    // 1000 messages of at most 700 bytes fit in the default 1 MiB ring: the writer never
    // waits for us, so all of them are published before it dies.
    let (count, seed, max_len) = (1000u64, 3u64, 700usize);
    let mut peer = Peer::spawn(
        "send_then_hang",
        &ep,
        &stream_env(count, seed, max_len).vars(),
    );
    let mut conn = harness::accept(&listener).expect("accepting the writer");
    assert_eq!(peer.expect("sent"), count.to_string());
    peer.kill();
    // Reap it: the hang-up is certainly visible before we read a single message.
    let status = peer.wait();
    assert!(!status.success(), "the writer was killed: {status}");

    message::receive_stream(&mut conn, count, seed, max_len);
    let mut buf = [0u8; 16];
    let t = Instant::now();
    let end = conn.recv_timeout(&mut buf, STEP_TIMEOUT);
    let took = t.elapsed();
    match end {
        Err(Error::PeerGone { pid, endpoint }) => {
            assert_eq!(pid, peer.pid().as_raw_nonzero().get());
            assert_eq!(endpoint, ep);
        }
        other => panic!("after {count} messages: {other:?}, expected PeerGone"),
    }
    assert!(
        took < PEER_DEATH_BOUND,
        "PeerGone took {took:?} after the ring was found empty"
    );
    // The end is sticky, for every operation.
    assert!(matches!(
        conn.try_recv(&mut buf),
        Err(Error::PeerGone { .. })
    ));
    assert!(matches!(conn.send(b"x"), Err(Error::PeerGone { .. })));
    assert!(matches!(conn.try_send(b"x"), Err(Error::PeerGone { .. })));
}

/// Kills `peer` after [`BLOCKED_BEFORE_KILL`] while `blocked` (`what`, a call that blocks
/// until the peer goes) runs on this thread; checks that it returned `PeerGone` within
/// [`PEER_DEATH_BOUND`] of the kill.
fn kill_while_blocked<T: std::fmt::Debug>(
    peer: &Peer,
    what: &str,
    blocked: impl FnOnce() -> shmsock::Result<T>,
) {
    let killer = harness::kill_after(peer.pid(), BLOCKED_BEFORE_KILL);
    let end = blocked();
    let returned = Instant::now();
    let killed = killer.join().expect("the killer thread");
    assert!(
        matches!(end, Err(Error::PeerGone { .. })),
        "{what} returned {end:?}, expected PeerGone"
    );
    let took = returned.duration_since(killed);
    eprintln!("{what}: PeerGone {took:.1?} after the kill");
    assert!(
        took < PEER_DEATH_BOUND,
        "{what}: PeerGone came {took:?} after the kill"
    );
}

#[test]
fn peer_death_unblocks_a_receiver_waiting_on_an_empty_ring() {
    let _timing = harness::timing_test();
    for strategy in STRATEGIES {
        let ep = harness::endpoint("deadrx");
        let (_listener, peer, mut conn) = idle_peer(&ep, Options::new().wait_strategy(strategy));

        kill_while_blocked(&peer, &format!("{strategy:?}: blocked recv"), || {
            conn.recv_timeout(&mut [0u8; 16], STEP_TIMEOUT)
        });
    }
}

#[test]
fn peer_death_unblocks_a_sender_on_a_full_ring() {
    let _timing = harness::timing_test();
    for strategy in STRATEGIES {
        let ep = harness::endpoint("deadtx");
        let capacity = shmsock::RING_CAPACITY_MIN_BYTES;
        let options = Options::new()
            .wait_strategy(strategy)
            .ring_capacity(capacity);
        let (_listener, peer, mut conn) = idle_peer(&ep, options);

        // The peer never reads: fill its inbound ring (our segment).
        let msg = [0x5au8; 1000];
        let mut queued = 0;
        loop {
            match conn.try_send(&msg) {
                Ok(()) => queued += 1,
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{strategy:?}: filling the ring: {e}"),
            }
            assert!(queued <= capacity / msg.len(), "the ring never fills");
        }
        assert!(queued > 0);

        kill_while_blocked(&peer, &format!("{strategy:?}: blocked send"), || {
            conn.send_timeout(&msg, STEP_TIMEOUT)
        });
    }
}

/// A writer killed while it streams leaves only whole messages: everything it published
/// arrives verified, in order, then `PeerGone`. Killed once while we keep up with it (it is
/// mostly mid-message) and once after we stopped reading (it is blocked on a full ring).
#[test]
fn writer_killed_mid_stream_leaves_only_whole_messages() {
    for pause_before_kill in [Duration::ZERO, Duration::from_millis(50)] {
        let ep = harness::endpoint("midstream");
        let listener = harness::bind(&ep, Options::new());
        let (seed, max_len) = (99u64, 4096usize);
        let mut peer = Peer::spawn("stream", &ep, &stream_env(u64::MAX, seed, max_len).vars());
        let mut conn = harness::accept(&listener).expect("accepting the writer");
        let kill_at = 20_000;
        let mut lens = message::lengths(seed);
        let mut buf = vec![0u8; max_len];
        let mut seq = 0u64;
        let end = loop {
            if seq == kill_at {
                std::thread::sleep(pause_before_kill);
                peer.kill();
                peer.wait();
            }
            match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
                Ok(n) => {
                    if let Err(what) = message::verify(seq, lens.below_or_eq(max_len), &buf[..n]) {
                        panic!("{what}");
                    }
                    seq += 1;
                }
                Err(e) => break e,
            }
        };
        assert!(
            matches!(end, Error::PeerGone { .. }),
            "after {seq} messages: {end:?}"
        );
        assert!(seq >= kill_at, "only {seq} messages arrived");
        eprintln!(
            "pause {pause_before_kill:?}: {} messages were in flight at the kill",
            seq - kill_at
        );
    }
}

/// The survivor is the connector: a killed listener process is reported the same way.
#[test]
fn connector_sees_a_killed_listener_as_peer_gone() {
    let _timing = harness::timing_test();
    let ep = harness::endpoint("deadlistener");
    let mut peer = Peer::spawn("listen", &ep, &[]);
    peer.expect("ready");
    let mut conn = shmsock::Conn::connect(&ep).expect("connecting to the child's listener");
    let mut buf = [0u8; 16];
    conn.send(b"ping").expect("send");
    let n = conn.recv_timeout(&mut buf, STEP_TIMEOUT).expect("echo");
    assert_eq!(&buf[..n], b"ping");

    let killer = harness::kill_after(peer.pid(), BLOCKED_BEFORE_KILL);
    let end = conn.recv_timeout(&mut buf, STEP_TIMEOUT);
    let returned = Instant::now();
    let took = returned.duration_since(killer.join().expect("the killer thread"));
    assert!(matches!(end, Err(Error::PeerGone { .. })), "{end:?}");
    assert!(
        took < PEER_DEATH_BOUND,
        "PeerGone came {took:?} after the kill"
    );
}

/// The other side of the bound: a live peer that merely stays silent is never reported
/// gone, whatever the wait strategy.
#[test]
fn silent_live_peer_is_not_reported_gone() {
    for strategy in STRATEGIES {
        let ep = harness::endpoint("silent");
        let (_listener, _peer, mut conn) = idle_peer(&ep, Options::new().wait_strategy(strategy));
        let mut buf = [0u8; 16];
        let wait = Duration::from_millis(250);
        let t = Instant::now();
        let r = conn.recv_timeout(&mut buf, wait);
        assert!(matches!(r, Err(Error::TimedOut)), "{strategy:?}: {r:?}");
        assert!(t.elapsed() >= wait, "{strategy:?}: returned early");
        assert!(matches!(conn.try_recv(&mut buf), Err(Error::WouldBlock)));
        conn.send(b"still there").expect("sending to a silent peer");
    }
}
