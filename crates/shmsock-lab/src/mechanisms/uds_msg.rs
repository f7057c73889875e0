//! `uds-dgram` and `uds-seqpacket`: connected pairs of Unix-domain message sockets
//! (`socketpair(AF_UNIX, SOCK_DGRAM | SOCK_SEQPACKET)`).
//!
//! Unlike `uds-stream`, the kernel keeps message boundaries: one `send` is one `recv`. A Unix
//! datagram socket is reliable and ordered (it blocks the sender when the peer's queue is full,
//! unlike UDP); a seqpacket socket is the same with a connection (the peer's close is seen as
//! end of file). The largest message is bounded by the socket buffer (`SO_SNDBUF`, ~200 KiB
//! by default), so the 1 MiB throughput row is `unavailable` for both.

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use super::fd_msg::FdMsgSide;
use super::{Mechanism, Pair, Pattern};
use crate::error::LabError;

/// Largest message a default Unix socket buffer carries in one datagram, rounded down.
const UDS_MSG_MAX_BYTES: usize = 128 * 1024;

/// A Unix-domain message socket pair of one type.
#[derive(Debug, Clone, Copy)]
pub struct UdsMsg {
    name: &'static str,
    kind: SocketType,
}

impl UdsMsg {
    /// `SOCK_DGRAM`: the `uds-dgram` row.
    pub fn dgram() -> Self {
        Self {
            name: "uds-dgram",
            kind: SocketType::DGRAM,
        }
    }

    /// `SOCK_SEQPACKET`: the `uds-seqpacket` row.
    pub fn seqpacket() -> Self {
        Self {
            name: "uds-seqpacket",
            kind: SocketType::SEQPACKET,
        }
    }
}

impl Mechanism for UdsMsg {
    fn name(&self) -> &'static str {
        self.name
    }

    fn max_message(&self) -> usize {
        UDS_MSG_MAX_BYTES
    }

    fn setup(&self, _pattern: Pattern, _size: usize) -> Result<Pair, LabError> {
        let (parent, child) =
            socketpair(AddressFamily::UNIX, self.kind, SocketFlags::CLOEXEC, None)
                .map_err(LabError::os("creating a Unix message socket pair"))?;
        Ok(Pair {
            parent: Box::new(FdMsgSide::new(parent)),
            child: Box::new(FdMsgSide::new(child)),
        })
    }
}
