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
        ..Needs::default()
    }
}

/// Only a wake-up; `event_loop` as given.
fn notify(event_loop: bool) -> Needs {
    Needs {
        notify_only: true,
        event_loop,
        ..Needs::default()
    }
}

/// A byte stream at `rate`, to a forked child or not.
fn stream(parent_child: bool, rate: Option<f64>) -> Needs {
    Needs {
        byte_stream: true,
        parent_child,
        rate_per_s: rate,
        ..Needs::default()
    }
}

/// Messages that must wait in the kernel.
fn kernel_queue(size: Option<u64>) -> Needs {
    Needs {
        kernel_queue: true,
        size_bytes: size,
        ..Needs::default()
    }
}

const REMOTE: &str = "Different machines, now or later?";
const NOTIFY: &str = "Only a wake-up, no data?";
const SIZE: &str = "More than 100 KiB per transfer?";
const RATE: &str = "More than 10,000 transfers per second?";
const LATENCY: &str = "Latency budget under 1 µs?";
const TRUST: &str = "Untrusted peer?";
const EVENT_LOOP: &str = "Does the woken side wait in an event loop (epoll, poll, tokio)?";
const SIGNAL: &str = "A signal clearly faster than an eventfd here?";
const KERNEL: &str = "Must messages wait in the kernel while the reader is absent?";
const STREAM: &str = "A byte stream, not messages?";
const CHILD: &str = "Is the peer a child you fork?";
const PIPE_RATE: &str = "Rate above half of what a pipe streams here?";
const FIFO_RATE: &str = "Rate above half of what a FIFO streams here?";

/// (case, needs, leaf, questions asked in order), decided without numbers.
fn table() -> Vec<(&'static str, Needs, Leaf, Vec<&'static str>)> {
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
            vec![REMOTE, NOTIFY, SIZE, RATE, TRUST],
        ),
        (
            "large, exactly 10,000/s is not more than 10,000/s",
            needs(false, Some(200 * KIB), Some(10_000.0), None, false),
            Leaf::Hybrid,
            vec![REMOTE, NOTIFY, SIZE, RATE, TRUST],
        ),
        (
            "large, rate not given",
            needs(false, Some(MIB), None, None, false),
            Leaf::Hybrid,
            vec![REMOTE, NOTIFY, SIZE, RATE, TRUST],
        ),
        (
            "small with a sub-microsecond budget",
            needs(false, Some(64), None, Some(500), false),
            Leaf::SharedMemoryLowLatency,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, TRUST],
        ),
        (
            "exactly 100 KiB is not more than 100 KiB; 1 µs is not under 1 µs",
            needs(false, Some(100 * KIB), Some(1e6), Some(1_000), false),
            Leaf::MessagePassing,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM],
        ),
        (
            "nothing given: the default",
            Needs::default(),
            Leaf::MessagePassing,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM],
        ),
        (
            "untrusted on the message-passing leaf changes nothing",
            needs(false, Some(4 * KIB), None, Some(50_000), true),
            Leaf::MessagePassing,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM, TRUST],
        ),
        (
            "untrusted, large and frequent",
            needs(false, Some(MIB), Some(50_000.0), None, true),
            Leaf::UntrustedCopying,
            vec![REMOTE, NOTIFY, SIZE, RATE, TRUST],
        ),
        (
            "untrusted, large and infrequent",
            needs(false, Some(MIB), Some(10.0), None, true),
            Leaf::UntrustedCopying,
            vec![REMOTE, NOTIFY, SIZE, RATE, TRUST],
        ),
        (
            "untrusted, sub-microsecond",
            needs(false, Some(64), None, Some(200), true),
            Leaf::UntrustedCopying,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, TRUST],
        ),
        (
            "remote wins over the menu too",
            Needs {
                remote: true,
                ..notify(true)
            },
            Leaf::Network,
            vec![REMOTE],
        ),
        (
            "wake-ups for an event loop",
            notify(true),
            Leaf::Eventfd,
            vec![REMOTE, NOTIFY, LATENCY, EVENT_LOOP],
        ),
        (
            "wake-ups, no numbers to prefer a signal",
            notify(false),
            Leaf::Eventfd,
            vec![REMOTE, NOTIFY, LATENCY, EVENT_LOOP, SIGNAL],
        ),
        (
            "wake-ups within a sub-microsecond budget: a spinning reader",
            Needs {
                latency_budget_ns: Some(300),
                ..notify(true)
            },
            Leaf::SharedMemoryLowLatency,
            vec![REMOTE, NOTIFY, LATENCY, TRUST],
        ),
        (
            "a byte stream to a forked child",
            stream(true, None),
            Leaf::Pipe,
            vec![
                REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM, CHILD, PIPE_RATE,
            ],
        ),
        (
            "a byte stream to a forked child, rate not checked without numbers",
            stream(true, Some(1e9)),
            Leaf::Pipe,
            vec![
                REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM, CHILD, PIPE_RATE,
            ],
        ),
        (
            "a byte stream between unrelated processes",
            stream(false, None),
            Leaf::Fifo,
            vec![
                REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM, CHILD, FIFO_RATE,
            ],
        ),
        (
            "an untrusted peer on a pipe: the kernel copies",
            Needs {
                untrusted: true,
                ..stream(true, None)
            },
            Leaf::Pipe,
            vec![
                REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM, CHILD, PIPE_RATE, TRUST,
            ],
        ),
        (
            "a forked child exchanging messages: the default",
            Needs {
                parent_child: true,
                ..Needs::default()
            },
            Leaf::MessagePassing,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM],
        ),
        (
            "messages that wait in the kernel",
            kernel_queue(Some(256)),
            Leaf::PosixMq,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, KERNEL],
        ),
        (
            "a queue wins over a byte stream, which the path says",
            Needs {
                byte_stream: true,
                parent_child: true,
                ..kernel_queue(None)
            },
            Leaf::PosixMq,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM],
        ),
        (
            "a kernel queue cannot carry large transfers: the path says so",
            Needs {
                rate_per_s: Some(30_000.0),
                ..kernel_queue(Some(MIB))
            },
            Leaf::SharedMemoryBulk,
            vec![REMOTE, NOTIFY, SIZE, RATE, KERNEL, TRUST],
        ),
        (
            "a kernel queue cannot answer in under 1 µs: the path says so",
            Needs {
                latency_budget_ns: Some(500),
                ..kernel_queue(Some(64))
            },
            Leaf::SharedMemoryLowLatency,
            vec![REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, TRUST],
        ),
    ]
}

/// A report with the menu's rows: eventfd and signal latency (one-way p50 = half of these
/// round trips), pipe and FIFO throughput at 64 B (1 M and 400 k msgs/s), shm:// rows.
fn menu_report(eventfd_rtt_ns: u64, signal_rtt_ns: u64) -> Report {
    let mut r = report();
    let lat = |name: &str, p50_ns: u64| {
        LatencyRow::new(name, 64, Percentiles::at(p50_ns, [2, 3, 4]), 1000)
    };
    r.latency.extend([
        lat("eventfd", eventfd_rtt_ns),
        lat("signal", signal_rtt_ns),
        lat("shmsock-blocking", 18_000),
        lat("pipe", 13_000),
        lat("fifo", 14_000),
        lat("posix-mq", 20_000),
    ]);
    let second = 1_000_000_000;
    let row = |name: &str, size: usize, messages: u64| {
        ThroughputRow::new(name, size, messages, second, second, second, second)
    };
    r.throughput.extend([
        row("pipe", 64, 1_000_000),
        row("pipe", 4096, 500_000),
        row("fifo", 64, 400_000),
        row("posix-mq", 64, 800_000),
        row("shmsock", 64, 20_000_000),
        row("shmsock", 4096, 5_000_000),
    ]);
    r
}

/// (case, needs, report, leaf, questions asked in order): the branches that read numbers.
fn measured_table() -> Vec<(&'static str, Needs, Report, Leaf, Vec<&'static str>)> {
    let notify_path = vec![REMOTE, NOTIFY, LATENCY, EVENT_LOOP, SIGNAL];
    let pipe_path = vec![
        REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM, CHILD, PIPE_RATE,
    ];
    let fifo_path = vec![
        REMOTE, NOTIFY, SIZE, LATENCY, KERNEL, STREAM, CHILD, FIFO_RATE,
    ];
    vec![
        (
            "a signal clearly faster than eventfd",
            notify(false),
            menu_report(20_000, 10_000),
            Leaf::Signal,
            notify_path.clone(),
        ),
        (
            "a signal faster, but within the margin: eventfd",
            notify(false),
            menu_report(12_000, 10_000),
            Leaf::Eventfd,
            notify_path.clone(),
        ),
        (
            "a signal slower: eventfd",
            notify(false),
            menu_report(12_000, 16_000),
            Leaf::Eventfd,
            notify_path,
        ),
        (
            "an event loop takes eventfd whatever the signal's numbers",
            notify(true),
            menu_report(20_000, 10_000),
            Leaf::Eventfd,
            vec![REMOTE, NOTIFY, LATENCY, EVENT_LOOP],
        ),
        (
            "a pipe at half of what it streams",
            stream(true, Some(500_000.0)),
            menu_report(12_000, 16_000),
            Leaf::Pipe,
            pipe_path.clone(),
        ),
        (
            "a pipe asked more than half of what it streams: shm://",
            stream(true, Some(600_000.0)),
            menu_report(12_000, 16_000),
            Leaf::SharedMemoryRate,
            pipe_path,
        ),
        (
            "a FIFO asked more than half of what it streams: shm://",
            stream(false, Some(300_000.0)),
            menu_report(12_000, 16_000),
            Leaf::SharedMemoryRate,
            fifo_path.clone(),
        ),
        (
            "an untrusted peer at a rate beyond the FIFO: a Conn copies already",
            Needs {
                untrusted: true,
                ..stream(false, Some(300_000.0))
            },
            menu_report(12_000, 16_000),
            Leaf::SharedMemoryRate,
            [fifo_path.as_slice(), &[TRUST]].concat(),
        ),
        (
            "a FIFO within its means",
            stream(false, Some(100_000.0)),
            menu_report(12_000, 16_000),
            Leaf::Fifo,
            fifo_path,
        ),
    ]
}

#[test]
fn every_measured_case_reaches_its_leaf_by_its_path() {
    for (case, needs, report, leaf, questions) in measured_table() {
        let (got, path) = decide_measured(&needs, Some(&report));
        assert_eq!(got, leaf, "{case}: {path:?}");
        let asked: Vec<_> = path.iter().map(|s| s.question).collect();
        assert_eq!(asked, questions, "{case}");
    }
}

#[test]
fn the_measured_branches_quote_the_numbers_they_took() {
    let (_, path) = decide_measured(&notify(false), Some(&menu_report(20_000, 10_000)));
    assert_eq!(
        path.last().map(|s| s.answer.as_str()),
        Some("yes (signal 5.0 µs, eventfd 10.0 µs one-way p50)")
    );
    let (_, path) = decide_measured(
        &stream(true, Some(600_000.0)),
        Some(&menu_report(12_000, 16_000)),
    );
    assert_eq!(
        path.last().map(|s| s.answer.as_str()),
        Some("yes (600000/s; pipe streams 1.00 M msgs/s at 64 B)")
    );
    // Without the rows, the plain answer stands and the path says why.
    let (leaf, path) = decide_measured(&stream(false, Some(5e6)), Some(&report()));
    assert_eq!(leaf, Leaf::Fifo);
    assert_eq!(
        path.last().map(|s| s.answer.as_str()),
        Some("no (5000000/s, not checked: no fifo throughput numbers)")
    );
    let (leaf, path) = decide_measured(&notify(false), Some(&report()));
    assert_eq!(leaf, Leaf::Eventfd);
    assert_eq!(
        path.last().map(|s| s.answer.as_str()),
        Some("no (no numbers for both: eventfd, the default)")
    );
}

#[test]
fn each_menu_leaf_answers_with_its_use_line() {
    let cases: [(Needs, Report, &str); 6] = [
        (
            notify(true),
            menu_report(20_000, 10_000),
            "Use: eventfd, a kernel counter as a doorbell (wake-ups for event loops)",
        ),
        (
            notify(false),
            menu_report(20_000, 10_000),
            "Use: a real-time signal (sigqueue), taken with sigtimedwait or a signalfd",
        ),
        (
            stream(true, Some(1000.0)),
            menu_report(12_000, 16_000),
            "Use: an anonymous pipe, made before fork(): a byte stream parent <-> child",
        ),
        (
            stream(false, Some(1000.0)),
            menu_report(12_000, 16_000),
            "Use: a named pipe (FIFO): a byte stream between unrelated processes",
        ),
        (
            kernel_queue(Some(256)),
            menu_report(12_000, 16_000),
            "Use: a POSIX message queue (mq_open): kernel-managed messages that wait for their \
             reader",
        ),
        (
            stream(true, Some(2e6)),
            menu_report(12_000, 16_000),
            "Use: shared memory (shm:// Conn): more messages per second than the kernel's byte \
             stream carries here",
        ),
    ];
    for (needs, report, use_line) in cases {
        let text = advise(&needs, Some(&report)).to_string();
        assert_eq!(text.lines().next(), Some(use_line), "{text}");
    }
}

#[test]
fn plain_answers_quote_the_plain_mechanism_and_the_shmsock_alternative() {
    let text = advise(&notify(false), Some(&menu_report(12_000, 16_000))).to_string();
    assert!(text.contains("  calls: eventfd(0, EFD_CLOEXEC)"), "{text}");
    assert!(
        text.contains("  shmsock alternative: shm://NAME Conn"),
        "{text}"
    );
    assert!(
        text.contains("eventfd doorbell (eventfd): 6.0 µs one-way p50"),
        "{text}"
    );
    assert!(
        text.contains("real-time signal (signal): 8.0 µs one-way p50"),
        "{text}"
    );
    assert!(
        text.contains("(shmsock-blocking): 9.0 µs one-way p50"),
        "{text}"
    );
    assert!(text.contains("(shmsock): 400 ns one-way p50"), "{text}");
    assert!(text.contains("IPC cheat sheet"), "{text}");

    let text = advise(
        &Needs {
            latency_budget_ns: Some(8_000),
            ..stream(true, Some(100_000.0))
        },
        Some(&menu_report(12_000, 16_000)),
    )
    .to_string();
    assert!(
        text.contains("anonymous pipe (pipe): 6.5 µs one-way p50"),
        "{text}"
    );
    assert!(
        text.contains("pipe streams 1.00 M msgs/s at 64 B here (100% CPU send, 100% recv): your 100000/s is 10% of that"),
        "{text}"
    );
    assert!(
        text.contains("shmsock streams 20.00 M msgs/s at 64 B here"),
        "{text}"
    );
    assert!(
        text.contains("your budget 8.0 µs: pipe meets it at p50 and misses it at p99"),
        "{text}"
    );

    let text = advise(&kernel_queue(Some(256)), Some(&menu_report(12_000, 16_000))).to_string();
    assert!(
        text.contains("POSIX message queue (posix-mq): 10.0 µs one-way p50"),
        "{text}"
    );
    assert!(
        text.contains("posix-mq streams 800 k msgs/s at 64 B"),
        "{text}"
    );
    assert!(
        text.contains("none waits for a reader that is not there"),
        "{text}"
    );
}

#[test]
fn the_quick_measurement_covers_the_rows_the_answer_quotes() {
    let known = crate::mechanisms::names();
    let cases = [
        (
            notify(false),
            &["eventfd", "signal", "shmsock-blocking", "shmsock"][..],
        ),
        (stream(true, None), &["pipe", "shmsock"][..]),
        (stream(false, None), &["fifo", "shmsock"][..]),
        (kernel_queue(None), &["posix-mq", "shmsock"][..]),
    ];
    for (needs, wanted) in cases {
        let (names, _) = mechanisms_to_measure(&needs);
        for name in &names {
            assert!(
                known.contains(&name.as_str()),
                "{name} is not a lab mechanism"
            );
        }
        for want in wanted {
            assert!(names.iter().any(|n| n == want), "{needs:?}: {names:?}");
        }
    }
    let (names, _) = mechanisms_to_measure(&Needs::default());
    assert!(
        !names
            .iter()
            .any(|n| ["eventfd", "signal", "pipe", "fifo", "posix-mq"].contains(&n.as_str())),
        "{names:?}"
    );
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
    let reached: Vec<Leaf> = table()
        .iter()
        .map(|(_, _, leaf, _)| *leaf)
        .chain(measured_table().iter().map(|(_, _, _, leaf, _)| *leaf))
        .collect();
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
        // A plain mechanism says how to call it; a shmsock leaf has nothing else to call.
        let plain = matches!(
            leaf,
            Leaf::Eventfd | Leaf::Signal | Leaf::Pipe | Leaf::Fifo | Leaf::PosixMq
        );
        assert_eq!(leaf.calls().is_some(), plain, "{leaf:?}");
        if plain {
            assert!(leaf.reason().contains("IPC cheat sheet"), "{leaf:?}");
        }
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
    let answers = "n\nn\n1MiB\n30k\nn\n";
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
    let got = interview(&mut "n\nn\n64\n".as_bytes(), &mut Vec::new()).expect("interview");
    assert_eq!(got, needs(false, Some(64), None, None, false));
}

/// Runs the interview on `answers`; returns the needs and what it printed.
fn interview_on(answers: &str) -> (Needs, String) {
    let mut output = Vec::new();
    let got = interview(&mut answers.as_bytes(), &mut output).expect("interview");
    (got, String::from_utf8(output).expect("utf-8"))
}

#[test]
fn the_interview_asks_the_menus_questions_on_their_paths() {
    // A wake-up for an event loop: no size, no stream or queue questions.
    let (got, text) = interview_on("n\ny\n\ny\n");
    assert_eq!(got, notify(true));
    assert!(text.contains("Only a wake-up crosses, no data"), "{text}");
    assert!(text.contains("event loop"), "{text}");
    assert!(!text.contains("bytes per transfer"), "{text}");
    assert!(!text.contains("byte stream"), "{text}");
    assert_eq!(decide(&got).0, Leaf::Eventfd);

    // A wake-up within 500 ns: a spinning reader, so the trust question follows.
    let (got, text) = interview_on("n\ny\n500ns\ny\n");
    assert_eq!(
        got,
        Needs {
            latency_budget_ns: Some(500),
            untrusted: true,
            ..notify(false)
        }
    );
    assert!(!text.contains("event loop"), "{text}");
    assert_eq!(decide(&got).0, Leaf::UntrustedCopying);

    // A byte stream to a forked child at 50k/s.
    let (got, text) = interview_on("n\nn\n4KiB\n\nn\ny\ny\n50k\n");
    assert_eq!(
        got,
        Needs {
            size_bytes: Some(4 * KIB),
            ..stream(true, Some(50_000.0))
        }
    );
    assert!(text.contains("child process you fork"), "{text}");
    assert!(!text.contains("untrusted"), "{text}");
    assert_eq!(decide(&got).0, Leaf::Pipe);

    // Messages that wait in the kernel: the stream question is not asked.
    let (got, text) = interview_on("n\nn\n256\n\ny\n2k\n");
    assert_eq!(
        got,
        Needs {
            rate_per_s: Some(2_000.0),
            ..kernel_queue(Some(256))
        }
    );
    assert!(!text.contains("byte stream"), "{text}");
    assert_eq!(decide(&got).0, Leaf::PosixMq);

    // Nothing but Enter: every menu question on the default path asked, the default answered.
    let (got, text) = interview_on("\n\n\n\n\n\n");
    assert_eq!(got, Needs::default());
    assert!(text.contains("wait in the kernel"), "{text}");
    assert!(text.contains("byte stream"), "{text}");
    assert!(!text.contains("child process"), "{text}");
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

#[test]
fn the_advice_quotes_the_blocking_spin_the_library_uses() {
    let spin = format!(
        "a spin of at most {} µs",
        shmsock::WaitStrategy::BLOCKING_SPIN.as_micros()
    );
    for text in [NOTIFY_ALTERNATIVE, evidence::BLOCKING_ROW] {
        assert!(text.contains(&spin), "{text:?} does not say {spin:?}");
    }
}
