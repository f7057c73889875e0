//! The side shared by the queues that carry one way (`cas-ring`, the locked rings,
//! `posix-mq`): a [`Lane`] is one process's handle on one such queue, and a [`Lanes`] side
//! holds the one it sends into and the one it receives from.
//!
//! ```text
//! Pattern::Stream     child  --up-->   parent                  (one queue)
//! Pattern::PingPong   parent --down--> child --up--> parent    (two queues)
//! fan-in              producer 1..N --one queue--> consumer
//! ```
//!
//! [`Lanes`] is generic over the lane, so each queue's `push` and `pop` are compiled into its
//! own `send` and `recv`: no more dispatch in the timed loop than the one `dyn Side` call.

use super::{FanInSides, Pair, Pattern, Side};
use crate::error::LabError;

/// One process's handle on a queue that carries messages one way.
pub(crate) trait Lane: Sized + 'static {
    /// Another handle on the same queue, for another process.
    fn handle(&self) -> Result<Self, LabError>;

    /// Called after the fork: faults this process's pages of the queue in now rather than in
    /// the timed loop. The default does nothing.
    fn prefault(&self) {}

    /// Called after the fork, after [`Lane::prefault`]: finishes what needs both processes
    /// (the named semaphore's handles open it by name here). The default does nothing.
    fn start(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    /// Sends one message (waits while the queue is full).
    fn push(&mut self, msg: &[u8]) -> Result<(), LabError>;

    /// Receives one message into `buf` and returns its length (waits until one arrives).
    fn pop(&mut self, buf: &mut [u8]) -> Result<usize, LabError>;
}

/// A side over lanes: the one it sends into and the one it receives from, each absent when the
/// pattern does not use that direction.
pub(crate) struct Lanes<L> {
    mechanism: &'static str,
    tx: Option<L>,
    rx: Option<L>,
}

impl<L: Lane> Lanes<L> {
    fn boxed(mechanism: &'static str, tx: Option<L>, rx: Option<L>) -> Box<dyn Side> {
        Box::new(Self { mechanism, tx, rx })
    }

    fn not_this_way(&self) -> LabError {
        LabError::Unsupported {
            mechanism: self.mechanism,
            what: "this direction in the pattern it was set up for",
        }
    }
}

impl<L: Lane> Side for Lanes<L> {
    fn start(&mut self) -> Result<(), LabError> {
        for lane in self.tx.iter_mut().chain(self.rx.iter_mut()) {
            lane.prefault();
            lane.start()?;
        }
        Ok(())
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        match &mut self.tx {
            Some(lane) => lane.push(msg),
            None => Err(self.not_this_way()),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        match &mut self.rx {
            Some(lane) => lane.pop(buf),
            None => Err(self.not_this_way()),
        }
    }
}

/// Both sides of `mechanism` for `pattern`, over the queues `make` creates: one (up) for a
/// stream, two (up and down) for ping-pong.
pub(crate) fn pair<L: Lane>(
    mechanism: &'static str,
    pattern: Pattern,
    mut make: impl FnMut() -> Result<L, LabError>,
) -> Result<Pair, LabError> {
    let up = make()?;
    let (parent, child) = match pattern {
        Pattern::Stream => (
            Lanes::boxed(mechanism, None, Some(up.handle()?)),
            Lanes::boxed(mechanism, Some(up), None),
        ),
        Pattern::PingPong => {
            let down = make()?;
            (
                Lanes::boxed(mechanism, Some(down.handle()?), Some(up.handle()?)),
                Lanes::boxed(mechanism, Some(up), Some(down)),
            )
        }
    };
    Ok(Pair { parent, child })
}

/// The consumer and `producers` producer sides of `mechanism` over one `queue`.
pub(crate) fn fan_in<L: Lane>(
    mechanism: &'static str,
    producers: usize,
    queue: L,
) -> Result<FanInSides, LabError> {
    let producers = (0..producers)
        .map(|_| Ok(Lanes::boxed(mechanism, Some(queue.handle()?), None)))
        .collect::<Result<_, LabError>>()?;
    Ok(FanInSides {
        consumer: Lanes::boxed(mechanism, None, Some(queue)),
        producers,
    })
}
