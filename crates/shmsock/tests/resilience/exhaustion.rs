//! Resource exhaustion: too few fds (RLIMIT_NOFILE), a failing memfd/ftruncate/mmap
//! (RLIMIT_FSIZE, RLIMIT_AS), a 1 GiB ring, and thousands of connections opened and
//! closed. Every failure must be a typed error with a context naming what failed; nothing
//! may panic, raise SIGBUS or leak.

use std::time::{Duration, Instant};

use rustix::process::{Resource, Rlimit};
use shmsock::{Conn, Error, Listener, Options};

use crate::leaks;
use crate::roles::RING_ENV;
use shmsock_testkit::child::report;
use shmsock_testkit::harness::{self, Peer, Verdict, STEP_TIMEOUT};

fn set_soft_limit(resource: Resource, soft: Option<u64>) -> Rlimit {
    let old = rustix::process::getrlimit(resource);
    rustix::process::setrlimit(
        resource,
        Rlimit {
            current: soft,
            maximum: old.maximum,
        },
    )
    .expect("setrlimit");
    old
}

/// The RLIMIT_NOFILE that leaves exactly `free` fds to open: the limit caps fd *numbers*
/// and new fds take the lowest free number, so count the holes below it too.
fn limit_leaving(free: u64) -> u64 {
    let open: std::collections::BTreeSet<u64> = leaks::open_fds()
        .iter()
        .map(|(n, _)| u64::from(*n))
        .collect();
    let mut holes = 0;
    (0..)
        .find(|n| {
            if open.contains(n) {
                return false;
            }
            holes += 1;
            holes > free
        })
        .expect("a limit")
}

/// One line describing an outcome, for the parent.
fn describe<T>(r: &shmsock::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => describe_error(e),
    }
}

/// One line describing an error, for the parent.
fn describe_error(e: &Error) -> String {
    match e {
        Error::Io { context, source } => format!("io {:?} | {context}", source.raw_os_error()),
        e => format!("other {e:?}"),
    }
}

/// Child: connects (and binds) with the fd limit at 0..8 free fd numbers; reports each
/// outcome and whether any fd leaked.
pub fn nofile_connect_child(ep: &str) {
    for headroom in 0..8u64 {
        let before = leaks::fd_count();
        let limit = limit_leaving(headroom);
        let old = set_soft_limit(Resource::Nofile, Some(limit));
        let connected = Conn::connect(ep);
        let line = describe(&connected);
        drop(connected);
        let bound = Listener::bind(&format!("{ep}-bind{headroom}"));
        let bind_line = describe(&bound);
        drop(bound);
        rustix::process::setrlimit(Resource::Nofile, old).expect("restoring RLIMIT_NOFILE");
        let leaked = leaks::fd_count() as i64 - before as i64;
        report(format!(
            "headroom {headroom} leaked {leaked} connect {line}"
        ));
        report(format!("headroom {headroom} bind {bind_line}"));
    }
    report("done");
}

/// Child: a listener that accepts one connection per round with 0..4 free fd numbers.
pub fn nofile_accept_child(ep: &str) {
    // Short handshakes, so the ones under way when a round ends expire quickly.
    let listener = Listener::bind_with(ep, Options::new().handshake_timeout(NOFILE_HANDSHAKE))
        .unwrap_or_else(|e| panic!("binding {ep}: {e}"));
    for headroom in 0..4u64 {
        // The listener makes a spare segment for its next connection before it waits with
        // no handshake under way: let it, so that the baseline holds it.
        let _ = listener.accept_timeout(Duration::from_millis(1));
        let before = leaks::fd_count();
        let old = set_soft_limit(Resource::Nofile, Some(limit_leaving(headroom)));
        report(format!("round {headroom}"));
        // A connector whose handshake we cannot afford is dropped (logged), not an error.
        let (verdict, _) = harness::verdict_within(&listener, STEP_TIMEOUT / 4);
        let line = match &verdict {
            Verdict::Accepted(_) => "ok".to_owned(),
            Verdict::Dropped(warning) => format!("dropped {warning}"),
            Verdict::Failed(e) => describe_error(e),
            Verdict::Nothing => "nothing came".to_owned(),
        };
        drop(verdict);
        rustix::process::setrlimit(Resource::Nofile, old).expect("restoring RLIMIT_NOFILE");
        // Handshakes still under way hold their socket and segment until their deadline:
        // let them end (a connection that completes now is closed at once).
        let drain = Instant::now() + 2 * NOFILE_HANDSHAKE;
        while Instant::now() < drain {
            let _ = listener.accept_timeout(NOFILE_HANDSHAKE / 4);
        }
        let leaked = leaks::fd_count() as i64 - before as i64;
        report(format!("accepted leaked {leaked} {line}"));
    }
}

/// The handshake deadline of the listener under RLIMIT_NOFILE.
const NOFILE_HANDSHAKE: Duration = Duration::from_millis(300);

/// Runs the connect/bind sweep in a child; returns its report lines.
fn nofile_sweep() -> Vec<String> {
    let ep = harness::endpoint("nofile");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn("nofile_connect", &ep, &[]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let lines = std::thread::scope(|s| {
        s.spawn(|| {
            // Accept whatever arrives; a connector that failed mid-handshake is an error here.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = listener.accept_timeout(Duration::from_millis(50));
            }
        });
        let mut lines = Vec::new();
        loop {
            let line = peer.expect("");
            if line == "done" {
                break;
            }
            lines.push(line);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        lines
    });
    peer.wait_success();
    for line in &lines {
        eprintln!("nofile: {line}");
        if line.contains(" connect ") {
            assert!(line.contains("leaked 0 "), "fds leaked: {line}");
        }
        if let Some((_, context)) = line.split_once(" | ") {
            assert!(
                context.contains(&ep),
                "the context names the endpoint: {line}"
            );
            assert!(line.contains("Some(24)"), "EMFILE expected: {line}");
        }
    }
    let works = |what: &str| lines.iter().any(|l| l.ends_with(&format!("{what} ok")));
    assert!(
        works("connect") && works("bind"),
        "with enough fds both work: {lines:?}"
    );
    lines
}

/// Under fd exhaustion connect and bind never panic and leak nothing; every failure is a
/// typed error (`Io` with EMFILE and a context naming the endpoint and the step), including
/// the fd the kernel could not install with the peer's hello (MSG_CTRUNC with no fd).
#[test]
fn connect_and_bind_under_rlimit_nofile_return_typed_errors_and_leak_nothing() {
    let _serial = crate::serial();
    for line in nofile_sweep() {
        assert!(!line.contains("other "), "not an Io(EMFILE) error: {line}");
    }
}

/// The listener side: a listener out of fds refuses (or drops) the connector with a typed
/// error; the connector is told why (`Refused`) or gets a typed handshake error.
#[test]
fn accept_under_rlimit_nofile_refuses_with_typed_errors() {
    let _serial = crate::serial();
    let ep = harness::endpoint("nofile-accept");
    let mut peer = Peer::spawn("nofile_accept", &ep, &[]);
    let mut connected = Vec::new();
    for _ in 0..4 {
        peer.expect("round");
        let r = Conn::connect(&ep);
        let ours = match &r {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::Refused { .. }
                            | Error::Handshake { .. }
                            | Error::Io { .. }
                            // The child's accept that failed with EMFILE left our connect
                            // queued, so rounds shift by one and the last connect may find
                            // the child gone.
                            | Error::ConnectionRefused { .. }
                    ),
                    "{e:?}"
                );
                format!("{e}")
            }
        };
        drop(r);
        let theirs = peer.expect("accepted");
        eprintln!("nofile accept: listener {theirs} / connector: {ours}");
        assert!(
            theirs.starts_with("leaked 0 "),
            "the listener leaked: {theirs}"
        );
        assert!(!theirs.contains("other "), "an untyped failure: {theirs}");
        connected.push(ours == "ok");
    }
    peer.wait_success();
    assert!(connected.iter().any(|&c| c), "with enough fds accept works");
}

/// Child: RLIMIT_FSIZE below the segment size, SIGXFSZ ignored: ftruncate of our memfd
/// fails with EFBIG, which must come back as a typed error.
pub fn fsize_child(ep: &str) {
    // SAFETY: setting a signal disposition to SIG_IGN has no handler to get wrong.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    set_soft_limit(Resource::Fsize, Some(4096));
    report(format!("connect {}", describe(&Conn::connect(ep))));
}

#[test]
fn memfd_that_cannot_be_sized_is_a_typed_error() {
    let _serial = crate::serial();
    let ep = harness::endpoint("fsize");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn("fsize", &ep, &[]);
    let (verdict, _) = harness::verdict_within(&listener, STEP_TIMEOUT);
    assert!(
        matches!(verdict, Verdict::Dropped(_)),
        "the connector could not create its segment: {verdict:?}"
    );
    let line = peer.expect("connect");
    eprintln!("fsize: {line}");
    assert!(line.starts_with("io Some(27)"), "EFBIG expected: {line}");
    assert!(line.contains("creating our segment"), "{line}");
    peer.wait_success();
}

/// Child: RLIMIT_AS leaves room for everything but a 256 MiB mapping: mmap of our own
/// segment fails with ENOMEM.
pub fn address_space_child(ep: &str) {
    let ring: u64 = std::env::var(RING_ENV)
        .expect("ring")
        .parse()
        .expect("ring bytes");
    let size = leaks::status_bytes("self", "VmSize");
    set_soft_limit(Resource::As, Some(size + 64 * 1024 * 1024));
    let r = Conn::connect_with(ep, Options::new().ring_capacity(ring as usize));
    report(format!("connect {}", describe(&r)));
}

#[test]
fn mapping_that_does_not_fit_the_address_space_is_a_typed_error() {
    let _serial = crate::serial();
    let ep = harness::endpoint("as");
    let listener = harness::bind(&ep, Options::new());
    let mut peer = Peer::spawn(
        "address_space",
        &ep,
        &[(RING_ENV, &(256usize << 20).to_string())],
    );
    let _ = harness::verdict_within(&listener, STEP_TIMEOUT);
    let line = peer.expect("connect");
    eprintln!("RLIMIT_AS: {line}");
    assert!(line.starts_with("io Some(12)"), "ENOMEM expected: {line}");
    assert!(line.contains("creating our segment"), "{line}");
    peer.wait_success();
}

/// The largest ring (1 GiB each way): both sides map 1 GiB + a page, messages of 16 MiB
/// cross, and everything is returned afterwards. (The memory is sparse: only touched pages
/// cost RAM.)
#[test]
fn one_gib_rings_work_and_are_released() {
    let _serial = crate::serial();
    let gib = shmsock::RING_CAPACITY_MAX_BYTES;
    let opts = Options::new().ring_capacity(usize::MAX);
    assert_eq!(
        opts.get_ring_capacity(),
        gib,
        "ring_capacity clamps to 1 GiB"
    );
    let ep = harness::endpoint("gib");
    let listener = harness::bind(&ep, opts.clone());
    let baseline = leaks::open_fds();
    let rss0 = leaks::rss_bytes();
    let ep2 = ep.clone();
    let big = 16 << 20;
    let client = std::thread::spawn(move || -> shmsock::Result<usize> {
        let mut c = Conn::connect_with(&ep2, opts)?;
        let msg: Vec<u8> = (0..big).map(|i| (i % 251) as u8).collect();
        for _ in 0..3 {
            c.send(&msg)?;
        }
        Ok(c.max_message_len())
    });
    let mut conn = harness::accept(&listener).expect("accepting a 1 GiB connection");
    assert!(conn.max_message_len() >= gib - 128);
    for _ in 0..3 {
        let m = conn.recv_vec().expect("a 16 MiB message");
        assert_eq!(m.len(), big);
        assert!(m.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
    let max = client.join().expect("client").expect("client side");
    assert!(max >= gib - 128);
    drop(conn);
    leaks::assert_fds_return_to(&baseline, "1 GiB rings");
    let rss1 = leaks::rss_bytes();
    eprintln!(
        "1 GiB rings: RSS {} MiB before, {} MiB after",
        rss0 >> 20,
        rss1 >> 20
    );
    assert!(rss1 < rss0 + (64 << 20), "RSS grew from {rss0} to {rss1}");
}

fn connect_close_cycles(cycles: usize) {
    let _serial = crate::serial();
    let ep = harness::endpoint("cycles");
    let listener = harness::bind(&ep, Options::new());
    let shm_before = leaks::dev_shm();
    let dir = harness::setup();
    let t = Instant::now();
    let cycle = |i: usize| {
        let ep2 = ep.clone();
        let client = std::thread::spawn(move || -> shmsock::Result<()> {
            let mut c = Conn::connect(&ep2)?;
            c.send(&(i as u64).to_le_bytes())
        });
        let mut conn = harness::accept(&listener).expect("accept");
        let mut buf = [0u8; 8];
        let n = conn.recv_timeout(&mut buf, STEP_TIMEOUT).expect("message");
        assert_eq!(&buf[..n], &(i as u64).to_le_bytes());
        client.join().expect("client").expect("client side");
    };
    // Warm up (allocator arenas, thread stacks), then measure.
    for i in 0..100 {
        cycle(i);
    }
    let baseline = leaks::open_fds();
    let rss0 = leaks::rss_bytes();
    let mut peak = rss0;
    for i in 0..cycles {
        cycle(i);
        if i % 500 == 0 {
            peak = peak.max(leaks::rss_bytes());
            leaks::assert_fds_return_to(&baseline, &format!("after {i} cycles"));
        }
    }
    leaks::assert_fds_return_to(&baseline, "after all cycles");
    let rss1 = leaks::rss_bytes();
    eprintln!(
        "{cycles} connect/close cycles in {:.1?}: fds {} → {}, RSS {} KiB → {} KiB (peak {} KiB)",
        t.elapsed(),
        baseline.len(),
        leaks::fd_count(),
        rss0 >> 10,
        rss1 >> 10,
        peak >> 10
    );
    assert!(
        rss1 < rss0 + (8 << 20),
        "RSS grew by {} KiB over {cycles} cycles",
        (rss1 - rss0) >> 10
    );
    assert_eq!(
        leaks::runtime_files(dir, &ep).len(),
        2,
        "only the listener's socket and lock"
    );
    leaks::assert_dev_shm_unchanged(&shm_before, "connect/close cycles");
}

/// CI: 2,000 connect/close cycles; fd count back to baseline, RSS flat.
#[test]
fn thousands_of_connections_leak_no_fd_and_no_memory() {
    connect_close_cycles(2000);
}

#[test]
#[ignore = "long run (10,000 cycles); see the README"]
fn connect_close_cycles_long() {
    connect_close_cycles(10_000);
}
