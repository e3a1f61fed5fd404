//! The CPU inference kernels against the reference ops (`model::arch::ops`), on every
//! instruction-set path this CPU runs (`cpu_path::available()`, portable loops included).
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

/// The paths to test: every one this CPU runs.
fn paths() -> Vec<CpuPath> {
    let p = cpu_path::available();
    assert!(p.contains(&CpuPath::Portable));
    p
}

#[test]
fn fused_attention_matches_composed_with_gqa_mask_and_strides() {
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
            for path in paths() {
                let got = attention_on(path, &q, &cos, &sin, &k, &v, m)
                    .unwrap()
                    .unwrap();
                assert_eq!(got.dims(), want.dims());
                let diff = max_diff(&got, &want);
                assert!(
                    diff < 2e-5,
                    "{path}: shape {:?}: max diff {diff}",
                    (b, hq, hkv, t, s, d)
                );
            }
        }
    }
}

#[test]
fn rope_matches_composed_on_strided_input() {
    if !cpu_matmul::supported() {
        return;
    }
    set_enabled(true);
    // (One loop for every path: the rotation has no SIMD body.)
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
    for path in paths() {
        silu_and_rms_on(path);
    }
}

fn silu_and_rms_on(path: CpuPath) {
    for n in [7usize, 17, 64, 1000, 70_001] {
        let g = (randn(&[n], 4) * 6.0).unwrap();
        let u = randn(&[n], 5);
        let want = (g.silu().unwrap() * &u).unwrap();
        let mut out = vec![0f32; n];
        silu_mul_slice(
            path,
            &g.to_vec1::<f32>().unwrap(),
            &u.to_vec1::<f32>().unwrap(),
            &mut out,
        );
        let got = Tensor::from_vec(out, n, &Device::Cpu).unwrap();
        assert!(max_diff(&got, &want) < 1e-5, "{path}: silu n={n}");
    }
    for (rows, dim) in [(3usize, 5usize), (300, 576), (2, 1000), (4, 23)] {
        let x = randn(&[rows, dim], 6);
        let r = randn(&[rows, dim], 7);
        let w = randn(&[dim], 8);
        let sum = (&x + &r).unwrap();
        let want = candle_nn::ops::rms_norm(&sum, &w, 1e-6).unwrap();
        let (got_sum, got) = add_rms_norm_on(path, &x, Some(&r), &w, 1e-6)
            .unwrap()
            .unwrap();
        assert_eq!(max_diff(&got_sum, &sum), 0.0);
        assert!(max_diff(&got, &want) < 1e-5, "{path}: rms {rows}x{dim}");
        let (same, got) = add_rms_norm_on(path, &x, None, &w, 1e-6).unwrap().unwrap();
        assert_eq!(max_diff(&same, &x), 0.0);
        let want = candle_nn::ops::rms_norm(&x, &w, 1e-6).unwrap();
        assert!(max_diff(&got, &want) < 1e-5, "{path}: rms {rows}x{dim}");
    }
}

#[test]
fn packed_gate_up_matches_two_linears_and_silu() {
    // n not a multiple of the half panel (nor of two panels), k above one k block, rows not a
    // multiple of 6 or 12; an odd panel count (n 40: five half panels).
    for &(m, k, n, bias) in &[
        (13usize, 40usize, 21usize, true),
        (7, 1000, 8, false),
        (25, 33, 40, true),
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
        let scale = want
            .abs()
            .unwrap()
            .max_keepdim(0)
            .unwrap()
            .max(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        for path in paths() {
            let got = packed.forward_on(path, &x).unwrap().unwrap();
            assert_eq!(got.dims(), want.dims());
            let diff = max_diff(&got, &want);
            assert!(
                diff < 1e-5 * scale.max(1.0),
                "{path}: {m}x{k}x{n}: max diff {diff}"
            );
        }
    }
}

#[test]
fn vector_exp_is_accurate_and_flushes_underflow() {
    let xs: Vec<f32> = (-1000..=880)
        .map(|i| i as f32 * 0.1)
        .chain([f32::MIN, -1e30])
        .collect();
    for path in paths() {
        let mut ys = xs.clone();
        let mut sum = 0.0;
        exp_shifted(path, &mut ys, 0.0, &mut sum);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = x.exp();
            if x < -87.34 {
                // The vector `exp` flushes to exactly 0; the portable loops use the library
                // `exp`, which returns subnormals there.
                if matches!(path, CpuPath::Avx512 | CpuPath::Avx2) {
                    assert_eq!(y, 0.0, "{path}: exp({x})");
                } else {
                    assert!((0.0..1.2e-38).contains(&y), "{path}: exp({x}) = {y}");
                }
            } else {
                let rel = ((y - want) / want).abs();
                assert!(rel < 1e-6, "{path}: exp({x}) = {y}, want {want}");
            }
        }
        // The sum, on values whose f32 sum does not overflow (a row of 1001, tails of 8
        // and 16 lanes included).
        let mut ys: Vec<f32> = (0..1001).map(|i| i as f32 * 0.05 - 40.0).collect();
        let want_sum: f64 = ys.iter().map(|&x| f64::from(x - 3.0).exp()).sum();
        let mut sum = 0.0;
        exp_shifted(path, &mut ys, 3.0, &mut sum);
        let rel = (f64::from(sum) - want_sum).abs() / want_sum;
        assert!(rel < 1e-5, "{path}: sum {sum}, want {want_sum}");
    }
}

#[test]
fn x86_paths_agree_lane_for_lane_on_exp() {
    // AVX-512 and AVX2 share the polynomial: identical values, not just close ones.
    if !(CpuPath::Avx512.available() && CpuPath::Avx2.available()) {
        return;
    }
    let xs: Vec<f32> = (0..1000).map(|i| i as f32 * 0.173 - 90.0).collect();
    let (mut a, mut b) = (xs.clone(), xs);
    let (mut sa, mut sb) = (0.0, 0.0);
    exp_shifted(CpuPath::Avx512, &mut a, 0.5, &mut sa);
    exp_shifted(CpuPath::Avx2, &mut b, 0.5, &mut sb);
    assert_eq!(a, b);
}

#[test]
fn unavailable_paths_are_errors_not_crashes() {
    let x = randn(&[2, 8], 1);
    let w = randn(&[8], 2);
    for path in CpuPath::ALL {
        if !path.available() {
            let e = add_rms_norm_on(path, &x, None, &w, 1e-6).unwrap_err();
            assert!(e.to_string().contains("cannot run"), "{e}");
        }
    }
}

#[test]
fn gelu_and_silu_times_up_match_candle_on_every_path() {
    // Wide inputs (tails of the tanh and the sigmoid), a length with a tail on both paths.
    let g = (randn(&[3, 301], 21) * 4.0).unwrap();
    let u = randn(&[3, 301], 22);
    let want_gelu = (g.gelu().unwrap() * &u).unwrap();
    let want_silu = (g.silu().unwrap() * &u).unwrap();
    let (gv, uv) = (
        g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        u.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    for path in cpu_path::available() {
        let mut out = vec![f32::NAN; gv.len()];
        gelu_mul_slice(path, &gv, &uv, &mut out);
        let got = Tensor::from_vec(out, (3, 301), &Device::Cpu).unwrap();
        let d = max_diff(&got, &want_gelu);
        assert!(d < 2e-6, "{path} gelu: {d}");
    }
    let got = act_mul(true, &g, &u).unwrap();
    if let Some(got) = got {
        assert!(max_diff(&got, &want_gelu) < 2e-6);
    }
    if let Some(got) = act_mul(false, &g, &u).unwrap() {
        assert!(max_diff(&got, &want_silu) < 2e-6);
    }
}
