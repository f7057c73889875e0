//! `shmsock recv`: bind one or more endpoints, accept one peer (on whichever), print its
//! messages.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use shmsock::{Conn, Error, Listener};

use crate::curve::{CurveArgs, Side};
use crate::ConnArgs;

/// Options of `shmsock recv`.
#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 when the sender closed cleanly (or --count was reached), \
    1 when it died or on any error. Over tcp:// and unix:// (ZeroMQ PAIR: a pyzmq PAIR socket \
    is a peer) a sender's exit looks like a clean close unless it stops mid-message.\n\n\
    Examples:\n  \
    shmsock recv shm://demo --count 10\n  \
    shmsock recv tcp://127.0.0.1:5555            this machine only (tcp://HOST:0: any port, printed)\n  \
    shmsock recv unix:///tmp/demo.sock --quiet   throughput summary on stderr\n  \
    shmsock recv shm://demo tcp://127.0.0.1:5557  the first sender on either endpoint\n\n\
    Exposed to other machines, use CURVE (keys from `shmsock keygen`; see the send help):\n  \
    shmsock recv tcp://0.0.0.0:5555 --curve-secret server.key_secret --curve-allow clients/"
)]
pub(crate) struct RecvArgs {
    /// Endpoints to bind: shm://demo, unix:///tmp/demo.sock or tcp://127.0.0.1:5555, one or
    /// more (the first sender on any of them is received; CURVE flags apply to every
    /// tcp:// and unix:// one).
    #[arg(required = true, num_args = 1.., value_name = "ENDPOINT")]
    endpoints: Vec<String>,
    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Do not print messages; print a throughput summary on stderr at the end.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    curve: CurveArgs,
}

/// Accepts until a peer completes the handshake (refused peers are reported and skipped).
fn accept(listener: &Listener) -> Result<Conn, Error> {
    loop {
        match listener.accept() {
            Ok(c) => return Ok(c),
            Err(
                e @ (Error::PermissionDenied { .. }
                | Error::Handshake { .. }
                | Error::VersionMismatch { .. }),
            ) => {
                eprintln!("shmsock recv: refused a peer: {e}")
            }
            Err(e) => return Err(e),
        }
    }
}

fn receive(args: &RecvArgs) -> Result<(u64, u64, Instant), Error> {
    // CURVE is for the socket endpoints: checked against the first (against an shm://
    // one, only when there is no other, to refuse the flags).
    let curve_endpoint = args
        .endpoints
        .iter()
        .find(|ep| !ep.starts_with("shm://"))
        .unwrap_or(&args.endpoints[0]);
    let options = args
        .curve
        .apply(curve_endpoint, Side::Bind, args.conn.options())?;
    let endpoints: Vec<&str> = args.endpoints.iter().map(String::as_str).collect();
    let listener = Listener::bind_all(&endpoints, options)?;
    for (asked, bound) in args.endpoints.iter().zip(listener.endpoints()) {
        if asked.ends_with(":0") {
            eprintln!("shmsock recv: listening on {bound}");
        }
    }
    let mut conn = accept(&listener)?;
    let start = Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut buf = vec![0u8; 64 * 1024];
    let (mut msgs, mut bytes) = (0u64, 0u64);
    let stdout_err = |e: std::io::Error| Error::Io {
        context: "writing to stdout".into(),
        source: e,
    };
    while args.count.is_none_or(|c| msgs < c) {
        let n = match conn.recv(&mut buf) {
            Ok(n) => n,
            Err(Error::BufferTooSmall { len, .. }) => {
                buf.resize(len, 0);
                continue;
            }
            Err(Error::PeerClosed { .. }) => break,
            Err(e) => {
                let _ = out.flush();
                return Err(e);
            }
        };
        msgs += 1;
        bytes += n as u64;
        if !args.quiet {
            out.write_all(&buf[..n]).map_err(stdout_err)?;
            out.write_all(b"\n").map_err(stdout_err)?;
        }
    }
    out.flush().map_err(stdout_err)?;
    Ok((msgs, bytes, start))
}

pub(crate) fn run(args: RecvArgs) -> ExitCode {
    match receive(&args) {
        Ok((msgs, bytes, start)) => {
            if args.quiet {
                let secs = start.elapsed().as_secs_f64();
                eprintln!(
                    "received {msgs} messages, {bytes} bytes in {secs:.3} s ({:.0} msgs/s)",
                    msgs as f64 / secs
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmsock recv: {e}");
            ExitCode::FAILURE
        }
    }
}
