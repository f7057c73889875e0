//! Network: shmsock's `tcp://` and `unix://` transports against libzmq, measured natively in
//! the same run (libzmq is loaded at run time, see [`crate::mechanisms::libzmq`]).
//!
//! Routes: each library × tcp (loopback) and ipc (shmsock `unix://`, libzmq `ipc://`) × PAIR
//! (one-way stream between two peers) and PUB/SUB (one publisher, one subscriber) × 64 B,
//! 4 KiB and 1 MiB messages, with NULL security; and both with CURVE (RFC 26 CurveZMQ) over
//! tcp at 64 B and 4 KiB, so CURVE's cost is visible for each and the two CURVEs compare. Both libraries run the same loops with
//! the same message counts and the same timing: only the two ends differ (`ends`).
//!
//! ```text
//! parent: sender (CPU A)                          child: receiver (CPU B)
//! ------                                          -----
//! fork the receiver ----------------------------> wait until the sender is bound
//! bind, publish the port (tcp) or "bound" (ipc)   connect (a SUB subscribes to everything)
//! (shmsock PAIR: accept)
//! send a probe (seq 0) every ms until READY <---- the first probe: READY (later ones ignored)
//! stream: warm-up 1..=W, measured W+1.., STOP --> check every seq; window = first measured
//!                                                 message .. STOP; count; STREAM_DONE
//! wait for STREAM_DONE
//! lone messages: stamp CLOCK_MONOTONIC into the
//! message, send -------------------------------> recv; one-way = clock − stamp; publish it,
//! wait for the ACK, record the one-way time        then ACK (Release)
//! ... then STOP ---------------------------------> ACK STOP, exit
//! ```
//!
//! **Streaming** is measured by the receiver, like the throughput experiment: messages per
//! second from the first measured message to the stop message; every sequence number is
//! checked (nothing may be lost, duplicated or reordered) and the count must equal what the
//! sender sent. **Latency** is one-way, on lone messages: one message in flight, the next
//! sent only after the receiver acknowledged the last (through shared memory, not the
//! network), so no sample waits behind another; the timestamp travels in the message and the
//! receiver reads the same `CLOCK_MONOTONIC` (same machine). The probes exist because a
//! PUB/SUB subscription takes a moment to reach the publisher: a publisher drops what it
//! sends before then, for both libraries.
//!
//! The sender is the parent (its socket's threads start after the fork, and its waits all
//! have deadlines); the receiver is a child with a watchdog. Each process's library threads
//! (libzmq's I/O thread, shmsock's) share its CPU.
//!
//! Each shmsock row is compared with libzmq's row of the same transport, pattern, security
//! and size (`vs_libzmq`: shmsock msgs/s ÷ libzmq msgs/s), each CURVE row with the NULL row of
//! its library (`vs_null`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{
    get_seq, now_ns, port_of, publish_bound, put_seq, send_numbered, wait_bound, Budget, Budgets,
    NumberedStream, SEQ_STOP, WATCHDOG_MARGIN,
};
use crate::chart::{distinct, Chart, Mark, Scale, Series, COLOURS};
use crate::error::LabError;
use crate::format::{fmt_count, fmt_ns, fmt_ratio, fmt_signed_ns, fmt_size};
use crate::host::{HostInfo, Pinning};
use crate::mechanisms::Side;
use crate::process::{outcome, wait_ack, wait_until, ChildStats, Children, Pause};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};
use crate::stats::Percentiles;
use crate::table::{Group, Table};

mod ends;

/// Which library carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Library {
    /// This repository's library: `Listener`/`Conn`, `Publisher`/`Subscriber`.
    Shmsock,
    /// libzmq, loaded at run time: `ZMQ_PAIR`, `ZMQ_PUB`/`ZMQ_SUB`.
    Libzmq,
}

impl Library {
    /// `shmsock` or `libzmq`.
    pub fn as_str(self) -> &'static str {
        match self {
            Library::Shmsock => "shmsock",
            Library::Libzmq => "libzmq",
        }
    }

    /// The security mechanisms this library is measured with: both have NULL and CURVE
    /// (libzmq's CURVE needs a libzmq built with libsodium; see `ends`).
    pub fn securities(self) -> &'static [Security] {
        &[Security::Null, Security::Curve]
    }
}

/// Which kind of socket carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP over loopback: `tcp://127.0.0.1:PORT`.
    Tcp,
    /// A Unix stream socket file: shmsock's `unix:///tmp/…`, libzmq's `ipc:///tmp/…`.
    Ipc,
}

impl Transport {
    /// `tcp` or `unix/ipc`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ipc => "unix/ipc",
        }
    }
}

/// Which messaging pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// One peer to one peer (ZeroMQ PAIR), one way.
    Pair,
    /// One publisher, one subscriber (ZeroMQ PUB/SUB), subscribed to everything.
    PubSub,
}

impl Shape {
    /// `PAIR` or `PUB/SUB`.
    pub fn label(self) -> &'static str {
        match self {
            Shape::Pair => "PAIR",
            Shape::PubSub => "PUB/SUB",
        }
    }
}

/// The ZMTP security mechanism (ZMTP 3.1, RFC 37).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// No authentication, no encryption.
    Null,
    /// CurveZMQ (RFC 26): keys made for the run, the sender is the server.
    Curve,
}

impl Security {
    /// `NULL` or `CURVE`.
    pub fn label(self) -> &'static str {
        match self {
            Security::Null => "NULL",
            Security::Curve => "CURVE",
        }
    }
}

/// One measured route: library, transport, pattern, security and message size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) library: Library,
    pub(crate) transport: Transport,
    pub(crate) shape: Shape,
    pub(crate) security: Security,
    pub(crate) size: usize,
}

impl Config {
    /// `libzmq tcp PUB/SUB CURVE` (the size is reported separately).
    pub(crate) fn name(&self) -> String {
        let mut name = format!(
            "{} {} {}",
            self.library.as_str(),
            self.transport.label(),
            self.shape.label()
        );
        if self.security != Security::Null {
            name = format!("{name} {}", self.security.label());
        }
        name
    }
}

/// Message sizes of the NULL routes.
pub(crate) const SIZES: [usize; 3] = [64, 4096, 1 << 20];
/// Message sizes of the CURVE routes (tcp only).
pub(crate) const CURVE_SIZES: [usize; 2] = [64, 4096];

/// Every route, in run and report order: NULL then CURVE; by size, transport and pattern;
/// shmsock right before libzmq, so the two rows compared were measured moments apart.
pub(crate) fn configs() -> Vec<Config> {
    let mut configs = Vec::new();
    for security in [Security::Null, Security::Curve] {
        let (sizes, transports): (&[usize], &[Transport]) = match security {
            Security::Null => (&SIZES, &[Transport::Tcp, Transport::Ipc]),
            Security::Curve => (&CURVE_SIZES, &[Transport::Tcp]),
        };
        for &size in sizes {
            for &transport in transports {
                for shape in [Shape::Pair, Shape::PubSub] {
                    for library in [Library::Shmsock, Library::Libzmq] {
                        if library.securities().contains(&security) {
                            configs.push(Config {
                                library,
                                transport,
                                shape,
                                security,
                                size,
                            });
                        }
                    }
                }
            }
        }
    }
    configs
}

/// One route measured: its streaming rate and its one-way latency on lone messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRow {
    /// `shmsock` or `libzmq`.
    pub library: Library,
    /// The library's version (`0.1.0`, `4.3.4`).
    pub version: String,
    /// `tcp` or `ipc` (shmsock `unix://`, libzmq `ipc://`).
    pub transport: Transport,
    /// `pair` or `pub-sub`.
    pub shape: Shape,
    /// `null` or `curve`.
    pub security: Security,
    /// Message size in bytes.
    pub size: usize,
    /// The endpoint the sender bound.
    pub endpoint: String,
    /// Messages per second, measured by the receiver.
    pub msgs_per_s: u64,
    /// Payload bytes per second.
    pub bytes_per_s: u64,
    /// Messages in the measured window (every one checked).
    pub messages: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Whether the time cap ended the stream before all its planned messages were sent.
    pub stream_capped: bool,
    /// One-way latency of lone messages (`min_ns`, `p50_ns`, ... in the JSON).
    #[serde(flatten)]
    pub one_way: Percentiles,
    /// Lone messages timed.
    pub samples: u64,
    /// Whether the time cap ended the latency run before all its planned samples.
    pub latency_capped: bool,
    /// shmsock rows: `msgs_per_s` ÷ libzmq's at the same transport, pattern, security and
    /// size.
    #[serde(default)]
    pub vs_libzmq: Option<f64>,
    /// CURVE rows: `msgs_per_s` ÷ the same library's NULL row.
    #[serde(default)]
    pub vs_null: Option<f64>,
}

impl NetworkRow {
    fn config(&self) -> Config {
        Config {
            library: self.library,
            transport: self.transport,
            shape: self.shape,
            security: self.security,
            size: self.size,
        }
    }
}

/// What one route runs: the stream (its `iters` are the measured messages) and the lone
/// messages (its `iters` are the samples). Both libraries get the same plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The stream.
    pub(crate) stream: Budget,
    /// The latency samples.
    pub(crate) latency: Budget,
}

/// Measured messages of a 64 B stream in the default mode (divided by [`Budgets::divisor`]).
const STREAM_SMALL_MESSAGES: u64 = 4_000_000;
/// Fewest measured messages of a stream.
const STREAM_MIN_MESSAGES: u64 = 1_000;
/// Latency samples are the latency budget's iterations divided by this.
const LATENCY_SAMPLES_DIVISOR: u64 = 50;
/// Fewest latency samples.
const LATENCY_MIN_SAMPLES: u64 = 100;

/// The plan of a route of `size`-byte messages: small streams move a fixed number of
/// messages, 4 KiB and more [`Budgets::bulk_bytes`] like the throughput experiment; every run
/// is time-capped (the report marks a capped run).
pub(crate) fn plan(budgets: &Budgets, size: usize) -> Plan {
    let stream = if size < Budgets::BULK_FROM_BYTES {
        let iters = (STREAM_SMALL_MESSAGES / budgets.divisor.max(1)).max(STREAM_MIN_MESSAGES);
        Budget {
            warmup_iters: iters / 16,
            warmup_time: budgets.throughput.warmup_time,
            iters,
            max_time: budgets.experiment_max_time,
        }
    } else {
        budgets.throughput_for(size)
    };
    let samples = (budgets.latency.iters / LATENCY_SAMPLES_DIVISOR).max(LATENCY_MIN_SAMPLES);
    Plan {
        stream,
        latency: Budget {
            warmup_iters: (samples / 20).max(10),
            warmup_time: budgets.latency.warmup_time,
            iters: samples,
            max_time: budgets.experiment_max_time,
        },
    }
}

/// Longest one-way time the histogram holds (longer ones are clamped to it): 100 s.
const MAX_NS: u64 = 100_000_000_000;
/// How long either side waits for the other at each step (bound, first probe, end of the
/// stream, each lone message).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The sender sends a probe this often until the receiver has one.
const PROBE_EVERY: Duration = Duration::from_millis(1);
/// The sequence number of a probe.
const PROBE: u64 = 0;
/// The sender looks at the clock once per this many streamed messages.
const CLOCK_CHECK_EVERY: u64 = 256;

/// The sender's port (tcp) or 1 (ipc), once bound (Release).
const BOUND_OFFSET: usize = 0;
/// 1 once the receiver has a probe (Release).
const READY_OFFSET: usize = CACHE_LINE_BYTES;
/// 1 once the receiver has the stream's stop message (Release, after `RECEIVED_OFFSET`).
const STREAM_DONE_OFFSET: usize = 2 * CACHE_LINE_BYTES;
/// Measured stream messages the receiver got.
const RECEIVED_OFFSET: usize = 2 * CACHE_LINE_BYTES + 8;
/// The sequence number of the last lone message the receiver got (Release, after
/// `ONE_WAY_OFFSET`).
const ACK_OFFSET: usize = 3 * CACHE_LINE_BYTES;
/// Its one-way time, ns.
const ONE_WAY_OFFSET: usize = 3 * CACHE_LINE_BYTES + 8;
/// 1 if the receiver failed (so the sender stops waiting for it).
const FAILED_OFFSET: usize = 4 * CACHE_LINE_BYTES;
const REGION_BYTES: usize = 5 * CACHE_LINE_BYTES;

/// What the sender did.
struct Sent {
    endpoint: String,
    /// Measured stream messages sent.
    stream: u64,
    stream_capped: bool,
    samples: u64,
    latency_capped: bool,
}

/// Measures `config` with `plan`: sender here, receiver in a forked child.
pub(crate) fn measure(
    config: Config,
    plan: &Plan,
    pinning: Pinning,
) -> Result<NetworkRow, LabError> {
    if config.size < 16 {
        return Err(LabError::WrongSize {
            len: config.size,
            size: 16,
        });
    }
    let setup = ends::Setup::new(config)?;
    let version = setup.version();
    let control = SharedRegion::new(REGION_BYTES)?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_NS, 3).map_err(|e| LabError::Integrity {
            detail: format!("creating the latency histogram: {e}"),
        })?;
    let watchdog = plan.stream.warmup_time
        + plan.stream.max_time
        + plan.latency.warmup_time
        + plan.latency.max_time
        + 4 * READY_TIMEOUT
        + WATCHDOG_MARGIN;
    let mut send_buf = vec![0x5Au8; config.size];
    let mut recv_buf = vec![0u8; config.size];
    // The receiver first: the sender's library may start threads, and the lab forks only
    // while it has none.
    let mut children = Children::new();
    children.fork("receiver", pinning.child_cpu, watchdog, || {
        let result = receive(&setup, &control, plan.stream.warmup_iters, &mut recv_buf);
        if result.is_err() {
            control
                .atomic_u64(FAILED_OFFSET)
                .store(1, Ordering::Release);
        }
        result
    })?;
    let result = send(&setup, &control, plan, &mut send_buf, &mut hist);
    if result.is_err() {
        children.kill_all();
    }
    let reaped = children.reap(READY_TIMEOUT);
    setup.remove_socket_file();
    let (sent, stats) = outcome("sender", result, reaped)?;
    // Relaxed: the receiver has been reaped, which orders its whole life before this.
    let received = control.atomic_u64(RECEIVED_OFFSET).load(Ordering::Relaxed);
    if received != sent.stream {
        return Err(LabError::Integrity {
            detail: format!(
                "the receiver counted {received} measured messages, the sender sent {}",
                sent.stream
            ),
        });
    }
    let window = stats.first().copied().unwrap_or_default();
    let seconds = window.wall_ns.max(1) as f64 / 1e9;
    let rate = received as f64 / seconds;
    Ok(NetworkRow {
        library: config.library,
        version,
        transport: config.transport,
        shape: config.shape,
        security: config.security,
        size: config.size,
        endpoint: sent.endpoint,
        msgs_per_s: rate.round() as u64,
        bytes_per_s: (rate * config.size as f64).round() as u64,
        messages: received,
        seconds,
        stream_capped: sent.stream_capped,
        one_way: Percentiles::from_histogram(&hist),
        samples: sent.samples,
        latency_capped: sent.latency_capped,
        vs_libzmq: None,
        vs_null: None,
    })
}

/// The parent: bind, probe until the receiver is there, stream, then time lone messages.
fn send(
    setup: &ends::Setup,
    control: &SharedRegion,
    plan: &Plan,
    buf: &mut [u8],
    hist: &mut Histogram<u64>,
) -> Result<Sent, LabError> {
    let failed = || control.atomic_u64(FAILED_OFFSET).load(Ordering::Acquire) != 0;
    let mut endpoint = String::new();
    let mut end = ends::open_sender(setup, |bound| {
        endpoint = bound.to_string();
        publish_bound_endpoint(control, bound)
    })?;
    let end = end.as_mut();
    probe_until_ready(end, control, buf, &failed)?;

    let stream = plan.stream;
    send_numbered::<CLOCK_CHECK_EVERY>(buf, 0, stream.warmup_iters, stream.warmup_time, |m| {
        end.send(m)
    })?;
    let (sent, stream_capped) = send_numbered::<CLOCK_CHECK_EVERY>(
        buf,
        stream.warmup_iters,
        stream.iters,
        stream.max_time,
        |m| end.send(m),
    )?;
    put_seq(buf, SEQ_STOP);
    end.send(buf)?;
    wait_until(
        "waiting for the receiver to take the whole stream",
        READY_TIMEOUT,
        Pause::Sleep(Duration::from_micros(100)),
        // Acquire: pairs with the receiver's Release store after its last stream message.
        || {
            control
                .atomic_u64(STREAM_DONE_OFFSET)
                .load(Ordering::Acquire)
                != 0
        },
        || failed().then_some("the receiver failed during the stream"),
    )?;

    let latency = plan.latency;
    let mut seq = 0u64;
    let warmup_end = Instant::now() + latency.warmup_time;
    while seq < latency.warmup_iters && Instant::now() < warmup_end {
        seq += 1;
        lone(end, control, buf, seq, &failed)?;
    }
    let end_time = Instant::now() + latency.max_time;
    let mut samples = 0u64;
    let mut latency_capped = false;
    while samples < latency.iters {
        seq += 1;
        let ns = lone(end, control, buf, seq, &failed)?;
        hist.saturating_record(ns.clamp(1, MAX_NS));
        samples += 1;
        if samples.is_multiple_of(16) && samples < latency.iters && Instant::now() >= end_time {
            latency_capped = true;
            break;
        }
    }
    lone(end, control, buf, SEQ_STOP, &failed)?;
    Ok(Sent {
        endpoint,
        stream: sent,
        stream_capped,
        samples,
        latency_capped,
    })
}

/// Says that the sender's listener is bound (its port for a `tcp://` endpoint).
fn publish_bound_endpoint(control: &SharedRegion, endpoint: &str) -> Result<(), LabError> {
    let port = if endpoint.starts_with("tcp://") {
        Some(port_of(endpoint)?)
    } else {
        None
    };
    publish_bound(control, BOUND_OFFSET, port);
    Ok(())
}

/// Sends a probe every [`PROBE_EVERY`] until the receiver says it got one.
fn probe_until_ready(
    end: &mut dyn Side,
    control: &SharedRegion,
    buf: &mut [u8],
    failed: &impl Fn() -> bool,
) -> Result<(), LabError> {
    put_seq(buf, PROBE);
    let started = Instant::now();
    // Acquire: pairs with the receiver's Release store when the first probe arrived.
    while control.atomic_u64(READY_OFFSET).load(Ordering::Acquire) == 0 {
        if failed() {
            return Err(LabError::Child {
                detail: "the receiver failed before the first message".into(),
            });
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(LabError::Stalled {
                what: "sending probes until the receiver gets one",
                waited: started.elapsed(),
            });
        }
        end.send(buf)?;
        std::thread::sleep(PROBE_EVERY);
    }
    Ok(())
}

/// Sends lone message `seq` stamped with the time and waits for the receiver's
/// acknowledgement; returns the one-way time it measured.
fn lone(
    end: &mut dyn Side,
    control: &SharedRegion,
    buf: &mut [u8],
    seq: u64,
    failed: &impl Fn() -> bool,
) -> Result<u64, LabError> {
    put_seq(buf, seq);
    let stamp = now_ns();
    buf[8..16].copy_from_slice(&stamp.to_le_bytes());
    end.send(buf)?;
    // The receiver stores the one-way time, then (Release) the sequence number.
    wait_ack(
        control,
        ACK_OFFSET,
        seq,
        READY_TIMEOUT,
        "waiting for a lone message to arrive",
        "the receiver",
        failed,
    )?;
    Ok(control.atomic_u64(ONE_WAY_OFFSET).load(Ordering::Relaxed))
}

/// The child: wait until the sender is bound, connect, take the stream (its window is the
/// returned stats), then acknowledge lone messages until the stop message.
fn receive(
    setup: &ends::Setup,
    control: &SharedRegion,
    warmup: u64,
    buf: &mut [u8],
) -> Result<ChildStats, LabError> {
    let what = "waiting for the sender to bind";
    let port = wait_bound(
        control,
        BOUND_OFFSET,
        what,
        Pause::Sleep(Duration::from_micros(200)),
        || None,
    )?;
    let mut end = ends::open_receiver(setup, &setup.connect_endpoint(port))?;
    let end = end.as_mut();
    let (messages, window) = take_stream(end, control, buf, warmup)?;
    // Relaxed for the count: the sender reads it after reaping us. Release on the flag: the
    // sender starts the lone messages on it.
    control
        .atomic_u64(RECEIVED_OFFSET)
        .store(messages, Ordering::Relaxed);
    control
        .atomic_u64(STREAM_DONE_OFFSET)
        .store(1, Ordering::Release);
    acknowledge_lone(end, control, buf)?;
    Ok(window)
}

/// Receives the stream: probes (first), then the warm-up, the measured messages and the stop
/// message, every sequence number checked. Returns the measured messages and the window from
/// the first of them to the stop message.
fn take_stream(
    end: &mut dyn Side,
    control: &SharedRegion,
    buf: &mut [u8],
    warmup: u64,
) -> Result<(u64, ChildStats), LabError> {
    let size = buf.len();
    let mut stream = NumberedStream::new(size, warmup, "stream message");
    loop {
        let n = end.recv(buf)?;
        let msg = &buf[..n];
        if n == size && stream.before_first() && get_seq(msg) == Some(PROBE) {
            // Release: the sender stops probing and starts the stream on it.
            control.atomic_u64(READY_OFFSET).store(1, Ordering::Release);
            continue;
        }
        if !stream.take(msg)? {
            break;
        }
    }
    stream.finish()
}

/// Receives lone messages: each one's one-way time (the clock now minus the stamp it
/// carries) is published, then its sequence number, until the stop message.
fn acknowledge_lone(
    end: &mut dyn Side,
    control: &SharedRegion,
    buf: &mut [u8],
) -> Result<(), LabError> {
    let size = buf.len();
    let mut expected = 1u64;
    loop {
        let n = end.recv(buf)?;
        let arrived = now_ns();
        let seq = get_seq(&buf[..n]);
        let stop = seq == Some(SEQ_STOP);
        if n != size || !(stop || seq == Some(expected)) {
            return Err(LabError::Integrity {
                detail: format!(
                    "expected lone message {expected} of {size} B, got {seq:?} of {n} B"
                ),
            });
        }
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&buf[8..16]);
        let one_way = arrived.saturating_sub(u64::from_le_bytes(stamp));
        // Relaxed for the time: the Release store of the sequence number publishes it.
        control
            .atomic_u64(ONE_WAY_OFFSET)
            .store(one_way, Ordering::Relaxed);
        control
            .atomic_u64(ACK_OFFSET)
            .store(seq.unwrap_or(0), Ordering::Release);
        if stop {
            return Ok(());
        }
        expected += 1;
    }
}

/// Fills `vs_libzmq` of shmsock rows (their rate ÷ libzmq's on the same route and size) and
/// `vs_null` of CURVE rows (their rate ÷ the same library's NULL row).
pub(crate) fn compare(rows: &mut [NetworkRow]) {
    let rate = |rows: &[NetworkRow], want: Config| {
        rows.iter()
            .find(|r| r.config() == want)
            .map(|r| r.msgs_per_s)
    };
    let bases: Vec<_> = rows
        .iter()
        .map(|r| {
            let own = r.config();
            let libzmq = (r.library == Library::Shmsock).then(|| {
                rate(
                    rows,
                    Config {
                        library: Library::Libzmq,
                        ..own
                    },
                )
            });
            let null = (r.security != Security::Null).then(|| {
                rate(
                    rows,
                    Config {
                        security: Security::Null,
                        ..own
                    },
                )
            });
            (libzmq.flatten(), null.flatten())
        })
        .collect();
    for (row, (libzmq, null)) in rows.iter_mut().zip(bases) {
        let ratio = |base: u64| row.msgs_per_s as f64 / base.max(1) as f64;
        row.vs_libzmq = libzmq.map(ratio);
        row.vs_null = null.map(ratio);
    }
}

/// A route of the table: what both libraries are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    transport: Transport,
    shape: Shape,
    security: Security,
    size: usize,
}

impl Route {
    fn of(row: &NetworkRow) -> Self {
        Self {
            transport: row.transport,
            shape: row.shape,
            security: row.security,
            size: row.size,
        }
    }

    fn label(&self) -> String {
        let security = match self.security {
            Security::Null => String::new(),
            Security::Curve => format!("{} ", self.security.label()),
        };
        format!(
            "{security}{} {} {}",
            self.transport.label(),
            self.shape.label(),
            fmt_size(self.size)
        )
    }
}

/// The network table: one row per route, shmsock and libzmq side by side, and the ratio.
pub(crate) fn table(rows: &[NetworkRow], host: &HostInfo) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    let find = |route: Route, library: Library| {
        rows.iter()
            .find(|r| r.library == library && Route::of(r) == route)
    };
    let cells = |r: Option<&NetworkRow>| -> [String; 4] {
        match r {
            None => ["-".into(), "-".into(), "-".into(), "-".into()],
            Some(r) => [
                format!(
                    "{}{}",
                    fmt_count(r.msgs_per_s),
                    if r.stream_capped { "*" } else { "" }
                ),
                format!("{:.1}", r.bytes_per_s as f64 / 1e6),
                format!(
                    "{}{}",
                    fmt_ns(r.one_way.p50_ns),
                    if r.latency_capped { "*" } else { "" }
                ),
                fmt_ns(r.one_way.p99_ns),
            ],
        }
    };
    let routes = distinct(rows.iter().map(Route::of));
    let groups = [Security::Null, Security::Curve]
        .into_iter()
        .filter(|s| routes.iter().any(|r| r.security == *s))
        .map(|security| Group {
            heading: Some(match security {
                Security::Null => "NULL security (no encryption)".to_string(),
                Security::Curve => "CURVE (RFC 26 CurveZMQ), tcp: the sender is the server, \
                                    the receiver its one allowed client"
                    .to_string(),
            }),
            rows: routes
                .iter()
                .filter(|r| r.security == security)
                .map(|&route| {
                    let shmsock = find(route, Library::Shmsock);
                    let mut row = vec![
                        route.transport.label().to_string(),
                        route.shape.label().to_string(),
                        fmt_size(route.size),
                    ];
                    row.extend(cells(shmsock));
                    row.extend(cells(find(route, Library::Libzmq)));
                    row.push(fmt_ratio(shmsock.and_then(|r| r.vs_libzmq), 2));
                    row
                })
                .collect(),
        })
        .collect();
    let mut table = Table {
        title: "Network: shmsock vs libzmq over tcp:// and unix:// (libzmq ipc://), same run"
            .into(),
        plot: Some("network.svg"),
        headers: vec![
            "transport",
            "pattern",
            "size",
            "shmsock msgs/s",
            "MB/s",
            "one-way p50",
            "p99",
            "libzmq msgs/s",
            "MB/s",
            "one-way p50",
            "p99",
            "shmsock/libzmq",
        ],
        text_columns: vec![1, 2],
        groups,
        ..Table::default()
    };
    table.intro = vec![
        "msgs/s and MB/s: one-way stream measured by the receiver; one-way p50/p99: lone \
         messages; shmsock/libzmq: shmsock msgs/s ÷ libzmq msgs/s on the same route."
            .into(),
    ];
    table.notes = notes(rows, host);
    Some(table)
}

/// The table's notes: the method, the settings, what CURVE costs, capped runs.
fn notes(rows: &[NetworkRow], host: &HostInfo) -> Vec<String> {
    let p = host.pinning;
    let mut notes = vec![format!(
        "Latency is timed with a timestamp carried in the message: the sender reads \
         CLOCK_MONOTONIC into it just before send, the receiver reads the same clock when \
         recv returns (one machine, one clock). Lone messages: one in flight, the next sent \
         only after the receiver acknowledged the last through shared memory, never inside a \
         saturated stream. Streams and lone messages check every sequence number; the same \
         message counts and time caps for both libraries. Sender (binds) on CPU {}, receiver \
         (connects) on CPU {}; each library's I/O threads share its process's CPU.",
        p.parent_cpu, p.child_cpu
    )];
    let zmq_version = rows
        .iter()
        .find(|r| r.library == Library::Libzmq)
        .map(|r| r.version.clone());
    notes.push(format!(
        "shmsock: library defaults (Conn/Listener, Publisher/Subscriber, Overflow::Block); \
         CURVE rows: Options::curve_secret, curve_allow (sender) and curve_server (receiver). \
         libzmq{}: loaded at run time with dlopen, zmq_send/zmq_recv from Rust (no Python), \
         SNDHWM = RCVHWM = {} MiB worth of messages ({} at 64 B), ZMQ_XPUB_NODROP on PUB so \
         it waits like Overflow::Block instead of dropping; one context (one I/O thread) per \
         process.",
        zmq_version.map_or_else(String::new, |v| format!(" {v}")),
        ends::LIBZMQ_QUEUE_BYTES >> 20,
        ends::high_water_mark(64),
    ));
    for r in rows.iter().filter(|r| r.security != Security::Null) {
        let Some(null) = rows.iter().find(|n| {
            n.security == Security::Null
                && n.library == r.library
                && Route::of(n)
                    == Route {
                        security: Security::Null,
                        ..Route::of(r)
                    }
        }) else {
            continue;
        };
        let diff = |a: u64, b: u64| {
            i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX)
        };
        notes.push(format!(
            "{} {}: CURVE streams at {} of the NULL rate; one-way p50 {}, p99 {} against NULL.",
            r.library.as_str(),
            Route::of(r).label(),
            fmt_ratio(r.vs_null, 2),
            fmt_signed_ns(diff(r.one_way.p50_ns, null.one_way.p50_ns)),
            fmt_signed_ns(diff(r.one_way.p99_ns, null.one_way.p99_ns)),
        ));
    }
    if rows.iter().any(|r| r.stream_capped || r.latency_capped) {
        notes.push(
            "* the run's time cap ended it before all its planned messages (the rate is over \
             what was sent; p50 over the samples taken)."
                .into(),
        );
    }
    notes
}

/// `network.svg`: messages per second per route, shmsock and libzmq side by side, log axis.
pub(crate) fn plot(rows: &[NetworkRow]) -> Option<String> {
    let routes = distinct(rows.iter().map(Route::of));
    let mut chart = Chart::new(
        "shmsock vs libzmq: streaming rate per route (messages/s, log scale)",
        routes.iter().map(Route::label).collect(),
        "messages per second",
    );
    chart.vertical_labels = true;
    chart.scale = Scale::Log;
    chart.count_labels = true;
    for (k, library) in [Library::Shmsock, Library::Libzmq].into_iter().enumerate() {
        let offset = (k as f64 - 0.5) * 0.2;
        let points = rows
            .iter()
            .filter(|r| r.library == library)
            .filter_map(|r| {
                let i = routes.iter().position(|route| *route == Route::of(r))?;
                Some((i as f64 + offset, r.msgs_per_s.max(1) as f64))
            })
            .collect();
        chart.series.push(Series::new(
            library.as_str(),
            COLOURS[k % COLOURS.len()],
            Mark::Bars(0.09),
            points,
        ));
    }
    chart.to_svg()
}

#[cfg(test)]
mod tests;
