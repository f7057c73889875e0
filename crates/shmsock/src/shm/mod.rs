//! The `shm://` transport: per-process sealed memfd segments, SPSC frame rings, a futex
//! eventcount, and a Unix socket for the rendezvous and for peer-death detection.

pub(crate) mod broadcast;
pub(crate) mod ring;
pub(crate) mod wait;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(not(loom))]
mod conn;
#[cfg(not(loom))]
mod control;
#[cfg(not(loom))]
pub(crate) mod doorbell;
#[cfg(not(loom))]
pub(crate) mod handshake;
#[cfg(not(loom))]
mod inbox;
#[cfg(not(loom))]
pub(crate) mod label;
#[cfg(not(loom))]
mod listener;
#[cfg(not(loom))]
pub(crate) mod loan;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
pub(crate) mod rendezvous;
#[cfg(not(loom))]
pub(crate) mod segment;
#[cfg(not(loom))]
mod subscriber;

#[cfg(not(loom))]
pub(crate) use conn::connect as conn_connect;
#[cfg(all(not(loom), feature = "tokio"))]
pub(crate) use conn::connect_with_bell as conn_connect_with_bell;
#[cfg(not(loom))]
pub(crate) use conn::ShmConn;
#[cfg(not(loom))]
pub(crate) use control::Mode;
#[cfg(all(not(loom), feature = "tokio"))]
pub(crate) use doorbell::Doorbell;
#[cfg(not(loom))]
pub(crate) use inbox::ShmInbox;
#[cfg(not(loom))]
pub use inbox::WriterId;
#[cfg(all(not(loom), feature = "tokio"))]
pub(crate) use listener::accept_handshake;
#[cfg(not(loom))]
pub(crate) use listener::ShmListener;
#[cfg(not(loom))]
pub(crate) use publisher::ShmPublisher;
#[cfg(not(loom))]
pub(crate) use subscriber::ShmSubscriber;
