//! GUI tests (egui_kittest) of issue 23's views: the Features panel's map and cluster views of
//! an opened run folder (the atlas it shows is the run's own; a member button selects the
//! feature), and the Dissect panel's annotator groups on planted data (the live fit finds the
//! same groups as the library called directly, and the group view renders).
mod common;

use egui_kittest::kittest::Queryable;
use rand::{Rng, SeedableRng};
use steerlab::app::{FeatureView, FeaturesStart, PanelId, ScriptedPicker, StartOptions};
use steerlab::data::synth::{self, PlantedGroups, SynthOptions};
use steerlab::data::{load_dataset, LoadOptions};
use steerlab::dissect::{annotator_groups, run_dissection};
use steerlab::jobs::NoProgress;
use steerlab::sae::{self, PairSet, RunOptions, SaeConfig};

use common::{shows, wait_for_jobs};

#[test]
fn features_map_and_clusters_render_and_select() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth::generate(&SynthOptions { n: 240, seed: 6 });
    let pairs = PairSet::from_judgements(&data.judgements);
    let d = 12;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut e = || -> Vec<f32> {
        (0..pairs.len() * d)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect()
    };
    let (ea, eb) = (e(), e());
    let opts = RunOptions {
        sae: SaeConfig {
            latents: 10,
            k: 2,
            max_epochs: 4,
            batch_size: 64,
            seed: 5,
            ..Default::default()
        },
        ..Default::default()
    };
    let run = sae::analyse(&pairs, &ea, &eb, d, "random", None, &opts, &NoProgress).unwrap();
    let dir = tmp.path().join("run");
    sae::write_outputs(&dir, &run).unwrap();
    let want = run.report.atlas.clone().unwrap();

    let picker = ScriptedPicker::new();
    let mut h = common::harness(
        &picker,
        StartOptions {
            panel: Some(PanelId::Features),
            features: FeaturesStart {
                run: Some(dir.clone()),
                view: Some(FeatureView::Map),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    wait_for_jobs(&mut h);
    assert_eq!(h.state().state.features.view, FeatureView::Map);
    assert!(shows(&h, "PCA of decoder directions"), "map caption shown");
    assert!(shows(&h, "click to select"));
    {
        let cache = h.state().state.features.atlas.clone().expect("atlas built");
        let got = cache.atlas.as_ref().unwrap();
        // The run's own atlas, read back from report.json (numbers up to the last bit).
        assert_eq!((got.k, got.config), (want.k, want.config));
        let members = |x: &sae::Atlas| -> Vec<Vec<usize>> {
            x.clusters.iter().map(|c| c.members.clone()).collect()
        };
        assert_eq!(members(got), members(&want));
        for (p, q) in got.points.iter().zip(&want.points) {
            assert!((p.x - q.x).abs() < 1e-12 && (p.y - q.y).abs() < 1e-12);
        }
    }
    // Cluster view: every cluster listed with its members; a member selects its feature.
    h.get_by_label("Clusters").click();
    h.run_steps(3);
    for c in &want.clusters {
        assert!(shows(
            &h,
            &format!("Cluster {} ({} features", c.id, c.members.len())
        ));
    }
    let j = want.clusters[0].members[0];
    // Below the map at 1280x800: an accessibility click works wherever it is scrolled.
    h.get_by_label(&format!("#{j}")).click_accesskit();
    h.run_steps(3);
    assert_eq!(h.state().state.features.selected, Some(j));
    assert!(
        shows(&h, &format!("Feature {j}")),
        "the feature view follows"
    );
    // Activation profiles: a new atlas is built for the new setting.
    h.get_by_label("activation profiles").click();
    h.run_steps(3);
    let cache = h.state().state.features.atlas.clone().unwrap();
    let a = cache.atlas.unwrap();
    assert_eq!(a.config.representation, sae::Representation::Activations);
    assert_eq!(a.points.len(), 10);
    assert!(shows(&h, "PCA of activation profiles"));
}

#[test]
fn dissect_panel_finds_and_shows_annotator_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("groups.jsonl");
    synth::write_synthetic_with(
        &path,
        &SynthOptions { n: 3000, seed: 5 },
        Some(&PlantedGroups {
            groups: 3,
            annotators: 15,
        }),
    )
    .unwrap();
    let picker = ScriptedPicker::new();
    picker.push(Some(path.clone()));
    let mut h = common::harness(
        &picker,
        StartOptions {
            panel: Some(PanelId::Dissect),
            ..Default::default()
        },
    );
    h.run_steps(2);
    h.get_by_label("Open data…").click();
    wait_for_jobs(&mut h);
    {
        let s = &mut h.state_mut().state.dissect;
        s.group_by.clear();
        s.prior_scale = 1.0;
    }
    h.get_by_label("Find annotator groups").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let (out, cfg, g) = {
        let s = &h.state().state.dissect;
        let out = s.output.clone().unwrap_or_else(|| panic!("{:?}", s.error));
        (out, s.config(), s.grouping_config().unwrap())
    };
    assert_eq!(out.result.annotator_groups.len(), 3);
    // The library on the same file and settings.
    let js = load_dataset(&path, &LoadOptions::default())
        .unwrap()
        .judgements();
    let direct = run_dissection(&js, &cfg, &NoProgress).unwrap();
    let found = annotator_groups(&js, &direct, &cfg, &g, &NoProgress).unwrap();
    assert_eq!(out.result.annotator_groups, found.groups);
    // The group view.
    h.get_by_label("Annotator groups").click();
    h.run_steps(3);
    assert!(shows(&h, "annotator group(s) by `annotator`"));
    assert!(shows(&h, "Group 0: "));
    assert!(shows(&h, "pooled"));
}
