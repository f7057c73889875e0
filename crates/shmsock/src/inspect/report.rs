//! What `shmsock ls` reports: the types of one [`scan`](super::scan) (endpoints, their
//! sides, processes, backlogs and rates) and of a [`clean`](super::clean).

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::shm::label::SegmentRole as Role;

/// Everything one [`scan`](super::scan) found.
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
    pub(super) taken_at: Option<Instant>,
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
    /// Listening-side segments with no peer (not in `sides`): the spare a `Listener` makes
    /// ahead of its next connection, or one whose handshake is under way.
    #[serde(default)]
    pub spare_segments: usize,
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
