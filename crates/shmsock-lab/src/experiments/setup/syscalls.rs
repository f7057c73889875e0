//! The system calls of one `shm://` segment, each timed on its own: where a connection's setup
//! time goes.
//!
//! A `shm://` connection has two segments, one per direction; each side creates its own and
//! maps the other's. Creating one is `memfd_create`, `ftruncate` to a page of header plus the
//! ring, a read-write `mmap`, the first write to the header (a page fault), and sealing
//! (`F_ADD_SEALS`: no shrinking, no growing, no new writable mappings, no more seals). Taking the
//! peer's is checking its seals and size (`F_GET_SEALS`, `fstat`) and a read-only `mmap`.
//! Closing is two `munmap`s and a `close`. The steps run in this process, on one CPU, one after
//! the other, like the library does them (the library's own functions are private to it, so
//! these are the same calls made directly); each step's time is one clock read before and one
//! after. What they do not include is everything between processes: the Unix-socket connect,
//! the hello that carries the memfd, the acknowledgement, and waking the other side.

#![allow(unsafe_code)]

use std::hint::black_box;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use serde::{Deserialize, Serialize};

use super::{Path, SetupRow};
use crate::error::LabError;
use crate::format::fmt_ns;

/// The seals a `shm://` segment carries before its peer maps it.
const SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::FUTURE_WRITE)
    .union(SealFlags::SEAL);

/// Header bytes in front of the ring of a segment.
const HEADER_BYTES: usize = 4096;

/// Most rounds of the steps.
const MAX_ROUNDS: u64 = 2_000;

/// One step's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// What the step does (`memfd_create`, `ftruncate`, ...).
    pub step: String,
    /// Median time, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
}

/// The steps, in the order one round runs them.
const STEPS: [&str; 9] = [
    "memfd_create",
    "ftruncate",
    "mmap read-write",
    "first write (page fault)",
    "F_ADD_SEALS",
    "peer: F_GET_SEALS + fstat",
    "peer: mmap read-only",
    "munmap x2",
    "close",
];

/// The system calls each of [`STEPS`] makes while setting a segment up (`None`: a step of the
/// teardown); the page fault is the kernel's work without a call.
const SETUP_CALLS: [Option<u32>; 9] = [
    Some(1),
    Some(1),
    Some(1),
    Some(0),
    Some(1),
    Some(2),
    Some(1),
    None,
    None,
];

/// The system calls that set one segment up on both sides (creating, sizing, mapping and
/// sealing it; checking and mapping the peer's), as timed in `steps`: `None` if the steps were
/// not measured.
pub(crate) fn setup_calls(steps: &[StepRow]) -> Option<u32> {
    if steps.is_empty() {
        return None;
    }
    Some(
        steps
            .iter()
            .filter_map(|row| {
                let at = STEPS.iter().position(|&step| step == row.step)?;
                SETUP_CALLS[at]
            })
            .sum(),
    )
}

/// Times every step of creating, handing over (checks and mapping on the receiving side) and
/// closing one segment holding a ring of the library's default capacity, for `max_time` (at
/// most [`MAX_ROUNDS`] rounds).
pub(crate) fn measure(max_time: Duration) -> Result<Vec<StepRow>, LabError> {
    let len = HEADER_BYTES + shmsock::RING_CAPACITY_DEFAULT_BYTES;
    let mut hists = STEPS
        .iter()
        .map(|_| Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabError::Integrity {
            detail: format!("creating the step histograms: {e}"),
        })?;
    let end = Instant::now() + max_time;
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && (rounds < 10 || Instant::now() < end) {
        let times = round(len)?;
        for (hist, ns) in hists.iter_mut().zip(times) {
            hist.saturating_record(ns.max(1));
        }
        rounds += 1;
    }
    Ok(STEPS
        .iter()
        .zip(&hists)
        .map(|(step, h)| StepRow {
            step: (*step).to_owned(),
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
        })
        .collect())
}

/// One round of [`STEPS`], each step's time in ns.
fn round(len: usize) -> Result<[u64; STEPS.len()], LabError> {
    let mut times = [0u64; STEPS.len()];
    let mut clock = Instant::now();
    let mut lap = |k: usize| {
        let now = Instant::now();
        times[k] = u64::try_from((now - clock).as_nanos()).unwrap_or(u64::MAX);
        clock = now;
    };
    let fd = rustix::fs::memfd_create(
        "shmsock-lab-setup",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(LabError::os("memfd_create"))?;
    lap(0);
    rustix::fs::ftruncate(&fd, len as u64).map_err(LabError::os("ftruncate"))?;
    lap(1);
    // SAFETY: a new shared mapping of our own memfd, `len` bytes (its size); nothing else
    // refers to that address range, and it is unmapped below before the fd is closed.
    let rw = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd.as_fd(),
            0,
        )
    }
    .map_err(LabError::os("mmap read-write"))?;
    lap(2);
    // SAFETY: `rw` is a live, writable, page-aligned mapping of `len` >= 8 bytes.
    unsafe { rw.cast::<u64>().write_volatile(0x5348_4d53_4f43_4b21) };
    lap(3);
    rustix::fs::fcntl_add_seals(&fd, SEALS).map_err(LabError::os("F_ADD_SEALS"))?;
    lap(4);
    let seals = rustix::fs::fcntl_get_seals(&fd).map_err(LabError::os("F_GET_SEALS"))?;
    let size = rustix::fs::fstat(&fd)
        .map_err(LabError::os("fstat"))?
        .st_size;
    black_box((seals, size));
    lap(5);
    // SAFETY: a new read-only shared mapping of the same memfd, `len` bytes; unmapped below.
    let ro = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED,
            fd.as_fd(),
            0,
        )
    }
    .map_err(LabError::os("mmap read-only"))?;
    lap(6);
    // SAFETY: both are exactly what mmap returned, with their lengths; no reference into
    // either outlives this point (only the volatile write above touched `rw`).
    let unmapped = unsafe { rustix::mm::munmap(rw, len).and(rustix::mm::munmap(ro, len)) };
    unmapped.map_err(LabError::os("munmap"))?;
    lap(7);
    drop(fd);
    lap(8);
    Ok(times)
}

/// The sentence under the setup table: how much of a `shm://` connection the system calls of
/// its two segments are.
pub(crate) fn summary(steps: &[StepRow], connections: &[SetupRow]) -> Option<String> {
    if steps.is_empty() {
        return None;
    }
    let one: u64 = steps.iter().map(|s| s.p50_ns).sum();
    let parts = steps
        .iter()
        .map(|s| format!("{} {}", s.step, fmt_ns(s.p50_ns)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut note = format!(
        "Where a shm:// connection's time goes: the system calls of one segment, timed one by \
         one in one process (p50): {parts}; {} per segment, {} for the connection's two \
         (one per direction).",
        fmt_ns(one),
        fmt_ns(2 * one)
    );
    if let Some(shm) = connections.iter().find(|r| r.path == Path::Shm.name()) {
        let pct = 200.0 * one as f64 / shm.cycle.p50_ns.max(1) as f64;
        note.push_str(&format!(
            " That is {pct:.0}% of the shm:// cycle's p50 ({}). The rest is waiting for the \
             other process: the handshake is one round trip over the Unix socket (our hello \
             with our memfd, then the listener's with its memfd and its acknowledgement), \
             then the first message's, two in all, each a wake-up of a sleeping process on \
             the other CPU; a plain Unix socket's connect completes in the kernel, so its \
             cycle is the message's one round trip.",
            fmt_ns(shm.cycle.p50_ns)
        ));
    }
    Some(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_timed() {
        let steps = measure(Duration::from_millis(10)).unwrap();
        assert_eq!(steps.len(), STEPS.len());
        for s in &steps {
            assert!(s.p50_ns > 0 && s.p50_ns <= s.p99_ns, "{s:?}");
        }
        let note = summary(&steps, &[]).unwrap();
        assert!(
            note.contains("memfd_create") && note.contains("F_ADD_SEALS"),
            "{note}"
        );
        // memfd_create, ftruncate, mmap, F_ADD_SEALS; F_GET_SEALS, fstat, mmap: the fault, the
        // munmaps and the close are not setup calls.
        assert_eq!(setup_calls(&steps), Some(7));
        assert_eq!(setup_calls(&[]), None);
    }
}
