//! The differentiable fused ops (`steerlab::model::fast::grad`) against ops composed of candle
//! primitives written out here: values and gradients on CPU, each op alone (the attention with
//! grouped heads and padding, also in bf16) and a whole hooked model (gradient into a steering
//! vector, with padding, in f32 and bf16, Llama / Qwen2 / Qwen3 blocks) under every `GradOps`
//! setting; and the autograd node counts, which must shrink from composed to block.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use candle_core::{DType, Device, Tensor, Var, D};
use steerlab::model::fast::{grad as fused, kernels};
use steerlab::model::{Batch, GradOps, HookPoint, Hooks, Model, Positions};
use steerlab::testing::{load_fixture as load, max_abs, max_abs_diff};

/// Counts, per thread while enabled, heap allocations of at least 64 bytes: on the CPU backend
/// every tensor op allocates its output buffer, so during a backward this approximates the
/// number of kernels the same backward launches on a GPU (tensor shape/stride vectors are
/// smaller and not counted).
struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static BUFFERS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= 64 && COUNTING.with(|c| c.get()) {
            BUFFERS.with(|b| b.set(b.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the buffers it allocated on this thread.
fn count_buffers<T>(f: impl FnOnce() -> T) -> (T, usize) {
    BUFFERS.with(|b| b.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, BUFFERS.with(|b| b.get()))
}

/// Checks `f` against `reference` at a random input of `shape`: values, and the gradient of
/// `Σ f(x) ⊙ r` for a random `r`, within `tol` (relative to the largest reference entry); once
/// with steerlab's kernels (`model::fast::kernels`) and once with their composed fallbacks.
fn check(
    shape: &[usize],
    tol: f32,
    f: impl Fn(&Tensor) -> Tensor,
    reference: impl Fn(&Tensor) -> Tensor,
) {
    check_once(shape, tol, &f, &reference);
    kernels::without(|| check_once(shape, tol, &f, &reference));
}

fn check_once(
    shape: &[usize],
    tol: f32,
    f: &impl Fn(&Tensor) -> Tensor,
    reference: &impl Fn(&Tensor) -> Tensor,
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
fn target_logprobs_match_log_softmax_gather_values_and_gradients() {
    // 7 positions over a 50-token vocabulary, targets including the first and last ids.
    let targets = Tensor::new(&[0u32, 49, 3, 3, 17, 28, 49], &Device::Cpu).unwrap();
    let idx = targets.unsqueeze(1).unwrap();
    check(
        &[7, 50],
        1e-5,
        |x| fused::target_logprobs(&(x * 4.0).unwrap(), &targets).unwrap(),
        |x| {
            candle_nn::ops::log_softmax(&(x * 4.0).unwrap(), D::Minus1)
                .unwrap()
                .gather(&idx, 1)
                .unwrap()
                .squeeze(1)
                .unwrap()
        },
    );
}

#[test]
fn head_logprobs_match_lm_head_log_softmax_gather_values_and_gradients() {
    // 6 hidden rows of width 12, a frozen 40-token head; targets include the first and last ids.
    let w = Tensor::randn(0f32, 1.0, (40, 12), &Device::Cpu).unwrap();
    let targets = Tensor::new(&[0u32, 39, 5, 5, 21, 39], &Device::Cpu).unwrap();
    let idx = targets.unsqueeze(1).unwrap();
    check(
        &[6, 12],
        1e-5,
        |x| fused::head_logprobs(x, &w, &targets).unwrap(),
        |x| {
            let logits = x.matmul(&w.t().unwrap()).unwrap();
            candle_nn::ops::log_softmax(&logits, D::Minus1)
                .unwrap()
                .gather(&idx, 1)
                .unwrap()
                .squeeze(1)
                .unwrap()
        },
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
    let mut model = steerlab::testing::random_model("llama:tiny", &dev, DType::F32, 3).unwrap();
    model.set_grad_ops(ops);
    let (l, g, logits, _) = hooked_grad(&model, &Hooks::new(), 1);
    (l, g, logits)
}

/// Loss, gradient and logits of a steering vector added at `ResidPost(layer)` (besides the
/// interventions in `extra`), on a padded batch, plus the autograd graph's node count and the
/// buffers its backward allocated.
fn hooked_grad(
    model: &Model,
    extra: &Hooks,
    layer: usize,
) -> (f32, Vec<f32>, Vec<f32>, (usize, usize)) {
    let dev = Device::Cpu;
    let seqs = [
        vec![5u32, 17, 99, 3, 42, 7, 8],
        vec![11u32, 2, 250, 61],
        vec![9u32, 9, 1, 200, 33, 4],
    ];
    // The fixtures' vocabularies are smaller than the tiny model's.
    let vocab = model.info().vocab_size as u32;
    let seqs: Vec<Vec<u32>> = seqs
        .iter()
        .map(|s| s.iter().map(|&i| i % vocab).collect())
        .collect();
    let batch = Batch::from_sequences(&seqs, 0, &dev).unwrap();
    let h = model.hidden_size();
    let v = Var::from_tensor(
        &Tensor::arange(0f32, h as f32, &dev)
            .unwrap()
            .affine(0.64 / h as f64, -0.3)
            .unwrap(),
    )
    .unwrap();
    let mut hooks = extra.clone();
    hooks.add(
        HookPoint::ResidPost(layer),
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
    let nodes = loss.sorted_nodes().len();
    let (grads, buffers) = count_buffers(|| loss.backward().unwrap());
    let g = grads
        .get(v.as_tensor())
        .cloned()
        .expect("no gradient reached the vector");
    (
        loss.to_dtype(DType::F32).unwrap().to_scalar().unwrap(),
        g.to_dtype(DType::F32).unwrap().to_vec1().unwrap(),
        logits.flatten_all().unwrap().to_vec1().unwrap(),
        (nodes, buffers),
    )
}

/// Asserts `(loss, gradient, logits)` agree with the reference within `tol` (relative).
fn agree(what: &str, got: (f32, &[f32], &[f32]), want: (f32, &[f32], &[f32]), tol: f32) {
    let (l_g, g_g, lg_g) = got;
    let (l_w, g_w, lg_w) = want;
    assert!(
        (l_g - l_w).abs() <= tol * l_w.abs().max(1.0),
        "{what}: loss {l_g} vs {l_w}"
    );
    let lscale = lg_w.iter().map(|x| x.abs()).fold(1f32, f32::max);
    let dl = lg_g
        .iter()
        .zip(lg_w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(dl <= tol * lscale, "{what}: logits differ by {dl}");
    let scale = g_w.iter().map(|x| x.abs()).fold(0f32, f32::max);
    assert!(
        scale > 0.0,
        "{what}: zero gradient, the test would be vacuous"
    );
    let dg = g_g
        .iter()
        .zip(g_w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        dg <= tol * scale,
        "{what}: gradients differ by {dg} (scale {scale})"
    );
}

#[test]
fn model_gradient_is_the_same_with_every_grad_ops_setting() {
    let (l_c, g_c, logits_c) = model_grad(GradOps::Composed);
    for ops in [GradOps::Fused, GradOps::FusedAttention, GradOps::Block] {
        let (l, g, logits) = model_grad(ops);
        agree(ops.name(), (l, &g, &logits), (l_c, &g_c, &logits_c), 1e-4);
        // The composed fallbacks of steerlab's kernels (used where a kernel does not apply).
        let (l, g, logits) = kernels::without(|| model_grad(ops));
        let what = format!("{} without kernels", ops.name());
        agree(&what, (l, &g, &logits), (l_c, &g_c, &logits_c), 1e-4);
    }
}

#[test]
fn block_and_attention_ops_match_composed_on_every_architecture() {
    // Qwen2 has q/k/v biases, Qwen3 per-head q/k norms, Mistral a sliding window. A capture and
    // an intervention inside a later block force that block back onto the per-op path.
    for arch in ["llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3"] {
        let mut model = load(arch, DType::F32);
        let n = model.n_layers();
        let mut inner = Hooks::new();
        if n >= 2 {
            let c = Tensor::full(0.05f32, model.hidden_size(), &Device::Cpu).unwrap();
            inner.add(HookPoint::MlpOut(n - 1), c, 1.0, Positions::All);
            inner.capture(HookPoint::AttnOut(n - 1));
        }
        for hooks in [Hooks::new(), inner] {
            model.set_grad_ops(GradOps::Composed);
            let (l_c, g_c, lg_c, _) = hooked_grad(&model, &hooks, 0);
            for ops in [GradOps::FusedAttention, GradOps::Block] {
                model.set_grad_ops(ops);
                let (l, g, lg, _) = hooked_grad(&model, &hooks, 0);
                let what = format!("{arch} {}", ops.name());
                agree(&what, (l, &g, &lg), (l_c, &g_c, &lg_c), 1e-4);
            }
        }
    }
}

#[test]
fn bf16_block_and_attention_ops_stay_close_to_f32() {
    let dev = Device::Cpu;
    let mut reference = steerlab::testing::random_model("llama:tiny", &dev, DType::F32, 5).unwrap();
    reference.set_grad_ops(GradOps::Composed);
    let (l_r, g_r, lg_r, _) = hooked_grad(&reference, &Hooks::new(), 0);
    let mut model = steerlab::testing::random_model("llama:tiny", &dev, DType::BF16, 5).unwrap();
    for ops in GradOps::ALL {
        model.set_grad_ops(ops);
        let (l, g, lg, _) = hooked_grad(&model, &Hooks::new(), 0);
        agree(
            &format!("bf16 {}", ops.name()),
            (l, &g, &lg),
            (l_r, &g_r, &lg_r),
            5e-2,
        );
    }
}

#[test]
fn each_setting_shrinks_the_autograd_graph() {
    // One block's share: steering at block 0 of the 4-block tiny model minus steering at block
    // 1 (one block fewer carries the gradient).
    let dev = Device::Cpu;
    let mut model = steerlab::testing::random_model("llama:tiny", &dev, DType::F32, 3).unwrap();
    let mut per_block = Vec::new();
    for ops in [
        GradOps::Composed,
        GradOps::Fused,
        GradOps::FusedAttention,
        GradOps::Block,
    ] {
        model.set_grad_ops(ops);
        let (n0, b0) = hooked_grad(&model, &Hooks::new(), 0).3;
        let (n1, b1) = hooked_grad(&model, &Hooks::new(), 1).3;
        println!(
            "{}: graph nodes {n0} (one block {}), backward buffers {b0} (one block {})",
            ops.name(),
            n0 - n1,
            b0 as i64 - b1 as i64
        );
        per_block.push((n0 - n1, b0 as i64 - b1 as i64));
    }
    assert_eq!(per_block[3].0, 1, "the block op is one node per block");
    assert!(
        per_block.windows(2).all(|w| w[0].0 > w[1].0),
        "node counts per block do not shrink: {per_block:?}"
    );
    // The backward's buffer count (kernels on a GPU) must shrink with the node count.
    assert!(
        per_block[3].1 < per_block[1].1 && per_block[1].1 < per_block[0].1,
        "backward buffers per block: {per_block:?}"
    );
}

/// Attention written out per query head (key/value heads repeated), with an additive mask.
fn composed_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Tensor {
    let (b, hq, t, d) = q.dims4().unwrap();
    let hkv = k.dim(1).unwrap();
    let mut heads = Vec::new();
    for h in 0..hq {
        let qh = q.narrow(1, h, 1).unwrap().to_dtype(DType::F32).unwrap();
        let kh = k.narrow(1, h / (hq / hkv), 1).unwrap();
        let vh = v.narrow(1, h / (hq / hkv), 1).unwrap();
        let kh = kh.to_dtype(DType::F32).unwrap();
        let vh = vh.to_dtype(DType::F32).unwrap();
        let sc = (qh.matmul(&kh.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
        let sc = sc.broadcast_add(&mask.squeeze(1).unwrap()).unwrap();
        heads.push(composed_softmax(&sc).matmul(&vh).unwrap()); // [B, 1, T, D]
    }
    Tensor::cat(&heads, 1)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b, t, hq * d))
        .unwrap()
}

/// Gradients of `sum(f(q, k, v) * r)` with respect to q, k, v.
fn attn_grads(
    q: &Var,
    k: &Var,
    v: &Var,
    r: &Tensor,
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
) -> (Tensor, Vec<Tensor>) {
    let y = f(q.as_tensor(), k.as_tensor(), v.as_tensor());
    let g = (y.to_dtype(DType::F32).unwrap() * r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let grads = [q, k, v]
        .iter()
        .map(|x| {
            g.get(x.as_tensor())
                .expect("an attention input got no gradient")
                .to_dtype(DType::F32)
                .unwrap()
        })
        .collect();
    (y.to_dtype(DType::F32).unwrap(), grads)
}

fn check_attention(dtype: DType, tol: f32) {
    let dev = Device::Cpu;
    let (b, hq, hkv, t, d) = (2, 6, 2, 5, 8);
    // Causal, and the second sequence right-padded to length 3 (keys 3, 4 invalid).
    let m: Vec<f32> = (0..b * t * t)
        .map(|i| {
            let (bi, qi, si) = (i / (t * t), (i / t) % t, i % t);
            if si > qi || (bi == 1 && si >= 3) {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(m, (b, 1, 1, t, t), &dev).unwrap();
    let var = |shape: (usize, usize, usize, usize)| {
        Var::from_tensor(
            &Tensor::randn(0f32, 1.0, shape, &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap()
    };
    let (q, k, v) = (var((b, hq, t, d)), var((b, hkv, t, d)), var((b, hkv, t, d)));
    let r = Tensor::randn(0f32, 1.0, (b, t, hq * d), &dev).unwrap();
    let (y, g) = attn_grads(&q, &k, &v, &r, |q, k, v| {
        fused::attention(q, k, v, Some(&mask)).unwrap()
    });
    // The reference runs in f32 on the same (rounded) inputs.
    let (y_ref, g_ref) = attn_grads(&q, &k, &v, &r, |q, k, v| composed_attention(q, k, v, &mask));
    let d_y = max_abs_diff(&y, &y_ref);
    assert!(
        d_y <= tol * max_abs(&y_ref).max(1.0),
        "values differ by {d_y}"
    );
    for (name, (a, b)) in ["q", "k", "v"].iter().zip(g.iter().zip(&g_ref)) {
        let scale = max_abs(b);
        assert!(scale > 0.0);
        let dd = max_abs_diff(a, b);
        assert!(dd <= tol * scale, "d{name} differs by {dd} (scale {scale})");
    }
}

#[test]
fn attention_matches_composed_values_and_gradients() {
    check_attention(DType::F32, 1e-5);
}

#[test]
fn bf16_attention_stays_close_to_f32_reference() {
    check_attention(DType::BF16, 3e-2);
}
