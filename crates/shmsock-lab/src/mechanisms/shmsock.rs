//! `shmsock` and `shmsock-busy`: the shmsock library's `shm://` transport.
//!
//! The same code with three wait strategies, on both sides: `shmsock-busy` spins
//! (`WaitStrategy::BusyPoll`), `shmsock` uses the default options (`WaitStrategy::Adaptive`:
//! spin for a budget, then sleep on a futex), `shmsock-blocking` sleeps on the futex after a
//! spin of at most 2 µs (`WaitStrategy::Blocking`), so in a round trip it pays a kernel
//! wake-up per message like a pipe does. The parent binds a [`Listener`] under a name
//! unique to this run (`shm://lab-<pid>-<n>`) *before* the fork; after the fork the child
//! connects and the parent accepts. Every message is one `Conn::send` / `Conn::recv`, so the
//! rows show the library's full cost: framing, validation of the peer's ring, wake-ups.
//!
//! The child must not drop its copy of the parent's listener (its `Drop` removes the name the
//! parent is accepting on), so [`Side::abandon`] forgets it instead. The accept has no timeout;
//! a child that cannot connect knocks on the rendezvous socket with a plain Unix connection
//! and hangs up, which fails the parent's handshake instead of leaving it waiting.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Inbox, Listener, Options, WaitStrategy};

use super::raw_ring::slots_len;
use super::{FanIn, FanInSides, Mechanism, Pair, Pattern, Side, RING_BYTES};
use crate::error::LabError;

/// Distinguishes the names bound by one process.
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// The shmsock library, with one wait strategy on both sides.
#[derive(Debug, Clone, Copy)]
pub struct Shmsock {
    name: &'static str,
    wait: WaitStrategy,
}

impl Shmsock {
    /// Both sides spin (`WaitStrategy::BusyPoll`): the `shmsock-busy` row.
    pub fn busy_poll() -> Self {
        Self {
            name: "shmsock-busy",
            wait: WaitStrategy::BusyPoll,
        }
    }

    /// Default options (`WaitStrategy::Adaptive`): the `shmsock` row.
    pub fn adaptive() -> Self {
        Self {
            name: "shmsock",
            wait: WaitStrategy::default(),
        }
    }

    /// Both sides sleep almost at once (`WaitStrategy::Blocking`): the `shmsock-blocking` row.
    pub fn blocking() -> Self {
        Self {
            name: "shmsock-blocking",
            wait: WaitStrategy::Blocking,
        }
    }

    /// The ring has as many bytes as `raw-ring`'s for `size`-byte messages ([`RING_BYTES`],
    /// or eight messages' worth when that is more: 1 MiB messages get 8 MiB, which holds seven
    /// of our framed messages). Half that, three 1 MiB frames, streamed `Blocking` at 0.67-0.84x
    /// the raw ring: each side found the ring empty or full often enough to sleep and wait for
    /// a wake-up, where the raw ring, spinning, never noticed the shallower buffer.
    fn options(&self, size: usize) -> Options {
        let capacity = RING_BYTES.max(slots_len(size).next_power_of_two());
        Options::new()
            .ring_capacity(capacity)
            .wait_strategy(self.wait)
    }
}

impl Mechanism for Shmsock {
    fn name(&self) -> &'static str {
        self.name
    }

    fn setup(&self, _pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let (parent, child) = Connection::pair(self.options(size), self.options(size))?;
        Ok(Pair {
            parent: Box::new(parent),
            child: Box::new(child),
        })
    }
}

/// One end of a shmsock connection made across the fork: the parent binds a listener before
/// it and accepts in `start`, the child connects in `start`.
// The side is built once per run; boxing the connection would put a pointer chase in every
// measured send and receive instead.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Connection {
    /// Parent, before `start`.
    Listening(Listener),
    /// Child, before `start`.
    ToConnect {
        endpoint: String,
        options: Options,
        socket_path: PathBuf,
    },
    /// Either, after `start`.
    Connected(Conn),
    /// After a failed `start`.
    Failed,
}

impl Connection {
    /// Both ends, before the fork: the parent's, listening on a fresh endpoint with `listen`,
    /// and the child's, which connects with `connect`.
    pub(crate) fn pair(listen: Options, connect: Options) -> Result<(Self, Self), LabError> {
        let endpoint = unique_endpoint();
        let listener = Listener::bind_with(&endpoint, listen).map_err(lib("bind"))?;
        let socket_path = listener.socket_path().to_path_buf();
        let child = Connection::ToConnect {
            endpoint,
            options: connect,
            socket_path,
        };
        Ok((Connection::Listening(listener), child))
    }

    /// Accepts or connects (once; later calls do nothing).
    pub(crate) fn start(&mut self) -> Result<(), LabError> {
        *self = match std::mem::replace(self, Connection::Failed) {
            Connection::Listening(listener) => {
                Connection::Connected(listener.accept().map_err(lib("accept"))?)
            }
            // An empty socket path: the peer is an inbox, bound after the fork.
            Connection::ToConnect {
                endpoint,
                options,
                socket_path,
            } if socket_path.as_os_str().is_empty() => Connection::Connected(
                connect_retrying(&endpoint, &options).map_err(lib("connect"))?,
            ),
            Connection::ToConnect {
                endpoint,
                options,
                socket_path,
            } => match Conn::connect_with(&endpoint, options) {
                Ok(conn) => Connection::Connected(conn),
                Err(err) => {
                    // Wake the parent's accept so it fails instead of waiting forever.
                    drop(UnixStream::connect(&socket_path));
                    return Err(lib("connect")(err));
                }
            },
            other => other,
        };
        Ok(())
    }

    /// The connection, once started.
    #[inline]
    pub(crate) fn conn(&mut self) -> Result<&mut Conn, LabError> {
        match self {
            Connection::Connected(conn) => Ok(conn),
            _ => Err(LabError::Shmsock {
                what: "send/recv",
                detail: "the side was not started".into(),
            }),
        }
    }
}

impl Side for Connection {
    fn start(&mut self) -> Result<(), LabError> {
        Connection::start(self)
    }

    fn abandon(self: Box<Self>) {
        // Dropping a Listener removes its name, which the other process still accepts on.
        std::mem::forget(self);
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        self.conn()?.send(msg).map_err(lib("send"))
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        self.conn()?.recv(buf).map_err(lib("recv"))
    }
}

pub(crate) fn lib(what: &'static str) -> impl FnOnce(shmsock::Error) -> LabError {
    move |err| LabError::Shmsock {
        what,
        detail: err.to_string(),
    }
}

/// How long a writer keeps knocking on an inbox that is not bound yet.
const INBOX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// shmsock's many-writers pattern for the contention experiment: the consumer is an
/// [`Inbox`] (one SPSC ring per writer, round-robin turns, a doorbell per writer), every producer a
/// plain [`Conn`] connected to it. The inbox runs an accept thread, so it is bound *after*
/// the forks (in the consumer's `start`), and producers retry their connect until it is.
#[derive(Debug, Clone, Copy)]
pub struct ShmsockInbox;

impl FanIn for ShmsockInbox {
    fn name(&self) -> &'static str {
        "shmsock-inbox"
    }

    fn setup_fan_in(&self, producers: usize, size: usize) -> Result<FanInSides, LabError> {
        let endpoint = unique_endpoint();
        let options = Shmsock::adaptive().options(size);
        Ok(FanInSides {
            consumer: Box::new(InboxSide::ToBind {
                endpoint: endpoint.clone(),
                options: options.clone(),
            }),
            producers: (0..producers)
                .map(|_| -> Box<dyn Side> {
                    Box::new(Connection::ToConnect {
                        endpoint: endpoint.clone(),
                        options: options.clone(),
                        socket_path: PathBuf::new(),
                    })
                })
                .collect(),
        })
    }
}

enum InboxSide {
    ToBind { endpoint: String, options: Options },
    Bound(Inbox),
    Failed,
}

impl Side for InboxSide {
    fn start(&mut self) -> Result<(), LabError> {
        *self = match std::mem::replace(self, InboxSide::Failed) {
            InboxSide::ToBind { endpoint, options } => {
                InboxSide::Bound(Inbox::bind_with(&endpoint, options).map_err(lib("bind"))?)
            }
            other => other,
        };
        Ok(())
    }

    fn send(&mut self, _msg: &[u8]) -> Result<(), LabError> {
        Err(LabError::Shmsock {
            what: "send",
            detail: "an inbox only receives".into(),
        })
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        match self {
            InboxSide::Bound(inbox) => inbox.recv(buf).map_err(lib("inbox recv")),
            _ => Err(LabError::Shmsock {
                what: "recv",
                detail: "the inbox was not bound".into(),
            }),
        }
    }
}

/// Connects a producer to an inbox that the consumer binds after the fork.
fn connect_retrying(endpoint: &str, options: &Options) -> Result<Conn, Error> {
    retry_refused(|| Conn::connect_with(endpoint, options.clone()))
}

/// Calls `connect` until it does not fail with [`Error::ConnectionRefused`] (the other
/// process has not bound the name yet), for up to 10 s: the trick for servers that run a
/// background accept thread ([`Inbox`], `Publisher`) and are therefore bound after the fork.
pub(crate) fn retry_refused<T>(mut connect: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let deadline = Instant::now() + INBOX_CONNECT_TIMEOUT;
    loop {
        match connect() {
            Err(Error::ConnectionRefused { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

/// A `shm://` name unique to this process and call: `shm://lab-<pid>-<n>`.
pub(crate) fn unique_endpoint() -> String {
    format!(
        "shm://lab-{}-{}",
        std::process::id(),
        NEXT_NAME.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_has_the_raw_rings_bytes_for_its_message_size() {
        for size in [64, 4096, 64 << 10, 1 << 20, 4 << 20] {
            let capacity = Shmsock::blocking().options(size).get_ring_capacity();
            assert_eq!(
                capacity,
                slots_len(size).max(RING_BYTES),
                "{size} B messages"
            );
            // Whole frames: the message, its 16-byte header rounded to a line.
            let frames = capacity / (size + 64);
            assert!(frames >= 7, "{size} B messages: {frames} frames");
        }
        // The raw ring's eight 1 MiB slots.
        let capacity = Shmsock::blocking().options(1 << 20).get_ring_capacity();
        assert_eq!(capacity, 8 << 20);
    }
}
