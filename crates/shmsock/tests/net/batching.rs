//! A `Conn` batches a stream of sends (many frames per `send(2)`), and the tail of a stream
//! still arrives while the sender sits idle holding the connection: the flusher thread
//! writes it, and nothing waits for the sender's next call.

use std::sync::mpsc;
use std::time::Duration;

use shmsock::{Conn, Listener};

use crate::common::{bind_endpoint, Scheme, SCHEMES, STEP_TIMEOUT};

/// Over `scheme`: a sender thread connects, runs `send`, then sits idle holding the
/// connection open until the receiver is done; the accepted connection runs `receive`.
fn stream_then_idle(
    scheme: Scheme,
    send: impl FnOnce(&mut Conn) + Send + 'static,
    receive: impl FnOnce(&mut Conn),
) {
    let l = Listener::bind(&bind_endpoint(scheme)).unwrap();
    let ep = l.endpoint().to_owned();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        let mut c = Conn::connect(&ep).unwrap();
        send(&mut c);
        // Idle, connection held open, until the receiver has everything.
        done_rx
            .recv_timeout(STEP_TIMEOUT)
            .expect("the receiver never finished");
    });
    let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    receive(&mut c);
    done_tx.send(()).unwrap();
    sender.join().unwrap();
}

#[test]
fn a_streams_tail_arrives_while_the_sender_is_idle() {
    for &scheme in &SCHEMES {
        let send = |c: &mut Conn| {
            for i in 0u32..20_000 {
                c.send(&i.to_le_bytes()).unwrap();
            }
        };
        stream_then_idle(scheme, send, |c| {
            let mut buf = [0u8; 8];
            for i in 0u32..20_000 {
                let n = c
                    .recv_timeout(&mut buf, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("message {i} of the stream over {scheme:?}: {e}"));
                assert_eq!(&buf[..n], &i.to_le_bytes(), "message {i} over {scheme:?}");
            }
        });
    }
}

#[test]
fn request_and_reply_right_after_a_stream_are_not_held_back() {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let ep = l.endpoint().to_owned();
    let t = std::thread::spawn(move || {
        let mut c = Conn::connect(&ep).unwrap();
        for _ in 0..1000 {
            c.send(b"burst").unwrap();
        }
        c.send(b"question").unwrap();
        // Waiting for the answer writes what the stream left queued first.
        c.recv_vec().unwrap()
    });
    let mut c = l.accept_timeout(STEP_TIMEOUT).unwrap();
    for _ in 0..1000 {
        assert_eq!(c.recv_vec().unwrap(), b"burst");
    }
    assert_eq!(c.recv_vec().unwrap(), b"question");
    c.send(b"answer").unwrap();
    assert_eq!(t.join().unwrap(), b"answer");
}

#[test]
fn a_stream_of_large_messages_arrives_whole_while_the_sender_is_idle() {
    for &scheme in &SCHEMES {
        let send = |c: &mut Conn| {
            // Made beforehand, so the sends follow each other closely: a stream.
            let messages: Vec<Vec<u8>> = (0u8..8).map(|i| vec![i; 1 << 20]).collect();
            for m in &messages {
                c.send(m).unwrap();
            }
        };
        stream_then_idle(scheme, send, |c| {
            let mut buf = vec![0u8; 1 << 20];
            for i in 0u8..8 {
                let n = c
                    .recv_timeout(&mut buf, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("message {i} over {scheme:?}: {e}"));
                assert!(n == 1 << 20 && buf.iter().all(|&b| b == i), "message {i}");
            }
        });
    }
}

/// Child role: streams over one `Conn` (so this process has a flusher thread), then forks;
/// the forked copy, which has no flusher thread, streams [`FORKED_STREAM`] messages over a
/// second `Conn` and then sits idle holding it.
pub fn fork_streamer(endpoint: &str) {
    let mut first = Conn::connect(endpoint).unwrap();
    for i in 0u32..100 {
        first.send(&i.to_le_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: the child only makes system calls and allocates; the one other thread (the
    // flusher) sleeps on its condition variable, holding no lock.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut second = Conn::connect(endpoint).unwrap();
        for i in 0..FORKED_STREAM {
            second.send(&i.to_le_bytes()).unwrap();
        }
        std::thread::sleep(Duration::from_secs(10));
        // SAFETY: ends the forked copy without running the test harness's exit path.
        unsafe { libc::_exit(0) };
    }
    std::thread::sleep(Duration::from_secs(10));
}

/// Messages the forked copy streams.
const FORKED_STREAM: u32 = 20_000;

#[test]
fn a_forked_child_without_the_flusher_thread_still_delivers_its_streams_tail() {
    let l = Listener::bind("tcp://127.0.0.1:0").unwrap();
    let _peer = shmsock_testkit::harness::Peer::spawn("fork_streamer", l.endpoint(), &[]);
    let mut first = l.accept_timeout(STEP_TIMEOUT).unwrap();
    let mut buf = [0u8; 8];
    for i in 0u32..100 {
        let n = first.recv_timeout(&mut buf, STEP_TIMEOUT).unwrap();
        assert_eq!(&buf[..n], &i.to_le_bytes());
    }
    let mut second = l.accept_timeout(STEP_TIMEOUT).unwrap();
    for i in 0..FORKED_STREAM {
        let n = second
            .recv_timeout(&mut buf, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("message {i} from the forked child: {e}"));
        assert_eq!(&buf[..n], &i.to_le_bytes(), "message {i}");
    }
}
