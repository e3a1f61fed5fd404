//! `steerlab bench forward|bipo|sae|dissect|matmul`: the benchmark workloads and their command.
//! Each workload runs on inputs that a PyTorch / NumPyro twin script (`scripts/bench_*.py`) can
//! rebuild exactly (same token-id pattern, same random-init shapes, data files written by
//! [`save_sae_data`] and [`save_dissect_data`]); `scripts/bench_all.sh` runs both sides.
//!
//! Timings are wall-clock medians over `iters` runs after a warm-up. This module only
//! measures: it must not change any algorithm, and nothing here is used by training or the
//! app (the random-init models of `inputs.rs` also serve `crate::testing`). This file parses
//! flags, builds or loads the model, calls a workload and prints a summary line or (with
//! `--json`) one JSON object; one file per workload beside it.
mod bipo;
mod dissect;
mod forward;
mod inputs;
mod measure;
mod quant_model;
mod sae;

pub use bipo::{bipo, BipoResult};
pub use dissect::{
    dissect, dissect_data, save_dissect_data, DissectData, DissectResult, DissectSampler,
};
pub use forward::{
    forward, matmul, ForwardResult, MatmulPathRow, MatmulResult, MatmulRow, PeakRow, MATMUL_SHAPES,
};
pub use inputs::{
    bench_ids, bench_pairs, llama_weights, random_config, random_model, LlamaShape, RANDOM_SHAPES,
};
pub use measure::{gpu_mem_mb, peak_rss_mb, BenchError, ProfileRow, Result};
pub use quant_model::{parse_block_type, random_quantized_model};
pub use sae::{sae, sae_data, save_sae_data, SaeResult};

use crate::model::{GradOps, LoadOptions, Model, WeightStorage};
use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;

/// `steerlab bench ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Forward-pass throughput (tokens/s, logits at every position).
    Forward(ForwardArgs),
    /// One BiPO step: steered forward + backward into one vector, cached reference log-probs.
    Bipo(BipoArgs),
    /// SAE training throughput (samples/s) on synthetic embedding pairs.
    Sae(SaeArgs),
    /// Seconds per factor-dissection fit on planted data.
    Dissect(DissectArgs),
    /// CPU f32 GEMM throughput per linear-layer shape: candle's matmul vs the packed kernel.
    Matmul(MatmulArgs),
}

/// Which model to benchmark.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model: an HF folder, .gguf file, short name (smollm2) or hf:ORG/NAME[@REV] (default:
    /// the cached SmolLM2-135M-Instruct).
    #[arg(long, conflicts_with = "random")]
    pub model: Option<PathBuf>,
    /// Random-init model of a named shape instead of weights on disk: llama:smollm2,
    /// qwen2:0.5b, qwen2:1.5b, llama:tiny.
    #[arg(long)]
    pub random: Option<String>,
    /// Weight and compute dtype: f32, bf16, f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Weight storage: `auto` (the default: a .gguf file's blocks kept in memory on the CPU in
    /// f32, dequantized elsewhere), `quantized` (kept), `f32` (dequantized at load: what a
    /// comparison with PyTorch asks for), or with `--random` a block type (`q4_0`, `q4_1`,
    /// `q5_0`, `q5_1`, `q8_0`, `q2_k` … `q6_k`) to quantize the random weights to in memory.
    #[arg(long, default_value = "auto")]
    pub weights: String,
    /// Device: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Sequences (forward) or preference pairs (bipo) per pass.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Print one JSON object instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `steerlab bench forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub m: ModelArgs,
    /// Add a steering vector at the middle block's output.
    #[arg(long)]
    pub steer: bool,
    /// Run the LM head on the last position only (as llama.cpp's `llama-bench` prompt
    /// processing does) instead of every position.
    #[arg(long)]
    pub last_logits: bool,
}

/// Flags of `steerlab bench bipo`.
#[derive(Debug, Args)]
pub struct BipoArgs {
    #[command(flatten)]
    pub m: ModelArgs,
    /// Steered block (0-based; default: the middle one, n_layers / 2).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Ops of the gradient path: `fused` (fused kernels with a hand-written backward),
    /// `composed` (differentiable candle primitives; the reference, for profiling),
    /// `fused-attention` (`fused` plus the whole attention as one node) or `block` (one
    /// node per transformer block, backward into the block input only).
    #[arg(long, value_enum, default_value = "block")]
    pub grad_ops: GradOpsArg,
}

/// `--grad-ops` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GradOpsArg {
    /// Fused kernels with a hand-written backward.
    Fused,
    /// Composed candle primitives.
    Composed,
    /// Fused kernels plus a fused attention with a hand-written backward.
    FusedAttention,
    /// One autograd node per transformer block.
    Block,
}

/// Flags of `steerlab bench sae`.
#[derive(Debug, Args)]
pub struct SaeArgs {
    /// Preference pairs (training rows: 2N).
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Latents M.
    #[arg(long, default_value_t = 32)]
    pub latents: usize,
    /// Active latents per row K.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Epochs (fixed; no early stopping).
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Seed of the synthetic embeddings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the embeddings (safetensors `a`, `b`) for scripts/sae_torch_bench.py.
    #[arg(long)]
    pub save_data: Option<PathBuf>,
    /// Print one JSON object instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// `--sampler` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SamplerArg {
    /// NUTS (500 warm-up + 2000 draws × 4 chains).
    Nuts,
    /// MAP + Laplace approximation.
    Laplace,
}

/// Flags of `steerlab bench dissect`.
#[derive(Debug, Args)]
pub struct DissectArgs {
    /// Preference pairs.
    #[arg(long, default_value_t = 400)]
    pub pairs: usize,
    /// Factors.
    #[arg(long, default_value_t = 6)]
    pub factors: usize,
    /// Posterior fit.
    #[arg(long, value_enum, default_value = "nuts")]
    pub sampler: SamplerArg,
    /// Laplace prior scale b.
    #[arg(long, default_value_t = 1.0)]
    pub prior_scale: f64,
    /// Timed fits.
    #[arg(long, default_value_t = 1)]
    pub iters: usize,
    /// Seed of the planted data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Also write the data (JSON: X, y, prior_scales) for scripts/bench_dissect_numpyro.py.
    #[arg(long)]
    pub save_data: Option<PathBuf>,
    /// Print one JSON object instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `steerlab bench matmul`.
#[derive(Debug, Args)]
pub struct MatmulArgs {
    /// Rows of x (tokens: batch x seq; 1 for a generation step).
    #[arg(long, default_value_t = 512)]
    pub m: usize,
    /// Shapes `KxN,KxN,...` (default: the linear layers of SmolLM2-135M).
    #[arg(long)]
    pub shapes: Option<String>,
    /// Timed calls per shape and side.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `KxN,KxN,...`.
fn parse_shapes(s: &str) -> anyhow::Result<Vec<(usize, usize)>> {
    s.split(',')
        .map(|p| {
            let (k, n) = p
                .trim()
                .split_once('x')
                .with_context(|| format!("--shapes: {p:?} is not KxN"))?;
            Ok((
                k.trim()
                    .parse()
                    .with_context(|| format!("--shapes: bad K in {p:?}"))?,
                n.trim()
                    .parse()
                    .with_context(|| format!("--shapes: bad N in {p:?}"))?,
            ))
        })
        .collect()
}

/// Runs a `steerlab bench` subcommand.
pub fn run(c: BenchCommand) -> anyhow::Result<()> {
    match c {
        BenchCommand::Forward(a) => {
            let model = load(&a.m)?;
            let r = forward(
                &model,
                a.m.batch,
                a.m.seq,
                a.m.iters,
                a.steer,
                a.last_logits,
            )?;
            print_sections(&r.sections);
            let line = format!(
                "forward {} {} {} batch {} x {}{}: {:.1} ms/iter, {:.0} tokens/s, peak RSS {}{}",
                r.model,
                r.device,
                r.dtype,
                r.batch,
                r.seq,
                match (r.steered, r.last_logits) {
                    (true, true) => " (steered, last-position logits)",
                    (true, false) => " (steered)",
                    (false, true) => " (last-position logits)",
                    (false, false) => "",
                },
                r.ms_per_iter,
                r.tokens_per_s,
                mb(r.peak_rss_mb),
                r.cpu_path
                    .as_deref()
                    .map(|p| format!(", cpu path {p}"))
                    .unwrap_or_default()
            );
            emit(a.m.json, &r, &line)
        }
        BenchCommand::Bipo(a) => {
            let mut model = load(&a.m)?;
            model.set_grad_ops(match a.grad_ops {
                GradOpsArg::Fused => GradOps::Fused,
                GradOpsArg::Composed => GradOps::Composed,
                GradOpsArg::FusedAttention => GradOps::FusedAttention,
                GradOpsArg::Block => GradOps::Block,
            });
            let layer = a.layer.unwrap_or(model.n_layers() / 2);
            if layer >= model.n_layers() {
                bail!(
                    "--layer {layer}: the model has {} blocks (0..{})",
                    model.n_layers(),
                    model.n_layers() - 1
                );
            }
            let r = bipo(&model, a.m.batch, a.m.seq, layer, a.m.iters)?;
            print_sections(&r.sections);
            let line = format!(
                "bipo {} {} {} {} pairs x {} tokens, layer {}, {} ops: {:.1} ms/step (forward {:.1}, backward {:.1}), cache {:.0} ms once, peak RSS {}{}; first loss {:.6}, grad norm {:.6e}, {} graph nodes",
                r.model,
                r.device,
                r.dtype,
                r.batch,
                r.seq,
                r.layer,
                r.grad_ops,
                r.ms_per_step,
                r.forward_ms,
                r.backward_ms,
                r.cache_ms,
                mb(r.peak_rss_mb),
                r.gpu_mem_mb
                    .map(|g| format!(", GPU {g:.0} MiB"))
                    .unwrap_or_default(),
                r.first_loss,
                r.first_grad_norm,
                r.graph_nodes
            );
            emit(a.m.json, &r, &line)
        }
        BenchCommand::Sae(a) => {
            if a.n < 2 || a.dim == 0 || a.latents == 0 || a.k == 0 || a.k > a.latents {
                bail!("need --n ≥ 2, --dim ≥ 1 and 1 ≤ --k ≤ --latents");
            }
            let (x, y) = sae_data(a.n, a.dim, a.latents, a.seed);
            if let Some(p) = &a.save_data {
                save_sae_data(p, &x, &y, a.n, a.dim)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            let r = sae(&x, &y, a.dim, a.latents, a.k, a.epochs)?;
            let line = format!(
                "sae n {} dim {} M {} K {} epochs {}: {:.2} s, {:.0} samples/s",
                r.n, r.dim, r.latents, r.k, r.epochs, r.seconds, r.samples_per_s
            );
            emit(a.json, &r, &line)
        }
        BenchCommand::Dissect(a) => {
            if !(a.prior_scale > 0.0 && a.prior_scale.is_finite()) {
                bail!("--prior-scale must be positive, got {}", a.prior_scale);
            }
            let data = dissect_data(a.pairs, a.factors, a.prior_scale, a.seed);
            if let Some(p) = &a.save_data {
                save_dissect_data(p, &data).with_context(|| format!("writing {}", p.display()))?;
            }
            let sampler = match a.sampler {
                SamplerArg::Nuts => DissectSampler::Nuts,
                SamplerArg::Laplace => DissectSampler::Laplace,
            };
            let r = dissect(&data, sampler, a.iters)?;
            let line = format!(
                "dissect {} pairs x {} factors, {:?}, b = {}: {:.3} s per fit",
                r.pairs, r.factors, r.sampler, r.prior_scale, r.s_per_fit
            );
            emit(a.json, &r, &line)
        }
        BenchCommand::Matmul(a) => {
            let shapes = match &a.shapes {
                Some(s) => parse_shapes(s)?,
                None => MATMUL_SHAPES.to_vec(),
            };
            let r = matmul(a.m, &shapes, a.iters)?;
            let mut line = format!(
                "matmul f32 cpu, {} threads, median of {}, path {} ({}):",
                r.threads, r.iters, r.cpu_path, r.cpu_features
            );
            for p in &r.peaks {
                line.push_str(&format!(
                    "\n  peak {}: {:.1} GFLOP/s per thread (x {} threads)",
                    p.path, p.gflops_per_thread, r.threads
                ));
            }
            for row in &r.rows {
                line.push_str(&format!(
                    "\n  m {:4} k {:5} n {:6}: candle {:8.3} ms {:6.1} GFLOP/s",
                    row.m, row.k, row.n, row.candle_ms, row.candle_gflops
                ));
                if let (Some(ms), Some(g), Some(d)) =
                    (row.packed_ms, row.packed_gflops, row.max_abs_diff)
                {
                    line.push_str(&format!(
                        " | packed {ms:8.3} ms {g:6.1} GFLOP/s ({:.2}x, max diff {d:.1e})",
                        row.candle_ms / ms
                    ));
                }
                for p in &row.paths {
                    line.push_str(&format!(
                        "\n      {:8} {:8.3} ms {:6.1} GFLOP/s, {:4.0}% of peak",
                        p.path,
                        p.ms,
                        p.gflops,
                        100.0 * p.fraction_of_peak
                    ));
                }
            }
            emit(a.json, &r, &line)
        }
    }
}

fn load(a: &ModelArgs) -> anyhow::Result<Model> {
    let mut opts = LoadOptions::parse(&a.device, &a.dtype)?;
    let block = parse_block_type(&a.weights);
    if let Some(spec) = &a.random {
        return Ok(match block {
            Some(t) => {
                if !opts.device.is_cpu() || opts.dtype != candle_core::DType::F32 {
                    bail!(
                        "--weights {}: quantized weights run on the CPU in f32",
                        a.weights
                    );
                }
                random_quantized_model(spec, t, 0)?
            }
            None => {
                WeightStorage::parse(&a.weights)?;
                random_model(spec, &opts.device, opts.dtype, 0)?
            }
        });
    }
    if block.is_some() {
        bail!(
            "--weights {}: a block type only applies to --random models (a file keeps its own \
             types: use auto, quantized or f32)",
            a.weights
        );
    }
    opts.weights = WeightStorage::parse(&a.weights)?;
    let path = crate::paths::resolve_model_arg(a.model.as_deref())?;
    Model::load(&path, &opts).with_context(|| format!("loading {}", path.display()))
}

fn mb(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.0} MiB"))
        .unwrap_or_else(|| "n/a".into())
}

fn emit<T: Serialize>(json: bool, r: &T, line: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!("{line}");
    }
    Ok(())
}

/// The `STEERLAB_PROFILE=1` table, on stderr (stdout keeps the one summary or JSON line).
fn print_sections(rows: &[ProfileRow]) {
    for row in rows {
        eprintln!(
            "  {:<40} {:>5.1} calls  issue {:>8.2} ms  done {:>8.2} ms  (per step)",
            row.section, row.calls_per_step, row.issue_ms_per_step, row.total_ms_per_step
        );
    }
}
