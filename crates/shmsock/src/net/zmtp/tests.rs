//! Unit and property tests of the ZMTP wire format.

use super::*;
use proptest::prelude::*;

fn encode(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut h = [0; HEADER_MAX_LEN];
        let n = encode_header(p.len(), i + 1 < parts.len(), false, &mut h);
        out.extend_from_slice(&h[..n]);
        out.extend_from_slice(p);
    }
    out
}

proptest! {
    #[test]
    fn messages_round_trip_through_scan_and_copy(
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..4),
        tail in prop::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut wire = encode(&parts);
        let whole = wire.len();
        wire.extend_from_slice(&tail);
        let Scan::Message { len, frames, consumed } = scan(&wire, 1 << 20).unwrap() else {
            panic!("expected a message");
        };
        prop_assert_eq!(consumed, whole);
        prop_assert_eq!(frames, parts.len());
        let mut out = vec![0; len];
        copy_payload(&wire, frames, &mut out);
        prop_assert_eq!(out, parts.concat());
        // Every strict prefix is incomplete and asks for more than it has.
        for cut in 0..whole {
            match scan(&wire[..cut], 1 << 20).unwrap() {
                Scan::Incomplete { need } => prop_assert!(need > cut),
                other => prop_assert!(false, "prefix {} gave {:?}", cut, other),
            }
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = scan(&bytes, 1000);
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
fn oversized_frames_are_rejected_from_the_header_alone() {
    let mut wire = vec![FLAG_LONG];
    wire.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let err = scan(&wire, 64 << 20).unwrap_err();
    assert!(err.contains("max_message_len"), "{err}");
    // The sum of a multipart message counts too.
    let parts = vec![vec![1u8; 600], vec![2u8; 600]];
    assert!(scan(&encode(&parts), 1000).is_err());
    assert!(scan(&encode(&parts), 1200).is_ok());
}

#[test]
fn reserved_flags_and_bad_greetings_are_rejected() {
    assert!(scan(&[0x08, 0], 10).is_err());
    assert!(scan(&[FLAG_COMMAND | FLAG_MORE, 0], 10).is_err());
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
