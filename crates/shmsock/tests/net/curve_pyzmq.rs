//! CURVE (RFC 26 CurveZMQ) between shmsock and pyzmq (libzmq) in separate processes, over
//! tcp:// and unix:// (ZeroMQ's ipc://), both directions:
//!
//! - PAIR: our `Listener` as the CURVE server of a pyzmq client on its allow-list, and our
//!   `Conn` as the client of a pyzmq CURVE server; every message size both ways (0 B, the
//!   255/256 B frame boundary, 64 KiB, 1 MiB, 3 MiB) and a multipart message from pyzmq,
//!   which arrives joined (`pair_peer.py` with its CURVE options, the protocol of `pyzmq.rs`).
//! - PUB/SUB with topic filters: our `Publisher` as CURVE server of a pyzmq SUB, and a
//!   pyzmq PUB as CURVE server of our `Subscriber` (`pubsub_peer.py`, the schedule of
//!   `pubsub_pyzmq.rs`).
//! - Refusals: a pyzmq client whose key is not on our allow-list sees the handshake fail
//!   with ZAP status 400, and a pyzmq NULL client gets no connection; our server logs each
//!   and goes on serving an honest pyzmq client. Our `Conn` whose key is not on a pyzmq
//!   server's allow-list (`zmq.auth`'s ThreadAuthenticator) gets a handshake error that
//!   says so.
//! - Keys and certificate files (`zmq.auth`, whose format is czmq's zcert): what we write
//!   pyzmq loads, what pyzmq writes we load, and the keys are the same bytes both ways.
//!
//! Without python3, pyzmq or its CURVE support the tests print why they are skipped and
//! pass, except under `CI=true`, where they fail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shmsock::{Conn, CurveKeyPair, CurvePublicKey, CurveSecretKey, Error, Listener, Options};
use shmsock_testkit::process::{assert_success, pyzmq_curve_available};

use shmsock_testkit::logs::capture_logs;

use crate::common::{bind_endpoint, Scheme, SCHEMES, STEP_TIMEOUT};
use crate::pubsub_pyzmq::{our_publisher_to_a_pyzmq_sub, pyzmq_pub_to_our_subscriber};
use crate::pyzmq::{exchange, PyPeer};

/// The schemes to run a CURVE interop test over: both, or none (the test is skipped,
/// saying why) without python3, pyzmq or its CURVE support; under `CI=true` that fails.
fn curve_schemes() -> &'static [Scheme] {
    if pyzmq_curve_available() {
        &SCHEMES
    } else {
        &[]
    }
}

/// The 40 Z85 characters of `pair`'s secret key, for a pyzmq peer's command line. (The
/// library writes secret keys only into certificate files; Z85 is the same encoding for
/// any 32 bytes, so the public-key `Display` of the secret's bytes is it.)
fn secret_z85(pair: &CurveKeyPair) -> String {
    CurvePublicKey::from(*pair.secret().as_bytes()).to_string()
}

/// `pair_peer.py` options making it a CURVE client with `client`'s keys of `server`.
fn client_args(client: &CurveKeyPair, server: CurvePublicKey) -> [String; 3] {
    [
        "--curve-client".to_owned(),
        secret_z85(client),
        server.to_string(),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// How long our server waits for a refused peer: its handshake fails well within this.
const REFUSAL_WAIT: Duration = Duration::from_secs(3);

/// Fresh keys for a test: the server's and the client's.
fn server_and_client() -> (CurveKeyPair, CurveKeyPair) {
    (CurveKeyPair::generate(), CurveKeyPair::generate())
}

/// Options of our CURVE server with `server`'s keys, allowing `client` only.
fn server_options(server: &CurveKeyPair, client: &CurveKeyPair) -> Options {
    Options::new()
        .curve_secret(server.clone())
        .curve_allow([client.public()])
}

/// Options of our CURVE client with the keys `client`, of the server `server`.
fn client_options(client: CurveKeyPair, server: &CurveKeyPair) -> Options {
    Options::new()
        .curve_secret(client)
        .curve_server(server.public())
}

/// Our CURVE listener on a fresh `scheme` endpoint: `server`'s keys, allowing `client` only.
fn curve_listener(scheme: Scheme, server: &CurveKeyPair, client: &CurveKeyPair) -> Listener {
    Listener::bind_with(&bind_endpoint(scheme), server_options(server, client)).unwrap()
}

/// Our `listener` accepts no connection within [`REFUSAL_WAIT`] (its peer is refused); returns
/// what it logged meanwhile.
fn accepts_nothing(listener: &Listener, scheme: Scheme) -> Vec<String> {
    let (accepted, logs) = capture_logs(|| listener.accept_timeout(REFUSAL_WAIT));
    assert!(
        matches!(accepted, Err(Error::TimedOut)),
        "{scheme:?}: accept returned {:?}",
        accepted.map(|_| ())
    );
    logs
}

/// A pyzmq PAIR CURVE client with `client`'s keys connecting to our `listener` (whose public
/// key is `server`); it reports how its handshake ended.
fn spawn_curve_client(
    listener: &Listener,
    client: &CurveKeyPair,
    server: CurvePublicKey,
) -> PyPeer {
    let mut args = client_args(client, server).to_vec();
    args.push("--report-handshake".to_owned());
    PyPeer::spawn_with("pair_peer.py", "connect", listener.endpoint(), &strs(&args))
}

/// An honest pyzmq CURVE client on `listener`'s allow-list (`client`) connects and runs the
/// whole PAIR exchange: the server is still serving.
fn serve_honest_client(
    listener: &Listener,
    client: &CurveKeyPair,
    server: CurvePublicKey,
    scheme: Scheme,
) {
    let mut py = spawn_curve_client(listener, client, server);
    let mut conn = listener
        .accept_timeout(STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{scheme:?}: an honest pyzmq CURVE client connects: {e}"));
    assert_eq!(py.line(), "HANDSHAKE_OK", "{scheme:?}");
    exchange(&mut conn, &mut py);
}

#[test]
fn a_pyzmq_curve_client_talks_to_our_curve_listener() {
    for &scheme in curve_schemes() {
        let (server, client) = server_and_client();
        let listener = curve_listener(scheme, &server, &client);
        serve_honest_client(&listener, &client, server.public(), scheme);
        eprintln!("{scheme:?}: pyzmq CURVE client -> our CURVE listener: ok");
    }
}

#[test]
fn our_curve_conn_talks_to_a_pyzmq_curve_server() {
    for &scheme in curve_schemes() {
        let (server, client) = server_and_client();
        let (mut py, ep, _socket_file) = PyPeer::bound_with(
            "pair_peer.py",
            "bind",
            scheme,
            &["--curve-server", &secret_z85(&server)],
        );
        let mut conn = Conn::connect_with(&ep, client_options(client, &server))
            .expect("connecting to pyzmq over CURVE");
        exchange(&mut conn, &mut py);
        eprintln!("{scheme:?}: our CURVE conn -> pyzmq CURVE server: ok");
    }
}

#[test]
fn our_curve_publisher_to_a_pyzmq_curve_sub_with_topics() {
    for &scheme in curve_schemes() {
        let (server, client) = server_and_client();
        let args = client_args(&client, server.public());
        our_publisher_to_a_pyzmq_sub(scheme, server_options(&server, &client), &strs(&args));
        eprintln!("{scheme:?}: our CURVE PUB -> pyzmq CURVE SUB: ok");
    }
}

#[test]
fn a_pyzmq_curve_pub_to_our_curve_subscriber_with_topics() {
    for &scheme in curve_schemes() {
        let (server, client) = server_and_client();
        pyzmq_pub_to_our_subscriber(
            scheme,
            client_options(client, &server),
            &["--curve-server", &secret_z85(&server)],
        );
        eprintln!("{scheme:?}: pyzmq CURVE PUB -> our CURVE SUB: ok");
    }
}

#[test]
fn a_pyzmq_client_not_on_our_allow_list_is_refused_and_we_go_on_serving() {
    for &scheme in curve_schemes() {
        let (server, client) = server_and_client();
        let listener = curve_listener(scheme, &server, &client);
        let stranger = CurveKeyPair::generate();
        let mut py = spawn_curve_client(&listener, &stranger, server.public());
        let logs = accepts_nothing(&listener, scheme);
        // libzmq reports our ERROR "400" as a ZAP authentication failure, status 400.
        assert_eq!(py.line(), "AUTH_FAILED 400", "{scheme:?}");
        let refusal = format!("client key {} is not allowed", stranger.public());
        assert!(
            logs.iter().any(|l| l.contains(&refusal)),
            "{scheme:?}: no log of the refusal: {logs:?}"
        );
        drop(py);
        serve_honest_client(&listener, &client, server.public(), scheme);
        eprintln!("{scheme:?}: a pyzmq stranger is refused, then an honest client served: ok");
    }
}

#[test]
fn a_pyzmq_null_client_gets_nothing_from_our_curve_server() {
    for &scheme in curve_schemes() {
        let (server, client) = server_and_client();
        let listener = curve_listener(scheme, &server, &client);
        let mut py = PyPeer::spawn_with(
            "pair_peer.py",
            "connect",
            listener.endpoint(),
            &["--report-handshake"],
        );
        let logs = accepts_nothing(&listener, scheme);
        // EVENT_HANDSHAKE_FAILED_PROTOCOL (0x2000) with
        // ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH (0x11000002): no connection.
        let outcome = py.line();
        assert_eq!(
            outcome,
            format!("HANDSHAKE_FAILED {} {}", 0x2000, 0x1100_0002),
            "{scheme:?}: the NULL client's handshake"
        );
        // libzmq hangs up on reading our greeting (mechanism CURVE, not NULL), possibly
        // before its own greeting names NULL: we log a failed handshake either way.
        assert!(
            logs.iter().any(|l| l.contains("handshake")),
            "{scheme:?}: no log of the failed handshake: {logs:?}"
        );
        drop(py);
        serve_honest_client(&listener, &client, server.public(), scheme);
        eprintln!("{scheme:?}: a pyzmq NULL client is refused ({outcome}), then an honest client served: ok");
    }
}

#[test]
fn a_pyzmq_server_refuses_our_key_not_on_its_allow_list() {
    for &scheme in curve_schemes() {
        let dir = TempDir::new(&format!("allow-{scheme:?}"));
        let (server, allowed) = server_and_client();
        allowed.save(dir.0.join("allowed")).unwrap();
        let allow_dir = dir.0.to_str().unwrap();
        let (mut py, ep, _socket_file) = PyPeer::bound_with(
            "pair_peer.py",
            "bind",
            scheme,
            &[
                "--curve-server",
                &secret_z85(&server),
                "--allow-dir",
                allow_dir,
            ],
        );
        let stranger = client_options(CurveKeyPair::generate(), &server);
        let err = Conn::connect_with(&ep, stranger).map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::Handshake { .. }), "{scheme:?}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("allow-list") && text.contains("400"),
            "{scheme:?}: {text}"
        );
        // The pyzmq server still serves the key it allows.
        let honest = client_options(allowed, &server);
        let mut conn = Conn::connect_with(&ep, honest).expect("the allowed key connects");
        exchange(&mut conn, &mut py);
        eprintln!("{scheme:?}: a pyzmq server refuses our stranger key ({text}): ok");
    }
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("shmsock-curve-certs-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a Python snippet with `args` (as `sys.argv[1:]`); returns its stdout lines.
fn python(script: &str, args: &[&Path]) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("running python3");
    assert_success(&out).lines().map(str::to_owned).collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn pyzmq_loads_the_certificates_we_write() {
    if !pyzmq_curve_available() {
        return;
    }
    let dir = TempDir::new("ours");
    let pair = CurveKeyPair::generate();
    let (public, secret) = pair.save(dir.0.join("node")).unwrap();
    assert_eq!(mode(&secret), 0o600, "the secret certificate is 0600");
    let lines = python(
        "import sys, zmq, zmq.auth\n\
         pub, sec = zmq.auth.load_certificate(sys.argv[1])\n\
         print(pub.decode()); print(sec.decode()); print(zmq.curve_public(sec).decode())\n\
         pub2, none = zmq.auth.load_certificate(sys.argv[2])\n\
         print(pub2.decode(), none)\n\
         print(' '.join(k.decode() for k in zmq.auth.load_certificates(sys.argv[3])))\n",
        &[&secret, &public, &dir.0],
    );
    assert_eq!(
        lines[0],
        pair.public().to_string(),
        "public key in the secret file"
    );
    let theirs: CurveSecretKey = lines[1].parse().unwrap();
    assert_eq!(theirs.as_bytes(), pair.secret().as_bytes(), "secret key");
    assert_eq!(
        lines[2],
        pair.public().to_string(),
        "libzmq derives our public key"
    );
    assert_eq!(
        lines[3],
        format!("{} None", pair.public()),
        "the public file"
    );
    assert_eq!(
        lines[4],
        pair.public().to_string(),
        "the allow-list directory"
    );
}

#[test]
fn we_load_the_certificates_pyzmq_writes() {
    if !pyzmq_curve_available() {
        return;
    }
    let dir = TempDir::new("theirs");
    let lines = python(
        "import sys, zmq.auth\n\
         pub_file, sec_file = zmq.auth.create_certificates(sys.argv[1], 'peer', metadata={'name': 'peer'})\n\
         pub, sec = zmq.auth.load_certificate(sec_file)\n\
         print(pub_file); print(sec_file); print(pub.decode()); print(sec.decode())\n",
        &[&dir.0],
    );
    let (public_file, secret_file) = (Path::new(&lines[0]), Path::new(&lines[1]));
    assert_eq!(public_file, dir.0.join("peer.key"));
    assert_eq!(secret_file, dir.0.join("peer.key_secret"));
    let their_public: CurvePublicKey = lines[2].parse().unwrap();
    let their_secret: CurveSecretKey = lines[3].parse().unwrap();
    assert_eq!(CurvePublicKey::load(public_file).unwrap(), their_public);
    assert_eq!(CurvePublicKey::load(secret_file).unwrap(), their_public);
    let pair = CurveKeyPair::load(secret_file).unwrap();
    assert_eq!(pair.public(), their_public);
    assert_eq!(pair.secret().as_bytes(), their_secret.as_bytes());
    // pyzmq's directory is an allow-list for us too.
    let ours = CurveKeyPair::generate();
    ours.save(dir.0.join("ours")).unwrap();
    let allowed = CurvePublicKey::load_dir(&dir.0).unwrap();
    assert_eq!(
        allowed,
        std::collections::HashSet::from([their_public, ours.public()])
    );
}
