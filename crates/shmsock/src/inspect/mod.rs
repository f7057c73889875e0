//! Live introspection of `shm://` endpoints: the data behind `shmsock ls`, `shmsock top`
//! and `shmsock clean`.
//!
//! [`scan`] finds every live `shm://` endpoint of this user without talking to any of them:
//!
//! 1. **Segments.** Each process names the memfd of each segment it owns
//!    `shmsock:<role>:<rendezvous socket path>` ([`Role`]). The scan lists the processes
//!    of our uid in `/proc`, reads their fd links, reopens each shmsock memfd read-only
//!    through `/proc/PID/fd/N` and maps it read-only, then reads its header through the
//!    same validating accessor the transport uses for peer memory (seals, size, magic,
//!    version and layout checked; each word read once). A segment that vanishes mid-scan is
//!    skipped; one that fails validation becomes a note in [`Scan::notes`]. The fd tables
//!    are listed before the segments are read: when a side names a peer segment the
//!    listing missed (a connection made in between), its peer process's fd table is
//!    listed once more for it.
//! 2. **Counters.** Every segment carries its owner's counters: messages and bytes sent and
//!    received, messages lost (subscribers), the peer's pid and the inode of the peer's
//!    segment (which pairs the two sides of a connection exactly, even when the same two
//!    processes hold several connections on one name), and when it was created.
//! 3. **Backlog.** A side's backlog (ring fill) is what it published that its peer has not
//!    consumed yet: the scan walks the ring from the consumer's published position, frame by
//!    frame (tags and lengths only, never payloads, bounded by the capacity).
//! 4. **Rendezvous.** The rendezvous directory tells which names are bound. A name is live
//!    while a process holds the flock on its lock file (found in `/proc/locks`, so the scan
//!    never takes the lock itself); its lock file also says whether a listener, a publisher
//!    or an inbox bound it. Socket and lock files with no holder are stale: the listener died
//!    without removing them. [`clean`] removes them.
//!
//! # What the numbers mean, and what is unknown
//! - A `Conn` copies its counters into its segment after every send, and its received
//!   counts whenever it publishes its read position (every quarter ring read, whenever it
//!   finds its ring empty, and on close): a receiver busy draining a full ring may show up
//!   to a quarter ring fewer messages than it has read; an idle one is exact. Publishers
//!   and subscribers count every message. Bytes count what crossed the ring: a zero-copy
//!   loan counts as its 24-byte descriptor, not the slot it lends.
//! - A consumer publishes its read position at the same moments, so a backlog is exact for
//!   an idle consumer and may be up to a quarter ring too high for a busy one. Every value
//!   is a snapshot of memory that other processes keep changing.
//! - A publisher serves many subscribers and records no single peer; its backlog is that of
//!   its slowest subscriber visible to the scan.
//! - Only this uid's processes are scanned: a peer of another uid (admitted with
//!   `Options::allow_uid`) shows as a peer pid without its side.
//! - `tcp://` and `unix://` endpoints are plain ZeroMQ sockets with no shared state to
//!   read; they are not listed (`ss -xtlp` shows them).
//!
//! ```no_run
//! let scan = shmsock::inspect::scan()?;
//! for ep in &scan.endpoints {
//!     println!("{} {:?} {:?}: {} sides", ep.endpoint, ep.pattern, ep.state, ep.sides.len());
//! }
//! # Ok::<(), shmsock::Error>(())
//! ```

mod names;
mod procfs;
mod reading;
mod report;
mod sides;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::shm::rendezvous::{self, Cleanup};
use crate::shm::runtime_dir::{runtime_dir, runtime_dir_path};
use names::{names_in, rendezvous_names};
use sides::{endpoint_info, find_segments, Group, ProcessCache};

pub use crate::shm::label::SegmentRole as Role;
pub use report::{
    Backlog, Cleaned, EndpointInfo, EndpointState, Pattern, ProcessInfo, Rates, Scan, SideInfo,
};

/// Scans this user's processes and the rendezvous directory: every `shm://` endpoint with
/// its sides, counters and backlogs (see the module docs for how, and what is unknown).
///
/// # Errors
/// [`Error::Io`] if `/proc` cannot be listed or `/proc/locks` cannot be read (a system
/// without procfs cannot be inspected). Everything about one process or segment that
/// cannot be read becomes a note instead.
pub fn scan() -> Result<Scan> {
    let taken_at = Instant::now();
    let now = SystemTime::now();
    let now_ns = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut notes = Vec::new();
    let found = find_segments(now_ns, &mut notes)?;
    let locks = procfs::held_locks().map_err(|e| {
        Error::io(
            "reading /proc/locks (needed to tell live names from stale ones)",
            e,
        )
    })?;
    let own_dir = runtime_dir_path();
    let mut dirs: BTreeSet<PathBuf> = found
        .iter()
        .filter_map(|f| f.socket_path.parent().map(Path::to_owned))
        .collect();
    dirs.insert(own_dir.clone());
    let mut groups: BTreeMap<PathBuf, Group> = BTreeMap::new();
    for dir in &dirs {
        for bound in rendezvous_names(dir, &locks) {
            let key = bound.socket_path.clone();
            groups.entry(key).or_default().bound = Some(bound);
        }
    }
    for (i, f) in found.iter().enumerate() {
        groups
            .entry(f.socket_path.clone())
            .or_default()
            .members
            .push(i);
    }
    let mut procs = ProcessCache::default();
    let endpoints = groups
        .into_iter()
        .map(|(path, group)| endpoint_info(&path, &group, &found, &mut procs, now, &mut notes))
        .collect();
    Ok(Scan {
        taken_at_unix_ms: now_ns / 1_000_000,
        runtime_dir: own_dir.display().to_string(),
        endpoints,
        notes,
        taken_at: Some(taken_at),
    })
}

/// Removes the rendezvous files of every name in this process's runtime directory whose
/// listener is dead, each under the name's lock exactly as a new `bind` would replace it,
/// so a live endpoint is never touched. With `dry_run`, reports what it would remove.
///
/// # Errors
/// [`Error::Io`] if the runtime directory is not a private directory of ours, cannot be
/// listed, or a stale file cannot be removed (the error names the file).
pub fn clean(dry_run: bool) -> Result<Vec<Cleaned>> {
    let dir = runtime_dir().map_err(|e| Error::io("rendezvous directory", e))?;
    let mut cleaned = Vec::new();
    for name in names_in(&dir).map_err(|e| {
        Error::io(
            format!("listing the rendezvous directory {}", dir.display()),
            e,
        )
    })? {
        if let Cleanup::Removed(files) = rendezvous::remove_if_stale(&dir, &name, dry_run)? {
            if !files.is_empty() {
                cleaned.push(Cleaned {
                    endpoint: format!("shm://{name}"),
                    files: files.iter().map(|p| p.display().to_string()).collect(),
                });
            }
        }
    }
    Ok(cleaned)
}
