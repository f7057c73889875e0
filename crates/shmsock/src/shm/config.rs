//! What the `shm://` transport takes from the user's options (the API's `Options` builds
//! it): ring size, how to wait, whom to admit, the overflow policy, the loan pool and how long
//! a handshake may take.

use std::time::Duration;

use crate::handover::TakeOver;
use crate::vocabulary::{Overflow, PeerPolicy, WaitStrategy};

/// The settings of one `shm://` socket.
#[derive(Debug, Clone)]
pub(crate) struct ShmConfig {
    /// Capacity of the ring this side writes (a power of two within the ring's limits).
    pub(crate) ring_capacity: usize,
    /// How blocking calls wait.
    pub(crate) wait: WaitStrategy,
    /// How long an adaptive waiter spins before it sleeps.
    pub(crate) spin_budget: Duration,
    /// Which peers are admitted.
    pub(crate) peers: PeerPolicy,
    /// What a publisher does with a subscriber a full ring behind.
    pub(crate) overflow: Overflow,
    /// The loan pool (slots, bytes per slot), if any.
    pub(crate) loan_pool: Option<(usize, usize)>,
    /// How long a whole handshake may take, each side.
    pub(crate) handshake_timeout: Duration,
    /// A publisher: its ring also takes over network connections (subscribers presenting
    /// the token of one are checked against it).
    pub(crate) take_over: Option<TakeOver>,
}
