//! Gemma 3 text models: the Qwen3 layer ([`super::qwen3`]: per-head q/k norms) with Gemma's
//! differences, each a field the shared decoder reads:
//!
//! ```text
//! h = x + post_attention_norm(o_proj(attention(q_scale * rope(q_norm(q)), rope(k_norm(k)), v)))
//! y = h + post_feedforward_norm(down_proj(gelu_tanh(gate_proj(n)) * up_proj(n))),
//!     n = pre_feedforward_norm(h)
//! ```
//!
//! Every RMSNorm scales by `1 + w` (the offset is added to the weights on load, unless a GGUF
//! converter already stored `1 + w`); `q_scale = sqrt(head_dim / query_pre_attn_scalar)`.
//! The embedding scale (`sqrt(hidden)`), the final soft-cap and the sliding/global layer
//! pattern with its two RoPE bases are model-level fields of the config, applied by the engine.
//! Only says which weights exist; must not run anything itself.
use super::decoder::{self, Block, Layout};
use super::ops::RmsNorm;
use crate::model::load::config::ModelConfig;
use crate::model::load::Weights;
use crate::model::Result;

/// `norm` with `offset` added to its weight (Gemma's `1 + w`).
pub(crate) fn shifted(norm: RmsNorm, offset: f64) -> Result<RmsNorm> {
    if offset == 0.0 {
        return Ok(norm);
    }
    Ok(RmsNorm {
        weight: (norm.weight + offset)?,
        eps: norm.eps,
    })
}

/// Loads decoder block `l` of a Gemma 3 checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    load_gemma_block(w, cfg, l, true)
}

/// A Gemma block, with q/k norms (Gemma 3) or without (Gemma 2; see `gemma2.rs`).
pub(crate) fn load_gemma_block(
    w: &Weights,
    cfg: &ModelConfig,
    l: usize,
    qk_norm: bool,
) -> Result<Block> {
    let layout = Layout {
        qkv_bias: cfg.qkv_bias,
        o_bias: cfg.o_bias,
        mlp_bias: false,
        qk_norm,
    };
    let mut b = decoder::load_block(w, cfg, l, layout)?;
    let off = cfg.norm_weight_offset;
    let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
    let p = format!("model.layers.{l}");
    // HF's `post_attention_layernorm` normalises the attention output here; the norm before
    // the MLP is `pre_feedforward_layernorm`.
    let pre_ffw = w.rms_norm(&format!("{p}.pre_feedforward_layernorm"), h, eps)?;
    let post_ffw = w.rms_norm(&format!("{p}.post_feedforward_layernorm"), h, eps)?;
    let post_attn = std::mem::replace(&mut b.post_attention_norm, shifted(pre_ffw, off)?);
    b.attn_out_norm = Some(shifted(post_attn, off)?);
    b.mlp_out_norm = Some(shifted(post_ffw, off)?);
    b.input_norm = shifted(b.input_norm, off)?;
    b.attn.q_norm = b.attn.q_norm.map(|n| shifted(n, off)).transpose()?;
    b.attn.k_norm = b.attn.k_norm.map(|n| shifted(n, off)).transpose()?;
    if let Some(s) = cfg.query_pre_attn_scalar {
        let scale = (cfg.head_dim as f64 / s).sqrt();
        b.attn.q_scale = (scale != 1.0).then_some(scale);
    }
    b.attn.softcap = cfg.attn_logit_softcapping;
    Ok(b)
}
