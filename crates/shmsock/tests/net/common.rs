//! Helpers shared by the tests: unique endpoints, deterministic payloads, a peer thread.

use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use shmsock::{Conn, Error, Listener};

/// Longest any single blocking step of a test may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Message sizes every exchange covers: empty, short/long frame boundary, 64 KiB, 1 MiB.
pub const SIZES: [usize; 7] = [0, 1, 255, 256, 65_536, 1 << 20, 3 << 20];

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The schemes under test.
#[derive(Debug, Clone, Copy)]
pub enum Scheme {
    Tcp,
    Unix,
}

pub const SCHEMES: [Scheme; 2] = [Scheme::Tcp, Scheme::Unix];

/// A fresh endpoint to bind: an ephemeral loopback port, or a unique socket path.
pub fn bind_endpoint(scheme: Scheme) -> String {
    match scheme {
        Scheme::Tcp => "tcp://127.0.0.1:0".into(),
        Scheme::Unix => format!("unix://{}", unique_path().display()),
    }
}

/// A unique socket path in the temp directory (removed if it exists).
pub fn unique_path() -> std::path::PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("shmsock-net-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// An endpoint for another process (a pyzmq peer) to bind: an ephemeral loopback port, or a
/// unique socket path, which the returned guard removes (libzmq leaves its socket file
/// behind when its process ends).
pub fn foreign_bind_endpoint(scheme: Scheme) -> (String, RemoveOnDrop) {
    match scheme {
        Scheme::Tcp => ("tcp://127.0.0.1:*".to_owned(), RemoveOnDrop(None)),
        Scheme::Unix => {
            let path = unique_path();
            (
                format!("unix://{}", path.display()),
                RemoveOnDrop(Some(path)),
            )
        }
    }
}

/// Removes a file, if any, when dropped.
pub struct RemoveOnDrop(Option<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Message `k` of `n` bytes: byte `j` is `(k + j) % 251` (the pyzmq peer builds the same).
pub fn payload(k: usize, n: usize) -> Vec<u8> {
    (0..n).map(|j| ((k + j) % 251) as u8).collect()
}

/// Checks that a send was refused as too large: `len` bytes over a limit of `max`.
pub fn assert_too_large(sent: shmsock::Result<()>, len: usize, max: usize) {
    match sent {
        Err(Error::TooLarge { len: l, max: m }) if (l, m) == (len, max) => {}
        other => panic!("expected TooLarge {{ len: {len}, max: {max} }}, got {other:?}"),
    }
}

/// Binds `scheme` and connects a client thread running `client` on its `Conn`.
pub fn pair<T: Send + 'static>(
    scheme: Scheme,
    client: impl FnOnce(Conn) -> T + Send + 'static,
) -> (Listener, Conn, JoinHandle<T>) {
    let listener = Listener::bind(&bind_endpoint(scheme)).expect("binding");
    let ep = listener.endpoint().to_owned();
    let t = std::thread::spawn(move || client(Conn::connect(&ep).expect("connecting")));
    let conn = listener.accept_timeout(STEP_TIMEOUT).expect("accepting");
    (listener, conn, t)
}

/// Runs `f` with a `tracing` subscriber on this thread that records every event as one
/// line (`LEVEL message field=value...`); returns `f`'s result and those lines.
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    struct Lines(Arc<Mutex<Vec<String>>>);
    struct Line(String);
    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0 += &format!(" {}={value:?}", field.name());
        }
    }
    impl Subscriber for Lines {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(event.metadata().level().to_string());
            event.record(&mut line);
            self.0.lock().unwrap().push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
    let lines = Arc::new(Mutex::new(Vec::new()));
    let r = tracing::subscriber::with_default(Lines(lines.clone()), f);
    let lines = lines.lock().unwrap().clone();
    (r, lines)
}
