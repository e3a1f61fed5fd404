//! The gemma3 family beyond the shared parity lists of `tests/engine_hf.rs` (logits, every
//! residual, padded batches and KV-cache generation against transformers; the gradient paths
//! in `tests/engine_grad.rs` and `tests/fused_ops.rs`): the GGUF file llama.cpp's converter
//! would write for the same tiny model (`scripts/make_gemma_fixtures.py`), both config layouts
//! of transformers, and the errors for what is not supported or missing.
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use steerlab::model::{Batch, HookPoint, Hooks, LoadOptions, Model, RopeScaling};
use steerlab::testing::{assert_close, fixture, fixture_path};

fn folder_config() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("gemma3").join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn folder_tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("gemma3").join("model.safetensors"), &Device::Cpu)
        .unwrap()
}

fn from_parts(cfg: &serde_json::Value, tensors: HashMap<String, Tensor>) -> Model {
    Model::from_parts(cfg, tensors, None, "gemma3", &Device::Cpu, DType::F32).unwrap()
}

fn ids() -> Vec<u32> {
    vec![2, 17, 5, 88, 23, 42, 9, 61, 3]
}

#[test]
fn gguf_matches_transformers_and_the_folder() {
    let path = fixture_path("gguf").join("tiny_gemma3.gguf");
    let model = Model::load(&path, &LoadOptions::default()).unwrap();
    let c = model.config();
    assert_eq!(model.info().architecture, "gemma3");
    assert_eq!(c.sliding_layers, vec![true, false, true]);
    assert_eq!(c.sliding_window, Some(4));
    assert_eq!(c.local_rope_theta, Some(100.0));
    assert_eq!(c.rope_theta, 1000.0);
    assert_eq!(c.rope_scaling, Some(RopeScaling::Linear { factor: 2.0 }));
    assert_eq!(c.final_logit_softcapping, Some(8.0));
    assert_eq!(c.norm_weight_offset, 0.0);
    assert_eq!(model.info().attention, "2 sliding (4) / 1 global");

    // transformers' logits with the attention scale llama.cpp uses for this file.
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_path("gguf").join("tiny_gemma3.json")).unwrap(),
    )
    .unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(r["logits"].clone()).unwrap();
    let want = Tensor::new(want, &Device::Cpu).unwrap();
    let b = Batch::from_sequences(&[ids()], 0, &Device::Cpu).unwrap();
    let mut hg = Hooks::new();
    for l in 0..3 {
        hg.capture(HookPoint::ResidPost(l));
    }
    let got = model.forward(&b, &mut hg).unwrap().squeeze(0).unwrap();
    assert_close("gguf logits vs transformers", &got, &want, 1e-4);

    // The HF folder with the same attention scale: every residual agrees.
    let mut cfg = folder_config();
    cfg["query_pre_attn_scalar"] = serde_json::json!(24);
    let folder = from_parts(&cfg, folder_tensors());
    let mut hh = Hooks::new();
    for l in 0..3 {
        hh.capture(HookPoint::ResidPost(l));
    }
    let lh = folder.forward(&b, &mut hh).unwrap().squeeze(0).unwrap();
    assert_close("gguf vs folder logits", &got, &lh, 1e-5);
    for l in 0..3 {
        let p = HookPoint::ResidPost(l);
        assert_close(
            &format!("gguf vs folder {p}"),
            hg.captured(p).unwrap(),
            hh.captured(p).unwrap(),
            1e-5,
        );
    }
    // The unscaled fixture really differs (so the scale is exercised).
    let plain = Model::load(&fixture("gemma3"), &LoadOptions::default()).unwrap();
    let lp = plain
        .forward(&b, &mut Hooks::new())
        .unwrap()
        .squeeze(0)
        .unwrap();
    assert!(steerlab::testing::rel_err(&lp, &lh) > 1e-3);
}

#[test]
fn classic_config_layout_gives_the_same_model() {
    // transformers < 5: sliding_window_pattern, rope_theta, rope_local_base_freq, rope_scaling.
    let mut cfg = folder_config();
    let o = cfg.as_object_mut().unwrap();
    o.remove("layer_types");
    o.remove("rope_parameters");
    o.insert("sliding_window_pattern".into(), 2.into());
    o.insert("rope_theta".into(), 1000.0.into());
    o.insert("rope_local_base_freq".into(), 100.0.into());
    o.insert(
        "rope_scaling".into(),
        serde_json::json!({"rope_type": "linear", "factor": 2.0}),
    );
    let classic = from_parts(&cfg, folder_tensors());
    assert_eq!(classic.config().sliding_layers, vec![true, false, true]);
    let modern = Model::load(&fixture("gemma3"), &LoadOptions::default()).unwrap();
    let b = Batch::from_sequences(&[ids()], 0, &Device::Cpu).unwrap();
    let a = classic.forward(&b, &mut Hooks::new()).unwrap();
    let m = modern.forward(&b, &mut Hooks::new()).unwrap();
    assert_close("classic vs modern layout", &a, &m, 1e-6);
}

#[test]
fn unsupported_settings_and_missing_tensors_are_named() {
    let err = |cfg: &serde_json::Value, tensors| {
        Model::from_parts(cfg, tensors, None, "gemma3-dir", &Device::Cpu, DType::F32)
            .unwrap_err()
            .to_string()
    };
    let mut cfg = folder_config();
    cfg["attn_logit_softcapping"] = serde_json::json!(50.0);
    let e = err(&cfg, folder_tensors());
    assert!(e.contains("attn_logit_softcapping"), "{e}");

    let mut cfg = folder_config();
    cfg["hidden_activation"] = serde_json::json!("relu");
    let e = err(&cfg, folder_tensors());
    assert!(e.contains("hidden_activation") && e.contains("relu"), "{e}");

    let mut cfg = folder_config();
    cfg["model_type"] = serde_json::json!("gemma3");
    cfg["text_config"] = serde_json::json!({});
    let e = err(&cfg, folder_tensors());
    assert!(e.contains("multimodal") && e.contains("gemma3_text"), "{e}");

    let mut cfg = folder_config();
    cfg["model_type"] = serde_json::json!("gemma4");
    let e = err(&cfg, folder_tensors());
    assert!(
        e.contains("gemma4") && e.contains("gemma2, gemma3_text"),
        "{e}"
    );

    let mut t = folder_tensors();
    t.remove("model.layers.1.post_feedforward_layernorm.weight");
    let e = err(&folder_config(), t);
    assert!(
        e.contains("gemma3-dir") && e.contains("model.layers.1.post_feedforward_layernorm.weight"),
        "{e}"
    );

    let mut t = folder_tensors();
    t.insert(
        "model.layers.0.pre_feedforward_layernorm.weight".into(),
        Tensor::zeros(63, DType::F32, &Device::Cpu).unwrap(),
    );
    let e = err(&folder_config(), t);
    assert!(
        e.contains("model.layers.0.pre_feedforward_layernorm.weight"),
        "{e}"
    );
}
