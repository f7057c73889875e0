//! Zero-copy loans through publish/subscribe: `Publisher::loan` / `Loan::send` and
//! `Subscriber::recv_sample`, with subscriber children that check every message (sequence
//! number and checksum) and hold, release, stall or die.

use std::time::{Duration, Instant};

use rustix::process::Signal;
use shmsock::{Error, Options, Overflow, Publisher};

use crate::fanout::{self, signal, summary};
use crate::roles::{MAX_LEN_ENV, SEED_ENV};
use crate::stream::{receive_until_end, End, Stream, Tally};
use shmsock_testkit::child::{report, seed_and_max_len};
use shmsock_testkit::harness::{self, Peer, PEER_DEATH_BOUND, STEP_TIMEOUT};
use shmsock_testkit::pubsub::wait_for_subscribers;

/// Slot size of the tests' pools.
const SLOT: usize = 64 * 1024;

/// Child: like the `subscribe` role, but receives every message with `recv_sample` and
/// checks the bytes in place (copied out with `to_vec`, as a careful reader of a possibly
/// hostile publisher does).
pub fn sample_subscribe(ep: &str) {
    let (seed, max_len) = seed_and_max_len();
    let mut tally = Tally::new(seed, max_len, false);
    let mut sub = shmsock::Subscriber::connect(ep).expect("subscribe");
    report("ready");
    let mut loans = 0u64;
    let received = receive_until_end(&mut tally, |tally| {
        let sample = sub.recv_sample_timeout(STEP_TIMEOUT)?;
        loans += u64::from(sample.is_loan());
        Ok(tally.message(&sample.to_vec()))
    });
    match received {
        Ok((end, secs)) => report(format!("{} loans={loans}", tally.report(end, secs))),
        Err(what) => report(format!("error {what}")),
    }
}

/// Child: receives three samples and holds them until killed.
pub fn hold_samples(ep: &str) {
    let mut sub = shmsock::Subscriber::connect(ep).expect("subscribe");
    report("ready");
    let held: Vec<_> = (0..3)
        .map(|_| sub.recv_sample_timeout(STEP_TIMEOUT).expect("sample"))
        .collect();
    assert!(held.iter().all(|s| s.is_loan()), "{held:?}");
    report("holding");
    std::thread::sleep(Duration::from_secs(60));
}

fn spawn_sample_subscribers(publisher: &mut Publisher, n: usize, seed: u64) -> Vec<Peer> {
    let (seed, max_len) = (seed.to_string(), SLOT.to_string());
    let env = [(SEED_ENV, seed.as_str()), (MAX_LEN_ENV, max_len.as_str())];
    let mut peers: Vec<Peer> = (0..n)
        .map(|_| Peer::spawn("sample_subscribe", publisher.endpoint(), &env))
        .collect();
    for peer in &mut peers {
        peer.expect("ready");
    }
    wait_for_subscribers(publisher, n);
    peers
}

#[test]
fn every_subscriber_of_three_reads_every_loan_and_the_slots_come_back() {
    let _timing = harness::timing_test();
    let ep = harness::endpoint("publoans");
    let mut publisher = fanout::bind(&ep, Options::new().loan_pool(8, SLOT));
    let seed = 0x10a_0001;
    let mut subs = spawn_sample_subscribers(&mut publisher, 3, seed);
    let mut stream = Stream::new(seed, SLOT);
    // Every fourth message a plain send: loans and copies interleave in one ring.
    for i in 0..2_000u64 {
        if i % 4 == 3 {
            stream.send(&mut publisher, STEP_TIMEOUT).expect("send");
        } else {
            stream
                .send_loan(&mut publisher, STEP_TIMEOUT)
                .expect("send a loan");
        }
    }
    fanout::wait_for_loans_outstanding(&mut publisher, 0, "every slot back");
    let sent = stream.sent();
    drop(publisher);
    fanout::assert_none_missed(&mut subs, sent, "Block loses nothing", |s| {
        eprintln!("subscriber: {s}");
        assert_eq!(s.num("loans"), 1_500, "{s}");
    });
}

#[test]
fn slots_held_by_a_sigkilled_subscriber_come_back() {
    let _timing = harness::timing_test();
    let ep = harness::endpoint("publoankill");
    let mut publisher = fanout::bind(&ep, Options::new().loan_pool(4, SLOT));
    let mut holder = Peer::spawn("hold_samples", publisher.endpoint(), &[]);
    holder.expect("ready");
    wait_for_subscribers(&mut publisher, 1);
    for i in 0..4u8 {
        let mut loan = publisher.loan_timeout(SLOT, STEP_TIMEOUT).expect("loan");
        loan.fill(i);
        loan.send().expect("send");
    }
    holder.expect("holding");
    // Three held, the fourth published but never read: the pool is dry.
    assert!(matches!(publisher.try_loan(1), Err(Error::WouldBlock)));
    assert!(matches!(
        publisher.loan_timeout(1, Duration::from_millis(20)),
        Err(Error::TimedOut)
    ));
    assert_eq!(publisher.loans_outstanding(), 4);
    let killed = holder.kill();
    let loan = publisher
        .loan_timeout(SLOT, STEP_TIMEOUT)
        .expect("a slot comes back after the holder died");
    let took = killed.elapsed();
    drop(loan);
    eprintln!("a slot came back {took:.1?} after SIGKILL of its holder");
    assert!(
        took < PEER_DEATH_BOUND + Duration::from_millis(50),
        "slots of a dead subscriber came back only after {took:?}"
    );
    assert_eq!(publisher.loans_outstanding(), 0);
    assert_eq!(publisher.subscriber_count(), 0);
}

#[test]
fn drop_oldest_publisher_never_waits_for_a_stopped_subscriber_that_holds_nothing() {
    let _heavy = harness::cpu_heavy_test();
    let ep = harness::endpoint("publoanstop");
    let options = Options::new()
        .loan_pool(32, SLOT)
        .overflow(Overflow::DropOldest);
    let mut publisher = fanout::bind(&ep, options);
    let seed = 0x10a_0002;
    let mut subs = spawn_sample_subscribers(&mut publisher, 3, seed);
    let mut stream = Stream::new(seed, SLOT);
    signal(subs[0].pid(), Signal::STOP);
    fanout::wait_until_stopped(subs[0].pid());
    // Bursts of 8 loans (a quarter of the pool) every 2 ms: the running subscribers keep
    // up, the stopped one is lapped by the pool many times.
    let mut longest = Duration::ZERO;
    let mut publish = |stream: &mut Stream, publisher: &mut Publisher, n: u64| {
        for i in 0..n {
            let t = Instant::now();
            stream
                .send_loan(publisher, STEP_TIMEOUT)
                .expect("a DropOldest loan never fails");
            longest = longest.max(t.elapsed());
            if i % 8 == 7 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    publish(&mut stream, &mut publisher, 1_000);
    signal(subs[0].pid(), Signal::CONT);
    publish(&mut stream, &mut publisher, 1_000);
    let sent = stream.sent();
    drop(publisher);
    eprintln!("longest loan+send with one subscriber stopped: {longest:.1?}");
    assert!(
        longest < Duration::from_secs(1),
        "a DropOldest publisher waited {longest:?} for a slot"
    );
    let stopped = summary(&mut subs[0]);
    eprintln!("stopped subscriber: {stopped}");
    stopped.assert_accounts_for(sent, End::Closed);
    assert_eq!(stopped.str("lag_came_first"), "true", "{stopped}");
    assert!(stopped.num("missed") > 500, "{stopped}");
    fanout::check_running_subscribers(&mut subs, &stopped, sent);
}

#[test]
fn a_detached_loan_whose_send_times_out_on_a_slow_subscriber_is_kept_and_sent_later() {
    let ep = harness::endpoint("loan-pub-timeout");
    let opts = Options::new().loan_pool(2, 4096).ring_capacity(4096);
    let mut publisher = Publisher::bind_with(&ep, opts).expect("bind");
    let mut sub = shmsock::Subscriber::connect(&ep).expect("subscribe");
    wait_for_subscribers(&mut publisher, 1);
    // The subscriber reads nothing: fill the ring to the last byte.
    let mut queued = Vec::new();
    for len in [1000, 100, 10, 1] {
        loop {
            match publisher.try_send(&vec![9u8; len]) {
                Ok(()) => queued.push(len),
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let mut loan = publisher.loan(4).expect("loan");
    loan.copy_from_slice(b"kept");
    let detached = loan.detach();
    let mut loan = publisher.attach(detached);
    assert!(matches!(
        loan.send_timeout(Duration::from_millis(20)),
        Err(Error::SlowSubscriber { .. })
    ));
    assert_eq!(&loan[..], b"kept", "the loan is still the publisher's");
    for len in queued {
        assert_eq!(sub.recv_vec().expect("filler"), vec![9u8; len]);
    }
    loan.send_timeout(STEP_TIMEOUT).expect("room now");
    drop(loan);
    let sample = sub.recv_sample().expect("the loan");
    assert!(sample.is_loan());
    assert_eq!(sample.to_vec(), b"kept");
}
