//! `steerlab bench forward` (forward-pass throughput of a model) and `steerlab bench matmul`
//! (CPU f32 GEMM per linear-layer shape, candle against the packed kernel). Measures only; must
//! not change the forward pass it times.
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::inputs::bench_ids;
use super::measure::{
    gpu_mem_mb, median, peak_rss_mb, profile_rows, threads, BenchError, ProfileRow, Result,
};
use crate::model::{Batch, HookPoint, Hooks, Model, Positions};

/// Forward-pass throughput.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardResult {
    /// `"forward"`.
    pub bench: &'static str,
    /// Model name.
    pub model: String,
    /// Device.
    pub device: String,
    /// Dtype.
    pub dtype: String,
    /// Sequences per pass.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Timed passes.
    pub iters: usize,
    /// Whether a steering vector was added mid-network.
    pub steered: bool,
    /// Whether the LM head ran on the last position only (what llama.cpp's `llama-bench`
    /// prompt processing computes) instead of every position.
    pub last_logits: bool,
    /// Median milliseconds per pass (the logits included).
    pub ms_per_iter: f64,
    /// `batch · seq / median seconds`.
    pub tokens_per_s: f64,
    /// Peak resident memory of the process (MiB).
    pub peak_rss_mb: Option<f64>,
    /// GPU memory held after the run (MiB), on CUDA.
    pub gpu_mem_mb: Option<f64>,
    /// CPU threads available.
    pub threads: usize,
    /// Whether CPU f32 inference linear layers used the packed kernel
    /// ([`crate::model::fast::cpu_matmul::enabled`]; `STEERLAB_CPU_GEMM=0` switches it off).
    pub cpu_gemm: bool,
    /// Whether CPU f32 inference used the fused attention / SwiGLU / norm kernels
    /// ([`crate::model::fast::cpu_infer::enabled`]; `STEERLAB_CPU_FUSED=0` switches them off).
    pub cpu_fused: bool,
    /// The instruction-set path the CPU kernels ran (`avx512`, `avx2`, `neon`, `portable`;
    /// [`crate::model::fast::cpu_path::current`], `STEERLAB_CPU_PATH` forces one); `None` on a
    /// GPU.
    pub cpu_path: Option<String>,
    /// The CPU's SIMD features ([`crate::model::fast::cpu_path::cpu_features`]).
    pub cpu_features: String,
    /// Per-section timings (`STEERLAB_PROFILE=1`; empty otherwise), per iteration.
    pub sections: Vec<ProfileRow>,
}

/// Times `iters` full forward passes on [`bench_ids`]: logits at every position, or with
/// `last_logits` at the last one only.
pub fn forward(
    model: &Model,
    batch: usize,
    seq: usize,
    iters: usize,
    steered: bool,
    last_logits: bool,
) -> Result<ForwardResult> {
    if batch == 0 || seq == 0 || iters == 0 {
        return Err(BenchError::Invalid(
            "batch, seq and iters must be at least 1".into(),
        ));
    }
    let info = model.info();
    let ids = bench_ids(batch, seq, info.vocab_size);
    let b = Batch::from_sequences(&ids, 0, model.device())?;
    let mut hooks = Hooks::new();
    if steered {
        let v = Tensor::randn(0f32, 1.0, model.hidden_size(), model.device())?
            .to_dtype(model.dtype())?;
        hooks.add(
            HookPoint::ResidPost(model.n_layers() / 2),
            v,
            4.0,
            Positions::All,
        );
    }
    let pass = |hooks: &mut Hooks| -> Result<Tensor> {
        Ok(if last_logits {
            let h = model.forward_hidden(&b, hooks)?;
            model.lm_head(&h.narrow(1, seq - 1, 1)?)?
        } else {
            model.forward(&b, hooks)?
        })
    };
    pass(&mut hooks)?.device().synchronize()?; // warm-up
    let mut times = Vec::with_capacity(iters);
    crate::model::fast::profile::reset(model.device());
    for _ in 0..iters {
        let t = Instant::now();
        let logits = pass(&mut hooks)?;
        logits.device().synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let sections = profile_rows(iters);
    let med = median(times);
    Ok(ForwardResult {
        bench: "forward",
        model: info.name,
        device: info.device,
        dtype: info.dtype,
        batch,
        seq,
        iters,
        steered,
        last_logits,
        ms_per_iter: med * 1e3,
        tokens_per_s: (batch * seq) as f64 / med,
        peak_rss_mb: peak_rss_mb(),
        gpu_mem_mb: gpu_mem_mb(model.device()),
        threads: threads(),
        cpu_gemm: model.device().is_cpu() && crate::model::fast::cpu_matmul::enabled(),
        cpu_fused: model.device().is_cpu() && crate::model::fast::cpu_infer::enabled(),
        cpu_path: model
            .device()
            .is_cpu()
            .then(|| crate::model::fast::cpu_path::current().to_string()),
        cpu_features: crate::model::fast::cpu_path::cpu_features(),
        sections,
    })
}

/// The `(k, n)` shapes of the linear layers of one SmolLM2-135M forward: q/o, k/v, gate/up,
/// down, LM head (`scripts/bench_matmul_torch.py` uses the same list).
pub const MATMUL_SHAPES: &[(usize, usize)] = &[
    (576, 576),
    (576, 192),
    (576, 1536),
    (1536, 576),
    (576, 49152),
];

/// One shape of [`matmul`]: candle's `x.matmul(&w.t())` (what a linear layer runs) against the
/// packed kernel of [`crate::model::fast::cpu_matmul`], timed alternately.
#[derive(Debug, Clone, Serialize)]
pub struct MatmulRow {
    /// Rows of `x` (tokens).
    pub m: usize,
    /// Input features.
    pub k: usize,
    /// Output features.
    pub n: usize,
    /// Median ms of candle's matmul.
    pub candle_ms: f64,
    /// Its GFLOP/s (`2 m k n`).
    pub candle_gflops: f64,
    /// Median ms of the packed kernel (`None` on a CPU without AVX2/FMA).
    pub packed_ms: Option<f64>,
    /// Its GFLOP/s.
    pub packed_gflops: Option<f64>,
    /// Largest |candle - packed| over the output.
    pub max_abs_diff: Option<f64>,
    /// The packed kernel on every path this CPU runs (the current path's row repeats
    /// `packed_ms`), timed in the same alternation.
    pub paths: Vec<MatmulPathRow>,
}

/// The packed kernel of [`matmul`] on one [`crate::model::fast::cpu_path::CpuPath`].
#[derive(Debug, Clone, Serialize)]
pub struct MatmulPathRow {
    /// `avx512`, `avx2`, `neon` or `portable`.
    pub path: String,
    /// Median ms.
    pub ms: f64,
    /// GFLOP/s (`2 m k n`).
    pub gflops: f64,
    /// Largest |candle - packed on this path| over the output.
    pub max_abs_diff: f64,
    /// `gflops` over the path's measured peak times the threads
    /// ([`MatmulResult::peaks`]): the fraction of the machine's multiply-add peak.
    pub fraction_of_peak: f64,
}

/// The measured multiply-add peak of one thread on one path
/// ([`crate::model::fast::cpu_matmul::fma_peak_gflops`]).
#[derive(Debug, Clone, Serialize)]
pub struct PeakRow {
    /// `avx512`, `avx2`, `neon` or `portable`.
    pub path: String,
    /// GFLOP/s of one thread (the fastest of short runs).
    pub gflops_per_thread: f64,
}

/// `steerlab bench matmul`: per-shape GEMM throughput on the CPU in f32.
#[derive(Debug, Clone, Serialize)]
pub struct MatmulResult {
    /// `"matmul"`.
    pub bench: &'static str,
    /// Timed calls per shape and side.
    pub iters: usize,
    /// CPU threads available.
    pub threads: usize,
    /// The path [`PackedLinear::matmul`](crate::model::fast::cpu_matmul::PackedLinear::matmul)
    /// runs by default (the `packed_*` columns).
    pub cpu_path: String,
    /// The CPU's SIMD features.
    pub cpu_features: String,
    /// The multiply-add peak of one thread on each path this CPU runs, measured before the
    /// shapes (the GEMM runs on `threads` threads: its peak is `threads` times this).
    pub peaks: Vec<PeakRow>,
    /// One row per shape.
    pub rows: Vec<MatmulRow>,
}

/// Times `y = x W^T` for each `(k, n)` in `shapes` with `m` rows, candle against the packed
/// kernel on every path this CPU runs, alternating the sides each iteration (one warm-up call
/// each).
pub fn matmul(m: usize, shapes: &[(usize, usize)], iters: usize) -> Result<MatmulResult> {
    use crate::model::fast::cpu_matmul::{self, PackedLinear};
    use crate::model::fast::cpu_path;
    if m == 0 || iters == 0 || shapes.iter().any(|&(k, n)| k == 0 || n == 0) {
        return Err(BenchError::Invalid(
            "m, iters and every k and n must be at least 1".into(),
        ));
    }
    let dev = Device::Cpu;
    let peaks: Vec<PeakRow> = cpu_path::available()
        .into_iter()
        .map(|p| -> Result<PeakRow> {
            Ok(PeakRow {
                path: p.to_string(),
                gflops_per_thread: cpu_matmul::fma_peak_gflops(p, 300)?,
            })
        })
        .collect::<Result<_>>()?;
    let nthreads = threads().max(1) as f64;
    let peak_of = |path: &str| {
        peaks
            .iter()
            .find(|r| r.path == path)
            .map_or(f64::NAN, |r| r.gflops_per_thread * nthreads)
    };
    let mut rows = Vec::new();
    for &(k, n) in shapes {
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let packed = if cpu_matmul::supported() {
            Some(PackedLinear::from_tensors(&w, None)?)
        } else {
            None
        };
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; m * n];
        let want = x.matmul(&w.t()?)?;
        // The current path first (the `packed_*` columns), then the others.
        let current = cpu_path::current();
        let mut paths = vec![current];
        paths.extend(cpu_path::available().into_iter().filter(|&p| p != current));
        let mut diffs = Vec::new();
        if let Some(p) = &packed {
            for &path in &paths {
                p.matmul_on(path, &xs, m, &mut out)?;
                let got = Tensor::from_slice(&out, (m, n), &dev)?;
                diffs.push((got - &want)?.abs()?.max_all()?.to_scalar::<f32>()? as f64);
            }
        }
        let (mut tc, mut tp) = (Vec::new(), vec![Vec::new(); paths.len()]);
        for _ in 0..iters {
            let t = Instant::now();
            let y = x.matmul(&w.t()?)?;
            tc.push(t.elapsed().as_secs_f64());
            drop(y);
            if let Some(p) = &packed {
                for (i, &path) in paths.iter().enumerate() {
                    let t = Instant::now();
                    p.matmul_on(path, &xs, m, &mut out)?;
                    tp[i].push(t.elapsed().as_secs_f64());
                }
            }
        }
        let flop = 2.0 * (m * k * n) as f64;
        let c = median(tc);
        let times: Vec<f64> = match &packed {
            Some(_) => tp.into_iter().map(median).collect(),
            None => Vec::new(),
        };
        let pm = times.first().copied();
        let diff = diffs.first().copied();
        let per_path = times
            .iter()
            .zip(&diffs)
            .zip(&paths)
            .map(|((&t, &d), p)| MatmulPathRow {
                path: p.to_string(),
                ms: t * 1e3,
                gflops: flop / t / 1e9,
                max_abs_diff: d,
                fraction_of_peak: flop / t / 1e9 / peak_of(p.name()),
            })
            .collect();
        rows.push(MatmulRow {
            m,
            k,
            n,
            candle_ms: c * 1e3,
            candle_gflops: flop / c / 1e9,
            packed_ms: pm.map(|t| t * 1e3),
            packed_gflops: pm.map(|t| flop / t / 1e9),
            max_abs_diff: diff,
            paths: per_path,
        });
    }
    Ok(MatmulResult {
        bench: "matmul",
        iters,
        threads: threads(),
        cpu_path: cpu_path::current().to_string(),
        cpu_features: cpu_path::cpu_features(),
        peaks,
        rows,
    })
}
