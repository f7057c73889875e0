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
    assert_mentions(&assert_success(&out), &["Examples:", "--latency-budget"]);
}
