//! Frame-time statistics for the debug overlay (F12) and the responsiveness benchmark:
//! a ring buffer of the last frames' times, each tagged with whether a job was running, and
//! nearest-rank percentiles over it.
//!
//! Measurement only; it must not change what the app draws or when it repaints.
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// How many frames the overlay summarises.
pub const WINDOW: usize = 240;

/// One recorded frame.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    ms: f32,
    busy: bool,
}

/// Percentiles of a set of frame times, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Frames summarised.
    pub n: usize,
    /// Median.
    pub p50: f32,
    /// 95th percentile.
    pub p95: f32,
    /// Slowest.
    pub max: f32,
}

/// The last [`WINDOW`] frame times (or `cap`), oldest first.
#[derive(Debug, Clone)]
pub struct FrameStats {
    cap: usize,
    samples: VecDeque<Sample>,
    total: u64,
}

impl Default for FrameStats {
    fn default() -> Self {
        Self::with_capacity(WINDOW)
    }
}

impl FrameStats {
    /// Keeps the last `cap` frames (at least one).
    pub fn with_capacity(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            cap,
            samples: VecDeque::with_capacity(cap),
            total: 0,
        }
    }

    /// Records one frame that took `dt`; `busy` is whether a job was running.
    pub fn record(&mut self, dt: Duration, busy: bool) {
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            ms: dt.as_secs_f32() * 1000.0,
            busy,
        });
        self.total += 1;
    }

    /// Frames recorded since start (not only those still in the window).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Percentiles over every frame in the window; `None` if empty.
    pub fn summary(&self) -> Option<Summary> {
        summarise(self.samples.iter().map(|s| s.ms).collect())
    }

    /// Percentiles over the frames drawn while a job ran; `None` if there were none.
    pub fn busy_summary(&self) -> Option<Summary> {
        summarise(
            self.samples
                .iter()
                .filter(|s| s.busy)
                .map(|s| s.ms)
                .collect(),
        )
    }

    /// The window's frame times in milliseconds, oldest first (for the overlay's sparkline).
    pub fn times_ms(&self) -> impl Iterator<Item = (f32, bool)> + '_ {
        self.samples.iter().map(|s| (s.ms, s.busy))
    }
}

/// Nearest-rank percentile `q` in (0, 1] of ascending `sorted` (non-empty).
pub fn percentile(sorted: &[f32], q: f32) -> f32 {
    let rank = (q * sorted.len() as f32).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summarise(mut v: Vec<f32>) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    Some(Summary {
        n: v.len(),
        p50: percentile(&v, 0.50),
        p95: percentile(&v, 0.95),
        max: v[v.len() - 1],
    })
}

/// What `STEERLAB_FRAME_STATS=out.json` writes when the app closes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the times measure.
    pub measure: String,
    /// Frames drawn in total.
    pub frames_total: u64,
    /// Every frame in the last window.
    pub all: Option<Summary>,
    /// Frames in the window drawn while a job ran.
    pub busy: Option<Summary>,
    /// Every frame time in the window, oldest first, ms (negative: a job was running).
    pub frames_ms: Vec<f32>,
}

/// Writes `stats` as JSON to `path` (atomically).
pub fn write_report(path: &Path, stats: &FrameStats, measure: &str) -> Result<(), String> {
    crate::report::write_json(path, &report(stats, measure)).map_err(|e| e.to_string())
}

/// The JSON written by [`write_report`].
pub fn report(stats: &FrameStats, measure: &str) -> Report {
    Report {
        measure: measure.to_string(),
        frames_total: stats.total(),
        all: stats.summary(),
        busy: stats.busy_summary(),
        frames_ms: stats
            .times_ms()
            .map(|(ms, busy)| if busy { -ms } else { ms })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_nearest_rank_on_a_known_set() {
        // 1..=100 ms: nearest-rank p50 = 50, p95 = 95 (numpy.percentile(..., method="inverted_cdf")).
        let mut s = FrameStats::with_capacity(100);
        for i in (1..=100).rev() {
            s.record(Duration::from_millis(i), i % 2 == 0);
        }
        let a = s.summary().unwrap();
        assert_eq!((a.n, a.p50, a.p95, a.max), (100, 50.0, 95.0, 100.0));
        // Even frames only: 2, 4, ..., 100 → p50 = 50, p95 = rank 48 → 96.
        let b = s.busy_summary().unwrap();
        assert_eq!((b.n, b.p50, b.p95, b.max), (50, 50.0, 96.0, 100.0));
    }

    #[test]
    fn window_keeps_only_the_last_frames() {
        let mut s = FrameStats::with_capacity(3);
        assert!(s.summary().is_none());
        for ms in [100, 1, 2, 3] {
            s.record(Duration::from_millis(ms), false);
        }
        assert_eq!(s.total(), 4);
        let a = s.summary().unwrap();
        assert_eq!((a.n, a.max), (3, 3.0), "the 100 ms frame left the window");
        assert!(s.busy_summary().is_none());
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
    }

    #[test]
    fn report_is_written_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        let mut s = FrameStats::default();
        s.record(Duration::from_millis(4), true);
        write_report(&p, &s, "test").unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["busy"]["n"], 1);
        assert_eq!(v["frames_total"], 1);
        assert_eq!(v["frames_ms"][0].as_f64().unwrap().round(), -4.0);
    }
}
