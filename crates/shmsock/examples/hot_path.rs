//! The software cost of one `shm://` message: a `Conn` pair in one thread, each 64 B message
//! sent and received back to back, so no cache line crosses between cores and what is left
//! is the instructions of `send` and `recv`.
//!
//! ```sh
//! cargo run --release -p shmsock --example hot_path            # ns per send + recv
//! cargo run --release -p shmsock --example hot_path -- pubsub  # a Publisher and a Subscriber
//! # instructions per message (deterministic, the number to compare before and after a change):
//! N=200000 ROUNDS=1 valgrind --tool=callgrind target/release/examples/hot_path
//! ```
//!
//! Per round, `N` messages one at a time, then `2 N` in pairs (two sends, two receives);
//! `ROUNDS` rounds (default 5). Under callgrind, instructions per message are the difference
//! of two runs' totals with different `N` (which cancels the setup) over `3` times the
//! difference of their `N`.
//!
//! The times overstate a real round trip's software share: the receiver's load of a tag
//! the same core just stored through another mapping of the page cannot be forwarded from
//! the store buffer (the two mappings have different addresses), so each `recv` waits for
//! the store to reach the cache. `shmsock lab --only latency` measures the real thing.

use std::time::{Duration, Instant};

use shmsock::{Conn, Listener, Options, Publisher, Subscriber, WaitStrategy};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One side that sends and one that receives, in this thread.
trait Ends {
    fn send(&mut self, msg: &[u8]) -> shmsock::Result<()>;
    fn recv(&mut self, buf: &mut [u8]) -> shmsock::Result<usize>;
}

impl Ends for (Conn, Conn) {
    fn send(&mut self, msg: &[u8]) -> shmsock::Result<()> {
        self.0.send(msg)
    }
    fn recv(&mut self, buf: &mut [u8]) -> shmsock::Result<usize> {
        self.1.recv(buf)
    }
}

impl Ends for (Publisher, Subscriber) {
    fn send(&mut self, msg: &[u8]) -> shmsock::Result<()> {
        self.0.send(msg)
    }
    fn recv(&mut self, buf: &mut [u8]) -> shmsock::Result<usize> {
        self.1.recv(buf)
    }
}

fn main() -> shmsock::Result<()> {
    let endpoint = format!("shm://hot-path-{}", std::process::id());
    let opts = Options::new().wait_strategy(WaitStrategy::BusyPoll);
    if std::env::args().nth(1).as_deref() == Some("pubsub") {
        let publisher = Publisher::bind_with(&endpoint, opts.clone())?;
        let subscriber = Subscriber::connect_with(&endpoint, opts)?;
        return measure((publisher, subscriber));
    }
    let listener = Listener::bind_with(&endpoint, opts.clone())?;
    let connector = {
        let (endpoint, opts) = (endpoint.clone(), opts.clone());
        std::thread::spawn(move || Conn::connect_with(&endpoint, opts))
    };
    let a = listener.accept_timeout(Duration::from_secs(10))?;
    let b = connector.join().expect("the connecting thread")?;
    measure((a, b))
}

fn measure(mut ends: impl Ends) -> shmsock::Result<()> {
    let n: u64 = env_or("N", 5_000_000);
    let rounds: u32 = env_or("ROUNDS", 5);
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    for round in 0..rounds {
        let start = Instant::now();
        for _ in 0..n {
            ends.send(&msg)?;
            ends.recv(&mut buf)?;
        }
        let single = start.elapsed().as_nanos() as f64 / n as f64;
        let start = Instant::now();
        for _ in 0..n {
            ends.send(&msg)?;
            ends.send(&msg)?;
            ends.recv(&mut buf)?;
            ends.recv(&mut buf)?;
        }
        let paired = start.elapsed().as_nanos() as f64 / (2 * n) as f64;
        println!(
            "round {round}: send + recv {single:.1} ns one at a time, {paired:.1} ns in pairs"
        );
    }
    Ok(())
}
