//! GUI test of the Dissect panel's main flow with egui_kittest: open planted synthetic data
//! through the scripted picker, let the live Laplace fit run (grouped by judge by default),
//! compare it with the library called directly, run NUTS on a background job, cancel a long
//! one, read a waterfall and export the report through the picker's export menu.
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions, SteerlabApp};
use steerlab::data::synth::{write_synthetic, SynthOptions};
use steerlab::data::{load_dataset, LoadOptions};
use steerlab::dissect::{run_dissection, Sampler};
use steerlab::jobs::NoProgress;

/// Steps until no job runs and a few quiet frames passed (the live refit starts a frame
/// after the data arrives).
fn settle(h: &mut Harness<'static, SteerlabApp>) {
    let t0 = Instant::now();
    let mut quiet = 0;
    while quiet < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "jobs did not finish"
        );
        h.step();
        if h.state().state.jobs.is_busy() {
            quiet = 0;
            std::thread::sleep(Duration::from_millis(5));
        } else {
            quiet += 1;
        }
    }
    h.run();
}

#[test]
fn dissect_panel_main_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth.jsonl");
    write_synthetic(&data, &SynthOptions { n: 600, seed: 2 }).unwrap();
    let picker = ScriptedPicker::new();
    picker.push(Some(data.clone()));
    let mut h = common::harness(
        &picker,
        StartOptions {
            panel: Some(PanelId::Dissect),
            ..Default::default()
        },
    );
    h.run();
    h.get_by_label("Open data…").click();
    settle(&mut h);
    assert_eq!(picker.calls(), vec!["pick_file: Dataset to dissect"]);

    // Defaults for this data: annotation columns, grouped by judge, Laplace, b = 0.1.
    let (cfg, out) = {
        let s = &h.state().state.dissect;
        assert_eq!(s.group_by, vec!["judge".to_string()]);
        assert_eq!(s.tokens(), vec!["columns".to_string()]);
        assert_eq!(s.prior_scale, 0.1);
        let out = s.output.clone().unwrap_or_else(|| panic!("{:?}", s.error));
        (s.config(), out)
    };
    // Independent reference: the library on the same file and settings.
    let js = load_dataset(&data, &LoadOptions::default())
        .unwrap()
        .judgements();
    let direct = run_dissection(&js, &cfg, &NoProgress).unwrap();
    assert_eq!(out.result.groups, direct.result.groups);
    let labels: Vec<&str> = out.result.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["judge=gpt-4", "judge=human"]);
    assert!(h.query_by_label_contains("2 group(s)").is_some());

    // Changing the prior refits live.
    h.state_mut().state.dissect.prior_scale = 1.0;
    settle(&mut h);
    let wide = h.state().state.dissect.output.clone().unwrap();
    assert_eq!(wide.result.settings.config.prior_scale, 1.0);
    let spread = |o: &steerlab::dissect::DissectOutput| -> f64 {
        o.result.groups[0]
            .factors
            .iter()
            .map(|f| f.mean.abs())
            .sum()
    };
    assert!(
        spread(&wide) > spread(&out),
        "b = 1.0 shrinks less than 0.1"
    );

    // NUTS on a background job (short chains), with R-hat.
    h.get_by_label("NUTS").click();
    {
        let s = &mut h.state_mut().state.dissect;
        s.nuts.warmup = 100;
        s.nuts.draws = 100;
        s.nuts.chains = 2;
    }
    // Not `h.run()`: a job may still be waking the UI (its spinner repaints every frame).
    settle(&mut h);
    h.get_by_label("Fit").click();
    settle(&mut h);
    let nuts = h.state().state.dissect.output.clone().unwrap();
    assert_eq!(nuts.result.settings.config.sampler, Sampler::Nuts);
    assert!(nuts.result.groups[0].factors[0].rhat.is_some());

    // A long NUTS run is cancelled; the previous fit stays.
    {
        let s = &mut h.state_mut().state.dissect;
        s.nuts.warmup = 5000;
        s.nuts.draws = 20000;
    }
    settle(&mut h);
    h.get_by_label("Fit").click();
    h.step();
    h.step();
    h.get_by_label("Cancel fit").click();
    settle(&mut h);
    let s = &h.state().state.dissect;
    // A cancel is neutral (issue 18): no error kept, an info line says so.
    assert_eq!(s.error, None);
    let m = h.state().state.last_message().unwrap();
    assert_eq!(
        (m.level, m.text.as_str()),
        (steerlab::app::Level::Info, "Dissection cancelled")
    );
    let s = &h.state().state.dissect;
    assert!(std::sync::Arc::ptr_eq(s.output.as_ref().unwrap(), &nuts));

    // Waterfall of pair 3: contributions are the group's posterior means times the features.
    h.get_by_label("Waterfall").click();
    h.state_mut().state.dissect.selected_pair = 3;
    h.run();
    let w = h.state().state.dissect.waterfall().unwrap();
    let gi = nuts.group_of(3).unwrap();
    let means: Vec<f64> = nuts.result.groups[gi]
        .factors
        .iter()
        .map(|f| f.mean)
        .collect();
    let logit: f64 = nuts.design.x[3]
        .iter()
        .zip(&means)
        .map(|(x, m)| x * m)
        .sum();
    assert!((w.logit - logit).abs() < 1e-12);
    assert!(h.query_by_label_contains("P(A preferred)").is_some());

    // Judge-versus-judge view shows Kendall's tau.
    h.get_by_label("Judge vs judge").click();
    h.run();
    assert!(h
        .query_by_label_contains("Agreement of factor rankings")
        .is_some());

    // Export HTML and JSON through the picker.
    let html = tmp.path().join("out/report.html");
    let json = tmp.path().join("out/report.json");
    picker.push(Some(html.clone()));
    common::open_menu(&mut h, "Export report...");
    common::click_item(&mut h, "HTML report (.html)");
    picker.push(Some(json.clone()));
    common::open_menu(&mut h, "Export report...");
    common::click_item(&mut h, "JSON (.json)");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("judge=human") && page.contains("<svg"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);
    assert_eq!(v["groups"][1]["group"]["judge"], "human");
    assert!(!Path::new(&format!("{}.tmp", json.display())).exists());
}
