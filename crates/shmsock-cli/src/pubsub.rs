//! `shmsock pub` and `shmsock sub`: publish stdin lines (or synthetic messages) to every
//! subscriber of an endpoint, and print what a subscriber receives.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use shmsock::{Error, Options, Overflow, Publisher, Subscriber};

use crate::curve::{CurveArgs, Side};
use crate::outgoing::send_each;
use crate::{ConnArgs, Wait};

/// Options of `shmsock pub`.
#[derive(Args, Debug)]
#[command(
    after_help = "Every subscriber receives every message published after it joined; \
    lines published before anyone subscribed are not kept (use --wait-subscribers).\n\n\
    Over tcp:// and unix:// this is a ZeroMQ PUB socket (pyzmq SUB sockets subscribe to \
    it) that filters by topic prefix and queues up to --ring bytes per subscriber. Several \
    endpoints: one publisher serves the subscribers of all of them. A shmsock subscriber of a \
    tcp:// or unix:// endpoint on this machine moves to the publisher's shared memory by \
    itself (shown as \"upgraded from ...\" in `shmsock ls`); --no-upgrade keeps every \
    message on the network.\n\n\
    Examples:\n  \
    shmsock sub shm://ticks &                 a subscriber (start as many as you like)\n  \
    printf 'a\\nb\\n' | shmsock pub shm://ticks --wait-subscribers 1\n  \
    shmsock pub shm://ticks --size 64 --count 1000000 --wait-subscribers 2 --drop-oldest\n  \
    printf 'tick 1\\ntick 2\\n' | shmsock pub tcp://127.0.0.1:5557 --wait-subscribers 1\n  \
    shmsock pub unix:///tmp/ticks.sock --size 64 --count 1000 --wait-subscribers 1\n  \
    shmsock pub shm://ticks unix:///tmp/ticks.sock tcp://127.0.0.1:5557   one publisher, three endpoints\n\n\
    Exposed to other machines, use CURVE: encrypted, and only subscribers whose key is in \
    clients/ (their NAME.key files from `shmsock keygen NAME`) are admitted:\n  \
    shmsock keygen server\n  \
    shmsock pub tcp://0.0.0.0:5557 --curve-secret server.key_secret --curve-allow clients/"
)]
pub(crate) struct PubArgs {
    /// Endpoints to bind, one or more: shm://ticks, unix:///tmp/ticks.sock,
    /// tcp://127.0.0.1:5557 (tcp://HOST:0: any port, printed on stderr). Every subscriber of
    /// any of them receives every message.
    #[arg(required = true, num_args = 1.., value_name = "ENDPOINT")]
    endpoints: Vec<String>,
    /// Publish COUNT synthetic messages of SIZE bytes instead of reading stdin.
    #[arg(long, value_name = "BYTES", requires = "count")]
    size: Option<usize>,
    /// Number of synthetic messages (with --size).
    #[arg(long, value_name = "N", requires = "size")]
    count: Option<u64>,
    /// Wait until this many subscribers joined before publishing anything.
    #[arg(long, value_name = "K", default_value_t = 0)]
    wait_subscribers: usize,
    /// Never wait for a slow subscriber: overwrite the oldest messages (it is told how many
    /// it lost). By default the slowest subscriber holds the publisher back.
    #[arg(long)]
    drop_oldest: bool,
    /// Give up when a subscriber has not made room for this many seconds (0: wait forever).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    send_timeout: f64,
    /// Keep tcp:// and unix:// subscribers on this machine on the network instead of moving
    /// them to shared memory (Options::upgrade(false); e.g. to capture the traffic).
    #[arg(long)]
    no_upgrade: bool,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    curve: CurveArgs,
}

/// Options of `shmsock sub`.
#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 when the publisher closed cleanly (or --count was reached), \
    1 when it died or on any error. Over tcp:// and unix://, a subscriber on the publisher's \
    machine moves to its shared memory by itself and says so on stderr (\"moved to shared \
    memory\"); --no-upgrade stays on the network. A lagging subscriber of a --drop-oldest publisher prints \
    \"lagged: lost N messages\" on stderr and goes on.\n\n\
    Over tcp:// and unix:// (a ZeroMQ SUB socket: a pyzmq PUB is a publisher) the subscriber \
    reconnects by itself when the publisher goes away, so it does not exit with it: use \
    --count, or stop it.\n\n\
    Examples:\n  \
    shmsock sub shm://ticks --connect-timeout 10\n  \
    shmsock sub shm://ticks --quiet --count 1000000\n  \
    shmsock sub tcp://127.0.0.1:5557 --connect-timeout 10 --count 2\n  \
    shmsock sub unix:///tmp/ticks.sock --quiet --count 1000\n  \
    shmsock sub tcp://HOST:5557 --curve-server server.key --curve-secret alice.key_secret   \
    a CURVE publisher (alice.key is in its --curve-allow directory)"
)]
pub(crate) struct SubArgs {
    /// Publisher to subscribe to: shm://ticks, unix:///tmp/ticks.sock or tcp://HOST:5557
    /// (start it with `shmsock pub shm://ticks`).
    endpoint: String,
    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Do not print messages; print a summary on stderr at the end.
    #[arg(long)]
    quiet: bool,
    /// Keep retrying this many seconds while no publisher is bound.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    connect_timeout: f64,
    /// Wait strategy for blocking receives.
    #[arg(long, value_enum, default_value_t = Wait::Adaptive)]
    wait: Wait,
    /// Stay on the network (tcp://, unix://) even when the publisher runs on this machine
    /// (Options::upgrade(false)).
    #[arg(long)]
    no_upgrade: bool,
    #[command(flatten)]
    curve: CurveArgs,
}

fn send(args: &PubArgs, publisher: &mut Publisher, msg: &[u8]) -> Result<(), Error> {
    if args.send_timeout > 0.0 {
        publisher.send_timeout(msg, Duration::from_secs_f64(args.send_timeout))
    } else {
        publisher.send(msg)
    }
}

fn publish(args: &PubArgs) -> Result<(u64, u64, usize, Instant), Error> {
    let mut options = args.conn.options().upgrade(!args.no_upgrade);
    // The CURVE flags secure every network endpoint; beside one, a shm:// endpoint is left
    // to its uid checks (alone, the flags refuse it and say why).
    let network = |e: &&String| !e.starts_with("shm://");
    let secured: Vec<&String> = if args.endpoints.iter().any(|e| network(&e)) {
        args.endpoints.iter().filter(network).collect()
    } else {
        args.endpoints.iter().collect()
    };
    for endpoint in secured {
        options = args.curve.apply(endpoint, Side::Bind, options)?;
    }
    if args.drop_oldest {
        options = options.overflow(Overflow::DropOldest);
    }
    let endpoints: Vec<&str> = args.endpoints.iter().map(String::as_str).collect();
    let mut publisher = Publisher::bind_all(&endpoints, options)?;
    if args.endpoints.iter().any(|e| e.ends_with(":0")) {
        for endpoint in publisher.endpoints() {
            eprintln!("shmsock pub: listening on {endpoint}");
        }
    }
    while publisher.subscriber_count() < args.wait_subscribers {
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let (msgs, bytes) = send_each(args.size, args.count, |msg| send(args, &mut publisher, msg))?;
    let subscribers = publisher.subscriber_count();
    Ok((msgs, bytes, subscribers, start))
}

pub(crate) fn run_pub(args: PubArgs) -> ExitCode {
    match publish(&args) {
        Ok((msgs, bytes, subscribers, start)) => {
            if args.size.is_some() {
                let secs = start.elapsed().as_secs_f64();
                eprintln!(
                    "published {msgs} messages, {bytes} bytes in {secs:.3} s ({:.0} msgs/s) \
                     to {subscribers} subscribers",
                    msgs as f64 / secs
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsock pub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect(args: &SubArgs) -> Result<Subscriber, Error> {
    let options = args.curve.apply(
        &args.endpoint,
        Side::Connect,
        Options::new()
            .wait_strategy(args.wait.strategy())
            .upgrade(!args.no_upgrade),
    )?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.connect_timeout.max(0.0));
    loop {
        match Subscriber::connect_with(&args.endpoint, options.clone()) {
            Err(Error::ConnectionRefused { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return other,
        }
    }
}

/// What a subscriber received.
struct Received {
    msgs: u64,
    bytes: u64,
    lost: u64,
    /// When the first message arrived: the rate is timed from it, not from the connect
    /// (which may wait long for the publisher's first message).
    first: Option<Instant>,
}

fn subscribe(args: &SubArgs) -> Result<Received, Error> {
    let mut sub = connect(args)?;
    let mut got = Received {
        msgs: 0,
        bytes: 0,
        lost: 0,
        first: None,
    };
    // A network subscriber may move to the publisher's shared memory: said once, here.
    let mut moved = sub.is_shared_memory();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let stdout_err = |e: std::io::Error| Error::Io {
        context: "writing to stdout".into(),
        source: e,
    };
    let mut buf = vec![0u8; 64 * 1024];
    while args.count.is_none_or(|c| got.msgs < c) {
        let n = match sub.recv(&mut buf) {
            Ok(n) => n,
            Err(Error::BufferTooSmall { len, .. }) => {
                buf.resize(len, 0);
                continue;
            }
            Err(Error::Lagged { missed, .. }) => {
                out.flush().map_err(stdout_err)?;
                eprintln!("shmsock sub: lagged: lost {missed} messages");
                got.lost += missed;
                continue;
            }
            Err(Error::PeerClosed { .. }) => break,
            Err(e) => {
                let _ = out.flush();
                return Err(e);
            }
        };
        got.first.get_or_insert_with(Instant::now);
        got.msgs += 1;
        got.bytes += n as u64;
        if !moved && sub.is_shared_memory() {
            moved = true;
            out.flush().map_err(stdout_err)?;
            eprintln!(
                "shmsock sub: moved to shared memory after {} message(s) over the network \
                 (the publisher, pid {}, runs on this machine; --no-upgrade stays on the \
                 network)",
                got.msgs - 1,
                sub.publisher_pid()
            );
        }
        if !args.quiet {
            out.write_all(&buf[..n]).map_err(stdout_err)?;
            out.write_all(b"\n").map_err(stdout_err)?;
        }
    }
    out.flush().map_err(stdout_err)?;
    Ok(got)
}

pub(crate) fn run_sub(args: SubArgs) -> ExitCode {
    match subscribe(&args) {
        Ok(got) => {
            if args.quiet {
                // From the first message to the last: the intervals between them.
                let secs = got.first.map_or(0.0, |t| t.elapsed().as_secs_f64());
                eprintln!(
                    "received {} messages, {} bytes in {secs:.3} s from the first ({:.0} \
                     msgs/s), lost {}",
                    got.msgs,
                    got.bytes,
                    got.msgs.saturating_sub(1) as f64 / secs.max(1e-9),
                    got.lost
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsock sub: {e}");
            if let Some(hint) = crate::curve::hint(&e, &args.curve) {
                eprintln!("shmsock sub: {hint}");
            }
            if matches!(e, Error::ConnectionRefused { .. }) {
                eprintln!(
                    "shmsock sub: start the publisher first (`shmsock pub {}`), or give it \
                     time with --connect-timeout SECS",
                    args.endpoint
                );
            }
            ExitCode::FAILURE
        }
    }
}
