use super::*;
use crate::experiments::latency::LatencyRow;
use crate::experiments::throughput::ThroughputRow;
use crate::host::HostInfo;
use crate::options::Mode;
use crate::stats::Percentiles;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn needs(
    remote: bool,
    size: Option<u64>,
    rate: Option<f64>,
    budget_ns: Option<u64>,
    untrusted: bool,
) -> Needs {
    Needs {
        remote,
        size_bytes: size,
        rate_per_s: rate,
        latency_budget_ns: budget_ns,
        untrusted,
    }
}

/// (case, needs, leaf, questions asked in order).
fn table() -> Vec<(&'static str, Needs, Leaf, Vec<&'static str>)> {
    const REMOTE: &str = "Different machines, now or later?";
    const SIZE: &str = "More than 100 KiB per transfer?";
    const RATE: &str = "More than 10,000 transfers per second?";
    const LATENCY: &str = "Latency budget under 1 µs?";
    const TRUST: &str = "Untrusted peer?";
    vec![
        (
            "remote wins over everything",
            needs(true, Some(MIB), Some(1e6), Some(100), true),
            Leaf::Network,
            vec![REMOTE],
        ),
        (
            "large and frequent",
            needs(false, Some(MIB), Some(30_000.0), None, false),
            Leaf::SharedMemoryBulk,
            vec![REMOTE, SIZE, RATE, TRUST],
        ),
        (
            "large, exactly 10,000/s is not more than 10,000/s",
            needs(false, Some(200 * KIB), Some(10_000.0), None, false),
            Leaf::Hybrid,
            vec![REMOTE, SIZE, RATE, TRUST],
        ),
        (
            "large, rate not given",
            needs(false, Some(MIB), None, None, false),
            Leaf::Hybrid,
            vec![REMOTE, SIZE, RATE, TRUST],
        ),
        (
            "small with a sub-microsecond budget",
            needs(false, Some(64), None, Some(500), false),
            Leaf::SharedMemoryLowLatency,
            vec![REMOTE, SIZE, LATENCY, TRUST],
        ),
        (
            "exactly 100 KiB is not more than 100 KiB; 1 µs is not under 1 µs",
            needs(false, Some(100 * KIB), Some(1e6), Some(1_000), false),
            Leaf::MessagePassing,
            vec![REMOTE, SIZE, LATENCY],
        ),
        (
            "nothing given: the default",
            Needs::default(),
            Leaf::MessagePassing,
            vec![REMOTE, SIZE, LATENCY],
        ),
        (
            "untrusted on the message-passing leaf changes nothing",
            needs(false, Some(4 * KIB), None, Some(50_000), true),
            Leaf::MessagePassing,
            vec![REMOTE, SIZE, LATENCY, TRUST],
        ),
        (
            "untrusted, large and frequent",
            needs(false, Some(MIB), Some(50_000.0), None, true),
            Leaf::UntrustedCopying,
            vec![REMOTE, SIZE, RATE, TRUST],
        ),
        (
            "untrusted, large and infrequent",
            needs(false, Some(MIB), Some(10.0), None, true),
            Leaf::UntrustedCopying,
            vec![REMOTE, SIZE, RATE, TRUST],
        ),
        (
            "untrusted, sub-microsecond",
            needs(false, Some(64), None, Some(200), true),
            Leaf::UntrustedCopying,
            vec![REMOTE, SIZE, LATENCY, TRUST],
        ),
    ]
}

#[test]
fn every_case_reaches_its_leaf_by_its_path() {
    for (case, needs, leaf, questions) in table() {
        let (got, path) = decide(&needs);
        assert_eq!(got, leaf, "{case}");
        let asked: Vec<_> = path.iter().map(|s| s.question).collect();
        assert_eq!(asked, questions, "{case}");
    }
}

#[test]
fn the_table_covers_every_leaf() {
    let reached: Vec<Leaf> = table().iter().map(|(_, _, leaf, _)| *leaf).collect();
    for leaf in Leaf::ALL {
        assert!(reached.contains(&leaf), "{leaf:?} not covered");
    }
}

#[test]
fn every_leaf_names_a_shmsock_endpoint_that_exists() {
    for leaf in Leaf::ALL {
        let endpoint = leaf.endpoint();
        assert!(
            ["shm://", "tcp://", "unix:///"]
                .iter()
                .any(|s| endpoint.contains(s)),
            "{leaf:?}: {endpoint}"
        );
        // tcp://, unix://, loans and the bridge exist: nothing is "planned" any more, and
        // whoever is sent to a transport is told what it speaks and how to use it.
        assert!(!endpoint.contains("planned"), "{leaf:?}: {endpoint}");
        assert!(!endpoint.contains("Unsupported"), "{leaf:?}: {endpoint}");
        if endpoint.contains("loans") && !endpoint.contains("without loans") {
            assert!(
                endpoint.contains("Options::loan_pool") && endpoint.contains("recv_sample"),
                "{leaf:?}: {endpoint}"
            );
        }
        if endpoint.contains("tcp://") || endpoint.contains("unix:///") {
            assert!(endpoint.contains("ZMTP"), "{leaf:?}: {endpoint}");
        }
        assert!(!leaf.reason().is_empty() && !leaf.mechanism().is_empty());
    }
    let network = Leaf::Network.endpoint();
    assert!(
        network.contains("Publisher/Subscriber")
            && network.contains("shmsock bridge shm://NAME tcp://")
            && network.contains("--dest-curve-secret"),
        "{network}"
    );
}

#[test]
fn answers_are_parsed_with_units() {
    assert_eq!(parse_bytes("64"), Ok(64));
    assert_eq!(parse_bytes("4KiB"), Ok(4096));
    assert_eq!(parse_bytes("1.5 MiB"), Ok(1_572_864));
    assert_eq!(parse_bytes("2G"), Ok(2 << 30));
    assert!(parse_bytes("lots").is_err());
    assert!(parse_bytes("3 parsecs").is_err());
    assert_eq!(parse_rate("30k"), Ok(30_000.0));
    assert_eq!(parse_rate("30000/s"), Ok(30_000.0));
    assert_eq!(parse_rate("1.5M"), Ok(1_500_000.0));
    assert_eq!(parse_duration_ns("500ns"), Ok(500));
    assert_eq!(parse_duration_ns("2us"), Ok(2_000));
    assert_eq!(parse_duration_ns("2µs"), Ok(2_000));
    assert_eq!(parse_duration_ns("1.5ms"), Ok(1_500_000));
    assert_eq!(parse_duration_ns("750"), Ok(750));
    assert!(parse_duration_ns("soon").is_err());
}

#[test]
fn the_interview_asks_only_the_questions_on_the_path() {
    let mut output = Vec::new();
    let answers = "n\n1MiB\n30k\nn\n";
    let got = interview(&mut answers.as_bytes(), &mut output).expect("interview");
    assert_eq!(got, needs(false, Some(MIB), Some(30_000.0), None, false));
    let text = String::from_utf8(output).expect("utf-8");
    assert!(text.contains("transfers per second"), "{text}");
    assert!(!text.contains("Latency budget"), "{text}");

    let mut output = Vec::new();
    let got = interview(&mut "maybe\ny\n".as_bytes(), &mut output).expect("interview");
    assert!(got.remote);
    let text = String::from_utf8(output).expect("utf-8");
    assert!(text.contains("answer y or n"), "{text}");
    assert!(!text.contains("bytes per transfer"), "{text}");

    // End of input: whatever was answered, the rest unanswered.
    let got = interview(&mut "n\n64\n".as_bytes(), &mut Vec::new()).expect("interview");
    assert_eq!(got, needs(false, Some(64), None, None, false));
}

fn report() -> Report {
    let mut r = Report::new(HostInfo::for_tests(2), Mode::Default, Vec::new());
    let lat = |name: &str, p50_ns: u64| {
        LatencyRow::new(name, 64, Percentiles::at(p50_ns, [2, 3, 4]), 1000)
    };
    r.latency = vec![
        lat("floor", 140),
        lat("shmsock-busy", 400),
        lat("shmsock", 800),
        lat("uds-stream", 20_000),
        lat("tcp", 30_000),
    ];
    let second = 1_000_000_000;
    r.throughput = vec![
        ThroughputRow::new("uds-stream", 1 << 20, 5_000, second, second, second, second),
        ThroughputRow::new(
            "shmsock-offset",
            1 << 20,
            900_000,
            second,
            second,
            second,
            second,
        ),
        ThroughputRow::new("uds-stream", 4096, 300_000, second, second, second, second),
    ];
    r
}

#[test]
fn advice_quotes_the_reports_numbers() {
    let r = report();
    let advice = advise(
        &needs(false, Some(MIB), Some(30_000.0), None, false),
        Some(&r),
    );
    assert_eq!(advice.leaf, Leaf::SharedMemoryBulk);
    let text = advice.to_string();
    assert!(text.contains("shmsock-offset"), "{text}");
    assert!(text.contains("uds-stream"), "{text}");
    assert!(
        text.contains("600%"),
        "30k/s is 600% of uds-stream's 5k/s: {text}"
    );
    assert!(text.contains("Options::loan_pool"), "{text}");
    assert!(
        text.contains("More than 10,000 transfers per second? yes"),
        "{text}"
    );

    let advice = advise(&needs(false, Some(64), None, Some(50), false), Some(&r));
    let text = advice.to_string();
    assert!(
        text.contains("below this machine's hardware floor"),
        "{text}"
    );
    assert!(text.contains("misses"), "{text}");

    let advice = advise(&Needs::default(), None);
    assert!(advice.evidence.is_empty());
    assert!(advice.notes.iter().any(|n| n.contains("no lab report")));
}

#[test]
fn remote_advice_quotes_the_bridge_experiment_or_says_how_to_run_it() {
    use crate::experiments::bridge::BridgeRow;
    let mut r = report();
    let text = advise(&needs(true, None, None, None, false), Some(&r)).to_string();
    assert!(text.contains("loopback TCP (tcp)"), "{text}");
    assert!(text.contains("`shmsock lab --only bridge`"), "{text}");

    let row = |path: &str, p50_ns: u64, bridge_cpu| {
        BridgeRow::new(
            path,
            64,
            Percentiles::at(p50_ns, [3, 4, 5]),
            1000,
            bridge_cpu,
        )
    };
    r.bridge = vec![
        row("shm", 300, None),
        row("tcp", 20_000, None),
        row("shm->bridge->tcp", 27_500, Some(1)),
    ];
    let text = advise(&needs(true, None, None, None, false), Some(&r)).to_string();
    assert!(
        text.contains("shmsock tcp:// publisher -> subscriber: 20.0 µs one-way p50"),
        "{text}"
    );
    assert!(text.contains("the bridge adds +7.5 µs at p50"), "{text}");
}
