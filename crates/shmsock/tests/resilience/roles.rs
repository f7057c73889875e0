//! The child side: what a peer process does, chosen by `SHMSOCK_TEST_ROLE`.
//!
//! Children report progress with [`report`] (a `@@peer` line) when the parent must
//! synchronise with them, e.g. before a SIGKILL. Every child dies with the parent thread
//! that spawned it (`PR_SET_PDEATHSIG`) and never idles longer than [`IDLE_MAX`].

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use shmsock::{Conn, Error, Listener, Options, WaitStrategy};
use shmsock_testkit::child::{report, seed_and_max_len, var, var_u64, wait_for_start, IDLE_MAX};
use shmsock_testkit::message::{self, SplitMix64};

use crate::acked::Acked;
use crate::rawpeer;

/// Wait strategy of the child's connection: `busy`, `adaptive` or `blocking`.
pub const STRATEGY_ENV: &str = "SHMSOCK_TEST_STRATEGY";
/// Ring capacity (bytes) of the child's outbound ring.
pub const RING_ENV: &str = "SHMSOCK_TEST_RING";
/// How a streaming child paces itself: `none`, `burst` (bursts and pauses), `slow`.
pub const PACE_ENV: &str = "SHMSOCK_TEST_PACE";
/// Seed of a message stream (lengths and bodies), its largest message, and the wall-clock
/// instant (ns since the epoch) at which a child starts its connect.
pub use shmsock_testkit::child::{MAX_LEN_ENV, SEED_ENV, START_AT_ENV};
/// Handshake step after which a raw peer stops and reports.
pub const STEP_ENV: &str = "SHMSOCK_TEST_STEP";

/// Exit code of a reader child that received a torn, lost or duplicated message.
pub const EXIT_BAD_MESSAGE: i32 = 3;

pub fn strategy_name(s: WaitStrategy) -> &'static str {
    match s {
        WaitStrategy::BusyPoll => "busy",
        WaitStrategy::Blocking => "blocking",
        _ => "adaptive",
    }
}

/// Options from the environment (wait strategy, ring capacity), defaults otherwise.
pub fn env_options() -> Options {
    let mut o = Options::new();
    if let Ok(s) = std::env::var(STRATEGY_ENV) {
        o = o.wait_strategy(match s.as_str() {
            "busy" => WaitStrategy::BusyPoll,
            "blocking" => WaitStrategy::Blocking,
            _ => WaitStrategy::Adaptive,
        });
    }
    if let Ok(r) = std::env::var(RING_ENV) {
        o = o.ring_capacity(r.parse().expect("ring capacity"));
    }
    o
}

/// Runs `role` against `ep`; returns when the role is done (the caller exits the process).
pub fn run(role: &str, ep: &str) {
    match role {
        "crash_writer" => crash_writer(ep),
        "crash_reader" => crash_reader(ep),
        "connect_at" => connect_at(ep),
        "listen" => {
            let listener = Listener::bind(ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
            report("ready");
            let _conn = listener.accept();
            report("accepted");
            std::thread::sleep(IDLE_MAX);
        }
        "raw_connector" => raw_connector(ep, var_u64(STEP_ENV)),
        "raw_listener" => raw_listener(ep, var_u64(STEP_ENV)),
        "hold_conn" => {
            let _conn = Conn::connect_with(ep, env_options())
                .unwrap_or_else(|e| panic!("connecting to {ep}: {e}"));
            report("ready");
            std::thread::sleep(IDLE_MAX);
        }
        "hostile" => crate::hostile::child(ep),
        "crash_publisher" => crate::crash_patterns::publisher_child(ep),
        "nofile_connect" => crate::exhaustion::nofile_connect_child(ep),
        "nofile_accept" => crate::exhaustion::nofile_accept_child(ep),
        "fsize" => crate::exhaustion::fsize_child(ep),
        "address_space" => crate::exhaustion::address_space_child(ep),
        "soak_writer" => crate::soak::writer_child(ep),
        "staller" => crate::setup_attacks::staller_child(ep),
        "spoofer" => crate::setup_attacks::spoofer_child(ep),
        other => panic!("unknown role {other:?}"),
    }
}

fn connect(ep: &str) -> Conn {
    Conn::connect_with(ep, env_options()).unwrap_or_else(|e| panic!("connecting to {ep}: {e}"))
}

/// Streams checked messages until killed, recording in the parent's [`Acked`] counter how
/// many `send` accepted; `burst` pacing leaves the reader idle (asleep) between bursts.
fn crash_writer(ep: &str) {
    let mut conn = connect(ep);
    let acked = Acked::open_from_env();
    report("ready");
    let (seed, max_len) = seed_and_max_len();
    let burst = var(PACE_ENV) == "burst";
    let (mut lens, mut body, mut pace) = (
        message::lengths(seed),
        message::bodies(seed),
        SplitMix64::new(seed ^ 0xabcd),
    );
    let mut buf = vec![0u8; max_len];
    for seq in 0.. {
        let msg = &mut buf[..lens.below_or_eq(max_len)];
        message::encode(seq, &mut body, msg);
        if conn.send(msg).is_err() {
            return;
        }
        acked.store(seq + 1);
        if burst && pace.below_or_eq(20) == 0 {
            std::thread::sleep(Duration::from_micros(pace.below_or_eq(3000) as u64));
        }
    }
}

/// Receives and checks messages until killed; exits with [`EXIT_BAD_MESSAGE`] on a torn,
/// lost or duplicated one. `slow` pacing keeps the writer's ring mostly full.
fn crash_reader(ep: &str) {
    let mut conn = connect(ep);
    report("ready");
    let (seed, max_len) = seed_and_max_len();
    let slow = var(PACE_ENV) == "slow";
    let mut lens = message::lengths(seed);
    let mut pace = SplitMix64::new(seed ^ 0xdcba);
    let mut buf = vec![0u8; max_len];
    for seq in 0.. {
        let n = match conn.recv(&mut buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        if let Err(what) = message::verify(seq, lens.below_or_eq(max_len), &buf[..n]) {
            eprintln!("crash_reader: {what}");
            std::process::exit(EXIT_BAD_MESSAGE);
        }
        if slow && pace.below_or_eq(10) == 0 {
            std::thread::sleep(Duration::from_micros(pace.below_or_eq(1500) as u64));
        }
    }
}

/// Connects through the library at `START_AT` (so the parent can aim a kill at the
/// handshake), then idles.
fn connect_at(ep: &str) {
    wait_for_start();
    match Conn::connect_with(ep, env_options()) {
        Ok(_conn) => {
            report("connected");
            std::thread::sleep(IDLE_MAX);
        }
        Err(e) => report(format!("error {e}")),
    }
}

/// A connector that speaks the handshake by hand and stops after `step`:
/// 0 connected, 1 sent half a hello (with the fd), 2 sent a whole hello and a good
/// segment, 3 read the listener's hello and acknowledgement.
fn raw_connector(ep: &str, step: u64) {
    let sock = UnixStream::connect(rawpeer::socket_path(ep)).expect("connecting by hand");
    let stop = |n: u64| {
        if step == n {
            report(format!("step {n}"));
            std::thread::sleep(IDLE_MAX);
        }
    };
    stop(0);
    let seg = rawpeer::sealed_segment(4096);
    let mine = rawpeer::good_hello(4096);
    if step == 1 {
        rawpeer::send_hello_with(&sock, &mine[..20], &seg).expect("half a hello");
        stop(1);
    }
    rawpeer::send_hello_with(&sock, &mine, &seg).expect("our hello");
    stop(2);
    let (hello, _fds) = rawpeer::read_hello(&sock).expect("the listener's hello");
    assert_eq!(hello.len(), rawpeer::HELLO_BYTES);
    let mut ack = [0u8; 1];
    (&sock).read_exact(&mut ack).expect("the acknowledgement");
    assert_eq!(ack[0], rawpeer::ACK);
    stop(3);
}

/// A listener that speaks the handshake by hand and stops after `step`:
/// 0 accepted, 1 read the connector's hello, 2 sent its hello and segment (no ACK).
fn raw_listener(ep: &str, step: u64) {
    let path = rawpeer::socket_path(ep);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("binding by hand");
    report("ready");
    let (sock, _) = listener.accept().expect("accepting by hand");
    let stop = |n: u64| {
        if step == n {
            report(format!("step {n}"));
            std::thread::sleep(IDLE_MAX);
        }
    };
    stop(0);
    let _ = rawpeer::read_hello(&sock);
    stop(1);
    let seg = rawpeer::sealed_segment(4096);
    rawpeer::send_with_fds(&sock, &rawpeer::good_hello(4096), &[seg.as_fd()]).expect("our hello");
    stop(2);
}

/// The error kinds a survivor may see when its peer dies in the middle of a handshake.
pub fn is_handshake_casualty(e: &Error) -> bool {
    matches!(
        e,
        Error::Handshake { .. }
            | Error::Io { .. }
            | Error::Refused { .. }
            | Error::ConnectionRefused { .. }
    )
}
