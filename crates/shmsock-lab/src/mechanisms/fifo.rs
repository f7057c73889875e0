//! `fifo`: named pipes (`mkfifo`) in the temporary directory.
//!
//! A FIFO is a pipe with a name in the file system, so unrelated processes can open it. Setup
//! creates each FIFO under a name unique to this run, opens the read end without blocking
//! (`O_NONBLOCK`: an `open` for reading otherwise waits for a writer), opens the write end,
//! switches the read end back to blocking and unlinks the name: the open descriptors are all
//! that is left, inherited by the child like an anonymous pipe's. After that it behaves exactly
//! like `pipe`; the row shows that the name costs nothing per message.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{fcntl_getfl, fcntl_setfl, mkfifoat, open, unlink, Mode, OFlags, CWD};

use super::fd_stream::{Ends, FdStream};
use crate::error::LabError;

/// Distinguishes the FIFOs made by one process.
static NEXT_FIFO: AtomicU64 = AtomicU64::new(0);

/// Named pipes.
pub const FIFO: FdStream = FdStream::new("fifo", fifo, Ends::OneWay);

/// Makes a FIFO, opens both ends, unlinks its name; returns (read end, write end).
fn fifo() -> Result<(OwnedFd, OwnedFd), LabError> {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "shmsock-lab-fifo-{}-{}",
        std::process::id(),
        NEXT_FIFO.fetch_add(1, Ordering::Relaxed)
    ));
    mkfifoat(CWD, &path, Mode::RUSR | Mode::WUSR).map_err(LabError::os("creating a FIFO"))?;
    let ends = open_ends(&path);
    let _ = unlink(&path);
    ends
}

fn open_ends(path: &std::path::Path) -> Result<(OwnedFd, OwnedFd), LabError> {
    let read_end = open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(LabError::os("opening a FIFO for reading"))?;
    let write_end = open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(LabError::os("opening a FIFO for writing"))?;
    let flags = fcntl_getfl(&read_end).map_err(LabError::os("reading a FIFO's flags"))?;
    fcntl_setfl(&read_end, flags - OFlags::NONBLOCK)
        .map_err(LabError::os("making a FIFO blocking"))?;
    Ok((read_end, write_end))
}
