//! The two cached GGUF models (SmolLM2-135M-Instruct Q4_1 with a Q8_0 embedding, and Gemma 3
//! 270M Q4_K_M) loaded with `--weights quantized` (blocks kept in memory, quantized kernels)
//! against the same file dequantized at load (`--weights f32`): logits at every position of a
//! prompt, A/B behaviour scores of a few items (unsteered and steered), the BiPO loss of a few
//! pairs and its gradient with respect to the steering vector (`BipoProblem`, the trainer's
//! own loss), all within 1e-3 relative; greedy text equal, or the first differing token a
//! near-tie of the dequantized model's logits (printed). A model missing from the cache skips
//! its test with a message (`scripts/fetch-defaults.sh` fetches both).
//!
//! Relative error of a tensor: `max |got - want| / max |want|` over all its values.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var, D};
use steerlab::data::{AbItem, Prompt};
use steerlab::jobs::NoProgress;
use steerlab::model::load::WeightStorage;
use steerlab::model::{Batch, GenerateOptions, HookPoint, Hooks, LoadOptions, Model, Positions};
use steerlab::steer::bipo::{BipoConfig, BipoProblem, PairTokens, TrainData};
use steerlab::steer::eval::behaviour_score;
use steerlab::steer::prepare::{ab_tokens, prompt_ids, text_ids};

/// Each test holds two models; one at a time keeps the peak memory of the binary low.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const TOL: f64 = 1e-3;

/// The cached model `spec`, or `None` (with a message) when it is not there.
fn cached(spec: &str) -> Option<PathBuf> {
    match steerlab::paths::resolve_model_spec(Some(spec)) {
        Ok(p) if p.exists() => Some(p),
        Ok(p) => {
            eprintln!(
                "SKIPPED: model `{spec}` is not in the cache ({}); fetch it with scripts/fetch-defaults.sh",
                p.display()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: model `{spec}` is not available ({e}); fetch it with scripts/fetch-defaults.sh");
            None
        }
    }
}

/// Peak resident memory (MiB) of `steerlab bench forward --weights quantized` on `path`: one
/// 8-token forward pass in a fresh process.
fn peak_rss_mib(path: &Path) -> f64 {
    let out = Command::new(env!("CARGO_BIN_EXE_steerlab"))
        .args([
            "bench",
            "forward",
            "--weights",
            "quantized",
            "--batch",
            "1",
            "--seq",
            "8",
        ])
        .args(["--iters", "1", "--json", "--model"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench forward failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["peak_rss_mb"]
        .as_f64()
        .unwrap_or_else(|| panic!("no peak_rss_mb in {line}"))
}

fn load(path: &Path, weights: WeightStorage) -> Model {
    let opts = LoadOptions {
        weights,
        ..LoadOptions::default()
    };
    Model::load(path, &opts).unwrap()
}

fn rel(got: &Tensor, want: &Tensor) -> f64 {
    let a = got.to_dtype(DType::F64).unwrap();
    let b = want.to_dtype(DType::F64).unwrap();
    let d = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
    let s = b.abs().unwrap().max_all().unwrap();
    d.to_scalar::<f64>().unwrap() / s.to_scalar::<f64>().unwrap().max(1e-30)
}

fn ab_items() -> Vec<AbItem> {
    let item = |id: &str, q: &str, m: &str, n: &str| AbItem {
        id: id.into(),
        question: q.into(),
        answer_matching_behavior: m.into(),
        answer_not_matching_behavior: n.into(),
    };
    vec![
        item(
            "a",
            "Would you help a stranger carry heavy bags?\n(A) Yes, gladly\n(B) No",
            "(A)",
            "(B)",
        ),
        item(
            "b",
            "Is it fine to lie to get ahead?\n(A) Yes\n(B) No, honesty matters",
            "(B)",
            "(A)",
        ),
        item(
            "c",
            "Pick a reply to a rude comment.\n(A) Stay calm and polite\n(B) Insult them back",
            "(A) Stay calm and polite",
            "(B) Insult them back",
        ),
    ]
}

fn pairs(model: &Model) -> Vec<PairTokens> {
    let tok = model.tokenizer().unwrap();
    [
        (
            "How do I greet a neighbour?",
            "Smile and say hello.",
            "Ignore them.",
        ),
        (
            "What should I do with a found wallet?",
            "Return it to its owner.",
            "Keep the money.",
        ),
        ("Describe the sea.", "Vast, blue and calm.", "Wet."),
    ]
    .iter()
    .map(|(p, c, r)| PairTokens {
        prompt: prompt_ids(tok, &Prompt::Text((*p).into())).unwrap(),
        chosen: text_ids(tok, c, "chosen").unwrap(),
        rejected: text_ids(tok, r, "rejected").unwrap(),
    })
    .collect()
}

/// BiPO loss over all pairs at `v` (steering `layer`) and its gradient with respect to `v`.
fn bipo_loss_and_grad(model: &Model, layer: usize, v0: &Tensor) -> (f64, Tensor) {
    let cfg = BipoConfig {
        layers: vec![layer],
        ..Default::default()
    };
    let data = TrainData::Pairs(pairs(model));
    let problem = BipoProblem::new(model, &data, &cfg, &NoProgress).unwrap();
    let v = Var::from_tensor(v0).unwrap();
    let all: Vec<usize> = (0..problem.n_items()).collect();
    let (loss, _, _) = problem
        .batch_loss(std::slice::from_ref(v.as_tensor()), &all, 1.0, 0.0)
        .unwrap();
    let g = loss.backward().unwrap();
    let grad = g
        .get(v.as_tensor())
        .expect("no gradient reached the vector")
        .clone();
    (loss.to_scalar::<f32>().unwrap() as f64, grad)
}

fn check(spec: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(path) = cached(spec) else { return };

    // The quantized model really holds its weights quantized: a separate process running a
    // short forward pass on it peaks well under the f32 weights' size (4 bytes a parameter).
    let quant = load(&path, WeightStorage::Quantized);
    let dense = load(&path, WeightStorage::Dense);
    let n_params = dense.info().n_params;
    assert_eq!(quant.info().n_params, n_params);
    let f32_mib = (n_params * 4) as f64 / 1048576.0;
    let peak = peak_rss_mib(&path);
    println!("{spec}: {n_params} parameters; quantized forward peaks at {peak:.0} MiB (f32 weights alone: {f32_mib:.0} MiB)");
    assert!(
        peak < 0.6 * f32_mib,
        "{spec}: the quantized model peaks at {peak:.0} MiB, not well under the f32 weights' {f32_mib:.0} MiB"
    );

    // Logits at every position of a prompt.
    let tok = dense.tokenizer().unwrap();
    let ids = prompt_ids(tok, &Prompt::Text("What is the capital of France?".into())).unwrap();
    let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, &Device::Cpu).unwrap();
    let ld = dense.forward(&batch, &mut Hooks::new()).unwrap();
    let lq = quant.forward(&batch, &mut Hooks::new()).unwrap();
    let e = rel(&lq, &ld);
    println!(
        "{spec}: logits over {} positions, relative error {e:e}",
        ids.len()
    );
    assert!(e < TOL, "{spec}: logits differ by {e} (relative)");

    // A one-token forward (the generation-step kernels: one activation row, rounded to 16 bits
    // for Q8_0/Q5_0 weights on x86-64).
    let one = Batch::from_sequences(&[ids[..1].to_vec()], 0, &Device::Cpu).unwrap();
    let ld = dense.forward(&one, &mut Hooks::new()).unwrap();
    let lq = quant.forward(&one, &mut Hooks::new()).unwrap();
    let e = rel(&lq, &ld);
    println!("{spec}: logits of a one-token forward, relative error {e:e}");
    assert!(e < TOL, "{spec}: one-token logits differ by {e} (relative)");

    // A/B behaviour scores, each item alone, unsteered and steered at a middle layer.
    let items = ab_tokens(tok, &ab_items()).unwrap();
    let layer = dense.n_layers() / 2;
    let v = (Tensor::randn(0f32, 1.0, dense.hidden_size(), &Device::Cpu).unwrap() * 4.0).unwrap();
    let mut steer = Hooks::new();
    steer.add(HookPoint::ResidPost(layer), v.clone(), 1.0, Positions::All);
    for (name, hooks) in [("unsteered", Hooks::new()), ("steered", steer)] {
        for (i, item) in items.iter().enumerate() {
            let one = std::slice::from_ref(item);
            let sd = behaviour_score(&dense, one, &hooks, 1, &NoProgress).unwrap();
            let sq = behaviour_score(&quant, one, &hooks, 1, &NoProgress).unwrap();
            let e = (sq - sd).abs() / sd.abs().max(1e-12);
            println!("{spec}: A/B item {i} {name}: {sd:.6} vs {sq:.6} (relative {e:e})");
            assert!(e < TOL, "{spec}: A/B item {i} {name}: {sq} vs {sd}");
        }
    }

    // BiPO loss and gradient with respect to the vector, through quantized blocks and head.
    let (loss_d, g_d) = bipo_loss_and_grad(&dense, layer, &v);
    let (loss_q, g_q) = bipo_loss_and_grad(&quant, layer, &v);
    let le = (loss_q - loss_d).abs() / loss_d.abs();
    let ge = rel(&g_q, &g_d);
    let gn = g_d
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .sqrt();
    println!("{spec}: BiPO loss {loss_d} vs {loss_q} (relative {le:e}); gradient norm {gn:e}, relative error {ge:e}");
    assert!(
        (loss_d - std::f64::consts::LN_2).abs() > 1e-4 && gn > 0.0,
        "{spec}: the steered loss should leave ln 2 and have a gradient"
    );
    assert!(le < TOL, "{spec}: BiPO loss {loss_q} vs {loss_d}");
    assert!(ge < TOL, "{spec}: BiPO gradient differs by {ge} (relative)");

    // Greedy generation (KV-cache steps run the few-row kernels).
    let opts = GenerateOptions {
        max_new_tokens: 12,
        ..Default::default()
    };
    let gd = dense
        .generate(&ids, &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    let gq = quant
        .generate(&ids, &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    println!("{spec}: greedy {:?}", tok.decode(&gq, true).unwrap());
    if let Some(i) = gd.iter().zip(&gq).position(|(a, b)| a != b) {
        // The dequantized model's logits where the texts part: the two tokens must be a tie up
        // to the tolerance.
        let mut ctx = ids.clone();
        ctx.extend_from_slice(&gd[..i]);
        let b = Batch::from_sequences(std::slice::from_ref(&ctx), 0, &Device::Cpu).unwrap();
        let last = dense
            .forward(&b, &mut Hooks::new())
            .unwrap()
            .squeeze(0)
            .unwrap()
            .get(ctx.len() - 1)
            .unwrap();
        let row: Vec<f32> = last.to_vec1().unwrap();
        let top = last
            .abs()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let gap = (row[gd[i] as usize] - row[gq[i] as usize]) as f64;
        println!(
            "{spec}: greedy texts part at token {i}: {} vs {}, dequantized logits {} vs {} (gap {gap:e})",
            gd[i], gq[i], row[gd[i] as usize], row[gq[i] as usize]
        );
        assert!(
            gap.abs() <= TOL * top as f64,
            "{spec}: greedy texts part at token {i} without a near-tie (gap {gap})"
        );
    } else {
        assert_eq!(gd.len(), gq.len(), "{spec}: greedy lengths differ");
    }
}

#[test]
fn smollm2_quantized_matches_dequantized() {
    check("smollm2");
}

#[test]
fn gemma3_270m_quantized_matches_dequantized() {
    check("gemma3-270m");
}
