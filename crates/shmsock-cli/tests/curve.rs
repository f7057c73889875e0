//! Drives the real `shmsock` binary with CURVE (RFC 26 CurveZMQ): keys from `shmsock
//! keygen`, `recv`/`send` and `pub`/`sub` over tcp:// and unix:// with `--curve-secret`,
//! `--curve-server` and `--curve-allow`; a sender without CURVE and a client whose key is
//! not allowed are refused with messages that say why while the server goes on serving;
//! CURVE flags on shm://, on the wrong side or naming unusable files are refused with the
//! flag and the file named. Every child is killed on drop and every wait is bounded
//! (`--connect-timeout`, `--count`, [`process::CHILD_TIMEOUT`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use shmsock_testkit::assert_mentions;
use shmsock_testkit::process::{
    self, assert_fails_saying, assert_printed, LinePeer, LinesOf, Running,
};

/// A directory of one test (keys, allow-lists, unix sockets), removed at the end.
struct TestDir(PathBuf);

impl TestDir {
    fn new(test: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("shmsock-cli-curve-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    /// `shmsock` run in this directory (so key paths are relative, as a user types them).
    fn shmsock(&self) -> Command {
        let mut cmd = process::command(env!("CARGO_BIN_EXE_shmsock"), &self.0);
        cmd.current_dir(&self.0);
        cmd
    }

    /// Runs `shmsock ARGS` with no stdin and waits for it.
    fn run(&self, args: &[&str]) -> Output {
        self.shmsock()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running shmsock")
    }

    /// `echo LINE | shmsock send ENDPOINT --connect-timeout 10 EXTRA...`.
    fn send(&self, endpoint: &str, line: &str, extra: &[&str]) -> Output {
        let (child, mut stdin) = Running::spawn_with_stdin(
            self.shmsock()
                .args(["send", endpoint, "--connect-timeout", "10"])
                .args(extra),
        );
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        drop(stdin);
        child.output()
    }

    /// `shmsock keygen NAME` for each name, in this directory.
    fn keygen(&self, names: &[&str]) {
        for name in names {
            process::assert_success(&self.run(&["keygen", name]));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `shmsock recv tcp://127.0.0.1:0 --count 1 EXTRA...`, running (its stderr in lines), and
/// the endpoint it bound, which it prints.
fn spawn_recv(dir: &TestDir, extra: &[&str]) -> (LinePeer, String) {
    let mut cmd = dir.shmsock();
    cmd.args(["recv", "tcp://127.0.0.1:0", "--count", "1"])
        .args(extra);
    let mut recv = LinePeer::spawn(&mut cmd, LinesOf::Stderr);
    let line = recv.wait_for_line("shmsock recv: listening on tcp://127.0.0.1:");
    let endpoint = line.rsplit(' ').next().unwrap().to_owned();
    (recv, endpoint)
}

/// Waits for `recv` to exit, checks that it succeeded after printing exactly `expected`,
/// and returns its stderr.
#[track_caller]
fn finish_recv(recv: LinePeer, expected: &[u8]) -> String {
    let (status, stdout, stderr) = recv.finish();
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(expected),
        "{stderr}"
    );
    stderr
}

const SERVER: [&str; 4] = [
    "--curve-secret",
    "server.key_secret",
    "--curve-allow",
    "clients",
];
const ALICE: [&str; 4] = [
    "--curve-server",
    "server.key",
    "--curve-secret",
    "alice.key_secret",
];

/// Keys of a server and of clients alice and bob; only alice's public key is in `clients/`.
fn server_and_clients(test: &str) -> TestDir {
    let dir = TestDir::new(test);
    dir.keygen(&["server", "alice", "bob"]);
    std::fs::create_dir(dir.path("clients")).unwrap();
    std::fs::copy(dir.path("alice.key"), dir.path("clients/alice.key")).unwrap();
    dir
}

#[test]
fn send_to_a_curve_recv_delivers_and_a_sender_without_curve_is_refused() {
    let dir = server_and_clients("null");
    let (recv, endpoint) = spawn_recv(
        &dir,
        &[
            "--curve-secret",
            "server.key_secret",
            "--curve-allow",
            "clients/alice.key",
        ],
    );
    // No CURVE flags: the handshake fails, naming CURVE, the sender exits with 1 and says
    // which flags to add.
    let out = dir.send(&endpoint, "in the clear", &[]);
    assert_fails_saying(
        &out,
        &["shmsock send:", "handshake", "CURVE", "add --curve-server"],
    );
    // The receiver refused it, said so, and still serves the honest sender.
    assert_eq!(dir.send(&endpoint, "hello", &ALICE).status.code(), Some(0));
    assert_mentions(&finish_recv(recv, b"hello\n"), &["NULL", "CURVE"]);
}

#[test]
fn a_client_whose_key_is_not_allowed_is_told_so() {
    let dir = server_and_clients("stranger");
    let (recv, endpoint) = spawn_recv(&dir, &SERVER);
    let bob = [
        "--curve-server",
        "server.key",
        "--curve-secret",
        "bob.key_secret",
    ];
    let out = dir.send(&endpoint, "let me in", &bob);
    assert_fails_saying(&out, &["shmsock send:", "allow-list"]);
    // Without a key of its own a client is a stranger too (a fresh key per connection).
    let out = dir.send(&endpoint, "let me in", &["--curve-server", "server.key"]);
    assert_fails_saying(&out, &["allow-list"]);
    // The server key may also be given as its 40 Z85 characters.
    let server_key = shmsock::CurvePublicKey::load(dir.path("server.key"))
        .unwrap()
        .to_string();
    let alice = [
        "--curve-server",
        &server_key,
        "--curve-secret",
        "alice.key_secret",
    ];
    let out = dir.send(&endpoint, "alice", &alice);
    assert_eq!(out.status.code(), Some(0), "{}", process::stderr(&out));
    assert_mentions(&finish_recv(recv, b"alice\n"), &["not allowed"]);
}

#[test]
fn a_client_expecting_another_server_key_fails_the_handshake() {
    let dir = server_and_clients("impostor");
    let (recv, endpoint) = spawn_recv(&dir, &SERVER);
    // bob.key is not the server's key: the server cannot prove it holds bob's secret.
    let wrong = [
        "--curve-server",
        "bob.key",
        "--curve-secret",
        "alice.key_secret",
    ];
    let out = dir.send(&endpoint, "secret", &wrong);
    assert_fails_saying(&out, &["handshake", "CURVE"]);
    assert_eq!(dir.send(&endpoint, "ok", &ALICE).status.code(), Some(0));
    finish_recv(recv, b"ok\n");
}

/// `shmsock pub ENDPOINT` with CURVE and an allow-list (on tcp://127.0.0.1:0 it prints the
/// port it bound), `shmsock sub` with alice's key: the lines arrive.
fn pub_sub_over_curve_delivers(test: &str, endpoint: impl FnOnce(&Path) -> String) {
    let dir = server_and_clients(test);
    let mut endpoint = endpoint(&dir.0);
    let mut publisher = LinePeer::spawn(
        dir.shmsock()
            .args(["pub", &endpoint, "--wait-subscribers", "1"])
            .args(SERVER),
        LinesOf::Stderr,
    );
    if endpoint.ends_with(":0") {
        let line = publisher.wait_for_line("shmsock pub: listening on tcp://127.0.0.1:");
        endpoint = line.rsplit(' ').next().unwrap().to_owned();
    }
    let mut sub = dir.shmsock();
    sub.args(["sub", &endpoint, "--connect-timeout", "10", "--count", "2"])
        .args(ALICE);
    let sub = Running::new(process::spawn_piped(&mut sub));
    publisher.write(b"tick 1\ntick 2\n");
    assert_printed(&sub.output(), b"tick 1\ntick 2\n");
    let (status, _, stderr) = publisher.finish();
    assert!(status.success(), "{status:?}: {stderr}");
}

#[test]
fn pub_sub_over_curve_delivers_on_tcp() {
    pub_sub_over_curve_delivers("pubsub-tcp", |_| "tcp://127.0.0.1:0".into());
}

#[test]
fn pub_sub_over_curve_delivers_on_unix() {
    pub_sub_over_curve_delivers("pubsub-unix", |dir| {
        format!("unix://{}", dir.join("ticks.sock").display())
    });
}

#[test]
fn curve_flags_on_shm_are_refused() {
    let dir = TestDir::new("shm");
    dir.keygen(&["server"]);
    let secret = ["--curve-secret", "server.key_secret"];
    for cmd in ["recv", "pub"] {
        let out = dir.run(&[&[cmd, "shm://cli-curve-shm"][..], &secret].concat());
        assert_fails_saying(&out, &["--curve-secret", "shm://", "tcp://", "uid"]);
    }
    for cmd in ["send", "sub"] {
        let out = dir.run(&[cmd, "shm://cli-curve-shm", "--curve-server", "server.key"]);
        assert_fails_saying(&out, &["--curve-server", "shm://", "tcp://", "uid"]);
    }
    let out = dir.run(&[
        "bridge",
        "tcp://127.0.0.1:9",
        "shm://cli-curve-shm",
        "--dest-curve-secret",
        "server.key_secret",
    ]);
    assert_fails_saying(&out, &["--dest-curve-secret", "shm://", "uid"]);
}

#[test]
fn unusable_curve_flags_name_the_flag_and_the_file() {
    let dir = server_and_clients("files");
    let ep = "tcp://127.0.0.1:0";
    // A public certificate where the secret one is needed.
    let out = dir.run(&["recv", ep, "--curve-secret", "server.key"]);
    assert_fails_saying(&out, &["--curve-secret", "server.key", "secret-key"]);
    // A missing file.
    let out = dir.run(&["recv", ep, "--curve-secret", "nope.key_secret"]);
    assert_fails_saying(&out, &["--curve-secret", "nope.key_secret"]);
    // An allow-list without the server's own key pair, and an empty allow-list directory.
    let out = dir.run(&["pub", ep, "--curve-allow", "clients"]);
    assert_fails_saying(&out, &["--curve-allow", "needs --curve-secret"]);
    std::fs::create_dir(dir.path("empty")).unwrap();
    let out = dir.run(&[
        "recv",
        ep,
        "--curve-secret",
        "server.key_secret",
        "--curve-allow",
        "empty",
    ]);
    assert_fails_saying(&out, &["--curve-allow", "empty", "no *.key"]);
    // A server key that is neither a file nor 40 Z85 characters, or a bad 40 characters.
    let out = dir.run(&["send", "tcp://127.0.0.1:9", "--curve-server", "nope"]);
    assert_fails_saying(&out, &["--curve-server", "nope", "40 Z85"]);
    let bad = "~".repeat(40);
    let out = dir.run(&["sub", "tcp://127.0.0.1:9", "--curve-server", &bad]);
    assert_fails_saying(&out, &["--curve-server", "invalid CURVE public key"]);
    // Flags of the other side.
    let out = dir.run(&["send", "tcp://127.0.0.1:9", "--curve-allow", "clients"]);
    assert_fails_saying(&out, &["--curve-allow", "--curve-server"]);
    let out = dir.run(&["recv", ep, "--curve-server", "server.key"]);
    assert_fails_saying(&out, &["--curve-server", "--curve-secret"]);
    let out = dir.run(&[
        "sub",
        "tcp://127.0.0.1:9",
        "--curve-secret",
        "alice.key_secret",
    ]);
    assert_fails_saying(&out, &["--curve-secret", "needs --curve-server"]);
    let out = dir.run(&[
        "bridge",
        "tcp://127.0.0.1:9",
        "tcp://127.0.0.1:0",
        "--source-curve-secret",
        "alice.key_secret",
    ]);
    assert_fails_saying(&out, &["--source-curve-secret", "--source-curve-server"]);
}

#[test]
fn endpoint_commands_document_their_curve_flags() {
    let dir = TestDir::new("help");
    for cmd in ["send", "recv", "pub", "sub"] {
        let text = process::assert_success(&dir.run(&[cmd, "--help"]));
        assert_mentions(
            &text,
            &["--curve-secret", "--curve-server", "--curve-allow", "CURVE"],
        );
    }
    let text = process::assert_success(&dir.run(&["bridge", "--help"]));
    assert_mentions(
        &text,
        &[
            "--source-curve-server",
            "--source-curve-secret",
            "--dest-curve-secret",
            "--dest-curve-allow",
        ],
    );
    // Examples that expose a service use CURVE; the others bind 127.0.0.1.
    for cmd in [&["--help"][..], &["recv", "--help"], &["pub", "--help"]] {
        let text = process::assert_success(&dir.run(cmd));
        for line in text.lines().filter(|l| l.contains("0.0.0.0")) {
            assert!(line.contains("--curve-secret"), "{cmd:?}: {line}");
        }
    }
}

/// A Z85 key may begin with `-` (the alphabet has it): it is taken as the flag's value, not
/// as another flag (random keys made this fail about once in 85 runs).
#[test]
fn a_server_key_starting_with_a_dash_is_a_value_not_a_flag() {
    // Too short to be a key: refused as one (so nothing connects), not as a flag.
    let dir = server_and_clients("dash");
    let out = dir.send("tcp://127.0.0.1:1", "x", &["--curve-server", "-abc"]);
    let stderr = process::stderr(&out);
    assert!(
        !stderr.contains("unexpected argument") && stderr.contains("-abc"),
        "the key was parsed as a flag, or not named: {stderr}"
    );
}
