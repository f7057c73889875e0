//! Peers that break the protocol: raw sockets writing bytes by hand. Each must give a clear
//! error, close that connection only, and leave the listener usable.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Listener, HANDSHAKE_TIMEOUT};

use shmsock_testkit::logs::capture_logs;

use crate::common::{greeting, ready, STEP_TIMEOUT};

/// Connects a raw socket to `l` and completes the handshake as socket type `ty`; returns
/// the raw socket and the accepted result.
fn raw_peer(l: &Listener, ty: &str) -> (TcpStream, shmsock::Result<Conn>) {
    let addr = l.endpoint().trim_start_matches("tcp://").to_owned();
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(STEP_TIMEOUT)).unwrap();
    raw.write_all(&greeting(1)).unwrap();
    raw.write_all(&ready(ty)).unwrap();
    let accepted = l.accept_timeout(STEP_TIMEOUT);
    (raw, accepted)
}

/// A listener and a raw PAIR peer it accepted: the peer's socket and our connection.
fn raw_pair() -> (TcpStream, Conn) {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let (raw, accepted) = raw_peer(&l, "PAIR");
    (raw, accepted.expect("accepting the raw PAIR peer"))
}

/// The listener still serves a well-behaved peer.
fn assert_listener_usable(l: &Listener) {
    let ep = l.endpoint().to_owned();
    let t = std::thread::spawn(move || Conn::connect(&ep).unwrap().send(b"still fine").unwrap());
    let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    assert_eq!(c.recv_vec().unwrap(), b"still fine");
    t.join().unwrap();
}

/// Accepts on `l` until `attacker` has been dropped by it (its socket reads end of
/// stream): `accept` must not return it, nor any error. Returns the warnings logged.
fn dropped_without_error(l: &Listener, attacker: &mut TcpStream) -> Vec<String> {
    let (outcome, logs) = capture_logs(|| l.accept_timeout(Duration::from_millis(300)));
    match outcome {
        Err(Error::TimedOut) => {}
        Err(e) => panic!("accept returned the attacker's error: {e}"),
        Ok(_) => panic!("accept returned the attacker's connection"),
    }
    let (more, later) = capture_logs(|| {
        // A silent attacker is cut off at the handshake deadline, not sooner.
        let start = Instant::now();
        while start.elapsed() < HANDSHAKE_TIMEOUT + Duration::from_secs(2) {
            match l.accept_timeout(Duration::from_millis(200)) {
                Err(Error::TimedOut) => {}
                other => panic!("accept returned {:?}", other.map(|_| ())),
            }
            if attacker_closed(attacker) {
                return true;
            }
        }
        false
    });
    assert!(more, "the attacker's connection was not closed");
    logs.into_iter()
        .chain(later)
        .filter(|l| l.starts_with("WARN"))
        .collect()
}

/// Whether the peer closed `raw` (end of stream or reset), without waiting.
fn attacker_closed(raw: &mut TcpStream) -> bool {
    raw.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match raw.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    raw.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn a_non_zmtp_client_is_dropped_and_logged_and_the_listener_survives() {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let addr = l.endpoint().trim_start_matches("tcp://").to_owned();
    let mut raw = TcpStream::connect(&addr).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    raw.write_all(&[0u8; 64]).unwrap();
    let warnings = dropped_without_error(&l, &mut raw);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("ZMTP") && w.contains("peer dropped")),
        "{warnings:?}"
    );
    assert_listener_usable(&l);
}

#[test]
fn a_silent_client_is_dropped_at_the_handshake_deadline() {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let addr = l.endpoint().trim_start_matches("tcp://").to_owned();
    let mut raw = TcpStream::connect(&addr).unwrap();
    let start = Instant::now();
    let warnings = dropped_without_error(&l, &mut raw);
    assert!(
        start.elapsed() >= HANDSHAKE_TIMEOUT,
        "{:?}",
        start.elapsed()
    );
    assert!(
        warnings.iter().any(|w| w.contains("in time")),
        "{warnings:?}"
    );
    assert_listener_usable(&l);
}

#[test]
fn a_peer_of_another_socket_type_is_refused() {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let addr = l.endpoint().trim_start_matches("tcp://").to_owned();
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(&greeting(1)).unwrap();
    raw.write_all(&ready("DEALER")).unwrap();
    let warnings = dropped_without_error(&l, &mut raw);
    assert!(
        warnings.iter().any(|w| w.contains("DEALER")),
        "{warnings:?}"
    );
    assert_listener_usable(&l);
}

#[test]
fn silent_and_garbage_peers_do_not_delay_an_honest_one() {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let addr = l.endpoint().trim_start_matches("tcp://").to_owned();
    let mut attackers = Vec::new();
    for i in 0..24 {
        let mut raw = TcpStream::connect(&addr).unwrap();
        if i % 2 == 1 {
            raw.write_all(&greeting(1)[..30]).unwrap(); // half a greeting, then nothing
        }
        attackers.push(raw);
    }
    let ep = l.endpoint().to_owned();
    let honest = std::thread::spawn(move || {
        let start = Instant::now();
        let mut c = Conn::connect(&ep).unwrap();
        c.send(b"hello").unwrap();
        start.elapsed()
    });
    let mut c = l
        .accept_timeout(STEP_TIMEOUT)
        .expect("the honest peer is accepted");
    assert_eq!(c.recv_vec().unwrap(), b"hello");
    let took = honest.join().unwrap();
    // The bar is 100 ms; a loaded 2-core CI machine gets a margin (the attackers hold
    // their connections for the whole 5 s handshake timeout).
    assert!(
        took < Duration::from_secs(1),
        "the honest handshake took {took:?}"
    );
}

#[test]
fn an_oversized_frame_is_refused_without_allocating_it() {
    let (mut raw, mut c) = raw_pair();
    // A long frame claiming 2^50 bytes: allocating it would abort the process.
    let mut frame = vec![0x02];
    frame.extend_from_slice(&(1u64 << 50).to_be_bytes());
    raw.write_all(&frame).unwrap();
    let err = c.recv_vec().unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("max_message_len"), "{err}");
    // The connection is closed: the raw peer sees end of stream after our greeting/READY.
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
    assert!(matches!(c.recv_vec(), Err(Error::Protocol { .. })));
}

#[test]
fn reserved_frame_flags_are_a_protocol_error() {
    let (mut raw, mut c) = raw_pair();
    raw.write_all(&[0x00, 2, b'o', b'k', 0xF0, 1, 0]).unwrap();
    assert_eq!(
        c.recv_vec().unwrap(),
        b"ok",
        "messages before the garbage arrive"
    );
    let err = c.recv_vec().unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[test]
fn end_of_stream_inside_a_frame_is_peer_gone() {
    let (mut raw, mut c) = raw_pair();
    raw.write_all(&[0x00, 10, b'h', b'a', b'l', b'f']).unwrap();
    drop(raw);
    let err = c.recv_vec().unwrap_err();
    assert!(matches!(err, Error::PeerGone { .. }), "{err}");
}

#[test]
fn pings_are_answered_and_multipart_messages_are_concatenated() {
    let (mut raw, mut c) = raw_pair();
    // PING (TTL 0, context "ab"), then a two-part message.
    let mut bytes = vec![0x04, 9, 4, b'P', b'I', b'N', b'G', 0, 0, b'a', b'b'];
    bytes.extend_from_slice(&[0x01, 3, b'o', b'n', b'e', 0x00, 3, b't', b'w', b'o']);
    raw.write_all(&bytes).unwrap();
    assert_eq!(c.recv_vec().unwrap(), b"onetwo");
    // Our greeting and READY, then the PONG.
    let mut head = [0u8; 64];
    raw.read_exact(&mut head).unwrap();
    let mut hdr = [0u8; 2];
    raw.read_exact(&mut hdr).unwrap();
    let mut skip = vec![0u8; hdr[1] as usize];
    raw.read_exact(&mut skip).unwrap();
    let mut pong = [0u8; 9];
    raw.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, &[0x04, 7, 4, b'P', b'O', b'N', b'G', b'a', b'b']);
}

/// A writer whose greeting, READY and first message reach an `Inbox` in one segment: the
/// handshake reads them together, and the message, already off the socket, must still be
/// delivered (the I/O thread looked only at what `poll` reported, so it waited for bytes
/// that had already come).
#[test]
fn an_inbox_delivers_a_message_that_came_with_the_handshake() {
    use std::io::Write;
    for _ in 0..20 {
        let mut inbox = shmsock::Inbox::bind("tcp://127.0.0.1:0").unwrap();
        let addr = inbox.endpoint().trim_start_matches("tcp://").to_owned();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let all = [
            &crate::common::greeting(1)[..],
            &crate::common::ready("PAIR"),
            &crate::common::frame(0, b"first"),
        ]
        .concat();
        s.write_all(&all).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = inbox
            .recv_from_timeout(&mut buf, crate::common::STEP_TIMEOUT)
            .expect("the message that came with the handshake");
        assert_eq!(&buf[..n], b"first");
    }
}
