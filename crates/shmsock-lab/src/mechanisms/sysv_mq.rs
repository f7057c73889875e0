//! `sysv-mq`: a System V message queue (`msgget`, `msgsnd`, `msgrcv`).
//!
//! One private queue (`IPC_PRIVATE`) per pair; a message's type says its direction (1: parent
//! to child, 2: child to parent), so ping-pong needs one queue, not two. The kernel API wants
//! the type and the text contiguous (`struct { long mtype; char mtext[]; }`), so each side
//! copies a message into a preallocated staging buffer behind an 8-byte type: one memcpy more
//! than the other mechanisms pay, small next to the two copies through the kernel.
//!
//! The queue lives until `IPC_RMID`: the parent removes it when it drops its side, and a child
//! whose side failed removes it at once (`Side::break_channel`) so a parent blocked in
//! `msgrcv` (which has no timeout) wakes with `EIDRM` instead of waiting forever.
//!
//! Limits: a message is at most `/proc/sys/kernel/msgmax` bytes (8 KiB by default) and a queue
//! holds `msgmnb` bytes (16 KiB by default); larger sizes are reported as unavailable.
//!
//! # Safety
//!
//! The `msg*` calls are not in rustix, so this module calls libc. Each call gets the id of a
//! queue this module created and pointers/lengths of its own live staging buffers.
#![allow(unsafe_code)]

use super::{sysctl, Mechanism, Pair, Pattern, Side};
use crate::error::LabError;

/// Linux's default `msgmax`, used when `/proc` does not say.
const MSGMAX_DEFAULT_BYTES: usize = 8192;
/// Linux's default `msgmnb`, used when `/proc` does not say.
const MSGMNB_DEFAULT_BYTES: usize = 16384;
/// Message type of parent-to-child messages.
const TYPE_DOWN: libc::c_long = 1;
/// Message type of child-to-parent messages.
const TYPE_UP: libc::c_long = 2;
/// Bytes of the `mtype` header in front of every message.
const HEADER_BYTES: usize = std::mem::size_of::<libc::c_long>();

/// System V message queues.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysvMq;

impl Mechanism for SysvMq {
    fn name(&self) -> &'static str {
        "sysv-mq"
    }

    fn max_message(&self) -> usize {
        sysctl("kernel/msgmax", MSGMAX_DEFAULT_BYTES)
            .min(sysctl("kernel/msgmnb", MSGMNB_DEFAULT_BYTES))
    }

    fn setup(&self, _pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        if size > self.max_message() {
            return Err(LabError::WrongSize {
                len: size,
                size: self.max_message(),
            });
        }
        // SAFETY: `msgget` with IPC_PRIVATE creates a new queue; it takes no pointers.
        let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
        if id == -1 {
            return Err(LabError::Os {
                what: "msgget (creating a System V message queue)",
                source: std::io::Error::last_os_error(),
            });
        }
        let side = |owner, tx_type, rx_type| SysvSide {
            id,
            owner,
            tx_type,
            rx_type,
            staging: vec![0u64; (HEADER_BYTES + size).div_ceil(8)],
        };
        Ok(Pair {
            parent: Box::new(side(Some(std::process::id()), TYPE_DOWN, TYPE_UP)),
            child: Box::new(side(None, TYPE_UP, TYPE_DOWN)),
        })
    }
}

struct SysvSide {
    id: libc::c_int,
    /// On the parent's side: the parent's pid. The parent side removes the queue when it is
    /// dropped in the parent (not when the child drops its inherited copy of it).
    owner: Option<u32>,
    tx_type: libc::c_long,
    rx_type: libc::c_long,
    /// `[mtype][mtext]`, 8-byte aligned (a `long` header), allocated before the fork.
    staging: Vec<u64>,
}

impl SysvSide {
    fn staging_bytes(&mut self) -> &mut [u8] {
        let len = self.staging.len() * 8;
        // SAFETY: a `u64` buffer viewed as bytes: same allocation, `len` bytes long, any bit
        // pattern is a valid `u8`, and the borrow of `self` keeps it unique.
        unsafe { std::slice::from_raw_parts_mut(self.staging.as_mut_ptr().cast::<u8>(), len) }
    }

    fn remove(&self) {
        // SAFETY: IPC_RMID takes no buffer (null is allowed); `id` is our queue's id.
        unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// What the failure of `call` (`msgsnd`, `msgrcv`) just now means: `None` to try again (a
/// signal interrupted it), else the error; a removed queue is the peer gone (`peer_gone`).
fn failure(call: &'static str, peer_gone: &'static str) -> Option<LabError> {
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINTR) => None,
        Some(libc::EIDRM | libc::EINVAL) => Some(LabError::PeerClosed { what: peer_gone }),
        _ => Some(LabError::Os {
            what: call,
            source: err,
        }),
    }
}

impl Side for SysvSide {
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        let tx_type = self.tx_type;
        let staging = self.staging_bytes();
        let Some(text) = staging.get_mut(HEADER_BYTES..HEADER_BYTES + msg.len()) else {
            return Err(LabError::WrongSize {
                len: msg.len(),
                size: staging.len() - HEADER_BYTES,
            });
        };
        text.copy_from_slice(msg);
        staging[..HEADER_BYTES].copy_from_slice(&tx_type.to_ne_bytes());
        loop {
            // SAFETY: `staging` holds the header and `msg.len()` bytes of text (checked above),
            // is 8-byte aligned (a `u64` buffer) and alive for the call.
            let rc = unsafe { libc::msgsnd(self.id, self.staging.as_ptr().cast(), msg.len(), 0) };
            if rc == 0 {
                return Ok(());
            }
            if let Some(e) = failure("msgsnd", "sending (the queue was removed)") {
                return Err(e);
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let capacity = self.staging.len() * 8 - HEADER_BYTES;
        let rx_type = self.rx_type;
        let n = loop {
            // SAFETY: `staging` has room for the header and `capacity` bytes of text, is
            // 8-byte aligned and alive for the call.
            let n = unsafe {
                libc::msgrcv(
                    self.id,
                    self.staging.as_mut_ptr().cast(),
                    capacity,
                    rx_type,
                    0,
                )
            };
            if let Ok(n) = usize::try_from(n) {
                break n;
            }
            if let Some(e) = failure("msgrcv", "receiving (the queue was removed)") {
                return Err(e);
            }
        };
        let len = buf.len();
        let out = buf
            .get_mut(..n)
            .ok_or(LabError::WrongSize { len: n, size: len })?;
        out.copy_from_slice(&self.staging_bytes()[HEADER_BYTES..HEADER_BYTES + n]);
        Ok(n)
    }

    fn break_channel(&mut self) {
        self.remove();
    }
}

impl Drop for SysvSide {
    fn drop(&mut self) {
        if self.owner == Some(std::process::id()) {
            self.remove();
        }
    }
}
