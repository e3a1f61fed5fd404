//! Models for tests: the generated tiny fixtures of every family (`tests/fixtures/models/<arch>`,
//! from `scripts/make_model_fixtures.py`) and tiny seeded random-init Llamas whose weights a test
//! controls, in memory ([`tiny_llama`]) or as an HF folder with the test tokenizer
//! ([`write_tiny_llama`]). Both are laid out by [`crate::cli::bench::llama_weights`], as the
//! benchmark's random models are.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::cli::bench::{llama_weights, LlamaShape};
use crate::model::{LoadOptions, Model};

/// Hidden width of the tiny random-init Llamas.
pub const TINY_HIDDEN: usize = 16;

/// `tests/fixtures/<rel>` of this repository.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The default model (SmolLM2-135M-Instruct GGUF in the cache); panics with how to fetch it
/// when it is missing (the tests that call this need it).
pub fn default_model() -> PathBuf {
    let p = crate::paths::default_model_path();
    assert!(
        p.exists(),
        "the default model is missing at {}: fetch it with scripts/fetch-defaults.sh (these tests need it)",
        p.display()
    );
    p
}

/// The fixture folder of one architecture family (`llama`, `llama3`, `mistral`, `qwen2`,
/// `qwen3`, ...).
pub fn fixture(arch: &str) -> PathBuf {
    fixture_path("models").join(arch)
}

/// The fixture of `arch` loaded on the CPU in `dtype`.
pub fn load_fixture(arch: &str, dtype: DType) -> Model {
    let opts = LoadOptions {
        device: Device::Cpu,
        dtype,
        ..LoadOptions::default()
    };
    Model::load(&fixture(arch), &opts).unwrap()
}

/// The tiny Llama shape: hidden 16, MLP 32, 4 query and 2 key/value heads.
fn tiny_shape(vocab: usize, layers: usize, tied: bool) -> LlamaShape {
    LlamaShape {
        vocab,
        hidden: TINY_HIDDEN,
        intermediate: 32,
        layers,
        heads: 4,
        kv_heads: 2,
        qkv_bias: false,
        tied,
    }
}

/// A tiny Llama in memory on the CPU in `dtype`: `layers` blocks, vocabulary `vocab`, an untied
/// LM head, eos id 1; weights drawn in f64 from N(0, σ²) with `seed` (σ = 1 for the embedding,
/// 0.5 for the head, 0.3 elsewhere).
pub fn tiny_llama(vocab: usize, layers: usize, dtype: DType, seed: u64) -> Model {
    let cfg = serde_json::json!({
        "model_type": "llama", "hidden_size": TINY_HIDDEN, "intermediate_size": 32,
        "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": vocab, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 128, "tie_word_embeddings": false, "eos_token_id": 1
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let g = Normal::new(0.0f64, 1.0).unwrap();
    let dev = Device::Cpu;
    let t = llama_weights(
        &tiny_shape(vocab, layers, false),
        |name, shape| {
            let std = match name {
                "model.embed_tokens.weight" => 1.0,
                "lm_head.weight" => 0.5,
                _ => 0.3,
            };
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n).map(|_| g.sample(&mut rng) * std).collect();
            Tensor::from_vec(v, shape, &dev)?.to_dtype(dtype)
        },
        |n| Tensor::ones(n, dtype, &dev),
    )
    .unwrap();
    Model::from_parts(&cfg, t, None, "tiny", &dev, dtype).unwrap()
}

/// Writes a tiny Llama HF folder into `dir`: `layers` blocks, vocabulary 320, tied embeddings,
/// weights drawn in f32 from N(0, 0.3²) with `seed`, and the test tokenizer fixture
/// (`tests/fixtures/tokenizer_hf`).
pub fn write_tiny_llama(dir: &Path, layers: usize, seed: u64) {
    let fx = fixture_path("tokenizer_hf");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fx.join(f), dir.join(f)).unwrap();
    }
    let vocab = 320;
    let cfg = serde_json::json!({
        "model_type": "llama", "hidden_size": TINY_HIDDEN, "intermediate_size": 32,
        "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": vocab, "rms_norm_eps": 1e-5, "tie_word_embeddings": true,
        "bos_token_id": 1, "eos_token_id": 2
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let g = Normal::new(0.0f32, 0.3).unwrap();
    let t = llama_weights(
        &tiny_shape(vocab, layers, true),
        |_, shape| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| g.sample(&mut rng)).collect();
            Tensor::from_vec(v, shape, &Device::Cpu)
        },
        |n| Tensor::ones(n, DType::F32, &Device::Cpu),
    )
    .unwrap();
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
}

/// The two shard files and the index that [`write_sharded`] writes, in that order.
pub const SHARD_FILES: [&str; 3] = [
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
];

/// Writes the weights of fixture `arch` into `dir` as two safetensors shards (the sorted tensor
/// names split in half) and their `model.safetensors.index.json`, as sharded HF checkpoints
/// are laid out. `config.json` is not copied.
pub fn write_sharded(arch: &str, dir: &Path) {
    let all = candle_core::safetensors::load(fixture(arch).join("model.safetensors"), &Device::Cpu)
        .unwrap();
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [(SHARD_FILES[0], a), (SHARD_FILES[1], b)] {
        let shard: std::collections::HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.join(file)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), file.into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join(SHARD_FILES[2]), index.to_string()).unwrap();
}
