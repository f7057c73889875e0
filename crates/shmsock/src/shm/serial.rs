//! Counters modulo 2^64: ring positions, broadcast sequences and loan generations.
//!
//! Every `u64` counter of the shared-memory protocol (a ring's write and consumed positions,
//! a broadcast cursor's positions and sequences, a subscriber's read position and sequence,
//! a loan's generation) **wraps honestly**: it is a number modulo 2^64, added to with
//! `wrapping_add` and never with `+`. An honest peer takes centuries to wrap one, but a
//! hostile peer can start its counters anywhere, e.g. a cursor at `2^64 - 16`, and an honest
//! ring started there (our own writer, in tests) must keep working across the wrap.
//!
//! The rule:
//! - **Arithmetic** on a counter is wrapping: `pos.wrapping_add(len)`, and a distance is
//!   [`dist`]`(from, to) = to.wrapping_sub(from)`: how far `to` is past `from`, going
//!   forward.
//! - **Order** is never `<` on raw values. Two live counters of one stream are always less
//!   than 2^63 apart, so "`a` is past `b`" is [`after`]: `0 < dist(b, a) < 2^63`. A bounded
//!   window is checked with [`within`]: `dist(lo, x) <= dist(lo, hi)`.
//! - A value read from a peer is read **once**, then checked against a window that an honest
//!   peer cannot leave (a consumed position within what we wrote, a cursor spanning at most
//!   one ring, a release naming a generation we lent). Outside the window it is a
//!   [`Corruption`](super::ring::Corruption): "a hostile value is corrupt, an honest wrap
//!   works". Nothing is ever computed from it before that check in a way that could panic.
//!
//! Positions are frame aligned (multiples of 16, see `ring`), and every ring capacity is a
//! power of two that divides 2^64, so `pos & (capacity - 1)` is the ring index on every lap,
//! across the wrap too.

/// Half the range of a counter: two live counters of one stream are always closer than this.
pub(crate) const HALF: u64 = 1 << 63;

/// How far `to` is past `from`, going forward modulo 2^64.
#[inline]
pub(crate) fn dist(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from)
}

/// `a` is strictly past `b`: `0 < a - b < 2^63` modulo 2^64.
#[inline]
pub(crate) fn after(a: u64, b: u64) -> bool {
    let d = dist(b, a);
    d != 0 && d < HALF
}

/// `x` lies in the window from `lo` forward to `hi`, both included (modulo 2^64; the
/// window is `dist(lo, hi) + 1` values long).
#[inline]
pub(crate) fn within(x: u64, lo: u64, hi: u64) -> bool {
    dist(lo, x) <= dist(lo, hi)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_and_windows_hold_across_the_wrap() {
        let top = u64::MAX - 15;
        assert_eq!(dist(top, 16), 32);
        assert!(after(16, top) && !after(top, 16));
        assert!(!after(5, 5));
        assert!(within(0, top, 16) && within(top, top, 16) && within(16, top, 16));
        assert!(!within(32, top, 16) && !within(top - 16, top, 16));
        // Half a range apart: neither is after the other (a stream never spans that much).
        assert!(!after(HALF, 0) && !after(0, HALF));
    }

    proptest! {
        /// Shifting every value by the same amount (e.g. to just below 2^64) changes no
        /// answer: the order does not care where a stream started.
        #[test]
        fn answers_do_not_depend_on_where_counting_started(
            a in 0u64..1 << 40, b in 0u64..1 << 40, c in 0u64..1 << 40, shift in any::<u64>(),
        ) {
            let s = |x: u64| x.wrapping_add(shift);
            prop_assert_eq!(after(s(a), s(b)), a > b);
            prop_assert_eq!(dist(s(b), s(a)), a.wrapping_sub(b));
            let (lo, hi) = (b.min(c), b.max(c));
            prop_assert_eq!(within(s(a), s(lo), s(hi)), (lo..=hi).contains(&a));
        }
    }
}
