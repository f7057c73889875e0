//! Parsing what `/proc` and other processes' segments say, garbage included.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::MemfdFlags;

use super::procfs::{
    cmdline_text, memfd_label, parse_label, parse_locks, segment_fds, HeldLock, SegmentFd,
};
use super::reading::{self, Walk};
use super::sides::{late_peers, open_segments};
use super::Role;
use crate::shm::label::{memfd_name, MEMFD_NAME_MAX_BYTES};
use crate::shm::rendezvous::parse_lock_label;
use crate::shm::ring::heap::HeapRing;
use crate::shm::ring::{Producer, Push};
use crate::shm::segment::{
    word, Counter, OwnedSegment, PeerSegment, SegmentRefusal, REQUIRED_SEALS,
};

#[test]
fn memfd_links_and_labels_parse_only_when_well_formed() {
    assert_eq!(
        memfd_label("/memfd:shmsock:listener:/run/x/a.sock (deleted)"),
        Some("shmsock:listener:/run/x/a.sock")
    );
    assert_eq!(memfd_label("/memfd:plain"), Some("plain"));
    assert_eq!(memfd_label("/tmp/file"), None);
    assert_eq!(memfd_label("socket:[1234]"), None);
    assert_eq!(
        parse_label("shmsock:connector:/run/user/1/shmsock/prices.sock"),
        Some((
            Role::Connector,
            PathBuf::from("/run/user/1/shmsock/prices.sock")
        ))
    );
    for garbage in [
        "shmsock",
        "shmsock-pool",
        "shmsock:",
        "shmsock:listener",
        "shmsock:emperor:/run/a.sock",
        "shmsock:listener:relative/a.sock",
        "shmsock:listener:/run/a.lock",
        "shmsock:listener:/run/.sock",
        "other:listener:/run/a.sock",
    ] {
        assert_eq!(parse_label(garbage), None, "{garbage:?}");
    }
}

#[test]
fn a_segment_is_named_after_its_role_and_socket_and_the_name_fits_the_kernel_limit() {
    let name = memfd_name(Role::Publisher, "shm://ticks");
    let (role, path) = parse_label(&name).expect("our own label parses");
    assert_eq!(role, Role::Publisher);
    assert_eq!(path.file_name().unwrap(), "ticks.sock");
    assert_eq!(
        path.parent().unwrap(),
        crate::shm::runtime_dir::runtime_dir_path()
    );
    let long = format!("shm://{}", "é".repeat(200));
    let cut = memfd_name(Role::Subscriber, &long);
    assert!(cut.len() <= MEMFD_NAME_MAX_BYTES, "{}", cut.len());
    // The kernel takes it.
    rustix::fs::memfd_create(cut.as_str(), MemfdFlags::CLOEXEC).expect("memfd_create");
}

#[test]
fn proc_locks_lines_give_holders_and_skip_waiters_and_garbage() {
    let text = "\
1: FLOCK  ADVISORY  WRITE 11172 fe:00:10010633 0 EOF
1: -> FLOCK  ADVISORY  WRITE 11180 fe:00:10010633 0 EOF
2: POSIX  ADVISORY  READ 99 00:1b:42 0 EOF
3: FLOCK  ADVISORY  WRITE notapid fe:00:1 0 EOF
4: FLOCK  ADVISORY  WRITE 5 zz:00:1 0 EOF
garbage
";
    assert_eq!(
        parse_locks(text),
        [
            HeldLock {
                pid: 11172,
                major: 0xfe,
                minor: 0,
                inode: 10010633
            },
            HeldLock {
                pid: 99,
                major: 0,
                minor: 0x1b,
                inode: 42
            },
        ]
    );
    assert!(parse_locks("").is_empty());
}

#[test]
fn lock_labels_are_believed_only_when_well_formed() {
    assert_eq!(
        parse_lock_label(b"shmsock publisher 42\n"),
        Some((Role::Publisher, 42))
    );
    assert_eq!(
        parse_lock_label(b"shmsock listener 7"),
        Some((Role::Listener, 7))
    );
    for garbage in [
        &b""[..],
        b"shmsock listener 0\n",
        b"shmsock listener -3\n",
        b"shmsock listener 99999999999\n",
        b"shmsock king 4\n",
        b"shmsock listener 4 extra\n",
        b"zmq listener 4\n",
        b"\xff\xfe\x00garbage",
    ] {
        assert_eq!(parse_lock_label(garbage), None, "{garbage:?}");
    }
}

#[test]
fn command_lines_are_joined_and_cut() {
    assert_eq!(
        cmdline_text(b"shmsock\0recv\0shm://x\0"),
        "shmsock recv shm://x"
    );
    let long = cmdline_text(&vec![b'a'; 1000]);
    assert!(long.len() <= 256 + '…'.len_utf8());
    assert!(long.ends_with('…'));
    assert_eq!(cmdline_text(b""), "");
}

/// A heap ring holding `sizes` published frames.
fn ring_with(capacity: u64, sizes: &[usize]) -> (HeapRing, u64) {
    let ring = HeapRing::new(capacity);
    let mut producer = Producer::new(capacity);
    for &n in sizes {
        let pushed = producer.try_push(&ring, || 0, &vec![7u8; n]).expect("push");
        assert_eq!(pushed, Push::Done);
    }
    (ring, producer.position())
}

#[test]
fn the_walk_counts_published_frames_as_a_consumer_would() {
    let (ring, end) = ring_with(4096, &[1, 100, 300, 8]);
    assert_eq!(
        reading::walk(&ring, 4096, 0, None).unwrap(),
        Walk {
            messages: 4,
            bytes: end
        }
    );
    // From the second frame on.
    let second = crate::shm::ring::frame_bytes(0, 1);
    assert_eq!(
        reading::walk(&ring, 4096, second, None).unwrap().messages,
        3
    );
    // An unpublished position: nothing.
    assert_eq!(
        reading::walk(&ring, 4096, end, None).unwrap(),
        Walk {
            messages: 0,
            bytes: 0
        }
    );
    // A publisher's write position bounds it.
    assert_eq!(
        reading::walk(&ring, 4096, 0, Some(second))
            .unwrap()
            .messages,
        1
    );
}

#[test]
fn the_walk_skips_padding_at_the_ring_end() {
    // 3 frames of 1000 B fill 3 x 1024 of 4096; the 4th does not fit before the end.
    let ring = HeapRing::new(4096);
    let mut producer = Producer::new(4096);
    producer.try_push(&ring, || 0, &[1u8; 1000]).unwrap();
    producer.try_push(&ring, || 0, &[1u8; 1000]).unwrap();
    // The consumer read these two: the producer may wrap over them.
    let consumed = producer.position();
    producer.try_push(&ring, || 0, &[1u8; 1000]).unwrap();
    assert_eq!(
        producer.try_push(&ring, || consumed, &[2u8; 1000]).unwrap(),
        Push::Done
    );
    assert!(producer.position() > 4096, "the last frame wrapped");
    let walk = reading::walk(&ring, 4096, consumed, None).unwrap();
    assert_eq!(walk.messages, 2, "one frame before the pad, one after");
    assert_eq!(walk.bytes, producer.position() - consumed);
}

#[test]
fn a_forged_ring_is_an_error_or_a_bounded_count_never_a_panic() {
    let capacity = 4096;
    let ring = HeapRing::new(capacity);
    // A published frame claiming more bytes than the ring has.
    ring.poke(0, crate::shm::ring::tag_for(0));
    ring.poke(8, 100_000);
    assert!(reading::walk(&ring, capacity, 0, None).is_err());
    // An unknown kind.
    ring.poke(8, 16 | (9 << 32));
    assert!(reading::walk(&ring, capacity, 0, None).is_err());
    // A hostile consumed position near the end of u64: tags never match, no overflow.
    for from in [u64::MAX, u64::MAX - 15, u64::MAX - 4096] {
        let w = reading::walk(&ring, capacity, from, None);
        assert!(w.is_err() || w.unwrap().bytes <= capacity);
    }
    // Every tag published, each frame a 16-byte empty one: bounded by one ring.
    let ring = HeapRing::new(capacity);
    for pos in (0..capacity).step_by(16) {
        ring.poke(pos, crate::shm::ring::tag_for(pos));
        ring.poke(pos + 8, 0);
    }
    let w = reading::walk(&ring, capacity, 0, None).unwrap();
    assert_eq!(w.bytes, capacity);
    assert_eq!(w.messages, capacity / 16);
}

fn dup(seg: &OwnedSegment) -> OwnedFd {
    seg.fd().try_clone_to_owned().expect("dup")
}

#[test]
fn a_labelled_segment_reads_back_its_counters_and_identity() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mine = OwnedSegment::create_for(4096, Role::Listener, "shm://inspect-unit").unwrap();
    let theirs = OwnedSegment::create_for(8192, Role::Connector, "shm://inspect-unit").unwrap();
    let peer = PeerSegment::open(dup(&theirs), 8192).unwrap();
    mine.note_peer(4242, &peer);
    mine.count(Counter::Sent, 10);
    mine.count(Counter::Sent, 5);
    mine.count(Counter::Received, 3);
    let seg = PeerSegment::inspect(dup(&mine)).expect("our own segment passes");
    assert_eq!(seg.capacity_bytes(), 4096);
    let r = reading::read(&seg, Role::Listener, now);
    assert_eq!(r.pid, std::process::id());
    assert_eq!((r.msgs_sent, r.bytes_sent), (2, 15));
    assert_eq!((r.msgs_received, r.bytes_received), (1, 3));
    assert_eq!(r.peer_pid, Some(4242));
    assert_eq!(r.peer_inode, Some(peer.inode()));
    assert!(r
        .created_unix_ns
        .is_some_and(|c| c.abs_diff(now) < 60_000_000_000));
    assert!(r.cursor.is_none(), "only publishers have a cursor");
    // A fresh segment has no peer yet.
    let r = reading::read(
        &PeerSegment::inspect(dup(&theirs)).unwrap(),
        Role::Connector,
        now,
    );
    assert_eq!((r.peer_pid, r.peer_inode), (None, None));
}

#[test]
fn a_peer_segment_the_listing_missed_is_looked_up_in_the_peer_process() {
    let pid = std::process::id();
    let uid = rustix::process::geteuid().as_raw();
    let mine = OwnedSegment::create_for(4096, Role::Listener, "shm://inspect-late").unwrap();
    let theirs = OwnedSegment::create_for(4096, Role::Connector, "shm://inspect-late").unwrap();
    let peer = PeerSegment::open(dup(&theirs), 4096).unwrap();
    let mine_inode = PeerSegment::inspect(dup(&mine)).unwrap().inode();
    // The listing saw only our side (the connector made its segment after it).
    let listed: BTreeMap<u64, Vec<SegmentFd>> = segment_fds(pid)
        .unwrap()
        .segments
        .into_iter()
        .filter(|s| s.inode == mine_inode)
        .map(|s| (s.inode, vec![s]))
        .collect();
    assert_eq!(listed.len(), 1, "our own segment is listed");
    let mut notes = Vec::new();
    let found = open_segments(listed.clone(), 1, &mut notes);
    assert!(late_peers(&found, uid).is_empty(), "no peer named yet");
    mine.note_peer(i32::try_from(pid).unwrap(), &peer);
    let found = open_segments(listed.clone(), 1, &mut notes);
    let late = late_peers(&found, uid);
    assert_eq!(late.keys().copied().collect::<Vec<_>>(), [peer.inode()]);
    assert_eq!(late[&peer.inode()][0].role, Role::Connector);
    assert_eq!(late[&peer.inode()][0].pid, pid);
    // A peer pid that is no process of ours is not looked into.
    mine.note_peer(i32::MAX, &peer);
    let found = open_segments(listed, 1, &mut notes);
    assert!(late_peers(&found, uid).is_empty());
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn implausible_identity_words_read_as_unknown() {
    let seg = OwnedSegment::create_for(4096, Role::Connector, "shm://inspect-garbage").unwrap();
    seg.scribble(word::PEER_PID.raw(), u64::MAX);
    seg.scribble(word::CREATED_UNIX_NS.raw(), u64::MAX);
    seg.scribble(word::MSGS_SENT.raw(), u64::MAX);
    let r = reading::read(
        &PeerSegment::inspect(dup(&seg)).unwrap(),
        Role::Connector,
        1,
    );
    assert_eq!(r.peer_pid, None);
    assert_eq!(r.created_unix_ns, None);
    assert_eq!(r.msgs_sent, u64::MAX, "a count is a count");
    seg.scribble(word::PEER_PID.raw(), u64::from(u32::MAX));
    let r = reading::read(
        &PeerSegment::inspect(dup(&seg)).unwrap(),
        Role::Connector,
        1,
    );
    assert_eq!(r.peer_pid, None, "no pid is above i32::MAX");
}

#[test]
fn a_publisher_with_a_torn_cursor_reads_as_an_error_not_a_hang() {
    let seg = OwnedSegment::create_for(4096, Role::Publisher, "shm://inspect-cursor").unwrap();
    // write_pos below oldest_pos: inconsistent.
    seg.scribble(word::OLDEST_POS.raw(), 64);
    let r = reading::read(
        &PeerSegment::inspect(dup(&seg)).unwrap(),
        Role::Publisher,
        1,
    );
    assert!(matches!(r.cursor, Some(Err(_))), "{:?}", r.cursor);
}

#[test]
fn a_segment_with_a_bad_header_is_refused() {
    for (offset, value) in [
        (word::MAGIC.raw(), 0xdead_beef),
        (word::VERSION.raw(), 99),
        (word::SEGMENT_LEN.raw(), 1 << 40),
        (word::RING_CAPACITY.raw(), 8192),
        (word::RING_OFFSET.raw(), 0),
        (word::PID.raw(), 0),
        (word::FLAGS.raw(), 0x80),
    ] {
        let seg = OwnedSegment::create_for(4096, Role::Inbox, "shm://inspect-bad").unwrap();
        seg.scribble(offset, value);
        match PeerSegment::inspect(dup(&seg)) {
            Err(SegmentRefusal::BadHeader(_)) => {}
            Err(other) => panic!("offset {offset}: {other}"),
            Ok(_) => panic!("offset {offset}: a bad header passed"),
        }
    }
}

/// A memfd of `len` bytes filled with a pattern, sealed if `sealed`.
fn raw_memfd(len: usize, sealed: bool) -> OwnedFd {
    let fd = rustix::fs::memfd_create("shmsock:listener:/x.sock", MemfdFlags::ALLOW_SEALING)
        .expect("memfd");
    rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
    let junk: Vec<u8> = (0..len.min(8192)).map(|i| (i * 131 % 251) as u8).collect();
    rustix::io::pwrite(&fd, &junk, 0).expect("pwrite");
    if sealed {
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS).expect("seal");
    }
    fd
}

#[test]
fn garbage_memfds_are_refused_whatever_their_shape() {
    for (len, sealed) in [
        (4096 + 4096, true),
        (4096 + 4096, false),
        (100, true),
        (0, true),
        (4096 + 4095, true),
        (4096 + (1 << 20) + 4096, true),
    ] {
        let fd = raw_memfd(len, sealed);
        assert!(
            PeerSegment::inspect(fd).is_err(),
            "{len} bytes, sealed {sealed}"
        );
    }
    // Not a memfd at all.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let fd: OwnedFd = file.into();
    assert!(PeerSegment::inspect(fd.as_fd().try_clone_to_owned().unwrap()).is_err());
}
