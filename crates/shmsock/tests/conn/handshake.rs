//! Hostile handshakes spoken by hand: a peer's hello and segment are verified (version,
//! length, exactly one fd, a memfd, all four seals, the exact size, the header) before
//! anything is mapped, and a refused peer gets a refusal: never the listener's segment,
//! never the ACK.
//!
//! The wire format and the pieces of a hand-made peer are the kit's
//! ([`shmsock_testkit::wire`]).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::fs::SealFlags;
use shmsock::{Conn, Error, Listener, Options, PROTOCOL_VERSION};
use shmsock_testkit::harness::{self, STEP_TIMEOUT};
use shmsock_testkit::wire::{self, hello, ACK, ALL_SEALS, KIND_HELLO, RING_OFFSET};

const CAPACITY: u64 = shmsock::RING_CAPACITY_MIN_BYTES as u64;

/// Numbers the fake segments, so each has a unique name in `/proc/self/fd`.
static NEXT_SEGMENT: AtomicU32 = AtomicU32::new(0);

fn good_hello() -> Vec<u8> {
    wire::good_hello(CAPACITY)
}

/// A memfd of `size` bytes with a correct header for a ring of `capacity`, then `seals`;
/// each has a unique name in `/proc/self/fd`.
fn segment(capacity: u64, size: u64, seals: SealFlags) -> OwnedFd {
    let name = format!(
        "shmsock-fake-peer-{}",
        NEXT_SEGMENT.fetch_add(1, Ordering::Relaxed)
    );
    wire::segment(&name, capacity, size, seals)
}

fn good_segment() -> OwnedFd {
    segment(CAPACITY, RING_OFFSET + CAPACITY, ALL_SEALS)
}

fn send_with_fds(sock: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let sent = wire::send_with_fds(sock, bytes, &borrowed).expect("sendmsg");
    assert_eq!(sent, bytes.len());
}

/// What the fake peer saw of the listener.
struct Seen {
    /// The listener's answer to our hello: its hello, or a refusal.
    hello: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// The byte after its hello: `Some(ACK)` if accepted, `None` if the listener hung up.
    reply: Option<u8>,
}

/// A connector that speaks the handshake by hand: sends `bytes` with `fds` (then
/// half-closes if `half_close`), and reads the listener's answer and the byte after it.
fn fake_connector(
    path: PathBuf,
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    half_close: bool,
) -> JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut sock = UnixStream::connect(&path).expect("connecting by hand");
        send_with_fds(&sock, &bytes, &fds);
        drop(fds);
        if half_close {
            sock.shutdown(std::net::Shutdown::Write).expect("shutdown");
        }
        let (hello, listener_fds) = wire::read_hello(&sock).expect("the listener's answer");
        let mut reply = [0u8; 1];
        let reply = match sock.read(&mut reply) {
            Ok(1) => Some(reply[0]),
            Ok(_) => None,
            // A listener that hangs up with our bytes unread resets the connection.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading the verdict: {e}"),
        };
        Seen {
            hello,
            fds: listener_fds,
            reply,
        }
    })
}

/// What `/proc/self/fd/N` links to.
fn fd_link(fd: BorrowedFd<'_>) -> String {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    std::fs::read_link(path).map_or(String::new(), |l| l.display().to_string())
}

/// Runs one fake connector against `listener`; returns the connection `accept` gave or the
/// warnings the listener logged when it dropped the peer, and what the fake peer saw.
/// Afterwards no fd of the fake segments may be open in this process (the listener runs
/// here too): accepted or refused, the listener keeps only a mapping.
fn handshake_by_hand(
    listener: &Listener,
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    half_close: bool,
) -> (Result<Conn, Vec<String>>, Seen) {
    let sent: Vec<String> = fds
        .iter()
        .map(|fd| fd_link(fd.as_fd()))
        .filter(|l| l.contains("shmsock-fake-peer-"))
        .collect();
    let fake = fake_connector(listener.socket_path().to_owned(), bytes, fds, half_close);
    let accepted = harness::accept_or_dropped(listener, || fake.is_finished());
    let seen = fake.join().expect("the fake peer");
    let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("listing /proc/self/fd")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .collect();
    for link in &sent {
        assert!(
            !open.contains(link),
            "the listener kept an fd of the peer's segment open: {link}"
        );
    }
    (accepted, seen)
}

/// Expects the fake peer to have been refused: a refusal (kind 2, reason 3: its hello or
/// segment is invalid) of the listener's version, no fd, no ACK.
fn expect_refusal(seen: &Seen, case: &str) {
    let h = &seen.hello;
    assert_eq!(h.len(), 64, "{case}: the listener's answer: {h:?}");
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    assert_eq!(
        (u32_at(8), u32_at(12), u32_at(20)),
        (PROTOCOL_VERSION, 2, 3),
        "{case}: expected a refusal of our version, reason 3 (version, kind, reason)"
    );
    assert!(
        seen.fds.is_empty(),
        "{case}: a refused peer got {} fds",
        seen.fds.len()
    );
    assert_eq!(
        seen.reply, None,
        "{case}: a refused peer must not get the ACK"
    );
}

/// Expects the listener to have dropped the peer with a logged handshake error whose text
/// contains every word of `words` (and `accept` to have gone on), and the fake peer to be
/// refused ([`expect_refusal`]).
fn expect_handshake_error(outcome: (Result<Conn, Vec<String>>, Seen), words: &[&str], case: &str) {
    let (accepted, seen) = outcome;
    match accepted {
        Err(lines) => assert!(
            lines
                .iter()
                .any(|l| l.contains("handshake with peer failed")
                    && words.iter().all(|w| l.contains(w))),
            "{case}: no logged handshake error with {words:?}: {lines:#?}"
        ),
        Ok(conn) => panic!("{case}: {conn:?} was accepted, expected a dropped peer"),
    }
    expect_refusal(&seen, case);
}

/// The listener refused bad peers but still serves good ones.
fn assert_still_serves(listener: &Listener) {
    let ep = listener.endpoint().to_owned();
    let client = std::thread::spawn(move || -> shmsock::Result<()> {
        let mut c = Conn::connect(&ep)?;
        c.send(b"still listening")
    });
    let mut conn = harness::accept(listener).expect("accepting a good peer after bad ones");
    let mut buf = [0u8; 32];
    let n = conn.recv_timeout(&mut buf, STEP_TIMEOUT).expect("message");
    assert_eq!(&buf[..n], b"still listening");
    client.join().expect("client thread").expect("client");
}

fn listener(tag: &str) -> Listener {
    harness::bind(&harness::endpoint(tag), Options::new())
}

/// The control experiment: the harness speaks the protocol correctly, so every refusal
/// below is caused by the one defect it introduces.
#[test]
fn handshake_by_hand_with_a_valid_segment_is_accepted() {
    let listener = listener("byhand");
    let (accepted, seen) = handshake_by_hand(&listener, good_hello(), vec![good_segment()], false);
    let mut conn = accepted.expect("a correct handshake by hand");
    assert_eq!(seen.reply, Some(ACK));

    // What the listener sent: a hello of our version and one sealed memfd of the right size.
    let h = &seen.hello;
    assert_eq!(h.len(), 64);
    assert_eq!(&h[..8], b"SHMSOCKH");
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    assert_eq!((u32_at(8), u32_at(12)), (PROTOCOL_VERSION, KIND_HELLO));
    assert_eq!(u32_at(16), std::process::id());
    let capacity = u64::from_le_bytes(h[24..32].try_into().expect("8 bytes"));
    assert_eq!(seen.fds.len(), 1, "exactly one fd with the hello");
    let seals = rustix::fs::fcntl_get_seals(&seen.fds[0]).expect("F_GET_SEALS");
    assert!(
        seals.contains(ALL_SEALS),
        "the listener's own seals: {seals:?}"
    );
    let size = rustix::fs::fstat(&seen.fds[0]).expect("fstat").st_size as u64;
    assert_eq!(size, RING_OFFSET + capacity);

    // The fake peer has hung up without a goodbye.
    let mut buf = [0u8; 8];
    assert!(matches!(
        conn.recv_timeout(&mut buf, STEP_TIMEOUT),
        Err(Error::PeerGone { .. })
    ));
}

#[test]
fn segment_without_seals_is_refused() {
    let listener = listener("noseals");
    let size = RING_OFFSET + CAPACITY;
    let missing_one = [
        SealFlags::SHRINK,
        SealFlags::GROW,
        SealFlags::FUTURE_WRITE,
        SealFlags::SEAL,
    ]
    .map(|s| ALL_SEALS - s);
    for seals in std::iter::once(SealFlags::empty()).chain(missing_one) {
        let fd = segment(CAPACITY, size, seals);
        let outcome = handshake_by_hand(&listener, good_hello(), vec![fd], false);
        expect_handshake_error(outcome, &["seals"], &format!("seals {seals:?}"));
    }
    assert_still_serves(&listener);
}

#[test]
fn segment_of_wrong_size_is_refused() {
    let listener = listener("wrongsize");
    let expected = RING_OFFSET + CAPACITY;
    for size in [expected + 4096, expected - 4096, expected + 1, 0] {
        let fd = segment(CAPACITY, size, ALL_SEALS);
        let outcome = handshake_by_hand(&listener, good_hello(), vec![fd], false);
        let (actual, needs) = (format!("{size} bytes"), format!("needs {expected}"));
        expect_handshake_error(outcome, &[&actual, &needs], &format!("size {size}"));
    }
    // A correct segment for the announced capacity, but the hello announces another one.
    let outcome = handshake_by_hand(
        &listener,
        hello(PROTOCOL_VERSION, KIND_HELLO, 2 * CAPACITY),
        vec![good_segment()],
        false,
    );
    expect_handshake_error(
        outcome,
        &["needs"],
        "announced capacity twice the segment's",
    );
    assert_still_serves(&listener);
}

#[test]
fn fd_that_is_not_a_sealed_memfd_or_has_a_bad_header_is_refused() {
    let listener = listener("notmemfd");
    let (pipe_r, _pipe_w) = rustix::pipe::pipe().expect("pipe");
    let outcome = handshake_by_hand(&listener, good_hello(), vec![pipe_r], false);
    expect_handshake_error(outcome, &["memfd"], "a pipe");

    let fd = segment(CAPACITY, RING_OFFSET + CAPACITY, ALL_SEALS);
    let bad = segment(CAPACITY, RING_OFFSET + CAPACITY, SealFlags::empty());
    rustix::io::pwrite(&bad, b"NOTSHMSK", 0).expect("pwrite");
    rustix::fs::fcntl_add_seals(&bad, ALL_SEALS).expect("seal");
    drop(fd);
    let outcome = handshake_by_hand(&listener, good_hello(), vec![bad], false);
    expect_handshake_error(outcome, &["header", "magic"], "a segment with a bad magic");
    assert_still_serves(&listener);
}

#[test]
fn hello_of_another_version_is_version_mismatch() {
    let listener = listener("version");
    for peer_version in [PROTOCOL_VERSION + 1, 0, u32::MAX] {
        let (accepted, seen) = handshake_by_hand(
            &listener,
            hello(peer_version, KIND_HELLO, CAPACITY),
            vec![good_segment()],
            false,
        );
        match accepted {
            Err(lines) => assert!(
                lines.iter().any(|l| l.contains("protocol version mismatch")
                    && l.contains(&format!("peer speaks v{peer_version}"))
                    && l.contains(&format!("we speak v{PROTOCOL_VERSION}"))),
                "peer version {peer_version}: the warning names both versions: {lines:#?}"
            ),
            Ok(conn) => panic!("peer version {peer_version}: {conn:?} was accepted"),
        }
        expect_refusal(&seen, &format!("peer version {peer_version}"));
    }
    assert_still_serves(&listener);
}

#[test]
fn truncated_or_garbled_hello_is_a_handshake_error() {
    let listener = listener("badhello");
    let truncated = good_hello()[..40].to_vec();
    let outcome = handshake_by_hand(&listener, truncated, vec![good_segment()], true);
    expect_handshake_error(outcome, &["40 bytes"], "a 40-byte hello");

    let outcome = handshake_by_hand(&listener, Vec::new(), Vec::new(), true);
    expect_handshake_error(outcome, &["0 bytes"], "no hello at all");

    let mut magic = good_hello();
    magic[..8].copy_from_slice(b"ZMTP3.1\0");
    let outcome = handshake_by_hand(&listener, magic, vec![good_segment()], false);
    expect_handshake_error(outcome, &["magic"], "a bad magic");

    let outcome = handshake_by_hand(
        &listener,
        hello(PROTOCOL_VERSION, 7, CAPACITY),
        vec![good_segment()],
        false,
    );
    expect_handshake_error(outcome, &["kind 7"], "an unknown kind");
    assert_still_serves(&listener);
}

#[test]
fn hello_without_exactly_one_fd_is_refused() {
    let listener = listener("fdcount");
    let outcome = handshake_by_hand(&listener, good_hello(), Vec::new(), false);
    expect_handshake_error(outcome, &["exactly one fd", "got 0"], "no fd");
    let two = vec![good_segment(), good_segment()];
    let outcome = handshake_by_hand(&listener, good_hello(), two, false);
    expect_handshake_error(outcome, &["exactly one fd", "got 2"], "two fds");
    // More fds than the listener makes room for: the kernel truncates the control data
    // (closing the rest) and the listener must still refuse.
    for count in [3, 16] {
        let many = (0..count).map(|_| good_segment()).collect();
        let outcome = handshake_by_hand(&listener, good_hello(), many, false);
        expect_handshake_error(outcome, &["one fd"], &format!("{count} fds"));
    }
    assert_still_serves(&listener);
}

/// The connector verifies the listener's segment just as strictly.
#[test]
fn connector_refuses_a_listener_segment_without_seals() {
    let ep = harness::endpoint("fakelistener");
    let dir = harness::setup();
    let path = dir.join(format!("{}.sock", ep.trim_start_matches("shm://")));
    let fake = UnixListener::bind(&path).expect("binding a fake listener");
    let server = std::thread::spawn(move || {
        let (mut sock, _) = fake.accept().expect("accepting");
        let (theirs, _fds) = wire::read_hello(&sock).expect("the connector's hello");
        assert_eq!(theirs.len(), 64, "the connector speaks first");
        let fd = segment(CAPACITY, RING_OFFSET + CAPACITY, SealFlags::empty());
        let mut answer = good_hello();
        answer.push(ACK);
        send_with_fds(&sock, &answer, &[fd]);
        // The connector must hang up: nothing more after its hello.
        sock.set_read_timeout(Some(STEP_TIMEOUT)).expect("timeout");
        let mut rest = Vec::new();
        match sock.read_to_end(&mut rest) {
            Ok(_) => {}
            // It hung up with our acknowledgement unread.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("reading until the hang-up: {e}"),
        }
        rest
    });
    match Conn::connect(&ep) {
        Err(Error::Handshake { reason, endpoint }) => {
            assert_eq!(endpoint, ep);
            assert!(reason.contains("seals"), "{reason}");
        }
        other => panic!("connecting to a listener with an unsealed segment: {other:?}"),
    }
    let rest = server.join().expect("the fake listener");
    assert!(rest.is_empty(), "the connector sent {} bytes", rest.len());
    let _ = std::fs::remove_file(path);
}

/// A connector that connects and then says nothing delays nobody: an honest peer is
/// served while it waits, and it is dropped (logged, with its pid) at its handshake
/// deadline, measured from its connect for the whole exchange.
#[test]
fn stalled_connector_delays_nobody_and_is_dropped_at_its_deadline() {
    const DEADLINE: Duration = Duration::from_millis(500);
    let ep = harness::endpoint("stalled");
    let listener = harness::bind(&ep, Options::new().handshake_timeout(DEADLINE));
    let stalled = UnixStream::connect(listener.socket_path()).expect("connecting by hand");
    let t = Instant::now();
    // While the silent one waits, an honest peer connects, is accepted and talks.
    assert_still_serves(&listener);
    assert!(
        t.elapsed() < DEADLINE,
        "an honest peer waited {:?} behind a silent one",
        t.elapsed()
    );
    let line = harness::expect_dropped(&listener, &["no complete hello", "peer_pid="]);
    let took = t.elapsed();
    assert!(
        took >= DEADLINE && took < DEADLINE * 4,
        "dropped after {took:?}: {line}"
    );
    drop(stalled);
    assert_still_serves(&listener);
}
