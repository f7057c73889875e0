//! CURVE (RFC 26 CurveZMQ) between shmsock sockets: messages of every size both ways, for
//! `Conn` and publish/subscribe, over tcp:// and unix://; a NULL client, a client whose key
//! is not allowed and a client that expects another server key are refused with errors
//! that say why; the server logs each refusal and goes on serving.

use std::time::Duration;

use shmsock::{Conn, CurveKeyPair, Error, Listener, Options, Publisher, Subscriber};

use shmsock_testkit::logs::capture_logs;

use crate::common::{bind_endpoint, payload, SCHEMES, SIZES, STEP_TIMEOUT};

struct Keys {
    server: CurveKeyPair,
    client: CurveKeyPair,
}

fn keys() -> Keys {
    Keys {
        server: CurveKeyPair::generate(),
        client: CurveKeyPair::generate(),
    }
}

fn server_options(k: &Keys) -> Options {
    Options::new()
        .curve_secret(k.server.clone())
        .curve_allow([k.client.public()])
}

fn client_options(k: &Keys) -> Options {
    Options::new()
        .curve_secret(k.client.clone())
        .curve_server(k.server.public())
}

#[test]
fn messages_of_every_size_cross_both_ways_sealed() {
    for &scheme in &SCHEMES {
        let k = keys();
        let l = Listener::bind_with(&bind_endpoint(scheme), server_options(&k)).unwrap();
        let (ep, opts) = (l.endpoint().to_owned(), client_options(&k));
        let t = std::thread::spawn(move || {
            let mut c = Conn::connect_with(&ep, opts).unwrap();
            for (i, &n) in SIZES.iter().enumerate() {
                let m = c.recv_vec().unwrap();
                assert_eq!(m, payload(i, n), "message {i} of {n} bytes");
                c.send(&m).unwrap();
            }
        });
        let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
        for (i, &n) in SIZES.iter().enumerate() {
            c.send(&payload(i, n)).unwrap();
            let mut buf = vec![0u8; n];
            let got = c.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
            assert_eq!(&buf[..got], &payload(i, n)[..], "echo {i} of {n} bytes");
        }
        t.join().unwrap();
    }
}

#[test]
fn a_message_kept_for_a_larger_buffer_is_not_opened_twice() {
    let k = keys();
    let l = Listener::bind_with("tcp://127.0.0.1:0", server_options(&k)).unwrap();
    let (ep, opts) = (l.endpoint().to_owned(), client_options(&k));
    let t = std::thread::spawn(move || {
        let mut c = Conn::connect_with(&ep, opts).unwrap();
        c.send(b"longer than eight").unwrap();
        c.send(b"next").unwrap();
        c.recv_vec().unwrap()
    });
    let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    let mut small = [0u8; 8];
    let err = c.recv_timeout(&mut small, STEP_TIMEOUT).unwrap_err();
    assert!(
        matches!(err, Error::BufferTooSmall { len: 17, .. }),
        "{err}"
    );
    assert_eq!(c.recv_vec().unwrap(), b"longer than eight");
    assert_eq!(c.recv_vec().unwrap(), b"next");
    c.send(b"done").unwrap();
    assert_eq!(t.join().unwrap(), b"done");
}

#[test]
fn publish_subscribe_over_curve_filters_and_delivers() {
    for &scheme in &SCHEMES {
        let k = keys();
        let mut p = Publisher::bind_with(&bind_endpoint(scheme), server_options(&k)).unwrap();
        let mut s = Subscriber::connect_with(p.endpoint(), client_options(&k)).unwrap();
        s.unsubscribe(b"").unwrap();
        s.subscribe(b"tick").unwrap();
        let start = std::time::Instant::now();
        while p.subscriber_count() == 0 {
            assert!(
                start.elapsed() < STEP_TIMEOUT,
                "the subscriber never counted"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // The subscription may land after the first sends: send until one arrives.
        let mut got = Vec::new();
        for i in 0..2000 {
            p.send(b"noise").unwrap();
            p.send(format!("tick {i}").as_bytes()).unwrap();
            let mut buf = [0u8; 64];
            if let Ok(n) = s.recv_timeout(&mut buf, Duration::from_millis(5)) {
                got.push(buf[..n].to_vec());
                break;
            }
        }
        assert!(got.iter().all(|m| m.starts_with(b"tick")), "{got:?}");
        assert!(!got.is_empty(), "nothing arrived over CURVE");
    }
}

#[test]
fn a_null_client_is_refused_by_a_curve_server_and_logged() {
    let k = keys();
    let l = Listener::bind_with("tcp://127.0.0.1:0", server_options(&k)).unwrap();
    let ep = l.endpoint().to_owned();
    let t = std::thread::spawn(move || Conn::connect(&ep).map(|_| ()).unwrap_err());
    let (accepted, logs) = capture_logs(|| l.accept_timeout(Duration::from_secs(2)));
    assert!(
        matches!(accepted, Err(Error::TimedOut)),
        "accept returned {:?}",
        accepted.map(|_| ())
    );
    let err = t.join().unwrap();
    assert!(matches!(err, Error::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("CURVE"), "{err}");
    assert!(logs.iter().any(|l| l.contains("CURVE")), "{logs:?}");
}

#[test]
fn a_client_not_on_the_allow_list_is_told_so() {
    let k = keys();
    let l = Listener::bind_with("tcp://127.0.0.1:0", server_options(&k)).unwrap();
    let ep = l.endpoint().to_owned();
    let stranger = Options::new()
        .curve_secret(CurveKeyPair::generate())
        .curve_server(k.server.public());
    let t = std::thread::spawn(move || Conn::connect_with(&ep, stranger).map(|_| ()).unwrap_err());
    let (accepted, logs) = capture_logs(|| l.accept_timeout(Duration::from_secs(2)));
    assert!(matches!(accepted, Err(Error::TimedOut)));
    let err = t.join().unwrap();
    assert!(err.to_string().contains("allow-list"), "{err}");
    assert!(logs.iter().any(|l| l.contains("not allowed")), "{logs:?}");
    // The server still serves its allowed client.
    let (ep, opts) = (l.endpoint().to_owned(), client_options(&k));
    let t = std::thread::spawn(move || Conn::connect_with(&ep, opts).unwrap().send(b"hi").unwrap());
    let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    assert_eq!(c.recv_vec().unwrap(), b"hi");
    t.join().unwrap();
}

#[test]
fn a_client_expecting_another_server_key_fails_the_handshake() {
    let k = keys();
    let l = Listener::bind_with("tcp://127.0.0.1:0", server_options(&k)).unwrap();
    let ep = l.endpoint().to_owned();
    let wrong = Options::new()
        .curve_secret(k.client.clone())
        .curve_server(CurveKeyPair::generate().public());
    let t = std::thread::spawn(move || Conn::connect_with(&ep, wrong).map(|_| ()).unwrap_err());
    let _ = l.accept_timeout(Duration::from_secs(2));
    let err = t.join().unwrap();
    assert!(matches!(err, Error::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("CURVE"), "{err}");
}

#[test]
fn a_curve_server_without_a_key_pair_is_refused_at_bind() {
    let only_allow = Options::new().curve_allow([CurveKeyPair::generate().public()]);
    let err = Listener::bind_with("tcp://127.0.0.1:0", only_allow)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOptions { .. }), "{err}");
    assert!(err.to_string().contains("curve_secret"), "{err}");
}
