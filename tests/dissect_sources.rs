//! Dissection inputs beyond the built-in factors: grouping by any column of the file (the
//! reader keeps extra columns, chosen/rejected pairs keep their scenario), SAE features from an
//! `activations.safetensors` with planted effects, and the model-backed sources (LLM-judge
//! rating, steering-vector projection) on the tiny GGUF fixture, checked against the engine
//! called directly.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, D};
use rand::{Rng, SeedableRng};
use steerlab::data::{self, Judgement, LoadOptions, Prompt, Winner};
use steerlab::dissect::factors::{FactorSource, PairValue};
use steerlab::dissect::sources::{LlmJudgeFactors, LlmRater, SaeFactors, VectorFactors};
use steerlab::dissect::{run_dissection, run_dissection_with, DissectConfig, Sampler};
use steerlab::jobs::NoProgress;
use steerlab::model::{Batch, Hooks, LoadOptions as ModelLoad, Model};

fn laplace(factors: &[&str], by: &[&str], b: f64) -> DissectConfig {
    DissectConfig {
        factors: factors.iter().map(|s| s.to_string()).collect(),
        group_by: by.iter().map(|s| s.to_string()).collect(),
        sampler: Sampler::Laplace,
        prior_scale: b,
        seed: 3,
        ..DissectConfig::default()
    }
}

#[test]
fn any_column_groups_and_pairs_keep_their_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.csv");
    // source=long: the chosen answer is the longer one; source=short: the shorter one.
    let mut csv = String::from("id,prompt,chosen,rejected,scenario,source,notes\n");
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let long = "this answer explains the matter in many more words than the other one does";
    for i in 0..80 {
        let src = if i % 2 == 0 { "long" } else { "short" };
        let (c, r) = if (src == "long") == (rng.random::<f64>() < 0.9) {
            (long, "brief")
        } else {
            ("brief", long)
        };
        csv.push_str(&format!(
            "p{i},q{i},{c},{r},{},{src},{}\n",
            if i % 3 == 0 { "code" } else { "chat" },
            "x".repeat(300)
        ));
    }
    std::fs::write(&path, csv).unwrap();
    let ds = data::load_dataset(&path, &LoadOptions::default()).unwrap();
    let js = ds.judgements();
    assert_eq!(js.len(), 80);
    assert_eq!(js[0].scenario.as_deref(), Some("code"));
    assert_eq!(js[1].key("source"), Some("short"));
    // a 300-character cell is not a grouping key
    assert!(!js[0].extra.contains_key("notes"));

    let out = run_dissection(&js, &laplace(&["length"], &["source"], 1.0), &NoProgress).unwrap();
    let labels: Vec<&str> = out.result.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["source=long", "source=short"]);
    assert_eq!(out.result.groups[0].n_pairs, 40);
    let w = |g: usize| out.result.groups[g].factors[0].clone();
    assert!(w(0).lo95 > 0.0, "long: {:?}", w(0));
    assert!(w(1).hi95 < 0.0, "short: {:?}", w(1));

    let out = run_dissection(
        &js,
        &laplace(&["length"], &["scenario", "source"], 1.0),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(out.result.groups.len(), 4);
    assert_eq!(
        out.result.groups.iter().map(|g| g.n_pairs).sum::<usize>(),
        80
    );

    let err = run_dissection(&js, &laplace(&["length"], &["colour"], 1.0), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`colour`") && err.contains("source"), "{err}");
}

/// Writes a fake `steerlab sae run` folder: activations [n, 3] with metadata pair_ids.
fn sae_folder(dir: &Path, ids: &[String], acts: &[f32]) {
    let bytes: Vec<u8> = acts.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![ids.len(), 3], &bytes)
            .unwrap();
    let meta = HashMap::from([("pair_ids".to_string(), serde_json::to_string(ids).unwrap())]);
    let out = safetensors::serialize([("activations".to_string(), view)], Some(meta)).unwrap();
    std::fs::write(dir.join("activations.safetensors"), out).unwrap();
    let report = serde_json::json!({"features": [
        {"index": 0, "description": "uses a numbered list"},
        {"index": 1, "description": null, "ngrams_toward": [{"text": "sorry"}, {"text": "cannot"}]}
    ]});
    std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
}

fn judgement(id: &str, a_wins: bool) -> Judgement {
    Judgement {
        id: id.into(),
        prompt: Prompt::Text("q".into()),
        response_a: "a".into(),
        response_b: "b".into(),
        winner: if a_wins { Winner::A } else { Winner::B },
        judge: None,
        annotator: None,
        scenario: None,
        factors_a: Default::default(),
        factors_b: Default::default(),
        extra: Default::default(),
    }
}

#[test]
fn sae_features_recover_planted_effects_by_pair_id() {
    let n = 1500;
    let planted = [1.2, -0.8, 0.0];
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let normal = rand_distr::Normal::new(0.0f64, 1.0).unwrap();
    let mut ids = Vec::new();
    let mut acts = Vec::new();
    let mut data = Vec::new();
    for i in 0..n {
        let f: Vec<f64> = (0..3).map(|_| rng.sample(normal)).collect();
        let logit: f64 = f.iter().zip(planted).map(|(x, w)| x * w).sum();
        let a_wins = rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp());
        ids.push(format!("pair{i}"));
        acts.extend(f.iter().map(|v| *v as f32));
        // the data lists the pairs in another order and lacks the last 100
        if i < n - 100 {
            data.push(judgement(&format!("pair{i}"), a_wins));
        }
    }
    data.reverse();
    data.push(judgement("not-in-the-sae-run", true));
    let dir = tempfile::tempdir().unwrap();
    sae_folder(dir.path(), &ids, &acts);
    let token = format!("sae:{}", dir.path().display());
    let src = SaeFactors::load(&token, dir.path(), &data).unwrap();
    assert_eq!(src.n_matched(), n - 100);
    let fs = src.factors(&data).unwrap();
    assert_eq!(fs[0].label, "f0: uses a numbered list");
    assert_eq!(fs[1].label, "f1: sorry, cannot");
    assert_eq!(fs[2].label, "SAE f2");
    assert_eq!(
        src.values(data.last().unwrap(), &fs).unwrap(),
        vec![PairValue::Missing; 3]
    );
    let sources: Vec<Box<dyn FactorSource>> = vec![Box::new(src)];
    let out =
        run_dissection_with(&data, &sources, &laplace(&[&token], &[], 1.0), &NoProgress).unwrap();
    let g = &out.result.groups[0];
    for (j, f) in g.factors.iter().enumerate() {
        // continuous factors are fitted on the standardised difference
        let scale = out.result.factor_definitions[j].diff_scale.unwrap();
        let truth = planted[j] * scale;
        assert!(
            f.lo95 <= truth && truth <= f.hi95,
            "{}: planted {truth}, got {f:?}",
            f.name
        );
    }
    assert!(g.factors[0].lo95 > 0.0 && g.factors[1].hi95 < 0.0);

    let err = SaeFactors::load("sae:x", Path::new("/nonexistent/sae"), &data)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("activations.safetensors"), "{err}");
}

fn tiny_model() -> Model {
    let p = steerlab::testing::fixture_path("gguf/tiny_llama.gguf");
    Model::load(&p, &ModelLoad::default()).unwrap()
}

fn pairs() -> Vec<Judgement> {
    let texts = [
        (
            "Sure! Here are three steps: 1. plan 2. build 3. test.",
            "No.",
        ),
        (
            "I am sorry, I cannot help with that.",
            "Of course, here it is.",
        ),
        (
            "Water boils at 100 C at sea level.",
            "It depends on many things, maybe.",
        ),
    ];
    texts
        .iter()
        .enumerate()
        .map(|(i, (a, b))| {
            let mut j = judgement(&format!("t{i}"), i % 2 == 0);
            j.prompt = Prompt::Text(format!("question {i}?"));
            j.response_a = a.to_string();
            j.response_b = b.to_string();
            j
        })
        .collect()
}

#[test]
fn llm_judge_ratings_follow_the_engine_and_are_cached() {
    let model = tiny_model();
    let rater = LlmRater::new(&model).unwrap();
    // Digit probabilities against a full forward pass through the engine's logits.
    let ids = rater
        .prompt_ids("friendly", "q?", "hello there", "go away", "A:")
        .unwrap();
    let p = rater.digit_probs(&ids).unwrap();
    let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, model.device()).unwrap();
    let logits = model.forward(&batch, &mut Hooks::new()).unwrap();
    let last = logits
        .narrow(1, ids.len() - 1, 1)
        .unwrap()
        .flatten_all()
        .unwrap();
    let probs: Vec<f32> = candle_nn::ops::softmax(&last, D::Minus1)
        .unwrap()
        .to_vec1()
        .unwrap();
    let tok = model.tokenizer().unwrap();
    assert_eq!(p.len(), 4);
    for (k, pk) in p.iter().enumerate() {
        let reference: f64 = rater.digit_ids()[k]
            .iter()
            .map(|&i| f64::from(probs[i as usize]))
            .sum();
        let single = tok.encode(&k.to_string(), false).unwrap();
        assert!(rater.digit_ids()[k].contains(&single[0]));
        assert!(
            (pk - reference).abs() < 1e-5,
            "digit {k}: {pk} vs {reference}"
        );
    }

    // Both orders are averaged: swapping A and B swaps the ratings exactly.
    let r = rater
        .rate("friendly", "q?", "hello there", "go away")
        .unwrap();
    let s = rater
        .rate("friendly", "q?", "go away", "hello there")
        .unwrap();
    assert!(
        (r.a - s.b).abs() < 1e-9 && (r.b - s.a).abs() < 1e-9,
        "{r:?} {s:?}"
    );
    for v in [r.a, r.b] {
        assert!((0.0..=3.0).contains(&v));
    }
    assert!(r.digit_mass > 0.0 && r.digit_mass <= 1.0);

    // The source rates every pair and factor once; a second run reads the cache.
    let cache = tempfile::tempdir().unwrap();
    let data = pairs();
    let names = vec!["friendly".to_string(), "step_by_step".to_string()];
    let a = LlmJudgeFactors::compute(
        "llm:x",
        &model,
        &names,
        &data,
        Some(cache.path()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!((a.n_computed, a.n_cached), (6, 0));
    let b = LlmJudgeFactors::compute(
        "llm:x",
        &model,
        &names,
        &data,
        Some(cache.path()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!((b.n_computed, b.n_cached), (0, 6));
    let desc = steerlab::dissect::sources::llm_factor_description("step_by_step");
    assert_eq!(desc, "step by step solution");
    let direct = rater
        .rate(
            &desc,
            "question 1?",
            &data[1].response_a,
            &data[1].response_b,
        )
        .unwrap();
    let got = b.ratings("t1").unwrap()[1];
    assert!((got.0 - direct.a).abs() < 1e-12 && (got.1 - direct.b).abs() < 1e-12);
    let fs = b.factors(&data).unwrap();
    assert_eq!(fs[0].name, "llm_friendly");
    assert_eq!(fs[1].label, "step-by-step");
}

#[test]
fn vector_projection_matches_a_direct_forward_pass() {
    let model = tiny_model();
    let h = model.hidden_size();
    let layer = 0usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let dir: Vec<f32> = (0..h).map(|_| rng.random::<f32>() - 0.5).collect();
    let v = steerlab::steer::SteeringVector::new(
        [(layer, dir.clone())].into_iter().collect(),
        steerlab::steer::VectorMeta::new("test", "tiny", h),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let vp = tmp.path().join("v.safetensors");
    v.save(&vp).unwrap();
    let data = pairs();
    let src = VectorFactors::compute("vector:v", &model, &vp, None, &data, &NoProgress).unwrap();
    let fs = src.factors(&data).unwrap();
    assert_eq!(fs.len(), 1);
    let norm: f64 = dir
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    let tok = model.tokenizer().unwrap();
    let project = |text: &str| -> f64 {
        let ids = tok.encode(text, true).unwrap();
        // The LLM embedder pools every token but the first (the attention sink).
        let skip = usize::from(ids.len() >= 2);
        let n = ids.len() - skip;
        let batch = Batch::from_sequences(&[ids], 0, model.device()).unwrap();
        let resid = model
            .forward_to(layer + 1, &batch, &mut Hooks::new())
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .narrow(1, skip, n)
            .unwrap()
            .mean(1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        resid
            .iter()
            .zip(&dir)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum::<f64>()
            / norm
    };
    for j in &data {
        let got = src.values(j, &fs).unwrap();
        let (a, b) = (project(&j.response_a), project(&j.response_b));
        match got[0] {
            PairValue::Responses(x, y) => {
                assert!((x - a).abs() < 1e-3 * (1.0 + a.abs()), "{x} vs {a}");
                assert!((y - b).abs() < 1e-3 * (1.0 + b.abs()), "{y} vs {b}");
            }
            other => panic!("{other:?}"),
        }
    }
    let err = VectorFactors::compute("vector:v", &model, &vp, Some(5), &data, &NoProgress)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no direction for layer 5"), "{err}");
}
