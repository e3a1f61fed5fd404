//! Benchmark workloads behind `steerlab bench`: forward throughput, one BiPO training step,
//! SAE training throughput and one factor-dissection fit, each on inputs that a PyTorch /
//! NumPyro twin script (`scripts/bench_*.py`) can rebuild exactly (same token-id pattern, same
//! random-init shapes, data files written by [`save_sae_data`] and [`save_dissect_data`]).
//!
//! Timings are wall-clock medians over `iters` runs after a warm-up. This module only measures:
//! it must not change any algorithm, and nothing here is used by training or the app.
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::dissect::nuts::{sample, NutsConfig};
use crate::dissect::posterior::Posterior;
use crate::jobs::NoProgress;
use crate::model::{Batch, HookPoint, Hooks, Model, ModelError, Positions};
use crate::sae::{train_sae, SaeConfig};
use crate::steer::bipo::{BipoConfig, BipoProblem, PairTokens, TrainData};

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

/// Random-init model shapes, named `family:size` (`--random`).
pub const RANDOM_SHAPES: &[&str] = &["llama:smollm2", "qwen2:0.5b", "qwen2:1.5b", "llama:tiny"];

/// The HF-style `config.json` of a random-init shape (see [`RANDOM_SHAPES`]). The same dims are
/// hard-coded in `scripts/bench_common.py`.
pub fn random_config(spec: &str) -> Result<serde_json::Value> {
    // (model_type, hidden, intermediate, layers, heads, kv heads, vocab, rope theta, eps)
    let (mt, h, i, l, nh, nkv, v, theta, eps) = match spec.trim().to_ascii_lowercase().as_str() {
        "llama:smollm2" | "llama:smollm2-135m" => {
            ("llama", 576, 1536, 30, 9, 3, 49152, 100000.0, 1e-5)
        }
        "qwen2:0.5b" => ("qwen2", 896, 4864, 24, 14, 2, 151936, 1e6, 1e-6),
        "qwen2:1.5b" => ("qwen2", 1536, 8960, 28, 12, 2, 151936, 1e6, 1e-6),
        "llama:tiny" => ("llama", 64, 128, 4, 4, 2, 256, 10000.0, 1e-5),
        other => {
            return Err(BenchError::Invalid(format!(
                "unknown random shape `{other}` (use one of {})",
                RANDOM_SHAPES.join(", ")
            )))
        }
    };
    Ok(serde_json::json!({
        "model_type": mt,
        "hidden_size": h,
        "intermediate_size": i,
        "num_hidden_layers": l,
        "num_attention_heads": nh,
        "num_key_value_heads": nkv,
        "vocab_size": v,
        "rope_theta": theta,
        "rms_norm_eps": eps,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
    }))
}

/// A model of the shape `spec` with random weights (normal, sd 0.02; norms 1), created directly
/// on `device` in `dtype`, so a GPU run needs no download.
pub fn random_model(spec: &str, device: &Device, dtype: DType, seed: u64) -> Result<Model> {
    let cfg = random_config(spec)?;
    let g = |k: &str| cfg[k].as_u64().unwrap_or(0) as usize;
    let (h, inter, layers, v) = (
        g("hidden_size"),
        g("intermediate_size"),
        g("num_hidden_layers"),
        g("vocab_size"),
    );
    let d = h / g("num_attention_heads");
    let (q, kv) = (g("num_attention_heads") * d, g("num_key_value_heads") * d);
    let qkv_bias = cfg["model_type"] == "qwen2";
    // The CPU device cannot be seeded: draw CPU weights from a seeded host generator.
    let host = std::cell::RefCell::new(rand::rngs::StdRng::seed_from_u64(seed));
    if !device.is_cpu() {
        device.set_seed(seed)?;
    }
    let rand = |shape: &[usize]| -> Result<Tensor> {
        let t = if device.is_cpu() {
            let n: usize = shape.iter().product();
            let mut rng = host.borrow_mut();
            let v: Vec<f32> = (0..n)
                .map(|_| 0.02 * rng.sample::<f32, _>(rand_distr::StandardNormal))
                .collect();
            Tensor::from_vec(v, shape, device)?
        } else {
            Tensor::randn(0f32, 0.02, shape, device)?
        };
        Ok(t.to_dtype(dtype)?)
    };
    let ones = |n: usize| -> Result<Tensor> { Ok(Tensor::ones(n, dtype, device)?) };
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("model.embed_tokens.weight".into(), rand(&[v, h])?);
    t.insert("model.norm.weight".into(), ones(h)?);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        t.insert(format!("{p}.input_layernorm.weight"), ones(h)?);
        t.insert(format!("{p}.post_attention_layernorm.weight"), ones(h)?);
        for (name, out, inp) in [
            ("self_attn.q_proj", q, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q),
            ("mlp.gate_proj", inter, h),
            ("mlp.up_proj", inter, h),
            ("mlp.down_proj", h, inter),
        ] {
            t.insert(format!("{p}.{name}.weight"), rand(&[out, inp])?);
            if qkv_bias && name != "self_attn.o_proj" && name.starts_with("self_attn") {
                t.insert(format!("{p}.{name}.bias"), rand(&[out])?);
            }
        }
    }
    Ok(Model::from_parts(
        &cfg,
        t,
        None,
        &format!("random:{spec}"),
        device,
        dtype,
    )?)
}

/// The token ids every forward benchmark uses (no tokenizer involved); the same pattern is in
/// `scripts/bench_common.py`: `ids[b][t] = (b·131 + t·7919 + 13) mod vocab`.
pub fn bench_ids(batch: usize, seq: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| ((b * 131 + t * 7919 + 13) % vocab) as u32)
                .collect()
        })
        .collect()
}

/// The BiPO benchmark pairs: `batch` pairs of total length `seq` (prompt `seq/2` tokens, chosen
/// and rejected responses `seq - seq/2` tokens each), ids as in `scripts/bench_common.py`.
pub fn bench_pairs(batch: usize, seq: usize, vocab: usize) -> Vec<PairTokens> {
    let p = (seq / 2).max(1);
    let r = seq.saturating_sub(p).max(1);
    let tok = |x: usize| (x % vocab) as u32;
    (0..batch)
        .map(|b| PairTokens {
            prompt: (0..p).map(|t| tok(b * 131 + t * 7919 + 13)).collect(),
            chosen: (0..r).map(|t| tok(b * 137 + t * 4099 + 29)).collect(),
            rejected: (0..r).map(|t| tok(b * 139 + t * 6151 + 31)).collect(),
        })
        .collect()
}

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

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        f64::NAN
    } else {
        xs[xs.len() / 2]
    }
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

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
    /// Median milliseconds per pass (logits for every position included).
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
    /// Per-section timings (`STEERLAB_PROFILE=1`; empty otherwise), per iteration.
    pub sections: Vec<ProfileRow>,
}

/// Times `iters` full forward passes (logits at every position) on [`bench_ids`].
pub fn forward(
    model: &Model,
    batch: usize,
    seq: usize,
    iters: usize,
    steered: bool,
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
    model.forward(&b, &mut hooks)?.device().synchronize()?; // warm-up
    let mut times = Vec::with_capacity(iters);
    crate::model::fast::profile::reset(model.device());
    for _ in 0..iters {
        let t = Instant::now();
        let logits = model.forward(&b, &mut hooks)?;
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
        ms_per_iter: med * 1e3,
        tokens_per_s: (batch * seq) as f64 / med,
        peak_rss_mb: peak_rss_mb(),
        gpu_mem_mb: gpu_mem_mb(model.device()),
        threads: threads(),
        cpu_gemm: model.device().is_cpu() && crate::model::fast::cpu_matmul::enabled(),
        cpu_fused: model.device().is_cpu() && crate::model::fast::cpu_infer::enabled(),
        sections,
    })
}

/// The `STEERLAB_PROFILE=1` section table since the last reset, averaged over `iters`.
fn profile_rows(iters: usize) -> Vec<ProfileRow> {
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
    /// One row per shape.
    pub rows: Vec<MatmulRow>,
}

/// Times `y = x W^T` for each `(k, n)` in `shapes` with `m` rows, candle against the packed
/// kernel, alternating the two sides each iteration (one warm-up call each).
pub fn matmul(m: usize, shapes: &[(usize, usize)], iters: usize) -> Result<MatmulResult> {
    use crate::model::fast::cpu_matmul::{self, PackedLinear};
    if m == 0 || iters == 0 || shapes.iter().any(|&(k, n)| k == 0 || n == 0) {
        return Err(BenchError::Invalid(
            "m, iters and every k and n must be at least 1".into(),
        ));
    }
    let dev = Device::Cpu;
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
        let mut diff = None;
        if let Some(p) = &packed {
            p.matmul(&xs, m, &mut out)?;
            let got = Tensor::from_slice(&out, (m, n), &dev)?;
            diff = Some((got - &want)?.abs()?.max_all()?.to_scalar::<f32>()? as f64);
        }
        let (mut tc, mut tp) = (Vec::new(), Vec::new());
        for _ in 0..iters {
            let t = Instant::now();
            let y = x.matmul(&w.t()?)?;
            tc.push(t.elapsed().as_secs_f64());
            drop(y);
            if let Some(p) = &packed {
                let t = Instant::now();
                p.matmul(&xs, m, &mut out)?;
                tp.push(t.elapsed().as_secs_f64());
            }
        }
        let flop = 2.0 * (m * k * n) as f64;
        let c = median(tc);
        let pm = packed.as_ref().map(|_| median(tp));
        rows.push(MatmulRow {
            m,
            k,
            n,
            candle_ms: c * 1e3,
            candle_gflops: flop / c / 1e9,
            packed_ms: pm.map(|t| t * 1e3),
            packed_gflops: pm.map(|t| flop / t / 1e9),
            max_abs_diff: diff,
        });
    }
    Ok(MatmulResult {
        bench: "matmul",
        iters,
        threads: threads(),
        rows,
    })
}

/// Time of one BiPO optimiser step, split into forward and backward.
#[derive(Debug, Clone, Serialize)]
pub struct BipoResult {
    /// `"bipo"`.
    pub bench: &'static str,
    /// Model name.
    pub model: String,
    /// Device.
    pub device: String,
    /// Dtype.
    pub dtype: String,
    /// Preference pairs per step (2 × batch sequences).
    pub batch: usize,
    /// Tokens per sequence (prompt seq/2, response seq − seq/2).
    pub seq: usize,
    /// Steered block (0-based; the vector is added at its output).
    pub layer: usize,
    /// Ops of the gradient path (`fused`, `composed`, `fused-attention` or `block`).
    pub grad_ops: String,
    /// Blocks run per step (`layer + 1 ..`), the lower ones being cached.
    pub blocks_per_step: usize,
    /// Timed steps.
    pub iters: usize,
    /// One-off cost of caching the lower blocks' output and the reference log-probs (ms).
    pub cache_ms: f64,
    /// Median steered forward + loss (ms).
    pub forward_ms: f64,
    /// Median backward into the vector (ms).
    pub backward_ms: f64,
    /// Median whole step: forward, backward, AdamW update (ms).
    pub ms_per_step: f64,
    /// Peak resident memory of the process (MiB).
    pub peak_rss_mb: Option<f64>,
    /// GPU memory held after the run (MiB), on CUDA.
    pub gpu_mem_mb: Option<f64>,
    /// CPU threads available.
    pub threads: usize,
    /// Loss of the untimed first step (vector at zero): compare `--grad-ops fused` with
    /// `composed` on the same model to check the fused backward on this device.
    pub first_loss: f64,
    /// L2 norm of the first step's gradient with respect to the vector.
    pub first_grad_norm: f64,
    /// The first step's gradient, first 4 coordinates.
    pub first_grad_head: Vec<f64>,
    /// Nodes of the first step's autograd graph (each costs the backward a zero-filled
    /// gradient buffer and an accumulation besides its own gradient kernels).
    pub graph_nodes: usize,
    /// Per-section timings of the timed steps, with `STEERLAB_PROFILE=1` (empty otherwise;
    /// the synchronisations it adds slow the step down).
    pub sections: Vec<ProfileRow>,
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

/// Times BiPO steps exactly as [`crate::steer::bipo::train_bipo`] runs them (cached lower
/// blocks and reference log-probs, DPO loss, backward into one vector at `layer`, AdamW), on
/// `batch` pairs from [`bench_pairs`]; the direction `d` alternates between steps.
pub fn bipo(
    model: &Model,
    batch: usize,
    seq: usize,
    layer: usize,
    iters: usize,
) -> Result<BipoResult> {
    if batch == 0 || seq < 2 || iters == 0 {
        return Err(BenchError::Invalid(
            "batch and iters must be at least 1, seq at least 2".into(),
        ));
    }
    let info = model.info();
    let data = TrainData::Pairs(bench_pairs(batch, seq, info.vocab_size));
    let cfg = BipoConfig {
        layers: vec![layer],
        eval_batch_size: 2 * batch,
        ..Default::default()
    };
    let t0 = Instant::now();
    let problem = BipoProblem::new(model, &data, &cfg, &NoProgress)?;
    model.device().synchronize()?;
    let cache_ms = t0.elapsed().as_secs_f64() * 1e3;
    let master = crate::steer::bipo::master_dtype(model.dtype());
    let var = Var::zeros(model.hidden_size(), master, model.device())?;
    let mut opt = AdamW::new(
        vec![var.clone()],
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let idx: Vec<usize> = (0..batch).collect();
    let (mut fw, mut bw, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut first_loss, mut first_grad_norm, mut first_grad_head) = (f64::NAN, f64::NAN, vec![]);
    let mut graph_nodes = 0;
    for it in 0..=iters {
        let d = if it % 2 == 0 { 1.0 } else { -1.0 };
        if it == 1 {
            // Section timings (STEERLAB_PROFILE=1) over the timed steps only.
            crate::model::fast::profile::reset(model.device());
        }
        let t = Instant::now();
        let (loss, _, _) = problem.batch_loss(&[var.as_tensor().clone()], &idx, d, 0.0)?;
        let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?; // synchronises
        let tf = t.elapsed().as_secs_f64();
        if !lv.is_finite() {
            return Err(BenchError::Invalid(format!("loss became {lv}")));
        }
        if it == 0 {
            graph_nodes = loss.sorted_nodes().len();
        }
        crate::model::fast::profile::mark(model.device(), "fwd: rest (hooks, head prep, loss)");
        let grads = loss.backward()?;
        crate::model::fast::profile::mark(model.device(), "bwd: autograd");
        let Some(g) = grads.get(var.as_tensor()) else {
            return Err(BenchError::Invalid(
                "no gradient reached the steering vector".into(),
            ));
        };
        model.device().synchronize()?;
        if it == 0 {
            let g = g.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            first_loss = lv;
            first_grad_norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            first_grad_head = g.iter().take(4).copied().collect();
        }
        let tb = t.elapsed().as_secs_f64();
        opt.step(&grads)?;
        model.device().synchronize()?;
        crate::model::fast::profile::mark(model.device(), "adamw");
        let ta = t.elapsed().as_secs_f64();
        if it > 0 {
            // iteration 0 is the warm-up
            fw.push(tf * 1e3);
            bw.push((tb - tf) * 1e3);
            all.push(ta * 1e3);
        }
    }
    let sections = profile_rows(iters);
    Ok(BipoResult {
        bench: "bipo",
        sections,
        model: info.name,
        device: info.device,
        dtype: info.dtype,
        batch,
        seq,
        layer,
        grad_ops: model.grad_ops().name().to_string(),
        blocks_per_step: model.n_layers() - layer - 1,
        iters,
        cache_ms,
        forward_ms: median(fw),
        backward_ms: median(bw),
        ms_per_step: median(all),
        peak_rss_mb: peak_rss_mb(),
        gpu_mem_mb: gpu_mem_mb(model.device()),
        threads: threads(),
        first_loss,
        first_grad_norm,
        first_grad_head,
        graph_nodes,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_model_runs_and_pairs_have_the_requested_length() {
        let m = random_model("llama:tiny", &Device::Cpu, DType::F32, 1).unwrap();
        assert_eq!(m.n_layers(), 4);
        let pairs = bench_pairs(2, 9, m.info().vocab_size);
        assert_eq!(pairs[0].prompt.len() + pairs[0].chosen.len(), 9);
        assert_ne!(pairs[0].chosen, pairs[0].rejected);
        let r = bipo(&m, 2, 9, 1, 1).unwrap();
        assert!(r.ms_per_step > 0.0 && r.blocks_per_step == 2);
        assert!(random_config("gpt2:small").is_err());
    }
}
