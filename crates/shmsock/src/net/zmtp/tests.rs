//! Unit and property tests of the ZMTP wire format.

use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_header(&bytes);
        let _ = check_greeting(&bytes, Mechanism::Null, false);
        let _ = check_greeting(&bytes, Mechanism::Curve, true);
        let _ = split_command(&bytes).map(|(_, d)| property(d, "Socket-Type"));
    }
}

#[test]
fn short_and_long_headers_are_chosen_by_length() {
    let mut h = [0; HEADER_MAX_LEN];
    assert_eq!(encode_header(255, false, false, &mut h), 2);
    assert_eq!(&h[..2], &[0, 255]);
    assert_eq!(encode_header(256, true, false, &mut h), 9);
    assert_eq!(h[0], FLAG_LONG | FLAG_MORE);
    assert_eq!(&h[1..9], &256u64.to_be_bytes());
}

#[test]
fn reserved_flags_and_bad_greetings_are_rejected() {
    assert!(decode_header(&[0x08, 0]).is_err());
    assert!(decode_header(&[FLAG_COMMAND | FLAG_MORE, 0]).is_err());
    let null = greeting(Mechanism::Null, false);
    assert_eq!(
        check_greeting(&null, Mechanism::Null, false).unwrap(),
        PeerGreeting {
            major: 3,
            minor: 1,
            mechanism: Mechanism::Null,
            as_server: false
        }
    );
    let mut g = null;
    g[0] = b'G'; // an HTTP client
    let err = check_greeting(&g, Mechanism::Null, false).unwrap_err();
    assert!(err.contains("ZMTP"), "{err}");
    let mut g = null;
    g[10] = 2;
    let err = check_greeting(&g, Mechanism::Null, false).unwrap_err();
    assert!(err.contains("ZMTP 2."), "{err}");
    let mut g = null;
    g[12..17].copy_from_slice(b"PLAIN");
    let err = check_greeting(&g, Mechanism::Null, false).unwrap_err();
    assert!(
        err.contains("\"PLAIN\"") && err.contains("NULL and CURVE"),
        "{err}"
    );
    // A name followed by junk in its zero padding is no mechanism we know.
    let mut g = null;
    g[20] = b'x';
    assert!(check_greeting(&g, Mechanism::Null, false).is_err());
}

#[test]
fn the_greeting_names_the_mechanism_and_the_curve_server() {
    let g = greeting(Mechanism::Curve, true);
    assert_eq!(&g[12..32], b"CURVE\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(g[32], 1);
    assert_eq!(greeting(Mechanism::Curve, false)[32], 0);
    // NULL never claims to be a server (RFC 37).
    assert_eq!(greeting(Mechanism::Null, true)[32], 0);
    assert_eq!(&greeting(Mechanism::Null, false)[12..17], b"NULL\0");
    let peer = check_greeting(&g, Mechanism::Curve, false).unwrap();
    assert_eq!((peer.mechanism, peer.as_server), (Mechanism::Curve, true));
}

#[test]
fn null_against_curve_is_reported_from_both_sides() {
    let curve_server = greeting(Mechanism::Curve, true);
    let err = check_greeting(&curve_server, Mechanism::Null, false).unwrap_err();
    assert!(
        err.contains("peer uses CURVE") && err.contains("this side uses NULL"),
        "{err}"
    );
    let null = greeting(Mechanism::Null, false);
    let err = check_greeting(&null, Mechanism::Curve, false).unwrap_err();
    assert!(
        err.contains("peer uses NULL") && err.contains("this side uses CURVE"),
        "{err}"
    );
}

#[test]
fn two_curve_servers_are_refused_but_a_libzmq_server_saying_client_is_not() {
    let err =
        check_greeting(&greeting(Mechanism::Curve, true), Mechanism::Curve, true).unwrap_err();
    assert!(err.contains("both sides are CURVE servers"), "{err}");
    // libzmq's CURVE server sends as-server 0: our client must accept it.
    let libzmq_server = greeting(Mechanism::Curve, false);
    let peer = check_greeting(&libzmq_server, Mechanism::Curve, false).unwrap();
    assert!(!peer.as_server);
    assert!(check_greeting(&libzmq_server, Mechanism::Curve, true).is_ok());
}

#[test]
fn error_commands_carry_a_reason_of_at_most_255_bytes() {
    assert_eq!(error_body("400"), b"\x05ERROR\x03400");
    let body = error_body("400");
    let (name, data) = split_command(&body).unwrap();
    assert_eq!((name, error_reason(data).as_str()), (&b"ERROR"[..], "400"));
    // Cut at 255 bytes, on a character boundary (each 'é' is 2 bytes).
    let long = "é".repeat(200);
    let body = error_body(&long);
    assert_eq!(body[6], 254);
    assert_eq!(body.len(), 7 + 254);
    let (_, data) = split_command(&body).unwrap();
    assert_eq!(error_reason(data), "é".repeat(127));
    // A reason length past the end of the command is cut to what is there.
    assert_eq!(error_reason(b"\x09abc"), "abc");
    assert_eq!(error_reason(b""), "");
}

#[test]
fn ready_carries_the_socket_type() {
    let body = ready_body("PAIR");
    let (name, data) = split_command(&body).unwrap();
    assert_eq!(name, b"READY");
    assert_eq!(data, socket_type_metadata("PAIR"));
    assert_eq!(property(data, "socket-type").unwrap(), Some(&b"PAIR"[..]));
    assert_eq!(property(data, "Identity").unwrap(), None);
    assert!(property(&data[..data.len() - 1], "Socket-Type").is_err());
}

#[test]
fn subscriptions_parse_from_commands_and_legacy_messages() {
    let body = subscription_command(true, b"topic");
    let (name, data) = split_command(&body).unwrap();
    assert_eq!(
        Subscription::from_command(name, data),
        Some(Subscription::Subscribe(b"topic".to_vec()))
    );
    let body = subscription_command(false, b"");
    let (name, data) = split_command(&body).unwrap();
    assert_eq!(
        Subscription::from_command(name, data),
        Some(Subscription::Cancel(Vec::new()))
    );
    assert_eq!(Subscription::from_command(b"PING", b""), None);
    assert_eq!(
        Subscription::from_message(&subscription_message(true, b"ab")),
        Some(Subscription::Subscribe(b"ab".to_vec()))
    );
    assert_eq!(
        Subscription::from_message(&subscription_message(false, b"ab")),
        Some(Subscription::Cancel(b"ab".to_vec()))
    );
    assert_eq!(Subscription::from_message(b""), None);
    assert_eq!(Subscription::from_message(b"\x02x"), None);
}

#[test]
fn socket_types_pair_as_rfc_23_says() {
    assert!(SocketType::Pair.accepts(b"pair"));
    assert!(!SocketType::Pair.accepts(b"SUB"));
    assert!(SocketType::Pub.accepts(b"SUB") && SocketType::Pub.accepts(b"XSUB"));
    assert!(!SocketType::Pub.accepts(b"PUB"));
    assert!(SocketType::Sub.accepts(b"PUB") && SocketType::Sub.accepts(b"XPUB"));
    assert!(!SocketType::Sub.accepts(b"PAIR"));
}

#[test]
fn pong_echoes_the_ping_context() {
    assert_eq!(pong_body(&[0, 10, b'x', b'y']), b"\x04PONGxy");
    assert_eq!(pong_body(&[]), b"\x04PONG");
}

#[test]
fn ping_carries_its_ttl_in_tenths_of_a_second() {
    let ping = ping_body(std::time::Duration::from_millis(1500));
    let (name, data) = split_command(&ping).unwrap();
    assert_eq!((name, data), (&b"PING"[..], &[0u8, 15][..]));
    assert_eq!(
        &ping_body(std::time::Duration::from_secs(1 << 20))[5..],
        &[0xFF, 0xFF]
    );
}
