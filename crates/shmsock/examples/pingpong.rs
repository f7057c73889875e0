//! Round trips between two processes over `shm://`, pinned to CPUs 0 and 1.
//!
//! ```sh
//! cargo run --release -p shmsock --example pingpong -- [busy|adaptive|blocking] [SIZE] [SECONDS]
//! ```
//!
//! `RING=BYTES` sets the ring capacity.
//!
//! Prints min/p50/p99/p99.9 of the round trip. (`shmsock lab` compares this with the
//! hardware floor and other mechanisms; this example is the minimal version.)

use std::time::{Duration, Instant};

use shmsock::{Conn, Listener, Options, WaitStrategy};

/// Kills and reaps the pong process however `main` ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn options(mode: &str) -> Options {
    let wait = match mode {
        "busy" => WaitStrategy::BusyPoll,
        "blocking" => WaitStrategy::Blocking,
        _ => WaitStrategy::Adaptive,
    };
    let ring = std::env::var("RING")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(shmsock::RING_CAPACITY_DEFAULT_BYTES);
    Options::new().wait_strategy(wait).ring_capacity(ring)
}

fn main() -> shmsock::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--pong") {
        // Child: echo every message back until the parent closes.
        pin(1);
        let mut conn = Conn::connect_with(&args[2], options(&args[3]))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match conn.recv(&mut buf) {
                Ok(n) => conn.send(&buf[..n])?,
                Err(e) if e.is_disconnect() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
    let mode = args.get(1).cloned().unwrap_or_else(|| "busy".into());
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    pin(0);
    let endpoint = format!("shm://pingpong-{}", std::process::id());
    let listener = Listener::bind_with(&endpoint, options(&mode))?;
    let child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["--pong", &endpoint, &mode])
        .spawn()
        .expect("spawn the pong process");
    let _reap = Reap(child);
    let mut conn = listener.accept_timeout(Duration::from_secs(10))?;
    let msg = vec![7u8; size];
    let mut buf = vec![0u8; size.max(1)];
    let mut rtts = Vec::with_capacity(1 << 22);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut i = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        conn.send(&msg)?;
        conn.recv(&mut buf)?;
        if i >= 1000 {
            rtts.push(t.elapsed().as_nanos() as u64);
        }
        i += 1;
    }
    drop(conn);
    rtts.sort_unstable();
    let q = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize];
    println!(
        "{mode} {size} B: {} round trips, RTT min {} ns, p50 {} ns, p99 {} ns, p99.9 {} ns",
        rtts.len(),
        rtts[0],
        q(0.5),
        q(0.99),
        q(0.999)
    );
    Ok(())
}
