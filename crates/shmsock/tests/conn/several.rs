//! One listener, several endpoints: `accept` returns connections from every endpoint
//! (`shm://`, `unix://`, `tcp://`), a silent peer on one delays nobody, endpoints can be
//! added later, and dropping the listener frees every name.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use shmsock::{Error, Listener, Options};
use shmsock_testkit::harness::{self, Peer};
use shmsock_testkit::message;

/// A fresh `unix://` endpoint in the runtime directory.
fn unix_endpoint(tag: &str) -> String {
    let dir = harness::setup();
    let name = harness::endpoint(tag);
    format!(
        "unix://{}/{}.sock",
        dir.display(),
        name.trim_start_matches("shm://")
    )
}

#[test]
fn accept_serves_every_endpoint_of_a_listener() {
    let shm = harness::endpoint("several");
    let unix = unix_endpoint("several");
    harness::setup();
    // The silent peer below stays in its handshake for 30 s: every honest peer is accepted
    // while it is (nobody waits for it).
    let opts = Options::new().handshake_timeout(Duration::from_secs(30));
    let mut listener = Listener::bind_all(&[&shm, &unix], opts).expect("bind");
    let tcp = listener
        .add_endpoint("tcp://127.0.0.1:0")
        .expect("add tcp")
        .to_owned();
    assert_eq!(
        listener.endpoints(),
        [shm.clone(), unix.clone(), tcp.clone()]
    );
    assert_eq!(listener.endpoint(), shm);
    // A peer that connects and never speaks holds up nobody.
    let mut silent = TcpStream::connect(tcp.trim_start_matches("tcp://")).expect("raw connect");

    let (count, max) = (2_000u64, 600usize);
    let mut peers: HashMap<String, (u64, Peer)> = HashMap::new();
    for (seed, ep) in [(1u64, &shm), (2, &unix), (3, &tcp)] {
        let env = message::stream_env(count, seed, max);
        peers.insert(ep.clone(), (seed, Peer::spawn("stream", ep, &env.vars())));
    }
    let mut conns = Vec::new();
    for _ in 0..3 {
        let conn = harness::accept(&listener).expect("accept");
        let (_, peer) = &peers[conn.endpoint()];
        let pid = match conn.endpoint() {
            ep if ep == tcp => 0,
            _ => peer.pid().as_raw_nonzero().get(),
        };
        assert_eq!(conn.peer_pid(), pid, "{}", conn.endpoint());
        conns.push(conn);
    }
    silent
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut sink = [0u8; 128];
    match silent.read(&mut sink) {
        Ok(n) if n > 0 => {} // our greeting: the handshake is under way
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the silent peer's handshake ended before its deadline: {other:?}"),
    }
    for conn in &mut conns {
        let (seed, _) = peers[conn.endpoint()];
        message::receive_stream(conn, count, seed, max);
    }
    for (_, p) in peers.values_mut() {
        p.expect("done");
        p.wait_success();
    }
    assert!(matches!(
        listener.accept_timeout(Duration::from_millis(50)),
        Err(Error::TimedOut)
    ));
    // Dropping the listener stops its accept threads and frees every name and path.
    drop(listener);
    let again = Listener::bind_all(&[&shm, &unix], Options::new()).expect("bind again");
    assert_eq!(again.endpoints().len(), 2);
    match Listener::bind_all(&[], Options::new()) {
        Err(Error::InvalidOptions { reason, .. }) => assert!(reason.contains("no endpoint")),
        other => panic!("a listener bound no endpoint: {other:?}"),
    }
}

/// An endpoint that cannot be bound fails `bind_all`, naming it, and leaves nothing bound.
#[test]
fn a_failed_endpoint_leaves_nothing_bound() {
    harness::setup();
    let shm = harness::endpoint("several-fail");
    let taken = Listener::bind("tcp://127.0.0.1:0").expect("bind");
    match Listener::bind_all(&[&shm, taken.endpoint()], Options::new()) {
        Err(e @ Error::AddrInUse { .. }) => {
            assert!(e.to_string().contains(taken.endpoint()), "{e}")
        }
        other => panic!("bound a port in use: {other:?}"),
    }
    Listener::bind(&shm).expect("the shm:// name was freed");
}
