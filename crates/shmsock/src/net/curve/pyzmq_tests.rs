//! Interop with libzmq (through pyzmq, `tests/net/curve_peer.py`): our CURVE state machines
//! drive a real ZMTP connection over a plain blocking `TcpStream`, with the greeting and
//! the frames written here, against a pyzmq PAIR socket, both ways round, with and without
//! an allow-list. Without python3, pyzmq or its CURVE support the tests print why they are
//! skipped and pass, except under `CI=true`, where they fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmsock_testkit::process::{pyzmq_curve_available, LinePeer, LinesOf};

use super::client::CurveClient;
use super::keys::{CurveKeyPair, CurvePublicKey};
use super::server::CurveServer;
use super::session::CurveSession;
use super::CurveError;
use crate::net::zmtp::{self, Mechanism};

/// Longest any blocking step may take.
const STEP: Duration = Duration::from_secs(20);

/// The Python peer.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/net/curve_peer.py");

/// The Python peer with these arguments; its stdout arrives in lines.
fn python(args: &[&str]) -> LinePeer {
    LinePeer::spawn(
        Command::new("python3").arg(SCRIPT).args(args),
        LinesOf::Stdout,
    )
}

/// One ZMTP connection over a blocking TCP stream: greeting, then frames.
struct Wire(TcpStream);

impl Wire {
    fn new(stream: TcpStream) -> Wire {
        stream.set_read_timeout(Some(STEP)).unwrap();
        stream.set_write_timeout(Some(STEP)).unwrap();
        stream.set_nodelay(true).unwrap();
        Wire(stream)
    }

    /// Exchanges CURVE greetings; checks libzmq's.
    fn greet(&mut self, as_server: bool) {
        self.0
            .write_all(&zmtp::greeting(Mechanism::Curve, as_server))
            .unwrap();
        let mut theirs = [0u8; zmtp::GREETING_LEN];
        self.0.read_exact(&mut theirs).unwrap();
        let peer = zmtp::check_greeting(&theirs, Mechanism::Curve, as_server).unwrap();
        assert_eq!((peer.major, peer.minor), (3, 1));
        // libzmq sends as-server 0 in either role.
        assert!(!peer.as_server);
    }

    fn send_frame(&mut self, body: &[u8], more: bool, command: bool) {
        let mut header = [0u8; zmtp::HEADER_MAX_LEN];
        let n = zmtp::encode_header(body.len(), more, command, &mut header);
        self.0.write_all(&header[..n]).unwrap();
        self.0.write_all(body).unwrap();
    }

    fn send_command(&mut self, body: &[u8]) {
        self.send_frame(body, false, true);
    }

    /// The next frame: (MORE, COMMAND, body).
    fn recv_frame(&mut self) -> (bool, bool, Vec<u8>) {
        let mut header = [0u8; zmtp::HEADER_MAX_LEN];
        self.0.read_exact(&mut header[..2]).unwrap();
        let h = match zmtp::decode_header(&header[..2]).unwrap() {
            Some(h) => h,
            None => {
                self.0.read_exact(&mut header[2..]).unwrap();
                zmtp::decode_header(&header).unwrap().unwrap()
            }
        };
        let mut body = vec![0u8; h.body_len as usize];
        self.0.read_exact(&mut body).unwrap();
        (h.more, h.command, body)
    }

    fn recv_command(&mut self) -> Vec<u8> {
        let (_, command, body) = self.recv_frame();
        assert!(command, "expected a command frame, got data {body:?}");
        body
    }

    /// Sends a message, one MESSAGE per part, each as a data frame with flags 0 (libzmq's
    /// way; MORE travels in the box).
    fn send_message(&mut self, session: &mut CurveSession, parts: &[&[u8]]) {
        let mut body = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            body.clear();
            session.seal(i + 1 < parts.len(), part, &mut body);
            self.send_frame(&body, false, false);
        }
    }

    /// Receives a message and checks it is `parts`, and that libzmq sent each part as a
    /// MESSAGE in a data frame with flags 0.
    fn expect_message(&mut self, session: &mut CurveSession, parts: &[&[u8]]) {
        let mut out = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let (frame_more, command, body) = self.recv_frame();
            assert!(
                !frame_more && !command,
                "libzmq sends each MESSAGE as a data frame with flags 0"
            );
            let got = session.open(&body, &mut out).unwrap();
            assert!(!got.command, "part {i} is data");
            assert_eq!(got.more, i + 1 < parts.len(), "MORE of part {i}");
            assert!(got.frame == *part, "part {i} differs");
        }
    }
}

/// Our half of `curve_peer.py`'s exchange, on an established session.
fn exchange(wire: &mut Wire, session: &mut CurveSession, py: &mut LinePeer) {
    let xs = vec![b'x'; 300];
    wire.expect_message(session, &[b"from-pyzmq", b"", &xs]);
    wire.send_message(session, &[b"hello", b"", b"world"]);
    wire.expect_message(session, &[b"echo:hello", b"echo:", b"echo:world"]);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    wire.send_message(session, &[&big]);
    let mut echoed = b"echo:".to_vec();
    echoed.extend_from_slice(&big);
    wire.expect_message(session, &[&echoed]);
    wire.send_message(session, &[b"done"]);
    assert_eq!(py.line(), "OK", "the python peer saw our messages");
}

/// What our client makes of the server's answer to INITIATE.
type Ready = Result<(CurveSession, Vec<u8>), CurveError>;

/// Starts `curve_peer.py server`, connects to it and runs our client's handshake up to the
/// server's answer to INITIATE: READY (the session and metadata) or a refusal.
fn connect_to_python_server(
    server: &CurveKeyPair,
    client: &CurveKeyPair,
    allow_dir: Option<&str>,
) -> (LinePeer, Wire, Ready) {
    let secret = server.secret().to_z85();
    let mut args = vec!["server", secret.as_str()];
    args.extend(allow_dir);
    let mut py = python(&args);
    let line = py.line();
    let endpoint = line
        .strip_prefix("BOUND tcp://")
        .unwrap_or_else(|| panic!("expected BOUND, got {line:?}"))
        .to_owned();
    let mut wire = Wire::new(TcpStream::connect(&endpoint).unwrap());
    wire.greet(false);
    let mut curve =
        CurveClient::new(client, server.public(), &zmtp::socket_type_metadata("PAIR")).unwrap();
    wire.send_command(&curve.hello());
    let welcome = wire.recv_command();
    wire.send_command(&curve.on_welcome(&welcome).unwrap());
    let ready = wire.recv_command();
    let result = curve.on_ready(&ready);
    (py, wire, result)
}

#[test]
fn our_client_and_a_pyzmq_curve_server_exchange_messages() {
    if !pyzmq_curve_available() {
        return;
    }
    let (server, client) = (CurveKeyPair::generate(), CurveKeyPair::generate());
    let (mut py, mut wire, ready) = connect_to_python_server(&server, &client, None);
    let (mut session, metadata) = ready.expect("libzmq accepts our INITIATE");
    assert_eq!(
        zmtp::property(&metadata, "Socket-Type").unwrap(),
        Some(&b"PAIR"[..])
    );
    exchange(&mut wire, &mut session, &mut py);
}

/// A directory with the public certificate of each of `keys` (written by our `save`, read
/// by pyzmq's authenticator), removed on drop.
struct CertDir(PathBuf);

impl CertDir {
    fn new(name: &str, keys: &[&CurveKeyPair]) -> CertDir {
        let dir = std::env::temp_dir().join(format!(
            "shmsock-curve-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, k) in keys.iter().enumerate() {
            k.save(dir.join(format!("client{i}"))).unwrap();
        }
        CertDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_pyzmq_server_with_an_allow_list_admits_our_key_and_refuses_another_with_400() {
    if !pyzmq_curve_available() {
        return;
    }
    let (server, client) = (CurveKeyPair::generate(), CurveKeyPair::generate());
    let allowed = CertDir::new("allowed", &[&CurveKeyPair::generate(), &client]);
    let (mut py, mut wire, ready) =
        connect_to_python_server(&server, &client, Some(allowed.path()));
    let (mut session, _) = ready.expect("our key is on the allow-list");
    exchange(&mut wire, &mut session, &mut py);

    let others = CertDir::new("others", &[&CurveKeyPair::generate()]);
    let (_py, _wire, refused) = connect_to_python_server(&server, &client, Some(others.path()));
    let err = refused.expect_err("our key is not on the allow-list");
    assert_eq!(err, CurveError::Refused("400".into()));
    assert!(err.to_string().contains("refused our key"), "{err}");
}

/// Waits for one connection on `listener`, at most [`STEP`].
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "pyzmq did not connect");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Starts `curve_peer.py client` against our listener and runs our server's handshake up
/// to its answer to INITIATE.
fn accept_python_client(
    server: &CurveKeyPair,
    client: &CurveKeyPair,
    allow: &[CurvePublicKey],
) -> (LinePeer, Wire, CurveServer, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
    let (public, secret) = (server.public().to_string(), client.secret().to_z85());
    let py = python(&["client", &public, &endpoint, &secret]);
    let mut wire = Wire::new(accept(&listener));
    wire.greet(true);
    let allow = Some(Arc::new(allow.iter().copied().collect()));
    let mut curve = CurveServer::new(server, allow, &zmtp::socket_type_metadata("PAIR"));
    let hello = wire.recv_command();
    wire.send_command(&curve.on_hello(&hello).unwrap());
    let initiate = wire.recv_command();
    (py, wire, curve, initiate)
}

#[test]
fn a_pyzmq_curve_client_and_our_server_exchange_messages() {
    if !pyzmq_curve_available() {
        return;
    }
    let (server, client) = (CurveKeyPair::generate(), CurveKeyPair::generate());
    let (mut py, mut wire, mut curve, initiate) =
        accept_python_client(&server, &client, &[client.public()]);
    let mut accepted = curve.on_initiate(&initiate).expect("pyzmq's INITIATE");
    assert_eq!(accepted.client, client.public(), "the vouched client key");
    assert_eq!(
        zmtp::property(&accepted.metadata, "Socket-Type").unwrap(),
        Some(&b"PAIR"[..])
    );
    wire.send_command(&accepted.ready);
    exchange(&mut wire, &mut accepted.session, &mut py);
}

#[test]
fn a_pyzmq_client_whose_key_we_do_not_allow_is_refused_and_told_so() {
    if !pyzmq_curve_available() {
        return;
    }
    let (server, client) = (CurveKeyPair::generate(), CurveKeyPair::generate());
    let stranger = CurveKeyPair::generate();
    let (mut py, mut wire, mut curve, initiate) =
        accept_python_client(&server, &client, &[stranger.public()]);
    let err = curve.on_initiate(&initiate).unwrap_err();
    assert_eq!(err, CurveError::NotAllowed(client.public()));
    assert!(
        err.to_string()
            .contains(&format!("client key {} is not allowed", client.public())),
        "{err}"
    );
    wire.send_command(&err.error_body().unwrap());
    drop(wire);
    // libzmq reports our ERROR "400" as an authentication failure with ZAP status 400.
    assert_eq!(py.line(), "AUTH_FAILED 400");
}
