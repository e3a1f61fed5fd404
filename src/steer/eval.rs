//! Behaviour evaluation: the A/B behaviour score — the mean over items of
//! `p(matching) / (p(matching) + p(non-matching))`, `p` the probability of the whole answer
//! after the chat-formatted question — at each multiplier of a sweep, for several vectors side
//! by side; and steered generations. Inputs are token ids; no tokenization or UI here.
use super::collect::{add_steering, Completion, PAD};
use super::error::{Result, SteerError};
use super::vector::SteeringVector;
use crate::data::batching::{BatchBudget, BatchPlan, Padding};
use crate::jobs::{Metric, Progress, ProgressSink};
use crate::model::hooks::PosCtx;
use crate::model::{GenerateOptions, HookPoint, Hooks, Model};
use candle_core::{DType, Tensor, D};
use serde::Serialize;

/// One A/B item as token ids: the same prompt with the behaviour-matching and the
/// non-matching answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbTokens {
    /// Prompt + matching answer.
    pub matching: Completion,
    /// Prompt + non-matching answer.
    pub non_matching: Completion,
}

impl AbTokens {
    /// The tokens the item occupies in an [`AbScorer`] batch (the prompt once, then both answers
    /// padded to the longer): the key its batches are sorted by.
    pub fn batch_cost(&self) -> usize {
        self.matching.prompt.len()
            + 2 * self
                .matching
                .response
                .len()
                .max(self.non_matching.response.len())
    }
}

/// `p_m / (p_m + p_n) = σ(log p_m − log p_n)` for one item, computed stably.
pub fn item_score(logp_matching: f64, logp_non: f64) -> f64 {
    crate::numeric::sigmoid(logp_matching - logp_non)
}

/// Mean of [`item_score`] over items.
pub fn behaviour_score_from_logprobs(logp_matching: &[f64], logp_non: &[f64]) -> Result<f64> {
    if logp_matching.len() != logp_non.len() || logp_matching.is_empty() {
        return Err(SteerError::Invalid(format!(
            "behaviour score needs as many matching as non-matching log-probs, at least one ({} vs {})",
            logp_matching.len(),
            logp_non.len()
        )));
    }
    let s: f64 = logp_matching
        .iter()
        .zip(logp_non)
        .map(|(m, n)| item_score(*m, *n))
        .sum();
    Ok(s / logp_matching.len() as f64)
}

/// The behaviour score of `items` with `hooks` applied (e.g. [`super::collect::steering_hooks`]).
/// `batch_size` items (each one prompt and two answers) per forward pass. To score the same
/// items under many hooks, build an [`AbScorer`] once instead.
pub fn behaviour_score(
    model: &Model,
    items: &[AbTokens],
    hooks: &Hooks,
    batch_size: usize,
    progress: &dyn ProgressSink,
) -> Result<f64> {
    let scorer = AbScorer::new(model, items, split_for(hooks), batch_size, progress)?;
    scorer.score(hooks, progress)
}

/// The first block whose input `hooks` can change: blocks before it may be run once, unhooked,
/// and shared by every set of hooks that starts there or later (`ResidPost(l)` → `l + 1`,
/// any other point of block `l` → `l`; no hooks → the number of blocks is not known here, so
/// `usize::MAX`, which [`AbScorer::new`] clamps to the model's depth).
pub fn split_for(hooks: &Hooks) -> usize {
    hooks
        .interventions()
        .iter()
        .map(|(p, _)| match p {
            HookPoint::ResidPost(l) => l + 1,
            other => other.layer(),
        })
        .min()
        .unwrap_or(usize::MAX)
}

/// The first block a steering vector changes (`min(layers) + 1`), for [`AbScorer::new`].
pub fn split_for_vectors<'a>(vectors: impl IntoIterator<Item = &'a SteeringVector>) -> usize {
    vectors
        .into_iter()
        .filter_map(|v| v.layers.keys().next().map(|l| l + 1))
        .min()
        .unwrap_or(usize::MAX)
}

/// One batch of items prepared by [`AbScorer::new`]: prompts left-padded to a common length
/// `p_len` (so every prompt ends at the same position and a single KV cache serves both
/// answers), answers right-padded; residuals entering block `split`.
struct Chunk {
    /// Indices of the items in the caller's order.
    items: Vec<usize>,
    /// Common (left-padded) prompt length.
    p_len: usize,
    /// Key validity of the prompt rows (`false` on left padding), `[B][p_len]`.
    prompt_valid: Vec<Vec<bool>>,
    /// Residual of the prompts entering block `split`, `[B, p_len, H]`.
    prompt_resid: Tensor,
    /// Answer ids: rows `0..B` matching, `B..2B` non-matching.
    answers: Vec<Vec<u32>>,
    /// Residual of the answers entering block `split`, `[2B, a_len, H]`.
    answer_resid: Tensor,
}

/// A/B items prepared for scoring under many sets of hooks (a multiplier sweep, several
/// vectors, BiPO's per-epoch held-out check).
///
/// What it shares: each prompt runs once and both answers are scored from its KV cache; the
/// blocks below `split` (which the hooks must not touch) run once, unhooked, at construction;
/// each [`AbScorer::logprobs`] call runs only blocks `split..`. Results equal scoring each
/// prompt + answer sequence on its own up to float rounding (left padding shifts absolute
/// positions, which rotary embeddings see only through relative offsets).
pub struct AbScorer<'m> {
    model: &'m Model,
    split: usize,
    chunks: Vec<Chunk>,
    n_items: usize,
    padding: Padding,
}

type KvCache = Vec<Option<(Tensor, Tensor)>>;

impl<'m> AbScorer<'m> {
    /// Prepares `items` (each with the same prompt in both completions and non-empty answers),
    /// running blocks `0..split` once; `split` is clamped to the model's depth. Items are grouped
    /// by length into batches of `batch_size` items: sorted by the tokens one item occupies
    /// in its batch (prompt + twice its longer answer), so prompts and answers both pad little.
    pub fn new(
        model: &'m Model,
        items: &[AbTokens],
        split: usize,
        batch_size: usize,
        progress: &dyn ProgressSink,
    ) -> Result<Self> {
        if items.is_empty() {
            return Err(SteerError::Invalid("no A/B items to score".into()));
        }
        for (i, it) in items.iter().enumerate() {
            if it.matching.prompt != it.non_matching.prompt {
                return Err(SteerError::Invalid(format!(
                    "A/B item {i}: the matching and non-matching answers follow different prompts"
                )));
            }
            if it.matching.prompt.is_empty()
                || it.matching.response.is_empty()
                || it.non_matching.response.is_empty()
            {
                return Err(SteerError::Invalid(format!(
                    "A/B item {i}: the prompt ({} tokens) and both answers ({} and {} tokens) must be non-empty",
                    it.matching.prompt.len(),
                    it.matching.response.len(),
                    it.non_matching.response.len()
                )));
            }
            let max_id = it
                .matching
                .full()
                .into_iter()
                .chain(it.non_matching.response.iter().copied())
                .max()
                .unwrap_or(0);
            model.check_ids(max_id)?;
        }
        let split = split.min(model.n_layers());
        let device = model.device();
        let cost: Vec<usize> = items.iter().map(AbTokens::batch_cost).collect();
        let plan = BatchPlan::by_length(&cost, BatchBudget::rows(batch_size));
        let mut chunks = Vec::new();
        let mut done = 0usize;
        let mut padding = Padding::default();
        for idx in plan.batches() {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let b = idx.len();
            let p_len = idx
                .iter()
                .map(|&i| items[i].matching.prompt.len())
                .max()
                .unwrap_or(0);
            let mut ids = Vec::with_capacity(b * p_len);
            let mut prompt_valid = Vec::with_capacity(b);
            for &i in idx {
                let p = &items[i].matching.prompt;
                let pad = p_len - p.len();
                ids.extend(std::iter::repeat_n(PAD, pad));
                ids.extend_from_slice(p);
                prompt_valid.push((0..p_len).map(|t| t >= pad).collect::<Vec<bool>>());
            }
            let ids = Tensor::from_vec(ids, (b, p_len), device)?;
            let answers: Vec<Vec<u32>> = idx
                .iter()
                .map(|&i| items[i].matching.response.clone())
                .chain(idx.iter().map(|&i| items[i].non_matching.response.clone()))
                .collect();
            let mut hooks = Hooks::new();
            let mode = model.exec(&hooks, None);
            let mut cache: KvCache = vec![None; model.n_layers()];
            let pos = prompt_ctx(b, p_len);
            let prompt_resid = model.run_blocks(
                0..split,
                model.embed(&ids)?,
                &pos,
                Some(&prompt_valid),
                &mut hooks,
                mode,
                Some(&mut cache),
            )?;
            let (a_ids, a_pos, a_valid) = answer_batch(&answers, p_len, &prompt_valid, device)?;
            padding = padding
                + Padding {
                    real: idx
                        .iter()
                        .map(|&i| items[i].matching.len() + items[i].non_matching.response.len())
                        .sum(),
                    slots: b * p_len + 2 * b * a_pos.len,
                };
            let mut cache2 = duplicate_cache(&cache)?;
            let answer_resid = model.run_blocks(
                0..split,
                model.embed(&a_ids)?,
                &a_pos,
                Some(&a_valid),
                &mut hooks,
                mode,
                Some(&mut cache2),
            )?;
            chunks.push(Chunk {
                items: idx.to_vec(),
                p_len,
                prompt_valid,
                prompt_resid,
                answers,
                answer_resid,
            });
            done += b;
            progress.report(Progress::new(
                "preparing items",
                done as u64,
                Some(items.len() as u64),
            ));
        }
        Ok(Self {
            model,
            split,
            chunks,
            n_items: items.len(),
            padding,
        })
    }

    /// Real and padded tokens of one scoring pass (prompt rows once, answer rows twice per
    /// item).
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// The block the per-hooks passes start at (hooks must not lie before it).
    pub fn split(&self) -> usize {
        self.split
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.n_items
    }

    /// True when there are no items (never, once built).
    pub fn is_empty(&self) -> bool {
        self.n_items == 0
    }

    /// Summed log-probabilities of the matching and of the non-matching answers of every item
    /// (in the caller's order) under `hooks`. Hooks may only lie at `ResidPost(split − 1)` or in
    /// blocks `split..`; positions `prompt`/`generated` are the prompt and the answer tokens.
    pub fn logprobs(
        &self,
        hooks: &Hooks,
        progress: &dyn ProgressSink,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let model = self.model;
        let n_layers = model.n_layers();
        let mut hooks = hooks.adds_only();
        model.check_hooks(&hooks)?;
        if let Some((p, _)) = hooks.interventions().iter().find(|(p, _)| {
            !(p.layer() >= self.split
                || (self.split > 0 && *p == HookPoint::ResidPost(self.split - 1)))
        }) {
            return Err(SteerError::Invalid(format!(
                "{p}: lies below block {}, whose input these items share across hooks",
                self.split
            )));
        }
        let mode = model.exec(&hooks, None);
        let device = model.device();
        let mut lp_m = vec![0.0; self.n_items];
        let mut lp_n = vec![0.0; self.n_items];
        let mut done = 0usize;
        for c in &self.chunks {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let b = c.items.len();
            let pos = prompt_ctx(b, c.p_len);
            let mut x = c.prompt_resid.clone();
            if self.split > 0 {
                x = hooks.apply(HookPoint::ResidPost(self.split - 1), x, &pos)?;
            }
            let mut cache: KvCache = vec![None; n_layers];
            let xp = model.run_blocks(
                self.split..n_layers,
                x,
                &pos,
                Some(&c.prompt_valid),
                &mut hooks,
                mode,
                Some(&mut cache),
            )?;
            let (_, a_pos, a_valid) = answer_batch(&c.answers, c.p_len, &c.prompt_valid, device)?;
            let mut cache2 = duplicate_cache(&cache)?;
            let mut y = c.answer_resid.clone();
            if self.split > 0 {
                y = hooks.apply(HookPoint::ResidPost(self.split - 1), y, &a_pos)?;
            }
            let ya = model.run_blocks(
                self.split..n_layers,
                y,
                &a_pos,
                Some(&a_valid),
                &mut hooks,
                mode,
                Some(&mut cache2),
            )?;
            // Rows predicting answer token j: the prompt's last position for j = 0, the
            // answer's position j − 1 after that.
            let h = model.hidden_size();
            let a_len = a_pos.len;
            let last = xp.narrow(1, c.p_len - 1, 1)?.reshape((b, h))?;
            let all = Tensor::cat(&[last, ya.reshape((2 * b * a_len, h))?], 0)?;
            let mut rows = Vec::new();
            let mut targets = Vec::new();
            let mut owner = Vec::new();
            for (r, ans) in c.answers.iter().enumerate() {
                for (j, &tok) in ans.iter().enumerate() {
                    rows.push(if j == 0 {
                        (r % b) as u32
                    } else {
                        (b + r * a_len + j - 1) as u32
                    });
                    targets.push(tok);
                    owner.push(r);
                }
            }
            let n = rows.len();
            let sel = all.index_select(&Tensor::from_vec(rows, n, device)?, 0)?;
            let logits = model.lm_head(&model.final_norm(&sel, &hooks)?)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let picked = logp
                .gather(&Tensor::from_vec(targets, (n, 1), device)?, 1)?
                .squeeze(1)?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            let mut sums = vec![0.0f64; 2 * b];
            for (v, r) in picked.into_iter().zip(owner) {
                sums[r] += v;
            }
            for (k, &i) in c.items.iter().enumerate() {
                lp_m[i] = sums[k];
                lp_n[i] = sums[b + k];
            }
            done += b;
            progress.report(Progress::new(
                "scoring",
                done as u64,
                Some(self.n_items as u64),
            ));
        }
        Ok((lp_m, lp_n))
    }

    /// The behaviour score under `hooks` (see [`AbScorer::logprobs`]).
    pub fn score(&self, hooks: &Hooks, progress: &dyn ProgressSink) -> Result<f64> {
        let (m, n) = self.logprobs(hooks, progress)?;
        behaviour_score_from_logprobs(&m, &n)
    }
}

fn prompt_ctx(b: usize, p_len: usize) -> PosCtx {
    PosCtx {
        batch: b,
        len: p_len,
        offset: 0,
        prompt_lens: Some(vec![p_len; b]),
    }
}

/// Right-padded answer ids `[2B, A]`, their positional context (after the common prompt) and
/// key validity over prompt + answer (`2B` rows: item `r % B`'s prompt, then the answer).
fn answer_batch(
    answers: &[Vec<u32>],
    p_len: usize,
    prompt_valid: &[Vec<bool>],
    device: &candle_core::Device,
) -> Result<(Tensor, PosCtx, Vec<Vec<bool>>)> {
    let rows = answers.len();
    let b = prompt_valid.len();
    let a_len = answers.iter().map(|a| a.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(rows * a_len);
    let mut valid = Vec::with_capacity(rows);
    for (r, a) in answers.iter().enumerate() {
        ids.extend_from_slice(a);
        ids.extend(std::iter::repeat_n(PAD, a_len - a.len()));
        let mut v = prompt_valid[r % b].clone();
        v.extend((0..a_len).map(|j| j < a.len()));
        valid.push(v);
    }
    let pos = PosCtx {
        batch: rows,
        len: a_len,
        offset: p_len,
        prompt_lens: Some(vec![p_len; rows]),
    };
    Ok((Tensor::from_vec(ids, (rows, a_len), device)?, pos, valid))
}

/// Each layer's cached keys/values `[B, ..]` stacked twice along the batch (`[2B, ..]`): the
/// matching answers use rows `0..B`, the non-matching ones rows `B..2B`.
fn duplicate_cache(cache: &KvCache) -> Result<KvCache> {
    cache
        .iter()
        .map(|c| {
            c.as_ref()
                .map(|(k, v)| Ok((Tensor::cat(&[k, k], 0)?, Tensor::cat(&[v, v], 0)?)))
                .transpose()
        })
        .collect()
}

/// One point of a sweep (the `--json` row of `steerlab steer eval`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The vector's name (its file, or the name given).
    pub vector: String,
    /// The multiplier.
    pub multiplier: f64,
    /// The behaviour score.
    pub score: f64,
}

/// The behaviour score of every named vector at every multiplier. The items are prepared once
/// ([`AbScorer`]: shared prompts, and the blocks below every vector's first layer run once);
/// multiplier 0 (no steering) is scored once and shared by all vectors. `batch_size` items per
/// forward pass.
pub fn sweep(
    model: &Model,
    items: &[AbTokens],
    vectors: &[(String, SteeringVector)],
    multipliers: &[f64],
    batch_size: usize,
    progress: &dyn ProgressSink,
) -> Result<Vec<SweepPoint>> {
    for (_, v) in vectors {
        v.check_model(model.hidden_size(), model.n_layers())?;
    }
    let total = (vectors.len() * multipliers.len()) as u64;
    progress.report(Progress::new("preparing items", 0, Some(total)));
    let scorer = AbScorer::new(
        model,
        items,
        split_for_vectors(vectors.iter().map(|(_, v)| v)),
        batch_size,
        &Cancel(progress),
    )?;
    let mut baseline: Option<f64> = None;
    let mut out = Vec::new();
    for (name, v) in vectors {
        for &m in multipliers {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let score = if m == 0.0 {
                match baseline {
                    Some(b) => b,
                    None => {
                        let b = scorer.score(&Hooks::new(), &Cancel(progress))?;
                        baseline = Some(b);
                        b
                    }
                }
            } else {
                let mut hooks = Hooks::new();
                add_steering(&mut hooks, model, v, m)?;
                scorer.score(&hooks, &Cancel(progress))?
            };
            out.push(SweepPoint {
                vector: name.clone(),
                multiplier: m,
                score,
            });
            progress.report(
                Progress::new(format!("{name} × {m}"), out.len() as u64, Some(total))
                    .metric(Metric::Score, score),
            );
        }
    }
    Ok(out)
}

/// Forwards only cancellation to the caller's sink (inner loops report no progress of their own).
struct Cancel<'a>(&'a dyn ProgressSink);

impl ProgressSink for Cancel<'_> {
    fn report(&self, _: Progress) {}
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    fn interrupt_probe(&self) -> Option<crate::jobs::InterruptProbe> {
        self.0.interrupt_probe()
    }
}

/// One steered generation.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeredGeneration {
    /// Index of the prompt in the input list.
    pub prompt_index: usize,
    /// The multiplier (0 = unsteered).
    pub multiplier: f64,
    /// The generated token ids.
    pub ids: Vec<u32>,
}

/// Generates from every prompt at every multiplier with `scale × Σ vectors` applied
/// (`vectors` are `(vector, weight)` pairs combined as in [`SteeringVector::compose`]).
pub fn steered_generations(
    model: &Model,
    prompts: &[Vec<u32>],
    vectors: &[(&SteeringVector, f64)],
    multipliers: &[f64],
    opts: &GenerateOptions,
    progress: &dyn ProgressSink,
) -> Result<Vec<SteeredGeneration>> {
    let total = (prompts.len() * multipliers.len()) as u64;
    let mut out = Vec::new();
    for &m in multipliers {
        let mut hooks = Hooks::new();
        if m != 0.0 {
            for (v, w) in vectors {
                add_steering(&mut hooks, model, v, m * w)?;
            }
        }
        for (i, p) in prompts.iter().enumerate() {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled".into()));
            }
            let ids = model.generate(p, opts, &hooks, &mut |_, _| !progress.is_cancelled())?;
            out.push(SteeredGeneration {
                prompt_index: i,
                multiplier: m,
                ids,
            });
            progress.report(Progress::new("generating", out.len() as u64, Some(total)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_score_is_the_probability_ratio() {
        // p_m = 0.2, p_n = 0.05 → 0.8
        let s = item_score(0.2f64.ln(), 0.05f64.ln());
        assert!((s - 0.8).abs() < 1e-12);
        assert!((item_score(-3.0, -3.0) - 0.5).abs() < 1e-15);
        // extreme log-probs stay finite
        assert!((item_score(-1.0, -2000.0) - 1.0).abs() < 1e-12);
        assert!(item_score(-2000.0, -1.0) < 1e-300);
        let b = behaviour_score_from_logprobs(&[0.2f64.ln(), -1.0], &[0.05f64.ln(), -1.0]).unwrap();
        assert!((b - 0.65).abs() < 1e-12);
        assert!(behaviour_score_from_logprobs(&[], &[]).is_err());
    }
}
