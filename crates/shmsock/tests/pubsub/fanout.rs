//! The parent side: a publisher, subscriber children, and their reports.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use shmsock::{Options, Publisher};

use crate::roles::{LATE_ENV, MAX_LEN_ENV, SEED_ENV};
use crate::stream::{End, Summary};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::pubsub::wait_for_subscribers;

/// Binds a publisher on `endpoint`.
pub fn bind(endpoint: &str, options: Options) -> Publisher {
    harness::setup();
    Publisher::bind_with(endpoint, options).unwrap_or_else(|e| panic!("binding {endpoint}: {e}"))
}

/// Spawns `n` subscriber children of the stream `(seed, max_len)` and waits until the
/// publisher has taken all of them in.
pub fn subscribers(publisher: &mut Publisher, n: usize, seed: u64, max_len: usize) -> Vec<Peer> {
    spawn(publisher, n, seed, max_len, &[], 0)
}

/// Like [`subscribers`] for late joiners (they learn their start from the first message):
/// `already` subscribers are there before them.
pub fn subscribers_late(
    publisher: &mut Publisher,
    n: usize,
    seed: u64,
    max_len: usize,
    already: usize,
) -> Vec<Peer> {
    spawn(publisher, n, seed, max_len, &[(LATE_ENV, "1")], already)
}

fn spawn(
    publisher: &mut Publisher,
    n: usize,
    seed: u64,
    max_len: usize,
    extra: &[(&str, &str)],
    already: usize,
) -> Vec<Peer> {
    let (seed, max_len) = (seed.to_string(), max_len.to_string());
    let mut env = vec![(SEED_ENV, seed.as_str()), (MAX_LEN_ENV, max_len.as_str())];
    env.extend_from_slice(extra);
    let mut peers: Vec<Peer> = (0..n)
        .map(|_| Peer::spawn("subscribe", publisher.endpoint(), &env))
        .collect();
    for peer in &mut peers {
        peer.expect("ready");
    }
    wait_for_subscribers(publisher, already + n);
    peers
}

/// Waits for a subscriber child's final report.
pub fn summary(peer: &mut Peer) -> Summary {
    Summary::parse(&peer.expect("done"))
}

/// Checks the subscribers `subs[1..]`, which kept running while `subs[0]` was stopped (its
/// summary is `stopped`): each accounts for all `sent` messages (at worst a scheduler hiccup
/// on a shared machine costs it a few, exactly accounted for) and lost far fewer than the
/// stopped one. Then every child must exit successfully.
pub fn check_running_subscribers(subs: &mut [Peer], stopped: &Summary, sent: u64) {
    for sub in &mut subs[1..] {
        let s = summary(sub);
        eprintln!("running subscriber: {s}");
        s.assert_accounts_for(sent, End::Closed);
        assert!(
            s.num("missed") < stopped.num("missed") / 4,
            "a running subscriber lost almost as much as the stopped one: {s}"
        );
    }
    for sub in subs {
        sub.wait_success();
    }
}

/// Sends `signal` to a child.
pub fn signal(pid: Pid, signal: Signal) {
    rustix::process::kill_process(pid, signal)
        .unwrap_or_else(|e| panic!("kill({pid:?}, {signal:?}): {e}"));
}

/// Raw pid of a child, as the library reports pids.
pub fn raw_pid(peer: &Peer) -> i32 {
    peer.pid().as_raw_nonzero().get()
}

/// Waits until the child `pid` is stopped (state `T` in `/proc/PID/stat`): `kill` returns
/// before the stop takes effect.
pub fn wait_until_stopped(pid: Pid) {
    let path = format!("/proc/{}/stat", pid.as_raw_nonzero());
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // The state follows the parenthesised command name.
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.as_bytes()[0]);
        if state == Some(b'T') {
            return;
        }
        assert!(Instant::now() < deadline, "{pid:?} never stopped: {stat}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `n` slots of the publisher's pool are out (lent and not back yet).
pub fn wait_for_loans_outstanding(publisher: &mut Publisher, n: usize, what: &str) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while publisher.loans_outstanding() != n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} slots out after {STEP_TIMEOUT:?}, expected {n}",
            publisher.loans_outstanding()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Checks that each subscriber (the publisher closed) received the whole stream of `sent`
/// messages and missed none (`why`: the reason none may be missed), with `more` checks of
/// its summary; then that it exited cleanly.
pub fn assert_none_missed(subs: &mut [Peer], sent: u64, why: &str, more: impl Fn(&Summary)) {
    for sub in subs {
        let s = summary(sub);
        s.assert_accounts_for(sent, End::Closed);
        assert_eq!(s.num("missed"), 0, "{why}: {s}");
        more(&s);
        sub.wait_success();
    }
}

/// A publisher with rings of `ring_bytes` whose overflow policy is `DropOldest`.
pub fn bind_drop_oldest(endpoint: &str, ring_bytes: usize) -> Publisher {
    let options = Options::new()
        .ring_capacity(ring_bytes)
        .overflow(shmsock::Overflow::DropOldest);
    bind(endpoint, options)
}
