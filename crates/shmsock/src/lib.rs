//! # shmsock: socket-like IPC at shared-memory speed
//!
//! The same [`Listener`]/[`Conn`] API over `shm://name` (lock-free rings in sealed memfd
//! shared memory, handed over a Unix socket), `unix:///path` and `tcp://host:port` (ZeroMQ's
//! wire protocol, ZMTP 3.x with socket type PAIR, so pyzmq and libzmq PAIR sockets are valid
//! peers; see "How `tcp://` and `unix://` work" below).
//!
//! ```
//! use shmsock::{Conn, Listener};
//! # std::env::set_var("SHMSOCK_RUNTIME_DIR", std::env::temp_dir().join(format!("shmsock-doc-{}", std::process::id())));
//! let listener = Listener::bind("shm://quotes")?;
//! let writer = std::thread::spawn(|| -> shmsock::Result<()> {
//!     let mut conn = Conn::connect("shm://quotes")?;
//!     for price in [101u32, 102, 103] {
//!         conn.send(&price.to_le_bytes())?;
//!     }
//!     Ok(()) // dropping the Conn closes it cleanly
//! });
//! let mut conn = listener.accept()?;
//! let mut buf = [0u8; 4];
//! let mut got = Vec::new();
//! while let Ok(n) = conn.recv(&mut buf) {
//!     got.push(u32::from_le_bytes(buf[..n].try_into().unwrap()));
//! }
//! assert_eq!(got, [101, 102, 103]);
//! writer.join().unwrap()?;
//! # Ok::<(), shmsock::Error>(())
//! ```
//!
//! ## How `shm://` works
//! Each process owns one segment per connection (an anonymous memfd, sealed against
//! shrinking, growing and new writable mappings) holding its outbound ring; the peer maps it
//! read-only. Every shared word has exactly one writer, so a buggy or hostile peer can lie
//! in its own memory (we validate every value, see [`Error::Corrupt`]) but never corrupt
//! ours. No lock lives in shared memory. A Unix socket carries the rendezvous, checks the
//! peer's uid (`SO_PEERCRED`) before any fd is passed, and stays open so that a dead peer is
//! noticed within milliseconds ([`Error::PeerGone`]). Waiting spins briefly, then sleeps on a
//! futex that the sender only wakes when the receiver announced it sleeps
//! ([`WaitStrategy`]).
//!
//! ## How `tcp://` and `unix://` work
//! They speak ZMTP 3.1 (NULL security mechanism, socket type PAIR) over a TCP or Unix stream
//! socket: a `unix:///path` endpoint is ZeroMQ's `ipc:///path`. Errors are the same as for
//! `shm://`; a peer sending invalid ZMTP gives [`Error::Protocol`] (or [`Error::Handshake`]
//! during the handshake) and only that connection is closed. A multipart ZeroMQ message
//! arrives as one message, its parts concatenated. Over `tcp://`, [`Conn::peer_pid`] is 0
//! (unknown) and any peer that reaches the port is admitted.
//!
//! ## tokio (the `tokio` cargo feature)
//! `shmsock = { version = "…", features = ["tokio"] }` adds [`AsyncListener`],
//! [`AsyncConn`] (`send().await`, `recv().await`, `recv_vec().await`) and
//! [`AsyncSubscriber`] over all three schemes. An async `shm://` side hands its peer an
//! eventfd doorbell in the handshake; the peer rings it only when this side announced that
//! it sleeps, and tokio's reactor watches the doorbell and the control socket (so a dead
//! peer wakes the task at once). Nothing polls and nothing spins: an idle async receiver
//! uses no CPU. `tcp://`/`unix://` wait on the socket's readiness. Receives are
//! cancel-safe (a `recv` dropped by `tokio::time::timeout` loses no message); each method
//! documents its cancel safety. Peers may be blocking or async, in any mix.
//!
//! ```ignore
//! // with features = ["tokio"], inside a tokio runtime:
//! let mut listener = shmsock::AsyncListener::bind("shm://echo")?;
//! let mut conn = listener.accept().await?;          // peer: Conn or AsyncConn
//! let mut buf = vec![0u8; 64 * 1024];
//! while let Ok(n) = conn.recv(&mut buf).await {     // PeerClosed/PeerGone end the loop
//!     conn.send(&buf[..n]).await?;
//! }
//! ```
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(all(feature = "tokio", not(loom)))]
mod async_io;
#[cfg(not(loom))]
mod bridge;
#[cfg(not(loom))]
mod conn;
mod endpoint;
mod error;
#[cfg(all(test, not(loom)))]
mod hostile_tests;
#[cfg(not(loom))]
mod inbox;
#[cfg(not(loom))]
pub mod inspect;
#[cfg(not(loom))]
mod loan;
#[cfg(not(loom))]
mod net;
#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
mod pubsub;
mod shm;
mod sync;
#[cfg(not(loom))]
mod sys;
#[cfg(not(loom))]
mod typed;

#[cfg(all(feature = "tokio", not(loom)))]
pub use async_io::{AsyncConn, AsyncListener, AsyncSubscriber};
#[cfg(not(loom))]
pub use bridge::{
    Bridge, BridgeBuilder, BridgeEnd, BridgeStats, BRIDGE_RECONNECT_MAX, BRIDGE_RECONNECT_MIN,
    BRIDGE_STOP_POLL,
};
#[cfg(not(loom))]
pub use conn::{Conn, Listener};
pub use endpoint::{Endpoint, SHM_NAME_MAX_BYTES};
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use inbox::{Inbox, WriterId};
#[cfg(not(loom))]
pub use loan::{Loan, Sample};
#[cfg(not(loom))]
pub use net::NET_MESSAGE_MAX_DEFAULT_BYTES;
#[cfg(not(loom))]
pub use options::{Options, RING_CAPACITY_DEFAULT_BYTES};
#[cfg(not(loom))]
pub use pubsub::{Publisher, Subscriber};
pub use shm::broadcast::Overflow;
#[cfg(not(loom))]
pub use shm::handshake::{runtime_dir, HANDSHAKE_TIMEOUT};
pub use shm::ring::{RING_CAPACITY_MAX_BYTES, RING_CAPACITY_MIN_BYTES};
#[cfg(not(loom))]
pub use shm::segment::{LOAN_POOL_MAX_BYTES, LOAN_SLOTS_MAX, PROTOCOL_VERSION};
pub use shm::wait::{WaitStrategy, FUTEX_SLEEP_MAX, PEER_CHECK_INTERVAL, SPIN_BUDGET_DEFAULT};
