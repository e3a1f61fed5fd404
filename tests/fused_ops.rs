//! The differentiable fused ops (`steerlab::model::fused`) against ops composed of candle
//! primitives written out here: values and gradients on CPU, each op alone and a whole hooked
//! model (gradient into a steering vector, with padding) under both `GradOps` settings.
use candle_core::{DType, Device, Tensor, Var, D};
use steerlab::model::fused;
use steerlab::model::{Batch, GradOps, HookPoint, Hooks, Positions};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Checks `f` against `reference` at a random input of `shape`: values, and the gradient of
/// `Σ f(x) ⊙ r` for a random `r`, within `tol` (relative to the largest reference entry).
fn check(
    shape: &[usize],
    tol: f32,
    f: impl Fn(&Tensor) -> Tensor,
    reference: impl Fn(&Tensor) -> Tensor,
) {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap()).unwrap();
    let got = f(x.as_tensor());
    let want = reference(x.as_tensor());
    assert_eq!(got.dims(), want.dims());
    let scale = max_abs(&want).max(1.0);
    let d = max_abs_diff(&got, &want);
    assert!(d <= tol * scale, "values differ by {d}");
    let r = Tensor::randn(0f32, 1.0, want.shape(), &dev).unwrap();
    let g_got = (got * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(x.as_tensor())
        .cloned()
        .expect("the fused op dropped the gradient");
    let g_want = (want * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(x.as_tensor())
        .cloned()
        .unwrap();
    let scale = max_abs(&g_want).max(1e-3);
    let d = max_abs_diff(&g_got, &g_want);
    assert!(
        d <= tol * scale,
        "gradients differ by {d} (largest entry {scale})"
    );
}

#[test]
fn rms_norm_matches_composed_values_and_gradients() {
    let w = Tensor::randn(0f32, 1.0, 16, &Device::Cpu).unwrap();
    let eps = 1e-5;
    check(
        &[2, 3, 7, 16],
        1e-5,
        |x| fused::rms_norm(x, &w, eps).unwrap(),
        |x| {
            let var = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            x.broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
                .unwrap()
                .broadcast_mul(&w)
                .unwrap()
        },
    );
}

fn composed_softmax(x: &Tensor) -> Tensor {
    let max = x.max_keepdim(D::Minus1).unwrap().detach();
    let e = x.broadcast_sub(&max).unwrap().exp().unwrap();
    e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
}

#[test]
fn softmax_matches_composed_values_and_gradients() {
    check(
        &[2, 3, 5, 9],
        1e-5,
        |x| fused::softmax_last_dim(x, None).unwrap(),
        composed_softmax,
    );
}

#[test]
fn masked_softmax_matches_composed_values_and_gradients() {
    // A causal mask with the engine's "large negative" entries, broadcast over heads.
    let t = 6;
    let m: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { f32::MIN } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(m, (1, 1, t, t), &Device::Cpu).unwrap();
    check(
        &[2, 3, t, t],
        1e-5,
        |x| fused::softmax_last_dim(x, Some(&mask)).unwrap(),
        |x| composed_softmax(&x.broadcast_add(&mask).unwrap()),
    );
}

#[test]
fn rope_matches_composed_values_and_gradients() {
    let dev = Device::Cpu;
    let (t, half) = (5, 4);
    let ang: Vec<f32> = (0..t * half)
        .map(|i| (i / half) as f32 * 0.37f32.powi((i % half) as i32))
        .collect();
    let ang = Tensor::from_vec(ang, (t, half), &dev).unwrap();
    let (cos, sin) = (ang.cos().unwrap(), ang.sin().unwrap());
    check(
        &[2, 3, t, 2 * half],
        1e-5,
        |x| fused::rope(x, &cos, &sin).unwrap(),
        |x| {
            let x1 = x.narrow(D::Minus1, 0, half).unwrap();
            let x2 = x.narrow(D::Minus1, half, half).unwrap();
            let c = cos.reshape((1, 1, t, half)).unwrap();
            let s = sin.reshape((1, 1, t, half)).unwrap();
            let a = (x1.broadcast_mul(&c).unwrap() - x2.broadcast_mul(&s).unwrap()).unwrap();
            let b = (x2.broadcast_mul(&c).unwrap() + x1.broadcast_mul(&s).unwrap()).unwrap();
            Tensor::cat(&[a, b], D::Minus1).unwrap()
        },
    );
}

#[test]
fn linear_matches_matmul_values_and_gradients() {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 1.0, (7, 12), &dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, 7, &dev).unwrap();
    check(
        &[2, 5, 12],
        1e-5,
        |x| fused::linear(x, &w, Some(&b)).unwrap(),
        |x| {
            x.broadcast_matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap()
        },
    );
}

#[test]
fn untracked_inputs_get_the_plain_fused_result() {
    let x = Tensor::randn(0f32, 1.0, (2, 4), &Device::Cpu).unwrap();
    let y = fused::softmax_last_dim(&x, None).unwrap();
    assert!(!y.track_op());
    let want = candle_nn::ops::softmax_last_dim(&x).unwrap();
    assert_eq!(max_abs_diff(&y, &want), 0.0);
}

/// Loss and gradient of a steering vector at block 1 of a random tiny Llama, on a padded batch.
fn model_grad(ops: GradOps) -> (f32, Vec<f32>, Vec<f32>) {
    let dev = Device::Cpu;
    let mut model = steerlab::bench::random_model("llama:tiny", &dev, DType::F32, 3).unwrap();
    model.set_grad_ops(ops);
    let seqs = vec![
        vec![5u32, 17, 99, 3, 42, 7, 8],
        vec![11u32, 2, 250, 61],
        vec![9u32, 9, 1, 200, 33, 4],
    ];
    let batch = Batch::from_sequences(&seqs, 0, &dev).unwrap();
    let v = Var::from_tensor(
        &Tensor::arange(0f32, 64.0, &dev)
            .unwrap()
            .affine(0.01, -0.3)
            .unwrap(),
    )
    .unwrap();
    let mut hooks = Hooks::new();
    hooks.add(
        HookPoint::ResidPost(1),
        v.as_tensor().clone(),
        2.0,
        Positions::All,
    );
    let logits = model.forward(&batch, &mut hooks).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    // A fixed weighting of every (position, token) log-prob of the valid positions.
    let r = Tensor::arange(0u32, logp.elem_count() as u32, &dev)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .sin()
        .unwrap()
        .reshape(logp.shape())
        .unwrap();
    let mask = batch.attention_mask().unsqueeze(2).unwrap();
    let loss = (logp.broadcast_mul(&mask).unwrap() * r)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = loss
        .backward()
        .unwrap()
        .get(v.as_tensor())
        .cloned()
        .expect("no gradient reached the vector");
    (
        loss.to_scalar().unwrap(),
        g.to_vec1().unwrap(),
        logits.flatten_all().unwrap().to_vec1().unwrap(),
    )
}

#[test]
fn model_gradient_is_the_same_with_fused_and_composed_ops() {
    let (l_f, g_f, logits_f) = model_grad(GradOps::Fused);
    let (l_c, g_c, logits_c) = model_grad(GradOps::Composed);
    assert!(
        (l_f - l_c).abs() <= 1e-5 * l_c.abs().max(1.0),
        "{l_f} vs {l_c}"
    );
    let dl = logits_f
        .iter()
        .zip(&logits_c)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(dl < 1e-4, "logits differ by {dl}");
    let scale = g_c.iter().map(|x| x.abs()).fold(0f32, f32::max);
    assert!(scale > 0.0, "zero gradient: the test would be vacuous");
    let dg = g_f
        .iter()
        .zip(&g_c)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        dg <= 1e-4 * scale,
        "gradients differ by {dg} (scale {scale})"
    );
}
