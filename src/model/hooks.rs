//! Hook points and interventions on the residual stream (TransformerLens naming).
//!
//! A [`Hooks`] collection is handed to a forward pass: `Add` interventions write a scaled
//! vector into the stream at chosen positions, `Capture` interventions record the tensor
//! there. This module only describes and applies interventions; it must not run models.
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};

use super::interventions::{apply_edit, condition_gate, Condition, EditMode};
use super::{ModelError, Result};

/// A place in the forward pass where the residual stream (or a block's contribution to it)
/// can be read or written. Layers are 0-based block indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    /// The residual entering block `l` (`blocks.{l}.hook_resid_pre`).
    ResidPre(usize),
    /// The attention output of block `l`, before it is added to the residual.
    AttnOut(usize),
    /// The MLP output of block `l`, before it is added to the residual.
    MlpOut(usize),
    /// The residual leaving block `l` (`blocks.{l}.hook_resid_post`).
    ResidPost(usize),
    /// The router's logits of a mixture-of-experts block `l`, `[B, T, experts]`, before the
    /// softmax and the top-k choice (`blocks.{l}.mlp.hook_router_logits`). Vectors added here
    /// have one entry per expert.
    RouterLogits(usize),
}

impl HookPoint {
    /// The block index.
    pub fn layer(&self) -> usize {
        match *self {
            HookPoint::ResidPre(l)
            | HookPoint::AttnOut(l)
            | HookPoint::MlpOut(l)
            | HookPoint::ResidPost(l)
            | HookPoint::RouterLogits(l) => l,
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (l, name) = match *self {
            HookPoint::ResidPre(l) => (l, "hook_resid_pre"),
            HookPoint::AttnOut(l) => (l, "hook_attn_out"),
            HookPoint::MlpOut(l) => (l, "hook_mlp_out"),
            HookPoint::ResidPost(l) => (l, "hook_resid_post"),
            HookPoint::RouterLogits(l) => (l, "mlp.hook_router_logits"),
        };
        write!(f, "blocks.{l}.{name}")
    }
}

impl FromStr for HookPoint {
    type Err = ModelError;

    /// Parses `blocks.{l}.hook_resid_pre|hook_attn_out|hook_mlp_out|hook_resid_post` and
    /// `blocks.{l}.mlp.hook_router_logits`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            ModelError::BadHook(format!(
            "{s} (expected blocks.<layer>.hook_resid_pre|hook_attn_out|hook_mlp_out|hook_resid_post \
             or blocks.<layer>.mlp.hook_router_logits)"
        ))
        };
        let mut parts = s.trim().split('.');
        let (Some("blocks"), Some(layer), Some(first), rest, None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let name = match (first, rest) {
            (n, None) => n,
            ("mlp", Some("hook_router_logits")) => "mlp.hook_router_logits",
            _ => return Err(bad()),
        };
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let l: usize = layer.parse().map_err(|_| bad())?;
        match name {
            "hook_resid_pre" => Ok(HookPoint::ResidPre(l)),
            "hook_attn_out" => Ok(HookPoint::AttnOut(l)),
            "hook_mlp_out" => Ok(HookPoint::MlpOut(l)),
            "hook_resid_post" => Ok(HookPoint::ResidPost(l)),
            "mlp.hook_router_logits" => Ok(HookPoint::RouterLogits(l)),
            _ => Err(bad()),
        }
    }
}

/// Which token positions an `Add` intervention touches.
#[derive(Debug, Clone)]
pub enum Positions {
    /// Every position.
    All,
    /// Positions inside the prompt (generation: the prefill; a [`super::Batch`]: positions
    /// before its `prompt_lens`).
    PromptOnly,
    /// Positions after the prompt (generation: every decoded token).
    GeneratedOnly,
    /// Per-position weights over absolute positions: shape `[T]` (shared by the batch) or
    /// `[B, T]`; positions beyond the mask's length get weight 0.
    Mask(Tensor),
}

/// What happens at a hook point.
#[derive(Debug, Clone)]
pub enum Intervention {
    /// `x[b, t] += scale * w[b, t] * vector`, `vector` of shape `[hidden]` (may be a `Var`:
    /// gradients reach it).
    Add {
        /// The direction, shape `[hidden]`.
        vector: Tensor,
        /// Multiplier.
        scale: f64,
        /// Which positions.
        positions: Positions,
    },
    /// Record the tensor (after every `Add` at the same point), shape `[B, T, hidden]`.
    Capture,
    /// Any intervention mode ([`EditMode`]: add, norm-preserving add, ablate, clamp), optionally
    /// gated per sequence by a CAST [`Condition`] evaluated at the last prompt token.
    Edit {
        /// How the direction acts (see [`EditMode`] for the formulas).
        mode: EditMode,
        /// The direction, shape `[hidden]`.
        vector: Tensor,
        /// Multiplier (`clamp`: the projection's target value).
        scale: f64,
        /// Which positions.
        positions: Positions,
        /// Conditional steering: apply only to sequences whose prompt meets this condition.
        condition: Option<Condition>,
    },
}

/// The positional context of one forward call, used to turn [`Positions`] into weights.
#[derive(Debug, Clone)]
pub(crate) struct PosCtx {
    pub batch: usize,
    pub len: usize,
    /// Absolute position of the first token of this call (KV-cache offset).
    pub offset: usize,
    /// Per-sequence prompt lengths, when known.
    pub prompt_lens: Option<Vec<usize>>,
}

/// A set of interventions for one forward pass, and the tensors captured by it.
///
/// Several interventions may share a hook point: all `Add`s there are applied in insertion
/// order, then `Capture` records the result.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    entries: Vec<(HookPoint, Intervention)>,
    captured: BTreeMap<HookPoint, Tensor>,
    force_composed: bool,
    /// CAST gates `[B, 1, 1]` by entry index, computed on the call that holds the prompt's last
    /// token and reused by later calls of the same pass (KV-cache decoding, answer rows).
    gates: BTreeMap<usize, Tensor>,
}

impl Hooks {
    /// No interventions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `scale * vector` at `point` on `positions`. Width is checked when the forward runs.
    pub fn add(
        &mut self,
        point: HookPoint,
        vector: Tensor,
        scale: f64,
        positions: Positions,
    ) -> &mut Self {
        self.entries.push((
            point,
            Intervention::Add {
                vector,
                scale,
                positions,
            },
        ));
        self
    }

    /// Records the tensor at `point` during the next forward.
    pub fn capture(&mut self, point: HookPoint) -> &mut Self {
        self.entries.push((point, Intervention::Capture));
        self
    }

    /// Adds an arbitrary intervention.
    pub fn push(&mut self, point: HookPoint, intervention: Intervention) -> &mut Self {
        self.entries.push((point, intervention));
        self
    }

    /// The interventions in insertion order.
    pub fn interventions(&self) -> &[(HookPoint, Intervention)] {
        &self.entries
    }

    /// The tensor captured at `point` by the last forward, `[B, T, hidden]` (router logits:
    /// `[B, T, experts]`) in the model dtype.
    pub fn captured(&self, point: HookPoint) -> Option<&Tensor> {
        self.captured.get(&point)
    }

    /// Removes and returns the tensor captured at `point`.
    pub fn take_captured(&mut self, point: HookPoint) -> Option<Tensor> {
        self.captured.remove(&point)
    }

    /// All captured tensors.
    pub fn all_captured(&self) -> &BTreeMap<HookPoint, Tensor> {
        &self.captured
    }

    /// Forgets captured tensors (interventions stay).
    pub fn clear_captured(&mut self) {
        self.captured.clear();
    }

    /// Forces the reference ops (plain differentiable candle ops, `model::arch::ops`) for the
    /// whole forward, even when no vector needs a gradient. By default the engine uses the
    /// speed layer's kernels (see `model::fast::Exec`).
    pub fn set_force_composed(&mut self, on: bool) -> &mut Self {
        self.force_composed = on;
        self
    }

    /// True when [`Hooks::set_force_composed`] asked for the composed ops.
    pub(crate) fn forces_composed(&self) -> bool {
        self.force_composed
    }

    /// True when a forward with these hooks must use differentiable ops.
    pub(crate) fn needs_grad(&self) -> bool {
        self.force_composed
            || self.entries.iter().any(|(_, i)| match i {
                Intervention::Add { vector, .. } | Intervention::Edit { vector, .. } => {
                    vector.track_op()
                }
                Intervention::Capture => false,
            })
    }

    /// A copy with the same `Add`/`Edit` interventions, no captures and no CAST gates (used by
    /// generation and scoring).
    pub(crate) fn adds_only(&self) -> Hooks {
        Hooks {
            entries: self
                .entries
                .iter()
                .filter(|(_, i)| !matches!(i, Intervention::Capture))
                .cloned()
                .collect(),
            captured: BTreeMap::new(),
            force_composed: self.force_composed,
            gates: BTreeMap::new(),
        }
    }

    /// Forgets the CAST gates (the next forward evaluates conditions afresh).
    pub fn clear_gates(&mut self) {
        self.gates.clear();
    }

    /// Checks every hook against a model of `n_layers` blocks and width `hidden` (router
    /// hooks: see [`Hooks::validate_with_router`]; here any router hook is refused).
    #[allow(dead_code)] // the engine validates with its router widths
    pub(crate) fn validate(&self, n_layers: usize, hidden: usize) -> Result<()> {
        self.validate_with_router(n_layers, hidden, &|_| None)
    }

    /// [`Hooks::validate`] for a model whose block `l` has a router of `router_width(l)`
    /// experts (`None`: no router there, and a router hook at `l` is an error); vectors at a
    /// router hook must have that width.
    pub(crate) fn validate_with_router(
        &self,
        n_layers: usize,
        hidden: usize,
        router_width: &dyn Fn(usize) -> Option<usize>,
    ) -> Result<()> {
        for (p, i) in &self.entries {
            if p.layer() >= n_layers {
                return Err(ModelError::BadHook(format!(
                    "{p}: the model has {n_layers} layers"
                )));
            }
            let width = match p {
                HookPoint::RouterLogits(l) => router_width(*l).ok_or_else(|| {
                    ModelError::BadHook(format!("{p}: block {l} has no mixture-of-experts router"))
                })?,
                _ => hidden,
            };
            let mut vectors = Vec::new();
            match i {
                Intervention::Add { vector, .. } => vectors.push(vector),
                Intervention::Edit {
                    vector, condition, ..
                } => {
                    vectors.push(vector);
                    if let Some(c) = condition {
                        if !(c.threshold.is_finite() && (-1.0..=1.0).contains(&c.threshold)) {
                            return Err(ModelError::BadHook(format!(
                                "{p}: CAST threshold {} is not a cosine in [-1, 1]",
                                c.threshold
                            )));
                        }
                        vectors.push(&c.vector);
                    }
                }
                Intervention::Capture => {}
            }
            for vector in vectors {
                let dims = vector.dims();
                if dims.len() != 1 || dims[0] != width {
                    return Err(ModelError::WidthMismatch {
                        what: format!("vector at {p} (shape {dims:?})"),
                        expected: width,
                        got: dims.last().copied().unwrap_or(0),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks that no hook lies before `point_order` (used by `forward_from`).
    pub(crate) fn check_not_before(&self, start_layer: usize) -> Result<()> {
        for (p, _) in &self.entries {
            let ok = p.layer() >= start_layer
                || (start_layer > 0 && *p == HookPoint::ResidPost(start_layer - 1));
            if !ok {
                return Err(ModelError::BadHook(format!(
                    "{p}: lies before block {start_layer}, where this forward starts"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn has_point(&self, point: HookPoint) -> bool {
        self.entries.iter().any(|(p, _)| *p == point)
    }

    /// Applies every intervention at `point` to `x` (`[B, T, hidden]`).
    pub(crate) fn apply(
        &mut self,
        point: HookPoint,
        mut x: Tensor,
        ctx: &PosCtx,
    ) -> Result<Tensor> {
        if !self.has_point(point) {
            return Ok(x);
        }
        let mut capture = false;
        // CAST conditions read the residual as it enters this point, before any edit here.
        let x_in = x.clone();
        for (k, (p, i)) in self.entries.iter().enumerate() {
            if *p != point {
                continue;
            }
            match i {
                Intervention::Edit {
                    mode,
                    vector,
                    scale,
                    positions,
                    condition,
                } => {
                    let w = position_weights(positions, ctx, x.device(), x.dtype(), point)?;
                    let w = match condition {
                        None => w,
                        Some(c) => {
                            if let Some(last) = last_prompt_rows(ctx) {
                                let g = condition_gate(&x_in, c, &last)?;
                                self.gates.insert(k, g);
                            }
                            let g = self.gates.get(&k).ok_or_else(|| {
                                ModelError::BadHook(format!(
                                    "{point}: a conditional (CAST) edit needs the prompt's last token in the first forward call"
                                ))
                            })?;
                            // Rows repeat the gated sequences in order when a call scores
                            // several continuations of each prompt (rows r and r + B share one).
                            let gb = g.dim(0)?;
                            if gb == 0 || !ctx.batch.is_multiple_of(gb) {
                                return Err(ModelError::BadHook(format!(
                                    "{point}: CAST gates for {gb} sequences, this call has {}",
                                    ctx.batch
                                )));
                            }
                            let g =
                                Tensor::cat(&vec![g; ctx.batch / gb], 0)?.to_dtype(x.dtype())?;
                            Some(match w {
                                None => g.broadcast_as((ctx.batch, ctx.len, 1))?.contiguous()?,
                                Some(w) => w.broadcast_mul(&g)?,
                            })
                        }
                    };
                    x = apply_edit(&x, *mode, vector, *scale, w.as_ref())?;
                }
                Intervention::Capture => capture = true,
                Intervention::Add {
                    vector,
                    scale,
                    positions,
                } => {
                    let delta = (vector.to_dtype(x.dtype())? * *scale)?;
                    x = match position_weights(positions, ctx, x.device(), x.dtype(), point)? {
                        None => x.broadcast_add(&delta)?,
                        Some(w) => (x + w.broadcast_mul(&delta)?)?,
                    };
                }
            }
        }
        if capture {
            self.captured.insert(point, x.clone());
        }
        Ok(x)
    }
}

/// Per row, the index within this call of the prompt's last token, when every row's lies in
/// this call (its prompt length, or the call's length when none is known and it starts at 0).
fn last_prompt_rows(ctx: &PosCtx) -> Option<Vec<usize>> {
    let lens = match &ctx.prompt_lens {
        Some(l) => l.clone(),
        None if ctx.offset == 0 => vec![ctx.len; ctx.batch],
        None => return None,
    };
    lens.iter()
        .map(|&pl| {
            let t = pl.checked_sub(1)?.checked_sub(ctx.offset)?;
            (t < ctx.len).then_some(t)
        })
        .collect()
}

/// `[B, T, 1]` weights for `positions`, or `None` for every position.
fn position_weights(
    positions: &Positions,
    ctx: &PosCtx,
    device: &Device,
    dtype: DType,
    point: HookPoint,
) -> Result<Option<Tensor>> {
    let (b, t) = (ctx.batch, ctx.len);
    let prompt_based = |prompt: bool| -> Result<Tensor> {
        let lens = ctx.prompt_lens.as_ref().ok_or_else(|| {
            ModelError::BadHook(format!(
                "{point}: prompt/generated positions need prompt lengths (Batch::with_prompt_lens)"
            ))
        })?;
        let mut w = Vec::with_capacity(b * t);
        for &pl in lens.iter() {
            for i in 0..t {
                let in_prompt = ctx.offset + i < pl;
                w.push(if in_prompt == prompt { 1f32 } else { 0f32 });
            }
        }
        Ok(Tensor::from_vec(w, (b, t, 1), device)?)
    };
    let w = match positions {
        Positions::All => return Ok(None),
        Positions::PromptOnly => prompt_based(true)?,
        Positions::GeneratedOnly => prompt_based(false)?,
        Positions::Mask(m) => {
            let m = m.to_dtype(DType::F32)?.to_device(device)?;
            let m = match m.dims() {
                [n] => m.reshape((1, *n))?.broadcast_as((b, *n))?.contiguous()?,
                [mb, _] if *mb == b => m,
                d => {
                    return Err(ModelError::BadHook(format!(
                        "{point}: mask shape {d:?} fits neither [T] nor [{b}, T]"
                    )))
                }
            };
            let n = m.dim(1)?;
            let start = ctx.offset.min(n);
            let avail = (n - start).min(t);
            let mut parts = Vec::new();
            if avail > 0 {
                parts.push(m.narrow(1, start, avail)?);
            }
            if avail < t {
                parts.push(Tensor::zeros((b, t - avail), DType::F32, device)?);
            }
            Tensor::cat(&parts, 1)?.reshape((b, t, 1))?
        }
    };
    Ok(Some(w.to_dtype(dtype)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            HookPoint::ResidPre(0),
            HookPoint::AttnOut(3),
            HookPoint::MlpOut(12),
            HookPoint::ResidPost(5),
            HookPoint::RouterLogits(7),
        ] {
            let s = p.to_string();
            assert_eq!(s.parse::<HookPoint>().unwrap(), p);
        }
        assert_eq!(
            HookPoint::ResidPost(5).to_string(),
            "blocks.5.hook_resid_post"
        );
        assert_eq!(
            "blocks.2.hook_attn_out".parse::<HookPoint>().unwrap(),
            HookPoint::AttnOut(2)
        );
    }

    #[test]
    fn bad_names_are_rejected() {
        for s in [
            "blocks.5.hook_resid_mid",
            "blocks.-1.hook_resid_post",
            "blocks.x.hook_resid_post",
            "block.5.hook_resid_post",
            "blocks.5",
            "blocks.5.hook_resid_post.extra",
            "",
            "blocks..hook_resid_post",
            "blocks.1.mlp.hook_resid_post",
            "blocks.1.attn.hook_router_logits",
            "blocks.1.mlp.hook_router_logits.x",
        ] {
            match s.parse::<HookPoint>() {
                Err(ModelError::BadHook(m)) => assert!(m.contains(s), "{m}"),
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn add_respects_positions() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 2), DType::F32, &dev).unwrap();
        let v = Tensor::new(&[1f32, 2.0], &dev).unwrap();
        let ctx = PosCtx {
            batch: 2,
            len: 3,
            offset: 0,
            prompt_lens: Some(vec![1, 2]),
        };
        let mut h = Hooks::new();
        h.add(
            HookPoint::ResidPost(0),
            v.clone(),
            2.0,
            Positions::GeneratedOnly,
        );
        let y = h.apply(HookPoint::ResidPost(0), x.clone(), &ctx).unwrap();
        let y: Vec<Vec<Vec<f32>>> = y.to_vec3().unwrap();
        assert_eq!(y[0], vec![vec![0., 0.], vec![2., 4.], vec![2., 4.]]);
        assert_eq!(y[1], vec![vec![0., 0.], vec![0., 0.], vec![2., 4.]]);

        // A [T] mask read at a KV-cache offset; positions past its end get 0.
        let mut h = Hooks::new();
        let m = Tensor::new(&[0f32, 1.0, 0.5], &dev).unwrap();
        h.add(HookPoint::ResidPost(0), v, 1.0, Positions::Mask(m))
            .capture(HookPoint::ResidPost(0));
        let ctx = PosCtx {
            batch: 2,
            len: 3,
            offset: 1,
            prompt_lens: None,
        };
        h.apply(HookPoint::ResidPost(0), x, &ctx).unwrap();
        let y: Vec<Vec<Vec<f32>>> = h
            .captured(HookPoint::ResidPost(0))
            .unwrap()
            .to_vec3()
            .unwrap();
        assert_eq!(y[1], vec![vec![1., 2.], vec![0.5, 1.], vec![0., 0.]]);
    }

    #[test]
    fn prompt_positions_need_lengths() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 2), DType::F32, &dev).unwrap();
        let mut h = Hooks::new();
        h.add(
            HookPoint::ResidPre(0),
            Tensor::new(&[1f32, 1.0], &dev).unwrap(),
            1.0,
            Positions::PromptOnly,
        );
        let ctx = PosCtx {
            batch: 1,
            len: 2,
            offset: 0,
            prompt_lens: None,
        };
        assert!(matches!(
            h.apply(HookPoint::ResidPre(0), x, &ctx),
            Err(ModelError::BadHook(_))
        ));
    }

    #[test]
    fn validate_checks_width_and_layer() {
        let dev = Device::Cpu;
        let mut h = Hooks::new();
        h.add(
            HookPoint::ResidPost(1),
            Tensor::zeros(5, DType::F32, &dev).unwrap(),
            1.0,
            Positions::All,
        );
        assert!(matches!(
            h.validate(4, 8),
            Err(ModelError::WidthMismatch {
                expected: 8,
                got: 5,
                ..
            })
        ));
        assert!(h.validate(4, 5).is_ok());
        assert!(matches!(h.validate(1, 5), Err(ModelError::BadHook(_))));
    }

    #[test]
    fn cast_gate_is_decided_on_the_prompt_and_kept_while_decoding() {
        let dev = Device::Cpu;
        // Row 0's last prompt token (t = 1) points along the condition (0, 1); row 1's (t = 0)
        // points away from it.
        let x = Tensor::new(&[[[1f32, 0.0], [0.0, 2.0]], [[2.0, 0.0], [5.0, 5.0]]], &dev).unwrap();
        let mut h = Hooks::new();
        h.push(
            HookPoint::ResidPost(0),
            Intervention::Edit {
                mode: EditMode::Add,
                vector: Tensor::new(&[10f32, 0.0], &dev).unwrap(),
                scale: 1.0,
                positions: Positions::All,
                condition: Some(Condition {
                    vector: Tensor::new(&[0f32, 1.0], &dev).unwrap(),
                    threshold: 0.5,
                }),
            },
        );
        let ctx = PosCtx {
            batch: 2,
            len: 2,
            offset: 0,
            prompt_lens: Some(vec![2, 1]),
        };
        let y: Vec<Vec<Vec<f32>>> = h
            .apply(HookPoint::ResidPost(0), x, &ctx)
            .unwrap()
            .to_vec3()
            .unwrap();
        assert_eq!(y[0], vec![vec![11., 0.], vec![10., 2.]]);
        assert_eq!(y[1], vec![vec![2., 0.], vec![5., 5.]]);
        // A decoding step (offset past both prompts) reuses the gate; four rows = two
        // continuations per prompt.
        let step = Tensor::zeros((4, 1, 2), DType::F32, &dev).unwrap();
        let ctx = PosCtx {
            batch: 4,
            len: 1,
            offset: 2,
            prompt_lens: Some(vec![2, 1, 2, 1]),
        };
        let y: Vec<Vec<Vec<f32>>> = h
            .apply(HookPoint::ResidPost(0), step, &ctx)
            .unwrap()
            .to_vec3()
            .unwrap();
        let firsts: Vec<f32> = y.iter().map(|r| r[0][0]).collect();
        assert_eq!(firsts, vec![10., 0., 10., 0.]);
        // Without a gate from a prompt call, a conditional edit is an error, not a guess.
        let mut fresh = h.adds_only();
        let step = Tensor::zeros((1, 1, 2), DType::F32, &dev).unwrap();
        let ctx = PosCtx {
            batch: 1,
            len: 1,
            offset: 5,
            prompt_lens: Some(vec![2]),
        };
        assert!(fresh.apply(HookPoint::ResidPost(0), step, &ctx).is_err());
    }
}
