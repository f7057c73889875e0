//! `mmap-file-durable/N`: the `mmap-file` ring (the textbook ring in a `MAP_SHARED` mapping of a
//! file) made durable: the sending side calls `msync(MS_SYNC)` after every N-th message it
//! sends, before `send` returns, for N = 1, 64 and 4096 (three rows). What persistence costs is
//! the difference between these rows and `mmap-file`.
//!
//! ```text
//! send(msg):  copy msg into the ring slot, publish tail        (the raw-ring protocol)
//!             every N-th message: msync(ring, MS_SYNC)          (wait for the disk)
//! ```
//!
//! `msync` on memory with no disk behind it (tmpfs) returns at once, so the file goes into a
//! directory on a disk-backed filesystem ([`DurableDir::find`]): `SHMSOCK_LAB_DURABLE_DIR` if
//! set, else the temporary directory, else `/var/tmp`; each row's note says which filesystem it
//! ran on.
//!
//! What the sync buys is not what a killed process needs: a process's writes to a `MAP_SHARED`
//! file mapping are in the page cache the moment they are made and stay there when the process
//! dies, `msync` or not (the `crash` experiment shows it). After `msync(MS_SYNC)` returns they
//! are on the disk too, so they also survive a power loss or a kernel crash.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::raw_ring::{ends, ring_len, Consumer, RawRingSide};
use super::{Mechanism, Pair, Pattern, Side};
use crate::error::LabError;
use crate::shared::SharedRegion;

/// The environment variable that names the directory for the durable rows' files.
pub const DIR_VAR: &str = "SHMSOCK_LAB_DURABLE_DIR";

/// Filesystems that keep files in memory only: `msync` has no disk to write to there.
const IN_MEMORY: [&str; 4] = ["tmpfs", "ramfs", "devtmpfs", "hugetlbfs"];

/// The `mmap-file-durable/N` rows: the file-backed ring with `msync(MS_SYNC)` every N messages.
#[derive(Debug, Clone, Copy)]
pub struct MmapFileDurable {
    name: &'static str,
    every: NonZeroU64,
}

impl MmapFileDurable {
    /// The three rows: `msync` after every message, every 64 and every 4096.
    pub fn rows() -> [Self; 3] {
        [
            Self::new("mmap-file-durable/1", NonZeroU64::MIN),
            Self::new("mmap-file-durable/64", NonZeroU64::MIN.saturating_add(63)),
            Self::new(
                "mmap-file-durable/4096",
                NonZeroU64::MIN.saturating_add(4095),
            ),
        ]
    }

    const fn new(name: &'static str, every: NonZeroU64) -> Self {
        Self { name, every }
    }

    /// N: the sender calls `msync` after every N-th message.
    pub fn every(&self) -> u64 {
        self.every.get()
    }
}

impl Mechanism for MmapFileDurable {
    fn name(&self) -> &'static str {
        self.name
    }

    fn note(&self) -> Option<String> {
        Some(format!(
            "mmap-file-durable/N: the ring's file is in {}; the sender calls msync(MS_SYNC) \
             after every N-th message",
            DurableDir::find().describe()
        ))
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let dir = DurableDir::find();
        let (parent, child) = super::raw_ring::sides(pattern, size, |len| {
            SharedRegion::new_file_in(&dir.path, len)
        })?;
        Ok(Pair {
            parent: Box::new(DurableSide::new(parent, self.every())),
            child: Box::new(DurableSide::new(child, self.every())),
        })
    }
}

/// A side of the ring that syncs the ring it sends through every `every` messages.
pub(crate) struct DurableSide {
    ring: RawRingSide,
    /// Sync after every this many messages sent; `None`: never.
    every: Option<NonZeroU64>,
    /// Messages sent.
    sent: u64,
    /// Messages sent before the last `msync` that returned.
    synced: u64,
}

impl DurableSide {
    /// `ring` with an `msync` of the ring it sends through after every `every`-th message
    /// (0: never).
    pub(crate) fn new(ring: RawRingSide, every: u64) -> Self {
        Self {
            ring,
            every: NonZeroU64::new(every),
            sent: 0,
            synced: 0,
        }
    }

    /// How many of the messages sent were covered by the last `msync` that returned: on the
    /// disk.
    pub(crate) fn synced(&self) -> u64 {
        self.synced
    }
}

impl Side for DurableSide {
    fn start(&mut self) -> Result<(), LabError> {
        self.ring.start()
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        self.ring.send(msg)?;
        self.sent += 1;
        if let Some(every) = self.every {
            if self.sent % every == 0 {
                if let Some(region) = self.ring.sent_region() {
                    region.sync()?;
                }
                self.synced = self.sent;
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        self.ring.recv(buf)
    }
}

/// A ring of `size`-byte messages in a new file of `dir`, for one writer (the `crash`
/// experiment's): its sending side, syncing every `every` messages (0: never), the file's
/// path, and the file itself, removed when this process drops its last handle.
pub(crate) struct RingFile {
    /// The sending side; nothing receives.
    pub(crate) writer: DurableSide,
    /// Where the file is, for a process that opens it afresh ([`reopen`]).
    pub(crate) path: PathBuf,
    /// The creator's handle: keep it until the file is no longer needed.
    pub(crate) file: Rc<SharedRegion>,
}

impl RingFile {
    /// Creates the file in `dir` and the writer's side of the ring in it.
    pub(crate) fn create(dir: &Path, size: usize, every: u64) -> Result<Self, LabError> {
        let file = Rc::new(SharedRegion::new_file_in(dir, ring_len(size))?);
        let path = file
            .file_path()
            .map(Path::to_path_buf)
            .ok_or(LabError::Unsupported {
                mechanism: "mmap-file-durable",
                what: "a ring file without a path",
            })?;
        let (producer, _) = ends(Rc::clone(&file), size);
        Ok(Self {
            writer: DurableSide::new(RawRingSide::new(Some(producer), None), every),
            path,
            file,
        })
    }
}

/// Opens the ring file at `path` afresh (`open`, `mmap`) and returns its consuming end: what a
/// process that finds the file after its writer died reads.
pub(crate) fn reopen(path: &Path, size: usize) -> Result<Consumer, LabError> {
    let region = SharedRegion::open_file(path, ring_len(size))?;
    Ok(ends(Rc::new(region), size).1)
}

/// Slots of a ring of `size`-byte messages: how many a writer can send with nobody reading.
pub(crate) fn capacity(size: usize) -> u64 {
    super::raw_ring::slot_count(size)
}

/// The directory the durable rows' files go in, and the filesystem it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableDir {
    /// The directory.
    pub path: PathBuf,
    /// Its filesystem's type (`ext4`, `xfs`, `tmpfs`), or `unknown`.
    pub fs_type: String,
    /// The device mounted there (`/dev/vda1`), or `unknown`.
    pub device: String,
}

impl DurableDir {
    /// The first of `$SHMSOCK_LAB_DURABLE_DIR`, the temporary directory and `/var/tmp` that
    /// exists and is not on an in-memory filesystem (by `/proc/self/mounts`); the temporary
    /// directory if none is.
    pub fn find() -> Self {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let candidates = std::env::var_os(DIR_VAR)
            .map(PathBuf::from)
            .into_iter()
            .chain([std::env::temp_dir(), PathBuf::from("/var/tmp")])
            .filter(|dir| dir.is_dir());
        let mut first = None;
        for dir in candidates {
            let found = Self::on(&mounts, dir);
            if found.on_disk() {
                return found;
            }
            first.get_or_insert(found);
        }
        first.unwrap_or_else(|| Self::on(&mounts, std::env::temp_dir()))
    }

    /// `dir` and the filesystem `mounts` (the text of `/proc/self/mounts`) says it is on: the
    /// last-mounted of the longest mount points that contain it.
    fn on(mounts: &str, dir: PathBuf) -> Self {
        let real = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        let mut best: Option<(usize, &str, &str)> = None;
        for line in mounts.lines() {
            let mut fields = line.split_whitespace();
            let (Some(device), Some(point), Some(fs_type)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let point = unescape(point);
            if real.starts_with(&point) && best.is_none_or(|(len, _, _)| point.len() >= len) {
                best = Some((point.len(), device, fs_type));
            }
        }
        let (device, fs_type) = best.map_or(("unknown", "unknown"), |(_, d, t)| (d, t));
        Self {
            path: dir,
            fs_type: fs_type.to_string(),
            device: device.to_string(),
        }
    }

    /// Whether the filesystem keeps its files on a device (not in memory only, as tmpfs does).
    pub fn on_disk(&self) -> bool {
        !IN_MEMORY.contains(&self.fs_type.as_str())
    }

    /// `/tmp, on ext4 (/dev/vda)`; on tmpfs it says that `msync` writes nothing there.
    pub fn describe(&self) -> String {
        let place = format!(
            "{}, on {} ({})",
            self.path.display(),
            self.fs_type,
            self.device
        );
        if self.on_disk() {
            place
        } else {
            format!(
                "{place}: in memory only, so msync has no disk to write to and these rows do \
                 not show what persistence costs (set {DIR_VAR} to a directory on a disk)"
            )
        }
    }
}

/// A mount point as `/proc/self/mounts` writes it, with its octal escapes (`\040` for a space)
/// decoded.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
/dev/vda1 / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid 0 0
/dev/vdb1 /tmp/big\\040disk xfs rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
";

    #[test]
    fn the_filesystem_of_a_directory_is_its_longest_mount_point() {
        let on = |dir: &str| DurableDir::on(MOUNTS, PathBuf::from(dir));
        let tmp = on("/tmp");
        assert_eq!((tmp.fs_type.as_str(), tmp.on_disk()), ("tmpfs", false));
        assert!(tmp.describe().contains("no disk"), "{}", tmp.describe());
        let var = on("/var/tmp");
        assert_eq!(
            (var.fs_type.as_str(), var.device.as_str()),
            ("ext4", "/dev/vda1")
        );
        assert!(var.on_disk());
        assert_eq!(on("/tmp/big disk").fs_type, "xfs");
        assert_eq!(unescape("/a\\040b\\\\"), "/a b\\\\");
    }

    #[test]
    fn the_sender_syncs_every_nth_message_and_counts_what_was_synced() {
        let dir = std::env::temp_dir();
        let RingFile {
            mut writer, path, ..
        } = RingFile::create(&dir, 16, 4).expect("ring file");
        for seq in 1..=10u64 {
            let mut msg = [0u8; 16];
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            writer.send(&msg).expect("send");
            assert_eq!(writer.synced(), seq - seq % 4, "after message {seq}");
        }
        // Another mapping of the same file, opened afresh, sees the ten messages.
        let mut reader = reopen(&path, 16).expect("reopened");
        assert_eq!(reader.available(), 10);
        let mut buf = [0u8; 16];
        reader.pop(&mut buf).expect("first message");
        assert_eq!(buf[..8], 1u64.to_le_bytes());
        assert!(capacity(16) >= 10);
    }

    #[test]
    fn the_file_is_removed_with_its_creators_last_handle() {
        let ring = RingFile::create(&std::env::temp_dir(), 64, 0).expect("ring file");
        let path = ring.path.clone();
        assert!(path.exists());
        drop(ring);
        assert!(!path.exists(), "{} left behind", path.display());
    }
}
