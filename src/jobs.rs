//! Background jobs: run long work (training, embedding, fitting, sweeps) on a worker thread,
//! stream typed progress events over a channel, and cancel cooperatively.
//!
//! Library algorithms never know whether they run under the GUI or the CLI: they take a
//! [`ProgressSink`] and report [`Progress`] to it, and poll [`ProgressSink::is_cancelled`]
//! between steps. The GUI wraps them in [`spawn`]; the CLI passes an indicatif-backed sink;
//! tests pass [`NoProgress`]. This module must not contain any algorithm or UI code.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One progress report from a running algorithm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// What is happening ("epoch 2/5", "embedding", "warm-up").
    pub stage: String,
    /// Steps done so far.
    pub step: u64,
    /// Total steps, when known.
    pub total: Option<u64>,
    /// Scalar metrics at this step (loss, accuracy, fve, ...), for live plots and the CLI bar.
    pub metrics: Vec<(Metric, f64)>,
}

/// A scalar a trainer reports with its progress. The [`Metric::name`] is what the CLI bar
/// prints (`loss=0.6931`) and what a plot legend may show; plots find values by variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Training loss of the batch (BiPO, SAE).
    Loss,
    /// Fraction of the batch on the right side of the margin (BiPO).
    MarginAccuracy,
    /// Learning rate of the step (BiPO).
    Lr,
    /// Norm of the vector after the step (BiPO).
    Norm,
    /// Held-out behaviour score at multiplier +1, once per epoch (BiPO).
    BehaviourPlus,
    /// Held-out behaviour score at multiplier −1, once per epoch (BiPO).
    BehaviourMinus,
    /// Behaviour score of one sweep point.
    Score,
    /// Fraction of variance explained (SAE).
    Fve,
    /// Active latents per row (SAE).
    L0,
    /// Fraction of dead latents (SAE).
    Dead,
    /// Validation loss, once per epoch (SAE).
    ValLoss,
    /// Validation FVE, once per epoch (SAE).
    ValFve,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 12] = [
        Metric::Loss,
        Metric::MarginAccuracy,
        Metric::Lr,
        Metric::Norm,
        Metric::BehaviourPlus,
        Metric::BehaviourMinus,
        Metric::Score,
        Metric::Fve,
        Metric::L0,
        Metric::Dead,
        Metric::ValLoss,
        Metric::ValFve,
    ];

    /// The display name (`loss`, `margin_accuracy`, `fve`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::MarginAccuracy => "margin_accuracy",
            Metric::Lr => "lr",
            Metric::Norm => "norm",
            Metric::BehaviourPlus => "behaviour_plus",
            Metric::BehaviourMinus => "behaviour_minus",
            Metric::Score => "score",
            Metric::Fve => "fve",
            Metric::L0 => "l0",
            Metric::Dead => "dead",
            Metric::ValLoss => "val_loss",
            Metric::ValFve => "val_fve",
        }
    }

    /// The metric with this display name.
    pub fn from_name(name: &str) -> Option<Metric> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric equals its display name (`metric == "loss"`).
impl PartialEq<str> for Metric {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl Progress {
    /// A report of `step` out of `total` in `stage`.
    pub fn new(stage: impl Into<String>, step: u64, total: Option<u64>) -> Self {
        Self {
            stage: stage.into(),
            step,
            total,
            metrics: Vec::new(),
        }
    }

    /// Adds a metric.
    pub fn metric(mut self, metric: Metric, value: f64) -> Self {
        self.metrics.push((metric, value));
        self
    }

    /// The value of `metric` in this report, if it has one.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(_, v)| *v)
    }

    /// Fraction done in [0, 1], when the total is known.
    pub fn fraction(&self) -> Option<f32> {
        self.total
            .filter(|&t| t > 0)
            .map(|t| (self.step as f32 / t as f32).clamp(0.0, 1.0))
    }
}

/// Where algorithms send progress, and how they learn that the user cancelled.
pub trait ProgressSink: Send + Sync {
    /// Receives one progress report.
    fn report(&self, progress: Progress);
    /// Free-form log line (warnings, summaries).
    fn log(&self, _line: &str) {}
    /// True once the user asked to stop; algorithms check it between steps and return early,
    /// keeping their last good result.
    fn is_cancelled(&self) -> bool {
        false
    }
    /// The cancel check as an owned closure, for computations that cannot reach the sink (a
    /// backward pass deep inside autograd): see [`interrupt_scope`]. Wrappers forward it.
    fn interrupt_probe(&self) -> Option<InterruptProbe> {
        None
    }
}

/// An owned "was the job asked to stop?" check.
pub type InterruptProbe = Arc<dyn Fn() -> bool + Send + Sync>;

thread_local! {
    static INTERRUPT: std::cell::RefCell<Option<InterruptProbe>> = const { std::cell::RefCell::new(None) };
}

/// Installs `probe` as this thread's interrupt check until the guard drops (the previous one is
/// restored then). Long tensor work on this thread (the per-block forward and backward passes of
/// training) polls [`interrupt_requested`] and stops early with an error, so a Stop lands within
/// one block instead of one whole pass.
pub fn interrupt_scope(probe: Option<InterruptProbe>) -> InterruptScope {
    let prev = INTERRUPT.with(|c| c.replace(probe));
    InterruptScope { prev }
}

/// Restores the previous interrupt check when dropped; see [`interrupt_scope`].
pub struct InterruptScope {
    prev: Option<InterruptProbe>,
}

impl Drop for InterruptScope {
    fn drop(&mut self) {
        let prev = self.prev.take();
        INTERRUPT.with(|c| *c.borrow_mut() = prev);
    }
}

/// True when this thread runs inside an [`interrupt_scope`] whose probe says stop.
pub fn interrupt_requested() -> bool {
    INTERRUPT.with(|c| c.borrow().as_ref().is_some_and(|p| p()))
}

/// A sink that discards everything and never cancels (tests, batch use).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _progress: Progress) {}
}

/// Shared cancel flag.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Events a job sends to whoever watches it (the UI).
#[derive(Debug)]
pub enum JobEvent<T> {
    /// A progress report.
    Progress(Progress),
    /// A log line.
    Log(String),
    /// The job finished: its result, or the error rendered as text (with its causes).
    Done(Result<T, String>),
}

type Waker = Arc<dyn Fn() + Send + Sync>;

/// The sink handed to a job's closure: forwards to the channel and wakes the UI.
pub struct JobCtx<T> {
    tx: Mutex<Sender<JobEvent<T>>>,
    cancel: CancelToken,
    wake: Option<Waker>,
}

impl<T: Send> ProgressSink for JobCtx<T> {
    fn report(&self, progress: Progress) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(JobEvent::Progress(progress));
        }
        if let Some(w) = &self.wake {
            w();
        }
    }
    fn log(&self, line: &str) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(JobEvent::Log(line.to_string()));
        }
        if let Some(w) = &self.wake {
            w();
        }
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
    fn interrupt_probe(&self) -> Option<InterruptProbe> {
        let c = self.cancel.clone();
        Some(Arc::new(move || c.is_cancelled()))
    }
}

/// A running (or finished) background job, owned by the UI.
pub struct JobHandle<T> {
    /// Human-readable job name ("BiPO training").
    pub name: String,
    rx: Receiver<JobEvent<T>>,
    cancel: CancelToken,
    started: Instant,
    finished_at: Option<Instant>,
    /// The latest progress report.
    pub last: Option<Progress>,
    /// Every progress report received so far (for live plots).
    pub history: Vec<Progress>,
    /// Log lines received so far.
    pub logs: Vec<String>,
    result: Option<Result<T, String>>,
    thread: Option<JoinHandle<()>>,
}

/// Runs `work` on a new thread. `wake` (e.g. `egui::Context::request_repaint`) is called after
/// each event so the UI redraws without polling.
pub fn spawn<T, F>(name: impl Into<String>, wake: Option<Waker>, work: F) -> JobHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&JobCtx<T>) -> anyhow::Result<T> + Send + 'static,
{
    let (tx, rx) = channel();
    let cancel = CancelToken::new();
    let ctx = JobCtx {
        tx: Mutex::new(tx),
        cancel: cancel.clone(),
        wake,
    };
    let name = name.into();
    let thread = std::thread::Builder::new()
        .name(format!("job: {name}"))
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)));
            let result = match out {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(p) => Err(panic_message(&p)),
            };
            if let Ok(tx) = ctx.tx.lock() {
                let _ = tx.send(JobEvent::Done(result));
            }
            if let Some(w) = &ctx.wake {
                w();
            }
        })
        .expect("spawning a job thread");
    JobHandle {
        name,
        rx,
        cancel,
        started: Instant::now(),
        finished_at: None,
        last: None,
        history: Vec::new(),
        logs: Vec::new(),
        result: None,
        thread: Some(thread),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("internal error (panic): {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("internal error (panic): {s}")
    } else {
        "internal error (panic)".to_string()
    }
}

impl<T> JobHandle<T> {
    /// Drains pending events into `last`, `history`, `logs` and the result. Call once a frame.
    pub fn poll(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            match ev {
                JobEvent::Progress(p) => {
                    self.last = Some(p.clone());
                    self.history.push(p);
                }
                JobEvent::Log(l) => self.logs.push(l),
                JobEvent::Done(r) => {
                    self.result = Some(r);
                    self.finished_at = Some(Instant::now());
                    if let Some(t) = self.thread.take() {
                        let _ = t.join();
                    }
                }
            }
        }
    }

    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// True once cancel was requested.
    pub fn is_cancel_requested(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// True once the job sent its result.
    pub fn is_finished(&self) -> bool {
        self.result.is_some()
    }

    /// Fraction done, from the latest report.
    pub fn fraction(&self) -> Option<f32> {
        self.last.as_ref().and_then(Progress::fraction)
    }

    /// Time since start (until finish).
    pub fn elapsed(&self) -> Duration {
        self.finished_at.unwrap_or_else(Instant::now) - self.started
    }

    /// Estimated time left, extrapolated linearly from the fraction done.
    pub fn eta(&self) -> Option<Duration> {
        let f = self.fraction()? as f64;
        if f <= 0.0 || self.is_finished() {
            return None;
        }
        let el = self.elapsed().as_secs_f64();
        Some(Duration::from_secs_f64(el * (1.0 - f) / f))
    }

    /// The result, once finished (borrowed).
    pub fn result(&self) -> Option<&Result<T, String>> {
        self.result.as_ref()
    }

    /// Takes the result out, once finished.
    pub fn take_result(&mut self) -> Option<Result<T, String>> {
        self.result.take()
    }

    /// Values of one metric over the history, as (step, value) points for a plot.
    pub fn metric_series(&self, metric: Metric) -> Vec<[f64; 2]> {
        self.history
            .iter()
            .filter_map(|p| p.value(metric).map(|v| [p.step as f64, v]))
            .collect()
    }
}

/// Formats a duration as `1h02m`, `3m05s` or `12s` for progress displays.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}s", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait<T>(h: &mut JobHandle<T>) {
        let t0 = Instant::now();
        while !h.is_finished() {
            h.poll();
            assert!(t0.elapsed() < Duration::from_secs(20), "job did not finish");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn progress_and_result_arrive_in_order() {
        let mut h = spawn("count", None, |ctx| {
            for i in 1..=5u64 {
                ctx.report(Progress::new("count", i, Some(5)).metric(Metric::Loss, 1.0 / i as f64));
            }
            ctx.log("done counting");
            Ok(42)
        });
        wait(&mut h);
        assert_eq!(h.history.len(), 5);
        assert_eq!(h.fraction(), Some(1.0));
        assert_eq!(h.metric_series(Metric::Loss)[1], [2.0, 0.5]);
        assert_eq!(h.logs, vec!["done counting".to_string()]);
        assert_eq!(h.result(), Some(&Ok(42)));
    }

    #[test]
    fn cancel_stops_a_cooperative_job() {
        let mut h = spawn("spin", None, |ctx| {
            let mut n = 0u64;
            while !ctx.is_cancelled() {
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
                assert!(n < 20_000, "never cancelled");
            }
            Ok(n)
        });
        std::thread::sleep(Duration::from_millis(10));
        h.cancel();
        wait(&mut h);
        assert!(matches!(h.result(), Some(Ok(_))));
    }

    #[test]
    fn errors_and_panics_become_messages() {
        let mut e: JobHandle<()> = spawn("fail", None, |_| anyhow::bail!("bad input in line 3"));
        wait(&mut e);
        assert_eq!(e.result(), Some(&Err("bad input in line 3".to_string())));
        let mut p: JobHandle<()> = spawn("panic", None, |_| panic!("boom"));
        wait(&mut p);
        assert!(p.result().unwrap().as_ref().unwrap_err().contains("boom"));
    }

    #[test]
    fn metric_names_round_trip_and_compare_with_strings() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
            assert_eq!(m.to_string(), m.name());
        }
        let p = Progress::new("s", 1, None).metric(Metric::Fve, 0.5);
        assert!(p.metrics.iter().any(|(n, _)| n == "fve"));
        assert_eq!(p.value(Metric::Fve), Some(0.5));
        assert_eq!(p.value(Metric::Loss), None);
    }

    #[test]
    fn durations_format_compactly() {
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
    }
}
