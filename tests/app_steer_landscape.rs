//! GUI test of the Steer panel's layer × strength section (egui_kittest, tiny seeded random-init
//! HF model with the test tokenizer): the sweep runs on a job and fills the heatmap point by
//! point, its scores equal the library's sweep on the same data, clicking a cell sets the
//! training layer and the strength slider and lists that layer's vector, and the Pareto front
//! with its chosen point appears under the KL budget.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions, SteerlabApp};
use steerlab::data::{load_dataset, LoadOptions};
use steerlab::jobs::NoProgress;
use steerlab::model::{Hooks, Model};
use steerlab::steer::eval::behaviour_score;
use steerlab::steer::{prepare, steering_hooks};

struct Fixture {
    _dir: tempfile::TempDir,
    model: PathBuf,
    pairs: PathBuf,
    ab: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let model = root.join("model");
    std::fs::create_dir(&model).unwrap();
    steerlab::testing::write_tiny_llama(&model, 4, 7);
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
    Harness::builder()
        .with_size([1400.0, 1000.0])
        .allow_missing_glyphs()
        .build_ui_state(|ui, app: &mut SteerlabApp| app.show(ui), app)
}

fn wait_until(h: &mut Harness<'static, SteerlabApp>, done: impl Fn(&SteerlabApp) -> bool) {
    let t0 = Instant::now();
    h.step();
    while h.state().state.jobs.is_busy() || !done(h.state()) {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "jobs did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
        h.step();
    }
    h.run_steps(3);
}

fn ready(fx: &Fixture, picker: &ScriptedPicker) -> Harness<'static, SteerlabApp> {
    let mut h = harness(picker);
    h.state_mut().state.steer.debounce = Duration::ZERO;
    h.run();
    picker.push(Some(fx.model.clone()));
    h.get_by_label("Open folder…").click();
    wait_until(&mut h, |_| true);
    assert!(h.state().state.model.is_some());
    h.state_mut().select(PanelId::Steer);
    h.run();
    picker.push(Some(fx.pairs.clone()));
    h.get_by_label("Open data…").click();
    wait_until(&mut h, |_| true);
    picker.push(Some(fx.ab.clone()));
    h.get_by_label("Open A/B set…").click();
    wait_until(&mut h, |_| true);
    h
}

fn load(p: &Path) -> steerlab::data::Dataset {
    load_dataset(p, &LoadOptions::default()).unwrap()
}

#[test]
fn layer_sweep_fills_the_heatmap_and_a_click_sets_layer_and_strength() {
    let fx = fixture();
    let picker = ScriptedPicker::new();
    let mut h = ready(&fx, &picker);
    {
        let l = &mut h.state_mut().state.steer.landscape;
        l.layers = "1,2".into();
        l.multipliers = "-1,0,2".into();
    }
    h.run();
    assert!(h.query_by_label_contains("Sweep layers to see").is_some());
    h.get_by_label("Sweep layers").click();
    // The live list grows point by point while the job runs; record what the view saw.
    let t0 = Instant::now();
    let mut seen = Vec::new();
    h.step();
    while h.state().state.jobs.is_busy() {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "sweep did not finish"
        );
        seen.push(h.state().state.steer.landscape.points().len());
        std::thread::sleep(Duration::from_millis(2));
        h.step();
    }
    h.run_steps(3);
    let l = &h.state().state.steer.landscape;
    assert!(l.error.is_none(), "{:?}", l.error);
    let report = l.report.clone().expect("sweep finished");
    assert_eq!(report.points.len(), 6);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "points only accumulate: {seen:?}"
    );
    // every point went through the live list, in the report's order
    let live = l.live.lock().unwrap().clone();
    assert_eq!(live, report.points);
    assert_eq!(l.vectors.keys().copied().collect::<Vec<_>>(), vec![1, 2]);

    // The scores equal the library's: CAA vector per layer, A/B score at each multiplier.
    let model = Model::load(&fx.model, &Default::default()).unwrap();
    let tok = model.tokenizer().unwrap().clone();
    let items = prepare::eval_items(&tok, &load(&fx.ab).records).unwrap();
    let contrasts = prepare::contrasts(&tok, &load(&fx.pairs).records, true).unwrap();
    let caa =
        steerlab::steer::caa::train_caa(&model, &contrasts, &[1, 2], 8, "m", "d", &NoProgress)
            .unwrap();
    for p in &report.points {
        let mut v = caa.clone();
        v.layers.retain(|l, _| *l == p.layer);
        let hooks = if p.alpha == 0.0 {
            Hooks::new()
        } else {
            steering_hooks(&model, &v, p.alpha).unwrap()
        };
        let want = behaviour_score(&model, &items, &hooks, 8, &NoProgress).unwrap();
        assert!(
            (p.score.mean - want).abs() < 1e-4,
            "layer {} × {}: {} vs {want}",
            p.layer,
            p.multiplier,
            p.score.mean
        );
    }

    // Each cell is a named button; clicking layer 2 × 2 sets the layer and the slider.
    assert!(h.query_by_label_contains("layer 1 ×-1:").is_some());
    h.get_by_label_contains("layer 2 ×2:").click();
    h.run_steps(3);
    let s = &h.state().state.steer;
    assert_eq!(s.settings.layers, "2");
    assert_eq!(s.landscape.selected, Some((2, 2.0)));
    assert_eq!(s.strength, 2.0);
    let listed: Vec<&str> = s
        .vectors
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(listed, vec!["caa L2 (sweep)"]);
    assert_eq!(
        s.vectors.iter().find(|e| e.enabled).unwrap().vector.layers,
        report_vector_layers(&h, 2)
    );
    // The Pareto front: with a huge budget some steered point is chosen.
    h.state_mut().state.steer.landscape.max_kl = 1e3;
    h.run_steps(2);
    assert!(h
        .query_by_label_contains("Chosen within the budget")
        .is_some());
    // With a zero budget no steered point qualifies (KL > 0 for every steered point here).
    h.state_mut().state.steer.landscape.max_kl = 0.0;
    h.run_steps(2);
    assert!(h
        .query_by_label_contains("No steered point is within the KL budget")
        .is_some());
}

fn report_vector_layers(
    h: &Harness<'static, SteerlabApp>,
    layer: usize,
) -> std::collections::BTreeMap<usize, Vec<f32>> {
    h.state().state.steer.landscape.vectors[&layer]
        .layers
        .clone()
}

#[test]
fn bad_grids_are_shown_not_run() {
    let fx = fixture();
    let picker = ScriptedPicker::new();
    let mut h = ready(&fx, &picker);
    h.state_mut().state.steer.landscape.multipliers = "1,nan".into();
    h.run();
    h.get_by_label("Sweep layers").click();
    h.run_steps(2);
    assert!(!h.state().state.jobs.is_busy());
    assert!(h.query_by_label_contains("finite").is_some());
    h.state_mut().state.steer.landscape.multipliers = "1".into();
    h.state_mut().state.steer.landscape.layers = "9".into();
    h.run();
    h.get_by_label("Sweep layers").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("layer 9").is_some());
    assert!(h.state().state.steer.landscape.grid.is_none());
}
