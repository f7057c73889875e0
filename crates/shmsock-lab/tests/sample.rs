//! `docs/lab-sample` is what a default run writes today: every experiment the lab runs has rows
//! in it, its `report.json` has exactly the fields the code writes, and every file a run writes
//! is there. When one of these fails, regenerate the sample on a quiet machine:
//! `cargo run --release -- lab --out docs/lab-sample` (and keep `docs/lab-sample/README.md`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lab-sample")
}

fn sample_json() -> String {
    std::fs::read_to_string(sample_dir().join("report.json")).expect("docs/lab-sample/report.json")
}

fn sample() -> shmsock_lab::Report {
    serde_json::from_str(&sample_json()).expect("the sample report parses")
}

/// Every path of keys in `value` (`a.b[].c`), arrays merged over their elements.
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let path = format!("{prefix}.{key}");
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_sample_is_a_default_run_of_every_experiment() {
    let sample = sample();
    assert_eq!(
        sample.mode,
        shmsock_lab::Mode::Default,
        "the sample is a default run"
    );
    for experiment in shmsock_lab::EXPERIMENTS {
        let rows = sample
            .rows_of(experiment)
            .unwrap_or_else(|| panic!("Report::rows_of does not know the {experiment} experiment"));
        assert!(
            rows > 0,
            "docs/lab-sample has no rows of the {experiment} experiment: regenerate it"
        );
    }
}

#[test]
fn the_sample_has_the_schema_the_code_writes() {
    let text = sample_json();
    let written: Value = serde_json::from_str(&text).expect("valid JSON");
    let report: shmsock_lab::Report = serde_json::from_str(&text).expect("the sample parses");
    let rewritten = serde_json::to_value(&report).expect("serialises");
    let (mut old, mut new) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&written, "", &mut old);
    key_paths(&rewritten, "", &mut new);
    let missing: Vec<_> = new.difference(&old).collect();
    let extra: Vec<_> = old.difference(&new).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/lab-sample/report.json differs from what the code writes: regenerate it.\n\
         fields the code writes that the sample lacks: {missing:#?}\n\
         fields of the sample the code no longer writes: {extra:#?}"
    );
}

#[test]
fn the_sample_has_every_file_a_run_writes() {
    let report = sample();
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sample-files");
    let _ = std::fs::remove_dir_all(&scratch);
    let written = report.write_dir(&scratch).expect("written");
    for file in written {
        let name = file.file_name().expect("a file name");
        assert!(
            sample_dir().join(name).exists(),
            "docs/lab-sample lacks {}: regenerate it",
            name.to_string_lossy()
        );
    }
}
