//! The inputs of the model benchmarks, rebuilt exactly by the PyTorch twins
//! (`scripts/bench_common.py`): random-init models of named shapes (`--random`), the token-id
//! pattern of the forward benchmark and the BiPO benchmark pairs. Builds inputs only; times
//! nothing.
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};

use super::measure::{BenchError, Result};
use crate::model::Model;
use crate::steer::bipo::PairTokens;

/// Random-init model shapes, named `family:size` (`--random`).
pub const RANDOM_SHAPES: &[&str] = &[
    "llama:smollm2",
    "qwen2:0.5b",
    "qwen2:1.5b",
    "llama:tiny",
    "llama:7b",
];

/// The HF-style `config.json` of a random-init shape (see [`RANDOM_SHAPES`]). The same dims are
/// hard-coded in `scripts/bench_common.py`.
pub fn random_config(spec: &str) -> Result<serde_json::Value> {
    // (model_type, hidden, intermediate, layers, heads, kv heads, vocab, rope theta, eps)
    let (mt, h, i, l, nh, nkv, v, theta, eps) = match spec.trim().to_ascii_lowercase().as_str() {
        "llama:smollm2" | "llama:smollm2-135m" => {
            ("llama", 576, 1536, 30, 9, 3, 49152, 100000.0, 1e-5)
        }
        "qwen2:0.5b" => ("qwen2", 896, 4864, 24, 14, 2, 151936, 1e6, 1e-6),
        "qwen2:1.5b" => ("qwen2", 1536, 8960, 28, 12, 2, 151936, 1e6, 1e-6),
        "llama:tiny" => ("llama", 64, 128, 4, 4, 2, 256, 10000.0, 1e-5),
        // Llama-2-7B's dimensions (tied head here): for quantized-in-memory runs (`--weights q4_0`).
        "llama:7b" => ("llama", 4096, 11008, 32, 32, 32, 32000, 10000.0, 1e-5),
        other => {
            return Err(BenchError::Invalid(format!(
                "unknown random shape `{other}` (use one of {})",
                RANDOM_SHAPES.join(", ")
            )))
        }
    };
    Ok(serde_json::json!({
        "model_type": mt,
        "hidden_size": h,
        "intermediate_size": i,
        "num_hidden_layers": l,
        "num_attention_heads": nh,
        "num_key_value_heads": nkv,
        "vocab_size": v,
        "rope_theta": theta,
        "rms_norm_eps": eps,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
    }))
}

/// A model of the shape `spec` with random weights (normal, sd 0.02; norms 1), created directly
/// on `device` in `dtype`, so a GPU run needs no download.
pub fn random_model(spec: &str, device: &Device, dtype: DType, seed: u64) -> Result<Model> {
    let cfg = random_config(spec)?;
    let g = |k: &str| cfg[k].as_u64().unwrap_or(0) as usize;
    let (h, inter, layers, v) = (
        g("hidden_size"),
        g("intermediate_size"),
        g("num_hidden_layers"),
        g("vocab_size"),
    );
    let qkv_bias = cfg["model_type"] == "qwen2";
    // The CPU device cannot be seeded: draw CPU weights from a seeded host generator.
    let host = std::cell::RefCell::new(rand::rngs::StdRng::seed_from_u64(seed));
    if !device.is_cpu() {
        device.set_seed(seed)?;
    }
    let rand = |shape: &[usize]| -> Result<Tensor> {
        let t = if device.is_cpu() {
            let n: usize = shape.iter().product();
            let mut rng = host.borrow_mut();
            let v: Vec<f32> = (0..n)
                .map(|_| 0.02 * rng.sample::<f32, _>(rand_distr::StandardNormal))
                .collect();
            Tensor::from_vec(v, shape, device)?
        } else {
            Tensor::randn(0f32, 0.02, shape, device)?
        };
        Ok(t.to_dtype(dtype)?)
    };
    let shape = LlamaShape {
        vocab: v,
        hidden: h,
        intermediate: inter,
        layers,
        heads: g("num_attention_heads"),
        kv_heads: g("num_key_value_heads"),
        qkv_bias,
        tied: true,
    };
    let t = llama_weights(
        &shape,
        |_, s| rand(s),
        |n| Ok(Tensor::ones(n, dtype, device)?),
    )?;
    Ok(Model::from_parts(
        &cfg,
        t,
        None,
        &format!("random:{spec}"),
        device,
        dtype,
    )?)
}

/// The dimensions of a Llama-layout checkpoint for [`llama_weights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlamaShape {
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads (head dim = hidden / heads).
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Whether q/k/v projections carry a bias (Qwen2).
    pub qkv_bias: bool,
    /// Whether the LM head is the embedding (no `lm_head.weight`).
    pub tied: bool,
}

/// The tensors [`llama_weights`] makes: the drawn ones (name, shape) in drawing order, and the
/// norm weights (each `[hidden]`).
pub fn llama_tensor_shapes(s: &LlamaShape) -> (Vec<(String, Vec<usize>)>, Vec<String>) {
    let (h, inter) = (s.hidden, s.intermediate);
    let d = h / s.heads.max(1);
    let (q, kv) = (s.heads * d, s.kv_heads * d);
    // Drawn in this order; norms are ones.
    let mut drawn: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![s.vocab, h])];
    if !s.tied {
        drawn.push(("lm_head.weight".into(), vec![s.vocab, h]));
    }
    let mut normed = vec!["model.norm.weight".to_string()];
    for l in 0..s.layers {
        let p = format!("model.layers.{l}");
        normed.push(format!("{p}.input_layernorm.weight"));
        normed.push(format!("{p}.post_attention_layernorm.weight"));
        for (name, out, inp) in [
            ("self_attn.q_proj", q, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q),
            ("mlp.gate_proj", inter, h),
            ("mlp.up_proj", inter, h),
            ("mlp.down_proj", h, inter),
        ] {
            drawn.push((format!("{p}.{name}.weight"), vec![out, inp]));
            if s.qkv_bias && name != "self_attn.o_proj" && name.starts_with("self_attn") {
                drawn.push((format!("{p}.{name}.bias"), vec![out]));
            }
        }
    }
    (drawn, normed)
}

/// The tensors of a Llama-layout checkpoint (HF names): `draw(name, shape)` makes every weight
/// matrix and bias, called in a fixed order (embedding, LM head when untied, then per block q,
/// k, v (each followed by its bias when `qkv_bias`), o, gate, up, down), so a seeded `draw`
/// gives the same weights every time; `ones(n)` makes every norm weight.
pub fn llama_weights<E>(
    s: &LlamaShape,
    mut draw: impl FnMut(&str, &[usize]) -> std::result::Result<Tensor, E>,
    mut ones: impl FnMut(usize) -> std::result::Result<Tensor, E>,
) -> std::result::Result<HashMap<String, Tensor>, E> {
    let (drawn, normed) = llama_tensor_shapes(s);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    for (name, shape) in drawn {
        let x = draw(&name, &shape)?;
        t.insert(name, x);
    }
    for name in normed {
        t.insert(name, ones(s.hidden)?);
    }
    Ok(t)
}

/// The token ids every forward benchmark uses (no tokenizer involved); the same pattern is in
/// `scripts/bench_common.py`: `ids[b][t] = (b·131 + t·7919 + 13) mod vocab`.
pub fn bench_ids(batch: usize, seq: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| ((b * 131 + t * 7919 + 13) % vocab) as u32)
                .collect()
        })
        .collect()
}

/// The BiPO benchmark pairs: `batch` pairs of total length `seq` (prompt `seq/2` tokens, chosen
/// and rejected responses `seq - seq/2` tokens each), ids as in `scripts/bench_common.py`.
pub fn bench_pairs(batch: usize, seq: usize, vocab: usize) -> Vec<PairTokens> {
    let p = (seq / 2).max(1);
    let r = seq.saturating_sub(p).max(1);
    let tok = |x: usize| (x % vocab) as u32;
    (0..batch)
        .map(|b| PairTokens {
            prompt: (0..p).map(|t| tok(b * 131 + t * 7919 + 13)).collect(),
            chosen: (0..r).map(|t| tok(b * 137 + t * 4099 + 29)).collect(),
            rejected: (0..r).map(|t| tok(b * 139 + t * 6151 + 31)).collect(),
        })
        .collect()
}
