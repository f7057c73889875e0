//! A publisher's loan slot comes back without the subscriber's release when the subscriber
//! can no longer read it: it skipped the message (topic filter), or it joined after it.
//! (Release, lag and death: `loans.rs`.) One process: the subscribers are in this test.

use shmsock::{Options, Publisher, Subscriber};

use crate::fanout;
use shmsock_testkit::harness::{self, STEP_TIMEOUT};
use shmsock_testkit::pubsub::wait_for_subscribers;

const SLOTS: usize = 4;

/// Lends a loan of `len` bytes starting with `head`, filled with `fill`.
fn lend(publisher: &mut Publisher, head: &[u8], len: usize, fill: u8) {
    let mut loan = publisher
        .loan_timeout(len, STEP_TIMEOUT)
        .expect("a free slot");
    loan.fill(fill);
    loan[..head.len()].copy_from_slice(head);
    loan.send().expect("sending a loan");
}

/// A subscriber that filters by topic drops the loans it skips: their slots come back,
/// so a pool of 4 carries 40 skipped loans and 10 kept ones.
#[test]
fn slots_of_loans_a_subscriber_skips_by_topic_come_back() {
    let ep = harness::endpoint("reclaim-topic");
    let mut publisher = fanout::bind(&ep, Options::new().loan_pool(SLOTS, 1024));
    let mut sub = Subscriber::connect(&ep).expect("subscribing");
    sub.unsubscribe(b"").expect("unsubscribe");
    sub.subscribe(b"keep").expect("subscribe");
    wait_for_subscribers(&mut publisher, 1);
    for round in 0..10u8 {
        // The pool holds 4: the 4 skipped loans of this round must come back for the kept
        // one to find a slot.
        for _ in 0..SLOTS {
            lend(&mut publisher, b"skip", 1024, round);
        }
        // One slot stays out until the subscriber has read (and skipped) past them.
        let mut kept = None;
        std::thread::scope(|s| {
            let reader = s.spawn(|| sub.recv_sample_timeout(STEP_TIMEOUT));
            lend(&mut publisher, b"keep", 1000, round);
            kept = Some(reader.join().expect("the reader").expect("the kept loan"));
        });
        let kept = kept.expect("received");
        assert!(kept.is_loan());
        let bytes = kept.to_vec();
        assert_eq!(
            (&bytes[..4], bytes.len(), bytes[999]),
            (&b"keep"[..], 1000, round)
        );
        fanout::wait_for_loans_outstanding(&mut publisher, 1, "the kept sample is held");
        drop(kept);
        fanout::wait_for_loans_outstanding(&mut publisher, 0, "every slot is back");
    }
}

/// A subscriber that joins after loans were published never sees them: their slots come
/// back once the early subscriber released them, without waiting for the late one.
#[test]
fn slots_of_loans_published_before_a_subscriber_joined_come_back() {
    let ep = harness::endpoint("reclaim-late");
    let mut publisher = fanout::bind(&ep, Options::new().loan_pool(SLOTS, 256));
    let mut early = Subscriber::connect(&ep).expect("subscribing");
    wait_for_subscribers(&mut publisher, 1);
    for i in 0..SLOTS as u8 {
        lend(&mut publisher, b"", 200, i);
    }
    // The early subscriber holds them all while the late one joins.
    let held: Vec<_> = (0..SLOTS)
        .map(|_| early.recv_sample_timeout(STEP_TIMEOUT).expect("a loan"))
        .collect();
    let mut late = Subscriber::connect(&ep).expect("subscribing late");
    wait_for_subscribers(&mut publisher, 2);
    assert_eq!(
        publisher.loans_outstanding(),
        SLOTS,
        "the early one holds them"
    );
    drop(held);
    fanout::wait_for_loans_outstanding(&mut publisher, 0, "the late subscriber cannot read them");
    // Both receive the next ones, and only those.
    for i in 0..2 * SLOTS as u8 {
        lend(&mut publisher, b"", 100, 100 + i);
        for sub in [&mut early, &mut late] {
            let s = sub.recv_sample_timeout(STEP_TIMEOUT).expect("a new loan");
            assert_eq!(s.to_vec(), vec![100 + i; 100]);
        }
    }
    fanout::wait_for_loans_outstanding(&mut publisher, 0, "after the new loans");
}
