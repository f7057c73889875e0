//! `shmsock`: the IPC lab, and nc-like tools over shmsock endpoints.
//!
//! Run with no arguments to run the lab (`cargo run --release`).
#![deny(unsafe_code)]

mod recv;
mod send;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shmsock::{Options, WaitStrategy};

/// Socket-like IPC at shared-memory speed, and a lab that measures every IPC mechanism.
#[derive(Parser, Debug)]
#[command(name = "shmsock", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

const EXAMPLES: &str = "\
Examples:
  shmsock lab --quick                      measure IPC mechanisms on this machine (< 60 s)
  shmsock recv shm://demo                  bind shm://demo, print each message on a line
  printf 'a\\nb\\n' | shmsock send shm://demo  send two messages
  shmsock send shm://demo --size 64 --count 1000000   synthetic load";

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure IPC mechanisms on this machine (the default command).
    Lab(LabArgs),
    /// Connect to ENDPOINT and send stdin, one message per line (or synthetic messages).
    Send(send::SendArgs),
    /// Bind ENDPOINT, accept one peer and print each message on its own line.
    Recv(recv::RecvArgs),
}

/// Options of `shmsock lab`.
#[derive(Args, Debug, Default)]
#[command(after_help = "Example:\n  shmsock lab --quick --json lab.json")]
struct LabArgs {
    /// Short run (< 60 s): fewer iterations, noisier numbers.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Only these mechanisms (comma-separated: floor,raw-ring,shmsock-busy,shmsock,pipe,uds-stream,tcp).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    mechanisms: Option<Vec<String>>,
}

/// How a blocking call waits (see `shmsock::WaitStrategy`).
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub(crate) enum Wait {
    /// Spin, never sleep: lowest latency, one busy core.
    Busy,
    /// Spin briefly, then sleep on a futex.
    #[default]
    Adaptive,
    /// Sleep at once.
    Blocking,
}

/// Connection options shared by send and recv.
#[derive(Args, Debug)]
pub(crate) struct ConnArgs {
    /// Wait strategy for blocking sends and receives.
    #[arg(long, value_enum, default_value_t = Wait::Adaptive)]
    wait: Wait,
    /// Capacity of this side's outbound ring in bytes (power of two, 4 KiB..1 GiB).
    #[arg(long, value_name = "BYTES", default_value_t = shmsock::RING_CAPACITY_DEFAULT_BYTES)]
    ring: usize,
}

impl ConnArgs {
    pub(crate) fn options(&self) -> Options {
        Options::new()
            .ring_capacity(self.ring)
            .wait_strategy(match self.wait {
                Wait::Busy => WaitStrategy::BusyPoll,
                Wait::Adaptive => WaitStrategy::Adaptive,
                Wait::Blocking => WaitStrategy::Blocking,
            })
    }
}

fn run_lab(args: LabArgs) -> ExitCode {
    let opts = shmsock_lab::LabOptions {
        quick: args.quick,
        json: args.json,
        mechanisms: args.mechanisms,
    };
    match shmsock_lab::run(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmsock lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run_lab(LabArgs::default()),
        Some(Command::Lab(args)) => run_lab(args),
        Some(Command::Send(args)) => send::run(args),
        Some(Command::Recv(args)) => recv::run(args),
    }
}
