//! Bugs 2, 4 and 5, memory in shared memory: a `strcpy` past a fixed buffer, a torn read,
//! a pointer followed by another process; next to shmsock doing the same jobs.

use std::ffi::CString;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use shmsock::{Error, Options};

use super::naive::{self, Record, Records, DATA_BYTES, TORN_WORDS};
use super::{
    fmt_int, fmt_secs, fork_naive, wait_or_kill, Bug, BugOutcome, BugRow, Ended, Ends, Plan,
    Stderr, NAIVE_SETUP_FAILED, NODES, OVERLONG_BYTES, OVERLONG_EVERY, RECORDS, STEP_TIMEOUT,
    WATCHDOG_SECS,
};
use crate::error::LabError;
use crate::host::Pinning;
use crate::mechanisms::shm_open;
use crate::mechanisms::shmsock::{lib, Connection};
use crate::process::{outcome, wait_until, ChildStats, Children, Pause};
use crate::shared::{SharedRegion, CACHE_LINE_BYTES};

/// The text record `i` holds before the updates.
fn initial_text(i: usize) -> String {
    format!("record {i:02} version 1")
}

/// Whether update `i` is one of the too-long ones.
fn overlong(i: usize) -> bool {
    i % OVERLONG_EVERY == OVERLONG_EVERY / 2 - 1
}

/// The text of update `i`: short, or [`OVERLONG_BYTES`] long for one in [`OVERLONG_EVERY`].
fn update_text(i: usize) -> CString {
    let mut text = format!("record {i:02} version 2");
    if overlong(i) {
        text.push_str(", with a description nobody measured against data[64]");
        while text.len() < OVERLONG_BYTES {
            text.push_str(" and more");
        }
        text.truncate(OVERLONG_BYTES);
    }
    CString::new(text).unwrap_or_default()
}

/// What a record holds as text (up to its first NUL), for the report.
fn printable(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Bug 2: the naive writer's overflows, what they damaged, a later update of a damaged
/// record; then shmsock's loans of 64-byte slots.
pub(super) fn overflow(plan: &Plan, pinning: Pinning) -> Result<BugRow, LabError> {
    let started = Instant::now();
    let texts: Vec<CString> = (0..RECORDS).map(update_text).collect();
    let overlongs = (0..RECORDS).filter(|&i| overlong(i)).count() as u64;
    let region = SharedRegion::new(Records::bytes(RECORDS))?;
    let records = Records::new(&region, RECORDS);
    for i in 0..records.len() {
        records.write(i, &Record::holding(1, initial_text(i).as_bytes()));
    }
    let stderr = Stderr::new()?;
    let mut ends = Ends::default();
    // The writer updates the records from the last to the first, so every overflow lands in a
    // record already updated: nothing writes over the damage afterwards.
    let writer = fork_naive(pinning.child_cpu, &stderr, || {
        for (i, text) in texts.iter().enumerate().rev() {
            records.update_data(i, text);
        }
        0
    })?;
    let forked = Instant::now();
    let ended = wait_or_kill(writer, forked + plan.hang_bound)?;
    ends.count("the writer", ended, forked.elapsed(), None)?;
    let meant: Vec<Record> = texts
        .iter()
        .map(|t| Record::holding(2, t.as_bytes()))
        .collect();
    let damaged: Vec<(usize, Record)> = (0..records.len())
        .map(|i| (i, records.read(i)))
        .filter(|(i, got)| *got != meant[*i])
        .collect();
    let count = |f: fn(&Record) -> bool| damaged.iter().filter(|(_, r)| f(r)).count();
    let locks = count(|r| r.lock > 1);
    let checksums = count(|r| r.checksum != naive::checksum(&r.data));
    let versions = count(|r| r.version != 2);
    let mut detail = format!(
        "{} of the {} updates were {} bytes long; {} records now differ from what the writer \
         meant: {locks} lock words, {versions} versions and {checksums} checksums damaged. The \
         overlong updates' own records look right (their checksums were computed after the \
         copy).",
        fmt_int(overlongs),
        RECORDS,
        OVERLONG_BYTES,
        damaged.len()
    );
    let mut later = String::new();
    if let Some((j, hit)) = damaged.first() {
        detail.push_str(&format!(
            " Record {j}: lock word 0x{:016x} (\"{}\"), version {}, data \"{}\".",
            hit.lock,
            printable(&hit.lock.to_le_bytes()),
            hit.version,
            printable(&hit.data)
        ));
        // "Crash in unrelated code later": the next update of that record, by another process.
        let next = fork_naive(pinning.child_cpu, &stderr, || {
            records.update_data(*j, c"a later update");
            0
        })?;
        let asked = Instant::now();
        let ended = wait_or_kill(next, asked + plan.hang_bound)?;
        let waited = asked.elapsed();
        ends.count("the later update", ended, waited, None)?;
        later = match ended {
            Ended::Hung => format!("; a later update hung, killed after {}", fmt_secs(waited)),
            _ => format!("; a later update of record {j} ended: {ended:?}"),
        };
        detail.push_str(&format!(
            " Then another process updated record {j} with update_data: it spun on a lock word \
             that holds text and will never read 0 again ({}).",
            if ended == Ended::Hung {
                format!("hung, killed by the lab after {}", fmt_secs(waited))
            } else {
                format!("it ended: {ended:?}")
            }
        ));
    }
    let naive = BugOutcome::new(
        format!(
            "the Comparison's shared_t × {RECORDS} in shared memory (lock word, version, \
             data[{DATA_BYTES}], checksum); a writer process calls update_data (lock, \
             version++, strcpy, checksum, unlock) on every record, the parent checks them."
        ),
        format!(
            "{} of {} records damaged (lock, version, checksum){later}",
            damaged.len(),
            RECORDS
        ),
        detail,
        (damaged.len() as u64, RECORDS as u64, "records damaged"),
        &ends,
        started,
    );
    let shmsock = overflow_with_loans(&texts, pinning)?;
    Ok(BugRow::new(Bug::Overflow, naive, shmsock))
}

/// Bytes of the loan slots of bug 2's shmsock run: the records' `data[64]`.
const SLOT_BYTES: usize = 64;
/// Words of the sender's report: updates refused, and the limit the refusal gave.
const REFUSED: usize = 0;
const LIMIT: usize = CACHE_LINE_BYTES;
const ASKED: usize = 2 * CACHE_LINE_BYTES;

/// shmsock's side of bug 2: the same updates as loans of 64-byte slots (record index, text,
/// NUL); the receiver applies them to records of its own and checks every one.
fn overflow_with_loans(texts: &[CString], pinning: Pinning) -> Result<BugOutcome, LabError> {
    let started = Instant::now();
    let pool = Options::new().loan_pool(8, SLOT_BYTES);
    let (mut receiver, sender) = Connection::pair(Options::new(), pool)?;
    let control = SharedRegion::new(3 * CACHE_LINE_BYTES)?;
    let watchdog = Duration::from_secs(WATCHDOG_SECS.into());
    let mut children = Children::new();
    let report = &control;
    children.fork("sender", pinning.child_cpu, watchdog, move || {
        let mut sender = sender;
        sender.start()?;
        let conn = sender.conn()?;
        for (i, text) in texts.iter().enumerate().rev() {
            let text = text.as_bytes_with_nul();
            match conn.loan(1 + text.len()) {
                Ok(mut loan) => {
                    loan[0] = u8::try_from(i).unwrap_or(u8::MAX);
                    loan[1..].copy_from_slice(text);
                    loan.send().map_err(lib("send a loan"))?;
                }
                Err(Error::TooLarge { len, max }) => {
                    report.atomic_u64(REFUSED).fetch_add(1, Relaxed);
                    report.atomic_u64(LIMIT).store(max as u64, Relaxed);
                    report.atomic_u64(ASKED).store(len as u64, Relaxed);
                }
                Err(err) => return Err(lib("loan")(err)),
            }
        }
        // Dropping the side closes the connection: the receiver gets PeerClosed.
        drop(sender);
        Ok(ChildStats::default())
    })?;
    let mut mine: Vec<Record> = (0..RECORDS)
        .map(|i| Record::holding(1, initial_text(i).as_bytes()))
        .collect();
    let applied = (|| {
        receiver.start()?;
        let conn = receiver.conn()?;
        let mut slot = [0u8; SLOT_BYTES];
        let mut applied = 0u64;
        loop {
            let sample = match conn.recv_sample() {
                Ok(sample) => sample,
                Err(Error::PeerClosed { .. }) => return Ok(applied),
                Err(err) => return Err(lib("recv_sample")(err)),
            };
            let n = sample.len();
            if n == 0 || n > SLOT_BYTES {
                return Err(LabError::Integrity {
                    detail: format!("an update of {n} bytes arrived; slots are {SLOT_BYTES}"),
                });
            }
            sample.copy_to(&mut slot);
            let i = usize::from(slot[0]);
            let Some(record) = mine.get_mut(i) else {
                return Err(LabError::Integrity {
                    detail: format!("an update for record {i} arrived; there are {RECORDS}"),
                });
            };
            let text = &slot[1..n];
            let len = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            *record = Record::holding(record.version + 1, &text[..len]);
            applied += 1;
        }
    })();
    if applied.is_err() {
        children.kill_all();
    }
    let (applied, _) = outcome("receiver", applied, children.reap(STEP_TIMEOUT))?;
    let refused = control.atomic_u64(REFUSED).load(Relaxed);
    let overlongs = (0..RECORDS).filter(|&i| overlong(i)).count() as u64;
    let damaged = (0..RECORDS)
        .filter(|&i| {
            let meant = if overlong(i) {
                Record::holding(1, initial_text(i).as_bytes())
            } else {
                Record::holding(2, texts[i].as_bytes())
            };
            mine[i] != meant
        })
        .count() as u64;
    let unrefused = overlongs.abs_diff(refused);
    Ok(BugOutcome::new(
        format!(
            "the same {RECORDS} updates from a sender process, each a loan of a \
             {SLOT_BYTES}-byte slot (record index, text, NUL); the receiver applies them to its \
             own records and checks them."
        ),
        format!(
            "{} overlong updates refused (TooLarge); {} of {} records damaged",
            fmt_int(refused),
            damaged,
            RECORDS
        ),
        format!(
            "Conn::loan({} bytes) on a pool of {}-byte slots returned TooLarge before a byte \
             was written, {} times; the other {} updates arrived and were applied, every record \
             is as meant and no lock word exists to damage (the sender writes only its own \
             slots; the receiver copies at most a slot).",
            control.atomic_u64(ASKED).load(Relaxed),
            control.atomic_u64(LIMIT).load(Relaxed),
            fmt_int(refused),
            fmt_int(applied)
        ),
        (damaged + unrefused, RECORDS as u64, "records damaged"),
        &Ends::default(),
        started,
    ))
}

/// Words of the torn read's region after the record.
const STOP: usize = 8 * TORN_WORDS;
const REWRITES: usize = STOP + CACHE_LINE_BYTES;
const TORN_BYTES: usize = REWRITES + CACHE_LINE_BYTES;
/// The reader looks at the clock once per this many copies.
const CLOCK_EVERY: u64 = 256;
/// Size of the torn read's record and messages.
const TORN_SIZE: usize = 8 * TORN_WORDS;

/// Bug 4: a writer rewrites a 4 KiB record in place; the parent copies it with nothing
/// between them and counts the torn copies. shmsock: as many 4 KiB messages, every word
/// checked.
pub(super) fn torn_read(plan: &Plan, pinning: Pinning) -> Result<BugRow, LabError> {
    let started = Instant::now();
    let region = SharedRegion::new(TORN_BYTES)?;
    let (stop, rewrites) = (region.atomic_u64(STOP), region.atomic_u64(REWRITES));
    let stderr = Stderr::new()?;
    let writer = fork_naive(pinning.child_cpu, &stderr, || {
        naive::rewrite_in_place(&region, 0, stop, rewrites);
        0
    })?;
    let first = wait_until(
        "waiting for the writer's first rewrite",
        STEP_TIMEOUT,
        Pause::Yield,
        || rewrites.load(Relaxed) > 0,
        || None,
    );
    let mut copy = [0u64; TORN_WORDS];
    let (mut copies, mut torn, mut widest) = (0u64, 0u64, 0u64);
    let copying = Instant::now();
    if first.is_ok() {
        while copies < plan.copies
            && (!copies.is_multiple_of(CLOCK_EVERY) || copying.elapsed() < plan.copy_time)
        {
            copies += 1;
            if !naive::copy_unsynchronised(&region, 0, &mut copy) {
                torn += 1;
                let (lo, hi) = copy
                    .iter()
                    .fold((u64::MAX, 0), |(lo, hi), &w| (lo.min(w), hi.max(w)));
                widest = widest.max(hi - lo);
            }
        }
    }
    let copy_time = copying.elapsed();
    stop.store(1, Release);
    let mut ends = Ends::default();
    let ended = wait_or_kill(writer, Instant::now() + STEP_TIMEOUT)?;
    first?;
    ends.count("the writer", ended, STEP_TIMEOUT, None)?;
    let rewritten = rewrites.load(Relaxed);
    let naive = BugOutcome::new(
        format!(
            "a writer process rewrites a {} record in place (every 8-byte word the rewrite's \
             number) as fast as it can; the parent, on the other CPU, copies it word by word \
             with no lock and no version check, and checks the copy's words agree.",
            crate::format::fmt_size(TORN_SIZE)
        ),
        format!("{} of {} copies torn", fmt_int(torn), fmt_int(copies)),
        format!(
            "{} copies in {} while the writer finished {} rewrites; the worst torn copy mixed \
             words written {} rewrites apart.",
            fmt_int(copies),
            fmt_secs(copy_time),
            fmt_int(rewritten),
            fmt_int(widest)
        ),
        (torn, copies, "copies torn"),
        &ends,
        started,
    );
    let shmsock = whole_messages(copies, pinning)?;
    Ok(BugRow::new(Bug::TornRead, naive, shmsock))
}

/// shmsock's side of bug 4: `count` 4 KiB messages, every word the message's number, from a
/// writer process; the parent checks every word.
fn whole_messages(count: u64, pinning: Pinning) -> Result<BugOutcome, LabError> {
    let started = Instant::now();
    let (mut reader, writer) = Connection::pair(Options::new(), Options::new())?;
    let watchdog = Duration::from_secs(WATCHDOG_SECS.into());
    let mut children = Children::new();
    children.fork("writer", pinning.child_cpu, watchdog, move || {
        let mut writer = writer;
        writer.start()?;
        let conn = writer.conn()?;
        let mut msg = vec![0u8; TORN_SIZE];
        for seq in 1..=count {
            for word in msg.chunks_exact_mut(8) {
                word.copy_from_slice(&seq.to_le_bytes());
            }
            conn.send(&msg).map_err(lib("send"))?;
        }
        drop(writer);
        Ok(ChildStats::default())
    })?;
    let checked = (|| {
        reader.start()?;
        let conn = reader.conn()?;
        let mut buf = vec![0u8; TORN_SIZE];
        let mut torn = 0u64;
        for seq in 1..=count {
            let n = conn.recv(&mut buf).map_err(lib("recv"))?;
            let whole = n == TORN_SIZE
                && buf
                    .chunks_exact(8)
                    .all(|w| w == seq.to_le_bytes().as_slice());
            torn += u64::from(!whole);
        }
        Ok(torn)
    })();
    if checked.is_err() {
        children.kill_all();
    }
    let (torn, _) = outcome("reader", checked, children.reap(STEP_TIMEOUT))?;
    Ok(BugOutcome::new(
        format!(
            "{} messages of the same {} layout (every word the message's number) from a \
             writer process (Conn::send) to the parent (Conn::recv).",
            fmt_int(count),
            crate::format::fmt_size(TORN_SIZE)
        ),
        format!("{} of {} messages torn", fmt_int(torn), fmt_int(count)),
        format!(
            "Every word of every message checked against its number in {}: a message is \
             published to the reader only once all its bytes are written, and its bytes are \
             not reused before the reader is done with them.",
            fmt_secs(started.elapsed())
        ),
        (torn, count, "messages torn"),
        &Ends::default(),
        started,
    ))
}

/// The value of node `i` of the pointer case.
fn node_value(i: u64) -> u64 {
    (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Words of the pointer case's control region.
const VISITED: usize = 0;
const RIGHT: usize = CACHE_LINE_BYTES;
const A_RIGHT: usize = 2 * CACHE_LINE_BYTES;
const A_BASE: usize = 3 * CACHE_LINE_BYTES;
const B_BASE: usize = 4 * CACHE_LINE_BYTES;
const POINTER_BYTES: usize = 5 * CACHE_LINE_BYTES;

/// Bug 5: A builds a linked list of its own addresses in a named shared-memory object; B,
/// which has the object at another address, follows them. shmsock: the nodes as loans.
pub(super) fn pointer(pinning: Pinning) -> Result<BugRow, LabError> {
    let started = Instant::now();
    let name = shm_open::unique_name("pointers");
    let len = naive::list_bytes(NODES);
    // Everything the parent maps is mapped before the forks: A's own mapping of the object
    // must be where B has nothing.
    let inherited = SharedRegion::new_shm(&name, len)?;
    let control = SharedRegion::new(POINTER_BYTES)?;
    let stderr = Stderr::new()?;
    let mut ends = Ends::default();
    let a = fork_naive(pinning.child_cpu, &stderr, || {
        // A opens the object by its name, as another program would: its own address.
        let Ok(mine) = SharedRegion::open_shm(&name, len) else {
            return NAIVE_SETUP_FAILED;
        };
        let base = mine.ptr_at(0, 1).as_ptr().addr() as u64;
        control.atomic_u64(A_BASE).store(base, Relaxed);
        naive::build_list(&mine, NODES, node_value);
        let right = naive::walk_own_list(&mine, NODES, node_value);
        control.atomic_u64(A_RIGHT).store(right, Release);
        0
    })?;
    let ended = wait_or_kill(a, Instant::now() + STEP_TIMEOUT)?;
    ends.count("A", ended, STEP_TIMEOUT, None)?;
    let b = fork_naive(pinning.child_cpu, &stderr, || {
        let base = inherited.ptr_at(0, 1).as_ptr().addr() as u64;
        control.atomic_u64(B_BASE).store(base, Release);
        naive::follow_foreign_list(
            &inherited,
            NODES,
            node_value,
            control.atomic_u64(VISITED),
            control.atomic_u64(RIGHT),
        );
        0
    })?;
    let asked = Instant::now();
    let ended = wait_or_kill(b, asked + STEP_TIMEOUT)?;
    ends.count("B", ended, asked.elapsed(), None)?;
    let load = |word| control.atomic_u64(word).load(Acquire);
    let (a_right, right, visited) = (load(A_RIGHT), load(RIGHT), load(VISITED));
    let head = naive::list_head(&inherited);
    let how = match ended {
        Ended::Signaled(sig) => format!("B killed by {}", super::signal_name(sig)),
        Ended::Exited(_) => "B finished".to_string(),
        Ended::Hung => "B hung".to_string(),
    };
    let nodes = NODES as u64;
    let at = match visited {
        _ if ended == Ended::Exited(0) => String::new(),
        0 => " at the first link".to_string(),
        v => format!(" at node {}", fmt_int((v + 1).min(nodes))),
    };
    let result = format!(
        "{how}{at}: {} of {} nodes read (A: {})",
        fmt_int(right),
        fmt_int(nodes),
        fmt_int(a_right)
    );
    let naive = BugOutcome::new(
        format!(
            "process A maps a named shared-memory object and builds a list of {} nodes in it, \
             each node's next being A's address of the next node; A walks it; then process B, \
             which has the object mapped at another address, follows the same links.",
            fmt_int(NODES as u64)
        ),
        result,
        format!(
            "A had the object at 0x{:x}, B at 0x{:x}; the head link B found, 0x{head:x}, is an \
             address of A's. {how} {}. A, following the same links \
             through its own mapping, read {} of {} right: the bug passes every test that \
             runs in one process.",
            load(A_BASE),
            load(B_BASE),
            if visited == 0 {
                "before it reached a node".to_string()
            } else {
                format!("after reaching {} nodes", fmt_int(visited))
            },
            fmt_int(a_right),
            fmt_int(NODES as u64)
        ),
        (
            (NODES as u64).saturating_sub(right),
            NODES as u64,
            "nodes B did not read right",
        ),
        &ends,
        started,
    );
    drop(inherited);
    let shmsock = nodes_as_loans(pinning)?;
    Ok(BugRow::new(Bug::Pointer, naive, shmsock))
}

/// Bytes of one node sent as a loan: its index and its value.
const NODE_SIZE: usize = 16;

/// shmsock's side of bug 5: A sends the nodes as loans (a slot index crosses, not an
/// address); B reads each through its own mapping of A's pool.
fn nodes_as_loans(pinning: Pinning) -> Result<BugOutcome, LabError> {
    let started = Instant::now();
    let pool = Options::new().loan_pool(16, NODE_SIZE);
    let (mut receiver, sender) = Connection::pair(Options::new(), pool)?;
    let watchdog = Duration::from_secs(WATCHDOG_SECS.into());
    let mut children = Children::new();
    children.fork("A", pinning.child_cpu, watchdog, move || {
        let mut sender = sender;
        sender.start()?;
        let conn = sender.conn()?;
        for i in 0..NODES as u64 {
            let mut loan = conn.loan(NODE_SIZE).map_err(lib("loan"))?;
            loan[..8].copy_from_slice(&i.to_le_bytes());
            loan[8..].copy_from_slice(&node_value(i).to_le_bytes());
            loan.send().map_err(lib("send a loan"))?;
        }
        drop(sender);
        Ok(ChildStats::default())
    })?;
    let read = (|| {
        receiver.start()?;
        let conn = receiver.conn()?;
        let (mut wrong, mut loans) = (0u64, 0u64);
        for i in 0..NODES as u64 {
            let sample = conn.recv_sample().map_err(lib("recv_sample"))?;
            loans += u64::from(sample.is_loan());
            let mut node = [0u8; NODE_SIZE];
            let right = sample.len() == NODE_SIZE && {
                sample.read_at(0, &mut node);
                node[..8] == i.to_le_bytes() && node[8..] == node_value(i).to_le_bytes()
            };
            wrong += u64::from(!right);
        }
        Ok((wrong, loans))
    })();
    if read.is_err() {
        children.kill_all();
    }
    let ((wrong, loans), _) = outcome("B", read, children.reap(STEP_TIMEOUT))?;
    let not_loans = (NODES as u64).saturating_sub(loans);
    Ok(BugOutcome::new(
        format!(
            "A sends the same {} nodes (index, value) as loans of its pool (Conn::loan: only \
             a slot index, generation and length cross the ring); B reads them \
             (Conn::recv_sample).",
            fmt_int(NODES as u64)
        ),
        format!(
            "{} of {} nodes read wrong",
            fmt_int(wrong),
            fmt_int(NODES as u64)
        ),
        format!(
            "B maps A's pool at an address of its own and finds each node by its slot's \
             offset there: {} nodes arrived as loans ({} copied), {} read right.",
            fmt_int(loans),
            fmt_int(not_loans),
            fmt_int((NODES as u64).saturating_sub(wrong))
        ),
        (wrong + not_loans, NODES as u64, "nodes read wrong"),
        &Ends::default(),
        started,
    ))
}
