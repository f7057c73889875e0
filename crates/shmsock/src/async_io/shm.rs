//! The async `shm://` sides: a connection or a subscriber plus its doorbell and control
//! socket, registered with tokio's reactor, and the one waiting step they share (see the
//! module docs of `async_io`).

use std::future::{poll_fn, Future};
use std::os::fd::{AsFd, OwnedFd};
use std::task::Poll;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::reactor::{reactor_error, register, register_owned};
use crate::error::{Error, Result};
use crate::shm::doorbell::Doorbell;
use crate::shm::pair::ShmConn;
use crate::shm::ring::Frame;
use crate::shm::subscriber::ShmSubscriber;
use crate::shm::{doorbell, wait};
use crate::sync::AtomicU32;
use crate::vocabulary::Mode;

/// Longest sleep when a peer uses light barriers and the kernel refused us the heavy one
/// (a ring may then be missed; the sync waiters cap their sleeps the same way).
const UNSOUND_SLEEP_MAX: Duration = Duration::from_millis(1);

/// Which of our sleep flags a wait announces.
#[derive(Clone, Copy)]
pub(super) enum Dir {
    /// Waiting for a frame: `RX_SLEEPING`.
    Rx,
    /// Waiting for room: `TX_SLEEPING`.
    Tx,
}

/// A side that can announce a sleep to its peer.
pub(super) trait Sleeper {
    /// Our flag for `dir`, in our own segment.
    fn flag(&self, dir: Dir) -> &AtomicU32;
    /// Whether the peer notifies with light barriers (then we run the heavy one).
    fn peer_light(&self) -> bool;
    /// The endpoint, for errors.
    fn endpoint(&self) -> &str;
    /// The control socket (its hang-up is the peer's end).
    fn control_fd(&self) -> std::os::fd::BorrowedFd<'_>;
    /// Looks at the control socket: an error once the peer ended and everything it sent
    /// was taken.
    fn check_peer(&mut self) -> Result<bool>;
}

impl Sleeper for ShmConn {
    fn flag(&self, dir: Dir) -> &AtomicU32 {
        match dir {
            Dir::Rx => self.rx_sleeping_flag(),
            Dir::Tx => self.tx_sleeping_flag(),
        }
    }
    fn peer_light(&self) -> bool {
        ShmConn::peer_light(self)
    }
    fn endpoint(&self) -> &str {
        ShmConn::endpoint(self)
    }
    fn control_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        ShmConn::control_fd(self)
    }
    fn check_peer(&mut self) -> Result<bool> {
        ShmConn::check_peer(self)
    }
}

impl Sleeper for ShmSubscriber {
    fn flag(&self, _: Dir) -> &AtomicU32 {
        self.rx_sleeping_flag().0
    }
    fn peer_light(&self) -> bool {
        self.rx_sleeping_flag().1
    }
    fn endpoint(&self) -> &str {
        ShmSubscriber::endpoint(self)
    }
    fn control_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        ShmSubscriber::control_fd(self)
    }
    fn check_peer(&mut self) -> Result<bool> {
        ShmSubscriber::check_peer(self)
    }
}

/// The waiting loop of every async `shm://` call: `attempt` (which never waits) until it
/// gives a value; in between, announce the sleep in our `dir` flag, attempt once more, and
/// wait for the doorbell or the control socket. Cancel-safe if `attempt` is: the flag is
/// withdrawn when the future is dropped.
async fn drive<S: Sleeper, T>(
    side: &mut S,
    wakers: &Wakers,
    dir: Dir,
    mut attempt: impl FnMut(&mut S) -> Result<Option<T>>,
) -> Result<T> {
    loop {
        if let Some(v) = attempt(side)? {
            return Ok(v);
        }
        let sleeping = Announced::new(side, dir);
        if let Some(v) = attempt(sleeping.side)? {
            return Ok(v);
        }
        let control = wakers
            .wait(sleeping.side.endpoint(), sleeping.sound)
            .await?;
        drop(sleeping);
        if control {
            side.check_peer()?;
        }
    }
}

/// `Try` sends: `None` while the ring is full (`Try` on a full ring also looks at the
/// control socket: a dead peer is an error).
fn try_send(conn: &mut ShmConn, msg: &[u8]) -> Result<Option<()>> {
    match conn.send(msg, Mode::Try) {
        Err(Error::WouldBlock) => Ok(None),
        done => done.map(Some),
    }
}

/// An announced sleep: the flag is set (and fenced) while this lives, and withdrawn when it
/// is dropped, also when the future waiting in it is cancelled (a flag left set would only
/// cost the peer a doorbell write per message, but would cost it forever).
struct Announced<'a, S: Sleeper> {
    side: &'a mut S,
    dir: Dir,
    /// False if a ring may be missed (see [`UNSOUND_SLEEP_MAX`]).
    sound: bool,
}

impl<'a, S: Sleeper> Announced<'a, S> {
    fn new(side: &'a mut S, dir: Dir) -> Self {
        let sound = wait::prepare_doorbell_wait([side.flag(dir)], side.peer_light());
        Announced { side, dir, sound }
    }
}

impl<S: Sleeper> Drop for Announced<'_, S> {
    fn drop(&mut self) {
        wait::cancel_wait(self.side.flag(self.dir));
    }
}

/// A doorbell (the end we sleep on) and a control socket registered with the reactor.
struct Wakers {
    bell: AsyncFd<OwnedFd>,
    control: AsyncFd<OwnedFd>,
}

impl Wakers {
    fn new(endpoint: &str, bell: Doorbell, control: std::os::fd::BorrowedFd<'_>) -> Result<Self> {
        Ok(Wakers {
            bell: register_owned(endpoint, bell.into(), Interest::READABLE)?,
            control: register(endpoint, control, Interest::READABLE)?,
        })
    }

    /// Waits until the doorbell is rung or the control socket is readable (or, if not
    /// `sound`, [`UNSOUND_SLEEP_MAX`] passed); drains the doorbell. Returns whether the
    /// control socket is readable (look at it with `check_peer`).
    async fn wait(&self, endpoint: &str, sound: bool) -> Result<bool> {
        let mut cap = (!sound).then(|| Box::pin(tokio::time::sleep(UNSOUND_SLEEP_MAX)));
        poll_fn(|cx| {
            let mut woken = false;
            let mut control = false;
            if let Poll::Ready(guard) = self.bell.poll_read_ready(cx) {
                let mut guard = guard.map_err(|e| reactor_error(endpoint, e))?;
                // Drain before clearing: a ring after the drain makes a new edge, which
                // `clear_ready` does not discard.
                doorbell::drain(guard.get_inner().as_fd());
                guard.clear_ready();
                woken = true;
            }
            if let Poll::Ready(guard) = self.control.poll_read_ready(cx) {
                // The caller reads the socket right after: a later event re-arms it.
                guard.map_err(|e| reactor_error(endpoint, e))?.clear_ready();
                woken = true;
                control = true;
            }
            if let Some(cap) = cap.as_mut() {
                woken |= cap.as_mut().poll(cx).is_ready();
            }
            if woken {
                Poll::Ready(Ok(control))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// An async `shm://` side (a connection or a subscriber): the blocking side's non-waiting
/// steps, and the doorbell wait in between.
pub(super) struct AsyncShm<S> {
    side: S,
    wakers: Wakers,
}

/// An async `shm://` connection.
pub(super) type AsyncShmConn = AsyncShm<ShmConn>;
/// An async `shm://` subscriber.
pub(super) type AsyncShmSub = AsyncShm<ShmSubscriber>;

impl<S: Sleeper> AsyncShm<S> {
    /// Wraps a side whose peer was given `bell` in our hello.
    pub(super) fn new(side: S, bell: Doorbell) -> Result<Self> {
        let wakers = Wakers::new(side.endpoint(), bell, side.control_fd())?;
        Ok(AsyncShm { side, wakers })
    }

    /// The blocking side.
    pub(super) fn side(&self) -> &S {
        &self.side
    }

    /// The blocking side, mutable.
    pub(super) fn side_mut(&mut self) -> &mut S {
        &mut self.side
    }
}

impl AsyncShmConn {
    /// Sends `msg`, waiting for room. Cancel-safe: nothing is sent unless it completes.
    pub(super) async fn send(&mut self, msg: &[u8]) -> Result<()> {
        let AsyncShm { side, wakers } = self;
        drive(side, wakers, Dir::Tx, |conn| try_send(conn, msg)).await
    }

    /// Waits for the next frame (not consumed). Cancel-safe: nothing is consumed here.
    pub(super) async fn next_frame(&mut self) -> Result<Frame> {
        let AsyncShm { side, wakers } = self;
        drive(side, wakers, Dir::Rx, ShmConn::poll_frame).await
    }
}

impl AsyncShmSub {
    /// A message if one is published now, else [`Error::WouldBlock`].
    pub(super) fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.side.poll(buf)?.ok_or(Error::WouldBlock)
    }

    /// Receives the next message into `buf`. Cancel-safe: a message is taken only by the
    /// poll that returns it.
    pub(super) async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let AsyncShm { side, wakers } = self;
        drive(side, wakers, Dir::Rx, |sub| sub.poll(buf)).await
    }
}
