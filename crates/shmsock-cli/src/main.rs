//! `shmsock`: the IPC lab, and nc-like tools over shmsock endpoints.
//!
//! Run with no arguments to run the lab (`cargo run --release`).
#![deny(unsafe_code)]

mod advise;
mod bridge;
mod curve;
mod inspect;
mod keygen;
mod outgoing;
mod pubsub;
mod recv;
mod send;
mod stdout;

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
    /// Log more of the library's events on stderr (-v: connections and peers ending, -vv:
    /// debug); warnings (lag, corruption, dropped messages) are shown without it. Not for
    /// `lab`, whose forked children must not log.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

const EXAMPLES: &str = "\
Examples:
  shmsock lab --quick                      measure IPC mechanisms on this machine (~90 s)
  shmsock advise --size 1MiB --rate 30000  which mechanism to use, from this machine's numbers
  shmsock recv shm://demo                  bind shm://demo, print each message on a line
  printf 'a\\nb\\n' | shmsock send shm://demo  send two messages
  shmsock send shm://demo --size 64 --count 1000000   synthetic load
  shmsock sub shm://ticks --connect-timeout 10 &    a subscriber (start several)
  printf 'a\\nb\\n' | shmsock pub shm://ticks --wait-subscribers 1   publish to all of them
  shmsock recv tcp://127.0.0.1:5555        over ZeroMQ instead (tcp://, unix:///path; pyzmq is a peer)
  shmsock bridge shm://ticks tcp://127.0.0.1:5556  republish a shm:// topic over tcp://
  shmsock pub shm://ticks tcp://127.0.0.1:5556 ...  one publisher, several endpoints (local
                                           tcp:// and unix:// subscribers move to shared memory)
  shmsock ls                               every live shm:// endpoint, its peers and counters
  shmsock top                              the same, refreshed every second, with rates
  shmsock clean --dry-run                  rendezvous files of dead listeners
  shmsock keygen server                    a CURVE key pair: server.key, server.key_secret (0600)
  shmsock pub tcp://0.0.0.0:5557 --curve-secret server.key_secret --curve-allow clients/
                                           expose a service: CURVE, clients/*.key admitted only
  shmsock sub tcp://HOST:5557 --curve-server server.key --curve-secret alice.key_secret
                                           and a client of it (alice.key is in clients/)";

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure IPC mechanisms on this machine (the default command).
    Lab(LabArgs),
    /// Which IPC mechanism and shmsock endpoint to use: the Comparison's flowchart, with this
    /// machine's numbers.
    Advise(advise::AdviseArgs),
    /// Connect to ENDPOINT and send stdin, one message per line (or synthetic messages).
    Send(send::SendArgs),
    /// Bind ENDPOINT, accept one peer and print each message on its own line.
    Recv(recv::RecvArgs),
    /// Bind ENDPOINT and publish stdin lines (or synthetic messages) to every subscriber.
    Pub(pubsub::PubArgs),
    /// Subscribe to the publisher at ENDPOINT and print each message on its own line.
    Sub(pubsub::SubArgs),
    /// List every live shm:// endpoint of this user: peers, rings, counters, stale names.
    Ls(inspect::LsArgs),
    /// Show `ls` refreshed every interval, with message and byte rates.
    Top(inspect::TopArgs),
    /// Remove rendezvous files left by dead listeners (never a live endpoint's).
    Clean(inspect::CleanArgs),
    /// Subscribe to the publisher at SRC and republish every message at DST (e.g. a shm://
    /// topic over tcp://, or back).
    Bridge(bridge::BridgeArgs),
    /// Create a CURVE key pair: NAME.key (public) and NAME.key_secret (secret, mode 0600),
    /// ZeroMQ certificate files as czmq and pyzmq write them.
    Keygen(keygen::KeygenArgs),
}

/// Options of `shmsock lab`.
#[derive(Args, Debug, Default)]
#[command(after_help = "Examples:
  shmsock lab --quick                          ~90 s, indicative numbers
  shmsock lab                                  the default report (~15 min on 2 CPUs), into ./lab-report/
  shmsock lab --only latency --mechanisms pipe,futex,shmsock
  shmsock lab --only throughput --sizes 4KiB,1MiB --out /tmp/lab")]
struct LabArgs {
    /// Short run (about 90 s on 2 CPUs): fewer iterations, noisier numbers.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Long run: more iterations, stabler tails.
    #[arg(long)]
    full: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Directory for report.html, report.md, report.json and the SVG plots [default: ./lab-report].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Only these experiments (comma-separated; see the list below).
    #[arg(long, value_delimiter = ',', value_name = "LIST", help = only_help())]
    only: Option<Vec<String>>,
    /// Only these mechanisms (comma-separated; see `shmsock lab --help`).
    #[arg(long, value_delimiter = ',', value_name = "LIST", help = mechanisms_help())]
    mechanisms: Option<Vec<String>>,
    /// Throughput message sizes (comma-separated; 64, 4096, 4KiB, 1MiB ...).
    #[arg(long, value_delimiter = ',', value_name = "LIST", value_parser = parse_size)]
    sizes: Option<Vec<usize>>,
}

fn only_help() -> String {
    format!(
        "Only these experiments (comma-separated: {})",
        shmsock_lab::EXPERIMENTS.join(",")
    )
}

fn mechanisms_help() -> String {
    format!(
        "Only these mechanisms (comma-separated: {}; a family name such as mmap-file-durable \
         selects all its rows; the python experiment's rows: {})",
        shmsock_lab::mechanisms::names().join(","),
        shmsock_lab::experiments::python::ROWS.join(",")
    )
}

/// `4096`, `4K`, `4KiB`, `1M`, `1MiB`.
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 64, 4KiB, 1MiB)"))?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (B, KiB, MiB)")),
    };
    n.checked_mul(scale)
        .filter(|&n| n >= 8)
        .ok_or_else(|| format!("{text:?}: sizes go from 8 B up"))
}

/// How a blocking call waits (see `shmsock::WaitStrategy`).
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub(crate) enum Wait {
    /// Spin, never sleep: lowest latency, one busy core.
    Busy,
    /// Spin briefly, then sleep on a futex.
    #[default]
    Adaptive,
    /// Sleep almost at once (after spinning 2 µs, or after a large message as long as its copy took).
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

impl Wait {
    pub(crate) fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Busy => WaitStrategy::BusyPoll,
            Wait::Adaptive => WaitStrategy::Adaptive,
            Wait::Blocking => WaitStrategy::Blocking,
        }
    }
}

impl ConnArgs {
    pub(crate) fn options(&self) -> Options {
        Options::new()
            .ring_capacity(self.ring)
            .wait_strategy(self.wait.strategy())
    }
}

/// Where the report goes when `--out` is not given.
const LAB_OUT_DEFAULT: &str = "lab-report";

fn run_lab(args: LabArgs) -> ExitCode {
    let mode = match (args.quick, args.full) {
        (true, _) => shmsock_lab::Mode::Quick,
        (_, true) => shmsock_lab::Mode::Full,
        _ => shmsock_lab::Mode::Default,
    };
    let opts = shmsock_lab::LabOptions {
        mode,
        json: args.json,
        out: Some(args.out.unwrap_or_else(|| PathBuf::from(LAB_OUT_DEFAULT))),
        mechanisms: args.mechanisms,
        only: args.only,
        sizes: args.sizes,
    };
    match shmsock_lab::run(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmsock lab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Shows the library's `tracing` events on stderr: warnings, and more with each `-v`.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::LevelFilter;
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The lab forks while other threads may run: its children must not take a logger's
    // locks, so it logs nothing.
    if !matches!(cli.command, None | Some(Command::Lab(_))) {
        init_logging(cli.verbose);
    }
    match cli.command {
        None => run_lab(LabArgs::default()),
        Some(Command::Lab(args)) => run_lab(args),
        Some(Command::Advise(args)) => advise::run(args),
        Some(Command::Send(args)) => send::run(args),
        Some(Command::Recv(args)) => recv::run(args),
        Some(Command::Pub(args)) => pubsub::run_pub(args),
        Some(Command::Sub(args)) => pubsub::run_sub(args),
        Some(Command::Ls(args)) => inspect::run_ls(args),
        Some(Command::Top(args)) => inspect::run_top(args),
        Some(Command::Clean(args)) => inspect::run_clean(args),
        Some(Command::Bridge(args)) => bridge::run(args),
        Some(Command::Keygen(args)) => keygen::run(args),
    }
}
