//! The packed CPU f32 GEMM (`steerlab::model::fast::cpu_matmul`) against a naive f64 reference on
//! shapes that are not multiples of the tile sizes (6 x 16 and 12 x 32 tiles, k blocks of up to
//! 768, m blocks of 512), with and without bias, for contiguous and strided inputs, on every
//! instruction-set path this CPU runs (`cpu_path::available()`); and whole models with the kernel
//! switched on and off and on each path (logits, greedy KV-cache generation).
use candle_core::{DType, Device, Tensor};
use steerlab::model::fast::cpu_matmul::{self, PackedLinear};
use steerlab::model::fast::cpu_path::{self, CpuPath};

use steerlab::model::{Batch, GenerateOptions, Hooks, LoadOptions, Model};
use steerlab::testing::{fixture, rel_err};

/// A deterministic pseudo-random vector in [-1, 1) (splitmix64).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `x W^T + b` in f64, with `W` row-major `[n, k]`; also returns `sum |x| |w|` per output
/// (the scale of the f32 rounding error).
fn naive(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![0f64; m * n];
    let mut scale = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = b.map_or(0.0, |b| b[j] as f64);
            let mut s = b.map_or(0.0, |b| (b[j] as f64).abs());
            for kk in 0..k {
                let p = x[i * k + kk] as f64 * w[j * k + kk] as f64;
                acc += p;
                s += p.abs();
            }
            y[i * n + j] = acc;
            scale[i * n + j] = s;
        }
    }
    (y, scale)
}

fn check(got: &[f32], want: &[f64], scale: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        // f32 accumulation over k terms: error well under k * eps * sum|x||w|; 1e-5 relative
        // to the absolute sum is loose enough for every order of summation and tight enough
        // to catch a dropped or doubled term (each term is ~1/k of the sum on average).
        let tol = 1e-5 * s + 1e-6;
        assert!(
            (g as f64 - w).abs() <= tol,
            "{what}: element {i}: got {g}, want {w} (tolerance {tol:.2e})"
        );
    }
}

/// Odd shapes: single row (a generation step), tails in every dimension, k deeper than one
/// k block (768), m taller than one m block (512), n below one panel (16), and sizes large
/// enough (over 2^21 multiply-adds) to split over the worker threads.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 576, 49),
    (1, 300, 161),
    (2, 7, 16),
    (5, 13, 17),
    (6, 64, 32),
    (7, 257, 15),
    (3, 800, 20),
    (13, 513, 33),
    (37, 300, 161),
    (250, 37, 40),
    (241, 600, 70),
    (515, 70, 90),
    (4, 1601, 400),
    // Three panels (a pair and a lone full one), a pair with a 15-column second half.
    (12, 100, 48),
    (25, 64, 47),
];

#[test]
fn packed_gemm_matches_naive_f64_on_odd_shapes() {
    for (si, &(m, k, n)) in SHAPES.iter().enumerate() {
        let x = values(m * k, 3 * si as u64);
        let w = values(n * k, 3 * si as u64 + 1);
        let b = values(n, 3 * si as u64 + 2);
        for bias in [None, Some(b.as_slice())] {
            let p = PackedLinear::pack(&w, n, k, bias).unwrap();
            assert_eq!((p.out_features(), p.in_features()), (n, k));
            let (want, scale) = naive(&x, &w, bias, m, k, n);
            let x2 = values(m * k, 100 + si as u64);
            let (want2, scale2) = naive(&x2, &w, bias, m, k, n);
            for path in cpu_path::available() {
                let mut out = vec![f32::NAN; m * n];
                p.matmul_on(path, &x, m, &mut out).unwrap();
                let what = format!("{path}: m {m} k {k} n {n} bias {}", bias.is_some());
                check(&out, &want, &scale, &what);
                // The same weights reused for a second input (the pack is not consumed).
                p.matmul_on(path, &x2, m, &mut out).unwrap();
                check(&out, &want2, &scale2, &format!("{what}, second input"));
            }
        }
    }
}

#[test]
fn packed_forward_takes_strided_tensors_and_keeps_leading_dims() {
    let dev = Device::Cpu;
    let (b, t, k, n) = (3, 11, 40, 23);
    let w = values(n * k, 7);
    let bias = values(n, 8);
    let p = PackedLinear::from_tensors(
        &Tensor::from_slice(&w, (n, k), &dev).unwrap(),
        Some(&Tensor::from_slice(&bias, n, &dev).unwrap()),
    )
    .unwrap();
    // [t, b, k] transposed to a non-contiguous [b, t, k].
    let xt = values(b * t * k, 9);
    let x = Tensor::from_slice(&xt, (t, b, k), &dev)
        .unwrap()
        .transpose(0, 1)
        .unwrap();
    assert!(!x.is_contiguous());
    let y = p.forward(&x).unwrap().expect("f32 cpu input");
    assert_eq!(y.dims(), &[b, t, n]);
    let xc: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let (want, scale) = naive(&xc, &w, Some(&bias), b * t, k, n);
    let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    check(&got, &want, &scale, "strided [3, 11, 40]");
    // A narrowed view (non-zero start offset).
    let xn = x.narrow(1, 4, 5).unwrap();
    let y = p.forward(&xn).unwrap().unwrap();
    assert_eq!(y.dims(), &[b, 5, n]);
    let xc: Vec<f32> = xn.flatten_all().unwrap().to_vec1().unwrap();
    let (want, scale) = naive(&xc, &w, Some(&bias), b * 5, k, n);
    let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    check(&got, &want, &scale, "narrowed");
    // Not applicable: another dtype or width -> None, not an error.
    assert!(p
        .forward(&x.to_dtype(DType::F64).unwrap())
        .unwrap()
        .is_none());
    assert!(p
        .forward(&Tensor::zeros((2, k + 1), DType::F32, &dev).unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn packed_gemm_rejects_bad_lengths() {
    let w = values(6, 1);
    let e = PackedLinear::pack(&w, 4, 2, None).unwrap_err().to_string();
    assert!(e.contains("6 elements") && e.contains("4 x 2"), "{e}");
    let e = PackedLinear::pack(&w, 3, 2, Some(&[1.0]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bias has 1"), "{e}");
    let p = PackedLinear::pack(&w, 3, 2, None).unwrap();
    let mut out = vec![0f32; 6];
    let e = p.matmul(&[1.0; 5], 2, &mut out).unwrap_err().to_string();
    assert!(e.contains("expected 2 x 2"), "{e}");
    // A path this CPU cannot run is an error, not a crash.
    for path in CpuPath::ALL {
        if !path.available() {
            let e = p.matmul_on(path, &[1.0; 4], 2, &mut out).unwrap_err();
            assert!(e.to_string().contains("cannot run"), "{e}");
        }
    }
    // k = 0: the output is the bias (or zero).
    let p = PackedLinear::pack(&[], 3, 0, Some(&[1.0, 2.0, 3.0])).unwrap();
    let mut out = vec![f32::NAN; 6];
    p.matmul(&[], 2, &mut out).unwrap();
    assert_eq!(out, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
}

/// The only test here that switches the process-wide setting: the other tests call the
/// kernel directly, so they do not depend on it.
#[test]
fn model_logits_and_generation_match_with_the_kernel_on_and_off() {
    if !cpu_matmul::supported() {
        eprintln!("no AVX2/FMA: the packed kernel is never used here");
        return;
    }
    // llama: no biases, untied head; qwen2: q/k/v biases.
    for arch in ["llama", "qwen2"] {
        let model = Model::load(&fixture(arch), &LoadOptions::default()).unwrap();
        let vocab = model.info().vocab_size as u32;
        let seqs: Vec<Vec<u32>> = (0..3)
            .map(|s| (0..40u32).map(|t| (t * 7 + s * 13 + 1) % vocab).collect())
            .collect();
        let batch = Batch::from_sequences(&seqs, 0, &Device::Cpu).unwrap();
        let opts = GenerateOptions {
            max_new_tokens: 8,
            stop_at_eos: false,
            ..Default::default()
        };
        let run = |on: bool| {
            cpu_matmul::set_enabled(on);
            let logits = model.forward(&batch, &mut Hooks::new()).unwrap();
            let gen = model
                .generate(&seqs[0][..9], &opts, &Hooks::new(), &mut |_, _| true)
                .unwrap();
            (logits, gen)
        };
        let before = cpu_matmul::forward_calls();
        let (on_logits, on_gen) = run(true);
        let used = cpu_matmul::forward_calls() - before;
        // 5 linear layers per block (gate and up run fused in `cpu_infer` when it is on) + the
        // head, for the batch and every generation step.
        assert!(
            used > 7 * model.n_layers(),
            "{arch}: the kernel ran {used} times"
        );
        let (off_logits, off_gen) = run(false);
        cpu_matmul::set_enabled(true);
        let e = rel_err(&on_logits, &off_logits);
        assert!(e < 1e-4, "{arch}: logits differ by {e} relative");
        assert_eq!(on_gen, off_gen, "{arch}: greedy generation");
        // Every SIMD path this CPU runs, forced process-wide as `STEERLAB_CPU_PATH` would.
        let best = cpu_path::current();
        for path in cpu_path::available() {
            if !path.simd() {
                continue;
            }
            cpu_path::set_current(path).unwrap();
            let before = cpu_matmul::forward_calls();
            let (logits, gen) = run(true);
            assert!(
                cpu_matmul::forward_calls() > before,
                "{arch}: {path} not used"
            );
            let e = rel_err(&logits, &off_logits);
            assert!(e < 1e-4, "{arch}: {path}: logits differ by {e} relative");
            assert_eq!(gen, off_gen, "{arch}: {path}: greedy generation");
        }
        // `portable` turns the packed kernel off (candle's matmul runs).
        cpu_path::set_current(CpuPath::Portable).unwrap();
        assert!(!cpu_matmul::enabled());
        cpu_path::set_current(best).unwrap();
        assert!(cpu_matmul::enabled());
    }
}

#[test]
fn transposed_pack_computes_dy_w_on_every_path() {
    // `dy [m, k] · W [k, n]`, the gradient of a linear layer with weight W, from W's rows.
    for (si, &(m, k, n)) in SHAPES.iter().enumerate() {
        let dy = values(m * k, 50 + si as u64);
        let w = values(k * n, 80 + si as u64);
        // The naive product takes a `[n, k]` weight: W transposed.
        let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
        let (want, scale) = naive(&dy, &wt, None, m, k, n);
        let p = PackedLinear::pack_transposed(&w, k, n).unwrap();
        assert_eq!((p.out_features(), p.in_features()), (n, k));
        for path in cpu_path::available() {
            let mut out = vec![f32::NAN; m * n];
            p.matmul_on(path, &dy, m, &mut out).unwrap();
            check(
                &out,
                &want,
                &scale,
                &format!("{path}: transposed m {m} k {k} n {n}"),
            );
        }
    }
    assert!(PackedLinear::pack_transposed(&[0.0; 5], 2, 3).is_err());
}
