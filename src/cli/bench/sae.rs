//! `steerlab bench sae`: SAE training throughput on synthetic preference-embedding pairs (which
//! `--save-data` writes for `scripts/sae_torch_bench.py`). Measures only; the training is
//! `crate::sae`'s.
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::measure::{peak_rss_mb, threads, BenchError, Result};
use crate::jobs::NoProgress;
use crate::sae::{train_sae, SaeConfig};

/// Synthetic preference-embedding pairs for the SAE benchmark: `n` pairs `(a, b)` of width
/// `dim` whose differences are sparse combinations of `latents` random unit directions plus
/// noise. Returns `(a, b)`, row-major `[n, dim]` each.
pub fn sae_data(n: usize, dim: usize, latents: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut normal = || -> f32 { rng.sample(rand_distr::StandardNormal) };
    let mut dirs = vec![0f32; latents * dim];
    for row in dirs.chunks_mut(dim) {
        row.iter_mut().for_each(|x| *x = normal());
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    let mut a = vec![0f32; n * dim];
    let mut b = vec![0f32; n * dim];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xA5A5);
    for i in 0..n {
        let (ra, rb) = (
            &mut a[i * dim..(i + 1) * dim],
            &mut b[i * dim..(i + 1) * dim],
        );
        for (x, y) in ra.iter_mut().zip(rb.iter_mut()) {
            let base: f32 = rng.sample(rand_distr::StandardNormal);
            *x = base * 0.1;
            *y = base * 0.1 + 0.01 * rng.sample::<f32, _>(rand_distr::StandardNormal);
        }
        for _ in 0..3 {
            let l = rng.random_range(0..latents.max(1));
            let s: f32 = rng.random_range(-1.0..1.0);
            for (x, d) in ra.iter_mut().zip(&dirs[l * dim..(l + 1) * dim]) {
                *x += s * d;
            }
        }
    }
    (a, b)
}

/// Writes [`sae_data`] as a safetensors file with tensors `a` and `b` (the layout of the
/// embedding cache that `scripts/sae_torch_bench.py` reads), atomically.
pub fn save_sae_data(path: &Path, a: &[f32], b: &[f32], n: usize, dim: usize) -> Result<()> {
    crate::sae::embed::write_cache(path, a, b, n, dim)?;
    Ok(())
}

/// SAE training throughput.
#[derive(Debug, Clone, Serialize)]
pub struct SaeResult {
    /// `"sae"`.
    pub bench: &'static str,
    /// Pairs (training rows are Δ and −Δ: 2n).
    pub n: usize,
    /// Embedding width.
    pub dim: usize,
    /// Latents M.
    pub latents: usize,
    /// Active latents K.
    pub k: usize,
    /// Epochs run (no early stopping).
    pub epochs: usize,
    /// Wall-clock training seconds.
    pub seconds: f64,
    /// Training rows × epochs / seconds.
    pub samples_per_s: f64,
    /// Peak resident memory of the process (MiB).
    pub peak_rss_mb: Option<f64>,
    /// CPU threads available.
    pub threads: usize,
}

/// Trains the WIMHF SAE (src/sae) for exactly `epochs` epochs on Δ and −Δ of `(a, b)`, as
/// `scripts/sae_torch_bench.py` does, and reports samples/s.
pub fn sae(
    a: &[f32],
    b: &[f32],
    dim: usize,
    latents: usize,
    k: usize,
    epochs: usize,
) -> Result<SaeResult> {
    if dim == 0 || a.len() != b.len() || !a.len().is_multiple_of(dim) || epochs == 0 {
        return Err(BenchError::Invalid(
            "SAE data must be two equal [n, dim] matrices and epochs ≥ 1".into(),
        ));
    }
    let n = a.len() / dim;
    let delta: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mut train = delta.clone();
    train.extend(delta.iter().map(|x| -x));
    let cfg = SaeConfig {
        latents,
        k,
        max_epochs: epochs,
        min_epochs: epochs,
        patience: epochs,
        ..Default::default()
    };
    // A small validation slice: early stopping is off, so it only costs one pass per epoch.
    let val = &delta[..dim * n.min(64)];
    let t = Instant::now();
    train_sae(&train, val, dim, &cfg, &NoProgress)?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(SaeResult {
        bench: "sae",
        n,
        dim,
        latents,
        k,
        epochs,
        seconds,
        samples_per_s: (2 * n * epochs) as f64 / seconds,
        peak_rss_mb: peak_rss_mb(),
        threads: threads(),
    })
}
