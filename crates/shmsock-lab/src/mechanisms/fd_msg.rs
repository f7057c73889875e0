//! The side shared by the message-preserving socket mechanisms (`uds-dgram`, `uds-seqpacket`,
//! `udp`).
//!
//! A datagram or sequenced-packet socket keeps message boundaries: `send` is one `send(2)` of
//! the whole message, `recv` is one `recv(2)` that returns exactly one message. `MSG_TRUNC`
//! makes the kernel report a message's real length, so a message longer than the buffer is an
//! error instead of silently cut. Reads and writes block in the kernel; nothing here spins.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{recv, send, RecvFlags, SendFlags};

use super::Side;
use crate::error::LabError;

/// One end of a message socket: one connected socket used in both directions.
pub(crate) struct FdMsgSide {
    fd: OwnedFd,
}

impl FdMsgSide {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self { fd }
    }
}

impl Side for FdMsgSide {
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        loop {
            match send(&self.fd, msg, SendFlags::NOSIGNAL) {
                Ok(n) if n == msg.len() => return Ok(()),
                Ok(n) => {
                    return Err(LabError::Integrity {
                        detail: format!("sent {n} of a {}-byte message", msg.len()),
                    })
                }
                Err(Errno::INTR) => {}
                Err(Errno::PIPE | Errno::CONNRESET | Errno::CONNREFUSED) => {
                    return Err(LabError::PeerClosed { what: "sending" })
                }
                Err(e) => return Err(LabError::os("sending a message")(e)),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let cap = buf.len();
        loop {
            match recv(&self.fd, &mut *buf, RecvFlags::TRUNC) {
                // A zero-length read on a seqpacket socket is the peer's hang-up.
                Ok((0, 0)) => return Err(LabError::PeerClosed { what: "receiving" }),
                Ok((_, len)) if len > cap => {
                    return Err(LabError::WrongSize { len, size: cap });
                }
                Ok((n, _)) => return Ok(n),
                Err(Errno::INTR) => {}
                Err(Errno::CONNRESET | Errno::CONNREFUSED) => {
                    return Err(LabError::PeerClosed { what: "receiving" })
                }
                Err(e) => return Err(LabError::os("receiving a message")(e)),
            }
        }
    }
}
