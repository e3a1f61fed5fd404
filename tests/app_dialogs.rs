//! File dialogs on both paths: the native one (the scripted picker stands in for rfd) and the
//! built-in browser used when the desktop has no portal, driven by clicks and typing; and the
//! Steer panel's data fields they fill (train and evaluation sets chosen independently).
mod common;

use common::{harness, shows, wait_for_jobs, write_tiny_pairs};
use eframe::egui;
use egui_kittest::kittest::Queryable;
use steerlab::app::{DialogMode, PanelId, ScriptedPicker, StartOptions};

fn start(panel: PanelId) -> StartOptions {
    StartOptions {
        panel: Some(panel),
        ..Default::default()
    }
}

/// Types `text` into the field labelled `label` (replacing what it held) and presses Enter.
fn type_into(h: &mut common::App, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(label).type_text(text);
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(3);
}

#[test]
fn without_a_portal_ctrl_o_opens_the_builtin_browser_and_loads_the_chosen_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let data = write_tiny_pairs(&dir.path().join("sub"), 12);
    std::fs::write(dir.path().join("sub/notes.txt"), "not data").unwrap();
    let picker = ScriptedPicker::new().without_native();
    let mut h = harness(&picker, start(PanelId::Model));
    h.run();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::O);
    h.run_steps(3);
    assert_eq!(h.state().current_panel(), PanelId::Data);
    assert!(shows(&h, "Dataset file"), "the browser's title");
    assert!(h.state().state.dialogs.pending.is_some());

    // A typed folder, then a click on a subfolder, then a click on the file.
    type_into(&mut h, "Location:", &dir.path().display().to_string());
    h.get_by_label("sub/").click();
    h.run_steps(3);
    assert!(shows(&h, "tiny_pairs.jsonl"), "the filter keeps data files");
    assert!(!shows(&h, "notes.txt"), "and hides others");
    h.get_by_label_contains("tiny_pairs.jsonl").click();
    h.run_steps(2);
    h.get_by_label("Open").click();
    wait_for_jobs(&mut h);
    let st = &h.state().state;
    assert!(st.dialogs.pending.is_none(), "closed");
    assert_eq!(
        st.datasets.len(),
        1,
        "{:?}",
        st.last_message().map(|m| &m.text)
    );
    assert_eq!(st.datasets[0].path, data);
    assert_eq!(st.dialogs.recent_dirs[0], dir.path().join("sub"));
    assert!(picker.calls().is_empty(), "no native call without a portal");
}

#[test]
fn ctrl_m_without_a_portal_opens_the_browser_and_cancel_loads_nothing() {
    let picker = ScriptedPicker::new().without_native();
    let mut h = harness(&picker, start(PanelId::Data));
    h.run();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::M);
    h.run_steps(3);
    assert_eq!(h.state().current_panel(), PanelId::Model);
    assert!(shows(&h, "Model path"));
    assert!(
        shows(&h, "Default models"),
        "the default model folder is a place"
    );
    assert!(shows(&h, "Default data"));
    h.get_by_label("Cancel").click();
    h.run_steps(3);
    assert!(h.state().state.dialogs.pending.is_none());
    assert!(h.state().state.model_job.is_none(), "nothing loads");
    // Esc cancels too.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::M);
    h.run_steps(3);
    assert!(h.state().state.dialogs.pending.is_some());
    h.key_press(egui::Key::Escape);
    h.run_steps(3);
    assert!(h.state().state.dialogs.pending.is_none());
}

#[test]
fn builtin_save_names_the_file_adds_the_extension_and_asks_before_replacing() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_tiny_pairs(dir.path(), 20);
    let picker = ScriptedPicker::new();
    picker.push(Some(data));
    let mut h = harness(&picker, start(PanelId::Data));
    h.run();
    h.get_by_label("Open…").click();
    wait_for_jobs(&mut h);
    h.get_by_label("Split").click();
    h.run();

    // The user chooses the built-in browser in Settings (persisted).
    common::open_menu(&mut h, "Settings");
    h.get_by_label("Always use the built-in file browser")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().state.dialogs.mode, DialogMode::BuiltIn);
    assert_eq!(h.state().persisted().dialog_mode, DialogMode::BuiltIn);
    h.key_press(egui::Key::Escape);
    h.run_steps(2);

    h.get_by_label("Save split…").click();
    h.run_steps(3);
    assert!(shows(&h, "Save the train split"));
    type_into(&mut h, "Location:", &dir.path().display().to_string());
    type_into(&mut h, "File name:", "mine");
    let train = dir.path().join("mine.jsonl");
    assert!(
        train.is_file(),
        "{:?}",
        h.state().state.last_message().map(|m| &m.text)
    );
    assert!(dir.path().join("mine.test.jsonl").is_file());
    std::fs::write(&train, "old").unwrap();

    // Again to the same name: the browser asks first; "Keep it" keeps the file.
    h.get_by_label("Save split…").click();
    h.run_steps(3);
    type_into(&mut h, "Location:", &dir.path().display().to_string());
    type_into(&mut h, "File name:", "mine.jsonl");
    assert!(shows(&h, "already exists. Replace it?"));
    h.get_by_label("Keep it").click();
    h.run_steps(2);
    assert_eq!(std::fs::read_to_string(&train).unwrap(), "old");
    h.get_by_label("Save").click();
    h.run_steps(2);
    h.get_by_label("Replace").click();
    h.run_steps(3);
    assert_ne!(std::fs::read_to_string(&train).unwrap(), "old", "replaced");
    assert!(h.state().state.dialogs.pending.is_none());
    assert_eq!(
        picker.calls(),
        vec!["pick_file: Dataset file"],
        "native only before the setting"
    );
}

#[test]
fn a_native_dialog_that_answers_instantly_hands_over_to_the_browser() {
    let picker = ScriptedPicker::new().instant_none_is_missing();
    let mut h = harness(&picker, start(PanelId::Data));
    h.run();
    h.get_by_label("Open…").click();
    h.run_steps(3);
    assert_eq!(picker.calls(), vec!["pick_file: Dataset file"]);
    assert!(shows(&h, "using the built-in file browser"), "said so");
    assert!(h.state().state.dialogs.pending.is_some(), "and opened it");
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    h.get_by_label("Open…").click();
    h.run_steps(3);
    assert_eq!(
        picker.calls().len(),
        1,
        "the native dialog is not tried again"
    );
    assert!(h.state().state.dialogs.pending.is_some());
}

#[test]
fn native_dialogs_still_answer_at_once_where_the_desktop_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_tiny_pairs(dir.path(), 8);
    let picker = ScriptedPicker::new();
    picker.push(Some(data.clone()));
    let mut h = harness(&picker, start(PanelId::Model));
    h.run();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::O);
    wait_for_jobs(&mut h);
    assert!(h.state().state.dialogs.pending.is_none(), "no browser");
    assert_eq!(h.state().state.datasets[0].path, data);
    assert_eq!(picker.calls(), vec!["pick_file: Dataset file"]);
}

#[test]
fn opening_an_evaluation_file_keeps_training_and_failed_files_are_not_offered() {
    use steerlab::app::steer::SteerState;
    let dir = tempfile::tempdir().unwrap();
    let train = write_tiny_pairs(dir.path(), 12);
    let eval_dir = dir.path().join("eval");
    std::fs::create_dir(&eval_dir).unwrap();
    let eval = write_tiny_pairs(&eval_dir, 6);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "this is not json\n").unwrap();
    let picker = ScriptedPicker::new();
    picker.push(Some(eval.clone())).push(Some(bad.clone()));
    let mut h = harness(
        &picker,
        StartOptions {
            panel: Some(PanelId::Steer),
            data: Some(train.clone()),
            ..Default::default()
        },
    );
    wait_for_jobs(&mut h);
    let train_of = |h: &common::App| SteerState::train_records(&h.state().state).map(|(p, _)| p);
    assert_eq!(train_of(&h), Some(train.clone()));
    h.get_by_label("Open A/B set…").click();
    wait_for_jobs(&mut h);
    let st = &h.state().state;
    assert_eq!(st.datasets.len(), 2);
    assert_eq!(
        st.steer
            .eval_source
            .as_ref()
            .map(|e| e.path().to_path_buf()),
        Some(eval.clone())
    );
    assert_eq!(train_of(&h), Some(train.clone()), "Train on did not follow");
    // The fields show what is loaded.
    h.run_steps(2);
    let value = |h: &common::App, label: &str| {
        use egui_kittest::kittest::NodeT;
        h.get_by_label(label).accesskit_node().value()
    };
    assert_eq!(
        value(&h, "Evaluation file"),
        Some(eval.display().to_string())
    );
    assert_eq!(
        value(&h, "Training file"),
        Some(train.display().to_string())
    );

    // A file that fails to load is not offered and does not replace training.
    h.get_by_label("Open data…").click();
    wait_for_jobs(&mut h);
    let st = &h.state().state;
    let bad_view = st.datasets.iter().find(|d| d.path == bad);
    assert!(bad_view.is_none_or(|d| !steerlab::app::steer::usable(d)));
    let t = train_of(&h);
    assert_ne!(t, Some(bad.clone()), "a failed file is not trained on");
}
