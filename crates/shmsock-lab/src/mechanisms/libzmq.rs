//! libzmq, loaded at run time: the reference the `network` experiment measures shmsock's
//! `tcp://` and `unix://` transports against, in the same run, natively (no Python in the
//! measured loop).
//!
//! The lab has no build-time dependency on libzmq: `cargo build` and `cargo test` work on a
//! machine without it. [`Libzmq::load`] opens the shared library with `dlopen` once per process
//! (`libzmq.so.5`, or the file or name in `SHMSOCK_LAB_LIBZMQ`) and looks up the functions the
//! lab calls; when it is missing the error says which package to install (Debian/Ubuntu
//! `libzmq5`, or `libzmq3-dev`, which brings it).
//!
//! The safe wrapper is small: a [`Socket`] owns one libzmq socket *and a context of its own*
//! (each process of an experiment has one socket, and a context per socket makes the drop
//! order right by construction: `zmq_close`, then `zmq_ctx_term`). Sockets are created with
//! `ZMQ_LINGER` 0, so dropping one never waits for unsent messages (the experiments end with
//! an acknowledged stop message, so nothing is pending by then). Errors become
//! [`LabError::Libzmq`] with libzmq's own text, or [`LabError::Stalled`] when a send or
//! receive timeout (`ZMQ_SNDTIMEO`/`ZMQ_RCVTIMEO`) ran out.
//!
//! Call [`Libzmq::load`] before forking: the child then inherits the loaded library and never
//! calls `dlopen` (which takes the loader's lock) itself. A context starts libzmq's I/O
//! thread, so a process must drop its sockets before it forks again.
//!
//! # Safety
//!
//! Every function pointer is looked up by its exported name and called through the prototype
//! `zmq.h` declares for it (libzmq 4.x, whose ABI is `libzmq.so.5`). Sockets and contexts are
//! raw pointers that this module alone holds: created non-null, used only while their
//! [`Socket`] lives, closed exactly once in its `Drop`. Buffers passed to libzmq are live Rust
//! slices with their true lengths; strings are `CString`s that outlive the call.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::LabError;

/// The shared library loaded when `SHMSOCK_LAB_LIBZMQ` is not set: libzmq's ABI 5 (libzmq
/// 4.x), the soname every distribution ships.
pub const DEFAULT_LIBRARY: &str = "libzmq.so.5";

/// The environment variable that names another libzmq to load (a path or a soname).
pub const LIBRARY_ENV: &str = "SHMSOCK_LAB_LIBZMQ";

/// What to install when libzmq cannot be loaded.
pub const INSTALL_HINT: &str =
    "install libzmq (Debian/Ubuntu: apt-get install libzmq5, or libzmq3-dev; Fedora: zeromq)";

/// `ETERM`: the context was terminated (`ZMQ_HAUSNUMERO + 53`).
const ETERM: c_int = 156_384_712 + 53;

type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int, *mut c_int);
type ErrnoFn = unsafe extern "C" fn() -> c_int;
type StrerrorFn = unsafe extern "C" fn(c_int) -> *const c_char;
type HasFn = unsafe extern "C" fn(*const c_char) -> c_int;
type CtxNewFn = unsafe extern "C" fn() -> *mut c_void;
type CtxTermFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type SocketFn = unsafe extern "C" fn(*mut c_void, c_int) -> *mut c_void;
type CloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type SetsockoptFn = unsafe extern "C" fn(*mut c_void, c_int, *const c_void, usize) -> c_int;
type GetsockoptFn = unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, *mut usize) -> c_int;
type AddrFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type SendFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;
type RecvFn = unsafe extern "C" fn(*mut c_void, *mut c_void, usize, c_int) -> c_int;
type KeypairFn = unsafe extern "C" fn(*mut c_char, *mut c_char) -> c_int;

/// The loaded library: the functions the lab calls, and its version.
#[derive(Debug)]
pub struct Libzmq {
    errno: ErrnoFn,
    strerror: StrerrorFn,
    has: Option<HasFn>,
    ctx_new: CtxNewFn,
    ctx_term: CtxTermFn,
    socket: SocketFn,
    close: CloseFn,
    setsockopt: SetsockoptFn,
    getsockopt: GetsockoptFn,
    bind: AddrFn,
    connect: AddrFn,
    send: SendFn,
    recv: RecvFn,
    curve_keypair: Option<KeypairFn>,
    version: (i32, i32, i32),
    /// What was loaded: the name given to `dlopen`.
    library: String,
}

/// The socket types the experiments use (`zmq.h` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// `ZMQ_PAIR`: one peer, both ways.
    Pair = 0,
    /// `ZMQ_PUB`: sends to every subscriber.
    Pub = 1,
    /// `ZMQ_SUB`: receives what it subscribed to.
    Sub = 2,
}

/// Integer socket options (`zmq.h` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntOption {
    /// `ZMQ_LINGER`, ms.
    Linger = 17,
    /// `ZMQ_SNDHWM`, messages (0: no limit).
    SndHwm = 23,
    /// `ZMQ_RCVHWM`, messages (0: no limit).
    RcvHwm = 24,
    /// `ZMQ_RCVTIMEO`, ms (-1: forever).
    RcvTimeo = 27,
    /// `ZMQ_SNDTIMEO`, ms (-1: forever).
    SndTimeo = 28,
    /// `ZMQ_CURVE_SERVER`: 1 makes this socket the CURVE server.
    CurveServer = 47,
    /// `ZMQ_XPUB_NODROP`: 1 makes a PUB socket wait at its high-water mark instead of
    /// dropping.
    XpubNodrop = 69,
}

/// Byte-string socket options (`zmq.h` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BytesOption {
    /// `ZMQ_SUBSCRIBE`: a topic prefix.
    Subscribe = 6,
    /// `ZMQ_CURVE_PUBLICKEY`: this socket's long-term public key (Z85, 40 characters).
    CurvePublicKey = 48,
    /// `ZMQ_CURVE_SECRETKEY`: this socket's long-term secret key (Z85).
    CurveSecretKey = 49,
    /// `ZMQ_CURVE_SERVERKEY`: the server's public key, on a client (Z85).
    CurveServerKey = 50,
}

/// `ZMQ_LAST_ENDPOINT`: the endpoint a socket bound last, with the port a wildcard chose.
const LAST_ENDPOINT: c_int = 32;

/// A CURVE long-term key pair, both halves in Z85 text (40 characters), as
/// `zmq_curve_keypair` makes them and the `ZMQ_CURVE_*KEY` options take them (RFC 26
/// CurveZMQ; RFC 32 Z85).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveKeyPair {
    /// The public key.
    pub public: String,
    /// The secret key.
    pub secret: String,
}

/// The library this process loaded (or why it could not), loaded on first use.
static LOADED: OnceLock<Result<Libzmq, String>> = OnceLock::new();

impl Libzmq {
    /// The libzmq of this process: loads it on the first call (from `SHMSOCK_LAB_LIBZMQ`, else
    /// [`DEFAULT_LIBRARY`]) and returns the same answer afterwards. The error says what
    /// failed and what to install.
    pub fn load() -> Result<&'static Libzmq, String> {
        LOADED
            .get_or_init(|| {
                let name =
                    std::env::var(LIBRARY_ENV).unwrap_or_else(|_| DEFAULT_LIBRARY.to_string());
                Libzmq::open(&name)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads the library `name` (a path or a soname) and looks up its functions; not cached.
    pub(crate) fn open(name: &str) -> Result<Libzmq, String> {
        let missing = |why: String| format!("libzmq not available ({why}); {INSTALL_HINT}");
        let c_name = CString::new(name).map_err(|_| missing(format!("bad name {name:?}")))?;
        // SAFETY: `c_name` is a NUL-terminated string that outlives the call; loading libzmq
        // runs its (and libstdc++'s) initialisers, which only set up static state.
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(missing(format!("dlopen: {}", dlerror())));
        }
        let symbol = |symbol: &CStr| -> Result<*mut c_void, String> {
            // SAFETY: `handle` is a live handle from `dlopen` (never closed: the library stays
            // loaded for the life of the process) and `symbol` is NUL-terminated.
            let ptr = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
            if ptr.is_null() {
                Err(missing(format!(
                    "{name} has no {}: not libzmq 4.x",
                    symbol.to_string_lossy()
                )))
            } else {
                Ok(ptr)
            }
        };
        macro_rules! function {
            ($name:literal as $ty:ty) => {{
                let ptr = symbol($name)?;
                // SAFETY: `ptr` is the address of the exported function `$name`, and `$ty` is
                // the prototype zmq.h declares for it (see the type aliases above).
                unsafe { std::mem::transmute::<*mut c_void, $ty>(ptr) }
            }};
        }
        let version_fn = function!(c"zmq_version" as VersionFn);
        let (mut major, mut minor, mut patch) = (0, 0, 0);
        // SAFETY: `zmq_version` writes one int through each of three valid pointers.
        unsafe { version_fn(&mut major, &mut minor, &mut patch) };
        if major < 4 {
            return Err(missing(format!(
                "{name} is libzmq {major}.{minor}.{patch}; the lab needs 4.x"
            )));
        }
        let optional = |symbol: &CStr| {
            // SAFETY: as in `symbol` above; a null result just means "absent".
            let ptr = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
            (!ptr.is_null()).then_some(ptr)
        };
        Ok(Libzmq {
            errno: function!(c"zmq_errno" as ErrnoFn),
            strerror: function!(c"zmq_strerror" as StrerrorFn),
            has: optional(c"zmq_has").map(|ptr| {
                // SAFETY: the address of the exported `zmq_has`, declared as `HasFn`.
                unsafe { std::mem::transmute::<*mut c_void, HasFn>(ptr) }
            }),
            ctx_new: function!(c"zmq_ctx_new" as CtxNewFn),
            ctx_term: function!(c"zmq_ctx_term" as CtxTermFn),
            socket: function!(c"zmq_socket" as SocketFn),
            close: function!(c"zmq_close" as CloseFn),
            setsockopt: function!(c"zmq_setsockopt" as SetsockoptFn),
            getsockopt: function!(c"zmq_getsockopt" as GetsockoptFn),
            bind: function!(c"zmq_bind" as AddrFn),
            connect: function!(c"zmq_connect" as AddrFn),
            send: function!(c"zmq_send" as SendFn),
            recv: function!(c"zmq_recv" as RecvFn),
            curve_keypair: optional(c"zmq_curve_keypair").map(|ptr| {
                // SAFETY: the address of the exported `zmq_curve_keypair`, declared as
                // `KeypairFn`.
                unsafe { std::mem::transmute::<*mut c_void, KeypairFn>(ptr) }
            }),
            version: (major, minor, patch),
            library: name.to_string(),
        })
    }

    /// The library's version, `4.3.4`.
    pub fn version(&self) -> String {
        let (major, minor, patch) = self.version;
        format!("{major}.{minor}.{patch}")
    }

    /// What was loaded (the name given to `dlopen`).
    pub fn library(&self) -> &str {
        &self.library
    }

    /// Whether this build of libzmq has CURVE security (`zmq_has("curve")`: built with
    /// libsodium or its bundled TweetNaCl).
    pub fn has_curve(&self) -> bool {
        match (self.has, self.curve_keypair) {
            (Some(has), Some(_)) => {
                // SAFETY: `zmq_has` reads the NUL-terminated capability name and nothing else.
                let has_curve = unsafe { has(c"curve".as_ptr()) };
                has_curve == 1
            }
            _ => false,
        }
    }

    /// A new CURVE key pair (`zmq_curve_keypair`).
    pub fn curve_keypair(&self) -> Result<CurveKeyPair, LabError> {
        let keypair = self.curve_keypair.ok_or_else(|| LabError::Libzmq {
            what: "zmq_curve_keypair",
            detail: format!("{} was built without CURVE", self.library),
        })?;
        let mut public = [0u8; 41];
        let mut secret = [0u8; 41];
        // SAFETY: `zmq_curve_keypair` writes 40 Z85 characters and a NUL into each buffer;
        // both have 41 bytes.
        let rc = unsafe { keypair(public.as_mut_ptr().cast(), secret.as_mut_ptr().cast()) };
        if rc != 0 {
            return Err(self.error("zmq_curve_keypair"));
        }
        let text = |key: &[u8; 41]| String::from_utf8_lossy(&key[..40]).into_owned();
        Ok(CurveKeyPair {
            public: text(&public),
            secret: text(&secret),
        })
    }

    /// libzmq's last error of this thread, as [`LabError::Libzmq`] of `what`.
    fn error(&self, what: &'static str) -> LabError {
        let code = self.last_errno();
        LabError::Libzmq {
            what,
            detail: self.describe(code),
        }
    }

    fn last_errno(&self) -> c_int {
        // SAFETY: `zmq_errno` takes nothing and returns this thread's errno.
        unsafe { (self.errno)() }
    }

    /// libzmq's text for error `code`.
    fn describe(&self, code: c_int) -> String {
        // SAFETY: `zmq_strerror` returns a pointer to a static NUL-terminated string (or null,
        // checked) for any code.
        let text = unsafe { (self.strerror)(code) };
        if text.is_null() {
            return format!("error {code}");
        }
        // SAFETY: non-null, NUL-terminated and static, as above.
        let text = unsafe { CStr::from_ptr(text) };
        format!("{} (errno {code})", text.to_string_lossy())
    }

    /// A new socket of `kind` in a new context of its own, with `ZMQ_LINGER` 0.
    pub(crate) fn socket(&'static self, kind: SocketKind) -> Result<Socket, LabError> {
        // SAFETY: `zmq_ctx_new` takes nothing; the result is checked for null.
        let ctx = unsafe { (self.ctx_new)() };
        if ctx.is_null() {
            return Err(self.error("zmq_ctx_new"));
        }
        // SAFETY: `ctx` is the live context just created; the result is checked for null.
        let raw = unsafe { (self.socket)(ctx, kind as c_int) };
        if raw.is_null() {
            let err = self.error("zmq_socket");
            // SAFETY: `ctx` is live and has no socket; it is not used again.
            unsafe { (self.ctx_term)(ctx) };
            return Err(err);
        }
        let socket = Socket {
            lib: self,
            ctx,
            raw,
        };
        socket.set_int(IntOption::Linger, 0)?;
        Ok(socket)
    }
}

/// `dlerror`'s text for the last failed `dlopen`/`dlsym` of this thread.
fn dlerror() -> String {
    // SAFETY: `dlerror` returns null or a NUL-terminated string valid until the next dl call
    // of this thread; it is copied at once.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        return "unknown error".into();
    }
    // SAFETY: non-null and NUL-terminated, as above.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// One libzmq socket and the context it alone lives in. Dropping it closes the socket, then
/// terminates the context (joining libzmq's I/O thread).
#[derive(Debug)]
pub(crate) struct Socket {
    lib: &'static Libzmq,
    ctx: *mut c_void,
    raw: *mut c_void,
}

impl Socket {
    /// Sets an integer option.
    pub(crate) fn set_int(&self, option: IntOption, value: i32) -> Result<(), LabError> {
        let value: c_int = value;
        // SAFETY: `raw` is a live socket; libzmq reads `size_of::<c_int>()` bytes of `value`.
        let rc = unsafe {
            (self.lib.setsockopt)(
                self.raw,
                option as c_int,
                (&value as *const c_int).cast(),
                std::mem::size_of::<c_int>(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(self.lib.error("zmq_setsockopt"))
        }
    }

    /// Sets a byte-string option.
    pub(crate) fn set_bytes(&self, option: BytesOption, value: &[u8]) -> Result<(), LabError> {
        // SAFETY: `raw` is a live socket; libzmq reads `value.len()` bytes of `value`.
        let rc = unsafe {
            (self.lib.setsockopt)(
                self.raw,
                option as c_int,
                value.as_ptr().cast(),
                value.len(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(self.lib.error("zmq_setsockopt"))
        }
    }

    /// Sets `ZMQ_SNDTIMEO` and `ZMQ_RCVTIMEO`: a send or receive that waits longer fails
    /// with [`LabError::Stalled`].
    pub(crate) fn set_timeouts(&self, timeout: Duration) -> Result<(), LabError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        self.set_int(IntOption::SndTimeo, ms)?;
        self.set_int(IntOption::RcvTimeo, ms)
    }

    /// Binds `endpoint` (`tcp://127.0.0.1:*` picks a free port) and returns the endpoint
    /// bound (`ZMQ_LAST_ENDPOINT`: `tcp://127.0.0.1:PORT`).
    pub(crate) fn bind(&self, endpoint: &str) -> Result<String, LabError> {
        let c_endpoint = endpoint_cstring(endpoint)?;
        // SAFETY: `raw` is a live socket and `c_endpoint` a NUL-terminated string that
        // outlives the call.
        if unsafe { (self.lib.bind)(self.raw, c_endpoint.as_ptr()) } != 0 {
            let err = self.lib.error("zmq_bind");
            return Err(LabError::context(format!("binding {endpoint}"))(err));
        }
        let mut buf = [0u8; 256];
        let mut len = buf.len();
        // SAFETY: `raw` is a live socket; libzmq writes at most `len` bytes into `buf` and
        // the length written (NUL included) into `len`.
        let rc = unsafe {
            (self.lib.getsockopt)(self.raw, LAST_ENDPOINT, buf.as_mut_ptr().cast(), &mut len)
        };
        if rc != 0 {
            return Err(self.lib.error("zmq_getsockopt(ZMQ_LAST_ENDPOINT)"));
        }
        let bound = &buf[..len.min(buf.len())];
        let bound = bound.split(|&b| b == 0).next().unwrap_or_default();
        Ok(String::from_utf8_lossy(bound).into_owned())
    }

    /// Connects to `endpoint` (in the background: libzmq retries until the peer is there).
    pub(crate) fn connect(&self, endpoint: &str) -> Result<(), LabError> {
        let c_endpoint = endpoint_cstring(endpoint)?;
        // SAFETY: `raw` is a live socket and `c_endpoint` a NUL-terminated string that
        // outlives the call.
        if unsafe { (self.lib.connect)(self.raw, c_endpoint.as_ptr()) } != 0 {
            let err = self.lib.error("zmq_connect");
            return Err(LabError::context(format!("connecting to {endpoint}"))(err));
        }
        Ok(())
    }

    /// Sends `msg` as one message (`zmq_send`: libzmq copies it), waiting while the queue is
    /// at its high-water mark, up to the send timeout.
    #[inline]
    pub(crate) fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        loop {
            // SAFETY: `raw` is a live socket; libzmq reads `msg.len()` bytes of `msg`.
            let rc = unsafe { (self.lib.send)(self.raw, msg.as_ptr().cast(), msg.len(), 0) };
            if rc >= 0 {
                return Ok(());
            }
            self.retry_or_fail("zmq_send", "sending (libzmq send timeout)")?;
        }
    }

    /// Receives one message into `buf` (`zmq_recv`: libzmq copies it) and returns its length;
    /// a message longer than `buf` is an error (libzmq would have cut it).
    #[inline]
    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        loop {
            // SAFETY: `raw` is a live socket; libzmq writes at most `buf.len()` bytes into
            // `buf`.
            let rc = unsafe { (self.lib.recv)(self.raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if let Ok(len) = usize::try_from(rc) {
                if len > buf.len() {
                    return Err(LabError::WrongSize {
                        len,
                        size: buf.len(),
                    });
                }
                return Ok(len);
            }
            self.retry_or_fail("zmq_recv", "receiving (libzmq receive timeout)")?;
        }
    }

    /// After a failed send or receive: `Ok` to try again (`EINTR`), else the error (a timeout
    /// is [`LabError::Stalled`]).
    #[cold]
    fn retry_or_fail(&self, what: &'static str, waiting: &'static str) -> Result<(), LabError> {
        match self.lib.last_errno() {
            libc::EINTR => Ok(()),
            libc::EAGAIN => Err(LabError::Stalled {
                what: waiting,
                waited: self.timeout(),
            }),
            ETERM => Err(LabError::PeerClosed { what }),
            code => Err(LabError::Libzmq {
                what,
                detail: self.lib.describe(code),
            }),
        }
    }

    /// The receive timeout set on this socket (for error messages).
    fn timeout(&self) -> Duration {
        let mut ms: c_int = 0;
        let mut len = std::mem::size_of::<c_int>();
        // SAFETY: `raw` is a live socket; libzmq writes one c_int into `ms` and its size into
        // `len`.
        let rc = unsafe {
            (self.lib.getsockopt)(
                self.raw,
                IntOption::RcvTimeo as c_int,
                (&mut ms as *mut c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        } else {
            Duration::ZERO
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: `raw` is live and closed exactly once, here.
        unsafe { (self.lib.close)(self.raw) };
        loop {
            // SAFETY: `ctx` is live, its only socket is closed, and it is terminated exactly
            // once (retried only when a signal interrupted the call, as zmq.h documents).
            let rc = unsafe { (self.lib.ctx_term)(self.ctx) };
            if rc == 0 || self.lib.last_errno() != libc::EINTR {
                break;
            }
        }
    }
}

/// `endpoint` as a C string (an endpoint with a NUL in it is a caller bug, reported).
fn endpoint_cstring(endpoint: &str) -> Result<CString, LabError> {
    CString::new(endpoint).map_err(|_| LabError::Libzmq {
        what: "endpoint",
        detail: format!("{endpoint:?} contains a NUL byte"),
    })
}

/// The libzmq of this process for a test that needs it: `None` (the test is skipped, saying
/// why) when it is missing, except under `CI=true`, where a missing libzmq fails the test.
#[cfg(test)]
pub(crate) fn for_tests() -> Option<&'static Libzmq> {
    match Libzmq::load() {
        Ok(zmq) => Some(zmq),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {why}"
            );
            println!("skipped: {why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PAIR or PUB/SUB pair in this process, bound to `endpoint`, with CURVE if asked.
    fn pair(
        zmq: &'static Libzmq,
        kinds: (SocketKind, SocketKind),
        endpoint: &str,
        curve: bool,
    ) -> (Socket, Socket) {
        let server = zmq.socket(kinds.0).expect("socket");
        let client = zmq.socket(kinds.1).expect("socket");
        for s in [&server, &client] {
            s.set_timeouts(Duration::from_secs(5)).expect("timeouts");
        }
        if curve {
            let (s, c) = (zmq.curve_keypair().unwrap(), zmq.curve_keypair().unwrap());
            assert_eq!((s.public.len(), s.secret.len()), (40, 40));
            assert_ne!(s, c);
            server.set_int(IntOption::CurveServer, 1).unwrap();
            server
                .set_bytes(BytesOption::CurveSecretKey, s.secret.as_bytes())
                .unwrap();
            client
                .set_bytes(BytesOption::CurveServerKey, s.public.as_bytes())
                .unwrap();
            client
                .set_bytes(BytesOption::CurvePublicKey, c.public.as_bytes())
                .unwrap();
            client
                .set_bytes(BytesOption::CurveSecretKey, c.secret.as_bytes())
                .unwrap();
        }
        if kinds.1 == SocketKind::Sub {
            client.set_bytes(BytesOption::Subscribe, b"").unwrap();
            server.set_int(IntOption::XpubNodrop, 1).unwrap();
        }
        let bound = server.bind(endpoint).expect("bind");
        client.connect(&bound).expect("connect");
        (server, client)
    }

    #[test]
    fn pair_and_pub_sub_deliver_over_tcp_and_ipc_with_and_without_curve() {
        // libzmq starts I/O threads: none may run while another test of this binary forks.
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(zmq) = for_tests() else { return };
        assert!(zmq.version().starts_with('4'), "{}", zmq.version());
        let ipc = std::env::temp_dir().join(format!("shmsock-lab-zmq-{}.sock", std::process::id()));
        let ipc = format!("ipc://{}", ipc.display());
        let cases = [
            (
                (SocketKind::Pair, SocketKind::Pair),
                "tcp://127.0.0.1:*",
                false,
            ),
            ((SocketKind::Pair, SocketKind::Pair), ipc.as_str(), false),
            (
                (SocketKind::Pub, SocketKind::Sub),
                "tcp://127.0.0.1:*",
                false,
            ),
            (
                (SocketKind::Pair, SocketKind::Pair),
                "tcp://127.0.0.1:*",
                true,
            ),
        ];
        for (kinds, endpoint, curve) in cases {
            if curve && !zmq.has_curve() {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but this libzmq was built without CURVE (install a libzmq5 built with libsodium)"
                );
                println!("skipped CURVE: this libzmq was built without it");
                eprintln!("skipped CURVE: this libzmq was built without it");
                continue;
            }
            let (mut server, mut client) = pair(zmq, kinds, endpoint, curve);
            let msg: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
            let mut buf = vec![0u8; 8192];
            // A subscription takes a moment to reach the publisher: send until one arrives.
            let received = loop {
                server.send(&msg).expect("send");
                if kinds.1 != SocketKind::Sub {
                    break client.recv(&mut buf).expect("recv");
                }
                client.set_int(IntOption::RcvTimeo, 10).unwrap();
                match client.recv(&mut buf) {
                    Ok(n) => break n,
                    Err(LabError::Stalled { .. }) => continue,
                    Err(e) => panic!("{endpoint}: {e}"),
                }
            };
            assert_eq!(&buf[..received], &msg[..], "{endpoint} curve={curve}");
            let mut small = [0u8; 16];
            server.send(&msg).expect("send");
            client.set_int(IntOption::RcvTimeo, 5000).unwrap();
            let err = client.recv(&mut small).expect_err("longer than the buffer");
            assert!(
                matches!(
                    err,
                    LabError::WrongSize {
                        len: 5000,
                        size: 16
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn a_receive_timeout_is_a_stall_and_a_bad_endpoint_an_error_that_names_it() {
        // libzmq starts I/O threads: none may run while another test of this binary forks.
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(zmq) = for_tests() else { return };
        let mut socket = zmq.socket(SocketKind::Pair).expect("socket");
        socket.set_timeouts(Duration::from_millis(20)).unwrap();
        let err = socket.recv(&mut [0u8; 8]).expect_err("nothing to receive");
        assert!(matches!(err, LabError::Stalled { .. }), "{err}");
        let err = socket
            .bind("carrier-pigeon://nowhere")
            .expect_err("bad endpoint");
        let text = err.to_string();
        assert!(
            text.contains("carrier-pigeon://nowhere") && text.contains("zmq_bind"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_library_names_the_package_to_install() {
        let err = Libzmq::open("libzmq-that-does-not-exist.so.5").expect_err("missing");
        assert!(err.contains("libzmq not available"), "{err}");
        assert!(
            err.contains("libzmq5") && err.contains("libzmq3-dev"),
            "{err}"
        );
        assert!(
            err.contains("dlopen: libzmq-that-does-not-exist.so.5"),
            "{err}"
        );
    }

    #[test]
    fn a_library_that_is_not_libzmq_is_refused() {
        // libc is loaded everywhere and has no zmq_version.
        let err = Libzmq::open("libc.so.6").expect_err("not libzmq");
        assert!(err.contains("has no zmq_version"), "{err}");
    }
}
