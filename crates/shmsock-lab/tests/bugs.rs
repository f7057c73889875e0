//! `--only bugs`: every shared-memory bug of the reference documents happens to its naive
//! implementation and not to shmsock doing the same job, and the report says so.

use shmsock_lab::{Budgets, LabOptions, Mode};

#[test]
fn every_bug_happens_to_the_naive_code_and_not_to_shmsock() {
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["bugs".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, Budgets::QUICK).expect("lab runs");
    assert!(report.unavailable.is_empty(), "{report}");
    let names: Vec<&str> = report.bugs.iter().map(|b| b.bug.as_str()).collect();
    assert_eq!(
        names,
        [
            "mutex without PTHREAD_PROCESS_SHARED",
            "strcpy overflows data[64]",
            "process dies holding the lock",
            "torn read",
            "pointer in shared memory"
        ],
        "{report}"
    );
    let shown: Vec<_> = report.bugs.iter().filter(|b| b.shown()).collect();
    assert!(shown.len() >= 5, "{report}");
    for row in &report.bugs {
        // shmsock did the job: nothing counted, nothing hung, nothing crashed.
        let ok = &row.shmsock;
        assert_eq!(
            (ok.failures, ok.hung, ok.crashed.len()),
            (0, 0, 0),
            "{row:?}"
        );
        assert!(ok.out_of > 0, "{row:?}");
        // The naive version failed in a way the lab measured.
        let bad = &row.naive;
        assert!(
            bad.failures > 0 || bad.hung > 0 || !bad.crashed.is_empty(),
            "{row:?}"
        );
        assert!(
            bad.hung == 0 || bad.waited_s >= 1.0,
            "a hang is a wait of the bound: {row:?}"
        );
        assert!(!row.source.is_empty() && !row.quote.is_empty(), "{row:?}");
    }
    // The holder killed with the lock leaves its survivor waiting until the lab kills it.
    assert_eq!(report.bugs[2].naive.hung, 1, "{report}");
    // The torn read and the overflow are counted, not just observed.
    assert!(report.bugs[1].naive.failures >= 1, "{report}");
    assert!(report.bugs[3].naive.failures >= 1, "{report}");

    let text = report.render();
    assert!(text.contains("Bugs: the reference documents'"), "{text}");
    assert!(
        text.contains("5 of 5 bugs happened to the naive version and not to shmsock"),
        "{text}"
    );
    assert!(text.contains("The Shared Memory Bug Taxonomy"), "{text}");
    let md = report.render_markdown();
    assert!(md.contains("| 4. torn read |"), "{md}");
    let headline = report.headline().join("\n");
    assert!(
        headline.contains("5 of 5 hit deliberately naive code and not shmsock"),
        "{headline}"
    );
    assert!(report
        .render_html()
        .contains("Bugs: the reference documents"));

    let json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("valid JSON");
    let bugs = json["bugs"].as_array().expect("a bugs array");
    assert_eq!(bugs.len(), 5, "{json}");
    for bug in bugs {
        for key in ["bug", "source", "naive", "shmsock"] {
            assert!(!bug[key].is_null(), "{key} missing: {bug}");
        }
        assert_eq!(bug["naive"]["failed"], true, "{bug}");
        assert_eq!(bug["shmsock"]["failed"], false, "{bug}");
    }
    // A report written before the experiment existed still reads.
    let mut old = json.clone();
    old.as_object_mut().expect("object").remove("bugs");
    let old: shmsock_lab::Report = serde_json::from_value(old).expect("an old report reads");
    assert!(old.bugs.is_empty());
}
