//! Attacks on `shm://` connection setup, by other processes that speak the rendezvous
//! protocol themselves:
//!
//! - **stalling**: connectors that connect and say nothing, or drip-feed a valid hello one
//!   byte at a time; honest peers of a `Listener` and an `Inbox` must be served within
//!   100 ms of their usual time, and the attackers dropped (logged) at their deadline;
//! - **freezing a publisher**: the same attackers at a `Block` publisher's name while it
//!   streams; its rate while they hang on must stay at least half its rate before;
//! - **spoofing a segment**: handing a listener back its own segment, a segment whose header
//!   names another pid than the connection's `SO_PEERCRED`, and a live third process's
//!   segment reopened through `/proc/PID/fd`; each is refused with a logged reason and
//!   never accepted.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags, SealFlags};
use shmsock::{Conn, Inbox, Listener, Options, Overflow, Publisher, Subscriber};
use shmsock_testkit::child::{report, var, var_u64};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::pubsub::wait_for_subscribers;
use shmsock_testkit::wire::{self, ALL_SEALS, RING_OFFSET};

/// The bar for an honest peer while attackers hang on: 100 ms. A loaded 2-core CI machine
/// (debug build, the attackers' processes running) gets a margin on top; a stalled
/// setup would cost a whole handshake deadline, far beyond it.
const HONEST_BOUND: Duration = Duration::from_millis(100 + 400);
/// The handshake deadline of the attacked sockets (short, so the tests are).
const DEADLINE: Duration = Duration::from_secs(2);
/// Attack connections each attacker process holds (silent and drip-fed ones).
const ATTACKERS: usize = 4;
/// Pause between two bytes of a drip-fed hello.
const DRIP: Duration = Duration::from_millis(50);

/// Env var: how the attacker attacks (`silent`, `drip`, or a spoof: `echo`, `pid`, `proc`).
const ATTACK_ENV: &str = "SHMSOCK_TEST_ATTACK";
/// Env var: the pid of the third process whose segment the `proc` spoof reopens.
const THIRD_PID_ENV: &str = "SHMSOCK_TEST_THIRD_PID";

/// Child: [`ATTACKERS`] connections to `ep` that stall their handshake: `silent` ones say
/// nothing; `drip` ones send a valid hello a byte every [`DRIP`] (without waiting for the
/// listener's: a blocking `Listener` greets only while `accept` runs). Reports `stalling`,
/// then holds them until killed.
pub fn staller_child(ep: &str) {
    let drip = var(ATTACK_ENV) == "drip";
    let path = wire::socket_path(ep);
    let mut socks: Vec<UnixStream> = (0..ATTACKERS)
        .map(|_| UnixStream::connect(&path).expect("connecting to stall"))
        .collect();
    report("stalling");
    let hello = wire::good_hello(shmsock::RING_CAPACITY_MIN_BYTES as u64);
    let mut at = 0;
    loop {
        std::thread::sleep(DRIP);
        if drip && at < hello.len() {
            for s in &mut socks {
                let _ = s.write_all(&hello[at..=at]);
            }
            at += 1;
        }
    }
}

/// Spawns a staller of `kind` against `ep` and waits until its connections hang on.
fn stallers(ep: &str, kind: &str) -> Peer {
    let mut peer = Peer::spawn("staller", ep, &[(ATTACK_ENV, kind)]);
    peer.expect("stalling");
    peer
}

/// How long an honest connector takes to connect to `listener` and be accepted with one
/// message.
fn honest_round(listener: &Listener) -> Duration {
    let ep = listener.endpoint().to_owned();
    let t = Instant::now();
    let client = std::thread::spawn(move || Conn::connect(&ep)?.send(b"honest"));
    let mut conn = harness::accept(listener).expect("the honest peer");
    assert_eq!(conn.recv_vec().expect("its message"), b"honest");
    client.join().expect("client").expect("client side");
    t.elapsed()
}

#[test]
fn silent_and_drip_fed_connectors_cost_an_honest_peer_of_a_listener_nothing() {
    let _serial = crate::serial();
    let ep = harness::endpoint("stall-listener");
    let listener = harness::bind(&ep, Options::new().handshake_timeout(DEADLINE));
    let usual = (0..5)
        .map(|_| honest_round(&listener))
        .min()
        .expect("rounds");
    for kind in ["silent", "drip"] {
        let started = Instant::now();
        let attackers = stallers(&ep, kind);
        let mut slowest = Duration::ZERO;
        for round in 0..5 {
            let took = honest_round(&listener);
            assert!(
                took < usual + HONEST_BOUND,
                "{kind} attackers: honest round {round} took {took:?} (usual {usual:?})"
            );
            slowest = slowest.max(took);
        }
        // Every attack connection is dropped, logged with the attacker's pid, at its
        // deadline for the whole exchange: a drip-fed hello buys no more time.
        let pid = attackers.pid().as_raw_nonzero().get();
        let lines = harness::expect_dropped_times(
            &listener,
            &["handshake failed", &format!("peer_pid={pid}")],
            ATTACKERS,
        );
        let took = started.elapsed();
        assert!(
            took < DEADLINE + Duration::from_secs(2),
            "{kind}: the attackers were dropped after {took:?}: {lines:#?}"
        );
        eprintln!(
            "{kind}: honest rounds {usual:?} without attackers, at most {slowest:?} with them; \
             {} attack connections dropped after {took:?}",
            lines.len()
        );
    }
}

#[test]
fn stalling_connectors_cost_an_inbox_writer_nothing() {
    let _serial = crate::serial();
    let ep = harness::endpoint("stall-inbox");
    let mut inbox = Inbox::bind_with(&ep, Options::new().handshake_timeout(DEADLINE))
        .expect("binding the inbox");
    let _silent = stallers(&ep, "silent");
    let _drip = stallers(&ep, "drip");
    for round in 0..5 {
        let t = Instant::now();
        let mut writer = Conn::connect(&ep).expect("an honest writer");
        writer.send(b"honest").expect("sending");
        let mut buf = [0u8; 16];
        let (n, _) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("the honest message");
        assert_eq!(&buf[..n], b"honest");
        let took = t.elapsed();
        assert!(
            took < HONEST_BOUND,
            "round {round}: an honest writer waited {took:?} behind stalled ones"
        );
    }
}

/// A `Block` publisher streams to one subscriber; stalled joiners arrive. Its rate while
/// they hang on must be at least half its rate before (a join floor held for the whole
/// handshake would freeze it at zero).
#[test]
fn stalled_joiners_never_freeze_a_block_publisher() {
    let _serial = crate::serial();
    let ep = harness::endpoint("stall-publisher");
    let opts = Options::new()
        .overflow(Overflow::Block)
        .handshake_timeout(Duration::from_secs(30));
    let mut publisher = Publisher::bind_with(&ep, opts).expect("binding the publisher");
    let sent = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sub_ep = ep.clone();
        let stop = &stop;
        let reader = s.spawn(move || {
            let mut sub = Subscriber::connect(&sub_ep).expect("subscribing");
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                let _ = sub.recv_timeout(&mut buf, Duration::from_millis(50));
            }
        });
        wait_for_subscribers(&mut publisher, 1);
        let writer = s.spawn(|| {
            let msg = [7u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if publisher
                    .send_timeout(&msg, Duration::from_millis(100))
                    .is_ok()
                {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let rate = |window: Duration| {
            let before = sent.load(Ordering::Relaxed);
            std::thread::sleep(window);
            (sent.load(Ordering::Relaxed) - before) as f64 / window.as_secs_f64()
        };
        let window = Duration::from_millis(400);
        let before = rate(window);
        let silent = stallers(&ep, "silent");
        let drip = stallers(&ep, "drip");
        let during = rate(window);
        drop((silent, drip));
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the publishing thread");
        reader.join().expect("the subscriber thread");
        eprintln!("Block publisher: {before:.0} msgs/s before, {during:.0} while 8 joiners stall");
        assert!(before > 0.0, "the publisher streamed nothing");
        assert!(
            during >= 0.5 * before,
            "stalled joiners slowed the publisher from {before:.0} to {during:.0} msgs/s"
        );
    });
}

/// A sealed memfd with a valid segment header for a ring of `capacity`, except that its
/// header names `pid` as its creator.
fn segment_claiming_pid(capacity: u64, pid: u32) -> OwnedFd {
    let fd = wire::segment(
        "shmsock-spoofed-pid",
        capacity,
        RING_OFFSET + capacity,
        SealFlags::empty(),
    );
    rustix::io::pwrite(&fd, &u64::from(pid).to_le_bytes(), 40).expect("writing the pid");
    rustix::fs::fcntl_add_seals(&fd, ALL_SEALS).expect("sealing");
    fd
}

/// A live segment of process `pid` whose memfd is named for `role` (`listener`,
/// `connector`), reopened read-only through `/proc/PID/fd`.
fn reopen_segment_of(pid: u32, role: &str) -> OwnedFd {
    let dir = format!("/proc/{pid}/fd");
    let prefix = format!("/memfd:shmsock:{role}");
    for entry in std::fs::read_dir(&dir).expect("listing another process's fds") {
        let path = entry.expect("an fd entry").path();
        let is_segment =
            std::fs::read_link(&path).is_ok_and(|l| l.to_string_lossy().starts_with(&prefix));
        if is_segment {
            return rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .expect("reopening the segment");
        }
    }
    panic!("process {pid} holds no {role} segment");
}

/// Child: connects to `ep` and offers a spoofed segment in its hello ([`ATTACK_ENV`]:
/// `echo` one of the listener's own, `pid` one naming another creator, `proc` a third
/// process's); reports `acked <bool>` and how many fds the listener's answer carried.
///
/// The listener's segment is never handed to a connector before its hello passed, so
/// `echo` reopens one of the listening process's segments (of the connection the third
/// process holds) through `/proc`, as a process of the same user can.
pub fn spoofer_child(ep: &str) {
    let kind = var(ATTACK_ENV);
    let sock = UnixStream::connect(wire::socket_path(ep)).expect("connecting");
    let capacity = shmsock::RING_CAPACITY_DEFAULT_BYTES as u64;
    let fd = match kind.as_str() {
        "echo" => reopen_segment_of(std::os::unix::process::parent_id(), "listener"),
        "pid" => segment_claiming_pid(capacity, std::os::unix::process::parent_id()),
        "proc" => reopen_segment_of(var_u64(THIRD_PID_ENV) as u32, "connector"),
        other => panic!("unknown spoof {other:?}"),
    };
    let size = rustix::fs::fstat(&fd).expect("fstat").st_size as u64;
    let hello = wire::good_hello(size - RING_OFFSET);
    wire::send_with_fds(&sock, &hello, &[fd.as_fd()]).expect("our hello");
    // A refusal, then the hang-up (or a reset, our hello's bytes being unread).
    let (_answer, their_fds) = wire::read_hello(&sock).unwrap_or_default();
    let mut reply = [0u8; 1];
    sock.set_read_timeout(Some(STEP_TIMEOUT)).expect("timeout");
    let acked = matches!(rustix::io::read(&sock, &mut reply), Ok(1));
    report(format!("acked {acked} fds {}", their_fds.len()));
}

#[test]
fn spoofed_segments_are_refused_and_never_accepted() {
    let _serial = crate::serial();
    let ep = harness::endpoint("spoof");
    let listener = harness::bind(&ep, Options::new());
    // The third process: connected to a listener of its own, it holds a live segment.
    let third_ep = harness::endpoint("spoof-third");
    let third_listener = harness::bind(&third_ep, Options::new());
    let mut third = Peer::spawn("hold_conn", &third_ep, &[]);
    let _third_conn = harness::accept(&third_listener).expect("the third process");
    third.expect("ready");
    let third_pid = third.pid().as_raw_nonzero().get().to_string();
    let cases = [
        ("echo", "handed us back a segment of our own"),
        ("pid", "created by pid"),
        ("proc", &*format!("created by pid {third_pid}")),
    ];
    for (kind, words) in cases {
        let mut spoofer = Peer::spawn(
            "spoofer",
            &ep,
            &[(ATTACK_ENV, kind), (THIRD_PID_ENV, &third_pid)],
        );
        let pid = spoofer.pid().as_raw_nonzero().get();
        let line = harness::expect_dropped(
            &listener,
            &[
                "handshake with peer failed",
                words,
                &format!("peer_pid={pid}"),
            ],
        );
        eprintln!("{kind}: {line}");
        assert_eq!(
            spoofer.expect("acked"),
            "false fds 0",
            "{kind}: the spoofer got the ACK or the listener's segment"
        );
        spoofer.wait_success();
    }
    // Refused, not broken: an honest peer is served.
    honest_round(&listener);
}
