//! The numbers of a lab report that back each answer of the advisor.
//!
//! A plain mechanism of the IPC cheat sheet's menu is always quoted next to the shmsock row
//! that would replace it: eventfd and signal next to `shm://` with the Blocking wait (which
//! sleeps after a spin of at most 2 µs, as they sleep) and the default Adaptive wait; pipe,
//! FIFO and POSIX message queue next to `shm://` (latency, and messages per second at the
//! size asked).

use super::{Leaf, Needs};
use crate::claims::fmt_value;
use crate::experiments::latency::LatencyRow;
use crate::experiments::throughput::ThroughputRow;
use crate::mechanisms::posix_mq::PosixMq;
use crate::mechanisms::Mechanism;
use crate::report::Report;

/// Lines of evidence for `leaf` from `report`; a number the report lacks is a line saying how
/// to measure it.
pub(super) fn for_leaf(leaf: Leaf, needs: &Needs, report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(floor) = latency(report, "floor") {
        out.push(format!(
            "hardware floor (cache-line ping-pong): {} one-way p50",
            ns(floor.rtt.p50_ns as f64 / 2.0)
        ));
    }
    match leaf {
        Leaf::Network => {
            one_way(&mut out, report, "tcp", "loopback TCP");
            one_way(&mut out, report, "uds-stream", "Unix stream socket");
            one_way(
                &mut out,
                report,
                "shmsock",
                "shm:// (for peers that end up on one machine)",
            );
            bridged(&mut out, report);
        }
        Leaf::SharedMemoryBulk | Leaf::Hybrid => bulk(&mut out, leaf, needs, report),
        Leaf::SharedMemoryLowLatency => low_latency(&mut out, needs, report),
        Leaf::MessagePassing | Leaf::UntrustedCopying => {
            one_way(&mut out, report, "uds-stream", "Unix stream socket");
            one_way(&mut out, report, "shmsock", "shm:// Conn (Adaptive)");
            rate_fit(&mut out, needs, report, "uds-stream");
            rate_fit(&mut out, needs, report, "shmsock");
        }
        Leaf::Eventfd | Leaf::Signal => notification(&mut out, needs, report),
        Leaf::Pipe | Leaf::Fifo | Leaf::SharedMemoryRate => {
            let (name, what) = if needs.parent_child {
                ("pipe", "anonymous pipe")
            } else {
                ("fifo", "named pipe")
            };
            kernel_and_shm(&mut out, needs, report, name, what);
        }
        Leaf::PosixMq => {
            kernel_and_shm(&mut out, needs, report, "posix-mq", "POSIX message queue");
            let max = Mechanism::max_message(&PosixMq);
            if needs.size_bytes.is_some_and(|s| s > max as u64) {
                out.push(format!(
                    "a POSIX message queue takes at most {max} B per message on this machine \
                     (fs.mqueue.msgsize_max): raise it (root) or split the messages"
                ));
            }
        }
    }
    if out.len() <= 1 {
        out.push(
            "the report has none of the rows this answer rests on: run `shmsock lab --only \
             latency,throughput`"
                .into(),
        );
    }
    out
}

/// The latency row of `name` (the lab measures latency at one size).
pub(super) fn latency<'a>(report: &'a Report, name: &str) -> Option<&'a LatencyRow> {
    report.latency.iter().find(|r| r.mechanism == name)
}

/// The throughput row of `name` at the measured size closest to `size` (log distance).
pub(super) fn throughput<'a>(
    report: &'a Report,
    name: &str,
    size: u64,
) -> Option<&'a ThroughputRow> {
    let distance = |r: &ThroughputRow| ((r.size.max(1) as f64) / (size.max(1) as f64)).ln().abs();
    report
        .throughput
        .iter()
        .filter(|r| r.mechanism == name)
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
}

/// `600%`, `3%`, `0.4%`, `<0.1%`.
fn percent(pct: f64) -> String {
    match pct {
        p if p >= 10.0 => format!("{p:.0}%"),
        p if p >= 0.1 => format!("{p:.1}%"),
        _ => "<0.1%".into(),
    }
}

/// `840 ns`, `6.3 µs`.
pub(super) fn ns(value: f64) -> String {
    fmt_value(value, "ns")
}

fn one_way(out: &mut Vec<String>, report: &Report, name: &str, what: &str) {
    match latency(report, name) {
        Some(r) => out.push(format!(
            "{what} ({name}): {} one-way p50, {} p99 (RTT / 2)",
            ns(r.rtt.p50_ns as f64 / 2.0),
            ns(r.rtt.p99_ns as f64 / 2.0)
        )),
        None => out.push(format!(
            "{what} ({name}): not in the report (`shmsock lab --only latency --mechanisms {name}`)"
        )),
    }
}

/// shmsock's own tcp:// and the bridge, from the bridge experiment (one-way, one clock).
fn bridged(out: &mut Vec<String>, report: &Report) {
    let row = |path: &str| report.bridge.iter().find(|r| r.path == path);
    let (Some(tcp), Some(bridge)) = (row("tcp"), row("shm->bridge->tcp")) else {
        out.push(
            "shmsock's tcp:// and `shmsock bridge`: not in the report (`shmsock lab --only \
             bridge`)"
                .into(),
        );
        return;
    };
    out.push(format!(
        "shmsock tcp:// publisher -> subscriber: {} one-way p50, {} p99 (measured one way)",
        ns(tcp.one_way.p50_ns as f64),
        ns(tcp.one_way.p99_ns as f64)
    ));
    let added = i128::from(bridge.one_way.p50_ns) - i128::from(tcp.one_way.p50_ns);
    out.push(format!(
        "shm:// publisher -> `shmsock bridge` -> tcp:// subscriber: {} one-way p50, {} p99; \
         the bridge adds {}{} at p50",
        ns(bridge.one_way.p50_ns as f64),
        ns(bridge.one_way.p99_ns as f64),
        if added < 0 { "-" } else { "+" },
        ns(added.unsigned_abs() as f64)
    ));
}

/// Whether `name` sustains the asked rate at the closest measured size.
fn rate_fit(out: &mut Vec<String>, needs: &Needs, report: &Report, name: &str) {
    let (Some(rate), size) = (needs.rate_per_s, needs.size_bytes.unwrap_or(64)) else {
        return;
    };
    if let Some(r) = throughput(report, name, size) {
        out.push(format!(
            "{name} streams {} at {} B here: your {rate:.0}/s is {} of that",
            fmt_value(r.msgs_per_s as f64, "msgs/s"),
            r.size,
            percent(100.0 * rate / r.msgs_per_s.max(1) as f64)
        ));
    }
}

fn bulk(out: &mut Vec<String>, leaf: Leaf, needs: &Needs, report: &Report) {
    let size = needs.size_bytes.unwrap_or(1 << 20);
    let rate = needs.rate_per_s;
    if let Some(rate) = rate {
        out.push(format!(
            "you need {} ({size} B x {rate:.0}/s)",
            fmt_value(size as f64 * rate, "B/s")
        ));
    }
    for (name, what) in [
        ("shmsock-loan", "shm:// Conn loans, zero-copy"),
        (
            "shmsock-loan-read",
            "shm:// Conn loans, the receiver reading every byte",
        ),
        (
            "shmsock-offset",
            "shm:// passing an offset into a shared pool",
        ),
        ("raw-offset", "textbook ring passing an offset"),
        ("shmsock", "shm:// Conn, copying"),
        ("uds-stream", "Unix stream socket, copying"),
        ("pipe", "pipe, copying"),
    ] {
        let Some(r) = throughput(report, name, size) else {
            continue;
        };
        let share = rate
            .map(|rate| {
                format!(
                    "; your rate is {} of it",
                    percent(100.0 * rate / r.msgs_per_s.max(1) as f64)
                )
            })
            .unwrap_or_default();
        out.push(format!(
            "{what} ({name}) at {} B: {} = {} ({:.0}% CPU send, {:.0}% recv){share}",
            r.size,
            fmt_value(r.msgs_per_s as f64, "msgs/s"),
            fmt_value(r.bytes_per_s as f64, "B/s"),
            r.sender_cpu_pct,
            r.receiver_cpu_pct
        ));
    }
    if leaf == Leaf::Hybrid {
        out.push(
            "below 10,000 transfers/s a copy is affordable: the copying rows above say how much \
             of the machine it takes"
                .into(),
        );
    }
}

fn low_latency(out: &mut Vec<String>, needs: &Needs, report: &Report) {
    one_way(out, report, "shmsock-busy", "shm:// Conn, BusyPoll");
    one_way(out, report, "uds-stream", "Unix stream socket");
    budget_fit(out, needs, report, "shmsock-busy");
    let Some(budget) = needs.latency_budget_ns else {
        return;
    };
    if let Some(floor) = latency(report, "floor") {
        if (floor.rtt.p50_ns as f64 / 2.0) > budget as f64 {
            out.push(
                "your budget is below this machine's hardware floor: no IPC between two CPUs \
                 meets it; keep both ends in one thread, or relax the budget"
                    .into(),
            );
        }
    }
}

/// What the `shmsock-blocking` row is (its spin: `WaitStrategy::BLOCKING_SPIN`, which a test
/// holds this text to).
pub(super) const BLOCKING_ROW: &str =
    "shm:// Conn, Blocking wait (sleeps after a spin of at most 2 µs, as an eventfd reader sleeps)";

/// The notification rows: eventfd and signal, and shm:// sleeping at once or spinning first.
fn notification(out: &mut Vec<String>, needs: &Needs, report: &Report) {
    one_way(out, report, "eventfd", "eventfd doorbell");
    one_way(out, report, "signal", "real-time signal");
    one_way(out, report, "shmsock-blocking", BLOCKING_ROW);
    one_way(
        out,
        report,
        "shmsock",
        "shm:// Conn, Adaptive wait (spins before it sleeps)",
    );
    budget_fit(out, needs, report, "eventfd");
    budget_fit(out, needs, report, "signal");
}

/// A kernel mechanism `name` and the shm:// Conn: one-way latency, messages per second at the
/// size asked, and the budget.
fn kernel_and_shm(out: &mut Vec<String>, needs: &Needs, report: &Report, name: &str, what: &str) {
    one_way(out, report, name, what);
    one_way(out, report, "shmsock", "shm:// Conn (Adaptive)");
    streams(out, needs, report, name);
    streams(out, needs, report, "shmsock");
    budget_fit(out, needs, report, name);
}

/// What `name` streams at the measured size closest to the one asked, and the rate's share.
fn streams(out: &mut Vec<String>, needs: &Needs, report: &Report, name: &str) {
    let size = needs
        .size_bytes
        .unwrap_or(crate::options::LATENCY_SIZE as u64);
    match throughput(report, name, size) {
        Some(r) => {
            let share = needs
                .rate_per_s
                .map(|rate| {
                    format!(
                        ": your {rate:.0}/s is {} of that",
                        percent(100.0 * rate / r.msgs_per_s.max(1) as f64)
                    )
                })
                .unwrap_or_default();
            out.push(format!(
                "{name} streams {} at {} B here ({:.0}% CPU send, {:.0}% recv){share}",
                fmt_value(r.msgs_per_s as f64, "msgs/s"),
                r.size,
                r.sender_cpu_pct,
                r.receiver_cpu_pct
            ));
        }
        None => out.push(format!(
            "{name} streaming: not in the report (`shmsock lab --only throughput --mechanisms \
             {name}`)"
        )),
    }
}

/// Whether `name` meets the latency budget asked, at p50 and p99 (one way).
fn budget_fit(out: &mut Vec<String>, needs: &Needs, report: &Report, name: &str) {
    let (Some(budget), Some(r)) = (needs.latency_budget_ns, latency(report, name)) else {
        return;
    };
    let meets = |one_way: f64| {
        if one_way <= budget as f64 {
            "meets"
        } else {
            "misses"
        }
    };
    out.push(format!(
        "your budget {}: {name} {} it at p50 and {} it at p99",
        ns(budget as f64),
        meets(r.rtt.p50_ns as f64 / 2.0),
        meets(r.rtt.p99_ns as f64 / 2.0),
    ));
}
