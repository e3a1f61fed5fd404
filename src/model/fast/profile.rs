//! Opt-in section timings of forward and gradient passes, for the benchmarks only: with
//! `STEERLAB_PROFILE=1` in the environment, a [`span`] guard synchronises the device when it
//! opens and when it closes and charges the time in between to a named section, keeping apart
//! the host time spent issuing the section's kernels and the time until the device finished
//! them (a section whose two times are equal is bound by the host, not by the device). Time
//! between spans goes to the row [`BETWEEN`]. [`Profiled`] wraps the decoder ops of a forward
//! pass so that each op kind is a span (as candle-transformers' `with_tracing` wraps layers);
//! [`mark`] charges the time since the previous span or mark (for callers timing whole steps,
//! such as `bench`). Off, each costs one relaxed load.
//!
//! Must not change any result and must not be used for anything but measurement: the
//! synchronisations it adds slow the run down.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{Device, Tensor};

use super::switches;
use crate::model::arch::decoder::{Block, DecoderOps, Mlp, Step};
use crate::model::arch::ops::{Linear, RmsNorm};
use crate::model::Result;

/// The row that collects the time between spans.
pub const BETWEEN: &str = "other (between spans)";

/// One section's accumulated timings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    /// Times the section was entered.
    pub calls: usize,
    /// Host time to issue the section's work (ms).
    pub issue_ms: f64,
    /// Time until the device finished it (ms, includes `issue_ms`).
    pub total_ms: f64,
}

struct State {
    last: Instant,
    sections: BTreeMap<&'static str, Section>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Whether section timing is on (`STEERLAB_PROFILE=1`).
pub fn enabled() -> bool {
    switches::profile().load(Ordering::Relaxed)
}

/// Turns section timing on or off (for tests and benchmarks that do not use the environment).
pub fn set_enabled(on: bool) {
    switches::profile().store(on, Ordering::Relaxed);
}

/// Clears the table and starts the clock (after synchronising `device`).
pub fn reset(device: &Device) {
    if !enabled() {
        return;
    }
    let _ = device.synchronize();
    if let Ok(mut st) = STATE.lock() {
        *st = Some(State {
            last: Instant::now(),
            sections: BTreeMap::new(),
        });
    }
}

/// Ends the section `name` (begun at the previous mark or [`reset`]): synchronises `device` and
/// adds the elapsed host and device time to `name`'s row. No-op unless [`enabled`].
pub fn mark(device: &Device, name: &'static str) {
    if !enabled() {
        return;
    }
    let issued = Instant::now();
    let _ = device.synchronize();
    let done = Instant::now();
    let Ok(mut guard) = STATE.lock() else { return };
    let st = guard.get_or_insert_with(|| State {
        last: issued,
        sections: BTreeMap::new(),
    });
    let s = st.sections.entry(name).or_default();
    s.calls += 1;
    s.issue_ms += issued.duration_since(st.last).as_secs_f64() * 1e3;
    s.total_ms += done.duration_since(st.last).as_secs_f64() * 1e3;
    st.last = Instant::now();
}

/// Restarts the clock of the current interval without charging it to any row.
fn restart(device: &Device) {
    let _ = device.synchronize();
    if let Ok(mut guard) = STATE.lock() {
        if let Some(st) = guard.as_mut() {
            st.last = Instant::now();
        }
    }
}

/// An open section (see [`span`]): charged when dropped.
#[must_use = "a span times the code until it is dropped"]
pub struct Span<'a> {
    open: Option<(&'a Device, &'static str)>,
}

/// Opens section `name` on `device`: charges the time since the previous span or mark to
/// [`BETWEEN`], and the time until the returned guard drops to `name`. No-op unless
/// [`enabled`]. Spans must not nest.
pub fn span<'a>(device: &'a Device, name: &'static str) -> Span<'a> {
    if !enabled() {
        return Span { open: None };
    }
    mark(device, BETWEEN);
    Span {
        open: Some((device, name)),
    }
}

impl Span<'_> {
    /// Closes the span without charging it (the section did no work after all).
    pub fn cancel(mut self) {
        if let Some((device, _)) = self.open.take() {
            restart(device);
        }
    }
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        if let Some((device, name)) = self.open.take() {
            mark(device, name);
        }
    }
}

/// Runs `f` inside a [`span`] named `name`.
pub fn timed<T>(device: &Device, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _s = span(device, name);
    f()
}

/// Decoder ops with each op kind timed as a span (used when [`enabled`]).
pub(crate) struct Profiled<'a>(pub &'a dyn DecoderOps);

impl DecoderOps for Profiled<'_> {
    fn linear(&self, lin: &Linear, x: &Tensor) -> Result<Tensor> {
        let _s = span(x.device(), "linear");
        self.0.linear(lin, x)
    }

    fn rms_norm(&self, n: &RmsNorm, x: &Tensor) -> Result<Tensor> {
        let _s = span(x.device(), "rms norm");
        self.0.rms_norm(n, x)
    }

    fn add_rms_norm(&self, x: &Tensor, a: &Tensor, n: &RmsNorm) -> Result<(Tensor, Tensor)> {
        let _s = span(x.device(), "residual add + rms norm");
        self.0.add_rms_norm(x, a, n)
    }

    fn rope(&self, x: &Tensor, step: &Step) -> Result<Tensor> {
        let _s = span(x.device(), "rope (keys)");
        self.0.rope(x, step)
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, step: &Step) -> Result<Tensor> {
        let _s = span(q.device(), "attention (rope on queries included)");
        self.0.attention(q, k, v, step)
    }

    fn mlp(&self, mlp: &Mlp, x: &Tensor) -> Result<Tensor> {
        let _s = span(x.device(), "mlp");
        self.0.mlp(mlp, x)
    }

    fn whole_block(&self, block: &Block, x: &Tensor, step: &Step) -> Result<Option<Tensor>> {
        let s = span(x.device(), "fwd: block as one node");
        let y = self.0.whole_block(block, x, step)?;
        if y.is_none() {
            s.cancel();
        }
        Ok(y)
    }
}

/// The sections timed since the last [`reset`], by name.
pub fn take() -> Vec<(&'static str, Section)> {
    STATE
        .lock()
        .ok()
        .and_then(|mut g| g.take())
        .map(|st| st.sections.into_iter().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_and_spans_accumulate_per_section_and_take_clears() {
        set_enabled(true);
        let dev = Device::Cpu;
        reset(&dev);
        std::thread::sleep(std::time::Duration::from_millis(2));
        mark(&dev, "test: a");
        mark(&dev, "test: b");
        mark(&dev, "test: a");
        let rows = take();
        let a = rows.iter().find(|(n, _)| *n == "test: a").unwrap();
        assert_eq!(a.1.calls, 2);
        assert!(a.1.total_ms >= 2.0 && a.1.total_ms >= a.1.issue_ms);
        assert_eq!(
            rows.iter().find(|(n, _)| *n == "test: b").unwrap().1.calls,
            1
        );
        assert!(take().is_empty());
        // Spans (in the same test: the table is process-wide).
        reset(&dev);
        std::thread::sleep(std::time::Duration::from_millis(2));
        {
            let _s = span(&dev, "test: span");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        span(&dev, "test: cancelled").cancel();
        let rows = take();
        let get = |n: &str| rows.iter().find(|(m, _)| *m == n).map(|r| r.1.clone());
        assert!(get("test: span").unwrap().total_ms >= 2.0);
        assert!(get(BETWEEN).unwrap().total_ms >= 2.0);
        assert!(get("test: cancelled").is_none());
        set_enabled(false);
    }
}
