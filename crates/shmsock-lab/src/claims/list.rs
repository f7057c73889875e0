//! The inventory: every quantitative claim of the five reference documents, in the documents'
//! order, as a [`Claim`] the lab checks or an [`Unchecked`] one with the reason it is not.
//!
//! Words without a number are put as the number the lab measures, and each such reading is
//! said in the claim's subject ("much faster (read as at least 2x)"); a comparison ("faster",
//! "higher", "shrinks") is a ratio with a one-sided bound and no tolerance. Rows of two names
//! (`pipe vs raw-ring`) are ratios: the first row's number over the second's.

use super::{
    Claim, Metric, Unchecked, Why, COMMUNICATION_COSTS, COMPARISON, IPC_CHEAT_SHEET, QA_THREAD,
    SM_AND_MP,
};

const SHM_HOT: &[&str] = &["raw-ring", "mmap-file", "shmsock-busy", "shmsock"];
const SHM_STREAM: &[&str] = &["raw-ring", "shmsock-busy", "shmsock", "shmsock-blocking"];
const PIPES: &[&str] = &["pipe", "fifo"];
const UDS: &[&str] = &["uds-stream", "uds-dgram", "uds-seqpacket"];
const MIB: usize = 1 << 20;
const KIB4: usize = 4096;
const MAPPED_FILES: &[&str] = &[
    "mmap-file",
    "mmap-file-durable/1",
    "mmap-file-durable/64",
    "mmap-file-durable/4096",
];
/// The kernel's message-passing rows most claims about "IPC" or "message passing" are about.
const MESSAGE_PASSING: &[&str] = &["pipe", "uds-stream", "tcp", "posix-mq"];

const LATENCY: &str = "Latency Analysis";
const THROUGHPUT_4K: &str = "Throughput Analysis, small messages (4 KB each, 262,144 messages)";
const THROUGHPUT_1M: &str = "Throughput Analysis, large messages (1 MB each, 1,024 messages)";
const SYNC_TAX: &str = "The Synchronization Tax";
const PRODUCERS: &str = "The Synchronization Tax, multiple producers";

/// Every claim the lab checks, in the documents' order.
pub const CLAIMS: &[Claim] = &[
    // Comparison, the two architectures.
    Claim::new(
        "Shared memory: kernel involved only for setup/teardown",
        Metric::UserCpu { size: 64 },
        100.0,
        100.0,
        COMPARISON,
        &["raw-ring", "shm-open", "mmap-file"],
    )
    .at(
        "Shared memory architecture (diagram)",
        "Kernel involved only for: setup/teardown, synchronization primitives",
    ),
    Claim::new(
        "Shared memory: no kernel for data access (system calls per message)",
        Metric::Syscalls { size: KIB4 },
        0.0,
        0.0,
        COMPARISON,
        &["raw-ring", "shm-open", "mmap-file", "shmsock-busy"],
    )
    .at(
        "Shared memory architecture (diagram)",
        "No kernel for data access",
    ),
    Claim::new(
        "Shared memory: the kernel is involved for setup (system calls to set up a segment)",
        Metric::SetupSyscalls,
        1.0,
        f64::INFINITY,
        COMPARISON,
        &["shmsock shm://"],
    )
    .at(
        "Shared memory architecture (diagram)",
        "Kernel involved only for: setup/teardown",
    ),
    Claim::new(
        "Message passing: a system call for every send and every receive",
        Metric::Syscalls { size: KIB4 },
        2.0,
        f64::INFINITY,
        COMPARISON,
        &["pipe", "fifo", "uds-stream", "uds-dgram", "tcp", "posix-mq"],
    )
    .at(
        "Message passing architecture (diagram)",
        "Kernel involved for: every send/receive, buffer management",
    ),
    // Comparison, "Latency Analysis" (one-way).
    Claim::new(
        "Shared memory (cache hit)",
        Metric::LatencyMin,
        50.0,
        100.0,
        COMPARISON,
        SHM_HOT,
    )
    .at(LATENCY, "Shared Memory (cache hit) | ~50-100 ns"),
    Claim::new(
        "Shared memory (cache hit)",
        Metric::LatencyTypical,
        100.0,
        500.0,
        COMPARISON,
        SHM_HOT,
    )
    .at(LATENCY, "Shared Memory (cache hit) | ... | ~100-500 ns"),
    Claim::new(
        "Shared memory (cache miss)",
        Metric::LatencyMin,
        100.0,
        300.0,
        COMPARISON,
        &["shm-cold"],
    )
    .at(LATENCY, "Shared Memory (cache miss) | ~100-300 ns"),
    Claim::new(
        "Shared memory (cache miss)",
        Metric::LatencyTypical,
        300.0,
        1000.0,
        COMPARISON,
        &["shm-cold"],
    )
    .at(LATENCY, "Shared Memory (cache miss) | ... | ~300-1000 ns"),
    Claim::new(
        "Pipe (small message)",
        Metric::LatencyMin,
        1500.0,
        3000.0,
        COMPARISON,
        PIPES,
    )
    .at(LATENCY, "Pipe (small message) | ~1.5-3 μs"),
    Claim::new(
        "Pipe (small message)",
        Metric::LatencyTypical,
        2000.0,
        5000.0,
        COMPARISON,
        PIPES,
    )
    .at(LATENCY, "Pipe (small message) | ... | ~2-5 μs"),
    Claim::new(
        "Pipe (small message): 2 copies",
        Metric::Copies { size: 64 },
        2.0,
        2.0,
        COMPARISON,
        PIPES,
    )
    .at(
        LATENCY,
        "Pipe (small message) | ... | System call overhead + 2 copies",
    ),
    Claim::new(
        "Unix domain socket",
        Metric::LatencyMin,
        2000.0,
        4000.0,
        COMPARISON,
        UDS,
    )
    .at(LATENCY, "Unix Domain Socket | ~2-4 μs"),
    Claim::new(
        "Unix domain socket",
        Metric::LatencyTypical,
        3000.0,
        8000.0,
        COMPARISON,
        UDS,
    )
    .at(LATENCY, "Unix Domain Socket | ... | ~3-8 μs"),
    Claim::new(
        "Unix domain socket: 2 copies",
        Metric::Copies { size: 64 },
        2.0,
        2.0,
        COMPARISON,
        UDS,
    )
    .at(
        LATENCY,
        "Unix Domain Socket | ... | System call overhead + 2 copies",
    ),
    Claim::new(
        "POSIX message queue",
        Metric::LatencyMin,
        3000.0,
        6000.0,
        COMPARISON,
        &["posix-mq"],
    )
    .at(LATENCY, "POSIX Message Queue | ~3-6 μs"),
    Claim::new(
        "POSIX message queue",
        Metric::LatencyTypical,
        5000.0,
        15000.0,
        COMPARISON,
        &["posix-mq"],
    )
    .at(LATENCY, "POSIX Message Queue | ... | ~5-15 μs"),
    Claim::new(
        "POSIX message queue: a copy (read as at least one)",
        Metric::Copies { size: 64 },
        1.0,
        f64::INFINITY,
        COMPARISON,
        &["posix-mq"],
    )
    .at(
        LATENCY,
        "POSIX Message Queue | ... | System call + copy + queue management",
    ),
    Claim::new(
        "TCP socket (loopback)",
        Metric::LatencyMin,
        8000.0,
        15000.0,
        COMPARISON,
        &["tcp"],
    )
    .at(LATENCY, "TCP Socket (loopback) | ~8-15 μs"),
    Claim::new(
        "TCP socket (loopback)",
        Metric::LatencyTypical,
        15000.0,
        30000.0,
        COMPARISON,
        &["tcp"],
    )
    .at(LATENCY, "TCP Socket (loopback) | ... | ~15-30 μs"),
    Claim::new(
        "Shared memory 10x to 100x faster in latency than message passing",
        Metric::LatencyRatio,
        10.0,
        100.0,
        COMPARISON,
        &[
            "pipe vs raw-ring",
            "uds-stream vs raw-ring",
            "tcp vs raw-ring",
            "posix-mq vs raw-ring",
        ],
    )
    .at(
        "The 100x Latency Gap",
        "Shared memory can be 10x to 100x faster in latency than message passing.",
    ),
    // Comparison, throughput, 4 KB × 262,144.
    Claim::new(
        "Shared memory (SPSC), 4 KB",
        Metric::Rate { size: KIB4 },
        4.5e6,
        4.5e6,
        COMPARISON,
        SHM_STREAM,
    )
    .at(THROUGHPUT_4K, "Shared Memory (SPSC) 4,500,000"),
    Claim::new(
        "Shared memory (SPSC), 4 KB",
        Metric::Bandwidth { size: KIB4 },
        17.6e9,
        17.6e9,
        COMPARISON,
        SHM_STREAM,
    )
    .at(THROUGHPUT_4K, "Shared Memory (SPSC) ... 17.6 GB/s"),
    Claim::new(
        "Shared memory (SPSC), 4 KB",
        Metric::Cpu { size: KIB4 },
        18.0,
        18.0,
        COMPARISON,
        SHM_STREAM,
    )
    .at(THROUGHPUT_4K, "Shared Memory (SPSC) ... 18%"),
    Claim::new(
        "Pipe, 4 KB",
        Metric::Rate { size: KIB4 },
        450e3,
        450e3,
        COMPARISON,
        PIPES,
    )
    .at(THROUGHPUT_4K, "Pipe 450,000"),
    Claim::new(
        "Pipe, 4 KB",
        Metric::Bandwidth { size: KIB4 },
        1.7e9,
        1.7e9,
        COMPARISON,
        PIPES,
    )
    .at(THROUGHPUT_4K, "Pipe ... 1.7 GB/s"),
    Claim::new(
        "Pipe, 4 KB",
        Metric::Cpu { size: KIB4 },
        45.0,
        45.0,
        COMPARISON,
        PIPES,
    )
    .at(THROUGHPUT_4K, "Pipe ... 45%"),
    Claim::new(
        "Unix domain socket, 4 KB",
        Metric::Rate { size: KIB4 },
        380e3,
        380e3,
        COMPARISON,
        UDS,
    )
    .at(THROUGHPUT_4K, "Unix Domain Socket 380,000"),
    Claim::new(
        "Unix domain socket, 4 KB",
        Metric::Bandwidth { size: KIB4 },
        1.5e9,
        1.5e9,
        COMPARISON,
        UDS,
    )
    .at(THROUGHPUT_4K, "Unix Domain Socket ... 1.5 GB/s"),
    Claim::new(
        "Unix domain socket, 4 KB",
        Metric::Cpu { size: KIB4 },
        52.0,
        52.0,
        COMPARISON,
        UDS,
    )
    .at(THROUGHPUT_4K, "Unix Domain Socket ... 52%"),
    Claim::new(
        "POSIX message queue, 4 KB",
        Metric::Rate { size: KIB4 },
        180e3,
        180e3,
        COMPARISON,
        &["posix-mq"],
    )
    .at(THROUGHPUT_4K, "POSIX Message Queue 180,000"),
    Claim::new(
        "POSIX message queue, 4 KB",
        Metric::Bandwidth { size: KIB4 },
        0.7e9,
        0.7e9,
        COMPARISON,
        &["posix-mq"],
    )
    .at(THROUGHPUT_4K, "POSIX Message Queue ... 0.7 GB/s"),
    Claim::new(
        "POSIX message queue, 4 KB",
        Metric::Cpu { size: KIB4 },
        68.0,
        68.0,
        COMPARISON,
        &["posix-mq"],
    )
    .at(THROUGHPUT_4K, "POSIX Message Queue ... 68%"),
    // Comparison, throughput, 1 MB × 1,024.
    Claim::new(
        "Shared memory (mmap, pointer exchange), 1 MB",
        Metric::Rate { size: MIB },
        50e3,
        50e3,
        COMPARISON,
        &["raw-offset", "shmsock-offset"],
    )
    .at(THROUGHPUT_1M, "Shared Memory (mmap) 50,000*"),
    Claim::new(
        "Shared memory (mmap, pointer exchange), 1 MB",
        Metric::Bandwidth { size: MIB },
        50e9,
        50e9,
        COMPARISON,
        &["raw-offset", "shmsock-offset"],
    )
    .at(THROUGHPUT_1M, "Shared Memory (mmap) ... 50.0 GB/s"),
    Claim::new(
        "Shared memory (mmap, pointer exchange), 1 MB",
        Metric::Cpu { size: MIB },
        8.0,
        8.0,
        COMPARISON,
        &["raw-offset", "shmsock-offset"],
    )
    .at(THROUGHPUT_1M, "Shared Memory (mmap) ... 8%"),
    Claim::new(
        "Shared memory (mmap), 1 MB: no data copying",
        Metric::Copies { size: MIB },
        0.0,
        0.0,
        COMPARISON,
        &["raw-offset", "shmsock-offset"],
    )
    .at(
        THROUGHPUT_1M,
        "(* Shared memory: pointer exchange only; no data copying)",
    ),
    Claim::new(
        "Pipe, 1 MB",
        Metric::Rate { size: MIB },
        2800.0,
        2800.0,
        COMPARISON,
        PIPES,
    )
    .at(THROUGHPUT_1M, "Pipe 2,800"),
    Claim::new(
        "Pipe, 1 MB",
        Metric::Bandwidth { size: MIB },
        2.8e9,
        2.8e9,
        COMPARISON,
        PIPES,
    )
    .at(THROUGHPUT_1M, "Pipe ... 2.8 GB/s"),
    Claim::new(
        "Pipe, 1 MB",
        Metric::Cpu { size: MIB },
        72.0,
        72.0,
        COMPARISON,
        PIPES,
    )
    .at(THROUGHPUT_1M, "Pipe ... 72%"),
    Claim::new(
        "Unix domain socket, 1 MB",
        Metric::Rate { size: MIB },
        2400.0,
        2400.0,
        COMPARISON,
        &["uds-stream"],
    )
    .at(THROUGHPUT_1M, "Unix Domain Socket 2,400"),
    Claim::new(
        "Unix domain socket, 1 MB",
        Metric::Bandwidth { size: MIB },
        2.4e9,
        2.4e9,
        COMPARISON,
        &["uds-stream"],
    )
    .at(THROUGHPUT_1M, "Unix Domain Socket ... 2.4 GB/s"),
    Claim::new(
        "Unix domain socket, 1 MB",
        Metric::Cpu { size: MIB },
        75.0,
        75.0,
        COMPARISON,
        &["uds-stream"],
    )
    .at(THROUGHPUT_1M, "Unix Domain Socket ... 75%"),
    // Comparison, the throughput's "Key Observations".
    Claim::new(
        "Shared memory's throughput advantage grows with message size (the copying ring's \
         rate over the other row's, at 1 MiB over at 4 KiB)",
        Metric::AdvantageGrowth,
        1.0,
        f64::INFINITY,
        COMPARISON,
        &["raw-ring vs pipe", "raw-ring vs uds-stream"],
    )
    .at(
        "Throughput Analysis, Key Observations",
        "1. Shared memory throughput advantage is most dramatic for large messages",
    ),
    Claim::new(
        "CPU use per message higher for message passing than for shared memory",
        Metric::CpuPerMsgRatio { size: KIB4 },
        1.0,
        f64::INFINITY,
        COMPARISON,
        &[
            "pipe vs raw-ring",
            "uds-stream vs raw-ring",
            "posix-mq vs raw-ring",
        ],
    )
    .at(
        "Throughput Analysis, Key Observations",
        "3. CPU usage for message passing is higher due to copying",
    ),
    // Comparison, "The Synchronization Tax" (4 KB, SPSC).
    Claim::new(
        "Lock-free (atomic flag)",
        Metric::SyncTax,
        4.5e6,
        4.5e6,
        COMPARISON,
        &["lock-free"],
    )
    .at(SYNC_TAX, "Lock-free (atomic flag) 4,500,000 Baseline"),
    Claim::new(
        "Spinlock (low contention)",
        Metric::SyncTax,
        3.8e6,
        3.8e6,
        COMPARISON,
        &["spinlock"],
    )
    .at(SYNC_TAX, "Spinlock (low contention) 3,800,000"),
    Claim::new(
        "Spinlock (low contention): -15% vs lock-free",
        Metric::VsLockFree,
        0.85,
        0.85,
        COMPARISON,
        &["spinlock"],
    )
    .at(SYNC_TAX, "Spinlock (low contention) ... -15%"),
    Claim::new(
        "Mutex (low contention)",
        Metric::SyncTax,
        2.2e6,
        2.2e6,
        COMPARISON,
        &["mutex-low"],
    )
    .at(SYNC_TAX, "Mutex (low contention) 2,200,000"),
    Claim::new(
        "Mutex (low contention): -51% vs lock-free",
        Metric::VsLockFree,
        0.49,
        0.49,
        COMPARISON,
        &["mutex-low"],
    )
    .at(SYNC_TAX, "Mutex (low contention) ... -51%"),
    Claim::new(
        "Mutex (high contention)",
        Metric::SyncTax,
        450e3,
        450e3,
        COMPARISON,
        &["mutex-high"],
    )
    .at(SYNC_TAX, "Mutex (high contention) 450,000"),
    Claim::new(
        "Mutex (high contention): -90% vs lock-free",
        Metric::VsLockFree,
        0.10,
        0.10,
        COMPARISON,
        &["mutex-high"],
    )
    .at(SYNC_TAX, "Mutex (high contention) ... -90%"),
    Claim::new(
        "Mutex (high contention) as fast as a message queue (its 450,000 = the message \
         queue's 450,000 with one producer)",
        Metric::SyncTaxVsQueue,
        1.0,
        1.0,
        COMPARISON,
        &["mutex-high vs posix-mq"],
    )
    .at(
        SYNC_TAX,
        "Heavy contention can reduce shared memory to message-passing speeds!",
    ),
    // Comparison, contention.
    Claim::new(
        "Lock-free queue, 1 producer",
        Metric::Contention { producers: 1 },
        4.5e6,
        4.5e6,
        COMPARISON,
        &["lock-free"],
    )
    .at(PRODUCERS, "1 | Lock-free Queue 4,500,000/s"),
    Claim::new(
        "Lock-free queue, 2 producers",
        Metric::Contention { producers: 2 },
        3.8e6,
        3.8e6,
        COMPARISON,
        &["lock-free"],
    )
    .at(PRODUCERS, "2 | Lock-free Queue 3,800,000/s*"),
    Claim::new(
        "Lock-free queue, 4 producers",
        Metric::Contention { producers: 4 },
        2.2e6,
        2.2e6,
        COMPARISON,
        &["lock-free"],
    )
    .at(PRODUCERS, "4 | Lock-free Queue 2,200,000/s*"),
    Claim::new(
        "Lock-free queue, 8 producers",
        Metric::Contention { producers: 8 },
        1.4e6,
        1.4e6,
        COMPARISON,
        &["lock-free"],
    )
    .at(PRODUCERS, "8 | Lock-free Queue 1,400,000/s*"),
    Claim::new(
        "Mutex queue, 1 producer",
        Metric::Contention { producers: 1 },
        2.2e6,
        2.2e6,
        COMPARISON,
        &["mutex"],
    )
    .at(PRODUCERS, "1 | Mutex Queue 2,200,000/s"),
    Claim::new(
        "Mutex queue, 2 producers",
        Metric::Contention { producers: 2 },
        1.1e6,
        1.1e6,
        COMPARISON,
        &["mutex"],
    )
    .at(PRODUCERS, "2 | Mutex Queue 1,100,000/s"),
    Claim::new(
        "Mutex queue, 4 producers",
        Metric::Contention { producers: 4 },
        380e3,
        380e3,
        COMPARISON,
        &["mutex"],
    )
    .at(PRODUCERS, "4 | Mutex Queue 380,000/s"),
    Claim::new(
        "Mutex queue, 8 producers",
        Metric::Contention { producers: 8 },
        120e3,
        120e3,
        COMPARISON,
        &["mutex"],
    )
    .at(PRODUCERS, "8 | Mutex Queue 120,000/s"),
    Claim::new(
        "Message queue, 1 producer",
        Metric::Contention { producers: 1 },
        450e3,
        450e3,
        COMPARISON,
        &["posix-mq"],
    )
    .at(PRODUCERS, "1 | Message Queue 450,000/s"),
    Claim::new(
        "Message queue, 2 producers",
        Metric::Contention { producers: 2 },
        420e3,
        420e3,
        COMPARISON,
        &["posix-mq"],
    )
    .at(PRODUCERS, "2 | Message Queue 420,000/s"),
    Claim::new(
        "Message queue, 4 producers",
        Metric::Contention { producers: 4 },
        400e3,
        400e3,
        COMPARISON,
        &["posix-mq"],
    )
    .at(PRODUCERS, "4 | Message Queue 400,000/s"),
    Claim::new(
        "Message queue, 8 producers",
        Metric::Contention { producers: 8 },
        380e3,
        380e3,
        COMPARISON,
        &["posix-mq"],
    )
    .at(PRODUCERS, "8 | Message Queue 380,000/s"),
    Claim::new(
        "Under heavy contention (8 producers) the mutex queue is down to the message queue's \
         speed or below",
        Metric::ContentionRatio { producers: 8 },
        0.0,
        1.0,
        COMPARISON,
        &["mutex vs posix-mq"],
    )
    .at(
        SYNC_TAX,
        "Heavy contention can reduce shared memory to message-passing speeds!",
    ),
    Claim::new(
        "The gap to the message queue shrinks under contention (the ratio at 8 producers over \
         the ratio at 1)",
        Metric::GapShrink,
        0.0,
        1.0,
        COMPARISON,
        &["mutex vs posix-mq", "lock-free vs posix-mq"],
    )
    .at(
        PRODUCERS,
        "Key insight: Under high contention, the performance gap shrinks dramatically",
    ),
    // Comparison, the decision flowchart's latency question.
    Claim::new(
        "Flowchart: shared memory when latency under 1 µs is critical",
        Metric::LatencyTypical,
        0.0,
        1000.0,
        COMPARISON,
        &["raw-ring", "shm-open", "shmsock-busy", "shmsock"],
    )
    .at(
        "IPC model decision flowchart",
        "Is latency critical (< 1 microsecond)? YES -> SHARED MEMORY",
    ),
    Claim::new(
        "Flowchart: message passing does not reach 1 µs (else it would do for critical latency)",
        Metric::LatencyTypical,
        1000.0,
        f64::INFINITY,
        COMPARISON,
        MESSAGE_PASSING,
    )
    .at(
        "IPC model decision flowchart",
        "Is latency critical (< 1 microsecond)? ... NO -> MESSAGE PASSING (default)",
    ),
    // Comparison, the hybrid pattern's code.
    Claim::new(
        "Hybrid: the control message that stands for the data is ~24 bytes",
        Metric::ControlBytes,
        24.0,
        24.0,
        COMPARISON,
        &["shmsock-loan", "raw-offset"],
    )
    .at(
        "Hybrid Pattern Example: Video Frame Transfer",
        "send(socket, &msg, sizeof(msg), 0); // ~24 bytes, not megabytes!",
    ),
    Claim::new(
        "Hybrid: the receiver accesses the data in place, zero copy",
        Metric::Copies { size: MIB },
        0.0,
        0.0,
        COMPARISON,
        &["shmsock-loan"],
    )
    .at(
        "Hybrid Pattern Example: Video Frame Transfer",
        "Now receiver can access frame->data directly - zero copy!",
    ),
    // Communication Costs, "Shared Memory Communication".
    Claim::new(
        "A load from the CPU cache",
        Metric::Cost,
        1.0,
        10.0,
        COMMUNICATION_COSTS,
        &["load-cached-shared", "load-cached-private"],
    )
    .at(
        "Shared Memory Communication",
        "1-10 nanoseconds if data is in CPU cache",
    ),
    Claim::new(
        "A load that misses the cache",
        Metric::Cost,
        100.0,
        100.0,
        COMMUNICATION_COSTS,
        &["load-miss-shared", "load-miss-private"],
    )
    .at(
        "Shared Memory Communication",
        "~100 nanoseconds for a cache miss",
    ),
    Claim::new(
        "An uncontended mutex (lock + unlock)",
        Metric::Cost,
        25.0,
        50.0,
        COMMUNICATION_COSTS,
        &["mutex-uncontended"],
    )
    .at(
        "Shared Memory Communication; Key Takeaways",
        "An uncontended mutex costs 25-50 nanoseconds",
    ),
    Claim::new(
        "A contended mutex: waits of microseconds (read as 1 µs - 1 ms, at the p99)",
        Metric::CostTail,
        1e3,
        1e6,
        COMMUNICATION_COSTS,
        &["mutex-contended"],
    )
    .at(
        "Shared Memory Communication; Key Takeaways",
        "a contended mutex can cost microseconds as threads wait",
    )
    .strict(),
    // Communication Costs, "Inter Process Communication".
    Claim::new(
        "Two user/kernel switches (a system call) per IPC operation, each side",
        Metric::ModeSwitches { size: 64 },
        2.0,
        f64::INFINITY,
        COMMUNICATION_COSTS,
        &["pipe", "uds-stream", "uds-dgram", "tcp", "posix-mq"],
    )
    .at(
        "Inter Process Communication; Key Takeaways",
        "Every IPC operation requires at least two context switches: one to enter the kernel, \
         one to return.",
    ),
    Claim::new(
        "Two context switches per IPC operation, each side, as the scheduler counts them",
        Metric::Switches { size: 64 },
        2.0,
        f64::INFINITY,
        COMMUNICATION_COSTS,
        &["pipe", "uds-stream", "uds-dgram", "tcp", "posix-mq"],
    )
    .at(
        "Inter Process Communication; Key Takeaways",
        "Every IPC operation requires at least two context switches",
    ),
    Claim::new(
        "Pipes and sockets: a copy into the kernel and one out",
        Metric::Copies { size: 64 },
        2.0,
        2.0,
        COMMUNICATION_COSTS,
        &["pipe", "uds-stream", "tcp"],
    )
    .at(
        "Inter Process Communication",
        "Pipes and sockets copy data from sender to kernel buffer, then to receiver.",
    ),
    Claim::new(
        "1 KB through a local socket",
        Metric::OneKib,
        2000.0,
        10000.0,
        COMMUNICATION_COSTS,
        &["uds-stream", "tcp"],
    )
    .at(
        "Inter Process Communication",
        "Sending 1KB through a local socket takes 2-10 microseconds",
    ),
    Claim::new(
        "1 KB through a local socket, ~100x slower than through shared memory",
        Metric::OneKibRatio,
        100.0,
        100.0,
        COMMUNICATION_COSTS,
        &["uds-stream vs raw-ring", "tcp vs raw-ring"],
    )
    .at(
        "Inter Process Communication",
        "roughly 100x slower than shared memory",
    ),
    Claim::new(
        "Shared memory access after setup as fast as regular memory",
        Metric::CostRatio,
        1.0,
        1.0,
        COMMUNICATION_COSTS,
        &[
            "load-cached-shared vs load-cached-private",
            "load-miss-shared vs load-miss-private",
        ],
    )
    .at(
        "Inter Process Communication",
        "After setup, access is as fast as regular memory",
    ),
    // Communication Costs, "Serialization Overhead".
    Claim::new(
        "Serializing 1 KB, binary",
        Metric::Serialize,
        1000.0,
        5000.0,
        COMMUNICATION_COSTS,
        &["postcard"],
    )
    .at(
        "Serialization Overhead",
        "A 1KB message takes 1-5 microseconds with binary formats",
    ),
    Claim::new(
        "Serializing 1 KB, JSON",
        Metric::Serialize,
        10000.0,
        50000.0,
        COMMUNICATION_COSTS,
        &["serde_json"],
    )
    .at("Serialization Overhead", "or 10-50 microseconds with JSON"),
    Claim::new(
        "Binary formats 10x faster than JSON",
        Metric::SerializeRatio,
        10.0,
        10.0,
        COMMUNICATION_COSTS,
        &["serde_json vs postcard"],
    )
    .at(
        "Key Takeaways",
        "binary formats are 10x faster than JSON for equivalent data",
    ),
    // Communication Costs, "The Performance Gap". shmsock is held to the threads' number:
    // moving messages between processes at the speed of threads is what it is for.
    Claim::new(
        "1,000,000 messages, threads + lock-free queue",
        Metric::Million,
        0.1,
        0.1,
        COMMUNICATION_COSTS,
        &["threads", "shmsock"],
    )
    .at(
        "The Performance Gap",
        "For one million messages: threads with a lock free queue complete in ~100ms.",
    ),
    Claim::new(
        "1,000,000 messages, processes + sockets",
        Metric::Million,
        10.0,
        10.0,
        COMMUNICATION_COSTS,
        &["uds-stream"],
    )
    .at(
        "The Performance Gap",
        "Processes with sockets take ~10 seconds",
    ),
    Claim::new(
        "1,000,000 messages: processes with sockets 100x slower than threads",
        Metric::MillionRatio,
        100.0,
        100.0,
        COMMUNICATION_COSTS,
        &["uds-stream vs threads"],
    )
    .at("The Performance Gap", "a 100x slowdown"),
    // Communication Costs, "Key Trade-off" and "Key Takeaways".
    Claim::new(
        "Shared memory gives nanosecond latency (read as under 1 µs one-way)",
        Metric::LatencyTypical,
        0.0,
        1000.0,
        COMMUNICATION_COSTS,
        &["raw-ring", "shm-open", "shmsock-busy", "shmsock"],
    )
    .at("Key Trade-off", "Shared memory gives nanosecond latency"),
    Claim::new(
        "IPC costs microseconds per operation (read as 1 µs - 1 ms one-way)",
        Metric::LatencyTypical,
        1e3,
        1e6,
        COMMUNICATION_COSTS,
        MESSAGE_PASSING,
    )
    .at(
        "Key Trade-off",
        "IPC gives isolation but costs microseconds per operation.",
    )
    .strict(),
    Claim::new(
        "Shared memory access (~100 ns)",
        Metric::LatencyTypical,
        100.0,
        100.0,
        COMMUNICATION_COSTS,
        &["floor"],
    )
    .at(
        "Key Takeaways",
        "Shared memory communication costs ~100 nanoseconds per access",
    ),
    Claim::new(
        "Socket-based IPC (2–10 µs)",
        Metric::LatencyTypical,
        2000.0,
        10000.0,
        COMMUNICATION_COSTS,
        &["uds-stream", "tcp"],
    )
    .at("Key Takeaways", "socket based IPC costs 2-10 microseconds"),
    // Communication Costs, "Interview Tips".
    Claim::new(
        "A stream cannot outrun one message per one-way latency (msgs/s × one-way p50 at most \
         1)",
        Metric::RateTimesLatency { size: 64 },
        0.0,
        1.0,
        COMMUNICATION_COSTS,
        MESSAGE_PASSING,
    )
    .at(
        "Interview Tips",
        "10 microseconds per message means 100,000 messages per second maximum",
    ),
    // Communication Costs: memory-mapped files as a middle ground, where "communication
    // approaches shared memory speed after the initial mapping setup".
    Claim::new(
        "Memory-mapped files approach shared memory speed",
        Metric::VsRawRing { size: KIB4 },
        1.0,
        1.0,
        COMMUNICATION_COSTS,
        &["mmap-file"],
    )
    .at(
        "Interview Tips",
        "communication approaches shared memory speed after the initial mapping setup",
    ),
    // IPC cheat sheet.
    Claim::new(
        "Shared memory the fastest IPC (its rate over the fastest kernel row's)",
        Metric::RateRatio { size: KIB4 },
        1.0,
        f64::INFINITY,
        IPC_CHEAT_SHEET,
        &["raw-ring vs kernel", "shm-open vs kernel"],
    )
    .at(
        "Shared memory and IPC (opening); the menu",
        "Shared memory is the fastest IPC because there's no copy",
    ),
    Claim::new(
        "Shared memory: no copy",
        Metric::Copies { size: KIB4 },
        0.0,
        0.0,
        IPC_CHEAT_SHEET,
        &["shm-open"],
    )
    .at(
        "Shared memory and IPC (opening); the menu",
        "Shared memory | Fastest, no copy",
    ),
    Claim::new(
        "TCP slower than a Unix domain socket",
        Metric::LatencyRatio,
        1.0,
        f64::INFINITY,
        IPC_CHEAT_SHEET,
        &["tcp vs uds-stream", "udp vs uds-dgram"],
    )
    .at(
        "The menu",
        "Unix domain socket | Fast ... TCP/UDP socket | Slower",
    ),
    Claim::new(
        "Message queues slower than pipes",
        Metric::LatencyRatio,
        1.0,
        f64::INFINITY,
        IPC_CHEAT_SHEET,
        &["posix-mq vs pipe", "sysv-mq vs pipe"],
    )
    .at(
        "The menu",
        "Pipe (anon) | Fast ... Message queue (POSIX, SysV) | Medium",
    ),
    Claim::new(
        "Memory-mapped file: producer/consumer with persistence",
        Metric::Kept,
        100.0,
        100.0,
        IPC_CHEAT_SHEET,
        MAPPED_FILES,
    )
    .at(
        "The menu",
        "Memory-mapped file | Fast | Producer/consumer with persistence",
    ),
    Claim::new(
        "Shared memory wins on raw throughput (4 KiB, over a Unix socket)",
        Metric::RateRatio { size: KIB4 },
        1.0,
        f64::INFINITY,
        IPC_CHEAT_SHEET,
        &[
            "raw-ring vs uds-stream",
            "shm-open vs uds-stream",
            "shmsock vs uds-stream",
        ],
    )
    .at(
        "The menu; The interview answer",
        "Shared memory wins on raw throughput.",
    ),
    Claim::new(
        "Shared memory wins on raw throughput (1 MiB, over a Unix socket)",
        Metric::RateRatio { size: MIB },
        1.0,
        f64::INFINITY,
        IPC_CHEAT_SHEET,
        &["raw-offset vs uds-stream", "shmsock-loan vs uds-stream"],
    )
    .at(
        "The menu; The interview answer",
        "Shared memory wins on raw throughput.",
    ),
    Claim::new(
        "Shared memory in 4 calls (the system calls that set up a shm:// segment)",
        Metric::SetupSyscalls,
        4.0,
        4.0,
        IPC_CHEAT_SHEET,
        &["shmsock shm://"],
    )
    .at(
        "Shared memory in 4 calls",
        "Shared memory in 4 calls: shm_open, ftruncate, mmap",
    )
    .strict(),
    Claim::new(
        "1 KB over a Unix socket: two copies",
        Metric::Copies { size: KIB4 },
        2.0,
        2.0,
        IPC_CHEAT_SHEET,
        UDS,
    )
    .at(
        "Why sockets are slower",
        "Sending 1KB over a unix socket: ... Two copies plus two syscalls.",
    ),
    Claim::new(
        "1 KB over a Unix socket: two system calls",
        Metric::Syscalls { size: KIB4 },
        2.0,
        2.0,
        IPC_CHEAT_SHEET,
        UDS,
    )
    .at(
        "Why sockets are slower",
        "Sending 1KB over a unix socket: ... Two copies plus two syscalls.",
    ),
    Claim::new(
        "Shared memory: zero copies",
        Metric::Copies { size: KIB4 },
        0.0,
        0.0,
        IPC_CHEAT_SHEET,
        &["raw-ring", "shm-open"],
    )
    .at(
        "Why sockets are slower; The interview answer",
        "Shared memory: write to a memory location. Zero copies, zero syscalls.",
    ),
    Claim::new(
        "Shared memory: zero system calls",
        Metric::Syscalls { size: KIB4 },
        0.0,
        0.0,
        IPC_CHEAT_SHEET,
        &["raw-ring", "shm-open"],
    )
    .at(
        "Why sockets are slower; The interview answer",
        "Shared memory: write to a memory location. Zero copies, zero syscalls.",
    ),
    Claim::new(
        "Shared memory, payload written in place (1 MiB): zero copies",
        Metric::Copies { size: MIB },
        0.0,
        0.0,
        IPC_CHEAT_SHEET,
        &["raw-offset"],
    )
    .at(
        "Why sockets are slower; The interview answer",
        "Shared memory: write to a memory location. Zero copies, zero syscalls.",
    ),
    Claim::new(
        "Shared memory, payload written in place (1 MiB): zero system calls",
        Metric::Syscalls { size: MIB },
        0.0,
        0.0,
        IPC_CHEAT_SHEET,
        &["raw-offset"],
    )
    .at(
        "Why sockets are slower; The interview answer",
        "Shared memory: write to a memory location. Zero copies, zero syscalls.",
    ),
    Claim::new(
        "1 KB over a Unix socket at low rates: a few microseconds (read as 1-10 µs)",
        Metric::OneKib,
        1000.0,
        10000.0,
        IPC_CHEAT_SHEET,
        &["uds-stream"],
    )
    .at(
        "Why sockets are slower",
        "For 1KB at low rates, sockets cost a few microseconds.",
    ),
    Claim::new(
        "Copying transports fall short of 1 GB/s (1 MiB messages)",
        Metric::Bandwidth { size: MIB },
        0.0,
        1e9,
        IPC_CHEAT_SHEET,
        &["pipe", "uds-stream", "tcp"],
    )
    .at(
        "Why sockets are slower",
        "For 1GB/sec throughput, the copies kill you.",
    ),
    Claim::new(
        "Pipes and Unix sockets incur copies",
        Metric::Copies { size: KIB4 },
        1.0,
        f64::INFINITY,
        IPC_CHEAT_SHEET,
        &["pipe", "uds-stream"],
    )
    .at(
        "The interview answer",
        "Pipes and unix sockets are easier but incur copies and syscalls.",
    ),
    Claim::new(
        "Pipes and Unix sockets incur system calls",
        Metric::Syscalls { size: KIB4 },
        1.0,
        f64::INFINITY,
        IPC_CHEAT_SHEET,
        &["pipe", "uds-stream"],
    )
    .at(
        "The interview answer",
        "Pipes and unix sockets are easier but incur copies and syscalls.",
    ),
    Claim::new(
        "Shared memory via shm_open + mmap: the fastest IPC (its rate over raw-ring's)",
        Metric::VsRawRing { size: KIB4 },
        1.0,
        1.0,
        IPC_CHEAT_SHEET,
        &["shm-open"],
    )
    .at(
        "The interview answer",
        "Shared memory via shm_open + mmap is the fastest IPC",
    ),
    // Q&A thread.
    Claim::new(
        "Shared memory does not need a system call per message",
        Metric::Syscalls { size: KIB4 },
        0.0,
        0.0,
        QA_THREAD,
        &["raw-ring", "shmsock-busy"],
    )
    .at(
        "first answer, Shared Memory",
        "Does not necessarily require a syscall (therefore potentially faster).",
    ),
    Claim::new(
        "Shared memory much faster than sockets (read as at least 2x in one-way latency)",
        Metric::LatencyRatio,
        2.0,
        f64::INFINITY,
        QA_THREAD,
        &["uds-stream vs raw-ring", "tcp vs raw-ring"],
    )
    .at(
        "comment on the first answer",
        "sockets scale up to distributed systems whereas shared memory is much faster.",
    ),
    Claim::new(
        "Every socket message goes through the OS (a system call on each side)",
        Metric::Syscalls { size: KIB4 },
        2.0,
        f64::INFINITY,
        QA_THREAD,
        &["uds-stream", "tcp"],
    )
    .at(
        "second answer",
        "Sockets are resource intensive. Each and every message goes through the OS.",
    ),
    // SM and MP article.
    Claim::new(
        "Message passing costs more CPU per message than shared memory",
        Metric::CpuPerMsgRatio { size: KIB4 },
        1.0,
        f64::INFINITY,
        SM_AND_MP,
        &["pipe vs raw-ring", "uds-stream vs raw-ring"],
    )
    .at(
        "Drawbacks of Message Passing",
        "Performance Overhead: Compared to shared memory, message passing involves additional \
         overhead",
    ),
];

/// The quantitative claims no measurement of a run can check, and why.
pub const UNCHECKED: &[Unchecked] = &[
    Unchecked {
        subject: "Throughput benchmark platform",
        source: COMPARISON,
        section: "Throughput Analysis",
        quote: "Linux x86_64",
        claimed: "Linux x86_64",
        why: Why::Platform,
    },
    Unchecked {
        subject: "Throughput benchmark: both processes on one NUMA node",
        source: COMPARISON,
        section: "Throughput Analysis",
        quote: "same NUMA node",
        claimed: "same NUMA node",
        why: Why::Numa,
    },
    Unchecked {
        subject: "Throughput benchmark: averaged over 10 runs",
        source: COMPARISON,
        section: "Throughput Analysis",
        quote: "averaged over 10 runs",
        claimed: "10 runs",
        why: Why::Runs,
    },
    Unchecked {
        subject: "Throughput benchmark: 1 GB per row",
        source: COMPARISON,
        section: "Throughput Analysis",
        quote: "Transferring 1GB of data between two processes ... 262,144 messages ... 1,024 \
                messages",
        claimed: "1 GB per row",
        why: Why::Volume,
    },
    Unchecked {
        subject: "Flowchart threshold: data size per transfer",
        source: COMPARISON,
        section: "IPC model decision flowchart",
        quote: "Is data size > 100 KB per transfer?",
        claimed: "100 KB",
        why: Why::Text(
            "a threshold of a decision, not a measurement: `shmsock advise` asks it and puts \
             this run's rates beside the answer",
        ),
    },
    Unchecked {
        subject: "Flowchart threshold: transfer frequency",
        source: COMPARISON,
        section: "IPC model decision flowchart",
        quote: "Is transfer frequency > 10,000/sec?",
        claimed: "10,000/s",
        why: Why::Text(
            "a threshold of a decision, not a measurement: `shmsock advise` asks it and puts \
             this run's rates beside the answer",
        ),
    },
    Unchecked {
        subject: "PostgreSQL's years of development",
        source: COMPARISON,
        section: "PostgreSQL: Shared Memory Dominant",
        quote: "PostgreSQL's 25+ years of development have refined this approach",
        claimed: "25+ years",
        why: Why::Text("the history of a project: nothing a machine can measure"),
    },
    Unchecked {
        subject: "The cost holds whatever the CPU",
        source: COMMUNICATION_COSTS,
        section: "Interview Tips",
        quote: "100,000 messages per second maximum, regardless of CPU speed",
        claimed: "any CPU speed",
        why: Why::Text(
            "the lab measures one machine at its one speed; comparing speeds takes runs on \
             several machines",
        ),
    },
    Unchecked {
        subject: "Writes visible to the other process at once",
        source: IPC_CHEAT_SHEET,
        section: "Shared memory in 4 calls",
        quote: "Writes by one are immediately visible to the other (modulo memory ordering, you \
                still need atomics or barriers for correctness).",
        claimed: "immediately",
        why: Why::Floor,
    },
    Unchecked {
        subject: "Modifications seen by all other processes at once",
        source: SM_AND_MP,
        section: "Shared Memory",
        quote: "Any modifications made by a process can be immediately observed by all other \
                processes with access to the shared memory.",
        claimed: "immediately",
        why: Why::Floor,
    },
    Unchecked {
        subject: "How many processes can share memory",
        source: SM_AND_MP,
        section: "Drawbacks of Shared Memory",
        quote: "the number of processes that can simultaneously access it is constrained by \
                the available memory space",
        claimed: "bounded by memory",
        why: Why::Text(
            "the lab does not start processes until memory runs out; its fan-out runs 1, 2 \
             and 4 subscribers of one segment",
        ),
    },
];
