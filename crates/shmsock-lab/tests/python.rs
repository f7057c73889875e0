//! The python experiment measures every Python row with sane numbers, or says why a row is
//! missing: skipped (its module or the interpreter is not installed; a failure under `CI=true`,
//! where CI provides them) or failed.

use shmsock_lab::experiments::python::{self, PythonRun, ROWS};
use shmsock_lab::{LabOptions, Mode, Report};

mod budgets;
use budgets::SMALL;

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The unavailable rows of `mechanism` at `size` for `experiment` (or for the whole row).
fn unavailable<'a>(
    report: &'a Report,
    mechanism: &str,
    size: usize,
    experiment: &str,
) -> Vec<&'a str> {
    report
        .unavailable
        .iter()
        .filter(|u| u.mechanism == mechanism && u.size == size)
        .filter(|u| u.experiment == experiment || u.experiment == "python")
        .map(|u| u.reason.as_str())
        .collect()
}

#[test]
fn python_rows_are_measured_with_sane_numbers_or_say_why_not() {
    let sizes = [64, 4096, 1 << 20];
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["python".into()]),
        sizes: Some(sizes.to_vec()),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    let run: &PythonRun = report.python.as_ref().expect("the python experiment ran");
    if run.version.is_none() {
        let why = report
            .unavailable
            .first()
            .map_or("no reason given", |u| u.reason.as_str());
        assert!(
            !under_ci(),
            "CI=true but the Python rows were skipped: {why}"
        );
        println!("skipped the Python rows: {why}");
        eprintln!("skipped the Python rows: {why}");
        assert!(run.rows.is_empty(), "{report}");
        assert_eq!(report.unavailable.len(), ROWS.len() * sizes.len());
        assert!(report
            .unavailable
            .iter()
            .all(|u| u.experiment == "python" && u.reason.contains(python::PYTHON_ENV)));
        return;
    }
    for name in ROWS {
        let skipped: Vec<_> = report
            .unavailable
            .iter()
            .filter(|u| u.mechanism == name && u.reason.starts_with("skipped: "))
            .collect();
        if !skipped.is_empty() {
            // Only the rows of pyzmq and of the shmsock package may lack their module.
            assert!(
                name == python::ZMQ_ROW || name.starts_with("py-shmsock"),
                "{name}: {skipped:?}"
            );
            assert!(!under_ci(), "CI=true but {}", skipped[0].reason);
            println!("skipped {name}: {}", skipped[0].reason);
            eprintln!("skipped {name}: {}", skipped[0].reason);
            assert!(skipped[0]
                .reason
                .contains("to measure this row: pip install"));
            continue;
        }
        for size in sizes {
            let row = run.find(name, size);
            let round_trip = row.and_then(|r| r.round_trip);
            let stream = row.and_then(|r| r.stream);
            assert!(
                round_trip.is_some(),
                "{name} round trip at {size} B: {:?}",
                unavailable(&report, name, size, "python-latency")
            );
            assert!(
                stream.is_some(),
                "{name} stream at {size} B: {:?}",
                unavailable(&report, name, size, "python-throughput")
            );
            let (Some(rt), Some(s)) = (round_trip, stream) else {
                unreachable!()
            };
            let t = rt.rtt;
            assert!(
                0 < t.min_ns && t.min_ns <= t.p50_ns,
                "{name} {size}: {rt:?}"
            );
            assert!(t.p50_ns <= t.p99_ns && t.p99_ns <= t.p999_ns && t.p999_ns <= t.max_ns);
            // An interpreter on each side: well above a bare cache line's round trip (about
            // 130 ns here; py-shmsock's 64 B round trip is 0.9-1.2 µs), far below a second.
            assert!(
                t.p50_ns > 300 && t.p50_ns < 1_000_000_000,
                "{name} {size}: {rt:?}"
            );
            assert!(rt.samples > 0, "{rt:?}");
            assert!(s.messages > 0 && s.msgs_per_s > 0, "{name} {size}: {s:?}");
            // Python moves far fewer than 100 M messages a second, and a message is counted
            // once: the rate is the count over the window.
            assert!(s.msgs_per_s < 100_000_000, "{s:?}");
            let counted = s.messages as f64 / s.seconds;
            assert!(
                (counted - s.msgs_per_s as f64).abs() <= 1.0,
                "{name} {size}: {s:?}"
            );
            let bytes = s.msgs_per_s * size as u64;
            assert!(s.bytes_per_s.abs_diff(bytes) <= size as u64, "{s:?}");
            // Each process is pinned to one CPU: its CPU time fits in its window (a window
            // too short for that to show is not checked).
            let cpus = if s.cpu_known() { 2 } else { 0 };
            for (cpu, kernel) in [
                (s.sender_cpu_pct, s.sender_kernel_pct),
                (s.receiver_cpu_pct, s.receiver_kernel_pct),
            ]
            .into_iter()
            .take(cpus)
            {
                assert!(cpu > 0.0 && cpu <= 130.0, "{name} {size}: {s:?}");
                assert!(kernel <= cpu + 1.0, "{name} {size}: {s:?}");
            }
            assert!(
                s.vs_mp_queue.is_some(),
                "every stream is compared with py-mp-queue's: {s:?}"
            );
        }
    }
    let measured = |name: &str| run.find(name, python::SUMMARY_SIZE).is_some();
    assert_eq!(
        run.summary.is_some(),
        measured(python::SHMSOCK_ROW),
        "{report}"
    );
    let headline = report.headline();
    assert_eq!(
        headline.iter().any(|l| l.starts_with("From Python")),
        run.summary.is_some(),
        "{headline:?}"
    );
    if let Some(summary) = run.summary {
        let both = measured(python::QUEUE_ROW) && measured(python::ZMQ_ROW);
        assert_eq!(summary.stream_vs_zmq_ipc.is_some(), both, "{summary:?}");
        assert_eq!(summary.rtt_p50_vs_mp_queue.is_some(), both, "{summary:?}");
    }
    let text = report.render();
    assert!(
        text.contains("Python: multiprocessing, pyzmq and shmsock-python"),
        "{text}"
    );
    assert!(
        text.contains("py-mp-queue: multiprocessing.Queue"),
        "{text}"
    );
    assert!(text.contains("these rows have no verdicts"), "{text}");
    assert!(report
        .claims
        .iter()
        .all(|c| !c.measured_by.starts_with("py-")));
    // The report reads back, and one from before the experiment existed still reads.
    let json = report.to_json().expect("json");
    let back: Report = serde_json::from_str(&json).expect("reads back");
    let key = |run: &PythonRun| -> Vec<(String, usize, Option<u64>, Option<u64>)> {
        run.rows
            .iter()
            .map(|r| {
                let p50 = r.round_trip.map(|t| t.rtt.p50_ns);
                (
                    r.mechanism.clone(),
                    r.size,
                    p50,
                    r.stream.map(|s| s.msgs_per_s),
                )
            })
            .collect()
    };
    assert_eq!(back.python.as_ref().map(key), Some(key(run)));
    let mut value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    value.as_object_mut().expect("object").remove("python");
    let old: Report = serde_json::from_value(value).expect("an old report reads");
    assert!(old.python.is_none());
}

#[test]
fn the_mechanism_filter_picks_python_rows_by_name() {
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["python".into()]),
        mechanisms: Some(vec!["pipe".into(), "py-mp-pipe".into()]),
        sizes: Some(vec![64]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    let run = report.python.as_ref().expect("the python experiment ran");
    let names: Vec<&str> = run.rows.iter().map(|r| r.mechanism.as_str()).collect();
    let reported: Vec<&str> = report
        .unavailable
        .iter()
        .map(|u| u.mechanism.as_str())
        .collect();
    assert!(
        names.iter().chain(&reported).all(|n| *n == "py-mp-pipe"),
        "{report}"
    );
    let err = shmsock_lab::run_with(
        &LabOptions {
            mechanisms: Some(vec!["py-carrier-pigeon".into()]),
            ..opts
        },
        SMALL,
    )
    .expect_err("an unknown row");
    assert!(
        err.to_string().contains("python experiment: py-mp-pipe"),
        "{err}"
    );
}
