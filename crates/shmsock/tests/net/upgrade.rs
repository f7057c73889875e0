//! Local `tcp://` and `unix://` subscribers moving to their publisher's shared-memory ring
//! by themselves ([`Options::upgrade`]), and publishers on several endpoints.
//!
//! Every message starts with its sequence number (8 bytes, little-endian), so a subscriber
//! checks that the switch from the connection to the ring loses and repeats nothing. The
//! subscribers that must prove they are another process run as one (this binary
//! re-executed, role `upgrade_sub`); pyzmq subscribes to the same endpoint meanwhile and
//! must receive every message; peers that lie about their ring, guess tokens, or die in the
//! middle of the switch cost the others nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmsock::{runtime_dir, CurveKeyPair, Error, Options, Publisher, Subscriber};
use shmsock_testkit::child::report;
use shmsock_testkit::harness::Peer;
use shmsock_testkit::process;
use shmsock_testkit::pubsub::wait_for_at_least;

use crate::common::{bind_endpoint, frame, greeting, Raw, SCHEMES, STEP_TIMEOUT};
use crate::pyzmq::PyPeer;

/// Messages an `upgrade_sub` child reads after it moved to the ring before it says `done`.
const AFTER_UPGRADE: u64 = 20_000;

/// Message `seq`: its number, then filler up to 64 bytes.
fn numbered(seq: u64) -> [u8; 64] {
    let mut m = [0x5a; 64];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

/// The sequence number of `sub`'s next message.
fn next_seq(sub: &mut Subscriber) -> u64 {
    let mut buf = [0u8; 64];
    let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).expect("receiving");
    seq_of(&buf[..n])
}

fn seq_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().expect("8 bytes of sequence number"))
}

/// A publisher thread sending numbered messages as fast as its subscribers take them, until
/// stopped; returns the publisher and how many it sent.
struct Streamer {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: JoinHandle<(Publisher, u64)>,
}

impl Streamer {
    fn start(mut publisher: Publisher) -> Streamer {
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, n) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let mut seq = 0;
            while !s.load(Ordering::Relaxed) {
                match publisher.send_timeout(&numbered(seq), Duration::from_millis(100)) {
                    Ok(()) => {
                        seq += 1;
                        n.store(seq, Ordering::Relaxed);
                    }
                    Err(Error::SlowSubscriber { .. }) => {}
                    Err(e) => panic!("publishing message {seq}: {e}"),
                }
            }
            (publisher, seq)
        });
        Streamer { stop, sent, thread }
    }

    fn stop(self) -> (Publisher, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the publisher thread")
    }
}

/// Child role `upgrade_sub`: connects to the endpoint, reports `connected`, then checks that
/// the sequence numbers it receives follow each other; reports `upgraded <seq>` when it
/// moved to the ring, and `done <first> <last>` after [`AFTER_UPGRADE`] more messages (or
/// `gap ...` and exits 1).
pub fn upgrade_sub(endpoint: &str) {
    let mut sub = Subscriber::connect(endpoint).expect("connecting");
    report("connected");
    let mut buf = [0u8; 256];
    let mut next = None::<u64>;
    let (mut first, mut upgraded_at) = (0, None::<u64>);
    loop {
        let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).expect("receiving");
        let seq = seq_of(&buf[..n]);
        match next {
            None => first = seq,
            Some(want) if want != seq => {
                report(format!("gap expected {want} got {seq} (first {first})"));
                std::process::exit(1);
            }
            Some(_) => {}
        }
        next = Some(seq + 1);
        if upgraded_at.is_none() && sub.is_shared_memory() {
            upgraded_at = Some(seq);
            report(format!("upgraded {seq}"));
        }
        if upgraded_at.is_some_and(|u| seq >= u + AFTER_UPGRADE) {
            report(format!("done {first} {seq}"));
            return;
        }
    }
}

/// Waits for a child's `done` and checks its numbers.
fn expect_done(child: &mut Peer) {
    let upgraded = child.expect("upgraded");
    let done = child.expect("done");
    let nums: Vec<u64> = done.split(' ').map(|w| w.parse().unwrap()).collect();
    let at: u64 = upgraded.parse().unwrap();
    assert!(
        nums[0] <= at && at + AFTER_UPGRADE <= nums[1],
        "{upgraded} / {done}"
    );
    child.wait_success();
}

#[test]
fn a_subscriber_in_another_process_moves_to_shared_memory_mid_stream_losing_nothing() {
    for scheme in SCHEMES {
        let publisher = Publisher::bind(&bind_endpoint(scheme)).unwrap();
        let ep = publisher.endpoint().to_owned();
        let streamer = Streamer::start(publisher);
        // Join a stream under way: the first messages come over the connection.
        while streamer.sent.load(Ordering::Relaxed) < 10_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut child = Peer::spawn("upgrade_sub", &ep, &[]);
        child.expect("connected");
        expect_done(&mut child);
        streamer.stop();
    }
}

#[test]
fn a_pyzmq_subscriber_on_the_same_endpoint_receives_every_message() {
    if !process::pyzmq_available() {
        return; // pyzmq_available() fails under CI=true, says why otherwise
    }
    const COUNT: u64 = 200_000;
    for scheme in SCHEMES {
        let mut publisher = Publisher::bind(&bind_endpoint(scheme)).unwrap();
        let ep = publisher.endpoint().to_owned();
        let mut py = PyPeer::spawn_with("upgrade_peer.py", &ep, &COUNT.to_string(), &[]);
        assert_eq!(py.line(), "READY");
        wait_for_at_least(&mut publisher, 1);
        let mut child = Peer::spawn("upgrade_sub", &ep, &[]);
        child.expect("connected");
        wait_for_at_least(&mut publisher, 2);
        for seq in 0..COUNT {
            publisher
                .send_timeout(&numbered(seq), STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{scheme:?}: message {seq}: {e}"));
        }
        assert_eq!(py.line(), format!("OK {COUNT}"), "{scheme:?}");
        // Our subscriber moved at the first message and needs AFTER_UPGRADE more.
        let streamer = Streamer::start(publisher);
        expect_done(&mut child);
        streamer.stop();
    }
}

#[test]
fn a_subscriber_that_turns_upgrade_off_stays_on_the_network() {
    for scheme in SCHEMES {
        let mut publisher = Publisher::bind(&bind_endpoint(scheme)).unwrap();
        let off = Options::new().upgrade(false);
        let mut sub = Subscriber::connect_with(publisher.endpoint(), off).unwrap();
        let mut on = Subscriber::connect(publisher.endpoint()).unwrap();
        wait_for_at_least(&mut publisher, 2);
        // The ring's accept thread queues the subscriber an instant after acknowledging
        // it: it moves at one of the first messages, whichever follows that.
        let mut seq = 0;
        while seq < 100 || !on.is_shared_memory() {
            assert!(seq < 10_000, "{scheme:?}: the default never moved");
            publisher.send(&numbered(seq)).unwrap();
            assert_eq!(next_seq(&mut sub), seq);
            assert_eq!(next_seq(&mut on), seq);
            seq += 1;
        }
        assert!(!sub.is_shared_memory(), "{scheme:?}: upgrade(false)");
        // Counted once each, however they travel.
        assert_eq!(publisher.subscriber_count(), 2);
    }
}

#[test]
fn a_publisher_that_turns_upgrade_off_keeps_everyone_on_the_network() {
    let options = Options::new().upgrade(false);
    let mut publisher = Publisher::bind_with("tcp://127.0.0.1:0", options).unwrap();
    let mut sub = Subscriber::connect(publisher.endpoint()).unwrap();
    wait_for_at_least(&mut publisher, 1);
    publisher.send(&numbered(7)).unwrap();
    assert_eq!(next_seq(&mut sub), 7);
    assert!(!sub.is_shared_memory());
}

#[test]
fn curve_subscribers_move_too_and_the_offer_is_sealed() {
    let server = CurveKeyPair::generate();
    let options = Options::new().curve_secret(server.clone());
    let mut publisher = Publisher::bind_with("tcp://127.0.0.1:0", options).unwrap();
    let client = Options::new().curve_server(server.public());
    let mut sub = Subscriber::connect_with(publisher.endpoint(), client).unwrap();
    wait_for_at_least(&mut publisher, 1);
    for seq in 0..1000 {
        publisher.send(&numbered(seq)).unwrap();
        assert_eq!(next_seq(&mut sub), seq);
    }
    assert!(sub.is_shared_memory());
    // The offer never crosses in clear: a NULL peer is refused before any READY, and the
    // ring's name appears nowhere in what a raw CURVE greeting gets back.
    let mut raw =
        std::net::TcpStream::connect(publisher.endpoint().trim_start_matches("tcp://")).unwrap();
    use std::io::{Read, Write};
    raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    raw.write_all(&greeting(1)).unwrap();
    raw.write_all(&crate::common::ready("SUB")).unwrap();
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("upgrade."),
        "the ring was named to an unauthenticated peer"
    );
}

/// The hidden ring of the network-only publisher of this process bound to `endpoint`: its
/// name ends with the endpoint (non-alphanumerics as '-').
fn hidden_ring_of(endpoint: &str) -> String {
    let prefix = format!("upgrade.{}.", std::process::id());
    let tail: String = endpoint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = runtime_dir().unwrap();
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find_map(|f| {
            let name = f.strip_suffix(".sock")?;
            (name.starts_with(&prefix) && name.ends_with(&tail)).then(|| name.to_owned())
        })
        .unwrap_or_else(|| panic!("no {prefix}*{tail}.sock in {}", dir.display()))
}

#[test]
fn the_hidden_ring_refuses_subscribers_without_a_token() {
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let name = hidden_ring_of(publisher.endpoint());
    let err = Subscriber::connect(&format!("shm://{name}")).unwrap_err();
    assert!(
        err.to_string().contains("no token")
            || matches!(err, Error::Refused { .. } | Error::Handshake { .. }),
        "{err}"
    );
    assert_eq!(publisher.subscriber_count(), 0);
    publisher.send(&numbered(0)).unwrap();
}

/// Child role `victim_publisher`: an `shm://` publisher that counts its subscribers.
pub fn victim_publisher(endpoint: &str) {
    let mut publisher = Publisher::bind(endpoint).expect("binding the victim");
    report("bound");
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Instant::now() < deadline {
        publisher.send(b"victim's secret").expect("publishing");
        report(format!("subscribers {}", publisher.subscriber_count()));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_publisher_that_offers_someone_elses_ring_is_not_believed() {
    // A real shm:// publisher in another process...
    let victim_name = format!("victim-{}", std::process::id());
    let mut victim = Peer::spawn("victim_publisher", &format!("shm://{victim_name}"), &[]);
    victim.expect("bound");
    // ...and a hand-made ZMTP publisher that offers its ring as if it were its own.
    let offer = format!("{victim_name} 0123456789abcdef");
    let (ep, t) =
        Raw::publisher_with_ready(&[("X-Shmsock-Shm", offer.as_bytes())], |raw: &mut Raw| {
            for _ in 0..50 {
                raw.send(&frame(0, b"from the network"));
                std::thread::sleep(Duration::from_millis(10));
            }
        });
    let mut sub = Subscriber::connect(&ep).unwrap();
    let mut buf = [0u8; 64];
    let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
    assert_eq!(&buf[..n], b"from the network");
    assert!(
        !sub.is_shared_memory(),
        "moved to a ring its publisher does not own"
    );
    // The victim never had a subscriber: ours refused it before its hello.
    for _ in 0..5 {
        assert_eq!(victim.expect("subscribers"), "0");
    }
    drop(sub);
    let _ = t.join();
}

#[test]
fn subscribers_killed_in_the_middle_of_moving_cost_the_others_nothing() {
    let publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let ep = publisher.endpoint().to_owned();
    let streamer = Streamer::start(publisher);
    for k in 0..6u64 {
        let child = Peer::spawn("upgrade_sub", &ep, &[]);
        // Kill it at a different moment each time: during the handshake, while it joins
        // the ring, around the handover.
        std::thread::sleep(Duration::from_micros(500 + k * 1500));
        child.kill();
    }
    let mut survivor = Peer::spawn("upgrade_sub", &ep, &[]);
    survivor.expect("connected");
    expect_done(&mut survivor);
    let (mut publisher, sent) = streamer.stop();
    assert!(sent > AFTER_UPGRADE);
    // The dead are forgotten.
    let deadline = Instant::now() + STEP_TIMEOUT;
    while publisher.subscriber_count() > 0 {
        assert!(Instant::now() < deadline, "dead subscribers still counted");
        publisher.send(&numbered(0)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_publisher_serves_shm_unix_and_tcp_subscribers_at_once() {
    let shm = format!("shm://multi-{}", std::process::id());
    let unix = bind_endpoint(crate::common::Scheme::Unix);
    let mut publisher =
        Publisher::bind_all(&["tcp://127.0.0.1:0", &unix, &shm], Options::new()).unwrap();
    let eps = publisher.endpoints().to_vec();
    assert_eq!(eps.len(), 3);
    assert_eq!(eps[0], shm, "shm:// first");
    assert!(eps[1].starts_with("tcp://127.0.0.1:") && !eps[1].ends_with(":0"));
    assert_eq!(eps[2], unix);
    let off = Options::new().upgrade(false);
    let mut subs: Vec<Subscriber> = vec![
        Subscriber::connect(&eps[0]).unwrap(),
        Subscriber::connect_with(&eps[1], off.clone()).unwrap(),
        Subscriber::connect_with(&eps[2], off).unwrap(),
        Subscriber::connect(&eps[1]).unwrap(),
    ];
    wait_for_at_least(&mut publisher, 4);
    for seq in 0..1000 {
        publisher.send(&numbered(seq)).unwrap();
    }
    let mut buf = [0u8; 64];
    for (i, sub) in subs.iter_mut().enumerate() {
        for seq in 0..1000 {
            let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
            assert_eq!(seq_of(&buf[..n]), seq, "subscriber {i}");
        }
    }
    // (It moves at one of the first messages; in lockstep until it has.)
    let mut seq = 1000;
    while !subs[3].is_shared_memory() {
        assert!(seq < 10_000, "the tcp subscriber never moved");
        publisher.send(&numbered(seq)).unwrap();
        for sub in &mut subs {
            assert_eq!(next_seq(sub), seq);
        }
        seq += 1;
    }
    assert!(subs[0].is_shared_memory());
    assert!(!subs[1].is_shared_memory() && !subs[2].is_shared_memory());
    // The tcp subscriber that moved reads the user's shm:// ring: no hidden ring was made.
    let hidden = format!("upgrade.{}.", std::process::id());
    let names = std::fs::read_dir(runtime_dir().unwrap()).unwrap();
    assert!(!names
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .any(|f| f.starts_with(&hidden) && f.contains("multi")));
    // One more endpoint, later: its subscribers get what is sent from then on.
    let late = bind_endpoint(crate::common::Scheme::Tcp);
    let late = publisher.add_endpoint(&late).unwrap().to_owned();
    assert_eq!(late, publisher.endpoints()[3]);
    let mut sub = Subscriber::connect(&late).unwrap();
    wait_for_at_least(&mut publisher, 5);
    publisher.send(&numbered(seq)).unwrap();
    assert_eq!(next_seq(&mut sub), seq);
}

#[test]
fn a_large_message_still_reaches_the_network_while_nobody_reads_the_hidden_ring() {
    let options = Options::new().ring_capacity(64 * 1024);
    let mut publisher = Publisher::bind_with("tcp://127.0.0.1:0", options).unwrap();
    let off = Options::new().upgrade(false);
    let mut remote = Subscriber::connect_with(publisher.endpoint(), off).unwrap();
    wait_for_at_least(&mut publisher, 1);
    let big = vec![9u8; 1 << 20];
    publisher.send(&big).unwrap();
    assert_eq!(remote.recv_vec().unwrap(), big);
    // Once a local subscriber reads the ring, a message it cannot hold is refused, saying so.
    let mut local = Subscriber::connect(publisher.endpoint()).unwrap();
    wait_for_at_least(&mut publisher, 2);
    // It moves at a message sent after it joined the ring (the first one, or soon after).
    let mut seq = 0;
    while !local.is_shared_memory() {
        assert!(seq < 100, "never moved");
        publisher.send(&numbered(seq)).unwrap();
        assert_eq!(next_seq(&mut local), seq);
        assert_eq!(next_seq(&mut remote), seq);
        seq += 1;
    }
    match publisher.send(&big) {
        Err(Error::TooLarge { len, max }) => assert!(len == 1 << 20 && max < 64 * 1024),
        other => panic!("{other:?}"),
    }
}

/// Child role `upgrade_pub`: binds the endpoint, reports `bound`, and publishes numbered
/// messages until killed.
pub fn upgrade_pub(endpoint: &str) {
    let publisher = Publisher::bind(endpoint).expect("binding");
    report("bound");
    let streamer = Streamer::start(publisher);
    std::thread::sleep(STEP_TIMEOUT * 3);
    streamer.stop();
}

/// Receives from `sub` until it reads shared memory (bounded), checking order meanwhile.
fn until_moved(sub: &mut Subscriber, what: &str) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last = None::<u64>;
    while !sub.is_shared_memory() {
        assert!(
            Instant::now() < deadline,
            "{what}: never moved to shared memory"
        );
        let seq = next_seq(sub);
        assert!(
            last.is_none_or(|l| seq == l + 1),
            "{what}: {last:?} then {seq}"
        );
        last = Some(seq);
    }
    // And on the ring, in order.
    let mut prev = next_seq(sub);
    for _ in 0..1000 {
        let seq = next_seq(sub);
        assert_eq!(seq, prev + 1, "{what}: on the ring");
        prev = seq;
    }
}

#[test]
fn when_the_publisher_dies_before_or_after_the_move_the_subscriber_comes_back_and_moves_again() {
    let ep = bind_endpoint(crate::common::Scheme::Unix);
    for kill_after_move in [false, true] {
        let mut first = Peer::spawn("upgrade_pub", &ep, &[]);
        first.expect("bound");
        let mut sub = Subscriber::connect(&ep).unwrap();
        if kill_after_move {
            until_moved(&mut sub, "first publisher");
        }
        // Dies with the subscriber joined to its ring, before or after the handover.
        first.kill();
        first.wait();
        let mut second = Peer::spawn("upgrade_pub", &ep, &[]);
        second.expect("bound");
        // The subscriber notices, reconnects over the network and moves to the new ring.
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "never heard from the second publisher"
            );
            let seq = next_seq(&mut sub);
            // The second publisher's stream starts again at 0: a small number is its.
            if seq < 1_000_000 && sub.publisher_pid() == second.pid().as_raw_nonzero().get() {
                break;
            }
        }
        until_moved(&mut sub, "second publisher");
        second.kill();
        second.wait();
    }
}

#[test]
fn topics_hold_across_the_move() {
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let mut sub = Subscriber::connect(publisher.endpoint()).unwrap();
    sub.subscribe(b"keep").unwrap();
    sub.unsubscribe(b"").unwrap();
    wait_for_at_least(&mut publisher, 1);
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    for k in 0..2000u32 {
        let topic: &[u8] = if k % 3 == 0 { b"keep" } else { b"drop" };
        publisher.send(&[topic, &k.to_le_bytes()].concat()).unwrap();
        if k % 3 == 0 {
            let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
            assert!(buf.starts_with(b"keep"), "{:?}", &buf[..n]);
            got.push(u32::from_le_bytes(buf[4..8].try_into().unwrap()));
        }
    }
    assert!(sub.is_shared_memory());
    assert_eq!(got, (0..2000).step_by(3).collect::<Vec<u32>>());
    assert!(matches!(
        sub.recv_timeout(&mut buf, Duration::from_millis(100)),
        Err(Error::TimedOut)
    ));
}

#[test]
fn a_moved_drop_oldest_subscriber_counts_exactly_what_it_lost() {
    let options = Options::new()
        .overflow(shmsock::Overflow::DropOldest)
        .ring_capacity(64 * 1024);
    let mut publisher = Publisher::bind_with("tcp://127.0.0.1:0", options).unwrap();
    let mut sub = Subscriber::connect(publisher.endpoint()).unwrap();
    wait_for_at_least(&mut publisher, 1);
    // Move first (in step), then fall far behind.
    let mut seq = 0;
    while !sub.is_shared_memory() {
        publisher.send(&numbered(seq)).unwrap();
        assert_eq!(next_seq(&mut sub), seq);
        seq += 1;
    }
    let from = seq;
    const BURST: u64 = 50_000;
    for _ in 0..BURST {
        publisher.send(&numbered(seq)).unwrap();
        seq += 1;
    }
    let (mut delivered, mut lost) = (0u64, 0u64);
    let mut buf = [0u8; 64];
    let mut expected = from;
    while expected < seq {
        match sub.recv_timeout(&mut buf, STEP_TIMEOUT) {
            Ok(n) => {
                assert_eq!(seq_of(&buf[..n]), expected, "after {lost} lost");
                expected += 1;
                delivered += 1;
            }
            Err(Error::Lagged { missed, .. }) => {
                lost += missed;
                expected += missed;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lost > 0, "a 64 KiB ring cannot hold 50,000 messages");
    assert_eq!(delivered + lost, BURST);
}

#[test]
fn a_subscriber_still_reading_its_connection_never_holds_a_small_ring_back() {
    // A ring of 16 KiB fills in about a hundred messages: a subscriber that joined it but
    // still reads its connection must not hold the writer back, or the writer would wait
    // for a handover that only it can send.
    let options = Options::new().ring_capacity(16 * 1024);
    let publisher = Publisher::bind_with("tcp://127.0.0.1:0", options).unwrap();
    let ep = publisher.endpoint().to_owned();
    let streamer = Streamer::start(publisher);
    for _ in 0..4 {
        let mut child = Peer::spawn("upgrade_sub", &ep, &[]);
        child.expect("connected");
        expect_done(&mut child);
    }
    streamer.stop();
}
