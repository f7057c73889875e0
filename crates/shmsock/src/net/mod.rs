//! `tcp://host:port` and `unix:///path`: ZeroMQ's wire protocol (ZMTP 3.x, NULL or CURVE
//! security mechanism) over stream sockets, so pyzmq/libzmq sockets are valid peers: PAIR for
//! [`Conn`](crate::Conn) and [`Listener`](crate::Listener), SUB for
//! [`Publisher`](crate::Publisher), PUB for [`Subscriber`](crate::Subscriber).
//!
//! Layers: [`zmtp`] is the wire format (pure functions), [`inbound`] the receive buffer and
//! frame parser (memory follows the bytes that arrived), [`curve`] the CurveZMQ state
//! machines ([`cert`] and [`z85`] its key files), [`stream`] one connection's I/O with
//! deadlines and its non-blocking handshake, [`socket`] binding, accepting (many handshakes
//! at once, [`admission`] counting connections) and connecting; [`publisher`] (with its I/O
//! thread, [`pump`]) and [`subscriber`] build publish/subscribe on them, [`topics`] is the
//! prefix matching both sides share; [`gather`] reads the network writers of an
//! [`Inbox`](crate::Inbox) into per-writer queues. A `unix:///path` endpoint is what ZeroMQ calls
//! `ipc:///path`.
//!
//! Differences from `shm://`, all inherent to sockets:
//! - A peer that exits is seen as end of stream, like a clean close: both give
//!   [`Error::PeerClosed`](crate::error::Error::PeerClosed) at a message boundary; end of stream inside a message or a
//!   connection reset gives [`Error::PeerGone`](crate::error::Error::PeerGone).
//! - `peer_pid` is the peer's pid for `unix://` (from `SO_PEERCRED`, which also enforces
//!   [`Options::allow_uid`](crate::Options::allow_uid)) and 0 (unknown) for `tcp://`, which
//!   admits any peer that can reach the port: bind to loopback unless you mean otherwise.
//! - A multipart ZeroMQ message is delivered as one message: its parts concatenated.

mod admission;
pub(crate) mod cert;
pub(crate) mod config;
pub(crate) mod curve;
mod flusher;
pub(crate) mod gather;
mod inbound;
mod outbox;
pub(crate) mod publisher;
mod pump;
pub(crate) mod socket;
pub(crate) mod stream;
pub(crate) mod subscriber;
pub(crate) mod topics;
pub(crate) mod z85;
pub(crate) mod zmtp;
