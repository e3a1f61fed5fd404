//! The newcomer's way through the whole workbench, without the CLI, as one kittest on the tiny
//! fixture model and 40 tiny pairs, everything through the scripted picker: load the model,
//! open the data, train a CAA vector, move the strength slider, export the vector, train an
//! SAE on the model's own embeddings and export its report, use the vector as a dissection
//! factor, fit, follow a factor to its top pairs, and export the dissection report. Each
//! result is checked against the library called directly or read back from the file written.
mod common;

use std::time::Duration;

use common::{
    click, click_item, fixture_model, harness, open_menu, shows, wait_for_jobs, wait_until,
    write_tiny_pairs,
};
use egui_kittest::kittest::{NodeT, Queryable};
use steerlab::app::{PanelId, ScriptedPicker, StartOptions};
use steerlab::data::{load_dataset, LoadOptions};
use steerlab::dissect::{self, DissectOutput};
use steerlab::jobs::NoProgress;
use steerlab::model::Model;
use steerlab::sae;
use steerlab::steer::{prepare, SteeringVector};

#[test]
fn newcomer_trains_slides_exports_features_and_dissects() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_tiny_pairs(tmp.path(), 40);
    let picker = ScriptedPicker::new();
    let mut h = harness(
        &picker,
        StartOptions {
            panel: Some(PanelId::Model),
            ..Default::default()
        },
    );
    h.state_mut().state.steer.debounce = Duration::ZERO;
    h.run();

    // 1. Model panel: open the model folder through the picker.
    picker.push(Some(fixture_model()));
    click(&mut h, "Open folder…");
    wait_for_jobs(&mut h);
    assert!(
        h.state().state.model.is_some(),
        "{:?}",
        h.state().state.model_error
    );

    // 2. Data panel (sidebar): open the pairs.
    click(&mut h, "Data");
    h.run();
    picker.push(Some(data.clone()));
    click(&mut h, "Open…");
    wait_for_jobs(&mut h);
    assert_eq!(h.state().state.datasets.len(), 1);
    assert_eq!(h.state().state.datasets[0].records.len(), 40);

    // 3. Steer panel: train CAA on the open data; the library gives the same vector.
    click(&mut h, "Steer");
    h.run();
    click(&mut h, "CAA");
    h.run();
    click(&mut h, "Train");
    wait_until(&mut h, |a| !a.state.steer.vectors.is_empty());
    let layers = h.state().state.steer.settings.parse_layers().unwrap();
    let model = Model::load(&fixture_model(), &Default::default()).unwrap();
    let tok = model.tokenizer().unwrap().clone();
    let records = load_dataset(&data, &LoadOptions::default())
        .unwrap()
        .records;
    let caa_ref = steerlab::steer::caa::train_caa(
        &model,
        &prepare::contrasts(&tok, &records, true).unwrap(),
        &layers,
        8,
        "m",
        "d",
        &NoProgress,
    )
    .unwrap();
    let trained = h.state().state.steer.vectors[0].clone();
    assert_eq!(trained.vector.meta.method, "caa");
    assert_eq!(trained.vector.layers, caa_ref.layers);

    // Move the strength slider: the steered answer follows it.
    h.get_all_by_label("Strength")
        .find(|n| n.accesskit_node().role() == eframe::egui::accesskit::Role::Slider)
        .expect("the strength slider")
        .set_value_accesskit(2.0);
    wait_until(&mut h, |a| {
        a.state
            .steer
            .generations
            .as_ref()
            .is_some_and(|g| g.multiplier == 2.0)
    });
    assert_eq!(h.state().state.steer.strength, 2.0);

    // Export the vector and read it back.
    let vpath = tmp.path().join("exports/caa");
    std::fs::create_dir_all(vpath.parent().unwrap()).unwrap();
    picker.push(Some(vpath.with_extension("safetensors")));
    open_menu(&mut h, "Export combination...");
    click_item(&mut h, "safetensors (.safetensors)");
    h.run();
    let back = SteeringVector::load(&vpath.with_extension("safetensors")).unwrap();
    assert_eq!(back.layers, caa_ref.layers);

    // 4. Features panel: an SAE on the model's own residual embeddings, report exported.
    click(&mut h, "Features");
    h.run();
    {
        let s = &mut h.state_mut().state.features.settings;
        s.sae.latents = 8;
        s.sae.k = 2;
        s.sae.max_epochs = 4;
        s.sae.batch_size = 16;
        s.sae.seed = 3;
    }
    click(&mut h, "LLM layer");
    h.run_steps(2);
    click(&mut h, "Train");
    wait_until(&mut h, |a| !a.state.features.runs.is_empty());
    assert_eq!(h.state().state.features.error, None);
    let run_ids = h.state().state.features.runs[0].result.ids.clone();
    assert_eq!(run_ids.len(), 40);
    let fdir = tmp.path().join("features-export");
    picker.push(Some(fdir.clone()));
    click(&mut h, "Export…");
    h.run_steps(2);
    let outputs = sae::read_outputs(&fdir).unwrap();
    assert_eq!(outputs.ids, run_ids);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fdir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["features"].as_array().unwrap().len(), 8);
    assert!(std::fs::read_to_string(fdir.join("report.html"))
        .unwrap()
        .contains("<svg"));

    // 5. Vector -> dissection factor: the button in the vector's row saves the trained vector
    // to the cache, adds it as a factor source and shows the Dissect panel.
    click(&mut h, "Steer");
    h.run();
    click(&mut h, "Use as factor");
    h.run_steps(2);
    assert_eq!(h.state().current_panel(), PanelId::Dissect);
    let spec = h.state().state.dissect.vectors.clone();
    assert_eq!(spec.len(), layers.len());
    let (file, layer) = spec[0].rsplit_once('@').unwrap();
    assert_eq!(layer, layers[0].to_string());
    assert!(std::path::Path::new(file).starts_with(common::home()));
    assert_eq!(
        SteeringVector::load(std::path::Path::new(file))
            .unwrap()
            .layers,
        caa_ref.layers
    );

    // 6. Dissect: fit (a model-backed factor, so no live refit) and compare with the library.
    click(&mut h, "Fit");
    wait_until(&mut h, |a| a.state.dissect.output.is_some());
    let out = h.state().state.dissect.output.clone().unwrap_or_else(|| {
        panic!("{:?}", h.state().state.dissect.error);
    });
    let cfg = h.state().state.dissect.config();
    assert_eq!(cfg.factors[0], "computed");
    assert!(cfg.factors.contains(&format!("vector:{}", spec[0])));
    let judgements = load_dataset(&data, &LoadOptions::default())
        .unwrap()
        .judgements();
    let mut sources = dissect::fit::builtin_sources();
    sources.extend(
        dissect::sources::build_sources(&cfg.factors, &judgements, Some(&model), None, &NoProgress)
            .unwrap(),
    );
    let direct = dissect::run_dissection_with(&judgements, &sources, &cfg, &NoProgress).unwrap();
    assert_eq!(out.result.groups.len(), direct.result.groups.len());
    for (a, b) in out.result.groups[0]
        .factors
        .iter()
        .zip(&direct.result.groups[0].factors)
    {
        assert_eq!(a.name, b.name);
        assert!(
            (a.mean - b.mean).abs() < 1e-9,
            "{}: {} vs {}",
            a.name,
            a.mean,
            b.mean
        );
    }
    let vec_factor = out
        .design
        .factors
        .iter()
        .find(|f| f.name.starts_with("vec_"))
        .expect("the vector is a factor")
        .clone();

    // 7. Factor -> its top pairs: click the factor in the numbers table.
    click(&mut h, "Numbers");
    h.run();
    // The table scrolls sideways inside its column: an accessibility click, wherever it is.
    h.get_by_label(&vec_factor.label).click_accesskit();
    h.run_steps(3);
    assert_eq!(
        h.state().state.dissect.selected_factor.as_deref(),
        Some(vec_factor.name.as_str())
    );
    let fi = out.factor_index(&vec_factor.name).unwrap();
    let top = out.top_pairs(fi, h.state().state.dissect.top_k);
    assert!(!top.is_empty());
    expect_top_pairs_are_the_largest(&out, fi, &top);
    assert!(shows(&h, &format!("pair {}", top[0].id)));
    let j = out.judgement_of(top[0].pair, &judgements).unwrap();
    assert!(shows(&h, &j.response_a) || shows(&h, &j.response_b));

    // 8. Export the dissection report (HTML and JSON) through the export menu; read back.
    let html = tmp.path().join("exports/dissection");
    picker.push(Some(html.clone()));
    open_menu(&mut h, "Export report...");
    click_item(&mut h, "HTML report (.html)");
    let page = std::fs::read_to_string(html.with_extension("html")).unwrap();
    assert!(page.contains(&vec_factor.label) && page.contains("<svg"));
    let json = tmp.path().join("exports/dissection.json");
    picker.push(Some(json.clone()));
    open_menu(&mut h, "Export report...");
    click_item(&mut h, "JSON (.json)");
    let parsed: dissect::DissectResult =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // JSON keeps f64 to within an ulp (serde_json's default float parsing), so compare numbers
    // with a tolerance and everything else exactly.
    assert_eq!(parsed.groups.len(), out.result.groups.len());
    for (a, b) in parsed.groups.iter().zip(&out.result.groups) {
        assert_eq!((&a.label, a.n_pairs), (&b.label, b.n_pairs));
        assert_eq!(a.factors.len(), b.factors.len());
        for (fa, fb) in a.factors.iter().zip(&b.factors) {
            assert_eq!(fa.name, fb.name);
            for (x, y) in [
                (fa.mean, fb.mean),
                (fa.sd, fb.sd),
                (fa.lo95, fb.lo95),
                (fa.hi95, fb.hi95),
            ] {
                assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                    "{}: {x} vs {y}",
                    fa.name
                );
            }
        }
    }

    // Everything made is in the sidebar registry.
    use steerlab::app::ArtifactKind;
    let arts = &h.state().state.artifacts;
    let has = |k, p: &std::path::Path| arts.of_kind(k).any(|a| a.path == p);
    assert!(has(ArtifactKind::Report, &html.with_extension("html")));
    assert!(has(ArtifactKind::Report, &json));
    assert!(has(ArtifactKind::Vector, std::path::Path::new(file)));
    assert!(has(ArtifactKind::Sae, &fdir));
}

/// Every pair not listed differs less in factor `fi` than the last one listed.
fn expect_top_pairs_are_the_largest(out: &DissectOutput, fi: usize, top: &[dissect::FactorPair]) {
    let last = top.last().unwrap().x.abs();
    for w in top.windows(2) {
        assert!(w[0].x.abs() >= w[1].x.abs());
    }
    for (i, row) in out.design.x.iter().enumerate() {
        if !top.iter().any(|p| p.pair == i) {
            assert!(
                row[fi].abs() <= last,
                "pair {i} differs more than the listed ones"
            );
        }
    }
}
