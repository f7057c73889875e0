//! Messages cross processes once, in order, intact; oversized ones are refused.

use shmsock::{Conn, Error, Listener, Options, WaitStrategy};

use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::message::{self, stream_env, SplitMix64};

/// Sends `msg`, waits for the echo and checks it.
fn round_trip(conn: &mut Conn, msg: &[u8], buf: &mut [u8]) {
    conn.send_timeout(msg, STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("sending {} bytes: {e}", msg.len()));
    let n = conn
        .recv_timeout(buf, STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("receiving the echo of {} bytes: {e}", msg.len()));
    assert_eq!(n, msg.len(), "echo length");
    assert!(buf[..n] == *msg, "echo of {} bytes differs", msg.len());
}

#[test]
fn ping_pong_between_processes() {
    let ep = harness::endpoint("pingpong");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn("echo", &ep, &[]);
    let mut conn = harness::accept(&listener).expect("accepting the echo peer");
    assert_eq!(conn.peer_pid(), peer.pid().as_raw_nonzero().get());

    // Sizes around the 16-byte frame alignment, a cache line, a page, and large frames
    // that force padding at the end of the ring.
    let sizes = [
        0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 1000, 4096, 65_536, 300_000,
    ];
    let mut rng = SplitMix64::new(7);
    let mut msg = vec![0u8; 300_000];
    let mut buf = vec![0u8; 300_000];
    for i in 0..1000 {
        let len = sizes[i % sizes.len()];
        for b in msg[..len].iter_mut().step_by(61) {
            *b = rng.next_u64() as u8;
        }
        msg[..len.min(8)].copy_from_slice(&(i as u64).to_le_bytes()[..len.min(8)]);
        round_trip(&mut conn, &msg[..len], &mut buf);
    }
    drop(conn);
    peer.wait_success();
}

/// 1,000,000 messages (about 1 GB) take ~11 s in a debug build on 2 cores, so the count is
/// the same in debug and release.
const STREAM_COUNT: u64 = 1_000_000;
const STREAM_MAX_LEN: usize = 2048;

#[test]
fn million_messages_of_random_sizes_arrive_once_in_order_intact() {
    let _heavy = harness::cpu_heavy_test();
    let ep = harness::endpoint("million");
    let listener = harness::bind(&ep, Options::new());
    let seed = 0x5eed_0001;
    let mut peer = Peer::spawn(
        "stream",
        &ep,
        &stream_env(STREAM_COUNT, seed, STREAM_MAX_LEN).vars(),
    );
    let mut conn = harness::accept(&listener).expect("accepting the streaming peer");
    let took = message::receive_stream(&mut conn, STREAM_COUNT, seed, STREAM_MAX_LEN);
    peer.expect("done");
    let mut buf = [0u8; 1];
    match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
        Err(Error::PeerClosed { .. }) => {}
        other => panic!("after the last message: {other:?}, expected PeerClosed"),
    }
    peer.wait_success();
    eprintln!(
        "{STREAM_COUNT} messages in {took:.2?} ({:.0} msgs/s)",
        STREAM_COUNT as f64 / took.as_secs_f64()
    );
}

#[test]
fn clean_close_is_peer_closed_not_peer_gone() {
    let ep = harness::endpoint("closed");
    let listener = harness::bind(&ep, Options::new());
    let (count, seed, max_len) = (1000u64, 11u64, 600usize);
    let mut peer = Peer::spawn(
        "send_then_close",
        &ep,
        &stream_env(count, seed, max_len).vars(),
    );
    let mut conn = harness::accept(&listener).expect("accepting the peer");
    peer.expect("closed after");
    // The peer process is gone too: the socket hang-up must not turn the clean close into
    // a death, and must not cut the delivery short.
    peer.wait_success();
    message::receive_stream(&mut conn, count, seed, max_len);
    let mut buf = [0u8; 1];
    for _ in 0..2 {
        match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
            Err(Error::PeerClosed { pid, endpoint }) => {
                assert_eq!(pid, peer.pid().as_raw_nonzero().get());
                assert_eq!(endpoint, ep);
            }
            other => panic!("after the last message: {other:?}, expected PeerClosed"),
        }
    }
    match conn.send(b"anyone?") {
        Err(Error::PeerClosed { .. }) => {}
        other => panic!("send to a closed peer: {other:?}, expected PeerClosed"),
    }
}

#[test]
fn message_larger_than_the_ring_is_too_large() {
    let ep = harness::endpoint("toolarge");
    let capacity = shmsock::RING_CAPACITY_MIN_BYTES;
    let listener = harness::bind(&ep, Options::new().ring_capacity(capacity));
    let mut peer = Peer::spawn("echo", &ep, &[]);
    let mut conn = harness::accept(&listener).expect("accepting the echo peer");
    let max = conn.max_message_len();
    // The frame header (and any alignment) comes out of the ring.
    assert!(
        max < capacity && max >= capacity - 128,
        "max message {max} for a ring of {capacity}"
    );

    let big = vec![0xabu8; max + 1];
    for attempt in [conn.send(&big), conn.try_send(&big)] {
        match attempt {
            Err(Error::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
            other => panic!("sending {} bytes: {other:?}, expected TooLarge", max + 1),
        }
    }
    match conn.send(&vec![0u8; 10 * capacity]) {
        Err(Error::TooLarge { len, max: m }) => assert_eq!((len, m), (10 * capacity, max)),
        other => panic!("sending 10 rings: {other:?}, expected TooLarge"),
    }
    // Nothing of the refused messages was sent: the next messages arrive intact, and the
    // largest allowed one (a frame filling the whole ring, after padding) still fits.
    let mut buf = vec![0u8; capacity];
    round_trip(&mut conn, b"small", &mut buf);
    let largest: Vec<u8> = (0..max).map(|i| (i * 7) as u8).collect();
    round_trip(&mut conn, &largest, &mut buf);
    round_trip(&mut conn, b"after", &mut buf);
    drop(conn);
    peer.wait_success();
}

/// Small messages and large ones (the receive path copies a frame of 64 KiB or more out of
/// line, timing it for a `Blocking` receiver) arrive intact through `recv`, `recv_vec` and
/// `recv_sample` in every wait strategy, and a buffer too small for either is an error
/// that leaves the message queued.
#[test]
fn small_and_large_messages_arrive_through_every_receive_call_and_strategy() {
    for wait in [
        WaitStrategy::BusyPoll,
        WaitStrategy::Adaptive,
        WaitStrategy::Blocking,
    ] {
        let ep = harness::endpoint(&format!("sizes-{wait:?}"));
        let listener = harness::bind(&ep, Options::new().wait_strategy(wait));
        let mut peer = Peer::spawn("echo", &ep, &[]);
        let mut conn = harness::accept(&listener).expect("accepting the echo peer");
        for len in [100, 64 * 1024 - 1, 64 * 1024, 200 * 1024] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            conn.send_timeout(&msg, STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{wait:?}: sending {len} bytes: {e}"));
            let mut small = vec![0u8; len - 1];
            match conn.recv_timeout(&mut small, STEP_TIMEOUT) {
                Err(Error::BufferTooSmall { len: l, buf }) => assert_eq!((l, buf), (len, len - 1)),
                other => panic!("{wait:?}: {len} bytes into {}: {other:?}", len - 1),
            }
            let mut buf = vec![0u8; len + 1];
            let n = conn
                .recv_timeout(&mut buf, STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{wait:?}: receiving {len} bytes: {e}"));
            assert!(
                n == len && buf[..n] == msg[..],
                "{wait:?}: {len} bytes by recv"
            );
            conn.send_timeout(&msg, STEP_TIMEOUT)
                .expect("sending again");
            let got = conn.recv_vec().expect("recv_vec");
            assert!(got == msg, "{wait:?}: {len} bytes by recv_vec");
            conn.send_timeout(&msg, STEP_TIMEOUT)
                .expect("sending a third time");
            let sample = conn.recv_sample_timeout(STEP_TIMEOUT).expect("recv_sample");
            let mut copy = vec![0u8; len];
            assert!(
                sample.copy_to(&mut copy) == len && copy == msg,
                "{wait:?}: {len} bytes by recv_sample"
            );
        }
        drop(conn);
        peer.wait_success();
    }
}

#[test]
fn conn_moves_to_another_thread() {
    fn assert_send<T: Send + 'static>() {}
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send::<Conn>();
    assert_send_sync::<Listener>();
    assert_send_sync::<Error>();

    let ep = harness::endpoint("thread");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn("echo", &ep, &[]);
    let mut conn = harness::accept(&listener).expect("accepting the echo peer");
    let mut buf = [0u8; 64];
    round_trip(&mut conn, b"from the test thread", &mut buf);
    let mut conn = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for i in 0..100u32 {
            round_trip(&mut conn, &i.to_le_bytes(), &mut buf);
        }
        conn
    })
    .join()
    .expect("the other thread");
    round_trip(&mut conn, b"back on the test thread", &mut buf);
    drop(conn);
    peer.wait_success();
}

/// One listener, three writer processes at once: each connection is its own ordered,
/// intact stream, whatever the interleaving.
#[test]
fn listener_serves_several_peer_processes_at_once() {
    let ep = harness::endpoint("several");
    let listener = harness::bind(&ep, Options::new());
    let (count, max_len) = (20_000u64, 1024usize);
    let seeds = [101u64, 202, 303];
    let peers: Vec<Peer> = seeds
        .iter()
        .map(|seed| Peer::spawn("stream", &ep, &stream_env(count, *seed, max_len).vars()))
        .collect();
    let mut streams: Vec<(Conn, message::SplitMix64)> = (0..peers.len())
        .map(|_| {
            let conn = harness::accept(&listener).expect("accepting a writer");
            let i = peers
                .iter()
                .position(|p| p.pid().as_raw_nonzero().get() == conn.peer_pid())
                .expect("the peer pid is one of our children");
            (conn, message::lengths(seeds[i]))
        })
        .collect();
    let mut buf = vec![0u8; max_len];
    for seq in 0..count {
        for (conn, lens) in &mut streams {
            let n = conn
                .recv_timeout(&mut buf, STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("message #{seq} from pid {}: {e}", conn.peer_pid()));
            if let Err(what) = message::verify(seq, lens.below_or_eq(max_len), &buf[..n]) {
                panic!("pid {}: {what}", conn.peer_pid());
            }
        }
    }
    for mut peer in peers {
        peer.expect("done");
        peer.wait_success();
    }
}
