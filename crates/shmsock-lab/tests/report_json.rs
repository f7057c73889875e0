//! The JSON report has the shape other tools read: `latency` rows with round-trip ns and
//! `throughput` rows with rates, under the exact mechanism names.

use shmsock_lab::{LabOptions, Mode};

mod budgets;
use budgets::SMALL;

/// A row of a quick run is the median of 3 rounds: `key` lies within their spread, and the
/// noisy flag is there.
fn assert_rounds(row: &serde_json::Value, key: &str) {
    let spread = &row["spread"];
    assert_eq!(spread["rounds"], 3, "{row}");
    let (min, max) = (spread["min"].as_f64(), spread["max"].as_f64());
    let value = row[key].as_f64();
    assert!(min <= value && value <= max, "{row}");
    assert!(spread["noisy"].is_boolean(), "{row}");
}

#[test]
fn json_report_has_the_required_keys() {
    let path = std::env::temp_dir().join(format!("shmsock-lab-{}.json", std::process::id()));
    shmsock_lab::run(&LabOptions {
        mode: Mode::Quick,
        json: Some(path.clone()),
        mechanisms: Some(vec!["raw-ring".into(), "pipe".into()]),
        sizes: Some(vec![64, 4096]),
        only: Some(vec!["latency".into(), "throughput".into()]),
        ..Default::default()
    })
    .expect("lab runs");
    let text = std::fs::read_to_string(&path).expect("json written");
    let _ = std::fs::remove_file(&path);
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");

    let latency = json["latency"].as_array().expect("latency array");
    let names: Vec<&str> = latency
        .iter()
        .filter_map(|r| r["mechanism"].as_str())
        .collect();
    assert_eq!(names, ["floor", "raw-ring", "pipe"], "{text}");
    for row in latency {
        for key in [
            "size",
            "min_ns",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "oneway_p50_ns",
        ] {
            assert!(row[key].is_u64(), "latency row lacks {key}: {row}");
        }
        assert_eq!(row["size"], 64);
        let (min, p50, p99) = (
            row["min_ns"].as_u64(),
            row["p50_ns"].as_u64(),
            row["p99_ns"].as_u64(),
        );
        assert!(min <= p50 && p50 <= p99 && min > Some(0), "{row}");
        assert_eq!(row["oneway_p50_ns"].as_u64(), p50.map(|p| p / 2));
        assert_rounds(row, "p50_ns");
    }

    let throughput = json["throughput"].as_array().expect("throughput array");
    let rows: Vec<(&str, u64)> = throughput
        .iter()
        .filter_map(|r| Some((r["mechanism"].as_str()?, r["size"].as_u64()?)))
        .collect();
    assert_eq!(
        rows,
        [
            ("raw-ring", 64),
            ("raw-ring", 4096),
            ("pipe", 64),
            ("pipe", 4096)
        ],
        "{text}"
    );
    for row in throughput {
        for key in ["msgs_per_s", "bytes_per_s"] {
            assert!(
                row[key].as_u64().is_some_and(|v| v > 0),
                "throughput row lacks {key}: {row}"
            );
        }
        let size = row["size"].as_u64().expect("size");
        let (msgs, bytes) = (
            row["msgs_per_s"].as_u64().unwrap_or(0),
            row["bytes_per_s"].as_u64().unwrap_or(0),
        );
        assert!(bytes.abs_diff(msgs * size) <= size, "{row}");
        assert_rounds(row, "msgs_per_s");
    }
    assert!(json["floor_check"]["before_p50_ns"].is_u64(), "{text}");
    assert!(json["host"]["cpu_model"].is_string(), "{text}");
}

#[test]
fn every_requested_experiment_is_a_row_or_an_unavailable_row() {
    let budgets = SMALL;
    let names: Vec<String> = shmsock_lab::mechanisms::names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let opts = LabOptions {
        mode: Mode::Quick,
        mechanisms: Some(names.clone()),
        only: Some(vec!["latency".into(), "throughput".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, budgets).expect("lab runs");
    // The selected mechanisms in order, then the 1 MiB zero-copy rows (offset exchanges
    // and shmsock's loans).
    assert_eq!(report.mechanisms[..names.len()], names[..]);
    assert_eq!(
        report.mechanisms[names.len()..],
        [
            "raw-offset",
            "shmsock-offset",
            "shmsock-loan",
            "shmsock-loan-read"
        ]
        .map(String::from)
    );
    for name in &names {
        let count = |experiment: &str, size: usize| {
            let measured = match experiment {
                "latency" => report
                    .latency
                    .iter()
                    .filter(|r| &r.mechanism == name && r.size == size)
                    .count(),
                "latency-same-cpu" => report
                    .latency_same_cpu
                    .iter()
                    .filter(|r| &r.mechanism == name && r.size == size)
                    .count(),
                _ => report
                    .throughput
                    .iter()
                    .filter(|r| &r.mechanism == name && r.size == size)
                    .count(),
            };
            let missing = report
                .unavailable
                .iter()
                .filter(|u| &u.mechanism == name && u.experiment == experiment && u.size == size)
                .count();
            measured + missing
        };
        assert_eq!(count("latency", 64), 1, "{name} latency:\n{report}");
        let two_cpus = usize::from(!report.host.pinning.same_cpu());
        assert_eq!(
            count("latency-same-cpu", 64),
            two_cpus,
            "{name} same CPU:\n{report}"
        );
        let streams = usize::from(
            shmsock_lab::mechanisms::by_name(name)
                .expect("known")
                .supports(shmsock_lab::mechanisms::Pattern::Stream),
        );
        assert_eq!(
            count("throughput", 1 << 20),
            streams,
            "{name} 1 MiB:\n{report}"
        );
        assert_eq!(count("throughput", 64), streams, "{name} 64 B:\n{report}");
        assert_eq!(
            count("throughput", 4096),
            streams,
            "{name} 4 KiB:\n{report}"
        );
    }
    for u in &report.unavailable {
        assert!(!u.reason.is_empty(), "{u:?}");
    }
}

#[test]
fn comparison_and_communication_costs_tables_have_rows_with_verdicts() {
    let budgets = SMALL;
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec![
            "sync-tax".into(),
            "contention".into(),
            "serialization".into(),
            "scale".into(),
        ]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, budgets).expect("lab runs");
    let unavailable = |experiment: &str| {
        report
            .unavailable
            .iter()
            .filter(|u| u.experiment == experiment)
            .count()
    };
    // The Comparison's four methods and the named semaphore.
    assert_eq!(
        report.sync_tax.len() + unavailable("sync-tax"),
        5,
        "{report}"
    );
    // 4 queues (lock-free, mutex, posix-mq, shmsock's inbox) × 4 producer counts.
    assert_eq!(
        report.contention.len() + unavailable("contention"),
        16,
        "{report}"
    );
    assert!(report
        .contention
        .iter()
        .any(|r| r.queue == "shmsock-many-writers" && r.producers == 8));
    assert_eq!(report.serialization.len(), 2, "{report}");
    assert_eq!(report.million.len() + unavailable("scale"), 3, "{report}");
    for row in &report.contention {
        assert!(
            row.msgs_per_s > 0 && row.vs_one_producer.is_some(),
            "{row:?}"
        );
        assert!(
            row.cpu_ns_per_msg > 0.0 && row.cpu_vs_one_producer.is_some(),
            "{row:?}"
        );
    }
    let sources: Vec<_> = report
        .claims
        .iter()
        .filter(|c| {
            c.verdict.is_some()
                && matches!(
                    c.metric,
                    Some(
                        shmsock_lab::claims::Metric::SyncTax
                            | shmsock_lab::claims::Metric::Contention { .. }
                            | shmsock_lab::claims::Metric::Serialize
                            | shmsock_lab::claims::Metric::Million
                    )
                )
        })
        .map(|c| c.source.as_str())
        .collect();
    assert!(sources.contains(&"Comparison") && sources.contains(&"Communication Costs"));
    let text = report.render();
    for heading in [
        "Synchronisation tax",
        "Contention",
        "Serialization",
        "One million",
    ] {
        assert!(text.contains(heading), "{heading}:\n{text}");
    }
    let plots: Vec<_> = report.plots().into_iter().map(|(name, _)| name).collect();
    assert!(plots.contains(&"sync_tax.svg") && plots.contains(&"contention.svg"));
}

#[test]
fn shm_open_and_the_durable_rows_are_measured_beside_raw_ring() {
    let opts = LabOptions {
        mode: Mode::Quick,
        // A family name selects its rows: mmap-file-durable/1, /64 and /4096.
        mechanisms: Some(vec![
            "raw-ring".into(),
            "shm-open".into(),
            "mmap-file-durable".into(),
        ]),
        sizes: Some(vec![64, 4096]),
        only: Some(vec!["latency".into(), "throughput".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    assert!(report.unavailable.is_empty(), "{report}");
    let names = [
        "shm-open",
        "mmap-file-durable/1",
        "mmap-file-durable/64",
        "mmap-file-durable/4096",
    ];
    for name in names {
        let latency = report
            .latency
            .iter()
            .find(|r| r.mechanism == name)
            .unwrap_or_else(|| panic!("{name} latency:\n{report}"));
        assert!(
            latency.rtt.min_ns > 0 && latency.rtt.min_ns <= latency.rtt.p50_ns,
            "{latency:?}"
        );
        for size in [64, 4096] {
            let row = report
                .throughput
                .iter()
                .find(|r| r.mechanism == name && r.size == size)
                .unwrap_or_else(|| panic!("{name} at {size} B:\n{report}"));
            assert!(row.msgs_per_s > 0 && row.vs_raw_ring.is_some(), "{row:?}");
            // The kernel splits CPU time at its timer ticks: over a window too short for the
            // split (which the table then shows as `-`), one tick can exceed the window.
            assert!(
                !row.kernel_split_known()
                    || (row.sender_kernel_pct <= row.sender_cpu_pct + 1.0
                        && row.receiver_kernel_pct <= row.receiver_cpu_pct + 1.0),
                "kernel time is part of the CPU time: {row:?}"
            );
            let note = row.note.as_deref().unwrap_or_default();
            if name == "shm-open" {
                assert!(note.contains("shm_open"), "{row:?}");
            } else {
                // The row says which filesystem its file was on.
                assert!(note.contains("msync") && note.contains(" on "), "{row:?}");
            }
        }
    }
    let text = report.render();
    assert!(text.contains("kernel% send/recv"), "{text}");
}

#[test]
fn crash_counts_what_a_sigkill_leaves_behind() {
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["crash".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    assert!(report.unavailable.is_empty(), "{report}");
    let [leftover] = &report.shm_leftovers[..] else {
        panic!("one shm-open row expected:\n{report}");
    };
    assert_eq!(
        (leftover.left_after_kill, leftover.left_after_unlink),
        (1, 0),
        "{leftover:?}"
    );
    let names: Vec<_> = report.crash.iter().map(|r| r.mechanism.as_str()).collect();
    assert_eq!(
        names,
        [
            "mmap-file",
            "mmap-file-durable/1",
            "mmap-file-durable/64",
            "mmap-file-durable/4096"
        ]
    );
    for row in &report.crash {
        assert!(row.consistent() && row.sent > 0, "{row:?}");
    }
    let kept: Vec<_> = report
        .claims
        .iter()
        .filter(|c| c.metric == Some(shmsock_lab::claims::Metric::Kept) && c.verdict.is_some())
        .collect();
    assert_eq!(kept.len(), 4, "{report}");
    assert!(kept.iter().all(|c| c.source == "IPC cheat sheet"
        && c.verdict == Some(shmsock_lab::claims::Verdict::Agrees)));
    let text = report.render();
    assert!(
        text.contains("after SIGKILL of the creator: 1 entry left in /dev/shm"),
        "{text}"
    );
    assert!(text.contains("read back intact"), "{text}");
}

#[test]
fn signalfd_posix_sem_and_the_named_semaphore_measure_sane_numbers() {
    let opts = LabOptions {
        mode: Mode::Quick,
        mechanisms: Some(vec!["signalfd".into(), "posix-sem".into()]),
        sizes: Some(vec![64, 4096]),
        only: Some(vec![
            "latency".into(),
            "throughput".into(),
            "sync-tax".into(),
        ]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    let ours = |name: &str| ["signalfd", "posix-sem", "semaphore"].contains(&name);
    assert!(
        !report.unavailable.iter().any(|u| ours(&u.mechanism)),
        "{report}"
    );
    let two_cpus = !report.host.pinning.same_cpu();
    for name in ["signalfd", "posix-sem"] {
        let placements: Vec<_> = [&report.latency, &report.latency_same_cpu]
            .into_iter()
            .filter_map(|rows| rows.iter().find(|r| r.mechanism == name))
            .collect();
        assert_eq!(placements.len(), 1 + usize::from(two_cpus), "{report}");
        for row in placements {
            let t = &row.rtt;
            assert!(0 < t.min_ns && t.min_ns <= t.p50_ns, "{row:?}");
            assert!(t.p50_ns <= t.p99_ns && t.p99_ns <= t.p999_ns, "{row:?}");
            // A kernel wake-up each way: more than a cache-line hand-off, far less than the
            // stall timeout.
            assert!(t.p50_ns > 100 && t.p50_ns < 1_000_000_000, "{row:?}");
            assert!(
                row.samples > 0 && row.oneway_p50_ns == t.p50_ns / 2,
                "{row:?}"
            );
        }
    }
    let streams: Vec<(&str, usize)> = report
        .throughput
        .iter()
        .map(|r| (r.mechanism.as_str(), r.size))
        .collect();
    assert_eq!(
        streams,
        [("posix-sem", 64), ("posix-sem", 4096)],
        "{report}"
    );
    for row in &report.throughput {
        assert!(row.msgs_per_s > 0 && row.messages > 0, "{row:?}");
        let bytes = row.msgs_per_s * row.size as u64;
        assert!(
            row.bytes_per_s.abs_diff(bytes) <= row.size as u64,
            "{row:?}"
        );
    }
    let semaphore = report
        .sync_tax
        .iter()
        .find(|r| r.method == "semaphore")
        .expect("a semaphore row");
    assert_eq!(semaphore.queue, "sem-ring");
    assert!(
        semaphore.msgs_per_s > 0 && semaphore.messages > 0 && semaphore.vs_lock_free_pct.is_some(),
        "{semaphore:?}"
    );
    assert!(
        !report.claims.iter().any(|c| ours(&c.measured_by)),
        "no document gives these rows a number: {:?}",
        report.claims
    );
    let text = report.render();
    for quoted in [
        "IPC cheat sheet, the menu: \"eventfd, signalfd | Tiny | Wakeup primitives",
        "or named sem_open.\"; SM and MP article, Advantages of Shared Memory: ",
        "(words, no number: no verdict). Here: posix-sem: one-way p50",
        "Here: semaphore: ",
    ] {
        assert!(text.contains(quoted), "{quoted:?} missing: {text}");
    }
    // Every named semaphore this process made is unlinked.
    let prefix = format!("sem.shmsock-lab-sem-{}-", std::process::id());
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm, where sem_open keeps names")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn fanout_has_a_row_per_size_and_subscriber_count() {
    let budgets = SMALL;
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["fanout".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, budgets).expect("lab runs");
    let rows: Vec<(usize, u32)> = report
        .fanout
        .iter()
        .map(|r| (r.size, r.subscribers))
        .collect();
    assert_eq!(
        rows,
        [(64, 1), (64, 2), (64, 4), (4096, 1), (4096, 2), (4096, 4)],
        "{report}"
    );
    for row in &report.fanout {
        assert!(row.msgs_per_s > 0 && row.messages > 0, "{row:?}");
        let all = row.msgs_per_s * u64::from(row.subscribers);
        assert!(
            row.delivered_per_s.abs_diff(all) <= u64::from(row.subscribers),
            "{row:?}"
        );
        assert!(row.vs_one_subscriber.is_some(), "{row:?}");
        assert!(
            row.cpu_ns_per_delivered > 0.0 && row.cpu_vs_one_subscriber.is_some(),
            "{row:?}"
        );
    }
    assert!(report.unavailable.is_empty(), "{report}");
    let text = report.render();
    assert!(text.contains("Fan-out"), "{text}");
    assert!(text.contains("4 subscribers reach"), "{text}");
    let plots: Vec<_> = report.plots().into_iter().map(|(name, _)| name).collect();
    assert!(plots.contains(&"fanout.svg"), "{plots:?}");
    // An old report.json without the field still reads.
    let mut json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("valid JSON");
    json.as_object_mut().expect("object").remove("fanout");
    let old: shmsock_lab::Report = serde_json::from_value(json).expect("old report reads");
    assert!(old.fanout.is_empty());
}

#[test]
fn setup_times_a_connection_per_path_and_takes_shm_apart() {
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["setup".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    let paths: Vec<&str> = report
        .setup
        .connections
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "shmsock shm://",
            "shmsock unix://",
            "shmsock tcp://",
            "unix-stream",
            "tcp"
        ],
        "{report}"
    );
    for row in &report.setup.connections {
        assert!(row.samples > 0 && row.cycle.p50_ns > 0, "{row:?}");
        assert!(row.vs_unix_stream_p50.is_some(), "{row:?}");
    }
    assert_eq!(report.setup.shm_steps.len(), 9, "{report}");
    assert!(report.unavailable.is_empty(), "{report}");
    let text = report.render();
    assert!(
        text.contains("Setup: connect + first 64 B message"),
        "{text}"
    );
    assert!(
        text.contains("Where a shm:// connection's time goes"),
        "{text}"
    );
    // An old report.json without the field still reads.
    let mut json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("valid JSON");
    json.as_object_mut().expect("object").remove("setup");
    let old: shmsock_lab::Report = serde_json::from_value(json).expect("old report reads");
    assert!(old.setup.connections.is_empty());
}

/// Whether libzmq can be loaded. Without it the libzmq rows are skipped (the test says why
/// and checks the skip), except under `CI=true`, where a missing libzmq fails the test.
fn libzmq_available() -> bool {
    match shmsock_lab::mechanisms::libzmq::Libzmq::load() {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {why}"
            );
            println!("skipped the libzmq rows: {why}");
            eprintln!("skipped the libzmq rows: {why}");
            false
        }
    }
}

#[test]
fn network_puts_shmsock_and_libzmq_side_by_side() {
    use shmsock_lab::experiments::network::{Library, Security};
    let libzmq = libzmq_available();
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["network".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    let count = |library: Library, security: Security| {
        report
            .network
            .iter()
            .filter(|r| r.library == library && r.security == security)
            .count()
    };
    // tcp and unix/ipc × PAIR and PUB/SUB × 64 B, 4 KiB, 1 MiB.
    assert_eq!(count(Library::Shmsock, Security::Null), 12, "{report}");
    // shmsock's CURVE: tcp × PAIR and PUB/SUB × 64 B and 4 KiB, with or without libzmq.
    assert_eq!(count(Library::Shmsock, Security::Curve), 4, "{report}");
    if libzmq {
        assert_eq!(count(Library::Libzmq, Security::Null), 12, "{report}");
        // tcp × PAIR and PUB/SUB × 64 B and 4 KiB, unless this libzmq has no CURVE.
        let no_curve = report
            .unavailable
            .iter()
            .filter(|u| u.mechanism.contains("CURVE") && u.reason.contains("without CURVE"))
            .count();
        assert_eq!(count(Library::Libzmq, Security::Curve) + no_curve, 4);
        // Without CURVE in libzmq the CURVE comparison is skipped: not under CI.
        assert!(
            no_curve == 0 || std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but this libzmq was built without CURVE: {report}"
        );
        if no_curve > 0 {
            println!("skipped the libzmq CURVE rows: this libzmq was built without CURVE");
            eprintln!("skipped the libzmq CURVE rows: this libzmq was built without CURVE");
        }
        assert_eq!(report.unavailable.len(), no_curve, "{report}");
    } else {
        assert_eq!(report.network.len(), 16, "{report}");
        assert_eq!(report.unavailable.len(), 3, "{report}");
        assert!(report.unavailable.iter().all(|u| u.mechanism == "libzmq"
            && u.experiment == "network"
            && u.reason.contains("libzmq5")));
    }
    for row in &report.network {
        assert!(
            row.msgs_per_s > 0 && row.messages > 0 && row.samples > 0,
            "{row:?}"
        );
        let bytes = row.msgs_per_s * row.size as u64;
        assert!(
            row.bytes_per_s.abs_diff(bytes) <= row.size as u64,
            "{row:?}"
        );
        let t = &row.one_way;
        assert!(0 < t.min_ns && t.min_ns <= t.p50_ns, "{row:?}");
        assert!(t.p50_ns <= t.p99_ns && t.p99_ns <= t.p999_ns, "{row:?}");
        let libzmq_twin = report.network.iter().any(|r| {
            r.library == Library::Libzmq
                && (r.transport, r.shape, r.security, r.size)
                    == (row.transport, row.shape, row.security, row.size)
        });
        assert_eq!(
            row.vs_libzmq.is_some(),
            libzmq_twin && row.library == Library::Shmsock,
            "{row:?}"
        );
        assert_eq!(row.vs_null.is_some(), row.security == Security::Curve);
        let scheme = match (row.transport, row.library) {
            (shmsock_lab::experiments::network::Transport::Tcp, _) => "tcp://127.0.0.1:",
            (_, Library::Shmsock) => "unix:///",
            (_, Library::Libzmq) => "ipc:///",
        };
        assert!(row.endpoint.starts_with(scheme), "{row:?}");
    }
    let text = report.render();
    assert!(text.contains("Network: shmsock vs libzmq"), "{text}");
    assert!(text.contains("shmsock/libzmq"), "{text}");
    for route in ["PAIR 64 B", "PUB/SUB 64 B", "PAIR 4 KiB", "PUB/SUB 4 KiB"] {
        let cost = format!("shmsock CURVE tcp {route}: CURVE streams at");
        assert!(text.contains(&cost), "{cost:?} missing: {text}");
    }
    let plots: Vec<_> = report.plots().into_iter().map(|(name, _)| name).collect();
    assert!(plots.contains(&"network.svg"), "{plots:?}");
    // A report.json from before the experiment existed still reads.
    let mut json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("valid JSON");
    json.as_object_mut().expect("object").remove("network");
    let old: shmsock_lab::Report = serde_json::from_value(json).expect("old report reads");
    assert!(old.network.is_empty());
}

#[test]
fn one_queue_at_one_size_has_one_number() {
    // The sync-tax table's lock-free row is raw-ring at 4 KiB: with the throughput table in the
    // same run it is that row, not a second measurement that could disagree with it.
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["throughput".into(), "sync-tax".into()]),
        mechanisms: Some(vec!["raw-ring".into()]),
        sizes: Some(vec![4096]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    let ring = report
        .throughput
        .iter()
        .find(|r| r.mechanism == "raw-ring" && r.size == 4096)
        .expect("raw-ring 4 KiB measured");
    let lock_free = report
        .sync_tax
        .iter()
        .find(|r| r.method == "lock-free")
        .expect("lock-free row");
    assert!(lock_free.from_throughput, "{lock_free:?}");
    assert_eq!(lock_free.msgs_per_s, ring.msgs_per_s);
    assert!(report
        .sync_tax
        .iter()
        .filter(|r| r.method != "lock-free")
        .all(|r| !r.from_throughput));
    assert!(report.render().contains("not measured again"), "{report}");
}

#[test]
fn every_claim_is_checked_or_says_why_and_the_costs_per_message_get_verdicts() {
    use shmsock_lab::claims::{Metric, Verdict, CLAIMS, UNCHECKED};
    let opts = LabOptions {
        mode: Mode::Quick,
        mechanisms: Some(vec!["raw-ring".into(), "pipe".into(), "uds-stream".into()]),
        sizes: Some(vec![64, 4096]),
        only: Some(vec!["latency".into(), "throughput".into(), "costs".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    assert!(report.unavailable.is_empty(), "{report}");
    // The whole inventory, measured here or not: every entry with its source, section and
    // words, and a verdict or the reason there is none.
    assert!(
        report.claims.len() >= CLAIMS.len() + UNCHECKED.len(),
        "{} entries",
        report.claims.len()
    );
    for c in &report.claims {
        assert!(
            !c.source.is_empty() && !c.section.is_empty() && !c.claim.is_empty(),
            "{c:?}"
        );
        assert_ne!(
            c.verdict.is_some(),
            c.not_checked_because.is_some(),
            "{c:?}"
        );
    }
    let verdicts = |metric: Metric, row: &str| -> Vec<Verdict> {
        report
            .claims
            .iter()
            .filter(|c| c.metric == Some(metric) && c.measured_by == row)
            .filter_map(|c| c.verdict)
            .collect()
    };
    let kib4 = 4096;
    // By construction: the ring copies in and out, with no system call per message.
    assert_eq!(
        verdicts(Metric::Copies { size: kib4 }, "raw-ring"),
        [Verdict::More],
        "\"zero copies\" against a ring that copies in and out"
    );
    assert!(
        verdicts(Metric::Syscalls { size: kib4 }, "raw-ring")
            .iter()
            .all(|&v| v == Verdict::Agrees),
        "{report}"
    );
    // A Unix socket: one write and one read per 4 KiB message, as counted.
    let uds = verdicts(Metric::Syscalls { size: kib4 }, "uds-stream");
    assert!(
        uds.len() >= 3 && uds.iter().all(|&v| v == Verdict::Agrees),
        "{uds:?}\n{report}"
    );
    assert_eq!(
        verdicts(Metric::ModeSwitches { size: 64 }, "pipe"),
        [Verdict::Agrees]
    );
    assert_eq!(verdicts(Metric::Switches { size: 64 }, "pipe").len(), 1);
    let pipe = report
        .throughput
        .iter()
        .find(|r| r.mechanism == "pipe" && r.size == 64)
        .expect("a pipe row");
    assert_eq!(
        (pipe.copies_per_msg, pipe.kernel_copies_per_msg),
        (Some(2), Some(2))
    );
    let calls = pipe.syscalls_per_msg().expect("the pipe's system calls");
    assert!((1.9..2.2).contains(&calls), "{pipe:?}");
    assert!(pipe.sender_switches_per_msg.is_some(), "{pipe:?}");
    // The costs experiment's operations and 1 KiB messages, and the ratios of two rows.
    for (metric, row) in [
        (Metric::Cost, "load-cached-shared"),
        (Metric::Cost, "load-miss-private"),
        (Metric::Cost, "mutex-uncontended"),
        (Metric::CostTail, "mutex-contended"),
        (
            Metric::CostRatio,
            "load-cached-shared vs load-cached-private",
        ),
        (Metric::OneKib, "uds-stream"),
        (Metric::OneKibRatio, "uds-stream vs raw-ring"),
        (Metric::LatencyRatio, "pipe vs raw-ring"),
        (Metric::RateRatio { size: kib4 }, "raw-ring vs uds-stream"),
    ] {
        assert!(
            !verdicts(metric, row).is_empty(),
            "{metric:?} {row}:\n{report}"
        );
    }
    assert_eq!(report.costs.operations.len(), 6, "{report}");
    assert_eq!(report.costs.one_kib.len(), 3, "{report}");
    let runs = report
        .claims
        .iter()
        .find(|c| c.claim == "averaged over 10 runs")
        .expect("the unchecked 10 runs");
    assert!(
        runs.not_checked_because
            .as_deref()
            .is_some_and(|why| why.contains("once per run")),
        "{runs:?}"
    );
    let text = report.render();
    for heading in [
        "Costs: one operation at a time",
        "Reference claims vs this machine",
        "Reference claims not checked",
        "syscalls/msg send/recv",
    ] {
        assert!(text.contains(heading), "{heading}:\n{text}");
    }
    // report.json reads back, and one from before the costs experiment still reads.
    let mut json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("valid JSON");
    json.as_object_mut().expect("object").remove("costs");
    let old: shmsock_lab::Report = serde_json::from_value(json).expect("old report reads");
    assert!(old.costs.operations.is_empty());
}
