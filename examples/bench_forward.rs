//! Forward-pass throughput (tokens/s) of the engine on a model (default: the embedded
//! SmolLM2-135M-Instruct), plain and with a steering vector added mid-network.
//! Not a test. Compare with `scripts/bench_forward_torch.py`, which runs transformers on the
//! same weights and the same token ids. Run in release:
//!     cargo run --release --example bench_forward -- [--model PATH] [--batch 4] [--seq 128] [--iters 5] [--device cpu|cuda] [--dtype f32|bf16]
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;
use steerlab::cli::bench::bench_ids;
use steerlab::model::{Batch, HookPoint, Hooks, LoadOptions, Model, Positions};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let num = |name: &str, default: usize| -> anyhow::Result<usize> {
        Ok(arg(&args, name)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (batch, seq, iters) = (num("--batch", 4)?, num("--seq", 128)?, num("--iters", 5)?);
    let path = match arg(&args, "--model") {
        Some(p) => PathBuf::from(p),
        None => steerlab::paths::require_default(steerlab::paths::default_model_path(), "model")?,
    };
    let opts = LoadOptions::parse(
        &arg(&args, "--device").unwrap_or("cpu".into()),
        &arg(&args, "--dtype").unwrap_or("f32".into()),
    )?;
    let t0 = Instant::now();
    let model = Model::load(&path, &opts)?;
    println!(
        "loaded {} in {:.2} s",
        model.name(),
        t0.elapsed().as_secs_f64()
    );
    let info = model.info();
    let ids = bench_ids(batch, seq, info.vocab_size);
    let b = Batch::from_sequences(&ids, 0, model.device())?;
    let mid = model.n_layers() / 2;
    let v = Tensor::randn(0f32, 1.0, model.hidden_size(), model.device())?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "model {} ({} layers, hidden {}), batch {batch} x {seq} tokens, {threads} threads",
        info.name, info.n_layers, info.hidden_size
    );
    for (label, hooked) in [
        ("plain", false),
        ("steered (add at resid_post of middle layer)", true),
    ] {
        let mut hooks = Hooks::new();
        if hooked {
            hooks.add(HookPoint::ResidPost(mid), v.clone(), 4.0, Positions::All);
        }
        model.forward(&b, &mut hooks)?; // warm-up
        let mut times = Vec::new();
        for _ in 0..iters {
            let t = Instant::now();
            let logits = model.forward(&b, &mut hooks)?;
            logits.device().synchronize()?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{label:45} median {:.3} s  {:.0} tokens/s",
            median,
            (batch * seq) as f64 / median
        );
    }
    Ok(())
}
