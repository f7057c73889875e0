//! Turning what the scan found into [`EndpointInfo`]s: opening and reading the segments,
//! pairing the two sides of each connection, and computing backlogs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::names::Bound;
use super::procfs::{self, SegmentFd};
use super::reading::{self, Reading};
use super::report::{Backlog, EndpointInfo, EndpointState, Pattern, ProcessInfo, SideInfo};
use crate::error::{Error, Result};
use crate::shm::label::SegmentRole as Role;
use crate::shm::segment::word;
use crate::shm::segment::PeerSegment;
use crate::shm::serial;

/// A segment the scan opened, with what it read.
pub(super) struct Found {
    reading: Reading,
    seg: PeerSegment,
    pub(super) socket_path: PathBuf,
    /// The process the side belongs to: the header's pid if that process holds the fd.
    pid: u32,
}

/// Finds, opens and reads every labelled segment held by a process of our uid.
///
/// The fd tables are listed before the segments are read, so a connection made in between
/// would show one side pointing at a peer segment the listing missed: such peers' fd
/// tables are listed once more, for just the segments a found side names.
pub(super) fn find_segments(now_ns: u64, notes: &mut Vec<String>) -> Result<Vec<Found>> {
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
    let mut found = open_segments(by_inode, now_ns, notes);
    let late = late_peers(&found, uid);
    found.extend(open_segments(late, now_ns, notes));
    Ok(found)
}

/// The segments that found sides name as their peer's but the listing missed (made after
/// their process's fd table was listed), looked up in the fd tables of those sides' peer
/// processes, if they are of our uid.
pub(super) fn late_peers(found: &[Found], uid: u32) -> BTreeMap<u64, Vec<SegmentFd>> {
    let known: BTreeSet<u64> = found.iter().map(|f| f.reading.inode).collect();
    let mut wanted: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for f in found {
        if let (Some(pid), Some(inode)) = (f.reading.peer_pid, f.reading.peer_inode) {
            if !known.contains(&inode) {
                wanted.entry(pid).or_default().insert(inode);
            }
        }
    }
    let mut late: BTreeMap<u64, Vec<SegmentFd>> = BTreeMap::new();
    for (pid, inodes) in wanted {
        if procfs::owner(pid) != Some(uid) {
            continue; // another user's process (or gone): not ours to list
        }
        let Ok(scan) = procfs::segment_fds(pid) else {
            continue;
        };
        for s in scan
            .segments
            .into_iter()
            .filter(|s| inodes.contains(&s.inode))
        {
            late.entry(s.inode).or_default().push(s);
        }
    }
    late
}

/// Opens and reads each listed segment through one of its holders; what cannot be opened
/// any more is skipped, what fails validation becomes a note.
pub(super) fn open_segments(
    by_inode: BTreeMap<u64, Vec<SegmentFd>>,
    now_ns: u64,
    notes: &mut Vec<String>,
) -> Vec<Found> {
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
    found
}

/// One socket path's rendezvous files and segments.
#[derive(Default)]
pub(super) struct Group {
    pub(super) bound: Option<Bound>,
    /// Indices into the found segments.
    pub(super) members: Vec<usize>,
}

/// Process information, read once per pid and scan.
#[derive(Default)]
pub(super) struct ProcessCache(HashMap<u32, ProcessInfo>);

impl ProcessCache {
    pub(super) fn get(&mut self, pid: u32) -> ProcessInfo {
        self.0
            .entry(pid)
            .or_insert_with(|| procfs::process(pid))
            .clone()
    }
}

pub(super) fn endpoint_info(
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
    let spare = |f: &Found| f.reading.role == Role::Listener && f.reading.peer_inode.is_none();
    let mut sides: Vec<SideInfo> = members
        .iter()
        .filter(|f| !spare(f))
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
            // A file time a little ahead of ours (coarse file clocks) is age 0, not unknown.
            .map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64()),
        sides,
        spare_segments: members.iter().filter(|f| spare(f)).count(),
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
        let consumed = peer.seg.load64(word::CONSUMED);
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
    // Positions wrap (see `shm::serial`): compare by distance, never by `<` on raw values.
    if serial::after(consumed, cursor.write_pos) {
        notes.push(format!(
            "{}: a subscriber claims position {consumed}, past the publisher's {}",
            publisher.socket_path.display(),
            cursor.write_pos
        ));
        return None;
    }
    let bytes = serial::dist(consumed, cursor.write_pos);
    if !serial::within(consumed, cursor.oldest_pos, cursor.write_pos) {
        return Some(backlog(None, bytes, ring, true));
    }
    match reading::walk(&publisher.seg, ring, consumed, Some(cursor.write_pos)) {
        Ok(w) => Some(backlog(Some(w.messages), bytes, ring, false)),
        // The publisher evicted frames while we walked: the count is unknown, the bytes not.
        Err(_) => Some(backlog(None, bytes, ring, false)),
    }
}
