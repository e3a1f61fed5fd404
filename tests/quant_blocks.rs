//! The quantized-weight kernels against an independent reference for every supported block
//! type: random GGUF blocks dequantized by the Python `gguf` package and products computed in
//! float64 by numpy (`scripts/make_quant_blocks_fixture.py` wrote
//! `tests/fixtures/gguf/quant_blocks.json`). Checks the dequantized values, the forward `x Wᵀ`
//! and the backward `dy W` on one row (the dot / axpy loops) and eight rows (the tiled GEMM),
//! on every instruction-set path this CPU runs. `tests/quant_kernels.rs` checks the same
//! kernels on larger shapes against candle's dequantized weight.
use candle_core::quantized::GgmlDType;
use steerlab::model::fast::cpu_path;
use steerlab::model::fast::quant::{QMatrix, SUPPORTED};

fn hex_bytes(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_f32(s: &str) -> Vec<f32> {
    hex_bytes(s)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The fixture's activations `[m, n]` (the same formula as the script's `act`).
fn act(m: usize, n: usize, salt: usize) -> Vec<f32> {
    (0..m * n)
        .map(|e| {
            let (i, j) = (e / n, e % n);
            (((31 * i + 17 * j + salt) % 17) as f32 - 8.0) / 8.0
        })
        .collect()
}

fn name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        other => panic!("no fixture name for {other:?}"),
    }
}

/// `max |got - want| / max |want|`.
fn rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let s = want.iter().map(|v| v.abs()).fold(0f32, f32::max);
    d / s.max(1e-12)
}

#[test]
fn every_block_type_matches_the_gguf_package_and_numpy() {
    let path = steerlab::testing::fixture_path("gguf/quant_blocks.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (rows, cols, m) = (
        fx["rows"].as_u64().unwrap() as usize,
        fx["cols"].as_u64().unwrap() as usize,
        fx["m"].as_u64().unwrap() as usize,
    );
    let x = act(m, cols, 1);
    let dy = act(m, rows, 5);
    for &dtype in SUPPORTED {
        let t = &fx["types"][name(dtype)];
        assert!(t.is_object(), "the fixture lacks {dtype:?}");
        let q = QMatrix::from_bytes(dtype, &hex_bytes(t["bytes"].as_str().unwrap()), rows, cols)
            .unwrap();
        let w = hex_f32(t["weight"].as_str().unwrap());
        let y = hex_f32(t["y"].as_str().unwrap());
        let dx = hex_f32(t["dx"].as_str().unwrap());

        let got: Vec<f32> = q
            .dequantize()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let e = rel(&got, &w);
        assert!(e < 1e-6, "{dtype:?} dequantized: relative error {e}");
        let ids: Vec<u32> = (0..rows as u32).rev().collect();
        let got: Vec<f32> = q
            .rows(&ids)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&r| w[r as usize * cols..(r as usize + 1) * cols].to_vec())
            .collect();
        assert!(rel(&got, &want) < 1e-6, "{dtype:?} embedding rows");

        for path in cpu_path::available() {
            for mm in [1, m] {
                let mut out = vec![f32::NAN; mm * rows];
                q.matmul_t_on(path, &x[..mm * cols], mm, &mut out).unwrap();
                let e = rel(&out, &y[..mm * rows]);
                assert!(
                    e < 1e-5,
                    "{dtype:?} {path} forward m={mm}: relative error {e}"
                );
                let mut out = vec![f32::NAN; mm * cols];
                q.matmul_on(path, &dy[..mm * rows], mm, &mut out).unwrap();
                let e = rel(&out, &dx[..mm * cols]);
                assert!(
                    e < 1e-5,
                    "{dtype:?} {path} backward m={mm}: relative error {e}"
                );
            }
        }
    }
}
