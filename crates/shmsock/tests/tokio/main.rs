//! Integration tests of the tokio integration (`--features tokio`): [`AsyncConn`],
//! [`AsyncListener`] and [`AsyncSubscriber`] against blocking peers in other processes and
//! async peers in this one, over `shm://`, `unix://` and `tcp://`.
//!
//! The harness is the one of `tests/conn` (shared with `#[path]`): peers are child
//! processes (re-executions of this binary with `SHMSOCK_TEST_ROLE`, see `roles.rs`), every
//! child is killed and reaped by a drop guard, and every wait is bounded.
//!
//! [`AsyncConn`]: shmsock::AsyncConn
//! [`AsyncListener`]: shmsock::AsyncListener
//! [`AsyncSubscriber`]: shmsock::AsyncSubscriber

#[allow(dead_code)] // the Conn helpers of the shared harness are not all used here
#[path = "../conn/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../conn/message.rs"]
mod message;
mod roles;

mod conn;
mod idle;
mod pubsub;

use std::time::Duration;

use shmsock::{AsyncConn, AsyncListener, Options};

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

/// Accepts one connection within [`harness::STEP_TIMEOUT`].
pub async fn accept(listener: &mut AsyncListener) -> AsyncConn {
    bounded("accept", listener.accept())
        .await
        .unwrap_or_else(|e| panic!("accepting on {}: {e}", listener.endpoint()))
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

/// The child-process side of every multi-process test. Does nothing unless a test spawned
/// this binary with `SHMSOCK_TEST_ROLE` set; then it runs that role and exits.
#[test]
#[ignore = "the child-process side of the multi-process tests; runs only when they spawn it"]
fn peer_main() {
    let Ok(role) = std::env::var(harness::ROLE_ENV) else {
        return;
    };
    roles::run(&role);
    std::process::exit(0);
}
