//! The `tracing` events a test's own thread caused: a listener logs (and drops) a peer that
//! fails its handshake instead of returning an error, so tests read the log to see why.
//!
//! One global subscriber (set on first use) routes events to the capturing thread: a
//! scoped subscriber would race with the interest cache of callsites that other tests'
//! threads hit first.

use std::cell::RefCell;
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

thread_local! {
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// The global subscriber: appends each event to its thread's capture, if one is on.
struct Lines;

/// One event as a line: `LEVEL field=value...`.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0 += &format!(" {}={value:?}", field.name());
    }
}

impl Subscriber for Lines {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        CAPTURED.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                let mut line = Line(event.metadata().level().to_string());
                event.record(&mut line);
                lines.push(line.0);
            }
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs `f` and returns its result with the `tracing` events this thread emitted meanwhile,
/// one line each (`LEVEL field=value...`). `f` may look at them so far with
/// [`captured_so_far`].
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    static GLOBAL: Once = Once::new();
    GLOBAL.call_once(|| {
        tracing::subscriber::set_global_default(Lines).expect("no other global subscriber");
    });
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let r = f();
    let lines = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (r, lines)
}

/// The lines captured so far on this thread, within [`capture_logs`] (empty outside).
pub fn captured_so_far() -> Vec<String> {
    CAPTURED.with(|c| c.borrow().clone().unwrap_or_default())
}
