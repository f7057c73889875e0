//! tokio integration (the `tokio` cargo feature): [`AsyncListener`], [`AsyncConn`] and
//! [`AsyncSubscriber`] over `shm://`, `unix://` and `tcp://`.
//!
//! # How an async `shm://` receiver sleeps
//! A blocking receiver sleeps on the sender's futex word; a tokio task cannot. So an async
//! side creates a **doorbell** (a Unix datagram socket pair) and passes its ringing end in
//! its hello (the handshake's `HELLO_FLAG_DOORBELL`, as an [`Inbox`](crate::Inbox) does). Its
//! peer then wakes it by ringing the doorbell (a one-byte `send` with `MSG_DONTWAIT`, which
//! can never block the peer) instead of waking a futex, for data *and* for
//! room: a sender rings it after publishing a frame, a receiver after publishing its consumed
//! position, each only when the async side announced in its own segment that it sleeps
//! (`RX_SLEEPING`, `TX_SLEEPING`). The waiting step follows the eventcount of `shm::wait`
//! exactly:
//!
//! ```text
//!  async side                                     peer (sync or async)
//!  try: frame? room?  ── yes ──▶ done             publish frame / consumed position
//!  flag = 1; fence (or membarrier)  ◀── pairs ──▶ fence
//!  re-check            ── yes ──▶ flag = 0; done  if flag == 1: ring the doorbell
//!  await readable(doorbell | control socket)
//!  drain the doorbell; flag = 0; loop
//! ```
//!
//! The doorbell and the connection's Unix control socket are registered with tokio's
//! reactor ([`AsyncFd`](tokio::io::unix::AsyncFd)): a ring, or the peer's goodbye or death
//! (the socket becomes readable on hang-up), wakes the task. Nothing polls: an idle async
//! receiver costs no CPU at all, and a dead peer is noticed at once rather than at the next
//! periodic check. There is no spinning either: a task that spun would hold its executor
//! thread, so an async receiver pays the kernel wake-up (tens of µs across CPUs) that a
//! blocking [`Conn`](crate::Conn) avoids by spinning first. Use a blocking `Conn` on a
//! dedicated thread for the lowest latency.
//!
//! # `tcp://` and `unix://`
//! The existing ZMTP connection code already does every read and write with `MSG_DONTWAIT`
//! and keeps partial frames in its own buffers, so its non-waiting mode (`try_*`) is exactly
//! the step an async loop needs. The async types register (a duplicate of) the socket with
//! tokio's reactor and run that step whenever it is readable (or writable, while bytes are
//! pending): native readiness, no I/O thread and no extra copy. Only the handshakes (connect
//! and ZMTP greeting, or the shm hello with fd passing, bounded by
//! [`HANDSHAKE_TIMEOUT`](crate::HANDSHAKE_TIMEOUT)) run on tokio's blocking pool
//! (`spawn_blocking`), so a slow or hostile peer never stalls an executor thread.
//!
//! # Runtime requirements
//! A tokio runtime with I/O and time enabled (`#[tokio::main]`, or a builder with
//! `enable_all()`); current-thread and multi-thread runtimes both work.

mod conn;
mod net;
mod reactor;
mod shm;
mod subscriber;

pub use conn::{AsyncConn, AsyncListener};
pub use subscriber::AsyncSubscriber;
