//! GUI tests of the sidebar's made objects and of the Steer panel's data roles (issue 18
//! items 3 and 6): vectors made this session are listed before they are saved, clicking a
//! vector loads or checks it in the Steer panel, labels are unique, and the "Evaluate on"
//! default follows the held-out side of the training data's split (never the training data).
mod common;

use std::collections::BTreeMap;

use eframe::egui;
use egui_kittest::kittest::Queryable;
use steerlab::app::steer::EvalSource;
use steerlab::app::{ArtifactKind, PanelId, ScriptedPicker, StartOptions};
use steerlab::steer::{SteeringVector, VectorMeta};

fn vector(hidden: usize, x: f32) -> SteeringVector {
    let layers: BTreeMap<usize, Vec<f32>> = [(1usize, vec![x; hidden])].into();
    SteeringVector::new(layers, VectorMeta::new("caa", "tiny", hidden)).unwrap()
}

#[test]
fn sidebar_lists_unsaved_vectors_and_clicking_one_loads_it_in_the_steer_panel() {
    let tmp = tempfile::tempdir().unwrap();
    let picker = ScriptedPicker::new();
    let mut h = common::harness(
        &picker,
        StartOptions {
            model: Some(common::fixture_model()),
            panel: Some(PanelId::Data),
            ..Default::default()
        },
    );
    common::wait_for_jobs(&mut h);
    let hidden = h.state().state.model.as_ref().unwrap().model.hidden_size();

    // Two vectors made this session: listed at once, before any export.
    h.state_mut()
        .state
        .steer
        .add_vector("made one".into(), vector(hidden, 0.1));
    h.state_mut()
        .state
        .steer
        .add_vector("made two".into(), vector(hidden, 0.2));
    h.run_steps(2);
    assert!(common::shows(&h, "Vectors (2)"));
    common::click(&mut h, "made one (not saved)");
    assert_eq!(h.state().current_panel(), PanelId::Steer);
    let on: Vec<bool> = h
        .state()
        .state
        .steer
        .vectors
        .iter()
        .map(|e| e.enabled)
        .collect();
    assert_eq!(on, [true, false], "the clicked vector is checked alone");

    // A saved vector in the registry: clicking loads it into the Steer panel's list.
    let dir_a = tmp.path().join("a");
    let dir_b = tmp.path().join("b");
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (pa, pb) = (dir_a.join("v.safetensors"), dir_b.join("v.safetensors"));
    vector(hidden, 0.3).save(&pa).unwrap();
    vector(hidden, 0.4).save(&pb).unwrap();
    {
        let a = &mut h.state_mut().state.artifacts;
        a.add(ArtifactKind::Vector, "v.safetensors", &pa);
        a.add(ArtifactKind::Vector, "v.safetensors", &pb);
    }
    h.run_steps(2);
    // Same name in two folders: the labels say which is which.
    assert!(common::shows(&h, "v.safetensors (a)"));
    assert!(common::shows(&h, "v.safetensors (b)"));
    common::click(&mut h, "v.safetensors (a)");
    h.run_steps(2);
    let st = &h.state().state.steer;
    assert_eq!(st.vectors.len(), 3, "{:?}", st.vector_error);
    let last = st.vectors.last().unwrap();
    assert_eq!(last.path.as_deref(), Some(pa.as_path()));
    assert!(last.enabled);
    assert!((last.vector.layers[&1][0] - 0.3).abs() < 1e-6);
    // Clicking it again checks the listed entry instead of loading a second copy.
    h.state_mut().state.steer.select_only(0);
    common::click(&mut h, "v.safetensors (a)");
    h.run_steps(2);
    let st = &h.state().state.steer;
    assert_eq!(st.vectors.len(), 3);
    let on: Vec<bool> = st.vectors.iter().map(|e| e.enabled).collect();
    assert_eq!(on, [false, false, true]);
    // The listed-with-a-file vector is not shown twice as unsaved.
    assert!(h
        .query_by_label_contains("v.safetensors (not saved)")
        .is_none());
}

/// Clicks the sidebar button of a panel (its title is also a heading in some panels).
fn panel_button(h: &mut common::App, title: &str) {
    h.get_by_role_and_label(egui::accesskit::Role::Button, title)
        .click();
    h.run_steps(2);
}

#[test]
fn evaluation_defaults_to_the_held_out_side_and_never_to_the_training_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::write_tiny_pairs(tmp.path(), 40);
    let picker = ScriptedPicker::new();
    let mut h = common::harness(
        &picker,
        StartOptions {
            data: Some(data.clone()),
            panel: Some(PanelId::Steer),
            ..Default::default()
        },
    );
    common::wait_for_jobs(&mut h);
    assert_eq!(h.state().state.steer.eval_source, None, "unsplit: none");
    // The menu marks the training file as overlapping.
    common::open_menu(&mut h, "Evaluate on");
    assert!(common::shows(&h, "tiny_pairs.jsonl (overlaps training)"));
    h.key_press(egui::Key::Escape);
    h.run_steps(2);

    // Split in the Data panel: the default becomes the held-out side.
    panel_button(&mut h, "Data");
    common::click(&mut h, "Split");
    panel_button(&mut h, "Steer");
    h.run_steps(2);
    assert_eq!(
        h.state().state.steer.eval_source,
        Some(EvalSource::SplitTest(data.clone()))
    );
    let (train, test) = {
        let st = &h.state().state;
        st.datasets[0].split_records().unwrap()
    };
    let eval = steerlab::app::steer::SteerState::eval_records(&h.state().state).unwrap();
    assert_eq!(eval.len(), test.len());
    let (_, trained_on) =
        steerlab::app::steer::SteerState::train_records(&h.state().state).unwrap();
    assert_eq!(trained_on.len(), train.len());

    // Choosing "none" explicitly sticks.
    common::open_menu(&mut h, "Evaluate on");
    common::click_item(&mut h, "none");
    h.run_steps(3);
    assert_eq!(h.state().state.steer.eval_source, None);
}
