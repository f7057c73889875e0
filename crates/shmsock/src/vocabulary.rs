//! The words every layer shares: how a call waits ([`Mode`]), how a blocked side waits
//! ([`WaitStrategy`]), what a publisher does with a slow subscriber ([`Overflow`]), which
//! peers are admitted ([`PeerPolicy`]) and how long a handshake may take
//! ([`HANDSHAKE_TIMEOUT`]). Both transports (`shm`, `net`) and the API above them use these;
//! nothing here knows about either transport.

use std::time::{Duration, Instant};

#[cfg(not(loom))]
use crate::error::{Error, Result};

/// Longest time a whole connection handshake may take by default, each side (connect,
/// hello exchange, ack): one deadline however the peer splits it. Set another with
/// [`Options::handshake_timeout`](crate::Options::handshake_timeout).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an `Adaptive` waiter spins before it sleeps, by default. Cross-CPU kernel
/// wake-ups cost ~25 µs on small VMs, so spinning a little longer than that catches most
/// back-to-back messages without paying for a sleep.
pub const SPIN_BUDGET_DEFAULT: Duration = Duration::from_micros(50);

/// How one call waits: the `x` / `try_x` / `x_timeout` variants of every operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Do not wait (`try_*`).
    Try,
    /// Wait until done.
    Block,
    /// Wait until this instant.
    Until(Instant),
}

impl Mode {
    /// Wait at most `t` from now (a timeout too long to represent waits forever).
    pub(crate) fn timeout(t: Duration) -> Self {
        Instant::now()
            .checked_add(t)
            .map_or(Mode::Block, Mode::Until)
    }

    /// The deadline of a waiting call (`Until`), if any.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Mode::Until(d) => Some(d),
            Mode::Try | Mode::Block => None,
        }
    }
}

/// How a blocking `send` or `recv` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Spin without ever sleeping: lowest latency, burns one core while waiting. Peer death
    /// is still checked every few milliseconds.
    BusyPoll,
    /// Spin for the spin budget ([`SPIN_BUDGET_DEFAULT`]), then sleep on a futex. Idle
    /// waiters use almost no CPU. After the first 5 µs the spinning also yields the CPU now
    /// and then, so a machine with more busy processes than CPUs runs the one we wait for.
    #[default]
    Adaptive,
    /// Sleep on a futex almost at once (after a spin of at most
    /// [`BLOCKING_SPIN`](Self::BLOCKING_SPIN), 2 µs, which carries a busy stream across its
    /// gaps): least CPU, each wake-up costs a kernel round trip. A `Conn` receiver that just
    /// copied a message of 64 KiB or more spins as long as that copy took instead (at most the
    /// spin budget, [`Options::spin_budget`](crate::Options::spin_budget)): a stream of large
    /// messages then runs without a sleep and a wake-up per message, and the spin costs at
    /// most the CPU of the copy before it. A request-response pair
    /// of `Blocking` sides answers within the spin only while neither has slept: once one
    /// sleeps, the other's wait includes its wake-up and it sleeps too, and their round
    /// trips stay at two wake-ups (tens of µs) instead of a few hundred ns; use
    /// [`Adaptive`](Self::Adaptive) where that matters. A stream of large messages needs a
    /// ring of about eight of them (see [`Options::ring_capacity`](crate::Options::ring_capacity)).
    Blocking,
}

impl WaitStrategy {
    /// How long a [`Blocking`](Self::Blocking) waiter spins before its first sleep: long
    /// enough to ride through the gaps of a stream that keeps it busy, short next to what a
    /// sleep costs (a wake-up takes 10-25 µs on our VMs).
    pub const BLOCKING_SPIN: Duration = Duration::from_micros(2);
}

/// What a publisher does when a subscriber is a full ring behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for the slowest subscriber (with a timeout in `send_timeout`).
    #[default]
    Block,
    /// Overwrite the oldest messages; a lagging subscriber receives
    /// [`Error::Lagged`](crate::Error::Lagged) with the number it lost.
    DropOldest,
}

/// Which peer uids a side admits: our own effective uid by default, exactly the listed
/// ones once any is listed (`Options::allow_uid`). Checked with `SO_PEERCRED` on Unix
/// sockets, before anything else is read from the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerPolicy {
    allowed_uids: Vec<u32>,
}

impl PeerPolicy {
    /// Admits `uid` besides those already listed (and, from now on, only the listed ones).
    pub(crate) fn allow(&mut self, uid: u32) {
        self.allowed_uids.push(uid);
    }

    /// Whether a peer running as `uid` is admitted.
    pub(crate) fn admits(&self, uid: u32) -> bool {
        if self.allowed_uids.is_empty() {
            uid == rustix::process::geteuid().as_raw()
        } else {
            self.allowed_uids.contains(&uid)
        }
    }

    /// The admitted uids, for error messages.
    pub(crate) fn describe(&self) -> String {
        if self.allowed_uids.is_empty() {
            format!("only our own uid {}", rustix::process::geteuid().as_raw())
        } else {
            format!("{:?}", self.allowed_uids)
        }
    }

    /// Reads the peer's credentials (`SO_PEERCRED`) of a connected Unix socket and returns
    /// its pid if its uid is admitted, else [`Error::PermissionDenied`].
    #[cfg(not(loom))]
    pub(crate) fn check_peer(
        &self,
        endpoint: &str,
        sock: &std::os::unix::net::UnixStream,
    ) -> Result<i32> {
        let cred = rustix::net::sockopt::socket_peercred(sock).map_err(|e| {
            Error::io(
                format!("{endpoint}: reading the peer's credentials (SO_PEERCRED)"),
                e,
            )
        })?;
        let (pid, uid) = (cred.pid.as_raw_nonzero().get(), cred.uid.as_raw());
        if !self.admits(uid) {
            return Err(Error::PermissionDenied {
                endpoint: endpoint.to_owned(),
                pid,
                uid,
                allowed: self.describe(),
            });
        }
        Ok(pid)
    }
}
