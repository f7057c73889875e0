//! Publish/subscribe against raw sockets writing ZMTP by hand: the publisher filters by
//! the subscriptions it receives (ZMTP 3.1 commands and ZMTP 3.0 messages), and peers that
//! send garbage get a clear error, lose their connection, and harm nobody else.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Listener, Options, Overflow, Publisher, Subscriber};

use crate::common::{command, frame, Raw, STEP_TIMEOUT};
use shmsock_testkit::pubsub::{wait_for_at_least, wait_for_subscribers};

#[test]
fn the_publisher_filters_by_zmtp_3_1_subscribe_and_cancel_commands() {
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let mut raw = Raw::connect(publisher.endpoint(), "SUB", 1);
    raw.send(&command("SUBSCRIBE", b"A"));
    wait_for_at_least(&mut publisher, 1);
    for m in [&b"B1"[..], b"A1", b"C1", b"", b"AB1"] {
        publisher.send(m).unwrap();
    }
    assert_eq!(raw.message(), b"A1");
    assert_eq!(raw.message(), b"AB1");
    // Cancel A, subscribe C: once a C message arrives, no A message may follow it.
    raw.send(&[command("CANCEL", b"A"), command("SUBSCRIBE", b"C")].concat());
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                publisher.send(b"A2").unwrap();
                publisher.send(b"C2").unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    loop {
        match raw.message().as_slice() {
            b"C2" => break,
            m => assert_eq!(m, b"A2"),
        }
    }
    for _ in 0..10 {
        assert_eq!(raw.message(), b"C2", "an A message after the cancel");
    }
    stop.store(true, Ordering::Relaxed);
    publishing.join().unwrap();
}

#[test]
fn the_publisher_accepts_zmtp_3_0_subscription_messages() {
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let mut raw = Raw::connect(publisher.endpoint(), "SUB", 0);
    raw.send(&frame(0, b"\x01top"));
    wait_for_at_least(&mut publisher, 1);
    for m in [&b"other"[..], b"topic 1", b"to", b"top 2"] {
        publisher.send(m).unwrap();
    }
    assert_eq!(raw.message(), b"topic 1");
    assert_eq!(raw.message(), b"top 2");
}

#[test]
fn our_subscriber_sends_zmtp_3_0_subscriptions_to_a_zmtp_3_0_publisher() {
    let (ep, t) = Raw::publisher(0, |raw| {
        // Subscribed to everything at connect, then A only.
        assert_eq!(raw.frame(), (0, b"\x01".to_vec()));
        assert_eq!(raw.frame(), (0, b"\x00".to_vec()));
        assert_eq!(raw.frame(), (0, b"\x01A".to_vec()));
        raw.send(&[frame(0, b"B no"), frame(0, b"A yes")].concat());
    });
    let mut sub = Subscriber::connect(&ep).unwrap();
    sub.unsubscribe(b"").unwrap();
    sub.subscribe(b"A").unwrap();
    let mut buf = [0u8; 64];
    let n = sub.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
    assert_eq!(&buf[..n], b"A yes");
    drop(t.join().unwrap());
}

#[test]
fn a_garbage_sending_subscriber_is_cut_off_and_the_others_carry_on() {
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let ep = publisher.endpoint().to_owned();
    // Not ZMTP at all: refused during the handshake, never counted.
    let mut http = TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    http.write_all(&[0u8; 64]).unwrap();
    // ZMTP, then reserved frame flags.
    let mut garbage = Raw::connect(&ep, "SUB", 1);
    garbage.send(&command("SUBSCRIBE", b""));
    let good = Subscriber::connect(&ep).unwrap();
    wait_for_at_least(&mut publisher, 2);
    garbage.send(&[0xF0, 1, 0]);
    // The publisher closes the garbage peer's connection: it reads end of stream.
    garbage.0.set_read_timeout(Some(STEP_TIMEOUT)).unwrap();
    let mut rest = Vec::new();
    let _ = garbage.0.read_to_end(&mut rest);
    // (The garbage peer is still counted until the publisher notices.)
    wait_for_subscribers(&mut publisher, 1);
    let t = crate::pubsub::expect(good, vec![b"still fine".to_vec()], "good");
    publisher.send(b"still fine").unwrap();
    t.join().unwrap();
}

#[test]
fn a_stalled_subscriber_times_a_block_publisher_out_and_never_a_drop_oldest_one() {
    for overflow in [Overflow::Block, Overflow::DropOldest] {
        let options = Options::new().ring_capacity(4096).overflow(overflow);
        let mut publisher = Publisher::bind_with("tcp://127.0.0.1:0", options).unwrap();
        // Subscribes to everything and never reads.
        let mut stalled = Raw::connect(publisher.endpoint(), "SUB", 1);
        stalled.send(&command("SUBSCRIBE", b""));
        wait_for_at_least(&mut publisher, 1);
        let msg = vec![5u8; 64 * 1024];
        match overflow {
            Overflow::Block => {
                let deadline = Instant::now() + STEP_TIMEOUT;
                let err = loop {
                    match publisher.send_timeout(&msg, Duration::from_millis(100)) {
                        Ok(()) => assert!(Instant::now() < deadline, "Block never stalled"),
                        Err(e) => break e,
                    }
                };
                assert!(matches!(err, Error::SlowSubscriber { pid: 0, .. }), "{err}");
                // The stalled subscriber leaves: the publisher goes on at once.
                drop(stalled);
                publisher
                    .send_timeout(&msg, STEP_TIMEOUT)
                    .expect("no subscriber holds it back");
            }
            _ => {
                // 64 MiB, far more than the socket buffers and the 4 KiB queue hold.
                for k in 0..1024 {
                    publisher
                        .try_send(&msg)
                        .unwrap_or_else(|e| panic!("DropOldest never waits: message {k}: {e}"));
                }
            }
        }
    }
}

#[test]
fn a_garbage_sending_publisher_is_a_protocol_error_for_the_subscriber() {
    for (garbage, what) in [
        (vec![0xF0u8, 1, 0], "reserved"),
        (
            [&[0x02u8][..], &(1u64 << 40).to_be_bytes()].concat(),
            "max_message_len",
        ),
    ] {
        let (ep, t) = Raw::publisher(1, move |raw| {
            raw.send(&[frame(0, b"first"), garbage].concat());
        });
        let mut sub = Subscriber::connect(&ep).unwrap();
        assert_eq!(sub.recv_vec().unwrap(), b"first");
        let err = sub.recv_timeout(&mut [0u8; 64], STEP_TIMEOUT).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
        assert!(err.to_string().contains(what), "{err}");
        drop(t.join().unwrap());
    }
}

#[test]
fn subscribers_refuse_non_publishers_and_conns_refuse_publishers() {
    // A Subscriber meets a Conn listener (PAIR).
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let ep = l.endpoint().to_owned();
    let t = std::thread::spawn(move || Subscriber::connect(&ep).map(|_| ()));
    let accepted = l.accept_timeout(STEP_TIMEOUT);
    let err = t.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("PAIR"), "{err}");
    assert!(accepted.is_err(), "the listener refuses a SUB too");

    // A Conn meets a Publisher (PUB); the publisher carries on.
    let mut publisher = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let err = Conn::connect(publisher.endpoint()).unwrap_err();
    assert!(matches!(err, Error::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("PUB"), "{err}");
    let sub = Subscriber::connect(publisher.endpoint()).unwrap();
    wait_for_at_least(&mut publisher, 1);
    drop(sub);
}

#[test]
fn failed_handshakes_while_reconnecting_are_retried_not_reported() {
    let mut first = Publisher::bind("tcp://127.0.0.1:0").unwrap();
    let ep = first.endpoint().to_owned();
    let addr = ep.trim_start_matches("tcp://").to_owned();
    let mut sub = Subscriber::connect(&ep).unwrap();
    wait_for_at_least(&mut first, 1);
    drop(first);
    // Meanwhile something accepts on the port and hangs up at once, as a publisher that is
    // closing does to the connections still in its backlog.
    let hangup = TcpListener::bind(&addr).unwrap();
    hangup.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut hung_up = 0;
            while !stop.load(Ordering::Relaxed) {
                match hangup.accept() {
                    Ok((s, _)) => {
                        drop(s);
                        hung_up += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            hung_up
        })
    };
    let err = sub
        .recv_timeout(&mut [0u8; 64], Duration::from_millis(500))
        .unwrap_err();
    assert!(matches!(err, Error::TimedOut), "{err}");
    stop.store(true, Ordering::Relaxed);
    assert!(t.join().unwrap() > 0, "the subscriber tried to reconnect");
    let receiver = std::thread::spawn(move || sub.recv_vec());
    let mut second = Publisher::bind(&ep).unwrap();
    wait_for_at_least(&mut second, 1);
    second.send(b"back").unwrap();
    assert_eq!(receiver.join().unwrap().unwrap(), b"back");
}
