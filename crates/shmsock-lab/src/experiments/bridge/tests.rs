//! The bridge experiment end to end, with few messages (a debug build measures nothing
//! worth keeping; this proves every path delivers and counts), and its table.

use super::*;

#[test]
fn every_path_delivers_every_message_and_the_bridge_counts_them() {
    let _lock = crate::process::FORK_LOCK
        .lock()
        .unwrap_or_else(|p| p.into_inner());
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
        assert!(
            row.one_way.min_ns > 0 && row.one_way.min_ns <= row.one_way.p50_ns,
            "{row:?}"
        );
        assert!(
            row.one_way.p50_ns <= row.one_way.p99_ns && row.one_way.p99_ns <= row.one_way.p999_ns,
            "{row:?}"
        );
        assert_eq!(row.bridge_cpu.is_some(), path.bridged(), "{row:?}");
    }
}

fn row(path: &str, p50_ns: u64, p99_ns: u64, bridge_cpu: Option<usize>) -> BridgeRow {
    let one_way = Percentiles {
        min_ns: p50_ns / 2,
        p50_ns,
        p99_ns,
        p999_ns: 2 * p99_ns,
        max_ns: 3 * p99_ns,
        mean_ns: p50_ns as f64,
    };
    BridgeRow::new(path, 64, one_way, 1000, bridge_cpu)
}

fn rows() -> Vec<BridgeRow> {
    let mut rows = vec![
        row("shm", 200, 400, None),
        row("tcp", 20_000, 60_000, None),
        row("shm->bridge->tcp", 30_000, 50_000, Some(1)),
    ];
    compare_with_baseline(&mut rows);
    rows
}

#[test]
fn bridged_rows_are_compared_with_tcp_of_the_same_run() {
    let rows = rows();
    assert_eq!(rows[0].added_p50_ns, None, "direct rows have no comparison");
    assert_eq!(rows[1].vs_tcp_p50, None);
    let bridged = &rows[2];
    assert_eq!(bridged.vs_tcp_p50, Some(1.5));
    assert_eq!(bridged.added_p50_ns, Some(10_000));
    assert_eq!(bridged.added_p99_ns, Some(-10_000));
    let table = table(&rows, &HostInfo::for_tests(2)).expect("a table");
    let text = table.to_text();
    assert!(
        text.contains("+10.0 µs") && text.contains("-10.0 µs"),
        "{text}"
    );
    assert!(
        text.contains("the bridge adds +10.0 µs at p50 (1.50x tcp direct); p99 -10.0 µs"),
        "{text}"
    );
    assert!(text.contains("shared with the subscriber"), "{text}");
    assert!(text.contains("negative p99 difference"), "{text}");
    assert!(text.contains("shm->bridge->tcp"), "{text}");
    assert!(table.to_markdown().contains("![bridge](bridge.svg)"));
    assert!(plot(&rows).is_some_and(|svg| svg.starts_with("<svg")));
}

#[test]
fn a_bridge_on_its_own_cpu_is_not_called_shared() {
    let mut rows = rows();
    rows[2].bridge_cpu = Some(2);
    let text = table(&rows, &HostInfo::for_tests(4))
        .expect("a table")
        .to_text();
    assert!(text.contains("Bridge process on CPU 2."), "{text}");
    assert!(!text.contains("shared with the subscriber"), "{text}");
    rows[2].added_p99_ns = Some(5_000);
    let text = table(&rows, &HostInfo::for_tests(4))
        .expect("a table")
        .to_text();
    assert!(!text.contains("negative p99 difference"), "{text}");
    assert!(table(&[], &HostInfo::for_tests(4)).is_none() && plot(&[]).is_none());
}
