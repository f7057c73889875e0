//! The same behaviour over `tcp://` and `unix://` (and the same errors as `shm://`).

use std::time::{Duration, Instant};

use shmsock::{Conn, Error, Listener, Options};

use crate::common::{assert_too_large, pair, payload, Scheme, SCHEMES, SIZES, STEP_TIMEOUT};

#[test]
fn messages_of_every_size_cross_both_ways_byte_for_byte() {
    for scheme in SCHEMES {
        let (_l, mut server, client) = pair(scheme, |mut c| {
            for (k, &n) in SIZES.iter().enumerate() {
                assert_eq!(c.recv_vec().expect("client recv"), payload(k, n), "{k}");
            }
            for (k, &n) in SIZES.iter().enumerate() {
                c.send(&payload(k + 100, n)).expect("client send");
            }
        });
        for (k, &n) in SIZES.iter().enumerate() {
            server.send(&payload(k, n)).expect("server send");
        }
        let mut buf = vec![0u8; 4 << 20];
        for (k, &n) in SIZES.iter().enumerate() {
            let got = server.recv_timeout(&mut buf, STEP_TIMEOUT).expect("recv");
            assert_eq!(&buf[..got], &payload(k + 100, n)[..], "{scheme:?} {k}");
        }
        client.join().expect("client thread");
        assert!(
            matches!(server.recv_vec(), Err(Error::PeerClosed { .. })),
            "{scheme:?}"
        );
    }
}

#[test]
fn a_too_small_buffer_keeps_the_message() {
    for scheme in SCHEMES {
        let (_l, mut server, client) = pair(scheme, |mut c| c.send(b"twelve bytes").unwrap());
        let mut small = [0u8; 4];
        let err = server.recv_timeout(&mut small, STEP_TIMEOUT).unwrap_err();
        assert!(
            matches!(err, Error::BufferTooSmall { len: 12, buf: 4 }),
            "{err}"
        );
        assert_eq!(server.recv_vec().unwrap(), b"twelve bytes");
        client.join().unwrap();
    }
}

#[test]
fn try_recv_would_block_and_recv_timeout_times_out() {
    for scheme in SCHEMES {
        let (_l, mut server, client) = pair(scheme, |c| {
            std::thread::sleep(Duration::from_millis(300));
            drop(c);
        });
        let mut buf = [0u8; 8];
        assert!(matches!(server.try_recv(&mut buf), Err(Error::WouldBlock)));
        let start = Instant::now();
        let err = server.recv_timeout(&mut buf, Duration::from_millis(50));
        assert!(matches!(err, Err(Error::TimedOut)), "{err:?}");
        assert!(start.elapsed() < Duration::from_millis(250));
        client.join().unwrap();
        assert!(server.recv_vec().unwrap_err().is_disconnect());
    }
}

#[test]
fn sending_after_the_peer_closed_reports_a_disconnect() {
    for scheme in SCHEMES {
        let (_l, mut server, client) = pair(scheme, drop);
        client.join().unwrap();
        assert!(matches!(server.recv_vec(), Err(Error::PeerClosed { .. })));
        let deadline = Instant::now() + STEP_TIMEOUT;
        let err = loop {
            // The first sends may still land in the kernel's buffer.
            match server.send(&[0u8; 1024]) {
                Ok(()) if Instant::now() < deadline => continue,
                other => break other.unwrap_err(),
            }
        };
        assert!(err.is_disconnect(), "{err}");
    }
}

#[test]
fn try_send_fills_the_socket_then_would_block_and_nothing_is_lost() {
    for scheme in SCHEMES {
        let (_l, mut server, client) = pair(scheme, |mut c| {
            std::thread::sleep(Duration::from_millis(200));
            let mut n = 0u64;
            loop {
                match c.recv_vec() {
                    Ok(m) => {
                        assert_eq!(m, payload(n as usize, 10_000), "message {n}");
                        n += 1;
                    }
                    Err(e) => {
                        assert!(matches!(e, Error::PeerClosed { .. }), "{e}");
                        return n;
                    }
                }
            }
        });
        let mut sent = 0u64;
        let mut blocked = false;
        for _ in 0..100_000 {
            match server.try_send(&payload(sent as usize, 10_000)) {
                Ok(()) => sent += 1,
                Err(Error::WouldBlock) => {
                    blocked = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(blocked, "{scheme:?}: the socket buffer never filled");
        server.send(&payload(sent as usize, 10_000)).unwrap();
        server.close();
        assert_eq!(client.join().unwrap(), sent + 1, "{scheme:?}");
    }
}

#[test]
fn connecting_to_nobody_is_connection_refused() {
    let free = Listener::bind("tcp://127.0.0.1:0")
        .unwrap()
        .endpoint()
        .to_owned();
    let err = Conn::connect(&free).unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused { .. }), "{err}");
    let path = crate::common::unique_path();
    let err = Conn::connect(&format!("unix://{}", path.display())).unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused { .. }), "{err}");
}

#[test]
fn malformed_endpoints_are_invalid() {
    for ep in [
        "tcp://127.0.0.1",
        "tcp://:5",
        "unix://relative",
        "tcp://h:70000",
    ] {
        let err = Conn::connect(ep).unwrap_err();
        assert!(matches!(err, Error::InvalidEndpoint { .. }), "{ep}: {err}");
    }
}

#[test]
fn tcp_port_zero_is_replaced_by_the_chosen_port() {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let port: u16 = l.endpoint().rsplit_once(':').unwrap().1.parse().unwrap();
    assert_ne!(port, 0);
    let err = Listener::bind(l.endpoint()).unwrap_err();
    assert!(matches!(err, Error::AddrInUse { .. }), "{err}");
}

#[test]
fn unix_listener_replaces_a_stale_socket_but_not_a_live_one() {
    use std::os::unix::fs::PermissionsExt;
    let path = crate::common::unique_path();
    let ep = format!("unix://{}", path.display());
    // A stale socket file: bound, then its listener gone without removing the file.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let l = Listener::bind(&ep).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(l.socket_path(), path);
    let err = Listener::bind(&ep).unwrap_err();
    assert!(matches!(err, Error::AddrInUse { .. }), "{err}");
    assert!(path.exists(), "a live listener's socket must survive");
    drop(l);
    assert!(!path.exists(), "dropping the listener removes its socket");
    // A regular file in the way is never deleted.
    std::fs::write(&path, b"precious").unwrap();
    assert!(Listener::bind(&ep).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn peer_pid_is_known_over_unix_and_zero_over_tcp() {
    let (_l, server, client) = pair(Scheme::Unix, |c| c.peer_pid());
    assert_eq!(server.peer_pid(), std::process::id() as i32);
    assert_eq!(client.join().unwrap(), std::process::id() as i32);
    let (_l, server, client) = pair(Scheme::Tcp, |c| c.peer_pid());
    assert_eq!(server.peer_pid(), 0);
    assert_eq!(client.join().unwrap(), 0);
}

#[test]
fn messages_over_max_message_len_are_too_large_for_the_sender() {
    let l = Listener::bind_with("tcp://127.0.0.1:0", Options::new().max_message_len(1000)).unwrap();
    let ep = l.endpoint().to_owned();
    let t = std::thread::spawn(move || {
        let mut c = Conn::connect_with(&ep, Options::new().max_message_len(1000)).unwrap();
        assert_eq!(c.max_message_len(), 1000);
        assert_too_large(c.send(&[0; 1001]), 1001, 1000);
        c.send(&[7; 1000]).unwrap();
    });
    let mut s = l.accept_timeout(STEP_TIMEOUT).unwrap();
    assert_eq!(s.recv_vec().unwrap(), vec![7; 1000]);
    t.join().unwrap();
}
