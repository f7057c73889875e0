//! Hellos that carry a loan pool (`HELLO_FLAG_POOL`) or a doorbell (`HELLO_FLAG_DOORBELL`):
//! every way a hand-made peer can get them wrong is refused with a `Handshake` error that
//! names what is wrong, on each side that receives a hello — a `Listener` accepting a
//! connector, an `Inbox` accepting a writer, a `Conn` connecting to a listener or inbox, a
//! `Subscriber` connecting to a publisher — and every fd that came with the hello is closed
//! afterwards (our fd count returns to what it was before the peer's fds existed, and no fd
//! of a fake pool stays open).
//!
//! Each side first accepts a correct pool and a correct doorbell spoken by the same hand
//! (the control experiment), so each refusal is caused by the one defect its case introduces.

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

use rustix::event::EventfdFlags;
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use shmsock::{Conn, Error, Inbox, Listener, Options, Subscriber, LOAN_SLOTS_MAX};

use crate::leaks;
use crate::rawloan::{
    self, PoolSpec, HELLO_FLAG_DOORBELL, HELLO_FLAG_POOL, ROLE_CONN, ROLE_INBOX, ROLE_PUBLISHER,
};
use crate::rawpeer::{self, ALL_SEALS};
use shmsock_testkit::harness::{self, STEP_TIMEOUT};

// The ring and pool shape of the hand-made lenders, which these hellos announce too.
use crate::hostile_lender::{CAP, SLOTS, SLOT_BYTES};

/// One hand-made hello: its flags, the pool shape it announces, the fds after the segment
/// (made only when the case runs, after the fd baseline), and the words the refusal must
/// contain (`a|b`: either).
struct Case {
    name: String,
    flags: u32,
    slots: u64,
    slot_bytes: u64,
    extra_fds: Box<dyn Fn() -> Vec<OwnedFd>>,
    words: &'static [&'static str],
}

fn case(
    name: impl Into<String>,
    flags: u32,
    shape: (u64, u64),
    extra_fds: impl Fn() -> Vec<OwnedFd> + 'static,
    words: &'static [&'static str],
) -> Case {
    Case {
        name: name.into(),
        flags,
        slots: shape.0,
        slot_bytes: shape.1,
        extra_fds: Box::new(extra_fds),
        words,
    }
}

fn pipe() -> OwnedFd {
    rustix::pipe::pipe().expect("pipe").0
}

fn eventfd() -> OwnedFd {
    rustix::event::eventfd(0, EventfdFlags::CLOEXEC).expect("eventfd")
}

/// A Unix datagram socket `connect`ed to some other bound socket (as if to `/dev/log`).
fn dgram_connected_elsewhere() -> OwnedFd {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = harness::setup();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("fake-service-{}-{n}", std::process::id()));
    let service = UnixDatagram::bind(&path).expect("binding a datagram socket");
    let client = UnixDatagram::unbound().expect("datagram socket");
    client.connect(&path).expect("connecting it");
    drop(service);
    let _ = std::fs::remove_file(&path);
    client.into()
}

/// A correct doorbell: the ringing end of a Unix datagram socket pair.
fn bell_end() -> OwnedFd {
    UnixDatagram::pair().expect("socketpair").0.into()
}

fn plain_memfd() -> OwnedFd {
    let fd = rustix::fs::memfd_create("shmsock-fake-bell", MemfdFlags::CLOEXEC).expect("memfd");
    rustix::fs::ftruncate(&fd, 8).expect("ftruncate");
    fd
}

/// A regular file holding a perfect pool image (unlinked at once).
fn regular_file_pool() -> OwnedFd {
    let image = PoolSpec::good(SLOTS, SLOT_BYTES).build();
    let len = (rawloan::POOL_SLOTS_OFFSET + SLOTS * SLOT_BYTES) as usize;
    rawpeer::regular_file_copy(harness::setup(), "fake-pool", &image, len)
}

fn pool(spec: PoolSpec) -> impl Fn() -> Vec<OwnedFd> {
    move || vec![spec.build()]
}

fn good_pool() -> Vec<OwnedFd> {
    vec![PoolSpec::good(SLOTS, SLOT_BYTES).build()]
}

/// The control experiments: a correct pool, a correct doorbell, both.
fn good_cases() -> Vec<Case> {
    const P: u32 = HELLO_FLAG_POOL;
    const D: u32 = HELLO_FLAG_DOORBELL;
    let shape = (SLOTS, SLOT_BYTES);
    vec![
        case("a correct pool", P, shape, good_pool, &[]),
        case("a correct doorbell", D, (0, 0), || vec![bell_end()], &[]),
        case(
            "a correct doorbell and pool",
            P | D,
            shape,
            || vec![bell_end(), PoolSpec::good(SLOTS, SLOT_BYTES).build()],
            &[],
        ),
    ]
}

/// Every defect of a pool, of a doorbell, or of the fd count that their flags imply.
fn bad_cases() -> Vec<Case> {
    const P: u32 = HELLO_FLAG_POOL;
    const D: u32 = HELLO_FLAG_DOORBELL;
    let shape = (SLOTS, SLOT_BYTES);
    let good = PoolSpec::good(SLOTS, SLOT_BYTES);
    let size = good.size;
    let not_memfd: &[&str] = &["loan pool", "memfd"];
    let seals: &[&str] = &["loan pool", "seals"];
    let wrong_size: &[&str] = &["loan pool", "bytes", "needs"];
    let range: &[&str] = &["loan pool", "out of range"];
    let not_dgram: &[&str] = &["doorbell", "not a Unix datagram socket"];
    let mut cases = vec![
        // The pool fd is not a sealed memfd of the announced size.
        case("a pipe as the pool", P, shape, || vec![pipe()], not_memfd),
        case(
            "an eventfd as the pool",
            P,
            shape,
            || vec![eventfd()],
            not_memfd,
        ),
        case(
            "a regular file with a pool image as the pool",
            P,
            shape,
            || vec![regular_file_pool()],
            &["loan pool", "memfd|seals"],
        ),
        case(
            "an unsealed pool",
            P,
            shape,
            pool(PoolSpec {
                seals: SealFlags::empty(),
                ..good
            }),
            seals,
        ),
        case(
            "a pool that can still shrink (SIGBUS)",
            P,
            shape,
            pool(PoolSpec {
                seals: ALL_SEALS - SealFlags::SHRINK,
                ..good
            }),
            seals,
        ),
        case(
            "a pool without F_SEAL_SEAL",
            P,
            shape,
            pool(PoolSpec {
                seals: ALL_SEALS - SealFlags::SEAL,
                ..good
            }),
            seals,
        ),
    ];
    for (what, bytes) in [
        ("one page too large", size + 4096),
        ("one page too small", size - 4096),
        ("one byte too large", size + 1),
        ("empty", 0),
    ] {
        let spec = PoolSpec {
            size: bytes,
            ..good
        };
        cases.push(case(
            format!("a pool {what}"),
            P,
            shape,
            pool(spec),
            wrong_size,
        ));
    }
    // The pool's header disagrees with the hello.
    let header: [(&str, PoolSpec, &'static [&'static str]); 4] = [
        (
            "a pool header announcing 8 slots",
            PoolSpec { slots: 8, ..good },
            &["loan pool", "disagrees"],
        ),
        (
            "a pool header announcing 128-byte slots",
            PoolSpec {
                slot_bytes: 128,
                ..good
            },
            &["loan pool", "disagrees"],
        ),
        (
            "a pool with a bad magic",
            PoolSpec {
                magic: u64::from_le_bytes(*b"SHMSOCK1"),
                ..good
            },
            &["loan pool", "magic"],
        ),
        (
            "a pool of another version",
            PoolSpec {
                version: 99,
                ..good
            },
            &["loan pool", "version 99"],
        ),
    ];
    for (name, spec, words) in header {
        cases.push(case(name, P, shape, pool(spec), words));
    }
    // The announced shape is out of range (refused before the fd is even looked at).
    let max = LOAN_SLOTS_MAX as u64;
    for (name, bad) in [
        ("0 slots", (0, SLOT_BYTES)),
        ("LOAN_SLOTS_MAX + 1 slots", (max + 1, 64)),
        ("u32::MAX slots", (u64::from(u32::MAX), 64)),
        ("slots of 0 bytes", (SLOTS, 0)),
        ("slots of 100 bytes (not a multiple of 64)", (SLOTS, 100)),
        ("slots of 65 bytes", (SLOTS, 65)),
        (
            "256 slots of 128 MiB (above LOAN_POOL_MAX_BYTES)",
            (max, 1 << 27),
        ),
        ("slots of u64::MAX bytes", (SLOTS, u64::MAX)),
    ] {
        cases.push(case(format!("a pool of {name}"), P, bad, good_pool, range));
    }
    // The fd count disagrees with the flags.
    let got: [&'static [&'static str]; 4] = [
        &["exactly one fd", "got 1"],
        &["exactly one fd", "got 2"],
        &["exactly one fd", "got 3"],
        &["exactly one fd|more fds than a hello carries"],
    ];
    cases.extend([
        case(
            "the pool flag without a pool fd",
            P,
            shape,
            Vec::new,
            got[0],
        ),
        case(
            "the doorbell flag without a doorbell fd",
            D,
            (0, 0),
            Vec::new,
            got[0],
        ),
        case("both flags with one fd", P | D, shape, good_pool, got[1]),
        case("a pool fd without the flag", 0, (0, 0), good_pool, got[1]),
        case(
            "a second pool fd",
            P,
            shape,
            || vec![PoolSpec::good(SLOTS, SLOT_BYTES).build(), pipe()],
            got[2],
        ),
        case(
            "both flags and an extra fd",
            P | D,
            shape,
            || {
                vec![
                    bell_end(),
                    PoolSpec::good(SLOTS, SLOT_BYTES).build(),
                    pipe(),
                ]
            },
            got[3],
        ),
        case(
            "both flags and two extra fds",
            P | D,
            shape,
            || {
                let pool = PoolSpec::good(SLOTS, SLOT_BYTES).build();
                vec![bell_end(), pool, pipe(), pipe()]
            },
            &["exactly one fd|more fds than a hello carries"],
        ),
        case(
            "both flags and 14 extra fds (MSG_CTRUNC)",
            P | D,
            shape,
            || {
                let mut fds = vec![bell_end(), PoolSpec::good(SLOTS, SLOT_BYTES).build()];
                fds.extend((0..14).map(|_| pipe()));
                fds
            },
            &["more fds than a hello carries"],
        ),
        case(
            "an unknown flag",
            P | 8,
            shape,
            good_pool,
            &["unknown flags"],
        ),
    ]);
    // The doorbell is not a Unix datagram socket.
    for (name, make) in [
        ("a pipe", pipe as fn() -> OwnedFd),
        ("a memfd", plain_memfd),
        ("an eventfd", eventfd),
        ("a Unix stream socket", || {
            OwnedFd::from(UnixStream::pair().expect("socketpair").0)
        }),
        ("a UDP socket", || {
            OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket"))
        }),
        ("/dev/null", || {
            rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .expect("/dev/null")
        }),
    ] {
        cases.push(case(
            format!("{name} as the doorbell"),
            D,
            (0, 0),
            move || vec![make()],
            not_dgram,
        ));
    }
    cases.push(case(
        "a Unix datagram socket connected to another service as the doorbell",
        D,
        (0, 0),
        || vec![dgram_connected_elsewhere()],
        &["doorbell", "not one end of a socket pair made by the peer"],
    ));
    cases
}

/// Which side receives the hand-made hello.
enum Side<'a> {
    /// A `Listener` accepting a hand-made connector.
    Listener(&'a Listener),
    /// An `Inbox` (accept thread) accepting a hand-made writer.
    Inbox(&'a mut Inbox),
    /// `Conn::connect` to a hand-made inbox.
    Connector(&'a str),
    /// `Subscriber::connect` to a hand-made publisher.
    Subscriber(&'a str),
}

impl Side<'_> {
    /// Lets a listener make its spare segment for the next connection (it makes one before
    /// it waits for connections), so that the fd baseline of a case already holds it.
    fn settle(&self) {
        if let Side::Listener(l) = self {
            let _ = l.accept_timeout(Duration::from_millis(1));
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Side::Listener(_) => "listener",
            Side::Inbox(_) => "inbox",
            Side::Connector(_) => "connector",
            Side::Subscriber(_) => "subscriber",
        }
    }

    /// Runs `case` against this side. Returns our side's verdict (`Ok` if it accepted;
    /// an inbox refuses silently, so its verdict is the writer count) and whether the
    /// hand-made peer saw the handshake complete.
    fn run(&mut self, c: &Case) -> (Result<(), Refusal>, bool) {
        let mut fds = vec![rawpeer::sealed_segment(CAP)];
        fds.extend((c.extra_fds)());
        let hello = |role| rawloan::hello(CAP, role, c.flags, c.slots as u32, c.slot_bytes);
        match self {
            Side::Listener(l) => {
                let peer = rawloan::connect_by_hand(l.socket_path(), hello(ROLE_CONN), fds);
                // A listener drops a bad peer with a logged error and goes on accepting.
                let ours = match harness::accept_or_dropped(l, || peer.is_finished()) {
                    Ok(_) => Ok(()),
                    Err(lines) => Err(Refusal::Logged(lines.join("\n"))),
                };
                (ours, peer.join().expect("the hand-made connector").accepted)
            }
            Side::Inbox(inbox) => {
                let peer = rawloan::connect_now(inbox.socket_path(), &hello(ROLE_CONN), fds);
                let accepted = peer.accepted;
                let taken_in = accepted && wait_for_writers(inbox, 1);
                // A writer that was taken in leaves once its hand-made peer hangs up.
                drop(peer);
                assert!(wait_for_writers(inbox, 0), "{}: the writer stayed", c.name);
                let ours = if taken_in {
                    Ok(())
                } else {
                    Err(Refusal::Error(Error::Closed))
                };
                (ours, accepted)
            }
            Side::Connector(ep) => {
                let (ours, peer) =
                    rawloan::against_by_hand(ep, hello(ROLE_INBOX), fds, "listener", || {
                        Conn::connect(ep).map(drop)
                    });
                (ours.map_err(Refusal::Error), peer.accepted)
            }
            Side::Subscriber(ep) => {
                let (ours, peer) =
                    rawloan::against_by_hand(ep, hello(ROLE_PUBLISHER), fds, "publisher", || {
                        Subscriber::connect(ep).map(drop)
                    });
                (ours.map_err(Refusal::Error), peer.accepted)
            }
        }
    }
}

/// Waits (a bounded time) until the inbox counts `n` writers; false if it never does.
fn wait_for_writers(inbox: &mut Inbox, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while inbox.writer_count() != n {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// How our side refused a hand-made peer.
#[derive(Debug)]
enum Refusal {
    /// A connecting side (or an inbox, as `Closed`) returned this error.
    Error(Error),
    /// A listener dropped the peer and logged these warnings (it never returns another
    /// peer's failed handshake as an error).
    Logged(String),
}

fn assert_words(reason: &str, words: &[&str], what: &str) {
    for w in words {
        assert!(
            w.split('|').any(|alt| reason.contains(alt)),
            "{what}: reason {reason:?} lacks {w:?}"
        );
    }
}

/// Runs the control cases and then every bad case against `side`: the good ones must be
/// accepted, the bad ones refused (a `Handshake` error with the case's words, except on an
/// inbox, which refuses silently), and afterwards no fd of the case may be left open.
fn every_case_against(mut side: Side<'_>) {
    let who = side.name();
    for c in good_cases() {
        let what = format!("{who}: {}", c.name);
        side.settle();
        let baseline = leaks::open_fds();
        let (ours, peer_accepted) = side.run(&c);
        ours.unwrap_or_else(|e| panic!("{what} (control): {e:?}"));
        assert!(
            peer_accepted,
            "{what} (control): the hand-made peer was not accepted"
        );
        leaks::assert_fds_return_to(&baseline, &what);
        assert_eq!(rawloan::open_fake_pools(), Vec::<String>::new(), "{what}");
    }
    let cases = bad_cases();
    for c in &cases {
        let what = format!("{who}: {}", c.name);
        side.settle();
        let baseline = leaks::open_fds();
        let (ours, peer_accepted) = side.run(c);
        match (&side, ours) {
            (Side::Inbox(_), Err(_)) => {}
            (Side::Inbox(_), Ok(())) => panic!("{what}: the inbox took the writer in"),
            (_, Err(Refusal::Error(Error::Handshake { reason, .. }))) => {
                assert_words(&reason, c.words, &what)
            }
            (Side::Listener(_), Err(Refusal::Logged(lines)))
                if lines.contains("handshake with peer failed") =>
            {
                assert_words(&lines, c.words, &what)
            }
            (_, other) => panic!("{what}: {other:?}, expected a Handshake error"),
        }
        assert!(
            !peer_accepted,
            "{what}: the hand-made peer completed the handshake"
        );
        leaks::assert_fds_return_to(&baseline, &what);
        assert_eq!(
            rawloan::open_fake_pools(),
            Vec::<String>::new(),
            "{what}: a pool fd stayed open"
        );
    }
    eprintln!("{who}: {} bad hellos refused, every fd closed", cases.len());
}

#[test]
fn listener_refuses_bad_pools_and_doorbells_and_closes_every_fd() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("extras-listen"), Options::new());
    every_case_against(Side::Listener(&listener));
    // Still serving.
    let ep = listener.endpoint().to_owned();
    let client = std::thread::spawn(move || Conn::connect(&ep)?.send(b"after"));
    let mut conn = harness::accept(&listener).expect("a good peer after bad ones");
    assert_eq!(conn.recv_vec().expect("message"), b"after");
    client.join().expect("client").expect("client side");
}

#[test]
fn inbox_refuses_bad_pools_and_doorbells_and_closes_every_fd() {
    let _serial = crate::serial();
    harness::setup();
    let ep = harness::endpoint("extras-inbox");
    let mut inbox = Inbox::bind(&ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    every_case_against(Side::Inbox(&mut inbox));
    let mut conn = Conn::connect(&ep).expect("a good writer after bad ones");
    conn.send(b"after").expect("send");
    let mut buf = [0u8; 8];
    let (n, _) = inbox
        .recv_from_timeout(&mut buf, STEP_TIMEOUT)
        .expect("a message after the bad writers");
    assert_eq!(&buf[..n], b"after");
}

#[test]
fn connector_refuses_a_listener_with_a_bad_pool_or_doorbell_and_closes_every_fd() {
    let _serial = crate::serial();
    let ep = harness::endpoint("extras-connect");
    every_case_against(Side::Connector(&ep));
}

#[test]
fn subscriber_refuses_a_publisher_with_a_bad_pool_or_doorbell_and_closes_every_fd() {
    let _serial = crate::serial();
    let ep = harness::endpoint("extras-subscribe");
    every_case_against(Side::Subscriber(&ep));
}
