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
//!   and subscribers count every message.
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

mod procfs;
mod reading;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::shm::handshake::{runtime_dir, runtime_dir_path};
use crate::shm::rendezvous::{self, Cleanup, LOCK_LABEL_MAX_BYTES};
use crate::shm::segment::{self, PeerSegment};
use procfs::SegmentFd;
use reading::Reading;

pub use crate::shm::segment::SegmentRole as Role;

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

/// A segment the scan opened, with what it read.
struct Found {
    reading: Reading,
    seg: PeerSegment,
    socket_path: PathBuf,
    /// The process the side belongs to: the header's pid if that process holds the fd.
    pid: u32,
}

/// Finds, opens and reads every labelled segment held by a process of our uid.
fn find_segments(now_ns: u64, notes: &mut Vec<String>) -> Result<Vec<Found>> {
    let uid = rustix::process::geteuid().as_raw();
    let pids = procfs::pids_of(uid)
        .map_err(|e| Error::io("listing processes in /proc (is procfs mounted?)", e))?;
    let mut by_inode: BTreeMap<u64, Vec<SegmentFd>> = BTreeMap::new();
    let (mut unreadable, mut unlabelled) = (0usize, 0usize);
    for pid in pids {
        match procfs::segment_fds(pid) {
            Ok(scan) => {
                unlabelled += scan.unlabelled;
                for s in scan.segments {
                    by_inode.entry(s.inode).or_default().push(s);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // exited
            Err(_) => unreadable += 1,
        }
    }
    if unreadable > 0 {
        notes.push(format!(
            "{unreadable} processes of uid {uid} did not let us read their fds (not dumpable?)"
        ));
    }
    if unlabelled > 0 {
        notes.push(format!(
            "{unlabelled} segments of an older shmsock carry no name and are not listed"
        ));
    }
    let mut found = Vec::new();
    for (inode, holders) in by_inode {
        let first = &holders[0];
        let Ok(fd) = procfs::open_fd(first.pid, first.fd) else {
            continue; // closed or exited since we listed it
        };
        let seg = match PeerSegment::inspect(fd) {
            Ok(seg) if seg.inode() == inode => seg,
            Ok(_) => continue, // the fd number was reused meanwhile
            Err(refusal) => {
                notes.push(format!(
                    "pid {} fd {}: {} segment for {} refused: {refusal}",
                    first.pid,
                    first.fd,
                    first.role,
                    first.socket_path.display()
                ));
                continue;
            }
        };
        let reading = reading::read(&seg, first.role, now_ns);
        let pid = if holders.iter().any(|h| h.pid == reading.pid) {
            reading.pid
        } else {
            notes.push(format!(
                "segment {inode} says it belongs to pid {}, but pid {} holds it",
                reading.pid, first.pid
            ));
            first.pid
        };
        found.push(Found {
            reading,
            seg,
            socket_path: first.socket_path.clone(),
            pid,
        });
    }
    Ok(found)
}

/// A name in a rendezvous directory.
#[derive(Debug)]
struct Bound {
    socket_path: PathBuf,
    /// The live holder of its lock.
    holder: Option<u32>,
    /// What its lock file says: the role it was bound for and by which pid.
    label: Option<(Role, u32)>,
    /// When the socket (or else the lock file) was created.
    since: Option<SystemTime>,
}

/// The names with a `.sock` or `.lock` file in `dir`.
fn names_in(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if let Some(name) = file
            .strip_suffix(".sock")
            .or_else(|| file.strip_suffix(".lock"))
            .filter(|n| !n.is_empty() && !n.starts_with('.'))
        {
            names.insert(name.to_owned());
        }
    }
    Ok(names)
}

/// The bound (or stale) names of `dir`; nothing if it does not exist.
fn rendezvous_names(dir: &Path, locks: &[procfs::HeldLock]) -> Vec<Bound> {
    let Ok(names) = names_in(dir) else {
        return Vec::new();
    };
    names
        .into_iter()
        .map(|name| {
            let socket_path = dir.join(format!("{name}.sock"));
            let lock_path = dir.join(format!("{name}.lock"));
            let lock_meta = std::fs::symlink_metadata(&lock_path).ok();
            let holder = lock_meta
                .as_ref()
                .and_then(|m| procfs::lock_holder(locks, m));
            let label = read_lock_label(&lock_path);
            let since = std::fs::symlink_metadata(&socket_path)
                .ok()
                .or(lock_meta)
                .and_then(|m| m.modified().ok());
            Bound {
                socket_path,
                holder,
                label,
                since,
            }
        })
        .collect()
}

/// The label of a lock file (at most [`LOCK_LABEL_MAX_BYTES`] read; never follows a link).
fn read_lock_label(path: &Path) -> Option<(Role, u32)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .ok()?;
    let mut buf = Vec::with_capacity(LOCK_LABEL_MAX_BYTES);
    file.take(LOCK_LABEL_MAX_BYTES as u64)
        .read_to_end(&mut buf)
        .ok()?;
    rendezvous::parse_lock_label(&buf)
}

/// One socket path's rendezvous files and segments.
#[derive(Default)]
struct Group {
    bound: Option<Bound>,
    /// Indices into the found segments.
    members: Vec<usize>,
}

/// Process information, read once per pid and scan.
#[derive(Default)]
struct ProcessCache(HashMap<u32, ProcessInfo>);

impl ProcessCache {
    fn get(&mut self, pid: u32) -> ProcessInfo {
        self.0
            .entry(pid)
            .or_insert_with(|| procfs::process(pid))
            .clone()
    }
}

fn endpoint_info(
    path: &Path,
    group: &Group,
    found: &[Found],
    procs: &mut ProcessCache,
    now: SystemTime,
    notes: &mut Vec<String>,
) -> EndpointInfo {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bound = group.bound.as_ref();
    let state = match bound {
        Some(b) if b.holder.is_some() => EndpointState::Live,
        Some(_) => EndpointState::Stale,
        None => EndpointState::Unbound,
    };
    let members: Vec<&Found> = group.members.iter().map(|&i| &found[i]).collect();
    let mut sides: Vec<SideInfo> = members
        .iter()
        .map(|f| side_info(f, &members, procs, now, notes))
        .collect();
    sides.sort_by_key(|s| {
        let order = Role::ALL.iter().position(|r| *r == s.role);
        (order, s.process.pid, s.segment_inode)
    });
    EndpointInfo {
        endpoint: format!("shm://{name}"),
        scheme: "shm".into(),
        socket_path: path.display().to_string(),
        pattern: pattern_of(bound.and_then(|b| b.label.map(|l| l.0)), &members),
        state,
        bound_by: bound.and_then(|b| b.holder).map(|pid| procs.get(pid)),
        last_bound_by_pid: bound.and_then(|b| b.label.map(|l| l.1)),
        age_secs: bound
            .and_then(|b| b.since)
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs_f64()),
        sides,
    }
}

/// The pattern from the lock file's role, else from the roles of the segments.
fn pattern_of(bound_as: Option<Role>, members: &[&Found]) -> Pattern {
    let from_role = |role: Role| match role {
        Role::Listener => Some(Pattern::Pair),
        Role::Publisher | Role::Subscriber => Some(Pattern::PubSub),
        Role::Inbox => Some(Pattern::Inbox),
        Role::Connector => None,
    };
    bound_as
        .into_iter()
        .chain(members.iter().map(|f| f.reading.role))
        .find_map(from_role)
        .unwrap_or(Pattern::Unknown)
}

/// The member of `members` whose segment has inode `inode`.
fn by_inode<'a>(members: &[&'a Found], inode: Option<u64>) -> Option<&'a Found> {
    let inode = inode?;
    members.iter().copied().find(|f| f.reading.inode == inode)
}

fn side_info(
    f: &Found,
    members: &[&Found],
    procs: &mut ProcessCache,
    now: SystemTime,
    notes: &mut Vec<String>,
) -> SideInfo {
    let r = &f.reading;
    let sends = matches!(
        r.role,
        Role::Listener | Role::Connector | Role::Inbox | Role::Publisher
    );
    let receives = r.role != Role::Publisher;
    let backlog = match r.role {
        Role::Listener | Role::Connector | Role::Inbox => by_inode(members, r.peer_inode)
            // The peer must point back at us: pairing is by inode both ways.
            .filter(|p| p.reading.peer_inode == Some(r.inode))
            .and_then(|peer| conn_backlog(f, peer, notes)),
        Role::Publisher => members
            .iter()
            .filter(|s| s.reading.role == Role::Subscriber && s.reading.peer_inode == Some(r.inode))
            .map(|s| s.reading.consumed)
            .min()
            .and_then(|slowest| broadcast_backlog(f, slowest, notes)),
        Role::Subscriber => by_inode(members, r.peer_inode)
            .filter(|p| p.reading.role == Role::Publisher)
            .and_then(|publisher| broadcast_backlog(publisher, r.consumed, notes)),
    };
    let peer = match r.role {
        Role::Publisher => None,
        _ => r.peer_pid.map(|pid| procs.get(pid)),
    };
    let unix_now_ns = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    SideInfo {
        role: r.role,
        process: procs.get(f.pid),
        peer,
        segment_inode: r.inode,
        peer_segment_inode: r.peer_inode,
        ring_capacity_bytes: r.capacity,
        backlog,
        msgs_sent: sends.then_some(r.msgs_sent),
        bytes_sent: sends.then_some(r.bytes_sent),
        msgs_received: receives.then_some(r.msgs_received),
        bytes_received: receives.then_some(r.bytes_received),
        msgs_lost: (r.role == Role::Subscriber).then_some(r.msgs_lost),
        age_secs: r
            .created_unix_ns
            .map(|c| unix_now_ns.saturating_sub(c) as f64 / 1e9),
        rates: None,
    }
}

fn backlog(messages: Option<u64>, bytes: u64, ring_bytes: u64, overrun: bool) -> Backlog {
    Backlog {
        messages,
        bytes,
        ring_bytes,
        fill: if ring_bytes == 0 {
            0.0
        } else {
            (bytes as f64 / ring_bytes as f64).min(1.0)
        },
        overrun,
    }
}

/// How many walks of a `Conn` ring may fail before the failure is reported: a consumer
/// racing ahead lets its producer overwrite frames under the walk, which then reads a
/// length word of a newer frame.
const WALK_ATTEMPTS: usize = 3;

/// The backlog of `side`'s outbound ring, consumed by `peer`.
fn conn_backlog(side: &Found, peer: &Found, notes: &mut Vec<String>) -> Option<Backlog> {
    let ring = side.reading.capacity;
    let mut last = None;
    for _ in 0..WALK_ATTEMPTS {
        // Fresh each time: the consumer may have moved since the header was read.
        let consumed = peer.seg.load64(segment::OFF_CONSUMED);
        match reading::walk(&side.seg, ring, consumed, None) {
            Ok(w) => return Some(backlog(Some(w.messages), w.bytes, ring, false)),
            Err(c) => last = Some(c),
        }
    }
    if let Some(c) = last {
        notes.push(format!(
            "{}: ring of pid {}: {c}",
            side.socket_path.display(),
            side.pid
        ));
    }
    None
}

/// The backlog of a subscriber at `consumed` in `publisher`'s broadcast ring.
fn broadcast_backlog(publisher: &Found, consumed: u64, notes: &mut Vec<String>) -> Option<Backlog> {
    let ring = publisher.reading.capacity;
    let cursor = match publisher.reading.cursor.as_ref()? {
        Ok(c) => *c,
        Err(what) => {
            notes.push(format!(
                "{}: publisher pid {}: {what}",
                publisher.socket_path.display(),
                publisher.pid
            ));
            return None;
        }
    };
    if consumed > cursor.write_pos {
        notes.push(format!(
            "{}: a subscriber claims position {consumed}, past the publisher's {}",
            publisher.socket_path.display(),
            cursor.write_pos
        ));
        return None;
    }
    let bytes = cursor.write_pos - consumed;
    if consumed < cursor.oldest_pos {
        return Some(backlog(None, bytes, ring, true));
    }
    match reading::walk(&publisher.seg, ring, consumed, Some(cursor.write_pos)) {
        Ok(w) => Some(backlog(Some(w.messages), bytes, ring, false)),
        // The publisher evicted frames while we walked: the count is unknown, the bytes not.
        Err(_) => Some(backlog(None, bytes, ring, false)),
    }
}
