//! Self-checking test messages: a seeded size sequence, a sequence number and a checksum.
//!
//! ```text
//!  message #seq of length L:  [ seq: u64 LE ][ checksum(body): u64 LE ][ body: L-16 bytes ]
//! ```
//! A message shorter than 16 bytes has no body and carries the first L bytes of that header,
//! so even a 0-byte message is checked (its length comes from the shared size sequence).
//! Lengths and bodies come from two independent seeded generators, so the receiver can
//! replay the lengths without generating the bodies.

use std::time::{Duration, Instant};

use shmsock::Conn;

use crate::child::{COUNT_ENV, MAX_LEN_ENV, SEED_ENV};
use crate::harness::STEP_TIMEOUT;

/// Bytes of the `seq | checksum` header.
pub const HEADER_BYTES: usize = 16;

/// SplitMix64: tiny, seedable, and the same in both processes.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max` (the modulo bias is irrelevant here).
    pub fn below_or_eq(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }
}

/// The message lengths of a stream seeded with `seed`.
pub fn lengths(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed)
}

/// The body generator of a stream seeded with `seed`.
pub fn bodies(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ 0x5bd1_e995_0000_0000)
}

/// FNV-1a, 64-bit, folded over 8-byte words (then the tail bytes): cheap enough for a
/// gigabyte in a debug build, and any flipped, lost or reordered byte changes it.
pub fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

/// Fills `msg` (its length is the message length) as message `seq`.
pub fn encode(seq: u64, body_rng: &mut SplitMix64, msg: &mut [u8]) {
    let split = HEADER_BYTES.min(msg.len());
    let (head, body) = msg.split_at_mut(split);
    for chunk in body.chunks_mut(8) {
        let w = body_rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    let header = header(seq, checksum(body));
    head.copy_from_slice(&header[..split]);
}

fn header(seq: u64, sum: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..8].copy_from_slice(&seq.to_le_bytes());
    h[8..].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Checks that `got` is message `seq` of `len` bytes, intact. The error says what is wrong:
/// a wrong length, a wrong sequence number (lost, duplicated or reordered), or a bad checksum.
pub fn verify(seq: u64, len: usize, got: &[u8]) -> Result<(), String> {
    let carried = (got.len() >= 8)
        .then(|| u64::from_le_bytes(got[..8].try_into().expect("8 bytes")))
        .map_or(String::new(), |s| {
            format!(" (it carries sequence number {s})")
        });
    if got.len() != len {
        return Err(format!(
            "message #{seq} is {} bytes, expected {len}{carried}",
            got.len()
        ));
    }
    let split = HEADER_BYTES.min(len);
    let (head, body) = got.split_at(split);
    let expected = header(seq, checksum(body));
    if head[..split.min(8)] != expected[..split.min(8)] {
        return Err(format!(
            "expected message #{seq} but got another one{carried}: lost, duplicated or reordered"
        ));
    }
    if head[8.min(split)..] != expected[8.min(split)..split] {
        return Err(format!(
            "message #{seq} ({len} bytes) has a bad checksum: its bytes were corrupted"
        ));
    }
    Ok(())
}

/// The environment that asks a child's role for messages `0..count` of the stream seeded
/// with `seed` (lengths in `0..=max_len`), made by [`stream_env`].
#[derive(Debug, Clone)]
pub struct StreamEnv {
    count: String,
    seed: String,
    max_len: String,
}

impl StreamEnv {
    /// The variables, for [`crate::harness::Peer::spawn`].
    pub fn vars(&self) -> [(&'static str, &str); 3] {
        [
            (COUNT_ENV, &self.count),
            (SEED_ENV, &self.seed),
            (MAX_LEN_ENV, &self.max_len),
        ]
    }
}

/// The environment ([`COUNT_ENV`], [`SEED_ENV`], [`MAX_LEN_ENV`]) that asks a child's role
/// for messages `0..count` of the stream seeded with `seed` (lengths in `0..=max_len`).
pub fn stream_env(count: u64, seed: u64, max_len: usize) -> StreamEnv {
    StreamEnv {
        count: count.to_string(),
        seed: seed.to_string(),
        max_len: max_len.to_string(),
    }
}

/// Builds messages `0..count` of the stream seeded with `seed` (lengths in `0..=max_len`)
/// and hands each to `send` with its sequence number.
pub fn for_each_message(count: u64, seed: u64, max_len: usize, mut send: impl FnMut(u64, &[u8])) {
    let (mut lens, mut body) = (lengths(seed), bodies(seed));
    let mut buf = vec![0u8; max_len];
    for seq in 0..count {
        let msg = &mut buf[..lens.below_or_eq(max_len)];
        encode(seq, &mut body, msg);
        send(seq, msg);
    }
}

/// Sends messages `0..count` of the stream seeded with `seed` (lengths in `0..=max_len`).
pub fn send_stream(conn: &mut Conn, count: u64, seed: u64, max_len: usize) {
    for_each_message(count, seed, max_len, |seq, msg| {
        conn.send_timeout(msg, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("sending message #{seq}: {e}"));
    });
}

/// Receives messages `0..count` of the stream seeded with `seed` and checks each one;
/// returns how long the whole stream took.
pub fn receive_stream(conn: &mut Conn, count: u64, seed: u64, max_len: usize) -> Duration {
    let t = Instant::now();
    let mut lens = lengths(seed);
    let mut buf = vec![0u8; max_len];
    for seq in 0..count {
        let n = conn
            .recv_timeout(&mut buf, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("receiving message #{seq} of {count}: {e}"));
        if let Err(what) = verify(seq, lens.below_or_eq(max_len), &buf[..n]) {
            panic!("{what}");
        }
    }
    t.elapsed()
}

/// Checks the format itself: intact messages of every header-relative length verify, and a
/// wrong sequence number, a flipped body byte or a wrong length is reported as such. Every
/// binary whose tests rely on the format runs it as a test.
pub fn self_check() {
    let mut rng = bodies(1);
    for len in [0, 1, 7, 8, 15, 16, 17, 100, 2048] {
        let mut m = vec![0u8; len];
        encode(42, &mut rng, &mut m);
        verify(42, len, &m).unwrap();
        assert!(verify(43, len, &m).is_err() || len == 0, "{len}");
        if len > HEADER_BYTES {
            m[len - 1] ^= 1;
            assert!(verify(42, len, &m).unwrap_err().contains("checksum"));
        }
    }
    let mut m = vec![0u8; 64];
    encode(7, &mut rng, &mut m);
    assert!(verify(6, 64, &m).unwrap_err().contains("sequence number 7"));
    assert!(verify(7, 65, &m).unwrap_err().contains("64 bytes"));
}

#[test]
fn messages_verify_and_damage_is_named() {
    self_check();
}
