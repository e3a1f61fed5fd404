//! The decoder block shared by every supported family (pre-norm attention + SwiGLU MLP), its
//! weight loader helpers, and the KV cache. The architecture files (`llama.rs`, `qwen2.rs`,
//! `qwen3.rs`) decide which weights exist; this file only runs them and calls the hooks.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Shape, Tensor};
use candle_nn::VarBuilder;

use super::cpu_infer;
use super::fused::{self, GradOps};
use super::hooks::{HookPoint, Hooks, PosCtx};
use super::ops::{attention, rope, Linear, Mlp, OpMode, RmsNorm};
use super::{ModelError, Result};

/// Named weight access with errors that name the file and tensor.
pub(crate) struct Weights<'a> {
    vb: VarBuilder<'a>,
    /// The file each tensor lives in (sharded checkpoints), else `default_source`.
    sources: HashMap<String, PathBuf>,
    default_source: PathBuf,
}

impl<'a> Weights<'a> {
    pub fn new(
        vb: VarBuilder<'a>,
        sources: HashMap<String, PathBuf>,
        default_source: PathBuf,
    ) -> Self {
        Self {
            vb,
            sources,
            default_source,
        }
    }

    fn source(&self, name: &str) -> &Path {
        self.sources
            .get(name)
            .map(|p| p.as_path())
            .unwrap_or(&self.default_source)
    }

    /// A tensor of the given shape, converted to the model dtype.
    pub fn get<S: Into<Shape>>(&self, shape: S, name: &str) -> Result<Tensor> {
        let shape: Shape = shape.into();
        if !self.vb.contains_tensor(name) {
            return Err(ModelError::BadFile {
                path: self.source(name).to_path_buf(),
                field: name.to_string(),
                message: format!("tensor missing (expected shape {:?})", shape.dims()),
            });
        }
        self.vb.get(shape, name).map_err(|e| ModelError::BadFile {
            path: self.source(name).to_path_buf(),
            field: name.to_string(),
            message: e.to_string(),
        })
    }

    /// A linear layer `prefix.weight` `[out, inp]` (+ `prefix.bias` `[out]` if `bias`).
    pub fn linear(&self, prefix: &str, inp: usize, out: usize, bias: bool) -> Result<Linear> {
        let weight = self.get((out, inp), &format!("{prefix}.weight"))?;
        let bias = if bias {
            Some(self.get(out, &format!("{prefix}.bias"))?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
    }

    /// An RMSNorm `prefix.weight` `[dim]`.
    pub fn rms_norm(&self, prefix: &str, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: self.get(dim, &format!("{prefix}.weight"))?,
            eps,
        })
    }
}

/// Self-attention with rotary embeddings and grouped-query heads.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// Per-head RMSNorm on queries / keys before RoPE (Qwen3).
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// One layer's cached keys and values, `[B, Hkv, S, D]`.
pub(crate) type LayerCache = Option<(Tensor, Tensor)>;

/// Per-call tensors shared by all blocks.
pub(crate) struct Step<'a> {
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    pub mask: Option<&'a Tensor>,
    pub mode: OpMode,
    /// With [`OpMode::FusedGrad`]: which gradient ops ([`GradOps::FusedAttention`] and
    /// [`GradOps::Block`] replace more of the graph than [`GradOps::Fused`]).
    pub grad_ops: GradOps,
    pub pos: &'a PosCtx,
}

impl Attention {
    pub fn forward(
        &self,
        x: &Tensor,
        step: &Step,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let d = self.head_dim;
        let heads = |lin: &Linear, n: usize| -> Result<Tensor> {
            Ok(lin
                .forward_mode(x, step.mode)?
                .reshape((b, t, n, d))?
                .transpose(1, 2)?)
        };
        let mut q = heads(&self.q, self.n_heads)?;
        let mut k = heads(&self.k, self.n_kv_heads)?;
        let mut v = heads(&self.v, self.n_kv_heads)?;
        super::profile::mark(x.device(), "attn: q k v projections");
        if let Some(n) = &self.q_norm {
            q = n.forward(&q, step.mode)?;
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(&k, step.mode)?;
        }
        let k_cpu = match step.mode {
            OpMode::Fused => cpu_infer::rope(&k, step.cos, step.sin)?,
            _ => None,
        };
        k = match k_cpu {
            Some(k) => k,
            None => rope(&k.contiguous()?, step.cos, step.sin, step.mode)?,
        };
        super::profile::mark(x.device(), "attn: rope");
        if let Some(cache) = cache {
            if let Some((pk, pv)) = cache.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *cache = Some((k.clone(), v.clone()));
        }
        // Inference on the CPU: one fused kernel (RoPE on the queries included).
        let fused_cpu = match step.mode {
            OpMode::Fused => cpu_infer::attention(&q, step.cos, step.sin, &k, &v, step.mask)?,
            _ => None,
        };
        let out = match fused_cpu {
            Some(out) => out,
            None => {
                let q = rope(&q.contiguous()?, step.cos, step.sin, step.mode)?;
                if step.mode == OpMode::FusedGrad && step.grad_ops != GradOps::Fused {
                    fused::attention(&q, &k, &v, step.mask)?
                } else {
                    attention(&q, &k, &v, step.mask, step.mode)?
                }
            }
        };
        super::profile::mark(x.device(), "attn: core");
        let y = self.o.forward_mode(&out, step.mode)?;
        super::profile::mark(x.device(), "attn: o projection");
        Ok(y)
    }

    pub fn n_params(&self) -> usize {
        self.q.n_params()
            + self.k.n_params()
            + self.v.n_params()
            + self.o.n_params()
            + self.q_norm.as_ref().map_or(0, |n| n.weight.elem_count())
            + self.k_norm.as_ref().map_or(0, |n| n.weight.elem_count())
    }
}

/// A pre-norm decoder block: `x += attn(norm(x)); x += mlp(norm(x))`.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub input_norm: RmsNorm,
    pub attn: Attention,
    pub post_attention_norm: RmsNorm,
    pub mlp: Mlp,
}

impl Block {
    /// Runs block `l`, applying the hooks `ResidPre(l)`, `AttnOut(l)`, `MlpOut(l)`, `ResidPost(l)`.
    pub fn forward(
        &self,
        l: usize,
        x: Tensor,
        step: &Step,
        hooks: &mut Hooks,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let x = hooks.apply(HookPoint::ResidPre(l), x, step.pos)?;
        if step.mode == OpMode::FusedGrad
            && step.grad_ops == GradOps::Block
            && cache.is_none()
            && x.track_op()
            && !hooks.has_point(HookPoint::AttnOut(l))
            && !hooks.has_point(HookPoint::MlpOut(l))
        {
            let y = super::block_grad::forward(self, &x, step)?;
            return hooks.apply(HookPoint::ResidPost(l), y, step.pos);
        }
        let xn = self.input_norm.forward(&x, step.mode)?;
        super::profile::mark(x.device(), "block: input norm");
        let a = self.attn.forward(&xn, step, cache)?;
        let a = hooks.apply(HookPoint::AttnOut(l), a, step.pos)?;
        // Inference on the CPU: the residual add and the MLP's norm in one pass.
        let fused_cpu = match step.mode {
            OpMode::Fused => cpu_infer::add_rms_norm(
                &x,
                Some(&a),
                &self.post_attention_norm.weight,
                self.post_attention_norm.eps,
            )?,
            _ => None,
        };
        let (x, xn) = match fused_cpu {
            Some(pair) => pair,
            None => {
                let x = (x + a)?;
                let xn = self.post_attention_norm.forward(&x, step.mode)?;
                (x, xn)
            }
        };
        super::profile::mark(x.device(), "block: residual add + norm");
        let m = self.mlp.forward(&xn, step.mode)?;
        let m = hooks.apply(HookPoint::MlpOut(l), m, step.pos)?;
        let x = (x + m)?;
        super::profile::mark(x.device(), "block: mlp + residual add");
        hooks.apply(HookPoint::ResidPost(l), x, step.pos)
    }

    pub fn n_params(&self) -> usize {
        self.input_norm.weight.elem_count()
            + self.post_attention_norm.weight.elem_count()
            + self.attn.n_params()
            + self.mlp.n_params()
    }
}

/// Loads the SwiGLU MLP at `prefix` (`gate_proj`, `up_proj`, `down_proj`).
pub(crate) fn load_mlp(
    w: &Weights,
    prefix: &str,
    hidden: usize,
    inner: usize,
    bias: bool,
) -> Result<Mlp> {
    Ok(Mlp::new(
        w.linear(&format!("{prefix}.gate_proj"), hidden, inner, bias)?,
        w.linear(&format!("{prefix}.up_proj"), hidden, inner, bias)?,
        w.linear(&format!("{prefix}.down_proj"), inner, hidden, bias)?,
    ))
}

/// The dtype used for compute given a requested storage dtype.
pub(crate) fn check_dtype(dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::BF16 | DType::F16 | DType::F64 => Ok(()),
        other => Err(ModelError::InvalidInput(format!(
            "unsupported model dtype {other:?} (use f32, bf16 or f16)"
        ))),
    }
}
