//! `report.html` in a real browser: headless Chromium loads the page written by
//! `Report::write_dir`, with no console errors, and takes a screenshot.
//!
//! Without a Chromium on the machine the test says it is skipped, except under `CI=true`,
//! where `.ci/run` installs Debian's `chromium` and a missing browser fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The browsers tried, in order.
const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

fn browser() -> Option<&'static str> {
    BROWSERS.into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// What the browser said about a page: its console messages and the DOM it built.
struct Visit {
    console: Vec<String>,
    dom: String,
}

/// Loads `page` in headless `browser`, writes a screenshot to `screenshot`, and returns the
/// console messages (Chromium logs each as an `INFO:CONSOLE` line) and the DOM.
fn visit(browser: &str, page: &Path, screenshot: &Path, profile: &Path) -> Visit {
    let url = format!("file://{}", page.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2400",
    ];
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let shot = Command::new(browser)
        .args(common)
        .arg(&profile_arg)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("running the browser");
    assert!(shot.status.success(), "{browser} failed: {shot:?}");
    let dom = Command::new(browser)
        .args(common)
        .arg(&profile_arg)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("running the browser");
    assert!(dom.status.success(), "{browser} failed: {dom:?}");
    let console = [&shot.stderr, &dom.stderr]
        .iter()
        .flat_map(|err| {
            String::from_utf8_lossy(err)
                .into_owned()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|line| line.contains(":CONSOLE"))
        .collect();
    Visit {
        console,
        dom: String::from_utf8_lossy(&dom.stdout).into_owned(),
    }
}

fn sample_report() -> shmsock_lab::Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lab-sample/report.json");
    let json = std::fs::read_to_string(&path).expect("the sample report");
    serde_json::from_str(&json).expect("the sample report parses")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

#[test]
fn report_html_loads_in_headless_chromium_without_console_errors() {
    let Some(browser) = browser() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no Chromium ({BROWSERS:?}): `.ci/run` installs Debian's chromium"
        );
        eprintln!("SKIPPED: no Chromium on this machine (apt-get install chromium)");
        return;
    };
    let dir = scratch("report-html");
    let report = sample_report();
    let files = report.write_dir(&dir).expect("report written");
    let page = dir.join("report.html");
    assert!(files.contains(&page), "{files:?}");
    let html = std::fs::read_to_string(&page).expect("report.html");
    // Self-contained: nothing to fetch.
    for external in ["src=", "href=\"http", "<link", "@import", "<script"] {
        assert!(
            !html.contains(external),
            "report.html refers to `{external}`"
        );
    }
    let screenshot = dir.join("report.png");
    let visit = visit(browser, &page, &screenshot, &dir.join("profile"));
    assert!(
        visit.console.is_empty(),
        "console messages: {:#?}",
        visit.console
    );
    assert!(visit.dom.contains("id=\"headline\""), "{}", visit.dom);
    for table in ["Latency", "Reference claims vs this machine", "Method"] {
        assert!(visit.dom.contains(table), "no {table} in the rendered page");
    }
    assert!(
        visit.dom.matches("<svg").count() >= report.plots().len(),
        "every plot inlined"
    );
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot of {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", screenshot.display());
}

/// The check above can fail: a page with a script error is caught by it.
#[test]
fn a_console_error_is_caught() {
    let Some(browser) = browser() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no Chromium ({BROWSERS:?}): `.ci/run` installs Debian's chromium"
        );
        eprintln!("SKIPPED: no Chromium on this machine (apt-get install chromium)");
        return;
    };
    let dir = scratch("report-html-bad");
    let page = dir.join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>bad</title></head>\
         <body><p>x</p><script>no_such_function();</script></body></html>",
    )
    .expect("page written");
    let visit = visit(browser, &page, &dir.join("bad.png"), &dir.join("profile"));
    assert!(
        visit.console.iter().any(|l| l.contains("no_such_function")),
        "the script error was not seen: {:#?}",
        visit.console
    );
}
