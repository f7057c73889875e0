//! The side shared by the byte-stream mechanisms (`pipe`, `uds-stream`, `tcp`).
//!
//! A byte stream has no message boundaries, so a message is exactly the `size` bytes the pair
//! was set up for: `send` writes them all (looping on short writes), `recv` reads exactly that
//! many (looping on short reads, the `read_exact` idiom). End of file while reading, or a broken
//! pipe while writing, means the peer is gone and becomes [`LabError::PeerClosed`]. Reads and
//! writes block in the kernel; nothing here spins.

use std::os::fd::OwnedFd;

use rustix::io::{read, write, Errno};

use super::{check_len, Side};
use crate::LabError;

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
        let len = buf.len();
        let out = buf
            .get_mut(..size)
            .ok_or(LabError::WrongSize { len, size })?;
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
