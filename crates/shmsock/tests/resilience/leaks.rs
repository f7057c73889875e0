//! What a process holds, read from `/proc`: open fds (with their targets and flags), mappings
//! (of segments, counted like fds), RSS, and the files in `/dev/shm` and the rendezvous
//! directory. Used to show that nothing is left behind after a crash, a refused handshake
//! or thousands of connections.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// A `kB` field of `/proc/PID/status`, in bytes (the kit's, which other binaries share).
pub use shmsock_testkit::harness::status_bytes;

/// `O_CLOEXEC` as shown in the `flags:` line of `/proc/PID/fdinfo/N` (octal).
pub const O_CLOEXEC_FDINFO: u64 = 0o2_000_000;

/// The open fds of process `pid` ("self" for us) as (number, target) pairs.
pub fn fds_of(pid: &str) -> Vec<(u32, String)> {
    let dir = format!("/proc/{pid}/fd");
    let mut out: Vec<(u32, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            // The directory fd `read_dir` itself holds while listing.
            (!(target.starts_with("/proc/") && target.ends_with("/fd"))).then_some((n, target))
        })
        .collect();
    out.sort();
    out
}

/// Our open fds, without the one `read_dir` itself used.
pub fn open_fds() -> Vec<(u32, String)> {
    fds_of("self")
}

pub fn fd_count() -> usize {
    open_fds().len()
}

/// Waits (up to 3 s: reaped children's pipes close on a reader thread) until our fd count
/// is back to `baseline`; on failure, the message lists the fds that are new.
pub fn assert_fds_return_to(baseline: &[(u32, String)], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = open_fds();
        if now.len() <= baseline.len() {
            return;
        }
        if Instant::now() >= deadline {
            let new: Vec<_> = now.iter().filter(|fd| !baseline.contains(fd)).collect();
            panic!(
                "{what}: {} fds open, {} at the baseline; new: {new:?}",
                now.len(),
                baseline.len()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What names a mapping of a shmsock memfd in `/proc/PID/maps`: segments and pools are
/// memfds named `shmsock:<role>:...` (the tests' hand-made ones `shmsock-...`), mapped
/// as `/memfd:<name> (deleted)`.
const SEGMENT_MAPPING: &str = "/memfd:shmsock";

/// Our mappings of shmsock segments and pools (ours and our peers'): lines of
/// `/proc/self/maps`.
pub fn segment_mappings() -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .expect("reading /proc/self/maps")
        .lines()
        .filter(|l| l.contains(SEGMENT_MAPPING))
        .map(str::to_owned)
        .collect()
}

/// Waits (up to 3 s, as for fds) until our segment mappings are back to `baseline`'s
/// count; on failure, the message lists the ones that are new.
pub fn assert_mappings_return_to(baseline: &[String], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = segment_mappings();
        if now.len() <= baseline.len() {
            return;
        }
        if Instant::now() >= deadline {
            let new: Vec<_> = now.iter().filter(|m| !baseline.contains(m)).collect();
            panic!(
                "{what}: {} segment mappings, {} at the baseline; new: {new:#?}",
                now.len(),
                baseline.len()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Checks that the mappings of a live connection show up (so that
/// [`assert_mappings_return_to`] can see a leak at all).
#[track_caller]
pub fn assert_mappings_seen(baseline: &[String], what: &str) {
    let now = segment_mappings();
    assert!(
        now.len() > baseline.len(),
        "{what}: a live connection's segments are not among our mappings \
         (no `{SEGMENT_MAPPING}` line beyond the baseline's {})",
        baseline.len()
    );
}

/// The `flags:` field (octal) of `/proc/PID/fdinfo/N`.
pub fn fd_flags(pid: &str, fd: u32) -> u64 {
    let path = format!("/proc/{pid}/fdinfo/{fd}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let flags = text
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap_or_else(|| panic!("no flags in {path}"));
    u64::from_str_radix(flags.trim(), 8).expect("octal flags")
}

/// Names in `/dev/shm` (the library must never create one).
pub fn dev_shm() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that `/dev/shm` holds nothing new of ours. Other programs on the machine may
/// create names there while we run, so only names that could be ours fail the test; any
/// other new name is printed.
pub fn assert_dev_shm_unchanged(before: &BTreeSet<String>, what: &str) {
    let after = dev_shm();
    let new: Vec<&String> = after.difference(before).collect();
    let ours: Vec<&&String> = new
        .iter()
        .filter(|n| n.contains("shmsock") || n.contains(&std::process::id().to_string()))
        .collect();
    assert!(ours.is_empty(), "{what}: new names in /dev/shm: {ours:?}");
    if !new.is_empty() {
        eprintln!("{what}: note: /dev/shm gained {new:?} (not ours)");
    }
}

/// Entries of the rendezvous directory whose name starts with the endpoint's name.
pub fn runtime_files(dir: &Path, endpoint: &str) -> Vec<String> {
    let name = endpoint.trim_start_matches("shm://");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("listing the rendezvous directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.strip_prefix(name).is_some_and(|r| r.starts_with('.')))
        .collect();
    v.sort();
    v
}

/// Our RSS, in bytes.
pub fn rss_bytes() -> u64 {
    status_bytes("self", "VmRSS")
}

/// Mappings of `/proc/PID/maps` backed by inode `ino`: their permission strings.
pub fn mapping_perms(pid: &str, ino: u64) -> Vec<String> {
    let path = format!("/proc/{pid}/maps");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 5 && cols[4].parse::<u64>().ok() == Some(ino))
                .then(|| cols[1].to_owned())
        })
        .collect()
}

/// Percentile `p` (0..=100) of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let i = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[i]
}
