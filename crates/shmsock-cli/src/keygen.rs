//! `shmsock keygen NAME`: a new CURVE key pair as ZeroMQ certificate files, `NAME.key`
//! (public) and `NAME.key_secret` (secret, mode 0600), in the format czmq's zcert and
//! pyzmq's `zmq.auth` read and write.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use shmsock::CurveKeyPair;

use crate::stdout::print_out;

/// Options of `shmsock keygen`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  shmsock keygen server                  server.key (public) and server.key_secret (0600)
  shmsock keygen keys/alice              keys/alice.key and keys/alice.key_secret
  shmsock keygen server --force          replace an existing pair
  python3 -c \"import zmq.auth; print(zmq.auth.load_certificate('server.key_secret'))\"")]
pub(crate) struct KeygenArgs {
    /// Base path of the certificates: NAME.key (public) and NAME.key_secret (secret) are
    /// written.
    #[arg(value_name = "NAME")]
    name: PathBuf,
    /// Replace existing certificate files (by default an existing file is never
    /// overwritten).
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: KeygenArgs) -> ExitCode {
    let pair = CurveKeyPair::generate();
    let saved = if args.force {
        pair.save_replacing(&args.name)
    } else {
        pair.save(&args.name)
    };
    match saved {
        Ok((public, secret)) => print_out(&format!(
            "public key:         {}\n\
             public certificate: {}   (give it to peers)\n\
             secret certificate: {}   (mode 0600: keep it to yourself)\n",
            pair.public(),
            public.display(),
            secret.display()
        )),
        Err(e) => {
            eprintln!("shmsock keygen: {e}");
            ExitCode::FAILURE
        }
    }
}
