//! `shmsock bridge SRC DST`: subscribe to the publisher at SRC and republish every message
//! at DST, until SIGINT/SIGTERM. The loop is the library's [`shmsock::Bridge`] (the lab
//! measures the same code); this file parses flags, handles signals and prints the summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use shmsock::{Bridge, BridgeEnd, BridgeStats, Error, Options, Overflow};

use crate::curve::{CurveFlags, Side};
use crate::ConnArgs;

/// Options of `shmsock bridge`.
#[derive(Args, Debug)]
#[command(after_help = "\
SRC is a publisher (`shmsock pub`, a Publisher, a ZeroMQ PUB socket); DST is bound as a new
publisher with the same semantics as `shmsock pub DST`: subscribers of DST receive every
message of SRC published after the bridge subscribed, in order, byte for byte.

Back-pressure: by default the slowest subscriber of DST holds the bridge back, and the bridge
holds back a shm:// SRC (nothing is lost end to end); --drop-oldest never waits.

When SRC goes away: a tcp:// or unix:// SRC is reconnected by itself (ZeroMQ SUB), the bridge
waits. A shm:// SRC that closes ends the bridge (exit 0), one that dies is an error (exit 1),
after everything it had published was forwarded; with --reconnect the bridge instead connects
again, retrying with backoff (10 ms doubling to 1 s) until SRC is back or it is stopped.

SIGINT or SIGTERM stops it cleanly: DST's subscribers get what was forwarded (tcp:// and
unix:// queues are flushed for up to 5 s), and a summary goes to stderr. A second signal
exits at once. Exit status: 0 when stopped, --count reached or a shm:// SRC closed; 1 on any
error. Only publish/subscribe endpoints are bridged (a Conn is a 1:1 PAIR socket).

CURVE (tcp://, unix://): each end has its own flags. The bridge connects to SRC, so SRC takes
the client's: --source-curve-server (the publisher's public key) and --source-curve-secret (the
bridge's certificate, for a publisher with an allow-list). DST is bound, so it takes the
server's: --dest-curve-secret and --dest-curve-allow, as `shmsock pub` does. A DST other
machines can reach should use them.

Examples:
  shmsock bridge shm://prices tcp://127.0.0.1:5556   local shm:// topic to tcp:// subscribers
  shmsock bridge tcp://host:5556 shm://prices        and back: remote publisher, local readers
  shmsock bridge shm://prices tcp://127.0.0.1:5556 --topic AAPL --topic MSFT --drop-oldest
  shmsock bridge shm://prices unix:///tmp/prices.sock --reconnect -v
  shmsock bridge shm://prices tcp://0.0.0.0:5556 --dest-curve-secret server.key_secret \\
      --dest-curve-allow clients/                  exposed to other machines: CURVE only
  shmsock bridge tcp://host:5556 shm://prices --source-curve-server server.key \\
      --source-curve-secret alice.key_secret       from a CURVE publisher
  shmsock sub tcp://127.0.0.1:5556 --connect-timeout 10    a remote subscriber
  python3 examples/python/pubsub.py sub tcp://127.0.0.1:5556 AAPL   or a pyzmq one")]
pub(crate) struct BridgeArgs {
    /// Publisher to subscribe to, e.g. shm://prices or tcp://host:5556.
    source: String,
    /// Endpoint to bind and republish on, e.g. tcp://127.0.0.1:5556 (tcp://HOST:0: any port,
    /// printed at the start).
    destination: String,
    /// Forward only messages starting with PREFIX (repeat for several; default: all).
    #[arg(long = "topic", value_name = "PREFIX")]
    topics: Vec<String>,
    /// Never wait for a slow subscriber of DST: drop its oldest messages instead.
    #[arg(long)]
    drop_oldest: bool,
    /// Connect to SRC again whenever it is missing (refused, or a shm:// SRC closed, died
    /// or broke its shared memory), with backoff from 10 ms to 1 s.
    #[arg(long)]
    reconnect: bool,
    /// Without --reconnect: keep retrying the first connection this many seconds while no
    /// publisher is bound at SRC.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    connect_timeout: f64,
    /// Subscribe to SRC only once DST has this many subscribers.
    #[arg(long, value_name = "K", default_value_t = 0)]
    wait_subscribers: usize,
    /// Stop after forwarding this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    conn: ConnArgs,
    /// CURVE on SRC (tcp://, unix://): the publisher's public key, 40 Z85 characters or its
    /// NAME.key certificate; the bridge connects as a CURVE client of it (see `shmsock sub
    /// --help`, --curve-server).
    #[arg(long, value_name = "KEY|FILE", allow_hyphen_values = true, help_heading = CURVE_HEADING)]
    source_curve_server: Option<String>,
    /// CURVE on SRC: the bridge's own certificate (NAME.key_secret), for a publisher that
    /// admits only listed clients. Needs --source-curve-server.
    #[arg(long, value_name = "FILE", help_heading = CURVE_HEADING)]
    source_curve_secret: Option<PathBuf>,
    /// CURVE on DST (tcp://, unix://): make DST a CURVE server with this certificate
    /// (NAME.key_secret; its subscribers need NAME.key). Subscribers that do not speak CURVE
    /// are refused.
    #[arg(long, value_name = "FILE", help_heading = CURVE_HEADING)]
    dest_curve_secret: Option<PathBuf>,
    /// CURVE on DST: admit only subscribers whose public key is in FILE (NAME.key) or DIR
    /// (every *.key in it); repeatable; needs --dest-curve-secret. Without it any subscriber
    /// that completes the CURVE handshake is admitted.
    #[arg(long, value_name = "FILE|DIR", help_heading = CURVE_HEADING)]
    dest_curve_allow: Vec<PathBuf>,
}

/// The help heading of the bridge's CURVE flags.
const CURVE_HEADING: &str = "CURVE security (tcp://, unix://)";

impl BridgeArgs {
    /// The options of SRC and DST: the shared flags, and each end's CURVE flags.
    fn options(&self) -> Result<(Options, Options), Error> {
        let options = self.conn.options();
        let source = CurveFlags::new(
            "source-",
            self.source_curve_secret.as_deref(),
            self.source_curve_server.as_deref(),
            &[],
        )
        .apply(&self.source, Side::Connect, options.clone())?;
        let mut destination = CurveFlags::new(
            "dest-",
            self.dest_curve_secret.as_deref(),
            None,
            &self.dest_curve_allow,
        )
        .apply(&self.destination, Side::Bind, options)?;
        if self.drop_oldest {
            destination = destination.overflow(Overflow::DropOldest);
        }
        Ok((source, destination))
    }
}

/// Sets the returned flag on SIGINT, SIGTERM or SIGQUIT; a second one exits at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for &signal in signal_hook::consts::TERM_SIGNALS {
        // Registered first, so it sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|e| Error::Io {
                context: format!("installing the handler of signal {signal}"),
                source: e,
            })?;
    }
    Ok(stop)
}

fn topics_text(topics: &[String]) -> String {
    if topics.is_empty() {
        "all topics".into()
    } else {
        format!("topics {topics:?}")
    }
}

fn summary(stats: &BridgeStats, secs: f64) -> String {
    format!(
        "forwarded {} messages, {} bytes in {secs:.3} s; received {}, lost upstream {}, \
         skipped as too large {}, reconnections {}",
        stats.forwarded,
        stats.forwarded_bytes,
        stats.received,
        stats.lost_upstream,
        stats.too_large,
        stats.reconnects
    )
}

pub(crate) fn run(args: BridgeArgs) -> ExitCode {
    let stop = match stop_on_signals() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("shmsock bridge: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (source_options, destination_options) = match args.options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("shmsock bridge: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = Bridge::builder(&args.source, &args.destination)
        .source_options(source_options)
        .destination_options(destination_options)
        .reconnect(args.reconnect)
        .connect_timeout(Duration::from_secs_f64(args.connect_timeout.max(0.0)))
        .wait_subscribers(args.wait_subscribers);
    for topic in &args.topics {
        builder = builder.topic(topic.as_bytes());
    }
    if let Some(count) = args.count {
        builder = builder.max_messages(count);
    }
    let mut bridge = match builder.build() {
        Ok(bridge) => bridge,
        Err(e) => {
            eprintln!("shmsock bridge: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "shmsock bridge: forwarding {} -> {} ({}); Ctrl-C to stop",
        bridge.source(),
        bridge.destination(),
        topics_text(&args.topics)
    );
    let start = Instant::now();
    let end = bridge.run(&stop);
    let secs = start.elapsed().as_secs_f64();
    let stats = bridge.stats();
    // Dropping the bridge closes DST: a tcp:// or unix:// publisher first delivers what it
    // queued (up to 5 s); shm:// subscribers read what is left, then see the close.
    drop(bridge);
    match end {
        Ok(end) => {
            let why = match end {
                BridgeEnd::Stopped => "stopped",
                BridgeEnd::SourceClosed => "the source closed",
                BridgeEnd::Limit => "--count reached",
                _ => "ended",
            };
            eprintln!("shmsock bridge: {why}: {}", summary(&stats, secs));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsock bridge: {e}");
            if matches!(e, Error::ConnectionRefused { .. }) {
                eprintln!(
                    "shmsock bridge: start the publisher first (`shmsock pub {}`), or give it \
                     time with --connect-timeout SECS, or keep trying with --reconnect",
                    args.source
                );
            } else if matches!(e, Error::PeerGone { .. }) {
                eprintln!(
                    "shmsock bridge: --reconnect keeps the bridge up while the source restarts"
                );
            }
            eprintln!("shmsock bridge: {}", summary(&stats, secs));
            ExitCode::FAILURE
        }
    }
}
