//! # shmsock: socket-like IPC at shared-memory speed
//!
//! One API over three transports: `shm://name` (lock-free rings in sealed memfd shared
//! memory, handed over a Unix socket), `unix:///path` and `tcp://host:port` (ZeroMQ's wire
//! protocol, ZMTP 3.1, so pyzmq and libzmq sockets are valid peers). Changing the endpoint
//! string changes nothing else.
//!
//! | pattern | types | transports |
//! |---|---|---|
//! | one peer, both ways (ZeroMQ PAIR) | [`Listener`], [`Conn`] | shm, unix, tcp |
//! | one to many, topic prefixes (PUB/SUB) | [`Publisher`], [`Subscriber`] | shm, unix, tcp |
//! | many writers, one reader | [`Inbox`] + [`Conn`] writers | shm, unix, tcp |
//! | zero-copy bulk data | [`Conn::loan`], [`Conn::recv_sample`] ([`Options::loan_pool`]) | shm (others copy) |
//! | typed messages | `send_value`/`recv_value` (serde, postcard), `send_pod`/`recv_pod` | all |
//! | shm:// topics to the network and back | [`Bridge`] (`shmsock bridge SRC DST`) | all |
//! | async/await (cargo feature `tokio`) | `AsyncListener`, `AsyncConn`, `AsyncSubscriber` | all |
//!
//! The examples below run as doctests (all but the tokio sketch, which needs the feature and
//! a runtime); threads stand in for processes (the same code works across processes, which
//! is what it is for).
//!
//! ## One peer: `Listener` and `Conn`
//! ```
//! use shmsock::{Conn, Listener};
//! # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
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
//! `recv` returns [`Error::PeerClosed`] after the last message of a peer that closed, and
//! [`Error::PeerGone`] (after its last message too) for one that died.
//!
//! ## One to many: `Publisher` and `Subscriber`
//! Every subscriber receives every message published after it joined that matches its
//! topics (prefixes; everything by default), in order. [`Overflow`] says what a slow
//! subscriber does to the publisher: `Block` (default) holds it back, `DropOldest` never
//! waits and tells the subscriber how many it lost ([`Error::Lagged`]).
//! ```
//! use shmsock::{Publisher, Subscriber};
//! # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
//! let mut publisher = Publisher::bind("shm://doc-weather")?;
//! let mut everything = Subscriber::connect("shm://doc-weather")?;
//! let mut paris = Subscriber::connect("shm://doc-weather")?;
//! paris.unsubscribe(b"")?; // not everything...
//! paris.subscribe(b"paris.")?; // ...only this prefix
//! while publisher.subscriber_count() < 2 {
//!     std::thread::sleep(std::time::Duration::from_millis(1));
//! }
//! publisher.send(b"oslo.temp -3")?;
//! publisher.send(b"paris.temp 21")?;
//! assert_eq!(everything.recv_vec()?, b"oslo.temp -3");
//! assert_eq!(everything.recv_vec()?, b"paris.temp 21");
//! assert_eq!(paris.recv_vec()?, b"paris.temp 21");
//! # Ok::<(), shmsock::Error>(())
//! ```
//!
//! ## Many writers, one reader: `Inbox`
//! Each writer is a plain [`Conn`] with a ring of its own (writers never contend); the inbox
//! takes one message from each writer in turn and says who sent it.
//!
//! An [`Inbox`] or a [`Listener`] can bind several endpoints of any transport
//! ([`Inbox::bind_all`], [`Inbox::add_endpoint`], the same on [`Listener`]): local writers on
//! `shm://`, remote ones on `tcp://`, all in one round robin (see [`Inbox`]'s docs).
//! ```
//! use shmsock::{Conn, Inbox};
//! # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
//! let mut inbox = Inbox::bind("shm://doc-orders-many")?;
//! let writers: Vec<_> = ["buy 100", "sell 50", "buy 7"]
//!     .into_iter()
//!     .map(|order| {
//!         std::thread::spawn(move || -> shmsock::Result<()> {
//!             Conn::connect("shm://doc-orders-many")?.send(order.as_bytes())
//!         })
//!     })
//!     .collect();
//! let mut orders = Vec::new();
//! for _ in 0..3 {
//!     let (order, from) = inbox.recv_from_vec()?; // from: WriterId { pid, serial }
//!     assert_eq!(from.pid, std::process::id() as i32);
//!     orders.push(String::from_utf8(order).unwrap());
//! }
//! orders.sort();
//! assert_eq!(orders, ["buy 100", "buy 7", "sell 50"]);
//! for w in writers {
//!     w.join().unwrap()?;
//! }
//! # Ok::<(), shmsock::Error>(())
//! ```
//!
//! ## Zero-copy: loans
//! The sender owns a pool of slots ([`Options::loan_pool`]), fills one in place
//! ([`Conn::loan`]) and sends a 24-byte `{slot, generation, length}` frame; the receiver
//! reads the slot where it lies ([`Conn::recv_sample`]) and dropping the [`Sample`] hands it
//! back. Over `tcp://`/`unix://` a loan is an ordinary buffer (copied).
//! ```
//! use shmsock::{Conn, Listener, Options};
//! # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
//! let listener = Listener::bind("shm://doc-frames")?;
//! let camera = std::thread::spawn(|| -> shmsock::Result<()> {
//!     let pool = Options::new().loan_pool(4, 1 << 20); // 4 slots of 1 MiB
//!     let mut conn = Conn::connect_with("shm://doc-frames", pool)?;
//!     for frame in 0..8u8 {
//!         let mut loan = conn.loan(1 << 20)?; // waits while all 4 slots are lent
//!         loan.fill(frame); // write in place: DerefMut<Target = [u8]>
//!         loan.send()?;
//!     }
//!     Ok(())
//! });
//! let mut conn = listener.accept()?;
//! for frame in 0..8u8 {
//!     let sample = conn.recv_sample()?; // a read-only view of the sender's slot
//!     let mut corners = [0u8; 2];
//!     sample.read_at(0, &mut corners[..1]);
//!     sample.read_at(sample.len() - 1, &mut corners[1..]);
//!     assert_eq!((sample.is_loan(), corners), (true, [frame; 2]));
//! } // each sample dropped here: its slot goes back to the sender
//! camera.join().unwrap()?;
//! # Ok::<(), shmsock::Error>(())
//! ```
//!
//! ## Typed messages
//! `send_value`/`recv_value` encode serde types with postcard (a wrong type is
//! [`Error::Decode`]); `send_pod`/`recv_pod` send `#[repr(C)]` `bytemuck::Pod` values as
//! their bytes. On [`Conn`], [`Publisher`] and [`Subscriber`] ([`Inbox::recv_value`] too).
//! ```
//! use serde::{Deserialize, Serialize};
//! use shmsock::{Conn, Listener};
//! # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order {
//!     symbol: String,
//!     qty: u32,
//!     limit: Option<f64>,
//! }
//! let listener = Listener::bind("shm://doc-typed")?;
//! let client = std::thread::spawn(|| -> shmsock::Result<()> {
//!     let mut conn = Conn::connect("shm://doc-typed")?;
//!     conn.send_value(&Order { symbol: "AAPL".into(), qty: 100, limit: Some(187.5) })?;
//!     let filled: u32 = conn.recv_value()?; // request/reply: a Conn goes both ways
//!     assert_eq!(filled, 100);
//!     Ok(())
//! });
//! let mut conn = listener.accept()?;
//! let order: Order = conn.recv_value()?;
//! assert_eq!(order, Order { symbol: "AAPL".into(), qty: 100, limit: Some(187.5) });
//! conn.send_value(&order.qty)?;
//! client.join().unwrap()?;
//! # Ok::<(), shmsock::Error>(())
//! ```
//!
//! ## Beyond one machine: `tcp://` and `unix://`
//! The same types over ZeroMQ's wire protocol: a [`Conn`] is a PAIR socket, a
//! [`Publisher`]/[`Subscriber`] a PUB/SUB socket, so pyzmq and libzmq are peers.
//! `tcp://HOST:0` binds a port the OS picks (`endpoint()` says which).
//! ```
//! use shmsock::{Conn, Listener, Publisher, Subscriber};
//! let listener = Listener::bind("tcp://127.0.0.1:0")?;
//! let address = listener.endpoint().to_owned(); // tcp://127.0.0.1:<port>
//! let client = std::thread::spawn(move || -> shmsock::Result<Vec<u8>> {
//!     let mut conn = Conn::connect(&address)?; // or a pyzmq PAIR socket
//!     conn.send(b"ping")?;
//!     conn.recv_vec()
//! });
//! let mut conn = listener.accept()?;
//! assert_eq!(conn.recv_vec()?, b"ping");
//! conn.send(b"pong")?;
//! assert_eq!(client.join().unwrap()?, b"pong");
//!
//! let mut publisher = Publisher::bind("tcp://127.0.0.1:0")?;
//! let mut subscriber = Subscriber::connect(publisher.endpoint())?; // or a pyzmq SUB
//! while publisher.subscriber_count() < 1 {
//!     std::thread::sleep(std::time::Duration::from_millis(1));
//! }
//! publisher.send(b"tick 1")?;
//! assert_eq!(subscriber.recv_vec()?, b"tick 1");
//! # Ok::<(), shmsock::Error>(())
//! ```
//! A [`Bridge`] (the `shmsock bridge SRC DST` command) republishes a `shm://` topic on
//! `tcp://` (or back), so local subscribers keep shared-memory speed while remote ones get
//! ZeroMQ; its docs have an example.
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
//! They speak ZMTP 3.1 (NULL security mechanism; socket type PAIR for [`Conn`], PUB and SUB
//! for [`Publisher`] and [`Subscriber`]) over a TCP or Unix stream socket: a `unix:///path`
//! endpoint is ZeroMQ's `ipc:///path`. Errors are the same as for `shm://`; a peer sending
//! invalid ZMTP gives [`Error::Protocol`] (or [`Error::Handshake`] during the handshake) and
//! only that connection is closed. A multipart ZeroMQ message arrives as one message, its
//! parts concatenated. Over `tcp://`, [`Conn::peer_pid`] is 0 (unknown) and any peer that
//! reaches the port is admitted. A `tcp://`/`unix://` [`Subscriber`] reconnects by itself
//! when its publisher goes away, as a ZeroMQ SUB does.
//!
//! ZeroMQ's CURVE security (RFC 26 CurveZMQ) encrypts and authenticates `tcp://` and
//! `unix://` connections: [`Options::curve_secret`] makes a bound side a CURVE server (NULL
//! peers refused), [`Options::curve_server`] makes a connecting side its client, and
//! [`Options::curve_allow`] admits only listed client keys. Keys are [`CurveKeyPair`],
//! [`CurvePublicKey`] and [`CurveSecretKey`], in Z85 text and in the certificate files of
//! czmq and pyzmq (`shmsock keygen NAME` writes a pair). libzmq and pyzmq CURVE sockets are
//! peers.
//!
//! ## tokio (the `tokio` cargo feature)
//! `shmsock = { version = "…", features = ["tokio"] }` adds [`AsyncListener`],
//! [`AsyncConn`] (`send().await`, `recv().await`, `recv_vec().await`) and
//! [`AsyncSubscriber`] over all three schemes. An async `shm://` side hands its peer an
//! doorbell (a Unix datagram socket) in the handshake; the peer rings it only when this side announced that
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
//!
//! ## Observability
//! `tracing` events (free without a subscriber): bind, accept and connect (debug), a peer
//! that ended (info), corrupt peer memory, subscriber lag and dropped messages (warn).
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
mod fence_ask_tests;
#[cfg(not(loom))]
mod handover;
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
#[doc(hidden)]
pub mod test_support;
#[cfg(not(loom))]
mod typed;
#[cfg(not(loom))]
mod upgrade;
mod vocabulary;

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
pub use loan::{DetachedLoan, Loan, Sample};
#[cfg(not(loom))]
pub use net::config::{NET_CONNECTIONS_MAX_DEFAULT, NET_MESSAGE_MAX_DEFAULT_BYTES};
#[cfg(not(loom))]
pub use net::curve::keys::{CurveKeyPair, CurvePublicKey, CurveSecretKey};
#[cfg(not(loom))]
pub use options::{Options, RING_CAPACITY_DEFAULT_BYTES};
#[cfg(not(loom))]
pub use pubsub::{Publisher, Subscriber};
pub use shm::ring::{RING_CAPACITY_MAX_BYTES, RING_CAPACITY_MIN_BYTES};
#[cfg(not(loom))]
pub use shm::runtime_dir::runtime_dir;
#[cfg(not(loom))]
pub use shm::segment::{LOAN_POOL_MAX_BYTES, LOAN_SLOTS_MAX, PROTOCOL_VERSION};
pub use shm::wait::{FUTEX_SLEEP_MAX, PEER_CHECK_INTERVAL};
pub use vocabulary::{Overflow, WaitStrategy, HANDSHAKE_TIMEOUT, SPIN_BUDGET_DEFAULT};
