//! Integration tests of the tokio integration (`--features tokio`): [`AsyncConn`],
//! [`AsyncListener`] and [`AsyncSubscriber`] against blocking peers in other processes and
//! async peers in this one, over `shm://`, `unix://` and `tcp://`.
//!
//! The harness is `shmsock-testkit`'s, as for `tests/conn`: peers are child
//! processes (re-executions of this binary with `SHMSOCK_TEST_ROLE`, see `roles.rs`), every
//! child is killed and reaped by a drop guard, and every wait is bounded.
//!
//! [`AsyncConn`]: shmsock::AsyncConn
//! [`AsyncListener`]: shmsock::AsyncListener
//! [`AsyncSubscriber`]: shmsock::AsyncSubscriber

mod roles;

mod conn;
mod idle;
mod pubsub;

use std::time::{Duration, Instant};

use shmsock::{AsyncConn, AsyncListener, Error, Options};
use shmsock_testkit::harness::{self, Peer, PEER_DEATH_BOUND};

/// The schemes every async test runs over.
pub const SCHEMES: [&str; 3] = ["shm", "unix", "tcp"];

/// A fresh endpoint of `scheme` for one test (`tcp://` binds port 0: use the listener's
/// endpoint).
pub fn endpoint(scheme: &str, tag: &str) -> String {
    let shm = harness::endpoint(tag);
    match scheme {
        "shm" => shm,
        "unix" => {
            let name = shm.trim_start_matches("shm://");
            format!("unix://{}/{name}.sock", harness::setup().display())
        }
        "tcp" => "tcp://127.0.0.1:0".to_owned(),
        other => panic!("unknown scheme {other}"),
    }
}

/// Binds an async listener on a fresh endpoint of `scheme`.
pub fn bind(scheme: &str, tag: &str, options: Options) -> AsyncListener {
    let ep = endpoint(scheme, tag);
    AsyncListener::bind_with(&ep, options).unwrap_or_else(|e| panic!("binding {ep}: {e}"))
}

/// `fut`, failing the test if it takes longer than [`harness::STEP_TIMEOUT`].
pub async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(harness::STEP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", harness::STEP_TIMEOUT))
}

/// An async receiver of the tests' message streams: an `AsyncConn` or an `AsyncSubscriber`.
#[allow(async_fn_in_trait)]
pub trait AsyncRecv {
    async fn recv_into(&mut self, buf: &mut [u8]) -> shmsock::Result<usize>;
}

impl AsyncRecv for shmsock::AsyncConn {
    async fn recv_into(&mut self, buf: &mut [u8]) -> shmsock::Result<usize> {
        self.recv(buf).await
    }
}

impl AsyncRecv for shmsock::AsyncSubscriber {
    async fn recv_into(&mut self, buf: &mut [u8]) -> shmsock::Result<usize> {
        self.recv(buf).await
    }
}

/// Receives messages `0..count` of the stream `(seed, max_len)` and checks each one
/// (`what` names the receiver in a failure).
pub async fn receive_stream(
    rx: &mut impl AsyncRecv,
    what: &str,
    count: u64,
    seed: u64,
    max_len: usize,
) {
    let mut lens = shmsock_testkit::message::lengths(seed);
    let mut buf = vec![0u8; max_len];
    for seq in 0..count {
        let len = lens.below_or_eq(max_len);
        let n = bounded("recv", rx.recv_into(&mut buf))
            .await
            .unwrap_or_else(|e| panic!("{what}: receiving message #{seq}: {e}"));
        shmsock_testkit::message::verify(seq, len, &buf[..n])
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// Accepts one connection within [`harness::STEP_TIMEOUT`].
pub async fn accept(listener: &mut AsyncListener) -> AsyncConn {
    bounded("accept", listener.accept())
        .await
        .unwrap_or_else(|e| panic!("accepting on {}: {e}", listener.endpoint()))
}

/// Runs `call` (an async call that blocks on `peer`) in a task, waits until it is blocked,
/// SIGKILLs `peer`, and checks that the call (`what`) ended with `PeerGone` within
/// [`PEER_DEATH_BOUND`] of the kill.
pub async fn expect_peer_gone_after_kill<T: std::fmt::Debug + Send + 'static>(
    what: &str,
    peer: &Peer,
    call: impl std::future::Future<Output = shmsock::Result<T>> + Send + 'static,
) {
    let pending = tokio::spawn(async move {
        let got = call.await;
        (got, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // it is blocked by now
    let killed = peer.kill();
    let (got, woke) = bounded(what, pending)
        .await
        .unwrap_or_else(|e| panic!("the task of {what}: {e}"));
    assert!(
        matches!(got, Err(Error::PeerGone { .. })),
        "expected PeerGone, got {got:?}"
    );
    let after = woke.duration_since(killed);
    assert!(
        after < PEER_DEATH_BOUND,
        "PeerGone came {after:?} after the kill"
    );
}

/// A current-thread runtime with I/O and timers, for child roles.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// How long a child sleeps before sending, so that the async side is asleep by then.
pub const LET_IT_SLEEP: Duration = Duration::from_millis(200);

shmsock_testkit::peer_main!(roles::run);

/// The message format the tests of this binary rely on checks what it claims to check.
#[test]
fn messages_verify_and_damage_is_named() {
    shmsock_testkit::message::self_check();
}
