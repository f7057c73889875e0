//! `shmsock advise`: the Comparison's decision flowchart and the IPC cheat sheet's menu as flags
//! or, on a terminal, as questions; the answer comes with this machine's numbers (see
//! `shmsock_lab::advise`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use shmsock_lab::advise::{self, parse_bytes, parse_duration_ns, parse_rate, Needs};

use crate::stdout::print_out;

/// Options of `shmsock advise`.
#[derive(Args, Debug)]
#[command(after_help = "\
With none of the flowchart's or the menu's flags on a terminal, the questions are asked one by
one.
Answers not given count as \"no\". The numbers come from ./lab-report/report.json (written by
`shmsock lab`), or --report PATH; without a report a quick measurement runs first (~10 s).

Examples:
  shmsock advise                                       ask the questions interactively
  shmsock advise --size 64 --latency-budget 500ns      tiny messages, sub-microsecond budget
  shmsock advise --size 1MiB --rate 30000              bulk data, 30,000 transfers/s
  shmsock advise --size 4KiB --rate 2k                 the default: message passing
  shmsock advise --remote                              peers on other machines
  shmsock advise --size 1MiB --rate 50k --untrusted    a peer you do not trust
  shmsock advise --notify-only --event-loop            wake an event loop: eventfd
  shmsock advise --notify-only                         wake-ups: eventfd, or a signal if faster here
  shmsock advise --byte-stream --parent-child --rate 50k   a stream to a forked child: a pipe
  shmsock advise --byte-stream --rate 50k              a stream between unrelated processes: a FIFO
  shmsock advise --kernel-queue --size 256             messages that wait for an absent reader: mq
  shmsock advise --size 4KiB --report docs/lab-sample/report.json --json")]
pub(crate) struct AdviseArgs {
    /// The processes run (now or later) on different machines.
    #[arg(long)]
    remote: bool,
    /// Bytes per transfer (64, 4KiB, 1MiB, ...).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    size: Option<u64>,
    /// Transfers per second (500, 30k, 1.5M, ...).
    #[arg(long, value_name = "PER_SEC", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Latency budget per message: ns, or a duration (500ns, 2us, 1ms).
    #[arg(long, value_name = "NS", value_parser = parse_duration_ns)]
    latency_budget: Option<u64>,
    /// The peer is untrusted (another user, a sandbox, code you do not control).
    #[arg(long)]
    untrusted: bool,
    /// Only a wake-up crosses, no data: eventfd, or a signal (the IPC cheat sheet's
    /// "notifications only").
    #[arg(long, conflicts_with_all = ["size", "rate", "byte_stream", "kernel_queue"])]
    notify_only: bool,
    /// With --notify-only: the woken side waits in an event loop (epoll, poll, tokio).
    #[arg(long, requires = "notify_only")]
    event_loop: bool,
    /// The peer is a child process you fork (with --byte-stream: a pipe).
    #[arg(long)]
    parent_child: bool,
    /// The data is a byte stream, not messages: a pipe or a FIFO while it keeps up.
    #[arg(long)]
    byte_stream: bool,
    /// Messages must wait in the kernel while the reader is absent: a POSIX message queue.
    #[arg(long)]
    kernel_queue: bool,
    /// Lab report to take the numbers from [default: ./lab-report/report.json].
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Without a report, answer without numbers instead of measuring.
    #[arg(long)]
    no_measure: bool,
    /// Print the advice as JSON.
    #[arg(long)]
    json: bool,
}

impl AdviseArgs {
    fn flowchart_flags_given(&self) -> bool {
        self.remote
            || self.size.is_some()
            || self.rate.is_some()
            || self.latency_budget.is_some()
            || self.untrusted
            || self.notify_only
            || self.event_loop
            || self.parent_child
            || self.byte_stream
            || self.kernel_queue
    }
}

pub(crate) fn run(args: AdviseArgs) -> ExitCode {
    let needs = if !args.flowchart_flags_given() && std::io::stdin().is_terminal() {
        let mut stdin = std::io::stdin().lock();
        match advise::interview(&mut stdin, &mut std::io::stdout()) {
            Ok(needs) => needs,
            Err(e) => {
                eprintln!("shmsock advise: reading the answers: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Needs {
            remote: args.remote,
            size_bytes: args.size,
            rate_per_s: args.rate,
            latency_budget_ns: args.latency_budget,
            untrusted: args.untrusted,
            notify_only: args.notify_only,
            event_loop: args.event_loop,
            parent_child: args.parent_child,
            byte_stream: args.byte_stream,
            kernel_queue: args.kernel_queue,
        }
    };
    let (report, source) =
        match advise::load_or_measure(&needs, args.report.as_deref(), !args.no_measure) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("shmsock advise: {e}");
                return ExitCode::FAILURE;
            }
        };
    let mut advice = advise::advise(&needs, report.as_ref());
    advice.notes.insert(0, source);
    if args.json {
        match advice.to_json() {
            Ok(json) => print_out(&format!("{json}\n")),
            Err(e) => {
                eprintln!("shmsock advise: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        print_out(&advice.to_string())
    }
}
