//! One inbox, several endpoints: writer processes over `shm://`, `unix://` and `tcp://` feed
//! the same inbox; turns stay fair across transports; a killed writer, a writer the inbox
//! does not keep up with, and hostile ZMTP peers cost the honest writers nothing. (pyzmq
//! writers: `tests/net/inbox_pyzmq.rs`, outside the valgrind run.)

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use shmsock::{Conn, CurveKeyPair, Error, Inbox, Options, WriterId};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::message;

use crate::roles::{COUNT_ENV, MAX_LEN_ENV, SEED_ENV};

/// A fresh `unix://` endpoint in the runtime directory.
fn unix_endpoint(tag: &str) -> String {
    let dir = harness::setup();
    let name = harness::endpoint(tag);
    let name = name.trim_start_matches("shm://");
    format!("unix://{}/{name}.sock", dir.display())
}

/// An inbox on a fresh `shm://` name, a fresh `unix://` path and an ephemeral `tcp://` port
/// (in that order in `endpoints()`).
fn bind_three(tag: &str, opts: Options) -> Inbox {
    let shm = harness::endpoint(tag);
    let unix = unix_endpoint(tag);
    let inbox = Inbox::bind_all(&[&shm, &unix, "tcp://127.0.0.1:0"], opts)
        .unwrap_or_else(|e| panic!("binding {shm}, {unix} and tcp: {e}"));
    assert_eq!(inbox.endpoints().len(), 3);
    assert_eq!(inbox.endpoint(), shm);
    assert!(inbox.endpoints()[2].starts_with("tcp://127.0.0.1:"));
    assert!(
        !inbox.endpoints()[2].ends_with(":0"),
        "the chosen port is named"
    );
    inbox
}

fn spawn(role: &str, ep: &str, seed: u64, env: &[(&str, &str)]) -> Peer {
    let seed = seed.to_string();
    let mut env = env.to_vec();
    env.push((SEED_ENV, &seed));
    let mut p = Peer::spawn(role, ep, &env);
    p.expect("connected");
    p
}

fn wait_for_writers(inbox: &mut Inbox, n: usize) {
    let t = Instant::now();
    while inbox.writer_count() < n {
        assert!(t.elapsed() < STEP_TIMEOUT, "fewer than {n} writers joined");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Two writer processes on each of the three transports: every stream arrives whole and in
/// order, tcp:// writers have pid 0, unix:// writers their pid, and every writer has its
/// own serial.
#[test]
fn writers_over_shm_unix_and_tcp_feed_one_inbox() {
    let _timing = harness::timing_test();
    let mut inbox = bind_three("net-mix", Options::new());
    let (count, max) = (5_000u64, 700usize);
    let env = [(COUNT_ENV, "5000"), (MAX_LEN_ENV, "700")];
    let mut peers = Vec::new();
    let mut transport_of_seed = HashMap::new();
    for (t, ep) in inbox.endpoints().to_vec().iter().enumerate() {
        for k in 0..2u64 {
            let seed = 100 + 10 * t as u64 + k;
            transport_of_seed.insert(seed, t);
            peers.push((seed, spawn("tagged_stream", ep, seed, &env)));
        }
    }
    // Per writer: its seed (from its first message), the next sequence number, lengths.
    let mut streams: HashMap<WriterId, (u64, u64, message::SplitMix64)> = HashMap::new();
    let mut buf = vec![0u8; max];
    let mut done = 0;
    while done < peers.len() {
        let (n, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("recv ({done} streams complete): {e}"));
        let Some((seed, seq, lens)) = streams.get_mut(&from) else {
            assert_eq!(n, 8, "{from}: the first message is the writer's tag");
            let seed = u64::from_le_bytes(buf[..8].try_into().unwrap());
            let (_, peer) = peers
                .iter()
                .find(|(s, _)| *s == seed)
                .expect("a known seed");
            let expected_pid = match transport_of_seed[&seed] {
                2 => 0, // tcp://: unknown
                _ => peer.pid().as_raw_nonzero().get(),
            };
            assert_eq!(from.pid, expected_pid, "{from} (seed {seed})");
            streams.insert(from, (seed, 0, message::lengths(seed)));
            continue;
        };
        message::verify(*seq, lens.below_or_eq(max), &buf[..n])
            .unwrap_or_else(|e| panic!("{from} (seed {seed}): {e}"));
        *seq += 1;
        if *seq == count {
            done += 1;
        }
    }
    let serials: HashSet<u64> = streams.keys().map(|w| w.serial).collect();
    assert_eq!(serials.len(), 6, "one serial per writer, across transports");
    for (_, p) in &mut peers {
        p.expect("sent");
        p.wait_success();
    }
    let t = Instant::now();
    while inbox.writer_count() > 0 {
        assert!(
            t.elapsed() < STEP_TIMEOUT,
            "ended writers are never removed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One flooding writer per transport, all of them with messages waiting: the inbox takes
/// strictly one message from each in turn, whatever its transport.
#[test]
fn turns_are_fair_across_transports() {
    let _timing = harness::timing_test();
    let mut inbox = bind_three("net-turns", Options::new());
    let eps = inbox.endpoints().to_vec();
    let mut peers: Vec<Peer> = eps
        .iter()
        .zip(1u64..)
        .map(|(ep, seed)| spawn("flood", ep, seed, &[]))
        .collect();
    wait_for_writers(&mut inbox, 3);
    // Let every writer fill its ring or queue (thousands of 16-byte messages each; the
    // rounds below need 500).
    std::thread::sleep(Duration::from_secs(1));
    let mut buf = [0u8; 16];
    let mut next = [0u64; 3];
    let mut round = Vec::new();
    for i in 0..1_500 {
        let (n, _) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("recv");
        assert_eq!(n, 16);
        let seed = u64::from_le_bytes(buf[..8].try_into().unwrap());
        let seq = u64::from_le_bytes(buf[8..].try_into().unwrap());
        let w = seed as usize - 1;
        assert_eq!(seq, next[w], "writer {seed}: its messages in order");
        next[w] += 1;
        assert!(
            !round.contains(&seed),
            "message {i}: writer {seed} twice in one round {round:?}"
        );
        round.push(seed);
        if round.len() == 3 {
            round.clear();
        }
    }
    drop(inbox);
    for p in &mut peers {
        p.expect("sent");
        p.wait_success();
    }
}

/// A tcp:// writer killed mid-stream: what it sent arrives in order, it is removed, the
/// shm:// and unix:// writers go on; closing the inbox then tells the survivors.
#[test]
fn a_killed_network_writer_leaves_the_others_untouched() {
    let _timing = harness::timing_test();
    let mut inbox = bind_three("net-kill", Options::new());
    let eps = inbox.endpoints().to_vec();
    let mut peers: Vec<Peer> = eps
        .iter()
        .zip(1u64..)
        .map(|(ep, seed)| spawn("flood", ep, seed, &[]))
        .collect();
    wait_for_writers(&mut inbox, 3);
    let mut buf = [0u8; 16];
    let mut next = [0u64; 3];
    let mut killed = false;
    let mut after_kill = [0u64; 2];
    loop {
        let (_, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("recv");
        let w = u64::from_le_bytes(buf[..8].try_into().unwrap()) as usize - 1;
        let seq = u64::from_le_bytes(buf[8..].try_into().unwrap());
        assert_eq!(seq, next[w], "{from}: in order");
        next[w] += 1;
        if !killed && next[2] == 2_000 {
            peers[2].kill();
            killed = true;
        }
        if killed && w < 2 {
            after_kill[w] += 1;
        }
        if after_kill.iter().all(|&c| c > 5_000) && inbox.writer_count() == 2 {
            break;
        }
    }
    eprintln!("the killed tcp:// writer delivered {} messages", next[2]);
    inbox.close();
    for p in &mut peers[..2] {
        p.expect("sent");
        p.wait_success();
    }
}

/// An inbox that does not read holds a network writer back (TCP flow control), instead of
/// buffering what it sends: the writer blocks after little more than the inbox's queue
/// bound and the kernel's socket buffers, and every message arrives once read.
#[test]
fn a_network_writer_is_held_back_not_buffered() {
    let _timing = harness::timing_test();
    let opts = Options::new().ring_capacity(64 * 1024);
    let mut inbox = Inbox::bind_with("tcp://127.0.0.1:0", opts).expect("bind");
    let mut writer = spawn("flood_until_blocked", inbox.endpoint(), 9, &[]);
    let line = writer.expect("blocked");
    let sent: u64 = line.trim().parse().expect("a count");
    eprintln!("the writer blocked after {sent} messages of 1 KiB");
    // Loopback socket buffers take a few MiB at most; without back-pressure the writer
    // would never block.
    assert!(
        sent * 1024 < 32 << 20,
        "{sent} KiB sent to an inbox that reads nothing"
    );
    let mut buf = [0u8; 1024];
    for i in 0..sent {
        inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("message {i} of {sent}: {e}"));
        assert_eq!(u64::from_le_bytes(buf[8..16].try_into().unwrap()), i);
    }
    inbox.close();
    writer.expect("sent");
    writer.wait_success();
}

/// With heartbeats on, a writer held back for longer than the heartbeat timeout (its socket
/// not read meanwhile) is not taken for dead: once the inbox reads again, it goes on.
#[test]
fn a_held_back_writer_survives_the_heartbeat() {
    let _timing = harness::timing_test();
    let opts = Options::new()
        .ring_capacity(64 * 1024)
        .heartbeat(Duration::from_millis(100), Duration::from_millis(500));
    let mut inbox = Inbox::bind_with("tcp://127.0.0.1:0", opts).expect("bind");
    let mut writer = spawn("flood_until_blocked", inbox.endpoint(), 9, &[]);
    let sent: u64 = writer.expect("blocked").trim().parse().expect("a count");
    // Held back for 3 heartbeat timeouts more.
    std::thread::sleep(Duration::from_millis(1_500));
    let mut buf = [0u8; 1024];
    for i in 0..sent + 2_000 {
        inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("message {i} ({sent} before the block): {e}"));
        assert_eq!(u64::from_le_bytes(buf[8..16].try_into().unwrap()), i);
    }
    assert_eq!(inbox.writer_count(), 1);
    inbox.close();
    writer.expect("sent");
    writer.wait_success();
}

/// CURVE as a listener has it: an inbox with a key pair takes writers that know its public
/// key (and are on its allow-list), encrypted; a NULL writer and a writer whose key is not
/// allowed are refused, and cost the admitted one nothing.
#[test]
fn a_curve_inbox_takes_only_its_clients() {
    let server = CurveKeyPair::generate();
    let client = CurveKeyPair::generate();
    let stranger = CurveKeyPair::generate();
    let opts = Options::new()
        .curve_secret(server.clone())
        .curve_allow([client.public()]);
    let unix = unix_endpoint("net-curve");
    let mut inbox = Inbox::bind_all(&["tcp://127.0.0.1:0", &unix], opts).expect("bind");
    for ep in inbox.endpoints().to_vec() {
        match Conn::connect(&ep) {
            Err(Error::Handshake { .. }) => {}
            other => panic!("{ep}: a NULL writer got in: {other:?}"),
        }
        let refused = Options::new()
            .curve_secret(stranger.clone())
            .curve_server(server.public());
        match Conn::connect_with(&ep, refused) {
            Err(Error::Handshake { reason, .. }) => assert!(reason.contains("400"), "{reason}"),
            other => panic!("{ep}: a key not on the allow-list got in: {other:?}"),
        }
        let admitted = Options::new()
            .curve_secret(client.clone())
            .curve_server(server.public());
        let mut conn = Conn::connect_with(&ep, admitted).expect("the allowed client");
        conn.send(ep.as_bytes()).expect("send");
        let (msg, _) = inbox.recv_from_vec().expect("recv");
        assert_eq!(msg, ep.as_bytes());
    }
}

/// ZMTP 3.1 greeting of a NULL client (RFC 23).
fn zmtp_greeting() -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 1];
    let mut mechanism = b"NULL".to_vec();
    mechanism.resize(20, 0);
    g.extend_from_slice(&mechanism);
    g.push(0); // as-server
    g.resize(64, 0);
    g
}

/// A READY command announcing a PAIR socket.
fn zmtp_ready() -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&4u32.to_be_bytes());
    body.extend_from_slice(b"PAIR");
    let mut frame = vec![0x04, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

/// Whether the inbox closed `sock` (end of stream or reset) within `limit`; whatever it
/// sent before (its greeting) is read and ignored.
fn closed_within(sock: &mut TcpStream, limit: Duration) -> bool {
    let t = Instant::now();
    let mut sink = [0u8; 256];
    loop {
        let left = limit.saturating_sub(t.elapsed());
        if left.is_zero() {
            return false;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true, // reset
        }
    }
}

/// Hostile peers on the tcp:// endpoint (silent, dripping half a greeting, garbage, a frame
/// announcing 1 GiB after a valid handshake): honest writers on shm:// and tcp:// join and
/// stream their whole streams while the silent and dripping peers are still in their
/// handshakes (30 s deadline: nobody waited for it), and the garbage and oversized peers are
/// cut off.
#[test]
fn hostile_network_writers_cost_honest_writers_nothing() {
    let _timing = harness::timing_test();
    let opts = Options::new()
        .max_message_len(64 * 1024)
        .handshake_timeout(Duration::from_secs(30));
    let shm = harness::endpoint("net-hostile");
    let mut inbox = Inbox::bind_all(&[&shm, "tcp://127.0.0.1:0"], opts).expect("bind");
    let tcp = inbox.endpoints()[1].clone();
    let addr = tcp.trim_start_matches("tcp://").to_owned();
    let connect = || TcpStream::connect(&addr).expect("raw connect");

    let mut silent = connect();
    let mut drip = connect();
    drip.write_all(&zmtp_greeting()[..20]).unwrap();
    let mut garbage = connect();
    garbage.write_all(&[0x55; 128]).unwrap();
    let mut oversized = connect();
    oversized.write_all(&zmtp_greeting()).unwrap();
    oversized.write_all(&zmtp_ready()).unwrap();
    let mut header = vec![0x02]; // a long data frame
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    oversized.write_all(&header).unwrap();
    oversized.write_all(&[7; 4096]).unwrap();

    let started = Instant::now();
    let env = [(COUNT_ENV, "3000"), (MAX_LEN_ENV, "500")];
    let mut honest = [
        spawn("tagged_stream", &shm, 1, &env),
        spawn("tagged_stream", &tcp, 2, &env),
    ];
    let mut streams: HashMap<WriterId, (u64, message::SplitMix64)> = HashMap::new();
    let mut done = 0;
    let mut buf = [0u8; 500];
    while done < 2 {
        let (n, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("recv");
        let Some((seq, lens)) = streams.get_mut(&from) else {
            let seed = u64::from_le_bytes(buf[..8].try_into().unwrap());
            streams.insert(from, (0, message::lengths(seed)));
            continue;
        };
        message::verify(*seq, lens.below_or_eq(500), &buf[..n]).unwrap();
        *seq += 1;
        if *seq == 3000 {
            done += 1;
        }
    }
    eprintln!(
        "honest writers streamed in {:?} beside the hostile peers",
        started.elapsed()
    );
    for p in &mut honest {
        p.expect("sent");
        p.wait_success();
    }
    assert!(
        !closed_within(&mut silent, Duration::from_millis(10))
            && !closed_within(&mut drip, Duration::from_millis(10)),
        "the stalled handshakes are still under way: the honest writers did not wait for them"
    );
    assert!(
        closed_within(&mut garbage, STEP_TIMEOUT),
        "a garbage peer is cut off"
    );
    assert!(
        closed_within(&mut oversized, STEP_TIMEOUT),
        "a peer announcing a frame over max_message_len is cut off"
    );
    assert!(
        matches!(inbox.try_recv_from(&mut buf), Err(Error::WouldBlock)),
        "no hostile peer delivered a message"
    );
}
