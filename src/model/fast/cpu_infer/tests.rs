//! The CPU inference kernels against the reference ops (`model::arch::ops`).
use super::*;
use crate::model::arch::ops;

use crate::testing::max_abs_diff as max_diff;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    // A small LCG so the inputs do not depend on candle's RNG.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// RoPE tables (base 10 000) for `t` positions from `offset`, head width `d`.
fn rope_tables(d: usize, offset: usize, t: usize) -> (Tensor, Tensor) {
    let inv: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / 10000f64.powf(2.0 * i as f64 / d as f64))
        .collect();
    ops::rope_tables(&inv, offset, t, DType::F32, &Device::Cpu).unwrap()
}

/// The composed reference: RoPE on q, then the candle attention of `ops`.
fn reference(
    q: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Tensor {
    let q = ops::rope(q, cos, sin).unwrap();
    ops::attention(&q, k, v, mask).unwrap()
}

#[test]
fn fused_attention_matches_composed_with_gqa_mask_and_strides() {
    if !cpu_matmul::supported() {
        return;
    }
    set_enabled(true);
    // (batch, q heads, kv heads, T, S, D, offset): prefill, a cache step with T < S,
    // one-token decoding, odd sizes that leave partial panels and tiles, a long cache.
    for &(b, hq, hkv, t, s, d, off) in &[
        (2, 6, 2, 9, 9, 64, 0),
        (1, 4, 4, 5, 12, 32, 7),
        (3, 3, 1, 1, 20, 16, 19),
        (2, 2, 1, 37, 37, 128, 0),
        // More keys than one k block of the GEMM (768), two row blocks.
        (1, 2, 1, 30, 800, 16, 770),
    ] {
        // q as the strided view the block makes: [B, T, H, D] transposed to [B, H, T, D].
        let q = randn(&[b, t, hq, d], 1).transpose(1, 2).unwrap();
        let k = randn(&[b, hkv, s, d], 2);
        let v = randn(&[b, s, hkv, d], 3).transpose(1, 2).unwrap();
        let (cos, sin) = rope_tables(d, off, t);
        // Causal plus one padded key in the first row of the batch.
        let valid: Vec<Vec<bool>> = (0..b)
            .map(|bi| (0..s).map(|si| bi != 0 || si != 1).collect())
            .collect();
        let mask = ops::attention_mask(b, t, off, Some(&valid), None, &Device::Cpu).unwrap();
        for m in [mask.as_ref(), None] {
            let want = reference(&q, &cos, &sin, &k, &v, m);
            let got = attention(&q, &cos, &sin, &k, &v, m).unwrap().unwrap();
            assert_eq!(got.dims(), want.dims());
            let diff = max_diff(&got, &want);
            assert!(
                diff < 2e-5,
                "shape {:?}: max diff {diff}",
                (b, hq, hkv, t, s, d)
            );
        }
    }
}

#[test]
fn rope_matches_composed_on_strided_input() {
    if !cpu_matmul::supported() {
        return;
    }
    set_enabled(true);
    let (b, h, t, d) = (2, 3, 7, 16);
    let x = randn(&[b, t, h, d], 14).transpose(1, 2).unwrap();
    let (cos, sin) = rope_tables(d, 5, t);
    let want = ops::rope(&x, &cos, &sin).unwrap();
    let got = rope(&x, &cos, &sin).unwrap().unwrap();
    assert!(got.is_contiguous());
    assert!(max_diff(&got, &want) < 1e-6);
}

#[test]
fn silu_mul_slice_and_rms_norm_match_candle() {
    if !cpu_matmul::supported() {
        return;
    }
    set_enabled(true);
    for n in [7usize, 64, 1000, 70_001] {
        let g = (randn(&[n], 4) * 6.0).unwrap();
        let u = randn(&[n], 5);
        let want = (g.silu().unwrap() * &u).unwrap();
        let mut out = vec![0f32; n];
        silu_mul_slice(
            &g.to_vec1::<f32>().unwrap(),
            &u.to_vec1::<f32>().unwrap(),
            &mut out,
        );
        let got = Tensor::from_vec(out, n, &Device::Cpu).unwrap();
        assert!(max_diff(&got, &want) < 1e-5, "silu n={n}");
    }
    for (rows, dim) in [(3usize, 5usize), (300, 576), (2, 1000)] {
        let x = randn(&[rows, dim], 6);
        let r = randn(&[rows, dim], 7);
        let w = randn(&[dim], 8);
        let sum = (&x + &r).unwrap();
        let want = candle_nn::ops::rms_norm(&sum, &w, 1e-6).unwrap();
        let (got_sum, got) = add_rms_norm(&x, Some(&r), &w, 1e-6).unwrap().unwrap();
        assert_eq!(max_diff(&got_sum, &sum), 0.0);
        assert!(max_diff(&got, &want) < 1e-5, "rms {rows}x{dim}");
        let (same, got) = add_rms_norm(&x, None, &w, 1e-6).unwrap().unwrap();
        assert_eq!(max_diff(&same, &x), 0.0);
        let want = candle_nn::ops::rms_norm(&x, &w, 1e-6).unwrap();
        assert!(max_diff(&got, &want) < 1e-5);
    }
}

#[test]
fn packed_gate_up_matches_two_linears_and_silu() {
    if !cpu_matmul::supported() {
        return;
    }
    set_enabled(true);
    // n not a multiple of the half panel, k above one k block, rows not a multiple of 6.
    for &(m, k, n, bias) in &[
        (13usize, 40usize, 21usize, true),
        (7, 1000, 8, false),
        (64, 576, 1536, false),
    ] {
        let x = randn(&[m, k], 9);
        let wg = (randn(&[n, k], 10) * 0.2).unwrap();
        let wu = (randn(&[n, k], 11) * 0.2).unwrap();
        let (bg, bu) = if bias {
            (Some(randn(&[n], 12)), Some(randn(&[n], 13)))
        } else {
            (None, None)
        };
        let g = candle_nn::Linear::new(wg.clone(), bg.clone());
        let u = candle_nn::Linear::new(wu.clone(), bu.clone());
        use candle_core::Module;
        let want = (g.forward(&x).unwrap().silu().unwrap() * u.forward(&x).unwrap()).unwrap();
        let packed = PackedGateUp::from_tensors(&wg, bg.as_ref(), &wu, bu.as_ref()).unwrap();
        let got = packed.forward(&x).unwrap().unwrap();
        assert_eq!(got.dims(), want.dims());
        let scale = want
            .abs()
            .unwrap()
            .max_keepdim(0)
            .unwrap()
            .max(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        let diff = max_diff(&got, &want);
        assert!(diff < 1e-5 * scale.max(1.0), "{m}x{k}x{n}: max diff {diff}");
    }
}

#[test]
fn vector_exp_is_accurate_and_flushes_underflow() {
    if !cpu_matmul::supported() {
        return;
    }
    let xs: Vec<f32> = (-1000..=880)
        .map(|i| i as f32 * 0.1)
        .chain([f32::MIN, -1e30])
        .collect();
    let mut ys = xs.clone();
    let mut sum = 0.0;
    exp_shifted(&mut ys, 0.0, &mut sum);
    for (&x, &y) in xs.iter().zip(&ys) {
        let want = x.exp();
        if x < -87.34 {
            assert_eq!(y, 0.0, "exp({x})");
        } else {
            let rel = ((y - want) / want).abs();
            assert!(rel < 1e-6, "exp({x}) = {y}, want {want}");
        }
    }
}
