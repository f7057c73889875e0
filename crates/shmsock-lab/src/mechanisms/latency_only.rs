//! What the latency-only mechanisms share: refusing to stream, and (for those that carry one
//! word) the word "message".
//!
//! [`LatencyOnly`] is the one [`Mechanism`] for "this mechanism only ping-pongs": it supports
//! [`Pattern::PingPong`] only and refuses [`Pattern::Stream`] with the mechanism's own reason. `floor`, `futex`, `eventfd`, `signal`,
//! `signalfd` and `udp` are such.
//!
//! All but `udp` move no payload, only a word: a "message" is its first [`WORD_BYTES`] bytes
//! (the sequence number, little-endian). They differ only in how one process hands a word to
//! the other and how the other waits for it, which is all a `Doorbell` says; `WordSide`
//! turns a doorbell into a [`Side`] (the size checks and the encoding, written once). It is
//! generic, so each mechanism's `ring` and `wait` are compiled into its own `send` and `recv`:
//! the timed loop pays no more dispatch than before (the one `dyn Side` call every mechanism
//! pays).

use std::rc::Rc;

use super::{Mechanism, Pair, Pattern, Side};
use crate::error::LabError;
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

/// Bytes a word mechanism's "message" carries: one `u64`, the sequence number.
pub const WORD_BYTES: usize = 8;

/// What a latency-only mechanism's messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// One word ([`WORD_BYTES`]) whatever the message size.
    Word,
    /// The whole message, up to this many bytes.
    UpTo(usize),
}

/// A mechanism that only ping-pongs: it has a latency row and no throughput row.
#[derive(Debug, Clone, Copy)]
pub struct LatencyOnly {
    name: &'static str,
    no_stream: &'static str,
    carries: Carries,
    ping_pong: fn(usize) -> Result<Pair, LabError>,
}

impl LatencyOnly {
    /// The mechanism `name`, which cannot stream for the reason `no_stream` gives
    /// (`"streaming (...)"`), carries what `carries` says, and whose sides for `size`-byte
    /// messages `ping_pong(size)` creates, before the fork.
    pub const fn new(
        name: &'static str,
        no_stream: &'static str,
        carries: Carries,
        ping_pong: fn(usize) -> Result<Pair, LabError>,
    ) -> Self {
        Self {
            name,
            no_stream,
            carries,
            ping_pong,
        }
    }
}

impl Mechanism for LatencyOnly {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, pattern: Pattern) -> bool {
        pattern == Pattern::PingPong
    }

    fn payload_len(&self, size: usize) -> usize {
        match self.carries {
            Carries::Word => WORD_BYTES,
            Carries::UpTo(_) => size,
        }
    }

    fn max_message(&self) -> usize {
        match self.carries {
            Carries::Word => usize::MAX,
            Carries::UpTo(max) => max,
        }
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        match pattern {
            Pattern::PingPong => (self.ping_pong)(size),
            Pattern::Stream => Err(LabError::Unsupported {
                mechanism: self.name,
                what: self.no_stream,
            }),
        }
    }
}

impl LatencyOnly {
    /// A word mechanism ([`Carries::Word`]) whose sides are [`WordSide`]s over doorbells `B`.
    pub(crate) const fn word<B: Doorbell + 'static>(
        name: &'static str,
        no_stream: &'static str,
    ) -> Self {
        Self::new(name, no_stream, Carries::Word, word_pair::<B>)
    }
}

/// How one side of a word mechanism hands a word to its peer and waits for the peer's.
pub(crate) trait Doorbell: Sized {
    /// Both doorbells, the parent's and the child's, before the fork.
    fn pair() -> Result<(Self, Self), LabError>;

    /// Finishes setup after the fork; the default does nothing.
    fn start(&mut self) -> Result<(), LabError> {
        Ok(())
    }

    /// Hands `word` to the peer and wakes it.
    fn ring(&mut self, word: u64) -> Result<(), LabError>;

    /// Waits for the peer's next word and returns it.
    fn wait(&mut self) -> Result<u64, LabError>;
}

/// The [`Side`] of a word mechanism: checks the sizes, encodes the word, and leaves the rest to
/// its [`Doorbell`].
struct WordSide<B>(B);

/// Both sides of a word mechanism over doorbells `B` (the message size does not matter).
fn word_pair<B: Doorbell + 'static>(_size: usize) -> Result<Pair, LabError> {
    let (parent, child) = B::pair()?;
    Ok(Pair {
        parent: Box::new(WordSide(parent)),
        child: Box::new(WordSide(child)),
    })
}

/// The two cache lines a side of a [`line_pair`] uses, in their shared mapping.
pub(crate) struct Lines {
    /// The mapping.
    pub(crate) region: Rc<SharedRegion>,
    /// Offset of the line this side writes.
    pub(crate) tx: usize,
    /// Offset of the line this side reads.
    pub(crate) rx: usize,
}

/// Both doorbells of a word mechanism over two cache lines of one shared mapping: line 0
/// written only by the parent (ping), line 1 only by the child (pong). `bell` makes a side's
/// doorbell from its [`Lines`].
pub(crate) fn line_pair<B>(bell: impl Fn(Lines) -> B) -> Result<(B, B), LabError> {
    const PING: usize = 0;
    const PONG: usize = CACHE_LINE_BYTES;
    let region = Rc::new(SharedRegion::new(2 * CACHE_LINE_BYTES)?);
    let lines = |tx, rx| Lines {
        region: Rc::clone(&region),
        tx,
        rx,
    };
    Ok((bell(lines(PING, PONG)), bell(lines(PONG, PING))))
}

impl<D: Doorbell> Side for WordSide<D> {
    fn start(&mut self) -> Result<(), LabError> {
        self.0.start()
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        let word = msg
            .first_chunk::<WORD_BYTES>()
            .map(|b| u64::from_le_bytes(*b))
            .ok_or(LabError::WrongSize {
                len: msg.len(),
                size: WORD_BYTES,
            })?;
        self.0.ring(word)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let len = buf.len();
        let out = buf
            .first_chunk_mut::<WORD_BYTES>()
            .ok_or(LabError::WrongSize {
                len,
                size: WORD_BYTES,
            })?;
        *out = self.0.wait()?.to_le_bytes();
        Ok(WORD_BYTES)
    }
}
