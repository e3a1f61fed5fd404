//! GUI tests of the app shell and the Data panel with egui_kittest (no display, no dialogs:
//! the scripted picker answers). Each test drives the real `SteerlabApp` frame by frame.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use steerlab::app::{
    widgets, ArtifactKind, Artifacts, PanelId, Persisted, ScriptedPicker, Selection, StartOptions,
    SteerlabApp,
};

mod common;
use common::wait_for_jobs;

fn harness(app: SteerlabApp) -> common::App {
    common::strict_harness(app)
}

fn app_with(picker: &ScriptedPicker, start: StartOptions) -> SteerlabApp {
    SteerlabApp::new(Box::new(picker.clone()), None, start)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn sidebar_switches_panels_and_status_bar_is_idle() {
    let picker = ScriptedPicker::new();
    let mut h = harness(app_with(
        &picker,
        StartOptions {
            panel: Some(PanelId::Model),
            ..Default::default()
        },
    ));
    h.run();
    assert!(h.query_by_label("No jobs running.").is_some());
    assert!(
        h.query_by_label("Model path").is_some(),
        "model panel shown first"
    );
    h.get_by_label("Data").click();
    h.run();
    assert_eq!(h.state().current_panel(), PanelId::Data);
    assert!(h.query_by_label("Dataset file").is_some());
    h.get_by_label("Generate").click();
    h.run();
    assert_eq!(h.state().current_panel(), PanelId::Generate);
    assert!(h
        .query_by_label_contains("Load a model in the Model panel first")
        .is_some());
    assert!(
        picker.calls().is_empty(),
        "no dialog opened by switching panels"
    );
}

#[test]
fn missing_start_model_is_reported_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    let picker = ScriptedPicker::new();
    let mut h = harness(app_with(
        &picker,
        StartOptions {
            model: Some(missing.clone()),
            ..Default::default()
        },
    ));
    h.run();
    assert!(!h.state().state.jobs.is_busy());
    assert!(h.state().state.model.is_none());
    let msg = h
        .state()
        .state
        .last_message()
        .expect("an error message")
        .text
        .clone();
    assert!(
        msg.contains("nope.gguf") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(
        h.query_by_label_contains("nope.gguf").is_some(),
        "message shown in the status bar"
    );
}

/// A native dialog that the user cancels (slowly, as people do) is a cancel: no message, no
/// built-in browser; the typed path still works. (No dialog at all: tests/app_dialogs.rs.)
#[test]
fn cancelled_native_picker_is_neutral() {
    let picker = ScriptedPicker::new();
    picker.push(None);
    let mut h = harness(app_with(
        &picker,
        StartOptions {
            panel: Some(PanelId::Data),
            ..Default::default()
        },
    ));
    h.run();
    h.get_by_label("Open…").click();
    h.run();
    assert_eq!(picker.calls(), vec!["pick_file: Dataset file"]);
    let st = &h.state().state;
    assert!(st.dialogs.pending.is_none(), "no browser after a cancel");
    assert!(
        st.messages.is_empty(),
        "{:?}",
        st.last_message().map(|m| &m.text)
    );
    assert!(st.data_job.is_none());
}

#[test]
fn job_status_shows_progress_and_cancel_stops_the_job() {
    let picker = ScriptedPicker::new();
    let mut h = harness(app_with(&picker, StartOptions::default()));
    h.run();
    let finished = std::sync::Arc::new(std::sync::Mutex::new(None));
    let f2 = finished.clone();
    h.state_mut().state.spawn_job(
        "Spin",
        |ctx| {
            use steerlab::jobs::{Progress, ProgressSink};
            let mut i = 0u64;
            while !ctx.is_cancelled() {
                i += 1;
                ctx.report(Progress::new("spinning", i.min(99), Some(100)));
                std::thread::sleep(Duration::from_millis(2));
                anyhow::ensure!(i < 50_000, "never cancelled");
            }
            Ok(i)
        },
        move |res: Result<u64, String>, _state| {
            *f2.lock().unwrap() = Some(res);
        },
    );
    // Wait until a progress report has arrived and is shown.
    let t0 = Instant::now();
    while h.query_by_label_contains("spinning").is_none() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no progress shown");
        std::thread::sleep(Duration::from_millis(5));
        h.step();
    }
    assert!(h.query_by_label("Spin").is_some());
    h.get_by_label("Cancel").click();
    wait_for_jobs(&mut h);
    let res = finished.lock().unwrap().clone().expect("callback ran");
    assert!(res.expect("cooperative stop is a success") > 0);
    assert!(h.query_by_label("No jobs running.").is_some());
}

#[test]
fn data_panel_shows_rows_and_invalid_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        r#"{"prompt": "How do I boil an egg?", "chosen": "Put it in boiling water for 9 minutes.", "rejected": "No."}"#,
        "\n",
        r#"{"prompt": "Name a prime.", "chosen": "7", "rejected": "8"}"#,
        "\n",
        r#"{"prompt": "Say hi.", "chosen": "Hi!", "rejected": {"text": "Go away."}}"#,
        "\n",
        r#"{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."}"#,
        "\n",
    );
    let path = write(dir.path(), "pairs.jsonl", text);
    let picker = ScriptedPicker::new();
    picker.push(Some(path.clone()));
    let mut h = harness(app_with(
        &picker,
        StartOptions {
            panel: Some(PanelId::Data),
            ..Default::default()
        },
    ));
    h.run();
    h.get_by_label("Open…").click();
    wait_for_jobs(&mut h);

    let st = &h.state().state;
    let d = &st.datasets[st.active_dataset.expect("a dataset is active")];
    assert_eq!(d.records.len(), 3, "three valid rows");
    assert_eq!(d.problems.len(), 1);
    assert_eq!(d.problems[0].loc, "line 3");
    assert_eq!(d.problems[0].field.as_deref(), Some("rejected"));
    assert_eq!(st.recent.data, vec![path.clone()]);
    // What the user sees: preview cells, the invalid line with its field, the counts.
    assert!(h.query_by_label_contains("How do I boil an egg?").is_some());
    assert!(h.query_by_label_contains("Capital of France?").is_some());
    assert!(h
        .query_by_label_contains("line 3 · field `rejected`")
        .is_some());
    // The field is named once (the reason no longer repeats it).
    assert!(h
        .query_by_label_contains("field `rejected`: field `rejected`")
        .is_none());
    assert!(h.query_by_label("Skipped rows (1)").is_some());
}

#[test]
fn unknown_layout_asks_for_a_mapping_and_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "odd.csv",
        "question,good,bad\nWhat is 2+2?,4,5\nBest color?,Blue,\"I won't answer\"\n",
    );
    let picker = ScriptedPicker::new();
    picker.push(Some(path.clone()));
    let mut h = harness(app_with(
        &picker,
        StartOptions {
            panel: Some(PanelId::Data),
            ..Default::default()
        },
    ));
    h.run();
    h.get_by_label("Open…").click();
    wait_for_jobs(&mut h);
    {
        let st = &h.state().state;
        let d = &st.datasets[st.active_dataset.unwrap()];
        assert!(d.needs_mapping, "layout must not be guessed: {:?}", d.error);
        assert!(d.records.is_empty());
        assert_eq!(d.columns, vec!["question", "good", "bad"]);
    }
    assert!(h.query_by_label("Column mapping").is_some());
    // Map prompt=question, chosen=good, rejected=bad through the combo boxes.
    for (target, column) in [
        ("prompt (optional)", "question"),
        ("chosen", "good"),
        ("rejected", "bad"),
    ] {
        h.get_by_label(target).click();
        h.run();
        // The column name is also a preview header (a plain label): click the combo's option.
        let options: Vec<_> = h
            .get_all_by_label(column)
            .filter(|n| n.accesskit_node().role() != eframe::egui::accesskit::Role::Label)
            .collect();
        assert_eq!(options.len(), 1, "one `{column}` option");
        options[0].click();
        h.run();
    }
    h.get_by_label("Apply mapping").click();
    wait_for_jobs(&mut h);
    let st = &h.state().state;
    let d = &st.datasets[st.active_dataset.unwrap()];
    assert!(!d.needs_mapping, "{:?}", d.error);
    assert_eq!(d.records.len(), 2);
    let steerlab::data::Record::Pair(pair) = &d.records[1] else {
        panic!("a preference pair: {:?}", d.records[1])
    };
    assert_eq!(pair.prompt.to_plain(), "Best color?");
    assert_eq!(pair.chosen, "Blue");
    assert_eq!(pair.rejected, "I won't answer");
}

#[test]
fn split_keeps_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..40 {
        // Pairs share prompts in groups of two, so a prompt-aware split must keep them together.
        text.push_str(&format!(
            "{{\"prompt\": \"question {}\", \"chosen\": \"good {i}\", \"rejected\": \"bad {i}\"}}\n",
            i / 2
        ));
    }
    let path = write(dir.path(), "many.jsonl", &text);
    let picker = ScriptedPicker::new();
    picker.push(Some(path));
    let mut h = harness(app_with(
        &picker,
        StartOptions {
            panel: Some(PanelId::Data),
            ..Default::default()
        },
    ));
    h.run();
    h.get_by_label("Open…").click();
    wait_for_jobs(&mut h);
    h.get_by_label("Split").click();
    h.run();
    let st = &h.state().state;
    let (train, test) = st.datasets[st.active_dataset.unwrap()]
        .split_records()
        .unwrap_or_else(|| panic!("no split: {:?}", st.last_message()));
    assert_eq!(train.len() + test.len(), 40);
    assert!(!test.is_empty() && !train.is_empty());
    let prompts = |v: &[steerlab::data::Record]| -> std::collections::HashSet<String> {
        v.iter().map(|r| r.prompt().to_plain()).collect()
    };
    assert!(
        prompts(&train).is_disjoint(&prompts(&test)),
        "no prompt on both sides"
    );
    let shown = format!("{} train, {} test records", train.len(), test.len());
    assert!(h.query_by_label_contains(&shown).is_some());

    // Save both sides through the picker and read them back.
    let out = dir.path().join("many.train.jsonl");
    picker.push(Some(out.clone()));
    h.get_by_label("Save split…").click();
    h.run();
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&out), train.len());
    assert_eq!(lines(&dir.path().join("many.test.jsonl")), test.len());
}

#[test]
fn persisted_settings_round_trip_through_eframe_storage() {
    #[derive(Default)]
    struct Mem(std::collections::HashMap<String, String>);
    impl eframe::Storage for Mem {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.to_string(), value);
        }
        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }
        fn flush(&mut self) {}
    }
    let picker = ScriptedPicker::new();
    let mut app = app_with(&picker, StartOptions::default());
    app.select(PanelId::Data);
    app.state.recent.data.push(PathBuf::from("/tmp/a.jsonl"));
    let mut mem = Mem::default();
    eframe::App::save(&mut app, &mut mem);
    let back: Persisted = eframe::get_value(&mem, eframe::APP_KEY).expect("stored");
    assert_eq!(back, app.persisted());
    let again = SteerlabApp::new(Box::new(picker), Some(back), StartOptions::default());
    assert_eq!(again.current_panel(), PanelId::Data);
    assert_eq!(again.state.recent.data, vec![PathBuf::from("/tmp/a.jsonl")]);
}

/// Starts a job that reports progress until cancelled; the returned cell gets its result.
fn spin_job(
    h: &mut Harness<'static, SteerlabApp>,
    name: &str,
) -> std::sync::Arc<std::sync::Mutex<Option<Result<u64, String>>>> {
    let finished = std::sync::Arc::new(std::sync::Mutex::new(None));
    let f2 = finished.clone();
    h.state_mut().state.spawn_job(
        name,
        |ctx| {
            use steerlab::jobs::{Progress, ProgressSink};
            let mut i = 0u64;
            while !ctx.is_cancelled() {
                i += 1;
                ctx.report(Progress::new("spinning", i.min(99), Some(100)));
                std::thread::sleep(Duration::from_millis(2));
                anyhow::ensure!(i < 50_000, "never cancelled");
            }
            Ok(i)
        },
        move |res: Result<u64, String>, _state| {
            *f2.lock().unwrap() = Some(res);
        },
    );
    finished
}

#[test]
fn sidebar_restores_artifacts_and_opens_them_in_their_panel() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(
        dir.path(),
        "prefs.jsonl",
        "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n",
    );
    let report = write(dir.path(), "split-notes.md", "# notes\n");
    let mut artifacts = Artifacts::default();
    artifacts.add(ArtifactKind::Dataset, "prefs.jsonl", &data);
    artifacts.add_owned("data", ArtifactKind::Report, "split notes", &report);
    artifacts.add(
        ArtifactKind::Vector,
        "gone vector",
        dir.path().join("gone.safetensors"),
    );
    let persisted = Persisted {
        artifacts,
        last_panel: PanelId::Generate,
        ..Default::default()
    };
    // Through JSON, as eframe stores it.
    let persisted: Persisted =
        serde_json::from_str(&serde_json::to_string(&persisted).unwrap()).unwrap();
    let picker = ScriptedPicker::new();
    let app = SteerlabApp::new(
        Box::new(picker.clone()),
        Some(persisted),
        StartOptions::default(),
    );
    let mut h = harness(app);
    h.run();
    assert_eq!(h.state().current_panel(), PanelId::Generate);
    assert!(h.query_by_label("Datasets (1)").is_some());
    assert!(h.query_by_label("Reports (1)").is_some());
    assert!(h.query_by_label("Vectors (1)").is_some());

    // A dataset opens in the Data panel (loaded in the background) and is marked loaded.
    h.get_by_label("prefs.jsonl").click();
    wait_for_jobs(&mut h);
    assert_eq!(h.state().current_panel(), PanelId::Data);
    let st = &h.state().state;
    assert_eq!(st.datasets[st.active_dataset.unwrap()].path, data);
    assert!(h.query_by_label("• prefs.jsonl").is_some());

    // A missing file says so and stays put.
    h.get_by_label("gone vector").click();
    h.run();
    let msg = h.state().state.last_message().unwrap().text.clone();
    assert!(
        msg.contains("gone.safetensors") && msg.contains("missing"),
        "{msg}"
    );

    // Another kind is handed to its owner panel as a navigation request.
    h.state_mut().select(PanelId::Model);
    h.run();
    h.get_by_label("split notes").click();
    h.step();
    assert_eq!(h.state().current_panel(), PanelId::Data);
    h.run();
    assert!(
        h.state().state.navigation.is_none(),
        "a selection its panel does not take is dropped"
    );
    assert!(picker.calls().is_empty());

    // Saved settings carry the registry (opening the dataset moved it to the top).
    let back = h.state().persisted();
    let names: Vec<_> = back.artifacts.iter().map(|a| a.name.clone()).collect();
    assert_eq!(names, ["prefs.jsonl", "gone vector", "split notes"]);
}

#[test]
fn navigate_switches_panel_and_the_panel_can_take_the_selection() {
    let picker = ScriptedPicker::new();
    let mut h = harness(app_with(&picker, StartOptions::default()));
    h.run();
    let sel = Selection::Factor {
        name: "length".into(),
    };
    h.state_mut().state.navigate(PanelId::Data, sel.clone());
    // Taken by the target only.
    assert_eq!(h.state_mut().state.take_selection(PanelId::Model), None);
    assert_eq!(
        h.state_mut().state.take_selection(PanelId::Data),
        Some(sel.clone())
    );
    h.state_mut().state.navigate(PanelId::Data, sel);
    h.step();
    assert_eq!(h.state().current_panel(), PanelId::Data);
}

#[test]
fn theme_toggles_by_button_and_shortcut_and_is_persisted() {
    let picker = ScriptedPicker::new();
    let mut h = harness(app_with(&picker, StartOptions::default()));
    h.run();
    assert!(h.state().is_dark());
    assert_eq!(h.ctx.theme(), egui::Theme::Dark);
    h.get_by_label("Light theme").click();
    h.run();
    assert!(!h.state().is_dark());
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
    assert!(!h.state().persisted().dark);
    assert!(h.query_by_label("Dark theme").is_some());
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::T,
    );
    h.run();
    assert!(h.state().is_dark());
    assert_eq!(h.ctx.theme(), egui::Theme::Dark);
    // Restored light.
    let light = Persisted {
        dark: false,
        ..Default::default()
    };
    let mut h2 = harness(SteerlabApp::new(
        Box::new(picker),
        Some(light),
        StartOptions::default(),
    ));
    h2.run();
    assert_eq!(h2.ctx.theme(), egui::Theme::Light);
}

#[test]
fn shortcuts_switch_panels_open_pickers_and_show_help_and_overlay() {
    let picker = ScriptedPicker::new();
    let mut h = harness(app_with(
        &picker,
        StartOptions {
            panel: Some(PanelId::Model),
            ..Default::default()
        },
    ));
    h.run();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num2);
    h.run();
    assert_eq!(h.state().current_panel(), PanelId::Generate);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num3);
    h.run();
    assert_eq!(h.state().current_panel(), PanelId::Data);
    // Ctrl+M / Ctrl+Shift+M / Ctrl+O open the pickers (cancelled here) and show the panel.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::M);
    h.run();
    assert_eq!(h.state().current_panel(), PanelId::Model);
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::M,
    );
    h.run();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::O);
    h.run();
    assert_eq!(h.state().current_panel(), PanelId::Data);
    assert_eq!(
        picker.calls(),
        vec![
            "pick_file: Model path",
            "pick_folder: Model path",
            "pick_file: Dataset file"
        ]
    );
    // F1: the help window lists the bindings.
    assert!(!h.state().help_open());
    h.key_press(egui::Key::F1);
    h.run();
    assert!(h.state().help_open());
    assert!(h.query_by_label("Keyboard shortcuts").is_some());
    assert!(h.query_by_label("Cancel the newest running job").is_some());
    assert!(h.query_by_label("Data panel").is_some());
    h.key_press(egui::Key::F1);
    h.run();
    assert!(h.query_by_label("Cancel the newest running job").is_none());
    // F12: the frame-time overlay with percentiles.
    h.key_press(egui::Key::F12);
    h.run();
    assert!(h.state().frame_stats_shown());
    assert!(h.query_by_label_contains("p95").is_some());
    assert!(h.state().ui_frame_stats().total() > 0);
}

#[test]
fn escape_cancels_the_newest_job_only() {
    let picker = ScriptedPicker::new();
    let mut h = harness(app_with(&picker, StartOptions::default()));
    h.run();
    let first = spin_job(&mut h, "First");
    let second = spin_job(&mut h, "Second");
    let t0 = Instant::now();
    while h.query_all_by_label_contains("spinning").count() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no progress shown");
        std::thread::sleep(Duration::from_millis(5));
        h.step();
    }
    h.key_press(egui::Key::Escape);
    h.step();
    let t0 = Instant::now();
    while second.lock().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "Esc did not stop the job"
        );
        std::thread::sleep(Duration::from_millis(5));
        h.step();
    }
    assert!(
        first.lock().unwrap().is_none(),
        "the older job keeps running"
    );
    assert_eq!(h.state().state.jobs.statuses().len(), 1);
    h.key_press(egui::Key::Escape);
    wait_for_jobs(&mut h);
    assert!(first.lock().unwrap().clone().unwrap().is_ok());
}

#[test]
fn param_widget_resets_to_its_default_and_shows_it_on_hover() {
    let mut h = Harness::new_ui_state(
        |ui, v: &mut (f64, bool)| {
            ui.ctx()
                .global_style_mut(|s| s.interaction.tooltip_delay = 0.0);
            if widgets::param(ui, "Beta", &mut v.0, 0.0..=1.0, 0.1, "KL strength").changed() {
                v.1 = true;
            }
        },
        (0.5, false),
    );
    h.run();
    h.get_by_label("Beta").hover();
    h.run();
    assert!(h.query_by_label_contains("Default: 0.1").is_some());
    h.get_by_label("Reset").click();
    h.run();
    assert_eq!(*h.state(), (0.1, true));
}
