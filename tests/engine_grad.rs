//! Gradients into added vectors (checked against central finite differences), agreement of the
//! differentiable and fused paths, partial forwards and steering semantics.
use candle_core::{DType, Device, Tensor, Var};
use steerlab::model::{Batch, GenerateOptions, HookPoint, Hooks, Model, Positions};
use steerlab::testing::{load_fixture as load, max_abs, max_abs_diff};

fn batch() -> Batch {
    Batch::from_sequences(
        &[vec![1, 17, 5, 88, 23, 42], vec![1, 70, 12, 33]],
        0,
        &Device::Cpu,
    )
    .unwrap()
    .with_prompt_lens(vec![3, 2])
    .unwrap()
}

/// A fixed scalar of the logits: sum(logits * w) over real (unpadded) positions.
fn objective(logits: &Tensor, w: &Tensor) -> Tensor {
    (logits * w).unwrap().sum_all().unwrap()
}

fn weights_for(model: &Model, b: &Batch, dtype: DType) -> Tensor {
    let (bs, t, v) = (b.batch_size(), b.seq_len(), model.config().vocab_size);
    let w = Tensor::randn(0f64, 1.0, (bs, t, v), &Device::Cpu).unwrap();
    let m = b
        .attention_mask()
        .to_dtype(DType::F64)
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    w.broadcast_mul(&m).unwrap().to_dtype(dtype).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// Checks d objective / d vector at `point` against central differences on a few coordinates.
fn check_gradient(arch: &str, point: HookPoint, dtype: DType, eps: f64, tol: f64) {
    let model = load(arch, dtype);
    let b = batch();
    let h = model.hidden_size();
    let w = weights_for(
        &model,
        &b,
        if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        },
    );
    let v0 = (Tensor::randn(0f64, 0.3, h, &Device::Cpu).unwrap())
        .to_dtype(dtype)
        .unwrap();
    let var = Var::from_tensor(&v0).unwrap();
    let mut hooks = Hooks::new();
    hooks.add(
        point,
        var.as_tensor().clone(),
        1.5,
        Positions::GeneratedOnly,
    );
    let loss = objective(&model.forward(&b, &mut hooks).unwrap(), &w);
    let grads = loss.backward().unwrap();
    let g: Vec<f64> = grads
        .get(var.as_tensor())
        .unwrap_or_else(|| panic!("{arch} {point}: no gradient reached the vector"))
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap();
    let gnorm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(gnorm > 0.0, "{arch} {point}: zero gradient");
    let v0f: Vec<f64> = v0.to_dtype(DType::F64).unwrap().to_vec1().unwrap();
    let eval = |v: &[f64]| -> f64 {
        let t = Tensor::new(v, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let mut hooks = Hooks::new();
        hooks.add(point, t, 1.5, Positions::GeneratedOnly);
        scalar(&objective(&model.forward(&b, &mut hooks).unwrap(), &w))
    };
    for i in [0, 7, h / 2, h - 1] {
        let mut plus = v0f.clone();
        plus[i] += eps;
        let mut minus = v0f.clone();
        minus[i] -= eps;
        let fd = (eval(&plus) - eval(&minus)) / (2.0 * eps);
        let err = (fd - g[i]).abs() / gnorm;
        assert!(
            err < tol,
            "{arch} {point} coord {i}: autograd {} vs finite difference {fd} (rel {err})",
            g[i]
        );
    }
}

#[test]
fn gradient_at_resid_post_0_matches_finite_differences_f64() {
    for arch in [
        "llama",
        "qwen2",
        "qwen3",
        "mistral",
        "gemma2",
        "gemma3",
        "phi3",
        "mixtral",
        "qwen3_moe",
    ] {
        check_gradient(arch, HookPoint::ResidPost(0), DType::F64, 1e-5, 1e-6);
    }
}

#[test]
fn gradient_matches_finite_differences_f32() {
    check_gradient("llama3", HookPoint::ResidPost(0), DType::F32, 1e-2, 2e-2);
}

#[test]
fn gradient_reaches_every_hook_kind() {
    for p in [
        HookPoint::ResidPre(1),
        HookPoint::AttnOut(0),
        HookPoint::MlpOut(1),
        HookPoint::ResidPost(2),
    ] {
        check_gradient("llama", p, DType::F64, 1e-5, 1e-6);
    }
}

#[test]
fn composed_and_fused_paths_agree() {
    for arch in [
        "llama",
        "llama3",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma2",
        "gemma3",
        "phi3",
        "mixtral",
        "qwen3_moe",
    ] {
        let model = load(arch, DType::F32);
        let b = batch();
        let v = Tensor::randn(0f32, 1.0, model.hidden_size(), &Device::Cpu).unwrap();
        let mut fused = Hooks::new();
        fused.add(
            HookPoint::ResidPost(0),
            v.clone(),
            2.0,
            Positions::PromptOnly,
        );
        let mut composed = fused.clone();
        composed.set_force_composed(true);
        let a = model.forward(&b, &mut fused).unwrap();
        let c = model.forward(&b, &mut composed).unwrap();
        let d = max_abs_diff(&a, &c);
        assert!(d < 1e-4, "{arch}: fused vs composed max diff {d}");
    }
}

#[test]
fn forward_from_a_cached_residual_equals_the_full_forward() {
    let model = load("llama", DType::F64);
    let b = batch();
    let w = weights_for(&model, &b, DType::F64);
    let v = Var::from_tensor(&Tensor::randn(0f64, 0.5, model.hidden_size(), &Device::Cpu).unwrap())
        .unwrap();
    let mut full = Hooks::new();
    full.add(
        HookPoint::ResidPost(0),
        v.as_tensor().clone(),
        1.0,
        Positions::All,
    );
    let loss_full = objective(&model.forward(&b, &mut full).unwrap(), &w);
    let g_full = loss_full
        .backward()
        .unwrap()
        .get(v.as_tensor())
        .unwrap()
        .clone();

    let cached = model.forward_to(1, &b, &mut Hooks::new()).unwrap();
    let mut rest = full.clone();
    let loss_part = objective(&model.forward_from(1, &cached, &b, &mut rest).unwrap(), &w);
    assert!(
        (scalar(&loss_full) - scalar(&loss_part)).abs() < 1e-9 * scalar(&loss_full).abs().max(1.0)
    );
    let g_part = loss_part
        .backward()
        .unwrap()
        .get(v.as_tensor())
        .unwrap()
        .clone();
    let d = scalar(&(g_full - g_part).unwrap().abs().unwrap().max(0).unwrap());
    assert!(d < 1e-9, "gradient differs by {d}");

    // Hooks on the wrong side of the split are refused, not silently ignored.
    let mut early = Hooks::new();
    early.capture(HookPoint::MlpOut(0));
    assert!(model.forward_from(1, &cached, &b, &mut early).is_err());
    assert!(model.forward_to(1, &b, &mut full.clone()).is_err());
}

#[test]
fn prompt_only_addition_equals_editing_the_residual_by_hand() {
    let model = load("qwen2", DType::F32);
    let b = batch();
    let v = Tensor::randn(0f32, 1.0, model.hidden_size(), &Device::Cpu).unwrap();
    let mut hooks = Hooks::new();
    hooks.add(
        HookPoint::ResidPost(0),
        v.clone(),
        -3.0,
        Positions::PromptOnly,
    );
    let steered = model.forward(&b, &mut hooks).unwrap();
    // By hand: resid_post(0) + (-3 v) on positions < prompt_len, then resume at block 1.
    let resid = model.forward_to(1, &b, &mut Hooks::new()).unwrap();
    let t = b.seq_len();
    let mask: Vec<f32> = b
        .prompt_lens()
        .unwrap()
        .iter()
        .flat_map(|&p| (0..t).map(move |i| (i < p) as u8 as f32))
        .collect();
    let mask = Tensor::from_vec(mask, (2, t, 1), &Device::Cpu).unwrap();
    let edited = (resid + mask.broadcast_mul(&(v * -3.0).unwrap()).unwrap()).unwrap();
    let by_hand = model
        .forward_from(1, &edited, &b, &mut Hooks::new())
        .unwrap();
    let d = steerlab::testing::max_abs_diff(&steered, &by_hand);
    assert!(d < 1e-4, "max diff {d}");
    let plain = model.forward(&b, &mut Hooks::new()).unwrap();
    let d: f32 = (steered - plain)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d > 1e-2, "the intervention had no effect");
}

/// Steered generation with the KV cache equals greedy decoding by repeated full forwards with
/// the same hooks (prompt positions from the prompt length).
#[test]
fn steered_generation_matches_uncached_decoding() {
    let model = load("mistral", DType::F32);
    let prompt: Vec<u32> = vec![1, 17, 5, 88, 23];
    let v = Tensor::randn(0f32, 1.0, model.hidden_size(), &Device::Cpu).unwrap();
    for positions in [
        Positions::All,
        Positions::PromptOnly,
        Positions::GeneratedOnly,
    ] {
        let mut hooks = Hooks::new();
        hooks.add(HookPoint::ResidPost(0), v.clone(), 4.0, positions.clone());
        let opts = GenerateOptions {
            max_new_tokens: 7,
            stop_at_eos: false,
            ..Default::default()
        };
        let got = model
            .generate(&prompt, &opts, &hooks, &mut |_, _| true)
            .unwrap();
        let mut seq = prompt.clone();
        let mut want = Vec::new();
        for _ in 0..7 {
            let b = Batch::from_sequences(std::slice::from_ref(&seq), 0, &Device::Cpu)
                .unwrap()
                .with_prompt_lens(vec![prompt.len()])
                .unwrap();
            let logits = model.forward(&b, &mut hooks.clone()).unwrap();
            let last: Vec<f32> = logits
                .get(0)
                .unwrap()
                .get(seq.len() - 1)
                .unwrap()
                .to_vec1()
                .unwrap();
            let next = last
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as u32;
            want.push(next);
            seq.push(next);
        }
        assert_eq!(got, want, "{positions:?}");
    }
}

#[test]
fn sampling_is_reproducible_and_callback_stops() {
    let model = load("llama", DType::F32);
    let opts = GenerateOptions {
        max_new_tokens: 12,
        temperature: 1.0,
        top_p: 0.9,
        seed: 7,
        stop_at_eos: false,
    };
    let a = model
        .generate(&[1, 5, 9], &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    let b = model
        .generate(&[1, 5, 9], &opts, &Hooks::new(), &mut |_, _| true)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 12);
    let mut n = 0;
    let c = model
        .generate(&[1, 5, 9], &opts, &Hooks::new(), &mut |_, _| {
            n += 1;
            n < 3
        })
        .unwrap();
    assert_eq!(c, a[..3].to_vec());
}

#[test]
fn bf16_and_f16_track_f32() {
    let b = batch();
    let reference = load("qwen3", DType::F32)
        .forward(&b, &mut Hooks::new())
        .unwrap();
    let scale = max_abs(&reference);
    for dtype in [DType::BF16, DType::F16] {
        let model = load("qwen3", dtype);
        assert_eq!(model.dtype(), dtype);
        let logits = model.forward(&b, &mut Hooks::new()).unwrap();
        assert_eq!(logits.dtype(), DType::F32);
        let d = max_abs_diff(&logits, &reference);
        assert!(d / scale < 0.05, "{dtype:?}: relative error {}", d / scale);
    }
}

#[test]
fn width_mismatch_and_bad_layers_are_errors() {
    let model = load("llama", DType::F32);
    let b = batch();
    let mut hooks = Hooks::new();
    hooks.add(
        HookPoint::ResidPost(0),
        Tensor::zeros(63, DType::F32, &Device::Cpu).unwrap(),
        1.0,
        Positions::All,
    );
    let e = model.forward(&b, &mut hooks).unwrap_err();
    assert!(
        matches!(
            e,
            steerlab::model::ModelError::WidthMismatch {
                expected: 64,
                got: 63,
                ..
            }
        ),
        "{e}"
    );
    let mut hooks = Hooks::new();
    hooks.capture("blocks.3.hook_resid_post".parse().unwrap());
    let e = model.forward(&b, &mut hooks).unwrap_err();
    assert!(e.to_string().contains("blocks.3.hook_resid_post"), "{e}");
    let too_big = Batch::from_sequences(&[vec![1, 96]], 0, &Device::Cpu).unwrap();
    let e = model.forward(&too_big, &mut Hooks::new()).unwrap_err();
    assert!(e.to_string().contains("96"), "{e}");
}
