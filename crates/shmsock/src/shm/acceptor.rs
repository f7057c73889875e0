//! The accept thread of a `Publisher` or an `Inbox`: it runs the handshake with each peer
//! that connects to the bound name and queues the peers for the owner, which takes them in
//! at its next call ([`Acceptor::take_into`]) without a lock on its fast path.

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::rendezvous::BoundName;
use crate::error::{Error, Result};
use crate::sync::{AtomicBool, Ordering};

/// How long the accept thread waits in `poll` before it looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// Peers accepted by the thread, waiting for the owner.
pub(crate) struct Queue<T> {
    peers: Mutex<Vec<T>>,
    /// Set (Release) after a push; swapped back by the owner (Acquire).
    pending: AtomicBool,
    stop: AtomicBool,
}

impl<T> Queue<T> {
    /// Queues an accepted peer for the owner.
    pub(crate) fn push(&self, peer: T) {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(peer);
        self.pending.store(true, Ordering::Release);
    }

    /// Whether peers are queued and not taken in yet.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }
}

/// An accept thread and the queue it fills. Dropping it (or [`Acceptor::stop`]) stops the
/// thread and waits for it; peers it queued stay to be taken in.
pub(crate) struct Acceptor<T> {
    queue: Arc<Queue<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Acceptor<T> {
    /// Starts the thread: for every connection to `bound`, `handshake` runs with the socket
    /// and the queue (it pushes the peer if the handshake succeeds; a refused or broken
    /// peer has had its error and is simply not queued).
    pub(crate) fn spawn(
        bound: BoundName,
        mut handshake: impl FnMut(&str, UnixStream, &Queue<T>) + Send + 'static,
    ) -> Result<Self> {
        let queue = Arc::new(Queue {
            peers: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let endpoint = bound.endpoint().to_owned();
        let thread = {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("shmsock-accept {endpoint}"))
                .spawn(move || {
                    while !queue.stop.load(Ordering::Relaxed) {
                        match bound.accept(Some(ACCEPT_POLL)) {
                            Ok(sock) => handshake(bound.endpoint(), sock, &queue),
                            Err(Error::TimedOut) => {}
                            Err(_) => std::thread::sleep(ACCEPT_POLL),
                        }
                    }
                })
                .map_err(|e| Error::io(format!("{endpoint}: spawning the accept thread"), e))?
        };
        Ok(Acceptor {
            queue,
            thread: Some(thread),
        })
    }
}

impl<T> Acceptor<T> {
    /// Appends the peers queued since the last call to `out` (a plain load first: this runs
    /// on every blocking call of the owner, and a swap is a locked read-modify-write).
    pub(crate) fn take_into(&self, out: &mut Vec<T>) {
        if self.queue.pending.load(Ordering::Relaxed)
            && self.queue.pending.swap(false, Ordering::Acquire)
        {
            out.append(&mut self.queue.peers.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Whether peers are queued and not taken in yet.
    pub(crate) fn is_pending(&self) -> bool {
        self.queue.is_pending()
    }

    /// Stops the thread and waits for it (idempotent).
    pub(crate) fn stop(&mut self) {
        self.queue.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<T> Drop for Acceptor<T> {
    fn drop(&mut self) {
        self.stop();
    }
}
