//! A peer whose uid the listener does not admit is refused before any fd leaves the
//! listener (`SO_PEERCRED` is checked first).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use shmsock::{Listener, Options};

use crate::roles::{ENDPOINT_B_ENV, LISTENER_UID_ENV, SETUID_ENV, SOCKET_ENV};
use shmsock_testkit::harness::{self, Peer, RemoveOnDrop, RUNTIME_DIR_ENV, STEP_TIMEOUT};
use shmsock_testkit::logs::capture_logs;

/// The uid (and gid) of `nobody` on Linux.
const NOBODY: u32 = 65534;

/// The peer connects twice, by hand and through the library; the listener must refuse both
/// (logged, naming the peer's pid and uid, and never an error of `accept`), send a REFUSE hello (kind 2,
/// reason 1) with no fd, and the library connect must not leave an fd behind.
fn expect_refusals(listener: &Listener, peer: &mut Peer, peer_uid: u32) {
    let pid = peer.pid().as_raw_nonzero().get();
    // The listener logs both refusals (and goes on accepting): each names the endpoint, the
    // peer's pid and its uid.
    harness::expect_dropped_times(
        listener,
        &[
            listener.endpoint(),
            &format!("peer pid {pid} runs as uid {peer_uid}, which is not allowed"),
        ],
        2,
    );
    assert_eq!(
        peer.expect("raw"),
        "bytes=64 kind=Some(2) reason=Some(1) fds=0",
        "the listener's answer to a refused peer, as seen on the wire"
    );
    assert_eq!(peer.expect("lib"), "refused leaked_fds=0");
}

#[test]
fn peer_outside_the_allow_list_is_refused_before_any_fd_is_passed() {
    let me = rustix::process::geteuid().as_raw();
    let ep = harness::endpoint("allowlist");
    let stranger = if me == 12345 { 12346 } else { 12345 };
    let listener = harness::bind(&ep, Options::new().allow_uid(stranger));
    let socket = listener
        .socket_path()
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    let mut peer = Peer::spawn(
        "refused_peer",
        &ep,
        &[(SOCKET_ENV, &socket), (LISTENER_UID_ENV, &me.to_string())],
    );
    expect_refusals(&listener, &mut peer, me);
    peer.wait_success();
}

/// Runs only as root: the child becomes `nobody` (setgroups, setgid, setuid) and connects
/// to a root listener, so the refusal comes from the real `SO_PEERCRED` uid.
///
/// The library wants a rendezvous directory owned by the caller's euid with no group or
/// other access, so the root listener's directory is unreachable for `nobody`. The child
/// therefore gets its own directory (owned by `nobody`, 0700) holding hard links to the
/// listeners' sockets, made connectable with mode 0666 (connect needs write permission on
/// the socket inode). Unix sockets are found by inode, so a hard link reaches the listener.
#[test]
fn disallowed_uid_is_refused_before_any_fd_is_passed() {
    if !rustix::process::geteuid().is_root() {
        // CI runs as root: there, not being root is a broken set-up, not a reason to skip.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but not root: this test needs root to switch uid"
        );
        eprintln!("skipped: needs root to switch uid");
        return;
    }
    let ep_a = harness::endpoint("uid-refused");
    let ep_b = harness::endpoint("uid-admitted");
    let refusing = harness::bind(&ep_a, Options::new());
    let admitting = harness::bind(&ep_b, Options::new().allow_uid(NOBODY));

    let dir = harness::setup().with_file_name(format!(
        "shmsock-it-{}-nobody-{}",
        std::process::id(),
        ep_a.rsplit('-').next().expect("endpoint counter")
    ));
    let _cleanup = RemoveOnDrop(dir.clone());
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("creating nobody's rendezvous dir");
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
    for listener in [&refusing, &admitting] {
        let name = Path::new(listener.socket_path())
            .file_name()
            .expect("socket file name");
        std::fs::hard_link(listener.socket_path(), dir.join(name)).expect("hard link");
        std::fs::set_permissions(
            listener.socket_path(),
            std::fs::Permissions::from_mode(0o666),
        )
        .expect("chmod socket");
    }
    let link_a = dir
        .join(refusing.socket_path().file_name().expect("name"))
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    let mut peer = Peer::spawn(
        "refused_peer",
        &ep_a,
        &[
            (RUNTIME_DIR_ENV, dir.to_str().expect("utf-8 path")),
            (SETUID_ENV, &NOBODY.to_string()),
            (LISTENER_UID_ENV, "0"),
            (SOCKET_ENV, &link_a),
            (ENDPOINT_B_ENV, &ep_b),
        ],
    );
    expect_refusals(&refusing, &mut peer, NOBODY);

    // The connector checks the listener too: by default it admits only its own uid, so it
    // hangs up on the root listener, which logs a broken handshake and goes on: the peer's next connection, admitted both ways, is accepted.
    let (accepted, logs) = capture_logs(|| harness::accept(&admitting));
    let mut conn = accepted.expect("accepting nobody");
    assert_eq!(peer.expect("denied"), "listener_uid=0");
    let pid = peer.pid().as_raw_nonzero().get();
    assert!(
        logs.iter().any(|l| l.starts_with("WARN")
            && l.contains("handshake failed; peer dropped")
            && l.contains(&format!("peer_pid={pid}"))),
        "the refusing connector's hang-up is logged: {logs:#?}"
    );

    // Admitted both ways, the two users talk.
    let mut buf = [0u8; 64];
    let n = conn
        .recv_timeout(&mut buf, STEP_TIMEOUT)
        .expect("message from nobody");
    assert_eq!(&buf[..n], format!("hello from uid {NOBODY}").as_bytes());
    conn.send_timeout(b"hello from root", STEP_TIMEOUT)
        .expect("reply to nobody");
    assert_eq!(peer.expect("reply"), "hello from root");
    peer.wait_success();
}
