//! The decoder block shared by every supported family (pre-norm attention with rotary
//! embeddings and grouped-query heads, then a gated MLP or a sparse mixture of experts
//! (`moe.rs`); optionally norms on the attention and MLP outputs, as Gemma has), the KV cache,
//! and the loaders the family files (`llama.rs`, `qwen2.rs`, `qwen3.rs`, `gemma3.rs`,
//! `phi3.rs`, `mixtral.rs`, `qwen3_moe.rs`) configure with their differences.
//!
//! The forward is written once against [`DecoderOps`], the ops a pass computes with, chosen
//! once at the top of the pass (`model::fast::Exec`): [`Reference`] (plain candle
//! ops, the oracle) or the speed layer's kernels. Hooks are applied here and only here. Must
//! not read environment switches, pick kernels or know about training.
use candle_core::Tensor;

use super::moe::SparseMoe;
use super::ops::{self, Linear, RmsNorm};
use crate::model::hooks::{HookPoint, Hooks, PosCtx};
use crate::model::load::config::{Activation, ModelConfig};
use crate::model::load::Weights;
use crate::model::Result;

/// The ops one forward pass computes a decoder with. Every method has the meaning of the
/// reference implementation ([`Reference`]); other implementations may only differ
/// by float rounding.
pub(crate) trait DecoderOps {
    /// `x Wᵀ + b`.
    fn linear(&self, lin: &Linear, x: &Tensor) -> Result<Tensor>;
    /// RMSNorm over the last dimension.
    fn rms_norm(&self, n: &RmsNorm, x: &Tensor) -> Result<Tensor>;
    /// The residual add and the following norm: `(x + a, rms_norm(x + a))`.
    fn add_rms_norm(&self, x: &Tensor, a: &Tensor, n: &RmsNorm) -> Result<(Tensor, Tensor)> {
        let x = (x + a)?;
        let xn = self.rms_norm(n, &x)?;
        Ok((x, xn))
    }
    /// Rotary embedding of heads `[B, H, T, D]` at the step's positions.
    fn rope(&self, x: &Tensor, step: &Step) -> Result<Tensor>;
    /// Attention of queries `q` `[B, Hq, T, D]` (RoPE not yet applied: this applies it) over
    /// keys `k` (rotated) and values `v` `[B, Hkv, S, D]`, masked by the step's mask. Returns
    /// `[B, T, Hq * D]`.
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, step: &Step) -> Result<Tensor>;
    /// The gated MLP `down(act(gate(x)) * up(x))` (op by op: [`swiglu`]).
    fn mlp(&self, mlp: &Mlp, x: &Tensor) -> Result<Tensor>;
    /// The whole block (no hooks inside, no KV cache) as these ops compute it in one piece, or
    /// `None` to run it op by op.
    fn whole_block(&self, _block: &Block, _x: &Tensor, _step: &Step) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// The decoder computed by the reference ops of `ops.rs`: plain differentiable candle ops.
pub(crate) struct Reference;

impl DecoderOps for Reference {
    fn linear(&self, lin: &Linear, x: &Tensor) -> Result<Tensor> {
        lin.forward(x)
    }

    fn rms_norm(&self, n: &RmsNorm, x: &Tensor) -> Result<Tensor> {
        n.forward(x)
    }

    fn rope(&self, x: &Tensor, step: &Step) -> Result<Tensor> {
        ops::rope(&x.contiguous()?, step.cos, step.sin)
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, step: &Step) -> Result<Tensor> {
        let q = ops::rope(&q.contiguous()?, step.cos, step.sin)?;
        ops::attention(&q, k, v, step.mask)
    }

    fn mlp(&self, mlp: &Mlp, x: &Tensor) -> Result<Tensor> {
        swiglu(self, mlp, x)
    }
}

/// One layer's cached keys and values, `[B, Hkv, S, D]`.
pub(crate) type LayerCache = Option<(Tensor, Tensor)>;

/// Per-call tensors shared by all blocks.
pub(crate) struct Step<'a> {
    /// Rotary tables `[T, D / 2]` for the positions of this call.
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    /// Additive attention mask `[B, 1, 1, T, S]`, `None` when nothing is masked.
    pub mask: Option<&'a Tensor>,
    pub pos: &'a PosCtx,
}

/// A pre-norm decoder block: `x += attn(norm(x)); x += mlp(norm(x))`, or with output norms
/// (Gemma): `x += out_norm(attn(norm(x)))`, likewise the MLP.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub input_norm: RmsNorm,
    pub attn: Attention,
    /// The norm before the MLP (HF `post_attention_layernorm`; Gemma's
    /// `pre_feedforward_layernorm`).
    pub post_attention_norm: RmsNorm,
    /// The MLP: dense, or a sparse mixture of experts.
    pub ffn: FeedForward,
    /// Norm of the attention output before the residual add (Gemma's
    /// `post_attention_layernorm`).
    pub attn_out_norm: Option<RmsNorm>,
    /// Norm of the MLP output before the residual add (Gemma's `post_feedforward_layernorm`).
    pub mlp_out_norm: Option<RmsNorm>,
}

impl Block {
    /// Runs block `l`, applying the hooks `ResidPre(l)`, `AttnOut(l)`, `MlpOut(l)`, `ResidPost(l)`.
    pub fn forward(
        &self,
        ops: &dyn DecoderOps,
        l: usize,
        x: Tensor,
        step: &Step,
        hooks: &mut Hooks,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        crate::model::error::check_interrupt()?;
        let x = hooks.apply(HookPoint::ResidPre(l), x, step.pos)?;
        let hooks_inside = hooks.has_point(HookPoint::AttnOut(l))
            || hooks.has_point(HookPoint::MlpOut(l))
            || hooks.has_point(HookPoint::RouterLogits(l));
        if cache.is_none() && !hooks_inside {
            if let Some(y) = ops.whole_block(self, &x, step)? {
                return hooks.apply(HookPoint::ResidPost(l), y, step.pos);
            }
        }
        let mut a = self
            .attn
            .forward(ops, &ops.rms_norm(&self.input_norm, &x)?, step, cache)?;
        if let Some(n) = &self.attn_out_norm {
            a = ops.rms_norm(n, &a)?;
        }
        let a = hooks.apply(HookPoint::AttnOut(l), a, step.pos)?;
        let (x, h) = ops.add_rms_norm(&x, &a, &self.post_attention_norm)?;
        let mut m = match &self.ffn {
            FeedForward::Dense(mlp) => ops.mlp(mlp, &h)?,
            FeedForward::Moe(moe) => moe.forward(ops, l, &h, step, hooks)?,
        };
        if let Some(n) = &self.mlp_out_norm {
            m = ops.rms_norm(n, &m)?;
        }
        let m = hooks.apply(HookPoint::MlpOut(l), m, step.pos)?;
        hooks.apply(HookPoint::ResidPost(l), (x + m)?, step.pos)
    }

    pub fn n_params(&self) -> usize {
        self.input_norm.weight.elem_count()
            + self.post_attention_norm.weight.elem_count()
            + self.attn.n_params()
            + self.ffn.n_params()
            + self
                .attn_out_norm
                .as_ref()
                .map_or(0, |n| n.weight.elem_count())
            + self
                .mlp_out_norm
                .as_ref()
                .map_or(0, |n| n.weight.elem_count())
    }

    /// Whether the block is the plain Llama-shaped one (no output norms, SwiGLU, unscaled
    /// queries): what whole-block kernels compute.
    pub fn is_plain(&self) -> bool {
        self.attn_out_norm.is_none()
            && self.mlp_out_norm.is_none()
            && self.dense_mlp().is_some_and(|m| m.act == Activation::Silu)
            && self.attn.q_scale.is_none()
            && self.attn.softcap.is_none()
    }
}

impl Block {
    /// The dense MLP, `None` for a mixture-of-experts block.
    pub fn dense_mlp(&self) -> Option<&Mlp> {
        match &self.ffn {
            FeedForward::Dense(m) => Some(m),
            FeedForward::Moe(_) => None,
        }
    }

    /// The router's width (number of experts) for a mixture-of-experts block.
    pub fn router_width(&self) -> Option<usize> {
        match &self.ffn {
            FeedForward::Dense(_) => None,
            FeedForward::Moe(m) => Some(m.experts.len()),
        }
    }
}

/// A block's MLP.
#[derive(Debug, Clone)]
pub(crate) enum FeedForward {
    /// One gated MLP.
    Dense(Mlp),
    /// Top-k routed experts (Mixtral, Qwen3-MoE).
    Moe(SparseMoe),
}

impl FeedForward {
    pub fn n_params(&self) -> usize {
        match self {
            FeedForward::Dense(m) => m.n_params(),
            FeedForward::Moe(m) => m.n_params(),
        }
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
    /// Queries multiplied by this before attention (Gemma's `query_pre_attn_scalar`: scores
    /// scaled by `scalar^-1/2` instead of `head_dim^-1/2`); `None` for 1.
    pub q_scale: Option<f64>,
    /// Attention scores soft-capped as `c * tanh(scores / c)` before the mask (Gemma 2): then
    /// the attention is computed by the reference composition, not `DecoderOps::attention`.
    pub softcap: Option<f64>,
}

impl Attention {
    pub fn forward(
        &self,
        ops: &dyn DecoderOps,
        x: &Tensor,
        step: &Step,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let heads = |lin: &Linear, n: usize| -> Result<Tensor> {
            Ok(ops
                .linear(lin, x)?
                .reshape((b, t, n, self.head_dim))?
                .transpose(1, 2)?)
        };
        let (mut q, mut k, mut v) = (
            heads(&self.q, self.n_heads)?,
            heads(&self.k, self.n_kv_heads)?,
            heads(&self.v, self.n_kv_heads)?,
        );
        if let Some(n) = &self.q_norm {
            q = ops.rms_norm(n, &q)?;
        }
        if let Some(n) = &self.k_norm {
            k = ops.rms_norm(n, &k)?;
        }
        k = ops.rope(&k, step)?;
        if let Some(cache) = cache {
            if let Some((pk, pv)) = cache.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *cache = Some((k.clone(), v.clone()));
        }
        if let Some(s) = self.q_scale {
            q = (q * s)?;
        }
        if let Some(c) = self.softcap {
            let q = ops.rope(&q, step)?;
            let out = ops::attention_with(&q, &k, &v, step.mask, &|s, m| {
                let capped = ((s / c)?.tanh()? * c)?;
                ops::softmax_last(&ops::add_mask(&capped, m)?)
            })?;
            return ops.linear(&self.o, &out);
        }
        // RoPE on the queries is part of `ops.attention`, so a kernel may fuse it.
        let out = ops.attention(&q, &k, &v, step)?;
        ops.linear(&self.o, &out)
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

/// The gated MLP: `down(act(gate(x)) * up(x))` (SwiGLU; GeGLU for Gemma).
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    pub act: Activation,
}

/// The gated MLP op by op: `down(act(gate(x)) * up(x))`.
pub(crate) fn swiglu(ops: &dyn DecoderOps, mlp: &Mlp, x: &Tensor) -> Result<Tensor> {
    let g = ops.linear(&mlp.gate, x)?;
    let g = match mlp.act {
        Activation::Silu => g.silu()?,
        // candle's `gelu` is the tanh approximation (PyTorch's `gelu(approximate="tanh")`).
        Activation::GeluTanh => g.gelu()?,
    };
    let u = ops.linear(&mlp.up, x)?;
    ops.linear(&mlp.down, &(g * u)?)
}

impl Mlp {
    pub fn n_params(&self) -> usize {
        self.gate.n_params() + self.up.n_params() + self.down.n_params()
    }
}

/// Which weights a family's decoder block has: the few lines where families differ.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Bias on the q, k and v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// Bias on the MLP's three projections.
    pub mlp_bias: bool,
    /// Per-head RMSNorm (over `head_dim`) on queries and keys before RoPE.
    pub qk_norm: bool,
}

/// Loads decoder block `l` (HF names under `model.layers.{l}`) with the weights `layout` says
/// exist.
pub(crate) fn load_block(
    w: &Weights,
    cfg: &ModelConfig,
    l: usize,
    layout: Layout,
) -> Result<Block> {
    let mlp = load_mlp(
        w,
        &format!("model.layers.{l}.mlp"),
        cfg.hidden_size,
        cfg.intermediate_size,
        layout.mlp_bias,
        cfg.activation,
    )?;
    load_block_with(w, cfg, l, layout, FeedForward::Dense(mlp))
}

/// A gated MLP `{prefix}.gate_proj`, `up_proj`, `down_proj` of inner width `inner`.
pub(crate) fn load_mlp(
    w: &Weights,
    prefix: &str,
    h: usize,
    inner: usize,
    bias: bool,
    act: Activation,
) -> Result<Mlp> {
    let lin =
        |name: &str, inp: usize, out: usize| w.linear(&format!("{prefix}.{name}"), inp, out, bias);
    Ok(Mlp {
        gate: lin("gate_proj", h, inner)?,
        up: lin("up_proj", h, inner)?,
        down: lin("down_proj", inner, h)?,
        act,
    })
}

/// [`load_block`] with the MLP given (a family with its own MLP weights: fused, or experts).
pub(crate) fn load_block_with(
    w: &Weights,
    cfg: &ModelConfig,
    l: usize,
    layout: Layout,
    ffn: FeedForward,
) -> Result<Block> {
    let p = format!("model.layers.{l}");
    let (h, d, eps) = (cfg.hidden_size, cfg.head_dim, cfg.rms_norm_eps);
    let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let qk_norm = |name: &str| -> Result<Option<RmsNorm>> {
        match layout.qk_norm {
            true => Ok(Some(w.rms_norm(
                &format!("{p}.self_attn.{name}"),
                d,
                eps,
            )?)),
            false => Ok(None),
        }
    };
    Ok(Block {
        input_norm: w.rms_norm(&format!("{p}.input_layernorm"), h, eps)?,
        attn: Attention {
            q: w.linear(&format!("{p}.self_attn.q_proj"), h, nq * d, layout.qkv_bias)?,
            k: w.linear(
                &format!("{p}.self_attn.k_proj"),
                h,
                nkv * d,
                layout.qkv_bias,
            )?,
            v: w.linear(
                &format!("{p}.self_attn.v_proj"),
                h,
                nkv * d,
                layout.qkv_bias,
            )?,
            o: w.linear(&format!("{p}.self_attn.o_proj"), nq * d, h, layout.o_bias)?,
            q_norm: qk_norm("q_norm")?,
            k_norm: qk_norm("k_norm")?,
            n_heads: nq,
            n_kv_heads: nkv,
            head_dim: d,
            q_scale: None,
            softcap: None,
        },
        post_attention_norm: w.rms_norm(&format!("{p}.post_attention_layernorm"), h, eps)?,
        ffn,
        attn_out_norm: None,
        mlp_out_norm: None,
    })
}
