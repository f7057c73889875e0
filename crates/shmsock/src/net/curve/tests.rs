//! A client and a server state machine talking to each other in memory: the handshake,
//! messages both ways, and everything a broken or hostile peer can do to them.

use std::collections::HashSet;
use std::sync::Arc;

use super::client::CurveClient;
use super::keys::tests::{CLIENT, SERVER};
use super::keys::{CurveKeyPair, CurvePublicKey};
use super::server::{Accepted, AllowList, CurveServer};
use super::session::{CurveSession, MESSAGE_OVERHEAD};
use super::CurveError;
use crate::net::zmtp;

fn pair((secret, _): (&str, &str)) -> CurveKeyPair {
    CurveKeyPair::from_secret(secret.parse().unwrap())
}

fn allow(keys: &[CurvePublicKey]) -> Option<AllowList> {
    Some(Arc::new(keys.iter().copied().collect::<HashSet<_>>()))
}

/// The four handshake commands between a client and a server.
struct Transcript {
    hello: Vec<u8>,
    welcome: Vec<u8>,
    initiate: Vec<u8>,
}

/// Runs the handshake up to INITIATE: the two state machines and what they sent.
fn up_to_initiate(
    client_keys: &CurveKeyPair,
    server_keys: &CurveKeyPair,
    allow: Option<AllowList>,
) -> (CurveClient, CurveServer, Transcript) {
    let mut client = CurveClient::new(
        client_keys,
        server_keys.public(),
        &zmtp::socket_type_metadata("PAIR"),
    )
    .unwrap();
    let mut server = CurveServer::new(server_keys, allow, &zmtp::socket_type_metadata("PAIR"));
    let hello = client.hello();
    let welcome = server.on_hello(&hello).unwrap();
    let initiate = client.on_welcome(&welcome).unwrap();
    let t = Transcript {
        hello,
        welcome,
        initiate,
    };
    (client, server, t)
}

/// A whole handshake: (client session, server's result).
fn connected() -> (CurveSession, Accepted) {
    let (mut client, mut server, t) = up_to_initiate(&pair(CLIENT), &pair(SERVER), None);
    let accepted = server.on_initiate(&t.initiate).unwrap();
    let (session, metadata) = client.on_ready(&accepted.ready).unwrap();
    assert_eq!(
        zmtp::property(&metadata, "Socket-Type").unwrap(),
        Some(&b"PAIR"[..])
    );
    (session, accepted)
}

#[test]
fn the_handshake_completes_and_names_the_client() {
    let client_keys = pair(CLIENT);
    let (mut client, mut server, t) =
        up_to_initiate(&client_keys, &pair(SERVER), allow(&[client_keys.public()]));
    // RFC 26's sizes.
    assert_eq!(t.hello.len(), 200);
    assert_eq!(&t.hello[..8], b"\x05HELLO\x01\x00");
    assert!(
        t.hello[8..80].iter().all(|&b| b == 0),
        "anti-amplification padding"
    );
    assert_eq!(&t.hello[80..112], &client.transient_public());
    assert_eq!(
        t.hello[112..120],
        1u64.to_be_bytes(),
        "HELLO's short nonce is 1"
    );
    assert_eq!(t.welcome.len(), 168);
    assert_eq!(&t.welcome[..8], b"\x07WELCOME");
    assert_eq!(
        t.initiate.len(),
        257 + zmtp::socket_type_metadata("PAIR").len()
    );
    assert_eq!(&t.initiate[..9], b"\x08INITIATE");
    assert_eq!(t.initiate[105..113], 2u64.to_be_bytes(), "INITIATE's is 2");

    let accepted = server.on_initiate(&t.initiate).unwrap();
    assert_eq!(accepted.client, client_keys.public());
    assert_eq!(
        zmtp::property(&accepted.metadata, "Socket-Type").unwrap(),
        Some(&b"PAIR"[..])
    );
    assert_eq!(&accepted.ready[..6], b"\x05READY");
    assert_eq!(accepted.ready[6..14], 1u64.to_be_bytes(), "READY's is 1");
    assert_eq!(
        accepted.ready.len(),
        30 + zmtp::socket_type_metadata("PAIR").len()
    );
    let (_, metadata) = client.on_ready(&accepted.ready).unwrap();
    assert_eq!(metadata, zmtp::socket_type_metadata("PAIR"));
}

#[test]
fn messages_round_trip_both_ways_with_their_flags() {
    let (mut client, mut accepted) = connected();
    let server = &mut accepted.session;
    let mut wire = Vec::new();
    let mut out = Vec::new();
    let big = vec![0x5A; 70_000];
    let frames: [(bool, &[u8]); 4] = [
        (true, b"multi"),
        (true, b""),
        (false, b"part"),
        (false, &big),
    ];
    for (more, frame) in frames {
        wire.clear();
        client.seal(more, frame, &mut wire);
        assert_eq!(wire.len(), CurveSession::sealed_len(frame.len()));
        let got = server.open(&wire, &mut out).unwrap();
        assert_eq!((got.more, got.command, got.frame), (more, false, frame));
        // The other way.
        wire.clear();
        server.seal(more, frame, &mut wire);
        let got = client.open(&wire, &mut out).unwrap();
        assert_eq!((got.more, got.command, got.frame), (more, false, frame));
    }
    // A ZMTP command (a PING) sealed as one, opened in place.
    wire.clear();
    client.seal_command(b"\x04PING\x00\x0a", &mut wire);
    let got = server.open_in_place(&mut wire).unwrap();
    assert_eq!(
        (got.more, got.command, got.frame),
        (false, true, &b"\x04PING\x00\x0a"[..])
    );
}

#[test]
fn short_nonces_continue_from_the_handshake_as_libzmq_counts() {
    let (mut client, mut accepted) = connected();
    let mut wire = Vec::new();
    client.seal(false, b"a", &mut wire);
    assert_eq!(&wire[..8], b"\x07MESSAGE");
    assert_eq!(
        wire[8..16],
        3u64.to_be_bytes(),
        "after HELLO 1 and INITIATE 2"
    );
    wire.clear();
    accepted.session.seal(false, b"b", &mut wire);
    assert_eq!(wire[8..16], 2u64.to_be_bytes(), "after READY 1");
    assert_eq!(wire.len(), MESSAGE_OVERHEAD + 1);
}

#[test]
fn a_tampered_message_is_rejected_wherever_the_byte_is() {
    let (mut client, mut accepted) = connected();
    let mut wire = Vec::new();
    client.seal(true, b"pay 100 to alice", &mut wire);
    let mut out = Vec::new();
    for i in 0..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x20;
        let err = accepted.session.open(&bad, &mut out).unwrap_err();
        match i {
            0..=7 => assert!(matches!(err, CurveError::Unexpected { .. }), "{i}: {err}"),
            // A nonce made smaller is a replay; made larger, a box that does not open.
            8..=15 => assert!(
                matches!(err, CurveError::Replay { .. } | CurveError::Crypto(_)),
                "{i}: {err}"
            ),
            _ => assert!(
                err.to_string().contains("corrupted or forged"),
                "{i}: {err}"
            ),
        }
    }
    // None of the forgeries moved the nonce on: the genuine message still opens.
    let got = accepted.session.open(&wire, &mut out).unwrap();
    assert_eq!((got.more, got.frame), (true, &b"pay 100 to alice"[..]));
    // Too short to hold a box, and not a MESSAGE at all.
    let err = accepted
        .session
        .open(&wire[..MESSAGE_OVERHEAD - 1], &mut out)
        .unwrap_err();
    assert!(matches!(err, CurveError::Malformed { .. }), "{err}");
    let err = accepted
        .session
        .open(b"\x04PING\x00\x00", &mut out)
        .unwrap_err();
    assert_eq!(
        err,
        CurveError::Unexpected {
            expected: "MESSAGE",
            got: "PING".into()
        }
    );
}

#[test]
fn a_replayed_or_reordered_message_is_rejected() {
    let (mut client, mut accepted) = connected();
    let server = &mut accepted.session;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    client.seal(false, b"one", &mut first);
    client.seal(false, b"two", &mut second);
    let mut out = Vec::new();
    // Reordered: the second arrives first, then the first is too old.
    assert_eq!(server.open(&second, &mut out).unwrap().frame, b"two");
    let err = server.open(&first, &mut out).unwrap_err();
    assert_eq!(err, CurveError::Replay { nonce: 3, last: 4 });
    assert!(err.to_string().contains("replayed"), "{err}");
    // Replayed: the same message twice.
    let err = server.open(&second, &mut out).unwrap_err();
    assert_eq!(err, CurveError::Replay { nonce: 4, last: 4 });
    // A message of the client's own direction cannot be reflected back at it.
    let mut reflected = Vec::new();
    client.seal(false, b"three", &mut reflected);
    assert!(matches!(
        client.open(&reflected, &mut out).unwrap_err(),
        CurveError::Crypto(_)
    ));
}

#[test]
fn a_client_with_the_wrong_server_key_fails_with_a_clear_error() {
    let server_keys = pair(SERVER);
    let impostor = CurveKeyPair::generate();
    let mut client = CurveClient::new(&pair(CLIENT), impostor.public(), &[]).unwrap();
    let mut server = CurveServer::new(&server_keys, None, &[]);
    let err = server.on_hello(&client.hello()).unwrap_err();
    assert!(err.to_string().contains("wrong server public key"), "{err}");
    // The server tells the client, and the client passes the reason on.
    let error = err.error_body().expect("an ERROR to send");
    let refused = client.on_welcome(&error).unwrap_err();
    assert!(matches!(refused, CurveError::Refused(_)));
    assert!(
        refused.to_string().contains("wrong server public key"),
        "{refused}"
    );

    // An impostor (another key pair) answering a client that expects the real server:
    // the client cannot open its WELCOME.
    let mut client = CurveClient::new(&pair(CLIENT), server_keys.public(), &[]).unwrap();
    let _ = client.hello();
    let mut dupe = CurveClient::new(&pair(CLIENT), impostor.public(), &[]).unwrap();
    let welcome = CurveServer::new(&impostor, None, &[])
        .on_hello(&dupe.hello())
        .unwrap();
    let err = client.on_welcome(&welcome).unwrap_err();
    assert!(err.to_string().contains("wrong server key"), "{err}");
}

#[test]
fn a_client_not_on_the_allow_list_is_refused_with_zap_status_400() {
    let client_keys = pair(CLIENT);
    let other = CurveKeyPair::generate();
    let (mut client, mut server, t) =
        up_to_initiate(&client_keys, &pair(SERVER), allow(&[other.public()]));
    let err = server.on_initiate(&t.initiate).unwrap_err();
    assert_eq!(err, CurveError::NotAllowed(client_keys.public()));
    assert_eq!(
        err.to_string(),
        format!(
            "client key {} is not allowed (it is not on this server's allow-list)",
            CLIENT.1
        )
    );
    // What goes on the wire is libzmq's: ERROR "400".
    let error = err.error_body().unwrap();
    assert_eq!(error, b"\x05ERROR\x03400");
    let refused = client.on_ready(&error).unwrap_err();
    assert_eq!(refused, CurveError::Refused("400".into()));
    assert!(refused.to_string().contains("refused our key"), "{refused}");
    // An empty allow-list admits nobody.
    let (_, mut server, t) = up_to_initiate(&client_keys, &pair(SERVER), allow(&[]));
    assert!(matches!(
        server.on_initiate(&t.initiate),
        Err(CurveError::NotAllowed(_))
    ));
}

#[test]
fn every_tampered_handshake_byte_is_caught() {
    let (client_keys, server_keys) = (pair(CLIENT), pair(SERVER));
    // HELLO: the name, version, key, nonce and box all matter; the padding is not checked
    // (RFC 26 only asks that it be sent), as libzmq does not check it.
    let (_, _, t) = up_to_initiate(&client_keys, &server_keys, None);
    for i in (0..8).chain(80..200) {
        let mut bad = t.hello.clone();
        bad[i] ^= 0x01;
        let mut server = CurveServer::new(&server_keys, None, &[]);
        assert!(server.on_hello(&bad).is_err(), "HELLO byte {i}");
    }
    // WELCOME: all of it (a fresh client each time: a client takes one WELCOME).
    for i in 0..t.welcome.len() {
        let mut client = CurveClient::new(&client_keys, server_keys.public(), &[]).unwrap();
        let mut server = CurveServer::new(&server_keys, None, &[]);
        let mut bad = server.on_hello(&client.hello()).unwrap();
        bad[i] ^= 0x01;
        assert!(client.on_welcome(&bad).is_err(), "WELCOME byte {i}");
    }
    // INITIATE: all of it.
    for i in 0..t.initiate.len() {
        let (_, mut server, t) = up_to_initiate(&client_keys, &server_keys, None);
        let mut bad = t.initiate.clone();
        bad[i] ^= 0x01;
        assert!(server.on_initiate(&bad).is_err(), "INITIATE byte {i}");
    }
    // READY: all of it (its short nonce is part of the box's nonce).
    let ready_len = 30 + zmtp::socket_type_metadata("PAIR").len();
    for i in 0..ready_len {
        let (mut client, mut server, t) = up_to_initiate(&client_keys, &server_keys, None);
        let mut bad = server.on_initiate(&t.initiate).unwrap().ready;
        bad[i] ^= 0x01;
        assert!(client.on_ready(&bad).is_err(), "READY byte {i}");
    }
}

#[test]
fn an_initiate_replayed_on_another_connection_is_refused() {
    let (client_keys, server_keys) = (pair(CLIENT), pair(SERVER));
    let (_, mut first, t) = up_to_initiate(&client_keys, &server_keys, None);
    first.on_initiate(&t.initiate).unwrap();
    // A second connection: same HELLO replayed, then the first connection's INITIATE.
    let mut second = CurveServer::new(&server_keys, None, &[]);
    second.on_hello(&t.hello).unwrap();
    let err = second.on_initiate(&t.initiate).unwrap_err();
    assert!(err.to_string().contains("cookie"), "{err}");
}

#[test]
fn wrong_commands_and_sizes_are_named() {
    let (client_keys, server_keys) = (pair(CLIENT), pair(SERVER));
    let mut server = CurveServer::new(&server_keys, None, &[]);
    assert_eq!(
        server.on_hello(&zmtp::ready_body("PAIR")).unwrap_err(),
        CurveError::Unexpected {
            expected: "HELLO",
            got: "READY".into()
        }
    );
    let mut server = CurveServer::new(&server_keys, None, &[]);
    let mut client = CurveClient::new(&client_keys, server_keys.public(), &[]).unwrap();
    let hello = client.hello();
    let err = server.on_hello(&hello[..199]).unwrap_err();
    assert!(
        err.to_string()
            .contains("malformed HELLO: 199 bytes, expected 200"),
        "{err}"
    );
    let mut v2 = hello.clone();
    v2[6] = 2;
    let mut server = CurveServer::new(&server_keys, None, &[]);
    let err = server.on_hello(&v2).unwrap_err();
    assert!(err.to_string().contains("version 2.0"), "{err}");
    let mut server = CurveServer::new(&server_keys, None, &[]);
    let welcome = server.on_hello(&hello).unwrap();
    let err = client.on_welcome(&welcome[..167]).unwrap_err();
    assert!(err.to_string().contains("167 bytes, expected 168"), "{err}");
    // Empty and garbage bodies are errors, never panics.
    for body in [&b""[..], b"\x00", b"\xff", b"\x05HEL"] {
        let mut server = CurveServer::new(&server_keys, None, &[]);
        assert!(server.on_hello(body).is_err());
    }
    // A client's metadata that is not a property list is refused by the server.
    let mut client = CurveClient::new(&client_keys, server_keys.public(), b"\x0bSocket").unwrap();
    let mut server = CurveServer::new(&server_keys, None, &[]);
    let welcome = server.on_hello(&client.hello()).unwrap();
    let initiate = client.on_welcome(&welcome).unwrap();
    let err = server.on_initiate(&initiate).unwrap_err();
    assert!(err.to_string().contains("malformed INITIATE"), "{err}");
    let err = server.on_initiate(&initiate).unwrap_err();
    assert!(matches!(err, CurveError::OutOfOrder(_)), "{err}");
    assert_eq!(
        err.error_body(),
        None,
        "a caller bug is not the peer's business"
    );
}

#[test]
fn the_state_machines_refuse_to_run_out_of_order() {
    let (client_keys, server_keys) = (pair(CLIENT), pair(SERVER));
    let mut client = CurveClient::new(&client_keys, server_keys.public(), &[]).unwrap();
    assert!(matches!(
        client.on_welcome(&[0; 168]),
        Err(CurveError::OutOfOrder(_))
    ));
    assert!(matches!(
        client.on_ready(&[0; 30]),
        Err(CurveError::OutOfOrder(_))
    ));
    let mut server = CurveServer::new(&server_keys, None, &[]);
    assert!(matches!(
        server.on_initiate(&[0; 300]),
        Err(CurveError::OutOfOrder(_))
    ));
}

#[test]
fn a_low_order_server_key_is_refused_up_front() {
    let err = CurveClient::new(&pair(CLIENT), CurvePublicKey::from_bytes([0; 32]), &[])
        .err()
        .unwrap();
    assert!(err.to_string().contains("low-order"), "{err}");
}
