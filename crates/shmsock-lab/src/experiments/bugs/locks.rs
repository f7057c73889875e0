//! Bugs 1 and 3, locks in shared memory: a mutex without `PTHREAD_PROCESS_SHARED`, and a
//! process that dies holding one; next to shmsock doing the same jobs with no lock shared.

use std::convert::Infallible;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use rustix::process::Pid;
use shmsock::{Conn, Error, Inbox, Options};

use super::naive::{self, SharedMutex, MUTEX_BYTES};
use super::{
    fmt_int, fmt_secs, fork_naive, wait_or_kill, Bug, BugOutcome, BugRow, Ended, Ends, Plan,
    Stderr, MUTEX_RUNS, NAIVE_SETUP_FAILED, STEP_TIMEOUT, WATCHDOG_SECS,
};
use crate::error::LabError;
use crate::experiments::{get_seq, now_ns, put_seq, Window};
use crate::host::Pinning;
use crate::mechanisms::shmsock::{lib, retry_refused, unique_endpoint, Connection};
use crate::process::{
    fork_child, kill_child, outcome, wait_child, wait_until, ChildEnd, ChildReport, Children,
    Pause, CHILD_EXIT_FAILED,
};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

/// Workers that reached the start line (the mutex is at offset 0).
const READY: usize = MUTEX_BYTES;
/// The shared counter.
const COUNTER: usize = READY + CACHE_LINE_BYTES;
/// Worker k's finished increments are at `DONE + k * CACHE_LINE_BYTES`.
const DONE: usize = COUNTER + CACHE_LINE_BYTES;
/// Worker k's start and end, ns of `CLOCK_MONOTONIC` (0: not yet).
const STARTED: usize = DONE + 2 * CACHE_LINE_BYTES;
const ENDED: usize = STARTED + 2 * CACHE_LINE_BYTES;
const COUNT_BYTES: usize = ENDED + 2 * CACHE_LINE_BYTES;

/// One run of two workers counting under one mutex.
struct CountRun {
    /// 2 × the increments per worker.
    expected: u64,
    /// The counter at the end.
    counter: u64,
    /// Increments the workers finished (lock, add, unlock, counted).
    done: u64,
    ends: Ends,
    /// glibc's message, if a worker printed one before it died.
    stderr: Option<String>,
    elapsed: Duration,
}

impl CountRun {
    fn wrong(&self) -> bool {
        self.counter != self.expected || self.ends.hung > 0 || !self.ends.crashed.is_empty()
    }

    /// Increments a worker finished that the counter does not have: two holders at once.
    fn lost(&self) -> u64 {
        self.done.saturating_sub(self.counter)
    }
}

/// Two worker processes on two CPUs add 1 to a shared counter `n` times each under a mutex in
/// shared memory, initialised with default attributes or `PTHREAD_PROCESS_SHARED`; a worker
/// still running after `bound` from the start is killed.
fn count_under_mutex(
    n: u64,
    process_shared: bool,
    bound: Duration,
    pinning: Pinning,
) -> Result<CountRun, LabError> {
    let region = SharedRegion::new(COUNT_BYTES)?;
    let mutex = if process_shared {
        SharedMutex::init_process_shared(&region, 0)?
    } else {
        SharedMutex::init_default(&region, 0)?
    };
    let stderr = Stderr::new()?;
    let mut pids: Vec<Pid> = Vec::with_capacity(2);
    let forked = [pinning.child_cpu, pinning.parent_cpu]
        .into_iter()
        .enumerate()
        .try_for_each(|(k, cpu)| {
            let pid = fork_naive(cpu, &stderr, || {
                // Both start together, on their two CPUs.
                let ready = region.atomic_u64(READY);
                ready.fetch_add(1, Relaxed);
                while ready.load(Relaxed) < 2 {
                    rustix::thread::sched_yield();
                }
                let line = k * CACHE_LINE_BYTES;
                region.atomic_u64(STARTED + line).store(now_ns(), Relaxed);
                let done = region.atomic_u64(DONE + line);
                match naive::count_under(&mutex, region.atomic_u64(COUNTER), done, n) {
                    Ok(()) => {
                        region.atomic_u64(ENDED + line).store(now_ns(), Relaxed);
                        0
                    }
                    Err(_) => NAIVE_SETUP_FAILED,
                }
            })?;
            pids.push(pid);
            Ok(())
        })
        .and_then(|()| {
            wait_until(
                "waiting for both workers to start",
                STEP_TIMEOUT,
                Pause::Sleep(Duration::from_millis(1)),
                || region.atomic_u64(READY).load(Relaxed) >= 2,
                || None,
            )
        });
    let started = Instant::now();
    if forked.is_err() {
        pids.iter().for_each(|&pid| kill_child(pid));
    }
    let deadline = started + bound;
    let mut ends = Ends::default();
    let mut failure = forked.err();
    for (k, pid) in pids.into_iter().enumerate() {
        let counted = wait_or_kill(pid, deadline)
            .and_then(|ended| ends.count(&format!("worker {k}"), ended, started.elapsed(), None));
        if let Err(err) = counted {
            failure.get_or_insert(err);
        }
    }
    if let Some(err) = failure {
        return Err(err);
    }
    let word = |base: usize, k: usize| region.atomic_u64(base + k * CACHE_LINE_BYTES).load(Relaxed);
    let done = (0..2).map(|k| word(DONE, k)).sum();
    // The workers' own times: they may finish before the parent sees them start.
    let (first, last) = (0..2).fold((u64::MAX, 0), |(first, last), k| {
        (first.min(word(STARTED, k)), last.max(word(ENDED, k)))
    });
    let all_ended = (0..2).all(|k| word(ENDED, k) != 0);
    let elapsed = if all_ended {
        Duration::from_nanos(last.saturating_sub(first))
    } else {
        started.elapsed()
    };
    Ok(CountRun {
        expected: 2 * n,
        counter: region.atomic_u64(COUNTER).load(Relaxed),
        done,
        ends,
        stderr: stderr.first_line(),
        elapsed,
    })
}

/// Bug 1: the naive runs, the control with `PTHREAD_PROCESS_SHARED`, and shmsock's count.
pub(super) fn private_mutex(plan: &Plan, pinning: Pinning) -> Result<BugRow, LabError> {
    let started = Instant::now();
    let n = plan.increments;
    let runs = (0..MUTEX_RUNS)
        .map(|_| count_under_mutex(n, false, plan.hang_bound, pinning))
        .collect::<Result<Vec<_>, _>>()?;
    let naive_time = started;
    let control = count_under_mutex(n, true, plan.hang_bound, pinning)?;
    let expected: u64 = runs.iter().map(|r| r.expected).sum();
    let counted: u64 = runs.iter().map(|r| r.counter).sum();
    let done: u64 = runs.iter().map(|r| r.done).sum();
    let lost: u64 = runs.iter().map(CountRun::lost).sum();
    let wrong = runs.iter().filter(|r| r.wrong()).count();
    let mut ends = Ends::default();
    for run in &runs {
        ends.hung += run.ends.hung;
        ends.crashed.extend(run.ends.crashed.iter().cloned());
        ends.waited = ends.waited.max(run.ends.waited);
    }
    let counters: Vec<String> = runs.iter().map(|r| fmt_int(r.counter)).collect();
    let mut result = format!(
        "{wrong} of {MUTEX_RUNS} runs wrong: counter {} of {} each",
        counters.join(", "),
        fmt_int(2 * n)
    );
    let processes = ends.describe("worker");
    if !processes.is_empty() {
        result.push_str("; ");
        result.push_str(&processes);
    }
    let mut detail = format!(
        "The workers finished {} of {} increments; the counters have {}.",
        fmt_int(done),
        fmt_int(expected),
        fmt_int(counted)
    );
    if lost > 0 {
        detail.push_str(&format!(
            " {} finished increments are not in the counter: both processes held the mutex at \
             once (glibc takes a mutex that is not process-shared with a plain store, not an \
             atomic exchange, when its process has one thread).",
            fmt_int(lost)
        ));
    }
    let never = expected.saturating_sub(done);
    if never > 0 {
        let mut why = Vec::new();
        if ends.hung > 0 {
            why.push(
                "a worker waiting for the mutex slept on a futex private to its own process, \
                 which the other process never wakes, until the lab killed it"
                    .to_string(),
            );
        }
        if !ends.crashed.is_empty() {
            let said = runs
                .iter()
                .find_map(|r| r.stderr.clone())
                .map(|line| format!(": \"{line}\""))
                .unwrap_or_default();
            let mut signals = ends.crashed.clone();
            signals.sort();
            signals.dedup();
            why.push(format!(
                "{} killed by {}{said}",
                if ends.crashed.len() == 1 {
                    "a worker was".to_string()
                } else {
                    format!("{} workers were", ends.crashed.len())
                },
                signals.join(", ")
            ));
        }
        detail.push_str(&format!(
            " {} were never made: {}.",
            fmt_int(never),
            why.join("; ")
        ));
    }
    detail.push_str(&format!(
        " Control, the same loop with PTHREAD_PROCESS_SHARED: counter {} of {} in {}{}.",
        fmt_int(control.counter),
        fmt_int(control.expected),
        fmt_secs(control.elapsed),
        if control.wrong() {
            format!(" (wrong too: {})", control.ends.describe("worker"))
        } else {
            String::new()
        }
    ));
    let naive = BugOutcome::new(
        format!(
            "pthread_mutex_init(&m, NULL) in a MAP_SHARED mapping; 2 processes on 2 CPUs, each \
             {} × (lock, counter = counter + 1, unlock); {MUTEX_RUNS} runs.",
            fmt_int(n)
        ),
        result,
        detail,
        (
            expected.saturating_sub(counted),
            expected,
            "increments missing from the counter",
        ),
        &ends,
        naive_time,
    );
    let shmsock = count_by_messages(n, pinning)?;
    Ok(BugRow::new(Bug::PrivateMutex, naive, shmsock))
}

/// shmsock's count: two writer processes send `n` increments each as 8-byte messages to an
/// `Inbox` in the parent, which adds them up.
fn count_by_messages(n: u64, pinning: Pinning) -> Result<BugOutcome, LabError> {
    let started = Instant::now();
    let endpoint = unique_endpoint();
    let watchdog = Duration::from_secs(WATCHDOG_SECS.into());
    let mut children = Children::new();
    for k in 0..2 {
        let endpoint = &endpoint;
        children.fork(
            format!("writer {k}"),
            pinning.child_cpu,
            watchdog,
            move || {
                // The inbox is bound after the forks (it runs an accept thread).
                let mut conn = retry_refused(|| Conn::connect(endpoint)).map_err(lib("connect"))?;
                let window = Window::start();
                let one = 1u64.to_le_bytes();
                for _ in 0..n {
                    conn.send(&one).map_err(lib("send"))?;
                }
                Ok(window.stop())
            },
        )?;
    }
    let summed = (|| {
        let mut inbox = Inbox::bind(&endpoint).map_err(lib("bind"))?;
        let mut buf = [0u8; 8];
        let (mut sum, mut wrong) = (0u64, 0u64);
        for _ in 0..2 * n {
            let (len, _) = inbox
                .recv_from_timeout(&mut buf, STEP_TIMEOUT)
                .map_err(lib("inbox recv"))?;
            if len == 8 {
                sum += u64::from_le_bytes(buf);
            } else {
                wrong += 1;
            }
        }
        Ok((sum, wrong))
    })();
    if summed.is_err() {
        children.kill_all();
    }
    let ((sum, wrong), _) = outcome("inbox", summed, children.reap(STEP_TIMEOUT))?;
    let expected = 2 * n;
    let missing = expected.abs_diff(sum) + wrong;
    Ok(BugOutcome::new(
        format!(
            "2 writer processes (Conn, default options) send {} increments each as 8-byte \
             messages to an Inbox in a third process, which adds them up; no lock anywhere.",
            fmt_int(n)
        ),
        format!("counter {} of {}", fmt_int(sum), fmt_int(expected)),
        format!(
            "The Inbox took {} messages ({} malformed) in {}: each writer has a ring of its own \
             with one writer, so there is nothing to lock.",
            fmt_int(expected),
            fmt_int(wrong),
            fmt_secs(started.elapsed())
        ),
        (missing, expected, "increments missing from the counter"),
        &Ends::default(),
        started,
    ))
}

/// Words of bug 3's control region (the mutex is at offset 0).
const HELD: usize = MUTEX_BYTES;
const WAITING: usize = HELD + CACHE_LINE_BYTES;
const GOT: usize = WAITING + CACHE_LINE_BYTES;
const HOLD_BYTES: usize = GOT + CACHE_LINE_BYTES;

/// Bug 3: a holder SIGKILLed with the lock; a survivor waits for it. shmsock: a writer
/// SIGKILLed mid-stream; the reader gets `PeerGone`.
pub(super) fn dead_holder(plan: &Plan, pinning: Pinning) -> Result<BugRow, LabError> {
    let started = Instant::now();
    let region = SharedRegion::new(HOLD_BYTES)?;
    let mutex = SharedMutex::init_process_shared(&region, 0)?;
    let stderr = Stderr::new()?;
    let holder = fork_naive(pinning.child_cpu, &stderr, || {
        let _ = naive::hold_until_killed(&mutex, region.atomic_u64(HELD));
        NAIVE_SETUP_FAILED
    })?;
    let held = wait_until(
        "waiting for the holder to take the lock",
        STEP_TIMEOUT,
        Pause::Sleep(Duration::from_millis(1)),
        || region.atomic_u64(HELD).load(Acquire) == 1,
        || None,
    );
    kill_child(holder);
    let holder_end = wait_or_kill(holder, Instant::now() + STEP_TIMEOUT)?;
    held?;
    if holder_end != Ended::Signaled(libc::SIGKILL) {
        return Err(LabError::Child {
            detail: format!("the lock holder ended before its SIGKILL: {holder_end:?}"),
        });
    }
    let survivor = fork_naive(pinning.child_cpu, &stderr, || {
        region.atomic_u64(WAITING).store(1, Release);
        match mutex.lock() {
            Ok(()) => {
                region.atomic_u64(GOT).store(1, Release);
                let _ = mutex.unlock();
                0
            }
            Err(_) => NAIVE_SETUP_FAILED,
        }
    })?;
    let waiting = wait_until(
        "waiting for the survivor to start",
        STEP_TIMEOUT,
        Pause::Sleep(Duration::from_millis(1)),
        || region.atomic_u64(WAITING).load(Acquire) == 1,
        || None,
    );
    if waiting.is_err() {
        kill_child(survivor);
    }
    let asked = Instant::now();
    let ended = wait_or_kill(survivor, asked + plan.hang_bound)?;
    let waited = asked.elapsed();
    waiting?;
    let mut ends = Ends::default();
    ends.count("the survivor", ended, waited, None)?;
    let got = region.atomic_u64(GOT).load(Acquire) == 1;
    let (result, detail) = if got {
        (
            format!("the survivor got the lock after {}", fmt_secs(waited)),
            "Something released the dead holder's lock: this glibc or kernel cleans up after \
             a dead holder."
                .to_string(),
        )
    } else {
        (
            format!(
                "survivor hung in pthread_mutex_lock, killed by the lab after {}",
                fmt_secs(waited)
            ),
            format!(
                "The holder was SIGKILLed inside its critical section; the survivor then waited \
                 {} for a lock nobody will ever release (a robust mutex would have returned \
                 EOWNERDEAD), until the lab killed it.{}",
                fmt_secs(waited),
                stderr
                    .first_line()
                    .map(|l| format!(" It printed: \"{l}\"."))
                    .unwrap_or_default()
            ),
        )
    };
    let naive = BugOutcome::new(
        "a PTHREAD_PROCESS_SHARED mutex (default kind: not robust) in shared memory; its \
         holder is SIGKILLed inside the critical section, then another process calls \
         pthread_mutex_lock.",
        result,
        detail,
        (u64::from(!got), 1, "survivors that never got the lock"),
        &ends,
        started,
    );
    let shmsock = writer_killed(plan, pinning)?;
    Ok(BugRow::new(Bug::DeadHolder, naive, shmsock))
}

/// Size of the streamed messages of bug 3's shmsock run.
const STREAM_SIZE: usize = 64;
/// Where the writer counts the messages it sent.
const SENT: usize = 0;

/// shmsock's side of bug 3: a writer process streams numbered messages until it is
/// SIGKILLed, after the parent received `plan.before_kill`; the parent keeps receiving.
fn writer_killed(plan: &Plan, pinning: Pinning) -> Result<BugOutcome, LabError> {
    let started = Instant::now();
    let (mut reader, mut writer) = Connection::pair(Options::new(), Options::new())?;
    let control = SharedRegion::new(CACHE_LINE_BYTES)?;
    let report = ChildReport::new()?;
    let pid = fork_child(pinning.child_cpu, WATCHDOG_SECS, || {
        let Err(err) = stream_until_killed(&mut writer, &control);
        report.finish(&Err(err));
        CHILD_EXIT_FAILED
    })?;
    let before = receive_before_kill(&mut reader, plan.before_kill);
    kill_child(pid);
    let killed_at = Instant::now();
    let after = before.and_then(|()| drain(&mut reader, plan.before_kill));
    let noticed = killed_at.elapsed();
    let end = wait_child(pid, STEP_TIMEOUT)?;
    let (received, wrong, ending) = match after {
        Ok(drained) => drained,
        Err(err) => {
            return Err(LabError::Child {
                detail: format!("{err}; the writer: {}", report.failure(end)),
            })
        }
    };
    if end != ChildEnd::Signaled(libc::SIGKILL) {
        return Err(LabError::Child {
            detail: format!(
                "the writer ended before its SIGKILL: {}",
                report.failure(end)
            ),
        });
    }
    let sent = control.atomic_u64(SENT).load(Acquire);
    let lost = sent.saturating_sub(received);
    let gone = matches!(ending, Error::PeerGone { .. });
    let failures = lost + wrong + u64::from(!gone);
    let result = if gone {
        format!(
            "PeerGone {} after the SIGKILL; {} of {} messages sent lost",
            fmt_secs(noticed),
            fmt_int(lost),
            fmt_int(sent)
        )
    } else {
        format!("the reader got \"{ending}\" instead of PeerGone")
    };
    Ok(BugOutcome::new(
        format!(
            "a writer process streams {STREAM_SIZE} B messages (Conn, default options) and is \
             SIGKILLed once the reader has {}; the reader keeps receiving.",
            fmt_int(plan.before_kill)
        ),
        result,
        format!(
            "The writer had sent {} (counted after each send); the reader received {}{} in \
             order ({} out of order), then \"{ending}\" {} after the kill. No lock is left \
             held: each ring has one writer, and a dead peer shows as its closed Unix socket.",
            fmt_int(sent),
            fmt_int(received),
            if received == sent + 1 {
                " (one more: the kill landed between a send and its count)"
            } else {
                ""
            },
            fmt_int(wrong),
            fmt_secs(noticed)
        ),
        (
            failures,
            sent.max(received),
            "messages lost or out of order",
        ),
        &Ends::default(),
        started,
    ))
}

/// The writer of bug 3's shmsock run: connects and sends numbered messages until it is
/// killed, counting them in the control region. Returns only an error.
fn stream_until_killed(
    writer: &mut Connection,
    control: &SharedRegion,
) -> Result<Infallible, LabError> {
    writer.start()?;
    let conn = writer.conn()?;
    let mut msg = [0u8; STREAM_SIZE];
    let sent = control.atomic_u64(SENT);
    let mut seq = 0u64;
    loop {
        seq += 1;
        put_seq(&mut msg, seq);
        conn.send(&msg).map_err(lib("send"))?;
        sent.store(seq, Release);
    }
}

/// Accepts the writer and receives its first `count` messages, checking their numbers.
fn receive_before_kill(reader: &mut Connection, count: u64) -> Result<(), LabError> {
    reader.start()?;
    let conn = reader.conn()?;
    let mut buf = [0u8; STREAM_SIZE];
    for expected in 1..=count {
        let n = conn.recv(&mut buf).map_err(lib("recv"))?;
        let seq = get_seq(&buf[..n]);
        if seq != Some(expected) {
            return Err(LabError::Integrity {
                detail: format!("expected message {expected}, got {seq:?}"),
            });
        }
    }
    Ok(())
}

/// After the kill: receives until the connection ends; (messages received in all, messages
/// out of order, the error that ended it).
fn drain(reader: &mut Connection, received: u64) -> Result<(u64, u64, Error), LabError> {
    let conn = reader.conn()?;
    let mut buf = [0u8; STREAM_SIZE];
    let (mut expected, mut wrong) = (received + 1, 0u64);
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match conn.recv_timeout(&mut buf, left) {
            Ok(n) => {
                if get_seq(&buf[..n]) != Some(expected) {
                    wrong += 1;
                }
                expected += 1;
            }
            Err(Error::TimedOut) => {
                return Err(LabError::Stalled {
                    what: "waiting for the reader to notice the killed writer",
                    waited: STEP_TIMEOUT,
                })
            }
            Err(err) => return Ok((expected - 1, wrong, err)),
        }
    }
}
