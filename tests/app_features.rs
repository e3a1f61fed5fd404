//! GUI test of the Features panel with egui_kittest on a tiny random-init model and tiny data:
//! train through the panel (LLM embedder), check the run against the library called directly
//! with the same settings, browse a feature, write it as a steering vector and export the run.
use std::path::PathBuf;

use egui_kittest::kittest::{NodeT, Queryable};
use steerlab::app::{PanelId, ScriptedPicker, StartOptions};
use steerlab::jobs::NoProgress;
use steerlab::sae::{self, PairSet, RunOptions};

mod common;
use common::{fixture_model, home, wait_for_jobs, write_tiny_pairs};

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
