//! The atomics facade: every atomic in shmsock goes through here, so the loom models
//! (`RUSTFLAGS="--cfg loom"`) exercise the real algorithms.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
