//! Random-init models with weights quantized in memory (`steerlab bench … --random SHAPE
//! --weights q4_0`): every weight matrix is drawn and quantized a few rows at a time, so a
//! 7B-shaped model never holds an f32 matrix whole (peak memory is the quantized size). Builds
//! inputs only; times nothing.
use std::collections::HashMap;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use super::inputs::{llama_tensor_shapes, random_config, LlamaShape};
use super::measure::{BenchError, Result};
use crate::model::fast::quant::{self, QMatrix};
use crate::model::Model;

/// Rows drawn and quantized at a time.
const CHUNK_ROWS: usize = 64;

/// Parses a block type name (`q4_0`, `q4_1`, `q5_0`, `q5_1`, `q8_0`, `q2_k` … `q6_k`).
pub fn parse_block_type(s: &str) -> Option<GgmlDType> {
    let t = match s.trim().to_ascii_lowercase().as_str() {
        "q4_0" => GgmlDType::Q4_0,
        "q4_1" => GgmlDType::Q4_1,
        "q5_0" => GgmlDType::Q5_0,
        "q5_1" => GgmlDType::Q5_1,
        "q8_0" => GgmlDType::Q8_0,
        "q2_k" => GgmlDType::Q2K,
        "q3_k" => GgmlDType::Q3K,
        "q4_k" => GgmlDType::Q4K,
        "q5_k" => GgmlDType::Q5K,
        "q6_k" => GgmlDType::Q6K,
        _ => return None,
    };
    quant::supported(t).then_some(t)
}

/// A model of the shape `spec` (see `RANDOM_SHAPES`) whose weight matrices are random
/// (uniform, sd 0.02, seeded) and held as `dtype` blocks; norms are ones, biases random f32.
/// f32 compute on the CPU.
pub fn random_quantized_model(spec: &str, dtype: GgmlDType, seed: u64) -> Result<Model> {
    let cfg = random_config(spec)?;
    let g = |k: &str| cfg[k].as_u64().unwrap_or(0) as usize;
    let shape = LlamaShape {
        vocab: g("vocab_size"),
        hidden: g("hidden_size"),
        intermediate: g("intermediate_size"),
        layers: g("num_hidden_layers"),
        heads: g("num_attention_heads"),
        kv_heads: g("num_key_value_heads"),
        qkv_bias: cfg["model_type"] == "qwen2",
        tied: true,
    };
    if !shape.hidden.is_multiple_of(dtype.block_size())
        || !shape.intermediate.is_multiple_of(dtype.block_size())
    {
        return Err(BenchError::Invalid(format!(
            "{spec}: widths {} and {} are not whole {dtype:?} blocks of {}",
            shape.hidden,
            shape.intermediate,
            dtype.block_size()
        )));
    }
    let (drawn, normed) = llama_tensor_shapes(&shape);
    // A seeded xorshift generator: uniform on [-a, a] with a = 0.02·√3 (sd 0.02).
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let a = 0.02f32 * 3f32.sqrt();
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    };
    let mut tensors = HashMap::new();
    let mut quantized = HashMap::new();
    for (name, dims) in drawn {
        if let [rows, cols] = dims[..] {
            let q = QMatrix::quantize_by_rows(dtype, rows, cols, CHUNK_ROWS, |_, n| {
                Ok((0..n * cols).map(|_| next()).collect())
            })?;
            quantized.insert(name, q);
        } else {
            let n: usize = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| next()).collect();
            tensors.insert(name, Tensor::from_vec(v, dims, &Device::Cpu)?);
        }
    }
    for name in normed {
        tensors.insert(name, Tensor::ones(shape.hidden, DType::F32, &Device::Cpu)?);
    }
    Ok(Model::from_quantized_parts(
        &cfg,
        tensors,
        quantized,
        None,
        &format!("random:{spec}:{dtype:?}"),
    )?)
}
