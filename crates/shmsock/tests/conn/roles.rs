//! The child side: what a peer process does, chosen by `SHMSOCK_TEST_ROLE` (reporting,
//! parameters and the parent-death signal are the kit's, [`shmsock_testkit::child`]).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use shmsock::{Conn, Error, Listener, Options};
use shmsock_testkit::child::{
    die_with_parent, report, seed_and_max_len, var, var_u64, wait_for_start, COUNT_ENV, IDLE_MAX,
};
use shmsock_testkit::harness::{open_fds, STEP_TIMEOUT};
use shmsock_testkit::{message, wire};

/// Rendezvous socket path for a raw connect.
pub const SOCKET_ENV: &str = "SHMSOCK_TEST_SOCKET";
/// Uid of the listener, which the connector admits.
pub const LISTENER_UID_ENV: &str = "SHMSOCK_TEST_LISTENER_UID";
/// If set, the child switches to this uid (and gid) before anything else.
pub const SETUID_ENV: &str = "SHMSOCK_TEST_SETUID";
/// A second endpoint (a listener that admits the child's uid).
pub const ENDPOINT_B_ENV: &str = "SHMSOCK_TEST_ENDPOINT_B";

/// Sends messages `0..COUNT` of the stream the parent asked for; returns `COUNT`.
fn send_env_stream(conn: &mut Conn) -> u64 {
    let count = var_u64(COUNT_ENV);
    let (seed, max_len) = seed_and_max_len();
    message::send_stream(conn, count, seed, max_len);
    count
}

/// Runs `role` against `ep`; returns when the role is done (the caller exits the process).
pub fn run(role: &str, ep: &str) {
    match role {
        "echo" => echo(&mut connect(ep)),
        "loan_stream" => crate::loans::lend_stream(ep),
        "hold_samples" => crate::loans::hold_samples(ep),
        "stream" => {
            let mut conn = connect(ep);
            send_env_stream(&mut conn);
            report("done");
        }
        "send_then_hang" => {
            // The connection stays open while the role hangs.
            let mut conn = connect(ep);
            let count = send_env_stream(&mut conn);
            report(format!("sent {count}"));
            std::thread::sleep(IDLE_MAX);
        }
        "send_then_close" => {
            let mut conn = connect(ep);
            let count = send_env_stream(&mut conn);
            drop(conn);
            report(format!("closed after {count}"));
        }
        "idle" => {
            let _conn = connect(ep);
            report("ready");
            std::thread::sleep(IDLE_MAX);
        }
        "listen" => {
            let listener = Listener::bind(ep).unwrap_or_else(|e| panic!("binding {ep}: {e}"));
            report("ready");
            let mut conn = listener.accept().expect("accepting the parent");
            echo(&mut conn);
            report("served");
            std::thread::sleep(IDLE_MAX);
        }
        "bind_race" => {
            wait_for_start();
            match Listener::bind(ep) {
                Ok(listener) => {
                    report("won");
                    let mut conn = listener
                        .accept_timeout(STEP_TIMEOUT)
                        .expect("accepting the parent");
                    echo(&mut conn);
                    report("served");
                    std::thread::sleep(IDLE_MAX);
                }
                Err(Error::AddrInUse { .. }) => report("in-use"),
                Err(e) => report(format!("error {e}")),
            }
        }
        "refused_peer" => refused_peer(ep),
        other => panic!("unknown role {other:?}"),
    }
}

fn connect(ep: &str) -> Conn {
    Conn::connect(ep).unwrap_or_else(|e| panic!("connecting to {ep}: {e}"))
}

/// Sends every message back until the parent closes.
fn echo(conn: &mut Conn) {
    let mut buf = vec![0u8; shmsock::RING_CAPACITY_DEFAULT_BYTES];
    loop {
        match conn.recv_timeout(&mut buf, STEP_TIMEOUT) {
            Ok(n) => conn
                .send_timeout(&buf[..n], STEP_TIMEOUT)
                .expect("echoing a message"),
            Err(Error::PeerClosed { .. }) => return,
            Err(e) => panic!("echo: {e}"),
        }
    }
}

/// Switches the whole process (every thread: glibc's setuid is process-wide) to `uid`.
fn drop_privileges(uid: u32) {
    // SAFETY: plain libc calls with valid arguments (a null list of length 0); glibc applies
    // them to every thread of the process.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(uid as libc::gid_t) != 0
            || libc::setuid(uid as libc::uid_t) != 0
    };
    assert!(
        !failed,
        "switching to uid {uid}: {}",
        std::io::Error::last_os_error()
    );
    assert_eq!(rustix::process::geteuid().as_raw(), uid);
    // A credential change clears the parent-death signal and makes /proc/self root-owned.
    die_with_parent();
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)
        .expect("prctl(PR_SET_DUMPABLE)");
}

/// Reads the listener's first message (up to 64 bytes) from a rendezvous socket by hand:
/// returns its bytes and the fds that came with it.
pub fn raw_first_message(sock: &UnixStream) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut buf = [0u8; 128];
    let (got, fds) = wire::recv_with_fds(sock, &mut buf, 64).expect("recvmsg from the peer");
    (buf[..got].to_vec(), fds)
}

/// A peer the listener must refuse: first by hand (to see that no fd arrives), then through
/// the library. With `SHMSOCK_TEST_SETUID` it first becomes another user; with
/// `SHMSOCK_TEST_ENDPOINT_B` it then talks to a listener that admits it.
fn refused_peer(ep: &str) {
    if let Ok(uid) = std::env::var(SETUID_ENV) {
        drop_privileges(uid.parse().expect("SHMSOCK_TEST_SETUID is a uid"));
    }
    let me = rustix::process::geteuid().as_raw();
    let listener_uid = var_u64(LISTENER_UID_ENV) as u32;
    let opts = Options::new().allow_uid(listener_uid);

    let path = var(SOCKET_ENV);
    let sock = UnixStream::connect(&path).unwrap_or_else(|e| panic!("connecting {path}: {e}"));
    let (bytes, fds) = raw_first_message(&sock);
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    report(format!(
        "raw bytes={} kind={:?} reason={:?} fds={}",
        bytes.len(),
        u32_at(12),
        u32_at(20),
        fds.len()
    ));
    drop(sock);

    let before = open_fds();
    match Conn::connect_with(ep, opts.clone()) {
        Err(Error::Refused { .. }) => {
            report(format!("lib refused leaked_fds={}", open_fds() - before))
        }
        other => report(format!("lib unexpected {other:?}")),
    }

    if let Ok(ep_b) = std::env::var(ENDPOINT_B_ENV) {
        match Conn::connect(&ep_b) {
            Err(Error::PermissionDenied { uid, .. }) => {
                report(format!("denied listener_uid={uid}"))
            }
            other => report(format!("unexpected {other:?}")),
        }
        let mut conn = Conn::connect_with(&ep_b, opts)
            .unwrap_or_else(|e| panic!("uid {me} connecting to {ep_b}: {e}"));
        conn.send_timeout(format!("hello from uid {me}").as_bytes(), STEP_TIMEOUT)
            .expect("sending as another uid");
        let mut buf = [0u8; 256];
        let n = conn
            .recv_timeout(&mut buf, STEP_TIMEOUT)
            .expect("receiving as another uid");
        report(format!("reply {}", String::from_utf8_lossy(&buf[..n])));
    }
}
