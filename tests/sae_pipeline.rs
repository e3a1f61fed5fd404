//! End to end on planted data with a transparent embedder: features track the planted text
//! properties, expressed-preference signs match the planted weights, the output folder reads
//! back, and the steering link produces a native vector.
use rand::{Rng, SeedableRng};
use steerlab::jobs::{NoProgress, ProgressSink};
use steerlab::numeric::pearson_or_zero as pearson;
use steerlab::sae::{self, Embedder, PairSet, RunOptions, SaeConfig, SaeError};

const MARKS: [&str; 4] = ["sorry", "- ", "!", "?"];

/// Embeds a text as indicators of four marks (scaled) plus deterministic hash noise.
struct MarkEmbedder;

impl Embedder for MarkEmbedder {
    fn id(&self) -> String {
        "marks".into()
    }
    fn dim(&self) -> usize {
        12
    }
    fn embed(&self, texts: &[&str], _sink: &dyn ProgressSink) -> Result<Vec<Vec<f32>>, SaeError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 12];
                for (i, m) in MARKS.iter().enumerate() {
                    if t.contains(m) {
                        v[i * 3] = 1.0;
                        v[i * 3 + 1] = 0.5;
                    }
                }
                let h = steerlab::sae::embed::fnv1a(t.as_bytes());
                for (i, x) in v.iter_mut().enumerate() {
                    *x += ((h >> (i * 5)) & 31) as f32 / 31.0 * 0.02;
                }
                v
            })
            .collect())
    }
}

fn planted(n: usize) -> (PairSet, Vec<[f64; 4]>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut js = Vec::new();
    let mut diffs = Vec::new();
    let w = [-2.0, 2.0, 0.0, 0.0];
    for i in 0..n {
        let mut side = || {
            let has: [bool; 4] = std::array::from_fn(|_| rng.random_bool(0.25));
            let mut t = format!("answer {}", rng.random_range(0..1_000_000));
            for (k, m) in MARKS.iter().enumerate() {
                if has[k] {
                    t.push_str(&format!(" {m}x"));
                }
            }
            (t, has)
        };
        let (a, ha) = side();
        let (b, hb) = side();
        let d: [f64; 4] = std::array::from_fn(|k| ha[k] as i32 as f64 - hb[k] as i32 as f64);
        let eta: f64 = (0..4).map(|k| w[k] * d[k]).sum();
        let a_wins = rng.random::<f64>() < 1.0 / (1.0 + (-eta).exp());
        js.push(steerlab::data::Judgement {
            id: format!("p{i}"),
            prompt: steerlab::data::Prompt::Text(format!("prompt {}", i / 2)),
            response_a: a,
            response_b: b,
            winner: if a_wins {
                steerlab::data::Winner::A
            } else {
                steerlab::data::Winner::B
            },
            judge: Some(if i % 2 == 0 { "j1" } else { "j2" }.into()),
            annotator: None,
            scenario: None,
            factors_a: Default::default(),
            factors_b: Default::default(),
            extra: Default::default(),
        });
        diffs.push(d);
    }
    (PairSet::from_judgements(&js), diffs)
}

/// R² of the least-squares fit of `y` on the columns of `x` (`[rows, cols]`) plus an intercept.
fn linear_r2(x: &[f64], cols: usize, y: &[f64]) -> f64 {
    let p = cols + 1;
    let mut a = vec![0.0; p * p];
    let mut b = vec![0.0; p];
    for (i, yi) in y.iter().enumerate() {
        let row: Vec<f64> = std::iter::once(1.0)
            .chain(x[i * cols..(i + 1) * cols].iter().copied())
            .collect();
        for u in 0..p {
            b[u] += row[u] * yi;
            for v in 0..p {
                a[u * p + v] += row[u] * row[v];
            }
        }
    }
    // Gaussian elimination with partial pivoting.
    for c in 0..p {
        let piv = (c..p)
            .max_by(|i, j| a[i * p + c].abs().total_cmp(&a[j * p + c].abs()))
            .unwrap();
        for k in 0..p {
            a.swap(c * p + k, piv * p + k);
        }
        b.swap(c, piv);
        for rr in 0..p {
            if rr != c && a[c * p + c] != 0.0 {
                let f = a[rr * p + c] / a[c * p + c];
                for k in 0..p {
                    a[rr * p + k] -= f * a[c * p + k];
                }
                b[rr] -= f * b[c];
            }
        }
    }
    let beta: Vec<f64> = (0..p)
        .map(|c| {
            if a[c * p + c] != 0.0 {
                b[c] / a[c * p + c]
            } else {
                0.0
            }
        })
        .collect();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let (mut sse, mut sst) = (0.0, 0.0);
    for (i, yi) in y.iter().enumerate() {
        let pred = beta[0]
            + (0..cols)
                .map(|j| beta[j + 1] * x[i * cols + j])
                .sum::<f64>();
        sse += (yi - pred).powi(2);
        sst += (yi - mean).powi(2);
    }
    1.0 - sse / sst
}

#[test]
fn pipeline_recovers_planted_marks_and_writes_outputs() {
    let (pairs, diffs) = planted(2000);
    let opts = RunOptions {
        sae: SaeConfig {
            latents: 4,
            k: 2,
            prefixes: vec![2, 4],
            lr: 5e-3,
            seed: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = sae::run(&pairs, &MarkEmbedder, None, &opts, &NoProgress).unwrap();
    let m = r.sae.d_sae;
    assert_eq!(r.activations.len(), 2000 * m);
    let act =
        |j: usize| -> Vec<f64> { (0..2000).map(|i| r.activations[i * m + j] as f64).collect() };
    // The features span the planted marks: each mark's difference is linearly decodable from
    // the activations (least squares via the IRLS-free normal equations of a linear probe).
    let mut best_feature = [0usize; 4];
    for k in 0..4 {
        let d: Vec<f64> = diffs.iter().map(|x| x[k]).collect();
        let x: Vec<f64> = (0..2000)
            .flat_map(|i| (0..m).map(move |j| i * m + j))
            .map(|t| r.activations[t] as f64)
            .collect();
        let r2 = linear_r2(&x, m, &d);
        assert!(r2 > 0.9, "mark {k}: R² {r2}");
        best_feature[k] = (0..m)
            .max_by(|a, b| {
                pearson(&act(*a), &d)
                    .abs()
                    .total_cmp(&pearson(&act(*b), &d).abs())
            })
            .unwrap();
    }
    // Expressed preferences: some feature is Bonferroni-significant, and the marks with no planted
    // weight do not dominate the LASSO's first entry.
    assert!(r
        .report
        .features
        .iter()
        .any(|f| f.effect.as_ref().is_some_and(|e| e.p_bonferroni < 1e-6)));
    let auc = &r.report.auc;
    assert!(
        auc.top5.unwrap() > 0.75 && auc.all_features.unwrap() > 0.75,
        "{auc:?}"
    );
    assert!(
        auc.length_only.unwrap() < 0.65,
        "length carries no planted signal: {auc:?}"
    );
    assert_eq!(r.report.groups.len(), 2, "per-judge weights");
    // The feature most correlated with "sorry" separates its top pairs by that word.
    let f = &r.report.features[best_feature[0]];
    assert!(!f.top_pairs.is_empty());
    assert!(
        f.ngrams_toward
            .iter()
            .chain(&f.ngrams_away)
            .any(|g| g.text.contains("sorry")),
        "{:?} / {:?}",
        f.ngrams_toward,
        f.ngrams_away
    );

    // Output folder round trip.
    let dir = tempfile::tempdir().unwrap();
    sae::write_outputs(dir.path(), &r).unwrap();
    for name in [
        "cfg.json",
        "sae_weights.safetensors",
        "activations.safetensors",
        "report.json",
        "report.md",
        "report.html",
    ] {
        assert!(dir.path().join(name).exists(), "{name}");
    }
    let back = sae::read_sae(dir.path()).unwrap();
    assert_eq!(back, r.sae);
    let bytes = std::fs::read(dir.path().join("activations.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let ids: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["pair_ids"]).unwrap();
    assert_eq!(ids, pairs.ids);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script src") && !html.contains("<link"));

    // Steering link: only an llm-embedder SAE has residual directions.
    assert!(sae::feature_vector(
        &sae::SaeFolder::read(dir.path()).unwrap(),
        0,
        sae::VectorScale::Unit
    )
    .is_err());
    // As if the embeddings were read at layer 3 of a model named "tiny": the feature becomes
    // a native vector scaled to its mean |activation|; projecting it back finds that feature.
    let mut r2 = r.clone();
    r2.report.embedder = "llm:tiny:resid_post:3".into();
    r2.report.dataset = "planted.jsonl".into();
    let dir = tempfile::tempdir().unwrap();
    sae::write_outputs(dir.path(), &r2).unwrap();
    let folder = sae::SaeFolder::read(dir.path()).unwrap();
    let j = best_feature[1];
    let v = sae::feature_vector(&folder, j, sae::VectorScale::MeanActive).unwrap();
    let active: Vec<f64> = act(j).into_iter().filter(|x| *x != 0.0).collect();
    let mean_abs = active.iter().map(|x| x.abs()).sum::<f64>() / active.len() as f64;
    let norm = v.norms()[&3] as f64;
    assert!(
        (norm - mean_abs).abs() < 1e-4 * mean_abs,
        "{norm} vs {mean_abs}"
    );
    assert_eq!(v.meta.model, "tiny");
    assert_eq!(v.meta.dataset, "planted.jsonl");
    assert!(
        v.meta.method.contains(&format!("feature {j}")),
        "{}",
        v.meta.method
    );
    let path = dir.path().join("v.safetensors");
    v.save(&path).unwrap();
    let back = steerlab::steer::SteeringVector::load(&path).unwrap();
    let p = sae::project_steering_vector(&folder, &back, None).unwrap();
    assert_eq!((p.layer, p.features[0].feature), (3, j));
    assert!((p.features[0].cosine - 1.0).abs() < 1e-5);
    assert!((p.features[0].projection - norm).abs() < 1e-4 * norm);
    assert!((p.explained - 1.0).abs() < 1e-4, "{}", p.explained);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    assert!(sae::project_vector(&r.sae, &[0.0; 5]).is_err());
    assert!(sae::project_steering_vector(&folder, &back, Some(2)).is_err());
    assert!(sae::feature_vector(&folder, m, sae::VectorScale::Unit).is_err());
}

#[test]
fn too_few_pairs_is_a_clear_error() {
    let (pairs, _) = planted(5);
    let e = sae::run(
        &pairs,
        &MarkEmbedder,
        None,
        &RunOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("at least 10 pairs"), "{e}");
}

/// A stand-in for the LLM: describes a feature by the mark that most separates its top pairs'
/// A sides from their B sides ("contains X" / "lacks X"), and judges a pair by that mark (an
/// oracle judge), so a faithful description must get a high fidelity.
struct OracleGenerator;

impl sae::interpret::TextGenerator for OracleGenerator {
    fn complete(&self, user: &str, _max_tokens: usize) -> Result<String, SaeError> {
        if let Some(rest) = user.strip_prefix("Property: ") {
            let desc = rest.lines().next().unwrap_or("");
            let (want, mark) = match desc.strip_prefix("contains ") {
                Some(m) => (true, m),
                None => (false, desc.trim_start_matches("lacks ")),
            };
            let a = user.split("Response A: ").nth(1).unwrap_or("");
            let (a, b) = a.split_once("Response B: ").unwrap_or((a, ""));
            let b = b.split("Which response").next().unwrap_or(b);
            return Ok(match (a.contains(mark) == want, b.contains(mark) == want) {
                (true, false) => "A",
                (false, true) => "B",
                _ => "N",
            }
            .into());
        }
        let count = |side: &str, m: &str| {
            user.lines()
                .filter(|l| l.starts_with(side) && l.contains(m))
                .count() as i64
        };
        let best = MARKS
            .iter()
            .max_by_key(|m| (count("A: ", m) - count("B: ", m)).abs())
            .unwrap();
        let verb = if count("A: ", best) >= count("B: ", best) {
            "contains"
        } else {
            "lacks"
        };
        Ok(format!("{verb} {best}\nextra line"))
    }
}

#[test]
fn llm_descriptions_and_fidelity_run_through_the_pipeline() {
    let (pairs, diffs) = planted(600);
    let opts = RunOptions {
        sae: SaeConfig {
            latents: 4,
            k: 2,
            prefixes: vec![2, 4],
            lr: 5e-3,
            seed: 2,
            ..Default::default()
        },
        fidelity_pairs: 40,
        ..Default::default()
    };
    let r = sae::run(
        &pairs,
        &MarkEmbedder,
        Some(&OracleGenerator),
        &opts,
        &NoProgress,
    )
    .unwrap();
    let m = r.sae.d_sae;
    // A small SAE mixes marks, so each feature is checked against its own most correlated
    // mark: where that mark clearly dominates, the description (first line only) names it with
    // the sign of the correlation, and its fidelity is high (the oracle judges by the mark).
    let act =
        |j: usize| -> Vec<f64> { (0..600).map(|i| r.activations[i * m + j] as f64).collect() };
    let mut checked = 0;
    for (j, f) in r.report.features.iter().enumerate() {
        let mut rs: Vec<(f64, usize)> = (0..MARKS.len())
            .map(|k| {
                let d: Vec<f64> = diffs.iter().map(|x| x[k]).collect();
                (pearson(&act(j), &d), k)
            })
            .collect();
        rs.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        if rs[0].0.abs() - rs[1].0.abs() < 0.05 {
            continue;
        }
        let (rho, k) = rs[0];
        let want = format!(
            "{} {}",
            if rho > 0.0 { "contains" } else { "lacks" },
            MARKS[k].trim()
        );
        assert_eq!(f.description.as_deref(), Some(want.as_str()), "feature {j}");
        let fid = f.fidelity.as_ref().unwrap();
        assert_eq!(fid.n, 40);
        assert!(fid.kept && fid.r > 0.5, "feature {j}: {fid:?}");
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} features had a dominant mark");
}

/// One forward pass serving several layers gives exactly the single-layer embeddings, and
/// `embed_pairs_layers` caches each layer under the key a single-layer run reads.
#[test]
fn multi_layer_llm_embedding_equals_single_layer_runs() {
    use steerlab::sae::llm::{load_tokenizer, LlmEmbedder};
    let home = tempfile::tempdir().unwrap();
    // Only this test in this binary touches the cache, so setting the variable is safe.
    std::env::set_var("STEERLAB_HOME", home.path());
    let dir = steerlab::testing::fixture("llama");
    let model = steerlab::model::Model::load(&dir, &Default::default()).unwrap();
    let tok = load_tokenizer(&dir).unwrap();
    let mut e = LlmEmbedder::new(&model, &tok, 0).unwrap();
    e.batch_size = 3; // several batches with different padding
    let texts = [
        "a b c",
        "hello there, how are you today?",
        "x",
        "the rain in spain falls mainly on the plain",
        "sorry, I cannot help with that",
        "one two three four five six seven",
        "ok",
    ];
    let layers = [2usize, 0, 1];
    let multi = e.embed_layers(&layers, &texts, &NoProgress).unwrap();
    assert_eq!(multi.len(), 3);
    for (li, &l) in layers.iter().enumerate() {
        let single = e.at_layer(l).unwrap().embed(&texts, &NoProgress).unwrap();
        assert_eq!(multi[li], single, "layer {l}");
        assert_eq!(single.len(), texts.len());
        assert!(single
            .iter()
            .all(|r| r.len() == 64 && r.iter().all(|v| v.is_finite())));
    }
    // The layers are different read-outs, not one copied three times.
    assert_ne!(multi[0], multi[1]);
    assert_ne!(multi[1], multi[2]);
    assert!(e.embed_layers(&[3], &texts, &NoProgress).is_err());

    // Pairs through the cache: the multi-layer run writes per-layer caches that a single-layer
    // `embed_pairs` then hits with identical values.
    let (pairs, _) = planted(12);
    let opts = RunOptions {
        data_hash: Some(42),
        ..RunOptions::default()
    };
    let got = sae::embed_pairs_layers(&pairs, &e, &[1, 2], &opts, &NoProgress).unwrap();
    assert!(got.iter().all(|(_, _, cached)| !cached));
    for (&l, (a, b, _)) in [1usize, 2].iter().zip(&got) {
        let el = e.at_layer(l).unwrap();
        let (a1, b1, cached) = sae::pipeline::embed_pairs(&pairs, &el, &opts, &NoProgress).unwrap();
        assert!(
            cached,
            "layer {l} was not cached under the single-layer key"
        );
        assert_eq!((&a1, &b1), (a, b));
    }
    // A second multi-layer call with one new layer reads two from the cache.
    let again = sae::embed_pairs_layers(&pairs, &e, &[2, 0, 1], &opts, &NoProgress).unwrap();
    let flags: Vec<bool> = again.iter().map(|g| g.2).collect();
    assert_eq!(flags, vec![true, false, true]);
    assert_eq!(again[0].0, got[1].0);
}
