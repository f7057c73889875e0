//! Zero-copy loans between processes, from the command line: one side lends slots of its
//! pool, the other reads them in place. The Python package's tests use it as the Rust peer
//! of Python loans and samples (`python/tests`), and it shows the API end to end.
//!
//! ```text
//! loan_peer lend    shm://NAME COUNT SIZE   connect with a pool, send COUNT loans of SIZE bytes
//! loan_peer publish shm://NAME COUNT SIZE   bind a publisher with a pool, wait for a
//!                                           subscriber, publish COUNT loans of SIZE bytes
//! loan_peer samples shm://NAME COUNT        bind, accept, receive COUNT samples and check them
//! ```
//! Message `i` is SIZE bytes of the value `i % 251`. `samples` prints
//! `received COUNT zero-copy Z` (Z: how many arrived as loans) and fails on a wrong byte.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmsock::{Conn, Listener, Options, Publisher};

/// Slots of the lending side's pool.
const SLOTS: usize = 4;
/// How long any step may wait before the peer gives up.
const STEP: Duration = Duration::from_secs(20);

fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

fn lend(endpoint: &str, count: u64, size: usize) -> shmsock::Result<()> {
    let mut conn = Conn::connect_with(endpoint, Options::new().loan_pool(SLOTS, size))?;
    for i in 0..count {
        let mut loan = conn.loan_timeout(size, STEP)?;
        loan.fill(pattern(i));
        loan.send()?;
    }
    // Close once the receiver handed every slot back (closing earlier is fine too: the pool
    // outlives the close while the receiver maps it).
    let started = Instant::now();
    while conn.loans_outstanding()? > 0 && started.elapsed() < STEP {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn publish(endpoint: &str, count: u64, size: usize) -> shmsock::Result<()> {
    let mut publisher = Publisher::bind_with(endpoint, Options::new().loan_pool(SLOTS, size))?;
    let started = Instant::now();
    while publisher.subscriber_count() < 1 {
        if started.elapsed() > STEP {
            return Err(shmsock::Error::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 0..count {
        let mut loan = publisher.loan_timeout(size, STEP)?;
        loan.fill(pattern(i));
        loan.send()?;
    }
    Ok(())
}

fn samples(endpoint: &str, count: u64) -> shmsock::Result<()> {
    let listener = Listener::bind(endpoint)?;
    let mut conn = listener.accept_timeout(STEP)?;
    let mut zero_copy = 0;
    for i in 0..count {
        let sample = conn.recv_sample_timeout(STEP)?;
        zero_copy += u64::from(sample.is_loan());
        let bytes = sample.to_vec();
        if let Some(at) = bytes.iter().position(|&b| b != pattern(i)) {
            eprintln!(
                "loan_peer: message {i}: byte {at} is {}, expected {}",
                bytes[at],
                pattern(i)
            );
            std::process::exit(2);
        }
    }
    println!("received {count} zero-copy {zero_copy}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("lend"), Some(ep)) => match (number(2), number(3)) {
            (Some(count), Some(size)) => lend(ep, count, size as usize),
            _ => return usage(),
        },
        (Some("publish"), Some(ep)) => match (number(2), number(3)) {
            (Some(count), Some(size)) => publish(ep, count, size as usize),
            _ => return usage(),
        },
        (Some("samples"), Some(ep)) => match number(2) {
            Some(count) => samples(ep, count),
            None => return usage(),
        },
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loan_peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: loan_peer lend|publish shm://NAME COUNT SIZE | loan_peer samples shm://NAME COUNT"
    );
    ExitCode::from(2)
}
