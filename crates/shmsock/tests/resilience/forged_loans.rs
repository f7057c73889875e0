//! A hostile lender: a hand-made peer (its segment and loan pool built by hand, the
//! handshake spoken by hand) writes loan frames into its own ring — a `Conn`'s ring, an
//! `Inbox` writer's ring, or a publisher's broadcast ring — and our receiver must take the
//! well-formed ones (the bytes of the named slot, handed back through the release word of
//! our segment when dropped) and answer every forged one with `Error::Corrupt` naming the
//! problem: a slot out of range, a length beyond the slot, a generation not newer than the
//! slot's last one, a slot lent again while we hold it, a loan frame of the wrong length,
//! a loan from a peer that announced no pool. Never a panic, a hang or a read outside the
//! pool (that would kill this process).
//!
//! The frames go through real rings: the peer keeps a writable mapping of its sealed
//! segment (`rawpeer::WritableSegment`) and publishes each frame as the library does
//! (payload, `len|kind`, cleared next tag, then the tag with `Release`; a publisher moves
//! its seqlock'd cursor first), so the receiver runs its real code from `peek` to the
//! release word, which the peer reads back from our segment.

use std::io::Read;
use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Inbox, Options, Sample};

use crate::hostile_lender::{
    assert_corrupt, conn_lender, pool_fds, publisher_lender, slot_bytes, Api, Got, Lender,
    Receiver, CAP, SLOTS, SLOT_BYTES,
};
use crate::rawloan::{
    self, PeerWords, RawRing, HELLO_FLAG_POOL, KIND_LOAN, LOAN_FRAME_BYTES, ROLE_CONN,
};
use crate::rawpeer::WritableSegment;
use shmsock_testkit::harness::{self, STEP_TIMEOUT};
use shmsock_testkit::message::SplitMix64;
/// Connections of the random-frame test (each ends with its first forged frame).
const RANDOM_CONNECTIONS: u64 = 300;

/// One forged frame, after some well-formed loans.
struct Forgery {
    name: &'static str,
    /// Well-formed loans first: (slot, generation, len, hold the sample).
    before: &'static [(u32, u64, u64, bool)],
    /// The forged loan: (slot, generation, len), in a frame whose header claims `frame_len`.
    forged: (u32, u64, u64),
    frame_len: u64,
    words: &'static [&'static str],
}

const fn forgery(
    name: &'static str,
    before: &'static [(u32, u64, u64, bool)],
    forged: (u32, u64, u64),
    words: &'static [&'static str],
) -> Forgery {
    Forgery {
        name,
        before,
        forged,
        frame_len: LOAN_FRAME_BYTES,
        words,
    }
}

const fn wrong_length(
    name: &'static str,
    frame_len: u64,
    words: &'static [&'static str],
) -> Forgery {
    Forgery {
        name,
        before: &[(0, 1, 10, false)],
        forged: (1, 2, 8),
        frame_len,
        words,
    }
}

const FORGERIES: [Forgery; 18] = [
    forgery(
        "slot = slots",
        &[],
        (4, 1, 8),
        &["loan of slot 4", "pool has 4"],
    ),
    forgery("slot u32::MAX", &[], (u32::MAX, 1, 8), &["pool has 4"]),
    forgery(
        "length slot + 1",
        &[],
        (0, 1, 257),
        &["257 bytes", "slot of 256"],
    ),
    forgery(
        "length 2^32 (u32 truncation bait)",
        &[],
        (0, 1, 1 << 32),
        &["slot of 256"],
    ),
    forgery("length u64::MAX", &[], (0, 1, u64::MAX), &["slot of 256"]),
    forgery(
        "generation 0",
        &[],
        (0, 0, 8),
        &["generation 0", "not newer than 0"],
    ),
    forgery(
        "a replayed generation",
        &[(1, 5, 100, false)],
        (1, 5, 8),
        &["generation 5", "not newer than 5"],
    ),
    forgery(
        "an older generation",
        &[(1, 5, 100, false)],
        (1, 3, 8),
        &["generation 3", "not newer than 5"],
    ),
    forgery(
        "a slot lent again while we hold it",
        &[(2, 7, 256, true)],
        (2, 8, 8),
        &["slot 2 lent again", "still hold generation 7"],
    ),
    forgery(
        "a slot lent again while we hold it, after other traffic",
        &[
            (0, 1, 10, true),
            (1, 2, 0, false),
            (3, 3, 30, true),
            (1, 4, 256, false),
        ],
        (3, 9, 1),
        &["slot 3 lent again", "still hold generation 3"],
    ),
    // Generations wrap (u64::MAX, then 1: an honest lender skips 0), so "newer" means less
    // than 2^63 ahead modulo 2^64.
    forgery(
        "generation u64::MAX, then 0",
        &[(0, u64::MAX, 5, false)],
        (0, 0, 5),
        &["generation 0", "not newer than 18446744073709551615"],
    ),
    forgery(
        "generation u64::MAX, then one 2^63 past it (behind it, modulo 2^64)",
        &[(0, u64::MAX, 5, false)],
        (0, 1 << 63, 5),
        &[
            "generation 9223372036854775808",
            "not newer than 18446744073709551615",
        ],
    ),
    wrong_length(
        "a loan frame of 0 bytes",
        0,
        &["claims 0 bytes", "expected 24"],
    ),
    wrong_length(
        "a loan frame of 16 bytes",
        16,
        &["claims 16 bytes", "expected 24"],
    ),
    wrong_length(
        "a loan frame of 23 bytes",
        23,
        &["claims 23 bytes", "expected 24"],
    ),
    wrong_length(
        "a loan frame of 25 bytes",
        25,
        &["claims 25 bytes", "expected 24"],
    ),
    wrong_length(
        "a loan frame of 32 bytes",
        32,
        &["claims 32 bytes", "expected 24"],
    ),
    wrong_length(
        "a loan frame of 200 bytes",
        200,
        &["claims 200 bytes", "expected 24"],
    ),
];

/// Plays `f` against `lender` with `api`: the well-formed loans arrive with the slot's
/// bytes and are handed back through the release word; the forged frame is `Corrupt`
/// (and stays so); samples held across it still read their slot and still hand it back.
/// Returns how many frames were written.
fn play(lender: &mut Lender, f: &Forgery, api: Api, what: &str) -> u64 {
    let subscriber = matches!(lender.rx, Receiver::Sub(_));
    let mut held = Vec::new();
    for &(slot, generation, len, hold) in f.before {
        lender.ring.loan(slot, generation, len);
        let got = lender
            .rx
            .recv(if hold { Api::Sample } else { api })
            .unwrap_or_else(|e| panic!("{what}: a well-formed loan: {e}"));
        let slot = u64::from(slot);
        assert_eq!(got.bytes(), slot_bytes(slot, len), "{what}: slot {slot}");
        if subscriber {
            assert_eq!(lender.theirs.taken(slot), generation, "{what}: the claim");
        }
        match got {
            Got::Sample(s) if hold => held.push((slot, generation, len, s)),
            got => {
                drop(got);
                assert_eq!(lender.theirs.released(slot), generation, "{what}: release");
            }
        }
    }
    let (slot, generation, len) = f.forged;
    let words = [u64::from(slot), generation, len];
    lender.ring.publish(KIND_LOAN, f.frame_len, &words);
    assert_corrupt(lender.rx.recv(api), f.words, what);
    assert!(
        matches!(lender.rx.try_recv(), Err(Error::Corrupt { .. })),
        "{what}: Corrupt must stick"
    );
    for (slot, generation, len, sample) in held {
        assert_ne!(
            lender.theirs.released(slot),
            generation,
            "{what}: released early"
        );
        assert_eq!(
            sample.to_vec(),
            slot_bytes(slot, len),
            "{what}: a held sample"
        );
        drop(sample);
        assert_eq!(
            lender.theirs.released(slot),
            generation,
            "{what}: late release"
        );
    }
    f.before.len() as u64 + 1
}

/// Every forgery against a `Conn` and a `Subscriber`, through `recv_sample` and (when it
/// holds nothing) through a plain `recv`.
#[test]
fn forged_loan_frames_are_corrupt_naming_the_problem() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("forged"), Options::new());
    let (mut frames, mut connections) = (0, 0);
    for f in &FORGERIES {
        let holds = f.before.iter().any(|b| b.3);
        for api in [Api::Sample, Api::Plain] {
            if api == Api::Plain && holds {
                continue;
            }
            let what = format!("Conn {api:?}: {}", f.name);
            frames += play(&mut conn_lender(&listener, true), f, api, &what);
            let what = format!("Subscriber {api:?}: {}", f.name);
            let ep = harness::endpoint("forged-pub");
            frames += play(&mut publisher_lender(&ep, true), f, api, &what);
            connections += 2;
        }
    }
    eprintln!(
        "{frames} loan frames ({} forged kinds) over {connections} connections",
        FORGERIES.len()
    );
}

#[test]
fn a_loan_frame_from_a_peer_without_a_pool_is_corrupt() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("forged-nopool"), Options::new());
    let words = &["announced no loan pool"][..];
    for api in [Api::Sample, Api::Plain] {
        let mut lender = conn_lender(&listener, false);
        lender.ring.loan(0, 1, 8);
        assert_corrupt(lender.rx.recv(api), words, &format!("Conn {api:?}"));
        let mut lender = publisher_lender(&harness::endpoint("forged-nopool-pub"), false);
        lender.ring.loan(0, 1, 8);
        assert_corrupt(lender.rx.recv(api), words, &format!("Subscriber {api:?}"));
    }
}

/// The checks of `Borrower::check`, as a model: the verdict a receiver must give a loan
/// frame `(slot, generation, len)`, given the last generation of each slot (0: none yet)
/// and which slots it holds. `None`: valid. Generations count modulo 2^64 and are never 0:
/// "newer" is less than 2^63 ahead.
fn verdict(
    last: &[u64],
    held: &[bool],
    slot: u64,
    generation: u64,
    len: u64,
) -> Option<&'static str> {
    if slot >= SLOTS {
        return Some("pool has 4");
    }
    if len > SLOT_BYTES {
        return Some("in a slot of 256");
    }
    let prior = last[slot as usize];
    let ahead = generation.wrapping_sub(prior);
    if generation == 0 || (prior != 0 && !(1..1 << 63).contains(&ahead)) {
        return Some("not newer than");
    }
    if held[slot as usize] {
        return Some("still hold");
    }
    None
}

/// Random loan frames (mostly plausible, some forged in one field) against a `Conn`: each
/// gets exactly the verdict of the model above; valid ones deliver the slot's bytes and are
/// released (at once, or later when a held sample is dropped), the first forged one is
/// `Corrupt` and ends the connection.
#[test]
fn random_loan_frames_get_exactly_the_protocol_verdict() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("forged-random"), Options::new());
    let mut rng = SplitMix64::new(0x0001_0af0_96e5);
    let (mut valid, mut forged, mut connections) = (0u64, 0u64, 0u64);
    while connections < RANDOM_CONNECTIONS {
        let mut lender = conn_lender(&listener, true);
        connections += 1;
        let mut last = [0u64; SLOTS as usize];
        let mut held: Vec<Option<Sample>> = (0..SLOTS).map(|_| None).collect();
        loop {
            // Now and then hand a held sample back.
            let s = rng.below_or_eq(SLOTS as usize - 1);
            if rng.below_or_eq(3) == 0 {
                if let Some(sample) = held[s].take() {
                    drop(sample);
                    assert_eq!(lender.theirs.released(s as u64), last[s]);
                }
            }
            let slot = match rng.below_or_eq(19) {
                0 => [4, 5, 255, u64::from(u32::MAX)][rng.below_or_eq(3)],
                _ => rng.below_or_eq(SLOTS as usize - 1) as u64,
            };
            let len = match rng.below_or_eq(19) {
                0 => [257, 4096, 1 << 32, u64::MAX][rng.below_or_eq(3)],
                _ => rng.below_or_eq(SLOT_BYTES as usize) as u64,
            };
            let prior = last.get(slot as usize).copied().unwrap_or(0);
            let generation = match rng.below_or_eq(19) {
                0 => prior,
                1 => prior.saturating_sub(1),
                2 => 0,
                3 => u64::MAX,
                4..=8 => prior.saturating_add(1 + rng.below_or_eq(1000) as u64),
                _ => prior.saturating_add(1),
            };
            let is_held: Vec<bool> = held.iter().map(Option::is_some).collect();
            let expected = verdict(&last, &is_held, slot, generation, len);
            lender.ring.loan(slot as u32, generation, len);
            let api = if rng.below_or_eq(1) == 0 {
                Api::Sample
            } else {
                Api::Plain
            };
            let got = lender.rx.recv(api);
            let what =
                format!("connection {connections}, loan ({slot}, {generation}, {len}) by {api:?}");
            match expected {
                Some(word) => {
                    assert_corrupt(got, &[word], &what);
                    forged += 1;
                    break;
                }
                None => {
                    let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(got.bytes(), slot_bytes(slot, len), "{what}");
                    valid += 1;
                    last[slot as usize] = generation;
                    match got {
                        Got::Sample(sample) if rng.below_or_eq(1) == 0 => {
                            held[slot as usize] = Some(sample);
                        }
                        got => {
                            drop(got);
                            assert_eq!(lender.theirs.released(slot), generation, "{what}");
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{} random loan frames over {connections} connections: {valid} valid, {forged} forged, \
         each with the model's verdict",
        valid + forged
    );
    assert_eq!(forged, connections);
    assert!(
        valid > 100,
        "too few valid loans ({valid}) to mean anything"
    );
}

/// A forged loan from one `Inbox` writer is reported once as `Corrupt` and drops that
/// writer; a correct writer goes on untouched.
#[test]
fn a_forged_loan_drops_only_its_inbox_writer() {
    let _serial = crate::serial();
    let ep = harness::endpoint("forged-inbox");
    let mut inbox = Inbox::bind(&ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    let mut good = Conn::connect(&ep).expect("a correct writer");
    let mut buf = [0u8; SLOT_BYTES as usize];
    // A loan that fails the borrower's checks is reported (`Corrupt`, once); a frame the
    // ring itself rejects drops the writer silently (logged), like any corrupt ring.
    // (name, forged loan, the frame's claimed length, the word, Corrupt reports)
    type Case = (&'static str, (u32, u64, u64), u64, &'static str, usize);
    let cases: [Case; 3] = [
        (
            "slot out of range",
            (9, 2, 8),
            LOAN_FRAME_BYTES,
            "pool has 4",
            1,
        ),
        (
            "a replayed generation",
            (1, 1, 8),
            LOAN_FRAME_BYTES,
            "not newer than 1",
            1,
        ),
        (
            "a loan frame of 16 bytes",
            (1, 2, 8),
            16,
            "claims 16 bytes",
            0,
        ),
    ];
    for (name, (slot, generation, len), frame_len, word, reported) in cases {
        let (seg, fds) = pool_fds(WritableSegment::create(CAP), true);
        let hello = rawloan::hello(CAP, ROLE_CONN, HELLO_FLAG_POOL, SLOTS as u32, SLOT_BYTES);
        let peer = rawloan::connect_now(inbox.socket_path(), &hello, fds);
        assert!(peer.accepted, "{name}: the hand-made writer's handshake");
        let mut fds = peer.fds.into_iter();
        let theirs = PeerWords::new(fds.next().expect("the inbox's segment"));
        let bell = fds.next().expect("the inbox's doorbell");
        let ring_bell = || rustix::io::write(&bell, &1u64.to_ne_bytes()).expect("ringing");
        let mut ring = RawRing::new(seg);
        // A well-formed loan first: delivered and released like any message.
        ring.loan(1, 1, 100);
        ring_bell();
        let (n, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("the loan");
        assert_eq!(&buf[..n], &slot_bytes(1, 100)[..], "{name}");
        assert_eq!(theirs.released(1), 1, "{name}: released");
        let writers = inbox.writer_count();
        ring.publish(KIND_LOAN, frame_len, &[u64::from(slot), generation, len]);
        ring_bell();
        good.send(name.as_bytes()).expect("the correct writer");
        let mut corrupt = 0;
        let mut delivered = false;
        let deadline = Instant::now() + STEP_TIMEOUT;
        // Until the correct writer's message is in and the forger is gone.
        while !delivered || inbox.writer_count() != writers - 1 {
            assert!(Instant::now() < deadline, "{name}: the forger stays");
            match inbox.recv_from_timeout(&mut buf, Duration::from_millis(20)) {
                Ok((n, id)) => {
                    assert_ne!(id, from, "{name}: the forged writer delivered");
                    assert_eq!(&buf[..n], name.as_bytes());
                    delivered = true;
                }
                Err(Error::Corrupt { what, .. }) => {
                    assert!(what.contains(word), "{name}: {what}");
                    corrupt += 1;
                }
                Err(Error::TimedOut) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(corrupt, reported, "{name}: Corrupt reports");
        // The inbox closed the forger's connection: a goodbye, then the hang-up.
        peer.sock
            .set_read_timeout(Some(STEP_TIMEOUT))
            .expect("timeout");
        let mut rest = Vec::new();
        (&peer.sock)
            .read_to_end(&mut rest)
            .expect("reading until the hang-up");
        assert!(rest.iter().all(|&b| b == b'B'), "{name}: {rest:?}");
    }
}
