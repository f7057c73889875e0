//! [`AsyncSubscriber`](shmsock::AsyncSubscriber) receiving from a blocking
//! [`Publisher`](shmsock::Publisher) in another process.

// Timing tests hold the harness's std lock across awaits on purpose: each `#[tokio::test]`
// has a runtime of its own, where no other task ever takes that lock.
#![allow(clippy::await_holding_lock)]

use std::time::Instant;

use shmsock::{AsyncSubscriber, Error};

use crate::{bounded, endpoint, expect_peer_gone_after_kill, receive_stream};
use shmsock_testkit::harness::{self, Peer};
use shmsock_testkit::message::stream_env;

/// Starts a publisher role, connects an async subscriber to it, and checks that messages
/// `0..count` of its stream arrive intact and in order. Returns both.
async fn subscribe_to(role: &str, scheme: &str, count: u64) -> (Peer, AsyncSubscriber) {
    let (seed, max_len) = (13u64, 2000usize);
    let env = stream_env(count, seed, max_len);
    let mut peer = Peer::spawn(role, &endpoint(scheme, "pub"), &env.vars());
    let ep = peer.expect("bound");
    let mut sub = bounded("connect", AsyncSubscriber::connect(&ep))
        .await
        .unwrap_or_else(|e| panic!("subscribing to {ep}: {e}"));
    receive_stream(&mut sub, scheme, count, seed, max_len).await;
    peer.expect("sent");
    (peer, sub)
}

#[tokio::test]
async fn async_subscriber_receives_from_a_sync_publisher_in_another_process() {
    for scheme in ["shm", "tcp", "unix"] {
        let (mut peer, mut sub) = subscribe_to("publisher", scheme, 2000).await;
        peer.wait_success();
        if scheme == "shm" {
            // Over shm:// the publisher's goodbye ends the stream.
            let end = bounded("recv after the end", sub.recv_vec()).await;
            assert!(matches!(end, Err(Error::PeerClosed { .. })), "{end:?}");
        }
    }
}

#[tokio::test]
async fn publisher_death_wakes_a_pending_async_subscriber() {
    let _timing = harness::timing_test();
    let (peer, mut sub) = subscribe_to("publisher_then_hang", "shm", 300).await;
    let recv = async move { sub.recv_vec().await };
    expect_peer_gone_after_kill("the pending recv", &peer, recv).await;
}

#[tokio::test]
async fn async_subscriber_topics_filter_and_keep_a_too_large_message() {
    let endpoint = endpoint("tcp", "topics");
    let mut publisher = shmsock::Publisher::bind(&endpoint).expect("bind");
    let mut sub = bounded("connect", AsyncSubscriber::connect(publisher.endpoint()))
        .await
        .expect("connect");
    sub.unsubscribe(b"").expect("unsubscribe");
    sub.subscribe(b"temp.").expect("subscribe");
    // Wait until the publisher applied the subscription: a probe message goes through.
    let deadline = Instant::now() + harness::STEP_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the subscription never took effect"
        );
        publisher.send(b"temp.probe").expect("send");
        let probe =
            tokio::time::timeout(std::time::Duration::from_millis(20), sub.recv_vec()).await;
        if let Ok(got) = probe {
            assert_eq!(got.expect("recv"), b"temp.probe");
            break;
        }
    }
    // Drain the probes still on their way.
    while let Ok(got) =
        tokio::time::timeout(std::time::Duration::from_millis(50), sub.recv_vec()).await
    {
        assert_eq!(got.expect("recv"), b"temp.probe");
    }
    publisher.send(b"wind.north 12").expect("send");
    let big = [b"temp.".as_slice(), &[b'x'; 100]].concat();
    publisher.send(&big).expect("send");
    let mut small = [0u8; 16];
    let e = bounded("recv", sub.recv(&mut small)).await;
    assert!(
        matches!(e, Err(Error::BufferTooSmall { len: 105, .. })),
        "{e:?}"
    );
    assert_eq!(bounded("recv", sub.recv_vec()).await.expect("recv"), big);
}

#[tokio::test]
async fn async_subscriber_receives_loans_as_copies_and_releases_them() {
    let ep = endpoint("shm", "loans");
    let opts = shmsock::Options::new().loan_pool(2, 4096);
    let mut publisher = shmsock::Publisher::bind_with(&ep, opts).expect("bind");
    let mut sub = bounded("connect", AsyncSubscriber::connect(&ep))
        .await
        .expect("connect");
    let deadline = Instant::now() + harness::STEP_TIMEOUT;
    while publisher.subscriber_count() < 1 {
        assert!(Instant::now() < deadline, "the subscriber never joined");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // More loans than slots: each must be released by the subscriber for the next one.
    for i in 0..6u8 {
        let mut loan = publisher.loan(3000).expect("loan");
        loan.fill(i);
        loan.send().expect("send the loan");
        let mut small = [0u8; 100];
        let e = bounded("recv", sub.recv(&mut small)).await;
        assert!(
            matches!(e, Err(Error::BufferTooSmall { len: 3000, .. })),
            "{e:?}"
        );
        assert_eq!(
            bounded("recv", sub.recv_vec()).await.expect("recv"),
            [i; 3000]
        );
    }
}
