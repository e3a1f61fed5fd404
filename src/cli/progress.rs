//! Terminal progress for long library jobs: an indicatif bar implementing [`ProgressSink`].
use crate::jobs::{Progress, ProgressSink};
use indicatif::{ProgressBar, ProgressStyle};

/// Shows [`Progress`] reports as a progress bar on stderr (hidden when `quiet`, e.g. with `--json`).
pub struct BarSink {
    bar: ProgressBar,
}

impl BarSink {
    /// A bar for a job; `quiet` hides it (machine-readable output stays clean).
    pub fn new(quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        Self { bar }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl ProgressSink for BarSink {
    fn report(&self, p: Progress) {
        if let Some(t) = p.total {
            self.bar.set_length(t);
        }
        self.bar.set_position(p.step);
        self.bar.set_prefix(p.stage);
        let msg: Vec<String> = p
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={v:.4}"))
            .collect();
        self.bar.set_message(msg.join(" "));
    }
    fn log(&self, line: &str) {
        self.bar.println(line);
    }
}
