//! The bridge experiment end to end, with few messages (a debug build measures nothing
//! worth keeping; this proves every path delivers and counts).

use super::*;

#[test]
fn every_path_delivers_every_message_and_the_bridge_counts_them() {
    let _lock = crate::FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let pinning = Pinning::choose().expect("pinning");
    let _pinned = crate::process::AffinityGuard::pin(pinning.parent_cpu).expect("pin");
    let budget = Budget {
        warmup_iters: 50,
        warmup_time: Duration::from_secs(5),
        iters: 300,
        max_time: Duration::from_secs(20),
    };
    for path in PATHS {
        let row = measure(path, budget, pinning).expect("the path runs");
        assert_eq!(row.path, path.name());
        assert_eq!(row.samples, 300, "{row:?}");
        assert!(row.min_ns > 0 && row.min_ns <= row.p50_ns, "{row:?}");
        assert!(
            row.p50_ns <= row.p99_ns && row.p99_ns <= row.p999_ns,
            "{row:?}"
        );
        assert_eq!(row.bridge_cpu.is_some(), path.bridged(), "{row:?}");
    }
}
