//! Publish/subscribe over `tcp://` and `unix://` (ZeroMQ PUB/SUB), Rust to Rust, and topic
//! semantics that `shm://` shares: prefixes, byte-for-byte payloads, 8 MiB messages, a
//! subscriber that leaves or stalls, a publisher that restarts.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmsock::{Error, Options, Overflow, Publisher, Subscriber};

use shmsock_testkit::pubsub::{wait_for_at_least, wait_for_subscribers};

use crate::common::{assert_too_large, bind_endpoint, payload, Scheme, SCHEMES, STEP_TIMEOUT};

/// `tcp://`, `unix://` and `shm://`: topic semantics are the same on all three.
fn every_scheme() -> Vec<(String, String)> {
    let mut eps: Vec<(String, String)> = SCHEMES
        .iter()
        .map(|&s| (format!("{s:?}"), bind_endpoint(s)))
        .collect();
    let shm = format!("shm://net-pubsub-{}-{}", std::process::id(), eps.len());
    eps.push(("Shm".into(), shm));
    eps
}

/// A subscriber thread: receives `expected.len()` messages, checks them byte for byte,
/// then checks that nothing else arrives; returns the subscriber.
pub fn expect(
    mut sub: Subscriber,
    expected: Vec<Vec<u8>>,
    name: &'static str,
) -> JoinHandle<Subscriber> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 9 << 20];
        for (i, want) in expected.iter().enumerate() {
            let n = sub
                .recv_timeout(&mut buf, STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{name}: message {i}: {e}"));
            assert!(
                buf[..n] == want[..],
                "{name}: message {i} differs: {} bytes, expected {} starting {:?}",
                n,
                want.len(),
                String::from_utf8_lossy(&want[..want.len().min(8)])
            );
        }
        match sub.recv_timeout(&mut buf, Duration::from_millis(300)) {
            Err(Error::TimedOut) => {}
            Ok(n) => panic!(
                "{name}: unexpected message {:?}",
                String::from_utf8_lossy(&buf[..n.min(16)])
            ),
            Err(e) => panic!("{name}: {e}"),
        }
        sub
    })
}

#[test]
fn topic_prefixes_select_messages_byte_for_byte() {
    let topics: [&[u8]; 5] = [b"A", b"AB", b"B", b"CC", b"C"];
    let sizes = [0, 1, 255, 256, 65_536, 8 << 20, 3];
    let messages: Vec<Vec<u8>> = (0..topics.len() * 3)
        .map(|k| {
            [
                topics[k % topics.len()],
                &payload(k, sizes[k % sizes.len()]),
            ]
            .concat()
        })
        .collect();
    let wanted = |prefixes: &[&[u8]]| -> Vec<Vec<u8>> {
        let m = messages.iter();
        m.filter(|m| prefixes.iter().any(|p| m.starts_with(p)))
            .cloned()
            .collect()
    };
    for (scheme, ep) in every_scheme() {
        // A 16 MiB ring (shm://) or subscriber queue (sockets) takes the 8 MiB message.
        let options = Options::new().ring_capacity(16 << 20);
        let mut publisher = Publisher::bind_with(&ep, options).expect("binding");
        let ep = publisher.endpoint().to_owned();
        let all = Subscriber::connect(&ep).unwrap();
        let mut a = Subscriber::connect(&ep).unwrap();
        // Wanted topics first, "everything" cancelled last: the publisher applies them in
        // order, so at no moment does it filter out what we want (ZeroMQ semantics).
        a.subscribe(b"A").unwrap();
        a.unsubscribe(b"").unwrap();
        let mut b_cc = Subscriber::connect(&ep).unwrap();
        b_cc.subscribe(b"B").unwrap();
        b_cc.subscribe(b"CC").unwrap();
        b_cc.subscribe(b"CC").unwrap(); // counted: one unsubscribe leaves it
        b_cc.unsubscribe(b"CC").unwrap();
        b_cc.unsubscribe(b"never subscribed").unwrap();
        b_cc.unsubscribe(b"").unwrap();
        let mut nothing = Subscriber::connect(&ep).unwrap();
        nothing.unsubscribe(b"").unwrap();
        wait_for_at_least(&mut publisher, 4);
        let threads = [
            expect(all, messages.clone(), "everything"),
            expect(a, wanted(&[b"A"]), "A"),
            expect(b_cc, wanted(&[b"B", b"CC"]), "B+CC"),
            expect(nothing, Vec::new(), "nothing"),
        ];
        for m in &messages {
            publisher.send_timeout(m, STEP_TIMEOUT).expect("publishing");
        }
        for t in threads {
            t.join()
                .unwrap_or_else(|_| panic!("{scheme}: a subscriber failed"));
        }
        eprintln!("{scheme}: topics ok");
    }
}

#[test]
fn a_message_too_big_for_the_buffer_is_kept_for_a_filtering_subscriber() {
    for (scheme, ep) in every_scheme() {
        let mut publisher = Publisher::bind(&ep).unwrap();
        let mut sub = Subscriber::connect(publisher.endpoint()).unwrap();
        sub.subscribe(b"big").unwrap();
        sub.unsubscribe(b"").unwrap();
        wait_for_at_least(&mut publisher, 1);
        let big = [&b"big"[..], &payload(1, 5000)].concat();
        publisher.send(&[b"other", &big[..]].concat()).unwrap();
        publisher.send(&big).unwrap();
        publisher.send(b"big small").unwrap();
        let mut small = [0u8; 100];
        let err = sub.recv_timeout(&mut small, STEP_TIMEOUT).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BufferTooSmall {
                    len: 5003,
                    buf: 100
                }
            ),
            "{scheme}: {err}"
        );
        assert_eq!(sub.recv_vec().unwrap(), big, "{scheme}");
        let n = sub.recv_timeout(&mut small, STEP_TIMEOUT).unwrap();
        assert_eq!(&small[..n], b"big small", "{scheme}");
    }
}

#[test]
fn shm_filtering_skips_unwanted_messages_and_lets_lagged_through() {
    let ep = format!("shm://net-lag-{}", std::process::id());
    let options = Options::new()
        .ring_capacity(4096)
        .overflow(Overflow::DropOldest);
    let mut publisher = Publisher::bind_with(&ep, options).unwrap();
    let mut sub = Subscriber::connect(&ep).unwrap();
    sub.subscribe(b"want").unwrap();
    sub.unsubscribe(b"").unwrap();
    wait_for_at_least(&mut publisher, 1);
    publisher.send(b"skip me").unwrap();
    let mut buf = [0u8; 256];
    assert!(
        matches!(sub.try_recv(&mut buf), Err(Error::WouldBlock)),
        "an unwanted message is skipped, not delivered"
    );
    // Far more than the 4 KiB ring: the subscriber is lapped.
    for k in 0..200u32 {
        publisher
            .send(&[&b"want "[..], &k.to_be_bytes(), &[0; 64]].concat())
            .unwrap();
    }
    let err = sub.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap_err();
    assert!(
        matches!(err, Error::Lagged { missed, .. } if missed > 0),
        "{err}"
    );
    let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
    assert!(buf[..n].starts_with(b"want "));
}

#[test]
fn a_subscriber_that_disconnects_never_blocks_the_publisher() {
    const COUNT: usize = 5_000;
    for scheme in SCHEMES {
        // Block, with a 4 KiB queue per subscriber: a stuck subscriber would stop us at once.
        let options = Options::new().ring_capacity(4096);
        let mut publisher = Publisher::bind_with(&bind_endpoint(scheme), options).unwrap();
        let ep = publisher.endpoint().to_owned();
        let leaver = Subscriber::connect(&ep).unwrap();
        let stayer = Subscriber::connect(&ep).unwrap();
        wait_for_at_least(&mut publisher, 2);
        drop(leaver);
        let expected = (0..COUNT).map(|k| payload(k, 1024)).collect();
        let t = expect(stayer, expected, "stayer");
        for k in 0..COUNT {
            publisher
                .send_timeout(&payload(k, 1024), STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{scheme:?}: message {k}: {e}"));
        }
        let _stayer = t.join().unwrap();
        // (The leaver is still counted until the publisher notices.)
        wait_for_subscribers(&mut publisher, 1);
    }
}

#[test]
fn a_drop_oldest_publisher_never_waits_and_the_newest_message_arrives() {
    for scheme in SCHEMES {
        let options = Options::new()
            .ring_capacity(64 * 1024)
            .overflow(Overflow::DropOldest);
        let mut publisher = Publisher::bind_with(&bind_endpoint(scheme), options).unwrap();
        // On the network (on this machine it would move to the ring, and count its losses).
        let on_the_network = Options::new().upgrade(false);
        let mut sub = Subscriber::connect_with(publisher.endpoint(), on_the_network).unwrap();
        wait_for_at_least(&mut publisher, 1);
        // The subscriber reads nothing while 64 MiB are published: its queue overflows.
        for k in 0..4096u32 {
            let mut m = k.to_be_bytes().to_vec();
            m.resize(16 * 1024, 7);
            publisher.try_send(&m).expect("DropOldest never waits");
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut seqs = Vec::new();
        while seqs.last() != Some(&4095) {
            let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).expect("receiving");
            assert_eq!(n, 16 * 1024, "{scheme:?}: whole messages only");
            seqs.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{scheme:?}: in order, no duplicates"
        );
        assert!(
            seqs.len() < 4096,
            "{scheme:?}: the slow subscriber's oldest messages were dropped"
        );
    }
}

#[test]
fn a_restarted_publisher_is_reconnected_to_transparently() {
    for scheme in SCHEMES {
        let mut first = Publisher::bind(&bind_endpoint(scheme)).unwrap();
        let ep = first.endpoint().to_owned();
        let mut sub = Subscriber::connect(&ep).unwrap();
        wait_for_at_least(&mut first, 1);
        first.send(b"before").unwrap();
        assert_eq!(sub.recv_vec().unwrap(), b"before");
        drop(first);
        // Nobody listens now: not PeerClosed, just nothing yet.
        let mut buf = [0u8; 64];
        let err = sub
            .recv_timeout(&mut buf, Duration::from_millis(300))
            .unwrap_err();
        assert!(matches!(err, Error::TimedOut), "{scheme:?}: {err}");
        assert!(matches!(sub.try_recv(&mut buf), Err(Error::WouldBlock)));
        let t = std::thread::spawn(move || {
            let n = sub
                .recv_timeout(&mut buf, STEP_TIMEOUT)
                .expect("after restart");
            buf[..n].to_vec()
        });
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut second = loop {
            match Publisher::bind(&ep) {
                Ok(p) => break p,
                Err(Error::AddrInUse { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{scheme:?}: rebinding {ep}: {e}"),
            }
        };
        wait_for_at_least(&mut second, 1);
        second.send(b"after").unwrap();
        assert_eq!(t.join().unwrap(), b"after", "{scheme:?}");
    }
}

#[test]
fn everything_queued_is_delivered_when_the_publisher_is_dropped() {
    for scheme in SCHEMES {
        let options = Options::new().ring_capacity(4 << 20);
        let mut publisher = Publisher::bind_with(&bind_endpoint(scheme), options).unwrap();
        let sub = Subscriber::connect(publisher.endpoint()).unwrap();
        wait_for_at_least(&mut publisher, 1);
        let expected: Vec<_> = (0..200).map(|k| payload(k, 10_000)).collect();
        for m in &expected {
            publisher.send(m).unwrap();
        }
        let t = expect(sub, expected, "after drop");
        drop(publisher);
        t.join().unwrap();
    }
}

#[test]
fn subscriber_count_and_endpoints_over_sockets() {
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    assert!(publisher.endpoint().starts_with("tcp://127.0.0.1:"));
    assert!(!publisher.endpoint().ends_with(":0"));
    assert_eq!(publisher.subscriber_count(), 0);
    let sub = Subscriber::connect(publisher.endpoint()).unwrap();
    assert_eq!(sub.endpoint(), publisher.endpoint());
    assert_eq!(sub.publisher_pid(), 0, "unknown over tcp");
    wait_for_at_least(&mut publisher, 1);

    let mut publisher = Publisher::bind(&bind_endpoint(Scheme::Unix)).unwrap();
    assert!(publisher.socket_path().exists());
    let sub = Subscriber::connect(publisher.endpoint()).unwrap();
    assert_eq!(sub.publisher_pid(), std::process::id() as i32);
    wait_for_at_least(&mut publisher, 1);
    sub.close();
    // (A closed subscriber is still counted until the publisher notices.)
    wait_for_subscribers(&mut publisher, 0);
}

#[test]
fn too_large_messages_are_refused_by_the_publisher_and_cut_off_at_the_subscriber() {
    for scheme in SCHEMES {
        let options = Options::new().max_message_len(1000);
        let mut publisher = Publisher::bind_with(&bind_endpoint(scheme), options).unwrap();
        assert_eq!(publisher.max_message_len(), 1000);
        assert_too_large(publisher.send(&[0u8; 1001]), 1001, 1000);
        drop(publisher);

        let mut publisher = Publisher::bind(&bind_endpoint(scheme)).unwrap();
        let options = Options::new().max_message_len(1000);
        let mut sub = Subscriber::connect_with(publisher.endpoint(), options).unwrap();
        wait_for_at_least(&mut publisher, 1);
        publisher.send(&[1u8; 2000]).unwrap();
        let err = sub
            .recv_timeout(&mut [0u8; 4000], STEP_TIMEOUT)
            .unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{scheme:?}: {err}");
        assert!(err.to_string().contains("max_message_len"), "{err}");
    }
}
