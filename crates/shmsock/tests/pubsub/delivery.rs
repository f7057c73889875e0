//! Every subscriber receives every message in order; a late one starts at the next
//! message; pub/sub and Conn endpoints refuse each other.

use std::time::{Duration, Instant};

use shmsock::{Error, Options};

use crate::fanout::{self, summary};
use crate::roles::{LATE_ENV, MAX_LEN_ENV, SEED_ENV};
use crate::stream::{End, Stream};
use shmsock_testkit::assert_mentions;
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};

const FANOUT_COUNT: u64 = 100_000;

#[test]
fn every_subscriber_of_three_receives_every_message_in_order() {
    let _heavy = harness::cpu_heavy_test();
    let ep = harness::endpoint("fanout");
    let mut publisher = fanout::bind(&ep, Options::new());
    let (seed, max_len) = (0xfa_0001, 512);
    let mut subs = fanout::subscribers(&mut publisher, 3, seed, max_len);
    let mut stream = Stream::new(seed, max_len);
    let t = Instant::now();
    let longest = stream.send_many(&mut publisher, FANOUT_COUNT, STEP_TIMEOUT);
    drop(publisher);
    let took = t.elapsed();
    for sub in &mut subs {
        let s = summary(sub);
        s.assert_accounts_for(FANOUT_COUNT, End::Closed);
        assert_eq!(s.num("missed"), 0, "Overflow::Block never drops: {s}");
        assert_eq!(s.num("first_seq"), 0, "{s}");
        sub.wait_success();
    }
    eprintln!(
        "{FANOUT_COUNT} messages to 3 subscribers in {took:.2?} ({:.0} msgs/s, longest send {longest:.1?})",
        FANOUT_COUNT as f64 / took.as_secs_f64()
    );
}

/// Messages published before a subscriber joined are not delivered to it; the first one
/// after is, and everything after that.
#[test]
fn late_subscriber_starts_at_the_next_message() {
    let ep = harness::endpoint("late");
    let mut publisher = fanout::bind(&ep, Options::new());
    let (seed, max_len) = (0x1a7e, 300);
    let mut stream = Stream::new(seed, max_len);
    let mut early = fanout::subscribers(&mut publisher, 1, seed, max_len);
    stream.send_many(&mut publisher, 10, STEP_TIMEOUT);

    let late = fanout::subscribers_late(&mut publisher, 1, seed, max_len, 1);
    let mut late = late.into_iter().next().expect("one late subscriber");
    stream.send_many(&mut publisher, 1000, STEP_TIMEOUT);
    drop(publisher);

    let s = summary(&mut early[0]);
    s.assert_accounts_for(1010, End::Closed);
    assert_eq!(s.num("missed"), 0, "{s}");
    let s = summary(&mut late);
    assert_eq!(
        s.num("first_seq"),
        10,
        "the late subscriber started elsewhere: {s}"
    );
    assert_eq!(s.num("delivered"), 1000, "{s}");
    assert_eq!(s.num("missed"), 0, "{s}");
    assert_eq!(s.num("next"), 1010, "{s}");
    assert_eq!(s.str("end"), "Closed", "{s}");
}

/// A subscriber that joins while a `Block` publisher streams into a small ring starts at
/// some message and then misses nothing: joining never shows up as `Lagged`.
#[test]
fn late_subscriber_joining_a_streaming_block_publisher_never_lags() {
    let ep = harness::endpoint("latestream");
    let capacity = shmsock::RING_CAPACITY_MIN_BYTES;
    let mut publisher = fanout::bind(&ep, Options::new().ring_capacity(capacity));
    let (seed, max_len) = (0x5_7ea3, 200);
    let mut stream = Stream::new(seed, max_len);
    let (seed_s, max_s) = (seed.to_string(), max_len.to_string());
    let mut late = Peer::spawn(
        "subscribe",
        &ep,
        &[(SEED_ENV, &seed_s), (MAX_LEN_ENV, &max_s), (LATE_ENV, "1")],
    );
    // Stream (laps of a 4 KiB ring every ~40 messages) while it connects (in a few ms;
    // seconds under valgrind).
    let deadline = Instant::now() + STEP_TIMEOUT;
    while publisher.subscriber_count() == 0 {
        if Instant::now() >= deadline {
            late.expect("ready"); // says how the child failed
            panic!(
                "the subscriber reported ready but never joined, then {:?}",
                late.expect("")
            );
        }
        stream.send_many(&mut publisher, 50, STEP_TIMEOUT);
    }
    late.expect("ready");
    let joined_at = stream.sent();
    stream.send_many(&mut publisher, 5000, STEP_TIMEOUT);
    let sent = stream.sent();
    drop(publisher);
    let s = summary(&mut late);
    eprintln!("joined around message {joined_at}: {s}");
    assert_eq!(s.num("missed"), 0, "a Block subscriber lagged: {s}");
    assert_eq!(s.num("next"), sent as i64, "{s}");
    assert!(s.num("first_seq") <= joined_at as i64, "{s}");
    assert_eq!(s.str("end"), "Closed", "{s}");
}

/// Checks a child's report of a refused handshake: a `Handshake` error naming what the
/// peer is and what was wanted.
#[track_caller]
fn assert_refused(said: &str, peer_is: &str, wanted: &str) {
    assert!(said.starts_with("Handshake"), "{said}");
    assert_mentions(
        said,
        &[&format!("the peer is a {peer_is}"), &format!("a {wanted}")],
    );
}

#[test]
fn subscriber_cannot_connect_to_a_conn_listener_and_vice_versa() {
    // A Subscriber against a Conn listener.
    let ep = harness::endpoint("rolesconn");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn("subscribe_to_anything", &ep, &[]);
    let accepted = listener.accept_timeout(STEP_TIMEOUT);
    let said = peer.expect("error");
    assert_refused(&said, "Conn", "Publisher");
    assert!(
        accepted.is_err(),
        "the listener accepted a subscriber: {accepted:?}"
    );
    peer.wait_success();

    // A Conn against a publisher.
    let ep = harness::endpoint("rolespub");
    let mut publisher = fanout::bind(&ep, Options::new());
    let mut peer = Peer::spawn("connect_to_anything", &ep, &[]);
    let said = peer.expect("error");
    assert_refused(&said, "Publisher", "Conn");
    peer.wait_success();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(publisher.subscriber_count(), 0);
    // The publisher still serves real subscribers.
    let mut sub = shmsock::Subscriber::connect(&ep).expect("subscribing after the refusal");
    shmsock_testkit::pubsub::wait_for_subscribers(&mut publisher, 1);
    publisher.send(b"still here").expect("send");
    let mut buf = [0u8; 32];
    let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).expect("recv");
    assert_eq!(&buf[..n], b"still here");
    drop(publisher);
    assert!(matches!(
        sub.recv_timeout(&mut buf, STEP_TIMEOUT),
        Err(Error::PeerClosed { .. })
    ));
}
