//! The inbox side of each scenario.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Inbox, Options, Subscriber, WaitStrategy, WriterId};

use crate::roles::{monotonic_ns, COUNT_ENV, GAP_US_ENV, MAX_LEN_ENV, SEED_ENV};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::message;

fn bind(tag: &str, opts: Options) -> Inbox {
    harness::setup();
    let ep = harness::endpoint(tag);
    Inbox::bind_with(&ep, opts).unwrap_or_else(|e| panic!("binding {ep}: {e}"))
}

/// Spawns one writer child per seed, running `role`, and waits until each connected.
/// Waits for each writer's report that it sent all, then for its clean exit.
fn finish_writers<'a>(peers: impl IntoIterator<Item = &'a mut Peer>) {
    for p in peers {
        p.expect("sent");
        p.wait_success();
    }
}

fn writers(inbox: &Inbox, role: &str, seeds: &[u64], env: &[(&str, &str)]) -> Vec<Peer> {
    let mut peers: Vec<Peer> = seeds
        .iter()
        .map(|seed| {
            let seed = seed.to_string();
            let mut env = env.to_vec();
            env.push((SEED_ENV, &seed));
            Peer::spawn(role, inbox.endpoint(), &env)
        })
        .collect();
    for p in &mut peers {
        p.expect("connected");
    }
    peers
}

fn wait_for_writers(inbox: &mut Inbox, n: usize) {
    let t = Instant::now();
    while inbox.writer_count() < n {
        assert!(
            t.elapsed() < STEP_TIMEOUT,
            "the inbox took in fewer than {n} writers"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Receives until every writer's stream is complete; checks each message against the
/// stream of the writer it came from (its seed is found from its pid).
fn receive_streams(inbox: &mut Inbox, peers: &[Peer], seeds: &[u64], count: u64, max: usize) {
    let seed_of: HashMap<i32, u64> = peers
        .iter()
        .zip(seeds)
        .map(|(p, &s)| (p.pid().as_raw_nonzero().get(), s))
        .collect();
    let mut next: HashMap<WriterId, (u64, message::SplitMix64)> = HashMap::new();
    let mut buf = vec![0u8; max];
    let mut done = 0;
    while done < seeds.len() {
        let (n, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("inbox recv ({done} streams complete): {e}"));
        let seed = seed_of[&from.pid];
        let (seq, lens) = next
            .entry(from)
            .or_insert_with(|| (0, message::lengths(seed)));
        if let Err(what) = message::verify(*seq, lens.below_or_eq(max), &buf[..n]) {
            panic!("{from}: {what}");
        }
        *seq += 1;
        if *seq == count {
            done += 1;
        }
    }
    assert!(next.values().all(|(seq, _)| *seq == count));
}

#[test]
fn four_writers_deliver_every_message_intact_and_in_order() {
    let _timing = harness::timing_test();
    let mut inbox = bind("inbox-four", Options::new());
    let seeds = [11, 22, 33, 44];
    let count = 20_000u64;
    let env = [(COUNT_ENV, "20000"), (MAX_LEN_ENV, "700")];
    let mut peers = writers(&inbox, "stream", &seeds, &env);
    receive_streams(&mut inbox, &peers, &seeds, count, 700);
    finish_writers(&mut peers);
    // Every writer closed cleanly and was drained: the inbox forgets them.
    let t = Instant::now();
    while inbox.writer_count() > 0 {
        assert!(
            t.elapsed() < STEP_TIMEOUT,
            "ended writers are never removed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(matches!(
        inbox.try_recv_from(&mut [0u8; 8]),
        Err(Error::WouldBlock)
    ));
}

/// With both rings full, the inbox takes strictly one message from each writer in turn:
/// a flooding writer gets no more than its share.
#[test]
fn full_rings_are_served_in_strict_turns() {
    let _timing = harness::timing_test();
    let mut inbox = bind("inbox-turns", Options::new());
    let mut peers = writers(&inbox, "flood", &[1, 2], &[]);
    wait_for_writers(&mut inbox, 2);
    // Let both writers fill their 64 KiB rings (≥ 1,000 frames each) and block.
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 16];
    let mut last = None;
    for i in 0..1_000 {
        let (n, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("recv");
        assert_eq!(n, 16);
        assert_ne!(
            last,
            Some(from.serial),
            "message {i}: {from} twice in a row while the other writer's ring was full"
        );
        last = Some(from.serial);
    }
    drop(inbox);
    finish_writers(&mut peers);
}

/// A writer that floods without pause cannot starve one that sends a message every 2 ms:
/// each paced message is delivered promptly (bound: 1 s, against starvation, not speed).
#[test]
fn a_hot_writer_cannot_starve_a_slow_one() {
    let _timing = harness::timing_test();
    let mut inbox = bind("inbox-starve", Options::new());
    let mut hot = writers(&inbox, "flood", &[1], &[]);
    let count = 200u64;
    let mut slow = writers(
        &inbox,
        "paced",
        &[2],
        &[(COUNT_ENV, "200"), (GAP_US_ENV, "2000")],
    );
    let mut buf = [0u8; 24];
    let (mut slow_seen, mut hot_seen) = (0u64, 0u64);
    let mut delays = Vec::new();
    while slow_seen < count {
        let n = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("recv")
            .0;
        match u64::from_le_bytes(buf[..8].try_into().unwrap()) {
            1 => hot_seen += 1,
            2 => {
                assert_eq!(n, 24);
                let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap());
                assert_eq!(seq, slow_seen, "the slow writer's messages in order");
                let sent = u64::from_le_bytes(buf[16..].try_into().unwrap());
                delays.push(Duration::from_nanos(monotonic_ns().saturating_sub(sent)));
                slow_seen += 1;
            }
            other => panic!("message from unknown writer {other}"),
        }
    }
    delays.sort();
    let (p50, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
    eprintln!("slow writer: {count} messages, delay p50 {p50:?} max {max:?}; hot writer meanwhile: {hot_seen}");
    assert!(
        hot_seen > count,
        "the hot writer should have been flooding ({hot_seen} messages)"
    );
    assert!(max < Duration::from_secs(1), "slow writer starved: {max:?}");
    drop(inbox);
    hot[0].expect("sent");
    slow[0].expect("sent");
}

/// The inbox sleeps between paced messages and is woken by the doorbell each time, with
/// each wait strategy (the writers' `Blocking` strategy too).
#[test]
fn a_sleeping_inbox_is_woken_by_any_writer() {
    let _timing = harness::timing_test();
    for wait in [WaitStrategy::Adaptive, WaitStrategy::Blocking] {
        let mut inbox = bind(
            &format!("inbox-wake-{wait:?}"),
            Options::new().wait_strategy(wait),
        );
        let env = [(COUNT_ENV, "100"), (GAP_US_ENV, "3000")];
        let mut peers = writers(&inbox, "paced", &[1, 2], &env);
        let mut blocking = writers(&inbox, "blocking_stream", &[3], &[(COUNT_ENV, "300")]);
        let mut seen = [0u64; 3];
        let mut buf = [0u8; 512];
        let mut lens = message::lengths(3);
        let mut delays = Vec::new();
        while seen.iter().sum::<u64>() < 500 {
            let (n, from) = inbox
                .recv_from_timeout(&mut buf, STEP_TIMEOUT)
                .unwrap_or_else(|e| panic!("{wait:?}: {e} after {seen:?}"));
            if from.pid == blocking[0].pid().as_raw_nonzero().get() {
                message::verify(seen[2], lens.below_or_eq(512), &buf[..n]).unwrap();
                seen[2] += 1;
                continue;
            }
            let w = u64::from_le_bytes(buf[..8].try_into().unwrap());
            let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap());
            assert_eq!(seq, seen[w as usize - 1]);
            seen[w as usize - 1] += 1;
            let sent = u64::from_le_bytes(buf[16..24].try_into().unwrap());
            delays.push(Duration::from_nanos(monotonic_ns().saturating_sub(sent)));
        }
        delays.sort();
        eprintln!(
            "{wait:?}: paced messages woke the inbox after p50 {:?}, p99 {:?}",
            delays[delays.len() / 2],
            delays[delays.len() * 99 / 100]
        );
        finish_writers(peers.iter_mut().chain(&mut blocking));
    }
}

/// A writer killed mid-stream: what it published arrives intact (a prefix of its stream),
/// the others go on, and the dead writer is removed.
#[test]
fn a_killed_writer_leaves_the_others_untouched() {
    let _timing = harness::timing_test();
    let mut inbox = bind("inbox-kill", Options::new());
    let seeds = [5, 6, 7];
    let env = [(COUNT_ENV, "1000000000"), (MAX_LEN_ENV, "300")];
    let peers = writers(&inbox, "stream", &seeds, &env);
    wait_for_writers(&mut inbox, 3);
    let victim = peers[1].pid().as_raw_nonzero().get();
    let mut next: HashMap<i32, (u64, message::SplitMix64)> = peers
        .iter()
        .zip(seeds)
        .map(|(p, s)| (p.pid().as_raw_nonzero().get(), (0, message::lengths(s))))
        .collect();
    let mut buf = [0u8; 300];
    let mut killed_at = None;
    let mut after_kill = [0u64; 2];
    loop {
        let (n, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("recv");
        let (seq, lens) = next.get_mut(&from.pid).expect("a known writer");
        message::verify(*seq, lens.below_or_eq(300), &buf[..n])
            .unwrap_or_else(|e| panic!("{from}: {e}"));
        *seq += 1;
        if killed_at.is_none() && *seq == 5_000 {
            killed_at = Some(peers[1].kill());
        }
        if killed_at.is_some() && from.pid != victim {
            let i = usize::from(from.pid == peers[2].pid().as_raw_nonzero().get());
            after_kill[i] += 1;
        }
        // Both survivors well past the kill, and the victim drained and removed.
        if after_kill.iter().all(|&c| c > 20_000) && inbox.writer_count() == 2 {
            break;
        }
    }
    eprintln!(
        "victim delivered {} intact messages before its death",
        next[&victim].0
    );
}

#[test]
fn closing_the_inbox_tells_every_writer() {
    let mut inbox = bind("inbox-close", Options::new());
    let mut peers = writers(&inbox, "wait_for_close", &[1, 2], &[]);
    wait_for_writers(&mut inbox, 2);
    inbox.close();
    for p in &mut peers {
        assert_eq!(p.expect(""), "peer closed");
        p.wait_success();
    }
}

#[test]
fn only_conns_may_write_to_an_inbox() {
    let mut inbox = bind("inbox-roles", Options::new());
    match Subscriber::connect(inbox.endpoint()) {
        Err(Error::Handshake { reason, .. }) => {
            assert!(reason.contains("Inbox"), "{reason}");
        }
        other => panic!("a subscriber connected to an inbox: {other:?}"),
    }
    // A Conn in this process is a writer like any other.
    let mut conn = Conn::connect(inbox.endpoint()).expect("connect");
    conn.send(b"hello").expect("send");
    let (msg, from) = inbox.recv_from_vec().expect("recv");
    assert_eq!(msg, b"hello");
    assert_eq!(from.pid, std::process::id() as i32);
    // BufferTooSmall leaves the message queued.
    conn.send(&[7u8; 100]).expect("send");
    assert!(matches!(
        inbox.recv_from_timeout(&mut [0u8; 10], STEP_TIMEOUT),
        Err(Error::BufferTooSmall { len: 100, .. })
    ));
    assert_eq!(inbox.recv_vec().expect("recv"), [7u8; 100]);
    // An inbox binds at least one endpoint.
    match Inbox::bind_all(&[], Options::new()) {
        Err(Error::InvalidOptions { reason, .. }) => assert!(reason.contains("no endpoint")),
        other => panic!("an inbox bound no endpoint: {other:?}"),
    }
}
