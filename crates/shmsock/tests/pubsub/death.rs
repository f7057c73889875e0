//! Publisher death reaches subscribers after its messages; subscriber death never blocks
//! the publisher.

use std::time::{Duration, Instant};

use shmsock::{Error, Options, Subscriber, WaitStrategy};

use crate::fanout::{self, raw_pid};
use crate::stream::Tally;
use shmsock_testkit::child::COUNT_ENV;
use shmsock_testkit::harness::{self, Peer, PEER_DEATH_BOUND, STEP_TIMEOUT};
use shmsock_testkit::message::stream_env;

const STRATEGIES: [WaitStrategy; 3] = [
    WaitStrategy::BusyPoll,
    WaitStrategy::Adaptive,
    WaitStrategy::Blocking,
];

/// Receives messages `0..count` into `tally`.
fn receive(sub: &mut Subscriber, tally: &mut Tally, count: u64, max_len: usize) {
    let mut buf = vec![0u8; max_len];
    for i in 0..count {
        let n = sub
            .recv_timeout(&mut buf, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("receiving message #{i} of {count}: {e}"));
        tally
            .message(&buf[..n])
            .unwrap_or_else(|what| panic!("{what}"));
    }
}

#[test]
fn dead_publisher_is_reported_after_its_messages() {
    let _timing = harness::timing_test();
    // 1000 messages of at most 700 bytes fit in the default 1 MiB ring: the publisher never
    // waits for us, so all of them are published before it ends.
    let (count, seed, max_len) = (1000u64, 0xdead, 700usize);
    let env = stream_env(count, seed, max_len);
    for killed in [true, false] {
        let ep = harness::endpoint("deadpub");
        let role = if killed {
            "publish_then_hang"
        } else {
            "publish_then_close"
        };
        let mut peer = Peer::spawn(role, &ep, &env.vars());
        peer.expect("bound");
        let mut sub = Subscriber::connect(&ep).expect("subscribing");
        assert_eq!(sub.publisher_pid(), raw_pid(&peer));
        assert_eq!(peer.expect("sent"), count.to_string());
        if killed {
            peer.kill();
            let status = peer.wait();
            assert!(!status.success(), "the publisher was killed: {status}");
        } else {
            peer.expect("closed");
            peer.wait_success();
        }
        let mut tally = Tally::new(seed, max_len, false);
        receive(&mut sub, &mut tally, count, max_len);
        let mut buf = vec![0u8; max_len];
        let t = Instant::now();
        let end = sub.recv_timeout(&mut buf, STEP_TIMEOUT);
        let took = t.elapsed();
        match (killed, &end) {
            (true, Err(Error::PeerGone { pid, endpoint }))
            | (false, Err(Error::PeerClosed { pid, endpoint })) => {
                assert_eq!(*pid, raw_pid(&peer));
                assert_eq!(*endpoint, ep);
            }
            _ => panic!("after {count} messages (killed: {killed}): {end:?}"),
        }
        assert!(
            took < PEER_DEATH_BOUND,
            "the end took {took:?} after the ring was empty"
        );
        // The end is sticky.
        let again = sub.try_recv(&mut buf);
        assert_eq!(
            format!("{again:?}"),
            format!("{end:?}"),
            "a second receive after the end"
        );
    }
}

/// A subscriber that never reads holds a `Block` publisher back; SIGKILL it while the
/// publisher waits, and the publisher goes on within the peer-death bound.
#[test]
fn sigkilled_subscriber_never_blocks_a_block_publisher() {
    let _timing = harness::timing_test();
    for strategy in STRATEGIES {
        let ep = harness::endpoint("deadsub");
        let capacity = shmsock::RING_CAPACITY_MIN_BYTES;
        let options = Options::new()
            .ring_capacity(capacity)
            .wait_strategy(strategy);
        let mut publisher = fanout::bind(&ep, options);
        let mut peer = Peer::spawn("idle_subscriber", &ep, &[]);
        peer.expect("ready");
        shmsock_testkit::pubsub::wait_for_subscribers(&mut publisher, 1);

        let msg = [0x5au8; 500];
        let mut queued = 0;
        loop {
            match publisher.try_send(&msg) {
                Ok(()) => queued += 1,
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{strategy:?}: filling the ring: {e}"),
            }
            assert!(queued <= capacity / msg.len(), "the ring never fills");
        }
        // Still full a little later: the idle subscriber really holds us back.
        assert!(matches!(
            publisher.send_timeout(&msg, Duration::from_millis(20)),
            Err(Error::SlowSubscriber { .. })
        ));

        let killer = harness::kill_after(peer.pid(), Duration::from_millis(60));
        let sent = publisher.send_timeout(&msg, STEP_TIMEOUT);
        let returned = Instant::now();
        let killed = killer.join().expect("the killer thread");
        sent.unwrap_or_else(|e| panic!("{strategy:?}: send after the subscriber died: {e}"));
        let took = returned.duration_since(killed);
        eprintln!("{strategy:?}: the publisher went on {took:.1?} after the kill");
        assert!(
            took < PEER_DEATH_BOUND + shmsock::PEER_CHECK_INTERVAL,
            "{strategy:?}: the publisher went on {took:?} after the kill"
        );
        assert_eq!(publisher.subscriber_count(), 0);
        for _ in 0..10 * queued {
            publisher
                .try_send(&msg)
                .unwrap_or_else(|e| panic!("{strategy:?}: nobody left to wait for: {e}"));
        }
    }
}

/// A publisher dropped before it ever sent (or counted its subscribers) still says goodbye
/// to every subscriber that had joined: `PeerClosed`, not `PeerGone`.
#[test]
fn publisher_dropped_before_any_send_is_peer_closed() {
    let ep = harness::endpoint("dropearly");
    let publisher = fanout::bind(&ep, Options::new());
    let mut sub = Subscriber::connect(&ep).expect("subscribing");
    drop(publisher);
    let mut buf = [0u8; 16];
    match sub.recv_timeout(&mut buf, STEP_TIMEOUT) {
        Err(Error::PeerClosed { .. }) => {}
        other => panic!("after a clean drop: {other:?}, expected PeerClosed"),
    }
}

/// Subscribers of a `DropOldest` publisher (which never waits for them, so never looks at
/// them while blocked) that die are still released: the publisher does not accumulate
/// their sockets and mappings.
#[test]
fn dead_subscribers_of_a_drop_oldest_publisher_are_released() {
    let rounds = 20;
    let ep = harness::endpoint("churn");
    let mut publisher = Peer::spawn("churn_publisher", &ep, &[(COUNT_ENV, &rounds.to_string())]);
    for _ in 0..rounds {
        publisher.expect("round");
    }
    let extra: i64 = publisher
        .expect("extra_fds")
        .parse()
        .expect("a number of fds");
    assert!(
        extra < 3,
        "after {rounds} subscribers died, the publisher holds {extra} more fds"
    );
    publisher.wait_success();
}
