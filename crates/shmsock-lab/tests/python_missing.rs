//! Without a Python interpreter the python experiment says so and the lab goes on.
//!
//! A test binary of its own: it points `SHMSOCK_PYTHON` at a file that does not exist, which
//! would change what the other Python tests measure if they shared its process.

use std::time::Duration;

use shmsock_lab::experiments::python::{self, ROWS};
use shmsock_lab::{Budget, Budgets, LabOptions, Mode};

const TINY: Budget = Budget {
    warmup_iters: 10,
    warmup_time: Duration::from_millis(10),
    iters: 100,
    max_time: Duration::from_millis(20),
};

#[test]
fn without_an_interpreter_the_rows_are_skipped_and_the_lab_goes_on() {
    let missing = std::env::temp_dir().join("shmsock-lab-no-such-python");
    std::env::set_var(python::PYTHON_ENV, &missing);
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["latency".into(), "python".into()]),
        mechanisms: Some(vec!["pipe".into()]),
        sizes: Some(vec![64, 4096]),
        ..Default::default()
    };
    let budgets = Budgets {
        latency: TINY,
        throughput: TINY,
        ..Budgets::QUICK
    };
    let report = shmsock_lab::run_with(&opts, budgets).expect("the lab goes on");
    let names: Vec<&str> = report
        .latency
        .iter()
        .map(|r| r.mechanism.as_str())
        .collect();
    assert_eq!(names, ["floor", "pipe"], "{report}");
    let run = report.python.as_ref().expect("the experiment ran");
    assert!(run.version.is_none() && run.rows.is_empty(), "{run:?}");
    assert_eq!(run.interpreter, missing.display().to_string());
    assert_eq!(report.unavailable.len(), ROWS.len() * 2, "{report}");
    for u in &report.unavailable {
        assert_eq!(u.experiment, "python", "{u:?}");
        assert!(
            u.reason.starts_with("skipped: ")
                && u.reason.contains("cannot run it")
                && u.reason.contains(python::PYTHON_ENV),
            "{u:?}"
        );
    }
    assert!(ROWS
        .iter()
        .all(|row| report.unavailable.iter().any(|u| u.mechanism == *row)));
    // No rows: no table of them, and the unavailable table says why.
    let text = report.render();
    assert!(!text.contains("Python: multiprocessing"), "{text}");
    assert!(text.contains("py-shmsock"), "{text}");
}
