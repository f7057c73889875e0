//! Shared memory for the lab's own processes.
//!
//! A [`SharedRegion`] is a `MAP_SHARED` mapping, usually anonymous and created *before* `fork`,
//! so the parent and the child see the same physical pages at the same address. A region can
//! also have a name another process finds it by: a file (`mmap-file`, `mmap-file-durable/N`) or
//! a POSIX shared-memory object (`shm-open`); the process that created the name removes it when
//! it drops the region, and [`SharedRegion::sync`] writes a file-backed region to its disk.
//! Unlike the shmsock library, whose peers are untrusted, both users of a region are the lab
//! itself: the region is a measuring instrument (the cache-line floor, the textbook ring, the
//! child's report), not an API boundary.
//!
//! ```text
//! offset 0            64           128 ...
//!        | line 0      | line 1      | ... bytes, zero-filled by the kernel
//! ```
//!
//! Words are reached through [`SharedRegion::atomic_u64`] (bounds- and alignment-checked);
//! bytes through [`SharedRegion::write_bytes`] / [`SharedRegion::read_bytes`], which are
//! `unsafe` because only the caller's protocol (a Release/Acquire hand-off) can rule out the
//! other process touching the same bytes at the same time.
//!
//! # Safety
//!
//! This module owns the mapping's lifetime: the pointer stays valid until `Drop` unmaps it, and
//! every reference handed out borrows `&self`, so none outlives the mapping.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

use rustix::fd::OwnedFd;
use rustix::fs::{fstat, ftruncate, open, unlink, Mode, OFlags};
use rustix::mm::{mmap, mmap_anonymous, msync, munmap, MapFlags, MsyncFlags, ProtFlags};
use rustix::shm;

use crate::error::LabError;

/// Size of a cache line on the machines we measure (x86-64 and most aarch64).
pub(crate) const CACHE_LINE_BYTES: usize = 64;

/// A `MAP_SHARED` mapping, inherited by a forked child: anonymous or of a new file or
/// shared-memory object (zero-filled), or of an existing one (as its creator left it).
#[derive(Debug)]
pub(crate) struct SharedRegion {
    ptr: NonNull<u8>,
    len: usize,
    /// For a region with a name (a file, a POSIX shared-memory object): the name, and the
    /// process that created it (the only one that removes it).
    name: Option<(Name, u32)>,
    /// Whether the region was mapped from an object that existed before (its bytes are what
    /// its creator left, not zeros).
    opened: bool,
}

/// What a named region's memory can be found by, in other processes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    /// A file, removed with `unlink`.
    File(PathBuf),
    /// A POSIX shared-memory object (`/name`, a file in `/dev/shm`), removed with
    /// `shm_unlink`.
    Shm(String),
}

impl Name {
    /// Removes the name (the memory lives on while some process maps it).
    fn remove(&self) -> rustix::io::Result<()> {
        match self {
            Name::File(path) => unlink(path),
            Name::Shm(name) => shm::unlink(name.as_str()),
        }
    }
}

impl SharedRegion {
    /// Maps `len` bytes (rounded up by the kernel to whole pages) of shared, zeroed memory.
    pub(crate) fn new(len: usize) -> Result<Self, LabError> {
        let len = len.max(1);
        // SAFETY: a null hint lets the kernel choose the address, so no existing mapping or
        // Rust object is replaced; the result is checked before use.
        let raw = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(LabError::os("mapping shared anonymous memory"))?;
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(LabError::Os {
            what: "mapping shared anonymous memory",
            source: std::io::Error::other("mmap returned a null pointer"),
        })?;
        Ok(Self {
            ptr,
            len,
            name: None,
            opened: false,
        })
    }

    /// Maps `len` bytes of a new file in the temporary directory, `MAP_SHARED`: the
    /// memory-mapped-file flavour of [`SharedRegion::new`]. The file is removed when the
    /// process that created it drops the region.
    pub(crate) fn new_file(len: usize) -> Result<Self, LabError> {
        Self::new_file_in(&std::env::temp_dir(), len)
    }

    /// [`SharedRegion::new_file`] in the directory `dir`.
    pub(crate) fn new_file_in(dir: &Path, len: usize) -> Result<Self, LabError> {
        use std::sync::atomic::Ordering;
        static NEXT_FILE: AtomicU64 = AtomicU64::new(0);
        let len = len.max(1);
        let path = dir.join(format!(
            "shmsock-lab-mmap-{}-{}",
            std::process::id(),
            NEXT_FILE.fetch_add(1, Ordering::Relaxed)
        ));
        let fd = open(
            &path,
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(LabError::os("creating the memory-mapped file"))?;
        Self::created(fd, len, Name::File(path), "the memory-mapped file")
    }

    /// Maps the first `len` bytes of the existing file `path` (which stays when the region is
    /// dropped): how a process that did not create a file finds its memory.
    pub(crate) fn open_file(path: &Path, len: usize) -> Result<Self, LabError> {
        let fd = open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(LabError::os("opening the memory-mapped file"))?;
        Self::map_existing(&fd, len, "the memory-mapped file")
    }

    /// Creates the POSIX shared-memory object `name` (`/something`; it must not exist), sizes
    /// it to `len` bytes and maps it: `shm_open(O_CREAT | O_EXCL)`, `ftruncate`, `mmap`. The
    /// name is removed (`shm_unlink`) when the process that created it drops the region.
    pub(crate) fn new_shm(name: &str, len: usize) -> Result<Self, LabError> {
        let len = len.max(1);
        let fd = shm::open(
            name,
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(LabError::os("creating a shared-memory object (shm_open)"))?;
        Self::created(fd, len, Name::Shm(name.into()), "the shared-memory object")
    }

    /// Maps the first `len` bytes of the existing POSIX shared-memory object `name`
    /// (`shm_open` without `O_CREAT`, `mmap`): how another process finds it by its name.
    pub(crate) fn open_shm(name: &str, len: usize) -> Result<Self, LabError> {
        let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty()).map_err(LabError::os(
            "opening a shared-memory object by name (shm_open)",
        ))?;
        Self::map_existing(&fd, len, "the shared-memory object")
    }

    /// Sizes the object just created as `name` to `len` bytes and maps it; removes `name`
    /// again if either fails.
    fn created(fd: OwnedFd, len: usize, name: Name, what: &'static str) -> Result<Self, LabError> {
        let mapped = ftruncate(&fd, len as u64)
            .map_err(|e| LabError::Os {
                what: "sizing a new file or shared-memory object (ftruncate)",
                source: e.into(),
            })
            .and_then(|()| map_fd(&fd, len, what));
        match mapped {
            Ok(ptr) => Ok(Self {
                ptr,
                len,
                name: Some((name, std::process::id())),
                opened: false,
            }),
            Err(err) => {
                let _ = name.remove();
                Err(err)
            }
        }
    }

    /// Maps the first `len` bytes of `fd`, after checking that it has that many (touching a
    /// page past the end of a file is `SIGBUS`, not an error).
    fn map_existing(fd: &OwnedFd, len: usize, what: &'static str) -> Result<Self, LabError> {
        let len = len.max(1);
        let size = fstat(fd).map_err(LabError::os("reading the size of a mapped object"))?;
        if u64::try_from(size.st_size).unwrap_or(0) < len as u64 {
            return Err(LabError::Os {
                what,
                source: std::io::Error::other(format!(
                    "it has {} bytes, {len} expected",
                    size.st_size
                )),
            });
        }
        Ok(Self {
            ptr: map_fd(fd, len, what)?,
            len,
            name: None,
            opened: true,
        })
    }

    /// The file this region maps, if it created one ([`SharedRegion::new_file_in`]).
    pub(crate) fn file_path(&self) -> Option<&Path> {
        match &self.name {
            Some((Name::File(path), _)) => Some(path),
            _ => None,
        }
    }

    /// Writes the region's dirty pages to its file and waits until they are there
    /// (`msync(MS_SYNC)`): what makes the bytes of a file-backed region survive a machine
    /// crash, not just the death of a process. On memory with no disk behind it (anonymous,
    /// tmpfs, `/dev/shm`) it returns at once.
    pub(crate) fn sync(&self) -> Result<(), LabError> {
        // SAFETY: `ptr`/`len` describe exactly this region's mapping, which stays mapped while
        // `&self` lives; `msync` reads no memory through the pointer, it only writes back the
        // pages.
        unsafe { msync(self.ptr.as_ptr().cast(), self.len, MsyncFlags::SYNC) }
            .map_err(LabError::os("writing the mapping back to its file (msync)"))
    }

    /// Evicts `offset..offset + len` from every CPU cache (written back to memory first), so
    /// the next access to it misses. x86-64 only (`clflush`); elsewhere a no-op that returns
    /// `false`.
    ///
    /// # Panics
    /// If the range is outside the region.
    pub(crate) fn evict(&self, offset: usize, len: usize) -> bool {
        self.check_range(offset, len);
        #[cfg(target_arch = "x86_64")]
        {
            let start = offset - offset % CACHE_LINE_BYTES;
            for line in (start..offset + len).step_by(CACHE_LINE_BYTES) {
                // SAFETY: `line` is inside the mapping (the range was checked and `start` only
                // rounds down to a line inside it); `clflush` reads no data, it only evicts the
                // line from the caches, and SSE2 is part of the x86-64 baseline.
                unsafe { std::arch::x86_64::_mm_clflush(self.ptr.as_ptr().add(line)) };
            }
            // SAFETY: `mfence` has no preconditions; it orders the flushes before later loads.
            unsafe { std::arch::x86_64::_mm_mfence() };
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Maps every page of the region into this process now, so page faults are not timed.
    ///
    /// A forked child does not inherit the parent's page-table entries for shared mappings;
    /// each process takes its own minor fault on the first touch of each page. A compare-and-
    /// swap of a word with its own value touches a page for writing without changing it, so it
    /// is harmless even if the other process is already using the word (the swap then fails,
    /// having faulted the page in all the same). Not `fetch_add(0)`: the compiler turns that
    /// idempotent read-modify-write into a plain load, which maps the page for reading only
    /// (and leaves a page of a file or shared-memory object unallocated).
    pub(crate) fn prefault(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        const PAGE_BYTES: usize = 4096;
        for offset in (0..self.len.saturating_sub(8)).step_by(PAGE_BYTES) {
            let word = self.atomic_u64(offset);
            let value = word.load(Relaxed);
            let _ = word.compare_exchange(value, value, Relaxed, Relaxed);
        }
    }

    /// The 8-byte word at `offset` as an atomic.
    ///
    /// # Panics
    /// If `offset` is not 8-byte aligned or the word does not lie inside the region: both are
    /// layout bugs in the caller, fixed at setup time, never data-dependent.
    #[inline]
    pub(crate) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `AtomicU64` is an atomic integer: every bit pattern (zero too) is valid.
        unsafe { self.atomic_int(offset) }
    }

    /// The 4-byte word at `offset` as an atomic (a futex word).
    ///
    /// # Panics
    /// If `offset` is not 4-byte aligned or the word does not lie inside the region.
    #[inline]
    pub(crate) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: `AtomicU32` is an atomic integer: every bit pattern (zero too) is valid.
        unsafe { self.atomic_int(offset) }
    }

    /// The atomic integer `A` at `offset`, which must be aligned to its size.
    ///
    /// # Safety
    /// `A` must be an atomic integer type (its size is its alignment, and every bit pattern,
    /// zero included, is a valid value).
    ///
    /// # Panics
    /// If `offset` is misaligned or the word does not lie inside the region.
    #[inline]
    unsafe fn atomic_int<A>(&self, offset: usize) -> &A {
        let size = std::mem::size_of::<A>();
        assert!(
            offset.is_multiple_of(size)
                && offset.checked_add(size).is_some_and(|end| end <= self.len),
            "atomic at offset {offset} is misaligned or outside a region of {} bytes",
            self.len
        );
        // The word is initialised (the kernel zero-fills a new mapping, an opened one holds
        // what its creator wrote; every value is valid), and other processes touch it only
        // through atomics too.
        // SAFETY: inside the mapping and aligned (checked above: the mapping is page aligned,
        // `offset` a multiple of the size, which is an atomic integer's alignment, as the
        // caller promises); initialised (above); lives as long as `&self`.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<A>() }
    }

    /// The byte at `offset` as an atomic flag (e.g. a stop flag that a library call polls).
    ///
    /// # Panics
    /// If the byte does not lie inside the region, or the region was mapped from an existing
    /// object (whose byte could be anything but 0 or 1).
    pub(crate) fn atomic_bool(&self, offset: usize) -> &AtomicBool {
        assert!(
            offset < self.len && !self.opened,
            "flag at offset {offset} is outside a region of {} bytes, or in an opened one",
            self.len
        );
        // The kernel zero-filled this byte (`false`) when the region was created (checked
        // above: not an opened one), and every process writes it only as an `AtomicBool`.
        // SAFETY: the byte is inside the mapping (checked above), `AtomicBool` has the size
        // and alignment of `u8`, and the byte always holds 0 or 1: a valid bool.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicBool>() }
    }

    /// Copies `src` into the region at `offset`.
    ///
    /// # Panics
    /// If the range is outside the region.
    ///
    /// # Safety
    /// No other process or thread may read or write `offset..offset + src.len()` during the
    /// copy; the caller's protocol (publishing with a Release store afterwards) ensures this.
    pub(crate) unsafe fn write_bytes(&self, offset: usize, src: &[u8]) {
        self.check_range(offset, src.len());
        // SAFETY: the range is inside the mapping (checked), `src` is a distinct local buffer so
        // the ranges cannot overlap, and the caller guarantees exclusive access to the range.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        };
    }

    /// Copies bytes at `offset` out of the region into `dst`.
    ///
    /// # Panics
    /// If the range is outside the region.
    ///
    /// # Safety
    /// No other process or thread may write `offset..offset + dst.len()` during the copy; the
    /// caller's protocol (an Acquire load of the producer's position before, a Release store
    /// of the consumer's position after) ensures this.
    pub(crate) unsafe fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        self.check_range(offset, dst.len());
        // SAFETY: the range is inside the mapping (checked), `dst` is a distinct local buffer,
        // and the caller guarantees nobody writes the range meanwhile.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
    }

    /// A raw pointer to `offset..offset + len`, for an object that lives in the region and is
    /// used only through its own C API (a `pthread_mutex_t`). Getting the pointer is safe;
    /// using it is the caller's `unsafe`, valid while `self` is alive.
    ///
    /// # Panics
    /// If the range is outside the region.
    pub(crate) fn ptr_at(&self, offset: usize, len: usize) -> NonNull<u8> {
        self.check_range(offset, len);
        // SAFETY: `offset` is inside the mapping (checked above), so the pointer stays in the
        // same allocation and is not null.
        unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(offset)) }
    }

    fn check_range(&self, offset: usize, len: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "range {offset}+{len} is outside a region of {} bytes",
            self.len
        );
    }
}

/// Maps the first `len` bytes of `fd` shared, readable and writable.
fn map_fd(fd: &OwnedFd, len: usize, what: &'static str) -> Result<NonNull<u8>, LabError> {
    let failed = |source| LabError::Os { what, source };
    // SAFETY: a null hint lets the kernel choose the address, so no existing mapping or Rust
    // object is replaced; the callers checked or just set the object's size to at least `len`,
    // so every mapped page is backed.
    let raw = unsafe {
        mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }
    .map_err(|e| failed(e.into()))?;
    NonNull::new(raw.cast::<u8>())
        .ok_or_else(|| failed(std::io::Error::other("mmap returned a null pointer")))
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `new`; every reference into it
        // borrowed `&self`, so none is alive now. Failure would only leak address space.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
        if let Some((name, owner)) = &self.name {
            if *owner == std::process::id() {
                let _ = name.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn region_is_zeroed_and_round_trips_bytes() {
        let region = SharedRegion::new(4096).expect("mmap");
        assert_eq!(region.atomic_u64(64).load(Ordering::Relaxed), 0);
        region.atomic_u64(64).store(7, Ordering::Relaxed);
        assert_eq!(region.atomic_u64(64).load(Ordering::Relaxed), 7);
        let mut out = [0u8; 5];
        // SAFETY: this test is the only user of the region.
        unsafe {
            region.write_bytes(100, b"hello");
            region.read_bytes(100, &mut out);
        }
        assert_eq!(&out, b"hello");
    }

    #[test]
    fn prefault_allocates_every_page_of_a_file() {
        use std::os::unix::fs::MetadataExt;
        let region = SharedRegion::new_file(1 << 16).expect("file");
        let path = match &region.name {
            Some((Name::File(path), _)) => path.clone(),
            other => panic!("not a file: {other:?}"),
        };
        region.prefault();
        // Faulted in for writing: the filesystem allocated (or reserved) every block.
        let held = std::fs::metadata(&path).expect("the file").blocks() * 512;
        assert!(held >= 1 << 16, "{held} bytes allocated");
    }

    #[test]
    fn a_named_object_is_allocated_by_prefault_and_removed_with_its_region() {
        use std::os::unix::fs::MetadataExt;
        let name = format!("/shmsock-lab-prefault-{}", std::process::id());
        let file = std::path::Path::new("/dev/shm").join(&name[1..]);
        let region = SharedRegion::new_shm(&name, 1 << 16).expect("shm_open");
        assert_eq!(
            std::fs::metadata(&file).expect("in /dev/shm").len(),
            1 << 16
        );
        region.prefault();
        let held = std::fs::metadata(&file).expect("in /dev/shm").blocks() * 512;
        assert!(held >= 1 << 16, "{held} bytes allocated");
        let again = SharedRegion::open_shm(&name, 1 << 16).expect("by name");
        region.atomic_u64(8).store(42, Ordering::Relaxed);
        assert_eq!(again.atomic_u64(8).load(Ordering::Relaxed), 42);
        assert!(SharedRegion::open_shm(&name, 1 << 17).is_err(), "too short");
        drop(again);
        assert!(file.exists(), "only the creator removes the name");
        drop(region);
        assert!(!file.exists());
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_range_word_is_refused() {
        let region = SharedRegion::new(64).expect("mmap");
        let _ = region.atomic_u64(64);
    }
}
