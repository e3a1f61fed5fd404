//! GUI test of the Features panel with egui_kittest on a tiny random-init model and tiny data:
//! train through the panel (LLM embedder), check the run against the library called directly
//! with the same settings, browse a feature, write it as a steering vector and export the run.
use std::path::PathBuf;

use egui_kittest::kittest::{NodeT, Queryable};
use steerlab::app::{PanelId, ScriptedPicker, StartOptions};
use steerlab::jobs::NoProgress;
use steerlab::sae::{self, PairSet, RunOptions};

mod common;
use common::{fixture_model, home, shows, wait_for_jobs, write_tiny_pairs};

/// Unlike `common::harness`, missing glyphs fail the test: this panel's own text must render.
fn harness(picker: &ScriptedPicker, start: StartOptions) -> common::App {
    home();
    common::strict_app(picker, start)
}

#[test]
fn features_panel_trains_browses_links_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_tiny_pairs(tmp.path(), 60);
    let picker = ScriptedPicker::new();
    let mut h = harness(
        &picker,
        StartOptions {
            model: Some(fixture_model()),
            data: Some(data.clone()),
            panel: Some(PanelId::Features),
            prompt: None,
            ..Default::default()
        },
    );
    wait_for_jobs(&mut h);
    assert!(
        h.state().state.model.is_some(),
        "{:?}",
        h.state().state.model_error
    );
    // Small, fast settings (the panel's widgets edit these same fields).
    {
        let s = &mut h.state_mut().state.features.settings;
        s.sae.latents = 8;
        s.sae.k = 2;
        s.sae.max_epochs = 6;
        s.sae.batch_size = 32;
        s.sae.seed = 3;
    }
    h.get_by_label("LLM layer").click();
    h.run_steps(2);
    let layer = h.state().state.features.settings.layer;
    assert_eq!(layer, 1, "middle of 3 layers");
    h.get_by_label("Train").click();
    wait_for_jobs(&mut h);
    let f = &h.state().state.features;
    assert_eq!(f.error, None);
    assert_eq!(f.runs.len(), 1);
    let run = &f.runs[0];
    let out = run.out_dir.clone().unwrap();
    assert!(out.starts_with(home().join("runs")), "{}", out.display());
    for name in [
        "cfg.json",
        "sae_weights.safetensors",
        "activations.safetensors",
        "report.html",
    ] {
        assert!(out.join(name).exists(), "{name}");
    }
    // The live plots were fed every training step.
    let live = f.live.lock().unwrap().clone();
    assert_eq!(live.steps.len(), run.result.report.history.steps.len());
    assert!(!live.steps.is_empty());

    // Independent reference: the library on the same data, model, layer and settings.
    let ds = steerlab::data::load_dataset(&data, &Default::default()).unwrap();
    let pairs = PairSet::from_records(&ds.records);
    let model = steerlab::model::Model::load(&fixture_model(), &Default::default()).unwrap();
    let tok = model.tokenizer().unwrap().clone();
    let emb = sae::llm::LlmEmbedder::new(&model, &tok, layer).unwrap();
    let opts = RunOptions {
        sae: h.state().state.features.settings.sae.clone(),
        ..Default::default()
    };
    let want = sae::run(&pairs, &emb, None, &opts, &NoProgress).unwrap();
    assert_eq!(run.result.ids, want.ids);
    assert_eq!(run.result.sae, want.sae, "same SAE as the library run");
    assert_eq!(run.result.activations, want.activations);
    assert_eq!(run.result.report.embedder, want.report.embedder);

    // Browse: pick the feature that fires most and see its top pair.
    let j = (0..8)
        .max_by(|a, b| {
            let fa = &run.result.report.features[*a];
            let fb = &run.result.report.features[*b];
            fa.n_top.cmp(&fb.n_top).then(b.cmp(a))
        })
        .unwrap();
    let top = run.result.report.features[j].top_pairs[0].clone();
    h.get_by_label(&format!("#{j}")).click();
    h.run_steps(2);
    assert_eq!(h.state().state.features.selected, Some(j));
    assert!(h.query_by_label(&format!("Feature {j}")).is_some());
    assert!(
        h.query_by_label_contains(&format!("Pair 1 · {}", top.id))
            .is_some(),
        "top pair shown"
    );

    // Use as steering vector: the decoder row at the embedder's layer, scaled to the mean
    // |activation| of the feature where it fires (computed here from the activations).
    let vpath = tmp.path().join("feature.safetensors");
    picker.push(Some(vpath.clone()));
    // Below the table at 1280 px: an accessibility click works wherever it is scrolled.
    h.get_by_label("Use as steering vector").click_accesskit();
    h.run_steps(2);
    let v = steerlab::steer::SteeringVector::load(&vpath).unwrap();
    let m = want.sae.d_sae;
    let col: Vec<f64> = (0..want.ids.len())
        .map(|i| want.activations[i * m + j].abs() as f64)
        .filter(|x| *x > 0.0)
        .collect();
    let scale = col.iter().sum::<f64>() / col.len() as f64;
    let dir = &v.layers[&layer];
    for (x, d) in dir.iter().zip(want.sae.direction(j)) {
        assert!(
            (*x as f64 - *d as f64 * scale).abs() < 1e-5,
            "{x} vs {d}·{scale}"
        );
    }
    assert!(v.meta.method.contains(&format!("feature {j}")));
    assert_eq!(v.meta.dataset, "tiny_pairs.jsonl");
    // ... and the same vector is in the Steer panel's list (the cross-link).
    let steer = &h.state().state.steer.vectors;
    assert_eq!(steer.len(), 1);
    assert_eq!(steer[0].vector.layers, v.layers);

    // Export the run folder and read it back.
    let edir = tmp.path().join("export");
    picker.push(Some(edir.clone()));
    h.get_by_label("Export…").click();
    h.run_steps(2);
    let back = sae::read_outputs(&edir).unwrap();
    assert_eq!(back.activations, want.activations);
    assert_eq!(back.sae, want.sae);
    assert_eq!(
        picker.calls(),
        vec![
            "save_file: Save steering vector".to_string(),
            "pick_folder: Export feature run to folder".to_string()
        ]
    );

    // The sidebar registry holds the run, the vector and the export; clicking the export
    // (an SAE) opens it as a second run in the Features panel.
    {
        use steerlab::app::ArtifactKind;
        let arts = &h.state().state.artifacts;
        let paths = |k| -> Vec<PathBuf> { arts.of_kind(k).map(|a| a.path.clone()).collect() };
        assert_eq!(paths(ArtifactKind::Sae), vec![edir.clone(), out.clone()]);
        assert_eq!(paths(ArtifactKind::Vector), vec![vpath.clone()]);
        let export = arts.of_kind(ArtifactKind::Sae).next().unwrap().clone();
        h.state_mut().select(PanelId::Model);
        h.run_steps(2);
        h.state_mut().open_artifact(export);
        h.run_steps(2);
        assert_eq!(h.state().current_panel(), PanelId::Features);
        let f = &h.state().state.features;
        assert_eq!(f.runs.len(), 2);
        assert_eq!(
            f.active_run().unwrap().out_dir.as_deref(),
            Some(edir.as_path())
        );
        h.state_mut().state.features.active = Some(0);
        h.run_steps(2);
    }

    // Sorting by prevalence puts the most prevalent feature first.
    h.get_by_label("prevalence").click();
    h.run_steps(2);
    let f = &h.state().state.features;
    let order = f.table_order();
    let prev: Vec<f64> = order.iter().map(|&k| run_prevalence(&back, k)).collect();
    assert!(prev.windows(2).all(|w| w[0] >= w[1]), "{prev:?}");
}

fn run_prevalence(r: &sae::RunResult, j: usize) -> f64 {
    let m = r.sae.d_sae;
    let n = r.ids.len();
    (0..n).filter(|i| r.activations[i * m + j] != 0.0).count() as f64 / n as f64
}

#[test]
fn train_is_disabled_without_data_and_the_llm_needs_a_model() {
    let picker = ScriptedPicker::new();
    let mut h = harness(
        &picker,
        StartOptions {
            panel: Some(PanelId::Features),
            ..Default::default()
        },
    );
    h.run_steps(3);
    assert!(h.get_by_label("Train").accesskit_node().is_disabled());
    assert!(h.state().state.features.runs.is_empty());
    assert!(h.get_by_label("LLM layer").accesskit_node().is_disabled());
}

fn f32_tensor(path: &std::path::Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A saved run applied to a new dataset through the panel writes what `sae encode` computes
/// (the library called directly on the same run folder, data and embedder); a SAELens SAE on
/// the model's residual stream imported through the panel shows the library's logit lens and
/// top-activating tokens for the chosen feature and writes it as a steering vector that lands
/// in the Steer panel.
#[test]
fn features_panel_applies_a_saved_sae_and_browses_an_imported_one() {
    use steerlab::sae::encode;
    use steerlab::sae::import::{
        feature_steering_vector, import_saelens, logit_lens, top_activating_tokens,
    };
    use steerlab::sae::saelens::{write_saelens, Architecture, SaelensSae};
    let tmp = tempfile::tempdir().unwrap();
    let data = write_tiny_pairs(tmp.path(), 40);
    let model = steerlab::model::Model::load(&fixture_model(), &Default::default()).unwrap();
    let tok = model.tokenizer().unwrap().clone();
    let emb = sae::llm::LlmEmbedder::new(&model, &tok, 1).unwrap();
    let load = |p: &std::path::Path| {
        PairSet::from_records(
            &steerlab::data::load_dataset(p, &Default::default())
                .unwrap()
                .records,
        )
    };
    let opts = RunOptions {
        sae: sae::SaeConfig {
            latents: 8,
            k: 2,
            max_epochs: 3,
            batch_size: 32,
            seed: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let run = sae::run(&load(&data), &emb, None, &opts, &NoProgress).unwrap();
    let run_dir = tmp.path().join("run");
    sae::write_outputs(&run_dir, &run).unwrap();
    // New pairs in another folder.
    let new_dir = tmp.path().join("new");
    std::fs::create_dir(&new_dir).unwrap();
    let new_data = write_tiny_pairs(&new_dir, 15);

    let picker = ScriptedPicker::new();
    let mut h = harness(
        &picker,
        StartOptions {
            model: Some(fixture_model()),
            data: Some(new_data.clone()),
            panel: Some(PanelId::Features),
            features: steerlab::app::FeaturesStart {
                run: Some(run_dir.clone()),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    wait_for_jobs(&mut h);
    assert_eq!(h.state().state.features.runs.len(), 1);
    h.get_by_label("Apply to this dataset").click_accesskit();
    wait_for_jobs(&mut h);
    let f = &h.state().state.features;
    assert_eq!(f.error, None);
    let a = f.applied.clone().expect("applied");
    assert_eq!(a.file, run_dir.join("encoded-tiny_pairs.safetensors"));
    let folder = sae::SaeFolder::read(&run_dir).unwrap();
    let want = encode::encode_pairs(&folder, &load(&new_data), &emb, &NoProgress).unwrap();
    let (ids, inputs, width) = encode::read_inputs(&a.file).unwrap();
    assert_eq!((ids.clone(), width), (want.ids.clone(), 64));
    assert_eq!(ids.len(), 15);
    assert_eq!(inputs, want.inputs);
    assert_eq!(f32_tensor(&a.file, "activations"), want.activations);
    let m = want.d_sae;
    for j in 0..m {
        let fired = (0..15)
            .filter(|i| want.activations[i * m + j] != 0.0)
            .count();
        assert_eq!(a.prevalence[j], fired as f64 / 15.0, "feature {j}");
    }
    assert!(shows(&h, "Applied to tiny_pairs.jsonl: 15 pairs"));

    // A SAELens `standard` SAE reading blocks.1.hook_resid_post of the 64-wide fixture model.
    let (d_in, d_sae) = (64usize, 6usize);
    let mut x = 11u64;
    let mut rnd = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    };
    let mut metadata = serde_json::Map::new();
    metadata.insert("hook_name".into(), "blocks.1.hook_resid_post".into());
    metadata.insert("model_name".into(), "llama".into());
    let s = SaelensSae {
        d_in,
        d_sae,
        w_enc: rnd(d_in * d_sae),
        b_enc: vec![0.05; d_sae],
        w_dec: rnd(d_sae * d_in),
        b_dec: vec![0.0; d_in],
        arch: Architecture::Standard,
        apply_b_dec_to_input: false,
        metadata,
    };
    let sdir = tmp.path().join("saelens_sae");
    write_saelens(&sdir, &s).unwrap();
    picker.push(Some(sdir.clone()));
    h.get_by_label("Import SAELens SAE…").click_accesskit();
    h.run_steps(3);
    let rs = import_saelens(&sdir, &model).unwrap();
    {
        let imp = h
            .state()
            .state
            .features
            .imported
            .as_ref()
            .expect("imported");
        assert_eq!(imp.rs.steer_layer, Some(1));
        assert_eq!(imp.lens, Some(logit_lens(&model, &tok, &rs, 0, 8).unwrap()));
    }
    assert!(shows(&h, "Logit lens promotes"));
    // Another feature (set as the panel's drag value would): its lens follows.
    h.state_mut()
        .state
        .features
        .imported
        .as_mut()
        .unwrap()
        .feature = 2;
    h.run_steps(2);
    assert_eq!(
        h.state().state.features.imported.as_ref().unwrap().lens,
        Some(logit_lens(&model, &tok, &rs, 2, 8).unwrap())
    );
    h.get_by_label("Top tokens in this dataset")
        .click_accesskit();
    wait_for_jobs(&mut h);
    assert_eq!(h.state().state.features.error, None);
    let pairs = load(&new_data);
    let texts: Vec<&str> = pairs
        .a
        .iter()
        .zip(&pairs.b)
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let want_tokens = top_activating_tokens(&model, &tok, &rs, &texts, &[2], 10, 6, &NoProgress)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        h.state().state.features.imported.as_ref().unwrap().tokens,
        Some(want_tokens.clone())
    );
    assert!(shows(
        &h,
        &format!("Feature 2 fires on {} of", want_tokens.fired)
    ));
    // The feature as a steering vector of norm 3, added to the Steer panel.
    h.state_mut().state.features.imported.as_mut().unwrap().norm = 3.0;
    let vpath = tmp.path().join("saelens_feature.safetensors");
    picker.push(Some(vpath.clone()));
    h.get_by_label("Write as steering vector…")
        .click_accesskit();
    h.run_steps(3);
    let v = steerlab::steer::SteeringVector::load(&vpath).unwrap();
    assert_eq!(
        v.layers,
        feature_steering_vector(&rs, 2, 3.0).unwrap().layers
    );
    let steer = &h.state().state.steer.vectors;
    assert_eq!(steer.len(), 1);
    assert_eq!(steer[0].vector.layers, v.layers);
    assert_eq!(
        picker.calls(),
        vec![
            "pick_folder: Import SAELens SAE folder".to_string(),
            "save_file: Save steering vector".to_string()
        ]
    );
}
