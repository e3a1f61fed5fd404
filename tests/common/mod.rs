//! Set-up shared by the GUI tests (`mod common;` in tests/app_*.rs): the kittest harness over
//! the whole window, waiting for background jobs, the tiny fixture model and tiny data.
//! Test scaffolding only; what a test checks stays in its own file.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use steerlab::app::{ScriptedPicker, StartOptions, SteerlabApp};

/// The app under test.
pub type App = Harness<'static, SteerlabApp>;

/// One cache root (`STEERLAB_HOME`) per test binary, so caches and run folders stay out of ~.
pub fn home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::env::set_var("STEERLAB_HOME", d.path());
        d
    })
    .path()
}

/// The whole window at 1280x800 driven through `picker`. Random-init models answer with
/// arbitrary bytes, so missing glyphs are drawn as boxes instead of failing.
pub fn harness(picker: &ScriptedPicker, start: StartOptions) -> App {
    home();
    let app = SteerlabApp::new(Box::new(picker.clone()), None, start);
    Harness::builder()
        .with_size([1280.0, 800.0])
        .allow_missing_glyphs()
        .build_ui_state(|ui, app: &mut SteerlabApp| app.show(ui), app)
}

/// The whole window at 1280x800 around `app`, strict: a missing glyph fails the test (for
/// panels whose text is the app's own). Does not move `STEERLAB_HOME`.
pub fn strict_harness(app: SteerlabApp) -> App {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut SteerlabApp| app.show(ui), app)
}

/// A new app driven through `picker`, shown by [`strict_harness`].
pub fn strict_app(picker: &ScriptedPicker, start: StartOptions) -> App {
    strict_harness(SteerlabApp::new(Box::new(picker.clone()), None, start))
}

/// Steps until `done` holds and no job runs, then a few quiet frames (panics after 300 s).
pub fn wait_until(h: &mut App, done: impl Fn(&SteerlabApp) -> bool) {
    let t0 = Instant::now();
    h.step();
    while h.state().state.jobs.is_busy() || !done(h.state()) {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "jobs did not finish; last message: {:?}",
            h.state().state.last_message().map(|m| m.text.clone())
        );
        std::thread::sleep(Duration::from_millis(5));
        h.step();
    }
    h.run_steps(3);
}

/// Steps until no job runs.
pub fn wait_for_jobs(h: &mut App) {
    wait_until(h, |_| true);
}

/// True when some node's label contains `text`.
pub fn shows(h: &App, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// The tiny seeded Llama fixture (HF folder with the test tokenizer).
pub fn fixture_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama")
}

/// `n` chosen/rejected pairs in `dir/tiny_pairs.jsonl`: every third chosen response apologises,
/// the others are longer and list-like; rejected responses are short.
pub fn write_tiny_pairs(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("tiny_pairs.jsonl");
    let mut out = String::new();
    for i in 0..n {
        let topic = ["rain", "bread", "trains", "music", "maps"][i % 5];
        let chosen = if i % 3 == 0 {
            format!("Sorry, I am not sure about {topic}, but here is a short note {i}.")
        } else {
            format!("Here is a clear answer about {topic}: item {i} with - a list")
        };
        let rejected = format!("{topic} {i}? no idea");
        out.push_str(
            &serde_json::json!({
                "id": format!("p{i}"),
                "prompt": format!("Tell me about {topic} number {}", i / 2),
                "chosen": chosen,
                "rejected": rejected,
            })
            .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    path
}

/// Scrolls the widget labelled `label` into view and clicks it (kittest clicks with the
/// pointer, so a widget below the fold must be scrolled to first).
pub fn click(h: &mut App, label: &str) {
    h.get_by_label(label).scroll_to_me();
    h.run_steps(2);
    h.get_by_label(label).click();
    h.run_steps(2);
}

/// Opens the menu button labelled `label` (an accessibility click, so it works wherever the
/// button is scrolled) and lets the popup appear.
pub fn open_menu(h: &mut App, label: &str) {
    h.get_by_label(label).click_accesskit();
    h.run_steps(3);
}

/// Clicks the item labelled `label` of an open menu.
pub fn click_item(h: &mut App, label: &str) {
    let found = h.query_by_label(label).is_some();
    if !found {
        let labels: Vec<String> = h
            .query_all_by_label_contains("(.")
            .filter_map(|n| n.accesskit_node().label())
            .collect();
        panic!("no menu item {label:?}; items seen: {labels:?}");
    }
    h.get_by_label(label).click_accesskit();
    h.run_steps(3);
}
