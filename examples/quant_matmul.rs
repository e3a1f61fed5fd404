//! Quantized matmul throughput on this machine: candle's `QMatMul` (activations quantized to
//! 8 bits, integer dot products), steerlab's quantized kernels (`model::fast::quant`: f32
//! activations, tiles dequantized), for m < 8 also its previous row-at-a-time kernel (the
//! baseline of the fused one), and the f32 packed GEMM on the dequantized weight, per
//! linear-layer shape and row count, all in one process. `cargo run --release --example
//! quant_matmul [q4_1|q4_0|q5_0|q8_0|q4_k|q5_k|q6_k] [small]`.
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use steerlab::model::fast::cpu_matmul::PackedLinear;
use steerlab::model::fast::quant::QMatrix;

fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / iters as f64
}

fn main() {
    let ty = match std::env::args().nth(1).as_deref().unwrap_or("q4_1") {
        "q4_0" => GgmlDType::Q4_0,
        "q5_0" => GgmlDType::Q5_0,
        "q8_0" => GgmlDType::Q8_0,
        "q4_k" => GgmlDType::Q4K,
        "q5_k" => GgmlDType::Q5K,
        "q6_k" => GgmlDType::Q6K,
        _ => GgmlDType::Q4_1,
    };
    let dev = Device::Cpu;
    let path = steerlab::model::fast::cpu_path::current();
    println!(
        "{ty:?}, {path} path: ms per call (GFLOP/s); candle QMatMul | steerlab quant | \
         steerlab row-at-a-time (before the fused kernel; m < 8) | f32 packed"
    );
    // `small` as a second argument: only m = 1 and 4 (generation), which is quick.
    let ms: &[usize] = if std::env::args().nth(2).as_deref() == Some("small") {
        &[1, 4]
    } else {
        &[1, 4, 128]
    };
    for (n, k) in [
        (1536, 576),
        (576, 1536),
        (2048, 640),
        (640, 2048),
        (4096, 4096),
        (11008, 4096),
    ] {
        if ty.block_size() == 256 && k % 256 != 0 {
            continue;
        }
        let w = Tensor::randn(0f32, 0.02, (n, k), &dev).unwrap();
        let qt = QTensor::quantize(&w, ty).unwrap();
        let ours = QMatrix::quantize_by_rows(ty, n, k, 64, |r, c| {
            Ok(w.narrow(0, r, c)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap())
        })
        .unwrap();
        let deq = ours.dequantize().unwrap();
        let packed = PackedLinear::from_tensors(&deq, None).unwrap();
        let qm = QMatMul::from_qtensor(qt).unwrap();
        for &m in ms {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let iters = if m == 128 { 5 } else { 30 };
            let fl = 2.0 * (m * n * k) as f64 / 1e9;
            let a = time(iters, || {
                qm.forward(&x).unwrap();
            });
            let b = time(iters, || {
                ours.forward(&x).unwrap();
            });
            let c = time(iters, || {
                packed.forward(&x).unwrap();
            });
            let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let mut out = vec![0f32; m * n];
            let old = (m < 8).then(|| {
                time(iters, || {
                    ours.matmul_t_rowwise_on(path, &xs, m, &mut out).unwrap();
                })
            });
            let y1 = qm.forward(&x).unwrap();
            let y2 = ours.forward(&x).unwrap();
            let yd = x.matmul(&deq.t().unwrap()).unwrap();
            let err = |y: &Tensor| {
                let d = (y - &yd).unwrap().abs().unwrap().max_all().unwrap();
                let s = yd.abs().unwrap().max_all().unwrap();
                d.to_scalar::<f32>().unwrap() / s.to_scalar::<f32>().unwrap()
            };
            let old = old
                .map(|o| format!("{:7.3} ({:5.1})", o * 1e3, fl / o))
                .unwrap_or_else(|| format!("{:>15}", "-"));
            println!(
                "[{n:5} x {k:5}] m={m:3}: {:7.3} ({:5.1}) | {:7.3} ({:5.1}) | {old} | {:7.3} ({:5.1})   rel err vs dequantized: candle {:.1e}, ours {:.1e}",
                a * 1e3, fl / a, b * 1e3, fl / b, c * 1e3, fl / c, err(&y1), err(&y2)
            );
        }
    }
}
