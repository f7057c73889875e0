//! Interop with pyzmq (libzmq) PAIR sockets, both directions, over tcp:// and unix://
//! (ZeroMQ's ipc://). The Python side is `pair_peer.py`. Without python3 or pyzmq the tests
//! print why they are skipped and pass, except under `CI=true`, where they fail.

use shmsock::{Conn, Error, Listener};
use shmsock_testkit::process::{self, LinePeer, LinesOf};

use crate::common::{
    bind_endpoint, foreign_bind_endpoint, payload, RemoveOnDrop, Scheme, SCHEMES, SIZES,
    STEP_TIMEOUT,
};

/// The schemes to run a pyzmq interop test over: all of them, or none (the test is
/// skipped, saying why) without python3 and pyzmq; under `CI=true` that fails instead.
pub fn pyzmq_schemes() -> &'static [Scheme] {
    if process::pyzmq_available() {
        &SCHEMES
    } else {
        &[]
    }
}

/// A Python peer (`script` in this directory, playing `role`): killed and reaped on drop;
/// its stdout arrives in lines, its stdin takes lines.
pub struct PyPeer(LinePeer);

impl PyPeer {
    pub fn spawn(script: &str, role: &str, endpoint: &str) -> PyPeer {
        PyPeer::spawn_with(script, role, endpoint, &[])
    }

    /// [`PyPeer::spawn`] with more arguments for the script (its options, such as CURVE
    /// keys).
    pub fn spawn_with(script: &str, role: &str, endpoint: &str, args: &[&str]) -> PyPeer {
        let script = format!("{}/tests/net/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut cmd = std::process::Command::new("python3");
        PyPeer(LinePeer::spawn(
            cmd.args([&script, role, endpoint]).args(args),
            LinesOf::Stdout,
        ))
    }

    /// Spawns a peer that binds a fresh endpoint of `scheme` and says where (`BOUND
    /// <endpoint>`): the peer, that endpoint, and the guard removing its socket file.
    pub fn bound(script: &str, role: &str, scheme: Scheme) -> (PyPeer, String, RemoveOnDrop) {
        PyPeer::bound_with(script, role, scheme, &[])
    }

    /// [`PyPeer::bound`] with more arguments for the script.
    pub fn bound_with(
        script: &str,
        role: &str,
        scheme: Scheme,
        args: &[&str],
    ) -> (PyPeer, String, RemoveOnDrop) {
        let (ep, socket_file) = foreign_bind_endpoint(scheme);
        let mut py = PyPeer::spawn_with(script, role, &ep, args);
        let line = py.line();
        let bound = line
            .strip_prefix("BOUND ")
            .unwrap_or_else(|| panic!("expected BOUND, got {line:?}"))
            .to_owned();
        (py, bound, socket_file)
    }

    pub fn line(&mut self) -> String {
        self.0.line()
    }

    /// The next line if one comes within `limit`.
    pub fn next_line(&mut self, limit: std::time::Duration) -> Option<String> {
        self.0.next_line(limit)
    }

    pub fn say(&mut self, line: &str) {
        self.0.say(line);
    }
}

/// Our side of the protocol in `pair_peer.py`: every size both ways, the multipart message
/// from pyzmq (arriving joined), and the close.
pub fn exchange(conn: &mut Conn, py: &mut PyPeer) {
    for (k, &n) in SIZES.iter().enumerate() {
        conn.send_timeout(&payload(k, n), STEP_TIMEOUT)
            .expect("sending to pyzmq");
    }
    let mut buf = vec![0u8; 4 << 20];
    for (k, &n) in SIZES.iter().enumerate() {
        let got = conn
            .recv_timeout(&mut buf, STEP_TIMEOUT)
            .expect("receiving from pyzmq");
        assert_eq!(got, n, "message {k}");
        assert!(buf[..got] == payload(k + 100, n)[..], "message {k} differs");
    }
    let multi = conn.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
    assert_eq!(
        &buf[..multi],
        b"multipart",
        "multipart parts arrive concatenated"
    );
    conn.send(b"done").unwrap();
    assert_eq!(py.line(), "OK", "the python peer checked our messages");
    let err = conn.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::PeerClosed { .. }), "{err}");
}

#[test]
fn pyzmq_pair_connects_to_our_listener() {
    for &scheme in pyzmq_schemes() {
        let listener = Listener::bind(&bind_endpoint(scheme)).unwrap();
        let mut py = PyPeer::spawn("pair_peer.py", "connect", listener.endpoint());
        let mut conn = listener
            .accept_timeout(STEP_TIMEOUT)
            .expect("pyzmq connects");
        exchange(&mut conn, &mut py);
        eprintln!("{scheme:?}: pyzmq connect -> our listener: ok");
    }
}

#[test]
fn our_conn_connects_to_a_pyzmq_bind() {
    for &scheme in pyzmq_schemes() {
        let (mut py, ep, _socket_file) = PyPeer::bound("pair_peer.py", "bind", scheme);
        let mut conn = Conn::connect(&ep).expect("connecting to pyzmq");
        exchange(&mut conn, &mut py);
        eprintln!("{scheme:?}: our conn -> pyzmq bind: ok");
    }
}
