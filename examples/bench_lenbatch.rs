//! Wall time of the passes that length-grouped batching touches, on a real model and real
//! preference data: the BiPO cache pass (blocks below the steered layer + reference log-probs),
//! one BiPO epoch, A/B scoring, CAA activation collection and the LLM / MiniLM embedding of
//! the responses. Not a test; BENCHMARKS.md ("Batching by length") records its output.
//!     cargo run --example bench_lenbatch -- --pairs PAIRS.jsonl --items AB.jsonl \
//!         [--model PATH] [--layer 14] [--batch 8] [--limit N] [--group-by-length]
//!         [--phases padding,cache,epoch,eval,caa,llm,minilm]
//! Prints one JSON line per phase (`ms`, and `padding` where the library reports it).
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use steerlab::data::batching::{BatchBudget, BatchPlan, Padding};
use steerlab::data::{load_dataset, LoadOptions as DataLoad, Record};
use steerlab::jobs::{NoProgress, Progress, ProgressSink};
use steerlab::model::TextTokenizer;
use steerlab::model::{Hooks, LoadOptions, Model};
use steerlab::sae::embed::{Embedder, MiniLmEmbedder};
use steerlab::sae::llm::{load_tokenizer, LlmEmbedder};
use steerlab::steer::bipo::{training_padding, BipoProblem, Provenance, TrainData};
use steerlab::steer::collect::contrast_activations;
use steerlab::steer::eval::AbScorer;
use steerlab::steer::AbTokens;
use steerlab::steer::{prepare, train_bipo, BipoConfig, Objective};

/// Records when the cache pass ends (its last report) and when the run ends.
struct Clock {
    t0: Instant,
    cache_done: Mutex<f64>,
}

impl ProgressSink for Clock {
    fn report(&self, p: Progress) {
        if p.stage == "caching reference" {
            *self.cache_done.lock().unwrap() = self.t0.elapsed().as_secs_f64() * 1e3;
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model_path = arg(&args, "--model")
        .map(PathBuf::from)
        .unwrap_or_else(steerlab::paths::default_model_path);
    let pairs_path = PathBuf::from(arg(&args, "--pairs").expect("--pairs FILE"));
    let items_path = PathBuf::from(arg(&args, "--items").expect("--items FILE"));
    let layer: usize = arg(&args, "--layer").map_or(Ok(14), |s| s.parse())?;
    let batch: usize = arg(&args, "--batch").map_or(Ok(8), |s| s.parse())?;
    let phases = arg(&args, "--phases").unwrap_or("padding,cache,epoch,eval,caa,llm,minilm".into());
    let group = args.iter().any(|a| a == "--group-by-length");
    let model = Model::load(&model_path, &LoadOptions::default())?;
    let tok = load_tokenizer(&model_path)?;
    let limit: usize = arg(&args, "--limit").map_or(Ok(usize::MAX), |s| s.parse())?;
    let mut pairs = load_dataset(&pairs_path, &DataLoad::default())?.records;
    let mut items = load_dataset(&items_path, &DataLoad::default())?.records;
    pairs.truncate(limit);
    items.truncate(limit);
    let cfg = BipoConfig {
        layers: vec![layer],
        epochs: 1,
        eval_batch_size: batch,
        group_by_length: group,
        ..Default::default()
    };
    let data = prepare::train_data(&tok, &pairs, Objective::Dpo)?;
    let ab = prepare::eval_items(&tok, &items)?;
    for phase in phases.split(',') {
        let t0 = Instant::now();
        let mut extra = serde_json::json!({});
        match phase {
            "padding" => extra = padding_report(&tok, &data, &ab, &pairs, &items, &cfg)?,
            "cache" => {
                let p = BipoProblem::new(&model, &data, &cfg, &NoProgress)?;
                extra = serde_json::json!({"completions": 2 * p.n_items(),
                    "padding": p.cache_padding().fraction()});
            }
            "epoch" => {
                let clock = Clock {
                    t0,
                    cache_done: Mutex::new(0.0),
                };
                let out = train_bipo(&model, &data, None, &cfg, &Provenance::default(), &clock)?;
                let total = t0.elapsed().as_secs_f64() * 1e3;
                extra = serde_json::json!({"group_by_length": group, "steps": out.steps,
                    "epoch_ms": total - *clock.cache_done.lock().unwrap(), "loss": out.epochs[0].loss,
                    "padding": training_padding(&data, &cfg, 1).fraction()});
            }
            "eval" => {
                let s = AbScorer::new(&model, &ab, layer + 1, batch, &NoProgress)?;
                let score = s.score(&Hooks::new(), &NoProgress)?;
                extra = serde_json::json!({"items": ab.len(), "score": score,
                    "padding": s.padding().fraction()});
            }
            "caa" => {
                let ab_records: Vec<Record> = items.clone();
                let c = prepare::contrasts(&tok, &ab_records, true)?;
                let acts = contrast_activations(&model, &c, &[layer], batch, &NoProgress)?;
                extra = serde_json::json!({"contrasts": c.len(), "rows": acts[&layer].0.len()});
            }
            "llm" | "minilm" => {
                let texts = response_texts(&pairs);
                let e = if phase == "llm" {
                    let mut e = LlmEmbedder::new(&model, &tok, layer)?;
                    e.batch_size = batch;
                    e.embed(&texts, &NoProgress)?
                } else {
                    let e = MiniLmEmbedder::load(&steerlab::paths::default_embedder_dir())?;
                    e.embed(&texts, &NoProgress)?
                };
                extra = serde_json::json!({"texts": e.len()});
            }
            other => anyhow::bail!("unknown phase {other}"),
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({"phase": phase, "ms": ms, "batch": batch, "extra": extra,
                "loadavg": load.trim()})
        );
    }
    Ok(())
}

/// Padding fractions of every pass, before (input-order chunks; A/B items sorted by prompt
/// length only; LLM texts sorted by characters) and after (the plans the library now uses).
/// Token arithmetic only, no forward pass.
fn padding_report(
    tok: &TextTokenizer,
    data: &TrainData,
    ab: &[AbTokens],
    pairs: &[Record],
    items: &[Record],
    cfg: &BipoConfig,
) -> anyhow::Result<serde_json::Value> {
    let bs = cfg.eval_batch_size;
    let rows = data.row_lengths();
    let cache = |p: BatchPlan| p.padding(&rows).fraction();
    // A/B scoring: prompt rows once, answer rows twice, per batch
    let ab_pad = |batches: &[Vec<usize>]| {
        let mut p = Padding::default();
        for b in batches {
            let pl = b
                .iter()
                .map(|&i| ab[i].matching.prompt.len())
                .max()
                .unwrap_or(0);
            let al = b
                .iter()
                .map(|&i| {
                    ab[i]
                        .matching
                        .response
                        .len()
                        .max(ab[i].non_matching.response.len())
                })
                .max()
                .unwrap_or(0);
            p = p + Padding {
                real: b
                    .iter()
                    .map(|&i| ab[i].matching.len() + ab[i].non_matching.response.len())
                    .sum(),
                slots: b.len() * (pl + 2 * al),
            };
        }
        p.fraction()
    };
    let mut by_prompt: Vec<usize> = (0..ab.len()).collect();
    by_prompt.sort_by_key(|&i| (ab[i].matching.prompt.len(), i));
    let old_ab: Vec<Vec<usize>> = by_prompt.chunks(bs).map(|c| c.to_vec()).collect();
    let cost: Vec<usize> = ab.iter().map(|it| it.batch_cost()).collect();
    let new_ab = BatchPlan::by_length(&cost, BatchBudget::rows(bs));
    // CAA contrasts: prompt + answer sequences
    let c = prepare::contrasts(tok, items, true)?;
    let seqs: Vec<usize> = c
        .iter()
        .flat_map(|c| [c.positive.len(), c.negative.len()])
        .collect();
    // LLM embedding of the responses: tokens with BOS, by characters (before) or tokens (after)
    let texts = response_texts(pairs);
    let tl: Vec<usize> = texts
        .iter()
        .map(|t| tok.encode(t, true).map(|v| v.len().clamp(1, 512)))
        .collect::<Result<_, _>>()?;
    let mut by_chars: Vec<usize> = (0..texts.len()).collect();
    by_chars.sort_by_key(|&i| texts[i].len());
    let old_llm: Vec<Vec<usize>> = by_chars.chunks(bs).map(|c| c.to_vec()).collect();
    let plain = BipoConfig {
        group_by_length: false,
        ..cfg.clone()
    };
    let grouped = BipoConfig {
        group_by_length: true,
        ..cfg.clone()
    };
    Ok(serde_json::json!({
        "cache": {"before": cache(BatchPlan::sequential(rows.len(), bs)),
                  "after": cache(BatchPlan::by_length(&rows, BatchBudget::rows(bs)))},
        "epoch": {"plain": training_padding(data, &plain, 1).fraction(),
                  "grouped": training_padding(data, &grouped, 1).fraction()},
        "eval": {"before": ab_pad(&old_ab), "after": ab_pad(new_ab.batches())},
        "caa": {"before": BatchPlan::sequential(seqs.len(), bs).padding(&seqs).fraction(),
                "after": BatchPlan::by_length(&seqs, BatchBudget::rows(bs)).padding(&seqs).fraction()},
        "llm": {"before": Padding::of(&old_llm, &tl).fraction(),
                "after": BatchPlan::by_length(&tl, BatchBudget::rows(bs)).padding(&tl).fraction()},
    }))
}

/// The chosen and rejected responses of the preference pairs among `records`, in order.
fn response_texts(records: &[Record]) -> Vec<&str> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Pair(p) => Some([p.chosen.as_str(), p.rejected.as_str()]),
            _ => None,
        })
        .flatten()
        .collect()
}
