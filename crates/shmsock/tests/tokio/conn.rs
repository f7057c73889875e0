//! [`AsyncConn`](shmsock::AsyncConn) against blocking peers in other processes and async
//! peers in this one.

// Timing tests hold the harness's std lock across awaits on purpose: each `#[tokio::test]`
// has a runtime of its own, where no other task ever takes that lock.
#![allow(clippy::await_holding_lock)]

use std::time::{Duration, Instant};

use shmsock::{AsyncConn, Conn, Error, Options};

use crate::roles::READER_DELAY;
use crate::{accept, bind, bounded, expect_peer_gone_after_kill, receive_stream, SCHEMES};
use shmsock_testkit::harness::{self, Peer, STEP_TIMEOUT};
use shmsock_testkit::message::{self, stream_env};

/// Sends messages `0..count` of the stream seeded with `seed`.
async fn send_stream(conn: &mut AsyncConn, count: u64, seed: u64, max_len: usize) {
    let (mut lens, mut body) = (message::lengths(seed), message::bodies(seed));
    let mut buf = vec![0u8; max_len];
    for seq in 0..count {
        let msg = &mut buf[..lens.below_or_eq(max_len)];
        message::encode(seq, &mut body, msg);
        bounded("send", conn.send(msg))
            .await
            .unwrap_or_else(|e| panic!("sending message #{seq}: {e}"));
    }
}

#[tokio::test]
async fn async_recv_is_woken_by_a_sync_sender_in_another_process() {
    for scheme in SCHEMES {
        let mut listener = bind(scheme, "async-recv", Options::new());
        let (count, seed, max_len) = (2000, 7, 3000);
        let mut peer = Peer::spawn(
            "sync_sender",
            listener.endpoint(),
            &stream_env(count, seed, max_len).vars(),
        );
        let mut conn = accept(&mut listener).await;
        // The sender waits before its first message and between bursts: each time this
        // side has gone to sleep, and only the sender's wake-up brings the next message.
        receive_stream(&mut conn, "the async conn", count, seed, max_len).await;
        peer.expect("sent");
        let end = bounded("recv after the end", conn.recv_vec()).await;
        assert!(
            matches!(end, Err(Error::PeerClosed { .. })),
            "{scheme}: expected PeerClosed after the last message, got {end:?}"
        );
        peer.wait_success();
    }
}

#[tokio::test]
async fn async_send_blocked_on_a_full_ring_is_woken_when_the_peer_reads() {
    // A 4 KiB outbound ring holds a few 1 KiB messages: the sends block until the reader,
    // asleep for READER_DELAY, starts reading; its consumed position must wake us.
    let mut listener = bind("shm", "async-send", Options::new().ring_capacity(4096));
    let (count, seed, max_len) = (500, 11, 1024);
    let mut peer = Peer::spawn(
        "slow_reader",
        listener.endpoint(),
        &stream_env(count, seed, max_len).vars(),
    );
    let mut conn = accept(&mut listener).await;
    peer.expect("connected");
    let t = Instant::now();
    send_stream(&mut conn, count, seed, max_len).await;
    let took = t.elapsed();
    peer.expect("got");
    assert!(
        took >= READER_DELAY - Duration::from_millis(100),
        "the sends should have waited for the reader ({took:?})"
    );
    drop(conn);
    peer.wait_success();
}

#[tokio::test]
async fn a_recv_cancelled_by_a_timeout_loses_no_message() {
    for scheme in SCHEMES {
        let mut listener = bind(scheme, "cancel", Options::new());
        let ep = listener.endpoint().to_owned();
        let connecting = tokio::task::spawn_blocking(move || Conn::connect(&ep));
        let mut conn = accept(&mut listener).await;
        let mut sender = connecting.await.expect("connect task").expect("connect");

        let idle = tokio::time::timeout(Duration::from_millis(50), conn.recv_vec()).await;
        assert!(
            idle.is_err(),
            "{scheme}: nothing was sent, yet recv returned {idle:?}"
        );
        sender.send(b"after the timeout").expect("send");
        let got = bounded("recv", conn.recv_vec()).await.expect("recv");
        assert_eq!(got, b"after the timeout", "{scheme}");
    }
}

#[tokio::test]
async fn recvs_cancelled_at_random_points_lose_and_duplicate_nothing() {
    let _cpu = harness::cpu_heavy_test();
    for scheme in SCHEMES {
        let mut listener = bind(scheme, "cancel-race", Options::new());
        let ep = listener.endpoint().to_owned();
        let count = 20_000u64;
        let sender = std::thread::spawn(move || {
            let mut conn = Conn::connect(&ep).expect("connect");
            for i in 0..count {
                conn.send(&i.to_le_bytes()).expect("send");
                if i % 64 == 0 {
                    std::thread::yield_now();
                }
                // Pauses long enough for the receiver to drain the ring and wait: some of
                // its receives are then surely cancelled, however fast this machine is.
                if i % 500 == 499 {
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
        });
        let mut conn = accept(&mut listener).await;
        let mut rng = message::SplitMix64::new(3);
        let (mut next, mut cancelled) = (0u64, 0u32);
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut buf = [0u8; 8];
        while next < count {
            assert!(
                Instant::now() < deadline,
                "{scheme}: stuck at message {next}"
            );
            // A zero timeout cancels right after the first poll (mid-announcement, if
            // nothing was there); 1 ms cancels a sleeping recv.
            let wait = Duration::from_millis(rng.below_or_eq(1) as u64);
            match tokio::time::timeout(wait, conn.recv(&mut buf)).await {
                Err(_) => cancelled += 1,
                Ok(Ok(8)) => {
                    assert_eq!(
                        u64::from_le_bytes(buf),
                        next,
                        "{scheme}: lost or duplicated"
                    );
                    next += 1;
                }
                Ok(other) => panic!("{scheme}: recv gave {other:?} at message {next}"),
            }
        }
        sender.join().expect("sender thread");
        assert!(
            cancelled > 0,
            "{scheme}: no recv was ever cancelled: the test proved nothing"
        );
    }
}

#[tokio::test]
async fn peer_death_wakes_a_pending_recv_with_peer_gone() {
    let _timing = harness::timing_test();
    let mut listener = bind("shm", "death", Options::new());
    let mut peer = Peer::spawn("connect_then_idle", listener.endpoint(), &[]);
    let mut conn = accept(&mut listener).await;
    peer.expect("connected");
    let recv = async move { conn.recv_vec().await };
    expect_peer_gone_after_kill("the pending recv", &peer, recv).await;
}

#[tokio::test]
async fn peer_death_wakes_a_send_blocked_on_a_full_ring() {
    let _timing = harness::timing_test();
    let mut listener = bind("shm", "death-send", Options::new().ring_capacity(4096));
    let mut peer = Peer::spawn("connect_then_idle", listener.endpoint(), &[]);
    let mut conn = accept(&mut listener).await;
    peer.expect("connected");
    let send = async move {
        let msg = [7u8; 1024];
        loop {
            conn.send(&msg).await?;
        }
    };
    // (The ring is full by the time the peer is killed.)
    expect_peer_gone_after_kill::<()>("the blocked send", &peer, send).await;
}

#[tokio::test]
async fn echo_with_a_sync_peer_in_another_process_keeps_every_byte() {
    for scheme in SCHEMES {
        let mut listener = bind(scheme, "echo", Options::new());
        let mut peer = Peer::spawn("sync_echo", listener.endpoint(), &[]);
        let mut conn = accept(&mut listener).await;
        // Up to 256 KiB: larger than a socket buffer, so tcp:// and unix:// sends are
        // partial and wait for writability.
        let max = (256 << 10).min(conn.max_message_len());
        let mut rng = message::SplitMix64::new(5);
        for seq in 0..300u64 {
            let len = if seq % 50 == 0 {
                max
            } else {
                rng.below_or_eq(4096)
            };
            let mut msg = vec![0u8; len];
            message::encode(seq, &mut message::bodies(seq), &mut msg);
            bounded("send", conn.send(&msg)).await.expect("send");
            let echo = bounded("recv", conn.recv_vec()).await.expect("recv");
            message::verify(seq, len, &echo).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        }
        drop(conn);
        peer.wait_success();
    }
}

#[tokio::test]
async fn async_peers_echo_over_every_scheme() {
    for scheme in SCHEMES {
        let mut listener = bind(scheme, "async-echo", Options::new());
        let ep = listener.endpoint().to_owned();
        let server = tokio::spawn(async move {
            let mut conn = accept(&mut listener).await;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match conn.recv(&mut buf).await {
                    Ok(n) => conn.send(&buf[..n]).await?,
                    Err(e) if e.is_disconnect() => return Ok::<_, Error>(()),
                    Err(e) => return Err(e),
                }
            }
        });
        let mut conn = bounded("connect", AsyncConn::connect(&ep))
            .await
            .expect("connect");
        for seq in 0..200u64 {
            let len = (seq as usize * 977) % 70_000;
            let mut msg = vec![0u8; len];
            message::encode(seq, &mut message::bodies(seq), &mut msg);
            bounded("send", conn.send(&msg)).await.expect("send");
            let mut small = [0u8; 16];
            if len > small.len() {
                // Too small a buffer keeps the message queued.
                let e = bounded("recv", conn.recv(&mut small)).await;
                assert!(
                    matches!(e, Err(Error::BufferTooSmall { len: l, .. }) if l == len),
                    "{e:?}"
                );
            }
            let echo = bounded("recv", conn.recv_vec()).await.expect("recv");
            message::verify(seq, len, &echo).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        }
        drop(conn);
        bounded("server", server)
            .await
            .expect("server task")
            .expect("server");
    }
}

/// Connections that say nothing, or half a hello, cost an honest async peer nothing: the
/// async listener runs every handshake under way at once, on every scheme.
#[tokio::test]
async fn silent_connectors_delay_no_honest_async_peer() {
    for scheme in SCHEMES {
        let mut listener = bind(scheme, "async-silent", Options::new());
        let ep = listener.endpoint().to_owned();
        let path = listener.socket_path().to_owned();
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(match scheme {
                "tcp" => {
                    let addr = ep.trim_start_matches("tcp://");
                    Silent::Tcp(std::net::TcpStream::connect(addr).expect("connecting"))
                }
                _ => Silent::Unix(
                    std::os::unix::net::UnixStream::connect(&path).expect("connecting"),
                ),
            });
        }
        let t = Instant::now();
        let client = tokio::spawn(async move {
            let mut conn = AsyncConn::connect(&ep).await?;
            conn.send(b"honest").await
        });
        let mut conn = accept(&mut listener).await;
        let mut buf = [0u8; 16];
        let n = bounded("recv", conn.recv(&mut buf)).await.expect("recv");
        assert_eq!(&buf[..n], b"honest");
        bounded("client", client)
            .await
            .expect("client task")
            .expect("client");
        // The bar is 100 ms; a loaded 2-core CI machine gets a margin (a silent peer
        // holding a sequential accept would cost the 5 s handshake deadline).
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "{scheme}: honest peer took {took:?}"
        );
        drop(silent);
    }
}

/// A connection held open without a word.
#[allow(dead_code)]
enum Silent {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

#[tokio::test]
async fn padding_alone_wakes_a_sleeping_async_receiver() {
    // 2500 B messages in a 4 KiB ring: each after the first needs padding to the ring's end,
    // and fits only once the receiver has skipped that padding. The receiver is asleep on
    // its doorbell between messages, so the padding alone must wake it, or the sender waits
    // for room that never comes.
    let mut listener = bind("shm", "async-pad", Options::new());
    let endpoint = listener.endpoint().to_owned();
    let (count, len) = (100u64, 2500);
    let sender = std::thread::spawn(move || {
        let mut conn = Conn::connect_with(&endpoint, Options::new().ring_capacity(4096))
            .unwrap_or_else(|e| panic!("connecting to {endpoint}: {e}"));
        let mut msg = vec![7u8; len];
        for seq in 0..count {
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            conn.send_timeout(&msg, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("sending message #{seq}: {e}"));
            // Long enough for the receiver to go to sleep before the next message.
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    let mut conn = accept(&mut listener).await;
    for seq in 0..count {
        let msg = tokio::time::timeout(Duration::from_secs(5), conn.recv_vec())
            .await
            .unwrap_or_else(|_| panic!("message #{seq} did not arrive within 5 s"))
            .unwrap_or_else(|e| panic!("receiving message #{seq}: {e}"));
        assert_eq!(msg.len(), len, "message #{seq}");
        assert_eq!(msg[..8], seq.to_le_bytes(), "message #{seq}");
    }
    sender.join().expect("the sender thread");
}
