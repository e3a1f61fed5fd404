//! `steerlab bench dissect`: seconds per factor-dissection fit (NUTS or Laplace) on planted sign
//! features (which `--save-data` writes for `scripts/bench_dissect_numpyro.py`). Measures only;
//! the fits are `crate::dissect`'s.
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::measure::{median, peak_rss_mb, threads, BenchError, Result};
use crate::dissect::nuts::{sample, NutsConfig};
use crate::dissect::posterior::Posterior;

/// Planted dissection data: `pairs` rows of `factors` sign features in {−1, 0, 1} (each zero
/// with probability 0.2) and labels drawn from a logistic model with planted weights.
#[derive(Debug, Clone, Serialize)]
pub struct DissectData {
    /// What this is.
    pub description: String,
    /// Factor names.
    pub names: Vec<String>,
    /// The planted weights.
    pub planted: Vec<f64>,
    /// Feature rows.
    #[serde(rename = "X")]
    pub x: Vec<Vec<i32>>,
    /// 1 when A was preferred.
    pub y: Vec<u8>,
    /// Laplace prior scales to fit with.
    pub prior_scales: Vec<f64>,
}

/// Builds [`DissectData`] (seeded), planted weights cycling through 1.2, −0.6, 0.25, 0, −1, 0.8.
pub fn dissect_data(pairs: usize, factors: usize, prior_scale: f64, seed: u64) -> DissectData {
    let base = [1.2, -0.6, 0.25, 0.0, -1.0, 0.8];
    let planted: Vec<f64> = (0..factors).map(|j| base[j % base.len()]).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(pairs);
    let mut y = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let row: Vec<i32> = (0..factors)
            .map(|_| {
                if rng.random::<f64>() < 0.2 {
                    0
                } else if rng.random::<bool>() {
                    1
                } else {
                    -1
                }
            })
            .collect();
        let logit: f64 = row.iter().zip(&planted).map(|(a, w)| *a as f64 * w).sum();
        y.push(u8::from(rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp())));
        x.push(row);
    }
    DissectData {
        description: "planted sign features for `steerlab bench dissect`".into(),
        names: (0..factors).map(|j| format!("f{j}")).collect(),
        planted,
        x,
        y,
        prior_scales: vec![prior_scale],
    }
}

/// Writes [`DissectData`] as JSON (the fixture layout `scripts/bench_dissect_numpyro.py` reads),
/// atomically.
pub fn save_dissect_data(path: &Path, d: &DissectData) -> Result<()> {
    let bytes = serde_json::to_vec(d).map_err(|e| BenchError::Invalid(e.to_string()))?;
    crate::report::write_atomic(path, &bytes).map_err(|e| BenchError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Which posterior fit [`dissect`] times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DissectSampler {
    /// NUTS, 500 warm-up + 2000 draws × 4 chains (GAIR's settings).
    Nuts,
    /// MAP + Laplace approximation.
    Laplace,
}

/// Seconds per dissection fit.
#[derive(Debug, Clone, Serialize)]
pub struct DissectResult {
    /// `"dissect"`.
    pub bench: &'static str,
    /// Pairs.
    pub pairs: usize,
    /// Factors.
    pub factors: usize,
    /// Sampler.
    pub sampler: DissectSampler,
    /// Prior scale b.
    pub prior_scale: f64,
    /// Timed fits.
    pub iters: usize,
    /// Median seconds per fit.
    pub s_per_fit: f64,
    /// Posterior means of the last fit.
    pub mean: Vec<f64>,
    /// Peak resident memory of the process (MiB).
    pub peak_rss_mb: Option<f64>,
    /// CPU threads available.
    pub threads: usize,
}

/// Fits the dissection posterior of `data` (first prior scale) `iters` times and reports the
/// median seconds per fit.
pub fn dissect(data: &DissectData, sampler: DissectSampler, iters: usize) -> Result<DissectResult> {
    let p = data.names.len();
    if data.x.is_empty() || p == 0 || iters == 0 {
        return Err(BenchError::Invalid(
            "dissect needs pairs ≥ 1, factors ≥ 1, iters ≥ 1".into(),
        ));
    }
    let b = data.prior_scales.first().copied().unwrap_or(1.0);
    let x: Vec<Vec<f64>> = data
        .x
        .iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect();
    let y: Vec<bool> = data.y.iter().map(|&v| v == 1).collect();
    let post = Posterior::new(&x, &y, p, b);
    let mut times = Vec::with_capacity(iters);
    let mut mean = vec![0.0; p];
    for it in 0..iters {
        let t = Instant::now();
        mean = match sampler {
            DissectSampler::Laplace => crate::dissect::laplace::fit(&post)?.mean,
            DissectSampler::Nuts => {
                let cfg = NutsConfig {
                    seed: it as u64,
                    ..Default::default()
                };
                let out = sample(&post, &cfg, &|_| {}, &|| false)?;
                let mut m = vec![0.0; p];
                let mut count = 0usize;
                for chain in &out.draws {
                    for d in chain {
                        m.iter_mut().zip(d).for_each(|(a, b)| *a += b);
                        count += 1;
                    }
                }
                m.iter_mut().for_each(|a| *a /= count.max(1) as f64);
                m
            }
        };
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(DissectResult {
        bench: "dissect",
        pairs: data.x.len(),
        factors: p,
        sampler,
        prior_scale: b,
        iters,
        s_per_fit: median(times),
        mean,
        peak_rss_mb: peak_rss_mb(),
        threads: threads(),
    })
}
