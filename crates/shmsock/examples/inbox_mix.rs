//! What a `tcp://` endpoint bound beside an `shm://` one costs the `shm://` writers of an
//! [`Inbox`]: their throughput (one writer thread streaming 64-byte messages) and their
//! wake-up latency (a writer sending a timestamped message every 200 µs while the inbox
//! sleeps in between), for three set-ups: `shm://` alone, `shm://` plus an idle `tcp://`
//! endpoint, and `shm://` plus a `tcp://` endpoint with a writer sending a message every
//! 100 µs (at most 10,000 a second).
//!
//! ```sh
//! cargo run --release -p shmsock --example inbox_mix
//! ```
//! Writers are threads of this process (the inbox cannot tell: each has its own
//! connection); numbers from a loaded machine are noisy, compare the rows of one run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmsock::{Conn, Inbox, Options};

const STREAM_MESSAGES: u64 = 2_000_000;
const PACED_MESSAGES: u64 = 5_000;
const PACED_GAP: Duration = Duration::from_micros(200);

fn main() -> shmsock::Result<()> {
    std::env::set_var(
        "SHMSOCK_RUNTIME_DIR",
        shmsock::test_support::runtime_dir("shmsock-inbox-mix-"),
    );
    println!("setup                         shm stream msgs/s   shm wake p50    p99");
    for (label, tcp, busy) in [
        ("shm:// alone", false, false),
        ("shm:// + idle tcp://", true, false),
        ("shm:// + tcp:// every 100µs", true, true),
    ] {
        let name = format!("shm://inbox-mix-{}", std::process::id());
        let mut endpoints = vec![name.as_str()];
        if tcp {
            endpoints.push("tcp://127.0.0.1:0");
        }
        let mut inbox = Inbox::bind_all(&endpoints, Options::new())?;
        let stop = Arc::new(AtomicBool::new(false));
        let background = busy.then(|| {
            let (ep, stop) = (inbox.endpoints()[1].clone(), stop.clone());
            std::thread::spawn(move || -> shmsock::Result<u64> {
                let mut conn = Conn::connect(&ep)?;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    conn.send(&[1u8; 64])?;
                    n += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
                Ok(n)
            })
        });
        let throughput = stream(&mut inbox, &name)?;
        let (p50, p99) = paced(&mut inbox, &name)?;
        stop.store(true, Ordering::Relaxed);
        println!("{label:<29} {throughput:>17.0}   {p50:>8.1?} {p99:>8.1?}");
        drop(inbox);
        if let Some(t) = background {
            let _ = t.join();
        }
    }
    Ok(())
}

/// Messages of the background tcp:// writer are counted out (they start with 1).
fn recv_shm(inbox: &mut Inbox, buf: &mut [u8]) -> shmsock::Result<usize> {
    loop {
        let n = inbox.recv(buf)?;
        if buf[0] != 1 {
            return Ok(n);
        }
    }
}

fn stream(inbox: &mut Inbox, ep: &str) -> shmsock::Result<f64> {
    let ep = ep.to_owned();
    let writer = std::thread::spawn(move || -> shmsock::Result<()> {
        let mut conn = Conn::connect(&ep)?;
        for _ in 0..STREAM_MESSAGES {
            conn.send(&[0u8; 64])?;
        }
        Ok(())
    });
    let mut buf = [0u8; 64];
    recv_shm(inbox, &mut buf)?;
    let t = Instant::now();
    for _ in 1..STREAM_MESSAGES {
        recv_shm(inbox, &mut buf)?;
    }
    let rate = (STREAM_MESSAGES - 1) as f64 / t.elapsed().as_secs_f64();
    writer.join().expect("writer thread")?;
    Ok(rate)
}

fn paced(inbox: &mut Inbox, ep: &str) -> shmsock::Result<(Duration, Duration)> {
    let ep = ep.to_owned();
    let origin = Instant::now();
    let writer = std::thread::spawn(move || -> shmsock::Result<()> {
        let mut conn = Conn::connect(&ep)?;
        for i in 0..PACED_MESSAGES {
            let due = origin + PACED_GAP * (i as u32 + 1);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let sent = origin.elapsed().as_nanos() as u64;
            let mut msg = [2u8; 16];
            msg[8..].copy_from_slice(&sent.to_le_bytes());
            conn.send(&msg)?;
        }
        Ok(())
    });
    let mut buf = [0u8; 64];
    let mut delays = Vec::with_capacity(PACED_MESSAGES as usize);
    for _ in 0..PACED_MESSAGES {
        recv_shm(inbox, &mut buf)?;
        let sent = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
        delays.push(origin.elapsed().saturating_sub(Duration::from_nanos(sent)));
    }
    writer.join().expect("writer thread")?;
    delays.sort();
    Ok((delays[delays.len() / 2], delays[delays.len() * 99 / 100]))
}
