//! `uds-stream`: a connected pair of Unix-domain stream sockets (`socketpair`).
//!
//! One socket per side, used in both directions for ping-pong and one way for streaming. Like
//! a pipe, a blocked reader sleeps in the kernel and is woken by the writer; unlike a pipe the
//! data goes through socket buffers (`sk_buff`s), which is the cost this row shows.

use std::os::fd::OwnedFd;

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use super::fd_stream::{Ends, FdStream};
use crate::error::LabError;

/// `socketpair(AF_UNIX, SOCK_STREAM)`.
pub const UDS_STREAM: FdStream = FdStream::new("uds-stream", socket_pair, Ends::Duplex);

/// A connected pair of Unix stream sockets: (parent's end, child's end).
fn socket_pair() -> Result<(OwnedFd, OwnedFd), LabError> {
    socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(LabError::os("creating a Unix socket pair"))
}
