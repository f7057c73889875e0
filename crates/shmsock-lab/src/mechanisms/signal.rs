//! `signal`: real-time signals carrying their payload in `sigval` (latency only, 8 bytes).
//!
//! The oldest notification on Unix, with the smallest payload: a queued real-time signal
//! (`SIGRTMIN + 5`) carries one pointer-sized `sigval`, here the message's first 8 bytes. The
//! signal is blocked in the receiving thread and taken synchronously with `sigtimedwait`, so no
//! handler runs and the wait has a timeout (a dead peer is a stall, not a hang).
//!
//! The parent is sometimes one thread of many (the test harness), and a process-directed
//! signal (`sigqueue`) may be delivered to any thread that does not block it, where its default
//! action ends the process. So both directions use `rt_tgsigqueueinfo`, the thread-directed
//! `sigqueue`: the child queues to the parent's measuring thread, the parent to the child
//! (single-threaded; it publishes its pid in a shared word when it starts).
//!
//! All of this but the receiving is `RtSignal`, which [`super::signalfd`] shares: that
//! mechanism queues the same kind of signal and takes it by reading a `signalfd` instead.
//!
//! # Safety
//!
//! `pthread_sigmask`, `sigprocmask`, `sigtimedwait` and the raw `rt_tgsigqueueinfo` syscall are
//! not in rustix, so this module calls libc. The `siginfo_t` sent is built in [`RtSigInfo`], a
//! `#[repr(C)]` copy of the kernel's generic layout (checked to be 128 bytes), on the
//! architectures where that layout is the one in use; elsewhere the mechanism reports itself
//! unavailable.
#![allow(unsafe_code)]

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::latency_only::{Doorbell, LatencyOnly};
use super::{again_or_fail, sleep_until, spin_until};
use crate::error::LabError;
use crate::shared::SharedRegion;

/// Which real-time signal above `SIGRTMIN` the lab uses.
const SIGRT_OFFSET: libc::c_int = 5;
/// `SI_QUEUE`: what `sigqueue` puts in `si_code`.
const SI_QUEUE: libc::c_int = -1;
/// Offset of the child's pid in the shared region.
const CHILD_PID_OFFSET: usize = 0;

/// The architectures whose `siginfo_t` has the generic layout [`RtSigInfo`] copies.
const LAYOUT_KNOWN: bool = cfg!(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
));

/// The kernel's `siginfo_t` for a queued signal (`_sifields._rt`), generic 64-bit layout.
#[repr(C)]
struct RtSigInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: u64,
    _rest: [u8; 96],
}

const _: () = assert!(std::mem::size_of::<RtSigInfo>() == 128);
const _: () = assert!(std::mem::size_of::<libc::siginfo_t>() == 128);

/// Real-time signals with a `sigval` payload.
pub const SIGNAL: LatencyOnly =
    LatencyOnly::word::<SignalBell>("signal", "streaming (a signal carries 8 bytes)");

/// The parent's and the child's queued real-time signal `SIGRTMIN + offset`, before the fork,
/// for `mechanism` (the name its errors give). The signal is blocked in the calling thread
/// (the parent's measuring thread; the forked child inherits the mask).
pub(super) fn rt_signal_pair(
    mechanism: &'static str,
    offset: libc::c_int,
) -> Result<(RtSignal, RtSignal), LabError> {
    if !LAYOUT_KNOWN {
        return Err(LabError::Unsupported {
            mechanism,
            what: "this architecture (its siginfo_t layout is not the generic one)",
        });
    }
    let signo = libc::SIGRTMIN() + offset;
    if signo > libc::SIGRTMAX() {
        return Err(LabError::Unsupported {
            mechanism,
            what: "a libc with so few real-time signals",
        });
    }
    let region = Rc::new(SharedRegion::new(64)?);
    let set = sigset_of(signo);
    // SAFETY: `sigset_t` is a plain C struct; all-zero is a valid value (overwritten below).
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` and `old` are valid sigsets owned by this frame; this changes only the
    // calling thread's mask (restored when the parent side is dropped).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if rc != 0 {
        return Err(LabError::Os {
            what: "blocking the real-time signal",
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    // SAFETY: `old` was filled by pthread_sigmask; sigismember only reads it.
    let was_blocked = unsafe { libc::sigismember(&old, signo) } == 1;
    // The parent side sends to the child (whose pid it learns in `start`); the child side
    // sends to the parent's measuring thread.
    let parent = RtSignal {
        mechanism,
        signo,
        set,
        region: Rc::clone(&region),
        target: None,
        restore: (!was_blocked).then(std::process::id),
    };
    let child = RtSignal {
        mechanism,
        signo,
        set,
        region,
        target: Some((rustix::process::getpid(), rustix::thread::gettid())),
        restore: None,
    };
    Ok((parent, child))
}

fn sigset_of(signo: libc::c_int) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given; sigaddset adds a valid signal.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        set
    }
}

/// One side's real-time signal: what the `signal` and `signalfd` mechanisms share (they differ
/// only in how the receiver takes the signal). Sends are thread-directed
/// (`rt_tgsigqueueinfo`) with the word in `si_value`; dropping the parent's side takes any
/// signal still queued and restores the thread's mask.
pub(super) struct RtSignal {
    mechanism: &'static str,
    signo: libc::c_int,
    set: libc::sigset_t,
    region: Rc<SharedRegion>,
    /// (process, thread) to queue signals to.
    target: Option<(rustix::process::Pid, rustix::thread::Pid)>,
    /// On the parent's side, if the signal was not blocked before setup: the parent's pid
    /// (the process whose thread mask `Drop` restores).
    restore: Option<u32>,
}

impl RtSignal {
    /// The signal's number.
    pub(super) fn signo(&self) -> libc::c_int {
        self.signo
    }

    /// The set holding just this signal.
    pub(super) fn set(&self) -> &libc::sigset_t {
        &self.set
    }

    /// After the fork: the child blocks the signal (already inherited from the parent's
    /// thread, stated again with `sigprocmask`, the child being single-threaded) and publishes
    /// its pid; the parent waits for that pid, its target.
    pub(super) fn start(&mut self) -> Result<(), LabError> {
        let word = self.region.atomic_u64(CHILD_PID_OFFSET);
        if self.target.is_some() {
            // SAFETY: `set` is an initialised sigset; a null old-set pointer is allowed. The
            // child is single-threaded, so the process mask is this thread's.
            let rc = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &self.set, std::ptr::null_mut()) };
            if rc != 0 {
                return Err(LabError::Os {
                    what: "blocking the real-time signal in the child",
                    source: std::io::Error::last_os_error(),
                });
            }
            // The child: tell the parent where to send.
            let pid = u64::from(
                rustix::process::getpid()
                    .as_raw_nonzero()
                    .get()
                    .unsigned_abs(),
            );
            // Release pairs with the Acquire load in the parent's `start`.
            word.store(pid, Ordering::Release);
            return Ok(());
        }
        let pid = spin_until("waiting for the child's pid", || {
            // Acquire pairs with the Release store in the child's `start`.
            let v = word.load(Ordering::Acquire);
            (v != 0).then_some(v)
        })?;
        let pid = rustix::process::Pid::from_raw(pid as i32).ok_or(LabError::Child {
            detail: format!("published an impossible pid {pid}"),
        })?;
        self.target = Some((pid, pid));
        Ok(())
    }

    /// Queues the signal carrying `value` to the peer's thread.
    #[inline]
    pub(super) fn send(&self, value: u64) -> Result<(), LabError> {
        let (pid, tid) = self.target.ok_or(LabError::Unsupported {
            mechanism: self.mechanism,
            what: "sending before start",
        })?;
        let info = RtSigInfo {
            signo: self.signo,
            errno: 0,
            code: SI_QUEUE,
            _pad: 0,
            pid: rustix::process::getpid().as_raw_nonzero().get(),
            uid: rustix::process::getuid().as_raw(),
            value,
            _rest: [0; 96],
        };
        // SAFETY: rt_tgsigqueueinfo(tgid, tid, sig, info) reads 128 bytes at `info`, a live
        // `RtSigInfo` of exactly that size in the kernel's layout (checked at compile time and
        // by `LAYOUT_KNOWN` in setup).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                pid.as_raw_nonzero().get(),
                tid.as_raw_nonzero().get(),
                self.signo,
                &info as *const RtSigInfo,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            return Err(LabError::PeerClosed {
                what: "queueing a signal",
            });
        }
        Err(LabError::Os {
            what: "rt_tgsigqueueinfo",
            source: err,
        })
    }
}

/// The `signal` mechanism's doorbell: an [`RtSignal`] taken with `sigtimedwait`.
struct SignalBell(RtSignal);

impl Doorbell for SignalBell {
    fn pair() -> Result<(Self, Self), LabError> {
        let (parent, child) = rt_signal_pair("signal", SIGRT_OFFSET)?;
        Ok((SignalBell(parent), SignalBell(child)))
    }

    fn start(&mut self) -> Result<(), LabError> {
        self.0.start()
    }

    #[inline]
    fn ring(&mut self, value: u64) -> Result<(), LabError> {
        self.0.send(value)
    }

    #[inline]
    fn wait(&mut self) -> Result<u64, LabError> {
        let slice = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        let (set, signo) = (self.0.set(), self.0.signo());
        sleep_until("waiting for a real-time signal", || {
            let mut info = RtSigInfo {
                signo: 0,
                errno: 0,
                code: 0,
                _pad: 0,
                pid: 0,
                uid: 0,
                value: 0,
                _rest: [0; 96],
            };
            // SAFETY: `set` is an initialised sigset; `info` is a writable 128-byte buffer with
            // the layout of `siginfo_t` (sizes checked at compile time); `slice` is valid.
            let got = unsafe {
                libc::sigtimedwait(
                    set,
                    (&mut info as *mut RtSigInfo).cast::<libc::siginfo_t>(),
                    &slice,
                )
            };
            if got == signo {
                return Ok(Some(info.value));
            }
            again_or_fail("sigtimedwait", &[libc::EAGAIN, libc::EINTR])
        })
    }
}

impl Drop for RtSignal {
    fn drop(&mut self) {
        if self.restore != Some(std::process::id()) {
            return;
        }
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // Take any signal still queued before unblocking: its default action ends the process.
        // SAFETY: `set` is an initialised sigset; a null info pointer is allowed; `zero` is a
        // valid timespec. The mask change affects this thread only and undoes setup's.
        unsafe {
            while libc::sigtimedwait(&self.set, std::ptr::null_mut(), &zero) == self.signo {}
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.set, std::ptr::null_mut());
        }
    }
}
