//! The upgrade experiment end to end (`lab --only upgrade` at small budgets): a row per path
//! and size, the tcp:// subscriber really moved (the rows say where every measured message
//! was read from, and the experiment fails a row otherwise), the comparisons filled, the
//! table and `report.json` carry them.

use shmsock_lab::{LabOptions, Mode};

mod budgets;
use budgets::SMALL;

#[test]
fn upgrade_has_a_row_per_path_and_size_and_the_tcp_subscriber_moved() {
    let opts = LabOptions {
        mode: Mode::Quick,
        only: Some(vec!["upgrade".into()]),
        ..Default::default()
    };
    let report = shmsock_lab::run_with(&opts, SMALL).expect("lab runs");
    assert!(report.unavailable.is_empty(), "{report}");
    let rows: Vec<(&str, usize)> = report
        .upgrade
        .iter()
        .map(|r| (r.path.as_str(), r.size))
        .collect();
    assert_eq!(
        rows,
        [
            ("tcp-upgraded", 64),
            ("tcp-no-upgrade", 64),
            ("shm", 64),
            ("tcp-upgraded", 4096),
            ("tcp-no-upgrade", 4096),
            ("shm", 4096),
        ],
        "{report}"
    );
    for row in &report.upgrade {
        assert!(row.msgs_per_s > 0 && row.messages > 0, "{row:?}");
        assert_eq!(row.round_trip.is_some(), row.size == 64, "{row:?}");
        let upgraded = row.path == "tcp-upgraded";
        assert_eq!(row.shared_memory, row.path != "tcp-no-upgrade", "{row:?}");
        assert_eq!(row.moved_after.is_some(), upgraded, "{row:?}");
        assert_eq!(row.rate_vs_shm.is_some(), upgraded, "{row:?}");
        assert_eq!(row.rate_vs_tcp.is_some(), upgraded, "{row:?}");
        assert_eq!(
            row.p50_vs_shm.is_some(),
            upgraded && row.size == 64,
            "{row:?}"
        );
    }
    let text = report.render();
    assert!(text.contains("Upgrade: a tcp:// subscriber"), "{text}");
    assert!(
        text.contains("64 B: the upgraded round trip's median is"),
        "{text}"
    );
    assert!(text.contains("the upgraded stream takes"), "{text}");
    assert_eq!(report.rows_of("upgrade"), Some(6));
    // An old report.json without the field still reads.
    let mut json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("valid JSON");
    assert_eq!(json["upgrade"][0]["path"], "tcp-upgraded");
    assert!(
        json["upgrade"][0]["round_trip"]["p50_ns"].is_u64(),
        "{json}"
    );
    json.as_object_mut().expect("object").remove("upgrade");
    let old: shmsock_lab::Report = serde_json::from_value(json).expect("old report reads");
    assert!(old.upgrade.is_empty());
    assert!(!old.render().contains("Upgrade:"));
}
