//! `pipe`: anonymous pipes, the oldest IPC on Unix.
//!
//! Ping-pong uses two pipes (parent → child, child → parent); streaming uses one
//! (child → parent). Every message is a `write` and one or more `read`s of exactly the message
//! size; a blocked reader sleeps in the kernel, so each round trip pays two cross-CPU wake-ups.

use rustix::pipe::{pipe_with, PipeFlags};

use super::fd_stream::FdStreamSide;
use super::{Mechanism, Pair, Pattern};
use crate::LabError;

/// Anonymous pipes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pipe;

impl Mechanism for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let new_pipe = || pipe_with(PipeFlags::CLOEXEC).map_err(LabError::os("creating a pipe"));
        let (up_read, up_write) = new_pipe()?;
        let (parent, child) = match pattern {
            Pattern::Stream => (
                FdStreamSide::new("pipe", Some(up_read), None, size),
                FdStreamSide::new("pipe", None, Some(up_write), size),
            ),
            Pattern::PingPong => {
                let (down_read, down_write) = new_pipe()?;
                (
                    FdStreamSide::new("pipe", Some(up_read), Some(down_write), size),
                    FdStreamSide::new("pipe", Some(down_read), Some(up_write), size),
                )
            }
        };
        Ok(Pair {
            parent: Box::new(parent),
            child: Box::new(child),
        })
    }
}
