//! Helpers shared by the tests: unique endpoints, deterministic payloads, a peer thread,
//! and ZMTP 3.x (RFC 23, ZMTP 3.1 RFC 37) spoken by hand for raw-socket peers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

/// A ZMTP 3.`minor` greeting for the NULL mechanism, as server 0: signature
/// `FF 00*8 7F`, version `03 minor`, mechanism `"NULL"` padded to 20 bytes, as-server 0,
/// 31 bytes of filler.
pub fn greeting(minor: u8) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = minor;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// One frame (`flags`: 0 message, 1 more parts follow, 4 command): a short frame for a body
/// under 256 bytes, else a long one (flag 2, 8-byte big-endian length).
pub fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = match u8::try_from(body.len()) {
        Ok(len) => vec![flags, len],
        Err(_) => [&[flags | 2][..], &(body.len() as u64).to_be_bytes()].concat(),
    };
    f.extend_from_slice(body);
    f
}

/// A command frame: name length, name, data.
pub fn command(name: &str, data: &[u8]) -> Vec<u8> {
    frame(
        4,
        &[&[name.len() as u8][..], name.as_bytes(), data].concat(),
    )
}

/// READY with Socket-Type `ty` (the only property a NULL peer must send).
pub fn ready(ty: &str) -> Vec<u8> {
    let data = [
        &[11u8][..],
        b"Socket-Type",
        &(ty.len() as u32).to_be_bytes(),
        ty.as_bytes(),
    ]
    .concat();
    command("READY", &data)
}

/// A raw peer: a TCP stream that writes ZMTP by hand and reads ZMTP frames.
pub struct Raw(pub TcpStream);

impl Raw {
    /// Connects to `endpoint` and does the handshake as a `ty` socket speaking ZMTP 3.`minor`.
    pub fn connect(endpoint: &str, ty: &str, minor: u8) -> Raw {
        let s = TcpStream::connect(endpoint.trim_start_matches("tcp://"))
            .unwrap_or_else(|e| panic!("connecting a raw {ty} peer to {endpoint}: {e}"));
        let mut raw = Raw(s);
        raw.handshake(ty, minor);
        raw
    }

    /// A hand-made ZMTP 3.`minor` publisher: `serve` runs on another thread once a
    /// subscriber connected and the handshake is done. Returns the endpoint to connect to
    /// and the thread, which hands the raw peer back.
    pub fn publisher(
        minor: u8,
        serve: impl FnOnce(&mut Raw) + Send + 'static,
    ) -> (String, JoinHandle<Raw>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = format!("tcp://{}", l.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut raw = Raw(s);
            raw.handshake("PUB", minor);
            serve(&mut raw);
            raw
        });
        (ep, t)
    }

    /// [`Raw::publisher`] whose READY also carries `properties` (name, value).
    pub fn publisher_with_ready(
        properties: &[(&str, &[u8])],
        serve: impl FnOnce(&mut Raw) + Send + 'static,
    ) -> (String, JoinHandle<Raw>) {
        let mut data = [&[11u8][..], b"Socket-Type", &3u32.to_be_bytes(), b"PUB"].concat();
        for (name, value) in properties {
            data.push(name.len() as u8);
            data.extend_from_slice(name.as_bytes());
            data.extend_from_slice(&(value.len() as u32).to_be_bytes());
            data.extend_from_slice(value);
        }
        let ready = command("READY", &data);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = format!("tcp://{}", l.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut raw = Raw(s);
            raw.handshake_with(&ready, 1);
            serve(&mut raw);
            raw
        });
        (ep, t)
    }

    /// Sends our greeting and READY, then reads the peer's (within [`STEP_TIMEOUT`]).
    pub fn handshake(&mut self, ty: &str, minor: u8) {
        self.handshake_with(&ready(ty), minor);
    }

    /// [`Raw::handshake`] with this READY frame.
    pub fn handshake_with(&mut self, ready: &[u8], minor: u8) {
        self.0.set_read_timeout(Some(STEP_TIMEOUT)).unwrap();
        self.0.write_all(&greeting(minor)).unwrap();
        self.0.write_all(ready).unwrap();
        let mut g = [0u8; 64];
        self.0.read_exact(&mut g).unwrap();
        assert_eq!(g[0], 0xFF);
        let (flags, body) = self.frame();
        assert_eq!(flags, 4, "READY is a command");
        assert!(body.starts_with(b"\x05READY"));
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    /// Reads one frame: (flags, body).
    pub fn frame(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        self.0.read_exact(&mut head).unwrap();
        let len = if head[0] & 2 != 0 {
            let mut rest = [0u8; 7];
            self.0.read_exact(&mut rest).unwrap();
            u64::from_be_bytes([&[head[1]][..], &rest].concat().try_into().unwrap()) as usize
        } else {
            usize::from(head[1])
        };
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).unwrap();
        (head[0], body)
    }

    /// Reads the next message (single-frame, as our publisher sends them).
    pub fn message(&mut self) -> Vec<u8> {
        let (flags, body) = self.frame();
        assert_eq!(flags & !2, 0, "a single-frame message");
        body
    }
}
