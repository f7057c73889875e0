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
//!    skipped; one that fails validation becomes a note in [`Scan::notes`].
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
mod sides;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::shm::handshake::{runtime_dir, runtime_dir_path};
use crate::shm::rendezvous::{self, Cleanup};
use names::{names_in, rendezvous_names};
use sides::{endpoint_info, find_segments, Group, ProcessCache};

pub use crate::shm::label::SegmentRole as Role;

/// Everything one [`scan`] found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scan {
    /// When the scan was taken, in milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// The rendezvous directory of this process (`shmsock::runtime_dir`).
    pub runtime_dir: String,
    /// Every endpoint with a segment or a rendezvous file, sorted by socket path.
    pub endpoints: Vec<EndpointInfo>,
    /// What could not be inspected, and why (unreadable processes, refused segments).
    pub notes: Vec<String>,
    #[serde(skip)]
    taken_at: Option<Instant>,
}

/// One `shm://` name: its rendezvous state and every side of its connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// `shm://NAME`.
    pub endpoint: String,
    /// The scheme, `shm` (the only one with state to inspect).
    pub scheme: String,
    /// The rendezvous socket path (in the runtime directory the endpoint was bound in).
    pub socket_path: String,
    /// What kind of endpoint this is.
    pub pattern: Pattern,
    /// Whether a live process holds the name.
    pub state: EndpointState,
    /// The process holding the name (for a stale name: none).
    pub bound_by: Option<ProcessInfo>,
    /// The pid that last bound the name, as its lock file says (for a stale name: the
    /// dead listener).
    pub last_bound_by_pid: Option<u32>,
    /// Seconds since the name was bound (the socket file's age), if known.
    pub age_secs: Option<f64>,
    /// One entry per segment: each process's side of each connection.
    pub sides: Vec<SideInfo>,
}

/// The messaging pattern of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Pattern {
    /// `Listener`/`Conn`: one connection per accepted peer.
    Pair,
    /// `Publisher`/`Subscriber`.
    PubSub,
    /// `Inbox`: many writers, one reader.
    Inbox,
    /// Not knowable: a stale name whose lock file says nothing, or connections whose
    /// listening side is not visible.
    Unknown,
}

/// Whether an endpoint's name is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EndpointState {
    /// A live process holds the name's lock.
    Live,
    /// Rendezvous files whose listener is dead; `shmsock clean` removes them.
    Stale,
    /// Connections still open after their listener unbound the name.
    Unbound,
}

/// A process, as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// `/proc/PID/comm` (the kernel's 15-byte command name), if readable.
    pub command: Option<String>,
    /// `/proc/PID/cmdline` joined with spaces (cut at 256 bytes), if readable.
    pub cmdline: Option<String>,
    /// Whether the process still exists.
    pub alive: bool,
}

/// One process's side of a connection: its segment, read at scan time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideInfo {
    /// The role of this side.
    pub role: Role,
    /// The process owning the segment.
    pub process: ProcessInfo,
    /// The process at the other end (`None` for a publisher, which has many).
    pub peer: Option<ProcessInfo>,
    /// Inode of this side's memfd.
    pub segment_inode: u64,
    /// Inode of the peer's memfd, as recorded at the handshake.
    pub peer_segment_inode: Option<u64>,
    /// Capacity of this side's outbound ring in bytes (subscribers and inboxes never write
    /// theirs).
    pub ring_capacity_bytes: u64,
    /// Published but not yet consumed: in this side's outbound ring (a subscriber: in the
    /// publisher's ring, for it). `None` if the other side is not visible.
    pub backlog: Option<Backlog>,
    /// Messages sent (`None` where the role never sends).
    pub msgs_sent: Option<u64>,
    /// Payload bytes sent.
    pub bytes_sent: Option<u64>,
    /// Messages received (`None` where the role never receives).
    pub msgs_received: Option<u64>,
    /// Payload bytes received.
    pub bytes_received: Option<u64>,
    /// Messages lost to `Overflow::DropOldest` (subscribers; `None` for lossless roles).
    pub msgs_lost: Option<u64>,
    /// Seconds since the segment was created (the connection's age).
    pub age_secs: Option<f64>,
    /// Rates since the previous scan ([`Scan::rates_since`]); absent from `ls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
}

/// What waits in a ring for its consumer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    /// Messages waiting (`None` if the consumer fell behind what the ring still holds).
    pub messages: Option<u64>,
    /// Ring bytes they occupy (frame headers and padding included).
    pub bytes: u64,
    /// Capacity of the ring they are in.
    pub ring_bytes: u64,
    /// `bytes / ring_bytes`, from 0 to 1.
    pub fill: f64,
    /// The consumer is more than the ring behind (it will get `Lagged`).
    pub overrun: bool,
}

/// Per-second rates between two scans.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Seconds between the two scans.
    pub interval_secs: f64,
    /// Messages sent per second.
    pub msgs_sent_per_s: Option<f64>,
    /// Payload bytes sent per second.
    pub bytes_sent_per_s: Option<f64>,
    /// Messages received per second.
    pub msgs_received_per_s: Option<f64>,
    /// Payload bytes received per second.
    pub bytes_received_per_s: Option<f64>,
}

/// The rendezvous files of one name that `clean` removed (or would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleaned {
    /// `shm://NAME`.
    pub endpoint: String,
    /// The files removed.
    pub files: Vec<String>,
}

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

impl Scan {
    /// Fills in each side's [`Rates`] from the counters of the same side (same process and
    /// segment) in `earlier`. Sides that were not in `earlier` get none.
    pub fn rates_since(&mut self, earlier: &Scan) {
        let secs = match (self.taken_at, earlier.taken_at) {
            (Some(now), Some(then)) => now.saturating_duration_since(then).as_secs_f64(),
            _ => {
                self.taken_at_unix_ms
                    .saturating_sub(earlier.taken_at_unix_ms) as f64
                    / 1e3
            }
        };
        if secs <= 0.0 {
            return;
        }
        let before: HashMap<(u32, u64), &SideInfo> = earlier
            .endpoints
            .iter()
            .flat_map(|e| &e.sides)
            .map(|s| ((s.process.pid, s.segment_inode), s))
            .collect();
        for side in self.endpoints.iter_mut().flat_map(|e| &mut e.sides) {
            let Some(old) = before.get(&(side.process.pid, side.segment_inode)) else {
                continue;
            };
            let rate = |new: Option<u64>, old: Option<u64>| match (new, old) {
                (Some(n), Some(o)) if n >= o => Some((n - o) as f64 / secs),
                _ => None,
            };
            side.rates = Some(Rates {
                interval_secs: secs,
                msgs_sent_per_s: rate(side.msgs_sent, old.msgs_sent),
                bytes_sent_per_s: rate(side.bytes_sent, old.bytes_sent),
                msgs_received_per_s: rate(side.msgs_received, old.msgs_received),
                bytes_received_per_s: rate(side.bytes_received, old.bytes_received),
            });
        }
    }
}
