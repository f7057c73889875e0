//! Handshake cases `tests/conn/handshake.rs` does not cover: oversized hellos, the kernel's
//! SCM_MAX_FD worth of fds (MSG_CTRUNC), fds of every other kind (regular file, device,
//! eventfd, socket, directory, a memfd that cannot be sealed); and what a live connection
//! holds: every fd CLOEXEC, the peer's segment mapped read-only and its fd closed.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;

use rustix::fs::{MemfdFlags, Mode, OFlags};
use shmsock::{Conn, Listener, Options};

use crate::leaks::{self, O_CLOEXEC_FDINFO};
use crate::rawpeer::{self, RING_OFFSET};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};

const CAP: u64 = 4096;

/// A fake connector: sends `bytes` with `fds`, then `extra` raw bytes, and reads the
/// verdict: the listener's hello and the ACK, or a refusal. Returns whether it got the
/// ACK; panics if the listener passed its fds to a peer it refused.
fn fake_connector(
    path: &Path,
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    extra: Vec<u8>,
) -> JoinHandle<bool> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut sock = UnixStream::connect(&path).expect("connecting by hand");
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        if rawpeer::send_with_fds(&sock, &bytes, &borrowed).is_err() {
            return false;
        }
        drop(borrowed);
        drop(fds);
        // The listener may hang up while we still write: that is a refusal.
        let _ = sock.write_all(&extra);
        // A listener that hangs up with our bytes unread resets the connection.
        let Ok((_answer, their_fds)) = rawpeer::read_hello(&sock) else {
            return false;
        };
        sock.set_read_timeout(Some(STEP_TIMEOUT)).expect("timeout");
        let mut reply = [0u8; 1];
        let acked = matches!(sock.read(&mut reply), Ok(1) if reply[0] == rawpeer::ACK);
        assert!(
            acked || their_fds.is_empty(),
            "the listener refused us, yet passed {} fds",
            their_fds.len()
        );
        acked
    })
}

/// Runs one fake connector; the listener must drop it with a logged `Handshake` error
/// containing every word of `words` (and `accept` go on), the connector gets no ACK, and
/// our fd count is back to the baseline.
fn expect_refused(
    listener: &Listener,
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    extra: Vec<u8>,
    words: &[&str],
    case: &str,
) {
    let baseline = leaks::open_fds();
    let fake = fake_connector(listener.socket_path(), bytes, fds, extra);
    let accepted = harness::accept_or_dropped(listener, || fake.is_finished());
    let acked = fake.join().expect("the fake connector");
    match accepted {
        Err(lines) => {
            let line = lines
                .iter()
                .find(|l| l.contains("handshake with peer failed"))
                .unwrap_or_else(|| panic!("{case}: no logged handshake error: {lines:#?}"));
            for w in words {
                assert!(line.contains(w), "{case}: {line:?} lacks {w:?}");
            }
            eprintln!("{case}: refused: {line}");
        }
        Ok(conn) => panic!("{case}: {conn:?} was accepted, expected a dropped peer"),
    }
    assert!(!acked, "{case}: a refused peer got the ACK");
    leaks::assert_fds_return_to(&baseline, case);
}

fn still_serves(listener: &Listener) {
    let ep = listener.endpoint().to_owned();
    let client = std::thread::spawn(move || Conn::connect(&ep)?.send(b"still here"));
    let mut conn = harness::accept(listener).expect("a good peer after bad ones");
    assert_eq!(conn.recv_vec().expect("message"), b"still here");
    client.join().expect("client").expect("client side");
}

#[test]
fn oversized_hello_is_refused() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("oversized"), Options::new());
    // A correct hello with 36 more bytes in the same message (and the right fd).
    expect_long_hello_refused(&listener, 36, Vec::new(), "a 100-byte hello");
    // A megabyte: the listener reads one byte past a hello, refuses, and hangs up on the rest.
    expect_long_hello_refused(&listener, 100, vec![0xdd; 1 << 20], "a 1 MiB hello");
    still_serves(&listener);
}

/// A correct hello (with the right fd) and `extra` more bytes in the same message, then
/// `trailing` bytes: refused for its length (the listener reads 65 bytes at most).
fn expect_long_hello_refused(listener: &Listener, extra: usize, trailing: Vec<u8>, what: &str) {
    let mut long = rawpeer::good_hello(CAP);
    long.extend(std::iter::repeat_n(0xee, extra));
    let fds = vec![rawpeer::sealed_segment(CAP)];
    expect_refused(listener, long, fds, trailing, &["65 bytes"], what);
}

#[test]
fn hello_with_scm_max_fd_fds_is_refused_and_every_fd_closed() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("manyfds"), Options::new());
    let seg = rawpeer::sealed_segment(CAP);
    // 253 is SCM_MAX_FD: the most one message can carry.
    for count in [3usize, 64, 253] {
        let fds: Vec<OwnedFd> = (0..count).map(|_| seg.try_clone().expect("dup")).collect();
        expect_refused(
            &listener,
            rawpeer::good_hello(CAP),
            fds,
            Vec::new(),
            &["one fd"],
            &format!("{count} fds"),
        );
    }
    still_serves(&listener);
}

/// A regular file holding a perfect segment image, of exactly the right size.
fn regular_file(dir: &Path) -> OwnedFd {
    let image = rawpeer::sealed_segment(CAP);
    rawpeer::regular_file_copy(dir, "fake-segment", &image, RING_OFFSET + CAP as usize)
}

#[test]
fn fd_of_any_other_kind_is_refused() {
    let _serial = crate::serial();
    let listener = harness::bind(&harness::endpoint("fdkinds"), Options::new());
    let dir = harness::setup();
    let unsealable =
        rustix::fs::memfd_create("shmsock-unsealable", MemfdFlags::CLOEXEC).expect("memfd");
    rustix::fs::ftruncate(&unsealable, RING_OFFSET as u64 + CAP).expect("ftruncate");
    let (sock_a, _sock_b) = UnixStream::pair().expect("socketpair");
    let cases: Vec<(&str, OwnedFd)> = vec![
        ("a regular file with a segment image", regular_file(dir)),
        (
            "/dev/zero",
            rustix::fs::open("/dev/zero", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .expect("/dev/zero"),
        ),
        (
            "an eventfd",
            rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).expect("eventfd"),
        ),
        ("a Unix socket", OwnedFd::from(sock_a)),
        (
            "a directory",
            rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .expect("directory"),
        ),
        ("a memfd created without MFD_ALLOW_SEALING", unsealable),
    ];
    for (case, fd) in cases {
        let baseline = leaks::open_fds();
        let fake = fake_connector(
            listener.socket_path(),
            rawpeer::good_hello(CAP),
            vec![fd],
            Vec::new(),
        );
        let accepted = harness::accept_or_dropped(&listener, || fake.is_finished());
        assert!(!fake.join().expect("fake connector"), "{case}: got the ACK");
        match accepted {
            Err(lines) => {
                assert!(
                    lines
                        .iter()
                        .any(|l| l.contains("handshake with peer failed")
                            && (l.contains("memfd") || l.contains("seals"))),
                    "{case}: {lines:#?}"
                );
            }
            Ok(conn) => panic!("{case}: {conn:?} was accepted, expected a dropped peer"),
        }
        leaks::assert_fds_return_to(&baseline, case);
    }
    still_serves(&listener);
}

/// The fds of `pid` that a shmsock connection owns: its memfds, sockets and lock files.
fn library_fds(pid: &str) -> Vec<(u32, String)> {
    leaks::fds_of(pid)
        .into_iter()
        .filter(|(_, t)| {
            t.starts_with("/memfd:shmsock") || t.starts_with("socket:") || t.ends_with(".lock")
        })
        .collect()
}

fn inode_of_fd(pid: &str, fd: u32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
        .expect("stat of an fd")
        .ino()
}

/// Every fd a live connection holds, on both sides, is CLOEXEC (no fd leaks into programs
/// the user starts); each side maps its own segment read-write and the peer's read-only,
/// and keeps no fd of the peer's segment.
#[test]
fn live_connection_fds_are_cloexec_and_peer_segments_read_only() {
    let _serial = crate::serial();
    let ep = harness::endpoint("cloexec");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn("hold_conn", &ep, &[]);
    let conn = harness::accept(&listener).expect("accepting");
    peer.expect("ready");
    // The connection outlives its listener; the spare segment the listener made for its next
    // connection goes with it, leaving one segment per side.
    drop(listener);
    let child = peer.pid().as_raw_nonzero().get().to_string();

    for pid in ["self", child.as_str()] {
        let fds = library_fds(pid);
        assert!(
            fds.iter().any(|(_, t)| t.starts_with("/memfd:shmsock")),
            "{pid}: no segment fd in {fds:?}"
        );
        for (fd, target) in &fds {
            let flags = leaks::fd_flags(pid, *fd);
            assert!(
                flags & O_CLOEXEC_FDINFO != 0,
                "pid {pid}: fd {fd} ({target}) is not CLOEXEC (flags {flags:o})"
            );
        }
        eprintln!("pid {pid}: {} library fds, all CLOEXEC: {fds:?}", fds.len());
    }

    let segments = |pid: &str| -> Vec<u64> {
        library_fds(pid)
            .iter()
            .filter(|(_, t)| t.starts_with("/memfd:shmsock"))
            .map(|(fd, _)| inode_of_fd(pid, *fd))
            .collect()
    };
    let (ours, theirs) = (segments("self"), segments(&child));
    assert_eq!((ours.len(), theirs.len()), (1, 1), "one segment per side");
    for (owner, other, ino) in [
        ("self", child.as_str(), ours[0]),
        (child.as_str(), "self", theirs[0]),
    ] {
        assert_eq!(
            leaks::mapping_perms(owner, ino),
            ["rw-s"],
            "{owner} maps its own segment"
        );
        assert_eq!(
            leaks::mapping_perms(other, ino),
            ["r--s"],
            "{other} maps the peer's segment read-only"
        );
        assert!(
            !segments(other).contains(&ino),
            "{other} kept an fd of the peer's segment"
        );
    }
    drop(conn);
}
