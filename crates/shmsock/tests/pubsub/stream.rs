//! Sequenced messages for publish/subscribe: the publisher's side ([`Stream`]) and the
//! subscriber's bookkeeping ([`Tally`]), which accounts for every message as delivered
//! or reported lost.
//!
//! Messages are those of [`shmsock_testkit::message`] (`seq | checksum | body`), at least
//! [`message::HEADER_BYTES`] long so that a late subscriber can read where it starts.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use shmsock::{Error, Publisher};

use shmsock_testkit::message::{self, SplitMix64, HEADER_BYTES};

/// Length of the next message of a stream whose messages are at most `max_len` bytes.
fn next_len(lens: &mut SplitMix64, max_len: usize) -> usize {
    HEADER_BYTES + lens.below_or_eq(max_len - HEADER_BYTES)
}

/// The publisher's side: messages `0, 1, 2, ...` of the stream seeded with `seed`.
pub struct Stream {
    max_len: usize,
    lens: SplitMix64,
    bodies: SplitMix64,
    buf: Vec<u8>,
    /// Length of message `next` once generated (kept until it is sent).
    pending: Option<usize>,
    next: u64,
}

impl Stream {
    pub fn new(seed: u64, max_len: usize) -> Self {
        assert!(max_len >= HEADER_BYTES);
        Stream {
            max_len,
            lens: message::lengths(seed),
            bodies: message::bodies(seed),
            buf: vec![0; max_len],
            pending: None,
            next: 0,
        }
    }

    /// Number of messages sent so far.
    pub fn sent(&self) -> u64 {
        self.next
    }

    /// Sends the next message with `send_timeout(timeout)`. On error the same message is
    /// sent by the next call.
    pub fn send(&mut self, publisher: &mut Publisher, timeout: Duration) -> Result<(), Error> {
        let len = self.prepare();
        publisher.send_timeout(&self.buf[..len], timeout)?;
        self.pending = None;
        self.next += 1;
        Ok(())
    }

    /// Sends the next message as a loan (`loan_timeout(timeout)`, filled in place). On
    /// error the same message is sent by the next call.
    pub fn send_loan(&mut self, publisher: &mut Publisher, timeout: Duration) -> Result<(), Error> {
        let len = self.prepare();
        let mut loan = publisher.loan_timeout(len, timeout)?;
        loan.copy_from_slice(&self.buf[..len]);
        loan.send()?;
        self.pending = None;
        self.next += 1;
        Ok(())
    }

    /// Generates message `next` if it is not pending yet; returns its length.
    fn prepare(&mut self) -> usize {
        match self.pending {
            Some(len) => len,
            None => {
                let len = next_len(&mut self.lens, self.max_len);
                message::encode(self.next, &mut self.bodies, &mut self.buf[..len]);
                self.pending = Some(len);
                len
            }
        }
    }

    /// Sends `count` messages, each within `timeout`; returns the longest single send.
    pub fn send_many(
        &mut self,
        publisher: &mut Publisher,
        count: u64,
        timeout: Duration,
    ) -> Duration {
        let mut longest = Duration::ZERO;
        for _ in 0..count {
            let t = Instant::now();
            self.send(publisher, timeout)
                .unwrap_or_else(|e| panic!("publishing message #{}: {e}", self.next));
            longest = longest.max(t.elapsed());
        }
        longest
    }
}

/// How a subscriber's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Closed,
    Gone,
}

/// The child side of a checking subscriber: calls `recv_one` (which receives one message
/// and checks it with the tally) until the publisher ends, accounting for every `Lagged`.
/// Returns how the stream ended and the seconds since the first receive, or the first
/// error (a bad message, a wrong count of lost ones, a failed receive).
pub fn receive_until_end(
    tally: &mut Tally,
    mut recv_one: impl FnMut(&mut Tally) -> Result<Result<(), String>, Error>,
) -> Result<(End, f64), String> {
    let mut start = None;
    let end = loop {
        let checked = match recv_one(tally) {
            Ok(checked) => checked,
            Err(Error::Lagged { missed, .. }) => tally.lagged(missed),
            Err(Error::PeerClosed { .. }) => break End::Closed,
            Err(Error::PeerGone { .. }) => break End::Gone,
            Err(e) => Err(format!("after {} messages: {e}", tally.delivered)),
        };
        start.get_or_insert_with(Instant::now);
        checked?;
    };
    Ok((end, start.map_or(0.0, |t| t.elapsed().as_secs_f64())))
}

/// The subscriber's bookkeeping: the next expected sequence number, and what was
/// delivered or lost.
#[derive(Debug)]
pub struct Tally {
    max_len: usize,
    lens: SplitMix64,
    /// Sequence number of the next message; `None` until the first one (late subscriber).
    next: Option<u64>,
    pub first_seq: Option<u64>,
    pub delivered: u64,
    pub missed: u64,
    pub lags: u64,
    /// The first `Lagged(n)`: (messages delivered before it, n).
    pub first_lag: Option<(u64, u64)>,
    /// True if the very first receive result was `Lagged`.
    pub lag_came_first: bool,
}

impl Tally {
    /// A subscriber that expects message 0 first, or (`late`) learns its start from the
    /// first message.
    pub fn new(seed: u64, max_len: usize, late: bool) -> Self {
        Tally {
            max_len,
            lens: message::lengths(seed),
            next: (!late).then_some(0),
            first_seq: None,
            delivered: 0,
            missed: 0,
            lags: 0,
            first_lag: None,
            lag_came_first: false,
        }
    }

    fn skip(&mut self, n: u64) {
        for _ in 0..n {
            next_len(&mut self.lens, self.max_len);
        }
    }

    /// Checks one received message: the expected sequence number (so after `Lagged(n)`
    /// exactly `n` were skipped), length and checksum.
    pub fn message(&mut self, got: &[u8]) -> Result<(), String> {
        let seq = match self.next {
            Some(seq) => seq,
            None => {
                let carried = got
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .ok_or_else(|| format!("first message is only {} bytes", got.len()))?;
                self.skip(carried);
                carried
            }
        };
        message::verify(seq, next_len(&mut self.lens, self.max_len), got)?;
        self.first_seq.get_or_insert(seq);
        self.next = Some(seq + 1);
        self.delivered += 1;
        Ok(())
    }

    /// Records `Lagged(missed)`.
    pub fn lagged(&mut self, missed: u64) -> Result<(), String> {
        if missed == 0 {
            return Err("Lagged(0)".into());
        }
        let Some(next) = self.next else {
            return Err(format!(
                "Lagged({missed}) before the first message of a late subscriber"
            ));
        };
        self.lag_came_first |= self.delivered == 0 && self.lags == 0;
        self.first_lag.get_or_insert((self.delivered, missed));
        self.skip(missed);
        self.next = Some(next + missed);
        self.missed += missed;
        self.lags += 1;
        Ok(())
    }

    /// The one-line report a subscriber child prints at the end.
    pub fn report(&self, end: End, secs: f64) -> String {
        let (lag_at, lag_n) = self.first_lag.unwrap_or((0, 0));
        format!(
            "done delivered={} missed={} lags={} first_seq={} next={} lag_came_first={} \
             first_lag_at={lag_at} first_lag={lag_n} end={end:?} secs={secs:.3}",
            self.delivered,
            self.missed,
            self.lags,
            self.first_seq.map_or(-1, |s| s as i64),
            self.next.map_or(-1, |s| s as i64),
            self.lag_came_first,
        )
    }
}

/// A subscriber's final report, parsed.
pub struct Summary(HashMap<String, String>);

impl Summary {
    /// Parses the rest of a `done ...` report.
    pub fn parse(rest: &str) -> Summary {
        Summary(
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn str(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("report without {key}: {self}"))
    }

    pub fn num(&self, key: &str) -> i64 {
        self.str(key)
            .parse()
            .unwrap_or_else(|e| panic!("{key} is not a number ({e}): {self}"))
    }

    /// Asserts the accounting of a subscriber that expected messages `0..sent`:
    /// every one was delivered or reported lost, and the stream ended as `end`.
    pub fn assert_accounts_for(&self, sent: u64, end: End) {
        let (delivered, missed) = (self.num("delivered"), self.num("missed"));
        assert_eq!(
            delivered + missed,
            sent as i64,
            "delivered + lagged != sent: {self}"
        );
        assert_eq!(self.num("next"), sent as i64, "{self}");
        assert_eq!(self.str("end"), format!("{end:?}"), "{self}");
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kv: Vec<_> = self.0.iter().collect();
        kv.sort();
        for (k, v) in kv {
            write!(f, "{k}={v} ")?;
        }
        Ok(())
    }
}
