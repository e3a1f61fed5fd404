//! Batching by length: the planner's properties (every item once, sorted batches within the
//! budgets, results scattered back to input order, Hugging Face-style training minibatches),
//! and, on the tiny fixture Llama with prompts and responses of mixed lengths, that every pass
//! now batched by length (response scoring, activation collection, the BiPO cache, A/B scoring,
//! LLM and MiniLM embeddings) gives the outputs of the unsorted path within 1e-5 relative. The
//! unsorted path is rebuilt here from the engine's primitives on input-order chunks (what the
//! passes computed before), or is the one-item-per-pass run, which has no padding at all.
use std::path::PathBuf;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use steerlab::data::batching::{
    group_minibatches, BatchBudget, BatchPlan, BatchingError, Padding, MEGABATCH_MINIBATCHES,
};
use steerlab::jobs::NoProgress;
use steerlab::model::{Batch, HookPoint, Hooks, LoadOptions, Model};
use steerlab::steer::bipo::{training_padding, BipoProblem, PairTokens, Provenance};
use steerlab::steer::collect::{
    activations_at, completion_batch, response_logprobs, score_completions,
};
use steerlab::steer::eval::AbScorer;
use steerlab::steer::{train_bipo, AbTokens, BipoConfig, Completion, TrainData};

const TOL: f64 = 1e-5;

fn fixture_dir() -> PathBuf {
    steerlab::testing::fixture("llama")
}

fn fixture() -> Model {
    Model::load(&fixture_dir(), &LoadOptions::default()).unwrap()
}

fn ids(rng: &mut impl Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(3..96)).collect()
}

/// Completions with prompts of 2..20 and responses of 1..25 tokens.
fn mixed(n: usize, seed: u64) -> Vec<Completion> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (p, r) = (rng.random_range(2..20), rng.random_range(1..25));
            Completion {
                prompt: ids(&mut rng, p),
                response: ids(&mut rng, r),
            }
        })
        .collect()
}

fn mixed_pairs(n: usize, seed: u64) -> Vec<PairTokens> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let p = rng.random_range(2..20);
            let (a, b) = (rng.random_range(1..25), rng.random_range(1..25));
            PairTokens {
                prompt: ids(&mut rng, p),
                chosen: ids(&mut rng, a),
                rejected: ids(&mut rng, b),
            }
        })
        .collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= TOL * want.abs().max(1e-3),
        "{what}: {got} vs {want}"
    );
}

fn close_rows(got: &[f32], want: &[f32], what: &str) {
    let norm = want.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert_eq!(got.len(), want.len(), "{what}: width");
    assert!(
        diff <= TOL * norm.max(1e-6),
        "{what}: |diff| {diff} vs |row| {norm}"
    );
}

/// The sorted plan must actually regroup these lengths, or the comparisons prove nothing.
fn assert_regrouped(lens: &[usize], bs: usize) {
    let sorted = BatchPlan::by_length(lens, BatchBudget::rows(bs));
    let plain = BatchPlan::sequential(lens.len(), bs);
    assert_ne!(sorted.batches(), plain.batches());
    assert!(sorted.padding(lens).slots < plain.padding(lens).slots);
}

#[test]
fn plans_cover_every_item_once_sorted_within_budget_and_scatter_back() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for trial in 0..50 {
        let n = rng.random_range(0..60);
        let lens: Vec<usize> = (0..n).map(|_| rng.random_range(1..200)).collect();
        let rows = rng.random_range(1..9);
        let budget = if trial % 2 == 0 {
            BatchBudget::rows(rows)
        } else {
            BatchBudget::tokens(rows, rng.random_range(1..600))
        };
        let plan = BatchPlan::by_length(&lens, budget);
        let mut seen: Vec<usize> = plan.batches().iter().flatten().copied().collect();
        // sorted by (length, index) across the whole plan
        for w in seen.windows(2) {
            assert!((lens[w[0]], w[0]) < (lens[w[1]], w[1]));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
        for b in plan.batches() {
            assert!(!b.is_empty() && b.len() <= rows);
            if let Some(t) = budget.max_tokens {
                let longest = b.iter().map(|&i| lens[i]).max().unwrap();
                assert!(b.len() == 1 || b.len() * longest <= t, "{b:?} over {t}");
            }
        }
        // a plan never pads more than input-order chunks of the same row count
        if budget.max_tokens.is_none() {
            let plain = BatchPlan::sequential(n, rows);
            assert!(plan.padding(&lens).slots <= plain.padding(&lens).slots);
            assert_eq!(plan.len(), plain.len());
        }
        // scatter: results computed per batch (here: the item's length × 10 + its index)
        // come back in input order
        let per_batch: Vec<Vec<(usize, usize)>> = plan
            .batches()
            .iter()
            .map(|b| b.iter().map(|&i| (lens[i] * 10, i)).collect())
            .collect();
        let back = plan.scatter(per_batch).unwrap();
        assert_eq!(
            back,
            lens.iter()
                .enumerate()
                .map(|(i, &l)| (l * 10, i))
                .collect::<Vec<_>>()
        );
    }
    let lens = [4, 1, 3];
    let plan = BatchPlan::by_length(&lens, BatchBudget::rows(2));
    assert_eq!(plan.batches(), &[vec![1, 2], vec![0]]);
    assert_eq!(
        plan.scatter(vec![vec![1], vec![2]]).unwrap_err(),
        BatchingError::Count {
            batch: 0,
            got: 1,
            want: 2
        }
    );
    assert!(matches!(
        plan.scatter(vec![vec![1, 2]]).unwrap_err(),
        BatchingError::Batches { got: 1, want: 2 }
    ));
    assert!(plan.scatter(vec![vec![1, 2], vec![3], vec![4]]).is_err());
    let pad = plan.padding(&lens);
    assert_eq!((pad.real, pad.slots), (8, 2 * 3 + 4));
    assert!((pad.fraction() - 0.2).abs() < 1e-12);
    assert_eq!(Padding::default().fraction(), 0.0);
}

#[test]
fn grouped_minibatches_are_seeded_complete_and_pad_less() {
    // Two length populations interleaved: plain chunks mix them, grouping separates them.
    let lens: Vec<usize> = (0..1000)
        .map(|i| if i % 2 == 0 { 10 } else { 300 })
        .collect();
    let bs = 4;
    let run = |seed: u64| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        group_minibatches(&lens, bs, MEGABATCH_MINIBATCHES, &mut rng)
    };
    let a = run(3);
    assert_eq!(a, run(3), "same seed, same minibatches");
    assert_ne!(a, run(4), "another seed, other minibatches");
    assert_eq!(a.len(), lens.len().div_ceil(bs));
    let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..lens.len()).collect::<Vec<_>>());
    // one short minibatch at most (the end of the last mega-batch)
    assert!(a.iter().filter(|b| b.len() != bs).count() <= 1);
    // each minibatch is (nearly always) one population; plain shuffled chunks almost never are
    let pure = |bs_: &[Vec<usize>]| {
        bs_.iter()
            .filter(|b| b.iter().all(|&i| lens[i] == lens[b[0]]))
            .count()
    };
    assert!(pure(&a) >= a.len() - 6, "{} pure of {}", pure(&a), a.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut order: Vec<usize> = (0..lens.len()).collect();
    rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
    let plain: Vec<Vec<usize>> = order.chunks(bs).map(|c| c.to_vec()).collect();
    assert!(pure(&plain) < plain.len() / 3);
    assert!(Padding::of(&a, &lens).fraction() < 0.05);
    assert!(Padding::of(&plain, &lens).fraction() > 0.3);
    // the minibatch order is shuffled: long and short minibatches alternate irregularly,
    // not one mega-batch's sorted run after another
    let firsts: Vec<bool> = a.iter().take(50).map(|b| lens[b[0]] == 300).collect();
    assert!(firsts.windows(2).filter(|w| w[0] != w[1]).count() > 10);
}

#[test]
fn scoring_batched_by_length_equals_the_unsorted_path() {
    let model = fixture();
    let items = mixed(13, 1);
    let lens: Vec<usize> = items.iter().map(Completion::len).collect();
    assert_regrouped(&lens, 4);
    // the unsorted path: input-order chunks of 4
    let mut want = Vec::new();
    for chunk in items.chunks(4) {
        let refs: Vec<&Completion> = chunk.iter().collect();
        let batch = completion_batch(&refs, model.device()).unwrap();
        let hidden = model.forward_hidden(&batch, &mut Hooks::new()).unwrap();
        let lp = response_logprobs(&model, &hidden, &refs).unwrap();
        want.extend(lp.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap());
    }
    let got = score_completions(&model, &items, &Hooks::new(), 4, &NoProgress).unwrap();
    let alone = score_completions(&model, &items, &Hooks::new(), 1, &NoProgress).unwrap();
    assert_eq!(got.len(), items.len());
    for i in 0..items.len() {
        close(got[i], want[i], &format!("completion {i}"));
        close(alone[i], want[i], &format!("completion {i} alone"));
    }
}

#[test]
fn activations_batched_by_length_equal_the_unsorted_path() {
    let model = fixture();
    let items = mixed(11, 2);
    let seqs: Vec<Vec<u32>> = items.iter().map(Completion::full).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let pos: Vec<usize> = seqs.iter().map(|s| rng.random_range(0..s.len())).collect();
    let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
    assert_regrouped(&lens, 3);
    let got = activations_at(&model, &seqs, &pos, &[0, 2], 3, &NoProgress).unwrap();
    for (ci, chunk) in seqs.chunks(3).enumerate() {
        let batch = Batch::from_sequences(chunk, 0, model.device()).unwrap();
        let mut hooks = Hooks::new();
        hooks.capture(HookPoint::ResidPost(0));
        let top = model.forward_to(3, &batch, &mut hooks).unwrap();
        let low = hooks.captured(HookPoint::ResidPost(0)).unwrap().clone();
        for (r, _) in chunk.iter().enumerate() {
            let i = ci * 3 + r;
            for (layer, x) in [(0, &low), (2, &top)] {
                let want = x
                    .get(r)
                    .unwrap()
                    .get(pos[i])
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                close_rows(
                    &got[&layer][i],
                    &want,
                    &format!("sequence {i}, layer {layer}"),
                );
            }
        }
    }
}

#[test]
fn bipo_cache_batched_by_length_equals_the_unsorted_path() {
    let model = fixture();
    let pairs = mixed_pairs(7, 3);
    let data = TrainData::Pairs(pairs.clone());
    let cfg = |eval_batch_size| BipoConfig {
        layers: vec![1],
        eval_batch_size,
        ..Default::default()
    };
    let grouped = BipoProblem::new(&model, &data, &cfg(4), &NoProgress).unwrap();
    let alone = BipoProblem::new(&model, &data, &cfg(1), &NoProgress).unwrap();
    let completions: Vec<Completion> = pairs
        .iter()
        .flat_map(|p| {
            [p.chosen.clone(), p.rejected.clone()].map(|r| Completion {
                prompt: p.prompt.clone(),
                response: r,
            })
        })
        .collect();
    let lens: Vec<usize> = completions.iter().map(Completion::len).collect();
    assert_regrouped(&lens, 4);
    assert!(grouped.cache_padding().slots < BatchPlan::sequential(14, 4).padding(&lens).slots);
    assert_eq!(alone.cache_padding().fraction(), 0.0);
    // reference log-probs of the unsorted path (input-order chunks of 4)
    let mut want = Vec::new();
    for chunk in completions.chunks(4) {
        let refs: Vec<&Completion> = chunk.iter().collect();
        let batch = completion_batch(&refs, model.device()).unwrap();
        let hidden = model.forward_hidden(&batch, &mut Hooks::new()).unwrap();
        let lp = response_logprobs(&model, &hidden, &refs).unwrap();
        want.extend(lp.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap());
    }
    for (i, w) in want.iter().enumerate() {
        close(
            grouped.reference_logprobs()[i],
            *w,
            &format!("ref logp {i}"),
        );
        close(
            alone.reference_logprobs()[i],
            *w,
            &format!("ref logp {i} alone"),
        );
    }
    // the cached residuals: the loss at a nonzero vector is the same from either cache
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let v: Vec<f32> = (0..model.hidden_size())
        .map(|_| rng.random_range(-0.5..0.5))
        .collect();
    let v = Tensor::from_vec(v, model.hidden_size(), &Device::Cpu).unwrap();
    for idx in [vec![0, 1, 2, 3, 4, 5, 6], vec![6, 2], vec![3]] {
        let (a, _, _) = grouped
            .batch_loss(std::slice::from_ref(&v), &idx, 1.0, 0.0)
            .unwrap();
        let (b, _, _) = alone
            .batch_loss(std::slice::from_ref(&v), &idx, 1.0, 0.0)
            .unwrap();
        let (a, b) = (
            a.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap(),
            b.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap(),
        );
        close(a, b, &format!("loss over {idx:?}"));
        // not vacuous: the vector moves the loss away from its value at v = 0 (ln 2)
        assert!((a - std::f64::consts::LN_2).abs() > 1e-4, "{a}");
    }
}

#[test]
fn ab_scores_grouped_by_prompt_and_answer_length_equal_one_by_one() {
    let model = fixture();
    let items: Vec<AbTokens> = mixed_pairs(9, 4)
        .into_iter()
        .map(|p| AbTokens {
            matching: Completion {
                prompt: p.prompt.clone(),
                response: p.chosen,
            },
            non_matching: Completion {
                prompt: p.prompt,
                response: p.rejected,
            },
        })
        .collect();
    let scorer = AbScorer::new(&model, &items, 2, 3, &NoProgress).unwrap();
    let (m, n) = scorer.logprobs(&Hooks::new(), &NoProgress).unwrap();
    for (i, it) in items.iter().enumerate() {
        let one = |c: &Completion| {
            score_completions(
                &model,
                std::slice::from_ref(c),
                &Hooks::new(),
                1,
                &NoProgress,
            )
            .unwrap()[0]
        };
        close(m[i], one(&it.matching), &format!("item {i} matching"));
        close(
            n[i],
            one(&it.non_matching),
            &format!("item {i} non-matching"),
        );
    }
    // one pass computes each prompt once and both answers: real tokens counted that way
    let real: usize = items
        .iter()
        .map(|it| it.matching.len() + it.non_matching.response.len())
        .sum();
    let pad = scorer.padding();
    assert_eq!(pad.real, real);
    assert!(pad.slots > real && pad.fraction() < 0.5, "{pad:?}");
}

#[test]
fn llm_embeddings_batched_by_token_length_equal_one_by_one() {
    use steerlab::sae::llm::{load_tokenizer, LlmEmbedder};
    let model = fixture();
    let tok = load_tokenizer(&fixture_dir()).unwrap();
    let words = ["rain", "bread", "a train to the coast", "music", "x"];
    let texts: Vec<String> = (0..10)
        .map(|i| {
            // character length and token length disagree on purpose for some texts
            let w = words[i % words.len()];
            let reps = [1, 9, 2, 5, 1, 7, 3, 1, 4, 6][i];
            vec![w; reps].join(" ")
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let mut e = LlmEmbedder::new(&model, &tok, 2).unwrap();
    e.batch_size = 4;
    let got = e.embed_layers(&[0, 2], &refs, &NoProgress).unwrap();
    e.batch_size = 1;
    let want = e.embed_layers(&[0, 2], &refs, &NoProgress).unwrap();
    for l in 0..2 {
        for i in 0..texts.len() {
            close_rows(
                &got[l][i],
                &want[l][i],
                &format!("text {i}, layer index {l}"),
            );
        }
    }
    // the texts differ, so rows in the wrong order would not match
    assert!(want[1][0] != want[1][1]);
}

#[test]
fn minilm_embeddings_sorted_over_the_whole_input_equal_one_by_one() {
    use steerlab::sae::{Embedder, MiniLmEmbedder};
    let dir = steerlab::paths::default_embedder_dir();
    if !dir.join("model.safetensors").exists() {
        eprintln!(
            "skipping: {} not fetched (scripts/fetch-defaults.sh)",
            dir.display()
        );
        return;
    }
    let texts: Vec<String> = (0..9)
        .map(|i| format!("sentence {i} {}", "with more words ".repeat((i * 5) % 7)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let mut e = MiniLmEmbedder::load(&dir).unwrap();
    e.batch_size = 2;
    let got = e.embed(&refs, &NoProgress).unwrap();
    e.batch_size = 1;
    let want = e.embed(&refs, &NoProgress).unwrap();
    for i in 0..texts.len() {
        close_rows(&got[i], &want[i], &format!("text {i}"));
    }
    assert!(e.embed(&[], &NoProgress).unwrap().is_empty());
    // lengths are real tokens, not the batch-padded length the tokenizer returns
    let enc = steerlab::model::arch::bert::BertEncoder::load(&dir, &Device::Cpu).unwrap();
    let lens = enc
        .token_lens(&["hello", "hello there my good friend", "hi you"])
        .unwrap();
    assert!(lens[0] < lens[2] && lens[2] < lens[1], "{lens:?}");
}

#[test]
fn grouping_training_minibatches_is_opt_in_seeded_and_pads_less() {
    let model = fixture();
    let data = TrainData::Pairs(mixed_pairs(24, 6));
    let cfg = BipoConfig {
        layers: vec![1],
        epochs: 2,
        batch_size: 4,
        ..Default::default()
    };
    assert!(!cfg.group_by_length, "off by default");
    let grouped_cfg = BipoConfig {
        group_by_length: true,
        ..cfg.clone()
    };
    let train = |c: &BipoConfig| {
        train_bipo(&model, &data, None, c, &Provenance::default(), &NoProgress).unwrap()
    };
    let plain = train(&cfg);
    let g1 = train(&grouped_cfg);
    let g2 = train(&grouped_cfg);
    assert_eq!(plain.steps, g1.steps);
    assert_eq!(g1.vector.layers, g2.vector.layers, "seeded: same run twice");
    assert_ne!(plain.vector.layers, g1.vector.layers, "another trajectory");
    let (p, g) = (
        training_padding(&data, &cfg, 2),
        training_padding(&data, &grouped_cfg, 2),
    );
    assert_eq!(p.real, g.real);
    assert!(g.slots < p.slots, "grouped {g:?} vs plain {p:?}");
}

#[test]
fn cli_flag_groups_training_minibatches() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    let mut lines = String::new();
    for i in 0..8 {
        lines +=
            &serde_json::json!({"id": format!("p{i}"), "prompt": format!("tell me about item {i}"),
            "chosen": "yes it is good ".repeat(1 + i % 4), "rejected": "no"})
            .to_string();
        lines.push('\n');
    }
    std::fs::write(&pairs, lines).unwrap();
    let run = |flag: bool, out: &str| {
        let out = dir.path().join(out);
        let mut args: Vec<String> = [
            "steer",
            "train",
            "--model",
            &fixture_dir().display().to_string(),
            "--data",
            &pairs.display().to_string(),
            "--layers",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "2",
            "--out",
            &out.display().to_string(),
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if flag {
            args.push("--group-by-length".into());
        }
        let o = Command::new(env!("CARGO_BIN_EXE_steerlab"))
            .args(&args)
            .env("STEERLAB_HOME", dir.path())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "{stdout}{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["steps"], 8);
        steerlab::steer::SteeringVector::load(&out).unwrap().layers
    };
    let plain = run(false, "plain.safetensors");
    assert_eq!(plain, run(false, "again.safetensors"), "seeded");
    assert_ne!(
        plain,
        run(true, "grouped.safetensors"),
        "the flag changes the minibatches"
    );
}
