//! The send queue of a connection ([`Tx`]), and the one process-wide thread that writes
//! the queues whose owner has moved on ([`schedule`]).
//!
//! A `Conn` has no I/O thread of its own. When its caller sends message after message with
//! no pause between them (a stream), writing each with its own `send(2)` costs a system
//! call and a wake-up of the reader per message: on loopback TCP ~5 µs, 25x what libzmq
//! spends with its I/O thread. So a streaming `send` only appends the frame to the queue and
//! asks this thread to write the queue [`FLUSH_DELAY`] later, unless the queue already holds
//! a batch, which the caller writes at once. A lone message (the previous send ended more
//! than a few microseconds earlier) is still written at once by the caller, so its latency
//! does not change; a message at the end of a stream waits at most [`FLUSH_DELAY`] plus a
//! thread wake-up, and a caller that turns to `recv` writes the queue before it waits.
//!
//! In a child forked after the thread started (fork copies only the calling thread) there is
//! no flusher: streams there are written as lone sends are.
//!
//! The queue lives behind a mutex that the caller and this thread share; every write to
//! the socket happens under it, so bytes leave in order. The thread holds only weak
//! references: a connection dropped meanwhile is simply skipped (its drop flushed what it
//! could). While the kernel's buffer is full, the thread comes back after [`RETRY_INTERVAL`],
//! then less and less often, until the queue is empty; a write error is kept for the
//! owner's next call.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::SendFlags;

/// How long a streaming send's bytes may wait in the queue before this thread writes them.
pub(crate) const FLUSH_DELAY: Duration = Duration::from_micros(50);
/// How soon the thread tries again when the kernel's buffer was full; the wait doubles
/// with each full attempt, up to [`RETRY_INTERVAL_MAX`] (a peer that stopped reading costs
/// a few system calls a second, not a thousand).
const RETRY_INTERVAL: Duration = Duration::from_millis(1);
/// The longest wait between two attempts on a full socket.
const RETRY_INTERVAL_MAX: Duration = Duration::from_millis(100);
/// A send queue grown past this (for a burst) is freed once it is empty.
const KEEP_MAX_BYTES: usize = 4 << 20;

/// A connection's send queue: encoded frames not yet written, `buf[head..]`.
#[derive(Debug, Default)]
pub(crate) struct Tx {
    pub(crate) buf: Vec<u8>,
    head: usize,
    /// The flusher thread has a write of this queue planned.
    scheduled: bool,
    /// A write by the flusher thread failed: the owner reports it at its next call.
    failed: Option<Errno>,
}

impl Tx {
    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.buf.len() - self.head
    }

    /// The error a write by the flusher thread met, once.
    pub(crate) fn take_failure(&mut self) -> Option<Errno> {
        self.failed.take()
    }

    /// Writes as much of the queue as the kernel takes now, without waiting: `Ok` when it
    /// is empty or the kernel's buffer is full.
    pub(crate) fn write_to(&mut self, sock: &OwnedFd) -> Result<(), Errno> {
        while self.head < self.buf.len() {
            match rustix::net::send(
                sock,
                &self.buf[self.head..],
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => {
                    self.head += n;
                    if self.head == self.buf.len() {
                        self.buf.clear();
                        self.head = 0;
                        if self.buf.capacity() > KEEP_MAX_BYTES {
                            self.buf = Vec::new();
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Locks a queue; a panic elsewhere leaves it consistent (every update is one step).
pub(crate) fn lock(tx: &Mutex<Tx>) -> MutexGuard<'_, Tx> {
    tx.lock().unwrap_or_else(|p| p.into_inner())
}

/// A planned write.
struct Job {
    at: Instant,
    tx: Weak<Mutex<Tx>>,
    sock: Weak<OwnedFd>,
    /// The wait before the next attempt if this one finds the socket full.
    retry: Duration,
}

/// The flusher thread's plan.
struct Flusher {
    jobs: Mutex<Vec<Job>>,
    wake: Condvar,
    /// The process the thread runs in: a child forked after it started has no such thread
    /// (fork copies only the calling thread), so there sends are written at once.
    pid: rustix::process::Pid,
}

static FLUSHER: OnceLock<Option<Flusher>> = OnceLock::new();

/// Plans a write of `tx` to `sock` [`FLUSH_DELAY`] from now, unless one is planned already.
/// `false` if there is no flusher thread (it could not be started): write now instead.
pub(crate) fn schedule(tx: &Arc<Mutex<Tx>>, guard: &mut Tx, sock: &Arc<OwnedFd>) -> bool {
    if guard.scheduled {
        return true;
    }
    let Some(flusher) = FLUSHER.get_or_init(start).as_ref() else {
        return false;
    };
    if rustix::process::getpid() != flusher.pid {
        return false;
    }
    guard.scheduled = true;
    let job = Job {
        at: Instant::now() + FLUSH_DELAY,
        tx: Arc::downgrade(tx),
        sock: Arc::downgrade(sock),
        retry: RETRY_INTERVAL,
    };
    let mut jobs = flusher.jobs.lock().unwrap_or_else(|p| p.into_inner());
    jobs.push(job);
    if jobs.len() == 1 {
        flusher.wake.notify_one();
    }
    true
}

/// Starts the thread (once per process); `None` if the system refuses a thread.
fn start() -> Option<Flusher> {
    let spawned = std::thread::Builder::new()
        .name("shmsock-flush".into())
        .spawn(|| {
            // Wait until the cell holds the flusher this thread serves.
            let flusher = loop {
                if let Some(f) = FLUSHER.get() {
                    break f
                        .as_ref()
                        .expect("the thread runs only if the flusher exists");
                }
                std::thread::sleep(Duration::from_micros(100));
            };
            run(flusher)
        });
    match spawned {
        Ok(_) => Some(Flusher {
            jobs: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            pid: rustix::process::getpid(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the send-batching thread; streams are written message by message");
            None
        }
    }
}

/// The thread: writes each planned queue when its time comes.
fn run(flusher: &Flusher) -> ! {
    let mut due = Vec::new();
    loop {
        {
            let mut jobs = flusher.jobs.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let now = Instant::now();
                match jobs.iter().map(|j| j.at).min() {
                    None => {
                        jobs = flusher.wake.wait(jobs).unwrap_or_else(|p| p.into_inner());
                    }
                    Some(at) if at > now => {
                        jobs = flusher
                            .wake
                            .wait_timeout(jobs, at - now)
                            .map_or_else(|p| p.into_inner().0, |(g, _)| g);
                    }
                    Some(_) => break,
                }
            }
            let now = Instant::now();
            let mut i = 0;
            while i < jobs.len() {
                if jobs[i].at <= now {
                    due.push(jobs.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        for job in due.drain(..) {
            let (Some(tx), Some(sock)) = (job.tx.upgrade(), job.sock.upgrade()) else {
                continue;
            };
            let mut guard = lock(&tx);
            match guard.write_to(&sock) {
                Ok(()) if guard.queued() > 0 => {
                    // The kernel's buffer is full: come back soon.
                    let again = Job {
                        at: Instant::now() + job.retry,
                        tx: job.tx,
                        sock: job.sock,
                        retry: (job.retry * 2).min(RETRY_INTERVAL_MAX),
                    };
                    flusher
                        .jobs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(again);
                }
                Ok(()) => guard.scheduled = false,
                Err(e) => {
                    guard.failed = Some(e);
                    guard.scheduled = false;
                }
            }
        }
    }
}
