//! An idle async process uses (almost) no CPU: no polling thread, no spinning.

use std::time::{Duration, Instant};

use shmsock::{AsyncConn, AsyncListener, Error};

use crate::roles::IDLE;
use crate::{endpoint, SCHEMES};
use shmsock_testkit::child::report;
use shmsock_testkit::harness::Peer;

/// Bound on the CPU an idle process may use while its echo server and client both wait in
/// `recv`, in percent of one core. The example `async_echo` holds itself to 1 %; this is
/// generous for a loaded CI machine, yet a receiver that spins or polls would use 50–100 %.
const IDLE_CPU_MAX_PERCENT: f64 = 10.0;

/// CPU time (user + system) of this process so far, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("the command ends with ')'") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the command.
    let ticks = |i: usize| -> u64 { fields[i].parse().expect("a tick count") };
    let hz = rustix::param::clock_ticks_per_second();
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

/// Runs an async echo server and client on `endpoint`, checks a few round trips, then
/// leaves both waiting in `recv` for [`IDLE`] and reports (`cpu <percent>`) the CPU this
/// process used meanwhile, in percent of the wall time; then checks that the connection
/// still works and closes it. (The child role of the test below.)
pub async fn echo_then_idle(endpoint: &str) {
    let mut listener = AsyncListener::bind(endpoint).expect("bind");
    let endpoint = listener.endpoint().to_owned();
    let server = tokio::spawn(async move {
        let mut conn = listener.accept().await?;
        let mut buf = vec![0u8; 4096];
        loop {
            match conn.recv(&mut buf).await {
                Ok(n) => conn.send(&buf[..n]).await?,
                Err(e) if e.is_disconnect() => return Ok::<_, Error>(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut client = AsyncConn::connect(&endpoint).await.expect("connect");
    for i in 0..100u32 {
        client.send(&i.to_le_bytes()).await.expect("send");
        assert_eq!(client.recv_vec().await.expect("recv"), i.to_le_bytes());
    }
    let (cpu, wall) = (cpu_time(), Instant::now());
    let idle = tokio::time::timeout(IDLE, client.recv_vec()).await;
    let (cpu, wall) = (cpu_time() - cpu, wall.elapsed());
    assert!(idle.is_err(), "received {idle:?}, though nothing was sent");
    report(format_args!(
        "cpu {}",
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    ));
    client.send(b"still there").await.expect("send");
    assert_eq!(client.recv_vec().await.expect("recv"), b"still there");
    drop(client);
    server.await.expect("server task").expect("server");
}

#[test]
fn an_idle_async_echo_uses_almost_no_cpu() {
    // One child per scheme, in parallel: each measures only its own process.
    let mut peers: Vec<(&str, Peer)> = SCHEMES
        .iter()
        .map(|&s| (s, Peer::spawn("async_echo_idle", &endpoint(s, "idle"), &[])))
        .collect();
    for (scheme, peer) in &mut peers {
        let percent: f64 = peer
            .expect("cpu")
            .parse()
            .expect("the child reports a percentage");
        println!("{scheme}: idle CPU {percent:.2} % of one core");
        assert!(
            percent < IDLE_CPU_MAX_PERCENT,
            "{scheme}: an idle async echo used {percent:.2} % CPU (bound {IDLE_CPU_MAX_PERCENT} %)"
        );
        peer.wait_success();
    }
}
