//! GUI tests of the Steer panel with egui_kittest on a tiny seeded random-init HF model (with
//! the test tokenizer fixture): data and model come through the scripted picker, CAA and a few
//! BiPO steps train on background jobs, the slider re-scores and regenerates, vectors combine,
//! sweep and export. What the panel shows is checked against the library called directly.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions, SteerlabApp};
use steerlab::data::{load_dataset, LoadOptions, Prompt};
use steerlab::jobs::NoProgress;
use steerlab::model::{GenerateOptions, Hooks, Model};
use steerlab::steer::bipo::Provenance;
use steerlab::steer::eval::{behaviour_score, steered_generations};
use steerlab::steer::{prepare, steering_hooks, train_bipo, BipoConfig, SteeringVector};

#[path = "common/tiny_model.rs"]
mod tiny_model;
use tiny_model::HIDDEN;
const LAYERS: usize = 4;

fn tiny_hf_model(dir: &Path) {
    tiny_model::write(dir, LAYERS, 7);
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    pairs: PathBuf,
    ab: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let model = root.join("model");
    std::fs::create_dir(&model).unwrap();
    tiny_hf_model(&model);
    let pairs = root.join("pairs.jsonl");
    let mut lines = String::new();
    for i in 0..8 {
        lines +=
            &serde_json::json!({"id": format!("p{i}"), "prompt": format!("tell me about item {i}"),
            "chosen": "yes it is good", "rejected": "no it is bad"})
            .to_string();
        lines.push('\n');
    }
    std::fs::write(&pairs, lines).unwrap();
    let ab = root.join("ab.jsonl");
    let mut lines = String::new();
    for i in 0..4 {
        lines += &serde_json::json!({"id": format!("a{i}"), "question": format!("is item {i} good?"),
            "answer_matching_behavior": "yes it is good", "answer_not_matching_behavior": "no it is bad"})
        .to_string();
        lines.push('\n');
    }
    std::fs::write(&ab, lines).unwrap();
    Fixture {
        _dir: dir,
        root,
        model,
        pairs,
        ab,
    }
}

fn harness(picker: &ScriptedPicker) -> Harness<'static, SteerlabApp> {
    let start = StartOptions {
        panel: Some(PanelId::Model),
        ..Default::default()
    };
    let app = SteerlabApp::new(Box::new(picker.clone()), None, start);
    // A random model's answers contain arbitrary bytes (U+FFFD after decoding): draw tofu.
    Harness::builder()
        .with_size([1280.0, 800.0])
        .allow_missing_glyphs()
        .build_ui_state(|ui, app: &mut SteerlabApp| app.show(ui), app)
}

/// Steps until `done` holds and no job runs.
fn wait_until(h: &mut Harness<'static, SteerlabApp>, done: impl Fn(&SteerlabApp) -> bool) {
    let t0 = Instant::now();
    h.step();
    while h.state().state.jobs.is_busy() || !done(h.state()) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "jobs did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
        h.step();
    }
    h.run_steps(3);
}

/// True when some node's label contains `text`.
fn shows(h: &Harness<'static, SteerlabApp>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

fn wait_for_jobs(h: &mut Harness<'static, SteerlabApp>) {
    wait_until(h, |_| true);
}

fn ids(model: &Model, text: &str) -> Vec<u32> {
    prepare::prompt_ids(model.tokenizer().unwrap(), &Prompt::Text(text.into())).unwrap()
}

/// Model loaded and both data sets opened through the picker; the Steer panel shown.
fn ready(fx: &Fixture, picker: &ScriptedPicker) -> Harness<'static, SteerlabApp> {
    let mut h = harness(picker);
    h.state_mut().state.steer.debounce = Duration::ZERO;
    h.run();
    picker.push(Some(fx.model.clone()));
    h.get_by_label("Open folder…").click();
    wait_for_jobs(&mut h);
    assert!(
        h.state().state.model.is_some(),
        "{:?}",
        h.state().state.model_error
    );
    h.state_mut().select(PanelId::Steer);
    h.run();
    picker.push(Some(fx.pairs.clone()));
    h.get_by_label("Open data…").click();
    wait_for_jobs(&mut h);
    picker.push(Some(fx.ab.clone()));
    h.get_by_label("Open A/B set…").click();
    wait_for_jobs(&mut h);
    h
}

#[test]
fn train_slide_combine_and_export() {
    let fx = fixture();
    let picker = ScriptedPicker::new();
    let mut h = ready(&fx, &picker);
    assert_eq!(
        picker.calls(),
        vec![
            "pick_folder: Model path",
            "pick_file: Training file",
            "pick_file: Evaluation file"
        ]
    );
    assert!(shows(&h, "8 records"));
    assert!(shows(&h, "4 items"));
    // The default layer follows the model: 14/30 of 4 blocks → block 1.
    assert_eq!(h.state().state.steer.settings.layers, "1");

    // An independent copy of the model and data for the references.
    let model = Model::load(&fx.model, &Default::default()).unwrap();
    let tok = model.tokenizer().unwrap().clone();
    let pairs = load_dataset(&fx.pairs, &LoadOptions::default()).unwrap();
    let ab = load_dataset(&fx.ab, &LoadOptions::default()).unwrap();
    let items = prepare::ab_tokens(&tok, &ab.ab_items()).unwrap();

    // CAA.
    h.get_by_label("CAA").click();
    h.run();
    h.get_by_label("Train").click();
    wait_until(&mut h, |a| !a.state.steer.vectors.is_empty());
    let caa_ref = steerlab::steer::caa::train_caa(
        &model,
        &prepare::contrasts(&tok, &pairs.records, true).unwrap(),
        &[1],
        8,
        "m",
        "d",
        &NoProgress,
    )
    .unwrap();
    {
        let s = &h.state().state.steer;
        assert_eq!(s.vectors.len(), 1, "{:?}", s.train_error);
        assert_eq!(s.vectors[0].vector.meta.method, "caa");
        assert_eq!(s.vectors[0].vector.layers, caa_ref.layers);
    }
    let caa_name = h.state().state.steer.vectors[0].name.clone();
    assert!(h.query_by_label(&caa_name).is_some(), "CAA vector listed");

    // A few BiPO steps: 8 pairs, batch 4, 2 epochs = 4 steps, held-out score each epoch.
    h.get_by_label("BiPO").click();
    {
        let b = &mut h.state_mut().state.steer.settings.bipo;
        b.epochs = 2;
        b.batch_size = 4;
        b.lr = 0.5;
    }
    h.run();
    h.get_by_label("Train").click();
    wait_until(&mut h, |a| a.state.steer.vectors.len() == 2);
    let cfg = BipoConfig {
        layers: vec![1],
        epochs: 2,
        batch_size: 4,
        lr: 0.5,
        ..Default::default()
    };
    let data = prepare::train_data(&tok, &pairs.records, cfg.objective).unwrap();
    let bipo_ref = train_bipo(
        &model,
        &data,
        Some(&items),
        &cfg,
        &Provenance::default(),
        &NoProgress,
    )
    .unwrap();
    {
        let s = &h.state().state.steer;
        let live = s.live.lock().unwrap().clone();
        assert_eq!(live.steps.len(), 4, "one plotted point per step");
        assert_eq!(
            live.steps.iter().map(|p| p.step).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(live.epochs.len(), 2, "held-out score per epoch");
        let e = bipo_ref.epochs.last().unwrap().behaviour.unwrap();
        assert!((live.epochs[1].plus - e.0).abs() < 1e-5);
        assert!((live.epochs[1].minus - e.1).abs() < 1e-5);
        let v = &s.vectors[1].vector;
        assert_eq!(v.meta.method, "bipo");
        for (a, b) in v.layers[&1].iter().zip(&bipo_ref.vector.layers[&1]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // The new vector is the one checked.
        assert_eq!(
            s.vectors.iter().map(|e| e.enabled).collect::<Vec<_>>(),
            vec![false, true]
        );
    }
    assert!(shows(&h, "step 4: loss"));

    // Move the slider: the score and the generations follow the latest value.
    h.get_all_by_label("Strength")
        .find(|n| n.accesskit_node().role() == eframe::egui::accesskit::Role::Slider)
        .expect("the strength slider")
        .set_value_accesskit(2.0);
    wait_until(&mut h, |a| {
        a.state.steer.score.is_some_and(|s| s.multiplier == 2.0)
            && a.state.steer.generations.is_some()
    });
    let bipo_v = h.state().state.steer.vectors[1].vector.clone();
    let want = behaviour_score(
        &model,
        &items,
        &steering_hooks(&model, &bipo_v, 2.0).unwrap(),
        8,
        &NoProgress,
    )
    .unwrap();
    let base = behaviour_score(&model, &items, &Hooks::new(), 8, &NoProgress).unwrap();
    let got = h.state().state.steer.score.unwrap().score;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    assert!(
        (got - base).abs() > 1e-4,
        "steering moved the score: {got} vs {base}"
    );
    assert!(shows(&h, &format!("Behaviour score at ×+2.00: {want:.3}")));
    let prompt = h.state().state.steer.prompt.clone();
    let opts = GenerateOptions {
        max_new_tokens: h.state().state.steer.max_new_tokens,
        ..Default::default()
    };
    let gens = steered_generations(
        &model,
        &[ids(&model, &prompt)],
        &[(&bipo_v, 1.0)],
        &[0.0, 2.0],
        &opts,
        &NoProgress,
    )
    .unwrap();
    let unsteered = tok.decode(&gens[0].ids, true).unwrap();
    let steered = tok.decode(&gens[1].ids, true).unwrap();
    assert_eq!(
        h.get_by_label("Unsteered answer")
            .value()
            .unwrap_or_default(),
        unsteered
    );
    assert_eq!(
        h.get_by_label("Steered answer (×+2.00)")
            .value()
            .unwrap_or_default(),
        steered
    );

    // Combine CAA × 0.5 with BiPO, sweep every vector and the combination.
    h.get_by_label(&caa_name).click();
    h.state_mut().state.steer.vectors[0].weight = 0.5;
    h.state_mut().state.steer.mark_dirty();
    h.step();
    h.get_by_label("Sweep").click();
    wait_until(&mut h, |a| !a.state.steer.sweep.is_empty());
    let combo = SteeringVector::compose(&[(&caa_ref, 0.5), (&bipo_v, 1.0)]).unwrap();
    {
        let s = &h.state().state.steer;
        assert_eq!(s.sweep.len(), 3 * 9, "two vectors and the combination");
        let p = s
            .sweep
            .iter()
            .find(|p| p.vector == "combination" && p.multiplier == -3.0)
            .unwrap();
        let want = behaviour_score(
            &model,
            &items,
            &steering_hooks(&model, &combo, -3.0).unwrap(),
            8,
            &NoProgress,
        )
        .unwrap();
        assert!((p.score - want).abs() < 1e-6);
        let zero: Vec<f64> = s
            .sweep
            .iter()
            .filter(|p| p.multiplier == 0.0)
            .map(|p| p.score)
            .collect();
        assert!(zero.iter().all(|z| (z - base).abs() < 1e-9));
    }
    // The combination was re-scored too (dirty after the checkbox).
    wait_until(&mut h, |a| a.state.steer.dirty_since.is_none());

    // Export the combination and read it back with the library.
    let st = fx.root.join("combo.safetensors");
    picker.push(Some(st.clone()));
    export_as(
        &mut h,
        "Export combination...",
        0,
        "safetensors (.safetensors)",
    );
    let back = SteeringVector::load(&st).unwrap();
    assert_eq!(back.meta.hidden_size, HIDDEN);
    for (a, b) in back.layers[&1].iter().zip(&combo.layers[&1]) {
        assert!((a - b).abs() < 1e-6);
    }
    let gg = fx.root.join("combo.gguf");
    picker.push(Some(gg.clone()));
    export_as(
        &mut h,
        "Export combination...",
        0,
        "GGUF control vector (.gguf)",
    );
    let back = steerlab::steer::gguf::import_control_vector(&gg).unwrap();
    assert_eq!(back.layers, combo.layers);
    assert!(!fx.root.join("combo.gguf.tmp").exists());
    assert!(shows(&h, "Exported"));

    // Export one vector of the two on its own (row 1: CAA, at scale 0.5 in the combination):
    // the file holds the unscaled CAA vector and its provenance, not the combination. The
    // picker's path has no extension: the format's is added.
    let one = fx.root.join("caa_only");
    picker.push(Some(one.clone()));
    export_as(&mut h, "Export...", 0, "safetensors (.safetensors)");
    let path = fx.root.join("caa_only.safetensors");
    let back = SteeringVector::load(&path).unwrap();
    assert_eq!(
        back.layers, caa_ref.layers,
        "the CAA vector, not the combination"
    );
    assert_eq!(back.meta.method, "caa");
    assert_eq!(back.meta.dataset, "pairs.jsonl");
    assert_eq!(back.meta.layers, vec![1]);
    assert!(!fx.root.join("caa_only.safetensors.tmp").exists());
    // ... and row 2 (BiPO) as a llama.cpp control vector.
    let one = fx.root.join("bipo_only.gguf");
    picker.push(Some(one.clone()));
    export_as(&mut h, "Export...", 1, "GGUF control vector (.gguf)");
    let back = steerlab::steer::gguf::import_control_vector(&one).unwrap();
    assert_eq!(back.layers, bipo_v.layers);
    let calls = picker.calls();
    assert_eq!(
        &calls[calls.len() - 4..],
        [
            "save_file: Export vector",
            "save_file: Export control vector",
            "save_file: Export vector",
            "save_file: Export control vector"
        ]
    );
    assert_eq!(
        h.state().state.steer.last_export.as_deref(),
        Some(one.as_path())
    );
    // Every export is registered in the sidebar as a vector.
    {
        use steerlab::app::ArtifactKind;
        let arts = &h.state().state.artifacts;
        for p in [&st, &gg, &path, &one] {
            assert!(
                arts.iter()
                    .any(|a| a.kind == ArtifactKind::Vector && &a.path == p),
                "{} registered",
                p.display()
            );
        }
    }
}

/// Opens the `nth` menu button labelled `menu` and clicks its `item`.
fn export_as(h: &mut Harness<'static, SteerlabApp>, menu: &str, nth: usize, item: &str) {
    h.get_all_by_label(menu)
        .nth(nth)
        .unwrap_or_else(|| panic!("menu button {menu} #{nth}"))
        .click();
    h.run();
    h.get_by_label(item).click();
    h.run();
}

#[test]
fn width_mismatch_and_divergence_show_the_library_messages() {
    let fx = fixture();
    let picker = ScriptedPicker::new();
    let mut h = ready(&fx, &picker);

    // A vector of width 8 for a width-16 model.
    let mut layers = std::collections::BTreeMap::new();
    layers.insert(1usize, vec![0.5f32; 8]);
    let v =
        SteeringVector::new(layers, steerlab::steer::VectorMeta::new("caa", "other", 8)).unwrap();
    let path = fx.root.join("narrow.safetensors");
    v.save(&path).unwrap();
    picker.push(Some(path.clone()));
    h.get_by_label("Load vector…").click();
    h.run();
    let e = h
        .state()
        .state
        .steer
        .vector_error
        .clone()
        .expect("an error");
    assert!(
        e.contains("vector width 8 does not match the model's hidden size 16")
            && e.contains("narrow.safetensors"),
        "{e}"
    );
    assert!(h.state().state.steer.vectors.is_empty());
    assert!(shows(&h, "does not match the model's hidden size"));

    // An absurd learning rate makes the vector infinite at the first step: the trainer's
    // message is shown and no (all-zero) vector is added. (Started directly: the panel's
    // learning-rate slider keeps edits within 1e-5..1.)
    {
        let b = &mut h.state_mut().state.steer.settings.bipo;
        b.lr = 1e39;
        b.epochs = 1;
    }
    steerlab::app::steer::SteerState::start_training(&mut h.state_mut().state);
    wait_until(&mut h, |a| a.state.steer.train_error.is_some());
    let e = h.state().state.steer.train_error.clone().unwrap();
    assert!(
        e.contains("training stopped at step 1") && e.contains("last good vector"),
        "{e}"
    );
    assert!(h.state().state.steer.vectors.is_empty());
    assert!(shows(&h, "training stopped at step 1"));
}
