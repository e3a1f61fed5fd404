//! GUI tests of the Model and Generate panels with egui_kittest: models are opened through the
//! scripted picker (no dialog) and what the panels show is checked against independent
//! references (the fixture's config.json and safetensors header; the engine called directly).
use std::path::{Path, PathBuf};

use egui_kittest::kittest::Queryable;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions};

mod common;
use common::wait_for_jobs;

fn harness(picker: &ScriptedPicker, panel: PanelId) -> common::App {
    let start = StartOptions {
        panel: Some(panel),
        ..Default::default()
    };
    common::strict_app(picker, start)
}

/// The Model panel with `path` given to the picker behind `button` ("Open folder…" or
/// "Open .gguf…"), clicked, and the load job finished.
fn open_through_picker(path: PathBuf, button: &str) -> (ScriptedPicker, common::App) {
    let picker = ScriptedPicker::new();
    picker.push(Some(path));
    let mut h = harness(&picker, PanelId::Model);
    h.run();
    h.get_by_label(button).click();
    wait_for_jobs(&mut h);
    (picker, h)
}

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(arch)
}

/// Parameter count read straight from the safetensors header (independent of the engine).
fn params_in(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>() as u64)
        .sum()
}

#[test]
fn model_panel_loads_an_hf_folder_through_the_picker() {
    let dir = fixture("llama");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let (picker, h) = open_through_picker(dir.clone(), "Open folder…");
    assert_eq!(picker.calls(), vec!["pick_folder: Model path"]);

    let m = h
        .state()
        .state
        .model
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", h.state().state.model_error));
    let s = &m.summary;
    assert_eq!(s.architecture, cfg["model_type"].as_str().unwrap());
    assert_eq!(
        s.n_layers as u64,
        cfg["num_hidden_layers"].as_u64().unwrap()
    );
    assert_eq!(s.hidden_size as u64, cfg["hidden_size"].as_u64().unwrap());
    assert_eq!(s.vocab_size as u64, cfg["vocab_size"].as_u64().unwrap());
    // Untied embeddings: every stored tensor is a distinct parameter.
    assert_eq!(cfg["tie_word_embeddings"], false);
    assert_eq!(s.n_params, params_in(&dir.join("model.safetensors")));
    assert_eq!((s.device.as_str(), s.dtype.as_str()), ("cpu", "f32"));
    // What the user sees.
    for v in [
        s.n_layers.to_string(),
        s.hidden_size.to_string(),
        s.vocab_size.to_string(),
    ] {
        assert!(h.query_by_label(&v).is_some(), "value {v} shown");
    }
    assert!(h
        .query_by_label_contains(&format!("Loaded: {}", dir.display()))
        .is_some());
    assert_eq!(h.state().state.recent.models, vec![dir]);
    assert!(
        h.query_by_label("Model: llama").is_some(),
        "sidebar lists the model"
    );
}

#[test]
fn unsupported_architecture_is_reported_with_its_model_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("llama").join("config.json")).unwrap(),
    )
    .unwrap();
    cfg["model_type"] = "gpt2".into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        fixture("llama").join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let (_picker, h) = open_through_picker(dir.path().to_path_buf(), "Open folder…");
    assert!(h.state().state.model.is_none());
    let e = h.state().state.model_error.clone().expect("an error");
    assert!(e.contains("gpt2") && e.contains("config.json"), "{e}");
    assert!(
        h.query_all_by_label_contains("gpt2").count() >= 1,
        "error shown"
    );
}

#[test]
fn typed_path_loads_when_no_dialog_is_available() {
    let dir = fixture("qwen2");
    let picker = ScriptedPicker::new();
    let mut h = harness(&picker, PanelId::Model);
    h.run();
    h.get_by_label("Model path").focus();
    h.run();
    h.get_by_label("Model path")
        .type_text(&dir.display().to_string());
    h.run();
    h.get_by_label("Load").click();
    wait_for_jobs(&mut h);
    assert!(picker.calls().is_empty(), "no dialog");
    let m = h
        .state()
        .state
        .model
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", h.state().state.model_error));
    assert_eq!(m.summary.architecture, "qwen2");
}

/// The default GGUF (fetched by `scripts/fetch-defaults.sh`; CI fetches it): open it with the
/// picker, check its documented shape, and generate the greedy answer to the capital question.
#[test]
fn default_gguf_loads_and_answers_in_the_generate_panel() {
    let path = steerlab::paths::default_model_path();
    if !path.exists() {
        eprintln!(
            "SKIPPED: default model not fetched ({}); run scripts/fetch-defaults.sh",
            path.display()
        );
        return;
    }
    let (_picker, mut h) = open_through_picker(path.clone(), "Open .gguf…");
    {
        let m = h
            .state()
            .state
            .model
            .as_ref()
            .unwrap_or_else(|| panic!("{:?}", h.state().state.model_error));
        // DESIGN.md §6: llama, 30 layers, hidden 576, vocab 49152.
        assert_eq!(m.summary.architecture, "llama");
        assert_eq!(
            (
                m.summary.n_layers,
                m.summary.hidden_size,
                m.summary.vocab_size
            ),
            (30, 576, 49152)
        );
    }
    h.get_by_label("Generate").click();
    h.run();
    // The panel starts with this prompt and the chat template on, greedy.
    assert_eq!(
        h.get_by_label("Prompt").value().as_deref(),
        Some("What is the capital of France?")
    );
    h.get_by_label("Run").click();
    wait_for_jobs(&mut h);
    let out = h.get_by_label("Output").value().unwrap_or_default();
    assert!(out.contains("Paris"), "greedy answer: {out:?}");
}

/// Mixture-of-experts models show their experts beside the shape (count and top-k from the
/// fixture's config.json); dense models have no Experts row.
#[test]
fn model_panel_shows_experts_of_moe_models() {
    for (arch, expect) in [
        ("mixtral", "4 experts, top 2"),
        ("qwen3_moe", "4 experts, top 2, on 2 of 3 layers"),
    ] {
        let dir = fixture(arch);
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        // Independent of the engine: the counts as the config states them.
        let experts = cfg["num_local_experts"].as_u64().unwrap();
        let top = cfg["num_experts_per_tok"].as_u64().unwrap();
        assert!(expect.starts_with(&format!("{experts} experts, top {top}")));
        let (_picker, h) = open_through_picker(dir, "Open folder…");
        assert!(
            h.state().state.model.is_some(),
            "{:?}",
            h.state().state.model_error
        );
        assert!(h.query_by_label("Experts").is_some(), "{arch}: Experts row");
        assert!(h.query_by_label(expect).is_some(), "{arch}: {expect} shown");
    }
    let (_picker, h) = open_through_picker(fixture("llama"), "Open folder…");
    assert!(h.state().state.model.is_some());
    assert!(
        h.query_by_label("Experts").is_none(),
        "dense: no Experts row"
    );
}

/// The second default model: opened by its path it is remembered by its short name, and the
/// recent list's `gemma3-270m` link loads it. Skips when it is not in the cache.
#[test]
fn recent_list_holds_short_names_and_loads_gemma3_270m() {
    let Some(path) = steerlab::paths::short_name_path("gemma3-270m").filter(|p| p.exists()) else {
        eprintln!("SKIPPED: gemma3-270m not fetched; run scripts/fetch-defaults.sh");
        return;
    };
    let (_picker, h) = open_through_picker(path.clone(), "Open .gguf…");
    assert!(
        h.state().state.model.is_some(),
        "{:?}",
        h.state().state.model_error
    );
    assert_eq!(
        h.state().state.recent.models,
        vec![PathBuf::from("gemma3-270m")]
    );

    // A fresh window whose recent list holds the short name (as restored from settings).
    let mut h = harness(&ScriptedPicker::new(), PanelId::Model);
    h.state_mut().state.recent.models = vec![PathBuf::from("gemma3-270m")];
    h.run();
    // The recent link (the Defaults row has a button of the same name).
    h.get_by_role_and_label(eframe::egui::accesskit::Role::Link, "gemma3-270m")
        .click();
    wait_for_jobs(&mut h);
    let m = h
        .state()
        .state
        .model
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", h.state().state.model_error));
    assert_eq!(m.path, path);
    // Gemma 3 270M: 18 layers, hidden 640, vocabulary 262144 (its GGUF metadata).
    assert_eq!(m.summary.architecture, "gemma3");
    assert_eq!(
        (
            m.summary.n_layers,
            m.summary.hidden_size,
            m.summary.vocab_size
        ),
        (18, 640, 262144)
    );
    assert!(
        h.query_all_by_label("gemma3").count() >= 1,
        "architecture shown"
    );
}
