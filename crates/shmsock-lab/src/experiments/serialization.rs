//! Serialization (Communication Costs): encoding and decoding a ~1 KiB struct, binary vs JSON.
//!
//! The struct is an order-book snapshot ([`Snapshot`]): ids, a symbol, 2 × 32 price levels and
//! a note, about 1 KiB in postcard's encoding (JSON's text is about three times that). Binary
//! is [postcard](https://docs.rs/postcard) (bincode is unmaintained, RUSTSEC-2025-0141, and its
//! 3.x release is a deliberate compile error); JSON is serde_json. Encoding writes into a
//! reused buffer; decoding builds the whole struct again (its `String`s and `Vec`s included),
//! as a receiver would. Each direction runs in batches of `BATCH` for a time budget; the
//! result is the median batch's time per operation. In-process, on the parent's CPU.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::claims::{self, ClaimCheck, Metric};
use crate::error::LabError;
use crate::table::Table;

/// Serializing one ~1 KiB struct (Communication Costs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SerializationRow {
    /// `postcard` or `serde_json`.
    pub format: String,
    /// Encoded size in bytes.
    pub encoded_bytes: usize,
    /// Median time to encode, ns.
    pub encode_ns: f64,
    /// Median time to decode, ns.
    pub decode_ns: f64,
}

/// Operations timed together (one clock read per batch).
const BATCH: u32 = 64;
/// Levels per side of the book.
const LEVELS: usize = 32;

/// One price level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Price.
    pub price: f64,
    /// Quantity at that price.
    pub quantity: u32,
    /// Orders making up the quantity.
    pub orders: u16,
}

/// The ~1 KiB message of the serialization experiment: an order-book snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sequence number.
    pub sequence: u64,
    /// Exchange timestamp, ns since the epoch.
    pub timestamp_ns: u64,
    /// Instrument.
    pub symbol: String,
    /// Venue.
    pub venue: String,
    /// Buy side, best first.
    pub bids: Vec<Level>,
    /// Sell side, best first.
    pub asks: Vec<Level>,
    /// Whether the book is crossed or halted.
    pub halted: bool,
    /// Free text.
    pub note: String,
}

impl Snapshot {
    /// A deterministic sample.
    pub fn sample() -> Self {
        // Prices in eighths: exact in binary and in short decimal text, so the JSON round trip
        // gives back the same f64 (serde_json's default float parsing is not always exact).
        let level = |i: usize, side: f64| Level {
            price: 187.25 + side * (i as f64) * 0.125,
            quantity: 100 + (i as u32 * 7919) % 100_000,
            orders: 1 + (i as u16 * 13) % 500,
        };
        Self {
            sequence: 1_234_567_890_123,
            timestamp_ns: 1_763_900_000_123_456_789,
            symbol: "AAPL".into(),
            venue: "XNAS".into(),
            bids: (0..LEVELS).map(|i| level(i, -1.0)).collect(),
            asks: (0..LEVELS).map(|i| level(i, 1.0)).collect(),
            halted: false,
            note: "snapshot after auction; levels aggregated by price; quantities in shares".into(),
        }
    }
}

/// Measures both formats, each direction for `budget`.
pub(crate) fn measure(budget: Duration) -> Result<Vec<SerializationRow>, LabError> {
    let value = Snapshot::sample();
    let mut buf = Vec::with_capacity(4096);
    Ok(vec![
        measure_format::<Postcard>(&value, &mut buf, budget)?,
        measure_format::<Json>(&value, &mut buf, budget)?,
    ])
}

/// One format the experiment measures: encoding into a reused buffer, and decoding the whole
/// struct again.
trait Format {
    /// The row's name.
    const NAME: &'static str;
    /// What encoding or decoding fails with.
    type Error: std::fmt::Display;
    /// Encodes `value` into `buf`, replacing what it held.
    fn encode(value: &Snapshot, buf: &mut Vec<u8>) -> Result<(), Self::Error>;
    /// Decodes a whole `Snapshot` from `bytes`.
    fn decode(bytes: &[u8]) -> Result<Snapshot, Self::Error>;
}

/// postcard: binary.
struct Postcard;

impl Format for Postcard {
    const NAME: &'static str = "postcard";
    type Error = postcard::Error;

    #[inline]
    fn encode(value: &Snapshot, buf: &mut Vec<u8>) -> Result<(), Self::Error> {
        buf.clear();
        *buf = postcard::to_extend(value, std::mem::take(buf))?;
        Ok(())
    }

    #[inline]
    fn decode(bytes: &[u8]) -> Result<Snapshot, Self::Error> {
        postcard::from_bytes(bytes)
    }
}

/// serde_json: text.
struct Json;

impl Format for Json {
    const NAME: &'static str = "serde_json";
    type Error = serde_json::Error;

    #[inline]
    fn encode(value: &Snapshot, buf: &mut Vec<u8>) -> Result<(), Self::Error> {
        buf.clear();
        serde_json::to_writer(buf, value)
    }

    #[inline]
    fn decode(bytes: &[u8]) -> Result<Snapshot, Self::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Checks that `F` gives `value` back, then times encoding (into `buf`) and decoding.
fn measure_format<F: Format>(
    value: &Snapshot,
    buf: &mut Vec<u8>,
    budget: Duration,
) -> Result<SerializationRow, LabError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| LabError::Integrity {
        detail: format!("{} {what}: {e}", F::NAME),
    };
    let mut bytes = Vec::new();
    F::encode(value, &mut bytes).map_err(|e| fail("encode", &e))?;
    let back = F::decode(&bytes).map_err(|e| fail("decode", &e))?;
    if back != *value {
        return Err(fail("round trip", &"the decoded struct differs"));
    }
    let encode_ns = per_op(budget, || {
        let _ = F::encode(black_box(value), buf);
        black_box(buf.len());
    });
    let decode_ns = per_op(budget, || {
        black_box(F::decode(black_box(&bytes)).ok());
    });
    Ok(SerializationRow {
        format: F::NAME.into(),
        encoded_bytes: bytes.len(),
        encode_ns,
        decode_ns,
    })
}

/// Runs `op` in batches for `budget` (after a warm-up of a tenth of it) and returns the median
/// batch's ns per operation.
fn per_op(budget: Duration, mut op: impl FnMut()) -> f64 {
    let warm_until = Instant::now() + budget / 10;
    while Instant::now() < warm_until {
        op();
    }
    let mut samples = Vec::new();
    let end = Instant::now() + budget;
    loop {
        let t0 = Instant::now();
        for _ in 0..BATCH {
            op();
        }
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as f64 / f64::from(BATCH));
        if t1 >= end && samples.len() >= 5 {
            break;
        }
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The serialization table, each format beside Communication Costs' claim.
pub(crate) fn table(rows: &[SerializationRow], checks: &[ClaimCheck]) -> Option<Table> {
    let base = rows
        .iter()
        .find(|r| r.format == "postcard")
        .map(|r| r.encode_ns + r.decode_ns);
    let mut table = claims::checked_table(
        "Serialization: a ~1 KiB struct (order-book snapshot), encode + decode, one process",
        &[
            "format",
            "encoded",
            "encode",
            "decode",
            "enc+dec",
            "vs postcard",
        ],
        "Communication Costs",
        rows,
        checks,
        |r| {
            let total = r.encode_ns + r.decode_ns;
            let cells = vec![
                r.format.clone(),
                format!("{} B", r.encoded_bytes),
                claims::fmt_value(r.encode_ns, "ns"),
                claims::fmt_value(r.decode_ns, "ns"),
                claims::fmt_value(total, "ns"),
                base.map_or_else(|| "-".into(), |b| format!("{:.1}x", total / b.max(1.0))),
            ];
            (cells, Metric::Serialize, &r.format)
        },
    )?;
    table.notes = vec![
        "Binary is postcard (bincode is unmaintained, RUSTSEC-2025-0141); JSON is \
         serde_json. Median of batches of 64; decoding rebuilds every String and Vec."
            .into(),
    ];
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_about_a_kibibyte_in_postcard_and_round_trips() {
        let rows = measure(Duration::from_millis(20)).expect("measured");
        let postcard = &rows[0];
        assert!(
            (700..=1400).contains(&postcard.encoded_bytes),
            "{postcard:?}"
        );
        assert!(rows[1].encoded_bytes > postcard.encoded_bytes, "{rows:?}");
        assert!(rows.iter().all(|r| r.encode_ns > 0.0 && r.decode_ns > 0.0));
    }
}
