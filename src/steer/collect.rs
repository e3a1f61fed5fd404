//! Reading the model for steering: residual activations at chosen token positions (for CAA and
//! PCA), and log-probabilities of whole responses after a prompt (for behaviour scores and the
//! BiPO trainer). Inputs are token ids; chat formatting and tokenization happen in the caller.
//! Each pass batches sequences of similar length together ([`BatchPlan::by_length`]) and returns
//! results in the caller's order. No training or statistics here.
use super::error::{Result, SteerError};
use super::vector::SteeringVector;
use crate::data::batching::{BatchBudget, BatchPlan};
use crate::jobs::{Progress, ProgressSink};
use crate::model::{Batch, Condition, EditMode, HookPoint, Hooks, Intervention, Model, Positions};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;

/// A prompt and a response, both as token ids (prompt already chat-formatted, with the
/// assistant header; response followed by the end-of-turn token where appropriate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// Response ids (scored / steered part).
    pub response: Vec<u32>,
}

impl Completion {
    /// Prompt followed by response.
    pub fn full(&self) -> Vec<u32> {
        let mut v = self.prompt.clone();
        v.extend_from_slice(&self.response);
        v
    }

    /// Total length.
    pub fn len(&self) -> usize {
        self.prompt.len() + self.response.len()
    }

    /// True when both parts are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Padding id used in batches (any valid id: padded keys are masked, padded outputs ignored).
pub(crate) const PAD: u32 = 0;

/// Builds a right-padded batch of completions with their prompt lengths set. Every completion
/// needs a non-empty prompt and response.
pub fn completion_batch(items: &[&Completion], device: &Device) -> Result<Batch> {
    for (i, c) in items.iter().enumerate() {
        if c.prompt.is_empty() || c.response.is_empty() {
            return Err(SteerError::Invalid(format!(
                "completion {i}: prompt ({} tokens) and response ({} tokens) must both be non-empty",
                c.prompt.len(),
                c.response.len()
            )));
        }
    }
    let seqs: Vec<Vec<u32>> = items.iter().map(|c| c.full()).collect();
    let batch = Batch::from_sequences(&seqs, PAD, device)?;
    Ok(batch.with_prompt_lens(items.iter().map(|c| c.prompt.len()).collect())?)
}

/// Summed log-probability of each response given its prompt, from final-norm hidden states
/// `hidden` `[B, T, H]` of `completion_batch(items)`: `Σ_j log p(response_j | prefix)`.
/// Only the response positions go through the LM head. Differentiable; returns `[B]` (f32, or
/// f64 for an f64 model).
pub fn response_logprobs(model: &Model, hidden: &Tensor, items: &[&Completion]) -> Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    if b != items.len() {
        return Err(SteerError::Invalid(format!(
            "{b} hidden rows for {} completions",
            items.len()
        )));
    }
    let device = hidden.device();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut seg = vec![0f32; 0];
    let n_total: usize = items.iter().map(|c| c.response.len()).sum();
    seg.resize(b * n_total, 0.0);
    let mut k = 0;
    for (i, c) in items.iter().enumerate() {
        let p = c.prompt.len();
        for (j, &tok) in c.response.iter().enumerate() {
            // token at absolute position p + j is predicted from position p + j - 1
            rows.push((i * t + p + j - 1) as u32);
            targets.push(tok);
            seg[i * n_total + k] = 1.0;
            k += 1;
        }
    }
    let rows = Tensor::from_vec(rows, n_total, device)?;
    let sel = hidden.reshape((b * t, h))?.index_select(&rows, 0)?;
    let targets = Tensor::from_vec(targets, n_total, device)?;
    let picked = model.target_logprobs(&sel, &targets)?.unsqueeze(1)?; // [N, 1]
    let seg = Tensor::from_vec(seg, (b, n_total), device)?.to_dtype(picked.dtype())?;
    Ok(seg.matmul(&picked)?.squeeze(1)?)
}

/// Hooks adding `scale × v` at `blocks.L.hook_resid_post` for every layer of `v`, at the
/// positions its metadata names (`all`, `prompt`, `generated`). Checks width and layers.
pub fn steering_hooks(model: &Model, v: &SteeringVector, scale: f64) -> Result<Hooks> {
    let mut hooks = Hooks::new();
    add_steering(&mut hooks, model, v, scale)?;
    Ok(hooks)
}

/// Adds the interventions of [`steering_hooks`] to an existing set (to combine vectors).
pub fn add_steering(
    hooks: &mut Hooks,
    model: &Model,
    v: &SteeringVector,
    scale: f64,
) -> Result<()> {
    v.check_model(model.hidden_size(), model.n_layers())?;
    let positions = positions_from_meta(&v.meta.positions).ok_or_else(|| {
        SteerError::Invalid(format!(
            "{}: unknown positions `{}`",
            v.display_name(),
            v.meta.positions
        ))
    })?;
    let mode: EditMode = v.meta.intervention.parse().map_err(|e| {
        SteerError::Invalid(format!("{}: steerlab.intervention: {e}", v.display_name()))
    })?;
    for (l, d) in &v.layers {
        let t = Tensor::from_slice(d, d.len(), model.device())?.to_dtype(model.dtype())?;
        push_edit(
            hooks,
            HookPoint::ResidPost(*l),
            t,
            scale,
            positions.clone(),
            mode,
            None,
        );
    }
    Ok(())
}

/// Adds `v` at its layers and positions with an explicit intervention `mode` (overriding its
/// metadata) and an optional CAST condition: `(condition vector, cosine threshold)`; the
/// condition vector needs a direction at each of `v`'s layers, where it is evaluated.
pub fn add_steering_mode(
    hooks: &mut Hooks,
    model: &Model,
    v: &SteeringVector,
    scale: f64,
    mode: EditMode,
    condition: Option<(&SteeringVector, f64)>,
) -> Result<()> {
    v.check_model(model.hidden_size(), model.n_layers())?;
    let positions = positions_from_meta(&v.meta.positions).ok_or_else(|| {
        SteerError::Invalid(format!(
            "{}: unknown positions `{}`",
            v.display_name(),
            v.meta.positions
        ))
    })?;
    if let Some((c, th)) = condition {
        c.check_width(model.hidden_size())?;
        if !(th.is_finite() && (-1.0..=1.0).contains(&th)) {
            return Err(SteerError::Invalid(format!(
                "CAST threshold {th}: must be a cosine in [-1, 1]"
            )));
        }
        if let Some(l) = v.layers.keys().find(|l| !c.layers.contains_key(l)) {
            return Err(SteerError::Invalid(format!(
                "{}: the condition vector has no direction at layer {l}, where {} steers",
                c.display_name(),
                v.display_name()
            )));
        }
    }
    for (l, d) in &v.layers {
        let t = Tensor::from_slice(d, d.len(), model.device())?.to_dtype(model.dtype())?;
        let cond = match condition {
            None => None,
            Some((c, th)) => {
                let cd = &c.layers[l];
                Some(Condition {
                    vector: Tensor::from_slice(cd, cd.len(), model.device())?
                        .to_dtype(model.dtype())?,
                    threshold: th,
                })
            }
        };
        push_edit(
            hooks,
            HookPoint::ResidPost(*l),
            t,
            scale,
            positions.clone(),
            mode,
            cond,
        );
    }
    Ok(())
}

/// Plain unconditional addition stays an `Add` (the gradient and llama.cpp path); every other
/// case is an `Edit`.
fn push_edit(
    hooks: &mut Hooks,
    point: HookPoint,
    vector: Tensor,
    scale: f64,
    positions: Positions,
    mode: EditMode,
    condition: Option<Condition>,
) {
    if mode == EditMode::Add && condition.is_none() {
        hooks.add(point, vector, scale, positions);
    } else {
        hooks.push(
            point,
            Intervention::Edit {
                mode,
                vector,
                scale,
                positions,
                condition,
            },
        );
    }
}

/// Maps the `steerlab.positions` metadata value to engine positions.
pub fn positions_from_meta(s: &str) -> Option<Positions> {
    match s {
        "all" => Some(Positions::All),
        "prompt" => Some(Positions::PromptOnly),
        "generated" => Some(Positions::GeneratedOnly),
        _ => None,
    }
}

/// Summed response log-probabilities of every completion under `hooks` (no gradients), in
/// input order; up to `batch_size` completions of similar length per forward pass.
pub fn score_completions(
    model: &Model,
    items: &[Completion],
    hooks: &Hooks,
    batch_size: usize,
    progress: &dyn ProgressSink,
) -> Result<Vec<f64>> {
    let lens: Vec<usize> = items.iter().map(Completion::len).collect();
    let plan = BatchPlan::by_length(&lens, BatchBudget::rows(batch_size));
    let mut per_batch = Vec::with_capacity(plan.len());
    let mut done = 0usize;
    for idx in plan.batches() {
        if progress.is_cancelled() {
            return Err(SteerError::Invalid("cancelled".into()));
        }
        let refs: Vec<&Completion> = idx.iter().map(|&i| &items[i]).collect();
        let batch = completion_batch(&refs, model.device())?;
        let mut h = hooks.clone();
        let hidden = model.forward_hidden(&batch, &mut h)?;
        let lp = response_logprobs(model, &hidden, &refs)?;
        per_batch.push(lp.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        done += idx.len();
        progress.report(Progress::new(
            "scoring",
            done as u64,
            Some(items.len() as u64),
        ));
    }
    plan.scatter(per_batch)
        .map_err(|e| SteerError::Invalid(format!("scoring: {e}")))
}

/// Residual activations `blocks.L.hook_resid_post` of each sequence at one position
/// (`positions[i]` in sequence `i`), for every layer in `layers`: layer → one row per sequence,
/// in input order; up to `batch_size` sequences of similar length per forward pass.
pub fn activations_at(
    model: &Model,
    seqs: &[Vec<u32>],
    positions: &[usize],
    layers: &[usize],
    batch_size: usize,
    progress: &dyn ProgressSink,
) -> Result<BTreeMap<usize, Vec<Vec<f32>>>> {
    if seqs.len() != positions.len() {
        return Err(SteerError::Invalid(format!(
            "{} sequences but {} positions",
            seqs.len(),
            positions.len()
        )));
    }
    for (i, (s, &p)) in seqs.iter().zip(positions).enumerate() {
        if p >= s.len() {
            return Err(SteerError::Invalid(format!(
                "sequence {i}: position {p} is past its {} tokens",
                s.len()
            )));
        }
    }
    for &l in layers {
        if l >= model.n_layers() {
            return Err(SteerError::LayerOutOfRange {
                what: "--layers".into(),
                layer: l,
                n_layers: model.n_layers(),
            });
        }
    }
    let mut layers = layers.to_vec();
    layers.sort_unstable();
    layers.dedup();
    let layers = &layers[..];
    let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
    let plan = BatchPlan::by_length(&lens, BatchBudget::rows(batch_size));
    // Per batch: for each sequence of the batch, its row at every layer (in `layers` order).
    let mut per_batch: Vec<Vec<Vec<Vec<f32>>>> = Vec::with_capacity(plan.len());
    let total = seqs.len() as u64;
    let mut done = 0usize;
    for idx in plan.batches() {
        if progress.is_cancelled() {
            return Err(SteerError::Invalid("cancelled".into()));
        }
        let chunk: Vec<Vec<u32>> = idx.iter().map(|&i| seqs[i].clone()).collect();
        let batch = Batch::from_sequences(&chunk, PAD, model.device())?;
        // Only blocks 0..=max(layers) run: the residual entering block max+1 is the output of
        // block max; lower layers are captured on the way.
        let top = layers.iter().copied().max().unwrap_or(0);
        let mut hooks = Hooks::new();
        for &l in layers.iter().filter(|&&l| l < top) {
            hooks.capture(HookPoint::ResidPost(l));
        }
        let last = model.forward_to(top + 1, &batch, &mut hooks)?;
        let mut rows: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(layers.len()); idx.len()];
        for &l in layers {
            let x = if l == top {
                last.to_dtype(DType::F32)?
            } else {
                hooks
                    .captured(HookPoint::ResidPost(l))
                    .ok_or_else(|| SteerError::Invalid(format!("layer {l} was not captured")))?
                    .to_dtype(DType::F32)?
            };
            for (r, &i) in idx.iter().enumerate() {
                rows[r].push(x.get(r)?.get(positions[i])?.to_vec1::<f32>()?);
            }
        }
        per_batch.push(rows);
        done += idx.len();
        progress.report(Progress::new("activations", done as u64, Some(total)));
    }
    let rows = plan
        .scatter(per_batch)
        .map_err(|e| SteerError::Invalid(format!("activations: {e}")))?;
    let mut out: BTreeMap<usize, Vec<Vec<f32>>> = layers
        .iter()
        .map(|&l| (l, Vec::with_capacity(seqs.len())))
        .collect();
    for per_layer in rows {
        for (&l, row) in layers.iter().zip(per_layer) {
            out.get_mut(&l).expect("every layer has an entry").push(row);
        }
    }
    Ok(out)
}

/// A contrast pair for CAA/PCA: two token sequences and the position to read in each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contrast {
    /// Behaviour-matching (positive) sequence.
    pub positive: Vec<u32>,
    /// Where to read it (CAA: the answer-letter token; PCA: the last token).
    pub positive_at: usize,
    /// Non-matching (negative) sequence.
    pub negative: Vec<u32>,
    /// Where to read it.
    pub negative_at: usize,
}

/// Activations of the positives and of the negatives at each layer:
/// layer → (positive rows, negative rows), row `i` from contrast `i`.
#[allow(clippy::type_complexity)]
pub fn contrast_activations(
    model: &Model,
    items: &[Contrast],
    layers: &[usize],
    batch_size: usize,
    progress: &dyn ProgressSink,
) -> Result<BTreeMap<usize, (Vec<Vec<f32>>, Vec<Vec<f32>>)>> {
    if items.is_empty() {
        return Err(SteerError::Invalid("no contrast pairs".into()));
    }
    let mut seqs = Vec::with_capacity(items.len() * 2);
    let mut pos = Vec::with_capacity(items.len() * 2);
    for c in items {
        seqs.push(c.positive.clone());
        pos.push(c.positive_at);
        seqs.push(c.negative.clone());
        pos.push(c.negative_at);
    }
    let acts = activations_at(model, &seqs, &pos, layers, batch_size, progress)?;
    Ok(acts
        .into_iter()
        .map(|(l, rows)| {
            let mut p = Vec::with_capacity(items.len());
            let mut n = Vec::with_capacity(items.len());
            for (i, r) in rows.into_iter().enumerate() {
                if i % 2 == 0 {
                    p.push(r)
                } else {
                    n.push(r)
                }
            }
            (l, (p, n))
        })
        .collect())
}
