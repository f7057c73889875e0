//! pyzmq writers into an [`Inbox`](shmsock::Inbox) bound to `shm://`, `unix://` and `tcp://`
//! at once (the Python side is `inbox_writer.py`): PAIR sockets write over both socket
//! schemes beside an `shm://` writer, in order; a PUSH socket cannot (PUSH pairs with PULL
//! only) and is refused at the handshake. Without python3 and pyzmq the test says it is
//! skipped and passes, except under `CI=true`, where it fails.

use std::collections::HashMap;

use shmsock::{Conn, Inbox, Options};
use shmsock_testkit::{harness, process};

use crate::common::{unique_path, STEP_TIMEOUT};
use crate::pyzmq::PyPeer;

#[test]
fn pyzmq_pair_sockets_write_to_an_inbox() {
    if !process::pyzmq_available() {
        return;
    }
    let shm = harness::endpoint("net-inbox-pyzmq");
    let unix = format!("unix://{}", unique_path().display());
    let mut inbox =
        Inbox::bind_all(&[&shm, &unix, "tcp://127.0.0.1:0"], Options::new()).expect("bind");
    let eps = inbox.endpoints().to_vec();
    let count = 2_000u64;
    let mut py: Vec<PyPeer> = [(1, &eps[1]), (2, &eps[2])]
        .iter()
        .map(|(seed, ep)| {
            PyPeer::spawn_with(
                "inbox_writer.py",
                "PAIR",
                ep,
                &[&seed.to_string(), &count.to_string()],
            )
        })
        .collect();
    // An shm:// writer at the same time (a thread: the inbox cannot tell).
    let local = std::thread::spawn(move || -> shmsock::Result<()> {
        let mut conn = Conn::connect(&shm)?;
        for seq in 0..count {
            let mut msg = [0u8; 16];
            msg[..8].copy_from_slice(&3u64.to_le_bytes());
            msg[8..].copy_from_slice(&seq.to_le_bytes());
            conn.send(&msg)?;
        }
        Ok(())
    });
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut buf = [0u8; 64];
    while next.values().filter(|&&n| n == count).count() < 3 {
        let (n, from) = inbox
            .recv_from_timeout(&mut buf, STEP_TIMEOUT)
            .expect("recv");
        assert_eq!(n, 16, "{from}");
        let seed = u64::from_le_bytes(buf[..8].try_into().unwrap());
        let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap());
        let expected = next.entry(seed).or_insert(0);
        assert_eq!(seq, *expected, "writer {seed}: in order");
        *expected += 1;
        match seed {
            2 => assert_eq!(from.pid, 0, "a tcp:// writer has no pid"),
            _ => assert!(from.pid > 0, "{from}"),
        }
    }
    for p in &mut py {
        assert_eq!(p.line(), "SENT");
    }
    local.join().unwrap().expect("the shm:// writer");
    // PUSH: libzmq sees our PAIR in the handshake and never delivers.
    let mut push = PyPeer::spawn_with("inbox_writer.py", "PUSH", &eps[2], &["4", "10"]);
    assert_eq!(push.line(), "NOT SENT", "a PUSH socket wrote to an inbox");
    assert!(matches!(
        inbox.try_recv_from(&mut buf),
        Err(shmsock::Error::WouldBlock)
    ));
}
