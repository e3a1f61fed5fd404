//! The WIMHF pipeline: embed both sides of each pair, train the SAE on Δ and −Δ, encode every
//! pair, interpret features and measure expressed preferences (per-feature logistic tests,
//! LASSO top-k, held-out AUC against all features and a dense probe, per-group weights).
#![allow(clippy::needless_range_loop)] // index loops over several parallel arrays read clearer
use super::embed::{cache_key, cache_path, read_cache, write_cache, Embedder};
use super::error::SaeError;
use super::interpret::{self, Fidelity, NGram, TextGenerator, TopPair};
use super::llm::LlmEmbedder;
use super::model::{train_sae, Sae, SaeConfig, TrainHistory};
use super::stats::{
    auc, col_stats, lasso_entry_order, logistic_irls, logistic_penalised, standardise,
};
use crate::data::{Judgement, Prompt, Record, Winner};
use crate::jobs::{Progress, ProgressSink};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Pairs to analyse, in file order: sides A and B with the label "A preferred" (None = tie).
#[derive(Debug, Clone, Default)]
pub struct PairSet {
    /// Pair ids.
    pub ids: Vec<String>,
    /// Prompt texts (flattened).
    pub prompts: Vec<String>,
    /// Side A (chosen, for chosen/rejected data).
    pub a: Vec<String>,
    /// Side B.
    pub b: Vec<String>,
    /// True when A was preferred; None for ties.
    pub a_preferred: Vec<Option<bool>>,
    /// Group columns (`judge`, `annotator`, `scenario`) with a value per pair.
    pub groups: BTreeMap<String, Vec<Option<String>>>,
}

impl PairSet {
    /// From judgements (chosen/rejected pairs enter as A = chosen, winner A).
    pub fn from_judgements(js: &[Judgement]) -> Self {
        let mut s = PairSet::default();
        let mut judge = Vec::new();
        let mut annot = Vec::new();
        let mut scen = Vec::new();
        for j in js {
            s.ids.push(j.id.clone());
            s.prompts.push(j.prompt.to_plain());
            s.a.push(j.response_a.clone());
            s.b.push(j.response_b.clone());
            s.a_preferred.push(match j.winner {
                Winner::A => Some(true),
                Winner::B => Some(false),
                Winner::Tie => None,
            });
            judge.push(j.judge.clone());
            annot.push(j.annotator.clone());
            scen.push(j.scenario.clone());
        }
        for (k, v) in [("judge", judge), ("annotator", annot), ("scenario", scen)] {
            if v.iter().any(|x| x.is_some()) {
                s.groups.insert(k.to_string(), v);
            }
        }
        s
    }

    /// From loaded records: chosen/rejected pairs and judgements as they are; when the data
    /// has neither, A/B behaviour items (A = the answer matching the behaviour, winner A).
    /// Feedback and prompt-only records are not pairs and are skipped.
    pub fn from_records(records: &[Record]) -> Self {
        let mut js = crate::data::judgements(records);
        if js.is_empty() {
            js = records
                .iter()
                .filter_map(|r| match r {
                    Record::AbItem(x) => Some(Judgement {
                        id: x.id.clone(),
                        prompt: Prompt::Text(x.question.clone()),
                        response_a: x.answer_matching_behavior.clone(),
                        response_b: x.answer_not_matching_behavior.clone(),
                        winner: Winner::A,
                        judge: None,
                        annotator: None,
                        scenario: None,
                        factors_a: BTreeMap::new(),
                        factors_b: BTreeMap::new(),
                        extra: Default::default(),
                    }),
                    _ => None,
                })
                .collect();
        }
        Self::from_judgements(&js)
    }

    /// Train/test pair indices split by connected components over prompts and ids (WIMHF's
    /// split; [`crate::data::split_by_keys`] with the keys of [`crate::data::prompt_keys`]).
    pub fn split_by_prompt(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<(Vec<usize>, Vec<usize>), SaeError> {
        let keys: Vec<Vec<String>> = self
            .ids
            .iter()
            .zip(&self.prompts)
            .map(|(id, p)| {
                let mut k = vec![format!("id\u{1f}{id}")];
                let p = crate::data::normalise_prompt_text(p);
                if !p.is_empty() {
                    k.push(format!("prompt\u{1f}{p}"));
                }
                k
            })
            .collect();
        let s = crate::data::split_by_keys(&keys, test_fraction, seed)
            .map_err(|e| SaeError::Config(e.to_string()))?;
        Ok((s.train, s.test))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Settings of a feature-discovery run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// SAE hyper-parameters (its seed also seeds splits and orientation).
    pub sae: SaeConfig,
    /// Embed prompt + response instead of the response alone.
    pub include_prompt: bool,
    /// Fraction of pairs (by |activation|) shown as a feature's top pairs.
    pub top_fraction: f64,
    /// Held-out fraction (split by prompt) for AUC and fidelity.
    pub test_fraction: f64,
    /// Fraction of training pairs used for early-stopping validation.
    pub val_fraction: f64,
    /// Hash of the dataset file's content; enables the embedding cache when set.
    pub data_hash: Option<u64>,
    /// Held-out pairs judged per feature for fidelity (LLM only).
    pub fidelity_pairs: usize,
    /// Minimum labelled pairs for a group to get its own weights.
    pub min_group_pairs: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            sae: SaeConfig::default(),
            include_prompt: false,
            top_fraction: 0.05,
            test_fraction: 0.2,
            val_fraction: 0.1,
            data_hash: None,
            fidelity_pairs: 40,
            min_group_pairs: 30,
        }
    }
}

/// A feature's effect on the label: logistic regression label ~ length_delta + z_j.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// Coefficient of the standardised feature (log-odds per sd).
    pub coef: f64,
    /// 95% interval.
    pub ci95: (f64, f64),
    /// Two-sided p-value.
    pub p: f64,
    /// Bonferroni-adjusted p (× M, capped at 1).
    pub p_bonferroni: f64,
    /// Coefficient of the standardised length difference in the same model.
    pub length_coef: f64,
}

/// Everything reported about one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReport {
    /// Latent index.
    pub index: usize,
    /// Fraction of pairs where it is active.
    pub prevalence: f64,
    /// Mean |activation| where active.
    pub mean_abs_active: f64,
    /// Number of top pairs (top fraction of |activation|).
    pub n_top: usize,
    /// The first top pairs (up to 10), oriented to read from A's side.
    pub top_pairs: Vec<TopPair>,
    /// n-grams over-represented on the feature's side.
    pub ngrams_toward: Vec<NGram>,
    /// n-grams over-represented on the other side.
    pub ngrams_away: Vec<NGram>,
    /// Effect on preference (None when the data has no usable labels or the fit failed).
    pub effect: Option<Effect>,
    /// LLM description, when a model was given.
    pub description: Option<String>,
    /// Fidelity of that description.
    pub fidelity: Option<Fidelity>,
}

/// Held-out AUCs of preference prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AucReport {
    /// Length difference only.
    pub length_only: Option<f64>,
    /// Length + LASSO top-5 features.
    pub top5: Option<f64>,
    /// Length + LASSO top-10 features.
    pub top10: Option<f64>,
    /// Length + all features.
    pub all_features: Option<f64>,
    /// Length + the full embedding difference (L2 probe).
    pub dense_probe: Option<f64>,
    /// Labelled train / test pairs.
    pub n_train: usize,
    /// Labelled held-out pairs.
    pub n_test: usize,
}

/// Feature weights for one group value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupWeights {
    /// Column (`judge`, `annotator`, `scenario`).
    pub column: String,
    /// The value.
    pub value: String,
    /// Labelled pairs in the group.
    pub n: usize,
    /// Weight of the standardised length difference.
    pub length: f64,
    /// Weight per feature (standardised, L2-regularised logistic regression).
    pub weights: Vec<f64>,
}

/// The run's report (written as report.json and rendered to Markdown/HTML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeReport {
    /// Dataset name (file name) if known.
    pub dataset: String,
    /// Embedder id.
    pub embedder: String,
    /// Embedding width.
    pub d_in: usize,
    /// Pairs in the data.
    pub n_pairs: usize,
    /// Settings.
    pub options: RunOptions,
    /// True when the embeddings came from the cache.
    pub cached_embeddings: bool,
    /// Training summary.
    pub history: TrainHistory,
    /// Validation FVE / L0 of the kept SAE (inference mode), and dead fraction at the end.
    pub val_fve: f64,
    /// Mean active latents per validation row.
    pub val_l0: f64,
    /// Training rows (Δ and −Δ of the training pairs).
    pub train_rows: usize,
    /// Wall-clock seconds of SAE training (MEASURED on this run; not a test criterion).
    pub train_seconds: f64,
    /// Training throughput: rows × epochs / seconds.
    pub train_samples_per_s: f64,
    /// Features.
    pub features: Vec<FeatureReport>,
    /// LASSO entry order of the features (length unpenalised).
    pub lasso_order: Vec<usize>,
    /// Held-out AUCs.
    pub auc: AucReport,
    /// Per-group weights.
    pub groups: Vec<GroupWeights>,
    /// Map and clusters of the features (decoder directions, `auto` clusters, the SAE's
    /// seed); absent in folders written before the atlas existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atlas: Option<super::atlas::Atlas>,
}

fn clip_words(s: &str, n: usize) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > n {
        format!("{}…", one.chars().take(n).collect::<String>())
    } else {
        one
    }
}

/// A feature's short label: its description, else its most distinctive words on its own
/// side (`+ a, b`) and the other side (`- c`), else `feature j`.
pub fn feature_label(f: &FeatureReport) -> String {
    if let Some(d) = f.description.as_deref().filter(|d| !d.trim().is_empty()) {
        return clip_words(d, 48);
    }
    let toward: Vec<&str> = f
        .ngrams_toward
        .iter()
        .take(3)
        .map(|g| g.text.as_str())
        .collect();
    let away: Vec<&str> = f
        .ngrams_away
        .iter()
        .take(2)
        .map(|g| g.text.as_str())
        .collect();
    let mut parts = Vec::new();
    if !toward.is_empty() {
        parts.push(format!("+ {}", toward.join(", ")));
    }
    if !away.is_empty() {
        parts.push(format!("- {}", away.join(", ")));
    }
    if parts.is_empty() {
        format!("feature {}", f.index)
    } else {
        clip_words(&parts.join(" | "), 48)
    }
}

/// The atlas (map and clusters, `crate::sae::atlas`) of `sae`'s features, labelled from
/// `report`: each feature's short label, effect on preference, prevalence and top pair.
/// `activations` (`[pairs, latents]`) is needed for the activation-profile representation.
pub fn build_atlas(
    sae: &Sae,
    report: &SaeReport,
    activations: Option<&[f32]>,
    cfg: &super::atlas::AtlasConfig,
) -> Result<super::atlas::Atlas, SaeError> {
    let summaries: Vec<super::atlas::FeatureSummary> = report
        .features
        .iter()
        .map(|f| super::atlas::FeatureSummary {
            index: f.index,
            prevalence: f.prevalence,
            effect: f.effect.as_ref().map(|e| e.coef),
            label: feature_label(f),
            top_pair: f
                .top_pairs
                .first()
                .map(|p| format!("{}: {}", p.id, clip_words(&p.a, 80))),
        })
        .collect();
    super::atlas::build(sae, &summaries, activations, cfg)
}

/// A finished run: the SAE, per-pair encodings and the report.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The trained SAE.
    pub sae: Sae,
    /// Embedding differences e(A) − e(B), `[pairs, d_in]`, file order.
    pub deltas: Vec<f32>,
    /// Encodings of those differences, `[pairs, latents]`, file order.
    pub activations: Vec<f32>,
    /// Pair ids in file order.
    pub ids: Vec<String>,
    /// The report.
    pub report: SaeReport,
}

fn rows(x: &[f32], d: usize, idx: &[usize], sign: f32) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].iter().map(move |v| v * sign))
        .collect()
}

/// The embedding-cache key of a dataset and embedder id (None without a data hash).
fn embedding_key(embedder_id: &str, opts: &RunOptions) -> Option<u64> {
    opts.data_hash.map(|h| {
        cache_key(
            h,
            embedder_id,
            // `pool=2`: LLM pooling skips the first token (older caches pooled it).
            &format!("prompt={};pool=2", opts.include_prompt),
        )
    })
}

/// The texts to embed: every A side, then every B side (with the prompt when asked).
fn pair_texts(pairs: &PairSet, opts: &RunOptions) -> Vec<String> {
    let n = pairs.len();
    let text = |i: usize, side: &str| -> String {
        if opts.include_prompt {
            format!("{}\n\n{}", pairs.prompts[i], side)
        } else {
            side.to_string()
        }
    };
    let mut all: Vec<String> = (0..n).map(|i| text(i, &pairs.a[i])).collect();
    all.extend((0..n).map(|i| text(i, &pairs.b[i])));
    all
}

/// Splits `2n` embedded texts into row-major e(A), e(B) and writes the cache when keyed.
fn split_and_cache(
    e: Vec<Vec<f32>>,
    n: usize,
    d: usize,
    key: Option<u64>,
    sink: &dyn ProgressSink,
) -> Result<(Vec<f32>, Vec<f32>), SaeError> {
    if e.len() != 2 * n || e.iter().any(|r| r.len() != d) {
        return Err(SaeError::Data(format!(
            "embedder returned {} rows for {} texts",
            e.len(),
            2 * n
        )));
    }
    let a: Vec<f32> = e[..n].iter().flatten().copied().collect();
    let b: Vec<f32> = e[n..].iter().flatten().copied().collect();
    if let Some(k) = key {
        if let Err(err) = write_cache(&cache_path(k), &a, &b, n, d) {
            sink.log(&format!("warning: embedding cache not written: {err}"));
        }
    }
    Ok((a, b))
}

/// Reads the cache for `key` when present, logging the hit.
fn cached(
    key: Option<u64>,
    n: usize,
    d: usize,
    sink: &dyn ProgressSink,
) -> Option<(Vec<f32>, Vec<f32>)> {
    let k = key?;
    let hit = read_cache(&cache_path(k), n, d)?;
    sink.log(&format!(
        "embeddings: cache hit {}",
        cache_path(k).display()
    ));
    Some(hit)
}

/// Embeds the pairs (or reads the cache), returning (e(A), e(B)) row-major and whether cached.
pub fn embed_pairs(
    pairs: &PairSet,
    embedder: &dyn Embedder,
    opts: &RunOptions,
    sink: &dyn ProgressSink,
) -> Result<(Vec<f32>, Vec<f32>, bool), SaeError> {
    let (n, d) = (pairs.len(), embedder.dim());
    let key = embedding_key(&embedder.id(), opts);
    if let Some((a, b)) = cached(key, n, d, sink) {
        return Ok((a, b, true));
    }
    let all = pair_texts(pairs, opts);
    let refs: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
    let e = embedder.embed(&refs, sink)?;
    let (a, b) = split_and_cache(e, n, d, key, sink)?;
    Ok((a, b, false))
}

/// One layer's embeddings of a pair set: e(A) and e(B) row-major, and whether they came from
/// the cache.
pub type LayerEmbeddings = (Vec<f32>, Vec<f32>, bool);

/// Like [`embed_pairs`] at several layers of one LLM: the layers missing from the cache are
/// embedded together, one forward pass per batch, and each is cached under the same key as a
/// single-layer run (`embedder.at_layer(l)`). Returns (e(A), e(B), cached) per layer, in order.
pub fn embed_pairs_layers(
    pairs: &PairSet,
    embedder: &LlmEmbedder<'_>,
    layers: &[usize],
    opts: &RunOptions,
    sink: &dyn ProgressSink,
) -> Result<Vec<LayerEmbeddings>, SaeError> {
    let (n, d) = (pairs.len(), embedder.dim());
    let mut out: Vec<Option<LayerEmbeddings>> = Vec::with_capacity(layers.len());
    let mut missing = Vec::new();
    for &l in layers {
        let key = embedding_key(&embedder.at_layer(l)?.id(), opts);
        match cached(key, n, d, sink) {
            Some((a, b)) => out.push(Some((a, b, true))),
            None => {
                missing.push(l);
                out.push(None);
            }
        }
    }
    if !missing.is_empty() {
        let all = pair_texts(pairs, opts);
        let refs: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        let per_layer = embedder.embed_layers(&missing, &refs, sink)?;
        for (l, e) in missing.iter().zip(per_layer) {
            let key = embedding_key(&embedder.at_layer(*l)?.id(), opts);
            let (a, b) = split_and_cache(e, n, d, key, sink)?;
            for (slot, &want) in out.iter_mut().zip(layers) {
                if want == *l && slot.is_none() {
                    *slot = Some((a.clone(), b.clone(), false));
                }
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every layer filled"))
        .collect())
}

/// Runs the whole pipeline on already computed embeddings `e(A)`, `e(B)` (`[n, d]`).
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    pairs: &PairSet,
    ea: &[f32],
    eb: &[f32],
    d: usize,
    embedder_id: &str,
    gen: Option<&dyn TextGenerator>,
    opts: &RunOptions,
    sink: &dyn ProgressSink,
) -> Result<RunResult, SaeError> {
    let n = pairs.len();
    if n < 10 {
        return Err(SaeError::Data(format!(
            "feature discovery needs at least 10 pairs, got {n}"
        )));
    }
    let m = opts.sae.latents;
    let seed = opts.sae.seed;
    let deltas: Vec<f32> = ea.iter().zip(eb).map(|(a, b)| a - b).collect();
    let (train_idx, test_idx) = pairs.split_by_prompt(opts.test_fraction, seed)?;
    // Validation pairs for early stopping: a seeded slice of the training pairs.
    let mut tr = train_idx.clone();
    tr.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0xA11));
    let nval =
        ((tr.len() as f64 * opts.val_fraction).round() as usize).min(tr.len().saturating_sub(2));
    let (val_idx, fit_idx) = tr.split_at(nval);
    let mut train = rows(&deltas, d, fit_idx, 1.0);
    train.extend(rows(&deltas, d, fit_idx, -1.0));
    let mut val = rows(&deltas, d, val_idx, 1.0);
    val.extend(rows(&deltas, d, val_idx, -1.0));
    let t0 = std::time::Instant::now();
    let (sae, history) = train_sae(&train, &val, d, &opts.sae, sink)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let train_rows = train.len() / d;
    let (_, val_fve, val_l0) = if val.is_empty() {
        sae.evaluate(&train)
    } else {
        sae.evaluate(&val)
    };
    let activations = sae.encode(&deltas);
    let act_col =
        |j: usize| -> Vec<f64> { (0..n).map(|i| activations[i * m + j] as f64).collect() };

    // Orientation for the statistics: each pair is shown as (A, B) or (B, A) by a seeded coin,
    // so the labels are balanced even for chosen/rejected data.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x0F11);
    let sign: Vec<f32> = (0..n)
        .map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 })
        .collect();
    let flipped: Vec<f32> = deltas
        .chunks_exact(d)
        .zip(&sign)
        .flat_map(|(r, s)| r.iter().map(move |v| v * s))
        .collect();
    let z = sae.encode(&flipped);
    let len_delta: Vec<f64> = (0..n)
        .map(|i| {
            sign[i] as f64 * (pairs.a[i].chars().count() as f64 - pairs.b[i].chars().count() as f64)
        })
        .collect();
    let label: Vec<Option<f64>> = (0..n)
        .map(|i| pairs.a_preferred[i].map(|ap| if ap == (sign[i] > 0.0) { 1.0 } else { 0.0 }))
        .collect();
    let labelled = |idx: &[usize]| -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|&i| label[i].is_some())
            .collect()
    };
    let all_idx: Vec<usize> = (0..n).collect();
    let lab_all = labelled(&all_idx);
    let lab_train = labelled(&train_idx);
    let lab_test = labelled(&test_idx);
    let has_both = |idx: &[usize]| {
        let pos = idx.iter().filter(|&&i| label[i] == Some(1.0)).count();
        pos > 0 && pos < idx.len()
    };
    // Design matrix [len, z_1..z_M] for given rows.
    let (zr, ld) = (&z, &len_delta);
    let design = |idx: &[usize]| -> Vec<f64> {
        idx.iter()
            .flat_map(|&i| std::iter::once(ld[i]).chain((0..m).map(move |j| zr[i * m + j] as f64)))
            .collect()
    };
    let ys = |idx: &[usize]| -> Vec<f64> { idx.iter().map(|&i| label[i].unwrap_or(0.0)).collect() };
    sink.report(Progress::new("statistics", 0, Some(m as u64)));

    // Per-feature tests on all labelled pairs.
    let mut effects: Vec<Option<Effect>> = vec![None; m];
    if lab_all.len() >= 10 && has_both(&lab_all) {
        let mut x = design(&lab_all);
        let (mu, sd) = col_stats(&x, m + 1);
        standardise(&mut x, &mu, &sd);
        let y = ys(&lab_all);
        for (j, eff) in effects.iter_mut().enumerate() {
            if sd[j + 1] == 1.0 && mu[j + 1] == 0.0 {
                continue; // never active
            }
            let xj: Vec<f64> = x
                .chunks_exact(m + 1)
                .flat_map(|r| [r[0], r[j + 1]])
                .collect();
            if let Some(fit) = logistic_irls(&xj, 2, &y, true) {
                let ci = fit.ci95(2);
                *eff = Some(Effect {
                    coef: fit.coef[2],
                    ci95: ci,
                    p: fit.p[2],
                    p_bonferroni: (fit.p[2] * m as f64).min(1.0),
                    length_coef: fit.coef[1],
                });
            }
        }
    }

    // LASSO order and held-out AUCs.
    let mut lasso_order = Vec::new();
    let mut aucs = AucReport {
        length_only: None,
        top5: None,
        top10: None,
        all_features: None,
        dense_probe: None,
        n_train: lab_train.len(),
        n_test: lab_test.len(),
    };
    if lab_train.len() >= 10 && has_both(&lab_train) {
        let mut xtr = design(&lab_train);
        let (mu, sd) = col_stats(&xtr, m + 1);
        standardise(&mut xtr, &mu, &sd);
        let ytr = ys(&lab_train);
        let mut pen = vec![true; m + 1];
        pen[0] = false;
        lasso_order = lasso_entry_order(&xtr, m + 1, &ytr, &pen, 40)
            .0
            .into_iter()
            .map(|c| c - 1)
            .collect();
        if !lab_test.is_empty() && has_both(&lab_test) {
            let mut xte = design(&lab_test);
            standardise(&mut xte, &mu, &sd);
            let yte = ys(&lab_test);
            let eval_cols = |cols: &[usize]| -> Option<f64> {
                let pick = |x: &[f64]| -> Vec<f64> {
                    x.chunks_exact(m + 1)
                        .flat_map(|r| cols.iter().map(move |&c| r[c]))
                        .collect()
                };
                let (xa, xb) = (pick(&xtr), pick(&xte));
                let k = cols.len();
                let (b0, beta) =
                    logistic_penalised(&xa, k, &ytr, &vec![true; k], 0.0, 1e-3, None, 500);
                let score: Vec<f64> = xb
                    .chunks_exact(k)
                    .map(|r| b0 + r.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>())
                    .collect();
                auc(&score, &yte)
            };
            let with_top = |k: usize| -> Vec<usize> {
                std::iter::once(0)
                    .chain(lasso_order.iter().take(k).map(|j| j + 1))
                    .collect()
            };
            aucs.length_only = eval_cols(&[0]);
            aucs.top5 = eval_cols(&with_top(5));
            aucs.top10 = eval_cols(&with_top(10));
            aucs.all_features = eval_cols(&(0..=m).collect::<Vec<_>>());
            // Dense probe on [len, Δ'] (standardised), L2-regularised.
            let dense = |idx: &[usize]| -> Vec<f64> {
                idx.iter()
                    .flat_map(|&i| {
                        std::iter::once(len_delta[i])
                            .chain(flipped[i * d..(i + 1) * d].iter().map(|v| *v as f64))
                    })
                    .collect()
            };
            let mut da = dense(&lab_train);
            let (dmu, dsd) = col_stats(&da, d + 1);
            standardise(&mut da, &dmu, &dsd);
            let mut db = dense(&lab_test);
            standardise(&mut db, &dmu, &dsd);
            let mut dpen = vec![true; d + 1];
            dpen[0] = false;
            let (b0, beta) = logistic_penalised(&da, d + 1, &ytr, &dpen, 0.0, 1e-2, None, 200);
            let score: Vec<f64> = db
                .chunks_exact(d + 1)
                .map(|r| b0 + r.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>())
                .collect();
            aucs.dense_probe = auc(&score, &yte);
        }
    }

    // Per-group weights.
    let mut groups = Vec::new();
    for (col, vals) in &pairs.groups {
        let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in &lab_all {
            if let Some(v) = &vals[i] {
                by.entry(v.as_str()).or_default().push(i);
            }
        }
        if by.len() < 2 {
            continue;
        }
        for (v, idx) in by {
            if idx.len() < opts.min_group_pairs || !has_both(&idx) {
                continue;
            }
            let mut x = design(&idx);
            let (mu, sd) = col_stats(&x, m + 1);
            standardise(&mut x, &mu, &sd);
            let (_, beta) = logistic_penalised(
                &x,
                m + 1,
                &ys(&idx),
                &vec![true; m + 1],
                0.0,
                1e-2,
                None,
                500,
            );
            groups.push(GroupWeights {
                column: col.clone(),
                value: v.to_string(),
                n: idx.len(),
                length: beta[0],
                weights: beta[1..].to_vec(),
            });
        }
    }

    // Interpretation.
    let alpha = 0.05 / m as f64;
    let mut features = Vec::with_capacity(m);
    for j in 0..m {
        if sink.is_cancelled() {
            return Err(SaeError::Data("cancelled during interpretation".into()));
        }
        let col = act_col(j);
        let active: Vec<f64> = col.iter().copied().filter(|v| *v != 0.0).collect();
        let tops = interpret::top_pairs(&col, &pairs.ids, &pairs.a, &pairs.b, opts.top_fraction);
        let (toward, away) = interpret::distinctive_ngrams(&tops, 8);
        let (mut description, mut fid) = (None, None);
        if let Some(g) = gen {
            if !tops.is_empty() {
                let desc = interpret::describe(g, &tops, 8)?;
                // Held-out pairs: the most active half plus a seeded random half.
                let mut held: Vec<usize> = test_idx.clone();
                held.sort_by(|a, b| col[*b].abs().total_cmp(&col[*a].abs()).then(a.cmp(b)));
                let half = opts.fidelity_pairs / 2;
                let mut chosen: Vec<usize> = held.iter().take(half).copied().collect();
                let mut rest: Vec<usize> = held.iter().skip(half).copied().collect();
                rest.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ j as u64));
                chosen.extend(rest.into_iter().take(opts.fidelity_pairs - chosen.len()));
                let items: Vec<(f64, &str, &str)> = chosen
                    .iter()
                    .map(|&i| (col[i], pairs.a[i].as_str(), pairs.b[i].as_str()))
                    .collect();
                fid = Some(interpret::fidelity(g, &desc, &items, alpha)?);
                description = Some(desc);
            }
        }
        features.push(FeatureReport {
            index: j,
            prevalence: active.len() as f64 / n as f64,
            mean_abs_active: if active.is_empty() {
                0.0
            } else {
                active.iter().map(|v| v.abs()).sum::<f64>() / active.len() as f64
            },
            n_top: tops.len(),
            top_pairs: tops.into_iter().take(10).collect(),
            ngrams_toward: toward,
            ngrams_away: away,
            effect: effects[j].clone(),
            description,
            fidelity: fid,
        });
        sink.report(Progress::new(
            "interpretation",
            j as u64 + 1,
            Some(m as u64),
        ));
    }
    let sps = (train_rows * history.epochs) as f64 / train_seconds.max(1e-9);
    let report = SaeReport {
        dataset: String::new(),
        embedder: embedder_id.to_string(),
        d_in: d,
        n_pairs: n,
        options: opts.clone(),
        cached_embeddings: false,
        history,
        val_fve,
        val_l0,
        train_rows,
        train_seconds,
        train_samples_per_s: sps,
        features,
        lasso_order,
        auc: aucs,
        groups,
        atlas: None,
    };
    let mut report = report;
    let atlas_cfg = super::atlas::AtlasConfig {
        seed,
        ..Default::default()
    };
    match build_atlas(&sae, &report, Some(activations.as_slice()), &atlas_cfg) {
        Ok(a) => report.atlas = Some(a),
        Err(e) => sink.log(&format!("no feature atlas: {e}")),
    }
    Ok(RunResult {
        sae,
        deltas,
        activations,
        ids: pairs.ids.clone(),
        report,
    })
}

/// Embeds (with the cache) and analyses: the whole `steerlab sae run`.
pub fn run(
    pairs: &PairSet,
    embedder: &dyn Embedder,
    gen: Option<&dyn TextGenerator>,
    opts: &RunOptions,
    sink: &dyn ProgressSink,
) -> Result<RunResult, SaeError> {
    let (ea, eb, cached) = embed_pairs(pairs, embedder, opts, sink)?;
    let mut r = analyse(
        pairs,
        &ea,
        &eb,
        embedder.dim(),
        &embedder.id(),
        gen,
        opts,
        sink,
    )?;
    r.report.cached_embeddings = cached;
    Ok(r)
}
