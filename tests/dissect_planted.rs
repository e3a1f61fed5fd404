//! Dissection against planted truth: judgements generated from known per-group factor weights
//! (sign features, labels drawn from the logistic model) must be recovered — intervals cover
//! the planted weights, large weights get their sign, chains converge — plus pipeline
//! properties (orientation invariance, folds, waterfall arithmetic, cancel, input errors).
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use steerlab::data::{Judgement, Prompt, Winner};
use steerlab::dissect::{run_dissection, DissectConfig, DissectError, NutsConfig, Sampler};
use steerlab::jobs::{NoProgress, Progress, ProgressSink};

const FACTORS: [&str; 6] = [
    "harmlessness",
    "well formatted",
    "length",
    "funny",
    "polite",
    "step by step solution",
];

/// Planted weights per (judge, scenario) group.
fn planted() -> Vec<(&'static str, &'static str, [f64; 6])> {
    vec![
        ("human", "code", [1.0, 0.6, 0.0, -0.5, 0.2, 0.8]),
        ("human", "chat", [0.8, -0.3, 0.5, 0.7, 0.0, -0.6]),
        ("gpt", "code", [0.3, 1.2, 0.9, -0.2, -0.7, 0.0]),
        ("gpt", "chat", [-0.6, 0.0, 1.1, 0.4, 0.6, 0.5]),
    ]
}

fn generate(n_per_group: usize, seed: u64, ties: bool) -> Vec<Judgement> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (judge, scenario, w) in planted() {
        for i in 0..n_per_group {
            let mut fa = BTreeMap::new();
            let mut fb = BTreeMap::new();
            let mut logit = 0.0;
            for (k, name) in FACTORS.iter().enumerate() {
                let a = f64::from(rng.random_range(0..3u8));
                let b = f64::from(rng.random_range(0..3u8));
                fa.insert(name.to_string(), a);
                fb.insert(name.to_string(), b);
                logit += w[k] * (a - b).signum() * f64::from(a != b);
            }
            let p = 1.0 / (1.0 + (-logit).exp());
            let winner = if ties && i % 17 == 0 {
                Winner::Tie
            } else if rng.random::<f64>() < p {
                Winner::A
            } else {
                Winner::B
            };
            out.push(Judgement {
                id: format!("{judge}-{scenario}-{i}"),
                prompt: Prompt::Text("q".into()),
                response_a: "a".into(),
                response_b: "b".into(),
                winner,
                judge: Some(judge.into()),
                annotator: None,
                scenario: Some(scenario.into()),
                factors_a: fa,
                factors_b: fb,
                extra: Default::default(),
            });
        }
    }
    out
}

fn config(sampler: Sampler) -> DissectConfig {
    DissectConfig {
        factors: vec!["columns".into()],
        group_by: vec!["judge".into(), "scenario".into()],
        sampler,
        prior_scale: 1.0,
        folds: 1,
        nuts: NutsConfig {
            warmup: 400,
            draws: 1000,
            chains: 4,
            ..NutsConfig::default()
        },
        seed: 3,
    }
}

fn check_recovery(sampler: Sampler) {
    let data = generate(700, 42, true);
    let out = run_dissection(&data, &config(sampler), &NoProgress).unwrap();
    let r = &out.result;
    assert_eq!(r.groups.len(), 4);
    let (mut covered, mut total) = (0, 0);
    for (judge, scenario, w) in planted() {
        let g = r
            .groups
            .iter()
            .find(|g| {
                g.group.get("judge").map(String::as_str) == Some(judge)
                    && g.group["scenario"] == scenario
            })
            .expect("group present");
        assert_eq!(g.n_ties, 700usize.div_ceil(17));
        assert_eq!(g.n_pairs + g.n_ties, 700);
        for (k, name) in FACTORS.iter().enumerate() {
            let f = g.factors.iter().find(|f| f.name == *name).unwrap();
            total += 1;
            if f.lo95 <= w[k] && w[k] <= f.hi95 {
                covered += 1;
            }
            if w[k].abs() >= 0.5 {
                assert_eq!(
                    f.mean.signum(),
                    w[k].signum(),
                    "{sampler:?} {judge}/{scenario} {name}: {} vs {}",
                    f.mean,
                    w[k]
                );
                assert!(
                    f.lo95 * f.hi95 > 0.0,
                    "{name}: interval [{}, {}] should exclude 0",
                    f.lo95,
                    f.hi95
                );
            }
            if sampler == Sampler::Nuts {
                assert!(f.rhat.unwrap() < 1.01, "rhat {:?}", f.rhat);
                assert!(f.ess.unwrap() > 400.0, "ess {:?}", f.ess);
            }
            assert!((f.prob_preferred - 100.0 / (1.0 + (-f.mean).exp())).abs() < 1e-9);
        }
    }
    println!("{sampler:?}: coverage {covered}/{total}");
    assert!(
        covered as f64 >= 0.9 * total as f64,
        "coverage {covered}/{total}"
    );
    // the similarity matrix is symmetric with unit diagonal, and GAIR labels were applied
    for a in 0..4 {
        assert_eq!(r.similarity.pearson[a][a], 1.0);
        for b in 0..4 {
            assert_eq!(r.similarity.pearson[a][b], r.similarity.pearson[b][a]);
        }
    }
    assert_eq!(r.factor_definitions[0].name, "funny"); // BTreeMap order of column names
    assert!(r.factor_definitions.iter().any(|f| f.label == "harmless"));
    // report.json shape
    let v = serde_json::to_value(r).unwrap();
    let g0 = &v["groups"][0];
    assert!(g0["group"]["judge"].is_string() && g0["group"]["scenario"].is_string());
    for key in [
        "name",
        "mean",
        "lo95",
        "hi95",
        "sd",
        "prob_preferred",
        "rhat",
        "ess",
    ] {
        assert!(g0["factors"][0].get(key).is_some(), "missing {key}");
    }
    assert!(
        g0["n_pairs"].is_u64()
            && v["similarity"].is_object()
            && v["agreement"].is_object()
            && v["settings"].is_object()
    );
}

#[test]
fn nuts_recovers_planted_weights() {
    check_recovery(Sampler::Nuts);
}

#[test]
fn laplace_recovers_planted_weights() {
    check_recovery(Sampler::Laplace);
}

#[test]
fn similar_groups_are_more_similar() {
    // two judges with identical weights vs one with reversed weights
    let mut data = generate(600, 1, false);
    data.retain(|j| j.scenario.as_deref() == Some("code") && j.judge.as_deref() == Some("human"));
    let mut twin = data.clone();
    let mut rev = data.clone();
    let mut rng = StdRng::seed_from_u64(9);
    let w = planted()[0].2;
    for (t, r) in twin.iter_mut().zip(rev.iter_mut()) {
        let logit: f64 = FACTORS
            .iter()
            .enumerate()
            .map(|(k, n)| {
                w[k] * (t.factors_a[*n] - t.factors_b[*n]).signum()
                    * f64::from(t.factors_a[*n] != t.factors_b[*n])
            })
            .sum();
        t.judge = Some("twin".into());
        t.winner = if rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp()) {
            Winner::A
        } else {
            Winner::B
        };
        r.judge = Some("contrarian".into());
        r.winner = if rng.random::<f64>() < 1.0 / (1.0 + logit.exp()) {
            Winner::A
        } else {
            Winner::B
        };
    }
    data.extend(twin);
    data.extend(rev);
    let cfg = DissectConfig {
        group_by: vec!["judge".into()],
        ..config(Sampler::Laplace)
    };
    let r = run_dissection(&data, &cfg, &NoProgress).unwrap().result;
    let idx = |l: &str| r.similarity.labels.iter().position(|x| x == l).unwrap();
    let (h, t, c) = (
        idx("judge=human"),
        idx("judge=twin"),
        idx("judge=contrarian"),
    );
    assert!(
        r.similarity.pearson[h][t] > 0.8,
        "{:?}",
        r.similarity.pearson
    );
    assert!(r.similarity.pearson[h][c] < -0.8);
    assert!(r.agreement.kendall_tau[h][t] > 0.5);
    assert!(r.agreement.kendall_tau[h][c] < -0.5);
    let pair = r
        .agreement
        .pairs
        .iter()
        .find(|p| p.a.contains("contrarian") && p.b.contains("human"))
        .unwrap();
    assert!(pair
        .opposite_sign_factors
        .contains(&"harmlessness".to_string()));
}

#[test]
fn chosen_rejected_data_is_orientation_randomised_without_changing_the_posterior() {
    let data = generate(300, 5, false);
    // rewrite as "all A won" data: swap A/B where B won
    let all_a: Vec<Judgement> = data
        .iter()
        .map(|j| {
            let mut k = j.clone();
            if j.winner == Winner::B {
                std::mem::swap(&mut k.response_a, &mut k.response_b);
                std::mem::swap(&mut k.factors_a, &mut k.factors_b);
                k.winner = Winner::A;
            }
            k
        })
        .collect();
    let cfg = DissectConfig {
        group_by: vec![],
        ..config(Sampler::Laplace)
    };
    let a = run_dissection(&data, &cfg, &NoProgress).unwrap();
    let b = run_dissection(&all_a, &cfg, &NoProgress).unwrap();
    assert!(!a.result.settings.orientation_randomised);
    assert!(b.result.settings.orientation_randomised);
    let flips = b.design.flipped.iter().filter(|f| **f).count();
    assert!(flips > 400 && flips < 800, "{flips}");
    assert!((b.result.groups[0].frac_a_preferred - 0.5).abs() < 0.1);
    for (x, y) in a.result.groups[0]
        .factors
        .iter()
        .zip(&b.result.groups[0].factors)
    {
        assert!((x.mean - y.mean).abs() < 1e-9 && (x.hi95 - y.hi95).abs() < 1e-9);
    }
}

#[test]
fn folds_average_and_waterfall_adds_up() {
    let data = generate(200, 8, false);
    let cfg = DissectConfig {
        group_by: vec!["judge".into()],
        folds: 5,
        ..config(Sampler::Laplace)
    };
    let out = run_dissection(&data, &cfg, &NoProgress).unwrap();
    let one = run_dissection(
        &data,
        &DissectConfig {
            folds: 1,
            ..cfg.clone()
        },
        &NoProgress,
    )
    .unwrap();
    // K-fold averages of fits on 80% of the data: close to, but not equal to, the full fit
    let (a, b) = (&out.result.groups[0].factors, &one.result.groups[0].factors);
    let max_diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.mean - y.mean).abs())
        .fold(0.0, f64::max);
    assert!(max_diff > 1e-6 && max_diff < 0.15, "{max_diff}");
    assert!(a.iter().zip(b).all(|(x, y)| x.sd > y.sd)); // less data per fit
    let i = out.pair_index("gpt-chat-7").unwrap();
    let w = out.waterfall(i, None).unwrap();
    assert_eq!(w.group, "judge=gpt");
    let g = &out.result.groups[out.group_of(i).unwrap()];
    let manual: f64 = g
        .factors
        .iter()
        .zip(&out.design.x[i])
        .map(|(f, x)| f.mean * x)
        .sum();
    assert!((w.logit - manual).abs() < 1e-12);
    assert!((w.prob_a - 1.0 / (1.0 + (-manual).exp())).abs() < 1e-12);
    assert!(w
        .steps
        .windows(2)
        .all(|s| s[0].contribution.abs() >= s[1].contribution.abs()));
    let svg = steerlab::dissect::report::waterfall_svg(&w);
    assert!(svg.contains("total logit"));
}

struct CancelAfter(std::sync::atomic::AtomicUsize);
impl ProgressSink for CancelAfter {
    fn report(&self, _p: Progress) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst) > 3
    }
}

#[test]
fn cancel_and_bad_options_are_reported() {
    let data = generate(100, 2, false);
    let sink = CancelAfter(Default::default());
    let cfg = DissectConfig {
        nuts: NutsConfig {
            warmup: 5000,
            draws: 5000,
            ..NutsConfig::default()
        },
        ..config(Sampler::Nuts)
    };
    assert!(matches!(
        run_dissection(&data, &cfg, &sink),
        Err(DissectError::Cancelled)
    ));
    let bad = DissectConfig {
        group_by: vec!["colour".into()],
        ..config(Sampler::Laplace)
    };
    let e = run_dissection(&data, &bad, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour") && e.contains("scenario"), "{e}");
    let bad = DissectConfig {
        factors: vec!["sparkle".into()],
        ..config(Sampler::Laplace)
    };
    assert!(run_dissection(&data, &bad, &NoProgress)
        .unwrap_err()
        .to_string()
        .contains("sparkle"));
    let only_ties: Vec<Judgement> = data
        .iter()
        .cloned()
        .map(|mut j| {
            j.winner = Winner::Tie;
            j
        })
        .collect();
    assert!(matches!(
        run_dissection(&only_ties, &config(Sampler::Laplace), &NoProgress),
        Err(DissectError::Empty(_))
    ));
    let bad = DissectConfig {
        prior_scale: 0.0,
        ..config(Sampler::Laplace)
    };
    assert!(run_dissection(&data, &bad, &NoProgress).is_err());
}
