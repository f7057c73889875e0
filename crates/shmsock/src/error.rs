//! The one error type of shmsock.
//!
//! Each variant is something a caller can act on, and its `Display` text says what failed,
//! on which endpoint, and what to do next.

use std::io;

/// Errors returned by shmsock operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint string could not be parsed.
    #[error(
        "invalid endpoint {input:?}: {reason}; accepted forms are shm://NAME \
         (NAME: 1-100 of [A-Za-z0-9._-], not starting with '.'), unix:///absolute/path \
         and tcp://HOST:PORT"
    )]
    InvalidEndpoint {
        /// The string as given by the caller.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The endpoint's transport is not implemented yet.
    #[error("{endpoint}: the {scheme}:// transport is not supported yet; use shm://NAME")]
    Unsupported {
        /// The endpoint that was requested.
        endpoint: String,
        /// Its scheme.
        scheme: &'static str,
    },

    /// Another live listener is bound to this endpoint.
    #[error("{endpoint} is already bound by a live listener (lock file {lock}); pick another name or stop that process")]
    AddrInUse {
        /// The endpoint.
        endpoint: String,
        /// The lock file held by the other listener.
        lock: String,
    },

    /// Nobody listens on this endpoint.
    #[error("{endpoint}: connection refused, no listener is bound (socket {path}); start one first, e.g. `shmsock recv {endpoint}` (or `shmsock pub {endpoint}` for a subscriber)")]
    ConnectionRefused {
        /// The endpoint.
        endpoint: String,
        /// The rendezvous socket path that was tried.
        path: String,
    },

    /// The peer's credentials are not allowed by our access policy.
    #[error("{endpoint}: peer pid {pid} runs as uid {uid}, which is not allowed (allowed: {allowed}); use Options::allow_uid to admit it")]
    PermissionDenied {
        /// The endpoint.
        endpoint: String,
        /// Peer process id (from SO_PEERCRED).
        pid: i32,
        /// Peer user id (from SO_PEERCRED).
        uid: u32,
        /// The allowed uids, for the message.
        allowed: String,
    },

    /// The listener refused our connection.
    #[error("{endpoint}: the listener refused the connection: {reason}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The reason the listener gave.
        reason: String,
    },

    /// The peer broke the handshake protocol (bad hello, bad segment, missing seals...).
    #[error("{endpoint}: handshake with peer failed: {reason}")]
    Handshake {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },

    /// The peer speaks another protocol version.
    #[error("{endpoint}: protocol version mismatch: peer speaks v{peer}, we speak v{ours}; upgrade the older side")]
    VersionMismatch {
        /// The endpoint.
        endpoint: String,
        /// Our protocol version.
        ours: u32,
        /// The peer's protocol version.
        peer: u32,
    },

    /// The message does not fit in the ring.
    #[error("message of {len} bytes is larger than this connection allows ({max} bytes); raise Options::ring_capacity (shm://: the limit is the capacity minus 128) or Options::max_message_len (tcp://, unix://), or send it in parts")]
    TooLarge {
        /// Length of the message.
        len: usize,
        /// Largest message this connection accepts.
        max: usize,
    },

    /// The caller's buffer is too small for the next message; the message stays queued.
    #[error("receive buffer of {buf} bytes is too small for the next message of {len} bytes; the message is kept, retry with a larger buffer or use recv_vec")]
    BufferTooSmall {
        /// Length of the next message.
        len: usize,
        /// Length of the caller's buffer.
        buf: usize,
    },

    /// The operation would block (try_send on a full ring, try_recv on an empty one).
    #[error("operation would block")]
    WouldBlock,

    /// The operation did not complete before its deadline.
    #[error("operation timed out")]
    TimedOut,

    /// The peer closed the connection cleanly; everything it sent was delivered.
    #[error("{endpoint}: peer pid {pid} closed the connection")]
    PeerClosed {
        /// The endpoint.
        endpoint: String,
        /// Peer process id.
        pid: i32,
    },

    /// The peer died (or closed its socket without saying goodbye); everything it had
    /// published before was delivered.
    #[error("{endpoint}: peer pid {pid} is gone (it exited or was killed without closing the connection)")]
    PeerGone {
        /// The endpoint.
        endpoint: String,
        /// Peer process id.
        pid: i32,
    },

    /// The peer's shared memory holds an impossible value. The connection is unusable.
    #[error(
        "{endpoint}: peer pid {pid} shared memory is corrupt: {what}; the connection was closed"
    )]
    Corrupt {
        /// The endpoint.
        endpoint: String,
        /// Peer process id.
        pid: i32,
        /// What was found.
        what: String,
    },

    /// A `tcp://` or `unix://` peer sent bytes that are not valid ZMTP (a bad frame, a frame
    /// longer than [`Options::max_message_len`](crate::Options::max_message_len)). The
    /// connection was closed; this process is unharmed.
    #[error(
        "{endpoint}: the peer broke the ZeroMQ protocol (ZMTP): {what}; the connection was closed"
    )]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        what: String,
    },

    /// A subscriber fell a full ring behind a `DropOldest` publisher: `missed` messages were
    /// overwritten before it could read them. The next `recv` continues with the oldest
    /// message still available.
    #[error("{endpoint}: this subscriber lagged and lost {missed} messages; read faster, raise the publisher's ring_capacity, or use Overflow::Block")]
    Lagged {
        /// The endpoint.
        endpoint: String,
        /// How many messages were lost.
        missed: u64,
    },

    /// A `Block` publisher timed out waiting for its slowest subscriber.
    #[error("{endpoint}: subscriber pid {pid} is too slow: it has not freed room for {waited:?}; it may be stopped or overloaded (Overflow::DropOldest never waits)")]
    SlowSubscriber {
        /// The endpoint.
        endpoint: String,
        /// The slowest subscriber's process id.
        pid: i32,
        /// How long the publisher waited.
        waited: std::time::Duration,
    },

    /// A value could not be serialized for `send_value`.
    #[error("cannot encode a {type_name} with postcard: {reason}")]
    Encode {
        /// The Rust type.
        type_name: &'static str,
        /// What postcard said.
        reason: String,
    },

    /// A received message is not a valid encoding of the requested type (the message is
    /// consumed).
    #[error(
        "received message is not a valid {type_name}: {reason}; do both sides use the same type?"
    )]
    Decode {
        /// The Rust type.
        type_name: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// The connection was already closed by this side.
    #[error("connection already closed")]
    Closed,

    /// `loan` on a connection without a loan pool.
    #[error("{endpoint}: this connection has no loan pool; connect or bind with Options::loan_pool(slots, slot_bytes) to lend zero-copy")]
    NoLoanPool {
        /// The endpoint.
        endpoint: String,
    },

    /// The options cannot work for this endpoint (e.g. a CURVE server without a key pair).
    #[error("{endpoint}: {reason}")]
    InvalidOptions {
        /// The endpoint being bound or connected.
        endpoint: String,
        /// What is missing or contradictory, and what to do.
        reason: String,
    },

    /// A CURVE key (40 Z85 characters, or 32 bytes) is not valid.
    #[error("invalid CURVE {what}: {reason}; a key is 40 Z85 characters, as `shmsock keygen` writes them")]
    InvalidKey {
        /// Which key: "public key" or "secret key".
        what: &'static str,
        /// What is wrong with it (never the secret itself).
        reason: String,
    },

    /// A ZeroMQ certificate file (`NAME.key`, `NAME.key_secret`) cannot be used: its content
    /// is not a valid certificate of the kind needed, or writing it would overwrite a file.
    #[error("certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, including the endpoint or file.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// True for the errors of a call that gave up waiting and changed nothing:
    /// [`Error::WouldBlock`], [`Error::TimedOut`] and [`Error::SlowSubscriber`] (a publisher's
    /// timeout). The same call may be made again.
    pub fn is_out_of_time(&self) -> bool {
        matches!(
            self,
            Error::WouldBlock | Error::TimedOut | Error::SlowSubscriber { .. }
        )
    }

    /// True for [`Error::PeerGone`] and [`Error::PeerClosed`]: the connection has ended.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Error::PeerGone { .. } | Error::PeerClosed { .. })
    }
}

/// Shorthand for `Result<T, shmsock::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
