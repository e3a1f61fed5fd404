//! Live plots of a running job: one generic [`Recorder`], a progress sink that hands every
//! report to a shared [`LiveRecord`] (which keeps the typed metrics its plots need) and
//! forwards everything, the cancel flag included, to the job's own sink. A panel reads the
//! record each frame; the job writes it as reports arrive.
use std::sync::{Arc, Mutex};

use crate::jobs::{Progress, ProgressSink};

/// What a live plot keeps from progress reports (values looked up by
/// [`crate::jobs::Metric`], never by name).
pub trait LiveRecord: Send {
    /// Takes what it plots from one report.
    fn record(&mut self, p: &Progress);
}

/// A progress sink that records into `live` and forwards to `inner`.
pub struct Recorder<'a, T> {
    inner: &'a dyn ProgressSink,
    live: Arc<Mutex<T>>,
}

impl<'a, T: LiveRecord> Recorder<'a, T> {
    /// Records into `live`, forwarding to `inner` (the job's sink).
    pub fn new(inner: &'a dyn ProgressSink, live: Arc<Mutex<T>>) -> Self {
        Self { inner, live }
    }
}

impl<T: LiveRecord> ProgressSink for Recorder<'_, T> {
    fn report(&self, p: Progress) {
        if let Ok(mut live) = self.live.lock() {
            live.record(&p);
        }
        self.inner.report(p);
    }
    fn log(&self, line: &str) {
        self.inner.log(line);
    }
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
    fn interrupt_probe(&self) -> Option<crate::jobs::InterruptProbe> {
        self.inner.interrupt_probe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::Metric;

    #[derive(Default)]
    struct Losses(Vec<[f64; 2]>);
    impl LiveRecord for Losses {
        fn record(&mut self, p: &Progress) {
            if let Some(v) = p.value(Metric::Loss) {
                self.0.push([p.step as f64, v]);
            }
        }
    }

    struct Count(std::sync::atomic::AtomicUsize);
    impl ProgressSink for Count {
        fn report(&self, _: Progress) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        fn is_cancelled(&self) -> bool {
            true
        }
    }

    #[test]
    fn records_typed_metrics_and_forwards_everything() {
        let inner = Count(Default::default());
        let live = Arc::new(Mutex::new(Losses::default()));
        let r = Recorder::new(&inner, live.clone());
        r.report(Progress::new("a", 1, None).metric(Metric::Loss, 0.5));
        r.report(Progress::new("a", 2, None).metric(Metric::Fve, 0.9));
        assert_eq!(live.lock().unwrap().0, vec![[1.0, 0.5]]);
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(r.is_cancelled());
    }
}
