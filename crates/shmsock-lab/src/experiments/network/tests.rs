//! The network experiment's plan, ratios, table and plot, with made-up rows (the runs
//! themselves are tested end to end in `tests/report_json.rs`, which needs libzmq).

use super::*;

#[test]
fn every_shmsock_route_has_a_libzmq_twin_with_null_and_with_curve() {
    let configs = configs();
    let count = |library, security| {
        configs
            .iter()
            .filter(|c| c.library == library && c.security == security)
            .count()
    };
    // 2 transports × 2 patterns × 3 sizes; CURVE: tcp × 2 patterns × 2 sizes.
    assert_eq!(count(Library::Shmsock, Security::Null), 12);
    assert_eq!(count(Library::Libzmq, Security::Null), 12);
    assert_eq!(count(Library::Libzmq, Security::Curve), 4);
    assert_eq!(count(Library::Shmsock, Security::Curve), 4);
    for c in configs.iter().filter(|c| c.library == Library::Shmsock) {
        let twin = Config {
            library: Library::Libzmq,
            ..*c
        };
        assert!(configs.contains(&twin), "{c:?} has no libzmq twin");
    }
    assert!(configs
        .iter()
        .filter(|c| c.security == Security::Curve)
        .all(|c| c.transport == Transport::Tcp && CURVE_SIZES.contains(&c.size)));
    let curve = configs
        .iter()
        .find(|c| c.security == Security::Curve)
        .expect("a CURVE route");
    assert_eq!(curve.name(), "shmsock tcp PAIR CURVE");
    // shmsock's CURVE rows: tcp, PAIR and PUB/SUB, 64 B and 4 KiB, each right before its
    // libzmq twin.
    let shmsock_curve: Vec<_> = configs
        .iter()
        .filter(|c| c.library == Library::Shmsock && c.security == Security::Curve)
        .map(|c| (c.shape, c.size))
        .collect();
    assert_eq!(
        shmsock_curve,
        [
            (Shape::Pair, 64),
            (Shape::PubSub, 64),
            (Shape::Pair, 4096),
            (Shape::PubSub, 4096)
        ]
    );
    for (i, c) in configs.iter().enumerate() {
        if c.library == Library::Shmsock {
            let next = configs.get(i + 1).expect("a libzmq twin follows");
            assert_eq!(
                *next,
                Config {
                    library: Library::Libzmq,
                    ..*c
                }
            );
        }
    }
}

#[test]
fn both_libraries_get_fixed_counts_scaled_by_the_mode() {
    let quick = plan(&Budgets::QUICK, 64);
    assert_eq!(
        quick.stream.iters,
        STREAM_SMALL_MESSAGES / Budgets::QUICK.divisor
    );
    assert_eq!(quick.stream.max_time, Budgets::QUICK.experiment_max_time);
    assert_eq!(quick.latency.iters, 2_000);
    let default = plan(&Budgets::DEFAULT, 64);
    assert_eq!(default.stream.iters, STREAM_SMALL_MESSAGES);
    assert_eq!(default.latency.iters, 40_000);
    // Bulk sizes move the throughput experiment's volume: 32 MiB in quick mode.
    assert_eq!(plan(&Budgets::QUICK, 1 << 20).stream.iters, 32);
    assert_eq!(plan(&Budgets::QUICK, 4096).stream.iters, 8192);
}

#[test]
fn libzmq_queues_hold_the_same_bytes_at_every_size() {
    assert_eq!(ends::high_water_mark(64), 262_144);
    assert_eq!(ends::high_water_mark(4096), 4096);
    assert_eq!(ends::high_water_mark(1 << 20), 16);
}

fn row(library: Library, transport: Transport, security: Security, msgs: u64) -> NetworkRow {
    let one_way = Percentiles {
        min_ns: 10_000,
        p50_ns: if security == Security::Curve {
            30_000
        } else {
            20_000
        },
        p99_ns: 60_000,
        p999_ns: 80_000,
        max_ns: 90_000,
        mean_ns: 22_000.0,
    };
    NetworkRow {
        library,
        version: "4.3.4".into(),
        transport,
        shape: Shape::PubSub,
        security,
        size: 64,
        endpoint: "tcp://127.0.0.1:5555".into(),
        msgs_per_s: msgs,
        bytes_per_s: msgs * 64,
        messages: msgs,
        seconds: 1.0,
        stream_capped: library == Library::Shmsock,
        one_way,
        samples: 1000,
        latency_capped: false,
        vs_libzmq: None,
        vs_null: None,
    }
}

fn rows() -> Vec<NetworkRow> {
    let mut rows = vec![
        row(Library::Shmsock, Transport::Tcp, Security::Null, 200_000),
        row(Library::Libzmq, Transport::Tcp, Security::Null, 2_000_000),
        row(Library::Shmsock, Transport::Ipc, Security::Null, 300_000),
        row(Library::Libzmq, Transport::Tcp, Security::Curve, 500_000),
        row(Library::Shmsock, Transport::Tcp, Security::Curve, 100_000),
    ];
    compare(&mut rows);
    rows
}

#[test]
fn shmsock_is_compared_with_libzmq_on_the_same_route_and_curve_with_null() {
    let rows = rows();
    assert_eq!(rows[0].vs_libzmq, Some(0.1));
    assert_eq!(rows[1].vs_libzmq, None, "libzmq rows are the reference");
    assert_eq!(rows[2].vs_libzmq, None, "no libzmq ipc row here");
    assert_eq!(rows[3].vs_null, Some(0.25));
    assert_eq!(rows[0].vs_null, None);
    // shmsock CURVE: against libzmq CURVE, and against shmsock NULL.
    assert_eq!(rows[4].vs_libzmq, Some(0.2));
    assert_eq!(rows[4].vs_null, Some(0.5));
}

#[test]
fn the_table_puts_both_libraries_side_by_side() {
    let rows = rows();
    let table = table(&rows, &HostInfo::for_tests(2)).expect("a table");
    let text = table.to_text();
    let tcp = text
        .lines()
        .find(|l| l.starts_with("tcp ") && l.contains("PUB/SUB"))
        .expect("the tcp PUB/SUB row");
    for cell in [
        "200.0 k*", "12.8", "20.0 µs", "60.0 µs", "2.00 M", "128.0", "0.10x",
    ] {
        assert!(tcp.contains(cell), "{cell} missing: {tcp}");
    }
    let ipc = text
        .lines()
        .find(|l| l.starts_with("unix/ipc"))
        .expect("the ipc row");
    assert!(
        ipc.trim_end().ends_with('-'),
        "no libzmq twin, no ratio: {ipc}"
    );
    assert!(text.contains("CURVE (RFC 26 CurveZMQ)"), "{text}");
    // The CURVE group's row has both libraries and their ratio.
    let curve_heading = text
        .find("CURVE (RFC 26 CurveZMQ)")
        .expect("the CURVE group");
    let curve = text[curve_heading..]
        .lines()
        .find(|l| l.starts_with("tcp ") && l.contains("PUB/SUB"))
        .expect("the CURVE tcp PUB/SUB row");
    for cell in ["100.0 k*", "30.0 µs", "500.0 k", "0.20x"] {
        assert!(curve.contains(cell), "{cell} missing: {curve}");
    }
    assert!(
        text.contains(
            "shmsock CURVE tcp PUB/SUB 64 B: CURVE streams at 0.50x of the NULL rate; one-way \
             p50 +10.0 µs, p99 +0 ns against NULL."
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "libzmq CURVE tcp PUB/SUB 64 B: CURVE streams at 0.25x of the NULL rate; one-way \
             p50 +10.0 µs, p99 +0 ns against NULL."
        ),
        "{text}"
    );
    assert!(text.contains("CLOCK_MONOTONIC"), "{text}");
    assert!(text.contains("libzmq 4.3.4"), "{text}");
    assert!(text.contains("* the run's time cap"), "{text}");
    assert!(table.to_markdown().contains("![network](network.svg)"));
    assert!(plot(&rows).is_some_and(|svg| svg.starts_with("<svg")));
    assert!(super::table(&[], &HostInfo::for_tests(2)).is_none());
}

#[test]
fn the_json_names_routes_in_words() {
    let json = serde_json::to_value(&rows()[3]).expect("serialises");
    assert_eq!(json["library"], "libzmq");
    assert_eq!(json["transport"], "tcp");
    assert_eq!(json["shape"], "pub-sub");
    assert_eq!(json["security"], "curve");
    assert_eq!(json["p50_ns"], 30_000);
}
