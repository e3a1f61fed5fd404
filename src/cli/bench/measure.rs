//! What every `steerlab bench` workload reports besides its own timings: the error type, peak
//! memory, CPU threads, the median of a timing list and the `STEERLAB_PROFILE=1` section table.
//! Measuring helpers only; no workload lives here.
use candle_core::Device;
use serde::Serialize;

use crate::model::ModelError;

/// Errors of the benchmark workloads.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An engine error (loading, forward).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A tensor error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A steering-trainer error.
    #[error(transparent)]
    Steer(#[from] crate::steer::SteerError),
    /// An SAE error.
    #[error(transparent)]
    Sae(#[from] crate::sae::SaeError),
    /// A dissection error.
    #[error(transparent)]
    Dissect(#[from] crate::dissect::DissectError),
    /// A bad option.
    #[error("{0}")]
    Invalid(String),
    /// Writing a data file failed.
    #[error("{path}: {message}")]
    Write {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Peak resident memory of this process in MiB (`VmHWM`; None where /proc is absent).
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// GPU memory held by this process in MiB, from `nvidia-smi` (None on CPU or without it).
pub fn gpu_mem_mb(device: &Device) -> Option<f64> {
    if !device.is_cuda() {
        return None;
    }
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut it = l.split(',').map(str::trim);
        (it.next()? == me).then(|| it.next()?.parse().ok())?
    })
}

pub(super) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        f64::NAN
    } else {
        xs[xs.len() / 2]
    }
}

pub(super) fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// One row of the `STEERLAB_PROFILE=1` section table, averaged per step.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileRow {
    /// Section name (`fwd: ...`, `bwd: ...`).
    pub section: String,
    /// Times entered per step.
    pub calls_per_step: f64,
    /// Host time issuing the section's work (ms per step).
    pub issue_ms_per_step: f64,
    /// Time until the device finished it (ms per step).
    pub total_ms_per_step: f64,
}

/// The `STEERLAB_PROFILE=1` section table since the last reset, averaged over `iters`.
pub(super) fn profile_rows(iters: usize) -> Vec<ProfileRow> {
    let n = iters.max(1) as f64;
    crate::model::fast::profile::take()
        .into_iter()
        .map(|(name, s)| ProfileRow {
            section: name.to_string(),
            calls_per_step: s.calls as f64 / n,
            issue_ms_per_step: s.issue_ms / n,
            total_ms_per_step: s.total_ms / n,
        })
        .collect()
}
