//! `steerlab bench bipo`: one BiPO optimiser step (steered forward, DPO loss, backward into one
//! vector, AdamW), timed as the trainer runs it. Measures only; the step itself is
//! `crate::steer::bipo`'s.
use std::time::Instant;

use candle_core::{DType, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;

use super::inputs::bench_pairs;
use super::measure::{
    gpu_mem_mb, median, peak_rss_mb, profile_rows, threads, BenchError, ProfileRow, Result,
};
use crate::jobs::NoProgress;
use crate::model::Model;
use crate::steer::bipo::{BipoConfig, BipoProblem, TrainData};

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
    /// The instruction-set path of the CPU kernels
    /// ([`crate::model::fast::cpu_path::current`]); `None` on a GPU.
    pub cpu_path: Option<String>,
    /// Per-section timings of the timed steps, with `STEERLAB_PROFILE=1` (empty otherwise;
    /// the synchronisations it adds slow the step down).
    pub sections: Vec<ProfileRow>,
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
        cpu_path: model
            .device()
            .is_cpu()
            .then(|| crate::model::fast::cpu_path::current().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::inputs::{bench_pairs, random_config, random_model};
    use candle_core::Device;

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
