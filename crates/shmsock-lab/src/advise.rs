//! `shmsock advise`: the Comparison's decision flowchart and the IPC cheat sheet's menu of
//! mechanisms, answered with this machine's numbers.
//!
//! ```text
//! different machines (now or later)? --yes--> message passing over the network   tcp:// (+ bridge)
//!   | no
//! only a wake-up, no data? --yes--> latency budget under 1 µs? --yes--> shm:// BusyPoll
//!   |                                 | no: the woken side waits in an event loop?
//!   |                                 |       yes: eventfd
//!   |                                 |       no:  a signal clearly faster than eventfd here?
//!   |                                 |            yes: a real-time signal  no: eventfd
//!   | no
//! more than 100 KiB per transfer? --yes--> more than 10,000 transfers/s?
//!   | no                                      | yes: shared memory, zero-copy      shm:// + loans
//!   |                                         | no:  hybrid (control + bulk)       shm:// + loans
//! latency budget under 1 µs? --yes--> shared memory, busy-polling                   shm:// BusyPoll
//!   | no
//! messages must wait in the kernel for an absent reader? --yes--> POSIX message queue
//!   | no
//! a byte stream, not messages? --yes--> the peer is a child you fork? yes: pipe, no: FIFO
//!   |                                     rate above half of what it streams here? shm:// Conn
//!   | no: message passing (the default)                                             unix:/// or shm://
//! (any shared-memory answer) untrusted peer? --yes--> copy every message            shm:// Conn, no loans
//! ```
//!
//! The questions about size, rate and latency are the Comparison's; the others follow the "Use"
//! column of the IPC cheat sheet's menu (a signal for "notifications only", eventfd and
//! signalfd as "wakeup primitives for event loops", an anonymous pipe for "parent-child, byte
//! stream", a named pipe for unrelated processes, a message queue for "structured messages,
//! kernel-managed"). A plain mechanism is the answer only where the shmsock ones are not needed:
//! remote peers, large or sub-microsecond transfers keep the Comparison's answers. Two branches
//! look at this machine's numbers ([`decide_measured`]): a signal replaces eventfd only when it
//! is [`CLEARLY_FASTER`], and a pipe or FIFO gives way to a `shm://` Conn when the rate asked is
//! more than [`KERNEL_HEADROOM`] of what it streams here.
//!
//! [`decide`] walks the chart and returns the [`Leaf`] and the path it took; [`advise`] turns
//! that into an [`Advice`] with the concrete endpoint (for a plain mechanism: its calls, and
//! the shmsock alternative) and the numbers of a lab [`Report`] that justify it (`evidence`).
//! [`interview`] asks the same questions on a terminal. Answers the user did not give count as
//! "no" and the path says so.

mod evidence;
mod interview;
mod parse;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::LabError;
use crate::experiments::Budgets;
use crate::options::{LabOptions, Mode};
use crate::report::Report;

pub use interview::interview;
pub use parse::{parse_bytes, parse_duration_ns, parse_rate};

/// "Is data size > 100 KB per transfer?" (Comparison), in bytes.
pub const LARGE_TRANSFER_BYTES: u64 = 100 * 1024;
/// "Is transfer frequency > 10,000/sec?" (Comparison).
pub const FREQUENT_PER_S: f64 = 10_000.0;
/// "Is latency critical (< 1 microsecond)?" (Comparison), in ns.
pub const LATENCY_CRITICAL_NS: u64 = 1_000;
/// A signal replaces eventfd only when eventfd's one-way p50 is more than this many times the
/// signal's: two kernel wake-ups within this factor are a tie on a noisy machine (quick runs
/// move by 10–20%), and a tie goes to the descriptor an event loop can wait on.
pub const CLEARLY_FASTER: f64 = 1.25;
/// A pipe or FIFO is the answer while the rate asked is at most this share of what it streams
/// on this machine: a kernel channel run near its limit queues, and its latency grows.
pub const KERNEL_HEADROOM: f64 = 0.5;

/// What the user needs: the questions of the flowchart and of the menu, answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Needs {
    /// The processes run (or will run) on different machines.
    pub remote: bool,
    /// Bytes per transfer, if known.
    pub size_bytes: Option<u64>,
    /// Transfers per second, if known.
    pub rate_per_s: Option<f64>,
    /// Latency budget per message in ns, if there is one.
    pub latency_budget_ns: Option<u64>,
    /// The peer is not trusted (another user, a sandbox, code you do not control).
    pub untrusted: bool,
    /// Only a wake-up crosses, no data (the IPC cheat sheet's "notifications only").
    pub notify_only: bool,
    /// The woken side waits in an event loop (epoll, poll, tokio); asked after `notify_only`.
    pub event_loop: bool,
    /// The peer is a child process this one forks.
    pub parent_child: bool,
    /// The data is a byte stream, not messages.
    pub byte_stream: bool,
    /// Messages must wait in the kernel while their reader is absent (slow, not started yet,
    /// restarting): the IPC cheat sheet's "kernel-managed" messages.
    pub kernel_queue: bool,
}

impl Needs {
    /// Whether the latency budget asked for is under [`LATENCY_CRITICAL_NS`] (only
    /// shared memory with a spinning reader meets it).
    pub fn latency_critical(&self) -> bool {
        self.latency_budget_ns
            .is_some_and(|ns| ns < LATENCY_CRITICAL_NS)
    }
}

/// Where the flowchart ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leaf {
    /// Different machines: message passing over network sockets.
    Network,
    /// Large and frequent transfers: shared memory without copies.
    SharedMemoryBulk,
    /// Large, infrequent transfers: messages for control, shared memory for the bulk.
    Hybrid,
    /// Small messages with a sub-microsecond budget: shared memory, busy-polling.
    SharedMemoryLowLatency,
    /// Small messages, no hard latency budget: message passing, the default.
    MessagePassing,
    /// A shared-memory answer, but the peer is untrusted: copy every message, share no buffer.
    UntrustedCopying,
    /// Wake-ups only, for an event loop (or no clearly faster signal): an eventfd.
    Eventfd,
    /// Wake-ups only, and a real-time signal is clearly faster here than an eventfd.
    Signal,
    /// A byte stream between a parent and the child it forks: an anonymous pipe.
    Pipe,
    /// A byte stream between unrelated processes: a named pipe.
    Fifo,
    /// Messages that must wait in the kernel for an absent reader: a POSIX message queue.
    PosixMq,
    /// A byte stream at a rate the pipe or FIFO does not carry here: a `shm://` Conn.
    SharedMemoryRate,
}

/// The shmsock alternative to a notification through the kernel (its spin:
/// `WaitStrategy::BLOCKING_SPIN`, which a test holds this text to).
const NOTIFY_ALTERNATIVE: &str = "shm://NAME Conn sending a small message per wake-up: \
     Options::new().wait_strategy(WaitStrategy::Blocking) sleeps after a spin of at most \
     2 µs, as an eventfd reader sleeps, the default Adaptive wait spins first (faster, at the \
     cost of a busy CPU while it spins); in a tokio event loop, AsyncConn (its doorbell is \
     rung only while the async side sleeps)";

impl Leaf {
    /// Every leaf, in the chart's order.
    pub const ALL: [Leaf; 12] = [
        Leaf::Network,
        Leaf::SharedMemoryBulk,
        Leaf::Hybrid,
        Leaf::SharedMemoryLowLatency,
        Leaf::MessagePassing,
        Leaf::UntrustedCopying,
        Leaf::Eventfd,
        Leaf::Signal,
        Leaf::Pipe,
        Leaf::Fifo,
        Leaf::PosixMq,
        Leaf::SharedMemoryRate,
    ];

    /// The mechanism, in the words of the flowchart or of the menu: the advice's `Use:` line.
    pub fn mechanism(self) -> &'static str {
        match self {
            Leaf::Network => "message passing over the network (sockets)",
            Leaf::SharedMemoryBulk => "shared memory, zero-copy (with careful synchronisation)",
            Leaf::Hybrid => "hybrid: message passing for control, shared memory for bulk data",
            Leaf::SharedMemoryLowLatency => "shared memory, busy-polling",
            Leaf::MessagePassing => "message passing (the default)",
            Leaf::UntrustedCopying => "message passing with copies: no buffer shared with the peer",
            Leaf::Eventfd => "eventfd, a kernel counter as a doorbell (wake-ups for event loops)",
            Leaf::Signal => "a real-time signal (sigqueue), taken with sigtimedwait or a signalfd",
            Leaf::Pipe => "an anonymous pipe, made before fork(): a byte stream parent <-> child",
            Leaf::Fifo => "a named pipe (FIFO): a byte stream between unrelated processes",
            Leaf::PosixMq => {
                "a POSIX message queue (mq_open): kernel-managed messages that wait for their \
                 reader"
            }
            Leaf::SharedMemoryRate => {
                "shared memory (shm:// Conn): more messages per second than the kernel's byte \
                 stream carries here"
            }
        }
    }

    /// For a plain (non-shmsock) mechanism, the calls that make and use it; `None` for the
    /// shmsock leaves.
    pub fn calls(self) -> Option<&'static str> {
        match self {
            Leaf::Eventfd => Some(
                "eventfd(0, EFD_CLOEXEC), made before fork() (the child inherits it) or handed \
                 to an unrelated process over a Unix socket (SCM_RIGHTS); the notifier write()s \
                 an 8-byte count, the waiter watches the descriptor with epoll/poll (tokio: \
                 AsyncFd) and read()s it, which returns the sum of the counts and resets it: \
                 wake-ups coalesce, none is lost, no data travels",
            ),
            Leaf::Signal => Some(
                "block SIGRTMIN+n in every thread (pthread_sigmask before the threads start); \
                 the waiter takes it with sigtimedwait, or reads a signalfd in an event loop; \
                 the notifier calls sigqueue(pid, SIGRTMIN+n, value) (8 bytes ride along). It \
                 needs the waiter's pid and the same user, no shared descriptor; real-time \
                 signals queue (up to RLIMIT_SIGPENDING); a handler, if you install one \
                 instead, may call only async-signal-safe functions",
            ),
            Leaf::Pipe => Some(
                "pipe2(O_CLOEXEC) before fork(), each side closing the end it does not use; \
                 write() and read() bytes (a read may return less than asked: loop; writes of \
                 up to PIPE_BUF = 4096 bytes are atomic); two pipes for both directions, or \
                 socketpair(AF_UNIX, SOCK_STREAM) for one duplex descriptor; the reader gets \
                 end of file when the writer exits",
            ),
            Leaf::Fifo => Some(
                "mkfifo(path, 0600) once; the reader open()s it for reading, the writer for \
                 writing (each open waits for the other side), then write()/read() as on a \
                 pipe, one direction per FIFO; the path stays until unlink(); for both \
                 directions or several clients, a Unix stream socket",
            ),
            Leaf::PosixMq => Some(
                "mq_open(\"/NAME\", O_CREAT | O_RDWR, 0600, &attr) in both processes (attr: \
                 mq_maxmsg, mq_msgsize); mq_send(mqd, msg, len, prio) and mq_receive or \
                 mq_timedreceive: whole messages, highest priority first, each to one reader; \
                 the queue and what it holds stay until mq_unlink() or a reboot, whoever \
                 exits; at most fs.mqueue.msg_max messages (10 by default) of \
                 fs.mqueue.msgsize_max bytes (8 KiB by default) unless raised; on Linux the \
                 descriptor works with epoll, or mq_notify",
            ),
            _ => None,
        }
    }

    /// The shmsock endpoint and pattern to use; for a plain mechanism, the shmsock alternative.
    pub fn endpoint(self) -> &'static str {
        match self {
            Leaf::Network => {
                "tcp://HOST:PORT, ZeroMQ's wire protocol (ZMTP 3.1): a Conn (PAIR) for one \
                 peer, Publisher/Subscriber (PUB/SUB with topic prefixes) for many; pyzmq and \
                 libzmq sockets are peers. A port other machines reach needs CURVE (RFC 26 \
                 CurveZMQ: every frame encrypted and authenticated; Options::curve_secret, \
                 curve_server, curve_allow): `shmsock keygen server` and a key per client, \
                 then `shmsock bridge shm://NAME tcp://0.0.0.0:PORT --dest-curve-secret \
                 server.key_secret --dest-curve-allow clients/` republishes a shm:// topic to \
                 the remote ones, which subscribe with `shmsock sub tcp://HOST:PORT \
                 --curve-server server.key --curve-secret alice.key_secret`. Processes that \
                 share a machine keep shm://NAME"
            }
            Leaf::SharedMemoryBulk => {
                "shm://NAME Conn + loans: the sender connects with Options::loan_pool(slots, \
                 slot_bytes), fills a slot in place with conn.loan(len) and sends 24 bytes; \
                 the receiver's recv_sample() reads the slot where it lies (zero-copy; for a \
                 Conn, not yet for pub/sub)"
            }
            Leaf::Hybrid => {
                "shm://NAME Conn: send/recv for the control messages and loans for the bulk \
                 on the same connection (Options::loan_pool, conn.loan, recv_sample), or \
                 plain copies while the rate stays low"
            }
            Leaf::SharedMemoryLowLatency => {
                "shm://NAME Conn with Options::new().wait_strategy(WaitStrategy::BusyPoll) on \
                 both sides (each receiver keeps one CPU busy)"
            }
            Leaf::MessagePassing => {
                "unix:///path (ZMTP over a Unix stream socket, ZeroMQ's ipc://, so pyzmq is \
                 a peer) or shm://NAME with the default Adaptive wait: the same Conn send/recv \
                 API, and Publisher/Subscriber for one-to-many"
            }
            Leaf::UntrustedCopying => {
                "shm://NAME Conn without loans (the peer's segment is sealed and mapped read-only, \
                 every value read from it is validated, SO_PEERCRED is checked; \
                 Options::allow_uid for another user), or unix:///path (ZMTP over a Unix \
                 socket, the peer's uid checked the same way) when the peer is in another \
                 trust domain"
            }
            Leaf::Eventfd | Leaf::Signal => NOTIFY_ALTERNATIVE,
            Leaf::Pipe => {
                "shm://NAME Conn between parent and child (Listener::bind before fork(), \
                 Conn::connect in the child, accept in the parent): messages, not bytes, so \
                 a stream goes in chunks; the default Adaptive wait spins before it sleeps"
            }
            Leaf::Fifo => {
                "shm://NAME Conn (Listener::bind in one process, Conn::connect in the other): \
                 messages, not bytes, so a stream goes in chunks; or unix:///path, ZMTP over \
                 a Unix stream socket (pyzmq is a peer)"
            }
            Leaf::PosixMq => {
                "shm://NAME Conn, or an Inbox for many writers: faster, but a reader must be \
                 bound (Listener::bind) before a writer connects, and a message lives only as \
                 long as its connection, so none waits for a reader that is not there; \
                 Publisher/Subscriber when every reader needs every message"
            }
            Leaf::SharedMemoryRate => {
                "shm://NAME Conn with the default Adaptive wait (Listener::bind, then \
                 Conn::connect; binding before fork() serves a child too): messages, not \
                 bytes, so the stream goes in chunks, and fewer, larger chunks go further"
            }
        }
    }

    /// Why, in a sentence.
    pub fn reason(self) -> &'static str {
        match self {
            Leaf::Network => {
                "shared memory stops at the machine; sockets scale out, and shmsock keeps the \
                 API the same when some peers later share a machine (shm://), with a bridge \
                 between the two"
            }
            Leaf::SharedMemoryBulk => {
                "at this size and rate copying costs whole CPUs and memory bandwidth; passing an \
                 offset into shared memory costs the same whatever the size"
            }
            Leaf::Hybrid => {
                "large transfers are worth not copying, but at this rate a copy is affordable: \
                 keep coordination explicit as messages and share only the bulk"
            }
            Leaf::SharedMemoryLowLatency => {
                "every kernel mechanism pays a system call and a wake-up (microseconds); only \
                 shared memory polled by a spinning reader stays near the hardware floor"
            }
            Leaf::MessagePassing => {
                "small messages without a sub-microsecond budget are fast enough through a \
                 socket; message passing is simpler to get right, debug and scale"
            }
            Leaf::UntrustedCopying => {
                "a peer that shares a buffer with you can change it while you read it; copying \
                 every message (and validating it) keeps its mistakes or malice out of your memory"
            }
            Leaf::Eventfd => {
                "the IPC cheat sheet's menu gives eventfd and signalfd as the \"wakeup \
                 primitives for event loops\": one descriptor the loop already knows how to \
                 wait on, no payload to frame or copy, and wake-ups that coalesce; a ring of \
                 messages is more than a notification needs"
            }
            Leaf::Signal => {
                "the IPC cheat sheet's menu has a signal for \"notifications only\", and on this \
                 machine it wakes the other side clearly faster than an eventfd (the numbers \
                 below); it needs no shared descriptor, only a pid"
            }
            Leaf::Pipe => {
                "the IPC cheat sheet's menu has the anonymous pipe for \"parent-child, byte \
                 stream\": nothing to name or clean up, no framing, and end of file (or EPIPE) \
                 when the other side exits"
            }
            Leaf::Fifo => {
                "the IPC cheat sheet's menu has the named pipe for \"same machine, unrelated \
                 processes\": a path both can open, no connection protocol, the same byte \
                 stream as a pipe"
            }
            Leaf::PosixMq => {
                "the IPC cheat sheet's menu has the message queue (POSIX, SysV) for \"structured \
                 messages, kernel-managed\": message boundaries and priorities kept, and the \
                 kernel holds the messages while the reader is slow, not started yet or \
                 restarting, which no connection does"
            }
            Leaf::SharedMemoryRate => {
                "the rate asked is more than half of what the kernel's byte stream carries on \
                 this machine (the numbers below): a kernel channel near its limit queues and \
                 its latency grows, while a shared-memory ring costs no system call per message"
            }
        }
    }

    /// Whether the leaf puts data in shared memory (the untrusted question follows it).
    fn shares_memory(self) -> bool {
        matches!(
            self,
            Leaf::SharedMemoryBulk | Leaf::Hybrid | Leaf::SharedMemoryLowLatency
        )
    }

    /// What an untrusted peer changes on a leaf that shares no buffer.
    fn untrusted_note(self) -> &'static str {
        match self {
            Leaf::SharedMemoryRate => {
                "yes: a Conn without loans already copies every message out of the peer's \
                 sealed, read-only segment and validates it (Options::allow_uid for another \
                 user)"
            }
            Leaf::Eventfd | Leaf::Signal | Leaf::Pipe | Leaf::Fifo | Leaf::PosixMq => {
                "yes: the kernel copies everything, no memory is shared with the peer"
            }
            _ => "yes: message passing already keeps its memory apart from yours",
        }
    }
}

/// One question of the chart and the answer taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The question.
    pub question: &'static str,
    /// The answer, with the value it came from.
    pub answer: String,
}

/// The advice: the leaf, what to use, the path through the chart, and the numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// What was asked.
    pub needs: Needs,
    /// Where the chart ended.
    pub leaf: Leaf,
    /// The mechanism, in the chart's words.
    pub mechanism: &'static str,
    /// For a plain mechanism, the calls that make and use it ([`Leaf::calls`]).
    pub calls: Option<&'static str>,
    /// The shmsock endpoint and pattern (for a plain mechanism: the shmsock alternative).
    pub endpoint: &'static str,
    /// Why.
    pub reason: &'static str,
    /// The questions and answers that led here.
    pub path: Vec<Step>,
    /// This machine's numbers that back the answer.
    pub evidence: Vec<String>,
    /// Where the numbers come from, and caveats.
    pub notes: Vec<String>,
}

/// Records the step `question` about a number the needs may not give: `given` is whether it
/// passes the threshold and how it reads; without it the answer is "no (`missing`)". Returns
/// the answer.
fn threshold(
    path: &mut Vec<Step>,
    question: &'static str,
    given: Option<(bool, String)>,
    missing: &str,
) -> bool {
    let (yes, answer) = match given {
        Some((yes, value)) => (yes, format!("{} ({value})", yes_no(yes))),
        None => (false, format!("no ({missing})")),
    };
    path.push(Step { question, answer });
    yes
}

/// `yes` or `no`.
fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The menu's question that opens the notification branch.
const NOTIFY_QUESTION: &str = "Only a wake-up, no data?";
/// The Comparison's latency question (asked on the notification branch too).
const LATENCY_QUESTION: &str = "Latency budget under 1 µs?";

/// Walks the flowchart without this machine's numbers: a signal never replaces eventfd and a
/// pipe's rate is not checked ([`decide_measured`] does both).
pub fn decide(needs: &Needs) -> (Leaf, Vec<Step>) {
    decide_measured(needs, None)
}

/// Walks the flowchart; where a branch depends on this machine's numbers (eventfd or a
/// signal, a pipe or a `shm://` Conn at the rate asked) they come from `report`, and without
/// them the plain answer stands and the path says so.
pub fn decide_measured(needs: &Needs, report: Option<&Report>) -> (Leaf, Vec<Step>) {
    let mut path = vec![Step {
        question: "Different machines, now or later?",
        answer: yes_no(needs.remote).to_string(),
    }];
    if needs.remote {
        return (Leaf::Network, path);
    }
    path.push(Step {
        question: NOTIFY_QUESTION,
        answer: yes_no(needs.notify_only).to_string(),
    });
    let leaf = if needs.notify_only {
        notification(needs, report, &mut path)
    } else {
        let large = threshold(
            &mut path,
            "More than 100 KiB per transfer?",
            needs
                .size_bytes
                .map(|s| (s > LARGE_TRANSFER_BYTES, format!("{s} bytes"))),
            "size not given",
        );
        if large {
            let frequent = threshold(
                &mut path,
                "More than 10,000 transfers per second?",
                needs
                    .rate_per_s
                    .map(|r| (r > FREQUENT_PER_S, format!("{r:.0}/s"))),
                "rate not given",
            );
            if frequent {
                Leaf::SharedMemoryBulk
            } else {
                Leaf::Hybrid
            }
        } else if critical(needs, &mut path) {
            Leaf::SharedMemoryLowLatency
        } else {
            menu(needs, report, &mut path)
        }
    };
    if needs.kernel_queue && !needs.notify_only && leaf != Leaf::PosixMq {
        path.push(Step {
            question: KERNEL_QUEUE_QUESTION,
            answer: if leaf == Leaf::SharedMemoryLowLatency {
                "yes, but no kernel queue answers in under 1 µs, and shm:// keeps a message only \
                 while both ends are connected: keep what must outlive the reader yourself"
                    .into()
            } else {
                "yes, but a message queue carries at most fs.mqueue.msgsize_max bytes per \
                 message (8 KiB by default), and shm:// keeps a message only while both ends \
                 are connected: keep what must outlive the reader yourself"
                    .into()
            },
        });
    }
    if !leaf.shares_memory() {
        if needs.untrusted {
            path.push(Step {
                question: "Untrusted peer?",
                answer: leaf.untrusted_note().into(),
            });
        }
        return (leaf, path);
    }
    path.push(Step {
        question: "Untrusted peer?",
        answer: yes_no(needs.untrusted).to_string(),
    });
    if needs.untrusted {
        (Leaf::UntrustedCopying, path)
    } else {
        (leaf, path)
    }
}

/// The Comparison's "latency critical (< 1 µs)?", recorded in `path`.
fn critical(needs: &Needs, path: &mut Vec<Step>) -> bool {
    threshold(
        path,
        LATENCY_QUESTION,
        needs
            .latency_budget_ns
            .map(|ns| (ns < LATENCY_CRITICAL_NS, format!("{ns} ns"))),
        "no budget given",
    )
}

/// The notification branch: a spinning reader for a sub-microsecond budget, else eventfd, or
/// a signal where this machine's numbers clearly favour it and no event loop waits.
fn notification(needs: &Needs, report: Option<&Report>, path: &mut Vec<Step>) -> Leaf {
    if critical(needs, path) {
        return Leaf::SharedMemoryLowLatency;
    }
    path.push(Step {
        question: "Does the woken side wait in an event loop (epoll, poll, tokio)?",
        answer: yes_no(needs.event_loop).to_string(),
    });
    if needs.event_loop {
        return Leaf::Eventfd;
    }
    let one_way = |name| {
        report
            .and_then(|r| evidence::latency(r, name))
            .map(|row| row.rtt.p50_ns as f64 / 2.0)
    };
    let (faster, answer) = match (one_way("signal"), one_way("eventfd")) {
        (Some(signal), Some(eventfd)) => {
            let faster = eventfd > signal * CLEARLY_FASTER;
            (
                faster,
                format!(
                    "{} (signal {}, eventfd {} one-way p50)",
                    yes_no(faster),
                    evidence::ns(signal),
                    evidence::ns(eventfd)
                ),
            )
        }
        _ => (
            false,
            "no (no numbers for both: eventfd, the default)".to_string(),
        ),
    };
    path.push(Step {
        question: "A signal clearly faster than an eventfd here?",
        answer,
    });
    if faster {
        Leaf::Signal
    } else {
        Leaf::Eventfd
    }
}

/// The menu's "must messages wait in the kernel?" question.
const KERNEL_QUEUE_QUESTION: &str = "Must messages wait in the kernel while the reader is absent?";

/// The menu's questions for small messages without a sub-microsecond budget: a message queue,
/// a pipe or FIFO (unless the rate asked is beyond it here), or the default.
fn menu(needs: &Needs, report: Option<&Report>, path: &mut Vec<Step>) -> Leaf {
    path.push(Step {
        question: KERNEL_QUEUE_QUESTION,
        answer: yes_no(needs.kernel_queue).to_string(),
    });
    if needs.kernel_queue {
        if needs.byte_stream {
            path.push(Step {
                question: "A byte stream, not messages?",
                answer: "yes, but a queue keeps message boundaries: send the stream in chunks"
                    .into(),
            });
        }
        return Leaf::PosixMq;
    }
    path.push(Step {
        question: "A byte stream, not messages?",
        answer: yes_no(needs.byte_stream).to_string(),
    });
    if !needs.byte_stream {
        return Leaf::MessagePassing;
    }
    path.push(Step {
        question: "Is the peer a child you fork?",
        answer: yes_no(needs.parent_child).to_string(),
    });
    let (plain, name, question) = if needs.parent_child {
        (
            Leaf::Pipe,
            "pipe",
            "Rate above half of what a pipe streams here?",
        )
    } else {
        (
            Leaf::Fifo,
            "fifo",
            "Rate above half of what a FIFO streams here?",
        )
    };
    let size = needs
        .size_bytes
        .unwrap_or(crate::options::LATENCY_SIZE as u64);
    let (beyond, answer) = match (needs.rate_per_s, report) {
        (None, _) => (false, "no (rate not given)".to_string()),
        (Some(rate), report) => match report.and_then(|r| evidence::throughput(r, name, size)) {
            Some(row) => {
                let beyond = rate > KERNEL_HEADROOM * row.msgs_per_s as f64;
                (
                    beyond,
                    format!(
                        "{} ({rate:.0}/s; {name} streams {} at {} B)",
                        yes_no(beyond),
                        crate::claims::fmt_value(row.msgs_per_s as f64, "msgs/s"),
                        row.size
                    ),
                )
            }
            None => (
                false,
                format!("no ({rate:.0}/s, not checked: no {name} throughput numbers)"),
            ),
        },
    };
    path.push(Step { question, answer });
    if beyond {
        Leaf::SharedMemoryRate
    } else {
        plain
    }
}

/// The advice for `needs`, justified with `report` (`None`: no numbers, the notes say so).
pub fn advise(needs: &Needs, report: Option<&Report>) -> Advice {
    let (leaf, path) = decide_measured(needs, report);
    let mut notes = Vec::new();
    let evidence = match report {
        Some(report) => {
            notes.push(format!(
                "numbers: {} lab report, {} ({}; {})",
                report.mode.as_str(),
                report.host.cpu_model,
                report.host.kernel,
                report.host.pinning_text
            ));
            evidence::for_leaf(leaf, needs, report)
        }
        None => {
            notes.push(
                "no lab report: run `shmsock lab` (or drop --no-measure) for this machine's \
                 numbers"
                    .into(),
            );
            Vec::new()
        }
    };
    Advice {
        needs: needs.clone(),
        leaf,
        mechanism: leaf.mechanism(),
        calls: leaf.calls(),
        endpoint: leaf.endpoint(),
        reason: leaf.reason(),
        path,
        evidence,
        notes,
    }
}

/// Where `shmsock lab` writes its report when run from the same directory.
pub const REPORT_DEFAULT: &str = "lab-report/report.json";

/// The report the advice rests on, and a note saying where it came from.
///
/// `path` (else [`REPORT_DEFAULT`]) is read if it exists; a `path` that was given but cannot
/// be read is an error. Without a report, and when `measure` is set, a quick latency and
/// throughput run of the mechanisms the answer rests on ([`mechanisms_to_measure`]) is made
/// (a few seconds; progress on stderr); it is not written anywhere.
pub fn load_or_measure(
    needs: &Needs,
    path: Option<&Path>,
    measure: bool,
) -> Result<(Option<Report>, String), LabError> {
    let file = path.map_or_else(|| PathBuf::from(REPORT_DEFAULT), Path::to_path_buf);
    let read_err = |source| LabError::Json {
        path: file.clone(),
        source,
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let report: Report =
                serde_json::from_str(&text).map_err(|e| read_err(std::io::Error::other(e)))?;
            let note = format!("numbers from {}", file.display());
            Ok((Some(report), note))
        }
        Err(err) if path.is_some() => Err(read_err(err)),
        Err(_) if !measure => Ok((
            None,
            format!("no report at {} and --no-measure given", file.display()),
        )),
        Err(_) => {
            let (mechanisms, sizes) = mechanisms_to_measure(needs);
            let opts = LabOptions {
                mode: Mode::Quick,
                mechanisms: Some(mechanisms),
                only: Some(vec!["latency".into(), "throughput".into()]),
                sizes: Some(sizes),
                ..Default::default()
            };
            let report = crate::run_with(&opts, Budgets::of(Mode::Quick))?;
            let note = format!(
                "no report at {}: measured the relevant mechanisms just now (quick mode, \
                 indicative); run `shmsock lab` for the full report",
                file.display()
            );
            Ok((Some(report), note))
        }
    }
}

/// The mechanisms whose numbers back the answer for `needs`, and the throughput sizes: what a
/// quick measurement must run when there is no report.
pub fn mechanisms_to_measure(needs: &Needs) -> (Vec<String>, Vec<usize>) {
    let mut names = vec!["shmsock-busy", "shmsock", "uds-stream"];
    if needs.remote {
        names.push("tcp");
    }
    let mut sizes = vec![64, 4096];
    if needs.size_bytes.is_some_and(|s| s > LARGE_TRANSFER_BYTES) {
        names.push("raw-ring");
        sizes.push(1 << 20);
    }
    if !needs.remote {
        // The menu's plain mechanisms, and the shmsock row that sleeps as they do.
        if needs.notify_only {
            names.extend(["eventfd", "signal", "shmsock-blocking"]);
        } else if needs.kernel_queue {
            names.push("posix-mq");
        } else if needs.byte_stream {
            names.push(if needs.parent_child { "pipe" } else { "fifo" });
        }
    }
    (names.into_iter().map(String::from).collect(), sizes)
}

impl Advice {
    /// The advice as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

impl std::fmt::Display for Advice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Use: {}", self.mechanism)?;
        match self.calls {
            Some(calls) => {
                writeln!(f, "  calls: {calls}")?;
                writeln!(f, "  shmsock alternative: {}", self.endpoint)?;
            }
            None => writeln!(f, "  endpoint: {}", self.endpoint)?,
        }
        writeln!(f, "  why: {}", self.reason)?;
        writeln!(f)?;
        writeln!(
            f,
            "Path through the Comparison's flowchart and the IPC cheat sheet's menu:"
        )?;
        for step in &self.path {
            writeln!(f, "  {} {}", step.question, step.answer)?;
        }
        writeln!(f, "  -> {}", self.mechanism)?;
        if !self.evidence.is_empty() {
            writeln!(f)?;
            writeln!(f, "This machine's numbers:")?;
            for line in &self.evidence {
                writeln!(f, "  - {line}")?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f)?;
            for note in &self.notes {
                writeln!(f, "note: {note}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
