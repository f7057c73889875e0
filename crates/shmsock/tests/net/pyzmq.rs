//! Interop with pyzmq (libzmq) PAIR sockets, both directions, over tcp:// and unix://
//! (ZeroMQ's ipc://). The Python side is `pair_peer.py`. Without python3 or pyzmq the tests
//! print why they are skipped and pass; CI installs pyzmq so they run there.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use shmsock::{Conn, Error, Listener};

use crate::common::{bind_endpoint, foreign_bind_endpoint, payload, SCHEMES, SIZES, STEP_TIMEOUT};

/// Whether `python3 -c "import zmq"` works; prints the skip reason if not.
pub fn pyzmq_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import zmq"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: pyzmq not installed (pip install pyzmq)");
        eprintln!("skipped: pyzmq not installed (pip install pyzmq)");
    }
    ok
}

/// The Python peer: killed and reaped on drop; its stdout lines arrive on `lines`.
struct PyPeer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl PyPeer {
    fn spawn(role: &str, endpoint: &str) -> PyPeer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/net/pair_peer.py");
        let mut child = Command::new("python3")
            .args([script, role, endpoint])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python3");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyPeer { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(STEP_TIMEOUT)
            .expect("a line from the python peer")
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our side of the protocol in `pair_peer.py`.
fn exchange(conn: &mut Conn, py: &PyPeer) {
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
    if !pyzmq_available() {
        return;
    }
    for scheme in SCHEMES {
        let listener = Listener::bind(&bind_endpoint(scheme)).unwrap();
        let py = PyPeer::spawn("connect", listener.endpoint());
        let mut conn = listener
            .accept_timeout(STEP_TIMEOUT)
            .expect("pyzmq connects");
        exchange(&mut conn, &py);
        eprintln!("{scheme:?}: pyzmq connect -> our listener: ok");
    }
}

#[test]
fn our_conn_connects_to_a_pyzmq_bind() {
    if !pyzmq_available() {
        return;
    }
    for scheme in SCHEMES {
        let (ep, _socket_file) = foreign_bind_endpoint(scheme);
        let py = PyPeer::spawn("bind", &ep);
        let bound = py.line();
        let ep = bound.strip_prefix("BOUND ").expect("BOUND line").to_owned();
        let mut conn = Conn::connect(&ep).expect("connecting to pyzmq");
        exchange(&mut conn, &py);
        eprintln!("{scheme:?}: our conn -> pyzmq bind: ok");
    }
}
