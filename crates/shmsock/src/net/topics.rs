//! [`Topics`]: a set of subscribed prefixes and ZeroMQ's matching rule.
//!
//! A message matches when any subscribed prefix is a prefix of its bytes (for a multipart
//! ZeroMQ message: of its first frame, the topic); the empty prefix matches everything.
//! A subscriber counts its own subscriptions (subscribing twice needs two unsubscribes, as
//! with a ZeroMQ SUB socket) and tells the publisher only when a prefix appears or
//! disappears; the publisher keeps a plain set per subscriber, as libzmq's PUB does.
//!
//! Matching is a linear scan over the prefixes: subscribers hold a handful of topics, and
//! a scan of a few short byte strings costs less than walking a trie.

/// Subscribed prefixes, each with how many times it was subscribed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Topics {
    prefixes: Vec<(Vec<u8>, u32)>,
    /// The distinct prefixes' lengths, summed.
    bytes: usize,
}

impl Topics {
    /// Subscribed to everything (the empty prefix, once): a new subscriber's set.
    pub(crate) fn everything() -> Topics {
        Topics {
            prefixes: vec![(Vec::new(), 1)],
            bytes: 0,
        }
    }

    fn position(&self, prefix: &[u8]) -> Option<usize> {
        self.prefixes.iter().position(|(p, _)| p == prefix)
    }

    /// Counts one more subscription to `prefix`; true if it was not subscribed before.
    pub(crate) fn subscribe(&mut self, prefix: &[u8]) -> bool {
        match self.position(prefix) {
            Some(i) => {
                self.prefixes[i].1 = self.prefixes[i].1.saturating_add(1);
                false
            }
            None => {
                self.prefixes.push((prefix.to_vec(), 1));
                self.bytes += prefix.len();
                true
            }
        }
    }

    /// Counts one subscription to `prefix` less; true if that was the last one.
    pub(crate) fn unsubscribe(&mut self, prefix: &[u8]) -> bool {
        let Some(i) = self.position(prefix) else {
            return false;
        };
        self.prefixes[i].1 -= 1;
        if self.prefixes[i].1 == 0 {
            self.bytes -= self.prefixes.swap_remove(i).0.len();
            return true;
        }
        false
    }

    /// Adds `prefix` as a set member (count 1); true if it was not there.
    pub(crate) fn insert(&mut self, prefix: &[u8]) -> bool {
        self.position(prefix).is_none() && self.subscribe(prefix)
    }

    /// Removes `prefix` whatever its count; true if it was there.
    pub(crate) fn remove(&mut self, prefix: &[u8]) -> bool {
        match self.position(prefix) {
            Some(i) => {
                self.bytes -= self.prefixes.swap_remove(i).0.len();
                true
            }
            None => false,
        }
    }

    /// Whether a message starting with `msg` is wanted.
    #[inline]
    pub(crate) fn matches(&self, msg: &[u8]) -> bool {
        // The empty prefix (everything, the default) without a call to memcmp: on a
        // stream of small messages that call was a fifth of the publisher's time.
        self.prefixes
            .iter()
            .any(|(p, _)| p.is_empty() || msg.starts_with(p))
    }

    /// Whether every message matches (the empty prefix is subscribed).
    #[inline]
    pub(crate) fn matches_everything(&self) -> bool {
        self.prefixes.iter().any(|(p, _)| p.is_empty())
    }

    /// The distinct prefixes.
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = &[u8]> {
        self.prefixes.iter().map(|(p, _)| p.as_slice())
    }

    /// Length of the distinct prefixes, summed.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of distinct prefixes.
    pub(crate) fn len(&self) -> usize {
        self.prefixes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_prefix_matches_messages_that_start_with_it() {
        let mut t = Topics::default();
        assert!(
            !t.matches(b"anything"),
            "nothing subscribed, nothing matches"
        );
        assert!(t.subscribe(b"AB"));
        assert!(t.matches(b"AB") && t.matches(b"ABC"));
        assert!(!t.matches(b"A") && !t.matches(b"BA") && !t.matches(b""));
        assert!(!t.matches_everything());
        assert!(Topics::everything().matches(b"") && Topics::everything().matches_everything());
    }

    #[test]
    fn subscriptions_are_counted_and_set_membership_is_not() {
        let mut t = Topics::default();
        assert!(t.subscribe(b"x"));
        assert!(!t.subscribe(b"x"));
        assert!(!t.unsubscribe(b"x"), "one subscription is left");
        assert!(t.matches(b"x1"));
        assert!(t.unsubscribe(b"x"));
        assert!(!t.matches(b"x1"));
        assert!(
            !t.unsubscribe(b"x"),
            "unsubscribing what is not there is ignored"
        );

        assert!(t.insert(b"y") && !t.insert(b"y"));
        assert_eq!(t.bytes(), 1);
        assert!(t.remove(b"y") && !t.remove(b"y"));
        assert_eq!((t.len(), t.bytes()), (0, 0));
    }

    proptest! {
        #[test]
        fn matching_is_any_prefix(
            prefixes in prop::collection::vec(prop::collection::vec(0u8..3, 0..3), 0..4),
            msg in prop::collection::vec(0u8..3, 0..5),
        ) {
            let mut t = Topics::default();
            for p in &prefixes {
                t.subscribe(p);
            }
            let expected = prefixes.iter().any(|p| msg.len() >= p.len() && msg[..p.len()] == p[..]);
            prop_assert_eq!(t.matches(&msg), expected);
        }
    }
}
