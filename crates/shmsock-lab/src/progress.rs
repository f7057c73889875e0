//! Progress on stderr: a bar on a terminal, one line per step otherwise.
//!
//! The bar is drawn only from the lab's own thread, when a step starts (no ticker thread: the
//! lab forks, and a forked child must not inherit a thread holding the terminal's lock).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress through a planned number of steps.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar of `steps` steps on a terminal; plain lines when stderr is not one.
    pub(crate) fn new(steps: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("lab {bar:30.cyan/blue} {pos}/{len} {elapsed} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar: Some(bar) }
    }

    /// A step starts: what it is.
    pub(crate) fn step(&self, what: &str) {
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(what.to_string());
            }
            None => eprintln!("lab: {what}"),
        }
    }

    /// A line to keep (a failure, a warning): above the bar, or on its own.
    pub(crate) fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("lab: {text}")),
            None => eprintln!("lab: {text}"),
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
