//! `uds-stream`: a connected pair of Unix-domain stream sockets (`socketpair`).
//!
//! One socket per side, used in both directions for ping-pong and one way for streaming. Like
//! a pipe, a blocked reader sleeps in the kernel and is woken by the writer; unlike a pipe the
//! data goes through socket buffers (`sk_buff`s), which is the cost this row shows.

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use super::fd_stream::FdStreamSide;
use super::{Mechanism, Pair, Pattern};
use crate::LabError;

/// `socketpair(AF_UNIX, SOCK_STREAM)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdsStream;

impl Mechanism for UdsStream {
    fn name(&self) -> &'static str {
        "uds-stream"
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let (parent_fd, child_fd) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(LabError::os("creating a Unix socket pair"))?;
        let (parent, child) = match pattern {
            Pattern::Stream => (
                FdStreamSide::new("uds-stream", Some(parent_fd), None, size),
                FdStreamSide::new("uds-stream", None, Some(child_fd), size),
            ),
            Pattern::PingPong => (
                FdStreamSide::duplex("uds-stream", parent_fd, size)?,
                FdStreamSide::duplex("uds-stream", child_fd, size)?,
            ),
        };
        Ok(Pair {
            parent: Box::new(parent),
            child: Box::new(child),
        })
    }
}
