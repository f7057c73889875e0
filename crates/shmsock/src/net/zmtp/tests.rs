//! Unit and property tests of the ZMTP wire format.

use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_header(&bytes);
        let _ = check_greeting(&bytes);
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
    assert!(check_greeting(&greeting()).is_ok());
    let mut g = greeting();
    g[0] = b'G'; // an HTTP client
    assert!(check_greeting(&g).unwrap_err().contains("ZMTP"));
    let mut g = greeting();
    g[10] = 2;
    assert!(check_greeting(&g).unwrap_err().contains("ZMTP 2."));
    let mut g = greeting();
    g[12..17].copy_from_slice(b"CURVE");
    assert!(check_greeting(&g).unwrap_err().contains("CURVE"));
}

#[test]
fn ready_carries_the_socket_type() {
    let body = ready_body("PAIR");
    let (name, data) = split_command(&body).unwrap();
    assert_eq!(name, b"READY");
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
