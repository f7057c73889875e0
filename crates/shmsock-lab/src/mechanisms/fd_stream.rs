//! The byte-stream mechanisms (`pipe`, `fifo`, `uds-stream`, `tcp`): one [`FdStream`] each,
//! which differ only in how they make a channel, and the side they share.
//!
//! A pipe (anonymous or named) carries one way, so ping-pong takes two and streaming one; a
//! socket connection carries both ways, so each side keeps one socket (and a duplicate of it to
//! write to) whatever the pattern.
//!
//! A byte stream has no message boundaries, so a message is exactly the `size` bytes the pair
//! was set up for: `send` writes them all (looping on short writes), `recv` reads exactly that
//! many (looping on short reads, the `read_exact` idiom). End of file while reading, or a broken
//! pipe while writing, means the peer is gone and becomes [`LabError::PeerClosed`]. Reads and
//! writes block in the kernel; nothing here spins.

use std::os::fd::OwnedFd;

use rustix::io::{read, write, Errno};

use super::{check_len, message_buf, Mechanism, Pair, Pattern, Side};
use crate::error::LabError;

/// Makes one channel: a pair of connected descriptors.
pub type MakeChannel = fn() -> Result<(OwnedFd, OwnedFd), LabError>;

/// What one channel of a byte-stream mechanism carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// One way: the channel is (read end, write end); ping-pong makes a second one.
    OneWay,
    /// Both ways: the channel is (parent's end, child's end) of one connection.
    Duplex,
}

/// A byte-stream mechanism: its name, how it makes a channel and what a channel carries.
#[derive(Debug, Clone, Copy)]
pub struct FdStream {
    name: &'static str,
    channel: MakeChannel,
    ends: Ends,
}

impl FdStream {
    /// The mechanism `name`, whose channels `channel` makes and carry what `ends` says.
    pub const fn new(name: &'static str, channel: MakeChannel, ends: Ends) -> Self {
        Self {
            name,
            channel,
            ends,
        }
    }
}

impl Mechanism for FdStream {
    fn name(&self) -> &'static str {
        self.name
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let name = self.name;
        let side = |rx, tx| FdStreamSide::new(name, rx, tx, size);
        let (up_read, up_write) = (self.channel)()?;
        let (parent, child) = match (pattern, self.ends) {
            (Pattern::Stream, _) => (side(Some(up_read), None), side(None, Some(up_write))),
            (Pattern::PingPong, Ends::OneWay) => {
                let (down_read, down_write) = (self.channel)()?;
                (
                    side(Some(up_read), Some(down_write)),
                    side(Some(down_read), Some(up_write)),
                )
            }
            (Pattern::PingPong, Ends::Duplex) => (
                FdStreamSide::duplex(name, up_read, size)?,
                FdStreamSide::duplex(name, up_write, size)?,
            ),
        };
        Ok(Pair {
            parent: Box::new(parent),
            child: Box::new(child),
        })
    }
}

/// One end of a byte-stream mechanism: an fd to read from, one to write to, or both.
pub(crate) struct FdStreamSide {
    mechanism: &'static str,
    rx: Option<OwnedFd>,
    tx: Option<OwnedFd>,
    size: usize,
}

impl FdStreamSide {
    /// A side that reads `size`-byte messages from `rx` and writes them to `tx`.
    pub(crate) fn new(
        mechanism: &'static str,
        rx: Option<OwnedFd>,
        tx: Option<OwnedFd>,
        size: usize,
    ) -> Self {
        Self {
            mechanism,
            rx,
            tx,
            size,
        }
    }

    /// Both directions over one socket: `tx` is a duplicate of `fd`.
    pub(crate) fn duplex(
        mechanism: &'static str,
        fd: OwnedFd,
        size: usize,
    ) -> Result<Self, LabError> {
        let tx = fd.try_clone().map_err(|source| LabError::Os {
            what: "duplicating a socket",
            source,
        })?;
        Ok(Self::new(mechanism, Some(fd), Some(tx), size))
    }

    fn unsupported(&self) -> LabError {
        LabError::Unsupported {
            mechanism: self.mechanism,
            what: "this direction in the pattern it was set up for",
        }
    }
}

impl Side for FdStreamSide {
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        check_len(msg.len(), self.size)?;
        let fd = self.tx.as_ref().ok_or_else(|| self.unsupported())?;
        let mut rest = msg;
        while !rest.is_empty() {
            match write(fd, rest) {
                Ok(0) | Err(Errno::PIPE) | Err(Errno::CONNRESET) => {
                    return Err(LabError::PeerClosed { what: "writing" })
                }
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(LabError::os("writing a message")(e)),
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let size = self.size;
        let fd = self.rx.as_ref().ok_or_else(|| self.unsupported())?;
        let out = message_buf(buf, size)?;
        let mut filled = 0;
        while filled < size {
            match read(fd, &mut out[filled..]) {
                Ok(0) | Err(Errno::CONNRESET) => {
                    return Err(LabError::PeerClosed { what: "reading" })
                }
                Ok(n) => filled += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(LabError::os("reading a message")(e)),
            }
        }
        Ok(size)
    }
}
