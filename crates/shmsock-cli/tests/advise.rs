//! Drives the real `shmsock advise`: flags in, the flowchart's answer, its path and this
//! machine's numbers out (from the committed sample report, so no measurement runs).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use shmsock_testkit::assert_mentions;
use shmsock_testkit::process::assert_success;

fn sample_report() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/lab-sample/report.json")
}

fn advise(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_shmsock"))
        .arg("advise")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run shmsock advise");
    out
}

fn advise_with_sample(args: &[&str]) -> String {
    let report = sample_report();
    let mut all = args.to_vec();
    all.extend(["--report", report.to_str().expect("utf-8 path")]);
    assert_success(&advise(&all))
}

#[test]
fn large_frequent_transfers_get_shm_with_loans() {
    let text = advise_with_sample(&["--size", "1MiB", "--rate", "30000"]);
    assert_mentions(
        &text,
        &[
            "shm://NAME Conn + loans",
            "Options::loan_pool",
            "recv_sample()",
            "More than 10,000 transfers per second? yes (30000/s)",
            "uds-stream",
            "numbers from",
        ],
    );
    assert!(!text.contains("planned"), "{text}");
}

#[test]
fn remote_peers_get_zeromq_tcp_and_the_bridge() {
    let text = advise_with_sample(&["--remote"]);
    assert_mentions(
        &text,
        &[
            "tcp://HOST:PORT, ZeroMQ's wire protocol",
            "`shmsock keygen server`",
            "`shmsock bridge shm://NAME tcp://0.0.0.0:PORT --dest-curve-secret \
             server.key_secret --dest-curve-allow clients/`",
            "`shmsock sub tcp://HOST:PORT --curve-server server.key --curve-secret \
             alice.key_secret`",
            "Different machines, now or later? yes",
            "loopback TCP (tcp)",
        ],
    );
    assert!(
        !text.contains("planned") && !text.contains("Unsupported"),
        "{text}"
    );
}

#[test]
fn a_sub_microsecond_budget_gets_busy_polling_with_the_budget_checked() {
    let text = advise_with_sample(&["--size", "64", "--latency-budget", "500ns"]);
    assert_mentions(&text, &["WaitStrategy::BusyPoll", "your budget 500 ns"]);
}

#[test]
fn an_untrusted_peer_gets_copies_and_no_loans() {
    let text = advise_with_sample(&["--size", "1MiB", "--rate", "50k", "--untrusted"]);
    assert_mentions(&text, &["without loans", "Untrusted peer? yes"]);
}

#[test]
fn json_output_names_the_leaf_and_the_path() {
    let text = advise_with_sample(&["--size", "1MiB", "--rate", "100", "--json"]);
    assert_mentions(&text, &["\"leaf\": \"hybrid\"", "\"path\""]);
}

#[test]
fn without_flags_or_report_it_answers_the_default_and_says_why_no_numbers() {
    let dir = std::env::temp_dir().join(format!("shmsock-advise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_shmsock"))
        .args(["advise", "--no-measure"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let text = assert_success(&out);
    assert_mentions(
        &text,
        &[
            "message passing (the default)",
            "unix:///path (ZMTP",
            "no report at",
        ],
    );
    assert!(!text.contains("planned"), "{text}");
}

/// The first line of the advice for `args`, with the sample report.
fn use_line(args: &[&str]) -> String {
    let text = advise_with_sample(args);
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_menus_questions_name_the_plain_mechanism_first() {
    // The sample report's eventfd (20.0 µs one way) beats its signal (21.0 µs).
    let eventfd = "Use: eventfd, a kernel counter as a doorbell (wake-ups for event loops)";
    assert_eq!(use_line(&["--notify-only"]), eventfd);
    assert_eq!(use_line(&["--notify-only", "--event-loop"]), eventfd);
    assert_eq!(
        use_line(&["--byte-stream", "--parent-child", "--rate", "50k"]),
        "Use: an anonymous pipe, made before fork(): a byte stream parent <-> child"
    );
    assert_eq!(
        use_line(&["--byte-stream", "--rate", "50k"]),
        "Use: a named pipe (FIFO): a byte stream between unrelated processes"
    );
    assert_eq!(
        use_line(&["--kernel-queue", "--size", "256"]),
        "Use: a POSIX message queue (mq_open): kernel-managed messages that wait for their \
         reader"
    );
    // The sample's pipe streams 2.97 M msgs/s at 64 B: 5 M/s is beyond it.
    assert_eq!(
        use_line(&["--byte-stream", "--parent-child", "--rate", "5M"]),
        "Use: shared memory (shm:// Conn): more messages per second than the kernel's byte \
         stream carries here"
    );
    // Large transfers keep the Comparison's answer.
    assert_eq!(
        use_line(&[
            "--byte-stream",
            "--parent-child",
            "--size",
            "1MiB",
            "--rate",
            "30k"
        ]),
        "Use: shared memory, zero-copy (with careful synchronisation)"
    );
}

#[test]
fn plain_answers_carry_both_sets_of_numbers() {
    let text = advise_with_sample(&["--notify-only"]);
    assert_mentions(
        &text,
        &[
            "calls: eventfd(0, EFD_CLOEXEC)",
            "shmsock alternative: shm://NAME Conn",
            "A signal clearly faster than an eventfd here? no (signal 21.0 µs, eventfd 20.0 µs \
             one-way p50)",
            "eventfd doorbell (eventfd): 20.0 µs one-way p50",
            "(shmsock-blocking): 19.7 µs one-way p50",
            "IPC cheat sheet",
        ],
    );
    let text = advise_with_sample(&["--byte-stream", "--parent-child", "--rate", "50k"]);
    assert_mentions(
        &text,
        &[
            "Rate above half of what a pipe streams here? no (50000/s; pipe streams 2.97 M \
             msgs/s at 64 B)",
            "anonymous pipe (pipe): 19.7 µs one-way p50",
            "shmsock streams 21.67 M msgs/s at 64 B here",
        ],
    );
    let text = advise_with_sample(&["--kernel-queue", "--size", "256", "--json"]);
    assert_mentions(&text, &["\"leaf\": \"posix-mq\"", "\"calls\": \"mq_open("]);
}

#[test]
fn contradictory_menu_flags_are_refused() {
    for args in [
        &["--notify-only", "--size", "64"][..],
        &["--notify-only", "--byte-stream"],
        &["--notify-only", "--kernel-queue"],
        &["--event-loop"],
    ] {
        let out = advise(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn bad_values_and_missing_reports_fail_with_a_message() {
    let out = advise(&["--latency-budget", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
    let out = advise(&["--size", "64", "--report", "/nonexistent/report.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/report.json"));
}

#[test]
fn help_has_examples() {
    let out = advise(&["--help"]);
    assert_mentions(
        &assert_success(&out),
        &[
            "Examples:",
            "--latency-budget",
            "--notify-only",
            "--byte-stream",
            "--kernel-queue",
        ],
    );
}

#[test]
fn a_reader_that_went_away_ends_the_answer_quietly() {
    // `shmsock advise ... | head -0`: the pipe's reader is gone before anything is written,
    // so every write fails with EPIPE. `println!` would panic there; the answer must end with
    // no panic and no error.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let report = sample_report();
    for json in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmsock"));
        cmd.args(["advise", "--notify-only", "--report"])
            .arg(&report)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("the pipe's writer"));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run shmsock advise");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "json {json}: {:?}\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "json {json}: {stderr}");
    }
}
