//! The `shm://` transport: per-process sealed memfd segments, SPSC frame rings, a futex
//! eventcount, and a Unix socket for the rendezvous and for peer-death detection.

pub(crate) mod broadcast;
pub(crate) mod ring;
pub(crate) mod serial;
pub(crate) mod wait;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(not(loom))]
mod acceptor;
#[cfg(not(loom))]
pub(crate) mod config;
#[cfg(not(loom))]
pub(crate) mod control;
#[cfg(not(loom))]
pub(crate) mod doorbell;
#[cfg(not(loom))]
pub(crate) mod hello;
#[cfg(not(loom))]
pub(crate) mod identity;
#[cfg(not(loom))]
pub(crate) mod inbox;
#[cfg(not(loom))]
pub(crate) mod label;
#[cfg(not(loom))]
pub(crate) mod listener;
#[cfg(not(loom))]
pub(crate) mod loan;
#[cfg(not(loom))]
pub(crate) mod pair;
#[cfg(not(loom))]
pub(crate) mod publisher;
#[cfg(not(loom))]
pub(crate) mod rendezvous;
#[cfg(not(loom))]
pub(crate) mod runtime_dir;
#[cfg(not(loom))]
pub(crate) mod segment;
#[cfg(not(loom))]
pub(crate) mod subscriber;
