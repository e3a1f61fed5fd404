//! Steering on a tiny seeded random-init Llama: response log-probs against a brute-force
//! forward, activations against full-forward captures, BiPO's gradient against finite
//! differences, BiPO lowering its loss and moving the behaviour score both ways, CAA on a
//! planted contrast, and the behaviour sweep.
#![allow(clippy::needless_range_loop)] // index loops over several parallel arrays read clearer

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use steerlab::jobs::NoProgress;
use steerlab::model::{Batch, HookPoint, Hooks, Model};
use steerlab::steer::bipo::{BipoProblem, FeedbackTokens, PairTokens, Provenance, StopReason};
use steerlab::steer::caa::train_caa;
use steerlab::steer::collect::{activations_at, response_logprobs, steering_hooks};
use steerlab::steer::eval::{behaviour_score, sweep};
use steerlab::steer::pca::train_pca;
use steerlab::steer::{
    train_bipo, AbTokens, BipoConfig, Completion, Contrast, Objective, TrainData,
};

const VOCAB: usize = 40;
const HIDDEN: usize = 16;
const LAYERS: usize = 3;

fn tiny_model(dtype: DType, seed: u64) -> Model {
    steerlab::testing::tiny_llama(VOCAB, LAYERS, dtype, seed)
}

fn rand_ids(rng: &mut impl Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(2..VOCAB as u32)).collect()
}

/// Pairs whose chosen response uses tokens 2..=5 and rejected 30..=33: a direction that
/// raises the first group's logits exists.
fn planted_pairs(n: usize, seed: u64) -> Vec<PairTokens> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let pl = rng.random_range(3..7);
            let rl = rng.random_range(2..5);
            PairTokens {
                prompt: rand_ids(&mut rng, pl),
                chosen: (0..rl).map(|_| rng.random_range(2..6)).collect(),
                rejected: (0..rl + rng.random_range(0..2))
                    .map(|_| rng.random_range(30..34))
                    .collect(),
            }
        })
        .collect()
}

fn as_ab(pairs: &[PairTokens]) -> Vec<AbTokens> {
    pairs
        .iter()
        .map(|p| AbTokens {
            matching: Completion {
                prompt: p.prompt.clone(),
                response: p.chosen.clone(),
            },
            non_matching: Completion {
                prompt: p.prompt.clone(),
                response: p.rejected.clone(),
            },
        })
        .collect()
}

#[test]
fn response_logprobs_match_a_brute_force_forward() {
    let model = tiny_model(DType::F64, 1);
    let pairs = planted_pairs(3, 2);
    let items: Vec<Completion> = pairs
        .iter()
        .map(|p| Completion {
            prompt: p.prompt.clone(),
            response: p.rejected.clone(),
        })
        .collect();
    let refs: Vec<&Completion> = items.iter().collect();
    let batch = steerlab::steer::collect::completion_batch(&refs, &Device::Cpu).unwrap();
    let hidden = model.forward_hidden(&batch, &mut Hooks::new()).unwrap();
    let got = response_logprobs(&model, &hidden, &refs)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for (i, c) in items.iter().enumerate() {
        // each completion alone, no padding, full logits
        let b = Batch::from_sequences(&[c.full()], 0, &Device::Cpu).unwrap();
        let logits = model
            .forward(&b, &mut Hooks::new())
            .unwrap()
            .squeeze(0)
            .unwrap();
        let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let want: f64 = c
            .response
            .iter()
            .enumerate()
            .map(|(j, &tok)| lsm[c.prompt.len() + j - 1][tok as usize])
            .sum();
        assert!(
            (got[i] - want).abs() < 1e-9,
            "completion {i}: {} vs {want}",
            got[i]
        );
    }
}

#[test]
fn activations_at_equal_full_forward_captures() {
    let model = tiny_model(DType::F32, 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let seqs = vec![
        rand_ids(&mut rng, 5),
        rand_ids(&mut rng, 8),
        rand_ids(&mut rng, 3),
    ];
    let pos = vec![4, 2, 2];
    let acts = activations_at(&model, &seqs, &pos, &[0, 2], 2, &NoProgress).unwrap();
    for (i, s) in seqs.iter().enumerate() {
        let b = Batch::from_sequences(std::slice::from_ref(s), 0, &Device::Cpu).unwrap();
        let mut h = Hooks::new();
        h.capture(HookPoint::ResidPost(0))
            .capture(HookPoint::ResidPost(2));
        model.forward(&b, &mut h).unwrap();
        for l in [0, 2] {
            let want = h
                .captured(HookPoint::ResidPost(l))
                .unwrap()
                .get(0)
                .unwrap()
                .get(pos[i])
                .unwrap();
            let want = want.to_vec1::<f32>().unwrap();
            let got = &acts[&l][i];
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-4, "seq {i} layer {l}: max err {err}");
        }
    }
}

#[test]
fn caa_recovers_a_planted_embedding_difference() {
    // Positive and negative sequences differ only in the last token (a vs b); at layer 0 of a
    // model the difference of the read activations at that token is the block-0 image of
    // embed(a) − embed(b); with identical prefixes CAA must equal that single difference.
    let model = tiny_model(DType::F32, 5);
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let items: Vec<Contrast> = (0..6)
        .map(|_| {
            let prefix = rand_ids(&mut rng, 4);
            let mut p = prefix.clone();
            p.push(7);
            let mut n = prefix;
            n.push(9);
            Contrast {
                positive_at: p.len() - 1,
                negative_at: n.len() - 1,
                positive: p,
                negative: n,
            }
        })
        .collect();
    let v = train_caa(&model, &items, &[1], 4, "tiny", "planted", &NoProgress).unwrap();
    let acts = activations_at(
        &model,
        &items
            .iter()
            .flat_map(|c| [c.positive.clone(), c.negative.clone()])
            .collect::<Vec<_>>(),
        &items
            .iter()
            .flat_map(|c| [c.positive_at, c.negative_at])
            .collect::<Vec<_>>(),
        &[1],
        4,
        &NoProgress,
    )
    .unwrap();
    let mut want = [0f32; HIDDEN];
    for i in 0..items.len() {
        for k in 0..HIDDEN {
            want[k] += (acts[&1][2 * i][k] - acts[&1][2 * i + 1][k]) / items.len() as f32;
        }
    }
    for k in 0..HIDDEN {
        assert!((v.layers[&1][k] - want[k]).abs() < 1e-5);
    }
    assert_eq!(v.meta.method, "caa");
    assert_eq!(v.meta.positions, "generated");
    // Steering with the CAA vector of (7 vs 9) at +/-: the PCA of the same contrasts agrees in sign.
    let (p, stats) = train_pca(&model, &items, &[1], 4, "tiny", "planted", &NoProgress).unwrap();
    let dot: f32 = p.layers[&1]
        .iter()
        .zip(&v.layers[&1])
        .map(|(a, b)| a * b)
        .sum();
    assert!(dot > 0.0 && stats[&1].agreement > 0.5);
}

/// Loss of the problem at the given per-layer vectors (f64).
fn loss_at(p: &BipoProblem, vs: &[Vec<f64>], idx: &[usize], d: f64, delta: f64) -> f64 {
    let ts: Vec<Tensor> = vs
        .iter()
        .map(|v| Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap())
        .collect();
    p.batch_loss(&ts, idx, d, delta)
        .unwrap()
        .0
        .to_scalar::<f64>()
        .unwrap()
}

/// The engine keeps norms and softmax in f32 even for an f64 model, so central differences use
/// a step of 3e-3 (the measured sweet spot between f32 noise and truncation error; agreement
/// within 1e-4 + 0.1% there); a wrong gradient is off by far more.
const TOL: f64 = 1e-4;

#[test]
fn bipo_gradient_matches_finite_differences() {
    let model = tiny_model(DType::F64, 7);
    let pairs = planted_pairs(5, 8);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let g = Normal::new(0.0f64, 0.3).unwrap();
    let v0: Vec<Vec<f64>> = (0..2)
        .map(|_| (0..HIDDEN).map(|_| g.sample(&mut rng)).collect())
        .collect();
    let idx: &[usize] = &[0, 2, 3];
    let lay = vec![2usize, 0];
    for obj in [Objective::Dpo, Objective::Ipo, Objective::Rdpo { eps: 0.2 }] {
        let cfg = BipoConfig {
            layers: lay.clone(),
            objective: obj,
            beta: 0.5,
            ..Default::default()
        };
        let p =
            BipoProblem::new(&model, &TrainData::Pairs(pairs.clone()), &cfg, &NoProgress).unwrap();
        assert_eq!(p.layers(), &[0, 2]);
        for d in [-1.0, 1.0] {
            let vars: Vec<Var> = v0
                .iter()
                .take(lay.len())
                .map(|v| {
                    Var::from_tensor(&Tensor::from_slice(v, HIDDEN, &Device::Cpu).unwrap()).unwrap()
                })
                .collect();
            let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let (loss, _, _) = p.batch_loss(&ts, idx, d, 0.0).unwrap();
            let grads = loss.backward().unwrap();
            for (li, var) in vars.iter().enumerate() {
                let gv = grads.get(var).unwrap().to_vec1::<f64>().unwrap();
                for k in [0usize, 5, 11, 15] {
                    let eps = 3e-3;
                    let mut vp: Vec<Vec<f64>> = v0.iter().take(lay.len()).cloned().collect();
                    vp[li][k] += eps;
                    let mut vm: Vec<Vec<f64>> = v0.iter().take(lay.len()).cloned().collect();
                    vm[li][k] -= eps;
                    let fd = (loss_at(&p, &vp, idx, d, 0.0) - loss_at(&p, &vm, idx, d, 0.0))
                        / (2.0 * eps);
                    assert!(
                        (fd - gv[k]).abs() < TOL * (1.0 + 10.0 * fd.abs()),
                        "{obj} d={d} layer#{li} k={k}: autograd {} vs finite difference {fd}",
                        gv[k]
                    );
                }
            }
        }
    }
    // BCO on unpaired feedback
    let fb: Vec<FeedbackTokens> = pairs
        .iter()
        .flat_map(|x| {
            [
                FeedbackTokens {
                    completion: Completion {
                        prompt: x.prompt.clone(),
                        response: x.chosen.clone(),
                    },
                    label: true,
                },
                FeedbackTokens {
                    completion: Completion {
                        prompt: x.prompt.clone(),
                        response: x.rejected.clone(),
                    },
                    label: false,
                },
            ]
        })
        .collect();
    let cfg = BipoConfig {
        layers: vec![1],
        objective: Objective::Bco,
        beta: 0.5,
        ..Default::default()
    };
    let p = BipoProblem::new(&model, &TrainData::Feedback(fb), &cfg, &NoProgress).unwrap();
    let var = Var::from_tensor(&Tensor::from_slice(&v0[0], HIDDEN, &Device::Cpu).unwrap()).unwrap();
    let (loss, _, _) = p
        .batch_loss(&[var.as_tensor().clone()], &[0, 1, 4, 7], -1.0, 0.3)
        .unwrap();
    let gv = loss
        .backward()
        .unwrap()
        .get(&var)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for k in [1usize, 8] {
        let eps = 3e-3;
        let mut vp = vec![v0[0].clone()];
        vp[0][k] += eps;
        let mut vm = vec![v0[0].clone()];
        vm[0][k] -= eps;
        let fd = (loss_at(&p, &vp, &[0, 1, 4, 7], -1.0, 0.3)
            - loss_at(&p, &vm, &[0, 1, 4, 7], -1.0, 0.3))
            / (2.0 * eps);
        assert!(
            (fd - gv[k]).abs() < TOL * (1.0 + 10.0 * fd.abs()),
            "bco k={k}: {} vs {fd}",
            gv[k]
        );
    }
}

#[test]
fn bipo_lowers_the_dpo_loss_and_steers_both_ways() {
    let model = tiny_model(DType::F32, 11);
    let pairs = planted_pairs(16, 12);
    let heldout = as_ab(&planted_pairs(8, 13));
    let cfg = BipoConfig {
        layers: vec![1],
        epochs: 8,
        batch_size: 4,
        lr: 0.05,
        beta: 0.5,
        ..Default::default()
    };
    let data = TrainData::Pairs(pairs.clone());
    let problem = BipoProblem::new(&model, &data, &cfg, &NoProgress).unwrap();
    let all: Vec<usize> = (0..pairs.len()).collect();
    let zero = vec![vec![0f32; HIDDEN]];
    let at = |v: &[Vec<f32>], d: f64| {
        let ts: Vec<Tensor> = v
            .iter()
            .map(|x| Tensor::from_slice(x, HIDDEN, &Device::Cpu).unwrap())
            .collect();
        problem
            .batch_loss(&ts, &all, d, 0.0)
            .unwrap()
            .0
            .to_scalar::<f32>()
            .unwrap()
    };
    let before = at(&zero, 1.0);
    assert!(
        (before - std::f32::consts::LN_2).abs() < 1e-5,
        "loss at v = 0 is log 2, got {before}"
    );
    let out = train_bipo(
        &model,
        &data,
        Some(&heldout),
        &cfg,
        &Provenance::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(out.stop, StopReason::Finished);
    assert_eq!(out.steps, cfg.total_steps(16));
    let v = vec![out.vector.layers[&1].clone()];
    let (plus, minus) = (at(&v, 1.0), at(&v, -1.0));
    assert!(
        plus < before - 0.05 && minus < before - 0.05,
        "loss {before} → +v {plus}, −v {minus}"
    );
    // behaviour on held-out items moves in both directions
    let base = behaviour_score(&model, &heldout, &Hooks::new(), 8, &NoProgress).unwrap();
    let up = behaviour_score(
        &model,
        &heldout,
        &steering_hooks(&model, &out.vector, 1.0).unwrap(),
        8,
        &NoProgress,
    )
    .unwrap();
    let down = behaviour_score(
        &model,
        &heldout,
        &steering_hooks(&model, &out.vector, -1.0).unwrap(),
        8,
        &NoProgress,
    )
    .unwrap();
    assert!(
        up > base + 0.05 && down < base - 0.05,
        "behaviour −1: {down}, 0: {base}, +1: {up}"
    );
    let last = out.epochs.last().unwrap();
    assert!((last.behaviour.unwrap().0 - up).abs() < 1e-4);
    assert!(last.margin_accuracy > 0.5 && last.norm > 0.0);
    // the sweep reports the same numbers, sharing the unsteered score
    let pts = sweep(
        &model,
        &heldout,
        &[("v".into(), out.vector.clone())],
        &[-1.0, 0.0, 1.0],
        8,
        &NoProgress,
    )
    .unwrap();
    let scores: Vec<f64> = pts.iter().map(|p| p.score).collect();
    assert!(
        (scores[0] - down).abs() < 1e-6
            && (scores[1] - base).abs() < 1e-6
            && (scores[2] - up).abs() < 1e-6
    );
}

#[test]
fn cancel_keeps_the_last_vector_and_bad_settings_are_refused() {
    struct CancelAfter(std::sync::atomic::AtomicUsize);
    impl steerlab::jobs::ProgressSink for CancelAfter {
        fn report(&self, p: steerlab::jobs::Progress) {
            if p.metrics.iter().any(|(n, _)| n == "loss") {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        fn is_cancelled(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::SeqCst) >= 2
        }
    }
    let model = tiny_model(DType::F32, 21);
    let data = TrainData::Pairs(planted_pairs(12, 22));
    let cfg = BipoConfig {
        layers: vec![0],
        epochs: 5,
        batch_size: 2,
        lr: 0.05,
        ..Default::default()
    };
    let out = train_bipo(
        &model,
        &data,
        None,
        &cfg,
        &Provenance::default(),
        &CancelAfter(0.into()),
    )
    .unwrap();
    assert_eq!(out.stop, StopReason::Cancelled);
    assert_eq!(out.steps, 2);
    assert!(out.vector.norms()[&0] > 0.0);
    // A Stop that only the per-block interrupt check can see (the sink reports cancelled only
    // after its probe fired inside a forward or backward pass) ends the run within that pass,
    // keeping the last completed step's vector.
    #[derive(Default)]
    struct Midpass {
        losses: std::sync::atomic::AtomicUsize,
        fired: std::sync::atomic::AtomicBool,
    }
    struct MidpassSink(std::sync::Arc<Midpass>);
    impl steerlab::jobs::ProgressSink for MidpassSink {
        fn report(&self, p: steerlab::jobs::Progress) {
            if p.metrics.iter().any(|(n, _)| n == "loss") {
                self.0
                    .losses
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        fn is_cancelled(&self) -> bool {
            self.0.fired.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn interrupt_probe(&self) -> Option<steerlab::jobs::InterruptProbe> {
            let st = self.0.clone();
            Some(std::sync::Arc::new(move || {
                let stop = st.losses.load(std::sync::atomic::Ordering::SeqCst) >= 2;
                if stop {
                    st.fired.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                stop
            }))
        }
    }
    let state = std::sync::Arc::new(Midpass::default());
    let out = train_bipo(
        &model,
        &data,
        None,
        &cfg,
        &Provenance::default(),
        &MidpassSink(state.clone()),
    )
    .unwrap();
    assert!(state.fired.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(out.stop, StopReason::Cancelled);
    assert_eq!(out.steps, 2);
    assert!(out.vector.norms()[&0] > 0.0);
    assert!(out.vector.layers[&0].iter().all(|x| x.is_finite()));
    // a learning rate so large the loss overflows: stops with a message, keeps a finite vector
    let wild = BipoConfig {
        lr: 1e30,
        beta: 1e6,
        ..cfg.clone()
    };
    let out = train_bipo(
        &model,
        &data,
        None,
        &wild,
        &Provenance::default(),
        &NoProgress,
    )
    .unwrap();
    match &out.stop {
        StopReason::Diverged(msg) => assert!(msg.contains("last good vector"), "{msg}"),
        other => panic!(
            "expected divergence, got {other:?} after {} steps",
            out.steps
        ),
    }
    assert!(out.vector.layers[&0].iter().all(|x| x.is_finite()));
    // objective/data mismatches and bad layers are clear errors
    let bco = BipoConfig {
        objective: Objective::Bco,
        ..cfg.clone()
    };
    assert!(train_bipo(
        &model,
        &data,
        None,
        &bco,
        &Provenance::default(),
        &NoProgress
    )
    .unwrap_err()
    .to_string()
    .contains("unpaired"));
    let far = BipoConfig {
        layers: vec![LAYERS],
        ..cfg
    };
    assert!(train_bipo(
        &model,
        &data,
        None,
        &far,
        &Provenance::default(),
        &NoProgress
    )
    .unwrap_err()
    .to_string()
    .contains("does not exist"));
}

/// The shared-prompt, split-prefix A/B scorer gives the log-probabilities of scoring every
/// prompt + answer sequence on its own (one per forward pass, no padding), for vectors at
/// several positions, with and without a split, in f64 and f32.
#[test]
fn batched_ab_scores_equal_one_by_one_scores() {
    use std::collections::BTreeMap;
    use steerlab::steer::collect::score_completions;
    use steerlab::steer::eval::{split_for, AbScorer};
    use steerlab::steer::{SteeringVector, VectorMeta};
    for (dtype, tol) in [(DType::F64, 1e-6), (DType::F32, 2e-3)] {
        let model = tiny_model(dtype, 5);
        // prompts of 3..7 tokens, answers of different lengths: padding on both sides
        let items = as_ab(&planted_pairs(7, 9));
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let dir: Vec<f32> = (0..HIDDEN).map(|_| rng.random_range(-1.0..1.0)).collect();
        for positions in ["all", "prompt", "generated"] {
            let mut meta = VectorMeta::new("test", "tiny", HIDDEN);
            meta.positions = positions.into();
            let v = SteeringVector::new(BTreeMap::from([(1, dir.clone())]), meta).unwrap();
            // split 2 = blocks 0..=1 shared; split 0 = nothing shared
            let shared = AbScorer::new(&model, &items, 2, 3, &NoProgress).unwrap();
            let plain = AbScorer::new(&model, &items, 0, 4, &NoProgress).unwrap();
            assert_eq!(shared.split(), 2);
            for m in [-2.0, 0.0, 1.5] {
                let hooks = steering_hooks(&model, &v, m).unwrap();
                assert_eq!(split_for(&hooks), 2);
                let mut want_m = Vec::new();
                let mut want_n = Vec::new();
                for it in &items {
                    want_m.extend(
                        score_completions(
                            &model,
                            std::slice::from_ref(&it.matching),
                            &hooks,
                            1,
                            &NoProgress,
                        )
                        .unwrap(),
                    );
                    want_n.extend(
                        score_completions(
                            &model,
                            std::slice::from_ref(&it.non_matching),
                            &hooks,
                            1,
                            &NoProgress,
                        )
                        .unwrap(),
                    );
                }
                for scorer in [&shared, &plain] {
                    let (got_m, got_n) = scorer.logprobs(&hooks, &NoProgress).unwrap();
                    for i in 0..items.len() {
                        for (g, w) in [(got_m[i], want_m[i]), (got_n[i], want_n[i])] {
                            assert!(
                                (g - w).abs() < tol * w.abs().max(1.0),
                                "{dtype:?} {positions} × {m}, item {i}: {g} vs {w}"
                            );
                        }
                    }
                }
                // the steering changes the scores (the comparison is not vacuous)
                if m != 0.0 {
                    let (base_m, _) = shared.logprobs(&Hooks::new(), &NoProgress).unwrap();
                    assert!(base_m
                        .iter()
                        .zip(&want_m)
                        .any(|(a, b)| (a - b).abs() > 1e-3));
                }
            }
            // hooks below the shared blocks are refused
            let early = SteeringVector::new(
                BTreeMap::from([(0, dir.clone())]),
                VectorMeta::new("test", "tiny", HIDDEN),
            )
            .unwrap();
            let err = shared
                .logprobs(&steering_hooks(&model, &early, 1.0).unwrap(), &NoProgress)
                .unwrap_err()
                .to_string();
            assert!(err.contains("below block 2"), "{err}");
        }
    }
}
