//! Opt-in section timings of the gradient path, for the benchmarks only: with
//! `STEERLAB_PROFILE=1` in the environment, [`mark`] synchronises the device and charges the
//! time since the previous mark to a named section, keeping apart the host time spent issuing
//! the section's kernels and the time until the device finished them (a section whose two times
//! are equal is bound by the host, not by the device). Off, [`mark`] costs one relaxed load.
//!
//! Must not change any result and must not be used for anything but measurement: the
//! synchronisations it adds slow the run down.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use candle_core::Device;

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

static ENABLED: OnceLock<AtomicBool> = OnceLock::new();
static STATE: Mutex<Option<State>> = Mutex::new(None);

fn flag() -> &'static AtomicBool {
    ENABLED.get_or_init(|| {
        AtomicBool::new(std::env::var("STEERLAB_PROFILE").is_ok_and(|v| v != "0" && !v.is_empty()))
    })
}

/// Whether section timing is on (`STEERLAB_PROFILE=1`).
pub fn enabled() -> bool {
    flag().load(Ordering::Relaxed)
}

/// Turns section timing on or off (for tests and benchmarks that do not use the environment).
pub fn set_enabled(on: bool) {
    flag().store(on, Ordering::Relaxed);
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
    fn marks_accumulate_per_section_and_take_clears() {
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
        set_enabled(false);
    }
}
