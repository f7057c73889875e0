//! Zero-copy loans over `shm://`: `Conn::loan` / `Loan::send` and `Conn::recv_sample`.

use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Options};

use shmsock_testkit::child::report;
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::message::{self, SplitMix64};

const SLOT: usize = 1 << 20;
const LOANS: u64 = 120;

/// Child: lends `LOANS` self-checking messages of up to 1 MiB (every third one a plain
/// `send` instead), then closes.
pub fn lend_stream(ep: &str) {
    let opts = Options::new().loan_pool(4, SLOT);
    let mut conn = Conn::connect_with(ep, opts).expect("connect");
    report("connected");
    let (mut lens, mut body) = (message::lengths(9), message::bodies(9));
    let mut plain = vec![0u8; SLOT];
    for seq in 0..LOANS {
        let len = lens.below_or_eq(SLOT);
        if seq % 3 == 2 {
            message::encode(seq, &mut body, &mut plain[..len]);
            conn.send_timeout(&plain[..len], STEP_TIMEOUT)
                .expect("plain send");
            continue;
        }
        let mut loan = conn.loan_timeout(len, STEP_TIMEOUT).expect("loan");
        message::encode(seq, &mut body, &mut loan);
        loan.send().expect("send loan");
    }
    report(format!(
        "outstanding {}",
        conn.loans_outstanding().expect("outstanding")
    ));
    // Wait for the receiver to drop its samples before closing (not required: the pool
    // outlives the close while the receiver maps it).
    let t = Instant::now();
    while conn.loans_outstanding().expect("outstanding") > 0 && t.elapsed() < STEP_TIMEOUT {
        match conn.try_loan(1) {
            Ok(loan) => drop(loan),
            Err(Error::WouldBlock) => {}
            Err(e) => panic!("{e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    report(format!(
        "released {}",
        conn.loans_outstanding().expect("outstanding")
    ));
}

/// Child: receives three samples and holds them until killed.
pub fn hold_samples(ep: &str) {
    let mut conn = Conn::connect(ep).expect("connect");
    report("connected");
    let held: Vec<_> = (0..3)
        .map(|_| conn.recv_sample_timeout(STEP_TIMEOUT).expect("sample"))
        .collect();
    assert!(held.iter().all(|s| s.is_loan()));
    report("holding");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn loans_of_up_to_a_mebibyte_arrive_intact_and_slots_come_back() {
    let _timing = harness::timing_test();
    let listener = harness::bind(&harness::endpoint("loans"), Options::new());
    let mut peer = Peer::spawn("loan_stream", listener.endpoint(), &[]);
    let mut conn = harness::accept(&listener).expect("accept");
    peer.expect("connected");
    let mut lens: SplitMix64 = message::lengths(9);
    let mut buf = vec![0u8; SLOT];
    let mut lent = 0;
    for seq in 0..LOANS {
        let len = lens.below_or_eq(SLOT);
        if seq % 2 == 0 {
            // Zero-copy view (or a copy for the plain sends).
            let sample = conn.recv_sample_timeout(STEP_TIMEOUT).expect("sample");
            lent += usize::from(sample.is_loan());
            assert_eq!(sample.is_loan(), seq % 3 != 2, "message #{seq}");
            if let Err(e) = message::verify(seq, len, &sample.to_vec()) {
                panic!("{e}");
            }
        } else {
            // A loan received by a plain recv is copied out and released at once.
            let n = conn.recv_timeout(&mut buf, STEP_TIMEOUT).expect("recv");
            if let Err(e) = message::verify(seq, len, &buf[..n]) {
                panic!("{e}");
            }
        }
    }
    assert!(lent >= 30, "only {lent} loans seen as loans");
    peer.expect("outstanding");
    assert_eq!(peer.expect("released"), "0", "every slot came back");
    peer.wait_success();
    assert!(matches!(
        conn.recv_timeout(&mut buf, STEP_TIMEOUT),
        Err(Error::PeerClosed { .. })
    ));
}

#[test]
fn an_exhausted_pool_waits_would_block_or_times_out_until_a_sample_is_dropped() {
    let listener = harness::bind(&harness::endpoint("loan-exhaust"), Options::new());
    let ep = listener.endpoint().to_owned();
    let opts = Options::new().loan_pool(2, 4096);
    let connector = std::thread::spawn(move || Conn::connect_with(&ep, opts));
    let mut rx = harness::accept(&listener).expect("accept");
    let mut tx = connector.join().unwrap().expect("connect");

    for i in 0..2u8 {
        let mut loan = tx.loan(100).expect("loan");
        loan.fill(i);
        loan.send().expect("send");
    }
    let first = rx.recv_sample().expect("first");
    let second = rx.recv_sample().expect("second");
    assert_eq!((first.len(), first.to_vec()[0]), (100, 0));
    assert_eq!(tx.loans_outstanding().unwrap(), 2);
    assert!(matches!(tx.try_loan(10), Err(Error::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        tx.loan_timeout(10, Duration::from_millis(30)),
        Err(Error::TimedOut)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert!(matches!(
        tx.try_loan(5000),
        Err(Error::TooLarge { max: 4096, .. })
    ));

    // A blocked loan goes on once the receiver drops a sample, from another thread.
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(second);
    });
    let mut loan = tx.loan_timeout(10, STEP_TIMEOUT).expect("a slot came back");
    loan.copy_from_slice(b"0123456789");
    assert_eq!(&loan[..], b"0123456789");
    drop(loan); // unsent: the slot is free again at once
    assert_eq!(tx.loans_outstanding().unwrap(), 1);
    dropper.join().unwrap();
    drop(first);

    // Without a pool, loan says how to get one.
    assert!(matches!(rx.loan(10), Err(Error::NoLoanPool { .. })));
}

#[test]
fn a_receiver_killed_while_holding_loans_frees_the_sender() {
    let _timing = harness::timing_test();
    let opts = Options::new().loan_pool(3, 64 * 1024);
    let listener = harness::bind(&harness::endpoint("loan-kill"), opts);
    let mut peer = Peer::spawn("hold_samples", listener.endpoint(), &[]);
    let mut conn = harness::accept(&listener).expect("accept");
    peer.expect("connected");
    for _ in 0..3 {
        let mut loan = conn.loan_timeout(64 * 1024, STEP_TIMEOUT).expect("loan");
        loan.fill(0xab);
        loan.send().expect("send");
    }
    peer.expect("holding");
    assert!(matches!(conn.try_loan(1), Err(Error::WouldBlock)));
    let killed = peer.kill();
    match conn.loan_timeout(1, STEP_TIMEOUT) {
        Err(Error::PeerGone { .. }) => {}
        other => panic!("a loan after the holder died: {other:?}"),
    }
    let took = killed.elapsed();
    eprintln!("the sender learned of the holder's death after {took:?}");
    assert!(took < harness::PEER_DEATH_BOUND * 5, "{took:?}");
}

#[test]
fn plain_values_are_filled_in_place_and_viewed_with_size_and_alignment_checked() {
    let listener = harness::bind(&harness::endpoint("podloans"), Options::new());
    let ep = listener.endpoint().to_owned();
    let sender = std::thread::spawn(move || {
        let mut conn = Conn::connect_with(&ep, Options::new().loan_pool(2, 4096)).unwrap();
        let mut loan = conn.loan(16).unwrap();
        *loan.as_pod_mut::<[u64; 2]>().unwrap() = [1, 2];
        loan.send().unwrap();
        // Wrong size for the type: a typed error, and the loan is still usable.
        let mut loan = conn.loan(12).unwrap();
        let err = loan.as_pod_mut::<[u64; 2]>().unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        drop(loan);
        conn.send_pod(&7u64).unwrap();
    });
    let mut conn = harness::accept(&listener).unwrap();
    let sample = conn.recv_sample_timeout(STEP_TIMEOUT).unwrap();
    assert!(sample.is_loan());
    // SAFETY: our own well-behaved sender does not touch the slot until we drop it.
    let view = unsafe { sample.as_pod::<[u64; 2]>() }.unwrap();
    assert_eq!(*view, [1, 2]);
    // SAFETY: as above.
    let err = unsafe { sample.as_pod::<u32>() }.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert_eq!(sample.read_pod::<[u32; 4]>().unwrap(), [1, 0, 2, 0]);
    assert!(matches!(
        sample.read_pod::<u64>(),
        Err(Error::Decode { .. })
    ));
    drop(sample);
    let copied = conn.recv_sample_timeout(STEP_TIMEOUT).unwrap();
    assert!(!copied.is_loan());
    assert_eq!(copied.read_pod::<u64>().unwrap(), 7);
    sender.join().unwrap();
}

/// A connected pair in this process: `(lender, receiver)`, the lender with a pool of
/// `slots` slots of 4 KiB and a ring of `ring` bytes.
fn lending_pair(tag: &str, slots: usize, ring: usize) -> (Conn, Conn) {
    let listener = harness::bind(&harness::endpoint(tag), Options::new());
    let ep = listener.endpoint().to_owned();
    let opts = Options::new().loan_pool(slots, 4096).ring_capacity(ring);
    let connector = std::thread::spawn(move || Conn::connect_with(&ep, opts));
    let rx = harness::accept(&listener).expect("accept");
    (connector.join().unwrap().expect("connect"), rx)
}

#[test]
fn a_detached_loan_keeps_its_slot_and_bytes_while_its_conn_sends_and_receives() {
    let (mut tx, mut rx) = lending_pair("loan-detach", 2, 64 * 1024);
    let mut loan = tx.loan(6).expect("loan");
    loan.copy_from_slice(b"first!");
    let first = loan.detach();
    assert_eq!((first.len(), first.is_zero_copy()), (6, true));
    // The conn is free meanwhile: plain messages both ways, and another loan.
    tx.send(b"plain").expect("send");
    rx.send(b"reply").expect("reply");
    assert_eq!(tx.recv_vec().expect("recv"), b"reply");
    let mut loan = tx.loan(7).expect("second loan");
    loan.copy_from_slice(b"second!");
    let second = loan.detach();
    assert_eq!(tx.loans_outstanding().unwrap(), 2, "both slots are out");
    assert!(matches!(tx.try_loan(1), Err(Error::WouldBlock)));
    // Sent in the other order, each with its own bytes.
    tx.attach(second).send().expect("send second");
    tx.attach(first).send().expect("send first");
    assert_eq!(rx.recv_vec().expect("plain"), b"plain");
    assert_eq!(rx.recv_sample().expect("second").to_vec(), b"second!");
    let sample = rx.recv_sample().expect("first");
    assert!(sample.is_loan());
    assert_eq!(sample.to_vec(), b"first!");
    drop(sample);
    // A detached loan attached and dropped unsent gives its slot back.
    let unsent = tx.loan(1).expect("loan").detach();
    drop(tx.attach(unsent));
    let t = Instant::now();
    while tx.loans_outstanding().unwrap() > 0 {
        assert!(t.elapsed() < STEP_TIMEOUT, "the slots never came back");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_loan_whose_send_times_out_on_a_full_ring_is_kept_and_sent_later() {
    let (mut tx, mut rx) = lending_pair("loan-send-timeout", 2, 4096);
    // Fill the ring to the last byte: large messages, then ever smaller ones.
    let mut queued = Vec::new();
    for len in [1000, 100, 10, 1] {
        loop {
            match tx.try_send(&vec![7u8; len]) {
                Ok(()) => queued.push(len),
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let mut loan = tx.loan(4).expect("loan");
    loan.copy_from_slice(b"kept");
    let t = Instant::now();
    assert!(matches!(
        loan.send_timeout(Duration::from_millis(20)),
        Err(Error::TimedOut)
    ));
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        &loan[..],
        b"kept",
        "the loan is still ours, filled as it was"
    );
    // Detached and attached again between attempts, as a binding waiting in slices does.
    let detached = loan.detach();
    let mut loan = tx.attach(detached);
    for len in queued {
        assert_eq!(rx.recv_vec().expect("filler"), vec![7u8; len]);
    }
    loan.send_timeout(STEP_TIMEOUT).expect("room now");
    assert!(loan.is_empty(), "a sent loan is spent");
    assert!(matches!(
        loan.send_timeout(Duration::ZERO),
        Err(Error::Closed)
    ));
    drop(loan);
    assert_eq!(rx.recv_sample().expect("the loan").to_vec(), b"kept");
}

#[test]
#[should_panic(expected = "other than the one that lent it")]
fn attaching_a_loan_to_another_conn_panics() {
    let (mut tx, _rx) = lending_pair("loan-attach-other", 1, 64 * 1024);
    let (mut other, _other_rx) = lending_pair("loan-attach-other-2", 1, 64 * 1024);
    let loan = tx.loan(8).expect("loan").detach();
    let _ = other.attach(loan);
}
