//! What moving one message costs each streaming row *by construction*: how many times its
//! payload is copied on the way from the sender's buffer to the receiver's (and how many of
//! those copies the kernel makes), and how many system calls each side makes per message.
//!
//! The reference documents count these ("two copies plus two syscalls" for a Unix socket,
//! "zero copies, zero syscalls" for shared memory, "pointer exchange only; no data copying"),
//! so the throughput rows carry them ([`crate::ThroughputRow`]) and the claims are checked
//! against them. The numbers come from reading each mechanism's `send` and `recv`:
//!
//! | rows | copies (kernel) | calls send / recv | why |
//! |---|---|---|---|
//! | `raw-ring`, `shm-open`, `mmap-file`, `shmsock-busy` | 2 (0) | 0 / 0 | copy into a ring slot, copy out; both sides spin |
//! | `mmap-file-durable/N` | 2 (0) | 1/N / 0 | the same, and an `msync` every N-th message |
//! | `shmsock`, `shmsock-blocking`, `posix-sem` | 2 (0) | - | a futex call only when the peer sleeps: not fixed |
//! | `pipe`, `fifo`, `uds-stream`, `tcp` | 2 (2) | 1 / 1 | `write` copies into the kernel, `read` out (counted, see below) |
//! | `uds-dgram`, `uds-seqpacket` | 2 (2) | 1 / 1 | one `send(2)`, one `recv(2)` per datagram |
//! | `posix-mq` | 2 (2) | 1 / 1 | `mq_send`, `mq_timedreceive` |
//! | `sysv-mq` | 4 (2) | 1 / 1 | into a staging buffer, `msgsnd`, `msgrcv`, out of it |
//! | `raw-offset` | 0 (0) | 0 / 0 | a 16-byte offset crosses a ring; the payload stays put |
//! | `shmsock-offset`, `shmsock-loan` | 0 (0) | - | 16-byte offsets / 24-byte loan frames over `shm://` |
//! | `shmsock-loan-read` | 1 (0) | - | the receiver copies the loaned slot out |
//!
//! A spinning side that finds nothing to do calls `sched_yield` now and then: a system call
//! that is not per message and not in the table. The byte-stream rows (`rw_family`) make their
//! calls with `read(2)` and `write(2)`, which the kernel counts per thread, so their rows carry
//! the *counted* calls instead of the table's (a 1 MiB message takes one `write` but many
//! `read`s, each returning what the channel's buffer held).

/// A mechanism's cost per message, by construction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataPath {
    /// Copies of the payload from the sender's buffer to the receiver's.
    pub copies: u32,
    /// How many of them the kernel makes (inside a system call).
    pub kernel_copies: u32,
    /// System calls per message on the sending side, when the channel is neither full nor
    /// empty; `None` when it depends on whether the peer sleeps.
    pub send_syscalls: Option<f64>,
    /// System calls per message on the receiving side, likewise.
    pub recv_syscalls: Option<f64>,
    /// Whether the data calls are `read(2)`/`write(2)`, which the kernel counts per thread.
    pub rw_family: bool,
    /// Bytes that cross the channel per message when the payload does not (the zero-copy
    /// rows' offset or loan frame); `None` for rows that carry the payload itself.
    pub control_bytes: Option<usize>,
}

impl DataPath {
    const fn new(copies: u32, kernel_copies: u32, calls: Option<(f64, f64)>) -> Self {
        let (send_syscalls, recv_syscalls) = match calls {
            Some((send, recv)) => (Some(send), Some(recv)),
            None => (None, None),
        };
        Self {
            copies,
            kernel_copies,
            send_syscalls,
            recv_syscalls,
            rw_family: false,
            control_bytes: None,
        }
    }

    const fn rw(mut self) -> Self {
        self.rw_family = true;
        self
    }

    const fn control(mut self, bytes: usize) -> Self {
        self.control_bytes = Some(bytes);
        self
    }

    /// System calls per message of both sides together, when both are fixed.
    pub fn syscalls(&self) -> Option<f64> {
        Some(self.send_syscalls? + self.recv_syscalls?)
    }
}

/// Bytes of the offset exchanges' carrier messages (sequence number, slot offset).
const OFFSET_BYTES: usize = 16;
/// Bytes of a shmsock loan frame.
const LOAN_FRAME_BYTES: usize = 24;

const SPIN: DataPath = DataPath::new(2, 0, Some((0.0, 0.0)));
const KERNEL: DataPath = DataPath::new(2, 2, Some((1.0, 1.0)));

/// The table, but for the `mmap-file-durable/N` rows (their calls depend on N).
const TABLE: &[(&[&str], DataPath)] = &[
    (&["raw-ring", "shm-open", "mmap-file", "shmsock-busy"], SPIN),
    (
        &["shmsock", "shmsock-blocking", "posix-sem"],
        DataPath::new(2, 0, None),
    ),
    (&["pipe", "fifo", "uds-stream", "tcp"], KERNEL.rw()),
    (&["uds-dgram", "uds-seqpacket", "posix-mq"], KERNEL),
    (&["sysv-mq"], DataPath::new(4, 2, Some((1.0, 1.0)))),
    (
        &["raw-offset"],
        DataPath::new(0, 0, Some((0.0, 0.0))).control(OFFSET_BYTES),
    ),
    (
        &["shmsock-offset"],
        DataPath::new(0, 0, None).control(OFFSET_BYTES),
    ),
    (
        &["shmsock-loan"],
        DataPath::new(0, 0, None).control(LOAN_FRAME_BYTES),
    ),
    (
        &["shmsock-loan-read"],
        DataPath::new(1, 0, None).control(LOAN_FRAME_BYTES),
    ),
];

/// The data path of the streaming row `mechanism`, if the table has it (rows it lacks, such
/// as gRPC's, have no fixed count: their copies and calls are a library's business).
pub fn of(mechanism: &str) -> Option<DataPath> {
    if let Some((_, path)) = TABLE.iter().find(|(rows, _)| rows.contains(&mechanism)) {
        return Some(*path);
    }
    let every: f64 = mechanism.strip_prefix("mmap-file-durable/")?.parse().ok()?;
    Some(DataPath::new(2, 0, Some((1.0 / every, 0.0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_streaming_rows_and_counts_consistently() {
        let mut streaming: Vec<&str> = super::super::all()
            .iter()
            .filter(|m| m.supports(super::super::Pattern::Stream))
            .map(|m| m.name())
            .collect();
        streaming.extend([
            "raw-offset",
            "shmsock-offset",
            "shmsock-loan",
            "shmsock-loan-read",
        ]);
        for (rows, path) in TABLE {
            for row in *rows {
                assert!(streaming.contains(row), "{row} is not a streaming row");
            }
            assert!(path.kernel_copies <= path.copies, "{rows:?}: {path:?}");
            assert_eq!(path.send_syscalls.is_some(), path.recv_syscalls.is_some());
            // Zero copies exactly where only an offset or a frame crosses.
            assert_eq!(
                path.copies == 0,
                path.control_bytes.is_some() && !rows.contains(&"shmsock-loan-read"),
                "{rows:?}"
            );
        }
        for durable in streaming
            .iter()
            .filter(|r| r.starts_with("mmap-file-durable/"))
        {
            assert!(of(durable).is_some(), "{durable}");
        }
        let durable = of("mmap-file-durable/64").expect("durable rows");
        assert_eq!(durable.syscalls(), Some(1.0 / 64.0));
        assert_eq!(of("mmap-file-durable/x"), None);
        assert_eq!(of("uds-stream").map(|p| p.rw_family), Some(true));
        assert_eq!(of("grpc-uds"), None);
    }
}
