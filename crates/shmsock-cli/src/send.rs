//! `shmsock send`: stdin lines (or synthetic messages) to an endpoint.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use shmsock::{Conn, Error};

use crate::curve::{CurveArgs, Side};
use crate::outgoing::send_each;
use crate::ConnArgs;

/// Options of `shmsock send`.
#[derive(Args, Debug)]
#[command(after_help = "Endpoints: shm://NAME (shared memory, this machine), \
    unix:///path and tcp://HOST:PORT (ZeroMQ PAIR over a Unix or TCP socket: a pyzmq PAIR \
    socket is a peer).\n\n\
    Examples:\n  \
    echo hello | shmsock send shm://demo\n  \
    shmsock send shm://demo --size 4096 --count 100000\n  \
    echo hello | shmsock send tcp://127.0.0.1:5555 --connect-timeout 5   to `shmsock recv \
    tcp://127.0.0.1:5555` or a pyzmq PAIR\n  \
    printf 'a\\nb\\n' | shmsock send unix:///tmp/demo.sock\n  \
    echo hello | shmsock send tcp://HOST:5555 --curve-server server.key --curve-secret \
    alice.key_secret   to a CURVE server (`shmsock recv ... --curve-secret \
    server.key_secret --curve-allow clients/`, alice.key copied into clients/)")]
pub(crate) struct SendArgs {
    /// Where to connect: shm://demo, unix:///tmp/demo.sock or tcp://HOST:PORT (a listener must
    /// be bound: `shmsock recv shm://demo`).
    endpoint: String,
    /// Send COUNT synthetic messages of SIZE bytes instead of reading stdin.
    #[arg(long, value_name = "BYTES", requires = "count")]
    size: Option<usize>,
    /// Number of synthetic messages (with --size).
    #[arg(long, value_name = "N", requires = "size")]
    count: Option<u64>,
    /// Keep retrying the connection this many seconds while no listener is bound.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    connect_timeout: f64,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    curve: CurveArgs,
}

fn connect(args: &SendArgs) -> Result<Conn, Error> {
    let options = args
        .curve
        .apply(&args.endpoint, Side::Connect, args.conn.options())?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.connect_timeout.max(0.0));
    loop {
        match Conn::connect_with(&args.endpoint, options.clone()) {
            Err(Error::ConnectionRefused { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => return other,
        }
    }
}

fn send_all(args: &SendArgs, conn: &mut Conn) -> Result<(u64, u64), Error> {
    send_each(args.size, args.count, |msg| conn.send(msg))
}

pub(crate) fn run(args: SendArgs) -> ExitCode {
    let mut conn = match connect(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmsock send: {e}");
            if let Some(hint) = crate::curve::hint(&e, &args.curve) {
                eprintln!("shmsock send: {hint}");
            }
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    match send_all(&args, &mut conn) {
        Ok((msgs, bytes)) => {
            conn.close();
            let secs = start.elapsed().as_secs_f64();
            if args.size.is_some() {
                eprintln!(
                    "sent {msgs} messages, {bytes} bytes in {secs:.3} s ({:.0} msgs/s)",
                    msgs as f64 / secs
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsock send: {e}");
            ExitCode::FAILURE
        }
    }
}
