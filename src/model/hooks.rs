//! Hook points and interventions on the residual stream (TransformerLens naming).
//!
//! A [`Hooks`] collection is handed to a forward pass: `Add` interventions write a scaled
//! vector into the stream at chosen positions, `Capture` interventions record the tensor
//! there. This module only describes and applies interventions; it must not run models.
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};

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
}

impl HookPoint {
    /// The block index.
    pub fn layer(&self) -> usize {
        match *self {
            HookPoint::ResidPre(l)
            | HookPoint::AttnOut(l)
            | HookPoint::MlpOut(l)
            | HookPoint::ResidPost(l) => l,
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
        };
        write!(f, "blocks.{l}.{name}")
    }
}

impl FromStr for HookPoint {
    type Err = ModelError;

    /// Parses `blocks.{l}.hook_resid_pre|hook_attn_out|hook_mlp_out|hook_resid_post`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            ModelError::BadHook(format!(
            "{s} (expected blocks.<layer>.hook_resid_pre|hook_attn_out|hook_mlp_out|hook_resid_post)"
        ))
        };
        let mut parts = s.trim().split('.');
        let (Some("blocks"), Some(layer), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
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

    /// The tensor captured at `point` by the last forward, `[B, T, hidden]` in the model dtype.
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
            || self
                .entries
                .iter()
                .any(|(_, i)| matches!(i, Intervention::Add { vector, .. } if vector.track_op()))
    }

    /// A copy with the same `Add` interventions and no captures (used by generation).
    pub(crate) fn adds_only(&self) -> Hooks {
        Hooks {
            entries: self
                .entries
                .iter()
                .filter(|(_, i)| matches!(i, Intervention::Add { .. }))
                .cloned()
                .collect(),
            captured: BTreeMap::new(),
            force_composed: self.force_composed,
        }
    }

    /// Checks every hook against a model of `n_layers` blocks and width `hidden`.
    pub(crate) fn validate(&self, n_layers: usize, hidden: usize) -> Result<()> {
        for (p, i) in &self.entries {
            if p.layer() >= n_layers {
                return Err(ModelError::BadHook(format!(
                    "{p}: the model has {n_layers} layers"
                )));
            }
            if let Intervention::Add { vector, .. } = i {
                let dims = vector.dims();
                if dims.len() != 1 || dims[0] != hidden {
                    return Err(ModelError::WidthMismatch {
                        what: format!("vector at {p} (shape {dims:?})"),
                        expected: hidden,
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
        for (p, i) in &self.entries {
            if *p != point {
                continue;
            }
            match i {
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
}
