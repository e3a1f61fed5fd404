//! The Dissect panel's Causal view on the tiny seeded Llama fixture: settings typed in, the run
//! started with the button as a background job, and the table shown equals the library's own
//! `run_causal` on the same data, prompts, judge and settings (independent reference).
#[path = "common/mod.rs"]
mod common;

use egui_kittest::kittest::Queryable;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions};
use steerlab::dissect::causal::{run_causal, CausalConfig, CausalJudge, PlantedJudge};
use steerlab::dissect::causal_model::{read_prompts, GeneratorOptions, SteeredGenerator};
use steerlab::jobs::NoProgress;

const WORDS: [&str; 6] = ["rain", "bread", "train", "music", "map", "river"];

fn write_fixture(dir: &std::path::Path) {
    let mut lines = String::new();
    for i in 0..80usize {
        let n = |k: usize| 2 + (i * 7 + k * 5) % 13;
        let words = |k: usize| {
            (0..n(k))
                .map(|j| WORDS[(i + j + k) % 6])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut b = words(1);
        if i % 2 == 0 {
            b.push_str("\n- rain\n- map");
        }
        let row = serde_json::json!({
            "id": format!("p{i}"), "prompt": format!("Tell me about {}", WORDS[i % 6]),
            "response_a": words(0), "response_b": b, "winner": if i % 3 == 0 { "A" } else { "B" },
        });
        lines.push_str(&format!("{row}\n"));
    }
    std::fs::write(dir.join("pairs.jsonl"), lines).unwrap();
    let factors = [
        "length",
        "bullet_list",
        "headers",
        "code_block",
        "refusal",
        "empathy",
        "hedging",
        "question",
        "emoji",
    ];
    let w: serde_json::Map<String, serde_json::Value> = factors
        .iter()
        .map(|f| {
            (
                f.to_string(),
                (if *f == "length" { 40.0 } else { 0.0 }).into(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("t.truth.json"),
        serde_json::json!({"weights": {"j": {"s": w}}}).to_string(),
    )
    .unwrap();
    let prompts: Vec<String> = WORDS
        .iter()
        .map(|w| format!("Say something about {w}"))
        .collect();
    std::fs::write(dir.join("prompts.txt"), prompts.join("\n")).unwrap();
}

#[test]
fn causal_view_runs_as_a_job_and_shows_the_library_result() {
    let tmp = tempfile::tempdir().unwrap();
    write_fixture(tmp.path());
    let data = tmp.path().join("pairs.jsonl");
    let picker = ScriptedPicker::new();
    let mut h = common::harness(
        &picker,
        StartOptions {
            model: Some(common::fixture_model()),
            data: Some(data.clone()),
            panel: Some(PanelId::Dissect),
            ..Default::default()
        },
    );
    common::wait_until(&mut h, |a| {
        a.state.model.is_some() && a.state.dissect.output.is_some()
    });
    h.get_by_label("Causal").click();
    h.run_steps(2);
    assert!(common::shows(&h, "Run causal dissection"));
    // Bad input is refused before work, in the view.
    h.get_by_label("Run causal dissection").click();
    h.run_steps(2);
    assert!(common::shows(&h, "expected planted:FILE.truth.json"));
    {
        let c = &mut h.state_mut().state.dissect.causal;
        c.judge = format!("planted:{}", tmp.path().join("t.truth.json").display());
        c.prompts = tmp.path().join("prompts.txt").display().to_string();
        c.multiplier = 1.0;
        c.threshold = 0.05;
        c.max_tokens = 24;
    }
    h.run_steps(2);
    h.get_by_label("Run causal dissection").click();
    common::wait_until(&mut h, |a| a.state.dissect.causal.report.is_some());
    let shown = h.state().state.dissect.causal.report.clone().unwrap();

    // Reference: the library directly, same settings (default layer, seed 0).
    let model = steerlab::model::Model::load(
        &common::fixture_model(),
        &steerlab::model::LoadOptions::default(),
    )
    .unwrap();
    let js = steerlab::data::load_dataset(&data, &Default::default())
        .unwrap()
        .judgements();
    let prompts = read_prompts(&tmp.path().join("prompts.txt"), 6).unwrap();
    let opts = GeneratorOptions {
        max_tokens: 24,
        ..Default::default()
    };
    let mut g =
        SteeredGenerator::build(&model, &js, &[0, 1], &prompts, &opts, &NoProgress).unwrap();
    let judge =
        CausalJudge::Planted(PlantedJudge::from_file(&tmp.path().join("t.truth.json")).unwrap());
    let direct = run_causal(
        &CausalConfig {
            factors: vec![0, 1],
            multiplier: 1.0,
            threshold: 0.05,
            seed: 0,
        },
        &js,
        &prompts,
        &judge,
        &shown.judge,
        &mut |p: &str, k: usize, m: f64| g.generate(p, k, m),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(shown, direct);
    assert!(common::shows(&h, "correlational (95%)"));
    assert!(common::shows(&h, "bullet_list"));
    let first = &shown.factors[0];
    let cell = format!("{:+.3}", first.steerability);
    assert!(common::shows(&h, &cell), "steerability {cell} not shown");

    // The shown report exports as the CLI's report.json (same content) and as HTML.
    let json = tmp.path().join("causal.json");
    picker.push(Some(json.clone()));
    h.get_by_label("Export causal report...").click();
    h.run();
    h.get_by_label("JSON (.json)").click();
    h.run();
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Both sides parsed by the same (lossy-in-the-last-digit) float reader.
    let want: serde_json::Value =
        serde_json::from_str(&serde_json::to_string_pretty(&shown).unwrap()).unwrap();
    assert_eq!(back, want);
    assert_eq!(
        h.state().state.dissect.causal.last_export.as_deref(),
        Some(json.as_path())
    );
    let html = tmp.path().join("causal.html");
    picker.push(Some(html.clone()));
    h.get_by_label("Export causal report...").click();
    h.run();
    h.get_by_label("HTML report (.html)").click();
    h.run();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("bullet_list"));
}
