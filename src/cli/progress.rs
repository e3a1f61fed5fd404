//! Terminal progress for long library jobs: an indicatif bar implementing [`ProgressSink`] when
//! stderr is a terminal, else a plain line every few seconds (`STEERLAB_PROGRESS_SECS`, default
//! 10; 0 turns it off). The sink also reports a SIGINT/SIGTERM caught by [`super::signals`] as a
//! cancel, and remembers the scores it was sent (so an interrupted sweep can print what it did).
use crate::jobs::{Metric, Progress, ProgressSink};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shows [`Progress`] reports on stderr (hidden when `quiet`, e.g. with `--json`).
pub struct BarSink {
    bar: ProgressBar,
    /// Plain-line mode (stderr is not a terminal): the interval and the last line's time.
    plain: Option<(Duration, Mutex<Option<Instant>>)>,
    scores: Mutex<Vec<(String, f64)>>,
}

/// The interval of plain progress lines: `STEERLAB_PROGRESS_SECS` (default 10, 0 = none).
fn plain_interval() -> Option<Duration> {
    let secs = std::env::var("STEERLAB_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(10.0);
    (secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

impl BarSink {
    /// A bar for a job; `quiet` hides it (machine-readable output stays clean).
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = if quiet || !tty {
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
        let plain = if quiet || tty {
            None
        } else {
            plain_interval().map(|d| (d, Mutex::new(None)))
        };
        Self {
            bar,
            plain,
            scores: Mutex::new(Vec::new()),
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Every `(stage, score)` reported so far (a sweep reports one per point).
    pub fn scores(&self) -> Vec<(String, f64)> {
        self.scores.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn metrics_text(p: &Progress) -> String {
    let msg: Vec<String> = p
        .metrics
        .iter()
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect();
    msg.join(" ")
}

impl ProgressSink for BarSink {
    fn report(&self, p: Progress) {
        if let Some(s) = p.value(Metric::Score) {
            if let Ok(mut v) = self.scores.lock() {
                v.push((p.stage.clone(), s));
            }
        }
        if let Some((every, last)) = &self.plain {
            if let Ok(mut last) = last.lock() {
                let now = Instant::now();
                if last.is_none_or(|t| now.duration_since(t) >= *every) {
                    *last = Some(now);
                    let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
                    eprintln!(
                        "progress: {} {}{total} {}",
                        p.stage,
                        p.step,
                        metrics_text(&p)
                    );
                }
            }
        }
        if let Some(t) = p.total {
            self.bar.set_length(t);
        }
        self.bar.set_position(p.step);
        self.bar.set_message(metrics_text(&p));
        self.bar.set_prefix(p.stage);
    }
    fn log(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
    fn is_cancelled(&self) -> bool {
        super::signals::interrupted()
    }
    fn interrupt_probe(&self) -> Option<crate::jobs::InterruptProbe> {
        Some(std::sync::Arc::new(super::signals::interrupted))
    }
}
