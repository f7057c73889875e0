//! What a command prints on stdout goes through here.

use std::io::Write;
use std::process::ExitCode;

/// Writes `text` to stdout; a closed pipe (`| head`) ends quietly (`println!` would panic).
pub(crate) fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmsock: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}
