//! Qwen3: the Llama layout plus a per-head RMSNorm on queries and keys (before RoPE) and an
//! explicit `head_dim` that need not equal `hidden_size / heads`. Only loads weights; running
//! lives in `block.rs`.
use super::block::{load_mlp, Attention, Block, Weights};
use super::config::ModelConfig;
use super::Result;

/// Loads decoder block `l` of a Qwen3 checkpoint.
pub(crate) fn load_block(w: &Weights, cfg: &ModelConfig, l: usize) -> Result<Block> {
    let p = format!("model.layers.{l}");
    let (h, d) = (cfg.hidden_size, cfg.head_dim);
    let (nq, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    Ok(Block {
        input_norm: w.rms_norm(&format!("{p}.input_layernorm"), h, cfg.rms_norm_eps)?,
        attn: Attention {
            q: w.linear(&format!("{p}.self_attn.q_proj"), h, nq * d, cfg.qkv_bias)?,
            k: w.linear(&format!("{p}.self_attn.k_proj"), h, nkv * d, cfg.qkv_bias)?,
            v: w.linear(&format!("{p}.self_attn.v_proj"), h, nkv * d, cfg.qkv_bias)?,
            o: w.linear(&format!("{p}.self_attn.o_proj"), nq * d, h, cfg.o_bias)?,
            // The Qwen3 difference: RMSNorm over each head's `head_dim` on q and k.
            q_norm: Some(w.rms_norm(&format!("{p}.self_attn.q_norm"), d, cfg.rms_norm_eps)?),
            k_norm: Some(w.rms_norm(&format!("{p}.self_attn.k_norm"), d, cfg.rms_norm_eps)?),
            n_heads: nq,
            n_kv_heads: nkv,
            head_dim: d,
        },
        post_attention_norm: w.rms_norm(
            &format!("{p}.post_attention_layernorm"),
            h,
            cfg.rms_norm_eps,
        )?,
        mlp: load_mlp(w, &format!("{p}.mlp"), h, cfg.intermediate_size, false)?,
    })
}
