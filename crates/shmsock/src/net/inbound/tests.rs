//! The parser against whole, cut and hostile byte streams.

use super::*;
use crate::net::zmtp::{encode_header, FLAG_COMMAND, FLAG_LONG, FLAG_MORE, HEADER_MAX_LEN};
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

/// Every message in `inbound`, as owned payloads (commands as `None`).
fn drain(inbound: &mut Inbound) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    while let Some(item) = inbound.next().unwrap() {
        out.push(match item {
            Item::Message { payload, .. } => Some(inbound.bytes()[payload].to_vec()),
            Item::Command { .. } => None,
        });
    }
    out
}

proptest! {
    #[test]
    fn messages_fed_in_any_cuts_come_out_whole(
        messages in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..4), 1..5),
        cuts in prop::collection::vec(1usize..700, 1..20),
    ) {
        let wire: Vec<u8> = messages.iter().flat_map(|m| encode(m)).collect();
        let mut inbound = Inbound::new(1 << 20);
        let (mut at, mut got) = (0, Vec::new());
        for cut in cuts.iter().cycle() {
            if at == wire.len() {
                break;
            }
            let end = (at + cut).min(wire.len());
            inbound.push(&wire[at..end]);
            at = end;
            got.extend(drain(&mut inbound));
        }
        let expected: Vec<_> = messages.iter().map(|m| Some(m.concat())).collect();
        prop_assert_eq!(got, expected);
        prop_assert!(inbound.is_empty());
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut inbound = Inbound::new(1000);
        inbound.push(&bytes);
        while let Ok(Some(_)) = inbound.next() {}
    }
}

#[test]
fn oversized_frames_are_rejected_from_the_header_alone() {
    let mut wire = vec![FLAG_LONG];
    wire.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let mut inbound = Inbound::new(64 << 20);
    inbound.push(&wire);
    let err = inbound.next().unwrap_err();
    assert!(err.contains("max_message_len"), "{err}");
    // The sum of a multipart message counts too.
    let parts = vec![vec![1u8; 600], vec![2u8; 600]];
    let mut small = Inbound::new(1000);
    small.push(&encode(&parts));
    assert!(small.next().is_err());
    let mut enough = Inbound::new(1200);
    enough.push(&encode(&parts));
    assert_eq!(drain(&mut enough), vec![Some(parts.concat())]);
}

#[test]
fn reserved_flags_and_commands_inside_messages_are_rejected() {
    for wire in [
        &[0x08u8, 0][..],
        &[FLAG_COMMAND | FLAG_MORE, 0],
        &[FLAG_MORE, 0, FLAG_COMMAND, 0],
    ] {
        let mut inbound = Inbound::new(10);
        inbound.push(wire);
        assert!(inbound.next().is_err(), "{wire:?}");
    }
}

#[test]
fn an_announced_length_costs_nothing_until_its_bytes_arrive() {
    let mut inbound = Inbound::new(64 << 20);
    let mut wire = vec![FLAG_LONG];
    wire.extend_from_slice(&(60u64 << 20).to_be_bytes());
    inbound.push(&wire);
    assert_eq!(inbound.next(), Ok(None));
    assert!(
        inbound.capacity() <= INITIAL_BYTES,
        "{}",
        inbound.capacity()
    );
    // As the body arrives the buffer grows with it, never far ahead of it.
    let chunk = vec![7u8; 1 << 20];
    for received in 1..=3usize {
        inbound.push(&chunk);
        assert_eq!(inbound.next(), Ok(None));
        assert!(inbound.capacity() <= 2 * (received << 20) + 2 * INITIAL_BYTES);
    }
}

#[test]
fn empty_frames_with_more_cost_no_memory() {
    let mut inbound = Inbound::new(64 << 20);
    let frames = [FLAG_MORE, 0].repeat(INITIAL_BYTES / 2);
    for _ in 0..1000 {
        inbound.push(&frames);
        assert_eq!(inbound.next(), Ok(None));
    }
    assert!(
        inbound.capacity() <= 2 * INITIAL_BYTES,
        "{}",
        inbound.capacity()
    );
    // The message still ends properly.
    let mut end = encode(&[b"x".to_vec()]);
    end.extend(encode(&[b"next".to_vec()]));
    inbound.push(&end);
    assert_eq!(
        drain(&mut inbound),
        vec![Some(b"x".to_vec()), Some(b"next".to_vec())]
    );
}

#[test]
fn commands_come_out_between_messages() {
    let mut wire = encode(&[b"a".to_vec()]);
    wire.extend_from_slice(&[FLAG_COMMAND, 5, 4, b'P', b'I', b'N', b'G']);
    wire.extend(encode(&[b"b".to_vec(), b"c".to_vec()]));
    let mut inbound = Inbound::new(100);
    inbound.push(&wire);
    assert_eq!(
        drain(&mut inbound),
        vec![Some(b"a".to_vec()), None, Some(b"bc".to_vec())]
    );
}

#[test]
fn raw_bytes_are_taken_before_frames() {
    let mut inbound = Inbound::new(100);
    inbound.push(b"0123456789");
    assert!(inbound.take_raw(11).is_none());
    assert_eq!(inbound.take_raw(4), Some(&b"0123"[..]));
    assert_eq!(inbound.buffered(), 6);
    assert_eq!(inbound.take_raw(6), Some(&b"456789"[..]));
    assert_eq!(inbound.next(), Ok(None));
    assert!(inbound.is_empty());
}
