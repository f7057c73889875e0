//! What the `tcp://` and `unix://` transport takes from the user's options (the API's
//! `Options` builds it).

use std::sync::{Arc, OnceLock};

use super::curve::keys::{CurveKeyPair, CurvePublicKey};
use super::curve::server::AllowList;
use crate::handover::Book;
use crate::vocabulary::{Overflow, PeerPolicy};

/// Default largest message on `tcp://` and `unix://` connections, in bytes (64 MiB); a
/// peer announcing a larger one is cut off before anything is allocated for it.
pub const NET_MESSAGE_MAX_DEFAULT_BYTES: usize = 64 << 20;

/// Default most connections one `tcp://`/`unix://` listening socket holds at once
/// (handshakes under way plus established connections): 1024.
pub const NET_CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// The settings of one `tcp://` or `unix://` socket.
#[derive(Debug, Clone)]
pub(crate) struct NetConfig {
    /// Which `unix://` peers are admitted (`SO_PEERCRED`; `tcp://` admits whoever connects).
    pub(crate) peers: PeerPolicy,
    /// Largest message sent or accepted; a longer announced frame is refused before any
    /// allocation.
    pub(crate) max_message_len: usize,
    /// What a publisher does with a subscriber whose queue is full.
    pub(crate) overflow: Overflow,
    /// Bytes a publisher queues for one subscriber before `overflow` applies.
    pub(crate) queue_max_bytes: usize,
    /// Most connections a listening socket holds at once (handshakes under way included).
    pub(crate) max_connections: usize,
    /// ZMTP 3.1 heartbeats on established connections, if asked for.
    pub(crate) heartbeat: Option<Heartbeat>,
    /// The CURVE security mechanism, if asked for (else NULL).
    pub(crate) curve: Option<Curve>,
    /// How long a whole handshake may take, each side.
    pub(crate) handshake_timeout: std::time::Duration,
    /// A publisher's offer of its shared-memory ring to local subscribers (see
    /// [`crate::handover`]): every subscriber's READY carries a token of its own.
    pub(crate) offering: Option<Offering>,
}

/// What a publisher offers its subscribers: the `shm://` name of its ring, and the book in
/// which each connection's token is recorded.
#[derive(Debug, Clone)]
pub(crate) struct Offering {
    /// The ring's `shm://` name (without the scheme), once it is known (no offer before).
    pub(crate) name: Arc<OnceLock<String>>,
    /// Where tokens are recorded.
    pub(crate) book: Arc<Book>,
}

/// CURVE settings (ZMTP-CURVE, RFC 26 CurveZMQ). The side that knows the server's public
/// key is the client; a side with only a key pair is the server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Curve {
    /// Our long-term key pair: the server's (required), or the client's (a fresh one per
    /// connection when missing).
    pub(crate) keys: Option<Arc<CurveKeyPair>>,
    /// Set on the client side: the server's public key.
    pub(crate) server: Option<CurvePublicKey>,
    /// Server side: the client keys admitted; `None` admits any client that completes the
    /// handshake.
    pub(crate) allow: Option<AllowList>,
}

impl Curve {
    /// Whether this side is the CURVE client.
    pub(crate) fn is_client(&self) -> bool {
        self.server.is_some()
    }
}

/// ZMTP 3.1 heartbeats: PING after `interval` without traffic from the peer; the peer is
/// gone after `timeout` without any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    /// Silence after which we send a PING.
    pub(crate) interval: std::time::Duration,
    /// Silence after which the peer counts as gone.
    pub(crate) timeout: std::time::Duration,
}
