//! Quantized matmul throughput on this machine: candle's `QMatMul` (activations quantized to
//! 8 bits, integer dot products), steerlab's quantized kernels (`model::fast::quant`: f32
//! activations, tiles dequantized) and the f32 packed GEMM on the dequantized weight, per
//! linear-layer shape and row count. `cargo run --release --example quant_matmul [q4_1|q4_0|q4_k|q8_0]`.
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
        "q4_k" => GgmlDType::Q4K,
        "q8_0" => GgmlDType::Q8_0,
        _ => GgmlDType::Q4_1,
    };
    let dev = Device::Cpu;
    println!("{ty:?}: ms per call (GFLOP/s); candle QMatMul | steerlab quant | f32 packed");
    for (n, k) in [(1536, 576), (576, 1536), (4096, 4096), (11008, 4096)] {
        if ty == GgmlDType::Q4K && k % 256 != 0 {
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
        for m in [1usize, 4, 128] {
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
            let y1 = qm.forward(&x).unwrap();
            let y2 = ours.forward(&x).unwrap();
            let yd = x.matmul(&deq.t().unwrap()).unwrap();
            let err = |y: &Tensor| {
                let d = (y - &yd).unwrap().abs().unwrap().max_all().unwrap();
                let s = yd.abs().unwrap().max_all().unwrap();
                d.to_scalar::<f32>().unwrap() / s.to_scalar::<f32>().unwrap()
            };
            println!(
                "[{n:5} x {k:5}] m={m:3}: {:7.3} ({:5.1}) | {:7.3} ({:5.1}) | {:7.3} ({:5.1})   rel err vs dequantized: candle {:.1e}, ours {:.1e}",
                a * 1e3, fl / a, b * 1e3, fl / b, c * 1e3, fl / c, err(&y1), err(&y2)
            );
        }
    }
}
