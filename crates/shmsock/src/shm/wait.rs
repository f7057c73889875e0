//! Waiting: spin, then sleep on a futex eventcount; and the schedule of peer-death checks.
//!
//! # The eventcount
//! Each side owns, in its own segment, a `*_SLEEPING` flag ("I am about to sleep") and a
//! `*_SEQ` futex word ("I made progress"). A waiter never writes the peer's memory: it
//! announces sleep in its own flag and sleeps on the *peer's* sequence word (through a
//! read-only mapping; `futex_wait` only reads).
//!
//! ```text
//!  waiter (consumer)                         notifier (producer)
//!  my.sleeping = 1                           publish frame (Release)
//!  fence(SeqCst) ─────────── pairs ───────── fence(SeqCst)
//!  key = peer.seq (Acquire)                  if peer.sleeping == 1:
//!  re-check condition; if met: cancel            my.seq += 1 (Release)
//!  futex_wait(peer.seq, key, timeout)            futex_wake(my.seq)
//!  my.sleeping = 0
//! ```
//!
//! The two fences forbid the store-buffering outcome: either the notifier sees
//! `sleeping == 1` and bumps the sequence (then the waiter's `futex_wait` either finds the
//! key changed or is woken), or the waiter's re-check sees the frame. The notifier pays the
//! `futex_wake` syscall only when the waiter announced that it sleeps. `loom_eventcount`
//! (run with `RUSTFLAGS="--cfg loom"`) checks that no wake-up is lost.
//!
//! **Asymmetric fences.** A full fence on every send costs a cross-core round trip when the
//! stores ahead of it miss in cache (they usually do: the consumer just read that line). So
//! a process that could register for `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (it says
//! so in its segment header) notifies with a compiler-only fence, and its waiting peer pays
//! instead: after setting its flag it calls `membarrier`, which runs a full barrier on every
//! CPU running a registered process. That is the heavy half of the classic asymmetric
//! Dekker pair: either the notifier's publication precedes the barrier (the waiter's
//! re-check sees it) or its flag load follows it (it sees `sleeping == 1`). The waiter pays
//! a few µs, but only when it is about to sleep anyway. The loom model checks the protocol
//! with symmetric fences (loom has no membarrier).
//!
//! **Unless the waiter sleeps almost at once.** A `Blocking` waiter sleeps whenever its ring
//! stays empty for [`WaitStrategy::BLOCKING_SPIN`], which in a sparse stream can be every message, and
//! `membarrier` is not a few µs on every machine: on our 2-vCPU VM it took 14 µs while the other CPU ran a registered process (an
//! interrupt to a virtual CPU), against 0.7 µs for a trivial system call. So a `Conn`,
//! `Listener` or `Inbox` side created `Blocking` sets `FLAG_FENCE_WAKE` in its segment, and
//! whoever wakes it uses the full fence for it: both sides derive the pair of barriers from
//! the same two header flags (`ShmConn::new`), and the symmetric case is the one loom checks.
//!
//! **Unless it keeps up with a dense stream.** Then the full fence is what costs: the sender
//! pays it at every message, a drain of its store buffer that waits for the line the
//! receiver just read. A `Blocking` `Conn` side woken through its futex words (not an async
//! side's or an `Inbox`'s doorbell), in a process where `membarrier` works, also says
//! `FLAG_FENCE_ASK` (a third header flag), and its `FENCE_ASK` word chooses per period
//! ([`Asking`]): odd, the full fence; even, light barriers and the heavy one before each of
//! the receiver's (now rare) sleeps. Its sender acknowledges an odd ask in its own
//! `FENCE_ACK`, and the receiver skips the heavy barrier once it has read that
//! acknowledgement, or run the heavy barrier once since it stored the ask
//! (`loom_fence_ask_loses_no_wake_up` checks the first rule; loom has no `membarrier`).
//!
//! **Keyed sleeps.** A `Conn` side writes the key it sleeps on into its flag once it has
//! read it, and says so in its header; its peer then wakes it only while that key is
//! current ([`notify_keyed`]), not at every message it publishes while the sleeper's CPU is
//! still waking up.
//!
//! Every sleep has a timeout ([`FUTEX_SLEEP_MAX`]): a wake-up that never comes because the
//! notifier died cannot hang us, and the peer-death check runs after each timeout.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sync::{fence, AtomicU32, Ordering};
use crate::vocabulary::WaitStrategy;

/// Longest single futex sleep; bounds the time to notice a dead peer.
pub const FUTEX_SLEEP_MAX: Duration = Duration::from_millis(10);
/// Interval of peer-death checks (a `poll` on the rendezvous socket) while waiting.
pub const PEER_CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// How long an adaptive waiter spins before it also yields its CPU at each clock read.
const YIELD_AFTER: Duration = Duration::from_micros(5);
/// Spin iterations between two clock reads.
pub(crate) const SPINS_PER_CLOCK_READ: u32 = 64;

/// Sleeping and waking on a 32-bit word (a shared futex in production, a model in loom).
pub(crate) trait Futex {
    /// Sleeps while `*word == expected`, at most `timeout`; may return spuriously.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration);
    /// Wakes all sleepers on `word`.
    fn wake(&self, word: &AtomicU32);
}

/// The kernel futex on shared memory.
#[cfg(not(loom))]
pub(crate) struct SharedFutex;

#[cfg(not(loom))]
impl Futex for SharedFutex {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) {
        crate::sys::futex_wait(word, expected, timeout);
    }
    #[inline]
    fn wake(&self, word: &AtomicU32) {
        crate::sys::futex_wake(word);
    }
}

/// Notifier half: call after publishing progress (a frame, a consumed position). `light`:
/// this process registered for membarrier (see module docs) and its peers know it.
#[inline]
pub(crate) fn notify(
    peer_sleeping: &AtomicU32,
    my_seq: &AtomicU32,
    light: bool,
    futex: &impl Futex,
) {
    notify_any([peer_sleeping], my_seq, light, futex);
}

/// [`notify`] for a waiter that says which key it sleeps on ([`prepare_keyed_wait`]):
/// wakes it only if that key is still current. Between our wake-up and the waiter clearing
/// its flag, every message we publish would otherwise find the flag set and pay a
/// `futex_wake` of its own: a stream to a `Blocking` receiver made a system call per message
/// while the receiver's CPU woke up (about 25 µs on our VM). Skipping is safe: the waiter
/// read its key before our sequence word moved past it, and every move is followed by a
/// wake, so its `futex_wait` on that key returns by itself. A flag that says only "about to
/// sleep" (the key not known yet) is always woken. (Numbering sleeps instead, and waking
/// each number once, loses wake-ups: the waiter may read its key after our wake-up and then
/// sleep on it; the loom model of this found that.)
#[inline]
pub(crate) fn notify_keyed(
    peer_sleeping: &AtomicU32,
    my_seq: &AtomicU32,
    light: bool,
    futex: &impl Futex,
) {
    publication_fence(light);
    let flag = peer_sleeping.load(Ordering::Relaxed);
    if flag == 0 {
        return;
    }
    // We are the only writer of `my_seq`: a relaxed load gives our latest value.
    if flag & KEYED != 0 && my_seq.load(Ordering::Relaxed) & !KEYED != flag & !KEYED {
        return;
    }
    wake_sleepers(my_seq, futex);
}

/// Moves our sequence word past every key a waiter may sleep on, and wakes the sleepers.
#[inline]
fn wake_sleepers(my_seq: &AtomicU32, futex: &impl Futex) {
    // Release: pairs with the Acquire key load in `prepare_wait`.
    my_seq.fetch_add(1, Ordering::Release);
    futex.wake(my_seq);
}

/// A sleep flag that carries the waiter's key: the key's low 31 bits, and this bit (so it is
/// never 0 nor the plain announcement 1).
const KEYED: u32 = 1 << 31;

/// [`notify`] for several waiters sleeping on our one sequence word (a publisher's
/// subscribers): one fence, one look at each flag, at most one wake-up call.
#[inline]
pub(crate) fn notify_any<'a>(
    peers_sleeping: impl IntoIterator<Item = &'a AtomicU32>,
    my_seq: &AtomicU32,
    light: bool,
    futex: &impl Futex,
) {
    if any_sleeps(peers_sleeping, light) {
        wake_sleepers(my_seq, futex);
    }
}

/// [`notify_any`] for waiters of which some sleep on a doorbell of their own (async
/// subscribers) and the others on our sequence word: one fence, one look at each flag;
/// `ring` each sleeping waiter's doorbell, and at most one futex wake-up for the others.
#[inline]
pub(crate) fn notify_each<'a, B: 'a>(
    waiters: impl IntoIterator<Item = (&'a AtomicU32, Option<&'a B>)>,
    ring: impl Fn(&B),
    my_seq: &AtomicU32,
    light: bool,
    futex: &impl Futex,
) {
    publication_fence(light);
    let mut futex_sleeper = false;
    for (flag, bell) in waiters {
        if flag.load(Ordering::Relaxed) != 0 {
            match bell {
                Some(bell) => ring(bell),
                None => futex_sleeper = true,
            }
        }
    }
    if futex_sleeper {
        wake_sleepers(my_seq, futex);
    }
}

/// The notifier's fence between its publication and its look at the waiters' flags.
#[inline]
fn publication_fence(light: bool) {
    // Pairs with the fence (and, if `light`, the membarrier) in `prepare_wait` and
    // `prepare_doorbell_wait`: orders our publication before the flag reads.
    if light && cfg!(not(loom)) {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The notifier's common case, inlined into every send: with light barriers (a compiler
/// fence, see [`publication_fence`]) and `peer_sleeping` clear, nobody needs waking. False
/// means "look properly": [`notify`], [`notify_keyed`] or [`any_sleeps`] repeat the fence
/// and the load, so a flag set in between is still seen.
#[inline(always)]
pub(crate) fn surely_awake(peer_sleeping: &AtomicU32, light: bool) -> bool {
    if !light || cfg!(loom) {
        return false;
    }
    publication_fence(true);
    peer_sleeping.load(Ordering::Relaxed) == 0
}

/// The notifier's look at the waiters' flags, after publishing: true if one of them
/// announced that it sleeps (then wake it: bump and wake the futex, or ring its doorbell).
#[inline]
pub(crate) fn any_sleeps<'a>(
    peers_sleeping: impl IntoIterator<Item = &'a AtomicU32>,
    light: bool,
) -> bool {
    publication_fence(light);
    peers_sleeping
        .into_iter()
        .any(|f| f.load(Ordering::Relaxed) != 0)
}

/// Waiter half for a doorbell (rung by one or several notifiers, see `doorbell`):
/// announce the sleep in every flag the notifiers look at, then one barrier. Re-check every
/// ring after this; then wait on the doorbell, and [`cancel_wait`] every flag. The
/// doorbell's queue plays the sequence word: a ring before the wait is not lost.
/// Returns false if a notifier uses light barriers and the kernel refused the heavy one
/// (a ring may then be missed: cap the sleep).
pub(crate) fn prepare_doorbell_wait<'a>(
    my_flags: impl IntoIterator<Item = &'a AtomicU32>,
    any_peer_light: bool,
) -> bool {
    for flag in my_flags {
        flag.store(1, Ordering::Relaxed);
    }
    // Pairs with the fence in `any_sleeps`.
    fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    if any_peer_light {
        return crate::sys::heavy_barrier();
    }
    #[cfg(loom)]
    let _ = any_peer_light;
    true
}

/// Waiter half, step 1: announce the sleep and take the key. Re-check the condition after
/// this, then call [`sleep`] (or [`cancel_wait`] if the condition is met). `peer_light`: the
/// notifier uses light barriers, so we must run the heavy one.
#[inline]
pub(crate) fn prepare_wait(my_sleeping: &AtomicU32, peer_seq: &AtomicU32, peer_light: bool) -> u32 {
    my_sleeping.store(1, Ordering::Relaxed);
    // Pairs with the fence in `notify`.
    fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    if peer_light {
        // Forces a full barrier on the notifier's CPU; if the kernel refuses, the caller
        // caps its sleeps (see `ShmConn::sleep_cap`).
        crate::sys::heavy_barrier();
    }
    #[cfg(loom)]
    let _ = peer_light;
    // Acquire: pairs with the Release increment in `notify`.
    peer_seq.load(Ordering::Acquire)
}

/// [`prepare_wait`] that then tells the notifier which key we sleep on, for
/// [`notify_keyed`] (the announcement that orders against the notifier's publication is
/// the plain one, before the fence; this second store only narrows when it must wake us).
#[inline]
pub(crate) fn prepare_keyed_wait(
    my_sleeping: &AtomicU32,
    peer_seq: &AtomicU32,
    peer_light: bool,
) -> u32 {
    let key = prepare_wait(my_sleeping, peer_seq, peer_light);
    my_sleeping.store(KEYED | (key & !KEYED), Ordering::Relaxed);
    key
}

/// Waiter half, step 2: sleep until the key changes, a wake-up, or `timeout`.
#[inline]
pub(crate) fn sleep(
    my_sleeping: &AtomicU32,
    peer_seq: &AtomicU32,
    key: u32,
    timeout: Duration,
    futex: &impl Futex,
) {
    futex.wait(peer_seq, key, timeout);
    cancel_wait(my_sleeping);
}

/// Withdraws the sleep announcement.
#[inline]
pub(crate) fn cancel_wait(my_sleeping: &AtomicU32) {
    my_sleeping.store(0, Ordering::Relaxed);
}

/// A `Blocking` receiver's choice of barriers for its data sleeps, said in its `FENCE_ASK`
/// word (see `segment::FLAG_FENCE_ASK`): odd, "wake me with a full fence" (its sender pays
/// one per message; the receiver sleeps without the heavy barrier once the sender has
/// acknowledged the value); even, "wake me with light barriers" (the receiver runs the
/// heavy barrier, `membarrier`, before each sleep). The full fence costs the sender a
/// drain of its store buffer per message, a cross-core miss when the consumer just read
/// the line (a 64 B `Blocking` stream ran 0.42-0.74x the raw ring with it, 0.53-0.76x
/// without, alternating runs); the heavy barrier costs the receiver up to ~15 µs per
/// sleep on our VM. So the receiver asks for light barriers once [`Asking::LIGHT_AFTER`]
/// messages arrived since its last sleep (the heavy barrier then costs under 4 ns per
/// message), and for the full fence again when a sleep comes sooner than that after the
/// last one (a sparse stream, which would pay the heavy barrier at every message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asking {
    /// The current `FENCE_ASK` value: odd = fence, even = light. Every change adds one.
    epoch: u32,
    /// Messages received at our last sleep.
    at_sleep: u64,
    /// A sleep ran the heavy barrier since `epoch` was stored, while it was odd: as good as
    /// the peer's acknowledgement (see [`Asking::heavy`]).
    barrier_since: bool,
}

impl Asking {
    /// Messages between two sleeps from which light barriers pay off.
    pub(crate) const LIGHT_AFTER: u64 = 4096;

    /// The first ask: a full fence (the value a segment starts with).
    pub(crate) fn new() -> Self {
        Asking {
            epoch: 1,
            at_sleep: 0,
            barrier_since: false,
        }
    }

    /// Whether we ask for light barriers now.
    fn light(&self) -> bool {
        self.epoch & 1 == 0
    }

    /// Flips the ask and returns the new value to store in `FENCE_ASK`.
    fn flip(&mut self) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        self.barrier_since = false;
        self.epoch
    }

    /// At the start of a wait, `received` messages so far: the new ask to store, if the
    /// stream since our last sleep now pays for light barriers.
    pub(crate) fn on_wait(&mut self, received: u64) -> Option<u32> {
        (!self.light() && received.wrapping_sub(self.at_sleep) >= Self::LIGHT_AFTER)
            .then(|| self.flip())
    }

    /// Before a sleep, `received` messages so far: the new ask to store, if this sleep came
    /// too soon after the last one for light barriers to pay.
    pub(crate) fn on_sleep(&mut self, received: u64) -> Option<u32> {
        let since = received.wrapping_sub(self.at_sleep);
        self.at_sleep = received;
        (self.light() && since < Self::LIGHT_AFTER).then(|| self.flip())
    }

    /// Whether the sleep must run the heavy barrier, `ack` being the peer's `FENCE_ACK`:
    /// unless we ask for a full fence and either the peer acknowledged this very ask (its
    /// every notification since then fences; the ones before published all they wrote
    /// before the acknowledgement, which our Acquire load of it made visible), or one of
    /// our sleeps already ran the heavy barrier after we stored the ask (a notification
    /// that loaded the ask before that barrier had published its data before the load, and
    /// the barrier made it visible; one that loads it after sees the ask and fences). The
    /// second rule spares an idle receiver, whose sender says nothing and so acknowledges
    /// nothing, a `membarrier` at every timed-out sleep.
    pub(crate) fn heavy(&self, ack: u32) -> bool {
        self.light() || (ack != self.epoch && !self.barrier_since)
    }

    /// Says that the sleep [`Asking::heavy`] was asked about ran the heavy barrier.
    pub(crate) fn ran_heavy(&mut self) {
        self.barrier_since = !self.light();
    }
}

/// What a waiting loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Spin once more (`spin_loop` hint) and re-check.
    Spin,
    /// Check whether the peer is still there.
    CheckPeer,
    /// Announce sleep, re-check, and sleep for at most this long.
    Sleep(Duration),
    /// The deadline has passed.
    TimedOut,
}

/// How long a wait by `strategy` spins before its first sleep: the spin budget
/// (`Options::spin_budget`) for `Adaptive`, [`WaitStrategy::BLOCKING_SPIN`] for `Blocking`
/// (a receiver of large messages may spin longer, see [`CopyPace`]). `BusyPoll` never sleeps.
///
/// `BLOCKING_SPIN` is long enough to ride through the gaps of a stream that keeps the waiter
/// busy (a 4 KiB message every 0.5 µs on our VMs: a receiver that slept at every gap made its
/// sender pay a `futex_wake` per sleep, and streamed 0.62-0.74x raw-ring at 4 KiB), and short
/// next to a sleep (a wake-up takes 25 µs on our VMs), so a waiter of sparse traffic still
/// sleeps at once in all but name. With 2 µs, five lab runs: 0.90-1.26x at 4 KiB, 0.79-0.99x
/// at 64 B.
#[inline]
pub(crate) fn spin_limit(strategy: WaitStrategy, spin_budget: Duration) -> Duration {
    match strategy {
        WaitStrategy::Blocking => WaitStrategy::BLOCKING_SPIN,
        WaitStrategy::BusyPoll | WaitStrategy::Adaptive => spin_budget,
    }
}

/// The spin of a `Blocking` receiver, paced by its last copy.
///
/// [`WaitStrategy::BLOCKING_SPIN`] carries a stream of small messages across its gaps, but
/// a stream of 1 MiB messages has gaps as long as a copy (25-30 µs here): a receiver that
/// copies a little faster than its sender writes catches up at nearly every message and
/// slept each time, and every sleep cost the sender a `futex_wake` (a few µs on a VM, an
/// interrupt to the sleeper's CPU). So the first wait after a copy of at least
/// [`CopyPace::TIMED_MIN_BYTES`] spins as long as that copy took, up to the spin budget: a
/// sender writing messages of that size publishes the next within about that time, and the
/// spin costs the receiver at most as much CPU as the copy it follows.
#[derive(Debug, Default)]
pub(crate) struct CopyPace {
    /// How long the last timed copy since the last wait took.
    last: Duration,
}

impl CopyPace {
    /// Copies of at least this many bytes are timed (about 2 µs here, as long as
    /// `BLOCKING_SPIN`; the two clock reads cost about 40 ns). Smaller ones are not looked
    /// at: the receive path of a small message stays as it was.
    pub(crate) const TIMED_MIN_BYTES: usize = 64 * 1024;

    /// Runs `copy` (of a message of at least `TIMED_MIN_BYTES`) and notes how long it took.
    pub(crate) fn time<R>(&mut self, copy: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let copied = copy();
        self.last = start.elapsed();
        copied
    }

    /// How long the wait about to start spins before it sleeps: the last timed copy's time
    /// since the previous wait, within `BLOCKING_SPIN..=spin_budget`. Starts the next period.
    pub(crate) fn take_spin(&mut self, spin_budget: Duration) -> Duration {
        let spin = WaitStrategy::BLOCKING_SPIN;
        std::mem::take(&mut self.last).clamp(spin, spin_budget.max(spin))
    }
}

/// The schedule of one wait: when to spin, sleep, check the peer, and give up.
#[derive(Debug)]
pub(crate) struct Schedule {
    strategy: WaitStrategy,
    /// How long it spins before its first sleep (not `BusyPoll`, which never sleeps).
    spin: Duration,
    deadline: Option<Instant>,
    start: Option<Instant>,
    last_peer_check: Option<Instant>,
    spins: u32,
}

impl Schedule {
    /// The schedule of a wait by `strategy` that spins for `spin` before it sleeps (see
    /// [`spin_limit`]) and gives up at `deadline`.
    pub(crate) fn new(strategy: WaitStrategy, spin: Duration, deadline: Option<Instant>) -> Self {
        Schedule {
            strategy,
            spin,
            deadline,
            start: None,
            last_peer_check: None,
            spins: 0,
        }
    }

    /// The next step. Reads the clock once every [`SPINS_PER_CLOCK_READ`] spins, and at
    /// every step once sleeping.
    pub(crate) fn next(&mut self) -> Step {
        // Spinners read the clock only every few spins, starting after the first batch:
        // most waits end within it, and a clock read costs as much as a message.
        if self.strategy != WaitStrategy::Blocking {
            self.spins += 1;
            if !self.spins.is_multiple_of(SPINS_PER_CLOCK_READ) {
                return Step::Spin;
            }
        }
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let last = *self.last_peer_check.get_or_insert(now);
        if self.deadline.is_some_and(|d| now >= d) {
            return Step::TimedOut;
        }
        if now.duration_since(last) >= PEER_CHECK_INTERVAL {
            self.last_peer_check = Some(now);
            return Step::CheckPeer;
        }
        let spin = match self.strategy {
            WaitStrategy::BusyPoll => true,
            WaitStrategy::Adaptive | WaitStrategy::Blocking => {
                now.duration_since(start) < self.spin
            }
        };
        if spin {
            // A waiter that may sleep and has spun a while offers its CPU at each clock
            // read: on an oversubscribed machine whoever it waits for may need that CPU.
            // (Fan-out on 2 CPUs: four subscribers shared one, each spinning its whole budget
            // when it ran dry while the publisher waited for one of the others.)
            if self.strategy != WaitStrategy::BusyPoll && now.duration_since(start) >= YIELD_AFTER {
                std::thread::yield_now();
            }
            return Step::Spin;
        }
        let left = self
            .deadline
            .map_or(FUTEX_SLEEP_MAX, |d| d.duration_since(now));
        Step::Sleep(left.min(FUTEX_SLEEP_MAX))
    }
}

/// What [`drive`] asks of a waiting call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Try the operation once (a `try_*` call fails here with `WouldBlock`).
    Attempt,
    /// Look at the peer (a `poll` on the control socket).
    CheckPeer,
    /// Announce the sleep, try once more, and sleep at most this long.
    Sleep(Duration),
}

/// What a turn gave.
pub(crate) enum Outcome<T> {
    /// The operation is done.
    Done(T),
    /// Not yet, but attempt again at once (without a schedule step: a peer that just ended
    /// may still have messages to drain).
    Again,
    /// Not yet: wait as the schedule says.
    Pending,
}

/// The waiting loop of every blocking `shm://` call: attempts the operation, and between
/// attempts spins, checks the peer and sleeps as the [`Schedule`] for `strategy` says, until
/// a turn is done or fails, or `deadline` passes ([`Error::TimedOut`]). It spins as
/// [`spin_limit`] says for `strategy` and `spin_budget` before its first sleep.
///
/// Always inlined into its callers, as the loop was when each caller wrote it out: as a
/// call, it cost about 30% of the 64 B streaming rate (`shmsock pub`/`sub`, 5 M messages:
/// 6.2-6.7 M msgs/s against 8.3-9.1 M before the loops were merged, 7.7-10.0 M inlined).
#[inline(always)]
pub(crate) fn drive<T>(
    strategy: WaitStrategy,
    spin_budget: Duration,
    deadline: Option<Instant>,
    turn: impl FnMut(Turn) -> Result<Outcome<T>>,
) -> Result<T> {
    drive_spinning(strategy, spin_limit(strategy, spin_budget), deadline, turn)
}

/// [`drive`] with the spin before the first sleep given (a `Blocking` receiver's
/// [`CopyPace`]).
#[inline(always)]
pub(crate) fn drive_spinning<T>(
    strategy: WaitStrategy,
    spin: Duration,
    deadline: Option<Instant>,
    mut turn: impl FnMut(Turn) -> Result<Outcome<T>>,
) -> Result<T> {
    // Most calls succeed at the first attempt: the schedule is set up only after one failed.
    let mut schedule = None;
    loop {
        match turn(Turn::Attempt)? {
            Outcome::Done(v) => return Ok(v),
            Outcome::Again => continue,
            Outcome::Pending => {}
        }
        let schedule = schedule.get_or_insert_with(|| Schedule::new(strategy, spin, deadline));
        let next = match schedule.next() {
            Step::Spin => {
                std::hint::spin_loop();
                continue;
            }
            Step::CheckPeer => Turn::CheckPeer,
            Step::Sleep(t) => Turn::Sleep(t),
            Step::TimedOut => return Err(Error::TimedOut),
        };
        if let Outcome::Done(v) = turn(next)? {
            return Ok(v);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::vocabulary::SPIN_BUDGET_DEFAULT;

    #[test]
    fn adaptive_spins_then_sleeps_and_checks_the_peer() {
        let mut s = Schedule::new(WaitStrategy::Adaptive, Duration::from_micros(200), None);
        assert_eq!(s.next(), Step::Spin);
        let t = Instant::now();
        let mut saw_sleep = false;
        let mut saw_check = false;
        while t.elapsed() < Duration::from_millis(30) {
            match s.next() {
                Step::Sleep(d) => {
                    assert!(d <= FUTEX_SLEEP_MAX);
                    assert!(t.elapsed() >= Duration::from_micros(150));
                    saw_sleep = true;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Step::CheckPeer => saw_check = true,
                Step::TimedOut => panic!("no deadline was set"),
                Step::Spin => {}
            }
        }
        assert!(saw_sleep && saw_check);
    }

    #[test]
    fn deadline_ends_every_strategy() {
        for strategy in [
            WaitStrategy::BusyPoll,
            WaitStrategy::Adaptive,
            WaitStrategy::Blocking,
        ] {
            let deadline = Instant::now() + Duration::from_millis(3);
            let mut s = Schedule::new(strategy, SPIN_BUDGET_DEFAULT, Some(deadline));
            loop {
                match s.next() {
                    Step::TimedOut => break,
                    Step::Sleep(d) => std::thread::sleep(d),
                    _ => {}
                }
            }
            assert!(Instant::now() >= deadline, "{strategy:?}");
        }
    }

    #[test]
    fn a_receiver_asks_for_light_barriers_only_while_it_sleeps_rarely() {
        let mut a = Asking::new();
        assert!(a.heavy(0), "no acknowledgement yet");
        assert!(!a.heavy(1), "acknowledged: the sender fences");
        // A sparse stream: a sleep every few messages keeps the fence.
        for k in 1..10u64 {
            assert_eq!(a.on_wait(k * 3), None);
            assert_eq!(a.on_sleep(k * 3), None);
        }
        // A dense stream: light barriers once LIGHT_AFTER messages came without a sleep.
        assert_eq!(a.on_wait(27 + Asking::LIGHT_AFTER - 1), None);
        assert_eq!(a.on_wait(27 + Asking::LIGHT_AFTER), Some(2));
        assert!(
            a.heavy(1) && a.heavy(2),
            "light: every sleep runs the heavy barrier"
        );
        assert_eq!(a.on_wait(1 << 20), None, "already light");
        // Rare sleeps keep it light...
        assert_eq!(a.on_sleep(1 << 20), None);
        assert_eq!(a.on_sleep((1 << 20) + Asking::LIGHT_AFTER), None);
        // ...a sleep soon after the last one asks for the fence again, with a new value
        // that an old acknowledgement does not match.
        assert_eq!(a.on_sleep((1 << 20) + Asking::LIGHT_AFTER + 5), Some(3));
        assert!(a.heavy(1), "the acknowledgement of the first ask is stale");
        assert!(!a.heavy(3));
        // An idle receiver whose sender says nothing: one heavy barrier per ask.
        a.ran_heavy();
        assert!(
            !a.heavy(1),
            "a heavy barrier after the ask stands for the acknowledgement"
        );
        assert_eq!(a.on_wait((1 << 21) + Asking::LIGHT_AFTER), Some(4));
        a.ran_heavy();
        assert!(a.heavy(3), "light: every sleep runs it");
        assert_eq!(a.on_sleep((1 << 21) + Asking::LIGHT_AFTER), None);
        assert_eq!(a.on_sleep((1 << 21) + Asking::LIGHT_AFTER + 1), Some(5));
        assert!(
            a.heavy(3),
            "a new odd ask: neither acknowledged nor barriered yet"
        );
        // The counters wrap.
        let mut w = Asking {
            epoch: u32::MAX,
            at_sleep: u64::MAX - 10,
            barrier_since: false,
        };
        assert_eq!(
            w.on_wait(Asking::LIGHT_AFTER - 11),
            Some(0),
            "odd wraps to even"
        );
    }

    #[test]
    fn a_blocking_receiver_spins_as_long_as_its_last_large_copy_took_within_bounds() {
        let budget = SPIN_BUDGET_DEFAULT;
        let mut pace = CopyPace::default();
        let blocking = WaitStrategy::BLOCKING_SPIN;
        assert_eq!(pace.take_spin(budget), blocking, "nothing copied yet");
        // A copy slower than the budget: the budget caps the spin.
        let copied = pace.time(|| {
            std::thread::sleep(budget * 4);
            7
        });
        assert_eq!(copied, 7, "the copy's result comes back");
        assert_eq!(pace.take_spin(budget), budget);
        assert_eq!(pace.take_spin(budget), blocking, "one wait per copy");
        // A spin budget under BLOCKING_SPIN never shortens the Blocking spin.
        pace.time(|| std::thread::sleep(budget));
        assert_eq!(pace.take_spin(Duration::ZERO), blocking);
        // A copy shorter than the budget: its own time.
        pace.time(|| std::thread::sleep(budget / 5));
        let spin = pace.take_spin(Duration::from_secs(1));
        assert!(
            spin >= budget / 5 && spin < Duration::from_secs(1),
            "spin {spin:?} after a copy of at least {:?}",
            budget / 5
        );
        // The other strategies: the spin budget, or BLOCKING_SPIN.
        assert_eq!(spin_limit(WaitStrategy::Adaptive, budget), budget);
        assert_eq!(spin_limit(WaitStrategy::Blocking, budget), blocking);
    }

    #[test]
    fn a_blocking_schedule_spins_for_the_spin_it_was_given() {
        let spin = Duration::from_micros(300);
        let mut s = Schedule::new(WaitStrategy::Blocking, spin, None);
        // Before the schedule's clock starts (its first step), so at least as long ago.
        let start = Instant::now();
        assert_eq!(s.next(), Step::Spin, "the first step of a 300 us spin");
        loop {
            match s.next() {
                Step::Spin => {}
                Step::Sleep(_) => {
                    let spun = start.elapsed();
                    assert!(spun >= spin, "slept after {spun:?} of a {spin:?} spin");
                    break;
                }
                Step::CheckPeer => {}
                Step::TimedOut => panic!("no deadline was set"),
            }
        }
    }

    #[test]
    fn blocking_spins_briefly_then_sleeps() {
        let spin = spin_limit(WaitStrategy::Blocking, SPIN_BUDGET_DEFAULT);
        assert_eq!(spin, WaitStrategy::BLOCKING_SPIN);
        let mut s = Schedule::new(WaitStrategy::Blocking, spin, None);
        // The schedule's clock starts at its first step: measure from there too, after it.
        assert!(matches!(s.next(), Step::Spin | Step::Sleep(_)));
        let start = Instant::now();
        let mut slept = false;
        while !slept {
            let asked = Instant::now();
            match s.next() {
                // It may spin only while less than `BLOCKING_SPIN` has passed since its
                // first step, which came before `asked`.
                Step::Spin => assert!(
                    asked.duration_since(start) < WaitStrategy::BLOCKING_SPIN,
                    "a Blocking waiter spun {:?} after its first step",
                    asked.duration_since(start)
                ),
                Step::Sleep(_) => slept = true,
                Step::CheckPeer => {}
                Step::TimedOut => panic!("no deadline was set"),
            }
        }
        // It slept: either its first step already slept, or it spun until BLOCKING_SPIN.
        // Once it has slept, every later step sleeps (or checks the peer).
        for _ in 0..10 {
            assert!(matches!(s.next(), Step::Sleep(_) | Step::CheckPeer));
        }
    }
}
