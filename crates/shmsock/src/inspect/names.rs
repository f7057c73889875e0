//! The rendezvous directory as the scan sees it: which names have files, who holds their
//! lock (from `/proc/locks`, without taking it), and what their lock file says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::procfs;
use crate::shm::label::SegmentRole as Role;
use crate::shm::rendezvous::{self, LOCK_LABEL_MAX_BYTES};

/// A name in a rendezvous directory.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) socket_path: PathBuf,
    /// The live holder of its lock.
    pub(super) holder: Option<u32>,
    /// What its lock file says: the role it was bound for and by which pid.
    pub(super) label: Option<(Role, u32)>,
    /// When the socket (or else the lock file) was created.
    pub(super) since: Option<SystemTime>,
}

/// The names with a `.sock` or `.lock` file in `dir`.
pub(super) fn names_in(dir: &Path) -> std::io::Result<BTreeSet<String>> {
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
pub(super) fn rendezvous_names(dir: &Path, locks: &[procfs::HeldLock]) -> Vec<Bound> {
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
