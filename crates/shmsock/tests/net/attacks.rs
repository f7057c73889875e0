//! Attacks on the `tcp://` transport by peers that speak just enough ZMTP to be let in, run
//! against a victim in another process whose memory we read from `/proc`.
//!
//! Threat model: whoever can reach a `tcp://` port can open connections and write any bytes
//! (the NULL mechanism authenticates nobody, ZMTP 3.1 (RFC 37)). Such a peer must not make
//! the victim allocate memory for bytes it has not been sent (frame lengths are announced
//! before the bytes follow), grow queues without end (of subscriptions, of frames that never
//! end a message, of replies to a peer that never reads), or keep honest peers from
//! connecting and being served (by opening connections and saying nothing, or saying it
//! slowly, or saying garbage). One `#[test]` per attack:
//!
//! 1. 40 SUB peers each announce a 60 MiB frame to a [`Publisher`] and send nothing more.
//! 2. One PAIR peer does the same to a [`Conn`] that is receiving.
//! 3. One SUB peer sends 20,000 SUBSCRIBE commands of 1 KiB each.
//! 4. Empty frames with the MORE flag, streamed for a few seconds as fast as the socket takes
//!    them, at a publisher and at a `Conn`: a message that never ends.
//! 5. A PING flood from a peer that never reads, so the victim's PONGs cannot be sent.
//! 6. 1,000 TCP connections that never say anything, at a publisher and at a [`Listener`].
//! 7. 12 connections drip-feeding a valid greeting (a byte every 200 ms) and 12 sending
//!    garbage, at a publisher and at a `Listener`.
//!
//! The bounds, for every attack:
//! - Memory tracks bytes actually received, never an announced length: the victim's RSS
//!   (`VmRSS`) grows by less than [`RSS_GROWTH_MAX`] (16 MiB), measured once the attack has
//!   run for [`ATTACK_TIME`] with every attacking connection still open.
//! - Honest peers connected before the attack keep being served: a tick from the publisher,
//!   an echo from the `Conn`, with no wait longer than [`HONEST_GAP_MAX`].
//! - Honest peers connecting during the attack (attacks 6 and 7) complete the handshake
//!   within [`HONEST_CONNECT_MAX`] (the target is ~100 ms; 1 s leaves room for a loaded
//!   2-core CI machine and is far below the 5 s [`HANDSHAKE_TIMEOUT`] that a victim serving
//!   handshakes one at a time makes them wait), and a `Listener` never returns the attackers'
//!   failed handshakes from `accept`: they are logged and dropped.
//!
//! A victim that passes the memory bound may either keep a peer within its limits or drop
//! it; both are fine (the attackers tolerate being cut off).
//!
//! How: the victim runs in a child process (this test binary re-executed, see
//! [`shmsock_testkit::harness::Peer`]), so its RSS is its own: a `Publisher` publishing a
//! tick every [`TICK_INTERVAL`], or a `Listener` whose accepted connections echo what they
//! receive. The attackers are raw [`TcpStream`]s of the test process writing ZMTP by hand
//! ([`crate::common::Raw`]); the honest peers are a `Subscriber` and a `Conn` on threads of
//! the test process. While an attack runs, a watchdog samples the victim's RSS every
//! [`SAMPLE_INTERVAL`]; past [`RSS_EMERGENCY`] it stops the attack early, so a victim that
//! does allocate what it is told never takes the machine's memory (the test fails all the
//! same). Every broken bound is collected and the test fails with all of them, so one run
//! shows everything an attack achieved. The attacks run one at a time ([`serial`]): each
//! loads a 2-core machine, and they assert timings.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::process::{Pid, Resource, Rlimit};
use shmsock::{Conn, Error, Listener, Publisher, Subscriber, HANDSHAKE_TIMEOUT};
use shmsock_testkit::child::{report, IDLE_MAX};
use shmsock_testkit::harness::{kill_pid, status_bytes, Peer, STEP_TIMEOUT};

use crate::common::{command, greeting, ready, Raw};

/// Most a victim's RSS may grow under an attack.
const RSS_GROWTH_MAX: u64 = 16 << 20;
/// RSS growth at which the watchdog stops an attack early (the bound is broken many times
/// over; going on would only take the machine's memory).
const RSS_EMERGENCY: u64 = 128 << 20;
/// How long an attack runs before the victim's RSS is measured.
const ATTACK_TIME: Duration = Duration::from_secs(3);
/// Longest an honest peer may wait for a tick or an echo while an attack runs.
const HONEST_GAP_MAX: Duration = Duration::from_secs(2);
/// Longest an honest peer's `connect` (TCP connect and ZMTP handshake) may take during an
/// attack.
const HONEST_CONNECT_MAX: Duration = Duration::from_secs(1);
/// How often the publisher victim publishes a tick.
const TICK_INTERVAL: Duration = Duration::from_millis(2);
/// How often the honest `Conn` asks for an echo.
const ECHO_INTERVAL: Duration = Duration::from_millis(10);
/// How often the watchdog reads the victim's RSS.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// How long the honest peers run before the victim's RSS is taken as the baseline.
const SETTLE: Duration = Duration::from_millis(300);
/// Longest one write of a flooding attacker waits, so it looks at the clock often.
const ATTACK_WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// The frame length attacks 1 and 2 announce (below the default `max_message_len`, so
/// the announcement alone is legal).
const ANNOUNCED_LEN: u64 = 60 << 20;

/// Serialises the attacks: each loads the machine and asserts timings.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds [`SERIAL`] for one attack (a failed attack does not poison the others).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (the silent-connection
/// attack holds 2,000 sockets on each side); returns the new soft limit.
fn raise_nofile_limit() -> u64 {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    rustix::process::setrlimit(Resource::Nofile, raised).expect("raising RLIMIT_NOFILE");
    limit.maximum.unwrap_or(u64::MAX)
}

/// Bytes as MiB, for messages.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

// ---- The victims' side (child processes) ---------------------------------------------------

/// The roles this binary runs as a child ([`shmsock_testkit::peer_main!`]): the victims.
pub fn run_role(role: &str, endpoint: &str) {
    raise_nofile_limit();
    match role {
        "publisher_victim" => publisher_victim(endpoint),
        "listener_victim" => listener_victim(endpoint),
        other => panic!("unknown role {other:?}"),
    }
}

/// Binds a `Publisher` at `endpoint`, reports `bound <endpoint>`, then publishes a 64-byte
/// tick (`tick` and a sequence number) every [`TICK_INTERVAL`] until killed.
fn publisher_victim(endpoint: &str) {
    let mut publisher =
        Publisher::bind(endpoint).unwrap_or_else(|e| panic!("binding {endpoint}: {e}"));
    report(format!("bound {}", publisher.endpoint()));
    let until = Instant::now() + IDLE_MAX;
    let mut tick = [0u8; 64];
    tick[..4].copy_from_slice(b"tick");
    let mut seq = 0u64;
    while Instant::now() < until {
        tick[4..12].copy_from_slice(&seq.to_be_bytes());
        if let Err(e) = publisher.send_timeout(&tick, HONEST_GAP_MAX) {
            eprintln!("publisher victim: tick {seq}: {e}");
        }
        seq += 1;
        std::thread::sleep(TICK_INTERVAL);
    }
}

/// Binds a `Listener` at `endpoint`, reports `bound <endpoint>`, then accepts until killed:
/// each accepted connection is reported (`accepted`) and echoes every message it receives
/// on a thread of its own; an error from `accept_timeout` is reported (`accept error: …`).
fn listener_victim(endpoint: &str) {
    let listener = Listener::bind(endpoint).unwrap_or_else(|e| panic!("binding {endpoint}: {e}"));
    report(format!("bound {}", listener.endpoint()));
    let until = Instant::now() + IDLE_MAX;
    while Instant::now() < until {
        match listener.accept_timeout(Duration::from_millis(100)) {
            Ok(conn) => {
                report("accepted");
                std::thread::spawn(move || echo(conn));
            }
            Err(Error::TimedOut) => {}
            Err(e) => {
                report(format!("accept error: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Receives messages and sends each back, until the connection ends.
fn echo(mut conn: Conn) {
    while let Ok(msg) = conn.recv_vec() {
        if conn.send(&msg).is_err() {
            return;
        }
    }
}

// ---- The parent's side: victims, honest peers, the watchdog --------------------------------

/// What a victim serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Publisher,
    Listener,
}

/// A victim child process: killed and reaped when dropped.
struct Victim {
    peer: Peer,
    kind: Kind,
    /// Where it is bound (`tcp://127.0.0.1:PORT`).
    endpoint: String,
}

impl Victim {
    /// Spawns a victim of `kind` on an ephemeral loopback port.
    fn spawn(kind: Kind) -> Victim {
        let role = match kind {
            Kind::Publisher => "publisher_victim",
            Kind::Listener => "listener_victim",
        };
        let mut peer = Peer::spawn(role, "tcp://127.0.0.1:0", &[]);
        let endpoint = peer.expect("bound");
        Victim {
            peer,
            kind,
            endpoint,
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Publisher => "publisher victim",
            Kind::Listener => "listener victim",
        }
    }

    /// Its resident memory, in bytes.
    fn rss(&self) -> u64 {
        rss_of(self.peer.pid())
    }

    /// How many fds it holds (a sign of how many connections it took in).
    fn fd_count(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.peer.pid().as_raw_nonzero());
        std::fs::read_dir(dir).map_or(0, Iterator::count)
    }

    fn addr(&self) -> SocketAddr {
        let addr = self.endpoint.trim_start_matches("tcp://");
        addr.parse()
            .unwrap_or_else(|e| panic!("{}: {addr:?} is not an address: {e}", self.endpoint))
    }

    /// The reports that arrived so far, waiting `linger` for more after the last one.
    fn reports(&mut self, linger: Duration) -> Vec<String> {
        std::iter::from_fn(|| self.peer.next_report(linger)).collect()
    }
}

/// How an honest peer fared since the attack started.
struct Stats {
    served: u64,
    last: Instant,
    longest_gap: Duration,
    error: Option<String>,
}

impl Stats {
    fn served(&mut self) {
        let now = Instant::now();
        self.longest_gap = self.longest_gap.max(now - self.last);
        self.last = now;
        self.served += 1;
    }
}

/// An honest peer of a victim, served on a thread of the test process until dropped.
struct Honest {
    what: String,
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Honest {
    /// A peer of `victim` of the kind it serves: a `Subscriber` of a publisher that counts
    /// ticks, a `Conn` to a listener that asks for an echo every [`ECHO_INTERVAL`].
    fn of(victim: &Victim) -> Honest {
        let ep = victim.endpoint.clone();
        match victim.kind {
            Kind::Publisher => {
                let mut sub = Subscriber::connect(&ep)
                    .unwrap_or_else(|e| panic!("honest Subscriber::connect to {ep}: {e}"));
                Honest::serve(
                    format!("the honest Subscriber of {ep}"),
                    move |stats, stop| {
                        let mut buf = [0u8; 256];
                        while !stop.load(Ordering::Relaxed) {
                            match sub.recv_timeout(&mut buf, Duration::from_millis(100)) {
                                Ok(n) if buf[..n].starts_with(b"tick") => lock(stats).served(),
                                Ok(n) => lock(stats).error = Some(format!("a {n}-byte non-tick")),
                                Err(Error::TimedOut) => {}
                                Err(e) => {
                                    lock(stats).error = Some(e.to_string());
                                    // It reconnects by itself; no need to spin meanwhile.
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                            }
                        }
                    },
                )
            }
            Kind::Listener => {
                let mut conn = Conn::connect(&ep)
                    .unwrap_or_else(|e| panic!("honest Conn::connect to {ep}: {e}"));
                Honest::serve(format!("the honest Conn to {ep}"), move |stats, stop| {
                    let mut buf = [0u8; 256];
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let msg = [&b"echo"[..], &seq.to_be_bytes()].concat();
                        let echoed = conn
                            .send_timeout(&msg, HONEST_GAP_MAX)
                            .and_then(|()| conn.recv_timeout(&mut buf, HONEST_GAP_MAX));
                        match echoed {
                            Ok(n) if buf[..n] == msg[..] => lock(stats).served(),
                            Ok(n) => {
                                lock(stats).error =
                                    Some(format!("echo {seq} came back as {n} other bytes"));
                                return;
                            }
                            Err(e) => {
                                lock(stats).error = Some(format!("echo {seq}: {e}"));
                                return;
                            }
                        }
                        seq += 1;
                        std::thread::sleep(ECHO_INTERVAL);
                    }
                })
            }
        }
    }

    fn serve(
        what: String,
        run: impl FnOnce(&Mutex<Stats>, &AtomicBool) + Send + 'static,
    ) -> Honest {
        let stats = Arc::new(Mutex::new(Stats {
            served: 0,
            last: Instant::now(),
            longest_gap: Duration::ZERO,
            error: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::spawn(move || run(&stats, &stop))
        };
        Honest {
            what,
            stats,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until it has been served at least once (before an attack: the setup works).
    fn wait_served(&self) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let s = lock(&self.stats);
            if s.served > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline && s.error.is_none(),
                "{} was not served within {STEP_TIMEOUT:?} before any attack: {:?}",
                self.what,
                s.error
            );
            drop(s);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts counting afresh: the attack begins.
    fn restart(&self) {
        let mut s = lock(&self.stats);
        s.served = 0;
        s.last = Instant::now();
        s.longest_gap = Duration::ZERO;
    }

    /// What is wrong with its service since [`Honest::restart`], if anything.
    fn finding(&self) -> Option<String> {
        let s = lock(&self.stats);
        let longest = s.longest_gap.max(s.last.elapsed());
        (s.served == 0 || longest >= HONEST_GAP_MAX).then(|| {
            format!(
                "{} was served {} times during the attack, waiting up to {longest:.2?} \
                 (bound {HONEST_GAP_MAX:?}){}",
                self.what,
                s.served,
                s.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; last error: {e}"))
            )
        })
    }
}

impl Drop for Honest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Locks `m`, even if a panicking thread poisoned it (the data stays meaningful).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One victim as the watchdog sees it.
#[derive(Clone)]
struct Watched {
    name: &'static str,
    pid: Pid,
    /// Its RSS before the attack.
    baseline: u64,
}

/// What the watchdog saw of one victim.
#[derive(Clone, Copy)]
struct Seen {
    /// The highest RSS read.
    peak: u64,
    /// Its RSS passed [`RSS_EMERGENCY`] and the watchdog killed it.
    killed: bool,
}

/// A running attack: its clock, the watchdog on the victims' RSS, and the broken bounds
/// found so far.
struct Attack {
    /// What the attack is, for its findings.
    label: String,
    started: Instant,
    watched: Vec<Watched>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// A victim's RSS passed [`RSS_EMERGENCY`]: the attack stops.
    tripped: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    watchdog: Option<JoinHandle<()>>,
    findings: Mutex<Vec<String>>,
}

impl Attack {
    /// Takes the victims' baselines and starts the clock and the watchdog, which kills a
    /// victim whose RSS grows past [`RSS_EMERGENCY`] (what it was told to allocate may
    /// still be coming in: gigabytes in attack 1) and stops the attack.
    fn start(label: &str, victims: &[&Victim]) -> Attack {
        let watched: Vec<Watched> = victims
            .iter()
            .map(|v| Watched {
                name: v.name(),
                pid: v.peer.pid(),
                baseline: v.rss(),
            })
            .collect();
        let seen: Vec<Seen> = watched
            .iter()
            .map(|w| Seen {
                peak: w.baseline,
                killed: false,
            })
            .collect();
        let seen = Arc::new(Mutex::new(seen));
        let tripped = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (watched, seen, tripped, stop) =
                (watched.clone(), seen.clone(), tripped.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (w, seen) in watched.iter().zip(lock(&seen).iter_mut()) {
                        if seen.killed {
                            continue;
                        }
                        let rss = rss_of(w.pid);
                        seen.peak = seen.peak.max(rss);
                        if rss > w.baseline + RSS_EMERGENCY {
                            kill_pid(w.pid);
                            seen.killed = true;
                            tripped.store(true, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(SAMPLE_INTERVAL);
                }
            })
        };
        Attack {
            label: label.to_owned(),
            started: Instant::now(),
            watched,
            seen,
            tripped,
            stop,
            watchdog: Some(watchdog),
            findings: Mutex::new(Vec::new()),
        }
    }

    /// The watchdog stopped the attack.
    fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }

    /// The attack goes on: less than `limit` since it started, and not stopped.
    fn running(&self, limit: Duration) -> bool {
        !self.tripped() && self.started.elapsed() < limit
    }

    /// Waits until `limit` after the start (or until the watchdog stops the attack).
    fn hold(&self, limit: Duration) {
        while self.running(limit) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Records a broken bound.
    fn fail(&self, finding: String) {
        lock(&self.findings).push(format!("[{}] {finding}", self.label));
    }

    /// Measures the victims' RSS against their baselines (the attack's connections still
    /// open) and stops the watchdog; returns whether it had to kill a victim.
    fn measure(&mut self) -> bool {
        let ran = self.started.elapsed();
        self.stop_watchdog();
        let seen = lock(&self.seen).clone();
        for (w, seen) in self.watched.iter().zip(seen) {
            let before = mib(w.baseline);
            if seen.killed {
                let peak = mib(seen.peak - w.baseline);
                eprintln!(
                    "{}: RSS {before:.1} MiB before, +{peak:.1} MiB: killed",
                    w.name
                );
                self.fail(format!(
                    "{}: RSS grew by {peak:.1} MiB within {ran:.1?} of attack (bound {} MiB); \
                     the watchdog killed it past +{} MiB, so honest peers were not checked",
                    w.name,
                    RSS_GROWTH_MAX >> 20,
                    RSS_EMERGENCY >> 20
                ));
                continue;
            }
            let rss = rss_of(w.pid);
            let growth = rss.saturating_sub(w.baseline);
            let summary = format!(
                "{}: RSS {before:.1} MiB before, {:.1} MiB after {ran:.1?} of attack \
                 (+{:.1} MiB, peak +{:.1} MiB)",
                w.name,
                mib(rss),
                mib(growth),
                mib(seen.peak.max(rss) - w.baseline)
            );
            eprintln!("{summary}");
            if growth >= RSS_GROWTH_MAX {
                self.fail(format!(
                    "{summary}: over the {} MiB bound",
                    RSS_GROWTH_MAX >> 20
                ));
            }
        }
        self.tripped()
    }

    fn stop_watchdog(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.watchdog.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop_watchdog();
    }
}

/// The RSS of process `pid`, in bytes.
fn rss_of(pid: Pid) -> u64 {
    status_bytes(&pid.as_raw_nonzero().to_string(), "VmRSS")
}

/// Runs `attack` (described by `label`) against `victims` while `honest` peers are served:
/// waits until each honest peer is served, takes the victims' baseline RSS, runs the attack
/// (which returns what it keeps open), measures the victims' RSS and checks the honest
/// peers, then closes the attack's connections. Returns every broken bound.
fn under_attack<H>(
    label: &str,
    victims: &[&Victim],
    honest: &[&Honest],
    attack: impl FnOnce(&Attack) -> H,
) -> Vec<String> {
    for h in honest {
        h.wait_served();
    }
    std::thread::sleep(SETTLE);
    let mut running = Attack::start(label, victims);
    for h in honest {
        h.restart();
    }
    let held = attack(&running);
    if !running.measure() {
        for finding in honest.iter().filter_map(|h| h.finding()) {
            running.fail(finding);
        }
    }
    drop(held);
    std::mem::take(
        running
            .findings
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner),
    )
}

#[track_caller]
fn assert_no_findings(findings: Vec<String>) {
    assert!(
        findings.is_empty(),
        "{} bound(s) broken:\n- {}",
        findings.len(),
        findings.join("\n- ")
    );
}

// ---- Attack helpers -------------------------------------------------------------------------

/// The 9-byte header of a long message frame announcing `len` bytes.
fn long_header(len: u64) -> Vec<u8> {
    [&[0x02u8][..], &len.to_be_bytes()].concat()
}

/// Whether a write error means only that the victim is not reading now.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Writes `pattern` (whole frames) over and over on `raw` while the attack runs (up to
/// `limit`), as fast as the socket takes it; a victim that closes the connection ends it.
/// Returns the connection, still open.
fn stream(a: &Attack, mut raw: Raw, pattern: &[u8], limit: Duration, what: &str) -> Raw {
    raw.0
        .set_write_timeout(Some(ATTACK_WRITE_TIMEOUT))
        .expect("setting a write timeout");
    let (mut at, mut sent) = (0, 0u64);
    let end = loop {
        if !a.running(limit) {
            break "the attack time ran out".to_owned();
        }
        match raw.0.write(&pattern[at..]) {
            Ok(n) => {
                sent += n as u64;
                at = (at + n) % pattern.len();
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => break format!("the victim closed the connection ({e})"),
        }
    };
    eprintln!("{what}: {:.1} MiB sent; {end}", mib(sent));
    raw
}

/// Writes all of `bytes` while the attack runs (up to `limit`); `Ok(false)` if it stopped
/// first, an error if the victim closed the connection.
fn write_while(
    a: &Attack,
    s: &mut TcpStream,
    mut bytes: &[u8],
    limit: Duration,
) -> std::io::Result<bool> {
    while !bytes.is_empty() {
        if !a.running(limit) {
            return Ok(false);
        }
        match s.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sends a PING and waits (while the attack runs, up to `limit`) for its PONG: the victim
/// has then read everything sent before it. Says how that went, for the log.
fn ping_through(a: &Attack, raw: &mut Raw, limit: Duration) -> String {
    const CONTEXT: &[u8] = b"read it all?";
    let ping = command("PING", &[&[0u8, 0][..], CONTEXT].concat());
    match write_while(a, &mut raw.0, &ping, limit) {
        Ok(true) => {}
        Ok(false) => return "the victim did not take a PING before the time ran out".into(),
        Err(e) => return format!("the victim closed the connection before the PING ({e})"),
    }
    raw.0
        .set_read_timeout(Some(ATTACK_WRITE_TIMEOUT))
        .expect("setting a read timeout");
    let pong = command("PONG", CONTEXT);
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    while a.running(limit) {
        match raw.0.read(&mut buf) {
            Ok(0) => return "the victim closed the connection".into(),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(pong.len()).any(|w| w == pong) {
                    return "the victim answered a PING sent after it".into();
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return format!("the victim closed the connection ({e})"),
        }
    }
    "no PONG before the time ran out".into()
}

/// Starts a TCP connection to `addr` without waiting for it to be established (a victim
/// that does not accept leaves it in the backlog or unanswered); it will never send a byte.
fn connect_without_waiting(addr: SocketAddr) -> TcpStream {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .unwrap_or_else(|e| panic!("socket() for a silent connection: {e}"));
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(Errno::INPROGRESS) => TcpStream::from(fd),
        Err(e) => panic!("connecting a silent connection to {addr}: {e}"),
    }
}

/// An honest peer connects to `victim` now, during the attack: it must complete the
/// handshake within [`HONEST_CONNECT_MAX`] and then be served (a tick, an echo) within
/// [`HONEST_GAP_MAX`].
fn honest_newcomer(a: &Attack, victim: &Victim) {
    let ep = &victim.endpoint;
    let started = Instant::now();
    let (call, connected) = match victim.kind {
        Kind::Publisher => (
            "Subscriber::connect",
            Subscriber::connect(ep).map(|mut sub| {
                let took = started.elapsed();
                (
                    took,
                    sub.recv_timeout(&mut [0u8; 256], HONEST_GAP_MAX).map(drop),
                )
            }),
        ),
        Kind::Listener => (
            "Conn::connect",
            Conn::connect(ep).map(|mut conn| {
                let took = started.elapsed();
                let mut buf = [0u8; 64];
                let echo = conn
                    .send_timeout(b"newcomer", HONEST_GAP_MAX)
                    .and_then(|()| conn.recv_timeout(&mut buf, HONEST_GAP_MAX))
                    .and_then(|n| match &buf[..n] {
                        b"newcomer" => Ok(()),
                        _ => Err(Error::Protocol {
                            endpoint: ep.clone(),
                            what: "the echo differs from what was sent".into(),
                        }),
                    });
                (took, echo)
            }),
        ),
    };
    let name = victim.name();
    match connected {
        Err(e) => a.fail(format!(
            "an honest {call} to the {name} failed after {:.2?} (bound {HONEST_CONNECT_MAX:?}, \
             handshake timeout {HANDSHAKE_TIMEOUT:?}): {e}",
            started.elapsed()
        )),
        Ok((took, served)) => {
            eprintln!("{name}: an honest {call} took {took:.2?}");
            if took >= HONEST_CONNECT_MAX {
                a.fail(format!(
                    "an honest {call} to the {name} took {took:.2?} (bound {HONEST_CONNECT_MAX:?})"
                ));
            }
            if let Err(e) = served {
                a.fail(format!(
                    "the {name} did not serve the honest peer of its {call} during the attack: {e}"
                ));
            }
        }
    }
}

/// Garbage opening `k` of a connection: things that are not a ZMTP 3.x NULL handshake a
/// victim could answer, from plain other protocols to handshakes that go wrong late.
fn garbage(k: usize) -> Vec<u8> {
    let g = greeting(1);
    match k % 12 {
        0 => b"GET / HTTP/1.1\r\nHost: victim\r\n\r\n".to_vec(),
        1 => vec![0u8; 64],
        // A TLS ClientHello's record header, then noise.
        2 => [&[0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01][..], &[0xAB; 58]].concat(),
        // A bad signature.
        3 => [&[0xFEu8][..], &g[1..]].concat(),
        // ZMTP 2.0.
        4 => [&g[..10], &[1u8, 0x00][..], &[0u8; 52]].concat(),
        // A mechanism we do not speak.
        5 => [&g[..12], b"CURVE\0\0\0", &g[20..]].concat(),
        // The wrong socket type.
        6 => [&g[..], &ready("DEALER")].concat(),
        // A message before READY.
        7 => [&g[..], &[0x00u8, 2, b'h', b'i'][..]].concat(),
        // An ERROR command instead of READY.
        8 => [&g[..], &command("ERROR", b"\x04nope")].concat(),
        // A READY announcing a terabyte.
        9 => [&g[..], &[0x06u8][..], &(1u64 << 40).to_be_bytes()].concat(),
        // READY without a Socket-Type.
        10 => [&g[..], &command("READY", b"")].concat(),
        // Noise (a linear congruential sequence).
        _ => (0u32..64)
            .scan(12_345u32, |x, _| {
                *x = x.wrapping_mul(1_103_515_245).wrapping_add(k as u32);
                Some((*x >> 16) as u8)
            })
            .collect(),
    }
}

// ---- The attacks ----------------------------------------------------------------------------

/// Attack 1: 40 SUB peers complete the handshake with a publisher, each announces a 60 MiB
/// frame and sends nothing more. A victim that sizes its buffers by the announcement holds
/// 40 × 60 MiB for bytes that never come.
#[test]
fn announced_frames_cost_a_publisher_nothing_until_their_bytes_arrive() {
    let _serial = serial();
    let victim = Victim::spawn(Kind::Publisher);
    let honest = Honest::of(&victim);
    let label = "40 SUB peers announcing 60 MiB frames";
    let findings = under_attack(label, &[&victim], &[&honest], |a| {
        let mut held = Vec::new();
        while held.len() < 40 && !a.tripped() {
            let mut raw = Raw::connect(&victim.endpoint, "SUB", 1);
            raw.send(&long_header(ANNOUNCED_LEN));
            held.push(raw);
            // One at a time, so the watchdog can stop a victim that allocates.
            std::thread::sleep(Duration::from_millis(25));
        }
        eprintln!(
            "{} peers announced {} MiB each",
            held.len(),
            ANNOUNCED_LEN >> 20
        );
        a.hold(ATTACK_TIME);
        held
    });
    assert_no_findings(findings);
}

/// Attack 2: a PAIR peer announces a 60 MiB frame to a `Conn` looping in `recv` and sends
/// nothing more: `recv` just waits.
#[test]
fn an_announced_frame_costs_a_receiving_conn_nothing_until_its_bytes_arrive() {
    let _serial = serial();
    let victim = Victim::spawn(Kind::Listener);
    let honest = Honest::of(&victim);
    let label = "a PAIR peer announcing a 60 MiB frame";
    let findings = under_attack(label, &[&victim], &[&honest], |a| {
        let mut raw = Raw::connect(&victim.endpoint, "PAIR", 1);
        raw.send(&long_header(ANNOUNCED_LEN));
        a.hold(ATTACK_TIME);
        raw
    });
    assert_no_findings(findings);
}

/// Attack 3: one SUB peer sends 20,000 SUBSCRIBE commands of 1 KiB (20 MiB of prefixes that
/// match no tick). The publisher must keep them within its limits or drop that peer; other
/// subscribers are not affected.
#[test]
fn a_subscription_flood_is_capped_and_other_subscribers_carry_on() {
    const SUBSCRIPTIONS: u32 = 20_000;
    /// The flood may take this long to be written (the victim reads at its own pace).
    const SEND_LIMIT: Duration = Duration::from_secs(8);
    let _serial = serial();
    let victim = Victim::spawn(Kind::Publisher);
    let honest = Honest::of(&victim);
    let label = "20,000 SUBSCRIBE commands of 1 KiB";
    let findings = under_attack(label, &[&victim], &[&honest], |a| {
        let mut raw = Raw::connect(&victim.endpoint, "SUB", 1);
        raw.0
            .set_write_timeout(Some(ATTACK_WRITE_TIMEOUT))
            .expect("setting a write timeout");
        let mut batch = Vec::new();
        let mut outcome = format!("all {SUBSCRIPTIONS} written");
        for k in 0..SUBSCRIPTIONS {
            // 0xFF first: no tick matches, so the flooder (which never reads) is sent nothing.
            let mut prefix = vec![0xA5u8; 1024];
            prefix[0] = 0xFF;
            prefix[1..5].copy_from_slice(&k.to_be_bytes());
            batch.extend_from_slice(&command("SUBSCRIBE", &prefix));
            if batch.len() < 256 * 1024 && k + 1 < SUBSCRIPTIONS {
                continue;
            }
            match write_while(a, &mut raw.0, &batch, SEND_LIMIT) {
                Ok(true) => batch.clear(),
                Ok(false) => {
                    outcome = format!("stopped after {SEND_LIMIT:?} or by the watchdog, at {k}");
                    break;
                }
                Err(e) => {
                    outcome = format!("the publisher dropped the flooder at about {k} ({e})");
                    break;
                }
            }
        }
        // Wait until the victim has read the whole flood, not just until the kernel took it.
        let processed = ping_through(a, &mut raw, SEND_LIMIT);
        eprintln!("subscription flood: {outcome}; {processed}");
        a.hold(ATTACK_TIME);
        raw
    });
    assert_no_findings(findings);
}

/// Attack 4: a message that never ends. Empty frames with the MORE flag (`01 00`), streamed
/// as fast as the socket takes them for [`ATTACK_TIME`], at a publisher (from a SUB) and
/// then at a `Conn` (from a PAIR).
#[test]
fn an_endless_multipart_message_is_bounded_at_a_publisher_and_a_conn() {
    let _serial = serial();
    let pattern = [1u8, 0].repeat(32 * 1024);
    let mut findings = Vec::new();
    for (kind, ty) in [(Kind::Publisher, "SUB"), (Kind::Listener, "PAIR")] {
        let victim = Victim::spawn(kind);
        let honest = Honest::of(&victim);
        let label = format!("an endless message at the {}", victim.name());
        findings.extend(under_attack(&label, &[&victim], &[&honest], |a| {
            let raw = Raw::connect(&victim.endpoint, ty, 1);
            stream(a, raw, &pattern, ATTACK_TIME, &label)
        }));
    }
    assert_no_findings(findings);
}

/// Attack 5: a PING flood (with a 16-byte context to echo) from a peer that never reads, so
/// its receive buffer fills and the victim's PONGs cannot be sent; at a publisher and then
/// at a `Conn`.
#[test]
fn a_ping_flood_from_a_peer_that_never_reads_is_bounded() {
    let _serial = serial();
    // TTL 0, then the context.
    let ping = command("PING", &[&[0u8, 0][..], b"0123456789abcdef"].concat());
    let pattern = ping.repeat(64 * 1024 / ping.len());
    let mut findings = Vec::new();
    for (kind, ty) in [(Kind::Publisher, "SUB"), (Kind::Listener, "PAIR")] {
        let victim = Victim::spawn(kind);
        let honest = Honest::of(&victim);
        let label = format!("a PING flood at the {}", victim.name());
        findings.extend(under_attack(&label, &[&victim], &[&honest], |a| {
            let raw = Raw::connect(&victim.endpoint, ty, 1);
            stream(a, raw, &pattern, ATTACK_TIME, &label)
        }));
    }
    assert_no_findings(findings);
}

/// Attack 6: 1,000 TCP connections that never send a byte, at a publisher and at a
/// `Listener` (each in its own process). Honest peers connecting meanwhile complete their
/// handshake at once, and the silent connections cost the victims little memory.
#[test]
fn a_thousand_silent_connections_leave_room_for_honest_peers() {
    const SILENT: usize = 1_000;
    let _serial = serial();
    let nofile = raise_nofile_limit();
    assert!(
        nofile >= 2 * SILENT as u64 + 200,
        "RLIMIT_NOFILE allows {nofile} fds; this test needs {}: raise the hard limit \
         (ulimit -Hn)",
        2 * SILENT + 200
    );
    let (publisher, listener) = (
        Victim::spawn(Kind::Publisher),
        Victim::spawn(Kind::Listener),
    );
    let honest = [Honest::of(&publisher), Honest::of(&listener)];
    let honest: Vec<&Honest> = honest.iter().collect();
    let victims = [&publisher, &listener];
    let label = "1,000 silent connections at each victim";
    let findings = under_attack(label, &victims, &honest, |a| {
        let silent: Vec<TcpStream> = victims
            .iter()
            .flat_map(|v| (0..SILENT).map(|_| connect_without_waiting(v.addr())))
            .collect();
        // Time for a victim that accepts to take them in.
        std::thread::sleep(Duration::from_millis(500));
        for v in victims {
            eprintln!(
                "{}: {SILENT} silent connections; it holds {} fds",
                v.name(),
                v.fd_count()
            );
            honest_newcomer(a, v);
        }
        a.hold(ATTACK_TIME);
        silent
    });
    assert_no_findings(findings);
}

/// Attack 7: 12 connections drip-feed a valid greeting (a byte every 200 ms) and 12 send
/// garbage, at a publisher and at a `Listener`. An honest peer connecting meanwhile
/// completes its handshake at once, and the `Listener`'s `accept_timeout` returns only the
/// honest connections: failed handshakes are logged and dropped, never returned.
#[test]
fn drip_fed_and_garbage_handshakes_hold_up_no_honest_peer() {
    const EACH: usize = 12;
    const DRIP_INTERVAL: Duration = Duration::from_millis(200);
    let _serial = serial();
    let (publisher, mut listener) = (
        Victim::spawn(Kind::Publisher),
        Victim::spawn(Kind::Listener),
    );
    let honest = [Honest::of(&publisher), Honest::of(&listener)];
    let honest: Vec<&Honest> = honest.iter().collect();
    let victims = [&publisher, &listener];
    let label = "12 drip-fed and 12 garbage handshakes at each victim";
    let findings = under_attack(label, &victims, &honest, |a| {
        let mut garbage_peers = Vec::new();
        let mut drip_peers = Vec::new();
        for v in victims {
            for k in 0..EACH {
                let mut s = TcpStream::connect(v.addr())
                    .unwrap_or_else(|e| panic!("connecting to the {}: {e}", v.name()));
                // The victim may already have hung up: that is fine.
                let _ = s.write_all(&garbage(k));
                garbage_peers.push(s);
                drip_peers.push(
                    TcpStream::connect(v.addr())
                        .unwrap_or_else(|e| panic!("connecting to the {}: {e}", v.name())),
                );
            }
        }
        std::thread::scope(|scope| {
            let drip = &mut drip_peers;
            scope.spawn(move || {
                let g = greeting(1);
                let mut at = 0;
                while a.running(ATTACK_TIME) && at < g.len() {
                    for s in drip.iter_mut() {
                        let _ = s.write_all(&g[at..at + 1]);
                    }
                    at += 1;
                    std::thread::sleep(DRIP_INTERVAL);
                }
            });
            // Some bytes have dripped: the victims are (or would be) in those handshakes.
            std::thread::sleep(Duration::from_millis(500));
            for v in victims {
                honest_newcomer(a, v);
            }
        });
        (garbage_peers, drip_peers)
    });
    // The attackers are gone now; give the listener a moment to see their handshakes fail.
    let reports = listener.reports(Duration::from_millis(500));
    let errors: Vec<&String> = reports
        .iter()
        .filter(|r| r.starts_with("accept error"))
        .collect();
    let accepted = reports.iter().filter(|r| *r == "accepted").count();
    let mut findings = findings;
    if !errors.is_empty() {
        findings.push(format!(
            "[{label}] the listener victim's accept_timeout returned {} errors for the attackers \
             (failed handshakes must be logged and dropped), e.g. {:?}",
            errors.len(),
            errors[0]
        ));
    }
    // The honest Conn from before the attack, then the newcomer.
    if accepted != 2 {
        findings.push(format!(
            "[{label}] the listener victim accepted {accepted} connections, not the 2 honest ones"
        ));
    }
    assert_no_findings(findings);
}
