//! The deliberately wrong code of the `bugs` experiment: the naive shared-memory code the
//! reference documents warn about, kept small so that the mistake shows at a glance.
//!
//! **Everything here is wrong on purpose.** The lab runs it only in forked children that it
//! reaps, kills when they hang and whose crashes it counts; nothing else in the lab (and
//! nothing in the library) may call it.
//!
//! - [`SharedMutex`]: a pthread mutex placed in shared memory. [`SharedMutex::init_default`]
//!   is `pthread_mutex_init(&m, NULL)`: no `PTHREAD_PROCESS_SHARED` (bug 1);
//!   [`SharedMutex::init_process_shared`] does that right but, like every default mutex, is
//!   not robust: a holder that dies leaves it locked (bug 3).
//! - [`Records`]: the Comparison's `shared_t` (a lock word, a version, `data[64]`, a checksum)
//!   with its `update_data`, whose `strcpy` has no bound (bug 2).
//! - [`rewrite_in_place`] and [`copy_unsynchronised`]: a writer that rewrites a record in
//!   place and a reader that copies it, nothing between them (torn read).
//! - [`build_list`] and [`follow_foreign_list`]: a linked list in shared memory whose links
//!   are the builder's own addresses (pointer in shared memory).
//!
//! # Safety
//!
//! The shared memory is the lab's [`SharedRegion`], mapped while the value lives; words two
//! processes may touch at once are reached through atomics (`Relaxed` where the point is that
//! nothing synchronises them), so the racy code stays sound Rust. What is unsound is unsound on
//! purpose, and confined to a forked child:
//!
//! - `pthread_mutex_lock` from two processes on a mutex without `PTHREAD_PROCESS_SHARED` is
//!   undefined in POSIX: glibc may take it with plain stores (two holders at once) or sleep on
//!   a futex private to one process (never woken by the other). Only the two worker children
//!   call it; the parent initialises the mutex before the fork and reads nothing of it after.
//! - `strcpy` writes past `data[64]` into the next record. The writer child is the only process
//!   touching the records while it runs (the parent waits for it to exit), and
//!   [`Records::new`] checks that the longest copy still ends inside the mapping.
//! - [`follow_foreign_list`] dereferences another process's addresses: unmapped here (SIGSEGV,
//!   the measured outcome) or memory of this process that is not the list (garbage). Only the
//!   child that does it is affected; it writes nothing but two counters of the control region
//!   (atomics) and is reaped by the lab.
#![allow(unsafe_code)]

use std::convert::Infallible;
use std::ffi::{c_char, CStr};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::time::Duration;

use crate::error::LabError;
use crate::shared::SharedRegion;

/// Bytes reserved for a `pthread_mutex_t` (glibc's is 40 on x86-64).
pub(super) const MUTEX_BYTES: usize = 128;

/// A pthread mutex at a fixed offset of a shared region, locked and unlocked with the plain
/// pthread calls (no timeout: a lock that is never released is waited for forever).
pub(super) struct SharedMutex<'a> {
    region: &'a SharedRegion,
    offset: usize,
}

impl<'a> SharedMutex<'a> {
    /// `pthread_mutex_init(&m, NULL)` at `offset`: default attributes, so **not**
    /// `PTHREAD_PROCESS_SHARED`. Works in one process; what it does in two is bug 1.
    pub(super) fn init_default(region: &'a SharedRegion, offset: usize) -> Result<Self, LabError> {
        let mutex = Self::at(region, offset);
        // SAFETY: `ptr` points at `MUTEX_BYTES` (>= the mutex's size, checked in `at`)
        // aligned bytes of the live region, which no other process uses yet (not forked yet).
        let rc = unsafe { libc::pthread_mutex_init(mutex.ptr(), std::ptr::null()) };
        check(rc, "pthread_mutex_init").map(|()| mutex)
    }

    /// A mutex initialised as the IPC cheat sheet says (`PTHREAD_PROCESS_SHARED`), default
    /// kind: not robust, so it stays locked if its holder dies (bug 3).
    pub(super) fn init_process_shared(
        region: &'a SharedRegion,
        offset: usize,
    ) -> Result<Self, LabError> {
        let mutex = Self::at(region, offset);
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is writable storage for a `pthread_mutexattr_t`; init fills it.
        let rc = unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) };
        check(rc, "pthread_mutexattr_init")?;
        // SAFETY: `attr` was initialised just above.
        let rc = unsafe {
            libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
        };
        let init = check(rc, "pthread_mutexattr_setpshared").and_then(|()| {
            // SAFETY: as in `init_default`; `attr` is initialised.
            let rc = unsafe { libc::pthread_mutex_init(mutex.ptr(), attr.as_ptr()) };
            check(rc, "pthread_mutex_init")
        });
        // SAFETY: `attr` is initialised and not used after this.
        unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
        init.map(|()| mutex)
    }

    fn at(region: &'a SharedRegion, offset: usize) -> Self {
        const { assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_BYTES) };
        assert!(
            offset.is_multiple_of(std::mem::align_of::<libc::pthread_mutex_t>()),
            "mutex offset {offset} is misaligned"
        );
        // Panics (a layout bug of the caller) if the mutex does not fit in the region.
        let _ = region.ptr_at(offset, MUTEX_BYTES);
        Self { region, offset }
    }

    fn ptr(&self) -> *mut libc::pthread_mutex_t {
        self.region
            .ptr_at(self.offset, MUTEX_BYTES)
            .as_ptr()
            .cast::<libc::pthread_mutex_t>()
    }

    /// `pthread_mutex_lock`: waits as long as it takes.
    pub(super) fn lock(&self) -> Result<(), LabError> {
        // SAFETY: `ptr` is the mutex initialised in place in the live region. Used from two
        // processes without PTHREAD_PROCESS_SHARED this is the bug under test (module docs):
        // only the lab's forked workers call it.
        let rc = unsafe { libc::pthread_mutex_lock(self.ptr()) };
        check(rc, "pthread_mutex_lock")
    }

    /// `pthread_mutex_unlock`.
    pub(super) fn unlock(&self) -> Result<(), LabError> {
        // SAFETY: as in `lock`; every caller locked the mutex first.
        let rc = unsafe { libc::pthread_mutex_unlock(self.ptr()) };
        check(rc, "pthread_mutex_unlock")
    }
}

/// A pthread return code as a result.
fn check(rc: libc::c_int, what: &'static str) -> Result<(), LabError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(LabError::Os {
            what,
            source: std::io::Error::from_raw_os_error(rc),
        })
    }
}

/// Bug 1's worker: `n` times, lock, `counter = counter + 1` (a load then a store: the mutex is
/// what makes that an increment), unlock; `done` says how many it finished.
pub(super) fn count_under(
    mutex: &SharedMutex<'_>,
    counter: &AtomicU64,
    done: &AtomicU64,
    n: u64,
) -> Result<(), LabError> {
    for i in 1..=n {
        mutex.lock()?;
        let value = counter.load(Relaxed);
        counter.store(value + 1, Relaxed);
        mutex.unlock()?;
        done.store(i, Relaxed);
    }
    Ok(())
}

/// Bug 3's holder: takes the lock, says so in `held`, and works in its critical section until
/// it is killed (it never unlocks). Returns only an error.
pub(super) fn hold_until_killed(
    mutex: &SharedMutex<'_>,
    held: &AtomicU64,
) -> Result<Infallible, LabError> {
    mutex.lock()?;
    held.store(1, Release);
    loop {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Bytes of one [`Record`] in shared memory: the lock word, the version, `data`, the checksum.
pub(super) const RECORD_BYTES: usize = 88;
/// The fixed buffer of a record.
pub(super) const DATA_BYTES: usize = 64;
const LOCK: usize = 0;
const VERSION: usize = 8;
const DATA: usize = 16;
const CHECKSUM: usize = 80;
/// Room past the last record for the longest copy the lab makes (see [`Records::new`]).
pub(super) const OVERFLOW_ROOM: usize = 128;

/// One record of the Comparison's `shared_t` (its lock a word here: 0 free, 1 held), as a
/// process reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Record {
    /// 0 free, 1 held; anything else is no lock state at all.
    pub(super) lock: u64,
    /// Bumped by every update.
    pub(super) version: u64,
    /// The text, NUL-padded (no NUL when it fills all 64 bytes).
    pub(super) data: [u8; DATA_BYTES],
    /// [`checksum`] of `data`, stored by the last update.
    pub(super) checksum: u64,
}

impl Record {
    /// A free record of `version` holding `text` as `update_data` leaves it: its first 64
    /// bytes, NUL-padded, and their checksum.
    pub(super) fn holding(version: u64, text: &[u8]) -> Self {
        let mut data = [0u8; DATA_BYTES];
        let n = text.len().min(DATA_BYTES);
        data[..n].copy_from_slice(&text[..n]);
        Self {
            lock: 0,
            version,
            data,
            checksum: checksum(&data),
        }
    }
}

/// FNV-1a over the 64 data bytes: `calculate_checksum`.
pub(super) fn checksum(data: &[u8; DATA_BYTES]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An array of records in a shared region, at offset 0.
pub(super) struct Records<'a> {
    region: &'a SharedRegion,
    count: usize,
}

impl<'a> Records<'a> {
    /// Bytes a region needs for `count` records and [`OVERFLOW_ROOM`].
    pub(super) fn bytes(count: usize) -> usize {
        count * RECORD_BYTES + OVERFLOW_ROOM
    }

    /// `count` records at the start of `region`.
    ///
    /// # Panics
    /// If the region is smaller than [`Records::bytes`] (a layout bug of the caller).
    pub(super) fn new(region: &'a SharedRegion, count: usize) -> Self {
        let _ = region.ptr_at(0, Self::bytes(count));
        Self { region, count }
    }

    /// How many records.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Writes `record` as record `i` (word by word, through atomics).
    pub(super) fn write(&self, i: usize, record: &Record) {
        let base = self.base(i);
        let word = |offset| self.region.atomic_u64(base + offset);
        word(LOCK).store(record.lock, Relaxed);
        word(VERSION).store(record.version, Relaxed);
        for (k, chunk) in record.data.chunks_exact(8).enumerate() {
            let mut le = [0u8; 8];
            le.copy_from_slice(chunk);
            word(DATA + 8 * k).store(u64::from_le_bytes(le), Relaxed);
        }
        word(CHECKSUM).store(record.checksum, Relaxed);
    }

    /// Reads record `i` (word by word, through atomics).
    pub(super) fn read(&self, i: usize) -> Record {
        let base = self.base(i);
        let word = |offset| self.region.atomic_u64(base + offset).load(Relaxed);
        let mut data = [0u8; DATA_BYTES];
        for (k, chunk) in data.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&word(DATA + 8 * k).to_le_bytes());
        }
        Record {
            lock: word(LOCK),
            version: word(VERSION),
            data,
            checksum: word(CHECKSUM),
        }
    }

    fn base(&self, i: usize) -> usize {
        assert!(i < self.count, "record {i} of {}", self.count);
        i * RECORD_BYTES
    }

    /// The Comparison's `update_data`: lock, `version++`, `strcpy(data, new_data)`,
    /// `checksum = calculate_checksum(data)`, unlock. The `strcpy` has no bound: text longer
    /// than 63 bytes runs over the checksum into the next record's lock word and beyond. The
    /// lock spins until it is free, however long that takes.
    pub(super) fn update_data(&self, i: usize, new_data: &CStr) {
        let base = self.base(i);
        assert!(
            base + DATA + new_data.count_bytes() < Records::bytes(self.count),
            "a copy of {} bytes into record {i} would leave the region",
            new_data.count_bytes()
        );
        let lock = self.region.atomic_u64(base + LOCK);
        while lock
            .compare_exchange_weak(0, 1, std::sync::atomic::Ordering::Acquire, Relaxed)
            .is_err()
        {
            rustix::thread::sched_yield();
        }
        let version = self.region.atomic_u64(base + VERSION);
        version.store(version.load(Relaxed) + 1, Relaxed);
        let dst = self.region.ptr_at(base + DATA, DATA_BYTES).as_ptr();
        // SAFETY: NOT what `strcpy` needs when `new_data` is longer than 63 bytes: that is the
        // bug under test. The copy stays inside the mapping (checked above and in `new`), and
        // only this process touches the records while it runs (module docs).
        unsafe { strcpy(dst, new_data.as_ptr()) };
        let data = self.read(i).data;
        self.region
            .atomic_u64(base + CHECKSUM)
            .store(checksum(&data), Relaxed);
        lock.store(0, Release);
    }
}

/// C's `strcpy`: copies `src` and its NUL to `dst`, with no idea how much room `dst` has.
///
/// # Safety
/// `src` must be NUL-terminated; `dst` must have room for all of it, NUL included, and nobody
/// may read or write those bytes meanwhile.
unsafe fn strcpy(dst: *mut u8, src: *const c_char) {
    let mut i = 0;
    loop {
        // SAFETY: `src` is NUL-terminated and we stop at the NUL (the caller's promise).
        let byte = unsafe { *src.add(i) }.to_ne_bytes()[0];
        // SAFETY: `dst` has room for every byte up to the NUL (the caller's promise).
        unsafe { dst.add(i).write(byte) };
        if byte == 0 {
            return;
        }
        i += 1;
    }
}

/// Words of the torn-read record: 4 KiB.
pub(super) const TORN_WORDS: usize = 512;

/// The torn read's writer: rewrites the record at `offset` in place, every word the rewrite's
/// number, as fast as it can, until `stop` is non-zero; `rewrites` says how many it finished.
/// No lock, no sequence word: nothing tells a reader a rewrite is under way.
pub(super) fn rewrite_in_place(
    region: &SharedRegion,
    offset: usize,
    stop: &AtomicU64,
    rewrites: &AtomicU64,
) {
    let mut seq = 0u64;
    while stop.load(Relaxed) == 0 {
        seq += 1;
        for w in 0..TORN_WORDS {
            region.atomic_u64(offset + 8 * w).store(seq, Relaxed);
        }
        rewrites.store(seq, Relaxed);
    }
}

/// The torn read's reader: copies the record at `offset` into `out`, word by word, with nothing
/// to say whether the writer was in the middle of a rewrite; whether every word agrees.
pub(super) fn copy_unsynchronised(
    region: &SharedRegion,
    offset: usize,
    out: &mut [u64; TORN_WORDS],
) -> bool {
    for (w, word) in out.iter_mut().enumerate() {
        *word = region.atomic_u64(offset + 8 * w).load(Relaxed);
    }
    out.iter().all(|&w| w == out[0])
}

/// Where the list's head address is stored.
const HEAD: usize = 0;
/// Where the nodes start.
const NODES: usize = 64;
/// One node: its `next` (an address) and its value.
const NODE_BYTES: usize = 16;

/// Bytes of a region holding a list of `nodes` nodes.
pub(super) fn list_bytes(nodes: usize) -> usize {
    NODES + nodes * NODE_BYTES
}

/// Process A builds the list in `mine`, its own mapping of the region: node `i` holds
/// `value(i)` and, as `next`, A's address of node `i + 1` (0 ends the list); the header holds
/// A's address of node 0. Returns that address.
pub(super) fn build_list(mine: &SharedRegion, nodes: usize, value: impl Fn(u64) -> u64) -> u64 {
    let address = |i: usize| {
        let node = mine.ptr_at(NODES + i * NODE_BYTES, NODE_BYTES).as_ptr();
        node.expose_provenance() as u64
    };
    for i in 0..nodes {
        let base = NODES + i * NODE_BYTES;
        let next = if i + 1 < nodes { address(i + 1) } else { 0 };
        mine.atomic_u64(base).store(next, Relaxed);
        mine.atomic_u64(base + 8).store(value(i as u64), Relaxed);
    }
    let head = if nodes > 0 { address(0) } else { 0 };
    mine.atomic_u64(HEAD).store(head, Relaxed);
    head
}

/// The head address stored in the list's header, read through `region`.
pub(super) fn list_head(region: &SharedRegion) -> u64 {
    region.atomic_u64(HEAD).load(Relaxed)
}

/// Process A walks its own list: follows the addresses it stored, through `mine`, the mapping
/// they are addresses of. Returns how many nodes held their value.
pub(super) fn walk_own_list(mine: &SharedRegion, nodes: usize, value: impl Fn(u64) -> u64) -> u64 {
    let (right, visited) = (AtomicU64::new(0), AtomicU64::new(0));
    let head = list_head(mine);
    // SAFETY: every address in the list is one `build_list` took of a node of `mine`, which is
    // mapped (and exposed) in this process for the whole call; nobody writes the list now.
    unsafe { walk(head, nodes, &value, &right, &visited) };
    right.load(Relaxed)
}

/// Process B follows the list it finds in `region` (its own mapping, at another address than
/// A's): dereferences A's addresses as a program that trusts pointers in shared memory does.
/// `visited` and `right` count the nodes reached and the ones holding their value, stored as it
/// goes, so a process killed midway leaves what it reached.
pub(super) fn follow_foreign_list(
    region: &SharedRegion,
    nodes: usize,
    value: impl Fn(u64) -> u64,
    visited: &AtomicU64,
    right: &AtomicU64,
) {
    let head = list_head(region);
    // SAFETY: NOT met, on purpose (another process's addresses): the SIGSEGV (the measured
    // outcome) or garbage read stays in this forked child, which only stores two atomic
    // counters before the lab reaps it (module docs).
    unsafe { walk(head, nodes, &value, right, visited) };
}

/// Follows a list from `head` for at most `nodes` nodes, dereferencing each address.
///
/// # Safety
/// Every address reached must be an exposed, aligned, mapped node of this process.
unsafe fn walk(
    head: u64,
    nodes: usize,
    value: &impl Fn(u64) -> u64,
    right: &AtomicU64,
    visited: &AtomicU64,
) {
    let mut address = head;
    for i in 0..nodes as u64 {
        if address == 0 || !address.is_multiple_of(8) {
            return;
        }
        let node = std::ptr::with_exposed_provenance::<u64>(address as usize);
        // SAFETY: a node of this process (the caller's promise): two aligned, mapped words.
        let (next, held) = unsafe { (node.read_volatile(), node.add(1).read_volatile()) };
        visited.store(i + 1, Relaxed);
        if held == value(i) {
            right.fetch_add(1, Relaxed);
        }
        address = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_strcpy_runs_into_the_next_record_and_a_short_one_does_not() {
        let region = SharedRegion::new(Records::bytes(3)).expect("mmap");
        let records = Records::new(&region, 3);
        for i in 0..3 {
            records.write(i, &Record::holding(1, b"old"));
        }
        records.update_data(2, c"fits");
        assert_eq!(records.read(2), Record::holding(2, b"fits"));
        let long = [b'x'; 100];
        let text = CStr::from_bytes_with_nul(&[&long[..], b"\0"].concat())
            .expect("one NUL")
            .to_owned();
        records.update_data(0, &text);
        // Record 0 looks right: its checksum was computed after the copy.
        assert_eq!(records.read(0), Record::holding(2, &long));
        // Record 1's lock word, version and first bytes are the string's tail.
        let hit = records.read(1);
        assert_eq!(hit.lock, u64::from_le_bytes([b'x'; 8]));
        assert_ne!(hit.checksum, checksum(&hit.data));
        assert_eq!(records.read(2), Record::holding(2, b"fits"));
    }

    #[test]
    fn a_list_is_right_for_its_builder() {
        let region = SharedRegion::new(list_bytes(10)).expect("mmap");
        let head = build_list(&region, 10, |i| i * 3);
        assert_eq!(head, list_head(&region));
        assert_eq!(walk_own_list(&region, 10, |i| i * 3), 10);
    }

    #[test]
    fn a_quiet_copy_is_intact_and_a_mixed_one_is_not() {
        let region = SharedRegion::new(8 * TORN_WORDS).expect("mmap");
        let mut out = [0u64; TORN_WORDS];
        assert!(copy_unsynchronised(&region, 0, &mut out));
        region.atomic_u64(8).store(7, Relaxed);
        assert!(!copy_unsynchronised(&region, 0, &mut out));
    }
}
