//! Feature atlas and annotator groups (issue 23): planted annotator groups are recovered
//! (adjusted Rand index, interval coverage of the planted weights), bad input gives clear
//! errors, clustering is deterministic for a seed; the feature atlas recovers planted decoder
//! geometry, is deterministic, and lands in the report and the output folder.
use rand::{Rng, SeedableRng};
use steerlab::data::synth::{self, PlantedGroups, SynthOptions, FACTORS, GROUP_WEIGHTS};
use steerlab::data::Judgement;
use steerlab::dissect::groups::{adjusted_rand_index, Grouping};
use steerlab::dissect::{
    annotator_groups, run_dissection, DissectConfig, DissectError, GroupingConfig, Sampler,
};
use steerlab::jobs::NoProgress;
use steerlab::numeric::cluster::ClusterCount;
use steerlab::sae::{self, AtlasConfig, PairSet, Representation, RunOptions, SaeConfig};

fn config() -> DissectConfig {
    DissectConfig {
        factors: vec!["columns".into()],
        sampler: Sampler::Laplace,
        prior_scale: 1.0,
        seed: 2,
        ..Default::default()
    }
}

fn planted_data(n: usize, groups: usize, annotators: usize, seed: u64) -> synth::SynthData {
    synth::generate_with(
        &SynthOptions { n, seed },
        Some(&PlantedGroups { groups, annotators }),
    )
}

fn group(data: &[Judgement], g: &GroupingConfig) -> Result<Grouping, DissectError> {
    let cfg = config();
    let out = run_dissection(data, &cfg, &NoProgress)?;
    annotator_groups(data, &out, &cfg, g, &NoProgress)
}

#[test]
fn planted_groups_are_recovered_with_covering_intervals() {
    // 3 groups, 30 annotators, ~200 pairs each.
    let data = planted_data(6000, 3, 30, 5);
    let truth = &data.truth.annotator_groups;
    assert_eq!(truth.len(), 30);
    let cfg = config();
    let mut out = run_dissection(&data.judgements, &cfg, &NoProgress).unwrap();
    for groups in [ClusterCount::Auto, ClusterCount::Fixed(3)] {
        let g = GroupingConfig {
            groups,
            seed: 11,
            ..Default::default()
        };
        let found = annotator_groups(&data.judgements, &out, &cfg, &g, &NoProgress).unwrap();
        assert_eq!(found.groups.len(), 3, "{groups}: {:?}", found.summary.bic);
        let ari = adjusted_rand_index(&found.groups, truth).unwrap();
        println!("{groups}: ARI {ari:.3}, BIC {:?}", found.summary.bic);
        assert!(ari >= 0.8, "{groups}: ARI {ari}");
        // Each found group's intervals cover its planted weights (length on the encoded
        // scale: planted weight per 100 words times the rms of the difference).
        let (mut covered, mut total) = (0, 0);
        for grp in &found.groups {
            let mut votes = [0usize; 3];
            for m in &grp.members {
                votes[truth[m]] += 1;
            }
            let planted = (0..3).max_by_key(|&i| votes[i]).unwrap();
            for f in &grp.factors {
                let k = FACTORS.iter().position(|n| *n == f.name).unwrap();
                let scale = out
                    .result
                    .factor_definitions
                    .iter()
                    .find(|d| d.name == f.name)
                    .and_then(|d| d.diff_scale)
                    .unwrap_or(1.0);
                let w = GROUP_WEIGHTS[planted][k] * scale;
                total += 1;
                covered += usize::from(f.lo95 <= w && w <= f.hi95);
                if w.abs() >= 0.6 {
                    assert_eq!(f.mean.signum(), w.signum(), "{}: {f:?} vs {w}", f.name);
                }
            }
        }
        println!("{groups}: coverage {covered}/{total}");
        assert!(
            covered as f64 >= 0.85 * total as f64,
            "coverage {covered}/{total}"
        );
        // report.json carries exactly the shape
        found.clone().attach(&mut out);
        let v = serde_json::to_value(&out.result).unwrap();
        let g0 = &v["annotator_groups"][0];
        let keys: Vec<&String> = g0.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["factors", "group", "members"]);
        assert_eq!(g0["group"], 0);
        assert!(g0["members"][0].is_string());
        let f0: Vec<&String> = g0["factors"][0].as_object().unwrap().keys().collect();
        assert_eq!(f0, ["hi95", "lo95", "mean", "name"]);
        assert!(v["annotator_grouping"]["pooled"]["factors"].is_array());
        let md = steerlab::dissect::report::to_markdown(&out.result);
        assert!(md.contains("## Annotator groups") && md.contains("pooled"));
        let html = steerlab::dissect::report::to_html(&out.result);
        assert!(html.contains("Annotator groups versus the pooled fit"));
        assert!(html.contains("Annotators by their own weights"));
    }
}

#[test]
fn two_planted_groups_and_auto_on_one_group() {
    let data = planted_data(4000, 2, 20, 8);
    let found = group(&data.judgements, &GroupingConfig::default()).unwrap();
    assert_eq!(found.groups.len(), 2, "{:?}", found.summary.bic);
    let ari = adjusted_rand_index(&found.groups, &data.truth.annotator_groups).unwrap();
    assert!(ari >= 0.8, "ARI {ari}");
    // The annotators of one planted group share one weight vector: auto finds no
    // structure among them (K = 1).
    let truth = &data.truth.annotator_groups;
    let only0: Vec<Judgement> = data
        .judgements
        .iter()
        .filter(|j| truth[j.annotator.as_deref().unwrap()] == 0)
        .cloned()
        .collect();
    let found = group(&only0, &GroupingConfig::default()).unwrap();
    assert_eq!(found.groups.len(), 1, "{:?}", found.summary.bic);
    assert_eq!(found.groups[0].members.len(), 10);
}

#[test]
fn grouping_is_deterministic_for_a_seed() {
    let data = planted_data(3000, 3, 15, 3);
    let g = GroupingConfig {
        groups: ClusterCount::Fixed(3),
        seed: 4,
        ..Default::default()
    };
    let a = group(&data.judgements, &g).unwrap();
    let b = group(&data.judgements, &g).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_input_gives_clear_errors() {
    let data = planted_data(3000, 3, 15, 3);
    let err = |d: &[Judgement], g: GroupingConfig| group(d, &g).unwrap_err().to_string();
    let e = err(
        &data.judgements,
        GroupingConfig {
            column: "rater".into(),
            ..Default::default()
        },
    );
    assert!(
        e.contains("annotator column `rater`") && e.contains("annotator"),
        "{e}"
    );
    for k in [0, 1, 21] {
        let e = err(
            &data.judgements,
            GroupingConfig {
                groups: ClusterCount::Fixed(k),
                ..Default::default()
            },
        );
        assert!(e.contains("must be from 2 to 20"), "{e}");
    }
    // 3 annotators cannot make 3 groups of at least 2.
    let few = planted_data(900, 3, 3, 1);
    let e = err(
        &few.judgements,
        GroupingConfig {
            groups: ClusterCount::Fixed(3),
            ..Default::default()
        },
    );
    assert!(e.contains("need at least 6"), "{e}");
    // 30 annotators with ~7 pairs each: none reaches the minimum.
    let thin = planted_data(200, 3, 30, 1);
    let e = err(&thin.judgements, GroupingConfig::default());
    assert!(
        e.contains("0 of 30 annotators") && e.contains("at least 20"),
        "{e}"
    );
    // Unparsable K
    assert!("many".parse::<ClusterCount>().is_err());
    // A mismatch between the dissected data and the data given.
    let cfg = config();
    let out = run_dissection(&data.judgements, &cfg, &NoProgress).unwrap();
    let e = annotator_groups(
        &data.judgements[..100],
        &out,
        &cfg,
        &GroupingConfig::default(),
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("run the grouping on the data that was dissected"),
        "{e}"
    );
    // Planted options out of range.
    let dir = tempfile::tempdir().unwrap();
    for (g, n) in [(1, 10), (4, 10), (3, 2)] {
        let r = synth::write_synthetic_with(
            &dir.path().join("x.jsonl"),
            &SynthOptions { n: 50, seed: 1 },
            Some(&PlantedGroups {
                groups: g,
                annotators: n,
            }),
        );
        assert!(r.is_err(), "{g} groups, {n} annotators");
    }
}

#[test]
fn synth_without_groups_is_unchanged_and_truth_lists_groups() {
    let a = synth::generate(&SynthOptions { n: 80, seed: 4 });
    let b = synth::generate_with(&SynthOptions { n: 80, seed: 4 }, None);
    assert_eq!(a.judgements, b.judgements);
    assert!(a.truth.annotator_groups.is_empty());
    let p = planted_data(300, 2, 6, 4);
    let ids: std::collections::BTreeSet<&str> = p
        .judgements
        .iter()
        .map(|j| j.annotator.as_deref().unwrap())
        .collect();
    assert!(
        ids.len() <= 6
            && ids
                .iter()
                .all(|i| p.truth.annotator_groups.contains_key(*i))
    );
    assert_eq!(p.truth.annotator_groups["annotator_01"], 0);
    assert_eq!(p.truth.annotator_groups["annotator_02"], 1);
    assert_eq!(p.truth.group_weights.len(), 2);
    let v = serde_json::to_value(&p.truth).unwrap();
    assert!(v["annotator_groups"].is_object() && v["group_weights"]["1"]["empathy"].is_number());
    let v = serde_json::to_value(&a.truth).unwrap();
    assert!(v.get("annotator_groups").is_none());
}

/// A small SAE run on random embeddings (the atlas only needs a trained SAE and its report).
fn sae_run(m: usize) -> sae::RunResult {
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
            latents: m,
            k: 2,
            max_epochs: 4,
            batch_size: 64,
            seed: 5,
            ..Default::default()
        },
        ..Default::default()
    };
    sae::analyse(&pairs, &ea, &eb, d, "random", None, &opts, &NoProgress).unwrap()
}

#[test]
fn atlas_recovers_planted_decoder_clusters_and_is_deterministic() {
    let mut run = sae_run(9);
    let a = run.report.atlas.clone().expect("the run builds an atlas");
    assert_eq!(a.points.len(), 9);
    let mut all: Vec<usize> = a.clusters.iter().flat_map(|c| c.members.clone()).collect();
    all.sort();
    assert_eq!(all, (0..9).collect::<Vec<_>>());
    assert!(a.clusters.iter().all(|c| !c.name.is_empty()));
    // Plant 3 tight groups of decoder directions: features 0,3,6 / 1,4,7 / 2,5,8.
    let d = run.sae.d_in;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let base: Vec<Vec<f32>> = (0..3)
        .map(|_| (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    for j in 0..9 {
        let mut v: Vec<f32> = base[j % 3]
            .iter()
            .map(|x| x + rng.random_range(-0.05f32..0.05))
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        run.sae.w_dec[j * d..(j + 1) * d].copy_from_slice(&v);
    }
    let cfg = AtlasConfig {
        seed: 9,
        ..Default::default()
    };
    let a = sae::build_atlas(&run.sae, &run.report, None, &cfg).unwrap();
    assert_eq!(a.k, 3, "{:?}", a.k_scores);
    for c in &a.clusters {
        let r = c.members[0] % 3;
        assert!(c.members.iter().all(|m| m % 3 == r), "{:?}", c.members);
        assert_eq!(c.members.len(), 3);
    }
    assert!(a.silhouette.unwrap() > 0.8);
    assert!(a.explained[0] + a.explained[1] <= 1.0 + 1e-9 && a.explained[0] > 0.3);
    assert_eq!(
        a,
        sae::build_atlas(&run.sae, &run.report, None, &cfg).unwrap()
    );
    // Activation profiles and a fixed K.
    let acts = AtlasConfig {
        representation: Representation::Activations,
        clusters: ClusterCount::Fixed(2),
        seed: 1,
    };
    let b = sae::build_atlas(
        &run.sae,
        &run.report,
        Some(run.activations.as_slice()),
        &acts,
    )
    .unwrap();
    assert_eq!(b.k, 2);
    assert!(b.points.iter().all(|p| p.x.is_finite() && p.y.is_finite()));
    // Bad settings.
    for k in [1, 10] {
        let bad = AtlasConfig {
            clusters: ClusterCount::Fixed(k),
            ..cfg
        };
        let e = sae::build_atlas(&run.sae, &run.report, None, &bad).unwrap_err();
        assert!(e.to_string().contains("must be from 2"), "{e}");
    }
    let e = sae::build_atlas(&run.sae, &run.report, None, &acts).unwrap_err();
    assert!(e.to_string().contains("needs the run's activations"), "{e}");
    assert!("tsne".parse::<Representation>().is_err());
}

#[test]
fn atlas_is_in_the_report_and_the_output_folder() {
    let run = sae_run(8);
    let a = run.report.atlas.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    sae::write_outputs(&out, &run).unwrap();
    for f in ["feature_map.svg", "feature_clusters.svg"] {
        let s = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            s.starts_with("<svg") && s.matches("<circle").count() >= 8,
            "{f}"
        );
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("Feature map and clusters") && html.contains("Feature clusters (k-means")
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("![Feature map](feature_map.svg)"));
    let back = sae::read_outputs(&out).unwrap().report.atlas.unwrap();
    // JSON keeps the numbers up to the last bit or so; the partition exactly.
    assert_eq!((back.k, back.config), (a.k, a.config));
    let members = |x: &sae::Atlas| -> Vec<Vec<usize>> {
        x.clusters.iter().map(|c| c.members.clone()).collect()
    };
    assert_eq!(members(&back), members(&a));
    for (p, q) in back.points.iter().zip(&a.points) {
        assert!((p.x - q.x).abs() < 1e-12 && (p.y - q.y).abs() < 1e-12);
        assert_eq!(
            (p.index, p.cluster, &p.label),
            (q.index, q.cluster, &q.label)
        );
    }
    // A report without an atlas (older folders) still reads.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("atlas");
    let r: sae::SaeReport = serde_json::from_value(v).unwrap();
    assert!(r.atlas.is_none());
}
