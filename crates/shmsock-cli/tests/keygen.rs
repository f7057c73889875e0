//! Drives the real `shmsock keygen`: the files it writes, their modes, that it never
//! overwrites without `--force`, and that pyzmq reads what it writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shmsock::{CurveKeyPair, CurvePublicKey};
use shmsock_testkit::assert_mentions;
use shmsock_testkit::process::{self, assert_fails_saying, assert_success};

/// A directory of one test, removed at the end.
struct TestDir(PathBuf);

impl TestDir {
    fn new(test: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("shmsock-cli-keygen-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keygen(dir: &Path, args: &[&str]) -> Output {
    process::command(env!("CARGO_BIN_EXE_shmsock"), dir)
        .current_dir(dir)
        .arg("keygen")
        .args(args)
        .output()
        .expect("running shmsock keygen")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The public key `shmsock keygen` printed.
fn printed_key(stdout: &str) -> CurvePublicKey {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key:"))
        .unwrap_or_else(|| panic!("no public key line in {stdout:?}"));
    line.trim().parse().unwrap()
}

#[test]
fn keygen_writes_a_pair_of_certificates_and_prints_where() {
    let dir = TestDir::new("writes");
    let out = assert_success(&keygen(&dir.0, &["server"]));
    assert_mentions(&out, &["server.key ", "server.key_secret", "0600"]);
    let key = printed_key(&out);
    let (public, secret) = (dir.0.join("server.key"), dir.0.join("server.key_secret"));
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(CurvePublicKey::load(&public).unwrap(), key);
    assert_eq!(CurveKeyPair::load(&secret).unwrap().public(), key);
    // A path with directories works the same.
    std::fs::create_dir(dir.0.join("keys")).unwrap();
    let out = assert_success(&keygen(&dir.0, &["keys/alice"]));
    assert_eq!(
        CurvePublicKey::load(dir.0.join("keys/alice.key")).unwrap(),
        printed_key(&out)
    );
}

#[test]
fn keygen_never_overwrites_without_force() {
    let dir = TestDir::new("force");
    let first = printed_key(&assert_success(&keygen(&dir.0, &["node"])));
    let out = keygen(&dir.0, &["node"]);
    assert_fails_saying(&out, &["node.key_secret", "already exists", "--force"]);
    assert_eq!(CurvePublicKey::load(dir.0.join("node.key")).unwrap(), first);
    let second = printed_key(&assert_success(&keygen(&dir.0, &["node", "--force"])));
    assert_ne!(first, second);
    assert_eq!(
        CurveKeyPair::load(dir.0.join("node.key_secret"))
            .unwrap()
            .public(),
        second
    );
    assert_eq!(mode(&dir.0.join("node.key_secret")), 0o600);
    // A name with a certificate suffix is refused: it would make node.key.key.
    let out = keygen(&dir.0, &["other.key"]);
    assert_fails_saying(&out, &["give the base name"]);
}

#[test]
fn pyzmq_reads_the_certificates_keygen_writes() {
    if !process::pyzmq_available() {
        return;
    }
    let dir = TestDir::new("pyzmq");
    let key = printed_key(&assert_success(&keygen(&dir.0, &["server"])));
    let script = "import sys, zmq, zmq.auth\n\
                  pub, sec = zmq.auth.load_certificate(sys.argv[1] + '.key_secret')\n\
                  assert zmq.curve_public(sec) == pub, 'pair does not match'\n\
                  pub2, none = zmq.auth.load_certificate(sys.argv[1] + '.key')\n\
                  assert pub2 == pub and none is None\n\
                  print(pub.decode())\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.0.join("server"))
        .output()
        .unwrap();
    assert_eq!(assert_success(&out).trim(), key.to_string());
}

#[test]
fn keygen_has_help_with_examples() {
    let dir = TestDir::new("help");
    let out = assert_success(&keygen(&dir.0, &["--help"]));
    assert_mentions(&out, &["NAME.key_secret", "--force", "Examples:"]);
}
