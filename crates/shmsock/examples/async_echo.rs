//! An async echo server and client on one tokio runtime, then a check that an idle async
//! connection costs no CPU.
//!
//! ```sh
//! cargo run -p shmsock --features tokio --example async_echo                    # shm://
//! cargo run -p shmsock --features tokio --example async_echo tcp://127.0.0.1:0
//! cargo run -p shmsock --features tokio --example async_echo unix:///tmp/echo.sock
//! ```
//!
//! The client sends 1000 messages of growing size and checks every echo; then both tasks
//! wait in `recv` for 2 s with nothing to read, while the example measures the CPU time
//! this process used meanwhile (`/proc/self/stat`, utime + stime). It exits non-zero if
//! that is 1 % of the wall time or more, or if any echo is wrong.

use std::time::{Duration, Instant};

use shmsock::{AsyncConn, AsyncListener};

/// How long both sides stay idle while the CPU time is measured.
const IDLE: Duration = Duration::from_secs(2);
/// Most CPU an idle process may use, in percent of one core.
const IDLE_CPU_MAX_PERCENT: f64 = 1.0;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("shm://async-echo-{}", std::process::id()));
    let mut listener = AsyncListener::bind(&endpoint)?;
    // For tcp://…:0, the port the OS chose.
    let endpoint = listener.endpoint().to_owned();

    let server = tokio::spawn(async move {
        let mut conn = listener.accept().await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match conn.recv(&mut buf).await {
                Ok(n) => conn.send(&buf[..n]).await?,
                // The client closed (or died): everything it sent was echoed.
                Err(e) if e.is_disconnect() => return Ok::<_, shmsock::Error>(()),
                Err(e) => return Err(e),
            }
        }
    });

    let mut client = AsyncConn::connect(&endpoint).await?;
    let started = Instant::now();
    for i in 0..1000u32 {
        let msg: Vec<u8> = (0..(i % 512 + 4)).map(|b| (b ^ i) as u8).collect();
        client.send(&msg).await?;
        let echo = client.recv_vec().await?;
        if echo != msg {
            return Err(format!("echo {i} differs from what was sent").into());
        }
    }
    println!(
        "{endpoint}: 1000 echoes in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    // Idle: the server waits in recv, and so does the client (until the timeout cancels it).
    let cpu_before = cpu_time()?;
    let wall = Instant::now();
    let idle = tokio::time::timeout(IDLE, client.recv_vec()).await;
    let (cpu, wall) = (cpu_time()? - cpu_before, wall.elapsed());
    if idle.is_ok() {
        return Err("received a message nobody sent".into());
    }
    let percent = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!(
        "idle for {:.2} s: {:.1} ms of CPU ({percent:.2} % of one core)",
        wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e3
    );

    // The cancelled recv lost nothing and broke nothing.
    client.send(b"bye").await?;
    if client.recv_vec().await? != b"bye" {
        return Err("wrong echo after the idle period".into());
    }
    drop(client);
    server.await??;

    if percent >= IDLE_CPU_MAX_PERCENT {
        return Err(format!("idle CPU {percent:.2} % >= {IDLE_CPU_MAX_PERCENT} %").into());
    }
    Ok(())
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat`.
fn cpu_time() -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let hz = rustix::param::clock_ticks_per_second();
    Ok(Duration::from_micros(
        (ticks(11) + ticks(12)) * 1_000_000 / hz,
    ))
}
