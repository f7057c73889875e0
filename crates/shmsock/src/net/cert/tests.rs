//! Certificate files: what zcert and pyzmq write reads back, odd but valid ZPL reads, bad
//! keys are named with their line, and writing keeps secrets 0600 and never clobbers.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::net::curve::keys::tests::{CLIENT, SERVER};

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shmsock-cert-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A secret certificate as pyzmq's `create_certificates` writes it (with metadata).
fn pyzmq_secret(public: &str, secret: &str) -> String {
    format!(
        "#   ****  Generated on 2024-05-01 10:00:00.000000 by pyzmq  ****\n\
         #   ZeroMQ CURVE **Secret** Certificate\n\
         #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n\
         metadata\n    name = server\n    public-key = nonsense in metadata is ignored\n\
         curve\n    public-key = \"{public}\"\n    secret-key = \"{secret}\"\n"
    )
}

#[test]
fn what_zcert_and_pyzmq_write_loads() {
    let dir = TempDir::new("foreign");
    let secret = dir.write("server.key_secret", &pyzmq_secret(SERVER.1, SERVER.0));
    let pair = CurveKeyPair::load(&secret).unwrap();
    assert_eq!(pair.public().to_string(), SERVER.1);
    assert_eq!(CurvePublicKey::load(&secret).unwrap().to_string(), SERVER.1);
    let public = dir.write(
        "server.key",
        &format!(
            "#   ****  Generated on 2024-05-01 by CZMQ  ****\n#   ZeroMQ CURVE Public Certificate\n\n\
             metadata\ncurve\n    public-key = \"{}\"\n",
            SERVER.1
        ),
    );
    assert_eq!(CurvePublicKey::load(&public).unwrap().to_string(), SERVER.1);
    let err = CurveKeyPair::load(&public).unwrap_err().to_string();
    assert!(
        err.contains("server.key")
            && err.contains("has no secret-key")
            && err.contains("key_secret"),
        "{err}"
    );
}

#[test]
fn reading_tolerates_what_zpl_allows() {
    let dir = TempDir::new("zpl");
    let variants = [
        // Tabs, CRLF, single quotes, a trailing comment after a quoted value.
        format!(
            "# comment\r\n\r\ncurve\r\n\tpublic-key = '{}'  # the server\r\n\tsecret-key='{}'\r\n",
            SERVER.1, SERVER.0
        ),
        // Bare values, deeper indentation, comments between.
        format!(
            "metadata\ncurve\n        # keys follow\n        public-key =   {}   \n        secret-key = {} # s\n",
            SERVER.1, SERVER.0
        ),
        // No sections at all; only a secret key (the public one is derived).
        format!("secret-key = \"{}\"\n", SERVER.0),
    ];
    for (i, text) in variants.iter().enumerate() {
        let p = dir.write(&format!("v{i}.key_secret"), text);
        let pair = CurveKeyPair::load(&p).unwrap_or_else(|e| panic!("variant {i}: {e}"));
        assert_eq!(pair.public().to_string(), SERVER.1, "variant {i}");
        assert_eq!(CurvePublicKey::load(&p).unwrap().to_string(), SERVER.1);
    }
}

#[test]
fn bad_keys_are_errors_that_name_the_file_and_line() {
    let dir = TempDir::new("bad");
    let cases = [
        (
            format!("curve\n    public-key = \"{}\"\n", &SERVER.1[..39]),
            "line 2: public-key is not a CURVE key",
        ),
        (
            format!("curve\n    public-key = \"{}\n", SERVER.1),
            "line 2: the value's closing quote is missing",
        ),
        (
            format!(
                "curve\n    public-key = \"{}\"\n    public-key = \"{}\"\n",
                SERVER.1, CLIENT.1
            ),
            "line 3: a second public-key",
        ),
        (
            format!(
                "curve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
                CLIENT.1, SERVER.0
            ),
            "does not match its secret-key",
        ),
        ("# nothing here\nmetadata\n".to_owned(), "no `public-key"),
    ];
    for (text, expected) in cases {
        let p = dir.write("bad.key", &text);
        let err = CurvePublicKey::load(&p).unwrap_err().to_string();
        assert!(err.contains("bad.key") && err.contains(expected), "{err}");
    }
    // A bad secret key is named without being quoted.
    let mut secret = SERVER.0.to_owned();
    secret.replace_range(5..6, "~");
    let p = dir.write(
        "bad.key_secret",
        &format!("curve\n    secret-key = \"{secret}\"\n"),
    );
    let err = CurveKeyPair::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("line 2: secret-key is not a CURVE key"),
        "{err}"
    );
    assert!(!err.contains(&secret[..5]), "{err}");
    // Not text, too big, missing.
    std::fs::write(dir.0.join("bin.key"), [0xFF, 0xFE, 0x00]).unwrap();
    let err = CurvePublicKey::load(dir.0.join("bin.key"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not UTF-8"), "{err}");
    std::fs::write(dir.0.join("big.key"), vec![b'#'; 70_000]).unwrap();
    let err = CurvePublicKey::load(dir.0.join("big.key"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a certificate"), "{err}");
    let err = CurvePublicKey::load(dir.0.join("missing.key")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.key"), "{err}");
}

#[test]
fn saved_certificates_load_back_and_the_secret_one_is_0600() {
    let dir = TempDir::new("save");
    let pair = CurveKeyPair::generate();
    let (public, secret) = pair.save(dir.0.join("node")).unwrap();
    assert_eq!(public, dir.0.join("node.key"));
    assert_eq!(secret, dir.0.join("node.key_secret"));
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(mode(&public) & 0o600, 0o600);
    let text = std::fs::read_to_string(&public).unwrap();
    assert!(text.contains("ZeroMQ CURVE Public Certificate"), "{text}");
    assert!(
        text.contains(&format!("curve\n    public-key = \"{}\"\n", pair.public())),
        "{text}"
    );
    assert!(!text.contains("secret-key"), "{text}");
    assert_eq!(CurvePublicKey::load(&public).unwrap(), pair.public());
    let loaded = CurveKeyPair::load(&secret).unwrap();
    assert_eq!(loaded.public(), pair.public());
    assert_eq!(loaded.secret().as_bytes(), pair.secret().as_bytes());
}

#[test]
fn saving_never_overwrites_unless_asked() {
    let dir = TempDir::new("overwrite");
    let base = dir.0.join("node");
    let first = CurveKeyPair::generate();
    first.save(&base).unwrap();
    let second = CurveKeyPair::generate();
    let err = second.save(&base).unwrap_err().to_string();
    assert!(
        err.contains("node.key_secret") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(
        CurvePublicKey::load(dir.0.join("node.key")).unwrap(),
        first.public()
    );
    // Only the public file there: still nothing written (no orphan secret).
    std::fs::remove_file(dir.0.join("node.key_secret")).unwrap();
    let err = second.save(&base).unwrap_err().to_string();
    assert!(
        err.contains("node.key:") && err.contains("already exists"),
        "{err}"
    );
    assert!(!dir.0.join("node.key_secret").exists());
    // Replacing: the new pair, and a secret file made 0600 even where the old one was 0644.
    std::fs::write(dir.0.join("node.key_secret"), "old").unwrap();
    std::fs::set_permissions(
        dir.0.join("node.key_secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (public, secret) = second.save_replacing(&base).unwrap();
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(
        CurveKeyPair::load(&secret).unwrap().public(),
        second.public()
    );
    assert_eq!(CurvePublicKey::load(&public).unwrap(), second.public());
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn base_names_with_a_certificate_suffix_are_refused() {
    let dir = TempDir::new("suffix");
    let pair = CurveKeyPair::generate();
    for name in ["server.key", "server.key_secret"] {
        let err = pair.save(dir.0.join(name)).unwrap_err().to_string();
        assert!(err.contains("give the base name"), "{err}");
    }
    assert!(pair.save("/").is_err());
}

#[test]
fn a_directory_of_certificates_is_an_allow_list() {
    let dir = TempDir::new("dir");
    let (a, b) = (CurveKeyPair::generate(), CurveKeyPair::generate());
    a.save(dir.0.join("a")).unwrap();
    b.save(dir.0.join("b")).unwrap();
    // Hidden files, other suffixes and directories are not certificates of the list.
    dir.write(".hidden.key", "garbage");
    dir.write("notes.txt", "garbage");
    std::fs::create_dir(dir.0.join("sub.key")).unwrap();
    let keys = CurvePublicKey::load_dir(&dir.0).unwrap();
    assert_eq!(keys, HashSet::from([a.public(), b.public()]));
    // A broken certificate is named.
    dir.write("broken.key", "curve\n    public-key = \"short\"\n");
    let err = CurvePublicKey::load_dir(&dir.0).unwrap_err().to_string();
    assert!(
        err.contains("broken.key") && err.contains("line 2"),
        "{err}"
    );
    let err = CurvePublicKey::load_dir(dir.0.join("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("reading certificate directory"), "{err}");
    let empty = TempDir::new("empty");
    assert!(CurvePublicKey::load_dir(&empty.0).unwrap().is_empty());
}
