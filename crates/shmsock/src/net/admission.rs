//! [`Admission`]: how many connections a listening socket holds (handshakes under way and
//! established connections), against [`NetConfig::max_connections`](super::config::NetConfig).
//!
//! Each admitted connection carries a [`Slot`]; dropping the connection (or its failed
//! handshake) gives the slot back. A listener at its limit accepts a newcomer and closes it
//! at once (logged), so the kernel's backlog never fills with connections nobody serves.

use std::sync::Arc;

use crate::sync::{AtomicUsize, Ordering};

/// The connection count of one listening socket and its limit.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    count: Arc<AtomicUsize>,
    max: usize,
}

/// One admitted connection's place in its listener's count.
#[derive(Debug)]
pub(crate) struct Slot {
    count: Arc<AtomicUsize>,
}

impl Admission {
    /// No connection yet; at most `max` at once.
    pub(crate) fn new(max: usize) -> Admission {
        Admission {
            count: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot for one more connection, or `None` at the limit.
    pub(crate) fn admit(&self) -> Option<Slot> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                count: self.count.clone(),
            })
    }

    /// Connections held now.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// The limit.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let a = Admission::new(2);
        let first = a.admit().unwrap();
        let _second = a.admit().unwrap();
        assert!(a.admit().is_none(), "the limit holds");
        assert_eq!(a.count(), 2);
        drop(first);
        assert!(a.admit().is_some(), "a dropped connection frees its slot");
    }
}
