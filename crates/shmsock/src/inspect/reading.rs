//! One segment found by the scan, read once: its header words, each loaded a single time
//! through the validating accessor and checked, and the backlog of its ring.
//!
//! A segment belongs to another process, which may be buggy or hostile: a value that no
//! correct owner could have written becomes "unknown" (or a note), never a panic, and the
//! ring walk reads only tag and length words, bounded by the ring's capacity.

use crate::shm::broadcast::Snapshot;
use crate::shm::label::SegmentRole;
use crate::shm::ring::{decode, frame_bytes, tag_for, Corruption, Header, RingRead};
use crate::shm::segment::word;
use crate::shm::segment::PeerSegment;

/// A created-at time further than this in the future is not believed.
const CLOCK_SLACK_NS: u64 = 60_000_000_000;

/// The header words of one segment, each read once.
#[derive(Debug, Clone)]
pub(super) struct Reading {
    pub(super) role: SegmentRole,
    pub(super) inode: u64,
    /// The owner's pid as written in the header (validated non-zero by `PeerSegment`).
    pub(super) pid: u32,
    pub(super) capacity: u64,
    /// How far the owner has read its peer's ring.
    pub(super) consumed: u64,
    pub(super) msgs_sent: u64,
    pub(super) bytes_sent: u64,
    pub(super) msgs_received: u64,
    pub(super) bytes_received: u64,
    pub(super) msgs_lost: u64,
    pub(super) peer_pid: Option<u32>,
    pub(super) peer_inode: Option<u64>,
    pub(super) created_unix_ns: Option<u64>,
    /// Publishers: the broadcast cursor, or why it could not be read.
    pub(super) cursor: Option<Result<Snapshot, String>>,
}

/// Reads the header of `seg`, which plays `role`. `now_ns` bounds the creation time.
pub(super) fn read(seg: &PeerSegment, role: SegmentRole, now_ns: u64) -> Reading {
    let peer_pid = seg.load64(word::PEER_PID);
    let peer_inode = seg.load64(word::PEER_SEGMENT);
    let created = seg.load64(word::CREATED_UNIX_NS);
    Reading {
        role,
        inode: seg.inode(),
        // `PeerSegment::open` refused a pid of 0 or above u32::MAX.
        pid: u32::try_from(seg.load64(word::PID)).unwrap_or(0),
        capacity: seg.capacity_bytes(),
        consumed: seg.load64(word::CONSUMED),
        msgs_sent: seg.load64(word::MSGS_SENT),
        bytes_sent: seg.load64(word::BYTES_SENT),
        msgs_received: seg.load64(word::MSGS_RECV),
        bytes_received: seg.load64(word::BYTES_RECV),
        msgs_lost: seg.load64(word::MSGS_LOST),
        peer_pid: u32::try_from(peer_pid)
            .ok()
            .filter(|&p| p != 0 && p <= i32::MAX as u32),
        peer_inode: (peer_inode != 0).then_some(peer_inode),
        created_unix_ns: (created != 0 && created <= now_ns.saturating_add(CLOCK_SLACK_NS))
            .then_some(created),
        cursor: (role == SegmentRole::Publisher)
            .then(|| seg.cursor().snapshot(seg.capacity_bytes()).map_err(|c| c.0)),
    }
}

/// What a walk over published, unconsumed frames found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walk {
    /// Data and loan frames (padding is not a message).
    pub(super) messages: u64,
    /// Ring bytes they occupy, headers and padding included.
    pub(super) bytes: u64,
}

/// Counts the frames published from position `from` on: follows tags exactly as a consumer
/// would (`Consumer::peek`), stopping at the first unpublished one, at `until` (a
/// publisher's write position), or after one ring. Reads tags and length words only.
pub(super) fn walk<M: RingRead>(
    mem: &M,
    capacity: u64,
    from: u64,
    until: Option<u64>,
) -> Result<Walk, Corruption> {
    let mut pos = from;
    let mut messages = 0u64;
    while pos - from < capacity && until.is_none_or(|end| pos < end) {
        let index = pos & (capacity - 1);
        // Acquire: pairs with the Release tag store in `ring::write_frame`.
        if mem.load_tag(index)? != tag_for(pos) {
            break;
        }
        let step = match decode(pos, capacity, mem.load_meta(index)?)? {
            Header::Pad { skip } => skip,
            Header::Data(f) | Header::Loan(f) => {
                messages += 1;
                frame_bytes(f.index, f.len as u64)
            }
        };
        pos = pos
            .checked_add(step)
            .ok_or_else(|| Corruption(format!("ring position {pos} overflows")))?;
    }
    // A frame cannot end past one ring from `from`; a forged length could claim so.
    Ok(Walk {
        messages,
        bytes: (pos - from).min(capacity),
    })
}
