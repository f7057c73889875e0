//! `pipe`: anonymous pipes, the oldest IPC on Unix.
//!
//! Ping-pong uses two pipes (parent → child, child → parent); streaming uses one
//! (child → parent). Every message is a `write` and one or more `read`s of exactly the message
//! size; a blocked reader sleeps in the kernel, so each round trip pays two cross-CPU wake-ups.

use std::os::fd::OwnedFd;

use rustix::pipe::{pipe_with, PipeFlags};

use super::fd_stream::{Ends, FdStream};
use crate::error::LabError;

/// Anonymous pipes.
pub const PIPE: FdStream = FdStream::new("pipe", pipe, Ends::OneWay);

/// A new pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), LabError> {
    pipe_with(PipeFlags::CLOEXEC).map_err(LabError::os("creating a pipe"))
}
