//! The engine against HF transformers: tiny seeded random-init models of every supported
//! family (fixtures from `scripts/make_model_fixtures.py`), comparing logits, every residual,
//! a right-padded batch and greedy KV-cache generation.
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use steerlab::model::{Batch, GenerateOptions, HookPoint, Hooks, LoadOptions, Model};

use steerlab::testing::{assert_close, fixture, rel_err};

const ARCHS: [&str; 10] = [
    "llama",
    "llama3",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3",
    "phi3",
    "mixtral",
    "qwen3_moe",
];

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

fn load(arch: &str) -> Model {
    Model::load(&fixture(arch), &LoadOptions::default()).unwrap()
}

#[test]
fn logits_and_every_residual_match_transformers() {
    for arch in ARCHS {
        let model = load(arch);
        let r = reference(arch);
        let n = model.n_layers();
        for composed in [false, true] {
            let batch = Batch::from_sequences(&[ids(&r["ids_0"])], 0, &Device::Cpu).unwrap();
            let mut hooks = Hooks::new();
            hooks
                .set_force_composed(composed)
                .capture(HookPoint::ResidPre(0));
            for l in 0..n {
                hooks.capture(HookPoint::ResidPost(l));
            }
            let logits = model.forward(&batch, &mut hooks).unwrap();
            let tag = format!("{arch} (composed={composed})");
            assert_close(
                &format!("{tag} logits"),
                &logits.squeeze(0).unwrap(),
                &r["logits_0"],
                1e-4,
            );
            let pre = hooks
                .captured(HookPoint::ResidPre(0))
                .unwrap()
                .squeeze(0)
                .unwrap();
            assert_close(
                &format!("{tag} resid_pre 0"),
                &pre,
                &r["resid_pre_0_l0"],
                1e-4,
            );
            for l in 0..n {
                let got = hooks
                    .captured(HookPoint::ResidPost(l))
                    .unwrap()
                    .squeeze(0)
                    .unwrap();
                assert_close(
                    &format!("{tag} resid_post {l}"),
                    &got,
                    &r[&format!("resid_post_0_l{l}")],
                    1e-4,
                );
            }
            let hidden = model
                .forward_hidden(&batch, &mut hooks)
                .unwrap()
                .squeeze(0)
                .unwrap();
            assert_close(
                &format!("{tag} final hidden"),
                &hidden,
                &r["final_hidden_0"],
                1e-4,
            );
        }
        let batch = Batch::from_sequences(&[ids(&r["ids_1"])], 0, &Device::Cpu).unwrap();
        let logits = model.forward(&batch, &mut Hooks::new()).unwrap();
        assert_close(
            &format!("{arch} logits of prompt 1"),
            &logits.squeeze(0).unwrap(),
            &r["logits_1"],
            1e-4,
        );
    }
}

#[test]
fn right_padded_batch_matches_transformers_and_single_runs() {
    for arch in ARCHS {
        let model = load(arch);
        let r = reference(arch);
        let seqs = vec![ids(&r["ids_0"]), ids(&r["ids_1"])];
        let batch = Batch::from_sequences(&seqs, 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch
                .attention_mask()
                .to_dtype(DType::I64)
                .unwrap()
                .to_vec2::<i64>()
                .unwrap(),
            r["batch_mask"].to_vec2::<i64>().unwrap()
        );
        let logits = model.forward(&batch, &mut Hooks::new()).unwrap();
        for (k, s) in seqs.iter().enumerate() {
            let got = logits.get(k).unwrap().narrow(0, 0, s.len()).unwrap();
            let hf_batched = r["batch_logits"]
                .get(k)
                .unwrap()
                .narrow(0, 0, s.len())
                .unwrap();
            assert_close(
                &format!("{arch} batch row {k} vs HF batch"),
                &got,
                &hf_batched,
                1e-4,
            );
            assert_close(
                &format!("{arch} batch row {k} vs single"),
                &got,
                &r[&format!("logits_{k}")],
                1e-4,
            );
        }
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for arch in ARCHS {
        let model = load(arch);
        let r = reference(arch);
        let want = ids(&r["generated_0"]);
        let opts = GenerateOptions {
            max_new_tokens: want.len(),
            stop_at_eos: false,
            ..Default::default()
        };
        let mut streamed = Vec::new();
        let got = model
            .generate(&ids(&r["ids_0"]), &opts, &Hooks::new(), &mut |id, _| {
                streamed.push(id);
                true
            })
            .unwrap();
        assert_eq!(got, want, "{arch}");
        assert_eq!(streamed, want, "{arch}");
    }
}

#[test]
fn info_describes_the_fixture() {
    let info = load("qwen3").info();
    assert_eq!(
        (
            info.architecture.as_str(),
            info.n_layers,
            info.hidden_size,
            info.vocab_size
        ),
        ("qwen3", 2, 64, 96)
    );
    // embed 96*64 + lm_head 96*64 + final norm 64 + per layer: norms 2*64, q 64*96, k,v 64*48 each,
    // o 96*64, q/k norm 24 each, mlp 3*64*96.
    let per_layer = 2 * 64 + 64 * 96 + 2 * 64 * 48 + 96 * 64 + 2 * 24 + 3 * 64 * 96;
    assert_eq!(info.n_params, 2 * 96 * 64 + 64 + 2 * per_layer);
    // Tied embeddings are counted once.
    let tied = load("llama3").info();
    let per_layer = 2 * 64 + 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 96;
    assert_eq!(tied.n_params, 96 * 64 + 64 + 2 * per_layer);
}

/// Loads `arch` with its config.json edited by `edit`, returning logits of prompt 0 and the
/// HF reference.
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
    let model = Model::load(dir.path(), &LoadOptions::default()).unwrap();
    let r = reference(arch);
    let batch = Batch::from_sequences(&[ids(&r["ids_0"])], 0, &Device::Cpu).unwrap();
    (
        model
            .forward(&batch, &mut Hooks::new())
            .unwrap()
            .squeeze(0)
            .unwrap(),
        r["logits_0"].clone(),
    )
}

#[test]
fn fixtures_exercise_sliding_window_and_rope_scaling() {
    // Without the window (mistral) or the llama3 scaling the logits no longer match HF.
    let (got, want) =
        logits_with_config("mistral", |c| c["sliding_window"] = serde_json::Value::Null);
    assert!(
        rel_err(&got, &want) > 1e-2,
        "the sliding window does not matter in the fixture"
    );
    let (got, want) = logits_with_config("llama3", |c| {
        c["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 10000.0})
    });
    assert!(
        rel_err(&got, &want) > 1e-2,
        "llama3 rope scaling does not matter in the fixture"
    );
}

#[test]
fn classic_rope_scaling_layout_is_read() {
    // transformers < 5 wrote `rope_theta` and `rope_scaling` at the top level.
    let (got, want) = logits_with_config("llama3", |c| {
        let mut p = c["rope_parameters"].take();
        c["rope_theta"] = p["rope_theta"].take();
        p.as_object_mut().unwrap().remove("rope_theta");
        c["rope_scaling"] = p;
        c.as_object_mut().unwrap().remove("rope_parameters");
    });
    assert_close("llama3 with rope_scaling", &got, &want, 1e-4);
}
