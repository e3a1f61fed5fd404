//! Phi-3 and the mixture-of-experts families beyond the shared parity lists of
//! `tests/engine_hf.rs` (logits, every residual, padded batches, KV-cache generation against
//! transformers) and `tests/engine_grad.rs` (gradients against finite differences, fused
//! against composed): LongRoPE's long factors, the features the fixtures must exercise, the
//! router-logit hook, BiPO through MoE blocks, and the GGUF files llama.cpp's converter would
//! write for the same weights (`scripts/make_reach_fixtures.py`), gemma2 included.
use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use steerlab::jobs::NoProgress;
use steerlab::model::{
    Batch, HookPoint, Hooks, LoadOptions, Model, ModelError, Positions, RopeScaling,
};
use steerlab::steer::bipo::{BipoProblem, PairTokens, Provenance, StopReason};
use steerlab::steer::{train_bipo, BipoConfig, TrainData};
use steerlab::testing::{assert_close, fixture, fixture_path, load_fixture, rel_err};

fn reference(arch: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(arch).join("reference.safetensors"), &Device::Cpu)
        .unwrap()
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|x| x as u32)
        .collect()
}

fn gguf(name: &str) -> PathBuf {
    fixture_path("gguf").join(name)
}

fn load(p: &std::path::Path) -> Model {
    Model::load(p, &LoadOptions::default()).unwrap()
}

fn logits(model: &Model, ids: &[u32], hooks: &mut Hooks) -> Tensor {
    let b = Batch::from_sequences(&[ids.to_vec()], 0, &Device::Cpu).unwrap();
    model.forward(&b, hooks).unwrap().squeeze(0).unwrap()
}

/// Logits of prompt 0 of `arch` with its config.json edited by `edit`, and the reference.
fn logits_with_config(arch: &str, edit: impl Fn(&mut serde_json::Value)) -> (Tensor, Tensor) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture(arch).join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(arch).join("config.json")).unwrap())
            .unwrap();
    edit(&mut cfg);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let model = load(dir.path());
    let r = reference(arch);
    (
        logits(&model, &ids(&r["ids_0"]), &mut Hooks::new()),
        r["logits_0"].clone(),
    )
}

#[test]
fn phi3_long_prompt_uses_the_long_factors_as_transformers_does() {
    let model = load(&fixture("phi3"));
    let c = model.config();
    assert_eq!((c.head_dim, c.rotary_dim), (16, 12));
    match &c.rope_scaling {
        Some(RopeScaling::LongRope {
            original_max_position_embeddings,
            attention_factor,
            short_factor,
            ..
        }) => {
            assert_eq!(*original_max_position_embeddings, 64);
            assert_eq!(short_factor.len(), 6);
            // sqrt(1 + ln(256 / 64) / ln 64)
            assert!((attention_factor - (4f64 / 3.0).sqrt()).abs() < 1e-12);
        }
        other => panic!("expected LongRoPE, got {other:?}"),
    }
    let r = reference("phi3");
    for composed in [false, true] {
        let mut h = Hooks::new();
        h.set_force_composed(composed);
        let got = logits(&model, &ids(&r["ids_long"]), &mut h);
        assert_close(
            &format!("phi3 70 tokens (composed={composed})"),
            &got,
            &r["logits_long"],
            1e-4,
        );
    }
}

#[test]
fn phi3_fixture_exercises_partial_rotary_longrope_and_the_window() {
    for (what, edit) in [
        (
            "partial rotary",
            Box::new(|c: &mut serde_json::Value| {
                c["partial_rotary_factor"] = 1.0.into();
                c["rope_parameters"]["partial_rotary_factor"] = 1.0.into();
                let f = vec![1.0; 8];
                c["rope_parameters"]["short_factor"] = f.clone().into();
                c["rope_parameters"]["long_factor"] = f.into();
            }) as Box<dyn Fn(&mut serde_json::Value)>,
        ),
        (
            "longrope",
            Box::new(|c: &mut serde_json::Value| {
                c["rope_parameters"] =
                    serde_json::json!({"rope_type": "default", "rope_theta": 1000.0});
            }),
        ),
        (
            "sliding window",
            Box::new(|c: &mut serde_json::Value| c["sliding_window"] = serde_json::Value::Null),
        ),
    ] {
        let (got, want) = logits_with_config("phi3", edit);
        assert!(
            rel_err(&got, &want) > 1e-2,
            "{what} does not matter in the phi3 fixture"
        );
    }
    // The classic layout (top-level rope_theta, rope_scaling of type `su`, the original
    // context at the top level) reads the same.
    let (got, want) = logits_with_config("phi3", |c| {
        let mut p = c["rope_parameters"].take();
        c["rope_theta"] = p["rope_theta"].take();
        let o = p.as_object_mut().unwrap();
        for k in [
            "rope_theta",
            "rope_type",
            "original_max_position_embeddings",
        ] {
            o.remove(k);
        }
        o.insert("type".into(), "su".into());
        c["rope_scaling"] = p;
        c.as_object_mut().unwrap().remove("rope_parameters");
    });
    assert_close("phi3 classic layout", &got, &want, 1e-4);
}

#[test]
fn router_logits_hook_reads_what_transformers_computes() {
    for (arch, sparse) in [("mixtral", vec![0, 1, 2]), ("qwen3_moe", vec![0, 2])] {
        let model = load(&fixture(arch));
        let r = reference(arch);
        for composed in [false, true] {
            let mut h = Hooks::new();
            h.set_force_composed(composed);
            for &l in &sparse {
                h.capture(HookPoint::RouterLogits(l));
            }
            logits(&model, &ids(&r["ids_0"]), &mut h);
            for &l in &sparse {
                let p = HookPoint::RouterLogits(l);
                let got = h.captured(p).unwrap().squeeze(0).unwrap();
                assert_close(
                    &format!("{arch} {p} (composed={composed})"),
                    &got,
                    &r[&format!("router_0_l{l}")],
                    1e-4,
                );
            }
        }
        // The hook's name parses back; a block without a router refuses it.
        let p: HookPoint = "blocks.2.mlp.hook_router_logits".parse().unwrap();
        assert_eq!(p, HookPoint::RouterLogits(2));
    }
    let qwen = load(&fixture("qwen3_moe"));
    assert_eq!(
        qwen.info().experts.as_deref(),
        Some("4 experts, top 2, on 2 of 3 layers")
    );
    assert_eq!(
        load(&fixture("mixtral")).info().experts.as_deref(),
        Some("4 experts, top 2")
    );
    let mut h = Hooks::new();
    h.capture(HookPoint::RouterLogits(1));
    let b = Batch::from_sequences(&[vec![2, 5, 7]], 0, &Device::Cpu).unwrap();
    match qwen.forward(&b, &mut h) {
        Err(ModelError::BadHook(m)) => assert!(m.contains("no mixture-of-experts router"), "{m}"),
        other => panic!("expected BadHook, got {other:?}"),
    }
    let llama = load_fixture("llama", DType::F32);
    let mut h = Hooks::new();
    h.capture(HookPoint::RouterLogits(0));
    assert!(matches!(
        llama.forward(&b, &mut h),
        Err(ModelError::BadHook(_))
    ));
}

#[test]
fn adding_to_router_logits_reroutes_and_checks_the_width() {
    let model = load(&fixture("mixtral"));
    let r = reference("mixtral");
    let prompt = ids(&r["ids_0"]);
    let plain = logits(&model, &prompt, &mut Hooks::new());
    // A large bias on expert 3 routes every token of block 1 through it.
    let mut h = Hooks::new();
    let bias = Tensor::new(&[0f32, 0.0, 0.0, 50.0], &Device::Cpu).unwrap();
    h.add(HookPoint::RouterLogits(1), bias, 1.0, Positions::All)
        .capture(HookPoint::RouterLogits(1));
    let steered = logits(&model, &prompt, &mut h);
    assert!(
        rel_err(&steered, &plain) > 1e-3,
        "routing bias changed nothing"
    );
    let captured = h.captured(HookPoint::RouterLogits(1)).unwrap();
    let want = r["router_0_l1"]
        .unsqueeze(0)
        .unwrap()
        .broadcast_add(&Tensor::new(&[0f32, 0.0, 0.0, 50.0], &Device::Cpu).unwrap())
        .unwrap();
    assert_close("captured after the add", captured, &want, 1e-4);
    // A vector of the residual's width is not a router vector.
    let mut h = Hooks::new();
    h.add(
        HookPoint::RouterLogits(0),
        Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap(),
        1.0,
        Positions::All,
    );
    let b = Batch::from_sequences(&[prompt], 0, &Device::Cpu).unwrap();
    assert!(matches!(
        model.forward(&b, &mut h),
        Err(ModelError::WidthMismatch { expected: 4, .. })
    ));
}

#[test]
fn bipo_trains_through_mixture_of_experts_blocks() {
    for arch in ["mixtral", "qwen3_moe"] {
        let model = load_fixture(arch, DType::F32);
        let pairs: Vec<PairTokens> = (0..8u32)
            .map(|i| PairTokens {
                prompt: vec![2, 10 + i, 20 + i, 30],
                chosen: vec![40 + i % 3, 41, 42],
                rejected: vec![70 + i % 3, 71],
            })
            .collect();
        let cfg = BipoConfig {
            layers: vec![0],
            epochs: 4,
            batch_size: 4,
            lr: 0.05,
            beta: 0.5,
            ..Default::default()
        };
        let data = TrainData::Pairs(pairs);
        let problem = BipoProblem::new(&model, &data, &cfg, &NoProgress).unwrap();
        let all: Vec<usize> = (0..8).collect();
        let loss_at = |v: &Tensor| -> f32 {
            problem
                .batch_loss(std::slice::from_ref(v), &all, 1.0, 0.0)
                .unwrap()
                .0
                .to_scalar::<f32>()
                .unwrap()
        };
        let before = loss_at(&Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap());
        assert!(
            (before - std::f32::consts::LN_2).abs() < 1e-5,
            "{arch}: {before}"
        );
        let out = train_bipo(
            &model,
            &data,
            None,
            &cfg,
            &Provenance::default(),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(out.stop, StopReason::Finished, "{arch}");
        let v = out.vector.layers[&0].clone();
        let after = loss_at(&Tensor::from_slice(&v, 64, &Device::Cpu).unwrap());
        assert!(
            after.is_finite() && after < before - 0.01,
            "{arch}: BiPO loss {before} → {after}"
        );
    }
}

/// Logits and every `hook_resid_post` of a GGUF load equal the HF-folder load's.
fn gguf_same_as_folder(file: &str, folder: &str, arch: &str) {
    let g = load(&gguf(file));
    let h = load(&fixture(folder));
    assert_eq!(g.info().architecture, arch);
    assert_eq!(g.config().moe, h.config().moe, "{arch}");
    assert_eq!(g.config().rotary_dim, h.config().rotary_dim, "{arch}");
    assert_eq!(
        g.config().sliding_window,
        h.config().sliding_window,
        "{arch}"
    );
    // 70 positions: past phi3's original context of 64 (its long factors).
    for len in [9, 70] {
        let prompt: Vec<u32> = (0..len).map(|i| (i * 7 + 3) % 90 + 4).collect();
        let mut hg = Hooks::new();
        let mut hh = Hooks::new();
        for l in 0..h.n_layers() {
            hg.capture(HookPoint::ResidPost(l));
            hh.capture(HookPoint::ResidPost(l));
        }
        let lg = logits(&g, &prompt, &mut hg);
        let lh = logits(&h, &prompt, &mut hh);
        assert_close(&format!("{arch} {len} logits"), &lg, &lh, 1e-5);
        for l in 0..h.n_layers() {
            let p = HookPoint::ResidPost(l);
            assert_close(
                &format!("{arch} {len} {p}"),
                hg.captured(p).unwrap(),
                hh.captured(p).unwrap(),
                1e-5,
            );
        }
    }
}

#[test]
fn phi3_gguf_matches_its_hf_folder() {
    gguf_same_as_folder("tiny_phi3.gguf", "phi3", "phi3");
}

#[test]
fn mixtral_gguf_matches_its_hf_folder() {
    gguf_same_as_folder("tiny_mixtral.gguf", "mixtral", "mixtral");
}

#[test]
fn qwen3_moe_gguf_matches_its_hf_folder() {
    gguf_same_as_folder("tiny_qwen3_moe.gguf", "qwen3_moe", "qwen3_moe");
    let g = load(&gguf("tiny_qwen3_moe.gguf"));
    let moe = g.config().moe.clone().unwrap();
    assert_eq!(moe.sparse_layers, vec![true, false, true]);
    assert!(!moe.norm_topk_prob);
}

#[test]
fn gemma2_gguf_matches_transformers() {
    let model = load(&gguf("tiny_gemma2.gguf"));
    let c = model.config();
    assert_eq!(model.info().architecture, "gemma2");
    assert_eq!(c.sliding_layers, vec![true, false, true]);
    assert_eq!(c.attn_logit_softcapping, Some(2.0));
    assert_eq!(c.final_logit_softcapping, Some(8.0));
    assert_eq!(c.local_rope_theta, None);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gguf("tiny_gemma2.json")).unwrap()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(r["logits"].clone()).unwrap();
    let want = Tensor::new(want, &Device::Cpu).unwrap();
    let prompt: Vec<u32> = serde_json::from_value(r["ids"].clone()).unwrap();
    let got = logits(&model, &prompt, &mut Hooks::new());
    assert_close("gemma2 gguf vs transformers", &got, &want, 1e-4);
}

#[test]
fn moe_checkpoint_without_router_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("mixtral").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let mut t =
        candle_core::safetensors::load(fixture("mixtral").join("model.safetensors"), &Device::Cpu)
            .unwrap();
    t.remove("model.layers.1.block_sparse_moe.gate.weight");
    candle_core::safetensors::save(&t, dir.path().join("model.safetensors")).unwrap();
    match Model::load(dir.path(), &LoadOptions::default()) {
        Err(ModelError::BadFile { path, field, .. }) => {
            assert_eq!(field, "model.layers.1.block_sparse_moe.gate.weight");
            assert!(path.ends_with("model.safetensors"), "{}", path.display());
        }
        other => panic!("expected a missing-tensor error, got {other:?}"),
    }
    // A config whose top-k exceeds the experts is refused with the field named.
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("mixtral").join("config.json")).unwrap(),
    )
    .unwrap();
    cfg["num_experts_per_tok"] = 5.into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    match Model::load(dir.path(), &LoadOptions::default()) {
        Err(ModelError::BadFile { field, .. }) => assert_eq!(field, "num_experts_per_tok"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn unsupported_architectures_list_the_new_families() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "phimoe", "hidden_size": 8, "num_attention_heads": 2,
            "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 8}"#,
    )
    .unwrap();
    match Model::load(dir.path(), &LoadOptions::default()) {
        Err(e @ ModelError::UnsupportedArchitecture { .. }) => {
            let m = e.to_string();
            for fam in ["phimoe", "phi3", "mixtral", "qwen3_moe"] {
                assert!(m.contains(fam), "{m}");
            }
        }
        other => panic!("expected UnsupportedArchitecture, got {other:?}"),
    }
}

#[test]
fn quantized_storage_slices_fused_and_stacked_expert_matrices() {
    use steerlab::model::load::WeightStorage;
    // Q8_0 files: `--weights quantized` keeps phi3's fused qkv / gate_up rows and each Mixtral
    // expert's slice of the stacked tensors as blocks; the dense load dequantizes them first.
    for (file, folder) in [
        ("tiny_phi3_q8.gguf", "phi3"),
        ("tiny_mixtral_q8.gguf", "mixtral"),
    ] {
        let with = |weights| {
            let opts = LoadOptions {
                weights,
                ..LoadOptions::default()
            };
            Model::load(&gguf(file), &opts).unwrap()
        };
        let (q, d) = (with(WeightStorage::Quantized), with(WeightStorage::Dense));
        let prompt: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 90 + 4).collect();
        let lq = logits(&q, &prompt, &mut Hooks::new());
        let ld = logits(&d, &prompt, &mut Hooks::new());
        assert_close(&format!("{file} quantized vs dense"), &lq, &ld, 1e-4);
        // Q8_0 of the same weights stays near the f32 folder (a wrong slice would not).
        let lf = logits(&load(&fixture(folder)), &prompt, &mut Hooks::new());
        let e = rel_err(&ld, &lf);
        assert!(e < 5e-2, "{file}: Q8_0 vs f32 relative error {e}");
    }
}
