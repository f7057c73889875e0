//! `crash`: what a SIGKILL leaves behind, for the mechanisms whose memory has a name.
//!
//! - **A named segment outlives its creator** (`shm-open`). A child creates a POSIX
//!   shared-memory object as `shm-open` does (`shm_open(O_CREAT | O_EXCL)`, `ftruncate`, `mmap`;
//!   the size of a ring of 64 B messages; every page touched), tells the parent, and is
//!   SIGKILLed before it can `shm_unlink`. The parent counts the entries of that name in
//!   `/dev/shm` and their bytes, removes them (`shm_unlink`), and counts again.
//! - **What a writer's crash keeps** (`mmap-file`, `mmap-file-durable/N`). A child streams
//!   numbered [`SIZE`]-byte messages (the integrity check's format: sequence number, pattern,
//!   checksum) into the ring of a file, as the `mmap-file-durable/N` sender does (`msync` after
//!   every N-th message; never for `mmap-file`), with nobody reading; after each `send` it
//!   publishes how many it has sent and how many the last `msync` covered. The parent SIGKILLs
//!   it once it has sent [`kill_after`] messages (two and a half `msync` periods: the kill lands
//!   with messages sent since the last one). A fresh process then opens the file by its path,
//!   maps it, and takes every message the ring's tail (in the file) says was published, checking
//!   each. Every message sent must be there (and one more when the kill landed between a `send`
//!   and its count), so every `msync`'d one too.
//!
//! What a SIGKILL tests is the page cache: the kernel keeps a dead process's writes to a shared
//! file mapping, `msync` or not. What `msync(MS_SYNC)` adds, the bytes on the disk, matters when
//! the machine crashes (power loss, kernel panic); the lab cannot show that without crashing
//! the machine, so the table gives both counts: messages sent, and messages `msync`'d.

use std::convert::Infallible;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::integrity::{fill, verify};
use crate::claims::{self, ClaimCheck, Metric};
use crate::error::LabError;
use crate::format::{fmt_count, fmt_size};
use crate::host::Pinning;
use crate::mechanisms::mmap_durable::{self, DurableDir, DurableSide, MmapFileDurable, RingFile};
use crate::mechanisms::raw_ring::ring_len;
use crate::mechanisms::shm_open::{self, SHM_DIR};
use crate::mechanisms::Side;
use crate::options::LATENCY_SIZE;
use crate::process::{
    fork_child, kill_child, wait_child, wait_until, ChildEnd, ChildReport, ChildStats, Children,
    Pause, CHILD_EXIT_FAILED,
};
use crate::shared::SharedRegion;
use crate::table::Table;

/// Size of the crash writer's messages: the smallest with a checksum, so the ring (the size of
/// the others, [`crate::mechanisms::RING_BYTES`]) holds many.
pub const SIZE: usize = 16;

/// Life allowed to every child of the experiment.
const WATCHDOG_SECS: u32 = 60;
/// How long the parent waits for a child to be ready (created its segment, sent its messages).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the parent waits for a killed or finished child to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Words of the control region a child reports through (each on its own cache line).
const STATE: usize = 0;
const SENT: usize = 64;
const SYNCED: usize = 128;
const PUBLISHED: usize = 192;
const INTACT: usize = 256;
const DAMAGED: usize = 320;
const CONTROL_BYTES: usize = 384;

/// Values of the `STATE` word (0, as the region starts: the child is still working).
const READY: u64 = 1;
const FULL: u64 = 2;
const FAILED: u64 = 3;

/// What a SIGKILLed creator of a named shared-memory object left in `/dev/shm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeftoverRow {
    /// The mechanism whose setup the creator did: `shm-open`.
    pub mechanism: String,
    /// The object's file (`/dev/shm/shmsock-lab-killed-PID-K`).
    pub object: String,
    /// The size the creator gave it (`ftruncate`), in bytes.
    pub size: u64,
    /// Entries of that name in `/dev/shm` after the creator was SIGKILLed.
    pub left_after_kill: u64,
    /// Their sizes, in bytes.
    pub bytes_left: u64,
    /// The memory they hold (allocated blocks), in bytes: not freed until `shm_unlink` or a
    /// reboot.
    pub memory_held: u64,
    /// Entries of that name left after the lab removed them with `shm_unlink`.
    pub left_after_unlink: u64,
}

impl LeftoverRow {
    /// The finding, in one sentence: `after SIGKILL of the creator: 1 entry left in /dev/shm,
    /// ...`.
    pub fn finding(&self) -> String {
        let entries = |n: u64| if n == 1 { "entry" } else { "entries" };
        format!(
            "{}: after SIGKILL of the creator: {} {} left in {SHM_DIR}, {} bytes ({} of memory \
             held until shm_unlink or a reboot); removed by the lab with shm_unlink: {} left",
            self.mechanism,
            self.left_after_kill,
            entries(self.left_after_kill),
            self.bytes_left,
            fmt_bytes(self.memory_held),
            self.left_after_unlink
        )
    }
}

/// What a fresh process read back from the file of a writer SIGKILLed mid-stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurvivalRow {
    /// `mmap-file` (no `msync`) or `mmap-file-durable/N`.
    pub mechanism: String,
    /// N: the writer called `msync(MS_SYNC)` after every N-th message; `None`: never.
    pub msync_every: Option<u64>,
    /// Message size in bytes.
    pub size: usize,
    /// Messages the writer counted as sent (`send` returned) before the kill.
    pub sent: u64,
    /// Of those, the messages its last completed `msync` covered (on the disk).
    pub synced: u64,
    /// Messages the ring's tail in the file says were published.
    pub published: u64,
    /// Published messages read back intact (sequence number, pattern, checksum).
    pub intact: u64,
    /// Published messages that failed the check.
    pub damaged: u64,
    /// Whether the writer had filled the ring (nobody reads) and was waiting when killed.
    pub ring_full: bool,
    /// `intact` as a % of `sent` (at most 100): what the persistence claim is checked on.
    pub kept_pct: f64,
    /// The directory of the file and its filesystem.
    pub filesystem: String,
    /// Whether that filesystem is on a disk (not tmpfs): where `msync` writes something.
    pub on_disk: bool,
}

impl SurvivalRow {
    /// Sent messages that were not read back intact.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.intact)
    }

    /// `msync`'d messages that were not read back intact.
    pub fn synced_lost(&self) -> u64 {
        self.synced.saturating_sub(self.intact)
    }

    /// Whether the accounting holds: every message sent read back intact (so every `msync`'d
    /// one), at most one more (sent when the kill landed, not yet counted), none damaged.
    pub fn consistent(&self) -> bool {
        self.lost() == 0
            && self.damaged == 0
            && self.intact == self.published
            && self.published <= self.sent + 1
            && self.synced <= self.sent
    }
}

/// The writers of the survival rows: (mechanism, `msync` every N messages; 0: never).
pub fn writers() -> Vec<(&'static str, u64)> {
    let durable = MmapFileDurable::rows();
    std::iter::once(("mmap-file", 0))
        .chain(
            durable
                .iter()
                .map(|m| (crate::mechanisms::Mechanism::name(m), m.every())),
        )
        .collect()
}

/// How many messages the writer has sent when it is killed: two and a half `msync` periods
/// (so messages were sent since the last one), at least 10; 1,000 for a writer that never
/// syncs.
pub fn kill_after(every: u64) -> u64 {
    if every == 0 {
        1_000
    } else {
        every.saturating_mul(5).div_ceil(2).max(10)
    }
}

/// The control words of a child, in a fresh shared region.
struct Control(SharedRegion);

impl Control {
    fn new() -> Result<Self, LabError> {
        SharedRegion::new(CONTROL_BYTES).map(Self)
    }

    fn load(&self, word: usize) -> u64 {
        // Acquire pairs with the child's Release stores: what it published before is visible.
        self.0.atomic_u64(word).load(Ordering::Acquire)
    }

    fn store(&self, word: usize, value: u64) {
        self.0.atomic_u64(word).store(value, Ordering::Release);
    }
}

/// Removes a shared-memory object by name when dropped, whatever happened before.
struct UnlinkOnDrop<'a>(&'a str);

impl Drop for UnlinkOnDrop<'_> {
    fn drop(&mut self) {
        let _ = rustix::shm::unlink(self.0);
    }
}

/// Forks a child that creates a named shared-memory object the way `shm-open` does, SIGKILLs
/// it before it unlinks, and counts what stays in `/dev/shm`; then removes it.
pub(crate) fn measure_leftover(pinning: Pinning) -> Result<LeftoverRow, LabError> {
    let name = shm_open::unique_name("killed");
    let _cleanup = UnlinkOnDrop(&name);
    let len = ring_len(LATENCY_SIZE);
    let control = Control::new()?;
    let report = ChildReport::new()?;
    let pid = fork_child(pinning.child_cpu, WATCHDOG_SECS, || {
        match SharedRegion::new_shm(&name, len) {
            Ok(segment) => {
                segment.prefault();
                control.store(STATE, READY);
                // Never gets to shm_unlink (nor to dropping `segment`): it is killed here.
                loop {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(err) => {
                report.finish(&Err(err));
                control.store(STATE, FAILED);
                CHILD_EXIT_FAILED
            }
        }
    })?;
    let ready = wait_until(
        "waiting for the creator to map its shared-memory object",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_millis(1)),
        || control.load(STATE) == READY,
        || (control.load(STATE) == FAILED).then_some("the creator failed"),
    );
    kill_child(pid);
    let end = wait_child(pid, REAP_TIMEOUT)?;
    killed_as_planned("the creator of a shared-memory object", ready, end, &report)?;
    let left = entries(&name)?;
    for (file, _, _) in &left {
        let _ = rustix::shm::unlink(format!("/{file}").as_str());
    }
    let after = entries(&name)?;
    Ok(LeftoverRow {
        mechanism: "shm-open".into(),
        object: format!("{SHM_DIR}/{}", name.trim_start_matches('/')),
        size: len as u64,
        left_after_kill: left.len() as u64,
        bytes_left: left.iter().map(|(_, size, _)| size).sum(),
        memory_held: left.iter().map(|(_, _, held)| held).sum(),
        left_after_unlink: after.len() as u64,
    })
}

/// `Ok` if the child was ready when it was killed and died of the SIGKILL; else what happened.
fn killed_as_planned(
    who: &str,
    ready: Result<(), LabError>,
    end: ChildEnd,
    report: &ChildReport,
) -> Result<(), LabError> {
    let killed = end == ChildEnd::Signaled(libc::SIGKILL);
    match ready {
        Ok(()) if killed => Ok(()),
        Ok(()) => Err(LabError::Child {
            detail: format!("{who} ended before the SIGKILL: {}", report.failure(end)),
        }),
        Err(err) => Err(LabError::Child {
            detail: format!("{who} never got ready ({err}): {}", report.failure(end)),
        }),
    }
}

/// The entries of `/dev/shm` whose names begin with `name` (without its `/`): each one's file
/// name, size and allocated bytes.
fn entries(name: &str) -> Result<Vec<(String, u64, u64)>, LabError> {
    let base = name.trim_start_matches('/');
    let listing = |source| LabError::Os {
        what: "listing /dev/shm",
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let Ok(file) = entry.file_name().into_string() else {
            continue;
        };
        if file.starts_with(base) {
            let meta = entry.metadata().map_err(listing)?;
            found.push((file, meta.len(), meta.blocks() * 512));
        }
    }
    Ok(found)
}

/// Forks a writer that streams into a ring file with `msync` every `every` messages (0: never),
/// SIGKILLs it after [`kill_after`] messages, then forks a fresh reader of the file and counts
/// what survived.
pub(crate) fn measure_survival(
    mechanism: &str,
    every: u64,
    pinning: Pinning,
) -> Result<SurvivalRow, LabError> {
    let dir = DurableDir::find();
    // `file` is the creator's handle: the file is removed when it is dropped, at the end.
    let RingFile {
        mut writer,
        path,
        file,
    } = RingFile::create(&dir.path, SIZE, every)?;
    let capacity = mmap_durable::capacity(SIZE);
    let target = kill_after(every).min(capacity / 2);
    let control = Control::new()?;
    let report = ChildReport::new()?;
    let pid = fork_child(pinning.child_cpu, WATCHDOG_SECS, || {
        let Err(err) = write_until_killed(&mut writer, &control, capacity);
        report.finish(&Err(err));
        control.store(STATE, FAILED);
        CHILD_EXIT_FAILED
    })?;
    let ready = wait_until(
        "waiting for the writer to send its messages",
        READY_TIMEOUT,
        Pause::Yield,
        || control.load(SENT) >= target || control.load(STATE) == FULL,
        || (control.load(STATE) == FAILED).then_some("the writer failed"),
    );
    kill_child(pid);
    let end = wait_child(pid, REAP_TIMEOUT)?;
    killed_as_planned("the writer", ready, end, &report)?;
    let (sent, synced) = (control.load(SENT), control.load(SYNCED));
    let ring_full = control.load(STATE) == FULL;
    let results = Control::new()?;
    let mut buf = [0u8; SIZE];
    let mut reader = Children::new();
    reader.fork(
        "reader",
        pinning.child_cpu,
        Duration::from_secs(WATCHDOG_SECS.into()),
        || read_back(&path, capacity, &results, &mut buf),
    )?;
    reader
        .reap(REAP_TIMEOUT)
        .map_err(|failures| LabError::Child {
            detail: failures.join("; "),
        })?;
    drop(file);
    let intact = results.load(INTACT);
    Ok(SurvivalRow {
        mechanism: mechanism.to_string(),
        msync_every: (every > 0).then_some(every),
        size: SIZE,
        sent,
        synced,
        published: results.load(PUBLISHED),
        intact,
        damaged: results.load(DAMAGED),
        ring_full,
        kept_pct: 100.0 * intact.min(sent) as f64 / sent.max(1) as f64,
        filesystem: format!("{} ({})", dir.fs_type, dir.path.display()),
        on_disk: dir.on_disk(),
    })
}

/// The writer child: sends numbered messages until it is killed, publishing after each `send`
/// how many it has sent and how many the last `msync` covered; with the ring full (nobody
/// reads) it says so and waits to be killed. Returns only an error.
fn write_until_killed(
    writer: &mut DurableSide,
    control: &Control,
    capacity: u64,
) -> Result<Infallible, LabError> {
    let mut msg = [0u8; SIZE];
    let mut seq = 0u64;
    loop {
        if seq == capacity {
            control.store(STATE, FULL);
            loop {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        seq += 1;
        fill(&mut msg, seq);
        writer.send(&msg)?;
        control.store(SYNCED, writer.synced());
        control.store(SENT, seq);
    }
}

/// The fresh reader: opens the file at `path`, takes every published message and checks it.
fn read_back(
    path: &Path,
    capacity: u64,
    results: &Control,
    buf: &mut [u8],
) -> Result<ChildStats, LabError> {
    let mut ring = mmap_durable::reopen(path, buf.len())?;
    let published = ring.available();
    if published > capacity {
        return Err(LabError::Integrity {
            detail: format!(
                "the file's ring says {published} messages were published; it holds {capacity}"
            ),
        });
    }
    let (mut intact, mut damaged) = (0u64, 0u64);
    for seq in 1..=published {
        let n = ring.pop(buf)?;
        match verify(&buf[..n], buf.len(), seq) {
            Ok(()) => intact += 1,
            Err(_) => damaged += 1,
        }
    }
    results.store(PUBLISHED, published);
    results.store(INTACT, intact);
    results.store(DAMAGED, damaged);
    Ok(ChildStats::default())
}

/// `1.0 MiB`, `4.0 KiB`, `512 B`.
fn fmt_bytes(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// The table of what SIGKILLed creators of named shared-memory objects left behind.
pub(crate) fn leftover_table(rows: &[LeftoverRow]) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.mechanism.clone(),
                r.object.clone(),
                r.size.to_string(),
                r.left_after_kill.to_string(),
                r.bytes_left.to_string(),
                fmt_bytes(r.memory_held),
                r.left_after_unlink.to_string(),
            ]
        })
        .collect();
    let mut table = Table::new(
        "Crash: the creator of a named shared-memory object SIGKILLed before shm_unlink",
        vec![
            "mechanism",
            "object",
            "bytes",
            "left after SIGKILL",
            "bytes left",
            "memory held",
            "left after shm_unlink",
        ],
        cells,
    );
    table.text_columns = vec![1];
    table.intro = vec![
        "The creator: shm_open(O_CREAT | O_EXCL) + ftruncate + mmap, every page touched, then \
         SIGKILL. A POSIX shared-memory object lives until shm_unlink, not until its last user \
         exits."
            .into(),
    ];
    table.notes = rows.iter().map(LeftoverRow::finding).collect();
    Some(table)
}

/// The table of what fresh readers found in the files of SIGKILLed writers, beside the IPC
/// cheat sheet's persistence claim.
pub(crate) fn table(rows: &[SurvivalRow], checks: &[ClaimCheck]) -> Option<Table> {
    let size = rows.first().map_or(SIZE, |r| r.size);
    let mut table = claims::checked_table(
        format!(
            "Crash: a writer SIGKILLed mid-stream, its file read back by a fresh process ({})",
            fmt_size(size)
        ),
        &[
            "mechanism",
            "msync every",
            "sent",
            "msync'd",
            "read back intact",
            "damaged",
            "lost",
            "filesystem",
        ],
        "IPC cheat sheet",
        rows,
        checks,
        |r| {
            (
                vec![
                    r.mechanism.clone(),
                    r.msync_every.map_or_else(|| "never".into(), fmt_count),
                    fmt_count(r.sent),
                    fmt_count(r.synced),
                    fmt_count(r.intact),
                    r.damaged.to_string(),
                    r.lost().to_string(),
                    r.filesystem.clone(),
                ],
                Metric::Kept,
                r.mechanism.as_str(),
            )
        },
    )?;
    table.text_columns = vec![7, 10];
    table.notes.push(
        "sent: counted by the writer each time send returned; read back: every message the \
         ring's tail in the file says was published (one more than sent when the kill landed \
         between a send and its count), each checked (sequence number, pattern, checksum)."
            .into(),
    );
    table.notes.push(
        "A SIGKILL tests the page cache: the kernel keeps a killed process's writes to a \
         MAP_SHARED file, msync or not. msync(MS_SYNC) is for a machine crash (power loss, \
         kernel panic): then only the msync'd messages were surely on the disk. The lab does \
         not crash the machine."
            .into(),
    );
    if rows.iter().any(|r| !r.on_disk) {
        table.notes.push(format!(
            "The file was on an in-memory filesystem, where msync writes nothing (set {} to a \
             directory on a disk).",
            mmap_durable::DIR_VAR
        ));
    }
    for r in rows.iter().filter(|r| r.ring_full) {
        table.notes.push(format!(
            "{}: the writer had filled its ring (nobody reads) and was waiting when killed.",
            r.mechanism
        ));
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinning() -> Pinning {
        Pinning::choose().expect("affinity")
    }

    #[test]
    fn kills_land_between_two_syncs() {
        assert_eq!(kill_after(0), 1_000);
        assert_eq!(kill_after(1), 10);
        assert_eq!(kill_after(64), 160);
        assert_eq!(kill_after(4096), 10_240);
        let capacity = mmap_durable::capacity(SIZE);
        for (_, every) in writers() {
            let target = kill_after(every);
            assert!(target < capacity / 2, "{every}: {target} of {capacity}");
            assert!(
                every <= 1 || !target.is_multiple_of(every),
                "{every}: {target}"
            );
        }
    }

    #[test]
    fn a_sigkilled_creator_leaves_its_object_and_the_lab_removes_it() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let row = measure_leftover(pinning()).expect("measured");
        assert_eq!(row.left_after_kill, 1, "{row:?}");
        assert_eq!(row.bytes_left, row.size, "{row:?}");
        assert!(
            row.memory_held >= row.size,
            "every page was touched: {row:?}"
        );
        assert_eq!(row.left_after_unlink, 0, "{row:?}");
        assert!(!Path::new(&row.object).exists(), "{}", row.object);
        let finding = row.finding();
        assert!(
            finding.contains("after SIGKILL of the creator: 1 entry left in /dev/shm")
                && finding.contains(&format!("{} bytes", row.size)),
            "{finding}"
        );
    }

    #[test]
    fn every_message_a_killed_writer_sent_is_read_back_msynced_or_not() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (mechanism, every) in writers() {
            let row = measure_survival(mechanism, every, pinning()).expect("measured");
            assert!(row.consistent(), "{row:?}");
            assert!(row.sent >= kill_after(every), "{row:?}");
            assert!(
                row.intact >= row.synced && row.intact >= row.sent,
                "{row:?}"
            );
            assert_eq!(row.kept_pct, 100.0, "{row:?}");
            if every > 0 {
                // The writer synced at least twice before the kill landed.
                assert!(row.synced >= 2 * every, "{row:?}");
            } else {
                assert_eq!(row.synced, 0, "{row:?}");
            }
        }
    }

    #[test]
    fn the_tables_state_the_findings() {
        let leftover = LeftoverRow {
            mechanism: "shm-open".into(),
            object: "/dev/shm/shmsock-lab-killed-1-0".into(),
            size: 1_048_704,
            left_after_kill: 1,
            bytes_left: 1_048_704,
            memory_held: 1_052_672,
            left_after_unlink: 0,
        };
        let text = leftover_table(&[leftover]).expect("a table").to_text();
        assert!(
            text.contains("after SIGKILL of the creator: 1 entry left in /dev/shm, 1048704 bytes"),
            "{text}"
        );
        let row = SurvivalRow {
            mechanism: "mmap-file-durable/64".into(),
            msync_every: Some(64),
            size: SIZE,
            sent: 170,
            synced: 128,
            published: 171,
            intact: 171,
            damaged: 0,
            ring_full: false,
            kept_pct: 100.0,
            filesystem: "ext4 (/tmp)".into(),
            on_disk: true,
        };
        assert!(row.consistent());
        let lost = SurvivalRow {
            intact: 100,
            published: 100,
            ..row.clone()
        };
        assert!(!lost.consistent());
        assert_eq!((lost.lost(), lost.synced_lost()), (70, 28));
        let checks = claims::check(
            |metric, name, same_cpu| {
                (metric == Metric::Kept && name == row.mechanism && !same_cpu)
                    .then_some(row.kept_pct)
            },
            &claims::RunFacts::default(),
        );
        let text = table(&[row], &checks).expect("a table").to_text();
        assert!(text.contains("mmap-file-durable/64"), "{text}");
        assert!(text.contains("agrees"), "{text}");
        assert!(
            text.contains("The lab does not crash the machine"),
            "{text}"
        );
    }
}
