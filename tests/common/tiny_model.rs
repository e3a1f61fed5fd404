//! A tiny seeded random-init Llama as an HF folder (with the test tokenizer fixture), for the
//! steering tests that need a model whose weights they control (`#[path]`-included by
//! tests/app_steer.rs and tests/steer_cli.rs). Test scaffolding only.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Hidden width of the model.
pub const HIDDEN: usize = 16;

/// Writes the model with `layers` blocks, weights drawn from N(0, 0.3²) with `seed`, into `dir`.
pub fn write(dir: &Path, layers: usize, seed: u64) {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_hf");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fx.join(f), dir.join(f)).unwrap();
    }
    let vocab = 320;
    let cfg = serde_json::json!({
        "model_type": "llama", "hidden_size": HIDDEN, "intermediate_size": 32,
        "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": vocab, "rms_norm_eps": 1e-5, "tie_word_embeddings": true,
        "bos_token_id": 1, "eos_token_id": 2
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let g = Normal::new(0.0f32, 0.3).unwrap();
    let mut r = |rows: usize, cols: usize| {
        let v: Vec<f32> = (0..rows * cols).map(|_| g.sample(&mut rng)).collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    };
    let ones = || Tensor::ones(HIDDEN, DType::F32, &Device::Cpu).unwrap();
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("model.embed_tokens.weight".into(), r(vocab, HIDDEN));
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        t.insert(format!("{p}.self_attn.q_proj.weight"), r(16, HIDDEN));
        t.insert(format!("{p}.self_attn.k_proj.weight"), r(8, HIDDEN));
        t.insert(format!("{p}.self_attn.v_proj.weight"), r(8, HIDDEN));
        t.insert(format!("{p}.self_attn.o_proj.weight"), r(HIDDEN, 16));
        t.insert(format!("{p}.mlp.gate_proj.weight"), r(32, HIDDEN));
        t.insert(format!("{p}.mlp.up_proj.weight"), r(32, HIDDEN));
        t.insert(format!("{p}.mlp.down_proj.weight"), r(HIDDEN, 32));
        for n in ["input_layernorm", "post_attention_layernorm"] {
            t.insert(format!("{p}.{n}.weight"), ones());
        }
    }
    t.insert("model.norm.weight".into(), ones());
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
}
