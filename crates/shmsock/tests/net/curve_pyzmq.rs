//! CURVE keys and certificate files between shmsock and pyzmq (`zmq.auth`, whose format is
//! czmq's zcert): what we write pyzmq loads, what pyzmq writes we load, and the keys are
//! the same bytes both ways. (The CURVE handshake itself is checked against pyzmq in the
//! library's unit tests, `src/net/curve/pyzmq_tests.rs`, where its state machines are
//! reachable.) Without python3, pyzmq or its CURVE support the tests print why they are
//! skipped and pass, except under `CI=true`, where they fail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use shmsock::{CurveKeyPair, CurvePublicKey, CurveSecretKey};
use shmsock_testkit::process::{self, assert_success};

/// Whether python3 has pyzmq with CURVE (`zmq.curve_keypair` needs it).
fn pyzmq_curve_available() -> bool {
    if !process::pyzmq_available() {
        return false;
    }
    let ok = Command::new("python3")
        .args([
            "-c",
            "import sys, zmq; sys.exit(0 if zmq.has('curve') else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but pyzmq has no CURVE support (its libzmq was built without libsodium)"
        );
        println!("skipped: pyzmq has no CURVE support");
    }
    ok
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
