//! BiPO trainer (Cao et al. 2024) with its objective family.
//!
//! One vector `v_L` per chosen layer is added (× `d`) to `blocks.L.hook_resid_post` at every
//! position; `v` starts at zero and only `v` trains. Each batch draws `d ∈ {−1, +1}`; the
//! implicit reward of a response is `r(y) = log π_{d·v}(y|x) − log π₀(y|x)` summed over response
//! tokens, and the loss is the chosen [`Objective`] (DPO for BiPO).
//!
//! What makes it cheap: `log π₀` does not depend on `v`, so it is computed once per response and
//! cached (no second model copy); blocks `0..=min(layers)` do not depend on `v` either, so their
//! output is computed once per response and each step runs only the blocks above
//! ([`Model::forward_hidden_from`]). AdamW with linear warm-up then cosine decay, mini-batches,
//! epochs and a seed. Progress goes to a [`ProgressSink`]; cancelling keeps the last good
//! vector, and a non-finite loss stops training with the last good vector kept.
//!
//! Batching by length: the cache pass groups completions of similar length (results do not
//! depend on batch-mates, so they are unchanged up to float rounding);
//! [`BipoConfig::group_by_length`] optionally does the same for the training minibatches,
//! which changes the trajectory and is therefore off by default.
//!
//! No tokenization here: inputs are token ids ([`Completion`]s).
use super::collect::{completion_batch, response_logprobs, Completion};
use super::error::{Result, SteerError};
use super::eval::{AbScorer, AbTokens};
use super::objective::{bco_loss, paired_loss, Objective};
use super::vector::{SteeringVector, VectorMeta};
use crate::data::batching::{
    group_minibatches, BatchBudget, BatchPlan, Padding, MEGABATCH_MINIBATCHES,
};
use crate::jobs::{Metric, NoProgress, Progress, ProgressSink};
use crate::model::{HookPoint, Hooks, Model, Positions};
use candle_core::{DType, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// A preference pair as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairTokens {
    /// Chat-formatted prompt.
    pub prompt: Vec<u32>,
    /// Preferred response (with end-of-turn token).
    pub chosen: Vec<u32>,
    /// Dispreferred response.
    pub rejected: Vec<u32>,
}

/// Unpaired feedback as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackTokens {
    /// Prompt and response.
    pub completion: Completion,
    /// Thumbs up.
    pub label: bool,
}

/// Training data: pairs (dpo/ipo/rdpo) or unpaired feedback (bco).
#[derive(Debug, Clone)]
pub enum TrainData {
    /// chosen/rejected pairs.
    Pairs(Vec<PairTokens>),
    /// thumbs up/down responses.
    Feedback(Vec<FeedbackTokens>),
}

impl TrainData {
    /// Number of pairs or feedback items.
    pub fn len(&self) -> usize {
        match self {
            TrainData::Pairs(p) => p.len(),
            TrainData::Feedback(f) => f.len(),
        }
    }

    /// True when there is nothing to train on.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token length of every completion a step runs, in cache order: pairs give
    /// prompt + chosen at `2i` and prompt + rejected at `2i + 1`.
    pub fn row_lengths(&self) -> Vec<usize> {
        match self {
            TrainData::Pairs(p) => p
                .iter()
                .flat_map(|x| {
                    [
                        x.prompt.len() + x.chosen.len(),
                        x.prompt.len() + x.rejected.len(),
                    ]
                })
                .collect(),
            TrainData::Feedback(f) => f.iter().map(|x| x.completion.len()).collect(),
        }
    }

    /// The padded length an item adds to a minibatch: pairs, prompt + the longer response;
    /// feedback, the completion's length. What [`BipoConfig::group_by_length`] sorts by.
    pub fn item_lengths(&self) -> Vec<usize> {
        match self {
            TrainData::Pairs(p) => p
                .iter()
                .map(|x| x.prompt.len() + x.chosen.len().max(x.rejected.len()))
                .collect(),
            TrainData::Feedback(f) => f.iter().map(|x| x.completion.len()).collect(),
        }
    }
}

/// How much work a BiPO run is, counted in tokens (no forward pass): the reference cache
/// (every completion once through the whole model) and the training minibatches (padded
/// slots through the blocks above the first steered layer, forward and backward).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BipoWork {
    /// Optimiser steps.
    pub steps: usize,
    /// Tokens of the cache pass (all completions).
    pub cache_tokens: usize,
    /// Padded token slots of all training minibatches.
    pub train_slots: usize,
}

/// Seconds per cached token of SmolLM2-135M (f32, release build) on an idle 2-core AMD EPYC:
/// the CPU seconds of a default run (`steerlab steer train --method bipo` on the default
/// pairs, MEASURED on a shared machine: BENCHMARKS.md, "Default BiPO run") split by work and
/// spread over both cores. Other models scale with hidden² × blocks.
const REF_CACHE_S_PER_TOKEN: f64 = 0.0018;
/// Seconds per trained token slot (forward + backward above block 14), derived as above.
const REF_TRAIN_S_PER_SLOT: f64 = 0.0029;

impl BipoWork {
    /// The work of training `data` with `cfg`.
    pub fn of(data: &TrainData, cfg: &BipoConfig) -> Self {
        BipoWork {
            steps: cfg.total_steps(data.len()),
            cache_tokens: data.row_lengths().iter().sum(),
            train_slots: training_padding(data, cfg, cfg.epochs).slots,
        }
    }

    /// Wall-clock seconds this work takes on an idle 2-core CPU like steerlab's reference
    /// machine, for a model of `hidden` width and `n_layers` blocks steered from
    /// `first_layer`: a rough estimate to show before a run starts (longer on a busy machine;
    /// the running job's ETA is measured).
    pub fn reference_seconds(&self, hidden: usize, n_layers: usize, first_layer: usize) -> f64 {
        let size = (hidden as f64 / 576.0).powi(2);
        let whole = n_layers.max(1) as f64 / 30.0;
        // The reference run trains the 15 blocks above block 14 of 30.
        let above = n_layers.saturating_sub(first_layer + 1).max(1) as f64 / 15.0;
        size * (self.cache_tokens as f64 * REF_CACHE_S_PER_TOKEN * whole
            + self.train_slots as f64 * REF_TRAIN_S_PER_SLOT * above)
    }
}

/// Real and padded tokens of the training minibatches [`train_bipo`] runs over `epochs`
/// epochs of `data` under `cfg`'s seed, batch size and [`BipoConfig::group_by_length`] (both
/// rows of a pair counted). No forward pass.
pub fn training_padding(data: &TrainData, cfg: &BipoConfig, epochs: usize) -> Padding {
    let rows = data.row_lengths();
    let items = data.item_lengths();
    let paired = matches!(data, TrainData::Pairs(_));
    let mut order = EpochOrder::new(data.len(), cfg);
    let mut total = Padding::default();
    for _ in 0..epochs {
        let batches = order.next_epoch(&items);
        let row_batches: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| {
                if paired {
                    b.iter().flat_map(|&i| [2 * i, 2 * i + 1]).collect()
                } else {
                    b.clone()
                }
            })
            .collect();
        total = total + Padding::of(&row_batches, &rows);
        // each step's direction draw, as in training, keeps the RNG in step
        for _ in &batches {
            order.draw_direction();
        }
    }
    total
}

/// Hyper-parameters of [`train_bipo`].
#[derive(Debug, Clone, PartialEq)]
pub struct BipoConfig {
    /// 0-based blocks whose output is steered.
    pub layers: Vec<usize>,
    /// Objective (BiPO: `Dpo`).
    pub objective: Objective,
    /// β of the objective (paper: 0.1).
    pub beta: f64,
    /// Peak AdamW learning rate (paper: 5e-4 for thousands of steps; see [`BipoConfig::default`]).
    pub lr: f64,
    /// AdamW weight decay (paper: 0.05).
    pub weight_decay: f64,
    /// Linear warm-up steps; `None`: 10% of all steps (at least 1).
    pub warmup_steps: Option<usize>,
    /// Passes over the data.
    pub epochs: usize,
    /// Pairs (or feedback items) per step (paper: 4).
    pub batch_size: usize,
    /// Seed of the shuffles and of the direction draws (paper: 11).
    pub seed: u64,
    /// Sequences per forward pass when caching and scoring held-out items.
    pub eval_batch_size: usize,
    /// Put items of similar length in the same training minibatch (Hugging Face's
    /// `group_by_length`: shuffle, mega-batches of 50 minibatches sorted by length, minibatch
    /// order shuffled). Less padding per step, but a different trajectory: off by default.
    pub group_by_length: bool,
}

impl Default for BipoConfig {
    /// The paper's β, weight decay, batch and seed; learning rate and warm-up scaled to short
    /// runs (a few hundred steps): lr 0.02 and a 10% warm-up. See docs/results/steering.md.
    fn default() -> Self {
        Self {
            layers: vec![14],
            objective: Objective::Dpo,
            beta: 0.1,
            lr: 0.02,
            weight_decay: 0.05,
            warmup_steps: None,
            epochs: 3,
            batch_size: 4,
            seed: 11,
            eval_batch_size: 8,
            group_by_length: false,
        }
    }
}

impl BipoConfig {
    /// Number of optimiser steps for `n` training items.
    pub fn total_steps(&self, n: usize) -> usize {
        self.epochs * n.div_ceil(self.batch_size.max(1))
    }

    /// Warm-up steps actually used for a run of `total` steps.
    pub fn warmup_for(&self, total: usize) -> usize {
        self.warmup_steps
            .unwrap_or_else(|| (total / 10).max(1))
            .min(total.max(1))
    }

    /// Learning rate at 0-based `step`: linear warm-up to `lr`, then cosine decay to 0.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let warm = self.warmup_for(total);
        if step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        let span = (total.saturating_sub(warm)).max(1) as f64;
        let t = (step - warm) as f64 / span;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
    }
}

/// The training problem with its caches: blocks below the steered layers and the reference
/// log-probabilities, computed once. Exposed so tests can evaluate the loss at any `v`.
pub struct BipoProblem<'m> {
    model: &'m Model,
    /// First block that depends on `v` (`min(layers) + 1`).
    start: usize,
    layers: Vec<usize>,
    objective: Objective,
    beta: f64,
    /// Completions: pairs are stored as (chosen, rejected) at 2i, 2i+1.
    completions: Vec<Completion>,
    labels: Vec<bool>,
    /// Residual entering block `start` for each completion, `[T_i, H]` (`None` until cached).
    cache: Vec<Option<Tensor>>,
    /// `log π₀(response | prompt)` for each completion (NaN until cached).
    ref_logp: Vec<f64>,
    /// Completions cached so far.
    cached: usize,
    paired: bool,
    /// Real and padded tokens of the cache passes so far.
    cache_padding: Padding,
    /// Sequences per forward pass of the cache.
    eval_batch_size: usize,
}

/// The training order: the seeded RNG that shuffles the items each epoch (plain chunks, or
/// length-grouped minibatches) and draws each step's direction.
struct EpochOrder {
    rng: rand::rngs::StdRng,
    order: Vec<usize>,
    batch_size: usize,
    group: bool,
}

impl EpochOrder {
    fn new(n: usize, cfg: &BipoConfig) -> Self {
        Self {
            rng: rand::rngs::StdRng::seed_from_u64(cfg.seed),
            order: (0..n).collect(),
            batch_size: cfg.batch_size.max(1),
            group: cfg.group_by_length,
        }
    }

    /// The minibatches of the next epoch.
    fn next_epoch(&mut self, lens: &[usize]) -> Vec<Vec<usize>> {
        if self.group {
            group_minibatches(lens, self.batch_size, MEGABATCH_MINIBATCHES, &mut self.rng)
        } else {
            self.order.shuffle(&mut self.rng);
            self.order
                .chunks(self.batch_size)
                .map(|c| c.to_vec())
                .collect()
        }
    }

    /// The next step's direction `d ∈ {−1, +1}`.
    fn draw_direction(&mut self) -> f64 {
        if self.rng.random::<bool>() {
            1.0
        } else {
            -1.0
        }
    }
}

impl<'m> BipoProblem<'m> {
    /// Validates the data and fills the caches (one pass of blocks `0..start` and one full
    /// reference pass per completion), reporting "caching reference" progress.
    pub fn new(
        model: &'m Model,
        data: &TrainData,
        cfg: &BipoConfig,
        progress: &dyn ProgressSink,
    ) -> Result<Self> {
        let mut problem = Self::uncached(model, data, cfg)?;
        let all: Vec<usize> = (0..problem.completions.len()).collect();
        problem.fill(&all, progress)?;
        Ok(problem)
    }

    /// Validates the data without computing anything: the caches are filled on demand with
    /// [`BipoProblem::fill`] (the trainer fills each minibatch's rows before its first step,
    /// so the first step comes after one small cache pass instead of one over all the data).
    pub fn uncached(model: &'m Model, data: &TrainData, cfg: &BipoConfig) -> Result<Self> {
        let mut layers = cfg.layers.clone();
        layers.sort_unstable();
        layers.dedup();
        let first = *layers
            .first()
            .ok_or_else(|| SteerError::Invalid("BiPO needs at least one layer".into()))?;
        if let Some(&l) = layers.iter().find(|&&l| l >= model.n_layers()) {
            return Err(SteerError::LayerOutOfRange {
                what: "--layers".into(),
                layer: l,
                n_layers: model.n_layers(),
            });
        }
        if cfg.beta <= 0.0 || !cfg.beta.is_finite() {
            return Err(SteerError::Invalid(format!(
                "beta must be positive, got {}",
                cfg.beta
            )));
        }
        let (completions, labels, paired) = match (data, cfg.objective.is_unpaired()) {
            (TrainData::Pairs(p), false) => {
                let mut c = Vec::with_capacity(p.len() * 2);
                for x in p {
                    c.push(Completion { prompt: x.prompt.clone(), response: x.chosen.clone() });
                    c.push(Completion { prompt: x.prompt.clone(), response: x.rejected.clone() });
                }
                (c, Vec::new(), true)
            }
            (TrainData::Feedback(f), true) => {
                let c = f.iter().map(|x| x.completion.clone()).collect();
                (c, f.iter().map(|x| x.label).collect(), false)
            }
            (TrainData::Pairs(_), true) => {
                return Err(SteerError::Invalid(
                    "objective bco needs unpaired thumbs-up/down feedback (prompt, response, label), not pairs".into(),
                ))
            }
            (TrainData::Feedback(_), false) => {
                return Err(SteerError::Invalid(format!(
                    "objective {} needs chosen/rejected pairs; use bco for unpaired feedback",
                    cfg.objective
                )))
            }
        };
        if completions.is_empty() {
            return Err(SteerError::Invalid("no training examples".into()));
        }
        let start = first + 1;
        let n = completions.len();
        Ok(Self {
            model,
            start,
            layers,
            objective: cfg.objective,
            beta: cfg.beta,
            completions,
            labels,
            cache: vec![None; n],
            ref_logp: vec![f64::NAN; n],
            cached: 0,
            paired,
            cache_padding: Padding::default(),
            eval_batch_size: cfg.eval_batch_size.max(1),
        })
    }

    /// Caches the completions `rows` (indices as in [`BipoProblem::reference_logprobs`]) that
    /// are not cached yet: blocks below the first steered layer and the reference
    /// log-probabilities, completions of similar length sharing a forward pass (each one's
    /// result does not depend on its batch-mates). Reports "caching reference" after each pass;
    /// stops with an error between passes when cancelled.
    pub fn fill(&mut self, rows: &[usize], progress: &dyn ProgressSink) -> Result<()> {
        let mut todo: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&r| r < self.cache.len() && self.cache[r].is_none())
            .collect();
        todo.sort_unstable();
        todo.dedup();
        if todo.is_empty() {
            return Ok(());
        }
        let lens: Vec<usize> = todo.iter().map(|&r| self.completions[r].len()).collect();
        let plan = BatchPlan::by_length(&lens, BatchBudget::rows(self.eval_batch_size));
        for idx in plan.batches() {
            if progress.is_cancelled() {
                return Err(SteerError::Invalid("cancelled while caching".into()));
            }
            let refs: Vec<&Completion> = idx.iter().map(|&i| &self.completions[todo[i]]).collect();
            let batch = completion_batch(&refs, self.model.device())?;
            let resid = self
                .model
                .forward_to(self.start, &batch, &mut Hooks::new())?;
            let hidden =
                self.model
                    .forward_hidden_from(self.start, &resid, &batch, &mut Hooks::new())?;
            let lp = response_logprobs(self.model, &hidden, &refs)?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            for (k, (&i, lp)) in idx.iter().zip(lp).enumerate() {
                let r = todo[i];
                let len = self.completions[r].len();
                self.cache[r] = Some(resid.get(k)?.narrow(0, 0, len)?.contiguous()?);
                self.ref_logp[r] = lp;
            }
            self.cached += idx.len();
            progress.report(Progress::new(
                "caching reference",
                self.cached as u64,
                Some(self.cache.len() as u64),
            ));
        }
        self.cache_padding = self.cache_padding + plan.padding(&lens);
        Ok(())
    }

    /// The completion rows of the items `idx` (pairs: chosen and rejected).
    fn rows_of(&self, idx: &[usize]) -> Vec<usize> {
        if self.paired {
            idx.iter().flat_map(|&i| [2 * i, 2 * i + 1]).collect()
        } else {
            idx.to_vec()
        }
    }

    /// Real and padded tokens of the cache passes so far.
    pub fn cache_padding(&self) -> Padding {
        self.cache_padding
    }

    /// `log π₀(response | prompt)` of every completion (pairs: chosen of pair `i` at `2i`,
    /// rejected at `2i + 1`); NaN where not cached yet (all are after [`BipoProblem::new`]).
    pub fn reference_logprobs(&self) -> &[f64] {
        &self.ref_logp
    }

    /// Number of training items (pairs or feedback responses).
    pub fn n_items(&self) -> usize {
        if self.paired {
            self.completions.len() / 2
        } else {
            self.completions.len()
        }
    }

    /// The steered layers (sorted).
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// Loss over the items `idx` with direction `d` and per-layer vectors `vs` (in the order
    /// of [`BipoProblem::layers`]; `Var`s get gradients), plus per-item "correct side" flags
    /// (`d·margin > 0`). `delta` is BCO's reward shift (ignored by paired objectives).
    pub fn batch_loss(
        &self,
        vs: &[Tensor],
        idx: &[usize],
        d: f64,
        delta: f64,
    ) -> Result<(Tensor, Vec<bool>, f64)> {
        if vs.len() != self.layers.len() {
            return Err(SteerError::Invalid(format!(
                "{} vectors for {} layers",
                vs.len(),
                self.layers.len()
            )));
        }
        let rows = self.rows_of(idx);
        let refs: Vec<&Completion> = rows.iter().map(|&r| &self.completions[r]).collect();
        let batch = completion_batch(&refs, self.model.device())?;
        let t = batch.seq_len();
        let padded = rows
            .iter()
            .map(|&r| {
                let c = self.cache[r].as_ref().ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "completion {r} is not cached (call BipoProblem::fill first)"
                    ))
                })?;
                let n = c.dim(0)?;
                if n < t {
                    c.pad_with_zeros(0, 0, t - n)
                } else {
                    Ok(c.clone())
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let resid = Tensor::stack(&padded, 0)?;
        let mut hooks = Hooks::new();
        for (l, v) in self.layers.iter().zip(vs) {
            hooks.add(HookPoint::ResidPost(*l), v.clone(), d, Positions::All);
        }
        let hidden = self
            .model
            .forward_hidden_from(self.start, &resid, &batch, &mut hooks)?;
        let lp = response_logprobs(self.model, &hidden, &refs)?;
        let ref_lp: Vec<f64> = rows.iter().map(|&r| self.ref_logp[r]).collect();
        let ref_lp =
            Tensor::from_vec(ref_lp, rows.len(), self.model.device())?.to_dtype(lp.dtype())?;
        let r = (lp - ref_lp)?;
        if self.paired {
            let n = idx.len();
            let r2 = r.reshape((n, 2))?;
            let h = (r2.narrow(1, 0, 1)? - r2.narrow(1, 1, 1)?)?.squeeze(1)?;
            let hv = h.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let loss = paired_loss(self.objective, self.beta, d, &h)?;
            Ok((loss, hv.iter().map(|x| d * x > 0.0).collect(), 0.0))
        } else {
            let s: Vec<f64> = idx
                .iter()
                .map(|&i| if self.labels[i] { 1.0 } else { -1.0 })
                .collect();
            let rv = r.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let mean_br = rv.iter().map(|x| self.beta * d * x).sum::<f64>() / rv.len() as f64;
            let st =
                Tensor::from_vec(s.clone(), s.len(), self.model.device())?.to_dtype(r.dtype())?;
            let loss = bco_loss(self.beta, d, &st, &r, delta)?;
            Ok((
                loss,
                rv.iter().zip(&s).map(|(x, s)| d * s * x > 0.0).collect(),
                mean_br,
            ))
        }
    }
}

/// Why training stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// All epochs ran.
    Finished,
    /// The user cancelled; the vector is the last completed step's.
    Cancelled,
    /// The loss or the vector became NaN/infinite; the vector is the last good one.
    Diverged(String),
}

/// Per-epoch summary.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Fraction of items on the right side of the margin (`d·margin > 0`).
    pub margin_accuracy: f64,
    /// ‖v‖ at each layer at the end of the epoch (mean over layers).
    pub norm: f64,
    /// Held-out behaviour score at multiplier +1 and −1, when held-out items were given.
    pub behaviour: Option<(f64, f64)>,
}

/// Result of [`train_bipo`].
#[derive(Debug, Clone)]
pub struct BipoOutcome {
    /// The trained (or last good) vector.
    pub vector: SteeringVector,
    /// Epoch summaries.
    pub epochs: Vec<EpochStats>,
    /// Optimiser steps completed.
    pub steps: usize,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Provenance recorded in the vector's metadata.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// Model name.
    pub model: String,
    /// Data set name.
    pub dataset: String,
}

/// Trains a BiPO vector. `heldout` A/B items, if given, are scored at multipliers ±1 after each
/// epoch (progress metrics `behaviour_plus`, `behaviour_minus`). Per step the sink receives
/// `loss`, `margin_accuracy`, `lr` and `norm`.
pub fn train_bipo(
    model: &Model,
    data: &TrainData,
    heldout: Option<&[AbTokens]>,
    cfg: &BipoConfig,
    prov: &Provenance,
    progress: &dyn ProgressSink,
) -> Result<BipoOutcome> {
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(SteerError::Invalid(
            "epochs and batch size must be at least 1".into(),
        ));
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(SteerError::Invalid(format!(
            "learning rate must be positive, got {}",
            cfg.lr
        )));
    }
    // The reference cache is filled a minibatch at a time, just before the minibatch's first
    // step: the first step comes after one small cache pass, and the progress counts steps
    // from the start (so its ETA covers the cache work too).
    let mut problem = BipoProblem::uncached(model, data, cfg)?;
    // Held-out items are prepared at the end of the first epoch, once: prompts shared, blocks
    // below the first steered layer run once for all epochs.
    let mut heldout_scorer: Option<AbScorer> = None;
    let h = model.hidden_size();
    let vars: Vec<Var> = problem
        .layers()
        .iter()
        // The vector and its AdamW state stay in f32 (f64 for an f64 model) whatever the model
        // dtype: bf16 would round away updates smaller than 1/256 of an entry.
        .map(|_| Var::zeros(h, master_dtype(model.dtype()), model.device()))
        .collect::<candle_core::Result<_>>()?;
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: cfg.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
        },
    )?;
    let n = problem.n_items();
    let total = cfg.total_steps(n);
    let mut order = EpochOrder::new(n, cfg);
    let item_lens = data.item_lengths();
    let mut last_good: Vec<Vec<f32>> = vec![vec![0.0; h]; vars.len()];
    let mut last_good_step = 0usize;
    let mut step = 0usize;
    let mut delta = [0.0f64; 2]; // BCO reward shift per direction (d = −1, +1)
    let mut epochs = Vec::new();
    let mut stop = StopReason::Finished;
    'outer: for epoch in 1..=cfg.epochs {
        let batches = order.next_epoch(&item_lens);
        let (mut loss_sum, mut loss_n, mut right, mut seen) = (0.0, 0usize, 0usize, 0usize);
        for idx in &batches {
            if progress.is_cancelled() {
                stop = StopReason::Cancelled;
                break 'outer;
            }
            let d = order.draw_direction();
            let di = usize::from(d > 0.0);
            // The cache pass and the step's forward and backward passes poll the stop request
            // at every block (the interrupt scope), so Stop lands within one block's work; an
            // interrupted pass changes nothing and the vector stays the last completed step's.
            let _interrupt = crate::jobs::interrupt_scope(progress.interrupt_probe());
            match problem.fill(&problem.rows_of(idx), &CancelOnly(progress)) {
                Ok(()) => {}
                Err(_) if progress.is_cancelled() => {
                    stop = StopReason::Cancelled;
                    break 'outer;
                }
                Err(e) => return Err(e),
            }
            opt.set_learning_rate(cfg.lr_at(step, total));
            let vs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let (loss, sides, mean_br) = match problem.batch_loss(&vs, idx, d, delta[di]) {
                Ok(r) => r,
                Err(_) if progress.is_cancelled() => {
                    stop = StopReason::Cancelled;
                    break 'outer;
                }
                Err(e) => return Err(e),
            };
            if progress.is_cancelled() {
                stop = StopReason::Cancelled;
                break 'outer;
            }
            let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !lv.is_finite() {
                stop = StopReason::Diverged(
                    SteerError::NonFinite {
                        step: step + 1,
                        value: lv,
                        last_good_step,
                    }
                    .to_string(),
                );
                break 'outer;
            }
            match opt.backward_step(&loss) {
                Ok(()) => {}
                Err(_) if progress.is_cancelled() => {
                    stop = StopReason::Cancelled;
                    break 'outer;
                }
                Err(e) => return Err(e.into()),
            }
            let now: Vec<Vec<f32>> = vars
                .iter()
                .map(|v| v.as_tensor().to_dtype(DType::F32)?.to_vec1::<f32>())
                .collect::<candle_core::Result<_>>()?;
            if now.iter().flatten().any(|x| !x.is_finite()) {
                stop = StopReason::Diverged(format!(
                    "training stopped at step {}: the vector became NaN or infinite; the last good vector (from step {last_good_step}) was kept — lower the learning rate",
                    step + 1
                ));
                break 'outer;
            }
            last_good = now;
            step += 1;
            last_good_step = step;
            if !problem.paired {
                delta[di] = 0.9 * delta[di] + 0.1 * mean_br;
            }
            loss_sum += lv;
            loss_n += 1;
            right += sides.iter().filter(|s| **s).count();
            seen += sides.len();
            let norm = mean_norm(&last_good);
            progress.report(
                Progress::new(
                    format!("epoch {epoch}/{}", cfg.epochs),
                    step as u64,
                    Some(total as u64),
                )
                .metric(Metric::Loss, lv)
                .metric(
                    Metric::MarginAccuracy,
                    sides.iter().filter(|s| **s).count() as f64 / sides.len() as f64,
                )
                .metric(Metric::Lr, cfg.lr_at(step - 1, total))
                .metric(Metric::Norm, norm),
            );
        }
        if heldout_scorer.is_none() {
            if let Some(items) = heldout.filter(|h| !h.is_empty()) {
                heldout_scorer = Some(AbScorer::new(
                    model,
                    items,
                    problem.start,
                    cfg.eval_batch_size,
                    &NoProgress,
                )?);
            }
        }
        let behaviour = match &heldout_scorer {
            Some(scorer) => {
                let v = make_vector(&problem, &last_good, cfg, prov, h)?;
                let plus = scorer.score(
                    &super::collect::steering_hooks(model, &v, 1.0)?,
                    &NoProgress,
                )?;
                let minus = scorer.score(
                    &super::collect::steering_hooks(model, &v, -1.0)?,
                    &NoProgress,
                )?;
                progress.report(
                    Progress::new(
                        format!("epoch {epoch}/{} held-out", cfg.epochs),
                        step as u64,
                        Some(total as u64),
                    )
                    .metric(Metric::BehaviourPlus, plus)
                    .metric(Metric::BehaviourMinus, minus),
                );
                Some((plus, minus))
            }
            None => None,
        };
        epochs.push(EpochStats {
            epoch,
            loss: if loss_n > 0 {
                loss_sum / loss_n as f64
            } else {
                f64::NAN
            },
            margin_accuracy: if seen > 0 {
                right as f64 / seen as f64
            } else {
                f64::NAN
            },
            norm: mean_norm(&last_good),
            behaviour,
        });
    }
    let vector = make_vector(&problem, &last_good, cfg, prov, h)?;
    Ok(BipoOutcome {
        vector,
        epochs,
        steps: step,
        stop,
    })
}

/// Forwards cancellation only: the cache passes inside training report no progress of their
/// own (the steps' progress already covers them).
struct CancelOnly<'a>(&'a dyn ProgressSink);

impl ProgressSink for CancelOnly<'_> {
    fn report(&self, _progress: Progress) {}

    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    fn interrupt_probe(&self) -> Option<crate::jobs::InterruptProbe> {
        self.0.interrupt_probe()
    }
}

/// The dtype a trained vector is kept in: f32, or f64 for an f64 model.
pub fn master_dtype(model_dtype: DType) -> DType {
    if model_dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

fn mean_norm(vs: &[Vec<f32>]) -> f64 {
    vs.iter()
        .map(|v| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt())
        .sum::<f64>()
        / vs.len().max(1) as f64
}

fn make_vector(
    problem: &BipoProblem,
    vs: &[Vec<f32>],
    cfg: &BipoConfig,
    prov: &Provenance,
    hidden: usize,
) -> Result<SteeringVector> {
    let layers: BTreeMap<usize, Vec<f32>> = problem
        .layers()
        .iter()
        .copied()
        .zip(vs.iter().cloned())
        .collect();
    let mut meta = VectorMeta::new("bipo", prov.model.clone(), hidden);
    meta.objective = cfg.objective.to_string();
    meta.beta = Some(cfg.beta);
    meta.dataset = prov.dataset.clone();
    SteeringVector::new(layers, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let cfg = BipoConfig {
            lr: 1.0,
            warmup_steps: Some(4),
            ..Default::default()
        };
        let total = 20;
        assert!((cfg.lr_at(0, total) - 0.25).abs() < 1e-12);
        assert!((cfg.lr_at(3, total) - 1.0).abs() < 1e-12);
        assert!((cfg.lr_at(4, total) - 1.0).abs() < 1e-12);
        // halfway through the decay: 0.5
        assert!((cfg.lr_at(12, total) - 0.5).abs() < 1e-12);
        assert!(cfg.lr_at(19, total) < 0.02);
        let auto = BipoConfig::default();
        assert_eq!(auto.warmup_for(75), 7);
        assert_eq!(auto.warmup_for(5), 1);
        assert_eq!(auto.total_steps(100), 75);
    }
}
