//! Names: a live listener in another process keeps its name; a killed one's stale socket
//! is replaced.

use shmsock::{Conn, Error, Listener, Options};

use std::time::Duration;

use shmsock_testkit::child::START_AT_ENV;
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};

fn echo_once(conn: &mut Conn, msg: &[u8]) {
    conn.send_timeout(msg, STEP_TIMEOUT).expect("sending");
    let mut buf = [0u8; 64];
    let n = conn.recv_timeout(&mut buf, STEP_TIMEOUT).expect("echo");
    assert_eq!(&buf[..n], msg);
}

#[test]
fn bind_on_a_live_name_is_addr_in_use() {
    let ep = harness::endpoint("live");
    let mut peer = Peer::spawn("listen", &ep, &[]);
    peer.expect("ready");
    for _ in 0..2 {
        match Listener::bind(&ep) {
            Err(Error::AddrInUse { endpoint, lock }) => {
                assert_eq!(endpoint, ep);
                assert!(lock.ends_with(".lock"), "{lock}");
            }
            other => panic!("binding a live name: {other:?}, expected AddrInUse"),
        }
    }
    // The failed binds left the live listener's socket alone: it still serves.
    let mut conn = Conn::connect(&ep).expect("connecting to the live listener");
    assert_eq!(conn.peer_pid(), peer.pid().as_raw_nonzero().get());
    echo_once(&mut conn, b"still yours?");
    drop(conn);
    peer.expect("served");
}

/// A listener child bound on `ep`, then SIGKILLed (and reaped): its files stay behind.
fn killed_listener(ep: &str) {
    let mut peer = Peer::spawn("listen", ep, &[]);
    peer.expect("ready");
    peer.kill();
    peer.wait();
}

#[test]
fn stale_socket_of_a_killed_listener_is_replaced() {
    let ep = harness::endpoint("stale");
    killed_listener(&ep);
    let sock = harness::setup().join(format!("{}.sock", ep.trim_start_matches("shm://")));
    assert!(
        sock.exists(),
        "a SIGKILLed listener leaves its socket file behind"
    );
    match Conn::connect(&ep) {
        Err(Error::ConnectionRefused { endpoint, path }) => {
            assert_eq!(endpoint, ep);
            assert_eq!(std::path::Path::new(&path), sock);
        }
        other => panic!("connecting to a stale socket: {other:?}, expected ConnectionRefused"),
    }

    let listener = harness::bind(&ep, Options::new());
    assert_eq!(listener.socket_path(), sock);
    let mut client = Peer::spawn("echo", &ep, &[]);
    let mut conn = harness::accept(&listener).expect("accepting on the replaced name");
    assert_eq!(conn.peer_pid(), client.pid().as_raw_nonzero().get());
    echo_once(&mut conn, b"new listener");
    drop(conn);
    client.wait_success();
    drop(listener);
    assert!(!sock.exists(), "dropping the listener removes its socket");
}

/// Several processes bind one name at the same instant, over the stale socket of a killed
/// listener: exactly one wins, and it is the one a connector reaches.
#[test]
fn concurrent_binds_of_one_name_have_one_winner() {
    let ep = harness::endpoint("race");
    killed_listener(&ep);

    let start = std::time::UNIX_EPOCH.elapsed().expect("clock") + Duration::from_millis(300);
    let start = start.as_nanos().to_string();
    let mut racers: Vec<Peer> = (0..4)
        .map(|_| Peer::spawn("bind_race", &ep, &[(START_AT_ENV, &start)]))
        .collect();
    let outcomes: Vec<String> = racers.iter_mut().map(|p| p.expect("")).collect();
    let winners: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i] == "won")
        .collect();
    assert_eq!(winners.len(), 1, "outcomes: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o == "won" || o == "in-use"),
        "outcomes: {outcomes:?}"
    );
    let winner = &mut racers[winners[0]];
    let mut conn = Conn::connect(&ep).expect("connecting to the winner");
    assert_eq!(conn.peer_pid(), winner.pid().as_raw_nonzero().get());
    echo_once(&mut conn, b"you won");
    drop(conn);
    winner.expect("served");
}
