//! The quantized-weight kernels (`steerlab::model::fast::quant`) against dequantized
//! references, for every supported block type: forward `x Wᵀ` (few and many rows: the dot and
//! the tiled-GEMM paths), backward `dy W`, the differentiable op's gradient through candle's
//! autograd, embedding rows, and row permutation; the products on every instruction-set path
//! this CPU runs. Weights are random blocks made here.
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor, Var};
use steerlab::model::fast::cpu_path::{self, CpuPath};
use steerlab::model::fast::quant::{QMatrix, ROUNDED_ONE_ROW, SUPPORTED};

/// Whether a product of `m` activation rows with `dtype` weights on `path` rounds the
/// activations to 16 bits per block of 32 first (the one-row kernels of these types on x86-64).
fn rounds_x(dtype: GgmlDType, path: CpuPath, m: usize) -> bool {
    m == 1
        && ROUNDED_ONE_ROW.contains(&dtype)
        && matches!(path, CpuPath::Avx512 | CpuPath::Avx2)
        && cfg!(target_arch = "x86_64")
}

/// The tolerance of a product on `path` against the exact `x Wᵀ` (relative to its largest
/// value): f32 rounding, or where the kernel rounds the activations to 16 bits (each moves by
/// at most 1/65 534 of its block's largest magnitude) the effect of that rounding, which on
/// these random matrices is about 2e-5.
fn tol(dtype: GgmlDType, path: CpuPath, m: usize) -> f32 {
    if rounds_x(dtype, path, m) {
        1e-4
    } else {
        1e-5
    }
}

/// A random `[rows, cols]` matrix of `dtype`, made 7 rows at a time, and its dequantized copy.
fn random(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> (QMatrix, Tensor) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let q = QMatrix::quantize_by_rows(dtype, rows, cols, 7, |_, n| {
        Ok((0..n * cols)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect())
    })
    .unwrap();
    let dense = q.dequantize().unwrap();
    assert_eq!(dense.dims(), &[rows, cols]);
    (q, dense)
}

/// The largest magnitude of `t`.
fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    max_abs(&(got - want).unwrap()) / max_abs(want).max(1e-12)
}

/// Shapes: rows not a multiple of the tiles (300 = 256 + 44), columns two K-quant superblocks.
const ROWS: usize = 300;
const COLS: usize = 512;

#[test]
fn forward_and_backward_match_the_dequantized_weight_for_every_block_type() {
    let dev = Device::Cpu;
    for (i, &dtype) in SUPPORTED.iter().enumerate() {
        let (q, w) = random(dtype, ROWS, COLS, i as u64 + 1);
        // The quantization is real (not a copy of f32 values) and not degenerate.
        assert!(q.size_in_bytes() < ROWS * COLS * 4 / 3, "{dtype:?}");
        assert!(
            w.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.1
        );
        for m in [1usize, 3, 5, 20, 64] {
            let x = Tensor::randn(0f32, 1.0, (m, COLS), &dev).unwrap();
            let got = q.forward(&x).unwrap();
            let want = x.matmul(&w.t().unwrap()).unwrap();
            let e = rel_err(&got, &want);
            let t = tol(dtype, cpu_path::current(), m);
            assert!(e < t, "{dtype:?} forward m={m}: relative error {e}");

            let dy = Tensor::randn(0f32, 1.0, (m, ROWS), &dev).unwrap();
            let got = q.backward_input(&dy).unwrap();
            let want_dx = dy.matmul(&w).unwrap();
            let e = rel_err(&got, &want_dx);
            assert!(e < 1e-5, "{dtype:?} backward m={m}: relative error {e}");

            // The same products on every instruction-set path this CPU runs.
            let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let ds: Vec<f32> = dy.flatten_all().unwrap().to_vec1().unwrap();
            for path in cpu_path::available() {
                let mut out = vec![f32::NAN; m * ROWS];
                q.matmul_t_on(path, &xs, m, &mut out).unwrap();
                let got = Tensor::from_vec(out, (m, ROWS), &dev).unwrap();
                let e = rel_err(&got, &want);
                assert!(
                    e < tol(dtype, path, m),
                    "{dtype:?} {path} forward m={m}: relative error {e}"
                );
                let mut out = vec![f32::NAN; m * COLS];
                q.matmul_on(path, &ds, m, &mut out).unwrap();
                let got = Tensor::from_vec(out, (m, COLS), &dev).unwrap();
                let e = rel_err(&got, &want_dx);
                assert!(
                    e < 1e-5,
                    "{dtype:?} {path} backward m={m}: relative error {e}"
                );
            }
        }
    }
}

/// One activation row (the generation-step kernels, which take blocks two at a time) with an
/// odd number of blocks per row, so the unpaired last block is exercised too: 3 superblocks
/// for the K-quants, 25 blocks of 32 for the others.
#[test]
fn one_row_with_an_odd_block_count_matches_the_dequantized_weight() {
    let dev = Device::Cpu;
    for (i, &dtype) in SUPPORTED.iter().enumerate() {
        let cols = if dtype.block_size() == 256 { 768 } else { 800 };
        let (q, w) = random(dtype, 37, cols, i as u64 + 100);
        let x = Tensor::randn(0f32, 1.0, (1, cols), &dev).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        for path in cpu_path::available() {
            let mut out = vec![f32::NAN; 37];
            q.matmul_t_on(path, &xs, 1, &mut out).unwrap();
            let got = Tensor::from_vec(out, (1, 37), &dev).unwrap();
            let e = rel_err(&got, &want);
            assert!(
                e < tol(dtype, path, 1),
                "{dtype:?} {path} cols={cols}: relative error {e}"
            );
        }
    }
}

#[test]
fn the_differentiable_op_gives_the_dense_gradient() {
    let dev = Device::Cpu;
    for (i, &dtype) in SUPPORTED.iter().enumerate() {
        let (q, w) = random(dtype, ROWS, COLS, 100 + i as u64);
        let x0 = Tensor::randn(0f32, 1.0, (2, 5, COLS), &dev).unwrap();
        let c = Tensor::randn(0f32, 1.0, (2, 5, ROWS), &dev).unwrap();
        let grad_of = |quantized: bool| {
            let x = Var::from_tensor(&x0).unwrap();
            let y = if quantized {
                q.linear(x.as_tensor()).unwrap()
            } else {
                x.as_tensor().broadcast_matmul(&w.t().unwrap()).unwrap()
            };
            let loss = (y.tanh().unwrap() * &c).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            (loss, g.get(x.as_tensor()).unwrap().clone())
        };
        let (lq, gq) = grad_of(true);
        let (ld, gd) = grad_of(false);
        let e = rel_err(&lq, &ld);
        assert!(e < 1e-5, "{dtype:?} loss: relative error {e}");
        let e = rel_err(&gq, &gd);
        assert!(e < 1e-5, "{dtype:?} gradient: relative error {e}");
    }
}

#[test]
fn embedding_rows_and_row_permutation_match_the_dense_weight() {
    for (i, &dtype) in SUPPORTED.iter().enumerate() {
        let (q, w) = random(dtype, 40, 256, 200 + i as u64);
        let ids = [0u32, 39, 7, 7, 21];
        let got = q.rows(&ids).unwrap();
        let idx = Tensor::new(&ids, &Device::Cpu).unwrap();
        let want = w.index_select(&idx, 0).unwrap();
        assert_eq!(rel_err(&got, &want), 0.0, "{dtype:?} rows");
        assert!(
            q.rows(&[40]).is_err(),
            "{dtype:?}: out-of-range id accepted"
        );

        let perm: Vec<usize> = (0..40).map(|r| (r * 17 + 3) % 40).collect();
        let p = q.permute_rows(&perm).unwrap();
        let pidx = Tensor::new(
            perm.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            &Device::Cpu,
        )
        .unwrap();
        let want = w.index_select(&pidx, 0).unwrap();
        assert_eq!(
            rel_err(&p.dequantize().unwrap(), &want),
            0.0,
            "{dtype:?} permute"
        );
    }
}

#[test]
fn bad_shapes_and_types_are_errors() {
    let (q, _) = random(GgmlDType::Q4_0, 8, 64, 9);
    let x = Tensor::zeros((2, 63), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(q.forward(&x).is_err());
    assert!(QMatrix::from_bytes(GgmlDType::Q4_0, &[0u8; 17], 1, 32).is_err());
    assert!(QMatrix::from_bytes(GgmlDType::Q4_0, &[0u8; 18], 1, 33).is_err());
    let e = QMatrix::quantize_by_rows(GgmlDType::F16, 2, 32, 1, |_, n| Ok(vec![0.0; n * 32]));
    assert!(e.is_err());
    assert!(q.permute_rows(&[0, 1]).is_err());
}

/// One activation row with two huge values (as the massive channels of a residual stream):
/// on every path the product stays within the tolerance of the exact one measured against the
/// product of the other values alone, so the outliers are multiplied exactly and do not
/// coarsen their neighbours' rounding.
#[test]
fn one_row_with_outlier_activations_keeps_its_precision() {
    let dev = Device::Cpu;
    for (i, &dtype) in SUPPORTED.iter().enumerate() {
        let cols = if dtype.block_size() == 256 { 768 } else { 800 };
        let (q, w) = random(dtype, 37, cols, i as u64 + 300);
        let mut xs: Vec<f32> = Tensor::randn(0f32, 1.0, (1, cols), &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut rest = xs.clone();
        for (c, v) in [(45usize, 300f32), (700, -250.0)] {
            xs[c] = v;
            rest[c] = 0.0;
        }
        let x = Tensor::from_vec(xs.clone(), (1, cols), &dev).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let rest = Tensor::from_vec(rest, (1, cols), &dev).unwrap();
        let scale = max_abs(&rest.matmul(&w.t().unwrap()).unwrap());
        for path in cpu_path::available() {
            let mut out = vec![f32::NAN; 37];
            q.matmul_t_on(path, &xs, 1, &mut out).unwrap();
            let got = Tensor::from_vec(out, (1, 37), &dev).unwrap();
            let e = max_abs(&(&got - &want).unwrap()) / scale;
            assert!(
                e < tol(dtype, path, 1),
                "{dtype:?} {path}: error {e} of the product without the outliers"
            );
        }
    }
}
