//! `shmsock::inspect::scan` on endpoints of this very process: an `Inbox` with two writers,
//! a listener's spare segment, and a `Conn` that outlives its `Listener`.

use std::time::{Duration, Instant};

use shmsock::inspect::{self, EndpointInfo, EndpointState, Pattern, Role, Scan};
use shmsock::{Conn, Inbox, Listener, Options, Publisher, Subscriber};

fn find<'a>(scan: &'a Scan, endpoint: &str) -> &'a EndpointInfo {
    let dir = shmsock::runtime_dir().expect("runtime dir");
    let socket = dir.join(format!("{}.sock", endpoint.trim_start_matches("shm://")));
    scan.endpoints
        .iter()
        .find(|e| e.endpoint == endpoint && e.socket_path == socket.display().to_string())
        .unwrap_or_else(|| panic!("{endpoint} not in {scan:#?}"))
}

/// One test function: the runtime directory is process-wide state.
#[test]
fn scan_sees_an_inbox_a_conn_without_its_listener_and_pubsub_loans() {
    let dir = std::env::temp_dir().join(format!("shmsock-inspect-{}", std::process::id()));
    std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    let me = std::process::id();

    // An inbox and two writers, all in this process.
    let mut inbox = Inbox::bind("shm://inspect-inbox").expect("bind inbox");
    let mut writers: Vec<Conn> = (0..2)
        .map(|_| Conn::connect("shm://inspect-inbox").expect("connect"))
        .collect();
    for (i, w) in writers.iter_mut().enumerate() {
        for _ in 0..=i {
            w.send(b"abcd").expect("send");
        }
    }
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        inbox.recv(&mut buf).expect("recv");
    }
    // The inbox publishes its read positions and counts when it finds nothing more.
    assert!(inbox.try_recv_from(&mut buf).is_err());

    let scan = inspect::scan().expect("scan");
    let ep = find(&scan, "shm://inspect-inbox");
    assert_eq!(ep.pattern, Pattern::Inbox);
    assert_eq!(ep.state, EndpointState::Live);
    assert_eq!(ep.bound_by.as_ref().map(|p| p.pid), Some(me));
    let of = |role| ep.sides.iter().filter(move |s| s.role == role);
    assert_eq!(of(Role::Inbox).count(), 2, "{ep:#?}");
    assert_eq!(of(Role::Connector).count(), 2, "{ep:#?}");
    let mut sent: Vec<u64> = of(Role::Connector).map(|s| s.msgs_sent.unwrap()).collect();
    sent.sort_unstable();
    assert_eq!(sent, [1, 2]);
    let received: u64 = of(Role::Inbox).map(|s| s.msgs_received.unwrap()).sum();
    assert_eq!(received, 3);
    for side in &ep.sides {
        assert_eq!(side.process.pid, me);
        assert_eq!(side.peer.as_ref().map(|p| p.pid), Some(me));
        let peer = ep
            .sides
            .iter()
            .find(|s| Some(s.segment_inode) == side.peer_segment_inode)
            .expect("each side's peer segment is listed");
        assert_eq!(peer.peer_segment_inode, Some(side.segment_inode));
        assert_eq!(side.backlog.map(|b| b.messages), Some(Some(0)));
    }
    drop(writers);
    drop(inbox);

    // A Conn whose Listener is gone: unbound, still a pair, with a backlog.
    let listener = Listener::bind("shm://inspect-orphan").expect("bind");
    let connecting = std::thread::spawn(|| Conn::connect("shm://inspect-orphan"));
    let server = listener.accept().expect("accept");
    let mut client = connecting.join().expect("thread").expect("connect");
    // The listener made its spare segment at bind and gave it to this connection; it makes
    // the next one before it waits again. A spare is counted apart from the connection's
    // two sides.
    assert!(listener.accept_timeout(Duration::from_millis(1)).is_err());
    let scan = inspect::scan().expect("scan");
    let ep = find(&scan, "shm://inspect-orphan");
    assert_eq!((ep.sides.len(), ep.spare_segments), (2, 1), "{ep:#?}");
    drop(listener);
    for _ in 0..5 {
        client.send(&[7u8; 100]).expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let ep = loop {
        let scan = inspect::scan().expect("scan");
        let ep = find(&scan, "shm://inspect-orphan").clone();
        if ep.sides.len() == 2 || Instant::now() > deadline {
            break ep;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ep.state, EndpointState::Unbound);
    assert_eq!(ep.pattern, Pattern::Pair);
    assert!(ep.bound_by.is_none());
    let connector = ep
        .sides
        .iter()
        .find(|s| s.role == Role::Connector)
        .expect("connector");
    let backlog = connector.backlog.expect("both sides visible");
    assert_eq!(backlog.messages, Some(5), "nothing was read yet");
    assert!(
        backlog.bytes >= 5 * 100 && backlog.bytes < 5 * 200,
        "{backlog:?}"
    );
    assert_eq!(connector.msgs_sent, Some(5));
    assert_eq!(connector.bytes_sent, Some(500));
    drop((client, server));

    // Pub/sub with a copy and a zero-copy loan: both counted, the loan as its descriptor.
    let opts = Options::new().loan_pool(4, 4096);
    let mut publisher = Publisher::bind_with("shm://inspect-loans", opts).expect("bind");
    let mut subscriber = Subscriber::connect("shm://inspect-loans").expect("subscribe");
    shmsock_testkit::pubsub::wait_for_at_least(&mut publisher, 1);
    publisher.send(b"copied").expect("send");
    let mut loan = publisher.loan(4000).expect("loan");
    loan.fill(9);
    loan.send().expect("send loan");
    let copied = subscriber.recv_sample().expect("copy");
    let lent = subscriber.recv_sample().expect("loan");
    assert!(!copied.is_loan() && lent.is_loan());
    let scan = inspect::scan().expect("scan");
    let ep = find(&scan, "shm://inspect-loans");
    assert_eq!(ep.pattern, Pattern::PubSub);
    let p = ep
        .sides
        .iter()
        .find(|s| s.role == Role::Publisher)
        .expect("publisher");
    let s = ep
        .sides
        .iter()
        .find(|s| s.role == Role::Subscriber)
        .expect("subscriber");
    assert_eq!((p.msgs_sent, p.bytes_sent), (Some(2), Some(6 + 24)));
    assert_eq!((s.msgs_received, s.bytes_received), (Some(2), Some(6 + 24)));
    assert_eq!(s.msgs_lost, Some(0));
    assert_eq!(s.peer_segment_inode, Some(p.segment_inode));
    drop((lent, copied, subscriber, publisher));
    let _ = std::fs::remove_dir_all(&dir);
}
