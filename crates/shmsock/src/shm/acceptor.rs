//! Connection setup that no peer can stall: the handshakes of one bound name run side by
//! side ([`Handshakes`]), each with one deadline for the whole exchange, driven by `poll`;
//! and the accept thread of a `Publisher` or an `Inbox` ([`Acceptor`]), which runs them and
//! queues the peers for the owner, who takes them in at its next call
//! ([`Acceptor::take_into`]) without a lock on its fast path.
//!
//! ```text
//!  poll(listening socket, every handshake's socket; until the nearest deadline)
//!   ├─ listening socket ready: accept what the kernel queued, greet each (credentials
//!   │  checked, our segment made or the spare taken: nothing waits for the peer)
//!   ├─ a handshake's socket ready: read what arrived of its hello; once whole, validate
//!   │  it and answer with our hello and the acknowledgement (the side's `Admit::finish`),
//!   │  hand the peer over; a peer that fails gets a refusal
//!   └─ a deadline passed: drop that handshake
//! ```
//!
//! A peer that sends nothing, drip-feeds its hello or sends garbage occupies one entry of a
//! bounded table until its deadline and costs the others one `poll` wake-up per piece it
//! sends. Every failure is logged (`tracing` warn, with the peer's pid) and dropped: only
//! our own listening socket failing is an error.

use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use super::hello::HELLO_SPIN;
use super::rendezvous::{BoundName, Greeting, Offer, Validated};
use crate::error::{Error, Result};
use crate::sync::{AtomicBool, Ordering};
use crate::sys::timespec;

/// How long the accept thread waits in `poll` before it looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// Most handshakes under way at once on one bound name. A newcomer beyond that evicts the
/// oldest: an honest connector's hello follows its `connect` within microseconds, so the
/// oldest handshake under way is one whose peer is not speaking.
pub(crate) const HANDSHAKES_AT_ONCE: usize = 32;

/// Most connections taken from the kernel's queue in one turn: half the table, so a flood
/// of connections cannot evict handshakes whose answers are already waiting to be read.
const ACCEPTS_PER_TURN: usize = HANDSHAKES_AT_ONCE / 2;

/// What one kind of bound socket (listener, publisher, inbox) does with a connection.
pub(crate) trait Admit {
    /// The segment we offer in our hello.
    type Offer: Offer;
    /// What a handshake keeps from its start to its end besides the greeting (a doorbell,
    /// a loan pool).
    type Kept;
    /// What a completed handshake gives the owner.
    type Peer;

    /// Starts the handshake on an accepted socket (see `rendezvous::greet`).
    fn greet(
        &mut self,
        endpoint: &str,
        sock: UnixStream,
        deadline: Instant,
    ) -> Result<(Greeting<Self::Offer>, Self::Kept)>;

    /// Called before a wait with no handshake under way: a moment to make ahead what the
    /// next handshake needs (a `Listener`'s spare segment), off the path of any connection.
    fn prepare(&mut self, _endpoint: &str) {}

    /// Takes back our offer of a handshake that failed or ran out of time before our hello
    /// left (nobody else has it, so it can serve the next peer).
    fn recycle(&mut self, _offer: Self::Offer) {}

    /// Completes a handshake whose hello was validated (sends our hello and the
    /// acknowledgement, never waits) and hands the peer to `deliver`.
    fn finish(
        &mut self,
        endpoint: &str,
        hello: Validated<Self::Offer>,
        kept: Self::Kept,
        deliver: &mut dyn FnMut(Self::Peer),
    ) -> Result<()>;
}

/// The handshakes under way on one bound name.
pub(crate) struct Handshakes<A: Admit> {
    admit: A,
    timeout: Duration,
    /// Oldest first.
    pending: VecDeque<(Greeting<A::Offer>, A::Kept)>,
}

/// Logs a handshake that failed and is dropped.
fn dropped(endpoint: &str, pid: Option<i32>, error: &Error) {
    match pid {
        Some(pid) => {
            tracing::warn!(endpoint, peer_pid = pid, %error, "handshake failed; peer dropped")
        }
        None => tracing::warn!(endpoint, %error, "handshake failed; peer dropped"),
    }
}

/// A handshake past its deadline, having received `what` of the hello.
fn out_of_time(endpoint: &str, what: &str, timeout: Duration) -> Error {
    Error::io(
        format!("{endpoint}: handshake"),
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} within {timeout:?}"),
        ),
    )
}

impl<A: Admit> Handshakes<A> {
    /// No handshake under way yet; each gets `timeout` for the whole exchange.
    pub(crate) fn new(admit: A, timeout: Duration) -> Self {
        Handshakes {
            admit,
            timeout,
            pending: VecDeque::new(),
        }
    }

    /// Whether handshakes are under way.
    #[cfg(feature = "tokio")]
    pub(crate) fn is_busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// One turn: waits at most `wait` (`None`: no limit) for a connection, a piece of a
    /// hello or the nearest deadline; then advances every handshake whose socket is ready,
    /// drops those past their deadline, and starts one for each connection the kernel
    /// queued. Completed peers go to `deliver`. Nothing a peer does makes this fail: an
    /// error is our own listening socket failing.
    pub(crate) fn turn(
        &mut self,
        bound: &BoundName,
        wait: Option<Duration>,
        deliver: &mut dyn FnMut(A::Peer),
    ) -> Result<()> {
        let endpoint = bound.endpoint();
        if self.pending.is_empty() {
            self.admit.prepare(endpoint);
        }
        let (listening, ready) = self.poll(bound, wait)?;
        let now = Instant::now();
        let before = std::mem::take(&mut self.pending);
        for ((mut greeting, kept), ready) in before.into_iter().zip(ready) {
            let pid = greeting.pid();
            let in_time = now < greeting.deadline();
            // A handshake that ends here before our hello left: logged, and our offer back.
            let (error, offer) = match ready.then(|| greeting.read(endpoint)) {
                None | Some(Ok(false)) if in_time => {
                    self.pending.push_back((greeting, kept));
                    continue;
                }
                None => {
                    let e = out_of_time(endpoint, "no complete hello", self.timeout);
                    (e, greeting.into_offer())
                }
                Some(Ok(false)) => {
                    let e = out_of_time(endpoint, "only part of a hello", self.timeout);
                    (e, greeting.into_offer())
                }
                Some(Ok(true)) => match greeting.validate(endpoint) {
                    Ok(hello) => {
                        if let Err(e) = self.admit.finish(endpoint, hello, kept, deliver) {
                            dropped(endpoint, Some(pid), &e);
                        }
                        continue;
                    }
                    Err(failed) => failed,
                },
                Some(Err(e)) => (e, greeting.into_offer()),
            };
            dropped(endpoint, Some(pid), &error);
            self.admit.recycle(offer);
        }
        if listening {
            self.accept_queued(bound)?;
        }
        Ok(())
    }

    /// Waits for the listening socket or a handshake's socket (or the nearest deadline, or
    /// `wait`); returns which are ready, the listening socket first.
    fn poll(&self, bound: &BoundName, wait: Option<Duration>) -> Result<(bool, Vec<bool>)> {
        let start = Instant::now();
        let mut fds = Vec::with_capacity(1 + self.pending.len());
        fds.push(PollFd::new(bound.listener(), PollFlags::IN));
        fds.extend(
            self.pending
                .iter()
                .map(|(g, _)| PollFd::new(g.socket(), PollFlags::IN)),
        );
        // Handshakes accepted less than `HELLO_SPIN` ago: their hellos are due any moment,
        // so look without sleeping until then (never past `wait`).
        let spin_until = self
            .pending
            .iter()
            .filter_map(|(g, _)| g.deadline().checked_sub(self.timeout))
            .max()
            .map(|accepted| accepted + HELLO_SPIN)
            .map(|until| wait.map_or(until, |w| until.min(start + w)));
        let poll_err = |e| Error::io(format!("{}: poll", bound.endpoint()), e);
        let mut found = false;
        if let Some(until) = spin_until {
            let zero = timespec(Duration::ZERO);
            while !found && Instant::now() < until {
                match rustix::event::poll(&mut fds, Some(&zero)) {
                    Ok(0) | Err(rustix::io::Errno::INTR) => std::thread::yield_now(),
                    Ok(_) => found = true,
                    Err(e) => return Err(poll_err(e)),
                }
            }
        }
        if !found {
            // Whatever the spin took comes off `wait`; the nearest deadline is absolute.
            let now = Instant::now();
            let left = wait.map(|w| w.saturating_sub(now - start));
            let nearest = self.pending.iter().map(|(g, _)| g.deadline()).min();
            let timeout = match (left, nearest) {
                (w, None) => w,
                (None, Some(d)) => Some(d.saturating_duration_since(now)),
                (Some(w), Some(d)) => Some(w.min(d.saturating_duration_since(now))),
            };
            match rustix::event::poll(&mut fds, timeout.map(timespec).as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {
                    return Ok((false, vec![false; self.pending.len()]))
                }
                Err(e) => return Err(poll_err(e)),
            }
        }
        let ready = |f: &PollFd<'_>| !f.revents().is_empty();
        Ok((ready(&fds[0]), fds[1..].iter().map(ready).collect()))
    }

    /// Starts a handshake for each connection the kernel queued (up to
    /// [`ACCEPTS_PER_TURN`]), evicting the oldest under way beyond [`HANDSHAKES_AT_ONCE`].
    fn accept_queued(&mut self, bound: &BoundName) -> Result<()> {
        let endpoint = bound.endpoint();
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(sock) = bound.try_accept()? else {
                break;
            };
            if self.pending.len() >= HANDSHAKES_AT_ONCE {
                if let Some((oldest, _)) = self.pending.pop_front() {
                    tracing::warn!(
                        endpoint,
                        peer_pid = oldest.pid(),
                        under_way = HANDSHAKES_AT_ONCE,
                        "handshake dropped for a newcomer: too many under way"
                    );
                    self.admit.recycle(oldest.into_offer());
                }
            }
            // For the log, should the greeting fail (it checks the credentials itself).
            let pid = rustix::net::sockopt::socket_peercred(&sock)
                .ok()
                .map(|cred| cred.pid.as_raw_nonzero().get());
            let deadline = Instant::now() + self.timeout;
            match self.admit.greet(endpoint, sock, deadline) {
                Ok(started) => self.pending.push_back(started),
                Err(e) => dropped(endpoint, pid, &e),
            }
        }
        Ok(())
    }
}

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
    /// Starts the thread: it runs the handshakes of every connection to `bound` with
    /// `admit` (each within `timeout`) and queues the peers that complete them.
    pub(crate) fn spawn<A>(bound: BoundName, admit: A, timeout: Duration) -> Result<Self>
    where
        A: Admit<Peer = T> + Send + 'static,
    {
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
                    let mut handshakes = Handshakes::new(admit, timeout);
                    while !queue.stop.load(Ordering::Relaxed) {
                        let turn =
                            handshakes.turn(&bound, Some(ACCEPT_POLL), &mut |p| queue.push(p));
                        if let Err(e) = turn {
                            tracing::warn!(endpoint = bound.endpoint(), error = %e, "accepting");
                            std::thread::sleep(ACCEPT_POLL);
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
    #[inline]
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
