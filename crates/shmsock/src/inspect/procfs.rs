//! What `/proc` tells about this user's processes: which shmsock segments each one holds
//! (its fd links), its command, and who holds which flock (`/proc/locks`).
//!
//! Everything read here belongs to processes that may exit at any moment: a read that
//! fails because a process or fd vanished just means "skip it".

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::report::ProcessInfo;
use crate::shm::label::{SegmentRole, MEMFD_PREFIX};

/// Longest command line kept for display, in bytes.
const CMDLINE_MAX_BYTES: usize = 256;

/// The entries of `dir` named by a number (pids in `/proc`, fds in `/proc/PID/fd`), with
/// their number; unreadable entries are skipped.
fn numbered_entries(dir: &Path) -> io::Result<impl Iterator<Item = (u32, std::fs::DirEntry)>> {
    Ok(std::fs::read_dir(dir)?.flatten().filter_map(|entry| {
        let n = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((n, entry))
    }))
}

/// The processes whose `/proc/PID` directory is owned by `uid` (what `ps -u` would show).
pub(super) fn pids_of(uid: u32) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for (pid, entry) in numbered_entries(Path::new("/proc"))? {
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// The uid owning `/proc/PID` (what [`pids_of`] filters on), or `None` if it is gone.
pub(super) fn owner(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// A labelled shmsock segment held open by a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SegmentFd {
    /// The holding process.
    pub(super) pid: u32,
    /// Its fd number.
    pub(super) fd: u32,
    /// Inode of the memfd (the same segment may be held twice, or by two processes).
    pub(super) inode: u64,
    /// The role from its name.
    pub(super) role: SegmentRole,
    /// The rendezvous socket path from its name.
    pub(super) socket_path: PathBuf,
}

/// The label of a memfd fd link (`/memfd:LABEL (deleted)`), or `None` for any other file.
pub(super) fn memfd_label(link: &str) -> Option<&str> {
    let rest = link.strip_prefix("/memfd:")?;
    Some(rest.strip_suffix(" (deleted)").unwrap_or(rest))
}

/// Parses a shmsock segment label, `shmsock:<role>:<socket path>`. Unlabelled segments
/// (plain `shmsock`, from older versions) and anything else give `None`.
pub(super) fn parse_label(label: &str) -> Option<(SegmentRole, PathBuf)> {
    let rest = label.strip_prefix(MEMFD_PREFIX)?;
    let (role, path) = rest.split_once(':')?;
    let role = SegmentRole::from_word(role)?;
    let path = Path::new(path);
    let named = path.is_absolute()
        && path.extension().is_some_and(|e| e == "sock")
        && path.file_stem().is_some();
    named.then(|| (role, path.to_owned()))
}

/// What one process's fd table holds: its labelled segments, and how many unlabelled
/// shmsock memfds (older versions) it holds.
#[derive(Debug, Default)]
pub(super) struct FdScan {
    pub(super) segments: Vec<SegmentFd>,
    pub(super) unlabelled: usize,
}

/// The shmsock segments among `pid`'s fds. `Err` if its fd table cannot be read (it
/// exited, or it is not dumpable).
pub(super) fn segment_fds(pid: u32) -> io::Result<FdScan> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let mut found = FdScan::default();
    for (fd, entry) in numbered_entries(&dir)? {
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(label) = link.to_str().and_then(memfd_label) else {
            continue;
        };
        let Some((role, socket_path)) = parse_label(label) else {
            if label == "shmsock" {
                found.unlabelled += 1;
            }
            continue;
        };
        // stat follows the magic link to the memfd itself: its inode, without opening it.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        found.segments.push(SegmentFd {
            pid,
            fd,
            inode: meta.ino(),
            role,
            socket_path,
        });
    }
    Ok(found)
}

/// Opens another process's fd through `/proc/PID/fd/N`, read-only (a new open file
/// description: the owner's is untouched).
pub(super) fn open_fd(pid: u32, fd: u32) -> io::Result<OwnedFd> {
    let path = format!("/proc/{pid}/fd/{fd}");
    Ok(rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Whether a process with this pid exists (it may be a zombie).
pub(super) fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid, command name and command line of `pid`, as far as they can be read.
pub(super) fn process(pid: u32) -> ProcessInfo {
    let comm = std::fs::read(format!("/proc/{pid}/comm"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_owned());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| cmdline_text(&b))
        .filter(|c| !c.is_empty());
    ProcessInfo {
        pid,
        command: comm,
        cmdline,
        alive: alive(pid),
    }
}

/// `/proc/PID/cmdline` (NUL-separated) as one line, cut to [`CMDLINE_MAX_BYTES`].
pub(super) fn cmdline_text(raw: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if text.len() > CMDLINE_MAX_BYTES {
        let mut cut = CMDLINE_MAX_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// One held lock from `/proc/locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeldLock {
    pub(super) pid: u32,
    pub(super) major: u32,
    pub(super) minor: u32,
    pub(super) inode: u64,
}

/// Reads the locks held on this machine (flock and POSIX alike).
pub(super) fn held_locks() -> io::Result<Vec<HeldLock>> {
    Ok(parse_locks(&std::fs::read_to_string("/proc/locks")?))
}

/// Parses `/proc/locks`: `1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF`. Waiters
/// (`1: -> FLOCK ...`) hold nothing and are skipped, as is any line that does not parse.
pub(super) fn parse_locks(text: &str) -> Vec<HeldLock> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.next()?; // "N:"
            let kind = words.next()?;
            if kind == "->" {
                return None;
            }
            let (_mode, _access) = (words.next()?, words.next()?);
            let pid = words.next()?.parse::<u32>().ok()?;
            let mut dev = words.next()?.split(':');
            let major = u32::from_str_radix(dev.next()?, 16).ok()?;
            let minor = u32::from_str_radix(dev.next()?, 16).ok()?;
            let inode = dev.next()?.parse::<u64>().ok()?;
            Some(HeldLock {
                pid,
                major,
                minor,
                inode,
            })
        })
        .collect()
}

/// The pid holding a lock on the file with this metadata, if any.
pub(super) fn lock_holder(locks: &[HeldLock], file: &std::fs::Metadata) -> Option<u32> {
    let dev = file.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    locks
        .iter()
        .find(|l| l.inode == file.ino() && l.major == major && l.minor == minor)
        .map(|l| l.pid)
}
