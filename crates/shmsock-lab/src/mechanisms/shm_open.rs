//! `shm-open`: the textbook ring (`raw-ring`) in a POSIX shared-memory object, set up the way
//! the IPC cheat sheet's "shared memory in 4 calls" does it.
//!
//! ```text
//! parent (before the fork)                          child (after the fork, in `start`)
//! fd = shm_open("/shmsock-lab-ring-PID-K",
//!               O_CREAT | O_EXCL | O_RDWR, 0600)
//! ftruncate(fd, ring bytes)
//! p = mmap(NULL, ring bytes, PROT_READ | PROT_WRITE,
//!          MAP_SHARED, fd, 0)
//!                                                    fd = shm_open(the same name, O_RDWR)
//!                                                    p = mmap(..., MAP_SHARED, fd, 0)
//! ... the raw-ring protocol: no system call per message ...
//! shm_unlink(name)  (when the parent drops its side)
//! ```
//!
//! The child does not use the mapping it inherited across the fork: it finds each ring by its
//! name, as an unrelated process would ("any process that shm_open + mmap the same name sees the
//! same memory"). The pages are shmem pages like `raw-ring`'s anonymous shared memory, so the
//! same speed is expected; the rows are measured side by side.
//!
//! The name is the hazard: a POSIX shared-memory object lives until `shm_unlink`, not until its
//! last user exits, so a creator killed before it unlinks leaves the object, and the memory it
//! holds, in [`SHM_DIR`]. The `crash` experiment measures that (`experiments::crash`). The lab's
//! names start with [`NAME_PREFIX`] and carry the creating process's id.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::raw_ring::{ends, ring_len, RawRingSide};
use super::{Mechanism, Pair, Pattern, Side};
use crate::error::LabError;
use crate::shared::SharedRegion;

/// Where Linux keeps POSIX shared-memory objects: `shm_open("/name")` opens the file
/// `/dev/shm/name` (glibc and rustix both do).
pub const SHM_DIR: &str = "/dev/shm";

/// How the names of the lab's shared-memory objects begin (after the `/`).
pub const NAME_PREFIX: &str = "shmsock-lab-";

/// A name no other object of this or any other process has: `/shmsock-lab-KIND-PID-K`.
pub(crate) fn unique_name(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "/{NAME_PREFIX}{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `shm-open` row: the textbook ring in POSIX shared-memory objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShmOpen;

impl Mechanism for ShmOpen {
    fn name(&self) -> &'static str {
        "shm-open"
    }

    fn note(&self) -> Option<String> {
        Some(format!(
            "shm-open: each ring is a POSIX shared-memory object in {SHM_DIR} (the parent: \
             shm_open + ftruncate + mmap; the child: shm_open + mmap by name), removed with \
             shm_unlink at the end"
        ))
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let len = ring_len(size);
        // Each ring: a new object, the ends of the ring in it, and its name for the child.
        let create = || {
            let name = unique_name("ring");
            let region = Rc::new(SharedRegion::new_shm(&name, len)?);
            let (producer, consumer) = ends(region, size);
            Ok::<_, LabError>((producer, consumer, name))
        };
        // child -> parent always; parent -> child only for ping-pong.
        let (_, up_rx, up) = create()?;
        let (parent, down) = match pattern {
            Pattern::Stream => (RawRingSide::new(None, Some(up_rx)), None),
            Pattern::PingPong => {
                let (down_tx, _, down) = create()?;
                (RawRingSide::new(Some(down_tx), Some(up_rx)), Some(down))
            }
        };
        Ok(Pair {
            parent: Box::new(parent),
            child: Box::new(ByName {
                up,
                down,
                size,
                ring: None,
            }),
        })
    }
}

/// The child's side: the names of its rings until [`Side::start`] maps them.
struct ByName {
    /// The ring this side sends through (child -> parent).
    up: String,
    /// The ring it receives from (parent -> child), in ping-pong.
    down: Option<String>,
    /// Message size.
    size: usize,
    /// The rings, once mapped by name.
    ring: Option<RawRingSide>,
}

impl ByName {
    fn ring(&mut self) -> Result<&mut RawRingSide, LabError> {
        self.ring.as_mut().ok_or(LabError::Unsupported {
            mechanism: "shm-open",
            what: "sending or receiving before start() mapped the rings by name",
        })
    }
}

impl Side for ByName {
    fn start(&mut self) -> Result<(), LabError> {
        let (size, len) = (self.size, ring_len(self.size));
        let map = |name: &str| SharedRegion::open_shm(name, len).map(Rc::new);
        let (tx, _) = ends(map(&self.up)?, size);
        let rx = match &self.down {
            Some(name) => Some(ends(map(name)?, size).1),
            None => None,
        };
        let mut ring = RawRingSide::new(Some(tx), rx);
        ring.start()?;
        self.ring = Some(ring);
        Ok(())
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        self.ring()?.send(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        self.ring()?.recv(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn entry(name: &str) -> std::path::PathBuf {
        Path::new(SHM_DIR).join(name.trim_start_matches('/'))
    }

    #[test]
    fn names_are_unique_and_recognisable() {
        let (a, b) = (unique_name("ring"), unique_name("ring"));
        assert_ne!(a, b);
        let prefix = format!("/{NAME_PREFIX}ring-{}-", std::process::id());
        assert!(a.starts_with(&prefix) && b.starts_with(&prefix), "{a} {b}");
    }

    #[test]
    fn the_parent_unlinks_its_rings_and_the_child_maps_them_by_name() {
        // Every lab run and experiment in this process holds the lock: no other ring of this
        // process comes or goes while the names are listed.
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pair = ShmOpen.setup(Pattern::PingPong, 64).expect("setup");
        let Pair { parent, mut child } = pair;
        // In one process (no fork): the child side maps the same objects by name.
        child.start().expect("the child finds the rings by name");
        let names: Vec<String> = std::fs::read_dir(SHM_DIR)
            .expect("/dev/shm")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&format!("{NAME_PREFIX}ring-{}-", std::process::id())))
            .collect();
        assert!(names.len() >= 2, "{names:?}");
        let mut parent = parent;
        parent.send(&[7; 64]).expect("send");
        let mut buf = [0u8; 64];
        assert_eq!(child.recv(&mut buf).expect("recv"), 64);
        assert_eq!(buf, [7; 64]);
        drop(parent);
        drop(child);
        for name in names {
            assert!(!entry(&name).exists(), "{name} left behind");
        }
    }
}
